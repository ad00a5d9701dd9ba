//! [`Mlx5SoftHac`]: HAC semantics in the driver for ConnectX VFs *without* the HAC extension (a
//! real ConnectX, whose firmware answers our vendor commands BAD_OP). A checkpointing VF's send
//! WQEs are written into its SQ as usual, but the doorbell record and the UAR doorbell only
//! advance over WQEs whose epoch is committed: the device reads the record's send counter
//! when rung and never looks beyond it, so the WQEs past it are still software's. Frames that
//! do not fit in the SQ wait in a software queue behind it. Abort and failover take the WQEs
//! the device never saw back (the producer counter rewinds to the record; the slots and their
//! buffers are reused) and re-write the survivors; unprotect hands everything over.
//!
//! The contract's logic is the one the 82576 uses ([`crate::softhac::hold::SoftHacCore`]);
//! this module gives it the [`Mlx5Device`] as its `HoldPort` (a position is the SQ producer
//! counter after a WQE) and names the result [`Mlx5SoftHac`]. The hold is the driver's own:
//! [`Mlx5Device::send`] is refused while WQEs are held beyond the record
//! ([`Mlx5Error::TxHeld`]), and [`Mlx5SoftHac::port`] hands out a [`Mlx5SoftPort`] (receive,
//! completions, counters, link), not the device, so no public path rings over a held frame.
//!
//! Tagging a VF with a backlog: plain frames queued before [`Hac::set_tagged`] predate the
//! protection, so they are not held; they stay first and go to the device as SQ room allows,
//! counting in `buffered_frames` until they do. Frames sent after the tag carry the open epoch.
//!
//! Priority across the VFs this driver owns: released checkpoint frames are handed to the
//! device first; plain frames queued through [`Mlx5SoftHac::send`] follow, and while released
//! frames still wait for SQ room only the guard's worth of plain bytes per
//! [`Mlx5SoftHac::pump`] goes ahead of them. Once frames are in different VFs' SQs, the
//! E-Switch decides: with its HAC stage disabled every vport's FIFO is in the same class and
//! it serves them round robin, so released frames interleave with other VFs' plain frames;
//! strict priority on the wire needs the extension.
//!
//! An error CQE on a checkpointing VF's SQ (`HoldPort::needs_recovery`): the held WQEs are
//! taken back, the SQ recovered (its counters restart at 0) and the held frames written again,
//! in order, by the next [`Mlx5SoftHac::pump`] or HAC operation; nothing held is lost.

use bytes::Bytes;
use hw_common::MacAddress;

use super::eth::{BUFFER_LEN, EthStats, check_frame_len};
use super::{Mlx5Device, Mlx5Error};
use crate::backend::{Clock, DmaAllocator, RegisterIo};
pub use crate::softhac::hold::{DEFAULT_GUARD_BYTES, DEFAULT_LIMIT_BYTES, DEFAULT_LIMIT_FRAMES};
use crate::softhac::hold::{HoldPort, SoftHacCore};
pub use adapter_core::hac::{Hac, HacError, HacVfStats, VfNumber};

/// Driver-level HAC over the mlx5 VFs a driver owns (each [`Mlx5Device`] with its Ethernet
/// path open): the shared core over the devices' SQs.
pub type Mlx5SoftHac<R, D, C> = SoftHacCore<Mlx5Device<R, D, C>>;

/// The SQ as a hold: WQEs written beyond the doorbell record, the record and the UAR doorbell
/// moved only to the committed point, the producer rewound to the record to take WQEs back;
/// an SQ an error CQE moved to ERR is recovered before held frames are written again.
impl<R: RegisterIo, D: DmaAllocator, C: Clock> HoldPort for Mlx5Device<R, D, C> {
    type Error = Mlx5Error;
    /// The SQ producer counter after a WQE.
    type Position = u16;
    const MAX_VFS: usize = usize::MAX;

    fn no_such_vf(vf: VfNumber) -> Mlx5Error {
        Mlx5Error::NoSuchVf(vf)
    }

    fn check_frame_len(&self, len: usize) -> Result<(), Mlx5Error> {
        check_frame_len(len)
    }

    fn post_held(&mut self, frame: &Bytes) -> Result<Option<u16>, Mlx5Error> {
        self.tx_post_held(frame)
    }

    fn ring_to(&mut self, end: u16) -> Result<(), Mlx5Error> {
        self.tx_ring_to(end).map(|_| ())
    }

    fn take_back_held(&mut self) {
        self.tx_take_back_held();
    }

    fn send_now(&mut self, frame: &Bytes) -> Result<bool, Mlx5Error> {
        Ok(self.send(&[&frame[..]])? > 0)
    }

    fn needs_recovery(&self) -> bool {
        self.tx_needs_recovery()
    }

    fn recover(&mut self) -> Result<(), Mlx5Error> {
        self.recover_sq().map(|_| ())
    }
}

/// One VF of a [`Mlx5SoftHac`], for everything but sending. Sending goes through
/// [`Mlx5SoftHac::send`], so the hold cannot be bypassed.
pub struct Mlx5SoftPort<'a, R: RegisterIo, D: DmaAllocator, C: Clock> {
    dev: &'a mut Mlx5Device<R, D, C>,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Mlx5SoftPort<'_, R, D, C> {
    /// Receives up to `max` frames into `out`; returns how many.
    pub fn recv(&mut self, out: &mut Vec<Vec<u8>>, max: usize) -> Result<usize, Mlx5Error> {
        self.dev.recv(out, max)
    }

    /// Receives up to `max` frames, handing each to `each`.
    pub fn recv_with(&mut self, max: usize, each: impl FnMut(&[u8])) -> Result<usize, Mlx5Error> {
        self.dev.recv_with(max, each)
    }

    /// Consumes TX completions; returns the CQEs seen.
    pub fn reclaim_tx(&mut self) -> Result<usize, Mlx5Error> {
        self.dev.reclaim_tx()
    }

    /// The VF's datapath counters.
    pub fn eth_stats(&self) -> EthStats {
        self.dev.eth_stats()
    }

    /// The link: the vport's operational state is up.
    pub fn link_up(&mut self) -> Result<bool, Mlx5Error> {
        self.dev.link_up()
    }

    /// The MAC the vport context gave.
    pub fn mac(&self) -> Option<MacAddress> {
        self.dev.mac()
    }

    /// Send WQEs held beyond the doorbell record.
    pub fn tx_held(&self) -> usize {
        self.dev.tx_held()
    }

    /// Services the device's event queues (page requests); returns the EQEs handled.
    pub fn poll_events(&mut self) -> Result<usize, Mlx5Error> {
        self.dev.poll_events()
    }
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> SoftHacCore<Mlx5Device<R, D, C>> {
    /// Takes the VF devices: the device at position n is VF n for [`Mlx5SoftHac::send`] and
    /// the [`Hac`] calls (numbers beyond are `NoSuchVf`).
    pub fn new(devices: Vec<Mlx5Device<R, D, C>>) -> Self {
        Self::with_ports(devices)
    }

    /// Receive side, completions, counters and link of `vf`.
    pub fn port(&mut self, vf: VfNumber) -> Option<Mlx5SoftPort<'_, R, D, C>> {
        self.port_mut(vf).map(|dev| Mlx5SoftPort { dev })
    }

    /// Largest frame [`Mlx5SoftHac::send`] accepts.
    pub const fn max_frame_len(&self) -> usize {
        BUFFER_LEN
    }

    /// Queues frames on `vf`; returns how many were accepted. A checkpointing VF stops
    /// accepting at its buffer limit (backpressure, counted: the caller keeps the rest);
    /// with nothing buffered it takes one frame whatever the limits. A frame the send path
    /// cannot carry (longer than [`BUFFER_LEN`], shorter than an Ethernet header) refuses the
    /// whole call before anything is accepted.
    pub fn send(&mut self, vf: VfNumber, frames: &[Bytes]) -> Result<usize, Mlx5Error> {
        self.send_frames(vf, frames)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mlx5_model::{FunctionId, Mlx5Config as ModelConfig};

    use super::*;
    use crate::mlx5::model::{Mlx5Model, Mlx5ModelBar, Mlx5ModelClock, Mlx5ModelDma, ModelDevice};
    use crate::mlx5::{EthConfig, Mlx5Config};

    type Soft = Mlx5SoftHac<Mlx5ModelBar, Mlx5ModelDma, Mlx5ModelClock>;

    const VF0: VfNumber = VfNumber::new(0);
    const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);

    fn mac(n: usize) -> MacAddress {
        MacAddress([0x02, 0, 0, 0, 0x5E, n as u8])
    }

    /// The model with `vfs` VFs, each with an SQ of 2^`log_sq` WQEBBs, under a SoftHac (the
    /// model's HAC stage disabled).
    fn setup(vfs: u16, log_sq: u8) -> (Mlx5Model, ModelDevice, Soft) {
        let model = Mlx5Model::new(ModelConfig {
            capture_wire: true,
            ..ModelConfig::default()
        });
        let (mut pf, mut devs) = model.start(vfs, Mlx5Config::default()).unwrap();
        for (n, d) in devs.iter_mut().enumerate() {
            pf.set_vf_mac(n as u16, mac(n)).unwrap();
            d.open_eth(EthConfig {
                log_sq_size: log_sq,
                log_rq_size: 4,
            })
            .unwrap();
        }
        (model, pf, Mlx5SoftHac::new(devs))
    }

    /// Frame `seq` of VF 0, `len` bytes, its sequence number in the first payload bytes.
    fn frame(seq: u32, len: usize) -> Bytes {
        let mut f = hw_common::frame::build(PEER, mac(0), 0x88B5, &seq.to_be_bytes());
        f.resize(len.max(f.len()), 0);
        Bytes::from(f)
    }

    fn frames(seqs: std::ops::Range<u32>) -> Vec<Bytes> {
        seqs.map(|s| frame(s, 200)).collect()
    }

    /// Runs the model and the driver loop for `ms`; returns the sequence numbers on the wire.
    fn run(model: &Mlx5Model, soft: &mut Soft, ms: u64) -> Vec<u32> {
        for _ in 0..ms * 10 {
            soft.pump().unwrap();
            model.run_for(100_000);
            soft.port(VF0).unwrap().reclaim_tx().unwrap();
        }
        model
            .nic()
            .take_wire_capture()
            .iter()
            .map(|w| u32::from_be_bytes([w.data[14], w.data[15], w.data[16], w.data[17]]))
            .collect()
    }

    /// The model's SQ producer counter of VF 0 (what the doorbell record gave it).
    fn device_producer(model: &Mlx5Model) -> u16 {
        let nic = model.nic();
        let st = nic.function_state(FunctionId::Vf(0)).unwrap();
        st.sqs.values().map(|sq| sq.producer).next().unwrap()
    }

    #[test]
    fn the_defaults_are_the_extension_defaults() {
        assert_eq!((DEFAULT_LIMIT_FRAMES, DEFAULT_LIMIT_BYTES), (4096, 4 << 20));
    }

    #[test]
    fn held_wqes_are_invisible_until_commit_and_wrap_the_sq_ring() {
        // An 8-WQEBB SQ: every round writes 5 held WQEs, so the ring wraps again and again.
        let (model, _pf, mut soft) = setup(1, 3);
        soft.set_tagged(VF0, true).unwrap();
        let mut next = 0;
        for round in 1..=7u32 {
            if round > 1 {
                soft.open_epoch(VF0, round).unwrap();
            }
            assert_eq!(soft.send(VF0, &frames(next..next + 5)).unwrap(), 5);
            assert_eq!(soft.port(VF0).unwrap().tx_held(), 5);
            assert!(run(&model, &mut soft, 1).is_empty(), "round {round}: held");
            let before = device_producer(&model);
            soft.commit(VF0, round).unwrap();
            assert_eq!(soft.port(VF0).unwrap().tx_held(), 0);
            assert_eq!(device_producer(&model), before.wrapping_add(5));
            let wire = run(&model, &mut soft, 2);
            assert_eq!(wire, (next..next + 5).collect::<Vec<_>>(), "round {round}");
            next += 5;
        }
        let st = soft.stats(VF0).unwrap();
        assert_eq!((st.released, st.discarded, st.buffered_frames), (35, 0, 0));
        assert_eq!(soft.port(VF0).unwrap().eth_stats().tx_frames, 35);
    }

    #[test]
    fn abort_rewinds_the_producer_and_reuses_the_slots() {
        let (model, _pf, mut soft) = setup(1, 3);
        soft.set_tagged(VF0, true).unwrap();
        // Epoch 1: three frames; epoch 2: two; the ring (8) holds all five.
        assert_eq!(soft.send(VF0, &frames(0..3)).unwrap(), 3);
        soft.open_epoch(VF0, 2).unwrap();
        assert_eq!(soft.send(VF0, &frames(3..5)).unwrap(), 2);
        soft.abort(VF0, 1).unwrap();
        // The epoch-2 frames were written again from the doorbell record: slots 0 and 1.
        assert_eq!(soft.port(VF0).unwrap().tx_held(), 2);
        let st = soft.stats(VF0).unwrap();
        assert_eq!((st.discarded, st.buffered_frames), (3, 2));
        assert_eq!(soft.port(VF0).unwrap().eth_stats().tx_frames, 0);
        soft.commit(VF0, 2).unwrap();
        assert_eq!(device_producer(&model), 2, "the rewound slots were reused");
        assert_eq!(run(&model, &mut soft, 2), vec![3, 4]);
        // Failover: everything held goes, the VF keeps working.
        soft.open_epoch(VF0, 3).unwrap();
        assert_eq!(soft.send(VF0, &frames(5..9)).unwrap(), 4);
        soft.failover(VF0).unwrap();
        assert_eq!(soft.port(VF0).unwrap().tx_held(), 0);
        assert_eq!(soft.stats(VF0).unwrap().discarded, 7);
        assert!(run(&model, &mut soft, 2).is_empty());
        soft.open_epoch(VF0, 4).unwrap();
        assert_eq!(soft.send(VF0, &frames(9..10)).unwrap(), 1);
        soft.commit(VF0, 4).unwrap();
        assert_eq!(run(&model, &mut soft, 2), vec![9]);
        assert_eq!(device_producer(&model), 3);
    }

    #[test]
    fn frames_beyond_the_sq_wait_in_software_and_abort_keeps_the_survivors_in_order() {
        let (model, _pf, mut soft) = setup(1, 3);
        soft.set_tagged(VF0, true).unwrap();
        assert_eq!(soft.send(VF0, &frames(0..6)).unwrap(), 6);
        soft.open_epoch(VF0, 2).unwrap();
        assert_eq!(soft.send(VF0, &frames(6..20)).unwrap(), 14);
        assert_eq!(soft.port(VF0).unwrap().tx_held(), 8, "the SQ is full");
        assert_eq!(soft.stats(VF0).unwrap().buffered_frames, 20);
        soft.abort(VF0, 1).unwrap();
        assert_eq!(soft.port(VF0).unwrap().tx_held(), 8);
        assert_eq!(soft.stats(VF0).unwrap().buffered_frames, 14);
        soft.commit(VF0, 2).unwrap();
        assert_eq!(run(&model, &mut soft, 5), (6..20).collect::<Vec<_>>());
        let st = soft.stats(VF0).unwrap();
        assert_eq!((st.released, st.discarded, st.buffered_frames), (14, 6, 0));
    }

    #[test]
    fn a_frame_larger_than_the_byte_limit_goes_alone_and_an_oversized_one_is_refused() {
        let (model, _pf, mut soft) = setup(1, 3);
        soft.set_tagged(VF0, true).unwrap();
        soft.set_limits(VF0, 0, 100).unwrap();
        // An empty buffer takes one frame whatever the limits; the next is backpressure.
        assert_eq!(soft.send(VF0, &frames(0..2)).unwrap(), 1);
        assert_eq!(soft.stats(VF0).unwrap().backpressure, 1);
        // Longer than a buffer: the whole call is refused before anything is accepted.
        let too_long = [frame(1, 200), frame(2, BUFFER_LEN + 1)];
        assert!(matches!(
            soft.send(VF0, &too_long),
            Err(Mlx5Error::FrameTooLarge { .. })
        ));
        assert!(matches!(
            soft.send(VF0, &[Bytes::from_static(&[0; 10])]),
            Err(Mlx5Error::FrameTooShort { .. })
        ));
        assert_eq!(soft.stats(VF0).unwrap().buffered_frames, 1);
        soft.commit(VF0, 1).unwrap();
        assert_eq!(run(&model, &mut soft, 1), vec![0]);
        assert_eq!(soft.send(VF0, &frames(1..2)).unwrap(), 1);
        assert!(matches!(
            soft.send(VfNumber::new(1), &frames(0..1)),
            Err(Mlx5Error::NoSuchVf(_))
        ));
    }

    /// Sends one frame on VF 0 whose WQE carries a bad memory key (the device fails it).
    fn send_poisoned(soft: &mut Soft, seq: u32) {
        let good = soft
            .port_mut(VF0)
            .unwrap()
            .set_tx_lkey_for_test(0x00BA_DBAD);
        assert_eq!(soft.send(VF0, &frames(seq..seq + 1)).unwrap(), 1);
        soft.port_mut(VF0).unwrap().set_tx_lkey_for_test(good);
    }

    #[test]
    fn an_error_cqe_recovers_the_sq_and_the_held_frames_are_written_again() {
        let (model, _pf, mut soft) = setup(1, 3);
        soft.set_tagged(VF0, true).unwrap();
        // Epoch 1: a frame the device fails; epoch 2: two frames held beyond the record.
        send_poisoned(&mut soft, 0);
        soft.open_epoch(VF0, 2).unwrap();
        assert_eq!(soft.send(VF0, &frames(1..3)).unwrap(), 2);
        soft.commit(VF0, 1).unwrap();
        // The device fails the WQE: error CQE, SQ in ERR; the pump takes the held WQEs back,
        // recovers the SQ and writes them again from counter 0.
        assert!(run(&model, &mut soft, 1).is_empty());
        let eth = soft.port(VF0).unwrap().eth_stats();
        assert_eq!((eth.tx_error_cqes, eth.sq_recoveries), (1, 1));
        assert_eq!(soft.port(VF0).unwrap().tx_held(), 2);
        assert_eq!(soft.stats(VF0).unwrap().buffered_frames, 2);
        soft.commit(VF0, 2).unwrap();
        assert_eq!(device_producer(&model), 2, "written again after the reset");
        assert_eq!(run(&model, &mut soft, 2), vec![1, 2]);
        // An error with nothing held: the next held write recovers first.
        soft.open_epoch(VF0, 3).unwrap();
        send_poisoned(&mut soft, 3);
        soft.commit(VF0, 3).unwrap();
        assert!(run(&model, &mut soft, 1).is_empty());
        soft.open_epoch(VF0, 4).unwrap();
        assert_eq!(soft.send(VF0, &frames(4..5)).unwrap(), 1);
        soft.commit(VF0, 4).unwrap();
        assert_eq!(run(&model, &mut soft, 2), vec![4]);
        let eth = soft.port(VF0).unwrap().eth_stats();
        assert_eq!((eth.tx_error_cqes, eth.sq_recoveries), (2, 2));
        let st = soft.stats(VF0).unwrap();
        assert_eq!((st.buffered_frames, st.discarded), (0, 0));
    }

    #[test]
    fn the_driver_refuses_a_plain_send_over_held_wqes_and_stray_ring_requests() {
        let model = Mlx5Model::new(ModelConfig {
            capture_wire: true,
            ..ModelConfig::default()
        });
        let (mut pf, mut devs) = model.start(1, Mlx5Config::default()).unwrap();
        pf.set_vf_mac(0, mac(0)).unwrap();
        let d = &mut devs[0];
        d.open_eth(EthConfig {
            log_sq_size: 3,
            log_rq_size: 4,
        })
        .unwrap();
        let f = frame(0, 100);
        let end = d.tx_post_held(&f).unwrap().unwrap();
        assert_eq!(d.tx_held(), 1);
        assert!(matches!(
            d.send(&[&f[..]]),
            Err(Mlx5Error::TxHeld { wqes: 1 })
        ));
        // A ring request that is not the end of a held WQE changes nothing.
        assert!(!d.tx_ring_to(end.wrapping_add(3)).unwrap());
        assert!(!d.tx_ring_to(0).unwrap());
        model.run_for(1_000_000);
        assert!(model.nic().take_wire_capture().is_empty(), "nothing rung");
        assert_eq!(d.tx_take_back_held(), 1);
        assert_eq!(d.tx_held(), 0);
        assert_eq!(d.send(&[&f[..]]).unwrap(), 1);
        model.run_for(1_000_000);
        assert_eq!(model.nic().take_wire_capture().len(), 1);
    }
}

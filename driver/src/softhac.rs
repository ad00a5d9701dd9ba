//! The 82576's SoftHac: HAC semantics in the driver, for adapters without the HAC extension (a
//! real 82576/I350, or QEMU's igb). A checkpointing VF's frames are written into its TX ring as
//! usual, but the tail register (TDT) is only advanced over frames whose epoch is committed.
//! Frames that do not fit in the ring wait in a software queue behind it. Abort and failover
//! take back the descriptors the hardware never saw (the ring beyond TDT belongs to software)
//! and re-write the survivors; unprotect hands everything over.
//!
//! The contract's logic (epochs, the held FIFO, limits, priority, counters) is
//! [`hold::SoftHacCore`], shared with the mlx5 family; this module gives it the igbvf
//! [`VfDriver`] as its `HoldPort` (a ring position is the TX tail after a frame's
//! descriptors) and names the result [`SoftHac`].
//!
//! The hold is the driver's own: [`VfDriver`] remembers the last TDT it wrote, refuses a plain
//! [`VfDriver::send`] while descriptors are held beyond it, and only this crate can move TDT
//! over held descriptors. [`SoftHac::driver`] hands out a [`SoftVfPort`] (receive, counters,
//! link) rather than the driver itself, so no public path rings the doorbell over a held frame.
//!
//! Tagging a VF with a backlog: plain frames queued before [`Hac::set_tagged`] predate the
//! protection, so they are not held; they stay first in the VF's FIFO, go to the hardware as ring
//! space allows, and count in the buffer (`buffered_frames`) until they do. Frames sent after the
//! tag are stamped with the open epoch and wait behind them until their commit.
//!
//! Priority across the VFs this driver owns: released checkpoint frames are handed to the
//! hardware first; plain frames queued through [`SoftHac::send`] follow, and while released
//! checkpoint frames are still waiting for ring space only the guard's worth of plain bytes per
//! [`SoftHac::pump`] goes ahead of them. Once frames are in different VFs' rings the adapter's
//! own arbitration (round robin on the 82576) decides; strict priority on the wire needs the
//! adapter extension.

pub mod hold;

use bytes::Bytes;
use igb_hw::VfIndex;

use crate::backend::{Clock, DmaAllocator, RegisterIo};
use crate::error::DriverError;
#[cfg(doc)]
use crate::hac::Hac;
use crate::hac::VfNumber;
use crate::ring::RxMeta;
use crate::vf::{LinkState, VfDriver, VfStats};
use hold::HoldPort;
pub use hold::{DEFAULT_LIMIT_BYTES, DEFAULT_LIMIT_FRAMES, SoftHacCore};

/// Driver-level HAC over the igbvf VFs a driver owns (the shared core over [`VfDriver`]s).
pub type SoftHac<R, D, C> = SoftHacCore<VfDriver<R, D, C>>;

/// The igbvf TX ring as a hold: descriptors written beyond TDT, TDT advanced only to the
/// committed point, the software tail rewound to TDT to take held descriptors back.
impl<R: RegisterIo, D: DmaAllocator, C: Clock> HoldPort for VfDriver<R, D, C> {
    type Error = DriverError;
    /// The ring tail after a frame's descriptors.
    type Position = u32;
    const MAX_VFS: usize = igb_hw::addr::MAX_VFS;

    fn no_such_vf(vf: VfNumber) -> DriverError {
        DriverError::NoSuchVf(vf)
    }

    fn check_frame_len(&self, len: usize) -> Result<(), DriverError> {
        let max = self.max_frame_len();
        if len > max {
            return Err(DriverError::FrameTooLarge { len, max });
        }
        Ok(())
    }

    fn post_held(&mut self, frame: &Bytes) -> Result<Option<u32>, DriverError> {
        Ok(self.tx_push_held(frame)?.then(|| self.tx_tail()))
    }

    fn ring_to(&mut self, end: u32) -> Result<(), DriverError> {
        self.tx_doorbell_to(end);
        Ok(())
    }

    fn take_back_held(&mut self) {
        if self.tx_held() > 0 {
            self.tx_take_back_held();
        }
    }

    fn send_now(&mut self, frame: &Bytes) -> Result<bool, DriverError> {
        Ok(self.send(std::slice::from_ref(frame))? > 0)
    }
}

/// One VF of a [`SoftHac`], for everything but sending: receive, counters, link, addresses.
/// Sending goes through [`SoftHac::send`], so the hold cannot be bypassed.
pub struct SoftVfPort<'a, R: RegisterIo, D: DmaAllocator, C: Clock> {
    driver: &'a mut VfDriver<R, D, C>,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> SoftVfPort<'_, R, D, C> {
    /// Appends up to `max` received frames to `out`; returns how many.
    pub fn recv(&mut self, out: &mut Vec<Bytes>, max: usize) -> usize {
        self.driver.recv(out, max)
    }

    /// Receives up to `max` frames, calling `each` with the bytes and metadata of each.
    pub fn recv_with_meta(&mut self, max: usize, each: impl FnMut(&[u8], RxMeta)) -> usize {
        self.driver.recv_with_meta(max, each)
    }

    /// Reclaims completed TX descriptors; returns the packets completed.
    pub fn reclaim(&mut self) -> usize {
        self.driver.reclaim()
    }

    /// The VF's traffic counters.
    pub fn stats(&mut self) -> VfStats {
        self.driver.stats()
    }

    /// Link state.
    pub fn link(&mut self) -> LinkState {
        self.driver.link()
    }

    /// The MAC address in use.
    pub fn mac(&self) -> igb_hw::MacAddress {
        self.driver.mac()
    }

    /// Largest frame [`SoftHac::send`] accepts for this VF.
    pub fn max_frame_len(&self) -> usize {
        self.driver.max_frame_len()
    }

    /// The clock the driver waits on.
    pub fn clock(&self) -> &C {
        self.driver.clock()
    }

    /// TX descriptors held beyond TDT (written, not handed to the hardware).
    pub fn tx_held(&self) -> u32 {
        self.driver.tx_held()
    }
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> SoftHacCore<VfDriver<R, D, C>> {
    /// Takes the VF drivers: the driver at position n is VF n for [`SoftHac::send`] and the [`Hac`]
    /// calls (at most [`igb_hw::addr::MAX_VFS`] are addressable; numbers beyond are `NoSuchVf`).
    pub fn new(drivers: Vec<VfDriver<R, D, C>>) -> Self {
        Self::with_ports(drivers)
    }

    /// Receive side, counters and link of `vf`.
    pub fn driver(&mut self, vf: VfIndex) -> Option<SoftVfPort<'_, R, D, C>> {
        self.port_mut(vf.into()).map(|driver| SoftVfPort { driver })
    }

    /// Queues frames on `vf`; returns how many were accepted. A checkpointing VF stops accepting
    /// at its buffer limit (backpressure: the caller keeps the rest, nothing is dropped); with
    /// nothing buffered it takes one frame whatever the limits. A frame
    /// longer than the VF's maximum refuses the whole call with [`DriverError::FrameTooLarge`]
    /// before anything is accepted.
    pub fn send(&mut self, vf: VfIndex, frames: &[Bytes]) -> Result<usize, DriverError> {
        self.send_frames(vf.into(), frames)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_default_limits_are_the_extension_defaults() {
        assert_eq!((DEFAULT_LIMIT_FRAMES, DEFAULT_LIMIT_BYTES), (4096, 4 << 20));
    }
    use crate::model::Model;
    use crate::pf::PfConfig;
    use crate::vf::VfConfig;
    use igb_hw::MacAddress;
    use igb_model::NicConfig;

    #[test]
    fn the_driver_refuses_a_plain_send_over_held_descriptors_and_stray_doorbells() {
        let model = Model::new(NicConfig {
            capture_wire: true,
            ..NicConfig::default()
        });
        let mac = MacAddress([2, 0, 0, 0, 4, 0]);
        let _pf = model
            .start_pf_agent(
                PfConfig {
                    num_vfs: 1,
                    ..PfConfig::default()
                },
                &[Some(mac)],
            )
            .unwrap();
        let mut d = model
            .vf_driver(VfIndex::new(0).unwrap(), VfConfig::default())
            .unwrap();
        let f = igb_hw::frame::build(MacAddress([2, 0xAA, 0, 0, 0, 1]), mac, 0x88B5, &[0; 46]);
        assert!(d.tx_push_held(&f).unwrap());
        let held_tail = d.tx_tail();
        assert_eq!(d.tx_held(), 1);
        assert!(matches!(
            d.send(&[Bytes::from(f.clone())]),
            Err(DriverError::TxHeld { descriptors: 1 })
        ));
        // A doorbell outside the held range (past the tail, or behind TDT) is ignored.
        d.tx_doorbell_to(held_tail + 5);
        assert_eq!(d.tx_held(), 1);
        model.run_for(1_000_000);
        assert!(
            model.nic().take_wire_capture().is_empty(),
            "nothing released"
        );
        d.tx_take_back_held();
        assert_eq!(d.tx_held(), 0);
        assert_eq!(d.send(&[Bytes::from(f)]).unwrap(), 1);
        model.run_for(1_000_000);
        assert_eq!(model.nic().take_wire_capture().len(), 1);
    }
}

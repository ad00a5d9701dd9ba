//! The send path of a function: the SQ doorbell in a UAR page, the send WQEs from the SQ's
//! counter to the doorbell record's send counter, the frame each SEND builds (inline header,
//! VLAN insert, gather through the function's IOMMU, checksum offload), the frame to the
//! E-Switch, and the completion (a CQE when the WQE asks for one, an error CQE for a bad WQE).
//!
//! Sources: Linux `en_tx.c` (`mlx5e_sq_xmit_wqe`, `mlx5e_txwqe_build_eseg_csum`,
//! `mlx5e_notify_hw`), `en/txrx.h` (`mlx5e_notify_hw`: record, then the 8-byte doorbell),
//! `en_main.c`, `include/linux/mlx5/qp.h` (segments, `fm_ce_se`), `mlx5_ifc.h`; rdma-core
//! `providers/mlx5` (error CQE syndromes).
//!
//! The doorbell is one 8-byte write of the last posted WQE's control-segment head
//! ([`SendDoorbell`]) at the start of a doorbell (BlueFlame) register of the SQ's UAR page,
//! written after the doorbell record: the device reads the record's send counter and executes
//! the WQEs from its own counter up to it, 64-byte blocks wrapping around the ring. A doorbell
//! naming an unknown SQ, an SQ of another page or not ready, a record counter more than the
//! ring ahead, or a WQE index outside the posted window is refused and counted; BlueFlame
//! copies of the WQE (writes past the register's first 8 bytes) are not modelled.
//!
//! Each WQE: NOP completes; SEND builds a frame; LSO builds one from its inlined headers and
//! its data and cuts it at the MSS (`packet::segment`), each segment a frame; any other
//! opcode, a DS count
//! of 0 or past the posted blocks, a malformed Ethernet segment, an inline header shorter
//! than the SQ's minimum inline mode, or a frame shorter than an Ethernet header or longer
//! than [`MAX_FRAME_LEN`] is a local QP operation error (length errors: local length error);
//! a DMA fault reading the ring or a gather buffer is a local protection error. Errors write
//! an error CQE (opcode REQ_ERR) whatever the completion mode and move the SQ to ERR: that
//! queue stops, nothing else does. Frames shorter than 60 bytes are padded with zeros.

use bytes::Bytes;
use hw_common::Iova;
use mlx5_hw::caps::EthernetCaps;
use mlx5_hw::commands::queues::QueueState;
use mlx5_hw::cqe::{CqeOpcode, CqeRepr, CqeSyndrome, ErrCqeRepr};
use mlx5_hw::uar::{SendDoorbell, SendDoorbellRepr, WqDbRecord};
use mlx5_hw::wqe::{
    CqUpdate, CtrlSeg, CtrlSegRepr, EthInsert, SendDataSeg, SendOpcode, SendWqeRepr, WQEBB_LEN,
    cs_flags, wqebb_count,
};

use super::Mlx5Nic;
use super::datapath::TxVerdict;
use crate::caps;
use crate::counters::QueueCounters;
use crate::function::FunctionId;
use crate::mkey::{self, Access, Mkeys};
use crate::packet::{self, ETH_HLEN, Layout};
use crate::wq::{SqState, WqRing};

/// The largest frame a SEND may build (the port MTU is not modelled; 9 KiB jumbo frames and a
/// VLAN tag fit).
pub const MAX_FRAME_LEN: usize = 10240;
/// Frames shorter than this are padded with zeros (mlx5e does not pad).
pub const MIN_FRAME_LEN: usize = 60;
/// The largest frame an LSO WQE may describe before it is cut (mlx5e's GSO maximum is
/// 64 KiB without BIG TCP).
pub const MAX_LSO_LEN: usize = 256 * 1024;
/// The most WQE basic blocks one WQE may take (63 data segments).
pub const MAX_WQEBBS: usize = 16;

/// Why a send WQE failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxError {
    /// The error CQE's syndrome.
    pub syndrome: CqeSyndrome,
    /// A DMA fault (counted as such).
    pub dma_fault: bool,
}

const QP_OP: TxError = TxError {
    syndrome: CqeSyndrome::LocalQpOpErr,
    dma_fault: false,
};
const LENGTH: TxError = TxError {
    syndrome: CqeSyndrome::LocalLengthErr,
    dma_fault: false,
};
const PROTECTION: TxError = TxError {
    syndrome: CqeSyndrome::LocalProtErr,
    dma_fault: true,
};

/// The WQE at counter `counter` of `ring`, unwrapped: its WQE basic blocks (as many as its
/// DS count needs, at most `posted`) read with `read`.
pub(crate) fn read_wqe(
    ring: &WqRing,
    counter: u16,
    posted: u32,
    read: impl Fn(u64, &mut [u8]) -> bool,
) -> Result<Vec<u8>, TxError> {
    let block = |k: u16, buf: &mut [u8]| {
        ring.entry_iova(counter.wrapping_add(k))
            .is_some_and(|at| read(at, buf))
    };
    let mut wqe = vec![0u8; WQEBB_LEN];
    if !block(0, &mut wqe) {
        return Err(PROTECTION);
    }
    let ds = CtrlSeg::new_checked(&wqe[..]).map_or(0, |c| c.ds_count());
    let blocks = wqebb_count(ds);
    if blocks == 0 || blocks > MAX_WQEBBS || blocks as u32 > posted {
        return Err(QP_OP);
    }
    wqe.resize(blocks * WQEBB_LEN, 0);
    for k in 1..blocks {
        if !block(k as u16, &mut wqe[k * WQEBB_LEN..(k + 1) * WQEBB_LEN]) {
            return Err(PROTECTION);
        }
    }
    Ok(wqe)
}

/// The frame a SEND WQE describes: inline header (or VLAN insert), inline data and gathered
/// buffers (`gather(lkey, address, length)`: `None` for a key that does not allow it or a DMA
/// fault), checked against the minimum inline `mode` (0 none,
/// 1 L2, 2 IP, 3 TCP/UDP), checksums inserted when `csum` (the capability) and the WQE asks.
pub(crate) fn build_frame(
    wqe: &SendWqeRepr,
    min_inline: u8,
    csum: bool,
    gather: impl FnMut(u32, u64, u32) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, TxError> {
    build(wqe, min_inline, csum, MAX_FRAME_LEN, gather)
}

/// The frames an LSO WQE describes: its frame (all headers inline, up to [`MAX_LSO_LEN`])
/// cut at the Ethernet segment's MSS, each segment at most [`MAX_FRAME_LEN`] bytes with its
/// headers and checksums fixed (`packet::segment`).
pub(crate) fn build_lso(
    wqe: &SendWqeRepr,
    gather: impl FnMut(u32, u64, u32) -> Option<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, TxError> {
    let frame = build(wqe, 3, false, MAX_LSO_LEN, gather)?;
    let mss = usize::from(wqe.eth.as_ref().map_or(0, |e| e.mss));
    let segs = packet::segment(&frame, mss).ok_or(QP_OP)?;
    if segs.iter().any(|s| s.len() > MAX_FRAME_LEN) {
        return Err(LENGTH);
    }
    Ok(segs
        .into_iter()
        .map(|mut s| {
            if s.len() < MIN_FRAME_LEN {
                s.resize(MIN_FRAME_LEN, 0);
            }
            s
        })
        .collect())
}

fn build(
    wqe: &SendWqeRepr,
    min_inline: u8,
    csum: bool,
    max_len: usize,
    mut gather: impl FnMut(u32, u64, u32) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, TxError> {
    let Some(eth) = &wqe.eth else {
        return Err(QP_OP);
    };
    let mut frame = Vec::new();
    let (inline_len, vlan) = match &eth.insert {
        EthInsert::InlineHeader(h) => {
            frame.extend_from_slice(h);
            (h.len(), None)
        }
        EthInsert::Vlan { tci, svlan } => (0, Some((*tci, *svlan))),
        EthInsert::Unknown { .. } => return Err(QP_OP),
    };
    for seg in &wqe.data {
        match seg {
            SendDataSeg::Inline(bytes) => frame.extend_from_slice(bytes),
            SendDataSeg::Pointer(d) => {
                let len = d.len();
                if frame.len() + len as usize > max_len {
                    return Err(LENGTH);
                }
                let bytes = gather(d.lkey, d.addr.0, len).ok_or(PROTECTION)?;
                frame.extend_from_slice(&bytes);
            }
        }
        if frame.len() > max_len {
            return Err(LENGTH);
        }
    }
    if frame.len() < ETH_HLEN {
        return Err(LENGTH);
    }
    if inline_len < Layout::parse(&frame).header_len(min_inline.min(3)) {
        return Err(QP_OP);
    }
    if let Some((tci, svlan)) = vlan {
        frame = packet::insert_vlan(&frame, tci, svlan).ok_or(LENGTH)?;
    }
    let (l3, l4) = (
        eth.cs_flags & cs_flags::L3_CSUM != 0,
        eth.cs_flags & cs_flags::L4_CSUM != 0,
    );
    if csum && (l3 || l4) {
        packet::insert_checksums(&mut frame, l3, l4);
    }
    if frame.len() < MIN_FRAME_LEN && max_len == MAX_FRAME_LEN {
        frame.resize(MIN_FRAME_LEN, 0);
    }
    Ok(frame)
}

/// What one WQE came to.
enum Step {
    /// Nothing (more) to do.
    Idle,
    /// Frames for the E-Switch (one, or an LSO's segments), then the completion.
    Frames(Vec<Vec<u8>>, CtrlSegRepr, u16),
    /// No frame (NOP): the completion only.
    Complete(CtrlSegRepr, u16),
    /// An error CQE; the SQ goes to ERR.
    Error(TxError, u8),
}

/// Executes the WQE at the SQ's counter (up to building its frame).
fn next_step(
    sq: &SqState,
    mkeys: &Mkeys,
    read: &impl Fn(u64, &mut [u8]) -> bool,
    csum: bool,
) -> Step {
    if sq.state != QueueState::Ready || sq.stalled {
        return Step::Idle;
    }
    let posted = sq.ring.posted(sq.consumer, sq.producer).unwrap_or(0);
    if posted == 0 {
        return Step::Idle;
    }
    let raw = match read_wqe(&sq.ring, sq.consumer, posted, read) {
        Ok(raw) => raw,
        Err(e) => return Step::Error(e, 0),
    };
    let wqe = match SendWqeRepr::parse(&raw) {
        Ok(w) => w,
        Err(_) => return Step::Error(QP_OP, raw.get(3).copied().unwrap_or(0)),
    };
    let opcode = u8::from(wqe.ctrl.opcode);
    let blocks = wqe.wqebb_count() as u16;
    let gather = |lkey: u32, addr: u64, len: u32| {
        let mut b = vec![0u8; len as usize];
        (mkey::allows(mkeys, lkey, sq.ring.pd, addr, u64::from(len), Access::Read)
            && read(addr, &mut b))
        .then_some(b)
    };
    match wqe.ctrl.opcode {
        SendOpcode::Nop => Step::Complete(wqe.ctrl, blocks),
        // An SQ without a TIS has no transport to send through.
        _ if sq.tisn == crate::wq::NO_TIS => Step::Error(QP_OP, opcode),
        SendOpcode::Send => match build_frame(&wqe, u8::from(sq.min_inline), csum, gather) {
            Ok(frame) => Step::Frames(vec![frame], wqe.ctrl, blocks),
            Err(e) => Step::Error(e, opcode),
        },
        SendOpcode::Lso if csum => match build_lso(&wqe, gather) {
            Ok(frames) => Step::Frames(frames, wqe.ctrl, blocks),
            Err(e) => Step::Error(e, opcode),
        },
        _ => Step::Error(QP_OP, opcode),
    }
}

impl Mlx5Nic {
    /// Adds to the queue counters of the device and of function `f`.
    pub(crate) fn count_queues(&mut self, f: FunctionId, op: impl Fn(&mut QueueCounters)) {
        op(&mut self.counters.queues);
        if let Some(func) = self.functions.get_mut(f.slot()).filter(|x| x.id == f) {
            op(&mut func.counters.queues);
        }
    }

    /// The SQ doorbell: `data` written at `offset` of a doorbell register of UAR page `uar`.
    pub(crate) fn sq_doorbell(&mut self, f: FunctionId, uar: u32, offset: u32, data: &[u8]) {
        let refused = |nic: &mut Mlx5Nic| nic.count_queues(f, |q| q.sq_doorbell_errors += 1);
        if offset != 0 || data.len() != mlx5_hw::uar::SEND_DOORBELL_LEN {
            return refused(self);
        }
        let Ok(db) = SendDoorbell::new_checked(data).map(|v| SendDoorbellRepr::parse(&v)) else {
            return refused(self);
        };
        let Some(func) = self.function_mut(f) else {
            return;
        };
        let iommu = &func.iommu;
        let Some(sq) = func
            .state
            .sqs
            .get_mut(&db.sqn)
            .filter(|sq| sq.ring.uar == uar && sq.state == QueueState::Ready)
        else {
            return refused(self);
        };
        // The record was written before the doorbell (the driver's wmb orders them).
        let mut rec = [0u8; mlx5_hw::uar::WQ_DB_RECORD_LEN];
        if iommu.read(Iova(sq.ring.dbr_addr), &mut rec).is_err() {
            sq.state = QueueState::Error;
            self.count_queues(f, |q| {
                q.sq_doorbell_errors += 1;
                q.tx_dma_faults += 1;
            });
            return;
        }
        let producer = WqDbRecord::new_checked(&rec[..]).map_or(0, |r| r.snd_counter());
        let in_window = sq
            .ring
            .posted(sq.consumer, producer)
            .is_some_and(|n| u32::from(db.wqe_index.wrapping_sub(sq.consumer)) < n);
        if !in_window {
            return refused(self);
        }
        sq.producer = producer;
        self.count_queues(f, |q| q.sq_doorbells += 1);
        self.run_sq(f, db.sqn);
    }

    /// Executes SQ `sqn` of `f` until it is idle, stalls on backpressure or fails.
    pub(crate) fn run_sq(&mut self, f: FunctionId, sqn: u32) {
        let csum = EthernetCaps::new_checked(&caps::ethernet()[..]).is_ok_and(|e| e.csum_cap());
        loop {
            let Some(func) = self.function_mut(f) else {
                return;
            };
            let iommu = &func.iommu;
            let read = |at: u64, buf: &mut [u8]| iommu.read(Iova(at), buf).is_ok();
            let Some(sq) = func.state.sqs.get(&sqn) else {
                return;
            };
            let (cqn, counter, user_index) = (sq.cqn, sq.consumer, sq.user_index);
            match next_step(sq, &func.state.mkeys, &read, csum) {
                Step::Idle => return,
                Step::Complete(ctrl, blocks) => {
                    self.complete_wqe(f, sqn, cqn, ctrl, counter, blocks, user_index);
                }
                Step::Frames(frames, ctrl, blocks) => {
                    let done = sq.frames_sent as usize;
                    for (k, frame) in frames.into_iter().enumerate().skip(done) {
                        let len = frame.len() as u64;
                        match self.eswitch_transmit(f, Bytes::from(frame)) {
                            TxVerdict::Backpressure => {
                                if let Some(sq) = self
                                    .function_mut(f)
                                    .and_then(|func| func.state.sqs.get_mut(&sqn))
                                {
                                    sq.stalled = true;
                                    sq.frames_sent = k as u32;
                                }
                                self.count_queues(f, |q| q.tx_backpressure += 1);
                                return;
                            }
                            TxVerdict::Accepted => self.count_queues(f, |q| {
                                q.tx_frames += 1;
                                q.tx_bytes += len;
                            }),
                            TxVerdict::Dropped => {
                                self.count_queues(f, |q| q.tx_eswitch_drops += 1);
                            }
                        }
                    }
                    self.complete_wqe(f, sqn, cqn, ctrl, counter, blocks, user_index);
                }
                Step::Error(e, opcode) => {
                    if let Some(sq) = self
                        .function_mut(f)
                        .and_then(|func| func.state.sqs.get_mut(&sqn))
                    {
                        sq.state = QueueState::Error;
                    }
                    self.count_queues(f, |q| {
                        q.tx_error_cqes += 1;
                        q.tx_dma_faults += u64::from(e.dma_fault);
                    });
                    let cqe = ErrCqeRepr {
                        srqn_uidx: user_index,
                        syndrome: e.syndrome,
                        s_wqe_opcode: opcode,
                        qpn: sqn,
                        wqe_counter: counter,
                        opcode: CqeOpcode::ReqErr,
                        ..ErrCqeRepr::default()
                    };
                    self.post_cqe_bytes(f, cqn, cqe.to_bytes(), false);
                    return;
                }
            }
        }
    }

    /// A WQE done: the SQ's counter moves past it and, when it asked, a REQ CQE.
    #[allow(clippy::too_many_arguments)]
    fn complete_wqe(
        &mut self,
        f: FunctionId,
        sqn: u32,
        cqn: u32,
        ctrl: CtrlSegRepr,
        counter: u16,
        blocks: u16,
        user_index: u32,
    ) {
        if let Some(sq) = self
            .function_mut(f)
            .and_then(|func| func.state.sqs.get_mut(&sqn))
        {
            sq.consumer = counter.wrapping_add(blocks);
            sq.frames_sent = 0;
        }
        self.count_queues(f, |q| q.tx_wqes += 1);
        if matches!(ctrl.ce, CqUpdate::Always | CqUpdate::AlwaysAndEqe) {
            let cqe = CqeRepr {
                srqn_uidx: user_index,
                qpn: sqn,
                wqe_counter: counter,
                opcode: CqeOpcode::Req,
                solicited: ctrl.solicited,
                ..CqeRepr::default()
            };
            self.post_cqe(f, cqn, &cqe);
        }
    }

    /// Every SQ stalled on backpressure carries on.
    #[allow(dead_code)] // Through `service_queues`, which the E-Switch calls.
    pub(crate) fn service_stalled_sqs(&mut self) {
        let stalled: Vec<(FunctionId, u32)> = self
            .functions
            .iter()
            .flat_map(|func| {
                func.state
                    .sqs
                    .iter()
                    .filter(|(_, sq)| sq.stalled)
                    .map(move |(sqn, _)| (func.id, *sqn))
            })
            .collect();
        for (f, sqn) in stalled {
            if let Some(sq) = self
                .function_mut(f)
                .and_then(|func| func.state.sqs.get_mut(&sqn))
            {
                sq.stalled = false;
            }
            self.run_sq(f, sqn);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mlx5_hw::wqe::{DataSegRepr, EthSegRepr};

    const HEADER: [u8; 14] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5,
    ];

    fn send(insert: EthInsert, data: Vec<SendDataSeg>) -> SendWqeRepr {
        let mut w = SendWqeRepr {
            ctrl: CtrlSegRepr {
                opcode: SendOpcode::Send,
                ..CtrlSegRepr::default()
            },
            eth: Some(EthSegRepr {
                insert,
                ..EthSegRepr::default()
            }),
            data,
        };
        w.ctrl.ds_count = w.required_ds() as u8;
        w
    }

    fn pointer(addr: u64, len: u32) -> SendDataSeg {
        SendDataSeg::Pointer(DataSegRepr {
            byte_count: len,
            lkey: 0,
            addr: Iova(addr),
        })
    }

    fn memory(_lkey: u32, addr: u64, len: u32) -> Option<Vec<u8>> {
        (addr < 0x1000).then(|| (0..len).map(|i| (addr as u32 + i) as u8).collect())
    }

    #[test]
    fn inline_header_then_gathered_buffers_in_order() {
        let w = send(
            EthInsert::InlineHeader(HEADER.to_vec()),
            vec![
                pointer(0x100, 40),
                SendDataSeg::Inline(vec![9; 3]),
                pointer(0x10, 20),
            ],
        );
        let f = build_frame(&w, 1, true, memory).unwrap();
        assert_eq!(&f[..14], &HEADER);
        assert_eq!(f[14], 0x00);
        assert_eq!(f[53], 39);
        assert_eq!(&f[54..57], &[9, 9, 9]);
        assert_eq!(&f[57..77], &(0x10u8..0x24).collect::<Vec<_>>()[..]);
        assert_eq!(f.len(), 77);
    }

    #[test]
    fn minimum_inline_short_frames_faults_and_vlan_insert() {
        // Nothing inline while L2 is required.
        let w = send(EthInsert::InlineHeader(vec![]), vec![pointer(0x0, 64)]);
        assert_eq!(build_frame(&w, 1, false, memory), Err(QP_OP));
        assert_eq!(build_frame(&w, 0, false, memory).unwrap().len(), 64);
        // Shorter than an Ethernet header; padded to 60 otherwise.
        let w = send(EthInsert::InlineHeader(HEADER[..10].to_vec()), vec![]);
        assert_eq!(build_frame(&w, 0, false, memory), Err(LENGTH));
        let w = send(EthInsert::InlineHeader(HEADER.to_vec()), vec![]);
        assert_eq!(
            build_frame(&w, 1, false, memory).unwrap().len(),
            MIN_FRAME_LEN
        );
        // A buffer the IOMMU does not map.
        let w = send(
            EthInsert::InlineHeader(HEADER.to_vec()),
            vec![pointer(0x5000, 4)],
        );
        assert_eq!(build_frame(&w, 1, false, memory), Err(PROTECTION));
        // Too long.
        let w = send(
            EthInsert::InlineHeader(HEADER.to_vec()),
            vec![pointer(0, 20000)],
        );
        assert_eq!(build_frame(&w, 1, false, memory), Err(LENGTH));
        // VLAN insert: the tag after the MACs of the gathered frame.
        let w = send(
            EthInsert::Vlan {
                tci: 0x0123,
                svlan: false,
            },
            vec![pointer(0x0, 64)],
        );
        let f = build_frame(&w, 0, false, memory).unwrap();
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x01, 0x23]);
        assert_eq!(f[16], 12);
    }

    #[test]
    fn wqes_are_read_across_the_ring_end() {
        let ring = WqRing {
            log_size: 2,
            log_stride: 6,
            log_page_size: 0,
            pas: vec![0x1000],
            dbr_addr: 0,
            pd: 1,
            uar: 4,
        };
        // Block 3 (0x10C0) holds a control segment of 8 DS (2 blocks): the second is block 0.
        let read = |at: u64, buf: &mut [u8]| {
            buf.fill((at >> 6) as u8);
            if at == 0x10C0 {
                buf[..8].copy_from_slice(&[0, 0, 0, 0x0a, 0, 0, 1, 8]);
            }
            true
        };
        let w = read_wqe(&ring, 3, 2, read).unwrap();
        assert_eq!(w.len(), 128);
        assert_eq!(w[64], 0x40, "block 0 follows block 3");
        assert_eq!(
            read_wqe(&ring, 3, 1, read),
            Err(QP_OP),
            "beyond the posted blocks"
        );
        assert_eq!(read_wqe(&ring, 3, 2, |_, _| false), Err(PROTECTION));
    }
}

//! The receive path of a function: a frame the E-Switch delivers is steered (the NIC RX flow
//! tables, `crate::steering`) to a TIR, the TIR picks an RQ (direct, or an RQT entry by the
//! Toeplitz hash), and the frame is written into the RQ's next receive WQE with a RESP_SEND
//! CQE (byte count, WQE counter, checksum results, stripped VLAN tag, flow tag, RSS hash).
//!
//! Sources: Linux `en_rx.c` (`mlx5e_handle_rx_cqe`, `mlx5e_build_rx_skb`,
//! `mlx5e_handle_csum`, `mlx5e_handle_rx_err_cqe`), `en_main.c` (RQ doorbell record),
//! `include/linux/mlx5/device.h` (CQE fields), `lib/fs_ttc.c` (the steering mlx5e builds).
//!
//! The RQ has no MMIO doorbell: the device reads the receive counter of the RQ's doorbell
//! record when a frame arrives. Every frame not delivered is counted: no steering rule (miss),
//! a drop rule, an empty RQT, an RQ not ready, no WQE posted (out of buffer), a record counter
//! more than the ring ahead. A frame longer than the WQE's buffers completes that WQE with a
//! RESP_ERR CQE (local length error; the RQ stays ready, as for mlx5e it needs no recovery); a
//! DMA fault reading the WQE or writing a buffer completes it with a local protection error
//! and moves the RQ to ERR.

use hw_common::Iova;
use mlx5_hw::caps::EthernetCaps;
use mlx5_hw::commands::queues::QueueState;
use mlx5_hw::commands::rx::rx_hash_fn;
use mlx5_hw::cqe::{
    CqeOpcode, CqeRepr, CqeSyndrome, ErrCqeRepr, L3HdrType, L4HdrType, hds_ip_ext, rss_hash_type,
};
use mlx5_hw::uar::WqDbRecord;
use mlx5_hw::wqe::RecvWqeRepr;

use super::Mlx5Nic;
use super::datapath::RxVerdict;
use crate::caps;
use crate::function::FunctionId;
use crate::mkey::{self, Access};
use crate::packet::{self, IPPROTO_TCP, IPPROTO_UDP, L3, Layout};
use crate::steering::Steered;
use crate::wq::{RqState, TirDispatch, tir_target};

/// The CQE fields of a received frame that come from the frame itself.
pub(crate) fn rx_cqe_fields(frame: &[u8], csum: bool) -> CqeRepr {
    let l = Layout::parse(frame);
    let l3 = match l.l3 {
        L3::V4 { .. } => L3HdrType::Ipv4,
        L3::V6 { .. } => L3HdrType::Ipv6,
        L3::None => L3HdrType::None,
    };
    let l4 = match (l.l4_offset, l.l4_proto()) {
        (Some(at), Some(IPPROTO_TCP)) => {
            let flags = frame.get(at + 13).copied().unwrap_or(0);
            let doff = usize::from(frame.get(at + 12).copied().unwrap_or(0) >> 4) * 4;
            let data = l.l3_end(frame.len()) > at + doff;
            match (flags & 0x10 != 0, data) {
                (false, _) => L4HdrType::TcpNoAck,
                (true, false) => L4HdrType::TcpAckNoData,
                (true, true) => L4HdrType::TcpAckAndData,
            }
        }
        (Some(_), Some(IPPROTO_UDP)) => L4HdrType::Udp,
        _ => L4HdrType::None,
    };
    let mut cqe = CqeRepr {
        l3_hdr_type: l3,
        l4_hdr_type: l4,
        byte_cnt: frame.len() as u32,
        opcode: CqeOpcode::RespSend,
        ..CqeRepr::default()
    };
    if csum {
        let c = packet::rx_checksum(frame);
        cqe.hds_ip_ext = hds_ip_ext::L2_OK
            | if c.l3_ok && l.l3 != L3::None {
                hds_ip_ext::L3_OK
            } else {
                0
            }
            | if c.l4_ok { hds_ip_ext::L4_OK } else { 0 };
        cqe.check_sum = c.check_sum;
    }
    cqe
}

/// The RSS hash of a frame under an indirect TIR's hash (0 and type 0 without one).
fn rss(frame: &[u8], dispatch: &TirDispatch) -> (u32, u8) {
    let TirDispatch::Indirect {
        hash_fn,
        key,
        selector,
        ..
    } = dispatch
    else {
        return (0, 0);
    };
    if *hash_fn != rx_hash_fn::TOEPLITZ && *hash_fn != rx_hash_fn::INVERTED_XOR8 {
        return (0, 0);
    }
    let Some(input) = packet::rss_input(frame, *selector) else {
        return (0, 0);
    };
    let v6 = selector >> 31 == 1;
    let ports = selector & 0xC != 0;
    let udp = (selector >> 30) & 1 == 1;
    let kind = if v6 {
        rss_hash_type::IPV6
    } else {
        rss_hash_type::IPV4
    } | match (ports, udp) {
        (false, _) => 0,
        (true, false) => rss_hash_type::TCP,
        (true, true) => rss_hash_type::UDP,
    };
    let hash = if *hash_fn == rx_hash_fn::TOEPLITZ {
        packet::toeplitz(key, &input)
    } else {
        packet::inverted_xor8(&input)
    };
    (hash, kind)
}

/// What writing a frame into an RQ came to.
enum Fill {
    /// Written: the WQE counter used.
    Done(u16),
    /// Dropped before any WQE (counted by the caller by this reason).
    OutOfBuffer,
    /// The record counter jumped beyond the ring.
    BadRecord,
    /// A WQE completed with an error: its counter, syndrome, whether it was a DMA fault.
    Error(u16, CqeSyndrome, bool),
}

/// Writes `frame` into the next WQE of `rq` (`read` through the IOMMU; `write(lkey, address,
/// bytes)` checks the key and writes through the IOMMU).
fn fill(
    rq: &mut RqState,
    frame: &[u8],
    read: impl Fn(u64, &mut [u8]) -> bool,
    write: impl Fn(u32, u64, &[u8]) -> bool,
) -> Fill {
    let mut rec = [0u8; mlx5_hw::uar::WQ_DB_RECORD_LEN];
    let counter = rq.consumer;
    if !read(rq.ring.dbr_addr, &mut rec) {
        return Fill::Error(counter, CqeSyndrome::LocalProtErr, true);
    }
    let producer = WqDbRecord::new_checked(&rec[..]).map_or(0, |r| r.rcv_counter());
    match rq.ring.posted(counter, producer) {
        None => return Fill::BadRecord,
        Some(0) => return Fill::OutOfBuffer,
        Some(_) => rq.producer = producer,
    }
    let mut stride = vec![0u8; rq.ring.stride()];
    let at = rq.ring.entry_iova(counter);
    if !at.is_some_and(|at| read(at, &mut stride)) {
        return Fill::Error(counter, CqeSyndrome::LocalProtErr, true);
    }
    rq.consumer = counter.wrapping_add(1);
    let Ok(wqe) = RecvWqeRepr::parse(&stride) else {
        return Fill::Error(counter, CqeSyndrome::LocalQpOpErr, false);
    };
    if wqe.capacity() < frame.len() as u64 {
        return Fill::Error(counter, CqeSyndrome::LocalLengthErr, false);
    }
    let mut left = frame;
    for seg in &wqe.segments {
        if left.is_empty() {
            break;
        }
        let n = left.len().min(seg.len() as usize);
        if !write(seg.lkey, seg.addr.0, &left[..n]) {
            return Fill::Error(counter, CqeSyndrome::LocalProtErr, true);
        }
        left = &left[n..];
    }
    Fill::Done(counter)
}

impl Mlx5Nic {
    /// The receive path of function `to` (see the module documentation).
    pub(crate) fn receive(&mut self, to: FunctionId, frame: &[u8]) -> RxVerdict {
        let exists = self.function_enabled(to)
            && self
                .function(to)
                .is_some_and(|func| func.state.hca == crate::HcaState::Initialized);
        if !exists {
            self.counters.rx_no_function += 1;
            return RxVerdict::Dropped;
        }
        let headers = packet::match_headers(frame);
        let Some(func) = self.function_mut(to) else {
            return RxVerdict::Dropped;
        };
        let st = &mut func.state;
        let (tirn, flow_tag) = match st.steering.lookup(&headers) {
            Steered::Tir { tirn, flow_tag } => (tirn, flow_tag),
            Steered::Dropped => {
                self.count_queues(to, |q| q.rx_rule_drops += 1);
                return RxVerdict::Dropped;
            }
            Steered::Missed => {
                self.count_queues(to, |q| q.rx_steering_misses += 1);
                return RxVerdict::Dropped;
            }
        };
        let target = st.tirs.get(&tirn).and_then(|tir| {
            let (hash, kind) = rss(frame, &tir.dispatch);
            tir_target(tir, &st.rqts, hash).map(|rqn| (rqn, hash, kind))
        });
        let Some((rqn, hash, hash_kind)) = target else {
            self.count_queues(to, |q| q.rx_no_rq += 1);
            return RxVerdict::Dropped;
        };
        let Some(rq) = st
            .rqs
            .get_mut(&rqn)
            .filter(|rq| rq.state == QueueState::Ready)
        else {
            self.count_queues(to, |q| q.rx_rq_not_ready += 1);
            return RxVerdict::Dropped;
        };
        let vlan_cap = EthernetCaps::new_checked(&caps::ethernet()[..]).is_ok_and(|e| e.vlan_cap());
        let csum = EthernetCaps::new_checked(&caps::ethernet()[..]).is_ok_and(|e| e.csum_cap());
        let stripped = if vlan_cap && !rq.vsd {
            packet::strip_cvlan(frame)
        } else {
            None
        };
        let data: &[u8] = stripped.as_ref().map_or(frame, |(f, _)| f);
        let iommu = &func.iommu;
        let mkeys = &st.mkeys;
        let pd = rq.ring.pd;
        let read = |at: u64, buf: &mut [u8]| iommu.read(Iova(at), buf).is_ok();
        let write = |lkey: u32, at: u64, buf: &[u8]| {
            mkey::allows(mkeys, lkey, pd, at, buf.len() as u64, Access::Write)
                && iommu.write(Iova(at), buf).is_ok()
        };
        let (cqn, user_index, counter_set) = (rq.cqn, rq.user_index, rq.counter_set);
        let outcome = fill(rq, data, read, write);
        if let Fill::Error(_, _, true) = outcome {
            rq.state = QueueState::Error;
        }
        match outcome {
            Fill::OutOfBuffer => {
                if let Some(n) = st.q_counters.get_mut(&counter_set) {
                    *n = n.wrapping_add(1);
                }
                self.count_queues(to, |q| q.rx_out_of_buffer += 1);
                RxVerdict::Dropped
            }
            Fill::BadRecord => {
                self.count_queues(to, |q| q.rq_doorbell_errors += 1);
                RxVerdict::Dropped
            }
            Fill::Error(counter, syndrome, dma) => {
                self.count_queues(to, |q| {
                    q.rx_error_cqes += 1;
                    q.rx_dma_faults += u64::from(dma);
                });
                let cqe = ErrCqeRepr {
                    srqn_uidx: user_index,
                    syndrome,
                    qpn: rqn,
                    wqe_counter: counter,
                    opcode: CqeOpcode::RespErr,
                    ..ErrCqeRepr::default()
                };
                self.post_cqe_bytes(to, cqn, cqe.to_bytes(), false);
                RxVerdict::Dropped
            }
            Fill::Done(counter) => {
                let mut cqe = rx_cqe_fields(data, csum);
                if let Some((_, tci)) = stripped {
                    cqe.vlan_stripped = true;
                    cqe.vlan_info = tci;
                }
                cqe.rss_hash_result = hash;
                cqe.rss_hash_type = hash_kind;
                cqe.srqn_uidx = user_index;
                cqe.qpn = flow_tag;
                cqe.wqe_counter = counter;
                let len = data.len() as u64;
                self.count_queues(to, |q| {
                    q.rx_frames += 1;
                    q.rx_bytes += len;
                });
                self.post_cqe(to, cqn, &cqe);
                RxVerdict::Delivered
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wq::WqRing;
    use mlx5_hw::wqe::{DataSegRepr, RecvWqeRepr};
    use std::cell::RefCell;

    fn rq(producer_record: u16) -> (RqState, RefCell<Vec<u8>>) {
        let ring = WqRing {
            log_size: 2,
            log_stride: 5,
            log_page_size: 0,
            pas: vec![0x1000],
            dbr_addr: 0x2000,
            pd: 1,
            uar: 0,
        };
        let mut mem = vec![0u8; 0x4000];
        mem[0x2002..0x2004].copy_from_slice(&producer_record.to_be_bytes());
        for k in 0..4u64 {
            let w = RecvWqeRepr {
                segments: vec![
                    DataSegRepr {
                        byte_count: 16,
                        lkey: 0,
                        addr: Iova(0x3000 + k * 0x100),
                    },
                    DataSegRepr {
                        byte_count: 64,
                        lkey: 0,
                        addr: Iova(0x3040 + k * 0x100),
                    },
                ],
            };
            let at = 0x1000 + k as usize * 32;
            w.emit(&mut mem[at..at + 32]).unwrap();
        }
        let state = RqState {
            ring,
            state: QueueState::Ready,
            cqn: 0,
            vsd: false,
            user_index: 0,
            flush_in_error: false,
            consumer: 0,
            producer: 0,
            counter_set: 0,
        };
        (state, RefCell::new(mem))
    }

    #[test]
    fn frames_scatter_over_the_wqe_segments_in_order() {
        let (mut q, mem) = rq(2);
        let read = |at: u64, b: &mut [u8]| {
            let m = mem.borrow();
            m.get(at as usize..at as usize + b.len())
                .map(|s| b.copy_from_slice(s))
                .is_some()
        };
        let write = |_lkey: u32, at: u64, b: &[u8]| {
            let mut m = mem.borrow_mut();
            m.get_mut(at as usize..at as usize + b.len())
                .map(|s| s.copy_from_slice(b))
                .is_some()
        };
        let frame: Vec<u8> = (0..40u8).collect();
        assert!(matches!(fill(&mut q, &frame, read, write), Fill::Done(0)));
        assert_eq!(&mem.borrow()[0x3000..0x3010], &frame[..16]);
        assert_eq!(&mem.borrow()[0x3040..0x3058], &frame[16..]);
        let big = vec![1u8; 81];
        assert!(matches!(
            fill(&mut q, &big, read, write),
            Fill::Error(1, CqeSyndrome::LocalLengthErr, false)
        ));
        assert!(matches!(
            fill(&mut q, &frame, read, write),
            Fill::OutOfBuffer
        ));
        assert_eq!(q.consumer, 2);
        mem.borrow_mut()[0x2002..0x2004].copy_from_slice(&9u16.to_be_bytes());
        assert!(matches!(fill(&mut q, &frame, read, write), Fill::BadRecord));
    }

    #[test]
    fn cqe_fields_name_the_headers() {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&[
            0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x10, 0, 0, 0, 0, 0, 0,
        ]);
        packet::insert_checksums(&mut f, true, true);
        let c = rx_cqe_fields(&f, true);
        assert_eq!(
            (c.l3_hdr_type, c.l4_hdr_type),
            (L3HdrType::Ipv4, L4HdrType::TcpAckNoData)
        );
        assert_eq!(
            c.hds_ip_ext,
            hds_ip_ext::L2_OK | hds_ip_ext::L3_OK | hds_ip_ext::L4_OK
        );
        assert_eq!(c.byte_cnt, 54);
        assert_eq!(c.opcode, CqeOpcode::RespSend);
        assert_eq!(rx_cqe_fields(&f, false).hds_ip_ext, 0);
    }
}

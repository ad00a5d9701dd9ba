//! Work queues and transport objects of a function: the send queues (SQ) and receive queues
//! (RQ) with their rings in host memory, the TIS an SQ sends through, the TIR a steering rule
//! delivers to (directly to one RQ, or spread over an RQ table, RQT, by a hash), and the RQT
//! (layouts: `mlx5_hw::commands::{queues, rx}`; behaviour: the PRM's work queue chapter and
//! Linux `mlx5_core` `en_main.c` (`mlx5e_create_sq`, `mlx5e_modify_sq`, `mlx5e_create_rq`),
//! `wq.c`, `en/tir.c`, `en/rqt.c`).
//!
//! A work queue is a cyclic ring of 2^`log_wq_sz` entries of 2^`log_wq_stride` bytes (an SQ:
//! 64-byte WQE basic blocks; an RQ: one receive WQE of data segments each) in pages of 4 KiB
//! << `log_wq_pg_sz` listed in the PAS. Software posts work by moving the 16-bit counter of
//! the queue's doorbell record (`dbr_addr`: receive counter at +0, send counter at +4); an
//! SQ is then rung through its UAR page. The device's own counter (`consumer`) follows.
//!
//! State machine of SQs and RQs (MODIFY_SQ/RQ carry the current state and the new one):
//!
//! ```text
//!  RST ──► RDY ──► ERR        RDY ──► RST, ERR ──► RST, RDY ──► RDY (field changes)
//! ```
//!
//! A queue in RST or ERR does no work. Entering RST sets the device counter back to 0 (as the
//! driver's own counters restart). A bad WQE or a DMA fault moves the queue to ERR by itself.
//!
//! The commands are in `commands::wq_commands` and `commands::tir_commands`; the datapath in
//! `nic::tx` and `nic::rx`.

use std::collections::BTreeMap;

use mlx5_hw::commands::queues::QueueState;
use mlx5_hw::uar::UAR_PAGE_SHIFT;
use mlx5_hw::wqe::InlineMode;

/// The first SQ number CREATE_SQ hands out.
pub const FIRST_SQN: u32 = 0x800;
/// The first RQ number CREATE_RQ hands out.
pub const FIRST_RQN: u32 = 0xC00;
/// The first TIS number CREATE_TIS hands out.
pub const FIRST_TISN: u32 = 0x100;
/// `SqState::tisn` of an SQ created without a TIS (`tis_lst_sz` 0): it executes NOPs only.
pub const NO_TIS: u32 = 0;
/// The first TIR number CREATE_TIR hands out.
pub const FIRST_TIRN: u32 = 0x200;
/// The first RQT number CREATE_RQT hands out.
pub const FIRST_RQTN: u32 = 0x80;
/// Most objects of each kind a function may hold (also bounded by the `log_max_*` caps).
pub const MAX_OBJECTS: usize = 4096;
/// Largest `log_wq_pg_sz` the model takes (4 KiB << 8 = 1 MiB pages).
pub const MAX_LOG_WQ_PAGE_SIZE: u8 = 8;
/// log2 of the SQ stride: 64-byte WQE basic blocks.
pub const LOG_SQ_STRIDE: u8 = 6;
/// Smallest log2 stride of an RQ: one 16-byte data segment.
pub const MIN_LOG_RQ_STRIDE: u8 = 4;
/// Mask of the 16-bit WQE counters.
pub const WQ_COUNTER_MASK: u16 = 0xFFFF;

/// A cyclic work-queue ring in host memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WqRing {
    /// log2 of the number of entries.
    pub log_size: u8,
    /// log2 of the bytes of one entry.
    pub log_stride: u8,
    /// Page size: 4 KiB << `log_page_size`.
    pub log_page_size: u8,
    /// Page addresses of the buffer.
    pub pas: Vec<u64>,
    /// IOVA of the doorbell record.
    pub dbr_addr: u64,
    /// Protection domain.
    pub pd: u32,
    /// UAR page (the SQ's doorbell page).
    pub uar: u32,
}

impl WqRing {
    /// Entries in the ring.
    pub fn size(&self) -> u32 {
        1 << self.log_size
    }

    /// Bytes of one entry.
    pub fn stride(&self) -> usize {
        1 << self.log_stride
    }

    /// Bytes of the whole ring.
    pub fn bytes(&self) -> u64 {
        1u64 << (u32::from(self.log_size) + u32::from(self.log_stride))
    }

    /// IOVA of the entry of counter `counter` (its index is the counter modulo the size).
    pub fn entry_iova(&self, counter: u16) -> Option<u64> {
        let index = u64::from(u32::from(counter) & (self.size() - 1));
        let page = 1u64 << (UAR_PAGE_SHIFT + u32::from(self.log_page_size));
        let byte = index << self.log_stride;
        let pa = self.pas.get(usize::try_from(byte / page).ok()?)?;
        pa.checked_add(byte % page)
    }

    /// Entries posted and not yet done, from the device counter `consumer` to the software
    /// counter `producer`; `None` when the distance is beyond the ring (a counter that jumped).
    pub fn posted(&self, consumer: u16, producer: u16) -> Option<u32> {
        let n = u32::from(producer.wrapping_sub(consumer));
        (n <= self.size()).then_some(n)
    }
}

/// One send queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqState {
    /// The ring of 64-byte WQE basic blocks.
    pub ring: WqRing,
    /// State.
    pub state: QueueState,
    /// The CQ its completions go to.
    pub cqn: u32,
    /// The TIS it sends through ([`NO_TIS`]: none, no frame can leave).
    pub tisn: u32,
    /// Minimum inline headers each SEND must carry (`min_wqe_inline_mode`).
    pub min_inline: InlineMode,
    /// User index (reported in CQEs with CQE version 1).
    pub user_index: u32,
    /// Flush WQEs in error (stored).
    pub flush_in_error: bool,
    /// The device's counter: the next WQE basic block to execute.
    pub consumer: u16,
    /// The send counter last read from the doorbell record.
    pub producer: u16,
    /// A frame of the WQE at `consumer` was refused with backpressure: the queue waits for
    /// `service_queues`.
    pub stalled: bool,
    /// Frames of the WQE at `consumer` (an LSO's segments) already taken by the E-Switch.
    pub frames_sent: u32,
}

/// One receive queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RqState {
    /// The ring of receive WQEs.
    pub ring: WqRing,
    /// State.
    pub state: QueueState,
    /// The CQ its completions go to.
    pub cqn: u32,
    /// VLAN strip disabled (0: a C-VLAN tag is stripped into the CQE).
    pub vsd: bool,
    /// User index (reported in CQEs with CQE version 1).
    pub user_index: u32,
    /// Flush WQEs in error (stored).
    pub flush_in_error: bool,
    /// The device's counter: the next receive WQE to fill.
    pub consumer: u16,
    /// The receive counter last read from the doorbell record.
    pub producer: u16,
    /// The queue counter set its out-of-buffer drops count into (0: none).
    pub counter_set: u8,
}

/// One TIS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TisState {
    /// Transport domain.
    pub transport_domain: u32,
    /// Priority (stored).
    pub prio: u8,
}

/// How a TIR picks its RQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TirDispatch {
    /// Every packet to one RQ.
    Direct {
        /// The RQ.
        rqn: u32,
    },
    /// A hash of the packet picks an entry of an RQT.
    Indirect {
        /// The RQT.
        rqtn: u32,
        /// Hash function (`rx_hash_fn::NONE` or `TOEPLITZ`).
        hash_fn: u8,
        /// The 40-byte Toeplitz key.
        key: Vec<u8>,
        /// The outer hash field selector (`hash_fields`).
        selector: u32,
        /// Symmetric hash (stored; the model hashes as given).
        symmetric: bool,
    },
}

/// One TIR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TirState {
    /// Transport domain.
    pub transport_domain: u32,
    /// Dispatch.
    pub dispatch: TirDispatch,
    /// Self-loopback block bits (stored; the E-Switch decides loopback).
    pub self_lb_block: u8,
}

/// One RQ table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RqtState {
    /// Largest size MODIFY_RQT may set.
    pub max_size: u16,
    /// The RQs, in order.
    pub rqns: Vec<u32>,
}

/// The SQs of a function by number.
pub type Sqs = BTreeMap<u32, SqState>;
/// The RQs of a function by number.
pub type Rqs = BTreeMap<u32, RqState>;
/// The TISes of a function by number.
pub type Tises = BTreeMap<u32, TisState>;
/// The TIRs of a function by number.
pub type Tirs = BTreeMap<u32, TirState>;
/// The RQTs of a function by number.
pub type Rqts = BTreeMap<u32, RqtState>;

/// The RQ a TIR delivers a packet of RSS hash `hash` to (`None`: an empty RQT).
pub fn tir_target(tir: &TirState, rqts: &Rqts, hash: u32) -> Option<u32> {
    match &tir.dispatch {
        TirDispatch::Direct { rqn } => Some(*rqn),
        TirDispatch::Indirect { rqtn, .. } => {
            let rqt = rqts.get(rqtn)?;
            let n = u32::try_from(rqt.rqns.len()).ok().filter(|n| *n > 0)?;
            rqt.rqns.get(usize::try_from(hash % n).ok()?).copied()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ring(log_size: u8, log_stride: u8, pas: Vec<u64>) -> WqRing {
        WqRing {
            log_size,
            log_stride,
            log_page_size: 0,
            pas,
            dbr_addr: 0,
            pd: 1,
            uar: 4,
        }
    }

    #[test]
    fn entries_follow_the_page_list_and_wrap() {
        let r = ring(7, 6, vec![0x1000, 0x9000]);
        assert_eq!(r.entry_iova(0), Some(0x1000));
        assert_eq!(r.entry_iova(63), Some(0x1fc0));
        assert_eq!(r.entry_iova(64), Some(0x9000));
        assert_eq!(r.entry_iova(128), Some(0x1000), "counter 128 is index 0");
        assert_eq!(r.entry_iova(0xFFFF), Some(0x9fc0));
        assert_eq!(ring(7, 6, vec![0x1000]).entry_iova(64), None);
    }

    #[test]
    fn posted_work_is_bounded_by_the_ring_across_the_16_bit_wrap() {
        let r = ring(4, 6, vec![0x1000]);
        assert_eq!(r.posted(0xFFFE, 2), Some(4));
        assert_eq!(r.posted(0, 16), Some(16));
        assert_eq!(r.posted(0, 17), None);
        assert_eq!(r.posted(5, 4), None, "a counter moving backwards");
    }

    #[test]
    fn indirect_tirs_pick_the_rq_by_hash_modulo_the_table() {
        let mut rqts = Rqts::new();
        rqts.insert(
            1,
            RqtState {
                max_size: 4,
                rqns: vec![10, 11, 12],
            },
        );
        let tir = TirState {
            transport_domain: 1,
            dispatch: TirDispatch::Indirect {
                rqtn: 1,
                hash_fn: 2,
                key: vec![0; 40],
                selector: 0,
                symmetric: false,
            },
            self_lb_block: 0,
        };
        assert_eq!(tir_target(&tir, &rqts, 4), Some(11));
        let direct = TirState {
            dispatch: TirDispatch::Direct { rqn: 7 },
            ..tir.clone()
        };
        assert_eq!(tir_target(&direct, &rqts, 4), Some(7));
        rqts.get_mut(&1).unwrap().rqns.clear();
        assert_eq!(tir_target(&tir, &rqts, 4), None);
    }
}

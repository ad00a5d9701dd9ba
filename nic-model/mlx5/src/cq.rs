//! Completion queues: the CQ state, the CQEs the device writes into the CQ's buffer in host
//! memory, the CQ doorbell record and the CQ arm doorbell of the UAR pages (layouts:
//! `mlx5_hw::commands::queues` for the commands and the CQ context, `mlx5_hw::cqe` for the
//! CQE, the doorbell record and the arm doorbell, `mlx5_hw::uar` for the doorbell offset;
//! behaviour: the PRM's CQ chapter and Linux `mlx5_core` `cq.c` (`mlx5_create_cq`,
//! `mlx5_cq_completion`), `mlx5/cq.h` (`mlx5_cq_arm`, `mlx5_cq_set_ci`), `en_main.c`
//! (`mlx5e_create_cq`)).
//!
//! A CQ is a ring of 2^`log_size` 64-byte CQEs (the only CQE size the model takes) starting
//! `page_offset` × 64 bytes into the first of its pages (4 KiB << `log_page_size` each,
//! listed in the PAS). The device writes the CQE of producer counter `p` at ring index
//! `p mod size` with the owner bit `mlx5_hw::cqe::owner_bit(p, log_size)`, the byte holding
//! the owner bit last. Software reports its consumer counter in the CQ's doorbell record
//! (`dbr_addr`, read by the device before each CQE) and arms the CQ with the 64-bit arm
//! doorbell at `CQ_ARM_DOORBELL` of the CQ's UAR page (sequence number, command, consumer
//! counter, CQN). An armed CQ that gains a CQE (any CQE when armed for the next one, a
//! solicited one when armed for solicited CQEs), or that is armed for the next CQE while it
//! holds unconsumed CQEs, posts one completion EQE (`EventData::Completion` with the CQN) to
//! its EQ (`c_eqn`), which interrupts by the EQ's own arm rule; the CQ is then disarmed
//! until armed again.
//!
//! Nothing blocks and nothing panics: a CQE for a full CQ is dropped and counted; a DMA fault
//! while writing a CQE is counted, marks the CQ failed (QUERY_CQ status 0xA) and drops its
//! later CQEs (counted), and touches nothing else.
//!
//! The commands that create, modify, destroy and query CQs are in `commands::cq_commands`;
//! the writing of CQEs (normal and error layouts, by the send and receive paths) and the arm
//! doorbell are methods of the function (`nic::cq_events`).

use std::collections::BTreeMap;

use mlx5_hw::cqe::{CQ_CI_MASK, CQE_LEN};
use mlx5_hw::uar::UAR_PAGE_SHIFT;

/// Largest `log_page_size` of a CQ the model takes (4 KiB << 8 = 1 MiB pages).
pub const MAX_LOG_CQ_PAGE_SIZE: u8 = 8;
/// The first CQ number CREATE_CQ hands out.
pub const FIRST_CQN: u32 = 0x400;
/// Most CQs a function may hold (also bounded by `log_max_cq`).
pub const MAX_CQS: usize = 4096;
/// `cqc.status` of a CQ whose buffer could not be written.
pub const CQ_STATUS_WRITE_FAILURE: u8 = 0xA;

/// Arming state of a CQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CqArm {
    /// No completion event until armed.
    Disarmed,
    /// The next CQE posts a completion event.
    Armed,
    /// The next solicited CQE posts a completion event.
    SolicitedArmed,
}

/// One completion queue of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CqState {
    /// log2 of the number of CQEs.
    pub log_size: u8,
    /// The UAR page whose CQ arm doorbell serves this CQ.
    pub uar: u32,
    /// The EQ its completion events go to.
    pub eqn: u8,
    /// Page size: 4 KiB << `log_page_size`.
    pub log_page_size: u8,
    /// Offset of the first CQE in the first page, in 64-byte units.
    pub page_offset: u8,
    /// Page addresses of the buffer.
    pub pas: Vec<u64>,
    /// IOVA of the doorbell record.
    pub dbr_addr: u64,
    /// Moderation period (stored, not applied: every armed CQE posts its event at once).
    pub period: u16,
    /// Moderation count (stored, not applied).
    pub max_count: u16,
    /// Arming state.
    pub arm: CqArm,
    /// Arm sequence number of the last arm doorbell.
    pub arm_sn: u8,
    /// Producer counter (24 bits, wrapping).
    pub producer: u32,
    /// Consumer counter last seen (doorbell record or arm doorbell, 24 bits).
    pub consumer: u32,
    /// A DMA fault stopped the CQ: later CQEs are dropped (counted).
    pub failed: bool,
    /// CQEs dropped because the CQ was full.
    pub overflows: u64,
}

impl CqState {
    pub(crate) fn size(&self) -> u32 {
        1 << self.log_size
    }

    /// CQEs written and not yet consumed.
    pub fn outstanding(&self) -> u32 {
        self.producer.wrapping_sub(self.consumer) & CQ_CI_MASK
    }

    /// Takes consumer counter `ci` when it moves forward no further than the producer.
    pub(crate) fn consume_to(&mut self, ci: u32) -> bool {
        let ci = ci & CQ_CI_MASK;
        let advance = ci.wrapping_sub(self.consumer) & CQ_CI_MASK;
        if advance > self.outstanding() {
            return false;
        }
        self.consumer = ci;
        true
    }

    /// IOVA of the CQE at ring index `index`.
    pub(crate) fn cqe_iova(&self, index: u32) -> Option<u64> {
        let page = 1u64 << (UAR_PAGE_SHIFT + u32::from(self.log_page_size));
        let byte = u64::from(self.page_offset) * CQE_LEN as u64 + u64::from(index) * CQE_LEN as u64;
        let pa = self.pas.get(usize::try_from(byte / page).ok()?)?;
        pa.checked_add(byte % page)
    }
}

/// The CQs of a function, by number (part of [`FunctionState`](crate::commands::FunctionState)).
pub type Cqs = BTreeMap<u32, CqState>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cq(log_size: u8, page_offset: u8, pas: Vec<u64>) -> CqState {
        CqState {
            log_size,
            uar: 4,
            eqn: 0x10,
            log_page_size: 0,
            page_offset,
            pas,
            dbr_addr: 0,
            period: 0,
            max_count: 0,
            arm: CqArm::Disarmed,
            arm_sn: 0,
            producer: 0,
            consumer: 0,
            failed: false,
            overflows: 0,
        }
    }

    #[test]
    fn cqe_addresses_follow_the_page_offset_and_the_page_list() {
        let c = cq(7, 2, vec![0x1000, 0x9000, 0x5000]);
        assert_eq!(c.cqe_iova(0), Some(0x1080));
        assert_eq!(c.cqe_iova(61), Some(0x1fc0));
        assert_eq!(c.cqe_iova(62), Some(0x9000));
        assert_eq!(c.cqe_iova(125), Some(0x9fc0));
        assert_eq!(c.cqe_iova(127), Some(0x5040));
        assert_eq!(cq(7, 0, vec![0x1000]).cqe_iova(64), None);
    }

    #[test]
    fn the_consumer_moves_up_to_the_producer_across_the_24_bit_wrap() {
        let mut c = cq(4, 0, vec![0x1000]);
        c.producer = 3;
        c.consumer = CQ_CI_MASK - 1;
        assert_eq!(c.outstanding(), 5);
        assert!(!c.consume_to(4));
        assert!(c.consume_to(1));
        assert_eq!(c.outstanding(), 2);
        assert!(c.consume_to(3));
        assert_eq!(c.outstanding(), 0);
        assert!(!c.consume_to(2), "backwards is beyond the producer");
    }
}

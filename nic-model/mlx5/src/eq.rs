//! Event queues: the EQ state, writing EQEs into the EQ's buffer in
//! host memory, the EQ doorbell in the UAR pages, and the interrupt of an armed EQ (layouts:
//! `mlx5_hw::commands::queues` for the commands and the EQ context, `mlx5_hw::eqe` for the
//! EQE and the doorbell, `mlx5_hw::uar` for the doorbell offsets; behaviour: the PRM's EQ
//! chapter and Linux `mlx5_core` `eq.c` (`create_map_eq`, `eq_update_ci`, `mlx5_eq_int`),
//! `cmd.c` (`mlx5_cmd_comp_handler`, event mode), `pagealloc.c` (page requests)).
//!
//! An EQ is a ring of 2^`log_eq_size` 64-byte EQEs starting `page_offset` × 64 bytes into the
//! first of its pages (4 KiB << `log_page_size` each, listed in the PAS). The device writes
//! the EQE of producer counter `p` at ring index `p mod size` with the owner bit
//! `mlx5_hw::cqe::owner_bit(p, log_eq_size)` (0 on the first pass, since drivers start every
//! EQE with owner 1), the owner byte last. The driver reports its consumer counter through
//! the EQ doorbell of the EQ's UAR page: at `EQ_DOORBELL_ARM` it also arms the EQ, at
//! `EQ_DOORBELL_UPDATE_CI` it does not. An armed EQ that gains an EQE, or that is armed while
//! it holds unconsumed EQEs, raises its MSI-X vector and becomes "fired" until armed again.
//!
//! Nothing blocks and nothing panics: an event for a full EQ (producer − consumer = size) is
//! dropped and counted; a DMA fault while writing an EQE is counted, marks the EQ failed
//! (QUERY_EQ status 0xA) and drops its later events (counted), and touches nothing else.
//!
//! The commands that create, destroy and query EQs are in `commands::eq_commands`; the
//! writing of EQEs and the doorbell are methods of the function (`nic::events`).

use std::collections::{BTreeMap, BTreeSet};

use mlx5_hw::eqe::{EQ_CI_MASK, EQE_LEN, EventType};
use mlx5_hw::uar::UAR_PAGE_SHIFT;

/// Largest `log_page_size` of an EQ the model takes (4 KiB << 8 = 1 MiB pages).
pub const MAX_LOG_EQ_PAGE_SIZE: u8 = 8;
/// The first EQ number CREATE_EQ hands out (a ConnectX-4 PF was seen answering 0x10, 0x11 …).
pub const FIRST_EQN: u8 = 0x10;
/// `eqc.status` of an EQ whose buffer could not be written.
pub const EQ_STATUS_WRITE_FAILURE: u8 = 0xA;

/// Arming state of an EQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EqArm {
    /// The next EQE raises the interrupt.
    Armed,
    /// An interrupt was raised (or the EQ was never armed): none until armed again.
    Fired,
    /// Every EQE raises the interrupt.
    AlwaysArmed,
}

/// One event queue of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EqState {
    /// log2 of the number of EQEs.
    pub log_size: u8,
    /// The UAR page whose EQ doorbell serves this EQ.
    pub uar: u32,
    /// MSI-X vector.
    pub vector: u16,
    /// Page size: 4 KiB << `log_page_size`.
    pub log_page_size: u8,
    /// Offset of the first EQE in the first page, in 64-byte units.
    pub page_offset: u8,
    /// Page addresses of the buffer.
    pub pas: Vec<u64>,
    /// Subscribed event types (four 64-bit words, bit `t % 64` of word `t / 64`).
    pub events: [u64; 4],
    /// Arming state.
    pub arm: EqArm,
    /// Producer counter (24 bits, wrapping).
    pub producer: u32,
    /// Consumer counter the driver last reported (24 bits).
    pub consumer: u32,
    /// A DMA fault stopped the EQ: later events are dropped (counted).
    pub failed: bool,
    /// Events dropped because the EQ was full.
    pub overflows: u64,
}

impl EqState {
    /// True when the EQ receives events of `t`.
    pub fn subscribes(&self, t: EventType) -> bool {
        let t = t.raw_value();
        self.events[usize::from(t / 64)] & (1 << (t % 64)) != 0
    }

    pub(crate) fn size(&self) -> u32 {
        1 << self.log_size
    }

    /// EQEs written and not yet consumed.
    pub fn outstanding(&self) -> u32 {
        self.producer.wrapping_sub(self.consumer) & EQ_CI_MASK
    }

    /// IOVA of the EQE at ring index `index`.
    pub(crate) fn eqe_iova(&self, index: u32) -> Option<u64> {
        let page = 1u64 << (UAR_PAGE_SHIFT + u32::from(self.log_page_size));
        let byte = u64::from(self.page_offset) * EQE_LEN as u64 + u64::from(index) * EQE_LEN as u64;
        let pa = self.pas.get(usize::try_from(byte / page).ok()?)?;
        pa.checked_add(byte % page)
    }
}

/// EQs a command-completion event would go to now.
pub(crate) fn subscribers(eqs: &Eqs, t: EventType) -> BTreeSet<u8> {
    eqs.iter()
        .filter(|(_, eq)| eq.subscribes(t))
        .map(|(n, _)| *n)
        .collect()
}

/// The EQs of a function, by number (part of [`FunctionState`](crate::commands::FunctionState)).
pub type Eqs = BTreeMap<u8, EqState>;

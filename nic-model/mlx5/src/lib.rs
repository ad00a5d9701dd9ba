//! The NVIDIA/Mellanox ConnectX (mlx5) family of the adapter model: a ConnectX-6 Dx physical
//! function (0x101D) and its SR-IOV virtual functions (0x101E, the id Linux `mlx5_core` binds
//! as a VF), presented as a bus device like `igb_model::Nic`.
//!
//! What is modelled so far (docs/mlx5-model.md lists every command and check with its source):
//!
//! * [`Mlx5Nic`]: configuration space ([`config`]), BAR0 accesses, a per-function IOMMU
//!   (`adapter_core::memory::Iommu`) for every DMA, virtual time (`adapter_core::SimTime`),
//!   named [`Counters`] for everything refused — malformed accesses are counted, never
//!   panicked on.
//! * The initialization segment per function ([`init_seg`]): firmware revision, command
//!   interface revision 5, the command queue address with its read-only geometry bits, the
//!   initializing bit, the health buffer and the health counter ticking with virtual time,
//!   the internal timer.
//! * The command interface ([`cmdq`]): the queue in host memory, the doorbell, ownership,
//!   inline and mailbox-chained messages, delivery status for transport errors, DMA faults
//!   that stop only the faulting function's queue.
//! * The bring-up commands with their state machine per function ([`commands`]), from
//!   ENABLE_HCA to INIT_HCA and the first resources (UAR, PD, transport domain), and the
//!   queue and steering commands; every other opcode is refused with BAD_OP.
//! * MSI-X per function ([`msix`]): the table and PBA in BAR0, vector and function masks,
//!   [`Interrupt`] messages the host takes with [`Mlx5Nic::take_interrupts`].
//! * Event queues ([`eq`]): CREATE/DESTROY/QUERY_EQ, EQEs written with their owner bits, the
//!   EQ doorbells in the UAR pages and arming, overflow and DMA faults counted, event-mode
//!   command completion and page-request events.
//! * Completion queues ([`cq`]): CREATE/DESTROY/QUERY/MODIFY_CQ, CQEs written with their
//!   owner bits by the datapath, the CQ doorbell record and the CQ arm doorbell, completion
//!   EQEs of armed CQs, overflow and DMA faults counted.
//! * Work queues and transport objects ([`wq`]): TIS, SQ and RQ with their state machines
//!   and rings, TIR (direct, or indirect over an RQT with the Toeplitz hash) and RQT; memory
//!   keys ([`mkey`]) that data segments' lkeys name.
//! * NIC receive flow steering ([`steering`]): flow tables, groups, entries, the root and the
//!   lookup; [`packet`] reads what a frame matches on, its checksums, VLAN tags and RSS input.
//! * The Ethernet datapath: the SQ doorbell, send WQEs to frames to the E-Switch, frames from
//!   the E-Switch through steering into receive WQEs, CQEs and error CQEs (`nic::tx`,
//!   `nic::rx`; the seam with the E-Switch in `nic::datapath`).
//! * The E-Switch ([`eswitch`], device-level): one vport per function with its NIC vport
//!   context (the permanent MAC the PF assigns, address lists, admin state, counters) behind
//!   the vport commands, the source-MAC check, switching by destination MAC between vports and
//!   the wire, the adapter core's HAC egress stage and wire port (unchanged, as the 82576
//!   model uses them) with OUR HAC vendor commands for the PF, [`Mlx5Nic::wire_receive`], and
//!   `adapter_core::hac::Hac` implemented on [`Mlx5Nic`].
//! * E-Switch QoS ([`qos`]): the scheduling elements of the E_SWITCH hierarchy (a root DWRR
//!   TSAR, VPORT elements with `bw_share` and `max_average_bw`) behind the QoS capability
//!   page and CREATE/MODIFY/QUERY/DESTROY_SCHEDULING_ELEMENT, enforced on wire-bound frames
//!   at E-Switch ingress (rate limits in virtual time, weighted sharing of the wire) without
//!   changing the adapter core's egress stage.
//!
//! The hardware facts (offsets, layouts, opcodes, statuses) come from `mlx5-hw` only. The
//! crate depends on `mlx5-hw`, `adapter-core` and `hw-common`, nothing else of the workspace.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bar;
pub mod caps;
pub mod cmdq;
pub mod commands;
pub mod config;
mod counters;
pub mod cq;
pub mod eq;
pub mod eswitch;
mod function;
mod hw;
pub mod init_seg;
pub mod mkey;
pub mod msix;
mod nic;
pub mod packet;
pub mod qos;
pub mod steering;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod wq;

pub use commands::{FunctionState, HcaState, syndrome};
pub use counters::{Counters, FunctionCounters, QueueCounters};
pub use cq::{CqArm, CqState};
pub use eq::{EqArm, EqState};
pub use eswitch::{EswitchCounters, VportContext, VportCounters};
pub use function::FunctionId;
pub use msix::Interrupt;
pub use nic::{DEFAULT_PF_MAC, DmaMapError, EswitchError, Mlx5Config, Mlx5Nic, PageRequestError};

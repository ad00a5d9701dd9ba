//! `hac colo-bridge`: output commit for a VM checkpointed by QEMU COLO (docs/colo.md).
//!
//! * [`qmp`]: QMP lines (greeting, answers, events) read as peer input.
//! * [`bridge`]: the rule turning the primary's checkpoint events into epochs, without I/O,
//!   and its reference check ([`bridge::sim`]).
//! * [`follow`]: the command: the primary's QMP socket in, `hac serve`'s control socket out,
//!   a JSON log of every request and a summary.

pub mod bridge;
pub mod follow;
pub mod qmp;

//! The Ethernet header (shared by every family, from `hw-common`) and the 82576's frame limits.

pub use hw_common::frame::*;

/// Largest jumbo frame the 82576 handles (9.5 KiB, datasheet 7.2.1 / RLPML).
pub const MAX_JUMBO_FRAME: usize = 9728;

//! A userspace driver for Intel 82576/I350 virtual functions (the igbvf register interface) and
//! the PF side of their mailbox, generic over its backends so the same code drives the
//! in-process model and real hardware through Linux VFIO.
//!
//! # Blocks
//!
//! * [`backend`]: the traits — [`backend::RegisterIo`] (a BAR), [`backend::DmaAllocator`] /
//!   [`backend::DmaRegion`] (DMA memory), [`backend::Clock`] — and the memory-ordering rules.
//! * [`model`]: the in-process backend over [`igb_model::Nic`] (no unsafe code).
//! * [`vfio`]: the Linux VFIO backend over the `hac-sys` crate (which holds every `unsafe`
//!   block of the workspace: mapped BARs, DMA memory, the VFIO ioctls, eventfds), with our own
//!   IOVA allocator in [`iova`]; the seams it is generic over and their test fakes.
//! * [`mailbox`]: the VF side of the PF↔VF mailbox protocol, with timeouts and typed errors.
//! * [`ring`]: TX and RX descriptor rings.
//! * [`vf`]: the VF driver — init as igbvf does it, batched send/receive, link, statistics.
//! * [`hac`]: [`hac::AdapterHac`], the HAC host contract ([`hac::Hac`], defined in
//!   `adapter_core::hac` and re-exported here) over the 82576 extension's register block.
//! * [`softhac`]: the same HAC semantics in the driver, for adapters without the extension: the
//!   family-independent core ([`softhac::hold::SoftHacCore`] over a `HoldPort`, also
//!   the mlx5 family's) and the 82576's [`softhac::SoftHac`] over the igbvf TX ring.
//! * [`pf`]: the PF agent — answers VF mailbox messages as Linux igb does, enables VFs, sets MACs,
//!   anti-spoofing, VLANs, VF rate limits and queue priority.
//! * [`drain_policy`]: priority for released checkpoint traffic without the HAC extension: the
//!   PF limits plain VFs (the 82576's per-queue rate limiters) while checkpoint frames drain.
//! * [`phy`]: a `smoltcp::phy::Device` over a VF, so a TCP/IP stack runs on it.
//! * [`mlx5`]: the mlx5 (ConnectX) VF driver on the same backend traits — command interface,
//!   bring-up as `mlx5_core` does it, the Ethernet queues, its smoltcp device — and its
//!   in-process backend over the mlx5 model.
//!
//! Errors: [`error::DriverError`] for the driver, [`vfio::VfioError`] for the VFIO backend,
//! [`mlx5::Mlx5Error`] for the mlx5 driver.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backend;
pub mod drain_policy;
pub mod error;
pub mod hac;
pub mod inproc;
pub mod iova;
pub mod mailbox;
pub mod mlx5;
pub mod model;
pub mod pf;
pub mod phy;
pub mod ring;
pub mod softhac;
pub mod vf;
pub mod vfio;

pub use backend::{Bar, Clock, DmaAllocator, DmaRegion, RegisterIo};
pub use error::DriverError;

//! A userspace driver for NVIDIA/Mellanox ConnectX (mlx5) functions — a VF as Linux
//! `mlx5_core` + `mlx5e` drive it, and the PF-side vport commands — generic over the same
//! backends as the igbvf driver ([`crate::backend`]), so the same code drives the in-process
//! mlx5 model ([`model`]) and a VF through VFIO ([`crate::vfio::VfioMlx5`]).
//!
//! Every layout, opcode and status comes from `mlx5-hw`; this module holds the behaviour.
//!
//! # Blocks
//!
//! * [`iseg`]: BAR0 as the driver sees it — big-endian init-segment registers, the health
//!   buffer, 64-bit UAR doorbells ([`crate::backend::RegisterIo::write64`]).
//! * [`cmd`]: the command queue — entries, mailbox chains, token, ownership polling, the
//!   timeout, delivery/command status and syndrome as typed errors, recovery.
//! * [`pages`]: page accounting for MANAGE_PAGES.
//! * [`queues`]: EQ and CQ rings, owner bits, doorbell records, EQ/CQ doorbells.
//! * [`device`]: [`Mlx5Device`] — bring-up as `mlx5_core` does it (init segment, ENABLE_HCA,
//!   ISSI, pages, capabilities, INIT_HCA, UAR, EQs, PD, transport domain), CQs, events (page
//!   requests answered on the reserved slot), health, command-interface recovery, teardown
//!   with every page taken back, the PF's VF MAC and link-state commands.
//! * [`eth`]: the Ethernet path — mkey, TIS, SQ, RQ, TIR, NIC RX flow table; batched send,
//!   receive, link, counters.
//! * [`hac`]: [`Mlx5AdapterHac`] — the HAC contract through our vendor commands on the PF
//!   (adapters with the extension).
//! * [`softhac`]: [`Mlx5SoftHac`] — the HAC contract in the driver for VFs without the
//!   extension: held send WQEs beyond the doorbell record, rung over committed epochs (the
//!   shared [`crate::softhac::hold::SoftHacCore`] over the device's SQ).
//! * [`qos`]: [`EswQos`] — the PF's E-Switch QoS for its VFs (max and min rates as Linux
//!   `esw/qos.c` sets them: a root DWRR TSAR, one VPORT element per VF, `bw_share` from the
//!   min rates).
//! * [`phy`]: a `smoltcp::phy::Device` over an open device.
//! * [`model`]: the in-process backend over [`mlx5_model::Mlx5Nic`].
//!
//! Errors: [`Mlx5Error`]. docs/mlx5-driver.md lists the bring-up order with each command.

pub mod cmd;
pub mod device;
pub mod error;
pub mod eth;
pub mod hac;
pub mod iseg;
pub mod model;
pub mod pages;
pub mod phy;
pub mod qos;
pub mod queues;
pub mod softhac;

pub use device::{Mlx5Config, Mlx5Device};
pub use error::{HealthReport, Mlx5Error};
pub use eth::{EthConfig, EthStats};
pub use hac::Mlx5AdapterHac;
pub use qos::{EswQos, QosError, VfQos};
pub use softhac::{Mlx5SoftHac, Mlx5SoftPort};

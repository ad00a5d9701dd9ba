//! One definition of the NVIDIA/Mellanox ConnectX (mlx5) hardware facts, shared by the mlx5
//! model and the mlx5 driver, as `igb-hw` is for the 82576. It depends on `hw-common` only.
//!
//! Nothing here simulates anything. Layouts are big-endian, fields named by the PRM's and Linux
//! `mlx5_ifc.h`'s names. Each layout is declared once, as a table of [`field::Field`]s, and its
//! typed view (`new_checked`, getters, setters, `FIELDS`, a compile-time check that every field
//! fits) and, where the model and driver build or read whole values, its `Repr` (`parse`,
//! `emit`) are derived from that table. Parsing never panics; a short buffer is a
//! [`Truncated`] error naming the layout; unknown values survive as numbers or `Unknown(raw)`.
//!
//! * [`pci`]: vendor and device ids `mlx5_core` binds, BARs, capabilities, SR-IOV values.
//! * [`init_seg`]: the initialization segment at BAR0 (firmware revision, command queue
//!   address, doorbell, initializing bit, health buffer and counter, timeouts, clocks).
//! * [`cmd`]: the command queue entry, mailbox blocks, delivery and command status, the
//!   message header, the opcode table and the XOR signatures.
//! * [`commands`]: the input and output layouts of each command, the object contexts they
//!   carry (EQ, CQ, SQ, RQ, WQ, TIS, TIR, RQT, mkey, NIC vport, flow tables, scheduling
//!   elements) and the access registers a VF uses; [`commands::lengths`] maps an opcode to
//!   its layouts' lengths.
//! * [`caps`]: HCA capability pages (general, Ethernet offloads, NIC and E-Switch flow tables,
//!   E-Switch, QoS), the capability types and the max/current `op_mod` of QUERY_HCA_CAP /
//!   SET_HCA_CAP (whose layouts are in [`commands::lifecycle`]).
//! * [`wqe`]: send WQEs (control, Ethernet and data segments, inline headers and data, send
//!   opcodes) and cyclic receive WQEs.
//! * [`cqe`]: CQEs (normal and error layouts, syndromes, ownership), the CQ doorbell record
//!   and the CQ arm doorbell.
//! * [`eqe`]: EQEs, event types and their data, the EQ doorbell.
//! * [`uar`]: UAR pages (doorbell and BlueFlame offsets, UAR index to BAR0 offset), the send
//!   doorbell and the SQ/RQ doorbell records.
//! * [`field`]: PRM bit numbering and field access ([`Field`], byte runs, the typed values a
//!   field holds, the [`Truncated`] length error); the private `layout` module holds the
//!   macros every layout above is declared with (`layout!`, `field_enum!`, `nested!`,
//!   `tail_array!`).
//!
//! Sources: the ConnectX PRM, Linux `include/linux/mlx5/{mlx5_ifc.h,device.h,driver.h}` and
//! `drivers/net/ethernet/mellanox/mlx5/core`, rdma-core `providers/mlx5`. Each module names the
//! ones it was read from.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod layout;

pub mod field;

pub mod pci;

pub mod init_seg;

pub mod cmd;
pub mod commands;

pub mod caps;

pub mod wqe;

pub mod cqe;

pub mod eqe;

pub mod uar;

pub use field::{Field, Truncated};

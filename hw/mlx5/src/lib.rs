//! One definition of the NVIDIA/Mellanox ConnectX (mlx5) hardware facts, shared by the mlx5
//! model and the mlx5 driver, as `igb-hw` is for the 82576.
//!
//! Nothing here simulates anything. Layouts are big-endian, fields named by the PRM's and Linux
//! `mlx5_ifc.h`'s names, read and written through [`field::Field`] over byte buffers: parsing
//! never panics, unknown values survive as numbers.
//!
//! * [`field`]: PRM bit numbering and field access.
//! * [`view`]: the plumbing of the typed views (the [`Truncated`] length error; each layout's
//!   fields declared once, the view's getters/setters and its `Repr` derived from them).
//! * [`caps`]: HCA capability pages (general, Ethernet offloads, NIC flow tables, QoS), the
//!   capability types and the max/current `op_mod` of QUERY_HCA_CAP / SET_HCA_CAP.
//! * [`wqe`]: send WQEs (control, Ethernet and data segments, inline headers and data, send
//!   opcodes) and cyclic receive WQEs.
//! * [`cqe`]: CQEs (normal and error layouts, syndromes, ownership), the CQ doorbell record
//!   and the CQ arm doorbell.
//! * [`eqe`]: EQEs, event types and their data, the EQ doorbell.
//! * [`uar`]: UAR pages (doorbell and BlueFlame offsets, UAR index to BAR0 offset), the send
//!   doorbell and the SQ/RQ doorbell records.
//! * [`pci`]: vendor and device ids `mlx5_core` binds, BARs, capabilities, SR-IOV values.
//! * [`init_seg`]: the initialization segment at BAR0 (firmware revision, command queue
//!   address, doorbell, initializing bit, health buffer and counter, timeouts, clocks).
//! * [`cmd`]: the command queue entry, mailbox blocks, delivery and command status, the
//!   message header, the opcode table and the XOR signatures.
//! * [`commands`]: the input and output layouts of each command, the object contexts they
//!   carry (EQ, CQ, SQ, RQ, WQ, TIS, TIR, RQT, mkey, NIC vport, flow tables, scheduling
//!   elements) and the access registers a VF uses; [`commands::lengths`] maps an opcode to
//!   its layouts' lengths.
//!
//! Sources: the ConnectX PRM, Linux `include/linux/mlx5/{mlx5_ifc.h,device.h,driver.h}` and
//! `drivers/net/ethernet/mellanox/mlx5/core`, rdma-core `providers/mlx5`. Each module names the
//! ones it was read from. It depends on `hw-common` only.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod layout;

pub mod cmd;
pub mod commands;
pub mod field;
pub mod init_seg;
pub mod pci;

pub mod caps;
pub mod cqe;
pub mod eqe;
pub mod uar;
pub mod view;
pub mod wqe;

pub use field::Field;
pub use view::Truncated;

//! One definition of the NVIDIA/Mellanox ConnectX (mlx5) hardware facts, shared by the mlx5
//! model and the mlx5 driver, as `igb-hw` is for the 82576.
//!
//! Nothing here simulates anything. Layouts are big-endian, fields named by the PRM's and Linux
//! `mlx5_ifc.h`'s names, read and written through [`field::Field`] over byte buffers: parsing
//! never panics, unknown values survive as numbers.
//!
//! * [`field`]: PRM bit numbering and field access.
//!
//! Sources: the ConnectX PRM, Linux `include/linux/mlx5/{mlx5_ifc.h,device.h,driver.h}` and
//! `drivers/net/ethernet/mellanox/mlx5/core`, rdma-core `providers/mlx5`. Each module names the
//! ones it was read from. It depends on `hw-common` only.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod field;

pub use field::Field;

//! The few `mlx5-hw` names that are being renamed while its plumbing is unified (the length
//! error of the views, the capability type enum). Every other module names them through this
//! one, so a rename touches only these lines.

pub(crate) use mlx5_hw::caps::{CapMode, CapOpMod, CapType};

//! A Linux TAP interface for frames to and from kernel networking (the failover demo bridges the
//! model's wire port to one), and waiting on it with a timeout. The code is in the `sys` door.

pub use crate::sys::eventfd::poll_readable;
pub use crate::sys::tap::TapDevice;

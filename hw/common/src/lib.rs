//! Hardware facts no device family owns: address newtypes (I/O virtual addresses, MAC
//! addresses), the SR-IOV VF number and the Ethernet frame header. The family crates
//! (`igb-hw`, and the ones after it) and the device-independent adapter core build on these, so
//! a MAC address, an IOVA or a VF number means the same thing to every family, to the model and
//! to the drivers.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addr;
pub mod frame;
pub mod vf;

pub use addr::{Iova, MacAddress, ParseMacError};
pub use vf::VfNumber;

//! Hardware facts no device family owns: address newtypes (I/O virtual addresses, MAC
//! addresses) and the Ethernet frame header. The family crates (`igb-hw`, and the ones after
//! it) and the device-independent adapter core build on these, so a MAC address or an IOVA
//! means the same thing to every family, to the model and to the drivers.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addr;
pub mod frame;

pub use addr::{Iova, MacAddress, ParseMacError};

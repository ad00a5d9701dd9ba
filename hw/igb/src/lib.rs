//! One definition of the Intel 82576 (igb / igbvf) hardware facts, shared by the model and the driver.
//!
//! Nothing in this crate simulates anything: it is the "datasheet in code" that both sides compile
//! against, so that an offset or a bit cannot drift between the device model and the driver.
//!
//! * [`regs`]: the BAR0 register maps of the physical function ([`regs::PfReg`]) and of a virtual
//!   function ([`regs::VfReg`]) — offsets, access kinds, datasheet mnemonics — plus typed handles
//!   ([`regs::Register`]) that tie each register to its bitfields (declared with `tock-registers`)
//!   and to the BAR it lives in, so a field of the wrong register or a PF register on a VF BAR does
//!   not compile.
//! * [`desc`]: TX/RX advanced descriptors as typed views over 16 bytes, with `Repr` parse/emit.
//! * [`mailbox`]: the PF↔VF mailbox message formats (igbvf protocol) as views and `Repr`s.
//! * [`rate`]: the per-queue TX rate limiter encoding (RTTBCNRC rate factor, Linux's formula).
//! * [`pci`]: PCI identity, configuration-space layout and the SR-IOV extended capability.
//! * [`frame`]: the Ethernet/802.1Q header view (from `hw-common`) and the 82576 frame limits.
//! * [`addr`]: the 82576's index newtypes (`VfIndex`, `PoolIndex`, `QueueIndex`,
//!   `RegisterOffset`) and the receive-address register encoding; `Iova` and `MacAddress` are
//!   `hw-common`'s, re-exported.
//!
//! Sources: Intel 82576 datasheet section numbers where known, Linux `igb`/`igbvf`, DPDK `e1000`
//! base code and QEMU `hw/net/igb*`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addr;
pub mod desc;
pub mod frame;
pub mod mailbox;
pub mod pci;
pub mod rate;
pub mod regs;

pub use hw_common;

pub use addr::{Iova, MacAddress, PoolIndex, QueueIndex, RegisterOffset, VfIndex, VfNumber};

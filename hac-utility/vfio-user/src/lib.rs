//! The vfio-user device server: a device exported to a virtual machine (QEMU's
//! `vfio-user-pci`) over a Unix socket, as a set of regions, interrupts and DMA windows.
//!
//! Blocks and data flow:
//!
//! * [`wire`]: the message format (header, commands, replies, the VFIO values they carry);
//!   parsing never panics.
//! * [`session`]: one client's messages in, one reply each out: version negotiation, the
//!   device/region/IRQ info answers, the range checks in front of every region access, the
//!   `SET_IRQS` grammar and its descriptors (eventfds only), the counters.
//! * [`dma`]: the client's DMA windows and the per-client limits on them (count and bytes).
//! * [`server`]: one Unix socket and thread per device, reading whole messages with their file
//!   descriptors and answering in order; one client at a time.
//! * [`client_dma`]: in client mode, the device's writes to guest RAM as `DMA_WRITE`
//!   requests the client applies (so they are in its dirty log), in order, bounded, with the
//!   interrupts held until the writes before them are acknowledged.
//! * [`backend`]: the [`Backend`] trait a device implements (region read/write, DMA
//!   map/unmap, interrupts, reset, region and IRQ info). It sees only checked requests.
//!
//! A client's bytes go socket → [`server`] → [`wire::Request`] → [`Session`] (checks, DMA
//! bookkeeping, guest memory mapped) → [`Backend`] → reply. The 82576 VF endpoint of
//! `hac-utility` implements [`Backend`]; another device family does the same for its own
//! functions.
//!
//! May depend on: `hw-common` (the `Iova` type) and the unsafe door for the guest-memory
//! mapping and the eventfd (today `hac-driver`'s `sys` module, re-exported here as
//! [`GuestMapping`] and [`EventFd`]), `crossbeam-channel` (the client-mode write queue) and
//! `serde_json` (the client's capabilities). Not on any device model, driver code, the control
//! protocol or a CLI.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backend;
#[cfg(any(test, feature = "test-utils"))]
pub mod checkpoint_sim;
pub mod client_dma;
pub mod dma;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
pub mod server;
pub mod session;
pub mod wire;

#[cfg(test)]
mod tests;

pub use backend::{
    Backend, DeviceError, DeviceInfo, DmaWindow, EventFd, GuestMapping, IrqAction, IrqInfo,
    RegionInfo,
};
pub use client_dma::{ClientDmaCounters, ClientDmaLimits, DmaWriteQueue, DmaWrites, Outbox};
pub use dma::{Limits, MAX_DMA_BYTES, MAX_DMA_MAPS};
pub use server::{Server, ServerError};
pub use session::{Counters, Session};

//! The workspace's one unsafe door: everything that touches raw pointers, `mmap`, `ioctl` or file
//! descriptors by number, behind concrete safe types.
//!
//! This crate imports nothing from its callers: it depends only on `hw-common` (for [`Iova`])
//! and on system crates (`libc`, `rustix`, `pci-driver`, `vfio-bindings`). Its types have
//! inherent methods and their own errors; the driver adapts them to its seam traits (and keeps
//! the test fakes of those seams), the HA node uses [`tap`], the daemon's wire port [`tap`] and [`packet`], the vfio-user front end uses
//! [`guest_map`]. Every other crate of the workspace is `#![forbid(unsafe_code)]`.
//!
//! * [`map`]: the one shared file mapping (`mmap(MAP_SHARED)` with its checks, `munmap` on
//!   drop) under both [`mmio`] and [`guest_map`].
//! * [`mmio`]: a mapped BAR with volatile 32-bit accesses and single 64-bit stores (doorbells)
//!   at checked offsets.
//! * [`dma`]: anonymous, locked, page-aligned memory (2 MiB huge pages when possible) accessed
//!   only by volatile copies.
//! * [`eventfd`]: the eventfds MSI-X vectors signal, and waiting on descriptors with a timeout.
//! * [`vfio`]: the legacy container/group/device ioctls, used when `pci-driver` cannot do the
//!   job (a VF token must be passed when the device fd is requested).
//! * [`pcidrv`]: the device and IOMMU through `pci-driver` (the default path).
//! * [`host`]: the two real device backends behind one type each ([`HostDevice`], [`HostIommu`]).
//! * [`tap`]: a Linux TAP device (`TUNSETIFF`), frames to and from a kernel interface.
//! * [`packet`]: a packet socket (`AF_PACKET`) on an existing interface (a veth end, a bridge
//!   port), frames to and from it.
//! * [`guest_map`]: a VM's memory received as a file descriptor (vfio-user), mapped shared after
//!   the sealed-file checks.
//!
//! `unsafe_code` is denied at the crate root and allowed per module below (the modules without
//! an `allow` contain none). Every `unsafe` block carries a `// SAFETY:` comment
//! (`clippy::undocumented_unsafe_blocks` is denied); `docs/vfio.md` lists them all.
#![deny(missing_docs)]

#[allow(unsafe_code)]
pub mod dma;
#[allow(unsafe_code)]
pub mod eventfd;
#[allow(unsafe_code)]
pub mod guest_map;
pub mod host;
#[allow(unsafe_code)]
pub mod map;
#[allow(unsafe_code)]
pub mod mmio;
#[allow(unsafe_code)]
pub mod packet;
#[allow(unsafe_code)]
pub mod pcidrv;
#[allow(unsafe_code)]
pub mod tap;
#[allow(unsafe_code)]
pub mod vfio;

pub use dma::DmaMemory;
pub use eventfd::{EventFd, poll_readable};
pub use guest_map::GuestMapping;
pub use host::{HostDevice, HostIommu};
pub use hw_common::Iova;
pub use mmio::{BarAccessError, MmioRegion};
pub use packet::PacketSocket;
pub use tap::TapDevice;
pub use vfio::{IommuInfo, OpenFailure, OpenStep};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_safety_is_as_documented() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<MmioRegion>();
        send_sync::<GuestMapping>();
        send_sync::<EventFd>();
        send_sync::<HostDevice>();
        send_sync::<HostIommu>();
        send_sync::<TapDevice>();
        // Owned memory moves between threads; sharing is up to its owner.
        send::<DmaMemory>();
        send::<map::SharedMapping>();
    }
}

//! The crate's one unsafe door: MMIO, DMA memory, eventfds and the VFIO ioctls `pci-driver` lacks.
//!
//! Everything that touches raw pointers, `mmap`, `ioctl` or file descriptors by number lives
//! here, behind small safe types that [`crate::vfio`] is generic over through its traits
//! ([`crate::vfio::MmioWindow`], [`crate::vfio::HostMemory`], [`crate::vfio::IommuMapper`],
//! [`crate::vfio::DeviceAccess`]):
//!
//! * [`mmio`]: a mapped BAR with volatile 32-bit accesses at checked offsets.
//! * [`dma`]: anonymous, locked, page-aligned memory (2 MiB huge pages when possible) accessed
//!   only by volatile copies.
//! * [`eventfd`]: the eventfds MSI-X vectors signal, and waiting on them with a timeout.
//! * [`vfio`]: the legacy container/group/device ioctls, used when `pci-driver` cannot do the
//!   job (a VF token must be passed when the device fd is requested).
//! * [`pcidrv`]: the device and IOMMU through `pci-driver` (the default path).
//! * [`host`]: the two real backends behind one type each.
//! * [`tap`]: a Linux TAP device (`TUNSETIFF`), frames to and from a kernel interface.
//! * [`guest_map`]: a VM's memory received as a file descriptor (vfio-user), mapped shared.
//! * [`fake`]: in-memory twins of all of the above for tests (no unsafe code; it lives here only
//!   because it implements the same seams).
//!
//! Every `unsafe` block carries a `// SAFETY:` comment; `docs/vfio.md` lists them all.

pub mod dma;
pub mod eventfd;
pub mod fake;
pub mod guest_map;
pub mod host;
pub mod mmio;
pub mod pcidrv;
pub mod tap;
pub mod vfio;

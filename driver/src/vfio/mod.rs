//! The Linux VFIO backend: a vfio-pci function's config space, BARs, DMA memory and MSI-X vectors.
//!
//! [`VfioDevice::open`] checks the host first (the device exists, has an IOMMU group, is bound
//! to vfio-pci, whether a VF token is needed) so that each misconfiguration has its own
//! [`VfioError`] saying what to do, then opens the device in a new legacy VFIO container with
//! the Type1v2 IOMMU — through `pci-driver`, or through our own ioctls when a VF token must be
//! passed — and enables memory decoding and bus mastering by writing the Command register raw.
//!
//! From a [`VfioDevice`]:
//!
//! * [`VfioDevice::family`] → [`VfFamily`] (igbvf or mlx5) from the PCI ids; an unknown
//!   function is [`VfioError::UnsupportedDevice`].
//! * [`VfioDevice::register_bar`] (the family's register BAR, size-checked) or
//!   [`VfioDevice::bar0`] → [`VfioBar`], the driver's [`RegisterIo`](crate::RegisterIo): 32-bit
//!   volatile MMIO and single 8-byte stores for 64-bit doorbells (`write64`); a misaligned or
//!   out-of-range offset never panics — reads return `0xFFFF_FFFF` (what a PCI master-abort
//!   returns), writes are dropped, and both are counted.
//! * [`VfioDevice::dma`] → [`VfioDma`], the driver's [`DmaAllocator`](crate::DmaAllocator): locked anonymous
//!   memory (2 MiB huge pages when available) at an IOVA from our [`IovaAllocator`](crate::iova::IovaAllocator), mapped in
//!   the container's IOMMU; a [`VfioDmaRegion`] unmaps and frees on drop.
//! * [`VfioDevice::enable_msix`] → [`MsixInterrupts`]: one eventfd per vector, waited on with a
//!   timeout.
//! * [`VfioDevice::read_config`] / [`VfioDevice::ids`] for diagnostics, [`VfioDevice::reset`]
//!   for a function-level reset.
//!
//! Everything below the four seam traits ([`MmioWindow`], [`HostMemory`], [`IommuMapper`],
//! [`DeviceAccess`]) is in the `hac-sys` crate, the workspace's only unsafe code, whose concrete
//! types ([`MmioRegion`], [`DmaMemory`], [`HostIommu`], [`HostDevice`]) implement the seams in
//! `host.rs`; the [`testing`] module has in-memory twins of them so all the logic here is tested
//! without a device. Host requirements and the unsafe inventory: `docs/vfio.md`.
//!
//! # Files
//!
//! * `seams.rs`: the four traits. `host.rs`: their implementations for `hac-sys`'s types.
//! * `bdf.rs`: [`Bdf`]. `error.rs`: [`VfioError`]. `family.rs`: [`VfFamily`]. `probe.rs`: [`HostPaths::probe`], the sysfs
//!   checks before opening, and the classification of open failures.
//! * `device.rs`: [`VfioDevice`]. `bar.rs`: [`VfioBar`]. `dma.rs`: [`VfioDma`] and
//!   [`VfioDmaRegion`]. `msix.rs`: [`MsixInterrupts`].
//! * [`testing`]: the fakes of the seams, for tests here and in other crates;
//!   [`model_device`]: the seams over a function of the mlx5 model, so the VFIO code brings a
//!   model VF up end to end; `tests.rs`: the helpers the modules' unit tests share.
//!
//! ```no_run
//! use hac_driver::vfio::VfioDevice;
//! use hac_driver::{DmaAllocator, RegisterIo};
//! use igb_hw::RegisterOffset;
//!
//! let dev = VfioDevice::open("0000:01:10.0", None)?;
//! let ids = dev.ids()?;
//! assert!(ids.is_igb_vf());
//! let bar0 = dev.bar0()?;
//! let status = bar0.read32(RegisterOffset(0x0008));
//! let ring = dev.dma().allocate(4096)?;
//! let irqs = dev.enable_msix(3)?;
//! let fired = irqs.wait(std::time::Duration::from_millis(10))?;
//! # let _ = (status, ring, fired);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bar;
mod bdf;
mod device;
mod dma;
mod error;
mod family;
mod host;
pub mod model_device;
mod msix;
mod probe;
mod seams;
pub mod testing;
#[cfg(test)]
mod tests;

pub use bar::{BAD_READ, VfioBar};
pub use bdf::{Bdf, BdfError};
pub use device::{PciIds, VfioDevice};
pub use dma::{DmaStats, HUGE_PAGE, VfioDma, VfioDmaRegion};
pub use error::VfioError;
pub use family::{IGBVF_REGISTER_FILE, MLX5_INIT_SEGMENT_MAPPED, SUPPORTED_VFS, VfFamily};
pub use hac_sys::mmio::BarAccessError;
pub use hac_sys::{DmaMemory, EventFd, HostDevice, HostIommu, MmioRegion};
pub use msix::{FiredVectors, MAX_MSIX_VECTORS, MsixInterrupts};
pub use probe::{HostPaths, HostProbe, SriovRole};
pub use seams::{DeviceAccess, HostMemory, IommuMapper, MmioWindow};

/// The mlx5 driver on a function opened through VFIO: its register BAR, the container's DMA,
/// and a clock (the wall clock on hardware, the model's virtual clock over
/// [`model_device::ModelFunction`]).
pub type VfioMlx5<D = HostDevice, C = crate::backend::WallClock> = crate::mlx5::Mlx5Device<
    VfioBar<<D as DeviceAccess>::Window>,
    VfioDma<<D as DeviceAccess>::Mapper>,
    C,
>;

/// The igbvf driver on a function opened through VFIO.
pub type VfioIgbvf<D = HostDevice, C = crate::backend::WallClock> = crate::vf::VfDriver<
    VfioBar<<D as DeviceAccess>::Window>,
    VfioDma<<D as DeviceAccess>::Mapper>,
    C,
>;

//! The seams between the VFIO logic and the system: a mapped BAR, DMA host memory, the IOMMU
//! of a container, an opened device. [`super::host`] implements them for `hac_sys`'s concrete
//! types, [`super::testing`] with in-memory fakes.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use hac_sys::{BarAccessError, EventFd};
use igb_hw::Iova;

/// A mapped BAR: 32-bit accesses and 64-bit writes at checked offsets.
pub trait MmioWindow: Send + Sync {
    /// Length in bytes.
    fn len(&self) -> usize;
    /// True for a zero-length window.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads the little-endian word at `offset` (4-byte aligned, inside the BAR).
    fn read32(&self, offset: usize) -> Result<u32, BarAccessError>;
    /// Writes the little-endian word at `offset` (4-byte aligned, inside the BAR).
    fn write32(&self, offset: usize, value: u32) -> Result<(), BarAccessError>;
    /// Writes the 8 bytes at `offset` (8-byte aligned, inside the BAR) as ONE access, `value`
    /// in bus order (byte 0 least significant): a 64-bit doorbell is never torn.
    fn write64(&self, offset: usize, value: u64) -> Result<(), BarAccessError>;
}

/// Host memory that can be mapped for DMA: accessed only by copying, never by reference.
pub trait HostMemory: Send + Sized {
    /// At least `len > 0` bytes, zeroed, aligned to `align` (a power of two) with a length that
    /// is a multiple of it.
    fn allocate(len: usize, align: usize) -> io::Result<Self>;
    /// Length in bytes (what is mapped).
    fn len(&self) -> usize;
    /// True for zero bytes (never, for allocated memory).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether it is backed by 2 MiB huge pages.
    fn huge_pages(&self) -> bool;
    /// Copies `buf.len()` bytes at `offset` into `buf`; false (and nothing read) if the range is
    /// not entirely inside.
    fn read(&self, offset: usize, buf: &mut [u8]) -> bool;
    /// Copies `data` to `offset`; false (and nothing written) if the range is not entirely
    /// inside.
    fn write(&self, offset: usize, data: &[u8]) -> bool;
}

/// The IOMMU of a VFIO container.
pub trait IommuMapper: Send + Sync {
    /// The memory it maps.
    type Memory: HostMemory;
    /// Minimum IOVA alignment and length granularity (smallest IOMMU page size).
    fn alignment(&self) -> u64;
    /// Valid IOVA windows, half-open.
    fn valid_iova_ranges(&self) -> Vec<Range<u64>>;
    /// How many mappings may exist at once, if known.
    fn max_mappings(&self) -> Option<u32>;
    /// Maps all of `memory` at `iova`, readable and writable by the device.
    fn map(&self, iova: Iova, memory: &Self::Memory) -> io::Result<()>;
    /// Removes exactly one earlier mapping.
    fn unmap(&self, iova: Iova, len: usize) -> io::Result<()>;
}

/// One opened vfio-pci function.
pub trait DeviceAccess: Send + Sync {
    /// A mapped BAR.
    type Window: MmioWindow;
    /// The IOMMU of its container.
    type Mapper: IommuMapper;
    /// Size of config space.
    fn config_len(&self) -> u64;
    /// Reads config space.
    fn config_read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes config space with one access of `data.len()` bytes when it is 1, 2 or 4.
    fn config_write(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Length of BAR `index`, `None` if absent.
    fn bar_len(&self, index: usize) -> Option<u64>;
    /// Maps BAR `index`.
    fn map_bar(&self, index: usize) -> io::Result<Self::Window>;
    /// The IOMMU (shared: DMA regions keep it alive).
    fn iommu(&self) -> Arc<Self::Mapper>;
    /// MSI-X vectors the device has.
    fn msix_max(&self) -> usize;
    /// Routes MSI-X vectors `0..vectors.len()` to these eventfds.
    fn msix_enable(&self, vectors: &[Arc<EventFd>]) -> io::Result<()>;
    /// Disables MSI-X.
    fn msix_disable(&self) -> io::Result<()>;
    /// Function-level reset.
    fn reset(&self) -> io::Result<()>;
}

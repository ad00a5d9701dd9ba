//! The device and its IOMMU through `pci-driver` 0.1.4 (`VfioPciDevice`, legacy container, Type1v2).
//!
//! `pci-driver` opens the group and container, gets the device fd, exposes config space, BARs,
//! interrupts and the IOMMU. What it lacks is added around it: the DMA memory it maps is our
//! [`DmaMemory`], the BAR is wrapped in our [`MmioRegion`], and config writes go through raw
//! sized accesses (its structured Command accessor treats bit 10, INTx Disable, as
//! write-1-to-clear and so clears it).

use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

use hw_common::Iova;
use pci_driver::backends::vfio::{VfioContainer, VfioPciDevice};
use pci_driver::device::PciDevice;
use pci_driver::regions::{PciRegion, Permissions};

use crate::dma::DmaMemory;
use crate::mmio::MmioRegion;
use crate::vfio::{IommuInfo, OpenFailure, OpenStep};

/// A vfio-pci device opened by `pci-driver`, in its own container.
#[derive(Debug)]
pub struct PciDriverDevice {
    device: VfioPciDevice,
}

/// The container's IOMMU, as `pci-driver` exposes it.
#[derive(Debug)]
pub struct PciDriverIommu {
    container: Arc<VfioContainer>,
    info: IommuInfo,
}

impl PciDriverDevice {
    /// Opens the device at `sysfs_path` (`/sys/bus/pci/devices/<bdf>`) in a new container, and
    /// returns it with its IOMMU.
    pub fn open(sysfs_path: &Path) -> Result<(PciDriverDevice, PciDriverIommu), OpenFailure> {
        let device = VfioPciDevice::open(sysfs_path).map_err(|source| OpenFailure {
            step: OpenStep::PciDriver,
            source,
        })?;
        let container = Arc::clone(device.container());
        let iommu = container.iommu();
        let info = IommuInfo {
            alignment: iommu.alignment() as u64,
            // pci-driver copies the kernel's inclusive `end` into an exclusive Range end. Adding
            // one restores the last byte; should a future version fix this, the extra byte is
            // removed again when the window is trimmed to whole pages.
            iova_ranges: iommu
                .valid_iova_ranges()
                .iter()
                .map(|r| r.start..r.end.saturating_add(1))
                .collect(),
            max_mappings: Some(iommu.max_num_mappings()),
        };
        Ok((
            PciDriverDevice { device },
            PciDriverIommu { container, info },
        ))
    }

    /// Size of config space.
    pub fn config_len(&self) -> u64 {
        self.device.config().len()
    }

    /// Reads config space.
    pub fn config_read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.device.config().read_bytes(offset, buf)
    }

    /// Writes config space: one naturally aligned 1-, 2- or 4-byte access when `data` has that
    /// size and alignment, byte by byte otherwise.
    pub fn config_write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let config = self.device.config();
        match *data {
            [b] => config.write_u8(offset, b),
            [a, b] if offset & 1 == 0 => config.write_le_u16(offset, u16::from_le_bytes([a, b])),
            [a, b, c, d] if offset & 3 == 0 => {
                config.write_le_u32(offset, u32::from_le_bytes([a, b, c, d]))
            }
            _ => {
                for (at, &byte) in (offset..).zip(data) {
                    config.write_u8(at, byte)?;
                }
                Ok(())
            }
        }
    }

    /// Length of BAR `index`, if it exists.
    pub fn bar_len(&self, index: usize) -> Option<u64> {
        self.device.bar(index).map(|bar| bar.len())
    }

    /// Maps all of BAR `index` read/write.
    pub fn map_bar(&self, index: usize) -> io::Result<MmioRegion> {
        let bar = self.device.bar(index).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("BAR {index} does not exist"),
            )
        })?;
        if !bar.is_mappable() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("BAR {index} cannot be memory-mapped"),
            ));
        }
        MmioRegion::from_pci_driver(bar.map(.., Permissions::ReadWrite)?)
    }

    /// MSI-X vectors the device has.
    pub fn msix_max(&self) -> usize {
        self.device.interrupts().msi_x().max()
    }

    /// Routes MSI-X vectors `0..fds.len()` to `fds`.
    pub fn msix_enable(&self, fds: &[RawFd]) -> io::Result<()> {
        self.device.interrupts().msi_x().enable(fds)
    }

    /// Disables MSI-X.
    pub fn msix_disable(&self) -> io::Result<()> {
        self.device.interrupts().msi_x().disable()
    }

    /// Function-level reset (`VFIO_DEVICE_RESET`).
    pub fn reset(&self) -> io::Result<()> {
        self.device.reset()
    }
}

impl PciDriverIommu {
    /// What the IOMMU accepts.
    pub fn info(&self) -> &IommuInfo {
        &self.info
    }

    /// Maps all of `memory` at `iova`, readable and writable by the device.
    pub fn map(&self, iova: Iova, memory: &DmaMemory) -> io::Result<()> {
        // SAFETY: pci-driver's contract ("must make sense") is the VFIO_IOMMU_MAP_DMA one: the
        // host range must be valid process memory for the mapping's lifetime. It is exactly a
        // `DmaMemory` mapping (page-aligned, `len` bytes, owned by the caller), memory no Rust
        // reference ever points into and that is accessed only by volatile copies, so device
        // writes cannot violate any aliasing assumption. The kernel pins the pages until the
        // unmap: should the memory be dropped while still mapped, `munmap` only removes it from
        // our address space, the pinned pages are never handed to this process again, so the
        // device can reach no memory a Rust object later lives in.
        unsafe {
            self.container.iommu().map(
                iova.0,
                memory.len(),
                memory.as_ptr(),
                Permissions::ReadWrite,
            )
        }
    }

    /// Unmaps exactly one earlier mapping.
    pub fn unmap(&self, iova: Iova, len: usize) -> io::Result<()> {
        self.container.iommu().unmap(iova.0, len)
    }
}

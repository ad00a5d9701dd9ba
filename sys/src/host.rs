//! The real backends behind one type each: a device opened by `pci-driver` or by our own ioctls.
//!
//! [`HostDevice`] and [`HostIommu`] offer, as inherent methods, exactly what a VFIO user needs
//! (config space, BARs, MSI-X, reset; IOMMU windows, map and unmap); the driver implements its
//! device and IOMMU seams for them.

use std::ffi::CStr;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use hw_common::Iova;

use crate::dma::DmaMemory;
use crate::eventfd::EventFd;
use crate::mmio::MmioRegion;
use crate::pcidrv::{PciDriverDevice, PciDriverIommu};
use crate::vfio::{IommuInfo, NativeContainer, NativeDevice, OpenFailure};

#[derive(Debug)]
enum DeviceInner {
    PciDriver(PciDriverDevice),
    Native(Box<NativeDevice>),
}

#[derive(Debug)]
enum IommuInner {
    PciDriver(PciDriverIommu),
    Native(Arc<NativeContainer>),
}

/// A vfio-pci device on this host, opened in a new container of its own.
#[derive(Debug)]
pub struct HostDevice {
    inner: DeviceInner,
    iommu: Arc<HostIommu>,
}

/// The Type1v2 IOMMU of a host device's container.
#[derive(Debug)]
pub struct HostIommu {
    inner: IommuInner,
}

impl HostDevice {
    /// Opens through `pci-driver` (no VF token).
    pub fn open_pci_driver(sysfs_path: &Path) -> Result<HostDevice, OpenFailure> {
        let (device, iommu) = PciDriverDevice::open(sysfs_path)?;
        Ok(HostDevice {
            inner: DeviceInner::PciDriver(device),
            iommu: Arc::new(HostIommu {
                inner: IommuInner::PciDriver(iommu),
            }),
        })
    }

    /// Opens with our own ioctls; `device_name` may carry ` vf_token=<uuid>`.
    pub fn open_native(group: u32, device_name: &CStr) -> Result<HostDevice, OpenFailure> {
        let device = NativeDevice::open(group, device_name)?;
        let container = device.container();
        Ok(HostDevice {
            inner: DeviceInner::Native(Box::new(device)),
            iommu: Arc::new(HostIommu {
                inner: IommuInner::Native(container),
            }),
        })
    }

    /// Which implementation opened the device.
    pub fn backend_name(&self) -> &'static str {
        match self.inner {
            DeviceInner::PciDriver(_) => "pci-driver",
            DeviceInner::Native(_) => "native VFIO ioctls",
        }
    }
}

impl HostIommu {
    fn info(&self) -> &IommuInfo {
        match &self.inner {
            IommuInner::PciDriver(i) => i.info(),
            IommuInner::Native(c) => c.info(),
        }
    }

    /// Minimum IOVA alignment and length granularity (smallest IOMMU page size).
    pub fn alignment(&self) -> u64 {
        self.info().alignment
    }

    /// Valid IOVA windows, half-open.
    pub fn valid_iova_ranges(&self) -> Vec<Range<u64>> {
        self.info().iova_ranges.clone()
    }

    /// How many mappings may exist at once, if known.
    pub fn max_mappings(&self) -> Option<u32> {
        self.info().max_mappings
    }

    /// Maps all of `memory` at `iova`, readable and writable by the device.
    pub fn map(&self, iova: Iova, memory: &DmaMemory) -> io::Result<()> {
        match &self.inner {
            IommuInner::PciDriver(i) => i.map(iova, memory),
            IommuInner::Native(c) => c.map(iova, memory),
        }
    }

    /// Removes exactly one earlier mapping of `len` bytes at `iova`.
    pub fn unmap(&self, iova: Iova, len: usize) -> io::Result<()> {
        match &self.inner {
            IommuInner::PciDriver(i) => i.unmap(iova, len),
            IommuInner::Native(c) => c.unmap(iova, len),
        }
    }
}

impl HostDevice {
    /// Size of config space.
    pub fn config_len(&self) -> u64 {
        match &self.inner {
            DeviceInner::PciDriver(d) => d.config_len(),
            DeviceInner::Native(d) => d.config_len(),
        }
    }

    /// Reads config space.
    pub fn config_read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match &self.inner {
            DeviceInner::PciDriver(d) => d.config_read(offset, buf),
            DeviceInner::Native(d) => d.config_read(offset, buf),
        }
    }

    /// Writes config space with one access of `data.len()` bytes when it is 1, 2 or 4.
    pub fn config_write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        match &self.inner {
            DeviceInner::PciDriver(d) => d.config_write(offset, data),
            DeviceInner::Native(d) => d.config_write(offset, data),
        }
    }

    /// Length of BAR `index`, `None` if absent.
    pub fn bar_len(&self, index: usize) -> Option<u64> {
        match &self.inner {
            DeviceInner::PciDriver(d) => d.bar_len(index),
            DeviceInner::Native(d) => d.bar_len(index),
        }
    }

    /// Maps BAR `index` read/write.
    pub fn map_bar(&self, index: usize) -> io::Result<MmioRegion> {
        match &self.inner {
            DeviceInner::PciDriver(d) => d.map_bar(index),
            DeviceInner::Native(d) => d.map_bar(index),
        }
    }

    /// The IOMMU of its container (shared: DMA mappings keep it alive).
    pub fn iommu(&self) -> Arc<HostIommu> {
        Arc::clone(&self.iommu)
    }

    /// MSI-X vectors the device has.
    pub fn msix_max(&self) -> usize {
        match &self.inner {
            DeviceInner::PciDriver(d) => d.msix_max(),
            DeviceInner::Native(d) => d.msix_max(),
        }
    }

    /// Routes MSI-X vectors `0..vectors.len()` to these eventfds.
    pub fn msix_enable(&self, vectors: &[Arc<EventFd>]) -> io::Result<()> {
        let fds: Vec<_> = vectors.iter().map(|v| v.as_raw_fd()).collect();
        match &self.inner {
            DeviceInner::PciDriver(d) => d.msix_enable(&fds),
            DeviceInner::Native(d) => d.msix_enable(&fds),
        }
    }

    /// Disables MSI-X.
    pub fn msix_disable(&self) -> io::Result<()> {
        match &self.inner {
            DeviceInner::PciDriver(d) => d.msix_disable(),
            DeviceInner::Native(d) => d.msix_disable(),
        }
    }

    /// Function-level reset (`VFIO_DEVICE_RESET`).
    pub fn reset(&self) -> io::Result<()> {
        match &self.inner {
            DeviceInner::PciDriver(d) => d.reset(),
            DeviceInner::Native(d) => d.reset(),
        }
    }
}

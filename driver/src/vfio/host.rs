//! The seams implemented for the real system: `hac-sys`'s concrete types, each method a direct
//! call of the type's own (no logic here).

use std::io;
use std::ops::Range;
use std::sync::Arc;

use hac_sys::{BarAccessError, DmaMemory, EventFd, HostDevice, HostIommu, Iova, MmioRegion};

use super::seams::{DeviceAccess, HostMemory, IommuMapper, MmioWindow};

impl MmioWindow for MmioRegion {
    fn len(&self) -> usize {
        MmioRegion::len(self)
    }

    fn read32(&self, offset: usize) -> Result<u32, BarAccessError> {
        MmioRegion::read32(self, offset)
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), BarAccessError> {
        MmioRegion::write32(self, offset, value)
    }
}

impl HostMemory for DmaMemory {
    fn allocate(len: usize, align: usize) -> io::Result<Self> {
        DmaMemory::allocate(len, align)
    }

    fn len(&self) -> usize {
        DmaMemory::len(self)
    }

    fn huge_pages(&self) -> bool {
        DmaMemory::huge_pages(self)
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        DmaMemory::read(self, offset, buf)
    }

    fn write(&self, offset: usize, data: &[u8]) -> bool {
        DmaMemory::write(self, offset, data)
    }
}

impl IommuMapper for HostIommu {
    type Memory = DmaMemory;

    fn alignment(&self) -> u64 {
        HostIommu::alignment(self)
    }

    fn valid_iova_ranges(&self) -> Vec<Range<u64>> {
        HostIommu::valid_iova_ranges(self)
    }

    fn max_mappings(&self) -> Option<u32> {
        HostIommu::max_mappings(self)
    }

    fn map(&self, iova: Iova, memory: &DmaMemory) -> io::Result<()> {
        HostIommu::map(self, iova, memory)
    }

    fn unmap(&self, iova: Iova, len: usize) -> io::Result<()> {
        HostIommu::unmap(self, iova, len)
    }
}

impl DeviceAccess for HostDevice {
    type Window = MmioRegion;
    type Mapper = HostIommu;

    fn config_len(&self) -> u64 {
        HostDevice::config_len(self)
    }

    fn config_read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        HostDevice::config_read(self, offset, buf)
    }

    fn config_write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        HostDevice::config_write(self, offset, data)
    }

    fn bar_len(&self, index: usize) -> Option<u64> {
        HostDevice::bar_len(self, index)
    }

    fn map_bar(&self, index: usize) -> io::Result<MmioRegion> {
        HostDevice::map_bar(self, index)
    }

    fn iommu(&self) -> Arc<HostIommu> {
        HostDevice::iommu(self)
    }

    fn msix_max(&self) -> usize {
        HostDevice::msix_max(self)
    }

    fn msix_enable(&self, vectors: &[Arc<EventFd>]) -> io::Result<()> {
        HostDevice::msix_enable(self, vectors)
    }

    fn msix_disable(&self) -> io::Result<()> {
        HostDevice::msix_disable(self)
    }

    fn reset(&self) -> io::Result<()> {
        HostDevice::reset(self)
    }
}

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

    fn write64(&self, offset: usize, value: u64) -> Result<(), BarAccessError> {
        MmioRegion::write64(self, offset, value)
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

#[cfg(test)]
mod tests {
    //! The real implementations and their fakes agree on what the VFIO logic relies on, so
    //! tests on the fakes say something about the real path.
    use std::fs::File;

    use super::*;
    use crate::vfio::testing::{FakeMemory, FakeWindow};

    /// What `read32` answers at the offsets whose checks matter, for a window of `len` bytes.
    fn reads<W: MmioWindow>(window: &W) -> Vec<Result<u32, BarAccessError>> {
        let len = window.len();
        [0, 4, 2, len - 4, len - 3, len, usize::MAX, usize::MAX - 3]
            .into_iter()
            .map(|offset| window.read32(offset))
            .collect()
    }

    #[test]
    fn real_and_fake_windows_refuse_the_same_offsets() {
        // A shared mapping of /dev/zero is plain shared memory: a stand-in BAR with no file.
        let file = File::options()
            .read(true)
            .write(true)
            .open("/dev/zero")
            .unwrap();
        let real = MmioRegion::map_device_region(Arc::new(file), 0, 0x1000).unwrap();
        let fake = FakeWindow::new(0x1000);
        assert_eq!(reads(&real), reads(&fake));
        for window in [&real as &dyn MmioWindow, &fake] {
            window.write32(0xFFC, 0xA5A5_5A5A).unwrap();
            assert_eq!(window.read32(0xFFC), Ok(0xA5A5_5A5A));
            assert!(window.write32(0x1000, 0).is_err());
            window.write64(0xFF8, 0x0807_0605_0403_0201).unwrap();
            assert_eq!(window.read32(0xFF8), Ok(0x0403_0201));
            assert_eq!(window.read32(0xFFC), Ok(0x0807_0605));
            assert_eq!(
                window.write64(0xFFC, 0),
                Err(BarAccessError::Misaligned { offset: 0xFFC })
            );
            assert!(window.write64(0x1000, 0).is_err());
        }
    }

    #[test]
    fn real_and_fake_memory_agree_on_bounds_and_contents() {
        let real = <DmaMemory as HostMemory>::allocate(100, 4096).unwrap();
        let fake = <FakeMemory as HostMemory>::allocate(100, 4096).unwrap();
        assert_eq!(
            HostMemory::len(&real),
            HostMemory::len(&fake),
            "rounded up alike"
        );
        assert!(!HostMemory::huge_pages(&real) && !HostMemory::huge_pages(&fake));
        let len = HostMemory::len(&real);
        for memory in [&real as &dyn DynMemory, &fake] {
            assert!(memory.write(len - 3, &[1, 2, 3]));
            assert!(!memory.write(len - 2, &[1, 2, 3]), "past the end");
            assert!(!memory.write(usize::MAX, &[1]), "overflowing offset");
            let mut back = [0u8; 4];
            assert!(memory.read(len - 4, &mut back));
            assert_eq!(back, [0, 1, 2, 3], "zeroed, then written");
            assert!(!memory.read(len - 3, &mut back), "past the end");
        }
    }

    /// The copy half of [`HostMemory`], object safe, to run one check on both.
    trait DynMemory {
        fn read(&self, offset: usize, buf: &mut [u8]) -> bool;
        fn write(&self, offset: usize, data: &[u8]) -> bool;
    }

    impl<M: HostMemory> DynMemory for M {
        fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
            HostMemory::read(self, offset, buf)
        }
        fn write(&self, offset: usize, data: &[u8]) -> bool {
            HostMemory::write(self, offset, data)
        }
    }
}

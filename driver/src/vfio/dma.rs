//! [`VfioDma`]: the driver's [`DmaAllocator`] over one container — host memory, IOVAs from an
//! [`IovaAllocator`], IOMMU mappings — and the [`VfioDmaRegion`]s it hands out.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hac_sys::HostIommu;
use igb_hw::Iova;

use super::error::VfioError;
use super::seams::{HostMemory, IommuMapper};
use crate::backend::{DmaAllocator, DmaError, DmaRegion};
use crate::iova::{IovaAllocator, IovaError};

/// Size of a 2 MiB huge page: IOVAs of huge-page memory are aligned to it so the IOMMU can use
/// 2 MiB pages too.
pub const HUGE_PAGE: u64 = 2 << 20;

/// Counters of a [`VfioDma`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaStats {
    /// Regions mapped now (leaked ones included: they stay mapped).
    pub live_regions: usize,
    /// Bytes mapped now by live, non-leaked regions.
    pub mapped_bytes: u64,
    /// Live regions backed by 2 MiB huge pages.
    pub huge_page_regions: usize,
    /// Regions whose unmap failed on drop: their memory and IOVA are deliberately never reused.
    pub leaked_regions: usize,
    /// Out-of-range region reads/writes that were clamped (driver bugs).
    pub clamped_accesses: u64,
    /// IOVA bytes still free.
    pub free_iova_bytes: u64,
}

#[derive(Debug)]
struct DmaBook {
    iova: IovaAllocator,
    live: usize,
    mapped_bytes: u64,
    huge: usize,
    leaked: usize,
}

struct DmaShared<M: IommuMapper> {
    mapper: Arc<M>,
    book: Mutex<DmaBook>,
    clamped: AtomicU64,
}

impl<M: IommuMapper> DmaShared<M> {
    /// Locks the bookkeeping, recovering from poisoning: every update under the lock is
    /// completed before anything that could panic.
    fn book(&self) -> MutexGuard<'_, DmaBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The DMA allocator of one VFIO container: host memory from `M::Memory`, IOVAs from an
/// [`IovaAllocator`] over the IOMMU's valid windows, mappings through `M`. Clones share
/// everything.
pub struct VfioDma<M: IommuMapper = HostIommu> {
    shared: Arc<DmaShared<M>>,
}

impl<M: IommuMapper> Clone for VfioDma<M> {
    fn clone(&self) -> Self {
        VfioDma {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: IommuMapper> fmt::Debug for VfioDma<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioDma")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Why an IOMMU map failed, with the usual fix.
fn map_failure_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOMEM) => format!(
            "{e}: the locked-memory limit is too low (raise `ulimit -l` / RLIMIT_MEMLOCK; \
             mlock and the IOMMU pin both count) or the host is out of memory"
        ),
        Some(libc::ENOSPC) => {
            format!("{e}: too many DMA mappings (vfio_iommu_type1 dma_entry_limit)")
        }
        _ => e.to_string(),
    }
}

impl<M: IommuMapper> VfioDma<M> {
    /// An allocator over `mapper`'s IOVA windows.
    pub fn new(mapper: Arc<M>) -> Result<VfioDma<M>, VfioError> {
        let iova = IovaAllocator::new(&mapper.valid_iova_ranges(), mapper.alignment())?;
        Ok(VfioDma {
            shared: Arc::new(DmaShared {
                mapper,
                book: Mutex::new(DmaBook {
                    iova,
                    live: 0,
                    mapped_bytes: 0,
                    huge: 0,
                    leaked: 0,
                }),
                clamped: AtomicU64::new(0),
            }),
        })
    }

    /// The IOMMU.
    pub fn mapper(&self) -> &Arc<M> {
        &self.shared.mapper
    }

    /// Current counters.
    pub fn stats(&self) -> DmaStats {
        let book = self.shared.book();
        DmaStats {
            live_regions: book.live,
            mapped_bytes: book.mapped_bytes,
            huge_page_regions: book.huge,
            leaked_regions: book.leaked,
            clamped_accesses: self.shared.clamped.load(Ordering::Relaxed),
            free_iova_bytes: book.iova.free_bytes(),
        }
    }
}

impl<M: IommuMapper> DmaAllocator for VfioDma<M> {
    type Region = VfioDmaRegion<M>;

    /// Allocates host memory (rounded up to the IOMMU page size; to 2 MiB when huge pages back
    /// it), takes the lowest free IOVA range of that size (2 MiB aligned for huge pages) and maps
    /// it. On any failure nothing stays allocated.
    fn allocate(&self, len: usize) -> Result<VfioDmaRegion<M>, DmaError> {
        if len == 0 {
            return Err(DmaError::ZeroLength);
        }
        let shared = &self.shared;
        let page = shared.mapper.alignment();
        let align = usize::try_from(page).map_err(|_| DmaError::Map {
            iova: Iova(0),
            len,
            reason: format!("IOMMU page size {page:#x} exceeds the address space"),
        })?;
        let memory =
            M::Memory::allocate(len, align).map_err(|source| DmaError::Host { len, source })?;
        let size = memory.len();
        let huge = memory.huge_pages();
        let iova_align = if huge { HUGE_PAGE.max(page) } else { page };

        let range = {
            let mut book = shared.book();
            let limit = shared
                .mapper
                .max_mappings()
                .filter(|&max| book.live >= max as usize);
            if let Some(max) = limit {
                return Err(DmaError::Map {
                    iova: Iova(0),
                    len: size,
                    reason: format!(
                        "{max} IOMMU mappings already exist (vfio_iommu_type1 dma_entry_limit)"
                    ),
                });
            }
            let range = book
                .iova
                .allocate_aligned(size as u64, iova_align)
                .map_err(|e| match e {
                    IovaError::ZeroLength => DmaError::ZeroLength,
                    IovaError::Exhausted { .. } | IovaError::TooLarge { .. } => {
                        DmaError::IovaExhausted(size)
                    }
                    other => DmaError::Map {
                        iova: Iova(0),
                        len: size,
                        reason: other.to_string(),
                    },
                })?;
            book.live += 1;
            range
        };

        if let Err(e) = shared.mapper.map(range.start(), &memory) {
            let mut book = shared.book();
            // Cannot fail: the range was allocated above and nobody else frees it.
            let _ = book.iova.free(range.start());
            book.live -= 1;
            return Err(DmaError::Map {
                iova: range.start(),
                len: size,
                reason: map_failure_reason(&e),
            });
        }
        {
            let mut book = shared.book();
            book.mapped_bytes += size as u64;
            book.huge += usize::from(huge);
        }
        Ok(VfioDmaRegion {
            shared: Arc::clone(shared),
            memory: Some(memory),
            iova: range.start(),
            len: size,
            huge,
        })
    }
}

/// DMA memory mapped at [`DmaRegion::iova`] in the device's IOMMU. On drop it is unmapped, its
/// IOVA range freed and its memory released — unless the unmap fails, in which case memory and
/// IOVA are leaked on purpose (the device may still reach them) and counted in
/// [`DmaStats::leaked_regions`].
pub struct VfioDmaRegion<M: IommuMapper = HostIommu> {
    shared: Arc<DmaShared<M>>,
    /// `None` only during drop.
    memory: Option<M::Memory>,
    iova: Iova,
    len: usize,
    huge: bool,
}

impl<M: IommuMapper> fmt::Debug for VfioDmaRegion<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioDmaRegion")
            .field("iova", &self.iova)
            .field("len", &self.len)
            .field("huge", &self.huge)
            .finish()
    }
}

impl<M: IommuMapper> VfioDmaRegion<M> {
    /// Whether 2 MiB huge pages back it.
    pub fn huge_pages(&self) -> bool {
        self.huge
    }

    /// The in-range part of an access of `count` bytes at `offset`; counts clamped accesses.
    fn clamp(&self, offset: usize, count: usize) -> usize {
        let inside = self.len.saturating_sub(offset).min(count);
        if inside < count {
            self.shared.clamped.fetch_add(1, Ordering::Relaxed);
        }
        inside
    }
}

impl<M: IommuMapper> DmaRegion for VfioDmaRegion<M> {
    fn iova(&self) -> Iova {
        self.iova
    }

    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let inside = self.clamp(offset, buf.len());
        let (head, tail) = buf.split_at_mut(inside);
        let read = inside == 0 || self.memory.as_ref().is_some_and(|m| m.read(offset, head));
        if !read {
            head.fill(0);
        }
        tail.fill(0);
    }

    fn write(&self, offset: usize, data: &[u8]) {
        let inside = self.clamp(offset, data.len());
        if let Some(m) = self.memory.as_ref().filter(|_| inside > 0) {
            m.write(offset, &data[..inside]);
        }
    }
}

impl<M: IommuMapper> Drop for VfioDmaRegion<M> {
    fn drop(&mut self) {
        let Some(memory) = self.memory.take() else {
            return;
        };
        let unmapped = self.shared.mapper.unmap(self.iova, self.len);
        let mut book = self.shared.book();
        book.mapped_bytes -= self.len as u64;
        book.huge -= usize::from(self.huge);
        if unmapped.is_ok() {
            // Cannot fail: this region owns the range.
            let _ = book.iova.free(self.iova);
            book.live -= 1;
            drop(book);
            drop(memory);
        } else {
            // The device may still write it: never free or reuse it.
            book.leaked += 1;
            std::mem::forget(memory);
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case
mod tests {

    use igb_hw::Iova;

    use super::*;
    use crate::backend::{DmaAllocator, DmaError, DmaRegion};
    use crate::iova::IovaError;
    use crate::vfio::testing::{FakeDevice, FakeDeviceConfig, IommuEvent};
    use crate::vfio::tests::{bdf, open};
    use crate::vfio::*;

    #[test]
    fn dma_regions_are_mapped_disjoint_and_unmapped_on_drop() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let dma = dev.dma();
        let iommu = dev.access().fake_iommu();
        let a = dma.allocate(100).unwrap();
        let b = dma.allocate(4096 * 3 + 1).unwrap();
        assert_eq!(a.len(), 4096);
        assert_eq!(b.len(), 4096 * 4);
        assert_eq!(a.iova(), Iova(0x1000), "page 0 is never used");
        assert_eq!(b.iova(), Iova(0x2000));
        assert_eq!(
            iommu.mappings(),
            vec![(Iova(0x1000), 4096), (Iova(0x2000), 4096 * 4)]
        );
        assert_eq!(dma.stats().live_regions, 2);
        assert_eq!(dma.stats().mapped_bytes, 5 * 4096);
        let a_iova = a.iova();
        drop(a);
        assert_eq!(iommu.mappings(), vec![(Iova(0x2000), 4096 * 4)]);
        assert_eq!(
            iommu.events(),
            vec![
                IommuEvent::Map {
                    iova: Iova(0x1000),
                    len: 4096
                },
                IommuEvent::Map {
                    iova: Iova(0x2000),
                    len: 4 * 4096
                },
                IommuEvent::Unmap {
                    iova: Iova(0x1000),
                    len: 4096
                },
            ]
        );
        // The freed IOVA is reused first.
        let c = dma.allocate(1).unwrap();
        assert_eq!(c.iova(), a_iova);
        drop((b, c));
        assert!(iommu.mappings().is_empty());
        let stats = dma.stats();
        assert_eq!(
            (stats.live_regions, stats.mapped_bytes, stats.leaked_regions),
            (0, 0, 0)
        );
    }

    #[test]
    fn dma_data_is_what_the_device_sees() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let iommu = dev.access().fake_iommu();
        let r = dev.dma().allocate(8192).unwrap();
        r.write(4090, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut seen = [0u8; 8];
        iommu
            .device_read(Iova(r.iova().0 + 4090), &mut seen)
            .unwrap();
        assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
        iommu
            .device_write(Iova(r.iova().0 + 16), &0xCAFE_F00Du32.to_le_bytes())
            .unwrap();
        assert_eq!(r.read_u32(16), 0xCAFE_F00D);
        let end = Iova(r.iova().0 + 8192);
        drop(r);
        assert!(
            iommu.device_read(Iova(end.0 - 8192), &mut seen).is_err(),
            "unmapped after drop"
        );
    }

    #[test]
    fn out_of_range_region_accesses_are_clamped_and_counted() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let dma = dev.dma();
        let r = dma.allocate(4096).unwrap();
        r.write(4094, &[0xAA, 0xBB, 0xCC, 0xDD]);
        let mut buf = [0xFFu8; 4];
        r.read(4094, &mut buf);
        assert_eq!(buf, [0xAA, 0xBB, 0, 0]);
        r.read(usize::MAX, &mut buf);
        assert_eq!(buf, [0; 4]);
        r.write(usize::MAX - 1, &[1, 2, 3]);
        r.read(4096, &mut []);
        assert_eq!(dma.stats().clamped_accesses, 4);
    }

    #[test]
    fn failed_map_frees_the_iova_and_reports_the_memlock_hint() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let dma = dev.dma();
        let iommu = dev.access().fake_iommu();
        iommu.fail_next_map(libc::ENOMEM);
        match dma.allocate(4096) {
            Err(DmaError::Map { iova, len, reason }) => {
                assert_eq!((iova, len), (Iova(0x1000), 4096));
                assert!(reason.contains("ulimit -l"), "{reason}");
            }
            other => panic!("expected a map error, got {other:?}"),
        }
        assert_eq!(dma.stats().live_regions, 0);
        assert_eq!(dma.allocate(4096).unwrap().iova(), Iova(0x1000));
    }

    #[test]
    fn failed_unmap_leaks_instead_of_reusing() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let dma = dev.dma();
        let iommu = dev.access().fake_iommu();
        let r = dma.allocate(4096).unwrap();
        let iova = r.iova();
        iommu.fail_next_unmap(libc::EIO);
        drop(r);
        let stats = dma.stats();
        assert_eq!(
            (stats.leaked_regions, stats.live_regions, stats.mapped_bytes),
            (1, 1, 0)
        );
        assert_eq!(iommu.mappings(), vec![(iova, 4096)]);
        assert_ne!(
            dma.allocate(4096).unwrap().iova(),
            iova,
            "a leaked IOVA is never reused"
        );
    }

    #[test]
    fn dma_errors_zero_host_exhaustion_and_mapping_limit() {
        let config = FakeDeviceConfig {
            iova_ranges: vec![0..0x5000],
            max_mappings: Some(3),
            ..FakeDeviceConfig::igbvf_82576()
        };
        let dev = open(config);
        let dma = dev.dma();
        assert!(matches!(dma.allocate(0), Err(DmaError::ZeroLength)));
        assert!(matches!(
            dma.allocate(usize::MAX),
            Err(DmaError::Host { .. })
        ));
        assert!(matches!(
            dma.allocate(0x5000),
            Err(DmaError::IovaExhausted(0x5000))
        ));
        let keep: Vec<_> = (0..3).map(|_| dma.allocate(1).unwrap()).collect();
        match dma.allocate(1) {
            Err(DmaError::Map { reason, .. }) => assert!(reason.contains("dma_entry_limit")),
            other => panic!("expected the mapping limit, got {other:?}"),
        }
        drop(keep);
        let r = dma.allocate(0x4000).unwrap();
        assert_eq!(r.iova(), Iova(0x1000));
        assert!(matches!(
            dma.allocate(1),
            Err(DmaError::IovaExhausted(4096))
        ));
    }

    #[test]
    fn an_iommu_without_usable_iova_space_is_refused() {
        let config = FakeDeviceConfig {
            iova_ranges: vec![0..0x1000],
            ..Default::default()
        };
        let err = VfioDevice::from_access(bdf(), FakeDevice::new(config)).unwrap_err();
        assert!(matches!(
            err,
            VfioError::Iova(IovaError::NoUsableWindow { .. })
        ));
    }

    #[test]
    fn dma_regions_outlive_the_device() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let iommu = dev.access().fake_iommu();
        let dma = dev.dma();
        let r = dma.allocate(4096).unwrap();
        drop(dev);
        r.write_u32(0, 5);
        assert_eq!(r.read_u32(0), 5);
        drop(r);
        assert!(iommu.mappings().is_empty());
    }
}

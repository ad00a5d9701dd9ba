//! [`VfioDma`]: the driver's [`DmaAllocator`] over one container — host memory, IOVAs from an
//! [`IovaAllocator`], IOMMU mappings — and the [`VfioDmaRegion`]s it hands out.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use igb_hw::Iova;

use crate::backend::{DmaAllocator, DmaError, DmaRegion};
use crate::iova::{IovaAllocator, IovaError};

use super::HUGE_PAGE;
use super::error::VfioError;
use super::seams::{HostMemory, IommuMapper};
use hac_sys::HostIommu;

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

//! DMA memory: anonymous, page-aligned, locked mappings accessed only through volatile copies.
//!
//! [`DmaMemory::allocate`] maps anonymous private memory, trying 2 MiB huge pages first when the
//! length is at least 2 MiB (falling back to base pages when the hugetlb pool cannot supply
//! them), excludes it from `fork` (`MADV_DONTFORK`, so a child's copy-on-write can never move
//! a page the device still writes) and locks it (`mlock`, which also populates it). `Drop`
//! unmaps it. The memory is device-visible: no Rust reference into it is ever created; reads
//! and writes are bounds-checked volatile copies in aligned 8-byte words plus head/tail bytes.
//!
//! `DmaMemory` is `Send` but deliberately not `Sync`: one thread at a time accesses a region
//! (through `&self`), the device is the only concurrent party, and the device is outside the
//! Rust abstract machine exactly as MMIO is.

use std::io;
use std::ptr::NonNull;
use std::sync::OnceLock;

/// 2 MiB: the huge page size tried first.
pub const HUGE_PAGE: usize = 2 << 20;

/// The base page size of this host (`sysconf(_SC_PAGESIZE)`, 4096 if it cannot be read).
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions and only reads a system value.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        match usize::try_from(v) {
            Ok(p) if p.is_power_of_two() => p,
            _ => 4096,
        }
    })
}

/// An anonymous, locked, page-aligned mapping. See the module documentation.
#[derive(Debug)]
pub struct DmaMemory {
    base: NonNull<u8>,
    len: usize,
    huge: bool,
}

// SAFETY: `DmaMemory` exclusively owns its mapping (nothing else in the process knows the
// address; the IOMMU mapping is the device's view, not another Rust owner), so moving it to
// another thread moves that ownership. It is not `Sync`: see the module documentation.
unsafe impl Send for DmaMemory {}

fn round_up(value: usize, align: usize) -> Option<usize> {
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `mmap` of `len` anonymous private read/write bytes with extra `flags`, or the OS error.
fn map_anonymous(len: usize, flags: libc::c_int) -> io::Result<NonNull<u8>> {
    // SAFETY: a new anonymous mapping at an address the kernel chooses (NULL hint, no
    // MAP_FIXED): it cannot overlap or replace any existing memory. The result is checked
    // against MAP_FAILED before use.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(addr.cast::<u8>()).ok_or_else(|| invalid("mmap returned NULL"))
}

/// Unmaps `len` bytes at `addr`.
///
/// Only called on whole pages of mappings created in this module that nothing refers to.
fn unmap(addr: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: callers pass page-aligned sub-ranges of a mapping this module created and still
    // owns, with no pointer into them kept. munmap of such a range cannot fail except with
    // EINVAL for bad arguments, which the callers' arithmetic rules out; nothing can be done
    // about a failure during cleanup, so the result is ignored.
    let _ = unsafe { libc::munmap(addr.cast(), len) };
}

impl DmaMemory {
    /// Maps, excludes from fork and locks `len` bytes (rounded up to the page size and to
    /// `align`, a power of two; huge-page backed memory is rounded up to 2 MiB). The memory
    /// starts zeroed.
    pub fn allocate(len: usize, align: usize) -> io::Result<DmaMemory> {
        if len == 0 {
            return Err(invalid("zero-length DMA memory"));
        }
        let page = page_size();
        let align = align.max(page);
        if !align.is_power_of_two() {
            return Err(invalid("DMA memory alignment is not a power of two"));
        }
        let len = round_up(len, align).ok_or_else(|| invalid("DMA memory length overflows"))?;

        // Huge pages are naturally 2 MiB aligned. Failure (no hugetlb pool, pool exhausted:
        // ENOMEM) is the expected case on most hosts: fall back to base pages below.
        let huge_len = round_up(len, HUGE_PAGE).filter(|_| len >= HUGE_PAGE && align <= HUGE_PAGE);
        let huge = huge_len.map(|l| (l, map_anonymous(l, libc::MAP_HUGETLB | libc::MAP_HUGE_2MB)));
        if let Some((huge_len, Ok(base))) = huge {
            return DmaMemory::finish(base, huge_len, true);
        }

        // Base pages. If the alignment exceeds the page size, over-allocate and trim.
        let slack = align - page;
        let map_len = len
            .checked_add(slack)
            .ok_or_else(|| invalid("DMA memory length overflows"))?;
        let raw = map_anonymous(map_len, 0)?;
        let head = raw.as_ptr().align_offset(align);
        if head > slack {
            unmap(raw.as_ptr(), map_len);
            return Err(invalid("cannot align DMA memory"));
        }
        // SAFETY: `head <= slack`, so `raw + head .. raw + head + len` lies inside the
        // `map_len = len + slack` bytes just mapped.
        let base = unsafe { raw.add(head) };
        unmap(raw.as_ptr(), head);
        // SAFETY: `head + len <= map_len`, so this is the (possibly empty) tail of the mapping.
        unmap(unsafe { base.as_ptr().add(len) }, slack - head);
        DmaMemory::finish(base, len, false)
    }

    /// Excludes the mapping from fork and locks it; unmaps it on failure.
    fn finish(base: NonNull<u8>, len: usize, huge: bool) -> io::Result<DmaMemory> {
        // SAFETY: `base..base+len` is a whole mapping this module just created; madvise and
        // mlock only change its attributes and do not invalidate it.
        let advise = unsafe { libc::madvise(base.as_ptr().cast(), len, libc::MADV_DONTFORK) };
        if advise != 0 {
            let err = io::Error::last_os_error();
            unmap(base.as_ptr(), len);
            return Err(err);
        }
        // SAFETY: as above.
        if unsafe { libc::mlock(base.as_ptr().cast(), len) } != 0 {
            let err = io::Error::last_os_error();
            unmap(base.as_ptr(), len);
            return Err(io::Error::new(
                err.kind(),
                format!(
                    "mlock of {len} bytes failed: {err} (raise the locked-memory limit, \
                     `ulimit -l`, or run with CAP_IPC_LOCK)"
                ),
            ));
        }
        Ok(DmaMemory { base, len, huge })
    }

    /// Host virtual address of byte 0 (what `VFIO_IOMMU_MAP_DMA` is given).
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.base.as_ptr()
    }

    /// Range check shared by `read` and `write`.
    fn in_bounds(&self, offset: usize, count: usize) -> bool {
        offset.checked_add(count).is_some_and(|end| end <= self.len)
    }
}

/// Copies `dst.len()` bytes from `src` with volatile loads (aligned 8-byte words where
/// possible).
///
/// # Safety
///
/// `src .. src + dst.len()` must be inside a live mapping that is valid for reads.
pub(crate) unsafe fn volatile_copy_from(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let head = src.align_offset(8).min(len);
    let words = (len - head) / 8;
    let mut i = 0;
    while i < head {
        // SAFETY: `i < len`: inside the caller's range.
        dst[i] = unsafe { src.add(i).read_volatile() };
        i += 1;
    }
    for _ in 0..words {
        // SAFETY: `src + i` is 8-byte aligned (past the head) and `i + 8 <= len`.
        let w = unsafe { src.add(i).cast::<u64>().read_volatile() };
        dst[i..i + 8].copy_from_slice(&w.to_ne_bytes());
        i += 8;
    }
    while i < len {
        // SAFETY: `i < len`.
        dst[i] = unsafe { src.add(i).read_volatile() };
        i += 1;
    }
}

/// Copies `src` to `dst` with volatile stores (aligned 8-byte words where possible).
///
/// # Safety
///
/// `dst .. dst + src.len()` must be inside a live mapping that is valid for writes and that no
/// Rust reference points into.
pub(crate) unsafe fn volatile_copy_to(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let head = dst.align_offset(8).min(len);
    let words = (len - head) / 8;
    let mut i = 0;
    while i < head {
        // SAFETY: `i < len`: inside the caller's range.
        unsafe { dst.add(i).write_volatile(src[i]) };
        i += 1;
    }
    for _ in 0..words {
        let mut w = [0u8; 8];
        w.copy_from_slice(&src[i..i + 8]);
        // SAFETY: `dst + i` is 8-byte aligned (past the head) and `i + 8 <= len`.
        unsafe {
            dst.add(i)
                .cast::<u64>()
                .write_volatile(u64::from_ne_bytes(w))
        };
        i += 8;
    }
    while i < len {
        // SAFETY: `i < len`.
        unsafe { dst.add(i).write_volatile(src[i]) };
        i += 1;
    }
}

impl DmaMemory {
    /// Length in bytes (what is mapped: the requested length rounded up).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for zero bytes (never: `allocate` refuses zero lengths).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it is backed by 2 MiB huge pages.
    pub fn huge_pages(&self) -> bool {
        self.huge
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; false (and nothing read) if the range is
    /// not entirely inside.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        if !self.in_bounds(offset, buf.len()) {
            return false;
        }
        // SAFETY: `offset + buf.len() <= len` (checked above), so the source range is inside
        // the mapping, which lives as long as `self`.
        unsafe { volatile_copy_from(self.base.as_ptr().add(offset), buf) };
        true
    }

    /// Copies `data` to `offset`; false (and nothing written) if the range is not entirely
    /// inside.
    pub fn write(&self, offset: usize, data: &[u8]) -> bool {
        if !self.in_bounds(offset, data.len()) {
            return false;
        }
        // SAFETY: in bounds as above; the mapping is writable and never referenced by Rust
        // references (only these volatile copies touch it).
        unsafe { volatile_copy_to(self.base.as_ptr().add(offset), data) };
        true
    }
}

impl Drop for DmaMemory {
    fn drop(&mut self) {
        // Owners unmap the IOVA before dropping the memory (the driver's DMA regions do, and
        // leak the memory when the unmap fails). Were it still mapped, the IOMMU's pins would
        // keep its pages away from this process, so no later allocation could be reached.
        unmap(self.base.as_ptr(), self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_allocation_is_page_aligned_zeroed_and_rounded() {
        let m = DmaMemory::allocate(100, 1).unwrap();
        assert_eq!(m.len(), page_size());
        assert_eq!(m.as_ptr() as usize % page_size(), 0);
        assert!(!m.huge_pages());
        let mut buf = vec![0xAAu8; m.len()];
        assert!(m.read(0, &mut buf));
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn zero_length_and_bad_alignment_are_refused() {
        assert_eq!(
            DmaMemory::allocate(0, 4096).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            DmaMemory::allocate(4096, 3 * page_size())
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(DmaMemory::allocate(usize::MAX - 10, 4096).is_err());
    }

    #[test]
    fn alignment_above_the_page_size_is_honoured() {
        let align = 64 * page_size();
        let m = DmaMemory::allocate(page_size(), align).unwrap();
        assert_eq!(m.as_ptr() as usize % align, 0);
        assert_eq!(m.len(), align);
        assert!(m.write(align - 1, &[7]));
    }

    #[test]
    fn copies_round_trip_at_every_alignment_and_refuse_out_of_bounds() {
        let m = DmaMemory::allocate(3 * page_size(), 1).unwrap();
        let pattern: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for offset in 0..17 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 200] {
                assert!(m.write(offset, &pattern[..len]));
                let mut back = vec![0u8; len];
                assert!(m.read(offset, &mut back));
                assert_eq!(back, &pattern[..len], "offset {offset} len {len}");
            }
        }
        let end = m.len();
        let mut b = [0u8; 4];
        assert!(!m.read(end - 3, &mut b));
        assert!(!m.write(end - 3, &b));
        assert!(!m.read(usize::MAX, &mut b));
        assert!(!m.write(usize::MAX - 1, &b));
        assert!(m.read(end - 4, &mut b));
        assert!(m.read(end, &mut []));
        assert!(!m.read(end + 1, &mut []));
    }

    #[test]
    fn large_allocations_use_huge_pages_or_fall_back() {
        let m = DmaMemory::allocate(HUGE_PAGE + 1, 1).unwrap();
        if m.huge_pages() {
            assert_eq!(m.len(), 2 * HUGE_PAGE);
            assert_eq!(m.as_ptr() as usize % HUGE_PAGE, 0);
        } else {
            assert_eq!(m.len(), HUGE_PAGE + page_size());
        }
        assert!(m.write(m.len() - 8, &1u64.to_le_bytes()));
        let mut b = [0u8; 8];
        assert!(m.read(m.len() - 8, &mut b));
        assert_eq!(u64::from_le_bytes(b), 1);
    }
}

//! The one shared file mapping: `mmap(MAP_SHARED)` of a window of a file descriptor with its
//! checks, `munmap` on drop.
//!
//! Both a BAR mapped from a VFIO device fd ([`crate::mmio`]) and a VM's memory received as a
//! file descriptor ([`crate::guest_map`]) are this: memory outside the Rust abstract machine
//! (a device, or another process's vCPUs, writes it concurrently), so [`SharedMapping`] never
//! hands out a reference into it, only its base address for volatile accesses by its owner.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// `len` bytes of a file mapped read/write and shared at a kernel-chosen, page-aligned address;
/// unmapped exactly once, on drop.
#[derive(Debug)]
pub struct SharedMapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (nothing else in the process knows its
// address); moving it to another thread moves that ownership.
unsafe impl Send for SharedMapping {}
// Deliberately not `Sync`: whether shared access is sound depends on how the owner accesses the
// memory, so each owner that is `Sync` says why (`MmioRegion`, `GuestMapping`).

impl SharedMapping {
    /// Maps `len` bytes of `fd` at `offset`, read/write and `MAP_SHARED`.
    ///
    /// Refused (`InvalidInput`) before any system call: a zero length, an offset that does not
    /// fit `off_t`. The kernel refuses (`EINVAL`) an offset that is not page aligned.
    pub fn map(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<SharedMapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "zero-length mapping",
            ));
        }
        let file_offset = libc::off_t::try_from(offset).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "mapping offset out of range")
        })?;
        // SAFETY: a fresh mapping at an address the kernel chooses (NULL hint, no MAP_FIXED),
        // so it cannot replace existing memory; `fd` is a live descriptor for the duration of
        // the call (the borrow). The result is checked against MAP_FAILED before use.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                file_offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "mmap returned NULL"))?;
        Ok(SharedMapping { base, len })
    }

    /// First byte of the mapping (page aligned). Valid for `len()` bytes as long as `self`
    /// lives; never to be turned into a reference.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Bytes mapped (never 0).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: [`SharedMapping::map`] refuses zero lengths.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `count` bytes at `offset` lie entirely inside the mapping.
    pub fn contains(&self, offset: u64, count: usize) -> bool {
        offset
            .checked_add(count as u64)
            .is_some_and(|end| end <= self.len as u64)
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is exactly the mapping `map` created; it is unmapped once
        // (here) and its owners keep no pointer into it past `self`. A failure (EINVAL) is
        // impossible for a mapping we created, and nothing useful can be done with it here.
        let _ = unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A regular file in the temporary directory, already unlinked, for tests that need a real file
/// (not a memfd) behind a mapping.
#[cfg(test)]
pub(crate) fn unlinked_temp_file(tag: &str) -> std::fs::File {
    #![allow(clippy::unwrap_used)]
    let path = std::env::temp_dir().join(format!(
        "hac-sys-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let _ = std::fs::remove_file(&path);
    file
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;

    fn memfd(len: u64) -> std::fs::File {
        let fd = rustix::fs::memfd_create("hac-sys-map", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, len).unwrap();
        std::fs::File::from(fd)
    }

    #[test]
    fn a_window_maps_shared_and_is_bounds_described() {
        let f = memfd(0x3000);
        f.write_all_at(&[0xAB], 0x1000 + 5).unwrap();
        let m = SharedMapping::map(f.as_fd(), 0x1000, 0x2000).unwrap();
        assert_eq!(m.len(), 0x2000);
        assert!(!m.is_empty());
        assert_eq!(m.as_ptr().align_offset(4096), 0, "page aligned");
        assert!(m.contains(0, 0x2000));
        assert!(m.contains(0x1FFF, 1));
        assert!(!m.contains(0x1FFF, 2));
        assert!(!m.contains(u64::MAX, 1));
        // SAFETY: offset 5 is inside the live mapping; a volatile byte load creates no reference.
        let b = unsafe { m.as_ptr().add(5).read_volatile() };
        assert_eq!(b, 0xAB, "the window starts at the file offset");
    }

    #[test]
    fn bad_windows_are_errors_not_mappings() {
        let f = memfd(0x1000);
        for (offset, len) in [(0, 0), (0x123, 0x1000), (u64::MAX, 0x1000)] {
            assert!(
                SharedMapping::map(f.as_fd(), offset, len).is_err(),
                "{offset:#x}+{len:#x}"
            );
        }
    }
}

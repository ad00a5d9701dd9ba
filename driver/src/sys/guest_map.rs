//! A VM's memory shared with us through a file descriptor (vfio-user `DMA_MAP`), mapped
//! `MAP_SHARED` and accessed only through bounds-checked volatile copies.
//!
//! The client (QEMU) sends one descriptor per guest RAM section with the section's offset in
//! the file; [`GuestMapping::map`] maps exactly that window. The guest's vCPUs write the same
//! pages concurrently from another process: like MMIO, that memory is outside the Rust abstract
//! machine, so no Rust reference into it is ever created. Inside this process every access goes
//! through the model's device lock (the only caller is the model's DMA engine through
//! [`nic_model::DmaTarget`]), so the mapping is never touched by two of our threads at once.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// A shared mapping of `len` bytes of a file at a page-aligned offset; unmapped on drop.
#[derive(Debug)]
pub struct GuestMapping {
    /// Start of the mapping (page aligned).
    base: NonNull<u8>,
    /// Bytes mapped.
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (nothing else in the process knows its
// address); moving it to another thread moves that ownership.
unsafe impl Send for GuestMapping {}
// SAFETY: `&self` methods only perform volatile copies at checked offsets; callers serialise
// them (the model's device lock), and the concurrent writer is another process, which Rust's
// aliasing rules do not cover (as with MMIO). No reference into the mapping is handed out.
unsafe impl Sync for GuestMapping {}

impl GuestMapping {
    /// Maps `len` bytes of `fd` at `offset` (a multiple of the page size) read/write and shared.
    pub fn map(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<GuestMapping> {
        let page = super::dma::page_size() as u64;
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "zero-length mapping",
            ));
        }
        if !offset.is_multiple_of(page) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "file offset is not page aligned",
            ));
        }
        let len_usize = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mapping too large"))?;
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: a new mapping at an address the kernel chooses (NULL hint, no MAP_FIXED), so
        // it cannot replace existing memory; `fd` is a live descriptor for the duration of the
        // call (the borrow). The result is checked against MAP_FAILED before use.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len_usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                off,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(GuestMapping {
            base,
            len: len_usize,
        })
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty mapping (never: `map` refuses zero lengths).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn in_bounds(&self, offset: u64, count: usize) -> bool {
        offset
            .checked_add(count as u64)
            .is_some_and(|end| end <= self.len as u64)
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; `false` (and `buf` untouched) when the
    /// range is outside the mapping.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        if !self.in_bounds(offset, buf.len()) {
            return false;
        }
        let src = self.base.as_ptr().cast_const();
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `offset + i < offset + buf.len() <= len` (checked above): inside the
            // mapping, which lives as long as `self`.
            *b = unsafe { src.add(offset as usize + i).read_volatile() };
        }
        true
    }

    /// Copies `data` to `offset`; `false` (and nothing written) when the range is outside the
    /// mapping.
    pub fn write(&self, offset: u64, data: &[u8]) -> bool {
        if !self.in_bounds(offset, data.len()) {
            return false;
        }
        let dst = self.base.as_ptr();
        for (i, b) in data.iter().enumerate() {
            // SAFETY: in bounds as in `read`; the mapping is writable (PROT_WRITE) and no Rust
            // reference into it exists.
            unsafe { dst.add(offset as usize + i).write_volatile(*b) };
        }
        true
    }
}

impl nic_model::DmaTarget for GuestMapping {
    fn len(&self) -> u64 {
        self.len as u64
    }

    fn read(&self, offset: u64, buf: &mut [u8]) {
        if !GuestMapping::read(self, offset, buf) {
            buf.fill(0);
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let _ = GuestMapping::write(self, offset, data);
    }
}

impl Drop for GuestMapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is exactly the mapping created in `map`, unmapped once here;
        // no reference into it exists.
        let _ = unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_shared_file_mapping_sees_the_file_and_writes_through() {
        let mut f = tempfile_in_tmp();
        f.write_all(&[7u8; 8192]).unwrap();
        let m = GuestMapping::map(f.as_fd(), 4096, 4096).unwrap();
        let mut b = [0u8; 4];
        assert!(m.read(0, &mut b));
        assert_eq!(b, [7; 4]);
        assert!(m.write(4092, &[1, 2, 3, 4]));
        assert!(!m.write(4093, &[1, 2, 3, 4]), "past the end is refused");
        assert!(!m.read(u64::MAX, &mut b));
        let again = GuestMapping::map(f.as_fd(), 4096, 4096).unwrap();
        assert!(again.read(4092, &mut b));
        assert_eq!(
            b,
            [1, 2, 3, 4],
            "MAP_SHARED: a second mapping sees the write"
        );
        assert!(GuestMapping::map(f.as_fd(), 1, 4096).is_err());
        assert!(GuestMapping::map(f.as_fd(), 0, 0).is_err());
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "hac-guest-map-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        f
    }
}

//! A VM's memory shared with us through a file descriptor (vfio-user `DMA_MAP`), mapped
//! `MAP_SHARED` and accessed only through bounds-checked copies through raw pointers: short
//! accesses (descriptors, status words) as volatile aligned 8-byte words (the copies of
//! [`crate::DmaMemory`]), frame data as one bulk copy.
//!
//! The client (QEMU) sends one descriptor per guest RAM section with the section's offset in
//! the file; [`GuestMapping::map`] maps exactly that window, after checking that it lies inside
//! the file and that the file cannot shrink under it (below). The guest's vCPUs write the same
//! pages concurrently from another process: like MMIO, that memory is outside the Rust abstract
//! machine, so no Rust reference into it is ever created. Callers serialise the accesses of this
//! process (the vfio-user front end reaches it only through the model's DMA engine, under the
//! device lock), so the mapping is never touched by two of our threads at once. The mapping
//! itself is the crate's one [`SharedMapping`].
//!
//! **No SIGBUS.** An access to a page of a shared mapping that lies beyond the end of its file
//! raises SIGBUS, which would kill the whole daemon (every VM's device). So a window must be
//! inside the file when it is mapped (`fstat`), and the file must be unable to shrink later:
//! it must carry the memfd seal `F_SEAL_SHRINK`. The seal is added here when the file allows
//! sealing (a memfd created with `MFD_ALLOW_SEALING` and not yet `F_SEAL_SEAL`ed); QEMU's
//! `memory-backend-memfd` applies it itself (its default `seal=on`). A file that is not sealed
//! and cannot be (a plain file, a memfd with `seal=off`) is refused: a client could truncate it
//! at any time.

use std::io;
use std::os::fd::BorrowedFd;

use crate::map::SharedMapping;

/// Accesses of up to this many bytes (igb descriptors, status and head write-backs, mlx5 CQEs,
/// EQEs and command entries) are volatile copies of aligned 8-byte words in ascending order, so
/// a guest polling a DD or ownership bit in the last word sees the words before it first (a
/// `memcpy` may store in any order); longer ones (frame data) are one bulk copy at `memcpy`
/// speed.
const WORD_COPY_MAX: usize = 64;

/// A shared mapping of `len` bytes of a file at a page-aligned offset; unmapped on drop.
#[derive(Debug)]
pub struct GuestMapping {
    mapping: SharedMapping,
}

// SAFETY: `&self` methods only perform volatile copies at checked offsets; callers serialise
// them (the model's device lock), and the concurrent writer is another process, which Rust's
// aliasing rules do not cover (as with MMIO). No reference into the mapping is handed out.
unsafe impl Sync for GuestMapping {}

impl GuestMapping {
    /// Maps `len` bytes of `fd` at `offset` (a multiple of the page size) read/write and shared.
    ///
    /// Refused (`InvalidInput`): a zero length, a misaligned offset, a descriptor that is not a
    /// regular file (memfd, tmpfs or hugetlbfs file), a window that ends past the file's size.
    /// Refused (`PermissionDenied`): a file that is not sealed against shrinking and cannot be
    /// (see the module documentation). On success the file carries `F_SEAL_SHRINK`.
    pub fn map(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<GuestMapping> {
        let page = crate::dma::page_size() as u64;
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
        check_file_window(fd, offset, len)?;
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mapping too large"))?;
        Ok(GuestMapping {
            mapping: SharedMapping::map(fd, offset, len)?,
        })
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// True for an empty mapping (never: `map` refuses zero lengths).
    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; `false` (and `buf` untouched) when the
    /// range is outside the mapping.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        if !self.mapping.contains(offset, buf.len()) {
            return false;
        }
        // SAFETY: `offset + buf.len() <= len` (checked above): the source range is inside the
        // mapping, which lives as long as `self`.
        let src = unsafe { self.mapping.as_ptr().cast_const().add(offset as usize) };
        if buf.len() <= WORD_COPY_MAX {
            // SAFETY: `src .. src + buf.len()` is inside the live mapping (above); volatile
            // loads only, no reference into it.
            unsafe { crate::dma::volatile_copy_from(src, buf) };
        } else {
            // SAFETY: as above; `buf` is our own memory, so the ranges cannot overlap. The copy
            // goes through raw pointers (no reference into guest memory is created) and reads
            // each byte once into `buf`; a guest writing the same bytes meanwhile (another
            // process) makes them torn, as a DMA racing a CPU store is on hardware.
            unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        }
        true
    }

    /// Copies `data` to `offset`; `false` (and nothing written) when the range is outside the
    /// mapping.
    pub fn write(&self, offset: u64, data: &[u8]) -> bool {
        if !self.mapping.contains(offset, data.len()) {
            return false;
        }
        // SAFETY: in bounds as in `read`.
        let dst = unsafe { self.mapping.as_ptr().add(offset as usize) };
        if data.len() <= WORD_COPY_MAX {
            // SAFETY: in bounds (above); the mapping is writable (PROT_WRITE); volatile stores
            // only, and no Rust reference into it exists.
            unsafe { crate::dma::volatile_copy_to(dst, data) };
        } else {
            // SAFETY: in bounds and writable as above; `data` is our own memory, so the ranges
            // cannot overlap; raw pointers only, each byte written once.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        }
        true
    }
}

/// The checks of [`GuestMapping::map`] on the file: a regular file not on hugetlbfs, the window
/// inside it, sealed against shrinking (the seal added when the file allows it).
fn check_file_window(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::{FileType, SealFlags};
    let stat = rustix::fs::fstat(fd)?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the descriptor is not a memory file ({kind:?})"),
        ));
    }
    // Hugetlbfs files are refused: a hole the client punches (F_SEAL_SHRINK does not stop
    // FALLOC_FL_PUNCH_HOLE) is refilled on the next access from the huge page pool, and an
    // exhausted pool answers that access with SIGBUS. Shmem (memfd) refills holes with zero pages.
    const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;
    // `f_type`'s width differs between architectures.
    #[allow(clippy::useless_conversion)]
    let fs_type = i64::from(rustix::fs::fstatfs(fd)?.f_type);
    if fs_type == HUGETLBFS_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the file is on hugetlbfs, whose pages a client can withdraw under the mapping: use a \
             memfd without hugetlb (QEMU memory-backend-memfd, hugetlb=off)",
        ));
    }
    let sealed = |fd| {
        rustix::fs::fcntl_get_seals(fd).is_ok_and(|s: SealFlags| s.contains(SealFlags::SHRINK))
    };
    if !sealed(fd) {
        // Fails (EPERM) when the file is F_SEAL_SEALed, (EINVAL) when it is no memfd.
        let _ = rustix::fs::fcntl_add_seals(fd, SealFlags::SHRINK);
        if !sealed(fd) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the file can shrink under the mapping (not sealed with F_SEAL_SHRINK and \
                 sealing not allowed): use a memfd with sealing (QEMU memory-backend-memfd, seal=on)",
            ));
        }
    }
    // Sealed first, then measured: the size cannot go down after this point.
    let stat = rustix::fs::fstat(fd)?;
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let end = offset.checked_add(len);
    if end.is_none_or(|end| end > size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("window {offset:#x}+{len:#x} ends past the end of its file ({size:#x} bytes)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_shared_file_mapping_sees_the_file_and_writes_through() {
        let f = memfd(8192);
        (&f).write_all(&[7u8; 8192]).unwrap();
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

    #[test]
    fn copies_at_every_alignment_and_length_agree_with_the_file() {
        let f = memfd(4096);
        let m = GuestMapping::map(f.as_fd(), 0, 4096).unwrap();
        let mut reference = vec![0u8; 4096];
        let mut k = 0u8;
        for off in 0..24usize {
            for len in [0usize, 1, 3, 7, 8, 9, 15, 16, 17, 60, 64, 100, 1514] {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        k = k.wrapping_add(61);
                        k
                    })
                    .collect();
                assert!(m.write(off as u64, &data));
                reference[off..off + len].copy_from_slice(&data);
                let mut whole = vec![0u8; 4096];
                assert!(m.read(0, &mut whole));
                assert!(whole == reference, "write {off}+{len}");
                let mut back = vec![0xEEu8; len];
                assert!(m.read(off as u64, &mut back));
                assert_eq!(back, data, "read {off}+{len}");
            }
        }
        let mut file = vec![0u8; 4096];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut file, 0).unwrap();
        assert!(file == reference, "the file holds what was written");
    }

    #[test]
    fn windows_past_the_end_of_the_file_are_refused() {
        let f = memfd(4096);
        for (offset, len) in [(0, 1 << 20), (4096, 4096), (0, 8192), (0, 1 << 44)] {
            let e = GuestMapping::map(f.as_fd(), offset, len).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("past the end of its file"), "{e}");
        }
        assert!(GuestMapping::map(f.as_fd(), 0, 4096).is_ok());
    }

    #[test]
    fn the_file_cannot_shrink_under_a_mapping() {
        let f = memfd(8192);
        let m = GuestMapping::map(f.as_fd(), 0, 8192).unwrap();
        // The seal was added: the client can no longer truncate (which would SIGBUS us).
        let e = rustix::fs::ftruncate(&f, 0).unwrap_err();
        assert_eq!(e, rustix::io::Errno::PERM);
        let mut b = [1u8; 4];
        assert!(m.read(8188, &mut b));
        assert_eq!(b, [0; 4]);
        // Growing stays allowed.
        rustix::fs::ftruncate(&f, 16384).unwrap();
    }

    #[test]
    fn files_that_can_shrink_are_refused() {
        // A memfd without MFD_ALLOW_SEALING (QEMU's seal=off), and a plain file.
        let unsealable =
            rustix::fs::memfd_create("hac-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&unsealable, 4096).unwrap();
        let plain = crate::map::unlinked_temp_file("guest-map");
        plain.set_len(4096).unwrap();
        for fd in [unsealable.as_fd(), plain.as_fd()] {
            let e = GuestMapping::map(fd, 0, 4096).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        }
        // Not a file at all.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let e = GuestMapping::map(a.as_fd(), 0, 4096).unwrap_err();
        assert!(e.to_string().contains("not a memory file"), "{e}");
    }

    #[test]
    fn hugetlbfs_files_are_refused() {
        // Found in review: a sealed hugetlb memfd passed, and a hole its client punches is
        // refilled from the huge page pool on the next access, or SIGBUS when it is exhausted.
        use rustix::fs::MemfdFlags;
        let fd = rustix::fs::memfd_create(
            "hac-test",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING | MemfdFlags::HUGETLB,
        )
        .expect("the kernel creates hugetlb memfds (even with no huge pages reserved)");
        rustix::fs::ftruncate(&fd, 2 << 20).unwrap();
        let e = GuestMapping::map(fd.as_fd(), 0, 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("hugetlbfs"), "{e}");
    }

    /// A sealable memfd of `size` bytes, as QEMU's memory-backend-memfd makes.
    fn memfd(size: u64) -> std::fs::File {
        use rustix::fs::MemfdFlags;
        let fd =
            rustix::fs::memfd_create("hac-test", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
                .unwrap();
        rustix::fs::ftruncate(&fd, size).unwrap();
        std::fs::File::from(fd)
    }
}

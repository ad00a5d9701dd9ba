//! A mapped BAR: volatile 32-bit reads and writes at bounds-checked, 4-byte-aligned offsets, and
//! single 64-bit writes at 8-byte-aligned ones (a 64-bit doorbell must not be torn in two).
//!
//! The mapping comes either from `pci-driver` ([`MappedOwningPciRegion`], which unmaps itself)
//! or from our own [`SharedMapping`] of a VFIO device fd region (unmapped when dropped). Either way the
//! region is device memory mapped `MAP_SHARED`: it is never turned into a Rust reference, every
//! access is one `read_volatile`/`write_volatile` of a `u32`, and an offset that is misaligned
//! or not fully inside the BAR is refused before any pointer arithmetic happens.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::Arc;

use pci_driver::regions::MappedOwningPciRegion;

use crate::map::SharedMapping;

/// A refused BAR access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BarAccessError {
    /// The offset is not a multiple of the access width (4, or 8 for a 64-bit write).
    #[error("BAR offset {offset:#x} is not aligned to the access width")]
    Misaligned {
        /// The offset.
        offset: usize,
    },
    /// Some of the accessed bytes lie outside the BAR.
    #[error("BAR offset {offset:#x} is outside the {len:#x}-byte BAR")]
    OutOfRange {
        /// The offset.
        offset: usize,
        /// The BAR's length.
        len: usize,
    },
}

/// Accepts `offset` for a 4-byte access to a BAR of `len` bytes: aligned and entirely inside.
pub fn check_bar_offset(offset: usize, len: usize) -> Result<(), BarAccessError> {
    check_bar_access(offset, 4, len)
}

/// Accepts `offset` for a `width`-byte access (4 or 8) to a BAR of `len` bytes: aligned to
/// `width` and entirely inside.
pub fn check_bar_access(offset: usize, width: usize, len: usize) -> Result<(), BarAccessError> {
    if width == 0 || !offset.is_multiple_of(width) {
        return Err(BarAccessError::Misaligned { offset });
    }
    match offset.checked_add(width) {
        Some(end) if end <= len => Ok(()),
        _ => Err(BarAccessError::OutOfRange { offset, len }),
    }
}

/// Who unmaps the region.
enum Owner {
    /// `pci-driver`'s mapping: its `Drop` unmaps (and it keeps the device open).
    PciDriver(#[allow(dead_code)] MappedOwningPciRegion),
    /// Our mapping of a region of this VFIO device fd (kept open while mapped); the mapping
    /// unmaps itself on drop.
    DeviceFile(
        #[allow(dead_code)] SharedMapping,
        #[allow(dead_code)] Arc<File>,
    ),
}

/// One BAR mapped into the process.
pub struct MmioRegion {
    base: NonNull<u8>,
    len: usize,
    /// Keeps the mapping alive (and unmaps it when dropped).
    _owner: Owner,
}

// SAFETY: `MmioRegion` only holds the address of a MAP_SHARED device mapping that lives as long
// as the value (the owner keeps it mapped), and every access through it is a single volatile
// u32 load or store at a checked offset. Such accesses from several threads are what MMIO is
// (the device serialises them); no Rust reference to the memory ever exists, so there is no
// aliasing or data-race assumption the compiler could rely on. `MappedOwningPciRegion` is itself
// Send + Sync, and so are `SharedMapping` and `Arc<File>`.
unsafe impl Send for MmioRegion {}
// SAFETY: as for `Send` above: shared access is only ever volatile MMIO through `&self`.
unsafe impl Sync for MmioRegion {}

impl std::fmt::Debug for MmioRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmioRegion")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

impl MmioRegion {
    /// Takes over a BAR mapped by `pci-driver`.
    pub fn from_pci_driver(region: MappedOwningPciRegion) -> io::Result<MmioRegion> {
        let len = region.len();
        let base = NonNull::new(region.as_mut_ptr()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "pci-driver returned a null BAR mapping",
            )
        })?;
        if base.as_ptr().align_offset(4) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "BAR mapping not 4-byte aligned",
            ));
        }
        Ok(MmioRegion {
            base,
            len,
            _owner: Owner::PciDriver(region),
        })
    }

    /// Maps `len` bytes at `offset` of the VFIO device fd `device` (a BAR region whose
    /// `VFIO_REGION_INFO_FLAG_MMAP` is set), shared and read/write.
    pub fn map_device_region(device: Arc<File>, offset: u64, len: usize) -> io::Result<MmioRegion> {
        let mapping = SharedMapping::map(device.as_fd(), offset, len)?;
        let base = NonNull::new(mapping.as_ptr())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "mmap returned NULL"))?;
        Ok(MmioRegion {
            base,
            len,
            _owner: Owner::DeviceFile(mapping, device),
        })
    }
}

impl MmioRegion {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length BAR (never: mappings refuse zero lengths).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the little-endian word at `offset` (4-byte aligned, inside the BAR).
    pub fn read32(&self, offset: usize) -> Result<u32, BarAccessError> {
        check_bar_offset(offset, self.len)?;
        // SAFETY: `check_bar_offset` guarantees `offset % 4 == 0` and `offset + 4 <= len`, so the
        // pointer stays inside the live mapping, and the base is page-aligned (checked at
        // construction), so the u32 access is aligned. The access is volatile and creates no
        // reference.
        let raw = unsafe { self.base.as_ptr().add(offset).cast::<u32>().read_volatile() };
        Ok(u32::from_le(raw))
    }

    /// Writes the little-endian word at `offset` (4-byte aligned, inside the BAR).
    pub fn write32(&self, offset: usize, value: u32) -> Result<(), BarAccessError> {
        check_bar_offset(offset, self.len)?;
        // SAFETY: as in `read32`: in bounds, aligned, volatile, no reference. Writing device
        // registers cannot break Rust invariants: the mapping is device memory, not memory any
        // Rust object lives in.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value.to_le())
        };
        Ok(())
    }

    /// Writes the 8 bytes at `offset` (8-byte aligned, inside the BAR) as ONE 64-bit store:
    /// `value` holds them in bus order (byte 0 least significant, as [`MmioRegion::write32`]).
    /// A 64-bit doorbell (mlx5's CQ arm and send doorbells) split into two 32-bit stores could
    /// be torn by another writer between the halves.
    /// (One store on a 64-bit host, which the VFIO backend targets.)
    pub fn write64(&self, offset: usize, value: u64) -> Result<(), BarAccessError> {
        check_bar_access(offset, 8, self.len)?;
        if self.base.as_ptr().align_offset(8) != 0 {
            return Err(BarAccessError::Misaligned { offset });
        }
        // SAFETY: `check_bar_access` guarantees `offset % 8 == 0` and `offset + 8 <= len`, so
        // the pointer stays inside the live mapping, and the base is 8-aligned (checked just
        // above; mappings are page-aligned), so the u64 access is aligned; on a 64-bit target
        // an aligned volatile u64 store is a single 8-byte bus write. Volatile, no reference; the mapping is device memory, not
        // memory any Rust object lives in.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u64>()
                .write_volatile(value.to_le())
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn check_bar_offset_edges() {
        assert_eq!(check_bar_offset(0, 4), Ok(()));
        assert_eq!(
            check_bar_offset(4, 4),
            Err(BarAccessError::OutOfRange { offset: 4, len: 4 })
        );
        assert_eq!(
            check_bar_offset(1, 8),
            Err(BarAccessError::Misaligned { offset: 1 })
        );
        assert!(check_bar_offset(usize::MAX - 3, usize::MAX).is_err());
    }

    /// A temporary file stands in for the VFIO device fd: same `mmap(MAP_SHARED)` path.
    fn backing_file(name: &str, len: u64) -> Arc<File> {
        let file = crate::map::unlinked_temp_file(&format!("mmio-{name}"));
        file.set_len(len).unwrap();
        Arc::new(file)
    }

    #[test]
    fn mapped_region_reads_and_writes_checked_words() {
        let file = backing_file("rw", 0x5000);
        file.write_all_at(&0xA5A5_0001u32.to_le_bytes(), 0x1000 + 8)
            .unwrap();
        // Map 16 KiB at offset 0x1000, as a BAR region at a device-fd offset.
        let bar = MmioRegion::map_device_region(Arc::clone(&file), 0x1000, 0x4000).unwrap();
        assert_eq!(bar.len(), 0x4000);
        assert_eq!(bar.read32(8), Ok(0xA5A5_0001));
        bar.write32(0x3FFC, 0x1234_5678).unwrap();
        let mut back = [0u8; 4];
        file.read_exact_at(&mut back, 0x1000 + 0x3FFC).unwrap();
        assert_eq!(u32::from_le_bytes(back), 0x1234_5678);
        for bad in [0x4000, 0x3FFD, 2, usize::MAX, usize::MAX - 3] {
            assert!(bar.read32(bad).is_err(), "{bad:#x}");
            assert!(bar.write32(bad, 0).is_err(), "{bad:#x}");
        }
    }

    #[test]
    fn write64_is_one_checked_little_endian_store() {
        let file = backing_file("rw64", 0x4000);
        let bar = MmioRegion::map_device_region(Arc::clone(&file), 0, 0x4000).unwrap();
        bar.write64(0x3FF8, 0x0807_0605_0403_0201).unwrap();
        let mut back = [0u8; 8];
        file.read_exact_at(&mut back, 0x3FF8).unwrap();
        assert_eq!(back, [1, 2, 3, 4, 5, 6, 7, 8], "bus order: byte 0 first");
        assert_eq!(bar.read32(0x3FFC), Ok(0x0807_0605));
        assert_eq!(
            bar.write64(0x3FFC, 0),
            Err(BarAccessError::Misaligned { offset: 0x3FFC })
        );
        for bad in [0x4000, 0x3FF9, 4, usize::MAX, usize::MAX - 7] {
            assert!(bar.write64(bad, 0).is_err(), "{bad:#x}");
        }
        assert_eq!(check_bar_access(0, 8, 8), Ok(()));
        assert!(check_bar_access(0, 8, 7).is_err());
        assert!(check_bar_access(0, 0, 8).is_err());
    }

    #[test]
    fn bad_mappings_are_errors() {
        let file = backing_file("bad", 0x1000);
        assert!(MmioRegion::map_device_region(Arc::clone(&file), 0, 0).is_err());
        assert!(MmioRegion::map_device_region(Arc::clone(&file), 0x123, 0x1000).is_err());
        assert!(MmioRegion::map_device_region(Arc::clone(&file), u64::MAX, 0x1000).is_err());
    }
}

//! [`VfioBar`]: a mapped BAR as the driver's [`RegisterIo`], refused accesses counted.

use std::sync::atomic::{AtomicU64, Ordering};

use hac_sys::{BarAccessError, MmioRegion};
use igb_hw::RegisterOffset;

use super::seams::MmioWindow;
use crate::backend::RegisterIo;

/// What a BAR read returns when the access is refused (all ones, as a PCI master-abort).
pub const BAD_READ: u32 = 0xFFFF_FFFF;

/// A mapped BAR as [`RegisterIo`]. Refused accesses (misaligned or out of range) never panic:
/// reads return [`BAD_READ`], writes are dropped, and both are counted.
#[derive(Debug)]
pub struct VfioBar<W: MmioWindow = MmioRegion> {
    index: usize,
    window: W,
    bad_reads: AtomicU64,
    bad_writes: AtomicU64,
}

impl<W: MmioWindow> VfioBar<W> {
    /// Wraps BAR `index` mapped as `window`.
    pub fn new(index: usize, window: W) -> VfioBar<W> {
        VfioBar {
            index,
            window,
            bad_reads: AtomicU64::new(0),
            bad_writes: AtomicU64::new(0),
        }
    }

    /// BAR number.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    /// True for a zero-length BAR.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// Reads the register at `offset`, or says why not (not counted).
    pub fn try_read32(&self, offset: RegisterOffset) -> Result<u32, BarAccessError> {
        self.window.read32(offset.0 as usize)
    }

    /// Writes the register at `offset`, or says why not (not counted).
    pub fn try_write32(&self, offset: RegisterOffset, value: u32) -> Result<(), BarAccessError> {
        self.window.write32(offset.0 as usize, value)
    }

    /// Writes the 8 bytes at `offset` as one access, or says why not (not counted).
    pub fn try_write64(&self, offset: RegisterOffset, value: u64) -> Result<(), BarAccessError> {
        self.window.write64(offset.0 as usize, value)
    }

    /// Refused reads so far.
    pub fn bad_reads(&self) -> u64 {
        self.bad_reads.load(Ordering::Relaxed)
    }

    /// Refused writes so far.
    pub fn bad_writes(&self) -> u64 {
        self.bad_writes.load(Ordering::Relaxed)
    }
}

impl<W: MmioWindow> RegisterIo for VfioBar<W> {
    fn read32(&self, offset: RegisterOffset) -> u32 {
        self.try_read32(offset).unwrap_or_else(|_| {
            self.bad_reads.fetch_add(1, Ordering::Relaxed);
            BAD_READ
        })
    }

    fn write32(&self, offset: RegisterOffset, value: u32) {
        if self.try_write32(offset, value).is_err() {
            self.bad_writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One 8-byte store (never the trait's two 32-bit halves: an mlx5 doorbell must not be
    /// torn). A refused write is dropped and counted in `bad_writes`.
    fn write64(&self, offset: RegisterOffset, value: u64) {
        if self.try_write64(offset, value).is_err() {
            self.bad_writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case
mod tests {

    use hac_sys::mmio::check_bar_offset;

    use igb_hw::RegisterOffset;

    use super::*;
    use crate::backend::RegisterIo;

    use crate::vfio::testing::{FakeDeviceConfig, FakeWindow};
    use crate::vfio::tests::open;
    use crate::vfio::*;

    #[test]
    fn bar_accesses_are_checked_counted_and_never_panic() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let bar = dev.bar0().unwrap();
        assert_eq!(bar.len(), 16 << 10);
        bar.write32(RegisterOffset(0x0008), 0x1234_5678);
        assert_eq!(bar.read32(RegisterOffset(0x0008)), 0x1234_5678);
        assert_eq!(dev.access().bar(0).unwrap().peek(8), Some(0x1234_5678));
        dev.access().bar(0).unwrap().poke(0x3FFC, 7);
        assert_eq!(bar.read32(RegisterOffset(0x3FFC)), 7);
        for bad in [0x4000, 0x3FFE, 0x0002, 0x0001, u32::MAX, u32::MAX - 3] {
            assert_eq!(bar.read32(RegisterOffset(bad)), BAD_READ);
            bar.write32(RegisterOffset(bad), 0xDEAD);
        }
        assert_eq!(bar.bad_reads(), 6);
        assert_eq!(bar.bad_writes(), 6);
        assert_eq!(
            bar.try_read32(RegisterOffset(0x4000)),
            Err(BarAccessError::OutOfRange {
                offset: 0x4000,
                len: 0x4000
            })
        );
        assert_eq!(
            bar.try_write32(RegisterOffset(0x2), 0),
            Err(BarAccessError::Misaligned { offset: 2 })
        );
        assert!(matches!(
            dev.map_bar(1),
            Err(VfioError::BarMissing { index: 1 })
        ));
        assert!(matches!(
            dev.map_bar(6),
            Err(VfioError::BarMissing { index: 6 })
        ));
        assert_eq!(dev.map_bar(3).unwrap().index(), 3);
    }

    #[test]
    fn write64_is_one_access_and_refusals_are_counted() {
        let dev = open(FakeDeviceConfig::mlx5_vf());
        let bar = dev.bar0().unwrap();
        assert_eq!(bar.len(), 2 << 20);
        bar.write64(RegisterOffset(0x1020), 0x1122_3344_5566_7788);
        let window = dev.access().bar(0).unwrap();
        assert_eq!(window.writes64(), 1, "one 8-byte access, not two halves");
        assert_eq!(window.peek(0x1020), Some(0x5566_7788));
        assert_eq!(window.peek(0x1024), Some(0x1122_3344));
        for bad in [0x1024, 0x1001, 2 << 20, (2 << 20) - 4, u32::MAX - 7] {
            bar.write64(RegisterOffset(bad), 1);
        }
        assert_eq!(bar.bad_writes(), 5);
        assert_eq!(window.writes64(), 1);
        assert_eq!(
            bar.try_write64(RegisterOffset(0x1004), 0),
            Err(BarAccessError::Misaligned { offset: 0x1004 })
        );
    }

    #[test]
    fn check_bar_offset_edges() {
        assert_eq!(check_bar_offset(0, 4), Ok(()));
        assert!(check_bar_offset(0, 3).is_err());
        assert!(check_bar_offset(0, 0).is_err());
        assert!(check_bar_offset(usize::MAX - 3, usize::MAX).is_err());
        assert!(check_bar_offset(usize::MAX & !3, usize::MAX).is_err());
        let w = FakeWindow::new(6);
        assert_eq!(w.peek(0), Some(0));
        assert_eq!(w.peek(4), None);
    }
}

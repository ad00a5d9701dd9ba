//! [`VfioBar`]: a mapped BAR as the driver's [`RegisterIo`], refused accesses counted.

use std::sync::atomic::{AtomicU64, Ordering};

use igb_hw::RegisterOffset;

use crate::backend::RegisterIo;

use super::BAD_READ;
use super::seams::MmioWindow;
use hac_sys::{BarAccessError, MmioRegion};

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
}

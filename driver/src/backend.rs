//! The two traits the driver is generic over — register access to a BAR and DMA memory — plus the
//! clock the driver waits on. The model (in-process, [`crate::model`]) and Linux VFIO
//! ([`crate::vfio`]) implement them; the driver code is the same on both.
//!
//! Memory ordering: descriptors and buffers are written through [`DmaRegion`], then
//! [`doorbell_fence`] is called, then the tail register is written. After software sees DD in a
//! descriptor it calls [`completion_fence`] before reading the rest of it.

use core::marker::PhantomData;
use std::sync::atomic::{Ordering, fence};

use igb_hw::Iova;
use igb_hw::RegisterOffset;
use igb_hw::regs::{FieldValue, LocalRegisterCopy, Register, RegisterLongName, RegisterMap};

/// 32-bit register access to one BAR of one function.
pub trait RegisterIo {
    /// Reads the register at `offset`.
    fn read32(&self, offset: RegisterOffset) -> u32;
    /// Writes the register at `offset`.
    fn write32(&self, offset: RegisterOffset, value: u32);
    /// Writes the 8 bytes at `offset` (8-byte aligned): `value` holds them in bus order
    /// (byte 0 of the register is the least significant byte, as [`RegisterIo::write32`]
    /// takes a register's 4 bytes). The default is two 32-bit writes, low address first;
    /// backends that can issue one 8-byte access (the mlx5 model, which refuses a 4-byte half
    /// of the CQ arm doorbell; a mapped BAR on a 64-bit host) override it.
    fn write64(&self, offset: RegisterOffset, value: u64) {
        self.write32(offset, value as u32);
        self.write32(
            RegisterOffset(offset.0.wrapping_add(4)),
            (value >> 32) as u32,
        );
    }
}

/// A BAR0 seen through the register map `M` (PF or VF): typed reads and writes.
pub struct Bar<R: RegisterIo, M: RegisterMap> {
    io: R,
    _map: PhantomData<M>,
}

impl<R: RegisterIo, M: RegisterMap> Bar<R, M> {
    /// Wraps register access `io` as a BAR with map `M`.
    pub fn new(io: R) -> Self {
        Bar {
            io,
            _map: PhantomData,
        }
    }
    /// The raw access.
    pub fn io(&self) -> &R {
        &self.io
    }
    /// Reads a register as its bitfields.
    pub fn read<F: RegisterLongName>(&self, reg: Register<F, M>) -> LocalRegisterCopy<u32, F> {
        LocalRegisterCopy::new(self.io.read32(reg.offset()))
    }
    /// Reads a register's raw value.
    pub fn get(&self, reg: M) -> u32 {
        self.io.read32(reg.offset())
    }
    /// Writes a register from its fields (fields not named are written as 0).
    pub fn write<F: RegisterLongName>(&self, reg: Register<F, M>, value: FieldValue<u32, F>) {
        self.io.write32(reg.offset(), value.value);
    }
    /// Writes a register's raw value.
    pub fn set(&self, reg: M, value: u32) {
        self.io.write32(reg.offset(), value);
    }
    /// Read-modify-write of some fields.
    pub fn modify<F: RegisterLongName>(&self, reg: Register<F, M>, value: FieldValue<u32, F>) {
        let cur = self.io.read32(reg.offset());
        self.io.write32(reg.offset(), value.modify(cur));
    }
}

/// A region of DMA-visible memory, mapped for the device at [`DmaRegion::iova`].
///
/// Accessed only by copying (volatile or atomic underneath): no Rust reference into memory the
/// device can write ever exists.
pub trait DmaRegion {
    /// Device address of byte 0.
    fn iova(&self) -> Iova;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// True for a zero-length region.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `buf.len()` bytes at `offset` into `buf`. Out-of-range accesses are a driver bug
    /// and are clamped (nothing is read past the end; the rest of `buf` is zeroed).
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` to `offset`; out-of-range bytes are dropped.
    fn write(&self, offset: usize, data: &[u8]);
    /// Little-endian u32 at `offset`.
    fn read_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }
    /// Writes a little-endian u32 at `offset`.
    fn write_u32(&self, offset: usize, value: u32) {
        self.write(offset, &value.to_le_bytes());
    }
}

/// Allocates DMA memory for one device (page-aligned, mapped in its IOMMU).
pub trait DmaAllocator {
    /// The regions it hands out.
    type Region: DmaRegion;
    /// Allocates and maps at least `len` bytes (rounded up to the page size).
    fn allocate(&self, len: usize) -> Result<Self::Region, DmaError>;
}

/// DMA allocation failures.
#[derive(Debug, thiserror::Error)]
pub enum DmaError {
    /// Zero bytes requested.
    #[error("DMA allocation of zero bytes")]
    ZeroLength,
    /// The IOVA space has no free range of this size.
    #[error("no free IOVA range of {0} bytes")]
    IovaExhausted(usize),
    /// The host could not allocate or lock memory.
    #[error("cannot allocate {len} bytes of DMA memory: {source}")]
    Host {
        /// Bytes requested.
        len: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// The IOMMU refused the mapping.
    #[error("IOMMU mapping of {len} bytes at {iova} failed: {reason}")]
    Map {
        /// Device address.
        iova: Iova,
        /// Bytes.
        len: usize,
        /// Why.
        reason: String,
    },
}

/// Time as the driver sees it: virtual on the model, wall clock on hardware.
pub trait Clock {
    /// Monotonic nanoseconds.
    fn now_ns(&self) -> u64;
    /// Waits `ns` nanoseconds (on the model: lets the device and its services run).
    fn delay_ns(&self, ns: u64);
}

/// Orders descriptor and buffer writes before the doorbell (tail register) write that follows.
pub fn doorbell_fence() {
    fence(Ordering::Release);
}

/// Orders the read of a descriptor's DD bit before reads of the rest of it and of its buffer.
pub fn completion_fence() {
    fence(Ordering::Acquire);
}

/// Wall-clock time for real hardware.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    start: std::time::Instant,
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock {
            start: std::time::Instant::now(),
        }
    }
}

impl Clock for WallClock {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn delay_ns(&self, ns: u64) {
        std::thread::sleep(std::time::Duration::from_nanos(ns));
    }
}

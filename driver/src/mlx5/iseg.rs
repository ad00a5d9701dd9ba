//! The initialization segment and UAR doorbells as the driver sees them through
//! [`RegisterIo`]: big-endian 32-bit registers (what Linux reads with `ioread32be`), the
//! health buffer, and 64-bit UAR doorbells written as one 8-byte access.

use igb_hw::RegisterOffset;
use mlx5_hw::init_seg::{HEALTH_BUFFER_OFFSET, HealthBuffer, Register};
use mlx5_hw::uar::{UAR_PAGE_LEN, UarIndex};

use super::error::HealthReport;
use crate::backend::RegisterIo;

/// Bytes of the health buffer.
const HEALTH_LEN: usize = 0x40;

/// BAR0 of an mlx5 function.
pub struct Mlx5Bar<R: RegisterIo> {
    io: R,
}

impl<R: RegisterIo> Mlx5Bar<R> {
    /// Wraps register access to BAR0.
    pub fn new(io: R) -> Self {
        Mlx5Bar { io }
    }

    /// The raw access.
    pub fn io(&self) -> &R {
        &self.io
    }

    /// Reads an init-segment register (big-endian on the bus).
    pub fn read(&self, reg: Register) -> u32 {
        self.read_be(reg.offset())
    }

    /// Writes an init-segment register (big-endian on the bus).
    pub fn write(&self, reg: Register, value: u32) {
        self.write_be(reg.offset(), value);
    }

    /// Reads the big-endian dword at `offset`.
    pub fn read_be(&self, offset: u32) -> u32 {
        self.io.read32(RegisterOffset(offset)).swap_bytes()
    }

    /// Writes the big-endian dword at `offset`.
    pub fn write_be(&self, offset: u32, value: u32) {
        self.io.write32(RegisterOffset(offset), value.swap_bytes());
    }

    /// Writes `bytes` (a doorbell as the PRM lays it out, big-endian) to the 8-byte register
    /// at `offset` with one 64-bit access.
    pub fn write_doorbell64(&self, offset: u64, bytes: [u8; 8]) {
        self.io
            .write64(RegisterOffset(offset as u32), u64::from_le_bytes(bytes));
    }

    /// Writes a 4-byte doorbell (big-endian bytes) at `offset`.
    pub fn write_doorbell32(&self, offset: u64, bytes: [u8; 4]) {
        self.io
            .write32(RegisterOffset(offset as u32), u32::from_le_bytes(bytes));
    }

    /// BAR0 offset of register `within` of UAR page `uar` (4 KiB UAR pages: the driver sets
    /// `log_uar_page_sz` 0).
    pub fn uar_offset(uar: u32, within: u32) -> u64 {
        UarIndex(uar)
            .bar_offset(0)
            .unwrap_or(u64::from(uar) * UAR_PAGE_LEN)
            + u64::from(within)
    }

    /// Reads the health buffer and the health counter.
    pub fn health(&self) -> HealthReport {
        let mut raw = [0u8; HEALTH_LEN];
        for (i, chunk) in raw.chunks_exact_mut(4).enumerate() {
            let v = self.read_be(HEALTH_BUFFER_OFFSET as u32 + 4 * i as u32);
            chunk.copy_from_slice(&v.to_be_bytes());
        }
        let counter = self.read(Register::HealthCounter);
        match HealthBuffer::new_checked(&raw[..]) {
            Ok(h) => HealthReport {
                counter,
                fw_ver: h.fw_ver(),
                rfr: h.rfr(),
                synd: h.synd(),
                ext_synd: h.ext_synd(),
                fatal: h.is_fatal(),
            },
            Err(_) => HealthReport {
                counter,
                fw_ver: u32::MAX,
                rfr: false,
                synd: mlx5_hw::init_seg::HealthSyndrome::None,
                ext_synd: 0,
                fatal: true,
            },
        }
    }
}

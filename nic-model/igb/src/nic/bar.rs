//! BAR access: the bus-device face of the model. Accesses are checked (function enabled,
//! memory space on, 4- or 8-byte aligned, in range), then dispatched on the decoded register of
//! BAR0 or on the MSI-X table of BAR3; anything else is counted, never panicked on.

use igb_hw::pci::sriov;
use igb_hw::regs::{self, PfReg, VfReg};
use igb_hw::{RegisterOffset, VfIndex};

use super::Nic;
use crate::function::FunctionId;

impl Nic {
    fn bar_live(&mut self, f: FunctionId) -> bool {
        let ok = match f {
            FunctionId::Pf => self.pf_config.command() & igb_hw::pci::command::MEMORY != 0,
            FunctionId::Vf(v) => {
                self.vf_enabled(v) && self.pf_config.sriov_control() & sriov::CONTROL_VF_MSE != 0
            }
        };
        if !ok {
            self.counters.disabled_function_accesses += 1;
        }
        ok
    }

    /// A memory read of `data.len()` bytes at `offset` in BAR `bar` of function `f`.
    /// Registers are 32 bits: 4-byte accesses at 4-byte aligned offsets, or 8-byte accesses
    /// split into two. Anything else reads all ones and is counted; so does an access to a
    /// function whose memory space is disabled.
    pub fn bar_read(&mut self, f: FunctionId, bar: u8, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        if !self.bar_live(f) {
            return;
        }
        let Some(words) = self.check_access(f, bar, offset, data.len()) else {
            return;
        };
        for i in 0..words {
            let off = (offset as u32) + 4 * i as u32;
            let v = if bar == 0 {
                self.bar0_read(f, off)
            } else {
                self.msix_read(f, off)
            };
            data[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// A memory write to BAR `bar` of function `f` (same access rules as [`Nic::bar_read`]).
    pub fn bar_write(&mut self, f: FunctionId, bar: u8, offset: u64, data: &[u8]) {
        if !self.bar_live(f) {
            return;
        }
        let Some(words) = self.check_access(f, bar, offset, data.len()) else {
            return;
        };
        // A doorbell orders the driver's earlier descriptor writes before our DMA reads.
        adapter_core::memory::SharedMemory::acquire();
        for i in 0..words {
            let off = (offset as u32) + 4 * i as u32;
            let v = u32::from_le_bytes([
                data[4 * i],
                data[4 * i + 1],
                data[4 * i + 2],
                data[4 * i + 3],
            ]);
            if bar == 0 {
                self.bar0_write(f, off, v);
            } else {
                self.msix_write(f, off, v);
            }
        }
    }

    fn check_access(&mut self, f: FunctionId, bar: u8, offset: u64, len: usize) -> Option<usize> {
        let size = match (bar, f) {
            (0, FunctionId::Pf) => regs::PF_BAR0_SIZE,
            (0, FunctionId::Vf(_)) => regs::VF_BAR0_SIZE,
            (3, _) => regs::MSIX_BAR_SIZE,
            _ => {
                self.counters.out_of_range_accesses += 1;
                return None;
            }
        };
        if !matches!(len, 4 | 8) || !offset.is_multiple_of(4) {
            self.counters.misaligned_accesses += 1;
            return None;
        }
        if offset + len as u64 > u64::from(size) {
            self.counters.out_of_range_accesses += 1;
            return None;
        }
        Some(len / 4)
    }

    /// 32-bit read of BAR0 of `f` (see [`Nic::bar_read`] for the access rules).
    pub fn read32(&mut self, f: FunctionId, offset: RegisterOffset) -> u32 {
        let mut b = [0u8; 4];
        self.bar_read(f, 0, u64::from(offset.0), &mut b);
        u32::from_le_bytes(b)
    }

    /// 32-bit write of BAR0 of `f`.
    pub fn write32(&mut self, f: FunctionId, offset: RegisterOffset, value: u32) {
        self.bar_write(f, 0, u64::from(offset.0), &value.to_le_bytes());
    }

    /// Reads PF register `reg`.
    pub fn pf_read(&mut self, reg: PfReg) -> u32 {
        self.read32(FunctionId::Pf, reg.offset())
    }

    /// Writes PF register `reg`.
    pub fn pf_write(&mut self, reg: PfReg, value: u32) {
        self.write32(FunctionId::Pf, reg.offset(), value)
    }

    /// Reads register `reg` of VF `vf`.
    pub fn vf_read(&mut self, vf: VfIndex, reg: VfReg) -> u32 {
        self.read32(FunctionId::Vf(vf), reg.offset())
    }

    /// Writes register `reg` of VF `vf`.
    pub fn vf_write(&mut self, vf: VfIndex, reg: VfReg, value: u32) {
        self.write32(FunctionId::Vf(vf), reg.offset(), value)
    }

    fn bar0_read(&mut self, f: FunctionId, off: u32) -> u32 {
        match f {
            FunctionId::Pf => match PfReg::decode(RegisterOffset(off)) {
                Some(reg) => self.pf_reg_read(reg),
                None => {
                    self.counters.unknown_reads += 1;
                    0
                }
            },
            FunctionId::Vf(vf) => match VfReg::decode(RegisterOffset(off)) {
                Some(reg) => self.vf_reg_read(vf, reg),
                None => {
                    self.counters.unknown_reads += 1;
                    0
                }
            },
        }
    }

    fn bar0_write(&mut self, f: FunctionId, off: u32, v: u32) {
        match f {
            FunctionId::Pf => match PfReg::decode(RegisterOffset(off)) {
                Some(reg) => self.pf_reg_write(reg, v),
                None => self.counters.unknown_writes += 1,
            },
            FunctionId::Vf(vf) => match VfReg::decode(RegisterOffset(off)) {
                Some(reg) => self.vf_reg_write(vf, reg, v),
                None => self.counters.unknown_writes += 1,
            },
        }
    }

    fn msix_read(&mut self, f: FunctionId, off: u32) -> u32 {
        self.msix[f.slot()].read(off).unwrap_or_else(|| {
            self.counters.unknown_reads += 1;
            0
        })
    }

    fn msix_write(&mut self, f: FunctionId, off: u32, v: u32) {
        match self.msix[f.slot()].write(off, v) {
            Some(unmasked) => {
                let (enabled, masked) = self.msix_state(f);
                if enabled && !masked {
                    self.deliver_vectors(f, &unmasked);
                } else {
                    // Not deliverable yet: keep them pending.
                    for &vec in &unmasked {
                        self.msix[f.slot()].signal(f, vec, true);
                    }
                }
            }
            None => self.counters.unknown_writes += 1,
        }
    }
}

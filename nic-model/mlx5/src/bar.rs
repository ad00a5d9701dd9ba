//! BAR0 accesses: the bus-device face of the model. Checked (function enabled, memory space
//! on, BAR0 only, 1/2/4/8 bytes naturally aligned, in range), then dispatched to the
//! initialization segment (big-endian registers), the MSI-X table and PBA ([`crate::msix`];
//! unmasking a vector sends its pending message) or the UAR pages, where the EQ doorbells
//! ([`crate::eq`]), the CQ arm doorbell ([`crate::cq`]) and the SQ doorbells (the doorbell
//! registers at 0x800, `nic::tx`) are served. Every other UAR register and UAR reads count
//! as unknown accesses (reads return zero).

use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::eqe::EQ_DOORBELL_LEN;
use mlx5_hw::init_seg::INIT_SEG_LEN;
use mlx5_hw::pci::msix;
use mlx5_hw::uar::{UAR_PAGE_LEN, UarIndex, UarRegister};

use crate::commands::FIRST_UAR;

use crate::config::{header, sriov_cap};
use crate::function::FunctionId;
use crate::init_seg::SegmentWrite;
use crate::nic::Mlx5Nic;

/// Bytes of the PBA the model serves (one qword covers 64 vectors).
const PBA_LEN: u64 = 8;

enum Region {
    InitSegment,
    MsixTable(usize),
    Pba,
    Uar(u64),
    Other,
}

fn region(offset: u64, len: usize, table_len: usize) -> Region {
    let end = offset + len as u64;
    let table = u64::from(msix::TABLE_OFFSET);
    let pba = u64::from(msix::PBA_OFFSET);
    if end <= INIT_SEG_LEN as u64 {
        Region::InitSegment
    } else if offset >= table && end <= table + table_len as u64 {
        Region::MsixTable((offset - table) as usize)
    } else if offset >= pba && end <= pba + PBA_LEN {
        Region::Pba
    } else if offset >= u64::from(FIRST_UAR) * UAR_PAGE_LEN {
        Region::Uar(offset)
    } else {
        Region::Other
    }
}

impl Mlx5Nic {
    fn bar_live(&mut self, f: FunctionId) -> bool {
        let pf = &self.functions[0].config;
        let ok = match f {
            FunctionId::Pf => pf.command() & header::COMMAND_MEMORY != 0,
            FunctionId::Vf(_) => {
                self.function_enabled(f) && pf.sriov_control() & sriov_cap::CONTROL_VF_MSE != 0
            }
        };
        if !ok {
            self.counters.disabled_function_accesses += 1;
        }
        ok
    }

    fn check_access(&mut self, f: FunctionId, bar: u8, offset: u64, len: usize) -> bool {
        let Some(size) = self.function(f).map(|x| x.bar0_size()) else {
            self.counters.out_of_range_accesses += 1;
            return false;
        };
        if bar != 0 {
            self.counters.out_of_range_accesses += 1;
            return false;
        }
        if !matches!(len, 1 | 2 | 4 | 8) || !offset.is_multiple_of(len as u64) {
            self.counters.misaligned_accesses += 1;
            return false;
        }
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            self.counters.out_of_range_accesses += 1;
            return false;
        }
        true
    }

    /// A memory read of `data.len()` bytes at `offset` in BAR `bar` of function `f`. The bytes
    /// are the bus bytes (the initialization segment's registers are big-endian). Refused
    /// accesses read all ones and are counted.
    pub fn bar_read(&mut self, f: FunctionId, bar: u8, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        if !self.bar_live(f) || !self.check_access(f, bar, offset, data.len()) {
            return;
        }
        let now = self.now;
        let Some(func) = self.function_mut(f) else {
            return;
        };
        let ok = match region(offset, data.len(), func.msix.table.len()) {
            Region::InitSegment => func.seg.read(now, offset as usize, data),
            Region::MsixTable(at) => {
                data.copy_from_slice(&func.msix.table[at..at + data.len()]);
                true
            }
            Region::Pba => {
                func.msix
                    .read_pba((offset - u64::from(msix::PBA_OFFSET)) as usize, data);
                true
            }
            Region::Uar(_) | Region::Other => false,
        };
        if !ok {
            data.fill(0);
            self.counters.unknown_reads += 1;
        }
    }

    /// A memory write to BAR `bar` of function `f` (same checks as [`Mlx5Nic::bar_read`]).
    /// Initialization-segment registers take 4-byte writes (an 8-byte write is two, in
    /// order); a doorbell processes the posted command entries before returning.
    pub fn bar_write(&mut self, f: FunctionId, bar: u8, offset: u64, data: &[u8]) {
        if !self.bar_live(f) || !self.check_access(f, bar, offset, data.len()) {
            return;
        }
        // A doorbell orders the driver's earlier writes of entries and mailboxes.
        adapter_core::memory::SharedMemory::acquire();
        let Some(table_len) = self.function(f).map(|x| x.msix.table.len()) else {
            return;
        };
        match region(offset, data.len(), table_len) {
            Region::InitSegment => {
                if !matches!(data.len(), 4 | 8) {
                    self.counters.misaligned_accesses += 1;
                    return;
                }
                for (i, dw) in data.chunks_exact(4).enumerate() {
                    let value = u32::from_be_bytes([dw[0], dw[1], dw[2], dw[3]]);
                    self.init_seg_write(f, offset as u32 + 4 * i as u32, value);
                }
            }
            Region::MsixTable(at) => {
                if let Some(func) = self.functions.get_mut(f.slot()).filter(|x| x.id == f) {
                    func.msix.table[at..at + data.len()].copy_from_slice(data);
                    func.deliver_pending(&mut self.counters, &mut self.interrupts);
                }
            }
            Region::Pba => self.counters.read_only_writes += 1,
            Region::Uar(offset) => self.uar_write(f, offset, data),
            Region::Other => self.counters.unknown_writes += 1,
        }
    }

    fn init_seg_write(&mut self, f: FunctionId, offset: u32, value: u32) {
        let Some(func) = self.function_mut(f) else {
            return;
        };
        match func.seg.write_dword(offset, value) {
            SegmentWrite::Stored => {}
            SegmentWrite::CommandQueue(addr) => self.set_cmdq(f, addr),
            SegmentWrite::Doorbell(mask) => self.doorbell(f, mask),
            SegmentWrite::ReadOnly => self.counters.read_only_writes += 1,
        }
    }

    /// A write to a UAR page: the CQ arm doorbell (8 bytes), the EQ doorbells (4 bytes),
    /// big-endian, and the SQ doorbell (8 bytes at the start of a doorbell register,
    /// `nic::tx`); anything else counted.
    fn uar_write(&mut self, f: FunctionId, offset: u64, data: &[u8]) {
        let Some(func) = self.functions.get_mut(f.slot()).filter(|x| x.id == f) else {
            return;
        };
        let (log_page, log_bf) = GeneralCaps::new_checked(&func.state.general_cur[..])
            .map_or((0, 0), |g| (g.log_uar_page_sz(), g.log_bf_reg_size()));
        let Some((UarIndex(uar), within)) = UarIndex::from_bar_offset(offset, log_page) else {
            self.counters.unknown_writes += 1;
            return;
        };
        let arm = match UarRegister::decode(within as u32, log_bf) {
            UarRegister::CqArm { offset } => {
                // One 64-bit write of the whole register; a 32-bit half is refused.
                if offset != 0 || data.len() != mlx5_hw::cqe::CQ_ARM_DOORBELL_LEN {
                    self.counters.cq_doorbell_errors += 1;
                    return;
                }
                func.cq_arm_doorbell(uar, data, &mut self.counters, &mut self.interrupts);
                return;
            }
            UarRegister::BlueFlame { offset, .. } => {
                self.sq_doorbell(f, uar, offset, data);
                return;
            }
            UarRegister::EqArm => true,
            UarRegister::EqUpdateCi => false,
            _ => {
                self.counters.unknown_writes += 1;
                return;
            }
        };
        if data.len() != EQ_DOORBELL_LEN {
            self.counters.eq_doorbell_errors += 1;
            return;
        }
        func.eq_doorbell(uar, data, arm, &mut self.counters, &mut self.interrupts);
    }

    /// 32-bit big-endian read of BAR0 of `f`: what `ioread32be` returns.
    pub fn read32be(&mut self, f: FunctionId, offset: u32) -> u32 {
        let mut b = [0u8; 4];
        self.bar_read(f, 0, u64::from(offset), &mut b);
        u32::from_be_bytes(b)
    }

    /// 32-bit big-endian write of BAR0 of `f`: what `iowrite32be` does.
    pub fn write32be(&mut self, f: FunctionId, offset: u32, value: u32) {
        self.bar_write(f, 0, u64::from(offset), &value.to_be_bytes());
    }
}

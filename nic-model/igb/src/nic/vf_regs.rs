//! VF register semantics: the VF's BAR0 window. Queue registers are the PF's registers of the
//! VF's physical queues ([`regs::vf_queue_register`]), statistics are the PF's per-VF mirrors;
//! the interrupt block ([`VfInterrupts`]) and the mailbox control are the VF's own.

use igb_hw::VfIndex;
use igb_hw::regs::{self, CTRL, MAILBOX_WORDS, PfReg, VfReg};

use super::Nic;
use super::pf_regs::keep_interval;
use crate::function::FunctionId;

/// The VF's interrupt causes: EICR bits 2:0, one per MSI-X vector.
pub(super) const CAUSES: u32 = 0x7;
/// The bits of IVAR0 a VF write keeps: each of the four entries (RX0, TX0, RX1, TX1) holds a
/// vector of the VF's three (bits 2:0) and its valid bit (bit 7).
const IVAR0_KEPT: u32 = 0x8787_8787;
/// The bits of IVAR_MISC a VF write keeps: the mailbox vector (bits 2:0) and its valid bit.
const IVAR_MISC_KEPT: u32 = 0x87;

/// VF-private interrupt registers (datasheet 7.3.4; VF map 0x1520–0x1740).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfInterrupts {
    /// EICR causes (bits 2:0).
    pub eicr: u32,
    /// EIMS enabled causes.
    pub eims: u32,
    /// EIAC auto-clear.
    pub eiac: u32,
    /// EIAM auto-mask.
    pub eiam: u32,
    /// EITR per vector.
    pub eitr: [u32; 3],
    /// IVAR0.
    pub ivar0: u32,
    /// IVAR_MISC.
    pub ivar_misc: u32,
    /// PSRTYPE.
    pub psrtype: u32,
}

impl Nic {
    pub(super) fn vf_reg_read(&mut self, vf: VfIndex, reg: VfReg) -> u32 {
        if let Some(pf_reg) = regs::vf_queue_register(reg, vf) {
            return self.pf_reg_read(pf_reg);
        }
        let n = vf.get();
        let nn = n as u8;
        match reg {
            VfReg::CTRL | VfReg::CTRL_DUP => 0,
            VfReg::STATUS => self.status_value().get(),
            VfReg::VFMAILBOX => {
                let m = &mut self.mailbox[n];
                let v = m.vf_view();
                m.pfsts = false;
                m.pfack = false;
                m.rstd = false;
                v
            }
            VfReg::VMBMEM(i) => self.regs.get(PfReg::VMBMEM(nn * MAILBOX_WORDS as u8 + i)),
            VfReg::VFGPRC => self.regs.get(PfReg::PVFGPRC(nn)),
            VfReg::VFGPTC => self.regs.get(PfReg::PVFGPTC(nn)),
            VfReg::VFGORC => self.regs.get(PfReg::PVFGORC(nn)),
            VfReg::VFGOTC => self.regs.get(PfReg::PVFGOTC(nn)),
            VfReg::VFMPRC => self.regs.get(PfReg::PVFMPRC(nn)),
            VfReg::VFGPRLBC => self.regs.get(PfReg::PVFGPRLBC(nn)),
            VfReg::VFGPTLBC => self.regs.get(PfReg::PVFGPTLBC(nn)),
            VfReg::VFGORLBC => self.regs.get(PfReg::PVFGORLBC(nn)),
            VfReg::VFGOTLBC => self.regs.get(PfReg::PVFGOTLBC(nn)),
            VfReg::FRTIMER => self.frtimer(),
            VfReg::EIMS => self.vf_irq[n].eims,
            VfReg::EIAC => self.vf_irq[n].eiac,
            VfReg::EIAM => self.vf_irq[n].eiam,
            VfReg::EICR => std::mem::take(&mut self.vf_irq[n].eicr),
            VfReg::EITR(i) => self.vf_irq[n]
                .eitr
                .get(usize::from(i))
                .copied()
                .unwrap_or(0),
            VfReg::IVAR0 => self.vf_irq[n].ivar0,
            VfReg::IVAR_MISC => self.vf_irq[n].ivar_misc,
            VfReg::PSRTYPE => self.vf_irq[n].psrtype,
            VfReg::EICS | VfReg::EIMC | VfReg::PBACL => 0,
            _ => 0, // PBRWAC, PBTWAC: the packet buffers never wrap in the model.
        }
    }

    pub(super) fn vf_reg_write(&mut self, vf: VfIndex, reg: VfReg, v: u32) {
        if let Some(pf_reg) = regs::vf_queue_register(reg, vf) {
            return self.pf_reg_write(pf_reg, v);
        }
        let n = vf.get();
        match reg {
            VfReg::CTRL | VfReg::CTRL_DUP => {
                if regs::view::<CTRL::Register>(v).is_set(CTRL::RST) {
                    self.vf_reset(vf, false);
                }
            }
            VfReg::VFMAILBOX => self.vf_mailbox_write(vf, v),
            VfReg::VMBMEM(i) => {
                if self.mailbox[n].pfu {
                    self.counters.mailbox_writes_while_locked += 1;
                } else {
                    self.regs
                        .set(PfReg::VMBMEM(n as u8 * MAILBOX_WORDS as u8 + i), v);
                }
            }
            VfReg::EICS => self.raise_vf_causes(vf, v & CAUSES),
            VfReg::EIMS => {
                self.vf_irq[n].eims |= v & CAUSES;
                // Causes already pending fire as soon as they are enabled.
                let fire = self.vf_irq[n].eicr & v & CAUSES;
                if fire != 0 {
                    self.fire_vf(vf, fire);
                }
            }
            VfReg::EIMC => self.vf_irq[n].eims &= !(v & CAUSES),
            VfReg::EIAC => self.vf_irq[n].eiac = v & CAUSES,
            VfReg::EIAM => self.vf_irq[n].eiam = v & CAUSES,
            VfReg::EICR => self.vf_irq[n].eicr &= !v,
            VfReg::EITR(i) => {
                if let Some(e) = self.vf_irq[n].eitr.get_mut(usize::from(i)) {
                    *e = keep_interval(v);
                }
            }
            VfReg::IVAR0 => self.vf_irq[n].ivar0 = v & IVAR0_KEPT,
            VfReg::IVAR_MISC => self.vf_irq[n].ivar_misc = v & IVAR_MISC_KEPT,
            VfReg::PSRTYPE => self.vf_irq[n].psrtype = v,
            VfReg::PBACL => self.msix[FunctionId::Vf(vf).slot()].clear_pending(v & CAUSES),
            _ => self.counters.read_only_writes += 1,
        }
    }
}

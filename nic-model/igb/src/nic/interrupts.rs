//! Interrupts: PF causes (ICR/IMS) and the PF's "other causes" vector, VF causes
//! (EICR/EIMS with auto-clear and auto-mask), queue vectors (IVAR0), and MSI-X message delivery
//! (enable, function mask, per-vector mask and pending bits).

use igb_hw::regs::{self, FieldValue, ICR, IVAR_MISC_PF, IVAR0, PfReg, pf};
use igb_hw::{QueueIndex, VfIndex};

use super::Nic;
use super::vf_regs::CAUSES;
use crate::function::FunctionId;
use crate::msix::Interrupt;

impl Nic {
    /// Sets EICR bits of `vf` and fires the enabled ones.
    pub(super) fn raise_vf_causes(&mut self, vf: VfIndex, bits: u32) {
        let n = vf.get();
        let bits = bits & CAUSES;
        self.vf_irq[n].eicr |= bits;
        let fire = bits & self.vf_irq[n].eims;
        if fire != 0 {
            self.fire_vf(vf, fire);
        }
    }

    pub(super) fn fire_vf(&mut self, vf: VfIndex, bits: u32) {
        let n = vf.get();
        for v in 0..3u16 {
            if bits & (1 << v) != 0 {
                self.signal(FunctionId::Vf(vf), v);
            }
        }
        let irq = &mut self.vf_irq[n];
        irq.eicr &= !(irq.eiac & bits);
        irq.eims &= !(irq.eiam & bits);
    }

    /// The cause bit for a queue event of VF-owned queue `q` (the IVAR0 entry of RX or TX of
    /// the VF's queue 0 or 1), if the entry is valid.
    fn vf_queue_vector(&self, vf: VfIndex, q: QueueIndex, tx: bool) -> Option<u32> {
        let ivar = regs::view::<IVAR0::Register>(self.vf_irq[vf.get()].ivar0);
        let (vector, valid) = match (q.queue_in_pool(), tx) {
            (0, false) => (IVAR0::RX0, IVAR0::RX0_VALID),
            (0, true) => (IVAR0::TX0, IVAR0::TX0_VALID),
            (1, false) => (IVAR0::RX1, IVAR0::RX1_VALID),
            (1, true) => (IVAR0::TX1, IVAR0::TX1_VALID),
            _ => return None,
        };
        ivar.is_set(valid).then(|| 1 << (ivar.read(vector) & 0x3))
    }

    /// A queue event (descriptors written back) of queue `q` owned by `owner`: the VF's queue
    /// vector, or ICR.TXDW / ICR.RXT0 of the PF.
    pub(super) fn queue_interrupt(&mut self, q: QueueIndex, owner: FunctionId, tx: bool) {
        match owner {
            FunctionId::Vf(vf) => {
                if let Some(bit) = self.vf_queue_vector(vf, q, tx) {
                    self.raise_vf_causes(vf, bit);
                }
            }
            FunctionId::Pf if tx => self.raise_pf(ICR::TXDW::SET),
            FunctionId::Pf => self.raise_pf(ICR::RXT0::SET),
        }
    }

    /// Raises PF interrupt causes.
    pub(super) fn raise_pf(&mut self, causes: FieldValue<u32, ICR::Register>) {
        self.raise_pf_cause(regs::value(causes));
    }

    /// Raises PF interrupt causes (ICR bits) and signals the PF's "other" vector if enabled.
    pub(super) fn raise_pf_cause(&mut self, bits: u32) {
        self.regs.set(PfReg::ICR, self.regs.get(PfReg::ICR) | bits);
        if bits & self.regs.get(PfReg::IMS) != 0 {
            self.signal_pf();
        }
    }

    pub(super) fn signal_pf(&mut self) {
        // PF IVAR_MISC byte 1: the "other causes" vector (datasheet 8.8.15).
        let misc = self.regs.read(pf::IVAR_MISC);
        let vector = if misc.is_set(IVAR_MISC_PF::OTHER_VALID) {
            misc.read(IVAR_MISC_PF::OTHER) as u16
        } else {
            0
        };
        self.signal(FunctionId::Pf, vector);
    }

    fn signal(&mut self, f: FunctionId, vector: u16) {
        let (enabled, masked) = self.msix_state(f);
        if !enabled {
            self.counters.interrupts_without_msix += 1;
            return;
        }
        if let Some(msg) = self.msix[f.slot()].signal(f, vector, masked) {
            self.emit_interrupt(msg);
        }
    }

    pub(super) fn deliver_vectors(&mut self, f: FunctionId, vectors: &[u16]) {
        for &v in vectors {
            self.signal(f, v);
        }
    }

    fn emit_interrupt(&mut self, msg: Interrupt) {
        if let Some(h) = &mut self.interrupt_handler {
            h(msg);
        }
        self.interrupts.push(msg);
    }
}

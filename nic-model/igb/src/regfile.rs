//! The PF register file: one word per PF BAR0 register, indexed like the BAR, with typed access
//! through the register bindings of [`igb_hw::regs::pf`].
//!
//! A VF's queue registers and statistics are words of this file too (the VF window maps onto
//! them), so the TX and RX engines and the switch read one storage whoever owns the queue.

use igb_hw::regs::{self, FieldValue, LocalRegisterCopy, PfReg, Register, RegisterLongName};

/// The PF's BAR0 register words.
pub(crate) struct RegisterFile {
    words: Box<[u32]>,
}

fn index(reg: PfReg) -> usize {
    (reg.offset().0 / 4) as usize
}

impl RegisterFile {
    /// All registers zero.
    pub(crate) fn new() -> RegisterFile {
        RegisterFile {
            words: vec![0; (regs::PF_BAR0_SIZE / 4) as usize].into_boxed_slice(),
        }
    }

    /// Every register back to zero.
    pub(crate) fn clear(&mut self) {
        self.words.fill(0);
    }

    // An array element past its array's end has an offset outside the BAR
    // (`regs::OUTSIDE_BAR`): it reads 0 and takes no writes.

    /// The raw word of `reg` (registers without bitfields: counters, addresses, masks).
    pub(crate) fn get(&self, reg: PfReg) -> u32 {
        self.words.get(index(reg)).copied().unwrap_or(0)
    }

    /// Sets the raw word of `reg`.
    pub(crate) fn set(&mut self, reg: PfReg, v: u32) {
        if let Some(slot) = self.words.get_mut(index(reg)) {
            *slot = v;
        }
    }

    /// Adds `v` to `reg`, wrapping at 2^32 (statistics counters).
    pub(crate) fn add(&mut self, reg: PfReg, v: u32) {
        if let Some(slot) = self.words.get_mut(index(reg)) {
            *slot = slot.wrapping_add(v);
        }
    }

    /// Adds `v` to the 64-bit counter split over `lo` and `hi`.
    pub(crate) fn add_64(&mut self, lo: PfReg, hi: PfReg, v: u64) {
        let cur = u64::from(self.get(lo)) | (u64::from(self.get(hi)) << 32);
        let new = cur.wrapping_add(v);
        self.set(lo, new as u32);
        self.set(hi, (new >> 32) as u32);
    }

    /// A 64-bit address held in a low and a high register (ring bases, head write-back).
    pub(crate) fn get_64(&self, lo: PfReg, hi: PfReg) -> u64 {
        u64::from(self.get(lo)) | (u64::from(self.get(hi)) << 32)
    }

    /// The value of `reg` as its bitfields.
    pub(crate) fn read<R: RegisterLongName>(
        &self,
        reg: Register<R, PfReg>,
    ) -> LocalRegisterCopy<u32, R> {
        regs::view(self.get(reg.reg()))
    }

    /// Sets `reg` to `fields` (every other bit 0).
    pub(crate) fn write<R: RegisterLongName>(
        &mut self,
        reg: Register<R, PfReg>,
        fields: FieldValue<u32, R>,
    ) {
        self.set(reg.reg(), fields.value);
    }

    /// ORs the bits of `fields` into `reg` (cause and event registers: the bits already set
    /// stay set).
    pub(crate) fn set_bits<R: RegisterLongName>(
        &mut self,
        reg: Register<R, PfReg>,
        fields: FieldValue<u32, R>,
    ) {
        self.set(reg.reg(), self.get(reg.reg()) | fields.value);
    }

    /// Clears the bits of `fields` in `reg`.
    pub(crate) fn clear_bits<R: RegisterLongName>(
        &mut self,
        reg: Register<R, PfReg>,
        fields: FieldValue<u32, R>,
    ) {
        self.set(reg.reg(), self.get(reg.reg()) & !fields.value);
    }

    /// Sets `fields` in `reg`, keeping its other bits.
    pub(crate) fn modify<R: RegisterLongName>(
        &mut self,
        reg: Register<R, PfReg>,
        fields: FieldValue<u32, R>,
    ) {
        let mut v = self.read(reg);
        v.modify(fields);
        self.set(reg.reg(), v.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use igb_hw::regs::{TXDCTL, pf};

    #[test]
    fn typed_access_reads_and_modifies_the_word() {
        let mut f = RegisterFile::new();
        let txdctl = pf::TXDCTL.get(3).expect("queue 3");
        f.set(PfReg::TXDCTL(3), 0x0001_0000);
        f.modify(txdctl, TXDCTL::ENABLE::SET);
        assert_eq!(f.get(PfReg::TXDCTL(3)), 0x0201_0000);
        assert!(f.read(txdctl).is_set(TXDCTL::ENABLE));
        f.modify(txdctl, TXDCTL::ENABLE::CLEAR);
        assert_eq!(f.get(PfReg::TXDCTL(3)), 0x0001_0000);
        f.write(txdctl, TXDCTL::WTHRESH.val(1));
        assert_eq!(f.get(PfReg::TXDCTL(3)), 0x0001_0000);
    }

    #[test]
    fn set_bits_ors_and_clear_bits_clears_only_the_given_bits() {
        use igb_hw::regs::MBVFICR;
        let mut f = RegisterFile::new();
        f.set_bits(pf::MBVFICR, MBVFICR::VFREQ.val(1 << 2));
        f.set_bits(pf::MBVFICR, MBVFICR::VFACK.val(1 << 5));
        f.set_bits(pf::MBVFICR, MBVFICR::VFREQ.val(1 << 1));
        assert_eq!(f.get(PfReg::MBVFICR), 0x0020_0006);
        f.clear_bits(
            pf::MBVFICR,
            MBVFICR::VFREQ.val(1 << 2) + MBVFICR::VFACK.val(1 << 2),
        );
        assert_eq!(f.get(PfReg::MBVFICR), 0x0020_0002);
    }

    #[test]
    fn elements_past_an_array_read_zero_and_take_no_writes() {
        let mut f = RegisterFile::new();
        f.set(PfReg::MTA(200), 7);
        f.add(PfReg::MTA(200), 7);
        assert_eq!(f.get(PfReg::MTA(200)), 0);
        assert!(f.words.iter().all(|&w| w == 0));
    }

    #[test]
    fn sixty_four_bit_counters_carry() {
        let mut f = RegisterFile::new();
        f.set(PfReg::GOTCL, u32::MAX);
        f.add_64(PfReg::GOTCL, PfReg::GOTCH, 2);
        assert_eq!(f.get(PfReg::GOTCL), 1);
        assert_eq!(f.get(PfReg::GOTCH), 1);
        assert_eq!(f.get_64(PfReg::GOTCL, PfReg::GOTCH), 0x1_0000_0001);
    }
}

//! The PF register file: one word per PF BAR0 register, indexed like the BAR, with typed access
//! through the register bindings of [`igb_hw::regs::pf`].
//!
//! A VF's queue registers and statistics are words of this file too (the VF window maps onto
//! them), so the TX and RX engines and the switch read one storage whoever owns the queue.
//!
//! The file also keeps the receive-address (RAR) entries decoded ([`RegisterFile::rar_pools`]):
//! the switch matches two MAC addresses per transmitted frame against them, and a scan of the
//! 24 RAL/RAH pairs per match was the largest cost of the data path. The table is rebuilt
//! whenever a RAL/RAH word is written, so it always agrees with the words.

use igb_hw::MacAddress;
use igb_hw::regs::{
    self, FieldValue, LocalRegisterCopy, PfReg, RAR_ENTRIES, Register, RegisterLongName,
};

/// The RAR entries with RAH.AV set, decoded: (address as [`mac_key`], RAH.POOLSEL), in entry
/// order.
#[derive(Clone, Copy, Debug, Default)]
struct RarTable {
    entries: [(u64, u32); RAR_ENTRIES],
    valid: usize,
}

/// Word ranges of the RAL/RAH pairs (entries 0..16, then RAL2/RAH2 16..24).
const RAR_WORDS: [(usize, usize); 2] = [
    (index(PfReg::RAL(0)), index(PfReg::RAH(15)) + 1),
    (index(PfReg::RAL2(0)), index(PfReg::RAH2(7)) + 1),
];

/// The PF's BAR0 register words.
pub(crate) struct RegisterFile {
    words: Box<[u32]>,
    rar: RarTable,
}

#[inline(always)]
const fn index(reg: PfReg) -> usize {
    (reg.offset().0 / 4) as usize
}

/// A MAC address as one integer (its six bytes, little-endian), so a match is one compare.
#[inline(always)]
fn mac_key(mac: MacAddress) -> u64 {
    let [a, b, c, d, e, f] = mac.0;
    u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
}

fn is_rar_word(i: usize) -> bool {
    RAR_WORDS.iter().any(|&(lo, hi)| (lo..hi).contains(&i))
}

impl RegisterFile {
    /// All registers zero.
    pub(crate) fn new() -> RegisterFile {
        RegisterFile {
            words: vec![0; (regs::PF_BAR0_SIZE / 4) as usize].into_boxed_slice(),
            rar: RarTable::default(),
        }
    }

    /// Every register back to zero.
    pub(crate) fn clear(&mut self) {
        self.words.fill(0);
        self.rebuild_rar();
    }

    fn rebuild_rar(&mut self) {
        let mut t = RarTable::default();
        for (ral, rah) in (0..RAR_ENTRIES).filter_map(regs::rar_entry) {
            let rah_v = regs::view::<regs::RAH::Register>(self.get(rah));
            if rah_v.is_set(regs::RAH::AV) {
                t.entries[t.valid] = (
                    mac_key(igb_hw::addr::mac_from_ral_rah(self.get(ral), rah_v.get())),
                    rah_v.read(regs::RAH::POOLSEL),
                );
                t.valid += 1;
            }
        }
        self.rar = t;
    }

    /// The pools (RAH.POOLSEL, ORed) of every valid RAR entry holding `mac`; `None` when no
    /// valid entry holds it (datasheet 7.10.3.3: exact unicast filtering).
    pub(crate) fn rar_pools(&self, mac: MacAddress) -> Option<u32> {
        let key = mac_key(mac);
        let mut pools = None;
        for &(m, sel) in &self.rar.entries[..self.rar.valid] {
            if m == key {
                *pools.get_or_insert(0) |= sel;
            }
        }
        pools
    }

    // An array element past its array's end has an offset outside the BAR
    // (`regs::OUTSIDE_BAR`): it reads 0 and takes no writes.

    /// The raw word of `reg` (registers without bitfields: counters, addresses, masks).
    // Inlined (like the accessors below): with a constant register the index folds to a
    // constant, and the switch and the TX engine read registers per frame.
    #[inline(always)]
    pub(crate) fn get(&self, reg: PfReg) -> u32 {
        self.words.get(index(reg)).copied().unwrap_or(0)
    }

    /// Sets the raw word of `reg`.
    #[inline]
    pub(crate) fn set(&mut self, reg: PfReg, v: u32) {
        let i = index(reg);
        if let Some(slot) = self.words.get_mut(i) {
            *slot = v;
            if is_rar_word(i) {
                self.rebuild_rar();
            }
        }
    }

    /// Adds `v` to `reg`, wrapping at 2^32 (statistics counters).
    #[inline]
    pub(crate) fn add(&mut self, reg: PfReg, v: u32) {
        let i = index(reg);
        if let Some(slot) = self.words.get_mut(i) {
            *slot = slot.wrapping_add(v);
            if is_rar_word(i) {
                self.rebuild_rar();
            }
        }
    }

    /// Adds `v` to the 64-bit counter split over `lo` and `hi`.
    #[inline]
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
    #[inline]
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

    /// The linear scan of the 24 RAL/RAH pairs the decoded table replaces.
    fn rar_scan(f: &RegisterFile, mac: MacAddress) -> Option<u32> {
        let mut pools = None;
        for (ral, rah) in (0..RAR_ENTRIES).filter_map(regs::rar_entry) {
            let rah_v = regs::view::<regs::RAH::Register>(f.get(rah));
            if rah_v.is_set(regs::RAH::AV)
                && igb_hw::addr::mac_from_ral_rah(f.get(ral), rah_v.get()) == mac
            {
                *pools.get_or_insert(0) |= rah_v.read(regs::RAH::POOLSEL);
            }
        }
        pools
    }

    #[test]
    fn rar_table_agrees_with_a_scan_of_the_words_after_every_write() {
        let mut f = RegisterFile::new();
        let macs: Vec<MacAddress> = (0..4u8)
            .map(|k| MacAddress([0x02, 0, 0, 0, k, 1]))
            .collect();
        let mut seed = 0x9E37_79B9_u32;
        let mut hits = 0;
        for step in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let entry = (seed % RAR_ENTRIES as u32) as usize;
            let (ral, rah) = regs::rar_entry(entry).expect("entry");
            let mac = macs[(seed >> 8) as usize % macs.len()];
            let [a, b, c, d, e, g] = mac.0;
            match (seed >> 12) % 5 {
                0 => f.set(ral, u32::from_le_bytes([a, b, c, d])),
                1 => f.set(rah, u32::from(e) | u32::from(g) << 8 | (seed & 0x83FF_0000)),
                2 => f.add(rah, 0x8000_0000),
                3 => f.modify(
                    pf::RAH.get(entry.min(15)).expect("rah"),
                    regs::RAH::AV::CLEAR,
                ),
                _ => {
                    if step % 500 == 499 {
                        f.clear();
                    }
                }
            }
            for &m in &macs {
                hits += usize::from(f.rar_pools(m).is_some());
                assert_eq!(f.rar_pools(m), rar_scan(&f, m), "step {step}, {m}");
            }
        }
        assert!(hits > 100, "the writes made matching entries ({hits} hits)");
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

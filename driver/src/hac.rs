//! [`AdapterHac`]: the HAC host contract ([`Hac`], defined in the adapter core) for 82576
//! adapters with the HAC extension, through the PF register block at 0x17000 (docs/hac.md).
//! The utility talks to [`Hac`] only; [`crate::softhac::SoftHac`] is the other implementation.
//!
//! VFs arrive as the contract's [`VfNumber`] and become [`VfIndex`] at once (a number beyond the
//! 82576's eight VFs, or beyond the VFs enabled, is [`HacError::NoSuchVf`]); commands are written
//! with the typed HACCMD.OP values and HACSTS.RESULT is decoded by its named values.

pub use adapter_core::hac::{Hac, HacError, HacVfStats, VfNumber};
use igb_hw::VfIndex;
use igb_hw::addr::MAX_VFS;
use igb_hw::regs::{FieldValue, HACCMD, HACCTL, HACSTS, PfReg, pf};

use crate::backend::{Bar, RegisterIo};

/// [`Hac`] through the adapter's HAC register block (PF BAR0).
///
/// **One owner per adapter.** Tagging is a read-modify-write of HACTAG and a command is two
/// writes (HACARG, then HACCMD) followed by a read of HACSTS, so two controllers of one PF would
/// corrupt each other's commands. The block belongs to whoever owns the PF (the PF agent's
/// process: VFIO lets one process open a device); that owner creates exactly one `AdapterHac`
/// and serialises every checkpoint engine through it (`hac serve` does: one daemon, one
/// `AdapterHac`, requests handled in order). The type is not `Clone`, and every operation takes
/// `&mut self`, so within that process the compiler enforces the single writer.
pub struct AdapterHac<R: RegisterIo> {
    bar: Bar<R, PfReg>,
    num_vfs: usize,
    /// Last raw value and 64-bit total of HACREL, HACDISC and HACBP per VF.
    counters: [[(u32, u64); 3]; MAX_VFS],
}

/// The per-VF register index of `vf` (the register map numbers VF blocks by `u8`).
fn reg(vf: VfIndex) -> u8 {
    vf.get() as u8
}

/// HACREL, HACDISC and HACBP of `vf`, in the order of [`AdapterHac::counters`].
fn event_registers(vf: VfIndex) -> [PfReg; 3] {
    let v = reg(vf);
    [PfReg::HACREL(v), PfReg::HACDISC(v), PfReg::HACBP(v)]
}

impl<R: RegisterIo> AdapterHac<R> {
    /// Enables the HAC block of the adapter behind `pf_regs` for `num_vfs` VFs (at most
    /// [`MAX_VFS`]; VF numbers beyond are [`HacError::NoSuchVf`]).
    pub fn new(pf_regs: R, num_vfs: usize) -> Self {
        let bar = Bar::new(pf_regs);
        bar.write(pf::HACCTL, HACCTL::ENABLE::SET);
        let mut counters = [[(0u32, 0u64); 3]; MAX_VFS];
        for (vf, c) in VfIndex::all(MAX_VFS).zip(counters.iter_mut()) {
            for (slot, reg) in c.iter_mut().zip(event_registers(vf)) {
                slot.0 = bar.get(reg);
            }
        }
        AdapterHac {
            bar,
            num_vfs: num_vfs.min(MAX_VFS),
            counters,
        }
    }

    /// The 82576 VF behind `vf`, if this adapter has it enabled.
    fn check_vf(&self, vf: VfNumber) -> Result<VfIndex, HacError> {
        match VfIndex::try_from(vf) {
            Ok(v) if v.get() < self.num_vfs => Ok(v),
            _ => Err(HacError::NoSuchVf(vf)),
        }
    }

    /// Executes `op` on `vf` with argument `epoch`: HACARG, then HACCMD (which executes), then
    /// HACSTS.RESULT decoded by name.
    fn command(&mut self, vf: VfNumber, op: HACCMD::OP::Value, epoch: u32) -> Result<(), HacError> {
        let v = self.check_vf(vf)?;
        self.bar.set(PfReg::HACARG, epoch);
        self.bar.write(
            pf::HACCMD,
            FieldValue::from(op) + HACCMD::VF.val(u32::from(reg(v))),
        );
        let status = self.bar.read(pf::HACSTS);
        match status.read_as_enum(HACSTS::RESULT) {
            Some(HACSTS::RESULT::Value::Ok) => Ok(()),
            Some(HACSTS::RESULT::Value::NotTagged) => Err(HacError::NotTagged(vf)),
            Some(HACSTS::RESULT::Value::BadEpoch) => Err(HacError::BadEpoch { vf, epoch }),
            Some(HACSTS::RESULT::Value::Disabled) => Err(HacError::Disabled),
            Some(HACSTS::RESULT::Value::BadOp) | None => {
                Err(HacError::Refused(status.read(HACSTS::RESULT)))
            }
        }
    }
}

impl<R: RegisterIo> Hac for AdapterHac<R> {
    fn set_tagged(&mut self, vf: VfNumber, on: bool) -> Result<(), HacError> {
        let v = self.check_vf(vf)?;
        let cur = self.bar.get(PfReg::HACTAG);
        let bit = 1u32 << v.get();
        self.bar
            .set(PfReg::HACTAG, if on { cur | bit } else { cur & !bit });
        Ok(())
    }
    fn open_epoch(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        self.command(vf, HACCMD::OP::Value::OpenEpoch, epoch)
    }
    fn commit(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        self.command(vf, HACCMD::OP::Value::Commit, epoch)
    }
    fn abort(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        self.command(vf, HACCMD::OP::Value::Abort, epoch)
    }
    fn failover(&mut self, vf: VfNumber) -> Result<(), HacError> {
        self.command(vf, HACCMD::OP::Value::Failover, 0)
    }
    fn unprotect(&mut self, vf: VfNumber) -> Result<(), HacError> {
        self.command(vf, HACCMD::OP::Value::Unprotect, 0)
    }
    fn set_limits(&mut self, vf: VfNumber, frames: u32, bytes: u32) -> Result<(), HacError> {
        let v = reg(self.check_vf(vf)?);
        self.bar.set(PfReg::HACLIMF(v), frames);
        self.bar.set(PfReg::HACLIMB(v), bytes);
        Ok(())
    }
    fn set_guard(&mut self, bytes: u32) -> Result<(), HacError> {
        self.bar.set(PfReg::HACGUARD, bytes);
        Ok(())
    }
    fn stats(&mut self, vf: VfNumber) -> Result<HacVfStats, HacError> {
        let vf = self.check_vf(vf)?;
        // Free-running 32-bit registers extended to 64 bits (call at least once per wrap).
        let mut totals = [0u64; 3];
        let slots = self
            .counters
            .get_mut(vf.get())
            .ok_or(HacError::NoSuchVf(vf.into()))?;
        for ((slot, reg), total) in slots
            .iter_mut()
            .zip(event_registers(vf))
            .zip(totals.iter_mut())
        {
            let raw = self.bar.get(reg);
            slot.1 += u64::from(raw.wrapping_sub(slot.0));
            slot.0 = raw;
            *total = slot.1;
        }
        let v = reg(vf);
        let g = |r: PfReg| self.bar.get(r);
        Ok(HacVfStats {
            open_epoch: g(PfReg::HACOPEN(v)),
            committed_epoch: g(PfReg::HACCOMMITTED(v)),
            buffered_frames: g(PfReg::HACBUFF(v)),
            buffered_bytes: g(PfReg::HACBUFB(v)),
            max_frames: g(PfReg::HACMAXF(v)),
            max_bytes: g(PfReg::HACMAXB(v)),
            released: totals[0],
            discarded: totals[1],
            backpressure: totals[2],
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::cell::RefCell;
    use std::collections::HashMap;

    use igb_hw::RegisterOffset;

    use super::*;

    /// Registers as a plain map (HACSTS reads 0 = OK).
    #[derive(Default)]
    struct Regs(RefCell<HashMap<u32, u32>>);

    impl RegisterIo for &Regs {
        fn read32(&self, offset: RegisterOffset) -> u32 {
            self.0.borrow().get(&offset.0).copied().unwrap_or(0)
        }
        fn write32(&self, offset: RegisterOffset, value: u32) {
            self.0.borrow_mut().insert(offset.0, value);
        }
    }

    #[test]
    fn hac_event_counters_are_extended_to_64_bits_across_the_register_wrap() {
        let regs = Regs::default();
        let at = |r: PfReg| r.offset().0;
        regs.0
            .borrow_mut()
            .insert(at(PfReg::HACREL(1)), u32::MAX - 9);
        let mut hac = AdapterHac::new(&regs, 2);
        regs.0.borrow_mut().insert(at(PfReg::HACREL(1)), u32::MAX);
        assert_eq!(hac.stats(VF1).unwrap().released, 9);
        // The register wraps: 4 more after MAX reads 3.
        regs.0.borrow_mut().insert(at(PfReg::HACREL(1)), 3);
        regs.0.borrow_mut().insert(at(PfReg::HACDISC(1)), 7);
        let st = hac.stats(VF1).unwrap();
        assert_eq!((st.released, st.discarded, st.backpressure), (13, 7, 0));
    }

    const VF1: VfNumber = VfNumber::new(1);

    #[test]
    fn commands_carry_the_datasheet_opcodes_and_results_decode_by_name() {
        let regs = Regs::default();
        let at = |r: PfReg| r.offset().0;
        let mut hac = AdapterHac::new(&regs, 2);
        assert_eq!(regs.0.borrow()[&at(PfReg::HACCTL)], 1, "ENABLE");
        type Op = fn(&mut AdapterHac<&Regs>) -> Result<(), HacError>;
        let cases: [(Op, u32, u32); 5] = [
            (|h| h.open_epoch(VF1, 7), 1, 7),
            (|h| h.commit(VF1, 6), 2, 6),
            (|h| h.abort(VF1, 5), 3, 5),
            (|h| h.failover(VF1), 4, 0),
            (|h| h.unprotect(VF1), 5, 0),
        ];
        for (op, code, arg) in cases {
            op(&mut hac).unwrap();
            assert_eq!(regs.0.borrow()[&at(PfReg::HACCMD)], code | 1 << 8);
            assert_eq!(regs.0.borrow()[&at(PfReg::HACARG)], arg);
        }
        let sts = at(PfReg::HACSTS);
        let answers = [
            (2, HacError::NotTagged(VF1)),
            (3, HacError::BadEpoch { vf: VF1, epoch: 6 }),
            (4, HacError::Disabled),
            (1, HacError::Refused(1)),
            (9, HacError::Refused(9)),
        ];
        for (result, want) in answers {
            regs.0.borrow_mut().insert(sts, 0x0001_0000 | result);
            assert_eq!(hac.commit(VF1, 6), Err(want));
        }
    }

    #[test]
    fn vf_numbers_the_adapter_does_not_have_are_errors() {
        let regs = Regs::default();
        let mut hac = AdapterHac::new(&regs, 2);
        for n in [2, 7, 8, 300, u16::MAX] {
            let vf = VfNumber::new(n);
            assert_eq!(hac.set_tagged(vf, true), Err(HacError::NoSuchVf(vf)));
            assert_eq!(hac.commit(vf, 1), Err(HacError::NoSuchVf(vf)));
            assert_eq!(hac.stats(vf), Err(HacError::NoSuchVf(vf)));
        }
        assert_eq!(
            regs.0.borrow().get(&PfReg::HACCMD.offset().0),
            None,
            "nothing written"
        );
        let mut all = AdapterHac::new(&regs, 100);
        assert!(all.stats(VfNumber::new(7)).is_ok());
        assert_eq!(
            all.stats(VfNumber::new(8)),
            Err(HacError::NoSuchVf(VfNumber::new(8)))
        );
    }
}

//! The HAC control API — tag a VF, open/commit/abort epochs, failover, unprotect, limits, guard,
//! statistics — and its implementation for adapters with the HAC extension (the PF register
//! block at 0x17000, docs/hac.md). The utility talks to [`Hac`] only.

use igb_hw::regs::{HACCMD, HACSTS, PfReg, pf};

use crate::backend::{Bar, RegisterIo};

/// Why a HAC operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HacError {
    /// The VF is not checkpointing.
    #[error("VF {0} is not tagged as checkpointing")]
    NotTagged(usize),
    /// The epoch does not fit the VF's open/resolved epochs.
    #[error("epoch {epoch} is not valid for VF {vf} now (see docs/hac.md: epoch rules)")]
    BadEpoch {
        /// The VF.
        vf: usize,
        /// The epoch given.
        epoch: u32,
    },
    /// The HAC block is disabled.
    #[error("the HAC extension is disabled")]
    Disabled,
    /// No such VF.
    #[error("VF {0} does not exist")]
    NoSuchVf(usize),
    /// The adapter reported an unknown result.
    #[error("the adapter refused the command (status {0})")]
    Refused(u32),
}

/// Per-VF HAC counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HacVfStats {
    /// Epoch new frames are stamped with.
    pub open_epoch: u32,
    /// Last committed epoch.
    pub committed_epoch: u32,
    /// Frames buffered now.
    pub buffered_frames: u32,
    /// Bytes buffered now.
    pub buffered_bytes: u32,
    /// Highest frames buffered.
    pub max_frames: u32,
    /// Highest bytes buffered.
    pub max_bytes: u32,
    /// Frames released (64-bit total; the adapter's 32-bit register is accumulated).
    pub released: u64,
    /// Frames discarded (64-bit total).
    pub discarded: u64,
    /// Backpressure events (64-bit total).
    pub backpressure: u64,
}

/// Output-commit control of checkpointing VFs: one API over the adapter extension and the
/// driver-level fallback.
pub trait Hac {
    /// Marks `vf` as checkpointing (epoch 1 open) or not (releases what it holds).
    fn set_tagged(&mut self, vf: usize, on: bool) -> Result<(), HacError>;
    /// Opens `epoch` (strictly above the open one): later frames are stamped with it.
    fn open_epoch(&mut self, vf: usize, epoch: u32) -> Result<(), HacError>;
    /// The backup acknowledged `epoch`: release frames of epochs ≤ `epoch`.
    fn commit(&mut self, vf: usize, epoch: u32) -> Result<(), HacError>;
    /// Checkpoint `epoch` failed: discard the held frames it covered.
    fn abort(&mut self, vf: usize, epoch: u32) -> Result<(), HacError>;
    /// The primary failed over: discard everything held.
    fn failover(&mut self, vf: usize) -> Result<(), HacError>;
    /// The backup is lost: release everything and stop buffering.
    fn unprotect(&mut self, vf: usize) -> Result<(), HacError>;
    /// Buffer limits of `vf`.
    fn set_limits(&mut self, vf: usize, frames: u32, bytes: u32) -> Result<(), HacError>;
    /// Starvation guard in bytes (0 = strict priority).
    fn set_guard(&mut self, bytes: u32) -> Result<(), HacError>;
    /// Counters of `vf`.
    fn stats(&mut self, vf: usize) -> Result<HacVfStats, HacError>;
}

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
    counters: [[(u32, u64); 3]; 8],
}

impl<R: RegisterIo> AdapterHac<R> {
    /// Enables the HAC block of the adapter behind `pf_regs` for `num_vfs` VFs.
    pub fn new(pf_regs: R, num_vfs: usize) -> Self {
        let bar = Bar::new(pf_regs);
        bar.set(PfReg::HACCTL, 1);
        let mut counters = [[(0u32, 0u64); 3]; 8];
        for (v, c) in counters.iter_mut().enumerate() {
            let v = v as u8;
            for (slot, reg) in
                c.iter_mut()
                    .zip([PfReg::HACREL(v), PfReg::HACDISC(v), PfReg::HACBP(v)])
            {
                slot.0 = bar.get(reg);
            }
        }
        AdapterHac {
            bar,
            num_vfs,
            counters,
        }
    }

    fn check_vf(&self, vf: usize) -> Result<u8, HacError> {
        if vf < self.num_vfs.min(8) {
            Ok(vf as u8)
        } else {
            Err(HacError::NoSuchVf(vf))
        }
    }

    fn command(&mut self, vf: usize, op: u32, epoch: u32) -> Result<(), HacError> {
        let v = self.check_vf(vf)?;
        self.bar.set(PfReg::HACARG, epoch);
        self.bar.write(
            pf::HACCMD,
            HACCMD::OP.val(op) + HACCMD::VF.val(u32::from(v)),
        );
        match self.bar.read(pf::HACSTS).read(HACSTS::RESULT) {
            0 => Ok(()),
            2 => Err(HacError::NotTagged(vf)),
            3 => Err(HacError::BadEpoch { vf, epoch }),
            4 => Err(HacError::Disabled),
            other => Err(HacError::Refused(other)),
        }
    }
}

impl<R: RegisterIo> Hac for AdapterHac<R> {
    fn set_tagged(&mut self, vf: usize, on: bool) -> Result<(), HacError> {
        let v = self.check_vf(vf)?;
        let cur = self.bar.get(PfReg::HACTAG);
        let bit = 1u32 << v;
        self.bar
            .set(PfReg::HACTAG, if on { cur | bit } else { cur & !bit });
        Ok(())
    }
    fn open_epoch(&mut self, vf: usize, epoch: u32) -> Result<(), HacError> {
        self.command(vf, 1, epoch)
    }
    fn commit(&mut self, vf: usize, epoch: u32) -> Result<(), HacError> {
        self.command(vf, 2, epoch)
    }
    fn abort(&mut self, vf: usize, epoch: u32) -> Result<(), HacError> {
        self.command(vf, 3, epoch)
    }
    fn failover(&mut self, vf: usize) -> Result<(), HacError> {
        self.command(vf, 4, 0)
    }
    fn unprotect(&mut self, vf: usize) -> Result<(), HacError> {
        self.command(vf, 5, 0)
    }
    fn set_limits(&mut self, vf: usize, frames: u32, bytes: u32) -> Result<(), HacError> {
        let v = self.check_vf(vf)?;
        self.bar.set(PfReg::HACLIMF(v), frames);
        self.bar.set(PfReg::HACLIMB(v), bytes);
        Ok(())
    }
    fn set_guard(&mut self, bytes: u32) -> Result<(), HacError> {
        self.bar.set(PfReg::HACGUARD, bytes);
        Ok(())
    }
    fn stats(&mut self, vf: usize) -> Result<HacVfStats, HacError> {
        let v = self.check_vf(vf)?;
        // Free-running 32-bit registers extended to 64 bits (call at least once per wrap).
        let mut totals = [0u64; 3];
        for ((slot, reg), total) in self.counters[usize::from(v)]
            .iter_mut()
            .zip([PfReg::HACREL(v), PfReg::HACDISC(v), PfReg::HACBP(v)])
            .zip(totals.iter_mut())
        {
            let raw = self.bar.get(reg);
            slot.1 += u64::from(raw.wrapping_sub(slot.0));
            slot.0 = raw;
            *total = slot.1;
        }
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
        assert_eq!(hac.stats(1).unwrap().released, 9);
        // The register wraps: 4 more after MAX reads 3.
        regs.0.borrow_mut().insert(at(PfReg::HACREL(1)), 3);
        regs.0.borrow_mut().insert(at(PfReg::HACDISC(1)), 7);
        let st = hac.stats(1).unwrap();
        assert_eq!((st.released, st.discarded, st.backpressure), (13, 7, 0));
    }
}

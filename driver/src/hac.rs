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
    /// Frames released.
    pub released: u32,
    /// Frames discarded.
    pub discarded: u32,
    /// Backpressure events.
    pub backpressure: u32,
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
pub struct AdapterHac<R: RegisterIo> {
    bar: Bar<R, PfReg>,
    num_vfs: usize,
}

impl<R: RegisterIo> AdapterHac<R> {
    /// Enables the HAC block of the adapter behind `pf_regs` for `num_vfs` VFs.
    pub fn new(pf_regs: R, num_vfs: usize) -> Self {
        let bar = Bar::new(pf_regs);
        bar.set(PfReg::HACCTL, 1);
        AdapterHac { bar, num_vfs }
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
        let g = |r: PfReg| self.bar.get(r);
        Ok(HacVfStats {
            open_epoch: g(PfReg::HACOPEN(v)),
            committed_epoch: g(PfReg::HACCOMMITTED(v)),
            buffered_frames: g(PfReg::HACBUFF(v)),
            buffered_bytes: g(PfReg::HACBUFB(v)),
            max_frames: g(PfReg::HACMAXF(v)),
            max_bytes: g(PfReg::HACMAXB(v)),
            released: g(PfReg::HACREL(v)),
            discarded: g(PfReg::HACDISC(v)),
            backpressure: g(PfReg::HACBP(v)),
        })
    }
}

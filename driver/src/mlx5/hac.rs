//! [`Mlx5AdapterHac`]: the HAC host contract ([`Hac`]) for mlx5 adapters with the HAC
//! extension, through OUR vendor commands (HAC_SET_CONTROL … HAC_QUERY, opcodes
//! 0x7F00–0x7F08; docs/hac.md, "HAC on mlx5") issued on the PF's command queue on behalf of a
//! VF's vport. The PF is the E-Switch manager: a VF issuing them is refused by the device.
//!
//! VFs arrive as the contract's [`VfNumber`]; VF n is vport n + 1. A number at or beyond the
//! VFs this owner was given is [`HacError::NoSuchVf`] before anything is sent; the device's
//! refusals come back as the command status and OUR syndromes (`mlx5_hw::commands::hac::
//! syndrome`), decoded by name. Every command is a full round trip through the command queue,
//! so the result of each operation is the device's, never a cached guess.

pub use adapter_core::hac::{Hac, HacError, HacVfStats, VfNumber};
use mlx5_hw::cmd::CommandStatus;
use mlx5_hw::commands::hac::{
    HacAbortIn, HacAbortOut, HacCommitIn, HacCommitOut, HacFailoverIn, HacFailoverOut,
    HacOpenEpochIn, HacOpenEpochOut, HacQueryIn, HacQueryOut, HacSetControlIn, HacSetControlOut,
    HacSetLimitsIn, HacSetLimitsOut, HacSetTaggedIn, HacSetTaggedOut, HacUnprotectIn,
    HacUnprotectOut, control_select, syndrome,
};

use super::{Mlx5Device, Mlx5Error};
use crate::backend::{Clock, DmaAllocator, RegisterIo};

/// [`Hac`] through the HAC vendor commands of an mlx5 PF.
///
/// **One owner per adapter**, as for the 82576's [`crate::hac::AdapterHac`]: it owns the PF's
/// driver (and so its command queue); a daemon serialises every checkpoint engine through it.
pub struct Mlx5AdapterHac<R: RegisterIo, D: DmaAllocator, C: Clock> {
    pf: Mlx5Device<R, D, C>,
    num_vfs: u16,
}

/// How a refused HAC command reads as the contract's error.
fn decode(vf: VfNumber, epoch: u32, e: Mlx5Error) -> HacError {
    match e {
        Mlx5Error::Command {
            status, syndrome, ..
        } => match (status, syndrome) {
            (CommandStatus::BadParam, syndrome::NO_SUCH_VPORT) => HacError::NoSuchVf(vf),
            (CommandStatus::BadSysState, syndrome::NOT_TAGGED) => HacError::NotTagged(vf),
            (CommandStatus::BadParam, syndrome::BAD_EPOCH) => HacError::BadEpoch { vf, epoch },
            (CommandStatus::BadSysState, syndrome::DISABLED) => HacError::Disabled,
            (_, s) => HacError::Refused(s),
        },
        // Transport failures (delivery status, timeout, a dead device) have no HAC result:
        // reported as a refusal with no syndrome; the PF driver's own state says more.
        _ => HacError::Refused(0),
    }
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Mlx5AdapterHac<R, D, C> {
    /// Takes the PF's driver (brought up) and enables the HAC stage for `num_vfs` VFs (VF
    /// numbers beyond are [`HacError::NoSuchVf`]).
    pub fn new(mut pf: Mlx5Device<R, D, C>, num_vfs: u16) -> Result<Self, Mlx5Error> {
        let mut b = [0u8; HacSetControlIn::<&[u8]>::LEN];
        if let Ok(mut c) = HacSetControlIn::new_checked(&mut b[..]) {
            c.set_header(0);
            c.set_field_select(control_select::ENABLE);
            c.set_enable(true);
        }
        pf.exec(&b, HacSetControlOut::<&[u8]>::LEN)?;
        Ok(Mlx5AdapterHac { pf, num_vfs })
    }

    /// The PF's driver (e.g. to set a VF's MAC address).
    pub fn pf(&mut self) -> &mut Mlx5Device<R, D, C> {
        &mut self.pf
    }

    /// Gives the PF's driver back (the HAC stage stays as it is).
    pub fn into_pf(self) -> Mlx5Device<R, D, C> {
        self.pf
    }

    /// The vport of `vf`, if this owner has it.
    fn vport(&self, vf: VfNumber) -> Result<u16, HacError> {
        match u16::try_from(vf.get()) {
            Ok(n) if n < self.num_vfs => Ok(n + 1),
            _ => Err(HacError::NoSuchVf(vf)),
        }
    }

    /// Runs one HAC command for `vf` (`epoch` only names the error).
    fn run(
        &mut self,
        vf: VfNumber,
        epoch: u32,
        msg: &[u8],
        out_len: usize,
    ) -> Result<Vec<u8>, HacError> {
        self.pf.exec(msg, out_len).map_err(|e| decode(vf, epoch, e))
    }

    /// A per-vport HAC command for `vf`: `fill` writes the input given the vport.
    fn epoch_command<const N: usize>(
        &mut self,
        vf: VfNumber,
        epoch: u32,
        fill: impl FnOnce(&mut [u8], u16),
        out_len: usize,
    ) -> Result<Vec<u8>, HacError> {
        let vport = self.vport(vf)?;
        let mut b = [0u8; N];
        fill(&mut b, vport);
        self.run(vf, epoch, &b, out_len)
    }
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Hac for Mlx5AdapterHac<R, D, C> {
    fn set_tagged(&mut self, vf: VfNumber, on: bool) -> Result<(), HacError> {
        const N: usize = HacSetTaggedIn::<&[u8]>::LEN;
        self.epoch_command::<N>(
            vf,
            0,
            |b, vport| {
                if let Ok(mut c) = HacSetTaggedIn::new_checked(b) {
                    c.set_header(0);
                    c.set_vport_number(vport);
                    c.set_tagged(on);
                }
            },
            HacSetTaggedOut::<&[u8]>::LEN,
        )
        .map(drop)
    }

    fn open_epoch(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        const N: usize = HacOpenEpochIn::<&[u8]>::LEN;
        self.epoch_command::<N>(
            vf,
            epoch,
            |b, vport| {
                if let Ok(mut c) = HacOpenEpochIn::new_checked(b) {
                    c.set_header(0);
                    c.set_vport_number(vport);
                    c.set_epoch(epoch);
                }
            },
            HacOpenEpochOut::<&[u8]>::LEN,
        )
        .map(drop)
    }

    fn commit(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        const N: usize = HacCommitIn::<&[u8]>::LEN;
        self.epoch_command::<N>(
            vf,
            epoch,
            |b, vport| {
                if let Ok(mut c) = HacCommitIn::new_checked(b) {
                    c.set_header(0);
                    c.set_vport_number(vport);
                    c.set_epoch(epoch);
                }
            },
            HacCommitOut::<&[u8]>::LEN,
        )
        .map(drop)
    }

    fn abort(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        const N: usize = HacAbortIn::<&[u8]>::LEN;
        self.epoch_command::<N>(
            vf,
            epoch,
            |b, vport| {
                if let Ok(mut c) = HacAbortIn::new_checked(b) {
                    c.set_header(0);
                    c.set_vport_number(vport);
                    c.set_epoch(epoch);
                }
            },
            HacAbortOut::<&[u8]>::LEN,
        )
        .map(drop)
    }

    fn failover(&mut self, vf: VfNumber) -> Result<(), HacError> {
        const N: usize = HacFailoverIn::<&[u8]>::LEN;
        self.epoch_command::<N>(
            vf,
            0,
            |b, vport| {
                if let Ok(mut c) = HacFailoverIn::new_checked(b) {
                    c.set_header(0);
                    c.set_vport_number(vport);
                }
            },
            HacFailoverOut::<&[u8]>::LEN,
        )
        .map(drop)
    }

    fn unprotect(&mut self, vf: VfNumber) -> Result<(), HacError> {
        const N: usize = HacUnprotectIn::<&[u8]>::LEN;
        self.epoch_command::<N>(
            vf,
            0,
            |b, vport| {
                if let Ok(mut c) = HacUnprotectIn::new_checked(b) {
                    c.set_header(0);
                    c.set_vport_number(vport);
                }
            },
            HacUnprotectOut::<&[u8]>::LEN,
        )
        .map(drop)
    }

    fn set_limits(&mut self, vf: VfNumber, frames: u32, bytes: u32) -> Result<(), HacError> {
        const N: usize = HacSetLimitsIn::<&[u8]>::LEN;
        self.epoch_command::<N>(
            vf,
            0,
            |b, vport| {
                if let Ok(mut c) = HacSetLimitsIn::new_checked(b) {
                    c.set_header(0);
                    c.set_vport_number(vport);
                    c.set_frames(frames);
                    c.set_bytes(bytes);
                }
            },
            HacSetLimitsOut::<&[u8]>::LEN,
        )
        .map(drop)
    }

    fn set_guard(&mut self, bytes: u32) -> Result<(), HacError> {
        let mut b = [0u8; HacSetControlIn::<&[u8]>::LEN];
        if let Ok(mut c) = HacSetControlIn::new_checked(&mut b[..]) {
            c.set_header(0);
            c.set_field_select(control_select::GUARD);
            c.set_guard_bytes(bytes);
        }
        self.pf
            .exec(&b, HacSetControlOut::<&[u8]>::LEN)
            .map(drop)
            .map_err(|e| decode(VfNumber::new(0), 0, e))
    }

    fn stats(&mut self, vf: VfNumber) -> Result<HacVfStats, HacError> {
        const N: usize = HacQueryIn::<&[u8]>::LEN;
        let out = self.epoch_command::<N>(
            vf,
            0,
            |b, vport| {
                if let Ok(mut c) = HacQueryIn::new_checked(b) {
                    c.set_header(0);
                    c.set_vport_number(vport);
                }
            },
            HacQueryOut::<&[u8]>::LEN,
        )?;
        let q = HacQueryOut::new_checked(&out[..]).map_err(|_| HacError::Refused(0))?;
        Ok(HacVfStats {
            open_epoch: q.open_epoch(),
            committed_epoch: q.committed_epoch(),
            buffered_frames: q.buffered_frames(),
            buffered_bytes: q.buffered_bytes(),
            max_frames: q.max_frames(),
            max_bytes: q.max_bytes(),
            released: q.released(),
            discarded: q.discarded(),
            backpressure: q.backpressure(),
        })
    }
}

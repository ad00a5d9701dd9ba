//! The control dispatcher: the one place the daemon matches on a [`Request`]. It checks what
//! every backend shares (the VF exists, the backend has a HAC block) and calls the typed
//! operations of the [`Backend`] the daemon runs on.

use std::time::Duration;

use hac_control::{
    ControlError, ErrorCode, Guard, HelloInfo, Limits, Queued, Reply, Request, Stats, Stopping,
    VfSummary,
};
use hac_driver::hac::{Hac, HacError, VfNumber};

/// A HAC operation on one VF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HacOp {
    /// Start checkpointing.
    Tag,
    /// Stop checkpointing (release).
    Untag,
    /// Open an epoch.
    Open(u32),
    /// Commit an epoch.
    Commit(u32),
    /// Abort an epoch.
    Abort(u32),
    /// Discard everything.
    Failover,
    /// Release everything and stop checkpointing.
    Unprotect,
}

impl HacOp {
    /// Applies the operation to VF `n` through any [`Hac`] implementation (the 82576's HAC
    /// registers, the mlx5 vendor commands). Returns the VF's checkpointing state when the
    /// operation changes it (tag, untag, unprotect).
    pub(super) fn apply<H: Hac + ?Sized>(
        self,
        hac: &mut H,
        n: VfNumber,
    ) -> Result<Option<bool>, ControlError> {
        match self {
            HacOp::Tag | HacOp::Untag => {
                let on = self == HacOp::Tag;
                hac.set_tagged(n, on).map_err(hac_refused)?;
                return Ok(Some(on));
            }
            HacOp::Open(epoch) => hac.open_epoch(n, epoch),
            HacOp::Commit(epoch) => hac.commit(n, epoch),
            HacOp::Abort(epoch) => hac.abort(n, epoch),
            HacOp::Failover => hac.failover(n),
            HacOp::Unprotect => {
                hac.unprotect(n).map_err(hac_refused)?;
                return Ok(Some(false));
            }
        }
        .map_err(hac_refused)?;
        Ok(None)
    }
}

/// A refusal of the HAC layer as a control error.
pub(super) fn hac_refused(e: HacError) -> ControlError {
    let code = match e {
        HacError::NoSuchVf(_) => ErrorCode::NoSuchVf,
        _ => ErrorCode::Refused,
    };
    ControlError::new(code, e.to_string())
}

/// What the daemon serves requests with: the model (everything) or a real PF (mailbox only).
pub(super) trait Backend {
    /// Lets the device and the PF agent run up to now.
    fn tick(&mut self);
    /// How often to tick while idle.
    fn idle_tick(&self) -> Duration;
    /// VFs on the PF.
    fn num_vfs(&self) -> usize;
    /// Who is serving.
    fn hello(&self) -> HelloInfo;
    /// Whether the PF has a HAC block (the HAC requests are refused as unsupported if not).
    fn has_hac(&self) -> bool;
    /// A HAC operation on an existing VF; its state after.
    fn hac(&mut self, vf: usize, op: HacOp) -> Result<VfSummary, ControlError>;
    /// Buffer limits of an existing VF.
    fn set_limits(&mut self, vf: usize, frames: u32, bytes: u32) -> Result<(), ControlError>;
    /// The scheduler's starvation guard.
    fn set_guard(&mut self, bytes: u32) -> Result<(), ControlError>;
    /// The stand-in VM on `vf` (not checked) transmits `frames` frames of `len` bytes.
    fn send(&mut self, vf: usize, frames: u32, len: usize) -> Result<(), ControlError>;
    /// Counters of one existing VF or all.
    fn stats(&mut self, only: Option<usize>) -> Result<Stats, ControlError>;
    /// Flushes outputs before the daemon exits.
    fn finish(&mut self) {}
}

/// The error for a VF the PF does not have.
pub(super) fn no_such_vf(vf: usize, n: usize) -> ControlError {
    ControlError::new(
        ErrorCode::NoSuchVf,
        format!(
            "VF {vf} does not exist: this PF has {n} VFs (0..={})",
            n.saturating_sub(1)
        ),
    )
}

/// Carries out `request` on `backend`.
pub(super) fn dispatch(
    backend: &mut dyn Backend,
    request: &Request,
) -> Result<Reply, ControlError> {
    Ok(match *request {
        Request::Hello {} => Reply::Hello(backend.hello()),
        Request::Tag { vf } => Reply::Tag(hac(backend, request, vf, HacOp::Tag)?),
        Request::Untag { vf } => Reply::Untag(hac(backend, request, vf, HacOp::Untag)?),
        Request::Open { vf, epoch } => Reply::Open(hac(backend, request, vf, HacOp::Open(epoch))?),
        Request::Commit { vf, epoch } => {
            Reply::Commit(hac(backend, request, vf, HacOp::Commit(epoch))?)
        }
        Request::Abort { vf, epoch } => {
            Reply::Abort(hac(backend, request, vf, HacOp::Abort(epoch))?)
        }
        Request::Failover { vf } => Reply::Failover(hac(backend, request, vf, HacOp::Failover)?),
        Request::Unprotect { vf } => Reply::Unprotect(hac(backend, request, vf, HacOp::Unprotect)?),
        Request::SetLimits { vf, frames, bytes } => {
            needs_hac(backend, request)?;
            backend.set_limits(existing(backend, vf)?, frames, bytes)?;
            Reply::SetLimits(Limits {
                vf,
                limit_frames: frames,
                limit_bytes: bytes,
            })
        }
        Request::SetGuard { bytes } => {
            needs_hac(backend, request)?;
            backend.set_guard(bytes)?;
            Reply::SetGuard(Guard { guard_bytes: bytes })
        }
        Request::Stats { vf } => {
            if let Some(vf) = vf {
                existing(backend, vf)?;
            }
            Reply::Stats(backend.stats(vf)?)
        }
        Request::Send { vf, frames, len } => {
            let len = len.unwrap_or(128) as usize;
            backend.send(vf, frames, len)?;
            Reply::Send(Queued {
                vf,
                queued: frames,
                len,
            })
        }
        Request::Shutdown {} => Reply::Shutdown(Stopping { stopping: true }),
    })
}

/// `vf` if the PF has it.
fn existing(backend: &dyn Backend, vf: usize) -> Result<usize, ControlError> {
    let n = backend.num_vfs();
    if vf < n {
        Ok(vf)
    } else {
        Err(no_such_vf(vf, n))
    }
}

/// Refuses `request` as unsupported if the PF has no HAC block.
fn needs_hac(backend: &dyn Backend, request: &Request) -> Result<(), ControlError> {
    if backend.has_hac() {
        Ok(())
    } else {
        Err(ControlError::new(
            ErrorCode::Unsupported,
            format!(
                "`{}`: this PF has no HAC block (82576/I350); output commit on it is done by \
                 the driver-level HAC in the VF's own driver (docs/hac.md)",
                request.op()
            ),
        ))
    }
}

/// The HAC operation `op` of `request` on VF `vf`.
fn hac(
    backend: &mut dyn Backend,
    request: &Request,
    vf: usize,
    op: HacOp,
) -> Result<VfSummary, ControlError> {
    needs_hac(backend, request)?;
    backend.hac(existing(backend, vf)?, op)
}

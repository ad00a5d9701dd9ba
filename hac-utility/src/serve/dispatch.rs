//! The control dispatcher: the one place the daemon matches on a [`Request`]. It checks what
//! every backend shares (the VF exists, the backend has a HAC block) and calls the typed
//! operations of the [`Backend`] the daemon runs on.

use std::time::Duration;

use hac_control::{
    ControlError, ErrorCode, Guard, HelloInfo, Limits, Queued, Reply, Request, Stats, Stopping,
    VfSummary,
};

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
    let n = backend.num_vfs();
    let check = |vf: usize| {
        if vf < n {
            Ok(vf)
        } else {
            Err(no_such_vf(vf, n))
        }
    };
    let hac_op = match *request {
        Request::Tag { vf } => Some((vf, HacOp::Tag)),
        Request::Untag { vf } => Some((vf, HacOp::Untag)),
        Request::Open { vf, epoch } => Some((vf, HacOp::Open(epoch))),
        Request::Commit { vf, epoch } => Some((vf, HacOp::Commit(epoch))),
        Request::Abort { vf, epoch } => Some((vf, HacOp::Abort(epoch))),
        Request::Failover { vf } => Some((vf, HacOp::Failover)),
        Request::Unprotect { vf } => Some((vf, HacOp::Unprotect)),
        _ => None,
    };
    let needs_hac = hac_op.is_some()
        || matches!(
            request,
            Request::SetLimits { .. } | Request::SetGuard { .. }
        );
    if needs_hac && !backend.has_hac() {
        return Err(ControlError::new(
            ErrorCode::Unsupported,
            format!(
                "`{}`: this PF has no HAC block (82576/I350); output commit on it is done by \
                 the driver-level HAC in the VF's own driver (docs/hac.md)",
                request.op()
            ),
        ));
    }
    if let Some((vf, op)) = hac_op {
        let summary = backend.hac(check(vf)?, op)?;
        return Ok(match request {
            Request::Tag { .. } => Reply::Tag(summary),
            Request::Untag { .. } => Reply::Untag(summary),
            Request::Open { .. } => Reply::Open(summary),
            Request::Commit { .. } => Reply::Commit(summary),
            Request::Abort { .. } => Reply::Abort(summary),
            Request::Failover { .. } => Reply::Failover(summary),
            _ => Reply::Unprotect(summary),
        });
    }
    Ok(match *request {
        Request::Hello {} => Reply::Hello(backend.hello()),
        Request::SetLimits { vf, frames, bytes } => {
            backend.set_limits(check(vf)?, frames, bytes)?;
            Reply::SetLimits(Limits {
                vf,
                limit_frames: frames,
                limit_bytes: bytes,
            })
        }
        Request::SetGuard { bytes } => {
            backend.set_guard(bytes)?;
            Reply::SetGuard(Guard { guard_bytes: bytes })
        }
        Request::Stats { vf } => {
            if let Some(vf) = vf {
                check(vf)?;
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
        // The HAC operations were answered above.
        _ => {
            return Err(ControlError::new(
                ErrorCode::Internal,
                format!("`{}` was not dispatched", request.op()),
            ));
        }
    })
}

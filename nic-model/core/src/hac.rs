//! The HAC host contract: the operations a host (the `hac` utility, a checkpoint engine) uses to
//! control output commit of checkpointing VFs, the same for every device family and for the
//! driver-level fallback.
//!
//! [`Hac`] is implemented by each family's agent for its register block (the 82576 family's
//! `AdapterHac` in the driver crate) and by `SoftHac`, which gives the same semantics in the
//! driver for adapters without the extension. docs/hac.md states the contract; the conformance
//! suite in the `hac-tests` crate (`hac_tests::hac_conformance`) is its executable statement and
//! runs against every implementation.
//!
//! VFs are named by [`VfNumber`] (SR-IOV VF n of the PF), whatever the family's own index type;
//! a number the implementation does not have is [`HacError::NoSuchVf`], never a panic. Epochs
//! follow [`crate::epoch`].

pub use hw_common::VfNumber;

/// Why a HAC operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HacError {
    /// The VF is not checkpointing.
    #[error("VF {0} is not tagged as checkpointing")]
    NotTagged(VfNumber),
    /// The epoch does not fit the VF's open/resolved epochs.
    #[error("epoch {epoch} is not valid for VF {vf} now (see docs/hac.md: epoch rules)")]
    BadEpoch {
        /// The VF.
        vf: VfNumber,
        /// The epoch given.
        epoch: u32,
    },
    /// The HAC block is disabled.
    #[error("the HAC extension is disabled")]
    Disabled,
    /// No such VF.
    #[error("VF {0} does not exist")]
    NoSuchVf(VfNumber),
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
    /// Frames released (64-bit total; an adapter's 32-bit register is accumulated).
    pub released: u64,
    /// Frames discarded (64-bit total).
    pub discarded: u64,
    /// Backpressure events (64-bit total).
    pub backpressure: u64,
}

/// Output-commit control of checkpointing VFs: one API over every adapter extension and the
/// driver-level fallback.
pub trait Hac {
    /// Marks `vf` as checkpointing (epoch 1 open) or not (releases what it holds).
    fn set_tagged(&mut self, vf: VfNumber, on: bool) -> Result<(), HacError>;
    /// Opens `epoch` (strictly above the open one): later frames are stamped with it.
    fn open_epoch(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError>;
    /// The backup acknowledged `epoch`: release frames of epochs ≤ `epoch`.
    fn commit(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError>;
    /// Checkpoint `epoch` failed: discard the held frames it covered.
    fn abort(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError>;
    /// The primary failed over: discard everything held.
    fn failover(&mut self, vf: VfNumber) -> Result<(), HacError>;
    /// The backup is lost: release everything and stop buffering.
    fn unprotect(&mut self, vf: VfNumber) -> Result<(), HacError>;
    /// Buffer limits of `vf` (0 = the maximum, 2³² − 1).
    fn set_limits(&mut self, vf: VfNumber, frames: u32, bytes: u32) -> Result<(), HacError>;
    /// Starvation guard in bytes (0 = strict priority).
    fn set_guard(&mut self, bytes: u32) -> Result<(), HacError>;
    /// Counters of `vf`.
    fn stats(&mut self, vf: VfNumber) -> Result<HacVfStats, HacError>;
}

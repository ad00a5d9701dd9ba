//! The HAC contract in the driver, written once for every family: [`SoftHacCore`] keeps each
//! checkpointing VF's frames in its transmit queue *without ringing*, rings only up to the
//! committed point, and takes back what it never rang on abort and failover. What a family
//! supplies is a `HoldPort`: a VF's transmit queue that can take a frame held (written, not
//! handed to the device), ring up to a position, and take back everything held beyond its last
//! ring (the 82576's igbvf TX ring and TDT, [`crate::softhac`]; the mlx5 SQ, its doorbell record
//! and UAR doorbell, [`crate::mlx5::softhac`]). The trait is sealed: nameable only inside this
//! crate, so the held-frame operations stay the core's, as the drivers' own hold APIs intend.
//!
//! Per VF the core keeps the adapter core's [`EpochState`] (so SoftHac and the extension cannot
//! disagree on which epochs may be opened or resolved), a FIFO of the frames it has not handed
//! to the device (released ones first, then the held ones; each either written into the queue,
//! with the position after it, or waiting in software because the queue was full), the buffer
//! limits and the contract's counters. Only the front of the software part can move into the
//! queue, so the frames in the queue are always a prefix of the unreleased ones.
//!
//! A port whose queue can fail (mlx5: an error CQE moves the SQ to ERR) says so through
//! `HoldPort::needs_recovery`; the core then takes the held frames back, has the port
//! `HoldPort::recover` the queue and writes them again in order, losing nothing.

use std::collections::VecDeque;

use adapter_core::EpochState;
use adapter_core::egress::DEFAULT_HAC_LIMITS;
use adapter_core::hac::{Hac, HacError, HacVfStats, VfNumber};
use bytes::Bytes;

/// Buffer limits of a checkpointing VF until `set_limits`: 4096 frames and 4 MiB, the adapter
/// extension's defaults (the core's `DEFAULT_HAC_LIMITS`, docs/hac.md). `set_limits` with 0
/// means the maximum, 2³² − 1.
pub const DEFAULT_LIMIT_FRAMES: u32 = DEFAULT_HAC_LIMITS.frames as u32;
/// See [`DEFAULT_LIMIT_FRAMES`].
pub const DEFAULT_LIMIT_BYTES: u32 = DEFAULT_HAC_LIMITS.bytes as u32;
/// The guard until `set_guard`: plain bytes per pump that may go ahead of released frames
/// still waiting for queue room.
pub const DEFAULT_GUARD_BYTES: u32 = 64 * 1024;

/// The seam each family implements. Sealed: the trait is public (it bounds [`SoftHacCore`]) but
/// not nameable outside the crate, so no caller can post, ring or take back through it on a
/// driver it owns; only the core does.
mod sealed {
    use super::{Bytes, VfNumber};

    /// A VF's transmit queue as [`SoftHacCore`] drives it: frames can be written without ringing,
    /// the doorbell moved over a prefix of them, and the rest taken back. Implemented by the
    /// family drivers (the igbvf `VfDriver`, the mlx5 `Mlx5Device`); the hold itself (refusing a
    /// plain send while frames are held, ignoring a ring request outside the held range) is the
    /// driver's.
    pub trait HoldPort {
        /// The family driver's error.
        type Error;
        /// A position in the queue that [`HoldPort::ring_to`] takes: where the queue ends after
        /// a held frame (the 82576's TX tail, the mlx5 SQ producer counter).
        type Position: Copy;
        /// How many VFs the family can address; contract numbers at or beyond it are `NoSuchVf`.
        const MAX_VFS: usize;

        /// The family's error for a VF number this SoftHac does not have.
        fn no_such_vf(vf: VfNumber) -> Self::Error;

        /// Refuses a frame of `len` bytes the send path cannot carry.
        fn check_frame_len(&self, len: usize) -> Result<(), Self::Error>;

        /// Writes `frame` into the queue beyond the last ring without ringing; the position after
        /// it, or `None` if the queue has no room.
        fn post_held(&mut self, frame: &Bytes) -> Result<Option<Self::Position>, Self::Error>;

        /// Hands the held frames up to `end` (a position [`HoldPort::post_held`] returned) to the
        /// device.
        fn ring_to(&mut self, end: Self::Position) -> Result<(), Self::Error>;

        /// Takes back every frame held beyond the last ring (the device never saw them).
        fn take_back_held(&mut self);

        /// Sends `frame` at once (an untagged VF's plain frame); `false` if the queue has no room.
        fn send_now(&mut self, frame: &Bytes) -> Result<bool, Self::Error>;

        /// Whether the queue failed and must be recovered before held frames are written again.
        fn needs_recovery(&self) -> bool {
            false
        }

        /// Recovers a failed queue (called with nothing held).
        fn recover(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }
}
pub(crate) use sealed::HoldPort;

/// A frame the VF accepted and has not handed to the device.
struct Held<Pos> {
    /// Checkpoint epoch; `None` for a plain frame queued before the VF was tagged.
    epoch: Option<u32>,
    frame: Bytes,
    /// The queue position after this frame, if it is written (held beyond the last ring).
    end: Option<Pos>,
}

/// Which held, unreleased frames [`SoftHacCore::rewrite`] drops.
#[derive(Clone, Copy)]
enum Drop {
    /// Epochs ≤ e (abort e).
    UpTo(u32),
    /// Every one (failover).
    All,
    /// None: only write them again (after a queue recovery).
    Nothing,
}

impl Drop {
    fn drops(self, epoch: Option<u32>) -> bool {
        match self {
            Drop::UpTo(u) => epoch.is_none_or(|e| e <= u),
            Drop::All => true,
            Drop::Nothing => false,
        }
    }
}

enum Push<Pos> {
    /// Written; the position after it.
    Written(Pos),
    NoRoom,
    /// Refused by the driver (counted in `discarded`).
    Dropped,
}

struct SoftVf<P: HoldPort> {
    port: P,
    /// The epoch rules are the adapter core's, so SoftHac and the extension cannot disagree.
    epochs: EpochState,
    /// Frames not yet handed to the device, FIFO: released ones first.
    held: VecDeque<Held<P::Position>>,
    /// How many of `held` (from the front) are released.
    released_pending: usize,
    /// Plain frames of an untagged VF waiting for queue room (or behind released checkpoint
    /// traffic). Empty while the VF is tagged.
    plain: VecDeque<Bytes>,
    limit_frames: u32,
    limit_bytes: u32,
    held_bytes: u64,
    stats: HacVfStats,
}

impl<P: HoldPort> SoftVf<P> {
    fn update_buffered(&mut self) {
        self.stats.buffered_frames = u32::try_from(self.held.len()).unwrap_or(u32::MAX);
        self.stats.buffered_bytes = u32::try_from(self.held_bytes).unwrap_or(u32::MAX);
        self.stats.max_frames = self.stats.max_frames.max(self.stats.buffered_frames);
        self.stats.max_bytes = self.stats.max_bytes.max(self.stats.buffered_bytes);
    }

    /// Writes `frame` beyond the last ring if the queue has room. A frame the driver refuses
    /// (lengths are checked at `send`, so only a failing device) is dropped and counted in
    /// `discarded`; the error goes to `failed`.
    fn push_held(&mut self, frame: &Bytes, failed: &mut Option<P::Error>) -> Push<P::Position> {
        match self.port.post_held(frame) {
            Ok(Some(end)) => Push::Written(end),
            Ok(None) => Push::NoRoom,
            Err(e) => {
                self.stats.discarded += 1;
                failed.get_or_insert(e);
                Push::Dropped
            }
        }
    }

    /// Whether the next frame may be written into the queue: only if every frame before it is
    /// (FIFO: a frame waiting in software keeps the later ones out).
    fn queue_is_tail(&self) -> bool {
        self.held.back().is_none_or(|h| h.end.is_some())
    }

    /// Writes the held frames again after a queue failure, if the queue failed.
    fn recover_if_needed(&mut self, failed: &mut Option<P::Error>) {
        if self.port.needs_recovery()
            && !self.held.is_empty()
            && let Err(e) = self.rewrite(Drop::Nothing)
        {
            failed.get_or_insert(e);
        }
    }

    /// Writes released frames still in software into the queue and rings the doorbell over
    /// every released frame written. The doorbell is rung even when a frame fails, and a
    /// failing frame is dropped with a count: nothing released is left unaccounted.
    fn release_front(&mut self) -> Result<(), P::Error> {
        let mut doorbell = None;
        let mut failed = None;
        while self.released_pending > 0 {
            let Some(front) = self.held.front() else {
                break;
            };
            let end = match front.end {
                Some(end) => Some(end),
                // Room in the queue for it now? (Only the front can move in: FIFO.)
                None => match self.push_held(&front.frame.clone(), &mut failed) {
                    Push::Written(end) => Some(end),
                    Push::NoRoom => break,
                    Push::Dropped => None,
                },
            };
            if end.is_some() {
                doorbell = end;
            }
            if let Some(h) = self.held.pop_front() {
                self.held_bytes -= h.frame.len() as u64;
            }
            self.released_pending -= 1;
        }
        if let Some(end) = doorbell
            && let Err(e) = self.port.ring_to(end)
        {
            failed.get_or_insert(e);
        }
        self.update_buffered();
        failed.map_or(Ok(()), Err)
    }

    /// Takes back every held frame, drops the unreleased frames `drop` names (counted in
    /// `discarded`) and writes the survivors again in order (a failed queue is recovered in
    /// between). Returns how many were discarded.
    ///
    /// Invariant used: after [`SoftVf::release_front`], every released frame still pending is
    /// outside the queue, so the written frames are exactly the driver's held ones (beyond its
    /// last ring), which it can take back.
    fn rewrite(&mut self, drop: Drop) -> Result<u32, P::Error> {
        let old: Vec<_> = self.held.drain(self.released_pending..).collect();
        self.port.take_back_held();
        let mut failed = None;
        if self.port.needs_recovery()
            && let Err(e) = self.port.recover()
        {
            failed.get_or_insert(e);
        }
        let mut discarded = 0;
        for mut h in old {
            if drop.drops(h.epoch) {
                self.held_bytes -= h.frame.len() as u64;
                discarded += 1;
                continue;
            }
            h.end = None;
            if self.queue_is_tail() {
                match self.push_held(&h.frame, &mut failed) {
                    Push::Written(end) => h.end = Some(end),
                    Push::NoRoom => {}
                    Push::Dropped => {
                        self.held_bytes -= h.frame.len() as u64;
                        continue;
                    }
                }
            }
            self.held.push_back(h);
        }
        self.stats.discarded += u64::from(discarded);
        self.update_buffered();
        failed.map_or(Ok(discarded), Err)
    }

    /// Marks the unreleased frames of epochs ≤ `upto` (all with `None`) released.
    fn mark_released(&mut self, upto: Option<u32>) {
        while self.released_pending < self.held.len()
            && upto.is_none_or(|u| {
                self.held[self.released_pending]
                    .epoch
                    .is_none_or(|e| e <= u)
            })
        {
            self.released_pending += 1;
            self.stats.released += 1;
        }
    }
}

/// Driver-level HAC over the VFs a driver owns, each behind its family's `HoldPort`. The
/// families name it `SoftHac` (82576) and `Mlx5SoftHac` and add their constructor, `send`
/// and a port for everything but sending.
pub struct SoftHacCore<P: HoldPort> {
    vfs: Vec<SoftVf<P>>,
    guard: u32,
}

impl<P: HoldPort> SoftHacCore<P> {
    /// Takes the VF ports: the port at position n is VF n.
    pub(crate) fn with_ports(ports: Vec<P>) -> Self {
        let vfs = ports
            .into_iter()
            .map(|port| SoftVf {
                port,
                epochs: EpochState::default(),
                held: VecDeque::new(),
                released_pending: 0,
                plain: VecDeque::new(),
                limit_frames: DEFAULT_LIMIT_FRAMES,
                limit_bytes: DEFAULT_LIMIT_BYTES,
                held_bytes: 0,
                stats: HacVfStats::default(),
            })
            .collect();
        SoftHacCore {
            vfs,
            guard: DEFAULT_GUARD_BYTES,
        }
    }

    /// Plain frames of untagged VF `vf` waiting in software for queue room (0 for a VF this
    /// SoftHac does not have). A sender that should see backpressure like a full ring offers
    /// more only while this is short.
    pub fn plain_queued(&self, vf: VfNumber) -> usize {
        self.vfs
            .get(vf.get())
            .filter(|_| vf.get() < P::MAX_VFS)
            .map_or(0, |v| v.plain.len())
    }

    /// The driver of VF `vf`, for the family's port (never for sending).
    pub(crate) fn port_mut(&mut self, vf: VfNumber) -> Option<&mut P> {
        self.soft_vf(vf).map(|v| &mut v.port)
    }

    fn soft_vf(&mut self, vf: VfNumber) -> Option<&mut SoftVf<P>> {
        if vf.get() >= P::MAX_VFS {
            return None;
        }
        self.vfs.get_mut(vf.get())
    }

    /// The VF behind contract number `vf`, if this SoftHac has it.
    fn vf(&mut self, vf: VfNumber) -> Result<&mut SoftVf<P>, HacError> {
        self.soft_vf(vf).ok_or(HacError::NoSuchVf(vf))
    }

    /// The VF behind `vf` if it is checkpointing (`NotTagged` otherwise).
    fn tagged_vf(&mut self, vf: VfNumber) -> Result<&mut SoftVf<P>, HacError> {
        let v = self.vf(vf)?;
        if !v.epochs.tagged {
            return Err(HacError::NotTagged(vf));
        }
        Ok(v)
    }

    /// The checkpointing VF behind `vf` if commit and abort may name `epoch` (the core's
    /// `resolved < epoch ≤ open`; `BadEpoch` otherwise).
    fn resolvable_vf(&mut self, vf: VfNumber, epoch: u32) -> Result<&mut SoftVf<P>, HacError> {
        let v = self.tagged_vf(vf)?;
        if !v.epochs.resolvable(epoch) {
            return Err(HacError::BadEpoch { vf, epoch });
        }
        Ok(v)
    }

    /// Queues frames on `vf`; returns how many were accepted. A checkpointing VF stops
    /// accepting at its buffer limit (backpressure, counted: the caller keeps the rest,
    /// nothing is dropped); with nothing buffered it takes one frame whatever the limits. A
    /// frame the send path cannot carry refuses the whole call before anything is accepted.
    pub(crate) fn send_frames(
        &mut self,
        vf: VfNumber,
        frames: &[Bytes],
    ) -> Result<usize, P::Error> {
        let v = self.soft_vf(vf).ok_or_else(|| P::no_such_vf(vf))?;
        for f in frames {
            v.port.check_frame_len(f.len())?;
        }
        if !v.epochs.tagged {
            v.plain.extend(frames.iter().cloned());
            self.pump()?;
            return Ok(frames.len());
        }
        let mut failed = None;
        v.recover_if_needed(&mut failed);
        let mut accepted = 0;
        for f in frames {
            // An empty buffer always takes one frame, as the adapter's egress stage does: no
            // limit (not even a byte limit below one frame) stops a VF for good.
            if !v.held.is_empty()
                && (v.held.len() as u64 >= u64::from(v.limit_frames)
                    || v.held_bytes + f.len() as u64 > u64::from(v.limit_bytes))
            {
                v.stats.backpressure += 1;
                break;
            }
            // Into the queue (held beyond the last ring) if nothing waits in software before it.
            let end = if v.queue_is_tail() {
                match v.push_held(f, &mut failed) {
                    Push::Written(end) => Some(end),
                    Push::NoRoom => None,
                    Push::Dropped => break,
                }
            } else {
                None
            };
            v.held.push_back(Held {
                epoch: Some(v.epochs.open),
                frame: f.clone(),
                end,
            });
            v.held_bytes += f.len() as u64;
            accepted += 1;
        }
        v.update_buffered();
        match failed {
            Some(e) => Err(e),
            None => Ok(accepted),
        }
    }

    /// Hands released checkpoint frames to the device (as queue room allows), then plain
    /// frames (within the guard while released frames still wait); recovers a failed queue,
    /// writing its held frames again. Call it regularly (the driver's poll loop). A failure
    /// on one VF does not stop the others; the first is returned.
    pub fn pump(&mut self) -> Result<(), P::Error> {
        let mut waiting_high = false;
        let mut failed = None;
        for v in &mut self.vfs {
            v.recover_if_needed(&mut failed);
            if let Err(e) = v.release_front() {
                failed.get_or_insert(e);
            }
            waiting_high |= v.released_pending > 0;
        }
        let mut budget = if waiting_high {
            u64::from(self.guard)
        } else {
            u64::MAX
        };
        for v in &mut self.vfs {
            // A VF's plain frames go after everything it queued earlier (released frames still
            // in software); a tagged VF has none.
            if !v.held.is_empty() {
                continue;
            }
            while let Some(f) = v.plain.front() {
                if (f.len() as u64) > budget && waiting_high {
                    break;
                }
                match v.port.send_now(f) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(e) => {
                        failed.get_or_insert(e);
                        break;
                    }
                }
                budget = budget.saturating_sub(f.len() as u64);
                v.plain.pop_front();
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// A driver failure during a HAC operation: the contract has no code for it.
fn driver_err<E>(_: E) -> HacError {
    HacError::Refused(0xFF)
}

impl<P: HoldPort> Hac for SoftHacCore<P> {
    fn set_tagged(&mut self, vf: VfNumber, on: bool) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if on && !v.epochs.tagged {
            v.epochs = EpochState::TAGGED;
            // The plain backlog predates the protection: it stays first and is not held.
            let backlog = std::mem::take(&mut v.plain);
            for frame in backlog {
                v.held_bytes += frame.len() as u64;
                v.held.push_back(Held {
                    epoch: None,
                    frame,
                    end: None,
                });
            }
            v.released_pending = v.held.len();
            v.release_front().map_err(driver_err)?;
        } else if !on && v.epochs.tagged {
            v.mark_released(None);
            v.release_front().map_err(driver_err)?;
            v.epochs.tagged = false;
        }
        Ok(())
    }

    fn open_epoch(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        let v = self.tagged_vf(vf)?;
        if !v.epochs.openable(epoch) {
            return Err(HacError::BadEpoch { vf, epoch });
        }
        v.epochs.open = epoch;
        Ok(())
    }

    fn commit(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        let v = self.resolvable_vf(vf, epoch)?;
        v.epochs.committed = epoch;
        v.epochs.resolved = epoch;
        v.mark_released(Some(epoch));
        v.release_front().map_err(driver_err)
    }

    fn abort(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        let v = self.resolvable_vf(vf, epoch)?;
        // The epoch's frames are gone even if writing a survivor again fails: resolved first.
        v.epochs.resolved = epoch;
        v.rewrite(Drop::UpTo(epoch)).map_err(driver_err)?;
        Ok(())
    }

    fn failover(&mut self, vf: VfNumber) -> Result<(), HacError> {
        let v = self.tagged_vf(vf)?;
        v.epochs.resolved = v.epochs.open;
        v.rewrite(Drop::All).map_err(driver_err)?;
        Ok(())
    }

    fn unprotect(&mut self, vf: VfNumber) -> Result<(), HacError> {
        self.tagged_vf(vf)?;
        self.set_tagged(vf, false)
    }

    fn set_limits(&mut self, vf: VfNumber, frames: u32, bytes: u32) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        // 0 = the maximum, as HACLIMF/HACLIMB on the extension; never "no room at all".
        v.limit_frames = if frames == 0 { u32::MAX } else { frames };
        v.limit_bytes = if bytes == 0 { u32::MAX } else { bytes };
        Ok(())
    }

    fn set_guard(&mut self, bytes: u32) -> Result<(), HacError> {
        self.guard = bytes;
        Ok(())
    }

    fn stats(&mut self, vf: VfNumber) -> Result<HacVfStats, HacError> {
        let v = self.vf(vf)?;
        Ok(HacVfStats {
            open_epoch: v.epochs.open,
            committed_epoch: v.epochs.committed,
            ..v.stats
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A queue of `room` slots that records what the device was handed: positions count the
    /// frames ever written, so a ring request names the frame it ends with.
    #[derive(Default)]
    struct FakeQueue {
        room: usize,
        /// Written beyond the last ring: (position after it, frame).
        held: VecDeque<(u32, Bytes)>,
        written: u32,
        /// What the device was handed, in order.
        wire: Vec<Bytes>,
        failed: bool,
        recoveries: u32,
        /// The next `post_held` fails.
        refuse_next: bool,
    }

    #[derive(Debug, PartialEq)]
    enum FakeError {
        NoSuchVf,
        TooLong,
        Refused,
        Held,
    }

    impl HoldPort for FakeQueue {
        type Error = FakeError;
        type Position = u32;
        const MAX_VFS: usize = 2;

        fn no_such_vf(_: VfNumber) -> FakeError {
            FakeError::NoSuchVf
        }

        fn check_frame_len(&self, len: usize) -> Result<(), FakeError> {
            if len > 100 {
                return Err(FakeError::TooLong);
            }
            Ok(())
        }

        fn post_held(&mut self, frame: &Bytes) -> Result<Option<u32>, FakeError> {
            if std::mem::take(&mut self.refuse_next) {
                return Err(FakeError::Refused);
            }
            if self.held.len() >= self.room {
                return Ok(None);
            }
            self.written += 1;
            self.held.push_back((self.written, frame.clone()));
            Ok(Some(self.written))
        }

        fn ring_to(&mut self, end: u32) -> Result<(), FakeError> {
            // Only the end of a held frame moves the doorbell, as in both drivers.
            if self.held.iter().any(|(e, _)| *e == end) {
                while let Some((e, f)) = self.held.pop_front() {
                    self.wire.push(f);
                    if e == end {
                        break;
                    }
                }
            }
            Ok(())
        }

        fn take_back_held(&mut self) {
            self.written -= self.held.len() as u32;
            self.held.clear();
        }

        fn send_now(&mut self, frame: &Bytes) -> Result<bool, FakeError> {
            if !self.held.is_empty() {
                return Err(FakeError::Held);
            }
            self.wire.push(frame.clone());
            Ok(true)
        }

        fn needs_recovery(&self) -> bool {
            self.failed
        }

        fn recover(&mut self) -> Result<(), FakeError> {
            assert!(self.held.is_empty(), "recovered with frames held");
            self.failed = false;
            self.recoveries += 1;
            Ok(())
        }
    }

    const VF0: VfNumber = VfNumber::new(0);

    fn soft(room: usize) -> SoftHacCore<FakeQueue> {
        SoftHacCore::with_ports(vec![FakeQueue {
            room,
            ..FakeQueue::default()
        }])
    }

    fn frames(seqs: std::ops::Range<u8>) -> Vec<Bytes> {
        seqs.map(|s| Bytes::from(vec![s; 20])).collect()
    }

    fn wire(s: &mut SoftHacCore<FakeQueue>) -> Vec<u8> {
        let q = s.port_mut(VF0).unwrap();
        std::mem::take(&mut q.wire).iter().map(|f| f[0]).collect()
    }

    #[test]
    fn the_core_rings_only_committed_frames_and_queues_the_rest_in_order() {
        let mut s = soft(2);
        s.set_tagged(VF0, true).unwrap();
        assert_eq!(s.send_frames(VF0, &frames(0..3)).unwrap(), 3);
        s.open_epoch(VF0, 2).unwrap();
        assert_eq!(s.send_frames(VF0, &frames(3..5)).unwrap(), 2);
        assert_eq!(s.port_mut(VF0).unwrap().held.len(), 2, "the queue is full");
        assert!(wire(&mut s).is_empty());
        s.commit(VF0, 1).unwrap();
        assert_eq!(wire(&mut s), vec![0, 1]);
        // Frame 2 moves in as room allows, then epoch 2's frames behind it stay held.
        s.pump().unwrap();
        assert_eq!(wire(&mut s), vec![2]);
        s.abort(VF0, 2).unwrap();
        assert_eq!(s.port_mut(VF0).unwrap().held.len(), 0);
        let st = s.stats(VF0).unwrap();
        assert_eq!((st.released, st.discarded, st.buffered_frames), (3, 2, 0));
        assert_eq!(
            s.send_frames(VfNumber::new(2), &frames(0..1)),
            Err(FakeError::NoSuchVf)
        );
        assert_eq!(
            s.stats(VfNumber::new(2)),
            Err(HacError::NoSuchVf(VfNumber::new(2)))
        );
        let long = [Bytes::from(vec![9; 101])];
        assert_eq!(s.send_frames(VF0, &long), Err(FakeError::TooLong));
    }

    #[test]
    fn a_failed_queue_is_recovered_and_its_held_frames_written_again_in_order() {
        let mut s = soft(4);
        s.set_tagged(VF0, true).unwrap();
        assert_eq!(s.send_frames(VF0, &frames(0..3)).unwrap(), 3);
        s.port_mut(VF0).unwrap().failed = true;
        s.pump().unwrap();
        let q = s.port_mut(VF0).unwrap();
        assert_eq!((q.recoveries, q.held.len()), (1, 3));
        s.commit(VF0, 1).unwrap();
        assert_eq!(wire(&mut s), vec![0, 1, 2]);
        assert_eq!(s.stats(VF0).unwrap().discarded, 0);
    }

    #[test]
    fn a_frame_the_driver_refuses_is_counted_and_the_error_returned() {
        let mut s = soft(4);
        s.set_tagged(VF0, true).unwrap();
        s.port_mut(VF0).unwrap().refuse_next = true;
        assert_eq!(s.send_frames(VF0, &frames(0..2)), Err(FakeError::Refused));
        let st = s.stats(VF0).unwrap();
        assert_eq!((st.discarded, st.buffered_frames), (1, 0));
        // Untagged, a plain frame goes straight to the device.
        s.unprotect(VF0).unwrap();
        assert_eq!(s.send_frames(VF0, &frames(5..6)).unwrap(), 1);
        assert_eq!(wire(&mut s), vec![5]);
    }
}

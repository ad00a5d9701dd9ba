//! HAC semantics in the driver, for adapters without the HAC extension (a real 82576/I350, or
//! QEMU's igb): a checkpointing VF's frames are written into its TX ring as usual, but the tail
//! register (TDT) is only advanced over frames whose epoch is committed. Frames that do not fit
//! in the ring wait in a software queue behind it. Abort and failover take back the
//! descriptors the hardware never saw (the ring beyond TDT belongs to software) and re-write the
//! survivors; unprotect hands everything over.
//!
//! The hold is the driver's own: [`VfDriver`] remembers the last TDT it wrote, refuses a plain
//! [`VfDriver::send`] while descriptors are held beyond it, and only this module can move TDT
//! over held descriptors. [`SoftHac::driver`] hands out a [`SoftVfPort`] (receive, counters,
//! link) rather than the driver itself, so no public path rings the doorbell over a held frame.
//!
//! Tagging a VF with a backlog: plain frames queued before [`Hac::set_tagged`] predate the
//! protection, so they are not held; they stay first in the VF's FIFO, go to the hardware as ring
//! space allows, and count in the buffer (`buffered_frames`) until they do. Frames sent after the
//! tag are stamped with the open epoch and wait behind them until their commit.
//!
//! Priority across the VFs this driver owns: released checkpoint frames are handed to the
//! hardware first; plain frames queued through [`SoftHac::send`] follow, and while released
//! checkpoint frames are still waiting for ring space only the guard's worth of plain bytes per
//! [`SoftHac::pump`] goes ahead of them. Once frames are in different VFs' rings the adapter's
//! own arbitration (round robin on the 82576) decides; strict priority on the wire needs the
//! adapter extension.

use std::collections::VecDeque;

use adapter_core::EpochState;
use adapter_core::egress::DEFAULT_HAC_LIMITS;
use bytes::Bytes;
use igb_hw::VfIndex;

use crate::backend::{Clock, DmaAllocator, RegisterIo};
use crate::error::DriverError;
use crate::hac::{Hac, HacError, HacVfStats, VfNumber};
use crate::ring::RxMeta;
use crate::vf::{LinkState, VfDriver, VfStats};

/// Buffer limits of a checkpointing VF until `set_limits`: 4096 frames and 4 MiB, the adapter
/// extension's defaults (the core's `DEFAULT_HAC_LIMITS`, docs/hac.md). `set_limits` with 0
/// means the maximum, 2³² − 1.
pub const DEFAULT_LIMIT_FRAMES: u32 = DEFAULT_HAC_LIMITS.frames as u32;
/// See [`DEFAULT_LIMIT_FRAMES`].
pub const DEFAULT_LIMIT_BYTES: u32 = DEFAULT_HAC_LIMITS.bytes as u32;

struct Held {
    /// Checkpoint epoch; `None` for a plain frame queued before the VF was tagged.
    epoch: Option<u32>,
    frame: Bytes,
    /// Ring tail after this frame's descriptors, if it is in the ring.
    tail_after: Option<u32>,
}

struct SoftVf<R: RegisterIo, D: DmaAllocator, C: Clock> {
    driver: VfDriver<R, D, C>,
    /// The epoch rules are the adapter core's, so SoftHac and the extension cannot disagree.
    epochs: EpochState,
    /// Frames not yet handed to the hardware, in FIFO order: released ones first.
    held: VecDeque<Held>,
    /// How many of `held` (from the front) are released.
    released_pending: usize,
    /// Plain frames of an untagged VF waiting for ring space (or behind released checkpoint
    /// traffic). Empty while the VF is tagged.
    plain: VecDeque<Bytes>,
    limit_frames: u32,
    limit_bytes: u32,
    held_bytes: u64,
    stats: HacVfStats,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> SoftVf<R, D, C> {
    fn update_buffered(&mut self) {
        self.stats.buffered_frames = u32::try_from(self.held.len()).unwrap_or(u32::MAX);
        self.stats.buffered_bytes = u32::try_from(self.held_bytes).unwrap_or(u32::MAX);
        self.stats.max_frames = self.stats.max_frames.max(self.stats.buffered_frames);
        self.stats.max_bytes = self.stats.max_bytes.max(self.stats.buffered_bytes);
    }

    /// Writes `frame` into the ring beyond TDT if it fits. A frame the driver refuses (only
    /// possible if it outgrew the maximum after it was accepted) is dropped and counted in
    /// `discarded`; the error is returned in `failed`.
    fn push_held(&mut self, frame: &Bytes, failed: &mut Option<DriverError>) -> Push {
        match self.driver.tx_push_held(frame) {
            Ok(true) => Push::InRing(self.driver.tx_tail()),
            Ok(false) => Push::NoRoom,
            Err(e) => {
                self.stats.discarded += 1;
                failed.get_or_insert(e);
                Push::Dropped
            }
        }
    }
}

enum Push {
    InRing(u32),
    NoRoom,
    Dropped,
}

/// Driver-level HAC over the VFs a driver owns.
pub struct SoftHac<R: RegisterIo, D: DmaAllocator, C: Clock> {
    vfs: Vec<SoftVf<R, D, C>>,
    guard: u32,
}

/// One VF of a [`SoftHac`], for everything but sending: receive, counters, link, addresses.
/// Sending goes through [`SoftHac::send`], so the hold cannot be bypassed.
pub struct SoftVfPort<'a, R: RegisterIo, D: DmaAllocator, C: Clock> {
    driver: &'a mut VfDriver<R, D, C>,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> SoftVfPort<'_, R, D, C> {
    /// Appends up to `max` received frames to `out`; returns how many.
    pub fn recv(&mut self, out: &mut Vec<Bytes>, max: usize) -> usize {
        self.driver.recv(out, max)
    }

    /// Receives up to `max` frames, calling `each` with the bytes and metadata of each.
    pub fn recv_with_meta(&mut self, max: usize, each: impl FnMut(&[u8], RxMeta)) -> usize {
        self.driver.recv_with_meta(max, each)
    }

    /// Reclaims completed TX descriptors; returns the packets completed.
    pub fn reclaim(&mut self) -> usize {
        self.driver.reclaim()
    }

    /// The VF's traffic counters.
    pub fn stats(&mut self) -> VfStats {
        self.driver.stats()
    }

    /// Link state.
    pub fn link(&mut self) -> LinkState {
        self.driver.link()
    }

    /// The MAC address in use.
    pub fn mac(&self) -> igb_hw::MacAddress {
        self.driver.mac()
    }

    /// Largest frame [`SoftHac::send`] accepts for this VF.
    pub fn max_frame_len(&self) -> usize {
        self.driver.max_frame_len()
    }

    /// The clock the driver waits on.
    pub fn clock(&self) -> &C {
        self.driver.clock()
    }

    /// TX descriptors held beyond TDT (written, not handed to the hardware).
    pub fn tx_held(&self) -> u32 {
        self.driver.tx_held()
    }
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> SoftHac<R, D, C> {
    /// Takes the VF drivers: the driver at position n is VF n for [`SoftHac::send`] and the [`Hac`]
    /// calls (at most [`igb_hw::addr::MAX_VFS`] are addressable; numbers beyond are `NoSuchVf`).
    pub fn new(drivers: Vec<VfDriver<R, D, C>>) -> Self {
        let vfs = drivers
            .into_iter()
            .map(|driver| SoftVf {
                driver,
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
        SoftHac {
            vfs,
            guard: 64 * 1024,
        }
    }

    /// Receive side, counters and link of `vf`.
    pub fn driver(&mut self, vf: VfIndex) -> Option<SoftVfPort<'_, R, D, C>> {
        self.vfs.get_mut(vf.get()).map(|v| SoftVfPort {
            driver: &mut v.driver,
        })
    }

    /// The VF behind contract number `vf`, if this SoftHac has it.
    fn vf(&mut self, vf: VfNumber) -> Result<&mut SoftVf<R, D, C>, HacError> {
        VfIndex::try_from(vf)
            .ok()
            .and_then(|v| self.vfs.get_mut(v.get()))
            .ok_or(HacError::NoSuchVf(vf))
    }

    /// Queues frames on `vf`; returns how many were accepted. A checkpointing VF stops accepting
    /// at its buffer limit (backpressure: the caller keeps the rest, nothing is dropped); with
    /// nothing buffered it takes one frame whatever the limits. A frame
    /// longer than the VF's maximum refuses the whole call with [`DriverError::FrameTooLarge`]
    /// before anything is accepted.
    pub fn send(&mut self, vf: VfIndex, frames: &[Bytes]) -> Result<usize, DriverError> {
        let v = self
            .vfs
            .get_mut(vf.get())
            .ok_or(DriverError::NoSuchVf(vf.into()))?;
        let max = v.driver.max_frame_len();
        if let Some(f) = frames.iter().find(|f| f.len() > max) {
            return Err(DriverError::FrameTooLarge { len: f.len(), max });
        }
        if !v.epochs.tagged {
            v.plain.extend(frames.iter().cloned());
            self.pump()?;
            return Ok(frames.len());
        }
        let mut accepted = 0;
        let mut failed = None;
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
            // Into the ring (held beyond TDT) if nothing waits in software before it.
            let tail_after = if v.held.back().is_none_or(|h| h.tail_after.is_some()) {
                match v.push_held(f, &mut failed) {
                    Push::InRing(t) => Some(t),
                    Push::NoRoom => None,
                    Push::Dropped => break,
                }
            } else {
                None
            };
            v.held.push_back(Held {
                epoch: Some(v.epochs.open),
                frame: f.clone(),
                tail_after,
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

    /// Hands released checkpoint frames to the hardware (as ring space allows), then plain
    /// frames (within the guard while checkpoint frames still wait). Call it regularly.
    pub fn pump(&mut self) -> Result<(), DriverError> {
        let mut waiting_high = false;
        let mut failed = None;
        for v in &mut self.vfs {
            if let Err(e) = Self::release_front(v) {
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
                if v.driver.send(std::slice::from_ref(f))? == 0 {
                    break;
                }
                budget = budget.saturating_sub(f.len() as u64);
                v.plain.pop_front();
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Writes released frames that are still in software into the ring and rings the doorbell
    /// over every released frame in the ring. The doorbell is rung even when a frame fails, and a
    /// failing frame is dropped with a count: nothing released is left unaccounted.
    fn release_front(v: &mut SoftVf<R, D, C>) -> Result<(), DriverError> {
        let mut doorbell = None;
        let mut failed = None;
        while v.released_pending > 0 {
            let Some(front) = v.held.front() else {
                break;
            };
            let tail = match front.tail_after {
                Some(t) => Some(t),
                // Space in the ring for it now? (Only the front can move in: FIFO.)
                None => match v.push_held(&front.frame.clone(), &mut failed) {
                    Push::InRing(t) => Some(t),
                    Push::NoRoom => break,
                    Push::Dropped => None,
                },
            };
            if tail.is_some() {
                doorbell = tail;
            }
            if let Some(h) = v.held.pop_front() {
                v.held_bytes -= h.frame.len() as u64;
            }
            v.released_pending -= 1;
        }
        if let Some(t) = doorbell {
            v.driver.tx_doorbell_to(t);
        }
        v.update_buffered();
        failed.map_or(Ok(()), Err)
    }

    /// Removes held frames of epochs ≤ `upto` (all with `None`) that are not released; rewrites
    /// the ring beyond TDT with the survivors. Returns how many were discarded.
    ///
    /// Invariant used: after [`SoftHac::release_front`], every released frame still pending is
    /// outside the ring, so the held frames in the ring are exactly the driver's held
    /// descriptors (beyond its last doorbell), which it can take back.
    fn discard(v: &mut SoftVf<R, D, C>, upto: Option<u32>) -> Result<u32, DriverError> {
        let old: Vec<Held> = v.held.drain(v.released_pending..).collect();
        if old.iter().any(|h| h.tail_after.is_some()) {
            v.driver.tx_take_back_held();
        }
        let mut discarded = 0;
        let mut failed = None;
        for mut h in old {
            if upto.is_none_or(|u| h.epoch.is_none_or(|e| e <= u)) {
                v.held_bytes -= h.frame.len() as u64;
                discarded += 1;
                continue;
            }
            h.tail_after = None;
            if v.held.back().is_none_or(|b| b.tail_after.is_some()) {
                match v.push_held(&h.frame, &mut failed) {
                    Push::InRing(t) => h.tail_after = Some(t),
                    Push::NoRoom => {}
                    Push::Dropped => {
                        v.held_bytes -= h.frame.len() as u64;
                        continue;
                    }
                }
            }
            v.held.push_back(h);
        }
        v.stats.discarded += u64::from(discarded);
        v.update_buffered();
        failed.map_or(Ok(discarded), Err)
    }

    fn mark_released(v: &mut SoftVf<R, D, C>, upto: Option<u32>) -> u64 {
        let mut n = 0;
        while v.released_pending < v.held.len()
            && upto.is_none_or(|u| v.held[v.released_pending].epoch.is_none_or(|e| e <= u))
        {
            v.released_pending += 1;
            n += 1;
        }
        v.stats.released += n;
        n
    }
}

fn driver_err(_: DriverError) -> HacError {
    HacError::Refused(0xFF)
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Hac for SoftHac<R, D, C> {
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
                    tail_after: None,
                });
            }
            v.released_pending = v.held.len();
            Self::release_front(v).map_err(driver_err)?;
        } else if !on && v.epochs.tagged {
            Self::mark_released(v, None);
            Self::release_front(v).map_err(driver_err)?;
            v.epochs.tagged = false;
        }
        Ok(())
    }

    fn open_epoch(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if !v.epochs.tagged {
            return Err(HacError::NotTagged(vf));
        }
        if !v.epochs.openable(epoch) {
            return Err(HacError::BadEpoch { vf, epoch });
        }
        v.epochs.open = epoch;
        Ok(())
    }

    fn commit(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if !v.epochs.tagged {
            return Err(HacError::NotTagged(vf));
        }
        if !v.epochs.resolvable(epoch) {
            return Err(HacError::BadEpoch { vf, epoch });
        }
        v.epochs.committed = epoch;
        v.epochs.resolved = epoch;
        Self::mark_released(v, Some(epoch));
        Self::release_front(v).map_err(driver_err)?;
        Ok(())
    }

    fn abort(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if !v.epochs.tagged {
            return Err(HacError::NotTagged(vf));
        }
        if !v.epochs.resolvable(epoch) {
            return Err(HacError::BadEpoch { vf, epoch });
        }
        Self::discard(v, Some(epoch)).map_err(driver_err)?;
        v.epochs.resolved = epoch;
        Ok(())
    }

    fn failover(&mut self, vf: VfNumber) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if !v.epochs.tagged {
            return Err(HacError::NotTagged(vf));
        }
        Self::discard(v, None).map_err(driver_err)?;
        v.epochs.resolved = v.epochs.open;
        Ok(())
    }

    fn unprotect(&mut self, vf: VfNumber) -> Result<(), HacError> {
        if !self.vf(vf)?.epochs.tagged {
            return Err(HacError::NotTagged(vf));
        }
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

    #[test]
    fn the_default_limits_are_the_extension_defaults() {
        assert_eq!((DEFAULT_LIMIT_FRAMES, DEFAULT_LIMIT_BYTES), (4096, 4 << 20));
    }
    use crate::model::Model;
    use crate::pf::PfConfig;
    use crate::vf::VfConfig;
    use igb_hw::MacAddress;
    use igb_model::NicConfig;

    #[test]
    fn the_driver_refuses_a_plain_send_over_held_descriptors_and_stray_doorbells() {
        let model = Model::new(NicConfig {
            capture_wire: true,
            ..NicConfig::default()
        });
        let mac = MacAddress([2, 0, 0, 0, 4, 0]);
        let _pf = model
            .start_pf_agent(
                PfConfig {
                    num_vfs: 1,
                    ..PfConfig::default()
                },
                &[Some(mac)],
            )
            .unwrap();
        let mut d = model
            .vf_driver(VfIndex::new(0).unwrap(), VfConfig::default())
            .unwrap();
        let f = igb_hw::frame::build(MacAddress([2, 0xAA, 0, 0, 0, 1]), mac, 0x88B5, &[0; 46]);
        assert!(d.tx_push_held(&f).unwrap());
        let held_tail = d.tx_tail();
        assert_eq!(d.tx_held(), 1);
        assert!(matches!(
            d.send(&[Bytes::from(f.clone())]),
            Err(DriverError::TxHeld { descriptors: 1 })
        ));
        // A doorbell outside the held range (past the tail, or behind TDT) is ignored.
        d.tx_doorbell_to(held_tail + 5);
        assert_eq!(d.tx_held(), 1);
        model.run_for(1_000_000);
        assert!(
            model.nic().take_wire_capture().is_empty(),
            "nothing released"
        );
        d.tx_take_back_held();
        assert_eq!(d.tx_held(), 0);
        assert_eq!(d.send(&[Bytes::from(f)]).unwrap(), 1);
        model.run_for(1_000_000);
        assert_eq!(model.nic().take_wire_capture().len(), 1);
    }
}

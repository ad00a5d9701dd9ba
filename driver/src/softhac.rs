//! HAC semantics in the driver, for adapters without the HAC extension (a real 82576/I350, or
//! QEMU's igb): a checkpointing VF's frames are written into its TX ring as usual, but the tail
//! register (TDT) is only advanced over frames whose epoch is committed. Frames that do not fit
//! in the ring wait in a software queue behind it. Abort and failover take back the
//! descriptors the hardware never saw (the ring beyond TDT belongs to software) and re-write the
//! survivors; unprotect hands everything over.
//!
//! Priority across the VFs this driver owns: released checkpoint frames are handed to the
//! hardware first; plain frames queued through [`SoftHac::send`] follow, and while released
//! checkpoint frames are still waiting for ring space only the guard's worth of plain bytes per
//! [`SoftHac::pump`] goes ahead of them. Once frames are in different VFs' rings the adapter's
//! own arbitration (round robin on the 82576) decides; strict priority on the wire needs the
//! adapter extension.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::backend::{Clock, DmaAllocator, RegisterIo};
use crate::error::DriverError;
use crate::hac::{Hac, HacError, HacVfStats};
use crate::vf::VfDriver;

struct Held {
    epoch: u32,
    frame: Bytes,
    /// Ring tail after this frame's descriptors, if it is in the ring.
    tail_after: Option<u32>,
}

struct SoftVf<R: RegisterIo, D: DmaAllocator, C: Clock> {
    driver: VfDriver<R, D, C>,
    tagged: bool,
    open: u32,
    committed: u32,
    resolved: u32,
    /// Frames not yet handed to the hardware, in FIFO order: released ones first.
    held: VecDeque<Held>,
    /// How many of `held` (from the front) are released.
    released_pending: usize,
    /// Plain frames waiting behind released checkpoint traffic.
    plain: VecDeque<Bytes>,
    limit_frames: u32,
    limit_bytes: u32,
    held_bytes: u64,
    stats: HacVfStats,
}

/// Driver-level HAC over the VFs a driver owns.
pub struct SoftHac<R: RegisterIo, D: DmaAllocator, C: Clock> {
    vfs: Vec<SoftVf<R, D, C>>,
    guard: u32,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> SoftHac<R, D, C> {
    /// Takes the VF drivers (index = VF number for the [`Hac`] calls).
    pub fn new(drivers: Vec<VfDriver<R, D, C>>) -> Self {
        let vfs = drivers
            .into_iter()
            .map(|driver| SoftVf {
                driver,
                tagged: false,
                open: 0,
                committed: 0,
                resolved: 0,
                held: VecDeque::new(),
                released_pending: 0,
                plain: VecDeque::new(),
                limit_frames: 4096,
                limit_bytes: 4 << 20,
                held_bytes: 0,
                stats: HacVfStats::default(),
            })
            .collect();
        SoftHac {
            vfs,
            guard: 64 * 1024,
        }
    }

    /// The driver of `vf` (to receive, read statistics, ...).
    pub fn driver(&mut self, vf: usize) -> Option<&mut VfDriver<R, D, C>> {
        self.vfs.get_mut(vf).map(|v| &mut v.driver)
    }

    fn vf(&mut self, vf: usize) -> Result<&mut SoftVf<R, D, C>, HacError> {
        self.vfs.get_mut(vf).ok_or(HacError::NoSuchVf(vf))
    }

    /// Queues frames on `vf`; returns how many were accepted. A checkpointing VF stops accepting
    /// at its buffer limit (backpressure: the caller keeps the rest, nothing is dropped).
    pub fn send(&mut self, vf: usize, frames: &[Bytes]) -> Result<usize, DriverError> {
        let v = self.vfs.get_mut(vf).ok_or(DriverError::NoSuchVf(vf))?;
        if !v.tagged {
            v.plain.extend(frames.iter().cloned());
            self.pump()?;
            return Ok(frames.len());
        }
        let mut accepted = 0;
        for f in frames {
            if v.held.len() as u64 >= u64::from(v.limit_frames)
                || v.held_bytes + f.len() as u64 > u64::from(v.limit_bytes)
            {
                v.stats.backpressure += 1;
                break;
            }
            // Into the ring (held beyond TDT) if nothing waits in software before it.
            let in_ring =
                v.held.back().is_none_or(|h| h.tail_after.is_some()) && v.driver.tx_push_held(f)?;
            let tail_after = in_ring.then(|| v.driver.tx_tail());
            v.held.push_back(Held {
                epoch: v.open,
                frame: f.clone(),
                tail_after,
            });
            v.held_bytes += f.len() as u64;
            v.stats.buffered_frames = v.held.len() as u32;
            v.stats.buffered_bytes = v.held_bytes as u32;
            v.stats.max_frames = v.stats.max_frames.max(v.stats.buffered_frames);
            v.stats.max_bytes = v.stats.max_bytes.max(v.stats.buffered_bytes);
            accepted += 1;
        }
        Ok(accepted)
    }

    /// Hands released checkpoint frames to the hardware (as ring space allows), then plain
    /// frames (within the guard while checkpoint frames still wait). Call it regularly.
    pub fn pump(&mut self) -> Result<(), DriverError> {
        let mut waiting_high = false;
        for v in &mut self.vfs {
            Self::release_front(v)?;
            waiting_high |= v.released_pending > 0;
        }
        let mut budget = if waiting_high {
            u64::from(self.guard)
        } else {
            u64::MAX
        };
        for v in &mut self.vfs {
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
        Ok(())
    }

    /// Writes released frames that are still in software into the ring and rings the doorbell
    /// over every released frame in the ring.
    fn release_front(v: &mut SoftVf<R, D, C>) -> Result<(), DriverError> {
        let mut doorbell = None;
        while v.released_pending > 0 {
            let Some(front) = v.held.front_mut() else {
                break;
            };
            if front.tail_after.is_none() {
                // Space in the ring for it now? (Only the front can move in: FIFO.)
                if !v.driver.tx_push_held(&front.frame)? {
                    break;
                }
                front.tail_after = Some(v.driver.tx_tail());
            }
            doorbell = front.tail_after;
            v.held_bytes -= front.frame.len() as u64;
            v.held.pop_front();
            v.released_pending -= 1;
        }
        if let Some(t) = doorbell {
            v.driver.tx_doorbell_to(t);
        }
        v.stats.buffered_frames = v.held.len() as u32;
        v.stats.buffered_bytes = v.held_bytes as u32;
        Ok(())
    }

    /// Removes held frames of epochs ≤ `upto` (all with `None`) that are not released; rewrites
    /// the ring beyond TDT with the survivors. Returns how many were discarded.
    ///
    /// Invariant used: after [`SoftHac::release_front`], every released frame still pending is
    /// outside the ring, so any held frame that is in the ring starts right after the last
    /// doorbell (TDT), and the ring from TDT to the tail holds only held frames.
    fn discard(v: &mut SoftVf<R, D, C>, upto: Option<u32>) -> Result<u32, DriverError> {
        let old: Vec<Held> = v.held.drain(v.released_pending..).collect();
        if old.iter().any(|h| h.tail_after.is_some()) {
            let tdt = v.driver.bar().get(igb_hw::regs::VfReg::TDT(0));
            v.driver.tx_rewind(tdt);
        }
        let mut discarded = 0;
        for mut h in old {
            if upto.is_none_or(|u| h.epoch <= u) {
                v.held_bytes -= h.frame.len() as u64;
                discarded += 1;
                continue;
            }
            h.tail_after = None;
            if v.held.back().is_none_or(|b| b.tail_after.is_some())
                && v.driver.tx_push_held(&h.frame)?
            {
                h.tail_after = Some(v.driver.tx_tail());
            }
            v.held.push_back(h);
        }
        v.stats.discarded += discarded;
        v.stats.buffered_frames = v.held.len() as u32;
        v.stats.buffered_bytes = v.held_bytes as u32;
        Ok(discarded)
    }

    fn mark_released(v: &mut SoftVf<R, D, C>, upto: Option<u32>) -> u32 {
        let mut n = 0;
        while v.released_pending < v.held.len()
            && upto.is_none_or(|u| v.held[v.released_pending].epoch <= u)
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
    fn set_tagged(&mut self, vf: usize, on: bool) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if on && !v.tagged {
            v.tagged = true;
            v.open = 1;
            v.committed = 0;
            v.resolved = 0;
        } else if !on && v.tagged {
            Self::mark_released(v, None);
            Self::release_front(v).map_err(driver_err)?;
            v.tagged = false;
        }
        Ok(())
    }

    fn open_epoch(&mut self, vf: usize, epoch: u32) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if !v.tagged {
            return Err(HacError::NotTagged(vf));
        }
        if epoch <= v.open {
            return Err(HacError::BadEpoch { vf, epoch });
        }
        v.open = epoch;
        Ok(())
    }

    fn commit(&mut self, vf: usize, epoch: u32) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if !v.tagged {
            return Err(HacError::NotTagged(vf));
        }
        if epoch <= v.resolved || epoch > v.open {
            return Err(HacError::BadEpoch { vf, epoch });
        }
        v.committed = epoch;
        v.resolved = epoch;
        Self::mark_released(v, Some(epoch));
        Self::release_front(v).map_err(driver_err)?;
        Ok(())
    }

    fn abort(&mut self, vf: usize, epoch: u32) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if !v.tagged {
            return Err(HacError::NotTagged(vf));
        }
        if epoch <= v.resolved || epoch > v.open {
            return Err(HacError::BadEpoch { vf, epoch });
        }
        Self::discard(v, Some(epoch)).map_err(driver_err)?;
        v.resolved = epoch;
        Ok(())
    }

    fn failover(&mut self, vf: usize) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        if !v.tagged {
            return Err(HacError::NotTagged(vf));
        }
        Self::discard(v, None).map_err(driver_err)?;
        v.resolved = v.open;
        Ok(())
    }

    fn unprotect(&mut self, vf: usize) -> Result<(), HacError> {
        if !self.vf(vf)?.tagged {
            return Err(HacError::NotTagged(vf));
        }
        self.set_tagged(vf, false)
    }

    fn set_limits(&mut self, vf: usize, frames: u32, bytes: u32) -> Result<(), HacError> {
        let v = self.vf(vf)?;
        v.limit_frames = frames;
        v.limit_bytes = bytes;
        Ok(())
    }

    fn set_guard(&mut self, bytes: u32) -> Result<(), HacError> {
        self.guard = bytes;
        Ok(())
    }

    fn stats(&mut self, vf: usize) -> Result<HacVfStats, HacError> {
        let v = self.vf(vf)?;
        Ok(HacVfStats {
            open_epoch: v.open,
            committed_epoch: v.committed,
            ..v.stats
        })
    }
}

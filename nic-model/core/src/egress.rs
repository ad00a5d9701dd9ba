//! The port's egress stage: the one place every wire-bound frame passes between the internal
//! switch and the wire, and the home of the HAC extension (docs/hac.md).
//!
//! One FIFO per VMDq pool, bounded in bytes and frames. A frame from a **checkpointing** pool is
//! stamped with the pool's open epoch and *held* until a commit covers its epoch; a commit moves
//! the held prefix of the FIFO (epochs only grow along a FIFO) to *released*. The scheduler picks
//! the next frame for the wire:
//!
//! * **high class**: pools whose head frame is a released checkpoint frame, round robin;
//! * **low class**: pools whose head frame carries no epoch (plain VFs, the PF), round robin;
//! * strict priority for the high class, except for the starvation guard G (`guard_bytes`):
//!   after G high-class bytes sent back to back while low-class frames were waiting, the low
//!   class gets a turn of G/4 bytes (at least one frame), so under contention it keeps at least
//!   a fifth of the wire and waits at most G bytes; G = 0 is pure strict priority.
//!
//! Held frames never leave: abort and failover discard them (counted), unprotect releases them.
//! When a pool's FIFO is at its limit, [`EgressStage::has_room`] is false and the TX engine stops
//! fetching that pool's descriptors (backpressure through the ring, never a drop).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::clock::SimTime;
use crate::epoch::EpochState;
use crate::latency::LatencyHistogram;
use crate::vport::Vport;

/// A frame waiting for the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressFrame {
    /// The frame, without FCS.
    pub data: Bytes,
    /// The pool (VF) that sent it.
    pub pool: Vport,
    /// When the TX engine handed it over.
    pub queued_at: SimTime,
}

/// Per-pool capacity of the egress stage. A limit of 0 means the adapter maximum
/// ([`MAX_LIMITS`]), as for HACLIMF/HACLIMB (docs/hac.md); whatever the limits, an empty FIFO
/// always takes one frame, so no limit can stop a pool for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EgressLimits {
    /// Bytes per pool (0 = [`MAX_LIMITS`]).
    pub bytes: usize,
    /// Frames per pool (0 = [`MAX_LIMITS`]).
    pub frames: usize,
}

impl EgressLimits {
    /// The limits in force: each 0 replaced by the adapter maximum ([`MAX_LIMITS`]).
    pub fn effective(self) -> EgressLimits {
        let or_max = |v: usize, max: usize| if v == 0 { max } else { v };
        EgressLimits {
            bytes: or_max(self.bytes, MAX_LIMITS.bytes),
            frames: or_max(self.frames, MAX_LIMITS.frames),
        }
    }
}

/// The adapter maximum a limit of 0 stands for: the largest value the 32-bit limit registers
/// (HACLIMF, HACLIMB) hold.
pub const MAX_LIMITS: EgressLimits = EgressLimits {
    bytes: u32::MAX as usize,
    frames: u32::MAX as usize,
};

impl Default for EgressLimits {
    /// 64 KiB and 256 frames per pool: of the order of the 82576's on-chip TX packet buffer.
    fn default() -> Self {
        EgressLimits {
            bytes: 64 * 1024,
            frames: 256,
        }
    }
}

/// Default HAC buffer limit per checkpointing VF: 4 MiB and 4096 frames (a 25 ms epoch of a
/// VF sending 1 Gb/s holds about 3 MB).
pub const DEFAULT_HAC_LIMITS: EgressLimits = EgressLimits {
    bytes: 4 << 20,
    frames: 4096,
};
/// Default starvation guard: 64 KiB of high-priority bytes (52 µs at 10 Gb/s) before waiting
/// low-priority frames get a turn of 16 KiB.
pub const DEFAULT_GUARD_BYTES: u64 = 64 * 1024;

/// Counters of one pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressPoolStats {
    /// Frames accepted.
    pub enqueued: u64,
    /// Frames handed to the wire.
    pub dequeued: u64,
    /// Highest number of frames held at once.
    pub max_frames: usize,
    /// Highest number of bytes held at once.
    pub max_bytes: usize,
    /// Checkpoint frames released by commits or unprotect.
    pub released: u64,
    /// Checkpoint frames discarded by abort or failover.
    pub discarded: u64,
    /// Times the pool's TX engine stopped because the FIFO was full.
    pub backpressure_events: u64,
}

/// HAC state of one pool (VF): the epoch state shared with SoftHac.
pub type HacPoolState = EpochState;

/// Result of a HAC command. How a family reports it to software (a status register field, a
/// command completion) is the family's encoding, not the core's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HacResult {
    /// Done.
    Ok,
    /// Unknown operation.
    BadOp,
    /// The VF is not checkpointing.
    NotTagged,
    /// The epoch is not valid for this operation (see docs/hac.md).
    BadEpoch,
    /// The HAC block is disabled.
    Disabled,
}

/// Port-level HAC timing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HacPortStats {
    /// Commits that released at least one frame.
    pub commits_with_frames: u64,
    /// Last commit-to-first-frame time, ns.
    pub last_commit_to_first_ns: u64,
    /// Largest commit-to-first-frame time, ns.
    pub max_commit_to_first_ns: u64,
    /// Sum of commit-to-first-frame times, ns (for the mean).
    pub sum_commit_to_first_ns: u64,
    /// Last drain time (commit to the end of its last released frame), ns.
    pub last_drain_ns: u64,
    /// Largest drain time, ns.
    pub max_drain_ns: u64,
    /// Commits fully drained.
    pub drained_commits: u64,
    /// Commit-to-first-frame times (one per commit that released a frame).
    pub commit_to_first: LatencyHistogram,
    /// Delay a released checkpoint frame had between its TX engine handing it over and its
    /// start on the wire (held until commit, then queued).
    pub delay_checkpoint: LatencyHistogram,
    /// The same for frames of plain pools (queueing behind other frames only).
    pub delay_plain: LatencyHistogram,
}

#[derive(Clone, Debug)]
struct Slot {
    frame: EgressFrame,
    /// Checkpoint epoch, for frames of a tagged pool.
    epoch: Option<u32>,
    /// When it became eligible for the wire (queued for plain frames, released for held ones).
    ready_at: SimTime,
}

#[derive(Clone, Copy, Debug)]
struct CommitRecord {
    at: SimTime,
    remaining: usize,
    seen_first: bool,
}

#[derive(Default)]
struct PoolFifo {
    slots: VecDeque<Slot>,
    /// Slots at the front that may go to the wire.
    eligible: usize,
    bytes: usize,
    stats: EgressPoolStats,
    hac: HacPoolState,
    hac_limits: Option<EgressLimits>,
    commits: VecDeque<CommitRecord>,
}

impl PoolFifo {
    /// Makes the held frames at the front eligible at `now`: those with an epoch ≤ `upto`, or
    /// all of them with `None`; records the release for the commit-timing statistics.
    fn release_prefix(&mut self, now: SimTime, upto: Option<u32>) {
        let before = self.eligible;
        while self.eligible < self.slots.len()
            && upto.is_none_or(|u| self.slots[self.eligible].epoch.is_none_or(|e| e <= u))
        {
            self.slots[self.eligible].ready_at = now;
            self.eligible += 1;
        }
        let n = self.eligible - before;
        self.stats.released += n as u64;
        if n > 0 {
            self.commits.push_back(CommitRecord {
                at: now,
                remaining: n,
                seen_first: false,
            });
        }
    }

    fn head_class(&self) -> Option<Class> {
        if self.eligible == 0 {
            return None;
        }
        Some(if self.slots.front()?.epoch.is_some() {
            Class::High
        } else {
            Class::Low
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    High,
    Low,
}

/// The egress stage of the port.
pub struct EgressStage {
    pools: Vec<PoolFifo>,
    limits: EgressLimits,
    next_high: usize,
    next_low: usize,
    held: usize,
    hac_enabled: bool,
    guard_bytes: u64,
    high_burst: u64,
    low_turn: u64,
    port: HacPortStats,
    trace: Option<Vec<(Vport, Option<u32>)>>,
}

impl EgressStage {
    /// An empty stage with `limits` per pool and HAC disabled.
    pub fn new(limits: EgressLimits) -> EgressStage {
        EgressStage {
            pools: Vec::new(),
            limits: limits.effective(),
            next_high: 0,
            next_low: 0,
            held: 0,
            hac_enabled: false,
            guard_bytes: DEFAULT_GUARD_BYTES,
            high_burst: 0,
            low_turn: 0,
            port: HacPortStats::default(),
            trace: None,
        }
    }

    /// The per-pool limits for plain pools.
    pub fn limits(&self) -> EgressLimits {
        self.limits
    }

    /// Changes the per-pool limits of plain pools (0 = [`MAX_LIMITS`]); frames already held
    /// stay.
    pub fn set_limits(&mut self, limits: EgressLimits) {
        self.limits = limits.effective();
    }

    /// The FIFO of `v`, created (with every FIFO below it) on first use: every [`Vport`] is
    /// valid, and a stage holds as many FIFOs as the highest vport its family used.
    fn fifo_mut(&mut self, v: Vport) -> &mut PoolFifo {
        let i = v.get();
        if i >= self.pools.len() {
            self.pools.resize_with(i + 1, PoolFifo::default);
        }
        &mut self.pools[i]
    }

    fn fifo(&self, v: Vport) -> Option<&PoolFifo> {
        self.pools.get(v.get())
    }

    fn limits_of(&self, pool: usize) -> EgressLimits {
        let Some(p) = self.pools.get(pool) else {
            return self.limits;
        };
        if self.hac_enabled && p.hac.tagged {
            p.hac_limits.unwrap_or(DEFAULT_HAC_LIMITS)
        } else {
            self.limits
        }
    }

    /// True when `pool` can take one more frame of up to `max_len` bytes. An empty FIFO always
    /// can (even with a byte limit below one frame), so a pool is never stopped for good.
    pub fn has_room(&self, pool: Vport, max_len: usize) -> bool {
        let l = self.limits_of(pool.get());
        self.fifo(pool).is_none_or(|p| {
            p.slots.is_empty() || (p.slots.len() < l.frames && p.bytes + max_len <= l.bytes)
        })
    }

    /// Records that `pool`'s TX engine stopped on a full FIFO.
    pub fn note_backpressure(&mut self, pool: Vport) {
        self.fifo_mut(pool).stats.backpressure_events += 1;
    }

    /// Accepts a frame at `now`: stamped and held if its pool is checkpointing, else eligible at
    /// once. The TX engine checks [`EgressStage::has_room`] first, so this never refuses.
    pub fn enqueue(&mut self, frame: EgressFrame) {
        let hac_on = self.hac_enabled;
        let epoch = {
            let h = &self.fifo_mut(frame.pool).hac;
            (hac_on && h.tagged).then_some(h.open)
        };
        if let Some(t) = &mut self.trace {
            t.push((frame.pool, epoch));
        }
        let p = self.fifo_mut(frame.pool);
        p.bytes += frame.data.len();
        let ready_at = frame.queued_at;
        p.slots.push_back(Slot {
            frame,
            epoch,
            ready_at,
        });
        if epoch.is_none() && p.eligible + 1 == p.slots.len() {
            p.eligible += 1;
        }
        p.stats.enqueued += 1;
        p.stats.max_frames = p.stats.max_frames.max(p.slots.len());
        p.stats.max_bytes = p.stats.max_bytes.max(p.bytes);
        self.held += 1;
    }

    fn pick(&self, class: Class, start: usize) -> Option<usize> {
        let n = self.pools.len();
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.pools[i].head_class() == Some(class))
    }

    /// The next frame for the wire (see the module documentation for the policy).
    pub fn dequeue(&mut self) -> Option<EgressFrame> {
        self.dequeue_classified().map(|(f, _)| f)
    }

    /// [`EgressStage::dequeue`], also saying whether the frame was a released checkpoint frame.
    pub fn dequeue_classified(&mut self) -> Option<(EgressFrame, bool)> {
        if self.held == 0 {
            return None;
        }
        let high = self.pick(Class::High, self.next_high);
        let low = self.pick(Class::Low, self.next_low);
        let in_turn = self.low_turn > 0;
        let guard_hit = self.guard_bytes > 0 && (in_turn || self.high_burst >= self.guard_bytes);
        let (i, class) = match (high, low) {
            (Some(h), Some(l)) => {
                if guard_hit {
                    (l, Class::Low)
                } else {
                    (h, Class::High)
                }
            }
            (Some(h), None) => (h, Class::High),
            (None, Some(l)) => (l, Class::Low),
            (None, None) => return None,
        };
        let p = &mut self.pools[i];
        let slot = p.slots.pop_front()?;
        p.eligible -= 1;
        p.bytes -= slot.frame.data.len();
        p.stats.dequeued += 1;
        self.held -= 1;
        let len = slot.frame.data.len() as u64;
        match class {
            Class::High => {
                self.next_high = (i + 1) % self.pools.len();
                self.low_turn = 0;
                self.high_burst = if low.is_some() {
                    self.high_burst + len
                } else {
                    0
                };
            }
            Class::Low => {
                self.next_low = (i + 1) % self.pools.len();
                if high.is_some() {
                    // Contention: the low class's turn lasts G/4 bytes (at least this frame).
                    if !in_turn {
                        self.low_turn = (self.guard_bytes / 4).max(1);
                    }
                    self.low_turn = self.low_turn.saturating_sub(len);
                    if self.low_turn == 0 {
                        self.high_burst = 0;
                    }
                } else {
                    self.low_turn = 0;
                    self.high_burst = 0;
                }
            }
        }
        Some((slot.frame, class == Class::High))
    }

    /// Called by the wire when `frame` starts (`start`) and ends (`end`) on the wire: updates
    /// the added delay of its class and, for a released checkpoint frame
    /// (`was_checkpoint`), the commit-to-first-frame and drain statistics.
    pub fn account_wire(
        &mut self,
        frame: &EgressFrame,
        was_checkpoint: bool,
        start: SimTime,
        end: SimTime,
    ) {
        let delay = start.saturating_since(frame.queued_at);
        if !was_checkpoint {
            self.port.delay_plain.record(delay);
            return;
        }
        self.port.delay_checkpoint.record(delay);
        let pool = frame.pool;
        let Some(p) = self.pools.get_mut(pool.get()) else {
            return;
        };
        let Some(rec) = p.commits.front_mut() else {
            return;
        };
        if !rec.seen_first {
            rec.seen_first = true;
            let c2f = start.saturating_since(rec.at);
            self.port.last_commit_to_first_ns = c2f;
            self.port.max_commit_to_first_ns = self.port.max_commit_to_first_ns.max(c2f);
            self.port.sum_commit_to_first_ns += c2f;
            self.port.commit_to_first.record(c2f);
            self.port.commits_with_frames += 1;
        }
        rec.remaining -= 1;
        if rec.remaining == 0 {
            let drain = end.saturating_since(rec.at);
            self.port.last_drain_ns = drain;
            self.port.max_drain_ns = self.port.max_drain_ns.max(drain);
            self.port.drained_commits += 1;
            p.commits.pop_front();
        }
    }

    /// When the earliest eligible frame became ready (for the wire's start time).
    pub fn earliest_ready(&self) -> Option<SimTime> {
        self.pools
            .iter()
            .filter(|p| p.eligible > 0)
            .filter_map(|p| p.slots.front().map(|s| s.ready_at))
            .min()
    }

    /// Frames in the stage (held or eligible).
    pub fn len(&self) -> usize {
        self.held
    }

    /// True when nothing is in the stage.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Frames and bytes in `pool`'s FIFO.
    pub fn occupancy(&self, pool: Vport) -> (usize, usize) {
        self.fifo(pool).map_or((0, 0), |p| (p.slots.len(), p.bytes))
    }

    /// Frames of `pool` held for an uncommitted epoch.
    pub fn held_frames(&self, pool: Vport) -> usize {
        self.fifo(pool).map_or(0, |p| p.slots.len() - p.eligible)
    }

    /// Counters of `pool`.
    pub fn stats(&self, pool: Vport) -> EgressPoolStats {
        self.fifo(pool).map(|p| p.stats).unwrap_or_default()
    }

    /// Starts (or stops) recording, for every frame the stage accepts, its pool and the epoch
    /// it was stamped with — a simulator trace, not visible to software.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// Takes the trace recorded since the last call, in acceptance order.
    pub fn take_trace(&mut self) -> Vec<(Vport, Option<u32>)> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Drops everything (device reset); returns how many frames were dropped.
    pub fn flush(&mut self) -> usize {
        let n = self.held;
        for p in &mut self.pools {
            p.slots.clear();
            p.eligible = 0;
            p.bytes = 0;
            p.commits.clear();
        }
        self.held = 0;
        n
    }

    // ----- HAC ----------------------------------------------------------------------------

    /// Enables or disables the HAC extension. Disabling releases everything held.
    pub fn set_hac_enabled(&mut self, on: bool, now: SimTime) {
        if !on {
            for i in 0..self.pools.len() {
                self.release_all(i, now);
            }
        }
        self.hac_enabled = on;
    }

    /// Whether the HAC extension is enabled.
    pub fn hac_enabled(&self) -> bool {
        self.hac_enabled
    }

    /// The starvation guard in bytes (0 = strict priority).
    pub fn guard_bytes(&self) -> u64 {
        self.guard_bytes
    }

    /// Sets the starvation guard.
    pub fn set_guard_bytes(&mut self, bytes: u64) {
        self.guard_bytes = bytes;
    }

    /// Tags `vport` as checkpointing (`on`) or untags it. Untagging releases what it holds;
    /// tagging starts it at epoch 1 open, 0 committed. Setting the state it already has changes
    /// nothing.
    pub fn set_tagged(&mut self, vport: Vport, on: bool, now: SimTime) {
        if on == self.fifo(vport).is_some_and(|p| p.hac.tagged) {
            return;
        }
        if on {
            self.fifo_mut(vport).hac = EpochState::TAGGED;
        } else {
            self.release_all(vport.get(), now);
            self.fifo_mut(vport).hac.tagged = false;
        }
    }

    /// Whether `vport` is tagged as checkpointing.
    pub fn tagged(&self, vport: Vport) -> bool {
        self.fifo(vport).is_some_and(|p| p.hac.tagged)
    }

    /// HAC state of `pool`.
    pub fn hac_state(&self, pool: Vport) -> HacPoolState {
        self.fifo(pool).map(|p| p.hac).unwrap_or_default()
    }

    /// Buffer limits of a checkpointing pool.
    pub fn hac_limits(&self, pool: Vport) -> EgressLimits {
        self.fifo(pool)
            .and_then(|p| p.hac_limits)
            .unwrap_or(DEFAULT_HAC_LIMITS)
    }

    /// Sets the buffer limits of a checkpointing pool (0 = [`MAX_LIMITS`]; frames already held
    /// stay).
    pub fn set_hac_limits(&mut self, pool: Vport, limits: EgressLimits) {
        self.fifo_mut(pool).hac_limits = Some(limits.effective());
    }

    /// Port-level HAC timing.
    pub fn hac_port_stats(&self) -> HacPortStats {
        self.port
    }

    fn check(&self, pool: usize) -> Result<(), HacResult> {
        if !self.hac_enabled {
            return Err(HacResult::Disabled);
        }
        if !self.pools.get(pool).is_some_and(|p| p.hac.tagged) {
            return Err(HacResult::NotTagged);
        }
        Ok(())
    }

    /// Opens epoch `epoch` for `pool`: later frames are stamped with it. Epochs strictly grow
    /// and end at [`LAST_EPOCH`](crate::epoch::LAST_EPOCH) (`u32::MAX` is reserved: BAD_EPOCH).
    pub fn open_epoch(&mut self, pool: Vport, epoch: u32) -> HacResult {
        let i = pool.get();
        if let Err(e) = self.check(i) {
            return e;
        }
        let h = &mut self.pools[i].hac;
        if !h.openable(epoch) {
            return HacResult::BadEpoch;
        }
        h.open = epoch;
        HacResult::Ok
    }

    /// Releases every held frame of `pool` with an epoch ≤ `epoch` (resolved < epoch ≤ open).
    pub fn commit(&mut self, pool: Vport, epoch: u32, now: SimTime) -> HacResult {
        let i = pool.get();
        if let Err(e) = self.check(i) {
            return e;
        }
        let p = &mut self.pools[i];
        if !p.hac.resolvable(epoch) {
            return HacResult::BadEpoch;
        }
        p.hac.committed = epoch;
        p.hac.resolved = epoch;
        p.release_prefix(now, Some(epoch));
        HacResult::Ok
    }

    /// Discards every held frame of `pool` with resolved < epoch ≤ `epoch` (checkpoint failed);
    /// frames of later epochs stay held. Returns the result and the number discarded.
    pub fn abort(&mut self, pool: Vport, epoch: u32) -> (HacResult, usize) {
        let i = pool.get();
        if let Err(e) = self.check(i) {
            return (e, 0);
        }
        if !self.pools[i].hac.resolvable(epoch) {
            return (HacResult::BadEpoch, 0);
        }
        let n = self.discard_where(i, |e| e <= epoch);
        self.pools[i].hac.resolved = epoch;
        (HacResult::Ok, n)
    }

    /// Discards every held frame of `pool` (the primary failed over; nothing uncommitted may
    /// ever leave). Returns the result and the number discarded.
    pub fn failover(&mut self, pool: Vport) -> (HacResult, usize) {
        let i = pool.get();
        if let Err(e) = self.check(i) {
            return (e, 0);
        }
        let n = self.discard_where(i, |_| true);
        let h = &mut self.pools[i].hac;
        h.resolved = h.open;
        (HacResult::Ok, n)
    }

    /// Releases every held frame of `pool` and stops buffering it (backup lost: run
    /// unprotected). The pool is untagged.
    pub fn unprotect(&mut self, pool: Vport, now: SimTime) -> HacResult {
        let i = pool.get();
        if let Err(e) = self.check(i) {
            return e;
        }
        self.release_all(i, now);
        self.pools[i].hac.tagged = false;
        HacResult::Ok
    }

    fn release_all(&mut self, i: usize, now: SimTime) {
        if let Some(p) = self.pools.get_mut(i) {
            p.release_prefix(now, None);
        }
    }

    /// Removes held (not eligible) frames whose epoch satisfies `pred`; returns how many.
    fn discard_where(&mut self, i: usize, pred: impl Fn(u32) -> bool) -> usize {
        let p = &mut self.pools[i];
        let mut kept = VecDeque::with_capacity(p.slots.len());
        let mut n = 0;
        for (k, s) in p.slots.drain(..).enumerate() {
            if k >= p.eligible && s.epoch.is_some_and(&pred) {
                p.bytes -= s.frame.data.len();
                n += 1;
            } else {
                kept.push_back(s);
            }
        }
        p.slots = kept;
        p.stats.discarded += n as u64;
        self.held -= n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pool: usize, len: usize) -> EgressFrame {
        EgressFrame {
            data: Bytes::from(vec![pool as u8; len]),
            pool: Vport::new(pool as u8),
            queued_at: SimTime::ZERO,
        }
    }

    fn p(i: u8) -> Vport {
        Vport::new(i)
    }

    #[test]
    fn round_robin_across_pools_fifo_within() {
        let mut e = EgressStage::new(EgressLimits::default());
        e.enqueue(frame(0, 60));
        e.enqueue(frame(0, 61));
        e.enqueue(frame(3, 62));
        let order: Vec<(usize, usize)> = std::iter::from_fn(|| e.dequeue())
            .map(|f| (f.pool.get(), f.data.len()))
            .collect();
        assert_eq!(order, vec![(0, 60), (3, 62), (0, 61)]);
        assert!(e.is_empty());
    }

    #[test]
    fn room_reflects_limits() {
        let mut e = EgressStage::new(EgressLimits {
            bytes: 200,
            frames: 2,
        });
        let p = Vport::new(1);
        assert!(e.has_room(p, 100));
        e.enqueue(frame(1, 100));
        assert!(e.has_room(p, 100));
        assert!(!e.has_room(p, 101));
        e.enqueue(frame(1, 10));
        assert!(!e.has_room(p, 1), "frame limit");
        assert_eq!(e.occupancy(p), (2, 110));
        assert_eq!(e.flush(), 2);
        assert_eq!(e.stats(p).max_bytes, 110);
    }

    #[test]
    fn wire_accounting_feeds_the_latency_histograms_per_class() {
        let mut e = EgressStage::new(EgressLimits::default());
        e.set_hac_enabled(true, SimTime::ZERO);
        e.set_tagged(p(1), true, SimTime::ZERO);
        let at = |pool: usize, t: u64| EgressFrame {
            queued_at: SimTime(t),
            ..frame(pool, 100)
        };
        e.enqueue(at(1, 0)); // held, epoch 1
        e.enqueue(at(0, 1_000)); // plain
        let (f, checkpoint) = e.dequeue_classified().unwrap();
        assert!(!checkpoint);
        e.account_wire(&f, checkpoint, SimTime(3_000), SimTime(4_000));
        // Commit at 20 ms; the frame starts 5 µs later: held 20.005 ms in all.
        assert_eq!(e.commit(p(1), 1, SimTime(20_000_000)), HacResult::Ok);
        let (f, checkpoint) = e.dequeue_classified().unwrap();
        assert!(checkpoint);
        e.account_wire(&f, checkpoint, SimTime(20_005_000), SimTime(20_006_000));
        let s = e.hac_port_stats();
        assert_eq!((s.delay_plain.count, s.delay_plain.sum_ns), (1, 2_000));
        assert_eq!(s.delay_plain.buckets[1], 1, "2 µs: ≤ 2 µs");
        assert_eq!(s.delay_checkpoint.count, 1);
        assert_eq!(s.delay_checkpoint.sum_ns, 20_005_000);
        assert_eq!(s.commit_to_first.count, 1);
        assert_eq!(s.commit_to_first.sum_ns, 5_000);
        assert_eq!(s.commit_to_first.buckets[3], 1, "5 µs: ≤ 8 µs");
        assert_eq!(s.commits_with_frames, 1);
    }

    #[test]
    fn commit_releases_exactly_epochs_up_to_it() {
        let mut e = EgressStage::new(EgressLimits::default());
        e.set_hac_enabled(true, SimTime::ZERO);
        e.set_tagged(p(0), true, SimTime::ZERO);
        e.enqueue(frame(0, 60)); // epoch 1
        assert_eq!(e.open_epoch(p(0), 2), HacResult::Ok);
        e.enqueue(frame(0, 61)); // epoch 2
        assert!(e.dequeue().is_none(), "nothing committed");
        assert_eq!(e.commit(p(0), 1, SimTime(5)), HacResult::Ok);
        assert_eq!(e.dequeue().map(|f| f.data.len()), Some(60));
        assert!(
            e.dequeue().is_none(),
            "epoch 2 still held (sch_plug would release it)"
        );
        assert_eq!(e.commit(p(0), 1, SimTime(6)), HacResult::BadEpoch);
        assert_eq!(
            e.commit(p(0), 3, SimTime(6)),
            HacResult::BadEpoch,
            "not open yet"
        );
        assert_eq!(e.open_epoch(p(0), 2), HacResult::BadEpoch, "epochs grow");
    }

    #[test]
    fn abort_and_failover_discard_unprotect_releases() {
        let mut e = EgressStage::new(EgressLimits::default());
        e.set_hac_enabled(true, SimTime::ZERO);
        e.set_tagged(p(0), true, SimTime::ZERO);
        e.set_tagged(p(1), true, SimTime::ZERO);
        e.enqueue(frame(0, 60));
        e.open_epoch(p(0), 2);
        e.enqueue(frame(0, 61));
        assert_eq!(e.abort(p(0), 1), (HacResult::Ok, 1));
        assert_eq!(e.held_frames(p(0)), 1);
        assert_eq!(e.commit(p(0), 2, SimTime(1)), HacResult::Ok);
        assert_eq!(e.dequeue().map(|f| f.data.len()), Some(61));
        e.enqueue(frame(1, 70));
        assert_eq!(e.failover(p(1)), (HacResult::Ok, 1));
        assert!(e.is_empty());
        e.enqueue(frame(1, 71));
        assert_eq!(e.unprotect(p(1), SimTime(2)), HacResult::Ok);
        assert_eq!(e.dequeue().map(|f| f.data.len()), Some(71));
        e.enqueue(frame(1, 72));
        assert_eq!(
            e.dequeue().map(|f| f.data.len()),
            Some(72),
            "no longer buffered"
        );
        assert_eq!(e.stats(p(0)).discarded + e.stats(p(1)).discarded, 2);
        assert_eq!(e.commit(p(1), 5, SimTime(3)), HacResult::NotTagged);
    }

    #[test]
    fn released_frames_go_first_with_the_guard() {
        let mut e = EgressStage::new(EgressLimits {
            bytes: 1 << 20,
            frames: 1000,
        });
        e.set_hac_enabled(true, SimTime::ZERO);
        e.set_tagged(p(0), true, SimTime::ZERO);
        e.set_guard_bytes(3000);
        for _ in 0..6 {
            e.enqueue(frame(0, 1000));
        }
        for _ in 0..12 {
            e.enqueue(frame(1, 100));
        }
        e.commit(p(0), 1, SimTime(1));
        let order: Vec<usize> = std::iter::from_fn(|| e.dequeue())
            .map(|f| f.pool.get())
            .collect();
        // 3 × 1000 high bytes, then a low turn of 750 bytes (8 × 100), repeat; then the rest.
        let mut expect = vec![0, 0, 0];
        expect.extend([1; 8]);
        expect.extend([0, 0, 0]);
        expect.extend([1; 4]);
        assert_eq!(order, expect);
        e.set_guard_bytes(0);
        e.open_epoch(p(0), 2);
        for _ in 0..3 {
            e.enqueue(frame(0, 1000));
            e.enqueue(frame(1, 100));
        }
        assert_eq!(e.commit(p(0), 2, SimTime(2)), HacResult::Ok);
        let order: Vec<usize> = std::iter::from_fn(|| e.dequeue())
            .map(|f| f.pool.get())
            .collect();
        assert_eq!(order, vec![0, 0, 0, 1, 1, 1], "strict priority");
    }
}

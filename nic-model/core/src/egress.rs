//! The port's egress stage: the one place every wire-bound frame passes between the internal
//! switch and the wire, and the home of the HAC extension (docs/hac.md).
//!
//! One FIFO per VMDq pool, bounded in bytes and frames. A frame from a **checkpointing** pool is
//! stamped with the pool's open epoch and *held* until a commit covers its epoch; a commit moves
//! the held prefix of the FIFO (epochs only grow along a FIFO) to *released*. The held frames are
//! kept as runs of one epoch, so a commit moves a watermark over whole runs and an abort cuts
//! whole runs: the cost is per epoch, never per frame. A buffered frame is a 16-byte slot (see
//! "Frame bytes" below). The scheduler keeps one bitmask of pools per class and picks the next
//! frame for the wire by a find-first-set from the round-robin position:
//!
//! * **high class**: pools whose head frame is a released checkpoint frame, round robin;
//! * **low class**: pools whose head frame carries no epoch (plain VFs, the PF), round robin;
//! * within the low class, pools the adapter marks as *priority* pools
//!   ([`EgressStage::set_priority`], the 82576's TXDCTL.PRIORITY) go first, round robin among
//!   themselves; with no priority pool the class is a plain round robin;
//! * strict priority for the high class, except for the starvation guard G (`guard_bytes`):
//!   after G high-class bytes sent back to back while low-class frames were waiting, the low
//!   class gets a turn of G/4 bytes (at least one frame), so under contention it keeps at least
//!   a fifth of the wire and waits at most G bytes; G = 0 is pure strict priority.
//!
//! Held frames never leave: abort and failover discard them (counted), unprotect releases them.
//! When a pool's FIFO is at its limit, [`EgressStage::has_room`] is false and the TX engine stops
//! fetching that pool's descriptors (backpressure through the ring, never a drop).
//!
//! # Frame bytes
//!
//! Every buffered frame lives in a 64 KiB chunk ([`crate::buffers`]). A TX engine that gathers
//! frames into chunks hands each one over as the `BytesMut` it split off
//! ([`EgressStage::enqueue_chunked`]); the stage joins frames that follow each other in one
//! chunk into one *segment* (`BytesMut::try_unsplit`: same allocation, contiguous, no copy),
//! kept in a per-stage slab. A slot names its frame as (segment, offset, length, queue time
//! relative to the segment's first frame): 16 bytes. Dequeue splits the head frame off its
//! segment as a `Bytes` (a reference count, no copy); [`EgressStage::transmit_next`], the
//! families' drain loop, lends it to the wire's sinks in place instead when the wire keeps no
//! capture. A frame handed over as `Bytes`
//! ([`EgressStage::enqueue`]: tests, SoftHac, the mlx5 family) is first copied into a chunk of
//! the stage's own, per pool, from the stage's [`ChunkPool`]. A segment, and so its chunk, is
//! let go when its last frame leaves (to the wire, or discarded): a chunk is reclaimed only
//! when no buffered frame refers to it.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::buffers::{ChunkPool, PooledBuf};

use crate::clock::SimTime;
use crate::epoch::EpochState;
use crate::latency::LatencyHistogram;
use crate::vport::{MAX_VPORTS, Vport};
use crate::wire::WirePort;

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

/// A frame [`EgressStage::transmit_next`] sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmitted {
    /// The pool (VF) that sent it.
    pub pool: Vport,
    /// When it ends on the wire.
    pub end: SimTime,
    /// Wire sinks that failed on it.
    pub sink_errors: u64,
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

/// One buffered frame: 16 bytes. Its bytes are `len` bytes at `offset` of segment `segment`
/// of the stage's [`Slab`]; it was queued `queued_after` ns after the segment's first frame.
/// Its pool is the FIFO it sits in; its epoch and release time live in the FIFO's run lists
/// ([`EpochRun`], [`Release`]), one entry per epoch or commit, not per frame.
#[derive(Clone, Copy, Debug)]
struct Slot {
    segment: u32,
    offset: u32,
    len: u32,
    queued_after: u32,
}

impl Slot {
    fn len(&self) -> usize {
        self.len as usize
    }
}

/// The bytes of a segment: growing while frames join it, frozen from its first dequeue on
/// (splitting a frame off a `Bytes` is a reference count and two words; off a `BytesMut`, four
/// times the instructions).
#[derive(Debug)]
enum SegmentBytes {
    Growing(BytesMut),
    Frozen(Bytes),
}

impl Default for SegmentBytes {
    fn default() -> SegmentBytes {
        SegmentBytes::Frozen(Bytes::new())
    }
}

/// Frames of one pool that follow each other in one chunk.
#[derive(Debug, Default)]
struct Segment {
    /// The bytes not yet split off: from offset `start` to `end` of the segment.
    buf: SegmentBytes,
    /// Offset (from the segment's first byte) of `buf`'s first byte.
    start: u32,
    /// Offset of `buf`'s end: where the next joined frame starts.
    end: u32,
    /// Queue time of the segment's first frame; the slots' times are relative to it.
    base: SimTime,
    /// Slots naming this segment.
    live: u32,
}

/// The segments of a stage, with a free list: a slot names its segment by index.
#[derive(Debug, Default)]
struct Slab {
    segments: Vec<Segment>,
    free: Vec<u32>,
}

impl Slab {
    /// Stores `frame` queued at `at` as a new segment; returns its index.
    fn insert(&mut self, frame: BytesMut, at: SimTime) -> u32 {
        let end = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let seg = Segment {
            buf: SegmentBytes::Growing(frame),
            start: 0,
            end,
            base: at,
            live: 1,
        };
        if let Some(i) = self.free.pop()
            && let Some(s) = self.segments.get_mut(i as usize)
        {
            *s = seg;
            return i;
        }
        self.segments.push(seg);
        u32::try_from(self.segments.len() - 1).unwrap_or(u32::MAX)
    }

    /// One slot of segment `i` is gone: the segment (and its chunk) is let go with its last.
    /// Returns true when it was.
    fn unref(&mut self, i: u32) -> bool {
        let Some(s) = self.segments.get_mut(i as usize) else {
            return false;
        };
        s.live = s.live.saturating_sub(1);
        if s.live > 0 {
            return false;
        }
        s.buf = SegmentBytes::default();
        self.free.push(i);
        true
    }

    /// Moves the segment of head frame `slot` to it: the segment frozen (it takes no more
    /// frames), advanced past the bytes of discarded frames before it (none unless an abort cut
    /// the segment), and the frame counted out of it (freed with its last frame). Returns the
    /// segment's bytes starting at the frame, the frame's length (clamped to what is there),
    /// its queue time, and whether it was the segment's last frame.
    #[inline]
    fn head(&mut self, slot: Slot) -> Option<(&mut Bytes, usize, SimTime, bool)> {
        let s = self.segments.get_mut(slot.segment as usize)?;
        if let SegmentBytes::Growing(b) = &mut s.buf {
            s.buf = SegmentBytes::Frozen(std::mem::take(b).freeze());
        }
        let SegmentBytes::Frozen(b) = &mut s.buf else {
            return None;
        };
        let skip = (slot.offset.saturating_sub(s.start) as usize).min(b.len());
        if skip > 0 {
            b.advance(skip);
        }
        let len = slot.len().min(b.len());
        let at = SimTime(s.base.0 + u64::from(slot.queued_after));
        s.start = slot.offset.saturating_add(slot.len);
        s.live = s.live.saturating_sub(1);
        let last = s.live == 0;
        if last {
            self.free.push(slot.segment);
        }
        Some((b, len, at, last))
    }

    /// The bytes of the head frame `slot` of its segment, split off (the frames before it in
    /// the segment are gone: sent or discarded), its queue time, and whether the segment went
    /// with it (its last slot). The segment takes no more frames after this.
    #[inline]
    fn take(&mut self, slot: Slot) -> (Bytes, SimTime, bool) {
        let Some((b, len, at, last)) = self.head(slot) else {
            return (Bytes::new(), SimTime::ZERO, false);
        };
        if !last {
            return (b.split_to(len), at, false);
        }
        // The segment's last frame: its handle moves out (no reference taken, none dropped).
        let mut frame = std::mem::take(b);
        frame.truncate(len);
        (frame, at, true)
    }

    /// [`Slab::take`] without a `Bytes`: `f` sees the frame's bytes in place and the segment
    /// moves past them (no reference count; the segment's handle is dropped with its last frame).
    #[inline]
    fn consume<R>(&mut self, slot: Slot, f: impl FnOnce(&[u8]) -> R) -> (R, SimTime, bool) {
        let Some((b, len, at, last)) = self.head(slot) else {
            return (f(&[]), SimTime::ZERO, false);
        };
        let r = f(&b[..len]);
        if last {
            *b = Bytes::new();
        } else {
            b.advance(len);
        }
        (r, at, last)
    }

    /// When `slot` was queued.
    fn queued_at(&self, slot: &Slot) -> SimTime {
        let base = self
            .segments
            .get(slot.segment as usize)
            .map_or(0, |s| s.base.0);
        SimTime(base + u64::from(slot.queued_after))
    }

    fn clear(&mut self) {
        self.segments.clear();
        self.free.clear();
    }
}

/// Held frames stamped with one epoch: the FIFO sequence numbers from the end of the run
/// before it (or the eligible watermark) up to `end`, exclusive.
#[derive(Clone, Copy, Debug)]
struct EpochRun {
    epoch: u32,
    end: u64,
}

/// Checkpoint frames `start..end` (FIFO sequence numbers) released by one commit at `at`: they
/// are high-class and ready at `at`.
#[derive(Clone, Copy, Debug)]
struct Release {
    start: u64,
    end: u64,
    at: SimTime,
}

#[derive(Clone, Copy, Debug)]
struct CommitRecord {
    at: SimTime,
    remaining: usize,
    seen_first: bool,
}

/// The FIFO of one pool. Every accepted frame gets the next sequence number; `slots[0]` has
/// `head`. The frames before the watermark `eligible_end` may go to the wire; the ones after it
/// are held, partitioned into [`EpochRun`]s (epochs only grow along a FIFO). A commit moves the
/// watermark over whole runs and a discard cuts whole runs: both cost per epoch, not per frame.
#[derive(Default)]
struct PoolFifo {
    slots: VecDeque<Slot>,
    /// The segment the last frame joined, while it has frames: the next frame may join it.
    open: Option<u32>,
    /// The stage's chunk a frame handed over as `Bytes` is copied into.
    copy_buf: PooledBuf,
    head: u64,
    eligible_end: u64,
    held_runs: VecDeque<EpochRun>,
    releases: VecDeque<Release>,
    bytes: usize,
    stats: EgressPoolStats,
    hac: HacPoolState,
    hac_limits: Option<EgressLimits>,
    commits: VecDeque<CommitRecord>,
}

impl PoolFifo {
    /// The sequence number the next accepted frame gets.
    fn tail(&self) -> u64 {
        self.head + self.slots.len() as u64
    }

    /// Frames at the front that may go to the wire.
    fn eligible(&self) -> usize {
        (self.eligible_end - self.head) as usize
    }

    /// Stores `frame`, queued at `at`, in the slab: joined to the open segment when it follows
    /// it in the same chunk (and its queue time fits), else as a new segment.
    fn store(&mut self, slab: &mut Slab, frame: BytesMut, at: SimTime) -> Slot {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let mut frame = frame;
        if let Some(i) = self.open
            && let Some(s) = slab.segments.get_mut(i as usize)
            && let Some(after) =
                at.0.checked_sub(s.base.0)
                    .and_then(|d| u32::try_from(d).ok())
            && let Some(end) = s.end.checked_add(len)
            && let SegmentBytes::Growing(buf) = &mut s.buf
        {
            match buf.try_unsplit(frame) {
                Ok(()) => {
                    let slot = Slot {
                        segment: i,
                        offset: s.end,
                        len,
                        queued_after: after,
                    };
                    s.end = end;
                    s.live += 1;
                    return slot;
                }
                Err(f) => frame = f,
            }
        }
        let i = slab.insert(frame, at);
        self.open = Some(i);
        Slot {
            segment: i,
            offset: 0,
            len,
            queued_after: 0,
        }
    }

    /// One slot of segment `i` left this FIFO.
    fn unref(&mut self, slab: &mut Slab, i: u32) {
        if slab.unref(i) && self.open == Some(i) {
            self.open = None;
        }
    }

    /// Appends a frame stamped with `epoch` (held) or none (eligible once all before it are).
    fn push(&mut self, slot: Slot, epoch: Option<u32>) {
        let seq = self.tail();
        self.bytes += slot.len();
        self.slots.push_back(slot);
        match (epoch, self.held_runs.back_mut()) {
            (Some(e), Some(run)) if run.epoch == e => run.end = seq + 1,
            (Some(e), _) => self.held_runs.push_back(EpochRun {
                epoch: e,
                end: seq + 1,
            }),
            // An unstamped frame behind held ones leaves with them. (Unreachable through the
            // stage: whatever stops the stamping releases every held frame first.)
            (None, Some(run)) => run.end = seq + 1,
            (None, None) => self.eligible_end = seq + 1,
        }
    }

    /// Removes the held runs at the front with an epoch ≤ `upto` (all with `None`) and returns
    /// the sequence number where the last one ended (the watermark if none): one step per run.
    fn take_runs(&mut self, upto: Option<u32>) -> u64 {
        let Some(u) = upto else {
            self.held_runs.clear();
            return self.tail();
        };
        let mut end = self.eligible_end;
        while let Some(run) = self.held_runs.front().copied() {
            if run.epoch > u {
                break;
            }
            end = run.end;
            self.held_runs.pop_front();
        }
        end
    }

    /// Makes the held frames at the front eligible at `now`: the runs with an epoch ≤ `upto`,
    /// or all of them with `None`; records the release for the ready times and the
    /// commit-timing statistics. Costs one step per epoch run, whatever the frames.
    fn release_prefix(&mut self, now: SimTime, upto: Option<u32>) {
        let before = self.eligible_end;
        self.eligible_end = self.take_runs(upto);
        let n = (self.eligible_end - before) as usize;
        self.stats.released += n as u64;
        if n > 0 {
            self.releases.push_back(Release {
                start: before,
                end: self.eligible_end,
                at: now,
            });
            self.commits.push_back(CommitRecord {
                at: now,
                remaining: n,
                seen_first: false,
            });
        }
    }

    /// Removes the held runs with an epoch ≤ `upto` (all with `None`); returns how many frames.
    fn discard_prefix(&mut self, slab: &mut Slab, upto: Option<u32>) -> usize {
        let start = self.eligible_end;
        let end = self.take_runs(upto);
        let k = end - start;
        if k == 0 {
            return 0;
        }
        let from = (start - self.head) as usize;
        let to = (end - self.head) as usize;
        for k in from..to {
            if let Some(s) = self.slots.get(k).copied() {
                self.bytes -= s.len();
                self.unref(slab, s.segment);
            }
        }
        self.slots.drain(from..to);
        for run in &mut self.held_runs {
            run.end -= k;
        }
        self.stats.discarded += k;
        k as usize
    }

    /// The release covering the head frame, if it is a released checkpoint frame.
    fn head_release(&self) -> Option<&Release> {
        self.releases
            .front()
            .filter(|r| r.start <= self.head && self.head < r.end)
    }

    fn head_class(&self) -> Option<Class> {
        if self.eligible_end == self.head {
            return None;
        }
        Some(if self.head_release().is_some() {
            Class::High
        } else {
            Class::Low
        })
    }

    /// When the head frame became eligible: its release for a checkpoint frame, its queue time
    /// for a plain one.
    fn head_ready_at(&self, slab: &Slab) -> Option<SimTime> {
        if self.eligible_end == self.head {
            return None;
        }
        match self.head_release() {
            Some(r) => Some(r.at),
            None => self.slots.front().map(|s| slab.queued_at(s)),
        }
    }

    /// Takes the head frame's slot (which must be eligible); the caller takes its bytes from the
    /// slab.
    fn pop(&mut self) -> Option<Slot> {
        if self.eligible_end == self.head {
            return None;
        }
        let slot = self.slots.pop_front()?;
        self.head += 1;
        self.bytes -= slot.len();
        self.stats.dequeued += 1;
        while self.releases.front().is_some_and(|r| r.end <= self.head) {
            self.releases.pop_front();
        }
        Some(slot)
    }

    /// Drops every frame (reset); the stage clears the slab.
    fn clear(&mut self) {
        self.open = None;
        self.slots.clear();
        self.eligible_end = self.head;
        self.held_runs.clear();
        self.releases.clear();
        self.bytes = 0;
        self.commits.clear();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    High,
    Low,
}

/// Epoch runs, releases and commit records a tagged pool has room for before it allocates.
const RUNS_RESERVED: usize = 16;

/// Words of a [`PoolSet`].
const SET_WORDS: usize = MAX_VPORTS.div_ceil(64);

/// A set of pools as a bitmask over every vport: the scheduler keeps one per class, so a
/// decision is a find-first-set over four words, whatever the number of idle pools.
#[derive(Clone, Copy, Debug, Default)]
struct PoolSet([u64; SET_WORDS]);

impl PoolSet {
    fn set(&mut self, i: usize, on: bool) {
        if let Some(w) = self.0.get_mut(i / 64) {
            let bit = 1u64 << (i % 64);
            if on {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }

    /// The first member at or after `start`.
    fn first_from(&self, start: usize) -> Option<usize> {
        let mut w = start / 64;
        let mut bits = *self.0.get(w)? & (!0u64 << (start % 64));
        loop {
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
            w += 1;
            bits = *self.0.get(w)?;
        }
    }

    /// Round robin: the first member at or after `start`, else the first one.
    #[inline]
    fn next_round_robin(&self, start: usize) -> Option<usize> {
        self.first_from(start).or_else(|| self.first_from(0))
    }

    fn intersection(&self, other: &PoolSet) -> PoolSet {
        let mut u = *self;
        for (a, b) in u.0.iter_mut().zip(other.0) {
            *a &= b;
        }
        u
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
}

/// The egress stage of the port.
pub struct EgressStage {
    pools: Vec<PoolFifo>,
    /// The segments holding the buffered frames' bytes.
    slab: Slab,
    /// Chunks for frames handed over as `Bytes`.
    chunks: ChunkPool,
    limits: EgressLimits,
    /// Pools whose head frame is a released checkpoint frame.
    high: PoolSet,
    /// Pools whose head frame is an eligible plain frame.
    low: PoolSet,
    /// Pools served first within the low class (TXDCTL.PRIORITY on the 82576).
    priority: PoolSet,
    /// `priority` is not empty.
    any_priority: bool,
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
            slab: Slab::default(),
            chunks: ChunkPool::default(),
            limits: limits.effective(),
            high: PoolSet::default(),
            low: PoolSet::default(),
            priority: PoolSet::default(),
            any_priority: false,
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

    /// Puts pool `i` in the class set of its head frame (after anything that may change it).
    fn refresh(&mut self, i: usize) {
        let class = self.pools.get(i).and_then(PoolFifo::head_class);
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        if let (Some(h), Some(l)) = (self.high.0.get_mut(w), self.low.0.get_mut(w)) {
            *h = (*h & !bit) | (bit * u64::from(class == Some(Class::High)));
            *l = (*l & !bit) | (bit * u64::from(class == Some(Class::Low)));
        }
    }

    /// The round-robin position after pool `i`: the next pool, wrapping after the last.
    fn after(&self, i: usize) -> usize {
        if i + 1 >= self.pools.len() { 0 } else { i + 1 }
    }

    /// Records that `pool`'s TX engine stopped on a full FIFO.
    pub fn note_backpressure(&mut self, pool: Vport) {
        self.fifo_mut(pool).stats.backpressure_events += 1;
    }

    /// Accepts a frame at `now`: stamped and held if its pool is checkpointing, else eligible at
    /// once. The TX engine checks [`EgressStage::has_room`] first, so this never refuses. The
    /// frame's bytes are copied into a chunk of the stage's (module documentation); a TX engine
    /// that gathers frames into chunks hands them over with [`EgressStage::enqueue_chunked`].
    pub fn enqueue(&mut self, frame: EgressFrame) {
        let i = frame.pool.get();
        self.fifo_mut(frame.pool);
        let Some(p) = self.pools.get_mut(i) else {
            return;
        };
        self.chunks.reserve(&mut p.copy_buf, frame.data.len());
        p.copy_buf.extend_from_slice(&frame.data);
        let data = p.copy_buf.split();
        self.enqueue_chunked(frame.pool, data, frame.queued_at);
    }

    /// [`EgressStage::enqueue`] of a frame split off a chunk (or any `BytesMut`): a frame that
    /// follows the pool's previous one in the same chunk joins its segment, without a copy.
    pub fn enqueue_chunked(&mut self, pool: Vport, data: BytesMut, queued_at: SimTime) {
        let hac_on = self.hac_enabled;
        let i = pool.get();
        self.fifo_mut(pool);
        let Some(p) = self.pools.get_mut(i) else {
            return;
        };
        let epoch = (hac_on && p.hac.tagged).then_some(p.hac.open);
        let slot = p.store(&mut self.slab, data, queued_at);
        p.push(slot, epoch);
        p.stats.enqueued += 1;
        p.stats.max_frames = p.stats.max_frames.max(p.slots.len());
        p.stats.max_bytes = p.stats.max_bytes.max(p.bytes);
        let was_empty = p.slots.len() == 1;
        if let Some(t) = &mut self.trace {
            t.push((pool, epoch));
        }
        self.held += 1;
        // Appending changes the head's class only when the FIFO was empty.
        if was_empty {
            self.refresh(i);
        }
    }

    /// The next frame for the wire (see the module documentation for the policy).
    pub fn dequeue(&mut self) -> Option<EgressFrame> {
        self.dequeue_classified().map(|(f, _)| f)
    }

    /// [`EgressStage::dequeue`], also saying whether the frame was a released checkpoint frame.
    pub fn dequeue_classified(&mut self) -> Option<(EgressFrame, bool)> {
        let (i, slot, checkpoint) = self.decide()?;
        let (data, queued_at, freed) = self.slab.take(slot);
        self.segment_gone(i, slot, freed);
        let frame = EgressFrame {
            data,
            pool: Vport::new(i as u8),
            queued_at,
        };
        Some((frame, checkpoint))
    }

    /// Sends the next frame (the one [`EgressStage::dequeue_classified`] would give) on `wire`
    /// at `start`, and accounts it as [`EgressStage::account_wire`] does. Without a capture on
    /// the wire, the sinks see the frame's bytes in place in their chunk: no `Bytes` is made,
    /// no reference count moves.
    pub fn transmit_next(&mut self, wire: &mut WirePort, start: SimTime) -> Option<Transmitted> {
        let (i, slot, checkpoint) = self.decide()?;
        let end = start + wire.rate().frame_time_ns(slot.len());
        let (sink_errors, queued_at, freed) = if wire.capturing() {
            let (data, at, freed) = self.slab.take(slot);
            (wire.transmit(start, data), at, freed)
        } else {
            self.slab
                .consume(slot, |data| wire.transmit_slice(start, data))
        };
        self.segment_gone(i, slot, freed);
        let pool = Vport::new(i as u8);
        self.account(pool, queued_at, checkpoint, start, end);
        Some(Transmitted {
            pool,
            end,
            sink_errors,
        })
    }

    /// The segment of `slot`, taken from pool `i`, was freed: the pool's next frame cannot join it.
    fn segment_gone(&mut self, i: usize, slot: Slot, freed: bool) {
        if freed
            && let Some(p) = self.pools.get_mut(i)
            && p.open == Some(slot.segment)
        {
            p.open = None;
        }
    }

    /// The scheduler's decision: takes the next frame's slot off its FIFO and updates the
    /// classes, the round-robin positions and the guard; returns the pool, the slot and whether
    /// it is a released checkpoint frame.
    #[inline]
    fn decide(&mut self) -> Option<(usize, Slot, bool)> {
        if self.held == 0 {
            return None;
        }
        let high = self.high.next_round_robin(self.next_high);
        let low = if !self.any_priority {
            self.low.next_round_robin(self.next_low)
        } else {
            self.low
                .intersection(&self.priority)
                .next_round_robin(self.next_low)
                .or_else(|| self.low.next_round_robin(self.next_low))
        };
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
        let slot = self.pools.get_mut(i)?.pop()?;
        self.refresh(i);
        self.held -= 1;
        let len = u64::from(slot.len);
        match class {
            Class::High => {
                self.next_high = self.after(i);
                self.low_turn = 0;
                self.high_burst = if low.is_some() {
                    self.high_burst + len
                } else {
                    0
                };
            }
            Class::Low => {
                self.next_low = self.after(i);
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
        Some((i, slot, class == Class::High))
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
        self.account(frame.pool, frame.queued_at, was_checkpoint, start, end);
    }

    fn account(
        &mut self,
        pool: Vport,
        queued_at: SimTime,
        was_checkpoint: bool,
        start: SimTime,
        end: SimTime,
    ) {
        let delay = start.saturating_since(queued_at);
        if !was_checkpoint {
            self.port.delay_plain.record(delay);
            return;
        }
        self.port.delay_checkpoint.record(delay);
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
        // Word by word over the pools in use, clearing the lowest bit: one step per busy pool.
        let words = self.pools.len().div_ceil(64);
        let mut best: Option<SimTime> = None;
        for (w, (h, l)) in self.high.0.iter().zip(&self.low.0).take(words).enumerate() {
            let mut bits = h | l;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(t) = self.pools.get(i).and_then(|p| p.head_ready_at(&self.slab)) {
                    best = Some(best.map_or(t, |b| b.min(t)));
                }
            }
        }
        best
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
        self.fifo(pool).map_or(0, |p| p.slots.len() - p.eligible())
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
        // The trace goes on in a vector of the same capacity (no regrowing every step).
        self.trace
            .as_mut()
            .map(|t| std::mem::replace(t, Vec::with_capacity(t.capacity())))
            .unwrap_or_default()
    }

    /// Drops everything (device reset); returns how many frames were dropped.
    pub fn flush(&mut self) -> usize {
        let n = self.held;
        for p in &mut self.pools {
            p.clear();
        }
        self.slab.clear();
        self.high = PoolSet::default();
        self.low = PoolSet::default();
        self.held = 0;
        n
    }

    /// Marks `vport` as a priority pool (`on`): within the low class its frames go before other
    /// pools' (round robin among priority pools). The 82576 model sets it from TXDCTL.PRIORITY.
    /// It survives [`EgressStage::flush`]; the adapter clears it on its own reset.
    pub fn set_priority(&mut self, vport: Vport, on: bool) {
        self.priority.set(vport.get(), on);
        self.any_priority = !self.priority.is_empty();
    }

    /// Whether `vport` is a priority pool.
    pub fn priority(&self, vport: Vport) -> bool {
        self.priority.first_from(vport.get()) == Some(vport.get())
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
            let p = self.fifo_mut(vport);
            p.hac = EpochState::TAGGED;
            // A commit allocates nothing while a few epochs and commits are outstanding.
            p.held_runs.reserve(RUNS_RESERVED);
            p.releases.reserve(RUNS_RESERVED);
            p.commits.reserve(RUNS_RESERVED);
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
        self.refresh(i);
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
        let n = self.discard(i, Some(epoch));
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
        let n = self.discard(i, None);
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
        self.refresh(i);
    }

    /// Removes held frames of epochs ≤ `upto` (all with `None`); returns how many.
    fn discard(&mut self, i: usize, upto: Option<u32>) -> usize {
        let n = self
            .pools
            .get_mut(i)
            .map_or(0, |p| p.discard_prefix(&mut self.slab, upto));
        self.held -= n;
        self.refresh(i);
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

    #[test]
    fn a_slot_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
    }

    /// Frames split off one chunk, as a TX engine hands them over.
    fn chunk_frames(lens: &[usize]) -> Vec<BytesMut> {
        let mut chunk = BytesMut::with_capacity(lens.iter().sum());
        lens.iter()
            .enumerate()
            .map(|(k, &len)| {
                chunk.extend(std::iter::repeat_n(k as u8, len));
                chunk.split()
            })
            .collect()
    }

    #[test]
    fn frames_of_one_chunk_share_a_segment_and_come_back_whole() {
        let mut e = EgressStage::new(EgressLimits::default());
        let lens = [60, 61, 62, 1514, 63];
        for (k, f) in chunk_frames(&lens).into_iter().enumerate() {
            e.enqueue_chunked(p(1), f, SimTime(100 + k as u64));
        }
        assert_eq!(e.slab.segments.len(), 1, "one segment for the chunk");
        assert_eq!(e.slab.segments[0].live, 5);
        for (k, &len) in lens.iter().enumerate() {
            let f = e.dequeue().unwrap();
            assert_eq!(f.data, vec![k as u8; len]);
            assert_eq!(f.queued_at, SimTime(100 + k as u64));
        }
        assert!(e.is_empty());
        assert_eq!(
            e.slab.free,
            vec![0],
            "the segment is let go with its last frame"
        );
        assert!(matches!(&e.slab.segments[0].buf, SegmentBytes::Frozen(b) if b.is_empty()));
    }

    #[test]
    fn a_discard_inside_a_segment_keeps_the_frames_around_it() {
        let mut e = EgressStage::new(EgressLimits::default());
        e.set_hac_enabled(true, SimTime::ZERO);
        let mut frames = chunk_frames(&[60, 61, 62, 63, 64]).into_iter();
        // Plain 60; then tagged: 61 and 62 in epoch 1, 63 and 64 in epoch 2.
        e.enqueue_chunked(p(0), frames.next().unwrap(), SimTime(1));
        e.set_tagged(p(0), true, SimTime(1));
        e.enqueue_chunked(p(0), frames.next().unwrap(), SimTime(2));
        e.enqueue_chunked(p(0), frames.next().unwrap(), SimTime(3));
        assert_eq!(e.open_epoch(p(0), 2), HacResult::Ok);
        for f in frames {
            e.enqueue_chunked(p(0), f, SimTime(4));
        }
        assert_eq!(e.slab.segments.len(), 1);
        assert_eq!(e.abort(p(0), 1), (HacResult::Ok, 2));
        assert_eq!(e.slab.segments[0].live, 3);
        assert_eq!(e.commit(p(0), 2, SimTime(9)), HacResult::Ok);
        let out: Vec<(Vec<u8>, SimTime, bool)> = std::iter::from_fn(|| e.dequeue_classified())
            .map(|(f, c)| (f.data.to_vec(), f.queued_at, c))
            .collect();
        assert_eq!(
            out,
            vec![
                (vec![0; 60], SimTime(1), false),
                (vec![3; 63], SimTime(4), true),
                (vec![4; 64], SimTime(4), true),
            ]
        );
        assert_eq!(e.slab.free, vec![0]);
    }

    #[test]
    fn frames_that_cannot_join_start_their_own_segment() {
        let mut e = EgressStage::new(EgressLimits::default());
        let mut a = chunk_frames(&[60, 61]).into_iter();
        let mut b = chunk_frames(&[62]).into_iter();
        e.enqueue_chunked(p(0), a.next().unwrap(), SimTime(10));
        e.enqueue_chunked(p(0), b.next().unwrap(), SimTime(10)); // another chunk
        e.enqueue_chunked(p(0), a.next().unwrap(), SimTime(10)); // not after the open one
        // Queue times must fit in 32 bits after the segment's first frame, and not go back.
        let mut c = chunk_frames(&[63, 64, 65]).into_iter();
        e.enqueue_chunked(p(0), c.next().unwrap(), SimTime(10));
        e.enqueue_chunked(p(0), c.next().unwrap(), SimTime(10 + (1 << 32)));
        e.enqueue_chunked(p(0), c.next().unwrap(), SimTime(5));
        e.enqueue(frame(0, 66)); // copied into the stage's own chunk
        assert_eq!(e.slab.segments.len(), 7);
        let out: Vec<(usize, SimTime)> = std::iter::from_fn(|| e.dequeue())
            .map(|f| (f.data.len(), f.queued_at))
            .collect();
        assert_eq!(
            out,
            vec![
                (60, SimTime(10)),
                (62, SimTime(10)),
                (61, SimTime(10)),
                (63, SimTime(10)),
                (64, SimTime(10 + (1 << 32))),
                (65, SimTime(5)),
                (66, SimTime::ZERO),
            ]
        );
        assert_eq!(e.slab.free.len(), 7);
    }

    #[test]
    fn frames_handed_over_as_bytes_share_the_stages_chunk() {
        let mut e = EgressStage::new(EgressLimits::default());
        for k in 0..100 {
            e.enqueue(frame(k % 2, 60 + k));
        }
        assert_eq!(e.slab.segments.len(), 2, "one chunk per pool");
        let mut lens: Vec<usize> = std::iter::from_fn(|| e.dequeue())
            .map(|f| {
                assert!(f.data.iter().all(|&b| b as usize == f.pool.get()));
                f.data.len()
            })
            .collect();
        lens.sort_unstable();
        assert_eq!(lens, (60..160).collect::<Vec<_>>());
    }

    #[test]
    fn a_chunk_is_reclaimed_only_when_no_buffered_frame_refers_to_it() {
        use crate::buffers::{ChunkPool, PooledBuf};
        let mut pool = ChunkPool::new(256, 4);
        let mut buf = PooledBuf::default();
        let mut e = EgressStage::new(EgressLimits::default());
        e.set_hac_enabled(true, SimTime::ZERO);
        e.set_tagged(p(0), true, SimTime::ZERO);
        let mut send = |e: &mut EgressStage, pool: &mut ChunkPool, fill: u8| {
            pool.reserve(&mut buf, 100);
            buf.extend_from_slice(&[fill; 100]);
            e.enqueue_chunked(p(0), buf.split(), SimTime(1));
        };
        // Two frames fill the first chunk, the third retires it.
        for fill in [1, 2, 3] {
            send(&mut e, &mut pool, fill);
        }
        assert_eq!(pool.retired(), 1);
        // Held frames refer to the retired chunk: the next chunk is a new one.
        for fill in [4, 5, 6] {
            send(&mut e, &mut pool, fill);
        }
        assert_eq!((pool.stats().allocated, pool.stats().reused), (3, 0));
        assert_eq!(e.commit(p(0), 1, SimTime(2)), HacResult::Ok);
        let first: Vec<u8> = (0..3).map(|_| e.dequeue().unwrap().data[0]).collect();
        assert_eq!(first, vec![1, 2, 3]);
        // The first chunk's frames are gone: it is reused, and the held ones keep their bytes.
        for fill in [7, 8] {
            send(&mut e, &mut pool, fill);
        }
        assert_eq!(pool.stats().reused, 1);
        let rest: Vec<Vec<u8>> = std::iter::from_fn(|| e.dequeue())
            .map(|f| f.data.to_vec())
            .collect();
        assert_eq!(rest, vec![vec![4; 100], vec![5; 100], vec![6; 100]]);
        assert_eq!(e.held_frames(p(0)), 2);
    }

    #[test]
    fn transmit_next_sends_what_dequeue_gives_with_and_without_a_capture() {
        use crate::wire::{LineRate, WireSink};
        use std::sync::{Arc, Mutex};
        type Frames = Vec<(SimTime, Vec<u8>)>;
        struct Seen(Arc<Mutex<Frames>>);
        impl WireSink for Seen {
            fn on_frame(&mut self, at: SimTime, frame: &[u8]) -> std::io::Result<()> {
                self.0.lock().unwrap().push((at, frame.to_vec()));
                Ok(())
            }
        }
        let load = |e: &mut EgressStage| {
            e.set_hac_enabled(true, SimTime::ZERO);
            e.set_tagged(p(1), true, SimTime::ZERO);
            for (k, f) in chunk_frames(&[60, 61, 62, 63]).into_iter().enumerate() {
                e.enqueue_chunked(p(k as u8 % 2), f, SimTime(k as u64));
            }
            e.enqueue(frame(2, 64));
            assert_eq!(e.abort(p(1), 1), (HacResult::Ok, 2));
            assert_eq!(e.open_epoch(p(1), 2), HacResult::Ok);
            e.enqueue_chunked(p(1), chunk_frames(&[65]).pop().unwrap(), SimTime(9));
            assert_eq!(e.commit(p(1), 2, SimTime(10)), HacResult::Ok);
        };
        // Reference: dequeue_classified, account_wire, transmit.
        let mut reference = EgressStage::new(EgressLimits::default());
        load(&mut reference);
        let mut wire = WirePort::new(LineRate::G10, true);
        let mut t = SimTime(100);
        while let Some((f, c)) = reference.dequeue_classified() {
            let end = t + wire.rate().frame_time_ns(f.data.len());
            reference.account_wire(&f, c, t, end);
            wire.transmit(t, f.data);
            t = end;
        }
        let expect: Frames = wire
            .take_capture()
            .into_iter()
            .map(|r| (r.at, r.data.to_vec()))
            .collect();
        assert_eq!(expect.len(), 4);
        for capture in [true, false] {
            let mut e = EgressStage::new(EgressLimits::default());
            load(&mut e);
            let seen = Arc::new(Mutex::new(Vec::new()));
            let mut wire = WirePort::new(LineRate::G10, capture);
            wire.add_sink(Box::new(Seen(seen.clone())));
            let mut t = SimTime(100);
            while let Some(sent) = e.transmit_next(&mut wire, t) {
                assert_eq!(
                    sent.end,
                    t + wire
                        .rate()
                        .frame_time_ns(seen.lock().unwrap().last().unwrap().1.len())
                );
                t = sent.end;
            }
            assert_eq!(*seen.lock().unwrap(), expect, "capture {capture}");
            let captured = wire.take_capture();
            assert_eq!(captured.len(), if capture { 4 } else { 0 });
            assert_eq!(e.hac_port_stats(), reference.hac_port_stats());
            assert_eq!(
                e.slab.free.len(),
                e.slab.segments.len(),
                "every segment let go"
            );
        }
    }

    #[test]
    fn commit_and_abort_move_whole_epoch_runs() {
        let mut e = EgressStage::new(EgressLimits::default());
        e.set_hac_enabled(true, SimTime::ZERO);
        e.set_tagged(p(0), true, SimTime::ZERO);
        for (epoch, lens) in [(1, [60, 61, 62]), (2, [63, 64, 65]), (3, [66, 67, 68])] {
            if epoch > 1 {
                assert_eq!(e.open_epoch(p(0), epoch), HacResult::Ok);
            }
            for len in lens {
                e.enqueue(frame(0, len));
            }
        }
        assert_eq!(e.pools[0].held_runs.len(), 3, "one run per epoch");
        assert_eq!(e.commit(p(0), 1, SimTime(4)), HacResult::Ok);
        assert_eq!(e.abort(p(0), 2), (HacResult::Ok, 3));
        assert_eq!(e.held_frames(p(0)), 3);
        assert_eq!(e.occupancy(p(0)), (6, 60 + 61 + 62 + 66 + 67 + 68));
        assert_eq!(e.earliest_ready(), Some(SimTime(4)));
        let first: Vec<usize> = std::iter::from_fn(|| e.dequeue())
            .map(|f| f.data.len())
            .collect();
        assert_eq!(first, vec![60, 61, 62]);
        assert_eq!(e.commit(p(0), 3, SimTime(9)), HacResult::Ok);
        let rest: Vec<(usize, bool)> = std::iter::from_fn(|| e.dequeue_classified())
            .map(|(f, c)| (f.data.len(), c))
            .collect();
        assert_eq!(rest, vec![(66, true), (67, true), (68, true)]);
        let s = e.stats(p(0));
        assert_eq!((s.released, s.discarded, s.dequeued), (6, 3, 6));
        assert!(e.is_empty() && e.pools[0].releases.is_empty());
    }

    #[test]
    fn plain_frames_ahead_of_released_ones_keep_their_class_and_time() {
        let mut e = EgressStage::new(EgressLimits::default());
        e.set_hac_enabled(true, SimTime::ZERO);
        let mut f = frame(2, 50);
        f.queued_at = SimTime(3);
        e.enqueue(f);
        e.set_tagged(p(2), true, SimTime(5));
        e.enqueue(frame(2, 51));
        assert_eq!(e.commit(p(2), 1, SimTime(7)), HacResult::Ok);
        assert_eq!(e.earliest_ready(), Some(SimTime(3)));
        let (f, checkpoint) = e.dequeue_classified().unwrap();
        assert_eq!(
            (f.data.len(), checkpoint, f.queued_at),
            (50, false, SimTime(3))
        );
        assert_eq!(e.earliest_ready(), Some(SimTime(7)));
        let (f, checkpoint) = e.dequeue_classified().unwrap();
        assert_eq!((f.data.len(), checkpoint, f.pool), (51, true, p(2)));
        assert_eq!(e.earliest_ready(), None);
    }

    #[test]
    fn round_robin_over_256_pools_visits_only_busy_ones() {
        let mut e = EgressStage::new(EgressLimits::default());
        for pool in [255, 3, 130, 3, 255] {
            e.enqueue(frame(pool, 60));
        }
        let order: Vec<usize> = std::iter::from_fn(|| e.dequeue())
            .map(|f| f.pool.get())
            .collect();
        assert_eq!(order, vec![3, 130, 255, 3, 255]);
        assert_eq!(e.pools.len(), 256);
        e.enqueue(frame(0, 60));
        e.enqueue(frame(200, 60));
        assert_eq!(e.flush(), 2);
        assert!(e.dequeue().is_none() && e.earliest_ready().is_none());
    }
}

//! The port's egress stage: the one place every frame passes between the TX engines (after the
//! internal switch) and the wire.
//!
//! Today it holds one FIFO per VMDq pool, bounded in bytes and frames (the pool's share of the
//! on-chip TX packet buffer), and a packet-granular round-robin scheduler across pools. When a
//! pool's FIFO has no room for one more maximum-size frame, [`EgressStage::has_room`] is false and
//! the TX engine stops fetching that pool's descriptors until the wire drains it — backpressure
//! through the ring, never a drop.
//!
//! This is the seam for HAC: checkpoint tagging, epoch stamping, hold-until-commit, discard and
//! the priority scheduler replace the per-pool FIFO and the round-robin choice here, without the
//! TX engines or the wire changing.

use std::collections::VecDeque;

use bytes::Bytes;
use igb_hw::PoolIndex;
use igb_hw::addr::NUM_POOLS;

use crate::clock::SimTime;

/// A frame waiting for the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressFrame {
    /// The frame, without FCS.
    pub data: Bytes,
    /// The pool (VF) that sent it.
    pub pool: PoolIndex,
    /// When the TX engine handed it over.
    pub queued_at: SimTime,
}

/// Per-pool capacity of the egress stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EgressLimits {
    /// Bytes per pool.
    pub bytes: usize,
    /// Frames per pool.
    pub frames: usize,
}

impl Default for EgressLimits {
    /// 64 KiB and 256 frames per pool: of the order of the 82576's on-chip TX packet buffer.
    fn default() -> Self {
        EgressLimits {
            bytes: 64 * 1024,
            frames: 256,
        }
    }
}

/// Counters of one pool's FIFO.
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
}

#[derive(Default)]
struct PoolFifo {
    frames: VecDeque<EgressFrame>,
    bytes: usize,
    stats: EgressPoolStats,
}

/// The egress stage of the port.
pub struct EgressStage {
    pools: [PoolFifo; NUM_POOLS],
    limits: EgressLimits,
    next_pool: usize,
    held: usize,
}

impl EgressStage {
    /// An empty stage with `limits` per pool.
    pub fn new(limits: EgressLimits) -> EgressStage {
        EgressStage {
            pools: Default::default(),
            limits,
            next_pool: 0,
            held: 0,
        }
    }

    /// The per-pool limits.
    pub fn limits(&self) -> EgressLimits {
        self.limits
    }

    /// Changes the per-pool limits; frames already held stay.
    pub fn set_limits(&mut self, limits: EgressLimits) {
        self.limits = limits;
    }

    /// True when `pool` can take one more frame of up to `max_len` bytes.
    pub fn has_room(&self, pool: PoolIndex, max_len: usize) -> bool {
        let p = &self.pools[pool.get()];
        p.frames.len() < self.limits.frames && p.bytes + max_len <= self.limits.bytes
    }

    /// Accepts a frame. The TX engine checks [`EgressStage::has_room`] before it fetches a packet,
    /// so this never refuses; a frame that would exceed the limit is still kept (no silent loss).
    pub fn enqueue(&mut self, frame: EgressFrame) {
        let p = &mut self.pools[frame.pool.get()];
        p.bytes += frame.data.len();
        p.frames.push_back(frame);
        p.stats.enqueued += 1;
        p.stats.max_frames = p.stats.max_frames.max(p.frames.len());
        p.stats.max_bytes = p.stats.max_bytes.max(p.bytes);
        self.held += 1;
    }

    /// The next frame for the wire: packet-granular round robin across pools.
    pub fn dequeue(&mut self) -> Option<EgressFrame> {
        if self.held == 0 {
            return None;
        }
        for step in 0..NUM_POOLS {
            let i = (self.next_pool + step) % NUM_POOLS;
            let p = &mut self.pools[i];
            if let Some(f) = p.frames.pop_front() {
                p.bytes -= f.data.len();
                p.stats.dequeued += 1;
                self.held -= 1;
                self.next_pool = (i + 1) % NUM_POOLS;
                return Some(f);
            }
        }
        None
    }

    /// The earliest `queued_at` among frames that could go next (for the wire's start time).
    pub fn earliest_ready(&self) -> Option<SimTime> {
        self.pools
            .iter()
            .filter_map(|p| p.frames.front().map(|f| f.queued_at))
            .min()
    }

    /// Frames held in total.
    pub fn len(&self) -> usize {
        self.held
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Frames and bytes held for `pool`.
    pub fn occupancy(&self, pool: PoolIndex) -> (usize, usize) {
        let p = &self.pools[pool.get()];
        (p.frames.len(), p.bytes)
    }

    /// Counters of `pool`.
    pub fn stats(&self, pool: PoolIndex) -> EgressPoolStats {
        self.pools[pool.get()].stats
    }

    /// Drops everything (device reset); returns how many frames were dropped.
    pub fn flush(&mut self) -> usize {
        let n = self.held;
        for p in &mut self.pools {
            p.frames.clear();
            p.bytes = 0;
        }
        self.held = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pool: usize, len: usize) -> EgressFrame {
        EgressFrame {
            data: Bytes::from(vec![pool as u8; len]),
            pool: PoolIndex::new(pool).unwrap(),
            queued_at: SimTime::ZERO,
        }
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
        let p = PoolIndex::new(1).unwrap();
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
}

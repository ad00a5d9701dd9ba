//! Egress scheduler alone: enqueue + dequeue decisions per second with all 8 pools busy
//! (4 checkpointing pools committed every round, 4 plain pools), 64 B frames on the wire
//! (60 B + FCS), and the cost of a commit that releases N frames.
//!
//! Frames are clones of one preallocated frame, so no allocation is measured: a static `Bytes`
//! (clone = copy) for the headline figure, and a heap `Bytes` (clone/drop = atomic refcount
//! increment/decrement) to show what shared refcounts cost.
//!
//! Run: `cargo bench -p nic-model --bench egress`. Prints criterion's figures plus a summary
//! (Mpps, M decisions/s, ns per operation). The 82576 has 8 VMDq pools, so "64 VFs" is not a
//! configuration the model (or the silicon) has: the scheduler always scans 8 pools.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use adapter_core::{EgressFrame, EgressLimits, EgressStage, SimTime, Vport};
use bytes::Bytes;
use criterion::{Criterion, Throughput};

/// Frames enqueued per pool per round.
const PER_POOL: usize = 32;
const POOLS: usize = 8;
/// Vports 0..4 checkpoint, 4..8 are plain.
const TAGGED: usize = 4;
/// Frame bytes without FCS: 64 B on the wire.
const FRAME_LEN: usize = 60;

fn pool(i: usize) -> Vport {
    Vport::new(i as u8)
}

const BIG: EgressLimits = EgressLimits {
    bytes: 1 << 40,
    frames: 1 << 30,
};

#[derive(Default)]
struct Phases {
    rounds: u64,
    enqueue: Duration,
    commit: Duration,
    dequeue: Duration,
}

/// One scheduler under load: 4 tagged + 4 plain pools (or 8 plain with `hac = false`), each
/// plain pool with a standing backlog so every pool stays busy.
struct Load {
    e: EgressStage,
    frame: Bytes,
    epoch: u32,
    now: u64,
    hac: bool,
}

impl Load {
    fn new(hac: bool, static_frame: bool) -> Load {
        let mut e = EgressStage::new(BIG);
        e.set_hac_enabled(hac, SimTime::ZERO);
        if hac {
            for p in 0..TAGGED {
                e.set_tagged(pool(p), true, SimTime::ZERO);
            }
            for p in 0..POOLS {
                e.set_hac_limits(pool(p), BIG);
            }
        }
        // A static frame's clone/drop is a plain copy; a heap frame's is an atomic refcount
        // increment/decrement (what `Bytes` costs when frames are shared).
        let frame = if static_frame {
            Bytes::from_static(&[0xA5u8; FRAME_LEN])
        } else {
            Bytes::from(vec![0xA5u8; FRAME_LEN])
        };
        // Standing backlog on the plain pools (64 frames each) so the low class never empties.
        for p in 0..POOLS {
            if hac && p < TAGGED {
                continue;
            }
            for _ in 0..64 {
                e.enqueue(EgressFrame {
                    data: frame.clone(),
                    pool: pool(p),
                    queued_at: SimTime::ZERO,
                });
            }
        }
        Load {
            e,
            frame,
            epoch: 1,
            now: 0,
            hac,
        }
    }

    /// One round: 32 frames into each of the 8 pools, a commit (open e+1, commit e) on each
    /// tagged pool, then 256 scheduler decisions. Returns the time of each phase.
    fn round(&mut self, ph: &mut Phases) {
        let t0 = Instant::now();
        for _ in 0..PER_POOL {
            for p in 0..POOLS {
                self.e.enqueue(EgressFrame {
                    data: self.frame.clone(),
                    pool: pool(p),
                    queued_at: SimTime(self.now),
                });
            }
        }
        let t1 = Instant::now();
        if self.hac {
            for p in 0..POOLS {
                if p < TAGGED {
                    self.e.open_epoch(pool(p), self.epoch + 1);
                    black_box(self.e.commit(pool(p), self.epoch, SimTime(self.now)));
                }
            }
            self.epoch += 1;
        }
        let t2 = Instant::now();
        for _ in 0..PER_POOL * POOLS {
            black_box(self.e.dequeue_classified());
        }
        let t3 = Instant::now();
        self.now += (PER_POOL * POOLS) as u64 * 7;
        ph.rounds += 1;
        ph.enqueue += t1 - t0;
        ph.commit += t2 - t1;
        ph.dequeue += t3 - t2;
    }
}

fn scheduler(c: &mut Criterion, summary: &mut Vec<String>) {
    let mut g = c.benchmark_group("egress_8_pools_64B");
    g.throughput(Throughput::Elements((PER_POOL * POOLS) as u64));
    for (name, hac, stat) in [
        ("hac_4_tagged_4_plain", true, true),
        ("hac_off_8_plain", false, true),
        ("hac_4+4_refcounted_Bytes", true, false),
    ] {
        let mut load = Load::new(hac, stat);
        let mut ph = Phases::default();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    load.round(&mut ph);
                }
                start.elapsed()
            })
        });
        assert!(load.e.len() >= 64 * 4, "backlog kept");
        let frames = (ph.rounds * (PER_POOL * POOLS) as u64) as f64;
        let total = (ph.enqueue + ph.commit + ph.dequeue).as_secs_f64();
        summary.push(format!(
            "egress {name:24} enqueue+commit+dequeue: {:7.1} Mpps ({:5.2} ns/frame) | \
             dequeue only: {:7.1} M decisions/s ({:5.2} ns) | enqueue {:5.2} ns/frame | \
             commits {:5.2} ns/frame amortized",
            frames / total / 1e6,
            total * 1e9 / frames,
            frames / ph.dequeue.as_secs_f64() / 1e6,
            ph.dequeue.as_secs_f64() * 1e9 / frames,
            ph.enqueue.as_secs_f64() * 1e9 / frames,
            ph.commit.as_secs_f64() * 1e9 / frames,
        ));
    }
    g.finish();
}

/// A stage whose pool 0 is tagged and holds `n` frames of epoch 1.
fn held_stage(n: usize, frame: &Bytes) -> EgressStage {
    let mut e = EgressStage::new(BIG);
    e.set_hac_enabled(true, SimTime::ZERO);
    e.set_tagged(pool(0), true, SimTime::ZERO);
    e.set_hac_limits(pool(0), BIG);
    for _ in 0..n {
        e.enqueue(EgressFrame {
            data: frame.clone(),
            pool: pool(0),
            queued_at: SimTime::ZERO,
        });
    }
    e.open_epoch(pool(0), 2);
    e
}

fn commit_latency(c: &mut Criterion, summary: &mut Vec<String>) {
    let mut g = c.benchmark_group("egress_commit");
    g.measurement_time(Duration::from_millis(400));
    g.warm_up_time(Duration::from_millis(100));
    let frame = Bytes::from(vec![0x5Au8; FRAME_LEN]);
    for n in [1usize, 32, 256, 4096] {
        // Stages are built untimed, `batch` at a time, then committed back to back (so the
        // Instant pair is amortized over the batch).
        let batch = (65_536 / n).clamp(1, 512);
        let mut total = Duration::ZERO;
        let mut count = 0u64;
        g.bench_function(format!("commit_releasing_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let m = left.min(batch);
                    let mut stages: Vec<EgressStage> =
                        (0..m).map(|_| held_stage(n, &frame)).collect();
                    let t0 = Instant::now();
                    for s in &mut stages {
                        black_box(s.commit(pool(0), 1, SimTime(1)));
                    }
                    t += t0.elapsed();
                    drop(stages);
                    left -= m;
                }
                total += t;
                count += iters;
                t
            })
        });
        let ns = total.as_secs_f64() * 1e9 / count as f64;
        summary.push(format!(
            "commit releasing {n:5} frames: {ns:9.1} ns ({:5.2} ns/frame)",
            ns / n as f64
        ));
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(10)
        .nresamples(10_000)
        .configure_from_args();
    let mut summary = Vec::new();
    scheduler(&mut c, &mut summary);
    commit_latency(&mut c, &mut summary);
    c.final_summary();
    println!("\n==== egress summary (8 pools: the 82576 has 8 VMDq pools, not 64) ====");
    for s in &summary {
        println!("{s}");
    }
}

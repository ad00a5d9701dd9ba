//! The egress stage alone, every figure printed beside the bare-loop bound of the same run
//! (`adapter_core::bench_bound`), as a ratio:
//!
//! * **scheduler**: enqueue + commit + dequeue with 8 busy pools (half checkpointing and committed
//!   every round, half plain with a standing backlog), 64 B frames (60 B + FCS), in stages of 8,
//!   64 and 256 pools — the busy ones spread out, the rest idle — and with all 64 or 256 busy;
//!   "decisions" are `dequeue_classified` calls (`_transmit_next`: `transmit_next` calls onto a
//!   wire port without capture or sink, the frame's bytes lent in place, no `Bytes` made);
//! * **commit**: one `commit` releasing 1, 1 000, 100 000 or 1 000 000 held frames, and commit →
//!   first released frame out of the stage (`earliest_ready` + `dequeue_classified`), each from
//!   cold caches (a 32 MiB sweep before every sample, as building a large stage would do).
//!
//! Scheduler frames are split off per-pool 64 KiB chunks from a `ChunkPool` and handed over
//! with `enqueue_chunked`, as the igb TX engine does; the `_bytes` case hands clones of one
//! `Bytes` to `enqueue`, which copies them into the stage's own chunks (the mlx5 family's path).
//! The commit cases use clones of one static `Bytes`.
//!
//! Run: `cargo bench -p adapter-core --bench egress [-- FILTER]` (FILTER: `scheduler`,
//! `commit`, or a case name such as `64_pools`). `HAC_BENCH_QUICK=1` runs every case for a
//! fraction of a second (CI keeps the bench from rotting; figures from it mean little).
//! Not criterion: a commit of 1 000 000 frames needs a stage built for every sample, and the
//! ratios to the bound need both measured in one process.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use adapter_core::bench_bound::bare_loop_mpps;
use adapter_core::buffers::{ChunkPool, PooledBuf};
use adapter_core::wire::WirePort;
use adapter_core::{EgressFrame, EgressLimits, EgressStage, LineRate, SimTime, Vport};
use bytes::Bytes;

/// Frames enqueued per busy pool per round.
const PER_POOL: usize = 32;
/// Frame bytes without FCS: 64 B on the wire.
const FRAME_LEN: usize = 60;

const BIG: EgressLimits = EgressLimits {
    bytes: 1 << 40,
    frames: 1 << 30,
};

fn quick() -> bool {
    std::env::var_os("HAC_BENCH_QUICK").is_some_and(|v| v != "0")
}

fn pool(i: usize) -> Vport {
    Vport::new(i as u8)
}

#[derive(Default)]
struct Phases {
    frames: u64,
    enqueue: Duration,
    commit: Duration,
    dequeue: Duration,
}

/// A stage of `total` pools of which `busy` (spread out) take frames; the first half of the
/// busy ones checkpoint (with `hac`), the rest are plain with a standing backlog.
struct Load {
    e: EgressStage,
    busy: Vec<usize>,
    tagged: usize,
    frame: Bytes,
    /// Frames split off chunks (`enqueue_chunked`), else `frame` clones (`enqueue`).
    chunked: bool,
    chunks: ChunkPool,
    /// One frame buffer per pool, as the TX engine has per queue.
    bufs: Vec<PooledBuf>,
    /// Decisions through `transmit_next` onto this port (no capture, no sink), else
    /// `dequeue_classified`.
    wire: Option<WirePort>,
    epoch: u32,
    now: u64,
}

impl Load {
    fn new(total: usize, busy: usize, hac: bool, chunked: bool) -> Load {
        let mut e = EgressStage::new(BIG);
        e.set_hac_enabled(hac, SimTime::ZERO);
        let busy: Vec<usize> = (0..busy).map(|k| k * (total / busy)).collect();
        let tagged = if hac { busy.len() / 2 } else { 0 };
        for &p in &busy[..tagged] {
            e.set_tagged(pool(p), true, SimTime::ZERO);
            e.set_hac_limits(pool(p), BIG);
        }
        let frame = Bytes::from_static(&[0xA5u8; FRAME_LEN]);
        // Make the stage `total` pools wide, then leave the extra pools idle.
        e.enqueue(EgressFrame {
            data: frame.clone(),
            pool: pool(total - 1),
            queued_at: SimTime::ZERO,
        });
        while e.dequeue().is_some() {}
        let mut load = Load {
            e,
            busy,
            tagged,
            frame,
            chunked,
            chunks: ChunkPool::default(),
            bufs: (0..total).map(|_| PooledBuf::default()).collect(),
            wire: None,
            epoch: 1,
            now: 0,
        };
        // Standing backlog on the plain pools (64 frames each) so the low class never empties.
        for k in tagged..load.busy.len() {
            for _ in 0..64 {
                load.send(load.busy[k]);
            }
        }
        load
    }

    /// One frame into pool `p` at the current time.
    fn send(&mut self, p: usize) {
        if self.chunked {
            let buf = &mut self.bufs[p];
            self.chunks.reserve(buf, FRAME_LEN);
            buf.extend_from_slice(&[0xA5u8; FRAME_LEN]);
            let data = buf.split();
            self.e.enqueue_chunked(pool(p), data, SimTime(self.now));
        } else {
            self.e.enqueue(EgressFrame {
                data: self.frame.clone(),
                pool: pool(p),
                queued_at: SimTime(self.now),
            });
        }
    }

    /// One round: 32 frames into each busy pool, open e+1 and commit e on each tagged pool,
    /// then as many scheduler decisions as frames sent.
    fn round(&mut self, ph: &mut Phases) {
        let n = PER_POOL * self.busy.len();
        let t0 = Instant::now();
        for _ in 0..PER_POOL {
            for k in 0..self.busy.len() {
                self.send(self.busy[k]);
            }
        }
        let t1 = Instant::now();
        for &p in &self.busy[..self.tagged] {
            self.e.open_epoch(pool(p), self.epoch + 1);
            black_box(self.e.commit(pool(p), self.epoch, SimTime(self.now)));
        }
        self.epoch += 1;
        let t2 = Instant::now();
        if let Some(w) = &mut self.wire {
            for _ in 0..n {
                let start = w.busy_until();
                black_box(self.e.transmit_next(w, start));
            }
        } else {
            for _ in 0..n {
                black_box(self.e.dequeue_classified());
            }
        }
        let t3 = Instant::now();
        self.now += n as u64 * 7;
        ph.frames += n as u64;
        ph.enqueue += t1 - t0;
        ph.commit += t2 - t1;
        ph.dequeue += t3 - t2;
    }
}

fn scheduler(bound: f64, summary: &mut Vec<String>, filter: &str) {
    let time = if quick() {
        Duration::from_millis(30)
    } else {
        Duration::from_millis(1500)
    };
    for (total, busy, hac, chunked, wire) in [
        (8, 8, true, true, false),
        (8, 8, false, true, false),
        (8, 8, true, false, false),
        (64, 8, true, true, false),
        (256, 8, true, true, false),
        (64, 64, true, true, false),
        (256, 256, true, true, false),
        (8, 8, true, true, true),
        (256, 8, true, true, true),
        (256, 256, true, true, true),
    ] {
        let name = format!(
            "scheduler/{total}_pools_{busy}_busy_{}{}{}",
            if hac { "hac_half_tagged" } else { "hac_off" },
            if chunked { "" } else { "_bytes" },
            if wire { "_transmit_next" } else { "" }
        );
        if !name.contains(filter) {
            continue;
        }
        let mut load = Load::new(total, busy, hac, chunked);
        load.wire = wire.then(|| WirePort::new(LineRate::G100, false));
        let mut ph = Phases::default();
        // Warm up (the FIFOs reach their size), then measure.
        for _ in 0..64 {
            load.round(&mut Phases::default());
        }
        let start = Instant::now();
        while start.elapsed() < time {
            for _ in 0..16 {
                load.round(&mut ph);
            }
        }
        assert!(load.e.len() >= 64 * (busy - load.tagged), "backlog kept");
        let frames = ph.frames as f64;
        let total_s = (ph.enqueue + ph.commit + ph.dequeue).as_secs_f64();
        let mdec = frames / ph.dequeue.as_secs_f64() / 1e6;
        let mpps = frames / total_s / 1e6;
        summary.push(format!(
            "{name:48} enqueue+commit+dequeue {mpps:6.1} Mpps ({:.2} x bound) | decisions \
             {mdec:6.1} M/s ({:5.2} ns, {:.2} x bound) | enqueue {:5.2} ns | commit {:5.2} \
             ns/frame",
            mpps / bound,
            ph.dequeue.as_secs_f64() * 1e9 / frames,
            mdec / bound,
            ph.enqueue.as_secs_f64() * 1e9 / frames,
            ph.commit.as_secs_f64() * 1e9 / frames,
        ));
    }
}

/// A stage whose pool 0 is tagged and holds `n` frames of epoch 1, epoch 2 open.
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

/// More than the last-level cache of the machines this runs on.
const EVICT_BYTES: usize = 32 << 20;

/// Writes one byte per cache line of `scratch`, evicting what the caches held.
fn evict(scratch: &mut [u8]) {
    for line in scratch.chunks_mut(64) {
        line[0] = line[0].wrapping_add(1);
    }
    black_box(scratch);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn commit(bound_ns: f64, summary: &mut Vec<String>, filter: &str) {
    let frame = Bytes::from_static(&[0x5Au8; FRAME_LEN]);
    let mut scratch = vec![0u8; EVICT_BYTES];
    for n in [1usize, 1_000, 100_000, 1_000_000] {
        let name = format!("commit/releasing_{n}");
        if !name.contains(filter) {
            continue;
        }
        let reps = match (quick(), n) {
            (true, 1_000_000) => 1,
            (true, _) => 3,
            (false, 1_000_000) => 9,
            (false, 100_000) => 31,
            (false, _) => 101,
        };
        // Cold: every size starts from the same evicted caches (building a large stage evicts
        // the commit's code and data, building a small one does not). Warm: the commit's code
        // has just run on another stage; its data is as the build left it.
        let (mut cold, mut warm, mut first) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let mut e = held_stage(n, &frame);
            evict(&mut scratch);
            cold.push(timed_commit(&mut e).0);
            drop(e);
            let mut e = held_stage(n, &frame);
            timed_commit(&mut held_stage(1, &frame));
            let (c, f) = timed_commit(&mut e);
            warm.push(c);
            first.push(f);
        }
        let (cold, warm, first) = (median(cold), median(warm), median(first));
        summary.push(format!(
            "{name:48} commit {warm:7.1} ns median ({:.1} bare-loop frames), cold caches \
             {cold:7.1} ns | commit -> first frame out {first:7.1} ns median",
            warm / bound_ns,
        ));
    }
}

/// Commits epoch 1 of pool 0 and takes the first released frame out: (ns to commit, ns to the
/// first frame).
fn timed_commit(e: &mut EgressStage) -> (f64, f64) {
    let t0 = Instant::now();
    black_box(e.commit(pool(0), 1, SimTime(1)));
    let t1 = Instant::now();
    let ready = black_box(e.earliest_ready());
    let first = black_box(e.dequeue_classified());
    let t2 = Instant::now();
    assert!(ready == Some(SimTime(1)) && first.is_some_and(|(_, c)| c));
    ((t1 - t0).as_secs_f64() * 1e9, (t2 - t0).as_secs_f64() * 1e9)
}

fn main() {
    // `cargo bench` passes `--bench`; the first other argument is a filter.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let frames = if quick() { 200_000 } else { 20_000_000 };
    let b64 = bare_loop_mpps(FRAME_LEN, frames);
    let b1518 = bare_loop_mpps(1514, frames / 5);
    let mut summary = Vec::new();
    scheduler(b64, &mut summary, &filter);
    commit(1e3 / b64, &mut summary, &filter);
    let b64_after = bare_loop_mpps(FRAME_LEN, frames);
    let bound = (b64 + b64_after) / 2.0;
    println!("\n==== egress summary ====");
    println!(
        "bare-loop bound (adapter_core::bench_bound): 64 B {b64:.1} Mpps before, \
         {b64_after:.1} after ({:.2} ns/frame); 1518 B {b1518:.1} Mpps",
        1e3 / bound
    );
    for s in &summary {
        println!("{s}");
    }
}

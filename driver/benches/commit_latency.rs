//! Wall-clock commit-to-first-frame: host time from the PF's commit (register writes HACARG +
//! HACCMD) to the first released frame handed to the wire (`nic.advance_to(commit time)`).
//!
//! Setup per sample (untimed): VF 0 checkpointing, 32 frames of 64 B sent through the real
//! driver and held, the wire idle, the next epoch opened. Timed: the commit and the first
//! transmission. Two variants:
//! * `via_model_bar`: the PF's register writes go through `ModelBar` (the driver backend: one
//!   mutex lock per register access), then one lock for `advance_to`;
//! * `direct_nic`: the same on the `Nic` under one lock (the model's own cost).
//!
//! Run: `cargo bench -p hac-driver --bench commit_latency`. Prints criterion's figures plus
//! min / median / p99 per sample (each sample includes one `Instant` pair, also printed), read
//! from an HDR histogram of the samples (3 significant figures).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;

use bytes::Bytes;
use criterion::Criterion;
use hac_driver::RegisterIo;
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma};
use hac_driver::vf::VfDriver;
use hdrhistogram::Histogram;
use igb_hw::regs::{HACCMD, HACCTL, HACSTS, PfReg, value, view};
use igb_model::FunctionId;
use igb_model::testing::udp_frame;

use common::{PEER, model_with_one_vf};

/// Whether the last HAC command was accepted (HACSTS.RESULT = Ok).
fn accepted(hacsts: u32) -> bool {
    view::<HACSTS::Register>(hacsts).matches_all(HACSTS::RESULT::Ok)
}
const HELD: usize = 32;

struct World {
    model: Model,
    vf: VfDriver<ModelBar, ModelDma, ModelClock>,
    pf: ModelBar,
    frames: Vec<Bytes>,
    epoch: u32,
}

impl World {
    fn new() -> World {
        let (model, vf) = model_with_one_vf();
        {
            let mut nic = model.nic();
            nic.pf_write(PfReg::HACCTL, value(HACCTL::ENABLE::SET));
            nic.pf_write(PfReg::HACTAG, 1);
        }
        let f = Bytes::from(udp_frame(PEER, vf.mac(), 0, 60));
        World {
            pf: model.bar0(FunctionId::Pf),
            model,
            vf,
            frames: vec![f; HELD],
            epoch: 1,
        }
    }

    /// Untimed: 32 frames held in epoch `epoch`, next epoch open, wire idle.
    fn prepare(&mut self) {
        assert_eq!(self.vf.send(&self.frames).unwrap(), HELD);
        let mut nic = self.model.nic();
        nic.advance_by(10_000);
        nic.pf_write(PfReg::HACARG, self.epoch + 1);
        nic.pf_write(PfReg::HACCMD, value(HACCMD::OP::OpenEpoch));
        assert!(accepted(nic.pf_read(PfReg::HACSTS)));
    }

    /// Untimed: checks exactly one frame left at the commit, drains the rest.
    fn finish(&mut self, wire_before: u64) {
        let mut nic = self.model.nic();
        let (wire, _, _) = nic.wire_totals();
        assert_eq!(
            wire,
            wire_before + 1,
            "the first released frame, and only it"
        );
        assert!(accepted(nic.pf_read(PfReg::HACSTS)), "commit accepted");
        nic.drain();
        drop(nic);
        self.vf.reclaim();
        self.epoch += 1;
    }

    fn wire(&self) -> u64 {
        self.model.nic().wire_totals().0
    }

    /// Timed: commit via the PF's BAR (two register writes, each a lock), then one lock to run
    /// the device to the commit time.
    fn commit_via_bar(&mut self) -> Duration {
        let t0 = Instant::now();
        self.pf.write32(PfReg::HACARG.offset(), self.epoch);
        self.pf
            .write32(PfReg::HACCMD.offset(), value(HACCMD::OP::Commit));
        {
            let mut nic = self.model.nic();
            let now = nic.now();
            nic.advance_to(now);
        }
        t0.elapsed()
    }

    /// Timed: the same under one lock.
    fn commit_direct(&mut self) -> Duration {
        let t0 = Instant::now();
        {
            let mut nic = self.model.nic();
            nic.pf_write(PfReg::HACARG, self.epoch);
            nic.pf_write(PfReg::HACCMD, value(HACCMD::OP::Commit));
            let now = nic.now();
            nic.advance_to(now);
        }
        t0.elapsed()
    }
}

/// The samples, ns, in an HDR histogram with 3 significant figures (quantiles without sorting).
fn histogram(v: &[Duration]) -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("3 significant figures are supported");
    for d in v {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // `record` grows the histogram to the value; `saturating_record` would clamp it to the
        // current (initially tiny) range instead.
        if h.record(ns).is_err() {
            h.saturating_record(ns);
        }
    }
    h
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(800))
        .sample_size(10)
        .nresamples(10_000)
        .configure_from_args();
    // Cost of the Instant pair itself.
    let empty: Vec<Duration> = (0..100_000)
        .map(|_| {
            let t0 = Instant::now();
            black_box(());
            t0.elapsed()
        })
        .collect();
    let instant_ns = histogram(&empty).value_at_quantile(0.5);
    let mut summary = vec![format!(
        "Instant::now + elapsed alone: median {instant_ns} ns (included in every sample)"
    )];
    let mut g = c.benchmark_group("commit_to_first_frame");
    for (name, direct) in [("via_model_bar", false), ("direct_nic", true)] {
        let mut w = World::new();
        let mut samples = Vec::new();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    w.prepare();
                    let before = w.wire();
                    let d = if direct {
                        w.commit_direct()
                    } else {
                        w.commit_via_bar()
                    };
                    w.finish(before);
                    samples.push(d);
                    t += d;
                }
                t
            })
        });
        let c2f_virtual = w.model.nic().pf_read(PfReg::HACC2F);
        let n = samples.len();
        if n == 0 {
            continue; // filtered out on the command line
        }
        let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1e9 / n as f64;
        let h = histogram(&samples);
        let (min, med, p99) = (h.min(), h.value_at_quantile(0.5), h.value_at_quantile(0.99));
        summary.push(format!(
            "commit → first frame on the wire, {name:14}: min {min:6} ns  median {med:6} ns  \
             p99 {p99:6} ns  mean {mean:6.0} ns over {n} commits of {HELD} held frames \
             (virtual HACC2F = {c2f_virtual} ns)"
        ));
    }
    g.finish();
    c.final_summary();
    println!("\n==== commit-to-first-frame summary (host wall clock) ====");
    for s in &summary {
        println!("{s}");
    }
}

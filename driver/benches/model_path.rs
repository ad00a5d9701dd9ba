//! The whole path with the real driver: `VfDriver::send` (32 frames copied into the ring, one
//! TDT doorbell through `ModelBar`) → model TX engine → switch → egress/HAC → wire, for 64 B and
//! 1518 B frames on the wire (60 B / 1514 B + FCS), three modes: HAC off; HAC on (VF 0
//! checkpointing) with a commit every 1 ms of virtual time; HAC on with 25 ms commits.
//!
//! The wire is 100 Gb/s and virtual time advances by each batch's wire time
//! (`nic.advance_by`), so the simulated sender runs at exactly line rate and the virtual wire is
//! never what limits host throughput. HAC buffer limits are raised to the maximum so a 25 ms
//! epoch at 100 Gb/s (≈ 3.6 M frames of 64 B) is held without backpressure.
//!
//! Run: `cargo bench -p hac-driver --bench model_path [-- FILTER]` (FILTER e.g. `64B`,
//! `1518B/hac_on_commit_1ms`). Prints Mpps, Gb/s, HAC-on as % of HAC-off, and both as % of the
//! bare-loop bound (`common::bare_loop_mpps`, i.e. `adapter_core::bench_bound`) measured just before each pair. `-- --bound-only`
//! prints only the bound; `-- --profile N` runs N batches of 64 B frames with HAC on and 1 ms
//! commits and nothing else (for `valgrind --tool=callgrind`: instructions per frame);
//! `-- --profile N --len 1514` the same with 1518 B frames.
//!
//! Not criterion, for the reason given in `igb_model::testing::bench` (whole commit periods are
//! timed, paired with HAC-off chunks of the same length).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma};
use hac_driver::vf::VfDriver;
use igb_model::LineRate;
use igb_model::testing::bench::{
    BATCH, BenchPath, Mode, hac_on_for_vf0, open_next_and_commit, run_matrix_with_bound,
};
use igb_model::testing::udp_frame;

use common::{PEER, model_with_one_vf};

struct Path {
    model: Model,
    vf: VfDriver<ModelBar, ModelDma, ModelClock>,
    frames: Vec<Bytes>,
    batch_ns: u64,
    mode: Mode,
    epoch: u32,
    next_commit: u64,
    sent: u64,
    commits: u64,
}

impl Path {
    fn new(len: usize, mode: Mode) -> Path {
        let (model, vf) = model_with_one_vf();
        if let Mode::Every(_) = mode {
            hac_on_for_vf0(&mut model.nic());
        }
        let f = Bytes::from(udp_frame(PEER, vf.mac(), 0, len));
        let start = model.nic().now().as_nanos();
        let next_commit = match mode {
            Mode::Off => u64::MAX,
            Mode::Every(p) => start + p,
        };
        Path {
            frames: vec![f; BATCH],
            batch_ns: BATCH as u64 * LineRate::G100.frame_time_ns(len),
            model,
            vf,
            mode,
            epoch: 1,
            next_commit,
            sent: 0,
            commits: 0,
        }
    }
}

impl BenchPath for Path {
    /// One batch: `send` of 32 frames (one doorbell), then the device runs for the batch's wire
    /// time; a due commit is two PF register writes per command (HACARG, HACCMD).
    fn batch(&mut self) {
        let n = self.vf.send(&self.frames).unwrap();
        self.sent += n as u64;
        let mut nic = self.model.nic();
        nic.advance_by(self.batch_ns);
        if let Mode::Every(p) = self.mode
            && nic.now().as_nanos() >= self.next_commit
        {
            open_next_and_commit(&mut nic, self.epoch);
            self.epoch += 1;
            self.next_commit += p;
            self.commits += 1;
        }
    }
    fn mode(&self) -> Mode {
        self.mode
    }
    fn sent(&self) -> u64 {
        self.sent
    }
    fn commits(&self) -> u64 {
        self.commits
    }
    fn wire_frames(&self) -> u64 {
        self.model.nic().wire_totals().0
    }
}

fn main() {
    // `--profile N [--len L]`: N batches of 64 B frames (L bytes without FCS; default 60), HAC
    // on, 1 ms commits, after a warm-up of one commit period, and nothing else; for
    // `valgrind --tool=callgrind` (instructions per frame).
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bound-only") {
        for len in [60, 1514] {
            println!(
                "bound {} B: {:.1} Mpps",
                len + 4,
                common::bare_loop_mpps(len, 500)
            );
        }
        return;
    }
    if let Some(n) = args
        .iter()
        .position(|a| a == "--profile")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<u64>().ok())
    {
        let len = args
            .iter()
            .position(|a| a == "--len")
            .and_then(|i| args.get(i + 1))
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(60);
        let mut p = Path::new(len, Mode::Every(1_000_000));
        while p.commits == 0 {
            p.batch();
        }
        let sent = p.sent;
        for _ in 0..n {
            p.batch();
        }
        println!("profiled {} frames", p.sent - sent);
        return;
    }
    run_matrix_with_bound(
        "driver path",
        Path::new,
        Some(&|len| common::bare_loop_mpps(len, 500)),
    );
}

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
//! `1518B/hac_on_commit_1ms`). Prints Mpps, Gb/s and HAC-on as % of HAC-off.
//!
//! Not criterion: a 25 ms epoch of 64 B frames at 100 Gb/s is ~3.6 M frames, seconds of host
//! time, so criterion's samples would cut through epochs (frames held at the end of a sample
//! would never be paid for). `paired` times whole commit periods instead, each followed by a
//! HAC-off chunk of the same number of batches, so both modes see the same machine load.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma};
use hac_driver::pf::PfConfig;
use hac_driver::vf::{VfConfig, VfDriver};
use igb_hw::MacAddress;
use igb_hw::regs::PfReg;
use igb_model::testing::udp_frame;
use igb_model::{LineRate, NicConfig};

const BATCH: usize = 32;
const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
const OPEN: u32 = 1;
const COMMIT: u32 = 2;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Off,
    /// HAC on, VF 0 checkpointing, commit every `n` ns of virtual time.
    Every(u64),
}

impl Mode {
    fn name(self) -> String {
        match self {
            Mode::Off => "hac_off".into(),
            Mode::Every(ns) => format!("hac_on_commit_{}ms", ns / 1_000_000),
        }
    }
}

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
        let model = Model::new(NicConfig {
            line_rate: LineRate::G100,
            ..NicConfig::default()
        });
        let _pf = model
            .start_pf_agent(
                PfConfig {
                    num_vfs: 1,
                    ..PfConfig::default()
                },
                &[Some(MacAddress([0x02, 0, 0, 0, 0x01, 0x01]))],
            )
            .unwrap();
        let vf = model.vf_driver(0, VfConfig::default()).unwrap();
        if let Mode::Every(_) = mode {
            let mut nic = model.nic();
            nic.pf_write(PfReg::HACCTL, 1);
            nic.pf_write(PfReg::HACTAG, 1);
            nic.pf_write(PfReg::HACLIMF(0), u32::MAX);
            nic.pf_write(PfReg::HACLIMB(0), u32::MAX);
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
            nic.pf_write(PfReg::HACARG, self.epoch + 1);
            nic.pf_write(PfReg::HACCMD, OPEN);
            nic.pf_write(PfReg::HACARG, self.epoch);
            nic.pf_write(PfReg::HACCMD, COMMIT);
            self.epoch += 1;
            self.next_commit += p;
            self.commits += 1;
        }
    }
}

/// Runs `path` until its next commit (HAC on) or for `batches` batches (HAC off); returns
/// (frames accepted, host time).
fn chunk(path: &mut Path, batches: u64) -> (u64, Duration, u64) {
    let (sent0, c0) = (path.sent, path.commits);
    let start = Instant::now();
    let mut n = 0;
    match path.mode {
        Mode::Off => {
            while n < batches {
                path.batch();
                n += 1;
            }
        }
        Mode::Every(_) => {
            while path.commits == c0 {
                path.batch();
                n += 1;
            }
        }
    }
    (path.sent - sent0, start.elapsed(), n)
}

/// Paired measurement, so both modes see the same machine load: the HAC-on path runs one whole
/// commit period (ending right after its commit, so frames held at the start and at the end of
/// each chunk balance out), then the HAC-off path runs the same number of batches; repeated
/// until at least 2 periods and 3 s of host time. Returns (off Mpps, on Mpps, periods).
fn paired(len: usize, period_ns: u64) -> (f64, f64, u64, String) {
    let mut off = Path::new(len, Mode::Off);
    let mut on = Path::new(len, Mode::Every(period_ns));
    // Warm-up: the on path up to its first commit, the off path as many batches.
    let (_, _, n) = chunk(&mut on, 0);
    chunk(&mut off, n);
    let (mut f_on, mut t_on, mut f_off, mut t_off, mut periods) =
        (0u64, Duration::ZERO, 0u64, Duration::ZERO, 0u64);
    let start = Instant::now();
    while periods < 2 || start.elapsed() < Duration::from_secs(3) {
        let (f, t, n) = chunk(&mut on, 0);
        f_on += f;
        t_on += t;
        let (f, t, _) = chunk(&mut off, n);
        f_off += f;
        t_off += t;
        periods += 1;
    }
    let wire_on = on.model.nic().wire_totals().0;
    let wire_off = off.model.nic().wire_totals().0;
    assert!(wire_on > 0 && wire_on <= on.sent, "frames reached the wire");
    assert!(
        wire_off > 0 && wire_off <= off.sent,
        "frames reached the wire"
    );
    let detail = format!(
        "{periods} periods, on: {f_on} frames in {:.2} s (wire {wire_on} of {}), \
         off: {f_off} frames in {:.2} s",
        t_on.as_secs_f64(),
        on.sent,
        t_off.as_secs_f64()
    );
    (
        f_off as f64 / t_off.as_secs_f64() / 1e6,
        f_on as f64 / t_on.as_secs_f64() / 1e6,
        periods,
        detail,
    )
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mut summary = Vec::new();
    for len in [60usize, 1514] {
        for period in [1_000_000u64, 25_000_000] {
            let name = format!("{}B/{}", len + 4, Mode::Every(period).name());
            if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            let (off, on, _, detail) = paired(len, period);
            let gbps = |mpps: f64| mpps * 1e6 * (len as f64 + 4.0) * 8.0 / 1e9;
            let line = format!(
                "driver path {:5} B  commit every {:2} ms: HAC on {:5.2} Mpps ({:5.1} Gb/s, {:6.1} ns/frame) \
                 | HAC off {:5.2} Mpps ({:5.1} Gb/s, {:6.1} ns/frame) | on = {:5.1} % of off  [{detail}]",
                len + 4,
                period / 1_000_000,
                on,
                gbps(on),
                1e3 / on,
                off,
                gbps(off),
                1e3 / off,
                100.0 * on / off,
            );
            println!("{line}");
            summary.push(line);
        }
    }
    println!(
        "\n==== driver path summary (batch 32, 100 Gb/s wire, sender at line rate in virtual time) ===="
    );
    for s in &summary {
        println!("{s}");
    }
}

//! The model's data path without the driver crate: the test ring driver (`testing::VfRings`)
//! writes descriptors and frames into DMA memory, rings TDT, and the model runs TX engine →
//! switch → egress/HAC → wire. Batch 32, 100 Gb/s virtual wire, virtual time advanced by the
//! batch's wire time (the sender runs at exactly line rate in virtual time).
//!
//! Run: `cargo bench -p nic-model --bench model_path [-- FILTER]` (FILTER e.g. `64B`). Not
//! criterion, for the reason given in driver/benches/model_path.rs: whole commit periods are
//! timed. This isolates the model's own cost from
//! the driver's (`cargo bench -p hac-driver --bench model_path` is the full path).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use igb_model::igb_hw::MacAddress;
use igb_model::igb_hw::regs::PfReg;
use igb_model::testing::{VfRings, bring_up, udp_frame, vf_mac};
use igb_model::{LineRate, Nic, NicConfig};

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
    nic: Nic,
    rings: VfRings,
    frame: Vec<u8>,
    batch_ns: u64,
    mode: Mode,
    epoch: u32,
    next_commit: u64,
    sent: u64,
    commits: u64,
}

impl Path {
    fn new(len: usize, mode: Mode) -> Path {
        let cfg = NicConfig {
            line_rate: LineRate::G100,
            ..NicConfig::default()
        };
        let mut nic = bring_up(1, cfg);
        if let Mode::Every(p) = mode {
            nic.pf_write(PfReg::HACCTL, 1);
            nic.pf_write(PfReg::HACTAG, 1);
            nic.pf_write(PfReg::HACLIMF(0), u32::MAX);
            nic.pf_write(PfReg::HACLIMB(0), u32::MAX);
            let _ = p;
        }
        let rings = VfRings::new(&mut nic, 0, 512, 8);
        let batch_ns = BATCH as u64 * LineRate::G100.frame_time_ns(len);
        let next_commit = match mode {
            Mode::Off => u64::MAX,
            Mode::Every(p) => p,
        };
        Path {
            nic,
            rings,
            frame: udp_frame(PEER, vf_mac(0), 0, len),
            batch_ns,
            mode,
            epoch: 1,
            next_commit,
            sent: 0,
            commits: 0,
        }
    }

    fn hac(&mut self, op: u32, epoch: u32) {
        self.nic.pf_write(PfReg::HACARG, epoch);
        self.nic.pf_write(PfReg::HACCMD, op);
    }

    /// One batch: 32 descriptors + one doorbell, then the device runs for the batch's wire time.
    fn batch(&mut self) {
        for _ in 0..BATCH {
            self.rings.queue(&self.frame);
        }
        self.rings.doorbell(&mut self.nic);
        self.nic.advance_by(self.batch_ns);
        self.sent += BATCH as u64;
        if let Mode::Every(p) = self.mode
            && self.nic.now().as_nanos() >= self.next_commit
        {
            self.hac(OPEN, self.epoch + 1);
            self.hac(COMMIT, self.epoch);
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
    let wire_on = on.nic.wire_totals().0;
    let wire_off = off.nic.wire_totals().0;
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
                "model path {:5} B  commit every {:2} ms: HAC on {:5.2} Mpps ({:5.1} Gb/s, {:6.1} ns/frame) \
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
        "\n==== model path summary (batch 32, 100 Gb/s wire, sender at line rate in virtual time) ===="
    );
    for s in &summary {
        println!("{s}");
    }
}

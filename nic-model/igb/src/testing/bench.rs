//! The paired HAC-on / HAC-off throughput measurement both model-path benches use (the model
//! with the test ring driver in `igb-model`, and with the real driver in `hac-driver`).
//!
//! Not criterion: a 25 ms epoch of 64 B frames at 100 Gb/s is ~3.6 M frames, seconds of host
//! time, so criterion's samples would cut through epochs (frames held at the end of a sample
//! would never be paid for). [`paired`] times whole commit periods instead, each followed by a
//! HAC-off chunk of the same number of batches, so both modes see the same machine load.

use std::time::{Duration, Instant};

use igb_hw::regs::{HACCMD, HACCTL, PfReg, value};

use crate::Nic;

/// Frames per batch (one doorbell).
pub const BATCH: usize = 32;

/// What a path measures.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// HAC disabled.
    Off,
    /// HAC on, VF 0 checkpointing, commit every `n` ns of virtual time.
    Every(u64),
}

impl Mode {
    /// The name filters match (`hac_off`, `hac_on_commit_1ms`).
    pub fn name(self) -> String {
        match self {
            Mode::Off => "hac_off".into(),
            Mode::Every(ns) => format!("hac_on_commit_{}ms", ns / 1_000_000),
        }
    }
}

/// One data path under test.
pub trait BenchPath {
    /// Sends one batch and runs the device for its wire time; commits when one is due.
    fn batch(&mut self);
    /// The path's mode.
    fn mode(&self) -> Mode;
    /// Frames accepted so far.
    fn sent(&self) -> u64;
    /// Commits done so far.
    fn commits(&self) -> u64;
    /// Frames the wire has sent.
    fn wire_frames(&self) -> u64;
}

/// Turns the HAC block on for VF 0 with the buffer limits at the maximum, so a 25 ms epoch at
/// 100 Gb/s is held without backpressure.
pub fn hac_on_for_vf0(nic: &mut Nic) {
    nic.pf_write(PfReg::HACCTL, value(HACCTL::ENABLE::SET));
    nic.pf_write(PfReg::HACTAG, 1);
    nic.pf_write(PfReg::HACLIMF(0), u32::MAX);
    nic.pf_write(PfReg::HACLIMB(0), u32::MAX);
}

/// Opens epoch `epoch + 1` of VF 0 and commits `epoch`: two PF register writes per command
/// (HACARG, HACCMD).
pub fn open_next_and_commit(nic: &mut Nic, epoch: u32) {
    nic.pf_write(PfReg::HACARG, epoch + 1);
    nic.pf_write(PfReg::HACCMD, value(HACCMD::OP::OpenEpoch));
    nic.pf_write(PfReg::HACARG, epoch);
    nic.pf_write(PfReg::HACCMD, value(HACCMD::OP::Commit));
}

/// Runs `path` until its next commit (HAC on) or for `batches` batches (HAC off); returns
/// (frames accepted, host time, batches run).
pub fn chunk<P: BenchPath>(path: &mut P, batches: u64) -> (u64, Duration, u64) {
    let (sent0, c0) = (path.sent(), path.commits());
    let start = Instant::now();
    let mut n = 0;
    match path.mode() {
        Mode::Off => {
            while n < batches {
                path.batch();
                n += 1;
            }
        }
        Mode::Every(_) => {
            while path.commits() == c0 {
                path.batch();
                n += 1;
            }
        }
    }
    (path.sent() - sent0, start.elapsed(), n)
}

/// Paired measurement, so both modes see the same machine load: the HAC-on path runs one whole
/// commit period (ending right after its commit, so frames held at the start and at the end of
/// each chunk balance out), then the HAC-off path runs the same number of batches; repeated
/// until at least 2 periods and 3 s of host time. Returns (off Mpps, on Mpps, periods, detail).
pub fn paired<P: BenchPath>(mut off: P, mut on: P) -> (f64, f64, u64, String) {
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
    let (wire_on, wire_off) = (on.wire_frames(), off.wire_frames());
    assert!(
        wire_on > 0 && wire_on <= on.sent(),
        "frames reached the wire"
    );
    assert!(
        wire_off > 0 && wire_off <= off.sent(),
        "frames reached the wire"
    );
    let detail = format!(
        "{periods} periods, on: {f_on} frames in {:.2} s (wire {wire_on} of {}), \
         off: {f_off} frames in {:.2} s",
        t_on.as_secs_f64(),
        on.sent(),
        t_off.as_secs_f64()
    );
    (
        f_off as f64 / t_off.as_secs_f64() / 1e6,
        f_on as f64 / t_on.as_secs_f64() / 1e6,
        periods,
        detail,
    )
}

/// The bench's `main`: 64 B and 1518 B frames (60 / 1514 B + FCS) × 1 ms and 25 ms commits,
/// filtered by the non-flag command-line arguments (e.g. `64B`, `1518B/hac_on_commit_1ms`),
/// each a [`paired`] run of `new(frame_len, Mode::Off)` against `new(frame_len, Mode::Every)`;
/// prints one line per run and a summary. `label` names the path ("model path", "driver path").
pub fn run_matrix<P: BenchPath>(label: &str, new: impl Fn(usize, Mode) -> P) {
    run_matrix_with_bound(label, new, None);
}

/// [`run_matrix`] with a bound: `bound(frame_len)` measures the bare per-frame loop's Mpps in
/// the same run (just before each pair), and every line shows HAC on and HAC off as a ratio
/// of it.
pub fn run_matrix_with_bound<P: BenchPath>(
    label: &str,
    new: impl Fn(usize, Mode) -> P,
    bound: Option<&dyn Fn(usize) -> f64>,
) {
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
            let bound_mpps = bound.map(|b| b(len));
            let (off, on, _, detail) = paired(new(len, Mode::Off), new(len, Mode::Every(period)));
            let bound_text = bound_mpps.map_or(String::new(), |b| {
                format!(
                    " | bound {b:6.1} Mpps: on = {:5.2} %, off = {:5.2} % of bound",
                    100.0 * on / b,
                    100.0 * off / b
                )
            });
            let gbps = |mpps: f64| mpps * 1e6 * (len as f64 + 4.0) * 8.0 / 1e9;
            let line = format!(
                "{label} {:5} B  commit every {:2} ms: HAC on {:5.2} Mpps ({:5.1} Gb/s, {:6.1} ns/frame) \
                 | HAC off {:5.2} Mpps ({:5.1} Gb/s, {:6.1} ns/frame) | on = {:5.1} % of off{bound_text}  [{detail}]",
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
        "\n==== {label} summary (batch {BATCH}, 100 Gb/s wire, sender at line rate in virtual time) ===="
    );
    for s in &summary {
        println!("{s}");
    }
}

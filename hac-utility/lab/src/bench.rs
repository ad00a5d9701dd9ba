//! `hac-lab bench`: the same output-commit workload through Linux `sch_plug` (in User-Mode Linux,
//! with a Remus-style controller) and through HAC on the built-in model, in one run, one table.
//!
//! Data flow: [`matrix`] lists the cases (frame size, sender, epoch interval, ack delay). The
//! peer runs all of them in one UML boot (`scripts/plug/peer.sh`, helper `plugpeer.c`) and leaves
//! per-frame records; the model runs each case as a [`Scenario`] through [`engine::run`]. Both
//! are reduced to one [`Trace`] shape (delivered frames with their epoch, submit and arrival
//! times; commits; submitted and lost counts) and measured by one function, [`analyse`], so both
//! sides are judged by the same definitions. [`write_outputs`] writes `table.md`, `table.json`
//! and the delay-CDF plots.
//!
//! Clocks: the model runs in *virtual* time (the modelled adapter and a 10 Gb/s wire; host speed
//! does not enter), the peer in *wall* time inside UML (one virtual CPU, slow system calls).
//! Latencies of the two are therefore not the same kind of number; docs/performance.md says
//! what each means.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use hac_utility::engine::{self, Outcome, RunResult};
use hac_utility::plot;
use hac_utility::report::{LatencyHistogram, Percentiles};
use hac_utility::scenario::{AckDelay, Scenario, VfSpec};

/// Frames per 20 µs step the engine's generator hands to the driver at most (engine.rs).
const ENGINE_BATCH_PER_STEP: f64 = 64.0;
/// The engine's TX ring size per VF (engine.rs): frames that may sit in it, not yet fetched.
const ENGINE_TX_RING: u64 = 512;

/// One row of the table: a workload point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Case {
    /// Short name, also the peer's result directory.
    pub name: String,
    /// Frame length without FCS: 60 ("64 B" on the wire) or 1514 ("1500 B", MTU 1500).
    pub frame_len: usize,
    /// Saturating sender (always a frame ready) rather than paced.
    pub saturate: bool,
    /// Checkpoint interval, ms.
    pub epoch_ms: f64,
    /// Backup acknowledgement delay, ms.
    pub ack_ms: f64,
    /// Buffer limit, bytes (sch_plug's `limit`, HAC's HACLIMB).
    pub limit_bytes: u32,
    /// What the peer is expected to show here (checked with `--check`).
    pub expect: Expect,
}

/// The peer behaviour a case is there to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Nothing in particular.
    Nothing,
    /// Several epochs open at once (ack > epoch) with a saturating sender: RELEASE_ONE lets
    /// frames of a newer epoch out.
    PeerViolation,
    /// A small byte limit: sch_plug drops.
    PeerDrops,
}

/// What every case shares.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// Paced sender's rate, frames/s (both sides).
    pub paced_fps: f64,
    /// Background (unprotected) flow, frames/s, same frame size.
    pub background_fps: f64,
    /// Peer run per case, wall ms.
    pub peer_duration_ms: u64,
    /// Model run per case, virtual ms.
    pub model_duration_ms: u64,
    /// The model's wire.
    pub port_rate: String,
}

impl Workload {
    /// The full run (about 2 min) or the short CI run.
    pub fn new(short: bool) -> Workload {
        Workload {
            paced_fps: 20_000.0,
            background_fps: 2_000.0,
            peer_duration_ms: if short { 400 } else { 1000 },
            model_duration_ms: if short { 100 } else { 300 },
            port_rate: "10G".into(),
        }
    }
}

/// Default buffer limit, bytes: HAC's default HACLIMB (4 MiB), also given to sch_plug.
pub const DEFAULT_LIMIT: u32 = 4 << 20;
/// The small limit of the drop case.
pub const SMALL_LIMIT: u32 = 64 << 10;

/// The cases: 64 and 1500 B × paced and saturating × epochs 1, 5, 25 ms × acks 0, 5 ms, and a
/// small-limit case; `short`: the three cases CI checks.
pub fn matrix(short: bool) -> Vec<Case> {
    let case = |len: usize, saturate: bool, epoch_ms: f64, ack_ms: f64, limit: u32| {
        let expect = if limit != DEFAULT_LIMIT {
            Expect::PeerDrops
        } else if saturate && ack_ms > epoch_ms {
            Expect::PeerViolation
        } else {
            Expect::Nothing
        };
        Case {
            name: format!(
                "{}-{}-e{}-a{}{}",
                if len < 100 { 64 } else { 1500 },
                if saturate { "sat" } else { "paced" },
                epoch_ms,
                ack_ms,
                if limit == DEFAULT_LIMIT {
                    String::new()
                } else {
                    format!("-limit{}k", limit >> 10)
                }
            ),
            frame_len: len,
            saturate,
            epoch_ms,
            ack_ms,
            limit_bytes: limit,
            expect,
        }
    };
    if short {
        return vec![
            case(60, false, 5.0, 0.0, DEFAULT_LIMIT),
            case(60, true, 1.0, 5.0, DEFAULT_LIMIT),
            case(1514, true, 25.0, 5.0, SMALL_LIMIT),
        ];
    }
    let mut v = Vec::new();
    for len in [60, 1514] {
        for saturate in [false, true] {
            for epoch in [1.0, 5.0, 25.0] {
                for ack in [0.0, 5.0] {
                    v.push(case(len, saturate, epoch, ack, DEFAULT_LIMIT));
                }
            }
        }
    }
    v.push(case(1514, true, 25.0, 5.0, SMALL_LIMIT));
    v
}

/// Which flow a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// The checkpointed VM's frames (held until their epoch commits).
    Protected,
    /// The background flow (never held).
    Background,
}

/// One delivered frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceFrame {
    /// Its flow.
    pub flow: Flow,
    /// The epoch the sender produced it in (protected flow; 0 otherwise).
    pub epoch: u32,
    /// When the sender handed it over, ns.
    pub submit_ns: u64,
    /// When it left the buffer onto the wire (model) / arrived at the veth peer (UML), ns.
    pub rx_ns: u64,
    /// Delivered only by the final release of everything (peer: RELEASE_INDEFINITE after the
    /// last commit): it was stranded after its commit.
    pub stranded: bool,
}

/// One side's run, reduced to what [`analyse`] measures.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The run's window (senders active), ns.
    pub start_ns: u64,
    /// End of the window, ns.
    pub end_ns: u64,
    /// Start of the steady state: the window's start plus one epoch and one ack delay (nothing
    /// can be delivered before the first commit). Rates count from here.
    pub steady_ns: u64,
    /// Delivered frames.
    pub frames: Vec<TraceFrame>,
    /// Commits in order: (epoch, time ns); a commit of e covers every epoch ≤ e.
    pub commits: Vec<(u32, u64)>,
    /// Frames submitted: protected, background.
    pub submitted: [u64; 2],
    /// Frames lost: protected, background (never delivered, not discarded by an abort).
    pub lost: [u64; 2],
    /// Frames the sender could not hand over: the model's backpressure backlog (kept, sent
    /// later) or the frames sch_plug refused with ENOBUFS (dropped).
    pub refused: u64,
    /// Frames whose adapter stamp was an earlier epoch than the one they were produced in
    /// (model only; counted as violations).
    pub stamp_mismatch: u64,
}

/// The measured columns of one side.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Protected frames delivered in the steady part of the window (after the first epoch and
    /// ack), per second of the side's clock.
    pub delivered_fps: f64,
    /// Background frames delivered within the window, per second.
    pub background_fps: f64,
    /// Added delay (delivered − submitted) of protected frames.
    pub delay_protected: Percentiles,
    /// Added delay of background frames.
    pub delay_background: Percentiles,
    /// Commit to the first frame of the epochs it covers, per commit that released frames.
    pub commit_to_first: Percentiles,
    /// Commit to the last frame of the epochs it covers.
    pub commit_to_last: Percentiles,
    /// Protected frames submitted.
    pub submitted: u64,
    /// Protected frames lost (dropped, silently for the VM).
    pub drops: u64,
    /// Background frames lost.
    pub background_drops: u64,
    /// Protected frames delivered before the commit of their epoch.
    pub violations: u64,
    /// Protected frames delivered only by the final release-everything (stranded after their
    /// commit).
    pub stranded: u64,
    /// See [`Trace::refused`].
    pub refused: u64,
    /// Commits.
    pub commits: u64,
}

/// Measures a trace: the one definition of every column, for both sides.
pub fn analyse(t: &Trace) -> Metrics {
    let from = t.steady_ns.max(t.start_ns);
    let window_s = (t.end_ns.saturating_sub(from)) as f64 / 1e9;
    let (mut dp, mut db) = (LatencyHistogram::new(), LatencyHistogram::new());
    let (mut in_window, mut bg_in_window, mut violations, mut stranded) = (0u64, 0u64, 0u64, 0u64);
    let mut first: HashMap<usize, u64> = HashMap::new();
    let mut last: HashMap<usize, u64> = HashMap::new();
    for f in &t.frames {
        let inside = f.rx_ns >= from && f.rx_ns <= t.end_ns;
        match f.flow {
            Flow::Background => {
                bg_in_window += u64::from(inside);
                db.record(f.rx_ns.saturating_sub(f.submit_ns));
            }
            Flow::Protected => {
                in_window += u64::from(inside);
                // The first commit covering this epoch (commits are in epoch order).
                let k = t.commits.partition_point(|&(e, _)| e < f.epoch);
                let commit = t.commits.get(k).map(|&(_, at)| at);
                if commit.is_none_or(|c| f.rx_ns < c) {
                    violations += 1;
                } else if f.stranded {
                    stranded += 1;
                } else if let Some(c) = commit {
                    let d = f.rx_ns - c;
                    let e = first.entry(k).or_insert(u64::MAX);
                    *e = (*e).min(d);
                    let e = last.entry(k).or_insert(0);
                    *e = (*e).max(d);
                }
                if !f.stranded {
                    dp.record(f.rx_ns.saturating_sub(f.submit_ns));
                }
            }
        }
    }
    let c2f: LatencyHistogram = first.into_values().collect();
    let c2l: LatencyHistogram = last.into_values().collect();
    Metrics {
        delivered_fps: in_window as f64 / window_s.max(1e-9),
        background_fps: bg_in_window as f64 / window_s.max(1e-9),
        delay_protected: dp.percentiles(),
        delay_background: db.percentiles(),
        commit_to_first: c2f.percentiles(),
        commit_to_last: c2l.percentiles(),
        submitted: t.submitted[0],
        drops: t.lost[0],
        background_drops: t.lost[1],
        violations: violations + t.stamp_mismatch,
        stranded,
        refused: t.refused,
        commits: t.commits.len() as u64,
    }
}

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The model run failed.
    #[error("model, case {case}: {source}")]
    Engine {
        /// The case.
        case: String,
        /// Why.
        source: engine::EngineError,
    },
    /// The scenario built for a case is invalid (a bug in the matrix).
    #[error("model, case {case}: {message}")]
    Scenario {
        /// The case.
        case: String,
        /// What the scenario check said.
        message: String,
    },
    /// The peer could not run (UML, the helper, the script).
    #[error("sch_plug peer: {0}")]
    Peer(String),
    /// A peer result file is missing or malformed.
    #[error("sch_plug peer result {path}: {problem}")]
    PeerResult {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Writing the outputs failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Drawing the plots failed.
    #[error("plot: {0}")]
    Plot(#[from] plot::PlotError),
}

/// The scenario that runs `case` on the model: VF 0 checkpointing (the protected VM), VF 1
/// plain (the background flow), one frame size, a fixed ack delay.
pub fn scenario(case: &Case, w: &Workload) -> Scenario {
    let mbps = |fps: f64| fps * case.frame_len as f64 * 8.0 / 1e6;
    let protected_fps = if case.saturate {
        // Always a frame ready: 10 % above what the engine can hand over (64 frames per
        // 20 µs step) or the wire can carry, whichever is lower.
        let line = w
            .port_rate
            .parse::<igb_model::LineRate>()
            .unwrap_or_default();
        let wire_fps = line.bits_per_sec() as f64 / ((case.frame_len + 4 + 20) as f64 * 8.0);
        let engine_fps = ENGINE_BATCH_PER_STEP * 1e9 / engine::STEP_NS as f64;
        wire_fps.min(engine_fps) * 1.1
    } else {
        w.paced_fps
    };
    let vf = |checkpointing: bool, fps: f64| VfSpec {
        checkpointing,
        rate_mbps: mbps(fps),
        pattern: "constant".into(),
        burst_frames: 1,
        min_frame: case.frame_len,
        max_frame: case.frame_len,
        limit_frames: (case.limit_bytes / 60).max(1),
        limit_bytes: case.limit_bytes,
    };
    Scenario {
        name: format!("bench {}", case.name),
        seed: 1,
        duration_ms: w.model_duration_ms,
        family: hac_utility::scenario::Family::Igb,
        port_rate: w.port_rate.clone(),
        epoch_ms: case.epoch_ms,
        ack_delay: AckDelay {
            min_ms: case.ack_ms,
            max_ms: case.ack_ms,
        },
        guard_bytes: 64 * 1024,
        vf: vec![vf(true, protected_fps), vf(false, w.background_fps)],
        event: vec![],
    }
}

/// Reduces a model run to a [`Trace`]. The protected frames' epoch is the one open when the
/// driver accepted them (the VM's truth, from the checkpoint schedule); the adapter's own stamp
/// must not be earlier (else it counts as a violation).
pub fn model_trace(r: &RunResult) -> Trace {
    let start = r.frames.iter().map(|f| f.submit_ns).min().unwrap_or(0);
    let epoch_ns = ((r.scenario.epoch_ms * 1e6) as u64).max(1);
    let mut t = Trace {
        start_ns: start,
        end_ns: start + r.virtual_ns,
        steady_ns: start + epoch_ns + (r.scenario.ack_delay.max_ms * 1e6) as u64,
        refused: r.backlog.first().copied().unwrap_or(0),
        ..Trace::default()
    };
    t.commits = r
        .markers
        .iter()
        .filter(|m| m.vf == 0 && m.kind == "commit")
        .map(|m| (m.epoch, m.at_ns))
        .collect();
    let (mut held_with_epoch, mut in_ring) = ([0u64; 2], [0u64; 2]);
    for f in &r.frames {
        let i = usize::from(f.vf.min(1));
        t.submitted[i] += 1;
        let flow = if f.vf == 0 {
            Flow::Protected
        } else {
            Flow::Background
        };
        let epoch = if flow == Flow::Protected {
            1 + ((f.submit_ns - start) / epoch_ns) as u32
        } else {
            0
        };
        if flow == Flow::Protected && f.epoch.is_some_and(|s| s < epoch) {
            t.stamp_mismatch += 1;
        }
        match (f.outcome, f.wire_ns) {
            (Outcome::Sent, Some(w)) => t.frames.push(TraceFrame {
                flow,
                epoch,
                submit_ns: f.submit_ns,
                rx_ns: w,
                stranded: false,
            }),
            (Outcome::Buffered, _) if f.epoch.is_some() => held_with_epoch[i] += 1,
            (Outcome::Buffered, _) => in_ring[i] += 1,
            _ => {}
        }
    }
    // Not on the wire at the end: the adapter must account for each one (HACBUFF), and at most
    // a ring's worth may still be in the TX ring. Anything beyond is lost.
    let hac_buffered = u64::from(r.hac.first().map_or(0, |h| h.buffered_frames));
    t.lost[0] =
        held_with_epoch[0].saturating_sub(hac_buffered) + in_ring[0].saturating_sub(ENGINE_TX_RING);
    // The plain VF's frames in the egress stage have no epoch and no HAC counter: allow a ring
    // plus the egress FIFO's worth (the wire drains it within microseconds).
    t.lost[1] = (held_with_epoch[1] + in_ring[1]).saturating_sub(2 * ENGINE_TX_RING);
    t
}

/// Runs `case` on the model.
pub fn run_model(case: &Case, w: &Workload) -> Result<(Trace, RunResult), BenchError> {
    let s = scenario(case, w);
    s.validate("bench").map_err(|e| BenchError::Scenario {
        case: case.name.clone(),
        message: e.to_string(),
    })?;
    let r = engine::run(&s, None, &mut |_| {}).map_err(|source| BenchError::Engine {
        case: case.name.clone(),
        source,
    })?;
    Ok((model_trace(&r), r))
}

/// The peer's jobs file (scripts/plug/uml-init.sh's format).
pub fn peer_jobs(cases: &[Case], w: &Workload) -> String {
    let mut s = String::from("# name size mode rate bg epoch_us ack_us duration_ms limit\n");
    for c in cases {
        s += &format!(
            "{} {} {} {} {} {} {} {} {}\n",
            c.name,
            c.frame_len,
            if c.saturate { "saturate" } else { "paced" },
            if c.saturate { 0.0 } else { w.paced_fps },
            w.background_fps,
            (c.epoch_ms * 1000.0) as u64,
            (c.ack_ms * 1000.0) as u64,
            w.peer_duration_ms,
            c.limit_bytes
        );
    }
    s
}

/// Runs every case on the peer: `plug_dir/peer.sh out jobs`.
pub fn run_peer(
    plug_dir: &Path,
    out: &Path,
    cases: &[Case],
    w: &Workload,
) -> Result<(), BenchError> {
    std::fs::create_dir_all(out).map_err(|source| BenchError::Write {
        path: out.into(),
        source,
    })?;
    let jobs = out.join("jobs.txt");
    std::fs::write(&jobs, peer_jobs(cases, w)).map_err(|source| BenchError::Write {
        path: jobs.clone(),
        source,
    })?;
    let script = plug_dir.join("peer.sh");
    let status = Command::new(&script)
        .arg(out)
        .arg(&jobs)
        .status()
        .map_err(|e| BenchError::Peer(format!("cannot run {}: {e}", script.display())))?;
    if !status.success() {
        return Err(BenchError::Peer(format!(
            "{} exited with {status} (run scripts/plug/setup.sh first; UML log in {}/uml.stderr)",
            script.display(),
            out.display()
        )));
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, BenchError> {
    std::fs::read(path).map_err(|e| BenchError::PeerResult {
        path: path.into(),
        problem: e.to_string(),
    })
}

/// Peer's per-run facts (its meta.json and qdisc.json).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PeerFacts {
    /// Drops counted by the plug qdisc (`tc -s`).
    pub qdisc_drops: u64,
    /// Mean time of one rtnetlink plug operation (send + ack), ns.
    pub netlink_mean_ns: u64,
    /// Slowest one, ns.
    pub netlink_max_ns: u64,
    /// Checkpoints the loop started more than an epoch late.
    pub late_checkpoints: u64,
    /// Frames the receiving socket dropped (must be 0 for the figures to hold).
    pub rx_socket_drops: u64,
}

/// Reads one peer case directory (plugpeer.c's outputs).
pub fn peer_trace(dir: &Path) -> Result<(Trace, PeerFacts), BenchError> {
    let bad = |path: &Path, problem: String| BenchError::PeerResult {
        path: path.into(),
        problem,
    };
    let status_path = dir.join("status");
    let status = String::from_utf8_lossy(&read(&status_path)?)
        .trim()
        .to_string();
    if status != "0" {
        let stdout = String::from_utf8_lossy(&read(&dir.join("stdout")).unwrap_or_default())
            .trim()
            .to_string();
        return Err(bad(
            &status_path,
            format!("plugpeer exited {status}: {stdout}"),
        ));
    }
    let meta_path = dir.join("meta.json");
    let meta: serde_json::Value =
        serde_json::from_slice(&read(&meta_path)?).map_err(|e| bad(&meta_path, e.to_string()))?;
    let num = |k: &str| -> Result<u64, BenchError> {
        meta.get(k)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad(&meta_path, format!("no number {k}")))
    };
    let pair = |k: &str| -> Result<[u64; 2], BenchError> {
        let a = meta.get(k).and_then(serde_json::Value::as_array);
        match a.map(|a| {
            (
                a.first().and_then(|v| v.as_u64()),
                a.get(1).and_then(|v| v.as_u64()),
            )
        }) {
            Some((Some(x), Some(y))) => Ok([x, y]),
            _ => Err(bad(&meta_path, format!("no pair {k}"))),
        }
    };
    let sent = pair("sent")?;
    let refused = pair("refused")?;
    let mut t = Trace {
        start_ns: num("start_ns")?,
        end_ns: num("end_ns")?,
        steady_ns: num("start_ns")? + num("epoch_ns")? + num("ack_ns")?,
        submitted: sent,
        refused: refused[0],
        ..Trace::default()
    };
    let frames_path = dir.join("frames.bin");
    let bytes = read(&frames_path)?;
    if bytes.len() % 32 != 0 {
        return Err(bad(
            &frames_path,
            format!("{} bytes: not 32-byte records", bytes.len()),
        ));
    }
    let mut seen = [
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    ];
    for r in bytes.chunks_exact(32) {
        let u32_at = |o: usize| u32::from_le_bytes([r[o], r[o + 1], r[o + 2], r[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        let (seq, flow) = (u32_at(0), r[24]);
        let i = usize::from(flow.min(1));
        if !seen[i].insert(seq) {
            continue; // a duplicate would be a harness fault; count each frame once
        }
        t.frames.push(TraceFrame {
            flow: if flow == 0 {
                Flow::Protected
            } else {
                Flow::Background
            },
            epoch: u32_at(4),
            submit_ns: u64_at(8),
            rx_ns: u64_at(16),
            stranded: r[25] == 2,
        });
    }
    t.lost = [
        sent[0].saturating_sub(seen[0].len() as u64),
        sent[1].saturating_sub(seen[1].len() as u64),
    ];
    let commits_path = dir.join("commits.csv");
    let text = String::from_utf8_lossy(&read(&commits_path)?).to_string();
    for line in text.lines().skip(1) {
        let mut it = line.split(',');
        let (Some(e), Some(_), Some(c)) = (it.next(), it.next(), it.next()) else {
            return Err(bad(&commits_path, format!("bad line {line:?}")));
        };
        match (e.parse::<u32>(), c.parse::<u64>()) {
            (Ok(e), Ok(c)) => t.commits.push((e, c)),
            _ => return Err(bad(&commits_path, format!("bad line {line:?}"))),
        }
    }
    let qdisc_drops = std::fs::read(dir.join("qdisc.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get(0)?.get("drops")?.as_u64())
        .unwrap_or(0);
    let facts = PeerFacts {
        qdisc_drops,
        netlink_mean_ns: num("netlink_mean_ns")?,
        netlink_max_ns: num("netlink_max_ns")?,
        late_checkpoints: num("late_checkpoints")?,
        rx_socket_drops: num("rx_socket_drops")?,
    };
    Ok((t, facts))
}

/// One row: a case measured on both sides.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The case.
    pub case: Case,
    /// HAC on the model (virtual time).
    pub hac: Metrics,
    /// sch_plug in UML (wall time); `None` when the peer was skipped.
    pub sch_plug: Option<Metrics>,
    /// Peer facts.
    pub sch_plug_facts: Option<PeerFacts>,
    /// The model's own speed: frames through the model per wall second.
    pub model_frames_per_wall_sec: f64,
}

/// us / them, `None` when undefined.
pub fn ratio(us: f64, them: f64) -> Option<f64> {
    (them > 0.0).then(|| us / them)
}

fn fmt_fps(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_ns(ns: u64) -> String {
    plot::format_ns(ns as f64)
}

fn cell(us: f64, them: Option<f64>, fmt: &dyn Fn(f64) -> String) -> String {
    match them {
        None => format!("{} / –", fmt(us)),
        Some(t) => match ratio(us, t) {
            Some(r) => format!("{} / {} ({})", fmt(us), fmt(t), fmt_ratio(r)),
            None => format!("{} / {}", fmt(us), fmt(t)),
        },
    }
}

fn fmt_ratio(r: f64) -> String {
    if r == 0.0 {
        "0".into()
    } else if r < 0.01 {
        format!("{r:.1e}")
    } else {
        format!("{r:.2}")
    }
}

/// The markdown table (also what `hac-lab bench` prints).
pub fn markdown(rows: &[Row], w: &Workload) -> String {
    let mut s = String::new();
    s += "Each cell: HAC on the model / sch_plug in UML (ratio us/them). The model's times are \
          virtual (modelled adapter, 10 Gb/s wire); sch_plug's are wall-clock times inside \
          User-Mode Linux (1 vCPU). Delays: p50 and p99 of (delivered − submitted); commit→first/\
          last: p50 over commits. Ratio < 1 is better for us in latency columns, > 1 in rate \
          columns.\n\n";
    s += &format!(
        "Workload: paced sender {} frames/s, background flow {} frames/s (same frame size, never \
         buffered), saturating sender = always a frame ready; {} ms per case on the model \
         (virtual), {} ms on the peer (wall); buffer limit 4 MiB on both sides unless the case \
         says otherwise.\n\n",
        w.paced_fps, w.background_fps, w.model_duration_ms, w.peer_duration_ms
    );
    s += "| case | delivered frames/s | protected delay p50 | protected delay p99 | background \
          delay p50 | background delay p99 | commit→first p50 | commit→last p50 | drops | \
          violations |\n";
    s += "|---|---|---|---|---|---|---|---|---|---|\n";
    let ns = |v: f64| fmt_ns(v as u64);
    let count = |v: f64| format!("{v:.0}");
    for r in rows {
        let h = &r.hac;
        let p = r.sch_plug.as_ref();
        let col =
            |f: &dyn Fn(&Metrics) -> f64, fmt: &dyn Fn(f64) -> String| cell(f(h), p.map(f), fmt);
        let counts = |f: &dyn Fn(&Metrics) -> u64| match p {
            Some(p) => format!("{} / {}", f(h), f(p)),
            None => format!("{} / –", f(h)),
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.case.name,
            col(&|m| m.delivered_fps, &fmt_fps),
            col(&|m| m.delay_protected.p50_ns as f64, &ns),
            col(&|m| m.delay_protected.p99_ns as f64, &ns),
            col(&|m| m.delay_background.p50_ns as f64, &ns),
            col(&|m| m.delay_background.p99_ns as f64, &ns),
            col(&|m| m.commit_to_first.p50_ns as f64, &ns),
            col(&|m| m.commit_to_last.p50_ns as f64, &ns),
            counts(&|m| m.drops),
            counts(&|m| m.violations),
        );
        let _ = count;
    }
    let notes: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let p = r.sch_plug.as_ref()?;
            let f = r.sch_plug_facts.as_ref()?;
            let mut n = Vec::new();
            if p.stranded > 0 {
                n.push(format!(
                    "{} frames stranded in the plug after their commit (out only at RELEASE_INDEFINITE)",
                    p.stranded
                ));
            }
            if p.drops > 0 {
                n.push(format!(
                    "{} frames dropped ({} by the qdisc at its limit; the sender's socket saw ENOBUFS for {}, a VM behind the host would not)",
                    p.drops, f.qdisc_drops, p.refused
                ));
            }
            if f.late_checkpoints > 0 {
                n.push(format!(
                    "{} checkpoints started more than an epoch late (UML loop)",
                    f.late_checkpoints
                ));
            }
            if f.rx_socket_drops > 0 {
                n.push(format!("receiver socket dropped {} frames", f.rx_socket_drops));
            }
            (!n.is_empty()).then(|| format!("- {} (sch_plug): {}.", r.case.name, n.join("; ")))
        })
        .collect();
    if !notes.is_empty() {
        s += "\nNotes:\n\n";
        s += &notes.join("\n");
        s += "\n";
    }
    s
}

/// What `--check` found wrong (empty: all correctness columns as required).
pub fn check(rows: &[Row]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in rows {
        let n = &r.case.name;
        if r.hac.violations > 0 {
            problems.push(format!(
                "{n}: HAC delivered {} frames before their commit",
                r.hac.violations
            ));
        }
        if r.hac.drops > 0 || r.hac.background_drops > 0 {
            problems.push(format!(
                "{n}: HAC lost {} protected and {} background frames",
                r.hac.drops, r.hac.background_drops
            ));
        }
        if r.hac.delivered_fps <= 0.0 {
            problems.push(format!("{n}: HAC delivered nothing"));
        }
        if let Some(p) = &r.sch_plug {
            if p.delivered_fps <= 0.0 {
                problems.push(format!("{n}: sch_plug delivered nothing"));
            }
            match r.case.expect {
                Expect::PeerViolation if p.violations == 0 => problems.push(format!(
                    "{n}: the checker found no output-commit violation in sch_plug with several epochs open (expected some)"
                )),
                Expect::PeerDrops if p.drops == 0 => problems.push(format!(
                    "{n}: no sch_plug drop at a {} B limit (expected some)",
                    r.case.limit_bytes
                )),
                _ => {}
            }
        }
    }
    problems
}

/// Writes `table.md`, `table.json`, `delay_cdf.{png,svg}` (the case `featured`, or the first)
/// and `cdf/<case>.{png,svg}` for every case.
pub fn write_outputs(
    out: &Path,
    rows: &[Row],
    w: &Workload,
    delays: &[(String, plot::CdfSeriesSet)],
) -> Result<String, BenchError> {
    let write = |path: PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).map_err(|source| BenchError::Write { path, source })
    };
    std::fs::create_dir_all(out.join("cdf")).map_err(|source| BenchError::Write {
        path: out.join("cdf"),
        source,
    })?;
    let md = markdown(rows, w);
    write(out.join("table.md"), md.as_bytes())?;
    let json = serde_json::json!({
        "clocks": {
            "hac": "virtual ns of the model (modelled adapter and 10 Gb/s wire)",
            "sch_plug": "wall-clock ns inside User-Mode Linux (1 vCPU)"
        },
        "workload": w,
        "rows": rows.iter().map(|r| {
            let ratio_of = |f: &dyn Fn(&Metrics) -> f64| r.sch_plug.as_ref().and_then(|p| ratio(f(&r.hac), f(p)));
            serde_json::json!({
                "case": r.case,
                "hac": r.hac,
                "sch_plug": r.sch_plug,
                "sch_plug_facts": r.sch_plug_facts,
                "model_frames_per_wall_sec": r.model_frames_per_wall_sec,
                "ratio_us_them": {
                    "delivered_fps": ratio_of(&|m| m.delivered_fps),
                    "delay_protected_p50": ratio_of(&|m| m.delay_protected.p50_ns as f64),
                    "delay_protected_p99": ratio_of(&|m| m.delay_protected.p99_ns as f64),
                    "delay_background_p50": ratio_of(&|m| m.delay_background.p50_ns as f64),
                    "delay_background_p99": ratio_of(&|m| m.delay_background.p99_ns as f64),
                    "commit_to_first_p50": ratio_of(&|m| m.commit_to_first.p50_ns as f64),
                    "commit_to_last_p50": ratio_of(&|m| m.commit_to_last.p50_ns as f64),
                }
            })
        }).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| BenchError::Write {
        path: out.join("table.json"),
        source: std::io::Error::other(e),
    })?;
    write(out.join("table.json"), (text + "\n").as_bytes())?;
    for (i, (name, set)) in delays.iter().enumerate() {
        let (png, svg) = plot::render(set)?;
        write(out.join("cdf").join(format!("{name}.png")), &png)?;
        write(out.join("cdf").join(format!("{name}.svg")), svg.as_bytes())?;
        if i == 0 {
            write(out.join("delay_cdf.png"), &png)?;
            write(out.join("delay_cdf.svg"), svg.as_bytes())?;
        }
    }
    Ok(md)
}

/// The delay series of one case for the comparison plot.
pub fn cdf_set(case: &Case, hac: &Trace, peer: Option<&Trace>) -> plot::CdfSeriesSet {
    let split = |t: &Trace| {
        let (mut p, mut b) = (Vec::new(), Vec::new());
        for f in t.frames.iter().filter(|f| !f.stranded) {
            let d = f.rx_ns.saturating_sub(f.submit_ns);
            match f.flow {
                Flow::Protected => p.push(d),
                Flow::Background => b.push(d),
            }
        }
        (p, b)
    };
    let (hp, hb) = split(hac);
    let mut series = vec![
        plot::CdfSeries::new("HAC prot.", plot::CHECKPOINTING_COLOUR, false, hp),
        plot::CdfSeries::new("HAC bg", plot::PLAIN_COLOUR, false, hb),
    ];
    if let Some(peer) = peer {
        let (pp, pb) = split(peer);
        series.push(plot::CdfSeries::new(
            "plug prot.",
            plot::CHECKPOINTING_COLOUR,
            true,
            pp,
        ));
        series.push(plot::CdfSeries::new(
            "plug bg",
            plot::PLAIN_COLOUR,
            true,
            pb,
        ));
    }
    plot::CdfSeriesSet {
        title: format!("Delay CDF {}: HAC solid, plug dashed", case.name),
        series,
    }
}

/// Options of `hac-lab bench`.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Output directory.
    pub out: PathBuf,
    /// The short CI configuration.
    pub short: bool,
    /// Skip the peer (no UML): the table has our side only.
    pub skip_peer: bool,
    /// Where peer.sh lives.
    pub plug_dir: PathBuf,
    /// Override the peer's per-case duration, ms.
    pub peer_duration_ms: Option<u64>,
    /// Override the model's per-case duration, virtual ms.
    pub model_duration_ms: Option<u64>,
    /// Show the progress over the model's cases (a bar on a terminal, a line per quarter
    /// otherwise; `hac_utility::progress`); the per-case lines then go with it instead of to
    /// `log`.
    pub progress: bool,
}

/// Runs the bench: the peer first (one UML boot), then the model, then the outputs. Returns
/// the rows and the markdown table.
pub fn run(o: &BenchOptions, log: &mut dyn FnMut(&str)) -> Result<(Vec<Row>, String), BenchError> {
    let cases = matrix(o.short);
    let mut w = Workload::new(o.short);
    if let Some(d) = o.peer_duration_ms {
        w.peer_duration_ms = d;
    }
    if let Some(d) = o.model_duration_ms {
        w.model_duration_ms = d;
    }
    let peer_dir = o.out.join("sch_plug");
    if !o.skip_peer {
        log(&format!(
            "sch_plug in User-Mode Linux: {} cases × {} ms (wall) ...",
            cases.len(),
            w.peer_duration_ms
        ));
        let t = std::time::Instant::now();
        run_peer(&o.plug_dir, &peer_dir, &cases, &w)?;
        log(&format!("  done in {:.1} s", t.elapsed().as_secs_f64()));
    }
    let mut rows = Vec::new();
    let mut sets = Vec::new();
    let mut progress = hac_utility::progress::Progress::new(
        "HAC on the model",
        cases.len() as u64,
        "cases",
        o.progress,
    );
    for (done, c) in cases.iter().enumerate() {
        progress.set(done as u64, &c.name);
        let t = std::time::Instant::now();
        let (hac_trace, r) = run_model(c, &w)?;
        let hac = analyse(&hac_trace);
        let line = format!(
            "HAC on the model: {} ({} ms virtual in {:.1} s)",
            c.name,
            w.model_duration_ms,
            t.elapsed().as_secs_f64()
        );
        // With a bar on the terminal, lines go above it.
        if o.progress {
            progress.note(&line);
        } else {
            log(&line);
        }
        progress.set(done as u64 + 1, "");
        let (peer_trace, facts) = if o.skip_peer {
            (None, None)
        } else {
            let (t, f) = peer_trace(&peer_dir.join(&c.name))?;
            (Some(t), Some(f))
        };
        sets.push((c.name.clone(), cdf_set(c, &hac_trace, peer_trace.as_ref())));
        rows.push(Row {
            case: c.clone(),
            hac,
            sch_plug: peer_trace.as_ref().map(analyse),
            sch_plug_facts: facts,
            model_frames_per_wall_sec: r.frames.len() as f64 / r.wall_secs.max(1e-9),
        });
    }
    progress.finish();
    // The featured plot: the first case where several epochs are open (the violation case),
    // else the first.
    if let Some(k) = rows
        .iter()
        .position(|r| r.case.expect == Expect::PeerViolation)
    {
        sets.swap(0, k);
    }
    let md = write_outputs(&o.out, &rows, &w, &sets)?;
    Ok((rows, md))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flow: Flow, epoch: u32, submit_ns: u64, rx_ns: u64) -> TraceFrame {
        TraceFrame {
            flow,
            epoch,
            submit_ns,
            rx_ns,
            stranded: false,
        }
    }

    #[test]
    fn the_matrix_covers_the_issue() {
        let m = matrix(false);
        assert_eq!(m.len(), 2 * 2 * 3 * 2 + 1);
        assert!(m.iter().any(|c| c.expect == Expect::PeerViolation));
        assert!(m.iter().any(|c| c.expect == Expect::PeerDrops));
        let names: std::collections::HashSet<_> = m.iter().map(|c| &c.name).collect();
        assert_eq!(names.len(), m.len());
        let w = Workload::new(true);
        for c in matrix(false) {
            scenario(&c, &w).validate("bench").unwrap();
        }
        assert!(
            peer_jobs(&matrix(true), &w)
                .contains("64-sat-e1-a5 60 saturate 0 2000 1000 5000 400 4194304")
        );
    }

    #[test]
    fn the_checker_counts_violations_and_commit_latencies() {
        // Epoch 1 committed at 100, epoch 2 at 200.
        let t = Trace {
            start_ns: 0,
            end_ns: 1000,
            commits: vec![(1, 100), (2, 200)],
            frames: vec![
                frame(Flow::Protected, 1, 10, 105), // 5 after its commit
                frame(Flow::Protected, 1, 20, 130), // last of commit 1: 30
                frame(Flow::Protected, 2, 60, 150), // out before epoch 2's commit: violation
                frame(Flow::Protected, 2, 70, 210),
                frame(Flow::Protected, 3, 90, 400), // epoch 3 never committed: violation
                frame(Flow::Background, 0, 50, 51),
            ],
            submitted: [6, 1],
            lost: [1, 0],
            ..Trace::default()
        };
        let m = analyse(&t);
        assert_eq!(m.violations, 2);
        assert_eq!(m.drops, 1);
        assert_eq!((m.commit_to_first.count, m.commit_to_first.p50_ns), (2, 5));
        assert_eq!(m.commit_to_first.max_ns, 10);
        assert_eq!(m.commit_to_last.max_ns, 30);
        assert_eq!(m.delay_background.p50_ns, 1);
        assert_eq!(m.delivered_fps, 5.0 / 1e-6);
        let late = analyse(&Trace {
            steady_ns: 140,
            ..t.clone()
        });
        assert_eq!(late.delivered_fps, 3.0 / 860e-9);
    }

    #[test]
    fn check_demands_zero_on_our_side_and_a_detected_peer_violation() {
        let case = matrix(true)[1].clone();
        assert_eq!(case.expect, Expect::PeerViolation);
        let good = Metrics {
            delivered_fps: 1.0,
            ..Metrics::default()
        };
        let row = |hac: Metrics, peer: Metrics| Row {
            case: case.clone(),
            hac,
            sch_plug: Some(peer),
            sch_plug_facts: None,
            model_frames_per_wall_sec: 0.0,
        };
        let peer_bad = Metrics {
            violations: 3,
            ..good.clone()
        };
        assert!(check(&[row(good.clone(), peer_bad.clone())]).is_empty());
        // A checker that cannot see the peer's violation fails the check.
        assert_eq!(check(&[row(good.clone(), good.clone())]).len(), 1);
        let ours_bad = Metrics {
            drops: 1,
            ..good.clone()
        };
        assert_eq!(check(&[row(ours_bad, peer_bad)]).len(), 1);
    }

    #[test]
    fn a_short_model_run_is_output_commit_safe() {
        let w = Workload {
            model_duration_ms: 12,
            ..Workload::new(true)
        };
        let case = matrix(true)[1].clone(); // 64 B saturating, 1 ms epochs, 5 ms acks
        let (t, _) = run_model(&case, &w).unwrap();
        let m = analyse(&t);
        assert!(m.commits >= 5, "{m:?}");
        assert!(m.delivered_fps > 0.0);
        assert_eq!(
            (m.violations, m.drops, m.background_drops),
            (0, 0, 0),
            "{m:?}"
        );
        assert!(m.commit_to_first.p50_ns < 2_000, "{m:?}");
    }
}

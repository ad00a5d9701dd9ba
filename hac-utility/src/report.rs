//! The report directory of `hac demo` / `hac run`: `report.json`, `packets.csv`, and (written
//! during the run by a wire sink) `wire.pcap`; the plots are drawn by [`crate::plot`].

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::engine::{FrameRecord, Outcome, RunResult};

/// p50 / p99 / max of a sample, ns, and the HDR histogram they are read from (defined with the
/// HA node, which reports them too).
pub use hac_ha::stats::{LatencyHistogram, Percentiles, SIGNIFICANT_FIGURES};

/// Per-VF totals.
#[derive(Clone, Debug, Serialize)]
pub struct VfTotals {
    /// VF index.
    pub vf: usize,
    /// Checkpointing at the start.
    pub checkpointing: bool,
    /// Frames the driver accepted.
    pub submitted: u64,
    /// Frames on the wire.
    pub sent: u64,
    /// Bytes on the wire.
    pub sent_bytes: u64,
    /// Frames discarded by abort/failover.
    pub discarded: u64,
    /// Frames still in the adapter at the end.
    pub buffered: u64,
    /// Frames generated but not accepted by the driver at the end (backpressure).
    pub backlog: u64,
    /// HAC counters read from the adapter.
    pub hac_released: u64,
    /// HAC discards read from the adapter.
    pub hac_discarded: u64,
    /// HAC backpressure events.
    pub hac_backpressure: u64,
    /// Largest number of frames the adapter held for this VF.
    pub hac_max_frames: u32,
}

/// The machine-readable report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub name: String,
    /// The configuration, echoed.
    pub config: serde_json::Value,
    /// Per-VF totals.
    pub vfs: Vec<VfTotals>,
    /// Frames on the wire.
    pub wire_frames: u64,
    /// Bytes on the wire.
    pub wire_bytes: u64,
    /// Added delay (wire − submit) of checkpointing VFs' frames.
    pub added_delay_checkpointing: Percentiles,
    /// Added delay (wire − submit) of plain VFs' frames.
    pub added_delay_plain: Percentiles,
    /// Commit (or unprotect) to the first frame it released on the wire.
    pub commit_to_first_frame: Percentiles,
    /// Commits, aborts, failovers, unprotects.
    pub markers: usize,
    /// Virtual time simulated, ns.
    pub virtual_ns: u64,
    /// Wall-clock seconds.
    pub wall_secs: f64,
    /// Frames through the model per wall second.
    pub frames_per_wall_sec: f64,
}

/// The two classes of the added-delay statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelayClass {
    /// Frames the adapter stamped with a checkpoint epoch (held until their epoch commits).
    Checkpointing,
    /// Frames without an epoch (plain VFs, or a VF after `unprotect`).
    Plain,
}

/// The added delay of one frame: wire − submit, ns, with its class (checkpointing when the
/// adapter stamped an epoch on it); `None` for a frame that did not leave on the wire. The one
/// definition behind report.json's percentiles and the delay CDF plot.
pub fn added_delay(f: &FrameRecord) -> Option<(DelayClass, u64)> {
    if f.outcome != Outcome::Sent {
        return None;
    }
    let d = f.wire_ns.unwrap_or(f.submit_ns).saturating_sub(f.submit_ns);
    let class = if f.epoch.is_some() {
        DelayClass::Checkpointing
    } else {
        DelayClass::Plain
    };
    Some((class, d))
}

/// Builds the report of a run.
pub fn build(r: &RunResult) -> Report {
    let n = r.scenario.vf.len();
    let mut vfs: Vec<VfTotals> = (0..n)
        .map(|i| VfTotals {
            vf: i,
            checkpointing: r.scenario.vf[i].checkpointing,
            submitted: 0,
            sent: 0,
            sent_bytes: 0,
            discarded: 0,
            buffered: 0,
            backlog: r.backlog.get(i).copied().unwrap_or(0),
            hac_released: r.hac[i].released,
            hac_discarded: r.hac[i].discarded,
            hac_backpressure: r.hac[i].backpressure,
            hac_max_frames: r.hac[i].max_frames,
        })
        .collect();
    let (mut dc, mut dp) = (LatencyHistogram::new(), LatencyHistogram::new());
    let mut first_after_commit: std::collections::HashMap<(u8, u64), u64> =
        std::collections::HashMap::new();
    for f in &r.frames {
        let v = &mut vfs[f.vf as usize];
        v.submitted += 1;
        match f.outcome {
            Outcome::Sent => {
                v.sent += 1;
                v.sent_bytes += u64::from(f.len);
                let w = f.wire_ns.unwrap_or(f.submit_ns);
                match added_delay(f) {
                    Some((DelayClass::Checkpointing, d)) => dc.record(d),
                    Some((DelayClass::Plain, d)) => dp.record(d),
                    None => {}
                }
                if let Some(c) = f.commit_ns {
                    let e = first_after_commit.entry((f.vf, c)).or_insert(u64::MAX);
                    *e = (*e).min(w.saturating_sub(c));
                }
            }
            Outcome::Discarded => v.discarded += 1,
            Outcome::Buffered => v.buffered += 1,
        }
    }
    let c2f: LatencyHistogram = first_after_commit.values().copied().collect();
    let s = &r.scenario;
    Report {
        name: s.name.clone(),
        config: serde_json::json!({
            "seed": s.seed, "duration_ms": s.duration_ms, "port_rate": s.port_rate,
            "epoch_ms": s.epoch_ms, "ack_delay_ms": [s.ack_delay.min_ms, s.ack_delay.max_ms],
            "guard_bytes": s.guard_bytes,
            "vfs": s.vf.iter().map(|v| serde_json::json!({
                "checkpointing": v.checkpointing, "rate_mbps": v.rate_mbps, "pattern": v.pattern,
                "burst_frames": v.burst_frames, "min_frame": v.min_frame, "max_frame": v.max_frame,
                "limit_frames": v.limit_frames, "limit_bytes": v.limit_bytes })).collect::<Vec<_>>(),
            "events": s.event.iter().map(|e| serde_json::json!({"at_ms": e.at_ms, "kind": e.kind, "vf": e.vf})).collect::<Vec<_>>(),
        }),
        vfs,
        wire_frames: r.wire_frames,
        wire_bytes: r.wire_bytes,
        added_delay_checkpointing: dc.percentiles(),
        added_delay_plain: dp.percentiles(),
        commit_to_first_frame: c2f.percentiles(),
        markers: r.markers.len(),
        virtual_ns: r.virtual_ns,
        wall_secs: r.wall_secs,
        frames_per_wall_sec: r.frames.len() as f64 / r.wall_secs.max(1e-9),
    }
}

/// Writes `report.json` and `packets.csv` into `dir` (which must exist).
pub fn write(dir: &Path, r: &RunResult, report: &Report) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json + "\n")?;
    let file = std::fs::File::create(dir.join("packets.csv"))?;
    let mut csv = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(csv, "vf,seq,epoch,len,submit_ns,commit_ns,wire_ns,outcome")?;
    // One line per frame, built in a reused buffer with `itoa` (no `fmt` machinery per field):
    // this file has a line per frame.
    let mut line = Vec::with_capacity(96);
    let mut num = itoa::Buffer::new();
    for f in &r.frames {
        line.clear();
        line.extend_from_slice(num.format(f.vf).as_bytes());
        line.push(b',');
        line.extend_from_slice(num.format(f.seq).as_bytes());
        line.push(b',');
        if let Some(e) = f.epoch {
            line.extend_from_slice(num.format(e).as_bytes());
        }
        line.push(b',');
        line.extend_from_slice(num.format(f.len).as_bytes());
        line.push(b',');
        line.extend_from_slice(num.format(f.submit_ns).as_bytes());
        line.push(b',');
        if let Some(c) = f.commit_ns {
            line.extend_from_slice(num.format(c).as_bytes());
        }
        line.push(b',');
        if let Some(w) = f.wire_ns {
            line.extend_from_slice(num.format(w).as_bytes());
        }
        line.push(b',');
        line.extend_from_slice(f.outcome.as_str().as_bytes());
        line.push(b'\n');
        csv.write_all(&line)?;
    }
    csv.flush()
}

/// A short human summary.
pub fn summary(report: &Report) -> String {
    let mut s = format!("{}\n", report.name);
    s += "vf  class          submitted  sent      discarded  buffered  max held\n";
    for v in &report.vfs {
        s += &format!(
            "{:<3} {:<14} {:<10} {:<9} {:<10} {:<9} {}\n",
            v.vf,
            if v.checkpointing {
                "checkpointing"
            } else {
                "plain"
            },
            v.submitted,
            v.sent,
            v.discarded,
            v.buffered,
            v.hac_max_frames
        );
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    s += &format!(
        "added delay, checkpointing: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        ms(report.added_delay_checkpointing.p50_ns),
        ms(report.added_delay_checkpointing.p99_ns),
        ms(report.added_delay_checkpointing.max_ns)
    );
    s += &format!(
        "added delay, plain:         p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs\n",
        report.added_delay_plain.p50_ns as f64 / 1e3,
        report.added_delay_plain.p99_ns as f64 / 1e3,
        report.added_delay_plain.max_ns as f64 / 1e3
    );
    s += &format!(
        "commit to first frame: p50 {} ns, max {} ns over {} commits\n",
        report.commit_to_first_frame.p50_ns,
        report.commit_to_first_frame.max_ns,
        report.commit_to_first_frame.count
    );
    s += &format!(
        "wire: {} frames, {} bytes; {:.3} s virtual in {:.2} s wall ({:.0} frames/s)\n",
        report.wire_frames,
        report.wire_bytes,
        report.virtual_ns as f64 / 1e9,
        report.wall_secs,
        report.frames_per_wall_sec
    );
    s
}

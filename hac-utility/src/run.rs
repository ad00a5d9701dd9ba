//! `hac demo` and `hac run`: run a scenario with a progress bar, write the report directory,
//! print a short summary.

use std::path::Path;

use crate::capture::SnapPcap;
use crate::engine;
use crate::plot;
use crate::progress::Progress;
use crate::report;
use crate::scenario::Scenario;

/// How a run ended, for the exit status.
#[derive(Debug)]
pub enum RunError {
    /// Bad input (scenario file): exit status 2.
    Input(String),
    /// Anything else: exit status 1.
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Input(s) | RunError::Failed(s) => f.write_str(s),
        }
    }
}

/// Loads and checks a scenario file.
pub fn load(path: &Path) -> Result<Scenario, RunError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunError::Input(format!("cannot read {}: {e}", path.display())))?;
    Scenario::parse(&path.display().to_string(), &text).map_err(|e| RunError::Input(e.to_string()))
}

/// Runs `scenario`, writing `out/{wire.pcap, report.json, packets.csv, summary.txt}` and the
/// plots ([`plot::FILES`]); the pcap keeps the first `snaplen` bytes of each frame
/// ([`crate::capture`]). Returns the summary text, which ends with the sizes written.
pub fn run_to_dir(
    scenario: &Scenario,
    out: &Path,
    show_progress: bool,
    snaplen: u32,
) -> Result<String, RunError> {
    // Scenario files are checked by `load`; the demo (any --duration-ms) is checked here too.
    scenario
        .validate("scenario")
        .map_err(|e| RunError::Input(e.to_string()))?;
    std::fs::create_dir_all(out)
        .map_err(|e| RunError::Failed(format!("cannot create {}: {e}", out.display())))?;
    let pcap_path = out.join("wire.pcap");
    let file = std::fs::File::create(&pcap_path)
        .map_err(|e| RunError::Failed(format!("cannot create {}: {e}", pcap_path.display())))?;
    let sink = SnapPcap::new(std::io::BufWriter::with_capacity(1 << 20, file), snaplen)
        .map_err(|e| RunError::Failed(format!("cannot write {}: {e}", pcap_path.display())))?;
    let mut progress = Progress::new(
        "scenario",
        scenario.duration_ms,
        "ms virtual",
        show_progress,
    );
    let total = scenario.duration_ms as f64;
    let result = engine::run(scenario, Some(Box::new(sink)), &mut |frac: f64| {
        progress.set((frac * total).round() as u64, "");
    })
    .map_err(|e| RunError::Failed(e.to_string()))?;
    progress.finish();
    let rep = report::build(&result);
    report::write(out, &result, &rep).map_err(|e| {
        RunError::Failed(format!("cannot write the report in {}: {e}", out.display()))
    })?;
    plot::write_plots(out, &result).map_err(|e| {
        RunError::Failed(format!("cannot write the plots in {}: {e}", out.display()))
    })?;
    let mut summary = report::summary(&rep);
    summary += &format!(
        "report: {}/{{report.json, packets.csv, wire.pcap, {}}}\n",
        out.display(),
        plot::FILES.join(", ")
    );
    summary += &written_sizes(out, snaplen);
    std::fs::write(out.join("summary.txt"), &summary).map_err(|e| {
        RunError::Failed(format!(
            "cannot write {}: {e}",
            out.join("summary.txt").display()
        ))
    })?;
    Ok(summary)
}

/// One line with the sizes of the report's large files (the pcap with its snap length).
fn written_sizes(out: &Path, snaplen: u32) -> String {
    let size = |name: &str| {
        let bytes = std::fs::metadata(out.join(name)).map_or(0, |m| m.len());
        if bytes >= 1 << 20 {
            format!("{name} {:.1} MiB", bytes as f64 / f64::from(1 << 20))
        } else {
            format!("{name} {:.1} KiB", bytes as f64 / 1024.0)
        }
    };
    let snap = if snaplen >= crate::capture::FULL_SNAPLEN {
        "full frames".to_string()
    } else {
        format!("first {snaplen} bytes of each frame; --full-frames for all")
    };
    format!(
        "written: {} ({snap}), {}, {}\n",
        size("wire.pcap"),
        size("packets.csv"),
        size("report.json")
    )
}

//! Progress of a long run (`hac demo`/`hac run`, `hac failover-demo`, `hac-lab bench`): on a
//! terminal an [`indicatif`] bar with the rate and the time left, drawn on stderr; when stderr
//! is not a terminal (CI logs, pipes) no bar, but one line at each quarter (25, 50, 75, 100 %)
//! with the same figures, so a log shows that a run moves without a line per step.
//!
//! One type for every long run: [`Progress::new`] with the total and its unit, [`Progress::set`]
//! as work is done, [`Progress::note`] for a line of its own (printed above the bar),
//! [`Progress::finish`] at the end.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes.
enum Sink {
    /// Nothing (progress not wanted).
    Off,
    /// A bar on the terminal.
    Bar(ProgressBar),
    /// One line per quarter on stderr.
    Lines(QuarterLines),
}

/// Shows the progress of one long run.
pub struct Progress {
    sink: Sink,
}

impl Progress {
    /// Progress of `total` `unit`s (e.g. "ms virtual", "answers") called `what`: a bar when
    /// `enabled` and stderr is a terminal, quarter lines when `enabled` and it is not, nothing
    /// otherwise.
    pub fn new(what: &str, total: u64, unit: &str, enabled: bool) -> Progress {
        use std::io::IsTerminal as _;
        let sink = if !enabled {
            Sink::Off
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = format!(
                "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{percent}}%), {{per_sec}}, {{eta}} left {{msg}}"
            );
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("#>-"));
            }
            bar.set_prefix(what.to_string());
            Sink::Bar(bar)
        } else {
            Sink::Lines(QuarterLines::new(what, total, unit))
        };
        Progress { sink }
    }

    /// `done` units are done; `msg` says what is going on (e.g. which node serves).
    pub fn set(&mut self, done: u64, msg: &str) {
        match &mut self.sink {
            Sink::Off => {}
            Sink::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(msg.to_string());
            }
            Sink::Lines(lines) => {
                if let Some(line) = lines.update(done, msg, Instant::now()) {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// A line of its own (above the bar on a terminal).
    pub fn note(&self, msg: &str) {
        match &self.sink {
            Sink::Off => {}
            Sink::Bar(bar) => bar.println(msg),
            Sink::Lines(_) => eprintln!("{msg}"),
        }
    }

    /// Ends the bar (it stays on the screen); quarter lines are complete already.
    pub fn finish(&mut self) {
        if let Sink::Bar(bar) = &self.sink {
            bar.finish();
        }
    }
}

/// The non-terminal form: a line each time the run passes a quarter of its total.
pub struct QuarterLines {
    what: String,
    unit: String,
    total: u64,
    started: Instant,
    /// Quarters already reported (0..=4).
    reported: u64,
}

impl QuarterLines {
    /// Lines for `total` `unit`s of `what`, timed from now.
    pub fn new(what: &str, total: u64, unit: &str) -> QuarterLines {
        QuarterLines {
            what: what.to_string(),
            unit: unit.to_string(),
            total,
            started: Instant::now(),
            reported: 0,
        }
    }

    /// The line to print when `done` (at `now`) passes a quarter not yet reported (only the
    /// last one when several are passed at once); `None` otherwise.
    pub fn update(&mut self, done: u64, msg: &str, now: Instant) -> Option<String> {
        let done = done.min(self.total);
        let quarter = if self.total == 0 {
            4
        } else {
            (u128::from(done) * 4 / u128::from(self.total)) as u64
        };
        if quarter <= self.reported {
            return None;
        }
        self.reported = quarter;
        let elapsed = now.saturating_duration_since(self.started);
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let left = if done > 0 && done < self.total {
            let per = elapsed.as_secs_f64() / done as f64;
            format!(
                ", {} left",
                eta_text(Duration::from_secs_f64(per * (self.total - done) as f64))
            )
        } else {
            String::new()
        };
        let msg = if msg.is_empty() {
            String::new()
        } else {
            format!(" {msg}")
        };
        Some(format!(
            "progress: {}: {}% ({done}/{} {}), {rate:.1} {}/s{left}{msg}",
            self.what,
            quarter * 25,
            self.total,
            self.unit,
            self.unit,
        ))
    }
}

/// A time left as `1m05s` or `4.2s`.
fn eta_text(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn without_a_terminal_one_line_per_quarter_with_rate_and_time_left() {
        let mut q = QuarterLines::new("demo", 1000, "ms virtual");
        let t0 = q.started;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut lines = Vec::new();
        for done in (0..=1000).step_by(10) {
            if let Some(l) = q.update(done, "", at(done * 2)) {
                lines.push(l);
            }
        }
        assert_eq!(
            lines,
            [
                "progress: demo: 25% (250/1000 ms virtual), 500.0 ms virtual/s, 1.5s left",
                "progress: demo: 50% (500/1000 ms virtual), 500.0 ms virtual/s, 1.0s left",
                "progress: demo: 75% (750/1000 ms virtual), 500.0 ms virtual/s, 0.5s left",
                "progress: demo: 100% (1000/1000 ms virtual), 500.0 ms virtual/s",
            ]
        );
        assert_eq!(q.update(1000, "", at(3000)), None, "100 % is said once");
    }

    #[test]
    fn a_jump_over_quarters_gives_one_line_and_odd_totals_do_not_panic() {
        let mut q = QuarterLines::new("answers", 3, "answers");
        let t0 = q.started;
        assert_eq!(q.update(0, "", t0), None);
        let l = q
            .update(2, "served by the backup", t0 + Duration::from_secs(120))
            .unwrap();
        assert_eq!(
            l,
            "progress: answers: 50% (2/3 answers), 0.0 answers/s, 1m00s left served by the backup"
        );
        // Past the total: counted as the total.
        assert!(q.update(u64::MAX, "", t0).unwrap().contains("100% (3/3"));
        let mut empty = QuarterLines::new("nothing", 0, "frames");
        assert!(
            empty
                .update(0, "", t0)
                .unwrap()
                .contains("100% (0/0 frames)")
        );
        assert_eq!(empty.update(5, "", t0), None);
    }

    #[test]
    fn a_disabled_progress_prints_nothing() {
        let mut p = Progress::new("test", 10, "steps", false);
        p.set(5, "half");
        p.note("not shown");
        p.finish();
        assert!(matches!(p.sink, Sink::Off));
    }
}

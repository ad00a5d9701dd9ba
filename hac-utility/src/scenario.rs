//! Scenario files (`hac run SCENARIO.toml`): what runs on the built-in model.
//!
//! Every key is documented in `docs/scenarios.md`. Unknown keys, wrong types and inconsistent
//! values are errors that name the field and say what to do.

use serde::Deserialize;

/// Smallest non-zero offered load, Mb/s (a lower one would space frames further apart than a
/// run can last).
pub const MIN_RATE_MBPS: f64 = 0.001;
/// Most frames the VFs of a scenario may offer over its duration. A run keeps a record of every
/// frame the drivers accept (about 100 bytes with its index entry), so this bounds the memory of
/// a run to about 1.6 GB; see docs/scenarios.md.
pub const MAX_OFFERED_FRAMES: f64 = 16e6;
/// Most checkpoints (epochs × checkpointing VFs) a scenario may take; each leaves a commit marker
/// and a pending acknowledgement (about 40 bytes).
pub const MAX_CHECKPOINTS: f64 = 4e6;

/// A whole scenario.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Free text shown in the report.
    #[serde(default = "default_name")]
    pub name: String,
    /// Seed of every random choice (traffic sizes, ack delays).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Virtual time to run, ms.
    pub duration_ms: u64,
    /// The adapter family the VFs belong to: "igb" (Intel 82576, the default) or "mlx5"
    /// (NVIDIA/Mellanox ConnectX).
    #[serde(default)]
    pub family: Family,
    /// Wire speed: "1G", "10G", "25G" or "100G".
    #[serde(default = "default_rate")]
    pub port_rate: String,
    /// Checkpoint interval (epoch length), ms.
    #[serde(default = "default_epoch")]
    pub epoch_ms: f64,
    /// Backup acknowledgement delay after each checkpoint.
    #[serde(default)]
    pub ack_delay: AckDelay,
    /// Starvation guard, bytes (0 = strict priority).
    #[serde(default = "default_guard")]
    pub guard_bytes: u32,
    /// The VFs, in order (VF 0, 1, ...), at most 7.
    pub vf: Vec<VfSpec>,
    /// Failure events.
    #[serde(default)]
    pub event: Vec<Event>,
}

fn default_name() -> String {
    "scenario".into()
}
fn default_seed() -> u64 {
    1
}
fn default_rate() -> String {
    "10G".into()
}
fn default_epoch() -> f64 {
    25.0
}
fn default_guard() -> u32 {
    64 * 1024
}

/// The backup's acknowledgement delay distribution.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AckDelay {
    /// Smallest delay, ms.
    pub min_ms: f64,
    /// Largest delay, ms (uniform between min and max).
    pub max_ms: f64,
}

impl Default for AckDelay {
    fn default() -> Self {
        AckDelay {
            min_ms: 3.0,
            max_ms: 6.0,
        }
    }
}

/// The adapter family a scenario runs on.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// The Intel 82576 model, igbvf driver, HAC register block.
    #[default]
    Igb,
    /// The NVIDIA/Mellanox ConnectX (mlx5) model, mlx5 driver, HAC vendor commands.
    Mlx5,
}

impl Family {
    /// The name scenario files and `--family` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Igb => "igb",
            Family::Mlx5 => "mlx5",
        }
    }
}

/// One VF.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VfSpec {
    /// Checkpointing (buffered until commit) or plain.
    #[serde(default)]
    pub checkpointing: bool,
    /// Offered load, Mb/s.
    pub rate_mbps: f64,
    /// "constant" (evenly spaced) or "bursts" (`burst_frames` back to back every
    /// `burst_interval_us`, same average rate).
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// Frames per burst (pattern "bursts").
    #[serde(default = "default_burst")]
    pub burst_frames: u32,
    /// Smallest frame, bytes (60..=1514).
    #[serde(default = "default_min_frame")]
    pub min_frame: usize,
    /// Largest frame, bytes (min_frame..=1514); sizes are uniform in between.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// HAC buffer limit, frames (checkpointing VFs).
    #[serde(default = "default_limit_frames")]
    pub limit_frames: u32,
    /// HAC buffer limit, bytes (checkpointing VFs).
    #[serde(default = "default_limit_bytes")]
    pub limit_bytes: u32,
}

fn default_pattern() -> String {
    "constant".into()
}
fn default_burst() -> u32 {
    16
}
fn default_min_frame() -> usize {
    64
}
fn default_max_frame() -> usize {
    1514
}
fn default_limit_frames() -> u32 {
    4096
}
fn default_limit_bytes() -> u32 {
    4 << 20
}

/// A failure event.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When, ms of virtual time.
    pub at_ms: f64,
    /// "abort" (the checkpoint in flight fails), "failover" (discard everything uncommitted),
    /// or "backup_lost" (unprotect: release everything and stop buffering).
    pub kind: String,
    /// The VF (a checkpointing one).
    pub vf: usize,
}

/// A scenario that could not be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScenarioError {
    /// TOML syntax or type error (the message names the line and key).
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// What toml said, with line and column.
        message: String,
    },
    /// A value out of range or inconsistent.
    #[error("{file}: {field}: {problem}")]
    Invalid {
        /// The file.
        file: String,
        /// The field, e.g. `vf[1].rate_mbps`.
        field: String,
        /// What is wrong and what to do.
        problem: String,
    },
}

impl Scenario {
    /// Parses and checks `text` (from `file`, used in messages).
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            file: file.into(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        s.validate(file)?;
        Ok(s)
    }

    /// Checks ranges and consistency.
    pub fn validate(&self, file: &str) -> Result<(), ScenarioError> {
        let bad = |field: String, problem: String| {
            Err(ScenarioError::Invalid {
                file: file.into(),
                field,
                problem,
            })
        };
        if self.duration_ms == 0 || self.duration_ms > 600_000 {
            return bad(
                "duration_ms".into(),
                format!("{} is out of range: use 1..=600000", self.duration_ms),
            );
        }
        if self.port_rate.parse::<igb_model::LineRate>().is_err() {
            return bad(
                "port_rate".into(),
                format!(
                    "{:?} is not a rate: use \"1G\", \"10G\", \"25G\" or \"100G\"",
                    self.port_rate
                ),
            );
        }
        if !(self.epoch_ms.is_finite() && self.epoch_ms >= 0.1 && self.epoch_ms <= 10_000.0) {
            return bad(
                "epoch_ms".into(),
                format!("{} is out of range: use 0.1..=10000", self.epoch_ms),
            );
        }
        let a = &self.ack_delay;
        if !(a.min_ms.is_finite()
            && a.max_ms.is_finite()
            && a.min_ms >= 0.0
            && a.max_ms >= a.min_ms
            && a.max_ms <= 60_000.0)
        {
            return bad(
                "ack_delay".into(),
                format!(
                    "min_ms {} / max_ms {}: need 0 <= min_ms <= max_ms <= 60000",
                    a.min_ms, a.max_ms
                ),
            );
        }
        if self.vf.is_empty() || self.vf.len() > 7 {
            return bad(
                "vf".into(),
                format!("{} VFs: give 1 to 7 [[vf]] tables", self.vf.len()),
            );
        }
        for (i, v) in self.vf.iter().enumerate() {
            let f = |k: &str| format!("vf[{i}].{k}");
            if !(v.rate_mbps.is_finite()
                && (v.rate_mbps == 0.0 || (MIN_RATE_MBPS..=100_000.0).contains(&v.rate_mbps)))
            {
                return bad(
                    f("rate_mbps"),
                    format!(
                        "{} is out of range: use 0 (idle) or {MIN_RATE_MBPS}..=100000 (Mb/s)",
                        v.rate_mbps
                    ),
                );
            }
            if v.pattern != "constant" && v.pattern != "bursts" {
                return bad(
                    f("pattern"),
                    format!("{:?}: use \"constant\" or \"bursts\"", v.pattern),
                );
            }
            if v.burst_frames == 0 || v.burst_frames > 1024 {
                return bad(
                    f("burst_frames"),
                    format!("{}: use 1..=1024", v.burst_frames),
                );
            }
            if !(60..=1514).contains(&v.min_frame)
                || v.max_frame < v.min_frame
                || v.max_frame > 1514
            {
                return bad(
                    f("min_frame/max_frame"),
                    format!(
                        "{}..{}: need 60 <= min_frame <= max_frame <= 1514",
                        v.min_frame, v.max_frame
                    ),
                );
            }
            if v.limit_frames == 0 || (v.limit_bytes as usize) < v.max_frame {
                return bad(
                    f("limit_frames/limit_bytes"),
                    format!(
                        "{} frames / {} bytes: the limit must hold at least one frame of max_frame ({} bytes)",
                        v.limit_frames, v.limit_bytes, v.max_frame
                    ),
                );
            }
        }
        let offered = self.offered_frames();
        if offered > MAX_OFFERED_FRAMES {
            return bad(
                "duration_ms".into(),
                format!(
                    "the VFs offer about {offered:.0} frames in {} ms; a run records every frame and takes at most {MAX_OFFERED_FRAMES:.0}: shorten duration_ms or lower vf[].rate_mbps",
                    self.duration_ms
                ),
            );
        }
        let checkpoints = self.duration_ms as f64 / self.epoch_ms
            * self.vf.iter().filter(|v| v.checkpointing).count() as f64;
        if checkpoints > MAX_CHECKPOINTS {
            return bad(
                "epoch_ms".into(),
                format!(
                    "{checkpoints:.0} checkpoints (duration_ms / epoch_ms × checkpointing VFs); at most {MAX_CHECKPOINTS:.0}: lengthen epoch_ms or shorten duration_ms"
                ),
            );
        }
        for (i, e) in self.event.iter().enumerate() {
            let f = |k: &str| format!("event[{i}].{k}");
            if !matches!(e.kind.as_str(), "abort" | "failover" | "backup_lost") {
                return bad(
                    f("kind"),
                    format!(
                        "{:?}: use \"abort\", \"failover\" or \"backup_lost\"",
                        e.kind
                    ),
                );
            }
            if e.vf >= self.vf.len() {
                return bad(
                    f("vf"),
                    format!(
                        "VF {} does not exist: the scenario has VFs 0..{}",
                        e.vf,
                        self.vf.len() - 1
                    ),
                );
            }
            if !self.vf[e.vf].checkpointing {
                return bad(
                    f("vf"),
                    format!(
                        "VF {} is not checkpointing: events apply to checkpointing VFs",
                        e.vf
                    ),
                );
            }
            if !(e.at_ms.is_finite() && e.at_ms >= 0.0 && e.at_ms <= self.duration_ms as f64) {
                return bad(
                    f("at_ms"),
                    format!(
                        "{} is outside the run (0..={} ms)",
                        e.at_ms, self.duration_ms
                    ),
                );
            }
        }
        Ok(())
    }

    /// Frames the VFs offer over the run: rate × duration / mean frame size, summed.
    pub fn offered_frames(&self) -> f64 {
        self.vf
            .iter()
            .map(|v| {
                let mean_bits = (v.min_frame + v.max_frame) as f64 / 2.0 * 8.0;
                v.rate_mbps * 1e3 * self.duration_ms as f64 / mean_bits
            })
            .sum()
    }

    /// The built-in demo: 4 VFs, 2 checkpointing with 25 ms epochs and a 3–6 ms ack delay, 2
    /// plain, mixed traffic, `duration_ms` of virtual time.
    pub fn demo(duration_ms: u64) -> Scenario {
        let vf = |checkpointing: bool,
                  rate_mbps: f64,
                  pattern: &str,
                  min_frame: usize,
                  max_frame: usize| VfSpec {
            checkpointing,
            rate_mbps,
            pattern: pattern.into(),
            burst_frames: 16,
            min_frame,
            max_frame,
            limit_frames: default_limit_frames(),
            limit_bytes: default_limit_bytes(),
        };
        Scenario {
            name: "demo: 2 checkpointing + 2 plain VFs, 25 ms epochs".into(),
            seed: 1,
            duration_ms,
            family: Family::Igb,
            port_rate: "10G".into(),
            epoch_ms: 25.0,
            ack_delay: AckDelay::default(),
            guard_bytes: default_guard(),
            vf: vec![
                vf(true, 2000.0, "constant", 64, 1514),
                vf(true, 1000.0, "bursts", 1514, 1514),
                vf(false, 3000.0, "constant", 64, 1514),
                vf(false, 500.0, "bursts", 64, 256),
            ],
            event: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
duration_ms = 100
port_rate = "10G"
epoch_ms = 10
[ack_delay]
min_ms = 1
max_ms = 2
[[vf]]
checkpointing = true
rate_mbps = 500
[[vf]]
rate_mbps = 100
pattern = "bursts"
[[event]]
at_ms = 50
kind = "abort"
vf = 0
"#;

    #[test]
    fn parses_a_good_scenario() {
        let s = Scenario::parse("x.toml", GOOD).unwrap();
        assert_eq!(s.vf.len(), 2);
        assert!(s.vf[0].checkpointing && !s.vf[1].checkpointing);
        assert_eq!(s.guard_bytes, 65536);
        Scenario::demo(10).validate("demo").unwrap();
    }

    #[test]
    fn the_family_key_chooses_the_adapter_and_names_what_it_takes() {
        assert_eq!(Scenario::parse("x.toml", GOOD).unwrap().family, Family::Igb);
        let s = GOOD.replace("duration_ms = 100", "duration_ms = 100\nfamily = \"mlx5\"");
        assert_eq!(Scenario::parse("x.toml", &s).unwrap().family, Family::Mlx5);
        let e = err(&GOOD.replace("duration_ms = 100", "duration_ms = 100\nfamily = \"e1000\""));
        assert!(
            e.contains("family") && e.contains("igb") && e.contains("mlx5"),
            "{e}"
        );
    }

    fn err(text: &str) -> String {
        Scenario::parse("x.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn each_bad_input_names_the_field() {
        assert!(
            err(&GOOD.replace("epoch_ms = 10", "epoch_ms = 10\nepoch_len = 3"))
                .contains("unknown field `epoch_len`")
        );
        assert!(
            err(&GOOD.replace("duration_ms = 100", "duration_ms = \"long\""))
                .contains("duration_ms")
        );
        assert!(
            err(&GOOD.replace("rate_mbps = 500", "rate_mbps = -5")).contains("vf[0].rate_mbps")
        );
        assert!(
            err(&GOOD.replace("vf = 0", "vf = 9")).contains("event[0].vf: VF 9 does not exist")
        );
        assert!(err(&GOOD.replace("vf = 0", "vf = 1")).contains("not checkpointing"));
        assert!(
            err(&GOOD.replace("rate_mbps = 500", "rate_mbps = 500\nlimit_bytes = 100"))
                .contains("at least one frame")
        );
        assert!(
            err(&GOOD.replace("port_rate = \"10G\"", "port_rate = \"3G\"")).contains("port_rate")
        );
        assert!(
            err(&GOOD.replace("kind = \"abort\"", "kind = \"explode\"")).contains("event[0].kind")
        );
        assert!(err(&GOOD.replace("at_ms = 50", "at_ms = 500")).contains("outside the run"));
        assert!(err("duration_ms = 10").contains("missing field `vf`"));
        // Issue 13 item 12: each of these passed validation and crashed or exhausted memory.
        assert!(
            err(&GOOD.replace("rate_mbps = 500", "rate_mbps = 1e-12")).contains("vf[0].rate_mbps")
        );
        let huge = GOOD
            .replace("duration_ms = 100", "duration_ms = 600000")
            .replace("at_ms = 50", "at_ms = 5")
            .replace("rate_mbps = 500", "rate_mbps = 100000");
        assert!(err(&huge).starts_with("x.toml: duration_ms: the VFs offer about"));
        let many = GOOD
            .replace("duration_ms = 100", "duration_ms = 600000")
            .replace("epoch_ms = 10", "epoch_ms = 0.1")
            .replace("rate_mbps = 500", "rate_mbps = 1")
            .replace("rate_mbps = 100", "rate_mbps = 1");
        assert!(err(&many).contains("epoch_ms: 6000000 checkpoints"));
        assert!(err("duration_ms = [").contains("x.toml"));
    }
}

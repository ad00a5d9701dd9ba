//! A reference check of the bridge's rule: a script of QMP events with QEMU's timestamps (the
//! true timeline: the guest runs except between a STOP and the next RESUME, and sends frames
//! only while it runs), delivered to the bridge late and one at a time, each adapter request
//! taking time to apply. A model of the adapter stamps each frame with the epoch open when the
//! frame is sent. The check: every frame a commit releases was sent before the STOP of the
//! checkpoint whose RESUME (the secondary's ack) led to that commit — so no output leaves
//! before the state that produced it is on the backup — and every request is one the adapter
//! accepts (docs/hac.md's epoch rules). Used by the unit tests and the `colo_bridge` fuzz
//! target.

use super::{Action, Bridge, BridgeConfig, BridgeError, LAST_EPOCH};
use crate::colo::qmp::{QmpMessage, parse_line};

/// One event of the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimEvent {
    /// The VM stops (a checkpoint starts).
    Stop,
    /// The VM resumes (the checkpoint is acknowledged).
    Resume,
    /// MIGRATION with this status.
    Migration(&'static str),
    /// COLO_EXIT on the primary.
    ColoExit,
    /// Any other event.
    Other,
}

/// The migration statuses the script draws from.
pub const STATUSES: [&str; 6] = ["setup", "active", "device", "colo", "failed", "completed"];

/// One step of the script.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// What happens.
    pub event: SimEvent,
    /// Time since the previous event, µs.
    pub gap_us: u32,
    /// How long the event takes to reach the bridge, µs.
    pub delay_us: u32,
    /// How long each adapter request of the bridge takes to apply and be acknowledged, µs.
    pub latency_us: u32,
    /// Frames the guest sends in the gap before the event (if it is running then).
    pub frames: u8,
    /// Whether the event line carries QEMU's timestamp.
    pub timestamped: bool,
    /// The event happens but its line reaches the bridge mangled (it must not act on it).
    pub mangled: bool,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Frames released by commits (all checked).
    pub released: usize,
    /// Commits applied.
    pub commits: usize,
    /// Late checkpoints.
    pub late: u64,
    /// Whether the bridge stopped itself (too many late checkpoints).
    pub stopped: bool,
}

/// The QMP line of a step at time `ts` (µs).
pub fn line(step: &Step, ts: i64) -> String {
    if step.mangled {
        return "{\"event\":\"STOP\",\"timestamp\":".into();
    }
    let (name, data) = match step.event {
        SimEvent::Stop => ("STOP", serde_json::Value::Null),
        SimEvent::Resume => ("RESUME", serde_json::Value::Null),
        SimEvent::Migration(s) => ("MIGRATION", serde_json::json!({ "status": s })),
        SimEvent::ColoExit => (
            "COLO_EXIT",
            serde_json::json!({ "mode": "primary", "reason": "error" }),
        ),
        SimEvent::Other => ("RTC_CHANGE", serde_json::json!({ "offset": 0 })),
    };
    let mut v = serde_json::json!({ "event": name });
    if !data.is_null() {
        v["data"] = data;
    }
    if step.timestamped {
        v["timestamp"] =
            serde_json::json!({ "seconds": ts / 1_000_000, "microseconds": ts % 1_000_000 });
    }
    v.to_string()
}

/// Runs `steps` through a bridge with `config` and checks every commit; `Err` is the first
/// violation.
pub fn run(steps: &[Step], config: BridgeConfig) -> Result<Outcome, String> {
    // 1. The true timeline: event times, and the frames the guest sends while it runs.
    let base: i64 = 1_700_000_000_000_000;
    let mut times = Vec::with_capacity(steps.len());
    let mut frames: Vec<i64> = Vec::new();
    let mut t = base;
    let mut running = true;
    for s in steps {
        let gap = i64::from(s.gap_us);
        if running && gap > 1 {
            let n = i64::from(s.frames).min(gap - 1);
            for j in 1..=n {
                frames.push(t + j * gap / (n + 1));
            }
        }
        t += gap;
        times.push(t);
        match s.event {
            SimEvent::Stop => running = false,
            SimEvent::Resume => running = true,
            _ => {}
        }
    }

    // 2. The bridge, one event at a time; each request applied `latency` after the last.
    let mut bridge = Bridge::new(config);
    let mut applied: Vec<(i64, Action, usize)> = Vec::new();
    let mut free = base;
    let mut stopped = false;
    for (i, s) in steps.iter().enumerate() {
        let arrival = (times[i] + i64::from(s.delay_us)).max(free);
        let actions = match parse_line(line(s, times[i]).as_bytes()) {
            Ok(QmpMessage::Event(ev)) => match bridge.on_event(&ev, arrival) {
                Ok(a) => a,
                Err(BridgeError::TooManyLate(..)) => {
                    stopped = true;
                    break;
                }
                Err(e) => return Err(format!("step {i}: {e}")),
            },
            Ok(other) => return Err(format!("step {i}: not an event: {other:?}")),
            Err(_) if s.mangled => {
                bridge.on_unreadable();
                Vec::new()
            }
            Err(e) => return Err(format!("step {i}: {e}")),
        };
        let mut now = arrival;
        for a in actions {
            now += i64::from(s.latency_us);
            applied.push((now, a, i));
            bridge.acked(a, now);
        }
        free = now;
    }
    if !stopped {
        for a in bridge.on_eof() {
            free += 1;
            applied.push((free, a, steps.len()));
        }
    }

    // 3. The adapter: frames (first at equal times: the worst case for the rule) and requests
    // in time order.
    let mut out = Outcome {
        late: bridge.stats().late,
        stopped,
        ..Outcome::default()
    };
    let (mut tagged, mut open, mut resolved) = (false, 0u32, 0u32);
    let mut held: Vec<(u32, i64)> = Vec::new();
    let mut next_frame = 0;
    applied.sort_by_key(|(t, _, _)| *t);
    for (at, action, trigger) in applied {
        while next_frame < frames.len() && frames[next_frame] <= at {
            if tagged {
                held.push((open, frames[next_frame]));
            }
            next_frame += 1;
        }
        match action {
            Action::Tag if tagged => return Err(format!("tag of a tagged VF at {at}")),
            Action::Tag => (tagged, open, resolved) = (true, 1, 0),
            Action::Open(e) if tagged && e > open && e <= LAST_EPOCH => open = e,
            Action::Commit(e) if tagged && resolved < e && e <= open => {
                if !matches!(steps.get(trigger).map(|s| s.event), Some(SimEvent::Resume)) {
                    return Err(format!("commit {e} not at a RESUME (step {trigger})"));
                }
                // The checkpoint the RESUME acknowledges: the last STOP before it.
                let Some(stop) = (0..trigger)
                    .rev()
                    .find(|&j| steps[j].event == SimEvent::Stop)
                    .map(|j| times[j])
                else {
                    return Err(format!(
                        "commit {e} at step {trigger}: no checkpoint before it"
                    ));
                };
                for &(epoch, sent) in held.iter().filter(|(ep, _)| *ep <= e) {
                    if sent > stop {
                        return Err(format!(
                            "commit {e} at step {trigger} releases a frame of epoch {epoch} sent {} µs after the checkpoint's STOP",
                            sent - stop
                        ));
                    }
                    out.released += 1;
                }
                held.retain(|(ep, _)| *ep > e);
                resolved = e;
                out.commits += 1;
            }
            Action::Untag | Action::Unprotect | Action::Failover => {
                tagged = false;
                held.clear();
            }
            other => {
                return Err(format!(
                    "{other:?} refused by the adapter (tagged {tagged}, open {open}, resolved {resolved})"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn step(event: SimEvent, gap_us: u32, latency_us: u32) -> Step {
        Step {
            event,
            gap_us,
            delay_us: 50,
            latency_us,
            frames: 3,
            timestamped: true,
            mangled: false,
        }
    }

    /// A COLO run: migration, then checkpoints every 20 ms with a 6 ms pause.
    fn colo(latency_us: u32, checkpoints: usize) -> Vec<Step> {
        let mut s = vec![
            step(SimEvent::Migration("setup"), 1_000, 0),
            step(SimEvent::Migration("active"), 1_000, 0),
            step(SimEvent::Stop, 9_000, latency_us),
            step(SimEvent::Migration("device"), 100, 0),
            step(SimEvent::Migration("colo"), 2_000, 0),
            step(SimEvent::Resume, 2_000, latency_us),
        ];
        for _ in 0..checkpoints {
            s.push(step(SimEvent::Stop, 20_000, latency_us));
            s.push(step(SimEvent::Resume, 6_000, latency_us));
        }
        s
    }

    #[test]
    fn a_colo_run_commits_every_checkpoint_and_releases_only_covered_frames() {
        let out = run(&colo(300, 50), BridgeConfig::default()).unwrap();
        assert_eq!(out.commits, 51);
        assert_eq!(out.late, 0);
        assert!(out.released >= 150, "{out:?}");
    }

    #[test]
    fn a_slow_adapter_makes_checkpoints_late_then_stops_the_bridge() {
        // Opens apply 5.85 ms after the STOP (50 µs delivery + 5.8 ms): 150 µs before the
        // resume, under the 500 µs margin; with no margin asked they commit (except the
        // initial migration's, whose 4.1 ms pause is shorter than tag + open).
        let out = run(&colo(5_800, 20), BridgeConfig::default()).unwrap();
        assert!(out.stopped && out.commits == 0, "{out:?}");
        let out = run(
            &colo(5_800, 20),
            BridgeConfig {
                min_margin_us: 0,
                max_late: 10,
            },
        )
        .unwrap();
        assert!(!out.stopped && out.commits == 20, "{out:?}");
    }

    #[test]
    fn without_the_margin_check_a_late_open_would_release_early() {
        // The same rule with no margin check at all (commit at every RESUME) must fail the
        // oracle when opens apply after the resume: the check is not vacuous.
        let steps = colo(7_000, 5);
        let mut bad = steps.clone();
        for s in &mut bad {
            s.frames = 100;
        }
        let out = run(
            &bad,
            BridgeConfig {
                min_margin_us: i64::MIN / 4,
                max_late: 10,
            },
        );
        assert!(out.is_err(), "{out:?}");
        assert!(run(&bad, BridgeConfig::default()).is_ok());
    }

    #[test]
    fn random_scripts_never_release_early() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut commits = 0;
        for _ in 0..400 {
            let mut steps = colo(300, 2);
            for _ in 0..40 {
                let event = match rnd(8) {
                    0..=2 => SimEvent::Stop,
                    3..=5 => SimEvent::Resume,
                    6 => SimEvent::Migration(STATUSES[rnd(6) as usize]),
                    _ => [SimEvent::ColoExit, SimEvent::Other][rnd(2) as usize],
                };
                steps.push(Step {
                    event,
                    gap_us: rnd(30_000) as u32,
                    delay_us: rnd(3_000) as u32,
                    latency_us: rnd(8_000) as u32,
                    frames: rnd(6) as u8,
                    timestamped: rnd(10) != 0,
                    mangled: rnd(12) == 0,
                });
            }
            commits += run(&steps, BridgeConfig::default()).unwrap().commits;
        }
        assert!(commits > 400, "{commits}");
    }
}

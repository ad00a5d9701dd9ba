//! The COLO bridge's rule, as a state machine without I/O: QMP events of the primary QEMU in,
//! adapter requests out (docs/colo.md, "The rule").
//!
//! * Before COLO runs the VF is not checkpointing. The STOP that ends the initial migration
//!   (migration `active` or `device`) tags it and opens epoch 2 at once, so epoch 1 holds what
//!   the device sends while the VM is stopped. The RESUME that starts COLO (migration `colo`)
//!   commits epoch 1; a RESUME without COLO (the migration failed) untags the VF.
//! * In COLO, each STOP (a checkpoint starts, the vCPUs are already paused) opens epoch e + 1
//!   and *seals* epoch e. The RESUME that follows (the secondary loaded the checkpoint; QEMU
//!   emits it before the vCPUs run) commits e — only if the open of e + 1 was acknowledged at
//!   least `min_margin_us` before QEMU's timestamp of that RESUME. Otherwise frames the guest
//!   sent after the resume could be in e, so e is not committed (it is *late*); the next safe
//!   commit covers it, because a commit releases every epoch up to its own.
//! * COLO_EXIT on the primary (the secondary is gone; the primary runs alone): release what is
//!   held and stop buffering (`unprotect`). The primary QEMU's QMP connection ending (it died):
//!   discard what is held (`failover`) — the secondary replays from the last acknowledged
//!   checkpoint. `abort` is never needed: COLO does not roll the primary back.
//!
//! Epoch numbers here are relative (1 = the epoch the tag opened); the I/O side adds each VF's
//! base. [`sim`] replays event sequences against a model of the guest and the adapter and
//! checks that no commit releases a frame the acknowledged checkpoint does not cover.

use serde::Serialize;

use super::qmp::{EventKind, QmpEvent};

/// The largest epoch the adapter opens (epochs never wrap; docs/hac.md).
pub const LAST_EPOCH: u32 = 0xFFFF_FFFE;

/// What the bridge asks of the adapter, for each VF it follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", content = "epoch", rename_all = "snake_case")]
pub enum Action {
    /// Start checkpointing (epoch 1 opens).
    Tag,
    /// Open this epoch.
    Open(u32),
    /// Release every frame of epochs up to this one.
    Commit(u32),
    /// Stop checkpointing, releasing what is held (COLO never started).
    Untag,
    /// The backup is gone: release what is held, stop buffering.
    Unprotect,
    /// The primary is gone: discard what is held.
    Failover,
}

/// The bridge's limits.
#[derive(Clone, Copy, Debug)]
pub struct BridgeConfig {
    /// How long before QEMU's RESUME timestamp the open must have been acknowledged, µs.
    pub min_margin_us: i64,
    /// Late checkpoints in a row after which the bridge stops (fails closed: nothing more is
    /// committed, the adapter keeps holding).
    pub max_late: u32,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            min_margin_us: 500,
            max_late: 10,
        }
    }
}

/// Where the bridge is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not checkpointing (no COLO yet).
    Unprotected,
    /// Tagged at the initial migration's STOP, waiting for the RESUME that starts COLO.
    Starting,
    /// In COLO: every checkpoint is an epoch.
    Protected,
    /// COLO ended or the primary is gone; the bridge does nothing more.
    Ended,
}

/// Why the bridge stops.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    /// Too many checkpoints in a row whose open came too close to (or after) the resume.
    #[error(
        "{0} checkpoints in a row resumed less than {1} µs after their epoch opened: this host cannot keep the margin, stopping (the adapter keeps holding)"
    )]
    TooManyLate(u32, i64),
    /// The adapter's epoch space is used up (re-tag at a checkpoint boundary).
    #[error("epoch space exhausted at epoch {0}")]
    EpochsExhausted(u32),
}

/// Samples kept for the summary (beyond it they are counted, not kept).
const MAX_SAMPLES: usize = 1 << 20;

/// Counters and timing samples of a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BridgeStats {
    /// STOPs that started a checkpoint (including the initial migration's).
    pub checkpoints: u64,
    /// Checkpoints whose epoch was committed at their RESUME.
    pub committed: u64,
    /// Checkpoints whose open was late (not committed at their RESUME).
    pub late: u64,
    /// Late checkpoints in a row, now.
    pub late_in_a_row: u32,
    /// STOP while stopped, RESUME while running, events after the end.
    pub ignored_events: u64,
    /// Lines the bridge could not read; each one drops the sealed epoch's commit (see
    /// [`Bridge::on_unreadable`]).
    pub unreadable_lines: u64,
    /// RESUME timestamp minus the open's acknowledgement, µs, per checkpoint.
    pub margins_us: Vec<i64>,
    /// RESUME timestamp minus STOP timestamp, µs (the primary's pause).
    pub pauses_us: Vec<i64>,
    /// The open's acknowledgement minus the STOP timestamp, µs.
    pub open_after_stop_us: Vec<i64>,
    /// Samples not kept (over the limit).
    pub samples_dropped: u64,
}

impl BridgeStats {
    fn sample(&mut self, which: fn(&mut BridgeStats) -> &mut Vec<i64>, v: i64) {
        let list = which(self);
        if list.len() < MAX_SAMPLES {
            list.push(v);
        } else {
            self.samples_dropped += 1;
        }
    }
}

/// The epoch closed by the last STOP.
#[derive(Clone, Copy, Debug)]
struct Seal {
    epoch: u32,
    stop_us: i64,
    open_acked_us: Option<i64>,
}

/// The state machine.
#[derive(Debug)]
pub struct Bridge {
    config: BridgeConfig,
    phase: Phase,
    migration: Option<String>,
    stopped_at: Option<i64>,
    open: u32,
    committed: u32,
    seal: Option<Seal>,
    stats: BridgeStats,
}

impl Bridge {
    /// A bridge before migration starts.
    pub fn new(config: BridgeConfig) -> Bridge {
        Bridge {
            config,
            phase: Phase::Unprotected,
            migration: None,
            stopped_at: None,
            open: 0,
            committed: 0,
            seal: None,
            stats: BridgeStats::default(),
        }
    }

    /// Where the bridge is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The open epoch (0 = not checkpointing) and the last committed one.
    pub fn epochs(&self) -> (u32, u32) {
        (self.open, self.committed)
    }

    /// The run's counters.
    pub fn stats(&self) -> &BridgeStats {
        &self.stats
    }

    /// One event, arrived at `arrival_us` (same clock as QEMU's timestamps): what to ask of
    /// the adapter, in order. Report each acknowledgement with [`Bridge::acked`].
    pub fn on_event(&mut self, ev: &QmpEvent, arrival_us: i64) -> Result<Vec<Action>, BridgeError> {
        if self.phase == Phase::Ended {
            self.stats.ignored_events += 1;
            return Ok(Vec::new());
        }
        match &ev.kind {
            EventKind::Migration(status) => {
                self.migration = Some(status.clone());
                Ok(Vec::new())
            }
            EventKind::Stop => self.on_stop(ev.timestamp_us.unwrap_or(arrival_us)),
            EventKind::Resume => self.on_resume(ev.timestamp_us),
            EventKind::ColoExit { mode, .. } => {
                let was = self.phase;
                self.phase = Phase::Ended;
                self.seal = None;
                Ok(match (was, mode.as_str()) {
                    (Phase::Starting | Phase::Protected, "primary") => vec![Action::Unprotect],
                    _ => Vec::new(),
                })
            }
            EventKind::Shutdown | EventKind::Other(_) => Ok(Vec::new()),
        }
    }

    /// A line from QEMU could not be read. It may have been a STOP or a RESUME, so the
    /// bridge no longer knows where the guest's frames went since: the sealed epoch is not
    /// committed at the next RESUME, and a pending STOP is forgotten (the next RESUME is
    /// ignored). The epoch stays held; the commit of the next checkpoint the bridge sees whole
    /// (STOP, then RESUME) covers it (`commit e` releases every epoch up to e).
    pub fn on_unreadable(&mut self) {
        self.stats.unreadable_lines += 1;
        self.seal = None;
        self.stopped_at = None;
    }

    /// The QMP connection ended: the primary QEMU is gone.
    pub fn on_eof(&mut self) -> Vec<Action> {
        let was = self.phase;
        self.phase = Phase::Ended;
        self.seal = None;
        match was {
            Phase::Starting | Phase::Protected => vec![Action::Failover],
            Phase::Unprotected | Phase::Ended => Vec::new(),
        }
    }

    /// The adapter acknowledged `action` (for every VF) at `ack_us`.
    pub fn acked(&mut self, action: Action, ack_us: i64) {
        if let (Action::Open(e), Some(seal)) = (action, self.seal.as_mut())
            && seal.epoch.checked_add(1) == Some(e)
        {
            seal.open_acked_us = Some(ack_us);
            let after = ack_us.saturating_sub(seal.stop_us);
            self.stats.sample(|s| &mut s.open_after_stop_us, after);
        }
    }

    fn on_stop(&mut self, stop_us: i64) -> Result<Vec<Action>, BridgeError> {
        if self.stopped_at.is_some() {
            self.stats.ignored_events += 1;
            return Ok(Vec::new());
        }
        self.stopped_at = Some(stop_us);
        let migrating = matches!(
            self.migration.as_deref(),
            Some("active" | "device" | "pre-switchover")
        );
        let actions = match self.phase {
            Phase::Unprotected if migrating => {
                self.phase = Phase::Starting;
                self.open = 1;
                self.committed = 0;
                vec![Action::Tag, self.seal_and_open(stop_us)?]
            }
            Phase::Protected => vec![self.seal_and_open(stop_us)?],
            _ => return Ok(Vec::new()),
        };
        self.stats.checkpoints += 1;
        Ok(actions)
    }

    fn seal_and_open(&mut self, stop_us: i64) -> Result<Action, BridgeError> {
        if self.open >= LAST_EPOCH {
            return Err(BridgeError::EpochsExhausted(self.open));
        }
        self.seal = Some(Seal {
            epoch: self.open,
            stop_us,
            open_acked_us: None,
        });
        self.open += 1;
        Ok(Action::Open(self.open))
    }

    fn on_resume(&mut self, resume_us: Option<i64>) -> Result<Vec<Action>, BridgeError> {
        let Some(stop_us) = self.stopped_at.take() else {
            self.stats.ignored_events += 1;
            return Ok(Vec::new());
        };
        if let Some(r) = resume_us {
            self.stats
                .sample(|s| &mut s.pauses_us, r.saturating_sub(stop_us));
        }
        match self.phase {
            Phase::Starting if self.migration.as_deref() != Some("colo") => {
                // The migration ended without COLO: there is no backup to wait for.
                self.phase = Phase::Unprotected;
                self.seal = None;
                self.open = 0;
                Ok(vec![Action::Untag])
            }
            Phase::Starting | Phase::Protected => {
                self.phase = Phase::Protected;
                self.commit_sealed(resume_us)
            }
            Phase::Unprotected | Phase::Ended => Ok(Vec::new()),
        }
    }

    fn commit_sealed(&mut self, resume_us: Option<i64>) -> Result<Vec<Action>, BridgeError> {
        let Some(seal) = self.seal.take() else {
            return Ok(Vec::new());
        };
        // Without QEMU's timestamp of the resume nothing proves the open came first.
        let margin = match (resume_us, seal.open_acked_us) {
            (Some(r), Some(a)) => Some(r.saturating_sub(a)),
            _ => None,
        };
        if let Some(m) = margin {
            self.stats.sample(|s| &mut s.margins_us, m);
        }
        match margin {
            Some(m) if m >= self.config.min_margin_us && seal.epoch > self.committed => {
                self.committed = seal.epoch;
                self.stats.committed += 1;
                self.stats.late_in_a_row = 0;
                Ok(vec![Action::Commit(seal.epoch)])
            }
            _ => {
                self.stats.late += 1;
                self.stats.late_in_a_row += 1;
                if self.stats.late_in_a_row >= self.config.max_late.max(1) {
                    self.phase = Phase::Ended;
                    return Err(BridgeError::TooManyLate(
                        self.stats.late_in_a_row,
                        self.config.min_margin_us,
                    ));
                }
                Ok(Vec::new())
            }
        }
    }
}

pub mod sim;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(kind: EventKind, ts: i64) -> QmpEvent {
        QmpEvent {
            kind,
            timestamp_us: Some(ts),
        }
    }
    fn mig(s: &str) -> EventKind {
        EventKind::Migration(s.into())
    }

    /// Feeds `kind` at `ts` (arriving at once), acknowledging every action `ack_after` µs later.
    fn step(b: &mut Bridge, kind: EventKind, ts: i64, ack_after: i64) -> Vec<Action> {
        let actions = b.on_event(&ev(kind, ts), ts).unwrap();
        for a in &actions {
            b.acked(*a, ts + ack_after);
        }
        actions
    }

    fn started(config: BridgeConfig) -> Bridge {
        let mut b = Bridge::new(config);
        assert!(step(&mut b, mig("setup"), 0, 0).is_empty());
        assert!(step(&mut b, mig("active"), 10, 0).is_empty());
        assert_eq!(
            step(&mut b, EventKind::Stop, 1_000, 300),
            vec![Action::Tag, Action::Open(2)]
        );
        assert_eq!(b.phase(), Phase::Starting);
        assert!(step(&mut b, mig("device"), 1_100, 0).is_empty());
        assert!(step(&mut b, mig("colo"), 5_000, 0).is_empty());
        assert_eq!(
            step(&mut b, EventKind::Resume, 9_000, 0),
            vec![Action::Commit(1)]
        );
        assert_eq!(b.phase(), Phase::Protected);
        b
    }

    #[test]
    fn checkpoints_become_epochs() {
        let mut b = started(BridgeConfig::default());
        let mut t = 9_000;
        for k in 2..20u32 {
            t += 20_000;
            assert_eq!(
                step(&mut b, EventKind::Stop, t, 400),
                vec![Action::Open(k + 1)]
            );
            assert_eq!(
                step(&mut b, EventKind::Resume, t + 6_000, 0),
                vec![Action::Commit(k)]
            );
        }
        let s = b.stats();
        assert_eq!((s.checkpoints, s.committed, s.late), (19, 19, 0));
        assert_eq!(s.margins_us.last(), Some(&5_600));
        assert_eq!(s.pauses_us.last(), Some(&6_000));
        assert_eq!(s.open_after_stop_us.last(), Some(&400));
        assert_eq!(b.epochs(), (20, 19));
    }

    #[test]
    fn a_late_open_is_not_committed_and_the_next_commit_covers_it() {
        let mut b = started(BridgeConfig::default());
        // The open is acknowledged 200 µs before the resume: under the 500 µs margin.
        assert_eq!(
            step(&mut b, EventKind::Stop, 50_000, 5_800),
            vec![Action::Open(3)]
        );
        assert!(step(&mut b, EventKind::Resume, 56_000, 0).is_empty());
        // Acknowledged after the resume: late too.
        assert_eq!(
            step(&mut b, EventKind::Stop, 80_000, 9_000),
            vec![Action::Open(4)]
        );
        assert!(step(&mut b, EventKind::Resume, 86_000, 0).is_empty());
        assert_eq!(b.stats().margins_us[1..], [200, -3_000]);
        assert_eq!(
            step(&mut b, EventKind::Stop, 110_000, 100),
            vec![Action::Open(5)]
        );
        assert_eq!(
            step(&mut b, EventKind::Resume, 116_000, 0),
            vec![Action::Commit(4)]
        );
        let s = b.stats();
        assert_eq!((s.late, s.late_in_a_row), (2, 0));
    }

    #[test]
    fn an_unreadable_line_defers_the_commit_to_the_next_whole_checkpoint() {
        // Found by the colo_bridge fuzz target: the RESUME that ended a checkpoint reached
        // the bridge unreadable, the guest ran (its frames went into the sealed epoch while
        // the open was still queued), and a later RESUME was paired with the old STOP and
        // committed them before any checkpoint covered them.
        let mut b = started(BridgeConfig::default());
        assert_eq!(
            step(&mut b, EventKind::Stop, 50_000, 100),
            vec![Action::Open(3)]
        );
        b.on_unreadable();
        assert!(step(&mut b, EventKind::Resume, 90_000, 0).is_empty());
        // The next whole checkpoint commits everything up to its own epoch.
        assert_eq!(
            step(&mut b, EventKind::Stop, 110_000, 100),
            vec![Action::Open(4)]
        );
        assert_eq!(
            step(&mut b, EventKind::Resume, 116_000, 0),
            vec![Action::Commit(3)]
        );
        assert_eq!(b.stats().unreadable_lines, 1);
        assert_eq!(b.epochs(), (4, 3));
    }

    #[test]
    fn a_resume_without_a_timestamp_or_an_ack_commits_nothing() {
        let mut b = started(BridgeConfig::default());
        step(&mut b, EventKind::Stop, 50_000, 100);
        let no_ts = QmpEvent {
            kind: EventKind::Resume,
            timestamp_us: None,
        };
        assert!(b.on_event(&no_ts, 56_000).unwrap().is_empty());
        // The open was never acknowledged (e.g. the answer is still on its way).
        assert_eq!(
            b.on_event(&ev(EventKind::Stop, 70_000), 70_000).unwrap(),
            vec![Action::Open(4)]
        );
        assert!(step(&mut b, EventKind::Resume, 76_000, 0).is_empty());
        assert_eq!(b.stats().late, 2);
    }

    #[test]
    fn too_many_late_checkpoints_stop_the_bridge() {
        let mut b = started(BridgeConfig {
            min_margin_us: 500,
            max_late: 3,
        });
        let mut t = 100_000;
        for _ in 0..2 {
            step(&mut b, EventKind::Stop, t, 7_000);
            assert!(step(&mut b, EventKind::Resume, t + 6_000, 0).is_empty());
            t += 30_000;
        }
        step(&mut b, EventKind::Stop, t, 7_000);
        let e = b.on_event(&ev(EventKind::Resume, t + 6_000), t + 6_000);
        assert_eq!(e, Err(BridgeError::TooManyLate(3, 500)));
        assert!(!e.unwrap_err().to_string().contains('\n'));
        assert_eq!(b.phase(), Phase::Ended);
        assert!(step(&mut b, EventKind::Stop, t + 30_000, 0).is_empty());
    }

    #[test]
    fn colo_exit_on_the_primary_unprotects_and_a_dead_primary_fails_over() {
        let mut b = started(BridgeConfig::default());
        step(&mut b, EventKind::Stop, 50_000, 100);
        let exit = EventKind::ColoExit {
            mode: "primary".into(),
            reason: "error".into(),
        };
        assert_eq!(step(&mut b, exit, 60_000, 0), vec![Action::Unprotect]);
        assert!(step(&mut b, EventKind::Resume, 61_000, 0).is_empty());
        assert!(b.on_eof().is_empty());

        let mut b = started(BridgeConfig::default());
        step(&mut b, EventKind::Stop, 50_000, 100);
        assert_eq!(b.on_eof(), vec![Action::Failover]);
        assert_eq!(b.phase(), Phase::Ended);
    }

    #[test]
    fn a_migration_without_colo_untags() {
        let mut b = Bridge::new(BridgeConfig::default());
        step(&mut b, mig("active"), 0, 0);
        assert_eq!(
            step(&mut b, EventKind::Stop, 1_000, 100),
            vec![Action::Tag, Action::Open(2)]
        );
        step(&mut b, mig("failed"), 2_000, 0);
        assert_eq!(
            step(&mut b, EventKind::Resume, 3_000, 0),
            vec![Action::Untag]
        );
        assert_eq!((b.phase(), b.epochs()), (Phase::Unprotected, (0, 0)));
        // A pause outside a migration is not a checkpoint.
        assert!(step(&mut b, EventKind::Stop, 5_000, 0).is_empty());
        assert!(step(&mut b, EventKind::Resume, 6_000, 0).is_empty());
        assert!(b.on_eof().is_empty());
    }

    #[test]
    fn repeated_and_unmatched_events_are_counted_not_acted_on() {
        let mut b = started(BridgeConfig::default());
        assert!(step(&mut b, EventKind::Resume, 20_000, 0).is_empty());
        assert_eq!(
            step(&mut b, EventKind::Stop, 30_000, 100),
            vec![Action::Open(3)]
        );
        assert!(step(&mut b, EventKind::Stop, 31_000, 100).is_empty());
        assert_eq!(
            step(&mut b, EventKind::Resume, 36_000, 0),
            vec![Action::Commit(2)]
        );
        assert_eq!(b.stats().ignored_events, 2);
    }
}

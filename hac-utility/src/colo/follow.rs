//! `hac colo-bridge`: follows the primary QEMU's QMP socket and drives `hac serve` by the rule
//! of [`super::bridge`].
//!
//! A reader thread timestamps each QMP line as it arrives; the main thread feeds events to the
//! bridge and sends its requests, for every VF in order, on one control connection (so the
//! daemon applies them in that order). Each request and event is a JSON line in the log; the
//! summary (counters, pause / margin distributions) is returned at the end. Every failure of
//! the daemon or the QMP peer ends the run with a one-line error and no further commit: the
//! adapter keeps holding (fails closed).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use hac_control::{Client, Reply, Request, VfSummary};
use serde::Serialize;
use serde_json::{Value, json};

use super::bridge::{Action, Bridge, BridgeConfig, BridgeStats, Phase};
use super::qmp::{self, EventKind, MAX_LINE, QmpError, QmpEvent, QmpMessage};

/// What `hac colo-bridge` is told.
#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// The primary QEMU's QMP socket (`-qmp unix:PATH,server=on,wait=off`).
    pub qmp: PathBuf,
    /// `hac serve`'s control socket.
    pub socket: PathBuf,
    /// The VFs the VM owns.
    pub vfs: Vec<usize>,
    /// The rule's limits.
    pub bridge: BridgeConfig,
    /// A JSON line per event and request, if given.
    pub log: Option<PathBuf>,
    /// How long to keep trying to reach the QMP socket (QEMU may start after the bridge).
    pub connect_timeout: Duration,
}

/// Why the bridge stopped early. One line each.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The QMP socket or its peer failed.
    #[error("QMP: {0}")]
    Qmp(String),
    /// The daemon refused or failed a request.
    #[error("hac serve: {0}")]
    Daemon(String),
    /// The rule stopped the bridge (it cannot keep its margin).
    #[error("{0}")]
    Bridge(String),
    /// The run cannot start as asked.
    #[error("{0}")]
    Setup(String),
}

/// Milliseconds at a few quantiles of a sample.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Distribution {
    /// How many samples.
    pub n: usize,
    /// Smallest, ms.
    pub min_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

impl Distribution {
    /// The distribution of `us` (µs samples).
    pub fn of(us: &[i64]) -> Distribution {
        if us.is_empty() {
            return Distribution::default();
        }
        let mut v = us.to_vec();
        v.sort_unstable();
        let at = |q: usize| v[(v.len() - 1) * q / 100] as f64 / 1000.0;
        Distribution {
            n: v.len(),
            min_ms: at(0),
            p50_ms: at(50),
            p95_ms: at(95),
            max_ms: at(100),
        }
    }
}

/// The run's summary (`hac colo-bridge` prints it as one JSON object).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Where the bridge ended.
    pub phase: Option<Phase>,
    /// Why it ended.
    pub end: String,
    /// Checkpoints seen (STOPs in COLO, including the initial migration's).
    pub checkpoints: u64,
    /// Checkpoints committed at their RESUME.
    pub committed: u64,
    /// Checkpoints whose open came too close to the resume (covered by a later commit).
    pub late: u64,
    /// Events ignored (unmatched STOP/RESUME, after the end).
    pub ignored_events: u64,
    /// QMP lines that were not messages (counted, not acted on).
    pub malformed_lines: u64,
    /// Frames released by the adapter on the VFs (from the last answer per VF).
    pub released: u64,
    /// Frames discarded by the adapter on the VFs.
    pub discarded: u64,
    /// The primary's checkpoint pause (RESUME − STOP, QEMU's timestamps).
    pub pause: Distribution,
    /// The resume's timestamp minus the open's acknowledgement.
    pub margin: Distribution,
    /// The open's acknowledgement minus the STOP's timestamp.
    pub open_after_stop: Distribution,
    /// Timing samples not kept.
    pub samples_dropped: u64,
}

/// What the reader thread passes on.
enum Incoming {
    Line(Result<QmpMessage, QmpError>, i64),
    Eof,
    Failed(String),
}

/// Now on the host's real-time clock (QEMU's event clock), µs since the epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Reads lines of at most [`MAX_LINE`] bytes; a longer one is drained to its newline and
/// reported as [`QmpError::TooLong`].
fn reader(stream: UnixStream, tx: crossbeam_channel::Sender<Incoming>) {
    let mut r = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let limit = MAX_LINE as u64 + 1;
        let got = match r.by_ref().take(limit).read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Incoming::Failed(format!("reading: {e}")));
                return;
            }
        };
        let arrival = now_us();
        if got == 0 {
            let _ = tx.send(Incoming::Eof);
            return;
        }
        let msg = if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
            // Drain the rest of the line.
            let mut len = buf.len();
            loop {
                buf.clear();
                match r.by_ref().take(limit).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
                if buf.last() == Some(&b'\n') {
                    break;
                }
            }
            Err(QmpError::TooLong(len))
        } else {
            qmp::parse_line(buf.trim_ascii_end())
        };
        if tx.send(Incoming::Line(msg, arrival)).is_err() {
            return;
        }
    }
}

/// The run: its QMP writer, the daemon connection, the log and the state.
struct Run {
    qmp_out: UnixStream,
    rx: Receiver<Incoming>,
    client: Client,
    vfs: Vec<usize>,
    base: Vec<u32>,
    last: Vec<Option<VfSummary>>,
    log: Option<std::io::BufWriter<std::fs::File>>,
    bridge: Bridge,
    malformed: u64,
}

/// Runs the bridge until the primary's QMP connection ends, COLO ends, `stop` is set, or an
/// error; returns the summary (with the error, the summary so far).
pub fn run(config: &FollowConfig, stop: &Arc<AtomicBool>) -> (Summary, Result<(), FollowError>) {
    let mut run = match Run::start(config) {
        Ok(r) => r,
        Err(e) => return (Summary::default(), Err(e)),
    };
    let result = run.follow(stop);
    let end = match &result {
        Ok(why) => why.clone(),
        Err(e) => format!("error: {e}"),
    };
    (run.summary(end), result.map(|_| ()))
}

impl Run {
    fn start(config: &FollowConfig) -> Result<Run, FollowError> {
        if config.vfs.is_empty() {
            return Err(FollowError::Setup("give at least one --vf".into()));
        }
        let deadline = Instant::now() + config.connect_timeout;
        let stream = loop {
            match UnixStream::connect(&config.qmp) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(FollowError::Qmp(format!(
                        "cannot connect to {}: {e}",
                        config.qmp.display()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let qmp_out = stream
            .try_clone()
            .map_err(|e| FollowError::Qmp(format!("socket setup: {e}")))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("qmp-reader".into())
            .spawn(move || reader(stream, tx))
            .map_err(|e| FollowError::Setup(format!("cannot start the QMP reader: {e}")))?;
        let client =
            Client::connect(&config.socket).map_err(|e| FollowError::Daemon(e.to_string()))?;
        let log = match &config.log {
            Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
                |e| FollowError::Setup(format!("cannot create {}: {e}", p.display())),
            )?)),
            None => None,
        };
        let mut run = Run {
            qmp_out,
            rx,
            client,
            vfs: config.vfs.clone(),
            base: vec![0; config.vfs.len()],
            last: vec![None; config.vfs.len()],
            log,
            bridge: Bridge::new(config.bridge),
            malformed: 0,
        };
        run.handshake()?;
        Ok(run)
    }

    /// Greeting, capabilities, and the migration's state: the bridge must see the initial
    /// migration's STOP, so it refuses to start once that may have passed.
    fn handshake(&mut self) -> Result<(), FollowError> {
        match self.next_reply(None)? {
            QmpMessage::Greeting => {}
            other => {
                return Err(FollowError::Qmp(format!(
                    "expected the greeting, got {other:?}"
                )));
            }
        }
        self.command("qmp_capabilities")?;
        // MIGRATION events are sent only with the `events` capability; the rule needs them.
        self.command_with(
            "migrate-set-capabilities",
            json!({"capabilities": [{"capability": "events", "state": true}]}),
        )?;
        let status = self
            .command("query-migrate")?
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string();
        match status.as_str() {
            "none" | "setup" | "completed" | "failed" | "cancelled" => {}
            other => {
                return Err(FollowError::Setup(format!(
                    "the migration is already '{other}': start the bridge before `migrate`"
                )));
            }
        }
        let ev = QmpEvent {
            kind: EventKind::Migration(status),
            timestamp_us: None,
        };
        self.event(&ev, now_us())
    }

    /// Sends a command and waits for its answer (acting on events meanwhile).
    fn command(&mut self, name: &str) -> Result<Value, FollowError> {
        self.send_command(name, qmp::command(name))
    }

    /// The same with arguments.
    fn command_with(&mut self, name: &str, arguments: Value) -> Result<Value, FollowError> {
        let mut line = json!({"execute": name, "arguments": arguments}).to_string();
        line.push('\n');
        self.send_command(name, line)
    }

    fn send_command(&mut self, name: &str, line: String) -> Result<Value, FollowError> {
        self.qmp_out
            .write_all(line.as_bytes())
            .map_err(|e| FollowError::Qmp(format!("sending {name}: {e}")))?;
        match self.next_reply(Some(name))? {
            QmpMessage::Return(v) => Ok(v),
            QmpMessage::Error { class, desc } => {
                Err(FollowError::Qmp(format!("{name}: {class}: {desc}")))
            }
            other => Err(FollowError::Qmp(format!("{name}: unexpected {other:?}"))),
        }
    }

    /// The next non-event message; events before it are acted on.
    fn next_reply(&mut self, waiting_for: Option<&str>) -> Result<QmpMessage, FollowError> {
        let what = waiting_for.unwrap_or("the greeting");
        loop {
            match self.rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Incoming::Line(Ok(QmpMessage::Event(ev)), at)) => self.event(&ev, at)?,
                Ok(Incoming::Line(Ok(m), _)) => return Ok(m),
                Ok(Incoming::Line(Err(e), _)) => {
                    return Err(FollowError::Qmp(format!("waiting for {what}: {e}")));
                }
                Ok(Incoming::Eof) => {
                    return Err(FollowError::Qmp(format!(
                        "QEMU closed the socket before {what}"
                    )));
                }
                Ok(Incoming::Failed(e)) => return Err(FollowError::Qmp(e)),
                Err(_) => return Err(FollowError::Qmp(format!("no answer to {what} in 10 s"))),
            }
        }
    }

    fn follow(&mut self, stop: &Arc<AtomicBool>) -> Result<String, FollowError> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok("stopped by a signal (the adapter keeps what it holds)".into());
            }
            if self.bridge.phase() == Phase::Ended {
                return Ok("COLO ended".into());
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Incoming::Line(Ok(QmpMessage::Event(ev)), at)) => self.event(&ev, at)?,
                Ok(Incoming::Line(Ok(_), _)) => {}
                Ok(Incoming::Line(Err(e), at)) => {
                    self.malformed += 1;
                    self.bridge.on_unreadable();
                    self.log_line(json!({"t_us": at, "malformed": e.to_string()}));
                }
                Ok(Incoming::Eof)
                | Ok(Incoming::Failed(_))
                | Err(RecvTimeoutError::Disconnected) => {
                    let actions = self.bridge.on_eof();
                    self.log_line(json!({"t_us": now_us(), "ev": "EOF"}));
                    for a in actions {
                        self.apply(a)?;
                    }
                    return Ok("the primary's QMP connection ended".into());
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn event(&mut self, ev: &QmpEvent, at: i64) -> Result<(), FollowError> {
        let name = match &ev.kind {
            EventKind::Stop => "STOP".to_string(),
            EventKind::Resume => "RESUME".into(),
            EventKind::Migration(s) => format!("MIGRATION {s}"),
            EventKind::ColoExit { mode, reason } => format!("COLO_EXIT {mode} {reason}"),
            EventKind::Shutdown => "SHUTDOWN".into(),
            EventKind::Other(n) => n.clone(),
        };
        self.log_line(json!({"t_us": at, "ev": name, "ts_us": ev.timestamp_us}));
        let actions = self
            .bridge
            .on_event(ev, at)
            .map_err(|e| FollowError::Bridge(e.to_string()))?;
        for a in actions {
            self.apply(a)?;
        }
        Ok(())
    }

    /// Sends `action` for every VF, then reports the acknowledgement to the bridge.
    fn apply(&mut self, action: Action) -> Result<(), FollowError> {
        let sent = now_us();
        let mut epochs = Vec::with_capacity(self.vfs.len());
        for i in 0..self.vfs.len() {
            let vf = self.vfs[i];
            let base = self.base[i];
            let at = |e: u32| e.saturating_add(base);
            let request = match action {
                Action::Tag => Request::Tag { vf },
                Action::Open(e) => Request::Open { vf, epoch: at(e) },
                Action::Commit(e) => Request::Commit { vf, epoch: at(e) },
                Action::Untag => Request::Untag { vf },
                Action::Unprotect => Request::Unprotect { vf },
                Action::Failover => Request::Failover { vf },
            };
            let reply = self
                .client
                .call(&request)
                .map_err(|e| FollowError::Daemon(format!("{} on VF {vf}: {e}", request.op())))?;
            let summary = match reply {
                Reply::Tag(s)
                | Reply::Open(s)
                | Reply::Commit(s)
                | Reply::Untag(s)
                | Reply::Unprotect(s)
                | Reply::Failover(s) => s,
                other => {
                    return Err(FollowError::Daemon(format!(
                        "unexpected answer to {}: {other:?}",
                        request.op()
                    )));
                }
            };
            if action == Action::Tag {
                self.base[i] = summary.open_epoch.saturating_sub(1);
            }
            epochs.push(json!({"vf": vf, "open": summary.open_epoch, "committed": summary.committed_epoch,
                "buffered": summary.buffered_frames, "released": summary.released, "discarded": summary.discarded}));
            self.last[i] = Some(summary);
        }
        let acked = now_us();
        self.bridge.acked(action, acked);
        self.log_line(json!({"t_us": sent, "ack_us": acked, "action": action, "vfs": epochs}));
        Ok(())
    }

    fn log_line(&mut self, v: Value) {
        if let Some(log) = &mut self.log {
            // A log that cannot be written does not stop output commit.
            let _ = writeln!(log, "{v}").and_then(|()| log.flush());
        }
    }

    fn summary(&self, end: String) -> Summary {
        let s: &BridgeStats = self.bridge.stats();
        let sum = |f: fn(&VfSummary) -> u64| self.last.iter().flatten().map(f).sum();
        Summary {
            phase: Some(self.bridge.phase()),
            end,
            checkpoints: s.checkpoints,
            committed: s.committed,
            late: s.late,
            ignored_events: s.ignored_events,
            malformed_lines: self.malformed,
            released: sum(|v| v.released),
            discarded: sum(|v| v.discarded),
            pause: Distribution::of(&s.pauses_us),
            margin: Distribution::of(&s.margins_us),
            open_after_stop: Distribution::of(&s.open_after_stop_us),
            samples_dropped: s.samples_dropped,
        }
    }
}

//! `hac colo-bridge` against a stand-in QEMU (a QMP server this test drives) and a real
//! `hac serve` on the model: checkpoints become epochs, frames wait for the RESUME after their
//! checkpoint, a resume that beats the open is not committed, malformed QMP lines are counted,
//! the primary's death discards what is held; and the bridge refuses to start mid-migration.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{hac, serve, tmpdir};
use hac_control::{Stats, call_line};
use serde_json::{Value, json};

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// The QEMU side of the QMP connection.
struct FakeQemu {
    out: UnixStream,
    lines: BufReader<UnixStream>,
}

impl FakeQemu {
    /// Accepts the bridge, greets it and answers its two commands (`query-migrate` with
    /// `migrate`, `{}` when None).
    fn accept(listener: &UnixListener, migrate: Option<Value>) -> FakeQemu {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut q = FakeQemu {
            out: s.try_clone().unwrap(),
            lines: BufReader::new(s),
        };
        q.send(r#"{"QMP":{"version":{"qemu":{"micro":3,"minor":1,"major":11}},"capabilities":["oob"]}}"#);
        assert_eq!(q.command(), "qmp_capabilities");
        q.send(r#"{"return":{}}"#);
        assert_eq!(q.command(), "migrate-set-capabilities");
        q.send(r#"{"return":{}}"#);
        assert_eq!(q.command(), "query-migrate");
        q.send(&json!({ "return": migrate.unwrap_or(json!({})) }).to_string());
        q
    }

    fn command(&mut self) -> String {
        let mut l = String::new();
        self.lines.read_line(&mut l).unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        v["execute"].as_str().unwrap().to_string()
    }

    fn send(&mut self, line: &str) {
        self.out.write_all(line.as_bytes()).unwrap();
        self.out.write_all(b"\n").unwrap();
    }

    /// An event stamped `ts` µs.
    fn event(&mut self, name: &str, data: Option<Value>, ts: i64) {
        let mut v = json!({"event": name, "timestamp": {"seconds": ts / 1_000_000, "microseconds": ts % 1_000_000}});
        if let Some(d) = data {
            v["data"] = d;
        }
        self.send(&v.to_string());
    }
}

fn stats(socket: &Path) -> Stats {
    let r = call_line(socket, r#"{"op":"stats"}"#).unwrap();
    serde_json::from_value(r["result"].clone()).unwrap()
}

fn ok(socket: &Path, request: Value) {
    let r = call_line(socket, &request.to_string()).unwrap();
    assert_eq!(r["ok"], json!(true), "{request} → {r}");
}

fn wait_for(socket: &Path, what: &str, pred: impl Fn(&Stats) -> bool) -> Stats {
    let t = Instant::now();
    loop {
        let s = stats(socket);
        if pred(&s) {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out: {what}: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn bridge(dir: &Path, socket: &Path, extra: &[&str]) -> Child {
    hac()
        .args(["colo-bridge", "--vf", "1", "--qmp"])
        .arg(dir.join("qmp.sock"))
        .arg("--socket")
        .arg(socket)
        .arg("--log")
        .arg(dir.join("bridge.log"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the bridge to apply what the last event asked (its log grows a line per request).
fn wait_log(dir: &Path, needle: &str, count: usize) {
    let t = Instant::now();
    loop {
        let log = std::fs::read_to_string(dir.join("bridge.log")).unwrap_or_default();
        if log.matches(needle).count() >= count {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no {needle} #{count} in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends a RESUME stamped at least 2 ms (four times the bridge's default 500 µs margin) after
/// the adapter acknowledged the last open the bridge logged, so the checkpoint commits however
/// slowly this host ran the test (stamped at once, the margin was a race: a loaded CI machine
/// saw 204 µs, the checkpoint was late and never committed).
///
/// The last open is read again until its line is whole: a line caught mid-write must not
/// send the helper back to an older open's acknowledgement.
fn resume_after_open(q: &mut FakeQemu, dir: &Path) {
    let t = Instant::now();
    let ack = loop {
        let log = std::fs::read_to_string(dir.join("bridge.log")).unwrap_or_default();
        let last = log.lines().rfind(|l| l.contains("\"op\":\"open\""));
        if let Some(a) =
            last.and_then(|l| serde_json::from_str::<Value>(l).ok()?["ack_us"].as_i64())
        {
            break a;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no acknowledged open in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let at = ack + 2_000;
    let now = now_us();
    if now < at {
        std::thread::sleep(Duration::from_micros((at - now) as u64));
    }
    q.event("RESUME", None, now_us().max(at));
}

#[test]
fn checkpoints_become_epochs_and_the_primary_s_death_discards() {
    let dir = tmpdir("colo-bridge");
    let socket = dir.0.join("hac.sock");
    let _daemon = serve(&["--socket", socket.to_str().unwrap(), "--vfs", "2"]);
    let listener = UnixListener::bind(dir.0.join("qmp.sock")).unwrap();
    let child = bridge(&dir.0, &socket, &["--max-late", "3"]);
    let mut q = FakeQemu::accept(&listener, None);

    // Before COLO: frames leave at once.
    ok(&socket, json!({"op": "send", "vf": 1, "frames": 2}));
    wait_for(&socket, "unprotected frames out", |s| {
        s.port.wire_frames == 2
    });

    // The initial migration: its STOP tags the VF; the RESUME that starts COLO commits.
    q.event("MIGRATION", Some(json!({"status": "setup"})), now_us());
    q.event("MIGRATION", Some(json!({"status": "active"})), now_us());
    q.event("STOP", None, now_us());
    wait_log(&dir.0, "\"op\":\"open\"", 1);
    q.event("MIGRATION", Some(json!({"status": "device"})), now_us());
    q.event("MIGRATION", Some(json!({"status": "colo"})), now_us());
    resume_after_open(&mut q, &dir.0);
    wait_log(&dir.0, "\"op\":\"commit\"", 1);

    // The guest runs: its frames are held until the RESUME after the next STOP.
    ok(&socket, json!({"op": "send", "vf": 1, "frames": 5}));
    wait_for(&socket, "5 held", |s| s.vfs[1].hac_buffered_frames == 5);
    q.event("STOP", None, now_us());
    wait_log(&dir.0, "\"op\":\"open\"", 2);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        stats(&socket).port.wire_frames,
        2,
        "released before the ack"
    );
    // Garbage between the events is counted and never acted on; since an unreadable line
    // may have been a lost RESUME, the checkpoint it falls in commits nothing: its frames
    // wait for the next whole checkpoint.
    q.send("not json");
    q.send(&"x".repeat(70_000));
    q.send(r#"{"event":"MIGRATION"}"#);
    q.event("RESUME", None, now_us());
    std::thread::sleep(Duration::from_millis(100));
    let s = stats(&socket);
    assert_eq!((s.port.wire_frames, s.vfs[1].hac_buffered_frames), (2, 5));
    q.event("STOP", None, now_us());
    wait_log(&dir.0, "\"op\":\"open\"", 3);
    resume_after_open(&mut q, &dir.0);
    wait_log(&dir.0, "\"op\":\"commit\"", 2);
    wait_for(&socket, "the checkpoint's frames out", |s| {
        s.port.wire_frames == 7
    });

    // A RESUME stamped before the open was acknowledged: not committed.
    ok(&socket, json!({"op": "send", "vf": 1, "frames": 3}));
    wait_for(&socket, "3 held", |s| s.vfs[1].hac_buffered_frames == 3);
    let stop = now_us();
    q.event("STOP", None, stop);
    wait_log(&dir.0, "\"op\":\"open\"", 4);
    q.event("RESUME", None, stop + 1);
    std::thread::sleep(Duration::from_millis(100));
    let s = stats(&socket);
    assert_eq!((s.port.wire_frames, s.vfs[1].hac_buffered_frames), (7, 3));
    // The next checkpoint's commit covers them.
    q.event("STOP", None, now_us());
    wait_log(&dir.0, "\"op\":\"open\"", 5);
    resume_after_open(&mut q, &dir.0);
    wait_for(&socket, "the late checkpoint covered", |s| {
        s.port.wire_frames == 10
    });

    // The primary dies with frames held: they are discarded, never sent.
    ok(&socket, json!({"op": "send", "vf": 1, "frames": 4}));
    wait_for(&socket, "4 held", |s| s.vfs[1].hac_buffered_frames == 4);
    drop(q);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = wait_for(&socket, "failover discards", |s| {
        s.vfs[1].hac_discarded == 4
    });
    assert_eq!(s.port.wire_frames, 10);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["checkpoints"], json!(5), "{summary}");
    assert_eq!(summary["committed"], json!(3), "{summary}");
    assert_eq!(summary["late"], json!(1), "{summary}");
    assert_eq!(summary["malformed_lines"], json!(3), "{summary}");
    assert_eq!(summary["released"], json!(8), "{summary}");
    assert_eq!(summary["discarded"], json!(4), "{summary}");
    assert_eq!(summary["pause"]["n"], json!(4), "{summary}");
    assert_eq!(summary["phase"], json!("ended"), "{summary}");
}

#[test]
fn refuses_to_start_after_the_migration_began_and_stops_when_late_too_often() {
    let dir = tmpdir("colo-bridge-refuse");
    let socket = dir.0.join("hac.sock");
    let _daemon = serve(&["--socket", socket.to_str().unwrap(), "--vfs", "2"]);
    let listener = UnixListener::bind(dir.0.join("qmp.sock")).unwrap();

    let child = bridge(&dir.0, &socket, &[]);
    let _q = FakeQemu::accept(&listener, Some(json!({"status": "colo"})));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("start the bridge before `migrate`") && err.lines().count() == 1,
        "{err}"
    );

    // Every resume beats its open: after --max-late 2 the bridge stops, holding.
    let child = bridge(&dir.0, &socket, &["--max-late", "2"]);
    let mut q = FakeQemu::accept(&listener, None);
    q.event("MIGRATION", Some(json!({"status": "active"})), now_us());
    let t = now_us();
    q.event("STOP", None, t);
    q.event("MIGRATION", Some(json!({"status": "colo"})), t);
    q.event("RESUME", None, t + 1);
    wait_log(&dir.0, "\"ev\":\"RESUME\"", 1);
    ok(&socket, json!({"op": "send", "vf": 1, "frames": 2}));
    let t = now_us();
    q.event("STOP", None, t);
    q.event("RESUME", None, t + 1);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in a row") && err.lines().count() == 1,
        "{err}"
    );
    let s = wait_for(&socket, "still held", |s| s.vfs[1].hac_buffered_frames == 2);
    assert_eq!((s.port.wire_frames, s.vfs[1].hac_released), (0, 0));
}

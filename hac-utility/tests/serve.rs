//! `hac serve` end to end: the real binary, its Unix socket, `hac ctl`/`hac stats` and the
//! Prometheus endpoint, against the built-in model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hac_utility::control::Stats;
use hac_utility::serve::call;
use serde_json::{Value, json};

fn hac() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hac"))
}

/// A fresh directory, removed when the test ends (pass or fail).
struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpdir(name: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("hac-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

/// A daemon child process, killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    metrics: Option<String>,
}

impl Daemon {
    fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let socket = dir.join("hac.sock");
        let mut child = hac()
            .args(["serve", "--socket"])
            .arg(&socket)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The ready line names the socket (and the metrics address).
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("control socket"), "unexpected: {line:?}");
        let metrics = line
            .split("http://")
            .nth(1)
            .map(|s| s.trim().trim_end_matches("/metrics").to_string());
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
        });
        Daemon {
            child,
            socket,
            metrics,
        }
    }

    fn ok(&self, request: Value) -> Value {
        let r = call(&self.socket, &request.to_string()).unwrap();
        assert_eq!(r["ok"], json!(true), "{request} → {r}");
        r["result"].clone()
    }

    fn refused(&self, request: Value) -> Value {
        let r = call(&self.socket, &request.to_string()).unwrap();
        assert_eq!(r["ok"], json!(false), "{request} → {r}");
        r["error"].clone()
    }

    fn stats(&self) -> Stats {
        serde_json::from_value(self.ok(json!({"op": "stats"}))).unwrap()
    }

    /// Polls until `pred` holds (the model runs in real time).
    fn wait_for(&self, what: &str, pred: impl Fn(&Stats) -> bool) -> Stats {
        let t = Instant::now();
        loop {
            let s = self.stats();
            if pred(&s) {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "timed out: {what}: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        hac()
            .arg("ctl")
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn checkpoint_protocol_end_to_end() {
    let dir = tmpdir("e2e");
    let pcap = dir.join("wire.pcap");
    let d = Daemon::start(&dir, &["--vfs", "3", "--pcap", pcap.to_str().unwrap()]);
    let hello = d.ok(json!({"op": "hello", "id": 1}));
    assert_eq!(hello["vfs"], json!(3));
    assert_eq!(hello["backend"], json!("model"));

    // VF 1 checkpointing, VF 0 plain.
    d.ok(json!({"op": "tag", "vf": 1}));
    d.ok(json!({"op": "send", "vf": 1, "frames": 10, "len": 200}));
    d.ok(json!({"op": "send", "vf": 0, "frames": 5}));
    let s = d.wait_for("plain frames out, tagged held", |s| {
        s.port.wire_frames == 5 && s.vfs[1].hac_buffered_frames == 10
    });
    assert_eq!(s.vfs[1].hac_buffered_bytes, 10 * 200);
    assert_eq!(s.vfs[1].checkpointing, 1);
    assert_eq!(s.vfs[0].checkpointing, 0);
    // Nothing of epoch 1 leaks while uncommitted.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(d.stats().port.wire_frames, 5);

    // Epoch 2 opens; 4 more frames belong to it.
    d.ok(json!({"op": "open", "vf": 1, "epoch": 2}));
    d.ok(json!({"op": "send", "vf": 1, "frames": 4}));
    d.wait_for("epoch 2 held", |s| s.vfs[1].hac_buffered_frames == 14);
    // Commit 1 releases exactly epoch 1's ten frames.
    let c = d.ok(json!({"op": "commit", "vf": 1, "epoch": 1}));
    assert_eq!(c["committed_epoch"], json!(1));
    let s = d.wait_for("epoch 1 on the wire", |s| s.port.wire_frames == 15);
    assert_eq!(s.vfs[1].hac_released, 10);
    assert_eq!(s.vfs[1].hac_buffered_frames, 4);
    // Abort 2 discards the rest; none of it ever leaves.
    d.ok(json!({"op": "abort", "vf": 1, "epoch": 2}));
    let s = d.wait_for("epoch 2 discarded", |s| s.vfs[1].hac_discarded == 4);
    assert_eq!(s.vfs[1].hac_buffered_frames, 0);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(d.stats().port.wire_frames, 15);

    // HAC refusals are errors, not crashes: a stale commit, an epoch going backwards, an
    // untagged VF, a VF that does not exist.
    assert_eq!(
        d.refused(json!({"op": "commit", "vf": 1, "epoch": 1}))["code"],
        json!("refused")
    );
    assert_eq!(
        d.refused(json!({"op": "open", "vf": 1, "epoch": 1}))["code"],
        json!("refused")
    );
    assert_eq!(
        d.refused(json!({"op": "commit", "vf": 2, "epoch": 1}))["code"],
        json!("refused")
    );
    assert_eq!(
        d.refused(json!({"op": "tag", "vf": 3}))["code"],
        json!("no_such_vf")
    );

    // Failover discards everything held; unprotect releases and untags.
    d.ok(json!({"op": "open", "vf": 1, "epoch": 3}));
    d.ok(json!({"op": "send", "vf": 1, "frames": 3}));
    d.wait_for("3 held", |s| s.vfs[1].hac_buffered_frames == 3);
    d.ok(json!({"op": "failover", "vf": 1}));
    d.wait_for("failover discards", |s| s.vfs[1].hac_discarded == 7);
    d.ok(json!({"op": "send", "vf": 1, "frames": 2}));
    d.wait_for("2 held", |s| s.vfs[1].hac_buffered_frames == 2);
    let u = d.ok(json!({"op": "unprotect", "vf": 1}));
    assert_eq!(u["checkpointing"], json!(false));
    let s = d.wait_for("unprotect releases", |s| s.port.wire_frames == 17);
    assert_eq!(s.vfs[1].checkpointing, 0);
    // Limits and guard are accepted and reported.
    d.ok(json!({"op": "set_limits", "vf": 2, "frames": 64, "bytes": 65536}));
    d.ok(json!({"op": "set_guard", "bytes": 0}));
    assert_eq!(d.stats().port.guard_bytes, 0);

    // Every frame counted on the wire is in the pcap: stop the daemon, read the file back.
    let out = d.ctl(&["shutdown"]);
    assert!(out.status.success(), "{out:?}");
    let mut d = d;
    let status = d.child.wait().unwrap();
    assert!(status.success());
    assert!(!d.socket.exists(), "socket not removed on shutdown");
    let bytes = std::fs::read(&pcap).unwrap();
    assert_eq!(pcap_frames(&bytes), 17);
}

/// Counts the records of a pcap file.
fn pcap_frames(b: &[u8]) -> usize {
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + incl;
        n += 1;
    }
    assert_eq!(at, b.len(), "truncated pcap");
    n
}

#[test]
fn malformed_requests_get_errors_and_the_daemon_keeps_serving() {
    let dir = tmpdir("malformed");
    let d = Daemon::start(&dir, &["--vfs", "2"]);
    let mut bad = UnixStream::connect(&d.socket).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(bad.try_clone().unwrap());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"hello there".to_vec(), "bad_json"),
        (b"[1,2,3]".to_vec(), "bad_json"),
        (vec![0xff, 0xfe, b'{'], "bad_json"),
        (b"{}".to_vec(), "unknown_op"),
        (br#"{"op":"format_disk"}"#.to_vec(), "unknown_op"),
        (br#"{"op":"commit","vf":0}"#.to_vec(), "bad_field"),
        (
            br#"{"op":"commit","vf":-1,"epoch":1}"#.to_vec(),
            "bad_field",
        ),
        (br#"{"op":"tag","vf":0,"extra":1}"#.to_vec(), "bad_field"),
        (
            br#"{"op":"send","vf":0,"frames":5000000}"#.to_vec(),
            "bad_field",
        ),
        (br#"{"op":"tag","vf":99}"#.to_vec(), "no_such_vf"),
        (br#"{"op":"stats","vf":7}"#.to_vec(), "no_such_vf"),
        (br#"{"op":"open","vf":0,"epoch":2}"#.to_vec(), "refused"),
        (vec![b'x'; 100_000], "line_too_long"),
    ];
    for (line, code) in &cases {
        bad.write_all(line).unwrap();
        bad.write_all(b"\n").unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["ok"], json!(false), "{answer}");
        assert_eq!(v["error"]["code"], json!(code), "{answer}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // The id comes back even on errors.
    bad.write_all(b"{\"id\":\"x7\",\"op\":\"nope\"}\n").unwrap();
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    assert!(answer.contains("\"id\":\"x7\""), "{answer}");
    // The same connection still works…
    bad.write_all(b"{\"op\":\"hello\",\"id\":2}\n").unwrap();
    answer.clear();
    reader.read_line(&mut answer).unwrap();
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["ok"], json!(true));
    assert_eq!(v["id"], json!(2));
    // …a client that leaves mid-line does not hurt…
    let mut gone = UnixStream::connect(&d.socket).unwrap();
    gone.write_all(b"{\"op\":\"com").unwrap();
    drop(gone);
    // …and other clients are served.
    assert_eq!(d.ok(json!({"op": "hello"}))["vfs"], json!(2));
    // `hac ctl raw` reports the refusal in one line with exit status 2.
    let out = d.ctl(&["raw", "{\"op\":\"commit\"}"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: bad_field:"), "{err}");
    let out = d.ctl(&["commit", "0", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not tagged"));
}

#[test]
fn stats_table_and_prometheus_endpoint() {
    let dir = tmpdir("stats");
    let d = Daemon::start(&dir, &["--vfs", "2", "--metrics", "127.0.0.1:0"]);
    d.ok(json!({"op": "tag", "vf": 1}));
    d.ok(json!({"op": "send", "vf": 1, "frames": 6}));
    d.ok(json!({"op": "send", "vf": 0, "frames": 3}));
    d.wait_for("traffic", |s| {
        s.vfs[1].hac_buffered_frames == 6 && s.port.wire_frames == 3
    });

    let out = hac()
        .args(["stats", "--socket"])
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("NIC statistics (port):\n"), "{text}");
    assert!(text.contains("\n     wire_frames: 3\n"), "{text}");
    assert!(
        text.contains("VF 1 statistics (02:1b:21:c1:00:01, checkpointing):"),
        "{text}"
    );
    let vf1 = text.split("VF 1 statistics").nth(1).unwrap();
    assert!(vf1.contains("\n     hac_buffered_frames: 6\n"), "{text}");
    assert!(vf1.contains("\n     tx_packets: 6\n"), "{text}");

    let addr = d
        .metrics
        .clone()
        .expect("metrics address in the ready line");
    let (status, body) = http_get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("# TYPE hac_vf_hac_buffered_frames gauge\n"),
        "{body}"
    );
    assert!(
        body.contains("hac_vf_hac_buffered_frames{vf=\"1\"} 6\n"),
        "{body}"
    );
    assert!(
        body.contains("hac_vf_tx_packets_total{vf=\"0\"} 3\n"),
        "{body}"
    );
    assert!(body.contains("hac_port_wire_frames_total 3\n"), "{body}");
    let (status, _) = http_get(&addr, "/other");
    assert!(status.contains("404"), "{status}");
}

fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn bad_daemon_setups_fail_in_one_line_with_status_2() {
    let dir = tmpdir("setup");
    let check = |args: &[&str], needle: &str| {
        let out = hac().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    };
    let missing = dir.join("no/such/dir/hac.sock");
    check(
        &["serve", "--socket", missing.to_str().unwrap()],
        "directory does not exist",
    );
    let file = dir.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    check(
        &["serve", "--socket", file.to_str().unwrap()],
        "is not a socket",
    );
    let sock = dir.join("s.sock");
    check(
        &[
            "serve",
            "--socket",
            sock.to_str().unwrap(),
            "--metrics",
            "0.0.0.0:9187",
        ],
        "loopback only",
    );
    check(
        &["ctl", "--socket", sock.to_str().unwrap(), "hello"],
        "no daemon",
    );
    check(&["stats", "--socket", sock.to_str().unwrap()], "no daemon");
    // A real PF that is not there; a PF without its VF token.
    check(
        &[
            "serve",
            "--socket",
            sock.to_str().unwrap(),
            "--pci",
            "0000:fe:1f.6",
            "--vf-token",
            "2b4f6a1e-0c1d-4e5f-8a9b-0123456789ab",
        ],
        "no PCI device 0000:fe:1f.6",
    );
    let out = hac()
        .args([
            "serve",
            "--socket",
            sock.to_str().unwrap(),
            "--pci",
            "0000:fe:1f.6",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--vf-token"));
    assert!(!sock.exists());
    // A second daemon on a live socket is refused; the first keeps running.
    let d = Daemon::start(&dir, &["--vfs", "1"]);
    check(
        &["serve", "--socket", d.socket.to_str().unwrap()],
        "another daemon",
    );
    assert_eq!(d.ok(json!({"op": "hello"}))["vfs"], json!(1));
}

#[test]
fn sigterm_stops_cleanly_and_a_stale_socket_is_replaced() {
    let dir = tmpdir("sigterm");
    let mut d = Daemon::start(&dir, &["--vfs", "1"]);
    let status = Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(d.child.wait().unwrap().success());
    assert!(!d.socket.exists());
    // A socket file left by a daemon that was SIGKILLed is taken over.
    let mut d2 = Daemon::start(&dir, &["--vfs", "1"]);
    d2.child.kill().unwrap();
    d2.child.wait().unwrap();
    assert!(d2.socket.exists());
    let d3 = Daemon::start(&dir, &["--vfs", "1"]);
    assert_eq!(d3.ok(json!({"op": "hello"}))["vfs"], json!(1));
}

/// Runs `hac` as user nobody (needs root, which CI has; as another user the check cannot be
/// made and the test says so and returns).
fn as_nobody(args: &[&str]) -> Option<Output> {
    let me = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        eprintln!("not root: permission checks skipped");
        return None;
    }
    Some(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_hac"))
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn missing_permission_is_a_one_line_error() {
    let dir = tmpdir("perm");
    let d = Daemon::start(&dir, &["--vfs", "1"]);
    let Some(out) = as_nobody(&["ctl", "--socket", d.socket.to_str().unwrap(), "hello"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: permission denied on"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
    // The socket is 0600: nobody may not steer checkpoints; the daemon is unaffected.
    assert_eq!(d.ok(json!({"op": "hello"}))["vfs"], json!(1));
    // Nobody cannot create a socket in a root-only directory.
    std::fs::create_dir_all(dir.join("private")).unwrap();
    let private = dir.join("private");
    std::process::Command::new("chmod")
        .args(["700"])
        .arg(&private)
        .status()
        .unwrap();
    let sock = private.join("x.sock");
    let out = as_nobody(&["serve", "--socket", sock.to_str().unwrap()]).unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no permission"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
}

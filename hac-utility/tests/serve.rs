//! `hac serve` end to end: the real binary, its Unix socket, `hac ctl`/`hac stats` and the
//! Prometheus endpoint, against the built-in model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hac_control::Stats;
use hac_control::call_line as call;
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
        Daemon::start_with(hac(), dir, extra)
    }

    /// `hac serve` run by `command` (`hac` itself, or a shell that execs it).
    fn start_with(mut command: Command, dir: &Path, extra: &[&str]) -> Daemon {
        let socket = dir.join("hac.sock");
        let mut child = command
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
            .and_then(|s| s.split("/metrics").next())
            .map(str::to_string);
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

    /// What `hac stats` prints.
    fn stats_table(&self) -> String {
        let out = hac()
            .args(["stats", "--socket"])
            .arg(&self.socket)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
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

/// A daemon with 2 VFs and the metrics endpoint, after traffic: VF 1 tagged has sent 6 frames
/// (held), VF 0 plain 3 (on the wire).
fn start_with_traffic(dir: &Path) -> Daemon {
    let d = Daemon::start(dir, &["--vfs", "2", "--metrics", "127.0.0.1:0"]);
    d.ok(json!({"op": "tag", "vf": 1}));
    d.ok(json!({"op": "send", "vf": 1, "frames": 6}));
    d.ok(json!({"op": "send", "vf": 0, "frames": 3}));
    d.wait_for("traffic", |s| {
        s.vfs[1].hac_buffered_frames == 6 && s.port.wire_frames == 3
    });
    d
}

#[test]
fn stats_table_and_prometheus_endpoint() {
    let dir = tmpdir("stats");
    let d = start_with_traffic(&dir);

    let text = d.stats_table();
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
        body.contains("hac_vf_hac_buffered_frames{family=\"igb\",vf=\"1\"} 6\n"),
        "{body}"
    );
    assert!(
        body.contains("hac_vf_tx_packets_total{family=\"igb\",vf=\"0\"} 3\n"),
        "{body}"
    );
    assert!(
        body.contains("hac_port_wire_frames_total{family=\"igb\"} 3\n"),
        "{body}"
    );
    let (status, _) = http_get(&addr, "/other");
    assert!(status.contains("404"), "{status}");
}

fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // HTTP/1.1 keeps a connection open unless asked: this client reads to the end.
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Parses OpenMetrics text with the Python Prometheus client's parser: `[type, sample name,
/// labels, value]` per sample. `None` (with the reason printed) when the parser is not
/// installed; under `CI=true` that fails the test instead (.ci/run installs it).
fn parse_with_prometheus_client(text: &str) -> Option<Vec<(String, String, Value, f64)>> {
    const SCRIPT: &str = "import sys, json\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        out = [[f.type, s.name, s.labels, s.value]\n\
               for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
        print(json.dumps(out))\n";
    let have = Command::new("python3")
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        let why = "python3 with prometheus_client is not installed (pip install prometheus-client)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    Some(rows)
}

#[test]
fn a_real_scrape_parses_with_the_prometheus_parser_and_matches_stats() {
    use hac_control::{Metric, MetricKind, PortCounters, VfCounters};
    let dir = tmpdir("metrics-parse");
    // Traffic and epochs: VF 1 checkpointing (6 frames in epoch 1, committed; 2 held in
    // epoch 2), VF 0 plain (3 frames).
    let d = start_with_traffic(&dir);
    d.ok(json!({"op": "open", "vf": 1, "epoch": 2}));
    d.ok(json!({"op": "send", "vf": 1, "frames": 2}));
    d.wait_for("epoch 2 held", |s| s.vfs[1].hac_buffered_frames == 8);
    d.ok(json!({"op": "commit", "vf": 1, "epoch": 1}));
    let before = d.wait_for("epoch 1 drained", |s| {
        s.port.wire_frames == 9 && s.port.hac_drained_commits == 1
    });
    let (status, body) = http_get(d.metrics.as_ref().unwrap(), "/metrics");
    let out = d.ctl(&["stats"]);
    assert!(out.status.success(), "{out:?}");
    let after: Stats = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status.contains("200"), "{status}");
    let Some(rows) = parse_with_prometheus_client(&body) else {
        return;
    };

    // Samples by name and labels (`family` checked, then left out).
    let mut samples = std::collections::BTreeMap::new();
    for (_, name, labels, value) in &rows {
        let mut labels = labels.as_object().unwrap().clone();
        assert_eq!(labels.remove("family"), Some(json!("igb")), "{name}");
        let key: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        samples.insert(format!("{name}{{{}}}", key.join(",")), *value);
    }
    let get = |key: &str| -> f64 {
        *samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in {samples:?}"))
    };
    // A declared counter's sample name and its value's scale (ns are exported in seconds).
    let sample = |prefix: &str, m: &Metric, labels: &str| -> (String, f64) {
        let (base, scale) = match m.name.strip_suffix("_ns") {
            Some(base) => (format!("{base}_seconds"), 1e-9),
            None => (m.name.to_string(), 1.0),
        };
        let total = if m.kind == MetricKind::Counter {
            "_total"
        } else {
            ""
        };
        (format!("{prefix}{base}{total}{{{labels}}}"), scale)
    };
    // Every value lies between `hac ctl stats` before and after the scrape (equal when the
    // counter did not move; only the clock moves here).
    let between = |key: &str, scale: f64, b: u64, a: u64| {
        let v = get(key);
        let (lo, hi) = (b.min(a) as f64 * scale, b.max(a) as f64 * scale);
        assert!(
            v >= lo * (1.0 - 1e-12) && v <= hi * (1.0 + 1e-12),
            "{key}: {v} not in {lo}..={hi}"
        );
    };
    for ((m, b), a) in PortCounters::METRICS
        .iter()
        .zip(before.port.values())
        .zip(after.port.values())
    {
        let (key, scale) = sample("hac_port_", m, "");
        between(&key, scale, b, a);
    }
    for vf in 0..2 {
        let (b, a) = (before.vfs[vf].values(), after.vfs[vf].values());
        for (i, m) in VfCounters::METRICS.iter().enumerate() {
            let (key, scale) = sample("hac_vf_", m, &format!("vf={vf}"));
            between(&key, scale, b[i], a[i]);
        }
    }
    for (c, a) in before.device.iter().zip(&after.device) {
        between(
            &format!("hac_device_{}_total{{}}", c.name),
            1.0,
            c.value,
            a.value,
        );
    }
    // The values the traffic made, exactly.
    assert_eq!(get("hac_port_wire_frames_total{}"), 9.0);
    assert_eq!(get("hac_vf_hac_released_total{vf=1}"), 6.0);
    assert_eq!(get("hac_vf_hac_buffered_frames{vf=1}"), 2.0);
    assert_eq!(get("hac_vf_tx_packets_total{vf=0}"), 3.0);
    assert_eq!(get("hac_port_hac_commits_with_frames_total{}"), 1.0);
    // The histograms: one commit with frames; 6 checkpoint frames and 3 plain ones on the wire.
    assert_eq!(after.latency.len(), 3, "{:?}", after.latency);
    for h in &after.latency {
        let (name, labels) = match h.class.as_str() {
            "" => (format!("hac_{}_seconds", h.name), String::new()),
            class => (format!("hac_{}_seconds", h.name), format!("class={class}")),
        };
        assert_eq!(
            get(&format!("{name}_count{{{labels}}}")),
            h.count as f64,
            "{name}"
        );
        let sum = get(&format!("{name}_sum{{{labels}}}"));
        assert!(
            (sum - h.sum_ns as f64 / 1e9).abs() < 1e-9,
            "{name}: {sum} vs {h:?}"
        );
        let sep = if labels.is_empty() { "" } else { "," };
        let inf = format!("{name}_bucket{{{labels}{sep}le=+Inf}}");
        assert_eq!(get(&inf), h.count as f64, "{inf}");
    }
    assert_eq!(get("hac_commit_to_first_frame_seconds_count{}"), 1.0);
    assert_eq!(get("hac_added_delay_seconds_count{class=checkpoint}"), 6.0);
    assert_eq!(get("hac_added_delay_seconds_count{class=plain}"), 3.0);
    // Held about as long as the test took between send and commit: more than nothing.
    assert!(get("hac_added_delay_seconds_sum{class=checkpoint}") > 0.0);
}

/// A daemon with 2 VFs (and `extra` options), VF 1 exported through vfio-user in `dir/vu`
/// (returned), and the metrics endpoint.
fn start_exporting_vf1(dir: &Path, extra: &[&str]) -> (Daemon, PathBuf) {
    let vu = dir.join("vu");
    std::fs::create_dir(&vu).unwrap();
    let mut args = vec!["--vfs", "2", "--vfio-user", vu.to_str().unwrap()];
    args.extend(["--vfio-user-vfs", "1", "--metrics", "127.0.0.1:0"]);
    args.extend(extra);
    (Daemon::start(dir, &args), vu)
}

#[test]
fn an_mlx5_scrape_parses_with_its_device_and_endpoint_counters() {
    let dir = tmpdir("metrics-mlx5");
    let (d, _) = start_exporting_vf1(&dir, &["--family", "mlx5"]);
    let (status, body) = http_get(d.metrics.as_ref().unwrap(), "/metrics");
    let s = d.stats();
    assert!(status.contains("200"), "{status}");
    let Some(rows) = parse_with_prometheus_client(&body) else {
        return;
    };
    assert!(
        rows.iter().all(|r| r.2["family"] == json!("mlx5")),
        "{body}"
    );
    let has = |name: &str, vf: Option<&str>| {
        rows.iter()
            .any(|r| r.1 == name && vf.is_none_or(|v| r.2["vf"] == json!(v)))
    };
    for c in &s.device {
        assert!(
            has(&format!("hac_device_{}_total", c.name), None),
            "{}",
            c.name
        );
    }
    assert!(!s.vfs[1].vfio_user.is_empty());
    for c in &s.vfs[1].vfio_user {
        let name = format!("hac_vf_vfio_user_{}_total", c.name);
        assert!(has(&name, Some("1")) && !has(&name, Some("0")), "{name}");
    }
    assert!(has("hac_added_delay_seconds_count", None), "{body}");
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
    // The drain policy is for a real PF, within its 1000 Mb/s link.
    let s = sock.to_str().unwrap();
    check(
        &["serve", "--socket", s, "--drain-plain-rate", "200"],
        "--drain-plain-rate needs --pci",
    );
    check(
        &[
            "serve",
            "--socket",
            s,
            "--pci",
            "0000:fe:1f.6",
            "--vf-token",
            "2b4f6a1e-0c1d-4e5f-8a9b-0123456789ab",
            "--drain-plain-rate",
            "1001",
        ],
        "above the link speed",
    );
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

/// `f` on a thread; `None` if it does not finish within `limit` (the thread is left behind).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn idle_clients_never_lock_out_a_client_with_work() {
    // 64 idle connections used to lock everyone out ("too many clients (64)").
    let dir = tmpdir("idle-lockout");
    let d = Daemon::start(&dir, &["--vfs", "1"]);
    let idle: Vec<UnixStream> = (0..80)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let socket = d.socket.clone();
    let t = Instant::now();
    let r = within(Duration::from_secs(10), move || {
        call(&socket, r#"{"op":"hello"}"#)
    })
    .expect("hello answered");
    assert_eq!(r.unwrap()["ok"], json!(true));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The oldest idle clients made room; each was told why in one last line.
    let mut first = BufReader::new(&idle[0]);
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    first.read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["error"]["code"], json!("idle"), "{line}");
    line.clear();
    assert_eq!(
        first.read_line(&mut line).unwrap(),
        0,
        "closed after: {line}"
    );
    // The newest idle connection still works.
    let mut last = idle.last().unwrap();
    last.write_all(b"{\"op\":\"hello\",\"id\":9}\n").unwrap();
    let mut reader = BufReader::new(last);
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(
        line.contains("\"id\":9") && line.contains("\"ok\":true"),
        "{line}"
    );
}

#[test]
fn an_idle_client_is_closed_at_its_deadline_and_a_working_one_is_not() {
    let dir = tmpdir("idle-deadline");
    let d = Daemon::start(&dir, &["--vfs", "1", "--client-idle-timeout", "1"]);
    let quiet = UnixStream::connect(&d.socket).unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // A slow client that never completes a line is idle too.
    let mut slow = UnixStream::connect(&d.socket).unwrap();
    let busy = UnixStream::connect(&d.socket).unwrap();
    let mut busy_reader = BufReader::new(busy.try_clone().unwrap());
    let t = Instant::now();
    for i in 0..8 {
        let _ = slow.write_all(b" ");
        (&busy)
            .write_all(format!("{{\"op\":\"hello\",\"id\":{i}}}\n").as_bytes())
            .unwrap();
        let mut line = String::new();
        busy_reader.read_line(&mut line).unwrap();
        assert!(line.contains("\"ok\":true"), "request {i}: {line}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(t.elapsed() > Duration::from_secs(2));
    for (name, s) in [("quiet", &quiet), ("slow", &slow)] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut all = String::new();
        BufReader::new(s).read_to_string(&mut all).unwrap();
        let v: Value = serde_json::from_str(all.trim_end()).unwrap();
        assert_eq!(v["error"]["code"], json!("idle"), "{name}: {all}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--client-idle-timeout"),
            "{all}"
        );
    }
}

#[test]
fn metrics_answer_promptly_with_idle_connections_open() {
    // One scrape at a time with a 2 s read timeout: five idle connections made a scrape take
    // about 10 s, Prometheus's default scrape timeout.
    let dir = tmpdir("metrics-idle");
    let d = Daemon::start(&dir, &["--vfs", "1", "--metrics", "127.0.0.1:0"]);
    let addr = d.metrics.clone().unwrap();
    let idle: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    for round in 0..3 {
        let t = Instant::now();
        let a = addr.clone();
        let (status, body) = within(Duration::from_secs(15), move || http_get(&a, "/metrics"))
            .expect("scrape answered");
        let took = t.elapsed();
        assert!(status.contains("200"), "{status}");
        assert!(body.contains("hac_port_wire_frames_total"), "{body}");
        assert!(
            took < Duration::from_millis(1000),
            "round {round}: {took:?}"
        );
    }
    drop(idle);
}

#[test]
fn metrics_survive_a_connection_flood_and_malformed_requests() {
    // tiny_http, used before, started a thread per connection without limit and its accept
    // thread gave up for good on the first failed accept (EMFILE under a flood).
    let dir = tmpdir("metrics-flood");
    let d = Daemon::start(&dir, &["--vfs", "1", "--metrics", "127.0.0.1:0"]);
    let addr = d.metrics.clone().unwrap();
    let max = hac_utility::serve::MAX_METRICS_CONNECTIONS;
    // Ten times the cap of idle connections: the oldest are closed to make room.
    let flood: Vec<std::net::TcpStream> = (0..10 * max)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let a = addr.clone();
    let (status, body) = within(Duration::from_secs(15), move || http_get(&a, "/metrics"))
        .expect("scrape answered during the flood");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("hac_port_wire_frames_total"), "{body}");
    // The first connections of the flood were closed by the daemon (end of stream).
    let mut first = &flood[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(std::io::Read::read(&mut first, &mut buf).unwrap(), 0);
    drop(flood);
    // Malformed requests get an answer and a closed connection, not a stuck thread.
    for (request, want) in [
        ("\x16\x03\x01\x00\x05hello\r\n\r\n", "400"),
        ("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "405"),
        ("GET /nothing HTTP/1.1\r\nConnection: close\r\n\r\n", "404"),
    ] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert!(
            all.starts_with(&format!("HTTP/1.1 {want}")),
            "{request:?}: {all}"
        );
    }
    let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    long.resize(hac_utility::serve::MAX_HEAD + 10, b'a');
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&long);
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.starts_with("HTTP/1.1 431"), "{all}");
    // Two scrapes on one kept-alive connection.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..2 {
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        assert!(String::from_utf8(body).unwrap().ends_with("# EOF\n"));
    }
}

#[test]
fn the_send_queue_of_a_vf_is_bounded() {
    // A tagged VF that is never committed never drains its queue; `send` used to queue
    // without a total limit (151 MB per request).
    let dir = tmpdir("send-bound");
    let d = Daemon::start(&dir, &["--vfs", "2"]);
    d.ok(json!({"op": "tag", "vf": 1}));
    // A request that can never fit is a field error, not "busy, try again".
    let e = d.refused(json!({"op": "send", "vf": 1, "frames": 100000, "len": 1514}));
    assert_eq!(e["code"], json!("bad_field"), "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("exceed the 16777216 bytes"), "{msg}");
    d.ok(json!({"op": "send", "vf": 1, "frames": 10000, "len": 1514}));
    let e = d.refused(json!({"op": "send", "vf": 1, "frames": 10000, "len": 1514}));
    assert_eq!(e["code"], json!("busy"), "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("checkpointing"),
        "{e}"
    );
    let s = d.stats();
    assert_eq!(s.vfs[1].workload_refused, 110_000);
    assert!(s.vfs[1].workload_queued <= 10_000);
    // Another VF is not affected.
    d.ok(json!({"op": "send", "vf": 0, "frames": 10000, "len": 1514}));
    assert_eq!(d.stats().vfs[0].workload_refused, 0);
    // Once VF 1's frames leave (unprotect releases them), it may send again.
    d.ok(json!({"op": "unprotect", "vf": 1}));
    d.wait_for("VF 1 drained", |s| s.vfs[1].workload_queued < 2000);
    d.ok(json!({"op": "send", "vf": 1, "frames": 5000, "len": 1514}));
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn sockets_are_private_from_the_start_and_a_live_vfio_user_socket_is_not_taken_over() {
    let dir = tmpdir("sockets");
    let vu = dir.join("vu");
    std::fs::create_dir(&vu).unwrap();
    // A permissive umask must not decide who may connect.
    let mut sh = Command::new("sh");
    sh.args([
        "-c",
        "umask 000; exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_hac"),
    ]);
    let vu_arg = vu.to_str().unwrap();
    let d = Daemon::start_with(
        sh,
        &dir,
        &[
            "--vfs",
            "2",
            "--vfio-user",
            vu_arg,
            "--vfio-user-vfs",
            "0,1",
        ],
    );
    assert_eq!(mode(&d.socket), 0o600, "control socket");
    assert_eq!(mode(&vu.join("vf0.sock")), 0o600, "vfio-user socket");
    // Only the sockets are left in the directories (no private bind directories).
    let names = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&vu), ["vf0.sock", "vf1.sock"]);
    // A second daemon on the same vfio-user directory is refused in one line; the first
    // keeps its VFs.
    let other = dir.join("other.sock");
    let out = hac()
        .args(["serve", "--vfs", "2", "--socket"])
        .arg(&other)
        .args(["--vfio-user", vu_arg, "--vfio-user-vfs", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("another daemon is serving on"), "{err}");
    assert!(err.contains("vf1.sock"), "{err}");
    assert!(!other.exists());
    let mut c = UnixStream::connect(vu.join("vf1.sock")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    vfio_user_read_config(&mut c, 1);
    assert_eq!(d.ok(json!({"op": "hello"}))["vfs"], json!(2));
}

// ----- a vfio-user client ------------------------------------------------------------------

use hac_utility::vfio_user::wire::{Command as VuCommand, Header, Payload};

fn vu_message(id: u16, command: VuCommand, body: &[u8]) -> Vec<u8> {
    Header::request(id, command, body)
}

fn vu_send(c: &UnixStream, message: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let n = rustix::net::sendmsg(
        c,
        &[std::io::IoSlice::new(message)],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();
    assert_eq!(n, message.len());
}

fn vu_reply(c: &mut UnixStream) -> (Header, Vec<u8>) {
    let mut h = [0u8; 16];
    c.read_exact(&mut h).unwrap();
    let header = Header::parse(&h).unwrap();
    let mut body = vec![0u8; header.size as usize - 16];
    c.read_exact(&mut body).unwrap();
    (header, body)
}

/// Reads the vendor/device ID of the VF behind `c` (region 7, config space).
fn vfio_user_read_config(c: &mut UnixStream, id: u16) {
    let r = Payload::default().u64(0).u32(7).u32(4).0;
    vu_send(c, &vu_message(id, VuCommand::RegionRead, &r), &[]);
    let (h, body) = vu_reply(c);
    assert_eq!(h.id, id);
    assert_eq!(&body[16..], &[0x86, 0x80, 0xCA, 0x10]);
}

fn vu_region_write(c: &mut UnixStream, id: u16, region: u32, offset: u64, data: &[u8]) -> Header {
    let w = Payload::default()
        .u64(offset)
        .u32(region)
        .u32(data.len() as u32)
        .bytes(data)
        .0;
    vu_send(c, &vu_message(id, VuCommand::RegionWrite, &w), &[]);
    vu_reply(c).0
}

#[test]
fn a_vm_cannot_freeze_the_daemon_through_its_msix_descriptor() {
    // A descriptor that is not an eventfd (here a socket whose buffer is full) used to be
    // accepted; the first interrupt then blocked in write(2) under the device lock, and every
    // VF, the tick and the control socket stopped for good.
    use std::os::fd::AsFd;
    let dir = tmpdir("msix-freeze");
    let vu = dir.join("vu");
    std::fs::create_dir(&vu).unwrap();
    let vu_arg = vu.to_str().unwrap();
    let d = Daemon::start(
        &dir,
        &[
            "--vfs",
            "2",
            "--vfio-user",
            vu_arg,
            "--vfio-user-vfs",
            "0,1",
        ],
    );
    let mut c = UnixStream::connect(vu.join("vf0.sock")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (full, _peer) = UnixStream::pair().unwrap();
    full.set_nonblocking(true).unwrap();
    while (&full).write(&[0u8; 4096]).is_ok() {}
    full.set_nonblocking(false).unwrap();
    // SET_IRQS: MSI-X (index 2), vectors 0..3, DATA_EVENTFD | ACTION_TRIGGER.
    let set = Payload::default()
        .u32(20)
        .u32((1 << 2) | (1 << 5))
        .u32(2)
        .u32(0)
        .u32(3)
        .0;
    let fds = [full.as_fd(), full.as_fd(), full.as_fd()];
    vu_send(&c, &vu_message(1, VuCommand::DeviceSetIrqs, &set), &fds);
    let (set_irqs, _) = vu_reply(&mut c);
    // The guest's driver enables MSI-X and raises all three vectors (EIMS, then EICS).
    vu_region_write(&mut c, 2, 7, 0x72, &0x8000u16.to_le_bytes());
    vu_region_write(&mut c, 3, 0, 0x1524, &7u32.to_le_bytes());
    let socket = d.socket.clone();
    let answered = within(Duration::from_secs(10), move || {
        let mut c = c;
        vu_region_write(&mut c, 4, 0, 0x1520, &7u32.to_le_bytes());
        c
    });
    assert!(
        answered.is_some(),
        "the VF's own register write never returned"
    );
    let hello = within(Duration::from_secs(10), move || {
        call(&socket, r#"{"op":"hello"}"#)
    });
    assert!(hello.is_some(), "the control socket stopped answering");
    let vf1 = vu.join("vf1.sock");
    let other = within(Duration::from_secs(10), move || {
        let mut c1 = UnixStream::connect(vf1).unwrap();
        vfio_user_read_config(&mut c1, 5);
    });
    assert!(other.is_some(), "another VM's device stopped answering");
    assert_ne!(
        set_irqs.error, 0,
        "a socket accepted as an MSI-X eventfd: {set_irqs:?}"
    );
}

/// The named counter `name` in `list`.
fn named(list: &[hac_control::Counter], name: &str) -> u64 {
    list.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no counter {name} in {list:?}"))
        .value
}

#[test]
fn model_and_vfio_user_counters_reach_stats_and_metrics() {
    let dir = tmpdir("device-counters");
    let (d, vu) = start_exporting_vf1(&dir, &[]);
    let before = d.stats();
    let unknown = named(&before.device, "unknown_reads");
    assert!(before.vfs[0].vfio_user.is_empty(), "VF 0 is not exported");
    assert_eq!(named(&before.vfs[1].vfio_user, "misaligned"), 0);

    let mut c = UnixStream::connect(vu.join("vf1.sock")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A register no VF register decodes (between VFMAILBOX and PBACL): the model counts it.
    let r = Payload::default().u64(0x0F00).u32(0).u32(4).0;
    vu_send(&c, &vu_message(1, VuCommand::RegionRead, &r), &[]);
    assert_eq!(vu_reply(&mut c).0.error, 0);
    // A two-byte read at an odd offset: the endpoint counts it as misaligned.
    let r = Payload::default().u64(2).u32(0).u32(2).0;
    vu_send(&c, &vu_message(2, VuCommand::RegionRead, &r), &[]);
    assert_eq!(vu_reply(&mut c).0.error, 0);

    let s = d.stats();
    assert_eq!(named(&s.device, "unknown_reads"), unknown + 1, "{s:?}");
    let vf1 = &s.vfs[1].vfio_user;
    assert_eq!(named(vf1, "misaligned"), 1, "{vf1:?}");
    assert_eq!(named(vf1, "region_reads"), 2, "{vf1:?}");
    assert!(named(vf1, "messages") >= 2, "{vf1:?}");

    let text = d.stats_table();
    let port = text.split("VF 0 statistics").next().unwrap();
    assert!(
        port.contains(&format!("\n     unknown_reads: {}\n", unknown + 1)),
        "{text}"
    );
    let vf1_text = text.split("VF 1 statistics").nth(1).unwrap();
    assert!(
        vf1_text.contains("\n     vfio_user_misaligned: 1\n"),
        "{text}"
    );

    let (status, body) = http_get(d.metrics.as_ref().unwrap(), "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("# HELP hac_device_unknown_reads Register reads at offsets"),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "# TYPE hac_device_unknown_reads counter\nhac_device_unknown_reads_total{{family=\"igb\"}} {}\n",
            unknown + 1
        )),
        "{body}"
    );
    assert!(
        body.contains("# TYPE hac_vf_vfio_user_misaligned counter\n"),
        "{body}"
    );
    assert!(
        body.contains("hac_vf_vfio_user_misaligned_total{family=\"igb\",vf=\"1\"} 1\n"),
        "{body}"
    );
    assert!(
        !body.contains("hac_vf_vfio_user_misaligned_total{family=\"igb\",vf=\"0\"}"),
        "{body}"
    );
}

#[test]
fn ctl_subcommands_come_from_the_protocol_list_and_epochs_run_on_one_connection() {
    let dir = tmpdir("ctl-ops");
    let d = Daemon::start(&dir, &["--vfs", "2"]);
    let json_out = |args: &[&str]| -> Value {
        let out = d.ctl(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Every operation with fields, in each argument style of the list.
    assert_eq!(json_out(&["hello"])["backend"], json!("model"));
    assert_eq!(
        json_out(&["set-limits", "1", "--frames", "10", "--bytes", "20000"]),
        json!({"vf": 1, "limit_frames": 10, "limit_bytes": 20000})
    );
    assert_eq!(
        json_out(&["set-guard", "4096"]),
        json!({"guard_bytes": 4096})
    );
    assert_eq!(
        json_out(&["send", "0", "2", "--len", "60"]),
        json!({"vf": 0, "queued": 2, "len": 60})
    );
    assert_eq!(json_out(&["stats", "--vf", "1"])["vfs"][0]["vf"], json!(1));
    assert_eq!(json_out(&["tag", "1"])["checkpointing"], json!(true));
    assert_eq!(json_out(&["open", "1", "2"])["open_epoch"], json!(2));
    assert_eq!(json_out(&["commit", "1", "1"])["committed_epoch"], json!(1));
    assert_eq!(json_out(&["untag", "1"])["checkpointing"], json!(false));
    // Out of a field's range, or a bad number: a usage error before anything is sent.
    for args in [
        &["open", "1", "4294967296"][..],
        &["tag", "-1"],
        &["set-limits", "1"],
    ] {
        let out = d.ctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    // The epoch driver: tag, open/commit every period, untag; its summary counts them.
    let out = d.ctl(&["epochs", "0", "--period-ms", "5", "--duration-ms", "100"]);
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["commits"].as_u64().unwrap() >= 2, "{summary}");
    assert_eq!(summary["aborts"], json!(0), "{summary}");
    let s = d.stats();
    assert_eq!(s.vfs[0].checkpointing, 0, "untagged at the end: {s:?}");
}

/// One region read through a vfio-user socket: the reply's error and data.
fn vu_read(c: &mut UnixStream, id: u16, region: u32, offset: u64, count: u32) -> (u32, Vec<u8>) {
    let r = Payload::default().u64(offset).u32(region).u32(count).0;
    vu_send(c, &vu_message(id, VuCommand::RegionRead, &r), &[]);
    let (h, body) = vu_reply(c);
    assert_eq!(h.id, id);
    (h.error, body.get(16..).unwrap_or_default().to_vec())
}

#[test]
fn family_mlx5_exports_connectx_vfs_with_macs_from_our_pf_and_hac() {
    let dir = tmpdir("mlx5");
    let vu = dir.join("vu");
    std::fs::create_dir(&vu).unwrap();
    let d = Daemon::start(
        &dir,
        &[
            "--family",
            "mlx5",
            "--vfs",
            "2",
            "--vfio-user",
            vu.to_str().unwrap(),
            "--vfio-user-vfs",
            "0,1",
            "--wire-peer",
            "10.99.0.2/24",
        ],
    );
    let hello = d.ok(json!({"op": "hello"}));
    assert_eq!(hello["backend"], json!("model-mlx5"), "{hello}");
    assert_eq!(hello["vfio_user"].as_array().unwrap().len(), 2, "{hello}");

    let mut c = UnixStream::connect(vu.join("vf0.sock")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Config space: the ConnectX VF id mlx5_core binds.
    let (e, id) = vu_read(&mut c, 1, 7, 0, 4);
    assert_eq!((e, id), (0, vec![0xB3, 0x15, 0x1E, 0x10]));
    // The initialization segment, big-endian: command interface revision 5; the health
    // counter ticks with wall time (the daemon runs the device in real time).
    let (_, fw) = vu_read(&mut c, 2, 0, 4, 4);
    assert_eq!(u32::from_be_bytes(fw.try_into().unwrap()) >> 16, 5);
    let health = |c: &mut UnixStream, id| {
        let (_, h) = vu_read(c, id, 0, 0x1010, 4);
        u32::from_be_bytes(h.try_into().unwrap())
    };
    let first = health(&mut c, 3);
    std::thread::sleep(Duration::from_millis(300));
    assert!(health(&mut c, 4) > first, "the health counter must tick");
    // A 3-byte read is refused and counted; the connection goes on.
    let (e, _) = vu_read(&mut c, 5, 0, 0, 3);
    assert_ne!(e, 0);
    assert_eq!(vu_read(&mut c, 6, 7, 0, 4).0, 0);

    // The PF (our mlx5 driver, E-Switch manager) gave each VF the daemon's MAC scheme.
    let s = d.stats();
    for vf in 0..2 {
        assert_eq!(
            s.vfs[vf].mac,
            hac_utility::serve::vf_mac(vf).to_string(),
            "{s:?}"
        );
    }
    assert_eq!(named(&s.vfs[0].vfio_user, "misaligned"), 1, "{s:?}");
    // HAC through Mlx5AdapterHac: tag, epochs, untag.
    let t = d.ok(json!({"op": "tag", "vf": 1}));
    assert_eq!(t["checkpointing"], json!(true), "{t}");
    d.ok(json!({"op": "open", "vf": 1, "epoch": 2}));
    let c1 = d.ok(json!({"op": "commit", "vf": 1, "epoch": 1}));
    assert_eq!(c1["committed_epoch"], json!(1), "{c1}");
    d.ok(json!({"op": "untag", "vf": 1}));
    let e = d.refused(json!({"op": "tag", "vf": 5}));
    assert_eq!(e["code"], json!("no_such_vf"), "{e}");
    // No stand-in driver runs on an mlx5 VF.
    let e = d.refused(json!({"op": "send", "vf": 0, "frames": 1}));
    assert_eq!(e["code"], json!("unsupported"), "{e}");
}

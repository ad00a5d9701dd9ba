//! `hac serve --wire-tap/--wire-if` end to end, without QEMU: the model's wire joined to Linux
//! in a network namespace, a VF running our igbvf driver with an IP stack (`--vf-ip`), and a
//! Linux peer that pings it and moves data through TCP; with the VF checkpointing, its answers
//! reach Linux only after their epoch commits. Also: a veth taken down and up while serving
//! (counted, traffic resumes), the mlx5 model on a TAP, and the start-up errors.
//!
//! The namespace tests need root, `ip`, `ping`, `ethtool` and `python3` (`.ci/run` installs
//! them); without them they print why and pass. Every namespace and link gets a name unique to
//! this process and is removed when the test ends, failed or not. Waits are on conditions with
//! deadlines, not fixed sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn hac() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hac"))
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"))
}

fn sh(cmd: &str, args: &[&str]) {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Why the namespace tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    let uid = run("id", &["-u"]);
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces, TAPs and packet sockets need it)".into());
    }
    for tool in ["ip", "ping", "ethtool", "python3"] {
        if !have(tool) {
            return Some(format!("no `{tool}` on PATH (.ci/run installs it)"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    let probe = format!("hwprobe{}", std::process::id());
    let made = run("ip", &["netns", "add", &probe]);
    let _ = run("ip", &["netns", "del", &probe]);
    if !made.status.success() {
        return Some(format!(
            "cannot create a network namespace: {}",
            String::from_utf8_lossy(&made.stderr).trim()
        ));
    }
    None
}

macro_rules! skip_unless_able {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// Names unique to this process and test; namespaces and links removed on drop.
struct Net {
    tag: String,
    netns: Vec<String>,
    links: Vec<String>,
    dir: PathBuf,
}

impl Net {
    fn new(test: &str) -> Net {
        // Interface names have at most 15 bytes: "hw" + letter + pid (≤ 7 digits) + suffix.
        let tag = format!("{test}{}", std::process::id() % 10_000_000);
        let dir = std::env::temp_dir().join(format!("hac-wire-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Net {
            tag,
            netns: Vec::new(),
            links: Vec::new(),
            dir,
        }
    }

    fn name(&self, suffix: &str) -> String {
        format!("hw{}{suffix}", self.tag)
    }

    fn netns(&mut self, suffix: &str) -> String {
        let n = self.name(suffix);
        let _ = run("ip", &["netns", "del", &n]);
        sh("ip", &["netns", "add", &n]);
        self.netns.push(n.clone());
        n
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = run("ip", &["link", "del", l]);
        }
        for n in &self.netns {
            let _ = run("ip", &["netns", "del", n]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A daemon in a namespace, killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    fn start(netns: &str, dir: &Path, args: &[&str]) -> Daemon {
        let socket = dir.join("hac.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("ip")
            .args(["netns", "exec", netns, env!("CARGO_BIN_EXE_hac"), "serve"])
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut d = Daemon { child, socket };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.socket.exists() {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("hac serve exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "hac serve did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn call(&self, request: Value) -> Value {
        let r = hac_control::call_line(&self.socket, &request.to_string()).unwrap();
        assert_eq!(r["ok"], json!(true), "{request} -> {r}");
        r["result"].clone()
    }

    fn stats(&self) -> Value {
        self.call(json!({"op": "stats"}))
    }

    fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.stats();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A named device counter of a `stats` result.
fn device(stats: &Value, name: &str) -> u64 {
    stats["device"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no counter {name} in {stats}"))["value"]
        .as_u64()
        .unwrap()
}

fn vf(stats: &Value, vf: usize, name: &str) -> u64 {
    stats["vfs"][vf][name].as_u64().unwrap()
}

/// `ping` from `netns`: the RTTs (ms) of the replies.
fn ping(netns: &str, ip: &str, count: u32, interval: &str) -> Vec<f64> {
    let out = run(
        "ip",
        &[
            "netns",
            "exec",
            netns,
            "ping",
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "5",
            ip,
        ],
    );
    rtts(&String::from_utf8_lossy(&out.stdout))
}

fn rtts(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Pings until one reply comes (the link may just have come up), within `limit`.
fn ping_until_answered(netns: &str, ip: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while ping(netns, ip, 1, "1").is_empty() {
        assert!(Instant::now() < deadline, "no ping reply from {ip}");
    }
}

/// A TCP transfer of `len` pseudo-random bytes from `netns` to the VF's echo port and back:
/// whether every byte came back in order.
fn tcp_echo_intact(netns: &str, ip: &str, len: usize) -> bool {
    const CLIENT: &str = r#"
import socket, sys, threading, random
ip, n = sys.argv[1], int(sys.argv[2])
data = random.Random(7).randbytes(n)
s = socket.create_connection((ip, 7), timeout=20)
s.settimeout(20)
def writer():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=writer)
t.start()
got = bytearray()
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
t.join()
print("intact" if bytes(got) == data else f"corrupt {len(got)} of {n}")
"#;
    let out = run(
        "ip",
        &[
            "netns",
            "exec",
            netns,
            "python3",
            "-c",
            CLIENT,
            ip,
            &len.to_string(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "tcp {len} bytes: {} {}",
        text.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    text.trim() == "intact"
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The Linux side's receive counter of `dev` in `netns`.
fn rx_packets(netns: &str, dev: &str) -> u64 {
    let out = run(
        "ip",
        &[
            "netns",
            "exec",
            netns,
            "cat",
            &format!("/sys/class/net/{dev}/statistics/rx_packets"),
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn linux_peer_on_a_wire_tap_pings_and_tcps_a_vf_and_sees_its_output_only_after_commit() {
    skip_unless_able!();
    let mut net = Net::new("t");
    let ns = net.netns("n");
    let tap = net.name("t");
    let d = Daemon::start(
        &ns,
        &net.dir,
        &[
            "--vfs",
            "2",
            "--wire-tap",
            &tap,
            "--vf-ip",
            "0=10.77.0.2/24",
        ],
    );
    sh(
        "ip",
        &["-n", &ns, "addr", "add", "10.77.0.1/24", "dev", &tap],
    );
    sh("ip", &["-n", &ns, "link", "set", &tap, "up"]);
    ping_until_answered(&ns, "10.77.0.2", Duration::from_secs(10));

    // Ping and TCP without checkpointing.
    let plain = ping(&ns, "10.77.0.2", 10, "0.05");
    assert_eq!(plain.len(), 10, "every ping answered: {plain:?}");
    assert!(tcp_echo_intact(&ns, "10.77.0.2", 2_000_000));
    let s = d.stats();
    assert!(device(&s, "wire_port_to_host_frames") > 1000, "{s}");
    assert!(device(&s, "wire_port_from_host_frames") > 1000, "{s}");
    assert_eq!(device(&s, "vf_ip_bytes_echoed"), 2_000_000, "{s}");
    assert_eq!(device(&s, "wire_port_io_errors"), 0, "{s}");
    let _ = device(&s, "wire_port_from_host_queue_full");

    // Output commit, seen at the Linux peer: tagged, the VF's answer to one ping is held in
    // epoch 1; neither the port nor Linux sees it until epoch 1 commits. (A ping first, so
    // both neighbour caches are fresh and the held frame is the echo reply itself.)
    assert_eq!(ping(&ns, "10.77.0.2", 1, "1").len(), 1);
    d.call(json!({"op": "tag", "vf": 0}));
    let before = d.stats();
    let rx_before = rx_packets(&ns, &tap);
    let mut pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "ping",
            "-n",
            "-c",
            "1",
            "-W",
            "20",
            "10.77.0.2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let held = d.wait_for("the answer held", Duration::from_secs(10), |s| {
        vf(s, 0, "hac_buffered_frames") >= 1
    });
    assert_eq!(
        device(&held, "wire_port_to_host_frames"),
        device(&before, "wire_port_to_host_frames"),
        "nothing left the port before the commit: {held}"
    );
    // Held for a while (the daemon ticks every millisecond): still nothing reached Linux.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        rx_packets(&ns, &tap),
        rx_before,
        "Linux saw nothing before the commit"
    );
    assert!(pinger.try_wait().unwrap().is_none(), "ping still waiting");
    // Commit epoch 1; should the answer have needed an ARP exchange first (then the VF's ARP
    // frame was the one held), go on checkpointing every 20 ms until ping has its answer.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut epoch = 1;
    while pinger.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no answer after the commits");
        d.call(json!({"op": "open", "vf": 0, "epoch": epoch + 1}));
        d.call(json!({"op": "commit", "vf": 0, "epoch": epoch}));
        epoch += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = pinger.wait_with_output().unwrap();
    assert!(out.status.success(), "answered after the commit");
    assert!(rx_packets(&ns, &tap) > rx_before);
    d.call(json!({"op": "unprotect", "vf": 0}));

    // 20 ms epochs (a small checkpoint engine: `hac ctl epochs`) while Linux pings and moves
    // data: everything intact, each answer delayed until its epoch commits.
    let epochs = hac()
        .args(["ctl", "--socket"])
        .arg(&d.socket)
        .args(["epochs", "0", "--period-ms", "20", "--duration-ms", "20000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    d.wait_for("checkpointing", Duration::from_secs(5), |s| {
        vf(s, 0, "checkpointing") == 1
    });
    let checkpointed = ping(&ns, "10.77.0.2", 20, "0.05");
    let intact = tcp_echo_intact(&ns, "10.77.0.2", 500_000);
    let s = d.stats();
    let _ = Command::new("kill")
        .args(["-INT", &epochs.id().to_string()])
        .status();
    let summary = epochs.wait_with_output().unwrap();
    eprintln!(
        "ping RTT ms without checkpointing {plain:?} (mean {:.2}), with 20 ms epochs \
         {checkpointed:?} (mean {:.2}); epochs: {}",
        mean(&plain),
        mean(&checkpointed),
        String::from_utf8_lossy(&summary.stdout).trim()
    );
    assert!(intact, "TCP intact under 20 ms epochs");
    assert_eq!(checkpointed.len(), 20, "every ping answered");
    assert!(vf(&s, 0, "hac_released") > 0, "{s}");
    // Each answer waits for its epoch's commit: uniform over [0, 20 ms], mean about 10 ms (a
    // loaded machine only adds to it).
    assert!(mean(&checkpointed) >= 5.0, "answers wait for their commit");
}

#[test]
fn a_veth_taken_down_while_serving_is_counted_and_traffic_resumes() {
    skip_unless_able!();
    let mut net = Net::new("v");
    let ns_hac = net.netns("h");
    let ns_peer = net.netns("p");
    let (va, vb) = (net.name("a"), net.name("b"));
    sh(
        "ip",
        &[
            "-n", &ns_hac, "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns",
            &ns_peer,
        ],
    );
    net.links.push(va.clone());
    // Linux hands a packet socket frames as its stack left them: no checksum or segmentation
    // offload pending on the peer's side.
    sh(
        "ip",
        &[
            "netns", "exec", &ns_peer, "ethtool", "-K", &vb, "tx", "off", "tso", "off", "gso",
            "off",
        ],
    );
    sh(
        "ip",
        &["-n", &ns_peer, "addr", "add", "10.78.0.1/24", "dev", &vb],
    );
    sh("ip", &["-n", &ns_peer, "link", "set", &vb, "up"]);
    sh("ip", &["-n", &ns_hac, "link", "set", &va, "up"]);
    let d = Daemon::start(
        &ns_hac,
        &net.dir,
        &["--vfs", "2", "--wire-if", &va, "--vf-ip", "0=10.78.0.2/24"],
    );
    ping_until_answered(&ns_peer, "10.78.0.2", Duration::from_secs(10));
    assert!(tcp_echo_intact(&ns_peer, "10.78.0.2", 1_000_000));

    sh("ip", &["-n", &ns_hac, "link", "set", &va, "down"]);
    d.wait_for("the down event", Duration::from_secs(5), |s| {
        device(s, "wire_port_link_down_events") == 1
    });
    // The stand-in VM of VF 1 sends toward the wire while the link is down: counted drops.
    d.call(json!({"op": "send", "vf": 1, "frames": 20, "len": 128}));
    let s = d.wait_for("the drops", Duration::from_secs(5), |s| {
        device(s, "wire_port_to_host_link_down") >= 20
    });
    assert_eq!(device(&s, "wire_port_io_errors"), 0, "{s}");

    sh("ip", &["-n", &ns_hac, "link", "set", &va, "up"]);
    ping_until_answered(&ns_peer, "10.78.0.2", Duration::from_secs(15));
    assert!(tcp_echo_intact(&ns_peer, "10.78.0.2", 1_000_000));
    let s = d.stats();
    assert_eq!(device(&s, "wire_port_link_down_events"), 1, "{s}");
}

#[test]
fn the_mlx5_model_on_a_wire_tap_exchanges_frames_with_linux() {
    skip_unless_able!();
    let mut net = Net::new("m");
    let ns = net.netns("n");
    let tap = net.name("t");
    let d = Daemon::start(
        &ns,
        &net.dir,
        &["--family", "mlx5", "--vfs", "2", "--wire-tap", &tap],
    );
    sh(
        "ip",
        &["-n", &ns, "addr", "add", "10.79.0.1/24", "dev", &tap],
    );
    sh("ip", &["-n", &ns, "link", "set", &tap, "up"]);
    // Linux's ARP requests for an address on the wire enter the port.
    let _ = ping(&ns, "10.79.0.2", 2, "0.2");
    let s = d.wait_for("frames from Linux", Duration::from_secs(5), |s| {
        device(s, "wire_port_from_host_frames") >= 1
    });
    assert_eq!(device(&s, "wire_port_io_errors"), 0, "{s}");
    assert!(s["port"]["wire_frames"].as_u64().is_some(), "{s}");
}

/// `hac serve`'s error for `args`: status 2; one line unless clap refused the combination
/// (then its usage follows the first line).
fn serve_error(args: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("hac-wire-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = hac()
        .args(["serve", "--socket"])
        .arg(dir.join("s.sock"))
        .args(args)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let first = err.lines().next().unwrap_or_default().to_string();
    if !first.contains("cannot be used with") {
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    first
}

#[test]
fn bad_wire_ports_fail_in_one_line() {
    let e = serve_error(&["--wire-if", "hacnosuch0"]);
    assert!(e.contains("--wire-if hacnosuch0: "), "{e}");
    let e = serve_error(&["--wire-if", "a-name-that-is-too-long"]);
    assert!(e.contains("invalid interface name"), "{e}");
    let e = serve_error(&["--wire-tap", "a-name-that-is-too-long"]);
    assert!(
        e.contains("--wire-tap a-name-that-is-too-long: invalid interface name"),
        "{e}"
    );
    let e = serve_error(&["--wire-tap", "x", "--wire-peer", "10.0.0.1/24"]);
    assert!(e.contains("--wire-peer"), "{e}");
    let e = serve_error(&["--wire-tap", "x", "--wire-if", "y"]);
    assert!(e.contains("--wire-if"), "{e}");
    let e = serve_error(&["--vf-ip", "9=10.0.0.2/24"]);
    assert!(e.contains("--vf-ip 9"), "{e}");
    let e = serve_error(&["--family", "mlx5", "--vf-ip", "0=10.0.0.2/24"]);
    assert!(e.contains("--vf-ip needs the 82576 model"), "{e}");
}

#[test]
fn without_permission_a_wire_port_is_a_one_line_error() {
    // As nobody (when we are root and can switch): neither a TAP nor a packet socket opens.
    if !have("setpriv") || String::from_utf8_lossy(&run("id", &["-u"]).stdout).trim() != "0" {
        eprintln!("SKIPPED: needs root and setpriv to run as nobody");
        return;
    }
    let dir = std::env::temp_dir().join(format!("hac-wire-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    sh("chmod", &["777", dir.to_str().unwrap()]);
    for (flag, name) in [("--wire-if", "lo"), ("--wire-tap", "hacpermtap0")] {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                env!("CARGO_BIN_EXE_hac"),
                "serve",
                "--socket",
            ])
            .arg(dir.join("s.sock"))
            .args([flag, name])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(&format!("{flag} {name}: ")), "{err}");
        assert!(
            err.contains("ermission") || err.contains("not permitted"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! Running `hac serve` as a service: its `--config` file, `hac stats --watch`, and the shell
//! completions and man pages generated from the command-line definition — the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hac_control::{Client, Reply, Request};

mod common;
use common::{Proc, hac, serve, tmpdir};

fn hello(socket: &Path) -> hac_control::HelloInfo {
    match Client::connect(socket)
        .unwrap()
        .call(&Request::Hello {})
        .unwrap()
    {
        Reply::Hello(h) => h,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_config_file_sets_the_flags_and_the_command_line_beats_it() {
    let dir = tmpdir("config");
    let socket = dir.0.join("hac.sock");
    let file = dir.0.join("hac.toml");
    std::fs::write(
        &file,
        format!(
            "# hac serve\nsocket = \"{}\"\nmodel = true\nvfs = 2\nport_rate = \"10G\"\nclient_idle_timeout = 30\n",
            socket.display()
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    {
        let _d = serve(&["--config", f]);
        let h = hello(&socket);
        assert_eq!((h.vfs, h.port_rate.as_deref()), (2, Some("10G")));
    }
    {
        let _d = serve(&["--config", f, "--vfs", "3"]);
        let h = hello(&socket);
        assert_eq!((h.vfs, h.port_rate.as_deref()), (3, Some("10G")));
    }
    // An unknown key and a bad value: exit 2, one line naming the file, line, column and key.
    std::fs::write(&file, "vfs = 2\nwire_tapp = \"tap0\"\n").unwrap();
    let out = hac().args(["serve", "--config", f]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!("error: {f}:2:1: unknown key `wire_tapp`")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    std::fs::write(&file, "vfs = 2\nport_rate = 10\n").unwrap();
    let out = hac().args(["serve", "--config", f]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!("error: {f}:2:13: key `port_rate`: ")),
        "{err}"
    );
    let out = hac()
        .args(["serve", "--config", "/nonexistent/hac.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

/// Lines of a child's stdout, read on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `hac stats ARGS` with its stdout and stderr piped, and its stdout's lines.
fn stats_watcher(args: &[&str]) -> (Proc, mpsc::Receiver<String>) {
    let mut child = Proc(
        hac()
            .arg("stats")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = lines_of(&mut child.0);
    (child, rx)
}

/// Reads lines until `n` block headers have come.
fn wait_blocks(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while lines
        .iter()
        .filter(|l: &&String| l.starts_with("Every "))
        .count()
        < n
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => panic!("{e}: only {lines:?}"),
        }
    }
    lines
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stats_watch_prints_a_block_per_interval_until_ctrl_c_or_the_daemon_goes() {
    let dir = tmpdir("watch");
    let socket = dir.0.join("hac.sock");
    let s = socket.to_str().unwrap();
    let mut daemon = serve(&["--socket", s, "--vfs", "2"]);
    // Not a terminal: one block after another, no screen clearing.
    let (mut watcher, rx) = stats_watcher(&["--socket", s, "--vf", "1", "--watch", "0.2"]);
    let lines = wait_blocks(&rx, 3);
    assert!(
        lines[0].starts_with("Every 0.2s: hac stats --socket"),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains('\x1b')), "{lines:?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("VF 1 statistics"))
            .count(),
        2,
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("hac_released: 0")));
    // Ctrl-C ends it cleanly.
    let pid = watcher.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_exit(&mut watcher.0);
    assert_eq!(status.code(), Some(0));
    // The daemon going away ends it with one line and status 2.
    let (mut watcher, rx) = stats_watcher(&["--socket", s, "--watch", "0.2", "--json"]);
    let lines = wait_blocks(&rx, 2);
    assert!(
        lines.iter().any(|l| l.contains("\"wire_frames\"")),
        "{lines:?}"
    );
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    let status = wait_exit(&mut watcher.0);
    assert_eq!(status.code(), Some(2));
    let mut err = String::new();
    watcher
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    // A bad interval is a usage error.
    let out = hac()
        .args(["stats", "--socket", s, "--watch", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The visible subcommands and the long flags of `hac serve`, read from their `--help`.
fn help_words(args: &[&str], prefix: &str) -> Vec<String> {
    let out = hac().args(args).arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(prefix))
        .map(|w| w.trim_end_matches([',', '.', ')']).to_string())
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect()
}

fn subcommands() -> Vec<String> {
    let out = hac().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let commands = text
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .to_string();
    commands
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn man_pages_and_completions_come_from_the_command_line_definition() {
    let commands = subcommands();
    for c in ["serve", "ctl", "stats", "completions", "man", "vf-probe"] {
        assert!(commands.iter().any(|x| x == c), "{c} not in {commands:?}");
    }
    // `hac man`: the page names every subcommand.
    let out = hac().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH hac 1"), "{page}");
    for c in &commands {
        // roff escapes `-` as `\-`.
        assert!(page.contains(&c.replace('-', "\\-")), "{c} not in hac.1");
    }
    // `hac man --out DIR`: one page per subcommand.
    let dir = tmpdir("man");
    let out = hac().args(["man", "--out"]).arg(&dir.0).output().unwrap();
    assert!(out.status.success());
    for c in &commands {
        let page = dir.0.join(format!("hac-{c}.1"));
        assert!(page.exists(), "{} missing", page.display());
    }
    let serve_page = std::fs::read_to_string(dir.0.join("hac-serve.1")).unwrap();
    // The bash completion knows every flag of `hac serve`.
    let serve_flags = help_words(&["serve"], "--");
    for f in [
        "config",
        "socket",
        "vfs",
        "port-rate",
        "metrics",
        "vfio-user",
    ] {
        assert!(
            serve_flags.iter().any(|x| x == f),
            "{f} not in {serve_flags:?}"
        );
    }
    let out = hac().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let bash = String::from_utf8_lossy(&out.stdout);
    for f in &serve_flags {
        assert!(
            bash.contains(&format!("--{f}")),
            "--{f} not in the bash completion"
        );
        assert!(
            serve_page.contains(&format!("\\-\\-{}", f.replace('-', "\\-"))),
            "--{f} not in hac-serve.1"
        );
    }
    for c in &commands {
        assert!(bash.contains(c.as_str()), "{c} not in the bash completion");
    }
    for shell in ["zsh", "fish"] {
        let out = hac().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && out.stdout.len() > 1000, "{shell}");
    }
    assert_eq!(
        hac()
            .args(["completions", "tcsh"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

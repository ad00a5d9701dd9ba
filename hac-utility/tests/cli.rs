//! The `hac` binary as a user runs it: JSON on success, clear errors and exit codes on bad input.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn hac(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hac"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn vf_probe_on_the_model_reports_mac_link_and_mailbox() {
    let (code, out, _) = hac(&["vf-probe", "--model"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["device_id"], "0x10ca");
    assert_eq!(v["link"], "up");
    assert_eq!(v["mailbox"], "ok");
    let mac: igb_hw::MacAddress = v["mac"].as_str().unwrap().parse().unwrap();
    assert!(mac.is_valid_unicast() && mac.is_local());
}

#[test]
fn vf_probe_on_the_mlx5_model_reports_firmware_caps_mac_link_and_teardown() {
    let (code, out, _) = hac(&["vf-probe", "--model", "--family", "mlx5"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["family"], "mlx5");
    assert_eq!(v["vendor_id"], "0x15b3");
    assert_eq!(v["device_id"], "0x101e");
    assert_eq!(v["mac"], "02:4d:4c:58:00:00");
    assert_eq!(v["link"], "up");
    assert_eq!(v["mlx5"]["cmdif_rev"], 5);
    assert!(v["mlx5"]["firmware"].as_str().unwrap().contains('.'));
    assert!(v["mlx5"]["pages_returned"].as_u64().unwrap() > 0);
    assert!(v.get("stage").is_none());
    // The igb model is still the default.
    let (code, out, _) = hac(&["vf-probe", "--model", "--family", "igb"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["family"], "igbvf");
    assert!(v.get("mlx5").is_none());
    assert_eq!(
        hac(&["vf-probe", "--family", "mlx5", "--pci", "0000:01:10.0"]).0,
        2,
        "--family only picks a model; with --pci the ids decide"
    );
}

#[test]
fn malformed_pci_address_is_a_usage_error() {
    let (code, out, err) = hac(&["vf-probe", "--pci", "01:10"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("invalid PCI address"), "{err}");
}

#[test]
fn missing_device_is_a_json_error_with_exit_2() {
    let (code, out, err) = hac(&["vf-probe", "--pci", "0000:fe:1f.7"]);
    assert_eq!(code, 2);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: no PCI device 0000:fe:1f.7"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["stage"], "open");
    assert!(v["error"].as_str().unwrap().contains("0000:fe:1f.7"));
}

#[test]
fn arguments_are_checked() {
    assert_eq!(hac(&["vf-probe"]).0, 2, "needs --pci or --model");
    assert_eq!(
        hac(&["vf-probe", "--model", "--pci", "0000:01:10.0"]).0,
        2,
        "exclusive"
    );
    assert_eq!(hac(&["vf-probe", "--model", "--timeout-ms", "0"]).0, 2);
    assert_eq!(hac(&["frobnicate"]).0, 2);
    let (code, out, _) = hac(&["vf-probe", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--pci"));
}

#[test]
fn run_writes_the_report_directory() {
    let dir = std::env::temp_dir().join(format!("hac-cli-run-{}", std::process::id()));
    let scenario = dir.join("s.toml");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&scenario, "duration_ms = 30\nepoch_ms = 10\n[[vf]]\ncheckpointing = true\nrate_mbps = 200\n[[vf]]\nrate_mbps = 100\n").unwrap();
    let out = dir.join("out");
    let (code, stdout, err) = hac(&[
        "run",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("checkpointing"), "{stdout}");
    for f in ["report.json", "packets.csv", "wire.pcap", "summary.txt"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["vfs"].as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_scenarios_are_one_line_errors_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("hac-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "unknown-key",
            "duration_ms = 30\nspeed = 3\n[[vf]]\nrate_mbps = 1\n",
            "unknown field `speed`",
        ),
        (
            "wrong-type",
            "duration_ms = \"x\"\n[[vf]]\nrate_mbps = 1\n",
            "duration_ms",
        ),
        (
            "negative-rate",
            "duration_ms = 30\n[[vf]]\nrate_mbps = -1\n",
            "vf[0].rate_mbps",
        ),
        (
            "vf-range",
            "duration_ms = 30\n[[vf]]\ncheckpointing = true\nrate_mbps = 1\n[[event]]\nat_ms = 1\nkind = \"abort\"\nvf = 4\n",
            "event[0].vf",
        ),
        (
            "small-limit",
            "duration_ms = 30\n[[vf]]\ncheckpointing = true\nrate_mbps = 1\nlimit_bytes = 10\n",
            "at least one frame",
        ),
    ];
    for (name, text, needle) in cases {
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        let (code, out, err) = hac(&[
            "run",
            p.to_str().unwrap(),
            "--out",
            dir.join("o").to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(out.is_empty(), "{name}");
        assert!(err.contains(needle), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
    }
    let (code, _, err) = hac(&["run", dir.join("missing.toml").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn failover_node_and_client_subcommands_parse_their_arguments() {
    // `hac failover-demo` runs these hidden subcommands (the hac-ha crate's node, client and
    // lease arbiter).
    let (code, out, _) = hac(&["ha-node", "--help"]);
    assert_eq!(code, 0);
    for opt in [
        "--role",
        "--tap",
        "--repl-listen",
        "--repl-peer",
        "--arbiter",
        "--join",
        "--history-mib",
        "--epoch-ms",
        "--timeout-ms",
        "--out",
    ] {
        assert!(out.contains(opt), "{opt} missing from:\n{out}");
    }
    let (code, _, err) = hac(&["ha-node", "--role", "middle", "--tap", "tap0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("primary"), "{err}");
    assert_eq!(hac(&["ha-node", "--role", "backup"]).0, 2, "needs --tap");
    // No replication address is assumed: each role must be given its end of the link.
    let (code, _, err) = hac(&["ha-node", "--role", "backup", "--tap", "tap0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--repl-listen"), "{err}");
    let (code, _, err) = hac(&["ha-node", "--role", "primary", "--tap", "tap0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--repl-peer"), "{err}");
    let (code, out, _) = hac(&["ha-arbiter", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--listen") && out.contains("--lease-ms"),
        "{out}"
    );
    assert_eq!(hac(&["ha-arbiter"]).0, 2, "needs --listen");
    assert_eq!(
        hac(&["ha-arbiter", "--listen", "127.0.0.1:1", "--lease-ms", "0"]).0,
        2
    );
    let (code, out, _) = hac(&["ha-client", "--help"]);
    assert_eq!(code, 0);
    for opt in ["--connect", "--requests", "--window"] {
        assert!(out.contains(opt), "{opt} missing from:\n{out}");
    }
    assert_eq!(hac(&["ha-client", "--window", "0"]).0, 2);
}

#[test]
fn help_lists_the_operator_commands_only() {
    let (code, out, _) = hac(&["--help"]);
    assert_eq!(code, 0);
    for c in [
        "demo",
        "run",
        "vf-probe",
        "serve",
        "ctl",
        "stats",
        "failover-demo",
    ] {
        assert!(out.contains(c), "{c} missing from:\n{out}");
    }
    // The lab's tools are the hac-lab binary's (hac-utility/lab, tests/cli.rs there).
    for c in [
        "vf-traffic",
        "pf-switch",
        "vf-hac-check",
        "vf-smoltcp",
        "vf-mailbox",
        "bench",
        "ha-node",
        "ha-client",
    ] {
        assert!(!out.contains(c), "{c} in:\n{out}");
    }
    for c in ["vf-traffic", "pf-switch", "vf-mailbox", "bench"] {
        assert_eq!(hac(&[c, "--help"]).0, 2, "{c} is not a hac command");
    }
}

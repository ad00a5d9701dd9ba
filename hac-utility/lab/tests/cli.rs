//! The `hac-lab` binary as the QEMU referee runs it: JSON on success, clear errors and exit codes
//! on bad input.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn lab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hac-lab"))
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
fn help_lists_the_lab_commands() {
    let (code, out, _) = lab(&["--help"]);
    assert_eq!(code, 0);
    for c in [
        "vf-traffic",
        "pf-switch",
        "vf-hac-check",
        "vf-smoltcp",
        "vf-mailbox",
        "bench",
    ] {
        assert!(out.contains(c), "{c} missing from:\n{out}");
    }
    for c in ["pf-switch", "vf-hac-check", "vf-smoltcp", "bench"] {
        let (code, out, _) = lab(&[c, "--help"]);
        assert_eq!(code, 0, "{c}");
        assert!(out.contains("--"), "{c}: {out}");
    }
    assert_eq!(lab(&["serve"]).0, 2, "the daemon is hac's, not the lab's");
}

#[test]
fn vf_traffic_arguments_are_checked() {
    let (code, out, _) = lab(&["vf-traffic", "--help"]);
    assert_eq!(code, 0);
    for opt in ["--pci", "--dst-mac", "--count", "--expect-rx", "--mac"] {
        assert!(out.contains(opt), "{opt} missing from:\n{out}");
    }
    assert_eq!(
        lab(&["vf-traffic", "--dst-mac", "52:54:00:12:00:10"]).0,
        2,
        "needs --pci"
    );
    assert_eq!(
        lab(&["vf-traffic", "--pci", "0000:01:10.2"]).0,
        2,
        "needs --dst-mac"
    );
    let bad_mac = lab(&["vf-traffic", "--pci", "0000:01:10.2", "--dst-mac", "52:54"]);
    assert_eq!(bad_mac.0, 2, "{}", bad_mac.2);
    let bad_type = lab(&[
        "vf-traffic",
        "--pci",
        "0000:01:10.2",
        "--dst-mac",
        "52:54:00:12:00:10",
        "--ethertype",
        "0x0100",
    ]);
    assert_eq!(bad_type.0, 2, "an EtherType below 0x0600 is a length");
}

#[test]
fn vf_traffic_on_a_missing_device_is_a_json_error_with_exit_2() {
    let (code, out, _) = lab(&[
        "vf-traffic",
        "--pci",
        "0000:fe:1f.7",
        "--dst-mac",
        "52:54:00:12:00:10",
    ]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["stage"], "open");
    assert_eq!(v["dst_mac"], "52:54:00:12:00:10");
    assert!(v.get("traffic").is_none());
}

#[test]
fn vf_mailbox_on_a_missing_device_is_a_json_error_with_exit_1() {
    let (code, out, _) = lab(&["vf-mailbox", "--pci", "0000:fe:1f.7"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("0000:fe:1f.7"));
}

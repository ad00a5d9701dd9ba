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
fn malformed_pci_address_is_a_usage_error() {
    let (code, out, err) = hac(&["vf-probe", "--pci", "01:10"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("invalid PCI address"), "{err}");
}

#[test]
fn missing_device_is_a_json_error_with_exit_1() {
    let (code, out, _) = hac(&["vf-probe", "--pci", "0000:fe:1f.7"]);
    assert_eq!(code, 1);
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

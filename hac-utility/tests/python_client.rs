//! The Python client of examples/hac_client.py (standard library only) against a real
//! `hac serve --model`: it tags a VF, runs epochs and reads stats; its summary must agree with
//! the daemon's counters, and every answer it got must parse as the protocol's typed response
//! to its request (the types docs/control-schema.json is generated from).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;

use hac_control::{Client, Op, Reply, Request, parse_response};
use serde_json::Value;

mod common;
use common::{serve, tmpdir};

fn python3() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some("python3")
}

#[test]
fn the_python_client_runs_epochs_and_its_counts_match_the_daemon() {
    let Some(python) = python3() else {
        println!("skipped: python3 is not installed (the CI installs it)");
        return;
    };
    let dir = tmpdir("pyclient");
    let socket = dir.0.join("hac.sock");
    let daemon = serve(&[
        "--model",
        "--vfs",
        "2",
        "--socket",
        socket.to_str().unwrap(),
    ]);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hac_client.py");
    let transcript = dir.0.join("transcript.jsonl");
    let epochs = 6;
    let frames = 5;
    let out = Command::new(python)
        .arg(script)
        .arg("--socket")
        .arg(&socket)
        .args(["--vf", "1", "--epochs", &epochs.to_string()])
        .args(["--frames", &frames.to_string(), "--period-ms", "10"])
        .arg("--transcript")
        .arg(&transcript)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();

    // What the client says against what the daemon says.
    let stats = match Client::connect(&socket)
        .unwrap()
        .call(&Request::Stats { vf: Some(1) })
        .unwrap()
    {
        Reply::Stats(s) => s,
        other => panic!("{other:?}"),
    };
    let vf = &stats.vfs[0];
    // Every `send` epoch plus the final one that closes the last frames.
    assert_eq!(summary["epochs_committed"], epochs + 1, "{summary}");
    assert_eq!(
        summary["epochs_committed"],
        u64::from(vf.hac_committed_epoch)
    );
    assert_eq!(
        summary["committed_epoch"],
        u64::from(vf.hac_committed_epoch)
    );
    assert_eq!(summary["frames_sent"], epochs * frames, "{summary}");
    assert_eq!(summary["released"], vf.hac_released, "{summary}");
    assert_eq!(vf.hac_released, epochs * frames);
    assert_eq!(
        (vf.hac_discarded, vf.hac_buffered_frames, vf.checkpointing),
        (0, 0, 1)
    );

    // Every answer parses as the typed response to its request.
    let text = std::fs::read_to_string(&transcript).unwrap();
    let mut ops = std::collections::BTreeSet::new();
    for entry in text.lines() {
        let entry: Value = serde_json::from_str(entry).unwrap();
        let op = Op::from_name(entry["op"].as_str().unwrap()).unwrap();
        let response = parse_response(op, entry["response"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        assert!(response.result.is_ok(), "{op}: {response:?}");
        assert_eq!(response.id, Some(entry["request"]["id"].clone()));
        ops.insert(op);
    }
    for op in [
        Op::Hello,
        Op::Tag,
        Op::Open,
        Op::Commit,
        Op::Stats,
        Op::Send,
    ] {
        assert!(ops.contains(&op), "{op} not used");
    }
    drop(daemon);
}

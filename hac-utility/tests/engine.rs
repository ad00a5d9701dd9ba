//! The engine on a short scenario: output commit holds frame by frame, and the report files are
//! consistent with each other (csv totals = report totals = pcap frame count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hac_utility::engine::{self, Outcome};
use hac_utility::report;
use hac_utility::scenario::{Event, Family, Scenario};
use igb_model::PcapSink;

#[test]
fn demo_scenario_report_is_consistent() {
    report_is_consistent(Family::Igb);
}

#[test]
fn demo_scenario_report_is_consistent_on_mlx5() {
    report_is_consistent(Family::Mlx5);
}

fn report_is_consistent(family: Family) {
    let mut s = Scenario::demo(120);
    s.family = family;
    s.event.push(Event {
        at_ms: 51.0,
        kind: "abort".into(),
        vf: 0,
    });
    s.event.push(Event {
        at_ms: 110.0,
        kind: "backup_lost".into(),
        vf: 1,
    });
    let dir = std::env::temp_dir().join(format!(
        "hac-engine-{}-{}",
        family.as_str(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = PcapSink::new(std::io::BufWriter::new(
        std::fs::File::create(dir.join("wire.pcap")).unwrap(),
    ))
    .unwrap();
    let r = engine::run(&s, Some(Box::new(pcap)), &mut |_| {}).unwrap();
    // Output commit: no checkpoint frame on the wire before its release.
    for f in &r.frames {
        if let (Some(_), Some(w)) = (f.epoch, f.wire_ns) {
            let c = f
                .commit_ns
                .expect("a sent checkpoint frame has a release time");
            assert!(w >= c, "{f:?}");
        }
    }
    let rep = report::build(&r);
    report::write(&dir, &r, &rep).unwrap();
    // CSV rows by outcome = report totals.
    let csv = std::fs::read_to_string(dir.join("packets.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("vf,seq,epoch,len,submit_ns,commit_ns,wire_ns,outcome")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let count = |o: &str| rows.iter().filter(|r| r[7] == o).count() as u64;
    let sum = |f: fn(&report::VfTotals) -> u64| rep.vfs.iter().map(f).sum::<u64>();
    assert_eq!(count("sent"), sum(|v| v.sent));
    assert_eq!(count("discarded"), sum(|v| v.discarded));
    assert_eq!(count("buffered"), sum(|v| v.buffered));
    assert_eq!(
        count("sent"),
        rep.wire_frames,
        "every wire frame is a traced frame"
    );
    // The abort discarded something, and the adapter counted the same.
    assert!(count("discarded") > 0);
    assert_eq!(count("discarded"), sum(|v| v.hac_discarded));
    // pcap frame count = report.
    let pcap = std::fs::read(dir.join("wire.pcap")).unwrap();
    let mut at = 24;
    let mut n = 0u64;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + incl;
        n += 1;
    }
    assert_eq!(n, rep.wire_frames);
    assert!(
        rep.added_delay_plain.max_ns < rep.added_delay_checkpointing.p50_ns,
        "plain traffic is not held"
    );
    assert!(
        r.frames.iter().any(|f| f.outcome == Outcome::Buffered),
        "the open epoch is still held at the end"
    );
    eprintln!("{}", report::summary(&rep));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn shipped_examples_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            Scenario::parse(&p.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 3);
}

/// Issue 13 item 12: a VF held forever (the backup never answers within the run) while its
/// generator offers far more than the buffer takes: the generator's backlog stays bounded, the
/// run ends, and the smallest accepted rate neither overflows nor spins.
#[test]
fn generator_backlog_is_bounded_and_slow_rates_run() {
    let text = r#"
duration_ms = 40
port_rate = "1G"
epoch_ms = 5
[ack_delay]
min_ms = 60000
max_ms = 60000
[[vf]]
checkpointing = true
rate_mbps = 100000
min_frame = 60
max_frame = 60
limit_frames = 64
[[vf]]
rate_mbps = 0.001
pattern = "bursts"
burst_frames = 1024
"#;
    let s = Scenario::parse("held.toml", text).unwrap();
    let r = engine::run(&s, None, &mut |_| {}).unwrap();
    assert!(
        r.backlog[0] as usize <= engine::BACKLOG_CAP,
        "backlog {} above the cap",
        r.backlog[0]
    );
    assert!(r.backlog[0] > 60_000, "the generator did block at the cap");
    assert_eq!(
        r.hac[0].buffered_frames, 64,
        "held at the limit, nothing released"
    );
    assert_eq!(r.hac[0].released, 0);
    // The slow VF sent its one burst at t = 0 and nothing else.
    assert_eq!(r.frames.iter().filter(|f| f.vf == 1).count(), 1024);
}

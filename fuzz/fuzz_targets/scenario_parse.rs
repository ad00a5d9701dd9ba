//! Arbitrary text as a `hac run` scenario file: parsing never panics, a rejection is one line
//! that names the file, and an accepted scenario (shortened to 1 ms of virtual time) runs on the
//! model without an error or panic, accounts for every frame it generated and keeps its
//! generators' backlog within the documented cap.
#![no_main]

use hac_utility::engine;
use hac_utility::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::parse("fuzz.toml", text) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.toml: "), "{msg}");
            assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
        }
        Ok(mut s) => {
            s.validate("fuzz.toml")
                .expect("a parsed scenario validates");
            // What validation promises about the cost of the full run (docs/scenarios.md).
            assert!(s.offered_frames() <= hac_utility::scenario::MAX_OFFERED_FRAMES);
            s.duration_ms = 1;
            // Keep the events inside the shortened run.
            for e in &mut s.event {
                e.at_ms = e.at_ms.min(1.0);
            }
            let r = engine::run(&s, None, &mut |_| {}).expect("a valid scenario runs");
            let sent = r
                .frames
                .iter()
                .filter(|f| f.outcome == engine::Outcome::Sent)
                .count() as u64;
            assert!(sent <= r.wire_frames);
            for (vf, &b) in r.backlog.iter().enumerate() {
                let burst = s.vf[vf].burst_frames as usize;
                assert!(
                    b as usize <= engine::BACKLOG_CAP + burst,
                    "VF {vf} backlog {b}"
                );
            }
        }
    }
});

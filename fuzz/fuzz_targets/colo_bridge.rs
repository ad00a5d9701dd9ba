//! The COLO bridge (`hac colo-bridge`) on arbitrary input. The first byte selects the mode:
//!
//! * even: the rest is one QMP line — the parser never panics, every error is one line
//!   without control characters, and an event feeds a fresh bridge without panicking;
//! * odd: the rest is a script of events (7 bytes a step: kind, gap, delivery delay, request
//!   latency, frames, flags) replayed by the reference check `colo::bridge::sim`: every
//!   request the bridge makes is one the adapter accepts, and no commit releases a frame the
//!   guest sent after the STOP of the checkpoint that RESUME acknowledged (never a commit of
//!   an epoch not opened before the matching RESUME).
#![no_main]

use hac_utility::colo::bridge::sim::{self, STATUSES, SimEvent, Step};
use hac_utility::colo::bridge::{Bridge, BridgeConfig};
use hac_utility::colo::qmp::{QmpMessage, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        match parse_line(rest) {
            Ok(QmpMessage::Event(ev)) => {
                let mut b = Bridge::new(BridgeConfig::default());
                let _ = b.on_event(&ev, 0);
                let _ = b.on_event(&ev, i64::MAX);
                let _ = b.on_eof();
            }
            Ok(_) => {}
            Err(e) => {
                let m = e.to_string();
                assert!(!m.is_empty() && !m.chars().any(char::is_control), "{m:?}");
            }
        }
        return;
    }
    let margin = i64::from(mode >> 1) * 20;
    let steps: Vec<Step> = rest
        .chunks_exact(7)
        .take(400)
        .map(|c| Step {
            event: match c[0] % 10 {
                0..=3 => SimEvent::Stop,
                4..=7 => SimEvent::Resume,
                8 => SimEvent::Migration(STATUSES[usize::from(c[0] / 10) % STATUSES.len()]),
                _ if c[0] & 0x80 != 0 => SimEvent::ColoExit,
                _ => SimEvent::Other,
            },
            gap_us: u32::from(c[1]) * 200,
            delay_us: u32::from(c[2]) * 20,
            latency_us: u32::from(c[3]) * 40,
            frames: c[4] % 16,
            timestamped: c[5] & 1 == 0,
            mangled: c[5] & 0x0e == 0x0e,
        })
        .collect();
    let config = BridgeConfig {
        min_margin_us: margin,
        max_late: u32::from(c_or(rest.last(), 10)),
    };
    if let Err(e) = sim::run(&steps, config) {
        panic!("{e}");
    }
});

fn c_or(b: Option<&u8>, d: u8) -> u8 {
    b.map_or(d, |v| v % 16 + 1)
}

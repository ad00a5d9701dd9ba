//! `hac stats --watch SECONDS`, like `watch ethtool -S`: the counters again every interval —
//! redrawn in place on a terminal, one block after another otherwise (a log keeps them all).
//! It ends cleanly when told to stop (Ctrl-C) and with a one-line error when the daemon goes
//! away.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Shortest interval accepted, and the granularity at which a stop request is noticed.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Longest interval accepted (a day).
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Parses the `--watch` interval: seconds, fractions allowed, `0.1..=86400`.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    let range = MIN_INTERVAL.as_secs_f64()..=MAX_INTERVAL.as_secs_f64();
    if !range.contains(&secs) {
        return Err(format!(
            "{s} s is outside {}..={} s",
            range.start(),
            range.end()
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// How blocks are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// A terminal: clear it and draw the block at the top.
    Terminal,
    /// A file or pipe: one block after another, each under a header line.
    Log,
}

/// Home the cursor and clear the screen (ANSI/VT100).
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Calls `fetch` every `interval` and writes its text to `out` until `stop` is set (then
/// `Ok`) or `fetch` fails (then its error: the daemon went away). Each block has a header line
/// `Every Ns: TITLE (sample K, T s)`.
pub fn watch(
    interval: Duration,
    title: &str,
    screen: Screen,
    stop: &AtomicBool,
    out: &mut dyn Write,
    mut fetch: impl FnMut() -> Result<String, String>,
) -> Result<(), String> {
    let started = Instant::now();
    let mut next = started;
    let mut sample = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let text = fetch()?;
        sample += 1;
        let header = format!(
            "Every {}s: {title} (sample {sample}, {:.1} s)",
            interval.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        let block = match screen {
            Screen::Terminal => format!("{CLEAR}{header}\n\n{text}"),
            Screen::Log => format!("{header}\n{text}\n"),
        };
        out.write_all(block.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write the counters: {e}"))?;
        next += interval;
        // Sleep in short steps so that a stop request is taken within MIN_INTERVAL.
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= next {
                // A slow daemon or a suspended process: do not try to catch up.
                if now - next > interval {
                    next = now;
                }
                break;
            }
            std::thread::sleep((next - now).min(MIN_INTERVAL));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn intervals_are_checked() {
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_interval("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "0.01", "x", "1e9", "NaN", ""] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    /// Runs [`watch`] at 100 ms on `screen` with `fetch` (called with the sample number and the
    /// stop flag); its result and output.
    fn run(
        screen: Screen,
        mut fetch: impl FnMut(u32, &AtomicBool) -> Result<String, String>,
    ) -> (Result<(), String>, String) {
        let stop = AtomicBool::new(false);
        let mut out = Vec::new();
        let mut n = 0;
        let r = watch(
            Duration::from_millis(100),
            "hac stats",
            screen,
            &stop,
            &mut out,
            || {
                n += 1;
                fetch(n, &stop)
            },
        );
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn log_blocks_follow_each_other_until_the_fetch_fails() {
        let (r, text) = run(Screen::Log, |n, _| {
            if n > 3 {
                Err("no daemon on /tmp/x.sock".into())
            } else {
                Ok(format!("     wire_frames: {n}\n"))
            }
        });
        assert_eq!(r, Err("no daemon on /tmp/x.sock".into()));
        assert_eq!(text.matches("Every 0.1s: hac stats (sample ").count(), 3);
        assert!(text.contains("wire_frames: 3\n") && !text.contains(CLEAR));
    }

    #[test]
    fn a_terminal_is_redrawn_and_a_stop_ends_cleanly() {
        let (r, text) = run(Screen::Terminal, |n, stop| {
            if n == 2 {
                stop.store(true, Ordering::Relaxed);
            }
            Ok("x\n".into())
        });
        assert_eq!(r, Ok(()));
        assert_eq!(text.matches(CLEAR).count(), 2);
        assert!(text.starts_with(CLEAR));
    }
}

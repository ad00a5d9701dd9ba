//! Arbitrary bytes as what a client sends the Prometheus endpoint of `hac serve`: the request
//! parser never panics, never reports a head longer than its input, never waits for more once
//! `MAX_HEAD` bytes are in, and is stable under more input — a complete request parses the
//! same on its own and with any bytes after it (pipelining), and a prefix of what is still
//! partial is partial too.
#![no_main]

use hac_utility::serve::{MAX_HEAD, Parsed, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(2 * MAX_HEAD)];
    let parsed = parse_request(data);
    match &parsed {
        Parsed::Get { len, path, .. } => {
            assert!(*len > 0 && *len <= data.len() && *len <= MAX_HEAD + 1024);
            assert!(!path.contains('?'), "{path:?}");
            assert_eq!(parse_request(&data[..*len]), parsed);
        }
        Parsed::Refused { status, len } => {
            assert!(matches!(status, 400 | 405));
            assert!(*len > 0 && *len <= data.len());
            assert_eq!(parse_request(&data[..*len]), parsed);
        }
        Parsed::Partial => {
            assert!(data.len() < MAX_HEAD, "waiting with {} bytes in", data.len());
            if let Some(cut) = data.len().checked_sub(1) {
                assert_eq!(parse_request(&data[..cut]), Parsed::Partial);
            }
        }
        Parsed::Bad { status } => assert!(matches!(status, 400 | 431)),
    }
});

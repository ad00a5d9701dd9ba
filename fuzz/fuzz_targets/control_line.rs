//! Arbitrary bytes as one line of the `hac serve` control protocol: the parser never panics,
//! every error is one bounded, printable line (no control characters, whatever the client
//! quoted), and every request it accepts re-encodes to a line that parses to the same request.
#![no_main]

use hac_utility::control::{Request, parse_line, request_line, response_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_line(data) {
        Ok(env) => {
            let line = request_line(env.id.as_ref(), &env.request);
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            let again = parse_line(line.trim_end().as_bytes()).expect("re-encoded request parses");
            assert_eq!(again.request, env.request);
            assert_eq!(again.id, env.id);
            if let Request::Send { frames, .. } = env.request {
                assert!(frames <= hac_utility::control::MAX_SEND_FRAMES);
            }
        }
        Err((id, e)) => {
            assert!(!e.message.is_empty());
            assert!(
                !e.message.chars().any(char::is_control),
                "control character in an error: {:?}",
                e.message
            );
            assert!(e.message.len() <= 2 * hac_utility::control::MAX_LINE);
            let line = response_line(id.as_ref(), Err(&e));
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        }
    }
});

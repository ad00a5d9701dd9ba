//! Arbitrary bytes as one line of the `hac serve` control protocol (the `hac-control` crate
//! alone): the parser never panics; every error is one bounded, printable line (no control
//! characters, whatever the client quoted); every request it accepts re-encodes to a line that
//! parses to the same request. The same bytes read as a response line to each operation: what
//! parses re-encodes and parses back to itself.
#![no_main]

use hac_control::{
    MAX_LINE, MAX_SEND_FRAMES, OPS, Request, parse_line, parse_response, request_line,
    response_line,
};
use libfuzzer_sys::fuzz_target;

fn one_line(line: &str) {
    assert!(
        line.ends_with('\n') && line.matches('\n').count() == 1,
        "{line:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    match parse_line(data) {
        Ok(env) => {
            let line = request_line(env.id.as_ref(), &env.request);
            one_line(&line);
            let again = parse_line(line.trim_end().as_bytes()).expect("re-encoded request parses");
            assert_eq!(again.request, env.request);
            assert_eq!(again.id, env.id);
            if let Request::Send { frames, .. } = env.request {
                assert!(frames <= MAX_SEND_FRAMES);
            }
        }
        Err((id, e)) => {
            assert!(!e.message.is_empty());
            assert!(
                !e.message.chars().any(char::is_control),
                "control character in an error: {:?}",
                e.message
            );
            assert!(e.message.len() <= 2 * MAX_LINE);
            one_line(&response_line(id.as_ref(), Err(&e)));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for spec in OPS {
            let Ok(response) = parse_response(spec.op, text) else {
                continue;
            };
            let line = response_line(response.id.as_ref(), response.result.as_ref());
            one_line(&line);
            let again = parse_response(spec.op, &line).expect("re-encoded response parses");
            assert_eq!(again, response);
        }
    }
});

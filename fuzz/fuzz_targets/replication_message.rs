//! Arbitrary bytes as the failover demo's replication stream (primary ⇄ backup), on the `hac-ha`
//! crate alone: the decoder never panics, never claims more bytes than it was given, every
//! message it accepts re-encodes to exactly the bytes it came from and decodes again to the same
//! message (decode → encode → decode is stable), a mirror's payload is exactly its frames, a
//! join's is its node id and a catch-up's its chunk header and steps, a catch-up's steps recorded
//! into a step history come back from the history's catch-up chunks in order and whole (each
//! chunk within its bound), every cut-short prefix of an accepted message
//! is an error (`Incomplete`), never a message, and feeding the same bytes in arbitrary chunks
//! through the stream decoder yields the same messages, keeping exactly the undecoded tail and
//! moving each received byte at most once (its copying work is linear in the input, however the
//! stream is cut).
#![no_main]

use hac_ha::msg::{DecodeError, Message, StreamDecoder, step_len};
use hac_ha::rejoin::{CATCHUP_CHUNK_BYTES, History};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Whole-buffer decoding, message by message.
    let mut at = 0;
    let mut whole = Vec::new();
    while at < data.len() {
        match Message::parse(&data[at..]) {
            Ok((m, used)) => {
                assert!(used >= 8 && used <= data.len() - at);
                let again = m.to_bytes().expect("a decoded message re-encodes");
                assert_eq!(again, &data[at..at + used], "re-encoding differs");
                assert_eq!(
                    Message::parse(&again),
                    Ok((m.clone(), used)),
                    "decode → encode → decode differs"
                );
                // A message cut short is incomplete, whatever the cut (a few cuts per message).
                for cut in (0..used.min(12)).chain([used / 2, used - 1]) {
                    match Message::parse(&again[..cut]) {
                        Err(DecodeError::Incomplete { needed }) => {
                            assert!(needed > cut, "cut {cut}: needs {needed}")
                        }
                        other => panic!("cut {cut} of {used}: {other:?}"),
                    }
                }
                if let Message::Mirror { frames } = &m {
                    // A mirror is its count, then a length and the bytes per frame: nothing
                    // else in the payload.
                    let body: usize = frames.iter().map(|f| 2 + f.len()).sum();
                    assert_eq!(8 + 2 + body, used, "mirror payload accounting");
                }
                match &m {
                    Message::Join { .. } => assert_eq!(used, 8 + 8, "join payload accounting"),
                    Message::Catchup { steps, .. } => {
                        let body: usize = steps.iter().map(step_len).sum();
                        assert_eq!(8 + 4 + 1 + 4 + body, used, "catch-up payload accounting");
                        // Through a history and back: the same steps, in order, in bounded
                        // chunks numbered from 0 with only the last flagged.
                        let mut h = History::new(u64::MAX);
                        for s in steps {
                            h.record(s);
                        }
                        let chunks = h.catchup();
                        let mut back = Vec::new();
                        for (i, c) in chunks.iter().enumerate() {
                            let Message::Catchup { chunk, last, steps: cs } = c else {
                                panic!("history chunk is not a catch-up: {c:?}");
                            };
                            assert_eq!((*chunk as usize, *last), (i, i + 1 == chunks.len()));
                            let bytes: usize = cs.iter().map(step_len).sum();
                            assert!(cs.len() == 1 || bytes <= CATCHUP_CHUNK_BYTES, "chunk bound");
                            let enc = c.to_bytes().expect("a history chunk encodes");
                            assert_eq!(Message::parse(&enc), Ok((c.clone(), enc.len())));
                            back.extend(cs.iter().cloned());
                        }
                        assert_eq!(&back, steps, "history catch-up differs");
                    }
                    _ => {}
                }
                whole.push(m);
                at += used;
            }
            Err(DecodeError::Incomplete { needed }) => {
                assert!(needed > data.len() - at);
                break;
            }
            Err(_) => break,
        }
    }
    // The same bytes in chunks whose sizes come from the data.
    let mut dec = StreamDecoder::default();
    let mut chunked = Vec::new();
    let mut failed = false;
    let mut rest = data;
    let mut k = 0usize;
    'outer: while !rest.is_empty() {
        let n = (usize::from(data[k % data.len()]) % 17 + 1).min(rest.len());
        k += 1;
        dec.push(&rest[..n]);
        rest = &rest[n..];
        loop {
            match dec.next_message() {
                Ok(Some(m)) => chunked.push(m),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'outer;
                }
            }
        }
    }
    assert_eq!(whole, chunked, "chunked decoding differs");
    let pushed = (data.len() - rest.len()) as u64;
    assert!(
        dec.bytes_moved() <= pushed,
        "moved {} of {pushed} bytes pushed",
        dec.bytes_moved()
    );
    if !failed {
        // What the decoder keeps is exactly the incomplete tail: nothing lost, nothing kept twice.
        assert_eq!(dec.buffered(), data.len() - at, "decoder buffer size");
    }
});

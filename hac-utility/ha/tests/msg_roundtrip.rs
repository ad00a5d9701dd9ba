//! The replication messages as a peer sees them: every message the encoder accepts decodes to
//! itself, whole and in arbitrary chunks through the stream decoder, and a damaged header is an
//! error, never a message or a panic.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use hac_ha::msg::{DecodeError, HEADER_LEN, Message, Step, StreamDecoder};
use proptest::prelude::*;

fn frame() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from)
}

fn step() -> impl Strategy<Value = Step> {
    (any::<i64>(), proptest::collection::vec(frame(), 0..4))
        .prop_map(|(at_us, frames)| Step { at_us, frames })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(time_base_us, seed, epoch_us)| {
            Message::Hello {
                time_base_us,
                seed,
                epoch_us,
            }
        }),
        (any::<u32>(), proptest::collection::vec(step(), 0..5))
            .prop_map(|(epoch, steps)| Message::Log { epoch, steps }),
        any::<u32>().prop_map(|epoch| Message::Ack { epoch }),
        (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(seq, sent_unix_us, held_frames)| {
            Message::Heartbeat {
                seq,
                sent_unix_us,
                held_frames,
            }
        }),
        proptest::collection::vec(frame(), 0..4).prop_map(|frames| Message::Mirror { frames }),
        any::<u64>().prop_map(|node_id| Message::Join { node_id }),
        (
            any::<u32>(),
            any::<bool>(),
            proptest::collection::vec(step(), 0..5)
        )
            .prop_map(|(chunk, last, steps)| Message::Catchup { chunk, last, steps }),
        // Kinds 1 to 7 are the known ones; anything else survives as Unknown.
        (
            prop_oneof![Just(0u8), 8u8..=255],
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(kind, p)| Message::Unknown {
                kind,
                payload: Bytes::from(p),
            }),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(
        msgs in proptest::collection::vec(message(), 1..6),
        chunk in 1usize..40,
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            let b = m.to_bytes().unwrap();
            prop_assert_eq!(Message::parse(&b), Ok((m.clone(), b.len())));
            stream.extend_from_slice(&b);
        }
        let mut dec = StreamDecoder::default();
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            dec.push(c);
            while let Some(m) = dec.next_message().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, msgs);
        prop_assert_eq!(dec.buffered(), 0);
        prop_assert!(dec.bytes_moved() <= stream.len() as u64);
    }

    #[test]
    fn a_damaged_header_is_an_error(m in message(), magic in any::<[u8; 2]>(), version in any::<u8>()) {
        let mut b = m.to_bytes().unwrap();
        prop_assume!(b.len() >= HEADER_LEN);
        let good = b.clone();
        b[0..2].copy_from_slice(&magic);
        if magic != *b"HA" {
            prop_assert_eq!(Message::parse(&b), Err(DecodeError::BadMagic(magic)));
        }
        let mut v = good;
        v[2] = version;
        if version != 1 {
            prop_assert_eq!(Message::parse(&v), Err(DecodeError::BadVersion(version)));
        }
    }

    #[test]
    fn a_catchup_with_a_bad_flag_or_cut_short_is_an_error(
        steps in proptest::collection::vec(step(), 1..4),
        flag in 2u8..=255,
        cut in 1usize..64,
    ) {
        let b = Message::Catchup { chunk: 0, last: true, steps }.to_bytes().unwrap();
        let mut bad = b.clone();
        bad[HEADER_LEN + 4] = flag;
        prop_assert!(
            matches!(
                Message::parse(&bad),
                Err(DecodeError::Malformed { kind: "catch-up", reason: "last flag is not 0 or 1" })
            ),
            "flag"
        );
        // The payload shortened (header length adjusted): never a message, never a panic.
        let cut = cut.min(b.len() - HEADER_LEN);
        let mut short = b[..b.len() - cut].to_vec();
        let len = (short.len() - HEADER_LEN) as u32;
        short[4..8].copy_from_slice(&len.to_le_bytes());
        prop_assert!(
            matches!(Message::parse(&short), Err(DecodeError::Malformed { kind: "catch-up", .. })),
            "cut {}", cut
        );
    }
}

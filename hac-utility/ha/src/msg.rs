//! The replication link between the primary and the backup: typed messages over a byte stream.
//!
//! Every message is an 8-byte header followed by its payload, all little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..2 | magic `"HA"` |
//! | 2 | version (1) |
//! | 3 | kind: 1 hello, 2 log, 3 ack, 4 heartbeat, 5 mirror, 6 join, 7 catch-up; anything else survives as [`Message::Unknown`] |
//! | 4..8 | payload length (at most [`MAX_PAYLOAD`]) |
//!
//! Payloads: *hello* `time_base_us: u64, seed: u64, epoch_us: u32`; *log* `epoch: u32,
//! steps: u32`, then per step `at_us: i64, frames: u16`, then per frame `len: u16` and the bytes;
//! *ack* `epoch: u32`; *heartbeat* `seq: u64, sent_unix_us: u64, held_frames: u32`; *mirror*
//! `frames: u16`, then per frame `len: u16` and the bytes; *join* `node_id: u64`; *catch-up*
//! `chunk: u32, last: u8` (0 or 1), then `steps: u32` and the steps as in a log.
//!
//! [`Message::parse`] never panics: it takes any bytes and says how many it consumed, that it
//! needs more ([`DecodeError::Incomplete`]), or what is wrong. [`Message::emit`] is its inverse.

use bytes::Bytes;

/// Header magic.
pub const MAGIC: [u8; 2] = *b"HA";
/// Protocol version.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 8;
/// Largest payload accepted (an epoch's input log is far smaller).
pub const MAX_PAYLOAD: usize = 16 << 20;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const KIND: usize = 3;
    pub const LENGTH: Range<usize> = 4..8;
}

/// Message kinds.
mod kind {
    pub const HELLO: u8 = 1;
    pub const LOG: u8 = 2;
    pub const ACK: u8 = 3;
    pub const HEARTBEAT: u8 = 4;
    pub const MIRROR: u8 = 5;
    pub const JOIN: u8 = 6;
    pub const CATCHUP: u8 = 7;
}

/// One step of the protected service: the time it was run at and the frames it received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Service time of the step, µs.
    pub at_us: i64,
    /// Frames handed to the service in this step, in order.
    pub frames: Vec<Bytes>,
}

/// A replication-link message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Primary → backup, first: the service's time base and seed, the epoch length.
    Hello {
        /// Unix time (µs) that service time 0 corresponds to.
        time_base_us: u64,
        /// The service's random seed.
        seed: u64,
        /// Epoch length, µs.
        epoch_us: u32,
    },
    /// Primary → backup: the inputs of one epoch.
    Log {
        /// The epoch (the HAC epoch its output is stamped with).
        epoch: u32,
        /// The service steps of the epoch, in order.
        steps: Vec<Step>,
    },
    /// Backup → primary: the epoch's inputs are applied.
    Ack {
        /// The epoch.
        epoch: u32,
    },
    /// Both ways: still alive.
    Heartbeat {
        /// Sender's sequence number.
        seq: u64,
        /// Sender's Unix time, µs.
        sent_unix_us: u64,
        /// Primary: frames it holds for uncommitted epochs (0 from the backup).
        held_frames: u32,
    },
    /// Primary → backup, as they arrive: frames the service VF received, before they are
    /// stepped. The next [`Message::Log`] covers them; the backup keeps the ones since the last
    /// log and delivers them to its service if it takes over (what the primary received and
    /// never shipped).
    Mirror {
        /// The frames, in arrival order.
        frames: Vec<Bytes>,
    },
    /// A fresh backup → the live node (after a takeover): "replicate to me". The live node
    /// answers with [`Message::Hello`], the whole step history as [`Message::Catchup`] chunks,
    /// and from then on the usual logs (docs/failover.md, "Re-protection").
    Join {
        /// The joining node's id at the lease arbiter (non-zero, at most `u32::MAX`, not the
        /// live node's own): the live node names it as its standby once it protects again.
        node_id: u64,
    },
    /// Live node → joining backup: one chunk of the service's step history from time 0, in
    /// order; the backup replays it like a log, but acks nothing (the logs that follow are
    /// acked as usual).
    Catchup {
        /// Chunk number, from 0.
        chunk: u32,
        /// Whether this is the last chunk of the history.
        last: bool,
        /// The steps, in order.
        steps: Vec<Step>,
    },
    /// A kind this version does not know, kept as it came.
    Unknown {
        /// The kind byte.
        kind: u8,
        /// The payload.
        payload: Bytes,
    },
}

/// Why bytes are not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes are needed (`needed` in total from the start of the message).
    #[error("incomplete message: {needed} bytes needed")]
    Incomplete {
        /// Total bytes the message needs so far.
        needed: usize,
    },
    /// The header does not start with `"HA"`.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 2]),
    /// A version this decoder does not speak.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// The payload length is above [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes is too long")]
    TooLong(usize),
    /// The payload does not match its kind.
    #[error("malformed {kind} payload: {reason}")]
    Malformed {
        /// The kind.
        kind: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A cursor over a payload; every read is bounds-checked.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    kind: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(DecodeError::Malformed {
                kind: self.kind,
                reason: "truncated",
            }),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// `n` frames, each a `u16` length and the bytes (capacity bounded by the bytes left).
    fn frames(&mut self, n: usize) -> Result<Vec<Bytes>, DecodeError> {
        let mut frames = Vec::with_capacity(n.min((self.data.len() - self.at) / 2));
        for _ in 0..n {
            let fl = usize::from(self.u16()?);
            frames.push(Bytes::copy_from_slice(self.take(fl)?));
        }
        Ok(frames)
    }
    /// A `u32` step count, then per step `at_us: i64`, a `u16` frame count and the frames.
    fn steps(&mut self) -> Result<Vec<Step>, DecodeError> {
        let n = self.u32()? as usize;
        // Each step takes at least 10 bytes: refuse counts the payload cannot hold before
        // allocating for them.
        if n > (self.data.len() - self.at) / 10 {
            return Err(DecodeError::Malformed {
                kind: self.kind,
                reason: "step count exceeds the payload",
            });
        }
        let mut steps = Vec::with_capacity(n);
        for _ in 0..n {
            let at_us = self.u64()? as i64;
            let nf = usize::from(self.u16()?);
            let frames = self.frames(nf)?;
            steps.push(Step { at_us, frames });
        }
        Ok(steps)
    }
    fn finish(self) -> Result<(), DecodeError> {
        if self.at == self.data.len() {
            Ok(())
        } else {
            Err(DecodeError::Malformed {
                kind: self.kind,
                reason: "trailing bytes",
            })
        }
    }
}

impl Message {
    /// Decodes the message at the start of `data`: the message and the bytes it took.
    pub fn parse(data: &[u8]) -> Result<(Message, usize), DecodeError> {
        if data.len() < HEADER_LEN {
            // Check what is there already, so garbage is refused early.
            if data.len() >= 2 && data[field::MAGIC] != MAGIC {
                return Err(DecodeError::BadMagic([data[0], data[1]]));
            }
            return Err(DecodeError::Incomplete { needed: HEADER_LEN });
        }
        let magic = [data[0], data[1]];
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        if data[field::VERSION] != VERSION {
            return Err(DecodeError::BadVersion(data[field::VERSION]));
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&data[field::LENGTH]);
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_PAYLOAD {
            return Err(DecodeError::TooLong(len));
        }
        let total = HEADER_LEN + len;
        if data.len() < total {
            return Err(DecodeError::Incomplete { needed: total });
        }
        let payload = &data[HEADER_LEN..total];
        let k = data[field::KIND];
        let name = match k {
            kind::HELLO => "hello",
            kind::LOG => "log",
            kind::ACK => "ack",
            kind::HEARTBEAT => "heartbeat",
            kind::MIRROR => "mirror",
            kind::JOIN => "join",
            kind::CATCHUP => "catch-up",
            _ => "unknown",
        };
        let mut r = Reader {
            data: payload,
            at: 0,
            kind: name,
        };
        let msg = match k {
            kind::HELLO => Message::Hello {
                time_base_us: r.u64()?,
                seed: r.u64()?,
                epoch_us: r.u32()?,
            },
            kind::LOG => Message::Log {
                epoch: r.u32()?,
                steps: r.steps()?,
            },
            kind::JOIN => Message::Join { node_id: r.u64()? },
            kind::CATCHUP => {
                let chunk = r.u32()?;
                let last = match r.array::<1>()? {
                    [0] => false,
                    [1] => true,
                    _ => {
                        return Err(DecodeError::Malformed {
                            kind: name,
                            reason: "last flag is not 0 or 1",
                        });
                    }
                };
                Message::Catchup {
                    chunk,
                    last,
                    steps: r.steps()?,
                }
            }
            kind::ACK => Message::Ack { epoch: r.u32()? },
            kind::MIRROR => {
                let n = usize::from(r.u16()?);
                // Each frame takes at least its 2-byte length.
                if n > payload.len() / 2 {
                    return Err(DecodeError::Malformed {
                        kind: name,
                        reason: "frame count exceeds the payload",
                    });
                }
                Message::Mirror {
                    frames: r.frames(n)?,
                }
            }
            kind::HEARTBEAT => Message::Heartbeat {
                seq: r.u64()?,
                sent_unix_us: r.u64()?,
                held_frames: r.u32()?,
            },
            _ => {
                return Ok((
                    Message::Unknown {
                        kind: k,
                        payload: Bytes::copy_from_slice(payload),
                    },
                    total,
                ));
            }
        };
        r.finish()?;
        Ok((msg, total))
    }

    /// Appends the encoded message to `out`. Frames longer than 65535 bytes and steps with more
    /// than 65535 frames cannot be encoded (a step never has them: frames are ≤ 1514 bytes and
    /// a step takes at most one RX batch).
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(match self {
            Message::Hello { .. } => kind::HELLO,
            Message::Log { .. } => kind::LOG,
            Message::Ack { .. } => kind::ACK,
            Message::Heartbeat { .. } => kind::HEARTBEAT,
            Message::Mirror { .. } => kind::MIRROR,
            Message::Join { .. } => kind::JOIN,
            Message::Catchup { .. } => kind::CATCHUP,
            Message::Unknown { kind, .. } => *kind,
        });
        out.extend_from_slice(&[0; 4]);
        match self {
            Message::Hello {
                time_base_us,
                seed,
                epoch_us,
            } => {
                out.extend_from_slice(&time_base_us.to_le_bytes());
                out.extend_from_slice(&seed.to_le_bytes());
                out.extend_from_slice(&epoch_us.to_le_bytes());
            }
            Message::Log { epoch, steps } => {
                out.extend_from_slice(&epoch.to_le_bytes());
                emit_steps(steps, out)?;
            }
            Message::Join { node_id } => out.extend_from_slice(&node_id.to_le_bytes()),
            Message::Catchup { chunk, last, steps } => {
                out.extend_from_slice(&chunk.to_le_bytes());
                out.push(u8::from(*last));
                emit_steps(steps, out)?;
            }
            Message::Ack { epoch } => out.extend_from_slice(&epoch.to_le_bytes()),
            Message::Heartbeat {
                seq,
                sent_unix_us,
                held_frames,
            } => {
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&sent_unix_us.to_le_bytes());
                out.extend_from_slice(&held_frames.to_le_bytes());
            }
            Message::Mirror { frames } => emit_frames(frames, out)?,
            Message::Unknown { payload, .. } => out.extend_from_slice(payload),
        }
        let len = out.len() - start - HEADER_LEN;
        if len > MAX_PAYLOAD {
            out.truncate(start);
            return Err(EncodeError::TooLarge);
        }
        out[start + 4..start + 8].copy_from_slice(&(len as u32).to_le_bytes());
        Ok(())
    }

    /// The encoded message.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::new();
        self.emit(&mut v)?;
        Ok(v)
    }
}

/// A `u32` step count, then per step its time and frames.
fn emit_steps(steps: &[Step], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let n = u32::try_from(steps.len()).map_err(|_| EncodeError::TooLarge)?;
    out.extend_from_slice(&n.to_le_bytes());
    for s in steps {
        out.extend_from_slice(&s.at_us.to_le_bytes());
        emit_frames(&s.frames, out)?;
    }
    Ok(())
}

/// Encoded size of one step in a log or catch-up payload.
pub fn step_len(step: &Step) -> usize {
    10 + step.frames.iter().map(|f| 2 + f.len()).sum::<usize>()
}

/// A `u16` frame count, then per frame a `u16` length and the bytes.
fn emit_frames(frames: &[Bytes], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let n = u16::try_from(frames.len()).map_err(|_| EncodeError::TooLarge)?;
    out.extend_from_slice(&n.to_le_bytes());
    for f in frames {
        let fl = u16::try_from(f.len()).map_err(|_| EncodeError::TooLarge)?;
        out.extend_from_slice(&fl.to_le_bytes());
        out.extend_from_slice(f);
    }
    Ok(())
}

/// Why a message cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A count or length does not fit its field, or the payload exceeds [`MAX_PAYLOAD`].
    #[error("message too large to encode")]
    TooLarge,
}

/// Splits a byte stream into messages: feed it what arrives, take the messages out.
///
/// The replication link is peer-controlled input, so the cost of a flood of tiny messages must be
/// linear in the bytes received. Decoding a message only moves a read cursor; the undecoded tail
/// is moved to the front of the buffer at most once per [`StreamDecoder::push`], and only when
/// messages were consumed since the last one. The tail is always part of one incomplete message,
/// which is consumed (never moved again) once it completes, so every received byte is moved at
/// most once: [`StreamDecoder::bytes_moved`] ≤ bytes pushed.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// Received bytes; `buf[start..]` are not yet decoded.
    buf: Vec<u8>,
    /// The read cursor: bytes before it are decoded.
    start: usize,
    /// Bytes moved by compaction since creation.
    moved: u64,
}

impl StreamDecoder {
    /// Appends received bytes, first dropping the decoded front (one compaction per push).
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            let tail = self.buf.len() - self.start;
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(tail);
            self.moved += tail as u64;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet decoded (at most one incomplete message plus what was pushed
    /// since the last complete one).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Bytes moved to the front of the buffer so far (the decoder's copying work, for tests).
    pub fn bytes_moved(&self) -> u64 {
        self.moved
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. After an error the
    /// stream cannot be resynchronised: the link must be dropped.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        match Message::parse(&self.buf[self.start..]) {
            Ok((m, used)) => {
                self.start += used;
                if self.start == self.buf.len() {
                    // Everything decoded: reuse the buffer from its start, nothing to move.
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(m))
            }
            Err(DecodeError::Incomplete { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_tiny_messages_decodes_completely_from_one_buffer() {
        // Issue 13 item 13: each decoded message used to shift the rest of the buffer
        // (quadratic in the flood); now a cursor advances and the buffer empties.
        let mut wire = Vec::new();
        for epoch in 0..100_000u32 {
            Message::Ack { epoch }.emit(&mut wire).unwrap();
        }
        let mut dec = StreamDecoder::default();
        dec.push(&wire);
        let mut n = 0u32;
        while let Some(m) = dec.next_message().unwrap() {
            assert_eq!(m, Message::Ack { epoch: n });
            n += 1;
        }
        assert_eq!((n, dec.buffered(), dec.bytes_moved()), (100_000, 0, 0));
    }

    /// Decodes `wire` pushed in `chunk`-byte pieces: (messages, bytes moved).
    fn decode_in_chunks(wire: &[u8], chunk: usize) -> (usize, u64) {
        let mut dec = StreamDecoder::default();
        let mut n = 0;
        for c in wire.chunks(chunk) {
            dec.push(c);
            while dec.next_message().unwrap().is_some() {
                n += 1;
            }
        }
        assert_eq!(dec.buffered(), 0);
        (n, dec.bytes_moved())
    }

    #[test]
    fn a_flood_of_tiny_messages_costs_linear_copying() {
        // Issue 19 item 5: count the bytes the decoder moves, not the time it takes. Chunks
        // that end mid-message leave a tail to compact; each byte may move once at most, so
        // the work is linear in the flood and doubling the flood doubles it.
        for chunk in [5, 7, 13, 64 * 1024 + 3] {
            let mut costs = Vec::new();
            for n in [10_000u32, 20_000] {
                let mut wire = Vec::new();
                for epoch in 0..n {
                    Message::Ack { epoch }.emit(&mut wire).unwrap();
                }
                let (got, moved) = decode_in_chunks(&wire, chunk);
                assert_eq!(got, n as usize);
                assert!(moved <= wire.len() as u64, "chunk {chunk}: moved {moved}");
                costs.push(moved);
            }
            // Linear: twice the messages, at most twice the bytes moved (+ one message).
            assert!(costs[1] <= 2 * costs[0] + 12, "chunk {chunk}: {costs:?}");
        }
        // A large message trickling in byte by byte after a tiny one is moved once, not once
        // per byte.
        let mut wire = Message::Ack { epoch: 1 }.to_bytes().unwrap();
        Message::Unknown {
            kind: 99,
            payload: Bytes::from(vec![7u8; 100_000]),
        }
        .emit(&mut wire)
        .unwrap();
        let (got, moved) = decode_in_chunks(&wire, 1);
        assert_eq!(got, 2);
        assert!(moved <= wire.len() as u64, "moved {moved}");
    }

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello {
                time_base_us: 1_700_000_000_000_000,
                seed: 7,
                epoch_us: 20_000,
            },
            Message::Log {
                epoch: 3,
                steps: vec![
                    Step {
                        at_us: 12,
                        frames: vec![],
                    },
                    Step {
                        at_us: 13,
                        frames: vec![Bytes::from_static(&[1, 2, 3]), Bytes::new()],
                    },
                ],
            },
            Message::Ack { epoch: 9 },
            Message::Heartbeat {
                seq: 1,
                sent_unix_us: 2,
                held_frames: 3,
            },
            Message::Mirror {
                frames: vec![Bytes::from_static(&[9; 60]), Bytes::new()],
            },
            Message::Mirror { frames: vec![] },
            Message::Join { node_id: 0xfeed },
            Message::Catchup {
                chunk: 2,
                last: true,
                steps: vec![Step {
                    at_us: -5,
                    frames: vec![Bytes::from_static(&[4; 70])],
                }],
            },
            Message::Catchup {
                chunk: 0,
                last: false,
                steps: vec![],
            },
            Message::Unknown {
                kind: 200,
                payload: Bytes::from_static(b"future"),
            },
        ]
    }

    #[test]
    fn round_trip() {
        for m in samples() {
            let b = m.to_bytes().unwrap();
            assert_eq!(Message::parse(&b), Ok((m, b.len())));
        }
    }

    #[test]
    fn ack_bytes_are_pinned() {
        let b = Message::Ack { epoch: 0x0102_0304 }.to_bytes().unwrap();
        assert_eq!(b, [b'H', b'A', 1, 3, 4, 0, 0, 0, 4, 3, 2, 1]);
    }

    #[test]
    fn every_prefix_is_incomplete_and_stream_reassembles() {
        let mut all = Vec::new();
        for m in samples() {
            m.emit(&mut all).unwrap();
        }
        let first = samples()[0].to_bytes().unwrap();
        for cut in 0..first.len() {
            assert!(
                matches!(
                    Message::parse(&first[..cut]),
                    Err(DecodeError::Incomplete { .. })
                ),
                "{cut}"
            );
        }
        let mut d = StreamDecoder::default();
        let mut got = Vec::new();
        for chunk in all.chunks(5) {
            d.push(chunk);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, samples());
    }

    #[test]
    fn malformed_messages_are_refused_without_panicking() {
        let ack = Message::Ack { epoch: 1 }.to_bytes().unwrap();
        let mut bad_magic = ack.clone();
        bad_magic[0] = b'X';
        assert_eq!(
            Message::parse(&bad_magic),
            Err(DecodeError::BadMagic([b'X', b'A']))
        );
        assert_eq!(Message::parse(b"XY"), Err(DecodeError::BadMagic(*b"XY")));
        let mut bad_version = ack.clone();
        bad_version[2] = 9;
        assert_eq!(
            Message::parse(&bad_version),
            Err(DecodeError::BadVersion(9))
        );
        let mut too_long = ack.clone();
        too_long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Message::parse(&too_long),
            Err(DecodeError::TooLong(u32::MAX as usize))
        );
        // An ack with a 2-byte payload: truncated field.
        let short = [b'H', b'A', 1, 3, 2, 0, 0, 0, 1, 0];
        assert!(matches!(
            Message::parse(&short),
            Err(DecodeError::Malformed { kind: "ack", .. })
        ));
        // An ack with trailing bytes.
        let long = [b'H', b'A', 1, 3, 5, 0, 0, 0, 1, 0, 0, 0, 9];
        assert!(matches!(
            Message::parse(&long),
            Err(DecodeError::Malformed {
                reason: "trailing bytes",
                ..
            })
        ));
        // A log claiming 4 billion steps in 8 bytes: refused before allocating.
        let mut log = vec![b'H', b'A', 1, 2, 8, 0, 0, 0];
        log.extend_from_slice(&1u32.to_le_bytes());
        log.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Message::parse(&log),
            Err(DecodeError::Malformed { kind: "log", .. })
        ));
        // A log whose frame length runs past the payload.
        let mut log = vec![b'H', b'A', 1, 2, 0, 0, 0, 0];
        log.extend_from_slice(&1u32.to_le_bytes());
        log.extend_from_slice(&1u32.to_le_bytes());
        log.extend_from_slice(&5i64.to_le_bytes());
        log.extend_from_slice(&1u16.to_le_bytes());
        log.extend_from_slice(&100u16.to_le_bytes());
        log.extend_from_slice(&[0; 10]);
        let n = (log.len() - HEADER_LEN) as u32;
        log[4..8].copy_from_slice(&n.to_le_bytes());
        assert!(matches!(
            Message::parse(&log),
            Err(DecodeError::Malformed {
                reason: "truncated",
                ..
            })
        ));
        // Mirrors: a count of 65535 frames in 4 bytes (refused before allocating), a frame
        // running past the payload, trailing bytes, a payload too short for its count.
        let mirrors: [(&[u8], &str); 4] = [
            (
                &[b'H', b'A', 1, 5, 4, 0, 0, 0, 0xFF, 0xFF, 0, 0],
                "frame count exceeds the payload",
            ),
            (
                &[b'H', b'A', 1, 5, 6, 0, 0, 0, 1, 0, 9, 0, 1, 2],
                "truncated",
            ),
            (
                &[b'H', b'A', 1, 5, 6, 0, 0, 0, 1, 0, 1, 0, 7, 8],
                "trailing bytes",
            ),
            (&[b'H', b'A', 1, 5, 1, 0, 0, 0, 1], "truncated"),
        ];
        for (bytes, reason) in mirrors {
            assert_eq!(
                Message::parse(bytes),
                Err(DecodeError::Malformed {
                    kind: "mirror",
                    reason
                }),
                "{bytes:?}"
            );
        }
        // Joins: short or long payloads. Catch-ups: a last flag of 2, a step count the payload
        // cannot hold (refused before allocating), a step cut short.
        let bad: [(&[u8], &str, &str); 5] = [
            (
                &[b'H', b'A', 1, 6, 4, 0, 0, 0, 1, 2, 3, 4],
                "join",
                "truncated",
            ),
            (
                &[b'H', b'A', 1, 6, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                "join",
                "trailing bytes",
            ),
            (
                &[b'H', b'A', 1, 7, 9, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0],
                "catch-up",
                "last flag is not 0 or 1",
            ),
            (
                &[
                    b'H', b'A', 1, 7, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF,
                ],
                "catch-up",
                "step count exceeds the payload",
            ),
            (
                &[
                    b'H', b'A', 1, 7, 19, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0,
                    0, 1, 0,
                ],
                "catch-up",
                "truncated",
            ),
        ];
        for (bytes, kind, reason) in bad {
            assert_eq!(
                Message::parse(bytes),
                Err(DecodeError::Malformed { kind, reason }),
                "{bytes:?}"
            );
        }
        // A stream decoder reports the error instead of waiting forever.
        let mut d = StreamDecoder::default();
        d.push(&bad_magic);
        assert!(d.next_message().is_err());
    }
}

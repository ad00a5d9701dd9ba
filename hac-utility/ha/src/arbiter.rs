//! The lease arbiter (witness) that keeps the failover pair from a split brain, its datagram
//! protocol, and the node's side of it (docs/failover.md, "No split brain: the lease arbiter").
//!
//! The model is a leader lease held in a third place, with a record of the in-sync standby, as
//! Patroni keeps the leader key and the `/sync` key in its DCS (etcd, Consul) or Pacemaker's
//! corosync-qdevice votes for one partition: a node may serve *alone* (unprotected) only while
//! it holds an unexpired lease, and the backup may take over only if the arbiter still records
//! it as the primary's in-sync standby — a primary that goes on alone first has the arbiter
//! forget its standby, so a replica left behind can never be made live.
//!
//! * [`LeaseMessage`]: the datagrams (one message per UDP datagram), parse and emit; peer
//!   input, so decoding never panics and bounds everything (the `arbiter_message` fuzz target).
//! * [`Witness`]: the arbiter's decision, a pure function of its state, the time and a request.
//! * [`LeaseClient`]: a node's view of its lease, measured in the node's own monotonic clock:
//!   a grant for a request sent at `t` is good until `t + lease - margin`, which is before the
//!   arbiter's expiry (it started the lease when the request *arrived*), so no clock is shared.
//! * [`run`]: the `hac ha-arbiter` process (UDP, JSON status lines on stdout).
//!
//! Every message is an 8-byte header — magic `"HW"`, version 1, kind, payload length `u32`
//! (at most [`MAX_LEASE_PAYLOAD`]) — and a little-endian payload: *request* (kind 1) `node: u32,
//! seq: u64, claim: u8, standby: u32`; *reply* (kind 2) `node: u32, seq: u64, verdict: u8,
//! lease_us: u32, holder: u32`. Node 0 means "nobody" and is never a sender.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::status::{emit_line, stop_when_stdin_closes, unix_us};

/// Header magic.
pub const LEASE_MAGIC: [u8; 2] = *b"HW";
/// Protocol version.
pub const LEASE_VERSION: u8 = 1;
/// Header length.
pub const LEASE_HEADER_LEN: usize = 8;
/// Largest payload accepted (a reply is 21 bytes).
pub const MAX_LEASE_PAYLOAD: usize = 64;
/// Largest datagram a node or the arbiter reads; anything longer is malformed.
pub const MAX_DATAGRAM: usize = LEASE_HEADER_LEN + MAX_LEASE_PAYLOAD;

const KIND_REQUEST: u8 = 1;
const KIND_REPLY: u8 = 2;
const REQUEST_LEN: usize = 17;
const REPLY_LEN: usize = 21;

/// What a node asks the lease for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The primary, replicating to `standby` (which acks every epoch it releases): renew, and
    /// record `standby` as the node allowed to take over.
    Protected {
        /// The in-sync standby's node id (non-zero).
        standby: u32,
    },
    /// Serving without a standby: renew, and forget the standby (it falls behind from now on).
    Alone,
    /// The standby found its primary silent: take the lease if it has run out and this node is
    /// the recorded in-sync standby.
    Takeover,
}

/// The arbiter's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The lease is the requester's for `lease_us` from the request's arrival.
    Granted,
    /// Another node holds an unexpired lease (`holder`, `lease_us` = its remaining time).
    Held,
    /// A takeover by a node that is not the recorded in-sync standby (its replica may be
    /// behind what clients saw), or a claim by a node that neither holds nor held the lease.
    NotInSync,
    /// The arbiter started less than one lease ago: every lease it may have granted before a
    /// restart must run out first.
    Starting,
}

/// A lease datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseMessage {
    /// Node → arbiter.
    Request {
        /// The sender (non-zero).
        node: u32,
        /// The sender's sequence number, echoed in the reply.
        seq: u64,
        /// What it asks for.
        claim: Claim,
    },
    /// Arbiter → node.
    Reply {
        /// The node the reply is for (non-zero).
        node: u32,
        /// The request's sequence number.
        seq: u64,
        /// The decision.
        verdict: Verdict,
        /// Granted: the lease length; held: the holder's remaining time; else 0. µs.
        lease_us: u32,
        /// The holder after the decision (0: nobody).
        holder: u32,
    },
}

/// Why a datagram is not a lease message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseDecodeError {
    /// Shorter than its header or than the payload length it states.
    #[error("truncated lease message: {got} of {needed} bytes")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// Not `"HW"`.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 2]),
    /// Another version.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// Payload length above [`MAX_LEASE_PAYLOAD`].
    #[error("payload of {0} bytes is too long")]
    TooLong(usize),
    /// A kind this version does not know.
    #[error("unknown kind {0}")]
    UnknownKind(u8),
    /// The payload does not match its kind.
    #[error("malformed lease {kind}: {reason}")]
    Malformed {
        /// The kind.
        kind: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

fn malformed(kind: &'static str, reason: &'static str) -> LeaseDecodeError {
    LeaseDecodeError::Malformed { kind, reason }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl LeaseMessage {
    /// Decodes one datagram, which must be exactly one message (no trailing bytes).
    pub fn decode(d: &[u8]) -> Result<LeaseMessage, LeaseDecodeError> {
        if d.len() >= 2 && d[..2] != LEASE_MAGIC {
            return Err(LeaseDecodeError::BadMagic([d[0], d[1]]));
        }
        if d.len() < LEASE_HEADER_LEN {
            return Err(LeaseDecodeError::Truncated {
                needed: LEASE_HEADER_LEN,
                got: d.len(),
            });
        }
        if d[2] != LEASE_VERSION {
            return Err(LeaseDecodeError::BadVersion(d[2]));
        }
        let len = le_u32(d, 4) as usize;
        if len > MAX_LEASE_PAYLOAD {
            return Err(LeaseDecodeError::TooLong(len));
        }
        let total = LEASE_HEADER_LEN + len;
        if d.len() < total {
            return Err(LeaseDecodeError::Truncated {
                needed: total,
                got: d.len(),
            });
        }
        let p = &d[LEASE_HEADER_LEN..total];
        let (kind, expect) = match d[3] {
            KIND_REQUEST => ("request", REQUEST_LEN),
            KIND_REPLY => ("reply", REPLY_LEN),
            k => return Err(LeaseDecodeError::UnknownKind(k)),
        };
        if p.len() != expect {
            return Err(malformed(kind, "wrong payload length"));
        }
        if d.len() != total {
            return Err(malformed(kind, "trailing bytes after the message"));
        }
        let node = le_u32(p, 0);
        if node == 0 {
            return Err(malformed(kind, "node 0"));
        }
        let seq = le_u64(p, 4);
        if d[3] == KIND_REQUEST {
            let standby = le_u32(p, 13);
            let claim = match (p[12], standby) {
                (1, 0) => return Err(malformed(kind, "protected claim without a standby")),
                (1, s) if s == node => return Err(malformed(kind, "a node as its own standby")),
                (1, s) => Claim::Protected { standby: s },
                (2, 0) => Claim::Alone,
                (3, 0) => Claim::Takeover,
                (2 | 3, _) => return Err(malformed(kind, "standby on a claim without one")),
                _ => return Err(malformed(kind, "unknown claim")),
            };
            Ok(LeaseMessage::Request { node, seq, claim })
        } else {
            let verdict = match p[12] {
                1 => Verdict::Granted,
                2 => Verdict::Held,
                3 => Verdict::NotInSync,
                4 => Verdict::Starting,
                _ => return Err(malformed(kind, "unknown verdict")),
            };
            Ok(LeaseMessage::Reply {
                node,
                seq,
                verdict,
                lease_us: le_u32(p, 13),
                holder: le_u32(p, 17),
            })
        }
    }

    /// Encodes the message as one datagram ([`LeaseMessage::decode`]'s inverse for every
    /// message it accepts).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEASE_HEADER_LEN + REPLY_LEN);
        out.extend_from_slice(&LEASE_MAGIC);
        out.push(LEASE_VERSION);
        match *self {
            LeaseMessage::Request { node, seq, claim } => {
                out.push(KIND_REQUEST);
                out.extend_from_slice(&(REQUEST_LEN as u32).to_le_bytes());
                out.extend_from_slice(&node.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                let (c, standby) = match claim {
                    Claim::Protected { standby } => (1u8, standby),
                    Claim::Alone => (2, 0),
                    Claim::Takeover => (3, 0),
                };
                out.push(c);
                out.extend_from_slice(&standby.to_le_bytes());
            }
            LeaseMessage::Reply {
                node,
                seq,
                verdict,
                lease_us,
                holder,
            } => {
                out.push(KIND_REPLY);
                out.extend_from_slice(&(REPLY_LEN as u32).to_le_bytes());
                out.extend_from_slice(&node.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                out.push(match verdict {
                    Verdict::Granted => 1,
                    Verdict::Held => 2,
                    Verdict::NotInSync => 3,
                    Verdict::Starting => 4,
                });
                out.extend_from_slice(&lease_us.to_le_bytes());
                out.extend_from_slice(&holder.to_le_bytes());
            }
        }
        out
    }
}

/// The arbiter's state: who holds the lease until when (in the arbiter's monotonic clock, µs),
/// and which node is the recorded in-sync standby.
#[derive(Clone, Debug)]
pub struct Witness {
    lease_us: u64,
    /// Before this time nothing is granted (one lease after start).
    grants_from_us: u64,
    holder: Option<(u32, u64)>,
    /// The node ever granted a lease last (even expired): only it may renew.
    last_holder: Option<u32>,
    standby: Option<u32>,
}

impl Witness {
    /// An arbiter started at `now_us` granting leases of `lease_us`.
    pub fn new(now_us: u64, lease_us: u64) -> Witness {
        Witness {
            lease_us,
            grants_from_us: now_us.saturating_add(lease_us),
            holder: None,
            last_holder: None,
            standby: None,
        }
    }

    /// The holder of an unexpired lease at `now_us`.
    pub fn holder(&self, now_us: u64) -> Option<u32> {
        self.holder
            .filter(|&(_, until)| until > now_us)
            .map(|(n, _)| n)
    }

    /// The recorded in-sync standby.
    pub fn standby(&self) -> Option<u32> {
        self.standby
    }

    /// Decides `node`'s `claim` arriving at `now_us`: the verdict, the lease (or the holder's
    /// remaining time) in µs, and the holder afterwards.
    ///
    /// * Only one node holds an unexpired lease at any time; another's claim is `Held`.
    /// * `Protected`/`Alone`: granted to the node that held the lease last (renewal, also after
    ///   it expired), or to anyone while nobody ever held it; `Alone` forgets the standby.
    /// * `Takeover`: granted only to the recorded standby once the lease ran out; the winner
    ///   serves alone, so the standby record is cleared.
    pub fn decide(&mut self, now_us: u64, node: u32, claim: Claim) -> (Verdict, u32, u32) {
        let cap = |us: u64| us.min(u64::from(u32::MAX)) as u32;
        if now_us < self.grants_from_us {
            return (Verdict::Starting, 0, 0);
        }
        if let Some((h, until)) = self.holder
            && h != node
            && until > now_us
        {
            return (Verdict::Held, cap(until - now_us), h);
        }
        let allowed = match claim {
            Claim::Protected { .. } | Claim::Alone => self.last_holder.is_none_or(|h| h == node),
            Claim::Takeover => self.standby == Some(node),
        };
        if !allowed {
            return (Verdict::NotInSync, 0, self.holder(now_us).unwrap_or(0));
        }
        self.standby = match claim {
            Claim::Protected { standby } => Some(standby),
            Claim::Alone | Claim::Takeover => None,
        };
        self.holder = Some((node, now_us.saturating_add(self.lease_us)));
        self.last_holder = Some(node);
        (Verdict::Granted, cap(self.lease_us), node)
    }
}

/// Requests a node remembers for matching replies (older replies are ignored as stale).
const SENT_REMEMBERED: usize = 64;

/// A node's side of the lease: which requests it sent when (its own monotonic clock, µs) and
/// until when the lease it was granted is good.
#[derive(Clone, Debug)]
pub struct LeaseClient {
    node: u32,
    margin_us: u64,
    seq: u64,
    sent: VecDeque<(u64, u64)>,
    applied_seq: u64,
    valid_until_us: Option<u64>,
    /// The last verdict applied.
    pub last_verdict: Option<Verdict>,
    /// Replies granted.
    pub grants: u64,
    /// Replies refused.
    pub refusals: u64,
    /// Replies ignored: for another node, unknown or older than one already applied.
    pub ignored: u64,
}

impl LeaseClient {
    /// Node `node`; a grant is trusted until `lease - margin_us` after its request was sent.
    pub fn new(node: u32, margin_us: u64) -> LeaseClient {
        LeaseClient {
            node,
            margin_us,
            seq: 0,
            sent: VecDeque::new(),
            applied_seq: 0,
            valid_until_us: None,
            last_verdict: None,
            grants: 0,
            refusals: 0,
            ignored: 0,
        }
    }

    /// The request to send now for `claim` (its send time is remembered).
    pub fn request(&mut self, now_us: u64, claim: Claim) -> LeaseMessage {
        self.seq += 1;
        if self.sent.len() == SENT_REMEMBERED {
            self.sent.pop_front();
        }
        self.sent.push_back((self.seq, now_us));
        LeaseMessage::Request {
            node: self.node,
            seq: self.seq,
            claim,
        }
    }

    /// Applies a reply; returns the verdict when it was for one of this node's recent requests
    /// and newer than any applied so far.
    pub fn on_reply(&mut self, m: &LeaseMessage) -> Option<Verdict> {
        let LeaseMessage::Reply {
            node,
            seq,
            verdict,
            lease_us,
            ..
        } = *m
        else {
            self.ignored += 1;
            return None;
        };
        let sent_at = self
            .sent
            .iter()
            .find(|&&(s, _)| s == seq)
            .map(|&(_, at)| at);
        let (true, Some(sent_at), true) = (node == self.node, sent_at, seq > self.applied_seq)
        else {
            self.ignored += 1;
            return None;
        };
        self.applied_seq = seq;
        self.last_verdict = Some(verdict);
        if verdict == Verdict::Granted {
            self.grants += 1;
            let until = (sent_at + u64::from(lease_us)).saturating_sub(self.margin_us);
            self.valid_until_us = Some(self.valid_until_us.unwrap_or(0).max(until));
        } else {
            // Someone else holds it, or it may not be ours: whatever we held is gone.
            self.refusals += 1;
            self.valid_until_us = None;
        }
        Some(verdict)
    }

    /// Holds an unexpired lease at `now_us`.
    pub fn holds(&self, now_us: u64) -> bool {
        self.valid_until_us.is_some_and(|u| u > now_us)
    }

    /// The end of the lease as this node counts it.
    pub fn valid_until_us(&self) -> Option<u64> {
        self.valid_until_us
    }
}

/// `hac ha-arbiter`'s configuration.
#[derive(Clone, Debug)]
pub struct ArbiterConfig {
    /// UDP address to serve.
    pub listen: SocketAddr,
    /// Lease length, ms.
    pub lease_ms: u64,
}

/// Runs the arbiter until its stdin closes: answers every well-formed request, counts every
/// malformed datagram, reports holder changes as JSON lines (`ready`, `holder`, `exit`).
pub fn run(cfg: &ArbiterConfig) -> std::io::Result<()> {
    let sock = UdpSocket::bind(cfg.listen)?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let started = Instant::now();
    let mono = || started.elapsed().as_micros() as u64;
    let mut w = Witness::new(mono(), cfg.lease_ms * 1000);
    emit_line(
        json!({"ev": "ready", "role": "arbiter", "t_unix_us": unix_us(),
        "lease_ms": cfg.lease_ms}),
    );
    let stop = stop_when_stdin_closes();
    // One byte more than the largest message, so an oversized datagram is seen as such.
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    let (mut requests, mut granted, mut refused, mut malformed_n) = (0u64, 0u64, 0u64, 0u64);
    let mut last_holder = None;
    let mut last_standby = None;
    while !stop.load(Ordering::SeqCst) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        let Ok(LeaseMessage::Request { node, seq, claim }) = LeaseMessage::decode(&buf[..n]) else {
            malformed_n += 1;
            continue;
        };
        requests += 1;
        let now = mono();
        let (verdict, lease_us, holder) = w.decide(now, node, claim);
        if verdict == Verdict::Granted {
            granted += 1;
        } else {
            refused += 1;
        }
        let reply = LeaseMessage::Reply {
            node,
            seq,
            verdict,
            lease_us,
            holder,
        };
        let _ = sock.send_to(&reply.encode(), from);
        let h = w.holder(now);
        if h != last_holder || w.standby() != last_standby {
            last_holder = h;
            last_standby = w.standby();
            emit_line(json!({"ev": "holder", "t_unix_us": unix_us(),
                "holder": h, "standby": w.standby(), "verdict": verdict, "from": node}));
        }
    }
    emit_line(
        json!({"ev": "exit", "role": "arbiter", "t_unix_us": unix_us(),
        "requests": requests, "granted": granted, "refused": refused, "malformed": malformed_n}),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u32 = 1;
    const B: u32 = 2;
    const L: u64 = 40_000;

    fn ready() -> Witness {
        Witness::new(0, L)
    }

    #[test]
    fn messages_round_trip() {
        let all = [
            LeaseMessage::Request {
                node: P,
                seq: 7,
                claim: Claim::Protected { standby: B },
            },
            LeaseMessage::Request {
                node: B,
                seq: u64::MAX,
                claim: Claim::Takeover,
            },
            LeaseMessage::Request {
                node: P,
                seq: 0,
                claim: Claim::Alone,
            },
            LeaseMessage::Reply {
                node: B,
                seq: 3,
                verdict: Verdict::Held,
                lease_us: 12_345,
                holder: P,
            },
            LeaseMessage::Reply {
                node: P,
                seq: 4,
                verdict: Verdict::Starting,
                lease_us: 0,
                holder: 0,
            },
        ];
        for m in all {
            let b = m.encode();
            assert!(b.len() <= MAX_DATAGRAM);
            assert_eq!(LeaseMessage::decode(&b), Ok(m));
        }
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        let good = LeaseMessage::Request {
            node: P,
            seq: 1,
            claim: Claim::Protected { standby: B },
        }
        .encode();
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            LeaseMessage::decode(&b)
        };
        assert_eq!(
            LeaseMessage::decode(&good[..5]),
            Err(LeaseDecodeError::Truncated { needed: 8, got: 5 })
        );
        assert_eq!(
            LeaseMessage::decode(&good[..20]),
            Err(LeaseDecodeError::Truncated {
                needed: 25,
                got: 20
            })
        );
        assert_eq!(with(0, b'X'), Err(LeaseDecodeError::BadMagic(*b"XW")));
        assert_eq!(with(2, 2), Err(LeaseDecodeError::BadVersion(2)));
        assert_eq!(with(3, 9), Err(LeaseDecodeError::UnknownKind(9)));
        assert_eq!(with(4, 200), Err(LeaseDecodeError::TooLong(200)));
        assert!(matches!(
            with(4, 16),
            Err(LeaseDecodeError::Malformed { .. })
        ));
        assert!(matches!(
            with(20, 7),
            Err(LeaseDecodeError::Malformed { .. })
        )); // claim
        assert!(matches!(
            with(8, 0),
            Err(LeaseDecodeError::Malformed { .. })
        )); // node 0
        assert!(matches!(
            with(21, 1),
            Err(LeaseDecodeError::Malformed { .. })
        )); // standby = node
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            LeaseMessage::decode(&long),
            Err(LeaseDecodeError::Malformed {
                reason: "trailing bytes after the message",
                ..
            })
        ));
        assert!(LeaseMessage::decode(&[]).is_err());
    }

    #[test]
    fn nothing_is_granted_in_the_first_lease_after_a_start() {
        let mut w = Witness::new(1_000, L);
        let c = Claim::Protected { standby: B };
        assert_eq!(w.decide(1_000 + L - 1, P, c).0, Verdict::Starting);
        assert_eq!(w.decide(1_000 + L, P, c).0, Verdict::Granted);
    }

    #[test]
    fn a_link_cut_leaves_the_renewing_primary_alone_and_the_backup_out() {
        let mut w = ready();
        let c = Claim::Protected { standby: B };
        assert_eq!(w.decide(L, P, c), (Verdict::Granted, L as u32, P));
        assert_eq!(w.decide(L + 5_000, P, c).0, Verdict::Granted);
        // Both find the other silent: the backup asks while the primary's lease runs.
        let (v, left, h) = w.decide(L + 20_000, B, Claim::Takeover);
        assert_eq!((v, left, h), (Verdict::Held, 25_000, P));
        assert_eq!(w.decide(L + 21_000, P, Claim::Alone).0, Verdict::Granted);
        assert_eq!(w.standby(), None);
        // The primary dies: its lease runs out, but the backup's replica is behind what the
        // primary served alone, so it never gets the lease.
        assert_eq!(
            w.decide(L + 500_000, B, Claim::Takeover).0,
            Verdict::NotInSync
        );
        assert_eq!(w.holder(L + 500_000), None);
    }

    #[test]
    fn the_in_sync_standby_takes_over_only_after_the_lease_ran_out() {
        let mut w = ready();
        w.decide(L, P, Claim::Protected { standby: B });
        assert_eq!(w.decide(L + L - 1, B, Claim::Takeover).0, Verdict::Held);
        assert_eq!(w.decide(L + L, B, Claim::Takeover).0, Verdict::Granted);
        assert_eq!(w.holder(L + L), Some(B));
        // The old primary comes back: it neither renews nor gets the lease later.
        let late = 10 * L;
        assert_eq!(
            w.decide(L + L + 1, P, Claim::Protected { standby: B }).0,
            Verdict::Held
        );
        assert_eq!(w.decide(late, P, Claim::Alone).0, Verdict::NotInSync);
        // The new holder renews alone.
        assert_eq!(w.decide(late, B, Claim::Alone).0, Verdict::Granted);
    }

    #[test]
    fn a_takeover_by_a_node_never_recorded_is_refused() {
        let mut w = ready();
        assert_eq!(w.decide(L, B, Claim::Takeover).0, Verdict::NotInSync);
        assert_eq!(w.holder(L), None);
    }

    #[test]
    fn the_holder_counts_its_lease_from_the_send_time_minus_the_margin() {
        let mut c = LeaseClient::new(P, 10_000);
        let r1 = c.request(100_000, Claim::Protected { standby: B });
        let r2 = c.request(105_000, Claim::Protected { standby: B });
        let seq = |m: LeaseMessage| match m {
            LeaseMessage::Request { seq, .. } => seq,
            _ => 0,
        };
        let reply = |seq, verdict| LeaseMessage::Reply {
            node: P,
            seq,
            verdict,
            lease_us: 40_000,
            holder: P,
        };
        assert!(!c.holds(100_000));
        // Arrives late (say 30 ms on the way): still counted from the send time.
        assert_eq!(
            c.on_reply(&reply(seq(r2), Verdict::Granted)),
            Some(Verdict::Granted)
        );
        assert_eq!(c.valid_until_us(), Some(135_000));
        assert!(c.holds(134_999) && !c.holds(135_000));
        // An older reply after a newer one is ignored, as is one for another node or seq.
        assert_eq!(c.on_reply(&reply(seq(r1), Verdict::Held)), None);
        assert_eq!(c.on_reply(&reply(99, Verdict::Granted)), None);
        let other = LeaseMessage::Reply {
            node: B,
            seq: seq(r2) + 1,
            verdict: Verdict::Granted,
            lease_us: 1,
            holder: B,
        };
        assert_eq!(c.on_reply(&other), None);
        assert_eq!(c.ignored, 3);
        // A refusal ends the lease at once.
        let r3 = c.request(110_000, Claim::Alone);
        assert_eq!(
            c.on_reply(&reply(seq(r3), Verdict::Held)),
            Some(Verdict::Held)
        );
        assert!(!c.holds(110_000));
    }

    #[test]
    fn the_holder_stops_before_the_arbiter_grants_anyone_else() {
        // Whatever the delays, the holder's own end (send + lease - margin) comes before the
        // arbiter's (arrival + lease), so two holders never overlap in real time.
        for delay in [0u64, 1, 500, 20_000, 39_000] {
            let mut w = ready();
            let mut c = LeaseClient::new(P, 10_000);
            let send = L + 1_000;
            let req = c.request(send, Claim::Protected { standby: B });
            let LeaseMessage::Request { seq, claim, .. } = req else {
                unreachable!()
            };
            let (verdict, lease_us, holder) = w.decide(send + delay, P, claim);
            c.on_reply(&LeaseMessage::Reply {
                node: P,
                seq,
                verdict,
                lease_us,
                holder,
            });
            let holder_end = c.valid_until_us().unwrap_or(0);
            let mut t = send;
            while w.decide(t, B, Claim::Takeover).0 != Verdict::Granted {
                t += 100;
            }
            assert!(
                holder_end + 10_000 <= t,
                "delay {delay}: {holder_end} vs {t}"
            );
        }
    }
}

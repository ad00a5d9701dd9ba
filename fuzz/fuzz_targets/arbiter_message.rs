//! Arbitrary bytes as a datagram to the failover demo's lease arbiter, or as the arbiter's reply
//! to a node, on the `hac-ha` crate alone. Oracles beyond "no panic": an accepted datagram is
//! exactly one message (it re-encodes to the very same bytes, and decodes again to the same
//! message), no message is longer than `MAX_DATAGRAM`, every cut-short prefix is refused, and
//! the arbiter's decision and a node's view of its lease keep their invariants on whatever
//! sequence of requests the input describes: at most one unexpired holder, a takeover only by
//! the recorded standby, and a holder's own lease end before the arbiter would grant anyone else.
#![no_main]

use hac_ha::arbiter::{Claim, LeaseClient, LeaseMessage, MAX_DATAGRAM, Verdict, Witness};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match LeaseMessage::decode(data) {
        Ok(m) => {
            let again = m.encode();
            assert!(again.len() <= MAX_DATAGRAM);
            assert_eq!(again, data, "re-encoding differs");
            assert_eq!(LeaseMessage::decode(&again), Ok(m));
            for cut in 0..again.len() {
                assert!(LeaseMessage::decode(&again[..cut]).is_err(), "prefix {cut} accepted");
            }
        }
        Err(_) => {}
    }
    // The same bytes as a script: each 3-byte record is (node 1..=3, claim, time step in ms).
    let lease_us = 40_000;
    let mut w = Witness::new(0, lease_us);
    let mut clients: Vec<LeaseClient> = (1..=3).map(|n| LeaseClient::new(n, 10_000)).collect();
    let mut now = 0u64;
    let mut holder_end = [0u64; 4];
    for rec in data.chunks_exact(3) {
        now += u64::from(rec[2]) * 1_000;
        let node = u32::from(rec[0] % 3) + 1;
        let claim = match rec[1] % 3 {
            0 => Claim::Protected {
                standby: node % 3 + 1,
            },
            1 => Claim::Alone,
            _ => Claim::Takeover,
        };
        let standby_before = w.standby();
        let holder_before = w.holder(now);
        let c = &mut clients[node as usize - 1];
        let LeaseMessage::Request { seq, .. } = c.request(now, claim) else {
            unreachable!("a client builds requests")
        };
        let (verdict, lease, holder) = w.decide(now, node, claim);
        if verdict == Verdict::Granted {
            // Nobody else held an unexpired lease, and every other node's own view has ended.
            assert!(holder_before.is_none_or(|h| h == node));
            for other in 1..=3u32 {
                if other != node {
                    assert!(holder_end[other as usize] <= now, "two holders at {now}");
                }
            }
            if claim == Claim::Takeover {
                assert_eq!(standby_before, Some(node), "takeover by a node not in sync");
            }
            assert_eq!(w.holder(now), Some(node));
        }
        let reply = LeaseMessage::Reply {
            node,
            seq,
            verdict,
            lease_us: lease,
            holder,
        };
        assert_eq!(c.on_reply(&reply), Some(verdict));
        holder_end[node as usize] = if c.holds(now) {
            c.valid_until_us().unwrap_or(0)
        } else {
            // A refusal ends the node's own lease at once (it fences).
            holder_end[node as usize].min(now)
        };
    }
});

//! The client-routed writes: order, splitting, interrupts behind their writes, malformed
//! replies, the bound, and the checkpoint oracle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::*;
use crate::checkpoint_sim::{Sim, Step};
use crate::wire::{Header, errno};

fn queue(max_items: usize, max_bytes: u64) -> Arc<DmaWriteQueue> {
    DmaWriteQueue::new(ClientDmaLimits {
        max_items,
        max_bytes,
    })
    .unwrap()
}

/// The whole messages in `bytes`.
fn messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let size = Header::parse(&bytes[at..]).unwrap().size as usize;
        out.push(bytes[at..at + size].to_vec());
        at += size;
    }
    assert_eq!(at, bytes.len(), "partial message");
    out
}

#[test]
fn the_dma_write_layout_is_the_one_qemu_11_applies() {
    let m = dma_write_message(7, 0x1234_5678_9ABC, &[1, 2, 3]);
    let h = Header::parse(&m).unwrap();
    assert_eq!((h.id, h.command, h.flags), (7, Command::DmaWrite, 0));
    // Header, address (u64), count (u64), data from byte 32; nothing after the data.
    assert_eq!(m.len(), 32 + 3);
    assert_eq!(h.size as usize, m.len());
    assert_eq!(&m[16..24], &0x1234_5678_9ABCu64.to_le_bytes());
    assert_eq!(&m[24..32], &3u64.to_le_bytes());
    assert_eq!(&m[32..35], &[1, 2, 3]);
    // QEMU: count <= size - 32.
    assert!(3 <= h.size as usize - 32);
    assert_eq!(
        parse_dma_write(&m),
        Some((7, 0x1234_5678_9ABC, &[1u8, 2, 3][..]))
    );
    assert_eq!(parse_dma_write(&m[..20]), None);
    assert_eq!(parse_dma_write(&m[..34]), None, "a count past the message");
}

#[test]
fn writes_leave_in_order_split_at_the_client_transfer_size() {
    let q = queue(64, 1 << 20);
    let mut o = Outbox::new(q.clone(), 600);
    assert_eq!(o.max_xfer, 600, "the client's size");
    o.set_max_xfer(100);
    assert_eq!(o.max_xfer, MIN_CLIENT_XFER, "at least MIN_CLIENT_XFER");
    assert!(q.write(0x1000, &[0xAA; 1200]));
    assert!(q.write(0x9000, &[0xBB; 10]));
    let mut out = Vec::new();
    o.pull(&mut out);
    let got: Vec<_> = messages(&out)
        .iter()
        .map(|m| {
            let (id, a, d) = parse_dma_write(m).unwrap();
            (id, a, d.len(), d[0])
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 0x1000, 512, 0xAA),
            (1, 0x1200, 512, 0xAA),
            (2, 0x1400, 176, 0xAA),
            (3, 0x9000, 10, 0xBB)
        ]
    );
    assert_eq!(q.pending_bytes(), 1210);
    let c = q.counters();
    assert_eq!(
        (c.dma_writes_queued, c.dma_writes_sent, c.dma_write_bytes),
        (2, 4, 1210)
    );
    for id in 0..4 {
        o.on_reply(&dma_write_reply(id, None));
    }
    assert_eq!(q.pending_bytes(), 0);
    assert_eq!(q.counters().dma_writes_acked, 4);
}

#[test]
fn an_interrupt_waits_for_every_write_queued_before_it() {
    let q = queue(64, 1 << 20);
    let mut o = Outbox::new(q.clone(), 1 << 20);
    let fd = Arc::new(EventFd::new().unwrap());
    let other = Arc::new(EventFd::new().unwrap());
    q.write(0x1000, &[1; 64]); // id 0
    q.write(0x2000, &[2; 16]); // id 1
    q.irq(0, fd.clone());
    q.write(0x3000, &[3; 16]); // id 2
    q.irq(1, other.clone());
    let mut out = Vec::new();
    o.pull(&mut out);
    assert_eq!(messages(&out).len(), 3);
    assert_eq!(o.fire_due(), 0, "nothing acknowledged yet");
    // Reordered acknowledgements: the later writes first.
    o.on_reply(&dma_write_reply(2, None));
    o.on_reply(&dma_write_reply(1, None));
    assert_eq!(o.fire_due(), 0, "write 0 is still in flight");
    assert_eq!(fd.take().unwrap(), 0);
    o.on_reply(&dma_write_reply(0, None));
    assert_eq!(o.fire_due(), 2, "both are due now, in order");
    assert_eq!((fd.take().unwrap(), other.take().unwrap()), (1, 1));
    // With nothing in flight an interrupt is due at once.
    q.irq(0, fd.clone());
    o.pull(&mut out);
    assert_eq!(o.fire_due(), 1);
    let c = q.counters();
    assert_eq!((c.irqs_deferred, c.irqs_fired, c.irqs_merged), (3, 3, 0));
}

#[test]
fn repeated_interrupts_behind_the_same_writes_are_one_wake_up() {
    let q = queue(64, 1 << 20);
    let mut o = Outbox::new(q.clone(), 1 << 20);
    let fd = Arc::new(EventFd::new().unwrap());
    q.write(0x1000, &[1; 8]);
    for _ in 0..50 {
        q.irq(0, fd.clone());
    }
    let mut out = Vec::new();
    o.pull(&mut out);
    assert_eq!(o.held(), 1);
    o.on_reply(&dma_write_reply(0, None));
    assert_eq!(o.fire_due(), 1);
    let c = q.counters();
    assert_eq!(
        (
            c.irqs_deferred,
            c.irqs_merged,
            c.irqs_fired,
            c.irqs_deferred_lost
        ),
        (50, 49, 1, 0),
        "every interrupt accounted for: merged, fired or lost"
    );
}

#[test]
fn a_disconnect_counts_each_write_once_however_many_chunks_were_in_flight() {
    let q = queue(64, 1 << 20);
    let mut o = Outbox::new(q.clone(), MIN_CLIENT_XFER);
    let fd = Arc::new(EventFd::new().unwrap());
    let big = vec![7u8; MIN_CLIENT_XFER as usize * 3];
    q.write(0x10_000, &big); // three messages
    q.write(0x20_000, &[1; 8]); // one
    q.irq(0, fd.clone());
    let mut out = Vec::new();
    o.pull(&mut out);
    assert_eq!(messages(&out).len(), 4);
    // The client applies the big write's first chunk, then goes away.
    o.on_reply(&dma_write_reply(0, None));
    drop(o);
    let c = q.counters();
    assert_eq!(
        c.dma_writes_dropped, 3,
        "two writes and one interrupt, not four messages"
    );
    assert_eq!((c.dma_writes_sent, c.dma_writes_acked), (4, 1));
    assert_eq!(q.pending_bytes(), 0);
}

#[test]
fn malformed_replies_are_counted_and_never_release_a_write() {
    let q = queue(64, 1 << 20);
    let mut o = Outbox::new(q.clone(), 1 << 20);
    let fd = Arc::new(EventFd::new().unwrap());
    q.write(0x1000, &[1; 8]); // id 0
    q.write(0x2000, &[1; 8]); // id 1
    q.irq(0, fd.clone());
    let mut out = Vec::new();
    o.pull(&mut out);
    // Unknown id.
    o.on_reply(&dma_write_reply(99, None));
    // Short: fewer bytes than a header, and a header with an impossible size.
    o.on_reply(&[0, 0, 12]);
    let mut bad = dma_write_reply(0, None);
    bad[4..8].copy_from_slice(&3u32.to_le_bytes());
    o.on_reply(&bad);
    // A reply to a write's id but for another command.
    let h = Header {
        id: 0,
        command: Command::RegionRead,
        size: 16,
        flags: 0,
        error: 0,
    };
    o.on_reply(&wire::reply(&h, &[]));
    assert_eq!(o.in_flight(), 2, "none of these released a write");
    assert_eq!(o.fire_due(), 0);
    // An error reply releases its write (the client did not apply it: a master abort).
    o.on_reply(&dma_write_reply(0, Some(errno::EFAULT)));
    o.on_reply(&dma_write_reply(0, None)); // now unknown
    o.on_reply(&dma_write_reply(1, None));
    assert_eq!(o.fire_due(), 1);
    let c = q.counters();
    assert_eq!(c.dma_write_unknown_replies, 2);
    assert_eq!(c.dma_write_malformed_replies, 3);
    assert_eq!(c.dma_write_error_replies, 1);
    assert_eq!(c.dma_writes_acked, 1);
    assert_eq!(q.pending_bytes(), 0);
}

#[test]
fn a_client_that_never_replies_makes_the_queue_fail_closed() {
    let q = queue(8, 1 << 20);
    let mut o = Outbox::new(q.clone(), 1 << 20);
    let mut out = Vec::new();
    let fd = Arc::new(EventFd::new().unwrap());
    let mut accepted = 0;
    for i in 0..100u64 {
        if q.write(i * 64, &[1; 64]) {
            accepted += 1;
        }
        o.pull(&mut out);
    }
    // 8 in flight, 8 more queued, then the queue is full and fails closed.
    assert_eq!(accepted, 16);
    assert!(q.failed() && o.failed());
    assert!(!q.irq(0, fd.clone()), "interrupts are refused too");
    assert!(!q.write(0, &[1]), "and every later write");
    let c = q.counters();
    assert_eq!(
        c.dma_write_overflows, 1,
        "one overflow, however many refusals"
    );
    assert_eq!(c.dma_writes_dropped, 100 - 16 + 2);
    assert_eq!(o.in_flight(), 8);
    assert!(q.pending_bytes() <= 16 * 64);
    // The connection ends: everything is released and the next one starts afresh.
    drop(o);
    assert_eq!(q.pending_bytes(), 0);
    assert!(!q.failed());
    // Every accepted write ended dropped too (8 in flight, 8 queued), besides the refusals.
    assert_eq!(q.counters().dma_writes_dropped, 100 - 16 + 2 + 16);
    let _o = Outbox::new(q.clone(), 1 << 20);
    assert!(q.write(0, &[1]));
}

#[test]
fn the_byte_bound_fails_closed_too() {
    let q = queue(1000, 1000);
    assert!(q.write(0, &[0; 600]));
    assert!(!q.write(0, &[0; 600]));
    assert!(q.failed());
    assert_eq!(q.pending_bytes(), 600);
    assert_eq!(q.counters().dma_write_overflows, 1);
}

#[test]
fn the_mode_parses_and_prints() {
    assert_eq!("client".parse::<DmaWrites>(), Ok(DmaWrites::Client));
    assert_eq!("direct".parse::<DmaWrites>(), Ok(DmaWrites::Direct));
    assert!("dma".parse::<DmaWrites>().is_err());
    assert_eq!(DmaWrites::Client.to_string(), "client");
    assert_eq!(DmaWrites::default(), DmaWrites::Direct);
}

/// A deterministic stream of steps (xorshift), without error replies (each loses its write, so
/// a ring stalls for good; the fuzz target has them).
fn steps(seed: u64, n: usize) -> Vec<Step> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match Step::from_bytes((x >> 8) as u8, (x >> 16) as u8) {
                Step::BadReply(1) => Step::BadReply(0),
                s => s,
            }
        })
        .collect()
}

#[test]
fn oracle_every_checkpoint_carries_every_page_the_device_wrote_in_client_mode() {
    for seed in 1..=40 {
        let mut sim = Sim::new(DmaWrites::Client, ClientDmaLimits::default()).unwrap();
        let out = sim
            .run(&steps(seed, 3000))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(out.checkpoints > 100 && out.frames_received > 50, "{out:?}");
        assert_eq!(out.inconsistent, 0, "seed {seed}: {out:?}");
        assert!(!out.failed_closed);
    }
}

#[test]
fn oracle_negative_control_direct_writes_are_missed_by_checkpoints() {
    let mut missed = 0;
    for seed in 1..=40 {
        let mut sim = Sim::new(DmaWrites::Direct, ClientDmaLimits::default()).unwrap();
        let out = sim.run(&steps(seed, 3000)).unwrap();
        missed += out.inconsistent;
    }
    assert!(missed > 0, "the oracle must be able to fail");
}

#[test]
fn oracle_with_a_tiny_queue_fails_closed_and_stays_consistent_until_then() {
    let limits = ClientDmaLimits {
        max_items: 2,
        max_bytes: 4096,
    };
    let mut closed = 0;
    for seed in 1..=40 {
        let mut sim = Sim::new(DmaWrites::Client, limits).unwrap();
        let out = sim
            .run(&steps(seed, 2000))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(out.inconsistent, 0, "seed {seed}");
        closed += u64::from(out.failed_closed);
    }
    assert!(closed > 0);
}

#[test]
fn what_a_pull_left_on_the_held_bound_goes_as_soon_as_the_interrupts_fire() {
    // Found in review: `pull` takes the wake-up, then stops on the held-interrupt bound with
    // items still queued; once the writes are acknowledged and the held interrupts fire, the
    // rest must go at once, not when something unrelated wakes the connection.
    let q = queue(2, 1 << 20);
    let mut o = Outbox::new(q.clone(), 1 << 20);
    let a = Arc::new(EventFd::new().unwrap());
    let b = Arc::new(EventFd::new().unwrap());
    let c = Arc::new(EventFd::new().unwrap());
    q.write(0x1000, &[1; 16]); // id 0
    let mut out = Vec::new();
    o.pump(&mut out);
    q.irq(0, a.clone());
    q.irq(1, b.clone());
    o.pump(&mut out);
    assert_eq!((o.in_flight(), o.held()), (1, 2));
    q.write(0x2000, &[2; 16]);
    q.irq(2, c.clone());
    o.pump(&mut out);
    assert_eq!(o.held(), 2, "the bound holds the rest in the queue");
    o.on_reply(&dma_write_reply(0, None));
    o.pump(&mut out);
    assert_eq!((a.take().unwrap(), b.take().unwrap()), (1, 1));
    assert_eq!(
        messages(&out).len(),
        2,
        "the second write left in the same pump"
    );
    o.on_reply(&dma_write_reply(1, None));
    o.pump(&mut out);
    assert_eq!(c.take().unwrap(), 1);
    assert_eq!((o.in_flight(), o.held()), (0, 0));
}

#[test]
fn an_error_reply_fails_the_queue_closed() {
    let q = queue(64, 1 << 20);
    let mut o = Outbox::new(q.clone(), 1 << 20);
    let fd = Arc::new(EventFd::new().unwrap());
    q.write(0x1000, &[1; 16]); // id 0
    q.irq(0, fd.clone());
    let mut out = Vec::new();
    o.pump(&mut out);
    o.on_reply(&dma_write_reply(0, Some(errno::EFAULT)));
    assert!(o.failed(), "a refused write ends the connection");
    assert!(
        !q.write(0x2000, &[2; 16]),
        "and the VF's writes are refused after it"
    );
    let c = q.counters();
    assert_eq!((c.dma_write_error_replies, c.dma_write_overflows), (1, 0));
}

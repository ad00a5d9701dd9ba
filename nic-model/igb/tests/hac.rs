//! The HAC extension in the adapter, through its PF register block: tagging, epochs, commit,
//! abort, failover, unprotect, backpressure, priority, statistics (docs/hac.md).
#![allow(clippy::unwrap_used)]

use igb_model::igb_hw::MacAddress;
use igb_model::igb_hw::RegisterOffset;
use igb_model::igb_hw::regs::{PfReg, VfReg};
use igb_model::testing::*;
use igb_model::{FunctionId, LineRate, Nic, NicConfig, SimTime};

const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
const OPEN: u32 = 1;
const COMMIT: u32 = 2;
const ABORT: u32 = 3;
const FAILOVER: u32 = 4;
const UNPROTECT: u32 = 5;

fn hac_nic(vfs: usize) -> Nic {
    let cfg = NicConfig {
        capture_wire: true,
        line_rate: LineRate::G1,
        ..NicConfig::default()
    };
    let mut nic = bring_up(vfs, cfg);
    nic.pf_write(PfReg::HACCTL, 1);
    nic
}

/// Executes a HAC command; returns HACSTS.RESULT.
fn cmd(nic: &mut Nic, op: u32, vf: usize, epoch: u32) -> u32 {
    nic.pf_write(PfReg::HACARG, epoch);
    nic.pf_write(PfReg::HACCMD, op | ((vf as u32) << 8));
    nic.pf_read(PfReg::HACSTS) & 0xF
}

fn seqs(nic: &mut Nic) -> Vec<(u8, u32, u64)> {
    nic.take_wire_capture()
        .iter()
        .map(|w| {
            (
                w.data[11],
                u32::from_be_bytes([w.data[42], w.data[43], w.data[44], w.data[45]]),
                w.at.as_nanos(),
            )
        })
        .collect()
}

#[test]
fn tagged_frames_wait_for_their_commit() {
    let mut nic = hac_nic(2);
    nic.pf_write(PfReg::HACTAG, 0b01);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    for s in 0..5 {
        a.queue(&udp_frame(PEER, vf_mac(0), s, 200));
    }
    a.doorbell(&mut nic);
    nic.advance_by(10_000_000);
    assert!(nic.take_wire_capture().is_empty(), "nothing before commit");
    assert!(
        a.tx_done(4),
        "descriptors were written back: the ring keeps flowing"
    );
    assert_eq!(nic.pf_read(PfReg::HACBUFF(0)), 5);
    assert_eq!(nic.pf_read(PfReg::HACBUFB(0)), 1000);
    let t_commit = nic.now();
    assert_eq!(cmd(&mut nic, COMMIT, 0, 1), 0);
    nic.drain();
    let out = seqs(&mut nic);
    assert_eq!(
        out.iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4],
        "FIFO"
    );
    assert!(out.iter().all(|o| o.2 >= t_commit.as_nanos()));
    assert_eq!(
        out[0].2,
        t_commit.as_nanos(),
        "first frame leaves at the commit on an idle wire"
    );
    assert_eq!(nic.pf_read(PfReg::HACREL(0)), 5);
    assert_eq!(nic.pf_read(PfReg::HACCOMMITTED(0)), 1);
    assert_eq!(nic.pf_read(PfReg::HACC2F), 0);
    assert_eq!(
        nic.pf_read(PfReg::HACDRAIN),
        5 * LineRate::G1.frame_time_ns(200) as u32
    );
}

#[test]
fn commit_releases_exactly_epochs_up_to_it() {
    let mut nic = hac_nic(1);
    nic.pf_write(PfReg::HACTAG, 0b1);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 10, 100)); // epoch 1
    assert_eq!(cmd(&mut nic, OPEN, 0, 2), 0);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 20, 100)); // epoch 2
    assert_eq!(cmd(&mut nic, OPEN, 0, 3), 0);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 30, 100)); // epoch 3
    assert_eq!(cmd(&mut nic, COMMIT, 0, 1), 0);
    nic.drain();
    assert_eq!(
        seqs(&mut nic).iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![10],
        "not epoch 2 (sch_plug would)"
    );
    assert_eq!(cmd(&mut nic, COMMIT, 0, 2), 0);
    nic.drain();
    assert_eq!(
        seqs(&mut nic).iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![20]
    );
    assert_eq!(nic.pf_read(PfReg::HACOPEN(0)), 3);
    assert_eq!(nic.pf_read(PfReg::HACBUFF(0)), 1);
}

#[test]
fn abort_and_failover_discard_and_count() {
    let mut nic = hac_nic(1);
    nic.pf_write(PfReg::HACTAG, 0b1);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 1, 100));
    cmd(&mut nic, OPEN, 0, 2);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 2, 100));
    assert_eq!(cmd(&mut nic, ABORT, 0, 1), 0);
    assert_eq!(nic.pf_read(PfReg::HACDISC(0)), 1);
    assert_eq!(cmd(&mut nic, COMMIT, 0, 2), 0);
    nic.drain();
    assert_eq!(
        seqs(&mut nic).iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![2]
    );
    cmd(&mut nic, OPEN, 0, 3);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 3, 100));
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 4, 100));
    assert_eq!(cmd(&mut nic, FAILOVER, 0, 0), 0);
    nic.drain();
    assert!(
        nic.take_wire_capture().is_empty(),
        "uncommitted frames never leave"
    );
    assert_eq!(nic.pf_read(PfReg::HACDISC(0)), 3);
    assert_eq!(nic.pf_read(PfReg::HACBUFF(0)), 0);
}

#[test]
fn unprotect_releases_all_and_stops_buffering() {
    let mut nic = hac_nic(1);
    nic.pf_write(PfReg::HACTAG, 0b1);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 1, 100));
    cmd(&mut nic, OPEN, 0, 2);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 2, 100));
    assert_eq!(cmd(&mut nic, UNPROTECT, 0, 0), 0);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 3, 100));
    nic.drain();
    assert_eq!(
        seqs(&mut nic).iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(nic.pf_read(PfReg::HACTAG), 0);
}

#[test]
fn command_errors_are_reported_in_hacsts() {
    let mut nic = bring_up(2, NicConfig::default());
    nic.pf_write(PfReg::HACTAG, 0b1);
    assert_eq!(cmd(&mut nic, COMMIT, 0, 1), 4, "disabled");
    nic.pf_write(PfReg::HACCTL, 1);
    assert_eq!(cmd(&mut nic, COMMIT, 1, 1), 2, "VF 1 not tagged");
    assert_eq!(cmd(&mut nic, COMMIT, 0, 2), 3, "epoch 2 not open");
    assert_eq!(cmd(&mut nic, OPEN, 0, 1), 3, "epoch 1 already open");
    assert_eq!(cmd(&mut nic, 9, 0, 1), 1, "bad op");
    assert_eq!(cmd(&mut nic, COMMIT, 0, 1), 0);
    assert_eq!(cmd(&mut nic, COMMIT, 0, 1), 3, "already committed");
    assert_eq!(cmd(&mut nic, ABORT, 0, 1), 3, "already resolved");
    assert_eq!(nic.pf_read(PfReg::HACSTS) >> 16, 8, "command counter");
}

#[test]
fn plain_vfs_are_never_held() {
    let mut nic = hac_nic(2);
    nic.pf_write(PfReg::HACTAG, 0b01);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    let mut b = VfRings::new(&mut nic, 1, 64, 8);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 1, 100));
    b.send(&mut nic, &udp_frame(PEER, vf_mac(1), 2, 100));
    nic.drain();
    let out = seqs(&mut nic);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0x11, "only the plain VF's frame left");
}

#[test]
fn released_frames_go_first_within_the_guard() {
    let mut nic = hac_nic(2);
    nic.pf_write(PfReg::HACTAG, 0b01);
    nic.pf_write(PfReg::HACGUARD, 3 * 1514);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    let mut b = VfRings::new(&mut nic, 1, 64, 8);
    nic.pf_write(PfReg::TCTL, 0); // hold the TX engines while both queues fill
    for s in 0..8 {
        a.queue(&udp_frame(PEER, vf_mac(0), s, 1514));
        b.queue(&udp_frame(PEER, vf_mac(1), s, 1514));
    }
    a.doorbell(&mut nic);
    b.doorbell(&mut nic);
    nic.pf_write(PfReg::TCTL, 0b1010);
    cmd(&mut nic, COMMIT, 0, 1);
    nic.drain();
    let order: Vec<u8> = seqs(&mut nic).iter().map(|o| o.0 - 0x10).collect();
    // 3 × 1514 released bytes (the guard), one plain frame, again, then the rest.
    assert_eq!(order, vec![0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
    // With the guard off the plain VF waits for all released frames.
    nic.pf_write(PfReg::HACGUARD, 0);
    cmd(&mut nic, OPEN, 0, 2);
    nic.pf_write(PfReg::TCTL, 0);
    for s in 0..4 {
        a.queue(&udp_frame(PEER, vf_mac(0), s, 1514));
        b.queue(&udp_frame(PEER, vf_mac(1), s, 1514));
    }
    a.doorbell(&mut nic);
    b.doorbell(&mut nic);
    nic.pf_write(PfReg::TCTL, 0b1010);
    cmd(&mut nic, COMMIT, 0, 2);
    nic.drain();
    let order: Vec<u8> = seqs(&mut nic).iter().map(|o| o.0 - 0x10).collect();
    assert_eq!(order, vec![0, 0, 0, 0, 1, 1, 1, 1]);
}

#[test]
fn buffer_limit_backpressures_the_ring_and_nothing_is_lost() {
    let mut nic = hac_nic(1);
    nic.pf_write(PfReg::HACTAG, 0b1);
    nic.pf_write(PfReg::HACLIMF(0), 4);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    for s in 0..10 {
        a.queue(&udp_frame(PEER, vf_mac(0), s, 500));
    }
    a.doorbell(&mut nic);
    assert_eq!(nic.pf_read(PfReg::HACBUFF(0)), 4);
    assert_eq!(
        nic.vf_read(vf(0), VfReg::TDH(0)),
        4,
        "the VF's TX stopped consuming descriptors"
    );
    assert_eq!(nic.pf_read(PfReg::HACBP(0)), 1);
    let mut epoch = 1;
    let mut got = Vec::new();
    while got.len() < 10 {
        cmd(&mut nic, OPEN, 0, epoch + 1);
        cmd(&mut nic, COMMIT, 0, epoch);
        epoch += 1;
        nic.drain();
        got.extend(seqs(&mut nic).iter().map(|o| o.1));
        assert!(epoch < 10, "stuck");
    }
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(nic.pf_read(PfReg::HACMAXF(0)), 4);
}

#[test]
fn a_vf_cannot_reach_the_hac_block() {
    let mut nic = hac_nic(2);
    nic.pf_write(PfReg::HACTAG, 0b01);
    let before = nic.pf_configuration_snapshot();
    let f = FunctionId::Vf(vf(0));
    for off in (0..0x4000).step_by(4) {
        let _ = nic.read32(f, RegisterOffset(off));
    }
    nic.bar_write(f, 0, 0x17010, &2u32.to_le_bytes());
    assert!(
        nic.counters().out_of_range_accesses > 0,
        "HAC offsets are beyond a VF's 16 KiB BAR"
    );
    assert_eq!(before, nic.pf_configuration_snapshot());
    let _ = SimTime::ZERO;
}

/// Issue 13 item 3: epochs are 1..=0xFFFFFFFE. OPEN_EPOCH 0xFFFFFFFF is refused (BAD_EPOCH)
/// and changes nothing; the last epoch still opens, commits and releases; re-tagging starts
/// over at epoch 1 with nothing lost.
#[test]
fn the_reserved_epoch_is_refused_and_the_last_one_still_commits() {
    const BAD_EPOCH: u32 = 3;
    let mut nic = hac_nic(1);
    nic.pf_write(PfReg::HACTAG, 0b1);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    assert_eq!(
        cmd(&mut nic, OPEN, 0, u32::MAX),
        BAD_EPOCH,
        "u32::MAX is reserved"
    );
    assert_eq!(nic.pf_read(PfReg::HACOPEN(0)), 1, "nothing changed");
    assert_eq!(
        cmd(&mut nic, OPEN, 0, u32::MAX - 1),
        0,
        "the last epoch opens"
    );
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 0, 200));
    assert_eq!(cmd(&mut nic, OPEN, 0, u32::MAX), BAD_EPOCH);
    assert_eq!(
        cmd(&mut nic, COMMIT, 0, u32::MAX),
        BAD_EPOCH,
        "never opened"
    );
    assert_eq!(cmd(&mut nic, COMMIT, 0, u32::MAX - 1), 0);
    nic.drain();
    assert_eq!(
        seqs(&mut nic).len(),
        1,
        "the last epoch's frame left on commit"
    );
    // The engine re-tags before the space runs out: untag with nothing held, tag again.
    assert_eq!(nic.pf_read(PfReg::HACBUFF(0)), 0);
    nic.pf_write(PfReg::HACTAG, 0);
    nic.pf_write(PfReg::HACTAG, 0b1);
    assert_eq!(nic.pf_read(PfReg::HACOPEN(0)), 1);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 1, 200));
    nic.drain();
    assert!(seqs(&mut nic).is_empty(), "held in the new epoch 1");
    assert_eq!(cmd(&mut nic, COMMIT, 0, 1), 0);
    nic.drain();
    assert_eq!(
        seqs(&mut nic).iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![1]
    );
}

/// Issue 13 item 4: a buffer limit of 0 (HACLIMF/HACLIMB, `set_limits` 0) is the adapter
/// maximum (reads back 0xFFFFFFFF), not a limit that stops the VF for good; a byte limit below
/// one frame still lets one frame through at a time.
#[test]
fn a_zero_limit_is_the_adapter_maximum_and_no_limit_stalls_a_vf() {
    let mut nic = hac_nic(2);
    nic.pf_write(PfReg::HACTAG, 0b11);
    nic.pf_write(PfReg::HACLIMF(0), 0);
    nic.pf_write(PfReg::HACLIMB(0), 0);
    assert_eq!(nic.pf_read(PfReg::HACLIMF(0)), u32::MAX);
    assert_eq!(nic.pf_read(PfReg::HACLIMB(0)), u32::MAX);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    for s in 0..10 {
        a.queue(&udp_frame(PEER, vf_mac(0), s, 500));
    }
    a.doorbell(&mut nic);
    assert_eq!(nic.pf_read(PfReg::HACBUFF(0)), 10, "no limit in the way");
    assert_eq!(nic.vf_read(vf(0), VfReg::TDH(0)), 10);
    assert_eq!(cmd(&mut nic, COMMIT, 0, 1), 0);
    nic.drain();
    assert_eq!(seqs(&mut nic).len(), 10);

    // A byte limit smaller than one frame: one frame at a time, nothing stuck.
    nic.pf_write(PfReg::HACLIMB(1), 100);
    let mut b = VfRings::new(&mut nic, 1, 64, 8);
    for s in 0..3 {
        b.queue(&udp_frame(PEER, vf_mac(1), s, 500));
    }
    b.doorbell(&mut nic);
    let mut got = Vec::new();
    for epoch in 1..=3 {
        assert_eq!(nic.pf_read(PfReg::HACBUFF(1)), 1);
        assert_eq!(cmd(&mut nic, OPEN, 1, epoch + 1), 0);
        assert_eq!(cmd(&mut nic, COMMIT, 1, epoch), 0);
        nic.drain();
        got.extend(seqs(&mut nic).iter().map(|o| o.1));
    }
    assert_eq!(got, vec![0, 1, 2]);

    // Plain pools: the same rule for the stage's own limits.
    nic.set_egress_limits(igb_model::EgressLimits {
        bytes: 0,
        frames: 0,
    });
    assert_eq!(nic.egress().limits(), adapter_core::egress::MAX_LIMITS);
}

//! Driver-level HAC on an adapter without the extension (the model with its HAC block left
//! disabled): frames held in the ring beyond TDT until commit, FIFO, abort/failover discard,
//! unprotect, backpressure — the same contract as the adapter extension, observed on the wire.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use hac_driver::hac::{Hac, HacError, VfNumber};
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma};
use hac_driver::softhac::SoftHac;
use hac_driver::vf::VfConfig;
use igb_hw::{MacAddress, VfIndex};
use igb_model::{LineRate, NicConfig};

type Soft = SoftHac<ModelBar, ModelDma, ModelClock>;

/// VF `i` as the HAC contract names it.
fn n(i: u16) -> VfNumber {
    VfNumber::new(i)
}

/// VF `i` as the driver names it.
fn vf(i: usize) -> VfIndex {
    VfIndex::new(i).unwrap()
}

fn mac(n: u8) -> MacAddress {
    MacAddress([0x02, 0, 0, 0, 4, n])
}

fn setup(tx_ring: u32) -> (Model, Soft) {
    let model = Model::new(NicConfig {
        capture_wire: true,
        line_rate: LineRate::G1,
        ..NicConfig::default()
    });
    let macs: Vec<Option<MacAddress>> = (0..2).map(|n| Some(mac(n))).collect();
    let cfg = VfConfig {
        tx_ring_size: tx_ring,
        ..VfConfig::default()
    };
    let (_pf, drivers) = model.start_vfs(&macs, cfg).unwrap();
    (model, SoftHac::new(drivers))
}

fn frames(vf: u8, seqs: std::ops::Range<u32>) -> Vec<Bytes> {
    seqs.map(|s| {
        let mut f = igb_hw::frame::build(
            MacAddress([2, 0xAA, 0, 0, 0, 1]),
            mac(vf),
            0x88B5,
            &s.to_be_bytes(),
        );
        f.resize(200, 0);
        Bytes::from(f)
    })
    .collect()
}

fn wire(model: &Model) -> Vec<(u8, u32)> {
    model.run_for(5_000_000);
    model
        .nic()
        .take_wire_capture()
        .iter()
        .map(|w| {
            (
                w.data[11],
                u32::from_be_bytes([w.data[14], w.data[15], w.data[16], w.data[17]]),
            )
        })
        .collect()
}

#[test]
fn held_in_the_ring_until_commit_exactly_up_to_the_epoch() {
    let (model, mut h) = setup(64);
    h.set_tagged(n(0), true).unwrap();
    assert_eq!(h.send(vf(0), &frames(0, 0..3)).unwrap(), 3);
    h.open_epoch(n(0), 2).unwrap();
    assert_eq!(h.send(vf(0), &frames(0, 3..5)).unwrap(), 2);
    assert!(wire(&model).is_empty(), "nothing before commit");
    h.commit(n(0), 1).unwrap();
    assert_eq!(wire(&model), vec![(0, 0), (0, 1), (0, 2)]);
    h.commit(n(0), 2).unwrap();
    assert_eq!(wire(&model), vec![(0, 3), (0, 4)]);
    assert_eq!(
        h.commit(n(0), 2),
        Err(HacError::BadEpoch { vf: n(0), epoch: 2 })
    );
    assert_eq!(h.commit(n(1), 1), Err(HacError::NotTagged(n(1))));
}

#[test]
fn abort_and_failover_take_back_unsent_descriptors() {
    let (model, mut h) = setup(64);
    h.set_tagged(n(0), true).unwrap();
    h.send(vf(0), &frames(0, 0..2)).unwrap();
    h.open_epoch(n(0), 2).unwrap();
    h.send(vf(0), &frames(0, 2..4)).unwrap();
    h.abort(n(0), 1).unwrap();
    h.commit(n(0), 2).unwrap();
    assert_eq!(
        wire(&model),
        vec![(0, 2), (0, 3)],
        "epoch 1 never left; epoch 2 rewritten and sent"
    );
    h.open_epoch(n(0), 3).unwrap();
    h.send(vf(0), &frames(0, 4..6)).unwrap();
    h.failover(n(0)).unwrap();
    assert!(wire(&model).is_empty());
    h.open_epoch(n(0), 4).unwrap();
    h.send(vf(0), &frames(0, 6..7)).unwrap();
    h.commit(n(0), 4).unwrap();
    assert_eq!(
        wire(&model),
        vec![(0, 6)],
        "the ring still works after the rewinds"
    );
    assert_eq!(h.stats(n(0)).unwrap().discarded, 4);
}

#[test]
fn overflow_beyond_the_ring_and_backpressure_lose_nothing() {
    let (model, mut h) = setup(8);
    h.set_tagged(n(0), true).unwrap();
    h.set_limits(n(0), 20, 1 << 20).unwrap();
    // 7 fit in the ring (one slot stays free), 13 wait in software, the rest is refused.
    assert_eq!(h.send(vf(0), &frames(0, 0..30)).unwrap(), 20);
    assert_eq!(h.stats(n(0)).unwrap().backpressure, 1);
    h.open_epoch(n(0), 2).unwrap();
    h.commit(n(0), 1).unwrap();
    let mut got = wire(&model);
    while got.len() < 20 {
        h.pump().unwrap();
        let more = wire(&model);
        assert!(!more.is_empty(), "stuck at {}", got.len());
        got.extend(more);
    }
    assert_eq!(got, (0..20).map(|s| (0, s)).collect::<Vec<_>>());
    assert_eq!(h.send(vf(0), &frames(0, 20..30)).unwrap(), 10, "room again");
}

#[test]
fn unprotect_releases_and_plain_vfs_pass() {
    let (model, mut h) = setup(64);
    h.set_tagged(n(0), true).unwrap();
    h.send(vf(0), &frames(0, 0..2)).unwrap();
    h.send(vf(1), &frames(1, 0..2)).unwrap();
    assert_eq!(wire(&model), vec![(1, 0), (1, 1)], "plain VF not held");
    h.unprotect(n(0)).unwrap();
    h.send(vf(0), &frames(0, 2..3)).unwrap();
    h.pump().unwrap();
    assert_eq!(wire(&model), vec![(0, 0), (0, 1), (0, 2)]);
    assert_eq!(h.unprotect(n(0)), Err(HacError::NotTagged(n(0))));
}

/// Pumps and collects the wire until `until` returns true or nothing moves for a while.
fn drain(model: &Model, h: &mut Soft, until: impl Fn(&[(u8, u32)]) -> bool) -> Vec<(u8, u32)> {
    let mut got = wire(model);
    let mut idle = 0;
    while !until(&got) && idle < 5 {
        h.pump().unwrap();
        let more = wire(model);
        idle = if more.is_empty() { idle + 1 } else { 0 };
        got.extend(more);
    }
    got
}

#[test]
fn tagging_a_vf_with_a_plain_backlog_never_releases_an_uncommitted_frame() {
    // Issue 13 item 1: the plain backlog used to be drained through VfDriver::send, whose
    // doorbell covered the epoch-1 frame held beyond TDT.
    // 400 plain frames without running the clock: the egress FIFO takes 256, the ring 7, the
    // rest waits in SoftHac's software queue.
    let (model, mut h) = setup(8);
    assert_eq!(h.send(vf(0), &frames(0, 0..400)).unwrap(), 400);
    let mut got = wire(&model);
    assert!(got.len() < 400, "the test needs a backlog in software");
    h.set_tagged(n(0), true).unwrap();
    assert_eq!(h.send(vf(0), &frames(0, 1000..1001)).unwrap(), 1);
    got.extend(drain(&model, &mut h, |g| g.len() + got.len() >= 400));
    assert!(
        !got.contains(&(0, 1000)),
        "the epoch-1 frame reached the wire before commit 1"
    );
    assert_eq!(
        got,
        (0..400).map(|s| (0, s)).collect::<Vec<_>>(),
        "the backlog (it predates the tag) goes out in order, the epoch-1 frame stays held"
    );
    assert_eq!(
        h.stats(n(0)).unwrap().buffered_frames,
        1,
        "epoch 1 still held"
    );
    h.commit(n(0), 1).unwrap();
    assert_eq!(drain(&model, &mut h, |g| !g.is_empty()), vec![(0, 1000)]);
}

#[test]
fn an_oversized_frame_is_refused_at_send_and_later_commits_still_work() {
    // Issue 13 item 2: an oversized frame queued behind a software-queued frame was accepted;
    // the release then failed after popping a committed frame and every later commit answered
    // Refused(255).
    let (model, mut h) = setup(8);
    h.set_tagged(n(0), true).unwrap();
    assert_eq!(
        h.send(vf(0), &frames(0, 0..12)).unwrap(),
        12,
        "7 in the ring, 5 in software"
    );
    let max = h.driver(vf(0)).unwrap().max_frame_len();
    let big = Bytes::from(vec![0u8; max + 1]);
    let mut batch = frames(0, 12..13);
    batch.push(big.clone());
    assert!(matches!(
        h.send(vf(0), &batch),
        Err(hac_driver::error::DriverError::FrameTooLarge { len, .. }) if len == max + 1
    ));
    assert_eq!(
        h.stats(n(0)).unwrap().buffered_frames,
        12,
        "the batch was refused whole"
    );
    h.open_epoch(n(0), 2).unwrap();
    h.commit(n(0), 1).unwrap();
    let got = drain(&model, &mut h, |g| g.len() >= 12);
    assert_eq!(got, (0..12).map(|s| (0, s)).collect::<Vec<_>>());
    assert_eq!(h.send(vf(0), &frames(0, 12..14)).unwrap(), 2);
    h.commit(n(0), 2).unwrap();
    assert_eq!(
        drain(&model, &mut h, |g| g.len() >= 2),
        vec![(0, 12), (0, 13)]
    );
    let st = h.stats(n(0)).unwrap();
    assert_eq!((st.released, st.discarded, st.buffered_frames), (14, 0, 0));
}

#[test]
fn the_last_epoch_is_reserved_and_zero_limits_mean_the_maximum() {
    // Issue 13 items 3 and 4, on the driver-level implementation.
    let (model, mut h) = setup(64);
    h.set_tagged(n(0), true).unwrap();
    assert_eq!(
        h.open_epoch(n(0), u32::MAX),
        Err(HacError::BadEpoch {
            vf: n(0),
            epoch: u32::MAX
        })
    );
    h.open_epoch(n(0), u32::MAX - 1).unwrap();
    h.set_limits(n(0), 0, 0).unwrap();
    // Above the 4096-frame default: 0 is the maximum, not the default and not "no room".
    assert_eq!(
        h.send(vf(0), &frames(0, 0..5000)).unwrap(),
        5000,
        "0 limits must not stall"
    );
    assert_eq!(h.stats(n(0)).unwrap().backpressure, 0);
    h.commit(n(0), u32::MAX - 1).unwrap();
    let mut got = wire(&model);
    while got.len() < 5000 {
        h.pump().unwrap();
        let more = wire(&model);
        assert!(!more.is_empty(), "stuck at {}", got.len());
        got.extend(more);
    }
    assert_eq!(got, (0..5000).map(|s| (0, s)).collect::<Vec<_>>());
}

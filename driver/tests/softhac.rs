//! Driver-level HAC on an adapter without the extension (the model with its HAC block left
//! disabled): frames held in the ring beyond TDT until commit, FIFO, abort/failover discard,
//! unprotect, backpressure — the same contract as the adapter extension, observed on the wire.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use hac_driver::hac::{Hac, HacError};
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma};
use hac_driver::pf::PfConfig;
use hac_driver::softhac::SoftHac;
use hac_driver::vf::VfConfig;
use igb_hw::MacAddress;
use nic_model::{LineRate, NicConfig};

type Soft = SoftHac<ModelBar, ModelDma, ModelClock>;

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
    let _pf = model
        .start_pf_agent(
            PfConfig {
                num_vfs: 2,
                ..PfConfig::default()
            },
            &macs,
        )
        .unwrap();
    let cfg = VfConfig {
        tx_ring_size: tx_ring,
        ..VfConfig::default()
    };
    let drivers = (0..2)
        .map(|n| model.vf_driver(n, cfg.clone()).unwrap())
        .collect();
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
    h.set_tagged(0, true).unwrap();
    assert_eq!(h.send(0, &frames(0, 0..3)).unwrap(), 3);
    h.open_epoch(0, 2).unwrap();
    assert_eq!(h.send(0, &frames(0, 3..5)).unwrap(), 2);
    assert!(wire(&model).is_empty(), "nothing before commit");
    h.commit(0, 1).unwrap();
    assert_eq!(wire(&model), vec![(0, 0), (0, 1), (0, 2)]);
    h.commit(0, 2).unwrap();
    assert_eq!(wire(&model), vec![(0, 3), (0, 4)]);
    assert_eq!(h.commit(0, 2), Err(HacError::BadEpoch { vf: 0, epoch: 2 }));
    assert_eq!(h.commit(1, 1), Err(HacError::NotTagged(1)));
}

#[test]
fn abort_and_failover_take_back_unsent_descriptors() {
    let (model, mut h) = setup(64);
    h.set_tagged(0, true).unwrap();
    h.send(0, &frames(0, 0..2)).unwrap();
    h.open_epoch(0, 2).unwrap();
    h.send(0, &frames(0, 2..4)).unwrap();
    h.abort(0, 1).unwrap();
    h.commit(0, 2).unwrap();
    assert_eq!(
        wire(&model),
        vec![(0, 2), (0, 3)],
        "epoch 1 never left; epoch 2 rewritten and sent"
    );
    h.open_epoch(0, 3).unwrap();
    h.send(0, &frames(0, 4..6)).unwrap();
    h.failover(0).unwrap();
    assert!(wire(&model).is_empty());
    h.open_epoch(0, 4).unwrap();
    h.send(0, &frames(0, 6..7)).unwrap();
    h.commit(0, 4).unwrap();
    assert_eq!(
        wire(&model),
        vec![(0, 6)],
        "the ring still works after the rewinds"
    );
    assert_eq!(h.stats(0).unwrap().discarded, 4);
}

#[test]
fn overflow_beyond_the_ring_and_backpressure_lose_nothing() {
    let (model, mut h) = setup(8);
    h.set_tagged(0, true).unwrap();
    h.set_limits(0, 20, 1 << 20).unwrap();
    // 7 fit in the ring (one slot stays free), 13 wait in software, the rest is refused.
    assert_eq!(h.send(0, &frames(0, 0..30)).unwrap(), 20);
    assert_eq!(h.stats(0).unwrap().backpressure, 1);
    h.open_epoch(0, 2).unwrap();
    h.commit(0, 1).unwrap();
    let mut got = wire(&model);
    while got.len() < 20 {
        h.pump().unwrap();
        let more = wire(&model);
        assert!(!more.is_empty(), "stuck at {}", got.len());
        got.extend(more);
    }
    assert_eq!(got, (0..20).map(|s| (0, s)).collect::<Vec<_>>());
    assert_eq!(h.send(0, &frames(0, 20..30)).unwrap(), 10, "room again");
}

#[test]
fn unprotect_releases_and_plain_vfs_pass() {
    let (model, mut h) = setup(64);
    h.set_tagged(0, true).unwrap();
    h.send(0, &frames(0, 0..2)).unwrap();
    h.send(1, &frames(1, 0..2)).unwrap();
    assert_eq!(wire(&model), vec![(1, 0), (1, 1)], "plain VF not held");
    h.unprotect(0).unwrap();
    h.send(0, &frames(0, 2..3)).unwrap();
    h.pump().unwrap();
    assert_eq!(wire(&model), vec![(0, 0), (0, 1), (0, 2)]);
    assert_eq!(h.unprotect(0), Err(HacError::NotTagged(0)));
}

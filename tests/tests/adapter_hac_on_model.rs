//! End to end on the model: the unchanged driver on four VFs, two of them checkpointing with
//! 25 ms epochs and a 5 ms backup acknowledgement, two plain; the HAC API drives the adapter's
//! register block. Every checkpoint frame's wire time is at or after its epoch's commit, in FIFO
//! order; plain traffic is never held, and its added delay stays within the starvation guard.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use bytes::Bytes;
use hac_driver::hac::{AdapterHac, Hac, HacError, VfNumber};
use hac_driver::model::Model;
use hac_driver::vf::VfConfig;
use igb_hw::MacAddress;
use igb_model::{FunctionId, LineRate, NicConfig};

const EPOCH_NS: u64 = 25_000_000;
const ACK_NS: u64 = 5_000_000;
const GUARD: u32 = 16 * 1024;

fn mac(n: u8) -> MacAddress {
    MacAddress([0x02, 0, 0, 0, 3, n])
}

#[test]
fn two_checkpointing_and_two_plain_vfs_with_25ms_epochs() {
    let model = Model::new(NicConfig {
        capture_wire: true,
        line_rate: LineRate::G1,
        ..NicConfig::default()
    });
    let macs: Vec<Option<MacAddress>> = (0..4).map(|n| Some(mac(n))).collect();
    let (_pf, mut vfs) = model.start_vfs(&macs, VfConfig::default()).unwrap();
    let mut hac = AdapterHac::new(model.bar0(FunctionId::Pf), 4);
    hac.set_guard(GUARD).unwrap();
    hac.set_tagged(VfNumber::new(0), true).unwrap();
    hac.set_tagged(VfNumber::new(1), true).unwrap();
    let vf2 = VfNumber::new(2);
    assert_eq!(hac.commit(vf2, 1), Err(HacError::NotTagged(vf2)));
    let peer = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);

    // (vf, seq) → (send time, epoch at send)
    let mut sent: HashMap<(u8, u32), (u64, u32)> = HashMap::new();
    let mut commit_time: HashMap<(u8, u32), u64> = HashMap::new();
    let mut open = [1u32; 2];
    let mut pending_acks: Vec<(u64, u8, u32)> = Vec::new();
    let mut seq = [0u32; 4];
    let step = 100_000u64; // 100 µs
    let end = 200_000_000u64; // 200 ms: 8 epochs
    let mut next_epoch = EPOCH_NS;
    let mut t = 0;
    while t < end {
        // Checkpoint engine: every 25 ms take a checkpoint of epoch e (open e + 1), ack later.
        if t >= next_epoch {
            for v in 0..2u8 {
                let e = open[v as usize];
                hac.open_epoch(VfNumber::from(v), e + 1).unwrap();
                open[v as usize] = e + 1;
                pending_acks.push((t + ACK_NS, v, e));
            }
            next_epoch += EPOCH_NS;
        }
        pending_acks.retain(|&(at, v, e)| {
            if at <= t {
                hac.commit(VfNumber::from(v), e).unwrap();
                commit_time.insert((v, e), model.nic().now().as_nanos());
                false
            } else {
                true
            }
        });
        // Traffic: checkpointing VFs 2 × 1000 B per step (160 Mb/s each), plain VFs 1 × 300 B.
        for (n, vf) in vfs.iter_mut().enumerate() {
            let (count, len) = if n < 2 { (2, 1000) } else { (1, 300) };
            let batch: Vec<Bytes> = (0..count)
                .map(|k| {
                    let s = seq[n] + k;
                    let mut f = igb_hw::frame::build(peer, mac(n as u8), 0x88B5, &s.to_be_bytes());
                    f.resize(len, 0xEE);
                    Bytes::from(f)
                })
                .collect();
            let now = model.nic().now().as_nanos();
            let q = vf.send(&batch).unwrap() as u32;
            for k in 0..q {
                let epoch = if n < 2 { open[n] } else { 0 };
                sent.insert((n as u8, seq[n] + k), (now, epoch));
            }
            seq[n] += q;
        }
        t += step;
        model.run_for(step);
    }
    // A last checkpoint of the open epochs, the outstanding acks, then drain.
    for v in 0..2u8 {
        let e = open[v as usize];
        hac.open_epoch(VfNumber::from(v), e + 1).unwrap();
        pending_acks.push((0, v, e));
    }
    for (_, v, e) in pending_acks.drain(..) {
        hac.commit(VfNumber::from(v), e).unwrap();
        commit_time.insert((v, e), model.nic().now().as_nanos());
    }
    model.run_for(50_000_000);

    let wire = model.nic().take_wire_capture();
    let mut last_seq: HashMap<u8, u32> = HashMap::new();
    let mut max_plain_delay = 0u64;
    let mut checked = [0u64; 4];
    for w in &wire {
        let vf = w.data[11];
        let s = u32::from_be_bytes([w.data[14], w.data[15], w.data[16], w.data[17]]);
        if let Some(&l) = last_seq.get(&vf) {
            assert!(s > l, "FIFO per VF broken for vf{vf}");
        }
        last_seq.insert(vf, s);
        let (at, epoch) = sent[&(vf, s)];
        let wire_t = w.at.as_nanos();
        if vf < 2 {
            let c = commit_time.get(&(vf, epoch)).copied().unwrap_or_else(|| {
                // Covered by a later commit (epochs ≤ e are released together).
                commit_time
                    .iter()
                    .filter(|((v, e), _)| *v == vf && *e >= epoch)
                    .map(|(_, &t)| t)
                    .min()
                    .unwrap()
            });
            assert!(
                wire_t >= c,
                "vf{vf} seq {s} epoch {epoch} left at {wire_t} before its commit at {c}"
            );
        } else {
            max_plain_delay = max_plain_delay.max(wire_t - at);
        }
        checked[vf as usize] += 1;
    }
    for n in 0..4 {
        assert_eq!(
            checked[n],
            u64::from(seq[n]),
            "every frame of vf{n} left, none lost"
        );
    }
    // Plain frames wait at most: the guard's worth of released bytes, the frame on the wire,
    // and one frame of the other plain VF, at 1 Gb/s.
    let frame_ns = |len: u64| (8 + len + 4 + 12) * 8;
    let bound = u64::from(GUARD) * 8 + 2 * frame_ns(1000) + 2 * frame_ns(300);
    assert!(
        max_plain_delay <= bound,
        "plain delay {max_plain_delay} ns > bound {bound} ns"
    );
    let st = hac.stats(VfNumber::new(0)).unwrap();
    assert_eq!(st.discarded, 0);
    assert_eq!(st.released, u64::from(seq[0]));
    assert!(st.max_frames > 100, "a whole epoch was held: {st:?}");
    eprintln!(
        "frames: {:?}, max plain delay {} µs (bound {} µs), vf0 max buffered {} frames / {} bytes",
        seq,
        max_plain_delay / 1000,
        bound / 1000,
        st.max_frames,
        st.max_bytes
    );
}

//! Transmit arbitration (issue 20): per-queue rate limiters (RTTDQSEL/RTTBCNRC/RTTBCNRM) and
//! TXDCTL.PRIORITY, with the limiters off exactly as before.
#![allow(clippy::unwrap_used)]
use igb_model::igb_hw::rate::{LINUX_RTTBCNRM, rttbcnrc_for};
use igb_model::igb_hw::regs::{self, PfReg, TXDCTL, VfReg};
use igb_model::igb_hw::{MacAddress, VfIndex};
use igb_model::testing::*;
use igb_model::{LineRate, Nic, NicConfig};

const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
const LEN: usize = 1000;

fn nic_1g(num_vfs: usize) -> Nic {
    let mut nic = bring_up(
        num_vfs,
        NicConfig {
            capture_wire: true,
            line_rate: LineRate::G1,
            ..NicConfig::default()
        },
    );
    nic.pf_write(PfReg::DTXSWC, 0);
    nic
}

/// Programs queue `q`'s limiter as Linux igb does (RTTDQSEL, RTTBCNRM 0x14, RTTBCNRC).
fn limit(nic: &mut Nic, q: u32, rate_mbps: u32) {
    nic.pf_write(PfReg::RTTDQSEL, q);
    nic.pf_write(PfReg::RTTBCNRM, LINUX_RTTBCNRM);
    nic.pf_write(PfReg::RTTBCNRC, rttbcnrc_for(1000, rate_mbps));
}

fn fill(nic: &mut Nic, r: &mut VfRings, n: usize, count: u32) {
    for s in 0..count {
        r.queue(&udp_frame(PEER, vf_mac(n), s, LEN));
    }
    r.doorbell(nic);
}

/// Bytes each VF put on the wire, by source MAC.
fn bytes_by_vf(nic: &mut Nic, vfs: usize) -> Vec<u64> {
    let mut out = vec![0u64; vfs];
    for w in nic.take_wire_capture() {
        for (n, o) in out.iter_mut().enumerate() {
            if w.data[6..12] == vf_mac(n).0 {
                *o += w.data.len() as u64;
            }
        }
    }
    out
}

#[test]
fn a_limited_queue_keeps_to_its_rate_while_an_unlimited_one_takes_the_rest() {
    let mut nic = nic_1g(2);
    let mut a = VfRings::new(&mut nic, 0, MAX_RING, 8);
    let mut b = VfRings::new(&mut nic, 1, MAX_RING, 8);
    limit(&mut nic, 0, 100);
    fill(&mut nic, &mut a, 0, MAX_RING - 1);
    fill(&mut nic, &mut b, 1, MAX_RING - 1);
    nic.advance_by(2_000_000); // 2 ms: 250 KB of wire
    let sent = bytes_by_vf(&mut nic, 2);
    // 100 Mb/s for 2 ms is 25 000 bytes; allow the MMW credit (0x14 · 512) and one frame.
    let bound = 25_000 + u64::from(LINUX_RTTBCNRM) * 512 + LEN as u64;
    assert!(sent[0] <= bound, "limited VF sent {} > {bound}", sent[0]);
    assert!(sent[0] >= 20_000, "limited VF sent only {}", sent[0]);
    assert!(sent[1] >= 190_000, "unlimited VF sent only {}", sent[1]);
    assert!(nic.counters().tx_rate_limited_stops > 0);
    // Removing the limit (rate 0, RS_ENA clear) lets the queue go at once.
    nic.pf_write(PfReg::RTTDQSEL, 0);
    nic.pf_write(PfReg::RTTBCNRC, 0);
    nic.drain();
    assert_eq!(nic.vf_read(vf(0), VfReg::TDH(0)), MAX_RING - 1);
}

#[test]
fn rttbcnrc_is_indirect_through_rttdqsel_and_reads_back() {
    let mut nic = nic_1g(2);
    let w = rttbcnrc_for(1000, 300);
    nic.pf_write(PfReg::RTTDQSEL, 9);
    nic.pf_write(PfReg::RTTBCNRC, w);
    nic.pf_write(PfReg::RTTDQSEL, 1);
    assert_eq!(nic.pf_read(PfReg::RTTBCNRC), 0);
    nic.pf_write(PfReg::RTTDQSEL, 9);
    assert_eq!(nic.pf_read(PfReg::RTTBCNRC), w);
    // Only the queue index bits of RTTDQSEL hold.
    nic.pf_write(PfReg::RTTDQSEL, 0xFFFF_FFF9);
    assert_eq!(nic.pf_read(PfReg::RTTDQSEL), 9);
    assert_eq!(nic.pf_read(PfReg::RTTBCNRC), w);
}

#[test]
fn the_limit_survives_a_vf_reset_and_a_pf_reset_clears_it() {
    let mut nic = nic_1g(2);
    let w = rttbcnrc_for(1000, 100);
    nic.pf_write(PfReg::RTTDQSEL, 1);
    nic.pf_write(PfReg::RTTBCNRC, w);
    nic.pf_write(PfReg::TXDCTL(1), regs::value(TXDCTL::PRIORITY::SET));
    // VF 1 resets itself: its queue registers (TXDCTL.PRIORITY too) reset, the PF's limit stays.
    nic.vf_write(VfIndex::new(1).unwrap(), VfReg::CTRL, 1 << 26);
    assert_eq!(nic.pf_read(PfReg::RTTBCNRC), w);
    assert_eq!(nic.pf_read(PfReg::TXDCTL(1)) & (1 << 27), 0);
    assert!(
        !nic.egress()
            .priority(igb_model::vport(VfIndex::new(1).unwrap().pool()))
    );
    nic.pf_write(PfReg::CTRL, 1 << 26);
    nic.pf_write(PfReg::RTTDQSEL, 1);
    assert_eq!(nic.pf_read(PfReg::RTTBCNRC), 0);
}

#[test]
fn a_rate_above_the_link_limits_nothing() {
    let run = |word: Option<u32>| {
        let mut nic = nic_1g(1);
        let mut a = VfRings::new(&mut nic, 0, 64, 8);
        if let Some(w) = word {
            nic.pf_write(PfReg::RTTDQSEL, 0);
            nic.pf_write(PfReg::RTTBCNRC, w);
        }
        fill(&mut nic, &mut a, 0, 63);
        let end = nic.drain();
        (end, nic.take_wire_capture().len())
    };
    let free = run(None);
    // RF_INT 0 (rate above the link): the factor is taken as 1.0.
    let above = run(Some(rttbcnrc_for(1000, 5000)));
    assert_eq!(free.1, 63);
    assert_eq!(above.1, 63);
    // At most one frame time later per frame's rounding; in practice the same.
    assert!(above.0.as_nanos() <= free.0.as_nanos() + 63 * 10);
}

#[test]
fn limiters_off_change_nothing_byte_for_byte() {
    let run = |touch: bool| {
        let mut nic = nic_1g(3);
        let mut rings: Vec<VfRings> = (0..3).map(|n| VfRings::new(&mut nic, n, 128, 8)).collect();
        if touch {
            // Linux with tx_rate 0 for every VF: RTTBCNRM written, RTTBCNRC 0.
            for q in 0..3 {
                limit(&mut nic, q, 0);
            }
        }
        for (n, r) in rings.iter_mut().enumerate() {
            fill(&mut nic, r, n, 100);
        }
        nic.advance_by(300_000);
        for (n, r) in rings.iter_mut().enumerate() {
            fill(&mut nic, r, n, 20);
        }
        nic.drain();
        nic.take_wire_capture()
            .into_iter()
            .map(|w| (w.at, w.data))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(false), run(true));
}

#[test]
fn a_priority_pool_goes_first_on_the_wire() {
    let mut nic = nic_1g(2);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    let mut b = VfRings::new(&mut nic, 1, 64, 8);
    let txdctl = nic.pf_read(PfReg::TXDCTL(1));
    nic.pf_write(
        PfReg::TXDCTL(1),
        txdctl | regs::value(TXDCTL::PRIORITY::SET),
    );
    assert!(
        nic.egress()
            .priority(igb_model::vport(VfIndex::new(1).unwrap().pool()))
    );
    fill(&mut nic, &mut a, 0, 40);
    fill(&mut nic, &mut b, 1, 40);
    nic.drain();
    let order: Vec<bool> = nic
        .take_wire_capture()
        .iter()
        .map(|w| w.data[6..12] == vf_mac(1).0)
        .collect();
    // The wire was idle when VF 0 rang first, so its first frame leaves; then VF 1's 40.
    let first_b = order.iter().position(|&b| b).unwrap();
    assert!(first_b <= 1, "{order:?}");
    assert!(order[first_b..first_b + 40].iter().all(|&b| b), "{order:?}");
}

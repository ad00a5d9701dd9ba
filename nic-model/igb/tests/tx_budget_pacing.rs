//! The TX engine's fetch is paced after a run budget stop: other queues keeping the wire busy
//! do not let a ring of dropped packets be walked faster than the line rate (issue 13 item 7).
#![allow(clippy::unwrap_used)]
use igb_model::NicConfig;
use igb_model::igb_hw::MacAddress;
use igb_model::igb_hw::regs::{PfReg, VfReg};
use igb_model::testing::*;

const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);

/// Issue 13 item 7, second half (found in review): the run budget bounded one doorbell, but
/// `advance_to` re-ran every pending queue after each wire frame, so a second queue of small
/// frames made one 100 µs tick walk a whole ring of 60 KB packets that are read and dropped
/// (TSO without a context). The fetch is now paced at line rate: 100 µs at 10 Gb/s reads about
/// 125 KB, i.e. at most a run or two of that ring.
#[test]
fn a_busy_wire_does_not_speed_up_a_ring_of_dropped_packets() {
    let mut nic = bring_up(
        2,
        NicConfig {
            capture_wire: true,
            ..NicConfig::default()
        },
    );
    nic.pf_write(PfReg::DTXSWC, 0);
    let mut a = VfRings::new(&mut nic, 0, MAX_RING, 8);
    let mut b = VfRings::new(&mut nic, 1, MAX_RING, 8);
    const LEN: u16 = 60_000;
    let n = MAX_RING - 1;
    a.fill_tx_with_failing_tso(n, LEN);
    for s in 0..n {
        b.queue(&udp_frame(PEER, vf_mac(1), s, 60));
    }
    b.doorbell(&mut nic);
    a.doorbell(&mut nic);
    let after_doorbell = nic.vf_read(vf(0), VfReg::TDH(0));
    let stops0 = nic.counters().tx_run_budget_stops;
    // One tick of 100 us (the daemon's ticks are up to 5 ms).
    nic.advance_by(100_000);
    let after_tick = nic.vf_read(vf(0), VfReg::TDH(0));
    let runs = nic.counters().tx_run_budget_stops - stops0;
    let wire = nic.take_wire_capture().len();
    assert!(
        after_tick - after_doorbell <= 2 * after_doorbell,
        "one tick did {runs} runs: TDH {after_doorbell} -> {after_tick}"
    );
    assert!(
        wire > 100,
        "the other VF's small frames kept the wire busy ({wire} sent)"
    );
    // Given time, the ring is walked to the end and every packet is accounted for.
    nic.advance_by(100_000_000);
    assert_eq!(nic.vf_read(vf(0), VfReg::TDH(0)), n);
}

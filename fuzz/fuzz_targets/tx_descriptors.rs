//! A guest fills its TX ring and buffers with arbitrary bytes (descriptors of any type, lengths,
//! addresses inside and outside its mapping, context descriptors, TSO requests) and rings the
//! doorbell. The model must not panic, must never touch another VF's memory, and every frame it
//! sends must be a well-formed Ethernet frame within the size limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nic_model::igb_hw::regs::{PfReg, VfReg};
use nic_model::testing::{IOVA_BASE, TX_BUF_OFF, TX_RING_OFF, VfRings, bring_up, vf};
use nic_model::{DmaTarget, NicConfig};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cfg = NicConfig {
        capture_wire: true,
        ..NicConfig::default()
    };
    let mut nic = bring_up(2, cfg);
    let a = VfRings::new(&mut nic, 0, 16, 16);
    let b = VfRings::new(&mut nic, 1, 16, 16);
    let mem_len = a.mem.len();
    // Loopback off: a frame addressed to VF 1 would legitimately land in its RX buffers.
    nic.pf_write(PfReg::DTXSWC, 0);
    let (ctl, rest) = data.split_at(2);
    let ring_bytes = rest.len().min(16 * 16);
    // Descriptors: raw fuzz bytes, with buffer addresses steered into the mapping half the time
    // so that real gathers happen.
    for (i, d) in rest[..ring_bytes].chunks(16).enumerate() {
        let mut raw = [0u8; 16];
        raw[..d.len()].copy_from_slice(d);
        if raw[15] & 1 == 0 {
            let off = u64::from(u32::from_le_bytes([raw[0], raw[1], raw[2], 0])) % mem_len;
            raw[..8].copy_from_slice(&(IOVA_BASE + off).to_le_bytes());
        }
        a.mem.write(TX_RING_OFF + i as u64 * 16, &raw);
    }
    a.mem.write(TX_BUF_OFF, &rest[ring_bytes..]);
    let b_before = {
        let mut m = vec![0u8; b.mem.len() as usize];
        b.mem.read(0, &mut m);
        m
    };
    nic.vf_write(vf(0), VfReg::TDT(0), u32::from(ctl[0] % 17));
    nic.advance_by(u64::from(ctl[1]) * 1000);
    nic.drain();
    for w in nic.take_wire_capture() {
        assert!(w.data.len() >= 60, "runt on the wire");
        assert!(w.data.len() + 4 <= 1522, "oversize on the wire");
    }
    let mut b_after = vec![0u8; b.mem.len() as usize];
    b.mem.read(0, &mut b_after);
    assert_eq!(b_before, b_after, "VF 1's memory changed");
});

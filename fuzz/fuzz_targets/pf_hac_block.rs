//! The PF's HAC register block driven with arbitrary register writes and reads while a tagged VF
//! sends, to the wire, to another VF, to itself or to everyone, while the PF switches VF-to-VF
//! loopback, LLE and the other VF's receive enable. Oracle: no panic, and no silent loss — after
//! every step, every frame the VF transmitted (VFGPTC) is on the wire, discarded by
//! abort/failover (HACDISC), still buffered (HACBUFF), looped to a local VF only, or dropped by
//! the switch with a counter (`tx_local_drops`).
#![no_main]

use igb_model::igb_hw::regs::{self, DTXSWC, PfReg, VfReg};
use igb_model::igb_hw::{MacAddress, PoolIndex, RegisterOffset};
use igb_model::testing::{VfRings, bring_up, udp_frame, vf, vf_mac};
use igb_model::{FunctionId, NicConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut nic = bring_up(
        2,
        NicConfig {
            capture_wire: true,
            ..NicConfig::default()
        },
    );
    nic.pf_write(PfReg::DTXSWC, 0);
    nic.pf_write(PfReg::HACCTL, 1);
    nic.pf_write(PfReg::HACTAG, 0b01);
    let mut a = VfRings::new(&mut nic, 0, 32, 8);
    let mut b = VfRings::new(&mut nic, 1, 8, 8);
    let peer = MacAddress([2, 0xAA, 0, 0, 0, 1]);
    let pool0 = PoolIndex::new(0).unwrap_or_else(|| unreachable!());
    let mut seq = 0;
    let mut wire = 0u64;
    for op in data.chunks_exact(7) {
        let off = 0x17000 + (u32::from(u16::from_le_bytes([op[1], op[2]])) & 0x3FC);
        let val = u32::from_le_bytes([op[3], op[4], op[5], op[6]]);
        // Bits 1:0 of op[0] pick the action; the bits above refine it (0: as before).
        let sub = op[0] >> 2;
        match op[0] % 4 {
            0 if sub & 1 == 0 => nic.write32(FunctionId::Pf, RegisterOffset(off), val),
            0 => {
                // The PF reconfigures the switch: VF-to-VF loopback and LLE, or VF 1's RX.
                if op[1] & 1 == 0 {
                    let sw =
                        val & regs::value(DTXSWC::VMDQ_LOOPBACK_EN::SET + DTXSWC::LLE.val(0xFF));
                    nic.pf_write(PfReg::DTXSWC, sw);
                } else {
                    nic.pf_write(PfReg::VFRE, 0b01 | (val & 0b10));
                }
            }
            1 => {
                let _ = nic.read32(FunctionId::Pf, RegisterOffset(off));
            }
            2 => {
                let dst = match sub & 3 {
                    0 => peer,
                    1 => vf_mac(1),
                    2 => vf_mac(0),
                    _ => MacAddress::BROADCAST,
                };
                // A driver never fills the last free slot.
                for _ in 0..(op[1] % 4) {
                    if (a.tx_tail + 1) % a.tx_count != a.tx_clean {
                        a.queue(&udp_frame(dst, vf_mac(0), seq, 60 + usize::from(op[2]) * 4));
                        seq += 1;
                    }
                }
                a.doorbell(&mut nic);
            }
            _ => nic.advance_by(u64::from(val % 1_000_000)),
        }
        while a.tx_clean != a.tx_tail && a.tx_done(a.tx_clean) {
            a.tx_clean = (a.tx_clean + 1) % a.tx_count;
        }
        // VF 1 takes what it received, so its ring keeps accepting.
        let _ = b.recv(&mut nic);
        wire += nic.take_wire_capture().len() as u64;
        let sent = u64::from(nic.vf_read(vf(0), VfReg::VFGPTC));
        let disc = u64::from(nic.pf_read(PfReg::HACDISC(0)));
        let buf = u64::from(nic.pf_read(PfReg::HACBUFF(0)));
        let sw = nic.switch_stats(pool0);
        assert_eq!(
            sent,
            wire + disc + buf + sw.looped_only + sw.local_drops,
            "silent loss"
        );
    }
});

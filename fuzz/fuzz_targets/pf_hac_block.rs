//! The PF's HAC register block driven with arbitrary register writes and reads while a tagged VF
//! sends. Oracle: no panic, and no silent loss — every frame the VF transmitted (VFGPTC) is on
//! the wire, discarded by abort/failover (HACDISC), or still buffered (HACBUFF).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nic_model::igb_hw::regs::{PfReg, VfReg};
use nic_model::igb_hw::{MacAddress, RegisterOffset};
use nic_model::testing::{VfRings, bring_up, udp_frame, vf, vf_mac};
use nic_model::{FunctionId, NicConfig};

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
    let peer = MacAddress([2, 0xAA, 0, 0, 0, 1]);
    let mut seq = 0;
    let mut wire = 0u64;
    for op in data.chunks_exact(7) {
        let off = 0x17000 + (u32::from(u16::from_le_bytes([op[1], op[2]])) & 0x3FC);
        let val = u32::from_le_bytes([op[3], op[4], op[5], op[6]]);
        match op[0] % 4 {
            0 => nic.write32(FunctionId::Pf, RegisterOffset(off), val),
            1 => {
                let _ = nic.read32(FunctionId::Pf, RegisterOffset(off));
            }
            2 => {
                // A driver never fills the last free slot.
                for _ in 0..(op[1] % 4) {
                    if (a.tx_tail + 1) % a.tx_count != a.tx_clean {
                        a.queue(&udp_frame(
                            peer,
                            vf_mac(0),
                            seq,
                            60 + usize::from(op[2]) * 4,
                        ));
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
        wire += nic.take_wire_capture().len() as u64;
        let sent = u64::from(nic.vf_read(vf(0), VfReg::VFGPTC));
        let disc = u64::from(nic.pf_read(PfReg::HACDISC(0)));
        let buf = u64::from(nic.pf_read(PfReg::HACBUFF(0)));
        assert_eq!(sent, wire + disc + buf, "silent loss");
    }
});

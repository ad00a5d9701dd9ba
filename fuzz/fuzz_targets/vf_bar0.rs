//! A VF drives its BAR0, BAR3 (MSI-X) and configuration space with arbitrary accesses; no other
//! function's state and no PF configuration register may change, and nothing may panic. Its TX
//! ring holds real frames, so doorbells send: after every access, every frame it sent (VFGPTC)
//! is on the wire, held or discarded by the HAC block (HACBUFF, HACDISC), looped, or dropped
//! with a counter (no silent loss, docs/hac.md contract 5).
#![no_main]

use igb_model::igb_hw::regs::PfReg;
use igb_model::igb_hw::{MacAddress, PoolIndex, RegisterOffset};
use igb_model::testing::{VfRings, bring_up, udp_frame, vf, vf_mac};
use igb_model::{FunctionId, Nic, NicConfig};
use libfuzzer_sys::fuzz_target;

/// VFGPTC of VF 0 = wire + HACDISC + HACBUFF + looped-only + local drops (only VF 0 sends).
fn check_accounting(nic: &mut Nic) {
    let sent = u64::from(nic.pf_read(PfReg::PVFGPTC(0)));
    let wire = nic.wire_totals().0;
    let disc = u64::from(nic.pf_read(PfReg::HACDISC(0)));
    let buf = u64::from(nic.pf_read(PfReg::HACBUFF(0)));
    let sw = nic.switch_stats(PoolIndex::new(0).unwrap_or_else(|| unreachable!()));
    assert_eq!(
        sent,
        wire + disc + buf + sw.looped_only + sw.local_drops,
        "silent loss"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut nic = bring_up(3, NicConfig::default());
    let mut r0 = VfRings::new(&mut nic, 0, 8, 8);
    let _r1 = VfRings::new(&mut nic, 1, 8, 8);
    // Real frames in VF 0's TX ring (descriptors 0..7, not yet handed over): whatever TDT/TDH
    // the accesses below choose, a doorbell sends some of them.
    let peer = MacAddress([2, 0xAA, 0, 0, 0, 1]);
    for s in 0..7 {
        r0.queue(&udp_frame(peer, vf_mac(0), s, 60 + 64 * s as usize));
    }
    // Loopback off: VF 0's frames may only reach the wire, never another VF.
    nic.pf_write(PfReg::DTXSWC, 0);
    // HAC on, VF 0 and VF 1 checkpointing with an epoch open: a VF must not be able to touch
    // tagging, epochs or commits (its own or anyone's).
    nic.pf_write(PfReg::HACCTL, 1);
    nic.pf_write(PfReg::HACTAG, 0b011);
    nic.pf_write(PfReg::HACARG, 2);
    nic.pf_write(PfReg::HACCMD, 1);
    let others: Vec<_> = [1, 2].iter().map(|&n| nic.vf_snapshot(vf(n))).collect();
    let pf = nic.pf_configuration_snapshot();
    let f = FunctionId::Vf(vf(0));
    for op in data.chunks_exact(7) {
        let off = u32::from(u16::from_le_bytes([op[1], op[2]]));
        let val = u32::from_le_bytes([op[3], op[4], op[5], op[6]]);
        match op[0] % 6 {
            0 => {
                let _ = nic.read32(f, RegisterOffset(off & 0x3FFC));
            }
            1 => nic.write32(f, RegisterOffset(off & 0x3FFC), val),
            2 => nic.bar_write(f, 3, u64::from(off), &val.to_le_bytes()),
            3 => nic.config_write(f, (off & 0xFFF) as u16, &val.to_le_bytes()[..2]),
            4 => {
                let wide = u64::from(val) | (u64::from(val) << 32);
                nic.bar_write(
                    f,
                    0,
                    u64::from(off),
                    &wide.to_le_bytes()[..(op[0] as usize % 9)],
                );
            }
            _ => nic.advance_by(u64::from(val % 100_000)),
        }
        check_accounting(&mut nic);
    }
    let after: Vec<_> = [1, 2].iter().map(|&n| nic.vf_snapshot(vf(n))).collect();
    assert_eq!(others, after, "another VF's state changed");
    assert_eq!(
        pf,
        nic.pf_configuration_snapshot(),
        "PF configuration changed"
    );
});

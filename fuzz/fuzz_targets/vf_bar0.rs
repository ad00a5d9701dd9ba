//! A VF drives its BAR0, BAR3 (MSI-X) and configuration space with arbitrary accesses; no other
//! function's state and no PF configuration register may change, and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nic_model::igb_hw::RegisterOffset;
use nic_model::igb_hw::regs::PfReg;
use nic_model::testing::{VfRings, bring_up, vf};
use nic_model::{FunctionId, NicConfig};

fuzz_target!(|data: &[u8]| {
    let mut nic = bring_up(3, NicConfig::default());
    let _r0 = VfRings::new(&mut nic, 0, 16, 16);
    let _r1 = VfRings::new(&mut nic, 1, 16, 16);
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
    }
    let after: Vec<_> = [1, 2].iter().map(|&n| nic.vf_snapshot(vf(n))).collect();
    assert_eq!(others, after, "another VF's state changed");
    assert_eq!(
        pf,
        nic.pf_configuration_snapshot(),
        "PF configuration changed"
    );
});

//! A hostile VF against the mlx5 E-Switch: arbitrary vport and HAC commands (any op_mod,
//! lengths, `other_vport`, vport numbers, bodies) and arbitrary frames from VF 1, while VF 0
//! (checkpointing) sends and the PF commits its epochs. Oracle beyond "no panic":
//! - no command from VF 1 changes the PF's, VF 0's or VF 2's vport context, anyone's HAC
//!   state, the HAC control or another vport's egress FIFO;
//! - no frame from VF 1 enters another vport's FIFO, and every frame of VF 1 on the wire has
//!   VF 1's MAC as its source (spoof check on);
//! - frames to VF 0's or VF 2's assigned MAC (from VF 1 or the wire) reach only them, whatever
//!   VF 1 published in its address lists;
//! - VF 0 loses nothing: its frames on the wire + held in the stage = the frames accepted.
#![no_main]

use adapter_core::hac::{Hac, VfNumber};
use adapter_core::{SimTime, Vport};
use hw_common::MacAddress;
use hw_common::frame::{ETHERNET_HEADER_LEN, ETHERTYPE_IPV4, build};
use libfuzzer_sys::fuzz_target;
use mlx5_hw::cmd::Opcode;
use mlx5_model::testing::{CmdDriver, InjectVerdict, inject_tx, input, switch_device};
use mlx5_model::{DEFAULT_PF_MAC, FunctionId, Mlx5Nic};

const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);
const VF2: FunctionId = FunctionId::Vf(2);
const MAC0: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 0x10]);
const MAC1: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 0x11]);
const MAC2: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 0x12]);
const PEER: MacAddress = MacAddress([0x02, 0xBB, 0, 0, 0, 0x01]);
/// First payload byte of VF 0's frames.
const GOOD: u8 = 0xA0;
/// The E-Switch opcodes: vport commands and our HAC commands.
const OPS: [u16; 14] = [
    0x750, 0x751, 0x754, 0x755, 0x770, 0x7F00, 0x7F01, 0x7F02, 0x7F03, 0x7F04, 0x7F05, 0x7F06,
    0x7F07, 0x7F08,
];
const IN_LENS: [usize; 8] = [8, 0x10, 0x18, 0x20, 0x110, 0x200, 0x208, 0x288];
const OUT_LENS: [usize; 6] = [8, 0x10, 0x50, 0x110, 0x118, 0x210];
/// Where a command's body goes: dword 4, the NIC vport context, its list header, the list.
const BODY_AT: [usize; 4] = [0x10, 0x100, 0x1F0, 0x200];

/// What VF 1 must not change: contexts of the other vports, HAC state and FIFOs.
fn snapshot(nic: &Mlx5Nic) -> Vec<String> {
    let mut s: Vec<String> = [FunctionId::Pf, VF0, VF2]
        .iter()
        .map(|f| format!("{:?}", nic.vport_context(*f)))
        .collect();
    s.push(format!(
        "{} {}",
        nic.hac_enabled(),
        nic.egress().guard_bytes()
    ));
    for v in [0u8, 1, 3] {
        let p = Vport::new(v);
        let e = nic.egress();
        s.push(format!(
            "{:?} {:?} {:?} {:?}",
            e.hac_state(p),
            e.hac_limits(p),
            e.occupancy(p),
            e.stats(p)
        ));
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let mut nic = switch_device(3);
    let mut pf = CmdDriver::attach(&mut nic, FunctionId::Pf);
    pf.bring_up(&mut nic);
    let mut evil = CmdDriver::attach(&mut nic, VF1);
    evil.bring_up(&mut nic);
    for (f, m) in [(VF0, MAC0), (VF1, MAC1), (VF2, MAC2)] {
        nic.set_vport_mac(f, m).unwrap();
    }
    nic.set_spoof_check(VF1, true).unwrap();
    nic.hac_set_enabled(true);
    nic.set_tagged(VfNumber::new(0), true).unwrap();
    let mut accepted0 = 0u64;
    let mut wire0 = 0u64;
    let mut epoch = 1u32;
    let mut rest = data;
    while rest.len() >= 12 {
        let (c, tail) = rest.split_at(12);
        let body_len = usize::from(c[7] % 65).min(tail.len());
        let (body, tail) = tail.split_at(body_len);
        rest = tail;
        match c[0] % 4 {
            0 => {
                let op = OPS[usize::from(c[1]) % OPS.len()];
                let len = IN_LENS[usize::from(c[2]) % IN_LENS.len()];
                let out = OUT_LENS[usize::from(c[3]) % OUT_LENS.len()];
                let mut m = input(Opcode::from(op), u16::from(c[4] % 4), len);
                // other_vport and the vport number, dword 3 (field select, epoch, ...), then
                // the body.
                if let Some(d) = m.get_mut(8..16) {
                    d.copy_from_slice(&[c[5] & 0x80, 0, 0, c[6] % 5, c[8], c[9], c[10], c[11]]);
                }
                let at = BODY_AT[usize::from(c[4] >> 6)];
                for (dst, src) in m.iter_mut().skip(at).zip(body) {
                    *dst = *src;
                }
                let before = snapshot(&nic);
                let _ = evil.exec(&mut nic, &m, out);
                assert_eq!(
                    snapshot(&nic),
                    before,
                    "VF 1's {op:#x} changed another vport"
                );
            }
            1 => {
                let dst = match c[1] % 8 {
                    0 => MAC0,
                    1 => MAC1,
                    2 => MAC2,
                    3 => DEFAULT_PF_MAC,
                    4 => MacAddress::BROADCAST,
                    5 => MacAddress([0x01, 0, 0x5E, 0, 0, c[2]]),
                    6 => PEER,
                    _ => MacAddress([c[2], c[3], c[4], c[5], c[6], c[7]]),
                };
                let src = if c[3] & 1 == 0 {
                    MAC1
                } else {
                    MacAddress([c[4], c[5], c[6], c[2], c[3], c[1]])
                };
                let mut f = build(dst, src, ETHERTYPE_IPV4, body);
                if c[5] & 0x80 != 0 {
                    f.truncate(usize::from(c[5] & 0x7F));
                }
                if c[6] & 1 == 0 {
                    let held0 = nic.egress().occupancy(Vport::new(1));
                    let _ = inject_tx(&mut nic, VF1, &f);
                    assert_eq!(
                        nic.egress().occupancy(Vport::new(1)),
                        held0,
                        "VF 1's frame in VF 0's FIFO"
                    );
                } else {
                    nic.wire_receive(&f);
                }
            }
            2 => {
                let f = build(PEER, MAC0, ETHERTYPE_IPV4, &[GOOD; 50]);
                if inject_tx(&mut nic, VF0, &f) == InjectVerdict::Accepted {
                    accepted0 += 1;
                }
            }
            _ => {
                if epoch < 1000 {
                    epoch += 1;
                    nic.open_epoch(VfNumber::new(0), epoch).unwrap();
                    nic.commit(VfNumber::new(0), epoch - 1).unwrap();
                }
                let now = nic.now();
                nic.advance_to(SimTime(now.0 + u64::from(c[1]) * 1000));
            }
        }
        for r in nic.take_wire_capture() {
            let src = &r.data[6..12];
            if src == MAC0.0 && r.data.get(ETHERNET_HEADER_LEN) == Some(&GOOD) {
                wire0 += 1;
            } else if src != MAC0.0 && src != DEFAULT_PF_MAC.0 {
                assert_eq!(src, MAC1.0, "a spoofed frame reached the wire");
            }
        }
        for (to, f) in mlx5_model::testing::take_deliveries(&mut nic) {
            let dst = &f[..6];
            assert!(dst != MAC0.0 || to == VF0, "VF 0's frame went to {to}");
            assert!(dst != MAC2.0 || to == VF2, "VF 2's frame went to {to}");
        }
        let buffered = nic.egress().occupancy(Vport::new(1)).0 as u64;
        assert_eq!(wire0 + buffered, accepted0, "VF 0 lost a frame");
    }
});

//! A hostile VF's command interface on the mlx5 model: arbitrary command messages (any opcode,
//! op_mod, input and output length, body), entries and mailbox chains broken at arbitrary
//! bytes, arbitrary doorbell masks and BAR0 writes (UAR doorbells of EQs and CQs included),
//! all from VF 1 while the PF and VF 0 are brought up. Oracle beyond "no panic":
//! - a command posted intact in a live queue and rung is completed: ownership comes back,
//!   with a delivery status or an output header whose status parses;
//! - the PF's and VF 0's state, counters and command queue address never change;
//! - VF 0 still executes a command afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_model::FunctionId;
use mlx5_model::testing::{CmdDriver, CmdError, device, input};

const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);
/// Opcodes the model implements, so most rounds reach the commands' own checks.
const KNOWN: [u16; 26] = [
    0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x107, 0x108, 0x109, 0x10A, 0x10B, 0x10D, 0x301,
    0x302, 0x303, 0x400, 0x401, 0x402, 0x403, 0x800, 0x801, 0x802, 0x803, 0x805, 0x816, 0x817,
];
const IN_LENS: [usize; 8] = [0, 8, 0x10, 0x20, 0x50, 0x110, 0x1010, 0x2000];
const OUT_LENS: [usize; 8] = [0, 8, 0x0C, 0x10, 0x70, 0x110, 0x1010, 0x2000];

fuzz_target!(|data: &[u8]| {
    let mut nic = device(3);
    let mut pf = CmdDriver::attach(&mut nic, FunctionId::Pf);
    let mut d0 = CmdDriver::attach(&mut nic, VF0);
    pf.bring_up(&mut nic);
    d0.bring_up(&mut nic);
    let mut evil = CmdDriver::attach(&mut nic, VF1);
    let watch = [FunctionId::Pf, VF0, FunctionId::Vf(2)];
    let snapshot = |nic: &mlx5_model::Mlx5Nic| -> Vec<_> {
        watch
            .iter()
            .map(|f| {
                (
                    nic.function_state(*f).cloned(),
                    nic.function_counters(*f),
                    nic.cmdq_address(*f),
                )
            })
            .collect()
    };
    let before = snapshot(&nic);
    // Each round: 12 bytes of decisions, then up to 32 bytes of command body.
    let mut rest = data;
    while rest.len() >= 12 {
        let (c, tail) = rest.split_at(12);
        let body_len = usize::from(c[11] % 33).min(tail.len());
        let (body, tail) = tail.split_at(body_len);
        rest = tail;
        let op = if c[0] & 3 == 0 {
            u16::from_le_bytes([c[1], c[2]])
        } else {
            KNOWN[usize::from(c[1]) % KNOWN.len()]
        };
        let len = IN_LENS[usize::from(c[3]) % IN_LENS.len()];
        let out = OUT_LENS[usize::from(c[4]) % OUT_LENS.len()];
        let mut m = input(Opcode::from(op), u16::from(c[5] % 8), len.max(8));
        m.truncate(len.max(8).min(m.len()));
        for (dst, src) in m.iter_mut().skip(8).zip(body) {
            *dst = *src;
        }
        let slot = c[6] % 32;
        let p = evil.post(slot, &m, out);
        let broken = match c[7] % 8 {
            0 => {
                let mut e = evil.entry(slot);
                e[usize::from(c[8]) % e.len()] ^= c[9] | 1;
                evil.write(p.entry, &e);
                true
            }
            1 if !p.in_blocks.is_empty() => {
                let mut b = [0u8; 0x240];
                evil.read(p.in_blocks[0], &mut b);
                b[usize::from(c[8]) * 2 % b.len()] ^= c[9] | 1;
                evil.write(p.in_blocks[0], &b);
                true
            }
            _ => false,
        };
        let extra = u32::from_le_bytes([c[8], c[9], c[10], 0]);
        evil.ring(&mut nic, extra | (1 << slot));
        if !broken && !nic.cmdq_stopped(VF1) {
            match evil.complete(&p) {
                Err(CmdError::NotCompleted) => {
                    panic!("an intact command {op:#x} was not completed")
                }
                Err(CmdError::Delivery(_)) => {}
                Ok(o) => assert!(
                    !matches!(o.status, CommandStatus::Unknown(_)) || out < 8,
                    "status {:?} for {op:#x}",
                    o.status
                ),
            }
        }
        // Hostile register traffic, then a fresh queue address for the next round.
        // Half of the rounds aim at the UAR pages (EQ and CQ doorbells at +0x20..+0x48).
        let offset = if c[0] & 0x80 != 0 {
            0x4000 + u32::from(c[10] % 8) * 0x1000 + (u32::from(c[8]) & 0x7C)
        } else {
            u32::from(c[10]) * 4 % 0x1100
        };
        nic.write32be(VF1, offset, u32::from_le_bytes([c[2], c[8], c[9], c[11]]));
        evil.set_cmdq(&mut nic);
    }
    assert_eq!(snapshot(&nic), before, "a VF changed another function");
    let o = d0.exec(&mut nic, &input(Opcode::AllocPd, 0, 0x10), 0x10);
    assert!(
        matches!(o, Ok(ref o) if o.status == CommandStatus::Ok),
        "VF 0 still works: {o:?}"
    );
});

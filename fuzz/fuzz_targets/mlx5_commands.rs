//! A hostile VF's command interface on the mlx5 model: arbitrary command messages (any opcode,
//! op_mod, input and output length, body), entries and mailbox chains broken at arbitrary
//! bytes, arbitrary doorbell masks and BAR0 writes (UAR doorbells of EQs and CQs included),
//! page requests and test CQEs the device sends VF 1, all while the PF and VF 0 are brought up.
//! VF 1 starts bare, brought up, or brought up with a live EQ and an armed CQ (first byte).
//! The entry or any mailbox block of either chain (data, next pointer, block number, token,
//! signatures) is broken at a chosen byte. Oracle beyond "no panic", after every doorbell:
//! - a command posted intact in a live queue and rung is completed: ownership comes back,
//!   with a delivery status or an output header whose status parses;
//! - every entry the doorbell named that was handed to the device gets a status written
//!   (its entry changes) unless the queue stopped on a DMA fault, and then at most the slots
//!   counted as held back stay untouched;
//! - the counters add up: for the doorbell's bits, entries not owned + bits held back by a
//!   stopped queue + commands OK + command errors + delivery errors = bits rung, and VF 1's
//!   own counters (commands + delivery errors) grew by the same number of processed entries;
//! - the PF's and VF 0's (and idle VF 2's) state, counters, command queue address and PBA
//!   never change, no interrupt is sent for them, their memory is never written;
//! - VF 0 still executes a command afterwards.
#![no_main]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use adapter_core::memory::{DmaTarget, SharedMemory};
use hw_common::Iova;
use libfuzzer_sys::fuzz_target;
use mlx5_hw::cmd::{
    CommandStatus, ENTRY_LEN, MAILBOX_BLOCK_LEN, MAILBOX_DATA_LEN, Opcode, QueueEntry,
};
use mlx5_hw::eqe::EventType;
use mlx5_model::testing::{CmdDriver, CmdError, MEM_IOVA, MEM_LEN, device, input};
use mlx5_model::{Counters, FunctionId, Mlx5Nic};

const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);
/// Opcodes the model implements, so most rounds reach the commands' own checks: bring-up,
/// resources, queue counters, EQs, CQs, mkeys, TIS/SQ/RQ/TIR/RQT, flow steering, vport commands and OUR HAC
/// commands (a VF is refused those: it is not the E-Switch manager).
const KNOWN: [u16; 70] = [
    0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x107, 0x108, 0x109, 0x10A, 0x10B, 0x10D, 0x301,
    0x302, 0x303, 0x400, 0x401, 0x402, 0x403, 0x800, 0x801, 0x802, 0x803, 0x805, 0x816, 0x817,
    0x200, 0x202, 0x900, 0x901, 0x902, 0x904, 0x905, 0x906, 0x907, 0x908, 0x909, 0x90A, 0x90B,
    0x912, 0x913, 0x914, 0x915, 0x916, 0x917, 0x918, 0x92F, 0x930, 0x931, 0x933, 0x934, 0x936,
    0x938, 0x750, 0x751, 0x754, 0x755, 0x770, 0x771, 0x772, 0x773, 0x7F00, 0x7F01, 0x7F02, 0x7F03, 0x7F04, 0x7F05,
    0x7F06, 0x7F07, 0x7F08,
];
const IN_LENS: [usize; 8] = [0, 8, 0x10, 0x20, 0x50, 0x110, 0x1010, 0x2000];
const OUT_LENS: [usize; 8] = [0, 8, 0x0C, 0x10, 0x70, 0x110, 0x1010, 0x2000];

/// Every command the device finished (executed or refused with a delivery status).
fn finished(c: &Counters) -> u64 {
    let d = c.delivery;
    c.commands_ok
        + c.command_errors.total()
        + d.signature
        + d.token
        + d.bad_block_number
        + d.output_pointer_alignment
        + d.input_pointer_alignment
        + d.fw_error
        + d.input_length
        + d.output_length
        + d.bad_command_type
}

/// Another function's memory as the device sees it: the driver's memory, every device
/// write counted (cheaper than comparing megabytes after each run).
struct Tripwire {
    inner: Arc<SharedMemory>,
    writes: AtomicU64,
}

impl DmaTarget for Tripwire {
    fn len(&self) -> u64 {
        DmaTarget::len(&*self.inner)
    }

    fn read(&self, offset: u64, buf: &mut [u8]) {
        self.inner.read(offset, buf);
    }

    fn write(&self, offset: u64, data: &[u8]) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write(offset, data);
    }
}

/// Puts a [`Tripwire`] between the device and `d`'s memory.
fn tripwire(nic: &mut Mlx5Nic, d: &CmdDriver) -> Arc<Tripwire> {
    let t = Arc::new(Tripwire {
        inner: d.mem.clone(),
        writes: AtomicU64::new(0),
    });
    let target: Arc<dyn DmaTarget> = t.clone();
    let _ = nic.dma_unmap(d.f, Iova(MEM_IOVA));
    let mapped = nic.dma_map(d.f, Iova(MEM_IOVA), MEM_LEN as u64, target, 0);
    assert!(mapped.is_ok(), "tripwire mapped: {mapped:?}");
    t
}

/// The entries of the slots in `mask`, as they stand in the driver's memory.
fn entries(d: &CmdDriver, mask: u32) -> Vec<(u8, [u8; ENTRY_LEN])> {
    (0..32u8)
        .filter(|s| mask & (1 << s) != 0)
        .map(|s| (s, d.entry(s)))
        .collect()
}

fn owned(e: &[u8; ENTRY_LEN]) -> bool {
    QueueEntry::new_checked(&e[..]).is_ok_and(|e| e.owned_by_hw())
}

/// One doorbell of VF 1 with `mask`, checking that every owned entry got a status and that
/// the counters add up.
fn ring_checked(nic: &mut Mlx5Nic, evil: &CmdDriver, mask: u32) {
    let live = nic.cmdq_address(VF1).is_some() && !nic.cmdq_stopped(VF1);
    let before = entries(evil, mask);
    let (c0, f0) = (
        *nic.counters(),
        nic.function_counters(VF1).unwrap_or_default(),
    );
    evil.ring(nic, mask);
    let (c1, f1) = (
        *nic.counters(),
        nic.function_counters(VF1).unwrap_or_default(),
    );
    assert_eq!(c1.doorbells - c0.doorbells, 1, "one doorbell");
    let done = finished(&c1) - finished(&c0);
    assert_eq!(
        (f1.commands + f1.delivery_errors) - (f0.commands + f0.delivery_errors),
        done,
        "the function's counters agree with the device's"
    );
    if !live {
        assert_eq!(done, 0, "a queue that is not live executes nothing");
        return;
    }
    let bits = u64::from(mask.count_ones());
    let held_back = c1.doorbell_queue_stopped - c0.doorbell_queue_stopped;
    let not_owned = c1.entry_not_owned - c0.entry_not_owned;
    assert_eq!(
        not_owned + held_back + done,
        bits,
        "every bit accounted for: {not_owned} not owned, {held_back} held back, {done} finished"
    );
    let untouched = before
        .iter()
        .filter(|(s, e)| owned(e) && evil.entry(*s) == *e)
        .count() as u64;
    if nic.cmdq_stopped(VF1) {
        assert!(
            untouched <= held_back,
            "{untouched} owned entries got no status"
        );
    } else {
        assert_eq!(held_back, 0);
        assert_eq!(untouched, 0, "an owned entry got no status");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut nic = device(3);
    let mut pf = CmdDriver::attach(&mut nic, FunctionId::Pf);
    let mut d0 = CmdDriver::attach(&mut nic, VF0);
    pf.bring_up(&mut nic);
    d0.bring_up(&mut nic);
    let mut evil = CmdDriver::attach(&mut nic, VF1);
    // The first byte sets VF 1 up: bit 0 brought up with a UAR, bit 1 also an EQ (all events,
    // vector 0, MSI-X on) and a CQ on it, armed, so the UAR doorbells and CQEs hit live queues.
    let Some((&setup, data)) = data.split_first() else {
        return;
    };
    if setup & 1 != 0 {
        evil.bring_up(&mut nic);
        let uar = evil.alloc_uar(&mut nic);
        if setup & 2 != 0 {
            evil.msix_control(&mut nic, true, false);
            evil.program_vector(&mut nic, 0, 0xFEE0_0000, 1, false);
            let events = [EventType::Cmd, EventType::PageRequest];
            let eq = evil.create_eq(&mut nic, 2, uar, 0, &events);
            evil.eq_doorbell(&mut nic, &eq, true);
            let cq = evil.create_cq(&mut nic, 1, uar, eq.eqn);
            evil.arm_cq(&mut nic, &cq, false);
        }
    }
    let watch = [FunctionId::Pf, VF0, FunctionId::Vf(2)];
    let snapshot = |nic: &Mlx5Nic| -> Vec<_> {
        watch
            .iter()
            .map(|f| {
                // A frame the hostile VF got onto the E-Switch (it may build a send queue)
                // reaches another function's receive path, which counts it as having nowhere to
                // go; nothing else of that function may change (and its memory is watched).
                let counters = nic.function_counters(*f).map(|mut c| {
                    c.queues.rx_steering_misses = 0;
                    c.queues.rx_no_rq = 0;
                    c.queues.rx_rq_not_ready = 0;
                    c
                });
                (
                    nic.function_state(*f).cloned(),
                    counters,
                    nic.vport_context(*f).cloned(),
                    nic.cmdq_address(*f),
                    nic.cmdq_stopped(*f),
                    nic.msix_pending(*f),
                )
            })
            .collect()
    };
    let before = snapshot(&nic);
    let wires = [tripwire(&mut nic, &pf), tripwire(&mut nic, &d0)];
    let _ = nic.take_interrupts();
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
            // A mailbox block of either chain, at any position: its data, or (odd c[8]) its
            // next pointer, block number, token or signatures.
            k @ (1 | 2) => {
                let chain = if k == 1 { &p.in_blocks } else { &p.out_blocks };
                match chain.get(usize::from(c[9] >> 4) % chain.len().max(1)) {
                    Some(&at) => {
                        let mut b = [0u8; MAILBOX_BLOCK_LEN];
                        evil.read(at, &mut b);
                        let i = usize::from(c[8] >> 1);
                        let i = if c[8] & 1 != 0 {
                            MAILBOX_DATA_LEN + i % (MAILBOX_BLOCK_LEN - MAILBOX_DATA_LEN)
                        } else {
                            i * 4 % MAILBOX_DATA_LEN
                        };
                        b[i] ^= c[9] | 1;
                        evil.write(at, &b);
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        let extra = u32::from_le_bytes([c[8], c[9], c[10], 0]);
        ring_checked(&mut nic, &evil, extra | (1 << slot));
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
        let value = [c[2], c[8], c[9], c[11], c[1], c[3], c[4], c[5]];
        if c[11] & 1 != 0 && offset.is_multiple_of(8) {
            // 8 bytes: the CQ arm doorbell takes only that size.
            nic.bar_write(VF1, 0, u64::from(offset), &value);
        } else {
            nic.bar_write(VF1, 0, u64::from(offset), &value[..4]);
        }
        // The device's side: page requests and CQEs for VF 1 (whatever its state).
        match c[0] >> 4 & 7 {
            1 => {
                let _ = nic.request_pages(VF1, u32::from(c[9]));
            }
            2 => {
                let _ = nic.post_test_cqe(VF1, 0x400 + u32::from(c[9] & 7));
            }
            _ => {}
        }
        assert!(
            nic.take_interrupts().iter().all(|i| i.function == VF1),
            "an interrupt for another function"
        );
        evil.set_cmdq(&mut nic);
    }
    assert_eq!(snapshot(&nic), before, "a VF changed another function");
    for w in &wires {
        assert_eq!(
            w.writes.load(Ordering::Relaxed),
            0,
            "a VF's DMA reached another function's memory"
        );
    }
    let o = d0.exec(&mut nic, &input(Opcode::AllocPd, 0, 0x10), 0x10);
    assert!(
        matches!(o, Ok(ref o) if o.status == CommandStatus::Ok),
        "VF 0 still works: {o:?}"
    );
    assert!(
        wires[1].writes.load(Ordering::Relaxed) > 0,
        "the tripwire sees VF 0's own completion"
    );
});

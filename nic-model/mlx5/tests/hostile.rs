//! A hostile VF against the mlx5 model, one attack per test: mailbox chains that never complete,
//! a page-request storm, CQ overflow, an EQ never armed, doorbells beyond the rings, command
//! doorbells with every bit set, writes into the initialization segment's read-only registers,
//! MSI-X table abuse, FLR in the middle of commands and SR-IOV disable with VFs in use.
//!
//! Each test asserts the same three things: the model keeps running (no panic, every refusal
//! counted), the other functions' state, counters, command queue, PBA and memory are exactly
//! as before and no interrupt reaches them, and the other VF's command queue and CQ still
//! work afterwards. Every driver maps its memory at the same IOVA in its own IOMMU, so each
//! pointer the hostile VF writes also names a valid address of the other functions: their
//! memory staying untouched shows the IOMMU separation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mlx5_hw::cmd::{
    CommandStatus, DeliveryStatus, MAILBOX_BLOCK_LEN, MailboxBlock, Opcode, QueueEntry,
};
use mlx5_hw::commands::queues::{CreateEqIn, eq_state};
use mlx5_hw::eqe::{EventData, EventType};
use mlx5_hw::init_seg::{INIT_SEG_LEN, Register};
use mlx5_hw::pci::{layout, msix};
use mlx5_hw::uar::{CQ_ARM_DOORBELL, EQ_DOORBELL_ARM, UAR_PAGE_LEN};
use mlx5_model::config::{pcie, sriov_cap};
use mlx5_model::testing::{
    CmdDriver, CmdError, DriverCq, DriverEq, MEM_IOVA, MEM_LEN, Posted, create_eq_input, device,
    input,
};
use mlx5_model::{
    Counters, FunctionCounters, FunctionId, FunctionState, HcaState, Mlx5Nic, PageRequestError,
};

const PF: FunctionId = FunctionId::Pf;
const GOOD: FunctionId = FunctionId::Vf(0);
const EVIL: FunctionId = FunctionId::Vf(1);
const IDLE: FunctionId = FunctionId::Vf(2);
const MSI_ADDR: u64 = 0xFEE0_1000;
const GOOD_DATA: u32 = 0x77;

/// The PF and VF 0 (good) brought up, VF 0 with an armed EQ (page requests) on vector 1 and an
/// armed CQ on it; VF 1 (evil) brought up with a UAR and MSI-X enabled; VF 2 idle.
struct World {
    nic: Mlx5Nic,
    pf: CmdDriver,
    good: CmdDriver,
    evil: CmdDriver,
    good_eq: DriverEq,
    good_cq: DriverCq,
    evil_uar: u32,
}

/// What another function looks like from outside.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    f: FunctionId,
    state: FunctionState,
    counters: FunctionCounters,
    cmdq: Option<u64>,
    stopped: bool,
    pending: Option<u64>,
}

fn memory(d: &CmdDriver) -> Vec<u8> {
    let mut m = vec![0u8; MEM_LEN];
    assert!(d.mem.read_checked(0, &mut m));
    m
}

fn seen(nic: &Mlx5Nic, f: FunctionId) -> Seen {
    Seen {
        f,
        state: nic.function_state(f).unwrap().clone(),
        counters: nic.function_counters(f).unwrap(),
        cmdq: nic.cmdq_address(f),
        stopped: nic.cmdq_stopped(f),
        pending: nic.msix_pending(f),
    }
}

/// The other functions before an attack.
struct Before {
    seen: Vec<Seen>,
    pf_mem: Vec<u8>,
    good_mem: Vec<u8>,
}

fn world() -> World {
    let mut nic = device(3);
    let mut pf = CmdDriver::attach(&mut nic, PF);
    pf.bring_up(&mut nic);
    let mut good = CmdDriver::attach(&mut nic, GOOD);
    good.bring_up(&mut nic);
    let guar = good.alloc_uar(&mut nic);
    good.msix_control(&mut nic, true, false);
    good.program_vector(&mut nic, 1, MSI_ADDR, GOOD_DATA, false);
    let good_eq = good.create_eq(&mut nic, 3, guar, 1, &[EventType::PageRequest]);
    good.eq_doorbell(&mut nic, &good_eq, true);
    let good_cq = good.create_cq(&mut nic, 2, guar, good_eq.eqn);
    good.arm_cq(&mut nic, &good_cq, false);
    let mut evil = CmdDriver::attach(&mut nic, EVIL);
    evil.bring_up(&mut nic);
    let evil_uar = evil.alloc_uar(&mut nic);
    evil.msix_control(&mut nic, true, false);
    assert!(nic.take_interrupts().is_empty());
    World {
        nic,
        pf,
        good,
        evil,
        good_eq,
        good_cq,
        evil_uar,
    }
}

impl World {
    fn before(&self) -> Before {
        Before {
            seen: [PF, GOOD, IDLE].map(|f| seen(&self.nic, f)).to_vec(),
            pf_mem: memory(&self.pf),
            good_mem: memory(&self.good),
        }
    }

    /// Only the hostile VF interrupted.
    fn only_evil_interrupts(&mut self) -> usize {
        let ints = self.nic.take_interrupts();
        assert!(
            ints.iter().all(|i| i.function == EVIL),
            "another function interrupted: {ints:?}"
        );
        ints.len()
    }

    /// The other functions are as they were, and VF 0 still executes a command and completes
    /// a CQE with its completion event and interrupt.
    fn check(&mut self, b: &Before) {
        self.only_evil_interrupts();
        for s in &b.seen {
            assert_eq!(&seen(&self.nic, s.f), s, "{} changed", s.f);
        }
        assert!(memory(&self.pf) == b.pf_mem, "the PF's memory was written");
        assert!(
            memory(&self.good) == b.good_mem,
            "VF 0's memory was written"
        );
        let pds = self.nic.function_state(GOOD).unwrap().pds.len();
        let o = self
            .good
            .ok(&mut self.nic, &input(Opcode::AllocPd, 0, 0x10), 0x10);
        assert_eq!(o.dword(0x08) as usize, pds + 1, "VF 0's next PD");
        let pf_pds = self.nic.function_state(PF).unwrap().pds.len();
        let o = self
            .pf
            .ok(&mut self.nic, &input(Opcode::AllocPd, 0, 0x10), 0x10);
        assert_eq!(o.dword(0x08) as usize, pf_pds + 1, "the PF's next PD");
        assert!(self.nic.post_test_cqe(GOOD, self.good_cq.cqn));
        let seen = self.good.poll_eq(&mut self.good_eq);
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0].data,
            EventData::Completion {
                cqn: self.good_cq.cqn
            }
        );
        let ints = self.nic.take_interrupts();
        assert_eq!(ints.len(), 1);
        assert_eq!(
            (ints[0].function, ints[0].vector, ints[0].data),
            (GOOD, 1, GOOD_DATA)
        );
    }

    fn evil_counters(&self) -> FunctionCounters {
        self.nic.function_counters(EVIL).unwrap()
    }

    fn evil_state(&self) -> &FunctionState {
        self.nic.function_state(EVIL).unwrap()
    }

    /// Rings `p`'s slot on the hostile VF and returns its delivery status.
    fn delivery(&mut self, p: &Posted) -> DeliveryStatus {
        self.evil.ring(&mut self.nic, 1 << p.slot);
        match self.evil.complete(p) {
            Err(CmdError::Delivery(s)) => s,
            other => panic!("expected a delivery error, got {other:?}"),
        }
    }
}

fn edit_block(d: &CmdDriver, addr: u64, edit: impl FnOnce(&mut MailboxBlock<&mut [u8]>)) {
    let mut b = [0u8; MAILBOX_BLOCK_LEN];
    d.read(addr, &mut b);
    edit(&mut MailboxBlock::new_checked(&mut b[..]).unwrap());
    d.write(addr, &b);
}

fn edit_entry(d: &CmdDriver, p: &Posted, edit: impl FnOnce(&mut QueueEntry<&mut [u8]>)) {
    let mut e = d.entry(p.slot);
    edit(&mut QueueEntry::new_checked(&mut e[..]).unwrap());
    d.write(p.entry, &e);
}

fn delivery_total(c: &Counters) -> u64 {
    let d = c.delivery;
    d.signature
        + d.token
        + d.bad_block_number
        + d.output_pointer_alignment
        + d.input_pointer_alignment
        + d.fw_error
        + d.input_length
        + d.output_length
        + d.bad_command_type
}

fn set_cap_input() -> Vec<u8> {
    let mut m = input(Opcode::SetHcaCap, 0, 0x1010);
    m[0x10..].copy_from_slice(&mlx5_model::caps::general_max(true));
    m
}

#[test]
fn mailbox_chains_that_never_complete_stop_nothing_but_their_command() {
    let mut w = world();
    let b = w.before();
    let c0 = *w.nic.counters();
    let mut refused = 0;
    let mut expect = |w: &mut World, p: Posted, want: DeliveryStatus| {
        assert_eq!(w.delivery(&p), want);
        refused += 1;
    };
    // SET_HCA_CAP: 0x1010 bytes, eight input blocks.
    let p = w.evil.post(0, &set_cap_input(), 0x10);
    assert_eq!(p.in_blocks.len(), 8);
    edit_block(&w.evil, p.in_blocks[3], |m| m.set_next(0));
    expect(&mut w, p, DeliveryStatus::InputLength);
    // A loop back to an earlier block, and a block pointing at itself.
    let p = w.evil.post(1, &set_cap_input(), 0x10);
    let back = p.in_blocks[1];
    edit_block(&w.evil, p.in_blocks[5], |m| m.set_next(back));
    expect(&mut w, p, DeliveryStatus::BadBlockNumber);
    let p = w.evil.post(2, &set_cap_input(), 0x10);
    let own = p.in_blocks[0];
    edit_block(&w.evil, own, |m| m.set_next(own));
    expect(&mut w, p, DeliveryStatus::BadBlockNumber);
    // A block pointing at itself mid-chain: caught at its second visit.
    let p = w.evil.post(3, &set_cap_input(), 0x10);
    let own = p.in_blocks[2];
    edit_block(&w.evil, own, |m| m.set_next(own));
    expect(&mut w, p, DeliveryStatus::BadBlockNumber);
    // Wrong token, wrong block number mid-chain.
    let p = w.evil.post(4, &set_cap_input(), 0x10);
    edit_block(&w.evil, p.in_blocks[4], |m| m.set_token(0xEE));
    expect(&mut w, p, DeliveryStatus::Token);
    let p = w.evil.post(5, &set_cap_input(), 0x10);
    edit_block(&w.evil, p.in_blocks[6], |m| m.set_block_number(u32::MAX));
    expect(&mut w, p, DeliveryStatus::BadBlockNumber);
    // The longest input the model takes (1 MiB), carried by an 8-block chain that loops: the
    // walk is bounded by the claimed length and ends at the loop.
    let p = w.evil.post(6, &set_cap_input(), 0x10);
    edit_entry(&w.evil, &p, |e| {
        e.set_input_length(mlx5_model::cmdq::MAX_MESSAGE_LEN)
    });
    let first = p.in_blocks[0];
    edit_block(&w.evil, p.in_blocks[7], |m| m.set_next(first));
    expect(&mut w, p, DeliveryStatus::BadBlockNumber);
    // Longer than that, and the largest lengths the entry can say.
    for len in [mlx5_model::cmdq::MAX_MESSAGE_LEN + 1, u32::MAX] {
        let p = w.evil.post(7, &set_cap_input(), 0x10);
        edit_entry(&w.evil, &p, |e| e.set_input_length(len));
        expect(&mut w, p, DeliveryStatus::InputLength);
        let p = w.evil.post(7, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
        edit_entry(&w.evil, &p, |e| e.set_output_length(len));
        expect(&mut w, p, DeliveryStatus::OutputLength);
    }
    // The output chain: a loop, a null pointer, a misaligned one.
    let p = w.evil.post(8, &input(Opcode::QueryHcaCap, 1, 0x10), 0x1010);
    let first = p.out_blocks[0];
    edit_block(&w.evil, p.out_blocks[4], |m| m.set_next(first));
    expect(&mut w, p, DeliveryStatus::BadBlockNumber);
    let p = w.evil.post(9, &input(Opcode::QueryHcaCap, 1, 0x10), 0x1010);
    edit_entry(&w.evil, &p, |e| e.set_output_mailbox(0));
    expect(&mut w, p, DeliveryStatus::OutputLength);
    let p = w
        .evil
        .post(10, &input(Opcode::QueryHcaCap, 1, 0x10), 0x1010);
    edit_entry(&w.evil, &p, |e| e.set_output_mailbox(first + 4));
    expect(&mut w, p, DeliveryStatus::OutputPointerAlignment);
    assert!(!w.nic.cmdq_stopped(EVIL), "refusals do not stop the queue");
    // Chains that leave the IOMMU (unmapped, the very top of the address space, just past
    // the VF's own memory) are DMA faults: FwError, the hostile
    // VF's queue stops until it writes the queue address again.
    for next in [
        0x7FFF_0000_0000u64,
        0xFFFF_FFFF_FFFF_FFF8,
        MEM_IOVA + MEM_LEN as u64,
    ] {
        let p = w.evil.post(11, &set_cap_input(), 0x10);
        edit_block(&w.evil, p.in_blocks[2], |m| m.set_next(next));
        expect(&mut w, p, DeliveryStatus::FwError);
        assert!(w.nic.cmdq_stopped(EVIL));
        assert!(!w.nic.cmdq_stopped(GOOD) && !w.nic.cmdq_stopped(PF));
        w.evil.set_cmdq(&mut w.nic);
    }
    let c = *w.nic.counters();
    assert_eq!(delivery_total(&c) - delivery_total(&c0), refused);
    assert_eq!(c.cmd_dma_faults - c0.cmd_dma_faults, 3);
    assert_eq!(c.commands_ok, c0.commands_ok, "nothing was executed");
    assert_eq!(c.command_errors, c0.command_errors);
    let e = w.evil_counters();
    assert_eq!((e.delivery_errors, e.dma_faults), (refused, 3));
    // The hostile VF itself recovers: its next intact command runs.
    w.evil
        .ok(&mut w.nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    w.check(&b);
}

#[test]
fn a_page_request_storm_is_counted_capped_and_bounded() {
    let mut w = world();
    let uar = w.evil_uar;
    // Two EQs hear page requests: one of 2 entries never consumed nor armed, one of 4 on a
    // masked vector, always armed.
    w.evil.program_vector(&mut w.nic, 0, MSI_ADDR, 0xE0, false);
    w.evil.program_vector(&mut w.nic, 2, MSI_ADDR, 0xE2, true);
    let small = w
        .evil
        .create_eq(&mut w.nic, 1, uar, 0, &[EventType::PageRequest]);
    let page = w.evil.fresh_pages(1)[0];
    let mut m = create_eq_input(2, uar, 2, 0, &[page], &[EventType::PageRequest]);
    CreateEqIn::new_checked(&mut m[..])
        .unwrap()
        .eq_context_mut()
        .set_st(eq_state::ALWAYS_ARMED);
    let always = w.evil.ok(&mut w.nic, &m, 0x10).dword(0x08) as u8;
    let b = w.before();
    let c0 = *w.nic.counters();
    let storm = 20_000u32;
    for k in 0..storm {
        w.nic.request_pages(EVIL, 1 + k % 7).unwrap();
    }
    for _ in 0..100 {
        w.nic.request_pages(EVIL, u32::MAX).unwrap();
    }
    let n = u64::from(storm) + 100;
    let c = *w.nic.counters();
    assert_eq!(c.page_requests - c0.page_requests, n);
    assert_eq!(
        c.eqes_written - c0.eqes_written,
        2 + 4,
        "each EQ filled once"
    );
    assert_eq!(c.eq_overflows - c0.eq_overflows, 2 * n - 6);
    assert_eq!(w.evil_counters().eq_overflows, 2 * n - 6);
    // No interrupt storm: the unarmed EQ never fires; the always-armed one fires once per
    // EQE written (4), all pending on the masked vector: one PBA bit.
    assert_eq!(w.only_evil_interrupts(), 0);
    assert_eq!(c.interrupts_pending - c0.interrupts_pending, 4);
    assert_eq!(w.nic.msix_pending(EVIL), Some(1 << 2));
    // Nothing grew with the storm: two EQs, each at its size, the debt capped.
    let s = w.evil_state();
    assert_eq!(s.eqs.len(), 2);
    let (se, ae) = (&s.eqs[&small.eqn], &s.eqs[&always]);
    assert_eq!((se.outstanding(), ae.outstanding()), (2, 4));
    assert_eq!((se.overflows, ae.overflows), (n - 2, n - 4));
    assert_eq!(s.pages_owed, i32::MAX as u32);
    assert_eq!(
        w.evil.query_pages(&mut w.nic, 3),
        i32::MAX,
        "QUERY_PAGES capped"
    );
    // Unmasking sends the one pending interrupt, once.
    w.evil.mask_vector(&mut w.nic, 2, false);
    assert_eq!(w.only_evil_interrupts(), 1);
    assert_eq!(w.nic.msix_pending(EVIL), Some(0));
    // Paying the debt: the device holds at most 4096 pages, then NO_RES; nothing more grows.
    let held0 = w.evil_state().pages.len();
    let mut next = 0x1_0000_0000u64;
    let mut no_res = 0;
    for _ in 0..6 {
        let pages: Vec<u64> = (0..1000).map(|k| next + k * 4096).collect();
        next += 1000 * 4096;
        match w.evil.give_pages(&mut w.nic, &pages).unwrap().status {
            CommandStatus::Ok => {}
            CommandStatus::NoResources => no_res += 1,
            s => panic!("{s:?}"),
        }
    }
    let held = w.evil_state().pages.len();
    assert!(held <= 4096, "{held} pages held");
    assert_eq!(held - held0, 4000);
    assert_eq!(no_res, 2);
    assert_eq!(
        w.evil.query_pages(&mut w.nic, 3),
        i32::MAX - 4000,
        "the given pages paid part of the debt"
    );
    // Requests to functions that cannot hear them are refused, nothing posted.
    assert_eq!(
        w.nic.request_pages(IDLE, 5),
        Err(PageRequestError::NotInitialized(IDLE))
    );
    assert_eq!(
        w.nic.request_pages(FunctionId::Vf(200), 5),
        Err(PageRequestError::NoSuchFunction(FunctionId::Vf(200)))
    );
    assert_eq!(w.nic.request_pages(EVIL, 0), Err(PageRequestError::NoPages));
    w.check(&b);
}

#[test]
fn a_cq_overflow_drops_and_counts_and_other_cqs_carry_on() {
    let mut w = world();
    let uar = w.evil_uar;
    w.evil.program_vector(&mut w.nic, 0, MSI_ADDR, 0xE0, false);
    let mut eq = w.evil.create_eq(&mut w.nic, 4, uar, 0, &[]);
    w.evil.eq_doorbell(&mut w.nic, &eq, true);
    let small = w.evil.create_cq(&mut w.nic, 1, uar, eq.eqn);
    w.evil.arm_cq(&mut w.nic, &small, false);
    let mut other = w.evil.create_cq(&mut w.nic, 3, uar, eq.eqn);
    let b = w.before();
    let c0 = *w.nic.counters();
    let written: usize = (0..1000)
        .filter(|_| w.nic.post_test_cqe(EVIL, small.cqn))
        .count();
    assert_eq!(written, 2, "the ring's size");
    let c = *w.nic.counters();
    assert_eq!(c.cq_overflows - c0.cq_overflows, 998);
    assert_eq!(w.evil_counters().cq_overflows, 998);
    assert_eq!(w.evil_state().cqs[&small.cqn].overflows, 998);
    assert_eq!(w.evil_state().cqs[&small.cqn].outstanding(), 2);
    // One completion event (armed once), one interrupt.
    assert_eq!(c.completion_events - c0.completion_events, 1);
    assert_eq!(w.only_evil_interrupts(), 1);
    // Another CQ of the same VF still takes CQEs.
    assert!(w.nic.post_test_cqe(EVIL, other.cqn));
    assert_eq!(w.evil.poll_cq(&mut other).len(), 1);
    // CQ numbers the hostile VF does not have (the good VF's CQ has the same number as the
    // hostile VF's first one; a number it never created) name nothing of another function.
    let c1 = w.nic.counters().cqes_no_cq;
    assert!(!w.nic.post_test_cqe(EVIL, 0x4FF));
    assert!(!w.nic.post_test_cqe(EVIL, u32::MAX));
    assert_eq!(w.nic.counters().cqes_no_cq - c1, 2);
    let events = w.evil.poll_eq(&mut eq);
    assert_eq!(events.len(), 1);
    w.check(&b);
}

#[test]
fn an_eq_never_armed_takes_events_bounded_and_never_interrupts() {
    let mut w = world();
    let uar = w.evil_uar;
    w.evil.program_vector(&mut w.nic, 0, MSI_ADDR, 0xE0, false);
    let eq = w.evil.create_eq(&mut w.nic, 2, uar, 0, &[EventType::Cmd]);
    let b = w.before();
    let c0 = *w.nic.counters();
    // Every command completes by polling; its EQE lands until the EQ is full.
    for _ in 0..300 {
        w.evil
            .ok(&mut w.nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    }
    let c = *w.nic.counters();
    assert_eq!(c.eqes_written - c0.eqes_written, 4);
    assert_eq!(c.eq_overflows - c0.eq_overflows, 296);
    assert_eq!(
        c.interrupts_sent, c0.interrupts_sent,
        "never armed: no interrupt"
    );
    assert_eq!(w.only_evil_interrupts(), 0);
    let s = &w.evil_state().eqs[&eq.eqn];
    assert_eq!((s.outstanding(), s.overflows), (4, 296));
    // An always-armed EQ on the same events fires per EQE written, never more than its size.
    let page = w.evil.fresh_pages(1)[0];
    let mut m = create_eq_input(1, uar, 0, 0, &[page], &[EventType::Cmd]);
    CreateEqIn::new_checked(&mut m[..])
        .unwrap()
        .eq_context_mut()
        .set_st(eq_state::ALWAYS_ARMED);
    w.evil.ok(&mut w.nic, &m, 0x10);
    for _ in 0..300 {
        w.evil
            .ok(&mut w.nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    }
    assert_eq!(w.only_evil_interrupts(), 2, "two EQEs, two interrupts");
    w.check(&b);
}

/// An 8-byte CQ arm doorbell: consumer counter `ci`, command `cmd`, `cqn`.
fn cq_arm(ci: u32, cmd: u32, cqn: u32) -> [u8; 8] {
    let mut db = [0u8; 8];
    db[..4].copy_from_slice(&((cmd << 24) | (ci & 0x00FF_FFFF)).to_be_bytes());
    db[4..].copy_from_slice(&cqn.to_be_bytes());
    db
}

#[test]
fn doorbells_beyond_the_ring_or_naming_other_queues_are_refused() {
    let mut w = world();
    let uar = w.evil_uar;
    let b = w.before();
    let c0 = *w.nic.counters();
    // Before the hostile VF has any queue: the good VF's EQ and CQ numbers, on every UAR page
    // of the hostile VF's BAR, name nothing.
    let pages = (2u64 << 20) / UAR_PAGE_LEN;
    let good_eqn = w.good_eq.eqn;
    let good_cqn = w.good_cq.cqn;
    for page in 4..pages {
        let at = page * UAR_PAGE_LEN;
        let eq_db = ((u32::from(good_eqn)) << 24).to_be_bytes();
        w.nic
            .bar_write(EVIL, 0, at + u64::from(EQ_DOORBELL_ARM), &eq_db);
        w.nic.bar_write(
            EVIL,
            0,
            at + u64::from(CQ_ARM_DOORBELL),
            &cq_arm(0, 0, good_cqn),
        );
    }
    let c = *w.nic.counters();
    assert_eq!(c.eq_doorbell_errors - c0.eq_doorbell_errors, pages - 4);
    assert_eq!(c.cq_doorbell_errors - c0.cq_doorbell_errors, pages - 4);
    // Past the BAR: out of range.
    w.nic.bar_write(
        EVIL,
        0,
        pages * UAR_PAGE_LEN + u64::from(EQ_DOORBELL_ARM),
        &[0; 4],
    );
    assert_eq!(
        w.nic.counters().out_of_range_accesses - c0.out_of_range_accesses,
        1
    );
    // Now with its own EQ and CQ (the same numbers as the good VF's).
    w.evil.program_vector(&mut w.nic, 0, MSI_ADDR, 0xE0, false);
    let mut eq = w.evil.create_eq(&mut w.nic, 2, uar, 0, &[]);
    let mut cq = w.evil.create_cq(&mut w.nic, 2, uar, eq.eqn);
    assert_eq!((eq.eqn, cq.cqn), (good_eqn, good_cqn));
    let other_uar = w.evil.alloc_uar(&mut w.nic);
    assert!(w.nic.post_test_cqe(EVIL, cq.cqn));
    let c1 = *w.nic.counters();
    // EQ: a counter past the producer (0 EQEs outstanding), backwards, the mask; the right
    // EQ on another page; an EQ number it does not have.
    for ci in [1, 0x00FF_FFFF, 2] {
        w.evil.eq_doorbell_raw(&mut w.nic, uar, eq.eqn, ci, true);
    }
    w.evil
        .eq_doorbell_raw(&mut w.nic, other_uar, eq.eqn, 0, true);
    w.evil.eq_doorbell_raw(&mut w.nic, uar, 0x3F, 0, true);
    // Wrong sizes at the EQ doorbell.
    let at = u64::from(uar) * UAR_PAGE_LEN + u64::from(EQ_DOORBELL_ARM);
    w.nic.bar_write(EVIL, 0, at, &[0; 8]);
    w.nic.bar_write(EVIL, 0, at, &[0; 2]);
    // CQ: one CQE outstanding; a counter two past, far past, backwards; another page;
    // another CQ number; a 4-byte half.
    for ci in [2, 0x00FF_FFFF, 0x00FF_FFF0] {
        w.evil.cq_arm_raw(&mut w.nic, uar, &cq_arm(ci, 0, cq.cqn));
    }
    w.evil
        .cq_arm_raw(&mut w.nic, other_uar, &cq_arm(0, 0, cq.cqn));
    w.evil
        .cq_arm_raw(&mut w.nic, uar, &cq_arm(0, 0, cq.cqn + 1));
    w.evil
        .cq_arm_raw(&mut w.nic, uar, &cq_arm(0, 0, cq.cqn)[..4]);
    let c = *w.nic.counters();
    assert_eq!(c.eq_doorbell_errors - c1.eq_doorbell_errors, 3 + 2 + 2);
    assert_eq!(c.cq_doorbell_errors - c1.cq_doorbell_errors, 3 + 1 + 1 + 1);
    // None of them moved a counter or armed anything.
    let s = w.evil_state();
    assert_eq!(s.eqs[&eq.eqn].consumer, 0);
    assert_eq!(s.cqs[&cq.cqn].consumer, 0);
    assert_eq!(w.only_evil_interrupts(), 0);
    // The right doorbells still work.
    assert_eq!(w.evil.poll_cq(&mut cq).len(), 1);
    w.evil.arm_cq(&mut w.nic, &cq, false);
    assert!(w.nic.post_test_cqe(EVIL, cq.cqn));
    assert_eq!(w.evil.poll_eq(&mut eq).len(), 1);
    w.evil.eq_doorbell(&mut w.nic, &eq, true);
    assert_eq!(w.nic.counters().eq_doorbell_errors, c.eq_doorbell_errors);
    assert_eq!(w.nic.counters().cq_doorbell_errors, c.cq_doorbell_errors);
    w.check(&b);
}

#[test]
fn command_doorbells_with_every_bit_set() {
    let mut w = world();
    let b = w.before();
    let c0 = *w.nic.counters();
    // Nothing posted (slot 0 was used by the bring-up and is back with software).
    w.evil.ring(&mut w.nic, u32::MAX);
    assert_eq!(w.nic.counters().entry_not_owned - c0.entry_not_owned, 32);
    // A storm of them: bounded, counted.
    for _ in 0..1000 {
        w.evil.ring(&mut w.nic, u32::MAX);
    }
    assert_eq!(
        w.nic.counters().entry_not_owned - c0.entry_not_owned,
        32 * 1001
    );
    // Every slot posted: every one executed in one doorbell.
    let posted: Vec<Posted> = (0..32u8)
        .map(|s| w.evil.post(s, &input(Opcode::QueryIssi, 0, 0x10), 0x70))
        .collect();
    let ok0 = w.nic.counters().commands_ok;
    w.evil.ring(&mut w.nic, u32::MAX);
    for p in &posted {
        assert_eq!(w.evil.complete(p).unwrap().status, CommandStatus::Ok);
    }
    assert_eq!(w.nic.counters().commands_ok - ok0, 32);
    // Every slot posted, slot 5's chain faulting: 0–4 executed, 5 FwError, 6–31 held back
    // (queue stopped, counted) and still owned by the device; after a restart they run.
    let posted: Vec<Posted> = (0..32u8)
        .map(|s| w.evil.post(s, &set_cap_input(), 0x10))
        .collect();
    edit_block(&w.evil, posted[5].in_blocks[0], |m| m.set_next(0xDEAD_0000));
    let c1 = *w.nic.counters();
    w.evil.ring(&mut w.nic, u32::MAX);
    let c2 = *w.nic.counters();
    assert_eq!(
        c2.command_errors.bad_sys_state - c1.command_errors.bad_sys_state,
        5
    );
    assert_eq!(c2.cmd_dma_faults - c1.cmd_dma_faults, 1);
    assert_eq!(c2.doorbell_queue_stopped - c1.doorbell_queue_stopped, 26);
    for p in &posted[..5] {
        assert_eq!(
            w.evil.complete(p).unwrap().status,
            CommandStatus::BadSysState
        );
    }
    assert_eq!(
        w.evil.complete(&posted[5]),
        Err(CmdError::Delivery(DeliveryStatus::FwError))
    );
    for p in &posted[6..] {
        assert_eq!(w.evil.complete(p), Err(CmdError::NotCompleted));
    }
    w.evil.set_cmdq(&mut w.nic);
    w.evil.ring(&mut w.nic, u32::MAX);
    for p in &posted[6..] {
        assert_eq!(
            w.evil.complete(p).unwrap().status,
            CommandStatus::BadSysState
        );
    }
    // An 8-byte write over the doorbell and the dword after it.
    let c3 = *w.nic.counters();
    w.nic
        .bar_write(EVIL, 0, u64::from(Register::CmdDbell.offset()), &[0xFF; 8]);
    let c4 = *w.nic.counters();
    assert_eq!(c4.doorbells - c3.doorbells, 1);
    assert_eq!(c4.entry_not_owned - c3.entry_not_owned, 32);
    // Every bit before the queue address exists (after FLR): counted, nothing read.
    flr(&mut w.nic, EVIL);
    w.evil.ring(&mut w.nic, u32::MAX);
    assert_eq!(w.nic.counters().doorbell_no_queue - c4.doorbell_no_queue, 1);
    w.check(&b);
}

fn read32(nic: &mut Mlx5Nic, f: FunctionId, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    nic.bar_read(f, 0, offset, &mut b);
    u32::from_be_bytes(b)
}

#[test]
fn writes_into_the_init_segments_read_only_registers_change_nothing() {
    let mut w = world();
    let b = w.before();
    let writable = [
        Register::CmdqAddrH.offset(),
        Register::CmdqAddrLSz.offset(),
        Register::CmdDbell.offset(),
    ]
    .map(u64::from);
    let offsets: Vec<u64> = (0..INIT_SEG_LEN as u64)
        .step_by(4)
        .filter(|o| !writable.contains(o))
        .collect();
    let image = |nic: &mut Mlx5Nic| -> Vec<u32> {
        (0..INIT_SEG_LEN as u64)
            .step_by(4)
            .map(|o| read32(nic, EVIL, o))
            .collect()
    };
    let seg0 = image(&mut w.nic);
    let c0 = *w.nic.counters();
    for &o in &offsets {
        for v in [u32::MAX, 0, 0x8000_0000] {
            w.nic.write32be(EVIL, o as u32, v);
        }
    }
    assert_eq!(
        w.nic.counters().read_only_writes - c0.read_only_writes,
        3 * offsets.len() as u64
    );
    assert_eq!(image(&mut w.nic), seg0, "nothing changed");
    // The read-only geometry bits of cmdq_addr_l_sz (log size, log stride) keep their value
    // whatever is written there.
    let at = Register::CmdqAddrLSz.offset();
    let addr = w.nic.cmdq_address(EVIL).unwrap();
    w.nic.write32be(EVIL, at, (addr as u32) | 0xFF);
    assert_eq!(read32(&mut w.nic, EVIL, u64::from(at)) & 0xFF, 0x56);
    assert_eq!(w.nic.cmdq_address(EVIL), Some(addr));
    // Writes of other sizes into the segment are not register writes.
    let c1 = *w.nic.counters();
    for o in (0..0x40u64).step_by(2) {
        w.nic.bar_write(EVIL, 0, o, &[0xFF; 2]);
        w.nic.bar_write(EVIL, 0, o, &[0xFF]);
    }
    assert_eq!(
        w.nic.counters().misaligned_accesses - c1.misaligned_accesses,
        64
    );
    assert_eq!(image(&mut w.nic), seg0);
    // The hostile VF's own command queue still works.
    w.evil
        .ok(&mut w.nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    w.check(&b);
}

#[test]
fn msix_table_abuse_reaches_only_the_hostile_vfs_own_vectors() {
    let mut w = world();
    let uar = w.evil_uar;
    let b = w.before();
    let c0 = *w.nic.counters();
    let table = u64::from(msix::TABLE_OFFSET);
    let pba = u64::from(msix::PBA_OFFSET);
    // Every vector aimed at the good VF's message address and data, unmasked.
    for v in 0..12u16 {
        w.evil
            .program_vector(&mut w.nic, v, MSI_ADDR, GOOD_DATA, false);
    }
    // Writes of every size across the table (they are the VF's own table: stored).
    let mut x = 0x1234_5678_9ABC_DEF0u64;
    for size in [1usize, 2, 4, 8] {
        for at in (0..12 * 16u64).step_by(size) {
            x = x.rotate_left(7) ^ 0x9E37_79B9;
            w.nic
                .bar_write(EVIL, 0, table + at, &x.to_le_bytes()[..size]);
        }
    }
    // Past the 12 vectors: nothing there.
    for at in (12 * 16..0x1000u64).step_by(4) {
        w.nic.bar_write(EVIL, 0, table + at, &[0xFF; 4]);
    }
    let c = *w.nic.counters();
    assert_eq!(c.unknown_writes - c0.unknown_writes, (0x1000 - 12 * 16) / 4);
    // The PBA is read-only; misaligned accesses are refused.
    w.nic.bar_write(EVIL, 0, pba, &[0xFF; 8]);
    w.nic.bar_write(EVIL, 0, pba + 4, &[0xFF; 4]);
    w.nic.bar_write(EVIL, 0, table + 2, &[0xFF; 4]);
    let c = *w.nic.counters();
    assert_eq!(c.read_only_writes - c0.read_only_writes, 2);
    assert_eq!(c.misaligned_accesses - c0.misaligned_accesses, 1);
    assert_eq!(w.nic.msix_pending(EVIL), Some(0));
    // Program it again as the good VF's, and fire: the message carries the hostile VF's
    // identity (the host routes by function), never the good VF's.
    for v in 0..12u16 {
        w.evil
            .program_vector(&mut w.nic, v, MSI_ADDR, GOOD_DATA, false);
    }
    let page = w.evil.fresh_pages(1)[0];
    let mut m = create_eq_input(3, uar, 11, 0, &[page], &[EventType::Cmd]);
    CreateEqIn::new_checked(&mut m[..])
        .unwrap()
        .eq_context_mut()
        .set_st(eq_state::ALWAYS_ARMED);
    w.evil.ok(&mut w.nic, &m, 0x10);
    w.evil
        .ok(&mut w.nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    let ints = w.nic.take_interrupts();
    assert_eq!(ints.len(), 1);
    assert_eq!((ints[0].function, ints[0].vector), (EVIL, 11));
    assert_eq!((ints[0].address, ints[0].data), (MSI_ADDR, GOOD_DATA));
    // Vectors past the table refused at CREATE_EQ.
    for intr in [12u16, 0xFFF] {
        let page = w.evil.fresh_pages(1)[0];
        let m = create_eq_input(1, uar, intr, 0, &[page], &[EventType::Cmd]);
        let o = w.evil.exec(&mut w.nic, &m, 0x10).unwrap();
        assert_eq!(o.status, CommandStatus::BadParam);
    }
    // (Each refused CREATE_EQ completed with an EQE on the always-armed EQ.)
    assert_eq!(w.only_evil_interrupts(), 2);
    // Masking, unmasking and MSI-X enable toggled in a storm with events pending: each
    // unmask sends what is pending once; nothing accumulates.
    let mut sent = 0;
    for k in 0..200 {
        w.evil.msix_control(&mut w.nic, k % 3 != 0, k % 2 == 0);
        w.evil.mask_vector(&mut w.nic, 11, k % 5 == 0);
        w.evil
            .ok(&mut w.nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
        sent += w.only_evil_interrupts();
        assert!(w.nic.msix_pending(EVIL).unwrap() & !(1 << 11) == 0);
    }
    // The always-armed EQ of 8 entries is never consumed: 5 more EQEs, at most 5 messages.
    assert!(sent <= 5, "{sent} interrupts");
    w.evil.msix_control(&mut w.nic, true, false);
    w.evil.mask_vector(&mut w.nic, 11, false);
    w.only_evil_interrupts();
    w.check(&b);
}

/// FLR of `f` through its own PCIe Device Control register.
fn flr(nic: &mut Mlx5Nic, f: FunctionId) {
    let at = (layout::PCIE + pcie::DEVCTL) as u16;
    nic.config_write(f, at, &pcie::DEVCTL_INITIATE_FLR.to_le_bytes());
}

#[test]
fn flr_in_the_middle_of_commands_resets_only_that_function() {
    let mut w = world();
    let uar = w.evil_uar;
    w.evil.program_vector(&mut w.nic, 0, MSI_ADDR, 0xE0, true);
    let eq = w.evil.create_eq(&mut w.nic, 2, uar, 0, &[EventType::Cmd]);
    w.evil.eq_doorbell(&mut w.nic, &eq, true);
    let cq = w.evil.create_cq(&mut w.nic, 2, uar, eq.eqn);
    w.evil
        .ok(&mut w.nic, &input(Opcode::AllocPd, 0, 0x10), 0x10);
    assert!(w.nic.post_test_cqe(EVIL, cq.cqn));
    assert_ne!(
        w.nic.msix_pending(EVIL),
        Some(0),
        "a masked interrupt pending"
    );
    let b = w.before();
    let c0 = *w.nic.counters();
    let held = w.evil_state().pages.len() as u64;
    assert!(held > 0);
    // All 32 slots posted; half rung, then the FLR, then the other half.
    let posted: Vec<Posted> = (0..32u8)
        .map(|s| w.evil.post(s, &input(Opcode::QueryIssi, 0, 0x10), 0x70))
        .collect();
    w.evil.ring(&mut w.nic, 0x0000_FFFF);
    flr(&mut w.nic, EVIL);
    w.evil.ring(&mut w.nic, 0xFFFF_0000);
    let c = *w.nic.counters();
    assert_eq!(c.function_resets - c0.function_resets, 1);
    assert_eq!(c.pages_released_on_reset - c0.pages_released_on_reset, held);
    assert_eq!(c.doorbell_no_queue - c0.doorbell_no_queue, 1);
    assert_eq!(w.evil_state(), &FunctionState::new(true));
    assert_eq!(w.nic.cmdq_address(EVIL), None);
    assert_eq!(w.nic.msix_pending(EVIL), Some(0));
    assert_eq!(w.evil_counters(), FunctionCounters::default());
    for p in &posted[..16] {
        assert_eq!(w.evil.complete(p).unwrap().status, CommandStatus::Ok);
    }
    for p in &posted[16..] {
        assert_eq!(w.evil.complete(p), Err(CmdError::NotCompleted));
    }
    // Its old queues are gone: CQEs and doorbells name nothing.
    assert!(!w.nic.post_test_cqe(EVIL, cq.cqn));
    w.evil.eq_doorbell(&mut w.nic, &eq, true);
    w.evil.arm_cq(&mut w.nic, &cq, false);
    let c1 = *w.nic.counters();
    assert_eq!(c1.cqes_no_cq - c0.cqes_no_cq, 1);
    assert_eq!(c1.eq_doorbell_errors - c0.eq_doorbell_errors, 1);
    assert_eq!(c1.cq_doorbell_errors - c0.cq_doorbell_errors, 1);
    assert_eq!(w.only_evil_interrupts(), 0);
    // The queue address again: the stale entries still owned run against the reset state.
    w.evil.set_cmdq(&mut w.nic);
    w.evil.ring(&mut w.nic, 0xFFFF_0000);
    for p in &posted[16..] {
        assert_eq!(
            w.evil.complete(p).unwrap().status,
            CommandStatus::BadSysState
        );
    }
    // An FLR storm from the VF's own config space: each one counted, nothing accumulates.
    let resets = w.nic.counters().function_resets;
    for _ in 0..500 {
        flr(&mut w.nic, EVIL);
    }
    assert_eq!(w.nic.counters().function_resets - resets, 500);
    assert_eq!(w.evil_state(), &FunctionState::new(true));
    w.evil.set_cmdq(&mut w.nic);
    // And the function comes up again from scratch.
    w.evil.bring_up(&mut w.nic);
    assert_eq!(w.evil_state().hca, HcaState::Initialized);
    // A VF's FLR never resets the PF.
    assert_eq!(w.nic.function_state(PF).unwrap().hca, HcaState::Initialized);
    w.check(&b);
}

fn vf_enable(nic: &mut Mlx5Nic, on: bool) {
    let at = (layout::PF_SRIOV + sriov_cap::CONTROL) as u16;
    let v = if on {
        sriov_cap::CONTROL_VF_ENABLE | sriov_cap::CONTROL_VF_MSE
    } else {
        0
    };
    nic.config_write(PF, at, &v.to_le_bytes());
}

#[test]
fn sriov_disable_with_vfs_in_use_resets_them_and_leaves_the_pf_alone() {
    let mut w = world();
    let uar = w.evil_uar;
    w.evil.program_vector(&mut w.nic, 0, MSI_ADDR, 0xE0, false);
    let eq = w.evil.create_eq(&mut w.nic, 2, uar, 0, &[EventType::Cmd]);
    let cq = w.evil.create_cq(&mut w.nic, 2, uar, eq.eqn);
    // Commands posted on both VFs, not yet rung.
    let pe = w.evil.post(3, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    let pg = w.good.post(3, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    let pf_before = seen(&w.nic, PF);
    let pf_mem = memory(&w.pf);
    let held: u64 = [GOOD, EVIL]
        .iter()
        .map(|f| w.nic.function_state(*f).unwrap().pages.len() as u64)
        .sum();
    let c0 = *w.nic.counters();
    vf_enable(&mut w.nic, false);
    assert_eq!(w.nic.num_vfs(), 0);
    let c = *w.nic.counters();
    assert_eq!(c.pages_released_on_reset - c0.pages_released_on_reset, held);
    for f in [GOOD, EVIL, IDLE] {
        assert_eq!(w.nic.function_state(f).unwrap(), &FunctionState::new(true));
        assert_eq!(w.nic.cmdq_address(f), None);
        assert!(!w.nic.function_enabled(f));
    }
    // The VFs are gone: their BAR and config accesses are refused and counted, the host's
    // hooks refuse them, nothing interrupts.
    let c1 = *w.nic.counters();
    w.evil.ring(&mut w.nic, 1 << 3);
    w.good.ring(&mut w.nic, 1 << 3);
    w.evil.eq_doorbell_raw(&mut w.nic, uar, eq.eqn, 0, true);
    let mut id = [0u8; 4];
    w.nic.config_read(EVIL, 0, &mut id);
    assert_eq!(id, [0xFF; 4]);
    assert_eq!(
        w.nic.counters().disabled_function_accesses - c1.disabled_function_accesses,
        4
    );
    assert_eq!(w.nic.counters().doorbells, c1.doorbells);
    assert!(!w.nic.post_test_cqe(EVIL, cq.cqn));
    assert_eq!(
        w.nic.request_pages(EVIL, 1),
        Err(PageRequestError::NotInitialized(EVIL))
    );
    assert!(w.nic.take_interrupts().is_empty());
    assert_eq!(w.evil.complete(&pe), Err(CmdError::NotCompleted));
    assert_eq!(w.good.complete(&pg), Err(CmdError::NotCompleted));
    // The PF is untouched and still works.
    assert_eq!(seen(&w.nic, PF), pf_before);
    assert!(memory(&w.pf) == pf_mem);
    w.pf.ok(&mut w.nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    // VFs again: the good VF comes up from scratch and works.
    vf_enable(&mut w.nic, true);
    assert_eq!(w.nic.num_vfs(), 3);
    // (Its IOMMU is the host's and survived; the driver gives the queue address again.)
    w.good.set_cmdq(&mut w.nic);
    w.good.bring_up(&mut w.nic);
    w.good
        .ok(&mut w.nic, &input(Opcode::AllocPd, 0, 0x10), 0x10);
}

#[test]
fn every_owned_entry_gets_a_status_and_the_counters_add_up() {
    // Mixed good and broken commands in all slots, rung together: each owned entry comes back
    // with a delivery status or a command status, each entry not handed over is left as it
    // was, and commands OK + command errors + delivery errors = the entries owned.
    let mut w = world();
    let b = w.before();
    let c0 = *w.nic.counters();
    let e0 = w.evil_counters();
    let mut posted = Vec::new();
    let mut not_owned = Vec::new();
    for s in 0..32u8 {
        let p = match s % 4 {
            0 => w.evil.post(s, &input(Opcode::QueryIssi, 0, 0x10), 0x70),
            1 => w
                .evil
                .post(s, &input(Opcode::Unknown(0x7777), 0, 0x10), 0x10),
            2 => {
                let p = w.evil.post(s, &set_cap_input(), 0x10);
                edit_block(&w.evil, p.in_blocks[1], |m| m.set_token(0));
                p
            }
            _ => {
                let p = w.evil.post(s, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
                if s % 8 == 7 {
                    edit_entry(&w.evil, &p, |e| e.set_owned_by_hw(false));
                    not_owned.push((s, w.evil.entry(s)));
                }
                p
            }
        };
        posted.push(p);
    }
    w.evil.ring(&mut w.nic, u32::MAX);
    let owned = 32 - not_owned.len() as u64;
    for p in posted.iter().filter(|p| p.slot % 8 != 7) {
        match w.evil.complete(p) {
            Err(CmdError::NotCompleted) => panic!("slot {} got no status", p.slot),
            Err(CmdError::Delivery(s)) => assert_eq!(s, DeliveryStatus::Token),
            Ok(o) => assert!(matches!(o.status, CommandStatus::Ok | CommandStatus::BadOp)),
        }
    }
    for (s, e) in &not_owned {
        assert_eq!(&w.evil.entry(*s), e, "slot {s} not handed over: untouched");
    }
    let c = *w.nic.counters();
    let done = (c.commands_ok - c0.commands_ok)
        + (c.command_errors.total() - c0.command_errors.total())
        + (delivery_total(&c) - delivery_total(&c0));
    assert_eq!(done, owned);
    assert_eq!(
        c.entry_not_owned - c0.entry_not_owned,
        not_owned.len() as u64
    );
    let e = w.evil_counters();
    assert_eq!(
        (e.commands - e0.commands) + (e.delivery_errors - e0.delivery_errors),
        owned
    );
    w.check(&b);
}

#[test]
fn teardown_frees_the_cqs_too() {
    // TEARDOWN_HCA used to free EQs, UARs, PDs and TDs but keep the CQs: CQEs went on being
    // written into the torn-down function's memory (which its driver may have freed), the
    // stale CQs counted against the limit after the next INIT_HCA, and one pointing at a
    // reused EQ number blocked DESTROY_EQ of the new EQ.
    let mut w = world();
    let b = w.before();
    let uar = w.evil_uar;
    let eq = w.evil.create_eq(&mut w.nic, 2, uar, 0, &[]);
    let cq = w.evil.create_cq(&mut w.nic, 2, uar, eq.eqn);
    let cqe_at = cq.cqe_iova(0);
    let mut cqe0 = [0u8; 64];
    w.evil.read(cqe_at, &mut cqe0);
    w.evil
        .ok(&mut w.nic, &input(Opcode::TeardownHca, 0, 0x10), 0x10);
    let s = w.evil_state();
    assert_eq!(s.hca, HcaState::Enabled);
    assert!(s.eqs.is_empty() && s.uars.is_empty());
    assert!(s.cqs.is_empty(), "CQs survived TEARDOWN_HCA");
    // No CQE lands in the torn-down function's memory.
    assert!(!w.nic.post_test_cqe(EVIL, cq.cqn));
    let mut now = [0u8; 64];
    w.evil.read(cqe_at, &mut now);
    assert_eq!(now, cqe0);
    // Initialized again (the pages are still held): the same numbers come back and the new
    // EQ can be destroyed once its own CQ is.
    w.evil
        .ok(&mut w.nic, &input(Opcode::InitHca, 0, 0x20), 0x10);
    let uar = w.evil.alloc_uar(&mut w.nic);
    let eq2 = w.evil.create_eq(&mut w.nic, 2, uar, 0, &[]);
    assert_eq!(eq2.eqn, eq.eqn);
    let mut m = input(Opcode::DestroyEq, 0, 0x10);
    mlx5_model::testing::put_dword(&mut m, 0x08, u32::from(eq2.eqn));
    w.evil.ok(&mut w.nic, &m, 0x10);
    w.check(&b);
}

#[test]
fn the_host_unmapping_a_vfs_memory_under_live_queues_faults_only_that_vf() {
    // The host (or a buggy VMM) pulls the hostile VF's memory while its command queue, EQ,
    // CQ and doorbell record live in it: every later DMA of that VF faults and is counted;
    // nothing panics and nothing else moves.
    let mut w = world();
    let uar = w.evil_uar;
    w.evil.program_vector(&mut w.nic, 0, MSI_ADDR, 0xE0, false);
    let eq = w.evil.create_eq(
        &mut w.nic,
        2,
        uar,
        0,
        &[EventType::Cmd, EventType::PageRequest],
    );
    w.evil.eq_doorbell(&mut w.nic, &eq, true);
    let cq = w.evil.create_cq(&mut w.nic, 2, uar, eq.eqn);
    w.evil.arm_cq(&mut w.nic, &cq, false);
    w.only_evil_interrupts(); // CREATE_CQ's completion EQE fired the armed EQ.
    let b = w.before();
    let c0 = *w.nic.counters();
    w.nic
        .dma_unmap(EVIL, hw_common::Iova(MEM_IOVA))
        .expect("mapped");
    // A CQE: the doorbell record cannot be read or the CQE cannot be written.
    assert!(!w.nic.post_test_cqe(EVIL, cq.cqn));
    assert!(!w.nic.post_test_cqe(EVIL, cq.cqn));
    // A page request: the EQE cannot be written.
    w.nic.request_pages(EVIL, 3).unwrap();
    w.nic.request_pages(EVIL, 3).unwrap();
    // A command: the entry cannot be read; the queue stops.
    w.evil.ring(&mut w.nic, 1);
    w.evil.ring(&mut w.nic, 1);
    let c = *w.nic.counters();
    assert_eq!(c.cq_dma_faults - c0.cq_dma_faults, 1, "the CQ failed once");
    assert_eq!(c.cqes_dropped_failed_cq - c0.cqes_dropped_failed_cq, 1);
    assert_eq!(c.eq_dma_faults - c0.eq_dma_faults, 1, "the EQ failed once");
    assert_eq!(c.eqes_dropped_failed_eq - c0.eqes_dropped_failed_eq, 1);
    assert_eq!(c.cmd_dma_faults - c0.cmd_dma_faults, 1);
    assert_eq!(c.doorbell_queue_stopped - c0.doorbell_queue_stopped, 1);
    assert!(w.nic.cmdq_stopped(EVIL));
    let s = w.evil_state();
    assert!(s.cqs[&cq.cqn].failed && s.eqs[&eq.eqn].failed);
    assert_eq!(w.only_evil_interrupts(), 0);
    w.check(&b);
}

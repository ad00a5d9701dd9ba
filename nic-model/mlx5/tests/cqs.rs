//! Completion queues: CREATE/QUERY/MODIFY/DESTROY_CQ, CQEs with their owner bits across a
//! wrap, the doorbell record's consumer counter, the arm doorbell and its completion EQE and
//! interrupt, overflow and DMA faults, bad CREATE_CQ inputs, and a hostile VF whose CQ
//! traffic changes nothing of the other functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use adapter_core::memory::{DmaTarget, SharedMemory};
use hw_common::Iova;
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::queues::{
    CreateCqIn, ModifyCqIn, QueryCqOut, cq_state, modify_cq_op, modify_cq_select,
};
use mlx5_hw::cqe::{CqeOpcode, owner_bit};
use mlx5_hw::eqe::{EventData, EventType};
use mlx5_model::testing::{
    CmdDriver, CmdError, DriverEq, Output, create_cq_input, device, input, put_dword,
};
use mlx5_model::{FunctionId, Interrupt, Mlx5Nic, syndrome};

const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);
const MSI_ADDR: u64 = 0xFEE0_2000;

/// A device with `vfs` VFs and `f` brought up with a UAR, MSI-X vector 1 programmed and an
/// armed EQ on it that hears of no command (only completion events reach it).
fn up(vfs: u16, f: FunctionId) -> (Mlx5Nic, CmdDriver, u32, DriverEq) {
    let mut nic = device(vfs);
    let mut d = CmdDriver::attach(&mut nic, f);
    d.bring_up(&mut nic);
    let uar = d.alloc_uar(&mut nic);
    d.msix_control(&mut nic, true, false);
    d.program_vector(&mut nic, 1, MSI_ADDR, 0x77, false);
    let eq = d.create_eq(&mut nic, 3, uar, 1, &[]);
    d.eq_doorbell(&mut nic, &eq, true);
    (nic, d, uar, eq)
}

fn query_cq(d: &mut CmdDriver, nic: &mut Mlx5Nic, cqn: u32) -> Output {
    let mut m = input(Opcode::QueryCq, 0, 0x10);
    put_dword(&mut m, 0x08, cqn);
    d.exec(nic, &m, 0x50).unwrap()
}

fn refused(o: Result<Output, CmdError>, status: CommandStatus, synd: u32) {
    let o = o.unwrap();
    assert_eq!((o.status, o.syndrome), (status, synd));
}

fn completions(d: &CmdDriver, eq: &mut DriverEq) -> Vec<u32> {
    d.poll_eq(eq)
        .into_iter()
        .map(|e| {
            assert_eq!(e.event_type, EventType::Completion);
            match e.data {
                EventData::Completion { cqn } => cqn,
                other => panic!("{other:?}"),
            }
        })
        .collect()
}

fn want_interrupt(f: FunctionId) -> Interrupt {
    Interrupt {
        function: f,
        vector: 1,
        address: MSI_ADDR,
        data: 0x77,
    }
}

#[test]
fn a_vf_cq_gets_cqes_with_owner_bits_across_a_wrap() {
    let (mut nic, mut d, uar, eq) = up(2, VF0);
    let mut cq = d.create_cq(&mut nic, 2, uar, eq.eqn);
    assert!(cq.cqn >= mlx5_model::cq::FIRST_CQN);
    for _ in 0..3 {
        assert!(nic.post_test_cqe(VF0, cq.cqn));
    }
    let seen = d.poll_cq(&mut cq);
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|c| !c.owner && c.opcode == CqeOpcode::Req));
    assert_eq!(
        seen.iter().map(|c| c.wqe_counter).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    // Across the wrap: counters 3 (first pass, owner 0) then 4..7 (second pass, owner 1).
    for _ in 0..4 {
        assert!(nic.post_test_cqe(VF0, cq.cqn));
    }
    let seen = d.poll_cq(&mut cq);
    assert_eq!(
        seen.iter().map(|c| c.owner).collect::<Vec<_>>(),
        (3..7).map(|p| owner_bit(p, 2)).collect::<Vec<_>>()
    );
    assert_eq!(
        seen.iter().map(|c| c.owner).collect::<Vec<_>>(),
        [false, true, true, true]
    );
    assert_eq!(nic.counters().cqes_written, 7);
    let q = query_cq(&mut d, &mut nic, cq.cqn);
    assert_eq!(q.status, CommandStatus::Ok);
    let o = QueryCqOut::new_checked(&q.bytes[..]).unwrap();
    let c = o.cq_context();
    assert_eq!(c.log_cq_size(), 2);
    assert_eq!(c.uar_page(), uar);
    assert_eq!(c.c_eqn(), u32::from(eq.eqn));
    assert_eq!(c.producer_counter(), 7);
    assert_eq!(c.dbr_addr(), cq.dbr);
    assert_eq!(c.status(), 0);
    assert_eq!(c.st(), cq_state::FIRED);
    // Nothing armed: no completion event, no interrupt.
    assert_eq!(nic.counters().completion_events, 0);
    assert!(nic.take_interrupts().is_empty());
}

/// mlx5e's drop RQ creates its CQ from a zeroed context: log_cq_size 0, one CQE, whose owner
/// bit flips on every pass.
#[test]
fn a_one_entry_cq_is_accepted_and_flips_its_owner_bit_every_cqe() {
    let (mut nic, mut d, uar, eq) = up(1, VF0);
    let mut cq = d.create_cq(&mut nic, 0, uar, eq.eqn);
    let q = query_cq(&mut d, &mut nic, cq.cqn);
    assert_eq!(q.status, CommandStatus::Ok);
    assert_eq!(
        QueryCqOut::new_checked(&q.bytes[..])
            .unwrap()
            .cq_context()
            .log_cq_size(),
        0
    );
    let mut owners = Vec::new();
    for _ in 0..3 {
        assert!(nic.post_test_cqe(VF0, cq.cqn));
        let seen = d.poll_cq(&mut cq);
        assert_eq!(seen.len(), 1);
        owners.push(seen[0].owner);
    }
    assert_eq!(owners, [false, true, false]);
    assert_eq!(owners, (0..3).map(|p| owner_bit(p, 0)).collect::<Vec<_>>());
    assert_eq!(nic.counters().cqes_written, 3);
}

#[test]
fn an_armed_cq_posts_one_completion_eqe_and_the_eq_interrupts() {
    let (mut nic, mut d, uar, mut eq) = up(1, VF0);
    let mut cq = d.create_cq(&mut nic, 3, uar, eq.eqn);
    // Not armed: a CQE, no event.
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    assert!(completions(&d, &mut eq).is_empty());
    assert!(nic.take_interrupts().is_empty());
    d.poll_cq(&mut cq);
    // Armed with everything consumed: nothing yet; the next CQE posts one EQE and the EQ
    // interrupts; the CQ is disarmed after.
    d.arm_cq(&mut nic, &cq, false);
    let q = query_cq(&mut d, &mut nic, cq.cqn);
    let st = QueryCqOut::new_checked(&q.bytes[..])
        .unwrap()
        .cq_context()
        .st();
    assert_eq!(st, cq_state::ARMED);
    assert!(nic.take_interrupts().is_empty());
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    assert_eq!(nic.take_interrupts(), vec![want_interrupt(VF0)]);
    assert_eq!(completions(&d, &mut eq), vec![cq.cqn]);
    assert_eq!(nic.counters().completion_events, 1);
    // Re-arm the EQ; arming the CQ with CQEs unconsumed posts the event at once.
    d.eq_doorbell(&mut nic, &eq, true);
    cq.sn = cq.sn.wrapping_add(1);
    d.arm_cq(&mut nic, &cq, false);
    assert_eq!(nic.take_interrupts(), vec![want_interrupt(VF0)]);
    assert_eq!(completions(&d, &mut eq), vec![cq.cqn]);
    // The EQ not re-armed: the next completion EQE is written but does not interrupt.
    assert_eq!(d.poll_cq(&mut cq).len(), 2);
    d.arm_cq(&mut nic, &cq, false);
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    assert!(nic.take_interrupts().is_empty());
    assert_eq!(completions(&d, &mut eq), vec![cq.cqn]);
    // Solicited arm: a send CQE (not solicited) posts no event.
    d.poll_cq(&mut cq);
    d.eq_doorbell(&mut nic, &eq, true);
    d.arm_cq(&mut nic, &cq, true);
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    assert!(nic.take_interrupts().is_empty());
    assert_eq!(nic.counters().completion_events, 3);
    // Bad arm doorbells are counted: a consumer counter past the producer, another UAR
    // page, an unknown CQ, a 32-bit half.
    let before = nic.counters().cq_doorbell_errors;
    let mut ahead = cq.clone();
    ahead.consumer += 5;
    d.arm_cq(&mut nic, &ahead, false);
    let mut other_uar = cq.clone();
    other_uar.uar += 1;
    d.arm_cq(&mut nic, &other_uar, false);
    let mut unknown = cq.clone();
    unknown.cqn += 1;
    d.arm_cq(&mut nic, &unknown, false);
    d.cq_arm_raw(&mut nic, uar, &[0, 0, 0, 0]);
    assert_eq!(nic.counters().cq_doorbell_errors, before + 4);
    assert!(nic.take_interrupts().is_empty());
}

#[test]
fn a_full_cq_drops_and_counts_cqes() {
    let (mut nic, mut d, uar, eq) = up(1, VF0);
    let mut cq = d.create_cq(&mut nic, 1, uar, eq.eqn);
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    assert!(!nic.post_test_cqe(VF0, cq.cqn));
    assert_eq!(nic.counters().cq_overflows, 1);
    assert_eq!(nic.function_counters(VF0).unwrap().cq_overflows, 1);
    assert_eq!(nic.function_state(VF0).unwrap().cqs[&cq.cqn].overflows, 1);
    // The driver consumes (doorbell record): room again.
    assert_eq!(d.poll_cq(&mut cq).len(), 2);
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    assert_eq!(d.poll_cq(&mut cq).len(), 1);
    assert_eq!(nic.counters().cqes_written, 3);
}

#[test]
fn bad_create_cq_inputs_are_refused_with_status_syndrome_and_counter() {
    let (mut nic, mut d, uar, eq) = up(1, VF0);
    let (good, _) = d.prepare_cq(2, uar, eq.eqn);
    let edit = |f: &dyn Fn(&mut CreateCqIn<&mut [u8]>)| {
        let mut m = good.clone();
        f(&mut CreateCqIn::new_checked(&mut m[..]).unwrap());
        m
    };
    let cases: Vec<(Vec<u8>, CommandStatus, u32)> = vec![
        (
            edit(&|i| i.cq_context_mut().set_cqe_sz(1)),
            CommandStatus::BadParam,
            syndrome::BAD_CQE_SIZE,
        ),
        (
            edit(&|i| i.cq_context_mut().set_cqe_comp_en(true)),
            CommandStatus::BadParam,
            syndrome::UNSUPPORTED_CQ_FEATURE,
        ),
        (
            edit(&|i| i.cq_context_mut().set_log_cq_size(0x11)),
            CommandStatus::BadParam,
            syndrome::BAD_QUEUE_SIZE,
        ),
        (
            edit(&|i| i.cq_context_mut().set_log_page_size(9)),
            CommandStatus::BadParam,
            syndrome::BAD_QUEUE_SIZE,
        ),
        (
            edit(&|i| i.cq_context_mut().set_uar_page(uar + 7)),
            CommandStatus::BadResource,
            syndrome::NO_SUCH_UAR,
        ),
        (
            edit(&|i| i.cq_context_mut().set_c_eqn(u32::from(eq.eqn) + 1)),
            CommandStatus::BadResource,
            syndrome::NO_SUCH_EQ,
        ),
        (
            edit(&|i| i.cq_context_mut().set_c_eqn(0x1_0000)),
            CommandStatus::BadResource,
            syndrome::NO_SUCH_EQ,
        ),
        (
            edit(&|i| {
                let pa = i.pa(0).unwrap();
                i.set_pa(0, pa + 64);
            }),
            CommandStatus::BadParam,
            syndrome::BAD_PAS,
        ),
        (
            edit(&|i| {
                i.set_pa(0, 0x7000_0000);
            }),
            CommandStatus::BadParam,
            syndrome::CQ_BUFFER_FAULT,
        ),
        (
            edit(&|i| {
                let a = i.cq_context().dbr_addr();
                i.cq_context_mut().set_dbr_addr(a + 4);
            }),
            CommandStatus::BadParam,
            syndrome::BAD_DBR,
        ),
        (
            edit(&|i| i.cq_context_mut().set_dbr_addr(0x7000_0000)),
            CommandStatus::BadParam,
            syndrome::BAD_DBR,
        ),
        (
            // 2^8 CQEs need 4 pages; the list carries 1.
            edit(&|i| i.cq_context_mut().set_log_cq_size(8)),
            CommandStatus::BadInputLength,
            syndrome::PAS_SHORT,
        ),
    ];
    let state = nic.function_state(VF0).unwrap().clone();
    let faults = nic.counters().cq_buffer_faults;
    let errors = nic.counters().command_errors.total();
    for (k, (m, status, synd)) in cases.iter().enumerate() {
        let o = d.exec(&mut nic, m, 0x10);
        refused(o, *status, *synd);
        assert_eq!(nic.function_state(VF0).unwrap(), &state, "case {k}");
    }
    assert_eq!(nic.counters().cq_buffer_faults, faults + 3);
    assert_eq!(
        nic.counters().command_errors.total(),
        errors + cases.len() as u64
    );
    // A short input, an op_mod, and the good one after all of them.
    refused(
        d.exec(&mut nic, &good[..0x20], 0x10),
        CommandStatus::BadInputLength,
        syndrome::INPUT_TOO_SHORT,
    );
    let mut m = good.clone();
    m[6] = 1;
    refused(
        d.exec(&mut nic, &m, 0x10),
        CommandStatus::BadOp,
        syndrome::BAD_OP_MOD,
    );
    d.ok(&mut nic, &good, 0x10);
    // Before INIT_HCA (on another function): BAD_SYS_STATE.
    let mut d1 = CmdDriver::attach(&mut nic, FunctionId::Pf);
    let m = create_cq_input(2, 4, 0x10, 0, &d1.fresh_pages(1), 0);
    let o = d1.exec(&mut nic, &m, 0x10).unwrap();
    assert_eq!(o.status, CommandStatus::BadSysState);
}

#[test]
fn modify_cq_stores_moderation_and_refuses_a_resize() {
    let (mut nic, mut d, uar, eq) = up(1, VF0);
    let cq = d.create_cq(&mut nic, 2, uar, eq.eqn);
    let modify = |op_mod: u16, cqn: u32, select: u32| {
        let mut m = input(Opcode::ModifyCq, op_mod, 0x110);
        let mut i = ModifyCqIn::new_checked(&mut m[..]).unwrap();
        i.set_cqn(cqn);
        i.set_field_select(select);
        i.cq_context_mut().set_cq_period(16);
        i.cq_context_mut().set_cq_max_count(32);
        m
    };
    let m = modify(modify_cq_op::MODIFY, cq.cqn, modify_cq_select::PERIOD);
    d.ok(&mut nic, &m, 0x10);
    let q = query_cq(&mut d, &mut nic, cq.cqn);
    let o = QueryCqOut::new_checked(&q.bytes[..]).unwrap();
    assert_eq!(
        (o.cq_context().cq_period(), o.cq_context().cq_max_count()),
        (16, 0)
    );
    let m = modify(modify_cq_op::MODIFY, cq.cqn, modify_cq_select::COUNT);
    d.ok(&mut nic, &m, 0x10);
    let q = query_cq(&mut d, &mut nic, cq.cqn);
    let o = QueryCqOut::new_checked(&q.bytes[..]).unwrap();
    assert_eq!(
        (o.cq_context().cq_period(), o.cq_context().cq_max_count()),
        (16, 32)
    );
    let m = modify(modify_cq_op::RESIZE, cq.cqn, 0);
    refused(
        d.exec(&mut nic, &m, 0x10),
        CommandStatus::BadOp,
        syndrome::BAD_OP_MOD,
    );
    let m = modify(modify_cq_op::MODIFY, cq.cqn, 1 << 7);
    refused(
        d.exec(&mut nic, &m, 0x10),
        CommandStatus::BadParam,
        syndrome::BAD_FIELD_SELECT,
    );
    let m = modify(modify_cq_op::MODIFY, cq.cqn + 1, 1);
    refused(
        d.exec(&mut nic, &m, 0x10),
        CommandStatus::BadResource,
        syndrome::NO_SUCH_OBJECT,
    );
}

#[test]
fn destroy_cq_stops_its_cqes_and_events() {
    let (mut nic, mut d, uar, mut eq) = up(1, VF0);
    let cq = d.create_cq(&mut nic, 2, uar, eq.eqn);
    d.arm_cq(&mut nic, &cq, false);
    // The EQ is in use by the CQ: DESTROY_EQ refused.
    let mut m = input(Opcode::DestroyEq, 0, 0x10);
    put_dword(&mut m, 0x08, u32::from(eq.eqn));
    refused(
        d.exec(&mut nic, &m, 0x10),
        CommandStatus::BadResource,
        syndrome::EQ_IN_USE,
    );
    let mut m = input(Opcode::DestroyCq, 0, 0x10);
    put_dword(&mut m, 0x08, cq.cqn);
    d.ok(&mut nic, &m, 0x10);
    refused(
        d.exec(&mut nic, &m, 0x10),
        CommandStatus::BadResource,
        syndrome::NO_SUCH_OBJECT,
    );
    refused(
        Ok(query_cq(&mut d, &mut nic, cq.cqn)),
        CommandStatus::BadResource,
        syndrome::NO_SUCH_OBJECT,
    );
    assert!(!nic.post_test_cqe(VF0, cq.cqn));
    assert_eq!(nic.counters().cqes_no_cq, 1);
    assert_eq!(nic.counters().cqes_written, 0);
    let before = nic.counters().cq_doorbell_errors;
    d.arm_cq(&mut nic, &cq, false);
    assert_eq!(nic.counters().cq_doorbell_errors, before + 1);
    assert!(completions(&d, &mut eq).is_empty());
    assert!(nic.take_interrupts().is_empty());
    // Now the EQ may go.
    let mut m = input(Opcode::DestroyEq, 0, 0x10);
    put_dword(&mut m, 0x08, u32::from(eq.eqn));
    d.ok(&mut nic, &m, 0x10);
}

#[test]
fn a_cq_buffer_dma_fault_fails_only_that_cq() {
    let (mut nic, mut d, uar, eq) = up(2, VF0);
    let mem = SharedMemory::new(4096);
    let target: Arc<dyn DmaTarget> = mem.clone();
    let iova = 0x8000_0000u64;
    nic.dma_map(VF0, Iova(iova), 4096, target, 0).unwrap();
    let (_, good_dbr) = d.prepare_cq(1, uar, eq.eqn);
    let m = create_cq_input(2, uar, u32::from(eq.eqn), 0, &[iova], good_dbr.dbr);
    let cqn = d.ok(&mut nic, &m, 0x10).dword(0x08) & 0x00FF_FFFF;
    let mut good = d.create_cq(&mut nic, 2, uar, eq.eqn);
    nic.dma_unmap(VF0, Iova(iova)).unwrap();
    assert!(!nic.post_test_cqe(VF0, cqn));
    assert!(!nic.post_test_cqe(VF0, cqn));
    assert_eq!(nic.counters().cq_dma_faults, 1);
    assert_eq!(nic.function_counters(VF0).unwrap().cq_dma_faults, 1);
    assert_eq!(nic.counters().cqes_dropped_failed_cq, 1);
    let q = query_cq(&mut d, &mut nic, cqn);
    let o = QueryCqOut::new_checked(&q.bytes[..]).unwrap();
    assert_eq!(
        o.cq_context().status(),
        mlx5_model::cq::CQ_STATUS_WRITE_FAILURE
    );
    // The other CQ carries on; another function saw nothing.
    assert!(nic.post_test_cqe(VF0, good.cqn));
    assert_eq!(d.poll_cq(&mut good).len(), 1);
    assert!(!nic.cmdq_stopped(VF0));
    assert_eq!(nic.function_counters(VF1).unwrap(), Default::default());
}

#[test]
fn an_unreadable_doorbell_record_is_counted_and_the_last_counter_seen_stays() {
    let (mut nic, mut d, uar, eq) = up(2, VF0);
    let mem = SharedMemory::new(4096);
    let target: Arc<dyn DmaTarget> = mem.clone();
    let dbr = 0x9000_0000u64;
    nic.dma_map(VF0, Iova(dbr), 4096, target, 0).unwrap();
    let (_, mut cq) = d.prepare_cq(1, uar, eq.eqn);
    let m = create_cq_input(1, uar, u32::from(eq.eqn), 0, &[cq.buffer], dbr);
    cq.cqn = d.ok(&mut nic, &m, 0x10).dword(0x08) & 0x00FF_FFFF;
    cq.dbr = dbr;
    // Two CQEs fill the 2-entry CQ; the driver consumes both but its record is gone.
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    assert!(nic.post_test_cqe(VF0, cq.cqn));
    nic.dma_unmap(VF0, Iova(dbr)).unwrap();
    assert!(
        !nic.post_test_cqe(VF0, cq.cqn),
        "the device still sees consumer 0: full"
    );
    assert_eq!(nic.counters().cq_dbr_read_faults, 1);
    assert_eq!(nic.counters().cq_overflows, 1);
    assert_eq!(nic.counters().cq_dma_faults, 0, "the CQ itself is fine");
    assert_eq!(nic.function_counters(VF1).unwrap(), Default::default());
}

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 16
    }
}

#[test]
fn a_hostile_vfs_cq_traffic_changes_nothing_of_the_other_functions() {
    let mut nic = device(3);
    let mut pf = CmdDriver::attach(&mut nic, FunctionId::Pf);
    pf.bring_up(&mut nic);
    let mut d0 = CmdDriver::attach(&mut nic, VF0);
    d0.bring_up(&mut nic);
    let uar0 = d0.alloc_uar(&mut nic);
    d0.msix_control(&mut nic, true, false);
    d0.program_vector(&mut nic, 1, MSI_ADDR, 0x77, false);
    let mut eq0 = d0.create_eq(&mut nic, 3, uar0, 1, &[]);
    d0.eq_doorbell(&mut nic, &eq0, true);
    let cq0 = d0.create_cq(&mut nic, 2, uar0, eq0.eqn);
    d0.arm_cq(&mut nic, &cq0, false);
    let mut evil = CmdDriver::attach(&mut nic, VF1);
    evil.bring_up(&mut nic);
    let euar = evil.alloc_uar(&mut nic);
    evil.msix_control(&mut nic, true, false);
    let eeq = evil.create_eq(&mut nic, 2, euar, 0, &[]);
    let watch = [FunctionId::Pf, VF0, FunctionId::Vf(2)];
    let snapshot = |nic: &Mlx5Nic| -> Vec<_> {
        watch
            .iter()
            .map(|f| {
                (
                    nic.function_state(*f).unwrap().clone(),
                    nic.function_counters(*f).unwrap(),
                    nic.msix_pending(*f),
                )
            })
            .collect()
    };
    let before = snapshot(&nic);
    let mut rng = Lcg(0xC0);
    let mut cqs: Vec<u32> = vec![cq0.cqn];
    for round in 0..300 {
        match rng.next() % 6 {
            0 => {
                let pas: Vec<u64> = (0..(rng.next() % 3))
                    .map(|_| match rng.next() % 3 {
                        0 => evil.fresh_pages(1)[0],
                        1 => rng.next() << 12,
                        _ => rng.next(),
                    })
                    .collect();
                let dbr = if rng.next().is_multiple_of(2) {
                    evil.fresh_pages(1)[0]
                } else {
                    rng.next()
                };
                let eqn = if rng.next().is_multiple_of(2) {
                    u32::from(eeq.eqn)
                } else {
                    rng.next() as u32 % 0x20
                };
                let m = create_cq_input((rng.next() % 20) as u8, euar, eqn, 0, &pas, dbr);
                if let Ok(o) = evil.exec(&mut nic, &m, 0x10)
                    && o.status == CommandStatus::Ok
                {
                    cqs.push(o.dword(0x08) & 0x00FF_FFFF);
                }
            }
            1 => {
                // A good CQ (while the VF's EQ lives), armed.
                let (m, mut cq) = evil.prepare_cq((1 + rng.next() % 3) as u8, euar, eeq.eqn);
                if let Ok(o) = evil.exec(&mut nic, &m, 0x10)
                    && o.status == CommandStatus::Ok
                {
                    cq.cqn = o.dword(0x08) & 0x00FF_FFFF;
                    cqs.push(cq.cqn);
                    evil.arm_cq(&mut nic, &cq, rng.next().is_multiple_of(2));
                }
            }
            2 => {
                // Arm doorbells with any CQN (VF0's included) and counter, on any UAR page.
                let uar = if rng.next().is_multiple_of(2) {
                    euar
                } else {
                    (rng.next() % 512) as u32
                };
                let cqn = cqs[(rng.next() as usize) % cqs.len()];
                let mut db = (rng.next() as u32 & 0x31FF_FFFF).to_be_bytes().to_vec();
                db.extend_from_slice(&cqn.to_be_bytes());
                evil.cq_arm_raw(&mut nic, uar, &db);
            }
            3 => {
                let cqn = cqs[(rng.next() as usize) % cqs.len()];
                let _ = nic.post_test_cqe(VF1, cqn);
            }
            4 => {
                let op = [0x400u16, 0x401, 0x402, 0x403][(rng.next() % 4) as usize];
                let mut m = input(Opcode::from(op), 0, 0x110);
                put_dword(&mut m, 0x08, cqs[(rng.next() as usize) % cqs.len()]);
                put_dword(&mut m, 0x0C, rng.next() as u32 % 4);
                let _ = evil.exec(&mut nic, &m, 0x50);
            }
            _ if round > 250 => {
                // DESTROY_EQ (refused while a CQ uses it) late in the run.
                let mut m = input(Opcode::DestroyEq, 0, 0x10);
                put_dword(&mut m, 0x08, u32::from(eeq.eqn));
                let _ = evil.exec(&mut nic, &m, 0x10);
            }
            _ => {}
        }
        assert!(
            nic.take_interrupts().iter().all(|i| i.function == VF1),
            "only the hostile VF interrupts"
        );
    }
    assert_eq!(snapshot(&nic), before, "other functions unchanged");
    assert!(
        nic.counters().cqes_written > 0,
        "the hostile VF had working CQs too"
    );
    // VF0's CQ still works: one CQE, one completion EQE, its interrupt.
    assert!(nic.post_test_cqe(VF0, cq0.cqn));
    assert_eq!(completions(&d0, &mut eq0), vec![cq0.cqn]);
    assert_eq!(nic.take_interrupts(), vec![want_interrupt(VF0)]);
}

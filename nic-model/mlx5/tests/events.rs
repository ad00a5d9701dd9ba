//! Event queues and MSI-X: CREATE/QUERY/DESTROY_EQ, command-completion EQEs in event mode
//! with their slot and owner bits, the EQ doorbell and arming, masked vectors and the PBA,
//! EQ overflow and DMA faults, page-request events, bad CREATE_EQ inputs, and a hostile VF
//! whose EQ traffic changes nothing of the other functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use adapter_core::memory::{DmaTarget, SharedMemory};
use hw_common::Iova;
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::queues::{CreateEqIn, QueryEqOut, eq_state};
use mlx5_hw::eqe::{EventData, EventType};
use mlx5_model::testing::{
    CmdDriver, CmdError, DriverEq, Output, create_eq_input, device, input, put_dword,
};
use mlx5_model::{FunctionId, Interrupt, Mlx5Nic, PageRequestError, syndrome};

const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);
const MSI_ADDR: u64 = 0xFEE0_1000;

/// A device with `vfs` VFs and `f` brought up to INIT_HCA with a UAR.
fn up(vfs: u16, f: FunctionId) -> (Mlx5Nic, CmdDriver, u32) {
    let mut nic = device(vfs);
    let mut d = CmdDriver::attach(&mut nic, f);
    d.bring_up(&mut nic);
    let uar = d.alloc_uar(&mut nic);
    (nic, d, uar)
}

fn nop(d: &mut CmdDriver, nic: &mut Mlx5Nic) {
    d.ok(nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
}

fn cmd_vector(e: &mlx5_hw::eqe::EqeRepr) -> u32 {
    assert_eq!(e.event_type, EventType::Cmd);
    match e.data {
        EventData::Cmd { vector } => vector,
        other => panic!("{other:?}"),
    }
}

fn query_eq(d: &mut CmdDriver, nic: &mut Mlx5Nic, eqn: u8) -> Output {
    let mut m = input(Opcode::QueryEq, 0, 0x10);
    put_dword(&mut m, 0x08, u32::from(eqn));
    d.exec(nic, &m, 0x50).unwrap()
}

fn refused(o: Result<Output, CmdError>, status: CommandStatus, synd: u32) {
    let o = o.unwrap();
    assert_eq!((o.status, o.syndrome), (status, synd));
}

#[test]
fn command_completions_write_eqes_with_slot_bits_and_owner_bits_across_a_wrap() {
    let (mut nic, mut d, uar) = up(2, VF0);
    // Polled mode: no EQ, no EQE.
    nop(&mut d, &mut nic);
    assert_eq!(nic.counters().eqes_written, 0);
    let mut eq = d.create_eq(&mut nic, 2, uar, 0, &[EventType::Cmd]);
    assert_eq!(eq.eqn, mlx5_model::eq::FIRST_EQN);
    // CREATE_EQ's own completion is not an event (the EQ did not exist when it ran).
    assert!(d.poll_eq(&mut eq).is_empty());
    // Two commands in slots 1 and 4, one doorbell: one EQE per command, its slot's bit.
    let p1 = d.post(1, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    let p4 = d.post(4, &input(Opcode::AllocPd, 0, 0x10), 0x10);
    d.ring(&mut nic, (1 << 1) | (1 << 4));
    assert_eq!(d.complete(&p1).unwrap().status, CommandStatus::Ok);
    assert_eq!(d.complete(&p4).unwrap().status, CommandStatus::Ok);
    let seen = d.poll_eq(&mut eq);
    let vectors: Vec<u32> = seen.iter().map(cmd_vector).collect();
    assert_eq!(vectors, vec![1 << 1, 1 << 4]);
    assert!(seen.iter().all(|e| !e.owner), "first pass: owner 0");
    d.eq_doorbell(&mut nic, &eq, false);
    // Across the wrap of a 4-entry ring: the owner bit follows the pass.
    for k in 2..11u32 {
        nop(&mut d, &mut nic);
        let seen = d.poll_eq(&mut eq);
        assert_eq!(seen.len(), 1, "command {k}");
        assert_eq!(cmd_vector(&seen[0]), 1);
        assert_eq!(seen[0].owner, (k >> 2) & 1 == 1, "owner of EQE {k}");
        d.eq_doorbell(&mut nic, &eq, false);
    }
    assert_eq!(nic.counters().eqes_written, 11);
    // Polling keeps working: the entries were completed as before.
    assert_eq!(nic.counters().eq_overflows, 0);
    // QUERY_EQ reports the counters and the context.
    let q = query_eq(&mut d, &mut nic, eq.eqn);
    assert_eq!(q.status, CommandStatus::Ok);
    let c = QueryEqOut::new_checked(&q.bytes[..]).unwrap();
    let c = c.eq_context();
    assert_eq!(
        (c.log_eq_size(), c.uar_page(), c.intr(), c.status()),
        (2, uar, 0, 0)
    );
    assert_eq!((c.consumer_counter(), c.producer_counter()), (11, 11));
    assert_eq!(c.st(), eq_state::FIRED, "never armed");
}

#[test]
fn the_page_slot_and_delivery_errors_complete_by_eqe_too() {
    let (mut nic, mut d, uar) = up(1, VF0);
    let mut eq = d.create_eq(&mut nic, 3, uar, 0, &[EventType::Cmd]);
    // Linux's page slot is the last one.
    let p = d.post(31, &input(Opcode::QueryPages, 3, 0x10), 0x10);
    d.ring(&mut nic, 1 << 31);
    assert_eq!(d.complete(&p).unwrap().status, CommandStatus::Ok);
    // A delivery error (entry type not PCIe) returns ownership: also an EQE.
    let p = d.post(2, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    let mut e = d.entry(2);
    e[0] = 0;
    d.write(p.entry, &e);
    d.ring(&mut nic, 1 << 2);
    assert!(matches!(d.complete(&p), Err(CmdError::Delivery(_))));
    let vectors: Vec<u32> = d.poll_eq(&mut eq).iter().map(cmd_vector).collect();
    assert_eq!(vectors, vec![1 << 31, 1 << 2]);
    // An entry not handed to the device completes nothing.
    d.ring(&mut nic, 1 << 5);
    assert!(d.poll_eq(&mut eq).is_empty());
}

#[test]
fn an_armed_eq_interrupts_once_until_re_armed() {
    let (mut nic, mut d, uar) = up(1, VF0);
    d.msix_control(&mut nic, true, false);
    d.program_vector(&mut nic, 3, MSI_ADDR, 0x4023, false);
    let mut eq = d.create_eq(&mut nic, 3, uar, 3, &[EventType::Cmd]);
    // Not armed yet: EQEs but no interrupt.
    nop(&mut d, &mut nic);
    assert_eq!(d.poll_eq(&mut eq).len(), 1);
    assert!(nic.take_interrupts().is_empty());
    // Arm with everything consumed: the next EQE fires, once.
    d.eq_doorbell(&mut nic, &eq, true);
    assert!(nic.take_interrupts().is_empty());
    nop(&mut d, &mut nic);
    nop(&mut d, &mut nic);
    let want = Interrupt {
        function: VF0,
        vector: 3,
        address: MSI_ADDR,
        data: 0x4023,
    };
    assert_eq!(nic.take_interrupts(), vec![want]);
    // Update without arming: nothing; arming with EQEs outstanding fires at once.
    d.poll_eq(&mut eq);
    eq.consumer -= 1;
    d.eq_doorbell(&mut nic, &eq, false);
    assert!(nic.take_interrupts().is_empty());
    d.eq_doorbell(&mut nic, &eq, true);
    assert_eq!(nic.take_interrupts(), vec![want]);
    // A consumer counter beyond the producer is refused and counted.
    let before = nic.counters().eq_doorbell_errors;
    d.eq_doorbell_raw(&mut nic, uar, eq.eqn, eq.consumer + 5, true);
    d.eq_doorbell_raw(&mut nic, uar + 1, eq.eqn, eq.consumer, true);
    d.eq_doorbell_raw(&mut nic, uar, eq.eqn + 1, eq.consumer, true);
    assert_eq!(nic.counters().eq_doorbell_errors, before + 3);
    assert_eq!(nic.counters().interrupts_sent, 2);
}

#[test]
fn eq_state_at_creation_and_page_offset() {
    let (mut nic, mut d, uar) = up(1, VF0);
    d.msix_control(&mut nic, true, false);
    d.program_vector(&mut nic, 0, MSI_ADDR, 9, false);
    // Always armed, EQEs from 2 × 64 bytes into the page.
    let page = d.fresh_pages(1)[0];
    let mut m = create_eq_input(2, uar, 0, 0, &[page], &[EventType::Cmd]);
    {
        let mut i = CreateEqIn::new_checked(&mut m[..]).unwrap();
        let mut c = i.eq_context_mut();
        c.set_st(eq_state::ALWAYS_ARMED);
        c.set_page_offset(2);
    }
    let eqn = d.ok(&mut nic, &m, 0x10).dword(0x08) as u8;
    let mut eq = DriverEq {
        eqn,
        log_size: 2,
        uar,
        buffer: page + 2 * 64,
        consumer: 0,
    };
    for k in 0..4u32 {
        let mut eqe = [0u8; 64];
        eqe[63] = 1;
        d.write(eq.eqe_iova(k), &eqe);
    }
    nop(&mut d, &mut nic);
    nop(&mut d, &mut nic);
    assert_eq!(d.poll_eq(&mut eq).len(), 2);
    assert_eq!(nic.take_interrupts().len(), 2, "every EQE fires");
    let q = query_eq(&mut d, &mut nic, eqn);
    let c = QueryEqOut::new_checked(&q.bytes[..]).unwrap();
    assert_eq!(
        (c.eq_context().st(), c.eq_context().page_offset()),
        (eq_state::ALWAYS_ARMED, 2)
    );
    // Armed at creation.
    let page = d.fresh_pages(1)[0];
    let mut m = create_eq_input(2, uar, 0, 0, &[page], &[EventType::Cmd]);
    CreateEqIn::new_checked(&mut m[..])
        .unwrap()
        .eq_context_mut()
        .set_st(eq_state::ARMED);
    let eqn = d.ok(&mut nic, &m, 0x10).dword(0x08) as u8;
    // QUERY_EQ answers before its own completion EQE is written.
    let q = query_eq(&mut d, &mut nic, eqn);
    let c = QueryEqOut::new_checked(&q.bytes[..]).unwrap();
    assert_eq!(c.eq_context().st(), eq_state::ARMED);
    assert_eq!(c.eq_context().producer_counter(), 0);
    let q = query_eq(&mut d, &mut nic, eqn);
    let c = QueryEqOut::new_checked(&q.bytes[..]).unwrap();
    assert_eq!(
        c.eq_context().st(),
        eq_state::FIRED,
        "the first EQE fired it"
    );
    assert_eq!(c.eq_context().producer_counter(), 1);
}

#[test]
fn a_masked_vector_sets_the_pba_and_fires_on_unmask() {
    let (mut nic, mut d, uar) = up(1, VF0);
    let eq = d.create_eq(&mut nic, 3, uar, 1, &[EventType::Cmd]);
    d.program_vector(&mut nic, 1, MSI_ADDR, 0x51, true);
    // MSI-X disabled: the interrupt cannot be sent, counted.
    d.eq_doorbell(&mut nic, &eq, true);
    nop(&mut d, &mut nic);
    assert_eq!(nic.counters().interrupts_dropped, 1);
    assert!(nic.take_interrupts().is_empty());
    // Enabled, vector masked: pending.
    d.msix_control(&mut nic, true, false);
    let mut eq = eq;
    d.poll_eq(&mut eq);
    d.eq_doorbell(&mut nic, &eq, true);
    nop(&mut d, &mut nic);
    assert!(nic.take_interrupts().is_empty());
    assert_eq!(d.read_pba(&mut nic), 1 << 1);
    assert_eq!(nic.msix_pending(VF0), Some(1 << 1));
    assert_eq!(nic.counters().interrupts_pending, 1);
    // Function mask on, vector unmasked: still pending.
    d.msix_control(&mut nic, true, true);
    d.mask_vector(&mut nic, 1, false);
    assert!(nic.take_interrupts().is_empty());
    assert_eq!(d.read_pba(&mut nic), 1 << 1);
    // Function mask off: sent, PBA clear.
    d.msix_control(&mut nic, true, false);
    let sent = nic.take_interrupts();
    assert_eq!(
        sent,
        vec![Interrupt {
            function: VF0,
            vector: 1,
            address: MSI_ADDR,
            data: 0x51
        }]
    );
    assert_eq!(d.read_pba(&mut nic), 0);
    // The PBA is read-only.
    nic.bar_write(VF0, 0, 0x3000, &[0xFF; 8]);
    assert_eq!(d.read_pba(&mut nic), 0);
}

#[test]
fn a_full_eq_drops_and_counts_events() {
    let (mut nic, mut d, uar) = up(1, VF0);
    let mut eq = d.create_eq(&mut nic, 1, uar, 0, &[EventType::Cmd]);
    for _ in 0..5 {
        nop(&mut d, &mut nic);
    }
    assert_eq!(nic.counters().eqes_written, 2);
    assert_eq!(nic.counters().eq_overflows, 3);
    assert_eq!(nic.function_counters(VF0).unwrap().eq_overflows, 3);
    assert_eq!(nic.function_state(VF0).unwrap().eqs[&eq.eqn].overflows, 3);
    // Consuming makes room again.
    assert_eq!(d.poll_eq(&mut eq).len(), 2);
    d.eq_doorbell(&mut nic, &eq, false);
    nop(&mut d, &mut nic);
    assert_eq!(d.poll_eq(&mut eq).len(), 1);
    assert_eq!(nic.counters().eq_overflows, 3);
}

#[test]
fn bad_create_eq_inputs_are_refused_with_status_syndrome_and_counter() {
    let mut nic = device(1);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    let page = d.fresh_pages(1);
    // Before INIT_HCA.
    d.ok(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    let m = create_eq_input(2, 4, 0, 0, &page, &[EventType::Cmd]);
    refused(
        d.exec(&mut nic, &m, 0x10),
        CommandStatus::BadSysState,
        syndrome::NOT_INITIALIZED,
    );
    d.ok(&mut nic, &input(Opcode::DisableHca, 0, 0x10), 0x0C);
    d.bring_up(&mut nic);
    let uar = d.alloc_uar(&mut nic);
    let page = d.fresh_pages(2);
    let before = nic.function_state(VF0).unwrap().clone();
    let errors = nic.counters().command_errors;
    let cases: Vec<(Vec<u8>, CommandStatus, u32)> = vec![
        (
            create_eq_input(0, uar, 0, 0, &page, &[]),
            CommandStatus::BadParam,
            syndrome::BAD_QUEUE_SIZE,
        ),
        (
            create_eq_input(0x13, uar, 0, 0, &page, &[]),
            CommandStatus::BadParam,
            syndrome::BAD_QUEUE_SIZE,
        ),
        (
            create_eq_input(2, uar, 0, 9, &page, &[]),
            CommandStatus::BadParam,
            syndrome::BAD_QUEUE_SIZE,
        ),
        (
            create_eq_input(2, uar + 1, 0, 0, &page, &[]),
            CommandStatus::BadResource,
            syndrome::NO_SUCH_UAR,
        ),
        (
            create_eq_input(2, uar, 12, 0, &page, &[]),
            CommandStatus::BadParam,
            syndrome::BAD_VECTOR,
        ),
        (
            create_eq_input(2, uar, 0, 0, &[page[0] + 0x40], &[]),
            CommandStatus::BadParam,
            syndrome::BAD_PAS,
        ),
        (
            // 128 EQEs are two pages; one is listed.
            create_eq_input(7, uar, 0, 0, &page[..1], &[]),
            CommandStatus::BadInputLength,
            syndrome::PAS_SHORT,
        ),
        (
            create_eq_input(2, uar, 0, 0, &[0x7000_0000], &[]),
            CommandStatus::BadParam,
            syndrome::EQ_BUFFER_FAULT,
        ),
        (
            input(Opcode::CreateEq, 0, 0x100),
            CommandStatus::BadInputLength,
            syndrome::INPUT_TOO_SHORT,
        ),
        (
            input(Opcode::CreateEq, 1, 0x118),
            CommandStatus::BadOp,
            syndrome::BAD_OP_MOD,
        ),
    ];
    let n = cases.len() as u64;
    for (m, status, synd) in cases {
        refused(d.exec(&mut nic, &m, 0x10), status, synd);
    }
    assert_eq!(nic.function_state(VF0).unwrap(), &before, "nothing created");
    let now = nic.counters().command_errors;
    assert_eq!(now.total() - errors.total(), n);
    assert_eq!(now.bad_param - errors.bad_param, 6);
    assert_eq!(now.bad_resource - errors.bad_resource, 1);
    assert_eq!(now.bad_input_length - errors.bad_input_length, 2);
    assert_eq!(nic.counters().eq_buffer_faults, 1);
    // DESTROY_EQ and QUERY_EQ of an EQ that does not exist.
    let mut m = input(Opcode::DestroyEq, 0, 0x10);
    put_dword(&mut m, 0x08, 5);
    // (EQ numbers start at 0x10.)
    refused(
        d.exec(&mut nic, &m, 0x10),
        CommandStatus::BadResource,
        syndrome::NO_SUCH_OBJECT,
    );
    let o = query_eq(&mut d, &mut nic, 5);
    assert_eq!(
        (o.status, o.syndrome),
        (CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT)
    );
    // Out of EQs: max_num_eqs of the general capabilities (16).
    for _ in 0..16 {
        d.create_eq(&mut nic, 1, uar, 0, &[]);
    }
    let (o, _) = d.try_create_eq(&mut nic, 1, uar, 0, &[]);
    refused(o, CommandStatus::NoResources, syndrome::NO_OBJECTS);
}

#[test]
fn destroy_eq_stops_its_events() {
    let (mut nic, mut d, uar) = up(1, VF0);
    let mut eq = d.create_eq(&mut nic, 3, uar, 0, &[EventType::Cmd]);
    nop(&mut d, &mut nic);
    assert_eq!(d.poll_eq(&mut eq).len(), 1);
    let mut m = input(Opcode::DestroyEq, 0, 0x10);
    put_dword(&mut m, 0x08, u32::from(eq.eqn));
    // DESTROY_EQ's own completion: the EQ existed when it ran, and is gone afterwards.
    d.ok(&mut nic, &m, 0x10);
    let written = nic.counters().eqes_written;
    for _ in 0..3 {
        nop(&mut d, &mut nic);
    }
    assert_eq!(nic.counters().eqes_written, written);
    assert!(d.poll_eq(&mut eq).is_empty());
    assert!(nic.function_state(VF0).unwrap().eqs.is_empty());
    // A doorbell for it is refused.
    let before = nic.counters().eq_doorbell_errors;
    d.eq_doorbell(&mut nic, &eq, true);
    assert_eq!(nic.counters().eq_doorbell_errors, before + 1);
}

#[test]
fn an_eq_buffer_dma_fault_stops_only_that_eq() {
    let (mut nic, mut d, uar) = up(2, VF0);
    // The EQ's buffer in its own mapping, which the host then removes.
    let mem = SharedMemory::new(4096);
    let target: Arc<dyn DmaTarget> = mem.clone();
    let iova = 0x8000_0000u64;
    nic.dma_map(VF0, Iova(iova), 4096, target, 0).unwrap();
    let m = create_eq_input(2, uar, 0, 0, &[iova], &[EventType::Cmd]);
    let o = d.ok(&mut nic, &m, 0x10);
    let eqn = o.dword(0x08) as u8;
    let mut good = d.create_eq(&mut nic, 3, uar, 0, &[EventType::Cmd]);
    nic.dma_unmap(VF0, Iova(iova)).unwrap();
    nop(&mut d, &mut nic);
    nop(&mut d, &mut nic);
    assert_eq!(nic.counters().eq_dma_faults, 1);
    assert_eq!(nic.function_counters(VF0).unwrap().eq_dma_faults, 1);
    assert_eq!(nic.counters().eqes_dropped_failed_eq, 1);
    // The other EQ and the command queue carry on.
    assert_eq!(d.poll_eq(&mut good).len(), 2);
    assert!(!nic.cmdq_stopped(VF0));
    let q = query_eq(&mut d, &mut nic, eqn);
    let c = QueryEqOut::new_checked(&q.bytes[..]).unwrap();
    assert_eq!(
        c.eq_context().status(),
        mlx5_model::eq::EQ_STATUS_WRITE_FAILURE
    );
    // Another function saw nothing.
    assert_eq!(nic.function_counters(VF1).unwrap(), Default::default());
}

#[test]
fn page_requests_post_an_eqe_and_query_pages_reports_the_debt() {
    let (mut nic, mut d, uar) = up(1, VF0);
    let mut eq = d.create_eq(&mut nic, 3, uar, 0, &[EventType::PageRequest]);
    nic.request_pages(VF0, 3).unwrap();
    let seen = d.poll_eq(&mut eq);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].event_type, EventType::PageRequest);
    assert_eq!(
        seen[0].data,
        EventData::PageRequest {
            flags: 0,
            func_id: 0,
            num_pages: 3
        }
    );
    // The command EQE is not subscribed here: commands post nothing to this EQ.
    assert_eq!(d.query_pages(&mut nic, 3), 3);
    assert!(d.poll_eq(&mut eq).is_empty());
    let pages = d.fresh_pages(3);
    assert_eq!(
        d.give_pages(&mut nic, &pages).unwrap().status,
        CommandStatus::Ok
    );
    assert_eq!(d.query_pages(&mut nic, 3), 0);
    assert_eq!(nic.counters().page_requests, 1);
    // Not for a function that is not initialized.
    assert_eq!(
        nic.request_pages(VF1, 1),
        Err(PageRequestError::NotInitialized(VF1))
    );
    assert_eq!(nic.request_pages(VF0, 0), Err(PageRequestError::NoPages));
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
fn a_hostile_vfs_eq_traffic_changes_nothing_of_the_other_functions() {
    let mut nic = device(3);
    let mut pf = CmdDriver::attach(&mut nic, FunctionId::Pf);
    let mut d0 = CmdDriver::attach(&mut nic, VF0);
    pf.bring_up(&mut nic);
    d0.bring_up(&mut nic);
    let uar0 = d0.alloc_uar(&mut nic);
    d0.msix_control(&mut nic, true, false);
    d0.program_vector(&mut nic, 2, MSI_ADDR, 7, false);
    let mut eq0 = d0.create_eq(&mut nic, 3, uar0, 2, &[EventType::Cmd]);
    d0.eq_doorbell(&mut nic, &eq0, true);
    let mut evil = CmdDriver::attach(&mut nic, VF1);
    evil.bring_up(&mut nic);
    let euar = evil.alloc_uar(&mut nic);
    evil.msix_control(&mut nic, true, false);
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
    let mut rng = Lcg(0xE0);
    for _ in 0..300 {
        match rng.next() % 7 {
            0 => {
                // EQs of any size, vector, page list (often unmapped or misaligned).
                let pas: Vec<u64> = (0..(rng.next() % 3))
                    .map(|_| match rng.next() % 3 {
                        0 => evil.fresh_pages(1)[0],
                        1 => rng.next() << 12,
                        _ => rng.next(),
                    })
                    .collect();
                let m = create_eq_input(
                    (rng.next() % 24) as u8,
                    if rng.next().is_multiple_of(4) {
                        rng.next() as u32
                    } else {
                        euar
                    },
                    (rng.next() % 16) as u16,
                    (rng.next() % 10) as u8,
                    &pas,
                    &[EventType::Cmd, EventType::PageRequest],
                );
                let _ = evil.exec(&mut nic, &m, 0x10);
            }
            1 => {
                let _ = evil.try_create_eq(
                    &mut nic,
                    (1 + rng.next() % 3) as u8,
                    euar,
                    (rng.next() % 12) as u16,
                    &[EventType::Cmd],
                );
            }
            2 => {
                // Doorbells with any EQ number and counter, on any UAR page.
                let uar = if rng.next().is_multiple_of(2) {
                    euar
                } else {
                    (rng.next() % 512) as u32
                };
                evil.eq_doorbell_raw(
                    &mut nic,
                    uar,
                    rng.next() as u8,
                    rng.next() as u32,
                    rng.next().is_multiple_of(2),
                );
            }
            3 => {
                let op = [0x301u16, 0x302, 0x303][(rng.next() % 3) as usize];
                let mut m = input(Opcode::from(op), 0, 0x10);
                put_dword(&mut m, 0x08, (rng.next() % 20) as u32);
                let _ = evil.exec(&mut nic, &m, 0x50);
            }
            4 => {
                // The MSI-X table and PBA, any value.
                let at = (0x2000 + (rng.next() % 0x1010)) & !3;
                nic.bar_write(VF1, 0, at, &(rng.next() as u32).to_le_bytes());
            }
            5 => {
                let _ = nic.request_pages(VF1, (rng.next() % 8) as u32);
            }
            _ => evil.msix_control(
                &mut nic,
                rng.next().is_multiple_of(2),
                rng.next().is_multiple_of(2),
            ),
        }
        assert!(
            nic.take_interrupts().iter().all(|i| i.function == VF1),
            "only the hostile VF interrupts"
        );
    }
    assert_eq!(snapshot(&nic), before, "other functions unchanged");
    assert!(nic.function_counters(VF1).unwrap().command_errors > 0);
    assert!(
        nic.counters().eqes_written > 0,
        "the hostile VF had working EQs too"
    );
    // VF0's EQ still works: one command, one EQE, its interrupt.
    nop(&mut d0, &mut nic);
    assert_eq!(d0.poll_eq(&mut eq0).len(), 1);
    assert_eq!(
        nic.take_interrupts(),
        vec![Interrupt {
            function: VF0,
            vector: 2,
            address: MSI_ADDR,
            data: 7
        }]
    );
}

#[test]
fn an_eq_of_the_pf_sees_only_the_pfs_commands() {
    let mut nic = device(1);
    let mut pf = CmdDriver::attach(&mut nic, FunctionId::Pf);
    let mut d0 = CmdDriver::attach(&mut nic, VF0);
    pf.bring_up(&mut nic);
    d0.bring_up(&mut nic);
    let uar = pf.alloc_uar(&mut nic);
    let mut eq: DriverEq = pf.create_eq(&mut nic, 2, uar, 0, &[EventType::Cmd]);
    nop(&mut d0, &mut nic);
    assert!(pf.poll_eq(&mut eq).is_empty());
    nop(&mut pf, &mut nic);
    assert_eq!(pf.poll_eq(&mut eq).len(), 1);
}

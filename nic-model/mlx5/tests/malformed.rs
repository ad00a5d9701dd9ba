//! Every malformed command and access, each with its status or delivery status and its
//! counter; DMA faults that stop only the faulting function's queue; a hostile VF that
//! changes nothing of the other functions.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use adapter_core::SimTime;
use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::cmd::{CommandStatus, DeliveryStatus, MailboxBlock, Opcode};
use mlx5_model::syndrome;
use mlx5_model::testing::{CmdDriver, CmdError, Output, device, host_endianness, input, put_dword};
use mlx5_model::{FunctionId, HcaState, Mlx5Config, Mlx5Nic};

const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);

fn enabled(num_vfs: u16, f: FunctionId) -> (Mlx5Nic, CmdDriver) {
    let mut nic = device(num_vfs);
    let mut d = CmdDriver::attach(&mut nic, f);
    d.ok(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    (nic, d)
}

fn refused(o: Result<Output, CmdError>, status: CommandStatus, synd: u32) {
    let o = o.unwrap();
    assert_eq!((o.status, o.syndrome), (status, synd));
    assert!(
        o.bytes[8..].iter().all(|&b| b == 0),
        "nothing but the header"
    );
}

#[test]
fn unknown_and_unimplemented_opcodes_are_bad_op() {
    let (mut nic, mut d) = enabled(1, VF0);
    let o = d.exec(&mut nic, &input(Opcode::Unknown(0x0FFF), 0, 0x10), 0x10);
    refused(o, CommandStatus::BadOp, syndrome::BAD_OPCODE);
    // Commands the model does not implement are refused the same way (VHCA migration).
    let o = d.exec(&mut nic, &input(Opcode::SuspendVhca, 0, 0x10), 0x10);
    refused(o, CommandStatus::BadOp, syndrome::BAD_OPCODE);
    assert_eq!(nic.counters().command_errors.bad_op, 2);
}

#[test]
fn op_mods_a_command_does_not_have_are_bad_op() {
    let (mut nic, mut d) = enabled(1, VF0);
    let o = d.exec(&mut nic, &input(Opcode::QueryPages, 7, 0x10), 0x10);
    refused(o, CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    let o = d.exec(&mut nic, &input(Opcode::ManagePages, 9, 0x10), 0x10);
    refused(o, CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    let o = d.exec(&mut nic, &input(Opcode::QueryIssi, 1, 0x10), 0x70);
    refused(o, CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    // SET_HCA_CAP with bit 0 set (a "max" page cannot be set).
    let page = d.query_cap(&mut nic, 1);
    let o = d.set_cap(&mut nic, 1, &page);
    refused(o, CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    assert_eq!(nic.counters().command_errors.bad_op, 4);
}

#[test]
fn short_input_and_output_are_length_errors() {
    let (mut nic, mut d) = enabled(1, VF0);
    // INIT_HCA is 0x20 bytes of input; QUERY_ISSI answers 0x70.
    let o = d.exec(&mut nic, &input(Opcode::InitHca, 0, 0x10), 0x10);
    refused(o, CommandStatus::BadInputLength, syndrome::INPUT_TOO_SHORT);
    let o = d.exec(&mut nic, &input(Opcode::QueryIssi, 0, 0x10), 0x10);
    refused(
        o,
        CommandStatus::BadOutputLength,
        syndrome::OUTPUT_TOO_SHORT,
    );
    // MANAGE_PAGES announcing more pages than it carries.
    let mut m = input(Opcode::ManagePages, 1, 0x18);
    put_dword(&mut m, 0x0C, 2);
    m[0x10..0x18].copy_from_slice(&0x2000_0000u64.to_be_bytes());
    refused(
        d.exec(&mut nic, &m, 0x10),
        CommandStatus::BadInputLength,
        syndrome::PAGE_LIST_SHORT,
    );
    let e = nic.counters().command_errors;
    assert_eq!((e.bad_input_length, e.bad_output_length), (2, 1));
    // Shorter than the 8-byte header: a delivery error, not executed.
    let p = d.post(0, &input(Opcode::EnableHca, 0, 4), 0x0C);
    d.ring(&mut nic, 1);
    assert_eq!(
        d.complete(&p),
        Err(CmdError::Delivery(DeliveryStatus::InputLength))
    );
    let p = d.post(0, &input(Opcode::EnableHca, 0, 0x10), 4);
    d.ring(&mut nic, 1);
    assert_eq!(
        d.complete(&p),
        Err(CmdError::Delivery(DeliveryStatus::OutputLength))
    );
    assert_eq!(nic.counters().delivery.input_length, 1);
    assert_eq!(nic.counters().delivery.output_length, 1);
}

#[test]
fn commands_out_of_order_are_bad_sys_state() {
    let mut nic = device(1);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    let o = d.exec(&mut nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    refused(o, CommandStatus::BadSysState, syndrome::NOT_ENABLED);
    d.ok(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    let o = d.exec(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    refused(o, CommandStatus::BadSysState, syndrome::ALREADY_ENABLED);
    let o = d.exec(&mut nic, &input(Opcode::AllocPd, 0, 0x10), 0x10);
    refused(o, CommandStatus::BadSysState, syndrome::NOT_INITIALIZED);
    // INIT_HCA before the pages were given.
    let o = d.exec(&mut nic, &input(Opcode::InitHca, 0, 0x20), 0x10);
    refused(o, CommandStatus::NoResources, syndrome::PAGES_MISSING);
    assert_eq!(nic.counters().command_errors.bad_sys_state, 3);
    assert_eq!(nic.counters().command_errors.no_resources, 1);
    assert_eq!(nic.function_state(VF0).unwrap().hca, HcaState::Enabled);
}

#[test]
fn bad_parameters_are_refused_and_change_nothing() {
    let (mut nic, mut d) = enabled(1, VF0);
    let before = nic.function_state(VF0).unwrap().clone();
    // A page for another function (the PF's business, not a VF's).
    let mut q = input(Opcode::QueryPages, 1, 0x10);
    put_dword(&mut q, 0x08, 3);
    refused(
        d.exec(&mut nic, &q, 0x10),
        CommandStatus::BadParam,
        syndrome::OTHER_FUNCTION,
    );
    // ISSI 7 is not supported.
    let mut s = input(Opcode::SetIssi, 0, 0x10);
    put_dword(&mut s, 0x08, 7);
    refused(
        d.exec(&mut nic, &s, 0x10),
        CommandStatus::BadParam,
        syndrome::BAD_ISSI,
    );
    // Pages: misaligned, zero, twice.
    for pages in [
        vec![0x2000_0100u64],
        vec![0],
        vec![0x2000_0000, 0x2000_0000],
    ] {
        let o = d.give_pages(&mut nic, &pages);
        refused(o, CommandStatus::BadParam, syndrome::BAD_PAGE);
    }
    // A capability page the device does not have (RoCE), and a cap it does not advertise.
    let o = d.exec(&mut nic, &input(Opcode::QueryHcaCap, 4 << 1, 0x10), 0x1010);
    refused(o, CommandStatus::BadParam, syndrome::BAD_CAP_TYPE);
    let mut page = d.query_cap(&mut nic, 1);
    GeneralCaps::new_checked(&mut page[..])
        .unwrap()
        .set_roce(true);
    refused(
        d.set_cap(&mut nic, 0, &page),
        CommandStatus::BadParam,
        syndrome::BAD_CAP_VALUE,
    );
    let mut page = d.query_cap(&mut nic, 1);
    GeneralCaps::new_checked(&mut page[..])
        .unwrap()
        .set_striding_rq(true);
    refused(
        d.set_cap(&mut nic, 0, &page),
        CommandStatus::BadParam,
        syndrome::BAD_CAP_VALUE,
    );
    // A user context id: none exist.
    let mut u = input(Opcode::QueryIssi, 0, 0x10);
    u[2..4].copy_from_slice(&5u16.to_be_bytes());
    refused(
        d.exec(&mut nic, &u, 0x70),
        CommandStatus::BadParam,
        syndrome::BAD_UID,
    );
    // An access register the model does not have (PCAM: `pcam_reg` is not advertised).
    let mut r = host_endianness(0, false);
    put_dword(&mut r, 0x08, 0x507F);
    refused(
        d.exec(&mut nic, &r, 0x20),
        CommandStatus::BadParam,
        syndrome::UNSUPPORTED_REGISTER,
    );
    assert_eq!(nic.counters().command_errors.bad_param, 10);
    assert_eq!(nic.function_state(VF0).unwrap(), &before);
}

#[test]
fn objects_that_do_not_exist_are_bad_resource() {
    let mut nic = device(1);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    d.bring_up(&mut nic);
    let mut free = input(Opcode::DeallocPd, 0, 0x10);
    put_dword(&mut free, 0x08, 77);
    refused(
        d.exec(&mut nic, &free, 0x10),
        CommandStatus::BadResource,
        syndrome::NO_SUCH_OBJECT,
    );
    let mut td = input(Opcode::TeardownHca, 0, 0x10);
    put_dword(&mut td, 0x08, 1);
    refused(
        d.exec(&mut nic, &td, 0x10),
        CommandStatus::BadParam,
        syndrome::BAD_TEARDOWN_PROFILE,
    );
    assert_eq!(nic.counters().command_errors.bad_resource, 1);
}

fn corrupt_block(d: &CmdDriver, addr: u64, edit: impl FnOnce(&mut MailboxBlock<&mut [u8]>)) {
    let mut b = [0u8; 0x240];
    d.read(addr, &mut b);
    let mut m = MailboxBlock::new_checked(&mut b[..]).unwrap();
    edit(&mut m);
    d.write(addr, &b);
}

fn delivery(nic: &mut Mlx5Nic, d: &CmdDriver, p: &mlx5_model::testing::Posted) -> DeliveryStatus {
    d.ring(nic, 1 << p.slot);
    let r = d.complete(p);
    let Err(CmdError::Delivery(s)) = r else {
        unreachable!("expected a delivery error, got {r:?}");
    };
    s
}

#[test]
fn broken_mailbox_chains_are_delivery_errors() {
    let (mut nic, mut d) = enabled(1, VF0);
    let state = nic.function_state(VF0).unwrap().clone();
    let cap_in = || {
        let mut m = input(Opcode::SetHcaCap, 0, 0x1010);
        m[0x10..].copy_from_slice(&mlx5_model::caps::general_max(true));
        m
    };
    // Wrong block number in the input chain.
    let p = d.post(0, &cap_in(), 0x10);
    corrupt_block(&d, p.in_blocks[3], |m| m.set_block_number(9));
    assert_eq!(delivery(&mut nic, &d, &p), DeliveryStatus::BadBlockNumber);
    // Token differing from the entry's.
    let p = d.post(0, &cap_in(), 0x10);
    corrupt_block(&d, p.in_blocks[0], |m| m.set_token(0x99));
    assert_eq!(delivery(&mut nic, &d, &p), DeliveryStatus::Token);
    // A chain ending before the input does.
    let p = d.post(0, &cap_in(), 0x10);
    corrupt_block(&d, p.in_blocks[5], |m| m.set_next(0));
    assert_eq!(delivery(&mut nic, &d, &p), DeliveryStatus::InputLength);
    // A misaligned next pointer.
    let p = d.post(0, &cap_in(), 0x10);
    corrupt_block(&d, p.in_blocks[1], |m| {
        let n = m.next();
        m.set_next(n + 3)
    });
    assert_eq!(
        delivery(&mut nic, &d, &p),
        DeliveryStatus::InputPointerAlignment
    );
    // A loop back to block 0 is a wrong block number, never a hang.
    let p = d.post(0, &cap_in(), 0x10);
    let first = p.in_blocks[0];
    corrupt_block(&d, p.in_blocks[2], |m| m.set_next(first));
    assert_eq!(delivery(&mut nic, &d, &p), DeliveryStatus::BadBlockNumber);
    // The output chain is checked before the command runs.
    let p = d.post(0, &input(Opcode::QueryHcaCap, 1, 0x10), 0x1010);
    corrupt_block(&d, p.out_blocks[6], |m| m.set_next(0));
    assert_eq!(delivery(&mut nic, &d, &p), DeliveryStatus::OutputLength);
    let p = d.post(0, &input(Opcode::QueryHcaCap, 1, 0x10), 0x1010);
    corrupt_block(&d, p.out_blocks[2], |m| m.set_block_number(0));
    assert_eq!(delivery(&mut nic, &d, &p), DeliveryStatus::BadBlockNumber);
    let c = nic.counters().delivery;
    assert_eq!(
        (
            c.bad_block_number,
            c.token,
            c.input_length,
            c.input_pointer_alignment,
            c.output_length
        ),
        (3, 1, 1, 1, 1)
    );
    assert_eq!(nic.function_state(VF0).unwrap(), &state, "nothing executed");
    assert_eq!(nic.counters().command_errors.total(), 0);
}

#[test]
fn entry_type_and_signatures() {
    let mut nic = Mlx5Nic::new(Mlx5Config {
        verify_signatures: true,
        ..Mlx5Config::default()
    });
    nic.enable_sriov(1);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    let p = d.post(0, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    let mut e = d.entry(0);
    e[0] = 3;
    e[0x3D] ^= 7 ^ 3; // keep the signature right: only the type is wrong
    d.write(p.entry, &e);
    assert_eq!(delivery(&mut nic, &d, &p), DeliveryStatus::BadCommandType);
    let p = d.post(0, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    let mut e = d.entry(0);
    e[0x3D] ^= 0xFF;
    d.write(p.entry, &e);
    assert_eq!(delivery(&mut nic, &d, &p), DeliveryStatus::Signature);
    let p = d.post(0, &input(Opcode::SetDriverVersion, 0, 0x50), 0x10);
    corrupt_block(&d, p.in_blocks[0], |m| m.data_mut()[7] ^= 1);
    assert_eq!(delivery(&mut nic, &d, &p), DeliveryStatus::Signature);
    assert_eq!(nic.counters().delivery.signature, 2);
    assert_eq!(nic.counters().delivery.bad_command_type, 1);
    // Correctly signed commands pass.
    d.ok(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
}

#[test]
fn entries_not_handed_to_the_device_and_doorbells_without_a_queue() {
    let mut nic = device(1);
    // Doorbell before the queue address.
    nic.write32be(VF0, 0x018, 1);
    assert_eq!(nic.counters().doorbell_no_queue, 1);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    // Ownership not set: nothing is executed, nothing written.
    let p = d.post(0, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    let mut e = d.entry(0);
    e[0x3F] = 0;
    d.write(p.entry, &e);
    d.ring(&mut nic, 1);
    assert_eq!(d.entry(0), e);
    // A slot the driver never filled.
    d.ring(&mut nic, 1 << 17);
    assert_eq!(d.entry(17), [0u8; 64]);
    assert_eq!(nic.counters().entry_not_owned, 2);
    assert_eq!(nic.function_state(VF0).unwrap().hca, HcaState::Disabled);
    // Several slots in one doorbell are processed in slot order.
    let a = d.post(3, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    let b = d.post(5, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    d.ring(&mut nic, (1 << 3) | (1 << 5));
    assert_eq!(d.complete(&a).unwrap().status, CommandStatus::Ok);
    assert_eq!(d.complete(&b).unwrap().dword(0x6C), 0b11);
}

#[test]
fn a_dma_fault_stops_only_the_faulting_functions_queue() {
    let mut nic = device(2);
    let mut d0 = CmdDriver::attach(&mut nic, VF0);
    let mut d1 = CmdDriver::attach(&mut nic, VF1);
    d1.ok(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    d0.ok(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    // VF1's output chain points at memory it never mapped.
    let p = d1.post(0, &input(Opcode::QueryHcaCap, 1, 0x10), 0x1010);
    corrupt_block(&d1, p.out_blocks[1], |m| m.set_next(0xDEAD_0000));
    assert_eq!(delivery(&mut nic, &d1, &p), DeliveryStatus::FwError);
    assert!(nic.cmdq_stopped(VF1));
    assert_eq!(nic.counters().cmd_dma_faults, 1);
    assert_eq!(nic.function_counters(VF1).unwrap().dma_faults, 1);
    // The stopped queue ignores doorbells (counted) …
    let p = d1.post(0, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    d1.ring(&mut nic, 1);
    assert_eq!(d1.complete(&p), Err(CmdError::NotCompleted));
    assert_eq!(nic.counters().doorbell_queue_stopped, 1);
    // … VF0 goes on …
    assert!(!nic.cmdq_stopped(VF0));
    let o = d0.ok(&mut nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
    assert_eq!(o.dword(0x6C), 0b11);
    // … and writing the queue address again restarts VF1's.
    d1.set_cmdq(&mut nic);
    d1.ring(&mut nic, 1);
    assert_eq!(d1.complete(&p).unwrap().status, CommandStatus::Ok);
    // An input chain in unmapped memory, and a queue page that is not mapped at all.
    let p = d1.post(0, &input(Opcode::SetHcaCap, 0, 0x1010), 0x10);
    corrupt_block(&d1, p.in_blocks[0], |m| m.set_next(0x10));
    assert_eq!(delivery(&mut nic, &d1, &p), DeliveryStatus::FwError);
    nic.write32be(VF1, 0x010, 0x77);
    nic.write32be(VF1, 0x014, 0);
    nic.write32be(VF1, 0x018, 1);
    assert_eq!(nic.counters().cmd_dma_faults, 3);
    assert!(nic.cmdq_stopped(VF1) && !nic.cmdq_stopped(VF0));
}

#[test]
fn bar_and_config_accesses_that_do_not_fit_are_counted() {
    let mut nic = device(1);
    let mut b4 = [0u8; 4];
    nic.bar_read(VF0, 0, 2, &mut b4);
    assert_eq!(b4, [0xFF; 4]);
    nic.bar_read(VF0, 0, 0, &mut [0u8; 3]);
    assert_eq!(nic.counters().misaligned_accesses, 2);
    nic.bar_read(VF0, 0, 2 * 1024 * 1024, &mut b4);
    nic.bar_read(VF0, 2, 0, &mut b4);
    nic.bar_write(VF0, 0, u64::MAX - 3, &b4);
    assert_eq!(nic.counters().out_of_range_accesses, 3);
    // VF 5 does not exist; VF0 after SR-IOV off is gone.
    nic.bar_read(FunctionId::Vf(5), 0, 0, &mut b4);
    nic.config_read(FunctionId::Vf(40), 0, &mut b4);
    assert_eq!(b4, [0xFF; 4]);
    assert_eq!(nic.counters().disabled_function_accesses, 2);
    // 1-byte writes to the init segment are not register writes.
    nic.bar_write(VF0, 0, 0x18, &[1]);
    assert_eq!(nic.counters().misaligned_accesses, 3);
    assert_eq!(nic.counters().doorbells, 0);
    // UAR reads and UAR registers the model does not have: zero and counted; a 4-byte write
    // to a send doorbell register is a refused SQ doorbell.
    nic.bar_read(VF0, 0, 0x4000, &mut b4);
    assert_eq!(b4, [0; 4]);
    nic.bar_write(VF0, 0, 0x4100, &b4);
    nic.bar_write(VF0, 0, 0x4800, &b4);
    assert_eq!(nic.counters().unknown_reads, 1);
    assert_eq!(nic.counters().unknown_writes, 1);
    assert_eq!(nic.counters().queues.sq_doorbell_errors, 1);
    // Config: identity, misaligned, out of range.
    nic.config_read(VF0, 0, &mut b4);
    assert_eq!(b4, [0xB3, 0x15, 0x1E, 0x10]);
    nic.config_read(FunctionId::Pf, 0, &mut b4);
    assert_eq!(b4, [0xB3, 0x15, 0x1D, 0x10]);
    nic.config_read(VF0, 3, &mut [0u8; 2]);
    nic.config_write(VF0, 4096, &[0]);
    assert_eq!(nic.counters().misaligned_accesses, 4);
    assert_eq!(nic.counters().out_of_range_accesses, 4);
    nic.advance_to(SimTime::ZERO);
    assert_eq!(nic.counters().time_went_backwards, 1);
}

/// A small deterministic generator (the model has no randomness; neither do its tests).
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
fn a_hostile_vf_changes_nothing_of_the_other_functions() {
    let mut nic = device(3);
    let mut pf = CmdDriver::attach(&mut nic, FunctionId::Pf);
    let mut d0 = CmdDriver::attach(&mut nic, VF0);
    pf.bring_up(&mut nic);
    d0.bring_up(&mut nic);
    let mut evil = CmdDriver::attach(&mut nic, VF1);
    let watch = [FunctionId::Pf, VF0, FunctionId::Vf(2)];
    let before: Vec<_> = watch
        .iter()
        .map(|f| {
            (
                nic.function_state(*f).unwrap().clone(),
                nic.function_counters(*f).unwrap(),
                nic.cmdq_address(*f),
            )
        })
        .collect();
    let mut rng = Lcg(15);
    for round in 0..400u32 {
        // Arbitrary commands with every opcode the model knows and more, any op_mod,
        // fields naming other functions, random bodies.
        let ops = [
            0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x107, 0x108, 0x109, 0x10A,
        ];
        let op = if rng.next().is_multiple_of(4) {
            (rng.next() & 0xFFFF) as u16
        } else {
            ops[(rng.next() % ops.len() as u64) as usize]
        };
        let len = [8usize, 0x10, 0x20, 0x50, 0x1010][(rng.next() % 5) as usize];
        let mut m = input(Opcode::from(op), (rng.next() % 4) as u16, len);
        for b in m.iter_mut().skip(8) {
            *b = rng.next() as u8;
        }
        let out = [8usize, 0x0C, 0x10, 0x70, 0x1010][(rng.next() % 5) as usize];
        let slot = (rng.next() % 32) as u8;
        let p = evil.post(slot, &m, out);
        // Sometimes break the entry or the chain as well.
        match rng.next() % 6 {
            0 => {
                let mut e = evil.entry(slot);
                e[(rng.next() % 64) as usize] = rng.next() as u8;
                evil.write(p.entry, &e);
            }
            1 if !p.in_blocks.is_empty() => {
                let next = rng.next() & !7;
                corrupt_block(&evil, p.in_blocks[0], |b| b.set_next(next));
            }
            _ => {}
        }
        evil.ring(&mut nic, (rng.next() as u32) | (1 << slot));
        if nic.cmdq_stopped(VF1) || round % 50 == 0 {
            evil.set_cmdq(&mut nic);
        }
        // Also hostile register traffic.
        nic.write32be(VF1, (rng.next() % 0x1100) as u32 & !3, rng.next() as u32);
    }
    for (f, b) in watch.iter().zip(&before) {
        let now = (
            nic.function_state(*f).unwrap().clone(),
            nic.function_counters(*f).unwrap(),
            nic.cmdq_address(*f),
        );
        assert_eq!(&now, b, "{f} changed");
    }
    assert!(nic.function_counters(VF1).unwrap().commands > 0);
    // The good VF still works.
    let o = d0.ok(&mut nic, &input(Opcode::AllocPd, 0, 0x10), 0x10);
    assert_eq!(o.dword(0x08), 1);
}

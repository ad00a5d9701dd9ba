//! The port a VF's driver sees: ACCESS_REG of PAOS, PMTU, PTYS and PPCNT as Linux mlx5e
//! issues them on a VF (the accesses the mlx5_core harness recorded), their malformed forms,
//! and the queue counter sets (ALLOC/DEALLOC/QUERY_Q_COUNTER) with an RQ counting its
//! out-of-buffer drops into one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::lifecycle::{REGISTER_DATA_OFFSET, RegisterId, access_reg_op};
use mlx5_hw::commands::queues::{ModifyRqIn, QueryRqOut, QueueState, modify_bitmask};
use mlx5_hw::commands::registers::{
    Ieee8023Counter, Paos, Pmtu, Ppcnt, Ptys, eth_link_mode, port_status, ppcnt_group, ptys_proto,
};
use mlx5_hw::commands::resources::{AllocQCounterOut, QueryQCounterIn, QueryQCounterOut};
use mlx5_model::commands::port_commands::MAX_Q_COUNTERS;
use mlx5_model::testing::queues::{Queues, broadcast_frame, modify_rq_input};
use mlx5_model::testing::{CmdDriver, device, input, put_dword};
use mlx5_model::{FunctionId, Mlx5Nic, syndrome};

const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);

fn vfs(n: u16) -> (Mlx5Nic, Vec<(CmdDriver, Queues)>) {
    let mut nic = device(n);
    let mut out = Vec::new();
    for v in 0..n {
        let mut d = CmdDriver::attach(&mut nic, FunctionId::Vf(v));
        d.bring_up(&mut nic);
        let q = d.open_queues(&mut nic, 4, 4, 3);
        out.push((d, q));
    }
    (nic, out)
}

/// An ACCESS_REG of `reg` with `data` (the register's bytes).
fn access(op_mod: u16, reg: RegisterId, data: &[u8]) -> Vec<u8> {
    let mut m = input(Opcode::AccessReg, op_mod, REGISTER_DATA_OFFSET + data.len());
    put_dword(&mut m, 0x08, u32::from(reg.raw_value()));
    m[REGISTER_DATA_OFFSET..].copy_from_slice(data);
    m
}

/// Runs an ACCESS_REG that must succeed and returns the register bytes it read back.
fn reg_ok(d: &mut CmdDriver, nic: &mut Mlx5Nic, m: &[u8]) -> Vec<u8> {
    let len = m.len();
    d.ok(nic, m, len).bytes[REGISTER_DATA_OFFSET..len].to_vec()
}

fn paos(admin: Option<u8>, port: u8) -> Vec<u8> {
    let mut b = vec![0u8; 0x10];
    let mut p = Paos::new_checked(&mut b[..]).unwrap();
    p.set_local_port(port);
    if let Some(a) = admin {
        p.set_admin_status(a);
        p.set_ase(true);
    }
    b
}

fn pmtu(admin_mtu: u16) -> Vec<u8> {
    let mut b = vec![0u8; 0x10];
    let mut p = Pmtu::new_checked(&mut b[..]).unwrap();
    p.set_local_port(1);
    p.set_admin_mtu(admin_mtu);
    b
}

fn ptys(mask: u8) -> Vec<u8> {
    let mut b = vec![0u8; 0x40];
    let mut p = Ptys::new_checked(&mut b[..]).unwrap();
    p.set_local_port(1);
    p.set_proto_mask(mask);
    b
}

fn ppcnt(grp: u8) -> Vec<u8> {
    let mut b = vec![0u8; 0x100];
    let mut p = Ppcnt::new_checked(&mut b[..]).unwrap();
    p.set_local_port(1);
    p.set_grp(grp);
    b
}

/// mlx5e's accesses on a VF, in its order: PAOS down, PMTU write then read, PTYS read, PAOS
/// up, PPCNT 802.3 read — each answered as the module documents.
#[test]
fn mlx5e_port_registers_on_a_vf() {
    let (mut nic, mut v) = vfs(2);
    let (d, _) = &mut v[0];
    use access_reg_op::{READ, WRITE};
    // PAOS: admin down, read back down/down; then up, and up/up (the vport follows the
    // uplink, which is up).
    let b = reg_ok(
        d,
        &mut nic,
        &access(WRITE, RegisterId::Paos, &paos(Some(port_status::DOWN), 1)),
    );
    let p = Paos::new_checked(&b[..]).unwrap();
    assert_eq!(
        (p.admin_status(), p.oper_status()),
        (port_status::DOWN, port_status::DOWN)
    );
    let b = reg_ok(d, &mut nic, &access(READ, RegisterId::Paos, &paos(None, 1)));
    assert_eq!(
        Paos::new_checked(&b[..]).unwrap().admin_status(),
        port_status::DOWN
    );
    // A write without `ase` changes nothing.
    let b = reg_ok(
        d,
        &mut nic,
        &access(WRITE, RegisterId::Paos, &paos(None, 1)),
    );
    assert_eq!(
        Paos::new_checked(&b[..]).unwrap().admin_status(),
        port_status::DOWN
    );
    let b = reg_ok(
        d,
        &mut nic,
        &access(WRITE, RegisterId::Paos, &paos(Some(port_status::UP), 1)),
    );
    let p = Paos::new_checked(&b[..]).unwrap();
    assert_eq!(
        (p.admin_status(), p.oper_status()),
        (port_status::UP, port_status::UP)
    );
    // PMTU: mlx5e writes its MTU + 22 and reads the port's limits.
    reg_ok(
        d,
        &mut nic,
        &access(WRITE, RegisterId::Pmtu, &pmtu(1500 + 22)),
    );
    let b = reg_ok(d, &mut nic, &access(READ, RegisterId::Pmtu, &pmtu(0)));
    let p = Pmtu::new_checked(&b[..]).unwrap();
    assert_eq!(
        (p.max_mtu(), p.admin_mtu(), p.oper_mtu()),
        (10_000, 1522, 1522)
    );
    // PTYS: the one link mode of the model's 10 Gb/s line rate.
    let b = reg_ok(
        d,
        &mut nic,
        &access(READ, RegisterId::Ptys, &ptys(ptys_proto::ETH)),
    );
    let p = Ptys::new_checked(&b[..]).unwrap();
    let kr = 1u32 << eth_link_mode::G10_KR;
    assert_eq!(
        (
            p.proto_mask(),
            p.eth_proto_capability(),
            p.eth_proto_admin(),
            p.eth_proto_oper()
        ),
        (ptys_proto::ETH, kr, kr, kr)
    );
    // PPCNT 802.3: the vport's traffic. VF 0 sends three broadcasts; VF 1 receives them.
    for k in 0..3u8 {
        let (d0, q0) = &mut v[0];
        d0.send(
            &mut nic,
            &mut q0.sq,
            &broadcast_frame([2, 0, 0, 0, 0, 0x10], 100, k),
            14,
            true,
        );
    }
    let vc0 = nic.vport_counters(VF0).unwrap();
    let vc1 = nic.vport_counters(VF1).unwrap();
    assert_eq!(vc0.tx_broadcast_frames, 3);
    let (d0, _) = &mut v[0];
    let b = reg_ok(
        d0,
        &mut nic,
        &access(READ, RegisterId::Ppcnt, &ppcnt(ppcnt_group::IEEE_802_3)),
    );
    let p = Ppcnt::new_checked(&b[..]).unwrap();
    assert_eq!(p.ieee_802_3(Ieee8023Counter::FramesTransmittedOk), 3);
    assert_eq!(p.ieee_802_3(Ieee8023Counter::BroadcastFramesXmittedOk), 3);
    assert_eq!(
        p.ieee_802_3(Ieee8023Counter::OctetsTransmittedOk),
        vc0.tx_broadcast_bytes
    );
    assert_eq!(p.ieee_802_3(Ieee8023Counter::FramesReceivedOk), 0);
    let (d1, _) = &mut v[1];
    let b = reg_ok(
        d1,
        &mut nic,
        &access(READ, RegisterId::Ppcnt, &ppcnt(ppcnt_group::IEEE_802_3)),
    );
    let p = Ppcnt::new_checked(&b[..]).unwrap();
    assert_eq!(
        p.ieee_802_3(Ieee8023Counter::BroadcastFramesReceivedOk),
        vc1.rx_broadcast_frames
    );
    assert_eq!(
        p.ieee_802_3(Ieee8023Counter::OctetsReceivedOk),
        vc1.rx_broadcast_bytes
    );
    assert_eq!(vc1.rx_broadcast_frames, 3);
}

/// Each malformed access is refused with its status and syndrome and changes nothing.
#[test]
fn malformed_register_accesses_are_refused() {
    let (mut nic, mut v) = vfs(1);
    let (d, _) = &mut v[0];
    use CommandStatus::*;
    use access_reg_op::{READ, WRITE};
    let bad = syndrome::BAD_REGISTER_FIELD;
    let cases: Vec<(Vec<u8>, CommandStatus, u32)> = vec![
        (
            access(WRITE, RegisterId::Paos, &paos(Some(3), 1)),
            BadParam,
            bad,
        ),
        (
            access(WRITE, RegisterId::Paos, &paos(Some(port_status::UP), 2)),
            BadParam,
            bad,
        ),
        (
            access(WRITE, RegisterId::Pmtu, &pmtu(10_001)),
            BadParam,
            bad,
        ),
        (access(WRITE, RegisterId::Pmtu, &pmtu(0)), BadParam, bad),
        (
            access(READ, RegisterId::Ptys, &ptys(ptys_proto::IB)),
            BadParam,
            bad,
        ),
        (
            access(WRITE, RegisterId::Ptys, &ptys(ptys_proto::ETH)),
            BadParam,
            syndrome::REGISTER_READ_ONLY,
        ),
        (
            access(READ, RegisterId::Ppcnt, &ppcnt(ppcnt_group::RFC_2863)),
            BadParam,
            bad,
        ),
        (
            access(WRITE, RegisterId::Ppcnt, &ppcnt(ppcnt_group::IEEE_802_3)),
            BadParam,
            syndrome::REGISTER_READ_ONLY,
        ),
        (
            access(READ, RegisterId::Pcam, &[0u8; 0x50]),
            BadParam,
            syndrome::UNSUPPORTED_REGISTER,
        ),
        (
            access(7, RegisterId::Pmtu, &pmtu(1522)),
            BadOp,
            syndrome::BAD_OP_MOD,
        ),
        // Shorter than the register.
        (
            access(READ, RegisterId::Ppcnt, &[0u8; 0x20]),
            BadInputLength,
            syndrome::INPUT_TOO_SHORT,
        ),
    ];
    for (k, (m, status, synd)) in cases.iter().enumerate() {
        let before = nic.function_state(VF0).unwrap().clone();
        let o = d.exec(&mut nic, m, m.len()).unwrap();
        assert_eq!((o.status, o.syndrome), (*status, *synd), "case {k}");
        assert!(
            o.bytes[8..].iter().all(|&b| b == 0),
            "case {k}: nothing but the header"
        );
        assert_eq!(&before, nic.function_state(VF0).unwrap(), "case {k}");
    }
}

fn alloc(d: &mut CmdDriver, nic: &mut Mlx5Nic) -> u8 {
    let o = d.ok(nic, &input(Opcode::AllocQCounter, 0, 0x10), 0x10);
    AllocQCounterOut::new_checked(&o.bytes[..])
        .unwrap()
        .counter_set_id()
}

fn query(id: u8, clear: bool, aggregate: bool) -> Vec<u8> {
    let mut m = input(Opcode::QueryQCounter, 0, 0x20);
    let mut q = QueryQCounterIn::new_checked(&mut m[..]).unwrap();
    q.set_counter_set_id(id);
    q.set_clear(clear);
    q.set_aggregate(aggregate);
    m
}

fn out_of_buffer(d: &mut CmdDriver, nic: &mut Mlx5Nic, m: &[u8]) -> u32 {
    let o = d.ok(nic, m, 0x100);
    QueryQCounterOut::new_checked(&o.bytes[..])
        .unwrap()
        .out_of_buffer()
}

/// Status and syndrome of a QUERY_Q_COUNTER (its output is 256 bytes).
fn q_status(d: &mut CmdDriver, nic: &mut Mlx5Nic, m: &[u8]) -> (CommandStatus, u32) {
    let o = d.exec(nic, m, 0x100).unwrap();
    (o.status, o.syndrome)
}

fn dealloc(id: u8) -> Vec<u8> {
    let mut m = input(Opcode::DeallocQCounter, 0, 0x10);
    put_dword(&mut m, 0x08, u32::from(id));
    m
}

/// mlx5e allocates two sets and points its RQs at one (MODIFY_RQ with the counter-set bit);
/// a frame with no receive WQE posted counts as out of buffer in that set.
#[test]
fn queue_counters_count_out_of_buffer_drops() {
    let (mut nic, mut v) = vfs(2);
    let general = v[1].0.query_cap(&mut nic, 1);
    assert_eq!(
        GeneralCaps::new_checked(&general[..]).unwrap().max_qp_cnt(),
        MAX_Q_COUNTERS
    );
    let (d1, q1) = &mut v[1];
    let (a, b) = (alloc(d1, &mut nic), alloc(d1, &mut nic));
    assert_eq!((a, b), (1, 2));
    let rqn = q1.rq.rqn;
    let mut m = modify_rq_input(rqn, QueueState::Ready, QueueState::Ready);
    {
        let mut i = ModifyRqIn::new_checked(&mut m[..]).unwrap();
        i.set_modify_bitmask(modify_bitmask::RQ_COUNTER_SET_ID);
        i.rq_context_mut().set_counter_set_id(a);
    }
    d1.ok(&mut nic, &m, 0x10);
    let mut qm = input(Opcode::QueryRq, 0, 0x10);
    put_dword(&mut qm, 0x08, rqn);
    let o = d1.ok(&mut nic, &qm, QueryRqOut::<&[u8]>::LEN);
    assert_eq!(
        QueryRqOut::new_checked(&o.bytes[..])
            .unwrap()
            .rq_context()
            .counter_set_id(),
        a
    );
    // Two frames to VF 1, which posted no receive WQE.
    for k in 0..2u8 {
        let (d0, q0) = &mut v[0];
        d0.send(
            &mut nic,
            &mut q0.sq,
            &broadcast_frame([2, 0, 0, 0, 0, 0x10], 100, k),
            14,
            true,
        );
    }
    let (d1, _) = &mut v[1];
    assert_eq!(out_of_buffer(d1, &mut nic, &query(a, false, false)), 2);
    assert_eq!(out_of_buffer(d1, &mut nic, &query(b, false, false)), 0);
    assert_eq!(
        out_of_buffer(d1, &mut nic, &query(0, false, true)),
        2,
        "aggregate"
    );
    // The set an RQ counts into may not go; an unknown one is refused.
    assert_eq!(
        d1.status(&mut nic, &dealloc(a)),
        (CommandStatus::BadResource, syndrome::OBJECT_IN_USE)
    );
    assert_eq!(
        d1.status(&mut nic, &dealloc(7)),
        (CommandStatus::BadResource, syndrome::NO_SUCH_COUNTER_SET)
    );
    assert_eq!(
        q_status(d1, &mut nic, &query(7, false, false)),
        (CommandStatus::BadResource, syndrome::NO_SUCH_COUNTER_SET)
    );
    // Clear on read.
    assert_eq!(out_of_buffer(d1, &mut nic, &query(a, true, false)), 2);
    assert_eq!(out_of_buffer(d1, &mut nic, &query(a, false, false)), 0);
    // Sets run out at MAX_Q_COUNTERS; freed ones come back.
    for n in 3..=MAX_Q_COUNTERS as u8 {
        assert_eq!(alloc(d1, &mut nic), n);
    }
    assert_eq!(
        d1.status(&mut nic, &input(Opcode::AllocQCounter, 0, 0x10)),
        (CommandStatus::NoResources, syndrome::NO_OBJECTS)
    );
    d1.ok(&mut nic, &dealloc(b), 0x10);
    assert_eq!(alloc(d1, &mut nic), b);
    // VF 0's sets are its own.
    let (d0, _) = &mut v[0];
    assert_eq!(
        q_status(d0, &mut nic, &query(a, false, false)),
        (CommandStatus::BadResource, syndrome::NO_SUCH_COUNTER_SET)
    );
}

//! The queue objects' commands: CREATE/DESTROY_TIS, CREATE/MODIFY/QUERY/DESTROY_SQ and _RQ
//! with their state machines, CREATE/MODIFY/DESTROY_TIR and _RQT, and the NIC RX flow
//! steering commands — each malformed input with its status, syndrome and counter, objects
//! in use refused, and the flow table capability page.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use mlx5_hw::caps::{FlowTableCaps, GeneralCaps};
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::queues::{
    CreateRqIn, CreateSqIn, ModifySqIn, QueryRqIn, QueryRqOut, QuerySqOut, QueueState,
    modify_bitmask, wq_type,
};
use mlx5_hw::commands::rx::{
    CreateTirIn, CreateTisIn, MODIFY_RQT_RQN_LIST, ModifyRqtIn, ModifyTirIn, modify_tir_bitmask,
    rx_hash_fn,
};
use mlx5_hw::commands::steering::{
    CreateFlowTableIn, CreateFlowTableOut, SetFlowTableEntryIn, action, destination,
    destination_type, match_criteria_enable, miss_action, table_type,
};
use mlx5_model::testing::queues::{
    Queues, WqParams, create_direct_tir_input, create_flow_group_input, create_flow_table_input,
    create_indirect_tir_input, create_mkey_input, create_rq_input, create_rqt_input,
    create_sq_input, create_tis_input, modify_rq_input, modify_sq_input, set_fte_input,
    set_root_input,
};
use mlx5_model::testing::{CmdDriver, device, input, put_dword};
use mlx5_model::{FunctionId, Mlx5Nic, syndrome};

const VF0: FunctionId = FunctionId::Vf(0);

fn up() -> (Mlx5Nic, CmdDriver, Queues) {
    let mut nic = device(1);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    d.bring_up(&mut nic);
    let q = d.open_queues(&mut nic, 4, 4, 3);
    (nic, d, q)
}

/// Each input is refused with its status and syndrome and changes nothing.
fn refused_all(nic: &mut Mlx5Nic, d: &mut CmdDriver, cases: &[(Vec<u8>, CommandStatus, u32)]) {
    for (k, (m, status, synd)) in cases.iter().enumerate() {
        let before = nic.function_state(VF0).unwrap().clone();
        assert_eq!(d.status(nic, m), (*status, *synd), "case {k}");
        assert_eq!(&before, nic.function_state(VF0).unwrap(), "case {k}");
    }
}

fn sq_params(d: &mut CmdDriver, q: &Queues) -> WqParams {
    let mut p = d.fresh_wq(4, 6);
    (p.pd, p.uar, p.cqn, p.tisn) = (q.pd, q.uar, q.tx_cq.cqn, q.tisn);
    p
}

fn rq_params(d: &mut CmdDriver, q: &Queues) -> WqParams {
    let mut p = d.fresh_wq(3, 4);
    (p.pd, p.cqn) = (q.pd, q.rx_cq.cqn);
    p
}

#[test]
fn create_sq_refuses_every_bad_context() {
    let (mut nic, mut d, q) = up();
    let good = sq_params(&mut d, &q);
    let with = |f: &dyn Fn(&mut WqParams)| {
        let mut p = good.clone();
        f(&mut p);
        create_sq_input(&p)
    };
    let ctx = |f: &dyn Fn(&mut CreateSqIn<&mut [u8]>)| {
        let mut m = create_sq_input(&good);
        f(&mut CreateSqIn::new_checked(&mut m[..]).unwrap());
        m
    };
    use CommandStatus::*;
    let errors_before = nic.counters().command_errors.total();
    let cases = vec![
        (with(&|p| p.cqn = 0x7FF), BadResource, syndrome::NO_SUCH_CQ),
        (with(&|p| p.tisn = 0x7), BadResource, syndrome::NO_SUCH_TIS),
        (with(&|p| p.uar = 0x1F), BadResource, syndrome::NO_SUCH_UAR),
        (with(&|p| p.pd = 0x99), BadResource, syndrome::NO_SUCH_PD),
        (
            with(&|p| p.log_stride = 5),
            BadParam,
            syndrome::BAD_WQ_STRIDE,
        ),
        (
            with(&|p| p.log_size = 16),
            BadParam,
            syndrome::BAD_QUEUE_SIZE,
        ),
        (
            with(&|p| p.pas.clear()),
            BadInputLength,
            syndrome::PAS_SHORT,
        ),
        (with(&|p| p.pas[0] += 8), BadParam, syndrome::BAD_PAS),
        (
            with(&|p| p.pas[0] = 0x7000_0000),
            BadParam,
            syndrome::WQ_BUFFER_FAULT,
        ),
        (with(&|p| p.dbr += 4), BadParam, syndrome::BAD_DBR),
        (with(&|p| p.dbr = 0x7000_0000), BadParam, syndrome::BAD_DBR),
        (
            ctx(&|i| i.sq_context_mut().set_tis_lst_sz(2)),
            BadParam,
            syndrome::BAD_TIS_LIST,
        ),
        (
            ctx(&|i| i.sq_context_mut().set_state(QueueState::Ready)),
            BadParam,
            syndrome::BAD_INITIAL_STATE,
        ),
        (
            ctx(&|i| i.sq_context_mut().set_allow_swp(true)),
            BadParam,
            syndrome::UNSUPPORTED_QUEUE_FEATURE,
        ),
        (
            ctx(&|i| i.sq_context_mut().set_allow_multi_pkt_send_wqe(true)),
            BadParam,
            syndrome::UNSUPPORTED_QUEUE_FEATURE,
        ),
        (
            ctx(&|i| {
                i.sq_context_mut()
                    .wq_mut()
                    .set_wq_type(wq_type::LINKED_LIST)
            }),
            BadParam,
            syndrome::UNSUPPORTED_WQ_TYPE,
        ),
        (
            ctx(&|i| i.sq_context_mut().wq_mut().set_page_offset(1)),
            BadParam,
            syndrome::UNSUPPORTED_QUEUE_FEATURE,
        ),
        (
            create_sq_input(&good)[..0x100].to_vec(),
            BadInputLength,
            syndrome::INPUT_TOO_SHORT,
        ),
    ];
    refused_all(&mut nic, &mut d, &cases);
    assert_eq!(
        nic.counters().command_errors.total() - errors_before,
        cases.len() as u64
    );
    assert_eq!(nic.counters().wq_buffer_faults, 3);
    assert_eq!(d.status(&mut nic, &create_sq_input(&good)).0, Ok);
}

#[test]
fn create_rq_refuses_every_bad_context() {
    let (mut nic, mut d, q) = up();
    let good = rq_params(&mut d, &q);
    let with = |f: &dyn Fn(&mut WqParams)| {
        let mut p = good.clone();
        f(&mut p);
        create_rq_input(&p)
    };
    let ctx = |f: &dyn Fn(&mut CreateRqIn<&mut [u8]>)| {
        let mut m = create_rq_input(&good);
        f(&mut CreateRqIn::new_checked(&mut m[..]).unwrap());
        m
    };
    use CommandStatus::*;
    let cases = vec![
        (with(&|p| p.cqn = 0x7FF), BadResource, syndrome::NO_SUCH_CQ),
        // 1 KiB receive WQEs are beyond max_wqe_sz_rq (512).
        (
            with(&|p| p.log_stride = 10),
            BadParam,
            syndrome::BAD_WQ_STRIDE,
        ),
        (
            with(&|p| p.log_stride = 3),
            BadParam,
            syndrome::BAD_WQ_STRIDE,
        ),
        (with(&|p| p.pd = 0x99), BadResource, syndrome::NO_SUCH_PD),
        (
            ctx(&|i| i.rq_context_mut().set_scatter_fcs(true)),
            BadParam,
            syndrome::UNSUPPORTED_QUEUE_FEATURE,
        ),
        (
            ctx(&|i| i.rq_context_mut().set_mem_rq_type(1)),
            BadParam,
            syndrome::UNSUPPORTED_QUEUE_FEATURE,
        ),
        (
            ctx(&|i| i.rq_context_mut().set_counter_set_id(1)),
            BadResource,
            syndrome::NO_SUCH_COUNTER_SET,
        ),
        (
            ctx(&|i| {
                i.rq_context_mut()
                    .wq_mut()
                    .set_wq_type(wq_type::CYCLIC_STRIDING)
            }),
            BadParam,
            syndrome::UNSUPPORTED_WQ_TYPE,
        ),
    ];
    refused_all(&mut nic, &mut d, &cases);
}

#[test]
fn sq_and_rq_state_machines_follow_the_prm() {
    let (mut nic, mut d, q) = up();
    let p = sq_params(&mut d, &q);
    let sqn = d.create(&mut nic, &create_sq_input(&p));
    let p = rq_params(&mut d, &q);
    let rqn = d.create(&mut nic, &create_rq_input(&p));
    use QueueState::*;
    let bad = CommandStatus::BadParam;
    let steps: [(QueueState, QueueState, Option<u32>); 9] = [
        (Reset, Error, Some(syndrome::BAD_TRANSITION)),
        (Ready, Reset, Some(syndrome::STATE_MISMATCH)),
        (Reset, Ready, None),
        (Ready, Ready, None),
        (Ready, Error, None),
        (Error, Ready, Some(syndrome::BAD_TRANSITION)),
        (Error, Reset, None),
        (Reset, Ready, None),
        (Ready, Reset, None),
    ];
    for (from, to, refusal) in steps {
        for m in [
            modify_sq_input(sqn, from, to),
            modify_rq_input(rqn, from, to),
        ] {
            let want = refusal.map_or((CommandStatus::Ok, 0), |s| (bad, s));
            assert_eq!(d.status(&mut nic, &m), want, "{from:?} -> {to:?}");
        }
    }
    // A rate limit is not advertised; unknown bitmask bits are refused.
    let mut m = modify_sq_input(sqn, Reset, Ready);
    ModifySqIn::new_checked(&mut m[..])
        .unwrap()
        .set_modify_bitmask(modify_bitmask::SQ_RATE_LIMIT);
    assert_eq!(
        d.status(&mut nic, &m),
        (bad, syndrome::UNSUPPORTED_QUEUE_FEATURE)
    );
    ModifySqIn::new_checked(&mut m[..])
        .unwrap()
        .set_modify_bitmask(1 << 7);
    assert_eq!(d.status(&mut nic, &m), (bad, syndrome::BAD_FIELD_SELECT));
    // QUERY_RQ: state, CQ and the WQ as created.
    let mut m = input(Opcode::QueryRq, 0, QueryRqIn::<&[u8]>::LEN);
    put_dword(&mut m, 0x08, rqn);
    let o = d.ok(&mut nic, &m, QueryRqOut::<&[u8]>::LEN);
    let out = QueryRqOut::new_checked(&o.bytes[..]).unwrap();
    let c = out.rq_context();
    assert_eq!((c.state(), c.cqn()), (Reset, q.rx_cq.cqn));
    assert_eq!((c.wq().log_wq_sz(), c.wq().log_wq_stride()), (3, 4));
    assert_eq!(c.wq().dbr_addr(), p.dbr);
    // Unknown queues.
    assert_eq!(
        d.status(&mut nic, &modify_sq_input(0x7, Reset, Ready)),
        (CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT)
    );
}

#[test]
fn objects_in_use_cannot_be_destroyed() {
    let (mut nic, mut d, q) = up();
    let destroy = |op: Opcode, n: u32| {
        let mut m = input(op, 0, 0x10);
        put_dword(&mut m, 0x08, n);
        m
    };
    let in_use = (CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    // The CQ an SQ completes to, the TIS it sends through, the RQ a TIR delivers to, the TIR
    // a rule forwards to.
    for m in [
        destroy(Opcode::DestroyCq, q.tx_cq.cqn),
        destroy(Opcode::DestroyCq, q.rx_cq.cqn),
        destroy(Opcode::DestroyTis, q.tisn),
        destroy(Opcode::DestroyRq, q.rq.rqn),
        destroy(Opcode::DestroyTir, q.tirn),
    ] {
        assert_eq!(d.status(&mut nic, &m), in_use);
    }
    // The root table; DESTROY_FLOW_TABLE addresses the table at 0x14.
    let mut m = input(Opcode::DestroyFlowTable, 0, 0x40);
    put_dword(&mut m, 0x14, q.table);
    assert_eq!(d.status(&mut nic, &m), in_use);
    // A group with entries.
    let mut g = input(Opcode::DestroyFlowGroup, 0, 0x40);
    put_dword(&mut g, 0x14, q.table);
    put_dword(&mut g, 0x18, 1);
    assert_eq!(d.status(&mut nic, &g), in_use);
    // Teardown in mlx5e's order succeeds.
    let mut del = input(Opcode::DeleteFlowTableEntry, 0, 0x40);
    put_dword(&mut del, 0x14, q.table);
    d.ok(&mut nic, &del, 0x10);
    d.ok(&mut nic, &g, 0x10);
    let mut root = set_root_input(0);
    root[6..8].copy_from_slice(&1u16.to_be_bytes());
    d.ok(&mut nic, &root, 0x10);
    d.ok(&mut nic, &m, 0x10);
    for m in [
        destroy(Opcode::DestroyTir, q.tirn),
        destroy(Opcode::DestroyRq, q.rq.rqn),
        destroy(Opcode::DestroySq, q.sq.sqn),
        destroy(Opcode::DestroyTis, q.tisn),
        destroy(Opcode::DestroyCq, q.tx_cq.cqn),
        destroy(Opcode::DestroyCq, q.rx_cq.cqn),
    ] {
        d.ok(&mut nic, &m, 0x10);
    }
    let st = nic.function_state(VF0).unwrap();
    assert!(st.sqs.is_empty() && st.rqs.is_empty() && st.tirs.is_empty());
    assert!(st.steering.tables.is_empty() && st.steering.root.is_none());
}

/// Linux's steering core destroys the last table of the root level without unsetting the
/// root first (firmware accepts it): the root table goes, the root is unset, receive misses.
/// A table another table's miss leads to still may not go.
#[test]
fn the_root_table_can_be_destroyed_while_it_is_the_root() {
    let (mut nic, mut d, q) = up();
    let in_use = (CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    let destroy = |id: u32| {
        let mut m = input(Opcode::DestroyFlowTable, 0, 0x40);
        put_dword(&mut m, 0x14, id);
        m
    };
    // The root table, emptied in mlx5e's order, goes while it is the root.
    let mut del = input(Opcode::DeleteFlowTableEntry, 0, 0x40);
    put_dword(&mut del, 0x14, q.table);
    d.ok(&mut nic, &del, 0x10);
    let mut g = input(Opcode::DestroyFlowGroup, 0, 0x40);
    put_dword(&mut g, 0x14, q.table);
    put_dword(&mut g, 0x18, 1);
    d.ok(&mut nic, &g, 0x10);
    assert_eq!(
        nic.function_state(VF0).unwrap().steering.root,
        Some(q.table)
    );
    d.ok(&mut nic, &destroy(q.table), 0x10);
    let st = nic.function_state(VF0).unwrap();
    assert!(st.steering.tables.is_empty() && st.steering.root.is_none());
    // A table whose misses another table forwards to stays until that table is gone.
    let created = |d: &mut CmdDriver, nic: &mut Mlx5Nic, m: &[u8]| {
        let o = d.ok(nic, m, 0x10);
        CreateFlowTableOut::new_checked(&o.bytes[..])
            .unwrap()
            .table_id()
    };
    let t1 = created(&mut d, &mut nic, &create_flow_table_input(1, 2));
    let mut m = create_flow_table_input(0, 2);
    {
        let mut i = CreateFlowTableIn::new_checked(&mut m[..]).unwrap();
        let mut c = i.flow_table_context_mut();
        c.set_table_miss_action(miss_action::FORWARD);
        c.set_table_miss_id(t1);
    }
    let t0 = created(&mut d, &mut nic, &m);
    assert_eq!(d.status(&mut nic, &destroy(t1)), in_use);
    d.ok(&mut nic, &destroy(t0), 0x10);
    d.ok(&mut nic, &destroy(t1), 0x10);
    assert!(nic.function_state(VF0).unwrap().steering.tables.is_empty());
}

#[test]
fn tis_tir_and_rqt_inputs_are_checked() {
    let (mut nic, mut d, q) = up();
    use CommandStatus::*;
    let mut tls = create_tis_input(q.td);
    CreateTisIn::new_checked(&mut tls[..])
        .unwrap()
        .tis_context_mut()
        .set_tls_en(true);
    let mut lro = create_direct_tir_input(q.td, q.rq.rqn);
    CreateTirIn::new_checked(&mut lro[..])
        .unwrap()
        .tir_context_mut()
        .set_lro_enable_mask(1);
    let mut disp = create_direct_tir_input(q.td, q.rq.rqn);
    CreateTirIn::new_checked(&mut disp[..])
        .unwrap()
        .tir_context_mut()
        .set_disp_type(2);
    let rqt = d.create(&mut nic, &create_rqt_input(4, &[q.rq.rqn]));
    let cases = vec![
        (create_tis_input(0x55), BadResource, syndrome::NO_SUCH_TD),
        (tls, BadParam, syndrome::UNSUPPORTED_QUEUE_FEATURE),
        (
            create_direct_tir_input(q.td, 0x7),
            BadResource,
            syndrome::NO_SUCH_RQ,
        ),
        (
            create_direct_tir_input(0x55, q.rq.rqn),
            BadResource,
            syndrome::NO_SUCH_TD,
        ),
        (lro, BadParam, syndrome::UNSUPPORTED_QUEUE_FEATURE),
        (disp, BadParam, syndrome::BAD_DISPATCH),
        (
            create_indirect_tir_input(q.td, rqt, 3, &[], 0),
            BadParam,
            syndrome::UNSUPPORTED_HASH,
        ),
        (
            create_indirect_tir_input(q.td, 0x7F, rx_hash_fn::TOEPLITZ, &[1; 40], 3),
            BadResource,
            syndrome::NO_SUCH_RQT,
        ),
        (create_rqt_input(4, &[]), BadParam, syndrome::BAD_RQT_SIZE),
        (
            create_rqt_input(1, &[q.rq.rqn, q.rq.rqn]),
            BadParam,
            syndrome::BAD_RQT_SIZE,
        ),
        (
            create_rqt_input(512, &[q.rq.rqn]),
            BadParam,
            syndrome::BAD_RQT_SIZE,
        ),
        (
            create_rqt_input(2, &[0x7]),
            BadResource,
            syndrome::NO_SUCH_RQ,
        ),
    ];
    refused_all(&mut nic, &mut d, &cases);
    // MODIFY_TIS: the priority; LAG affinity (one port) and unknown bits refused. QUERY_TIS.
    use mlx5_hw::commands::rx::{ModifyTisIn, QueryTisOut, modify_tis_bitmask};
    let mut mt = input(Opcode::ModifyTis, 0, ModifyTisIn::<&[u8]>::LEN);
    {
        let mut i = ModifyTisIn::new_checked(&mut mt[..]).unwrap();
        i.set_tisn(q.tisn);
        i.set_modify_bitmask(modify_tis_bitmask::PRIO);
        i.tis_context_mut().set_prio(6);
    }
    d.ok(&mut nic, &mt, 0x10);
    let mut qt = input(Opcode::QueryTis, 0, 0x10);
    put_dword(&mut qt, 0x08, q.tisn);
    let o = d.ok(&mut nic, &qt, QueryTisOut::<&[u8]>::LEN);
    let out = QueryTisOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(
        (
            out.tis_context().prio(),
            out.tis_context().transport_domain()
        ),
        (6, q.td)
    );
    ModifyTisIn::new_checked(&mut mt[..])
        .unwrap()
        .set_modify_bitmask(modify_tis_bitmask::LAG_TX_PORT_AFFINITY);
    assert_eq!(
        d.status(&mut nic, &mt),
        (BadParam, syndrome::UNSUPPORTED_QUEUE_FEATURE)
    );
    ModifyTisIn::new_checked(&mut mt[..])
        .unwrap()
        .set_modify_bitmask(1 << 8);
    assert_eq!(
        d.status(&mut nic, &mt),
        (BadParam, syndrome::BAD_FIELD_SELECT)
    );
    // An RQT's list beyond what the input carries.
    let mut short = create_rqt_input(4, &[q.rq.rqn]);
    short[0x20 + 0x18 + 2..0x20 + 0x18 + 4].copy_from_slice(&3u16.to_be_bytes());
    assert_eq!(
        d.status(&mut nic, &short),
        (BadParam, syndrome::BAD_RQT_SIZE)
    );
    // An indirect TIR over the RQT; the RQT may not go while the TIR hashes over it.
    let tir = d.create(
        &mut nic,
        &create_indirect_tir_input(q.td, rqt, rx_hash_fn::TOEPLITZ, &[7; 40], 3),
    );
    let mut m = input(Opcode::DestroyRqt, 0, 0x10);
    put_dword(&mut m, 0x08, rqt);
    assert_eq!(
        d.status(&mut nic, &m),
        (BadResource, syndrome::OBJECT_IN_USE)
    );
    // MODIFY_RQT: the list up to the maximum size; MODIFY_TIR: self-loopback and hash.
    let mut mr = create_rqt_input(4, &[q.rq.rqn, q.rq.rqn]);
    mr[0..2].copy_from_slice(&u16::from(Opcode::ModifyRqt).to_be_bytes());
    {
        let mut i = ModifyRqtIn::new_checked(&mut mr[..]).unwrap();
        i.set_rqtn(rqt);
        i.set_modify_bitmask(MODIFY_RQT_RQN_LIST);
    }
    d.ok(&mut nic, &mr, 0x10);
    assert_eq!(
        nic.function_state(VF0).unwrap().rqts[&rqt].rqns,
        vec![q.rq.rqn, q.rq.rqn]
    );
    let mut mt = input(Opcode::ModifyTir, 0, ModifyTirIn::<&[u8]>::LEN);
    {
        let mut i = ModifyTirIn::new_checked(&mut mt[..]).unwrap();
        i.set_tirn(tir);
        i.set_modify_bitmask(modify_tir_bitmask::SELF_LB_EN);
        i.tir_context_mut().set_self_lb_block(3);
    }
    d.ok(&mut nic, &mt, 0x10);
    assert_eq!(nic.function_state(VF0).unwrap().tirs[&tir].self_lb_block, 3);
    ModifyTirIn::new_checked(&mut mt[..])
        .unwrap()
        .set_modify_bitmask(1 << 9);
    assert_eq!(
        d.status(&mut nic, &mt),
        (BadParam, syndrome::BAD_FIELD_SELECT)
    );
}

#[test]
fn flow_steering_inputs_are_checked() {
    let (mut nic, mut d, q) = up();
    use CommandStatus::*;
    let t = d.create(&mut nic, &create_flow_table_input(1, 2));
    let deep = d.create(&mut nic, &create_flow_table_input(5, 2));
    let g = d.create(&mut nic, &create_flow_group_input(t, 0, 1, &[0; 0x40]));
    let fdb = {
        let mut m = create_flow_table_input(0, 2);
        CreateFlowTableIn::new_checked(&mut m[..])
            .unwrap()
            .set_table_type(table_type::FDB);
        m
    };
    let other = {
        let mut m = create_flow_table_input(0, 2);
        let mut i = CreateFlowTableIn::new_checked(&mut m[..]).unwrap();
        i.set_other_vport(true);
        i.set_vport_number(1);
        m
    };
    let misc = {
        let mut m = create_flow_group_input(t, 2, 2, &[0; 0x40]);
        m[0x3F] = match_criteria_enable::MISC_PARAMETERS;
        m
    };
    let mut tcp_flags = [0u8; 0x40];
    tcp_flags[0x12] = 0x01;
    let count = {
        let mut m = set_fte_input(t, g, 1, &[0; 0x40], Some(q.tirn));
        SetFlowTableEntryIn::new_checked(&mut m[..])
            .unwrap()
            .flow_context_mut()
            .set_action(action::FWD_DEST | action::COUNT);
        m
    };
    let to_shallow = {
        let mut m = set_fte_input(deep, 0, 0, &[0; 0x40], None);
        let mut i = SetFlowTableEntryIn::new_checked(&mut m[..]).unwrap();
        let mut c = i.flow_context_mut();
        c.set_action(action::FWD_DEST);
        c.set_destination_list_size(1);
        c.set_destination(0, destination(destination_type::FLOW_TABLE, t));
        m
    };
    let deep_group = d.create(&mut nic, &create_flow_group_input(deep, 0, 0, &[0; 0x40]));
    let mut to_shallow = to_shallow;
    put_dword(&mut to_shallow, 0x44, deep_group);
    let cases = vec![
        (fdb, BadParam, syndrome::UNSUPPORTED_TABLE_TYPE),
        (other, BadParam, syndrome::OTHER_FUNCTION),
        (
            create_flow_table_input(64, 2),
            BadParam,
            syndrome::BAD_TABLE_SIZE,
        ),
        (
            create_flow_table_input(0, 17),
            BadParam,
            syndrome::BAD_TABLE_SIZE,
        ),
        (
            create_flow_group_input(t, 1, 3, &[0; 0x40]),
            BadParam,
            syndrome::BAD_FLOW_RANGE,
        ),
        (
            create_flow_group_input(t, 3, 4, &[0; 0x40]),
            BadParam,
            syndrome::BAD_FLOW_RANGE,
        ),
        (misc, BadParam, syndrome::UNSUPPORTED_MATCH),
        (
            create_flow_group_input(t, 2, 3, &tcp_flags),
            BadParam,
            syndrome::UNSUPPORTED_MATCH,
        ),
        (
            create_flow_group_input(0x77, 0, 0, &[0; 0x40]),
            BadResource,
            syndrome::NO_SUCH_FLOW_TABLE,
        ),
        (
            set_fte_input(t, g, 2, &[0; 0x40], Some(q.tirn)),
            BadParam,
            syndrome::BAD_FLOW_INDEX,
        ),
        (
            set_fte_input(t, 9, 0, &[0; 0x40], Some(q.tirn)),
            BadResource,
            syndrome::NO_SUCH_FLOW_GROUP,
        ),
        (
            set_fte_input(t, g, 0, &[0; 0x40], Some(0x7)),
            BadResource,
            syndrome::NO_SUCH_TIR,
        ),
        (count, BadParam, syndrome::UNSUPPORTED_ACTION),
        (to_shallow, BadParam, syndrome::BAD_TABLE_LEVEL),
        (
            set_root_input(0x77),
            BadResource,
            syndrome::NO_SUCH_FLOW_TABLE,
        ),
    ];
    refused_all(&mut nic, &mut d, &cases);
    // An index that already holds a rule.
    d.ok(&mut nic, &set_fte_input(t, g, 0, &[0; 0x40], None), 0x10);
    assert_eq!(
        d.status(&mut nic, &set_fte_input(t, g, 0, &[0; 0x40], None)),
        (BadParam, syndrome::BAD_FLOW_INDEX)
    );
    // op_mod 1 (modify an entry) is not advertised.
    let mut modify = set_fte_input(t, g, 1, &[0; 0x40], None);
    modify[6..8].copy_from_slice(&1u16.to_be_bytes());
    assert_eq!(d.status(&mut nic, &modify), (BadOp, syndrome::BAD_OP_MOD));
}

#[test]
fn only_physical_address_keys_with_local_rights_are_created() {
    let (mut nic, mut d, q) = up();
    use mlx5_hw::commands::resources::{CreateMkeyIn, mkey_access_mode};
    let edit = |f: &dyn Fn(&mut CreateMkeyIn<&mut [u8]>)| {
        let mut m = create_mkey_input(q.pd);
        f(&mut CreateMkeyIn::new_checked(&mut m[..]).unwrap());
        m
    };
    use CommandStatus::*;
    let cases = vec![
        (
            edit(&|i| {
                i.mkey_context_mut()
                    .set_access_mode_1_0(mkey_access_mode::MTT)
            }),
            BadParam,
            syndrome::UNSUPPORTED_MKEY,
        ),
        (
            edit(&|i| i.mkey_context_mut().set_access_mode_4_2(1)),
            BadParam,
            syndrome::UNSUPPORTED_MKEY,
        ),
        (
            edit(&|i| i.mkey_context_mut().set_rw(true)),
            BadParam,
            syndrome::UNSUPPORTED_MKEY,
        ),
        (
            edit(&|i| i.mkey_context_mut().set_umr_en(true)),
            BadParam,
            syndrome::UNSUPPORTED_MKEY,
        ),
        (
            edit(&|i| i.set_pg_access(true)),
            BadParam,
            syndrome::UNSUPPORTED_MKEY,
        ),
        (create_mkey_input(0x99), BadResource, syndrome::NO_SUCH_PD),
    ];
    refused_all(&mut nic, &mut d, &cases);
    let index = d.create(&mut nic, &create_mkey_input(q.pd));
    assert_eq!(index, (q.lkey >> 8) + 1);
    let mut m = input(Opcode::DestroyMkey, 0, 0x10);
    put_dword(&mut m, 0x08, index);
    d.ok(&mut nic, &m, 0x10);
    assert_eq!(
        d.status(&mut nic, &m),
        (BadResource, syndrome::NO_SUCH_OBJECT)
    );
}

#[test]
fn the_flow_table_page_is_advertised_with_nic_flow_table() {
    let (mut nic, mut d, _) = up();
    let general = d.query_cap(&mut nic, 1);
    assert!(
        GeneralCaps::new_checked(&general[..])
            .unwrap()
            .nic_flow_table()
    );
    // QUERY_HCA_CAP op_mod (type 7 << 1) | current.
    let page = d.query_cap(&mut nic, (7 << 1) | 1);
    let ft = FlowTableCaps::new_checked(&page[..]).unwrap();
    let rx = ft.nic_rx();
    assert!(rx.ft_support() && rx.modify_root() && rx.flow_tag());
    assert!(rx.max_ft_level() >= mlx5_hw::caps::FT_KERNEL_MIN_LEVEL);
    assert!(!rx.flow_modify_en() && !rx.flow_table_modify() && !ft.nic_tx().ft_support());
}

/// mlx5e's drop RQ is a one-entry cyclic WQ (log_wq_sz 0) with PD 0 (its context is zeroed
/// but for the type and stride): accepted; a one-entry SQ too, but an SQ needs a real PD.
#[test]
fn one_entry_work_queues_and_the_pd_less_rq_are_accepted() {
    let (mut nic, mut d, q) = up();
    let mut rq = rq_params(&mut d, &q);
    rq.log_size = 0;
    rq.pd = 0;
    assert_eq!(
        d.status(&mut nic, &create_rq_input(&rq)),
        (CommandStatus::Ok, 0)
    );
    let mut sq = sq_params(&mut d, &q);
    sq.log_size = 0;
    assert_eq!(
        d.status(&mut nic, &create_sq_input(&sq)),
        (CommandStatus::Ok, 0)
    );
    sq.pd = 0;
    assert_eq!(
        d.status(&mut nic, &create_sq_input(&sq)),
        (CommandStatus::BadResource, syndrome::NO_SUCH_PD)
    );
    // Above the capability is still refused.
    sq.pd = q.pd;
    sq.log_size = 16;
    assert_eq!(
        d.status(&mut nic, &create_sq_input(&sq)),
        (CommandStatus::BadParam, syndrome::BAD_QUEUE_SIZE)
    );
}

/// mlx5e's internal control SQ is created without a TIS (`tis_lst_sz` 0): accepted, reported
/// so by QUERY_SQ; two TISes are still refused.
#[test]
fn an_sq_without_a_tis_is_accepted() {
    let (mut nic, mut d, q) = up();
    let p = sq_params(&mut d, &q);
    let mut m = create_sq_input(&p);
    {
        let mut i = CreateSqIn::new_checked(&mut m[..]).unwrap();
        i.sq_context_mut().set_tis_lst_sz(0);
        i.sq_context_mut().set_tis_num_0(0);
    }
    let sqn = d.create(&mut nic, &m);
    let mut qm = input(Opcode::QuerySq, 0, 0x10);
    put_dword(&mut qm, 0x08, sqn);
    let o = d.ok(&mut nic, &qm, QuerySqOut::<&[u8]>::LEN);
    let out = QuerySqOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(out.sq_context().tis_lst_sz(), 0);
    // The TIS of the other SQs can still be destroyed only when unused: the TIS-less SQ
    // holds none.
    CreateSqIn::new_checked(&mut m[..])
        .unwrap()
        .sq_context_mut()
        .set_tis_lst_sz(2);
    assert_eq!(
        d.status(&mut nic, &m),
        (CommandStatus::BadParam, syndrome::BAD_TIS_LIST)
    );
}

/// mlx5e sets end padding mode ALIGN on every RQ: taken for an RQ; an SQ has no end padding.
#[test]
fn rq_end_padding_align_is_accepted_an_sqs_is_not() {
    let (mut nic, mut d, q) = up();
    let p = rq_params(&mut d, &q);
    let mut m = create_rq_input(&p);
    CreateRqIn::new_checked(&mut m[..])
        .unwrap()
        .rq_context_mut()
        .wq_mut()
        .set_end_padding_mode(1);
    assert_eq!(d.status(&mut nic, &m), (CommandStatus::Ok, 0));
    CreateRqIn::new_checked(&mut m[..])
        .unwrap()
        .rq_context_mut()
        .wq_mut()
        .set_end_padding_mode(2);
    assert_eq!(
        d.status(&mut nic, &m),
        (CommandStatus::BadParam, syndrome::UNSUPPORTED_QUEUE_FEATURE)
    );
    let p = sq_params(&mut d, &q);
    let mut m = create_sq_input(&p);
    CreateSqIn::new_checked(&mut m[..])
        .unwrap()
        .sq_context_mut()
        .wq_mut()
        .set_end_padding_mode(1);
    assert_eq!(
        d.status(&mut nic, &m),
        (CommandStatus::BadParam, syndrome::UNSUPPORTED_QUEUE_FEATURE)
    );
}

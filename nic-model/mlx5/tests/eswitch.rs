//! The E-Switch: the vport commands (the PF assigning a VF's MAC and admin state, a VF reading
//! its own context and publishing its address lists, counters), every malformed vport command
//! with its status, syndrome and counter, a VF that cannot reach another vport, and the
//! switching of frames between vports and the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hw_common::MacAddress;
use hw_common::frame::{ETHERTYPE_IPV4, build};
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::vport::{
    ModifyNicVportContextIn, ModifyVportStateIn, NicVportContext, QueryNicVportContextIn,
    QueryNicVportContextOut, QueryVportCounterIn, QueryVportCounterOut, QueryVportStateIn,
    QueryVportStateOut, VportCounter, VportState, allowed_list_type, field_select,
    modify_nic_vport_context_in_len, vport_state_op,
};
use mlx5_model::testing::{
    CmdDriver, CmdError, InjectVerdict, Output, inject_tx, input, switch_device, take_deliveries,
};
use mlx5_model::{DEFAULT_PF_MAC, FunctionId, Mlx5Nic, syndrome};

const PF: FunctionId = FunctionId::Pf;
const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);
const VF2: FunctionId = FunctionId::Vf(2);

const MAC0: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 0x10]);
const MAC1: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 0x11]);
const MAC2: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 0x12]);
const PEER: MacAddress = MacAddress([0x02, 0xBB, 0, 0, 0, 0x01]);
const MCAST: MacAddress = MacAddress([0x01, 0x00, 0x5E, 0, 0, 0x01]);

fn up(nic: &mut Mlx5Nic, f: FunctionId) -> CmdDriver {
    let mut d = CmdDriver::attach(nic, f);
    d.bring_up(nic);
    d
}

/// Three VFs; the PF and VFs 0 and 1 initialized.
fn setup() -> (Mlx5Nic, CmdDriver, CmdDriver, CmdDriver) {
    let mut nic = switch_device(3);
    let pf = up(&mut nic, PF);
    let v0 = up(&mut nic, VF0);
    let v1 = up(&mut nic, VF1);
    (nic, pf, v0, v1)
}

fn refused(o: Result<Output, CmdError>, status: CommandStatus, synd: u32) {
    let o = o.unwrap();
    assert_eq!((o.status, o.syndrome), (status, synd));
    assert!(
        o.bytes[8..].iter().all(|&b| b == 0),
        "nothing but the header"
    );
}

/// Runs `cmd` on `d`, expects the refusal, and checks the device and function counters
/// moved by one.
fn refused_counted(
    nic: &mut Mlx5Nic,
    d: &mut CmdDriver,
    cmd: &[u8],
    out_len: usize,
    status: CommandStatus,
    synd: u32,
) {
    let before = nic.function_counters(d.f).unwrap().command_errors;
    let dev_before = nic.counters().command_errors;
    refused(d.exec(nic, cmd, out_len), status, synd);
    assert_eq!(
        nic.function_counters(d.f).unwrap().command_errors,
        before + 1
    );
    assert_ne!(
        nic.counters().command_errors,
        dev_before,
        "{synd:#x} counted"
    );
}

fn modify_ctx(
    other: bool,
    vport: u16,
    select: u32,
    entries: usize,
    f: impl FnOnce(&mut NicVportContext<&mut [u8]>),
) -> Vec<u8> {
    let mut b = vec![0u8; modify_nic_vport_context_in_len(entries).unwrap()];
    let mut m = ModifyNicVportContextIn::new_checked(&mut b[..]).unwrap();
    m.set_header(0);
    m.set_other_vport(other);
    m.set_vport_number(vport);
    m.set_field_select(select);
    f(&mut m.nic_vport_context_mut());
    b
}

fn set_mac(other: bool, vport: u16, mac: MacAddress) -> Vec<u8> {
    modify_ctx(other, vport, field_select::PERMANENT_ADDRESS, 0, |c| {
        c.set_permanent_address(mac)
    })
}

fn query_ctx(other: bool, vport: u16, list: u8) -> Vec<u8> {
    let mut b = vec![0u8; 0x10];
    let mut q = QueryNicVportContextIn::new_checked(&mut b[..]).unwrap();
    q.set_header(0);
    q.set_other_vport(other);
    q.set_vport_number(vport);
    q.set_allowed_list_type(list);
    b
}

/// QUERY_NIC_VPORT_CONTEXT output with room for `entries` list entries.
fn ctx_out_len(entries: usize) -> usize {
    0x110 + 8 * entries
}

fn permanent_mac(o: &Output) -> MacAddress {
    QueryNicVportContextOut::new_checked(&o.bytes[..])
        .unwrap()
        .nic_vport_context()
        .permanent_address()
}

fn vport_state(op_mod: u16, other: bool, vport: u16) -> Vec<u8> {
    let mut b = vec![0u8; 0x10];
    let mut q = QueryVportStateIn::new_checked(&mut b[..]).unwrap();
    q.set_header(op_mod);
    q.set_other_vport(other);
    q.set_vport_number(vport);
    b
}

fn modify_state(op_mod: u16, other: bool, vport: u16, admin: u8) -> Vec<u8> {
    let mut b = vec![0u8; 0x10];
    let mut m = ModifyVportStateIn::new_checked(&mut b[..]).unwrap();
    m.set_header(op_mod);
    m.set_other_vport(other);
    m.set_vport_number(vport);
    m.set_raw_admin_state(admin);
    b
}

fn vport_counter(other: bool, vport: u16, port: u8, clear: bool) -> Vec<u8> {
    let mut b = vec![0u8; 0x20];
    let mut q = QueryVportCounterIn::new_checked(&mut b[..]).unwrap();
    q.set_header(0);
    q.set_other_vport(other);
    q.set_vport_number(vport);
    q.set_port_num(port);
    q.set_clear(clear);
    b
}

fn frame(dst: MacAddress, src: MacAddress, tag: u8) -> Vec<u8> {
    build(dst, src, ETHERTYPE_IPV4, &[tag; 46])
}

#[test]
fn a_vf_reads_the_mac_the_pf_assigned() {
    let (mut nic, mut pf, mut v0, _v1) = setup();
    // Before: no MAC (Linux mlx5e then picks a random one); the PF has its own.
    let o = v0.ok(&mut nic, &query_ctx(false, 0, 0), ctx_out_len(0));
    assert_eq!(permanent_mac(&o), MacAddress::default());
    let o = pf.ok(&mut nic, &query_ctx(false, 0, 0), ctx_out_len(0));
    assert_eq!(permanent_mac(&o), DEFAULT_PF_MAC);
    // `ip link set pf vf 0 mac M`: vport 1, other_vport.
    pf.ok(&mut nic, &set_mac(true, 1, MAC0), 0x10);
    let o = v0.ok(&mut nic, &query_ctx(false, 0, 0), ctx_out_len(0));
    assert_eq!(permanent_mac(&o), MAC0);
    let o = pf.ok(&mut nic, &query_ctx(true, 1, 0), ctx_out_len(0));
    assert_eq!(permanent_mac(&o), MAC0);
    assert_eq!(nic.vport_context(VF0).unwrap().permanent_address, MAC0);
    assert_eq!(
        nic.vport_context(VF1).unwrap().permanent_address,
        MacAddress::default()
    );
    // A VF reset keeps what the PF assigned.
    nic.reset_function(VF0);
    assert_eq!(nic.vport_context(VF0).unwrap().permanent_address, MAC0);
}

#[test]
fn a_vf_publishes_its_address_lists_and_reads_them_back() {
    let (mut nic, _pf, mut v0, _v1) = setup();
    let uc = modify_ctx(false, 0, field_select::ADDRESSES_LIST, 2, |c| {
        c.set_allowed_list_type(allowed_list_type::UNICAST);
        c.set_allowed_list_size(2);
        c.set_address(0, MAC0);
        c.set_address(1, MAC2);
    });
    v0.ok(&mut nic, &uc, 0x10);
    let mc = modify_ctx(
        false,
        0,
        field_select::ADDRESSES_LIST | field_select::MTU,
        2,
        |c| {
            c.set_allowed_list_type(allowed_list_type::MULTICAST);
            c.set_allowed_list_size(2);
            c.set_address(0, MacAddress::BROADCAST);
            c.set_address(1, MCAST);
            c.set_mtu(1500);
        },
    );
    v0.ok(&mut nic, &mc, 0x10);
    let o = v0.ok(
        &mut nic,
        &query_ctx(false, 0, allowed_list_type::UNICAST),
        ctx_out_len(4),
    );
    let q = QueryNicVportContextOut::new_checked(&o.bytes[..]).unwrap();
    let c = q.nic_vport_context();
    assert_eq!(c.allowed_list_size(), 2);
    assert_eq!((c.address(0), c.address(1)), (Some(MAC0), Some(MAC2)));
    assert_eq!(c.mtu(), 1500);
    let o = v0.ok(
        &mut nic,
        &query_ctx(false, 0, allowed_list_type::MULTICAST),
        ctx_out_len(2),
    );
    let q = QueryNicVportContextOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(q.nic_vport_context().address(1), Some(MCAST));
    // An output with room for one entry gets one, and says so.
    let o = v0.ok(
        &mut nic,
        &query_ctx(false, 0, allowed_list_type::UNICAST),
        ctx_out_len(1),
    );
    let q = QueryNicVportContextOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(q.nic_vport_context().allowed_list_size(), 1);
    // The published unicast address now switches to VF 0.
    take_deliveries(&mut nic);
    assert_eq!(
        inject_tx(&mut nic, VF1, &frame(MAC2, MAC1, 1)),
        InjectVerdict::Accepted
    );
    assert_eq!(take_deliveries(&mut nic).len(), 1);
}

#[test]
fn a_vf_cannot_name_another_vport_or_act_as_the_manager() {
    let (mut nic, mut pf, mut v0, _v1) = setup();
    pf.ok(&mut nic, &set_mac(true, 2, MAC1), 0x10);
    let before = nic.vport_context(VF1).cloned();
    let bp = CommandStatus::BadParam;
    let nem = syndrome::NOT_ESWITCH_MANAGER;
    for vport in [0, 1, 2, 3] {
        refused_counted(
            &mut nic,
            &mut v0,
            &set_mac(true, vport, MAC0),
            0x10,
            bp,
            nem,
        );
        refused_counted(
            &mut nic,
            &mut v0,
            &query_ctx(true, vport, 0),
            ctx_out_len(0),
            bp,
            nem,
        );
        let q = vport_state(vport_state_op::ESW_VPORT, true, vport);
        refused_counted(&mut nic, &mut v0, &q, 0x10, bp, nem);
        let m = modify_state(vport_state_op::ESW_VPORT, true, vport, 0);
        refused_counted(&mut nic, &mut v0, &m, 0x10, bp, nem);
        let c = vport_counter(true, vport, 0, true);
        refused_counted(&mut nic, &mut v0, &c, 0x210, bp, nem);
    }
    // Its own vport: the permanent MAC and the admin state are the manager's.
    refused_counted(&mut nic, &mut v0, &set_mac(false, 0, MAC0), 0x10, bp, nem);
    let m = modify_state(vport_state_op::ESW_VPORT, false, 0, 0);
    refused_counted(&mut nic, &mut v0, &m, 0x10, bp, nem);
    let q = vport_state(vport_state_op::UPLINK, false, 0);
    refused_counted(&mut nic, &mut v0, &q, 0x10, bp, nem);
    assert_eq!(nic.vport_context(VF1).cloned(), before);
    assert_eq!(
        nic.vport_context(VF0).unwrap().permanent_address,
        MacAddress::default()
    );
}

#[test]
fn every_malformed_vport_command_is_refused_counted_and_changes_nothing() {
    let (mut nic, mut pf, mut v0, _v1) = setup();
    let bp = CommandStatus::BadParam;
    let before: Vec<_> = (0..4)
        .map(|v| nic.vport_context(FunctionId::Vf(v)).cloned())
        .collect();
    // Own vport with a vport number.
    let c = query_ctx(false, 1, 0);
    refused_counted(
        &mut nic,
        &mut v0,
        &c,
        ctx_out_len(0),
        bp,
        syndrome::VPORT_WITHOUT_OTHER_VPORT,
    );
    // A vport beyond the enabled VFs.
    for vport in [4, 0xFFFF] {
        let c = set_mac(true, vport, MAC0);
        refused_counted(&mut nic, &mut pf, &c, 0x10, bp, syndrome::NO_SUCH_VPORT);
        let c = query_ctx(true, vport, 0);
        refused_counted(
            &mut nic,
            &mut pf,
            &c,
            ctx_out_len(0),
            bp,
            syndrome::NO_SUCH_VPORT,
        );
    }
    // op_mods.
    let c = vport_state(3, false, 0);
    refused_counted(
        &mut nic,
        &mut v0,
        &c,
        0x10,
        CommandStatus::BadOp,
        syndrome::BAD_OP_MOD,
    );
    let c = modify_state(vport_state_op::VNIC_VPORT, true, 1, 0);
    refused_counted(
        &mut nic,
        &mut pf,
        &c,
        0x10,
        CommandStatus::BadOp,
        syndrome::BAD_OP_MOD,
    );
    let mut c = query_ctx(false, 0, 0);
    c[6..8].copy_from_slice(&1u16.to_be_bytes());
    refused_counted(
        &mut nic,
        &mut v0,
        &c,
        ctx_out_len(0),
        CommandStatus::BadOp,
        syndrome::BAD_OP_MOD,
    );
    // MODIFY_VPORT_STATE: a state that does not exist; the PF's own vport.
    let c = modify_state(vport_state_op::ESW_VPORT, true, 1, 3);
    refused_counted(&mut nic, &mut pf, &c, 0x10, bp, syndrome::BAD_VPORT_STATE);
    let c = modify_state(vport_state_op::ESW_VPORT, false, 0, 0);
    refused_counted(&mut nic, &mut pf, &c, 0x10, bp, syndrome::NO_SUCH_VPORT);
    let c = modify_state(vport_state_op::ESW_VPORT, true, 0, 0);
    refused_counted(&mut nic, &mut pf, &c, 0x10, bp, syndrome::NO_SUCH_VPORT);
    // List types.
    let c = query_ctx(false, 0, 5);
    refused_counted(
        &mut nic,
        &mut v0,
        &c,
        ctx_out_len(0),
        bp,
        syndrome::BAD_LIST_TYPE,
    );
    let c = modify_ctx(false, 0, field_select::ADDRESSES_LIST, 1, |c| {
        c.set_allowed_list_type(allowed_list_type::VLAN);
        c.set_allowed_list_size(1);
    });
    refused_counted(&mut nic, &mut v0, &c, 0x10, bp, syndrome::BAD_LIST_TYPE);
    // Field selects.
    let c = modify_ctx(false, 0, field_select::ROCE_EN, 0, |c| c.set_roce_en(true));
    refused_counted(&mut nic, &mut v0, &c, 0x10, bp, syndrome::UNSUPPORTED_FIELD);
    let c = modify_ctx(false, 0, field_select::AFFILIATION, 0, |_| {});
    refused_counted(&mut nic, &mut v0, &c, 0x10, bp, syndrome::UNSUPPORTED_FIELD);
    let c = modify_ctx(false, 0, 1 << 12 | field_select::MTU, 0, |c| {
        c.set_mtu(1500)
    });
    refused_counted(&mut nic, &mut v0, &c, 0x10, bp, syndrome::BAD_FIELD_SELECT);
    // Lists: too long (log_max_current_uc_list 4: 16 entries), longer than the input,
    // wrong kind of address.
    let c = modify_ctx(false, 0, field_select::ADDRESSES_LIST, 17, |c| {
        c.set_allowed_list_size(17);
        for k in 0..17 {
            c.set_address(k, MacAddress([2, 0, 0, 0, 0, k as u8 + 1]));
        }
    });
    refused_counted(&mut nic, &mut v0, &c, 0x10, bp, syndrome::LIST_TOO_LONG);
    let c = modify_ctx(false, 0, field_select::ADDRESSES_LIST, 1, |c| {
        c.set_allowed_list_size(2);
        c.set_address(0, MAC0);
    });
    refused_counted(
        &mut nic,
        &mut v0,
        &c,
        0x10,
        CommandStatus::BadInputLength,
        syndrome::LIST_SHORT,
    );
    for (kind, mac) in [
        (allowed_list_type::UNICAST, MCAST),
        (allowed_list_type::UNICAST, MacAddress::default()),
        (allowed_list_type::MULTICAST, MAC0),
    ] {
        let c = modify_ctx(false, 0, field_select::ADDRESSES_LIST, 1, |c| {
            c.set_allowed_list_type(kind);
            c.set_allowed_list_size(1);
            c.set_address(0, mac);
        });
        refused_counted(&mut nic, &mut v0, &c, 0x10, bp, syndrome::BAD_MAC);
    }
    let c = set_mac(true, 1, MCAST);
    refused_counted(&mut nic, &mut pf, &c, 0x10, bp, syndrome::BAD_MAC);
    // MTU and inline mode; a refused command applies none of its fields (the list too).
    let c = modify_ctx(
        false,
        0,
        field_select::MTU | field_select::ADDRESSES_LIST,
        1,
        |c| {
            c.set_mtu(10_001);
            c.set_allowed_list_size(1);
            c.set_address(0, MAC0);
        },
    );
    refused_counted(&mut nic, &mut v0, &c, 0x10, bp, syndrome::BAD_MTU);
    let c = modify_ctx(false, 0, field_select::MIN_INLINE, 0, |c| {
        c.set_min_wqe_inline_mode(mlx5_hw::wqe::InlineMode::Unknown(7))
    });
    refused_counted(&mut nic, &mut v0, &c, 0x10, bp, syndrome::BAD_INLINE_MODE);
    // Counters: one port.
    let c = vport_counter(false, 0, 2, false);
    refused_counted(&mut nic, &mut v0, &c, 0x210, bp, syndrome::BAD_PORT);
    // Lengths.
    let c = set_mac(true, 1, MAC0);
    refused_counted(
        &mut nic,
        &mut pf,
        &c[..0x1FF],
        0x10,
        CommandStatus::BadInputLength,
        syndrome::INPUT_TOO_SHORT,
    );
    let c = query_ctx(false, 0, 0);
    refused_counted(
        &mut nic,
        &mut v0,
        &c,
        0x10F,
        CommandStatus::BadOutputLength,
        syndrome::OUTPUT_TOO_SHORT,
    );
    let c = vport_counter(false, 0, 0, false);
    refused_counted(
        &mut nic,
        &mut v0,
        &c,
        0x200,
        CommandStatus::BadOutputLength,
        syndrome::OUTPUT_TOO_SHORT,
    );
    let c = vport_state(0, false, 0);
    refused_counted(
        &mut nic,
        &mut v0,
        &c[..0x0C],
        0x10,
        CommandStatus::BadInputLength,
        syndrome::INPUT_TOO_SHORT,
    );
    // Before INIT_HCA.
    let mut v2 = CmdDriver::attach(&mut nic, VF2);
    v2.ok(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    let c = query_ctx(false, 0, 0);
    refused_counted(
        &mut nic,
        &mut v2,
        &c,
        ctx_out_len(0),
        CommandStatus::BadSysState,
        syndrome::NOT_INITIALIZED,
    );
    let after: Vec<_> = (0..4)
        .map(|v| nic.vport_context(FunctionId::Vf(v)).cloned())
        .collect();
    assert_eq!(before, after, "no refused command changed a vport");
}

#[test]
fn the_pf_sets_a_vf_down_and_up() {
    let (mut nic, mut pf, mut v0, _v1) = setup();
    let state = |d: &mut CmdDriver, nic: &mut Mlx5Nic, q: &[u8]| {
        let o = d.ok(nic, q, 0x10);
        let s = QueryVportStateOut::new_checked(&o.bytes[..]).unwrap();
        (s.admin_state(), s.state())
    };
    let own = vport_state(vport_state_op::VNIC_VPORT, false, 0);
    assert_eq!(
        state(&mut v0, &mut nic, &own),
        (VportState::Follow, VportState::Up),
        "follow the uplink, which is up: mlx5e's carrier is on"
    );
    pf.ok(
        &mut nic,
        &modify_state(vport_state_op::ESW_VPORT, true, 1, 0),
        0x10,
    );
    assert_eq!(
        state(&mut v0, &mut nic, &own),
        (VportState::Down, VportState::Down)
    );
    let q = vport_state(vport_state_op::ESW_VPORT, true, 1);
    assert_eq!(
        state(&mut pf, &mut nic, &q),
        (VportState::Down, VportState::Down)
    );
    let up = vport_state(vport_state_op::UPLINK, false, 0);
    assert_eq!(
        state(&mut pf, &mut nic, &up),
        (VportState::Up, VportState::Up)
    );
    // A down vport neither sends nor receives.
    nic.set_vport_mac(VF0, MAC0).unwrap();
    take_deliveries(&mut nic);
    assert_eq!(
        inject_tx(&mut nic, VF0, &frame(PEER, MAC0, 1)),
        InjectVerdict::Dropped
    );
    assert_eq!(nic.eswitch_counters().tx_vport_down, 1);
    assert_eq!(
        inject_tx(&mut nic, VF1, &frame(MAC0, MAC1, 2)),
        InjectVerdict::Dropped,
        "its address is local: not sent to the wire, no vport can take it"
    );
    assert_eq!(nic.eswitch_counters().tx_local_drops, 1);
    assert_eq!(nic.wire_receive(&frame(MacAddress::BROADCAST, PEER, 3)), 3);
    assert!(take_deliveries(&mut nic).iter().all(|(f, _)| *f != VF0));
    pf.ok(
        &mut nic,
        &modify_state(vport_state_op::ESW_VPORT, true, 1, 1),
        0x10,
    );
    assert_eq!(
        state(&mut v0, &mut nic, &own),
        (VportState::Up, VportState::Up)
    );
    assert_eq!(
        inject_tx(&mut nic, VF0, &frame(PEER, MAC0, 4)),
        InjectVerdict::Accepted
    );
}

#[test]
fn switching_unicast_broadcast_unknown_and_spoofed() {
    let mut nic = switch_device(3);
    nic.set_vport_mac(VF0, MAC0).unwrap();
    nic.set_vport_mac(VF1, MAC1).unwrap();
    nic.set_vport_mac(VF2, MAC2).unwrap();
    // Unicast to VF 1: delivered there only, never on the wire, not held by anything.
    let f = frame(MAC1, MAC0, 1);
    assert_eq!(inject_tx(&mut nic, VF0, &f), InjectVerdict::Accepted);
    let d = take_deliveries(&mut nic);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].0, &d[0].1[..]), (VF1, &f[..]));
    // Broadcast and multicast: every other vport (the PF too) and the wire.
    let b = frame(MacAddress::BROADCAST, MAC0, 2);
    assert_eq!(inject_tx(&mut nic, VF0, &b), InjectVerdict::Accepted);
    let m = frame(MCAST, MAC0, 3);
    assert_eq!(inject_tx(&mut nic, VF0, &m), InjectVerdict::Accepted);
    let to: Vec<FunctionId> = take_deliveries(&mut nic).iter().map(|(f, _)| *f).collect();
    assert_eq!(to, vec![PF, VF1, VF2, PF, VF1, VF2]);
    // Unknown unicast: the wire only.
    let u = frame(PEER, MAC0, 4);
    assert_eq!(inject_tx(&mut nic, VF0, &u), InjectVerdict::Accepted);
    assert!(take_deliveries(&mut nic).is_empty());
    let now = nic.now();
    nic.advance_to(now);
    nic.drain();
    let wire: Vec<Vec<u8>> = nic
        .take_wire_capture()
        .into_iter()
        .map(|r| r.data.to_vec())
        .collect();
    assert_eq!(wire, vec![b.clone(), m.clone(), u.clone()]);
    // Spoofed source with the check on: dropped and counted; off: passes.
    nic.set_spoof_check(VF0, true).unwrap();
    let s = frame(PEER, MAC2, 5);
    assert_eq!(inject_tx(&mut nic, VF0, &s), InjectVerdict::Dropped);
    assert_eq!(
        inject_tx(&mut nic, VF0, &frame(MAC1, MAC2, 6)),
        InjectVerdict::Dropped
    );
    assert_eq!(nic.eswitch_counters().tx_spoofed, 2);
    assert_eq!(nic.vport_counters(VF0).unwrap().tx_dropped, 2);
    assert!(take_deliveries(&mut nic).is_empty());
    assert_eq!(
        inject_tx(&mut nic, VF0, &frame(PEER, MAC0, 7)),
        InjectVerdict::Accepted
    );
    nic.set_spoof_check(VF0, false).unwrap();
    assert_eq!(inject_tx(&mut nic, VF0, &s), InjectVerdict::Accepted);
    // A runt, a frame to the sender's own address, a VF that is not enabled.
    assert_eq!(inject_tx(&mut nic, VF0, &[0u8; 13]), InjectVerdict::Dropped);
    assert_eq!(
        inject_tx(&mut nic, VF0, &frame(MAC0, MAC0, 8)),
        InjectVerdict::Dropped
    );
    assert_eq!(
        inject_tx(&mut nic, FunctionId::Vf(3), &frame(PEER, MAC0, 9)),
        InjectVerdict::Dropped
    );
    let c = nic.eswitch_counters();
    assert_eq!((c.tx_runts, c.tx_local_drops, c.tx_no_vport), (1, 1, 1));
    // Per-vport counters: VF 0 sent 1 unicast local + 3 unicast to the wire, 1 broadcast,
    // 1 multicast; VF 1 received one unicast, one broadcast, one multicast.
    let k0 = nic.vport_counters(VF0).unwrap();
    assert_eq!(
        (
            k0.tx_unicast_frames,
            k0.tx_broadcast_frames,
            k0.tx_multicast_frames
        ),
        (4, 1, 1)
    );
    assert_eq!(k0.local_loopback_frames, 3);
    assert_eq!(k0.tx_dropped, 4);
    let k1 = nic.vport_counters(VF1).unwrap();
    assert_eq!(
        (
            k1.rx_unicast_frames,
            k1.rx_broadcast_frames,
            k1.rx_multicast_frames
        ),
        (1, 1, 1)
    );
    assert_eq!(k1.rx_unicast_bytes, f.len() as u64);
}

#[test]
fn frames_from_the_wire_go_to_the_vports_that_own_them() {
    let mut nic = switch_device(2);
    nic.set_vport_mac(VF1, MAC1).unwrap();
    take_deliveries(&mut nic);
    assert_eq!(nic.wire_receive(&frame(MAC1, PEER, 1)), 1);
    assert_eq!(take_deliveries(&mut nic)[0].0, VF1);
    assert_eq!(nic.wire_receive(&frame(DEFAULT_PF_MAC, PEER, 2)), 1);
    assert_eq!(take_deliveries(&mut nic)[0].0, PF);
    assert_eq!(nic.wire_receive(&frame(MacAddress::BROADCAST, PEER, 3)), 3);
    assert_eq!(nic.wire_receive(&frame(MAC2, PEER, 4)), 0);
    assert_eq!(nic.wire_receive(&[0u8; 10]), 0);
    let c = nic.eswitch_counters();
    assert_eq!((c.wire_rx_no_vport, c.wire_rx_runts), (1, 1));
    // The receive path (no RQs yet) dropped each delivery: counted on the vport and device.
    assert_eq!(c.rx_dropped, 5);
    assert_eq!(nic.vport_counters(VF1).unwrap().rx_dropped, 2);
    assert_eq!(nic.vport_counters(VF1).unwrap().rx_unicast_frames, 1);
}

#[test]
fn query_vport_counter_reports_and_clears() {
    let (mut nic, mut pf, mut v0, _v1) = setup();
    nic.set_vport_mac(VF0, MAC0).unwrap();
    for k in 0..3 {
        inject_tx(&mut nic, VF0, &frame(PEER, MAC0, k));
    }
    inject_tx(&mut nic, VF0, &frame(MacAddress::BROADCAST, MAC0, 9));
    let len = frame(PEER, MAC0, 0).len() as u64;
    let o = v0.ok(&mut nic, &vport_counter(false, 0, 0, false), 0x210);
    let q = QueryVportCounterOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(q.counter(VportCounter::TransmittedEthUnicast), (3, 3 * len));
    assert_eq!(q.counter(VportCounter::TransmittedEthBroadcast), (1, len));
    // The PF reads VF 0's and clears them.
    let o = pf.ok(&mut nic, &vport_counter(true, 1, 1, true), 0x210);
    let q = QueryVportCounterOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(q.counter(VportCounter::TransmittedEthUnicast), (3, 3 * len));
    let o = v0.ok(&mut nic, &vport_counter(false, 0, 0, false), 0x210);
    let q = QueryVportCounterOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(q.counter(VportCounter::TransmittedEthUnicast), (0, 0));
    // The PF's own: it received the broadcast.
    let o = pf.ok(&mut nic, &vport_counter(false, 0, 0, false), 0x210);
    let q = QueryVportCounterOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(q.counter(VportCounter::ReceivedEthBroadcast), (1, len));
    assert_eq!(
        q.counter(VportCounter::ReceivedErrors).0,
        1,
        "no RQ took it"
    );
}

#[test]
fn a_pf_reset_returns_the_eswitch_to_power_on() {
    let (mut nic, mut pf, _v0, _v1) = setup();
    pf.ok(&mut nic, &set_mac(true, 1, MAC0), 0x10);
    nic.reset_function(PF);
    assert_eq!(
        nic.vport_context(VF0).unwrap().permanent_address,
        MacAddress::default()
    );
    assert_eq!(
        nic.vport_context(PF).unwrap().permanent_address,
        DEFAULT_PF_MAC
    );
}

#[test]
fn a_vf_hears_of_its_link_going_down_and_up() {
    use mlx5_hw::eqe::{EventData, EventType, PortChangeSubtype};
    let (mut nic, mut pf, mut v0, _v1) = setup();
    let uar = v0.alloc_uar(&mut nic);
    // Linux subscribes the port change on its async EQ.
    let mut eq = v0.create_eq(&mut nic, 4, uar, 0, &[EventType::PortChange]);
    let set = |pf: &mut CmdDriver, nic: &mut Mlx5Nic, admin: u8| {
        pf.ok(
            nic,
            &modify_state(vport_state_op::ESW_VPORT, true, 1, admin),
            0x10,
        );
    };
    set(&mut pf, &mut nic, 0);
    let e = v0.poll_eq(&mut eq);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].event_type, EventType::PortChange);
    assert_eq!(e[0].sub_type, PortChangeSubtype::Down.raw_value());
    assert_eq!(e[0].data, EventData::PortChange { port: 1 });
    // The same state again, or follow → up: one event per change of the operational state.
    set(&mut pf, &mut nic, 0);
    assert!(v0.poll_eq(&mut eq).is_empty());
    set(&mut pf, &mut nic, 2);
    let e = v0.poll_eq(&mut eq);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].sub_type, PortChangeSubtype::Active.raw_value());
    set(&mut pf, &mut nic, 1);
    assert!(v0.poll_eq(&mut eq).is_empty(), "up after follow: no change");
    assert_eq!(nic.eswitch_counters().link_events, 2);
    // A VF that is not initialized hears nothing (and nothing breaks).
    set(&mut pf, &mut nic, 0);
    nic.reset_function(VF1);
    pf.ok(
        &mut nic,
        &modify_state(vport_state_op::ESW_VPORT, true, 2, 0),
        0x10,
    );
    assert_eq!(nic.eswitch_counters().link_events, 3);
}

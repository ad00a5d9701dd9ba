//! HAC on mlx5: OUR vendor commands (0x7F00-0x7F08) issued by the PF on behalf of a VF vport,
//! end to end at the E-Switch seam — tagged VF frames held, commit releasing exactly the
//! epochs up to it, abort and failover discarding with counters, backpressure at the limit
//! and the send queues serviced when room frees — every malformed HAC command with its status,
//! syndrome and counter, a VF refused, and the model-level `Hac` API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use adapter_core::SimTime;
use adapter_core::hac::{Hac, HacError, VfNumber};
use hw_common::MacAddress;
use hw_common::frame::{ETHERTYPE_IPV4, build};
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::hac::{
    HacAbortIn, HacAbortOut, HacCommitIn, HacFailoverIn, HacFailoverOut, HacOpenEpochIn,
    HacQueryIn, HacQueryOut, HacSetControlIn, HacSetLimitsIn, HacSetTaggedIn, HacUnprotectIn,
    control_select,
};
use mlx5_model::testing::{
    CmdDriver, CmdError, InjectVerdict, Output, inject_tx, input, switch_device, take_deliveries,
};
use mlx5_model::{FunctionId, Mlx5Nic, syndrome};

const PF: FunctionId = FunctionId::Pf;
const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);

const MAC0: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 0x10]);
const MAC1: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 0x11]);
const PEER: MacAddress = MacAddress([0x02, 0xBB, 0, 0, 0, 0x01]);

/// VF 0's vport.
const VPORT0: u16 = 1;

fn refused(o: Result<Output, CmdError>, status: CommandStatus, synd: u32) {
    let o = o.unwrap();
    assert_eq!((o.status, o.syndrome), (status, synd));
    assert!(
        o.bytes[8..].iter().all(|&b| b == 0),
        "nothing but the header"
    );
}

fn refused_counted(
    nic: &mut Mlx5Nic,
    d: &mut CmdDriver,
    cmd: &[u8],
    out_len: usize,
    status: CommandStatus,
    synd: u32,
) {
    let before = nic.function_counters(d.f).unwrap().command_errors;
    refused(d.exec(nic, cmd, out_len), status, synd);
    assert_eq!(
        nic.function_counters(d.f).unwrap().command_errors,
        before + 1,
        "{synd:#x}"
    );
}

fn control(select: u32, enable: bool, guard: u32) -> Vec<u8> {
    let mut b = vec![0u8; 0x18];
    let mut c = HacSetControlIn::new_checked(&mut b[..]).unwrap();
    c.set_header(0);
    c.set_field_select(select);
    c.set_enable(enable);
    c.set_guard_bytes(guard);
    b
}

fn tagged(vport: u16, on: bool) -> Vec<u8> {
    let mut b = vec![0u8; 0x10];
    let mut c = HacSetTaggedIn::new_checked(&mut b[..]).unwrap();
    c.set_header(0);
    c.set_vport_number(vport);
    c.set_tagged(on);
    b
}

macro_rules! epoch_cmd {
    ($name:ident, $view:ident) => {
        fn $name(vport: u16, epoch: u32) -> Vec<u8> {
            let mut b = vec![0u8; 0x10];
            let mut c = $view::new_checked(&mut b[..]).unwrap();
            c.set_header(0);
            c.set_vport_number(vport);
            c.set_epoch(epoch);
            b
        }
    };
}
epoch_cmd!(open, HacOpenEpochIn);
epoch_cmd!(commit, HacCommitIn);
epoch_cmd!(abort, HacAbortIn);

macro_rules! vport_cmd {
    ($name:ident, $view:ident) => {
        fn $name(vport: u16) -> Vec<u8> {
            let mut b = vec![0u8; 0x10];
            let mut c = $view::new_checked(&mut b[..]).unwrap();
            c.set_header(0);
            c.set_vport_number(vport);
            b
        }
    };
}
vport_cmd!(failover, HacFailoverIn);
vport_cmd!(unprotect, HacUnprotectIn);
vport_cmd!(query, HacQueryIn);

fn limits(vport: u16, frames: u32, bytes: u32) -> Vec<u8> {
    let mut b = vec![0u8; 0x18];
    let mut c = HacSetLimitsIn::new_checked(&mut b[..]).unwrap();
    c.set_header(0);
    c.set_vport_number(vport);
    c.set_frames(frames);
    c.set_bytes(bytes);
    b
}

/// Every HAC command with a valid vport and epoch, and its output length.
fn all_commands(vport: u16) -> Vec<(Vec<u8>, usize)> {
    vec![
        (control(control_select::ALL, true, 0), 0x10),
        (tagged(vport, true), 0x10),
        (open(vport, 2), 0x10),
        (commit(vport, 1), 0x10),
        (abort(vport, 1), 0x10),
        (failover(vport), 0x10),
        (unprotect(vport), 0x10),
        (limits(vport, 1, 1), 0x10),
        (query(vport), 0x50),
    ]
}

fn frame(seq: u8) -> Vec<u8> {
    build(PEER, MAC0, ETHERTYPE_IPV4, &[seq; 46])
}

/// Two VFs with MACs, the PF and both VFs initialized, HAC enabled with guard 0, VF 0 tagged.
fn setup() -> (Mlx5Nic, CmdDriver, CmdDriver) {
    let mut nic = switch_device(2);
    let mut pf = CmdDriver::attach(&mut nic, PF);
    pf.bring_up(&mut nic);
    let mut v0 = CmdDriver::attach(&mut nic, VF0);
    v0.bring_up(&mut nic);
    nic.set_vport_mac(VF0, MAC0).unwrap();
    nic.set_vport_mac(VF1, MAC1).unwrap();
    pf.ok(&mut nic, &control(control_select::ALL, true, 0), 0x10);
    pf.ok(&mut nic, &tagged(VPORT0, true), 0x10);
    (nic, pf, v0)
}

fn hac_query(nic: &mut Mlx5Nic, pf: &mut CmdDriver, vport: u16) -> Vec<u8> {
    pf.ok(nic, &query(vport), 0x50).bytes
}

/// The sequence numbers (first payload byte) of the frames on the wire since the last call,
/// after running the wire until `t`.
fn wire_seqs(nic: &mut Mlx5Nic, t: SimTime) -> Vec<u8> {
    nic.advance_to(t);
    nic.take_wire_capture()
        .iter()
        .map(|r| r.data[hw_common::frame::ETHERNET_HEADER_LEN])
        .collect()
}

#[test]
fn commit_releases_exactly_the_epochs_up_to_it() {
    let (mut nic, mut pf, _v0) = setup();
    for s in 0..3 {
        assert_eq!(inject_tx(&mut nic, VF0, &frame(s)), InjectVerdict::Accepted);
    }
    pf.ok(&mut nic, &open(VPORT0, 2), 0x10);
    for s in 3..5 {
        assert_eq!(inject_tx(&mut nic, VF0, &frame(s)), InjectVerdict::Accepted);
    }
    pf.ok(&mut nic, &open(VPORT0, 3), 0x10);
    inject_tx(&mut nic, VF0, &frame(5));
    // Nothing leaves before a commit, whatever the time.
    assert!(wire_seqs(&mut nic, SimTime::from_millis(5)).is_empty());
    let q = hac_query(&mut nic, &mut pf, VPORT0);
    let q = HacQueryOut::new_checked(&q[..]).unwrap();
    assert!(q.enabled() && q.tagged());
    assert_eq!((q.open_epoch(), q.committed_epoch()), (3, 0));
    assert_eq!(q.buffered_frames(), 6);
    // COMMIT 1: exactly epoch 1's frames, in order.
    pf.ok(&mut nic, &commit(VPORT0, 1), 0x10);
    assert_eq!(wire_seqs(&mut nic, SimTime::from_millis(6)), vec![0, 1, 2]);
    // COMMIT 3 covers 2 and 3.
    pf.ok(&mut nic, &commit(VPORT0, 3), 0x10);
    assert_eq!(wire_seqs(&mut nic, SimTime::from_millis(7)), vec![3, 4, 5]);
    let q = hac_query(&mut nic, &mut pf, VPORT0);
    let q = HacQueryOut::new_checked(&q[..]).unwrap();
    assert_eq!(
        (q.committed_epoch(), q.buffered_frames(), q.released()),
        (3, 0, 6)
    );
    assert_eq!(q.max_frames(), 6);
    assert!(q.last_drain_ns() > 0);
    // A plain VF is never held.
    let p = build(PEER, MAC1, ETHERTYPE_IPV4, &[9; 46]);
    assert_eq!(inject_tx(&mut nic, VF1, &p), InjectVerdict::Accepted);
    assert_eq!(wire_seqs(&mut nic, SimTime::from_millis(8)), vec![9]);
}

#[test]
fn vf_to_vf_frames_are_switched_locally_and_not_held() {
    let (mut nic, _pf, _v0) = setup();
    take_deliveries(&mut nic);
    let f = build(MAC1, MAC0, ETHERTYPE_IPV4, &[1; 46]);
    assert_eq!(inject_tx(&mut nic, VF0, &f), InjectVerdict::Accepted);
    let d = take_deliveries(&mut nic);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0, VF1);
    assert_eq!(nic.egress().held_frames(adapter_core::Vport::new(1)), 0);
    // A broadcast: the local copies at once, the wire copy held for its epoch.
    let b = build(MacAddress::BROADCAST, MAC0, ETHERTYPE_IPV4, &[2; 46]);
    assert_eq!(inject_tx(&mut nic, VF0, &b), InjectVerdict::Accepted);
    assert_eq!(take_deliveries(&mut nic).len(), 2, "the PF and VF 1");
    assert_eq!(nic.egress().held_frames(adapter_core::Vport::new(1)), 1);
    assert!(wire_seqs(&mut nic, SimTime::from_millis(3)).is_empty());
}

#[test]
fn abort_and_failover_discard_and_count() {
    let (mut nic, mut pf, _v0) = setup();
    inject_tx(&mut nic, VF0, &frame(0));
    inject_tx(&mut nic, VF0, &frame(1));
    pf.ok(&mut nic, &open(VPORT0, 2), 0x10);
    inject_tx(&mut nic, VF0, &frame(2));
    pf.ok(&mut nic, &open(VPORT0, 3), 0x10);
    inject_tx(&mut nic, VF0, &frame(3));
    // ABORT 1 drops epoch 1's two frames; later epochs stay held.
    let o = pf.ok(&mut nic, &abort(VPORT0, 1), 0x10);
    assert_eq!(
        HacAbortOut::new_checked(&o.bytes[..]).unwrap().discarded(),
        2
    );
    // COMMIT 2 then sends only frame 2.
    pf.ok(&mut nic, &commit(VPORT0, 2), 0x10);
    assert_eq!(wire_seqs(&mut nic, SimTime::from_millis(4)), vec![2]);
    // FAILOVER drops everything still held.
    inject_tx(&mut nic, VF0, &frame(4));
    let o = pf.ok(&mut nic, &failover(VPORT0), 0x10);
    assert_eq!(
        HacFailoverOut::new_checked(&o.bytes[..])
            .unwrap()
            .discarded(),
        2
    );
    assert!(wire_seqs(&mut nic, SimTime::from_millis(5)).is_empty());
    let q = hac_query(&mut nic, &mut pf, VPORT0);
    let q = HacQueryOut::new_checked(&q[..]).unwrap();
    assert_eq!(
        (q.discarded(), q.released(), q.buffered_frames()),
        (4, 1, 0)
    );
    // UNPROTECT: later frames are not held, and the vport is untagged.
    pf.ok(&mut nic, &unprotect(VPORT0), 0x10);
    inject_tx(&mut nic, VF0, &frame(5));
    assert_eq!(wire_seqs(&mut nic, SimTime::from_millis(6)), vec![5]);
    refused(
        pf.exec(&mut nic, &commit(VPORT0, 3), 0x10),
        CommandStatus::BadSysState,
        syndrome::HAC_NOT_TAGGED,
    );
}

#[test]
fn backpressure_at_the_limit_and_the_queues_serviced_when_room_frees() {
    let (mut nic, mut pf, _v0) = setup();
    pf.ok(&mut nic, &limits(VPORT0, 2, 0), 0x10);
    assert_eq!(inject_tx(&mut nic, VF0, &frame(0)), InjectVerdict::Accepted);
    assert_eq!(inject_tx(&mut nic, VF0, &frame(1)), InjectVerdict::Accepted);
    assert_eq!(
        inject_tx(&mut nic, VF0, &frame(2)),
        InjectVerdict::Backpressure
    );
    assert_eq!(
        inject_tx(&mut nic, VF0, &frame(2)),
        InjectVerdict::Backpressure
    );
    assert_eq!(nic.eswitch_counters().tx_backpressure, 2);
    let q = hac_query(&mut nic, &mut pf, VPORT0);
    let q = HacQueryOut::new_checked(&q[..]).unwrap();
    assert_eq!(
        (q.backpressure(), q.buffered_frames(), q.limit_frames()),
        (2, 2, 2)
    );
    assert_eq!(q.limit_bytes(), u32::MAX, "0 is the maximum");
    // Held frames free nothing: no service until the commit's frames leave the wire.
    let services = nic.eswitch_counters().queue_services;
    nic.advance_to(SimTime::from_millis(3));
    assert_eq!(nic.eswitch_counters().queue_services, services);
    pf.ok(&mut nic, &commit(VPORT0, 1), 0x10);
    assert_eq!(wire_seqs(&mut nic, SimTime::from_millis(4)), vec![0, 1]);
    assert!(nic.eswitch_counters().queue_services >= services + 2);
    assert_eq!(inject_tx(&mut nic, VF0, &frame(2)), InjectVerdict::Accepted);
    // Nothing was lost: 3 accepted = 2 on the wire + 1 held.
    let q = hac_query(&mut nic, &mut pf, VPORT0);
    let q = HacQueryOut::new_checked(&q[..]).unwrap();
    assert_eq!(
        (q.released(), q.buffered_frames(), q.discarded()),
        (2, 1, 0)
    );
    // Failover frees room at once: serviced.
    let services = nic.eswitch_counters().queue_services;
    pf.ok(&mut nic, &failover(VPORT0), 0x10);
    assert_eq!(nic.eswitch_counters().queue_services, services + 1);
}

#[test]
fn a_vf_cannot_issue_hac_commands() {
    let (mut nic, mut pf, mut v0) = setup();
    inject_tx(&mut nic, VF0, &frame(0));
    let before = hac_query(&mut nic, &mut pf, VPORT0);
    for vport in [0, VPORT0, 2] {
        for (cmd, out) in all_commands(vport) {
            refused_counted(
                &mut nic,
                &mut v0,
                &cmd,
                out,
                CommandStatus::BadParam,
                syndrome::NOT_ESWITCH_MANAGER,
            );
        }
    }
    assert_eq!(hac_query(&mut nic, &mut pf, VPORT0), before);
    assert!(nic.hac_enabled());
}

#[test]
fn every_malformed_hac_command_is_refused_and_counted() {
    let (mut nic, mut pf, _v0) = setup();
    inject_tx(&mut nic, VF0, &frame(0));
    let before = hac_query(&mut nic, &mut pf, VPORT0);
    let bp = CommandStatus::BadParam;
    for (cmd, out) in all_commands(VPORT0) {
        let op = Opcode::from(u16::from_be_bytes([cmd[0], cmd[1]]));
        // op_mod.
        let mut m = cmd.clone();
        m[7] = 1;
        refused_counted(
            &mut nic,
            &mut pf,
            &m,
            out,
            CommandStatus::BadOp,
            syndrome::BAD_OP_MOD,
        );
        // Lengths.
        refused_counted(
            &mut nic,
            &mut pf,
            &cmd[..cmd.len() - 1],
            out,
            CommandStatus::BadInputLength,
            syndrome::INPUT_TOO_SHORT,
        );
        refused_counted(
            &mut nic,
            &mut pf,
            &cmd,
            out - 1,
            CommandStatus::BadOutputLength,
            syndrome::OUTPUT_TOO_SHORT,
        );
        // Vports: the PF's own, a VF that is not enabled, the uplink.
        if op != Opcode::HacSetControl {
            for vport in [0u16, 3, 17, 0xFFFF] {
                let mut m = cmd.clone();
                m[0x0A..0x0C].copy_from_slice(&vport.to_be_bytes());
                refused_counted(&mut nic, &mut pf, &m, out, bp, syndrome::NO_SUCH_VPORT);
            }
        }
    }
    // Unknown control bits.
    let c = control(1 << 2 | control_select::GUARD, false, 5);
    refused_counted(&mut nic, &mut pf, &c, 0x10, bp, syndrome::BAD_FIELD_SELECT);
    // Epoch rules: not above the open one, the reserved last epoch, not resolvable.
    for c in [
        open(VPORT0, 1),
        open(VPORT0, u32::MAX),
        commit(VPORT0, 2),
        commit(VPORT0, 0),
        abort(VPORT0, 5),
    ] {
        refused_counted(&mut nic, &mut pf, &c, 0x10, bp, syndrome::HAC_BAD_EPOCH);
    }
    // Not tagged.
    for c in [
        open(2, 2),
        commit(2, 1),
        abort(2, 1),
        failover(2),
        unprotect(2),
    ] {
        refused_counted(
            &mut nic,
            &mut pf,
            &c,
            0x10,
            CommandStatus::BadSysState,
            syndrome::HAC_NOT_TAGGED,
        );
    }
    assert_eq!(
        hac_query(&mut nic, &mut pf, VPORT0),
        before,
        "nothing changed"
    );
    // Disabled: every epoch operation; disabling released the held frame.
    pf.ok(&mut nic, &control(control_select::ENABLE, false, 0), 0x10);
    for c in [
        open(VPORT0, 2),
        commit(VPORT0, 1),
        abort(VPORT0, 1),
        failover(VPORT0),
        unprotect(VPORT0),
    ] {
        refused_counted(
            &mut nic,
            &mut pf,
            &c,
            0x10,
            CommandStatus::BadSysState,
            syndrome::HAC_DISABLED,
        );
    }
    assert_eq!(wire_seqs(&mut nic, SimTime::from_millis(3)), vec![0]);
    // Before INIT_HCA (a fresh device: the PF only enabled).
    let mut nic = switch_device(1);
    let mut pf = CmdDriver::attach(&mut nic, PF);
    pf.ok(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    for (cmd, out) in all_commands(VPORT0) {
        refused_counted(
            &mut nic,
            &mut pf,
            &cmd,
            out,
            CommandStatus::BadSysState,
            syndrome::NOT_INITIALIZED,
        );
    }
}

#[test]
fn a_pf_reset_drops_what_the_stage_held_and_counts_it() {
    let (mut nic, _pf, _v0) = setup();
    inject_tx(&mut nic, VF0, &frame(0));
    inject_tx(&mut nic, VF0, &frame(1));
    nic.reset_function(PF);
    assert_eq!(nic.eswitch_counters().egress_flushed_on_reset, 2);
    assert!(nic.egress().is_empty() && !nic.hac_enabled());
}

#[test]
fn the_model_level_hac_api_follows_the_contract() {
    let mut nic = switch_device(2);
    nic.set_vport_mac(VF0, MAC0).unwrap();
    let vf0 = VfNumber::new(0);
    assert_eq!(nic.open_epoch(vf0, 2), Err(HacError::Disabled));
    nic.hac_set_enabled(true);
    assert_eq!(nic.open_epoch(vf0, 2), Err(HacError::NotTagged(vf0)));
    nic.set_tagged(vf0, true).unwrap();
    nic.set_guard(0).unwrap();
    inject_tx(&mut nic, VF0, &frame(0));
    nic.open_epoch(vf0, 2).unwrap();
    inject_tx(&mut nic, VF0, &frame(1));
    assert_eq!(
        nic.commit(vf0, 3),
        Err(HacError::BadEpoch { vf: vf0, epoch: 3 })
    );
    nic.commit(vf0, 1).unwrap();
    assert_eq!(wire_seqs(&mut nic, SimTime::from_millis(2)), vec![0]);
    nic.abort(vf0, 2).unwrap();
    let s = nic.stats(vf0).unwrap();
    assert_eq!((s.released, s.discarded, s.buffered_frames), (1, 1, 0));
    assert_eq!((s.open_epoch, s.committed_epoch), (2, 1));
    nic.set_limits(vf0, 1, 0).unwrap();
    inject_tx(&mut nic, VF0, &frame(2));
    assert_eq!(
        inject_tx(&mut nic, VF0, &frame(3)),
        InjectVerdict::Backpressure
    );
    assert_eq!(nic.stats(vf0).unwrap().backpressure, 1);
    nic.failover(vf0).unwrap();
    nic.unprotect(vf0).unwrap();
    for n in [2, 3, 16, 0xFFFF] {
        let vf = VfNumber::new(n);
        assert_eq!(nic.set_tagged(vf, true), Err(HacError::NoSuchVf(vf)));
        assert_eq!(nic.stats(vf), Err(HacError::NoSuchVf(vf)));
    }
}

//! E-Switch QoS on mlx5 without the HAC extension: the QoS capability page, the scheduling
//! element commands the PF issues (a root DWRR TSAR, VPORT elements with `bw_share` and
//! `max_average_bw`), every malformed one refused with its status, syndrome and counters, a
//! VF refused, and the behaviour on the wire in virtual time — a rate-limited VF at its limit
//! while the other is unaffected, two backlogged VFs sharing the wire 3:1, and HAC keeping
//! its precedence.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use adapter_core::SimTime;
use adapter_core::hac::{Hac, VfNumber};
use hw_common::Iova;
use mlx5_hw::caps::{CapType, GeneralCaps, QosCaps};
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::eswitch::{
    CreateSchedulingElementIn, CreateSchedulingElementOut, DestroySchedulingElementIn,
    ModifySchedulingElementIn, QuerySchedulingElementIn, QuerySchedulingElementOut, element_type,
    modify_scheduling_bitmask as bit, scheduling_hierarchy, tsar_type,
};
use mlx5_hw::wqe::{DataSegRepr, SendDataSeg};
use mlx5_model::testing::queues::{DriverSq, send_wqe};
use mlx5_model::testing::{CmdDriver, CmdError, Output, input, switch_device};
use mlx5_model::{FunctionId, Mlx5Nic, syndrome};
use proptest::prelude::*;

const PF: FunctionId = FunctionId::Pf;
const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);

/// Frame length (without FCS) of the traffic tests.
const LEN: usize = 1000;

fn create(hier: u8, ty: u8, attr: (u8, u16), parent: u32, share: u32, max_bw: u32) -> Vec<u8> {
    let mut m = input(Opcode::CreateSchedulingElement, 0, 0x80);
    let mut c = CreateSchedulingElementIn::new_checked(&mut m[..]).unwrap();
    c.set_scheduling_hierarchy(hier);
    let mut s = c.scheduling_context_mut();
    s.set_element_type(ty);
    if ty == element_type::TSAR {
        s.set_tsar_type(attr.0);
    } else {
        s.set_vport_number(attr.1);
    }
    s.set_parent_element_id(parent);
    s.set_bw_share(share);
    s.set_max_average_bw(max_bw);
    m
}

fn root() -> Vec<u8> {
    create(
        scheduling_hierarchy::E_SWITCH,
        element_type::TSAR,
        (tsar_type::DWRR, 0),
        0,
        0,
        0,
    )
}

fn vport(v: u16, parent: u32, share: u32, max_bw: u32) -> Vec<u8> {
    create(
        scheduling_hierarchy::E_SWITCH,
        element_type::VPORT,
        (0, v),
        parent,
        share,
        max_bw,
    )
}

fn modify(id: u32, mask: u32, share: u32, max_bw: u32) -> Vec<u8> {
    let mut m = input(Opcode::ModifySchedulingElement, 0, 0x80);
    let mut c = ModifySchedulingElementIn::new_checked(&mut m[..]).unwrap();
    c.set_scheduling_hierarchy(scheduling_hierarchy::E_SWITCH);
    c.set_scheduling_element_id(id);
    c.set_modify_bitmask(mask);
    c.scheduling_context_mut().set_bw_share(share);
    c.scheduling_context_mut().set_max_average_bw(max_bw);
    m
}

fn query(id: u32) -> Vec<u8> {
    let mut m = input(Opcode::QuerySchedulingElement, 0, 0x40);
    let mut c = QuerySchedulingElementIn::new_checked(&mut m[..]).unwrap();
    c.set_scheduling_hierarchy(scheduling_hierarchy::E_SWITCH);
    c.set_scheduling_element_id(id);
    m
}

fn destroy(id: u32) -> Vec<u8> {
    let mut m = input(Opcode::DestroySchedulingElement, 0, 0x40);
    let mut c = DestroySchedulingElementIn::new_checked(&mut m[..]).unwrap();
    c.set_scheduling_hierarchy(scheduling_hierarchy::E_SWITCH);
    c.set_scheduling_element_id(id);
    m
}

fn created(nic: &mut Mlx5Nic, pf: &mut CmdDriver, m: &[u8]) -> u32 {
    let o = pf.ok(nic, m, 0x40);
    CreateSchedulingElementOut::new_checked(&o.bytes[..])
        .unwrap()
        .scheduling_element_id()
}

fn refused(o: Result<Output, CmdError>, status: CommandStatus, synd: u32) {
    let o = o.unwrap();
    assert_eq!((o.status, o.syndrome), (status, synd), "{synd:#x}");
    assert!(
        o.bytes[8..].iter().all(|&b| b == 0),
        "nothing but the header"
    );
}

/// Runs `cmd`, expects the refusal and checks the function's command errors and the QoS
/// refusal counter moved by one.
fn refused_counted(
    nic: &mut Mlx5Nic,
    d: &mut CmdDriver,
    cmd: &[u8],
    out_len: usize,
    status: CommandStatus,
    synd: u32,
) {
    let before = nic.function_counters(d.f).unwrap().command_errors;
    let qos_before = nic.qos_counters().commands_refused;
    refused(d.exec(nic, cmd, out_len), status, synd);
    assert_eq!(
        nic.function_counters(d.f).unwrap().command_errors,
        before + 1,
        "{synd:#x}"
    );
    assert_eq!(
        nic.qos_counters().commands_refused,
        qos_before + 1,
        "{synd:#x}"
    );
}

/// Two VFs; the PF and both VFs initialized.
fn setup() -> (Mlx5Nic, CmdDriver, CmdDriver, CmdDriver) {
    let mut nic = switch_device(2);
    let mut pf = CmdDriver::attach(&mut nic, PF);
    pf.bring_up(&mut nic);
    let mut v0 = CmdDriver::attach(&mut nic, VF0);
    v0.bring_up(&mut nic);
    let mut v1 = CmdDriver::attach(&mut nic, VF1);
    v1.bring_up(&mut nic);
    (nic, pf, v0, v1)
}

#[test]
fn the_pf_advertises_e_switch_qos_and_a_vf_does_not() {
    let (mut nic, mut pf, mut v0, _v1) = setup();
    let qos_op = (CapType::Qos.raw_value() << 1) | 1;
    let g = pf.query_cap(&mut nic, 1);
    assert!(GeneralCaps::new_checked(&g[..]).unwrap().qos());
    let p = pf.query_cap(&mut nic, qos_op);
    let q = QosCaps::new_checked(&p[..]).unwrap();
    assert!(q.esw_scheduling() && q.esw_rate_limit() && q.esw_bw_share());
    assert_eq!(q.max_tsar_bw_share(), 100);
    let g = v0.query_cap(&mut nic, 1);
    assert!(!GeneralCaps::new_checked(&g[..]).unwrap().qos());
    let mut m = input(Opcode::QueryHcaCap, qos_op, 0x10);
    m.resize(0x10, 0);
    refused(
        v0.exec(&mut nic, &m, 0x1010),
        CommandStatus::BadParam,
        syndrome::BAD_CAP_TYPE,
    );
}

#[test]
fn the_pf_builds_queries_modifies_and_tears_down_the_tree() {
    let (mut nic, mut pf, _v0, _v1) = setup();
    let r = created(&mut nic, &mut pf, &root());
    let e = created(&mut nic, &mut pf, &vport(1, r, 20, 1000));
    assert_ne!(r, e);
    let o = pf.ok(&mut nic, &query(e), 0x80);
    let c = QuerySchedulingElementOut::new_checked(&o.bytes[..]).unwrap();
    let c = c.scheduling_context();
    assert_eq!(
        (c.element_type(), c.vport_number(), c.parent_element_id()),
        (element_type::VPORT, 1, r)
    );
    assert_eq!((c.bw_share(), c.max_average_bw()), (20, 1000));
    pf.ok(&mut nic, &modify(e, bit::MAX_AVERAGE_BW, 99, 500), 0x10);
    let o = pf.ok(&mut nic, &query(e), 0x80);
    let c = QuerySchedulingElementOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(
        (
            c.scheduling_context().bw_share(),
            c.scheduling_context().max_average_bw()
        ),
        (20, 500),
        "only the bits in the mask"
    );
    let o = pf.ok(&mut nic, &query(r), 0x80);
    let c = QuerySchedulingElementOut::new_checked(&o.bytes[..]).unwrap();
    assert_eq!(
        (
            c.scheduling_context().element_type(),
            c.scheduling_context().tsar_type()
        ),
        (element_type::TSAR, tsar_type::DWRR)
    );
    pf.ok(&mut nic, &destroy(e), 0x10);
    pf.ok(&mut nic, &destroy(r), 0x10);
    assert_eq!(nic.qos().elements().count(), 0);
    // The PF's own vport may have an element too.
    let r = created(&mut nic, &mut pf, &root());
    created(&mut nic, &mut pf, &vport(0, r, 1, 0));
}

#[test]
fn every_malformed_scheduling_command_is_refused_and_counted() {
    use CommandStatus::{BadOp, BadParam, BadResourceState, BadSysState};
    let (mut nic, mut pf, _v0, _v1) = setup();
    let r = created(&mut nic, &mut pf, &root());
    let e = created(&mut nic, &mut pf, &vport(1, r, 1, 0));
    let n = &mut nic;
    let p = &mut pf;
    // The hierarchy.
    let nic_h = create(
        scheduling_hierarchy::NIC,
        element_type::TSAR,
        (0, 0),
        0,
        0,
        0,
    );
    refused_counted(n, p, &nic_h, 0x40, BadParam, syndrome::BAD_HIERARCHY);
    // Element and TSAR types.
    let tc = create(2, element_type::VPORT_TC, (0, 1), r, 0, 0);
    refused_counted(
        n,
        p,
        &tc,
        0x40,
        BadParam,
        syndrome::UNSUPPORTED_ELEMENT_TYPE,
    );
    let ets = create(2, element_type::TSAR, (tsar_type::ETS, 0), 0, 0, 0);
    refused_counted(n, p, &ets, 0x40, BadParam, syndrome::UNSUPPORTED_TSAR_TYPE);
    // A second root, a TSAR below the root.
    refused_counted(n, p, &root(), 0x40, BadParam, syndrome::UNSUPPORTED_DEPTH);
    let group = create(2, element_type::TSAR, (tsar_type::DWRR, 0), r, 0, 0);
    refused_counted(n, p, &group, 0x40, BadParam, syndrome::UNSUPPORTED_DEPTH);
    // Parents, vports, shares.
    refused_counted(
        n,
        p,
        &vport(2, 0, 1, 0),
        0x40,
        BadParam,
        syndrome::NO_SUCH_PARENT,
    );
    refused_counted(
        n,
        p,
        &vport(2, e, 1, 0),
        0x40,
        BadParam,
        syndrome::NO_SUCH_PARENT,
    );
    refused_counted(
        n,
        p,
        &vport(2, 77, 1, 0),
        0x40,
        BadParam,
        syndrome::NO_SUCH_PARENT,
    );
    refused_counted(
        n,
        p,
        &vport(3, r, 1, 0),
        0x40,
        BadParam,
        syndrome::NO_SUCH_VPORT,
    );
    refused_counted(
        n,
        p,
        &vport(0xFFFF, r, 1, 0),
        0x40,
        BadParam,
        syndrome::NO_SUCH_VPORT,
    );
    refused_counted(
        n,
        p,
        &vport(1, r, 1, 0),
        0x40,
        BadResourceState,
        syndrome::VPORT_HAS_ELEMENT,
    );
    refused_counted(
        n,
        p,
        &vport(2, r, 101, 0),
        0x40,
        BadParam,
        syndrome::BAD_BW_SHARE,
    );
    // Modify.
    refused_counted(
        n,
        p,
        &modify(99, bit::BW_SHARE, 1, 0),
        0x10,
        BadParam,
        syndrome::NO_SUCH_ELEMENT,
    );
    refused_counted(
        n,
        p,
        &modify(0, bit::BW_SHARE, 1, 0),
        0x10,
        BadParam,
        syndrome::NO_SUCH_ELEMENT,
    );
    refused_counted(
        n,
        p,
        &modify(e, 0x4, 1, 0),
        0x10,
        BadParam,
        syndrome::BAD_MODIFY_BITMASK,
    );
    refused_counted(
        n,
        p,
        &modify(e, bit::BW_SHARE, 101, 0),
        0x10,
        BadParam,
        syndrome::BAD_BW_SHARE,
    );
    refused_counted(
        n,
        p,
        &modify(r, bit::MAX_AVERAGE_BW, 0, 10),
        0x10,
        BadParam,
        syndrome::TSAR_FIELD,
    );
    let tsar_share = create(2, element_type::TSAR, (tsar_type::DWRR, 0), 0, 5, 0);
    pf_destroy_all(n, p, e, r);
    refused_counted(n, p, &tsar_share, 0x40, BadParam, syndrome::TSAR_FIELD);
    let r = created(n, p, &root());
    let e = created(n, p, &vport(1, r, 1, 0));
    // Query and destroy.
    refused_counted(n, p, &query(99), 0x80, BadParam, syndrome::NO_SUCH_ELEMENT);
    refused_counted(
        n,
        p,
        &destroy(99),
        0x10,
        BadParam,
        syndrome::NO_SUCH_ELEMENT,
    );
    refused_counted(
        n,
        p,
        &destroy(r),
        0x10,
        BadResourceState,
        syndrome::ELEMENT_IN_USE,
    );
    // op_mod.
    let mut m = destroy(e);
    m[6..8].copy_from_slice(&1u16.to_be_bytes());
    refused_counted(n, p, &m, 0x10, BadOp, syndrome::BAD_OP_MOD);
    // Nothing changed: both elements are still there.
    assert_eq!(n.qos().elements().count(), 2);
    // Short messages are refused by length (counted as command errors).
    let short = &query(e)[..0x0C];
    let before = n.function_counters(PF).unwrap().command_errors;
    let o = p.exec(n, short, 0x80).unwrap();
    assert_eq!(o.status, CommandStatus::BadInputLength);
    assert_eq!(n.function_counters(PF).unwrap().command_errors, before + 1);
    // A function not initialized.
    let mut nic2 = switch_device(1);
    let mut pf2 = CmdDriver::attach(&mut nic2, PF);
    let mut m = input(Opcode::EnableHca, 0, 0x10);
    m.resize(0x10, 0);
    pf2.ok(&mut nic2, &m, 0x10);
    refused_counted(
        &mut nic2,
        &mut pf2,
        &root(),
        0x40,
        BadSysState,
        syndrome::NOT_INITIALIZED,
    );
}

fn pf_destroy_all(n: &mut Mlx5Nic, p: &mut CmdDriver, e: u32, r: u32) {
    p.ok(n, &destroy(e), 0x10);
    p.ok(n, &destroy(r), 0x10);
}

#[test]
fn a_hostile_vf_cannot_create_modify_query_or_destroy() {
    let (mut nic, mut pf, mut v0, _v1) = setup();
    let r = created(&mut nic, &mut pf, &root());
    let e = created(&mut nic, &mut pf, &vport(2, r, 1, 100));
    for (m, len) in [
        (root(), 0x40),
        (vport(1, r, 100, 0), 0x40),
        (modify(e, bit::MAX_AVERAGE_BW, 0, 0), 0x10),
        (query(e), 0x80),
        (destroy(e), 0x10),
        (destroy(r), 0x10),
    ] {
        refused_counted(
            &mut nic,
            &mut v0,
            &m,
            len,
            CommandStatus::BadParam,
            syndrome::NOT_ESWITCH_MANAGER,
        );
    }
    let (_, el) = nic.qos().vport_element(2).unwrap();
    assert_eq!(el.max_average_bw, 100, "the limit the PF set stays");
    assert!(nic.qos().vport_element(1).is_none());
}

// ----- traffic ----------------------------------------------------------------------------

/// A VF's send queue with one frame buffer it sends over and over.
struct Sender {
    d: CmdDriver,
    sq: DriverSq,
    frame: Vec<u8>,
    buf: u64,
}

impl Sender {
    fn new(nic: &mut Mlx5Nic, mut d: CmdDriver, tag: u8) -> Sender {
        let q = d.open_queues(nic, 4, 11, 3);
        let mut frame = vec![0u8; LEN];
        frame[..6].copy_from_slice(&[0x02, 0xBB, 0, 0, 0, 1]);
        frame[6..12].copy_from_slice(&[0x02, 0xAA, 0, 0, 0, tag]);
        frame[12..14].copy_from_slice(&[0x88, 0xB5]);
        let buf = d.fresh_pages(1)[0];
        d.write(buf, &frame[18..]);
        Sender {
            d,
            sq: q.sq,
            frame,
            buf,
        }
    }

    /// Posts `n` sends and rings once.
    fn post(&mut self, nic: &mut Mlx5Nic, n: usize) {
        let mut last = self.sq.pc;
        for _ in 0..n {
            let data = vec![SendDataSeg::Pointer(DataSegRepr {
                byte_count: (LEN - 18) as u32,
                lkey: self.sq.lkey,
                addr: Iova(self.buf),
            })];
            last = self.sq.pc;
            self.d
                .post_wqe(&mut self.sq, &send_wqe(&self.frame[..18], data, false));
        }
        self.d.ring_sq(nic, &self.sq, last);
    }
}

/// Runs the wire until `t` in steps of `step_ns` and returns (time, source tag) of every
/// frame that went out.
fn run(nic: &mut Mlx5Nic, from: SimTime, t: SimTime, step_ns: u64) -> Vec<(SimTime, u8)> {
    let mut now = from;
    let mut out = Vec::new();
    while now < t {
        now = (now + step_ns).min(t);
        nic.advance_to(now);
        out.extend(nic.take_wire_capture().iter().map(|r| (r.at, r.data[11])));
    }
    out
}

/// Payload bits per second of the frames of `tag` from its `skip`-th frame to its last.
fn rate_bps(frames: &[(SimTime, u8)], tag: u8, skip: usize) -> f64 {
    let mine: Vec<SimTime> = frames
        .iter()
        .filter(|(_, t)| *t == tag)
        .map(|(at, _)| *at)
        .collect();
    let (first, last) = (mine[skip], *mine.last().unwrap());
    let n = (mine.len() - 1 - skip) as f64;
    n * (LEN * 8) as f64 / (last.saturating_since(first) as f64 / 1e9)
}

fn traffic_setup() -> (Mlx5Nic, CmdDriver, Sender, Sender) {
    let (mut nic, pf, v0, v1) = setup();
    let s0 = Sender::new(&mut nic, v0, 0x10);
    let s1 = Sender::new(&mut nic, v1, 0x11);
    nic.take_wire_capture();
    (nic, pf, s0, s1)
}

#[test]
fn a_rate_limited_vf_gets_its_limit_and_the_other_vf_is_unaffected() {
    let (mut nic, mut pf, mut s0, mut s1) = traffic_setup();
    let r = created(&mut nic, &mut pf, &root());
    created(&mut nic, &mut pf, &vport(1, r, 0, 1000));
    let t0 = nic.now();
    s0.post(&mut nic, 600);
    s1.post(&mut nic, 600);
    let frames = run(&mut nic, t0, t0 + 6_000_000, 50_000);
    let n0 = frames.iter().filter(|f| f.1 == 0x10).count();
    let n1 = frames.iter().filter(|f| f.1 == 0x11).count();
    assert_eq!((n0, n1), (600, 600), "nothing lost");
    // VF 0 at its limit once its bucket's burst is spent: 1000 Mbit/s ± 2 %.
    let r0 = rate_bps(&frames, 0x10, 50);
    assert!((0.98e9..=1.02e9).contains(&r0), "VF 0 at {r0:.0} bit/s");
    // VF 1 is not limited: it gets the rest of the 10 Gbit/s wire (less framing overhead).
    let r1 = rate_bps(&frames, 0x11, 0);
    eprintln!("VF 0 limited to 1000 Mbit/s: {r0:.0} bit/s; VF 1 unlimited: {r1:.0} bit/s");
    assert!(r1 > 8.0e9, "VF 1 at {r1:.0} bit/s");
    let c = nic.qos_counters();
    assert!(c.rate_limited > 0 && c.rate_resumes > 0, "{c:?}");
    // Lifting the limit (MODIFY max_average_bw 0) lets VF 0 run at line rate.
    let e = nic.qos().vport_element(1).unwrap().0;
    pf.ok(&mut nic, &modify(e, bit::MAX_AVERAGE_BW, 0, 0), 0x10);
    let t1 = nic.now();
    s0.post(&mut nic, 200);
    let frames = run(&mut nic, t1, t1 + 1_000_000, 50_000);
    assert_eq!(frames.len(), 200);
    assert!(rate_bps(&frames, 0x10, 0) > 9.0e9);
}

#[test]
fn two_backlogged_vfs_share_the_wire_by_bw_share() {
    let (mut nic, mut pf, mut s0, mut s1) = traffic_setup();
    let r = created(&mut nic, &mut pf, &root());
    created(&mut nic, &mut pf, &vport(1, r, 3, 0));
    created(&mut nic, &mut pf, &vport(2, r, 1, 0));
    let t0 = nic.now();
    s0.post(&mut nic, 600);
    s1.post(&mut nic, 600);
    let frames = run(&mut nic, t0, t0 + 2_000_000, 10_000);
    assert_eq!(frames.len(), 1200);
    // While both are backlogged (the first 600 frames on the wire): 3:1.
    let n0 = frames[..600].iter().filter(|f| f.1 == 0x10).count();
    let n1 = 600 - n0;
    let ratio = n0 as f64 / n1 as f64;
    eprintln!("bw_share 3:1, both backlogged: {n0}:{n1} frames ({ratio:.3})");
    assert!((2.9..=3.1).contains(&ratio), "{n0}:{n1}");
    // The wire stayed busy: 1200 frames back to back.
    let span = frames[1199].0.saturating_since(frames[0].0) as f64;
    let line = 1199.0 * adapter_core::wire::LineRate::G10.frame_time_ns(LEN) as f64;
    assert!(span <= line * 1.01, "{span} vs {line}");
    assert!(nic.qos_counters().share_deferred > 0);
}

#[test]
fn without_elements_the_wire_is_shared_round_robin_as_before() {
    let (mut nic, _pf, mut s0, mut s1) = traffic_setup();
    let t0 = nic.now();
    s0.post(&mut nic, 200);
    s1.post(&mut nic, 200);
    let frames = run(&mut nic, t0, t0 + 1_000_000, 10_000);
    let n0 = frames[..200].iter().filter(|f| f.1 == 0x10).count();
    assert!((95..=105).contains(&n0), "{n0}");
    assert_eq!(nic.qos_counters(), Default::default());
}

#[test]
fn a_checkpointing_vf_under_the_extension_keeps_strict_priority() {
    let (mut nic, mut pf, mut s0, mut s1) = traffic_setup();
    let r = created(&mut nic, &mut pf, &root());
    // VF 0 gets the small share, but it checkpoints under HAC: its released frames go first.
    created(&mut nic, &mut pf, &vport(1, r, 1, 0));
    created(&mut nic, &mut pf, &vport(2, r, 100, 0));
    nic.hac_set_enabled(true);
    nic.set_guard(0).unwrap();
    let vf0 = VfNumber::new(0);
    nic.set_tagged(vf0, true).unwrap();
    let t0 = nic.now();
    s0.post(&mut nic, 50);
    nic.advance_to(t0 + 1000);
    nic.open_epoch(vf0, 2).unwrap();
    s1.post(&mut nic, 300);
    nic.commit(vf0, 1).unwrap();
    let frames = run(&mut nic, t0 + 1000, t0 + 1_000_000, 10_000);
    assert_eq!(frames.len(), 350);
    let first = frames.iter().take(52).filter(|f| f.1 == 0x10).count();
    assert_eq!(
        first, 50,
        "the released frames first (strict priority, guard 0)"
    );
}

// ----- random command sequences -----------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Create {
        vf_issues: bool,
        hier: u8,
        ty: u8,
        tsar: u8,
        vport: u16,
        parent: u32,
        share: u32,
        max_bw: u32,
    },
    Modify {
        vf_issues: bool,
        id: u32,
        mask: u32,
        share: u32,
        max_bw: u32,
    },
    Query {
        id: u32,
    },
    Destroy {
        vf_issues: bool,
        id: u32,
    },
    Send {
        vf: u16,
        n: usize,
    },
    Advance {
        us: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let small = prop_oneof![0u32..4, Just(100), Just(101), any::<u32>()];
    prop_oneof![
        (
            any::<bool>(),
            prop_oneof![Just(2u8), Just(3), any::<u8>()],
            0u8..5,
            0u8..4,
            0u16..4,
            0u32..5,
            small.clone(),
            prop_oneof![Just(0u32), 1u32..20_000, any::<u32>()],
        )
            .prop_map(
                |(vf_issues, hier, ty, tsar, vport, parent, share, max_bw)| {
                    Op::Create {
                        vf_issues,
                        hier,
                        ty,
                        tsar,
                        vport,
                        parent,
                        share,
                        max_bw,
                    }
                }
            ),
        (any::<bool>(), 0u32..5, 0u32..8, small, 0u32..20_000).prop_map(
            |(vf_issues, id, mask, share, max_bw)| Op::Modify {
                vf_issues,
                id,
                mask,
                share,
                max_bw,
            }
        ),
        (0u32..5).prop_map(|id| Op::Query { id }),
        (any::<bool>(), 0u32..5).prop_map(|(vf_issues, id)| Op::Destroy { vf_issues, id }),
        (0u16..2, 1usize..40).prop_map(|(vf, n)| Op::Send { vf, n }),
        (1u64..500).prop_map(|us| Op::Advance { us }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of scheduling commands (from the PF, or from a hostile VF) with traffic in
    /// between: every command gets a status, a VF changes nothing, the tree stays a root TSAR
    /// with at most one element per vport below it, and no frame a send queue offered is lost.
    #[test]
    fn random_scheduling_commands_keep_the_tree_sound(ops in proptest::collection::vec(op(), 1..40)) {
        let (mut nic, mut pf, v0, v1) = setup();
        let mut senders = [Sender::new(&mut nic, v0, 0x10), Sender::new(&mut nic, v1, 0x11)];
        let mut posted = [0usize; 2];
        let mut on_wire = [0usize; 2];
        for op in ops {
            let before: Vec<_> = nic.qos().elements().map(|(i, e)| (i, *e)).collect();
            let (vf_issued, o) = match op {
                Op::Create { vf_issues, hier, ty, tsar, vport, parent, share, max_bw } => {
                    let m = create(hier, ty, (tsar, vport), parent, share, max_bw);
                    let d = if vf_issues { &mut senders[1].d } else { &mut pf };
                    (vf_issues, d.exec(&mut nic, &m, 0x40))
                }
                Op::Modify { vf_issues, id, mask, share, max_bw } => {
                    let d = if vf_issues { &mut senders[1].d } else { &mut pf };
                    (vf_issues, d.exec(&mut nic, &modify(id, mask, share, max_bw), 0x10))
                }
                Op::Query { id } => (false, pf.exec(&mut nic, &query(id), 0x80)),
                Op::Destroy { vf_issues, id } => {
                    let d = if vf_issues { &mut senders[1].d } else { &mut pf };
                    (vf_issues, d.exec(&mut nic, &destroy(id), 0x10))
                }
                Op::Send { vf, n } => {
                    let k = usize::from(vf);
                    if posted[k] + n <= 1500 {
                        senders[k].post(&mut nic, n);
                        posted[k] += n;
                    }
                    continue;
                }
                Op::Advance { us } => {
                    let t = nic.now() + us * 1000;
                    nic.advance_to(t);
                    for r in nic.take_wire_capture() {
                        on_wire[usize::from(r.data[11] == 0x11)] += 1;
                    }
                    continue;
                }
            };
            let o = o.unwrap();
            if vf_issued {
                prop_assert_eq!(o.status, CommandStatus::BadParam);
                prop_assert_eq!(o.syndrome, syndrome::NOT_ESWITCH_MANAGER);
            }
            if o.status != CommandStatus::Ok {
                let after: Vec<_> = nic.qos().elements().map(|(i, e)| (i, *e)).collect();
                prop_assert_eq!(before, after, "a refused command changes nothing");
            }
            // The tree: at most one TSAR, parents are TSARs, one element per vport.
            let q = nic.qos();
            let tsars = q.elements().filter(|(_, e)| e.kind == mlx5_model::qos::ElementKind::Tsar).count();
            prop_assert!(tsars <= 1);
            let mut vports = std::collections::BTreeSet::new();
            for (_, e) in q.elements() {
                if let mlx5_model::qos::ElementKind::Vport(v) = e.kind {
                    prop_assert!(q.is_tsar(e.parent));
                    prop_assert!(vports.insert(v));
                    prop_assert!(e.bw_share <= 100);
                }
            }
        }
        // Lift every limit and let the queues drain: every frame posted reaches the wire.
        let ids: Vec<u32> = nic.qos().elements().map(|(i, _)| i).collect();
        for id in ids {
            let _ = pf.exec(&mut nic, &modify(id, bit::MAX_AVERAGE_BW, 0, 0), 0x10);
        }
        let t = nic.now() + 50_000_000;
        nic.advance_to(t);
        for r in nic.take_wire_capture() {
            on_wire[usize::from(r.data[11] == 0x11)] += 1;
        }
        prop_assert_eq!(on_wire, posted);
    }
}

//! The HCA state machine of two VFs against a small reference, over random sequences of
//! commands from both (ENABLE/DISABLE_HCA, ISSI, QUERY/MANAGE_PAGES give and take, INIT and
//! TEARDOWN_HCA, UARs, PDs, transport domains, EQs, CQs, an unknown opcode), FLRs of either
//! VF, device page requests and CQEs. After every step: the command's status is the one the
//! reference predicts, and each VF's state (HCA state, ISSI, pages held, pages owed, UAR, PD
//! and TD sets, EQ and CQ numbers and which EQ each CQ uses) matches its reference; one VF's
//! step changes nothing of the other VF (state and counters) nor of the PF.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::pci::layout;
use mlx5_model::config::pcie;
use mlx5_model::testing::{
    CmdDriver, CmdError, create_cq_input, create_eq_input, device, input, put_dword,
};
use mlx5_model::{FunctionId, FunctionState, HcaState, Mlx5Nic, PageRequestError};
use proptest::prelude::*;

const VFS: usize = 2;
/// Pages the device needs for INIT_HCA (boot + init).
const INIT_PAGES: usize = 6;
/// Most pages the device holds per function.
const MAX_PAGES: usize = 4096;
/// First UAR index and the UAR pages of a VF's 2 MiB BAR0.
const FIRST_UAR: u32 = 4;
const VF_UAR_PAGES: u32 = 512;
/// PD and transport-domain numbers: 1..=256.
const MAX_DOMAINS: u32 = 256;
const FIRST_EQN: u8 = 0x10;
const MAX_EQS: usize = 16;
const FIRST_CQN: u32 = 0x400;
/// Largest EQ and CQ log sizes (the caps).
const LOG_MAX_EQ_SZ: u8 = 0x12;
const LOG_MAX_CQ_SZ: u8 = 0x10;

fn vf(n: usize) -> FunctionId {
    FunctionId::Vf(n as u16)
}

#[derive(Clone, Debug)]
enum Cmd {
    Enable,
    Disable,
    QueryIssi,
    SetIssi(u16),
    QueryPages(u16),
    Give { n: usize, reuse: bool },
    Take(usize),
    Init,
    Teardown(u32),
    AllocUar,
    DeallocUar(u8),
    AllocPd,
    DeallocPd(u8),
    AllocTd,
    DeallocTd(u8),
    CreateEq { log: u8, uar: u8 },
    DestroyEq(u8),
    CreateCq { log: u8, uar: u8, eq: u8 },
    DestroyCq(u8),
    Unknown,
}

#[derive(Clone, Debug)]
enum Op {
    Cmd {
        vf: usize,
        cmd: Cmd,
    },
    Flr {
        vf: usize,
    },
    RequestPages {
        vf: usize,
        n: u32,
    },
    PostCqe {
        vf: usize,
        cq: u8,
    },
    /// ENABLE_HCA, six pages, INIT_HCA, a UAR, an EQ and a CQ: each a step of its own (so
    /// random runs reach the deeper states often).
    BringUp {
        vf: usize,
    },
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let pick = any::<u8>();
    prop_oneof![
        4 => Just(Cmd::Enable),
        1 => Just(Cmd::Disable),
        1 => Just(Cmd::QueryIssi),
        1 => (0..3u16).prop_map(Cmd::SetIssi),
        2 => (0..5u16).prop_map(Cmd::QueryPages),
        5 => (0..8usize, prop::bool::weighted(0.15)).prop_map(|(n, reuse)| Cmd::Give { n, reuse }),
        1 => (0..8usize).prop_map(Cmd::Take),
        4 => Just(Cmd::Init),
        1 => (0..2u32).prop_map(Cmd::Teardown),
        3 => Just(Cmd::AllocUar),
        1 => pick.prop_map(Cmd::DeallocUar),
        2 => Just(Cmd::AllocPd),
        1 => pick.prop_map(Cmd::DeallocPd),
        2 => Just(Cmd::AllocTd),
        1 => pick.prop_map(Cmd::DeallocTd),
        4 => (0..4u8, pick).prop_map(|(log, uar)| Cmd::CreateEq { log, uar }),
        1 => pick.prop_map(Cmd::DestroyEq),
        4 => (0..4u8, pick, pick)
            .prop_map(|(log, uar, eq)| Cmd::CreateCq { log, uar, eq }),
        1 => pick.prop_map(Cmd::DestroyCq),
        1 => Just(Cmd::Unknown),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let vf = 0..VFS;
    prop_oneof![
        20 => (vf.clone(), cmd()).prop_map(|(vf, cmd)| Op::Cmd { vf, cmd }),
        1 => vf.clone().prop_map(|vf| Op::Flr { vf }),
        1 => (vf.clone(), prop_oneof![0..4u32, Just(u32::MAX)])
            .prop_map(|(vf, n)| Op::RequestPages { vf, n }),
        2 => (vf.clone(), any::<u8>()).prop_map(|(vf, cq)| Op::PostCqe { vf, cq }),
        1 => vf.prop_map(|vf| Op::BringUp { vf }),
    ]
}

/// An element of `set` chosen by `pick`, or (about one time in five) a number not in it.
fn choose<T: Copy + Ord>(set: &BTreeSet<T>, pick: u8, bogus: T) -> T {
    if pick >= 200 || set.is_empty() {
        return bogus;
    }
    *set.iter().nth(usize::from(pick) % set.len()).unwrap()
}

/// The reference of one function's HCA state.
#[derive(Clone, Debug, Default, PartialEq)]
struct RefFn {
    hca: Hca,
    issi: u16,
    pages: BTreeSet<u64>,
    owed: u32,
    uars: BTreeSet<u32>,
    pds: BTreeSet<u32>,
    tds: BTreeSet<u32>,
    eqs: BTreeSet<u8>,
    /// CQ number → (its EQ, log size, CQEs written).
    cqs: BTreeMap<u32, (u8, u8, u32)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Hca {
    #[default]
    Disabled,
    Enabled,
    Initialized,
}

fn lowest_free(set: &BTreeSet<u32>, first: u32, count: u32) -> Option<u32> {
    (first..first + count).find(|n| !set.contains(n))
}

impl RefFn {
    fn enabled(&self) -> Result<(), CommandStatus> {
        match self.hca {
            Hca::Disabled => Err(CommandStatus::BadSysState),
            _ => Ok(()),
        }
    }

    fn initialized(&self) -> Result<(), CommandStatus> {
        match self.hca {
            Hca::Initialized => Ok(()),
            _ => Err(CommandStatus::BadSysState),
        }
    }

    fn before_init(&self) -> Result<(), CommandStatus> {
        match self.hca {
            Hca::Enabled => Ok(()),
            _ => Err(CommandStatus::BadSysState),
        }
    }

    fn pages_needed(&self) -> usize {
        if self.hca == Hca::Initialized {
            INIT_PAGES
        } else {
            0
        }
    }

    fn matches(&self, s: &FunctionState) -> Result<(), String> {
        let hca = match s.hca {
            HcaState::Disabled => Hca::Disabled,
            HcaState::Enabled => Hca::Enabled,
            HcaState::Initialized => Hca::Initialized,
        };
        let model = RefFn {
            hca,
            issi: s.issi,
            pages: s.pages.clone(),
            owed: s.pages_owed,
            uars: s.uars.clone(),
            pds: s.pds.clone(),
            tds: s.transport_domains.clone(),
            eqs: s.eqs.keys().copied().collect(),
            cqs: s
                .cqs
                .iter()
                .map(|(n, c)| (*n, (c.eqn, c.log_size, c.producer)))
                .collect(),
        };
        if &model == self {
            Ok(())
        } else {
            Err(format!("model {model:?}\nreference {self:?}"))
        }
    }
}

/// What the model should answer to one command, and the reference after it.
struct Predicted {
    status: CommandStatus,
    /// QUERY_PAGES: the page count.
    pages: Option<i32>,
}

struct World {
    nic: Mlx5Nic,
    drivers: Vec<CmdDriver>,
    refs: Vec<RefFn>,
    /// Per VF: a page for EQ and CQ buffers and a doorbell record (reachable, never checked).
    buffers: Vec<(u64, u64)>,
    next_page: u64,
    pf: (FunctionState, Option<u64>),
}

impl World {
    fn new() -> World {
        let mut nic = device(VFS as u16 + 1);
        let mut pf = CmdDriver::attach(&mut nic, FunctionId::Pf);
        pf.bring_up(&mut nic);
        let mut drivers: Vec<CmdDriver> = (0..VFS)
            .map(|n| CmdDriver::attach(&mut nic, vf(n)))
            .collect();
        let buffers = drivers
            .iter_mut()
            .map(|d| {
                let p = d.fresh_pages(2);
                (p[0], p[1])
            })
            .collect();
        let pf = (
            nic.function_state(FunctionId::Pf).unwrap().clone(),
            nic.function_counters(FunctionId::Pf).map(|c| c.commands),
        );
        World {
            nic,
            drivers,
            refs: vec![RefFn::default(); VFS],
            buffers,
            next_page: 0,
            pf,
        }
    }

    /// A page address never given before (never mapped: the model does not touch given pages).
    fn fresh(&mut self) -> u64 {
        self.next_page += 1;
        0x40_0000_0000 + self.next_page * 4096
    }

    /// The input message of `cmd` for VF `v` and its output length, with the reference's
    /// prediction (the reference is updated as the command should leave it).
    fn build(&mut self, v: usize, cmd: &Cmd) -> (Vec<u8>, usize, Predicted) {
        let (qpage, dbr) = self.buffers[v];
        let mut pages_answer = None;
        let given: Vec<u64> = match cmd {
            Cmd::Give { n, reuse } => {
                let mut pages: Vec<u64> = (0..*n).map(|_| self.fresh()).collect();
                if *reuse && let Some(held) = self.refs[v].pages.iter().next() {
                    pages.push(*held);
                }
                pages
            }
            _ => Vec::new(),
        };
        let r = &self.refs[v];
        let mut next = r.clone();
        let (msg, out_len, result): (Vec<u8>, usize, Result<(), CommandStatus>) = match cmd {
            Cmd::Enable => {
                let res = if r.hca == Hca::Disabled {
                    next.hca = Hca::Enabled;
                    Ok(())
                } else {
                    Err(CommandStatus::BadSysState)
                };
                (input(Opcode::EnableHca, 0, 0x10), 0x10, res)
            }
            Cmd::Disable => {
                let res = r.enabled().map(|()| next = RefFn::default());
                (input(Opcode::DisableHca, 0, 0x10), 0x10, res)
            }
            Cmd::QueryIssi => (input(Opcode::QueryIssi, 0, 0x10), 0x70, r.enabled()),
            Cmd::SetIssi(issi) => {
                let mut m = input(Opcode::SetIssi, 0, 0x10);
                put_dword(&mut m, 0x08, u32::from(*issi));
                let res = r.before_init().and_then(|()| {
                    if *issi > 1 {
                        return Err(CommandStatus::BadParam);
                    }
                    next.issi = *issi;
                    Ok(())
                });
                (m, 0x10, res)
            }
            Cmd::QueryPages(op_mod) => {
                let held = r.pages.len() as i64;
                let res = r.enabled().and_then(|()| {
                    let n = match op_mod {
                        1 => 2 - held,
                        2 => INIT_PAGES as i64 - held,
                        3 => i64::from(r.owed),
                        _ => return Err(CommandStatus::BadOp),
                    };
                    pages_answer = Some(n.max(0) as i32);
                    Ok(())
                });
                (input(Opcode::QueryPages, *op_mod, 0x10), 0x10, res)
            }
            Cmd::Give { .. } => {
                let pages = &given;
                let mut m = input(Opcode::ManagePages, 1, 0x10 + 8 * pages.len());
                put_dword(&mut m, 0x0C, pages.len() as u32);
                for (k, pa) in pages.iter().enumerate() {
                    m[0x10 + 8 * k..0x18 + 8 * k].copy_from_slice(&pa.to_be_bytes());
                }
                let res = r.enabled().and_then(|()| {
                    if r.pages.len() + pages.len() > MAX_PAGES {
                        return Err(CommandStatus::NoResources);
                    }
                    if pages.iter().any(|p| r.pages.contains(p)) {
                        return Err(CommandStatus::BadParam);
                    }
                    next.pages.extend(pages);
                    if r.hca == Hca::Initialized {
                        next.owed = r.owed.saturating_sub(pages.len() as u32);
                    }
                    Ok(())
                });
                (m, 0x10, res)
            }
            Cmd::Take(n) => {
                let mut m = input(Opcode::ManagePages, 2, 0x10);
                put_dword(&mut m, 0x0C, *n as u32);
                let res = r.enabled().map(|()| {
                    let count = (*n).min(r.pages.len().saturating_sub(r.pages_needed()));
                    let top: Vec<u64> = r.pages.iter().rev().take(count).copied().collect();
                    for p in top {
                        next.pages.remove(&p);
                    }
                });
                (m, 0x10 + 8 * n, res)
            }
            Cmd::Init => {
                let res = r.before_init().and_then(|()| {
                    if r.pages.len() < INIT_PAGES {
                        return Err(CommandStatus::NoResources);
                    }
                    next.hca = Hca::Initialized;
                    Ok(())
                });
                (input(Opcode::InitHca, 0, 0x20), 0x10, res)
            }
            Cmd::Teardown(profile) => {
                let mut m = input(Opcode::TeardownHca, 0, 0x10);
                put_dword(&mut m, 0x08, *profile);
                let res = r.initialized().and_then(|()| {
                    if *profile != 0 {
                        return Err(CommandStatus::BadParam);
                    }
                    next = RefFn {
                        hca: Hca::Enabled,
                        issi: r.issi,
                        pages: r.pages.clone(),
                        ..RefFn::default()
                    };
                    Ok(())
                });
                (m, 0x10, res)
            }
            Cmd::AllocUar => {
                let res = r.initialized().and_then(|()| {
                    let n = lowest_free(&r.uars, FIRST_UAR, VF_UAR_PAGES - FIRST_UAR)
                        .ok_or(CommandStatus::NoResources)?;
                    next.uars.insert(n);
                    Ok(())
                });
                (input(Opcode::AllocUar, 0, 0x10), 0x10, res)
            }
            Cmd::AllocPd | Cmd::AllocTd => {
                let (op, set) = if matches!(cmd, Cmd::AllocPd) {
                    (Opcode::AllocPd, &r.pds)
                } else {
                    (Opcode::AllocTransportDomain, &r.tds)
                };
                let res = r.initialized().and_then(|()| {
                    let n = lowest_free(set, 1, MAX_DOMAINS).ok_or(CommandStatus::NoResources)?;
                    if matches!(cmd, Cmd::AllocPd) {
                        next.pds.insert(n);
                    } else {
                        next.tds.insert(n);
                    }
                    Ok(())
                });
                (input(op, 0, 0x10), 0x10, res)
            }
            Cmd::DeallocUar(pick) | Cmd::DeallocPd(pick) | Cmd::DeallocTd(pick) => {
                let (op, set, next_set) = match cmd {
                    Cmd::DeallocUar(_) => (Opcode::DeallocUar, &r.uars, &mut next.uars),
                    Cmd::DeallocPd(_) => (Opcode::DeallocPd, &r.pds, &mut next.pds),
                    _ => (Opcode::DeallocTransportDomain, &r.tds, &mut next.tds),
                };
                let n = choose(set, *pick, 0x3FF);
                let mut m = input(op, 0, 0x10);
                put_dword(&mut m, 0x08, n);
                let res = r.initialized().and_then(|()| {
                    if !next_set.remove(&n) {
                        return Err(CommandStatus::BadResource);
                    }
                    Ok(())
                });
                (m, 0x10, res)
            }
            Cmd::CreateEq { log, uar } => {
                let uar = choose(&r.uars, *uar, 0x1FF);
                let m = create_eq_input(*log, uar, 0, 0, &[qpage], &[]);
                let res = r.initialized().and_then(|()| {
                    if *log == 0 || *log > LOG_MAX_EQ_SZ {
                        return Err(CommandStatus::BadParam);
                    }
                    if !r.uars.contains(&uar) {
                        return Err(CommandStatus::BadResource);
                    }
                    let n = (FIRST_EQN..FIRST_EQN + MAX_EQS as u8)
                        .find(|n| !r.eqs.contains(n))
                        .ok_or(CommandStatus::NoResources)?;
                    next.eqs.insert(n);
                    Ok(())
                });
                (m, 0x10, res)
            }
            Cmd::DestroyEq(pick) => {
                let eqn = choose(&r.eqs, *pick, 0x3F);
                let mut m = input(Opcode::DestroyEq, 0, 0x10);
                put_dword(&mut m, 0x08, u32::from(eqn));
                let res = r.initialized().and_then(|()| {
                    if r.cqs.values().any(|c| c.0 == eqn) || !next.eqs.remove(&eqn) {
                        return Err(CommandStatus::BadResource);
                    }
                    Ok(())
                });
                (m, 0x10, res)
            }
            Cmd::CreateCq { log, uar, eq } => {
                let uar = choose(&r.uars, *uar, 0x1FF);
                let eqn = choose(&r.eqs, *eq, 0x3F);
                let m = create_cq_input(*log, uar, u32::from(eqn), 0, &[qpage], dbr);
                let res = r.initialized().and_then(|()| {
                    // log 0, one CQE, is valid (mlx5e's drop RQ CQ).
                    if *log > LOG_MAX_CQ_SZ {
                        return Err(CommandStatus::BadParam);
                    }
                    if !r.uars.contains(&uar) || !r.eqs.contains(&eqn) {
                        return Err(CommandStatus::BadResource);
                    }
                    let n = (FIRST_CQN..)
                        .find(|n| !r.cqs.contains_key(n))
                        .ok_or(CommandStatus::NoResources)?;
                    next.cqs.insert(n, (eqn, *log, 0));
                    Ok(())
                });
                (m, 0x10, res)
            }
            Cmd::DestroyCq(pick) => {
                let cqns: BTreeSet<u32> = r.cqs.keys().copied().collect();
                let cqn = choose(&cqns, *pick, 0x7FF);
                let mut m = input(Opcode::DestroyCq, 0, 0x10);
                put_dword(&mut m, 0x08, cqn);
                let res = r.initialized().and_then(|()| {
                    next.cqs
                        .remove(&cqn)
                        .map(|_| ())
                        .ok_or(CommandStatus::BadResource)
                });
                (m, 0x10, res)
            }
            Cmd::Unknown => (
                input(Opcode::Unknown(0x0ABC), 0, 0x10),
                0x10,
                Err(CommandStatus::BadOp),
            ),
        };
        let status = match result {
            Ok(()) => {
                self.refs[v] = next;
                CommandStatus::Ok
            }
            Err(s) => s,
        };
        (
            msg,
            out_len,
            Predicted {
                status,
                pages: pages_answer,
            },
        )
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let target = match op {
            Op::Cmd { vf, .. } | Op::Flr { vf } | Op::RequestPages { vf, .. } => *vf,
            Op::PostCqe { vf, .. } => *vf,
            Op::BringUp { vf } => {
                for cmd in [
                    Cmd::Enable,
                    Cmd::Give {
                        n: INIT_PAGES,
                        reuse: false,
                    },
                    Cmd::Init,
                    Cmd::AllocUar,
                    Cmd::CreateEq { log: 2, uar: 0 },
                    Cmd::CreateCq {
                        log: 1,
                        uar: 0,
                        eq: 0,
                    },
                ] {
                    self.step(&Op::Cmd { vf: *vf, cmd })?;
                }
                return Ok(());
            }
        };
        let other = 1 - target;
        let other_before = (
            self.nic.function_state(vf(other)).unwrap().clone(),
            self.nic.function_counters(vf(other)).unwrap(),
        );
        match op {
            Op::Cmd { vf: v, cmd } => {
                let (msg, out_len, want) = self.build(*v, cmd);
                let got = self.drivers[*v].exec(&mut self.nic, &msg, out_len);
                let o = match got {
                    Ok(o) => o,
                    Err(e @ (CmdError::NotCompleted | CmdError::Delivery(_))) => {
                        return Err(TestCaseError::fail(format!("{cmd:?}: {e:?}")));
                    }
                };
                prop_assert_eq!(o.status, want.status, "{:?} on vf{}", cmd, v);
                if let Some(n) = want.pages {
                    prop_assert_eq!(o.dword(0x0C) as i32, n, "QUERY_PAGES {:?}", cmd);
                }
            }
            Op::Flr { vf: v } => {
                let at = (layout::PCIE + pcie::DEVCTL) as u16;
                self.nic
                    .config_write(vf(*v), at, &pcie::DEVCTL_INITIATE_FLR.to_le_bytes());
                self.refs[*v] = RefFn::default();
                // The driver gives the queue address again after the reset.
                self.drivers[*v].set_cmdq(&mut self.nic);
            }
            Op::RequestPages { vf: v, n } => {
                // The state is checked before the count.
                let r = &mut self.refs[*v];
                let want = if r.hca != Hca::Initialized {
                    Err(PageRequestError::NotInitialized(vf(*v)))
                } else if *n == 0 {
                    Err(PageRequestError::NoPages)
                } else {
                    r.owed = r.owed.saturating_add(*n).min(i32::MAX as u32);
                    Ok(())
                };
                prop_assert_eq!(self.nic.request_pages(vf(*v), *n), want);
            }
            Op::BringUp { .. } => {}
            Op::PostCqe { vf: v, cq } => {
                let r = &mut self.refs[*v];
                let cqns: BTreeSet<u32> = r.cqs.keys().copied().collect();
                let cqn = choose(&cqns, *cq, 0x7FF);
                let want = match r.cqs.get_mut(&cqn) {
                    Some((_, log, written)) if *written < (1 << *log) => {
                        *written += 1;
                        true
                    }
                    _ => false,
                };
                prop_assert_eq!(self.nic.post_test_cqe(vf(*v), cqn), want);
            }
        }
        for (n, r) in self.refs.iter().enumerate() {
            let s = self.nic.function_state(vf(n)).unwrap();
            if let Err(e) = r.matches(s) {
                return Err(TestCaseError::fail(format!("vf{n} after {op:?}:\n{e}")));
            }
        }
        let other_now = (
            self.nic.function_state(vf(other)).unwrap().clone(),
            self.nic.function_counters(vf(other)).unwrap(),
        );
        prop_assert!(other_now == other_before, "vf{} changed by {:?}", other, op);
        let pf_now = (
            self.nic.function_state(FunctionId::Pf).unwrap().clone(),
            self.nic
                .function_counters(FunctionId::Pf)
                .map(|c| c.commands),
        );
        prop_assert!(pf_now == self.pf, "the PF changed by {:?}", op);
        Ok(())
    }
}

/// A run that reaches every state: both VFs up with EQs and CQs, torn down, reset.
#[test]
fn a_scripted_run_through_every_state() {
    let mut w = World::new();
    let mut script = Vec::new();
    for v in 0..VFS {
        script.extend([
            Op::Cmd {
                vf: v,
                cmd: Cmd::Enable,
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::SetIssi(1),
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::QueryPages(1),
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::Give { n: 6, reuse: false },
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::Init,
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::AllocUar,
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::CreateEq { log: 2, uar: 0 },
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::CreateCq {
                    log: 1,
                    uar: 0,
                    eq: 0,
                },
            },
            Op::PostCqe { vf: v, cq: 0 },
            Op::PostCqe { vf: v, cq: 0 },
            Op::PostCqe { vf: v, cq: 0 },
            Op::RequestPages { vf: v, n: 3 },
            Op::Cmd {
                vf: v,
                cmd: Cmd::QueryPages(3),
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::Give { n: 2, reuse: false },
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::DestroyEq(0),
            },
            Op::Cmd {
                vf: v,
                cmd: Cmd::Take(8),
            },
        ]);
    }
    script.extend([
        Op::Cmd {
            vf: 0,
            cmd: Cmd::Teardown(0),
        },
        Op::Cmd {
            vf: 0,
            cmd: Cmd::Take(8),
        },
        Op::Flr { vf: 1 },
        Op::Cmd {
            vf: 0,
            cmd: Cmd::Disable,
        },
    ]);
    for op in &script {
        w.step(op).unwrap();
    }
    assert!(w.refs.iter().all(|r| r.hca == Hca::Disabled));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn two_vfs_follow_the_reference_hca_state_machine(
        ops in prop::collection::vec(op(), 1..120)
    ) {
        let mut w = World::new();
        for op in &ops {
            w.step(op)?;
        }
    }
}

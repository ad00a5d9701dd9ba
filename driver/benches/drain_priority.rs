//! Issue 20's three-way comparison on the model, in virtual time (deterministic): 2
//! checkpointing VFs (25 ms epochs, backup ack 5 ms later, 2 × 1000 B per 100 µs = 160 Mb/s
//! each) and 2 plain VFs that saturate the 1 Gb/s port (1500 B frames, their rings kept full),
//! under
//!
//! * `extension`: the adapter's HAC block (AdapterHac, guard 16 KiB);
//! * `softhac`: the extension off, SoftHac holds the checkpointing VFs' output in their rings;
//! * `softhac+limit`: SoftHac and the drain policy (the plain class limited to 200 Mb/s, 100 Mb/s
//!   per plain VF with the 82576's RTTBCNRC, while checkpoint frames drain);
//! * `softhac+limit+prio`: the same, plus TXDCTL.PRIORITY on the checkpointing VFs' queues.
//!
//! Printed per mode: added delay of released checkpoint frames (wire start − commit) and of
//! plain frames (wire start − accepted by the driver), p50/p99/max; commit → last frame of the
//! epoch on the wire (p50/max); the plain class's share of the wire overall and while
//! checkpoint frames drain (commit → last frame of that epoch).
//!
//! Run: `cargo bench -p hac-driver --bench drain_priority` (400 ms of virtual time per mode), or
//! `-- --quick` (100 ms). Figures in docs/performance.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use bytes::Bytes;
use hac_driver::drain_policy::{DrainPolicy, DrainPolicyConfig};
use hac_driver::hac::{AdapterHac, Hac, VfNumber};
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma};
use hac_driver::softhac::SoftHac;
use hac_driver::vf::VfConfig;
use igb_hw::{MacAddress, VfIndex};
use igb_model::{FunctionId, LineRate, NicConfig};

const EPOCH_NS: u64 = 25_000_000;
const ACK_NS: u64 = 5_000_000;
const STEP_NS: u64 = 100_000;
const GUARD: u32 = 16 * 1024;
const LINK_MBPS: u32 = 1000;
const CKPT_LEN: usize = 1000;
const PLAIN_LEN: usize = 1500;
const PLAIN_BATCH: u32 = 16;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Extension,
    Soft,
    SoftPolicy { prio: bool },
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Extension => "extension",
            Mode::Soft => "softhac",
            Mode::SoftPolicy { prio: false } => "softhac+limit",
            Mode::SoftPolicy { prio: true } => "softhac+limit+prio",
        }
    }
}

fn mac(n: u8) -> MacAddress {
    MacAddress([0x02, 0, 0, 0, 3, n])
}

fn frame(n: u8, seq: u32, len: usize) -> Bytes {
    let peer = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
    let mut f = igb_hw::frame::build(peer, mac(n), 0x88B5, &seq.to_be_bytes());
    f.resize(len, 0xEE);
    Bytes::from(f)
}

type Vf = hac_driver::vf::VfDriver<ModelBar, ModelDma, ModelClock>;

/// The HAC control of either mode.
fn hac_of(control: &mut Control) -> &mut dyn Hac {
    match control {
        Control::Extension { hac, .. } => hac.as_mut(),
        Control::Soft { soft, .. } => soft,
    }
}

/// Opens the next epoch of each checkpointing VF; its checkpoint is acked at `ack_at`.
fn checkpoint(
    control: &mut Control,
    open: &mut [u32; 2],
    pending_acks: &mut Vec<(u64, u8, u32)>,
    ack_at: u64,
) {
    for v in 0..2u8 {
        let e = open[v as usize];
        hac_of(control)
            .open_epoch(VfNumber::from(v), e + 1)
            .unwrap();
        open[v as usize] = e + 1;
        pending_acks.push((ack_at, v, e));
    }
}

enum Control {
    Extension {
        hac: Box<AdapterHac<ModelBar>>,
        vfs: Vec<Vf>,
    },
    Soft {
        soft: SoftHac<ModelBar, ModelDma, ModelClock>,
        policy: Option<DrainPolicy>,
    },
}

struct Figures {
    ckpt_delay: Vec<u64>,
    plain_delay: Vec<u64>,
    commit_to_last: Vec<u64>,
    plain_bytes: u64,
    total_bytes: u64,
    drain_plain_bytes: u64,
    drain_total_bytes: u64,
    activations: u64,
}

fn run(mode: Mode, duration_ns: u64) -> Figures {
    let model = Model::new(NicConfig {
        capture_wire: true,
        line_rate: LineRate::G1,
        ..NicConfig::default()
    });
    let macs: Vec<Option<MacAddress>> = (0..4).map(|n| Some(mac(n))).collect();
    let (pf, vfs) = model.start_vfs(&macs, VfConfig::default()).unwrap();
    let mut control = match mode {
        Mode::Extension => {
            let mut hac = AdapterHac::new(model.bar0(FunctionId::Pf), 4);
            hac.set_guard(GUARD).unwrap();
            Control::Extension {
                hac: Box::new(hac),
                vfs,
            }
        }
        Mode::Soft | Mode::SoftPolicy { .. } => {
            let mut soft = SoftHac::new(vfs);
            soft.set_guard(GUARD).unwrap();
            let policy = match mode {
                Mode::SoftPolicy { prio } => {
                    let mut p = DrainPolicy::new(DrainPolicyConfig {
                        prioritize_checkpointing: prio,
                        ..DrainPolicyConfig::for_link(LINK_MBPS)
                    });
                    let agent = pf.lock().unwrap();
                    for v in 0..2 {
                        p.set_checkpointing(&agent, VfIndex::new(v).unwrap(), true)
                            .unwrap();
                    }
                    Some(p)
                }
                _ => None,
            };
            Control::Soft { soft, policy }
        }
    };
    let hac = hac_of(&mut control);
    hac.set_tagged(VfNumber::new(0), true).unwrap();
    hac.set_tagged(VfNumber::new(1), true).unwrap();

    let now = |m: &Model| m.nic().now().as_nanos();
    // (vf, seq) → (accepted at, epoch at send; 0 for plain)
    let mut sent: HashMap<(u8, u32), (u64, u32)> = HashMap::new();
    let mut commit_time: HashMap<(u8, u32), u64> = HashMap::new();
    let mut open = [1u32; 2];
    let mut pending_acks: Vec<(u64, u8, u32)> = Vec::new();
    let mut seq = [0u32; 4];
    let mut next_epoch = EPOCH_NS;
    let mut t = 0;
    let mut commit = |control: &mut Control, v: u8, e: u32, model: &Model| {
        let at = now(model);
        match control {
            Control::Extension { hac, .. } => hac.commit(VfNumber::from(v), e).unwrap(),
            Control::Soft { soft, policy } => {
                soft.commit(VfNumber::from(v), e).unwrap();
                soft.pump().unwrap();
                if let Some(p) = policy {
                    p.poll(&mut pf.lock().unwrap(), at).unwrap();
                }
            }
        }
        commit_time.insert((v, e), at);
    };
    while t < duration_ns {
        if t >= next_epoch {
            checkpoint(&mut control, &mut open, &mut pending_acks, t + ACK_NS);
            next_epoch += EPOCH_NS;
        }
        let due: Vec<(u64, u8, u32)> = pending_acks.iter().copied().filter(|a| a.0 <= t).collect();
        pending_acks.retain(|a| a.0 > t);
        for (_, v, e) in due {
            commit(&mut control, v, e, &model);
        }
        for n in 0..4u8 {
            let (count, len) = if n < 2 {
                (2, CKPT_LEN)
            } else {
                (PLAIN_BATCH, PLAIN_LEN)
            };
            let batch: Vec<Bytes> = (0..count)
                .map(|k| frame(n, seq[n as usize] + k, len))
                .collect();
            let at = now(&model);
            let q = match &mut control {
                Control::Extension { vfs, .. } => vfs[n as usize].send(&batch).unwrap(),
                // A plain VF under SoftHac queues what does not fit in its ring in software; it
                // offers more only when that queue is short, like a VF whose ring is full.
                Control::Soft { soft, .. } => {
                    if n >= 2 && soft.plain_queued(VfNumber::from(n)) >= PLAIN_BATCH as usize {
                        0
                    } else {
                        soft.send(VfIndex::new(n.into()).unwrap(), &batch).unwrap()
                    }
                }
            } as u32;
            for k in 0..q {
                let epoch = if n < 2 { open[n as usize] } else { 0 };
                sent.insert((n, seq[n as usize] + k), (at, epoch));
            }
            seq[n as usize] += q;
        }
        if let Control::Soft { soft, policy } = &mut control {
            soft.pump().unwrap();
            if let Some(p) = policy {
                p.poll(&mut pf.lock().unwrap(), now(&model)).unwrap();
            }
        }
        t += STEP_NS;
        model.run_for(STEP_NS);
    }
    // Last checkpoint, then let everything drain (no more traffic).
    checkpoint(&mut control, &mut open, &mut pending_acks, 0);
    for (_, v, e) in std::mem::take(&mut pending_acks) {
        commit(&mut control, v, e, &model);
    }
    for _ in 0..2000 {
        if let Control::Soft { soft, policy } = &mut control {
            soft.pump().unwrap();
            if let Some(p) = policy {
                p.poll(&mut pf.lock().unwrap(), now(&model)).unwrap();
            }
        }
        model.run_for(STEP_NS);
    }
    let activations = match &control {
        Control::Soft {
            policy: Some(p), ..
        } => p.stats().activations,
        _ => 0,
    };

    let wire = model.nic().take_wire_capture();
    let mut f = Figures {
        ckpt_delay: Vec::new(),
        plain_delay: Vec::new(),
        commit_to_last: Vec::new(),
        plain_bytes: 0,
        total_bytes: 0,
        drain_plain_bytes: 0,
        drain_total_bytes: 0,
        activations,
    };
    // The commit that released a frame: the first commit of its VF at or above its epoch.
    let released_by = |vf: u8, epoch: u32| -> (u32, u64) {
        commit_time
            .iter()
            .filter(|((v, e), _)| *v == vf && *e >= epoch)
            .map(|(&(_, e), &t)| (e, t))
            .min()
            .unwrap()
    };
    let mut last_of: HashMap<(u8, u32), u64> = HashMap::new();
    for w in &wire {
        let vf = w.data[11];
        let s = u32::from_be_bytes([w.data[14], w.data[15], w.data[16], w.data[17]]);
        let (at, epoch) = sent[&(vf, s)];
        let wt = w.at.as_nanos();
        if vf < 2 {
            let (e, c) = released_by(vf, epoch);
            assert!(wt >= c, "checkpoint frame before its commit");
            f.ckpt_delay.push(wt - c);
            let l = last_of.entry((vf, e)).or_insert(0);
            *l = (*l).max(wt);
        } else {
            f.plain_delay.push(wt - at);
        }
    }
    let mut drains: Vec<(u64, u64)> = Vec::new();
    for (&(vf, e), &c) in &commit_time {
        if let Some(&l) = last_of.get(&(vf, e)) {
            f.commit_to_last.push(l - c);
            drains.push((c, l));
        }
    }
    drains.sort_unstable();
    for w in &wire {
        let wt = w.at.as_nanos();
        let len = w.data.len() as u64;
        let plain = w.data[11] >= 2;
        f.total_bytes += len;
        if plain {
            f.plain_bytes += len;
        }
        if wt >= duration_ns {
            // The shares are those of the loaded period (afterwards only backlogs drain).
            continue;
        }
        let i = drains.partition_point(|d| d.0 <= wt);
        if drains[..i].iter().any(|d| d.1 >= wt) {
            f.drain_total_bytes += len;
            if plain {
                f.drain_plain_bytes += len;
            }
        }
    }
    f
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i] as f64 / 1000.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let duration = if quick { 100_000_000 } else { 400_000_000 };
    println!(
        "drain_priority: 2 checkpointing VFs (160 Mb/s each, 25 ms epochs, ack +5 ms) + 2 plain VFs saturating a 1 Gb/s port, {} ms of virtual time",
        duration / 1_000_000
    );
    println!(
        "{:<20} {:>26} {:>26} {:>18} {:>12} {:>12}",
        "mode",
        "ckpt delay p50/p99/max µs",
        "plain delay p50/p99/max µs",
        "commit→last p50/max µs",
        "plain share",
        "…in drains"
    );
    for mode in [
        Mode::Extension,
        Mode::Soft,
        Mode::SoftPolicy { prio: false },
        Mode::SoftPolicy { prio: true },
    ] {
        let mut f = run(mode, duration);
        println!(
            "{:<20} {:>8.0}/{:>8.0}/{:>8.0} {:>8.0}/{:>8.0}/{:>8.0} {:>9.0}/{:>8.0} {:>11.1}% {:>11.1}%{}",
            mode.name(),
            pct(&mut f.ckpt_delay, 0.5),
            pct(&mut f.ckpt_delay, 0.99),
            pct(&mut f.ckpt_delay, 1.0),
            pct(&mut f.plain_delay, 0.5),
            pct(&mut f.plain_delay, 0.99),
            pct(&mut f.plain_delay, 1.0),
            pct(&mut f.commit_to_last, 0.5),
            pct(&mut f.commit_to_last, 1.0),
            100.0 * f.plain_bytes as f64 / f.total_bytes.max(1) as f64,
            100.0 * f.drain_plain_bytes as f64 / f.drain_total_bytes.max(1) as f64,
            if f.activations > 0 {
                format!("  ({} drains limited)", f.activations)
            } else {
                String::new()
            }
        );
    }
}

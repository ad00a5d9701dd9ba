//! The simulation engine behind `hac demo` and `hac run`: a scenario on the built-in model, with
//! the real VF driver on every VF, the PF agent answering their mailboxes, the HAC API driving
//! the adapter's HAC block, and a simulated checkpoint engine (epochs, backup acks with a seeded
//! random delay, failure events). Every frame is traced from the driver to the wire.

use std::collections::VecDeque;

use adapter_core::rng::XorShift64Star;
use bytes::Bytes;
use hac_driver::hac::VfNumber;
use igb_hw::{MacAddress, VfIndex};
use igb_model::{LineRate, WireSink};

use crate::scenario::Scenario;

pub mod fleet;

/// EtherType of the engine's test frames (IEEE local experimental).
pub const ETHERTYPE: u16 = 0x88B5;
/// The peer every VF sends to, outside the adapter.
pub const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
/// Virtual time per engine step.
pub const STEP_NS: u64 = 20_000;
/// Frames a VF's generator keeps waiting for the driver; at this backlog the generator blocks (as
/// a sender blocks on a full socket buffer) and catches up when the driver takes frames again.
pub const BACKLOG_CAP: usize = 65_536;

/// What became of a frame by the end of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Left on the wire.
    Sent,
    /// Discarded by an abort or a failover.
    Discarded,
    /// Still in the adapter at the end (held or waiting for the wire).
    Buffered,
}

impl Outcome {
    /// The CSV word.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Discarded => "discarded",
            Outcome::Buffered => "buffered",
        }
    }
}

/// One frame's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRecord {
    /// The VF that sent it.
    pub vf: u8,
    /// Its sequence number on that VF.
    pub seq: u32,
    /// Its checkpoint epoch (checkpointing VFs only).
    pub epoch: Option<u32>,
    /// Length in bytes (without FCS).
    pub len: u32,
    /// When the driver accepted it (virtual ns).
    pub submit_ns: u64,
    /// When the commit (or unprotect) that released it happened.
    pub commit_ns: Option<u64>,
    /// When it started on the wire.
    pub wire_ns: Option<u64>,
    /// Final state.
    pub outcome: Outcome,
}

/// A checkpoint engine action, for the report and plots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// Virtual time, ns.
    pub at_ns: u64,
    /// The VF.
    pub vf: u8,
    /// The epoch.
    pub epoch: u32,
    /// "commit", "abort", "failover" or "unprotect".
    pub kind: &'static str,
}

/// Everything a run produced.
pub struct RunResult {
    /// The scenario that ran.
    pub scenario: Scenario,
    /// Every frame the drivers accepted, by VF then sequence.
    pub frames: Vec<FrameRecord>,
    /// Commits, aborts, failovers, unprotects.
    pub markers: Vec<Marker>,
    /// Buffer occupancy samples: (virtual ns, frames buffered per VF).
    pub occupancy: Vec<(u64, Vec<u32>)>,
    /// HAC counters per VF at the end.
    pub hac: Vec<hac_driver::hac::HacVfStats>,
    /// Frames on the wire and their bytes.
    pub wire_frames: u64,
    /// Bytes on the wire (without FCS).
    pub wire_bytes: u64,
    /// Frames generated but never accepted by the driver (ring full / backpressure) at the end.
    pub backlog: Vec<u64>,
    /// Wall-clock seconds the run took.
    pub wall_secs: f64,
    /// Virtual nanoseconds simulated (after the VFs came up; all recorded times are absolute
    /// model time, like the pcap's).
    pub virtual_ns: u64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The driver could not bring a VF up or send.
    #[error("driver: {0}")]
    Driver(#[from] hac_driver::DriverError),
    /// The mlx5 driver could not bring a function up or send.
    #[error("mlx5 driver: {0}")]
    Mlx5(#[from] hac_driver::mlx5::Mlx5Error),
    /// The HAC API refused an operation the engine relies on.
    #[error("HAC: {0}")]
    Hac(#[from] hac_driver::hac::HacError),
    /// A scenario VF beyond the 82576's VFs (validation keeps scenarios within them).
    #[error("VF {0} does not exist")]
    NoSuchVf(usize),
    /// A VF used every checkpoint epoch (validation keeps scenarios far below this).
    #[error("VF {0} used every checkpoint epoch")]
    EpochsExhausted(usize),
}

/// Scenario VF `i` as the driver names it.
fn vf_index(i: usize) -> Result<VfIndex, EngineError> {
    VfIndex::new(i).ok_or(EngineError::NoSuchVf(i))
}

/// Scenario VF `i` as the HAC contract names it (the VF `Model::vf_driver` brought up).
fn vf_number(i: usize) -> Result<VfNumber, EngineError> {
    vf_index(i).map(VfNumber::from)
}

fn vf_mac(n: usize) -> MacAddress {
    MacAddress([0x02, 0x1B, 0x21, 0xC0, 0x00, n as u8])
}

/// No frame recorded under this sequence number (in the engine's per-VF index).
const NOT_RECORDED: usize = usize::MAX;

/// Frames offered to a VF's driver per step at most.
const SEND_BATCH: usize = 64;

/// The test frame `seq` of VF `vf`: to the peer, the VF number and the sequence number (big
/// endian) first in the payload, zero-padded to `len` bytes.
fn test_frame(vf: usize, seq: u32, len: usize) -> Bytes {
    let mut payload = [0u8; 5];
    payload[0] = vf as u8;
    payload[1..].copy_from_slice(&seq.to_be_bytes());
    let head = igb_hw::frame::build(PEER, vf_mac(vf), ETHERTYPE, &payload);
    // One zeroed allocation of the frame's length (growing the header's would copy it).
    let mut f = vec![0u8; len.max(head.len())];
    f[..head.len()].copy_from_slice(&head);
    f.truncate(len);
    Bytes::from(f)
}

struct Gen {
    next_ns: u64,
    backlog: VecDeque<(u32, usize)>,
    /// The frames of the first backlog entries (at most [`SEND_BATCH`]), built once: a frame
    /// the driver does not take yet is offered again, not built again.
    built: VecDeque<Bytes>,
    seq: u32,
    active: bool,
}

struct VfState {
    tagged: bool,
    open: u32,
    /// Pending acks: (time, epoch).
    acks: VecDeque<(u64, u32)>,
    /// (epoch, time) of each release, in order.
    releases: Vec<(u32, u64)>,
    /// Epoch ranges (lo exclusive, hi inclusive) discarded.
    discarded: Vec<(u32, u32)>,
    resolved: u32,
}

/// Runs `scenario`; `sink` sees every frame on the wire (e.g. a pcap writer); `progress` gets
/// the fraction done.
pub fn run(
    scenario: &Scenario,
    sink: Option<Box<dyn WireSink>>,
    progress: &mut dyn FnMut(f64),
) -> Result<RunResult, EngineError> {
    let wall = std::time::Instant::now();
    let rate: LineRate = scenario.port_rate.parse().unwrap_or_default();
    let n = scenario.vf.len();
    let mut awaiting_stamp: Vec<VecDeque<usize>> = vec![VecDeque::new(); n];
    let macs: Vec<MacAddress> = (0..n).map(vf_mac).collect();
    let mut fleet = fleet::start(scenario.family, &macs, rate, sink)?;
    fleet.hac().set_guard(scenario.guard_bytes)?;
    let mut vs: Vec<VfState> = Vec::with_capacity(n);
    for (i, spec) in scenario.vf.iter().enumerate() {
        if spec.checkpointing {
            fleet.hac().set_tagged(vf_number(i)?, true)?;
            fleet
                .hac()
                .set_limits(vf_number(i)?, spec.limit_frames, spec.limit_bytes)?;
        }
        vs.push(VfState {
            tagged: spec.checkpointing,
            open: 1,
            acks: VecDeque::new(),
            releases: Vec::new(),
            discarded: Vec::new(),
            resolved: 0,
        });
    }
    let mut rng = XorShift64Star::new(scenario.seed.max(1));
    // Virtual time already spent bringing the VFs up (mailbox handshakes): the run starts here.
    let t0 = fleet.now_ns();
    let mut gens: Vec<Gen> = (0..n)
        .map(|_| Gen {
            next_ns: t0,
            backlog: VecDeque::new(),
            built: VecDeque::with_capacity(SEND_BATCH),
            seq: 0,
            active: true,
        })
        .collect();
    let mut frames: Vec<FrameRecord> = Vec::new();
    // Per VF, by sequence number: the frame's index in `frames` (`NOT_RECORDED` for none).
    // Sequence numbers count up from 0, so this is a vector, not a map.
    let mut index: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut markers = Vec::new();
    let mut occupancy = Vec::new();
    let mut events: Vec<_> = scenario.event.clone();
    events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let mut events: VecDeque<_> = events.into();
    let end_ns = t0 + scenario.duration_ms * 1_000_000;
    let epoch_ns = (scenario.epoch_ms * 1e6) as u64;
    let (ack_lo, ack_hi) = (
        (scenario.ack_delay.min_ms * 1e6) as u64,
        (scenario.ack_delay.max_ms * 1e6) as u64,
    );
    let mut next_checkpoint = t0 + epoch_ns;
    let mut next_sample = t0;
    let (mut wire_frames, mut wire_bytes) = (0u64, 0u64);
    let mut t = t0;
    let mut last_progress = 0.0;

    while t < end_ns {
        // Checkpoint engine.
        if t >= next_checkpoint {
            for (i, v) in vs.iter_mut().enumerate() {
                if v.tagged {
                    let e = v.open;
                    let next =
                        adapter_core::next_epoch(e).ok_or(EngineError::EpochsExhausted(i))?;
                    fleet.hac().open_epoch(vf_number(i)?, next)?;
                    v.open = next;
                    v.acks.push_back((t + rng.uniform(ack_lo, ack_hi), e));
                }
            }
            next_checkpoint += epoch_ns;
        }
        for (i, v) in vs.iter_mut().enumerate() {
            while let Some(&(at, e)) = v.acks.front() {
                if at > t {
                    break;
                }
                v.acks.pop_front();
                if e > v.resolved {
                    fleet.hac().commit(vf_number(i)?, e)?;
                    v.resolved = e;
                    v.releases.push((e, t));
                    markers.push(Marker {
                        at_ns: t,
                        vf: i as u8,
                        epoch: e,
                        kind: "commit",
                    });
                }
            }
        }
        while events
            .front()
            .is_some_and(|e| t0 + (e.at_ms * 1e6) as u64 <= t)
        {
            let Some(ev) = events.pop_front() else { break };
            let i = ev.vf;
            let v = &mut vs[i];
            if !v.tagged {
                continue;
            }
            match ev.kind.as_str() {
                "abort" => {
                    // The oldest checkpoint in flight fails.
                    if let Some((_, e)) = v.acks.pop_front() {
                        fleet.hac().abort(vf_number(i)?, e)?;
                        v.discarded.push((v.resolved, e));
                        v.resolved = e;
                        markers.push(Marker {
                            at_ns: t,
                            vf: i as u8,
                            epoch: e,
                            kind: "abort",
                        });
                    }
                }
                "failover" => {
                    fleet.hac().failover(vf_number(i)?)?;
                    v.discarded.push((v.resolved, v.open));
                    v.resolved = v.open;
                    v.acks.clear();
                    gens[i].active = false; // the primary is gone
                    markers.push(Marker {
                        at_ns: t,
                        vf: i as u8,
                        epoch: v.open,
                        kind: "failover",
                    });
                }
                _ => {
                    fleet.hac().unprotect(vf_number(i)?)?;
                    v.releases.push((u32::MAX, t));
                    v.acks.clear();
                    v.tagged = false;
                    markers.push(Marker {
                        at_ns: t,
                        vf: i as u8,
                        epoch: v.open,
                        kind: "unprotect",
                    });
                }
            }
        }
        // Traffic generators.
        for (i, spec) in scenario.vf.iter().enumerate() {
            let g = &mut gens[i];
            if !g.active || spec.rate_mbps <= 0.0 {
                continue;
            }
            let avg = (spec.min_frame + spec.max_frame) as f64 / 2.0;
            while g.next_ns <= t && g.backlog.len() < BACKLOG_CAP {
                let burst = if spec.pattern == "bursts" {
                    spec.burst_frames
                } else {
                    1
                };
                for _ in 0..burst {
                    let len = rng.uniform(spec.min_frame as u64, spec.max_frame as u64) as usize;
                    g.backlog.push_back((g.seq, len));
                    g.seq += 1;
                }
                // Float-to-integer casts saturate; at least 1 ns so the loop always advances.
                let gap = ((f64::from(burst) * avg * 8.0 * 1000.0) / spec.rate_mbps) as u64;
                g.next_ns = g.next_ns.saturating_add(gap.max(1));
            }
            if g.backlog.is_empty() {
                continue;
            }
            let have = g.built.len();
            for &(seq, len) in g.backlog.iter().skip(have).take(SEND_BATCH - have) {
                g.built.push_back(test_frame(i, seq, len));
            }
            let now = fleet.now_ns();
            let accepted = fleet.send(i, g.built.make_contiguous())?;
            for _ in 0..accepted {
                g.built.pop_front();
                let Some((seq, len)) = g.backlog.pop_front() else {
                    break;
                };
                let by_seq = &mut index[i];
                if by_seq.len() <= seq as usize {
                    by_seq.resize(seq as usize + 1, NOT_RECORDED);
                }
                by_seq[seq as usize] = frames.len();
                awaiting_stamp[i].push_back(frames.len());
                frames.push(FrameRecord {
                    vf: i as u8,
                    seq,
                    epoch: None,
                    len: len as u32,
                    submit_ns: now,
                    commit_ns: None,
                    wire_ns: None,
                    outcome: Outcome::Buffered,
                });
            }
        }
        t += STEP_NS;
        fleet.run_for(STEP_NS);
        for (vf, epoch) in fleet.take_egress_trace() {
            if let Some(k) = awaiting_stamp.get_mut(vf).and_then(VecDeque::pop_front) {
                frames[k].epoch = epoch;
            }
        }
        for w in fleet.take_wire() {
            wire_frames += 1;
            wire_bytes += w.data.len() as u64;
            if w.data.len() >= 19 {
                let vf = w.data[14];
                let seq = u32::from_be_bytes([w.data[15], w.data[16], w.data[17], w.data[18]]);
                if let Some(&k) = index
                    .get(usize::from(vf))
                    .and_then(|by_seq| by_seq.get(seq as usize))
                    .filter(|&&k| k != NOT_RECORDED)
                {
                    frames[k].wire_ns = Some(w.at.as_nanos());
                    frames[k].outcome = Outcome::Sent;
                }
            }
        }
        if t >= next_sample {
            let mut occ = Vec::with_capacity(n);
            for i in 0..n {
                occ.push(fleet.hac().stats(vf_number(i)?)?.buffered_frames);
            }
            occupancy.push((t, occ));
            next_sample += 1_000_000;
        }
        let frac = (t - t0) as f64 / (end_ns - t0) as f64;
        if frac - last_progress >= 0.01 {
            progress(frac);
            last_progress = frac;
        }
    }
    progress(1.0);
    // Outcomes and release times.
    for f in &mut frames {
        let Some(e) = f.epoch else { continue };
        let v = &vs[f.vf as usize];
        f.commit_ns = v
            .releases
            .iter()
            .find(|&&(re, _)| re >= e)
            .map(|&(_, at)| at);
        if f.outcome != Outcome::Sent && v.discarded.iter().any(|&(lo, hi)| e > lo && e <= hi) {
            f.outcome = Outcome::Discarded;
            f.commit_ns = None;
        }
    }
    fleet.flush_wire_sinks();
    let mut hac_stats = Vec::with_capacity(n);
    for i in 0..n {
        hac_stats.push(fleet.hac().stats(vf_number(i)?)?);
    }
    Ok(RunResult {
        scenario: scenario.clone(),
        frames,
        markers,
        occupancy,
        hac: hac_stats,
        wire_frames,
        wire_bytes,
        backlog: gens.iter().map(|g| g.backlog.len() as u64).collect(),
        wall_secs: wall.elapsed().as_secs_f64(),
        virtual_ns: t - t0,
    })
}

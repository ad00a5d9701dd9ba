//! The backend on a real PF bound to vfio-pci: the PF agent answers the VFs' mailboxes. The
//! 82576/I350 has no HAC block, so the HAC requests are refused, unless the drain policy is on
//! (`--drain-plain-rate`): then they are hints for [`DrainPolicy`] (tag/untag/unprotect: which
//! VFs checkpoint with SoftHac in their own driver; commit: frames were released; open, abort
//! and failover change nothing on the PF), and the plain VFs are limited with the adapter's
//! rate limiters while a checkpointing VF's released frames drain.

use std::time::{Duration, Instant};

use hac_control::{ControlError, ErrorCode, HelloInfo, PortCounters, Stats, VfCounters, VfSummary};
use hac_driver::drain_policy::{DrainPolicy, DrainPolicyConfig};
use hac_driver::pf::PfConfig;
use igb_hw::VfIndex;

use super::counters::{COUNTER_SAMPLE, PfVfTotals, agent_view, pf_vf_stats};
use super::dispatch::{Backend, HacOp};
use super::{PciTarget, ServeConfig, ServeError, vf_mac};

/// Never returned: the dispatcher refuses HAC requests on a backend without HAC first.
fn no_hac() -> ControlError {
    ControlError::new(ErrorCode::Unsupported, "this PF has no HAC block")
}

/// The link speed rate limits are computed against: the 82576/I350 ports are 1000 Mb/s.
pub(super) const LINK_MBPS: u32 = 1000;

/// What the PF knows of a VF under the drain policy (its driver keeps the real HAC state).
#[derive(Clone, Copy, Debug, Default)]
struct HintState {
    checkpointing: bool,
    open_epoch: u32,
    committed_epoch: u32,
}

type PciBar = hac_driver::vfio::VfioBar<
    <hac_driver::vfio::HostDevice as hac_driver::vfio::DeviceAccess>::Window,
>;

/// The device side on a real PF bound to vfio-pci: the PF agent answers the VFs' mailboxes
/// (MACs, VLANs, multicast, max frame) like Linux igb would; the per-VF counters come from the
/// PF's view of the VF statistics. The 82576/I350 has no HAC block, so the HAC requests are
/// refused as unsupported.
pub(super) struct PciHost {
    _dev: hac_driver::vfio::VfioDevice,
    agent: hac_driver::pf::PfAgent<PciBar, hac_driver::backend::WallClock>,
    started: Instant,
    bdf: String,
    /// Read-to-clear port counters, accumulated: frames, octets.
    tx: (u64, u64),
    /// The PF's per-VF counters, accumulated.
    pf_vf_totals: Vec<PfVfTotals>,
    /// When they were last read.
    last_sample: Instant,
    /// The drain policy, if on.
    drain: Option<DrainPolicy>,
    /// Per-VF hints received (drain policy on).
    hints: Vec<HintState>,
    /// Policy register updates that failed (not expected: rates are checked at start).
    drain_errors: u64,
}

impl PciHost {
    /// Opens the PF, resets and configures it, and gives each VF its MAC.
    pub(super) fn new(config: &ServeConfig, target: &PciTarget) -> Result<PciHost, ServeError> {
        let io = |what: &str, e: &dyn std::fmt::Display| {
            ServeError::Io(format!("PF {}: {what}: {e}", target.bdf))
        };
        let dev = hac_driver::vfio::VfioDevice::open(&target.bdf, Some(&target.vf_token))
            .map_err(|e| io("cannot open", &e))?;
        dev.enable_memory_and_bus_master()
            .map_err(|e| io("cannot enable memory and bus mastering", &e))?;
        let bar = dev.bar0().map_err(|e| io("cannot map BAR0", &e))?;
        let mut agent = hac_driver::pf::PfAgent::new(
            bar,
            hac_driver::backend::WallClock::default(),
            PfConfig {
                num_vfs: config.vfs,
                link_mbps: LINK_MBPS,
                ..PfConfig::default()
            },
        )?;
        // The agent took `config.vfs` VFs, so all of them are VF indices.
        for vf in VfIndex::all(config.vfs) {
            agent.set_vf_mac(vf, Some(vf_mac(vf.get())))?;
        }
        Ok(PciHost {
            _dev: dev,
            agent,
            started: Instant::now(),
            bdf: target.bdf.clone(),
            tx: (0, 0),
            pf_vf_totals: vec![PfVfTotals::default(); config.vfs],
            last_sample: Instant::now(),
            drain: config.drain.map(|d| {
                DrainPolicy::new(DrainPolicyConfig {
                    plain_rate_mbps: d.plain_rate_mbps,
                    prioritize_checkpointing: d.priority,
                    ..DrainPolicyConfig::for_link(LINK_MBPS)
                })
            }),
            hints: vec![HintState::default(); config.vfs],
            drain_errors: 0,
        })
    }

    /// Runs the drain policy now.
    fn poll_drain(&mut self) {
        let now = self.started.elapsed().as_nanos() as u64;
        if let Some(p) = &mut self.drain
            && p.poll(&mut self.agent, now).is_err()
        {
            self.drain_errors += 1;
        }
    }

    /// Reads the per-VF 32-bit counters into their 64-bit totals.
    fn sample_counters(&mut self) {
        self.last_sample = Instant::now();
        let bar = self.agent.bar();
        for (i, totals) in self.pf_vf_totals.iter_mut().enumerate() {
            for (c, r) in totals.iter_mut().zip(pf_vf_stats(i as u8)) {
                c.update(bar.get(r));
            }
        }
    }
}

impl Backend for PciHost {
    fn idle_tick(&self) -> Duration {
        // igbvf waits up to a few ms per mailbox message; answer well within that.
        Duration::from_micros(200)
    }

    fn num_vfs(&self) -> usize {
        self.agent.num_vfs()
    }

    fn tick(&mut self) {
        self.agent.poll();
        self.poll_drain();
        if self.last_sample.elapsed() >= COUNTER_SAMPLE {
            self.sample_counters();
        }
    }

    fn hello(&self) -> HelloInfo {
        HelloInfo {
            name: "hac".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            backend: "vfio".into(),
            pf: Some(self.bdf.clone()),
            vfs: self.agent.num_vfs(),
            port_rate: None,
            hac: if self.drain.is_some() {
                "drain-policy".into()
            } else {
                "none".into()
            },
            vfio_user: None,
        }
    }

    fn has_hac(&self) -> bool {
        self.drain.is_some()
    }

    fn hac(&mut self, vf: usize, op: HacOp) -> Result<VfSummary, ControlError> {
        let (Some(policy), Some(index)) = (&mut self.drain, VfIndex::new(vf)) else {
            return Err(no_hac());
        };
        let hint = self.hints.get_mut(vf).ok_or_else(no_hac)?;
        let refused = |e: hac_driver::DriverError| {
            ControlError::new(ErrorCode::Refused, format!("drain policy: {e}"))
        };
        match op {
            HacOp::Tag | HacOp::Untag | HacOp::Unprotect => {
                hint.checkpointing = op == HacOp::Tag;
                policy
                    .set_checkpointing(&self.agent, index, hint.checkpointing)
                    .map_err(refused)?;
            }
            HacOp::Open(e) => hint.open_epoch = hint.open_epoch.max(e),
            HacOp::Commit(e) => hint.committed_epoch = hint.committed_epoch.max(e),
            HacOp::Abort(_) | HacOp::Failover => {}
        }
        let summary = VfSummary {
            vf,
            checkpointing: hint.checkpointing,
            open_epoch: hint.open_epoch,
            committed_epoch: hint.committed_epoch,
            buffered_frames: 0,
            released: 0,
            discarded: 0,
        };
        // A commit released frames in the VF's ring: limit the plain VFs now, not at the tick.
        self.poll_drain();
        Ok(summary)
    }

    fn set_limits(&mut self, _vf: usize, _frames: u32, _bytes: u32) -> Result<(), ControlError> {
        Err(no_hac())
    }

    fn set_guard(&mut self, _bytes: u32) -> Result<(), ControlError> {
        Err(no_hac())
    }

    fn send(&mut self, _vf: usize, _frames: u32, _len: usize) -> Result<(), ControlError> {
        Err(ControlError::new(
            ErrorCode::Unsupported,
            "`send` drives the model's stand-in VMs; on a real PF the VMs transmit themselves",
        ))
    }

    fn stats(&mut self, only: Option<usize>) -> Result<Stats, ControlError> {
        use igb_hw::regs::PfReg;
        let bar = self.agent.bar();
        self.tx.0 += u64::from(bar.get(PfReg::GPTC));
        let lo = u64::from(bar.get(PfReg::GOTCL));
        let hi = u64::from(bar.get(PfReg::GOTCH));
        self.tx.1 += lo | (hi << 32);
        let mut out = Stats {
            port: PortCounters {
                wire_frames: self.tx.0,
                wire_bytes: self.tx.1,
                wire_busy_ns: 0,
                device_time_ns: self.started.elapsed().as_nanos() as u64,
                ..PortCounters::default()
            },
            vfs: Vec::new(),
            ..Stats::default()
        };
        let n = self.agent.num_vfs();
        let range = match only {
            Some(v) => v..v + 1,
            None => 0..n,
        };
        self.sample_counters();
        for i in range {
            let [tx_packets, tx_bytes, rx_packets, rx_bytes] = self
                .pf_vf_totals
                .get(i)
                .map_or([0; 4], |t| t.map(|c| c.total));
            out.vfs.push(VfCounters {
                tx_packets,
                tx_bytes,
                rx_packets,
                rx_bytes,
                ..agent_view(i, VfIndex::new(i).and_then(|v| self.agent.vf(v)))
            });
        }
        Ok(out)
    }
}

//! The backend on the built-in model: the model run in real time, its PF agent, a stand-in VF
//! driver per VF (or a vfio-user export for a VM), a host on the wire, and the HAC block driven
//! through `AdapterHac`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hac_control::{ControlError, ErrorCode, HelloInfo, Stats, VfCounters, VfSummary};
use hac_driver::hac::{AdapterHac, Hac, VfNumber};
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma, SharedPfAgent};
use hac_driver::pf::PfConfig;
use hac_driver::vf::{VfConfig, VfDriver};
use igb_hw::{MacAddress, VfIndex};
use igb_model::{FunctionId, NicConfig, PcapSink};

use super::counters::{
    COUNTER_SAMPLE, PfVfTotals, agent_view, endpoint_counters, latency, model_counters, model_port,
    pf_vf_stats,
};
use super::dispatch::{Backend, HacOp, hac_refused, no_such_vf};
use super::vf_host::{VfHost, VfIp};
use super::wire_port::WirePort;
use super::workload::Workload;
use super::{ServeConfig, ServeError, vf_mac};

/// A stand-in VM's driver.
pub(super) type ModelVf = VfDriver<ModelBar, ModelDma, ModelClock>;

/// Default guard (the adapter's reset value).
const DEFAULT_GUARD: u32 = 64 * 1024;
/// The longest stretch of device time one tick runs (after a stall the model catches up in
/// steps of this size).
const MAX_TICK_NS: u64 = 5_000_000;

/// The device side on the model: model, PF agent, VF drivers, HAC.
pub(super) struct ModelHost {
    model: Model,
    agent: SharedPfAgent,
    /// Stand-in drivers; `None` for a VF exported through vfio-user (a VM drives it).
    vfs: Vec<Option<ModelVf>>,
    exported: Option<crate::vfio_user::Exported>,
    peer: Option<crate::vfio_user::peer::WirePeer>,
    /// The wire joined to a Linux interface (`--wire-tap`/`--wire-if`).
    port: Option<WirePort>,
    /// The stand-in VM with an IP stack (`--vf-ip`) and its VF; `vfs` has `None` there.
    vf_host: Option<VfHost>,
    hac: AdapterHac<ModelBar>,
    tagged: Vec<bool>,
    /// The stand-in VMs' frames.
    workload: Workload,
    guard: u32,
    started: Instant,
    rx_scratch: Vec<Bytes>,
    /// Exported VFs' counters from the PF's per-VF registers, accumulated.
    pf_vf_totals: Vec<PfVfTotals>,
    /// When the 32-bit counters were last read into their totals.
    last_sample: Instant,
}

impl ModelHost {
    /// Builds the model, its PF agent, the stand-in drivers and the exports of `config`.
    pub(super) fn new(config: &ServeConfig) -> Result<ModelHost, ServeError> {
        let model = Model::new(NicConfig {
            line_rate: config.port_rate,
            ..NicConfig::default()
        });
        if let Some(path) = &config.pcap {
            let file = std::fs::File::create(path).map_err(|e| {
                ServeError::Io(format!("cannot create pcap file {}: {e}", path.display()))
            })?;
            let sink = PcapSink::new(std::io::BufWriter::new(file))
                .map_err(|e| ServeError::Io(format!("writing {}: {e}", path.display())))?;
            model.nic().add_wire_sink(Box::new(sink));
        }
        let n = config.vfs;
        let macs: Vec<Option<MacAddress>> = (0..n).map(|i| Some(vf_mac(i))).collect();
        let agent = model.start_pf_agent(
            PfConfig {
                num_vfs: n,
                ..PfConfig::default()
            },
            &macs,
        )?;
        let exported_vfs = config
            .vfio_user
            .as_ref()
            .map(|v| v.vfs.clone())
            .unwrap_or_default();
        let mut vfs = Vec::with_capacity(n);
        let mut vf_host = None;
        // The PF agent took `n` VFs, so all `n` are VF indices.
        for vf in VfIndex::all(n) {
            if exported_vfs.contains(&vf.get()) {
                vfs.push(None);
                continue;
            }
            let driver = model.vf_driver(
                vf,
                VfConfig {
                    tx_ring_size: 512,
                    rx_ring_size: 256,
                    ..VfConfig::default()
                },
            )?;
            match config.vf_ip {
                Some(VfIp {
                    vf: ip_vf,
                    ip,
                    prefix,
                }) if ip_vf == vf.get() => {
                    let now = model.nic().now().as_nanos();
                    vf_host = Some(
                        VfHost::new(driver, ip, prefix, now)
                            .map_err(|e| ServeError::Usage(format!("--vf-ip: {e}")))?,
                    );
                    vfs.push(None);
                }
                _ => vfs.push(Some(driver)),
            }
        }
        let exported = match &config.vfio_user {
            Some(v) => Some(crate::vfio_user::export(&model, &agent, v)?),
            None => None,
        };
        let peer = match config.wire_peer {
            Some(p) => Some(
                crate::vfio_user::peer::WirePeer::new(Box::new(model.clone()), p)
                    .map_err(|e| ServeError::Usage(format!("--wire-peer: {e}")))?,
            ),
            None => None,
        };
        let port = match &config.wire_link {
            Some(link) => {
                Some(WirePort::open(link, Box::new(model.clone())).map_err(ServeError::Io)?)
            }
            None => None,
        };
        let mut hac = AdapterHac::new(model.bar0(FunctionId::Pf), n);
        hac.set_guard(DEFAULT_GUARD)?;
        Ok(ModelHost {
            model,
            agent,
            vfs,
            exported,
            peer,
            port,
            vf_host,
            hac,
            tagged: vec![false; n],
            workload: Workload::new(n),
            guard: DEFAULT_GUARD,
            started: Instant::now(),
            rx_scratch: Vec::new(),
            pf_vf_totals: vec![PfVfTotals::default(); n],
            last_sample: Instant::now(),
        })
    }

    /// Reads every VF's 32-bit counters into their 64-bit totals (the stand-in drivers
    /// accumulate their own VF registers in `stats`; exported VFs use the PF's per-VF
    /// registers), so that none of them wraps unseen.
    fn sample_counters(&mut self) {
        self.last_sample = Instant::now();
        for (i, vf) in self.vfs.iter_mut().enumerate() {
            match vf {
                Some(v) => {
                    let _ = v.stats();
                }
                None => {
                    let mut nic = self.model.nic();
                    for (c, r) in self.pf_vf_totals[i].iter_mut().zip(pf_vf_stats(i as u8)) {
                        c.update(nic.pf_read(r));
                    }
                }
            }
            // The HAC block's event counters wrap at 2^32 too: AdapterHac extends them on
            // every read, so read them as often as the others.
            if let Some(n) = VfNumber::from_index(i) {
                let _ = self.hac.stats(n);
            }
        }
    }

    /// Brings device time up to wall time since start, feeding the TX rings and draining RX.
    fn tick(&mut self) {
        let wall_ns = self.started.elapsed().as_nanos() as u64;
        if let Some(p) = &mut self.port {
            p.poll();
        }
        loop {
            self.pump();
            let now = self.model.nic().now().as_nanos();
            if now >= wall_ns {
                break;
            }
            self.model.run_for((wall_ns - now).min(MAX_TICK_NS));
            self.poll_hosts();
        }
        self.pump();
        self.poll_hosts();
        if self.exported.is_some() {
            // Exported VFs' interrupts went to their eventfds; the model's copy is not needed.
            self.model.nic().take_interrupts();
        }
        if self.last_sample.elapsed() >= COUNTER_SAMPLE {
            self.sample_counters();
        }
    }

    /// Lets the hosts beyond the wire and on a VF act at the model's time.
    fn poll_hosts(&mut self) {
        if let Some(p) = &mut self.peer {
            p.poll();
        }
        if let Some(h) = &mut self.vf_host {
            let now = self.model.nic().now().as_nanos();
            h.poll(now);
        }
    }

    /// Moves queued workload frames into the TX rings, reclaims, and drops received frames
    /// (the stand-in VMs have no use for them; the counters keep them).
    fn pump(&mut self) {
        for (i, vf) in self.vfs.iter_mut().enumerate() {
            let Some(vf) = vf else { continue };
            vf.reclaim();
            self.workload.pump(i, vf);
            self.rx_scratch.clear();
            while vf.recv(&mut self.rx_scratch, 64) > 0 {
                self.rx_scratch.clear();
            }
        }
    }

    /// `vf` as the HAC contract names it, if this daemon serves it (the dispatcher has checked
    /// the range; this keeps the conversion total).
    fn vf_number(&self, vf: usize) -> Result<VfNumber, ControlError> {
        match VfNumber::from_index(vf) {
            Some(n) if vf < self.vfs.len() => Ok(n),
            _ => Err(no_such_vf(vf, self.vfs.len())),
        }
    }

    fn vf_summary(&mut self, vf: usize) -> Result<VfSummary, ControlError> {
        let n = self.vf_number(vf)?;
        let s = self
            .hac
            .stats(n)
            .map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))?;
        Ok(VfSummary {
            vf,
            checkpointing: self.tagged[vf],
            open_epoch: s.open_epoch,
            committed_epoch: s.committed_epoch,
            buffered_frames: s.buffered_frames,
            released: s.released,
            discarded: s.discarded,
        })
    }
}

impl Backend for ModelHost {
    fn idle_tick(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn num_vfs(&self) -> usize {
        self.vfs.len()
    }

    fn tick(&mut self) {
        ModelHost::tick(self);
    }

    fn finish(&mut self) {
        self.model.nic().flush_wire_sinks();
    }

    fn hello(&self) -> HelloInfo {
        HelloInfo {
            name: "hac".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            backend: "model".into(),
            pf: None,
            vfs: self.vfs.len(),
            port_rate: Some(self.model.nic().config().line_rate.to_string()),
            hac: "adapter".into(),
            vfio_user: self.exported.as_ref().map(|e| {
                e.sockets()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect()
            }),
        }
    }

    fn has_hac(&self) -> bool {
        true
    }

    fn hac(&mut self, vf: usize, op: HacOp) -> Result<VfSummary, ControlError> {
        let n = self.vf_number(vf)?;
        if let Some(on) = op.apply(&mut self.hac, n)? {
            self.tagged[vf] = on;
        }
        self.vf_summary(vf)
    }

    fn set_limits(&mut self, vf: usize, frames: u32, bytes: u32) -> Result<(), ControlError> {
        let n = self.vf_number(vf)?;
        self.hac.set_limits(n, frames, bytes).map_err(hac_refused)
    }

    fn set_guard(&mut self, bytes: u32) -> Result<(), ControlError> {
        self.hac.set_guard(bytes).map_err(hac_refused)?;
        self.guard = bytes;
        Ok(())
    }

    fn send(&mut self, vf: usize, frames: u32, len: usize) -> Result<(), ControlError> {
        let n = self.vfs.len();
        let Some(slot) = self.vfs.get(vf) else {
            return Err(no_such_vf(vf, n));
        };
        let Some(driver) = slot else {
            return Err(ControlError::new(
                ErrorCode::Unsupported,
                format!(
                    "VF {vf} is exported through vfio-user or runs the --vf-ip host: the daemon \
                     sends nothing on it"
                ),
            ));
        };
        let src = driver.mac();
        self.workload.queue(vf, src, frames, len, self.tagged[vf])
    }
    fn stats(&mut self, only: Option<usize>) -> Result<Stats, ControlError> {
        let wire = self.model.nic().wire_totals();
        let device_time_ns = self.model.nic().now().as_nanos();
        let hac_port = self.model.nic().egress().hac_port_stats();
        let mut device = model_counters(self.model.nic().counters());
        if let Some(p) = &self.port {
            device.extend(p.counters());
        }
        if let Some(h) = &self.vf_host {
            device.extend(h.counters());
        }
        let mut out = Stats {
            port: model_port(wire, device_time_ns, self.guard, &hac_port),
            vfs: Vec::new(),
            device,
            latency: latency(&hac_port),
        };
        let range = match only {
            Some(v) => v..v + 1,
            None => 0..self.vfs.len(),
        };
        self.sample_counters();
        for i in range {
            let n = self.vf_number(i)?;
            let h = self
                .hac
                .stats(n)
                .map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))?;
            let d = match &mut self.vfs[i] {
                Some(v) => v.stats(),
                None => {
                    // A VM drives it: the PF's per-VF counters (PVFGPTC…), accumulated.
                    let [tx_packets, tx_bytes, rx_packets, rx_bytes] =
                        self.pf_vf_totals[i].map(|c| c.total);
                    hac_driver::vf::VfStats {
                        tx_packets,
                        tx_bytes,
                        rx_packets,
                        rx_bytes,
                        ..Default::default()
                    }
                }
            };
            let agent = self.agent.lock().unwrap_or_else(|p| p.into_inner());
            let VfCounters {
                vf,
                mac,
                mbx_messages,
                mbx_nacks,
                vf_resets,
                ..
            } = agent_view(i, VfIndex::new(i).and_then(|v| agent.vf(v)));
            drop(agent);
            out.vfs.push(VfCounters {
                vf,
                mac,
                checkpointing: u32::from(self.tagged[i]),
                tx_packets: d.tx_packets,
                tx_bytes: d.tx_bytes,
                rx_packets: d.rx_packets,
                rx_bytes: d.rx_bytes,
                rx_dropped: d.rx_dropped,
                rx_multicast: d.rx_multicast,
                rx_errors: d.rx_errors,
                hac_open_epoch: h.open_epoch,
                hac_committed_epoch: h.committed_epoch,
                hac_buffered_frames: h.buffered_frames,
                hac_buffered_bytes: h.buffered_bytes,
                hac_max_frames: h.max_frames,
                hac_max_bytes: h.max_bytes,
                hac_released: h.released,
                hac_discarded: h.discarded,
                hac_backpressure: h.backpressure,
                mbx_messages,
                mbx_nacks,
                vf_resets,
                workload_queued: self.workload.queued(i),
                workload_sent: self.workload.sent(i),
                workload_refused: self.workload.refused(i),
                irqs_lost: self.exported.as_ref().map_or(0, |e| e.interrupts_lost(i)),
                vfio_user: self
                    .exported
                    .as_ref()
                    .and_then(|e| e.endpoint_counters(i))
                    .map(|c| endpoint_counters(&c))
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

//! The backend on the built-in mlx5 model (`--family mlx5`): the ConnectX model run in real
//! time, our mlx5 PF driver in-process as the E-Switch manager (each VF's MAC set through
//! MODIFY_NIC_VPORT_CONTEXT), the HAC stage driven through `Mlx5AdapterHac` (OUR vendor
//! commands on the PF's command queue), the chosen VFs exported through vfio-user, and a host
//! on the wire.
//!
//! No stand-in VM driver runs on an mlx5 VF: `send` is refused; a VF is driven by the VM its
//! vfio-user socket serves (or by nobody).

use std::sync::Arc;
use std::time::Duration;

use adapter_core::PcapSink;
use hac_control::{ControlError, ErrorCode, HelloInfo, Stats, VfCounters, VfSummary};
use hac_driver::hac::{Hac, VfNumber};
use hac_driver::mlx5::Mlx5AdapterHac;
use hac_driver::mlx5::model::{Mlx5Model, Mlx5ModelBar, Mlx5ModelClock, Mlx5ModelDma};
use hac_vfio_user::Counters as SessionCounters;
use mlx5_model::{FunctionId, Mlx5Config};

use hac_control::Counter;

use super::counters::{latency, model_port, named};
use super::dispatch::{Backend, HacOp, hac_refused, no_such_vf};
use super::wire_port::WirePort;
use super::{ServeConfig, ServeError, vf_mac};
use crate::vfio_user::mlx5::{DeviceClock, Mlx5Exported, Mlx5VfioUserCounters, export_mlx5};
use crate::vfio_user::peer::WirePeer;

/// Default guard (the adapter's reset value, as on the 82576).
const DEFAULT_GUARD: u32 = 64 * 1024;

/// The HAC owner: our PF driver on the model.
type PfHac = Mlx5AdapterHac<Mlx5ModelBar, Mlx5ModelDma, Mlx5ModelClock>;

/// The device side on the mlx5 model: model, PF driver (inside the HAC owner), exports.
pub(super) struct Mlx5Host {
    model: Mlx5Model,
    clock: Arc<DeviceClock>,
    hac: PfHac,
    vfs: usize,
    tagged: Vec<bool>,
    guard: u32,
    exported: Option<Mlx5Exported>,
    peer: Option<WirePeer>,
    /// The wire joined to a Linux interface (`--wire-tap`/`--wire-if`).
    port: Option<WirePort>,
}

/// An mlx5 driver error while bringing the PF up, as a start-up error.
fn pf_error(what: &str, e: hac_driver::mlx5::Mlx5Error) -> ServeError {
    ServeError::Io(format!("mlx5 PF: {what}: {e}"))
}

impl Mlx5Host {
    /// Builds the model, brings its PF up with our driver, sets each VF's MAC, takes the HAC
    /// stage and exports the VFs of `config`.
    pub(super) fn new(config: &ServeConfig) -> Result<Mlx5Host, ServeError> {
        let model = Mlx5Model::new(Mlx5Config {
            line_rate: config.port_rate,
            ..Mlx5Config::default()
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
        let num_vfs = u16::try_from(n).map_err(|_| ServeError::Usage(format!("--vfs {n}")))?;
        model.enable_vfs(num_vfs);
        let mut pf = model
            .device(FunctionId::Pf, hac_driver::mlx5::Mlx5Config::default())
            .map_err(|e| pf_error("bring-up", e))?;
        for vf in 0..num_vfs {
            pf.set_vf_mac(vf, vf_mac(usize::from(vf)))
                .map_err(|e| pf_error(&format!("setting VF {vf}'s MAC"), e))?;
        }
        let mut hac = Mlx5AdapterHac::new(pf, num_vfs).map_err(|e| pf_error("HAC enable", e))?;
        hac.set_guard(DEFAULT_GUARD)?;
        let clock = DeviceClock::new(&model.nic());
        let exported = match &config.vfio_user {
            Some(v) => Some(export_mlx5(&model, &clock, v)?),
            None => None,
        };
        let peer = match config.wire_peer {
            Some(p) => Some(
                WirePeer::new(Box::new(model.clone()), p)
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
        Ok(Mlx5Host {
            model,
            clock,
            hac,
            vfs: n,
            tagged: vec![false; n],
            guard: DEFAULT_GUARD,
            exported,
            peer,
            port,
        })
    }

    /// Brings device time up to wall time and hands the interrupts raised meanwhile to the
    /// exported VFs' eventfds (the PF driver polls its event queues: its vectors are not
    /// wired and are counted unrouted).
    fn tick(&mut self) {
        if let Some(p) = &mut self.port {
            p.poll();
        }
        self.clock.sync(&mut self.model.nic());
        if let Some(p) = &mut self.peer {
            p.poll();
            self.clock.sync(&mut self.model.nic());
        }
        let irqs = self.model.nic().take_interrupts();
        if let Some(e) = &self.exported {
            e.routes().deliver(irqs);
        }
    }

    fn vf_number(&self, vf: usize) -> Result<VfNumber, ControlError> {
        match VfNumber::from_index(vf) {
            Some(n) if vf < self.vfs => Ok(n),
            _ => Err(no_such_vf(vf, self.vfs)),
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

impl Backend for Mlx5Host {
    fn tick(&mut self) {
        Mlx5Host::tick(self);
    }

    fn idle_tick(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn num_vfs(&self) -> usize {
        self.vfs
    }

    fn finish(&mut self) {
        self.model.nic().flush_wire_sinks();
    }

    fn hello(&self) -> HelloInfo {
        HelloInfo {
            name: "hac".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            backend: "model-mlx5".into(),
            pf: None,
            vfs: self.vfs,
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

    fn send(&mut self, vf: usize, _frames: u32, _len: usize) -> Result<(), ControlError> {
        if vf >= self.vfs {
            return Err(no_such_vf(vf, self.vfs));
        }
        Err(ControlError::new(
            ErrorCode::Unsupported,
            format!(
                "VF {vf}: --family mlx5 runs no stand-in VM driver; a VM on its vfio-user \
                 socket sends"
            ),
        ))
    }

    fn stats(&mut self, only: Option<usize>) -> Result<Stats, ControlError> {
        let wire = self.model.nic().wire_stats();
        let device_time_ns = self.model.nic().now().as_nanos();
        let hac_port = self.model.nic().egress().hac_port_stats();
        let mut device = mlx5_device_counters(self.model.nic().counters(), self.exported.as_ref());
        if let Some(p) = &self.port {
            device.extend(p.counters());
        }
        let mut out = Stats {
            port: model_port(wire, device_time_ns, self.guard, &hac_port),
            vfs: Vec::new(),
            device,
            latency: latency(&hac_port),
        };
        let range = match only {
            Some(v) => v..v + 1,
            None => 0..self.vfs,
        };
        for i in range {
            let n = self.vf_number(i)?;
            let h = self
                .hac
                .stats(n)
                .map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))?;
            let f = FunctionId::Vf(i as u16);
            let (v, mac) = {
                let nic = self.model.nic();
                let v = nic.vport_counters(f).unwrap_or_default();
                let mac = nic
                    .vport_context(f)
                    .map(|c| c.permanent_address)
                    .filter(|m| m.0 != [0; 6])
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                (v, mac)
            };
            let front = self.exported.as_ref().and_then(|e| e.counters(i));
            out.vfs.push(VfCounters {
                vf: i,
                mac,
                checkpointing: u32::from(self.tagged[i]),
                tx_packets: v.tx_unicast_frames + v.tx_multicast_frames + v.tx_broadcast_frames,
                tx_bytes: v.tx_unicast_bytes + v.tx_multicast_bytes + v.tx_broadcast_bytes,
                rx_packets: v.rx_unicast_frames + v.rx_multicast_frames + v.rx_broadcast_frames,
                rx_bytes: v.rx_unicast_bytes + v.rx_multicast_bytes + v.rx_broadcast_bytes,
                rx_dropped: v.rx_dropped,
                rx_multicast: v.rx_multicast_frames,
                hac_open_epoch: h.open_epoch,
                hac_committed_epoch: h.committed_epoch,
                hac_buffered_frames: h.buffered_frames,
                hac_buffered_bytes: h.buffered_bytes,
                hac_max_frames: h.max_frames,
                hac_max_bytes: h.max_bytes,
                hac_released: h.released,
                hac_discarded: h.discarded,
                hac_backpressure: h.backpressure,
                irqs_lost: self
                    .exported
                    .as_ref()
                    .map_or(0, |e| e.routes().lost(i as u16)),
                vfio_user: front
                    .map(|c| mlx5_endpoint_counters(&c))
                    .unwrap_or_default(),
                ..VfCounters::default()
            });
        }
        Ok(out)
    }
}

/// The mlx5 model's device-wide refusal and fault counters, and the front end's interrupt
/// delivery, as named counters.
fn mlx5_device_counters(c: &mlx5_model::Counters, exported: Option<&Mlx5Exported>) -> Vec<Counter> {
    let (signalled, unrouted) =
        exported.map_or((0, 0), |e| (e.routes().signalled(), e.routes().unrouted()));
    named(&[
        (
            "misaligned_accesses",
            "BAR accesses of a size or alignment the device does not take.",
            c.misaligned_accesses,
        ),
        (
            "out_of_range_accesses",
            "BAR accesses outside the BAR.",
            c.out_of_range_accesses,
        ),
        (
            "disabled_function_accesses",
            "Accesses to a function that is not enabled.",
            c.disabled_function_accesses,
        ),
        (
            "read_only_writes",
            "Writes to read-only registers.",
            c.read_only_writes,
        ),
        (
            "unknown_reads",
            "Reads of registers the model does not have.",
            c.unknown_reads,
        ),
        (
            "unknown_writes",
            "Writes to registers the model does not have.",
            c.unknown_writes,
        ),
        (
            "commands_ok",
            "Commands completed with status OK.",
            c.commands_ok,
        ),
        (
            "cmd_dma_faults",
            "Command-queue DMA faults.",
            c.cmd_dma_faults,
        ),
        (
            "entry_not_owned",
            "Doorbells of entries not owned by the device.",
            c.entry_not_owned,
        ),
        (
            "function_resets",
            "Function-level resets.",
            c.function_resets,
        ),
        ("interrupts_sent", "MSI-X messages sent.", c.interrupts_sent),
        (
            "interrupts_dropped",
            "Interrupts dropped with MSI-X disabled.",
            c.interrupts_dropped,
        ),
        ("eq_dma_faults", "EQE writes that faulted.", c.eq_dma_faults),
        (
            "eq_overflows",
            "Events dropped on a full EQ.",
            c.eq_overflows,
        ),
        (
            "eq_doorbell_errors",
            "EQ doorbells refused.",
            c.eq_doorbell_errors,
        ),
        ("cq_dma_faults", "CQE writes that faulted.", c.cq_dma_faults),
        ("cq_overflows", "CQEs dropped on a full CQ.", c.cq_overflows),
        (
            "cq_doorbell_errors",
            "CQ arm doorbells refused (torn 64-bit writes included).",
            c.cq_doorbell_errors,
        ),
        (
            "irqs_signalled",
            "Interrupts delivered to vfio-user eventfds (direct mode; client mode: irqs_fired).",
            signalled,
        ),
        (
            "irqs_unrouted",
            "Interrupts with no eventfd (PF vectors: our PF driver polls).",
            unrouted,
        ),
    ])
}

/// One exported mlx5 VF's vfio-user front-end counters as named counters.
fn mlx5_endpoint_counters(c: &Mlx5VfioUserCounters) -> Vec<Counter> {
    let SessionCounters {
        messages,
        errors,
        region_reads,
        region_writes,
        dma_maps,
        dma_maps_without_fd,
        dma_maps_refused,
        dma_unmaps,
        irq_sets,
        irq_fds_refused,
        resets,
    } = c.session;
    let e = c.endpoint;
    let mut list = named(&[
        ("messages", "vfio-user messages handled.", messages),
        (
            "errors",
            "vfio-user messages answered with an error.",
            errors,
        ),
        ("region_reads", "Region reads.", region_reads),
        ("region_writes", "Region writes.", region_writes),
        (
            "misaligned",
            "BAR accesses refused for size or alignment.",
            e.refused_accesses,
        ),
        (
            "msix_table_writes",
            "Client writes to the MSI-X table (ignored: the front end owns it).",
            e.msix_table_writes,
        ),
        ("dma_maps", "DMA windows mapped.", dma_maps),
        (
            "dma_maps_without_fd",
            "DMA windows without a descriptor (left unmapped).",
            dma_maps_without_fd,
        ),
        (
            "dma_maps_refused",
            "DMA windows refused.",
            dma_maps_refused + e.dma_map_refused,
        ),
        ("dma_unmaps", "DMA windows unmapped.", dma_unmaps),
        ("irq_sets", "SET_IRQS requests.", irq_sets),
        (
            "irq_fds_refused",
            "Interrupt descriptors refused (not an eventfd).",
            irq_fds_refused,
        ),
        ("resets", "Device resets.", resets),
    ]);
    list.extend(super::counters::client_dma_counters(&c.client_dma));
    list
}

//! `hac serve`: the control daemon. It owns a PF — today the built-in model, run in real time —
//! with its PF agent, a VF driver per VF standing in for the VMs, and the HAC API; it answers
//! the line-JSON protocol of [`crate::control`] on a Unix socket and, optionally, Prometheus
//! scrapes on a loopback TCP port.
//!
//! Threads: the caller's thread owns the device and handles every request in arrival order
//! (so a checkpoint engine's commands are applied exactly in the order it sent them on one
//! connection); an accept thread and one thread per client read lines, parse them and hand the
//! requests over a channel; a metrics thread answers HTTP scrapes through the same channel. A
//! client that sends garbage gets an error line and can go on; it cannot stop other clients.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use hac_driver::hac::{AdapterHac, Hac, HacError, VfNumber};
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma, SharedPfAgent};
use hac_driver::pf::PfConfig;
use hac_driver::vf::{VfConfig, VfDriver};
use igb_hw::MacAddress;
use igb_model::{FunctionId, LineRate, NicConfig, PcapSink};
use serde_json::{Value, json};

use crate::control::{
    self, ControlError, ErrorCode, MAX_LINE, PortCounters, Request, Stats, VfCounters,
};

/// Most control clients connected at once. When all are connected, the one idle the longest is
/// closed to make room for a new one; only when every one is waiting for an answer is a new
/// client told to try again.
pub const MAX_CLIENTS: usize = 64;
/// How long a control client may stay idle (no complete request line) before it is closed,
/// unless `--client-idle-timeout` says otherwise.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the daemon waits for a client to take an answer before it closes the connection.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most metrics scrapes served at once (each on its own thread; when all are taken, the one
/// that has waited longest for its request is closed to make room).
const MAX_SCRAPES: usize = 16;
/// How long a scrape may take to send its request head.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(2);
/// Default guard (the adapter's reset value).
const DEFAULT_GUARD: u32 = 64 * 1024;
/// Most bytes of workload frames (`send`) one VF may have queued and not yet in its TX ring;
/// a `send` that would go above is refused as a whole (`busy`) and its frames counted in
/// `workload_refused`. A checkpointing VF that is never committed never drains its queue.
pub const MAX_QUEUED_BYTES: usize = 16 << 20;
/// The longest stretch of device time one tick runs (after a stall the model catches up in
/// steps of this size).
const MAX_TICK_NS: u64 = 5_000_000;

/// How often the per-VF 32-bit statistics registers are read into their 64-bit totals: well
/// within the time the fastest one (octets at the model's top rate, 100 Gb/s) takes to wrap,
/// 2^32 B / 12.5 GB/s = 0.34 s.
const COUNTER_SAMPLE: Duration = Duration::from_millis(50);

/// A 32-bit statistics register that wraps (PVFGPTC, PVFGOTC, …), accumulated into 64 bits:
/// each read adds the (wrapping) difference to the previous read, as Linux igbvf does. Correct
/// as long as it is read at least once per wrap period.
#[derive(Clone, Copy, Debug, Default)]
struct Counter64 {
    last: u32,
    total: u64,
}

impl Counter64 {
    /// Takes a new register value; returns the 64-bit total.
    fn update(&mut self, raw: u32) -> u64 {
        self.total += u64::from(raw.wrapping_sub(self.last));
        self.last = raw;
        self.total
    }
}

/// The PF's per-VF good-frame registers, in [`pf_vf_stats`] order, accumulated.
type PfVfTotals = [Counter64; 4];

/// PVFGPTC, PVFGOTC, PVFGPRC, PVFGORC of VF `v` (the PF's copies of the VF's good-frame
/// statistics: 32 bits, wrapping, not cleared by reads).
fn pf_vf_stats(v: u8) -> [igb_hw::regs::PfReg; 4] {
    use igb_hw::regs::PfReg;
    [
        PfReg::PVFGPTC(v),
        PfReg::PVFGOTC(v),
        PfReg::PVFGPRC(v),
        PfReg::PVFGORC(v),
    ]
}

/// How to run the daemon.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The control socket.
    pub socket: PathBuf,
    /// VFs to enable (1..=7).
    pub vfs: usize,
    /// Port rate of the model.
    pub port_rate: LineRate,
    /// Prometheus endpoint (must be a loopback address).
    pub metrics: Option<SocketAddr>,
    /// Write every wire frame here (nanosecond pcap; model only).
    pub pcap: Option<PathBuf>,
    /// Serve a real PF through VFIO instead of the model.
    pub pci: Option<PciTarget>,
    /// Export VFs of the model to VMs through vfio-user (the guest's igbvf drives them; the
    /// daemon runs no stand-in driver on them).
    pub vfio_user: Option<crate::vfio_user::VfioUserConfig>,
    /// A host on the model's wire (smoltcp: ARP, ping, TCP echo).
    pub wire_peer: Option<crate::vfio_user::peer::PeerConfig>,
    /// A control client idle this long is closed ([`CLIENT_IDLE_TIMEOUT`] by default).
    pub client_idle_timeout: Duration,
}

/// A real PF bound to vfio-pci (loaded with `enable_sriov=1`).
#[derive(Clone, Debug)]
pub struct PciTarget {
    /// The PF's PCI address.
    pub bdf: String,
    /// The VF token (UUID) the daemon sets on the PF; VF users open their VFs with it.
    pub vf_token: String,
}

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A bad option.
    #[error("{0}")]
    Usage(String),
    /// The socket or metrics port could not be set up.
    #[error("{0}")]
    Io(String),
    /// A vfio-user socket could not be set up.
    #[error("vfio-user: {0}")]
    VfioUser(#[from] crate::vfio_user::server::ServerError),
    /// The device could not be brought up.
    #[error("bringing up the device: {0}")]
    Driver(#[from] hac_driver::DriverError),
    /// The HAC block refused its setup.
    #[error("HAC setup: {0}")]
    Hac(#[from] HacError),
}

enum Job {
    Request(Request, Sender<Result<Value, ControlError>>),
    Metrics(Sender<String>),
    Stop,
}

type ModelVf = VfDriver<ModelBar, ModelDma, ModelClock>;

/// The VF MAC the daemon's PF assigns to VF `n`.
pub fn vf_mac(n: usize) -> MacAddress {
    MacAddress([0x02, 0x1B, 0x21, 0xC1, 0x00, n as u8])
}

/// The destination of workload frames (a host beyond the wire).
const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 2]);

/// What the daemon serves requests with: the model (everything) or a real PF (mailbox only).
trait Backend {
    /// Lets the device and the PF agent run up to now.
    fn tick(&mut self);
    /// Carries out one request.
    fn dispatch(&mut self, request: &Request) -> Result<Value, ControlError>;
    /// Counters of one VF or all.
    fn stats(&mut self, only: Option<usize>) -> Result<Stats, ControlError>;
    /// How often to tick while idle.
    fn idle_tick(&self) -> Duration;
    /// VFs on the PF.
    fn num_vfs(&self) -> usize;
    /// The `stats` answer.
    fn stats_value(&mut self, vf: Option<usize>) -> Result<Value, ControlError> {
        let n = self.num_vfs();
        if let Some(vf) = vf.filter(|&vf| vf >= n) {
            return Err(no_such_vf(vf, n));
        }
        serde_json::to_value(self.stats(vf)?)
            .map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))
    }
    /// Flushes outputs before the daemon exits.
    fn finish(&mut self) {}
}

fn no_such_vf(vf: usize, n: usize) -> ControlError {
    ControlError::new(
        ErrorCode::NoSuchVf,
        format!(
            "VF {vf} does not exist: this PF has {n} VFs (0..={})",
            n.saturating_sub(1)
        ),
    )
}

/// The device side on the model: model, PF agent, VF drivers, HAC.
struct Host {
    model: Model,
    agent: SharedPfAgent,
    /// Stand-in drivers; `None` for a VF exported through vfio-user (a VM drives it).
    vfs: Vec<Option<ModelVf>>,
    exported: Option<crate::vfio_user::Exported>,
    peer: Option<crate::vfio_user::peer::WirePeer>,
    hac: AdapterHac<ModelBar>,
    tagged: Vec<bool>,
    queued: Vec<VecDeque<Bytes>>,
    /// Bytes in `queued`, per VF.
    queued_bytes: Vec<usize>,
    /// Frames of `send` requests refused for a full queue, per VF.
    refused: Vec<u64>,
    sent: Vec<u64>,
    seq: Vec<u32>,
    guard: u32,
    started: Instant,
    rx_scratch: Vec<Bytes>,
    /// Exported VFs' counters from the PF's per-VF registers, accumulated.
    pf_vf_totals: Vec<PfVfTotals>,
    /// When the 32-bit counters were last read into their totals.
    last_sample: Instant,
}

impl Host {
    fn new(config: &ServeConfig) -> Result<Host, ServeError> {
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
        for i in 0..n {
            if exported_vfs.contains(&i) {
                vfs.push(None);
                continue;
            }
            vfs.push(Some(model.vf_driver(
                i,
                VfConfig {
                    tx_ring_size: 512,
                    rx_ring_size: 256,
                    ..VfConfig::default()
                },
            )?));
        }
        let exported = match &config.vfio_user {
            Some(v) => Some(crate::vfio_user::export(&model, &agent, v)?),
            None => None,
        };
        let peer = match config.wire_peer {
            Some(p) => Some(
                crate::vfio_user::peer::WirePeer::new(&model, p)
                    .map_err(|e| ServeError::Usage(format!("--wire-peer: {e}")))?,
            ),
            None => None,
        };
        let mut hac = AdapterHac::new(model.bar0(FunctionId::Pf), n);
        hac.set_guard(DEFAULT_GUARD)?;
        Ok(Host {
            model,
            agent,
            vfs,
            exported,
            peer,
            hac,
            tagged: vec![false; n],
            queued: vec![VecDeque::new(); n],
            queued_bytes: vec![0; n],
            refused: vec![0; n],
            sent: vec![0; n],
            seq: vec![0; n],
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
        loop {
            self.pump();
            let now = self.model.nic().now().as_nanos();
            if now >= wall_ns {
                break;
            }
            self.model.run_for((wall_ns - now).min(MAX_TICK_NS));
            if let Some(p) = &mut self.peer {
                p.poll();
            }
        }
        self.pump();
        if let Some(p) = &mut self.peer {
            p.poll();
        }
        if self.exported.is_some() {
            // Exported VFs' interrupts went to their eventfds; the model's copy is not needed.
            self.model.nic().take_interrupts();
        }
        if self.last_sample.elapsed() >= COUNTER_SAMPLE {
            self.sample_counters();
        }
    }

    /// Moves queued workload frames into the TX rings, reclaims, and drops received frames
    /// (the stand-in VMs have no use for them; the counters keep them).
    fn pump(&mut self) {
        for (i, vf) in self.vfs.iter_mut().enumerate() {
            let Some(vf) = vf else { continue };
            vf.reclaim();
            while !self.queued[i].is_empty() {
                let batch: Vec<Bytes> = self.queued[i].iter().take(64).cloned().collect();
                match vf.send(&batch) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => {
                        let bytes: usize = self.queued[i].drain(..k).map(|f| f.len()).sum();
                        self.queued_bytes[i] -= bytes;
                        self.sent[i] += k as u64;
                    }
                }
            }
            self.rx_scratch.clear();
            while vf.recv(&mut self.rx_scratch, 64) > 0 {
                self.rx_scratch.clear();
            }
        }
    }

    /// `vf` as the HAC contract names it, if this daemon serves it.
    fn check_vf(&self, vf: usize) -> Result<VfNumber, ControlError> {
        match VfNumber::from_index(vf) {
            Some(n) if vf < self.vfs.len() => Ok(n),
            _ => Err(no_such_vf(vf, self.vfs.len())),
        }
    }

    fn vf_summary(&mut self, vf: usize) -> Result<Value, ControlError> {
        let n = self.check_vf(vf)?;
        let s = self
            .hac
            .stats(n)
            .map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))?;
        Ok(json!({
            "vf": vf,
            "checkpointing": self.tagged[vf],
            "open_epoch": s.open_epoch,
            "committed_epoch": s.committed_epoch,
            "buffered_frames": s.buffered_frames,
            "released": s.released,
            "discarded": s.discarded,
        }))
    }
}

impl Backend for Host {
    fn idle_tick(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn num_vfs(&self) -> usize {
        self.vfs.len()
    }

    fn tick(&mut self) {
        Host::tick(self);
    }

    fn finish(&mut self) {
        self.model.nic().flush_wire_sinks();
    }

    fn dispatch(&mut self, request: &Request) -> Result<Value, ControlError> {
        let hac = |r: Result<(), HacError>| {
            r.map_err(|e| {
                let code = match e {
                    HacError::NoSuchVf(_) => ErrorCode::NoSuchVf,
                    _ => ErrorCode::Refused,
                };
                ControlError::new(code, e.to_string())
            })
        };
        match *request {
            Request::Hello => Ok(json!({
                "name": "hac",
                "version": env!("CARGO_PKG_VERSION"),
                "backend": "model",
                "vfs": self.vfs.len(),
                "port_rate": self.model.nic().config().line_rate.to_string(),
                "hac": "adapter",
                "vfio_user": self.exported.as_ref().map(|e| e.sockets()),
            })),
            Request::Tag { vf } | Request::Untag { vf } => {
                let n = self.check_vf(vf)?;
                let on = matches!(request, Request::Tag { .. });
                hac(self.hac.set_tagged(n, on))?;
                self.tagged[vf] = on;
                self.vf_summary(vf)
            }
            Request::Open { vf, epoch }
            | Request::Commit { vf, epoch }
            | Request::Abort { vf, epoch } => {
                let n = self.check_vf(vf)?;
                hac(match request {
                    Request::Open { .. } => self.hac.open_epoch(n, epoch),
                    Request::Commit { .. } => self.hac.commit(n, epoch),
                    _ => self.hac.abort(n, epoch),
                })?;
                self.vf_summary(vf)
            }
            Request::Failover { vf } => {
                let n = self.check_vf(vf)?;
                hac(self.hac.failover(n))?;
                self.vf_summary(vf)
            }
            Request::Unprotect { vf } => {
                let n = self.check_vf(vf)?;
                hac(self.hac.unprotect(n))?;
                self.tagged[vf] = false;
                self.vf_summary(vf)
            }
            Request::SetLimits { vf, frames, bytes } => {
                let n = self.check_vf(vf)?;
                hac(self.hac.set_limits(n, frames, bytes))?;
                Ok(json!({ "vf": vf, "limit_frames": frames, "limit_bytes": bytes }))
            }
            Request::SetGuard { bytes } => {
                hac(self.hac.set_guard(bytes))?;
                self.guard = bytes;
                Ok(json!({ "guard_bytes": bytes }))
            }
            Request::Stats { vf } => self.stats_value(vf),
            Request::Send { vf, frames, len } => {
                self.check_vf(vf)?;
                let Some(driver) = &self.vfs[vf] else {
                    return Err(ControlError::new(
                        ErrorCode::Unsupported,
                        format!(
                            "VF {vf} is exported through vfio-user: its VM sends, not the daemon"
                        ),
                    ));
                };
                let len = len.unwrap_or(128) as usize;
                let adding = frames as usize * len;
                if adding > MAX_QUEUED_BYTES {
                    // Can never fit: a field error, not "try again later".
                    self.refused[vf] += u64::from(frames);
                    return Err(ControlError::new(
                        ErrorCode::BadField,
                        format!(
                            "op `send`: {frames} frames of {len} bytes ({adding} bytes) exceed the {MAX_QUEUED_BYTES} bytes a VF may queue: send fewer frames per request"
                        ),
                    ));
                }
                if self.queued_bytes[vf] + adding > MAX_QUEUED_BYTES {
                    self.refused[vf] += u64::from(frames);
                    let why = if self.tagged[vf] {
                        "; the VF is checkpointing: its frames leave only as its epochs commit"
                    } else {
                        ""
                    };
                    return Err(ControlError::new(
                        ErrorCode::Busy,
                        format!(
                            "VF {vf}: {frames} frames of {len} bytes refused: {} frames ({} bytes) are queued and a VF may queue at most {MAX_QUEUED_BYTES} bytes{why}; send again when workload_queued goes down",
                            self.queued[vf].len(),
                            self.queued_bytes[vf]
                        ),
                    ));
                }
                self.queued_bytes[vf] += adding;
                let src = driver.mac();
                for _ in 0..frames {
                    let seq = self.seq[vf];
                    self.seq[vf] = seq.wrapping_add(1);
                    let mut payload = Vec::with_capacity(len);
                    payload.push(vf as u8);
                    payload.extend_from_slice(&seq.to_be_bytes());
                    let mut f = igb_hw::frame::build(PEER, src, crate::engine::ETHERTYPE, &payload);
                    f.resize(len, 0);
                    self.queued[vf].push_back(Bytes::from(f));
                }
                Ok(json!({ "vf": vf, "queued": frames, "len": len }))
            }
            Request::Shutdown => Ok(json!({ "stopping": true })),
        }
    }

    fn stats(&mut self, only: Option<usize>) -> Result<Stats, ControlError> {
        let (wire_frames, wire_bytes, wire_busy_ns) = self.model.nic().wire_totals();
        let device_time_ns = self.model.nic().now().as_nanos();
        let mut out = Stats {
            port: PortCounters {
                wire_frames,
                wire_bytes,
                wire_busy_ns,
                device_time_ns,
                guard_bytes: self.guard,
            },
            vfs: Vec::new(),
        };
        let range = match only {
            Some(v) => v..v + 1,
            None => 0..self.vfs.len(),
        };
        self.sample_counters();
        for i in range {
            let n = self.check_vf(i)?;
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
            let info = agent.vf(i);
            out.vfs.push(VfCounters {
                vf: i,
                mac: info
                    .and_then(|v| v.mac)
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                checkpointing: u32::from(self.tagged[i]),
                tx_packets: d.tx_packets,
                tx_bytes: d.tx_bytes,
                rx_packets: d.rx_packets,
                rx_bytes: d.rx_bytes,
                rx_dropped: d.rx_dropped,
                hac_open_epoch: h.open_epoch,
                hac_committed_epoch: h.committed_epoch,
                hac_buffered_frames: h.buffered_frames,
                hac_buffered_bytes: h.buffered_bytes,
                hac_max_frames: h.max_frames,
                hac_max_bytes: h.max_bytes,
                hac_released: h.released,
                hac_discarded: h.discarded,
                hac_backpressure: h.backpressure,
                mbx_messages: info.map_or(0, |v| v.messages),
                mbx_nacks: info.map_or(0, |v| v.nacks),
                vf_resets: info.map_or(0, |v| v.resets),
                workload_queued: self.queued[i].len() as u64,
                workload_sent: self.sent[i],
                workload_refused: self.refused[i],
                irqs_lost: self.exported.as_ref().map_or(0, |e| e.interrupts_lost(i)),
            });
        }
        Ok(out)
    }
}

type PciBar = hac_driver::vfio::VfioBar<
    <hac_driver::vfio::HostDevice as hac_driver::vfio::DeviceAccess>::Window,
>;

/// The device side on a real PF bound to vfio-pci: the PF agent answers the VFs' mailboxes
/// (MACs, VLANs, multicast, max frame) like Linux igb would; the per-VF counters come from the
/// PF's view of the VF statistics. The 82576/I350 has no HAC block, so the HAC requests are
/// refused as unsupported.
struct PciHost {
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
}

impl PciHost {
    fn new(config: &ServeConfig, target: &PciTarget) -> Result<PciHost, ServeError> {
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
                ..PfConfig::default()
            },
        )?;
        for vf in 0..config.vfs {
            agent.set_vf_mac(vf, Some(vf_mac(vf)))?;
        }
        Ok(PciHost {
            _dev: dev,
            agent,
            started: Instant::now(),
            bdf: target.bdf.clone(),
            tx: (0, 0),
            pf_vf_totals: vec![PfVfTotals::default(); config.vfs],
            last_sample: Instant::now(),
        })
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
        if self.last_sample.elapsed() >= COUNTER_SAMPLE {
            self.sample_counters();
        }
    }

    fn dispatch(&mut self, request: &Request) -> Result<Value, ControlError> {
        match *request {
            Request::Hello => Ok(json!({
                "name": "hac",
                "version": env!("CARGO_PKG_VERSION"),
                "backend": "vfio",
                "pf": self.bdf,
                "vfs": self.agent.num_vfs(),
                "hac": "none",
            })),
            Request::Stats { vf } => self.stats_value(vf),
            Request::Shutdown => Ok(json!({ "stopping": true })),
            Request::Send { .. } => Err(ControlError::new(
                ErrorCode::Unsupported,
                "`send` drives the model's stand-in VMs; on a real PF the VMs transmit themselves",
            )),
            _ => Err(ControlError::new(
                ErrorCode::Unsupported,
                format!(
                    "`{}`: this PF has no HAC block (82576/I350); output commit on it is done by \
                     the driver-level HAC in the VF's own driver (docs/hac.md)",
                    request.op()
                ),
            )),
        }
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
                guard_bytes: 0,
            },
            vfs: Vec::new(),
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
            let info = self.agent.vf(i);
            out.vfs.push(VfCounters {
                vf: i,
                mac: info
                    .and_then(|v| v.mac)
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                tx_packets,
                tx_bytes,
                rx_packets,
                rx_bytes,
                mbx_messages: info.map_or(0, |v| v.messages),
                mbx_nacks: info.map_or(0, |v| v.nacks),
                vf_resets: info.map_or(0, |v| v.resets),
                ..VfCounters::default()
            });
        }
        Ok(out)
    }
}

/// Prepares the socket path: refuses a live daemon or a non-socket file, removes a stale
/// socket left by a daemon that died. `option` names the command-line option of the path.
fn claim_socket_path(path: &Path, option: &str) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "cannot use {}: {e}{}",
            path.display(),
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                format!(" (no permission: run as root or choose a {option} path you can write)")
            } else {
                String::new()
            }
        )),
        Ok(meta) if !meta.file_type().is_socket() => Err(format!(
            "{} exists and is not a socket: choose another {option} path or remove the file",
            path.display()
        )),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(live_socket(path, option)),
            // Only a refused connection proves nobody listens; anything else (no permission to
            // another user's socket, ...) may be a live daemon, which is never removed.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove the stale socket {}: {e}", path.display()))
            }
            Err(e) => Err(format!(
                "cannot tell whether {} is in use ({e}): remove it if no daemon serves it, or use another {option}",
                path.display()
            )),
        },
    }
}

fn live_socket(path: &Path, option: &str) -> String {
    format!(
        "another daemon is serving on {}: stop it (`hac ctl --socket … shutdown`) or use another {option}",
        path.display()
    )
}

/// A directory of mode 0700 next to a socket path, removed (with what is in it) on drop.
struct PrivateDir(PathBuf);

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Listens on a Unix socket at `path` that only this user (and root) can connect to, from the
/// first moment: the socket is bound inside a fresh directory of mode 0700 next to `path`,
/// restricted to mode 0600 there, and only then linked to `path` — a hard link, which fails
/// if `path` exists, so a socket a live daemon created meanwhile is never replaced. A live
/// daemon's socket, a path that is not a socket, a missing directory or a permission problem
/// are one-line errors naming `option`; a stale socket (its daemon died) is replaced.
/// (The process umask is not touched: it is shared by every thread.)
pub(crate) fn listen_private(path: &Path, option: &str) -> Result<UnixListener, String> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    claim_socket_path(path, option)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let hint = |e: &std::io::Error| match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            format!(" (no permission: run as root or choose a {option} path you can write)")
        }
        std::io::ErrorKind::NotFound => " (its directory does not exist)".to_string(),
        _ => String::new(),
    };
    let cannot =
        |e: std::io::Error| format!("cannot listen on {}: {e}{}", path.display(), hint(&e));
    let dir = parent.join(format!(
        ".hac{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(cannot)?;
    let dir = PrivateDir(dir);
    let inside = dir.0.join("s");
    let listener = UnixListener::bind(&inside).map_err(cannot)?;
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    match std::fs::hard_link(&inside, path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(live_socket(path, option));
        }
        Err(e) => return Err(cannot(e)),
    }
    Ok(listener)
}

fn bind_socket(path: &Path) -> Result<UnixListener, ServeError> {
    listen_private(path, "--socket").map_err(ServeError::Io)
}

/// Connections of one kind, at most `max` at once. Each is idle (waiting for its client) or
/// busy (its request is being carried out). When all places are taken, the connection idle
/// the longest is closed to make room: idle connections never lock out a client with work.
struct Slots {
    max: usize,
    table: Mutex<SlotTable>,
}

#[derive(Default)]
struct SlotTable {
    next_id: u64,
    entries: Vec<SlotEntry>,
}

struct SlotEntry {
    id: u64,
    /// Since when it is idle; `None` while busy.
    idle_since: Option<Instant>,
    /// Tells the client why (without waiting) and shuts the connection down.
    close: Box<dyn FnOnce() + Send>,
}

/// A place in [`Slots`]; released on drop.
struct Slot {
    slots: Arc<Slots>,
    id: u64,
}

impl Slots {
    fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            table: Mutex::new(SlotTable::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new (idle) connection, closing the longest-idle one if all are taken;
    /// `None` when every connection is busy. `close` is what closing this one later means.
    fn admit(self: &Arc<Self>, close: Box<dyn FnOnce() + Send>) -> Option<Slot> {
        let mut evicted = None;
        let mut t = self.lock();
        if t.entries.len() >= self.max {
            let oldest = t
                .entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| e.idle_since.map(|since| (since, i)))
                .min()?;
            evicted = Some(t.entries.swap_remove(oldest.1));
        }
        let id = t.next_id;
        t.next_id += 1;
        t.entries.push(SlotEntry {
            id,
            idle_since: Some(Instant::now()),
            close,
        });
        drop(t);
        if let Some(e) = evicted {
            (e.close)();
        }
        Some(Slot {
            slots: self.clone(),
            id,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Slot {
    /// Marks the connection busy (`true`: not to be closed for room) or idle again.
    fn set_busy(&self, busy: bool) {
        let mut t = self.slots.lock();
        if let Some(e) = t.entries.iter_mut().find(|e| e.id == self.id) {
            e.idle_since = if busy { None } else { Some(Instant::now()) };
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().entries.retain(|e| e.id != self.id);
    }
}

/// Sends `text` if the socket takes it at once, never waiting (the client may not be reading).
fn send_nowait(fd: impl std::os::fd::AsFd, text: &str) {
    let _ = rustix::net::send(fd, text.as_bytes(), rustix::net::SendFlags::DONTWAIT);
}

/// Reads one line of at most [`MAX_LINE`] bytes, giving up at `deadline` (an error of kind
/// `TimedOut`). `Ok(None)` at end of stream; an over-long line is consumed up to its newline
/// and returned as `MAX_LINE + 1` bytes so the parser rejects it.
fn read_line(
    reader: &mut BufReader<UnixStream>,
    line: &mut Vec<u8>,
    deadline: Instant,
) -> std::io::Result<Option<()>> {
    line.clear();
    let mut overflow = false;
    loop {
        if reader.buffer().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            reader.get_ref().set_read_timeout(Some(left))?;
        }
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(if line.is_empty() && !overflow {
                None
            } else {
                Some(())
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !overflow {
            let room = MAX_LINE + 1 - line.len();
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            overflow = line.len() > MAX_LINE;
        }
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(()));
        }
    }
}

/// The line a control client gets before the daemon closes its idle connection.
fn idle_line(why: &str) -> String {
    let e = ControlError::new(ErrorCode::Idle, why);
    control::response_line(None, Err(&e))
}

fn serve_client(stream: UnixStream, jobs: Sender<Job>, slot: &Slot, idle_timeout: Duration) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    if write_half
        .set_write_timeout(Some(CLIENT_WRITE_TIMEOUT))
        .is_err()
    {
        return;
    }
    let mut writer = std::io::BufWriter::new(write_half);
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        let deadline = Instant::now() + idle_timeout;
        match read_line(&mut reader, &mut line, deadline) {
            Ok(Some(())) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                let why = format!(
                    "closed: no complete request for {} s (--client-idle-timeout)",
                    idle_timeout.as_secs()
                );
                send_nowait(writer.get_ref(), &idle_line(&why));
                return;
            }
            Ok(None) | Err(_) => return,
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        slot.set_busy(true);
        let response = match control::parse_line(&line) {
            Err((id, e)) => control::response_line(id.as_ref(), Err(&e)),
            Ok(env) => {
                let (tx, rx) = bounded(1);
                let stop = env.request == Request::Shutdown;
                if jobs.send(Job::Request(env.request, tx)).is_err() {
                    return;
                }
                let result = rx.recv().unwrap_or_else(|_| {
                    Err(ControlError::new(
                        ErrorCode::Internal,
                        "the daemon is stopping",
                    ))
                });
                let line = control::response_line(env.id.as_ref(), result.as_ref().cloned());
                if stop {
                    // Answer first, then stop the daemon: the client sees its answer.
                    let _ = writer.write_all(line.as_bytes());
                    let _ = writer.flush();
                    let _ = jobs.send(Job::Stop);
                    return;
                }
                line
            }
        };
        if writer.write_all(response.as_bytes()).is_err() || writer.flush().is_err() {
            return;
        }
        slot.set_busy(false);
    }
}

/// Accepts control clients, each on its own thread, within [`MAX_CLIENTS`] (see [`Slots`]).
fn accept_clients(
    listener: UnixListener,
    jobs: Sender<Job>,
    stop: Arc<AtomicBool>,
    idle_timeout: Duration,
) {
    let slots = Slots::new(MAX_CLIENTS);
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(closer) = stream.try_clone() else {
            continue;
        };
        let close = Box::new(move || {
            send_nowait(
                &closer,
                &idle_line(&format!(
                    "closed: idle while {MAX_CLIENTS} clients were connected, to make room for a new one"
                )),
            );
            let _ = closer.shutdown(std::net::Shutdown::Both);
        });
        let Some(slot) = slots.admit(close) else {
            let e = ControlError::new(
                ErrorCode::Busy,
                format!("all {MAX_CLIENTS} clients are waiting for answers; try again later"),
            );
            send_nowait(&stream, &control::response_line(None, Err(&e)));
            continue;
        };
        let jobs = jobs.clone();
        let spawned = std::thread::Builder::new()
            .name("hac-client".into())
            .spawn(move || serve_client(stream, jobs, &slot, idle_timeout));
        if spawned.is_err() {
            // Out of threads: the connection (moved into the closure) is closed.
            continue;
        }
    }
}

/// Accepts scrapes, each on its own thread with a short deadline, within [`MAX_SCRAPES`].
fn serve_metrics(listener: TcpListener, jobs: Sender<Job>, stop: Arc<AtomicBool>) {
    let slots = Slots::new(MAX_SCRAPES);
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(closer) = stream.try_clone() else {
            continue;
        };
        let close = Box::new(move || {
            let _ = closer.shutdown(std::net::Shutdown::Both);
        });
        let Some(slot) = slots.admit(close) else {
            continue; // every scrape is being answered; this one is closed
        };
        let jobs = jobs.clone();
        let _ = std::thread::Builder::new()
            .name("hac-metrics".into())
            .spawn(move || {
                let _ = answer_scrape(stream, &jobs, &slot);
            });
    }
}

fn answer_scrape(mut stream: TcpStream, jobs: &Sender<Job>, slot: &Slot) -> std::io::Result<()> {
    let deadline = Instant::now() + SCRAPE_DEADLINE;
    stream.set_write_timeout(Some(SCRAPE_DEADLINE))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    slot.set_busy(true);
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body, kind) = if method != "GET" {
        (
            "405 Method Not Allowed",
            "only GET\n".to_string(),
            "text/plain",
        )
    } else if target == "/metrics" {
        let (tx, rx) = bounded(1);
        if jobs.send(Job::Metrics(tx)).is_err() {
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(text) => ("200 OK", text, "text/plain; version=0.0.4"),
            Err(_) => (
                "503 Service Unavailable",
                "daemon busy\n".to_string(),
                "text/plain",
            ),
        }
    } else {
        (
            "404 Not Found",
            "counters are at /metrics\n".to_string(),
            "text/plain",
        )
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// A running daemon's handle for whoever started it.
pub struct Ready {
    /// The control socket.
    pub socket: PathBuf,
    /// Where the metrics endpoint listens.
    pub metrics: Option<SocketAddr>,
    /// VFs enabled.
    pub vfs: usize,
}

/// Runs the daemon until a `shutdown` request or SIGINT/SIGTERM; calls `ready` once it
/// listens. Removes the socket on the way out.
pub fn serve(config: &ServeConfig, ready: impl FnOnce(&Ready)) -> Result<(), ServeError> {
    if !(1..=7).contains(&config.vfs) {
        return Err(ServeError::Usage(format!(
            "--vfs {} is out of range: the 82576 has 1 to 7 VFs",
            config.vfs
        )));
    }
    if let Some(addr) = config.metrics
        && !addr.ip().is_loopback()
    {
        return Err(ServeError::Usage(format!(
            "--metrics {addr}: the metrics endpoint listens on loopback only (e.g. 127.0.0.1:9187)"
        )));
    }
    if let Some(v) = &config.vfio_user {
        if config.pci.is_some() {
            return Err(ServeError::Usage(
                "--vfio-user needs the model: a real PF's VFs are assigned with vfio-pci".into(),
            ));
        }
        if let Some(&bad) = v.vfs.iter().find(|&&vf| vf >= config.vfs) {
            return Err(ServeError::Usage(format!(
                "--vfio-user-vfs {bad}: only VFs 0..={} are enabled (--vfs {})",
                config.vfs - 1,
                config.vfs
            )));
        }
        if !v.dir.is_dir() {
            return Err(ServeError::Usage(format!(
                "--vfio-user {}: not a directory",
                v.dir.display()
            )));
        }
    }
    if config.wire_peer.is_some() && config.pci.is_some() {
        return Err(ServeError::Usage(
            "--wire-peer needs the model (it lives on the model's wire)".into(),
        ));
    }
    let mut host: Box<dyn Backend> = match &config.pci {
        None => Box::new(Host::new(config)?),
        Some(target) => {
            if config.pcap.is_some() {
                return Err(ServeError::Usage(
                    "--pcap needs the model: a real PF's wire cannot be captured here".into(),
                ));
            }
            Box::new(PciHost::new(config, target)?)
        }
    };
    let idle = host.idle_tick();
    let listener = bind_socket(&config.socket)?;
    let metrics = match config.metrics {
        Some(addr) => match TcpListener::bind(addr) {
            Ok(l) => Some(l),
            Err(e) => {
                let _ = std::fs::remove_file(&config.socket);
                return Err(ServeError::Io(format!(
                    "cannot listen for metrics on {addr}: {e}"
                )));
            }
        },
        None => None,
    };
    let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());
    let (jobs_tx, jobs_rx): (Sender<Job>, Receiver<Job>) = bounded(256);
    let stop = Arc::new(AtomicBool::new(false));

    {
        let jobs = jobs_tx.clone();
        // A second SIGINT/SIGTERM while stopping is ignored; the first one stops cleanly.
        let _ = ctrlc::set_handler(move || {
            let _ = jobs.try_send(Job::Stop);
        });
    }
    {
        let jobs = jobs_tx.clone();
        let stop = stop.clone();
        let idle_timeout = config.client_idle_timeout;
        std::thread::spawn(move || accept_clients(listener, jobs, stop, idle_timeout));
    }
    if let Some(l) = metrics {
        let jobs = jobs_tx.clone();
        let stop = stop.clone();
        std::thread::spawn(move || serve_metrics(l, jobs, stop));
    }
    drop(jobs_tx);

    ready(&Ready {
        socket: config.socket.clone(),
        metrics: metrics_addr,
        vfs: config.vfs,
    });

    loop {
        match jobs_rx.recv_timeout(idle) {
            Ok(Job::Request(request, reply)) => {
                host.tick();
                let result = host.dispatch(&request);
                // Let the device act on the command (e.g. start releasing) before the answer.
                host.tick();
                let _ = reply.send(result);
            }
            Ok(Job::Metrics(reply)) => {
                host.tick();
                let text = host
                    .stats(None)
                    .map(|s| control::prometheus_text(&s))
                    .unwrap_or_default();
                let _ = reply.send(text);
            }
            Ok(Job::Stop) => break,
            Err(RecvTimeoutError::Timeout) => host.tick(),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Wake the accept loops so they see `stop`.
    let _ = UnixStream::connect(&config.socket);
    if let Some(addr) = metrics_addr {
        let _ = TcpStream::connect(addr);
    }
    let _ = std::fs::remove_file(&config.socket);
    host.finish();
    Ok(())
}

/// `hac ctl` / `hac stats`: sends one request line and returns the response object.
pub fn call(socket: &Path, line: &str) -> Result<Value, String> {
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => format!(
            "no daemon on {} ({e}): start one with `hac serve --socket {}`",
            socket.display(),
            socket.display()
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "permission denied on {}: run as the daemon's user (or root)",
            socket.display()
        ),
        _ => format!("cannot connect to {}: {e}", socket.display()),
    })?;
    let timeout = Some(Duration::from_secs(30));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| format!("socket setup: {e}"))?;
    let mut writer = &stream;
    writer
        .write_all(line.as_bytes())
        .and_then(|()| {
            if line.ends_with('\n') {
                Ok(())
            } else {
                writer.write_all(b"\n")
            }
        })
        .map_err(|e| format!("sending to {}: {e}", socket.display()))?;
    let mut reader = BufReader::new(&stream);
    let mut response = String::new();
    reader
        .read_line(&mut response)
        .map_err(|e| format!("no answer from {}: {e}", socket.display()))?;
    if response.is_empty() {
        return Err(format!(
            "the daemon on {} closed the connection",
            socket.display()
        ));
    }
    serde_json::from_str(&response).map_err(|e| format!("bad answer from the daemon: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn closer(closed: &Arc<AtomicU32>, n: u32) -> Box<dyn FnOnce() + Send> {
        let closed = closed.clone();
        Box::new(move || closed.store(n, Ordering::Relaxed))
    }

    #[test]
    fn a_wrapping_32_bit_register_accumulates_into_64_bits() {
        let mut c = Counter64::default();
        assert_eq!(c.update(1000), 1000);
        assert_eq!(c.update(u32::MAX - 5), u64::from(u32::MAX) - 5);
        // Wraps: 10 more than the last read is 16 bytes on.
        assert_eq!(c.update(10), u64::from(u32::MAX) + 11);
        // Three more wraps, read once per period.
        for _ in 0..3 {
            c.update(u32::MAX / 2);
            c.update(10);
        }
        assert_eq!(c.total, 4 * (1u64 << 32) + 10);
        assert_eq!(c.update(10), 4 * (1u64 << 32) + 10, "no change, no count");
    }

    #[test]
    fn a_full_table_closes_the_longest_idle_connection_never_a_busy_one() {
        let slots = Slots::new(3);
        let closed = Arc::new(AtomicU32::new(0));
        let a = slots.admit(closer(&closed, 1)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = slots.admit(closer(&closed, 2)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let c = slots.admit(closer(&closed, 3)).unwrap();
        a.set_busy(true);
        // Full: b is the longest idle (a is busy).
        let d = slots.admit(closer(&closed, 4)).unwrap();
        assert_eq!(closed.load(Ordering::Relaxed), 2);
        assert_eq!(slots.len(), 3);
        drop(b); // its thread ends later: nothing more is removed
        assert_eq!(slots.len(), 3);
        // Everyone busy: the newcomer is refused, nobody is closed.
        c.set_busy(true);
        d.set_busy(true);
        closed.store(0, Ordering::Relaxed);
        assert!(slots.admit(closer(&closed, 5)).is_none());
        assert_eq!(closed.load(Ordering::Relaxed), 0);
        // Idle again: it can be closed for room.
        c.set_busy(false);
        let _e = slots.admit(closer(&closed, 6)).unwrap();
        assert_eq!(closed.load(Ordering::Relaxed), 3);
        drop(a);
        assert_eq!(slots.len(), 2);
    }
}

//! `hac serve`: the control daemon. It owns a PF — the built-in model, run in real time, or a
//! real PF through VFIO — with its PF agent, a VF driver per VF standing in for the VMs, and the
//! HAC API; it answers the line-JSON protocol of [`hac_control`] on a Unix socket and,
//! optionally, Prometheus scrapes on a loopback TCP port.
//!
//! Threads: the caller's thread owns the device and handles every request in arrival order
//! (so a checkpoint engine's commands are applied exactly in the order it sent them on one
//! connection); an accept thread and one thread per client read lines, parse them and hand the
//! requests over a channel; a metrics thread answers HTTP scrapes through the same channel. A
//! client that sends garbage gets an error line and can go on; it cannot stop other clients.
//!
//! Blocks:
//!
//! * this module: the configuration, start-up checks and the device thread's loop ([`serve`]);
//! * `socket`: the private Unix socket (mode 0600 from its first moment; stale ones replaced);
//! * `clients`: the control connections — admission within [`MAX_CLIENTS`], idle deadlines,
//!   bounded line reading, answers in order;
//! * `metrics`: the Prometheus endpoint `GET /metrics` (httparse, prometheus-client; bounded connections);
//! * `dispatch`: the `Backend` a request is carried out on, and its errors;
//! * `model_host`: the backend on the built-in model (HAC, vfio-user export, wire peer),
//!   with the stand-in VMs' `workload`;
//! * `mlx5_host`: the backend on the built-in mlx5 model (`--family mlx5`: our mlx5 PF driver
//!   as E-Switch manager, HAC through `Mlx5AdapterHac`, vfio-user export, wire peer);
//! * `pci_host`: the backend on a real PF (mailbox only);
//! * `vf_host`: the stand-in VM with an IP stack on one VF (`--vf-ip`, 82576 model);
//! * `wire_port`: the model's wire joined to a Linux interface (`--wire-tap`, `--wire-if`),
//!   either family, with its counters;
//! * `counters`: 64-bit totals of the 32-bit statistics registers, and the model's and the
//!   vfio-user endpoints' counters as named `stats` counters.

mod clients;
mod counters;
mod dispatch;
mod metrics;
mod mlx5_host;
mod model_host;
mod pci_host;

mod vf_host;
mod wire_port;
mod workload;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use hac_control::{ControlError, Reply, Request, Stats};
use hac_driver::hac::HacError;
use igb_hw::MacAddress;
use igb_model::LineRate;

use crate::private_socket::listen_private;
pub use clients::{CLIENT_IDLE_TIMEOUT, MAX_CLIENTS};
pub use metrics::{MAX_CONNECTIONS as MAX_METRICS_CONNECTIONS, MAX_HEAD, Parsed, parse_request};
pub use vf_host::{ECHO_PORT as VF_IP_ECHO_PORT, VfIp};
pub use wire_port::WireLink;
pub use workload::MAX_QUEUED_BYTES;

use dispatch::Backend;
use mlx5_host::Mlx5Host;
use model_host::ModelHost;
use pci_host::PciHost;

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
    /// With `pci`: the drain policy (plain VFs limited while released checkpoint frames drain).
    pub drain: Option<DrainConfig>,
    /// Export VFs of the model to VMs through vfio-user (the guest's igbvf drives them; the
    /// daemon runs no stand-in driver on them).
    pub vfio_user: Option<crate::vfio_user::VfioUserConfig>,
    /// A host on the model's wire (smoltcp: ARP, ping, TCP echo).
    pub wire_peer: Option<crate::vfio_user::peer::PeerConfig>,
    /// The model's wire joined to a Linux interface (a TAP or an existing interface); exclusive
    /// with `wire_peer`.
    pub wire_link: Option<WireLink>,
    /// A stand-in VM with an IP stack (ARP, ping, TCP echo) on one VF (82576 model only).
    pub vf_ip: Option<VfIp>,
    /// A control client idle this long is closed ([`CLIENT_IDLE_TIMEOUT`] by default).
    pub client_idle_timeout: Duration,
    /// The model family the daemon runs (model only).
    pub family: Family,
}

/// The built-in model's device family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    /// The Intel 82576 model with our PF agent (the default).
    #[default]
    Igb,
    /// The ConnectX (mlx5) model with our mlx5 PF driver as E-Switch manager.
    Mlx5,
}

/// A real PF bound to vfio-pci (loaded with `enable_sriov=1`).
#[derive(Clone, Debug)]
pub struct PciTarget {
    /// The PF's PCI address.
    pub bdf: String,
    /// The VF token (UUID) the daemon sets on the PF; VF users open their VFs with it.
    pub vf_token: String,
}

/// The drain policy of `hac serve --pci` (docs/hac.md, "Priority without the extension").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainConfig {
    /// What the plain VFs share while checkpoint frames drain, Mb/s (at least 1).
    pub plain_rate_mbps: u32,
    /// Also TXDCTL.PRIORITY on the checkpointing VFs' queues while they drain.
    pub priority: bool,
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

/// Work for the device thread, from the client and scrape threads.
enum Job {
    /// A request and where its result goes.
    Request(Request, Sender<Result<Reply, ControlError>>),
    /// A scrape: a `stats` snapshot of every VF goes back.
    Metrics(Sender<Stats>),
    /// Stop the daemon.
    Stop,
}

/// The VF MAC the daemon's PF assigns to VF `n`.
pub fn vf_mac(n: usize) -> MacAddress {
    MacAddress([0x02, 0x1B, 0x21, 0xC1, 0x00, n as u8])
}

/// Refuses a configuration the daemon cannot serve, with a one-line usage error.
fn check(config: &ServeConfig) -> Result<(), ServeError> {
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
    if config.family == Family::Mlx5 && config.pci.is_some() {
        return Err(ServeError::Usage(
            "--family mlx5 needs the model: --pci serves a real 82576/I350 PF".into(),
        ));
    }
    if config.wire_peer.is_some() && config.pci.is_some() {
        return Err(ServeError::Usage(
            "--wire-peer needs the model (it lives on the model's wire)".into(),
        ));
    }
    if let Some(link) = &config.wire_link {
        if config.pci.is_some() {
            return Err(ServeError::Usage(format!(
                "{} needs the model: a real PF has its own wire",
                link.flag()
            )));
        }
        if config.wire_peer.is_some() {
            return Err(ServeError::Usage(format!(
                "{} and --wire-peer both want the model's one wire port: choose one",
                link.flag()
            )));
        }
    }
    if let Some(v) = &config.vf_ip {
        if config.pci.is_some() || config.family != Family::Igb {
            return Err(ServeError::Usage(
                "--vf-ip needs the 82576 model (--family igb): it runs our igbvf driver".into(),
            ));
        }
        if v.vf >= config.vfs {
            return Err(ServeError::Usage(format!(
                "--vf-ip {}=…: only VFs 0..={} are enabled (--vfs {})",
                v.vf,
                config.vfs - 1,
                config.vfs
            )));
        }
        if config
            .vfio_user
            .as_ref()
            .is_some_and(|u| u.vfs.contains(&v.vf))
        {
            return Err(ServeError::Usage(format!(
                "--vf-ip {}=…: that VF is exported through vfio-user (its VM drives it)",
                v.vf
            )));
        }
    }
    if config.pcap.is_some() && config.pci.is_some() {
        return Err(ServeError::Usage(
            "--pcap needs the model: a real PF's wire cannot be captured here".into(),
        ));
    }
    if let Some(d) = config.drain {
        if config.pci.is_none() {
            return Err(ServeError::Usage(
                "--drain-plain-rate needs --pci: the model has the HAC extension".into(),
            ));
        }
        if d.plain_rate_mbps > pci_host::LINK_MBPS {
            return Err(ServeError::Usage(format!(
                "--drain-plain-rate {} is above the link speed ({} Mb/s)",
                d.plain_rate_mbps,
                pci_host::LINK_MBPS
            )));
        }
    }
    Ok(())
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
    check(config)?;
    let mut host: Box<dyn Backend> = match &config.pci {
        None if config.family == Family::Mlx5 => Box::new(Mlx5Host::new(config)?),
        None => Box::new(ModelHost::new(config)?),
        Some(target) => Box::new(PciHost::new(config, target)?),
    };
    let idle = host.idle_tick();
    let listener = listen_private(&config.socket, "--socket").map_err(ServeError::Io)?;
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
        std::thread::spawn(move || clients::accept(listener, jobs, stop, idle_timeout));
    }
    let family = match config.family {
        Family::Igb => "igb",
        Family::Mlx5 => "mlx5",
    };
    let metrics = match metrics.map(|l| metrics::MetricsServer::start(l, &jobs_tx, family)) {
        Some(Err(e)) => {
            let _ = std::fs::remove_file(&config.socket);
            return Err(ServeError::Io(e));
        }
        Some(Ok(m)) => Some(m),
        None => None,
    };
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
                let result = dispatch::dispatch(host.as_mut(), &request);
                // Let the device act on the command (e.g. start releasing) before the answer.
                host.tick();
                let _ = reply.send(result);
            }
            Ok(Job::Metrics(reply)) => {
                host.tick();
                if let Ok(s) = host.stats(None) {
                    let _ = reply.send(s);
                }
            }
            Ok(Job::Stop) => break,
            Err(RecvTimeoutError::Timeout) => host.tick(),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Wake the accept loops so they see `stop`.
    let _ = UnixStream::connect(&config.socket);
    if let Some(m) = metrics {
        m.stop();
    }
    let _ = std::fs::remove_file(&config.socket);
    host.finish();
    Ok(())
}

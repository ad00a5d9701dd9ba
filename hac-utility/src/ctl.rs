//! The daemon commands of `hac`: `serve`, `ctl` (its client) and `stats`.

use std::path::PathBuf;
use std::process::ExitCode;

use hac_utility::control::{Request, Stats, request_line};
use hac_utility::serve::{ServeConfig, call, serve};
use serde_json::Value;

/// Where the daemon listens unless told otherwise (`$HAC_SOCKET` overrides).
pub const DEFAULT_SOCKET: &str = "/run/hac.sock";

#[derive(clap::Args)]
pub struct SocketArg {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", env = "HAC_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

/// Arguments of `hac serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    socket: SocketArg,
    /// Run on the built-in 82576 model with the HAC extension (the default).
    #[arg(long, conflicts_with = "pci")]
    model: bool,
    /// Serve a real PF bound to vfio-pci (loaded with enable_sriov=1, VFs created through
    /// sriov_numvfs): the daemon answers the VFs' mailboxes; HAC requests are refused (the
    /// 82576/I350 has no HAC block). See docs/control.md.
    #[arg(long, value_name = "BDF", requires = "vf_token", value_parser = crate::parse_bdf)]
    pci: Option<String>,
    /// VF token (UUID) set on the PF; VF users open their VFs with it.
    #[arg(long, value_name = "UUID", requires = "pci")]
    vf_token: Option<String>,
    /// VFs to enable on the PF (1..=7); each gets the MAC 02:1b:21:c1:00:<n> from the PF.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=7))]
    vfs: u64,
    /// Port rate of the model: 1G, 10G, 25G or 100G.
    #[arg(long, default_value = "1G")]
    port_rate: igb_model::LineRate,
    /// Serve Prometheus text counters at http://ADDR/metrics (loopback only, e.g.
    /// 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Write every frame that leaves the wire port to this pcap file (nanosecond timestamps).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Export VFs to VMs through vfio-user: one socket per VF, DIR/vf<N>.sock (QEMU:
    /// `-device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"DIR/vf0.sock"}}'`).
    /// The guest's igbvf drives them; see docs/vfio-user.md.
    #[arg(long, value_name = "DIR", conflicts_with = "pci")]
    vfio_user: Option<PathBuf>,
    /// The VFs to export with --vfio-user (comma-separated, 0-based).
    #[arg(
        long,
        value_name = "N,..",
        value_delimiter = ',',
        default_value = "0",
        requires = "vfio_user"
    )]
    vfio_user_vfs: Vec<usize>,
    /// Put a host on the model's wire (smoltcp, MAC 02:aa:00:00:00:10) at IP/PREFIX: it answers
    /// ARP and ping and echoes TCP on --wire-peer-echo-port.
    #[arg(long, value_name = "IP/PREFIX", value_parser = parse_cidr, conflicts_with = "pci")]
    wire_peer: Option<(std::net::Ipv4Addr, u8)>,
    /// TCP echo port of --wire-peer.
    #[arg(long, default_value_t = 7)]
    wire_peer_echo_port: u16,
    /// Close a control client that sends no complete request for this many seconds (it is
    /// told why in a last `idle` error line).
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    client_idle_timeout: u64,
}

fn parse_cidr(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (ip, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("{s}: expected IP/PREFIX, e.g. 10.99.0.2/24"))?;
    let ip = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
    let prefix: u8 = prefix.parse().map_err(|e| format!("{prefix}: {e}"))?;
    if prefix > 32 {
        return Err(format!("prefix {prefix} is over 32"));
    }
    Ok((ip, prefix))
}

/// Arguments of `hac ctl`.
#[derive(clap::Args)]
pub struct CtlArgs {
    #[command(flatten)]
    socket: SocketArg,
    #[command(subcommand)]
    op: CtlOp,
}

/// One control request (docs/control.md has the wire form of each).
#[derive(clap::Subcommand)]
enum CtlOp {
    /// Who is serving: version, backend, VFs.
    Hello,
    /// Mark VF as checkpointing: its frames are held until their epoch commits (epoch 1 opens).
    Tag { vf: usize },
    /// Stop checkpointing VF; what it holds is released.
    Untag { vf: usize },
    /// Open EPOCH on VF (greater than the open one): later frames belong to it.
    Open { vf: usize, epoch: u32 },
    /// The backup acknowledged EPOCH: release VF's frames of epochs ≤ EPOCH.
    Commit { vf: usize, epoch: u32 },
    /// Checkpoint EPOCH failed: discard the frames it covered.
    Abort { vf: usize, epoch: u32 },
    /// This host stops being primary: discard everything VF holds.
    Failover { vf: usize },
    /// The backup is lost: release everything VF holds and stop buffering.
    Unprotect { vf: usize },
    /// Buffer limits of VF (0 = the adapter's maximum).
    SetLimits {
        vf: usize,
        /// Frames.
        #[arg(long)]
        frames: u32,
        /// Bytes.
        #[arg(long)]
        bytes: u32,
    },
    /// Starvation guard of the egress scheduler in bytes (0 = strict priority for released
    /// checkpoint traffic).
    SetGuard { bytes: u32 },
    /// Counters as JSON (all VFs, or --vf N); `hac stats` prints them as a table.
    Stats {
        /// Only this VF.
        #[arg(long)]
        vf: Option<usize>,
    },
    /// Model only: make the stand-in workload on VF transmit FRAMES frames.
    Send {
        vf: usize,
        frames: u32,
        /// Frame length without FCS (60..=1514).
        #[arg(long)]
        len: Option<u32>,
    },
    /// Stop the daemon.
    Shutdown,
    /// Send LINE as is (one JSON object) and print the answer — for testing the protocol.
    Raw { line: String },
    /// A small checkpoint engine: tag VF, then every PERIOD open the next epoch and commit the
    /// previous one (the backup acknowledges at once), until --duration-ms or SIGINT/SIGTERM;
    /// prints a JSON summary. Used by scripts/vfio-user (docs/vfio-user.md).
    Epochs {
        vf: usize,
        /// Epoch length in milliseconds.
        #[arg(long, default_value_t = 20)]
        period_ms: u64,
        /// Abort on average one epoch in N instead of committing it, at seeded pseudo-random
        /// epochs (0 = never). Not a fixed period: one would phase-lock with TCP's
        /// retransmission timer (multiples of 200 ms) and abort every retransmission.
        #[arg(long, default_value_t = 0)]
        abort_every: u32,
        /// Stop after this long (0 = until a signal).
        #[arg(long, default_value_t = 0)]
        duration_ms: u64,
    },
}

impl CtlOp {
    fn request(self) -> Result<Request, String> {
        Ok(match self {
            CtlOp::Hello => Request::Hello,
            CtlOp::Tag { vf } => Request::Tag { vf },
            CtlOp::Untag { vf } => Request::Untag { vf },
            CtlOp::Open { vf, epoch } => Request::Open { vf, epoch },
            CtlOp::Commit { vf, epoch } => Request::Commit { vf, epoch },
            CtlOp::Abort { vf, epoch } => Request::Abort { vf, epoch },
            CtlOp::Failover { vf } => Request::Failover { vf },
            CtlOp::Unprotect { vf } => Request::Unprotect { vf },
            CtlOp::SetLimits { vf, frames, bytes } => Request::SetLimits { vf, frames, bytes },
            CtlOp::SetGuard { bytes } => Request::SetGuard { bytes },
            CtlOp::Stats { vf } => Request::Stats { vf },
            CtlOp::Send { vf, frames, len } => Request::Send { vf, frames, len },
            CtlOp::Shutdown => Request::Shutdown,
            CtlOp::Raw { line } => return Err(line),
            CtlOp::Epochs { .. } => return Err(String::new()),
        })
    }
}

/// Arguments of `hac stats`.
#[derive(clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    socket: SocketArg,
    /// Only this VF.
    #[arg(long)]
    vf: Option<usize>,
    /// Print the JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// `hac serve`.
pub fn run_serve(args: ServeArgs) -> ExitCode {
    let _ = args.model;
    let config = ServeConfig {
        socket: args.socket.socket,
        vfs: args.vfs as usize,
        port_rate: args.port_rate,
        metrics: args.metrics,
        pcap: args.pcap,
        pci: args.pci.map(|bdf| hac_utility::serve::PciTarget {
            bdf,
            vf_token: args.vf_token.unwrap_or_default(),
        }),
        vfio_user: args
            .vfio_user
            .map(|dir| hac_utility::vfio_user::VfioUserConfig {
                dir,
                vfs: args.vfio_user_vfs.clone(),
            }),
        wire_peer: args
            .wire_peer
            .map(|(ip, prefix)| hac_utility::vfio_user::peer::PeerConfig {
                ip,
                prefix,
                echo_port: args.wire_peer_echo_port,
            }),
        client_idle_timeout: std::time::Duration::from_secs(args.client_idle_timeout),
    };
    let result = serve(&config, |ready| {
        match &config.pci {
            None => eprint!(
                "hac serve: {} VFs on the built-in model ({}), control socket {}",
                ready.vfs,
                config.port_rate,
                ready.socket.display()
            ),
            Some(t) => eprint!(
                "hac serve: {} VFs on PF {} (vfio-pci), control socket {}",
                ready.vfs,
                t.bdf,
                ready.socket.display()
            ),
        }
        if let Some(m) = ready.metrics {
            eprint!(", metrics http://{m}/metrics");
        }
        if let Some(v) = &config.vfio_user {
            for vf in &v.vfs {
                eprint!(
                    ", VF {vf} on vfio-user {}",
                    hac_utility::vfio_user::socket_path(&v.dir, *vf).display()
                );
            }
        }
        if let Some(p) = &config.wire_peer {
            eprint!(
                ", wire peer {}/{} (TCP echo {})",
                p.ip, p.prefix, p.echo_port
            );
        }
        eprintln!();
    });
    match result {
        Ok(()) => {
            eprintln!("hac serve: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// Sends `line`, returns the `result` or the one-line error.
fn request(socket: &std::path::Path, line: &str) -> Result<Value, String> {
    let response = call(socket, line)?;
    if response.get("ok") == Some(&Value::Bool(true)) {
        Ok(response.get("result").cloned().unwrap_or(Value::Null))
    } else {
        let msg = response
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("the daemon refused the request");
        let code = response
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("error");
        Err(format!("{code}: {msg}"))
    }
}

/// `hac ctl`.
pub fn run_ctl(args: CtlArgs) -> ExitCode {
    if let CtlOp::Epochs {
        vf,
        period_ms,
        abort_every,
        duration_ms,
    } = args.op
    {
        return run_epochs(&args.socket.socket, vf, period_ms, abort_every, duration_ms);
    }
    let line = match args.op.request() {
        Ok(r) => request_line(None, &r),
        Err(raw) => raw,
    };
    match request(&args.socket.socket, &line) {
        Ok(v) => {
            match serde_json::to_string_pretty(&v) {
                Ok(s) => println!("{s}"),
                Err(e) => return fail(&format!("cannot print the answer: {e}")),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `hac stats`.
pub fn run_stats(args: StatsArgs) -> ExitCode {
    let line = request_line(None, &Request::Stats { vf: args.vf });
    let value = match request(&args.socket.socket, &line) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let stats: Stats = match serde_json::from_value(value) {
        Ok(s) => s,
        Err(e) => return fail(&format!("unexpected stats from the daemon: {e}")),
    };
    print!("{}", format_stats(&stats));
    ExitCode::SUCCESS
}

/// The `ethtool -S` look: a header per section, then `     name: value` lines.
fn format_stats(stats: &Stats) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut section = |title: String, value: Value| {
        let _ = writeln!(out, "{title}");
        if let Value::Object(fields) = value {
            for (k, v) in fields {
                if k == "vf" || k == "mac" {
                    continue;
                }
                let _ = writeln!(out, "     {k}: {v}");
            }
        }
    };
    section(
        "NIC statistics (port):".into(),
        serde_json::to_value(&stats.port).unwrap_or(Value::Null),
    );
    for vf in &stats.vfs {
        let kind = if vf.checkpointing == 1 {
            "checkpointing"
        } else {
            "plain"
        };
        section(
            format!("VF {} statistics ({}, {kind}):", vf.vf, vf.mac),
            serde_json::to_value(vf).unwrap_or(Value::Null),
        );
    }
    out
}

/// Counters of one VF and the port, for the epoch driver's before/after.
fn hac_counters(socket: &std::path::Path, vf: usize) -> Result<(u64, u64, u64), String> {
    let v = request(
        socket,
        &request_line(None, &Request::Stats { vf: Some(vf) }),
    )?;
    let get = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Ok((
        get("/vfs/0/hac_released"),
        get("/vfs/0/hac_discarded"),
        get("/port/wire_frames"),
    ))
}

/// `hac ctl epochs`: see [`CtlOp::Epochs`].
fn run_epochs(
    socket: &std::path::Path,
    vf: usize,
    period_ms: u64,
    abort_every: u32,
    duration_ms: u64,
) -> ExitCode {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    if period_ms == 0 {
        return fail("--period-ms must be at least 1");
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let send = |r: Request| request(socket, &request_line(None, &r));
    let before = match hac_counters(socket, vf) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if let Err(e) = send(Request::Tag { vf }) {
        return fail(&e);
    }
    let started = Instant::now();
    let period = Duration::from_millis(period_ms);
    let (mut epoch, mut commits, mut aborts, mut late) = (1u32, 0u64, 0u64, 0u64);
    let mut next = started + period;
    let mut failure = None;
    // xorshift64*, fixed seed: the same abort pattern every run.
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut draw = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32
    };
    while !stop.load(Ordering::Relaxed)
        && (duration_ms == 0 || started.elapsed() < Duration::from_millis(duration_ms))
    {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        } else if now - next > period / 2 {
            late += 1;
        }
        next += period;
        let Some(following) = adapter_core::next_epoch(epoch) else {
            failure = Some(format!(
                "VF {vf} used every checkpoint epoch up to {epoch}; untag and tag it to start again at 1"
            ));
            break;
        };
        // Checkpoint `epoch` is taken: later frames belong to the next epoch; the backup
        // acknowledges at once, so `epoch` commits (or, one in N at random, fails).
        let r = send(Request::Open {
            vf,
            epoch: following,
        })
        .and_then(|_| {
            if abort_every > 0 && draw() % u64::from(abort_every) == 0 {
                aborts += 1;
                send(Request::Abort { vf, epoch })
            } else {
                commits += 1;
                send(Request::Commit { vf, epoch })
            }
        });
        if let Err(e) = r {
            failure = Some(e);
            break;
        }
        epoch = following;
    }
    // Release what is committed, let the wire drain, count, then stop checkpointing. At the last
    // epoch no new one can open: the open epoch is committed as it is.
    let finish = match adapter_core::next_epoch(epoch) {
        Some(following) => send(Request::Open {
            vf,
            epoch: following,
        })
        .and_then(|_| send(Request::Commit { vf, epoch })),
        None => send(Request::Commit { vf, epoch }),
    };
    std::thread::sleep(Duration::from_millis(50));
    let after = hac_counters(socket, vf);
    let untag = send(Request::Untag { vf });
    let after = match after {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let summary = serde_json::json!({
        "vf": vf,
        "period_ms": period_ms,
        "epochs": epoch,
        "commits": commits + u64::from(finish.is_ok()),
        "aborts": aborts,
        "late_ticks": late,
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "released": after.0 - before.0.min(after.0),
        "discarded": after.1 - before.1.min(after.1),
        "wire_frames": after.2 - before.2.min(after.2),
    });
    println!("{summary}");
    match failure.or(finish.err()).or(untag.err()) {
        Some(e) => fail(&e),
        None => ExitCode::SUCCESS,
    }
}

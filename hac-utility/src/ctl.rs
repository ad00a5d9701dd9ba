//! The daemon commands of `hac`: `serve`, `ctl` (its client) and `stats`.

use std::path::PathBuf;
use std::process::ExitCode;

use hac_control::{Client, FieldStyle, OPS, Reply, Request, Stats};
use hac_utility::serve::{ServeConfig, serve};
use serde_json::Value;

/// Where the daemon listens unless told otherwise (`$HAC_SOCKET` overrides).
pub const DEFAULT_SOCKET: &str = "/run/hac.sock";

#[derive(clap::Args, Debug, PartialEq)]
pub struct SocketArg {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", env = "HAC_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

/// Arguments of `hac serve`. Each flag is also a key of the `--config` file (the flag's name
/// with `_` for `-`; docs/control.md, "Running it as a service").
#[derive(clap::Args, Debug, PartialEq)]
pub struct ServeArgs {
    /// Read flags from this TOML file: each key is a flag (`vfs = 2`, `model = true`,
    /// `vfio_user_vfs = [0, 1]`); flags on the command line beat the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// With --pci: protect released checkpoint output with the 82576's own rate limiters.
    /// The HAC requests become hints (tag/untag: which VFs checkpoint with SoftHac in their
    /// own driver; commit: frames were released), and while a checkpointing VF has released
    /// frames to drain the plain VFs share this many Mb/s (0: off, HAC requests refused).
    /// See docs/hac.md, "Priority without the extension".
    #[arg(long, value_name = "MBPS", default_value_t = 0)]
    drain_plain_rate: u32,
    /// With --drain-plain-rate: also set TXDCTL.PRIORITY on the checkpointing VFs' queues
    /// while they drain.
    #[arg(long)]
    drain_priority: bool,
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
    /// The guest's igbvf (--family mlx5: mlx5_core) drives them; see docs/vfio-user.md.
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
    /// How the exported VFs write guest RAM: `direct` through the server's own mapping of the
    /// VM's memory (fastest; QEMU's dirty log does not see these writes), or `client` as
    /// vfio-user DMA_WRITE requests QEMU applies, so every page the device writes is in QEMU's
    /// dirty log and a COLO checkpoint (or a migration) carries it; interrupts then wait until
    /// QEMU applied the writes before them. One message per write: use `client` under COLO.
    #[arg(
        long,
        value_name = "direct|client",
        default_value = "direct",
        requires = "vfio_user"
    )]
    vfio_user_dma_writes: hac_utility::vfio_user::DmaWrites,
    /// Put a host on the model's wire (smoltcp, MAC 02:aa:00:00:00:10) at IP/PREFIX: it answers
    /// ARP and ping and echoes TCP on --wire-peer-echo-port.
    #[arg(long, value_name = "IP/PREFIX", value_parser = parse_cidr, conflicts_with = "pci")]
    wire_peer: Option<(std::net::Ipv4Addr, u8)>,
    /// Join the model's wire to the TAP interface NAME (created if it does not exist; needs
    /// CAP_NET_ADMIN): frames leaving the wire reach Linux, frames Linux sends on NAME enter
    /// the wire port. Bring it up with `ip link set NAME up`.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["pci", "wire_peer", "wire_if"])]
    wire_tap: Option<String>,
    /// Join the model's wire to the existing interface NAME (a veth end, a bridge port)
    /// through a packet socket (needs CAP_NET_RAW).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["pci", "wire_peer"])]
    wire_if: Option<String>,
    /// Give the stand-in VM of VF N an IP stack (smoltcp on our igbvf driver; 82576 model):
    /// it answers ARP and ping at IP/PREFIX and echoes TCP on port 7. With --wire-tap or
    /// --wire-if, Linux reaches it over the model's wire.
    #[arg(long, value_name = "N=IP/PREFIX", value_parser = parse_vf_ip, conflicts_with = "pci")]
    vf_ip: Option<hac_utility::serve::VfIp>,
    /// TCP echo port of --wire-peer.
    #[arg(long, default_value_t = 7)]
    wire_peer_echo_port: u16,
    /// Close a control client that sends no complete request for this many seconds (it is
    /// told why in a last `idle` error line).
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    client_idle_timeout: u64,
    /// The model's device family: igb (the 82576 with our PF agent; its VFs are 8086:10ca for
    /// igbvf) or mlx5 (the ConnectX model with our mlx5 PF driver as E-Switch manager; its VFs
    /// are 15b3:101e for mlx5_core).
    #[arg(long, default_value = "igb", value_parser = ["igb", "mlx5"], conflicts_with = "pci")]
    family: String,
}

fn parse_vf_ip(s: &str) -> Result<hac_utility::serve::VfIp, String> {
    let (vf, cidr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected N=IP/PREFIX, e.g. 0=10.77.0.2/24"))?;
    let vf = vf.parse().map_err(|_| format!("{vf:?}: not a VF number"))?;
    let (ip, prefix) = parse_cidr(cidr)?;
    Ok(hac_utility::serve::VfIp { vf, ip, prefix })
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

/// What `hac ctl` does: one protocol request, a raw line, or the epoch loop.
#[derive(clap::Subcommand)]
enum CtlOp {
    #[command(flatten)]
    Protocol(ProtocolOp),
    /// Send LINE as is (one JSON object) and print the answer — for testing the protocol.
    Raw { line: String },
    /// Print the JSON Schema of every request and response of the protocol (the daemon is not
    /// asked; docs/control-schema.json holds the same document).
    Schema,
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

/// One protocol request as a `hac ctl` subcommand. The subcommands, their arguments and help
/// come from the protocol's one list of operations ([`OPS`]): `set_limits` is `set-limits`, a
/// required field is positional (or `--name` when the list says so), an optional one `--name`.
struct ProtocolOp(Request);

/// The subcommand name of an operation.
fn cli_name(op: &str) -> String {
    op.replace('_', "-")
}

impl clap::FromArgMatches for ProtocolOp {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        use clap::error::ErrorKind;
        let Some((name, sub)) = matches.subcommand() else {
            return Err(clap::Error::raw(
                ErrorKind::MissingSubcommand,
                "no operation given\n",
            ));
        };
        let Some(spec) = OPS.iter().find(|s| cli_name(s.name) == name) else {
            return Err(clap::Error::raw(
                ErrorKind::InvalidSubcommand,
                format!("unknown operation `{name}`\n"),
            ));
        };
        let mut object = serde_json::Map::new();
        object.insert("op".into(), Value::from(spec.name));
        for f in spec.fields {
            if let Some(v) = sub.get_one::<u64>(f.name) {
                object.insert(f.name.into(), Value::from(*v));
            }
        }
        // The protocol's own types check the ranges (an epoch above 2^32 - 1, …).
        serde_json::from_value(Value::Object(object))
            .map(ProtocolOp)
            .map_err(|e| clap::Error::raw(ErrorKind::ValueValidation, format!("{name}: {e}\n")))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Subcommand for ProtocolOp {
    fn augment_subcommands(mut cmd: clap::Command) -> clap::Command {
        for spec in OPS {
            let doc = spec.doc.trim().trim_end_matches('.');
            let mut sub = clap::Command::new(cli_name(spec.name)).about(doc);
            for f in spec.fields {
                let arg = clap::Arg::new(f.name)
                    .help(f.doc.trim().trim_end_matches('.'))
                    .value_name(f.name.to_uppercase())
                    .value_parser(clap::value_parser!(u64));
                sub = sub.arg(match f.style {
                    FieldStyle::Arg => arg.required(true),
                    FieldStyle::Flag => arg.long(f.name).required(true),
                    FieldStyle::Optional => arg.long(f.name),
                });
            }
            cmd = cmd.subcommand(sub);
        }
        cmd
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        OPS.iter().any(|s| cli_name(s.name) == name)
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
    /// Print the counters again every SECONDS (fractions allowed) until Ctrl-C: redrawn in
    /// place on a terminal, one block per interval otherwise. Ends with a one-line error (exit
    /// 2) when the daemon goes away.
    #[arg(long, value_name = "SECONDS", value_parser = hac_utility::stats_watch::parse_interval)]
    watch: Option<std::time::Duration>,
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// `hac serve`: `args` as parsed from the command line `matches` of the subcommand `cmd`,
/// completed from the `--config` file if one is given.
pub fn run_serve(args: ServeArgs, cmd: &clap::Command, matches: &clap::ArgMatches) -> ExitCode {
    let args = match &args.config {
        None => args,
        Some(file) => {
            match hac_utility::config_file::merge::<ServeArgs>(cmd, matches, file, &["config"]) {
                Ok(merged) => merged,
                Err(e) => return fail(&e.to_string()),
            }
        }
    };
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
        drain: (args.drain_plain_rate > 0).then_some(hac_utility::serve::DrainConfig {
            plain_rate_mbps: args.drain_plain_rate,
            priority: args.drain_priority,
        }),
        vfio_user: args
            .vfio_user
            .map(|dir| hac_utility::vfio_user::VfioUserConfig {
                dir,
                vfs: args.vfio_user_vfs.clone(),
                dma_writes: args.vfio_user_dma_writes,
            }),
        wire_peer: args
            .wire_peer
            .map(|(ip, prefix)| hac_utility::vfio_user::peer::PeerConfig {
                ip,
                prefix,
                echo_port: args.wire_peer_echo_port,
            }),
        wire_link: match (args.wire_tap, args.wire_if) {
            (Some(n), _) => Some(hac_utility::serve::WireLink::Tap(n)),
            (None, Some(n)) => Some(hac_utility::serve::WireLink::Interface(n)),
            (None, None) => None,
        },
        vf_ip: args.vf_ip,
        client_idle_timeout: std::time::Duration::from_secs(args.client_idle_timeout),
        family: if args.family == "mlx5" {
            hac_utility::serve::Family::Mlx5
        } else {
            hac_utility::serve::Family::Igb
        },
    };
    let result = serve(&config, |ready| {
        match &config.pci {
            None => eprint!(
                "hac serve: {} VFs on the built-in {} model ({}), control socket {}",
                ready.vfs,
                match config.family {
                    hac_utility::serve::Family::Igb => "82576",
                    hac_utility::serve::Family::Mlx5 => "mlx5",
                },
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
        if let Some(link) = &config.wire_link {
            eprint!(", wire on {} {}", link.flag(), link.name());
        }
        if let Some(v) = &config.vf_ip {
            eprint!(
                ", VF {} at {}/{} (TCP echo {})",
                v.vf,
                v.ip,
                v.prefix,
                hac_utility::serve::VF_IP_ECHO_PORT
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

/// Sends `line` as it is, returns the `result` or the one-line error.
fn request_raw(socket: &std::path::Path, line: &str) -> Result<Value, String> {
    let response = hac_control::call_line(socket, line)?;
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

/// Sends one request on a fresh connection; its typed result or the one-line error.
fn request(socket: &std::path::Path, request: &Request) -> Result<Reply, String> {
    Client::connect(socket)
        .and_then(|mut c| c.call(request))
        .map_err(|e| e.to_string())
}

/// Prints `value` as pretty JSON.
fn print_json(value: &Value) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("cannot print the answer: {e}")),
    }
}

/// `hac ctl`.
pub fn run_ctl(args: CtlArgs) -> ExitCode {
    let socket = &args.socket.socket;
    let result = match args.op {
        CtlOp::Epochs {
            vf,
            period_ms,
            abort_every,
            duration_ms,
        } => return run_epochs(socket, vf, period_ms, abort_every, duration_ms),
        CtlOp::Raw { line } => request_raw(socket, &line),
        CtlOp::Schema => {
            print!("{}", hac_control::schema::document_text());
            return ExitCode::SUCCESS;
        }
        CtlOp::Protocol(ProtocolOp(r)) => request(socket, &r).and_then(|reply| {
            reply
                .to_value()
                .map_err(|e| format!("cannot print the answer: {e}"))
        }),
    };
    match result {
        Ok(v) => print_json(&v),
        Err(e) => fail(&e),
    }
}

/// The text `hac stats` prints: the table, or the JSON object with `--json`.
fn stats_text(socket: &std::path::Path, vf: Option<usize>, json: bool) -> Result<String, String> {
    let stats = match request(socket, &Request::Stats { vf }) {
        Ok(Reply::Stats(s)) => s,
        Ok(other) => return Err(format!("unexpected answer from the daemon: {other:?}")),
        Err(e) => return Err(e),
    };
    if json {
        return serde_json::to_string_pretty(&stats)
            .map(|s| s + "\n")
            .map_err(|e| format!("cannot print the answer: {e}"));
    }
    Ok(format_stats(&stats))
}

/// `hac stats`.
pub fn run_stats(args: StatsArgs) -> ExitCode {
    use hac_utility::stats_watch::{Screen, watch};
    use std::io::IsTerminal as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let socket = &args.socket.socket;
    let Some(interval) = args.watch else {
        return match stats_text(socket, args.vf, args.json) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed)) {
            return fail(&format!("cannot catch Ctrl-C: {e}"));
        }
    }
    let stdout = std::io::stdout();
    let screen = if stdout.is_terminal() {
        Screen::Terminal
    } else {
        Screen::Log
    };
    let mut title = format!("hac stats --socket {}", socket.display());
    if let Some(vf) = args.vf {
        title += &format!(" --vf {vf}");
    }
    let result = watch(interval, &title, screen, &stop, &mut stdout.lock(), || {
        stats_text(socket, args.vf, args.json)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The `ethtool -S` look: a header per section, then `     name: value` lines — the port's
/// counters, the device model's and the latency histograms' counts and sums, then each VF's and
/// its vfio-user endpoint's.
fn format_stats(stats: &Stats) -> String {
    use hac_control::{PortCounters, VfCounters};
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "NIC statistics (port):");
    for (m, v) in PortCounters::METRICS.iter().zip(stats.port.values()) {
        let _ = writeln!(out, "     {}: {v}", m.name);
    }
    for c in &stats.device {
        let _ = writeln!(out, "     {}: {}", c.name, c.value);
    }
    for h in &stats.latency {
        let name = match h.class.as_str() {
            "" => h.name.clone(),
            class => format!("{}_{class}", h.name),
        };
        let _ = writeln!(out, "     latency_{name}_count: {}", h.count);
        let _ = writeln!(out, "     latency_{name}_sum_ns: {}", h.sum_ns);
    }
    for vf in &stats.vfs {
        let kind = if vf.checkpointing == 1 {
            "checkpointing"
        } else {
            "plain"
        };
        let _ = writeln!(out, "VF {} statistics ({}, {kind}):", vf.vf, vf.mac);
        for (m, v) in VfCounters::METRICS.iter().zip(vf.values()) {
            let _ = writeln!(out, "     {}: {v}", m.name);
        }
        for c in &vf.vfio_user {
            let _ = writeln!(out, "     vfio_user_{}: {}", c.name, c.value);
        }
    }
    out
}

/// Released, discarded and wire frames of one VF and the port, for the epoch driver's
/// before/after.
fn hac_counters(client: &mut Client, vf: usize) -> Result<(u64, u64, u64), String> {
    match client.call(&Request::Stats { vf: Some(vf) }) {
        Ok(Reply::Stats(s)) => Ok((
            s.vfs.first().map_or(0, |v| v.hac_released),
            s.vfs.first().map_or(0, |v| v.hac_discarded),
            s.port.wire_frames,
        )),
        Ok(other) => Err(format!("unexpected answer from the daemon: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
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
    // One connection for the whole run: the requests are applied in the order sent.
    let mut client = match Client::connect(socket) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let before = match hac_counters(&mut client, vf) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut send = |r: Request| client.call(&r).map(drop).map_err(|e| e.to_string());
    if let Err(e) = send(Request::Tag { vf }) {
        return fail(&e);
    }
    let started = Instant::now();
    let period = Duration::from_millis(period_ms);
    let (mut epoch, mut commits, mut aborts, mut late) = (1u32, 0u64, 0u64, 0u64);
    let mut next = started + period;
    let mut failure = None;
    // Fixed seed: the same abort pattern every run.
    let mut rng = adapter_core::rng::XorShift64Star::new(0x9E37_79B9_7F4A_7C15);
    let mut draw = move || rng.next_u64() >> 32;
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
    let after = hac_counters(&mut client, vf);
    let untag = client
        .call(&Request::Untag { vf })
        .map(drop)
        .map_err(|e| e.to_string());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use clap::{Args as _, FromArgMatches as _};
    use hac_utility::config_file::{self, ConfigError};

    fn serve_cmd() -> clap::Command {
        ServeArgs::augment_args(clap::Command::new("serve"))
    }

    fn from_flags(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["serve"];
        argv.extend(flags);
        let m = serve_cmd().try_get_matches_from(argv).unwrap();
        ServeArgs::from_arg_matches(&m).unwrap()
    }

    fn from_file(flags: &[&str], file: &str) -> Result<ServeArgs, ConfigError> {
        let cmd = serve_cmd();
        let mut argv = vec!["serve"];
        argv.extend(flags);
        let m = cmd.clone().try_get_matches_from(argv).unwrap();
        config_file::merge_text(
            &cmd,
            &m,
            std::path::Path::new("hac.toml"),
            file,
            &["config"],
        )
    }

    /// Two sets of compatible keys (the model with everything on, a real PF), each key with a
    /// value other than its default: `(key, TOML value, the same as flag words)`.
    const SETS: &[&[(&str, &str, &[&str])]] = &[
        &[
            ("socket", "\"/tmp/h.sock\"", &["--socket", "/tmp/h.sock"]),
            ("model", "true", &["--model"]),
            ("vfs", "6", &["--vfs", "6"]),
            ("port_rate", "\"25G\"", &["--port-rate", "25G"]),
            (
                "metrics",
                "\"127.0.0.1:9187\"",
                &["--metrics", "127.0.0.1:9187"],
            ),
            ("pcap", "\"/tmp/w.pcap\"", &["--pcap", "/tmp/w.pcap"]),
            ("vfio_user", "\"/run/hac\"", &["--vfio-user", "/run/hac"]),
            ("vfio_user_vfs", "[0, 2]", &["--vfio-user-vfs", "0,2"]),
            (
                "vfio_user_dma_writes",
                "\"client\"",
                &["--vfio-user-dma-writes", "client"],
            ),
            (
                "wire_peer",
                "\"10.9.0.2/24\"",
                &["--wire-peer", "10.9.0.2/24"],
            ),
            (
                "wire_peer_echo_port",
                "7007",
                &["--wire-peer-echo-port", "7007"],
            ),
            (
                "client_idle_timeout",
                "90",
                &["--client-idle-timeout", "90"],
            ),
            ("family", "\"mlx5\"", &["--family", "mlx5"]),
        ],
        &[
            ("drain_plain_rate", "200", &["--drain-plain-rate", "200"]),
            ("drain_priority", "true", &["--drain-priority"]),
            ("pci", "\"0000:01:00.0\"", &["--pci", "0000:01:00.0"]),
            (
                "vf_token",
                "\"2ab2a0c8-0b9b-4b4e-9b3c-1a2b3c4d5e6f\"",
                &["--vf-token", "2ab2a0c8-0b9b-4b4e-9b3c-1a2b3c4d5e6f"],
            ),
        ],
    ];

    #[test]
    fn every_serve_flag_is_a_config_key_and_round_trips() {
        for set in SETS {
            let file: String = set.iter().map(|(k, v, _)| format!("{k} = {v}\n")).collect();
            let flags: Vec<&str> = set.iter().flat_map(|(_, _, f)| f.iter().copied()).collect();
            let expected = from_flags(&flags);
            assert_eq!(from_file(&[], &file).unwrap(), expected, "{file}");
            // Each key alone changes just its own flag (with its required partner, in the
            // file too: the command line alone must parse).
            for (key, value, words) in set.iter() {
                let (partner_key, partner): (&str, &[&str]) = match *key {
                    "pci" => ("vf_token = \"x\"", &["--vf-token", "x"]),
                    "vf_token" => ("pci = \"0000:01:00.0\"", &["--pci", "0000:01:00.0"]),
                    "vfio_user_vfs" | "vfio_user_dma_writes" => {
                        ("vfio_user = \"/run/hac\"", &["--vfio-user", "/run/hac"])
                    }
                    _ => ("", &[]),
                };
                let mut all = partner.to_vec();
                all.extend(words.iter());
                assert_eq!(
                    from_file(&[], &format!("{key} = {value}\n{partner_key}\n")).unwrap(),
                    from_flags(&all),
                    "{key}"
                );
            }
        }
        // A flag added later without a sample here still has to work with its default.
        let covered: Vec<&str> = SETS.iter().flat_map(|s| s.iter().map(|e| e.0)).collect();
        let cmd = serve_cmd();
        for key in config_file::keys(&cmd, &["config"]) {
            if covered.contains(&key.as_str()) {
                continue;
            }
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == key.as_str())
                .unwrap();
            let default = arg.get_default_values();
            let value = match default.first().and_then(|d| d.to_str()) {
                Some(d) => format!("{key} = \"{d}\""),
                None => format!("# {key}: no default; add it to SETS"),
            };
            let got = from_file(&[], &value);
            assert!(
                got.as_ref().ok() == Some(&from_flags(&[])) || default.is_empty(),
                "{key}: {got:?}"
            );
        }
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file = "vfs = 2\nport_rate = \"10G\"\nclient_idle_timeout = 5\nfamily = \"mlx5\"\n";
        let got = from_file(&["--vfs", "3", "--family", "igb"], file).unwrap();
        assert_eq!(got.vfs, 3);
        assert_eq!(got.family, "igb");
        assert_eq!(got.port_rate, from_flags(&["--port-rate", "10G"]).port_rate);
        assert_eq!(got.client_idle_timeout, 5);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_place_and_the_key() {
        let e = from_file(&[], "vfs = 2\nwire_tapp = \"tap0\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("hac.toml:2:1: unknown key `wire_tapp`"),
            "{e}"
        );
        let e = from_file(&[], "vfs = 2\n\nvfs_ = 9\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("hac.toml:3:1: unknown key `vfs_`"), "{e}");
        for (file, start) in [
            ("vfs = 8", "hac.toml:1:7: key `vfs`: "),
            ("port_rate = \"11G\"", "hac.toml:1:13: key `port_rate`: "),
            ("metrics = 9187", "hac.toml:1:11: key `metrics`: "),
            (
                "wire_peer = \"10.0.0.1/40\"",
                "hac.toml:1:13: key `wire_peer`: ",
            ),
            ("model = \"yes\"", "hac.toml:1:9: key `model`: "),
        ] {
            let e = from_file(&[], file).unwrap_err().to_string();
            assert!(e.starts_with(start), "{file}: {e}");
        }
        let e = from_file(
            &[],
            "model = true\npci = \"0000:01:00.0\"\nvf_token = \"x\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("hac.toml: ") && e.contains("--pci"), "{e}");
    }
}

//! `hac`: the High Availability Checkpoint utility, the commands an operator uses.
//!
//! * `demo`, `run`: the scenario engine on the built-in model, with a report directory.
//! * `serve`, `ctl`, `stats`: the control daemon that owns the PF and a checkpoint engine talks
//!   to, its client and its counters (docs/control.md).
//! * `colo-bridge`: output commit for a VM checkpointed by QEMU COLO (docs/colo.md).
//! * `failover-demo`: high availability end to end (docs/failover.md); it runs the hidden
//!   `ha-node` and `ha-client` subcommands of this same binary.
//! * `vf-probe`: is this VF usable? Opens it (Linux VFIO, or the built-in model) and runs the
//!   igbvf init sequence — reset, mailbox handshake, MAC — printing one JSON object.
//! * `completions`, `man`: shell completions and man pages generated from this definition.
//!
//! Test and lab tools — the QEMU referee's cases, the mailbox tracer, raw VF traffic and the
//! sch_plug bench — are the separate `hac-lab` binary (`hac-utility/lab/`).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use hac_utility::probe::{self, ProbeReport, parse_bdf};

mod ctl;

#[derive(Parser)]
#[command(
    name = "hac",
    version,
    about = "High Availability Checkpoint utility for SR-IOV NICs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the built-in demo on the model: a PF with 4 VFs (2 checkpointing with 25 ms epochs
    /// and a 3–6 ms backup ack delay, 2 plain), mixed traffic, then a summary and a report
    /// directory (report.json, packets.csv, wire.pcap, summary.txt, occupancy and delay-CDF plots
    /// as PNG and SVG).
    Demo {
        /// Where to write the report.
        #[arg(long, value_name = "DIR", default_value = "out/demo")]
        out: std::path::PathBuf,
        /// Virtual time to simulate, ms.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
        duration_ms: u64,
        /// The adapter family: igb (Intel 82576 model, igbvf driver, HAC registers) or mlx5
        /// (ConnectX model, mlx5 driver, HAC vendor commands).
        #[arg(long, default_value = "igb", value_parser = ["igb", "mlx5"])]
        family: String,
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Run a scenario file (see docs/scenarios.md and examples/*.toml) on the built-in model and
    /// write the same report directory as `demo`.
    Run {
        /// The scenario (TOML).
        scenario: std::path::PathBuf,
        /// Where to write the report (default: out/<file name>).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Open a VF, bring it up with the driver its PCI ids call for and print a JSON report.
    ///
    /// 8086:10CA / 8086:1520: the igbvf init sequence (reset, mailbox, MAC); a ConnectX VF
    /// (15B3:101E and the other mlx5 VF ids): mlx5 bring-up, firmware version, command
    /// interface revision, capabilities, MAC, link, then teardown returning every page. With
    /// --pci the VF must be bound to vfio-pci (see docs/vfio.md); with --model the same code
    /// runs against VF 0 of a built-in model (--family igb: the 82576 with our PF agent
    /// answering the mailbox; mlx5: a ConnectX model opened through the VFIO code).
    #[command(name = "vf-probe")]
    VfProbe {
        /// PCI address of the VF, e.g. 0000:01:10.0.
        #[arg(long, value_name = "BDF", conflicts_with = "model", required_unless_present = "model", value_parser = parse_bdf)]
        pci: Option<String>,
        /// VF token (UUID) when the PF is bound to vfio-pci.
        #[arg(long, value_name = "UUID", requires = "pci")]
        vf_token: Option<String>,
        /// Probe VF 0 of the built-in model instead of real hardware.
        #[arg(long)]
        model: bool,
        /// With --model: which model (igb or mlx5). With --pci the PCI ids decide.
        #[arg(long, default_value = "igb", value_parser = ["igb", "mlx5"], requires = "model")]
        family: String,
        /// Mailbox timeout in milliseconds.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        timeout_ms: u64,
    },
    /// The control daemon: owns the PF (the built-in model, run in real time), answers the
    /// line-JSON control protocol on a Unix socket (docs/control.md) and optionally serves
    /// Prometheus counters on loopback. Stops on `hac ctl shutdown`, SIGINT or SIGTERM.
    Serve(ctl::ServeArgs),
    /// Send one request to `hac serve` (tag, open, commit, abort, failover, unprotect, limits,
    /// guard, stats, …) and print its JSON answer; exit 2 with a one-line error if refused.
    Ctl(ctl::CtlArgs),
    /// Counters of a running `hac serve`, per VF, in the style of `ethtool -S`.
    Stats(ctl::StatsArgs),
    /// High availability end to end (needs root: network namespaces and TAP devices): a
    /// primary and a backup host, each with its own model NIC bridged to Linux, a protected
    /// smoltcp service replicated by deterministic replay, a Linux TCP client; the primary is
    /// killed with SIGKILL mid-stream and the client must not notice. Writes a report directory
    /// (report.json, requests.csv, summary.txt, timeline plot, per-node pcaps). See
    /// docs/failover.md.
    #[command(name = "failover-demo")]
    FailoverDemo(hac_utility::failover::DemoArgs),
    /// Output commit for a VM checkpointed by QEMU COLO: follows the primary QEMU's QMP socket
    /// and turns its checkpoints into epochs of `hac serve` for the VFs the VM owns (STOP opens
    /// the next epoch, the RESUME after it — the secondary's ack — commits the sealed one if the
    /// open came at least --min-margin-us before QEMU resumed the VM; COLO_EXIT releases, the
    /// primary's death discards). Start it before `migrate`. Prints a JSON summary; exit 1 when
    /// it stopped on an error (the adapter then keeps holding). See docs/colo.md.
    #[command(name = "colo-bridge")]
    ColoBridge(ColoBridgeArgs),
    /// One host of the failover demo (started by `failover-demo`).
    #[command(name = "ha-node", hide = true)]
    HaNode(hac_utility::failover::NodeArgs),
    /// The failover demo's TCP client (started by `failover-demo` in the client namespace).
    #[command(name = "ha-client", hide = true)]
    HaClient(hac_utility::failover::ClientArgs),
    /// The failover demo's lease arbiter (started by `failover-demo` on the client network).
    #[command(name = "ha-arbiter", hide = true)]
    HaArbiter(hac_utility::failover::ArbiterArgs),
    /// Print the shell completion script for SHELL (e.g. `hac completions bash >
    /// /etc/bash_completion.d/hac`).
    Completions {
        /// The shell.
        shell: hac_utility::cli_docs::Shell,
    },
    /// Write the man pages (hac.1 and one per subcommand, e.g. hac-serve.1) into DIR, or print
    /// hac.1 when --out is not given.
    Man {
        /// Where to write the pages.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
}

/// Arguments of `hac colo-bridge`.
#[derive(clap::Args)]
struct ColoBridgeArgs {
    /// The primary QEMU's QMP socket (`-qmp unix:PATH,server=on,wait=off`).
    #[arg(long, value_name = "PATH")]
    qmp: std::path::PathBuf,
    /// `hac serve`'s control socket.
    #[arg(long, value_name = "PATH", env = "HAC_SOCKET", default_value = ctl::DEFAULT_SOCKET)]
    socket: std::path::PathBuf,
    /// A VF the VM owns (repeat for several).
    #[arg(long = "vf", value_name = "N", required = true)]
    vfs: Vec<usize>,
    /// The open of an epoch must be acknowledged this long before QEMU's timestamp of the
    /// RESUME that ends its checkpoint, µs; otherwise that checkpoint is not committed (a later
    /// one covers it).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(0..=1_000_000))]
    min_margin_us: i64,
    /// Stop (fail closed) after this many checkpoints in a row miss the margin.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    max_late: u32,
    /// Write a JSON line per event and per request here.
    #[arg(long, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
    /// Keep trying to reach the QMP socket this long, ms.
    #[arg(long, default_value_t = 10_000)]
    connect_timeout_ms: u64,
}

/// `hac colo-bridge`: the summary on stdout; exit 1 after an error.
fn run_colo_bridge(args: ColoBridgeArgs) -> ExitCode {
    use hac_utility::colo::{bridge::BridgeConfig, follow};
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(e) =
        ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::Relaxed))
    {
        eprintln!("error: colo-bridge: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    let config = follow::FollowConfig {
        qmp: args.qmp,
        socket: args.socket,
        vfs: args.vfs,
        bridge: BridgeConfig {
            min_margin_us: args.min_margin_us,
            max_late: args.max_late,
        },
        log: args.log,
        connect_timeout: std::time::Duration::from_millis(args.connect_timeout_ms),
    };
    let (summary, result) = follow::run(&config, &stop);
    match serde_json::to_string(&summary) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: colo-bridge: summary: {e}"),
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: colo-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `wire.pcap` keeps of each frame.
#[derive(clap::Args)]
struct CaptureArgs {
    /// Bytes of each frame wire.pcap keeps (its headers), like tcpdump -s.
    #[arg(long, value_name = "BYTES", default_value_t = hac_utility::capture::DEFAULT_SNAPLEN,
          value_parser = clap::value_parser!(u32).range(14..=65_535))]
    snaplen: u32,
    /// Keep whole frames in wire.pcap (a 2 s demo at 10 Gb/s writes about 1.4 GB).
    #[arg(long, conflicts_with = "snaplen")]
    full_frames: bool,
}

impl CaptureArgs {
    fn snaplen(&self) -> u32 {
        if self.full_frames {
            hac_utility::capture::FULL_SNAPLEN
        } else {
            self.snaplen
        }
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Demo {
            out,
            duration_ms,
            family,
            capture,
        } => {
            let mut s = hac_utility::scenario::Scenario::demo(duration_ms);
            if family == "mlx5" {
                s.family = hac_utility::scenario::Family::Mlx5;
                s.name = format!("{} (mlx5)", s.name);
            }
            finish_run(hac_utility::run::run_to_dir(
                &s,
                &out,
                true,
                capture.snaplen(),
            ))
        }
        Command::Run {
            scenario,
            out,
            capture,
        } => {
            let out = out.unwrap_or_else(|| {
                let stem = scenario
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "run".into());
                std::path::PathBuf::from("out").join(stem)
            });
            match hac_utility::run::load(&scenario) {
                Ok(s) => finish_run(hac_utility::run::run_to_dir(
                    &s,
                    &out,
                    true,
                    capture.snaplen(),
                )),
                Err(e) => finish_run(Err(e)),
            }
        }
        Command::FailoverDemo(args) => run_failover_demo(&args),
        Command::ColoBridge(args) => run_colo_bridge(args),
        Command::HaNode(args) => {
            match hac_ha::node::NodeConfig::try_from(args)
                .and_then(|c| hac_ha::node::run(c).map_err(|e| e.to_string()))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: ha-node: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::HaArbiter(args) => match hac_ha::arbiter::run(&args.into()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: ha-arbiter: {e}");
                ExitCode::FAILURE
            }
        },
        Command::HaClient(args) => run_ha_client(&args.into()),
        Command::Serve(args) => {
            let cmd = Cli::command();
            match (
                cmd.find_subcommand("serve"),
                matches.subcommand_matches("serve"),
            ) {
                (Some(cmd), Some(sub)) => ctl::run_serve(args, cmd, sub),
                _ => {
                    eprintln!("error: internal: the `serve` command definition is missing");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Completions { shell } => {
            hac_utility::cli_docs::completions(
                Cli::command(),
                "hac",
                shell,
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Man { out } => write_man(out.as_deref()),
        Command::Ctl(args) => ctl::run_ctl(args),
        Command::Stats(args) => ctl::run_stats(args),
        Command::VfProbe {
            pci,
            vf_token,
            model,
            family,
            timeout_ms,
        } => {
            let config = probe::probe_config(timeout_ms);
            let report = match (pci, model) {
                (_, true) if family == "mlx5" => {
                    probe::probe_mlx5_model(&config, probe::MODEL_MLX5_VF_MAC)
                }
                (_, true) => probe::probe_model(config.igbvf),
                (Some(bdf), false) => probe::probe_vfio(&bdf, vf_token.as_deref(), &config),
                (None, false) => unreachable_args(),
            };
            let ok = report.ok;
            probe::print_json(&report, ok)
        }
    }
}

/// `hac man`: the pages into `out`, or hac.1 on stdout.
fn write_man(out: Option<&std::path::Path>) -> ExitCode {
    use std::io::Write as _;
    let result = match out {
        Some(dir) => hac_utility::cli_docs::man_pages(Cli::command(), dir).map(|pages| {
            for p in pages {
                println!("{}", p.display());
            }
        }),
        None => hac_utility::cli_docs::man_page(Cli::command())
            .and_then(|page| std::io::stdout().write_all(&page)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: hac man: {e}");
            ExitCode::from(2)
        }
    }
}

fn unreachable_args() -> ProbeReport {
    ProbeReport {
        error: Some("give --pci BDF or --model".into()),
        ..ProbeReport::default()
    }
}

/// Prints a run's summary, or its error as one line with the right exit status (2 = bad input).
fn finish_run(r: Result<String, hac_utility::run::RunError>) -> ExitCode {
    match r {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e @ hac_utility::run::RunError::Input(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hac failover-demo`: exit 0 when the client saw a consistent, complete stream; 1 when it did
/// not; 2 when the lab could not be set up (not root, no `ip`, no /dev/net/tun).
fn run_failover_demo(args: &hac_utility::failover::DemoArgs) -> ExitCode {
    use hac_utility::failover::DemoError;
    match hac_utility::failover::run(args, true) {
        Ok(report) if report.ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e @ DemoError::Setup(_)) => {
            eprintln!("error: {e} (the failover demo needs root, iproute2 and /dev/net/tun)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hac ha-client`: prints a final `{"ev":"done",...}` line; exit 1 on any inconsistency.
fn run_ha_client(args: &hac_ha::client::ClientConfig) -> ExitCode {
    match hac_ha::client::run(args) {
        Ok(n) => {
            println!(
                "{}",
                serde_json::json!({"ev": "done", "ok": true, "answered": n})
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: ha-client: {e}");
            println!(
                "{}",
                serde_json::json!({"ev": "done", "ok": false, "error": e.to_string()})
            );
            ExitCode::FAILURE
        }
    }
}

//! `hac`: the High Availability Checkpoint utility.
//!
//! Today it has the real-hardware entry point of the driver: `hac vf-probe` opens a VF (through
//! Linux VFIO, or on the built-in model), runs the igbvf init sequence — reset, mailbox
//! handshake, MAC — and prints one JSON object. The HAC commands (`demo`, `run`, `serve`, `ctl`,
//! `stats`) arrive with the HAC utility issue.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hac_driver::backend::{Clock, DmaAllocator, RegisterIo, WallClock};
use hac_driver::mailbox::MailboxConfig;
use hac_driver::pf::PfConfig;
use hac_driver::vf::{LinkState, MacSource, VfConfig, VfDriver};
use hac_driver::vfio::VfioDevice;
use igb_model::NicConfig;
use serde::Serialize;

mod ctl;
mod mbxtrace;
use hac_utility::traffic;

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

// The variants are named after the subcommands (`vf-probe`, `vf-traffic`, `vf-mailbox`).
#[allow(clippy::enum_variant_names)]
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
    },
    /// Run a scenario file (see docs/scenarios.md and examples/*.toml) on the built-in model and
    /// write the same report directory as `demo`.
    Run {
        /// The scenario (TOML).
        scenario: std::path::PathBuf,
        /// Where to write the report (default: out/<file name>).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// HAC on the model against Linux sch_plug (Remus-style buffering) in User-Mode Linux: the
    /// same workload through both (64/1500 B, paced/saturating, epochs 1/5/25 ms, acks 0/5 ms,
    /// a background flow), one table (markdown and JSON) and delay-CDF plots. The peer needs
    /// `scripts/plug/setup.sh` (docs/performance.md). Exit 1 if --check finds a correctness
    /// column wrong.
    Bench {
        /// Where to write table.md, table.json, the plots and the peer's raw results.
        #[arg(long, value_name = "DIR", default_value = "out/bench")]
        out: std::path::PathBuf,
        /// The short configuration (3 cases, CI).
        #[arg(long)]
        short: bool,
        /// Require 0 violations and 0 drops on our side, and the peer's known violation and
        /// drops to be detected where the case expects them.
        #[arg(long)]
        check: bool,
        /// Run our side only (no User-Mode Linux).
        #[arg(long)]
        skip_peer: bool,
        /// Directory of peer.sh (the sch_plug side).
        #[arg(long, value_name = "DIR", default_value = "scripts/plug")]
        plug_dir: std::path::PathBuf,
        /// Peer run per case, wall ms (default 1000, short 400).
        #[arg(long, value_parser = clap::value_parser!(u64).range(50..=60_000))]
        peer_duration_ms: Option<u64>,
        /// Model run per case, virtual ms (default 300, short 100).
        #[arg(long, value_parser = clap::value_parser!(u64).range(10..=60_000))]
        model_duration_ms: Option<u64>,
    },
    /// Open a VF, run the igbvf init sequence (reset, mailbox, MAC) and print a JSON report.
    ///
    /// With --pci the VF must be bound to vfio-pci (see docs/vfio.md); with --model the same
    /// driver runs against the built-in 82576 model with our PF agent answering the mailbox.
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
        /// Mailbox timeout in milliseconds.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        timeout_ms: u64,
    },
    /// Bring a VF up (as vf-probe) and exchange raw Ethernet frames with a peer: send --count
    /// frames to --dst-mac, then receive until --expect-rx frames from it arrived or the window
    /// ends. Prints one JSON object; exit 0 when everything was sent and completed and the
    /// expected frames arrived.
    #[command(name = "vf-traffic")]
    VfTraffic {
        #[command(flatten)]
        args: TrafficArgs,
    },
    /// Case 3 of docs/qemu.md: the PF bound to vfio-pci and driven by our PF agent (VF token
    /// set when it is opened), two VFs driven by our VF driver, frames both ways through the
    /// adapter's internal switch (counts, order, payloads). Prints one JSON object.
    #[command(name = "pf-switch")]
    PfSwitch(hac_utility::hwcases::vfio::PfSwitchArgs),
    /// Case 4 of docs/qemu.md: HAC semantics in the driver (SoftHac) on a VF: ICMP echo
    /// requests to a peer held until commit, released in order, discarded on abort, checked
    /// with the peer's counters and echo replies. Prints one JSON object.
    #[command(name = "vf-hac-check")]
    VfHacCheck(hac_utility::hwcases::vfio::HacCheckArgs),
    /// Case 5 of docs/qemu.md: smoltcp on a VF, answering ARP and ping and echoing TCP on
    /// --echo-port. Prints one JSON object when done.
    #[command(name = "vf-smoltcp")]
    VfSmoltcp(hac_utility::hwcases::vfio::SmoltcpArgs),
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
    /// One host of the failover demo (started by `failover-demo`).
    #[command(name = "ha-node", hide = true)]
    HaNode(hac_utility::failover::NodeArgs),
    /// The failover demo's TCP client (started by `failover-demo` in the client namespace).
    #[command(name = "ha-client", hide = true)]
    HaClient(hac_utility::failover::ClientArgs),
    /// Debugging: trace the VF init handshake (CTRL.RST, VF_RESET, SET_MAC_ADDR) with the raw
    /// mailbox words, without the driver's policy. The VF must be bound to vfio-pci.
    #[command(name = "vf-mailbox", hide = true)]
    VfMailbox {
        /// PCI address of the VF.
        #[arg(long, value_name = "BDF", value_parser = parse_bdf)]
        pci: String,
        /// Send this MAC in SET_MAC_ADDR instead of the one VF_RESET returned.
        #[arg(long, value_name = "MAC")]
        set_mac: Option<igb_hw::MacAddress>,
    },
}

/// Arguments of `vf-traffic`.
#[derive(clap::Args)]
struct TrafficArgs {
    /// PCI address of the VF (bound to vfio-pci), e.g. 0000:01:10.2.
    #[arg(long, value_name = "BDF", value_parser = parse_bdf)]
    pci: String,
    /// VF token (UUID) when the PF is bound to vfio-pci.
    #[arg(long, value_name = "UUID")]
    vf_token: Option<String>,
    /// Destination MAC of the frames (the peer).
    #[arg(long, value_name = "MAC")]
    dst_mac: igb_hw::MacAddress,
    /// MAC to propose with SET_MAC_ADDR when the PF assigns none (NACK to VF_RESET); random
    /// locally administered if not given.
    #[arg(long, value_name = "MAC")]
    mac: Option<igb_hw::MacAddress>,
    /// IPv4 mode: our address. With --peer-ip the frames are ICMP echo requests carrying the
    /// payload, and every echo reply must come back with it intact.
    #[arg(long, value_name = "IPV4", requires = "peer_ip")]
    ip: Option<std::net::Ipv4Addr>,
    /// IPv4 mode: the peer's address (the destination of the echo requests).
    #[arg(long, value_name = "IPV4", requires = "ip")]
    peer_ip: Option<std::net::Ipv4Addr>,
    /// Frames to send.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    count: u32,
    /// EtherType of the frames (hex, default 0x88b5: local experimental).
    #[arg(long, default_value = "0x88b5", value_parser = parse_ethertype)]
    ethertype: u16,
    /// Payload bytes per frame.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=1400))]
    payload_len: u64,
    /// Stop receiving once this many frames from --dst-mac to our MAC arrived (0: use the
    /// whole window); fewer is a failure.
    #[arg(long, default_value_t = 0)]
    expect_rx: u64,
    /// Receive window in milliseconds, after sending.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    rx_window_ms: u64,
    /// Mailbox timeout in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    timeout_ms: u64,
}

#[derive(Serialize, Default)]
struct MailboxTraceOutput {
    target: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    trace: Vec<String>,
}

#[derive(Serialize, Default)]
struct TrafficOutput {
    #[serde(flatten)]
    probe: ProbeReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traffic: Option<traffic::TrafficReport>,
}

#[derive(Serialize, Default)]
struct ProbeReport {
    target: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'static str>,
    mailbox: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<f64>,
}

fn vf_config(timeout_ms: u64) -> VfConfig {
    VfConfig {
        tx_ring_size: 64,
        rx_ring_size: 64,
        mailbox: MailboxConfig {
            timeout_ns: timeout_ms * 1_000_000,
            ..MailboxConfig::default()
        },
        ..VfConfig::default()
    }
}

/// Prints the JSON report. Exit 0 when `ok`; 2 when the device could not even be opened (wrong
/// PCI address, not bound to vfio-pci, no permission — something the user must fix; the reason
/// also goes to stderr as one line); 1 for a failure of the device or the peer.
fn print_json<T: Serialize>(report: &T, ok: bool) -> ExitCode {
    let value = match serde_json::to_value(report) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: cannot encode the report: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    if ok {
        return ExitCode::SUCCESS;
    }
    if value.get("stage").and_then(|s| s.as_str()) == Some("open") {
        let msg = value
            .get("error")
            .and_then(|s| s.as_str())
            .unwrap_or("cannot open the device");
        eprintln!("error: {}", msg.replace('\n', " "));
        return ExitCode::from(2);
    }
    ExitCode::FAILURE
}

/// `hac bench`: runs, prints the table, and with `check` fails on a wrong correctness column.
fn run_bench(o: &hac_utility::bench::BenchOptions, check: bool) -> ExitCode {
    let t = std::time::Instant::now();
    match hac_utility::bench::run(o, &mut |line| eprintln!("{line}")) {
        Ok((rows, md)) => {
            println!("{md}");
            println!(
                "written: {}/{{table.md, table.json, delay_cdf.png, delay_cdf.svg, cdf/}} in {:.1} s",
                o.out.display(),
                t.elapsed().as_secs_f64()
            );
            let problems = hac_utility::bench::check(&rows);
            for p in &problems {
                eprintln!("check: {p}");
            }
            if check && !problems.is_empty() {
                return ExitCode::FAILURE;
            }
            if check {
                println!(
                    "check: HAC 0 violations and 0 drops in every row; sch_plug's known violation and drops detected"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { out, duration_ms } => finish_run(hac_utility::run::run_to_dir(
            &hac_utility::scenario::Scenario::demo(duration_ms),
            &out,
            true,
        )),
        Command::Run { scenario, out } => {
            let out = out.unwrap_or_else(|| {
                let stem = scenario
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "run".into());
                std::path::PathBuf::from("out").join(stem)
            });
            match hac_utility::run::load(&scenario) {
                Ok(s) => finish_run(hac_utility::run::run_to_dir(&s, &out, true)),
                Err(e) => finish_run(Err(e)),
            }
        }
        Command::Bench {
            out,
            short,
            check,
            skip_peer,
            plug_dir,
            peer_duration_ms,
            model_duration_ms,
        } => run_bench(
            &hac_utility::bench::BenchOptions {
                out,
                short,
                skip_peer,
                plug_dir,
                peer_duration_ms,
                model_duration_ms,
            },
            check,
        ),
        Command::FailoverDemo(args) => run_failover_demo(&args),
        Command::HaNode(args) => match hac_ha::node::run(args.into()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: ha-node: {e}");
                ExitCode::FAILURE
            }
        },
        Command::HaClient(args) => run_ha_client(&args.into()),
        Command::Serve(args) => ctl::run_serve(args),
        Command::Ctl(args) => ctl::run_ctl(args),
        Command::Stats(args) => ctl::run_stats(args),
        Command::PfSwitch(args) => {
            let out = hac_utility::hwcases::vfio::pf_switch(&args);
            print_json(&out, out.head.ok)
        }
        Command::VfHacCheck(args) => {
            let out = hac_utility::hwcases::vfio::hac_check_vfio(&args);
            print_json(&out, out.head.ok)
        }
        Command::VfSmoltcp(args) => {
            let out = hac_utility::hwcases::vfio::smoltcp_vfio(&args);
            print_json(&out, out.head.ok)
        }
        Command::VfMailbox { pci, set_mac } => {
            let mut out = MailboxTraceOutput {
                target: pci.clone(),
                ..MailboxTraceOutput::default()
            };
            match VfioDevice::open(&pci, None).and_then(|dev| {
                dev.enable_memory_and_bus_master()?;
                let bar = dev.bar0()?;
                Ok((dev, bar))
            }) {
                Ok((_dev, bar)) => {
                    let (trace, ok) = mbxtrace::trace(bar, set_mac);
                    out.trace = trace;
                    out.ok = ok;
                }
                Err(e) => out.error = Some(e.to_string()),
            }
            let ok = out.ok;
            print_json(&out, ok)
        }
        Command::VfTraffic {
            args:
                TrafficArgs {
                    pci,
                    vf_token,
                    dst_mac,
                    mac,
                    ip,
                    peer_ip,
                    count,
                    ethertype,
                    payload_len,
                    expect_rx,
                    rx_window_ms,
                    timeout_ms,
                },
        } => {
            let plan = traffic::TrafficPlan {
                dst: dst_mac,
                count,
                ethertype,
                payload_len: payload_len as usize,
                expect_rx,
                rx_window: std::time::Duration::from_millis(rx_window_ms),
                tx_timeout: std::time::Duration::from_secs(5),
                ipv4: ip.zip(peer_ip).map(|(a, b)| (a.octets(), b.octets())),
            };
            let config = VfConfig {
                fallback_mac: mac,
                ..vf_config(timeout_ms)
            };
            let out = traffic_vfio(&pci, vf_token.as_deref(), config, &plan);
            let ok = out.probe.ok;
            print_json(&out, ok)
        }
        Command::VfProbe {
            pci,
            vf_token,
            model,
            timeout_ms,
        } => {
            let config = vf_config(timeout_ms);
            let report = match (pci, model) {
                (_, true) => probe_model(config),
                (Some(bdf), false) => probe_vfio(&bdf, vf_token.as_deref(), config),
                (None, false) => unreachable_args(),
            };
            let ok = report.ok;
            print_json(&report, ok)
        }
    }
}

/// Checks a PCI address at the command line, so a typo is a usage error (exit 2).
fn parse_bdf(s: &str) -> Result<String, String> {
    hac_driver::vfio::Bdf::parse(s)
        .map(|b| b.to_string())
        .map_err(|e| e.to_string())
}

fn parse_ethertype(s: &str) -> Result<u16, String> {
    let t = s.trim_start_matches("0x").trim_start_matches("0X");
    let v = u16::from_str_radix(t, 16).map_err(|e| format!("invalid EtherType {s:?}: {e}"))?;
    if v < 0x0600 {
        return Err(format!("EtherType {v:#06x} is a length (< 0x0600)"));
    }
    Ok(v)
}

fn unreachable_args() -> ProbeReport {
    ProbeReport {
        error: Some("give --pci BDF or --model".into()),
        ..ProbeReport::default()
    }
}

fn fill_from_driver<R: RegisterIo, D: DmaAllocator, C: Clock>(
    report: &mut ProbeReport,
    vf: &VfDriver<R, D, C>,
) {
    report.ok = true;
    report.mac = Some(vf.mac().to_string());
    report.mac_source = Some(match vf.mac_source() {
        MacSource::Pf => "pf",
        MacSource::Driver => "driver (PF answered NACK; set with SET_MAC_ADDR)",
    });
    report.mailbox = "ok".into();
}

fn fill_from_error(report: &mut ProbeReport, e: hac_driver::DriverError) {
    report.stage = Some("init");
    report.mailbox = match e {
        hac_driver::DriverError::MailboxTimeout { .. } => "timeout".into(),
        hac_driver::DriverError::Nack { .. } => "nack".into(),
        hac_driver::DriverError::PfInReset => "pf-in-reset".into(),
        _ => "error".into(),
    };
    report.error = Some(e.to_string());
}

fn fill_link<R: RegisterIo, D: DmaAllocator, C: Clock>(
    report: &mut ProbeReport,
    vf: &mut VfDriver<R, D, C>,
) {
    report.link = Some(match vf.link() {
        LinkState::Up => "up",
        LinkState::Down => "down",
        LinkState::PfReset => "pf-reset",
    });
}

/// Opens a VF through VFIO and runs the init sequence; the report says how far it got. The
/// device is returned with the driver (it must outlive it).
#[allow(clippy::type_complexity)]
fn open_vfio(
    bdf: &str,
    token: Option<&str>,
    config: VfConfig,
    report: &mut ProbeReport,
) -> Option<(
    VfioDevice<hac_driver::vfio::HostDevice>,
    VfDriver<
        hac_driver::vfio::VfioBar<
            <hac_driver::vfio::HostDevice as hac_driver::vfio::DeviceAccess>::Window,
        >,
        hac_driver::vfio::VfioDma<
            <hac_driver::vfio::HostDevice as hac_driver::vfio::DeviceAccess>::Mapper,
        >,
        WallClock,
    >,
)> {
    report.target = bdf.to_string();
    report.mailbox = "not reached".into();
    let fail = |r: &mut ProbeReport, stage, e: String| {
        r.stage = Some(stage);
        r.error = Some(e);
    };
    let dev = match VfioDevice::open(bdf, token) {
        Ok(d) => d,
        Err(e) => {
            fail(report, "open", e.to_string());
            return None;
        }
    };
    match dev.ids() {
        Ok(ids) => {
            report.vendor_id = Some(format!("{:#06x}", ids.vendor));
            report.device_id = Some(format!("{:#06x}", ids.device));
        }
        Err(e) => {
            fail(report, "config", e.to_string());
            return None;
        }
    }
    if let Err(e) = dev.enable_memory_and_bus_master() {
        fail(report, "config", e.to_string());
        return None;
    }
    let bar = match dev.bar0() {
        Ok(b) => b,
        Err(e) => {
            fail(report, "bar0", e.to_string());
            return None;
        }
    };
    let vf = VfDriver::new(bar, dev.dma(), WallClock::default(), config);
    match vf {
        Ok(mut vf) => {
            fill_from_driver(report, &vf);
            fill_link(report, &mut vf);
            Some((dev, vf))
        }
        Err(e) => {
            fill_from_error(report, e);
            None
        }
    }
}

fn probe_vfio(bdf: &str, token: Option<&str>, config: VfConfig) -> ProbeReport {
    let start = std::time::Instant::now();
    let mut report = ProbeReport::default();
    let opened = open_vfio(bdf, token, config, &mut report);
    if opened.is_some() || report.stage == Some("init") {
        report.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    }
    drop(opened);
    report
}

fn traffic_vfio(
    bdf: &str,
    token: Option<&str>,
    config: VfConfig,
    plan: &traffic::TrafficPlan,
) -> TrafficOutput {
    let start = std::time::Instant::now();
    let mut out = TrafficOutput {
        dst_mac: Some(plan.dst.to_string()),
        ..TrafficOutput::default()
    };
    let Some((_dev, mut vf)) = open_vfio(bdf, token, config, &mut out.probe) else {
        return out;
    };
    match traffic::run(&mut vf, plan) {
        Ok(t) => {
            let mut problems = Vec::new();
            if !t.tx_completed {
                problems.push(format!(
                    "sent {} of {} frames, {} descriptors still in flight",
                    t.sent, plan.count, t.tx_in_flight
                ));
            }
            if plan.ipv4.is_some() && t.echo_replies < u64::from(plan.count) {
                problems.push(format!(
                    "{} of {} echo replies came back intact ({} bad)",
                    t.echo_replies, plan.count, t.echo_replies_bad
                ));
            }
            if t.received_from_peer_unicast < plan.expect_rx {
                problems.push(format!(
                    "received {} of {} expected frames from {}",
                    t.received_from_peer_unicast, plan.expect_rx, plan.dst
                ));
            }
            if !problems.is_empty() {
                out.probe.ok = false;
                out.probe.stage = Some("traffic");
                out.probe.error = Some(problems.join("; "));
            }
            out.traffic = Some(t);
        }
        Err(e) => {
            out.probe.ok = false;
            out.probe.stage = Some("traffic");
            out.probe.error = Some(e.to_string());
        }
    }
    out.probe.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    out
}

fn probe_model(config: VfConfig) -> ProbeReport {
    let start = std::time::Instant::now();
    let mut report = ProbeReport {
        target: "model:vf0".into(),
        mailbox: "not reached".into(),
        ..ProbeReport::default()
    };
    let model = hac_driver::model::Model::new(NicConfig::default());
    let pf = model.start_pf_agent(
        PfConfig {
            num_vfs: 1,
            ..PfConfig::default()
        },
        &[None],
    );
    if let Err(e) = pf {
        report.stage = Some("pf-agent");
        report.error = Some(e.to_string());
        return report;
    }
    // A VF's own ID registers read FFFFh (SR-IOV 3.4.1.1); its device id is in the PF's SR-IOV
    // capability, which is what a VMM presents.
    let mut id = [0u8; 2];
    let at = (igb_hw::pci::layout::SRIOV + igb_hw::pci::sriov::VF_DEVICE_ID) as u16;
    model
        .nic()
        .config_read(igb_model::FunctionId::Pf, at, &mut id);
    report.vendor_id = Some(format!("{:#06x}", igb_hw::pci::VENDOR_INTEL));
    report.device_id = Some(format!("{:#06x}", u16::from_le_bytes(id)));
    match model.vf_driver(0, config) {
        Ok(mut vf) => {
            fill_from_driver(&mut report, &vf);
            fill_link(&mut report, &mut vf);
        }
        Err(e) => fill_from_error(&mut report, e),
    }
    report.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    report
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

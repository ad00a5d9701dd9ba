//! `hac-lab`: the test and lab tools of the HAC utility, kept out of the product binary `hac`.
//!
//! * `vf-traffic`: bring a VF up (as `hac vf-probe`) and exchange raw frames with a peer — the
//!   QEMU referee's cases 1 and 2 and its daemon case (docs/qemu.md).
//! * `pf-switch`, `vf-hac-check`, `vf-smoltcp`: the QEMU referee's cases 3, 4 and 5.
//! * `vf-mailbox`: a raw trace of the VF init handshake, for debugging a VF against a PF driver.
//! * `bench`: HAC on the model against Linux sch_plug in User-Mode Linux (docs/performance.md).
//!
//! Every command prints JSON (the bench a table) and exits 0 when every check passed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hac_driver::mlx5::EthConfig;
use hac_driver::vf::VfConfig;
use hac_driver::vfio::VfioDevice;
use hac_lab::traffic;
use hac_utility::probe::{self, ProbeReport, parse_bdf, print_json};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "hac-lab",
    version,
    about = "Test and lab tools of the HAC utility: the QEMU referee's cases, the mailbox tracer, the sch_plug bench"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The variants are named after the subcommands (`vf-traffic`, `vf-mailbox`, ...).
#[allow(clippy::enum_variant_names)]
#[derive(Subcommand)]
enum Command {
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
    PfSwitch(hac_lab::hwcases::vfio::PfSwitchArgs),
    /// Case 4 of docs/qemu.md: HAC semantics in the driver (SoftHac) on a VF: ICMP echo
    /// requests to a peer held until commit, released in order, discarded on abort, checked
    /// with the peer's counters and echo replies. Prints one JSON object.
    #[command(name = "vf-hac-check")]
    VfHacCheck(hac_lab::hwcases::vfio::HacCheckArgs),
    /// Case 5 of docs/qemu.md: smoltcp on a VF, answering ARP and ping and echoing TCP on
    /// --echo-port. Prints one JSON object when done.
    #[command(name = "vf-smoltcp")]
    VfSmoltcp(hac_lab::hwcases::vfio::SmoltcpArgs),
    /// Debugging: trace the VF init handshake (CTRL.RST, VF_RESET, SET_MAC_ADDR) with the raw
    /// mailbox words, without the driver's policy. The VF must be bound to vfio-pci.
    #[command(name = "vf-mailbox")]
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

/// `hac-lab bench`: runs, prints the table, and with `check` fails on a wrong correctness column.
fn run_bench(o: &hac_lab::bench::BenchOptions, check: bool) -> ExitCode {
    let t = std::time::Instant::now();
    match hac_lab::bench::run(o, &mut |line| eprintln!("{line}")) {
        Ok((rows, md)) => {
            println!("{md}");
            println!(
                "written: {}/{{table.md, table.json, delay_cdf.png, delay_cdf.svg, cdf/}} in {:.1} s",
                o.out.display(),
                t.elapsed().as_secs_f64()
            );
            let problems = hac_lab::bench::check(&rows);
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
        Command::Bench {
            out,
            short,
            check,
            skip_peer,
            plug_dir,
            peer_duration_ms,
            model_duration_ms,
        } => run_bench(
            &hac_lab::bench::BenchOptions {
                out,
                short,
                skip_peer,
                plug_dir,
                peer_duration_ms,
                model_duration_ms,
                progress: true,
            },
            check,
        ),
        Command::PfSwitch(args) => {
            let out = hac_lab::hwcases::vfio::pf_switch(&args);
            print_json(&out, out.head.ok)
        }
        Command::VfHacCheck(args) => {
            let out = hac_lab::hwcases::vfio::hac_check_vfio(&args);
            print_json(&out, out.head.ok)
        }
        Command::VfSmoltcp(args) => {
            let out = hac_lab::hwcases::vfio::smoltcp_vfio(&args);
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
                    let (trace, ok) = hac_lab::mbxtrace::trace(bar, set_mac);
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
            let mut config = probe::probe_config(timeout_ms);
            config.igbvf = VfConfig {
                fallback_mac: mac,
                ..config.igbvf
            };
            let out = traffic_vfio(&pci, vf_token.as_deref(), &config, &plan);
            let ok = out.probe.ok;
            print_json(&out, ok)
        }
    }
}

fn parse_ethertype(s: &str) -> Result<u16, String> {
    let t = s.trim_start_matches("0x").trim_start_matches("0X");
    let v = u16::from_str_radix(t, 16).map_err(|e| format!("invalid EtherType {s:?}: {e}"))?;
    if v < 0x0600 {
        return Err(format!("EtherType {v:#06x} is a length (< 0x0600)"));
    }
    Ok(v)
}

fn traffic_vfio(
    bdf: &str,
    token: Option<&str>,
    config: &probe::ProbeConfig,
    plan: &traffic::TrafficPlan,
) -> TrafficOutput {
    let start = std::time::Instant::now();
    let mut out = TrafficOutput {
        dst_mac: Some(plan.dst.to_string()),
        ..TrafficOutput::default()
    };
    let Some((_dev, vf)) = probe::open_vfio(bdf, token, config, &mut out.probe) else {
        return out;
    };
    traffic_on(vf, plan, &mut out);
    out.probe.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    out
}

/// Runs the plan on a VF brought up by [`probe::open_device`], whatever its family, then
/// closes it (mlx5: teardown with every page back).
fn traffic_on<D: hac_driver::vfio::DeviceAccess, C: hac_driver::backend::Clock>(
    vf: probe::OpenedVf<D, C>,
    plan: &traffic::TrafficPlan,
    out: &mut TrafficOutput,
) {
    match vf {
        probe::OpenedVf::Igbvf(mut vf) => {
            let result = traffic::run(vf.as_mut(), plan);
            judge(result, plan, out);
        }
        probe::OpenedVf::Mlx5(dev) => match traffic::Mlx5Port::open(dev, EthConfig::default()) {
            Ok(mut port) => {
                let result = traffic::run(&mut port, plan);
                judge(result, plan, out);
                probe::close(
                    probe::OpenedVf::<D, C>::Mlx5(port.into_device()),
                    &mut out.probe,
                );
            }
            Err((dev, e)) => {
                let mut teardown = ProbeReport::default();
                probe::close(probe::OpenedVf::<D, C>::Mlx5(dev), &mut teardown);
                out.probe.ok = false;
                out.probe.stage = Some("traffic");
                out.probe.error = Some(match teardown.error {
                    Some(t) => format!("opening the Ethernet path: {e}; teardown: {t}"),
                    None => format!("opening the Ethernet path: {e}"),
                });
            }
        },
    }
}

/// Puts a traffic result in the output: the counters, and what fell short of the plan.
fn judge<E: std::fmt::Display>(
    result: Result<traffic::TrafficReport, E>,
    plan: &traffic::TrafficPlan,
    out: &mut TrafficOutput,
) {
    match result {
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
}

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
use nic_model::NicConfig;
use serde::Serialize;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::VfProbe {
            pci,
            vf_token,
            model,
            timeout_ms,
        } => {
            let config = VfConfig {
                tx_ring_size: 64,
                rx_ring_size: 64,
                mailbox: MailboxConfig {
                    timeout_ns: timeout_ms * 1_000_000,
                    ..MailboxConfig::default()
                },
                ..VfConfig::default()
            };
            let report = match (pci, model) {
                (_, true) => probe_model(config),
                (Some(bdf), false) => probe_vfio(&bdf, vf_token.as_deref(), config),
                (None, false) => unreachable_args(),
            };
            match serde_json::to_string_pretty(&report) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot encode the report: {e}"),
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Checks a PCI address at the command line, so a typo is a usage error (exit 2).
fn parse_bdf(s: &str) -> Result<String, String> {
    hac_driver::vfio::Bdf::parse(s)
        .map(|b| b.to_string())
        .map_err(|e| e.to_string())
}

fn unreachable_args() -> ProbeReport {
    ProbeReport {
        error: Some("give --pci BDF or --model".into()),
        ..ProbeReport::default()
    }
}

fn fill_from_driver<R: RegisterIo, D: DmaAllocator, C: Clock>(
    report: &mut ProbeReport,
    result: Result<VfDriver<R, D, C>, hac_driver::DriverError>,
) {
    match result {
        Ok(mut vf) => {
            report.ok = true;
            report.mac = Some(vf.mac().to_string());
            report.mac_source = Some(match vf.mac_source() {
                MacSource::Pf => "pf",
                MacSource::Driver => "driver (PF answered NACK; set with SET_MAC_ADDR)",
            });
            report.link = Some(match vf.link() {
                LinkState::Up => "up",
                LinkState::Down => "down",
                LinkState::PfReset => "pf-reset",
            });
            report.mailbox = "ok".into();
        }
        Err(e) => {
            report.stage = Some("init");
            report.mailbox = match e {
                hac_driver::DriverError::MailboxTimeout { .. } => "timeout".into(),
                hac_driver::DriverError::Nack { .. } => "nack".into(),
                hac_driver::DriverError::PfInReset => "pf-in-reset".into(),
                _ => "error".into(),
            };
            report.error = Some(e.to_string());
        }
    }
}

fn probe_vfio(bdf: &str, token: Option<&str>, config: VfConfig) -> ProbeReport {
    let start = std::time::Instant::now();
    let mut report = ProbeReport {
        target: bdf.to_string(),
        mailbox: "not reached".into(),
        ..ProbeReport::default()
    };
    let fail = |mut r: ProbeReport, stage, e: String| {
        r.stage = Some(stage);
        r.error = Some(e);
        r
    };
    let dev = match VfioDevice::open(bdf, token) {
        Ok(d) => d,
        Err(e) => return fail(report, "open", e.to_string()),
    };
    match dev.ids() {
        Ok(ids) => {
            report.vendor_id = Some(format!("{:#06x}", ids.vendor));
            report.device_id = Some(format!("{:#06x}", ids.device));
        }
        Err(e) => return fail(report, "config", e.to_string()),
    }
    if let Err(e) = dev.enable_memory_and_bus_master() {
        return fail(report, "config", e.to_string());
    }
    let bar = match dev.bar0() {
        Ok(b) => b,
        Err(e) => return fail(report, "bar0", e.to_string()),
    };
    fill_from_driver(
        &mut report,
        VfDriver::new(bar, dev.dma(), WallClock::default(), config),
    );
    report.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    report
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
        .config_read(nic_model::FunctionId::Pf, at, &mut id);
    report.vendor_id = Some(format!("{:#06x}", igb_hw::pci::VENDOR_INTEL));
    report.device_id = Some(format!("{:#06x}", u16::from_le_bytes(id)));
    fill_from_driver(&mut report, model.vf_driver(0, config));
    report.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    report
}

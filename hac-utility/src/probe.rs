//! Bringing one VF up for the VF commands: `hac vf-probe` (and the lab binary's `vf-traffic`,
//! which brings the VF up the same way before it sends): open it through Linux VFIO or take VF 0
//! of the built-in model, run the igbvf init sequence (reset, mailbox handshake, MAC) and say in
//! a [`ProbeReport`] how far it got; [`print_json`] prints such a report with the commands' exit
//! codes.

use std::process::ExitCode;

use hac_driver::backend::{Clock, DmaAllocator, RegisterIo, WallClock};
use hac_driver::mailbox::MailboxConfig;
use hac_driver::pf::PfConfig;
use hac_driver::vf::{LinkState, MacSource, VfConfig, VfDriver};
use hac_driver::vfio::{DeviceAccess, HostDevice, VfioBar, VfioDevice, VfioDma};
use igb_hw::VfIndex;
use igb_model::NicConfig;
use serde::Serialize;

/// A VF driver on a VF opened through VFIO.
pub type VfioVf = VfDriver<
    VfioBar<<HostDevice as DeviceAccess>::Window>,
    VfioDma<<HostDevice as DeviceAccess>::Mapper>,
    WallClock,
>;

/// What `vf-probe` (and the lab's `vf-traffic`, which brings the VF up the same way) prints:
/// how far the VF's init got and what it found.
#[derive(Serialize, Default)]
pub struct ProbeReport {
    /// The VF: a PCI address or `model:vf0`.
    pub target: String,
    /// Whether every step passed.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// PCI vendor id, hex.
    pub vendor_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// PCI device id, hex.
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The VF's MAC after init.
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Who chose the MAC: the PF, or the driver after a NACK.
    pub mac_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Link state after init.
    pub link: Option<&'static str>,
    /// How the mailbox handshake went (`ok`, `timeout`, `nack`, …).
    pub mailbox: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Where it failed: `open`, `config`, `bar0`, `init`, `pf-agent`, `traffic`.
    pub stage: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why it failed, one line.
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Time from open to the end of init, ms.
    pub elapsed_ms: Option<f64>,
}

/// The VF configuration of the VF commands: 64-entry rings, the given mailbox timeout.
pub fn vf_config(timeout_ms: u64) -> VfConfig {
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
pub fn print_json<T: Serialize>(report: &T, ok: bool) -> ExitCode {
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

/// Checks a PCI address at the command line, so a typo is a usage error (exit 2).
pub fn parse_bdf(s: &str) -> Result<String, String> {
    hac_driver::vfio::Bdf::parse(s)
        .map(|b| b.to_string())
        .map_err(|e| e.to_string())
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
pub fn open_vfio(
    bdf: &str,
    token: Option<&str>,
    config: VfConfig,
    report: &mut ProbeReport,
) -> Option<(VfioDevice<HostDevice>, VfioVf)> {
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

/// `vf-probe --pci`: opens the VF through VFIO, runs the init sequence and closes it again.
pub fn probe_vfio(bdf: &str, token: Option<&str>, config: VfConfig) -> ProbeReport {
    let start = std::time::Instant::now();
    let mut report = ProbeReport::default();
    let opened = open_vfio(bdf, token, config, &mut report);
    if opened.is_some() || report.stage == Some("init") {
        report.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    }
    drop(opened);
    report
}

/// `vf-probe --model`: VF 0 of the built-in model, our PF agent answering its mailbox.
pub fn probe_model(config: VfConfig) -> ProbeReport {
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
    let first = VfIndex::new(0).ok_or(hac_driver::DriverError::NoSuchVf(0u8.into()));
    match first.and_then(|vf| model.vf_driver(vf, config)) {
        Ok(mut vf) => {
            fill_from_driver(&mut report, &vf);
            fill_link(&mut report, &mut vf);
        }
        Err(e) => fill_from_error(&mut report, e),
    }
    report.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    report
}

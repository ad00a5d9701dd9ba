//! Bringing one VF up for the VF commands: `hac vf-probe` (and the lab binary's `vf-traffic`,
//! which brings the VF up the same way before it sends): open it through Linux VFIO (or take
//! VF 0 of a built-in model), pick the driver from the PCI ids ([`VfFamily`]: igbvf for
//! 8086:10CA/1520, mlx5 for the ConnectX VF ids), bring it up — igbvf: reset, mailbox
//! handshake, MAC; mlx5: `mlx5_core`'s bring-up, then firmware version, command interface
//! revision, a capability summary, the MAC (QUERY_NIC_VPORT_CONTEXT) and the link
//! (QUERY_VPORT_STATE) — and say in a [`ProbeReport`] how far it got; [`print_json`] prints
//! such a report with the commands' exit codes.

use std::process::ExitCode;

use hac_driver::backend::{Clock, DmaAllocator, RegisterIo, WallClock};
use hac_driver::mailbox::MailboxConfig;
use hac_driver::mlx5::{Mlx5Config, Mlx5Device, Mlx5Error};
use hac_driver::pf::PfConfig;
use hac_driver::vf::{LinkState, MacSource, VfConfig, VfDriver};
use hac_driver::vfio::{DeviceAccess, HostDevice, VfFamily, VfioDevice, VfioIgbvf, VfioMlx5};
use igb_hw::VfIndex;
use igb_model::NicConfig;
use mlx5_hw::commands::vport::VportState;
use serde::Serialize;

/// A VF driver on a VF opened through VFIO.
pub type VfioVf = VfioIgbvf<HostDevice, WallClock>;

/// A VF brought up through VFIO, with the driver its family needs.
pub enum OpenedVf<D: DeviceAccess = HostDevice, C: Clock = WallClock> {
    /// An 82576 / I350 VF (the drivers are boxed: they are large and of different sizes).
    Igbvf(Box<VfioIgbvf<D, C>>),
    /// A ConnectX VF.
    Mlx5(Box<VfioMlx5<D, C>>),
}

/// How the VF commands run each family's driver.
#[derive(Clone, Debug, Default)]
pub struct ProbeConfig {
    /// igbvf: rings, mailbox timeout, fallback MAC.
    pub igbvf: VfConfig,
    /// mlx5: command and firmware-initialization timeouts (Linux's 60 s and 120 s).
    pub mlx5: Mlx5Config,
}

/// What an mlx5 VF reported at bring-up (`vf-probe` on an mlx5 VF).
#[derive(Serialize, Default, Debug, Clone, PartialEq, Eq)]
pub struct Mlx5Summary {
    /// Firmware version, `major.minor.subminor` (init segment `fw_rev`).
    pub firmware: String,
    /// Command interface revision (init segment `cmdif_rev`; the driver speaks 5).
    pub cmdif_rev: u16,
    /// ISSI versions the device supports (bit mask of QUERY_ISSI).
    pub supported_issi: u32,
    /// Pages the device asked for at boot and at init (QUERY_PAGES).
    pub boot_pages: i32,
    /// See `boot_pages`.
    pub init_pages: i32,
    /// Port type (`Ethernet`, `Infiniband`).
    pub port_type: String,
    /// Number of ports.
    pub num_ports: u8,
    /// Ethernet offloads capability page present (`eth_net_offloads`).
    pub eth_net_offloads: bool,
    /// NIC flow tables (`nic_flow_table`).
    pub nic_flow_table: bool,
    /// RoCE.
    pub roce: bool,
    /// log2 of the most CQs, and of a CQ's most entries.
    pub log_max_cq: u8,
    /// See `log_max_cq`.
    pub log_max_cq_sz: u8,
    /// log2 of the most EQs, and of an EQ's most entries.
    pub log_max_eq: u8,
    /// See `log_max_eq`.
    pub log_max_eq_sz: u8,
    /// log2 of the most memory keys.
    pub log_max_mkey: u8,
    /// The vport MTU (QUERY_NIC_VPORT_CONTEXT; 0: not set).
    pub mtu: u16,
    /// Pages the device held and gave back at teardown (every page: the teardown check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages_returned: Option<usize>,
}

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
    /// The driver family picked from the ids: `igbvf` or `mlx5`.
    pub family: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The VF's MAC after init.
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Who chose the MAC: the PF, or the driver after a NACK.
    pub mac_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Link state after init.
    pub link: Option<&'static str>,
    /// How the mailbox handshake went (`ok`, `timeout`, `nack`, …); `n/a` on mlx5 (no
    /// mailbox: the VF has its own command queue).
    pub mailbox: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// mlx5 only: firmware, command interface, capabilities, teardown.
    pub mlx5: Option<Mlx5Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Where it failed: `open`, `config`, `family`, `bar0`, `init`, `query`, `teardown`,
    /// `pf-agent`, `traffic`.
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

/// The configuration of the VF commands: igbvf as [`vf_config`]; mlx5 with Linux's
/// timeouts (commands 60 s, firmware initialization 120 s — the mailbox timeout does not apply).
pub fn probe_config(timeout_ms: u64) -> ProbeConfig {
    ProbeConfig {
        igbvf: vf_config(timeout_ms),
        mlx5: Mlx5Config::default(),
    }
}

/// Prints the JSON report. Exit 0 when `ok`; 2 when the device could not even be opened (wrong
/// PCI address, not bound to vfio-pci, no permission) or is not a supported VF (stage
/// `family`) — something the user must fix; the reason also goes to stderr as one line; 1 for
/// a failure of the device or the peer.
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
    let stage = value.get("stage").and_then(|s| s.as_str());
    if matches!(stage, Some("open" | "family")) {
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

/// Opens a VF through VFIO and brings it up with its family's driver; the report says how far
/// it got. The device is returned with the driver (it must outlive it).
pub fn open_vfio(
    bdf: &str,
    token: Option<&str>,
    config: &ProbeConfig,
    report: &mut ProbeReport,
) -> Option<(VfioDevice<HostDevice>, OpenedVf)> {
    report.target = bdf.to_string();
    report.mailbox = "not reached".into();
    let dev = match VfioDevice::open(bdf, token) {
        Ok(d) => d,
        Err(e) => {
            report.stage = Some("open");
            report.error = Some(e.to_string());
            return None;
        }
    };
    let vf = open_device(&dev, WallClock::default(), config, report)?;
    Some((dev, vf))
}

/// Brings up an opened function with the driver its PCI ids call for (any [`DeviceAccess`]:
/// the real one, or a model function in tests); `clock` is the driver's time.
pub fn open_device<D: DeviceAccess, C: Clock>(
    dev: &VfioDevice<D>,
    clock: C,
    config: &ProbeConfig,
    report: &mut ProbeReport,
) -> Option<OpenedVf<D, C>> {
    let fail = |r: &mut ProbeReport, stage, e: String| {
        r.stage = Some(stage);
        r.error = Some(e);
    };
    if report.mailbox.is_empty() {
        report.mailbox = "not reached".into();
    }
    let ids = match dev.ids() {
        Ok(ids) => ids,
        Err(e) => {
            fail(report, "config", e.to_string());
            return None;
        }
    };
    report.vendor_id = Some(format!("{:#06x}", ids.vendor));
    report.device_id = Some(format!("{:#06x}", ids.device));
    let family = match VfFamily::from_ids(ids) {
        Ok(f) => f,
        Err(e) => {
            fail(report, "family", e.to_string());
            return None;
        }
    };
    report.family = Some(family.name());
    if let Err(e) = dev.enable_memory_and_bus_master() {
        fail(report, "config", e.to_string());
        return None;
    }
    let bar = match dev.register_bar(family) {
        Ok(b) => b,
        Err(e) => {
            fail(report, "bar0", e.to_string());
            return None;
        }
    };
    match family {
        VfFamily::Igbvf => match VfDriver::new(bar, dev.dma(), clock, config.igbvf.clone()) {
            Ok(mut vf) => {
                fill_from_driver(report, &vf);
                fill_link(report, &mut vf);
                Some(OpenedVf::Igbvf(Box::new(vf)))
            }
            Err(e) => {
                fill_from_error(report, e);
                None
            }
        },
        VfFamily::Mlx5 => {
            report.mailbox = "n/a".into();
            let mut vf = match Mlx5Device::new(bar, dev.dma(), clock, config.mlx5.clone()) {
                Ok(vf) => vf,
                Err(e) => {
                    fail(report, "init", e.to_string());
                    return None;
                }
            };
            match fill_mlx5(report, &mut vf) {
                Ok(()) => Some(OpenedVf::Mlx5(Box::new(vf))),
                Err(e) => {
                    fail(report, "query", e.to_string());
                    // The device is up: take its pages back before giving up.
                    if let Err(t) = vf.shutdown() {
                        report.error = Some(format!("{e}; teardown: {t}"));
                    }
                    None
                }
            }
        }
    }
}

/// Fills the mlx5 part of the report from a brought-up device: what bring-up saw, the
/// capabilities in force, the vport's MAC and MTU, the link.
pub fn fill_mlx5<R: RegisterIo, D: DmaAllocator, C: Clock>(
    report: &mut ProbeReport,
    vf: &mut Mlx5Device<R, D, C>,
) -> Result<(), Mlx5Error> {
    let info = vf.info().clone();
    let cmdif_rev = (vf.bar().read(mlx5_hw::init_seg::Register::CmdifRevFwSub) >> 16) as u16;
    let mut summary = Mlx5Summary {
        firmware: format!("{}.{}.{}", info.fw_rev.0, info.fw_rev.1, info.fw_rev.2),
        cmdif_rev,
        supported_issi: info.supported_issi,
        boot_pages: info.boot_pages,
        init_pages: info.init_pages,
        ..Mlx5Summary::default()
    };
    if let Some(g) = vf.caps().general() {
        summary.port_type = format!("{:?}", g.port_type());
        summary.num_ports = g.num_ports();
        summary.eth_net_offloads = g.eth_net_offloads();
        summary.nic_flow_table = g.nic_flow_table();
        summary.roce = g.roce();
        summary.log_max_cq = g.log_max_cq();
        summary.log_max_cq_sz = g.log_max_cq_sz();
        summary.log_max_eq = g.log_max_eq();
        summary.log_max_eq_sz = g.log_max_eq_sz();
        summary.log_max_mkey = g.log_max_mkey();
    }
    let (mac, mtu, _inline) = vf.own_vport_context()?;
    summary.mtu = mtu;
    report.mac = Some(mac.to_string());
    report.mac_source = Some(if mac.0 == [0; 6] {
        "none (the PF assigned no MAC)"
    } else {
        "pf"
    });
    report.link = Some(match vf.vport_state()? {
        VportState::Up => "up",
        VportState::Down => "down",
        _ => "other",
    });
    report.mlx5 = Some(summary);
    report.ok = true;
    Ok(())
}

/// Closes a VF the way its family requires: igbvf by dropping the driver; mlx5 by tearing the
/// function down (every page back: `pages_returned` in the report, or stage `teardown`).
pub fn close<D: DeviceAccess, C: Clock>(vf: OpenedVf<D, C>, report: &mut ProbeReport) {
    match vf {
        OpenedVf::Igbvf(vf) => drop(vf),
        OpenedVf::Mlx5(vf) => {
            let held = vf.pages_outstanding();
            match vf.shutdown() {
                Ok(_) => {
                    if let Some(s) = report.mlx5.as_mut() {
                        s.pages_returned = Some(held);
                    }
                }
                Err(e) => {
                    report.ok = false;
                    report.stage = Some("teardown");
                    report.error = Some(e.to_string());
                }
            }
        }
    }
}

/// `vf-probe --pci`: opens the VF through VFIO, brings it up and closes it again.
pub fn probe_vfio(bdf: &str, token: Option<&str>, config: &ProbeConfig) -> ProbeReport {
    let start = std::time::Instant::now();
    let mut report = ProbeReport::default();
    let opened = open_vfio(bdf, token, config, &mut report);
    if opened.is_some() || report.stage == Some("init") {
        report.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    }
    if let Some((dev, vf)) = opened {
        close(vf, &mut report);
        drop(dev);
    }
    report
}

/// The MAC the mlx5 model's PF gives VF 0 in `vf-probe --model --family mlx5`.
pub const MODEL_MLX5_VF_MAC: igb_hw::MacAddress =
    igb_hw::MacAddress([0x02, 0x4d, 0x4c, 0x58, 0x00, 0x00]);

/// `vf-probe --model --family mlx5`: VF 0 of a built-in mlx5 model opened through the VFIO
/// code ([`hac_driver::vfio::model_device::ModelFunction`]), after the model's PF driver gave
/// it `mac`: the same path as `--pci` on a ConnectX VF, on virtual time.
pub fn probe_mlx5_model(config: &ProbeConfig, mac: igb_hw::MacAddress) -> ProbeReport {
    use hac_driver::mlx5::model::Mlx5Model;
    use hac_driver::vfio::model_device::ModelFunction;
    use hac_driver::vfio::{Bdf, VfioDevice};
    use mlx5_model::FunctionId;

    let start = std::time::Instant::now();
    let mut report = ProbeReport {
        target: "model:mlx5-vf0".into(),
        mailbox: "not reached".into(),
        ..ProbeReport::default()
    };
    let model = Mlx5Model::new(mlx5_model::Mlx5Config::default());
    model.enable_vfs(1);
    let pf = model
        .device(FunctionId::Pf, config.mlx5.clone())
        .and_then(|mut pf| pf.set_vf_mac(0, mac).map(|()| pf));
    let pf = match pf {
        Ok(pf) => pf,
        Err(e) => {
            report.stage = Some("pf-agent");
            report.error = Some(e.to_string());
            return report;
        }
    };
    let bdf = Bdf::parse("0000:00:00.1").ok();
    let dev =
        bdf.map(|b| VfioDevice::from_access(b, ModelFunction::new(&model, FunctionId::Vf(0))));
    let dev = match dev {
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            report.stage = Some("open");
            report.error = Some(e.to_string());
            return report;
        }
        None => {
            report.stage = Some("open");
            report.error = Some("bad model address".into());
            return report;
        }
    };
    if let Some(vf) = open_device(&dev, model.clock(), config, &mut report) {
        close(vf, &mut report);
    }
    drop(pf);
    report.elapsed_ms = Some(start.elapsed().as_secs_f64() * 1e3);
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
    report.family = Some(VfFamily::Igbvf.name());
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

#[cfg(test)]
mod tests {
    use hac_driver::vfio::testing::{FakeDevice, FakeDeviceConfig};
    use hac_driver::vfio::{Bdf, VfioDevice};

    use super::*;

    fn fake(vendor_id: u16, device_id: u16) -> VfioDevice<FakeDevice> {
        let config = FakeDeviceConfig {
            vendor_id,
            device_id,
            ..FakeDeviceConfig::mlx5_vf()
        };
        VfioDevice::from_access(Bdf::parse("0000:3b:00.2").unwrap(), FakeDevice::new(config))
            .unwrap()
    }

    #[test]
    fn an_unsupported_function_stops_at_family_naming_its_ids() {
        let dev = fake(0x15B3, 0x1017);
        let mut report = ProbeReport::default();
        let opened = open_device(&dev, WallClock::default(), &probe_config(10), &mut report);
        assert!(opened.is_none());
        assert!(!report.ok);
        assert_eq!(report.stage, Some("family"));
        assert_eq!(report.device_id.as_deref(), Some("0x1017"));
        let e = report.error.clone().unwrap();
        assert!(e.contains("15b3:1017") && e.contains("15b3:101e"), "{e}");
        assert!(report.family.is_none());
        // Nothing was touched: no BAR mapped, no DMA.
        assert_eq!(dev.access().bar(0).unwrap().writes64(), 0);
        // Something the user must fix: exit 2, as for a device that cannot be opened.
        assert_eq!(print_json(&report, false), ExitCode::from(2));
    }

    #[test]
    fn an_82576_vf_gets_the_igbvf_driver() {
        // Plain-memory registers: no PF answers, so the igbvf init fails — after the family
        // picked the igbvf driver and its 16 KiB BAR0 was accepted.
        let dev = VfioDevice::from_access(Bdf::parse("0000:01:10.0").unwrap(), FakeDevice::igbvf())
            .unwrap();
        let mut report = ProbeReport::default();
        let opened = open_device(&dev, WallClock::default(), &probe_config(5), &mut report);
        assert!(opened.is_none());
        assert_eq!(report.family, Some("igbvf"));
        assert_eq!(report.device_id.as_deref(), Some("0x10ca"));
        assert_eq!(report.stage, Some("init"), "{:?}", report.error);
        assert!(report.mlx5.is_none());
        assert_eq!(print_json(&report, false), ExitCode::FAILURE);
    }

    #[test]
    fn an_mlx5_vf_with_a_foreign_init_segment_fails_at_init() {
        // A ConnectX VF whose BAR is plain zeroed memory: `initializing` reads clear but
        // cmdif_rev reads 0, which the driver refuses — the mlx5 driver was picked.
        let dev = fake(0x15B3, 0x101E);
        let mut report = ProbeReport::default();
        let config = ProbeConfig {
            mlx5: Mlx5Config {
                init_timeout_ns: 1_000_000,
                command_timeout_ns: 1_000_000,
                ..Mlx5Config::default()
            },
            ..probe_config(10)
        };
        let opened = open_device(&dev, WallClock::default(), &config, &mut report);
        assert!(opened.is_none());
        assert_eq!(report.family, Some("mlx5"));
        assert_eq!(report.stage, Some("init"));
        let e = report.error.unwrap();
        assert!(
            e.contains("command interface revision 0, expected 5"),
            "{e}"
        );
    }

    #[test]
    fn the_mlx5_model_probe_reports_firmware_caps_mac_link_and_teardown() {
        let r = probe_mlx5_model(&probe_config(10), MODEL_MLX5_VF_MAC);
        assert!(r.ok, "{:?}", r.error);
        assert_eq!(r.family, Some("mlx5"));
        assert_eq!(
            (r.vendor_id.as_deref(), r.device_id.as_deref()),
            (Some("0x15b3"), Some("0x101e"))
        );
        assert_eq!(r.mac, Some(MODEL_MLX5_VF_MAC.to_string()));
        assert_eq!(r.mac_source, Some("pf"));
        assert_eq!(r.link, Some("up"));
        assert_eq!(r.mailbox, "n/a");
        let s = r.mlx5.unwrap();
        assert_eq!(s.cmdif_rev, 5);
        assert_eq!(s.firmware.split('.').count(), 3);
        assert_eq!(s.port_type, "Ethernet");
        assert!(s.eth_net_offloads && s.nic_flow_table);
        assert_eq!(
            s.pages_returned,
            Some((s.boot_pages + s.init_pages) as usize),
            "every page given at bring-up came back"
        );
    }
}

//! The VFIO side of the referee's commands (`hac-lab pf-switch`, `hac-lab vf-hac-check`, `hac
//! vf-smoltcp`): opening the PF and VFs on a Linux host — in CI, a QEMU guest with an emulated
//! 82576 (docs/qemu.md) — and running the cases of [`super`] on them. Each command prints one
//! JSON object; `ok` says whether every check passed.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hac_driver::backend::{Clock, RegisterIo, WallClock};
use hac_driver::mailbox::MailboxConfig;
use hac_driver::pf::{PfAgent, PfConfig};
use hac_driver::softhac::SoftHac;
use hac_driver::vf::{MacSource, VfConfig, VfDriver};
use hac_driver::vfio::{DeviceAccess, HostDevice, VfFamily, VfioBar, VfioDevice, VfioDma};
use igb_hw::regs::{STATUS, pf};
use igb_hw::{MacAddress, VfIndex};
use serde::Serialize;

use super::{
    HacCheckPlan, HacCheckReport, PeerReading, RateLimitReport, SmoltcpEcho, SmoltcpReport,
    SwitchPlan, SwitchReport, clear_rate_limits, hac_check, rate_limit_registers, switch_exchange,
};

type Window = <HostDevice as DeviceAccess>::Window;
type Mapper = <HostDevice as DeviceAccess>::Mapper;
/// A VF driver through VFIO.
pub type VfioVf = VfDriver<VfioBar<Window>, VfioDma<Mapper>, WallClock>;

/// Checks a PCI address at the command line.
fn parse_bdf(s: &str) -> Result<String, String> {
    hac_driver::vfio::Bdf::parse(s)
        .map(|b| b.to_string())
        .map_err(|e| e.to_string())
}

/// `a.b.c.d/len`.
fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, p) = s.split_once('/').unwrap_or((s, "24"));
    let ip: Ipv4Addr = a.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let p: u8 = p.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if p > 32 {
        return Err(format!("{s:?}: prefix length above 32"));
    }
    Ok((ip, p))
}

/// The VF every command drives.
#[derive(clap::Args, Clone, Debug)]
pub struct VfArgs {
    /// PCI address of the VF (bound to vfio-pci), e.g. 0000:01:10.2.
    #[arg(long, value_name = "BDF", value_parser = parse_bdf)]
    pub pci: String,
    /// VF token (UUID) when the PF is bound to vfio-pci.
    #[arg(long, value_name = "UUID")]
    pub vf_token: Option<String>,
    /// MAC to propose with SET_MAC_ADDR when the PF assigns none.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<MacAddress>,
    /// Mailbox timeout in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
}

/// Arguments of `hac-lab pf-switch`.
#[derive(clap::Args, Clone, Debug)]
pub struct PfSwitchArgs {
    /// PCI address of the PF, bound to vfio-pci (module option enable_sriov=1), VFs enabled.
    #[arg(long, value_name = "BDF", value_parser = parse_bdf)]
    pub pf: String,
    /// The two VFs (bound to vfio-pci), in VF order: `--vf 0000:01:10.0 --vf 0000:01:10.2`.
    #[arg(long, value_name = "BDF", value_parser = parse_bdf, num_args = 1, required = true)]
    pub vf: Vec<String>,
    /// The VF token (UUID) set when opening the PF; the VFs are opened with it.
    #[arg(long, value_name = "UUID")]
    pub vf_token: String,
    /// Administrative MACs of the VFs, in VF order (as `ip link set <pf> vf N mac`).
    #[arg(long, value_name = "MAC", default_values = ["52:54:00:12:00:20", "52:54:00:12:00:21"])]
    pub vf_mac: Vec<MacAddress>,
    /// Frames each way.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// Payload bytes per frame.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(16..=1400))]
    pub payload_len: u64,
    /// Time allowed per direction, ms.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
}

/// Arguments of `hac-lab vf-hac-check`.
#[derive(clap::Args, Clone, Debug)]
pub struct HacCheckArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub vf: VfArgs,
    /// The peer's MAC (a VF on the same adapter whose IP stack answers ping).
    #[arg(long, value_name = "MAC")]
    pub peer_mac: MacAddress,
    /// Our IPv4 address (the peer must resolve it to our MAC: static neighbour entry).
    #[arg(long, value_name = "IPV4")]
    pub ip: Ipv4Addr,
    /// The peer's IPv4 address.
    #[arg(long, value_name = "IPV4")]
    pub peer_ip: Ipv4Addr,
    /// Echo requests per epoch.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// Payload bytes per request.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(16..=1400))]
    pub payload_len: u64,
    /// Wait before each reading of the peer's counters, ms (igbvf refreshes rx_packets every
    /// 2 s).
    #[arg(long, default_value_t = 300)]
    pub settle_ms: u64,
    /// Time allowed for the echo replies after a commit, ms.
    #[arg(long, default_value_t = 5000)]
    pub reply_timeout_ms: u64,
    /// The peer's netdev in this system: its statistics/rx_packets is checked at every step.
    #[arg(long, value_name = "IF")]
    pub peer_netdev: Option<String>,
    /// An snmp file (/proc/net/snmp) whose Icmp InEchos counts the peer's echo requests.
    #[arg(long, value_name = "PATH")]
    pub peer_snmp: Option<std::path::PathBuf>,
}

/// Arguments of `hac-lab vf-smoltcp`.
#[derive(clap::Args, Clone, Debug)]
pub struct SmoltcpArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub vf: VfArgs,
    /// Our address and prefix, e.g. 10.77.0.2/24.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub ip: (Ipv4Addr, u8),
    /// TCP echo port.
    #[arg(long, default_value_t = 7)]
    pub echo_port: u16,
    /// How long to serve, ms.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub duration_ms: u64,
    /// Stop after this many TCP connections were closed (0: serve the whole duration).
    #[arg(long, default_value_t = 0)]
    pub connections: u64,
}

/// A VF as the report shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VfSummary {
    /// PCI address.
    pub pci: String,
    /// MAC in use.
    pub mac: String,
    /// `pf` or `driver`.
    pub mac_source: &'static str,
}

/// Common head of every report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Head {
    /// What was opened.
    pub target: String,
    /// Every check passed.
    pub ok: bool,
    /// Where it stopped (`open`, `init`, `pf-agent`, `case`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<&'static str>,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The VFs.
    pub vfs: Vec<VfSummary>,
    /// Total time, ms.
    pub elapsed_ms: f64,
}

impl Head {
    fn fail(&mut self, stage: &'static str, e: impl ToString) {
        self.ok = false;
        self.stage = Some(stage);
        self.error = Some(e.to_string());
    }
}

/// What the PF agent knew about a VF at the end.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentVf {
    /// VF number.
    pub vf: usize,
    /// MAC the PF has for it.
    pub mac: Option<String>,
    /// Clear to send.
    pub cts: bool,
    /// VF_RESET handshakes.
    pub resets: u64,
    /// VF reset events (VFLRE).
    pub reset_events: u64,
    /// Messages handled.
    pub messages: u64,
    /// Messages refused.
    pub nacks: u64,
}

/// `hac-lab pf-switch`'s report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PfSwitchOutput {
    /// Common head.
    #[serde(flatten)]
    pub head: Head,
    /// PF device id.
    pub pf_device_id: Option<String>,
    /// Time from the PF agent's bring-up to STATUS.LU, ms.
    pub link_up_ms: Option<f64>,
    /// The PF agent's view.
    pub agent: Vec<AgentVf>,
    /// VF0 → VF1, VF1 → VF0.
    pub directions: Vec<SwitchReport>,
    /// The VF rate limits and priorities programmed before the exchange (issue 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimitReport>,
}

/// `hac-lab vf-hac-check`'s report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HacCheckOutput {
    /// Common head.
    #[serde(flatten)]
    pub head: Head,
    /// The steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hac: Option<HacCheckReport>,
}

/// `hac-lab vf-smoltcp`'s report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SmoltcpOutput {
    /// Common head.
    #[serde(flatten)]
    pub head: Head,
    /// What the stack did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoltcp: Option<SmoltcpReport>,
}

fn vf_config(timeout_ms: u64, mac: Option<MacAddress>) -> VfConfig {
    VfConfig {
        tx_ring_size: 256,
        rx_ring_size: 256,
        fallback_mac: mac,
        mailbox: MailboxConfig {
            timeout_ns: timeout_ms * 1_000_000,
            ..MailboxConfig::default()
        },
        ..VfConfig::default()
    }
}

fn summary(pci: &str, vf: &VfioVf) -> VfSummary {
    VfSummary {
        pci: pci.to_string(),
        mac: vf.mac().to_string(),
        mac_source: match vf.mac_source() {
            MacSource::Pf => "pf",
            MacSource::Driver => "driver",
        },
    }
}

fn open_device(bdf: &str, token: Option<&str>) -> Result<VfioDevice, (&'static str, String)> {
    VfioDevice::open(bdf, token).map_err(|e| ("open", e.to_string()))
}

/// Opens a VF and brings it up. The device is returned too: it must outlive the driver.
fn open_vf(
    bdf: &str,
    token: Option<&str>,
    config: VfConfig,
) -> Result<(VfioVf, VfioDevice), (&'static str, String)> {
    let dev = open_device(bdf, token)?;
    // These cases speak the igbvf mailbox: any other family is refused by name.
    match dev.family() {
        Ok(VfFamily::Igbvf) => {}
        Ok(other) => {
            return Err((
                "family",
                format!("{bdf} is an {other} VF; this case drives igbvf VFs (82576/I350)"),
            ));
        }
        Err(e) => return Err(("family", e.to_string())),
    }
    let bar = dev
        .register_bar(VfFamily::Igbvf)
        .map_err(|e| ("open", e.to_string()))?;
    let vf = VfDriver::new(bar, dev.dma(), WallClock::default(), config)
        .map_err(|e| ("init", format!("{bdf}: {e}")))?;
    Ok((vf, dev))
}

/// Opens and brings up the VF of a single-VF case; on failure the head says why.
fn open_case_vf(args: &VfArgs, head: &mut Head) -> Option<(VfioVf, VfioDevice)> {
    match open_vf(
        &args.pci,
        args.vf_token.as_deref(),
        vf_config(args.timeout_ms, args.mac),
    ) {
        Ok((vf, dev)) => {
            head.vfs.push(summary(&args.pci, &vf));
            Some((vf, dev))
        }
        Err((stage, e)) => {
            head.fail(stage, e);
            None
        }
    }
}

/// Case 3: the PF on vfio-pci driven by our PF agent (polled on its own thread), two VFs
/// driven by our VF driver, frames both ways through the internal switch.
pub fn pf_switch(args: &PfSwitchArgs) -> PfSwitchOutput {
    let start = Instant::now();
    let mut out = PfSwitchOutput {
        head: Head {
            target: args.pf.clone(),
            ..Head::default()
        },
        ..PfSwitchOutput::default()
    };
    if args.vf.len() != 2 {
        out.head.fail("args", "give exactly two --vf");
        return out;
    }
    let pf_dev = match open_device(&args.pf, Some(&args.vf_token)) {
        Ok(d) => d,
        Err((stage, e)) => {
            out.head.fail(stage, e);
            return out;
        }
    };
    out.pf_device_id = pf_dev.ids().ok().map(|i| format!("{:#06x}", i.device));
    let agent = match pf_dev.bar0().map_err(|e| e.to_string()).and_then(|bar| {
        PfAgent::new(
            bar,
            WallClock::default(),
            PfConfig {
                num_vfs: args.vf.len(),
                ..PfConfig::default()
            },
        )
        .map_err(|e| e.to_string())
    }) {
        Ok(a) => a,
        Err(e) => {
            out.head.fail("pf-agent", e);
            return out;
        }
    };
    let agent = Arc::new(Mutex::new(agent));
    {
        let mut a = agent.lock().unwrap_or_else(|p| p.into_inner());
        // The agent took `args.vf.len()` VFs, so all of them are VF indices.
        for (vf, mac) in VfIndex::all(args.vf.len()).zip(&args.vf_mac) {
            if let Err(e) = a.set_vf_mac(vf, Some(*mac)) {
                drop(a);
                out.head.fail("pf-agent", e);
                return out;
            }
        }
    }
    // Link: QEMU raises STATUS.LU ~500 ms after the agent restarted auto-negotiation, and
    // receives nothing (not even VF-to-VF) while it is down.
    let link_start = Instant::now();
    loop {
        let up = agent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bar()
            .read(pf::STATUS)
            .is_set(STATUS::LU);
        if up {
            out.link_up_ms = Some(link_start.elapsed().as_secs_f64() * 1e3);
            break;
        }
        if link_start.elapsed() > Duration::from_secs(5) {
            out.head
                .fail("pf-agent", "the PF link did not come up within 5 s");
            return out;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                agent.lock().unwrap_or_else(|p| p.into_inner()).poll();
                std::thread::sleep(Duration::from_micros(20));
            }
        });
        pf_switch_vfs(args, &mut out, &agent);
        stop.store(true, Ordering::Relaxed);
    });
    let a = agent.lock().unwrap_or_else(|p| p.into_inner());
    out.agent = VfIndex::all(a.num_vfs())
        .filter_map(|vf| {
            a.vf(vf).map(|i| AgentVf {
                vf: vf.get(),
                mac: i.mac.map(|m| m.to_string()),
                cts: i.cts,
                resets: i.resets,
                reset_events: i.reset_events,
                messages: i.messages,
                nacks: i.nacks,
            })
        })
        .collect();
    out.head.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    out
}

/// The rate limit the case programs on each VF while the frames are exchanged, Mb/s: Linux's
/// arithmetic with a remainder (1000 / 300), and high enough for the exchange on any adapter.
const CASE_RATE_MBPS: u32 = 300;

fn pf_switch_vfs<R: RegisterIo, C: Clock>(
    args: &PfSwitchArgs,
    out: &mut PfSwitchOutput,
    agent: &Mutex<PfAgent<R, C>>,
) {
    let mut vfs = Vec::new();
    for bdf in &args.vf {
        match open_vf(bdf, Some(&args.vf_token), vf_config(1000, None)) {
            Ok(v) => {
                out.head.vfs.push(summary(bdf, &v.0));
                vfs.push(v);
            }
            Err((stage, e)) => {
                out.head.fail(stage, e);
                return;
            }
        }
    }
    let plan = SwitchPlan {
        count: args.count,
        payload_len: args.payload_len as usize,
        timeout: Duration::from_millis(args.timeout_ms),
        ..SwitchPlan::default()
    };
    let mut problems = Vec::new();
    // After the VFs' bring-up (which rewrites their TXDCTL), as Linux would on `ip link set
    // PF vf N max_tx_rate 300`; the exchange below runs with them set.
    let limits = rate_limit_registers(
        &mut agent.lock().unwrap_or_else(|p| p.into_inner()),
        vfs.len(),
        CASE_RATE_MBPS,
    );
    problems.extend(limits.problems.iter().cloned());
    out.rate_limits = Some(limits);
    for (a, b) in [(0, 1), (1, 0)] {
        let (x, y) = vfs.split_at_mut(1);
        let (src, dst) = if a == 0 {
            (&mut x[0].0, &mut y[0].0)
        } else {
            (&mut y[0].0, &mut x[0].0)
        };
        match switch_exchange(src, dst, &plan) {
            Ok(r) => {
                problems.extend(r.problems(&plan));
                out.directions.push(r);
            }
            Err(e) => {
                out.head.fail("case", format!("VF{a} > VF{b}: {e}"));
                return;
            }
        }
    }
    problems.extend(clear_rate_limits(
        &mut agent.lock().unwrap_or_else(|p| p.into_inner()),
        vfs.len(),
    ));
    for (i, v) in out.head.vfs.iter().enumerate() {
        if args.vf_mac.get(i).map(|m| m.to_string()).as_ref() != Some(&v.mac) {
            problems.push(format!(
                "VF{i} uses {} instead of its administrative MAC",
                v.mac
            ));
        }
    }
    if problems.is_empty() {
        out.head.ok = true;
    } else {
        out.head.fail("case", problems.join("; "));
    }
}

/// Icmp InEchos from an snmp file (/proc/net/snmp format: a header line, then a value line).
fn read_in_echos(path: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("Icmp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let i = names.iter().position(|n| *n == "InEchos")?;
    values.get(i)?.parse().ok()
}

fn read_counter(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Case 4: SoftHac on a VF, checked against a peer whose counters are in this system's sysfs
/// and /proc (a kernel igbvf VF on the same adapter).
pub fn hac_check_vfio(args: &HacCheckArgs) -> HacCheckOutput {
    let start = Instant::now();
    let mut out = HacCheckOutput {
        head: Head {
            target: args.vf.pci.clone(),
            ..Head::default()
        },
        hac: None,
    };
    let Some((vf, _dev)) = open_case_vf(&args.vf, &mut out.head) else {
        return out;
    };
    let plan = HacCheckPlan {
        peer_mac: args.peer_mac,
        ip: args.ip,
        peer_ip: args.peer_ip,
        per_epoch: args.count,
        payload_len: args.payload_len as usize,
        settle: Duration::from_millis(args.settle_ms),
        reply_timeout: Duration::from_millis(args.reply_timeout_ms),
    };
    let rx_path = args.peer_netdev.as_ref().map(|i| {
        std::path::Path::new("/sys/class/net")
            .join(i)
            .join("statistics/rx_packets")
    });
    let snmp = args.peer_snmp.clone();
    let mut peer = || PeerReading {
        rx_packets: rx_path.as_deref().and_then(read_counter),
        in_echos: snmp.as_deref().and_then(read_in_echos),
    };
    let mut soft = SoftHac::new(vec![vf]);
    match hac_check(&mut soft, &plan, &mut peer) {
        Ok(r) => {
            out.head.ok = r.ok;
            if !r.ok {
                out.head.stage = Some("case");
                out.head.error = Some(r.problems.join("; "));
            }
            out.hac = Some(r);
        }
        Err(e) => out.head.fail("case", e),
    }
    out.head.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    out
}

/// Case 5: smoltcp on a VF for `--duration-ms` (or until `--connections` closed).
pub fn smoltcp_vfio(args: &SmoltcpArgs) -> SmoltcpOutput {
    let start = Instant::now();
    let mut out = SmoltcpOutput {
        head: Head {
            target: args.vf.pci.clone(),
            ..Head::default()
        },
        smoltcp: None,
    };
    let Some((vf, _dev)) = open_case_vf(&args.vf, &mut out.head) else {
        return out;
    };
    let (ip, prefix) = args.ip;
    let result = SmoltcpEcho::new(vf, ip, prefix, args.echo_port).and_then(|mut echo| {
        // Tell a waiting script that the stack is up (stderr: stdout is the JSON).
        eprintln!("hac-lab vf-smoltcp: listening on {ip}:{}", args.echo_port);
        let r = echo.run_for(Duration::from_millis(args.duration_ms), args.connections);
        let report = echo.report();
        r.map(|()| report)
    });
    match result {
        Ok(r) => {
            out.head.ok = args.connections == 0 || r.connections_closed >= args.connections;
            if !out.head.ok {
                out.head.stage = Some("case");
                out.head.error = Some(format!(
                    "{} of {} TCP connections completed",
                    r.connections_closed, args.connections
                ));
            }
            out.smoltcp = Some(r);
        }
        Err(e) => out.head.fail("case", e),
    }
    out.head.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    out
}

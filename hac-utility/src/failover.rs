//! `hac failover-demo`: builds the lab (network namespaces, a bridge, two TAPs, a veth into the
//! client's namespace), starts the backup and the primary node, runs the Linux-TCP client,
//! kills the primary with SIGKILL at a seeded random point, checks the client's view, writes the
//! report directory and tears the lab down — also when anything fails on the way.
//!
//! The nodes and the client are the `hac-ha` crate's, run by this same binary as the hidden
//! subcommands `hac ha-node` ([`NodeArgs`]) and `hac ha-client` ([`ClientArgs`]) inside the lab's
//! namespaces. The orchestration stays in the product: it writes the product's report
//! directory with the product's charts ([`crate::plot`]) and spawns the product binary.
//!
//! The lab: two hosts and the client's network, each a network namespace named after this
//! process (`hac-fo-<pid>p`, `hac-fo-<pid>b`, `hac-fo-<pid>c`), so nothing touches the host's
//! networking and deleting the namespaces removes every interface:
//!
//! ```text
//!   hac-fo-<pid>p (primary host)              hac-fo-<pid>c (client network)
//!     primary ─ model NIC ─────── tapp ─────────┐
//!     lan 192.0.2.201 ════════════════ lanp ────┤
//!     repl 198.51.100.1                         br0  192.0.2.100 client
//!       ║ replication link (its own veth)       │    192.0.2.250 arbiter
//!     repl 198.51.100.2                         │
//!     lan 192.0.2.202 ════════════════ lanb ────┤
//!     backup  ─ model NIC ─────── tapb ─────────┘
//!   hac-fo-<pid>b (backup host)
//! ```
//!
//! Each node opens its TAP in its own namespace; the demo then moves the TAP to the switch
//! (`br0`), as a NIC's cable is plugged into a switch port ([`Lab::plug`]).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::builder::TypedValueParser as _;
use crossbeam_channel::{Receiver, Sender, unbounded};
use serde::Serialize;
use serde_json::{Value, json};

use hac_ha::arbiter::ArbiterConfig;
use hac_ha::client::ClientConfig;
use hac_ha::node::{NodeConfig, REJOIN_NODE_ID, Role, unix_us};

use crate::plot;
use crate::progress::Progress;
use crate::report::Percentiles;

/// `hac failover-demo` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to write the report.
    #[arg(long, value_name = "DIR", default_value = "out/failover")]
    pub out: PathBuf,
    /// Seed of the kill point (and of the service).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests the client streams.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(20..=1_000_000))]
    pub requests: u64,
    /// Pause between requests, ms.
    #[arg(long, default_value_t = 10)]
    pub interval_ms: u64,
    /// Most requests outstanding at once.
    #[arg(long, default_value_t = 4)]
    pub window: u64,
    /// Epoch (checkpoint interval), ms.
    #[arg(long, default_value_t = 20)]
    pub epoch_ms: u64,
    /// Heartbeat interval, ms.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_ms: u64,
    /// Peer declared lost after this long without a message, ms.
    #[arg(long, default_value_t = 50)]
    pub timeout_ms: u64,
    /// Background frames per second on each node's plain VF.
    #[arg(long, default_value_t = 500)]
    pub background_pps: u64,
    /// What fails at the kill point: the primary (the backup must take over), the backup (the
    /// primary must go unprotected and keep serving), the replication link (both alive: the
    /// primary keeps serving alone, the backup must stay silent), the arbiter (nothing
    /// changes), the link and then the primary (`--then-kill-ms` later), or none.
    #[arg(long, value_enum, default_value_t = Victim::Primary)]
    pub kill: Victim,
    /// With `--kill link-then-primary`: the primary is killed this long after the link cut, ms.
    #[arg(long, default_value_t = 1000)]
    pub then_kill_ms: u64,
    /// Lease the arbiter grants, ms.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub lease_ms: u64,
    /// A node counts its lease as ending this long before `send time + lease`, ms.
    #[arg(long, default_value_t = 10)]
    pub lease_margin_ms: u64,
    /// A node serving alone whose lease lapsed holds its output this long for a fresh grant
    /// before it fences itself, ms.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub lease_grace_ms: u64,
    /// After the backup's takeover, stop the arbiter (SIGSTOP) for this long, then let it go
    /// on (SIGCONT), ms: the node serving alone must hold its output through the lapse and
    /// release it behind the next grant, without fencing when this is within the grace.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub freeze_arbiter_ms: Option<u64>,
    /// Run the two nodes with real-time round-robin priority N (`chrt -r N`, as cluster
    /// managers run their heartbeat: a loaded host must not starve it into a false takeover);
    /// 0 runs them with normal scheduling.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=99))]
    pub rt_priority: u32,
    /// Re-protection (with `--kill primary`): after the takeover, restart the lost primary's
    /// host as a backup (`hac ha-node --role backup --join`) that catches up with the new
    /// primary; the service must be checkpointed again and the client's connection survive.
    #[arg(long)]
    pub reprotect: bool,
    /// With `--reprotect`: takeover → start of the new backup, ms (the "restart").
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub rejoin_delay_ms: u64,
    /// With `--reprotect`: this long after protection resumed, SIGKILL the new primary as
    /// well; the joined backup must take over — only once the arbiter grants it the lease —
    /// and the client's connection survive, ms.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub kill_new_primary_ms: Option<u64>,
}

/// `hac ha-node` arguments: one host of the failover pair ([`hac_ha::node`]).
#[derive(Clone, Debug, clap::Args)]
pub struct NodeArgs {
    /// primary or backup.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["primary", "backup"])
        .try_map(|s| s.parse::<Role>()))]
    pub role: Role,
    /// The TAP interface the model's wire port is bridged to (must exist and be up).
    #[arg(long)]
    pub tap: String,
    /// Replication link, backup: listen on this address (this host's end of the link).
    #[arg(long, required_if_eq("role", "backup"))]
    pub repl_listen: Option<std::net::SocketAddr>,
    /// Replication link, primary: connect to the backup at this address.
    #[arg(long, required_if_eq("role", "primary"))]
    pub repl_peer: Option<std::net::SocketAddr>,
    /// The lease arbiter (`hac ha-arbiter`, UDP); without one the heartbeat timeout alone
    /// decides, and a replication-link failure makes a split brain.
    #[arg(long)]
    pub arbiter: Option<std::net::SocketAddr>,
    /// A granted lease ends this long before `send time + lease` in this node's clock, ms.
    #[arg(long, default_value_t = 10)]
    pub lease_margin_ms: u64,
    /// Serving alone with a lapsed lease, hold the output this long for a fresh grant before
    /// fencing, ms.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub lease_grace_ms: u64,
    /// The service's IPv4 address.
    #[arg(long, default_value = "192.0.2.10")]
    pub service_ip: std::net::Ipv4Addr,
    /// The service's TCP port.
    #[arg(long, default_value_t = 7000)]
    pub port: u16,
    /// The service's random seed (the same on both nodes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Epoch (checkpoint interval), ms.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub epoch_ms: u64,
    /// Heartbeat interval, ms.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub heartbeat_ms: u64,
    /// Peer declared lost after this long without a message from it, ms.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// Background frames per second on the plain VF.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub background_pps: u64,
    /// On takeover, advance the service clock by this much (smoltcp's minimum retransmission
    /// timeout is 1 s), so output the client may have missed is resent at once, ms.
    #[arg(long, default_value_t = 1000)]
    pub takeover_clock_jump_ms: u64,
    /// Directory for `<role>-wire.pcap` and `<role>-packets.csv`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Backup only: join the live node at this address after a takeover (re-protection)
    /// instead of listening for a primary.
    #[arg(long, value_name = "ADDR")]
    pub join: Option<std::net::SocketAddr>,
    /// Bound of the step history kept for a backup that joins later, MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub history_mib: u64,
}

impl TryFrom<NodeArgs> for NodeConfig {
    type Error = String;
    fn try_from(a: NodeArgs) -> Result<NodeConfig, String> {
        let link = match a.role {
            Role::Backup => a.repl_listen.ok_or("a backup needs --repl-listen")?,
            Role::Primary => a.repl_peer.ok_or("a primary needs --repl-peer")?,
        };
        Ok(NodeConfig {
            role: a.role,
            tap: a.tap,
            link,
            arbiter: a.arbiter,
            lease_margin_ms: a.lease_margin_ms,
            lease_grace_ms: a.lease_grace_ms,
            service_ip: a.service_ip,
            port: a.port,
            seed: a.seed,
            epoch_ms: a.epoch_ms,
            heartbeat_ms: a.heartbeat_ms,
            timeout_ms: a.timeout_ms,
            background_pps: a.background_pps,
            takeover_clock_jump_ms: a.takeover_clock_jump_ms,
            out: a.out,
            join: a.join,
            history_bytes: a.history_mib << 20,
        })
    }
}

/// `hac ha-arbiter` arguments: the lease arbiter ([`hac_ha::arbiter`]).
#[derive(Clone, Debug, clap::Args)]
pub struct ArbiterArgs {
    /// UDP address to serve.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Lease length, ms.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub lease_ms: u64,
}

impl From<ArbiterArgs> for ArbiterConfig {
    fn from(a: ArbiterArgs) -> ArbiterConfig {
        ArbiterConfig {
            listen: a.listen,
            lease_ms: a.lease_ms,
        }
    }
}

/// `hac ha-client` arguments: the demo's checking TCP client ([`hac_ha::client`]).
#[derive(Clone, Debug, clap::Args)]
pub struct ClientArgs {
    /// The service.
    #[arg(long, default_value = "192.0.2.10:7000")]
    pub connect: std::net::SocketAddr,
    /// Requests to send.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub requests: u64,
    /// Pause between requests, ms.
    #[arg(long, default_value_t = 10)]
    pub interval_ms: u64,
    /// Most requests outstanding at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub window: u64,
    /// Give up when no answer arrives for this long, ms.
    #[arg(long, default_value_t = 20_000)]
    pub timeout_ms: u64,
}

impl From<ClientArgs> for ClientConfig {
    fn from(a: ClientArgs) -> ClientConfig {
        ClientConfig {
            connect: a.connect,
            requests: a.requests,
            interval_ms: a.interval_ms,
            window: a.window,
            timeout_ms: a.timeout_ms,
        }
    }
}

/// What the demo breaks at the kill point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Victim {
    /// SIGKILL to the primary: failover.
    Primary,
    /// SIGKILL to the backup: the primary runs unprotected.
    Backup,
    /// The replication link goes down, both hosts live: the primary serves alone, the backup
    /// stays silent.
    Link,
    /// SIGKILL to the arbiter: the protected pair goes on as before.
    Arbiter,
    /// The link goes down, then (`--then-kill-ms` later) SIGKILL to the primary: the backup
    /// takes over only if the arbiter grants it the lease.
    LinkThenPrimary,
    /// Nothing.
    None,
}

impl Victim {
    fn name(self) -> &'static str {
        match self {
            Victim::Primary => "primary",
            Victim::Backup => "backup",
            Victim::Link => "link",
            Victim::Arbiter => "arbiter",
            Victim::LinkThenPrimary => "link-then-primary",
            Victim::None => "none",
        }
    }

    /// The process killed at the kill point, if any.
    fn process(self) -> Option<&'static str> {
        match self {
            Victim::Primary => Some("primary"),
            Victim::Backup => Some("backup"),
            Victim::Arbiter => Some("arbiter"),
            Victim::Link | Victim::LinkThenPrimary | Victim::None => None,
        }
    }

    /// Whether the replication link is cut at the kill point.
    fn cuts_link(self) -> bool {
        matches!(self, Victim::Link | Victim::LinkThenPrimary)
    }
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Something in the lab could not be set up or a process could not be run.
    #[error("{0}")]
    Setup(String),
    /// The run went wrong (a process died, a timeout).
    #[error("{0}")]
    Run(String),
    /// Interrupted by SIGINT/SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

const SERVICE_ADDR: &str = "192.0.2.10:7000";
/// The service's address, as the switch's port mirror matches it.
const SERVICE_IP: &str = "192.0.2.10";
const CLIENT_CIDR: &str = "192.0.2.100/24";
/// The arbiter's address on the client network, and the hosts' own addresses there.
const ARBITER_CIDR: &str = "192.0.2.250/24";
const ARBITER_ADDR: &str = "192.0.2.250:7200";
const PRIMARY_HOST_CIDR: &str = "192.0.2.201/24";
const BACKUP_HOST_CIDR: &str = "192.0.2.202/24";
/// The replication link's two ends (its own veth between the host namespaces).
const REPL_PRIMARY_CIDR: &str = "198.51.100.1/30";
const REPL_BACKUP_CIDR: &str = "198.51.100.2/30";
const REPL_BACKUP_ADDR: &str = "198.51.100.2:7100";
/// The primary host's end: where a node restarted there (`--reprotect`) listens.
const REPL_PRIMARY_ADDR: &str = "198.51.100.1:7100";
const NS_PREFIX: &str = "hac-fo-";
/// The client network bridge's own MAC (locally administered).
const CLIENT_BRIDGE_MAC: &str = "02:00:5e:c0:02:fe";
/// With `--kill link-then-primary` and no takeover (the backup is not in sync), the run ends
/// this long after the primary's kill.
const LOST_SERVICE_WATCH: Duration = Duration::from_millis(1500);
/// With `--freeze-arbiter-ms`: the arbiter is stopped this long after the takeover.
const FREEZE_AFTER_TAKEOVER: Duration = Duration::from_millis(300);

/// The checks of `--freeze-arbiter-ms`: the backup, serving alone, saw its lease lapse while
/// the arbiter was stopped; within the grace it held its output and released it behind the
/// next grant (no fence, nothing dropped), past the grace it fenced itself and was unfenced by
/// a grant after the arbiter went on.
fn check_lapse(
    freeze_ms: u64,
    grace_ms: u64,
    took_over: bool,
    frozen_us: Option<(u64, u64)>,
    backup_exit: Option<&Value>,
    errors: &mut Vec<String>,
) {
    if !took_over {
        errors.push("--freeze-arbiter-ms: no takeover, so nothing served alone".into());
        return;
    }
    if frozen_us.is_none_or(|(_, thawed)| thawed == 0) {
        errors.push("--freeze-arbiter-ms: the arbiter was not stopped and let go on".into());
        return;
    }
    let Some(exit) = backup_exit else {
        errors.push("--freeze-arbiter-ms: the backup's exit line is missing".into());
        return;
    };
    let lapse = |k: &str| {
        exit.get("lapse")
            .and_then(|l| l.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    if lapse("lapses") == 0 {
        errors.push(format!(
            "the arbiter stopped for {freeze_ms} ms, but the backup's lease never lapsed"
        ));
    }
    if lapse("dropped_over_bound") > 0 {
        errors.push(format!(
            "the backup dropped {} frames over the lapse bound",
            lapse("dropped_over_bound")
        ));
    }
    if exit.get("fenced").and_then(Value::as_bool) != Some(false) {
        errors
            .push("the backup ended fenced: no grant unfenced it after the arbiter went on".into());
    }
    if freeze_ms <= grace_ms {
        if lapse("regained") == 0 || lapse("released") == 0 {
            errors.push(
                "the backup's lapse was not ended by a grant with its held frames released".into(),
            );
        }
        if lapse("expired") > 0 || exit.get("fenced_dropped").and_then(Value::as_u64) != Some(0) {
            errors.push(format!(
                "the backup fenced itself within the grace ({grace_ms} ms) or dropped frames under the service MAC"
            ));
        }
    } else if lapse("expired") == 0 {
        errors.push(format!(
            "the arbiter stopped for {freeze_ms} ms, past the grace ({grace_ms} ms), but the backup never fenced itself"
        ));
    }
}

/// Sends signal `sig` (a name `kill` knows: STOP, CONT) to process `pid`.
fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A small deterministic generator (SplitMix64) for the kill point.
pub struct SplitMix(u64);

impl SplitMix {
    /// Seeded.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (`lo` if empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }
}

/// Where the primary is killed: after answer `after_answer`, plus `extra_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct KillPlan {
    /// Answers the client must have received first.
    pub after_answer: u64,
    /// Then this long, µs (anywhere inside an epoch).
    pub extra_us: u64,
}

/// The kill point for `seed`: after 25–60 % of the requests, plus up to one epoch.
pub fn kill_plan(seed: u64, requests: u64, epoch_ms: u64) -> KillPlan {
    let mut rng = SplitMix::new(seed);
    KillPlan {
        after_answer: rng.range(requests / 4, requests * 3 / 5).max(1),
        extra_us: rng.range(0, epoch_ms.max(1) * 1000),
    }
}

fn ip(args: &[&str]) -> Result<(), DemoError> {
    iproute2("ip", args)
}

fn tc(args: &[&str]) -> Result<(), DemoError> {
    iproute2("tc", args)
}

/// Runs one of iproute2's tools; its stderr becomes the error.
fn iproute2(tool: &str, args: &[&str]) -> Result<(), DemoError> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DemoError::Setup(format!("cannot run `{tool}`: {e} (iproute2 is needed)")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DemoError::Setup(format!(
            "`{tool} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Deletes `hac-fo-<pid>` namespaces whose process is gone (left by a run that was killed).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid = rest.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The lab: namespaces and the processes inside; dropping it kills what still runs and deletes
/// the namespaces (with every interface in them).
struct Lab {
    primary_ns: String,
    backup_ns: String,
    client_ns: String,
    children: Vec<(String, Child)>,
    made: Vec<String>,
}

impl Lab {
    fn new() -> Lab {
        let pid = std::process::id();
        Lab {
            primary_ns: format!("{NS_PREFIX}{pid}p"),
            backup_ns: format!("{NS_PREFIX}{pid}b"),
            client_ns: format!("{NS_PREFIX}{pid}c"),
            children: Vec::new(),
            made: Vec::new(),
        }
    }

    fn setup(&mut self) -> Result<(), DemoError> {
        let (p, b, c) = (
            self.primary_ns.clone(),
            self.backup_ns.clone(),
            self.client_ns.clone(),
        );
        for ns in [&p, &b, &c] {
            ip(&["netns", "add", ns])?;
            self.made.push(ns.clone());
            // Quiet namespaces: no IPv6 autoconfiguration chatter on the bridges.
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-q", "-w"])
                .args([
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let bridge = |ns: &str, name: &str| {
            ip(&[
                "-n",
                ns,
                "link",
                "add",
                name,
                "type",
                "bridge",
                "forward_delay",
                "0",
            ])
        };
        // The client network: a bridge with the client and the arbiter. Its own MAC is fixed:
        // a Linux bridge otherwise takes the lowest MAC of its ports and changes it when a
        // port joins (the TAPs are plugged in after the nodes start), which would leave the
        // hosts' ARP entries for the arbiter pointing at the old address.
        bridge(&c, "br0")?;
        ip(&["-n", &c, "link", "set", "br0", "address", CLIENT_BRIDGE_MAC])?;
        ip(&["-n", &c, "link", "set", "br0", "up"])?;
        ip(&["-n", &c, "addr", "add", CLIENT_CIDR, "dev", "br0"])?;
        ip(&["-n", &c, "addr", "add", ARBITER_CIDR, "dev", "br0"])?;
        // Each host: the TAP its node opens (plugged into the client network's switch once
        // opened, see `plug`), and its own uplink with the host's address (how it reaches the
        // arbiter).
        for (ns, tap, uplink, host_cidr) in [
            (&p, "tapp", "lanp", PRIMARY_HOST_CIDR),
            (&b, "tapb", "lanb", BACKUP_HOST_CIDR),
        ] {
            ip(&["-n", ns, "tuntap", "add", "dev", tap, "mode", "tap"])?;
            ip(&[
                "-n", ns, "link", "add", "lan", "type", "veth", "peer", "name", uplink, "netns", &c,
            ])?;
            ip(&["-n", &c, "link", "set", uplink, "master", "br0", "up"])?;
            ip(&["-n", ns, "addr", "add", host_cidr, "dev", "lan"])?;
            ip(&["-n", ns, "link", "set", "lan", "up"])?;
        }
        // The replication link: its own veth between the two hosts.
        ip(&[
            "-n", &p, "link", "add", "repl", "type", "veth", "peer", "name", "repl", "netns", &b,
        ])?;
        for (ns, cidr) in [(&p, REPL_PRIMARY_CIDR), (&b, REPL_BACKUP_CIDR)] {
            ip(&["-n", ns, "addr", "add", cidr, "dev", "repl"])?;
            ip(&["-n", ns, "link", "set", "repl", "up"])?;
        }
        Ok(())
    }

    /// Plugs a host's model NIC into the client network's switch: its TAP, opened by the node
    /// in its own namespace (the open file stays the node's), moves to the switch as a port.
    /// Like a real NIC's cable, the port loses carrier when the host dies (no process holds the
    /// TAP any more): the bridge forgets the MACs it learnt there and floods them, as a switch
    /// does when a host's link goes down.
    fn plug(&self, host_ns: &str, tap: &str) -> Result<(), DemoError> {
        ip(&["-n", host_ns, "link", "set", tap, "netns", &self.client_ns])?;
        ip(&[
            "-n",
            &self.client_ns,
            "link",
            "set",
            tap,
            "master",
            "br0",
            "up",
        ])
    }

    /// The switch's port mirror (SPAN) for the protected service: every IPv4 frame the switch
    /// sends out of `from` (the primary's port) for the service's address is also sent out of
    /// `to` (the backup's port), as COLO's proxy mirrors client packets to the secondary. The
    /// backup keeps them for a takeover, so the client's segments reach the replica even while
    /// the switch still forwards into a dead host's port: Linux's bridge hears of a lost carrier
    /// only through linkwatch, which batches such events up to a second (measured: 417 ms after
    /// the kill), and a hung host never loses its link. A `tc` u32 filter (flower and matchall
    /// are not always built) with a `mirred` action on the port's egress; moving the TAP out
    /// of the namespace (re-protection) removes it.
    fn mirror_service(&self, from: &str, to: &str, service_ip: &str) -> Result<(), DemoError> {
        let ns = self.client_ns.as_str();
        tc(&["-n", ns, "qdisc", "add", "dev", from, "clsact"])?;
        let dst = format!("{service_ip}/32");
        tc(&[
            "-n", ns, "filter", "add", "dev", from, "egress", "protocol", "ip", "u32", "match",
            "ip", "dst", &dst, "action", "mirred", "egress", "mirror", "dev", to,
        ])
    }

    /// Unplugs a dead host's TAP from the switch and takes it back into the host's namespace,
    /// so a node restarted there opens it (and is plugged in again once it has, [`Lab::plug`]).
    fn unplug(&self, host_ns: &str, tap: &str) -> Result<(), DemoError> {
        ip(&["-n", &self.client_ns, "link", "set", tap, "netns", host_ns])
    }

    /// Cuts the replication link (both ends down), as a failed cable or switch port would.
    fn cut_link(&self) -> Result<(), DemoError> {
        ip(&["-n", &self.primary_ns, "link", "set", "repl", "down"])?;
        ip(&["-n", &self.backup_ns, "link", "set", "repl", "down"])
    }

    /// Runs `hac <args>` inside namespace `ns`; stdout lines come back on `events` tagged
    /// `who`, stderr goes to `<out>/<who>.log`.
    fn spawn(
        &mut self,
        who: &str,
        ns: &str,
        args: &[String],
        rt_priority: u32,
        out: &Path,
        events: &Sender<Event>,
    ) -> Result<ChildStdin, DemoError> {
        let exe = std::env::current_exe()
            .map_err(|e| DemoError::Setup(format!("cannot find the hac binary: {e}")))?;
        let log = std::fs::File::create(out.join(format!("{who}.log")))
            .map_err(|e| DemoError::Setup(format!("cannot create {who}.log: {e}")))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]);
        if rt_priority > 0 {
            cmd.args(["chrt", "-r", &rt_priority.to_string()]);
        }
        let mut child = cmd
            .arg(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| DemoError::Setup(format!("cannot start {who}: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.children.push((who.to_string(), child));
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            return Err(DemoError::Setup(format!("no pipes to {who}")));
        };
        let tx = events.clone();
        let who = who.to_string();
        let mut journal = std::fs::File::create(out.join(format!("{who}-events.jsonl"))).ok();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(j) = &mut journal {
                    let _ = writeln!(j, "{line}");
                }
                let value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if tx
                    .send(Event::Line {
                        who: who.clone(),
                        value,
                    })
                    .is_err()
                {
                    return;
                }
            }
            let _ = tx.send(Event::Closed { who });
        });
        Ok(stdin)
    }

    /// [`Lab::spawn`], then waits for its `ready` line.
    fn start(
        &mut self,
        who: &str,
        ns: &str,
        args: &[String],
        (rt_priority, out): (u32, &Path),
        (tx, rx): (&Sender<Event>, &Receiver<Event>),
        interrupted: &AtomicBool,
    ) -> Result<ChildStdin, DemoError> {
        let stdin = self.spawn(who, ns, args, rt_priority, out, tx)?;
        wait_for(rx, who, "ready", Duration::from_secs(15), interrupted)?;
        Ok(stdin)
    }

    fn child(&mut self, who: &str) -> Option<&mut Child> {
        self.children
            .iter_mut()
            .find(|(w, _)| w == who)
            .map(|(_, c)| c)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        for ns in self.made.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

enum Event {
    Line { who: String, value: Value },
    Closed { who: String },
}

/// One answered request as the client saw it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Answer {
    /// Request number.
    pub n: u64,
    /// Sent, Unix µs.
    pub sent_us: u64,
    /// Answered, Unix µs.
    pub recv_us: u64,
}

/// The report.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverReport {
    /// Consistent and complete: no reset, no EOF, every answer the running total, all answered.
    pub ok: bool,
    /// What went wrong.
    pub errors: Vec<String>,
    /// The configuration.
    pub config: Value,
    /// The node killed.
    pub killed: Victim,
    /// The kill point.
    pub kill_plan: Option<KillPlan>,
    /// Requests answered.
    pub answered: u64,
    /// Answers received after the kill (from the backup when the primary was killed).
    pub answered_by_backup: u64,
    /// Kill → the backup's takeover, or the primary's unprotect when the backup was killed
    /// (failure detection), ms.
    pub detection_ms: Option<f64>,
    /// Kill → first answer the client received after the takeover (or the unprotect), ms: an
    /// answer the primary released before it died and still in flight does not count.
    pub failover_ms: Option<f64>,
    /// The client's longest wait between consecutive answers, from the last answer before the
    /// kill to [`STALL_WINDOW_US`] after the first answer counted by `failover_ms`, ms.
    pub client_stall_ms: Option<f64>,
    /// Frames the primary held for uncommitted epochs (plus frames not yet handed to the VF)
    /// when it died: never sent.
    pub frames_discarded_at_primary: Option<u64>,
    /// Epochs the backup replayed before taking over.
    pub replayed_epochs: Option<u64>,
    /// Adapter-level added delay (wire − submit) on the primary before the kill: the
    /// checkpointing VF.
    pub added_delay_protected: Option<Value>,
    /// The same for the plain VF.
    pub added_delay_plain: Option<Value>,
    /// Client round trip of requests answered by the protected primary.
    pub client_rtt_protected: Percentiles,
    /// Client round trip of requests sent after the backup answered its first and answered
    /// before a new backup joined (unprotected service).
    pub client_rtt_unprotected: Percentiles,
    /// `--reprotect`: takeover → new backup started / joined / first commit on its ack, the
    /// history it caught up with, the most frames held after the join, the client's longest
    /// wait around the join.
    pub reprotect: Option<Value>,
    /// Client round trip of requests sent after protection resumed (`--reprotect`).
    pub client_rtt_reprotected: Percentiles,
    /// Unix µs of the client's start, the kill, the takeover, the first answers after the kill
    /// and after the takeover, the new backup's start, its join and protection resumed.
    pub times_unix_us: Value,
    /// Wall seconds for the whole run.
    pub wall_secs: f64,
    /// What each process reported at its end (frames under the service MAC each node wrote
    /// to its TAP, fencing, lease counters; the arbiter's counters), refusals and fencing
    /// events, the link cut and the primary's kill.
    pub split_brain_check: Value,
    /// The service was lost as it must be (link cut, then the primary killed after it served
    /// alone: the backup's replica is behind, the arbiter refuses it).
    pub service_lost: bool,
}

/// Runs the demo; returns the report (written to `args.out`) or why it could not run.
pub fn run(args: &DemoArgs, show_progress: bool) -> Result<FailoverReport, DemoError> {
    let started = Instant::now();
    let out = args.out.clone();
    std::fs::create_dir_all(&out)
        .map_err(|e| DemoError::Setup(format!("cannot create {}: {e}", out.display())))?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Only one handler per process: a second demo in the same process keeps the first.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    if args.reprotect && args.kill != Victim::Primary {
        return Err(DemoError::Setup(
            "--reprotect needs --kill primary (a backup rejoins the new primary)".into(),
        ));
    }
    if args.kill_new_primary_ms.is_some() && !args.reprotect {
        return Err(DemoError::Setup(
            "--kill-new-primary-ms needs --reprotect (the joined backup takes over)".into(),
        ));
    }
    let mut progress = Progress::new("failover demo", args.requests, "answers", show_progress);
    remove_stale_namespaces();
    let mut lab = Lab::new();
    progress.note(&format!(
        "setting up namespaces {}, {} and {} (two hosts with a replication veth, the client network)",
        lab.primary_ns, lab.backup_ns, lab.client_ns
    ));
    lab.setup()?;
    let (tx, rx) = unbounded();
    let out_s = out.display().to_string();
    // `repl`: the backup's listening address (a backup listens on its own host's end of the
    // replication veth), or the backup the primary connects to.
    let node_args = |role: &str, tap: &str, repl: &str| -> Vec<String> {
        let repl_opt = if role == "backup" {
            "--repl-listen"
        } else {
            "--repl-peer"
        };
        let mut v: Vec<String> = vec![
            "ha-node".into(),
            "--role".into(),
            role.into(),
            "--tap".into(),
            tap.into(),
            repl_opt.into(),
            repl.into(),
            "--arbiter".into(),
            ARBITER_ADDR.into(),
            "--lease-margin-ms".into(),
            args.lease_margin_ms.to_string(),
            "--lease-grace-ms".into(),
            args.lease_grace_ms.to_string(),
            "--seed".into(),
            args.seed.to_string(),
            "--epoch-ms".into(),
            args.epoch_ms.to_string(),
            "--heartbeat-ms".into(),
            args.heartbeat_ms.to_string(),
            "--timeout-ms".into(),
            args.timeout_ms.to_string(),
            "--background-pps".into(),
            args.background_pps.to_string(),
        ];
        v.extend(["--out".into(), out_s.clone()]);
        v
    };
    let client_ns = lab.client_ns.clone();
    let arbiter_args: Vec<String> = vec![
        "ha-arbiter".into(),
        "--listen".into(),
        ARBITER_ADDR.into(),
        "--lease-ms".into(),
        args.lease_ms.to_string(),
    ];
    let mut arbiter_in = Some(lab.start(
        "arbiter",
        &client_ns,
        &arbiter_args,
        (args.rt_priority, &out),
        (&tx, &rx),
        &interrupted,
    )?);
    let backup_ns = lab.backup_ns.clone();
    let mut backup_in = Some(lab.start(
        "backup",
        &backup_ns,
        &node_args("backup", "tapb", REPL_BACKUP_ADDR),
        (args.rt_priority, &out),
        (&tx, &rx),
        &interrupted,
    )?);
    lab.plug(&backup_ns, "tapb")?;
    let primary_ns = lab.primary_ns.clone();
    let mut primary_in = Some(lab.start(
        "primary",
        &primary_ns,
        &node_args("primary", "tapp", REPL_BACKUP_ADDR),
        (args.rt_priority, &out),
        (&tx, &rx),
        &interrupted,
    )?);
    lab.plug(&primary_ns, "tapp")?;
    lab.mirror_service("tapp", "tapb", SERVICE_IP)?;
    progress.note("arbiter, primary and backup are up; starting the client");
    let client_args: Vec<String> = vec![
        "ha-client".into(),
        "--connect".into(),
        SERVICE_ADDR.into(),
        "--requests".into(),
        args.requests.to_string(),
        "--interval-ms".into(),
        args.interval_ms.to_string(),
        "--window".into(),
        args.window.to_string(),
    ];
    let client_start_us = unix_us();
    let _client_in = lab.spawn("client", &client_ns, &client_args, 0, &out, &tx)?;
    let victim = args.kill;
    let plan = (victim != Victim::None).then(|| kill_plan(args.seed, args.requests, args.epoch_ms));
    if let Some(p) = plan {
        progress.note(&format!(
            "kill point (seed {}): after answer {} + {:.1} ms",
            args.seed,
            p.after_answer,
            p.extra_us as f64 / 1e3
        ));
    }
    let mut answers: Vec<Answer> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut kill_at: Option<Instant> = None;
    // The kill point's action (kill or link cut), and with link-then-primary the primary's kill.
    let mut kill_us: Option<u64> = None;
    let mut primary_kill_at: Option<Instant> = None;
    let mut primary_killed_us: Option<u64> = None;
    let mut takeover: Option<Value> = None;
    let mut unprotected: Option<Value> = None;
    let mut takeover_refused: Option<Value> = None;
    let mut fenced: Vec<Value> = Vec::new();
    let mut held_before_kill: Option<u64> = None;
    let mut primary_status: Option<Value> = None;
    let mut client_done: Option<Value> = None;
    let mut service_lost = false;
    // Re-protection: when to start the new backup, its stdin, and what the nodes reported.
    let mut rejoin_at: Option<Instant> = None;
    let mut rejoin_in: Option<ChildStdin> = None;
    let mut rp = Reprotection::default();
    let mut second_kill_at: Option<Instant> = None;
    // `--freeze-arbiter-ms`: when to stop the arbiter after the takeover, when to let it go on.
    let mut freeze_at: Option<Instant> = None;
    let mut thaw_at: Option<Instant> = None;
    let mut frozen_us: Option<(u64, u64)> = None;
    let freeze_past_grace = args
        .freeze_arbiter_ms
        .is_some_and(|ms| ms > args.lease_grace_ms);
    let deadline =
        Instant::now() + Duration::from_millis(args.requests * (args.interval_ms + 50) + 60_000);
    while client_done.is_none() {
        if interrupted.load(Ordering::SeqCst) {
            return Err(DemoError::Interrupted);
        }
        if Instant::now() > deadline {
            errors.push("the run did not finish in time".into());
            break;
        }
        if let Some(at) = kill_at
            && kill_us.is_none()
            && Instant::now() >= at
        {
            kill_us = Some(unix_us());
            if let Some(who) = victim.process() {
                if let Some(c) = lab.child(who) {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                match victim {
                    Victim::Primary => {
                        primary_in = None;
                        primary_killed_us = kill_us;
                    }
                    Victim::Backup => backup_in = None,
                    _ => arbiter_in = None,
                }
            }
            if victim.cuts_link() {
                lab.cut_link()?;
            }
            if victim == Victim::LinkThenPrimary {
                primary_kill_at = Some(Instant::now() + Duration::from_millis(args.then_kill_ms));
            }
            progress.note(&format!(
                "kill point ({}) after {} answers",
                victim.name(),
                answers.len()
            ));
        }
        if let Some(at) = primary_kill_at
            && primary_killed_us.is_none()
            && Instant::now() >= at
        {
            primary_killed_us = Some(unix_us());
            if let Some(c) = lab.child("primary") {
                let _ = c.kill();
                let _ = c.wait();
            }
            primary_in = None;
            progress.note("SIGKILL to the primary after the link cut");
        }
        // The backup may not take over (its replica is behind what the primary served alone):
        // after a while without a takeover the service is lost, as it must be.
        if unprotected.is_some()
            && takeover.is_none()
            && primary_kill_at.is_some_and(|at| Instant::now() >= at + LOST_SERVICE_WATCH)
        {
            service_lost = true;
            progress
                .note("no takeover (the backup is not in sync): service lost, consistency kept");
            break;
        }
        // The arbiter stalls while the backup serves alone: a lapse, not a refusal.
        if let Some(at) = freeze_at
            && Instant::now() >= at
        {
            freeze_at = None;
            let pid = lab.child("arbiter").map(|c| c.id());
            if let Some(pid) = pid
                && signal(pid, "STOP")
            {
                frozen_us = Some((unix_us(), 0));
                thaw_at = Some(
                    Instant::now() + Duration::from_millis(args.freeze_arbiter_ms.unwrap_or(0)),
                );
                progress.note("SIGSTOP to the arbiter");
            } else {
                errors.push("could not stop the arbiter (--freeze-arbiter-ms)".into());
            }
        }
        if let Some(at) = thaw_at
            && Instant::now() >= at
        {
            thaw_at = None;
            let pid = lab.child("arbiter").map(|c| c.id());
            if !pid.is_some_and(|pid| signal(pid, "CONT")) {
                errors.push("could not let the arbiter go on (SIGCONT)".into());
            }
            if let Some((_, thawed)) = &mut frozen_us {
                *thawed = unix_us();
            }
            progress.note("SIGCONT to the arbiter");
        }
        // After re-protection the new primary is killed too: the joined backup's turn.
        if let Some(at) = second_kill_at
            && rp.second_kill_us.is_none()
            && Instant::now() >= at
        {
            rp.second_kill_us = Some(unix_us());
            if let Some(c) = lab.child("backup") {
                let _ = c.kill();
                let _ = c.wait();
            }
            backup_in = None;
            progress.note("SIGKILL to the new primary: the joined backup must take over");
        }
        // Re-protection: the lost primary's host restarts as a backup, in its own namespace
        // on its TAP, and joins the new primary over the replication veth.
        if let Some(at) = rejoin_at
            && rp.spawned_us.is_none()
            && Instant::now() >= at
        {
            let mut a = node_args("backup", "tapp", REPL_PRIMARY_ADDR);
            a.extend(["--join".into(), REPL_BACKUP_ADDR.into()]);
            rp.spawned_us = Some(unix_us());
            // The host restarts: its NIC's TAP comes back to it, the node opens it, and it is
            // plugged into the switch again on the node's `ready` (below).
            lab.unplug(&primary_ns, "tapp")?;
            rejoin_in = Some(lab.spawn("rejoin", &primary_ns, &a, args.rt_priority, &out, &tx)?);
            progress.note("restarted the lost primary's host as a backup joining the new primary");
        }
        let ev = match rx.recv_timeout(Duration::from_millis(2)) {
            Ok(ev) => ev,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        };
        match ev {
            Event::Closed { who } => {
                let killed = (kill_us.is_some() && victim.process() == Some(who.as_str()))
                    || (who == "primary" && primary_killed_us.is_some())
                    || (who == "backup" && rp.second_kill_us.is_some());
                if who == "client" {
                    client_done.get_or_insert(Value::Null);
                } else if !killed {
                    errors.push(format!("the {who} exited during the run"));
                }
            }
            Event::Line { who, value } => match who.as_str() {
                "client" => {
                    if value.get("ev").and_then(Value::as_str) == Some("done") {
                        client_done = Some(value);
                        continue;
                    }
                    let get = |k: &str| value.get(k).and_then(Value::as_u64);
                    if let (Some(n), Some(sent_us), Some(recv_us)) =
                        (get("n"), get("sent_us"), get("recv_us"))
                    {
                        answers.push(Answer {
                            n,
                            sent_us,
                            recv_us,
                        });
                        let phase = if takeover.is_some() {
                            "backup"
                        } else if unprotected.is_some() {
                            "primary, unprotected"
                        } else {
                            "primary"
                        };
                        progress.set(n, &format!("served by the {phase}"));
                        if let Some(p) = plan
                            && kill_at.is_none()
                            && n >= p.after_answer
                        {
                            kill_at = Some(Instant::now() + Duration::from_micros(p.extra_us));
                        }
                    }
                }
                "primary" => match value.get("ev").and_then(Value::as_str) {
                    Some("held") if kill_us.is_none() => {
                        held_before_kill = value.get("frames").and_then(Value::as_u64);
                    }
                    Some("held") if victim == Victim::LinkThenPrimary => {
                        held_before_kill = value.get("frames").and_then(Value::as_u64);
                    }
                    Some("status") if kill_us.is_none() => primary_status = Some(value),
                    Some("unprotected") => {
                        let expected = kill_us.is_some()
                            && matches!(
                                victim,
                                Victim::Backup | Victim::Link | Victim::LinkThenPrimary
                            );
                        if !expected {
                            errors.push("the primary lost the backup and ran unprotected".into());
                        }
                        progress.note("the primary lost the backup: running unprotected");
                        unprotected = Some(value);
                    }
                    Some("fenced") => {
                        progress.note("the primary fenced itself");
                        fenced.push(value);
                    }
                    _ => {}
                },
                "backup" => match value.get("ev").and_then(Value::as_str) {
                    Some("takeover") => {
                        if primary_killed_us.is_none() {
                            errors.push("the backup took over while the primary was alive".into());
                        }
                        progress.note(&format!(
                            "backup took over (primary silent for {} ms)",
                            value
                                .get("silent_ms")
                                .and_then(Value::as_f64)
                                .unwrap_or(0.0)
                        ));
                        takeover = Some(value);
                        if args.freeze_arbiter_ms.is_some() {
                            // Once the client's stream runs on the backup again.
                            freeze_at = Some(Instant::now() + FREEZE_AFTER_TAKEOVER);
                        }
                        if args.reprotect {
                            rejoin_at =
                                Some(Instant::now() + Duration::from_millis(args.rejoin_delay_ms));
                        }
                    }
                    Some("takeover_refused") => {
                        progress.note("the arbiter refused the backup's takeover");
                        takeover_refused = Some(value);
                    }
                    Some("fenced") => {
                        // Only a freeze of the arbiter past the grace may fence it (checked
                        // after the run).
                        if takeover.is_some() && !freeze_past_grace {
                            errors.push("the backup fenced itself while serving".into());
                        }
                        fenced.push(value);
                    }
                    Some("joined") => {
                        progress.note("a new backup joined: catching up, protecting again");
                        rp.joined = Some(value);
                    }
                    Some("protected") => {
                        progress.note("the new backup acked its first epoch: protected again");
                        rp.protected = Some(value);
                        if let Some(ms) = args.kill_new_primary_ms {
                            second_kill_at = Some(Instant::now() + Duration::from_millis(ms));
                        }
                    }
                    Some("held") if rp.joined.is_some() => {
                        let f = value.get("frames").and_then(Value::as_u64).unwrap_or(0);
                        rp.max_held = rp.max_held.max(f);
                    }
                    Some("unprotected") => errors.push(
                        "the new primary lost its new backup and ran unprotected again".into(),
                    ),
                    Some("join_refused") => errors.push(format!(
                        "the new primary refused the join: {}",
                        value.get("reason").and_then(Value::as_str).unwrap_or("?")
                    )),
                    _ => {}
                },
                "arbiter"
                    if rp.arbiter_standby.is_none()
                        && value.get("ev").and_then(Value::as_str) == Some("holder")
                        && value.get("standby").and_then(Value::as_u64)
                            == Some(u64::from(REJOIN_NODE_ID)) =>
                {
                    rp.arbiter_standby = Some(value);
                }
                "rejoin" => match value.get("ev").and_then(Value::as_str) {
                    Some("ready") => lab.plug(&primary_ns, "tapp")?,
                    Some("caught_up") => rp.caught_up = Some(value),
                    Some("takeover") => {
                        if rp.second_kill_us.is_none() {
                            errors.push(
                                "the new backup took over while the new primary was alive".into(),
                            );
                        }
                        progress.note("the joined backup took over (it held the lease)");
                        rp.second_takeover = Some(value);
                    }
                    Some("takeover_refused") => {
                        progress.note("the arbiter refused the joined backup's takeover");
                    }
                    Some("fenced") => {
                        errors.push("the new backup fenced itself".into());
                        fenced.push(value);
                    }
                    _ => {}
                },
                _ => {}
            },
        }
    }
    // Let the client's exit status settle, then stop the nodes cleanly (stdin closed).
    let client_status = if service_lost {
        None
    } else {
        lab.child("client").and_then(|c| {
            for _ in 0..200 {
                if let Ok(Some(s)) = c.try_wait() {
                    return Some(s);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        })
    };
    if service_lost {
        // The client is still waiting (it would fail after its own timeout): it saw no wrong
        // answer, no reset and no end of stream so far, or it would have exited.
        if let Some(c) = lab.child("client") {
            if !matches!(c.try_wait(), Ok(None)) {
                errors.push("the client failed while the service was lost".into());
            }
            let _ = c.kill();
        }
    }
    drop(primary_in.take());
    drop(backup_in.take());
    drop(arbiter_in.take());
    drop(rejoin_in.take());
    let mut exits: Vec<(String, Value)> = Vec::new();
    // A killed process's end was seen during the run; wait for the others' exit lines.
    let killed_process = kill_us.and(victim.process());
    let mut open: Vec<&str> = ["primary", "backup", "arbiter"]
        .into_iter()
        .filter(|w| Some(*w) != killed_process && !(*w == "primary" && primary_killed_us.is_some()))
        .filter(|w| !(*w == "backup" && rp.second_kill_us.is_some()))
        .collect();
    if rp.spawned_us.is_some() {
        open.push("rejoin");
    }
    let settle = Instant::now() + Duration::from_secs(5);
    while !open.is_empty() && Instant::now() < settle {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Event::Line { who, value })
                if value.get("ev").and_then(Value::as_str) == Some("exit") =>
            {
                exits.push((who, value));
            }
            Ok(Event::Closed { who }) => open.retain(|w| *w != who),
            Ok(_) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let exit_of = |who: &str| exits.iter().find(|(w, _)| w == who).map(|(_, v)| v.clone());
    let client_err = std::fs::read_to_string(out.join("client.log")).unwrap_or_default();
    if !service_lost && !client_status.is_some_and(|s| s.success()) {
        let msg = client_err
            .lines()
            .last()
            .unwrap_or("no message")
            .to_string();
        errors.push(format!("client failed: {msg}"));
    }
    if !service_lost && answers.len() as u64 != args.requests {
        errors.push(format!(
            "{} of {} requests answered",
            answers.len(),
            args.requests
        ));
    }
    if plan.is_some() && kill_us.is_none() {
        errors.push("the kill point was never reached".into());
    }
    let primary_died = primary_killed_us.is_some();
    if primary_died && takeover.is_none() && !service_lost {
        errors.push("the backup never took over".into());
    }
    if victim == Victim::LinkThenPrimary && takeover.is_some() && unprotected.is_some() {
        errors.push("the backup took over although the primary had served without it".into());
    }
    if matches!(victim, Victim::Backup | Victim::Link) && unprotected.is_none() {
        errors.push("the primary never went on alone after losing the backup".into());
    }
    // No split brain: while the primary lives, nothing leaves the backup under the service
    // MAC (its TAP counters), and the primary is never fenced while it should serve.
    let backup_exit = exit_of("backup");
    let service_tx = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|e| e.get("service_tx"))
            .and_then(Value::as_u64)
    };
    if !primary_died {
        match service_tx(&backup_exit) {
            Some(0) => {}
            Some(n) => errors.push(format!(
                "split brain: the backup sent {n} frames under the service MAC while the primary lived"
            )),
            None if victim != Victim::Backup => {
                errors.push("the backup's exit line (its TAP counters) is missing".into());
            }
            None => {}
        }
        if !fenced.is_empty() {
            errors.push("a node fenced itself although the primary should serve".into());
        }
    }
    if args.reprotect && takeover.is_some() {
        if rp.joined.is_none() {
            errors.push("the restarted node never joined the new primary".into());
        } else if rp.protected.is_none() {
            errors.push(
                "protection never resumed (no epoch committed on the new backup's ack)".into(),
            );
        } else if rp.arbiter_standby.is_none() {
            errors.push(
                "the arbiter never recorded the new backup as the in-sync standby (the new primary's lease claim did not name it)"
                    .into(),
            );
        }
        if rp.second_kill_us.is_some() && rp.second_takeover.is_none() {
            errors.push("the joined backup never took over after the new primary's kill".into());
        }
        // While the new primary lives nothing may leave the new backup under the service MAC.
        match service_tx(&exit_of("rejoin")) {
            _ if rp.second_takeover.is_some() => {}
            Some(0) => {}
            Some(n) => errors.push(format!(
                "split brain: the new backup sent {n} frames under the service MAC while the new primary lived"
            )),
            None if rp.spawned_us.is_some() => {
                errors.push("the new backup's exit line (its TAP counters) is missing".into());
            }
            None => {}
        }
    }
    if let Some(ms) = args.freeze_arbiter_ms {
        check_lapse(
            ms,
            args.lease_grace_ms,
            takeover.is_some(),
            frozen_us,
            exit_of("backup").as_ref(),
            &mut errors,
        );
    }
    let report = build_report(
        args,
        plan,
        &answers,
        errors,
        Times {
            client_start_us,
            kill_us: if victim == Victim::LinkThenPrimary {
                primary_killed_us
            } else {
                kill_us
            },
            takeover_us: takeover
                .as_ref()
                .or(unprotected
                    .as_ref()
                    .filter(|_| victim != Victim::LinkThenPrimary))
                .and_then(|t| t.get("t_unix_us"))
                .and_then(Value::as_u64),
        },
        held_before_kill,
        takeover
            .as_ref()
            .and_then(|t| t.get("replayed_epochs"))
            .and_then(Value::as_u64),
        primary_status,
        &rp,
        started,
    );
    let nodes = |who: &str| {
        exit_of(who).map(|e| {
            let keep = [
                "service_tx",
                "service_tx_last_unix_us",
                "fenced",
                "fenced_dropped",
                "takeover_refused",
                "lease",
                "lapse",
                "live",
                "protected",
                "requests",
                "granted",
                "refused",
                "malformed",
            ];
            Value::Object(
                keep.iter()
                    .filter_map(|k| e.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect(),
            )
        })
    };
    let report = FailoverReport {
        split_brain_check: json!({
            "primary": nodes("primary"), "backup": nodes("backup"), "arbiter": nodes("arbiter"),
            "rejoin": nodes("rejoin"), "arbiter_standby_rejoin": rp.arbiter_standby.clone(),
            "takeover_refused": takeover_refused, "fenced": fenced,
            "link_cut_unix_us": kill_us.filter(|_| victim.cuts_link()),
            "arbiter_frozen_unix_us": frozen_us.map(|(a, b)| [a, b]),
            "primary_killed_unix_us": primary_killed_us,
        }),
        service_lost,
        ..report
    };
    write_report(&out, &report, &answers)?;
    drop(lab);
    progress.finish();
    if show_progress {
        progress.note(&summary(&report, &out));
    }
    Ok(report)
}

fn wait_for(
    rx: &Receiver<Event>,
    who: &str,
    ev: &str,
    timeout: Duration,
    interrupted: &AtomicBool,
) -> Result<(), DemoError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if interrupted.load(Ordering::SeqCst) {
            return Err(DemoError::Interrupted);
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Event::Line { who: w, value })
                if w == who && value.get("ev").and_then(Value::as_str) == Some(ev) =>
            {
                return Ok(());
            }
            Ok(Event::Closed { who: w }) if w == who => {
                return Err(DemoError::Run(format!(
                    "the {who} exited during start-up (see its .log in the report directory)"
                )));
            }
            _ => {}
        }
    }
    Err(DemoError::Run(format!("the {who} did not start in time")))
}

struct Times {
    client_start_us: u64,
    kill_us: Option<u64>,
    takeover_us: Option<u64>,
}

/// What the nodes reported about re-protection (`--reprotect`).
#[derive(Default)]
struct Reprotection {
    /// When the new backup was started, Unix µs.
    spawned_us: Option<u64>,
    /// The new primary's `joined` event.
    joined: Option<Value>,
    /// The new primary's `protected` event (first commit on the new backup's ack).
    protected: Option<Value>,
    /// The new backup's `caught_up` event.
    caught_up: Option<Value>,
    /// Most frames the new primary held after the join.
    max_held: u64,
    /// The arbiter's first `holder` event recording the new backup as the in-sync standby
    /// (the new primary's `Protected` claim naming it).
    arbiter_standby: Option<Value>,
    /// `--kill-new-primary-ms`: when the new primary was killed, Unix µs.
    second_kill_us: Option<u64>,
    /// The joined backup's `takeover` event.
    second_takeover: Option<Value>,
}

/// How long after the first answer past the takeover the stall measurement keeps looking (the
/// requests recovered by retransmission arrive within it).
pub const STALL_WINDOW_US: u64 = 500_000;

/// The longest gap between consecutive receive times (sorted) in `from..=to`, µs.
fn longest_gap(recv_us: &[u64], from: u64, to: u64) -> Option<u64> {
    let inside: Vec<u64> = recv_us
        .iter()
        .copied()
        .filter(|&r| r >= from && r <= to)
        .collect();
    inside.windows(2).map(|w| w[1].saturating_sub(w[0])).max()
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    args: &DemoArgs,
    plan: Option<KillPlan>,
    answers: &[Answer],
    errors: Vec<String>,
    t: Times,
    held: Option<u64>,
    replayed_epochs: Option<u64>,
    primary_status: Option<Value>,
    rp: &Reprotection,
    started: Instant,
) -> FailoverReport {
    let t_of = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|e| e.get("t_unix_us"))
            .and_then(Value::as_u64)
    };
    let joined_us = t_of(&rp.joined);
    let protected_us = t_of(&rp.protected);
    let ms = |a: u64, b: u64| a.saturating_sub(b) as f64 / 1e3;
    let (before, after): (Vec<&Answer>, Vec<&Answer>) = answers
        .iter()
        .partition(|a| t.kill_us.is_none_or(|k| a.recv_us < k));
    let first_after = after.first().map(|a| a.recv_us);
    let last_before = before.last().map(|a| a.recv_us);
    let first_after_takeover = t
        .takeover_us
        .and_then(|o| after.iter().map(|a| a.recv_us).find(|&r| r >= o));
    let recv: Vec<u64> = answers.iter().map(|a| a.recv_us).collect();
    let stall_us = last_before
        .zip(first_after_takeover)
        .and_then(|(l, f)| longest_gap(&recv, l, f + STALL_WINDOW_US));
    let rtt_p: Vec<u64> = before.iter().map(|a| a.recv_us - a.sent_us).collect();
    // Unprotected: sent after the backup's first answer, answered before a new backup joined.
    let rtt_u: Vec<u64> = after
        .iter()
        .filter(|a| first_after.is_some_and(|f| a.sent_us > f))
        .filter(|a| joined_us.is_none_or(|j| a.recv_us < j))
        .map(|a| a.recv_us.saturating_sub(a.sent_us))
        .collect();
    let rtt_r: Vec<u64> = answers
        .iter()
        .filter(|a| protected_us.is_some_and(|p| a.sent_us > p))
        .filter(|a| rp.second_kill_us.is_none_or(|k| a.recv_us < k))
        .map(|a| a.recv_us.saturating_sub(a.sent_us))
        .collect();
    let to_ns = |p: Percentiles| Percentiles {
        count: p.count,
        p50_ns: p.p50_ns * 1000,
        p99_ns: p.p99_ns * 1000,
        max_ns: p.max_ns * 1000,
    };
    let delay = |k: &str| {
        primary_status
            .as_ref()
            .and_then(|s| s.get("added_delay"))
            .and_then(|d| d.get(k))
            .cloned()
    };
    FailoverReport {
        ok: errors.is_empty(),
        errors,
        config: json!({
            "seed": args.seed, "requests": args.requests, "interval_ms": args.interval_ms,
            "window": args.window, "epoch_ms": args.epoch_ms, "heartbeat_ms": args.heartbeat_ms,
            "timeout_ms": args.timeout_ms, "background_pps": args.background_pps,
            "rt_priority": args.rt_priority, "reprotect": args.reprotect,
            "port_rate": "1G", "service": SERVICE_ADDR,
        }),
        killed: args.kill,
        kill_plan: plan,
        answered: answers.len() as u64,
        answered_by_backup: after.len() as u64,
        detection_ms: t.kill_us.zip(t.takeover_us).map(|(k, o)| ms(o, k)),
        failover_ms: t.kill_us.zip(first_after_takeover).map(|(k, f)| ms(f, k)),
        client_stall_ms: stall_us.map(|g| g as f64 / 1e3),
        frames_discarded_at_primary: t.kill_us.and(held).filter(|_| args.kill == Victim::Primary),
        replayed_epochs,
        added_delay_protected: delay("service_vf"),
        added_delay_plain: delay("plain_vf"),
        client_rtt_protected: to_ns(Percentiles::of(&rtt_p)),
        client_rtt_unprotected: to_ns(Percentiles::of(&rtt_u)),
        reprotect: args.reprotect.then(|| {
            let get = |v: &Option<Value>, k: &str| v.as_ref().and_then(|e| e.get(k)).cloned();
            // The client's longest wait from the last answer before the join to
            // STALL_WINDOW_US after protection resumed: the catch-up's cost to the client.
            let stall = joined_us.zip(protected_us).and_then(|(j, p)| {
                let before = recv.iter().copied().filter(|&r| r < j).max()?;
                longest_gap(&recv, before, p + STALL_WINDOW_US)
            });
            let since = |a: Option<u64>| t.takeover_us.zip(a).map(|(o, x)| ms(x, o));
            // The joined backup's takeover (`--kill-new-primary-ms`), measured as the first.
            let k2 = rp.second_kill_us;
            let t2 = t_of(&rp.second_takeover);
            let first_after_t2 = t2.and_then(|t| recv.iter().copied().filter(|&r| r >= t).min());
            let stall2 = k2.and_then(|k| {
                let before = recv.iter().copied().filter(|&r| r < k).max()?;
                longest_gap(&recv, before, first_after_t2? + STALL_WINDOW_US)
            });
            json!({
                "rejoin_delay_ms": args.rejoin_delay_ms,
                "takeover_to_start_ms": since(rp.spawned_us),
                "takeover_to_join_ms": since(joined_us),
                "takeover_to_protected_ms": since(protected_us),
                "takeover_to_arbiter_standby_ms": since(t_of(&rp.arbiter_standby)),
                "join_to_first_commit_ms": get(&rp.protected, "join_to_commit_ms"),
                "history_steps": get(&rp.joined, "history_steps"),
                "history_bytes": get(&rp.joined, "history_bytes"),
                "catchup_chunks": get(&rp.joined, "catchup_chunks"),
                "catchup_send_ms": get(&rp.joined, "send_ms"),
                "caught_up_steps": get(&rp.caught_up, "steps"),
                "max_held_frames_after_join": rp.max_held,
                "client_stall_ms": stall.map(|g| g as f64 / 1e3),
                "answered_after_protected": rtt_r.len(),
                "new_primary_killed": k2.is_some(),
                "second_detection_ms": k2.zip(t2).map(|(k, x)| ms(x, k)),
                "second_failover_ms": k2.zip(first_after_t2)
                    .map(|(k, x)| ms(x, k)),
                "second_client_stall_ms": stall2.map(|g| g as f64 / 1e3),
            })
        }),
        client_rtt_reprotected: to_ns(Percentiles::of(&rtt_r)),
        times_unix_us: json!({"client_start": t.client_start_us, "kill": t.kill_us,
            "takeover": t.takeover_us, "first_answer_after_kill": first_after,
            "first_answer_after_takeover": first_after_takeover, "rejoin_start": rp.spawned_us,
            "new_primary_kill": rp.second_kill_us, "second_takeover": t_of(&rp.second_takeover),
            "joined": joined_us, "protected_again": protected_us}),
        wall_secs: started.elapsed().as_secs_f64(),
        split_brain_check: Value::Null,
        service_lost: false,
    }
}

/// The files the demo writes besides the nodes' own (`<role>-wire.pcap`, `<role>-packets.csv`,
/// `<who>.log`, `<who>-events.jsonl`).
pub const FILES: [&str; 5] = [
    "report.json",
    "requests.csv",
    "summary.txt",
    "timeline.png",
    "timeline.svg",
];

fn write_report(out: &Path, r: &FailoverReport, answers: &[Answer]) -> Result<(), DemoError> {
    let w = |name: &str, bytes: &[u8]| {
        std::fs::write(out.join(name), bytes)
            .map_err(|e| DemoError::Run(format!("cannot write {name}: {e}")))
    };
    let json = serde_json::to_string_pretty(r).map_err(|e| DemoError::Run(e.to_string()))?;
    w("report.json", (json + "\n").as_bytes())?;
    let kill = r.times_unix_us.get("kill").and_then(Value::as_u64);
    let protected_again = r
        .times_unix_us
        .get("protected_again")
        .and_then(Value::as_u64);
    let second_takeover = r
        .times_unix_us
        .get("second_takeover")
        .and_then(Value::as_u64);
    let mut csv = String::from("n,sent_us,recv_us,rtt_us,served_by\n");
    for a in answers {
        let by = match (kill.is_some_and(|k| a.recv_us >= k), r.killed) {
            (true, Victim::Primary) if second_takeover.is_some_and(|t| a.recv_us >= t) => "rejoin",
            (true, Victim::Primary) if protected_again.is_some_and(|p| a.sent_us > p) => {
                "backup-protected"
            }
            (true, Victim::Primary | Victim::LinkThenPrimary) => "backup",
            (true, _) => "primary-unprotected",
            _ => "primary",
        };
        csv += &format!(
            "{},{},{},{},{by}\n",
            a.n,
            a.sent_us,
            a.recv_us,
            a.recv_us.saturating_sub(a.sent_us)
        );
    }
    w("requests.csv", csv.as_bytes())?;
    w("summary.txt", summary(r, out).as_bytes())?;
    let origin = r
        .times_unix_us
        .get("client_start")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let secs = |us: u64| us.saturating_sub(origin) as f64 / 1e6;
    let data = plot::TimelineData {
        points: answers
            .iter()
            .map(|a| plot::TimelinePoint {
                at_s: secs(a.recv_us),
                rtt_ns: a.recv_us.saturating_sub(a.sent_us) as f64 * 1e3,
                after_kill: kill.is_some_and(|k| a.recv_us >= k),
            })
            .collect(),
        kill_s: kill.map(secs),
        takeover_s: r
            .times_unix_us
            .get("takeover")
            .and_then(Value::as_u64)
            .map(secs),
        after_label: match r.killed {
            Victim::Primary | Victim::LinkThenPrimary => "answered by the backup".into(),
            _ => "answered by the primary, unprotected".into(),
        },
        event_label: match r.killed {
            Victim::Primary | Victim::LinkThenPrimary => "backup takes over".into(),
            _ => "primary unprotects".into(),
        },
        kill_label: match r.killed {
            Victim::Link => "link cut".into(),
            Victim::LinkThenPrimary => "SIGKILL primary (after the link cut)".into(),
            v => format!("SIGKILL {}", v.name()),
        },
        rejoin_s: r
            .times_unix_us
            .get("joined")
            .and_then(Value::as_u64)
            .map(secs),
        rejoin_label: "new backup joins".into(),
    };
    let (png, svg) = plot::render(&data)
        .map_err(|e| DemoError::Run(format!("cannot draw the timeline: {e}")))?;
    w("timeline.png", &png)?;
    w("timeline.svg", svg.as_bytes())?;
    Ok(())
}

/// The human summary.
pub fn summary(r: &FailoverReport, out: &Path) -> String {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.1} ms")).unwrap_or("-".into());
    let ms = |ns: u64| ns as f64 / 1e6;
    let pct = |v: &Option<Value>, k: &str| {
        v.as_ref()
            .and_then(|p| p.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let mut s = format!("failover demo: {}\n", if r.ok { "PASS" } else { "FAIL" });
    for e in &r.errors {
        s += &format!("  error: {e}\n");
    }
    let after = match r.killed {
        Victim::Primary => "from the backup after the kill",
        _ => "after the kill",
    };
    s += &format!(
        "answers: {} ({} {after}); consistent running totals, no reset, no EOF: {}\n",
        r.answered,
        r.answered_by_backup,
        if r.ok { "yes" } else { "no" }
    );
    if let Some(p) = r.kill_plan {
        let what = match r.killed {
            Victim::Link => "replication link cut".to_string(),
            Victim::LinkThenPrimary => {
                "replication link cut, then SIGKILL to the primary".to_string()
            }
            v => format!("SIGKILL to the {}", v.name()),
        };
        s += &format!(
            "kill: {what} after answer {} + {:.1} ms\n",
            p.after_answer,
            p.extra_us as f64 / 1e3
        );
    }
    let c = &r.split_brain_check;
    let tx = |who: &str| {
        c.get(who)
            .and_then(|n| n.get("service_tx"))
            .and_then(Value::as_u64)
            .map(|v| v.to_string())
            .unwrap_or("- (killed)".into())
    };
    s += &format!(
        "frames under the service MAC written to the TAP: primary {}, backup {}; takeover requests refused by the arbiter: {}; fenced: {}\n",
        tx("primary"),
        tx("backup"),
        c.get("backup")
            .and_then(|n| n.get("takeover_refused"))
            .and_then(Value::as_u64)
            .map(|v| v.to_string())
            .unwrap_or("-".into()),
        c.get("fenced")
            .and_then(Value::as_array)
            .map(|a| a.len())
            .unwrap_or(0)
    );
    if let Some(l) = c.get("backup").and_then(|n| n.get("lapse"))
        && l.get("lapses").and_then(Value::as_u64).unwrap_or(0) > 0
    {
        let n = |k: &str| l.get(k).and_then(Value::as_u64).unwrap_or(0);
        s += &format!(
            "lease lapses of the backup while it served alone: {} ({} regained by a grant, {} past the grace: fenced); longest {:.1} ms; frames held then released {}, dropped over the bound {}\n",
            n("lapses"),
            n("regained"),
            n("expired"),
            n("longest_us") as f64 / 1e3,
            n("released"),
            n("dropped_over_bound")
        );
    }
    if r.service_lost {
        s += "service lost after the primary's kill, as it must be: the primary had served alone, so the backup's replica was behind and the arbiter refused it the lease (no takeover, no wrong answer)\n";
    }
    if matches!(r.killed, Victim::Backup | Victim::Link) {
        s += &format!(
            "backup lost: kill -> primary unprotected {}; client stall {} (output held until the unprotect released it)\n",
            f(r.detection_ms),
            f(r.client_stall_ms)
        );
    } else if matches!(r.killed, Victim::Primary | Victim::LinkThenPrimary) && !r.service_lost {
        s += &format!(
            "failure detection (kill -> takeover): {}; failover (kill -> first answer from the backup): {}; client stall (longest wait for an answer): {}\n",
            f(r.detection_ms),
            f(r.failover_ms),
            f(r.client_stall_ms)
        );
    }
    s += &format!(
        "frames discarded at the primary (held for uncommitted epochs when it died): {}; epochs replayed by the backup: {}\n",
        r.frames_discarded_at_primary
            .map(|v| v.to_string())
            .unwrap_or("-".into()),
        r.replayed_epochs
            .map(|v| v.to_string())
            .unwrap_or("-".into())
    );
    s += &format!(
        "added delay in the adapter before the kill: protected p50 {:.2} ms p99 {:.2} ms; plain p50 {:.1} µs p99 {:.1} µs\n",
        ms(pct(&r.added_delay_protected, "p50_ns")),
        ms(pct(&r.added_delay_protected, "p99_ns")),
        pct(&r.added_delay_plain, "p50_ns") as f64 / 1e3,
        pct(&r.added_delay_plain, "p99_ns") as f64 / 1e3,
    );
    s += &format!(
        "client round trip: protected (primary) p50 {:.1} ms p99 {:.1} ms; unprotected (backup after takeover) p50 {:.1} ms p99 {:.1} ms\n",
        ms(r.client_rtt_protected.p50_ns),
        ms(r.client_rtt_protected.p99_ns),
        ms(r.client_rtt_unprotected.p50_ns),
        ms(r.client_rtt_unprotected.p99_ns),
    );
    if let Some(rp) = &r.reprotect {
        let v = |k: &str| rp.get(k).and_then(Value::as_f64);
        let n = |k: &str| {
            rp.get(k)
                .and_then(Value::as_u64)
                .map(|x| x.to_string())
                .unwrap_or("-".into())
        };
        s += &format!(
            "re-protection: takeover -> new backup started {}, joined {}, protected again (first commit on its ack) {}; join -> first commit {}\n",
            f(v("takeover_to_start_ms")),
            f(v("takeover_to_join_ms")),
            f(v("takeover_to_protected_ms")),
            f(v("join_to_first_commit_ms")),
        );
        s += &format!(
            "catch-up: {} steps, {} bytes of history in {} chunks (sent in {}); most frames held after the join {}; client stall around the join {}\n",
            n("history_steps"),
            n("history_bytes"),
            n("catchup_chunks"),
            f(v("catchup_send_ms")),
            n("max_held_frames_after_join"),
            f(v("client_stall_ms")),
        );
        s += &format!(
            "client round trip: protected before the kill p50 {:.1} ms p99 {:.1} ms; unprotected p50 {:.1} ms p99 {:.1} ms; protected again p50 {:.1} ms p99 {:.1} ms ({} requests)\n",
            ms(r.client_rtt_protected.p50_ns),
            ms(r.client_rtt_protected.p99_ns),
            ms(r.client_rtt_unprotected.p50_ns),
            ms(r.client_rtt_unprotected.p99_ns),
            ms(r.client_rtt_reprotected.p50_ns),
            ms(r.client_rtt_reprotected.p99_ns),
            r.client_rtt_reprotected.count,
        );
        if rp.get("new_primary_killed").and_then(Value::as_bool) == Some(true) {
            s += &format!(
                "new primary killed after re-protection: detection (kill -> takeover by the joined backup) {}; failover (kill -> first answer from it) {}; client stall {}\n",
                f(v("second_detection_ms")),
                f(v("second_failover_ms")),
                f(v("second_client_stall_ms")),
            );
        }
    }
    s += &format!(
        "report: {}/{{{}, primary-wire.pcap, backup-wire.pcap, primary-packets.csv, backup-packets.csv{}}}\n",
        out.display(),
        FILES.join(", "),
        if r.reprotect.is_some() {
            ", rejoin-wire.pcap, rejoin-packets.csv"
        } else {
            ""
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_is_the_longest_gap_around_the_takeover() {
        let recv = [100, 110, 120, 180, 181, 300, 2_000];
        assert_eq!(longest_gap(&recv, 110, 200), Some(60));
        assert_eq!(longest_gap(&recv, 110, 300), Some(119));
        assert_eq!(longest_gap(&recv, 120, 120), None);
        assert_eq!(longest_gap(&[], 0, u64::MAX), None);
    }

    #[test]
    fn kill_plans_are_seeded_and_mid_stream() {
        assert_eq!(kill_plan(3, 400, 20), kill_plan(3, 400, 20));
        let plans: Vec<KillPlan> = (1..=20).map(|s| kill_plan(s, 400, 20)).collect();
        assert!(plans.iter().all(|p| (100..240).contains(&p.after_answer)));
        assert!(plans.iter().all(|p| p.extra_us < 20_000));
        assert!(plans.windows(2).any(|w| w[0] != w[1]));
    }
}

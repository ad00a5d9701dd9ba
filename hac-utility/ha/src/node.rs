//! One host of the failover pair (run by `hac ha-node`). It owns a model NIC run in real time whose wire
//! port is bridged to a TAP device, a checkpointing VF carrying the protected service
//! ([`crate::service`]) and a plain VF carrying background traffic.
//!
//! * **Primary**: mirrors the frames its VF receives to the backup as they arrive, steps the
//!   service with them, logs every step, and at each epoch boundary opens the next HAC epoch
//!   and ships the closed epoch's log to the backup; when the backup acks an epoch the HAC layer commits it (its frames leave). Backup
//!   silent for the timeout: unprotect (release everything, stop buffering) and say so.
//! * **Backup**: replays each log into its own identical service with the output suppressed,
//!   then acks. Its TAP delivers only its plain VF's frames to the model until takeover (the
//!   bridge floods the client's broadcasts to it). Primary silent for the timeout: take over —
//!   same VF MAC and IP, untagged, gratuitous ARP, the VF's received frames go to the service.
//! * **Re-protection** ([`crate::rejoin`]): a backup started with `--join` connects to a live
//!   node that took over and sends `Join`; the live node (which kept its listener and the
//!   service's whole step history) tags its service VF again, sends the hello and the history,
//!   and runs epochs as a primary does; the joined backup replays the history, then the logs,
//!   and acks them. A joining node sits on the lost primary's host: it takes that host's plain
//!   MAC, listens on that host's end of the replication link (for a later joiner, should it
//!   take over), names its files `rejoin-*` and is [`REJOIN_NODE_ID`] at the arbiter.
//! * **With an arbiter** ([`crate::arbiter`], `--arbiter`): the live node (the primary, or a
//!   backup that took over) renews its lease every heartbeat, naming its backup (the first
//!   one, or the one that joined) as its in-sync standby while protected (`Protected{standby}`)
//!   and claiming `Alone` otherwise; a lost peer is acted on only once the arbiter grants it
//!   (the live node's `Alone`, a standby's `Takeover` — granted only to the standby the live
//!   node last named); a node serving alone whose lease runs out in its own clock holds its
//!   output under the service MAC until a fresh grant ([`crate::lapse`]: a stall of its loop
//!   or of the arbiter is not a refusal), and fences itself (the service stops, nothing under
//!   its MAC reaches the TAP) when the arbiter refuses it or no grant comes within the grace.
//! * **Clocks**: every timer runs on the node's own monotonic clock; a backup follows the live
//!   node's service clock from its messages (`AdoptedClock`; a joined backup gets the takeover
//!   jump too), never its own wall clock.
//!
//! Status goes to stdout as JSON lines (`ready`, `status`, `held`, `takeover`, `unprotected`,
//! `peer_lost`, `takeover_refused`, `lease_lapsed`, `lease_regained`, `fenced`, `unfenced`,
//! `link_closed`,
//! `joined`, `join_refused`, `protected`, `caught_up`, `exit`) for the orchestrator; the node
//! exits cleanly when its stdin closes.

use std::collections::VecDeque;
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, bounded};
use hac_driver::hac::{AdapterHac, Hac, VfNumber};
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma};
use hac_driver::pf::PfConfig;
use hac_driver::vf::{VfConfig, VfDriver};
use hac_sys::{TapDevice, poll_readable};
use igb_hw::{MacAddress, VfIndex};
use igb_model::{FunctionId, LineRate, NicConfig, PcapSink, SimTime, WireSink};
use serde_json::json;

use crate::arbiter::{Claim, LeaseClient, LeaseMessage, MAX_DATAGRAM, Verdict};
use crate::lapse::{LapseEvent, LapseGate, MAX_LAPSE_HELD};
use crate::msg::{Message, Step, StreamDecoder};
use crate::rejoin::{EpochError, History, JoinRefused, Protection, join_reply, replay};
use crate::service::{Service, ServiceConfig};
use crate::stats::LatencyHistogram;
pub use crate::status::unix_us;
use crate::status::{emit_line, stop_when_stdin_closes};

/// MAC of the protected service's VF, the same on both hosts.
pub const SERVICE_MAC: MacAddress = MacAddress([0x02, 0x1B, 0x21, 0xC1, 0x00, 0x0A]);
/// Ethertype of background frames (IEEE local experimental, as the scenario engine's test
/// frames).
pub const BACKGROUND_ETHERTYPE: u16 = 0x88B5;
/// The checkpointing VF.
const SERVICE_VF: usize = 0;
/// [`SERVICE_VF`] as the HAC contract names it.
const SERVICE_HAC_VF: VfNumber = VfNumber::new(0);
/// The plain VF.
const PLAIN_VF: usize = 1;
/// Longest stretch of device time one tick runs.
const MAX_TICK_NS: u64 = 5_000_000;
/// How long the main loop waits for the TAP at most, µs.
const IDLE_WAIT_US: u64 = 500;
/// Most frames for the service the standby backup keeps (the newest; older ones are counted as
/// `standby_dropped`).
const STANDBY_RX_FRAMES: usize = 256;

/// The standby backup's frames for the service, delivered to the replica at takeover: the ones
/// the primary mirrored (`Mirror`, sent before the step that consumes them, so the next `Log`
/// covers them) and the ones the switch sent to this host's port (its port mirror, or its
/// flooding once the primary's port is gone). A frame from the switch may arrive before the
/// primary read it from its own port, so the next `Log` need not cover it: it is kept across
/// one `Log` and dropped at the second. Delivering a frame the replica already replayed is
/// harmless: TCP acknowledges a duplicate segment and discards it.
#[derive(Debug, Default)]
struct StandbyRx {
    /// (logs seen when it arrived, from the switch, frame), oldest first.
    frames: VecDeque<(u64, bool, Vec<u8>)>,
    logs: u64,
    dropped: u64,
}

impl StandbyRx {
    /// Keeps a frame (the newest [`STANDBY_RX_FRAMES`]; older ones are counted as dropped).
    fn keep(&mut self, frame: Vec<u8>, from_switch: bool) {
        if self.frames.len() == STANDBY_RX_FRAMES {
            self.frames.pop_front();
            self.dropped += 1;
        }
        self.frames.push_back((self.logs, from_switch, frame));
    }

    /// A `Log` arrived: it covers every mirrored frame and every frame from the switch that
    /// arrived before the previous `Log`.
    fn on_log(&mut self) {
        self.logs += 1;
        let logs = self.logs;
        self.frames
            .retain(|(seen, from_switch, _)| *from_switch && seen + 1 >= logs);
    }

    /// The kept frames, oldest first, for the replica.
    fn drain(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.frames.drain(..).map(|(_, _, f)| f)
    }
}

/// The node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the service, ships logs, commits on ack.
    Primary,
    /// Replays logs; takes over when the primary goes silent.
    Backup,
}

impl Role {
    /// `primary` or `backup`, as on the command line and in the status lines.
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
        }
    }
    /// MAC of this role's plain VF.
    pub fn plain_mac(self) -> MacAddress {
        match self {
            Role::Primary => MacAddress([0x02, 0x1B, 0x21, 0xC1, 0x01, 0x01]),
            Role::Backup => MacAddress([0x02, 0x1B, 0x21, 0xC1, 0x02, 0x01]),
        }
    }
    /// The node id this role uses towards the lease arbiter.
    pub fn node_id(self) -> u32 {
        match self {
            Role::Primary => 1,
            Role::Backup => 2,
        }
    }
    fn other(self) -> Role {
        match self {
            Role::Primary => Role::Backup,
            Role::Backup => Role::Primary,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "primary" => Ok(Role::Primary),
            "backup" => Ok(Role::Backup),
            _ => Err(format!("unknown role {s:?} (primary or backup)")),
        }
    }
}

/// One node's configuration (the `hac ha-node` arguments).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// primary or backup.
    pub role: Role,
    /// The TAP interface the model's wire port is bridged to (must exist and be up).
    pub tap: String,
    /// Replication link: the backup listens here, the primary connects here.
    pub link: SocketAddr,
    /// The lease arbiter (UDP, [`crate::arbiter`]); without one the heartbeat timeout alone
    /// decides (and a replication-link failure makes a split brain).
    pub arbiter: Option<SocketAddr>,
    /// A granted lease ends this long before `send time + lease` in this node's own clock, ms.
    pub lease_margin_ms: u64,
    /// Serving alone with a lapsed lease, the node holds its output this long for a fresh
    /// grant before it fences itself, ms.
    pub lease_grace_ms: u64,
    /// The service's IPv4 address.
    pub service_ip: std::net::Ipv4Addr,
    /// The service's TCP port.
    pub port: u16,
    /// The service's random seed (the same on both nodes).
    pub seed: u64,
    /// Epoch (checkpoint interval), ms.
    pub epoch_ms: u64,
    /// Heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Peer declared lost after this long without a message from it, ms.
    pub timeout_ms: u64,
    /// Background frames per second on the plain VF.
    pub background_pps: u64,
    /// On takeover, advance the service clock by this much (smoltcp's minimum retransmission
    /// timeout is 1 s), so output the client may have missed is resent at once, ms.
    pub takeover_clock_jump_ms: u64,
    /// Directory for `<role>-wire.pcap` and `<role>-packets.csv`.
    pub out: Option<PathBuf>,
    /// Backup only: join the live node at this address (after a takeover) instead of
    /// waiting for a primary on `link` (where it then listens for a later joiner, should it
    /// take over).
    pub join: Option<SocketAddr>,
    /// Bound of the service's step history kept for a later joining backup, bytes.
    pub history_bytes: u64,
}

/// The lease-arbiter node id of a backup that joins after a takeover (the primary is 1, the
/// first backup 2): the id the live node names as its standby once the joined backup is in
/// sync.
pub const REJOIN_NODE_ID: u32 = 3;

impl NodeConfig {
    /// This node's id at the lease arbiter (and in its `Join`): 1 primary, 2 backup,
    /// [`REJOIN_NODE_ID`] for a joining backup.
    pub fn node_id(&self) -> u32 {
        if self.join.is_some() {
            REJOIN_NODE_ID
        } else {
            self.role.node_id()
        }
    }

    /// Name of this node's files and status lines: its role, or `rejoin` for a joining backup.
    pub fn name(&self) -> &'static str {
        if self.join.is_some() {
            "rejoin"
        } else {
            self.role.name()
        }
    }

    /// (own, peer) plain-VF MACs: a joining backup replaces the lost primary on its host and
    /// takes the primary's.
    fn plain_macs(&self) -> (MacAddress, MacAddress) {
        let host = if self.join.is_some() {
            Role::Primary
        } else {
            self.role
        };
        (host.plain_mac(), host.other().plain_mac())
    }
}

/// Why a node stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Setting up the device failed.
    #[error("device: {0}")]
    Driver(#[from] hac_driver::DriverError),
    /// The HAC layer refused.
    #[error("HAC: {0}")]
    Hac(#[from] hac_driver::hac::HacError),
    /// The VF used every checkpoint epoch (docs/hac.md: epoch rules); it must be re-tagged.
    #[error(
        "the service VF used every checkpoint epoch up to {}; re-tag it to continue",
        adapter_core::LAST_EPOCH
    )]
    EpochsExhausted,
    /// The TAP, the link or an output file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl From<EpochError> for NodeError {
    fn from(e: EpochError) -> NodeError {
        match e {
            EpochError::Hac(h) => NodeError::Hac(h),
            EpochError::Exhausted => NodeError::EpochsExhausted,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}

type ModelVf = VfDriver<ModelBar, ModelDma, ModelClock>;

/// A frame that left the wire port: (device time ns, bytes).
type WireOut = Arc<Mutex<Vec<(u64, Bytes)>>>;

struct WireTap(WireOut);

impl WireSink for WireTap {
    fn on_frame(&mut self, at: SimTime, frame: &[u8]) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((at.as_nanos(), Bytes::copy_from_slice(frame)));
        Ok(())
    }
}

enum LinkEvent {
    Message(Message),
    Closed(String),
}

/// A link event tagged with the connection it came from (a joined backup's link replaces the
/// dead primary's; late events of an old connection are ignored).
type TaggedEvent = (u64, LinkEvent);

/// Messages the link reader may queue for the node loop before it blocks.
const LINK_QUEUE: usize = 64;

/// Reads messages from the link until it closes or is malformed.
fn spawn_reader(mut stream: TcpStream, generation: u64, tx: Sender<TaggedEvent>) {
    std::thread::spawn(move || {
        let mut dec = StreamDecoder::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    let _ = tx.send((generation, LinkEvent::Closed("end of stream".into())));
                    return;
                }
                Ok(n) => {
                    dec.push(&buf[..n]);
                    loop {
                        match dec.next_message() {
                            Ok(Some(m)) => {
                                if tx.send((generation, LinkEvent::Message(m))).is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                let _ = tx.send((
                                    generation,
                                    LinkEvent::Closed(format!("malformed: {e}")),
                                ));
                                return;
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send((generation, LinkEvent::Closed(e.to_string())));
                    return;
                }
            }
        }
    });
}

/// The replication link's sending side.
struct Link {
    stream: Option<TcpStream>,
    /// The attached connection's number; events of older ones are stale.
    generation: u64,
    events: Receiver<TaggedEvent>,
    sender: Sender<TaggedEvent>,
    scratch: Vec<u8>,
}

/// Write timeout of the replication link (a peer that stops reading is dropped after it).
const LINK_WRITE_TIMEOUT: Duration = Duration::from_millis(50);
/// Write timeout while a catch-up is sent (the joining backup replays as it reads).
const CATCHUP_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

impl Link {
    /// Makes `stream` the link (replacing any older one).
    fn attach(&mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(LINK_WRITE_TIMEOUT));
        self.generation += 1;
        if let Ok(r) = stream.try_clone() {
            spawn_reader(r, self.generation, self.sender.clone());
        }
        self.stream = Some(stream);
    }

    /// Sends `m`; a failed link is dropped (the heartbeat timeout decides what it means).
    fn send(&mut self, m: &Message) {
        self.scratch.clear();
        if m.emit(&mut self.scratch).is_err() {
            return;
        }
        if let Some(s) = &mut self.stream
            && s.write_all(&self.scratch).is_err()
        {
            self.stream = None;
        }
    }
}

/// What became of the frames written to the TAP: the kernel took them, dropped them because its
/// queue was full (`Ok(false)`), or refused them with an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TapTxCounters {
    sent: u64,
    dropped: u64,
    errors: u64,
}

impl TapTxCounters {
    fn count(&mut self, result: std::io::Result<bool>) {
        match result {
            Ok(true) => self.sent += 1,
            Ok(false) => self.dropped += 1,
            Err(_) => self.errors += 1,
        }
    }
}

/// Gaps between the peer's messages in 1 ms buckets (the last one holds everything ≥ 1 s), so
/// a node running for days keeps a fixed-size record: the false-positive margin of the timeout.
#[derive(Clone, Debug)]
struct GapHistogram {
    buckets: Box<[u64; 1001]>,
    count: u64,
    max_us: u64,
}

impl Default for GapHistogram {
    fn default() -> Self {
        GapHistogram {
            buckets: Box::new([0; 1001]),
            count: 0,
            max_us: 0,
        }
    }
}

impl GapHistogram {
    fn record(&mut self, gap_us: u64) {
        let b = (gap_us / 1000).min(1000) as usize;
        self.buckets[b] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(gap_us);
    }

    /// Gaps of at least `ms` milliseconds.
    fn at_least_ms(&self, ms: u64) -> u64 {
        self.buckets[(ms.min(1000)) as usize..].iter().sum()
    }

    /// The bucket (ms) holding the `p` quantile (nearest rank).
    fn quantile_ms(&self, p: f64) -> u64 {
        let rank = ((p * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (ms, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return ms as u64;
            }
        }
        0
    }

    fn summary(&self, timeout_ms: u64) -> serde_json::Value {
        json!({"count": self.count, "p50_ms": self.quantile_ms(0.5),
            "p99_ms": self.quantile_ms(0.99), "p999_ms": self.quantile_ms(0.999),
            "max_ms": self.max_us as f64 / 1e3,
            "at_least_ms": {"10": self.at_least_ms(10), "20": self.at_least_ms(20),
                "30": self.at_least_ms(30), "40": self.at_least_ms(40)},
            "at_least_timeout": self.at_least_ms(timeout_ms)})
    }
}

/// Per-class added delay (wire − submit, device ns) with FIFO matching per VF.
#[derive(Default)]
struct DelayTrack {
    pending: VecDeque<(u64, u64)>,
    delays: LatencyHistogram,
    submitted: u64,
    on_wire: u64,
}

/// The primary's service clock as the backup knows it: the newest primary service time it was
/// told and when that was in the backup's own monotonic clock. Only differences within each
/// host's clock are used, so the two hosts need no common clock (docs/failover.md,
/// "Replication by deterministic replay").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct AdoptedClock {
    primary_us: i64,
    local_us: u64,
    /// Told at least once (until then the estimate means nothing).
    known: bool,
}

impl AdoptedClock {
    /// The primary's service time now, by the backup's monotonic clock `local_us`.
    fn now(&self, local_us: u64) -> i64 {
        let elapsed = local_us.saturating_sub(self.local_us).min(i64::MAX as u64) as i64;
        self.primary_us.saturating_add(elapsed)
    }

    /// The primary said its service time was `primary_us` (received at `local_us`): adopted
    /// when ahead of the running estimate, so a late message never turns the clock back.
    fn observe(&mut self, primary_us: i64, local_us: u64) {
        if !self.known || primary_us > self.now(local_us) {
            *self = AdoptedClock {
                primary_us,
                local_us,
                known: true,
            };
        }
    }
}

/// The node's lease at the arbiter.
struct LeaseState {
    sock: UdpSocket,
    client: LeaseClient,
    next_request_us: u64,
    /// Datagrams from the arbiter that were not lease messages.
    malformed: u64,
    /// Held the lease at the last check (for the `lease_lapsed` event).
    held: bool,
}

struct Node {
    args: NodeConfig,
    model: Model,
    vfs: Vec<ModelVf>,
    hac: AdapterHac<ModelBar>,
    tap: TapDevice,
    wire_out: WireOut,
    started: Instant,
    link: Link,
    service: Option<Service>,
    service_config: ServiceConfig,
    /// Primary: the Unix time it sent in its hello (its service time 0); backup: the hello's.
    time_base_us: u64,
    /// Backup: the primary's service clock, adopted from its messages.
    adopted: AdoptedClock,
    /// Backup: service time of the last step replayed.
    last_replayed_at_us: i64,
    clock_jump_us: i64,
    pending_tx: VecDeque<Bytes>,
    track: [DelayTrack; 2],
    packets: Option<BufWriter<std::fs::File>>,
    // Live (the primary, or a backup after its takeover).
    protection: Protection,
    next_epoch_us: u64,
    /// Every step since time 0, for a backup that joins later.
    history: History,
    /// Where joining backups connect (the backup keeps the listener the primary came in on).
    listener: Option<TcpListener>,
    /// When the last backup joined, monotonic µs (cleared at its first commit: protection
    /// resumed).
    joined_us: Option<u64>,
    /// The backup this live node replicates to, as the arbiter knows it (the first backup,
    /// or the one that joined): named in its `Protected` lease claims.
    standby_id: Option<u32>,
    // Joining backup.
    catchup_steps: u64,
    // Backup.
    live: bool,
    replayed_epochs: u64,
    suppressed_frames: u64,
    /// Frames for the service not yet covered by the primary's logs — mirrored by the primary,
    /// or sent here by the switch — delivered to the service at takeover (what the dead primary
    /// received and never shipped, or never received).
    standby_rx: StandbyRx,
    standby_delivered: u64,
    // Both.
    lease: Option<LeaseState>,
    /// Primary: the backup is lost and the node waits for the lease to go on alone.
    want_alone: bool,
    /// Backup: the primary is lost and the node waits for the lease to take over.
    want_takeover: bool,
    /// Takeover requests the arbiter refused.
    takeover_refused: u64,
    /// The node may not serve: the arbiter refused it, or its lease lapsed past the grace.
    fenced: bool,
    /// Frames under the service MAC not written to the TAP because the node was fenced (also
    /// those held during a lapse that then expired).
    fenced_dropped: u64,
    /// Serving alone with a lapsed lease: the service MAC's frames wait here for a fresh grant.
    lapse: LapseGate<(u64, Bytes)>,
    /// Frames for the service discarded while fenced.
    fenced_rx_dropped: u64,
    /// Frames under the service MAC written to the TAP, and the Unix time of the last one.
    service_tx: u64,
    service_tx_last_unix_us: u64,
    last_peer_us: u64,
    heard_peer: bool,
    /// Gaps between consecutive messages from the peer (the heartbeat gap distribution).
    peer_gaps: GapHistogram,
    next_heartbeat_us: u64,
    heartbeat_seq: u64,
    next_background_us: u64,
    background_seq: u64,
    background_rx: u64,
    tap_rx: u64,
    tap_tx: TapTxCounters,
    tap_filtered: u64,
    last_held: u64,
    next_status_us: u64,
}

/// Runs a node until its stdin closes.
pub fn run(args: NodeConfig) -> Result<(), NodeError> {
    let role = args.role;
    let tap = TapDevice::open(&args.tap).map_err(io_err(format!("opening TAP {}", args.tap)))?;
    let model = Model::new(NicConfig {
        line_rate: LineRate::G1,
        ..NicConfig::default()
    });
    let wire_out: WireOut = Arc::default();
    model
        .nic()
        .add_wire_sink(Box::new(WireTap(wire_out.clone())));
    let mut packets = None;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let path = dir.join(format!("{}-wire.pcap", args.name()));
        let file =
            std::fs::File::create(&path).map_err(io_err(format!("creating {}", path.display())))?;
        let sink = PcapSink::new(BufWriter::new(file))
            .map_err(io_err(format!("writing {}", path.display())))?;
        model.nic().add_wire_sink(Box::new(sink));
        let path = dir.join(format!("{}-packets.csv", args.name()));
        let file =
            std::fs::File::create(&path).map_err(io_err(format!("creating {}", path.display())))?;
        let mut w = BufWriter::new(file);
        writeln!(w, "vf,seq,len,submit_ns,wire_ns,class")
            .map_err(io_err(format!("writing {}", path.display())))?;
        packets = Some(w);
    }
    let _agent = model.start_pf_agent(
        PfConfig {
            num_vfs: 2,
            ..PfConfig::default()
        },
        &[Some(SERVICE_MAC), Some(args.plain_macs().0)],
    )?;
    let cfg = VfConfig {
        tx_ring_size: 256,
        rx_ring_size: 256,
        ..VfConfig::default()
    };
    // Position n is VF n: `SERVICE_VF` and `PLAIN_VF` index this vector.
    let vfs = VfIndex::all(2)
        .map(|vf| model.vf_driver(vf, cfg.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut hac = AdapterHac::new(model.bar0(FunctionId::Pf), 2);
    let mut protection = Protection::new(SERVICE_HAC_VF);
    if role == Role::Primary {
        protection.protect(&mut hac)?;
    }
    // Bounded: when the node falls behind, the reader blocks, TCP's window closes and the
    // peer's 50 ms write timeout drops the link (a visible link loss, never unbounded memory:
    // at most LINK_QUEUE messages of at most MAX_PAYLOAD bytes wait here).
    let (sender, events) = bounded(LINK_QUEUE);
    let mut link = Link {
        stream: None,
        generation: 0,
        events,
        sender,
        scratch: Vec::new(),
    };
    let now = unix_us();
    let lease = match args.arbiter {
        Some(addr) => {
            let sock = UdpSocket::bind(if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            })
            .and_then(|s| s.connect(addr).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(io_err(format!("opening the arbiter socket to {addr}")))?;
            Some(LeaseState {
                sock,
                client: LeaseClient::new(args.node_id(), args.lease_margin_ms * 1000),
                next_request_us: 0,
                malformed: 0,
                held: false,
            })
        }
        None => None,
    };
    let service_config = ServiceConfig {
        mac: SERVICE_MAC.0,
        ip: args.service_ip,
        prefix: 24,
        port: args.port,
        seed: args.seed,
    };
    let mut service = None;
    let mut listener = None;
    match (role, args.join) {
        (Role::Backup, Some(live)) => {
            // This host's end of the replication link: where a later backup joins this node
            // if it takes over; polled, never waited on.
            let l = TcpListener::bind(args.link)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(io_err(format!("listening on {}", args.link)))?;
            listener = Some(l);
            let stream = connect(live, "the live node")?;
            link.attach(stream);
            link.send(&Message::Join {
                node_id: u64::from(args.node_id()),
            });
            emit_line(
                json!({"ev": "ready", "role": "backup", "joining": live.to_string(),
                "t_unix_us": now}),
            );
        }
        (Role::Backup, None) => {
            let l = TcpListener::bind(args.link)
                .map_err(io_err(format!("listening on {}", args.link)))?;
            emit_line(json!({"ev": "ready", "role": "backup", "t_unix_us": now}));
            let (stream, _) = l.accept().map_err(io_err("accepting the primary"))?;
            link.attach(stream);
            // Kept for a backup that joins after a takeover; polled, never waited on.
            l.set_nonblocking(true)
                .map_err(io_err(format!("listening on {}", args.link)))?;
            listener = Some(l);
        }
        (Role::Primary, _) => {
            let stream = connect(args.link, "the backup")?;
            link.attach(stream);
            link.send(&Message::Hello {
                time_base_us: now,
                seed: args.seed,
                epoch_us: (args.epoch_ms * 1000) as u32,
            });
            service = Some(Service::new(service_config, 0));
            emit_line(json!({"ev": "ready", "role": "primary", "t_unix_us": now}));
        }
    }
    let stop = stop_when_stdin_closes();
    let mut node = Node {
        model,
        vfs,
        hac,
        tap,
        wire_out,
        started: Instant::now(),
        link,
        service,
        time_base_us: if role == Role::Primary { now } else { 0 },
        adopted: AdoptedClock::default(),
        last_replayed_at_us: 0,
        clock_jump_us: 0,
        pending_tx: VecDeque::new(),
        track: Default::default(),
        packets,
        protection,
        next_epoch_us: args.epoch_ms * 1000,
        history: History::new(args.history_bytes),
        listener,
        joined_us: None,
        standby_id: (role == Role::Primary).then(|| Role::Backup.node_id()),
        catchup_steps: 0,
        live: role == Role::Primary,
        replayed_epochs: 0,
        suppressed_frames: 0,
        standby_rx: StandbyRx::default(),
        standby_delivered: 0,
        lease,
        want_alone: false,
        want_takeover: false,
        takeover_refused: 0,
        fenced: false,
        fenced_dropped: 0,
        lapse: LapseGate::new(args.lease_grace_ms * 1000, MAX_LAPSE_HELD),
        fenced_rx_dropped: 0,
        service_tx: 0,
        service_tx_last_unix_us: 0,
        last_peer_us: 0,
        heard_peer: role == Role::Primary,
        peer_gaps: GapHistogram::default(),
        next_heartbeat_us: 0,
        heartbeat_seq: 0,
        next_background_us: 0,
        background_seq: 0,
        background_rx: 0,
        tap_rx: 0,
        tap_tx: TapTxCounters::default(),
        tap_filtered: 0,
        last_held: 0,
        next_status_us: 0,
        args,
        service_config,
    };
    while !stop.load(Ordering::SeqCst) {
        node.iteration()?;
    }
    node.finish();
    Ok(())
}

/// A live node's heartbeat time: `time_base_us` (its hello's) plus its service time `service_us`
/// less its takeover jump `clock_jump_us` (which [`join_reply`] folds into the time base it
/// gives a joining backup).
fn told_time(time_base_us: u64, service_us: i64, clock_jump_us: i64) -> u64 {
    time_base_us.wrapping_add(service_us.saturating_sub(clock_jump_us) as u64)
}

/// Connects to `addr`, retrying for up to 10 s (the peer may still be starting).
fn connect(addr: SocketAddr, what: &str) -> Result<TcpStream, NodeError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => {
                return Err(io_err(format!("connecting to {what} at {addr}"))(e));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A gratuitous ARP request announcing `ip` at `mac` (RFC 5227 §3: sender and target IP both
/// the announced address).
pub fn gratuitous_arp(mac: MacAddress, ip: std::net::Ipv4Addr) -> Vec<u8> {
    let mut arp = Vec::with_capacity(28);
    arp.extend_from_slice(&1u16.to_be_bytes()); // HTYPE Ethernet
    arp.extend_from_slice(&igb_hw::frame::ETHERTYPE_IPV4.to_be_bytes());
    arp.push(6);
    arp.push(4);
    arp.extend_from_slice(&1u16.to_be_bytes()); // request
    arp.extend_from_slice(&mac.0);
    arp.extend_from_slice(&ip.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&ip.octets());
    let mut f = igb_hw::frame::build(
        MacAddress([0xFF; 6]),
        mac,
        igb_hw::frame::ETHERTYPE_ARP,
        &arp,
    );
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

impl Node {
    fn role(&self) -> Role {
        self.args.role
    }

    /// This node's monotonic clock: µs since it started (every timer runs on it; the Unix time
    /// only stamps the status lines).
    fn mono_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Service time at monotonic time `now`: the primary's own clock; on the backup the
    /// primary's clock adopted from its messages, never before the last replayed step.
    fn service_now(&self, now: u64) -> i64 {
        let base = match self.role() {
            Role::Primary => now.min(i64::MAX as u64) as i64,
            Role::Backup => self.adopted.now(now).max(self.last_replayed_at_us),
        };
        base.saturating_add(self.clock_jump_us)
    }

    /// What a live node's heartbeat carries: the time base of its hello plus its service time
    /// without its own takeover jump (the hello a joining backup gets folds the jump into the
    /// time base, [`join_reply`]), so the difference is its service clock on any backup.
    fn told_time_us(&self, now: u64) -> u64 {
        told_time(self.time_base_us, self.service_now(now), self.clock_jump_us)
    }

    fn iteration(&mut self) -> Result<(), NodeError> {
        self.tap_in()?;
        self.tick();
        self.wire_to_tap();
        let now = self.mono_us();
        self.accept_joins();
        self.link_events(now)?;
        self.lease(now)?;
        self.run_service(now);
        self.transmit();
        self.background(now);
        self.epochs(now)?;
        self.heartbeat(now);
        self.detect(now)?;
        self.report(now);
        let _ = poll_readable(&[&self.tap], Some(Duration::from_micros(IDLE_WAIT_US)));
        Ok(())
    }

    /// Frames from the bridge into the model's wire port. Before takeover the backup takes
    /// only its plain VF's frames: the protected VF belongs to the primary. Frames for the
    /// service it sees meanwhile (the bridge floods them once the primary's port is gone) are
    /// kept with the mirrored ones, for the takeover.
    fn tap_in(&mut self) -> Result<(), NodeError> {
        let mut buf = [0u8; 2048];
        for _ in 0..256 {
            let n = match self.tap.recv(&mut buf) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => return Err(io_err(format!("reading TAP {}", self.tap.name()))(e)),
            };
            self.tap_rx += 1;
            let frame = &buf[..n];
            if !self.live && frame.get(..6) != Some(&self.args.plain_macs().0.0[..]) {
                self.tap_filtered += 1;
                let dst = frame.get(..6);
                if dst == Some(&SERVICE_MAC.0[..]) || dst == Some(&[0xFF; 6][..]) {
                    self.standby_rx.keep(frame.to_vec(), true);
                }
                continue;
            }
            self.model.nic().inject_from_wire(frame);
        }
        Ok(())
    }

    /// Device time up to wall time since start.
    fn tick(&mut self) {
        let wall_ns = self.started.elapsed().as_nanos() as u64;
        loop {
            let now = self.model.nic().now().as_nanos();
            if now >= wall_ns {
                break;
            }
            self.model.run_for((wall_ns - now).min(MAX_TICK_NS));
        }
    }

    /// Frames that left the wire port go to the bridge; their added delay is recorded. Under
    /// the service MAC only while the node may send: fenced, they are dropped (counted); in a
    /// lapse ([`Node::gate`], run first at this time: a node serving alone with an arbiter
    /// and no lease it holds now is in one), held for a fresh grant. A protected primary's
    /// output leaves only on the backup's acks, which is the backup's vote.
    fn wire_to_tap(&mut self) {
        let frames = std::mem::take(&mut *self.wire_out.lock().unwrap_or_else(|p| p.into_inner()));
        if frames.is_empty() {
            return;
        }
        let now = self.mono_us();
        self.gate(now);
        for (at, f) in frames {
            if f.get(6..12) == Some(&SERVICE_MAC.0[..]) {
                if self.fenced {
                    self.fenced_dropped += 1;
                    continue;
                }
                if self.lapse.holding() {
                    // Dropped over the bound: counted by the gate.
                    self.lapse.hold((at, f));
                    continue;
                }
            }
            self.write_to_tap(at, &f);
        }
    }

    /// One frame from the wire port to the bridge, its added delay recorded.
    fn write_to_tap(&mut self, at: u64, f: &[u8]) {
        let src = f.get(6..12);
        if src == Some(&SERVICE_MAC.0[..]) {
            self.service_tx += 1;
            self.service_tx_last_unix_us = unix_us();
        }
        self.tap_tx.count(self.tap.send(f));
        let vf = if src == Some(&SERVICE_MAC.0[..]) {
            SERVICE_VF
        } else if src == Some(&self.args.plain_macs().0.0[..]) {
            PLAIN_VF
        } else {
            return;
        };
        let t = &mut self.track[vf];
        t.on_wire += 1;
        if let Some((seq, submit)) = t.pending.pop_front() {
            let d = at.saturating_sub(submit);
            t.delays.record(d);
            if let Some(w) = &mut self.packets {
                let class = if vf == SERVICE_VF && self.protection.is_protected() {
                    "protected"
                } else {
                    "plain"
                };
                let _ = writeln!(w, "{vf},{seq},{},{submit},{at},{class}", f.len());
            }
        }
    }

    /// A live, unprotected node takes a joining backup's connection as its link (the dead
    /// primary's is gone); otherwise the connection is closed at once and the refusal reported.
    fn accept_joins(&mut self) {
        let Some(l) = &self.listener else { return };
        let Ok((stream, from)) = l.accept() else {
            return;
        };
        let refused = if !self.live {
            Some(JoinRefused::NotLive)
        } else if self.fenced {
            Some(JoinRefused::Fenced)
        } else if self.protection.is_protected() {
            Some(JoinRefused::AlreadyProtected)
        } else {
            None
        };
        if let Some(why) = refused {
            emit_line(json!({"ev": "join_refused", "role": self.role().name(),
                "t_unix_us": unix_us(), "from": from.to_string(), "reason": why.to_string()}));
            return;
        }
        let _ = stream.set_nonblocking(false);
        self.link.attach(stream);
        // The peer is a new one: no gap to its predecessor's last message.
        self.heard_peer = false;
    }

    fn link_events(&mut self, now: u64) -> Result<(), NodeError> {
        while let Ok((generation, ev)) = self.link.events.try_recv() {
            if generation != self.link.generation {
                continue;
            }
            match ev {
                LinkEvent::Closed(reason) => {
                    emit_line(json!({"ev": "link_closed", "role": self.role().name(),
                        "t_unix_us": unix_us(), "reason": reason}));
                    self.link.stream = None;
                }
                LinkEvent::Message(m) => {
                    if self.heard_peer {
                        let gap = now.saturating_sub(self.last_peer_us);
                        self.peer_gaps.record(gap);
                    }
                    self.last_peer_us = now;
                    self.heard_peer = true;
                    self.on_message(m, now)?;
                }
            }
        }
        Ok(())
    }

    fn on_message(&mut self, m: Message, now: u64) -> Result<(), NodeError> {
        match (self.role(), m) {
            (
                Role::Backup,
                Message::Hello {
                    time_base_us, seed, ..
                },
            ) if !self.live => {
                self.time_base_us = time_base_us;
                self.service = Some(Service::new(
                    ServiceConfig {
                        seed,
                        ..self.service_config
                    },
                    0,
                ));
            }
            // Only after the hello: a joined backup may see a heartbeat before it.
            (Role::Backup, Message::Heartbeat { sent_unix_us, .. })
                if !self.live && self.service.is_some() =>
            {
                // The primary's time base plus its service time: the difference is the
                // primary's service clock, whatever this host's clock says.
                let at = sent_unix_us.wrapping_sub(self.time_base_us) as i64;
                self.adopted.observe(at, now);
            }
            (Role::Backup, Message::Mirror { frames }) if !self.live => {
                for f in frames {
                    self.standby_rx.keep(f.to_vec(), false);
                }
            }
            (Role::Backup, Message::Log { epoch, steps }) if !self.live => {
                // The log covers every frame mirrored before it.
                self.standby_rx.on_log();
                if let Some(svc) = &mut self.service {
                    self.suppressed_frames += replay(svc, &mut self.history, &steps);
                    if let Some(latest) = steps.iter().map(|s| s.at_us).max() {
                        self.last_replayed_at_us = self.last_replayed_at_us.max(latest);
                    }
                    if let Some(last) = steps.last() {
                        self.adopted.observe(last.at_us, now);
                    }
                    self.replayed_epochs += 1;
                    self.link.send(&Message::Ack { epoch });
                }
            }
            (Role::Backup, Message::Catchup { chunk, last, steps }) if !self.live => {
                if let Some(svc) = &mut self.service {
                    self.suppressed_frames += replay(svc, &mut self.history, &steps);
                    // Old steps: they bound the service clock from below, but say nothing
                    // about the live node's clock now (its heartbeats do).
                    if let Some(latest) = steps.iter().map(|s| s.at_us).max() {
                        self.last_replayed_at_us = self.last_replayed_at_us.max(latest);
                    }
                    self.catchup_steps += steps.len() as u64;
                    if last {
                        emit_line(json!({"ev": "caught_up", "role": "backup",
                            "t_unix_us": unix_us(), "chunks": chunk + 1,
                            "steps": self.catchup_steps}));
                    }
                }
            }
            (_, Message::Ack { epoch }) if self.live => {
                if self.protection.on_ack(&mut self.hac, epoch)?
                    && let Some(joined) = self.joined_us.take()
                {
                    emit_line(json!({"ev": "protected", "role": self.role().name(),
                        "t_unix_us": unix_us(), "epoch": epoch, "standby": self.standby_id,
                        "join_to_commit_ms": now.saturating_sub(joined) as f64 / 1e3}));
                }
            }
            (_, Message::Join { node_id })
                if self.live && !self.protection.is_protected() && !self.fenced =>
            {
                self.on_join(node_id)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A backup joined: tag the service VF again, send it the hello and the whole history,
    /// run epochs from now on (docs/failover.md, "Re-protection").
    fn on_join(&mut self, node_id: u64) -> Result<(), NodeError> {
        let now = self.mono_us();
        // The joining node's id is the standby this node names to the arbiter from now on.
        let standby = u32::try_from(node_id)
            .ok()
            .filter(|&id| id != 0 && id != self.args.node_id())
            .ok_or(JoinRefused::BadNodeId);
        let reply = standby.and_then(|id| {
            join_reply(
                &self.history,
                self.time_base_us,
                self.clock_jump_us,
                self.service_config.seed,
                (self.args.epoch_ms * 1000) as u32,
            )
            .map(|m| (id, m))
        });
        let (standby, msgs) = match reply {
            Ok(r) => r,
            Err(why) => {
                emit_line(json!({"ev": "join_refused", "role": self.role().name(),
                    "t_unix_us": unix_us(), "node_id": node_id, "reason": why.to_string()}));
                eprintln!("hac ha-node: join refused: {why}");
                self.link.stream = None;
                return Ok(());
            }
        };
        // Tag first: output from here on waits for an epoch the new backup acks, and every
        // step from here on is in the logs that follow the history.
        self.protection.protect(&mut self.hac)?;
        if let Some(s) = &self.link.stream {
            let _ = s.set_write_timeout(Some(CATCHUP_WRITE_TIMEOUT));
        }
        for m in &msgs {
            self.link.send(m);
        }
        if let Some(s) = &self.link.stream {
            let _ = s.set_write_timeout(Some(LINK_WRITE_TIMEOUT));
        }
        let sent = self.mono_us();
        self.next_epoch_us = sent + self.args.epoch_ms * 1000;
        self.last_peer_us = sent;
        self.joined_us = Some(now);
        self.standby_id = Some(standby);
        emit_line(
            json!({"ev": "joined", "role": self.role().name(), "t_unix_us": unix_us(),
            "node_id": node_id, "history_steps": self.history.len(),
            "history_bytes": self.history.bytes(), "catchup_chunks": msgs.len() - 1,
            "send_ms": sent.saturating_sub(now) as f64 / 1e3}),
        );
        eprintln!(
            "hac ha-node: backup joined: {} steps ({} bytes) of history sent; protecting again",
            self.history.len(),
            self.history.bytes()
        );
        Ok(())
    }

    fn run_service(&mut self, now: u64) {
        let mut frames = Vec::new();
        for _ in 0..16 {
            if self.vfs[SERVICE_VF].recv(&mut frames, 64) == 0 {
                break;
            }
        }
        let mut plain = Vec::new();
        for _ in 0..16 {
            let n = self.vfs[PLAIN_VF].recv(&mut plain, 64);
            if n == 0 {
                break;
            }
            self.background_rx += n as u64;
            plain.clear();
        }
        if !self.live {
            return;
        }
        if self.fenced {
            self.fenced_rx_dropped += frames.len() as u64;
            return;
        }
        let at = self.service_now(now);
        let protected = self.protection.is_protected();
        if protected && !frames.is_empty() {
            // Mirrored before the step: the backup holds them even if this host dies before
            // the epoch's log leaves.
            self.link.send(&Message::Mirror {
                frames: frames.clone(),
            });
        }
        let Some(svc) = &mut self.service else {
            return;
        };
        if frames.is_empty() && !svc.due(at) {
            return;
        }
        let step = Step { at_us: at, frames };
        let out = svc.step(&step);
        self.history.record(&step);
        self.protection.log_step(step);
        self.pending_tx.extend(out);
    }

    fn transmit(&mut self) {
        let vf = &mut self.vfs[SERVICE_VF];
        vf.reclaim();
        self.vfs[PLAIN_VF].reclaim();
        while !self.pending_tx.is_empty() {
            let batch: Vec<Bytes> = self.pending_tx.iter().take(32).cloned().collect();
            let k = match self.vfs[SERVICE_VF].send(&batch) {
                Ok(k) if k > 0 => k,
                _ => break,
            };
            let now = self.model.nic().now().as_nanos();
            let t = &mut self.track[SERVICE_VF];
            for _ in 0..k {
                t.pending.push_back((t.submitted, now));
                t.submitted += 1;
            }
            self.pending_tx.drain(..k);
        }
    }

    fn background(&mut self, now: u64) {
        let pps = self.args.background_pps;
        if pps == 0 {
            return;
        }
        let period = (1_000_000 / pps).max(1);
        if now > self.next_background_us + 100_000 {
            self.next_background_us = now;
        }
        let mut batch = Vec::new();
        while self.next_background_us <= now && batch.len() < 64 {
            let mut payload = vec![0u8; 240];
            payload[..8].copy_from_slice(&self.background_seq.to_be_bytes());
            self.background_seq += 1;
            let (own, peer) = self.args.plain_macs();
            batch.push(Bytes::from(igb_hw::frame::build(
                peer,
                own,
                BACKGROUND_ETHERTYPE,
                &payload,
            )));
            self.next_background_us += period;
        }
        if batch.is_empty() {
            return;
        }
        let k = self.vfs[PLAIN_VF].send(&batch).unwrap_or(0);
        let at = self.model.nic().now().as_nanos();
        let t = &mut self.track[PLAIN_VF];
        for _ in 0..k {
            t.pending.push_back((t.submitted, at));
            t.submitted += 1;
        }
    }

    /// Live and protected: at each boundary the next epoch opens and the closed one's log is
    /// shipped.
    fn epochs(&mut self, now: u64) -> Result<(), NodeError> {
        if !self.live || !self.protection.is_protected() || now < self.next_epoch_us {
            return Ok(());
        }
        if let Some(log) = self.protection.close_epoch(&mut self.hac)? {
            self.link.send(&log);
        }
        let epoch_us = self.args.epoch_ms * 1000;
        self.next_epoch_us += epoch_us;
        if self.next_epoch_us <= now {
            self.next_epoch_us = now + epoch_us;
        }
        Ok(())
    }

    fn held(&self) -> u64 {
        let t = &self.track[SERVICE_VF];
        t.submitted - t.on_wire + self.pending_tx.len() as u64
    }

    fn heartbeat(&mut self, now: u64) {
        if now < self.next_heartbeat_us {
            return;
        }
        self.heartbeat_seq += 1;
        let held = self.held().min(u64::from(u32::MAX)) as u32;
        // The live node sends its time base plus its service time, so the backup can follow
        // its clock without comparing it with its own.
        let sent_unix_us = if self.live {
            self.told_time_us(now)
        } else {
            unix_us()
        };
        self.link.send(&Message::Heartbeat {
            seq: self.heartbeat_seq,
            sent_unix_us,
            held_frames: held,
        });
        self.next_heartbeat_us = now + self.args.heartbeat_ms * 1000;
    }

    fn detect(&mut self, now: u64) -> Result<(), NodeError> {
        let silent_us = now.saturating_sub(self.last_peer_us);
        if !self.heard_peer || silent_us <= self.args.timeout_ms * 1000 {
            // The peer is back before the arbiter decided: nothing to change.
            self.want_alone = false;
            self.want_takeover = false;
            return Ok(());
        }
        let arbiter = self.lease.is_some();
        // The live node (the primary, or a backup that took over and was joined) lost its
        // backup; a standby (the first backup or a joined one) lost the live node.
        if self.live && self.protection.is_protected() && !self.want_alone && !self.fenced {
            if arbiter {
                // Going on alone needs the lease: until it is granted, the output stays
                // held (nobody acks it), so nothing leaves that the backup has not seen.
                self.want_alone = true;
                emit_line(json!({"ev": "peer_lost", "role": self.role().name(),
                    "t_unix_us": unix_us(), "silent_ms": silent_us as f64 / 1e3}));
            } else {
                self.unprotect(silent_us)?;
            }
        } else if !self.live && !self.want_takeover && self.service.is_some() {
            if arbiter {
                // Taking over needs the lease, which the arbiter grants only to the standby
                // the live node last named in its `Protected` claim.
                self.want_takeover = true;
                emit_line(json!({"ev": "peer_lost", "role": self.role().name(),
                    "t_unix_us": unix_us(), "silent_ms": silent_us as f64 / 1e3}));
            } else {
                self.take_over(now, silent_us);
            }
        }
        Ok(())
    }

    /// The backup is gone: release everything held and stop buffering.
    fn unprotect(&mut self, silent_us: u64) -> Result<(), NodeError> {
        self.protection.unprotect(&mut self.hac)?;
        self.want_alone = false;
        self.joined_us = None;
        self.standby_id = None;
        eprintln!(
            "hac ha-node: backup lost (silent for {} ms): running UNPROTECTED",
            silent_us / 1000
        );
        emit_line(
            json!({"ev": "unprotected", "role": self.role().name(), "t_unix_us": unix_us(),
            "silent_ms": silent_us as f64 / 1e3}),
        );
        Ok(())
    }

    /// Serving without a standby (the primary unprotected, the backup live and not joined):
    /// only while the lease holds.
    fn serving_alone(&self) -> bool {
        self.live && !self.protection.is_protected()
    }

    /// Stops serving: the service is no longer stepped and nothing under its MAC leaves.
    fn fence(&mut self, reason: &str) {
        if self.fenced {
            return;
        }
        self.fenced = true;
        self.fenced_dropped += self.pending_tx.len() as u64;
        self.pending_tx.clear();
        self.fenced_dropped += self.lapse.discard() as u64;
        eprintln!("hac ha-node: {} FENCED: {reason}", self.role().name());
        emit_line(
            json!({"ev": "fenced", "role": self.role().name(), "t_unix_us": unix_us(),
            "reason": reason}),
        );
    }

    /// The claim this node makes at the arbiter now, if any: the live node names its backup
    /// (the first one, or the one that joined after a takeover) while it is protected.
    fn claim(&self) -> Option<Claim> {
        if self.live {
            match self.standby_id {
                Some(standby) if self.protection.is_protected() && !self.want_alone => {
                    Some(Claim::Protected { standby })
                }
                _ => Some(Claim::Alone),
            }
        } else if self.want_takeover {
            Some(Claim::Takeover)
        } else {
            None
        }
    }

    /// Reads the arbiter's replies, acts on them, renews (every heartbeat interval) and fences
    /// a node serving alone whose lease ran out.
    fn lease(&mut self, now: u64) -> Result<(), NodeError> {
        let claim = self.claim();
        let Some(l) = &mut self.lease else {
            return Ok(());
        };
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        let mut verdicts = Vec::new();
        for _ in 0..64 {
            // WouldBlock, or the arbiter's port unreachable (ICMP): nothing more to read.
            let Ok(n) = l.sock.recv(&mut buf) else { break };
            match LeaseMessage::decode(&buf[..n]) {
                Ok(m) => verdicts.extend(l.client.on_reply(&m)),
                Err(_) => l.malformed += 1,
            }
        }
        if let Some(c) = claim
            && now >= l.next_request_us
        {
            let _ = l.sock.send(&l.client.request(now, c).encode());
            l.next_request_us = now + self.args.heartbeat_ms * 1000;
        }
        let holds = l.client.holds(now);
        let lapsed = l.held && !holds;
        l.held = holds;
        for v in verdicts {
            self.on_verdict(v, now, holds)?;
        }
        if lapsed && !self.fenced {
            emit_line(json!({"ev": "lease_lapsed", "role": self.role().name(),
                "t_unix_us": unix_us(), "serving_alone": self.serving_alone()}));
        }
        self.gate(now);
        Ok(())
    }

    /// The lapse gate ([`crate::lapse`]) at `now`: a node serving alone (or with frames
    /// still held) that holds no lease, and is not fenced, holds its service output; a fresh
    /// grant releases what waits, in order; a lapse past the grace fences the node.
    fn gate(&mut self, now: u64) {
        let Some(l) = &self.lease else {
            return;
        };
        let holds = l.client.holds(now);
        let lapsed = !self.fenced && !holds && (self.serving_alone() || self.lapse.holding());
        match self.lapse.check(now, lapsed) {
            Some(LapseEvent::Started) => {}
            Some(LapseEvent::Regained { lapsed_us }) => {
                let held = self.lapse.take_held();
                emit_line(json!({"ev": "lease_regained", "role": self.role().name(),
                    "t_unix_us": unix_us(), "lapsed_ms": lapsed_us as f64 / 1e3,
                    "released": held.len()}));
                for (at, f) in held {
                    self.write_to_tap(at, &f);
                }
            }
            Some(LapseEvent::Expired { lapsed_us }) => {
                self.fence(&format!(
                    "the lease ran out and no grant came within the grace ({} ms; lapsed {:.1} ms): arbiter unreachable",
                    self.args.lease_grace_ms,
                    lapsed_us as f64 / 1e3
                ));
            }
            None => {}
        }
    }

    /// Applies one verdict of the arbiter; `holds`: the node holds a lease now (a grant
    /// can arrive too late to be one).
    fn on_verdict(&mut self, v: Verdict, now: u64, holds: bool) -> Result<(), NodeError> {
        if v == Verdict::Granted {
            if self.want_alone {
                let silent_us = now.saturating_sub(self.last_peer_us);
                self.unprotect(silent_us)?;
            }
            if self.want_takeover {
                self.want_takeover = false;
                let silent_us = now.saturating_sub(self.last_peer_us);
                self.take_over(now, silent_us);
            }
            if self.fenced && holds {
                self.fenced = false;
                emit_line(json!({"ev": "unfenced", "role": self.role().name(),
                    "t_unix_us": unix_us()}));
            }
            return Ok(());
        }
        if !self.live {
            self.takeover_refused += 1;
            if self.takeover_refused == 1 {
                eprintln!("hac ha-node: backup: takeover refused by the arbiter ({v:?})");
                emit_line(json!({"ev": "takeover_refused", "role": self.role().name(),
                    "t_unix_us": unix_us(), "verdict": v}));
            }
        } else if v != Verdict::Starting {
            // Another node holds the lease, or this one may not have it: stop serving.
            self.fence(&format!("the arbiter answered {v:?}"));
        }
        Ok(())
    }

    /// The primary is gone: announce the service here and let it run on this VF.
    fn take_over(&mut self, now: u64, silent_us: u64) {
        self.live = true;
        self.clock_jump_us = (self.args.takeover_clock_jump_ms * 1000) as i64;
        self.pending_tx.push_back(Bytes::from(gratuitous_arp(
            SERVICE_MAC,
            self.args.service_ip,
        )));
        let at = self.service_now(now);
        if let Some(svc) = &mut self.service {
            let step = Step {
                at_us: at,
                frames: Vec::new(),
            };
            let out = svc.step(&step);
            // A step like any other: a backup that joins later must replay it too (it runs
            // the service's timers at the jumped clock).
            self.history.record(&step);
            self.pending_tx.extend(out);
        }
        self.transmit();
        // What the primary received after its last log (mirrored to this host) and what the
        // switch sent here meanwhile (its port mirror of the primary's port) go to the replica now: it answers requests only the
        // dead primary had seen, the client's window opens, its next segment arrives above a
        // hole, the replica's ACK carries a SACK block for it (RFC 2018) and the client's SACK
        // loss recovery (RACK, RFC 8985) resends the missing ones at once instead of waiting
        // for its retransmission timer (docs/failover.md, "Failure detection and takeover").
        let mut delivered = 0;
        for f in self.standby_rx.drain() {
            self.model.nic().inject_from_wire(&f);
            delivered += 1;
        }
        self.standby_delivered = delivered;
        emit_line(
            json!({"ev": "takeover", "role": "backup", "t_unix_us": unix_us(),
            "silent_ms": silent_us as f64 / 1e3, "replayed_epochs": self.replayed_epochs,
            "suppressed_frames": self.suppressed_frames,
            "standby_delivered": self.standby_delivered, "standby_dropped": self.standby_rx.dropped}),
        );
        eprintln!(
            "hac ha-node: primary lost (silent for {} ms): backup is live after {} replayed epochs",
            silent_us / 1000,
            self.replayed_epochs
        );
    }

    fn peer_gaps(&self) -> serde_json::Value {
        self.peer_gaps.summary(self.args.timeout_ms)
    }

    fn delays(&self) -> serde_json::Value {
        json!({"service_vf": self.track[SERVICE_VF].delays.percentiles(),
            "plain_vf": self.track[PLAIN_VF].delays.percentiles()})
    }

    fn report(&mut self, now: u64) {
        let held = self.held();
        if (self.role() == Role::Primary || self.protection.is_protected())
            && held != self.last_held
        {
            self.last_held = held;
            emit_line(
                json!({"ev": "held", "role": self.role().name(), "t_unix_us": unix_us(),
                "frames": held}),
            );
        }
        if now < self.next_status_us {
            return;
        }
        self.next_status_us = now + 100_000;
        self.flush();
        let answered = self.service.as_ref().map(|s| s.answered).unwrap_or(0);
        emit_line(
            json!({"ev": "status", "role": self.role().name(), "t_unix_us": unix_us(),
            "live": self.live, "protected": self.protection.is_protected(),
            "fenced": self.fenced, "lease": self.lease.as_ref().map(|l| l.client.holds(now)),
            "lapse_held": self.lapse.held_len(),
            "open_epoch": self.protection.open_epoch(),
            "committed": self.protection.committed(), "held": held,
            "replayed_epochs": self.replayed_epochs,
            "history_steps": self.history.len(), "history_lost": self.history.is_lost(),
            "answered": answered, "added_delay": self.delays()}),
        );
    }

    fn flush(&mut self) {
        self.model.nic().flush_wire_sinks();
        if let Some(w) = &mut self.packets {
            let _ = w.flush();
        }
    }

    fn finish(&mut self) {
        self.flush();
        let hac = self.hac.stats(SERVICE_HAC_VF).ok();
        emit_line(
            json!({"ev": "exit", "role": self.role().name(), "t_unix_us": unix_us(),
            "live": self.live, "protected": self.protection.is_protected(),
            "history_bytes": self.history.bytes(), "history_lost": self.history.is_lost(),
            "tap_rx": self.tap_rx,
            "tap_tx": self.tap_tx.sent, "tap_tx_dropped": self.tap_tx.dropped,
            "tap_tx_errors": self.tap_tx.errors, "tap_filtered": self.tap_filtered,
            "background_sent": self.track[PLAIN_VF].submitted, "background_rx": self.background_rx,
            "service_frames": self.track[SERVICE_VF].submitted,
            "hac_released": hac.map(|h| h.released), "hac_max_frames": hac.map(|h| h.max_frames),
            "added_delay": self.delays(), "peer_gap": self.peer_gaps(),
            "service_tx": self.service_tx, "service_tx_last_unix_us": self.service_tx_last_unix_us,
            "fenced": self.fenced, "fenced_dropped": self.fenced_dropped,
            "fenced_rx_dropped": self.fenced_rx_dropped, "takeover_refused": self.takeover_refused,
            "lapse": self.lapse.stats(),
            "lease": self.lease.as_ref().map(|l| json!({"grants": l.client.grants,
                "refusals": l.client.refusals, "ignored": l.client.ignored,
                "malformed": l.malformed}))}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_histogram_quantiles_and_thresholds() {
        let mut h = GapHistogram::default();
        for us in [4_000, 5_000, 5_500, 6_000, 45_000, 2_000_000] {
            h.record(us);
        }
        assert_eq!(h.quantile_ms(0.5), 5);
        assert_eq!(h.quantile_ms(1.0), 1000);
        assert_eq!(
            (h.at_least_ms(40), h.at_least_ms(50), h.at_least_ms(5_000)),
            (2, 1, 1)
        );
        let s = h.summary(50);
        assert_eq!(s["max_ms"], 2000.0);
        assert_eq!(s["count"], 6);
        assert_eq!(GapHistogram::default().quantile_ms(0.5), 0);
    }

    #[test]
    fn the_backup_follows_the_primarys_clock_whatever_its_own_says() {
        // The primary's Unix clock says 10:00, the backup's 13:00 (a 3 h skew): only the
        // primary's own differences (heartbeat time - hello time base) and the backup's own
        // monotonic elapsed time enter the service clock.
        let primary_base: u64 = 36_000_000_000;
        let heartbeat = |service_us: u64| primary_base + service_us;
        let mut c = AdoptedClock::default();
        // Backup monotonic 5 s (it started earlier); the primary is 2.000 s into its service.
        c.observe(
            heartbeat(2_000_000).wrapping_sub(primary_base) as i64,
            5_000_000,
        );
        assert_eq!(c.now(5_000_000), 2_000_000);
        assert_eq!(c.now(5_030_000), 2_030_000);
        // A late heartbeat (sent before the one adopted) never turns the clock back.
        c.observe(1_990_000, 5_031_000);
        assert_eq!(c.now(5_031_000), 2_031_000);
        // A fresher one is adopted: the estimate was behind by the message delay.
        c.observe(2_040_000, 5_035_000);
        assert_eq!(c.now(5_045_000), 2_050_000);
        // The backup's monotonic clock cannot go back, but a bogus earlier reading saturates.
        assert_eq!(c.now(0), 2_040_000);
    }

    #[test]
    fn a_joined_backup_follows_the_live_nodes_clock_with_its_takeover_jump() {
        // The node that took over runs on the first primary's clock (adopted) plus its 1 s
        // takeover jump; a backup joining it must replay and, should it take over in turn,
        // serve on exactly that clock, whatever its own Unix clock says.
        let (base, jump) = (36_000_000_000u64, 1_000_000i64);
        let hello = join_reply(&History::new(1), base, jump, 7, 20_000).unwrap();
        let Message::Hello { time_base_us, .. } = hello[0] else {
            panic!("not a hello: {:?}", hello[0]);
        };
        let live_service_us = 7_500_000i64; // adopted 6.5 s + the 1 s jump
        let mut c = AdoptedClock::default();
        let sent = told_time(base, live_service_us, jump);
        c.observe(sent.wrapping_sub(time_base_us) as i64, 42_000_000);
        assert_eq!(c.now(42_000_000), live_service_us);
        assert_eq!(c.now(42_010_000), live_service_us + 10_000);
        // The first primary (no jump) tells its own service time, as before.
        assert_eq!(told_time(base, 2_000_000, 0), base + 2_000_000);
    }

    #[test]
    fn a_joining_backup_has_its_own_arbiter_id() {
        let cfg = |role, join: Option<SocketAddr>| NodeConfig {
            role,
            tap: "tap0".into(),
            link: "127.0.0.1:1".parse().unwrap(),
            arbiter: None,
            lease_margin_ms: 10,
            lease_grace_ms: 500,
            service_ip: std::net::Ipv4Addr::new(192, 0, 2, 10),
            port: 7000,
            seed: 1,
            epoch_ms: 20,
            heartbeat_ms: 5,
            timeout_ms: 50,
            background_pps: 0,
            takeover_clock_jump_ms: 1000,
            out: None,
            join,
            history_bytes: 1 << 20,
        };
        let ids = [
            cfg(Role::Primary, None).node_id(),
            cfg(Role::Backup, None).node_id(),
            cfg(Role::Backup, Some("127.0.0.1:2".parse().unwrap())).node_id(),
        ];
        assert_eq!(ids, [1, 2, REJOIN_NODE_ID]);
    }

    #[test]
    fn mirrored_frames_end_at_the_next_log_switched_ones_at_the_second() {
        let mut s = StandbyRx::default();
        s.keep(vec![1], false);
        s.keep(vec![2], true);
        s.on_log();
        // The primary may not have read the switched frame before this log left: kept.
        s.keep(vec![3], true);
        s.keep(vec![4], false);
        assert_eq!(
            s.frames.iter().map(|e| e.2[0]).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        s.on_log();
        assert_eq!(s.frames.iter().map(|e| e.2[0]).collect::<Vec<_>>(), [3]);
        s.on_log();
        assert!(s.frames.is_empty());
        assert_eq!(s.dropped, 0);
    }

    #[test]
    fn the_lost_tail_reaches_the_replica_through_the_switch() {
        // The slow failovers: the primary answered all it had; the client's next requests
        // reach only the switch's copy (the primary is dead, no log follows), and the replica
        // gets them at takeover, oldest first (the older switched frame was covered by a log).
        let mut s = StandbyRx::default();
        s.keep(b"old".to_vec(), true);
        s.on_log();
        s.on_log();
        for r in [b"144", b"145", b"146", b"147"] {
            s.keep(r.to_vec(), true);
        }
        let got: Vec<Vec<u8>> = s.drain().collect();
        assert_eq!(
            got,
            [
                b"144".to_vec(),
                b"145".to_vec(),
                b"146".to_vec(),
                b"147".to_vec()
            ]
        );
        assert!(s.frames.is_empty());
    }

    #[test]
    fn the_standby_keeps_the_newest_frames_and_counts_the_rest() {
        let mut s = StandbyRx::default();
        for i in 0..STANDBY_RX_FRAMES + 3 {
            s.keep(vec![(i % 256) as u8], true);
        }
        assert_eq!(s.frames.len(), STANDBY_RX_FRAMES);
        assert_eq!(s.dropped, 3);
        assert_eq!(s.frames.front().map(|e| e.2[0]), Some(3));
    }

    #[test]
    fn roles_parse_from_their_names() {
        for r in [Role::Primary, Role::Backup] {
            assert_eq!(r.name().parse::<Role>(), Ok(r));
        }
        assert!("Primary".parse::<Role>().is_err());
        assert!("".parse::<Role>().is_err());
    }

    #[test]
    fn a_full_tap_queue_is_counted_as_dropped_not_sent() {
        // Issue 13 item 10: `Ok(false)` (the kernel dropped the frame) was counted as sent.
        let mut c = TapTxCounters::default();
        c.count(Ok(true));
        c.count(Ok(false));
        c.count(Ok(false));
        c.count(Err(std::io::Error::from(std::io::ErrorKind::InvalidInput)));
        assert_eq!(
            c,
            TapTxCounters {
                sent: 1,
                dropped: 2,
                errors: 1
            }
        );
    }
}

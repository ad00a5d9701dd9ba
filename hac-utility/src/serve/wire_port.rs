//! The model's wire port on a real network (`hac serve --wire-tap NAME` / `--wire-if NAME`):
//! every frame that leaves the model's wire is written to a Linux interface, and every frame
//! that arrives on that interface enters the wire port. Either model family, through
//! [`PeerWire`].
//!
//! Two kinds of host side, both behind the unsafe door ([`hac_sys`]):
//!
//! * a TAP interface ([`TapDevice`]), created if it does not exist (or attached to a persistent
//!   one made by `ip tuntap add`): the wire ends in the host's network stack;
//! * an existing interface through a packet socket ([`PacketSocket`]): a veth end, a bridge
//!   port or a spare physical port; the wire continues on that link.
//!
//! Flow: toward Linux, a [`WireSink`] writes each frame as the model puts it on the wire
//! (non-blocking: a full interface queue drops the frame and counts it); from Linux, [`poll`]
//! runs on the daemon's device thread once per tick (the daemon sleeps between ticks, so an
//! idle port costs nothing) and moves up to [`RX_BURST`] waiting frames into the port, padded
//! to the Ethernet minimum as the sending NIC would; frames the kernel dropped meanwhile because
//! its queue toward us was full are read from its own count (a packet socket's
//! `PACKET_STATISTICS`, a TAP's `tx_dropped`). The interface's state is read from sysfs
//! every [`LINK_CHECK`] (and, while it is down, before each frame toward it, at most every
//! millisecond); while it is down, frames toward it are dropped and counted, and each up→down
//! transition is counted. A write the kernel refuses because the link is down or gone (`EIO`
//! from a TAP, `ENETDOWN`, `ENXIO`) is counted the same way. Nothing is dropped without a counter; no I/O error stops the
//! daemon.
//!
//! [`poll`]: WirePort::poll

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hac_control::Counter;
use hac_sys::{PacketSocket, TapDevice};
use igb_model::{SimTime, WireSink};

use super::counters::named;
use crate::vfio_user::peer::PeerWire;

/// The largest frame (without FCS) the bridge moves in either direction: a 9000-byte MTU, the
/// Ethernet header and one VLAN tag. Larger ones (e.g. a host interface with segmentation
/// offload still on) are dropped and counted.
pub const MAX_FRAME: usize = 9000 + 14 + 4;
/// Smallest frame on the wire without FCS.
const MIN_FRAME: usize = 60;
/// Frames moved from Linux into the port per poll at most (the rest wait in the kernel's queue
/// for the next tick, where they are counted if it overflows).
pub const RX_BURST: usize = 256;
/// How often the interface's state is read.
pub const LINK_CHECK: Duration = Duration::from_millis(20);
/// How often a frame toward a link believed down re-reads its state.
const DOWN_RECHECK: Duration = Duration::from_millis(1);

/// Which host interface the wire port is joined to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireLink {
    /// A TAP interface, created if needed (`--wire-tap`).
    Tap(String),
    /// An existing interface through a packet socket (`--wire-if`).
    Interface(String),
}

impl WireLink {
    /// The interface name.
    pub fn name(&self) -> &str {
        match self {
            WireLink::Tap(n) | WireLink::Interface(n) => n,
        }
    }

    /// The option that named it.
    pub fn flag(&self) -> &'static str {
        match self {
            WireLink::Tap(_) => "--wire-tap",
            WireLink::Interface(_) => "--wire-if",
        }
    }
}

/// The host side of the port.
#[derive(Debug)]
enum HostIo {
    Tap(TapDevice),
    Packet(PacketSocket),
}

impl HostIo {
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        match self {
            HostIo::Tap(t) => t.recv(buf),
            HostIo::Packet(p) => p.recv(buf),
        }
    }

    fn send(&self, frame: &[u8]) -> std::io::Result<bool> {
        match self {
            HostIo::Tap(t) => t.send(frame),
            HostIo::Packet(p) => p.send(frame),
        }
    }

    /// Frames from Linux the kernel dropped because we had not read them yet, as a running
    /// total: a packet socket's `PACKET_STATISTICS` drops (added up here), a TAP's transmit
    /// drops (`tx_dropped`: its queue toward us was full) since the port opened. `None` when
    /// not readable (a TAP moved out of sight).
    fn kernel_drops(&self, name: &str, total: u64, tap_base: u64) -> Option<u64> {
        match self {
            HostIo::Packet(p) => p.take_drops().ok().map(|d| total + d),
            HostIo::Tap(_) => tap_tx_dropped(name).map(|d| d.saturating_sub(tap_base)),
        }
    }
}

/// A TAP's `tx_dropped` (frames Linux could not queue toward the daemon), from sysfs.
fn tap_tx_dropped(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/statistics/tx_dropped"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The port's counters (64-bit running totals), shared by the sink and the poller.
#[derive(Debug, Default)]
struct PortCounters {
    to_host_frames: AtomicU64,
    to_host_bytes: AtomicU64,
    from_host_frames: AtomicU64,
    from_host_bytes: AtomicU64,
    to_host_too_big: AtomicU64,
    from_host_too_big: AtomicU64,
    to_host_queue_full: AtomicU64,
    from_host_queue_full: AtomicU64,
    to_host_link_down: AtomicU64,
    link_down_events: AtomicU64,
    io_errors: AtomicU64,
}

fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

/// Whether an I/O error means the interface is down or gone (counted as such), rather than
/// something else.
fn is_link_down(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(e),
        Some(Errno::NETDOWN | Errno::IO | Errno::NXIO | Errno::NODEV)
    )
}

/// Frames leaving the model's wire, written to Linux.
struct ToHost {
    io: Arc<HostIo>,
    name: String,
    up: Arc<AtomicBool>,
    /// When the sink last re-read a link it believed down.
    last_recheck: Instant,
    counters: Arc<PortCounters>,
}

impl ToHost {
    /// Whether the link is up; a link believed down is re-read (at most every
    /// [`DOWN_RECHECK`]) so the first frames after it came up are not lost to a stale state.
    fn link_up(&mut self) -> bool {
        if self.up.load(Ordering::Relaxed) {
            return true;
        }
        if self.last_recheck.elapsed() >= DOWN_RECHECK {
            self.last_recheck = Instant::now();
            if link_is_up(&self.name) {
                self.up.store(true, Ordering::Relaxed);
                return true;
            }
        }
        false
    }
}

impl WireSink for ToHost {
    fn on_frame(&mut self, _at: SimTime, frame: &[u8]) -> std::io::Result<()> {
        if frame.len() > MAX_FRAME {
            bump(&self.counters.to_host_too_big, 1);
            return Ok(());
        }
        let up = self.link_up();
        let c = &self.counters;
        if !up {
            bump(&c.to_host_link_down, 1);
        } else {
            match self.io.send(frame) {
                Ok(true) => {
                    bump(&c.to_host_frames, 1);
                    bump(&c.to_host_bytes, frame.len() as u64);
                }
                Ok(false) => bump(&c.to_host_queue_full, 1),
                Err(e) if is_link_down(&e) => bump(&c.to_host_link_down, 1),
                Err(_) => bump(&c.io_errors, 1),
            }
        }
        // The frame is accounted for above; the model's wire goes on either way.
        Ok(())
    }
}

/// Reads whether `name` is up from sysfs (`operstate`, as seen from the daemon's network
/// namespace). An interface not visible there (moved to another namespace after a TAP was
/// created) counts as up: the writes themselves then tell a down or vanished link.
fn link_is_up(name: &str) -> bool {
    match std::fs::read_to_string(format!("/sys/class/net/{name}/operstate")) {
        // "unknown" is what a TAP or a dummy without carrier management reports while up.
        Ok(s) => matches!(s.trim(), "up" | "unknown" | "dormant" | "testing"),
        Err(_) => true,
    }
}

/// The wire port joined to a host interface. See the module documentation.
pub struct WirePort {
    link: WireLink,
    io: Arc<HostIo>,
    model: Box<dyn PeerWire>,
    up: Arc<AtomicBool>,
    counters: Arc<PortCounters>,
    last_check: Instant,
    /// A TAP's `tx_dropped` when the port opened.
    tap_base: u64,
    buf: Vec<u8>,
}

impl WirePort {
    /// Opens the host side of `link` and joins it to `model`'s wire. The error is one line
    /// naming the option and the interface.
    pub fn open(link: &WireLink, model: Box<dyn PeerWire>) -> Result<WirePort, String> {
        let name = link.name();
        let flag = link.flag();
        let io = match link {
            WireLink::Tap(n) => TapDevice::open(n).map(HostIo::Tap),
            WireLink::Interface(n) => PacketSocket::open(n).map(HostIo::Packet),
        }
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    format!("{e} (needs CAP_NET_ADMIN for a TAP, CAP_NET_RAW for --wire-if)")
                }
                std::io::ErrorKind::NotFound if matches!(link, WireLink::Tap(_)) => {
                    format!("{e} (is /dev/net/tun there? modprobe tun)")
                }
                _ => e.to_string(),
            };
            format!("{flag} {name}: {why}")
        })?;
        let tap_base = match io {
            HostIo::Tap(_) => tap_tx_dropped(name).unwrap_or(0),
            HostIo::Packet(_) => 0,
        };
        let io = Arc::new(io);
        let up = Arc::new(AtomicBool::new(link_is_up(name)));
        let counters = Arc::new(PortCounters::default());
        model.add_sink(Box::new(ToHost {
            io: io.clone(),
            name: name.to_string(),
            up: up.clone(),
            last_recheck: Instant::now(),
            counters: counters.clone(),
        }));
        Ok(WirePort {
            link: link.clone(),
            io,
            model,
            up,
            counters,
            last_check: Instant::now(),
            tap_base,
            buf: vec![0; MAX_FRAME + 1],
        })
    }

    /// Re-reads the interface state (every [`LINK_CHECK`]) and moves up to [`RX_BURST`] frames
    /// from Linux into the port. Returns the frames moved.
    pub fn poll(&mut self) -> usize {
        if self.last_check.elapsed() >= LINK_CHECK {
            self.last_check = Instant::now();
            let now_up = link_is_up(self.link.name());
            if self.up.swap(now_up, Ordering::Relaxed) && !now_up {
                bump(&self.counters.link_down_events, 1);
            }
            let c = &self.counters.from_host_queue_full;
            let total = c.load(Ordering::Relaxed);
            if let Some(d) = self.io.kernel_drops(self.link.name(), total, self.tap_base) {
                c.store(d.max(total), Ordering::Relaxed);
            }
        }
        let c = &self.counters;
        let mut moved = 0;
        for _ in 0..RX_BURST {
            match self.io.recv(&mut self.buf) {
                Ok(Some(len)) if len > MAX_FRAME => bump(&c.from_host_too_big, 1),
                Ok(Some(len)) => {
                    let len = len.min(self.buf.len());
                    if len < MIN_FRAME {
                        self.buf[len..MIN_FRAME].fill(0);
                    }
                    self.model.inject(&self.buf[..len.max(MIN_FRAME)]);
                    bump(&c.from_host_frames, 1);
                    bump(&c.from_host_bytes, len as u64);
                    moved += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    // A down or vanished interface is seen by the link check; count the rest.
                    if !is_link_down(&e) {
                        bump(&c.io_errors, 1);
                    }
                    break;
                }
            }
        }
        moved
    }

    /// The port's counters as named `stats` counters (`wire_port_*`).
    pub fn counters(&self) -> Vec<Counter> {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        named(&[
            (
                "wire_port_to_host_frames",
                "Frames from the model's wire written to the host interface.",
                get(&c.to_host_frames),
            ),
            (
                "wire_port_to_host_bytes",
                "Bytes of those frames (without FCS).",
                get(&c.to_host_bytes),
            ),
            (
                "wire_port_from_host_frames",
                "Frames from the host interface moved into the wire port.",
                get(&c.from_host_frames),
            ),
            (
                "wire_port_from_host_bytes",
                "Bytes of those frames (without FCS, before padding).",
                get(&c.from_host_bytes),
            ),
            (
                "wire_port_to_host_too_big",
                "Frames toward the host dropped: larger than the bridge's maximum frame.",
                get(&c.to_host_too_big),
            ),
            (
                "wire_port_from_host_too_big",
                "Frames from the host dropped: larger than the bridge's maximum frame.",
                get(&c.from_host_too_big),
            ),
            (
                "wire_port_to_host_queue_full",
                "Frames toward the host dropped: the interface's queue was full.",
                get(&c.to_host_queue_full),
            ),
            (
                "wire_port_from_host_queue_full",
                "Frames from the host the kernel dropped before the daemon read them (its queue was full).",
                get(&c.from_host_queue_full),
            ),
            (
                "wire_port_to_host_link_down",
                "Frames toward the host dropped: the interface was down or gone.",
                get(&c.to_host_link_down),
            ),
            (
                "wire_port_link_down_events",
                "Times the host interface went down while serving.",
                get(&c.link_down_events),
            ),
            (
                "wire_port_io_errors",
                "Other I/O errors on the host interface (the frame is dropped).",
                get(&c.io_errors),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hac_driver::model::Model;
    use igb_model::NicConfig;

    fn model() -> Box<dyn PeerWire> {
        Box::new(Model::new(NicConfig::default()))
    }

    #[test]
    fn a_missing_interface_is_a_one_line_error_naming_the_option() {
        let e = WirePort::open(&WireLink::Interface("hacnosuch0".into()), model())
            .err()
            .unwrap();
        assert!(e.starts_with("--wire-if hacnosuch0: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn too_long_a_name_is_a_one_line_error_for_both_kinds() {
        for link in [
            WireLink::Tap("a-name-that-is-too-long".into()),
            WireLink::Interface("a-name-that-is-too-long".into()),
        ] {
            let e = WirePort::open(&link, model()).err().unwrap();
            assert!(e.starts_with(link.flag()), "{e}");
            assert!(e.contains("invalid interface name"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn an_interface_not_in_sight_is_left_to_the_writes() {
        assert!(link_is_up("hacnosuch0"));
        assert!(link_is_up("lo"));
    }

    /// A wire that records what enters it and lets the test put frames on it.
    #[derive(Clone, Default)]
    struct FakeWire {
        sinks: Arc<std::sync::Mutex<Vec<Box<dyn WireSink>>>>,
        injected: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    }

    impl PeerWire for FakeWire {
        fn inject(&self, frame: &[u8]) {
            self.injected.lock().unwrap().push(frame.to_vec());
        }
        fn add_sink(&self, sink: Box<dyn WireSink>) {
            self.sinks.lock().unwrap().push(sink);
        }
        fn now(&self) -> SimTime {
            SimTime::ZERO
        }
    }

    impl FakeWire {
        fn emit(&self, frame: &[u8]) {
            for s in self.sinks.lock().unwrap().iter_mut() {
                s.on_frame(SimTime::ZERO, frame).unwrap();
            }
        }
    }

    fn counter(port: &WirePort, name: &str) -> u64 {
        port.counters()
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
            .unwrap()
    }

    fn ip_link(args: &[&str]) -> bool {
        std::process::Command::new("ip")
            .arg("link")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }

    fn test_frame(len: usize) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x88, 0xB5];
        f.resize(len, 0xA5);
        f
    }

    #[test]
    fn every_frame_toward_a_tap_is_sent_or_counted_and_frames_from_it_enter_padded() {
        let name = format!("hwu{}", std::process::id() % 10_000_000);
        let wire = FakeWire::default();
        let mut port = match WirePort::open(&WireLink::Tap(name.clone()), Box::new(wire.clone())) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("SKIPPED: cannot create a TAP here: {e}");
                return;
            }
        };
        // A new TAP is down: the frame is counted, not sent; a frame too big never is.
        wire.emit(&test_frame(60));
        assert_eq!(counter(&port, "wire_port_to_host_link_down"), 1);
        wire.emit(&test_frame(MAX_FRAME + 1));
        assert_eq!(counter(&port, "wire_port_to_host_too_big"), 1);
        if !ip_link(&["set", &name, "up"]) {
            eprintln!("SKIPPED (rest): no `ip` to bring {name} up");
            return;
        }
        // Linux's side of the TAP, through the other door.
        let linux = hac_sys::PacketSocket::open(&name).unwrap();
        // Up now (re-read before the frame): it reaches Linux.
        wire.emit(&test_frame(100));
        assert_eq!(counter(&port, "wire_port_to_host_frames"), 1);
        assert_eq!(counter(&port, "wire_port_to_host_bytes"), 100);
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match linux.recv(&mut buf).unwrap() {
                Some(100) if buf[..100] == test_frame(100)[..] => break,
                Some(_) => {}
                None => {
                    assert!(Instant::now() < deadline, "the frame never reached Linux");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        // Linux sends a 42-byte frame: it enters the wire padded to 60 bytes.
        assert!(linux.send(&test_frame(42)).unwrap());
        let mut padded = test_frame(42);
        padded.resize(60, 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !wire.injected.lock().unwrap().contains(&padded) {
            assert!(
                Instant::now() < deadline,
                "the frame never entered the wire"
            );
            port.poll();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(counter(&port, "wire_port_from_host_frames") >= 1);
        // Down again: seen at the next check, counted once, frames dropped and counted.
        assert!(ip_link(&["set", &name, "down"]));
        std::thread::sleep(LINK_CHECK);
        port.poll();
        assert_eq!(counter(&port, "wire_port_link_down_events"), 1);
        wire.emit(&test_frame(60));
        assert_eq!(counter(&port, "wire_port_to_host_link_down"), 2);
        assert_eq!(counter(&port, "wire_port_io_errors"), 0);
    }

    #[test]
    fn link_errors_are_told_apart() {
        for (errno, down) in [(100, true), (5, true), (6, true), (19, true), (22, false)] {
            assert_eq!(
                is_link_down(&std::io::Error::from_raw_os_error(errno)),
                down,
                "{errno}"
            );
        }
    }
}

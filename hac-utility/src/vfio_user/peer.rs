//! A host beyond the model's wire port: smoltcp on the wire, answering ARP and ping and echoing
//! TCP on one port. The guest's frames reach it only after the egress stage (so only after
//! their checkpoint commits when the VF is tagged); its answers enter the port from the wire
//! ([`igb_model::Nic::inject_from_wire`], [`mlx5_model::Mlx5Nic::wire_receive`]): either
//! model family, through [`PeerWire`].
//!
//! It runs on the daemon's thread, once per tick, with the model's clock as its time.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use hac_driver::mlx5::model::Mlx5Model;
use hac_driver::model::Model;
use hac_driver::phy::smoltcp;
use igb_hw::MacAddress;
use igb_model::{SimTime, WireSink};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

/// The peer's MAC address.
pub const PEER_MAC: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 0x10]);
/// Frames kept for the peer while it has not polled (more are dropped, like a full NIC).
const RX_QUEUE: usize = 4096;
/// Smallest frame on the wire without FCS.
const MIN_FRAME: usize = 60;

/// Where the peer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// TCP echo port.
    pub echo_port: u16,
}

/// What the peer has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerCounters {
    /// Frames seen on the wire (all, not only the peer's).
    pub wire_frames_seen: u64,
    /// Frames dropped because the queue was full.
    pub wire_frames_dropped: u64,
    /// Frames the peer sent into the port.
    pub frames_injected: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Bytes echoed.
    pub bytes_echoed: u64,
}

type Queue = Arc<Mutex<VecDeque<Vec<u8>>>>;

/// The wire port of a model family, as the peer uses it.
pub trait PeerWire {
    /// A frame from the wire into the port.
    fn inject(&self, frame: &[u8]);
    /// Every frame that leaves the port goes to `sink` too.
    fn add_sink(&self, sink: Box<dyn WireSink>);
    /// The model's clock.
    fn now(&self) -> SimTime;
}

impl PeerWire for Model {
    fn inject(&self, frame: &[u8]) {
        self.nic().inject_from_wire(frame);
    }
    fn add_sink(&self, sink: Box<dyn WireSink>) {
        self.nic().add_wire_sink(sink);
    }
    fn now(&self) -> SimTime {
        self.nic().now()
    }
}

impl PeerWire for Mlx5Model {
    fn inject(&self, frame: &[u8]) {
        self.nic().wire_receive(frame);
    }
    fn add_sink(&self, sink: Box<dyn WireSink>) {
        self.nic().add_wire_sink(sink);
    }
    fn now(&self) -> SimTime {
        self.nic().now()
    }
}

struct Tap(Queue, Arc<Mutex<PeerCounters>>);

impl WireSink for Tap {
    fn on_frame(&mut self, _at: SimTime, frame: &[u8]) -> std::io::Result<()> {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut c = self.1.lock().unwrap_or_else(|p| p.into_inner());
        c.wire_frames_seen += 1;
        if q.len() < RX_QUEUE {
            q.push_back(frame.to_vec());
        } else {
            c.wire_frames_dropped += 1;
        }
        Ok(())
    }
}

struct WireDevice<'a> {
    model: &'a dyn PeerWire,
    rx: &'a Queue,
    injected: &'a mut u64,
}

struct PeerRx(Vec<u8>);

impl RxToken for PeerRx {
    fn consume<T, F>(self, f: F) -> T
    where
        F: FnOnce(&[u8]) -> T,
    {
        f(&self.0)
    }
}

struct PeerTx<'a> {
    model: &'a dyn PeerWire,
    injected: &'a mut u64,
}

impl TxToken for PeerTx<'_> {
    fn consume<T, F>(self, len: usize, f: F) -> T
    where
        F: FnOnce(&mut [u8]) -> T,
    {
        let mut frame = vec![0u8; len];
        let out = f(&mut frame);
        if frame.len() < MIN_FRAME {
            frame.resize(MIN_FRAME, 0);
        }
        self.model.inject(&frame);
        *self.injected += 1;
        out
    }
}

impl Device for WireDevice<'_> {
    type RxToken<'b>
        = PeerRx
    where
        Self: 'b;
    type TxToken<'b>
        = PeerTx<'b>
    where
        Self: 'b;

    fn receive(&mut self, _t: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self
            .rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()?;
        Some((
            PeerRx(frame),
            PeerTx {
                model: self.model,
                injected: self.injected,
            },
        ))
    }

    fn transmit(&mut self, _t: Instant) -> Option<Self::TxToken<'_>> {
        Some(PeerTx {
            model: self.model,
            injected: self.injected,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// The peer. See the module documentation.
pub struct WirePeer {
    model: Box<dyn PeerWire>,
    rx: Queue,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    port: u16,
    active: bool,
    counters: Arc<Mutex<PeerCounters>>,
    injected: u64,
}

fn echo_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
    )
}

fn now(model: &dyn PeerWire) -> Instant {
    Instant::from_micros((model.now().as_nanos() / 1000) as i64)
}

impl WirePeer {
    /// Attaches the peer to `model`'s wire.
    pub fn new(model: Box<dyn PeerWire>, config: PeerConfig) -> Result<WirePeer, String> {
        let rx: Queue = Arc::new(Mutex::new(VecDeque::new()));
        let counters = Arc::new(Mutex::new(PeerCounters::default()));
        model.add_sink(Box::new(Tap(rx.clone(), counters.clone())));
        let mut injected = 0;
        let mut dev = WireDevice {
            model: model.as_ref(),
            rx: &rx,
            injected: &mut injected,
        };
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(PEER_MAC.0)));
        cfg.random_seed = u64::from(u32::from(config.ip)) ^ 0x5eed;
        let mut iface = Interface::new(cfg, &mut dev, now(model.as_ref()));
        let mut pushed = Ok(());
        iface.update_ip_addrs(|a| {
            pushed = a
                .push(IpCidr::new(config.ip.into(), config.prefix))
                .map_err(|_| "no room for the peer's address".to_string());
        });
        pushed?;
        let mut sockets = SocketSet::new(Vec::new());
        let mut s = echo_socket();
        s.listen(config.echo_port).map_err(|e| e.to_string())?;
        let tcp = sockets.add(s);
        Ok(WirePeer {
            model,
            rx,
            iface,
            sockets,
            tcp,
            port: config.echo_port,
            active: false,
            counters,
            injected,
        })
    }

    /// Counters so far.
    pub fn counters(&self) -> PeerCounters {
        let mut c = *self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.frames_injected = self.injected;
        c
    }

    /// Handles what arrived and what smoltcp wants to send; echoes TCP.
    pub fn poll(&mut self) {
        for _ in 0..64 {
            let t = now(self.model.as_ref());
            let mut dev = WireDevice {
                model: self.model.as_ref(),
                rx: &self.rx,
                injected: &mut self.injected,
            };
            let _ = self.iface.poll(t, &mut dev, &mut self.sockets);
            let moved = self.echo();
            let pending = !self.rx.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
            if !moved && !pending {
                break;
            }
        }
    }

    fn echo(&mut self) -> bool {
        let s = self.sockets.get_mut::<tcp::Socket<'static>>(self.tcp);
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if s.is_active() && !self.active {
            self.active = true;
            c.connections += 1;
        }
        let echoed = crate::tcp_echo::echo_tcp(s);
        c.bytes_echoed += echoed as u64;
        let moved = echoed > 0;
        if self.active && matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
            self.active = false;
            drop(c);
            self.sockets.remove(self.tcp);
            let mut s = echo_socket();
            // Cannot fail: the port is non-zero and the socket fresh.
            let _ = s.listen(self.port);
            self.tcp = self.sockets.add(s);
        }
        moved
    }
}

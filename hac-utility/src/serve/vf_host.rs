//! A stand-in VM with an IP stack (`hac serve --vf-ip VF=IP/PREFIX`, 82576 model): smoltcp on
//! our igbvf driver on one VF, answering ARP and ping and echoing TCP on [`ECHO_PORT`]. With the
//! wire joined to Linux (`--wire-tap`/`--wire-if`) a Linux host can ping the VF and move data
//! through it; tagged checkpointing, its answers leave only when their epoch commits.
//!
//! It runs on the daemon's device thread, once per tick, with the model's clock as its time.

use std::net::Ipv4Addr;

use hac_driver::model::{ModelBar, ModelClock, ModelDma};
use hac_driver::phy::VfDevice;
use hac_driver::phy::smoltcp;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

use super::model_host::ModelVf;

/// The TCP port the stand-in VM echoes on.
pub const ECHO_PORT: u16 = 7;

/// Which VF gets an IP stack, and its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VfIp {
    /// The VF (0-based).
    pub vf: usize,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// The stand-in VM. See the module documentation.
pub struct VfHost {
    dev: VfDevice<ModelBar, ModelDma, ModelClock>,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    active: bool,
    connections: u64,
    bytes_echoed: u64,
}

fn echo_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
    )
}

impl VfHost {
    /// Runs an IP host on `vf` (a driver that is up) at `ip`/`prefix`, its time `now` (ns).
    pub fn new(vf: ModelVf, ip: Ipv4Addr, prefix: u8, now_ns: u64) -> Result<VfHost, String> {
        let mac = vf.mac();
        let mut dev = VfDevice::new(vf);
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac.0)));
        cfg.random_seed = u64::from(u32::from(ip)) ^ 0x7f_0a_5e_ed;
        let mut iface = Interface::new(cfg, &mut dev, instant(now_ns));
        let mut pushed = Ok(());
        iface.update_ip_addrs(|a| {
            pushed = a
                .push(IpCidr::new(ip.into(), prefix))
                .map_err(|_| "no room for the VF's address".to_string());
        });
        pushed?;
        let mut sockets = SocketSet::new(Vec::new());
        let mut s = echo_socket();
        s.listen(ECHO_PORT).map_err(|e| e.to_string())?;
        let tcp = sockets.add(s);
        Ok(VfHost {
            dev,
            iface,
            sockets,
            tcp,
            active: false,
            connections: 0,
            bytes_echoed: 0,
        })
    }

    /// Its counters as named `stats` counters (`vf_ip_*`).
    pub fn counters(&self) -> Vec<hac_control::Counter> {
        super::counters::named(&[
            (
                "vf_ip_connections",
                "TCP connections the --vf-ip host accepted.",
                self.connections,
            ),
            (
                "vf_ip_bytes_echoed",
                "Bytes the --vf-ip host echoed.",
                self.bytes_echoed,
            ),
            (
                "vf_ip_tx_ring_full",
                "Frames the --vf-ip host's stack could not queue (TX ring full; dropped).",
                self.dev.tx_ring_full,
            ),
        ])
    }

    /// Handles what arrived and what smoltcp wants to send, at model time `now_ns`.
    pub fn poll(&mut self, now_ns: u64) {
        for _ in 0..64 {
            self.dev.driver().reclaim();
            let _ = self
                .iface
                .poll(instant(now_ns), &mut self.dev, &mut self.sockets);
            if !self.echo() {
                break;
            }
        }
    }

    /// Echoes what the TCP socket received; listens again once a connection closed. Whether
    /// bytes moved.
    fn echo(&mut self) -> bool {
        let s = self.sockets.get_mut::<tcp::Socket<'static>>(self.tcp);
        if s.is_active() && !self.active {
            self.active = true;
            self.connections += 1;
        }
        let echoed = crate::tcp_echo::echo_tcp(s);
        self.bytes_echoed += echoed as u64;
        if self.active && matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
            self.active = false;
            self.sockets.remove(self.tcp);
            let mut s = echo_socket();
            // Cannot fail: the port is non-zero and the socket fresh.
            let _ = s.listen(ECHO_PORT);
            self.tcp = self.sockets.add(s);
        }
        echoed > 0
    }
}

fn instant(now_ns: u64) -> Instant {
    Instant::from_micros((now_ns / 1000) as i64)
}

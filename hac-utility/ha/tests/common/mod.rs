//! What the integration tests share: a smoltcp client wired to the service through a pair of
//! queues, and the service's configuration.
#![allow(dead_code, clippy::unwrap_used)]

use bytes::Bytes;
use hac_driver::phy::smoltcp;
use hac_ha::service::ServiceConfig;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

#[derive(Default)]
pub struct Pipe {
    pub rx: std::collections::VecDeque<Bytes>,
    pub tx: Vec<Bytes>,
}
pub struct R(Bytes);
pub struct T<'a>(&'a mut Vec<Bytes>);
impl RxToken for R {
    fn consume<X, F: FnOnce(&[u8]) -> X>(self, f: F) -> X {
        f(&self.0)
    }
}
impl TxToken for T<'_> {
    fn consume<X, F: FnOnce(&mut [u8]) -> X>(self, len: usize, f: F) -> X {
        let mut b = vec![0; len];
        let x = f(&mut b);
        self.0.push(Bytes::from(b));
        x
    }
}
impl Device for Pipe {
    type RxToken<'a> = R;
    type TxToken<'a> = T<'a>;
    fn receive(&mut self, _: Instant) -> Option<(R, T<'_>)> {
        let f = self.rx.pop_front()?;
        Some((R(f), T(&mut self.tx)))
    }
    fn transmit(&mut self, _: Instant) -> Option<T<'_>> {
        Some(T(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

pub const SERVICE: ServiceConfig = ServiceConfig {
    mac: [2, 0x1b, 0x21, 0xc1, 0, 0x0a],
    ip: Ipv4Address::new(192, 0, 2, 10),
    prefix: 24,
    port: 7000,
    seed: 42,
};

/// A smoltcp client at 192.0.2.100 connected (SYN queued) to the service's port: its
/// interface, sockets and socket handle.
pub fn client(pipe: &mut Pipe) -> (Interface, SocketSet<'static>, SocketHandle) {
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress([
            2, 0, 0, 0, 0, 0x64,
        ]))),
        pipe,
        Instant::from_micros(0),
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(192, 0, 2, 100), 24))
            .unwrap();
    });
    let mut sockets = SocketSet::new(vec![]);
    let h = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 8192]),
        tcp::SocketBuffer::new(vec![0; 8192]),
    ));
    let ip = SERVICE.ip;
    sockets
        .get_mut::<tcp::Socket<'_>>(h)
        .connect(iface.context(), (IpAddress::Ipv4(ip), SERVICE.port), 40000)
        .unwrap();
    (iface, sockets, h)
}

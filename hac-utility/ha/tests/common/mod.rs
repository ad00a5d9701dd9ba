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

/// A smoltcp client at 192.0.2.100 on one TCP connection to the service: it streams `1`,
/// `2`, … (one every 5 ms, at most 4 unanswered) and checks that answer *i* is 1 + 2 + … + *i*.
pub struct Client {
    iface: Interface,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    requests: u64,
    line: String,
    /// Requests sent.
    pub sent: u64,
    /// Answers received (each checked).
    pub answers: u64,
}

impl Client {
    /// Connects (the SYN is queued in `pipe`) and will send `requests` requests.
    pub fn new(pipe: &mut Pipe, requests: u64) -> Client {
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
        let handle = sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 8192]),
            tcp::SocketBuffer::new(vec![0; 8192]),
        ));
        sockets
            .get_mut::<tcp::Socket<'_>>(handle)
            .connect(
                iface.context(),
                (IpAddress::Ipv4(SERVICE.ip), SERVICE.port),
                40000,
            )
            .unwrap();
        Client {
            iface,
            sockets,
            handle,
            requests,
            line: String::new(),
            sent: 0,
            answers: 0,
        }
    }

    /// One turn at time `t` µs: takes the service's frames from `pipe.rx`, sends the next
    /// request when due, checks the answers; returns the frames for the service. Panics when
    /// the connection is closed or reset, or an answer is not the running total.
    pub fn turn(&mut self, pipe: &mut Pipe, t: i64) -> Vec<Bytes> {
        self.iface
            .poll(Instant::from_micros(t), pipe, &mut self.sockets);
        let s = self.sockets.get_mut::<tcp::Socket<'_>>(self.handle);
        assert!(s.is_open(), "client connection closed or reset at {t} µs");
        if s.may_send()
            && self.sent < self.requests
            && self.sent < self.answers + 4
            && t % 5_000 == 0
        {
            self.sent += 1;
            s.send_slice(format!("{}\n", self.sent).as_bytes()).unwrap();
        }
        if s.can_recv() {
            let line = &mut self.line;
            s.recv(|b| {
                line.push_str(std::str::from_utf8(b).unwrap());
                (b.len(), ())
            })
            .unwrap();
            while let Some(i) = self.line.find('\n') {
                let v: u64 = self.line[..i].parse().unwrap();
                self.answers += 1;
                let n = self.answers;
                assert_eq!(v, n * (n + 1) / 2, "answer {n}");
                self.line.drain(..=i);
            }
        }
        self.iface
            .poll(Instant::from_micros(t), pipe, &mut self.sockets);
        pipe.tx.drain(..).collect()
    }
}

//! The protected "VM": a smoltcp TCP service that keeps a running total and answers each line
//! `N` with the total so far (per connection). It is a deterministic function of its inputs —
//! the frames it receives and the times it is stepped at — and a fixed seed: two instances
//! stepped with the same [`Step`]s produce the same frames and reach the same state. That is
//! what replication by replay relies on.
//!
//! The service never touches a device: [`Service::step`] takes the frames and the time and
//! returns the frames to send. Its smoltcp device is a pair of queues that always accepts a
//! frame to send, so nothing outside the inputs (a full TX ring, say) can change its behaviour.

use std::collections::VecDeque;

use bytes::Bytes;
use hac_driver::phy::smoltcp;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};

use crate::msg::Step;

/// Longest request line; a longer one is answered with `error` and dropped.
pub const MAX_LINE: usize = 64;

/// What the service is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Its MAC (the checkpointing VF's).
    pub mac: [u8; 6],
    /// Its IPv4 address.
    pub ip: Ipv4Address,
    /// Prefix length.
    pub prefix: u8,
    /// TCP port.
    pub port: u16,
    /// smoltcp's random seed (initial sequence numbers).
    pub seed: u64,
}

/// The service's smoltcp device: frames in, frames out, nothing else.
#[derive(Default)]
struct QueueDevice {
    rx: VecDeque<Bytes>,
    tx: Vec<Bytes>,
}

struct QueueRx(Bytes);
struct QueueTx<'a>(&'a mut Vec<Bytes>);

impl RxToken for QueueRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for QueueTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(Bytes::from(buf));
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = QueueRx;
    type TxToken<'a> = QueueTx<'a>;

    fn receive(&mut self, _t: Instant) -> Option<(QueueRx, QueueTx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((QueueRx(f), QueueTx(&mut self.tx)))
    }

    fn transmit(&mut self, _t: Instant) -> Option<QueueTx<'_>> {
        Some(QueueTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps.max_burst_size = Some(32);
        caps
    }
}

/// The running-total service.
pub struct Service {
    config: ServiceConfig,
    device: QueueDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
    socket: SocketHandle,
    total: u64,
    line: Vec<u8>,
    /// Requests answered (all connections).
    pub answered: u64,
    /// Steps taken.
    pub steps: u64,
    last_at: i64,
}

fn new_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 16 * 1024]),
        tcp::SocketBuffer::new(vec![0; 16 * 1024]),
    );
    s.set_nagle_enabled(false);
    s.set_ack_delay(None);
    s
}

impl Service {
    /// A fresh instance at service time `start_us`.
    pub fn new(config: ServiceConfig, start_us: i64) -> Service {
        let mut device = QueueDevice::default();
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(config.mac)));
        cfg.random_seed = config.seed;
        let mut iface = Interface::new(cfg, &mut device, Instant::from_micros(start_us));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(config.ip.into(), config.prefix));
        });
        let mut sockets = SocketSet::new(Vec::new());
        let mut sock = new_socket();
        let _ = sock.listen(config.port);
        let socket = sockets.add(sock);
        Service {
            config,
            device,
            iface,
            sockets,
            socket,
            total: 0,
            line: Vec::new(),
            answered: 0,
            steps: 0,
            last_at: start_us,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Service time of the last step, µs.
    pub fn last_at_us(&self) -> i64 {
        self.last_at
    }

    /// Whether the service wants to be stepped at `now_us` even without input (a timer is due).
    pub fn due(&mut self, now_us: i64) -> bool {
        let now = Instant::from_micros(now_us);
        match self.iface.poll_at(now, &self.sockets) {
            Some(at) => at <= now,
            None => false,
        }
    }

    /// One step: `frames` arrive at time `step.at_us` (times never go back: an earlier time is
    /// taken as the last one); returns the frames the service sends.
    pub fn step(&mut self, step: &Step) -> Vec<Bytes> {
        let at = step.at_us.max(self.last_at);
        self.last_at = at;
        self.steps += 1;
        let now = Instant::from_micros(at);
        self.device.rx.extend(step.frames.iter().cloned());
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.serve();
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        std::mem::take(&mut self.device.tx)
    }

    /// The application: lines in, totals out; a closed connection makes room for the next one.
    fn serve(&mut self) {
        let s = self.sockets.get_mut::<tcp::Socket<'static>>(self.socket);
        if s.can_recv() {
            let mut input = Vec::new();
            let _ = s.recv(|b| {
                input.extend_from_slice(b);
                (b.len(), ())
            });
            let mut out = Vec::new();
            for &c in &input {
                if c == b'\n' {
                    let line = std::mem::take(&mut self.line);
                    let text = String::from_utf8_lossy(&line);
                    match text.trim().parse::<u64>() {
                        Ok(n) => {
                            self.total = self.total.wrapping_add(n);
                            self.answered += 1;
                            out.extend_from_slice(format!("{}\n", self.total).as_bytes());
                        }
                        Err(_) => out.extend_from_slice(b"error\n"),
                    }
                } else if self.line.len() < MAX_LINE {
                    self.line.push(c);
                }
            }
            if !out.is_empty() {
                // The send buffer (16 KiB) holds far more than a client's window of answers;
                // what does not fit is dropped like a misbehaving client's excess.
                let _ = s.send_slice(&out);
            }
        }
        match s.state() {
            tcp::State::CloseWait => s.close(),
            tcp::State::Closed => {
                self.total = 0;
                self.line.clear();
                let _ = s.listen(self.config.port);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_service_is_not_due_and_sends_nothing() {
        let mut s = Service::new(
            ServiceConfig {
                mac: [2, 0, 0, 0, 0, 1],
                ip: Ipv4Address::new(192, 0, 2, 10),
                prefix: 24,
                port: 7000,
                seed: 1,
            },
            0,
        );
        assert!(!s.due(1_000_000));
        assert!(
            s.step(&Step {
                at_us: 10,
                frames: vec![]
            })
            .is_empty()
        );
    }
}

//! `hac-lab vf-traffic`: raw Ethernet frames through a VF, for end-to-end tests against a peer on the
//! same internal switch (e.g. a VF driven by the kernel's igbvf in a QEMU guest, docs/qemu.md).
//!
//! The VF is brought up as `vf-probe` does; then `count` frames are sent to `dst_mac`, each
//! `dst | our MAC | ethertype | "HAC-TRAFFIC" | seq (u32 BE) | zero padding`, and frames are
//! received until `expect_rx` frames from `dst_mac` have arrived or the receive window ends.
//!
//! Time is the driver's [`Clock`]: the wall clock on hardware, virtual time on the model (where
//! waiting lets the model and its services, such as a peer, run).
//!
//! The same plan runs on either family: [`TrafficPort`] is what it needs of a driver (MAC,
//! send, receive, completions, counters), implemented for the igbvf driver and for the mlx5
//! driver with its Ethernet path open ([`Mlx5Port`]).

use std::time::Duration;

use hac_driver::backend::{Clock, DmaAllocator, RegisterIo};
use hac_driver::mlx5::{EthConfig, Mlx5Device, Mlx5Error};
use hac_driver::vf::VfDriver;
use igb_hw::MacAddress;
use igb_hw::frame::{self, EthernetHeader};
use serde::Serialize;

/// Marker at the start of every payload this command sends.
pub const PAYLOAD_MAGIC: &[u8] = b"HAC-TRAFFIC";

/// ICMP identifier of the echo requests sent in IPv4 mode ("HA").
pub const ECHO_ID: u16 = 0x4841;

const IPV4_HEADER_LEN: usize = 20;
const ICMP_HEADER_LEN: usize = 8;

/// What to send and how long to listen.
#[derive(Clone, Debug)]
pub struct TrafficPlan {
    /// Destination of the frames (the peer).
    pub dst: MacAddress,
    /// Frames to send.
    pub count: u32,
    /// EtherType of the frames.
    pub ethertype: u16,
    /// Payload bytes per frame (at least the magic and the sequence number; frames are padded
    /// to the 60-byte Ethernet minimum).
    pub payload_len: usize,
    /// Stop receiving once this many frames from the peer addressed to our MAC arrived (0: listen
    /// the whole window).
    pub expect_rx: u64,
    /// Receive window after the last frame was sent.
    pub rx_window: Duration,
    /// How long to wait for the hardware to complete the transmissions.
    pub tx_timeout: Duration,
    /// IPv4 mode: (our address, the peer's address). The frames are then ICMP echo requests
    /// carrying the payload, so the peer's IP stack parses them and echoes the payload back.
    pub ipv4: Option<([u8; 4], [u8; 4])>,
}

/// The result, printed as JSON.
#[derive(Serialize, Default, Debug)]
pub struct TrafficReport {
    /// Frames queued to the TX ring.
    pub sent: u64,
    /// Whether the hardware completed every queued frame before the TX timeout.
    pub tx_completed: bool,
    /// TX descriptors (mlx5: WQE basic blocks) still in flight at the end.
    pub tx_in_flight: u32,
    /// Frames received (any source).
    pub received: u64,
    /// Frames received whose source is the peer (`dst_mac`).
    pub received_from_peer: u64,
    /// Frames from the peer addressed to our MAC (unicast).
    pub received_from_peer_unicast: u64,
    /// Received frames carrying our own payload marker right after the Ethernet header (would
    /// mean our raw frames came back).
    pub received_own_marker: u64,
    /// IPv4 mode: distinct ICMP echo replies from the peer to our requests whose payload is
    /// exactly what we sent (marker, sequence number, padding).
    pub echo_replies: u64,
    /// IPv4 mode: echo replies whose payload did not match.
    pub echo_replies_bad: u64,
    /// ICMP echo requests received from the peer (e.g. the kernel's ping).
    pub echo_requests: u64,
    /// Up to 8 received frames, summarised (`src > dst type len`), for diagnostics.
    pub first_frames: Vec<String>,
    /// VF counters since init: igbvf's hardware VFGPTC, VFGPRC, …; mlx5: the driver's
    /// datapath counters (frames and bytes each way; `hw_rx_dropped` 0: not read).
    pub hw_tx_packets: u64,
    /// VFGPRC.
    pub hw_rx_packets: u64,
    /// VFGOTC.
    pub hw_tx_bytes: u64,
    /// VFGORC.
    pub hw_rx_bytes: u64,
    /// RQDPC (accumulated).
    pub hw_rx_dropped: u64,
    /// Descriptors with errors, dropped by the driver.
    pub rx_errors: u64,
    /// Milliseconds spent sending and waiting for TX completion.
    pub tx_ms: f64,
    /// Milliseconds spent receiving.
    pub rx_ms: f64,
}

/// The payload of message `seq`: marker, sequence number (u32 BE), then bytes `i as u8`.
pub fn test_payload(plan: &TrafficPlan, seq: u32) -> Vec<u8> {
    let mut payload = Vec::with_capacity(plan.payload_len.max(PAYLOAD_MAGIC.len() + 4));
    payload.extend_from_slice(PAYLOAD_MAGIC);
    payload.extend_from_slice(&seq.to_be_bytes());
    let mut i = payload.len();
    while payload.len() < plan.payload_len {
        payload.push(i as u8);
        i += 1;
    }
    payload
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4_icmp(src: [u8; 4], dst: [u8; 4], ip_id: u16, icmp: &[u8]) -> Vec<u8> {
    let total = IPV4_HEADER_LEN + icmp.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&ip_id.to_be_bytes());
    p.extend_from_slice(&[0x40, 0, 64, 1, 0, 0]); // DF, TTL 64, ICMP, checksum 0
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = internet_checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(icmp);
    p
}

/// Builds frame `seq` of the plan: a raw frame of `plan.ethertype`, or in IPv4 mode an ICMP
/// echo request (identifier [`ECHO_ID`], sequence `seq` mod 2^16). Padded to 60 bytes.
pub fn test_frame(plan: &TrafficPlan, src: MacAddress, seq: u32) -> Vec<u8> {
    let payload = test_payload(plan, seq);
    let mut f = match plan.ipv4 {
        None => frame::build(plan.dst, src, plan.ethertype, &payload),
        Some((ip_src, ip_dst)) => {
            let mut icmp = vec![8, 0, 0, 0];
            icmp.extend_from_slice(&ECHO_ID.to_be_bytes());
            icmp.extend_from_slice(&(seq as u16).to_be_bytes());
            icmp.extend_from_slice(&payload);
            let c = internet_checksum(&icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            let ip = ipv4_icmp(ip_src, ip_dst, seq as u16, &icmp);
            frame::build(plan.dst, src, frame::ETHERTYPE_IPV4, &ip)
        }
    };
    if f.len() < frame::MIN_FRAME_LEN {
        f.resize(frame::MIN_FRAME_LEN, 0);
    }
    f
}

/// Checks an IPv4 ICMP frame from the peer: an echo reply to one of ours (payload compared),
/// or an echo request.
fn note_icmp(
    report: &mut TrafficReport,
    plan: &TrafficPlan,
    seen: &mut [bool],
    l3: &[u8],
) -> Option<()> {
    let ihl = usize::from(l3.first()? & 0xF) * 4;
    if l3.len() < ihl + ICMP_HEADER_LEN || l3[9] != 1 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([l3[2], l3[3]])).min(l3.len());
    let icmp = l3.get(ihl..total)?;
    match icmp[0] {
        8 => report.echo_requests += 1,
        0 if plan
            .ipv4
            .is_some_and(|(ip_src, ip_dst)| l3[12..16] == ip_dst && l3[16..20] == ip_src)
            && u16::from_be_bytes([icmp[4], icmp[5]]) == ECHO_ID =>
        {
            let data = &icmp[ICMP_HEADER_LEN..];
            let seq = data
                .get(PAYLOAD_MAGIC.len()..PAYLOAD_MAGIC.len() + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))?;
            let good = seq < plan.count
                && internet_checksum(icmp) == 0
                && data == test_payload(plan, seq).as_slice();
            if good && !seen[seq as usize] {
                seen[seq as usize] = true;
                report.echo_replies += 1;
            } else if !good {
                report.echo_replies_bad += 1;
            }
        }
        _ => {}
    }
    Some(())
}

fn note_rx(
    report: &mut TrafficReport,
    plan: &TrafficPlan,
    seen: &mut [bool],
    src: MacAddress,
    f: &[u8],
) {
    report.received += 1;
    let Ok(h) = EthernetHeader::parse(f) else {
        return;
    };
    if h.source == plan.dst
        && h.ethertype == frame::ETHERTYPE_IPV4
        && f.len() >= h.payload_offset + IPV4_HEADER_LEN
    {
        note_icmp(report, plan, seen, &f[h.payload_offset..]);
    }
    if h.source == plan.dst {
        report.received_from_peer += 1;
        if h.destination == src {
            report.received_from_peer_unicast += 1;
        }
    }
    if f.len() >= h.payload_offset + PAYLOAD_MAGIC.len()
        && &f[h.payload_offset..h.payload_offset + PAYLOAD_MAGIC.len()] == PAYLOAD_MAGIC
    {
        report.received_own_marker += 1;
    }
    if report.first_frames.len() < 8 {
        report.first_frames.push(format!(
            "{} > {} {:#06x} {}",
            h.source,
            h.destination,
            h.ethertype,
            f.len()
        ));
    }
}

/// Hardware counters of a VF since it was brought up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames sent.
    pub tx_packets: u64,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames the device dropped on receive.
    pub rx_dropped: u64,
    /// Receive errors the driver dropped.
    pub rx_errors: u64,
}

/// What [`run`] needs of a VF driver.
pub trait TrafficPort {
    /// The driver's clock.
    type Clock: Clock;
    /// Its errors.
    type Error: std::fmt::Display + std::fmt::Debug;
    /// The VF's MAC (the source of every frame).
    fn port_mac(&self) -> MacAddress;
    /// The driver's clock.
    fn port_clock(&self) -> &Self::Clock;
    /// Queues as many of `frames` as fit; how many.
    fn send_frames(&mut self, frames: &[bytes::Bytes]) -> Result<usize, Self::Error>;
    /// Hands up to `max` received frames to `each`; how many.
    fn recv_frames(&mut self, max: usize, each: &mut dyn FnMut(&[u8])) -> usize;
    /// Consumes TX completions.
    fn reclaim_tx(&mut self);
    /// Transmit slots (descriptors, or mlx5 WQE basic blocks) still owned by the device.
    fn tx_in_flight(&mut self) -> u32;
    /// Counters.
    fn counters(&mut self) -> PortCounters;
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> TrafficPort for VfDriver<R, D, C> {
    type Clock = C;
    type Error = hac_driver::DriverError;
    fn port_mac(&self) -> MacAddress {
        self.mac()
    }
    fn port_clock(&self) -> &C {
        self.clock()
    }
    fn send_frames(&mut self, frames: &[bytes::Bytes]) -> Result<usize, Self::Error> {
        self.send(frames)
    }
    fn recv_frames(&mut self, max: usize, each: &mut dyn FnMut(&[u8])) -> usize {
        self.recv_with_meta(max, |f, _| each(f))
    }
    fn reclaim_tx(&mut self) {
        self.reclaim();
    }
    fn tx_in_flight(&mut self) -> u32 {
        VfDriver::tx_in_flight(self)
    }
    fn counters(&mut self) -> PortCounters {
        let s = self.stats();
        PortCounters {
            tx_packets: s.tx_packets,
            rx_packets: s.rx_packets,
            tx_bytes: s.tx_bytes,
            rx_bytes: s.rx_bytes,
            rx_dropped: s.rx_dropped,
            rx_errors: s.rx_errors,
        }
    }
}

/// Why [`Mlx5Port::open`] failed, with the device back (to tear it down).
pub type NotOpened<R, D, C> = (Box<Mlx5Device<R, D, C>>, Mlx5Error);

/// An mlx5 VF with its Ethernet path open, as a [`TrafficPort`]. Receive errors (an error
/// CQE, which cannot be returned from a receive callback) are counted: `rx_errors` and the
/// driver's `eth_stats`.
pub struct Mlx5Port<R: RegisterIo, D: DmaAllocator, C: Clock> {
    dev: Box<Mlx5Device<R, D, C>>,
    mac: MacAddress,
    sq_size: u32,
    recv_failures: u64,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Mlx5Port<R, D, C> {
    /// Opens the Ethernet path of a brought-up device (mlx5e's order: vport context, mkey,
    /// TIS, CQs, SQ, RQ, TIR, NIC RX flow table).
    pub fn open(
        mut dev: Box<Mlx5Device<R, D, C>>,
        config: EthConfig,
    ) -> Result<Self, NotOpened<R, D, C>> {
        if let Err(e) = dev.open_eth(config) {
            return Err((dev, e));
        }
        let mac = dev.mac().unwrap_or_default();
        Ok(Mlx5Port {
            dev,
            mac,
            sq_size: 1 << config.log_sq_size,
            recv_failures: 0,
        })
    }

    /// The driver (to tear it down: [`Mlx5Device::shutdown`] closes the path too).
    pub fn into_device(self) -> Box<Mlx5Device<R, D, C>> {
        self.dev
    }

    /// The driver.
    pub fn device(&mut self) -> &mut Mlx5Device<R, D, C> {
        &mut self.dev
    }
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> TrafficPort for Mlx5Port<R, D, C> {
    type Clock = C;
    type Error = Mlx5Error;
    fn port_mac(&self) -> MacAddress {
        self.mac
    }
    fn port_clock(&self) -> &C {
        self.dev.clock()
    }
    fn send_frames(&mut self, frames: &[bytes::Bytes]) -> Result<usize, Mlx5Error> {
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        self.dev.send(&refs)
    }
    fn recv_frames(&mut self, max: usize, each: &mut dyn FnMut(&[u8])) -> usize {
        match self.dev.recv_with(max, each) {
            Ok(n) => n,
            Err(_) => {
                self.recv_failures += 1;
                0
            }
        }
    }
    fn reclaim_tx(&mut self) {
        if self.dev.reclaim_tx().is_err() {
            self.recv_failures += 1;
        }
    }
    fn tx_in_flight(&mut self) -> u32 {
        let free = self.dev.tx_free() as u32;
        self.sq_size.saturating_sub(free)
    }
    fn counters(&mut self) -> PortCounters {
        let s = self.dev.eth_stats();
        PortCounters {
            tx_packets: s.tx_frames,
            rx_packets: s.rx_frames,
            tx_bytes: s.tx_bytes,
            rx_bytes: s.rx_bytes,
            // The device's drop counter (a queue counter) is not read; truncations are
            // counted in rx_errors.
            rx_dropped: 0,
            rx_errors: s.rx_error_cqes + s.unexpected_cqes + s.rx_truncated + self.recv_failures,
        }
    }
}

/// Sends and receives as planned on an initialised VF (either family).
pub fn run<P: TrafficPort>(vf: &mut P, plan: &TrafficPlan) -> Result<TrafficReport, P::Error> {
    let mut report = TrafficReport::default();
    let src = vf.port_mac();
    let mut seen = vec![false; plan.count as usize];
    let elapsed = |vf: &P, t0: u64| vf.port_clock().now_ns().saturating_sub(t0);
    // Send, in batches as large as the ring takes.
    let start = vf.port_clock().now_ns();
    let tx_timeout = plan.tx_timeout.as_nanos() as u64;
    let frames: Vec<bytes::Bytes> = (0..plan.count)
        .map(|seq| test_frame(plan, src, seq).into())
        .collect();
    let mut next = 0;
    while next < frames.len() {
        let n = vf.send_frames(&frames[next..])?;
        next += n;
        report.sent += n as u64;
        if n == 0 {
            if elapsed(vf, start) > tx_timeout {
                break;
            }
            vf.port_clock().delay_ns(100_000);
        }
        // Keep the RX ring drained while sending.
        vf.recv_frames(64, &mut |f| note_rx(&mut report, plan, &mut seen, src, f));
    }
    loop {
        vf.reclaim_tx();
        if vf.tx_in_flight() == 0 || elapsed(vf, start) >= tx_timeout {
            break;
        }
        vf.port_clock().delay_ns(200_000);
        vf.recv_frames(64, &mut |f| note_rx(&mut report, plan, &mut seen, src, f));
    }
    report.tx_in_flight = vf.tx_in_flight();
    report.tx_completed = report.sent == u64::from(plan.count) && report.tx_in_flight == 0;
    report.tx_ms = elapsed(vf, start) as f64 / 1e6;

    // Receive.
    let start = vf.port_clock().now_ns();
    let window = plan.rx_window.as_nanos() as u64;
    while elapsed(vf, start) < window {
        if vf.recv_frames(64, &mut |f| note_rx(&mut report, plan, &mut seen, src, f)) == 0 {
            vf.port_clock().delay_ns(500_000);
        }
        if plan.expect_rx > 0 && report.received_from_peer_unicast >= plan.expect_rx {
            break;
        }
    }
    report.rx_ms = elapsed(vf, start) as f64 / 1e6;

    let s = vf.counters();
    report.hw_tx_packets = s.tx_packets;
    report.hw_rx_packets = s.rx_packets;
    report.hw_tx_bytes = s.tx_bytes;
    report.hw_rx_bytes = s.rx_bytes;
    report.hw_rx_dropped = s.rx_dropped;
    report.rx_errors = s.rx_errors;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_padded_and_numbered() {
        let plan = TrafficPlan {
            dst: MacAddress([0x52, 0x54, 0, 0, 0, 0x10]),
            count: 1,
            ethertype: 0x88B5,
            payload_len: 0,
            expect_rx: 0,
            rx_window: Duration::ZERO,
            tx_timeout: Duration::ZERO,
            ipv4: None,
        };
        let src = MacAddress([0x52, 0x54, 0, 0, 0, 0x11]);
        let f = test_frame(&plan, src, 7);
        assert_eq!(f.len(), frame::MIN_FRAME_LEN);
        assert_eq!(&f[0..6], &plan.dst.0);
        assert_eq!(&f[6..12], &src.0);
        assert_eq!(&f[12..14], &[0x88, 0xB5]);
        assert_eq!(&f[14..14 + PAYLOAD_MAGIC.len()], PAYLOAD_MAGIC);
        assert_eq!(&f[25..29], &7u32.to_be_bytes());
    }

    #[test]
    fn echo_requests_are_valid_and_their_replies_are_recognised() {
        let plan = TrafficPlan {
            dst: MacAddress([0x52, 0x54, 0, 0, 0, 0x10]),
            count: 2,
            ethertype: 0x88B5,
            payload_len: 40,
            expect_rx: 0,
            rx_window: Duration::ZERO,
            tx_timeout: Duration::ZERO,
            ipv4: Some(([10, 77, 0, 2], [10, 77, 0, 1])),
        };
        let src = MacAddress([0x52, 0x54, 0, 0, 0, 0x11]);
        let f = test_frame(&plan, src, 1);
        let ip = &f[14..];
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(internet_checksum(&ip[..20]), 0, "IPv4 header checksum");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert_eq!(total, 20 + 8 + 40);
        assert_eq!(internet_checksum(&ip[20..total]), 0, "ICMP checksum");
        assert_eq!(ip[20], 8);

        // The peer's reply: addresses swapped, type 0, checksum adjusted.
        let mut reply = f.clone();
        reply[0..6].copy_from_slice(&src.0);
        reply[6..12].copy_from_slice(&plan.dst.0);
        reply[26..30].copy_from_slice(&[10, 77, 0, 1]);
        reply[30..34].copy_from_slice(&[10, 77, 0, 2]);
        reply[34] = 0;
        reply[36..38].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&reply[34..14 + total]);
        reply[36..38].copy_from_slice(&c.to_be_bytes());
        let mut report = TrafficReport::default();
        let mut seen = vec![false; 2];
        note_rx(&mut report, &plan, &mut seen, src, &reply);
        note_rx(&mut report, &plan, &mut seen, src, &reply);
        assert_eq!((report.echo_replies, report.echo_replies_bad), (1, 0));
        reply[14 + total - 1] ^= 1;
        note_rx(&mut report, &plan, &mut seen, src, &reply);
        assert_eq!(report.echo_replies_bad, 1);
    }
}

//! The igb referee's test cases (docs/qemu.md) as library code, generic over the driver's
//! backends: the same functions run on QEMU's emulated 82576 through Linux VFIO (`hac-lab
//! pf-switch`, `hac-lab vf-hac-check`, `hac-lab vf-smoltcp`) and on the model in-process
//! (`tests/referee_model.rs`).
//!
//! * [`switch_exchange`] — case 3: frames from one of our VFs to another through the adapter's
//!   internal switch (VM-to-VM loopback, datasheet 7.10.3.6), the PF driven by our
//!   [`PfAgent`](hac_driver::pf::PfAgent); counts, order and payloads checked.
//! * [`rate_limit_registers`] — case 3's rate limit part (issue 20): the PF programs every VF's
//!   transmit rate limit and queue priority as Linux igb's `ndo_set_vf_bw` does and reads the
//!   registers back; the exchange then runs with them set (nothing may break), and
//!   [`clear_rate_limits`] turns them off again.
//! * [`hac_check`] — case 4: the HAC contract on an adapter without the extension
//!   ([`SoftHac`]): frames held until commit, released in order, discarded on abort, as counted
//!   by the peer and by the peer's ICMP echo replies.
//! * [`SmoltcpEcho`] — case 5: smoltcp on a VF answering ping (smoltcp's interface answers
//!   echo requests) and echoing TCP.
//! * [`EchoPeer`] — on the model, the stand-in for the kernel's igbvf peer: counts what it
//!   receives and answers ICMP echo requests and ARP as a kernel does.
//! * [`vfio`] — the glue that opens the PF and VFs through VFIO for the commands.
//!
//! Time is the driver's [`Clock`]: wall clock on hardware, virtual on the model (where waiting
//! lets the model and its services — PF agent, peer — run).

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use hac_driver::DriverError;
use hac_driver::backend::{Clock, DmaAllocator, RegisterIo};
use hac_driver::hac::{Hac, HacError, HacVfStats, VfNumber};
use hac_driver::pf::PfAgent;
use hac_driver::phy::VfDevice;
use hac_driver::phy::smoltcp;
use hac_driver::softhac::{SoftHac, SoftVfPort};
use hac_driver::vf::VfDriver;
use igb_hw::frame::{self, EthernetHeader};
use igb_hw::{MacAddress, VfIndex};
use serde::Serialize;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

use hac_utility::tcp_echo::echo_tcp;

use crate::traffic::{self, ECHO_ID, PAYLOAD_MAGIC, TrafficPlan};

/// Why a case could not run (a failed check is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The driver failed.
    #[error("driver: {0}")]
    Driver(#[from] DriverError),
    /// A HAC operation was refused.
    #[error("HAC: {0}")]
    Hac(#[from] HacError),
    /// The SoftHac has no VF 0.
    #[error("the SoftHac has no VF 0")]
    NoVf,
    /// smoltcp refused the configuration.
    #[error("smoltcp: {0}")]
    Smoltcp(String),
}

/// One register access of [`rate_limit_registers`]: what the PF wrote and read back.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RegisterCheck {
    /// The VF whose limit it was.
    pub vf: usize,
    /// Datasheet mnemonic.
    pub register: String,
    /// The word Linux igb writes for it.
    pub expected: u32,
    /// The word read back through the PF's BAR0 afterwards.
    pub read_back: u32,
}

/// [`rate_limit_registers`]'s findings.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RateLimitReport {
    /// The limit programmed on every VF, Mb/s.
    pub rate_mbps: u32,
    /// Every register checked.
    pub registers: Vec<RegisterCheck>,
    /// Every register read back as written (the model; a real 82576).
    pub stored: bool,
    /// Every rate register (RTT*) read back as 0 (an adapter that ignores them, e.g. QEMU's
    /// igb).
    pub ignored: bool,
    /// What went wrong, in words (empty: passed).
    pub problems: Vec<String>,
}

/// Linux's RTTBCNRC word for `rate` on a 1000 Mb/s link, written out independently of
/// [`igb_hw::rate::rttbcnrc_for`]: RS_ENA | (1000 / rate) << 14 | ((1000 mod rate) << 14) / rate.
fn linux_rttbcnrc_1g(rate: u32) -> u32 {
    if rate == 0 {
        return 0;
    }
    let int = 1000 / rate;
    let dec = ((1000 % rate) << 14) / rate;
    0x8000_0000 | ((int & 0x3FFF) << 14) | (dec & 0x3FFF)
}

/// Programs a `rate_mbps` limit and TXDCTL.PRIORITY on each of the first `vfs` VFs through the
/// PF agent, as Linux igb does (RTTDQSEL = the VF's queue, RTTBCNRM = 0x14, RTTBCNRC = RS_ENA |
/// rate factor; TXDCTL bit 27), and reads each register back through the PF. The limits stay set
/// (run traffic, then [`clear_rate_limits`]). Passes when the adapter stores the words, or
/// ignores the rate registers altogether (reads 0, as QEMU's igb may); the agent's own read-back
/// must then agree.
pub fn rate_limit_registers<R: RegisterIo, C: Clock>(
    pf: &mut PfAgent<R, C>,
    vfs: usize,
    rate_mbps: u32,
) -> RateLimitReport {
    use igb_hw::regs::PfReg;
    let mut r = RateLimitReport {
        rate_mbps,
        stored: true,
        ignored: true,
        ..RateLimitReport::default()
    };
    for vf in VfIndex::all(vfs) {
        let n = vf.get();
        if let Err(e) = pf.set_vf_rate(vf, rate_mbps) {
            r.problems
                .push(format!("VF{n}: set_vf_rate({rate_mbps}): {e}"));
            continue;
        }
        let check = |reg: PfReg, expected: u32, rate_register: bool, r: &mut RateLimitReport| {
            let read_back = pf.bar().get(reg);
            r.stored &= read_back == expected;
            if rate_register {
                r.ignored &= read_back == 0;
            }
            r.registers.push(RegisterCheck {
                vf: n,
                register: reg.name().to_string(),
                expected,
                read_back,
            });
        };
        check(PfReg::RTTDQSEL, n as u32, true, &mut r);
        check(PfReg::RTTBCNRM, 0x14, true, &mut r);
        check(PfReg::RTTBCNRC, linux_rttbcnrc_1g(rate_mbps), true, &mut r);
        match pf.vf_rate(vf) {
            Ok(back) if r.stored && back != Some(rate_mbps) && rate_mbps != 0 => r
                .problems
                .push(format!("VF{n}: the agent reads {back:?} Mb/s back")),
            Ok(_) => {}
            Err(e) => r.problems.push(format!("VF{n}: vf_rate: {e}")),
        }
        if let Err(e) = pf.set_vf_priority(vf, true) {
            r.problems.push(format!("VF{n}: set_vf_priority: {e}"));
            continue;
        }
        if let Some(q) = vf.queue(0) {
            let txdctl = pf.bar().get(PfReg::TXDCTL(q.get() as u8));
            // Only bit 27 is ours; the VF's own bits (ENABLE, thresholds) stay as they were.
            r.stored &= txdctl & (1 << 27) != 0;
            r.registers.push(RegisterCheck {
                vf: n,
                register: "TXDCTL.PRIORITY".into(),
                expected: 1,
                read_back: (txdctl >> 27) & 1,
            });
        }
    }
    if !r.stored && !r.ignored {
        r.problems
            .push("the rate registers read back neither as written nor as 0 (ignored)".to_string());
    }
    r
}

/// Turns the limits and priorities [`rate_limit_registers`] set off again (rate 0 = no limit, as
/// Linux); returns what failed.
pub fn clear_rate_limits<R: RegisterIo, C: Clock>(
    pf: &mut PfAgent<R, C>,
    vfs: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    for vf in VfIndex::all(vfs) {
        if let Err(e) = pf
            .set_vf_rate(vf, 0)
            .and_then(|()| pf.set_vf_priority(vf, false))
        {
            problems.push(format!("VF{}: clearing the limit: {e}", vf.get()));
        }
    }
    problems
}

/// Nanoseconds of `d`, saturated.
fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Sequence number of a test payload (`PAYLOAD_MAGIC` then u32 BE), if `payload` is one.
fn payload_seq(payload: &[u8]) -> Option<u32> {
    if payload.get(..PAYLOAD_MAGIC.len())? != PAYLOAD_MAGIC {
        return None;
    }
    let b = payload.get(PAYLOAD_MAGIC.len()..PAYLOAD_MAGIC.len() + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

// ---------------------------------------------------------------------------------------------
// Case 3: VF to VF through the internal switch.
// ---------------------------------------------------------------------------------------------

/// What [`switch_exchange`] sends.
#[derive(Clone, Debug)]
pub struct SwitchPlan {
    /// Frames to send.
    pub count: u32,
    /// Payload bytes per frame (marker, sequence number, pattern).
    pub payload_len: usize,
    /// EtherType of the frames.
    pub ethertype: u16,
    /// How long to wait for all frames to arrive.
    pub timeout: Duration,
}

impl Default for SwitchPlan {
    fn default() -> Self {
        SwitchPlan {
            count: 64,
            payload_len: 200,
            ethertype: 0x88B5,
            timeout: Duration::from_secs(5),
        }
    }
}

/// One direction of [`switch_exchange`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct SwitchReport {
    /// Sender's MAC.
    pub from: String,
    /// Receiver's MAC.
    pub to: String,
    /// Frames queued on the sender's TX ring.
    pub sent: u64,
    /// Every queued frame completed (descriptors written back).
    pub tx_completed: bool,
    /// Frames from `from` to `to` with the plan's EtherType that arrived.
    pub received: u64,
    /// Of those, byte-for-byte the frame sent with that sequence number.
    pub intact: u64,
    /// Frames with the marker whose bytes differ from what was sent.
    pub corrupted: u64,
    /// Frames that arrived after a higher sequence number.
    pub out_of_order: u64,
    /// Sequence numbers seen twice.
    pub duplicates: u64,
    /// Other frames the receiver got meanwhile.
    pub other_frames: u64,
    /// Sender's VFGPTC delta, receiver's VFGPRC delta.
    pub hw_tx_packets: u64,
    /// Receiver's VFGPRC delta.
    pub hw_rx_packets: u64,
    /// Time from the first send to the last arrival (or the timeout), ms.
    pub elapsed_ms: f64,
}

impl SwitchReport {
    /// The direction passed: all sent, completed and received intact, in order, once.
    pub fn passed(&self, plan: &SwitchPlan) -> bool {
        let n = u64::from(plan.count);
        self.sent == n
            && self.tx_completed
            && self.intact == n
            && self.corrupted == 0
            && self.out_of_order == 0
            && self.duplicates == 0
    }

    /// What is wrong, in words (empty if it passed).
    pub fn problems(&self, plan: &SwitchPlan) -> Vec<String> {
        let n = u64::from(plan.count);
        let mut p = Vec::new();
        if self.sent != n || !self.tx_completed {
            p.push(format!(
                "{} > {}: sent {} of {n} (completed: {})",
                self.from, self.to, self.sent, self.tx_completed
            ));
        }
        if self.intact != n || self.corrupted + self.out_of_order + self.duplicates != 0 {
            p.push(format!(
                "{} > {}: {} of {n} arrived intact ({} corrupted, {} out of order, {} duplicates)",
                self.from, self.to, self.intact, self.corrupted, self.out_of_order, self.duplicates
            ));
        }
        p
    }
}

/// Sends `plan.count` numbered frames from `src` to `dst`'s MAC and receives them on `dst`,
/// checking each against what was sent.
pub fn switch_exchange<R: RegisterIo, D: DmaAllocator, C: Clock>(
    src: &mut VfDriver<R, D, C>,
    dst: &mut VfDriver<R, D, C>,
    plan: &SwitchPlan,
) -> Result<SwitchReport, DriverError> {
    let tplan = TrafficPlan {
        dst: dst.mac(),
        count: plan.count,
        ethertype: plan.ethertype,
        payload_len: plan.payload_len,
        expect_rx: 0,
        rx_window: Duration::ZERO,
        tx_timeout: plan.timeout,
        ipv4: None,
    };
    let from = src.mac();
    let to = dst.mac();
    let mut r = SwitchReport {
        from: from.to_string(),
        to: to.to_string(),
        ..SwitchReport::default()
    };
    let tx0 = src.stats().tx_packets;
    let rx0 = dst.stats().rx_packets;
    let frames: Vec<Bytes> = (0..plan.count)
        .map(|s| traffic::test_frame(&tplan, from, s).into())
        .collect();
    let mut seen = vec![false; plan.count as usize];
    let mut highest: Option<u32> = None;
    let start = src.clock().now_ns();
    let timeout = ns(plan.timeout);
    let mut next = 0;
    loop {
        if next < frames.len() {
            let n = src.send(&frames[next..])?;
            next += n;
            r.sent += n as u64;
        }
        let got = dst.recv_with_meta(64, |f, _| {
            let Ok(h) = EthernetHeader::parse(f) else {
                r.other_frames += 1;
                return;
            };
            if h.source != from || h.destination != to || h.ethertype != plan.ethertype {
                r.other_frames += 1;
                return;
            }
            r.received += 1;
            let Some(seq) = payload_seq(&f[h.payload_offset..]).filter(|s| *s < plan.count) else {
                r.corrupted += 1;
                return;
            };
            if f != &frames[seq as usize][..] {
                r.corrupted += 1;
                return;
            }
            if seen[seq as usize] {
                r.duplicates += 1;
                return;
            }
            seen[seq as usize] = true;
            r.intact += 1;
            if highest.is_some_and(|h| seq < h) {
                r.out_of_order += 1;
            }
            highest = highest.max(Some(seq));
        });
        src.reclaim();
        let done = next == frames.len() && r.intact + r.corrupted + r.duplicates >= r.sent;
        let late = src.clock().now_ns().saturating_sub(start) > timeout;
        if (done && src.tx_in_flight() == 0) || late {
            break;
        }
        if got == 0 {
            src.clock().delay_ns(50_000);
        }
    }
    r.tx_completed = r.sent == frames.len() as u64 && src.tx_in_flight() == 0;
    r.elapsed_ms = src.clock().now_ns().saturating_sub(start) as f64 / 1e6;
    r.hw_tx_packets = src.stats().tx_packets - tx0;
    r.hw_rx_packets = dst.stats().rx_packets - rx0;
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// ICMP helpers (the peer's side).
// ---------------------------------------------------------------------------------------------

const IPV4_HEADER_LEN: usize = 20;
const ICMP_HEADER_LEN: usize = 8;
const ETHERTYPE_ARP: u16 = 0x0806;

/// An ICMP echo message in an IPv4 frame.
struct Echo<'a> {
    request: bool,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    ident: u16,
    /// The ICMP message (header and data), checksum verified.
    icmp: &'a [u8],
}

fn parse_echo(f: &[u8]) -> Option<(EthernetHeader, Echo<'_>)> {
    let h = EthernetHeader::parse(f).ok()?;
    if h.ethertype != frame::ETHERTYPE_IPV4 {
        return None;
    }
    let ip = f.get(h.payload_offset..)?;
    let ihl = usize::from(ip.first()? & 0xF) * 4;
    if ihl < IPV4_HEADER_LEN || ip.len() < ihl + ICMP_HEADER_LEN || ip[9] != 1 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let icmp = ip.get(ihl..total)?;
    if icmp.len() < ICMP_HEADER_LEN || traffic::internet_checksum(icmp) != 0 {
        return None;
    }
    let request = match icmp[0] {
        8 => true,
        0 => false,
        _ => return None,
    };
    Some((
        h,
        Echo {
            request,
            src_ip: [ip[12], ip[13], ip[14], ip[15]],
            dst_ip: [ip[16], ip[17], ip[18], ip[19]],
            ident: u16::from_be_bytes([icmp[4], icmp[5]]),
            icmp,
        },
    ))
}

/// An IPv4 frame carrying `icmp` (checksums filled in).
fn icmp_frame(
    dst: MacAddress,
    src: MacAddress,
    ip_src: [u8; 4],
    ip_dst: [u8; 4],
    mut icmp: Vec<u8>,
) -> Vec<u8> {
    icmp[2] = 0;
    icmp[3] = 0;
    let c = traffic::internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = IPV4_HEADER_LEN + icmp.len();
    let mut ip = Vec::with_capacity(total);
    ip.extend_from_slice(&[0x45, 0]);
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&ip_src);
    ip.extend_from_slice(&ip_dst);
    let c = traffic::internet_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    let mut f = frame::build(dst, src, frame::ETHERTYPE_IPV4, &ip);
    if f.len() < frame::MIN_FRAME_LEN {
        f.resize(frame::MIN_FRAME_LEN, 0);
    }
    f
}

/// What an [`EchoPeer`] counted (the model's equivalent of a kernel netdev's `rx_packets` and
/// the IP stack's `Icmp InEchos` / `OutEchoReps`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeerCounts {
    /// Frames received (any).
    pub rx_packets: u64,
    /// ICMP echo requests to our address (InEchos).
    pub in_echos: u64,
    /// Echo replies sent (OutEchoReps).
    pub out_echo_reps: u64,
    /// Echo replies received to our own requests.
    pub in_echo_reps: u64,
    /// ARP requests for our address answered.
    pub arp_replies: u64,
}

/// The model's stand-in for the kernel's igbvf peer: a VF that counts what it receives and
/// answers ICMP echo requests and ARP for its address, as Linux does.
pub struct EchoPeer<R: RegisterIo, D: DmaAllocator, C: Clock> {
    vf: VfDriver<R, D, C>,
    ip: [u8; 4],
    counts: PeerCounts,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> EchoPeer<R, D, C> {
    /// A peer on `vf` with address `ip`.
    pub fn new(vf: VfDriver<R, D, C>, ip: Ipv4Addr) -> Self {
        EchoPeer {
            vf,
            ip: ip.octets(),
            counts: PeerCounts::default(),
        }
    }

    /// Its MAC.
    pub fn mac(&self) -> MacAddress {
        self.vf.mac()
    }

    /// The counters.
    pub fn counts(&self) -> PeerCounts {
        self.counts
    }

    /// Gives the driver back.
    pub fn into_driver(self) -> VfDriver<R, D, C> {
        self.vf
    }

    /// Receives what arrived and answers it; returns the frames handled.
    pub fn poll(&mut self) -> usize {
        let mut replies: Vec<Bytes> = Vec::new();
        let me = self.vf.mac();
        let ip = self.ip;
        let counts = &mut self.counts;
        let n = self.vf.recv_with_meta(64, |f, _| {
            counts.rx_packets += 1;
            if let Some((h, e)) = parse_echo(f) {
                if e.dst_ip != ip {
                    return;
                }
                if !e.request {
                    counts.in_echo_reps += 1;
                    return;
                }
                counts.in_echos += 1;
                if h.destination != me {
                    return;
                }
                let mut icmp = e.icmp.to_vec();
                icmp[0] = 0;
                replies.push(icmp_frame(h.source, me, ip, e.src_ip, icmp).into());
                counts.out_echo_reps += 1;
            } else if let Some(reply) = arp_reply(f, me, ip) {
                counts.arp_replies += 1;
                replies.push(reply.into());
            }
        });
        if !replies.is_empty() {
            let _ = self.vf.send(&replies);
        }
        self.vf.reclaim();
        n
    }

    /// Sends `count` ICMP echo requests to `dst` / `dst_ip` (as the kernel's `ping`).
    pub fn ping(
        &mut self,
        dst: MacAddress,
        dst_ip: Ipv4Addr,
        count: u16,
    ) -> Result<usize, DriverError> {
        let me = self.vf.mac();
        let frames: Vec<Bytes> = (0..count)
            .map(|seq| {
                let mut icmp = vec![8, 0, 0, 0, 0x50, 0x45];
                icmp.extend_from_slice(&seq.to_be_bytes());
                icmp.extend_from_slice(&[0xA5; 56]);
                icmp_frame(dst, me, self.ip, dst_ip.octets(), icmp).into()
            })
            .collect();
        self.vf.send(&frames)
    }
}

/// The ARP reply to `f` if it asks for `ip`.
fn arp_reply(f: &[u8], me: MacAddress, ip: [u8; 4]) -> Option<Vec<u8>> {
    let h = EthernetHeader::parse(f).ok()?;
    let a = f.get(h.payload_offset..h.payload_offset + 28)?;
    if h.ethertype != ETHERTYPE_ARP || a[6..8] != [0, 1] || a[24..28] != ip {
        return None;
    }
    let mut r = Vec::with_capacity(28);
    r.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    r.extend_from_slice(&me.0);
    r.extend_from_slice(&ip);
    r.extend_from_slice(&a[8..18]);
    let mut out = frame::build(h.source, me, ETHERTYPE_ARP, &r);
    out.resize(frame::MIN_FRAME_LEN, 0);
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Case 4: HAC semantics with SoftHac.
// ---------------------------------------------------------------------------------------------

/// What the peer has counted, read again at each step of [`hac_check`]. Either counter may be
/// missing; the checks use those present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeerReading {
    /// Frames the peer's netdev received (`/sys/class/net/<if>/statistics/rx_packets`).
    pub rx_packets: Option<u64>,
    /// ICMP echo requests the peer's IP stack received (`Icmp InEchos` of /proc/net/snmp).
    pub in_echos: Option<u64>,
}

/// What [`hac_check`] does.
#[derive(Clone, Debug)]
pub struct HacCheckPlan {
    /// The peer's MAC.
    pub peer_mac: MacAddress,
    /// Our IPv4 address.
    pub ip: Ipv4Addr,
    /// The peer's IPv4 address.
    pub peer_ip: Ipv4Addr,
    /// Echo requests per epoch.
    pub per_epoch: u32,
    /// Payload bytes per request.
    pub payload_len: usize,
    /// How long to wait before reading the peer (igbvf refreshes its counters every 2 s).
    pub settle: Duration,
    /// How long to wait for the echo replies of a commit.
    pub reply_timeout: Duration,
}

/// One step of [`hac_check`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct HacPhase {
    /// What was done.
    pub name: String,
    /// Peer's rx_packets since the start.
    pub peer_rx_packets: Option<u64>,
    /// Peer's InEchos since the start.
    pub peer_in_echos: Option<u64>,
    /// What both should be.
    pub expected_at_peer: u64,
    /// Echo replies received so far, as sequence numbers in arrival order (compressed as
    /// `a-b` runs).
    pub replies: String,
    /// The HAC counters after the step.
    pub buffered_frames: u32,
    /// Released so far.
    pub released: u64,
    /// Discarded so far.
    pub discarded: u64,
    /// The step's checks passed.
    pub ok: bool,
}

/// The result of [`hac_check`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct HacCheckReport {
    /// Every check passed.
    pub ok: bool,
    /// The steps.
    pub phases: Vec<HacPhase>,
    /// Failed checks, in words.
    pub problems: Vec<String>,
    /// Echo replies whose payload differed from the request.
    pub replies_bad: u64,
    /// Other frames received.
    pub other_frames: u64,
}

/// Sequence numbers as runs: `0-15,32-47`.
fn runs(seqs: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seqs.len() {
        let mut j = i;
        while j + 1 < seqs.len() && seqs[j + 1] == seqs[j].wrapping_add(1) {
            j += 1;
        }
        out.push(if i == j {
            seqs[i].to_string()
        } else {
            format!("{}-{}", seqs[i], seqs[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// The one VF of the check's SoftHac, as the HAC contract names it.
const SOFT_VF: VfNumber = VfNumber::new(0);

struct HacRun<'a, R: RegisterIo, D: DmaAllocator, C: Clock> {
    soft: &'a mut SoftHac<R, D, C>,
    plan: &'a HacCheckPlan,
    tplan: TrafficPlan,
    peer: &'a mut dyn FnMut() -> PeerReading,
    base: PeerReading,
    replies: Vec<u32>,
    report: HacCheckReport,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> HacRun<'_, R, D, C> {
    fn driver(&mut self) -> Result<SoftVfPort<'_, R, D, C>, CaseError> {
        VfIndex::new(0)
            .and_then(|v| self.soft.driver(v))
            .ok_or(CaseError::NoVf)
    }

    /// Receives echo replies while waiting `wait` (or until `until` replies arrived).
    fn wait(&mut self, wait: Duration, until: Option<usize>) -> Result<(), CaseError> {
        let start = self.driver()?.clock().now_ns();
        loop {
            self.soft.pump()?;
            let plan = &self.tplan;
            let (ip, peer_ip) = (self.plan.ip.octets(), self.plan.peer_ip.octets());
            let replies = &mut self.replies;
            let report = &mut self.report;
            let mut d = VfIndex::new(0)
                .and_then(|v| self.soft.driver(v))
                .ok_or(CaseError::NoVf)?;
            let got = d.recv_with_meta(64, |f, _| match parse_echo(f) {
                Some((_, e))
                    if !e.request
                        && e.ident == ECHO_ID
                        && e.src_ip == peer_ip
                        && e.dst_ip == ip =>
                {
                    let data = &e.icmp[ICMP_HEADER_LEN..];
                    match payload_seq(data) {
                        Some(seq) if data == traffic::test_payload(plan, seq).as_slice() => {
                            replies.push(seq)
                        }
                        _ => report.replies_bad += 1,
                    }
                }
                _ => report.other_frames += 1,
            });
            d.reclaim();
            let elapsed = d.clock().now_ns().saturating_sub(start);
            if until.is_some_and(|n| self.replies.len() >= n) || elapsed >= ns(wait) {
                return Ok(());
            }
            if got == 0 {
                self.driver()?.clock().delay_ns(200_000);
            }
        }
    }

    fn send(&mut self, seqs: std::ops::Range<u32>) -> Result<(), CaseError> {
        let me = self.driver()?.mac();
        let frames: Vec<Bytes> = seqs
            .clone()
            .map(|s| traffic::test_frame(&self.tplan, me, s).into())
            .collect();
        let vf = VfIndex::new(0).ok_or(CaseError::NoVf)?;
        let n = self.soft.send(vf, &frames)?;
        if n != frames.len() {
            self.report.problems.push(format!(
                "SoftHac accepted {n} of {} frames (seq {seqs:?})",
                frames.len()
            ));
        }
        Ok(())
    }

    /// Reads the peer after the settle time and checks the step.
    fn phase(
        &mut self,
        name: &str,
        expected_at_peer: u64,
        expected_replies: &[u32],
        expected_buffered: u32,
    ) -> Result<(), CaseError> {
        self.wait(self.plan.settle, None)?;
        let now = (self.peer)();
        let st: HacVfStats = self.soft.stats(SOFT_VF)?;
        let delta = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a.wrapping_sub(b));
        let mut p = HacPhase {
            name: name.to_string(),
            peer_rx_packets: delta(now.rx_packets, self.base.rx_packets),
            peer_in_echos: delta(now.in_echos, self.base.in_echos),
            expected_at_peer,
            replies: runs(&self.replies),
            buffered_frames: st.buffered_frames,
            released: st.released,
            discarded: st.discarded,
            ok: true,
        };
        let mut fail = |what: String| {
            p.ok = false;
            self.report.problems.push(format!("{name}: {what}"));
        };
        for (what, v) in [
            ("peer rx_packets", p.peer_rx_packets),
            ("peer InEchos", p.peer_in_echos),
        ] {
            if let Some(v) = v
                && v != expected_at_peer
            {
                fail(format!("{what} +{v}, expected +{expected_at_peer}"));
            }
        }
        if self.replies != expected_replies {
            fail(format!(
                "echo replies [{}], expected [{}]",
                runs(&self.replies),
                runs(expected_replies)
            ));
        }
        if st.buffered_frames != expected_buffered {
            fail(format!(
                "{} frames held, expected {expected_buffered}",
                st.buffered_frames
            ));
        }
        self.report.phases.push(p);
        Ok(())
    }
}

/// Case 4 on VF 0 of `soft` (untagged, nothing held), with a peer that answers ICMP echo
/// requests: epoch 1 held (the peer sees nothing), commit 1 (the peer sees epoch 1's frames,
/// replies in order) while epoch 2 stays held, abort 2 (nothing more reaches the peer),
/// epoch 3 committed (only its frames follow). `peer` reads the peer's counters.
pub fn hac_check<R: RegisterIo, D: DmaAllocator, C: Clock>(
    soft: &mut SoftHac<R, D, C>,
    plan: &HacCheckPlan,
    peer: &mut dyn FnMut() -> PeerReading,
) -> Result<HacCheckReport, CaseError> {
    let n = plan.per_epoch;
    let base = peer();
    let mut run = HacRun {
        soft,
        plan,
        tplan: TrafficPlan {
            dst: plan.peer_mac,
            count: 3 * n,
            ethertype: frame::ETHERTYPE_IPV4,
            payload_len: plan.payload_len,
            expect_rx: 0,
            rx_window: Duration::ZERO,
            tx_timeout: Duration::ZERO,
            ipv4: Some((plan.ip.octets(), plan.peer_ip.octets())),
        },
        peer,
        base,
        replies: Vec::new(),
        report: HacCheckReport::default(),
    };
    let nn = u64::from(n);
    let first: Vec<u32> = (0..n).collect();
    run.soft.set_tagged(SOFT_VF, true)?;
    run.send(0..n)?;
    run.phase("epoch 1 held", 0, &[], n)?;
    run.soft.open_epoch(SOFT_VF, 2)?;
    run.send(n..2 * n)?;
    run.phase("epochs 1 and 2 held", 0, &[], 2 * n)?;
    run.soft.commit(SOFT_VF, 1)?;
    run.wait(plan.reply_timeout, Some(n as usize))?;
    run.phase("commit 1 (epoch 2 held)", nn, &first, n)?;
    run.soft.open_epoch(SOFT_VF, 3)?;
    run.soft.abort(SOFT_VF, 2)?;
    run.phase("abort 2", nn, &first, 0)?;
    run.send(2 * n..3 * n)?;
    run.phase("epoch 3 held", nn, &first, n)?;
    run.soft.commit(SOFT_VF, 3)?;
    run.wait(plan.reply_timeout, Some(2 * n as usize))?;
    let mut both = first.clone();
    both.extend(2 * n..3 * n);
    run.phase("commit 3", 2 * nn, &both, 0)?;
    run.soft.set_tagged(SOFT_VF, false)?;
    let st = run.soft.stats(SOFT_VF)?;
    if st.released != 2 * u64::from(n) || st.discarded != u64::from(n) {
        run.report.problems.push(format!(
            "SoftHac counted {} released and {} discarded, expected {} and {n}",
            st.released,
            st.discarded,
            2 * n
        ));
    }
    if run.report.replies_bad != 0 {
        let bad = run.report.replies_bad;
        run.report
            .problems
            .push(format!("{bad} echo replies with a corrupted payload"));
    }
    run.report.ok = run.report.problems.is_empty();
    Ok(run.report)
}

// ---------------------------------------------------------------------------------------------
// Case 5: smoltcp.
// ---------------------------------------------------------------------------------------------

/// What [`SmoltcpEcho`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SmoltcpReport {
    /// Our MAC.
    pub mac: String,
    /// Our address.
    pub ip: String,
    /// TCP echo port.
    pub port: u16,
    /// TCP connections accepted.
    pub connections: u64,
    /// Connections closed by the peer and then by us.
    pub connections_closed: u64,
    /// Bytes echoed.
    pub bytes_echoed: u64,
    /// VF frames received (VFGPRC).
    pub hw_rx_packets: u64,
    /// VF frames sent (VFGPTC).
    pub hw_tx_packets: u64,
    /// Frames smoltcp sent while the TX ring was full (dropped).
    pub tx_ring_full: u64,
    /// How long it ran, ms.
    pub elapsed_ms: f64,
}

/// smoltcp on a VF: answers ARP and ping (the interface does) and echoes TCP on one port, one
/// connection at a time, closing after the peer closes.
pub struct SmoltcpEcho<R: RegisterIo, D: DmaAllocator, C: Clock> {
    dev: VfDevice<R, D, C>,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    active: bool,
    report: SmoltcpReport,
    started_ns: u64,
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 16 * 1024]),
        tcp::SocketBuffer::new(vec![0; 16 * 1024]),
    )
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> SmoltcpEcho<R, D, C> {
    /// Starts the stack on `vf` with `ip/prefix`, listening on `port`.
    pub fn new(
        vf: VfDriver<R, D, C>,
        ip: Ipv4Addr,
        prefix: u8,
        port: u16,
    ) -> Result<Self, CaseError> {
        let mac = vf.mac();
        let started_ns = vf.clock().now_ns();
        let mut dev = VfDevice::new(vf);
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac.0)));
        cfg.random_seed = started_ns ^ u64::from(u32::from(ip));
        let now = smoltcp::time::Instant::from_micros((started_ns / 1000) as i64);
        let mut iface = Interface::new(cfg, &mut dev, now);
        let mut pushed = Ok(());
        iface.update_ip_addrs(|a| {
            pushed = a
                .push(IpCidr::new(ip.into(), prefix))
                .map_err(|_| CaseError::Smoltcp("no room for the address".into()));
        });
        pushed?;
        let mut sockets = SocketSet::new(Vec::new());
        let mut s = tcp_socket();
        s.listen(port)
            .map_err(|e| CaseError::Smoltcp(e.to_string()))?;
        let tcp = sockets.add(s);
        Ok(SmoltcpEcho {
            dev,
            iface,
            sockets,
            tcp,
            active: false,
            report: SmoltcpReport {
                mac: mac.to_string(),
                ip: format!("{ip}/{prefix}"),
                port,
                ..SmoltcpReport::default()
            },
            started_ns,
        })
    }

    fn now(&mut self) -> smoltcp::time::Instant {
        let ns = self.dev.driver().clock().now_ns();
        smoltcp::time::Instant::from_micros((ns / 1000) as i64)
    }

    /// One round: the interface (ARP, ICMP, TCP), then the echo. Returns whether anything
    /// happened.
    pub fn poll(&mut self) -> Result<bool, CaseError> {
        let now = self.now();
        let changed = self.iface.poll(now, &mut self.dev, &mut self.sockets)
            == smoltcp::iface::PollResult::SocketStateChanged;
        let s = self.sockets.get_mut::<tcp::Socket<'static>>(self.tcp);
        if s.is_active() && !self.active {
            self.active = true;
            self.report.connections += 1;
        }
        let moved = echo_tcp(s);
        self.report.bytes_echoed += moved as u64;
        let finished = matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait);
        if self.active && finished {
            // A fresh listening socket (the old one leaves TIME-WAIT on its own; dropping it
            // sends nothing).
            self.active = false;
            self.report.connections_closed += 1;
            self.sockets.remove(self.tcp);
            let mut s = tcp_socket();
            s.listen(self.report.port)
                .map_err(|e| CaseError::Smoltcp(e.to_string()))?;
            self.tcp = self.sockets.add(s);
        }
        Ok(changed || moved > 0)
    }

    /// Polls until `duration` passed or `connections` connections were closed (0: the whole
    /// duration).
    pub fn run_for(&mut self, duration: Duration, connections: u64) -> Result<(), CaseError> {
        let start = self.dev.driver().clock().now_ns();
        loop {
            let busy = self.poll()?;
            if connections > 0 && self.report.connections_closed >= connections {
                return Ok(());
            }
            let d = self.dev.driver();
            if d.clock().now_ns().saturating_sub(start) >= ns(duration) {
                return Ok(());
            }
            if !busy {
                d.clock().delay_ns(100_000);
            }
        }
    }

    /// The driver underneath.
    pub fn driver(&mut self) -> &mut VfDriver<R, D, C> {
        self.dev.driver()
    }

    /// What happened so far.
    pub fn report(&mut self) -> SmoltcpReport {
        let tx_ring_full = self.dev.tx_ring_full;
        let d = self.dev.driver();
        let s = d.stats();
        let mut r = self.report.clone();
        r.hw_rx_packets = s.rx_packets;
        r.hw_tx_packets = s.tx_packets;
        r.tx_ring_full = tx_ring_full;
        r.elapsed_ms = d.clock().now_ns().saturating_sub(self.started_ns) as f64 / 1e6;
        r
    }
}

pub mod vfio;

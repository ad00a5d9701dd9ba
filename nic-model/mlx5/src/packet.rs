//! What the datapath reads of an Ethernet frame: the L2/L3/L4 layout, the outer match
//! headers flow steering compares (`mlx5_hw::commands::steering::MatchHeaders`), the
//! Internet checksums the send path computes (`cs_flags`) and the receive path verifies
//! (`hds_ip_ext`, `check_sum`), VLAN tag insertion and stripping, and the Toeplitz hash of
//! an indirect TIR. Pure functions over bytes: no device state, never a panic on any frame.
//!
//! Sources: IEEE 802.1Q, RFC 791/8200/793/768 (headers), RFC 1071 (the ones'-complement sum),
//! the Microsoft RSS specification (Toeplitz, the field order), Linux `en_rx.c`
//! (`mlx5e_handle_csum`: `check_sum` is the sum from the IP header to the end of the IP
//! packet, VLAN tag and padding excluded).

use mlx5_hw::commands::rx::hash_fields;
use mlx5_hw::commands::steering::{MATCH_PARAM_LEN, MatchHeaders};

/// Bytes of an Ethernet header without tags.
pub const ETH_HLEN: usize = 14;
/// Bytes of a VLAN tag.
pub const VLAN_HLEN: usize = 4;
/// 802.1Q C-tag TPID.
pub const ETH_P_8021Q: u16 = 0x8100;
/// 802.1ad S-tag TPID.
pub const ETH_P_8021AD: u16 = 0x88A8;
/// IPv4 EtherType.
pub const ETH_P_IP: u16 = 0x0800;
/// IPv6 EtherType.
pub const ETH_P_IPV6: u16 = 0x86DD;
/// TCP protocol number.
pub const IPPROTO_TCP: u8 = 6;
/// UDP protocol number.
pub const IPPROTO_UDP: u8 = 17;

/// The L3 header of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// Not IP (or a truncated IP header).
    None,
    /// IPv4: header length, total length, protocol, fragment (MF or offset ≠ 0).
    V4 {
        /// Header bytes.
        hdr_len: usize,
        /// Total length field.
        total_len: usize,
        /// Protocol.
        proto: u8,
        /// A fragment.
        frag: bool,
    },
    /// IPv6 (no extension headers walked): payload length and next header.
    V6 {
        /// Payload length field.
        payload_len: usize,
        /// Next header.
        next: u8,
    },
}

/// Where the headers of a frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The first VLAN tag: TPID and TCI.
    pub vlan: Option<(u16, u16)>,
    /// EtherType after the tags.
    pub ethertype: u16,
    /// Offset of the L3 header.
    pub l3_offset: usize,
    /// The L3 header.
    pub l3: L3,
    /// Offset of the TCP/UDP header when it is whole in the frame.
    pub l4_offset: Option<usize>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |x| u16::from_be_bytes([x[0], x[1]]))
}

impl Layout {
    /// Reads the layout of `frame` (at most one VLAN tag, which is what the model strips and
    /// matches on).
    pub fn parse(frame: &[u8]) -> Layout {
        let mut ethertype = be16(frame, 12);
        let mut l3_offset = ETH_HLEN;
        let mut vlan = None;
        if matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD) && frame.len() >= ETH_HLEN + VLAN_HLEN {
            vlan = Some((ethertype, be16(frame, 14)));
            ethertype = be16(frame, 16);
            l3_offset += VLAN_HLEN;
        }
        let ip = frame.get(l3_offset..).unwrap_or_default();
        let l3 = match ethertype {
            ETH_P_IP if ip.len() >= 20 && ip[0] >> 4 == 4 && usize::from(ip[0] & 0xF) >= 5 => {
                L3::V4 {
                    hdr_len: usize::from(ip[0] & 0xF) * 4,
                    total_len: usize::from(be16(ip, 2)),
                    proto: ip[9],
                    frag: be16(ip, 6) & 0x3FFF != 0,
                }
            }
            ETH_P_IPV6 if ip.len() >= 40 && ip[0] >> 4 == 6 => L3::V6 {
                payload_len: usize::from(be16(ip, 4)),
                next: ip[6],
            },
            _ => L3::None,
        };
        let l4 = match l3 {
            L3::V4 {
                hdr_len,
                proto,
                frag: false,
                ..
            } => Some((l3_offset + hdr_len, proto)),
            L3::V6 { next, .. } => Some((l3_offset + 40, next)),
            _ => None,
        };
        let l4_offset = l4.and_then(|(at, proto)| {
            let need = match proto {
                IPPROTO_TCP => 20,
                IPPROTO_UDP => 8,
                _ => return None,
            };
            (frame.len() >= at + need).then_some(at)
        });
        Layout {
            vlan,
            ethertype,
            l3_offset,
            l3,
            l4_offset,
        }
    }

    /// The L4 protocol (TCP or UDP) when its header is in the frame.
    pub fn l4_proto(&self) -> Option<u8> {
        self.l4_offset?;
        match self.l3 {
            L3::V4 { proto, .. } => Some(proto),
            L3::V6 { next, .. } => Some(next),
            L3::None => None,
        }
    }

    /// The end of the IP packet (its length fields), bounded by the frame.
    pub fn l3_end(&self, frame_len: usize) -> usize {
        let end = match self.l3 {
            L3::V4 { total_len, .. } => self.l3_offset + total_len,
            L3::V6 { payload_len, .. } => self.l3_offset + 40 + payload_len,
            L3::None => frame_len,
        };
        end.min(frame_len)
    }

    /// Bytes of the headers up to and including `mode`'s layer (inline modes: 1 L2, 2 IP,
    /// 3 TCP/UDP); a layer the frame does not have ends the headers where the last one did.
    pub fn header_len(&self, mode: u8) -> usize {
        let l2 = self.l3_offset;
        let l3 = match self.l3 {
            L3::V4 { hdr_len, .. } => l2 + hdr_len,
            L3::V6 { .. } => l2 + 40,
            L3::None => l2,
        };
        match mode {
            0 => 0,
            1 => l2,
            2 => l3,
            _ => self.l4_offset.map_or(l3, |at| match self.l4_proto() {
                Some(IPPROTO_TCP) => at + 20,
                _ => at + 8,
            }),
        }
    }
}

/// The outer match headers of `frame` (the first 64 bytes of a match parameter), for the
/// fields the model compares.
pub fn match_headers(frame: &[u8]) -> [u8; 0x40] {
    let mut m = [0u8; 0x40];
    let l = Layout::parse(frame);
    if let Some(src) = frame.get(6..12) {
        m[0..6].copy_from_slice(src);
    }
    if let Some(dst) = frame.get(0..6) {
        m[8..14].copy_from_slice(dst);
    }
    let Ok(mut h) = MatchHeaders::new_checked(&mut m[..]) else {
        return [0u8; 0x40];
    };
    h.set_ethertype(l.ethertype);
    if let Some((tpid, tci)) = l.vlan {
        h.set_first_prio((tci >> 13) as u8);
        h.set_first_cfi(tci & 0x1000 != 0);
        h.set_first_vid(tci & 0xFFF);
        h.set_cvlan_tag(tpid == ETH_P_8021Q);
        h.set_svlan_tag(tpid == ETH_P_8021AD);
    }
    let ip = frame.get(l.l3_offset..).unwrap_or_default();
    match l.l3 {
        L3::V4 { proto, frag, .. } => {
            h.set_ip_version(4);
            h.set_ip_protocol(proto);
            h.set_frag(frag);
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src[12..].copy_from_slice(&ip[12..16]);
            dst[12..].copy_from_slice(&ip[16..20]);
            h.set_src_ip(src);
            h.set_dst_ip(dst);
        }
        L3::V6 { next, .. } => {
            h.set_ip_version(6);
            h.set_ip_protocol(next);
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&ip[8..24]);
            dst.copy_from_slice(&ip[24..40]);
            h.set_src_ip(src);
            h.set_dst_ip(dst);
        }
        L3::None => {}
    }
    if let Some(at) = l.l4_offset {
        let (sport, dport) = (be16(frame, at), be16(frame, at + 2));
        match l.l4_proto() {
            Some(IPPROTO_TCP) => {
                h.set_tcp_sport(sport);
                h.set_tcp_dport(dport);
            }
            Some(IPPROTO_UDP) => {
                h.set_udp_sport(sport);
                h.set_udp_dport(dport);
            }
            _ => {}
        }
    }
    m
}

/// The bits of the outer match headers the model compares: a criteria mask may select only
/// these (smac, ethertype, dmac, first VLAN prio/cfi/vid, IP protocol, C/S-VLAN present,
/// fragment, IP version, TCP and UDP ports, source and destination IP).
pub fn supported_criteria() -> [u8; 0x40] {
    let mut m = [0xFFu8; 0x40];
    // Not compared: DSCP/ECN (dword 0x10 bits 23:16), TCP flags (8:0), dword 0x18 (TTL,
    // L4 type, VxLAN bits) and the reserved bytes.
    if let Ok(mut h) = MatchHeaders::new_checked(&mut m[..]) {
        h.set_ip_dscp(0);
        h.set_ip_ecn(0);
        h.set_tcp_flags(0);
    }
    m[0x18..0x1C].fill(0);
    m
}

/// True when `criteria` (a whole match parameter with `enable` bits) selects only what the
/// model compares: outer headers, supported fields.
pub fn criteria_supported(enable: u8, criteria: &[u8]) -> bool {
    use mlx5_hw::commands::steering::match_criteria_enable::OUTER_HEADERS;
    if enable & !OUTER_HEADERS != 0 || criteria.len() < MATCH_PARAM_LEN {
        return false;
    }
    let supported = supported_criteria();
    criteria
        .iter()
        .zip(supported.iter())
        .all(|(c, s)| c & !s == 0)
}

/// The ones'-complement sum of `data` added to `sum` (not folded).
pub fn ones_sum(data: &[u8], mut sum: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a sum to 16 bits.
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// The pseudo-header sum of the L4 segment of `frame` (`len` bytes of L4).
fn pseudo_sum(frame: &[u8], l: &Layout, proto: u8, len: usize) -> u64 {
    let ip = frame.get(l.l3_offset..).unwrap_or_default();
    let addrs = match l.l3 {
        L3::V4 { .. } => ip.get(12..20),
        L3::V6 { .. } => ip.get(8..40),
        L3::None => None,
    };
    ones_sum(addrs.unwrap_or_default(), u64::from(proto) + len as u64)
}

/// Offset of the checksum field in a TCP (16) or UDP (6) header.
fn l4_csum_offset(proto: u8) -> Option<usize> {
    match proto {
        IPPROTO_TCP => Some(16),
        IPPROTO_UDP => Some(6),
        _ => None,
    }
}

/// Send checksum offload: with `l3`, the IPv4 header checksum is computed and written; with
/// `l4`, the TCP/UDP checksum over the pseudo-header and the segment (to the IP packet's end).
/// Frames without those headers are left as they are.
pub fn insert_checksums(frame: &mut [u8], l3: bool, l4: bool) {
    let l = Layout::parse(frame);
    if l3 && let L3::V4 { hdr_len, .. } = l.l3 {
        let at = l.l3_offset;
        if let Some(hdr) = frame.get_mut(at..at + hdr_len) {
            hdr[10..12].fill(0);
            let c = !fold(ones_sum(hdr, 0));
            hdr[10..12].copy_from_slice(&c.to_be_bytes());
        }
    }
    let (Some(at), Some(proto)) = (l.l4_offset, l.l4_proto()) else {
        return;
    };
    let Some(field) = l4_csum_offset(proto) else {
        return;
    };
    if !l4 {
        return;
    }
    let end = l.l3_end(frame.len()).max(at);
    let pseudo = pseudo_sum(frame, &l, proto, end - at);
    let Some(seg) = frame.get_mut(at..end) else {
        return;
    };
    if seg.len() < field + 2 {
        return;
    }
    seg[field..field + 2].fill(0);
    let mut c = !fold(ones_sum(seg, pseudo));
    if proto == IPPROTO_UDP && c == 0 {
        c = 0xFFFF;
    }
    seg[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

/// What the receive path reports of a frame's checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RxChecksum {
    /// The IPv4 header checksum is right (IPv6: always, it has none).
    pub l3_ok: bool,
    /// The TCP/UDP checksum is right.
    pub l4_ok: bool,
    /// The ones'-complement sum from the IP header to the end of the IP packet (0 for non-IP).
    pub check_sum: u16,
}

/// Verifies the checksums of a received frame.
pub fn rx_checksum(frame: &[u8]) -> RxChecksum {
    let l = Layout::parse(frame);
    if l.l3 == L3::None {
        return RxChecksum::default();
    }
    let end = l.l3_end(frame.len());
    let ip = frame.get(l.l3_offset..end).unwrap_or_default();
    let l3_ok = match l.l3 {
        L3::V4 { hdr_len, .. } => ip
            .get(..hdr_len)
            .is_some_and(|h| fold(ones_sum(h, 0)) == 0xFFFF),
        _ => true,
    };
    let l4_ok = match (l.l4_offset, l.l4_proto()) {
        (Some(at), Some(proto)) if at <= end => {
            let seg = &frame[at..end];
            let zero_udp = proto == IPPROTO_UDP
                && matches!(l.l3, L3::V4 { .. })
                && seg.get(6..8) == Some(&[0, 0]);
            zero_udp || fold(ones_sum(seg, pseudo_sum(frame, &l, proto, seg.len()))) == 0xFFFF
        }
        _ => false,
    };
    RxChecksum {
        l3_ok,
        l4_ok,
        check_sum: fold(ones_sum(ip, 0)),
    }
}

/// `frame` with an 802.1Q (or 802.1ad with `svlan`) tag of `tci` inserted after the MACs;
/// `None` for a frame shorter than the MACs.
pub fn insert_vlan(frame: &[u8], tci: u16, svlan: bool) -> Option<Vec<u8>> {
    let macs = frame.get(..12)?;
    let tpid = if svlan { ETH_P_8021AD } else { ETH_P_8021Q };
    let mut out = Vec::with_capacity(frame.len() + VLAN_HLEN);
    out.extend_from_slice(macs);
    out.extend_from_slice(&tpid.to_be_bytes());
    out.extend_from_slice(&tci.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    Some(out)
}

/// Strips an 802.1Q C-tag: the frame without it and the TCI; `None` when untagged.
pub fn strip_cvlan(frame: &[u8]) -> Option<(Vec<u8>, u16)> {
    if frame.len() < ETH_HLEN + VLAN_HLEN || be16(frame, 12) != ETH_P_8021Q {
        return None;
    }
    let tci = be16(frame, 14);
    let mut out = Vec::with_capacity(frame.len() - VLAN_HLEN);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&frame[16..]);
    Some((out, tci))
}

/// The Toeplitz hash of `input` under `key` (the RSS specification: for every set bit of the
/// input, the 32 key bits starting at that bit position are XORed into the result).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let bit = |n: usize| -> u32 {
        key.get(n / 8)
            .map_or(0, |b| u32::from((b >> (7 - n % 8)) & 1))
    };
    let mut window: u32 = (0..32).fold(0, |w, n| (w << 1) | bit(n));
    let mut result = 0;
    for (i, byte) in input.iter().enumerate() {
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                result ^= window;
            }
            window = (window << 1) | bit(i * 8 + b + 32);
        }
    }
    result
}

/// The inverted XOR8 hash of `input`: every byte XORed together, then inverted (an 8-bit
/// result in the low byte). mlx5e builds its per-channel TIRs with it (one-entry RQTs).
pub fn inverted_xor8(input: &[u8]) -> u32 {
    u32::from(!input.iter().fold(0u8, |h, b| h ^ b))
}

/// The RSS hash input of `frame` for an outer hash field `selector`: the selected source and
/// destination addresses and L4 ports, in that order, when the frame has the IP version and
/// L4 protocol the selector names; `None` when the frame does not match the selector.
pub fn rss_input(frame: &[u8], selector: u32) -> Option<Vec<u8>> {
    let l = Layout::parse(frame);
    // The selector's L3 type (bit 31: IPv6), L4 type (bit 30: UDP) and field bits (29:0),
    // as `hash_fields` declares them.
    let v6 = selector >> 31 == 1;
    let udp = (selector >> 30) & 1 == 1;
    let fields = selector & 0x3FFF_FFFF;
    let ip = frame.get(l.l3_offset..)?;
    let (src, dst) = match (l.l3, v6) {
        (L3::V4 { .. }, false) => (ip.get(12..16)?, ip.get(16..20)?),
        (L3::V6 { .. }, true) => (ip.get(8..24)?, ip.get(24..40)?),
        _ => return None,
    };
    let mut input = Vec::new();
    if fields & hash_fields::SELECTED_SRC_IP != 0 {
        input.extend_from_slice(src);
    }
    if fields & hash_fields::SELECTED_DST_IP != 0 {
        input.extend_from_slice(dst);
    }
    let ports = hash_fields::SELECTED_L4_SPORT | hash_fields::SELECTED_L4_DPORT;
    if fields & ports != 0 {
        let want = if udp { IPPROTO_UDP } else { IPPROTO_TCP };
        let at = l.l4_offset.filter(|_| l.l4_proto() == Some(want))?;
        if fields & hash_fields::SELECTED_L4_SPORT != 0 {
            input.extend_from_slice(frame.get(at..at + 2)?);
        }
        if fields & hash_fields::SELECTED_L4_DPORT != 0 {
            input.extend_from_slice(frame.get(at + 2..at + 4)?);
        }
    }
    Some(input)
}

/// Large send: `frame` (all headers then the payload to its end) cut into segments of
/// at most `mss` payload bytes, each with the headers fixed as a device segmenting TCP or UDP
/// does: IPv4 total length, identification (+1 per segment) and header checksum, or IPv6
/// payload length; TCP sequence number (+ offset), CWR only on the first segment, FIN and
/// PSH only on the last; UDP length; TCP/UDP checksums. `None` when the frame is not TCP or
/// UDP over IP with its headers whole, or `mss` is 0.
pub fn segment(frame: &[u8], mss: usize) -> Option<Vec<Vec<u8>>> {
    let l = Layout::parse(frame);
    let at = l.l4_offset?;
    let proto = l.l4_proto()?;
    let hdr_len = match proto {
        // A TCP data offset under 5 words is not a TCP header.
        IPPROTO_TCP => at + usize::from(frame.get(at + 12)? >> 4).max(5) * 4,
        _ => at + 8,
    };
    // The payload runs to the frame's end: a large send's IP length fields describe the whole
    // send (or are 0 beyond 64 KiB), not what the device cuts.
    let end = frame.len();
    if mss == 0 || hdr_len < at + 8 || hdr_len > end {
        return None;
    }
    let payload = &frame[hdr_len..end];
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(mss).collect()
    };
    let last = chunks.len() - 1;
    let id = be16(frame, l.l3_offset + 4);
    let seq = frame
        .get(at + 4..at + 8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let mut out = Vec::with_capacity(chunks.len());
    let mut offset = 0u32;
    for (k, chunk) in chunks.into_iter().enumerate() {
        let mut seg = Vec::with_capacity(hdr_len + chunk.len());
        seg.extend_from_slice(&frame[..hdr_len]);
        seg.extend_from_slice(chunk);
        let ip = l.l3_offset;
        match l.l3 {
            L3::V4 { .. } => {
                let total = (seg.len() - ip) as u16;
                seg[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
                seg[ip + 4..ip + 6].copy_from_slice(&id.wrapping_add(k as u16).to_be_bytes());
            }
            L3::V6 { .. } => {
                let len = (seg.len() - ip - 40) as u16;
                seg[ip + 4..ip + 6].copy_from_slice(&len.to_be_bytes());
            }
            L3::None => return None,
        }
        if proto == IPPROTO_TCP {
            seg[at + 4..at + 8].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
            const FIN: u8 = 0x01;
            const PSH: u8 = 0x08;
            const CWR: u8 = 0x80;
            if k != last {
                seg[at + 13] &= !(FIN | PSH);
            }
            if k != 0 {
                seg[at + 13] &= !CWR;
            }
        } else {
            let len = (8 + chunk.len()) as u16;
            seg[at + 4..at + 6].copy_from_slice(&len.to_be_bytes());
        }
        insert_checksums(&mut seg, true, true);
        offset = offset.wrapping_add(chunk.len() as u32);
        out.push(seg);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An IPv4/UDP frame, 10.0.0.1:1000 → 10.0.0.2:2000, 4 bytes of payload, checksums zero.
    fn udp_frame() -> Vec<u8> {
        let mut f = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet
            0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // IPv4
            0x03, 0xe8, 0x07, 0xd0, 0, 12, 0, 0, // UDP
        ];
        f.extend_from_slice(b"data");
        f
    }

    #[test]
    fn checksums_inserted_on_send_verify_on_receive() {
        let mut f = udp_frame();
        assert_eq!(
            rx_checksum(&f),
            RxChecksum {
                l3_ok: false,
                l4_ok: true, // UDP checksum 0: none
                check_sum: fold(ones_sum(&f[14..], 0)),
            }
        );
        insert_checksums(&mut f, true, true);
        let r = rx_checksum(&f);
        assert!(r.l3_ok && r.l4_ok);
        assert_ne!(&f[40..42], &[0, 0]);
        f[45] ^= 1;
        assert!(!rx_checksum(&f).l4_ok);
    }

    #[test]
    fn vlan_insert_and_strip_round_trip_and_shift_the_layout() {
        let f = udp_frame();
        let tagged = insert_vlan(&f, 0x2064, false).unwrap();
        assert_eq!(&tagged[12..18], &[0x81, 0x00, 0x20, 0x64, 0x08, 0x00]);
        let l = Layout::parse(&tagged);
        assert_eq!(
            (l.vlan, l.l3_offset, l.l4_offset),
            (Some((0x8100, 0x2064)), 18, Some(38))
        );
        assert_eq!(strip_cvlan(&tagged), Some((f.clone(), 0x2064)));
        assert_eq!(strip_cvlan(&f), None);
        assert_eq!(insert_vlan(&f[..5], 1, false), None);
    }

    #[test]
    fn match_headers_carry_the_compared_fields() {
        let m = match_headers(&udp_frame());
        let h = MatchHeaders::new_checked(&m[..]).unwrap();
        assert_eq!(h.dmac().0, [0xff; 6]);
        assert_eq!(h.ethertype(), ETH_P_IP);
        assert_eq!((h.ip_version(), h.ip_protocol()), (4, IPPROTO_UDP));
        assert_eq!((h.udp_sport(), h.udp_dport()), (1000, 2000));
        assert_eq!(&h.dst_ip()[12..], &[10, 0, 0, 2]);
        let s = supported_criteria();
        assert!(m.iter().zip(s.iter()).all(|(v, s)| v & !s == 0));
    }

    #[test]
    fn inline_header_lengths_by_mode() {
        let l = Layout::parse(&udp_frame());
        assert_eq!([0, 1, 2, 3].map(|m| l.header_len(m)), [0, 14, 34, 42]);
    }

    #[test]
    fn inverted_xor8_folds_every_byte_and_inverts() {
        assert_eq!(inverted_xor8(&[]), 0xFF);
        assert_eq!(inverted_xor8(&[0x0F, 0xF0]), 0x00);
        assert_eq!(
            inverted_xor8(&[10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39]),
            !(3 ^ 0x30 ^ 0x39) & 0xFF
        );
    }

    #[test]
    fn toeplitz_matches_the_rss_specification_vector() {
        // The RSS specification's key and its first IPv4 vector: 66.9.149.187:2794 →
        // 161.142.100.80:1766, hash over addresses and ports 0x51ccc178.
        let key = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        assert_eq!(toeplitz(&key, &input), 0x51cc_c178);
        assert_eq!(toeplitz(&key, &input[..8]), 0x323e_8fc2);
    }

    #[test]
    fn large_sends_are_cut_at_the_mss_with_their_headers_fixed() {
        // IPv4/TCP, 10 payload bytes, seq 1000, flags CWR|PSH|ACK|FIN.
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 50, 0, 7, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&[
            0, 1, 0, 2, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x50, 0x99, 0, 0, 0, 0, 0, 0,
        ]);
        f.extend((0..10u8).map(|i| i + 100));
        let segs = segment(&f, 4).unwrap();
        assert_eq!(segs.len(), 3);
        assert_eq!(
            segs.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![58, 58, 56]
        );
        for (k, s) in segs.iter().enumerate() {
            let c = rx_checksum(s);
            assert!(c.l3_ok && c.l4_ok, "segment {k}");
            assert_eq!(be16(s, 18), 7 + k as u16, "IP id");
            assert_eq!(&s[38..42], &(1000 + 4 * k as u32).to_be_bytes());
        }
        assert_eq!((segs[0][47], segs[1][47], segs[2][47]), (0x90, 0x10, 0x19));
        assert_eq!(&segs[2][54..56], &[108, 109]);
        assert_eq!(segment(&f, 0), None);
        assert_eq!(segment(&f[..30], 4), None);
        // A data offset of 2 words and no payload: the 20-byte header is still what is cut.
        let mut short = f[..54].to_vec();
        short[46] = 0x20;
        assert_eq!(segment(&short, 4).map(|s| s.len()), Some(1));
    }

    #[test]
    fn garbage_frames_never_panic() {
        for len in 0..64 {
            let f: Vec<u8> = (0..len).map(|i| (i * 37 + 0x45) as u8).collect();
            let _ = (Layout::parse(&f), match_headers(&f), rx_checksum(&f));
            let mut g = f.clone();
            insert_checksums(&mut g, true, true);
            let _ = rss_input(&f, u32::MAX);
            let _ = segment(&f, 3);
        }
        // Every byte of a valid TCP and UDP frame set to edge values, truncated anywhere.
        let mut tcp = udp_frame();
        tcp[23] = IPPROTO_TCP;
        tcp.extend_from_slice(&[0; 16]);
        for base in [udp_frame(), tcp] {
            for at in 0..base.len() {
                for v in [0x00, 0x0f, 0x20, 0x45, 0xf0, 0xff] {
                    let mut g = base.clone();
                    g[at] = v;
                    for cut in [g.len(), at + 1, at / 2] {
                        let h = &g[..cut];
                        let _ = (
                            segment(h, 1),
                            segment(h, 7),
                            rx_checksum(h),
                            match_headers(h),
                        );
                        let _ = rss_input(h, 0xC000_000F);
                        let mut m = h.to_vec();
                        insert_checksums(&mut m, true, true);
                    }
                }
            }
        }
    }
}

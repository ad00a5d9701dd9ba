//! TX offloads the 82576 performs on a gathered packet (datasheet 7.2.4–7.2.5): IPv4 header
//! checksum (POPTS.IXSM), TCP/UDP checksum (POPTS.TXSM) and TCP segmentation (DCMD.TSE), all
//! driven by the context descriptor's MACLEN/IPLEN/L4LEN/MSS/TUCMD.
//!
//! Checksum semantics follow the Intel convention that Linux relies on for CHECKSUM_PARTIAL:
//! software seeds the L4 checksum field with the pseudo-header sum; the hardware sums from the L4
//! header to the end of the packet (seeded field included) and stores the complement. For TSO the
//! hardware builds each segment's pseudo-header itself.

use igb_hw::desc::{L4Type, TxContextRepr};

/// Why an offload could not be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// MACLEN/IPLEN/L4LEN point beyond the packet.
    #[error("context header lengths exceed the packet")]
    HeadersBeyondPacket,
    /// TSO with MSS = 0.
    #[error("TSO with MSS 0")]
    ZeroMss,
    /// TSO requested for something other than TCP.
    #[error("TSO is only defined for TCP")]
    TsoNotTcp,
    /// SCTP CRC offload is not modelled.
    #[error("SCTP checksum offload is not modelled")]
    Sctp,
    /// More segments than the model will produce for one packet.
    #[error("TSO would produce more than 256 segments")]
    TooManySegments,
}

/// One's-complement sum of `data` (big-endian 16-bit words) added to `sum`, not folded.
pub fn ones_complement_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum
}

/// Folds a sum to 16 bits and complements it.
pub fn fold_complement(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

fn l4_checksum_offset(l4: L4Type) -> Result<usize, OffloadError> {
    match l4 {
        L4Type::Tcp => Ok(16),
        L4Type::Udp => Ok(6),
        L4Type::Sctp | L4Type::Unknown(_) => Err(OffloadError::Sctp),
    }
}

/// Applies IXSM/TXSM to one packet in place.
pub fn checksums(
    frame: &mut [u8],
    ctx: &TxContextRepr,
    ixsm: bool,
    txsm: bool,
) -> Result<(), OffloadError> {
    let ip = usize::from(ctx.maclen);
    let l4 = ip + usize::from(ctx.iplen);
    if ixsm && ctx.ipv4 {
        if ip + 20 > frame.len() || l4 > frame.len() || ctx.iplen < 20 {
            return Err(OffloadError::HeadersBeyondPacket);
        }
        frame[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let c = fold_complement(ones_complement_add(0, &frame[ip..l4]));
        frame[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    }
    if txsm {
        let at = l4 + l4_checksum_offset(ctx.l4)?;
        if at + 2 > frame.len() {
            return Err(OffloadError::HeadersBeyondPacket);
        }
        let mut c = fold_complement(ones_complement_add(0, &frame[l4..]));
        if ctx.l4 == L4Type::Udp && c == 0 {
            c = 0xFFFF;
        }
        frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}

fn pseudo_header_sum(frame: &[u8], ip: usize, ipv4: bool, l4_len: usize) -> u32 {
    let mut s = 0;
    if ipv4 {
        s = ones_complement_add(s, &frame[ip + 12..ip + 20]);
    } else {
        s = ones_complement_add(s, &frame[ip + 8..ip + 40]);
    }
    s = ones_complement_add(s, &[0, 6]);
    ones_complement_add(s, &(l4_len as u32).to_be_bytes())
}

/// Splits a TSO packet into MSS-sized TCP segments with fixed-up IP lengths, IPv4 ids, TCP
/// sequence numbers, flags and checksums.
pub fn segment_tcp(frame: &[u8], ctx: &TxContextRepr) -> Result<Vec<Vec<u8>>, OffloadError> {
    if ctx.l4 != L4Type::Tcp {
        return Err(OffloadError::TsoNotTcp);
    }
    if ctx.mss == 0 {
        return Err(OffloadError::ZeroMss);
    }
    let ip = usize::from(ctx.maclen);
    let l4 = ip + usize::from(ctx.iplen);
    let hdr = l4 + usize::from(ctx.l4len);
    let min_ip = if ctx.ipv4 { 20 } else { 40 };
    if usize::from(ctx.iplen) < min_ip || ctx.l4len < 20 || hdr > frame.len() {
        return Err(OffloadError::HeadersBeyondPacket);
    }
    let payload = &frame[hdr..];
    let mss = usize::from(ctx.mss);
    let count = payload.len().div_ceil(mss).max(1);
    if count > 256 {
        return Err(OffloadError::TooManySegments);
    }
    let seq0 = u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]]);
    let id0 = if ctx.ipv4 {
        u16::from_be_bytes([frame[ip + 4], frame[ip + 5]])
    } else {
        0
    };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        let mut seg = Vec::with_capacity(hdr + chunk.len());
        seg.extend_from_slice(&frame[..hdr]);
        seg.extend_from_slice(chunk);
        let l4_len = usize::from(ctx.l4len) + chunk.len();
        if ctx.ipv4 {
            let total = (usize::from(ctx.iplen) + l4_len) as u16;
            seg[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
            seg[ip + 4..ip + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            seg[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
            let c = fold_complement(ones_complement_add(0, &seg[ip..l4]));
            seg[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        } else {
            let plen = (usize::from(ctx.iplen) - 40 + l4_len) as u16;
            seg[ip + 4..ip + 6].copy_from_slice(&plen.to_be_bytes());
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        seg[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let last = i + 1 == count;
        let mut flags = seg[l4 + 13];
        if !last {
            flags &= !(0x01 | 0x08); // FIN, PSH only on the last segment
        }
        if i > 0 {
            flags &= !0x80; // CWR only on the first
        }
        seg[l4 + 13] = flags;
        seg[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
        let s = pseudo_header_sum(&seg, ip, ctx.ipv4, l4_len);
        let c = fold_complement(ones_complement_add(s, &seg[l4..]));
        seg[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        out.push(seg);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real IPv4 header (from the Wikipedia checksum example): checksum 0xB861.
    const IPV4: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn ctx(l4: L4Type, l4len: u8, mss: u16) -> TxContextRepr {
        TxContextRepr {
            iplen: 20,
            maclen: 14,
            ipv4: true,
            l4,
            l4len,
            mss,
            ..Default::default()
        }
    }

    #[test]
    fn ipv4_header_checksum() {
        let mut f = vec![0u8; 14];
        f.extend_from_slice(&IPV4);
        f.resize(14 + 0x73, 0);
        checksums(&mut f, &ctx(L4Type::Udp, 8, 0), true, false).unwrap();
        assert_eq!(&f[24..26], &[0xb8, 0x61]);
    }

    #[test]
    fn tso_segments_verify() {
        // IPv4/TCP with 3000 bytes of payload, MSS 1448.
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14..34].copy_from_slice(&IPV4);
        f[23] = 6;
        f[14 + 20 + 4..14 + 20 + 8].copy_from_slice(&1000u32.to_be_bytes());
        f[14 + 20 + 12] = 5 << 4;
        f[14 + 20 + 13] = 0x18 | 0x01; // PSH ACK FIN
        f.extend((0..3000).map(|i| i as u8));
        let segs = segment_tcp(&f, &ctx(L4Type::Tcp, 20, 1448)).unwrap();
        assert_eq!(
            segs.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1502, 1502, 158]
        );
        for (i, s) in segs.iter().enumerate() {
            // A correct checksum sums to zero (0xFFFF before complement).
            assert_eq!(fold_complement(ones_complement_add(0, &s[14..34])), 0);
            let l4_len = s.len() - 34;
            let ph = pseudo_header_sum(s, 14, true, l4_len);
            assert_eq!(
                fold_complement(ones_complement_add(ph, &s[34..])),
                0,
                "segment {i}"
            );
            let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
            assert_eq!(seq, 1000 + 1448 * i as u32);
            assert_eq!(s[47] & 0x01 != 0, i == 2, "FIN only on the last");
        }
        assert_eq!(
            segment_tcp(&f, &ctx(L4Type::Tcp, 20, 0)),
            Err(OffloadError::ZeroMss)
        );
        assert_eq!(
            segment_tcp(&f[..40], &ctx(L4Type::Tcp, 20, 100)),
            Err(OffloadError::HeadersBeyondPacket)
        );
        assert_eq!(
            segment_tcp(&f, &ctx(L4Type::Udp, 8, 100)),
            Err(OffloadError::TsoNotTcp)
        );
    }
}

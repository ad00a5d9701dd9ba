//! Ethernet II / 802.1Q header view: what the switch, the RX filters and the drivers read.

use crate::addr::MacAddress;

/// Destination + source + EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Bytes an 802.1Q tag adds.
pub const VLAN_TAG_LEN: usize = 4;
/// TPID of an 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// EtherType ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Smallest frame on the wire without FCS (padding up to it is added by the MAC).
pub const MIN_FRAME_LEN: usize = 60;
/// Frame check sequence length.
pub const FCS_LEN: usize = 4;
/// Default maximum frame (1500 MTU + header + VLAN tag + FCS).
pub const DEFAULT_MAX_FRAME: usize = 1522;

/// A frame too short for an Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooShort;

impl core::fmt::Display for TooShort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("frame shorter than an Ethernet header")
    }
}
impl std::error::Error for TooShort {}

/// The parsed header of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Destination address.
    pub destination: MacAddress,
    /// Source address.
    pub source: MacAddress,
    /// 802.1Q TCI, when tagged.
    pub vlan_tci: Option<u16>,
    /// EtherType after any VLAN tag (0 when the tag has no room for one).
    pub ethertype: u16,
    /// Offset of the payload (L3 header).
    pub payload_offset: usize,
}

impl EthernetHeader {
    /// Parses the header of `frame` (without FCS).
    pub fn parse(frame: &[u8]) -> Result<Self, TooShort> {
        if frame.len() < ETHERNET_HEADER_LEN {
            return Err(TooShort);
        }
        let mac = |at: usize| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&frame[at..at + 6]);
            MacAddress(m)
        };
        let be16 = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
        let outer = be16(12);
        let (vlan_tci, ethertype, payload_offset) =
            if outer == ETHERTYPE_VLAN && frame.len() >= ETHERNET_HEADER_LEN + VLAN_TAG_LEN {
                (Some(be16(14)), be16(16), ETHERNET_HEADER_LEN + VLAN_TAG_LEN)
            } else {
                (None, outer, ETHERNET_HEADER_LEN)
            };
        Ok(EthernetHeader {
            destination: mac(0),
            source: mac(6),
            vlan_tci,
            ethertype,
            payload_offset,
        })
    }

    /// The 12-bit VLAN id, when tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci.map(|t| t & 0xFFF)
    }
}

/// Builds a minimal Ethernet II frame: header + payload (no FCS, no padding).
pub fn build(dst: MacAddress, src: MacAddress, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETHERNET_HEADER_LEN + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tagged_and_untagged() {
        let dst = MacAddress([2, 0, 0, 0, 0, 1]);
        let src = MacAddress([2, 0, 0, 0, 0, 2]);
        let f = build(dst, src, ETHERTYPE_IPV4, &[0x45; 46]);
        let h = EthernetHeader::parse(&f).unwrap();
        assert_eq!(
            (h.destination, h.source, h.ethertype, h.vlan_tci),
            (dst, src, 0x0800, None)
        );
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x64, 0x08, 0x00]);
        let h = EthernetHeader::parse(&tagged).unwrap();
        assert_eq!(
            (h.vlan_id(), h.ethertype, h.payload_offset),
            (Some(100), 0x0800, 18)
        );
        assert_eq!(EthernetHeader::parse(&f[..13]), Err(TooShort));
    }
}

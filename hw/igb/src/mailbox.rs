//! PF↔VF mailbox messages (the igb/igbvf protocol: Linux `e1000_mbx.h` and `igb_rcv_msg_from_vf`).
//!
//! A message is up to [`MAILBOX_WORDS`] little-endian dwords in
//! VMBMEM. Word 0 carries the message id (bits 15:0), MSGINFO (23:16) and the CTS/NACK/ACK flags
//! (bits 29..31). [`Message`] is the parsed form; `parse` accepts any word slice without
//! panicking and keeps unknown ids as [`Message::Unknown`].

use crate::addr::MacAddress;
use crate::regs::MAILBOX_WORDS;

/// Message id mask in word 0.
pub const ID_MASK: u32 = 0xFFFF;
/// MSGINFO shift in word 0.
pub const MSGINFO_SHIFT: u32 = 16;
/// MSGINFO mask (after shifting).
pub const MSGINFO_MASK: u32 = 0xFF;
/// Clear to send: the PF has completed this VF's reset handshake.
pub const CTS: u32 = 0x2000_0000;
/// Negative acknowledgement.
pub const NACK: u32 = 0x4000_0000;
/// Positive acknowledgement.
pub const ACK: u32 = 0x8000_0000;

/// E1000_VF_RESET.
pub const VF_RESET: u16 = 0x0001;
/// E1000_VF_SET_MAC_ADDR.
pub const VF_SET_MAC_ADDR: u16 = 0x0002;
/// E1000_VF_SET_MULTICAST.
pub const VF_SET_MULTICAST: u16 = 0x0003;
/// E1000_VF_SET_VLAN.
pub const VF_SET_VLAN: u16 = 0x0004;
/// E1000_VF_SET_LPE.
pub const VF_SET_LPE: u16 = 0x0005;
/// E1000_VF_SET_PROMISC.
pub const VF_SET_PROMISC: u16 = 0x0006;
/// E1000_PF_CONTROL_MSG (PF → VF).
pub const PF_CONTROL_MSG: u16 = 0x0100;

/// SET_MAC_ADDR sub-command: clear the extra unicast filters.
pub const MAC_FILTER_CLR: u8 = 0x01;
/// SET_MAC_ADDR sub-command: add an extra unicast filter.
pub const MAC_FILTER_ADD: u8 = 0x02;
/// SET_VLAN MSGINFO bit: add (else remove).
pub const VLAN_ADD: u8 = 0x01;
/// SET_MULTICAST MSGINFO flag: more than 30 addresses, use multicast promiscuous.
pub const MULTICAST_OVERFLOW: u8 = 0x80;
/// Hash entries a SET_MULTICAST message can carry.
pub const MAX_MULTICAST_HASHES: usize = 30;
/// SET_PROMISC MSGINFO bit: unicast promiscuous.
pub const PROMISC_UNICAST: u8 = 0x01;
/// SET_PROMISC MSGINFO bit: multicast promiscuous.
pub const PROMISC_MULTICAST: u8 = 0x02;

/// The flags of word 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flags {
    /// ACK (bit 31).
    pub ack: bool,
    /// NACK (bit 30).
    pub nack: bool,
    /// CTS (bit 29).
    pub cts: bool,
}

impl Flags {
    /// Extracts the flags from word 0.
    pub const fn from_word(word0: u32) -> Flags {
        Flags {
            ack: word0 & ACK != 0,
            nack: word0 & NACK != 0,
            cts: word0 & CTS != 0,
        }
    }
    /// The flag bits of word 0.
    pub const fn bits(self) -> u32 {
        (if self.ack { ACK } else { 0 })
            | (if self.nack { NACK } else { 0 })
            | (if self.cts { CTS } else { 0 })
    }
}

/// A parsed mailbox message (either direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// VF_RESET request (1 word), or the PF's reply carrying the MAC (3 words).
    Reset {
        /// Reply MAC (words 1–2); zero in a request or a NACKed reply.
        mac: MacAddress,
    },
    /// SET_MAC_ADDR, with an optional filter sub-command in MSGINFO.
    SetMacAddr {
        /// MSGINFO: 0 = set the station address, or MAC_FILTER_CLR/MAC_FILTER_ADD.
        subcommand: u8,
        /// The address (words 1–2).
        mac: MacAddress,
    },
    /// SET_MULTICAST with up to 30 12-bit MTA hashes.
    SetMulticast {
        /// The hashes, one u16 each, packed from word 1.
        hashes: Vec<u16>,
        /// MSGINFO overflow flag (too many groups: multicast promiscuous).
        overflow: bool,
    },
    /// SET_VLAN.
    SetVlan {
        /// VLAN id (word 1, 12 bits used).
        vid: u16,
        /// Add (true) or remove.
        add: bool,
    },
    /// SET_LPE: largest frame the VF wants to receive (word 1).
    SetLpe {
        /// Maximum frame size in bytes including FCS.
        max_frame: u32,
    },
    /// SET_PROMISC.
    SetPromisc {
        /// Unicast promiscuous.
        unicast: bool,
        /// Multicast promiscuous.
        multicast: bool,
    },
    /// PF_CONTROL_MSG (PF → VF "ping").
    PfControl,
    /// Any other id, kept raw.
    Unknown {
        /// The message id.
        id: u16,
        /// MSGINFO.
        info: u8,
    },
}

/// A message could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// No word 0.
    Empty,
    /// The message id needs more words than were given.
    Truncated {
        /// The message id.
        id: u16,
        /// Words needed.
        needed: usize,
    },
    /// More than 16 words.
    TooLong,
    /// SET_MULTICAST with a count above 30.
    TooManyMulticast(u8),
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty mailbox message"),
            ParseError::Truncated { id, needed } => {
                write!(f, "message {id:#06x} needs {needed} words")
            }
            ParseError::TooLong => f.write_str("mailbox message longer than 16 words"),
            ParseError::TooManyMulticast(n) => {
                write!(f, "SET_MULTICAST with {n} entries (at most 30)")
            }
        }
    }
}
impl std::error::Error for ParseError {}

/// A message with its word-0 flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The message.
    pub message: Message,
    /// ACK/NACK/CTS.
    pub flags: Flags,
}

fn mac_from(words: &[u32]) -> MacAddress {
    let a = words[0].to_le_bytes();
    let b = words[1].to_le_bytes();
    MacAddress([a[0], a[1], a[2], a[3], b[0], b[1]])
}

fn mac_to(mac: MacAddress, out: &mut [u32]) {
    let m = mac.0;
    out[0] = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
    out[1] = u32::from_le_bytes([m[4], m[5], 0, 0]);
}

impl Message {
    /// The message id.
    pub fn id(&self) -> u16 {
        match self {
            Message::Reset { .. } => VF_RESET,
            Message::SetMacAddr { .. } => VF_SET_MAC_ADDR,
            Message::SetMulticast { .. } => VF_SET_MULTICAST,
            Message::SetVlan { .. } => VF_SET_VLAN,
            Message::SetLpe { .. } => VF_SET_LPE,
            Message::SetPromisc { .. } => VF_SET_PROMISC,
            Message::PfControl => PF_CONTROL_MSG,
            Message::Unknown { id, .. } => *id,
        }
    }

    /// Parses `words` (the mailbox memory as read). For `Reset`, one word is a request and
    /// three carry a MAC; fewer words than the id needs is an error.
    pub fn parse(words: &[u32]) -> Result<Envelope, ParseError> {
        let (&w0, rest) = words.split_first().ok_or(ParseError::Empty)?;
        if words.len() > MAILBOX_WORDS {
            return Err(ParseError::TooLong);
        }
        let id = (w0 & ID_MASK) as u16;
        let info = ((w0 >> MSGINFO_SHIFT) & MSGINFO_MASK) as u8;
        let need = |n: usize| {
            if words.len() < n {
                Err(ParseError::Truncated { id, needed: n })
            } else {
                Ok(())
            }
        };
        let message = match id {
            VF_RESET => Message::Reset {
                mac: if rest.len() >= 2 {
                    mac_from(rest)
                } else {
                    MacAddress::default()
                },
            },
            VF_SET_MAC_ADDR => {
                need(3)?;
                Message::SetMacAddr {
                    subcommand: info,
                    mac: mac_from(rest),
                }
            }
            VF_SET_MULTICAST => {
                let count = info & 0x1F;
                let overflow = info & MULTICAST_OVERFLOW != 0;
                if usize::from(count) > MAX_MULTICAST_HASHES {
                    return Err(ParseError::TooManyMulticast(count));
                }
                let count = usize::from(count);
                need(1 + count.div_ceil(2))?;
                let hashes = (0..count)
                    .map(|i| {
                        let w = rest[i / 2];
                        if i % 2 == 0 {
                            w as u16
                        } else {
                            (w >> 16) as u16
                        }
                    })
                    .collect();
                Message::SetMulticast { hashes, overflow }
            }
            VF_SET_VLAN => {
                need(2)?;
                Message::SetVlan {
                    vid: (rest[0] & 0xFFF) as u16,
                    add: info & VLAN_ADD != 0,
                }
            }
            VF_SET_LPE => {
                need(2)?;
                Message::SetLpe { max_frame: rest[0] }
            }
            VF_SET_PROMISC => Message::SetPromisc {
                unicast: info & PROMISC_UNICAST != 0,
                multicast: info & PROMISC_MULTICAST != 0,
            },
            PF_CONTROL_MSG => Message::PfControl,
            _ => Message::Unknown { id, info },
        };
        Ok(Envelope {
            message,
            flags: Flags::from_word(w0),
        })
    }

    /// Encodes the message with `flags` into `out`, returning the number of words used.
    /// `Reset` with a zero MAC is the 1-word request; with a MAC it is the 3-word reply.
    pub fn emit(&self, flags: Flags, out: &mut [u32; MAILBOX_WORDS]) -> usize {
        let info: u8 = match self {
            Message::SetMacAddr { subcommand, .. } => *subcommand,
            Message::SetMulticast { hashes, overflow } => {
                (hashes.len().min(MAX_MULTICAST_HASHES) as u8)
                    | if *overflow { MULTICAST_OVERFLOW } else { 0 }
            }
            Message::SetVlan { add: true, .. } => VLAN_ADD,
            Message::SetPromisc { unicast, multicast } => {
                (if *unicast { PROMISC_UNICAST } else { 0 })
                    | (if *multicast { PROMISC_MULTICAST } else { 0 })
            }
            Message::Unknown { info, .. } => *info,
            _ => 0,
        };
        out[0] = u32::from(self.id()) | (u32::from(info) << MSGINFO_SHIFT) | flags.bits();
        match self {
            Message::Reset { mac } if !mac.is_zero() || flags.ack || flags.nack => {
                mac_to(*mac, &mut out[1..3]);
                3
            }
            Message::SetMacAddr { mac, .. } => {
                mac_to(*mac, &mut out[1..3]);
                3
            }
            Message::SetMulticast { hashes, .. } => {
                let n = hashes.len().min(MAX_MULTICAST_HASHES);
                for w in out[1..].iter_mut().take(n.div_ceil(2)) {
                    *w = 0;
                }
                for (i, h) in hashes.iter().take(n).enumerate() {
                    let shift = if i % 2 == 0 { 0 } else { 16 };
                    out[1 + i / 2] |= u32::from(*h) << shift;
                }
                1 + n.div_ceil(2)
            }
            Message::SetVlan { vid, .. } => {
                out[1] = u32::from(*vid);
                2
            }
            Message::SetLpe { max_frame } => {
                out[1] = *max_frame;
                2
            }
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_reply_carries_mac_little_endian() {
        // Linux igb: msgbuf[0] = VF_RESET | ACK; memcpy(&msgbuf[1], mac, 6).
        let words = [0x8000_0001, 0x2100_1b02, 0x0000_5634];
        let env = Message::parse(&words).unwrap();
        assert!(env.flags.ack && !env.flags.cts);
        assert_eq!(
            env.message,
            Message::Reset {
                mac: MacAddress([2, 0x1b, 0, 0x21, 0x34, 0x56])
            }
        );
        let mut out = [0u32; 16];
        assert_eq!(env.message.emit(env.flags, &mut out), 3);
        assert_eq!(&out[..3], &words);
    }

    #[test]
    fn reset_request_is_one_word() {
        let mut out = [0u32; 16];
        let n = Message::Reset {
            mac: MacAddress::default(),
        }
        .emit(Flags::default(), &mut out);
        assert_eq!((n, out[0]), (1, 1));
    }

    #[test]
    fn multicast_hashes_pack_two_per_word() {
        let m = Message::SetMulticast {
            hashes: vec![0xfb0, 0x010, 0x123],
            overflow: false,
        };
        let mut out = [0u32; 16];
        let n = m.emit(Flags::default(), &mut out);
        assert_eq!(n, 3);
        assert_eq!(out[0], 0x0003_0003);
        assert_eq!(out[1], 0x0010_0fb0);
        assert_eq!(Message::parse(&out[..n]).unwrap().message, m);
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        assert_eq!(Message::parse(&[]), Err(ParseError::Empty));
        assert_eq!(
            Message::parse(&[u32::from(VF_SET_MAC_ADDR)]),
            Err(ParseError::Truncated {
                id: VF_SET_MAC_ADDR,
                needed: 3
            })
        );
        assert_eq!(
            Message::parse(&[u32::from(VF_SET_MULTICAST) | (0x1F << 16); 16]),
            Err(ParseError::TooManyMulticast(31))
        );
        assert_eq!(Message::parse(&[0; 17]), Err(ParseError::TooLong));
        let env = Message::parse(&[0x00AB_0042]).unwrap();
        assert_eq!(
            env.message,
            Message::Unknown {
                id: 0x42,
                info: 0xAB
            }
        );
    }
}

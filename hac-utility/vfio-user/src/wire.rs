//! The vfio-user wire format (QEMU `docs/interop/vfio-user.rst`, protocol 0.x): the 16-byte
//! header, the commands a client sends, and the replies we build. Every message is parsed from
//! bytes with its length checked first; nothing here panics on any input. The device-side
//! answers (what a region or an interrupt is) come from the [`Backend`](crate::Backend); the
//! [`server`](crate::server) builds the replies.

/// Bytes of the header that starts every message.
pub const HEADER_LEN: usize = 16;
/// Largest data transfer (`count`) of one region access we accept and announce
/// (`max_data_xfer_size`).
pub const MAX_DATA_XFER: u32 = 1 << 20;
/// Largest message we accept: a region write of [`MAX_DATA_XFER`] bytes and its fields, or a
/// version message with a long capability string.
pub const MAX_MESSAGE: u32 = MAX_DATA_XFER + 64;
/// Most file descriptors we accept with one message (`max_msg_fds`).
pub const MAX_FDS: usize = 8;

/// `errno` values carried in error replies (Linux numbering, as QEMU expects).
pub mod errno {
    /// Operation not permitted in this state.
    pub const EPERM: u32 = 1;
    /// Bad address (DMA mapping could not be established).
    pub const EFAULT: u32 = 14;
    /// Mapping exists.
    pub const EEXIST: u32 = 17;
    /// Invalid argument.
    pub const EINVAL: u32 = 22;
    /// No space left (a limit on DMA windows reached).
    pub const ENOSPC: u32 = 28;
    /// Function not implemented.
    pub const ENOSYS: u32 = 38;
    /// Not supported.
    pub const ENOTSUP: u32 = 95;
}

/// Message types in the header flags (bits 3:0), the no-reply and error bits.
pub mod flags {
    /// Bits 3:0: message type.
    pub const TYPE_MASK: u32 = 0xF;
    /// A command.
    pub const TYPE_COMMAND: u32 = 0;
    /// A reply.
    pub const TYPE_REPLY: u32 = 1;
    /// The sender wants no reply.
    pub const NO_REPLY: u32 = 1 << 4;
    /// The reply reports an error (the error field holds an errno).
    pub const ERROR: u32 = 1 << 5;
}

/// VFIO values carried inside messages (vfio-user reuses the Linux `vfio.h` numbering).
pub mod vfio {
    /// `VFIO_DEVICE_FLAGS_RESET`: the device can be reset.
    pub const DEVICE_FLAGS_RESET: u32 = 1 << 0;
    /// `VFIO_DEVICE_FLAGS_PCI`: a PCI device (regions and IRQs in PCI numbering).
    pub const DEVICE_FLAGS_PCI: u32 = 1 << 1;
    /// `VFIO_REGION_INFO_FLAG_READ`.
    pub const REGION_READ: u32 = 1 << 0;
    /// `VFIO_REGION_INFO_FLAG_WRITE`.
    pub const REGION_WRITE: u32 = 1 << 1;
    /// `VFIO_IRQ_INFO_EVENTFD`: the index signals through eventfds.
    pub const IRQ_INFO_EVENTFD: u32 = 1 << 0;
    /// `VFIO_IRQ_INFO_NORESIZE`: the vectors cannot be enabled one by one after the first.
    pub const IRQ_INFO_NORESIZE: u32 = 1 << 3;
    /// `VFIO_DMA_UNMAP_FLAG_ALL` (Linux numbering; QEMU's vfio-user client uses it).
    pub const DMA_UNMAP_ALL: u32 = 1 << 1;

    /// `VFIO_IRQ_SET_*` flags of `SET_IRQS`: one data kind and one action.
    pub mod irq_set {
        /// No data: act on every vector of the range.
        pub const DATA_NONE: u32 = 1 << 0;
        /// A bool per vector: act where it is true.
        pub const DATA_BOOL: u32 = 1 << 1;
        /// One eventfd per vector (sent as descriptors).
        pub const DATA_EVENTFD: u32 = 1 << 2;
        /// The data kinds.
        pub const DATA_MASK: u32 = DATA_NONE | DATA_BOOL | DATA_EVENTFD;
        /// Mask the vectors.
        pub const ACTION_MASK: u32 = 1 << 3;
        /// Unmask the vectors.
        pub const ACTION_UNMASK: u32 = 1 << 4;
        /// Trigger the vectors (with eventfds: assign them).
        pub const ACTION_TRIGGER: u32 = 1 << 5;
        /// The actions.
        pub const ACTION_ALL: u32 = ACTION_MASK | ACTION_UNMASK | ACTION_TRIGGER;
    }
}

/// A command number (the header's command field). Unknown numbers survive as `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// 1: version and capability negotiation.
    Version,
    /// 2: the client's memory, with an fd to map.
    DmaMap,
    /// 3: memory withdrawn.
    DmaUnmap,
    /// 4: device flags and counts.
    DeviceGetInfo,
    /// 5: one region's size and flags.
    DeviceGetRegionInfo,
    /// 6: ioeventfd/ioregionfd sub-regions (not offered).
    GetRegionIoFds,
    /// 7: one interrupt index's count and flags.
    DeviceGetIrqInfo,
    /// 8: eventfds (or masks) for interrupts.
    DeviceSetIrqs,
    /// 9: read a region.
    RegionRead,
    /// 10: write a region.
    RegionWrite,
    /// 11: server → client (never sent by us).
    DmaRead,
    /// 12: server → client: a device write the client applies (client mode,
    /// [`crate::client_dma`]).
    DmaWrite,
    /// 13: device reset.
    DeviceReset,
    /// 15: coalesced writes (not announced, so not expected).
    RegionWriteMulti,
    /// 16: device features (migration; not offered).
    DeviceFeature,
    /// Anything else.
    Unknown(u16),
}

impl Command {
    /// The command of a raw number.
    pub fn from_raw(raw: u16) -> Command {
        match raw {
            1 => Command::Version,
            2 => Command::DmaMap,
            3 => Command::DmaUnmap,
            4 => Command::DeviceGetInfo,
            5 => Command::DeviceGetRegionInfo,
            6 => Command::GetRegionIoFds,
            7 => Command::DeviceGetIrqInfo,
            8 => Command::DeviceSetIrqs,
            9 => Command::RegionRead,
            10 => Command::RegionWrite,
            11 => Command::DmaRead,
            12 => Command::DmaWrite,
            13 => Command::DeviceReset,
            15 => Command::RegionWriteMulti,
            16 => Command::DeviceFeature,
            n => Command::Unknown(n),
        }
    }

    /// The raw number.
    pub fn raw(self) -> u16 {
        match self {
            Command::Version => 1,
            Command::DmaMap => 2,
            Command::DmaUnmap => 3,
            Command::DeviceGetInfo => 4,
            Command::DeviceGetRegionInfo => 5,
            Command::GetRegionIoFds => 6,
            Command::DeviceGetIrqInfo => 7,
            Command::DeviceSetIrqs => 8,
            Command::RegionRead => 9,
            Command::RegionWrite => 10,
            Command::DmaRead => 11,
            Command::DmaWrite => 12,
            Command::DeviceReset => 13,
            Command::RegionWriteMulti => 15,
            Command::DeviceFeature => 16,
            Command::Unknown(n) => n,
        }
    }
}

/// Byte ranges of the header.
mod field {
    use std::ops::Range;
    pub const ID: Range<usize> = 0..2;
    pub const COMMAND: Range<usize> = 2..4;
    pub const SIZE: Range<usize> = 4..8;
    pub const FLAGS: Range<usize> = 8..12;
    pub const ERROR: Range<usize> = 12..16;
}

/// A parsed message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message id, echoed in the reply.
    pub id: u16,
    /// Command.
    pub command: Command,
    /// Whole message size, header included.
    pub size: u32,
    /// Flags ([`flags`]).
    pub flags: u32,
    /// Error number (replies only).
    pub error: u32,
}

/// Why a message was refused before it reached the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than 16 bytes.
    #[error("message shorter than its {HEADER_LEN}-byte header")]
    ShortHeader,
    /// The size field is below 16 or above [`MAX_MESSAGE`].
    #[error("message size {0} is outside {HEADER_LEN}..={MAX_MESSAGE}")]
    BadSize(u32),
    /// A message that is not a command (a reply or an unknown type) arrived at the server.
    #[error("message type {0} is not a command")]
    NotACommand(u32),
    /// The body is shorter than the command's fixed fields.
    #[error("{command:?} needs {needed} bytes of body, got {got}")]
    ShortBody {
        /// Command.
        command: Command,
        /// Bytes its fixed part needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A region access whose count disagrees with the message or exceeds [`MAX_DATA_XFER`].
    #[error("region access of {count} bytes does not match the message or exceeds the limit")]
    BadCount {
        /// The count field.
        count: u32,
    },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut w = [0u8; 2];
    w.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(w)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Header {
    /// Parses the first 16 bytes and checks the size field's range.
    pub fn parse(bytes: &[u8]) -> Result<Header, WireError> {
        if bytes.len() < HEADER_LEN {
            return Err(WireError::ShortHeader);
        }
        let h = Header {
            id: u16_at(bytes, field::ID.start),
            command: Command::from_raw(u16_at(bytes, field::COMMAND.start)),
            size: u32_at(bytes, field::SIZE.start),
            flags: u32_at(bytes, field::FLAGS.start),
            error: u32_at(bytes, field::ERROR.start),
        };
        if (h.size as usize) < HEADER_LEN || h.size > MAX_MESSAGE {
            return Err(WireError::BadSize(h.size));
        }
        Ok(h)
    }

    /// A whole request as a client sends it: a header (flags 0) whose size covers `body`.
    pub fn request(id: u16, command: Command, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; HEADER_LEN];
        m.extend_from_slice(body);
        Header {
            id,
            command,
            size: m.len() as u32,
            flags: 0,
            error: 0,
        }
        .emit(&mut m);
        m
    }

    /// Writes the header into `out[..16]`.
    pub fn emit(&self, out: &mut [u8]) {
        out[field::ID].copy_from_slice(&self.id.to_le_bytes());
        out[field::COMMAND].copy_from_slice(&self.command.raw().to_le_bytes());
        out[field::SIZE].copy_from_slice(&self.size.to_le_bytes());
        out[field::FLAGS].copy_from_slice(&self.flags.to_le_bytes());
        out[field::ERROR].copy_from_slice(&self.error.to_le_bytes());
    }

    /// Whether the sender asked for no reply.
    pub fn no_reply(&self) -> bool {
        self.flags & flags::NO_REPLY != 0
    }
}

/// A command from the client, borrowing its data from the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Version proposal with the optional JSON capabilities (without the NUL).
    Version {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
        /// Capability JSON bytes, if any.
        capabilities: &'a [u8],
    },
    /// Memory for DMA at `address`, `size` bytes, at `offset` in the fd sent with the message.
    DmaMap {
        /// Readable (bit 0) / writeable (bit 1).
        flags: u32,
        /// File offset.
        offset: u64,
        /// DMA address (the guest-physical address without a vIOMMU).
        address: u64,
        /// Bytes.
        size: u64,
    },
    /// Memory withdrawn.
    DmaUnmap {
        /// argsz as sent (echoed).
        argsz: u32,
        /// Flags (bit 1: all mappings, in the Linux numbering QEMU uses).
        flags: u32,
        /// DMA address.
        address: u64,
        /// Bytes.
        size: u64,
    },
    /// Device info.
    DeviceGetInfo {
        /// Reply room the client has.
        argsz: u32,
    },
    /// Region info.
    DeviceGetRegionInfo {
        /// Reply room the client has.
        argsz: u32,
        /// Region index.
        index: u32,
    },
    /// IRQ info.
    DeviceGetIrqInfo {
        /// Reply room the client has.
        argsz: u32,
        /// IRQ index.
        index: u32,
    },
    /// Interrupt actions for `index` vectors `start..start + count`.
    DeviceSetIrqs {
        /// `VFIO_IRQ_SET_*` flags.
        flags: u32,
        /// IRQ index (2 = MSI-X).
        index: u32,
        /// First vector.
        start: u32,
        /// Vectors.
        count: u32,
        /// The bool array of DATA_BOOL (else empty).
        data: &'a [u8],
    },
    /// Read `count` bytes of `region` at `offset`.
    RegionRead {
        /// Offset in the region.
        offset: u64,
        /// Region index.
        region: u32,
        /// Bytes.
        count: u32,
    },
    /// Write `data` to `region` at `offset`.
    RegionWrite {
        /// Offset in the region.
        offset: u64,
        /// Region index.
        region: u32,
        /// Bytes to write.
        data: &'a [u8],
    },
    /// Reset the device.
    DeviceReset,
    /// A command we do not serve.
    Unsupported(Command),
}

fn need(command: Command, body: &[u8], needed: usize) -> Result<(), WireError> {
    if body.len() < needed {
        Err(WireError::ShortBody {
            command,
            needed,
            got: body.len(),
        })
    } else {
        Ok(())
    }
}

impl<'a> Request<'a> {
    /// Parses a whole message (header and body; `message.len()` must equal the size field,
    /// which the reader guarantees). Commands only: a reply or another type is refused.
    pub fn parse(header: &Header, message: &'a [u8]) -> Result<Request<'a>, WireError> {
        let t = header.flags & flags::TYPE_MASK;
        if t != flags::TYPE_COMMAND {
            return Err(WireError::NotACommand(t));
        }
        let body = message.get(HEADER_LEN..).unwrap_or_default();
        let c = header.command;
        Ok(match c {
            Command::Version => {
                need(c, body, 4)?;
                let caps = &body[4..];
                // The JSON is NUL-terminated; take what precedes the first NUL.
                let end = caps.iter().position(|&b| b == 0).unwrap_or(caps.len());
                Request::Version {
                    major: u16_at(body, 0),
                    minor: u16_at(body, 2),
                    capabilities: &caps[..end],
                }
            }
            Command::DmaMap => {
                need(c, body, 32)?;
                Request::DmaMap {
                    flags: u32_at(body, 4),
                    offset: u64_at(body, 8),
                    address: u64_at(body, 16),
                    size: u64_at(body, 24),
                }
            }
            Command::DmaUnmap => {
                need(c, body, 24)?;
                Request::DmaUnmap {
                    argsz: u32_at(body, 0),
                    flags: u32_at(body, 4),
                    address: u64_at(body, 8),
                    size: u64_at(body, 16),
                }
            }
            Command::DeviceGetInfo => {
                need(c, body, 4)?;
                Request::DeviceGetInfo {
                    argsz: u32_at(body, 0),
                }
            }
            Command::DeviceGetRegionInfo => {
                need(c, body, 12)?;
                Request::DeviceGetRegionInfo {
                    argsz: u32_at(body, 0),
                    index: u32_at(body, 8),
                }
            }
            Command::DeviceGetIrqInfo => {
                need(c, body, 12)?;
                Request::DeviceGetIrqInfo {
                    argsz: u32_at(body, 0),
                    index: u32_at(body, 8),
                }
            }
            Command::DeviceSetIrqs => {
                need(c, body, 20)?;
                Request::DeviceSetIrqs {
                    flags: u32_at(body, 4),
                    index: u32_at(body, 8),
                    start: u32_at(body, 12),
                    count: u32_at(body, 16),
                    data: &body[20..],
                }
            }
            Command::RegionRead => {
                need(c, body, 16)?;
                let count = u32_at(body, 12);
                if count > MAX_DATA_XFER {
                    return Err(WireError::BadCount { count });
                }
                Request::RegionRead {
                    offset: u64_at(body, 0),
                    region: u32_at(body, 8),
                    count,
                }
            }
            Command::RegionWrite => {
                need(c, body, 16)?;
                let count = u32_at(body, 12);
                let data = &body[16..];
                if count > MAX_DATA_XFER || count as usize != data.len() {
                    return Err(WireError::BadCount { count });
                }
                Request::RegionWrite {
                    offset: u64_at(body, 0),
                    region: u32_at(body, 8),
                    data,
                }
            }
            Command::DeviceReset => Request::DeviceReset,
            other => Request::Unsupported(other),
        })
    }
}

/// A reply to `header` carrying `payload`.
pub fn reply(header: &Header, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN + payload.len()];
    Header {
        id: header.id,
        command: header.command,
        size: out.len() as u32,
        flags: flags::TYPE_REPLY,
        error: 0,
    }
    .emit(&mut out);
    out[HEADER_LEN..].copy_from_slice(payload);
    out
}

/// An error reply to `header` (header only, as the protocol requires).
pub fn error_reply(header: &Header, errno: u32) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    Header {
        id: header.id,
        command: header.command,
        size: HEADER_LEN as u32,
        flags: flags::TYPE_REPLY | flags::ERROR,
        error: errno,
    }
    .emit(&mut out);
    out
}

/// Little-endian payload builder for replies.
#[derive(Default)]
pub struct Payload(pub Vec<u8>);

impl Payload {
    /// Appends a u16.
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a u32.
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a u64.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends bytes.
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The version message QEMU 10.1 sends (capabilities as its proxy builds them).
    fn qemu_version() -> Vec<u8> {
        let caps = br#"{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,"migration":{"pgsize":4096,"max_bitmap_size":1048576}}}"#;
        let mut m = vec![0u8; HEADER_LEN];
        m.extend_from_slice(&0u16.to_le_bytes());
        m.extend_from_slice(&0u16.to_le_bytes());
        m.extend_from_slice(caps);
        m.push(0);
        Header {
            id: 0,
            command: Command::Version,
            size: m.len() as u32,
            flags: 0,
            error: 0,
        }
        .emit(&mut m);
        m
    }

    #[test]
    fn version_parses_with_its_json() {
        let m = qemu_version();
        let h = Header::parse(&m).unwrap();
        match Request::parse(&h, &m).unwrap() {
            Request::Version {
                major,
                minor,
                capabilities,
            } => {
                assert_eq!((major, minor), (0, 0));
                assert!(capabilities.starts_with(b"{\"capabilities\""));
                assert_eq!(*capabilities.last().unwrap(), b'}');
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        let mut m = [0u8; 16];
        m[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(Header::parse(&m), Err(WireError::BadSize(8)));
        m[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Header::parse(&m), Err(WireError::BadSize(u32::MAX)));
        assert_eq!(Header::parse(&m[..15]), Err(WireError::ShortHeader));
    }

    #[test]
    fn short_bodies_and_bad_counts_are_refused() {
        let h = |c: Command, size: usize| Header {
            id: 1,
            command: c,
            size: size as u32,
            flags: 0,
            error: 0,
        };
        let m = [0u8; 20];
        assert!(matches!(
            Request::parse(&h(Command::DmaMap, 20), &m),
            Err(WireError::ShortBody { needed: 32, .. })
        ));
        // A write whose count claims more than the data present.
        let mut w = vec![0u8; 16 + 16 + 4];
        w[16 + 12..16 + 16].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(
            Request::parse(&h(Command::RegionWrite, w.len()), &w),
            Err(WireError::BadCount { count: 8 })
        );
        // A read of more than the transfer limit.
        let mut r = vec![0u8; 32];
        r[16 + 12..].copy_from_slice(&(MAX_DATA_XFER + 1).to_le_bytes());
        assert!(matches!(
            Request::parse(&h(Command::RegionRead, 32), &r),
            Err(WireError::BadCount { .. })
        ));
        // A reply sent to the server.
        let mut rep = h(Command::DeviceReset, 16);
        rep.flags = flags::TYPE_REPLY;
        assert_eq!(
            Request::parse(&rep, &[0u8; 16]),
            Err(WireError::NotACommand(1))
        );
    }

    #[test]
    fn replies_echo_the_id_and_command() {
        let h = Header {
            id: 0xBEEF,
            command: Command::RegionRead,
            size: 32,
            flags: 0,
            error: 0,
        };
        let r = reply(&h, &[1, 2, 3]);
        let back = Header::parse(&r).unwrap();
        assert_eq!(back.id, 0xBEEF);
        assert_eq!(back.command, Command::RegionRead);
        assert_eq!(back.size, 19);
        assert_eq!(back.flags, flags::TYPE_REPLY);
        let e = Header::parse(&error_reply(&h, errno::EINVAL)).unwrap();
        assert_eq!(e.flags, flags::TYPE_REPLY | flags::ERROR);
        assert_eq!(e.error, errno::EINVAL);
        assert_eq!(Command::from_raw(99), Command::Unknown(99));
        assert_eq!(Command::Unknown(99).raw(), 99);
    }
}

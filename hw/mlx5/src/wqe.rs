//! Work queue entries of an Ethernet SQ and a cyclic RQ.
//!
//! A send queue is a ring of 64-byte basic blocks (WQEBBs, [`WQEBB_LEN`]); one send WQE takes
//! one or more consecutive WQEBBs and is measured in 16-byte data segments (DS,
//! [`DS_LEN`]). It starts with a [`CtrlSeg`] (opcode, WQE index, SQN, DS count, completion
//! flags). SEND and LSO WQEs on an Ethernet SQ continue with an [`EthSeg`] (checksum flags,
//! MSS, and either the inlined packet headers or a VLAN tag to insert, [`EthInsert`]); inlined
//! header bytes beyond the first two spill into the following DS. Then come [`DataSeg`]s
//! (byte count, lkey, address) or inline data segments (bit 31 of the byte count set, the
//! bytes follow). [`SendWqeRepr`] parses and emits the whole WQE.
//!
//! A cyclic receive queue's WQE is a stride of data segments, one per buffer fragment; unused
//! slots hold a terminator segment (lkey [`INVALID_LKEY`]). [`RecvWqeRepr`] parses and
//! emits one stride.
//!
//! Sources: Linux `include/linux/mlx5/qp.h` (segment structs, opcodes, fence and completion
//! flags), `drivers/net/ethernet/mellanox/mlx5/core/en_tx.c`, `en/txrx.h`, `en_main.c`,
//! `en_rx.c` (how mlx5e fills them), rdma-core `providers/mlx5/mlx5dv.h` (the same constants).

use crate::Field;
use crate::field::{Truncated, check_len};
use crate::layout::{field_enum, layout};
use hw_common::Iova;

/// Bytes of one WQE basic block: the unit of the send ring and of the producer counter.
pub const WQEBB_LEN: usize = 64;
/// Bytes of one data segment: the unit of the control segment's DS count.
pub const DS_LEN: usize = 16;
/// Data segments per WQEBB.
pub const DS_PER_WQEBB: usize = WQEBB_LEN / DS_LEN;
/// The largest DS count the 6-bit field holds.
pub const MAX_DS_COUNT: u8 = 0x3f;
/// Bit 31 of a data segment's byte count: the segment carries its data inline.
pub const INLINE_SEG_FLAG: u32 = 0x8000_0000;
/// The lkey of a receive segment that ends the scatter list, unless the device offers a
/// terminate-scatter-list mkey (general capability `terminate_scatter_list_mkey`, the key from
/// QUERY_SPECIAL_CONTEXTS).
pub const INVALID_LKEY: u32 = 0x100;
/// Bit 31 of a receive data segment's byte count: mlx5e sets it on every fragment
/// ("hardware start padding"); the fragment's length is bits 30:0.
pub const RECV_START_PADDING: u32 = 0x8000_0000;
/// Mask of the length in a data segment's byte count.
pub const BYTE_COUNT_MASK: u32 = 0x7fff_ffff;
/// Offset of the first inlined header byte in a WQE that starts with control + Ethernet
/// segments.
pub const INLINE_HEADER_OFFSET: usize = DS_LEN + 14;
/// Inlined header bytes held by the Ethernet segment itself.
pub const INLINE_HEADER_START_LEN: usize = 2;

/// WQEBBs a WQE of `ds_count` data segments occupies.
pub const fn wqebb_count(ds_count: u8) -> usize {
    (ds_count as usize).div_ceil(DS_PER_WQEBB)
}

field_enum! {
    /// Send WQE opcodes (`opcode` of the control segment).
    pub enum SendOpcode: u8 {
        /// No operation (mlx5e kicks NAPI and pads ring wrap-around with it).
        Nop = 0x00,
        /// Send with invalidate.
        SendInval = 0x01,
        /// RDMA write.
        RdmaWrite = 0x08,
        /// RDMA write with immediate.
        RdmaWriteImm = 0x09,
        /// Send one packet.
        Send = 0x0a,
        /// Send with immediate.
        SendImm = 0x0b,
        /// Large send: segment the packet by the Ethernet segment's MSS.
        Lso = 0x0e,
        /// RDMA read.
        RdmaRead = 0x10,
        /// Atomic compare and swap.
        AtomicCs = 0x11,
        /// Atomic fetch and add.
        AtomicFa = 0x12,
        /// User memory registration.
        Umr = 0x25,
        /// Enhanced multi-packet send.
        EnhancedMpsw = 0x29,
    }
}

field_enum! {
    /// Fence mode (`fm_ce_se` bits 7:5).
    pub enum Fence: u8 {
        /// No fence.
        None = 0,
        /// Small initiator fence.
        InitiatorSmall = 1,
        /// Fence.
        Fence = 2,
        /// Strong ordering.
        StrongOrdering = 3,
        /// Small initiator fence and fence.
        SmallAndFence = 4,
    }
}

field_enum! {
    /// Completion request (`fm_ce_se` bits 3:2): when the WQE produces a CQE.
    pub enum CqUpdate: u8 {
        /// A CQE only on error.
        OnError = 0,
        /// Always a CQE (mlx5e sets it on the last WQE of a doorbell batch).
        Always = 2,
        /// Always a CQE and an EQE.
        AlwaysAndEqe = 3,
    }
}

field_enum! {
    /// Inline modes of an SQ (`min_wqe_inline_mode` of the SQ and vport contexts): which
    /// headers a send WQE must carry inline.
    pub enum InlineMode: u8 {
        /// None.
        None = 0,
        /// The L2 header.
        L2 = 1,
        /// Up to the IP header.
        Ip = 2,
        /// Up to the TCP/UDP header.
        TcpUdp = 3,
        /// Up to the inner L2 header.
        InnerL2 = 4,
        /// Up to the inner IP header.
        InnerIp = 5,
        /// Up to the inner TCP/UDP header.
        InnerTcpUdp = 6,
    }
}

/// Fields of the control segment (offsets from its start). The send doorbell
/// ([`crate::uar::SendDoorbell`]) is its first 8 bytes and uses the same fields.
pub mod ctrl {
    use crate::field::Field;

    /// Opcode modifier.
    pub const OPC_MOD: Field = Field::at(0x0, 31, 24);
    /// The WQE's index (16 bits of the producer counter in WQEBBs).
    pub const WQE_INDEX: Field = Field::at(0x0, 23, 8);
    /// Opcode ([`SendOpcode`](super::SendOpcode)).
    pub const OPCODE: Field = Field::at(0x0, 7, 0);
    /// SQ number.
    pub const SQN: Field = Field::at(0x4, 31, 8);
    /// Length of the WQE in data segments.
    pub const DS_COUNT: Field = Field::at(0x4, 5, 0);
    /// Signature.
    pub const SIGNATURE: Field = Field::at(0x8, 31, 24);
    /// Fence mode ([`Fence`](super::Fence)).
    pub const FENCE: Field = Field::at(0x8, 7, 5);
    /// Completion request ([`CqUpdate`](super::CqUpdate)).
    pub const CE: Field = Field::at(0x8, 3, 2);
    /// Solicited event.
    pub const SOLICITED: Field = Field::at(0x8, 1, 1);
    /// Immediate data.
    pub const IMM: Field = Field::dword(0xc);
}

layout! {
    /// The control segment that starts every send WQE (16 bytes).
    pub struct CtrlSeg(DS_LEN, "send WQE control segment") {
        /// Opcode modifier.
        opc_mod, set_opc_mod: u8 = ctrl::OPC_MOD;
        /// The WQE's index: the producer counter (in WQEBBs) when it was posted.
        wqe_index, set_wqe_index: u16 = ctrl::WQE_INDEX;
        /// Opcode.
        opcode, set_opcode: SendOpcode = ctrl::OPCODE;
        /// SQ number (QP number on a QP).
        sqn, set_sqn: u32 = ctrl::SQN;
        /// Length of the WQE in data segments, this one included.
        ds_count, set_ds_count: u8 = ctrl::DS_COUNT;
        /// Signature (unused by mlx5e).
        signature, set_signature: u8 = ctrl::SIGNATURE;
        /// Fence mode.
        fence, set_fence: Fence = ctrl::FENCE;
        /// Completion request.
        ce, set_ce: CqUpdate = ctrl::CE;
        /// Solicited event.
        solicited, set_solicited: bool = ctrl::SOLICITED;
        /// Immediate data; on an Ethernet SQ mlx5e puts the TIS number shifted left by 8.
        imm, set_imm: u32 = ctrl::IMM;
    }
    /// A control segment as values.
    repr CtrlSegRepr;
}

/// Checksum flags of the Ethernet segment (`cs_flags`).
pub mod cs_flags {
    /// Compute the inner IPv4 header checksum.
    pub const L3_INNER_CSUM: u8 = 1 << 4;
    /// Compute the inner TCP/UDP checksum.
    pub const L4_INNER_CSUM: u8 = 1 << 5;
    /// Compute the (outer) IPv4 header checksum.
    pub const L3_CSUM: u8 = 1 << 6;
    /// Compute the (outer) TCP/UDP checksum.
    pub const L4_CSUM: u8 = 1 << 7;
}

/// Bit 15 of the Ethernet segment's word at 12: it is an insert, not an inline header size.
pub const ETH_INSERT_VLAN: u16 = 1 << 15;
/// With [`ETH_INSERT_VLAN`]: insert an 802.1ad (S-) tag instead of an 802.1Q tag.
pub const ETH_INSERT_SVLAN: u16 = 1 << 0;

layout! {
    /// The Ethernet segment of a SEND or LSO WQE (16 bytes, right after the control segment).
    pub struct EthSeg(DS_LEN, "send WQE Ethernet segment") {
        /// Software parser: outer L4 offset (in 2-byte units).
        swp_outer_l4_offset, set_swp_outer_l4_offset: u8 = Field::at(0x0, 31, 24);
        /// Software parser: outer L3 offset.
        swp_outer_l3_offset, set_swp_outer_l3_offset: u8 = Field::at(0x0, 23, 16);
        /// Software parser: inner L4 offset.
        swp_inner_l4_offset, set_swp_inner_l4_offset: u8 = Field::at(0x0, 15, 8);
        /// Software parser: inner L3 offset.
        swp_inner_l3_offset, set_swp_inner_l3_offset: u8 = Field::at(0x0, 7, 0);
        /// Checksum flags ([`cs_flags`]).
        cs_flags, set_cs_flags: u8 = Field::at(0x4, 31, 24);
        /// Software parser flags.
        swp_flags, set_swp_flags: u8 = Field::at(0x4, 23, 16);
        /// MSS of an LSO WQE.
        mss, set_mss: u16 = Field::at(0x4, 15, 0);
        /// Flow table metadata.
        flow_table_metadata, set_flow_table_metadata: u32 = Field::dword(0x8);
        /// Inline header size, or an insert type with [`ETH_INSERT_VLAN`] set.
        inline_hdr_sz, set_inline_hdr_sz: u16 = Field::at(0xc, 31, 16);
        /// The first two inlined header bytes, or the VLAN TCI to insert.
        inline_hdr_start, set_inline_hdr_start: u16 = Field::at(0xc, 15, 0);
    }
    /// The fixed part of an Ethernet segment as values.
    repr EthSegFields;
}

/// What the Ethernet segment adds to the packet's L2 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EthInsert {
    /// The packet's first bytes are inlined in the WQE (empty: no inline header).
    InlineHeader(Vec<u8>),
    /// Insert a VLAN tag.
    Vlan {
        /// Tag control information.
        tci: u16,
        /// 802.1ad S-tag (else 802.1Q C-tag).
        svlan: bool,
    },
    /// An insert type this crate does not name, kept as read.
    Unknown {
        /// The word at 12.
        kind: u16,
        /// The word at 14.
        data: u16,
    },
}

impl Default for EthInsert {
    fn default() -> Self {
        EthInsert::InlineHeader(Vec::new())
    }
}

/// An Ethernet segment as values, its inline header included.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EthSegRepr {
    /// Checksum flags ([`cs_flags`]).
    pub cs_flags: u8,
    /// Software parser offsets (outer L4, outer L3, inner L4, inner L3) and flags: 0 unless
    /// the `swp` capability is advertised.
    pub swp: [u8; 5],
    /// MSS (LSO).
    pub mss: u16,
    /// Flow table metadata.
    pub flow_table_metadata: u32,
    /// Inline header or VLAN insert.
    pub insert: EthInsert,
}

layout! {
    /// A data segment: byte count, lkey, address (16 bytes).
    pub struct DataSeg(DS_LEN, "data segment") {
        /// Bytes of the buffer; bit 31 ([`INLINE_SEG_FLAG`]) marks an inline data segment.
        byte_count, set_byte_count: u32 = Field::dword(0x0);
        /// Memory key of the buffer.
        lkey, set_lkey: u32 = Field::dword(0x4);
        /// Address of the buffer (an IOVA with mlx5e's physical-address mkey).
        addr, set_addr: Iova = Field::qword(0x8);
    }
    /// A data segment as values.
    repr DataSegRepr;
}

impl DataSegRepr {
    /// The receive scatter-list terminator: byte count 0, lkey [`INVALID_LKEY`], address 0.
    pub const TERMINATOR: DataSegRepr = DataSegRepr {
        byte_count: 0,
        lkey: INVALID_LKEY,
        addr: Iova(0),
    };

    /// This segment ends a receive scatter list (lkey [`INVALID_LKEY`]).
    pub fn is_terminator(&self) -> bool {
        self.lkey == INVALID_LKEY
    }

    /// Bytes of the buffer: the byte count without bit 31 (the inline flag of a send segment,
    /// [`RECV_START_PADDING`] of a receive segment).
    pub fn len(&self) -> u32 {
        self.byte_count & BYTE_COUNT_MASK
    }

    /// The buffer has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A data segment of a send WQE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendDataSeg {
    /// A pointer to a buffer.
    Pointer(DataSegRepr),
    /// Bytes carried inline (their count in bits 30:0 of the byte count, the bytes after it).
    Inline(Vec<u8>),
}

impl SendDataSeg {
    /// Data segments this segment takes.
    pub fn ds_count(&self) -> usize {
        match self {
            SendDataSeg::Pointer(_) => 1,
            SendDataSeg::Inline(bytes) => (4 + bytes.len()).div_ceil(DS_LEN),
        }
    }
    /// Bytes of the packet this segment supplies.
    pub fn len(&self) -> u32 {
        match self {
            SendDataSeg::Pointer(d) => d.len(),
            SendDataSeg::Inline(bytes) => bytes.len() as u32,
        }
    }
    /// The segment supplies no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A send WQE that does not fit its own DS count or buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WqeError {
    /// The buffer is shorter than the layout or the DS count says.
    Truncated(Truncated),
    /// The control segment's DS count is 0.
    ZeroDsCount,
    /// A SEND or LSO WQE without room for its Ethernet segment (DS count 1).
    MissingEthSeg,
    /// The inline header runs past the WQE's DS count.
    InlineHeaderBeyondWqe {
        /// Inline header bytes claimed.
        size: u16,
    },
    /// An inline data segment runs past the WQE's DS count.
    InlineDataBeyondWqe {
        /// Byte offset of the segment in the WQE.
        offset: usize,
        /// Inline bytes claimed.
        len: u32,
    },
    /// Emit: the DS count does not fit the 6-bit field.
    DsCountTooLarge {
        /// DS count in the control segment.
        ds_count: u8,
    },
    /// Emit: the content needs more data segments than the control segment's DS count.
    DsCountTooSmall {
        /// DS count in the control segment.
        ds_count: u8,
        /// DS the content needs.
        needed: usize,
    },
}

impl From<Truncated> for WqeError {
    fn from(t: Truncated) -> Self {
        WqeError::Truncated(t)
    }
}

impl core::fmt::Display for WqeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WqeError::Truncated(t) => t.fmt(f),
            WqeError::ZeroDsCount => f.write_str("send WQE with a DS count of 0"),
            WqeError::MissingEthSeg => {
                f.write_str("SEND/LSO WQE too short for its Ethernet segment")
            }
            WqeError::InlineHeaderBeyondWqe { size } => {
                write!(
                    f,
                    "inline header of {size} bytes runs past the WQE's DS count"
                )
            }
            WqeError::InlineDataBeyondWqe { offset, len } => write!(
                f,
                "inline data segment at byte {offset} of {len} bytes runs past the WQE's DS count"
            ),
            WqeError::DsCountTooLarge { ds_count } => {
                write!(f, "DS count {ds_count} does not fit the 6-bit field")
            }
            WqeError::DsCountTooSmall { ds_count, needed } => {
                write!(
                    f,
                    "WQE content needs {needed} DS, the control segment says {ds_count}"
                )
            }
        }
    }
}

impl std::error::Error for WqeError {}

/// A send WQE as values.
///
/// SEND and LSO WQEs have an Ethernet segment; NOP has only the control segment (any further
/// DS are padding and not read); other opcodes are parsed as the control segment alone, their
/// bodies left to the caller.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SendWqeRepr {
    /// The control segment (its DS count is the WQE's length).
    pub ctrl: CtrlSegRepr,
    /// The Ethernet segment of a SEND or LSO WQE.
    pub eth: Option<EthSegRepr>,
    /// The data segments after the Ethernet segment and inline header.
    pub data: Vec<SendDataSeg>,
}

fn has_eth_seg(opcode: SendOpcode) -> bool {
    matches!(opcode, SendOpcode::Send | SendOpcode::Lso)
}

impl SendWqeRepr {
    /// Parses the WQE at the start of `wqe` (the WQE's WQEBBs, already unwrapped from the
    /// ring). Never panics; a WQE whose segments contradict its DS count is an error.
    pub fn parse(wqe: &[u8]) -> Result<Self, WqeError> {
        let ctrl = CtrlSegRepr::parse(&CtrlSeg::new_checked(wqe)?);
        if ctrl.ds_count == 0 {
            return Err(WqeError::ZeroDsCount);
        }
        let total = usize::from(ctrl.ds_count) * DS_LEN;
        check_len("send WQE", total, wqe.len())?;
        let wqe = &wqe[..total];
        if !has_eth_seg(ctrl.opcode) {
            return Ok(SendWqeRepr {
                ctrl,
                eth: None,
                data: Vec::new(),
            });
        }
        if total < 2 * DS_LEN {
            return Err(WqeError::MissingEthSeg);
        }
        let seg = EthSeg::new_checked(&wqe[DS_LEN..])?;
        let kind = seg.inline_hdr_sz();
        let start = seg.inline_hdr_start();
        let mut offset = 2 * DS_LEN;
        let insert = if kind & ETH_INSERT_VLAN != 0 {
            if kind & !(ETH_INSERT_VLAN | ETH_INSERT_SVLAN) == 0 {
                EthInsert::Vlan {
                    tci: start,
                    svlan: kind & ETH_INSERT_SVLAN != 0,
                }
            } else {
                EthInsert::Unknown { kind, data: start }
            }
        } else {
            let size = usize::from(kind);
            let extra = size
                .saturating_sub(INLINE_HEADER_START_LEN)
                .div_ceil(DS_LEN);
            offset += extra * DS_LEN;
            if offset > total {
                return Err(WqeError::InlineHeaderBeyondWqe { size: kind });
            }
            EthInsert::InlineHeader(wqe[INLINE_HEADER_OFFSET..INLINE_HEADER_OFFSET + size].to_vec())
        };
        let eth = EthSegRepr {
            cs_flags: seg.cs_flags(),
            swp: [
                seg.swp_outer_l4_offset(),
                seg.swp_outer_l3_offset(),
                seg.swp_inner_l4_offset(),
                seg.swp_inner_l3_offset(),
                seg.swp_flags(),
            ],
            mss: seg.mss(),
            flow_table_metadata: seg.flow_table_metadata(),
            insert,
        };
        let mut data = Vec::new();
        while offset < total {
            let d = DataSegRepr::parse(&DataSeg::new_checked(&wqe[offset..])?);
            if d.byte_count & INLINE_SEG_FLAG != 0 {
                let len = d.byte_count & !INLINE_SEG_FLAG;
                let end = (offset + 4).checked_add(len as usize);
                match end {
                    Some(end) if end <= total => {
                        data.push(SendDataSeg::Inline(wqe[offset + 4..end].to_vec()));
                        offset += (4 + len as usize).div_ceil(DS_LEN) * DS_LEN;
                    }
                    _ => return Err(WqeError::InlineDataBeyondWqe { offset, len }),
                }
            } else {
                data.push(SendDataSeg::Pointer(d));
                offset += DS_LEN;
            }
        }
        Ok(SendWqeRepr {
            ctrl,
            eth: Some(eth),
            data,
        })
    }

    /// Data segments the content needs (what `ctrl.ds_count` must be at least).
    pub fn required_ds(&self) -> usize {
        let Some(eth) = &self.eth else {
            return 1;
        };
        let header = match &eth.insert {
            EthInsert::InlineHeader(h) => h
                .len()
                .saturating_sub(INLINE_HEADER_START_LEN)
                .div_ceil(DS_LEN),
            _ => 0,
        };
        2 + header + self.data.iter().map(SendDataSeg::ds_count).sum::<usize>()
    }

    /// Writes the WQE into `out` (at least `ctrl.ds_count` × 16 bytes; bytes of the WQE not
    /// covered by a segment, such as the tail of a partly filled DS, are zeroed). Returns the
    /// bytes written.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WqeError> {
        if self.ctrl.ds_count > MAX_DS_COUNT {
            return Err(WqeError::DsCountTooLarge {
                ds_count: self.ctrl.ds_count,
            });
        }
        let needed = self.required_ds();
        if usize::from(self.ctrl.ds_count) < needed {
            return Err(WqeError::DsCountTooSmall {
                ds_count: self.ctrl.ds_count,
                needed,
            });
        }
        let total = usize::from(self.ctrl.ds_count) * DS_LEN;
        check_len("send WQE", total, out.len())?;
        let out = &mut out[..total];
        out.fill(0);
        self.ctrl.emit(&mut CtrlSeg::new_checked(&mut *out)?);
        let Some(eth) = &self.eth else {
            return Ok(total);
        };
        let mut seg = EthSeg::new_checked(&mut out[DS_LEN..])?;
        seg.set_cs_flags(eth.cs_flags);
        seg.set_swp_outer_l4_offset(eth.swp[0]);
        seg.set_swp_outer_l3_offset(eth.swp[1]);
        seg.set_swp_inner_l4_offset(eth.swp[2]);
        seg.set_swp_inner_l3_offset(eth.swp[3]);
        seg.set_swp_flags(eth.swp[4]);
        seg.set_mss(eth.mss);
        seg.set_flow_table_metadata(eth.flow_table_metadata);
        let mut offset = 2 * DS_LEN;
        match &eth.insert {
            EthInsert::InlineHeader(h) => {
                seg.set_inline_hdr_sz(h.len() as u16);
                out[INLINE_HEADER_OFFSET..INLINE_HEADER_OFFSET + h.len()].copy_from_slice(h);
                offset += h
                    .len()
                    .saturating_sub(INLINE_HEADER_START_LEN)
                    .div_ceil(DS_LEN)
                    * DS_LEN;
            }
            EthInsert::Vlan { tci, svlan } => {
                seg.set_inline_hdr_sz(ETH_INSERT_VLAN | if *svlan { ETH_INSERT_SVLAN } else { 0 });
                seg.set_inline_hdr_start(*tci);
            }
            EthInsert::Unknown { kind, data } => {
                seg.set_inline_hdr_sz(*kind);
                seg.set_inline_hdr_start(*data);
            }
        }
        for d in &self.data {
            match d {
                SendDataSeg::Pointer(p) => {
                    p.emit(&mut DataSeg::new_checked(&mut out[offset..])?);
                }
                SendDataSeg::Inline(bytes) => {
                    Field::dword(0).set(
                        &mut out[offset..],
                        u64::from(INLINE_SEG_FLAG | bytes.len() as u32),
                    );
                    out[offset + 4..offset + 4 + bytes.len()].copy_from_slice(bytes);
                }
            }
            offset += d.ds_count() * DS_LEN;
        }
        Ok(total)
    }

    /// WQEBBs the WQE occupies.
    pub fn wqebb_count(&self) -> usize {
        wqebb_count(self.ctrl.ds_count)
    }
}

/// One receive WQE of a cyclic RQ as values: its data segments up to the first terminator.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RecvWqeRepr {
    /// Buffers to scatter the packet into, in order.
    pub segments: Vec<DataSegRepr>,
}

impl RecvWqeRepr {
    /// Parses one stride (16 × segments bytes, the RQ's `log_wq_stride`); reads segments until
    /// a terminator ([`INVALID_LKEY`]) or the end of the stride. A trailing partial segment is
    /// ignored.
    pub fn parse(stride: &[u8]) -> Result<Self, Truncated> {
        Self::parse_with_terminator(stride, INVALID_LKEY)
    }

    /// [`Self::parse`] with the terminator lkey `terminator` (the terminate-scatter-list mkey
    /// when the device offers one).
    pub fn parse_with_terminator(stride: &[u8], terminator: u32) -> Result<Self, Truncated> {
        check_len("receive WQE", DS_LEN, stride.len())?;
        let mut segments = Vec::new();
        for chunk in stride.chunks_exact(DS_LEN) {
            let d = DataSegRepr::parse(&DataSeg::new_checked(chunk)?);
            if d.lkey == terminator {
                break;
            }
            segments.push(d);
        }
        Ok(RecvWqeRepr { segments })
    }

    /// Bytes the WQE's buffers can take.
    pub fn capacity(&self) -> u64 {
        self.segments.iter().map(|d| u64::from(d.len())).sum()
    }

    /// Writes the segments into `stride` and fills the remaining whole segments with
    /// terminators, as mlx5e does.
    pub fn emit(&self, stride: &mut [u8]) -> Result<(), Truncated> {
        let needed = self.segments.len().max(1) * DS_LEN;
        check_len("receive WQE", needed, stride.len())?;
        let mut chunks = stride.chunks_exact_mut(DS_LEN);
        for (d, chunk) in self.segments.iter().zip(&mut chunks) {
            d.emit(&mut DataSeg::new_checked(chunk)?);
        }
        for chunk in chunks {
            DataSegRepr::TERMINATOR.emit(&mut DataSeg::new_checked(chunk)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HEADER: [u8; 18] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00,
    ];

    /// A SEND as mlx5e builds it: 18 header bytes inlined, checksum offload, one pointer.
    fn send_with_inline_header() -> SendWqeRepr {
        SendWqeRepr {
            ctrl: CtrlSegRepr {
                wqe_index: 0x1234,
                opcode: SendOpcode::Send,
                sqn: 0xabc,
                ds_count: 4,
                ce: CqUpdate::Always,
                imm: 0x20 << 8,
                ..CtrlSegRepr::default()
            },
            eth: Some(EthSegRepr {
                cs_flags: cs_flags::L3_CSUM | cs_flags::L4_CSUM,
                insert: EthInsert::InlineHeader(HEADER.to_vec()),
                ..EthSegRepr::default()
            }),
            data: vec![SendDataSeg::Pointer(DataSegRepr {
                byte_count: 1496,
                lkey: 0x300,
                addr: Iova(0x1_2345_6000),
            })],
        }
    }

    #[test]
    fn send_wqe_bytes_are_pinned() {
        let w = send_with_inline_header();
        assert_eq!(w.required_ds(), 4);
        let mut buf = [0xeeu8; WQEBB_LEN];
        assert_eq!(w.emit(&mut buf).unwrap(), 64);
        let mut want = [0u8; WQEBB_LEN];
        want[0..4].copy_from_slice(&[0x00, 0x12, 0x34, 0x0a]); // opc_mod, wqe_index, SEND
        want[4..8].copy_from_slice(&[0x00, 0x0a, 0xbc, 0x04]); // sqn << 8 | ds 4
        want[11] = 0x08; // fm_ce_se: CE = 2
        want[12..16].copy_from_slice(&[0x00, 0x00, 0x20, 0x00]); // TIS 0x20 << 8
        want[20] = 0xc0; // cs_flags L3 | L4
        want[28..30].copy_from_slice(&[0x00, 18]); // inline_hdr.sz
        want[30..48].copy_from_slice(&HEADER); // 2 bytes in the Ethernet segment, 16 after
        want[48..52].copy_from_slice(&[0x00, 0x00, 0x05, 0xd8]); // byte_count 1496
        want[52..56].copy_from_slice(&[0x00, 0x00, 0x03, 0x00]); // lkey
        want[56..64].copy_from_slice(&[0, 0, 0, 0x01, 0x23, 0x45, 0x60, 0x00]); // addr
        assert_eq!(buf, want);
        assert_eq!(SendWqeRepr::parse(&buf).unwrap(), w);
        assert_eq!(w.wqebb_count(), 1);
    }

    #[test]
    fn vlan_insert_lso_and_inline_data() {
        let w = SendWqeRepr {
            ctrl: CtrlSegRepr {
                wqe_index: 7,
                opcode: SendOpcode::Lso,
                sqn: 1,
                ds_count: 5,
                ..CtrlSegRepr::default()
            },
            eth: Some(EthSegRepr {
                mss: 1448,
                insert: EthInsert::Vlan {
                    tci: 0x64,
                    svlan: true,
                },
                ..EthSegRepr::default()
            }),
            data: vec![
                SendDataSeg::Inline(vec![1, 2, 3, 4, 5]),
                SendDataSeg::Inline(vec![9; 13]),
                SendDataSeg::Pointer(DataSegRepr {
                    byte_count: 100,
                    lkey: 1,
                    addr: Iova(2),
                }),
            ],
        };
        // ctrl + eth + inline(9 B → 1 DS) + inline(17 B → 2 DS) + pointer = 6 DS.
        assert_eq!(w.required_ds(), 6);
        let mut buf = [0u8; 2 * WQEBB_LEN];
        assert_eq!(
            w.emit(&mut buf),
            Err(WqeError::DsCountTooSmall {
                ds_count: 5,
                needed: 6
            })
        );
        let w = SendWqeRepr {
            ctrl: CtrlSegRepr {
                ds_count: 6,
                ..w.ctrl
            },
            ..w
        };
        assert_eq!(w.emit(&mut buf).unwrap(), 96);
        assert_eq!(buf[3], 0x0e); // LSO
        assert_eq!(buf[22..24], [0x05, 0xa8]); // mss 1448
        assert_eq!(buf[28..32], [0x80, 0x01, 0x00, 0x64]); // insert 802.1ad, TCI
        assert_eq!(buf[32..41], [0x80, 0, 0, 5, 1, 2, 3, 4, 5]); // inline data segment
        assert_eq!(buf[48..52], [0x80, 0, 0, 13]);
        assert_eq!(buf[80..84], [0, 0, 0, 100]);
        assert_eq!(SendWqeRepr::parse(&buf).unwrap(), w);
        assert_eq!(w.wqebb_count(), 2);
    }

    #[test]
    fn nop_and_other_opcodes_are_control_only() {
        let mut buf = [0u8; WQEBB_LEN];
        buf[3] = 0x00; // NOP
        buf[7] = 1;
        buf[11] = 0x08;
        let w = SendWqeRepr::parse(&buf).unwrap();
        assert_eq!(w.ctrl.opcode, SendOpcode::Nop);
        assert_eq!(w.ctrl.ce, CqUpdate::Always);
        assert_eq!((w.eth, w.data.len()), (None, 0));
        buf[3] = 0x77;
        buf[7] = 3;
        let w = SendWqeRepr::parse(&buf).unwrap();
        assert_eq!(w.ctrl.opcode, SendOpcode::Unknown(0x77));
        assert_eq!(w.ctrl.ds_count, 3);
    }

    #[test]
    fn malformed_send_wqes_are_errors() {
        let mut buf = [0u8; WQEBB_LEN];
        buf[3] = 0x0a;
        assert_eq!(SendWqeRepr::parse(&buf), Err(WqeError::ZeroDsCount));
        buf[7] = 1;
        assert_eq!(SendWqeRepr::parse(&buf), Err(WqeError::MissingEthSeg));
        buf[7] = 5;
        assert!(matches!(
            SendWqeRepr::parse(&buf),
            Err(WqeError::Truncated(Truncated {
                needed: 80,
                got: 64,
                ..
            }))
        ));
        buf[7] = 3;
        buf[28..30].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            SendWqeRepr::parse(&buf),
            Err(WqeError::InlineHeaderBeyondWqe { size: 100 })
        );
        buf[28..30].copy_from_slice(&[0, 0]);
        buf[32..36].copy_from_slice(&(INLINE_SEG_FLAG | 13).to_be_bytes());
        assert_eq!(
            SendWqeRepr::parse(&buf),
            Err(WqeError::InlineDataBeyondWqe {
                offset: 32,
                len: 13
            })
        );
        buf[32..36].copy_from_slice(&(INLINE_SEG_FLAG | 0x7fff_ffff).to_be_bytes());
        assert!(SendWqeRepr::parse(&buf).is_err());
        assert!(SendWqeRepr::parse(&buf[..8]).is_err());
        let big = SendWqeRepr {
            ctrl: CtrlSegRepr {
                ds_count: 64,
                ..CtrlSegRepr::default()
            },
            ..SendWqeRepr::default()
        };
        assert_eq!(
            big.emit(&mut [0u8; 2048]),
            Err(WqeError::DsCountTooLarge { ds_count: 64 })
        );
        assert_eq!(
            WqeError::ZeroDsCount.to_string(),
            "send WQE with a DS count of 0"
        );
    }

    #[test]
    fn wqebb_arithmetic() {
        assert_eq!(wqebb_count(1), 1);
        assert_eq!(wqebb_count(4), 1);
        assert_eq!(wqebb_count(5), 2);
        assert_eq!(wqebb_count(MAX_DS_COUNT), 16);
        assert_eq!(INLINE_HEADER_OFFSET, 30);
    }

    #[test]
    fn receive_wqe_bytes_are_pinned() {
        let r = RecvWqeRepr {
            segments: vec![
                DataSegRepr {
                    byte_count: RECV_START_PADDING | 2048,
                    lkey: 0x300,
                    addr: Iova(0x8000_1040),
                },
                DataSegRepr {
                    byte_count: 256,
                    lkey: 0x300,
                    addr: Iova(0x9000_0000),
                },
            ],
        };
        let mut stride = [0xaau8; 64];
        r.emit(&mut stride).unwrap();
        assert_eq!(stride[0..8], [0x80, 0, 0x08, 0x00, 0, 0, 0x03, 0x00]);
        assert_eq!(stride[8..16], [0, 0, 0, 0, 0x80, 0x00, 0x10, 0x40]);
        assert_eq!(
            stride[32..48],
            [0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(stride[48..64], stride[32..48]);
        assert_eq!(RecvWqeRepr::parse(&stride).unwrap(), r);
        assert_eq!(r.capacity(), 2304);
        let other = RecvWqeRepr::parse_with_terminator(&stride, 0x300).unwrap();
        assert!(other.segments.is_empty());
        assert!(r.emit(&mut [0u8; 16]).is_err());
        assert!(RecvWqeRepr::parse(&[0u8; 15]).is_err());
    }

    #[test]
    fn control_segment_fields_are_pinned() {
        let mut b = [0u8; 16];
        let mut c = CtrlSeg::new_checked(&mut b[..]).unwrap();
        c.set_fence(Fence::InitiatorSmall);
        c.set_solicited(true);
        c.set_opc_mod(0x5a);
        assert_eq!(b[0], 0x5a);
        assert_eq!(b[11], 0x22);
        assert!(CtrlSeg::new_checked(&b[..15]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_send_wqes_never_panic_and_round_trip(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1100),
            opcode in proptest::prop_oneof![proptest::strategy::Just(0x0au8), proptest::strategy::Just(0x0e), proptest::strategy::Just(0x00), proptest::prelude::any::<u8>()],
        ) {
            let mut bytes = bytes;
            if bytes.len() > 3 {
                bytes[3] = opcode;
            }
            if let Ok(w) = SendWqeRepr::parse(&bytes) {
                let mut out = vec![0u8; usize::from(w.ctrl.ds_count) * DS_LEN];
                w.emit(&mut out).unwrap();
                proptest::prop_assert_eq!(SendWqeRepr::parse(&out).unwrap(), w);
            }
        }

        #[test]
        fn arbitrary_receive_wqes_never_panic_and_round_trip(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            if let Ok(r) = RecvWqeRepr::parse(&bytes) {
                let mut out = vec![0u8; bytes.len()];
                r.emit(&mut out).unwrap();
                proptest::prop_assert_eq!(RecvWqeRepr::parse(&out).unwrap(), r);
            }
        }
    }
}

//! The Ethernet path of an mlx5 function, in mlx5e's order: the vport context (own MAC), a
//! memory key (or the reserved lkey), a TIS, the TX and RX CQs, the SQ and RQ (each created
//! in RST and moved to RDY), receive WQEs posted, a direct TIR to the RQ, and a NIC RX flow
//! table whose one catch-all entry forwards to the TIR, made the root. Then batched send
//! (send WQEs: control + Ethernet segment with the inline header the capabilities require +
//! one data segment; the doorbell record, then the 8-byte doorbell), receive (CQEs by owner
//! bit, buffers reposted, the RQ doorbell record), the link state and counters.
//!
//! Choices: one SQ and one RQ, one data segment per frame, a buffer per ring slot (frames are
//! copied), VLAN stripping off (`vsd` 1: frames arrive as sent), no checksum or LSO offload
//! requested (the stack computes checksums). Only the last WQE of a batch asks for a CQE, as
//! mlx5e does; one TX CQE completes every WQE up to the one it names.
//!
//! Held send, for [`super::softhac`]: WQEs written beyond the doorbell record
//! ([`Mlx5Device::tx_post_held`]) stay software's until [`Mlx5Device::tx_ring_to`] hands them
//! over or [`Mlx5Device::tx_take_back_held`] rewinds the producer counter over them; a plain
//! [`Mlx5Device::send`] is refused meanwhile.

use std::collections::VecDeque;

use hw_common::{Iova, MacAddress};
use mlx5_hw::caps::CapInlineMode;
use mlx5_hw::cmd::Opcode;
use mlx5_hw::commands::OUT_LEN_16;
use mlx5_hw::commands::queues::{
    CreateRqIn, CreateRqOut, CreateSqIn, CreateSqOut, DestroyCqIn, DestroyRqIn, DestroySqIn,
    ModifyRqIn, ModifySqIn, QuerySqIn, QuerySqOut, QueueState, create_in_len, wq_type,
};
use mlx5_hw::commands::resources::{
    CreateMkeyIn, CreateMkeyOut, DestroyMkeyIn, QuerySpecialContextsIn, QuerySpecialContextsOut,
    lkey, mkey_access_mode,
};
use mlx5_hw::commands::rx::{
    CreateTirIn, CreateTirOut, CreateTisIn, CreateTisOut, DestroyTirIn, DestroyTisIn, disp_type,
    rx_hash_fn,
};
use mlx5_hw::commands::steering::{
    CreateFlowGroupIn, CreateFlowGroupOut, CreateFlowTableIn, CreateFlowTableOut,
    DeleteFlowTableEntryIn, DestroyFlowGroupIn, DestroyFlowTableIn, ROOT_DISCONNECT,
    SetFlowTableEntryIn, SetFlowTableRootIn, action, destination, destination_type, miss_action,
    table_type,
};
use mlx5_hw::commands::vport::VportState;
use mlx5_hw::cqe::{Cqe, CqeOpcode, CqeRepr, ErrCqe};
use mlx5_hw::uar::{BF_OFFSET, RCV_DBR_OFFSET, SND_DBR_OFFSET};
use mlx5_hw::wqe::{
    CqUpdate, CtrlSeg, CtrlSegRepr, DS_LEN, DataSegRepr, EthInsert, EthSegRepr, InlineMode,
    RECV_START_PADDING, RecvWqeRepr, SendDataSeg, SendOpcode, SendWqeRepr, WQEBB_LEN,
};

use super::device::{Mlx5Device, input, is_bad_op, output};
use super::error::Mlx5Error;
use super::queues::{CompletionQueue, PAS_PAGE, page_list};
use crate::backend::{Clock, DmaAllocator, DmaRegion, RegisterIo, doorbell_fence};

/// Bytes of each TX and RX buffer (the largest frame without jumbo frames, rounded up).
pub const BUFFER_LEN: usize = 2048;
/// The inline header mlx5e uses when the device requires the L2 header inline: Ethernet
/// header plus a VLAN tag (`MLX5E_MIN_INLINE`).
pub const MIN_INLINE_L2: usize = 18;
/// Ethernet header bytes.
const ETH_HLEN: usize = 14;

/// Sizes of the Ethernet queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthConfig {
    /// log2 of the SQ size in WQEBBs.
    pub log_sq_size: u8,
    /// log2 of the RQ size in WQEs.
    pub log_rq_size: u8,
}

impl Default for EthConfig {
    fn default() -> Self {
        EthConfig {
            log_sq_size: 8,
            log_rq_size: 8,
        }
    }
}

/// Datapath counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EthStats {
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// TX CQEs consumed.
    pub tx_completions: u64,
    /// TX error CQEs.
    pub tx_error_cqes: u64,
    /// Frames not sent because the SQ was full.
    pub tx_ring_full: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// RX error CQEs.
    pub rx_error_cqes: u64,
    /// CQEs of an unexpected opcode (counted, skipped).
    pub unexpected_cqes: u64,
    /// Received frames longer than the buffer (truncated to it).
    pub rx_truncated: u64,
    /// SQ recoveries after an error CQE (ERR → RST → RDY).
    pub sq_recoveries: u64,
}

/// A send WQE written beyond the doorbell record: its start counter, the producer counter
/// after it, its frame's length.
#[derive(Clone, Copy, Debug)]
struct HeldWqe {
    start: u16,
    end: u16,
    /// Frame bytes, counted in `tx_bytes` when the WQE is handed over.
    len: u64,
}

/// The objects and rings of the open Ethernet path (each `None` until created).
pub struct EthQueues<G: DmaRegion> {
    mac: MacAddress,
    mtu: u16,
    inline_mode: InlineMode,
    lkey: u32,
    mkey: Option<u32>,
    tisn: Option<u32>,
    tx_cq: Option<CompletionQueue<G>>,
    rx_cq: Option<CompletionQueue<G>>,
    sqn: Option<u32>,
    rqn: Option<u32>,
    tirn: Option<u32>,
    table_id: Option<u32>,
    group_id: Option<u32>,
    entry: bool,
    sq_ring: Option<G>,
    sq_log: u8,
    sq_pc: u16,
    sq_cc: u16,
    /// The producer counter last written to the doorbell record: WQEs from here to `sq_pc`
    /// are held (software's, the device does not see them).
    sq_rung: u16,
    /// The held send WQEs, oldest first.
    held: VecDeque<HeldWqe>,
    sq_sizes: Vec<u8>,
    tx_bufs: Option<G>,
    rq_ring: Option<G>,
    rq_log: u8,
    rq_pc: u16,
    rx_bufs: Option<G>,
    stats: EthStats,
    last_error: Option<(u8, u8)>,
    sq_error: bool,
}

impl<G: DmaRegion> EthQueues<G> {
    fn sq_dbr(&self) -> usize {
        WQEBB_LEN << self.sq_log
    }
    fn rq_dbr(&self) -> usize {
        ((DS_LEN << self.rq_log).div_ceil(PAS_PAGE)) * PAS_PAGE
    }
    fn sq_free(&self) -> usize {
        (1usize << self.sq_log) - usize::from(self.sq_pc.wrapping_sub(self.sq_cc))
    }

    /// Writes the send WQE of `frame` (length already checked) at the producer counter, NOP
    /// padding first if it would wrap the ring (as mlx5e does), and copies the frame to the
    /// slot's buffer; the producer counter moves past it. The doorbell record is not touched.
    /// Returns the WQE's start counter, or `None` (nothing written) when the SQ lacks room.
    fn write_wqe(&mut self, frame: &[u8]) -> Result<Option<u16>, Mlx5Error> {
        let (Some(ring), Some(bufs), Some(sqn)) =
            (self.sq_ring.as_ref(), self.tx_bufs.as_ref(), self.sqn)
        else {
            return Err(Mlx5Error::NotOpen);
        };
        let size = 1usize << self.sq_log;
        let mask = size - 1;
        let ihs = inline_len(frame, self.inline_mode);
        let index = usize::from(self.sq_pc) & mask;
        let mut wqe = send_wqe(
            frame,
            ihs,
            sqn,
            self.lkey,
            bufs.iova().0 + (index * BUFFER_LEN) as u64,
        );
        let ds = wqe.required_ds();
        wqe.ctrl.ds_count = ds as u8;
        let wqebbs = ds.div_ceil(WQEBB_LEN / DS_LEN);
        // A WQE never wraps the ring: pad to the end with NOPs (as mlx5e does).
        let to_end = size - index;
        let need = if wqebbs > to_end {
            wqebbs + to_end
        } else {
            wqebbs
        };
        if need > self.sq_free() {
            return Ok(None);
        }
        if wqebbs > to_end {
            for k in 0..to_end {
                let nop = SendWqeRepr {
                    ctrl: CtrlSegRepr {
                        opcode: SendOpcode::Nop,
                        sqn,
                        ds_count: 1,
                        wqe_index: self.sq_pc,
                        ..CtrlSegRepr::default()
                    },
                    eth: None,
                    data: Vec::new(),
                };
                let mut b = [0u8; WQEBB_LEN];
                nop.emit(&mut b)?;
                ring.write((index + k) * WQEBB_LEN, &b);
                self.sq_sizes[index + k] = 1;
                self.sq_pc = self.sq_pc.wrapping_add(1);
            }
        }
        let index = usize::from(self.sq_pc) & mask;
        if let Some(SendDataSeg::Pointer(p)) = wqe.data.first_mut() {
            p.addr = Iova(bufs.iova().0 + (index * BUFFER_LEN + ihs) as u64);
        }
        let start = self.sq_pc;
        wqe.ctrl.wqe_index = start;
        bufs.write(index * BUFFER_LEN, frame);
        let mut b = vec![0u8; wqebbs * WQEBB_LEN];
        wqe.emit(&mut b)?;
        ring.write(index * WQEBB_LEN, &b);
        self.sq_sizes[index] = wqebbs as u8;
        self.sq_pc = self.sq_pc.wrapping_add(wqebbs as u16);
        Ok(Some(start))
    }
}

/// Refuses a frame the send path cannot carry: longer than a buffer, or shorter than an
/// Ethernet header.
pub fn check_frame_len(len: usize) -> Result<(), Mlx5Error> {
    if len > BUFFER_LEN {
        return Err(Mlx5Error::FrameTooLarge {
            len,
            max: BUFFER_LEN,
        });
    }
    if len < ETH_HLEN {
        return Err(Mlx5Error::FrameTooShort { len, min: ETH_HLEN });
    }
    Ok(())
}

/// The headers a send WQE inlines for `mode`: none, the L2 header (with room for a tag), or
/// up to the IP or L4 header (parsed from the frame; frames that are not IP inline L2).
pub fn inline_len(frame: &[u8], mode: InlineMode) -> usize {
    let l2 = |f: &[u8]| {
        if f.len() >= ETH_HLEN + 4 && matches!(u16::from_be_bytes([f[12], f[13]]), 0x8100 | 0x88a8)
        {
            ETH_HLEN + 4
        } else {
            ETH_HLEN
        }
    };
    let n = match mode {
        InlineMode::None => 0,
        InlineMode::L2 => MIN_INLINE_L2,
        _ => {
            let l2len = l2(frame);
            let ethertype = frame
                .get(l2len - 2..l2len)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            let (l3len, proto) = match ethertype {
                0x0800 => (
                    usize::from(frame.get(l2len).map_or(5, |b| b & 0xF)) * 4,
                    frame.get(l2len + 9).copied().unwrap_or(0),
                ),
                0x86dd => (40, frame.get(l2len + 6).copied().unwrap_or(0)),
                _ => (0, 0),
            };
            if l3len == 0 {
                MIN_INLINE_L2
            } else if mode == InlineMode::Ip {
                l2len + l3len
            } else {
                let l4 = l2len + l3len;
                let l4len = match proto {
                    6 => usize::from(frame.get(l4 + 12).map_or(5, |b| b >> 4)) * 4,
                    17 => 8,
                    _ => 0,
                };
                l4 + l4len
            }
        }
    };
    n.min(frame.len())
}

/// The send WQE mlx5e builds for one linear frame: a SEND on SQ `sqn`, the first `ihs` bytes
/// inlined in the Ethernet segment, and one data segment (key `lkey`) for the rest, which the
/// caller copied to `buffer` (the frame's start; the segment points `ihs` bytes in). The
/// control segment's `tis_tir_num` stays 0: the SQ's context names its TIS, and mlx5e sets
/// the field only to pick another TIS (TLS, NVMe-TCP offloads). No CQE is requested (the
/// batch's last WQE asks); the caller sets the WQE index.
pub fn send_wqe(frame: &[u8], ihs: usize, sqn: u32, lkey: u32, buffer: u64) -> SendWqeRepr {
    let ihs = ihs.min(frame.len());
    let mut wqe = SendWqeRepr {
        ctrl: CtrlSegRepr {
            opcode: SendOpcode::Send,
            sqn,
            ce: CqUpdate::OnError,
            ..CtrlSegRepr::default()
        },
        eth: Some(EthSegRepr {
            insert: EthInsert::InlineHeader(frame[..ihs].to_vec()),
            ..EthSegRepr::default()
        }),
        data: Vec::new(),
    };
    if frame.len() > ihs {
        wqe.data.push(SendDataSeg::Pointer(DataSegRepr {
            byte_count: (frame.len() - ihs) as u32,
            lkey,
            addr: Iova(buffer + ihs as u64),
        }));
    }
    wqe.ctrl.ds_count = wqe.required_ds() as u8;
    wqe
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Mlx5Device<R, D, C> {
    /// Opens the Ethernet path (module docs). On failure what was created stays recorded and
    /// [`Mlx5Device::close_eth`] (or shutdown) destroys it.
    pub fn open_eth(&mut self, cfg: EthConfig) -> Result<(), Mlx5Error> {
        if self.eth.is_some() {
            return Ok(());
        }
        let max_wq = self.caps.general().map_or(0, |g| g.log_max_wq_sz()).max(1);
        for (what, log) in [("SQ", cfg.log_sq_size), ("RQ", cfg.log_rq_size)] {
            if log == 0 || log > max_wq.min(15) {
                return Err(Mlx5Error::QueueSize {
                    what,
                    log,
                    min: 1,
                    max: max_wq.min(15),
                });
            }
        }
        if self.caps.ethernet.is_none() {
            return Err(Mlx5Error::MissingCapability("eth_net_offloads"));
        }
        let (mac, mtu, vport_inline) = self.own_vport_context()?;
        let cap_inline = self
            .caps
            .ethernet()
            .map_or(CapInlineMode::L2, |e| e.wqe_inline_mode());
        let inline_mode = match cap_inline {
            CapInlineMode::L2 => InlineMode::L2,
            CapInlineMode::VportContext => InlineMode::from_raw_value(vport_inline),
            _ => InlineMode::None,
        };
        self.eth = Some(EthQueues {
            mac,
            mtu,
            inline_mode,
            lkey: 0,
            mkey: None,
            tisn: None,
            tx_cq: None,
            rx_cq: None,
            sqn: None,
            rqn: None,
            tirn: None,
            table_id: None,
            group_id: None,
            entry: false,
            sq_ring: None,
            sq_log: cfg.log_sq_size,
            sq_pc: 0,
            sq_cc: 0,
            sq_rung: 0,
            held: VecDeque::new(),
            sq_sizes: vec![1; 1 << cfg.log_sq_size],
            tx_bufs: None,
            rq_ring: None,
            rq_log: cfg.log_rq_size,
            rq_pc: 0,
            rx_bufs: None,
            stats: EthStats::default(),
            last_error: None,
            sq_error: false,
        });
        self.open_objects(cfg)
    }

    fn eth_mut(&mut self) -> Result<&mut EthQueues<D::Region>, Mlx5Error> {
        self.eth.as_mut().ok_or(Mlx5Error::NotOpen)
    }

    fn open_objects(&mut self, cfg: EthConfig) -> Result<(), Mlx5Error> {
        let (pd, td, uar) = (self.pd, self.td, self.uar);
        // Memory key: a physical-address mkey as mlx5e creates; a device without mkeys
        // answers BAD_OP and the reserved lkey is used instead.
        let m = input!(CreateMkeyIn, CreateMkeyIn::<&[u8]>::LEN, 0, |v| {
            let mut k = v.mkey_context_mut();
            k.set_access_mode_1_0(mkey_access_mode::PA);
            k.set_lw(true);
            k.set_lr(true);
            k.set_length64(true);
            k.set_qpn(0xFF_FFFF);
            k.set_pd(pd);
        });
        match self.exec(&m, OUT_LEN_16) {
            Ok(o) => {
                let index = output!(CreateMkeyOut, o)?.mkey_index();
                let e = self.eth_mut()?;
                e.mkey = Some(index);
                e.lkey = lkey(index, 0);
            }
            Err(e) if is_bad_op(&e) => {
                let o = self.exec(
                    &input!(QuerySpecialContextsIn, 0),
                    QuerySpecialContextsOut::<&[u8]>::LEN,
                )?;
                let resd = output!(QuerySpecialContextsOut, o)?.resd_lkey();
                self.eth_mut()?.lkey = resd;
            }
            Err(e) => return Err(e),
        }

        let m = input!(CreateTisIn, CreateTisIn::<&[u8]>::LEN, 0, |v| {
            let mut t = v.tis_context_mut();
            t.set_prio(0);
            t.set_transport_domain(td);
        });
        let o = self.exec(&m, OUT_LEN_16)?;
        let tisn = output!(CreateTisOut, o)?.tisn();
        self.eth_mut()?.tisn = Some(tisn);

        let tx_cq = self.new_cq(cfg.log_sq_size)?;
        let tx_cqn = tx_cq.cqn;
        self.eth_mut()?.tx_cq = Some(tx_cq);
        let rx_cq = self.new_cq(cfg.log_rq_size)?;
        let rx_cqn = rx_cq.cqn;
        self.eth_mut()?.rx_cq = Some(rx_cq);

        // SQ: ring of WQEBBs, its doorbell record in the page after it.
        let sq_len = WQEBB_LEN << cfg.log_sq_size;
        let ring = self.dma.allocate(sq_len + PAS_PAGE)?;
        let bufs = self.dma.allocate(BUFFER_LEN << cfg.log_sq_size)?;
        let pas = page_list(&ring, sq_len);
        let dbr = ring.iova().0 + sq_len as u64;
        let vport_inline = self.eth_mut()?.inline_mode;
        let from_vport = self
            .caps
            .ethernet()
            .is_some_and(|e| e.wqe_inline_mode() == CapInlineMode::VportContext);
        let m = input!(CreateSqIn, create_in_len(pas.len()).unwrap_or(0), 0, |v| {
            {
                let mut s = v.sq_context_mut();
                s.set_flush_in_error_en(true);
                if from_vport {
                    s.set_min_wqe_inline_mode(vport_inline);
                }
                s.set_state(QueueState::Reset);
                s.set_cqn(tx_cqn);
                s.set_tis_lst_sz(1);
                s.set_tis_num_0(tisn);
                let mut w = s.wq_mut();
                w.set_wq_type(wq_type::CYCLIC);
                w.set_pd(pd);
                w.set_uar_page(uar);
                w.set_dbr_addr(dbr);
                w.set_log_wq_stride(6);
                w.set_log_wq_pg_sz(0);
                w.set_log_wq_sz(cfg.log_sq_size);
            }
            for (k, pa) in pas.iter().enumerate() {
                let _fits = v.set_pa(k, *pa);
            }
        });
        {
            let e = self.eth_mut()?;
            e.sq_ring = Some(ring);
            e.tx_bufs = Some(bufs);
        }
        let o = self.exec(&m, OUT_LEN_16)?;
        let sqn = output!(CreateSqOut, o)?.sqn();
        self.eth_mut()?.sqn = Some(sqn);
        let m = input!(ModifySqIn, ModifySqIn::<&[u8]>::LEN, 0, |v| {
            v.set_sq_state(u8::from(QueueState::Reset));
            v.set_sqn(sqn);
            v.sq_context_mut().set_state(QueueState::Ready);
        });
        self.exec(&m, OUT_LEN_16)?;

        // RQ: ring of one-segment WQEs (16-byte stride), doorbell record in the next page.
        let rq_len = DS_LEN << cfg.log_rq_size;
        let rq_dbr_off = rq_len.div_ceil(PAS_PAGE) * PAS_PAGE;
        let ring = self.dma.allocate(rq_dbr_off + PAS_PAGE)?;
        let bufs = self.dma.allocate(BUFFER_LEN << cfg.log_rq_size)?;
        let pas = page_list(&ring, rq_len);
        let dbr = ring.iova().0 + rq_dbr_off as u64;
        let m = input!(CreateRqIn, create_in_len(pas.len()).unwrap_or(0), 0, |v| {
            {
                let mut r = v.rq_context_mut();
                r.set_vsd(true);
                r.set_flush_in_error_en(true);
                r.set_state(QueueState::Reset);
                r.set_cqn(rx_cqn);
                let mut w = r.wq_mut();
                w.set_wq_type(wq_type::CYCLIC);
                w.set_pd(pd);
                w.set_dbr_addr(dbr);
                w.set_log_wq_stride(4);
                w.set_log_wq_pg_sz(0);
                w.set_log_wq_sz(cfg.log_rq_size);
            }
            for (k, pa) in pas.iter().enumerate() {
                let _fits = v.set_pa(k, *pa);
            }
        });
        {
            let e = self.eth_mut()?;
            e.rq_ring = Some(ring);
            e.rx_bufs = Some(bufs);
        }
        let o = self.exec(&m, OUT_LEN_16)?;
        let rqn = output!(CreateRqOut, o)?.rqn();
        self.eth_mut()?.rqn = Some(rqn);
        let m = input!(ModifyRqIn, ModifyRqIn::<&[u8]>::LEN, 0, |v| {
            v.set_rq_state(u8::from(QueueState::Reset));
            v.set_rqn(rqn);
            v.rq_context_mut().set_state(QueueState::Ready);
        });
        self.exec(&m, OUT_LEN_16)?;
        self.post_receive_wqes()?;

        let m = input!(CreateTirIn, CreateTirIn::<&[u8]>::LEN, 0, |v| {
            let mut t = v.tir_context_mut();
            t.set_disp_type(disp_type::DIRECT);
            t.set_inline_rqn(rqn);
            t.set_rx_hash_fn(rx_hash_fn::NONE);
            t.set_transport_domain(td);
        });
        let o = self.exec(&m, OUT_LEN_16)?;
        let tirn = output!(CreateTirOut, o)?.tirn();
        self.eth_mut()?.tirn = Some(tirn);

        let m = input!(CreateFlowTableIn, CreateFlowTableIn::<&[u8]>::LEN, 0, |v| {
            v.set_table_type(table_type::NIC_RX);
            let mut c = v.flow_table_context_mut();
            c.set_table_miss_action(miss_action::DEFAULT);
            c.set_level(0);
            c.set_log_size(0);
        });
        let o = self.exec(&m, OUT_LEN_16)?;
        let table_id = output!(CreateFlowTableOut, o)?.table_id();
        self.eth_mut()?.table_id = Some(table_id);
        let m = input!(CreateFlowGroupIn, CreateFlowGroupIn::<&[u8]>::LEN, 0, |v| {
            v.set_table_type(table_type::NIC_RX);
            v.set_table_id(table_id);
            v.set_start_flow_index(0);
            v.set_end_flow_index(0);
            v.set_match_criteria_enable(0);
        });
        let o = self.exec(&m, OUT_LEN_16)?;
        let group_id = output!(CreateFlowGroupOut, o)?.group_id();
        self.eth_mut()?.group_id = Some(group_id);
        let m = input!(
            SetFlowTableEntryIn,
            SetFlowTableEntryIn::<&[u8]>::LEN + 8,
            0,
            |v| {
                v.set_table_type(table_type::NIC_RX);
                v.set_table_id(table_id);
                v.set_flow_index(0);
                let mut c = v.flow_context_mut();
                c.set_group_id(group_id);
                c.set_action(action::FWD_DEST);
                c.set_destination_list_size(1);
                let _fits = c.set_destination(0, destination(destination_type::TIR, tirn));
            }
        );
        self.exec(&m, OUT_LEN_16)?;
        self.eth_mut()?.entry = true;
        let m = input!(
            SetFlowTableRootIn,
            SetFlowTableRootIn::<&[u8]>::LEN,
            0,
            |v| {
                v.set_table_type(table_type::NIC_RX);
                v.set_table_id(table_id);
            }
        );
        self.exec(&m, OUT_LEN_16)?;
        Ok(())
    }

    /// Writes every receive WQE (one data segment per ring slot, each slot's own buffer) and
    /// hands them all to the device through the doorbell record.
    fn post_receive_wqes(&mut self) -> Result<(), Mlx5Error> {
        let e = self.eth.as_mut().ok_or(Mlx5Error::NotOpen)?;
        let (Some(ring), Some(bufs)) = (e.rq_ring.as_ref(), e.rx_bufs.as_ref()) else {
            return Err(Mlx5Error::NotOpen);
        };
        for i in 0..(1usize << e.rq_log) {
            let wqe = RecvWqeRepr {
                // mlx5e sets the hardware start-padding bit on every receive fragment.
                segments: vec![DataSegRepr {
                    byte_count: BUFFER_LEN as u32 | RECV_START_PADDING,
                    lkey: e.lkey,
                    addr: Iova(bufs.iova().0 + (i * BUFFER_LEN) as u64),
                }],
            };
            let mut b = [0u8; DS_LEN];
            wqe.emit(&mut b)
                .map_err(|source| Mlx5Error::MalformedOutput {
                    opcode: Opcode::CreateRq,
                    source,
                })?;
            ring.write(i * DS_LEN, &b);
        }
        e.rq_pc = (1u32 << e.rq_log) as u16;
        // Orders the WQEs before the doorbell record that hands them over.
        doorbell_fence();
        ring.write(
            e.rq_dbr() + RCV_DBR_OFFSET,
            &u32::from(e.rq_pc).to_be_bytes(),
        );
        Ok(())
    }

    /// Destroys what [`Mlx5Device::open_eth`] created, in reverse (flow entry, group, table,
    /// TIR, RQ, SQ, CQs, TIS, mkey).
    pub fn close_eth(&mut self) -> Result<(), Mlx5Error> {
        let Some(mut e) = self.eth.take() else {
            return Ok(());
        };
        if let Some(table_id) = e.table_id {
            if e.entry {
                let m = input!(
                    DeleteFlowTableEntryIn,
                    DeleteFlowTableEntryIn::<&[u8]>::LEN,
                    0,
                    |v| {
                        v.set_table_type(table_type::NIC_RX);
                        v.set_table_id(table_id);
                        v.set_flow_index(0);
                    }
                );
                self.exec(&m, OUT_LEN_16)?;
            }
            if let Some(group_id) = e.group_id {
                let m = input!(
                    DestroyFlowGroupIn,
                    DestroyFlowGroupIn::<&[u8]>::LEN,
                    0,
                    |v| {
                        v.set_table_type(table_type::NIC_RX);
                        v.set_table_id(table_id);
                        v.set_group_id(group_id);
                    }
                );
                self.exec(&m, OUT_LEN_16)?;
            }
            // The table is the root of the NIC RX namespace: disconnect it first (SET_FLOW_TABLE_ROOT
            // op_mod 1), as Linux's flow-steering core does before destroying the last table.
            let m = input!(
                SetFlowTableRootIn,
                SetFlowTableRootIn::<&[u8]>::LEN,
                ROOT_DISCONNECT,
                |v| {
                    v.set_table_type(table_type::NIC_RX);
                }
            );
            self.exec(&m, OUT_LEN_16)?;
            let m = input!(
                DestroyFlowTableIn,
                DestroyFlowTableIn::<&[u8]>::LEN,
                0,
                |v| {
                    v.set_table_type(table_type::NIC_RX);
                    v.set_table_id(table_id);
                }
            );
            self.exec(&m, OUT_LEN_16)?;
        }
        if let Some(tirn) = e.tirn.take() {
            self.exec(
                &input!(DestroyTirIn, DestroyTirIn::<&[u8]>::LEN, 0, |v| {
                    v.set_tirn(tirn);
                }),
                OUT_LEN_16,
            )?;
        }
        if let Some(rqn) = e.rqn.take() {
            self.exec(
                &input!(DestroyRqIn, DestroyRqIn::<&[u8]>::LEN, 0, |v| {
                    v.set_rqn(rqn);
                }),
                OUT_LEN_16,
            )?;
        }
        if let Some(sqn) = e.sqn.take() {
            self.exec(
                &input!(DestroySqIn, DestroySqIn::<&[u8]>::LEN, 0, |v| {
                    v.set_sqn(sqn);
                }),
                OUT_LEN_16,
            )?;
        }
        for cq in [e.rx_cq.take(), e.tx_cq.take()].into_iter().flatten() {
            let cqn = cq.cqn;
            self.exec(
                &input!(DestroyCqIn, DestroyCqIn::<&[u8]>::LEN, 0, |v| {
                    v.set_cqn(cqn);
                }),
                OUT_LEN_16,
            )?;
        }
        if let Some(tisn) = e.tisn.take() {
            self.exec(
                &input!(DestroyTisIn, DestroyTisIn::<&[u8]>::LEN, 0, |v| {
                    v.set_tisn(tisn);
                }),
                OUT_LEN_16,
            )?;
        }
        if let Some(mkey) = e.mkey.take() {
            self.exec(
                &input!(DestroyMkeyIn, DestroyMkeyIn::<&[u8]>::LEN, 0, |v| {
                    v.set_mkey_index(mkey);
                }),
                OUT_LEN_16,
            )?;
        }
        Ok(())
    }

    /// Sends `frames` in one doorbell batch: as many as the SQ has room for (the rest are
    /// counted in `tx_ring_full`); returns how many were queued. Refused with
    /// [`Mlx5Error::TxHeld`] while WQEs are held beyond the doorbell record
    /// ([`Mlx5Device::tx_post_held`]): ringing now would hand them to the device.
    pub fn send(&mut self, frames: &[&[u8]]) -> Result<usize, Mlx5Error> {
        if let Some(e) = self.eth.as_ref().filter(|e| !e.held.is_empty()) {
            return Err(Mlx5Error::TxHeld { wqes: e.held.len() });
        }
        self.reclaim_tx()?;
        if self.eth.as_ref().is_some_and(|e| e.sq_error) {
            self.recover_sq()?;
        }
        // Refuse a bad batch before anything reaches the ring.
        for frame in frames {
            check_frame_len(frame.len())?;
        }
        let e = self.eth.as_mut().ok_or(Mlx5Error::NotOpen)?;
        let mut sent = 0;
        let mut last = None;
        for frame in frames {
            let Some(start) = e.write_wqe(frame)? else {
                e.stats.tx_ring_full += (frames.len() - sent) as u64;
                break;
            };
            last = Some(start);
            sent += 1;
            e.stats.tx_frames += 1;
            e.stats.tx_bytes += frame.len() as u64;
        }
        let Some(last) = last else {
            return Ok(0);
        };
        let end = e.sq_pc;
        self.ring_doorbell(last, end)?;
        Ok(sent)
    }

    /// Writes the send WQE of `frame` into the SQ *without* ringing: the doorbell record stays
    /// where it was, so the device does not see the WQE (software still owns that part of the
    /// ring). Returns the producer counter after the WQE (the value to pass to
    /// [`Mlx5Device::tx_ring_to`]), or `None` when the SQ has no room (nothing written, nothing
    /// counted: the caller keeps the frame). Used by [`super::softhac::Mlx5SoftHac`] to hold a
    /// checkpointing VF's frames until their epoch commits.
    pub fn tx_post_held(&mut self, frame: &[u8]) -> Result<Option<u16>, Mlx5Error> {
        check_frame_len(frame.len())?;
        let e = self.eth.as_ref().ok_or(Mlx5Error::NotOpen)?;
        if e.sq_error && e.held.is_empty() {
            self.reclaim_tx()?;
            self.recover_sq()?;
        }
        let e = self.eth.as_mut().ok_or(Mlx5Error::NotOpen)?;
        let mut start = e.write_wqe(frame)?;
        if start.is_none() {
            // Completions may have freed room since the last look.
            self.reclaim_tx()?;
            start = self.eth_mut()?.write_wqe(frame)?;
        }
        let e = self.eth_mut()?;
        Ok(start.map(|s| {
            e.held.push_back(HeldWqe {
                start: s,
                end: e.sq_pc,
                len: frame.len() as u64,
            });
            e.sq_pc
        }))
    }

    /// Hands the held WQEs up to the one ending at producer counter `end` (a value
    /// [`Mlx5Device::tx_post_held`] returned) to the device: that WQE asks for a CQE, the
    /// doorbell record moves to `end`, the doorbell names it. Returns false and changes nothing
    /// when `end` is not the end of a held WQE (behind the record, or never returned).
    pub fn tx_ring_to(&mut self, end: u16) -> Result<bool, Mlx5Error> {
        let e = self.eth_mut()?;
        let Some(k) = e.held.iter().position(|h| h.end == end) else {
            return Ok(false);
        };
        let mut last = e.held.front().map_or(0, |h| h.start);
        for _ in 0..=k {
            if let Some(h) = e.held.pop_front() {
                last = h.start;
                e.stats.tx_frames += 1;
                e.stats.tx_bytes += h.len;
            }
        }
        self.ring_doorbell(last, end)?;
        Ok(true)
    }

    /// Takes back every held WQE (the device never saw them): the producer counter rewinds to
    /// the doorbell record, the slots and their buffers are reused by the next WQEs. Returns
    /// the send WQEs taken back (NOP padding not counted).
    pub fn tx_take_back_held(&mut self) -> usize {
        let Some(e) = self.eth.as_mut() else {
            return 0;
        };
        let n = e.held.len();
        e.held.clear();
        e.sq_pc = e.sq_rung;
        n
    }

    /// Send WQEs written beyond the doorbell record (held, not handed to the device).
    pub fn tx_held(&self) -> usize {
        self.eth.as_ref().map_or(0, |e| e.held.len())
    }

    /// Test hook: the memory key the next send WQEs carry (a bad one makes the device fail
    /// them with an error CQE). Returns the previous key.
    #[cfg(test)]
    pub(crate) fn set_tx_lkey_for_test(&mut self, lkey: u32) -> u32 {
        self.eth
            .as_mut()
            .map_or(0, |e| std::mem::replace(&mut e.lkey, lkey))
    }

    /// Whether an error CQE left the SQ waiting for [`Mlx5Device::recover_sq`] (which
    /// restarts the counters: take held WQEs back first and write them again after).
    pub fn tx_needs_recovery(&self) -> bool {
        self.eth.as_ref().is_some_and(|e| e.sq_error)
    }

    /// Asks for a CQE on the WQE starting at counter `last`, moves the doorbell record to
    /// `end` and rings the SQ's doorbell with that WQE's first 8 bytes.
    fn ring_doorbell(&mut self, last: u16, end: u16) -> Result<(), Mlx5Error> {
        let e = self.eth.as_mut().ok_or(Mlx5Error::NotOpen)?;
        let Some(ring) = e.sq_ring.as_ref() else {
            return Err(Mlx5Error::NotOpen);
        };
        let slot = usize::from(last) & ((1usize << e.sq_log) - 1);
        // Only the last WQE of the batch asks for a CQE.
        let mut ctrl = [0u8; DS_LEN];
        ring.read(slot * WQEBB_LEN, &mut ctrl);
        if let Ok(mut c) = CtrlSeg::new_checked(&mut ctrl[..]) {
            c.set_ce(CqUpdate::Always);
        }
        ring.write(slot * WQEBB_LEN, &ctrl);
        // Orders the WQEs before the doorbell record, and the record before the doorbell.
        doorbell_fence();
        ring.write(e.sq_dbr() + SND_DBR_OFFSET, &u32::from(end).to_be_bytes());
        e.sq_rung = end;
        doorbell_fence();
        let mut db = [0u8; 8];
        db.copy_from_slice(&ctrl[..8]);
        let at = super::iseg::Mlx5Bar::<R>::uar_offset(self.uar, BF_OFFSET);
        self.bar.write_doorbell64(at, db);
        Ok(())
    }

    /// Consumes TX CQEs: frees the SQ up to the WQE each names. Returns the CQEs seen.
    pub fn reclaim_tx(&mut self) -> Result<usize, Mlx5Error> {
        let e = self.eth.as_mut().ok_or(Mlx5Error::NotOpen)?;
        let Some(cq) = e.tx_cq.as_mut() else {
            return Err(Mlx5Error::NotOpen);
        };
        let mask = (1usize << e.sq_log) - 1;
        let mut seen = 0;
        while let Some(raw) = cq.next_cqe() {
            seen += 1;
            let Ok(view) = Cqe::new_checked(&raw[..]) else {
                e.stats.unexpected_cqes += 1;
                continue;
            };
            let c = CqeRepr::parse(&view);
            match c.opcode {
                CqeOpcode::Req => {
                    e.stats.tx_completions += 1;
                    let size = e.sq_sizes[usize::from(c.wqe_counter) & mask];
                    e.sq_cc = c.wqe_counter.wrapping_add(u16::from(size));
                }
                CqeOpcode::ReqErr => {
                    e.stats.tx_error_cqes += 1;
                    e.sq_error = true;
                    if let Ok(err) = ErrCqe::new_checked(&raw[..]) {
                        e.last_error = Some((u8::from(err.syndrome()), err.vendor_err_synd()));
                        let size = e.sq_sizes[usize::from(err.wqe_counter()) & mask];
                        e.sq_cc = err.wqe_counter().wrapping_add(u16::from(size));
                    }
                }
                _ => e.stats.unexpected_cqes += 1,
            }
        }
        cq.update_ci();
        Ok(seen)
    }

    /// Brings the SQ back after an error CQE, as mlx5e's TX error recovery does: QUERY_SQ;
    /// if it is in the error state, the flushed WQEs' CQEs are consumed, MODIFY_SQ ERR→RST,
    /// the producer and consumer counters restart at 0, MODIFY_SQ RST→RDY. Returns whether
    /// the SQ needed it.
    pub fn recover_sq(&mut self) -> Result<bool, Mlx5Error> {
        let sqn = self
            .eth
            .as_ref()
            .and_then(|e| e.sqn)
            .ok_or(Mlx5Error::NotOpen)?;
        let o = self.exec(
            &input!(QuerySqIn, QuerySqIn::<&[u8]>::LEN, 0, |v| {
                v.set_sqn(sqn);
            }),
            QuerySqOut::<&[u8]>::LEN,
        )?;
        let state = output!(QuerySqOut, o)?.sq_context().state();
        if state != QueueState::Error {
            self.eth_mut()?.sq_error = false;
            return Ok(false);
        }
        self.reclaim_tx()?;
        for (from, to) in [
            (QueueState::Error, QueueState::Reset),
            (QueueState::Reset, QueueState::Ready),
        ] {
            let m = input!(ModifySqIn, ModifySqIn::<&[u8]>::LEN, 0, |v| {
                v.set_sq_state(u8::from(from));
                v.set_sqn(sqn);
                v.sq_context_mut().set_state(to);
            });
            self.exec(&m, OUT_LEN_16)?;
            if to == QueueState::Reset {
                let e = self.eth_mut()?;
                e.sq_pc = 0;
                e.sq_cc = 0;
                // Held WQEs are gone with the ring's contents: their owner writes them again.
                e.sq_rung = 0;
                e.held.clear();
            }
        }
        let e = self.eth_mut()?;
        e.sq_error = false;
        e.stats.sq_recoveries += 1;
        Ok(true)
    }

    /// Receives up to `max` frames, handing each to `each`; the buffers go back to the
    /// device. Returns how many frames were delivered.
    pub fn recv_with(
        &mut self,
        max: usize,
        mut each: impl FnMut(&[u8]),
    ) -> Result<usize, Mlx5Error> {
        let e = self.eth.as_mut().ok_or(Mlx5Error::NotOpen)?;
        let (Some(cq), Some(ring), Some(bufs)) =
            (e.rx_cq.as_mut(), e.rq_ring.as_ref(), e.rx_bufs.as_ref())
        else {
            return Err(Mlx5Error::NotOpen);
        };
        let mask = (1usize << e.rq_log) - 1;
        let mut delivered = 0;
        let mut consumed = 0u16;
        let mut frame = vec![0u8; BUFFER_LEN];
        while delivered < max {
            let Some(raw) = cq.next_cqe() else { break };
            consumed = consumed.wrapping_add(1);
            let Ok(view) = Cqe::new_checked(&raw[..]) else {
                e.stats.unexpected_cqes += 1;
                continue;
            };
            let c = CqeRepr::parse(&view);
            match c.opcode {
                CqeOpcode::RespSend => {
                    let index = usize::from(c.wqe_counter) & mask;
                    let len = c.byte_cnt as usize;
                    if len > BUFFER_LEN {
                        e.stats.rx_truncated += 1;
                    }
                    let len = len.min(BUFFER_LEN);
                    bufs.read(index * BUFFER_LEN, &mut frame[..len]);
                    each(&frame[..len]);
                    e.stats.rx_frames += 1;
                    e.stats.rx_bytes += len as u64;
                    delivered += 1;
                }
                CqeOpcode::RespErr => {
                    e.stats.rx_error_cqes += 1;
                    if let Ok(err) = ErrCqe::new_checked(&raw[..]) {
                        e.last_error = Some((u8::from(err.syndrome()), err.vendor_err_synd()));
                    }
                }
                _ => e.stats.unexpected_cqes += 1,
            }
        }
        if consumed > 0 {
            cq.update_ci();
            // Cyclic RQ: each consumed WQE is reposted as it was (same buffer).
            e.rq_pc = e.rq_pc.wrapping_add(consumed);
            doorbell_fence();
            ring.write(
                e.rq_dbr() + RCV_DBR_OFFSET,
                &u32::from(e.rq_pc).to_be_bytes(),
            );
        }
        Ok(delivered)
    }

    /// Receives up to `max` frames into `out`.
    pub fn recv(&mut self, out: &mut Vec<Vec<u8>>, max: usize) -> Result<usize, Mlx5Error> {
        self.recv_with(max, |f| out.push(f.to_vec()))
    }

    /// SQ room in WQEBBs (after consuming TX completions).
    pub fn tx_free(&mut self) -> usize {
        let _ = self.reclaim_tx();
        self.eth.as_ref().map_or(0, |e| e.sq_free())
    }

    /// The link: the vport's operational state is up.
    pub fn link_up(&mut self) -> Result<bool, Mlx5Error> {
        Ok(self.vport_state()? == VportState::Up)
    }

    /// Datapath counters (zero while the path is closed).
    pub fn eth_stats(&self) -> EthStats {
        self.eth.as_ref().map_or(EthStats::default(), |e| e.stats)
    }

    /// The MAC the vport context gave (zero: none assigned).
    pub fn mac(&self) -> Option<MacAddress> {
        self.eth.as_ref().map(|e| e.mac)
    }

    /// The vport MTU (0: not set).
    pub fn mtu(&self) -> Option<u16> {
        self.eth.as_ref().map(|e| e.mtu)
    }

    /// The last error CQE's syndrome and vendor syndrome.
    pub fn last_error_cqe(&self) -> Option<(u8, u8)> {
        self.eth.as_ref().and_then(|e| e.last_error)
    }

    /// The numbers of the open path's objects: (TIS, SQ, RQ, TIR, flow table).
    pub fn eth_objects(&self) -> Option<(u32, u32, u32, u32, u32)> {
        let e = self.eth.as_ref()?;
        Some((e.tisn?, e.sqn?, e.rqn?, e.tirn?, e.table_id?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An IPv4/TCP frame: Ethernet, 20-byte IP header, 32-byte TCP header, 4 payload bytes.
    fn tcp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 32 + 4];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[34 + 12] = 8 << 4;
        f
    }

    #[test]
    fn inline_length_per_mode() {
        let f = tcp_frame();
        assert_eq!(inline_len(&f, InlineMode::None), 0);
        assert_eq!(inline_len(&f, InlineMode::L2), MIN_INLINE_L2);
        assert_eq!(inline_len(&f, InlineMode::Ip), 34);
        assert_eq!(inline_len(&f, InlineMode::TcpUdp), 66);
        // A VLAN-tagged frame: 4 more bytes of L2.
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&f[12..]);
        assert_eq!(inline_len(&tagged, InlineMode::Ip), 38);
        // Not IP: the L2 minimum; never more than the frame.
        let arp = [0u8; 16];
        assert_eq!(inline_len(&arp, InlineMode::TcpUdp), 16);
        assert_eq!(inline_len(&arp[..14], InlineMode::L2), 14);
    }

    #[test]
    fn send_wqe_with_the_l2_inline_header_takes_one_wqebb() {
        let f = tcp_frame();
        let mut w = send_wqe(&f, MIN_INLINE_L2, 0x0123, 0x500, 0x1_0000_0000);
        w.ctrl.wqe_index = 7;
        assert_eq!(
            w.ctrl.ds_count, 4,
            "control, Ethernet, 16 more inline bytes, data"
        );
        assert_eq!(w.wqebb_count(), 1);
        let mut b = [0u8; WQEBB_LEN];
        assert_eq!(w.emit(&mut b).unwrap(), WQEBB_LEN);
        // Control segment: index 7, opcode SEND, SQN, DS 4, no CQE, no TIS override.
        assert_eq!(&b[0..4], &[0, 0, 7, 0x0a]);
        assert_eq!(&b[4..8], &[0, 0x01, 0x23, 4]);
        assert_eq!(b[11], 0);
        assert_eq!(&b[12..16], &[0, 0, 0, 0]);
        // Ethernet segment: 18 inline bytes, the first two in the segment.
        assert_eq!(&b[0x1c..0x1e], &[0, 18]);
        assert_eq!(&b[0x1e..0x30], &f[..18]);
        // Data segment: the rest from the buffer, 18 bytes in.
        assert_eq!(&b[0x30..0x34], &((f.len() - 18) as u32).to_be_bytes());
        assert_eq!(&b[0x34..0x38], &0x500u32.to_be_bytes());
        assert_eq!(&b[0x38..0x40], &(0x1_0000_0000u64 + 18).to_be_bytes());
        assert_eq!(SendWqeRepr::parse(&b).unwrap(), w);
    }

    #[test]
    fn send_wqe_without_inline_and_a_frame_all_inline() {
        let f = tcp_frame();
        let w = send_wqe(&f, 0, 1, 3, 0x4000);
        assert_eq!(w.ctrl.ds_count, 3);
        let small = &f[..14];
        let w = send_wqe(small, MIN_INLINE_L2, 1, 3, 0x4000);
        assert!(w.data.is_empty(), "nothing left for a data segment");
        assert_eq!(w.ctrl.ds_count, 3);
        let w = send_wqe(&f, inline_len(&f, InlineMode::TcpUdp), 1, 3, 0x4000);
        assert_eq!(
            w.wqebb_count(),
            2,
            "66 inline bytes spill into a second WQEBB"
        );
    }
}

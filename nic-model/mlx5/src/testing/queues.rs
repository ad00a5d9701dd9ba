//! Test support for the queues and the datapath: command inputs for TIS, SQ, RQ, TIR, RQT and
//! NIC RX flow steering, and a driver's side of an SQ (WQEs written into the ring, the send
//! counter in the doorbell record, the 8-byte doorbell) and of an RQ (receive WQEs, the
//! receive counter), as mlx5e does them (`en_tx.c`, `en_rx.c`, `en/txrx.h`).

use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::queues::{
    CreateRqIn, CreateSqIn, ModifyRqIn, ModifySqIn, QueueState, create_in_len, wq_type,
};
use mlx5_hw::commands::resources::{CreateMkeyIn, mkey_access_mode};
use mlx5_hw::commands::rx::{CreateRqtIn, CreateTirIn, CreateTisIn, disp_type, rqt_in_len};
use mlx5_hw::commands::steering::{
    CreateFlowGroupIn, CreateFlowTableIn, SetFlowTableEntryIn, SetFlowTableRootIn, action,
    destination, destination_type, match_criteria_enable,
};
use mlx5_hw::uar::{BF_OFFSET, SEND_DOORBELL_LEN, UAR_PAGE_LEN, WQ_DB_RECORD_LEN};
use mlx5_hw::wqe::{
    CqUpdate, CtrlSegRepr, DataSegRepr, EthInsert, EthSegRepr, RecvWqeRepr, SendDataSeg,
    SendOpcode, SendWqeRepr, WQEBB_LEN,
};

use hw_common::Iova;

use super::{CmdDriver, CmdError, DriverCq, Output, input};
use crate::nic::Mlx5Nic;

/// A CREATE_TIS input on transport domain `td`.
pub fn create_tis_input(td: u32) -> Vec<u8> {
    let mut m = input(Opcode::CreateTis, 0, CreateTisIn::<&[u8]>::LEN);
    if let Ok(mut i) = CreateTisIn::new_checked(&mut m[..]) {
        i.tis_context_mut().set_transport_domain(td);
    }
    m
}

/// The fields of an SQ or RQ the test driver chooses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WqParams {
    /// log2 of the entries.
    pub log_size: u8,
    /// log2 of the stride (SQ: 6).
    pub log_stride: u8,
    /// PD.
    pub pd: u32,
    /// UAR page (SQ doorbells).
    pub uar: u32,
    /// CQ.
    pub cqn: u32,
    /// TIS (SQ only).
    pub tisn: u32,
    /// Page list (4 KiB pages).
    pub pas: Vec<u64>,
    /// Doorbell record.
    pub dbr: u64,
    /// The lkey the driver's buffers use (not part of the command).
    pub lkey: u32,
}

/// A CREATE_MKEY input: a physical-address key over all memory with local read and write on
/// PD `pd`, as mlx5e creates it.
pub fn create_mkey_input(pd: u32) -> Vec<u8> {
    let mut m = input(Opcode::CreateMkey, 0, CreateMkeyIn::<&[u8]>::LEN);
    if let Ok(mut i) = CreateMkeyIn::new_checked(&mut m[..]) {
        let mut k = i.mkey_context_mut();
        k.set_access_mode_1_0(mkey_access_mode::PA);
        k.set_lw(true);
        k.set_lr(true);
        k.set_qpn(0xFF_FFFF);
        k.set_length64(true);
        k.set_pd(pd);
    }
    m
}

/// A CREATE_SQ input.
pub fn create_sq_input(p: &WqParams) -> Vec<u8> {
    let len = create_in_len(p.pas.len()).unwrap_or(0);
    let mut m = input(Opcode::CreateSq, 0, len);
    if let Ok(mut i) = CreateSqIn::new_checked(&mut m[..]) {
        {
            let mut c = i.sq_context_mut();
            c.set_flush_in_error_en(true);
            c.set_cqn(p.cqn);
            c.set_tis_lst_sz(1);
            c.set_tis_num_0(p.tisn);
            let mut wq = c.wq_mut();
            wq.set_wq_type(wq_type::CYCLIC);
            wq.set_pd(p.pd);
            wq.set_uar_page(p.uar);
            wq.set_dbr_addr(p.dbr);
            wq.set_log_wq_stride(p.log_stride);
            wq.set_log_wq_sz(p.log_size);
        }
        for (k, pa) in p.pas.iter().enumerate() {
            i.set_pa(k, *pa);
        }
    }
    m
}

/// A CREATE_RQ input.
pub fn create_rq_input(p: &WqParams) -> Vec<u8> {
    let len = create_in_len(p.pas.len()).unwrap_or(0);
    let mut m = input(Opcode::CreateRq, 0, len);
    if let Ok(mut i) = CreateRqIn::new_checked(&mut m[..]) {
        {
            let mut c = i.rq_context_mut();
            c.set_flush_in_error_en(true);
            c.set_vsd(true);
            c.set_cqn(p.cqn);
            let mut wq = c.wq_mut();
            wq.set_wq_type(wq_type::CYCLIC);
            wq.set_pd(p.pd);
            wq.set_dbr_addr(p.dbr);
            wq.set_log_wq_stride(p.log_stride);
            wq.set_log_wq_sz(p.log_size);
        }
        for (k, pa) in p.pas.iter().enumerate() {
            i.set_pa(k, *pa);
        }
    }
    m
}

/// A MODIFY_SQ input moving `sqn` from `from` to `to`.
pub fn modify_sq_input(sqn: u32, from: QueueState, to: QueueState) -> Vec<u8> {
    let mut m = input(Opcode::ModifySq, 0, ModifySqIn::<&[u8]>::LEN);
    if let Ok(mut i) = ModifySqIn::new_checked(&mut m[..]) {
        i.set_sqn(sqn);
        i.set_sq_state(u8::from(from));
        i.sq_context_mut().set_state(to);
    }
    m
}

/// A MODIFY_RQ input moving `rqn` from `from` to `to`.
pub fn modify_rq_input(rqn: u32, from: QueueState, to: QueueState) -> Vec<u8> {
    let mut m = input(Opcode::ModifyRq, 0, ModifyRqIn::<&[u8]>::LEN);
    if let Ok(mut i) = ModifyRqIn::new_checked(&mut m[..]) {
        i.set_rqn(rqn);
        i.set_rq_state(u8::from(from));
        i.rq_context_mut().set_state(to);
    }
    m
}

/// A CREATE_TIR input delivering directly to `rqn`.
pub fn create_direct_tir_input(td: u32, rqn: u32) -> Vec<u8> {
    let mut m = input(Opcode::CreateTir, 0, CreateTirIn::<&[u8]>::LEN);
    if let Ok(mut i) = CreateTirIn::new_checked(&mut m[..]) {
        let mut c = i.tir_context_mut();
        c.set_disp_type(disp_type::DIRECT);
        c.set_inline_rqn(rqn);
        c.set_transport_domain(td);
    }
    m
}

/// A CREATE_TIR input hashing with `hash_fn` (key `key`, outer selector `selector`) over RQT
/// `rqtn`.
pub fn create_indirect_tir_input(
    td: u32,
    rqtn: u32,
    hash_fn: u8,
    key: &[u8],
    selector: u32,
) -> Vec<u8> {
    let mut m = input(Opcode::CreateTir, 0, CreateTirIn::<&[u8]>::LEN);
    if let Ok(mut i) = CreateTirIn::new_checked(&mut m[..]) {
        let mut c = i.tir_context_mut();
        c.set_disp_type(disp_type::INDIRECT);
        c.set_indirect_table(rqtn);
        c.set_rx_hash_fn(hash_fn);
        let _ = c.set_rx_hash_toeplitz_key(key);
        c.set_rx_hash_field_selector_outer(selector);
        c.set_transport_domain(td);
    }
    m
}

/// A CREATE_RQT input of maximum size `max` listing `rqns`.
pub fn create_rqt_input(max: u16, rqns: &[u32]) -> Vec<u8> {
    let mut m = input(Opcode::CreateRqt, 0, rqt_in_len(rqns.len()).unwrap_or(0));
    if let Ok(mut i) = CreateRqtIn::new_checked(&mut m[..]) {
        let mut c = i.rqt_context_mut();
        c.set_rqt_max_size(max);
        c.set_rqt_actual_size(rqns.len() as u16);
        for (k, r) in rqns.iter().enumerate() {
            c.set_rq_num(k, *r);
        }
    }
    m
}

/// A CREATE_FLOW_TABLE input (NIC RX) of 2^`log_size` entries at `level`.
pub fn create_flow_table_input(level: u8, log_size: u8) -> Vec<u8> {
    let mut m = input(Opcode::CreateFlowTable, 0, CreateFlowTableIn::<&[u8]>::LEN);
    if let Ok(mut i) = CreateFlowTableIn::new_checked(&mut m[..]) {
        let mut c = i.flow_table_context_mut();
        c.set_level(level);
        c.set_log_size(log_size);
    }
    m
}

/// A CREATE_FLOW_GROUP input for entries `start..=end` of `table` with outer-header
/// `criteria` (64 bytes; all zero: no criteria, `match_criteria_enable` 0).
pub fn create_flow_group_input(table: u32, start: u32, end: u32, criteria: &[u8]) -> Vec<u8> {
    let mut m = input(Opcode::CreateFlowGroup, 0, CreateFlowGroupIn::<&[u8]>::LEN);
    if let Ok(mut i) = CreateFlowGroupIn::new_checked(&mut m[..]) {
        i.set_table_id(table);
        i.set_start_flow_index(start);
        i.set_end_flow_index(end);
        if criteria.iter().any(|&b| b != 0) {
            i.set_match_criteria_enable(match_criteria_enable::OUTER_HEADERS);
        }
    }
    if let Some(c) = m.get_mut(0x40..0x40 + criteria.len()) {
        c.copy_from_slice(criteria);
    }
    m
}

/// A SET_FLOW_TABLE_ENTRY input: entry `index` of group `group` of `table` matching outer
/// headers `value`, forwarding to TIR `tirn` (or dropping when `None`).
pub fn set_fte_input(
    table: u32,
    group: u32,
    index: u32,
    value: &[u8],
    tirn: Option<u32>,
) -> Vec<u8> {
    let len = SetFlowTableEntryIn::<&[u8]>::LEN + 8;
    let mut m = input(Opcode::SetFlowTableEntry, 0, len);
    if let Ok(mut i) = SetFlowTableEntryIn::new_checked(&mut m[..]) {
        i.set_table_id(table);
        i.set_flow_index(index);
        let mut c = i.flow_context_mut();
        c.set_group_id(group);
        match tirn {
            Some(t) => {
                c.set_action(action::FWD_DEST);
                c.set_destination_list_size(1);
                c.set_destination(0, destination(destination_type::TIR, t));
            }
            None => c.set_action(action::DROP),
        }
    }
    if let Some(v) = m.get_mut(0x80..0x80 + value.len()) {
        v.copy_from_slice(value);
    }
    m
}

/// A SET_FLOW_TABLE_ROOT input.
pub fn set_root_input(table: u32) -> Vec<u8> {
    let mut m = input(
        Opcode::SetFlowTableRoot,
        0,
        SetFlowTableRootIn::<&[u8]>::LEN,
    );
    if let Ok(mut i) = SetFlowTableRootIn::new_checked(&mut m[..]) {
        i.set_table_id(table);
    }
    m
}

/// An SQ as the test driver created it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverSq {
    /// SQ number.
    pub sqn: u32,
    /// log2 of its WQE basic blocks.
    pub log_size: u8,
    /// IOVA of WQE basic block 0 (a contiguous ring).
    pub ring: u64,
    /// IOVA of the doorbell record.
    pub dbr: u64,
    /// UAR page of its doorbell.
    pub uar: u32,
    /// The driver's producer counter (WQE basic blocks).
    pub pc: u16,
    /// The lkey of the driver's buffers.
    pub lkey: u32,
}

/// An RQ as the test driver created it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverRq {
    /// RQ number.
    pub rqn: u32,
    /// log2 of its WQEs.
    pub log_size: u8,
    /// log2 of the WQE stride.
    pub log_stride: u8,
    /// IOVA of WQE 0.
    pub ring: u64,
    /// IOVA of the doorbell record.
    pub dbr: u64,
    /// The driver's producer counter.
    pub pc: u16,
    /// The lkey of the driver's buffers.
    pub lkey: u32,
}

/// What [`CmdDriver::open_queues`] created: the objects of one SQ and one RQ with steering
/// that takes every frame to the RQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queues {
    /// UAR page.
    pub uar: u32,
    /// PD.
    pub pd: u32,
    /// Transport domain.
    pub td: u32,
    /// The lkey of the PA mkey over all memory.
    pub lkey: u32,
    /// EQ number.
    pub eqn: u8,
    /// Send CQ.
    pub tx_cq: DriverCq,
    /// Receive CQ.
    pub rx_cq: DriverCq,
    /// TIS.
    pub tisn: u32,
    /// SQ (ready).
    pub sq: DriverSq,
    /// RQ (ready).
    pub rq: DriverRq,
    /// TIR (direct to the RQ).
    pub tirn: u32,
    /// The root flow table.
    pub table: u32,
}

/// Bytes of each receive buffer [`CmdDriver::post_recv_buffers`] posts.
pub const RX_BUFFER_LEN: u32 = 2048;

impl CmdDriver {
    /// ALLOC_PD: the PD.
    pub fn alloc_pd(&mut self, nic: &mut Mlx5Nic) -> u32 {
        self.ok(nic, &input(Opcode::AllocPd, 0, 0x10), 0x10)
            .dword(0x08)
            & 0xFF_FFFF
    }

    /// ALLOC_TRANSPORT_DOMAIN: the transport domain.
    pub fn alloc_td(&mut self, nic: &mut Mlx5Nic) -> u32 {
        self.ok(nic, &input(Opcode::AllocTransportDomain, 0, 0x10), 0x10)
            .dword(0x08)
            & 0xFF_FFFF
    }

    /// Executes a command that creates an object; its number (dword 2, bits 23:0).
    pub fn create(&mut self, nic: &mut Mlx5Nic, m: &[u8]) -> u32 {
        self.ok(nic, m, 0x10).dword(0x08) & 0xFF_FFFF
    }

    /// Executes a command; its status and syndrome.
    pub fn status(&mut self, nic: &mut Mlx5Nic, m: &[u8]) -> (CommandStatus, u32) {
        match self.exec(nic, m, 0x10) {
            Ok(o) => (o.status, o.syndrome),
            Err(CmdError::Delivery(_)) | Err(CmdError::NotCompleted) => {
                (CommandStatus::InternalError, 0)
            }
        }
    }

    /// The WQ parameters of a fresh contiguous ring of 2^`log_size` entries of 2^`log_stride`
    /// bytes and a zeroed doorbell record.
    pub fn fresh_wq(&mut self, log_size: u8, log_stride: u8) -> WqParams {
        let bytes = 1usize << (log_size + log_stride);
        let pas = self.fresh_pages(bytes.div_ceil(4096));
        for pa in &pas {
            self.write(*pa, &[0u8; 4096]);
        }
        let dbr = self.fresh_pages(1).first().copied().unwrap_or(0);
        self.write(dbr, &[0u8; WQ_DB_RECORD_LEN]);
        WqParams {
            log_size,
            log_stride,
            pd: 0,
            uar: 0,
            cqn: 0,
            tisn: 0,
            pas,
            dbr,
            lkey: 0,
        }
    }

    /// Creates an SQ of 2^`log_size` WQE basic blocks and moves it to RDY.
    pub fn create_sq(&mut self, nic: &mut Mlx5Nic, p: &WqParams) -> DriverSq {
        let sqn = self.create(nic, &create_sq_input(p));
        self.ok(
            nic,
            &modify_sq_input(sqn, QueueState::Reset, QueueState::Ready),
            0x10,
        );
        DriverSq {
            sqn,
            log_size: p.log_size,
            ring: p.pas.first().copied().unwrap_or(0),
            dbr: p.dbr,
            uar: p.uar,
            pc: 0,
            lkey: p.lkey,
        }
    }

    /// Creates an RQ and moves it to RDY.
    pub fn create_rq(&mut self, nic: &mut Mlx5Nic, p: &WqParams) -> DriverRq {
        let rqn = self.create(nic, &create_rq_input(p));
        self.ok(
            nic,
            &modify_rq_input(rqn, QueueState::Reset, QueueState::Ready),
            0x10,
        );
        DriverRq {
            rqn,
            log_size: p.log_size,
            log_stride: p.log_stride,
            ring: p.pas.first().copied().unwrap_or(0),
            dbr: p.dbr,
            pc: 0,
            lkey: p.lkey,
        }
    }

    /// Steering that takes every frame to TIR `tirn`: a table at level 0, one group without
    /// criteria, one entry, set as the root. The table id.
    pub fn catch_all_steering(&mut self, nic: &mut Mlx5Nic, tirn: u32) -> u32 {
        let table = self.create(nic, &create_flow_table_input(0, 4));
        let group = self.create(nic, &create_flow_group_input(table, 0, 0, &[0; 0x40]));
        self.ok(
            nic,
            &set_fte_input(table, group, 0, &[0; 0x40], Some(tirn)),
            0x10,
        );
        self.ok(nic, &set_root_input(table), 0x10);
        table
    }

    /// On an initialized function: a UAR, PD, transport domain, a PA mkey over all memory, an EQ, two CQs of
    /// 2^`log_cq` CQEs, a TIS, an SQ of 2^`log_sq` WQE basic blocks and an RQ of 2^`log_rq`
    /// WQEs of one data segment (both ready), a direct TIR and catch-all steering.
    pub fn open_queues(&mut self, nic: &mut Mlx5Nic, log_cq: u8, log_sq: u8, log_rq: u8) -> Queues {
        let uar = self.alloc_uar(nic);
        let pd = self.alloc_pd(nic);
        let td = self.alloc_td(nic);
        let lkey = self.create(nic, &create_mkey_input(pd)) << 8;
        let eq = self.create_eq(nic, 4, uar, 0, &[]);
        let tx_cq = self.create_cq(nic, log_cq, uar, eq.eqn);
        let rx_cq = self.create_cq(nic, log_cq, uar, eq.eqn);
        let tisn = self.create(nic, &create_tis_input(td));
        let mut p = self.fresh_wq(log_sq, 6);
        (p.pd, p.uar, p.cqn, p.tisn, p.lkey) = (pd, uar, tx_cq.cqn, tisn, lkey);
        let sq = self.create_sq(nic, &p);
        let mut p = self.fresh_wq(log_rq, 4);
        (p.pd, p.cqn, p.lkey) = (pd, rx_cq.cqn, lkey);
        let rq = self.create_rq(nic, &p);
        let tirn = self.create(nic, &create_direct_tir_input(td, rq.rqn));
        let table = self.catch_all_steering(nic, tirn);
        Queues {
            uar,
            pd,
            td,
            lkey,
            eqn: eq.eqn,
            tx_cq,
            rx_cq,
            tisn,
            sq,
            rq,
            tirn,
            table,
        }
    }

    /// Writes `wqe` at the SQ's producer counter (block by block, wrapping) and moves the
    /// counter past it. The WQE's index and SQN are set here.
    pub fn post_wqe(&self, sq: &mut DriverSq, wqe: &SendWqeRepr) {
        let mut w = wqe.clone();
        w.ctrl.wqe_index = sq.pc;
        w.ctrl.sqn = sq.sqn;
        let mut bytes = vec![0u8; w.wqebb_count().max(1) * WQEBB_LEN];
        if w.emit(&mut bytes).is_err() {
            panic!("WQE does not fit its DS count: {w:?}");
        }
        self.post_raw_wqe(sq, &bytes);
    }

    /// Writes raw WQE bytes (whole blocks) at the producer counter and moves it past them.
    pub fn post_raw_wqe(&self, sq: &mut DriverSq, bytes: &[u8]) {
        for block in bytes.chunks(WQEBB_LEN) {
            let index = u64::from(sq.pc) & ((1 << sq.log_size) - 1);
            self.write(sq.ring + index * WQEBB_LEN as u64, block);
            sq.pc = sq.pc.wrapping_add(1);
        }
    }

    /// Rings the SQ: the send counter into the doorbell record, then the 8-byte doorbell
    /// (the head of the WQE at `last`) at the first doorbell register of its UAR page.
    pub fn ring_sq(&self, nic: &mut Mlx5Nic, sq: &DriverSq, last: u16) {
        self.write(sq.dbr + 4, &u32::from(sq.pc).to_be_bytes());
        let index = u64::from(last) & ((1 << sq.log_size) - 1);
        let mut head = [0u8; SEND_DOORBELL_LEN];
        self.read(sq.ring + index * WQEBB_LEN as u64, &mut head);
        self.sq_doorbell_raw(nic, sq.uar, &head);
    }

    /// Writes `data` at the first doorbell register of UAR page `uar`.
    pub fn sq_doorbell_raw(&self, nic: &mut Mlx5Nic, uar: u32, data: &[u8]) {
        let at = u64::from(uar) * UAR_PAGE_LEN + u64::from(BF_OFFSET);
        nic.bar_write(self.f, 0, at, data);
    }

    /// Posts and rings one SEND of `frame`: the first `inline` bytes inline in the Ethernet
    /// segment, the rest from a fresh buffer (one pointer), a CQE when `ce`. The WQE's counter.
    pub fn send(
        &mut self,
        nic: &mut Mlx5Nic,
        sq: &mut DriverSq,
        frame: &[u8],
        inline: usize,
        ce: bool,
    ) -> u16 {
        let inline = inline.min(frame.len());
        let mut data = Vec::new();
        if frame.len() > inline {
            let buf = self.fresh_pages(frame.len().div_ceil(4096));
            let at = buf.first().copied().unwrap_or(0);
            self.write(at, &frame[inline..]);
            data.push(SendDataSeg::Pointer(DataSegRepr {
                byte_count: (frame.len() - inline) as u32,
                lkey: sq.lkey,
                addr: Iova(at),
            }));
        }
        let wqe = send_wqe(&frame[..inline], data, ce);
        let counter = sq.pc;
        self.post_wqe(sq, &wqe);
        self.ring_sq(nic, sq, counter);
        counter
    }

    /// Posts `n` receive WQEs of one fresh [`RX_BUFFER_LEN`]-byte buffer each and writes the
    /// receive counter. The buffers' IOVAs in order.
    pub fn post_recv_buffers(&mut self, rq: &mut DriverRq, n: usize) -> Vec<u64> {
        let mut bufs = Vec::new();
        for _ in 0..n {
            let at = self.fresh_pages(1).first().copied().unwrap_or(0);
            self.post_recv(
                rq,
                &RecvWqeRepr {
                    segments: vec![DataSegRepr {
                        byte_count: RX_BUFFER_LEN,
                        lkey: rq.lkey,
                        addr: Iova(at),
                    }],
                },
            );
            bufs.push(at);
        }
        self.write_rq_record(rq);
        bufs
    }

    /// Writes one receive WQE at the RQ's producer counter and moves the counter (the record
    /// is written by [`CmdDriver::write_rq_record`]).
    pub fn post_recv(&self, rq: &mut DriverRq, wqe: &RecvWqeRepr) {
        let stride = 1usize << rq.log_stride;
        let mut bytes = vec![0u8; stride];
        if wqe.emit(&mut bytes).is_err() {
            panic!("receive WQE larger than the stride");
        }
        let index = u64::from(rq.pc) & ((1 << rq.log_size) - 1);
        self.write(rq.ring + index * stride as u64, &bytes);
        rq.pc = rq.pc.wrapping_add(1);
    }

    /// Writes the RQ's receive counter into its doorbell record.
    pub fn write_rq_record(&self, rq: &DriverRq) {
        self.write(rq.dbr, &u32::from(rq.pc).to_be_bytes());
    }

    /// MODIFY_SQ of `sqn` from `from` to `to`: the output.
    pub fn modify_sq(
        &mut self,
        nic: &mut Mlx5Nic,
        sqn: u32,
        from: QueueState,
        to: QueueState,
    ) -> Result<Output, CmdError> {
        self.exec(nic, &modify_sq_input(sqn, from, to), 0x10)
    }
}

/// A SEND WQE of `header` inline and `data` segments, a CQE when `ce` (its index and SQN are
/// set when posted).
pub fn send_wqe(header: &[u8], data: Vec<SendDataSeg>, ce: bool) -> SendWqeRepr {
    let mut w = SendWqeRepr {
        ctrl: CtrlSegRepr {
            opcode: SendOpcode::Send,
            ce: if ce {
                CqUpdate::Always
            } else {
                CqUpdate::OnError
            },
            ..CtrlSegRepr::default()
        },
        eth: Some(EthSegRepr {
            insert: EthInsert::InlineHeader(header.to_vec()),
            ..EthSegRepr::default()
        }),
        data,
    };
    w.ctrl.ds_count = w.required_ds() as u8;
    w
}

/// A broadcast frame of `len` bytes from `src` with EtherType 0x88B5 (local experimental) and
/// a payload counting from `seed`.
pub fn broadcast_frame(src: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0xFF; 6];
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xB5]);
    f.extend((0..len.saturating_sub(14)).map(|i| seed.wrapping_add(i as u8)));
    f
}

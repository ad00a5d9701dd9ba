//! Event, completion, send and receive queues: the CREATE/MODIFY/DESTROY commands and the
//! contexts they carry — `eqc`, `cqc`, `sqc`, `rqc` and the work-queue context `wq` the SQ
//! and RQ embed (Linux `mlx5_ifc.h`; values as `eq.c`, `en_main.c` and `en/params.c` set them).
//!
//! A queue's buffer is given as a list of page addresses (`pas`) right after the context; its
//! doorbell record by `dbr_addr`. States move RST → RDY → ERR with MODIFY_SQ/RQ, whose input
//! names the current state and whose context carries the new one.

use crate::cmd::Opcode;
use crate::commands::OUT_LEN_16;
use crate::eqe::EventType;
use crate::field::Field;
use crate::layout::{field_enum, layout, nested, tail_array};
use crate::wqe::InlineMode;

/// Offset of the page address list in CREATE_EQ, CREATE_CQ, CREATE_SQ and CREATE_RQ input.
pub const PAS_OFFSET: usize = 0x110;

/// Input length of a queue creation carrying `n` page addresses, `None` on overflow.
pub const fn create_in_len(n: usize) -> Option<usize> {
    match n.checked_mul(8) {
        Some(b) => b.checked_add(PAS_OFFSET),
        None => None,
    }
}

/// The number (eqn, cqn, sqn, rqn …) most CREATE outputs and DESTROY inputs carry: dword 2
/// bits 23:0.
pub const OBJECT_NUMBER: Field = Field::at(0x08, 23, 0);

// ---------------------------------------------------------------------------------------------
// EQ

/// EQ states (`eqc.st`).
pub mod eq_state {
    /// Armed: the next EQE raises the interrupt.
    pub const ARMED: u8 = 0x9;
    /// Fired: an interrupt was raised; no more until re-armed.
    pub const FIRED: u8 = 0xA;
    /// Always armed.
    pub const ALWAYS_ARMED: u8 = 0xB;
}

layout! {
    /// EQ context (64 bytes).
    pub struct EqContext(0x40) {
        /// Status: 0 OK, 0xA EQ write failure.
        status, set_status: u8 = Field::at(0x00, 31, 28);
        /// Event-queue collapse.
        ec, set_ec: bool = Field::at(0x00, 18, 18);
        /// Overrun ignore.
        oi, set_oi: bool = Field::at(0x00, 17, 17);
        /// State ([`eq_state`]).
        st, set_st: u8 = Field::at(0x00, 11, 8);
        /// Offset of the first EQE in the first page (in 64-byte units).
        page_offset, set_page_offset: u8 = Field::at(0x08, 11, 6);
        /// log2 of the number of EQEs.
        log_eq_size, set_log_eq_size: u8 = Field::at(0x0C, 28, 24);
        /// UAR page whose EQ doorbell arms this EQ.
        uar_page, set_uar_page: u32 = Field::at(0x0C, 23, 0);
        /// MSI-X vector.
        intr, set_intr: u16 = Field::at(0x14, 11, 0);
        /// Page size: 4 KiB << n.
        log_page_size, set_log_page_size: u8 = Field::at(0x18, 28, 24);
        /// Consumer counter.
        consumer_counter, set_consumer_counter: u32 = Field::at(0x28, 23, 0);
        /// Producer counter.
        producer_counter, set_producer_counter: u32 = Field::at(0x2C, 23, 0);
    }
}

/// Where the event bitmask sits in CREATE_EQ input: four 64-bit words; bit `t % 64` of word
/// `t / 64` subscribes event type `t` ([`EventType`]).
pub const EVENT_BITMASK_OFFSET: usize = 0x58;

layout! {
    /// CREATE_EQ input: context at 0x10, event bitmask at 0x58, pages at 0x110.
    input(Opcode::CreateEq) struct CreateEqIn(PAS_OFFSET) {
        /// Event bitmask word 0 (event types 0–63).
        event_bitmask_0, set_event_bitmask_0: u64 = Field::qword(0x58);
        /// Event bitmask word 1 (64–127).
        event_bitmask_1, set_event_bitmask_1: u64 = Field::qword(0x60);
        /// Event bitmask word 2 (128–191).
        event_bitmask_2, set_event_bitmask_2: u64 = Field::qword(0x68);
        /// Event bitmask word 3 (192–255).
        event_bitmask_3, set_event_bitmask_3: u64 = Field::qword(0x70);
    }
}
nested!(CreateEqIn, eq_context, eq_context_mut, EqContext, 0x10);
tail_array!(
    CreateEqIn,
    PAS_OFFSET,
    u64,
    8,
    pa,
    set_pa,
    pa_capacity,
    "the EQ's page addresses"
);

impl<T: AsRef<[u8]>> CreateEqIn<T> {
    /// True when `event_type` is subscribed.
    pub fn subscribes(&self, event_type: EventType) -> bool {
        let event_type = event_type.raw_value();
        let word = Field::qword(EVENT_BITMASK_OFFSET + 8 * usize::from(event_type / 64));
        word.get_or_zero(self.as_bytes()) & (1 << (event_type % 64)) != 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CreateEqIn<T> {
    /// Subscribes `event_type`.
    pub fn subscribe(&mut self, event_type: EventType) {
        let event_type = event_type.raw_value();
        let word = Field::qword(EVENT_BITMASK_OFFSET + 8 * usize::from(event_type / 64));
        let v = word.get_or_zero(self.as_bytes()) | (1 << (event_type % 64));
        let _inside = word.set(self.as_bytes_mut(), v);
    }
}

layout! {
    /// CREATE_EQ output.
    output struct CreateEqOut(OUT_LEN_16) {
        /// The new EQ's number.
        eq_number, set_eq_number: u8 = Field::at(0x08, 7, 0);
    }
}

layout! {
    /// DESTROY_EQ input.
    input(Opcode::DestroyEq) struct DestroyEqIn(0x10) {
        /// The EQ.
        eq_number, set_eq_number: u8 = Field::at(0x08, 7, 0);
    }
}

layout! {
    /// DESTROY_EQ output.
    output struct DestroyEqOut(OUT_LEN_16) {}
}

// ---------------------------------------------------------------------------------------------
// CQ

/// CQ states (`cqc.st`).
pub mod cq_state {
    /// Armed for solicited completions only.
    pub const SOLICITED_ARMED: u8 = 0x6;
    /// Armed: the next CQE generates an event.
    pub const ARMED: u8 = 0x9;
    /// Fired.
    pub const FIRED: u8 = 0xA;
}

/// `cqc.cqe_sz` values.
pub mod cqe_size {
    /// 64-byte CQEs.
    pub const BYTES_64: u8 = 0;
    /// 128-byte CQEs.
    pub const BYTES_128: u8 = 1;
}

layout! {
    /// CQ context (64 bytes).
    pub struct CqContext(0x40) {
        /// Status: 0 OK, 9 CQ overflow, 0xA write failure.
        status, set_status: u8 = Field::at(0x00, 31, 28);
        /// CQE size ([`cqe_size`]).
        cqe_sz, set_cqe_sz: u8 = Field::at(0x00, 23, 21);
        /// Collapsed CQ: every CQE is written to entry 0.
        cc, set_cc: bool = Field::at(0x00, 20, 20);
        /// Solicited CQEs break moderation.
        scqe_break_moderation_en, set_scqe_break_moderation_en: bool = Field::at(0x00, 18, 18);
        /// Overrun ignore.
        oi, set_oi: bool = Field::at(0x00, 17, 17);
        /// Moderation period mode: 0 from the event, 1 from the CQE.
        cq_period_mode, set_cq_period_mode: u8 = Field::at(0x00, 16, 15);
        /// CQE compression enabled (the model advertises none).
        cqe_comp_en, set_cqe_comp_en: bool = Field::at(0x00, 14, 14);
        /// Mini-CQE format.
        mini_cqe_res_format, set_mini_cqe_res_format: u8 = Field::at(0x00, 13, 12);
        /// State ([`cq_state`]).
        st, set_st: u8 = Field::at(0x00, 11, 8);
        /// Offset of the first CQE in the first page.
        page_offset, set_page_offset: u8 = Field::at(0x08, 11, 6);
        /// CQE timestamp format.
        cq_timestamp_format, set_cq_timestamp_format: u8 = Field::at(0x08, 1, 0);
        /// log2 of the number of CQEs.
        log_cq_size, set_log_cq_size: u8 = Field::at(0x0C, 28, 24);
        /// UAR page whose CQ doorbell arms this CQ.
        uar_page, set_uar_page: u32 = Field::at(0x0C, 23, 0);
        /// Moderation period (µs).
        cq_period, set_cq_period: u16 = Field::at(0x10, 27, 16);
        /// Moderation count.
        cq_max_count, set_cq_max_count: u16 = Field::at(0x10, 15, 0);
        /// The EQ completion events go to.
        c_eqn, set_c_eqn: u32 = Field::dword(0x14);
        /// Page size: 4 KiB << n.
        log_page_size, set_log_page_size: u8 = Field::at(0x18, 28, 24);
        /// Last index an event was generated for.
        last_notified_index, set_last_notified_index: u32 = Field::at(0x20, 23, 0);
        /// Last solicited index.
        last_solicit_index, set_last_solicit_index: u32 = Field::at(0x24, 23, 0);
        /// Consumer counter.
        consumer_counter, set_consumer_counter: u32 = Field::at(0x28, 23, 0);
        /// Producer counter.
        producer_counter, set_producer_counter: u32 = Field::at(0x2C, 23, 0);
        /// Address of the CQ's doorbell record.
        dbr_addr, set_dbr_addr: u64 = Field::qword(0x38);
    }
}

layout! {
    /// CREATE_CQ input: context at 0x10, pages at 0x110.
    input(Opcode::CreateCq) struct CreateCqIn(PAS_OFFSET) {}
}
nested!(CreateCqIn, cq_context, cq_context_mut, CqContext, 0x10);
tail_array!(
    CreateCqIn,
    PAS_OFFSET,
    u64,
    8,
    pa,
    set_pa,
    pa_capacity,
    "the CQ's page addresses"
);

layout! {
    /// CREATE_CQ output.
    output struct CreateCqOut(OUT_LEN_16) {
        /// The new CQ's number.
        cqn, set_cqn: u32 = OBJECT_NUMBER;
    }
}

/// MODIFY_CQ op_mod.
pub mod modify_cq_op {
    /// Modify attributes (moderation) per the field select.
    pub const MODIFY: u16 = 0;
    /// Resize.
    pub const RESIZE: u16 = 1;
}

/// MODIFY_CQ field-select bits (op_mod [`modify_cq_op::MODIFY`]).
pub mod modify_cq_select {
    /// `cq_period`.
    pub const PERIOD: u32 = 1 << 0;
    /// `cq_max_count`.
    pub const COUNT: u32 = 1 << 1;
}

layout! {
    /// MODIFY_CQ input: context at 0x10 (pages at 0x110 for a resize).
    input(Opcode::ModifyCq) struct ModifyCqIn(PAS_OFFSET) {
        /// The CQ.
        cqn, set_cqn: u32 = OBJECT_NUMBER;
        /// Which context fields to apply ([`modify_cq_select`]).
        field_select, set_field_select: u32 = Field::dword(0x0C);
    }
}
nested!(ModifyCqIn, cq_context, cq_context_mut, CqContext, 0x10);

layout! {
    /// MODIFY_CQ output.
    output struct ModifyCqOut(OUT_LEN_16) {}
}

layout! {
    /// DESTROY_CQ input.
    input(Opcode::DestroyCq) struct DestroyCqIn(0x10) {
        /// The CQ.
        cqn, set_cqn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DESTROY_CQ output.
    output struct DestroyCqOut(OUT_LEN_16) {}
}

// ---------------------------------------------------------------------------------------------
// Work queues (SQ, RQ)

field_enum! {
    /// State of an SQ or RQ.
    pub enum QueueState: u8 {
        /// 0: reset; created in this state.
        Reset = 0,
        /// 1: ready.
        Ready = 1,
        /// 3: error.
        Error = 3,
    }
}

/// `wq.wq_type` values.
pub mod wq_type {
    /// Linked list.
    pub const LINKED_LIST: u8 = 0;
    /// Cyclic: the only type the model implements.
    pub const CYCLIC: u8 = 1;
    /// Linked-list striding RQ.
    pub const LINKED_LIST_STRIDING: u8 = 2;
    /// Cyclic striding RQ.
    pub const CYCLIC_STRIDING: u8 = 3;
}

/// Bytes of the work-queue context.
pub const WQ_LEN: usize = 0xC0;

layout! {
    /// Work-queue context (192 bytes), embedded in the SQ and RQ contexts at 0x30.
    pub struct WqContext(WQ_LEN) {
        /// Type ([`wq_type`]).
        wq_type, set_wq_type: u8 = Field::at(0x00, 31, 28);
        /// WQE signatures.
        wq_signature, set_wq_signature: bool = Field::at(0x00, 27, 27);
        /// End padding of received packets: 0 none, 1 to 64 bytes.
        end_padding_mode, set_end_padding_mode: u8 = Field::at(0x00, 26, 25);
        /// Completion-on-demand slave.
        cd_slave, set_cd_slave: bool = Field::at(0x00, 24, 24);
        /// Offset of the first WQE in the first page.
        page_offset, set_page_offset: u8 = Field::at(0x04, 20, 16);
        /// Low watermark.
        lwm, set_lwm: u16 = Field::at(0x04, 15, 0);
        /// Protection domain.
        pd, set_pd: u32 = Field::at(0x08, 23, 0);
        /// UAR page of the queue's doorbell.
        uar_page, set_uar_page: u32 = Field::at(0x0C, 23, 0);
        /// Address of the doorbell record.
        dbr_addr, set_dbr_addr: u64 = Field::qword(0x10);
        /// Hardware counter.
        hw_counter, set_hw_counter: u32 = Field::dword(0x18);
        /// Software counter.
        sw_counter, set_sw_counter: u32 = Field::dword(0x1C);
        /// log2 of the WQE stride (SQ: 64-byte WQEBBs, RQ: the receive WQE size).
        log_wq_stride, set_log_wq_stride: u8 = Field::at(0x20, 19, 16);
        /// Page size: 4 KiB << n.
        log_wq_pg_sz, set_log_wq_pg_sz: u8 = Field::at(0x20, 12, 8);
        /// log2 of the number of WQEs.
        log_wq_sz, set_log_wq_sz: u8 = Field::at(0x20, 4, 0);
    }
}

/// Bytes of the SQ and RQ contexts (the WQ context included).
pub const SQ_RQ_CONTEXT_LEN: usize = 0xF0;
/// Where the WQ sits in the SQ and RQ contexts.
pub const WQ_OFFSET: usize = 0x30;

layout! {
    /// SQ context (240 bytes, WQ at 0x30).
    pub struct SqContext(SQ_RQ_CONTEXT_LEN) {
        /// Reserved lkey enabled.
        rlky, set_rlky: bool = Field::at(0x00, 31, 31);
        /// Completion-on-demand master.
        cd_master, set_cd_master: bool = Field::at(0x00, 30, 30);
        /// Fast register enabled.
        fre, set_fre: bool = Field::at(0x00, 29, 29);
        /// Flush WQEs with errors when the SQ enters ERR.
        flush_in_error_en, set_flush_in_error_en: bool = Field::at(0x00, 28, 28);
        /// Multi-packet send WQEs allowed.
        allow_multi_pkt_send_wqe, set_allow_multi_pkt_send_wqe: bool = Field::at(0x00, 27, 27);
        /// Minimum inline header mode (with eth.wqe_inline_mode = 1).
        min_wqe_inline_mode, set_min_wqe_inline_mode: InlineMode = Field::at(0x00, 26, 24);
        /// State ([`QueueState`]).
        raw_state, set_raw_state: u8 = Field::at(0x00, 23, 20);
        /// UMR WQEs allowed.
        reg_umr, set_reg_umr: bool = Field::at(0x00, 19, 19);
        /// Software parser offsets allowed.
        allow_swp, set_allow_swp: bool = Field::at(0x00, 18, 18);
        /// Hairpin SQ.
        hairpin, set_hairpin: bool = Field::at(0x00, 17, 17);
        /// Timestamp format.
        ts_format, set_ts_format: u8 = Field::at(0x00, 5, 4);
        /// User index.
        user_index, set_user_index: u32 = Field::at(0x04, 23, 0);
        /// The CQ send completions go to.
        cqn, set_cqn: u32 = Field::at(0x08, 23, 0);
        /// Packet pacing rate-limit index (0: none).
        packet_pacing_rate_limit_index, set_packet_pacing_rate_limit_index: u16 = Field::at(0x1C, 15, 0);
        /// Number of TISes listed (1).
        tis_lst_sz, set_tis_lst_sz: u16 = Field::at(0x20, 31, 16);
        /// The TIS.
        tis_num_0, set_tis_num_0: u32 = Field::at(0x2C, 23, 0);
    }
}
nested!(SqContext, wq, wq_mut, WqContext, WQ_OFFSET);

impl<T: AsRef<[u8]>> SqContext<T> {
    /// The state, decoded.
    pub fn state(&self) -> QueueState {
        QueueState::from(self.raw_state())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SqContext<T> {
    /// Sets the state.
    pub fn set_state(&mut self, s: QueueState) {
        self.set_raw_state(u8::from(s));
    }
}

/// `rqc.mem_rq_type` values.
pub mod mem_rq_type {
    /// The RQ's buffer is in host memory (inline).
    pub const INLINE: u8 = 0;
    /// The RQ uses a shared receive memory pool.
    pub const RMP: u8 = 1;
}

layout! {
    /// RQ context (240 bytes, WQ at 0x30).
    pub struct RqContext(SQ_RQ_CONTEXT_LEN) {
        /// Reserved lkey enabled.
        rlky, set_rlky: bool = Field::at(0x00, 31, 31);
        /// Delay drop.
        delay_drop_en, set_delay_drop_en: bool = Field::at(0x00, 30, 30);
        /// Keep the FCS in received packets.
        scatter_fcs, set_scatter_fcs: bool = Field::at(0x00, 29, 29);
        /// VLAN strip disable (0: the device strips the tag into the CQE).
        vsd, set_vsd: bool = Field::at(0x00, 28, 28);
        /// Memory type ([`mem_rq_type`]).
        mem_rq_type, set_mem_rq_type: u8 = Field::at(0x00, 27, 24);
        /// State ([`QueueState`]).
        raw_state, set_raw_state: u8 = Field::at(0x00, 23, 20);
        /// Flush WQEs with errors when the RQ enters ERR.
        flush_in_error_en, set_flush_in_error_en: bool = Field::at(0x00, 18, 18);
        /// Hairpin RQ.
        hairpin, set_hairpin: bool = Field::at(0x00, 17, 17);
        /// Timestamp format.
        ts_format, set_ts_format: u8 = Field::at(0x00, 5, 4);
        /// User index.
        user_index, set_user_index: u32 = Field::at(0x04, 23, 0);
        /// The CQ receive completions go to.
        cqn, set_cqn: u32 = Field::at(0x08, 23, 0);
        /// Queue counter set that counts this RQ's drops.
        counter_set_id, set_counter_set_id: u8 = Field::at(0x0C, 31, 24);
        /// Shared receive memory pool (mem_rq_type RMP).
        rmpn, set_rmpn: u32 = Field::at(0x10, 23, 0);
    }
}
nested!(RqContext, wq, wq_mut, WqContext, WQ_OFFSET);

impl<T: AsRef<[u8]>> RqContext<T> {
    /// The state, decoded.
    pub fn state(&self) -> QueueState {
        QueueState::from(self.raw_state())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RqContext<T> {
    /// Sets the state.
    pub fn set_state(&mut self, s: QueueState) {
        self.set_raw_state(u8::from(s));
    }
}

/// Where the SQ/RQ context sits in CREATE/MODIFY_SQ/RQ input.
pub const SQ_RQ_CONTEXT_OFFSET: usize = 0x20;

layout! {
    /// CREATE_SQ input: context at 0x20 (its WQ at 0x50), pages at 0x110.
    input(Opcode::CreateSq) struct CreateSqIn(PAS_OFFSET) {}
}
nested!(
    CreateSqIn,
    sq_context,
    sq_context_mut,
    SqContext,
    SQ_RQ_CONTEXT_OFFSET
);
tail_array!(
    CreateSqIn,
    PAS_OFFSET,
    u64,
    8,
    pa,
    set_pa,
    pa_capacity,
    "the SQ's page addresses"
);

layout! {
    /// CREATE_SQ output.
    output struct CreateSqOut(OUT_LEN_16) {
        /// The new SQ's number.
        sqn, set_sqn: u32 = OBJECT_NUMBER;
    }
}

/// MODIFY_SQ / MODIFY_RQ bitmask bits (which context fields besides the state to apply).
pub mod modify_bitmask {
    /// SQ: packet pacing rate-limit index.
    pub const SQ_RATE_LIMIT: u64 = 1 << 0;
    /// RQ: VLAN strip disable.
    pub const RQ_VSD: u64 = 1 << 1;
    /// RQ: counter set id.
    pub const RQ_COUNTER_SET_ID: u64 = 1 << 3;
}

layout! {
    /// MODIFY_SQ input: current state in dword 2, new state in the context.
    input(Opcode::ModifySq) struct ModifySqIn(PAS_OFFSET) {
        /// The state the SQ is in now ([`QueueState`]).
        sq_state, set_sq_state: u8 = Field::at(0x08, 31, 28);
        /// The SQ.
        sqn, set_sqn: u32 = OBJECT_NUMBER;
        /// Fields to apply besides the state ([`modify_bitmask`]).
        modify_bitmask, set_modify_bitmask: u64 = Field::qword(0x10);
    }
}
nested!(
    ModifySqIn,
    sq_context,
    sq_context_mut,
    SqContext,
    SQ_RQ_CONTEXT_OFFSET
);

layout! {
    /// MODIFY_SQ output.
    output struct ModifySqOut(OUT_LEN_16) {}
}

layout! {
    /// DESTROY_SQ input.
    input(Opcode::DestroySq) struct DestroySqIn(0x10) {
        /// The SQ.
        sqn, set_sqn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DESTROY_SQ output.
    output struct DestroySqOut(OUT_LEN_16) {}
}

layout! {
    /// CREATE_RQ input: context at 0x20 (its WQ at 0x50), pages at 0x110.
    input(Opcode::CreateRq) struct CreateRqIn(PAS_OFFSET) {}
}
nested!(
    CreateRqIn,
    rq_context,
    rq_context_mut,
    RqContext,
    SQ_RQ_CONTEXT_OFFSET
);
tail_array!(
    CreateRqIn,
    PAS_OFFSET,
    u64,
    8,
    pa,
    set_pa,
    pa_capacity,
    "the RQ's page addresses"
);

layout! {
    /// CREATE_RQ output.
    output struct CreateRqOut(OUT_LEN_16) {
        /// The new RQ's number.
        rqn, set_rqn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// MODIFY_RQ input: current state in dword 2, new state in the context.
    input(Opcode::ModifyRq) struct ModifyRqIn(PAS_OFFSET) {
        /// The state the RQ is in now ([`QueueState`]).
        rq_state, set_rq_state: u8 = Field::at(0x08, 31, 28);
        /// The RQ.
        rqn, set_rqn: u32 = OBJECT_NUMBER;
        /// Fields to apply besides the state ([`modify_bitmask`]).
        modify_bitmask, set_modify_bitmask: u64 = Field::qword(0x10);
    }
}
nested!(
    ModifyRqIn,
    rq_context,
    rq_context_mut,
    RqContext,
    SQ_RQ_CONTEXT_OFFSET
);

layout! {
    /// MODIFY_RQ output.
    output struct ModifyRqOut(OUT_LEN_16) {}
}

layout! {
    /// DESTROY_RQ input.
    input(Opcode::DestroyRq) struct DestroyRqIn(0x10) {
        /// The RQ.
        rqn, set_rqn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DESTROY_RQ output.
    output struct DestroyRqOut(OUT_LEN_16) {}
}

// ---------------------------------------------------------------------------------------------
// Queries (drivers read a queue's state back, e.g. in TX timeout recovery)

layout! {
    /// QUERY_EQ input.
    input(Opcode::QueryEq) struct QueryEqIn(0x10) {
        /// The EQ.
        eq_number, set_eq_number: u8 = Field::at(0x08, 7, 0);
    }
}

layout! {
    /// QUERY_EQ output: the context at 0x10.
    output struct QueryEqOut(0x50) {}
}
nested!(QueryEqOut, eq_context, eq_context_mut, EqContext, 0x10);

layout! {
    /// QUERY_CQ input.
    input(Opcode::QueryCq) struct QueryCqIn(0x10) {
        /// The CQ.
        cqn, set_cqn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// QUERY_CQ output: the context at 0x10.
    output struct QueryCqOut(0x50) {}
}
nested!(QueryCqOut, cq_context, cq_context_mut, CqContext, 0x10);

layout! {
    /// QUERY_SQ input.
    input(Opcode::QuerySq) struct QuerySqIn(0x10) {
        /// The SQ.
        sqn, set_sqn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// QUERY_SQ output: the context at 0x20.
    output struct QuerySqOut(SQ_RQ_CONTEXT_OFFSET + SQ_RQ_CONTEXT_LEN) {}
}
nested!(
    QuerySqOut,
    sq_context,
    sq_context_mut,
    SqContext,
    SQ_RQ_CONTEXT_OFFSET
);

layout! {
    /// QUERY_RQ input.
    input(Opcode::QueryRq) struct QueryRqIn(0x10) {
        /// The RQ.
        rqn, set_rqn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// QUERY_RQ output: the context at 0x20.
    output struct QueryRqOut(SQ_RQ_CONTEXT_OFFSET + SQ_RQ_CONTEXT_LEN) {}
}
nested!(
    QueryRqOut,
    rq_context,
    rq_context_mut,
    RqContext,
    SQ_RQ_CONTEXT_OFFSET
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cmd::CommandStatus;

    #[test]
    fn create_eq_as_linux_builds_the_command_eq() {
        // A command EQ as Linux creates it: 2^8 EQEs (4 pages), UAR 0x10, vector 0, events
        // 0x0A (command completion) and 0x0B (page request).
        let len = create_in_len(4).unwrap();
        assert_eq!(len, 0x130);
        let mut b = vec![0u8; len];
        let mut c = CreateEqIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        {
            let mut e = c.eq_context_mut();
            e.set_log_eq_size(8);
            e.set_uar_page(0x10);
            e.set_intr(0);
            e.set_log_page_size(0);
        }
        c.subscribe(EventType::from(0x0A));
        c.subscribe(EventType::from(0x0B));
        c.subscribe(EventType::from(200));
        for i in 0..4 {
            assert!(c.set_pa(i, 0x8000_0000 + 0x1000 * i as u64));
        }
        assert_eq!(&b[0..2], &[0x03, 0x01]);
        assert_eq!(
            &b[0x1C..0x20],
            &[0x08, 0, 0, 0x10],
            "eqc dw3: log_eq_size, uar_page"
        );
        assert_eq!(
            &b[0x58..0x60],
            &[0, 0, 0, 0, 0, 0, 0x0C, 0x00],
            "events 0x0A, 0x0B"
        );
        assert_eq!(b[0x70 + 6], 0x01, "event 200: word 3, bit 8");
        assert_eq!(&b[0x118..0x120], &[0, 0, 0, 0, 0x80, 0, 0x10, 0]);
        let c = CreateEqIn::new_checked(&b[..]).unwrap();
        assert!(
            c.subscribes(EventType::from(0x0A))
                && c.subscribes(EventType::from(0x0B))
                && c.subscribes(EventType::from(200))
        );
        assert!(!c.subscribes(EventType::from(0x01)));
        assert_eq!(c.eq_context().log_eq_size(), 8);
        assert_eq!(c.eq_context().uar_page(), 0x10);
        assert_eq!(c.pa_capacity(), 4);
        assert_eq!(c.pa(4), None);
        // SN trace: CREATE_EQ inlen 0x118 = one page.
        assert_eq!(create_in_len(1), Some(0x118));
    }

    #[test]
    fn eq_context_offsets() {
        let mut b = [0u8; 0x40];
        let mut e = EqContext::new_checked(&mut b[..]).unwrap();
        e.set_st(eq_state::ARMED);
        e.set_oi(true);
        e.set_intr(0xABC);
        e.set_consumer_counter(0x12_3456);
        e.set_producer_counter(0xFF_FFFF);
        assert_eq!(&b[0..4], &[0x00, 0x02, 0x09, 0x00]);
        assert_eq!(&b[0x14..0x18], &[0, 0, 0x0A, 0xBC]);
        assert_eq!(&b[0x28..0x30], &[0, 0x12, 0x34, 0x56, 0, 0xFF, 0xFF, 0xFF]);
        let mut o = [0u8; 16];
        let mut out = CreateEqOut::new_checked(&mut o[..]).unwrap();
        out.set_eq_number(0x10);
        out.set_status(CommandStatus::Ok);
        assert_eq!(o[0x0B], 0x10);
    }

    #[test]
    fn cq_context_offsets_and_round_trip() {
        let mut b = vec![0u8; create_in_len(1).unwrap()];
        let mut c = CreateCqIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        {
            let mut q = c.cq_context_mut();
            q.set_cqe_sz(cqe_size::BYTES_64);
            q.set_log_cq_size(10);
            q.set_uar_page(0x11);
            q.set_cq_period(0x10);
            q.set_cq_max_count(0x40);
            q.set_c_eqn(0x14);
            q.set_dbr_addr(0x0000_0001_2345_6780);
            q.set_cq_period_mode(1);
        }
        assert!(c.set_pa(0, 0x4000_0000));
        // cqc at 0x10: dw0 at 0x10, dw3 at 0x1C, dw4 at 0x20, dw5 at 0x24, dbr at 0x48.
        assert_eq!(
            &b[0x10..0x14],
            &[0x00, 0x00, 0x80, 0x00],
            "cq_period_mode 1 at bits 16:15"
        );
        assert_eq!(&b[0x1C..0x20], &[0x0A, 0, 0, 0x11]);
        assert_eq!(&b[0x20..0x24], &[0x00, 0x10, 0x00, 0x40]);
        assert_eq!(&b[0x24..0x28], &[0, 0, 0, 0x14]);
        assert_eq!(&b[0x48..0x50], &[0, 0, 0, 1, 0x23, 0x45, 0x67, 0x80]);
        assert_eq!(&b[0x110..0x118], &[0, 0, 0, 0, 0x40, 0, 0, 0]);
        let c = CreateCqIn::new_checked(&b[..]).unwrap();
        let q = c.cq_context();
        assert_eq!(
            (
                q.log_cq_size(),
                q.uar_page(),
                q.c_eqn(),
                q.dbr_addr(),
                q.cq_max_count()
            ),
            (10, 0x11, 0x14, 0x1_2345_6780, 0x40)
        );
        assert!(CreateCqIn::new_checked(&b[..0x10F]).is_err());
    }

    #[test]
    fn sq_create_and_modify_rst_to_rdy() {
        let mut b = vec![0u8; create_in_len(2).unwrap()];
        let mut c = CreateSqIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        {
            let mut s = c.sq_context_mut();
            s.set_flush_in_error_en(true);
            s.set_state(QueueState::Reset);
            s.set_cqn(0x42);
            s.set_tis_lst_sz(1);
            s.set_tis_num_0(0x77);
            let mut w = s.wq_mut();
            w.set_wq_type(wq_type::CYCLIC);
            w.set_pd(0x5);
            w.set_uar_page(0x12);
            w.set_dbr_addr(0xDEAD_BEE0);
            w.set_log_wq_stride(6);
            w.set_log_wq_pg_sz(0);
            w.set_log_wq_sz(10);
        }
        // sqc at 0x20; wq at 0x50; pas at 0x110.
        assert_eq!(&b[0x20..0x24], &[0x10, 0, 0, 0], "flush_in_error_en");
        assert_eq!(&b[0x28..0x2C], &[0, 0, 0, 0x42]);
        assert_eq!(&b[0x40..0x44], &[0, 1, 0, 0], "tis_lst_sz");
        assert_eq!(&b[0x4C..0x50], &[0, 0, 0, 0x77], "tis_num_0");
        assert_eq!(b[0x50], 0x10, "wq_type cyclic");
        assert_eq!(&b[0x58..0x60], &[0, 0, 0, 5, 0, 0, 0, 0x12]);
        assert_eq!(&b[0x60..0x68], &[0, 0, 0, 0, 0xDE, 0xAD, 0xBE, 0xE0]);
        assert_eq!(&b[0x70..0x74], &[0, 0x06, 0x00, 0x0A]);
        let c = CreateSqIn::new_checked(&b[..]).unwrap();
        assert_eq!(c.sq_context().wq().log_wq_sz(), 10);
        assert_eq!(c.sq_context().state(), QueueState::Reset);

        let mut m = vec![0u8; PAS_OFFSET];
        let mut v = ModifySqIn::new_checked(&mut m[..]).unwrap();
        v.set_header(0);
        v.set_sq_state(u8::from(QueueState::Reset));
        v.set_sqn(0x99);
        v.sq_context_mut().set_state(QueueState::Ready);
        assert_eq!(
            &m[..0x0C],
            &[0x09, 0x05, 0, 0, 0, 0, 0, 0, 0x00, 0, 0, 0x99]
        );
        assert_eq!(m[0x20], 0x00);
        assert_eq!(m[0x21], 0x10, "new state RDY in sqc bits 23:20");
        let v = ModifySqIn::new_checked(&m[..]).unwrap();
        assert_eq!(QueueState::from(v.sq_state()), QueueState::Reset);
        assert_eq!(v.sq_context().state(), QueueState::Ready);
    }

    #[test]
    fn rq_context_offsets() {
        let mut b = vec![0u8; create_in_len(1).unwrap()];
        let mut c = CreateRqIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        {
            let mut r = c.rq_context_mut();
            r.set_vsd(true);
            r.set_state(QueueState::Error);
            r.set_cqn(0x43);
            r.set_counter_set_id(2);
            r.wq_mut().set_log_wq_stride(4);
        }
        assert_eq!(&b[0..2], &[0x09, 0x08]);
        assert_eq!(&b[0x20..0x24], &[0x10, 0x30, 0, 0], "vsd, state ERR");
        assert_eq!(&b[0x28..0x2C], &[0, 0, 0, 0x43]);
        assert_eq!(b[0x2C], 2);
        assert_eq!(b[0x71], 0x04);
        let mut m = vec![0u8; PAS_OFFSET];
        let mut v = ModifyRqIn::new_checked(&mut m[..]).unwrap();
        v.set_rq_state(u8::from(QueueState::Ready));
        v.set_rqn(7);
        v.set_modify_bitmask(modify_bitmask::RQ_VSD);
        assert_eq!(
            &m[8..0x18],
            &[0x10, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
        );
        for v in 0..16u8 {
            assert_eq!(u8::from(QueueState::from(v)), v);
        }
        assert_eq!(QueueState::from(2), QueueState::Unknown(2));
    }

    #[test]
    fn query_outputs_carry_the_contexts() {
        let mut b = [0u8; 0x110];
        QuerySqOut::new_checked(&mut b[..])
            .unwrap()
            .sq_context_mut()
            .set_state(QueueState::Error);
        assert_eq!(b[0x21], 0x30, "sqc at 0x20, state ERR");
        let mut b = [0u8; 0x50];
        QueryCqOut::new_checked(&mut b[..])
            .unwrap()
            .cq_context_mut()
            .set_st(cq_state::ARMED);
        assert_eq!(b[0x12], 0x09);
        let mut b = [0u8; 0x10];
        let mut q = QueryRqIn::new_checked(&mut b[..]).unwrap();
        q.set_header(0);
        q.set_rqn(5);
        assert_eq!(b[..0x0C], [0x09, 0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
    }

    #[test]
    fn destroy_inputs() {
        let mut b = [0u8; 16];
        let mut d = DestroyCqIn::new_checked(&mut b[..]).unwrap();
        d.set_header(0);
        d.set_cqn(0xFF_FFFF);
        assert_eq!(
            b,
            [
                0x04, 0x01, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0
            ]
        );
        let mut b = [0u8; 16];
        let mut d = DestroySqIn::new_checked(&mut b[..]).unwrap();
        d.set_header(0);
        d.set_sqn(0x0100_0001);
        assert_eq!(
            &b[..0x0C],
            &[0x09, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            "truncated to 24 bits"
        );
        let mut b = [0u8; 16];
        DestroyRqIn::new_checked(&mut b[..]).unwrap().set_header(0);
        assert_eq!(&b[..2], &[0x09, 0x0A]);
        let mut b = [0u8; 16];
        let mut d = DestroyEqIn::new_checked(&mut b[..]).unwrap();
        d.set_header(0);
        d.set_eq_number(0x11);
        assert_eq!(&b[..0x0C], &[0x03, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11]);
    }
}

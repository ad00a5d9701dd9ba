//! CREATE/DESTROY_TIS and CREATE/MODIFY/QUERY/DESTROY_SQ and _RQ (the state: `crate::wq`).

use adapter_core::memory::Iommu;
use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::queues::{
    CreateRqIn, CreateRqOut, CreateSqIn, CreateSqOut, DestroyRqIn, DestroyRqOut, DestroySqIn,
    DestroySqOut, ModifyRqIn, ModifyRqOut, ModifySqIn, ModifySqOut, QueryRqIn, QueryRqOut,
    QuerySqIn, QuerySqOut, QueueState, WqContext, mem_rq_type, modify_bitmask, wq_type,
};
use mlx5_hw::commands::rx::{
    CreateTisIn, CreateTisOut, DestroyTisIn, DestroyTisOut, ModifyTisIn, ModifyTisOut, QueryTisIn,
    QueryTisOut, modify_tis_bitmask,
};
use mlx5_hw::uar::WQ_DB_RECORD_LEN;

use super::{
    Ctx, FunctionState, Refusal, Result, need_initialized, no_op_mod, reachable, refuse,
    ring_pages, short_in, short_out, syndrome,
};
use crate::wq::*;

/// `(log_max_sq, log_max_rq, log_max_tis, log_max_wq_sz, max_wqe_sz_rq)` of the current caps.
struct Limits {
    max_sqs: usize,
    max_rqs: usize,
    max_tises: usize,
    log_max_wq_sz: u8,
    max_rq_stride: u32,
}

fn limits(st: &FunctionState) -> Limits {
    let cap = |log: u8| (1usize << log.min(24)).min(MAX_OBJECTS);
    GeneralCaps::new_checked(&st.general_cur[..]).map_or(
        Limits {
            max_sqs: 0,
            max_rqs: 0,
            max_tises: 0,
            log_max_wq_sz: 0,
            max_rq_stride: 0,
        },
        |g| Limits {
            max_sqs: cap(g.log_max_sq()),
            max_rqs: cap(g.log_max_rq()),
            max_tises: cap(g.log_max_tis()),
            log_max_wq_sz: g.log_max_wq_sz(),
            max_rq_stride: u32::from(g.max_wqe_sz_rq()),
        },
    )
}

/// The lowest free number from `first` among `max` of `map`.
pub(crate) fn free_number<V>(
    map: &std::collections::BTreeMap<u32, V>,
    first: u32,
    max: usize,
) -> Result<u32> {
    (0..max)
        .filter_map(|k| u32::try_from(k).ok())
        .map(|k| first + k)
        .find(|n| !map.contains_key(n))
        .ok_or(Refusal(CommandStatus::NoResources, syndrome::NO_OBJECTS))
}

fn unsupported<T>() -> Result<T> {
    refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_QUEUE_FEATURE)
}

/// CREATE_TIS.
pub(crate) fn create_tis(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateTisIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateTisOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let c = i.tis_context();
    if c.tls_en() || c.underlay_qpn() != 0 {
        return unsupported();
    }
    let td = c.transport_domain();
    if !st.transport_domains.contains(&td) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_TD);
    }
    let tisn = free_number(&st.tises, FIRST_TISN, limits(st).max_tises)?;
    st.tises.insert(
        tisn,
        TisState {
            transport_domain: td,
            prio: c.prio(),
        },
    );
    o.set_tisn(tisn);
    Ok(())
}

/// MODIFY_TIS: the priority (stored); LAG port affinity (one port, no LAG) BAD_PARAM.
pub(crate) fn modify_tis(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ModifyTisIn::new_checked(input).map_err(short_in)?;
    ModifyTisOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let bits = i.modify_bitmask();
    let lag =
        modify_tis_bitmask::STRICT_LAG_TX_PORT_AFFINITY | modify_tis_bitmask::LAG_TX_PORT_AFFINITY;
    if bits & lag != 0 {
        return unsupported();
    }
    if bits & !modify_tis_bitmask::PRIO != 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FIELD_SELECT);
    }
    let Some(tis) = st.tises.get_mut(&i.tisn()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    if bits & modify_tis_bitmask::PRIO != 0 {
        tis.prio = i.tis_context().prio();
    }
    Ok(())
}

/// QUERY_TIS: transport domain and priority.
pub(crate) fn query_tis(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryTisIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryTisOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let Some(tis) = st.tises.get(&i.tisn()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let mut c = o.tis_context_mut();
    c.set_transport_domain(tis.transport_domain);
    c.set_prio(tis.prio);
    Ok(())
}

/// DESTROY_TIS: not while an SQ sends through it.
pub(crate) fn destroy_tis(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyTisIn::new_checked(input).map_err(short_in)?;
    DestroyTisOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let tisn = i.tisn();
    if !st.tises.contains_key(&tisn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    if st.sqs.values().any(|q| q.tisn == tisn) {
        return refuse(CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    }
    st.tises.remove(&tisn);
    Ok(())
}

fn wq_fault(ctx: &Ctx) -> Refusal {
    ctx.wq_buffer_faults.set(ctx.wq_buffer_faults.get() + 1);
    Refusal(CommandStatus::BadParam, syndrome::WQ_BUFFER_FAULT)
}

/// `wq.end_padding_mode` ALIGN: pad to a cache line.
const END_PAD_ALIGN: u8 = 1;

/// The checks both queue kinds share: the WQ context (cyclic, size, stride, page size, PD,
/// UAR for an SQ, doorbell record) and its page list (`pa`, `capacity`). For an RQ (`rq`):
/// PD 0 (never allocated: ALLOC_PD numbers from 1) is taken as "no PD", so the RQ can scatter
/// into no memory key (mlx5e's drop RQ, a zeroed context that never gets a WQE); and end
/// padding mode ALIGN (mlx5e sets it on every RQ) is taken — it lets the device pad a
/// packet's last write to a cache line, which the model never needs to (it writes no padding).
#[allow(clippy::too_many_arguments)]
fn wq_ring(
    st: &FunctionState,
    ctx: &Ctx,
    iommu: &Iommu,
    wq: &WqContext<&[u8]>,
    rq: bool,
    stride_ok: impl Fn(u8) -> bool,
    capacity: usize,
    pa: impl Fn(usize) -> Option<u64>,
) -> Result<WqRing> {
    if wq.wq_type() != wq_type::CYCLIC {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_WQ_TYPE);
    }
    let end_pad_ok = wq.end_padding_mode() == 0 || (rq && wq.end_padding_mode() == END_PAD_ALIGN);
    if wq.wq_signature() || wq.cd_slave() || !end_pad_ok || wq.page_offset() != 0 {
        return unsupported();
    }
    let log_size = wq.log_wq_sz();
    let log_page_size = wq.log_wq_pg_sz();
    // log_wq_sz 0 (one WQE) is valid: mlx5e's drop RQ has a one-entry cyclic WQ.
    if log_size > limits(st).log_max_wq_sz || log_page_size > MAX_LOG_WQ_PAGE_SIZE {
        return refuse(CommandStatus::BadParam, syndrome::BAD_QUEUE_SIZE);
    }
    let log_stride = wq.log_wq_stride();
    if !stride_ok(log_stride) {
        return refuse(CommandStatus::BadParam, syndrome::BAD_WQ_STRIDE);
    }
    let pd = wq.pd();
    if !st.pds.contains(&pd) && (!rq || pd != 0) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_PD);
    }
    let bytes = 1u64 << (u32::from(log_size) + u32::from(log_stride));
    let pas = ring_pages(iommu, bytes, log_page_size, capacity, pa)
        .map_err(|e| e.refusal(|| wq_fault(ctx)))?;
    let dbr_addr = wq.dbr_addr();
    let dbr_last = dbr_addr.checked_add(WQ_DB_RECORD_LEN as u64 - 1);
    if !dbr_addr.is_multiple_of(WQ_DB_RECORD_LEN as u64)
        || !reachable(iommu, Some(dbr_addr))
        || !reachable(iommu, dbr_last)
    {
        ctx.wq_buffer_faults.set(ctx.wq_buffer_faults.get() + 1);
        return refuse(CommandStatus::BadParam, syndrome::BAD_DBR);
    }
    Ok(WqRing {
        log_size,
        log_stride,
        log_page_size,
        pas,
        dbr_addr,
        pd,
        uar: wq.uar_page(),
    })
}

/// CREATE_SQ.
pub(crate) fn create_sq(
    st: &mut FunctionState,
    ctx: &Ctx,
    iommu: &Iommu,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateSqIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateSqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let c = i.sq_context();
    if c.state() != QueueState::Reset {
        return refuse(CommandStatus::BadParam, syndrome::BAD_INITIAL_STATE);
    }
    if c.cd_master()
        || c.fre()
        || c.allow_multi_pkt_send_wqe()
        || c.reg_umr()
        || c.allow_swp()
        || c.hairpin()
        || c.packet_pacing_rate_limit_index() != 0
    {
        return unsupported();
    }
    let cqn = c.cqn();
    if !st.cqs.contains_key(&cqn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_CQ);
    }
    // No TIS (tis_lst_sz 0) is an SQ that never reaches the wire: mlx5e's internal control
    // SQs (NOP WQEs only; a SEND on one completes in error). Recorded as TIS number 0, which
    // no TIS has (they number from FIRST_TISN).
    let tisn = match c.tis_lst_sz() {
        0 => NO_TIS,
        1 => c.tis_num_0(),
        _ => return refuse(CommandStatus::BadParam, syndrome::BAD_TIS_LIST),
    };
    if tisn != NO_TIS && !st.tises.contains_key(&tisn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_TIS);
    }
    let wq = c.wq();
    if !st.uars.contains(&wq.uar_page()) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_UAR);
    }
    let ring = wq_ring(
        st,
        ctx,
        iommu,
        &wq,
        false,
        |s| s == LOG_SQ_STRIDE,
        i.pa_capacity(),
        |k| i.pa(k),
    )?;
    let sqn = free_number(&st.sqs, FIRST_SQN, limits(st).max_sqs)?;
    st.sqs.insert(
        sqn,
        SqState {
            ring,
            state: QueueState::Reset,
            cqn,
            tisn,
            min_inline: c.min_wqe_inline_mode(),
            user_index: c.user_index(),
            flush_in_error: c.flush_in_error_en(),
            consumer: 0,
            producer: 0,
            stalled: false,
            frames_sent: 0,
        },
    );
    o.set_sqn(sqn);
    Ok(())
}

/// The PRM's SQ/RQ transitions: RST→RDY, RDY→RDY (field changes), RDY→ERR, RDY→RST, ERR→RST.
fn transition(from: QueueState, current: u8, to: QueueState) -> Result<()> {
    if u8::from(from) != current {
        return refuse(CommandStatus::BadParam, syndrome::STATE_MISMATCH);
    }
    use QueueState::*;
    match (from, to) {
        (Reset, Ready) | (Ready, Ready) | (Ready, Error) | (Ready, Reset) | (Error, Reset) => {
            Ok(())
        }
        _ => refuse(CommandStatus::BadParam, syndrome::BAD_TRANSITION),
    }
}

/// MODIFY_SQ: the state; a rate limit (not advertised) is refused.
pub(crate) fn modify_sq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ModifySqIn::new_checked(input).map_err(short_in)?;
    ModifySqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let Some(sq) = st.sqs.get_mut(&i.sqn()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let bits = i.modify_bitmask();
    if bits & modify_bitmask::SQ_RATE_LIMIT != 0 {
        return unsupported();
    }
    if bits != 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FIELD_SELECT);
    }
    let to = i.sq_context().state();
    transition(sq.state, i.sq_state(), to)?;
    if to == QueueState::Reset {
        sq.consumer = 0;
        sq.producer = 0;
        sq.stalled = false;
        sq.frames_sent = 0;
    }
    sq.state = to;
    Ok(())
}

/// QUERY_SQ.
pub(crate) fn query_sq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QuerySqIn::new_checked(input).map_err(short_in)?;
    let mut o = QuerySqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let Some(sq) = st.sqs.get(&i.sqn()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let mut c = o.sq_context_mut();
    c.set_state(sq.state);
    c.set_flush_in_error_en(sq.flush_in_error);
    c.set_min_wqe_inline_mode(sq.min_inline);
    c.set_user_index(sq.user_index);
    c.set_cqn(sq.cqn);
    c.set_tis_lst_sz(u16::from(sq.tisn != NO_TIS));
    c.set_tis_num_0(sq.tisn);
    emit_wq(&mut c.wq_mut(), &sq.ring, sq.consumer, sq.producer);
    Ok(())
}

fn emit_wq(wq: &mut WqContext<&mut [u8]>, ring: &WqRing, hw: u16, sw: u16) {
    wq.set_wq_type(wq_type::CYCLIC);
    wq.set_pd(ring.pd);
    wq.set_uar_page(ring.uar);
    wq.set_dbr_addr(ring.dbr_addr);
    wq.set_hw_counter(u32::from(hw));
    wq.set_sw_counter(u32::from(sw));
    wq.set_log_wq_stride(ring.log_stride);
    wq.set_log_wq_pg_sz(ring.log_page_size);
    wq.set_log_wq_sz(ring.log_size);
}

/// DESTROY_SQ.
pub(crate) fn destroy_sq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroySqIn::new_checked(input).map_err(short_in)?;
    DestroySqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    if st.sqs.remove(&i.sqn()).is_none() {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    Ok(())
}

/// CREATE_RQ.
pub(crate) fn create_rq(
    st: &mut FunctionState,
    ctx: &Ctx,
    iommu: &Iommu,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateRqIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateRqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let c = i.rq_context();
    if c.state() != QueueState::Reset {
        return refuse(CommandStatus::BadParam, syndrome::BAD_INITIAL_STATE);
    }
    if c.delay_drop_en() || c.scatter_fcs() || c.hairpin() || c.mem_rq_type() != mem_rq_type::INLINE
    {
        return unsupported();
    }
    let counter_set = c.counter_set_id();
    if counter_set != 0 && !st.q_counters.contains_key(&counter_set) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_COUNTER_SET);
    }
    let cqn = c.cqn();
    if !st.cqs.contains_key(&cqn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_CQ);
    }
    let max_stride = limits(st).max_rq_stride;
    let ring = wq_ring(
        st,
        ctx,
        iommu,
        &c.wq(),
        true,
        |s| (MIN_LOG_RQ_STRIDE..32).contains(&s) && (1u32 << s) <= max_stride,
        i.pa_capacity(),
        |k| i.pa(k),
    )?;
    let rqn = free_number(&st.rqs, FIRST_RQN, limits(st).max_rqs)?;
    st.rqs.insert(
        rqn,
        RqState {
            ring,
            state: QueueState::Reset,
            cqn,
            vsd: c.vsd(),
            user_index: c.user_index(),
            flush_in_error: c.flush_in_error_en(),
            consumer: 0,
            producer: 0,
            counter_set,
        },
    );
    o.set_rqn(rqn);
    Ok(())
}

/// MODIFY_RQ: the state and VLAN strip (`vsd`); a counter set must stay 0.
pub(crate) fn modify_rq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ModifyRqIn::new_checked(input).map_err(short_in)?;
    ModifyRqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let c = i.rq_context();
    let bits = i.modify_bitmask();
    let counter_set = c.counter_set_id();
    let set_counter = bits & modify_bitmask::RQ_COUNTER_SET_ID != 0;
    let counter_known = counter_set == 0 || st.q_counters.contains_key(&counter_set);
    let Some(rq) = st.rqs.get_mut(&i.rqn()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let known = modify_bitmask::RQ_VSD | modify_bitmask::RQ_COUNTER_SET_ID;
    if bits & !known != 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FIELD_SELECT);
    }
    if set_counter && !counter_known {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_COUNTER_SET);
    }
    let to = c.state();
    transition(rq.state, i.rq_state(), to)?;
    if bits & modify_bitmask::RQ_VSD != 0 {
        rq.vsd = c.vsd();
    }
    if set_counter {
        rq.counter_set = counter_set;
    }
    if to == QueueState::Reset {
        rq.consumer = 0;
        rq.producer = 0;
    }
    rq.state = to;
    Ok(())
}

/// QUERY_RQ.
pub(crate) fn query_rq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryRqIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryRqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let Some(rq) = st.rqs.get(&i.rqn()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let mut c = o.rq_context_mut();
    c.set_state(rq.state);
    c.set_vsd(rq.vsd);
    c.set_flush_in_error_en(rq.flush_in_error);
    c.set_user_index(rq.user_index);
    c.set_cqn(rq.cqn);
    c.set_counter_set_id(rq.counter_set);
    emit_wq(&mut c.wq_mut(), &rq.ring, rq.consumer, rq.producer);
    Ok(())
}

/// DESTROY_RQ: not while a TIR or an RQT delivers to it.
pub(crate) fn destroy_rq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyRqIn::new_checked(input).map_err(short_in)?;
    DestroyRqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let rqn = i.rqn();
    if !st.rqs.contains_key(&rqn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    let direct = st
        .tirs
        .values()
        .any(|t| t.dispatch == TirDispatch::Direct { rqn });
    if direct || st.rqts.values().any(|t| t.rqns.contains(&rqn)) {
        return refuse(CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    }
    st.rqs.remove(&rqn);
    Ok(())
}

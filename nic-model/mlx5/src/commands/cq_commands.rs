//! CREATE_CQ, DESTROY_CQ, QUERY_CQ and MODIFY_CQ (the CQ state and its CQEs: `crate::cq`).

use adapter_core::memory::Iommu;
use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::queues::{
    CreateCqIn, CreateCqOut, DestroyCqIn, DestroyCqOut, ModifyCqIn, ModifyCqOut, QueryCqIn,
    QueryCqOut, cq_state, cqe_size, modify_cq_op, modify_cq_select,
};
use mlx5_hw::cqe::{CQ_DB_RECORD_LEN, CQE_LEN};

use super::{
    Ctx, FunctionState, Refusal, Result, need_initialized, no_op_mod, reachable, refuse,
    ring_pages, short_in, short_out, syndrome,
};

use crate::cq::*;

fn cq_limits(st: &FunctionState) -> (u8, usize) {
    GeneralCaps::new_checked(&st.general_cur[..]).map_or((0, 0), |g| {
        let max_cqs = (1usize << g.log_max_cq().min(24)).min(MAX_CQS);
        (g.log_max_cq_sz(), max_cqs)
    })
}

fn buffer_fault(ctx: &Ctx, synd: u32) -> Refusal {
    ctx.cq_buffer_faults.set(ctx.cq_buffer_faults.get() + 1);
    Refusal(CommandStatus::BadParam, synd)
}

/// CREATE_CQ.
pub(crate) fn create_cq(
    st: &mut FunctionState,
    ctx: &Ctx,
    iommu: &Iommu,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateCqIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateCqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let (log_max_cq_sz, max_cqs) = cq_limits(st);
    let c = i.cq_context();
    if c.cqe_sz() != cqe_size::BYTES_64 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_CQE_SIZE);
    }
    if c.cc() || c.cqe_comp_en() {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_CQ_FEATURE);
    }
    // log_cq_size 0 (one CQE) is valid: mlx5e's drop RQ uses a zeroed CQ context.
    let log_size = c.log_cq_size();
    if log_size > log_max_cq_sz {
        return refuse(CommandStatus::BadParam, syndrome::BAD_QUEUE_SIZE);
    }
    let log_page_size = c.log_page_size();
    if log_page_size > MAX_LOG_CQ_PAGE_SIZE {
        return refuse(CommandStatus::BadParam, syndrome::BAD_QUEUE_SIZE);
    }
    let uar = c.uar_page();
    if !st.uars.contains(&uar) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_UAR);
    }
    let Some(eqn) = u8::try_from(c.c_eqn())
        .ok()
        .filter(|n| st.eqs.contains_key(n))
    else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_EQ);
    };
    let bytes = u64::from(c.page_offset()) * CQE_LEN as u64 + ((CQE_LEN as u64) << log_size);
    let pas = ring_pages(iommu, bytes, log_page_size, i.pa_capacity(), |k| i.pa(k))
        .map_err(|e| e.refusal(|| buffer_fault(ctx, syndrome::CQ_BUFFER_FAULT)))?;
    // The doorbell record: 8-byte aligned and readable.
    let dbr_addr = c.dbr_addr();
    let dbr_last = dbr_addr.checked_add(CQ_DB_RECORD_LEN as u64 - 1);
    if !dbr_addr.is_multiple_of(CQ_DB_RECORD_LEN as u64)
        || !reachable(iommu, Some(dbr_addr))
        || !reachable(iommu, dbr_last)
    {
        return Err(buffer_fault(ctx, syndrome::BAD_DBR));
    }
    let Some(cqn) = (0..max_cqs)
        .filter_map(|k| u32::try_from(k).ok())
        .map(|k| FIRST_CQN + k)
        .find(|n| !st.cqs.contains_key(n))
    else {
        return refuse(CommandStatus::NoResources, syndrome::NO_OBJECTS);
    };
    let arm = match c.st() {
        cq_state::ARMED => CqArm::Armed,
        cq_state::SOLICITED_ARMED => CqArm::SolicitedArmed,
        _ => CqArm::Disarmed,
    };
    st.cqs.insert(
        cqn,
        CqState {
            log_size,
            uar,
            eqn,
            log_page_size,
            page_offset: c.page_offset(),
            pas,
            dbr_addr,
            period: c.cq_period(),
            max_count: c.cq_max_count(),
            arm,
            arm_sn: 0,
            producer: 0,
            consumer: 0,
            failed: false,
            overflows: 0,
        },
    );
    o.set_cqn(cqn);
    Ok(())
}

/// DESTROY_CQ.
pub(crate) fn destroy_cq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyCqIn::new_checked(input).map_err(short_in)?;
    DestroyCqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let cqn = i.cqn();
    if !st.cqs.contains_key(&cqn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    if st.sqs.values().any(|q| q.cqn == cqn) || st.rqs.values().any(|q| q.cqn == cqn) {
        return refuse(CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    }
    st.cqs.remove(&cqn);
    Ok(())
}

/// QUERY_CQ.
pub(crate) fn query_cq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryCqIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryCqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let Some(cq) = st.cqs.get(&i.cqn()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let mut c = o.cq_context_mut();
    c.set_status(if cq.failed {
        CQ_STATUS_WRITE_FAILURE
    } else {
        0
    });
    c.set_cqe_sz(cqe_size::BYTES_64);
    c.set_st(match cq.arm {
        CqArm::Armed => cq_state::ARMED,
        CqArm::SolicitedArmed => cq_state::SOLICITED_ARMED,
        CqArm::Disarmed => cq_state::FIRED,
    });
    c.set_page_offset(cq.page_offset);
    c.set_log_cq_size(cq.log_size);
    c.set_uar_page(cq.uar);
    c.set_cq_period(cq.period);
    c.set_cq_max_count(cq.max_count);
    c.set_c_eqn(u32::from(cq.eqn));
    c.set_log_page_size(cq.log_page_size);
    c.set_consumer_counter(cq.consumer);
    c.set_producer_counter(cq.producer);
    c.set_dbr_addr(cq.dbr_addr);
    Ok(())
}

/// MODIFY_CQ: the moderation fields (op_mod MODIFY); a resize is refused (BAD_OP).
pub(crate) fn modify_cq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ModifyCqIn::new_checked(input).map_err(short_in)?;
    ModifyCqOut::new_checked(&mut *out).map_err(short_out)?;
    if h.op_mod != modify_cq_op::MODIFY {
        return refuse(CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    }
    need_initialized(st)?;
    let select = i.field_select();
    let known = modify_cq_select::PERIOD | modify_cq_select::COUNT;
    if select & !known != 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FIELD_SELECT);
    }
    let Some(cq) = st.cqs.get_mut(&i.cqn()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let c = i.cq_context();
    if select & modify_cq_select::PERIOD != 0 {
        cq.period = c.cq_period();
    }
    if select & modify_cq_select::COUNT != 0 {
        cq.max_count = c.cq_max_count();
    }
    Ok(())
}

//! CREATE_EQ, DESTROY_EQ and QUERY_EQ (the EQ state and its events: `crate::eq`).

use adapter_core::memory::Iommu;
use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::queues::{
    CreateEqIn, CreateEqOut, DestroyEqIn, DestroyEqOut, QueryEqIn, QueryEqOut, eq_state,
};
use mlx5_hw::eqe::EQE_LEN;

use super::{
    Ctx, FunctionState, Refusal, Result, need_initialized, no_op_mod, refuse, ring_pages, short_in,
    short_out, syndrome,
};

use crate::eq::*;

fn general_limits(st: &FunctionState) -> (u8, usize) {
    GeneralCaps::new_checked(&st.general_cur[..]).map_or((0, 0), |g| {
        let max_eqs = match g.max_num_eqs() {
            0 => 1usize << g.log_max_eq().min(8),
            n => usize::from(n).min(256),
        };
        (g.log_max_eq_sz(), max_eqs)
    })
}

/// CREATE_EQ.
pub(crate) fn create_eq(
    st: &mut FunctionState,
    ctx: &Ctx,
    iommu: &Iommu,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateEqIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateEqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let (log_max_eq_sz, max_eqs) = general_limits(st);
    let c = i.eq_context();
    let log_size = c.log_eq_size();
    if log_size == 0 || log_size > log_max_eq_sz {
        return refuse(CommandStatus::BadParam, syndrome::BAD_QUEUE_SIZE);
    }
    let log_page_size = c.log_page_size();
    if log_page_size > MAX_LOG_EQ_PAGE_SIZE {
        return refuse(CommandStatus::BadParam, syndrome::BAD_QUEUE_SIZE);
    }
    let uar = c.uar_page();
    if !st.uars.contains(&uar) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_UAR);
    }
    let vector = c.intr();
    if vector >= ctx.msix_vectors {
        return refuse(CommandStatus::BadParam, syndrome::BAD_VECTOR);
    }
    let bytes = u64::from(c.page_offset()) * EQE_LEN as u64 + ((EQE_LEN as u64) << log_size);
    let pas =
        ring_pages(iommu, bytes, log_page_size, i.pa_capacity(), |k| i.pa(k)).map_err(|e| {
            e.refusal(|| {
                ctx.eq_buffer_faults.set(ctx.eq_buffer_faults.get() + 1);
                Refusal(CommandStatus::BadParam, syndrome::EQ_BUFFER_FAULT)
            })
        })?;
    let Some(eqn) = (usize::from(FIRST_EQN)..usize::from(FIRST_EQN) + max_eqs)
        .filter_map(|n| u8::try_from(n).ok())
        .find(|n| !st.eqs.contains_key(n))
    else {
        return refuse(CommandStatus::NoResources, syndrome::NO_OBJECTS);
    };
    let arm = match c.st() {
        eq_state::ARMED => EqArm::Armed,
        eq_state::ALWAYS_ARMED => EqArm::AlwaysArmed,
        _ => EqArm::Fired,
    };
    let events = [
        i.event_bitmask_0(),
        i.event_bitmask_1(),
        i.event_bitmask_2(),
        i.event_bitmask_3(),
    ];
    st.eqs.insert(
        eqn,
        EqState {
            log_size,
            uar,
            vector,
            log_page_size,
            page_offset: c.page_offset(),
            pas,
            events,
            arm,
            producer: 0,
            consumer: 0,
            failed: false,
            overflows: 0,
        },
    );
    o.set_eq_number(eqn);
    Ok(())
}

/// DESTROY_EQ.
pub(crate) fn destroy_eq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyEqIn::new_checked(input).map_err(short_in)?;
    DestroyEqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let eqn = i.eq_number();
    if st.cqs.values().any(|cq| cq.eqn == eqn) {
        return refuse(CommandStatus::BadResource, syndrome::EQ_IN_USE);
    }
    if st.eqs.remove(&eqn).is_none() {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    Ok(())
}

/// QUERY_EQ.
pub(crate) fn query_eq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryEqIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryEqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let Some(eq) = st.eqs.get(&i.eq_number()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let mut c = o.eq_context_mut();
    c.set_status(if eq.failed {
        EQ_STATUS_WRITE_FAILURE
    } else {
        0
    });
    c.set_st(match eq.arm {
        EqArm::Armed => eq_state::ARMED,
        EqArm::Fired => eq_state::FIRED,
        EqArm::AlwaysArmed => eq_state::ALWAYS_ARMED,
    });
    c.set_page_offset(eq.page_offset);
    c.set_log_eq_size(eq.log_size);
    c.set_uar_page(eq.uar);
    c.set_intr(eq.vector);
    c.set_log_page_size(eq.log_page_size);
    c.set_consumer_counter(eq.consumer);
    c.set_producer_counter(eq.producer);
    Ok(())
}

//! CREATE/MODIFY/DESTROY_TIR and CREATE/MODIFY/DESTROY_RQT (the state: `crate::wq`).

use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::rx::{
    CreateRqtIn, CreateRqtOut, CreateTirIn, CreateTirOut, DestroyRqtIn, DestroyRqtOut,
    DestroyTirIn, DestroyTirOut, MODIFY_RQT_RQN_LIST, ModifyRqtIn, ModifyRqtOut, ModifyTirIn,
    ModifyTirOut, RqtContext, TirContext, disp_type, modify_tir_bitmask, rx_hash_fn,
};

use super::wq_commands::free_number;
use super::{
    FunctionState, Result, need_initialized, no_op_mod, refuse, short_in, short_out, syndrome,
};
use crate::wq::*;

/// The hash functions a TIR may name: none, inverted XOR8 (mlx5e's per-channel TIRs) and
/// Toeplitz; the PRM defines no others.
fn known_hash(f: u8) -> bool {
    matches!(
        f,
        rx_hash_fn::NONE | rx_hash_fn::INVERTED_XOR8 | rx_hash_fn::TOEPLITZ
    )
}

fn caps(st: &FunctionState) -> (usize, usize, usize) {
    let cap = |log: u8| (1usize << log.min(24)).min(MAX_OBJECTS);
    GeneralCaps::new_checked(&st.general_cur[..]).map_or((0, 0, 0), |g| {
        (
            cap(g.log_max_tir()),
            cap(g.log_max_rqt()),
            1usize << g.log_max_rqt_size().min(16),
        )
    })
}

/// The hash part of a TIR context, checked: function none, inverted XOR8 or Toeplitz, no
/// tunnel hashing.
fn indirect(st: &FunctionState, c: &TirContext<&[u8]>) -> Result<TirDispatch> {
    let rqtn = c.indirect_table();
    if !st.rqts.contains_key(&rqtn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_RQT);
    }
    let hash_fn = c.rx_hash_fn();
    if !known_hash(hash_fn) {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_HASH);
    }
    Ok(TirDispatch::Indirect {
        rqtn,
        hash_fn,
        key: c.rx_hash_toeplitz_key().to_vec(),
        selector: c.rx_hash_field_selector_outer(),
        symmetric: c.rx_hash_symmetric(),
    })
}

/// CREATE_TIR: direct to an RQ or indirect over an RQT; no LRO, no tunnel offloads.
pub(crate) fn create_tir(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateTirIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateTirOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let c = i.tir_context();
    if c.lro_enable_mask() != 0 || c.tunneled_offload_en() {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_QUEUE_FEATURE);
    }
    let td = c.transport_domain();
    if !st.transport_domains.contains(&td) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_TD);
    }
    let dispatch = match c.disp_type() {
        disp_type::DIRECT => {
            let rqn = c.inline_rqn();
            if !st.rqs.contains_key(&rqn) {
                return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_RQ);
            }
            TirDispatch::Direct { rqn }
        }
        disp_type::INDIRECT => indirect(st, &c)?,
        _ => return refuse(CommandStatus::BadParam, syndrome::BAD_DISPATCH),
    };
    let tirn = free_number(&st.tirs, FIRST_TIRN, caps(st).0)?;
    st.tirs.insert(
        tirn,
        TirState {
            transport_domain: td,
            dispatch,
            self_lb_block: c.self_lb_block(),
        },
    );
    o.set_tirn(tirn);
    Ok(())
}

/// MODIFY_TIR: self-loopback block, the RQT and the hash of an indirect TIR; LRO only off.
pub(crate) fn modify_tir(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ModifyTirIn::new_checked(input).map_err(short_in)?;
    ModifyTirOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let bits = i.modify_bitmask();
    let known = modify_tir_bitmask::LRO
        | modify_tir_bitmask::INDIRECT_TABLE
        | modify_tir_bitmask::HASH
        | modify_tir_bitmask::SELF_LB_EN;
    if bits & !known != 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FIELD_SELECT);
    }
    let tirn = i.tirn();
    let Some(old) = st.tirs.get(&tirn).cloned() else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let c = i.tir_context();
    if bits & modify_tir_bitmask::LRO != 0 && c.lro_enable_mask() != 0 {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_QUEUE_FEATURE);
    }
    let mut new = old;
    if bits & (modify_tir_bitmask::INDIRECT_TABLE | modify_tir_bitmask::HASH) != 0 {
        let TirDispatch::Indirect { rqtn, .. } = new.dispatch else {
            return refuse(CommandStatus::BadParam, syndrome::BAD_DISPATCH);
        };
        let TirDispatch::Indirect {
            rqtn: new_rqtn,
            hash_fn,
            key,
            selector,
            symmetric,
        } = indirect_fields(st, &c, bits, rqtn)?
        else {
            return refuse(CommandStatus::BadParam, syndrome::BAD_DISPATCH);
        };
        if let TirDispatch::Indirect {
            rqtn: r,
            hash_fn: f,
            key: k,
            selector: s,
            symmetric: y,
        } = &mut new.dispatch
        {
            *r = new_rqtn;
            if bits & modify_tir_bitmask::HASH != 0 {
                (*f, *k, *s, *y) = (hash_fn, key, selector, symmetric);
            }
        }
    }
    if bits & modify_tir_bitmask::SELF_LB_EN != 0 {
        new.self_lb_block = c.self_lb_block();
    }
    st.tirs.insert(tirn, new);
    Ok(())
}

/// The indirect fields of a MODIFY_TIR context: the RQT only when its bit is set (else
/// `rqtn` stays), the hash checked as CREATE_TIR does.
fn indirect_fields(
    st: &FunctionState,
    c: &TirContext<&[u8]>,
    bits: u64,
    rqtn: u32,
) -> Result<TirDispatch> {
    let rqtn = if bits & modify_tir_bitmask::INDIRECT_TABLE != 0 {
        c.indirect_table()
    } else {
        rqtn
    };
    if !st.rqts.contains_key(&rqtn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_RQT);
    }
    let hash_fn = c.rx_hash_fn();
    if bits & modify_tir_bitmask::HASH != 0 && !known_hash(hash_fn) {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_HASH);
    }
    Ok(TirDispatch::Indirect {
        rqtn,
        hash_fn,
        key: c.rx_hash_toeplitz_key().to_vec(),
        selector: c.rx_hash_field_selector_outer(),
        symmetric: c.rx_hash_symmetric(),
    })
}

/// DESTROY_TIR: not while a flow rule forwards to it.
pub(crate) fn destroy_tir(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyTirIn::new_checked(input).map_err(short_in)?;
    DestroyTirOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let tirn = i.tirn();
    if !st.tirs.contains_key(&tirn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    if st.steering.tir_referenced(tirn) {
        return refuse(CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    }
    st.tirs.remove(&tirn);
    Ok(())
}

/// The RQ list of an RQT context: `actual_size` RQs of the function, 1..=`max_size`.
fn rq_list(st: &FunctionState, c: &RqtContext<&[u8]>, max_size: u16) -> Result<Vec<u32>> {
    let n = c.rqt_actual_size();
    if n == 0 || n > max_size || usize::from(n) > c.rq_num_capacity() {
        return refuse(CommandStatus::BadParam, syndrome::BAD_RQT_SIZE);
    }
    let rqns: Vec<u32> = (0..usize::from(n))
        .map(|k| c.rq_num(k).unwrap_or(0) & 0xFF_FFFF)
        .collect();
    if rqns.iter().any(|r| !st.rqs.contains_key(r)) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_RQ);
    }
    Ok(rqns)
}

/// CREATE_RQT.
pub(crate) fn create_rqt(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateRqtIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateRqtOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let (_, max_rqts, max_rqt_size) = caps(st);
    let c = i.rqt_context();
    let max_size = c.rqt_max_size();
    if max_size == 0 || usize::from(max_size) > max_rqt_size {
        return refuse(CommandStatus::BadParam, syndrome::BAD_RQT_SIZE);
    }
    let rqns = rq_list(st, &c, max_size)?;
    let rqtn = free_number(&st.rqts, FIRST_RQTN, max_rqts)?;
    st.rqts.insert(rqtn, RqtState { max_size, rqns });
    o.set_rqtn(rqtn);
    Ok(())
}

/// MODIFY_RQT: a new RQ list (at most the RQT's maximum size).
pub(crate) fn modify_rqt(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ModifyRqtIn::new_checked(input).map_err(short_in)?;
    ModifyRqtOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    if i.modify_bitmask() & !MODIFY_RQT_RQN_LIST != 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FIELD_SELECT);
    }
    let rqtn = i.rqtn();
    let Some(max_size) = st.rqts.get(&rqtn).map(|r| r.max_size) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    if i.modify_bitmask() & MODIFY_RQT_RQN_LIST == 0 {
        return Ok(());
    }
    let rqns = rq_list(st, &i.rqt_context(), max_size)?;
    if let Some(r) = st.rqts.get_mut(&rqtn) {
        r.rqns = rqns;
    }
    Ok(())
}

/// DESTROY_RQT: not while a TIR hashes over it.
pub(crate) fn destroy_rqt(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyRqtIn::new_checked(input).map_err(short_in)?;
    DestroyRqtOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let rqtn = i.rqtn();
    if !st.rqts.contains_key(&rqtn) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    let used = st
        .tirs
        .values()
        .any(|t| matches!(t.dispatch, TirDispatch::Indirect { rqtn: r, .. } if r == rqtn));
    if used {
        return refuse(CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    }
    st.rqts.remove(&rqtn);
    Ok(())
}

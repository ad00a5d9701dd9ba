//! The E-Switch scheduling-element commands: CREATE/MODIFY/QUERY/DESTROY_SCHEDULING_ELEMENT
//! in the E_SWITCH hierarchy (layouts `mlx5_hw::commands::eswitch`; how Linux `esw/qos.c`
//! uses them: one root DWRR TSAR, one VPORT element per rate-controlled vport, MODIFY with
//! bitmask bit 0 `bw_share` and bit 1 `max_average_bw`, destroy when both are back to 0).
//! The state and its effect on frames: [`crate::qos`].
//!
//! Only the E-Switch manager (the PF) may issue them: a VF is refused BAD_PARAM
//! `NOT_ESWITCH_MANAGER`. Every other malformed case is refused with its own syndrome
//! ([`qos_syndrome`]) and counted (the command error counters; past the length checks also
//! `QosCounters::commands_refused`); a refused command changes nothing.

use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::eswitch::{
    CreateSchedulingElementIn, CreateSchedulingElementOut, DestroySchedulingElementIn,
    DestroySchedulingElementOut, ModifySchedulingElementIn, ModifySchedulingElementOut,
    QuerySchedulingElementIn, QuerySchedulingElementOut, element_type, modify_scheduling_bitmask,
    scheduling_hierarchy, tsar_type,
};

use super::vport_commands::esw_syndrome as esyn;
use super::{
    Ctx, FunctionState, Refusal, Result, need_initialized, no_op_mod, short_in, short_out,
};
use crate::eswitch::Eswitch;
use crate::qos::{Element, ElementKind, MAX_TSAR_BW_SHARE};

/// The model's syndromes of the scheduling-element commands, re-exported by
/// [`syndrome`](crate::syndrome).
pub mod qos_syndrome {
    /// A scheduling hierarchy other than E_SWITCH (the NIC hierarchy is not modelled).
    pub const BAD_HIERARCHY: u32 = 0x4D58_0200;
    /// An element type other than TSAR or VPORT.
    pub const UNSUPPORTED_ELEMENT_TYPE: u32 = 0x4D58_0201;
    /// A TSAR type other than DWRR.
    pub const UNSUPPORTED_TSAR_TYPE: u32 = 0x4D58_0202;
    /// A TSAR below another element, or a second root TSAR (one level below the root).
    pub const UNSUPPORTED_DEPTH: u32 = 0x4D58_0203;
    /// A VPORT element whose parent is not an existing TSAR.
    pub const NO_SUCH_PARENT: u32 = 0x4D58_0204;
    /// A vport that already has an element.
    pub const VPORT_HAS_ELEMENT: u32 = 0x4D58_0205;
    /// `bw_share` above `max_tsar_bw_share`.
    pub const BAD_BW_SHARE: u32 = 0x4D58_0206;
    /// `bw_share` or `max_average_bw` on a TSAR (the root shares and limits nothing).
    pub const TSAR_FIELD: u32 = 0x4D58_0207;
    /// An element id that does not exist.
    pub const NO_SUCH_ELEMENT: u32 = 0x4D58_0208;
    /// MODIFY bitmask bits other than `bw_share` and `max_average_bw`.
    pub const BAD_MODIFY_BITMASK: u32 = 0x4D58_0209;
    /// DESTROY of a TSAR that still has children.
    pub const ELEMENT_IN_USE: u32 = 0x4D58_020A;
    /// No room for another element.
    pub const NO_ELEMENTS: u32 = 0x4D58_020B;
}
use qos_syndrome as qsyn;

/// Refuses with `status`/`syndrome` and counts it on the E-Switch's QoS counters.
fn no<T>(esw: &mut Eswitch, status: CommandStatus, syndrome: u32) -> Result<T> {
    esw.qos.counters.commands_refused += 1;
    Err(Refusal(status, syndrome))
}

/// The checks every scheduling command makes after its lengths: op_mod 0, the function
/// initialized, the PF, the E_SWITCH hierarchy.
fn manager(
    st: &FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    hier: u8,
) -> Result<()> {
    let r = no_op_mod(h).and_then(|()| need_initialized(st));
    if let Err(e) = r {
        esw.qos.counters.commands_refused += 1;
        return Err(e);
    }
    if ctx.is_vf {
        return no(esw, CommandStatus::BadParam, esyn::NOT_ESWITCH_MANAGER);
    }
    if hier != scheduling_hierarchy::E_SWITCH {
        return no(esw, CommandStatus::BadParam, qsyn::BAD_HIERARCHY);
    }
    Ok(())
}

/// CREATE_SCHEDULING_ELEMENT.
pub(crate) fn create(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateSchedulingElementIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateSchedulingElementOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, esw, h, i.scheduling_hierarchy())?;
    let c = i.scheduling_context();
    let (parent, share, max_bw) = (c.parent_element_id(), c.bw_share(), c.max_average_bw());
    let kind = match c.element_type() {
        element_type::TSAR => {
            if c.tsar_type() != tsar_type::DWRR {
                return no(esw, CommandStatus::BadParam, qsyn::UNSUPPORTED_TSAR_TYPE);
            }
            let root_exists = esw.qos.elements().any(|(_, e)| e.kind == ElementKind::Tsar);
            if parent != 0 || root_exists {
                return no(esw, CommandStatus::BadParam, qsyn::UNSUPPORTED_DEPTH);
            }
            if share != 0 || max_bw != 0 {
                return no(esw, CommandStatus::BadParam, qsyn::TSAR_FIELD);
            }
            ElementKind::Tsar
        }
        element_type::VPORT => {
            let v = c.vport_number();
            if v > ctx.num_vfs {
                return no(esw, CommandStatus::BadParam, esyn::NO_SUCH_VPORT);
            }
            if !esw.qos.is_tsar(parent) {
                return no(esw, CommandStatus::BadParam, qsyn::NO_SUCH_PARENT);
            }
            if esw.qos.vport_element(v).is_some() {
                return no(
                    esw,
                    CommandStatus::BadResourceState,
                    qsyn::VPORT_HAS_ELEMENT,
                );
            }
            if share > MAX_TSAR_BW_SHARE {
                return no(esw, CommandStatus::BadParam, qsyn::BAD_BW_SHARE);
            }
            ElementKind::Vport(v)
        }
        _ => return no(esw, CommandStatus::BadParam, qsyn::UNSUPPORTED_ELEMENT_TYPE),
    };
    if esw.qos.full() {
        return no(esw, CommandStatus::NoResources, qsyn::NO_ELEMENTS);
    }
    let id = esw.qos.insert(
        Element {
            kind,
            parent,
            bw_share: share,
            max_average_bw: max_bw,
        },
        ctx.now,
    );
    o.set_scheduling_element_id(id);
    Ok(())
}

/// MODIFY_SCHEDULING_ELEMENT.
pub(crate) fn modify(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ModifySchedulingElementIn::new_checked(input).map_err(short_in)?;
    ModifySchedulingElementOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, esw, h, i.scheduling_hierarchy())?;
    let id = i.scheduling_element_id();
    let Some(e) = esw.qos.element(id).copied() else {
        return no(esw, CommandStatus::BadParam, qsyn::NO_SUCH_ELEMENT);
    };
    let mask = i.modify_bitmask();
    let all = modify_scheduling_bitmask::BW_SHARE | modify_scheduling_bitmask::MAX_AVERAGE_BW;
    if mask & !all != 0 {
        return no(esw, CommandStatus::BadParam, qsyn::BAD_MODIFY_BITMASK);
    }
    let c = i.scheduling_context();
    let share = (mask & modify_scheduling_bitmask::BW_SHARE != 0).then(|| c.bw_share());
    let max_bw =
        (mask & modify_scheduling_bitmask::MAX_AVERAGE_BW != 0).then(|| c.max_average_bw());
    if e.kind == ElementKind::Tsar && (share.unwrap_or(0) != 0 || max_bw.unwrap_or(0) != 0) {
        return no(esw, CommandStatus::BadParam, qsyn::TSAR_FIELD);
    }
    if share.unwrap_or(0) > MAX_TSAR_BW_SHARE {
        return no(esw, CommandStatus::BadParam, qsyn::BAD_BW_SHARE);
    }
    esw.qos.modify(id, share, max_bw, ctx.now);
    // A raised or removed limit may let a throttled vport go now.
    esw.room_freed = true;
    Ok(())
}

/// QUERY_SCHEDULING_ELEMENT.
pub(crate) fn query(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QuerySchedulingElementIn::new_checked(input).map_err(short_in)?;
    let mut o = QuerySchedulingElementOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, esw, h, i.scheduling_hierarchy())?;
    let Some(e) = esw.qos.element(i.scheduling_element_id()).copied() else {
        return no(esw, CommandStatus::BadParam, qsyn::NO_SUCH_ELEMENT);
    };
    let mut c = o.scheduling_context_mut();
    match e.kind {
        ElementKind::Tsar => {
            c.set_element_type(element_type::TSAR);
            c.set_tsar_type(tsar_type::DWRR);
        }
        ElementKind::Vport(v) => {
            c.set_element_type(element_type::VPORT);
            c.set_vport_number(v);
        }
    }
    c.set_parent_element_id(e.parent);
    c.set_bw_share(e.bw_share);
    c.set_max_average_bw(e.max_average_bw);
    Ok(())
}

/// DESTROY_SCHEDULING_ELEMENT.
pub(crate) fn destroy(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroySchedulingElementIn::new_checked(input).map_err(short_in)?;
    DestroySchedulingElementOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, esw, h, i.scheduling_hierarchy())?;
    let id = i.scheduling_element_id();
    if esw.qos.element(id).is_none() {
        return no(esw, CommandStatus::BadParam, qsyn::NO_SUCH_ELEMENT);
    }
    if esw.qos.has_children(id) {
        return no(esw, CommandStatus::BadResourceState, qsyn::ELEMENT_IN_USE);
    }
    esw.qos.remove(id);
    // The vport's stalled frames go unscheduled now.
    esw.room_freed = true;
    Ok(())
}

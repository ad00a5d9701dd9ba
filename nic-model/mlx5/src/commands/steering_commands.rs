//! NIC receive flow steering commands: CREATE/DESTROY_FLOW_TABLE, CREATE/DESTROY_FLOW_GROUP,
//! SET/DELETE_FLOW_TABLE_ENTRY and SET_FLOW_TABLE_ROOT (the state and lookup:
//! `crate::steering`; the call sites: Linux `fs_cmd.c`).
//!
//! Only the function's own NIC RX tables: another vport's tables and other table types are
//! the E-Switch's. Entries are created (op_mod 0) and deleted, never modified in place
//! (`flow_modify_en` is not advertised).

use std::collections::BTreeMap;

use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::steering::{
    CreateFlowGroupIn, CreateFlowGroupOut, CreateFlowTableIn, CreateFlowTableOut,
    DeleteFlowTableEntryIn, DeleteFlowTableEntryOut, DestroyFlowGroupIn, DestroyFlowGroupOut,
    DestroyFlowTableIn, DestroyFlowTableOut, SetFlowTableEntryIn, SetFlowTableEntryOut,
    SetFlowTableRootIn, SetFlowTableRootOut, action, destination_type, miss_action,
    split_destination, table_type,
};

use super::{
    FunctionState, Result, need_initialized, no_op_mod, refuse, short_in, short_out, syndrome,
};
use crate::caps::{LOG_MAX_FT_NUM, LOG_MAX_FT_SIZE, MAX_FT_LEVEL};
use crate::packet::criteria_supported;
use crate::steering::*;

pub use mlx5_hw::commands::steering::ROOT_DISCONNECT;

/// The table-addressing fields every steering command carries: own vport, NIC RX.
fn own_nic_rx(other_vport: bool, vport: u16, kind: u8) -> Result<()> {
    if other_vport || vport != 0 {
        return refuse(CommandStatus::BadParam, syndrome::OTHER_FUNCTION);
    }
    if kind != table_type::NIC_RX {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_TABLE_TYPE);
    }
    Ok(())
}

fn table_mut(st: &mut FunctionState, id: u32) -> Result<&mut FlowTable> {
    match st.steering.tables.get_mut(&id) {
        Some(t) => Ok(t),
        None => refuse(CommandStatus::BadResource, syndrome::NO_SUCH_FLOW_TABLE),
    }
}

/// CREATE_FLOW_TABLE.
pub(crate) fn create_flow_table(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateFlowTableIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateFlowTableOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    own_nic_rx(i.other_vport(), i.vport_number(), i.table_type())?;
    let c = i.flow_table_context();
    let (level, log_size) = (c.level(), c.log_size());
    if level > MAX_FT_LEVEL || log_size > LOG_MAX_FT_SIZE {
        return refuse(CommandStatus::BadParam, syndrome::BAD_TABLE_SIZE);
    }
    let miss = match c.table_miss_action() {
        miss_action::DEFAULT => None,
        miss_action::FORWARD => {
            let id = c.table_miss_id();
            let Some(t) = st.steering.tables.get(&id) else {
                return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_FLOW_TABLE);
            };
            if t.level <= level {
                return refuse(CommandStatus::BadParam, syndrome::BAD_TABLE_LEVEL);
            }
            Some(id)
        }
        _ => return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_ACTION),
    };
    let id = super::wq_commands::free_number(
        &st.steering.tables,
        FIRST_TABLE_ID,
        1usize << LOG_MAX_FT_NUM,
    )?;
    st.steering.tables.insert(
        id,
        FlowTable {
            level,
            log_size,
            miss,
            groups: BTreeMap::new(),
            entries: BTreeMap::new(),
        },
    );
    o.set_table_id(id);
    Ok(())
}

/// DESTROY_FLOW_TABLE: without groups and not referred to by another table (the root may go:
/// the root is then unset).
pub(crate) fn destroy_flow_table(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyFlowTableIn::new_checked(input).map_err(short_in)?;
    DestroyFlowTableOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    own_nic_rx(i.other_vport(), i.vport_number(), i.table_type())?;
    let id = i.table_id();
    // The root table may go (firmware accepts it; Linux's steering core destroys the last
    // table of the root level without unsetting the root first): the root is then unset and
    // receive misses. A table another table leads to, or with groups, may not.
    if !table_mut(st, id)?.groups.is_empty() || st.steering.table_referenced_by_table(id) {
        return refuse(CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    }
    st.steering.tables.remove(&id);
    if st.steering.root == Some(id) {
        st.steering.root = None;
    }
    Ok(())
}

/// CREATE_FLOW_GROUP: a range of the table, not overlapping another group, with criteria on
/// the outer headers the model compares.
pub(crate) fn create_flow_group(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateFlowGroupIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateFlowGroupOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    own_nic_rx(i.other_vport(), i.vport_number(), i.table_type())?;
    let (start, end) = (i.start_flow_index(), i.end_flow_index());
    let criteria = i.match_criteria();
    let enable = i.match_criteria_enable();
    let t = table_mut(st, i.table_id())?;
    if start > end || u64::from(end) >= 1u64 << t.log_size {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FLOW_RANGE);
    }
    if t.groups.values().any(|g| start <= g.end && g.start <= end) {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FLOW_RANGE);
    }
    if !criteria_supported(enable, criteria) {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_MATCH);
    }
    let criteria = if enable == 0 {
        vec![0u8; HEADERS_LEN]
    } else {
        criteria[..HEADERS_LEN].to_vec()
    };
    let id = super::wq_commands::free_number(&t.groups, FIRST_GROUP_ID, 1usize << 16)?;
    t.groups.insert(
        id,
        FlowGroup {
            start,
            end,
            criteria,
        },
    );
    o.set_group_id(id);
    Ok(())
}

/// DESTROY_FLOW_GROUP: not while it holds entries.
pub(crate) fn destroy_flow_group(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyFlowGroupIn::new_checked(input).map_err(short_in)?;
    DestroyFlowGroupOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    own_nic_rx(i.other_vport(), i.vport_number(), i.table_type())?;
    let group = i.group_id();
    let t = table_mut(st, i.table_id())?;
    if !t.groups.contains_key(&group) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_FLOW_GROUP);
    }
    if t.entries.values().any(|e| e.group == group) {
        return refuse(CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    }
    t.groups.remove(&group);
    Ok(())
}

/// SET_FLOW_TABLE_ENTRY (op_mod 0: a new entry): drop, or forward to one TIR or one deeper
/// table.
pub(crate) fn set_fte(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = SetFlowTableEntryIn::new_checked(input).map_err(short_in)?;
    SetFlowTableEntryOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    own_nic_rx(i.other_vport(), i.vport_number(), i.table_type())?;
    let (table_id, index) = (i.table_id(), i.flow_index());
    let c = i.flow_context();
    let act = c.action();
    let action = if act == action::DROP {
        FlowAction::Drop
    } else if act == action::FWD_DEST {
        if c.extended_destination()
            || c.destination_list_size() != 1
            || c.flow_counter_list_size() != 0
        {
            return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_ACTION);
        }
        let Some(dest) = c.destination(0) else {
            return refuse(CommandStatus::BadInputLength, syndrome::INPUT_TOO_SHORT);
        };
        match split_destination(dest) {
            (destination_type::TIR, tirn) if st.tirs.contains_key(&tirn) => FlowAction::Tir(tirn),
            (destination_type::TIR, _) => {
                return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_TIR);
            }
            (destination_type::FLOW_TABLE, next) => FlowAction::Table(next),
            _ => return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_ACTION),
        }
    } else {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_ACTION);
    };
    let next_level = match action {
        FlowAction::Table(next) => match st.steering.tables.get(&next) {
            Some(t) => Some(t.level),
            None => return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_FLOW_TABLE),
        },
        _ => None,
    };
    let group_id = c.group_id();
    let flow_tag = c.flow_tag();
    let value_bytes = c.outer_value().as_bytes().to_vec();
    let t = table_mut(st, table_id)?;
    if next_level.is_some_and(|l| l <= t.level) {
        return refuse(CommandStatus::BadParam, syndrome::BAD_TABLE_LEVEL);
    }
    let Some(g) = t.groups.get(&group_id) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_FLOW_GROUP);
    };
    if index < g.start || index > g.end || t.entries.contains_key(&index) {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FLOW_INDEX);
    }
    let value: Vec<u8> = value_bytes
        .iter()
        .zip(&g.criteria)
        .map(|(v, c)| v & c)
        .collect();
    t.entries.insert(
        index,
        FlowEntry {
            group: group_id,
            value,
            action,
            flow_tag,
        },
    );
    Ok(())
}

/// DELETE_FLOW_TABLE_ENTRY.
pub(crate) fn delete_fte(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DeleteFlowTableEntryIn::new_checked(input).map_err(short_in)?;
    DeleteFlowTableEntryOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    own_nic_rx(i.other_vport(), i.vport_number(), i.table_type())?;
    let index = i.flow_index();
    if table_mut(st, i.table_id())?
        .entries
        .remove(&index)
        .is_none()
    {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FLOW_INDEX);
    }
    Ok(())
}

/// SET_FLOW_TABLE_ROOT: op_mod 0 sets the root table, op_mod 1 disconnects it.
pub(crate) fn set_root(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = SetFlowTableRootIn::new_checked(input).map_err(short_in)?;
    SetFlowTableRootOut::new_checked(&mut *out).map_err(short_out)?;
    if h.op_mod > ROOT_DISCONNECT {
        return refuse(CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    }
    need_initialized(st)?;
    own_nic_rx(i.other_vport(), i.vport_number(), i.table_type())?;
    if h.op_mod == ROOT_DISCONNECT {
        st.steering.root = None;
        return Ok(());
    }
    let id = i.table_id();
    table_mut(st, id)?;
    st.steering.root = Some(id);
    Ok(())
}

//! The vport commands: QUERY/MODIFY_VPORT_STATE, QUERY/MODIFY_NIC_VPORT_CONTEXT and
//! QUERY_VPORT_COUNTER, on the E-Switch's per-vport state (`crate::eswitch`). Layouts:
//! `mlx5_hw::commands::vport`; who may address what: Linux `vport.c` (`other_vport` set only
//! when acting on another vport), `eswitch.c` (`mlx5_esw_set_vport_mac_locked`,
//! `mlx5_eswitch_set_vport_state`), `en_main.c` (`mlx5e_set_netdev_dev_addr`: a VF reads the
//! permanent MAC of its own vport).
//!
//! Addressing: `other_vport` = 0 is the issuing function's own vport (`vport_number` must be
//! 0); `other_vport` = 1 is for the E-Switch manager (the PF) only, naming vport 0 (itself)
//! or an enabled VF's vport (n + 1). A VF naming another vport is refused: BAD_PARAM
//! `NOT_ESWITCH_MANAGER`.

use hw_common::MacAddress;
use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::vport::{
    ModifyNicVportContextIn, ModifyNicVportContextOut, ModifyVportStateIn, ModifyVportStateOut,
    QueryNicVportContextIn, QueryNicVportContextOut, QueryVportCounterIn, QueryVportCounterOut,
    QueryVportStateIn, QueryVportStateOut, VportCounter, VportState, allowed_list_type,
    field_select, vport_state_op,
};
use mlx5_hw::wqe::InlineMode;

use super::{
    Ctx, FunctionState, Result, need_initialized, no_op_mod, refuse, short_in, short_out, syndrome,
};
use crate::eswitch::{Eswitch, VportContext};

/// The model's syndromes of the E-Switch commands (vport and HAC), re-exported by
/// [`syndrome`](crate::syndrome).
pub mod esw_syndrome {
    use mlx5_hw::commands::hac;

    /// A VF (not the E-Switch manager) named another vport (`other_vport`), set a field only
    /// the manager sets, or issued an E-Switch or HAC command.
    pub const NOT_ESWITCH_MANAGER: u32 = hac::syndrome::NOT_ESWITCH_MANAGER;
    /// A vport number that is not the PF's or an enabled VF's (HAC and MODIFY_VPORT_STATE: not
    /// an enabled VF's).
    pub const NO_SUCH_VPORT: u32 = hac::syndrome::NO_SUCH_VPORT;
    /// `vport_number` ≠ 0 without `other_vport`.
    pub const VPORT_WITHOUT_OTHER_VPORT: u32 = 0x4D58_0102;
    /// An administrative state other than down, up or follow.
    pub const BAD_VPORT_STATE: u32 = 0x4D58_0103;
    /// An address-list type the model does not have (VLAN lists are not modelled).
    pub const BAD_LIST_TYPE: u32 = 0x4D58_0104;
    /// More list entries than `log_max_current_uc_list` / `_mc_list` allow.
    pub const LIST_TOO_LONG: u32 = 0x4D58_0105;
    /// `allowed_list_size` larger than the input carries.
    pub const LIST_SHORT: u32 = 0x4D58_0106;
    /// A multicast permanent address, a multicast or zero entry in a unicast list, a unicast
    /// entry in a multicast list.
    pub const BAD_MAC: u32 = 0x4D58_0107;
    /// An MTU beyond the model's maximum.
    pub const BAD_MTU: u32 = 0x4D58_0108;
    /// A field the model does not support (`roce_en`, affiliation).
    pub const UNSUPPORTED_FIELD: u32 = 0x4D58_0109;
    /// A port number other than 0 or 1 (one port).
    pub const BAD_PORT: u32 = 0x4D58_010A;
    /// An unknown `min_wqe_inline_mode`.
    pub const BAD_INLINE_MODE: u32 = 0x4D58_010B;
    /// HAC: the vport is not checkpointing.
    pub const HAC_NOT_TAGGED: u32 = hac::syndrome::NOT_TAGGED;
    /// HAC: the epoch does not fit the vport's open and resolved epochs.
    pub const HAC_BAD_EPOCH: u32 = hac::syndrome::BAD_EPOCH;
    /// HAC: the HAC stage is disabled.
    pub const HAC_DISABLED: u32 = hac::syndrome::DISABLED;
}
use esw_syndrome as esyn;

/// Largest MTU MODIFY_NIC_VPORT_CONTEXT takes. The vport MTU is the hardware MTU (Linux
/// writes its netdev MTU + 22 bytes of L2 overhead, `MLX5E_SW2HW_MTU`): 10000 is the 9978 a
/// ConnectX netdev offers at most, plus 22. Keep it at least the PMTU `max_mtu` the model
/// advertises.
pub const MAX_MTU: u16 = 10_000;

/// The vport a vport command names (see the module documentation).
pub(crate) fn addressed_vport(ctx: &Ctx, other_vport: bool, vport_number: u16) -> Result<usize> {
    if !other_vport {
        if vport_number != 0 {
            return refuse(CommandStatus::BadParam, esyn::VPORT_WITHOUT_OTHER_VPORT);
        }
        return Ok(ctx.function.slot());
    }
    if ctx.is_vf {
        return refuse(CommandStatus::BadParam, esyn::NOT_ESWITCH_MANAGER);
    }
    if vport_number == 0 {
        return Ok(0);
    }
    vf_vport(ctx, vport_number)
}

/// An enabled VF's vport, for the E-Switch manager.
pub(crate) fn vf_vport(ctx: &Ctx, vport_number: u16) -> Result<usize> {
    if vport_number == 0 || vport_number > ctx.num_vfs {
        return refuse(CommandStatus::BadParam, esyn::NO_SUCH_VPORT);
    }
    Ok(usize::from(vport_number))
}

fn context(esw: &Eswitch, v: usize) -> Result<&VportContext> {
    esw.vport(v)
        .ok_or(super::Refusal(CommandStatus::BadParam, esyn::NO_SUCH_VPORT))
}

/// QUERY_VPORT_STATE.
pub(crate) fn query_vport_state(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryVportStateIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryVportStateOut::new_checked(&mut *out).map_err(short_out)?;
    need_initialized(st)?;
    let (admin, state) = match h.op_mod {
        vport_state_op::VNIC_VPORT | vport_state_op::ESW_VPORT => {
            let v = addressed_vport(ctx, i.other_vport(), i.vport_number())?;
            let c = context(esw, v)?;
            (c.admin_state, c.state())
        }
        vport_state_op::UPLINK => {
            if ctx.is_vf {
                return refuse(CommandStatus::BadParam, esyn::NOT_ESWITCH_MANAGER);
            }
            (VportState::Up, VportState::Up)
        }
        _ => return refuse(CommandStatus::BadOp, syndrome::BAD_OP_MOD),
    };
    o.set_raw_admin_state(u8::from(admin));
    o.set_raw_state(u8::from(state));
    Ok(())
}

/// MODIFY_VPORT_STATE: the PF sets a VF vport's administrative state.
pub(crate) fn modify_vport_state(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ModifyVportStateIn::new_checked(input).map_err(short_in)?;
    ModifyVportStateOut::new_checked(&mut *out).map_err(short_out)?;
    if h.op_mod != vport_state_op::ESW_VPORT {
        return refuse(CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    }
    need_initialized(st)?;
    if ctx.is_vf {
        return refuse(CommandStatus::BadParam, esyn::NOT_ESWITCH_MANAGER);
    }
    if !i.other_vport() {
        return refuse(CommandStatus::BadParam, esyn::NO_SUCH_VPORT);
    }
    let v = vf_vport(ctx, i.vport_number())?;
    let state = VportState::from(i.raw_admin_state());
    if matches!(state, VportState::Unknown(_)) {
        return refuse(CommandStatus::BadParam, esyn::BAD_VPORT_STATE);
    }
    if let Some(c) = esw.vports.get_mut(v) {
        let was = c.state();
        c.admin_state = state;
        if c.state() != was {
            esw.link_changes.push(v);
        }
    }
    Ok(())
}

/// QUERY_NIC_VPORT_CONTEXT: the context and the requested address list (as many entries as
/// the output holds; `allowed_list_size` says how many were written).
pub(crate) fn query_nic_vport_context(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryNicVportContextIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryNicVportContextOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let v = addressed_vport(ctx, i.other_vport(), i.vport_number())?;
    let c = context(esw, v)?;
    let list: &[MacAddress] = match i.allowed_list_type() {
        allowed_list_type::UNICAST => &c.uc_list,
        allowed_list_type::MULTICAST => &c.mc_list,
        allowed_list_type::VLAN => &[],
        _ => return refuse(CommandStatus::BadParam, esyn::BAD_LIST_TYPE),
    };
    let mut n = o.nic_vport_context_mut();
    n.set_permanent_address(c.permanent_address);
    n.set_mtu(c.mtu);
    n.set_promisc_uc(c.promisc_uc);
    n.set_promisc_mc(c.promisc_mc);
    n.set_promisc_all(c.promisc_all);
    n.set_disable_uc_local_lb(c.disable_uc_local_lb);
    n.set_disable_mc_local_lb(c.disable_mc_local_lb);
    n.set_min_wqe_inline_mode(InlineMode::from(c.min_wqe_inline_mode));
    let ev = c.change_events;
    n.set_arm_change_event(ev & CHANGE_ARM != 0);
    n.set_event_on_mtu(ev & CHANGE_MTU != 0);
    n.set_event_on_promisc_change(ev & CHANGE_PROMISC != 0);
    n.set_event_on_vlan_change(ev & CHANGE_VLAN != 0);
    n.set_event_on_mc_address_change(ev & CHANGE_MC != 0);
    n.set_event_on_uc_address_change(ev & CHANGE_UC != 0);
    n.set_port_guid(c.port_guid);
    n.set_node_guid(c.node_guid);
    n.set_allowed_list_type(i.allowed_list_type());
    let fit = list.len().min(n.address_capacity());
    for (k, mac) in list.iter().take(fit).enumerate() {
        n.set_address(k, *mac);
    }
    n.set_allowed_list_size(fit as u16);
    Ok(())
}

// The change-event bits as `VportContext::change_events` stores them (dword 1 of the context).
const CHANGE_ARM: u32 = 1 << 31;
const CHANGE_MTU: u32 = 1 << 4;
const CHANGE_PROMISC: u32 = 1 << 3;
const CHANGE_VLAN: u32 = 1 << 2;
const CHANGE_MC: u32 = 1 << 1;
const CHANGE_UC: u32 = 1 << 0;

/// Every field-select bit MODIFY_NIC_VPORT_CONTEXT applies.
const APPLIED: u32 = field_select::ADDRESSES_LIST
    | field_select::PERMANENT_ADDRESS
    | field_select::PROMISC
    | field_select::CHANGE_EVENT
    | field_select::MTU
    | field_select::MIN_INLINE
    | field_select::PORT_GUID
    | field_select::NODE_GUID
    | field_select::DISABLE_MC_LOCAL_LB
    | field_select::DISABLE_UC_LOCAL_LB;
/// Bits the interface has that the model refuses (no RoCE, no affiliation).
const UNSUPPORTED: u32 = field_select::ROCE_EN | field_select::AFFILIATION;

fn list_limits(st: &FunctionState) -> (usize, usize) {
    GeneralCaps::new_checked(&st.general_cur[..]).map_or((0, 0), |g| {
        (
            1usize << g.log_max_current_uc_list().min(16),
            1usize << g.log_max_current_mc_list().min(16),
        )
    })
}

/// MODIFY_NIC_VPORT_CONTEXT: every selected field is checked before any is applied.
pub(crate) fn modify_nic_vport_context(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ModifyNicVportContextIn::new_checked(input).map_err(short_in)?;
    ModifyNicVportContextOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let v = addressed_vport(ctx, i.other_vport(), i.vport_number())?;
    let sel = i.field_select();
    if sel & UNSUPPORTED != 0 {
        return refuse(CommandStatus::BadParam, esyn::UNSUPPORTED_FIELD);
    }
    if sel & !APPLIED != 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FIELD_SELECT);
    }
    let n = i.nic_vport_context();
    let mut new = context(esw, v)?.clone();
    if sel & field_select::PERMANENT_ADDRESS != 0 {
        if ctx.is_vf {
            return refuse(CommandStatus::BadParam, esyn::NOT_ESWITCH_MANAGER);
        }
        let mac = n.permanent_address();
        if mac.is_multicast() {
            return refuse(CommandStatus::BadParam, esyn::BAD_MAC);
        }
        new.permanent_address = mac;
    }
    if sel & field_select::ADDRESSES_LIST != 0 {
        let (max_uc, max_mc) = list_limits(st);
        let size = usize::from(n.allowed_list_size());
        let (max, multicast) = match n.allowed_list_type() {
            allowed_list_type::UNICAST => (max_uc, false),
            allowed_list_type::MULTICAST => (max_mc, true),
            _ => return refuse(CommandStatus::BadParam, esyn::BAD_LIST_TYPE),
        };
        if size > max {
            return refuse(CommandStatus::BadParam, esyn::LIST_TOO_LONG);
        }
        if size > n.address_capacity() {
            return refuse(CommandStatus::BadInputLength, esyn::LIST_SHORT);
        }
        let mut list = Vec::with_capacity(size);
        for k in 0..size {
            let mac = n.address(k).unwrap_or_default();
            if mac.is_multicast() != multicast || mac.is_zero() {
                return refuse(CommandStatus::BadParam, esyn::BAD_MAC);
            }
            list.push(mac);
        }
        if multicast {
            new.mc_list = list;
        } else {
            new.uc_list = list;
        }
    }
    if sel & field_select::PROMISC != 0 {
        new.promisc_uc = n.promisc_uc();
        new.promisc_mc = n.promisc_mc();
        new.promisc_all = n.promisc_all();
    }
    if sel & field_select::CHANGE_EVENT != 0 {
        let bit = |on: bool, b: u32| if on { b } else { 0 };
        new.change_events = bit(n.arm_change_event(), CHANGE_ARM)
            | bit(n.event_on_mtu(), CHANGE_MTU)
            | bit(n.event_on_promisc_change(), CHANGE_PROMISC)
            | bit(n.event_on_vlan_change(), CHANGE_VLAN)
            | bit(n.event_on_mc_address_change(), CHANGE_MC)
            | bit(n.event_on_uc_address_change(), CHANGE_UC);
    }
    if sel & field_select::MTU != 0 {
        if n.mtu() > MAX_MTU {
            return refuse(CommandStatus::BadParam, esyn::BAD_MTU);
        }
        new.mtu = n.mtu();
    }
    if sel & field_select::MIN_INLINE != 0 {
        let mode = n.min_wqe_inline_mode();
        if matches!(mode, InlineMode::Unknown(_)) {
            return refuse(CommandStatus::BadParam, esyn::BAD_INLINE_MODE);
        }
        new.min_wqe_inline_mode = u8::from(mode);
    }
    if sel & field_select::PORT_GUID != 0 {
        new.port_guid = n.port_guid();
    }
    if sel & field_select::NODE_GUID != 0 {
        new.node_guid = n.node_guid();
    }
    if sel & field_select::DISABLE_MC_LOCAL_LB != 0 {
        new.disable_mc_local_lb = n.disable_mc_local_lb();
    }
    if sel & field_select::DISABLE_UC_LOCAL_LB != 0 {
        new.disable_uc_local_lb = n.disable_uc_local_lb();
    }
    if let Some(c) = esw.vports.get_mut(v) {
        *c = new;
    }
    Ok(())
}

/// QUERY_VPORT_COUNTER: the vport's Ethernet counters (`clear`: reset after reading).
/// `transmit_errors` are the frames the E-Switch dropped on transmit, `received_errors` the
/// frames delivered that the function's receive path dropped.
pub(crate) fn query_vport_counter(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryVportCounterIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryVportCounterOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    if i.port_num() > 1 {
        return refuse(CommandStatus::BadParam, esyn::BAD_PORT);
    }
    let v = addressed_vport(ctx, i.other_vport(), i.vport_number())?;
    let Some(k) = esw.vport_counters.get_mut(v) else {
        return refuse(CommandStatus::BadParam, esyn::NO_SUCH_VPORT);
    };
    for c in VportCounter::ALL {
        let (p, b) = match c {
            VportCounter::ReceivedErrors => (k.rx_dropped, 0),
            VportCounter::TransmitErrors => (k.tx_dropped, 0),
            VportCounter::ReceivedEthBroadcast => (k.rx_broadcast_frames, k.rx_broadcast_bytes),
            VportCounter::TransmittedEthBroadcast => (k.tx_broadcast_frames, k.tx_broadcast_bytes),
            VportCounter::ReceivedEthUnicast => (k.rx_unicast_frames, k.rx_unicast_bytes),
            VportCounter::TransmittedEthUnicast => (k.tx_unicast_frames, k.tx_unicast_bytes),
            VportCounter::ReceivedEthMulticast => (k.rx_multicast_frames, k.rx_multicast_bytes),
            VportCounter::TransmittedEthMulticast => (k.tx_multicast_frames, k.tx_multicast_bytes),
            VportCounter::LocalLoopback => (k.local_loopback_frames, k.local_loopback_bytes),
            _ => (0, 0),
        };
        o.set_counter(c, p, b);
    }
    if i.clear() {
        *k = Default::default();
    }
    Ok(())
}

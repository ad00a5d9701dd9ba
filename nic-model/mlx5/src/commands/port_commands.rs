//! The function's port as its driver sees it: ACCESS_REG of the port registers Linux mlx5e
//! uses on a VF (PAOS, PMTU, PTYS, PPCNT) and the host endianness, and the queue counter
//! sets (ALLOC/DEALLOC/QUERY_Q_COUNTER). Call sites: Linux `port.c`, `en/port.c`,
//! `en_main.c` (`mlx5e_open`/`mlx5e_close`, `mlx5e_set_dev_port_mtu`), `en_stats.c`
//! (`mlx5e_create_q_counters`, the 802.3 group).
//!
//! A VF's port is its vport: PAOS keeps the function's administrative status and reports
//! the vport's operational state; PMTU keeps the function's administrative MTU (the MTU
//! frames are checked against is the vport context's, set by MODIFY_NIC_VPORT_CONTEXT);
//! PTYS reports the one link mode of the model's line rate; PPCNT's IEEE 802.3 group counts
//! the function's vport traffic (QUERY_VPORT_COUNTER's figures). The other PPCNT groups, the
//! extended link modes and writes of PTYS are refused with a syndrome: nothing mlx5e needs
//! on a VF.

use std::collections::BTreeMap;

use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::lifecycle::{AccessRegIn, AccessRegOut, RegisterId, access_reg_op};
use mlx5_hw::commands::registers::{
    HostEndianness, Ieee8023Counter, Paos, Pmtu, Ppcnt, Ptys, eth_link_mode, port_status,
    ppcnt_group, ptys_proto,
};
use mlx5_hw::commands::resources::{
    AllocQCounterIn, AllocQCounterOut, DeallocQCounterIn, DeallocQCounterOut, QueryQCounterIn,
    QueryQCounterOut,
};

use super::vport_commands::MAX_MTU;
use super::{
    Ctx, FunctionState, Result, need_enabled, need_initialized, no_op_mod, refuse, short_in,
    short_out, syndrome,
};
use mlx5_hw::commands::vport::VportState;

use crate::eswitch::Eswitch;

pub use crate::caps::MAX_Q_COUNTERS;

/// Smallest MTU PMTU takes (bytes with the L2 header: the IPv4 minimum of 68, plus 22).
pub const MIN_PORT_MTU: u16 = 68 + 22;

/// The port registers of one function (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRegisters {
    /// PAOS `admin_status` ([`port_status::UP`] or [`port_status::DOWN`]).
    pub admin_status: u8,
    /// PMTU `admin_mtu` (also reported as `oper_mtu`).
    pub admin_mtu: u16,
}

impl Default for PortRegisters {
    fn default() -> Self {
        PortRegisters {
            admin_status: port_status::UP,
            admin_mtu: 1500 + 22,
        }
    }
}

/// The function's queue counter sets by id, each with its `out_of_buffer` count (receive
/// packets dropped because the RQ had no WQE posted; 32 bits, wrapping, as the PRM's field).
pub type QCounters = BTreeMap<u8, u32>;

/// ACCESS_REG.
pub(crate) fn access_reg(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = AccessRegIn::new_checked(input).map_err(short_in)?;
    let mut o = AccessRegOut::new_checked(&mut *out).map_err(short_out)?;
    let write = match h.op_mod {
        access_reg_op::WRITE => true,
        access_reg_op::READ => false,
        _ => return refuse(CommandStatus::BadOp, syndrome::BAD_OP_MOD),
    };
    need_enabled(st)?;
    let data = i.register_data();
    let back = o.register_data_mut();
    match i.register_id() {
        RegisterId::HostEndianness => {
            let d = HostEndianness::new_checked(data).map_err(short_in)?;
            let mut b = HostEndianness::new_checked(back).map_err(short_out)?;
            if write {
                st.host_big_endian = Some(d.he());
            }
            b.set_he(st.host_big_endian.unwrap_or(false));
        }
        RegisterId::Paos => paos(st, ctx, esw, write, data, back)?,
        RegisterId::Pmtu => pmtu(st, write, data, back)?,
        RegisterId::Ptys => ptys(ctx, esw, write, data, back)?,
        RegisterId::Ppcnt => ppcnt(ctx, esw, write, data, back)?,
        _ => return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_REGISTER),
    }
    Ok(())
}

/// Local port 1 (the function's only port) or 0 is accepted.
fn local_port(port: u8) -> Result<()> {
    if port > 1 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_REGISTER_FIELD);
    }
    Ok(())
}

fn vport_up(ctx: &Ctx, esw: &Eswitch) -> bool {
    esw.vport(ctx.function.slot())
        .is_some_and(|c| c.state() == VportState::Up)
}

fn paos(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &Eswitch,
    write: bool,
    data: &[u8],
    back: &mut [u8],
) -> Result<()> {
    let d = Paos::new_checked(data).map_err(short_in)?;
    local_port(d.local_port())?;
    if write && d.ase() {
        match d.admin_status() {
            port_status::UP | port_status::DOWN => {}
            _ => return refuse(CommandStatus::BadParam, syndrome::BAD_REGISTER_FIELD),
        }
    }
    let port = d.local_port();
    if write && d.ase() {
        st.port.admin_status = d.admin_status();
    }
    let mut b = Paos::new_checked(back).map_err(short_out)?;
    b.set_local_port(port);
    b.set_admin_status(st.port.admin_status);
    let up = st.port.admin_status == port_status::UP && vport_up(ctx, esw);
    b.set_oper_status(if up {
        port_status::UP
    } else {
        port_status::DOWN
    });
    Ok(())
}

fn pmtu(st: &mut FunctionState, write: bool, data: &[u8], back: &mut [u8]) -> Result<()> {
    let d = Pmtu::new_checked(data).map_err(short_in)?;
    local_port(d.local_port())?;
    if write {
        let mtu = d.admin_mtu();
        if !(MIN_PORT_MTU..=MAX_MTU).contains(&mtu) {
            return refuse(CommandStatus::BadParam, syndrome::BAD_REGISTER_FIELD);
        }
        st.port.admin_mtu = mtu;
    }
    let port = d.local_port();
    let mut b = Pmtu::new_checked(back).map_err(short_out)?;
    b.set_local_port(port);
    b.set_max_mtu(MAX_MTU);
    b.set_admin_mtu(st.port.admin_mtu);
    b.set_oper_mtu(st.port.admin_mtu);
    Ok(())
}

fn ptys(ctx: &Ctx, esw: &Eswitch, write: bool, data: &[u8], back: &mut [u8]) -> Result<()> {
    let d = Ptys::new_checked(data).map_err(short_in)?;
    local_port(d.local_port())?;
    if write {
        // The link mode is the host's (the model's line rate), not a function's to set.
        return refuse(CommandStatus::BadParam, syndrome::REGISTER_READ_ONLY);
    }
    if d.proto_mask() & ptys_proto::ETH == 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_REGISTER_FIELD);
    }
    let port = d.local_port();
    let mode = eth_link_mode::for_rate(esw.line_rate().bits_per_sec()).map_or(0, |bit| 1u32 << bit);
    let mut b = Ptys::new_checked(back).map_err(short_out)?;
    b.set_local_port(port);
    b.set_proto_mask(ptys_proto::ETH);
    b.set_eth_proto_capability(mode);
    b.set_eth_proto_admin(mode);
    b.set_eth_proto_oper(if vport_up(ctx, esw) { mode } else { 0 });
    Ok(())
}

fn ppcnt(ctx: &Ctx, esw: &mut Eswitch, write: bool, data: &[u8], back: &mut [u8]) -> Result<()> {
    let d = Ppcnt::new_checked(data).map_err(short_in)?;
    local_port(d.local_port())?;
    if d.grp() != ppcnt_group::IEEE_802_3 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_REGISTER_FIELD);
    }
    if write {
        // The counters are QUERY_VPORT_COUNTER's (cleared with its `clear`).
        return refuse(CommandStatus::BadParam, syndrome::REGISTER_READ_ONLY);
    }
    let (port, grp) = (d.local_port(), d.grp());
    let Some(k) = esw.vport_counters.get(ctx.function.slot()) else {
        return refuse(CommandStatus::BadParam, syndrome::BAD_REGISTER_FIELD);
    };
    let mut b = Ppcnt::new_checked(back).map_err(short_out)?;
    b.set_local_port(port);
    b.set_grp(grp);
    use Ieee8023Counter as C;
    let tx = k.tx_unicast_frames + k.tx_multicast_frames + k.tx_broadcast_frames;
    let rx = k.rx_unicast_frames + k.rx_multicast_frames + k.rx_broadcast_frames;
    let tx_bytes = k.tx_unicast_bytes + k.tx_multicast_bytes + k.tx_broadcast_bytes;
    let rx_bytes = k.rx_unicast_bytes + k.rx_multicast_bytes + k.rx_broadcast_bytes;
    for (c, v) in [
        (C::FramesTransmittedOk, tx),
        (C::FramesReceivedOk, rx),
        (C::OctetsTransmittedOk, tx_bytes),
        (C::OctetsReceivedOk, rx_bytes),
        (C::MulticastFramesXmittedOk, k.tx_multicast_frames),
        (C::BroadcastFramesXmittedOk, k.tx_broadcast_frames),
        (C::MulticastFramesReceivedOk, k.rx_multicast_frames),
        (C::BroadcastFramesReceivedOk, k.rx_broadcast_frames),
    ] {
        b.set_ieee_802_3(c, v);
    }
    Ok(())
}

/// ALLOC_Q_COUNTER: the lowest free set in 1..=[`MAX_Q_COUNTERS`].
pub(crate) fn alloc_q_counter(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    AllocQCounterIn::new_checked(input).map_err(short_in)?;
    let mut o = AllocQCounterOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let Some(id) = (1..=MAX_Q_COUNTERS as u8).find(|n| !st.q_counters.contains_key(n)) else {
        return refuse(CommandStatus::NoResources, syndrome::NO_OBJECTS);
    };
    st.q_counters.insert(id, 0);
    o.set_counter_set_id(id);
    Ok(())
}

/// DEALLOC_Q_COUNTER: an allocated set no RQ counts into.
pub(crate) fn dealloc_q_counter(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DeallocQCounterIn::new_checked(input).map_err(short_in)?;
    DeallocQCounterOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let id = i.counter_set_id();
    if !st.q_counters.contains_key(&id) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_COUNTER_SET);
    }
    if st.rqs.values().any(|rq| rq.counter_set == id) {
        return refuse(CommandStatus::BadResource, syndrome::OBJECT_IN_USE);
    }
    st.q_counters.remove(&id);
    Ok(())
}

/// QUERY_Q_COUNTER: one set (or the sum of the function's sets with `aggregate`), cleared
/// after reading with `clear`. Only the function's own sets.
pub(crate) fn query_q_counter(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryQCounterIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryQCounterOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    if i.other_vport() || i.vport_number() != 0 {
        return refuse(CommandStatus::BadParam, syndrome::OTHER_FUNCTION);
    }
    let id = i.counter_set_id();
    let value = if i.aggregate() {
        st.q_counters.values().fold(0u32, |a, v| a.wrapping_add(*v))
    } else {
        match st.q_counters.get(&id) {
            Some(v) => *v,
            None => return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_COUNTER_SET),
        }
    };
    o.set_out_of_buffer(value);
    if i.clear() {
        for (k, v) in st.q_counters.iter_mut() {
            if i.aggregate() || *k == id {
                *v = 0;
            }
        }
    }
    Ok(())
}

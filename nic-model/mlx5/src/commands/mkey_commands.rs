//! CREATE_MKEY and DESTROY_MKEY: physical-address keys only (the state: `crate::mkey`).

use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::resources::{
    CreateMkeyIn, CreateMkeyOut, DestroyMkeyIn, DestroyMkeyOut, mkey_access_mode,
};

use super::wq_commands::free_number;
use super::{
    FunctionState, Result, need_initialized, no_op_mod, refuse, short_in, short_out, syndrome,
};
use crate::mkey::{FIRST_MKEY_INDEX, MkeyState};
use crate::wq::MAX_OBJECTS;

/// CREATE_MKEY: PA access mode, local rights only, a PD of the function, no ODP or UMR.
pub(crate) fn create_mkey(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateMkeyIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateMkeyOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let c = i.mkey_context();
    if c.access_mode_4_2() != 0 || c.access_mode_1_0() != mkey_access_mode::PA {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_MKEY);
    }
    if i.pg_access() || i.mkey_umem_valid() || c.umr_en() || c.a() || c.rw() || c.rr() {
        return refuse(CommandStatus::BadParam, syndrome::UNSUPPORTED_MKEY);
    }
    let pd = c.pd();
    if !st.pds.contains(&pd) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_PD);
    }
    let max = GeneralCaps::new_checked(&st.general_cur[..])
        .map_or(0, |g| (1usize << g.log_max_mkey().min(24)).min(MAX_OBJECTS));
    let index = free_number(&st.mkeys, FIRST_MKEY_INDEX, max)?;
    st.mkeys.insert(
        index,
        MkeyState {
            key: c.mkey_7_0(),
            pd,
            start: c.start_addr(),
            len: if c.length64() { None } else { Some(c.length()) },
            local_read: c.lr(),
            local_write: c.lw(),
        },
    );
    o.set_mkey_index(index);
    Ok(())
}

/// DESTROY_MKEY.
pub(crate) fn destroy_mkey(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyMkeyIn::new_checked(input).map_err(short_in)?;
    DestroyMkeyOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    if st.mkeys.remove(&(i.mkey_index() & 0xFF_FFFF)).is_none() {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    Ok(())
}

//! OUR HAC vendor commands (0x7F00-0x7F08, not NVIDIA's; layouts `mlx5_hw::commands::hac`),
//! issued by the PF (the E-Switch manager) on behalf of an enabled VF's vport. Each maps to
//! the adapter core's `EgressStage` call the 82576's HAC registers map to; the core's
//! [`HacResult`] becomes a command status and the model's syndrome ([`hac_refusal`]). A VF
//! issuing any of them is refused (BAD_PARAM `NOT_ESWITCH_MANAGER`).

use adapter_core::egress::HacResult;
use adapter_core::vport::Vport as CoreVport;
use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::hac::{
    HacAbortIn, HacAbortOut, HacCommitIn, HacCommitOut, HacFailoverIn, HacFailoverOut,
    HacOpenEpochIn, HacOpenEpochOut, HacQueryIn, HacQueryOut, HacSetControlIn, HacSetControlOut,
    HacSetLimitsIn, HacSetLimitsOut, HacSetTaggedIn, HacSetTaggedOut, HacUnprotectIn,
    HacUnprotectOut, control_select,
};

use super::vport_commands::{esw_syndrome as esyn, vf_vport};
use super::{
    Ctx, FunctionState, Refusal, Result, need_initialized, no_op_mod, refuse, short_in, short_out,
    syndrome,
};
use crate::eswitch::Eswitch;

/// The command status and syndrome of a HAC result other than `Ok`; `None` for `Ok`.
pub(crate) fn hac_refusal(r: HacResult) -> Option<Refusal> {
    match r {
        HacResult::Ok => None,
        HacResult::BadOp => Some(Refusal(CommandStatus::BadOp, syndrome::BAD_OPCODE)),
        HacResult::NotTagged => Some(Refusal(CommandStatus::BadSysState, esyn::HAC_NOT_TAGGED)),
        HacResult::BadEpoch => Some(Refusal(CommandStatus::BadParam, esyn::HAC_BAD_EPOCH)),
        HacResult::Disabled => Some(Refusal(CommandStatus::BadSysState, esyn::HAC_DISABLED)),
    }
}

fn result(r: HacResult) -> Result<()> {
    match hac_refusal(r) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// The checks every HAC command makes after its lengths: op_mod 0, the PF initialized.
fn manager(st: &FunctionState, ctx: &Ctx, h: InputHeader) -> Result<()> {
    no_op_mod(h)?;
    need_initialized(st)?;
    if ctx.is_vf {
        return refuse(CommandStatus::BadParam, esyn::NOT_ESWITCH_MANAGER);
    }
    Ok(())
}

/// The core's vport of an enabled VF's vport number.
fn pool(ctx: &Ctx, vport_number: u16) -> Result<CoreVport> {
    let v = vf_vport(ctx, vport_number)?;
    Eswitch::core_vport(v).ok_or(Refusal(CommandStatus::BadParam, esyn::NO_SUCH_VPORT))
}

/// HAC_SET_CONTROL.
pub(crate) fn set_control(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = HacSetControlIn::new_checked(input).map_err(short_in)?;
    HacSetControlOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, h)?;
    let sel = i.field_select();
    if sel & !control_select::ALL != 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_FIELD_SELECT);
    }
    if sel & control_select::GUARD != 0 {
        esw.hac_set_guard(u64::from(i.guard_bytes()));
    }
    if sel & control_select::ENABLE != 0 {
        esw.hac_set_enabled(i.enable(), ctx.now);
    }
    Ok(())
}

/// HAC_SET_TAGGED.
pub(crate) fn set_tagged(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = HacSetTaggedIn::new_checked(input).map_err(short_in)?;
    HacSetTaggedOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, h)?;
    let p = pool(ctx, i.vport_number())?;
    esw.hac_set_tagged(p, i.tagged(), ctx.now);
    Ok(())
}

/// HAC_OPEN_EPOCH.
pub(crate) fn open_epoch(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = HacOpenEpochIn::new_checked(input).map_err(short_in)?;
    HacOpenEpochOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, h)?;
    let p = pool(ctx, i.vport_number())?;
    result(esw.hac_open_epoch(p, i.epoch()))
}

/// HAC_COMMIT.
pub(crate) fn commit(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = HacCommitIn::new_checked(input).map_err(short_in)?;
    HacCommitOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, h)?;
    let p = pool(ctx, i.vport_number())?;
    result(esw.hac_commit(p, i.epoch(), ctx.now))
}

/// HAC_ABORT: the output carries the frames discarded.
pub(crate) fn abort(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = HacAbortIn::new_checked(input).map_err(short_in)?;
    let mut o = HacAbortOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, h)?;
    let p = pool(ctx, i.vport_number())?;
    let (r, n) = esw.hac_abort(p, i.epoch());
    result(r)?;
    o.set_discarded(n.min(u32::MAX as usize) as u32);
    Ok(())
}

/// HAC_FAILOVER: the output carries the frames discarded.
pub(crate) fn failover(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = HacFailoverIn::new_checked(input).map_err(short_in)?;
    let mut o = HacFailoverOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, h)?;
    let p = pool(ctx, i.vport_number())?;
    let (r, n) = esw.hac_failover(p);
    result(r)?;
    o.set_discarded(n.min(u32::MAX as usize) as u32);
    Ok(())
}

/// HAC_UNPROTECT.
pub(crate) fn unprotect(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = HacUnprotectIn::new_checked(input).map_err(short_in)?;
    HacUnprotectOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, h)?;
    let p = pool(ctx, i.vport_number())?;
    result(esw.hac_unprotect(p, ctx.now))
}

/// HAC_SET_LIMITS.
pub(crate) fn set_limits(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = HacSetLimitsIn::new_checked(input).map_err(short_in)?;
    HacSetLimitsOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, h)?;
    let p = pool(ctx, i.vport_number())?;
    esw.hac_set_limits(p, i.frames(), i.bytes());
    Ok(())
}

/// HAC_QUERY.
pub(crate) fn query(
    st: &mut FunctionState,
    ctx: &Ctx,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = HacQueryIn::new_checked(input).map_err(short_in)?;
    let mut o = HacQueryOut::new_checked(&mut *out).map_err(short_out)?;
    manager(st, ctx, h)?;
    let p = pool(ctx, i.vport_number())?;
    let s = esw.hac_stats(p);
    let e = &esw.egress;
    let sat = |x: u64| x.min(u64::from(u32::MAX)) as u32;
    let l = e.hac_limits(p);
    let port = e.hac_port_stats();
    o.set_enabled(e.hac_enabled());
    o.set_tagged(e.tagged(p));
    o.set_guard_bytes(sat(e.guard_bytes()));
    o.set_open_epoch(s.open_epoch);
    o.set_committed_epoch(s.committed_epoch);
    o.set_buffered_frames(s.buffered_frames);
    o.set_buffered_bytes(s.buffered_bytes);
    o.set_max_frames(s.max_frames);
    o.set_max_bytes(s.max_bytes);
    o.set_released(s.released);
    o.set_discarded(s.discarded);
    o.set_backpressure(s.backpressure);
    o.set_limit_frames(sat(l.frames as u64));
    o.set_limit_bytes(sat(l.bytes as u64));
    o.set_last_commit_to_first_ns(sat(port.last_commit_to_first_ns));
    o.set_last_drain_ns(sat(port.last_drain_ns));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every core result maps to its own status and syndrome, `Ok` to none.
    #[test]
    fn results_map_to_distinct_refusals() {
        assert_eq!(hac_refusal(HacResult::Ok), None);
        let all = [
            HacResult::BadOp,
            HacResult::NotTagged,
            HacResult::BadEpoch,
            HacResult::Disabled,
        ];
        let mut seen = std::collections::HashSet::new();
        for r in all {
            let Some(Refusal(status, synd)) = hac_refusal(r) else {
                panic!("{r:?} refused");
            };
            assert_ne!(status, CommandStatus::Ok);
            assert!(seen.insert(synd), "{r:?}");
        }
        assert_eq!(
            hac_refusal(HacResult::BadEpoch),
            Some(Refusal(CommandStatus::BadParam, esyn::HAC_BAD_EPOCH))
        );
    }
}

//! The HAC register block of the 82576 family: how the adapter core's egress stage (HAC epochs,
//! commit/abort/failover/unprotect, limits) is exposed through PF BAR0.
//!
//! HACCMD carries the operation ([`const@HACCMD::OP`]) and the VF ([`const@HACCMD::VF`]), HACARG the
//! epoch; the result goes to HACSTS ([`const@HACSTS::RESULT`], and [`const@HACSTS::COUNT`] counts the
//! commands executed). The encoding of the core's [`HacResult`] in HACSTS.RESULT belongs to
//! this family ([`hacsts_result`]); the core's type carries none.

use igb_hw::PoolIndex;
use igb_hw::addr::NUM_POOLS;
use igb_hw::regs::{self, FieldValue, HACCMD, HACCTL, HACSTS, PfReg, pf};

use super::Nic;
use crate::vport;
use adapter_core::egress::HacResult;

/// HACSTS.RESULT for `result`.
pub(crate) fn hacsts_result(result: HacResult) -> FieldValue<u32, HACSTS::Register> {
    match result {
        HacResult::Ok => HACSTS::RESULT::Ok,
        HacResult::BadOp => HACSTS::RESULT::BadOp,
        HacResult::NotTagged => HACSTS::RESULT::NotTagged,
        HacResult::BadEpoch => HACSTS::RESULT::BadEpoch,
        HacResult::Disabled => HACSTS::RESULT::Disabled,
    }
}

/// Gauges (occupancy, maxima) saturate at 2^32 - 1.
fn saturate(x: u64) -> u32 {
    x.min(u64::from(u32::MAX)) as u32
}

impl Nic {
    /// A read of a HAC register; `None` for every other register.
    pub(super) fn hac_read(&self, reg: PfReg) -> Option<u32> {
        Some(match reg {
            PfReg::HACCTL => regs::value(HACCTL::ENABLE.val(u32::from(self.egress.hac_enabled()))),
            PfReg::HACGUARD => saturate(self.egress.guard_bytes()),
            PfReg::HACTAG => self.hac_tagged_mask(),
            PfReg::HACC2F => saturate(self.egress.hac_port_stats().last_commit_to_first_ns),
            PfReg::HACDRAIN => saturate(self.egress.hac_port_stats().last_drain_ns),
            PfReg::HACOPEN(n)
            | PfReg::HACCOMMITTED(n)
            | PfReg::HACBUFF(n)
            | PfReg::HACBUFB(n)
            | PfReg::HACMAXF(n)
            | PfReg::HACMAXB(n)
            | PfReg::HACREL(n)
            | PfReg::HACDISC(n)
            | PfReg::HACBP(n)
            | PfReg::HACLIMF(n)
            | PfReg::HACLIMB(n) => self.hac_pool_register(reg, n),
            _ => return None,
        })
    }

    /// A write of a HAC register; `false` for every other register (HACARG and HACSTS are
    /// plain storage).
    pub(super) fn hac_write(&mut self, reg: PfReg, v: u32) -> bool {
        match reg {
            PfReg::HACCTL => {
                let enable = regs::view::<HACCTL::Register>(v).is_set(HACCTL::ENABLE);
                self.egress.set_hac_enabled(enable, self.now);
                self.tx_kick_all();
            }
            PfReg::HACGUARD => self.egress.set_guard_bytes(u64::from(v)),
            PfReg::HACTAG => {
                for pool in (0..NUM_POOLS).filter_map(PoolIndex::new) {
                    self.egress
                        .set_tagged(vport(pool), v & pool.bit() != 0, self.now);
                }
                self.tx_kick_all();
            }
            PfReg::HACCMD => self.hac_command(v),
            PfReg::HACLIMF(n) | PfReg::HACLIMB(n) => {
                if let Some(pool) = PoolIndex::new(usize::from(n)) {
                    let mut l = self.egress.hac_limits(vport(pool));
                    if matches!(reg, PfReg::HACLIMF(_)) {
                        l.frames = v as usize;
                    } else {
                        l.bytes = v as usize;
                    }
                    self.egress.set_hac_limits(vport(pool), l);
                    self.resume_backpressured(pool);
                }
            }
            _ => return false,
        }
        true
    }

    /// HACTAG: bit n set when pool n is checkpointing.
    pub(super) fn hac_tagged_mask(&self) -> u32 {
        (0..NUM_POOLS)
            .filter_map(PoolIndex::new)
            .filter(|&p| self.egress.tagged(vport(p)))
            .fold(0, |m, p| m | p.bit())
    }

    fn hac_pool_register(&self, reg: PfReg, n: u8) -> u32 {
        let Some(pool) = PoolIndex::new(usize::from(n)) else {
            return 0;
        };
        let st = self.egress.stats(vport(pool));
        let h = self.egress.hac_state(vport(pool));
        let (frames, bytes) = self.egress.occupancy(vport(pool));
        let l = self.egress.hac_limits(vport(pool));
        // Gauges (occupancy, maxima) saturate; event counters are free running and wrap at
        // 2^32, like the VF statistics registers: readers extend them to 64 bits from the
        // difference between reads.
        let wrap = |x: u64| x as u32;
        match reg {
            PfReg::HACOPEN(_) => h.open,
            PfReg::HACCOMMITTED(_) => h.committed,
            PfReg::HACBUFF(_) => saturate(frames as u64),
            PfReg::HACBUFB(_) => saturate(bytes as u64),
            PfReg::HACMAXF(_) => saturate(st.max_frames as u64),
            PfReg::HACMAXB(_) => saturate(st.max_bytes as u64),
            PfReg::HACREL(_) => wrap(st.released),
            PfReg::HACDISC(_) => wrap(st.discarded),
            PfReg::HACBP(_) => wrap(st.backpressure_events),
            PfReg::HACLIMF(_) => l.frames.min(u32::MAX as usize) as u32,
            PfReg::HACLIMB(_) => l.bytes.min(u32::MAX as usize) as u32,
            _ => 0,
        }
    }

    /// Executes a HACCMD write: OP and VF from `v`, the epoch from HACARG; the result goes to
    /// HACSTS.RESULT and HACSTS.COUNT advances.
    fn hac_command(&mut self, v: u32) {
        let cmd = regs::view::<HACCMD::Register>(v);
        let epoch = self.regs.get(PfReg::HACARG);
        let pool = PoolIndex::new(cmd.read(HACCMD::VF) as usize);
        let result = match (cmd.read_as_enum(HACCMD::OP), pool) {
            (_, None) | (None, _) => HacResult::BadOp,
            (Some(op), Some(p)) => {
                use HACCMD::OP::Value as Op;
                match op {
                    Op::OpenEpoch => self.egress.open_epoch(vport(p), epoch),
                    Op::Commit => self.egress.commit(vport(p), epoch, self.now),
                    Op::Abort => {
                        let (r, _) = self.egress.abort(vport(p), epoch);
                        self.resume_backpressured(p);
                        r
                    }
                    Op::Failover => {
                        let (r, _) = self.egress.failover(vport(p));
                        self.resume_backpressured(p);
                        r
                    }
                    Op::Unprotect => {
                        let r = self.egress.unprotect(vport(p), self.now);
                        self.resume_backpressured(p);
                        r
                    }
                }
            }
        };
        let count = self
            .regs
            .read(pf::HACSTS)
            .read(HACSTS::COUNT)
            .wrapping_add(1);
        self.regs.write(
            pf::HACSTS,
            hacsts_result(result) + HACSTS::COUNT.val(count & 0xFFFF),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [HacResult; 5] = [
        HacResult::Ok,
        HacResult::BadOp,
        HacResult::NotTagged,
        HacResult::BadEpoch,
        HacResult::Disabled,
    ];

    /// The encoding the driver decodes (`HACSTS::RESULT` values) is the one the model writes,
    /// and distinct results stay distinct.
    #[test]
    fn hacsts_result_round_trips_through_the_register() {
        let mut seen = std::collections::HashSet::new();
        for r in ALL {
            let sts = regs::view::<HACSTS::Register>(regs::value(hacsts_result(r)));
            let decoded = match sts.read_as_enum(HACSTS::RESULT) {
                Some(HACSTS::RESULT::Value::Ok) => HacResult::Ok,
                Some(HACSTS::RESULT::Value::BadOp) => HacResult::BadOp,
                Some(HACSTS::RESULT::Value::NotTagged) => HacResult::NotTagged,
                Some(HACSTS::RESULT::Value::BadEpoch) => HacResult::BadEpoch,
                Some(HACSTS::RESULT::Value::Disabled) => HacResult::Disabled,
                None => panic!("{r:?} has no RESULT value"),
            };
            assert_eq!(decoded, r);
            assert_eq!(sts.read(HACSTS::COUNT), 0, "RESULT stays in its field");
            assert!(seen.insert(sts.get()));
        }
    }

    /// The datasheet-style values of HACSTS.RESULT (docs/hac.md).
    #[test]
    fn hacsts_result_values() {
        let code = |r| regs::value(hacsts_result(r));
        assert_eq!(code(HacResult::Ok), 0);
        assert_eq!(code(HacResult::BadOp), 1);
        assert_eq!(code(HacResult::NotTagged), 2);
        assert_eq!(code(HacResult::BadEpoch), 3);
        assert_eq!(code(HacResult::Disabled), 4);
    }
}

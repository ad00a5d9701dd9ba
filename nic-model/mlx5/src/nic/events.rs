//! The events of one function: its MSI-X vectors raised, EQEs written into its EQs, the EQ
//! doorbell (`crate::eq` holds the EQ state).

use std::collections::BTreeSet;

use hw_common::Iova;
use mlx5_hw::cqe::owner_bit;
use mlx5_hw::eqe::{EQ_CI_MASK, EQE_LEN, EqDoorbell, EqeRepr, EventData, EventType};

use super::Function;
use crate::counters::Counters;
use crate::msix::{Interrupt, Raised};

use crate::eq::*;

impl Function {
    /// Raises MSI-X `vector` of this function: sent, or pending in the PBA while masked, or
    /// dropped (counted) while MSI-X is disabled.
    pub(crate) fn raise(&mut self, vector: u16, c: &mut Counters, out: &mut Vec<Interrupt>) {
        let ctrl = self.config.msix_control();
        let enabled = ctrl & crate::config::msix_cap::ENABLE != 0;
        let masked = ctrl & crate::config::msix_cap::FUNCTION_MASK != 0;
        match self.msix.raise(self.id, vector, enabled, masked) {
            Raised::Sent(i) => {
                c.interrupts_sent += 1;
                out.push(i);
            }
            Raised::Pending => c.interrupts_pending += 1,
            Raised::Disabled | Raised::NoVector => c.interrupts_dropped += 1,
        }
    }

    /// Sends the pending vectors whose masks cleared.
    pub(crate) fn deliver_pending(&mut self, c: &mut Counters, out: &mut Vec<Interrupt>) {
        let ctrl = self.config.msix_control();
        let enabled = ctrl & crate::config::msix_cap::ENABLE != 0;
        let masked = ctrl & crate::config::msix_cap::FUNCTION_MASK != 0;
        let sent = self.msix.unmasked_pending(self.id, enabled, masked);
        c.interrupts_sent += sent.len() as u64;
        out.extend(sent);
    }

    /// Posts an event to the EQs in `eqs` (those subscribed to its type).
    pub(crate) fn post_event(
        &mut self,
        eqs: &BTreeSet<u8>,
        event_type: EventType,
        data: EventData,
        c: &mut Counters,
        out: &mut Vec<Interrupt>,
    ) {
        self.post_event_sub(eqs, event_type, 0, data, c, out);
    }

    /// [`Function::post_event`] with an EQE sub-type (a port change's down or active).
    pub(crate) fn post_event_sub(
        &mut self,
        eqs: &BTreeSet<u8>,
        event_type: EventType,
        sub_type: u8,
        data: EventData,
        c: &mut Counters,
        out: &mut Vec<Interrupt>,
    ) {
        for eqn in eqs {
            let Some(eq) = self.state.eqs.get_mut(eqn) else {
                continue;
            };
            if eq.failed {
                c.eqes_dropped_failed_eq += 1;
                continue;
            }
            if eq.outstanding() >= eq.size() {
                eq.overflows += 1;
                c.eq_overflows += 1;
                self.counters.eq_overflows += 1;
                continue;
            }
            let p = eq.producer;
            let eqe = EqeRepr {
                event_type,
                sub_type,
                data,
                owner: owner_bit(p, eq.log_size),
            }
            .to_bytes();
            let written = eq.eqe_iova(p & (eq.size() - 1)).is_some_and(|at| {
                // The owner byte last: the driver sees the EQE when its owner bit flips.
                let last = EQE_LEN - 1;
                self.iommu.write(Iova(at), &eqe[..last]).is_ok()
                    && self
                        .iommu
                        .write(Iova(at + last as u64), &eqe[last..])
                        .is_ok()
            });
            if !written {
                eq.failed = true;
                c.eq_dma_faults += 1;
                self.counters.eq_dma_faults += 1;
                continue;
            }
            eq.producer = (p + 1) & EQ_CI_MASK;
            c.eqes_written += 1;
            let fire = match eq.arm {
                EqArm::Armed => {
                    eq.arm = EqArm::Fired;
                    true
                }
                EqArm::AlwaysArmed => true,
                EqArm::Fired => false,
            };
            let vector = eq.vector;
            if fire {
                self.raise(vector, c, out);
            }
        }
    }

    /// The EQ doorbell of UAR page `uar`: the 4 bytes written, and whether it arms.
    pub(crate) fn eq_doorbell(
        &mut self,
        uar: u32,
        data: &[u8],
        arm: bool,
        c: &mut Counters,
        out: &mut Vec<Interrupt>,
    ) {
        let Ok(db) = EqDoorbell::new_checked(data) else {
            c.eq_doorbell_errors += 1;
            return;
        };
        let (eqn, ci) = (db.eqn(), db.ci());
        let Some(eq) = self.state.eqs.get_mut(&eqn).filter(|eq| eq.uar == uar) else {
            c.eq_doorbell_errors += 1;
            return;
        };
        // The consumer may move forward up to the producer, never past it.
        let advance = ci.wrapping_sub(eq.consumer) & EQ_CI_MASK;
        if advance > eq.outstanding() {
            c.eq_doorbell_errors += 1;
            return;
        }
        eq.consumer = ci;
        if !arm || eq.arm == EqArm::AlwaysArmed {
            return;
        }
        if eq.outstanding() > 0 && !eq.failed {
            eq.arm = EqArm::Fired;
            let vector = eq.vector;
            self.raise(vector, c, out);
        } else {
            eq.arm = EqArm::Armed;
        }
    }
}

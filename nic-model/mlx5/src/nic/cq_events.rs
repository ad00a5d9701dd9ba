//! The completions of one function: CQEs written into its CQs, the CQ arm doorbell, and the
//! completion events of armed CQs (`crate::cq` holds the CQ state).

use std::collections::BTreeSet;

use hw_common::Iova;
use mlx5_hw::cqe::{
    CQ_CI_MASK, CQ_DB_RECORD_LEN, CQE_LEN, CqArmCmd, CqArmDoorbell, CqDbRecord, CqeOpcode, CqeRepr,
    owner_bit,
};
use mlx5_hw::eqe::{EventData, EventType};

use super::{Function, Mlx5Nic};
use crate::counters::Counters;
use crate::function::FunctionId;
use crate::msix::Interrupt;

use crate::cq::*;

impl Function {
    /// Posts the completion event of CQ `cqn` to its EQ and disarms the CQ.
    fn completion_event(&mut self, cqn: u32, c: &mut Counters, out: &mut Vec<Interrupt>) {
        let Some(cq) = self.state.cqs.get_mut(&cqn) else {
            return;
        };
        cq.arm = CqArm::Disarmed;
        let eqs = BTreeSet::from([cq.eqn]);
        c.completion_events += 1;
        self.post_event(
            &eqs,
            EventType::Completion,
            EventData::Completion { cqn },
            c,
            out,
        );
    }

    /// Writes `cqe` (its owner bit set by the model) as the next CQE of CQ `cqn`; an armed
    /// CQ then posts its completion event. Returns whether the CQE was written: a missing
    /// CQ, a full CQ, a failed CQ and a DMA fault drop it, each counted.
    pub(crate) fn post_cqe(
        &mut self,
        cqn: u32,
        cqe: &CqeRepr,
        c: &mut Counters,
        out: &mut Vec<Interrupt>,
    ) -> bool {
        self.post_cqe_bytes(cqn, cqe.to_bytes(), cqe.solicited, c, out)
    }

    /// [`Function::post_cqe`] for a CQE as bytes (normal or error layout, the owner bit in
    /// bit 0 of the last byte set here); `solicited` for the solicited arming.
    pub(crate) fn post_cqe_bytes(
        &mut self,
        cqn: u32,
        mut bytes: [u8; CQE_LEN],
        solicited: bool,
        c: &mut Counters,
        out: &mut Vec<Interrupt>,
    ) -> bool {
        let Some(cq) = self.state.cqs.get_mut(&cqn) else {
            c.cqes_no_cq += 1;
            return false;
        };
        if cq.failed {
            c.cqes_dropped_failed_cq += 1;
            return false;
        }
        // The consumer counter software keeps in the doorbell record (a counter that does
        // not fit, or an unreadable record, leaves the last one seen).
        let mut rec = [0u8; CQ_DB_RECORD_LEN];
        if self.iommu.read(Iova(cq.dbr_addr), &mut rec).is_err() {
            c.cq_dbr_read_faults += 1;
        } else if let Ok(r) = CqDbRecord::new_checked(&rec[..]) {
            cq.consume_to(r.ci());
        }
        if cq.outstanding() >= cq.size() {
            cq.overflows += 1;
            c.cq_overflows += 1;
            self.counters.cq_overflows += 1;
            return false;
        }
        let p = cq.producer;
        let last = CQE_LEN - 1;
        bytes[last] = (bytes[last] & !1) | u8::from(owner_bit(p, cq.log_size));
        let written = cq.cqe_iova(p & (cq.size() - 1)).is_some_and(|at| {
            // The byte with the owner bit last: software sees the CQE when it flips.
            self.iommu.write(Iova(at), &bytes[..last]).is_ok()
                && self
                    .iommu
                    .write(Iova(at + last as u64), &bytes[last..])
                    .is_ok()
        });
        if !written {
            cq.failed = true;
            c.cq_dma_faults += 1;
            self.counters.cq_dma_faults += 1;
            return false;
        }
        cq.producer = (p + 1) & CQ_CI_MASK;
        c.cqes_written += 1;
        let fire = match cq.arm {
            CqArm::Armed => true,
            CqArm::SolicitedArmed => solicited,
            CqArm::Disarmed => false,
        };
        if fire {
            self.completion_event(cqn, c, out);
        }
        true
    }

    /// The CQ arm doorbell of UAR page `uar`: the 8 bytes written.
    pub(crate) fn cq_arm_doorbell(
        &mut self,
        uar: u32,
        data: &[u8],
        c: &mut Counters,
        out: &mut Vec<Interrupt>,
    ) {
        let Ok(db) = CqArmDoorbell::new_checked(data) else {
            c.cq_doorbell_errors += 1;
            return;
        };
        let (cqn, ci, cmd, sn) = (db.cqn(), db.ci(), db.cmd(), db.sn());
        let Some(cq) = self.state.cqs.get_mut(&cqn).filter(|cq| cq.uar == uar) else {
            c.cq_doorbell_errors += 1;
            return;
        };
        if !cq.consume_to(ci) {
            c.cq_doorbell_errors += 1;
            return;
        }
        cq.arm_sn = sn;
        match cmd {
            CqArmCmd::NextCqe if cq.outstanding() > 0 && !cq.failed => {
                self.completion_event(cqn, c, out);
            }
            CqArmCmd::NextCqe => cq.arm = CqArm::Armed,
            CqArmCmd::Solicited => cq.arm = CqArm::SolicitedArmed,
            CqArmCmd::Unknown(_) => c.cq_doorbell_errors += 1,
        }
    }
}

impl Mlx5Nic {
    /// Posts `cqe` on CQ `cqn` of function `f` (the datapath's way to complete work).
    pub(crate) fn post_cqe(&mut self, f: FunctionId, cqn: u32, cqe: &CqeRepr) -> bool {
        let Some(func) = self.functions.get_mut(f.slot()).filter(|x| x.id == f) else {
            self.counters.cqes_no_cq += 1;
            return false;
        };
        func.post_cqe(cqn, cqe, &mut self.counters, &mut self.interrupts)
    }

    /// Posts a CQE given as bytes (an error CQE) on CQ `cqn` of function `f`.
    pub(crate) fn post_cqe_bytes(
        &mut self,
        f: FunctionId,
        cqn: u32,
        bytes: [u8; CQE_LEN],
        solicited: bool,
    ) -> bool {
        let Some(func) = self.functions.get_mut(f.slot()).filter(|x| x.id == f) else {
            self.counters.cqes_no_cq += 1;
            return false;
        };
        func.post_cqe_bytes(
            cqn,
            bytes,
            solicited,
            &mut self.counters,
            &mut self.interrupts,
        )
    }

    /// Test hook (until the datapath completes work): posts a send CQE (opcode `REQ`, the
    /// WQE counter the CQ's producer counter) on CQ `cqn` of function `f`, exactly as the
    /// datapath will — owner bit, overflow, DMA fault and completion event included.
    /// Returns whether the CQE was written.
    pub fn post_test_cqe(&mut self, f: FunctionId, cqn: u32) -> bool {
        let wqe_counter = self
            .function(f)
            .and_then(|func| func.state.cqs.get(&cqn))
            .map_or(0, |cq| cq.producer as u16);
        let cqe = CqeRepr {
            opcode: CqeOpcode::Req,
            wqe_counter,
            ..CqeRepr::default()
        };
        self.post_cqe(f, cqn, &cqe)
    }
}

//! The engines' inputs: for one run the device lends the TX engines, and the state the engines
//! and the switch work on, as a [`Datapath`]; afterwards it raises the interrupts the run
//! requested ([`IrqRequest`]), in order.

use igb_hw::addr::MAX_VFS;
use igb_hw::pci::command::BUS_MASTER;
use igb_hw::{PoolIndex, QueueIndex, VfIndex};

use super::Nic;
use crate::datapath::{Datapath, IrqRequest};
use crate::function::FunctionId;
use crate::tx::TxEngines;

impl Nic {
    /// Lends the TX engines, and the state the engines and the switch work on, for one run.
    /// The caller delivers the interrupts the run requested ([`Nic::deliver_requested_irqs`]).
    pub(super) fn engines(&mut self) -> (&mut TxEngines, Datapath<'_>) {
        let mut bus_master = [false; 1 + MAX_VFS];
        bus_master[FunctionId::Pf.slot()] = self.pf_config.command() & BUS_MASTER != 0;
        for vf in VfIndex::all(MAX_VFS) {
            bus_master[FunctionId::Vf(vf).slot()] =
                self.vf_config[vf.get()].command() & BUS_MASTER != 0;
        }
        let num_vfs = self.num_vfs();
        let line_rate = self.wire.rate();
        (
            &mut self.tx,
            Datapath {
                regs: &mut self.regs,
                iommu: &self.iommu,
                bus_master,
                egress: &mut self.egress,
                counters: &mut self.counters,
                switch_stats: &mut self.switch_stats,
                irqs: &mut self.requested_irqs,
                now: self.now,
                num_vfs,
                line_rate,
            },
        )
    }

    /// Runs TX queue `q` as far as it can go now, within one run's budget.
    pub(super) fn tx_kick(&mut self, q: QueueIndex) {
        let (tx, mut dp) = self.engines();
        tx.kick(&mut dp, q);
        self.deliver_requested_irqs();
    }

    /// Runs every TX queue once.
    pub(super) fn tx_kick_all(&mut self) {
        let (tx, mut dp) = self.engines();
        tx.kick_all(&mut dp);
        self.deliver_requested_irqs();
    }

    /// Lets queues of `pool` that stopped for backpressure fetch again.
    pub(super) fn resume_backpressured(&mut self, pool: PoolIndex) {
        if !self.tx.any_blocked(pool) {
            return;
        }
        let (tx, mut dp) = self.engines();
        tx.resume_backpressured(&mut dp, pool);
        self.deliver_requested_irqs();
    }

    /// Continues the TX queues that stopped on their run budget and whose pace allows it now.
    pub(super) fn continue_pending_tx(&mut self) {
        if !self.tx.any_due(self.now) {
            return;
        }
        let (tx, mut dp) = self.engines();
        tx.continue_pending(&mut dp);
        self.deliver_requested_irqs();
    }

    /// Raises, in order, the interrupts the engines requested.
    pub(super) fn deliver_requested_irqs(&mut self) {
        let mut irqs = std::mem::take(&mut self.requested_irqs);
        for irq in irqs.drain(..) {
            match irq {
                IrqRequest::PfCause(bits) => self.raise_pf_cause(bits),
                IrqRequest::Queue { queue, owner, tx } => self.queue_interrupt(queue, owner, tx),
            }
        }
        // Keep the allocation for the next run.
        self.requested_irqs = irqs;
    }
}

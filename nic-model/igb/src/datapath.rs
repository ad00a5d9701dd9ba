//! What the TX and RX engines and the internal switch work on, handed to them explicitly.
//!
//! The device ([`crate::Nic`]) owns the register file, the per-function IOMMUs, the egress
//! stage and the counters. For one run of an engine it lends them as a [`Datapath`]: the
//! engines read and write registers, DMA as the owning function and enqueue frames through it,
//! and *request* interrupts ([`IrqRequest`]) instead of raising them. The device delivers the
//! requests in order when the run returns, so the engines never reach back into the device
//! (interrupt delivery touches only cause, mask and MSI-X state, which the engines do not read).

use bytes::BytesMut;
use igb_hw::addr::{MAX_VFS, NUM_POOLS};
use igb_hw::frame::{DEFAULT_MAX_FRAME, MAX_JUMBO_FRAME};
use igb_hw::regs::{FieldValue, ICR, RCTL, VMOLR, pf};
use igb_hw::{Iova, PoolIndex, QueueIndex};

use crate::function::FunctionId;
use crate::metrics::{ModelCounters, SwitchPoolStats};
use crate::regfile::RegisterFile;
use adapter_core::clock::SimTime;
use adapter_core::egress::EgressStage;
use adapter_core::memory::{DmaFault, DmaKind, Iommu, IotlbEntry};
use adapter_core::wire::LineRate;

/// An interrupt an engine asks the device to raise once its run returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IrqRequest {
    /// PF interrupt causes (ICR bits).
    PfCause(u32),
    /// A queue event (descriptors written back) of physical queue `queue`, owned by `owner`:
    /// the owner's queue vector (IVAR0 of a VF) or ICR.TXDW / ICR.RXT0 of the PF.
    Queue {
        /// The queue.
        queue: QueueIndex,
        /// Its owning function.
        owner: FunctionId,
        /// TX (true) or RX (false).
        tx: bool,
    },
}

impl IrqRequest {
    /// PF causes from ICR fields.
    pub(crate) fn pf(causes: FieldValue<u32, ICR::Register>) -> IrqRequest {
        IrqRequest::PfCause(causes.value)
    }
}

/// The state one engine run may touch.
pub(crate) struct Datapath<'a> {
    /// PF register file (queue registers, statistics, switch configuration).
    pub(crate) regs: &'a mut RegisterFile,
    /// Per-function IOMMUs, indexed by [`FunctionId::slot`].
    pub(crate) iommu: &'a [Iommu],
    /// Bus mastering enabled, per function slot.
    pub(crate) bus_master: [bool; 1 + MAX_VFS],
    /// The port's egress stage.
    pub(crate) egress: &'a mut EgressStage,
    /// Model counters.
    pub(crate) counters: &'a mut ModelCounters,
    /// Per-pool switch counters.
    pub(crate) switch_stats: &'a mut [SwitchPoolStats; NUM_POOLS],
    /// Interrupts requested during the run, in order.
    pub(crate) irqs: &'a mut Vec<IrqRequest>,
    /// Current virtual time.
    pub(crate) now: SimTime,
    /// VFs enabled (pools below this are VF-owned).
    pub(crate) num_vfs: usize,
    /// Wire speed (TX fetch pacing).
    pub(crate) line_rate: LineRate,
}

impl<'a> Datapath<'a> {
    /// The function that owns physical queue `q`.
    pub(crate) fn queue_owner(&self, q: QueueIndex) -> FunctionId {
        FunctionId::owner_of(q, self.num_vfs)
    }

    /// Whether `f` may master the bus (PCI command register).
    pub(crate) fn bus_master(&self, f: FunctionId) -> bool {
        self.bus_master.get(f.slot()).copied().unwrap_or(false)
    }

    /// DMA read as function `f`.
    pub(crate) fn dma_read(
        &self,
        f: FunctionId,
        iova: Iova,
        buf: &mut [u8],
    ) -> Result<(), DmaFault> {
        match self.iommu.get(f.slot()) {
            Some(m) => m.read(iova, buf),
            None => Err(DmaFault {
                iova,
                len: buf.len(),
                kind: DmaKind::Read,
            }),
        }
    }

    /// DMA read as function `f` of `len` bytes appended to `out` (nothing appended on a fault).
    /// Kept out of line so the TX engine's loop stays small enough for its register accessors
    /// to be inlined.
    #[inline(never)]
    pub(crate) fn dma_read_append(
        &self,
        f: FunctionId,
        iova: Iova,
        len: usize,
        out: &mut BytesMut,
    ) -> Result<(), DmaFault> {
        match self.iommu.get(f.slot()) {
            Some(m) => m.read_append(iova, len, out),
            None => Err(DmaFault {
                iova,
                len,
                kind: DmaKind::Read,
            }),
        }
    }

    /// The mapping of function `f` holding `iova` (an IOTLB entry for a run of accesses).
    pub(crate) fn iotlb(&self, f: FunctionId, iova: Iova) -> Option<IotlbEntry<'a>> {
        let iommu: &'a [Iommu] = self.iommu;
        iommu.get(f.slot())?.entry(iova)
    }

    /// DMA write as function `f`.
    pub(crate) fn dma_write(&self, f: FunctionId, iova: Iova, data: &[u8]) -> Result<(), DmaFault> {
        match self.iommu.get(f.slot()) {
            Some(m) => m.write(iova, data),
            None => Err(DmaFault {
                iova,
                len: data.len(),
                kind: DmaKind::Write,
            }),
        }
    }

    /// Asks for an interrupt once the run returns.
    pub(crate) fn request(&mut self, irq: IrqRequest) {
        self.irqs.push(irq);
    }

    /// Whether the VF-owned pools include `pool`.
    pub(crate) fn vf_owned(&self, pool: PoolIndex) -> bool {
        pool.get() < self.num_vfs
    }

    /// Largest frame (with FCS) pool `pool` may send or receive: VMOLR.RLPML when VMOLR.LPE is
    /// set (the PF sets it on SET_LPE), else 1522; PF-owned pools use RCTL.LPE.
    pub(crate) fn max_frame(&self, pool: PoolIndex) -> usize {
        if self.vf_owned(pool) {
            let vmolr = self.regs.read(pf::VMOLR.at(pool.get() as u8));
            if vmolr.is_set(VMOLR::LPE) {
                return (vmolr.read(VMOLR::RLPML) as usize).max(DEFAULT_MAX_FRAME);
            }
            DEFAULT_MAX_FRAME
        } else if self.regs.read(pf::RCTL).is_set(RCTL::LPE) {
            MAX_JUMBO_FRAME
        } else {
            DEFAULT_MAX_FRAME
        }
    }
}

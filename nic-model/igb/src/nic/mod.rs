//! The device: the [`Nic`] state and its host-facing API, with one submodule per block of the
//! 82576's register and PCI behaviour.
//!
//! Register storage is one flat register file indexed like the PF's BAR0, as in the silicon: a
//! VF's queue registers are the PF's queue registers `n` and `n + 8` seen through the VF window
//! ([`igb_hw::regs::vf_queue_register`]), its statistics are the PF's per-VF mirrors. Only the
//! VF-private state (interrupt block, mailbox control, MSI-X) is held per VF.
//!
//! | module | block |
//! |---|---|
//! | [`clock`] | virtual time: the event loop that drains the wire and continues paced TX queues |
//! | [`config`] | PCI configuration space: SR-IOV enable, MSI-X control, FLR |
//! | [`bar`] | BAR access: alignment and range checks, BAR0/BAR3 dispatch |
//! | [`pf_regs`] | PF register semantics (CTRL, STATUS, interrupt masks, queue doorbells, ...) |
//! | [`hac`] | the HAC register block: HACCMD decode, HACSTS, per-pool HAC registers |
//! | [`vf_regs`] | VF register semantics (the VF window) |
//! | [`mailbox`] | PF/VF mailbox control |
//! | [`interrupts`] | interrupt causes, vectors and MSI-X messages |
//! | [`reset`] | register reset values, PF reset, VF reset and FLR |
//! | [`snapshot`] | side-effect-free snapshots for isolation checks |
//! | [`engines`] | lending the TX/RX engines and the switch their inputs, delivering their interrupts |
//!
//! The TX and RX engines and the switch live beside this module ([`crate::tx`], [`crate::rx`],
//! [`crate::switch`]); they never see a [`Nic`]: [`Nic::engines`] lends them a
//! [`crate::datapath::Datapath`] and the interrupts they request are delivered when they return.

use std::sync::Arc;

use igb_hw::addr::{MAX_VFS, NUM_POOLS};
use igb_hw::pci::sriov;
use igb_hw::regs;
use igb_hw::{Iova, MacAddress, PoolIndex, QueueIndex, VfIndex};

use crate::datapath::IrqRequest;
use crate::function::FunctionId;
use crate::metrics::{ModelCounters, SwitchPoolStats};
use crate::msix::{Interrupt, MsixTable};
use crate::pci::ConfigSpace;
use crate::pool_of;
use crate::regfile::RegisterFile;
use crate::switch::{self, PoolSelection};
use crate::tx::TxEngines;
use adapter_core::clock::SimTime;
use adapter_core::egress::{EgressLimits, EgressStage};
use adapter_core::memory::{DmaTarget, Iommu, MapError};
use adapter_core::wire::{LineRate, WirePort, WireRecord, WireSink};
use igb_hw::frame::EthernetHeader;

mod bar;
mod clock;
mod config;
mod engines;
mod hac;
mod interrupts;
mod mailbox;
mod pf_regs;
mod reset;
mod snapshot;
mod vf_regs;

pub use mailbox::MailboxState;
pub use snapshot::{PF_CONFIGURATION_REGISTERS, VfSnapshot};
pub use vf_regs::VfInterrupts;

/// Device configuration (what the card's NVM and the simulation setup decide).
#[derive(Clone, Debug)]
pub struct NicConfig {
    /// TotalVFs advertised in the SR-IOV capability (1..=8). The 82576 silicon advertises 8;
    /// the default is 7 because Linux igb keeps one pool for the PF.
    pub total_vfs: u16,
    /// Wire speed.
    pub line_rate: LineRate,
    /// The PF's permanent MAC address (from the NVM).
    pub mac_address: MacAddress,
    /// Whether a link partner is present (STATUS.LU once the PF sets CTRL.SLU).
    pub link_partner: bool,
    /// Per-pool capacity of the egress stage.
    pub egress_limits: EgressLimits,
    /// Keep every frame that leaves the wire in memory ([`Nic::take_wire_capture`]).
    pub capture_wire: bool,
}

impl Default for NicConfig {
    fn default() -> Self {
        NicConfig {
            total_vfs: 7,
            line_rate: LineRate::default(),
            mac_address: MacAddress([0x00, 0x1B, 0x21, 0x00, 0x00, 0x01]),
            link_partner: true,
            egress_limits: EgressLimits::default(),
            capture_wire: false,
        }
    }
}

/// The Intel 82576 model.
pub struct Nic {
    config: NicConfig,
    now: SimTime,
    pf_config: ConfigSpace,
    vf_config: Vec<ConfigSpace>,
    regs: RegisterFile,
    vf_irq: [VfInterrupts; MAX_VFS],
    mailbox: [MailboxState; MAX_VFS],
    msix: Vec<MsixTable>,
    iommu: Vec<Iommu>,
    tx: TxEngines,
    egress: EgressStage,
    wire: WirePort,
    counters: ModelCounters,
    switch_stats: [SwitchPoolStats; NUM_POOLS],
    interrupts: Vec<Interrupt>,
    interrupt_handler: Option<Box<dyn FnMut(Interrupt) + Send>>,
    /// Interrupts the engines requested during their last run, delivered in order afterwards.
    requested_irqs: Vec<IrqRequest>,
}

impl Nic {
    /// A powered-up device: PF reset state, SR-IOV disabled, no link until the PF sets SLU.
    pub fn new(mut config: NicConfig) -> Nic {
        config.total_vfs = config.total_vfs.clamp(1, MAX_VFS as u16);
        let mut nic = Nic {
            pf_config: ConfigSpace::new_pf(config.total_vfs),
            vf_config: (0..MAX_VFS).map(|_| ConfigSpace::new_vf()).collect(),
            regs: RegisterFile::new(),
            vf_irq: [VfInterrupts::default(); MAX_VFS],
            mailbox: [MailboxState::default(); MAX_VFS],
            msix: std::iter::once(MsixTable::new(regs::PF_MSIX_VECTORS))
                .chain((0..MAX_VFS).map(|_| MsixTable::new(regs::VF_MSIX_VECTORS)))
                .collect(),
            iommu: (0..=MAX_VFS).map(|_| Iommu::default()).collect(),
            tx: TxEngines::default(),
            egress: EgressStage::new(config.egress_limits),
            wire: WirePort::new(config.line_rate, config.capture_wire),
            counters: ModelCounters::default(),
            switch_stats: Default::default(),
            interrupts: Vec::new(),
            interrupt_handler: None,
            requested_irqs: Vec::new(),
            now: SimTime::ZERO,
            config,
        };
        // Fresh storage is zeroed already: only the non-zero reset values are written (a device
        // per fuzz input stays cheap).
        nic.set_register_reset_values();
        nic
    }

    /// The device configuration.
    pub fn config(&self) -> &NicConfig {
        &self.config
    }

    /// Model counters.
    pub fn counters(&self) -> &ModelCounters {
        &self.counters
    }

    /// Adds a sink that sees every frame leaving the wire.
    pub fn add_wire_sink(&mut self, sink: Box<dyn WireSink>) {
        self.wire.add_sink(sink);
    }

    /// Flushes the wire sinks; counts failures in [`ModelCounters::sink_errors`].
    pub fn flush_wire_sinks(&mut self) {
        let e = self.wire.flush();
        self.counters.sink_errors += e;
    }

    /// Frames captured on the wire since the last call (needs [`NicConfig::capture_wire`]).
    pub fn take_wire_capture(&mut self) -> Vec<WireRecord> {
        self.wire.take_capture()
    }

    /// Frames and bytes the wire has sent, and nanoseconds it was busy.
    pub fn wire_totals(&self) -> (u64, u64, u64) {
        (self.wire.frames, self.wire.bytes, self.wire.busy_ns)
    }

    /// The egress stage (read-only view).
    pub fn egress(&self) -> &EgressStage {
        &self.egress
    }

    /// Records the epoch stamped on every frame the egress stage accepts (simulator trace).
    pub fn set_egress_trace(&mut self, on: bool) {
        self.egress.set_trace(on);
    }

    /// Takes the egress trace: (pool, epoch) per accepted frame, in order.
    pub fn take_egress_trace(&mut self) -> Vec<(igb_hw::PoolIndex, Option<u32>)> {
        self.egress
            .take_trace()
            .into_iter()
            .filter_map(|(v, e)| Some((pool_of(v)?, e)))
            .collect()
    }

    /// Changes the egress stage's per-pool limits of plain pools (0 = the adapter maximum,
    /// [`adapter_core::egress::MAX_LIMITS`]) and re-runs every TX queue.
    pub fn set_egress_limits(&mut self, limits: EgressLimits) {
        self.egress.set_limits(limits);
        self.tx_kick_all();
    }

    /// Installs a callback for every interrupt message (in addition to the pending list).
    pub fn set_interrupt_handler(&mut self, handler: Box<dyn FnMut(Interrupt) + Send>) {
        self.interrupt_handler = Some(handler);
    }

    /// Interrupt messages sent since the last call.
    pub fn take_interrupts(&mut self) -> Vec<Interrupt> {
        std::mem::take(&mut self.interrupts)
    }

    /// Maps `len` bytes of `target` at `iova` for `function`'s DMA (the host's IOMMU setup).
    pub fn dma_map(
        &mut self,
        function: FunctionId,
        iova: Iova,
        len: u64,
        target: Arc<dyn DmaTarget>,
        offset: u64,
    ) -> Result<(), MapError> {
        self.iommu[function.slot()].map(iova, len, target, offset, true)
    }

    /// Removes `function`'s mapping at `iova`.
    pub fn dma_unmap(&mut self, function: FunctionId, iova: Iova) -> Result<(), MapError> {
        self.iommu[function.slot()].unmap(iova)
    }

    /// Number of VFs currently enabled (SR-IOV VF Enable and NumVFs).
    pub fn num_vfs(&self) -> usize {
        if self.pf_config.sriov_control() & sriov::CONTROL_VF_ENABLE == 0 {
            return 0;
        }
        usize::from(self.pf_config.sriov_num_vfs()).min(usize::from(self.config.total_vfs))
    }

    /// True when VF `vf` exists.
    pub fn vf_enabled(&self, vf: VfIndex) -> bool {
        vf.get() < self.num_vfs()
    }

    /// The function that owns physical queue `q`: VF n for pools n < NumVFs, else the PF.
    pub fn queue_owner(&self, q: QueueIndex) -> FunctionId {
        FunctionId::owner_of(q, self.num_vfs())
    }

    /// Where the switch sent `pool`'s frames that did not go to the egress stage. Reset by a PF
    /// reset, like the statistics registers.
    pub fn switch_stats(&self, pool: PoolIndex) -> SwitchPoolStats {
        self.switch_stats[pool.get()]
    }

    /// RX pool selection (datasheet 7.10.3.3–7.10.3.5) for a frame from the wire
    /// (`from_local` = false) or from a local pool through loopback.
    pub fn select_pools(&self, hdr: &EthernetHeader, from_local: bool) -> PoolSelection {
        switch::select_pools(&self.regs, self.num_vfs(), hdr, from_local)
    }

    /// A frame arriving from the wire port: pool selection and delivery. Returns the pools that
    /// accepted it.
    pub fn inject_from_wire(&mut self, frame: &[u8]) -> u32 {
        let (_, mut dp) = self.engines();
        let accepted = switch::from_wire(&mut dp, frame);
        self.deliver_requested_irqs();
        accepted
    }
}

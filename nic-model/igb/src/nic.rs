//! The device: PCI functions, BAR dispatch, resets, the mailbox and interrupt logic.
//!
//! Register storage is one flat array indexed like the PF's BAR0, as in the silicon: a VF's
//! queue registers are the PF's queue registers `n` and `n + 8` seen through the VF window
//! ([`igb_hw::regs::vf_queue_register`]), its statistics are the PF's per-VF mirrors. Only the
//! VF-private state (interrupt block, mailbox control, MSI-X) is held per VF.

use std::sync::Arc;

use igb_hw::addr::{MAX_VFS, NUM_POOLS, NUM_QUEUES};
use igb_hw::pci::{header, layout, msix as msix_cap, sriov};
use igb_hw::regs::{
    self, Access, CTRL, CTRL_EXT, ICR, IVAR_MISC, MAILBOX_WORDS, P2VMAILBOX, PfReg, RXDCTL, TXDCTL,
    VFMAILBOX, VfReg,
};
use igb_hw::{Iova, MacAddress, PoolIndex, QueueIndex, RegisterOffset, VfIndex};

use crate::{pool_of, vport};

use crate::metrics::ModelCounters;
use crate::msix::{Interrupt, MsixTable};
use crate::pci::{ConfigAccessError, ConfigSpace};
use crate::switch::SwitchPoolStats;
use crate::tx::TxQueueState;
use adapter_core::clock::SimTime;
use adapter_core::egress::{EgressLimits, EgressStage};
use adapter_core::memory::{DmaFault, DmaTarget, Iommu, MapError};
use adapter_core::wire::{LineRate, WirePort, WireRecord, WireSink};

/// A PCI function of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FunctionId {
    /// The physical function.
    Pf,
    /// A virtual function.
    Vf(VfIndex),
}

impl FunctionId {
    pub(crate) fn slot(self) -> usize {
        match self {
            FunctionId::Pf => 0,
            FunctionId::Vf(v) => 1 + v.get(),
        }
    }
}

impl core::fmt::Display for FunctionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FunctionId::Pf => f.write_str("pf"),
            FunctionId::Vf(v) => write!(f, "{v}"),
        }
    }
}

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

/// VF-private interrupt registers (datasheet 7.3.4; VF map 0x1520–0x1740).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfInterrupts {
    /// EICR causes (bits 2:0).
    pub eicr: u32,
    /// EIMS enabled causes.
    pub eims: u32,
    /// EIAC auto-clear.
    pub eiac: u32,
    /// EIAM auto-mask.
    pub eiam: u32,
    /// EITR per vector.
    pub eitr: [u32; 3],
    /// IVAR0.
    pub ivar0: u32,
    /// IVAR_MISC.
    pub ivar_misc: u32,
    /// PSRTYPE.
    pub psrtype: u32,
}

/// Mailbox control state of one VF (both sides' view derive from it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailboxState {
    /// VF holds the buffer.
    pub vfu: bool,
    /// PF holds the buffer.
    pub pfu: bool,
    /// PF message waiting (VF read-to-clear).
    pub pfsts: bool,
    /// PF acknowledged (VF read-to-clear).
    pub pfack: bool,
    /// PF reset in progress.
    pub rsti: bool,
    /// Reset done (VF read-to-clear).
    pub rstd: bool,
}

impl MailboxState {
    fn vf_view(&self) -> u32 {
        let mut v = regs::LocalRegisterCopy::<u32, VFMAILBOX::Register>::new(0);
        let b = |x: bool| u32::from(x);
        v.modify(
            VFMAILBOX::VFU.val(b(self.vfu))
                + VFMAILBOX::PFU.val(b(self.pfu))
                + VFMAILBOX::PFSTS.val(b(self.pfsts))
                + VFMAILBOX::PFACK.val(b(self.pfack))
                + VFMAILBOX::RSTI.val(b(self.rsti))
                + VFMAILBOX::RSTD.val(b(self.rstd)),
        );
        v.get()
    }
}

/// Everything that belongs to one VF, for isolation checks ([`Nic::vf_snapshot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfSnapshot {
    /// Queue registers of physical queues n and n + 8 (PF register words).
    pub queue_registers: Vec<u32>,
    /// Interrupt block.
    pub interrupts: VfInterrupts,
    /// Mailbox control.
    pub mailbox: MailboxState,
    /// The VF's 16 mailbox words.
    pub mailbox_memory: Vec<u32>,
    /// MSI-X table and PBA.
    pub msix: MsixTable,
    /// Configuration space bytes.
    pub config: Vec<u8>,
    /// Per-VF statistics (PF mirror registers).
    pub statistics: Vec<u32>,
    /// Whether its TX queues are stopped by a DMA fault.
    pub faulted: [bool; 2],
}

/// The PF registers a VF can never change directly or indirectly, for isolation checks.
pub const PF_CONFIGURATION_REGISTERS: &[PfReg] = &[
    PfReg::CTRL,
    PfReg::CTRL_EXT,
    PfReg::IMS,
    PfReg::RCTL,
    PfReg::TCTL,
    PfReg::GPIE,
    PfReg::MBVFIMR,
    PfReg::DTXSWC,
    PfReg::DTXCTL,
    PfReg::MRQC,
    PfReg::VT_CTL,
    PfReg::QDE,
    PfReg::RXCSUM,
    PfReg::RPLOLR,
    PfReg::IOVCTL,
];

/// The Intel 82576 model.
pub struct Nic {
    pub(crate) config: NicConfig,
    pub(crate) now: SimTime,
    pf_config: ConfigSpace,
    vf_config: Vec<ConfigSpace>,
    pub(crate) regs: Box<[u32]>,
    pub(crate) vf_irq: [VfInterrupts; MAX_VFS],
    pub(crate) mailbox: [MailboxState; MAX_VFS],
    msix: Vec<MsixTable>,
    iommu: Vec<Iommu>,
    pub(crate) tx_state: [TxQueueState; NUM_QUEUES],
    pub(crate) egress: EgressStage,
    pub(crate) wire: WirePort,
    pub(crate) counters: ModelCounters,
    pub(crate) switch_stats: [SwitchPoolStats; igb_hw::addr::NUM_POOLS],
    interrupts: Vec<Interrupt>,
    interrupt_handler: Option<Box<dyn FnMut(Interrupt) + Send>>,
    pub(crate) wire_tx_seq: u64,
}

fn idx(reg: PfReg) -> usize {
    (reg.offset().0 / 4) as usize
}

impl Nic {
    /// A powered-up device: PF reset state, SR-IOV disabled, no link until the PF sets SLU.
    pub fn new(mut config: NicConfig) -> Nic {
        config.total_vfs = config.total_vfs.clamp(1, MAX_VFS as u16);
        let mut nic = Nic {
            pf_config: ConfigSpace::new_pf(config.total_vfs),
            vf_config: (0..MAX_VFS).map(|_| ConfigSpace::new_vf()).collect(),
            regs: vec![0; (regs::PF_BAR0_SIZE / 4) as usize].into_boxed_slice(),
            vf_irq: [VfInterrupts::default(); MAX_VFS],
            mailbox: [MailboxState::default(); MAX_VFS],
            msix: std::iter::once(MsixTable::new(regs::PF_MSIX_VECTORS))
                .chain((0..MAX_VFS).map(|_| MsixTable::new(regs::VF_MSIX_VECTORS)))
                .collect(),
            iommu: (0..=MAX_VFS).map(|_| Iommu::default()).collect(),
            tx_state: Default::default(),
            egress: EgressStage::new(config.egress_limits),
            wire: WirePort::new(config.line_rate, config.capture_wire),
            counters: ModelCounters::default(),
            switch_stats: Default::default(),
            interrupts: Vec::new(),
            interrupt_handler: None,
            now: SimTime::ZERO,
            wire_tx_seq: 0,
            config,
        };
        // Fresh storage is zeroed already: only the non-zero reset values are written (a device
        // per fuzz input stays cheap).
        nic.set_register_reset_values();
        nic
    }

    // ----- time ---------------------------------------------------------------------------

    /// Current virtual time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Runs the device until `t`, event by event: the wire sends what is ready, TX queues that
    /// stopped on their run budget continue when their fetch pace allows (docs/model.md §5.4),
    /// and TX queues held back by a full egress stage resume as room frees up. Going backwards
    /// is ignored.
    pub fn advance_to(&mut self, t: SimTime) {
        while let Some(at) = self.next_event().filter(|&at| at <= t) {
            self.step_to(at);
        }
        self.now = self.now.max(t);
    }

    /// The next time something happens: a frame starts on the wire or a paced TX queue may
    /// fetch again.
    fn next_event(&self) -> Option<SimTime> {
        match (self.next_wire_start(), self.next_tx_resume()) {
            (Some(w), Some(f)) => Some(w.min(f)),
            (w, f) => w.or(f),
        }
    }

    /// Moves to `at` (the next event) and handles what is due there: paced TX queues run, then
    /// one frame starts on the wire if one is ready. Each call makes progress: a queue that runs
    /// consumes descriptors or moves its pace past `at`, and a wire start dequeues a frame.
    fn step_to(&mut self, at: SimTime) {
        self.now = self.now.max(at);
        self.continue_pending_tx();
        if let Some(start) = self.next_wire_start().filter(|&s| s <= self.now) {
            self.transmit_one(start);
        }
    }

    /// Runs the device for `ns` nanoseconds.
    pub fn advance_by(&mut self, ns: u64) {
        self.advance_to(self.now + ns);
    }

    /// Runs until the egress stage is empty and no TX queue has work pending from its run
    /// budget; returns the time the last frame finished.
    pub fn drain(&mut self) -> SimTime {
        // Each pending run consumes descriptors, so this ends at the rings' tails.
        while let Some(at) = self.next_event() {
            self.step_to(at);
        }
        self.now = self.now.max(self.wire.busy_until());
        self.now
    }

    fn next_wire_start(&self) -> Option<SimTime> {
        let ready = self.egress.earliest_ready()?;
        Some(ready.max(self.wire.busy_until()))
    }

    fn transmit_one(&mut self, start: SimTime) {
        let Some((frame, checkpoint)) = self.egress.dequeue_classified() else {
            return;
        };
        let vport = frame.pool;
        let end = start + self.wire.rate().frame_time_ns(frame.data.len());
        self.egress.account_wire(vport, checkpoint, start, end);
        let errors = self.wire.transmit(start, frame.data);
        self.counters.sink_errors += errors;
        self.wire_tx_seq += 1;
        // Room freed: let queues of this pool that were held back fetch again.
        if let Some(pool) = pool_of(vport) {
            self.resume_backpressured(pool);
        }
    }

    // ----- setup helpers ------------------------------------------------------------------

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
        for q in 0..NUM_QUEUES {
            if let Some(q) = QueueIndex::new(q) {
                self.tx_kick(q);
            }
        }
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
        match VfIndex::new(q.pool().get()) {
            Some(vf) if self.vf_enabled(vf) => FunctionId::Vf(vf),
            _ => FunctionId::Pf,
        }
    }

    pub(crate) fn bus_master(&self, f: FunctionId) -> bool {
        let cfg = match f {
            FunctionId::Pf => &self.pf_config,
            FunctionId::Vf(v) => &self.vf_config[v.get()],
        };
        cfg.command() & igb_hw::pci::command::BUS_MASTER != 0
    }

    pub(crate) fn dma_read(
        &self,
        f: FunctionId,
        iova: Iova,
        buf: &mut [u8],
    ) -> Result<(), DmaFault> {
        self.iommu[f.slot()].read(iova, buf)
    }

    pub(crate) fn dma_write(&self, f: FunctionId, iova: Iova, data: &[u8]) -> Result<(), DmaFault> {
        self.iommu[f.slot()].write(iova, data)
    }

    // ----- raw register storage -----------------------------------------------------------

    // An array element past its array's end has an offset outside the BAR
    // (`regs::OUTSIDE_BAR`): it reads 0 and takes no writes.
    pub(crate) fn reg(&self, r: PfReg) -> u32 {
        self.regs.get(idx(r)).copied().unwrap_or(0)
    }

    pub(crate) fn set_reg(&mut self, r: PfReg, v: u32) {
        if let Some(slot) = self.regs.get_mut(idx(r)) {
            *slot = v;
        }
    }

    pub(crate) fn add_reg(&mut self, r: PfReg, v: u32) {
        if let Some(slot) = self.regs.get_mut(idx(r)) {
            *slot = slot.wrapping_add(v);
        }
    }

    fn reset_registers(&mut self) {
        self.regs.fill(0);
        self.set_register_reset_values();
    }

    /// The registers whose reset value is not 0 (the rest of `regs` must already be 0).
    fn set_register_reset_values(&mut self) {
        self.set_reg(PfReg::MBVFIMR, 0xFF);
        self.set_reg(
            PfReg::DTXCTL,
            regs::value(regs::DTXCTL::LL8023::SET + regs::DTXCTL::SPOOF_INT::SET),
        );
        self.set_reg(PfReg::RXCSUM, 0x0000_0300);
        for q in 0..NUM_QUEUES {
            self.reset_queue_registers(q as u8);
        }
        // The PF's own address in RAR[0], as loaded from the NVM, pool 0... selected by the PF
        // driver later; AV set.
        let (ral, rah) = igb_hw::addr::mac_to_ral_rah(self.config.mac_address);
        self.set_reg(PfReg::RAL(0), ral);
        self.set_reg(PfReg::RAH(0), rah | regs::value(regs::RAH::AV::SET));
    }

    fn reset_queue_registers(&mut self, q: u8) {
        for r in [
            PfReg::RDBAL(q),
            PfReg::RDBAH(q),
            PfReg::RDLEN(q),
            PfReg::RDH(q),
            PfReg::RDT(q),
            PfReg::RQDPC(q),
            PfReg::TDBAL(q),
            PfReg::TDBAH(q),
            PfReg::TDLEN(q),
            PfReg::TDH(q),
            PfReg::TDT(q),
            PfReg::TDWBAL(q),
            PfReg::TDWBAH(q),
        ] {
            self.set_reg(r, 0);
        }
        // Reset values per QEMU's tables (facts §1.2), except that no queue starts enabled.
        self.set_reg(PfReg::SRRCTL(q), 0x0000_0002 | (4 << 8));
        self.set_reg(PfReg::RXCTL(q), 0);
        self.set_reg(PfReg::RXDCTL(q), regs::value(RXDCTL::WTHRESH.val(1)));
        self.set_reg(PfReg::TXCTL(q), 0x2A00);
        self.set_reg(PfReg::TXDCTL(q), 0);
        self.tx_state[usize::from(q)] = TxQueueState::default();
    }

    // ----- resets -------------------------------------------------------------------------

    /// PF software reset (CTRL.RST): every register to its reset value, queues stopped, the
    /// egress stage flushed, and every VF's mailbox shows RSTI until the PF driver sets
    /// CTRL_EXT.PFRSTD. Configuration space (SR-IOV included) is not affected.
    fn pf_reset(&mut self) {
        self.reset_registers();
        self.vf_irq = [VfInterrupts::default(); MAX_VFS];
        self.mailbox = [MailboxState {
            rsti: true,
            ..MailboxState::default()
        }; MAX_VFS];
        let flushed = self.egress.flush();
        self.counters.egress_flushed_on_reset += flushed as u64;
        // The HAC block returns to its reset state too (disabled, nothing tagged).
        self.egress = EgressStage::new(self.config.egress_limits);
        self.switch_stats = Default::default();
    }

    /// VF reset (VF CTRL.RST or FLR), as the 82576 does it (datasheet 4.2.2.2 / 7.8.2.9):
    /// the VF's queues (n and n + 8) return to reset state and stop, its VFTE/VFRE bits clear,
    /// VFLRE bit n is set and the PF gets ICR.VMMB; the VF's interrupt block resets. The mailbox
    /// reports RSTD once the reset completes if the PF is up (CTRL_EXT.PFRSTD), else RSTI stays.
    ///
    /// QEMU (facts §6.4 item 5) sets neither RSTI nor RSTD here, so igbvf's post-reset poll
    /// times out there; the model follows the hardware that igbvf's and ixgbevf's poll is written
    /// for.
    pub(crate) fn vf_reset(&mut self, vf: VfIndex, flr: bool) {
        let n = vf.get();
        for vq in 0..igb_hw::addr::QUEUES_PER_VF {
            if let Some(q) = vf.queue(vq) {
                self.reset_queue_registers(q.get() as u8);
            }
        }
        let bit = vf.pool().bit();
        self.set_reg(PfReg::VFTE, self.reg(PfReg::VFTE) & !bit);
        self.set_reg(PfReg::VFRE, self.reg(PfReg::VFRE) & !bit);
        self.set_reg(PfReg::VFLRE, self.reg(PfReg::VFLRE) | bit);
        self.vf_irq[n] = VfInterrupts::default();
        let pf_ready = self.reg(PfReg::CTRL_EXT) & regs::value(CTRL_EXT::PFRSTD::SET) != 0;
        let mb = &mut self.mailbox[n];
        *mb = MailboxState {
            pfu: mb.pfu,
            rsti: !pf_ready,
            rstd: pf_ready,
            ..Default::default()
        };
        if flr {
            self.msix[FunctionId::Vf(vf).slot()].reset();
            let cfg = &mut self.vf_config[n];
            cfg.force16(header::COMMAND, 0);
            cfg.force16(
                layout::MSIX + msix_cap::CONTROL,
                (regs::VF_MSIX_VECTORS - 1) as u16,
            );
        }
        self.raise_pf_cause(regs::value(ICR::VMMB::SET));
    }

    // ----- configuration space ------------------------------------------------------------

    /// Configuration read. Unaligned or out-of-range accesses read all ones and are counted;
    /// a VF that is not enabled reads all ones (no device answers).
    pub fn config_read(&mut self, f: FunctionId, offset: u16, data: &mut [u8]) {
        let cfg = match f {
            FunctionId::Pf => &self.pf_config,
            FunctionId::Vf(v) if self.vf_enabled(v) => &self.vf_config[v.get()],
            FunctionId::Vf(_) => {
                self.counters.disabled_function_accesses += 1;
                data.fill(0xFF);
                return;
            }
        };
        if let Err(e) = cfg.read(usize::from(offset), data) {
            self.count_config_error(e);
            data.fill(0xFF);
        }
    }

    /// Configuration write, with the SR-IOV, MSI-X and FLR side effects.
    pub fn config_write(&mut self, f: FunctionId, offset: u16, data: &[u8]) {
        let offset = usize::from(offset);
        match f {
            FunctionId::Pf => {
                let old_ctrl = self.pf_config.sriov_control();
                let old_num = self.pf_config.sriov_num_vfs();
                let old_msix = self.pf_config.msix_control();
                if let Err(e) = self.pf_config.write(offset, data) {
                    self.count_config_error(e);
                    return;
                }
                // NumVFs may only change while VF Enable is clear (SR-IOV 3.3.7).
                if old_ctrl & sriov::CONTROL_VF_ENABLE != 0 {
                    self.pf_config
                        .force16(layout::SRIOV + sriov::NUM_VFS, old_num);
                }
                let new_ctrl = self.pf_config.sriov_control();
                let was = old_ctrl & sriov::CONTROL_VF_ENABLE != 0;
                let is = new_ctrl & sriov::CONTROL_VF_ENABLE != 0;
                if was != is {
                    // VFs appear or disappear: each starts (or ends) in its reset state.
                    for v in VfIndex::all(MAX_VFS) {
                        self.vf_config[v.get()] = ConfigSpace::new_vf();
                        self.msix[FunctionId::Vf(v).slot()].reset();
                        self.vf_irq[v.get()] = VfInterrupts::default();
                        for vq in 0..igb_hw::addr::QUEUES_PER_VF {
                            if let Some(q) = v.queue(vq) {
                                self.reset_queue_registers(q.get() as u8);
                            }
                        }
                    }
                }
                self.after_msix_control_write(FunctionId::Pf, old_msix);
            }
            FunctionId::Vf(v) => {
                if !self.vf_enabled(v) {
                    self.counters.disabled_function_accesses += 1;
                    return;
                }
                let old_msix = self.vf_config[v.get()].msix_control();
                if let Err(e) = self.vf_config[v.get()].write(offset, data) {
                    self.count_config_error(e);
                    return;
                }
                let devctl = self.vf_config[v.get()].pcie_device_control();
                if devctl & (1 << 15) != 0 {
                    self.vf_config[v.get()].force16(layout::PCIE + 8, devctl & !(1 << 15));
                    self.vf_reset(v, true);
                    return;
                }
                self.after_msix_control_write(f, old_msix);
            }
        }
    }

    fn count_config_error(&mut self, e: ConfigAccessError) {
        match e {
            ConfigAccessError::Misaligned => self.counters.misaligned_accesses += 1,
            ConfigAccessError::OutOfRange => self.counters.out_of_range_accesses += 1,
        }
    }

    fn config_of(&self, f: FunctionId) -> &ConfigSpace {
        match f {
            FunctionId::Pf => &self.pf_config,
            FunctionId::Vf(v) => &self.vf_config[v.get()],
        }
    }

    fn msix_state(&self, f: FunctionId) -> (bool, bool) {
        let c = self.config_of(f).msix_control();
        (c & msix_cap::ENABLE != 0, c & msix_cap::FUNCTION_MASK != 0)
    }

    fn after_msix_control_write(&mut self, f: FunctionId, old: u16) {
        let (enabled, masked) = self.msix_state(f);
        let was_live = old & msix_cap::ENABLE != 0 && old & msix_cap::FUNCTION_MASK == 0;
        if enabled && !masked && !was_live {
            let vectors = self.msix[f.slot()].take_unmasked_pending(false);
            self.deliver_vectors(f, &vectors);
        }
    }

    /// Convenience for hosts and tests: enables `num_vfs` VFs the way the kernel does
    /// (NumVFs, then VF Enable + VF MSE), and enables memory and bus mastering on the PF.
    pub fn enable_sriov(&mut self, num_vfs: u16) {
        let cmd = igb_hw::pci::command::MEMORY | igb_hw::pci::command::BUS_MASTER;
        self.config_write(FunctionId::Pf, header::COMMAND as u16, &cmd.to_le_bytes());
        let s = layout::SRIOV as u16;
        self.config_write(
            FunctionId::Pf,
            s + sriov::CONTROL as u16,
            &0u16.to_le_bytes(),
        );
        self.config_write(
            FunctionId::Pf,
            s + sriov::NUM_VFS as u16,
            &num_vfs.to_le_bytes(),
        );
        let ctrl = sriov::CONTROL_VF_ENABLE | sriov::CONTROL_VF_MSE;
        self.config_write(
            FunctionId::Pf,
            s + sriov::CONTROL as u16,
            &ctrl.to_le_bytes(),
        );
    }

    // ----- BAR access ---------------------------------------------------------------------

    fn bar_live(&mut self, f: FunctionId) -> bool {
        let ok = match f {
            FunctionId::Pf => self.pf_config.command() & igb_hw::pci::command::MEMORY != 0,
            FunctionId::Vf(v) => {
                self.vf_enabled(v) && self.pf_config.sriov_control() & sriov::CONTROL_VF_MSE != 0
            }
        };
        if !ok {
            self.counters.disabled_function_accesses += 1;
        }
        ok
    }

    /// A memory read of `data.len()` bytes at `offset` in BAR `bar` of function `f`.
    /// Registers are 32 bits: 4-byte accesses at 4-byte aligned offsets, or 8-byte accesses
    /// split into two. Anything else reads all ones and is counted; so does an access to a
    /// function whose memory space is disabled.
    pub fn bar_read(&mut self, f: FunctionId, bar: u8, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        if !self.bar_live(f) {
            return;
        }
        let Some(words) = self.check_access(f, bar, offset, data.len()) else {
            return;
        };
        for i in 0..words {
            let off = (offset as u32) + 4 * i as u32;
            let v = if bar == 0 {
                self.bar0_read(f, off)
            } else {
                self.msix_read(f, off)
            };
            data[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// A memory write to BAR `bar` of function `f` (same access rules as [`Nic::bar_read`]).
    pub fn bar_write(&mut self, f: FunctionId, bar: u8, offset: u64, data: &[u8]) {
        if !self.bar_live(f) {
            return;
        }
        let Some(words) = self.check_access(f, bar, offset, data.len()) else {
            return;
        };
        // A doorbell orders the driver's earlier descriptor writes before our DMA reads.
        adapter_core::memory::SharedMemory::acquire();
        for i in 0..words {
            let off = (offset as u32) + 4 * i as u32;
            let v = u32::from_le_bytes([
                data[4 * i],
                data[4 * i + 1],
                data[4 * i + 2],
                data[4 * i + 3],
            ]);
            if bar == 0 {
                self.bar0_write(f, off, v);
            } else {
                self.msix_write(f, off, v);
            }
        }
    }

    fn check_access(&mut self, f: FunctionId, bar: u8, offset: u64, len: usize) -> Option<usize> {
        let size = match (bar, f) {
            (0, FunctionId::Pf) => regs::PF_BAR0_SIZE,
            (0, FunctionId::Vf(_)) => regs::VF_BAR0_SIZE,
            (3, _) => regs::MSIX_BAR_SIZE,
            _ => {
                self.counters.out_of_range_accesses += 1;
                return None;
            }
        };
        if !matches!(len, 4 | 8) || !offset.is_multiple_of(4) {
            self.counters.misaligned_accesses += 1;
            return None;
        }
        if offset + len as u64 > u64::from(size) {
            self.counters.out_of_range_accesses += 1;
            return None;
        }
        Some(len / 4)
    }

    /// 32-bit read of BAR0 of `f` (see [`Nic::bar_read`] for the access rules).
    pub fn read32(&mut self, f: FunctionId, offset: RegisterOffset) -> u32 {
        let mut b = [0u8; 4];
        self.bar_read(f, 0, u64::from(offset.0), &mut b);
        u32::from_le_bytes(b)
    }

    /// 32-bit write of BAR0 of `f`.
    pub fn write32(&mut self, f: FunctionId, offset: RegisterOffset, value: u32) {
        self.bar_write(f, 0, u64::from(offset.0), &value.to_le_bytes());
    }

    /// Reads PF register `reg`.
    pub fn pf_read(&mut self, reg: PfReg) -> u32 {
        self.read32(FunctionId::Pf, reg.offset())
    }

    /// Writes PF register `reg`.
    pub fn pf_write(&mut self, reg: PfReg, value: u32) {
        self.write32(FunctionId::Pf, reg.offset(), value)
    }

    /// Reads register `reg` of VF `vf`.
    pub fn vf_read(&mut self, vf: VfIndex, reg: VfReg) -> u32 {
        self.read32(FunctionId::Vf(vf), reg.offset())
    }

    /// Writes register `reg` of VF `vf`.
    pub fn vf_write(&mut self, vf: VfIndex, reg: VfReg, value: u32) {
        self.write32(FunctionId::Vf(vf), reg.offset(), value)
    }

    fn bar0_read(&mut self, f: FunctionId, off: u32) -> u32 {
        match f {
            FunctionId::Pf => match PfReg::decode(RegisterOffset(off)) {
                Some(reg) => self.pf_reg_read(reg),
                None => {
                    self.counters.unknown_reads += 1;
                    0
                }
            },
            FunctionId::Vf(vf) => match VfReg::decode(RegisterOffset(off)) {
                Some(reg) => self.vf_reg_read(vf, reg),
                None => {
                    self.counters.unknown_reads += 1;
                    0
                }
            },
        }
    }

    fn bar0_write(&mut self, f: FunctionId, off: u32, v: u32) {
        match f {
            FunctionId::Pf => match PfReg::decode(RegisterOffset(off)) {
                Some(reg) => self.pf_reg_write(reg, v),
                None => self.counters.unknown_writes += 1,
            },
            FunctionId::Vf(vf) => match VfReg::decode(RegisterOffset(off)) {
                Some(reg) => self.vf_reg_write(vf, reg, v),
                None => self.counters.unknown_writes += 1,
            },
        }
    }

    fn msix_read(&mut self, f: FunctionId, off: u32) -> u32 {
        self.msix[f.slot()].read(off).unwrap_or_else(|| {
            self.counters.unknown_reads += 1;
            0
        })
    }

    fn msix_write(&mut self, f: FunctionId, off: u32, v: u32) {
        match self.msix[f.slot()].write(off, v) {
            Some(unmasked) => {
                let (enabled, masked) = self.msix_state(f);
                if enabled && !masked {
                    self.deliver_vectors(f, &unmasked);
                } else {
                    // Not deliverable yet: keep them pending.
                    for &vec in &unmasked {
                        self.msix[f.slot()].signal(f, vec, true);
                    }
                }
            }
            None => self.counters.unknown_writes += 1,
        }
    }

    // ----- PF registers -------------------------------------------------------------------

    fn status_value(&self) -> u32 {
        let slu = self.reg(PfReg::CTRL) & regs::value(CTRL::SLU::SET) != 0;
        let mut v = regs::value(regs::STATUS::FD::SET + regs::STATUS::SPEED::Speed1000);
        if slu && self.config.link_partner {
            v |= regs::value(regs::STATUS::LU::SET);
        }
        let n = self.num_vfs() as u32;
        if n > 0 {
            v |= regs::value(regs::STATUS::IOV_MODE::SET + regs::STATUS::NUM_VFS.val(n & 0xF));
        }
        v
    }

    fn frtimer(&self) -> u32 {
        (self.now.as_nanos() / 1_000) as u32
    }

    fn pf_reg_read(&mut self, reg: PfReg) -> u32 {
        match reg {
            PfReg::STATUS => self.status_value(),
            PfReg::FRTIMER => self.frtimer(),
            PfReg::CTRL => self.reg(reg) & !regs::value(CTRL::RST::SET),
            PfReg::P2VMAILBOX(n) => {
                let m = self.mailbox[usize::from(n)];
                regs::value(
                    P2VMAILBOX::VFU.val(u32::from(m.vfu)) + P2VMAILBOX::PFU.val(u32::from(m.pfu)),
                )
            }
            // The PF's view of the VF's register has no read side effects.
            PfReg::V2PMAILBOX(n) => self.mailbox[usize::from(n)].vf_view(),
            PfReg::HACCTL => u32::from(self.egress.hac_enabled()),
            PfReg::HACGUARD => self.egress.guard_bytes().min(u64::from(u32::MAX)) as u32,
            PfReg::HACTAG => self.hac_tagged_mask(),
            PfReg::HACC2F => self
                .egress
                .hac_port_stats()
                .last_commit_to_first_ns
                .min(u64::from(u32::MAX)) as u32,
            PfReg::HACDRAIN => self
                .egress
                .hac_port_stats()
                .last_drain_ns
                .min(u64::from(u32::MAX)) as u32,
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
            | PfReg::HACLIMB(n) => self.hac_vf_register(reg, n),
            _ => match reg.access() {
                Access::WriteOnly => 0,
                Access::ReadClear | Access::ReadClearWriteOneClear => {
                    let v = self.reg(reg);
                    self.set_reg(reg, 0);
                    v
                }
                _ => self.reg(reg),
            },
        }
    }

    fn pf_reg_write(&mut self, reg: PfReg, v: u32) {
        match reg {
            PfReg::CTRL => {
                if v & regs::value(CTRL::RST::SET) != 0 {
                    self.pf_reset();
                    return;
                }
                let old_lu = self.status_value() & regs::value(regs::STATUS::LU::SET);
                self.set_reg(reg, v);
                if self.status_value() & regs::value(regs::STATUS::LU::SET) != old_lu {
                    self.raise_pf_cause(regs::value(ICR::LSC::SET));
                }
            }
            PfReg::CTRL_EXT => {
                self.set_reg(reg, v);
                if v & regs::value(CTRL_EXT::PFRSTD::SET) != 0 {
                    for m in &mut self.mailbox {
                        m.rsti = false;
                        m.rstd = true;
                    }
                }
            }
            // No PHY is modelled (the link follows CTRL.SLU): a PHY access completes at once,
            // reads return 0.
            PfReg::MDIC => {
                let done = regs::view::<regs::MDIC::Register>(v);
                let data = if done.matches_all(regs::MDIC::OP::Read) {
                    0
                } else {
                    done.read(regs::MDIC::DATA)
                };
                let v = (v & !regs::value(regs::MDIC::DATA.val(0xFFFF)))
                    | regs::value(regs::MDIC::DATA.val(data) + regs::MDIC::R::SET);
                self.set_reg(reg, v);
            }
            PfReg::ICS => self.raise_pf_cause(v),
            PfReg::IMS => {
                let new = self.reg(PfReg::IMS) | v;
                self.set_reg(PfReg::IMS, new);
                if self.reg(PfReg::ICR) & v != 0 {
                    self.signal_pf();
                }
            }
            PfReg::IMC => self.set_reg(PfReg::IMS, self.reg(PfReg::IMS) & !v),
            PfReg::P2VMAILBOX(n) => self.pf_mailbox_write(usize::from(n), v),
            PfReg::VMBMEM(i) => {
                let vf = usize::from(i) / MAILBOX_WORDS;
                if self.mailbox[vf].vfu {
                    self.counters.mailbox_writes_while_locked += 1;
                } else {
                    self.set_reg(reg, v);
                }
            }
            PfReg::TDT(q) => {
                self.set_reg(reg, v & 0xFFFF);
                if let Some(q) = QueueIndex::new(usize::from(q)) {
                    self.tx_kick(q);
                }
            }
            PfReg::TDH(_) | PfReg::RDH(_) | PfReg::RDT(_) => self.set_reg(reg, v & 0xFFFF),
            PfReg::TDLEN(_) | PfReg::RDLEN(_) => {
                if v & 0x7F != 0 {
                    self.counters.ring_length_unaligned += 1;
                }
                self.set_reg(reg, v & 0x000F_FF80);
            }
            PfReg::TDBAL(_) | PfReg::RDBAL(_) => {
                if v & 0x7F != 0 {
                    self.counters.ring_base_unaligned += 1;
                }
                self.set_reg(reg, v & !0x7F);
            }
            PfReg::TXDCTL(q) => {
                let was = self.reg(reg) & regs::value(TXDCTL::ENABLE::SET) != 0;
                self.set_reg(reg, v & !regs::value(TXDCTL::SWFLSH::SET));
                let is = v & regs::value(TXDCTL::ENABLE::SET) != 0;
                if let Some(q) = QueueIndex::new(usize::from(q)) {
                    if is && !was {
                        // A queue enable restarts the engine: a fault or half-fetched packet from
                        // the previous incarnation is forgotten.
                        self.tx_state[q.get()] = TxQueueState::default();
                    }
                    self.tx_kick(q);
                }
            }
            PfReg::RXDCTL(_) => self.set_reg(reg, v & !regs::value(RXDCTL::SWFLSH::SET)),
            PfReg::TCTL | PfReg::VFTE => {
                self.set_reg(reg, v);
                for q in 0..NUM_QUEUES {
                    if let Some(q) = QueueIndex::new(q) {
                        self.tx_kick(q);
                    }
                }
            }
            PfReg::EITR(_) => self.set_reg(reg, v & 0x7FFC),
            PfReg::HACCTL => {
                self.egress
                    .set_hac_enabled(v & regs::value(regs::HACCTL::ENABLE::SET) != 0, self.now);
                self.resume_all_tx();
            }
            PfReg::HACGUARD => self.egress.set_guard_bytes(u64::from(v)),
            PfReg::HACTAG => {
                for pool in (0..NUM_POOLS).filter_map(PoolIndex::new) {
                    self.egress
                        .set_tagged(vport(pool), v & pool.bit() != 0, self.now);
                }
                self.resume_all_tx();
            }
            PfReg::HACCMD => self.hac_command(v),
            PfReg::HACLIMF(n) | PfReg::HACLIMB(n) => {
                if let Some(pool) = igb_hw::PoolIndex::new(usize::from(n)) {
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
            _ => match reg.access() {
                Access::ReadWrite => self.set_reg(reg, v),
                Access::WriteOneClear | Access::ReadClearWriteOneClear => {
                    self.set_reg(reg, self.reg(reg) & !v)
                }
                Access::ReadOnly | Access::ReadClear => self.counters.read_only_writes += 1,
                Access::WriteOnly => {}
            },
        }
    }

    fn resume_all_tx(&mut self) {
        for q in 0..NUM_QUEUES {
            if let Some(q) = QueueIndex::new(q) {
                self.tx_kick(q);
            }
        }
    }

    /// HACTAG: bit n set when pool n is checkpointing.
    fn hac_tagged_mask(&self) -> u32 {
        (0..NUM_POOLS)
            .filter_map(PoolIndex::new)
            .filter(|&p| self.egress.tagged(vport(p)))
            .fold(0, |m, p| m | p.bit())
    }

    fn hac_vf_register(&self, reg: PfReg, n: u8) -> u32 {
        let Some(pool) = igb_hw::PoolIndex::new(usize::from(n)) else {
            return 0;
        };
        let st = self.egress.stats(vport(pool));
        let h = self.egress.hac_state(vport(pool));
        let (frames, bytes) = self.egress.occupancy(vport(pool));
        let l = self.egress.hac_limits(vport(pool));
        // Gauges (occupancy, maxima) saturate; event counters are free running and wrap at
        // 2^32, like the VF statistics registers: readers extend them to 64 bits from the
        // difference between reads.
        let sat = |x: u64| x.min(u64::from(u32::MAX)) as u32;
        let wrap = |x: u64| x as u32;
        match reg {
            PfReg::HACOPEN(_) => h.open,
            PfReg::HACCOMMITTED(_) => h.committed,
            PfReg::HACBUFF(_) => sat(frames as u64),
            PfReg::HACBUFB(_) => sat(bytes as u64),
            PfReg::HACMAXF(_) => sat(st.max_frames as u64),
            PfReg::HACMAXB(_) => sat(st.max_bytes as u64),
            PfReg::HACREL(_) => wrap(st.released),
            PfReg::HACDISC(_) => wrap(st.discarded),
            PfReg::HACBP(_) => wrap(st.backpressure_events),
            PfReg::HACLIMF(_) => l.frames.min(u32::MAX as usize) as u32,
            PfReg::HACLIMB(_) => l.bytes.min(u32::MAX as usize) as u32,
            _ => 0,
        }
    }

    /// Executes a HACCMD write: OP and VF from `v`, the epoch from HACARG; the result goes to
    /// HACSTS.
    fn hac_command(&mut self, v: u32) {
        use adapter_core::egress::HacResult;
        let cmd = regs::view::<regs::HACCMD::Register>(v);
        let epoch = self.reg(PfReg::HACARG);
        let pool = igb_hw::PoolIndex::new(cmd.read(regs::HACCMD::VF) as usize);
        let result = match (cmd.read(regs::HACCMD::OP), pool) {
            (_, None) => HacResult::BadOp,
            (1, Some(p)) => self.egress.open_epoch(vport(p), epoch),
            (2, Some(p)) => self.egress.commit(vport(p), epoch, self.now),
            (3, Some(p)) => {
                let (r, _) = self.egress.abort(vport(p), epoch);
                self.resume_backpressured(p);
                r
            }
            (4, Some(p)) => {
                let (r, _) = self.egress.failover(vport(p));
                self.resume_backpressured(p);
                r
            }
            (5, Some(p)) => {
                let r = self.egress.unprotect(vport(p), self.now);
                self.resume_backpressured(p);
                r
            }
            _ => HacResult::BadOp,
        };
        let count = ((self.reg(PfReg::HACSTS) >> 16).wrapping_add(1)) & 0xFFFF;
        self.set_reg(PfReg::HACSTS, result.code() | (count << 16));
    }

    // ----- VF registers -------------------------------------------------------------------

    fn vf_reg_read(&mut self, vf: VfIndex, reg: VfReg) -> u32 {
        if let Some(pf_reg) = regs::vf_queue_register(reg, vf) {
            return self.pf_reg_read(pf_reg);
        }
        let n = vf.get();
        let nn = n as u8;
        match reg {
            VfReg::CTRL | VfReg::CTRL_DUP => 0,
            VfReg::STATUS => self.status_value(),
            VfReg::VFMAILBOX => {
                let m = &mut self.mailbox[n];
                let v = m.vf_view();
                m.pfsts = false;
                m.pfack = false;
                m.rstd = false;
                v
            }
            VfReg::VMBMEM(i) => self.reg(PfReg::VMBMEM(nn * MAILBOX_WORDS as u8 + i)),
            VfReg::VFGPRC => self.reg(PfReg::PVFGPRC(nn)),
            VfReg::VFGPTC => self.reg(PfReg::PVFGPTC(nn)),
            VfReg::VFGORC => self.reg(PfReg::PVFGORC(nn)),
            VfReg::VFGOTC => self.reg(PfReg::PVFGOTC(nn)),
            VfReg::VFMPRC => self.reg(PfReg::PVFMPRC(nn)),
            VfReg::VFGPRLBC => self.reg(PfReg::PVFGPRLBC(nn)),
            VfReg::VFGPTLBC => self.reg(PfReg::PVFGPTLBC(nn)),
            VfReg::VFGORLBC => self.reg(PfReg::PVFGORLBC(nn)),
            VfReg::VFGOTLBC => self.reg(PfReg::PVFGOTLBC(nn)),
            VfReg::FRTIMER => self.frtimer(),
            VfReg::EIMS => self.vf_irq[n].eims,
            VfReg::EIAC => self.vf_irq[n].eiac,
            VfReg::EIAM => self.vf_irq[n].eiam,
            VfReg::EICR => std::mem::take(&mut self.vf_irq[n].eicr),
            VfReg::EITR(i) => self.vf_irq[n]
                .eitr
                .get(usize::from(i))
                .copied()
                .unwrap_or(0),
            VfReg::IVAR0 => self.vf_irq[n].ivar0,
            VfReg::IVAR_MISC => self.vf_irq[n].ivar_misc,
            VfReg::PSRTYPE => self.vf_irq[n].psrtype,
            VfReg::EICS | VfReg::EIMC | VfReg::PBACL => 0,
            _ => 0, // PBRWAC, PBTWAC: the packet buffers never wrap in the model.
        }
    }

    fn vf_reg_write(&mut self, vf: VfIndex, reg: VfReg, v: u32) {
        if let Some(pf_reg) = regs::vf_queue_register(reg, vf) {
            return self.pf_reg_write(pf_reg, v);
        }
        let n = vf.get();
        const CAUSES: u32 = 0x7;
        match reg {
            VfReg::CTRL | VfReg::CTRL_DUP => {
                if v & regs::value(CTRL::RST::SET) != 0 {
                    self.vf_reset(vf, false);
                }
            }
            VfReg::VFMAILBOX => self.vf_mailbox_write(vf, v),
            VfReg::VMBMEM(i) => {
                if self.mailbox[n].pfu {
                    self.counters.mailbox_writes_while_locked += 1;
                } else {
                    self.set_reg(PfReg::VMBMEM(n as u8 * MAILBOX_WORDS as u8 + i), v);
                }
            }
            VfReg::EICS => self.raise_vf_causes(vf, v & CAUSES),
            VfReg::EIMS => {
                self.vf_irq[n].eims |= v & CAUSES;
                // Causes already pending fire as soon as they are enabled.
                let fire = self.vf_irq[n].eicr & v & CAUSES;
                if fire != 0 {
                    self.fire_vf(vf, fire);
                }
            }
            VfReg::EIMC => self.vf_irq[n].eims &= !(v & CAUSES),
            VfReg::EIAC => self.vf_irq[n].eiac = v & CAUSES,
            VfReg::EIAM => self.vf_irq[n].eiam = v & CAUSES,
            VfReg::EICR => self.vf_irq[n].eicr &= !v,
            VfReg::EITR(i) => {
                if let Some(e) = self.vf_irq[n].eitr.get_mut(usize::from(i)) {
                    *e = v & 0x7FFC;
                }
            }
            VfReg::IVAR0 => self.vf_irq[n].ivar0 = v & 0x8787_8787,
            VfReg::IVAR_MISC => self.vf_irq[n].ivar_misc = v & 0x87,
            VfReg::PSRTYPE => self.vf_irq[n].psrtype = v,
            VfReg::PBACL => self.msix[FunctionId::Vf(vf).slot()].clear_pending(v & CAUSES),
            _ => self.counters.read_only_writes += 1,
        }
    }

    // ----- mailbox ------------------------------------------------------------------------

    fn vf_mailbox_write(&mut self, vf: VfIndex, v: u32) {
        let n = vf.get();
        let r = regs::view::<VFMAILBOX::Register>(v);
        let m = &mut self.mailbox[n];
        if r.is_set(VFMAILBOX::VFU) {
            if !m.pfu {
                m.vfu = true;
            }
        } else {
            m.vfu = false;
        }
        let mut cause = 0;
        if r.is_set(VFMAILBOX::REQ) {
            cause |= 1 << n;
        }
        if r.is_set(VFMAILBOX::ACK) {
            cause |= 1 << (16 + n);
        }
        if cause != 0 {
            self.set_reg(PfReg::MBVFICR, self.reg(PfReg::MBVFICR) | cause);
            if self.reg(PfReg::MBVFIMR) & vf.pool().bit() != 0 {
                self.raise_pf_cause(regs::value(ICR::VMMB::SET));
            }
        }
    }

    fn pf_mailbox_write(&mut self, n: usize, v: u32) {
        let r = regs::view::<P2VMAILBOX::Register>(v);
        let m = &mut self.mailbox[n];
        if r.is_set(P2VMAILBOX::RVFU) {
            m.vfu = false;
            let clear = (1 << n) | (1 << (16 + n));
            self.set_reg(PfReg::MBVFICR, self.reg(PfReg::MBVFICR) & !clear);
        }
        let m = &mut self.mailbox[n];
        if r.is_set(P2VMAILBOX::PFU) {
            if !m.vfu {
                m.pfu = true;
            }
        } else {
            m.pfu = false;
        }
        let mut notify = false;
        if r.is_set(P2VMAILBOX::STS) {
            m.pfsts = true;
            notify = true;
        }
        if r.is_set(P2VMAILBOX::ACK) {
            m.pfack = true;
            notify = true;
        }
        if notify && let Some(vf) = VfIndex::new(n) {
            let misc = regs::view::<IVAR_MISC::Register>(self.vf_irq[n].ivar_misc);
            if misc.is_set(IVAR_MISC::VALID) {
                self.raise_vf_causes(vf, 1 << (misc.read(IVAR_MISC::VECTOR) & 0x3));
            }
        }
    }

    /// Mailbox control state of `vf` (no read side effects).
    pub fn mailbox_state(&self, vf: VfIndex) -> MailboxState {
        self.mailbox[vf.get()]
    }

    // ----- interrupts ---------------------------------------------------------------------

    /// Sets EICR bits of `vf` and fires the enabled ones.
    pub(crate) fn raise_vf_causes(&mut self, vf: VfIndex, bits: u32) {
        let n = vf.get();
        let bits = bits & 0x7;
        self.vf_irq[n].eicr |= bits;
        let fire = bits & self.vf_irq[n].eims;
        if fire != 0 {
            self.fire_vf(vf, fire);
        }
    }

    fn fire_vf(&mut self, vf: VfIndex, bits: u32) {
        let n = vf.get();
        for v in 0..3u16 {
            if bits & (1 << v) != 0 {
                self.signal(FunctionId::Vf(vf), v);
            }
        }
        let irq = &mut self.vf_irq[n];
        irq.eicr &= !(irq.eiac & bits);
        irq.eims &= !(irq.eiam & bits);
    }

    /// The vector bit for a queue event of VF-owned queue `q` (IVAR0 byte for RX/TX of queue
    /// 0 or 1), if valid.
    pub(crate) fn vf_queue_vector(&self, vf: VfIndex, q: QueueIndex, tx: bool) -> Option<u32> {
        let ivar = self.vf_irq[vf.get()].ivar0;
        let byte = 2 * q.queue_in_pool() + usize::from(tx);
        let entry = (ivar >> (8 * byte)) & 0xFF;
        (entry & 0x80 != 0).then(|| 1 << (entry & 0x3))
    }

    /// Raises PF interrupt causes (ICR) and signals the PF's "other" vector if enabled.
    pub(crate) fn raise_pf_cause(&mut self, bits: u32) {
        self.set_reg(PfReg::ICR, self.reg(PfReg::ICR) | bits);
        if bits & self.reg(PfReg::IMS) != 0 {
            self.signal_pf();
        }
    }

    fn signal_pf(&mut self) {
        // PF IVAR_MISC byte 1: the "other causes" vector (datasheet 8.8.15).
        let misc = self.reg(PfReg::IVAR_MISC) >> 8;
        let vector = if misc & 0x80 != 0 {
            (misc & 0x1F) as u16
        } else {
            0
        };
        self.signal(FunctionId::Pf, vector);
    }

    fn signal(&mut self, f: FunctionId, vector: u16) {
        let (enabled, masked) = self.msix_state(f);
        if !enabled {
            self.counters.interrupts_without_msix += 1;
            return;
        }
        if let Some(msg) = self.msix[f.slot()].signal(f, vector, masked) {
            self.emit_interrupt(msg);
        }
    }

    fn deliver_vectors(&mut self, f: FunctionId, vectors: &[u16]) {
        for &v in vectors {
            self.signal(f, v);
        }
    }

    fn emit_interrupt(&mut self, msg: Interrupt) {
        if let Some(h) = &mut self.interrupt_handler {
            h(msg);
        }
        self.interrupts.push(msg);
    }

    // ----- isolation snapshots ------------------------------------------------------------

    /// Everything that belongs to `vf`, read without side effects.
    pub fn vf_snapshot(&self, vf: VfIndex) -> VfSnapshot {
        let n = vf.get() as u8;
        let mut queue_registers = Vec::new();
        for vq in 0..igb_hw::addr::QUEUES_PER_VF {
            if let Some(q) = vf.queue(vq) {
                let q = q.get() as u8;
                for r in [
                    PfReg::RDBAL(q),
                    PfReg::RDBAH(q),
                    PfReg::RDLEN(q),
                    PfReg::SRRCTL(q),
                    PfReg::RDH(q),
                    PfReg::RDT(q),
                    PfReg::RXDCTL(q),
                    PfReg::RQDPC(q),
                    PfReg::TDBAL(q),
                    PfReg::TDBAH(q),
                    PfReg::TDLEN(q),
                    PfReg::TDH(q),
                    PfReg::TDT(q),
                    PfReg::TXDCTL(q),
                    PfReg::TDWBAL(q),
                    PfReg::TDWBAH(q),
                ] {
                    queue_registers.push(self.reg(r));
                }
            }
        }
        let statistics = [
            PfReg::PVFGPRC(n),
            PfReg::PVFGPTC(n),
            PfReg::PVFGORC(n),
            PfReg::PVFGOTC(n),
            PfReg::PVFMPRC(n),
            PfReg::PVFGPRLBC(n),
            PfReg::PVFGPTLBC(n),
            PfReg::PVFGORLBC(n),
            PfReg::PVFGOTLBC(n),
        ]
        .iter()
        .map(|&r| self.reg(r))
        .collect();
        let q0 = vf.get();
        VfSnapshot {
            queue_registers,
            interrupts: self.vf_irq[vf.get()],
            mailbox: self.mailbox[vf.get()],
            mailbox_memory: (0..MAILBOX_WORDS as u8)
                .map(|i| self.reg(PfReg::VMBMEM(n * MAILBOX_WORDS as u8 + i)))
                .collect(),
            msix: self.msix[FunctionId::Vf(vf).slot()].clone(),
            config: self.vf_config[vf.get()].bytes().to_vec(),
            statistics,
            faulted: [self.tx_state[q0].faulted, self.tx_state[q0 + 8].faulted],
        }
    }

    /// PF configuration registers ([`PF_CONFIGURATION_REGISTERS`] plus the RAR, VMOLR, VMVIR,
    /// VLVF, MTA and VFTA arrays), read without side effects.
    pub fn pf_configuration_snapshot(&self) -> Vec<u32> {
        let mut out: Vec<u32> = PF_CONFIGURATION_REGISTERS
            .iter()
            .map(|&r| self.reg(r))
            .collect();
        for i in 0..16u8 {
            out.push(self.reg(PfReg::RAL(i)));
            out.push(self.reg(PfReg::RAH(i)));
        }
        for i in 0..8u8 {
            out.push(self.reg(PfReg::RAL2(i)));
            out.push(self.reg(PfReg::RAH2(i)));
            out.push(self.reg(PfReg::VMOLR(i)));
            out.push(self.reg(PfReg::VMVIR(i)));
        }
        for i in 0..32u8 {
            out.push(self.reg(PfReg::VLVF(i)));
        }
        for i in 0..128u8 {
            out.push(self.reg(PfReg::MTA(i)));
            out.push(self.reg(PfReg::VFTA(i)));
        }
        out.push(u32::from(self.egress.hac_enabled()));
        out.push(self.egress.guard_bytes() as u32);
        out.push(self.hac_tagged_mask());
        for p in 0..8 {
            if let Some(pool) = igb_hw::PoolIndex::new(p) {
                let h = self.egress.hac_state(vport(pool));
                let l = self.egress.hac_limits(vport(pool));
                out.extend_from_slice(&[
                    h.open,
                    h.committed,
                    h.resolved,
                    l.frames as u32,
                    l.bytes as u32,
                ]);
            }
        }
        out.extend_from_slice(
            self.pf_config
                .bytes()
                .as_slice()
                .chunks(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<_>>()
                .as_slice(),
        );
        out
    }
}

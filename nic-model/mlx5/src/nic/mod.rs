//! [`Mlx5Nic`]: the PF and its VFs as a bus device — configuration space, BAR0 (in
//! `bar.rs`), per-function IOMMU, virtual time and the command doorbell.

use std::sync::Arc;

use adapter_core::SimTime;
use adapter_core::memory::{DmaTarget, Iommu, MapError};
use hw_common::Iova;
use mlx5_hw::cmd::DeliveryStatus;
use mlx5_hw::eqe::{EventData, EventType};
use mlx5_hw::pci::{self, layout, msix, sriov};
use mlx5_hw::uar::UAR_PAGE_LEN;

use crate::cmdq::{self, SlotOutcome};
use crate::commands::{self, Ctx, FunctionState};
use crate::config::{ConfigAccessError, ConfigSpace, sriov_cap};
use crate::counters::{Counters, FunctionCounters};
use crate::eq;
use crate::eswitch::Eswitch;
use adapter_core::egress::EgressLimits;
use adapter_core::wire::LineRate;
use hw_common::MacAddress;

mod cq_events;
mod datapath;
mod eswitch;
mod events;
mod rx;
mod trace;
mod tx;
use crate::function::FunctionId;
use crate::init_seg::SegmentState;
use crate::msix::{Interrupt, Msix};
#[cfg(feature = "test-utils")]
pub(crate) use datapath::TxVerdict;
pub use eswitch::EswitchError;

/// How the model is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mlx5Config {
    /// TotalVFs of the PF's SR-IOV capability (at most `mlx5_hw::pci::sriov::TOTAL_VFS`).
    pub total_vfs: u16,
    /// Virtual time the initializing bit stays set after a function reset (0: ready at once,
    /// as the lab answered).
    pub boot_time_ns: u64,
    /// Check entry and mailbox signatures (Linux runs with checksums off and the model
    /// advertises `cmdif_checksum` 0, so off by default).
    pub verify_signatures: bool,
    /// The PF's permanent MAC (its NIC vport context; a VF's is what the PF assigns).
    pub pf_mac: MacAddress,
    /// Line rate of the wire.
    pub line_rate: LineRate,
    /// Keep every frame that leaves the wire in memory ([`Mlx5Nic::take_wire_capture`]).
    pub capture_wire: bool,
    /// Per-vport capacity of the egress stage for vports that are not checkpointing.
    pub egress_limits: EgressLimits,
}

/// The PF's default permanent MAC: locally administered, with the 15:B3 of the vendor id.
pub const DEFAULT_PF_MAC: MacAddress = MacAddress([0x02, 0x15, 0xB3, 0x00, 0x00, 0x01]);

impl Default for Mlx5Config {
    fn default() -> Self {
        Mlx5Config {
            total_vfs: sriov::TOTAL_VFS,
            boot_time_ns: 0,
            verify_signatures: false,
            pf_mac: DEFAULT_PF_MAC,
            line_rate: LineRate::default(),
            capture_wire: false,
            egress_limits: EgressLimits::default(),
        }
    }
}

/// Why a DMA mapping was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DmaMapError {
    /// The function does not exist (VF beyond TotalVFs).
    #[error("no function {0}")]
    NoSuchFunction(FunctionId),
    /// The IOMMU refused the mapping.
    #[error(transparent)]
    Map(#[from] MapError),
}

/// Why a page request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageRequestError {
    /// The function does not exist (VF beyond TotalVFs).
    #[error("no function {0}")]
    NoSuchFunction(FunctionId),
    /// The function is not initialized (INIT_HCA): it has no EQs to hear the request.
    #[error("{0} is not initialized")]
    NotInitialized(FunctionId),
    /// A request for zero pages.
    #[error("a page request for no pages")]
    NoPages,
}

/// One PCI function: its configuration space, IOMMU, BAR0 contents and command state.
pub(crate) struct Function {
    pub(crate) id: FunctionId,
    pub(crate) config: ConfigSpace,
    pub(crate) iommu: Iommu,
    pub(crate) seg: SegmentState,
    /// MSI-X table and PBA.
    pub(crate) msix: Msix,
    pub(crate) cmdq: Option<u64>,
    pub(crate) cmdq_stopped: bool,
    pub(crate) state: FunctionState,
    pub(crate) counters: FunctionCounters,
}

impl Function {
    fn new(id: FunctionId, total_vfs: u16, now: SimTime, boot_ns: u64) -> Function {
        let (config, table) = match id {
            FunctionId::Pf => (ConfigSpace::new_pf(total_vfs), msix::PF_TABLE_SIZE),
            FunctionId::Vf(_) => (ConfigSpace::new_vf(), msix::VF_TABLE_SIZE),
        };
        Function {
            id,
            config,
            iommu: Iommu::default(),
            seg: SegmentState::new(now, boot_ns),
            msix: Msix::new(table),
            cmdq: None,
            cmdq_stopped: false,
            state: FunctionState::new(id.is_vf()),
            counters: FunctionCounters::default(),
        }
    }

    pub(crate) fn bar0_size(&self) -> u64 {
        match self.id {
            FunctionId::Pf => pci::PF_BAR0.size,
            FunctionId::Vf(_) => pci::VF_BAR0.size,
        }
    }
}

/// The device: a ConnectX-6 Dx PF and up to `total_vfs` VFs.
pub struct Mlx5Nic {
    pub(crate) cfg: Mlx5Config,
    pub(crate) now: SimTime,
    pub(crate) functions: Vec<Function>,
    pub(crate) counters: Counters,
    pub(crate) interrupts: Vec<Interrupt>,
    /// The E-Switch: vports, the HAC egress stage, the wire.
    pub(crate) eswitch: Eswitch,
}

impl Mlx5Nic {
    /// A device at virtual time zero, SR-IOV off.
    pub fn new(cfg: Mlx5Config) -> Mlx5Nic {
        let cfg = Mlx5Config {
            total_vfs: cfg.total_vfs.min(sriov::TOTAL_VFS),
            ..cfg
        };
        let functions = core::iter::once(FunctionId::Pf)
            .chain((0..cfg.total_vfs).map(FunctionId::Vf))
            .map(|id| Function::new(id, cfg.total_vfs, SimTime::ZERO, cfg.boot_time_ns))
            .collect();
        Mlx5Nic {
            cfg,
            now: SimTime::ZERO,
            functions,
            counters: Counters::default(),
            interrupts: Vec::new(),
            eswitch: Eswitch::new(
                1 + usize::from(cfg.total_vfs),
                cfg.pf_mac,
                cfg.line_rate,
                cfg.capture_wire,
                cfg.egress_limits,
            ),
        }
    }

    /// The configuration.
    pub fn config(&self) -> Mlx5Config {
        self.cfg
    }

    /// Current virtual time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Moves virtual time forward to `now` (the health counter and the internal timer follow
    /// it; the initializing bit clears when the boot time has passed), event by event: the
    /// wire sends each frame of the egress stage when it is ready and the line is free, and
    /// send queues stalled on a full egress buffer are serviced as room frees. Earlier times
    /// are ignored and counted.
    pub fn advance_to(&mut self, now: SimTime) {
        if now < self.now {
            self.counters.time_went_backwards += 1;
            return;
        }
        self.run_wire_until(now);
        self.now = now;
    }

    /// Interrupt messages sent since the last call, in order.
    pub fn take_interrupts(&mut self) -> Vec<Interrupt> {
        std::mem::take(&mut self.interrupts)
    }

    /// The PBA of function `f` (bit n: vector n pending).
    pub fn msix_pending(&self, f: FunctionId) -> Option<u64> {
        self.function(f).map(|x| x.msix.pending)
    }

    /// The device asks function `f` for `pages` more pages (initialized functions only): the
    /// page-request event (function id 0: the function itself) goes to the EQs subscribed to
    /// it, and QUERY_PAGES op_mod 3 reports the pages owed until MANAGE_PAGES gives them.
    /// Refused (nothing happens) for a function that is absent or not initialized, or for no
    /// pages.
    pub fn request_pages(&mut self, f: FunctionId, pages: u32) -> Result<(), PageRequestError> {
        let Some(func) = self.functions.get_mut(f.slot()).filter(|x| x.id == f) else {
            return Err(PageRequestError::NoSuchFunction(f));
        };
        if func.state.hca != commands::HcaState::Initialized {
            return Err(PageRequestError::NotInitialized(f));
        }
        if pages == 0 {
            return Err(PageRequestError::NoPages);
        }
        let owed = func
            .state
            .pages_owed
            .saturating_add(pages)
            .min(i32::MAX as u32);
        func.state.pages_owed = owed;
        self.counters.page_requests += 1;
        let eqs = eq::subscribers(&func.state.eqs, EventType::PageRequest);
        let data = EventData::PageRequest {
            flags: 0,
            func_id: 0,
            num_pages: pages.min(i32::MAX as u32) as i32,
        };
        func.post_event(
            &eqs,
            EventType::PageRequest,
            data,
            &mut self.counters,
            &mut self.interrupts,
        );
        Ok(())
    }

    /// Device-wide counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counters of one function's command interface.
    pub fn function_counters(&self, f: FunctionId) -> Option<FunctionCounters> {
        self.function(f).map(|f| f.counters)
    }

    /// What the commands have set on function `f`.
    pub fn function_state(&self, f: FunctionId) -> Option<&FunctionState> {
        self.function(f).map(|f| &f.state)
    }

    /// The command queue address function `f`'s driver gave, if any.
    pub fn cmdq_address(&self, f: FunctionId) -> Option<u64> {
        self.function(f).and_then(|f| f.cmdq)
    }

    /// True when a DMA fault stopped function `f`'s command queue.
    pub fn cmdq_stopped(&self, f: FunctionId) -> bool {
        self.function(f).is_some_and(|f| f.cmdq_stopped)
    }

    pub(crate) fn function(&self, f: FunctionId) -> Option<&Function> {
        self.functions.get(f.slot()).filter(|x| x.id == f)
    }

    pub(crate) fn function_mut(&mut self, f: FunctionId) -> Option<&mut Function> {
        self.functions.get_mut(f.slot()).filter(|x| x.id == f)
    }

    fn pf_config(&self) -> &ConfigSpace {
        &self.functions[0].config
    }

    /// Number of VFs enabled (SR-IOV VF Enable and NumVFs, at most TotalVFs).
    pub fn num_vfs(&self) -> u16 {
        if self.pf_config().sriov_control() & sriov_cap::CONTROL_VF_ENABLE == 0 {
            return 0;
        }
        self.pf_config().sriov_num_vfs().min(self.cfg.total_vfs)
    }

    /// True when function `f` exists now (the PF always; a VF while enabled).
    pub fn function_enabled(&self, f: FunctionId) -> bool {
        match f {
            FunctionId::Pf => true,
            FunctionId::Vf(v) => v < self.num_vfs(),
        }
    }

    /// Maps `len` bytes at `iova` of function `f`'s IOMMU onto `target[offset..]`.
    pub fn dma_map(
        &mut self,
        f: FunctionId,
        iova: Iova,
        len: u64,
        target: Arc<dyn DmaTarget>,
        offset: u64,
    ) -> Result<(), DmaMapError> {
        let func = self.function_mut(f).ok_or(DmaMapError::NoSuchFunction(f))?;
        Ok(func.iommu.map(iova, len, target, offset, true)?)
    }

    /// Removes function `f`'s mapping at `iova`.
    pub fn dma_unmap(&mut self, f: FunctionId, iova: Iova) -> Result<(), DmaMapError> {
        let func = self.function_mut(f).ok_or(DmaMapError::NoSuchFunction(f))?;
        Ok(func.iommu.unmap(iova)?)
    }

    /// Configuration read. Unaligned or out-of-range accesses, and accesses to a VF that is
    /// not enabled, read all ones and are counted.
    pub fn config_read(&mut self, f: FunctionId, offset: u16, data: &mut [u8]) {
        if !self.function_enabled(f) {
            self.counters.disabled_function_accesses += 1;
            data.fill(0xFF);
            return;
        }
        let r = match self.function(f) {
            Some(func) => func.config.read(usize::from(offset), data),
            None => Err(ConfigAccessError::OutOfRange),
        };
        if let Err(e) = r {
            self.count_config_error(e);
            data.fill(0xFF);
        }
    }

    /// Configuration write, with the SR-IOV (VFs appear and disappear) and FLR side effects.
    pub fn config_write(&mut self, f: FunctionId, offset: u16, data: &[u8]) {
        if !self.function_enabled(f) {
            self.counters.disabled_function_accesses += 1;
            return;
        }
        let (old_ctrl, old_num) = (
            self.pf_config().sriov_control(),
            self.pf_config().sriov_num_vfs(),
        );
        let r = match self.function_mut(f) {
            Some(func) => func.config.write(usize::from(offset), data),
            None => Err(ConfigAccessError::OutOfRange),
        };
        if let Err(e) = r {
            self.count_config_error(e);
            return;
        }
        let flr = self
            .function_mut(f)
            .is_some_and(|func| func.config.take_flr_request());
        if flr {
            self.reset_function(f);
            return;
        }
        // MSI-X enable or the function mask may have changed.
        if let Some(func) = self.functions.get_mut(f.slot()).filter(|x| x.id == f) {
            func.deliver_pending(&mut self.counters, &mut self.interrupts);
        }
        if f == FunctionId::Pf {
            let enable = sriov_cap::CONTROL_VF_ENABLE;
            // NumVFs may only change while VF Enable is clear (SR-IOV 3.3.7).
            if old_ctrl & enable != 0 {
                self.functions[0]
                    .config
                    .set16(layout::PF_SRIOV + sriov_cap::NUM_VFS, old_num);
            }
            let now_ctrl = self.pf_config().sriov_control();
            if (old_ctrl ^ now_ctrl) & enable != 0 {
                for v in 0..self.cfg.total_vfs {
                    self.reset_function(FunctionId::Vf(v));
                }
            }
        }
    }

    fn count_config_error(&mut self, e: ConfigAccessError) {
        match e {
            ConfigAccessError::Misaligned => self.counters.misaligned_accesses += 1,
            ConfigAccessError::OutOfRange => self.counters.out_of_range_accesses += 1,
        }
    }

    /// Function-level reset of `f`: configuration, initialization segment, command queue and
    /// every command state back to their reset values (pages still held are released and
    /// counted). The IOMMU is the host's and stays. A PF reset resets its VFs too.
    pub fn reset_function(&mut self, f: FunctionId) {
        let (now, boot, total) = (self.now, self.cfg.boot_time_ns, self.cfg.total_vfs);
        let Some(func) = self.function_mut(f) else {
            return;
        };
        let released = func.state.pages.len() as u64;
        let iommu = std::mem::take(&mut func.iommu);
        *func = Function::new(f, total, now, boot);
        func.iommu = iommu;
        self.counters.pages_released_on_reset += released;
        self.counters.function_resets += 1;
        self.eswitch_function_reset(f);
        if f == FunctionId::Pf {
            for v in 0..total {
                self.reset_function(FunctionId::Vf(v));
            }
        }
    }

    /// Convenience for hosts and tests: memory and bus mastering on the PF, then `num_vfs`
    /// VFs enabled the way the kernel does (NumVFs, then VF Enable + VF MSE).
    pub fn enable_sriov(&mut self, num_vfs: u16) {
        use crate::config::header;
        let cmd = header::COMMAND_MEMORY | header::COMMAND_BUS_MASTER;
        self.config_write(FunctionId::Pf, header::COMMAND as u16, &cmd.to_le_bytes());
        let s = layout::PF_SRIOV as u16;
        let ctrl = s + sriov_cap::CONTROL as u16;
        self.config_write(FunctionId::Pf, ctrl, &0u16.to_le_bytes());
        self.config_write(
            FunctionId::Pf,
            s + sriov_cap::NUM_VFS as u16,
            &num_vfs.to_le_bytes(),
        );
        let on = sriov_cap::CONTROL_VF_ENABLE | sriov_cap::CONTROL_VF_MSE;
        self.config_write(FunctionId::Pf, ctrl, &on.to_le_bytes());
    }

    /// The driver wrote `cmdq_addr_l_sz`: the command interface of `f` (re)starts at `addr`.
    pub(crate) fn set_cmdq(&mut self, f: FunctionId, addr: u64) {
        if let Some(func) = self.function_mut(f) {
            func.cmdq = Some(addr);
            func.cmdq_stopped = false;
        }
    }

    /// The command doorbell of `f` with bitmask `mask`: each posted entry is processed in
    /// slot order, synchronously.
    pub(crate) fn doorbell(&mut self, f: FunctionId, mask: u32) {
        self.counters.doorbells += 1;
        let (now, verify) = (self.now, self.cfg.verify_signatures);
        let num_vfs = self.num_vfs();
        let Some(func) = self.functions.get_mut(f.slot()) else {
            return;
        };
        let c = &mut self.counters;
        if func.seg.initializing(now) {
            c.doorbell_while_initializing += 1;
            return;
        }
        let Some(cmdq) = func.cmdq else {
            c.doorbell_no_queue += 1;
            return;
        };
        let ctx = Ctx {
            is_vf: f.is_vf(),
            function: f,
            num_vfs,
            now,
            uar_pages: (func.bar0_size() / UAR_PAGE_LEN) as u32,
            released_pages: core::cell::Cell::new(0),
            msix_vectors: func.msix.vectors(),
            eq_buffer_faults: core::cell::Cell::new(0),
            cq_buffer_faults: core::cell::Cell::new(0),
            wq_buffer_faults: core::cell::Cell::new(0),
        };
        let ints = &mut self.interrupts;
        let esw = &mut self.eswitch;
        for slot in (0..32u8).filter(|s| mask & (1 << s) != 0) {
            if func.cmdq_stopped {
                c.doorbell_queue_stopped += 1;
                continue;
            }
            let mut status = None;
            // Event mode: EQs subscribed before the command ran hear of its completion.
            let cmd_eqs = eq::subscribers(&func.state.eqs, EventType::Cmd);
            let Function { iommu, state, .. } = &mut *func;
            let outcome = cmdq::process_slot(iommu, cmdq, slot, verify, |input, out_len| {
                let (out, s) = commands::execute(state, &ctx, iommu, esw, input, out_len);
                status = Some(s);
                out
            });
            if let Some(s) = status {
                func.counters.commands += 1;
                if s == mlx5_hw::cmd::CommandStatus::Ok {
                    c.commands_ok += 1;
                } else {
                    c.command_errors.count(s);
                    func.counters.command_errors += 1;
                }
            }
            match outcome {
                SlotOutcome::Executed => {}
                SlotOutcome::NotOwned => c.entry_not_owned += 1,
                SlotOutcome::Refused(d) => {
                    c.delivery.count(d);
                    func.counters.delivery_errors += 1;
                }
                SlotOutcome::Fault { .. } => {
                    c.cmd_dma_faults += 1;
                    c.delivery.count(DeliveryStatus::FwError);
                    func.counters.dma_faults += 1;
                    func.counters.delivery_errors += 1;
                    func.cmdq_stopped = true;
                }
            }
            if matches!(outcome, SlotOutcome::Executed | SlotOutcome::Refused(_)) {
                let data = EventData::Cmd { vector: 1 << slot };
                func.post_event(&cmd_eqs, EventType::Cmd, data, c, ints);
            }
        }
        c.eq_buffer_faults += ctx.eq_buffer_faults.get();
        c.cq_buffer_faults += ctx.cq_buffer_faults.get();
        c.wq_buffer_faults += ctx.wq_buffer_faults.get();
        c.pages_released_on_reset += ctx.released_pages.get() as u64;
        // Vport state changes reach their functions; HAC commands may have freed egress room.
        self.eswitch_after_commands();
    }
}

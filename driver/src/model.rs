//! The in-process backend: the driver's traits implemented directly by the model, with no
//! unsafe code. Register accesses lock the shared [`Nic`]; DMA memory is
//! [`SharedMemory`] mapped into the function's IOMMU; the clock is the
//! model's virtual clock, and waiting lets the device and registered services (the PF agent)
//! run.

use std::sync::{Arc, Mutex, MutexGuard};

use igb_hw::{Iova, RegisterOffset, VfIndex};
use igb_model::{DmaTarget, FunctionId, Nic, NicConfig, SharedMemory};

use crate::backend::{Clock, DmaAllocator, DmaError, RegisterIo};
/// Where the model backend starts handing out IOVAs for each function.
pub use crate::inproc::IOVA_START;
use crate::inproc::{InProcessMapper, InProcessRegion, IovaSpace};

/// Something that runs whenever a driver on the model waits (e.g. the PF agent's poll).
pub type Service = Box<dyn FnMut() + Send>;

/// A model shared by drivers in the same process.
#[derive(Clone)]
pub struct Model {
    nic: Arc<Mutex<Nic>>,
    services: Arc<Mutex<Vec<Service>>>,
    iova: IovaSpace,
}

impl Model {
    /// A new model device.
    pub fn new(config: NicConfig) -> Model {
        Model::from_nic(Nic::new(config))
    }

    /// Wraps an existing device.
    pub fn from_nic(nic: Nic) -> Model {
        Model {
            nic: Arc::new(Mutex::new(nic)),
            services: Arc::new(Mutex::new(Vec::new())),
            iova: IovaSpace::default(),
        }
    }

    /// Locks the device (a poisoned lock is recovered: the model has no invariants a panic
    /// elsewhere could break half-way).
    pub fn nic(&self) -> MutexGuard<'_, Nic> {
        self.nic.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register access to BAR0 of `function`.
    pub fn bar0(&self, function: FunctionId) -> ModelBar {
        ModelBar {
            model: self.clone(),
            function,
        }
    }

    /// DMA allocator for `function`.
    pub fn dma(&self, function: FunctionId) -> ModelDma {
        ModelDma {
            model: self.clone(),
            function,
        }
    }

    /// The virtual clock.
    pub fn clock(&self) -> ModelClock {
        ModelClock {
            model: self.clone(),
        }
    }

    /// Registers a service run on every wait.
    pub fn add_service(&self, service: Service) {
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(service);
    }

    /// Advances virtual time by `ns`, then runs the services once. A wait from inside a service
    /// only advances time (services do not re-enter).
    pub fn run_for(&self, ns: u64) {
        self.nic().advance_by(ns);
        if let Ok(mut services) = self.services.try_lock() {
            for s in services.iter_mut() {
                s();
            }
        }
    }

    fn slot(function: FunctionId) -> usize {
        match function {
            FunctionId::Pf => 0,
            FunctionId::Vf(v) => 1 + v.get(),
        }
    }
}

/// BAR0 of one function of the model.
#[derive(Clone)]
pub struct ModelBar {
    model: Model,
    function: FunctionId,
}

impl RegisterIo for ModelBar {
    fn read32(&self, offset: RegisterOffset) -> u32 {
        self.model.nic().read32(self.function, offset)
    }
    fn write32(&self, offset: RegisterOffset, value: u32) {
        self.model.nic().write32(self.function, offset, value)
    }
}

/// DMA memory of one function of the model.
#[derive(Clone)]
pub struct ModelDma {
    model: Model,
    function: FunctionId,
}

/// A region of [`SharedMemory`] mapped into a function's IOMMU; unmapped on drop.
pub type ModelRegion = InProcessRegion<ModelDma>;

impl InProcessMapper for ModelDma {
    fn map(&self, iova: Iova, mem: Arc<SharedMemory>) -> Result<(), String> {
        let len = DmaTarget::len(&*mem);
        self.model
            .nic()
            .dma_map(self.function, iova, len, mem, 0)
            .map_err(|e| e.to_string())
    }
    fn unmap(&self, iova: Iova) {
        let _ = self.model.nic().dma_unmap(self.function, iova);
    }
    fn slot(&self) -> usize {
        Model::slot(self.function)
    }
}

impl DmaAllocator for ModelDma {
    type Region = ModelRegion;

    fn allocate(&self, len: usize) -> Result<ModelRegion, DmaError> {
        self.model.iova.allocate(self, len)
    }
}

/// The model's virtual clock.
#[derive(Clone)]
pub struct ModelClock {
    model: Model,
}

impl Clock for ModelClock {
    fn now_ns(&self) -> u64 {
        self.model.nic().now().as_nanos()
    }
    fn delay_ns(&self, ns: u64) {
        self.model.run_for(ns);
    }
}

/// A PF agent shared with the model's service loop.
pub type SharedPfAgent = Arc<Mutex<crate::pf::PfAgent<ModelBar, ModelClock>>>;

impl Model {
    /// What the host kernel does before a VF driver can run: enables `num_vfs` VFs (SR-IOV
    /// NumVFs + VF Enable + VF MSE) and turns on bus mastering in each VF's command register.
    pub fn enable_vfs(&self, num_vfs: usize) {
        let mut nic = self.nic();
        nic.enable_sriov(num_vfs as u16);
        let cmd = igb_hw::pci::command::BUS_MASTER.to_le_bytes();
        for vf in VfIndex::all(num_vfs) {
            nic.config_write(
                FunctionId::Vf(vf),
                igb_hw::pci::header::COMMAND as u16,
                &cmd,
            );
        }
    }

    /// Enables `config.num_vfs` VFs, starts the PF agent with `admin_macs` (one per VF, `None` =
    /// let the VF choose) and runs it on every wait.
    pub fn start_pf_agent(
        &self,
        config: crate::pf::PfConfig,
        admin_macs: &[Option<igb_hw::MacAddress>],
    ) -> Result<SharedPfAgent, crate::DriverError> {
        self.enable_vfs(config.num_vfs);
        let mut agent = crate::pf::PfAgent::new(self.bar0(FunctionId::Pf), self.clock(), config)?;
        // The agent manages at most 7 VFs, so a MAC beyond `num_vfs` meets a VF index that
        // exists on the 82576 and is refused (`NoSuchVf`) before the indices run out.
        for (vf, mac) in VfIndex::all(admin_macs.len()).zip(admin_macs) {
            agent.set_vf_mac(vf, *mac)?;
        }
        let agent = Arc::new(Mutex::new(agent));
        // A weak reference: the agent holds the model (through its BAR), so a strong one here
        // would keep both alive forever.
        let service = Arc::downgrade(&agent);
        self.add_service(Box::new(move || {
            if let Some(a) = service.upgrade() {
                a.lock().unwrap_or_else(|p| p.into_inner()).poll();
            }
        }));
        Ok(agent)
    }

    /// A PF agent enabling one VF per entry of `admin_macs` (each given that MAC, or none),
    /// with the default [`PfConfig`](crate::pf::PfConfig) otherwise, and the VF driver of
    /// each, brought up with `config`: the set-up most tests, benches and examples start from.
    #[allow(clippy::type_complexity)]
    pub fn start_vfs(
        &self,
        admin_macs: &[Option<igb_hw::MacAddress>],
        config: crate::vf::VfConfig,
    ) -> Result<
        (
            SharedPfAgent,
            Vec<crate::vf::VfDriver<ModelBar, ModelDma, ModelClock>>,
        ),
        crate::DriverError,
    > {
        let agent = self.start_pf_agent(
            crate::pf::PfConfig {
                num_vfs: admin_macs.len(),
                ..crate::pf::PfConfig::default()
            },
            admin_macs,
        )?;
        let drivers = VfIndex::all(admin_macs.len())
            .map(|vf| self.vf_driver(vf, config.clone()))
            .collect::<Result<_, _>>()?;
        Ok((agent, drivers))
    }

    /// A VF driver on VF `vf` of this model.
    pub fn vf_driver(
        &self,
        vf: VfIndex,
        config: crate::vf::VfConfig,
    ) -> Result<crate::vf::VfDriver<ModelBar, ModelDma, ModelClock>, crate::DriverError> {
        let f = FunctionId::Vf(vf);
        crate::vf::VfDriver::new(self.bar0(f), self.dma(f), self.clock(), config)
    }
}

//! The in-process backend of the mlx5 driver: the driver's traits implemented by the mlx5
//! model ([`Mlx5Nic`]), with no unsafe code, as [`crate::model`] does for the 82576.
//!
//! Register accesses lock the shared device and go through its bus face
//! ([`Mlx5Nic::bar_read`] / [`Mlx5Nic::bar_write`]) with the bytes as they travel on the bus:
//! [`RegisterIo::read32`] returns BAR bytes `0..4` as a little-endian `u32`, exactly what a
//! mapped BAR returns on a little-endian host, so the driver's big-endian conversion is the
//! same on the model and on hardware. [`RegisterIo::write64`] is one 8-byte access (the model
//! refuses the CQ arm doorbell in 4-byte halves, as a 64-bit doorbell must not be torn). DMA
//! memory is [`SharedMemory`] mapped into the function's IOMMU; the clock is the model's
//! virtual clock, and waiting advances it.

use std::sync::{Arc, Mutex, MutexGuard};

use adapter_core::SimTime;
use adapter_core::memory::SharedMemory;
use hw_common::Iova;
use igb_hw::RegisterOffset;
use mlx5_model::{FunctionId, Mlx5Config, Mlx5Nic};

use crate::backend::{Clock, DmaAllocator, DmaError, RegisterIo};
/// Where the backend starts handing out IOVAs (each function has its own IOMMU).
pub use crate::inproc::IOVA_START;
use crate::inproc::{InProcessMapper, InProcessRegion, IovaSpace};

/// An mlx5 model shared by the drivers of its functions in this process.
#[derive(Clone)]
pub struct Mlx5Model {
    nic: Arc<Mutex<Mlx5Nic>>,
    iova: IovaSpace,
}

impl Mlx5Model {
    /// A new device (PF, SR-IOV off) at virtual time zero.
    pub fn new(config: Mlx5Config) -> Mlx5Model {
        Mlx5Model::from_nic(Mlx5Nic::new(config))
    }

    /// Wraps an existing device.
    pub fn from_nic(nic: Mlx5Nic) -> Mlx5Model {
        Mlx5Model {
            nic: Arc::new(Mutex::new(nic)),
            iova: IovaSpace::default(),
        }
    }

    /// Locks the device (a poisoned lock is recovered: the model keeps no invariant a panic
    /// elsewhere could break half-way).
    pub fn nic(&self) -> MutexGuard<'_, Mlx5Nic> {
        self.nic.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the host does before the drivers run: memory space and bus mastering on the PF,
    /// then `num_vfs` VFs enabled in the PF's SR-IOV capability (NumVFs, VF Enable, VF MSE).
    pub fn enable_vfs(&self, num_vfs: u16) {
        self.nic().enable_sriov(num_vfs);
    }

    /// Register access to BAR0 of `function`.
    pub fn bar0(&self, function: FunctionId) -> Mlx5ModelBar {
        Mlx5ModelBar {
            model: self.clone(),
            function,
        }
    }

    /// DMA allocator for `function`.
    pub fn dma(&self, function: FunctionId) -> Mlx5ModelDma {
        Mlx5ModelDma {
            model: self.clone(),
            function,
        }
    }

    /// The virtual clock.
    pub fn clock(&self) -> Mlx5ModelClock {
        Mlx5ModelClock {
            model: self.clone(),
        }
    }

    /// Advances virtual time by `ns`.
    pub fn run_for(&self, ns: u64) {
        let mut nic = self.nic();
        let now = nic.now().as_nanos().saturating_add(ns);
        nic.advance_to(SimTime::from_nanos(now));
    }

    fn slot(function: FunctionId) -> usize {
        match function {
            FunctionId::Pf => 0,
            FunctionId::Vf(v) => 1 + usize::from(v),
        }
    }
}

/// BAR0 of one function of the mlx5 model.
#[derive(Clone)]
pub struct Mlx5ModelBar {
    model: Mlx5Model,
    function: FunctionId,
}

impl Mlx5ModelBar {
    /// The function this BAR belongs to.
    pub fn function(&self) -> FunctionId {
        self.function
    }
}

impl RegisterIo for Mlx5ModelBar {
    fn read32(&self, offset: RegisterOffset) -> u32 {
        let mut b = [0u8; 4];
        self.model
            .nic()
            .bar_read(self.function, 0, u64::from(offset.0), &mut b);
        u32::from_le_bytes(b)
    }
    fn write32(&self, offset: RegisterOffset, value: u32) {
        self.model
            .nic()
            .bar_write(self.function, 0, u64::from(offset.0), &value.to_le_bytes());
    }
    fn write64(&self, offset: RegisterOffset, value: u64) {
        self.model
            .nic()
            .bar_write(self.function, 0, u64::from(offset.0), &value.to_le_bytes());
    }
}

/// DMA memory of one function of the mlx5 model.
#[derive(Clone)]
pub struct Mlx5ModelDma {
    model: Mlx5Model,
    function: FunctionId,
}

/// A region of [`SharedMemory`] mapped into a function's IOMMU; unmapped on drop.
pub type Mlx5ModelRegion = InProcessRegion<Mlx5ModelDma>;

impl InProcessMapper for Mlx5ModelDma {
    fn map(&self, iova: Iova, mem: Arc<SharedMemory>) -> Result<(), String> {
        let len = adapter_core::memory::DmaTarget::len(&*mem);
        self.model
            .nic()
            .dma_map(self.function, iova, len, mem, 0)
            .map_err(|e| e.to_string())
    }
    fn unmap(&self, iova: Iova) {
        let _ = self.model.nic().dma_unmap(self.function, iova);
    }
    fn slot(&self) -> usize {
        Mlx5Model::slot(self.function)
    }
}

impl DmaAllocator for Mlx5ModelDma {
    type Region = Mlx5ModelRegion;

    fn allocate(&self, len: usize) -> Result<Mlx5ModelRegion, DmaError> {
        self.model.iova.allocate(self, len)
    }
}

/// The model's virtual clock.
#[derive(Clone)]
pub struct Mlx5ModelClock {
    model: Mlx5Model,
}

impl Clock for Mlx5ModelClock {
    fn now_ns(&self) -> u64 {
        self.model.nic().now().as_nanos()
    }
    fn delay_ns(&self, ns: u64) {
        self.model.run_for(ns);
    }
}

/// A driver on one function of the model.
pub type ModelDevice = super::Mlx5Device<Mlx5ModelBar, Mlx5ModelDma, Mlx5ModelClock>;

impl Mlx5Model {
    /// A driver brought up on `function` of this model.
    pub fn device(
        &self,
        function: FunctionId,
        config: super::Mlx5Config,
    ) -> Result<ModelDevice, super::Mlx5Error> {
        super::Mlx5Device::new(
            self.bar0(function),
            self.dma(function),
            self.clock(),
            config,
        )
    }

    /// Enables `num_vfs` VFs in the PF's SR-IOV capability and brings up the PF's driver,
    /// then each VF's: the set-up most tests start from.
    pub fn start(
        &self,
        num_vfs: u16,
        config: super::Mlx5Config,
    ) -> Result<(ModelDevice, Vec<ModelDevice>), super::Mlx5Error> {
        self.enable_vfs(num_vfs);
        let pf = self.device(FunctionId::Pf, config.clone())?;
        let vfs = (0..num_vfs)
            .map(|v| self.device(FunctionId::Vf(v), config.clone()))
            .collect::<Result<_, _>>()?;
        Ok((pf, vfs))
    }
}

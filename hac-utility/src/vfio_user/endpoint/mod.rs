//! One VF of the model as a vfio-user device: the [`Backend`] the `hac-vfio-user` server
//! drives for each exported VF.
//!
//! The server has already checked every request (ranges, flags, descriptors, DMA windows and
//! their limits); what is left here is what each one does to the model, answered at once
//! (every register access is a few device-lock acquisitions; nothing waits for device time,
//! because a slow reply makes QEMU drop the connection). What it presents:
//!
//! * **Regions** (VFIO PCI numbering): 0 = BAR0 (16 KiB registers), 3 = BAR3 (16 KiB MSI-X),
//!   7 = config space (256 bytes, so the guest sees a conventional PCI function), the others
//!   absent (size 0). `config.rs` virtualises the config space, `bars.rs` routes BAR accesses.
//! * **Config space** (`config.rs`): the model's VF config space, with what the host's PCI core
//!   and vfio-pci virtualise for a VF: Vendor/Device ID 8086:10CA (a VF reads FFFF:FFFF,
//!   SR-IOV 3.4.1.1), the Command register's Memory Space bit (VF memory decoding belongs to
//!   the PF's VF MSE), and BAR0/BAR3 registers (a VF header has none; their flags come from
//!   the PF's SR-IOV capability: 64-bit prefetchable, 16 KiB).
//! * **Interrupts** (`irq.rs`): MSI-X index with 3 vectors. QEMU emulates the MSI-X table and
//!   PBA for the guest, so the model's own table is ours: a vector with an eventfd is
//!   programmed unmasked with data = vector number, one without is masked. The model's
//!   interrupt callback ([`IrqRoutes::signal`]) writes the vector's eventfd. It runs under the
//!   device lock, so it must never wait on a client: the server accepts only real eventfds,
//!   made non-blocking; a signal the eventfd cannot take is dropped and counted against that
//!   VF ([`IrqRoutes::lost`]).
//! * **DMA**: a window the server mapped (guest memory, `hac_vfio_user::GuestMapping`) is put
//!   into the VF's IOMMU at its address; windows without a descriptor never reach the
//!   endpoint (device accesses there fault, as with an IOMMU). In client mode
//!   ([`VfEndpoint::with_client_dma`], `hac serve --vfio-user-dma-writes client`) the device's
//!   writes, after the IOMMU check, become `DMA_WRITE` requests the client applies (so they are
//!   in its dirty log and a checkpoint carries them), and its interrupts wait behind them.
//! * **PF agent**: after every register access that can concern the mailbox or a VF reset, the
//!   PF agent runs at once (igbvf polls the mailbox for about 2 s before it falls back to a
//!   random MAC; the daemon's 1 ms tick alone would answer too, but the polls are cheaper).

mod bars;
mod config;
mod irq;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hac_driver::model::{Model, SharedPfAgent};
use hac_vfio_user::wire::vfio;
use hac_vfio_user::{
    Backend, DeviceError, DeviceInfo, DmaWindow, DmaWriteQueue, GuestMapping, IrqAction, IrqInfo,
    RegionInfo,
};

use super::guest_ram::GuestRam;
use igb_hw::VfIndex;
use igb_hw::pci::layout;
use igb_hw::regs::{MSIX_BAR_SIZE, VF_BAR0_SIZE, VF_MSIX_VECTORS};
use igb_model::{FunctionId, MapError};

pub use irq::IrqRoutes;

/// VFIO PCI region indexes (`VFIO_PCI_*_REGION_INDEX`).
pub mod region {
    /// BAR0: registers.
    pub const BAR0: u32 = 0;
    /// BAR3: MSI-X table and PBA.
    pub const BAR3: u32 = 3;
    /// Config space.
    pub const CONFIG: u32 = 7;
    /// Regions announced (BAR0..BAR5, ROM, config, VGA).
    pub const COUNT: u32 = 9;
}

/// VFIO IRQ indexes (`VFIO_PCI_*_IRQ_INDEX`).
pub mod irq_index {
    /// INTx (absent: a VF has no interrupt pin).
    pub const INTX: u32 = 0;
    /// MSI-X.
    pub const MSIX: u32 = 2;
    /// Indexes announced (INTx, MSI, MSI-X, error, request).
    pub const COUNT: u32 = 5;
}

/// Config space the client sees.
pub const CONFIG_SIZE: u64 = 256;
/// PCI Express Device Control (capability + 8), Initiate Function Level Reset (bit 15)
/// (PCIe Base 7.5.3.4).
const PCIE_DEVICE_CONTROL: usize = layout::PCIE + 8;
const INITIATE_FLR: u16 = 1 << 15;

/// What the endpoint itself has counted (the server counts messages, errors, DMA windows and
/// interrupt settings in `hac_vfio_user::Counters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndpointCounters {
    /// BAR accesses of a size or alignment the model's registers do not take (narrow reads are
    /// assembled from the enclosing registers, narrow writes dropped).
    pub misaligned: u64,
}

/// The endpoint's counters as the endpoint (inside its server thread) and the daemon (reading
/// `stats`) share them.
#[derive(Debug, Default)]
pub struct EndpointCells {
    misaligned: AtomicU64,
}

impl EndpointCells {
    /// The counters now.
    pub fn snapshot(&self) -> EndpointCounters {
        EndpointCounters {
            misaligned: self.misaligned.load(Ordering::Relaxed),
        }
    }

    pub(super) fn count_misaligned(&self) {
        self.misaligned.fetch_add(1, Ordering::Relaxed);
    }
}

/// One VF served to one vfio-user client. See the module documentation.
pub struct VfEndpoint {
    model: Model,
    vf: VfIndex,
    agent: Option<SharedPfAgent>,
    routes: Arc<IrqRoutes>,
    /// The config space the host virtualises (Command, BAR registers).
    config: config::VirtualConfig,
    counters: Arc<EndpointCells>,
    /// Client mode: the queue the device's writes and interrupts go through.
    client_dma: Option<Arc<DmaWriteQueue>>,
}

impl VfEndpoint {
    /// The endpoint of VF `vf` of `model`; `agent` is polled after mailbox-related accesses.
    pub fn new(
        model: Model,
        vf: VfIndex,
        agent: Option<SharedPfAgent>,
        routes: Arc<IrqRoutes>,
    ) -> VfEndpoint {
        VfEndpoint {
            model,
            vf,
            agent,
            routes,
            config: config::VirtualConfig::new(),
            counters: Arc::default(),
            client_dma: None,
        }
    }

    /// Client mode: the VF's writes to guest RAM and its interrupts go through `queue`
    /// (`hac_vfio_user::client_dma`); the server must be given the same queue
    /// (`Session::set_client_dma`).
    pub fn with_client_dma(mut self, queue: Arc<DmaWriteQueue>) -> VfEndpoint {
        self.routes.route_through(self.vf.get(), queue.clone());
        self.client_dma = Some(queue);
        self
    }

    /// The queue of client mode, if set.
    pub fn client_dma(&self) -> Option<&Arc<DmaWriteQueue>> {
        self.client_dma.as_ref()
    }

    /// The VF.
    pub fn vf(&self) -> VfIndex {
        self.vf
    }

    /// Counters so far.
    pub fn counters(&self) -> EndpointCounters {
        self.counters.snapshot()
    }

    /// The counters, shared: readable after the endpoint moved into its server thread.
    pub fn shared_counters(&self) -> Arc<EndpointCells> {
        self.counters.clone()
    }

    /// The interrupt routes this endpoint wires its vectors into.
    pub fn routes(&self) -> &Arc<IrqRoutes> {
        &self.routes
    }

    fn function(&self) -> FunctionId {
        FunctionId::Vf(self.vf)
    }

    /// Function-level reset of the VF (what vfio-pci does for `VFIO_DEVICE_RESET`).
    fn flr(&mut self) {
        let f = self.function();
        let mut w = [0u8; 2];
        self.model
            .nic()
            .config_read(f, PCIE_DEVICE_CONTROL as u16, &mut w);
        let ctl = u16::from_le_bytes(w) | INITIATE_FLR;
        self.model
            .nic()
            .config_write(f, PCIE_DEVICE_CONTROL as u16, &ctl.to_le_bytes());
        self.config.reset_command();
        self.sync_msix();
        self.poll_agent();
    }

    /// Lets the PF agent answer the mailbox / handle a reset now.
    fn poll_agent(&self) {
        if let Some(agent) = &self.agent {
            agent.lock().unwrap_or_else(|p| p.into_inner()).poll();
        }
    }
}

fn region_size(index: u32) -> u64 {
    match index {
        region::BAR0 => u64::from(VF_BAR0_SIZE),
        region::BAR3 => u64::from(MSIX_BAR_SIZE),
        region::CONFIG => CONFIG_SIZE,
        _ => 0,
    }
}

impl Backend for VfEndpoint {
    fn device_info(&self) -> DeviceInfo {
        DeviceInfo {
            flags: vfio::DEVICE_FLAGS_RESET | vfio::DEVICE_FLAGS_PCI,
            regions: region::COUNT,
            irqs: irq_index::COUNT,
        }
    }

    fn region_info(&self, index: u32) -> RegionInfo {
        RegionInfo::read_write(region_size(index))
    }

    fn irq_info(&self, index: u32) -> IrqInfo {
        // MSI-X only: a VF has no INTx or MSI.
        let count = if index == irq_index::MSIX {
            VF_MSIX_VECTORS as u32
        } else {
            0
        };
        IrqInfo::eventfds(count)
    }

    fn region_read(&mut self, index: u32, offset: u64, data: &mut [u8]) -> Result<(), DeviceError> {
        match index {
            region::CONFIG => self.config_read(offset as usize, data),
            _ => self.bar_read(index as u8, offset, data),
        }
        Ok(())
    }

    fn region_write(&mut self, index: u32, offset: u64, data: &[u8]) -> Result<(), DeviceError> {
        match index {
            region::CONFIG => self.config_write(offset as usize, data),
            _ => self.bar_write(index as u8, offset, data),
        }
        Ok(())
    }

    fn dma_map(
        &mut self,
        window: DmaWindow,
        memory: GuestMapping,
        offset: u64,
    ) -> Result<(), DeviceError> {
        let f = self.function();
        self.model
            .nic()
            .dma_map(
                f,
                window.address,
                window.size,
                Arc::new(GuestRam::new(
                    memory,
                    window,
                    offset,
                    self.client_dma.as_ref(),
                )),
                offset,
            )
            .map_err(|e| match e {
                MapError::Overlap { .. } => DeviceError::Exists,
                _ => DeviceError::InvalidArgument,
            })
    }

    fn dma_unmap(&mut self, window: DmaWindow) {
        let f = self.function();
        let _ = self.model.nic().dma_unmap(f, window.address);
    }

    fn set_irqs(&mut self, index: u32, action: IrqAction) -> Result<(), DeviceError> {
        if index != irq_index::MSIX {
            return Err(DeviceError::InvalidArgument);
        }
        self.msix_action(action);
        Ok(())
    }

    fn reset(&mut self) {
        self.flr();
    }

    /// The client went away: its eventfds are gone and the VF is reset so it stops using its
    /// memory (the server unmaps the windows next); the BAR registers read as at start.
    fn disconnect(&mut self) {
        self.routes.clear_vf(self.vf.get());
        self.flr();
        self.config = config::VirtualConfig::new();
    }
}

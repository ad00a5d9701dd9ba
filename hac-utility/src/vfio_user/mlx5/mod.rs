//! One VF of the mlx5 model (ConnectX VF, 15b3:101e) as a vfio-user device: the [`Backend`]
//! the `hac-vfio-user` server drives for each exported mlx5 VF, so a guest's Linux
//! `mlx5_core` (or any client) drives a VF of [`Mlx5Nic`].
//!
//! The server has already checked every request (ranges, flags, descriptors, DMA windows and
//! their limits); what is left here is what each one does to the model, answered at once
//! (every access is a few device-lock acquisitions; nothing waits for device time). What it
//! presents:
//!
//! * **Regions** (VFIO PCI numbering): 0 = BAR0 (2 MiB: the initialization segment, the MSI-X
//!   table at 0x2000 and PBA at 0x3000, the UAR pages from 0x4000), 7 = config space (the
//!   model's 4 KiB PCI Express space: the VF's PCI Express capability with FLR at 0x60 and
//!   MSI-X at 0x9C), the others absent (size 0).
//! * **BAR0 accesses** of 1, 2, 4 or 8 bytes, naturally aligned, go to the model as they
//!   arrive (the model takes narrow reads: Linux reads the health syndrome with `ioread8`).
//!   QEMU's VFIO region accesses are at most 8 bytes, so a guest's 64-bit doorbell (`writeq`)
//!   arrives as one 8-byte write; the model refuses a doorbell torn into 4-byte halves and
//!   counts it. Any other size or alignment is refused with `EINVAL` and counted
//!   ([`Mlx5EndpointCounters::refused_accesses`]). Client writes to the MSI-X table are ignored
//!   and counted (the table is ours, see below).
//! * **Config space** (`config.rs`): the model's VF space (it already carries the ids and
//!   BAR0 with sizing, as a VMM presents a VF), with what the host's vfio-pci virtualises: the
//!   Command register (VF memory decoding belongs to the PF's VF MSE; Bus Master is passed
//!   on) and the MSI-X Message Control (the host enables MSI-X when vectors are assigned).
//! * **Interrupts** (`irq.rs`): MSI-X index, 12 vectors. QEMU emulates the guest's MSI-X table
//!   and PBA, so the model's own table is ours: a vector with an eventfd is unmasked with data
//!   = vector number, one without is masked, and MSI-X is enabled while any vector is wired.
//!   The model queues its MSI-X messages (`take_interrupts`); after every access and on the
//!   daemon's tick they are handed to [`Mlx5IrqRoutes::deliver`], which writes each vector's
//!   eventfd, never waiting (non-blocking eventfds; a signal one cannot take is counted lost).
//! * **DMA**: a window the server mapped (guest memory) is put into the VF's IOMMU at its
//!   address; windows without a descriptor never reach the endpoint.
//! * **Time**: the model's virtual clock follows wall time ([`DeviceClock`]): it is brought up
//!   to date before every access and on the daemon's tick, so the health counter ticks and a
//!   boot delay ends as on hardware.
//! * **Reset** (`DEVICE_RESET`): FLR through the PCI Express Device Control; the virtualised
//!   registers back to reset, the wired vectors programmed again (vfio-pci restores MSI-X
//!   after a reset). **Disconnect**: the client's eventfds dropped, then an FLR.

mod config;
mod export;
mod irq;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use adapter_core::SimTime;
use hac_driver::mlx5::model::Mlx5Model;
use hac_vfio_user::wire::vfio;
use hac_vfio_user::{
    Backend, DeviceError, DeviceInfo, DmaWindow, DmaWriteQueue, GuestMapping, IrqAction, IrqInfo,
    RegionInfo,
};

use super::guest_ram::GuestRam;
use mlx5_hw::pci::{VF_BAR0, msix};
use mlx5_model::config::{CONFIG_LEN, pcie};
use mlx5_model::{DmaMapError, FunctionId, Mlx5Nic};

pub use export::{Mlx5Exported, Mlx5VfioUserCounters, export_mlx5, spawn_mlx5};
pub use irq::Mlx5IrqRoutes;

/// VFIO PCI region indexes (`VFIO_PCI_*_REGION_INDEX`).
pub mod region {
    /// BAR0: initialization segment, MSI-X, UAR pages.
    pub const BAR0: u32 = 0;
    /// Config space.
    pub const CONFIG: u32 = 7;
    /// Regions announced (BAR0..BAR5, ROM, config, VGA).
    pub const COUNT: u32 = 9;
}

/// VFIO IRQ indexes (`VFIO_PCI_*_IRQ_INDEX`).
pub mod irq_index {
    /// MSI-X.
    pub const MSIX: u32 = 2;
    /// Indexes announced (INTx, MSI, MSI-X, error, request).
    pub const COUNT: u32 = 5;
}

/// MSI-X vectors of a VF.
pub const VECTORS: u16 = msix::VF_TABLE_SIZE;

/// The model's virtual clock tied to wall time: device time = the time it had when the clock
/// was made + wall time since. Brought up to date by [`DeviceClock::sync`]; never moved back
/// (an in-process driver that waited ahead of wall time keeps its lead).
#[derive(Debug)]
pub struct DeviceClock {
    origin: Instant,
    base: SimTime,
}

impl DeviceClock {
    /// A clock starting now at the model's present time.
    pub fn new(nic: &Mlx5Nic) -> Arc<DeviceClock> {
        Arc::new(DeviceClock {
            origin: Instant::now(),
            base: nic.now(),
        })
    }

    /// Advances `nic` to wall time (nothing if it is already there or ahead).
    pub fn sync(&self, nic: &mut Mlx5Nic) {
        let elapsed = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let target = self.base.as_nanos().saturating_add(elapsed);
        if target > nic.now().as_nanos() {
            nic.advance_to(SimTime::from_nanos(target));
        }
    }
}

/// What the endpoint itself has counted (the server counts messages, errors, DMA windows and
/// interrupt settings in `hac_vfio_user::Counters`; the model counts what it refused in its
/// own counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Mlx5EndpointCounters {
    /// BAR accesses of a size other than 1, 2, 4 or 8 bytes or not naturally aligned: refused
    /// (`EINVAL`).
    pub refused_accesses: u64,
    /// Client writes to the MSI-X table (owned by the front end): ignored.
    pub msix_table_writes: u64,
    /// DMA windows the VF's IOMMU refused.
    pub dma_map_refused: u64,
}

/// The endpoint's counters as the endpoint (inside its server thread) and the daemon share
/// them.
#[derive(Debug, Default)]
pub struct Mlx5EndpointCells {
    refused_accesses: AtomicU64,
    msix_table_writes: AtomicU64,
    dma_map_refused: AtomicU64,
}

impl Mlx5EndpointCells {
    /// The counters now.
    pub fn snapshot(&self) -> Mlx5EndpointCounters {
        Mlx5EndpointCounters {
            refused_accesses: self.refused_accesses.load(Ordering::Relaxed),
            msix_table_writes: self.msix_table_writes.load(Ordering::Relaxed),
            dma_map_refused: self.dma_map_refused.load(Ordering::Relaxed),
        }
    }
}

/// One mlx5 VF served to one vfio-user client. See the module documentation.
pub struct Mlx5VfEndpoint {
    model: Mlx5Model,
    vf: u16,
    routes: Arc<Mlx5IrqRoutes>,
    clock: Option<Arc<DeviceClock>>,
    config: config::VirtualConfig,
    counters: Arc<Mlx5EndpointCells>,
    /// Client mode: the queue the device's writes and interrupts go through.
    client_dma: Option<Arc<DmaWriteQueue>>,
}

impl Mlx5VfEndpoint {
    /// The endpoint of VF `vf` (0-based) of `model`; SR-IOV must be enabled on the PF. With a
    /// `clock`, device time follows wall time at every access.
    pub fn new(
        model: Mlx5Model,
        vf: u16,
        routes: Arc<Mlx5IrqRoutes>,
        clock: Option<Arc<DeviceClock>>,
    ) -> Mlx5VfEndpoint {
        Mlx5VfEndpoint {
            model,
            vf,
            routes,
            clock,
            config: config::VirtualConfig::new(),
            counters: Arc::default(),
            client_dma: None,
        }
    }

    /// Client mode: the VF's writes to guest RAM and its interrupts go through `queue`
    /// (`hac_vfio_user::client_dma`); the server must be given the same queue
    /// (`Session::set_client_dma`).
    pub fn with_client_dma(mut self, queue: Arc<DmaWriteQueue>) -> Mlx5VfEndpoint {
        self.routes.route_through(self.vf, queue.clone());
        self.client_dma = Some(queue);
        self
    }

    /// The queue of client mode, if set.
    pub fn client_dma(&self) -> Option<&Arc<DmaWriteQueue>> {
        self.client_dma.as_ref()
    }

    /// The VF (0-based).
    pub fn vf(&self) -> u16 {
        self.vf
    }

    /// Counters so far.
    pub fn counters(&self) -> Mlx5EndpointCounters {
        self.counters.snapshot()
    }

    /// The counters, shared: readable after the endpoint moved into its server thread.
    pub fn shared_counters(&self) -> Arc<Mlx5EndpointCells> {
        self.counters.clone()
    }

    fn function(&self) -> FunctionId {
        FunctionId::Vf(self.vf)
    }

    /// The device, brought up to wall time.
    fn nic(&self) -> MutexGuard<'_, Mlx5Nic> {
        let mut nic = self.model.nic();
        if let Some(c) = &self.clock {
            c.sync(&mut nic);
        }
        nic
    }

    /// Hands the interrupts the model raised to the eventfds.
    fn deliver(&self) {
        let irqs = self.model.nic().take_interrupts();
        self.routes.deliver(irqs);
    }

    /// Function-level reset of the VF (what vfio-pci does for `VFIO_DEVICE_RESET`), then the
    /// host's MSI-X set-up restored.
    fn flr(&mut self) {
        let f = self.function();
        let at = (mlx5_hw::pci::layout::PCIE + pcie::DEVCTL) as u16;
        {
            let mut nic = self.nic();
            let mut w = [0u8; 2];
            nic.config_read(f, at, &mut w);
            let ctl = u16::from_le_bytes(w) | pcie::DEVCTL_INITIATE_FLR;
            nic.config_write(f, at, &ctl.to_le_bytes());
        }
        self.config = config::VirtualConfig::new();
        self.sync_msix();
    }

    fn bar_read(&mut self, offset: u64, data: &mut [u8]) -> Result<(), DeviceError> {
        if !natural(offset, data.len()) {
            self.refuse(offset, data.len(), "read");
            return Err(DeviceError::InvalidArgument);
        }
        let f = self.function();
        self.nic().bar_read(f, 0, offset, data);
        self.deliver();
        Ok(())
    }

    fn bar_write(&mut self, offset: u64, data: &[u8]) -> Result<(), DeviceError> {
        if !natural(offset, data.len()) {
            self.refuse(offset, data.len(), "write");
            return Err(DeviceError::InvalidArgument);
        }
        let table = u64::from(msix::TABLE_OFFSET)
            ..u64::from(msix::TABLE_OFFSET) + u64::from(VECTORS) * irq::ENTRY_SIZE;
        if table.contains(&offset) {
            // QEMU emulates the guest's table; the model's is programmed by the front end.
            self.counters
                .msix_table_writes
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let f = self.function();
        self.nic().bar_write(f, 0, offset, data);
        self.deliver();
        Ok(())
    }

    fn refuse(&self, offset: u64, len: usize, what: &str) {
        let n = self
            .counters
            .refused_accesses
            .fetch_add(1, Ordering::Relaxed);
        if n < 16 {
            eprintln!(
                "hac: vfio-user mlx5 VF {}: BAR0 {what} of {len} bytes at {offset:#x} refused: \
                 only naturally aligned 1, 2, 4 or 8 bytes",
                self.vf
            );
        }
    }
}

/// Whether an access of `len` bytes at `offset` is one the bus carries as one transaction.
fn natural(offset: u64, len: usize) -> bool {
    matches!(len, 1 | 2 | 4 | 8) && offset.is_multiple_of(len as u64)
}

fn region_size(index: u32) -> u64 {
    match index {
        region::BAR0 => VF_BAR0.size,
        region::CONFIG => CONFIG_LEN as u64,
        _ => 0,
    }
}

impl Backend for Mlx5VfEndpoint {
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
            u32::from(VECTORS)
        } else {
            0
        };
        IrqInfo::eventfds(count)
    }

    fn region_read(&mut self, index: u32, offset: u64, data: &mut [u8]) -> Result<(), DeviceError> {
        match index {
            region::CONFIG => {
                self.config_read(offset as usize, data);
                Ok(())
            }
            region::BAR0 => self.bar_read(offset, data),
            _ => Err(DeviceError::InvalidArgument),
        }
    }

    fn region_write(&mut self, index: u32, offset: u64, data: &[u8]) -> Result<(), DeviceError> {
        match index {
            region::CONFIG => {
                self.config_write(offset as usize, data);
                Ok(())
            }
            region::BAR0 => self.bar_write(offset, data),
            _ => Err(DeviceError::InvalidArgument),
        }
    }

    fn dma_map(
        &mut self,
        window: DmaWindow,
        memory: GuestMapping,
        offset: u64,
    ) -> Result<(), DeviceError> {
        let f = self.function();
        let r = self.model.nic().dma_map(
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
        );
        r.map_err(|e| {
            self.counters
                .dma_map_refused
                .fetch_add(1, Ordering::Relaxed);
            match e {
                DmaMapError::Map(adapter_core::MapError::Overlap { .. }) => DeviceError::Exists,
                _ => DeviceError::InvalidArgument,
            }
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
    /// memory (the server unmaps the windows next).
    fn disconnect(&mut self) {
        self.routes.clear_vf(self.vf);
        self.flr();
    }
}

//! A vfio-pci function backed by the mlx5 model: [`ModelFunction`] implements the VFIO seams
//! ([`DeviceAccess`], [`MmioWindow`], [`IommuMapper`], [`HostMemory`]) over one function of a
//! [`Mlx5Model`], so the real VFIO code ([`super::VfioDevice`], [`super::VfioBar`],
//! [`super::VfioDma`]) brings an mlx5 VF of the model up end to end, no hardware needed.
//!
//! What each seam does, and what stands in for the kernel:
//!
//! * config space: the model's (a VF's space as vfio-pci presents it: vendor and device id
//!   filled in), one byte per access; the Command register is emulated as vfio-pci emulates
//!   it for a VF (memory decoding is the PF's VF MSE) and passed on.
//! * BAR0: [`ModelWindow`], each access one model bus access of 4 or 8 bytes after the same
//!   offset checks as a mapped BAR ([`check_bar_access`]): `write64` is one 8-byte access, so a
//!   torn 64-bit doorbell would be refused by the model.
//! * IOMMU: [`ModelIommu`], the function's IOMMU in the model (`dma_map`/`dma_unmap`), with
//!   an x86-like window (the MSI window excluded, 4 KiB pages, 65535 mappings); the memory
//!   is [`ModelMemory`], the model's [`SharedMemory`].
//! * MSI-X: eventfds are recorded, never fired (the mlx5 driver polls its EQs); reset: an FLR
//!   through the model's PCI Express Device Control.
//!
//! The clock is not a seam: tests pass the model's virtual clock ([`Mlx5Model::clock`]).

use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use adapter_core::memory::{DmaTarget, SharedMemory};
use hac_sys::EventFd;
use hac_sys::mmio::check_bar_access;
use igb_hw::Iova;
use igb_hw::pci::{command, header};
use mlx5_hw::pci::layout;
use mlx5_model::FunctionId;
use mlx5_model::config::pcie;

use super::{BarAccessError, DeviceAccess, HostMemory, IommuMapper, MmioWindow};
use crate::mlx5::model::Mlx5Model;

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Config space size (PCI Express).
const CONFIG_LEN: u64 = 4096;

/// One function of an mlx5 model as an opened vfio-pci device. Clones share state.
#[derive(Clone)]
pub struct ModelFunction {
    model: Mlx5Model,
    function: FunctionId,
    iommu: Arc<ModelIommu>,
    command: Arc<Mutex<u16>>,
    msix: Arc<Mutex<usize>>,
}

impl std::fmt::Debug for ModelFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFunction")
            .field("function", &self.function)
            .finish_non_exhaustive()
    }
}

impl ModelFunction {
    /// `function` of `model` (for a VF, SR-IOV must be enabled: [`Mlx5Model::enable_vfs`]).
    pub fn new(model: &Mlx5Model, function: FunctionId) -> ModelFunction {
        ModelFunction {
            model: model.clone(),
            function,
            iommu: Arc::new(ModelIommu {
                model: model.clone(),
                function,
                mappings: Mutex::new(0),
            }),
            command: Arc::new(Mutex::new(command::INTX_DISABLE)),
            msix: Arc::new(Mutex::new(0)),
        }
    }

    /// The model.
    pub fn model(&self) -> &Mlx5Model {
        &self.model
    }

    /// The function.
    pub fn function(&self) -> FunctionId {
        self.function
    }

    /// Mappings currently in the function's IOMMU made through this device.
    pub fn mappings(&self) -> usize {
        *self.iommu.lock_mappings()
    }

    /// MSI-X vectors routed now (0: disabled).
    pub fn msix_enabled_vectors(&self) -> usize {
        *self.msix.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn command(&self) -> std::sync::MutexGuard<'_, u16> {
        self.command.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DeviceAccess for ModelFunction {
    type Window = ModelWindow;
    type Mapper = ModelIommu;

    fn config_len(&self) -> u64 {
        CONFIG_LEN
    }

    fn config_read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > CONFIG_LEN) {
            return Err(errno(libc::EINVAL));
        }
        let cmd = self.command().to_le_bytes();
        let mut nic = self.model.nic();
        for (at, byte) in (offset..).zip(buf.iter_mut()) {
            *byte = match at.checked_sub(header::COMMAND as u64) {
                Some(i @ 0..=1) => cmd[i as usize],
                _ => {
                    let mut b = [0u8; 1];
                    nic.config_read(self.function, at as u16, &mut b);
                    b[0]
                }
            };
        }
        Ok(())
    }

    fn config_write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|e| e > CONFIG_LEN) || !matches!(data.len(), 1 | 2 | 4) {
            return Err(errno(libc::EINVAL));
        }
        if offset == header::COMMAND as u64 && data.len() == 2 {
            // vfio-pci emulates a VF's Command register (memory decoding is the PF's VF MSE).
            *self.command() = u16::from_le_bytes([data[0], data[1]]);
        }
        self.model
            .nic()
            .config_write(self.function, offset as u16, data);
        Ok(())
    }

    fn bar_len(&self, index: usize) -> Option<u64> {
        (index == 0).then_some(self.bar0_len())
    }

    fn map_bar(&self, index: usize) -> io::Result<ModelWindow> {
        if index != 0 {
            return Err(errno(libc::EINVAL));
        }
        Ok(ModelWindow {
            model: self.model.clone(),
            function: self.function,
            len: self.bar0_len() as usize,
        })
    }

    fn iommu(&self) -> Arc<ModelIommu> {
        Arc::clone(&self.iommu)
    }

    fn msix_max(&self) -> usize {
        usize::from(mlx5_hw::pci::msix::VF_TABLE_SIZE)
    }

    fn msix_enable(&self, vectors: &[Arc<EventFd>]) -> io::Result<()> {
        if vectors.len() > self.msix_max() {
            return Err(errno(libc::EINVAL));
        }
        *self.msix.lock().unwrap_or_else(|p| p.into_inner()) = vectors.len();
        Ok(())
    }

    fn msix_disable(&self) -> io::Result<()> {
        *self.msix.lock().unwrap_or_else(|p| p.into_inner()) = 0;
        Ok(())
    }

    fn reset(&self) -> io::Result<()> {
        // Function-level reset: Initiate FLR in the PCI Express Device Control register.
        let at = (layout::PCIE + pcie::DEVCTL) as u16;
        let mut nic = self.model.nic();
        let mut b = [0u8; 2];
        nic.config_read(self.function, at, &mut b);
        let v = u16::from_le_bytes(b) | pcie::DEVCTL_INITIATE_FLR;
        nic.config_write(self.function, at, &v.to_le_bytes());
        *self.command() = 0;
        Ok(())
    }
}

impl ModelFunction {
    fn bar0_len(&self) -> u64 {
        match self.function {
            FunctionId::Pf => mlx5_hw::pci::PF_BAR0.size,
            FunctionId::Vf(_) => mlx5_hw::pci::VF_BAR0.size,
        }
    }
}

/// BAR0 of a model function as a mapped window.
#[derive(Clone)]
pub struct ModelWindow {
    model: Mlx5Model,
    function: FunctionId,
    len: usize,
}

impl MmioWindow for ModelWindow {
    fn len(&self) -> usize {
        self.len
    }

    fn read32(&self, offset: usize) -> Result<u32, BarAccessError> {
        check_bar_access(offset, 4, self.len)?;
        let mut b = [0u8; 4];
        self.model
            .nic()
            .bar_read(self.function, 0, offset as u64, &mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), BarAccessError> {
        check_bar_access(offset, 4, self.len)?;
        self.model
            .nic()
            .bar_write(self.function, 0, offset as u64, &value.to_le_bytes());
        Ok(())
    }

    fn write64(&self, offset: usize, value: u64) -> Result<(), BarAccessError> {
        check_bar_access(offset, 8, self.len)?;
        self.model
            .nic()
            .bar_write(self.function, 0, offset as u64, &value.to_le_bytes());
        Ok(())
    }
}

/// DMA memory the model reads and writes: its [`SharedMemory`].
pub struct ModelMemory {
    mem: Arc<SharedMemory>,
}

impl HostMemory for ModelMemory {
    fn allocate(len: usize, align: usize) -> io::Result<Self> {
        let align = align.max(4096);
        if len == 0 || !align.is_power_of_two() {
            return Err(errno(libc::EINVAL));
        }
        let len = len
            .checked_add(align - 1)
            .map(|l| l & !(align - 1))
            .filter(|&l| l <= 1 << 30)
            .ok_or_else(|| errno(libc::ENOMEM))?;
        Ok(ModelMemory {
            mem: SharedMemory::new(len),
        })
    }

    fn len(&self) -> usize {
        DmaTarget::len(&*self.mem) as usize
    }

    fn huge_pages(&self) -> bool {
        false
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        self.mem.read_checked(offset as u64, buf)
    }

    fn write(&self, offset: usize, data: &[u8]) -> bool {
        self.mem.write_checked(offset as u64, data)
    }
}

/// The IOMMU of one model function.
pub struct ModelIommu {
    model: Mlx5Model,
    function: FunctionId,
    mappings: Mutex<usize>,
}

impl ModelIommu {
    fn lock_mappings(&self) -> std::sync::MutexGuard<'_, usize> {
        self.mappings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl IommuMapper for ModelIommu {
    type Memory = ModelMemory;

    fn alignment(&self) -> u64 {
        4096
    }

    fn valid_iova_ranges(&self) -> Vec<Range<u64>> {
        vec![0..0xfee0_0000, 0xfef0_0000..1 << 39]
    }

    fn max_mappings(&self) -> Option<u32> {
        Some(65535)
    }

    fn map(&self, iova: Iova, memory: &ModelMemory) -> io::Result<()> {
        let len = DmaTarget::len(&*memory.mem);
        self.model
            .nic()
            .dma_map(self.function, iova, len, memory.mem.clone(), 0)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        *self.lock_mappings() += 1;
        Ok(())
    }

    fn unmap(&self, iova: Iova, _len: usize) -> io::Result<()> {
        self.model
            .nic()
            .dma_unmap(self.function, iova)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut m = self.lock_mappings();
        *m = m.saturating_sub(1);
        Ok(())
    }
}

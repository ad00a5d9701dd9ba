//! A recording fake device (feature `test-utils`): a PCI function with plain memory regions
//! and eventfd-backed interrupts that records every call the server makes and checks each
//! against the [`Backend`] contract (a region access inside an announced region, a vector
//! inside its index, a DMA window mapped once and unmapped exactly as mapped, never
//! overlapping another). Tests and the fuzz target assert [`FakeBackend::violations`] stays
//! empty.

use std::collections::BTreeMap;

use crate::backend::{
    Backend, DeviceError, DeviceInfo, DmaWindow, EventFd, GuestMapping, IrqAction, IrqInfo,
    RegionInfo,
};
use crate::wire::vfio;

/// Regions of the fake (VFIO PCI numbering): BAR0 and BAR3 of 16 KiB, config space of 256
/// bytes, the other six absent.
pub const REGIONS: [u64; 9] = [16 << 10, 0, 0, 16 << 10, 0, 0, 0, 256, 0];
/// IRQ indexes of the fake: INTx, MSI without vectors, MSI-X with 3, error, request.
pub const IRQS: [u32; 5] = [0, 0, 3, 0, 0];
/// The MSI-X index.
pub const MSIX: u32 = 2;

/// One call the server made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `region_read(index, offset, len)`.
    RegionRead(u32, u64, usize),
    /// `region_write(index, offset, len)`.
    RegionWrite(u32, u64, usize),
    /// `dma_map(window, offset into the mapping)`.
    DmaMap(DmaWindow, u64),
    /// `dma_unmap(window)`.
    DmaUnmap(DmaWindow),
    /// `set_irqs(index, Assign { start, eventfds.len() })`.
    Assign(u32, u32, usize),
    /// `set_irqs(index, Unassign { start, count })`.
    Unassign(u32, u32, u32),
    /// `set_irqs(index, DisableAll)`.
    DisableAll(u32),
    /// `set_irqs(index, Trigger { vector })`.
    Trigger(u32, u32),
    /// `set_irqs(index, Mask/Unmask { vector })`, with `true` for mask.
    Mask(u32, u32, bool),
    /// `reset()`.
    Reset,
    /// `disconnect()`.
    Disconnect,
}

/// The fake device. See the module documentation.
#[derive(Debug, Default)]
pub struct FakeBackend {
    /// Region contents (a write stores, a read returns what was stored).
    memory: Vec<Vec<u8>>,
    /// Mapped windows: address → (window, mapping).
    mapped: BTreeMap<u64, (DmaWindow, GuestMapping)>,
    /// (index, vector) → eventfd.
    eventfds: BTreeMap<(u32, u32), EventFd>,
    /// Every call, in order.
    pub calls: Vec<Call>,
    /// Calls that broke the contract, described.
    pub violations: Vec<String>,
    /// When set, `dma_map` refuses with it (what a device's IOMMU might answer).
    pub refuse_dma: Option<DeviceError>,
}

impl FakeBackend {
    /// A fresh fake with zeroed regions.
    pub fn new() -> FakeBackend {
        FakeBackend {
            memory: REGIONS.iter().map(|&s| vec![0u8; s as usize]).collect(),
            ..FakeBackend::default()
        }
    }

    /// Windows mapped now.
    pub fn mapped(&self) -> Vec<DmaWindow> {
        self.mapped.values().map(|(w, _)| *w).collect()
    }

    /// Vectors of `index` with an eventfd now.
    pub fn wired(&self, index: u32) -> Vec<u32> {
        self.eventfds
            .keys()
            .filter(|(i, _)| *i == index)
            .map(|&(_, v)| v)
            .collect()
    }

    fn check_region(&mut self, index: u32, offset: u64, len: usize) -> bool {
        let ok = REGIONS
            .get(index as usize)
            .is_some_and(|&size| RegionInfo::read_write(size).contains(offset, len));
        if !ok {
            self.violations
                .push(format!("region {index} accessed at {offset:#x}+{len}"));
        }
        ok
    }

    fn check_vector(&mut self, index: u32, vector: u32) -> bool {
        let ok = IRQS.get(index as usize).is_some_and(|&n| vector < n);
        if !ok {
            self.violations
                .push(format!("IRQ index {index} vector {vector} out of range"));
        }
        ok
    }
}

impl Backend for FakeBackend {
    fn device_info(&self) -> DeviceInfo {
        DeviceInfo {
            flags: vfio::DEVICE_FLAGS_RESET | vfio::DEVICE_FLAGS_PCI,
            regions: REGIONS.len() as u32,
            irqs: IRQS.len() as u32,
        }
    }

    fn region_info(&self, index: u32) -> RegionInfo {
        RegionInfo::read_write(REGIONS.get(index as usize).copied().unwrap_or(0))
    }

    fn irq_info(&self, index: u32) -> IrqInfo {
        IrqInfo::eventfds(IRQS.get(index as usize).copied().unwrap_or(0))
    }

    fn region_read(&mut self, index: u32, offset: u64, data: &mut [u8]) -> Result<(), DeviceError> {
        self.calls.push(Call::RegionRead(index, offset, data.len()));
        if !self.check_region(index, offset, data.len()) {
            return Err(DeviceError::InvalidArgument);
        }
        let at = offset as usize;
        data.copy_from_slice(&self.memory[index as usize][at..at + data.len()]);
        Ok(())
    }

    fn region_write(&mut self, index: u32, offset: u64, data: &[u8]) -> Result<(), DeviceError> {
        self.calls
            .push(Call::RegionWrite(index, offset, data.len()));
        if !self.check_region(index, offset, data.len()) {
            return Err(DeviceError::InvalidArgument);
        }
        let at = offset as usize;
        self.memory[index as usize][at..at + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn dma_map(
        &mut self,
        window: DmaWindow,
        memory: GuestMapping,
        offset: u64,
    ) -> Result<(), DeviceError> {
        self.calls.push(Call::DmaMap(window, offset));
        let end = window.address.0.checked_add(window.size);
        let overlaps = self.mapped.values().any(|(w, _)| {
            end.is_none_or(|e| w.address.0 < e)
                && window.address.0 < w.address.0.saturating_add(w.size)
        });
        if window.size == 0 || end.is_none() || overlaps {
            self.violations.push(format!("dma_map of {window:?}"));
        }
        if offset.saturating_add(window.size) > memory.len() as u64 {
            self.violations.push(format!(
                "{window:?} at {offset:#x} past its {}-byte mapping",
                memory.len()
            ));
        }
        if let Some(e) = self.refuse_dma {
            return Err(e);
        }
        self.mapped.insert(window.address.0, (window, memory));
        Ok(())
    }

    fn dma_unmap(&mut self, window: DmaWindow) {
        self.calls.push(Call::DmaUnmap(window));
        match self.mapped.get(&window.address.0) {
            Some((w, _)) if *w == window => {
                self.mapped.remove(&window.address.0);
            }
            _ => self
                .violations
                .push(format!("dma_unmap of {window:?}, which is not mapped")),
        }
    }

    fn set_irqs(&mut self, index: u32, action: IrqAction) -> Result<(), DeviceError> {
        let vectors = IRQS.get(index as usize).copied().unwrap_or(0);
        if vectors == 0 {
            self.violations
                .push(format!("set_irqs on index {index}, which has no vectors"));
        }
        match action {
            IrqAction::Assign { start, eventfds } => {
                self.calls.push(Call::Assign(index, start, eventfds.len()));
                for (v, e) in (start..).zip(eventfds) {
                    if self.check_vector(index, v) {
                        self.eventfds.insert((index, v), e);
                    }
                }
            }
            IrqAction::Unassign { start, count } => {
                self.calls.push(Call::Unassign(index, start, count));
                if count > 0 {
                    self.check_vector(index, start.saturating_add(count - 1));
                }
                for v in start..start.saturating_add(count) {
                    self.eventfds.remove(&(index, v));
                }
            }
            IrqAction::DisableAll => {
                self.calls.push(Call::DisableAll(index));
                self.eventfds.retain(|(i, _), _| *i != index);
            }
            IrqAction::Trigger { vector } => {
                self.calls.push(Call::Trigger(index, vector));
                self.check_vector(index, vector);
                if let Some(e) = self.eventfds.get(&(index, vector)) {
                    let _ = e.try_signal();
                }
            }
            IrqAction::Mask { vector } | IrqAction::Unmask { vector } => {
                let mask = matches!(action, IrqAction::Mask { .. });
                self.calls.push(Call::Mask(index, vector, mask));
                self.check_vector(index, vector);
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.calls.push(Call::Reset);
    }

    fn disconnect(&mut self) {
        self.calls.push(Call::Disconnect);
        self.eventfds.clear();
    }
}

//! Test twins of the VFIO seams: an in-memory device, BAR, IOMMU and DMA memory (no unsafe code).
//!
//! [`FakeDevice`] implements [`DeviceAccess`] with a config space in a `Vec`, BARs of atomic
//! words, real eventfds for MSI-X (so [`FakeDevice::fire_msix`] wakes a waiting driver) and a
//! [`FakeIommu`] that checks every mapping the way the Type1 IOMMU does (alignment, valid
//! windows, no overlap, exact unmap, mapping limit), logs it, can be told to fail, and lets a
//! test play the device's side of DMA ([`FakeIommu::device_read`] /
//! [`FakeIommu::device_write`]). It lives beside the seams it fakes (`seams.rs`), as the real
//! implementations live beside them in `host.rs`.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hac_sys::EventFd;
use hac_sys::mmio::{check_bar_access, check_bar_offset};
use igb_hw::Iova;
use igb_hw::pci::{self, header};

use super::{BarAccessError, DeviceAccess, HostMemory, IommuMapper, MmioWindow};

/// Locks, recovering from poisoning (fakes hold no invariant a panicking test could break).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// What the fake device looks like.
#[derive(Clone, Debug)]
pub struct FakeDeviceConfig {
    /// Vendor id in config space.
    pub vendor_id: u16,
    /// Device id in config space.
    pub device_id: u16,
    /// Size of config space (4096 for PCIe).
    pub config_len: usize,
    /// Command register at start.
    pub initial_command: u16,
    /// Command bits a write can change (others keep their value).
    pub command_writable: u16,
    /// Size of each BAR (0: absent).
    pub bar_sizes: [u64; 6],
    /// MSI-X vectors.
    pub msix_vectors: usize,
    /// Valid IOVA windows of the fake IOMMU (half-open).
    pub iova_ranges: Vec<Range<u64>>,
    /// Minimum IOMMU page size.
    pub iommu_alignment: u64,
    /// Mapping limit of the fake IOMMU.
    pub max_mappings: Option<u32>,
}

impl FakeDeviceConfig {
    /// An 82576 VF (8086:10CA): BAR0 and BAR3 (MSI-X) of 16 KiB, 3 MSI-X vectors, INTx
    /// Disable set, behind an x86-like IOMMU (39-bit aperture without the MSI window, 4 KiB
    /// pages, 65535 mappings).
    pub fn igbvf_82576() -> FakeDeviceConfig {
        FakeDeviceConfig {
            vendor_id: pci::VENDOR_INTEL,
            device_id: pci::DEVICE_82576_VF,
            config_len: pci::CONFIG_SPACE_SIZE,
            initial_command: pci::command::INTX_DISABLE,
            command_writable: 0xFFFF,
            bar_sizes: [16 << 10, 0, 0, 16 << 10, 0, 0],
            msix_vectors: 3,
            iova_ranges: vec![0..0xfee0_0000, 0xfef0_0000..1 << 39],
            iommu_alignment: 4096,
            max_mappings: Some(65535),
        }
    }
}

impl FakeDeviceConfig {
    /// A ConnectX VF (15B3:101E): one 64-bit BAR0 of 2 MiB (initialization segment, MSI-X
    /// table, UAR pages), 12 MSI-X vectors, behind the same IOMMU as
    /// [`FakeDeviceConfig::igbvf_82576`]. Its BAR is plain memory: for a VF that answers, see
    /// [`super::model_device`].
    pub fn mlx5_vf() -> FakeDeviceConfig {
        FakeDeviceConfig {
            vendor_id: mlx5_hw::pci::VENDOR_MELLANOX,
            device_id: mlx5_hw::pci::DEVICE_CONNECTX_VF,
            bar_sizes: [mlx5_hw::pci::VF_BAR0.size, 0, 0, 0, 0, 0],
            msix_vectors: usize::from(mlx5_hw::pci::msix::VF_TABLE_SIZE),
            ..FakeDeviceConfig::igbvf_82576()
        }
    }
}

impl Default for FakeDeviceConfig {
    fn default() -> Self {
        FakeDeviceConfig::igbvf_82576()
    }
}

/// Something the fake device was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// A config space write (as given, before masking).
    ConfigWrite {
        /// Offset.
        offset: u64,
        /// Bytes.
        data: Vec<u8>,
    },
    /// MSI-X enabled with this many vectors.
    MsixEnabled(usize),
    /// MSI-X disabled.
    MsixDisabled,
    /// Function-level reset.
    Reset,
}

/// An in-memory vfio-pci device. Clones share state.
#[derive(Clone, Debug)]
pub struct FakeDevice {
    inner: Arc<FakeInner>,
}

#[derive(Debug)]
struct FakeInner {
    config: Mutex<Vec<u8>>,
    command_writable: u16,
    bars: Vec<Option<FakeWindow>>,
    iommu: Arc<FakeIommu>,
    msix_max: usize,
    msix: Mutex<Option<Vec<Arc<EventFd>>>>,
    events: Mutex<Vec<DeviceEvent>>,
    resets: AtomicUsize,
}

impl FakeDevice {
    /// A device as described by `config`.
    pub fn new(config: FakeDeviceConfig) -> FakeDevice {
        let mut space = vec![0u8; config.config_len.max(64)];
        space[header::VENDOR_ID..header::VENDOR_ID + 2]
            .copy_from_slice(&config.vendor_id.to_le_bytes());
        space[header::DEVICE_ID..header::DEVICE_ID + 2]
            .copy_from_slice(&config.device_id.to_le_bytes());
        space[header::COMMAND..header::COMMAND + 2]
            .copy_from_slice(&config.initial_command.to_le_bytes());
        space[header::STATUS..header::STATUS + 2]
            .copy_from_slice(&pci::status::CAP_LIST.to_le_bytes());
        space[header::CLASS_CODE..header::CLASS_CODE + 3]
            .copy_from_slice(&pci::CLASS_ETHERNET.to_le_bytes()[..3]);
        let bars = config
            .bar_sizes
            .iter()
            .map(|&size| (size > 0).then(|| FakeWindow::new(size as usize)))
            .collect();
        FakeDevice {
            inner: Arc::new(FakeInner {
                config: Mutex::new(space),
                command_writable: config.command_writable,
                bars,
                iommu: Arc::new(FakeIommu::new(
                    config.iova_ranges,
                    config.iommu_alignment,
                    config.max_mappings,
                )),
                msix_max: config.msix_vectors,
                msix: Mutex::new(None),
                events: Mutex::new(Vec::new()),
                resets: AtomicUsize::new(0),
            }),
        }
    }

    /// An 82576 VF ([`FakeDeviceConfig::igbvf_82576`]).
    pub fn igbvf() -> FakeDevice {
        FakeDevice::new(FakeDeviceConfig::igbvf_82576())
    }

    /// A copy of config space.
    pub fn config_bytes(&self) -> Vec<u8> {
        lock(&self.inner.config).clone()
    }

    /// The Command register.
    pub fn command(&self) -> u16 {
        let c = lock(&self.inner.config);
        u16::from_le_bytes([c[header::COMMAND], c[header::COMMAND + 1]])
    }

    /// The window of BAR `index` (shares memory with every mapping of it), to inspect or play
    /// the device's side of register accesses.
    pub fn bar(&self, index: usize) -> Option<FakeWindow> {
        self.inner.bars.get(index).cloned().flatten()
    }

    /// The fake IOMMU.
    pub fn fake_iommu(&self) -> Arc<FakeIommu> {
        Arc::clone(&self.inner.iommu)
    }

    /// Signals MSI-X vector `vector` as the device would. `Ok(false)` when MSI-X is not enabled
    /// or the vector is not routed.
    pub fn fire_msix(&self, vector: usize) -> io::Result<bool> {
        let routed = lock(&self.inner.msix)
            .as_ref()
            .and_then(|v| v.get(vector).cloned());
        match routed {
            Some(fd) => fd.signal().map(|()| true),
            None => Ok(false),
        }
    }

    /// Vectors currently routed to eventfds (0: MSI-X disabled).
    pub fn msix_enabled_vectors(&self) -> usize {
        lock(&self.inner.msix).as_ref().map_or(0, Vec::len)
    }

    /// Everything the device was asked to do, in order.
    pub fn events(&self) -> Vec<DeviceEvent> {
        lock(&self.inner.events).clone()
    }

    /// Resets so far.
    pub fn resets(&self) -> usize {
        self.inner.resets.load(Ordering::Relaxed)
    }

    fn log(&self, event: DeviceEvent) {
        lock(&self.inner.events).push(event);
    }
}

impl DeviceAccess for FakeDevice {
    type Window = FakeWindow;
    type Mapper = FakeIommu;

    fn config_len(&self) -> u64 {
        lock(&self.inner.config).len() as u64
    }

    fn config_read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let c = lock(&self.inner.config);
        let start = usize::try_from(offset).map_err(|_| errno(libc::EINVAL))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| c.get(start..end))
            .ok_or_else(|| errno(libc::EINVAL))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn config_write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.log(DeviceEvent::ConfigWrite {
            offset,
            data: data.to_vec(),
        });
        let mut c = lock(&self.inner.config);
        let start = usize::try_from(offset).map_err(|_| errno(libc::EINVAL))?;
        let end = start.checked_add(data.len()).filter(|&e| e <= c.len());
        if end.is_none() {
            return Err(errno(libc::EINVAL));
        }
        let mask = self.inner.command_writable.to_le_bytes();
        for (at, &byte) in (start..).zip(data) {
            let writable = match at.checked_sub(header::COMMAND) {
                Some(i @ 0..=1) => mask[i],
                _ => 0xFF,
            };
            c[at] = (c[at] & !writable) | (byte & writable);
        }
        Ok(())
    }

    fn bar_len(&self, index: usize) -> Option<u64> {
        self.bar(index).map(|w| w.len() as u64)
    }

    fn map_bar(&self, index: usize) -> io::Result<FakeWindow> {
        self.bar(index).ok_or_else(|| errno(libc::EINVAL))
    }

    fn iommu(&self) -> Arc<FakeIommu> {
        self.fake_iommu()
    }

    fn msix_max(&self) -> usize {
        self.inner.msix_max
    }

    fn msix_enable(&self, vectors: &[Arc<EventFd>]) -> io::Result<()> {
        if vectors.len() > self.inner.msix_max {
            return Err(errno(libc::EINVAL));
        }
        *lock(&self.inner.msix) = Some(vectors.to_vec());
        self.log(DeviceEvent::MsixEnabled(vectors.len()));
        Ok(())
    }

    fn msix_disable(&self) -> io::Result<()> {
        *lock(&self.inner.msix) = None;
        self.log(DeviceEvent::MsixDisabled);
        Ok(())
    }

    fn reset(&self) -> io::Result<()> {
        // A function-level reset clears the Command register (PCIe 6.6.2).
        let mut c = lock(&self.inner.config);
        c[header::COMMAND] = 0;
        c[header::COMMAND + 1] = 0;
        drop(c);
        self.inner.resets.fetch_add(1, Ordering::Relaxed);
        self.log(DeviceEvent::Reset);
        Ok(())
    }
}

/// A fake BAR: `len / 4` atomic little-endian words. Clones share the words.
#[derive(Clone, Debug)]
pub struct FakeWindow {
    words: Arc<Vec<AtomicU32>>,
    len: usize,
    writes64: Arc<AtomicUsize>,
}

impl FakeWindow {
    /// A zeroed window of `len` bytes (a partial last word is not accessible).
    pub fn new(len: usize) -> FakeWindow {
        FakeWindow {
            words: Arc::new((0..len / 4).map(|_| AtomicU32::new(0)).collect()),
            len,
            writes64: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// 64-bit writes accepted so far (by any clone).
    pub fn writes64(&self) -> usize {
        self.writes64.load(Ordering::Relaxed)
    }

    /// The word at `offset` as the device sees it, if accessible.
    pub fn peek(&self, offset: usize) -> Option<u32> {
        self.read32(offset).ok()
    }

    /// Sets the word at `offset` as the device would; false if not accessible.
    pub fn poke(&self, offset: usize, value: u32) -> bool {
        self.write32(offset, value).is_ok()
    }
}

impl MmioWindow for FakeWindow {
    fn len(&self) -> usize {
        self.len
    }

    fn read32(&self, offset: usize) -> Result<u32, BarAccessError> {
        check_bar_offset(offset, self.len)?;
        self.words
            .get(offset / 4)
            .map(|w| w.load(Ordering::SeqCst))
            .ok_or(BarAccessError::OutOfRange {
                offset,
                len: self.len,
            })
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), BarAccessError> {
        check_bar_offset(offset, self.len)?;
        let word = self
            .words
            .get(offset / 4)
            .ok_or(BarAccessError::OutOfRange {
                offset,
                len: self.len,
            })?;
        word.store(value, Ordering::SeqCst);
        Ok(())
    }

    /// Two word stores under one check (the fake has no other writer to tear them), logged
    /// so tests can tell a 64-bit write from two 32-bit ones.
    fn write64(&self, offset: usize, value: u64) -> Result<(), BarAccessError> {
        check_bar_access(offset, 8, self.len)?;
        let (lo, hi) = (offset / 4, offset / 4 + 1);
        let (Some(l), Some(h)) = (self.words.get(lo), self.words.get(hi)) else {
            return Err(BarAccessError::OutOfRange {
                offset,
                len: self.len,
            });
        };
        l.store(value as u32, Ordering::SeqCst);
        h.store((value >> 32) as u32, Ordering::SeqCst);
        self.writes64.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Fake DMA memory: a shared byte vector. Clones share the bytes.
#[derive(Clone, Debug)]
pub struct FakeMemory {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl FakeMemory {
    /// The largest allocation the fake host grants (1 GiB), to test host allocation failures.
    pub const LIMIT: usize = 1 << 30;
}

impl HostMemory for FakeMemory {
    fn allocate(len: usize, align: usize) -> io::Result<Self> {
        let align = align.max(4096);
        if len == 0 || !align.is_power_of_two() {
            return Err(errno(libc::EINVAL));
        }
        let len = len
            .checked_add(align - 1)
            .map(|l| l & !(align - 1))
            .filter(|&l| l <= FakeMemory::LIMIT)
            .ok_or_else(|| errno(libc::ENOMEM))?;
        Ok(FakeMemory {
            bytes: Arc::new(Mutex::new(vec![0; len])),
        })
    }

    fn len(&self) -> usize {
        lock(&self.bytes).len()
    }

    fn huge_pages(&self) -> bool {
        false
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        let b = lock(&self.bytes);
        match offset
            .checked_add(buf.len())
            .and_then(|end| b.get(offset..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }

    fn write(&self, offset: usize, data: &[u8]) -> bool {
        let mut b = lock(&self.bytes);
        match offset
            .checked_add(data.len())
            .and_then(|end| b.get_mut(offset..end))
        {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }
}

/// A mapping operation seen by the fake IOMMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuEvent {
    /// A successful map.
    Map {
        /// Device address.
        iova: Iova,
        /// Bytes.
        len: u64,
    },
    /// A successful unmap.
    Unmap {
        /// Device address.
        iova: Iova,
        /// Bytes.
        len: u64,
    },
}

/// A device access to an IOVA that is not mapped (an IOMMU fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("IOMMU fault: {len} bytes at {iova} are not mapped")]
pub struct FakeDmaFault {
    /// Device address.
    pub iova: Iova,
    /// Bytes.
    pub len: usize,
}

/// A Type1-like IOMMU in memory. See the module documentation.
#[derive(Debug)]
pub struct FakeIommu {
    alignment: u64,
    ranges: Vec<Range<u64>>,
    max_mappings: Option<u32>,
    state: Mutex<IommuState>,
}

#[derive(Debug, Default)]
struct IommuState {
    mappings: BTreeMap<u64, FakeMemory>,
    events: Vec<IommuEvent>,
    fail_next_map: Option<i32>,
    fail_next_unmap: Option<i32>,
}

impl FakeIommu {
    /// An IOMMU with these windows, page size and mapping limit.
    pub fn new(ranges: Vec<Range<u64>>, alignment: u64, max_mappings: Option<u32>) -> FakeIommu {
        FakeIommu {
            alignment,
            ranges,
            max_mappings,
            state: Mutex::new(IommuState::default()),
        }
    }

    /// Successful maps and unmaps, in order.
    pub fn events(&self) -> Vec<IommuEvent> {
        lock(&self.state).events.clone()
    }

    /// Current mappings (start, length), in address order.
    pub fn mappings(&self) -> Vec<(Iova, u64)> {
        lock(&self.state)
            .mappings
            .iter()
            .map(|(&s, m)| (Iova(s), m.len() as u64))
            .collect()
    }

    /// Makes the next map fail with `errno` (e.g. `libc::ENOMEM`).
    pub fn fail_next_map(&self, errno: i32) {
        lock(&self.state).fail_next_map = Some(errno);
    }

    /// Makes the next unmap fail with `errno`.
    pub fn fail_next_unmap(&self, errno: i32) {
        lock(&self.state).fail_next_unmap = Some(errno);
    }

    fn find(state: &IommuState, iova: Iova, len: usize) -> Option<(FakeMemory, usize)> {
        let (&start, mem) = state.mappings.range(..=iova.0).next_back()?;
        let offset = usize::try_from(iova.0 - start).ok()?;
        (offset.checked_add(len)? <= mem.len()).then(|| (mem.clone(), offset))
    }

    /// Reads as the device would (DMA read through the IOMMU).
    pub fn device_read(&self, iova: Iova, buf: &mut [u8]) -> Result<(), FakeDmaFault> {
        let fault = FakeDmaFault {
            iova,
            len: buf.len(),
        };
        let (mem, offset) = FakeIommu::find(&lock(&self.state), iova, buf.len()).ok_or(fault)?;
        mem.read(offset, buf).then_some(()).ok_or(fault)
    }

    /// Writes as the device would (DMA write through the IOMMU).
    pub fn device_write(&self, iova: Iova, data: &[u8]) -> Result<(), FakeDmaFault> {
        let fault = FakeDmaFault {
            iova,
            len: data.len(),
        };
        let (mem, offset) = FakeIommu::find(&lock(&self.state), iova, data.len()).ok_or(fault)?;
        mem.write(offset, data).then_some(()).ok_or(fault)
    }
}

impl IommuMapper for FakeIommu {
    type Memory = FakeMemory;

    fn alignment(&self) -> u64 {
        self.alignment
    }

    fn valid_iova_ranges(&self) -> Vec<Range<u64>> {
        self.ranges.clone()
    }

    fn max_mappings(&self) -> Option<u32> {
        self.max_mappings
    }

    fn map(&self, iova: Iova, memory: &FakeMemory) -> io::Result<()> {
        let mut s = lock(&self.state);
        if let Some(code) = s.fail_next_map.take() {
            return Err(errno(code));
        }
        let len = memory.len() as u64;
        let end = iova.0.checked_add(len).ok_or_else(|| errno(libc::EINVAL))?;
        let mask = self.alignment - 1;
        let aligned = iova.0 & mask == 0 && len & mask == 0 && len > 0;
        let inside = self
            .ranges
            .iter()
            .any(|r| r.start <= iova.0 && end <= r.end);
        if !aligned || !inside {
            return Err(errno(libc::EINVAL));
        }
        let overlaps = s
            .mappings
            .range(..end)
            .next_back()
            .is_some_and(|(&start, m)| start.saturating_add(m.len() as u64) > iova.0);
        if overlaps {
            return Err(errno(libc::EEXIST));
        }
        if self
            .max_mappings
            .is_some_and(|max| s.mappings.len() >= max as usize)
        {
            return Err(errno(libc::ENOSPC));
        }
        s.mappings.insert(iova.0, memory.clone());
        s.events.push(IommuEvent::Map { iova, len });
        Ok(())
    }

    fn unmap(&self, iova: Iova, len: usize) -> io::Result<()> {
        let mut s = lock(&self.state);
        if let Some(code) = s.fail_next_unmap.take() {
            return Err(errno(code));
        }
        match s.mappings.get(&iova.0) {
            Some(m) if m.len() == len => {
                s.mappings.remove(&iova.0);
                s.events.push(IommuEvent::Unmap {
                    iova,
                    len: len as u64,
                });
                Ok(())
            }
            _ => Err(errno(libc::EINVAL)),
        }
    }
}

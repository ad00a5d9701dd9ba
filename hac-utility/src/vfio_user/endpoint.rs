//! One VF of the model as a vfio-user device: what each client command does to the model.
//!
//! The endpoint answers a parsed message at once (every register access is a few device-lock
//! acquisitions; nothing here waits for device time, because a slow reply makes QEMU drop the
//! connection). What it presents:
//!
//! * **Regions** (VFIO PCI numbering): 0 = BAR0 (16 KiB registers), 3 = BAR3 (16 KiB MSI-X),
//!   7 = config space (256 bytes, so the guest sees a conventional PCI function), the others
//!   absent (size 0).
//! * **Config space**: the model's VF config space, with what the host's PCI core and vfio-pci
//!   virtualise for a VF: Vendor/Device ID 8086:10CA (a VF reads FFFF:FFFF, SR-IOV 3.4.1.1), the
//!   Command register's Memory Space bit (VF memory decoding belongs to the PF's VF MSE), and
//!   BAR0/BAR3 registers (a VF header has none; their flags come from the PF's SR-IOV
//!   capability: 64-bit prefetchable, 16 KiB).
//! * **Interrupts**: MSI-X index with 3 vectors. QEMU emulates the MSI-X table and PBA for the
//!   guest, so the model's own table is ours: a vector with an eventfd is programmed unmasked
//!   with data = vector number, one without is masked. The model's interrupt callback
//!   ([`IrqRoutes::signal`]) writes the vector's eventfd. It runs under the device lock, so it
//!   must never wait on a client: only real eventfds are accepted (anything else, a pipe or a
//!   socket, could block), made non-blocking ([`EventFd::from_foreign`]); a signal the eventfd
//!   cannot take is dropped and counted against that VF ([`IrqRoutes::lost`]).
//! * **DMA**: `DMA_MAP` with a file descriptor maps that window of guest memory
//!   ([`hac_sys::GuestMapping`]: a window inside its file, the file sealed against
//!   shrinking) into the VF's IOMMU at the given address; a window sent without a descriptor
//!   (ROM, MMIO) is acknowledged and left unmapped (device accesses there fault, as with an
//!   IOMMU). At most [`MAX_DMA_MAPS`] windows (both kinds; advertised as `max_dma_maps`) and
//!   [`MAX_DMA_BYTES`] mapped bytes per client.
//! * **PF agent**: after every register access that can concern the mailbox or a VF reset, the
//!   PF agent runs at once (igbvf polls the mailbox for about 2 s before it falls back to a
//!   random MAC; the daemon's 1 ms tick alone would answer too, but the polls are cheaper).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use adapter_core::DmaTarget;
use hac_driver::model::{Model, SharedPfAgent};
use hac_sys::{EventFd, GuestMapping};
use igb_hw::pci::{self, header, layout, msix as msix_cap};
use igb_hw::regs::{MSIX_BAR_SIZE, VF_BAR0_SIZE, VF_MSIX_VECTORS, VfReg};
use igb_hw::{Iova, VfIndex};
use igb_model::{FunctionId, Interrupt, MapError};

use super::wire::{self, Command, Header, Payload, Request, errno};

/// A guest RAM window as DMA memory of the model. The IOMMU checks every device access against
/// the window before it gets here, so the out-of-range answers (zeros read, nothing written)
/// are never given.
struct GuestRam(GuestMapping);

impl DmaTarget for GuestRam {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&self, offset: u64, buf: &mut [u8]) {
        if !self.0.read(offset, buf) {
            buf.fill(0);
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let _ = self.0.write(offset, data);
    }
}

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

/// `VFIO_IRQ_SET_*` flags.
mod irq_set {
    pub const DATA_NONE: u32 = 1 << 0;
    pub const DATA_BOOL: u32 = 1 << 1;
    pub const DATA_EVENTFD: u32 = 1 << 2;
    pub const DATA_MASK: u32 = DATA_NONE | DATA_BOOL | DATA_EVENTFD;
    pub const ACTION_MASK: u32 = 1 << 3;
    pub const ACTION_UNMASK: u32 = 1 << 4;
    pub const ACTION_TRIGGER: u32 = 1 << 5;
    pub const ACTION_ALL: u32 = ACTION_MASK | ACTION_UNMASK | ACTION_TRIGGER;
}

/// `VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI`.
const DEVICE_FLAGS: u32 = 1 | 2;
/// `VFIO_REGION_INFO_FLAG_READ | _WRITE`.
const REGION_RW: u32 = 1 | 2;
/// `VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE`.
const MSIX_INFO_FLAGS: u32 = 1 | 8;
/// `VFIO_DMA_UNMAP_FLAG_ALL` (Linux numbering; QEMU's vfio-user client uses it).
const UNMAP_ALL: u32 = 1 << 1;
/// Config space the client sees.
pub const CONFIG_SIZE: u64 = 256;
/// PCI Express Device Control (capability + 8), Initiate Function Level Reset (bit 15)
/// (PCIe Base 7.5.3.4).
const PCIE_DEVICE_CONTROL: usize = layout::PCIE + 8;
const INITIATE_FLR: u16 = 1 << 15;
/// Command bits the host virtualises for a VF: Memory Space (its decoding is the PF's VF MSE),
/// Bus Master (passed to the model) and INTx Disable (no INTx).
const COMMAND_WRITABLE: u16 =
    pci::command::MEMORY | pci::command::BUS_MASTER | pci::command::INTX_DISABLE;
/// The address programmed into the model's MSI-X entries (the x86 MSI window; only the data,
/// the vector number, matters to us).
const MSIX_ADDRESS: u32 = 0xFEE0_0000;
/// Page size for mapping guest memory windows.
const PAGE: u64 = 4096;
/// Most DMA windows one client may have at once, with or without a descriptor (advertised as
/// `max_dma_maps`). Each window with a descriptor is one mapping in the daemon (the kernel
/// allows about 65 000 per process, shared by every VF).
pub const MAX_DMA_MAPS: usize = 1024;
/// Most bytes one client may have mapped at once (the daemon's address space is shared by every
/// VF: 7 × 1 TiB fits in the 128 TiB of x86-64 user space).
pub const MAX_DMA_BYTES: u64 = 1 << 40;
/// Refusals explained on stderr per connection; later ones are only counted.
const MAX_NOTES: u32 = 16;

/// Which eventfd each VF vector signals; shared by the endpoints and the model's interrupt
/// callback.
#[derive(Default)]
pub struct IrqRoutes {
    routes: Mutex<RouteTable>,
    signalled: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct RouteTable {
    /// (VF, vector) → its eventfd (non-blocking).
    fds: BTreeMap<(usize, u16), EventFd>,
    /// Per VF: signals its eventfds did not take.
    lost: BTreeMap<usize, u64>,
}

impl IrqRoutes {
    /// No routes.
    pub fn new() -> Arc<IrqRoutes> {
        Arc::new(IrqRoutes::default())
    }

    /// Installs the model's interrupt callback that signals these routes.
    pub fn install(self: &Arc<Self>, model: &Model) {
        let routes = self.clone();
        model.nic().set_interrupt_handler(Box::new(move |irq| {
            routes.signal(&irq);
        }));
    }

    fn table(&self) -> std::sync::MutexGuard<'_, RouteTable> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, vf: usize, vector: u16, fd: Option<EventFd>) {
        let mut r = self.table();
        match fd {
            Some(f) => {
                r.fds.insert((vf, vector), f);
            }
            None => {
                r.fds.remove(&(vf, vector));
            }
        }
    }

    fn has(&self, vf: usize, vector: u16) -> bool {
        self.table().fds.contains_key(&(vf, vector))
    }

    /// Writes the eventfd of the interrupt's VF vector; `false` if it has none (a PF
    /// interrupt, or a vector the client did not wire) or did not take the signal (counted in
    /// [`IrqRoutes::lost`]). Never waits: the eventfds are non-blocking.
    pub fn signal(&self, irq: &Interrupt) -> bool {
        let FunctionId::Vf(vf) = irq.function else {
            return false;
        };
        let mut r = self.table();
        let Some(f) = r.fds.get(&(vf.get(), irq.vector)) else {
            return false;
        };
        // Ok(false): the counter is at its maximum, the client has not read it for 2^64 - 2
        // signals; an error: the descriptor is unusable. Either way only this VF's client
        // loses the interrupt.
        let ok = matches!(f.try_signal(), Ok(true));
        if ok {
            self.signalled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            *r.lost.entry(vf.get()).or_default() += 1;
        }
        ok
    }

    /// Interrupts delivered through eventfds so far.
    pub fn signalled(&self) -> u64 {
        self.signalled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Interrupts of VF `vf` (0-based) that its client's eventfd did not take.
    pub fn lost(&self, vf: usize) -> u64 {
        self.table().lost.get(&vf).copied().unwrap_or(0)
    }
}

/// What the endpoint has seen (for `hac stats`-like reports and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndpointCounters {
    /// Messages handled.
    pub messages: u64,
    /// Messages answered with an error.
    pub errors: u64,
    /// Region reads / writes.
    pub region_reads: u64,
    /// Region writes.
    pub region_writes: u64,
    /// Accesses refused for size or alignment (the model takes 4/8-byte aligned accesses).
    pub misaligned: u64,
    /// DMA windows mapped with a file descriptor.
    pub dma_maps: u64,
    /// DMA windows announced without one (left unmapped).
    pub dma_maps_without_fd: u64,
    /// DMA windows refused: past the end of their file, a file that can shrink, not a memory
    /// file, or over [`MAX_DMA_MAPS`] / [`MAX_DMA_BYTES`].
    pub dma_maps_refused: u64,
    /// DMA windows removed.
    pub dma_unmaps: u64,
    /// SET_IRQS handled.
    pub irq_sets: u64,
    /// SET_IRQS refused because a descriptor was not an eventfd.
    pub irq_fds_refused: u64,
    /// Device resets.
    pub resets: u64,
}

/// One VF served to one vfio-user client. See the module documentation.
pub struct VfEndpoint {
    model: Model,
    vf: VfIndex,
    agent: Option<SharedPfAgent>,
    routes: Arc<IrqRoutes>,
    /// DMA windows in the VF's IOMMU: address → size.
    mapped: BTreeMap<u64, u64>,
    /// Windows announced without a descriptor: address → size.
    unbacked: BTreeMap<u64, u64>,
    /// Sum of the sizes in `mapped`.
    mapped_bytes: u64,
    /// Refusals explained on stderr since the client connected.
    notes: u32,
    command: u16,
    /// BAR registers as the host sees them (index 0..6).
    bars: [u32; 6],
    counters: EndpointCounters,
}

impl VfEndpoint {
    /// The endpoint of VF `vf` of `model`; `agent` is polled after mailbox-related accesses.
    pub fn new(
        model: Model,
        vf: VfIndex,
        agent: Option<SharedPfAgent>,
        routes: Arc<IrqRoutes>,
    ) -> VfEndpoint {
        let mut bars = [0u32; 6];
        for b in pci::VF_BARS {
            bars[usize::from(b.index)] = b.flags();
        }
        VfEndpoint {
            model,
            vf,
            agent,
            routes,
            mapped: BTreeMap::new(),
            unbacked: BTreeMap::new(),
            mapped_bytes: 0,
            notes: 0,
            command: 0,
            bars,
            counters: EndpointCounters::default(),
        }
    }

    /// The VF.
    pub fn vf(&self) -> VfIndex {
        self.vf
    }

    /// Counters so far.
    pub fn counters(&self) -> EndpointCounters {
        self.counters
    }

    /// DMA windows now: how many (with or without a descriptor) and the bytes mapped.
    pub fn dma_windows(&self) -> (usize, u64) {
        (self.mapped.len() + self.unbacked.len(), self.mapped_bytes)
    }

    fn function(&self) -> FunctionId {
        FunctionId::Vf(self.vf)
    }

    /// Says on stderr, in one line, why a client's request was refused (a vfio-user error
    /// reply carries only an errno); after [`MAX_NOTES`] per connection refusals are only
    /// counted.
    fn note(&mut self, why: std::fmt::Arguments<'_>) {
        self.notes += 1;
        if self.notes <= MAX_NOTES {
            let more = if self.notes == MAX_NOTES {
                " (further refusals on this connection are only counted)"
            } else {
                ""
            };
            eprintln!("hac serve: vfio-user VF {}: {why}{more}", self.vf.get());
        }
    }

    /// Handles one whole message (`message.len()` equals its size field) with the descriptors
    /// that came with it; returns the reply to send, if any. Never panics on any input.
    pub fn handle(&mut self, message: &[u8], fds: Vec<OwnedFd>) -> Option<Vec<u8>> {
        self.counters.messages += 1;
        let header = match Header::parse(message) {
            Ok(h) => h,
            Err(_) => {
                self.counters.errors += 1;
                let mut h = Header {
                    id: 0,
                    command: Command::Unknown(0),
                    size: 16,
                    flags: 0,
                    error: 0,
                };
                if message.len() >= wire::HEADER_LEN {
                    h.id = u16::from_le_bytes([message[0], message[1]]);
                    h.command = Command::from_raw(u16::from_le_bytes([message[2], message[3]]));
                }
                return Some(wire::error_reply(&h, errno::EINVAL));
            }
        };
        let result = match Request::parse(&header, message) {
            Ok(request) => self.dispatch(&header, request, fds),
            Err(_) => Err(errno::EINVAL),
        };
        if result.is_err() {
            self.counters.errors += 1;
        }
        if header.no_reply() {
            // The client asked for silence (posted writes); an error is only counted.
            return None;
        }
        Some(match result {
            Ok(payload) => wire::reply(&header, &payload),
            Err(e) => wire::error_reply(&header, e),
        })
    }

    fn dispatch(
        &mut self,
        header: &Header,
        request: Request<'_>,
        fds: Vec<OwnedFd>,
    ) -> Result<Vec<u8>, u32> {
        match request {
            Request::Version { major, .. } => {
                if major != 0 {
                    return Err(errno::ENOTSUP);
                }
                let caps = format!(
                    "{{\"capabilities\":{{\"max_msg_fds\":{},\"max_data_xfer_size\":{},\"pgsizes\":{PAGE},\"max_dma_maps\":{MAX_DMA_MAPS}}}}}",
                    wire::MAX_FDS,
                    wire::MAX_DATA_XFER
                );
                Ok(Payload::default()
                    .u16(major)
                    // Minor 0: the commands we serve are all in 0.0.
                    .u16(0)
                    .bytes(caps.as_bytes())
                    .bytes(&[0])
                    .0)
            }
            Request::DeviceGetInfo { .. } => Ok(Payload::default()
                .u32(16)
                .u32(DEVICE_FLAGS)
                .u32(region::COUNT)
                .u32(irq_index::COUNT)
                .0),
            Request::DeviceGetRegionInfo { index, .. } => {
                if index >= region::COUNT {
                    return Err(errno::EINVAL);
                }
                let size = region_size(index);
                let flags = if size > 0 { REGION_RW } else { 0 };
                Ok(Payload::default()
                    .u32(32)
                    .u32(flags)
                    .u32(index)
                    .u32(0)
                    .u64(size)
                    .u64(0)
                    .0)
            }
            Request::DeviceGetIrqInfo { index, .. } => {
                if index >= irq_index::COUNT {
                    return Err(errno::EINVAL);
                }
                let (flags, count) = if index == irq_index::MSIX {
                    (MSIX_INFO_FLAGS, VF_MSIX_VECTORS as u32)
                } else {
                    (1, 0)
                };
                Ok(Payload::default()
                    .u32(16)
                    .u32(flags)
                    .u32(index)
                    .u32(count)
                    .0)
            }
            Request::RegionRead {
                offset,
                region,
                count,
            } => {
                self.counters.region_reads += 1;
                let mut data = vec![0u8; count as usize];
                self.region_read(region, offset, &mut data)?;
                Ok(Payload::default()
                    .u64(offset)
                    .u32(region)
                    .u32(count)
                    .bytes(&data)
                    .0)
            }
            Request::RegionWrite {
                offset,
                region,
                data,
            } => {
                self.counters.region_writes += 1;
                self.region_write(region, offset, data)?;
                Ok(Payload::default()
                    .u64(offset)
                    .u32(region)
                    .u32(data.len() as u32)
                    .0)
            }
            Request::DmaMap {
                offset,
                address,
                size,
                ..
            } => {
                self.dma_map(offset, address, size, fds)?;
                Ok(Vec::new())
            }
            Request::DmaUnmap {
                argsz,
                flags,
                address,
                size,
            } => {
                self.dma_unmap(flags, address, size)?;
                Ok(Payload::default()
                    .u32(argsz)
                    .u32(flags)
                    .u64(address)
                    .u64(size)
                    .0)
            }
            Request::DeviceSetIrqs {
                flags,
                index,
                start,
                count,
                data,
            } => {
                self.counters.irq_sets += 1;
                self.set_irqs(flags, index, start, count, data, fds)?;
                Ok(Vec::new())
            }
            Request::DeviceReset => {
                self.counters.resets += 1;
                self.reset();
                Ok(Vec::new())
            }
            Request::Unsupported(_) => {
                let _ = header;
                Err(errno::ENOTSUP)
            }
        }
    }

    // ----- regions -----------------------------------------------------------------------

    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> Result<(), u32> {
        check_range(region, offset, data.len())?;
        match region {
            region::CONFIG => {
                for (i, b) in data.iter_mut().enumerate() {
                    let at = offset as usize + i;
                    let dword = self.config_dword(at & !3);
                    *b = dword.to_le_bytes()[at & 3];
                }
                Ok(())
            }
            _ => {
                let bar = region as u8;
                if offset.is_multiple_of(4) && data.len().is_multiple_of(4) {
                    let f = self.function();
                    for (i, chunk) in data.chunks_mut(4).enumerate() {
                        self.model
                            .nic()
                            .bar_read(f, bar, offset + 4 * i as u64, chunk);
                    }
                } else {
                    // Narrow reads: the enclosing registers, then the bytes asked for.
                    self.counters.misaligned += 1;
                    let f = self.function();
                    for (i, b) in data.iter_mut().enumerate() {
                        let at = offset + i as u64;
                        let mut w = [0u8; 4];
                        self.model.nic().bar_read(f, bar, at & !3, &mut w);
                        *b = w[(at & 3) as usize];
                    }
                }
                if region == region::BAR0
                    && covers(offset, data.len(), VfReg::VFMAILBOX.offset().0.into())
                {
                    self.poll_agent();
                }
                Ok(())
            }
        }
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> Result<(), u32> {
        check_range(region, offset, data.len())?;
        match region {
            region::CONFIG => {
                self.config_write(offset as usize, data);
                Ok(())
            }
            region::BAR3 if offset < (VF_MSIX_VECTORS * msix_cap::ENTRY_SIZE) as u64 => {
                // The table is ours (QEMU emulates the guest's); a client write is ignored.
                Ok(())
            }
            _ => {
                if !offset.is_multiple_of(4) || !data.len().is_multiple_of(4) {
                    // A narrow write cannot be merged into a register without side effects
                    // (read-to-clear registers); the model would refuse it too.
                    self.counters.misaligned += 1;
                    return Ok(());
                }
                let f = self.function();
                for (i, chunk) in data.chunks(4).enumerate() {
                    self.model
                        .nic()
                        .bar_write(f, region as u8, offset + 4 * i as u64, chunk);
                }
                if region == region::BAR0 {
                    self.poll_agent();
                    if covers(offset, data.len(), u64::from(VfReg::CTRL.offset().0)) {
                        // A VF reset may have reset the vectors' masks.
                        self.sync_msix();
                    }
                }
                Ok(())
            }
        }
    }

    fn config_dword(&mut self, at: usize) -> u32 {
        let f = self.function();
        match at {
            header::VENDOR_ID => {
                u32::from(pci::VENDOR_INTEL) | (u32::from(pci::DEVICE_82576_VF) << 16)
            }
            header::COMMAND => {
                let mut w = [0u8; 4];
                self.model.nic().config_read(f, at as u16, &mut w);
                let status = u32::from_le_bytes(w) & 0xFFFF_0000;
                status | u32::from(self.command)
            }
            0x10..=0x27 => self.bars[(at - header::BAR0) / 4],
            _ => {
                let mut w = [0u8; 4];
                self.model.nic().config_read(f, at as u16, &mut w);
                u32::from_le_bytes(w)
            }
        }
    }

    fn config_write(&mut self, offset: usize, data: &[u8]) {
        let f = self.function();
        let mut i = 0;
        while i < data.len() {
            let at = offset + i;
            // Naturally aligned pieces of 4, 2 or 1 bytes (what the model accepts).
            let n = if at.is_multiple_of(4) && data.len() - i >= 4 {
                4
            } else if at.is_multiple_of(2) && data.len() - i >= 2 {
                2
            } else {
                1
            };
            let piece = &data[i..i + n];
            match at {
                0..=3 => {}
                4..=5 => {
                    // Command (low bytes only; status follows at 6).
                    let mut cmd = self.command.to_le_bytes();
                    for (k, b) in piece.iter().take(6 - at).enumerate() {
                        cmd[at - 4 + k] = *b;
                    }
                    self.command = u16::from_le_bytes(cmd) & COMMAND_WRITABLE;
                    let to_model = (self.command & pci::command::BUS_MASTER).to_le_bytes();
                    self.model
                        .nic()
                        .config_write(f, header::COMMAND as u16, &to_model);
                    if n == 4 {
                        // The status half (write-1-to-clear bits).
                        self.model.nic().config_write(f, 6, &piece[2..4]);
                    }
                }
                0x10..=0x27 => {
                    for (k, b) in piece.iter().enumerate() {
                        let byte = at + k - header::BAR0;
                        let idx = byte / 4;
                        let mut v = self.bars[idx].to_le_bytes();
                        v[byte % 4] = *b;
                        self.bars[idx] = bar_value(idx, u32::from_le_bytes(v));
                    }
                }
                _ => self.model.nic().config_write(f, at as u16, piece),
            }
            i += n;
        }
        // MSI-X enable/function mask or an FLR may have changed the table's state.
        self.sync_msix();
        self.poll_agent();
    }

    // ----- DMA ---------------------------------------------------------------------------

    fn dma_map(
        &mut self,
        offset: u64,
        address: u64,
        size: u64,
        mut fds: Vec<OwnedFd>,
    ) -> Result<(), u32> {
        if size == 0 || address.checked_add(size).is_none() || fds.len() > 1 {
            return Err(errno::EINVAL);
        }
        if self.overlaps(address, size) {
            return Err(errno::EEXIST);
        }
        if self.mapped.len() + self.unbacked.len() >= MAX_DMA_MAPS {
            self.counters.dma_maps_refused += 1;
            self.note(format_args!(
                "DMA_MAP at {address:#x} refused: {MAX_DMA_MAPS} windows already (max_dma_maps)"
            ));
            return Err(errno::ENOSPC);
        }
        let Some(fd) = fds.pop() else {
            self.counters.dma_maps_without_fd += 1;
            self.unbacked.insert(address, size);
            return Ok(());
        };
        if self.mapped_bytes.saturating_add(size) > MAX_DMA_BYTES {
            self.counters.dma_maps_refused += 1;
            self.note(format_args!(
                "DMA_MAP at {address:#x} refused: {size:#x} more bytes would exceed the {MAX_DMA_BYTES:#x} bytes a client may map"
            ));
            return Err(errno::ENOSPC);
        }
        let aligned = offset & !(PAGE - 1);
        let delta = offset - aligned;
        let len = size.checked_add(delta).ok_or(errno::EINVAL)?;
        let mapping = match GuestMapping::map(fd.as_fd(), aligned, len) {
            Ok(m) => m,
            Err(e) => {
                self.counters.dma_maps_refused += 1;
                self.note(format_args!("DMA_MAP at {address:#x} refused: {e}"));
                return Err(match e.kind() {
                    std::io::ErrorKind::InvalidInput => errno::EINVAL,
                    std::io::ErrorKind::PermissionDenied => errno::EPERM,
                    _ => errno::EFAULT,
                });
            }
        };
        let f = self.function();
        self.model
            .nic()
            .dma_map(f, Iova(address), size, Arc::new(GuestRam(mapping)), delta)
            .map_err(|e| match e {
                MapError::Overlap { .. } => errno::EEXIST,
                _ => errno::EINVAL,
            })?;
        self.mapped.insert(address, size);
        self.mapped_bytes += size;
        self.counters.dma_maps += 1;
        Ok(())
    }

    /// Whether `address..address+size` meets a window (O(log n): windows never overlap, so
    /// only the last one starting below the end can).
    fn overlaps(&self, address: u64, size: u64) -> bool {
        let end = address.saturating_add(size);
        [&self.mapped, &self.unbacked].into_iter().any(|windows| {
            windows
                .range(..end)
                .next_back()
                .is_some_and(|(&a, &s)| address < a.saturating_add(s))
        })
    }

    fn dma_unmap(&mut self, flags: u32, address: u64, size: u64) -> Result<(), u32> {
        if flags & UNMAP_ALL != 0 {
            self.unmap_all();
            return Ok(());
        }
        if self.mapped.get(&address) == Some(&size) {
            self.mapped.remove(&address);
            self.mapped_bytes -= size;
            let f = self.function();
            let _ = self.model.nic().dma_unmap(f, Iova(address));
            self.counters.dma_unmaps += 1;
            Ok(())
        } else if self.unbacked.get(&address) == Some(&size) {
            self.unbacked.remove(&address);
            self.counters.dma_unmaps += 1;
            Ok(())
        } else {
            Err(errno::EINVAL)
        }
    }

    fn unmap_all(&mut self) {
        let f = self.function();
        let mut nic = self.model.nic();
        for &a in self.mapped.keys() {
            let _ = nic.dma_unmap(f, Iova(a));
        }
        drop(nic);
        self.counters.dma_unmaps += (self.mapped.len() + self.unbacked.len()) as u64;
        self.mapped.clear();
        self.unbacked.clear();
        self.mapped_bytes = 0;
    }

    // ----- interrupts --------------------------------------------------------------------

    fn set_irqs(
        &mut self,
        flags: u32,
        index: u32,
        start: u32,
        count: u32,
        data: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<(), u32> {
        let data_kind = flags & irq_set::DATA_MASK;
        let action = flags & irq_set::ACTION_ALL;
        if data_kind.count_ones() != 1 || action.count_ones() != 1 || index >= irq_index::COUNT {
            return Err(errno::EINVAL);
        }
        if index != irq_index::MSIX {
            // INTx/MSI/error/request have no vectors: only "disable all" is meaningful.
            return if count == 0 && fds.is_empty() {
                Ok(())
            } else {
                Err(errno::EINVAL)
            };
        }
        let vf = self.vf.get();
        if count == 0 && data_kind == irq_set::DATA_NONE && action == irq_set::ACTION_TRIGGER {
            for v in 0..VF_MSIX_VECTORS as u16 {
                self.routes.set(vf, v, None);
            }
            self.sync_msix();
            return Ok(());
        }
        let end = start.checked_add(count).ok_or(errno::EINVAL)?;
        if end as usize > VF_MSIX_VECTORS {
            return Err(errno::EINVAL);
        }
        match (data_kind, action) {
            (irq_set::DATA_EVENTFD, irq_set::ACTION_TRIGGER) => {
                if fds.is_empty() {
                    for v in start..end {
                        self.routes.set(vf, v as u16, None);
                    }
                } else if fds.len() == count as usize {
                    // All or nothing: every descriptor must be an eventfd (made non-blocking),
                    // or the model's interrupt path could wait on this client.
                    let mut eventfds = Vec::with_capacity(fds.len());
                    for fd in fds {
                        match EventFd::from_foreign(fd) {
                            Ok(e) => eventfds.push(e),
                            Err(e) => {
                                self.counters.irq_fds_refused += 1;
                                self.note(format_args!("SET_IRQS refused: {e}"));
                                return Err(errno::EINVAL);
                            }
                        }
                    }
                    for (v, fd) in (start..end).zip(eventfds) {
                        self.routes.set(vf, v as u16, Some(fd));
                    }
                } else {
                    return Err(errno::EINVAL);
                }
                self.sync_msix();
                Ok(())
            }
            (irq_set::DATA_NONE | irq_set::DATA_BOOL, irq_set::ACTION_TRIGGER) => {
                if data_kind == irq_set::DATA_BOOL && data.len() < count as usize {
                    return Err(errno::EINVAL);
                }
                for v in start..end {
                    let wanted = data_kind == irq_set::DATA_NONE
                        || data.get((v - start) as usize).is_some_and(|&b| b != 0);
                    if wanted {
                        self.routes.signal(&Interrupt {
                            function: self.function(),
                            vector: v as u16,
                            address: 0,
                            data: v,
                        });
                    }
                }
                Ok(())
            }
            // MSI-X masking is done by the client's own table emulation; accepted, no effect.
            (irq_set::DATA_NONE | irq_set::DATA_BOOL, _) => Ok(()),
            _ => Err(errno::EINVAL),
        }
    }

    /// Programs the model's MSI-X entries: vectors with an eventfd unmasked (data = vector),
    /// the others masked.
    fn sync_msix(&mut self) {
        let f = self.function();
        let vf = self.vf.get();
        for v in 0..VF_MSIX_VECTORS {
            let base = (v * msix_cap::ENTRY_SIZE) as u64;
            let wired = self.routes.has(vf, v as u16);
            let mut nic = self.model.nic();
            let mut ctrl = [0u8; 4];
            nic.bar_read(f, msix_cap::BAR, base + 12, &mut ctrl);
            let masked = u32::from_le_bytes(ctrl) & msix_cap::VECTOR_MASKED != 0;
            if wired && masked {
                nic.bar_write(f, msix_cap::BAR, base, &MSIX_ADDRESS.to_le_bytes());
                nic.bar_write(f, msix_cap::BAR, base + 4, &0u32.to_le_bytes());
                nic.bar_write(f, msix_cap::BAR, base + 8, &(v as u32).to_le_bytes());
                nic.bar_write(f, msix_cap::BAR, base + 12, &0u32.to_le_bytes());
            } else if !wired && !masked {
                nic.bar_write(
                    f,
                    msix_cap::BAR,
                    base + 12,
                    &msix_cap::VECTOR_MASKED.to_le_bytes(),
                );
            }
        }
    }

    // ----- reset, agent, disconnect -------------------------------------------------------

    /// Function-level reset of the VF (what vfio-pci does for `VFIO_DEVICE_RESET`).
    fn reset(&mut self) {
        let f = self.function();
        let mut w = [0u8; 2];
        self.model
            .nic()
            .config_read(f, PCIE_DEVICE_CONTROL as u16, &mut w);
        let ctl = u16::from_le_bytes(w) | INITIATE_FLR;
        self.model
            .nic()
            .config_write(f, PCIE_DEVICE_CONTROL as u16, &ctl.to_le_bytes());
        self.command = 0;
        self.sync_msix();
        self.poll_agent();
    }

    /// Lets the PF agent answer the mailbox / handle a reset now.
    fn poll_agent(&self) {
        if let Some(agent) = &self.agent {
            agent.lock().unwrap_or_else(|p| p.into_inner()).poll();
        }
    }

    /// The client went away: its memory and eventfds are gone; the VF is reset so it stops
    /// using them.
    pub fn disconnect(&mut self) {
        self.notes = 0;
        let vf = self.vf.get();
        for v in 0..VF_MSIX_VECTORS as u16 {
            self.routes.set(vf, v, None);
        }
        self.reset();
        self.unmap_all();
        let mut bars = [0u32; 6];
        for b in pci::VF_BARS {
            bars[usize::from(b.index)] = b.flags();
        }
        self.bars = bars;
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

fn check_range(region: u32, offset: u64, len: usize) -> Result<(), u32> {
    let size = if region < region::COUNT {
        region_size(region)
    } else {
        0
    };
    match offset.checked_add(len as u64) {
        Some(end) if size > 0 && end <= size => Ok(()),
        _ => Err(errno::EINVAL),
    }
}

/// Whether `offset..offset+len` includes the register at `reg`.
fn covers(offset: u64, len: usize, reg: u64) -> bool {
    offset <= reg && reg < offset + len as u64
}

/// A BAR register after a write of `value`: size bits read 0 (sizing), flags fixed; an
/// absent BAR reads 0.
fn bar_value(idx: usize, value: u32) -> u32 {
    for b in pci::VF_BARS {
        let i = usize::from(b.index);
        if idx == i {
            return (value & !(b.size - 1) & !0xF) | b.flags();
        }
        if b.is_64bit && idx == i + 1 {
            return value;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use hac_driver::pf::PfConfig;
    use igb_model::NicConfig;

    fn endpoint() -> (Model, VfEndpoint) {
        let model = Model::new(NicConfig::default());
        let agent = model
            .start_pf_agent(
                PfConfig {
                    num_vfs: 2,
                    ..PfConfig::default()
                },
                &[None, None],
            )
            .unwrap();
        let routes = IrqRoutes::new();
        routes.install(&model);
        let ep = VfEndpoint::new(model.clone(), VfIndex::new(0).unwrap(), Some(agent), routes);
        (model, ep)
    }

    fn msg(id: u16, command: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; 16];
        m.extend_from_slice(body);
        Header {
            id,
            command: Command::from_raw(command),
            size: m.len() as u32,
            flags: 0,
            error: 0,
        }
        .emit(&mut m);
        m
    }

    fn read(ep: &mut VfEndpoint, region: u32, offset: u64, count: u32) -> Vec<u8> {
        let body = Payload::default().u64(offset).u32(region).u32(count).0;
        let r = ep.handle(&msg(7, 9, &body), Vec::new()).unwrap();
        let h = Header::parse(&r).unwrap();
        assert_eq!(h.flags & wire::flags::ERROR, 0, "read failed: {h:?}");
        r[32..].to_vec()
    }

    #[test]
    fn config_space_shows_the_vf_ids_and_bars() {
        let (_m, mut ep) = endpoint();
        let c = read(&mut ep, region::CONFIG, 0, 256);
        assert_eq!(&c[0..4], &[0x86, 0x80, 0xCA, 0x10]);
        assert_eq!(c[header::BAR0], 0x0C, "BAR0: 64-bit prefetchable");
        assert_eq!(c[header::BAR0 + 12], 0x0C, "BAR3 at 0x1C");
        assert_eq!(c[header::CAPABILITIES], layout::MSIX as u8);
        // BAR sizing: all ones reads back the size mask.
        let w = Payload::default()
            .u64(0x10)
            .u32(region::CONFIG)
            .u32(4)
            .u32(u32::MAX)
            .0;
        let r = ep.handle(&msg(8, 10, &w), Vec::new()).unwrap();
        assert_eq!(Header::parse(&r).unwrap().flags, wire::flags::TYPE_REPLY);
        let b = read(&mut ep, region::CONFIG, 0x10, 4);
        assert_eq!(
            u32::from_le_bytes(b.try_into().unwrap()),
            !(16 * 1024 - 1) | 0xC
        );
    }

    #[test]
    fn the_mailbox_reset_handshake_works_through_messages() {
        let (_m, mut ep) = endpoint();
        // Memory and bus master on, then CTRL.RST as igbvf does.
        let cmd = Payload::default()
            .u64(4)
            .u32(region::CONFIG)
            .u32(2)
            .u16(6)
            .0;
        ep.handle(&msg(1, 10, &cmd), Vec::new()).unwrap();
        let rst = Payload::default()
            .u64(0)
            .u32(region::BAR0)
            .u32(4)
            .u32(1 << 26)
            .0;
        ep.handle(&msg(2, 10, &rst), Vec::new()).unwrap();
        // VF_RESET (0x01) into VMBMEM, REQ.
        let mbx = u64::from(VfReg::VMBMEM(0).offset().0);
        let w = Payload::default().u64(mbx).u32(0).u32(4).u32(1).0;
        ep.handle(&msg(3, 10, &w), Vec::new()).unwrap();
        let req = Payload::default()
            .u64(u64::from(VfReg::VFMAILBOX.offset().0))
            .u32(0)
            .u32(4)
            .u32(1)
            .0;
        ep.handle(&msg(4, 10, &req), Vec::new()).unwrap();
        // The agent answered at once: PFSTS set, reply ACK | VF_RESET with a MAC.
        let vfmbx = read(&mut ep, 0, u64::from(VfReg::VFMAILBOX.offset().0), 4);
        assert_ne!(u32::from_le_bytes(vfmbx.try_into().unwrap()) & (1 << 4), 0);
        let word0 = read(&mut ep, 0, mbx, 4);
        assert_eq!(
            u32::from_le_bytes(word0.try_into().unwrap()) & 0xFFFF,
            1,
            "reply to VF_RESET"
        );
    }

    #[test]
    fn malformed_messages_get_error_replies() {
        let (_m, mut ep) = endpoint();
        for bad in [
            msg(1, 9, &[0; 4]),                                              // short read
            msg(2, 9, &Payload::default().u64(0).u32(99).u32(4).0),          // no such region
            msg(3, 9, &Payload::default().u64(250).u32(7).u32(16).0),        // past config
            msg(4, 9, &Payload::default().u64(u64::MAX).u32(0).u32(4).0),    // overflow
            msg(5, 10, &Payload::default().u64(0).u32(0).u32(400).u32(0).0), // count ≠ data
            msg(
                6,
                2,
                &Payload::default().u32(32).u32(3).u64(0).u64(0).u64(0).0,
            ), // size 0
            msg(
                7,
                3,
                &Payload::default().u32(24).u32(0).u64(0x1000).u64(0x1000).0,
            ), // not mapped
            msg(
                8,
                8,
                &Payload::default().u32(20).u32(0x24).u32(2).u32(2).u32(5).0,
            ), // range
            msg(
                9,
                8,
                &Payload::default().u32(20).u32(0x27).u32(2).u32(0).u32(1).0,
            ), // flags
            msg(10, 5, &Payload::default().u32(32).u32(0).u32(77).0),        // region index
            msg(11, 7, &Payload::default().u32(16).u32(0).u32(9).0),         // irq index
            msg(12, 6, &[0; 16]),                                            // unsupported
            msg(13, 4242, &[]),                                              // unknown
            msg(14, 1, &Payload::default().u16(1).u16(0).0),                 // major 1
        ] {
            let r = ep.handle(&bad, Vec::new()).expect("a reply");
            let h = Header::parse(&r).unwrap();
            assert_eq!(h.id, u16::from_le_bytes([bad[0], bad[1]]));
            assert_eq!(
                h.flags,
                wire::flags::TYPE_REPLY | wire::flags::ERROR,
                "{h:?}"
            );
            assert_ne!(h.error, 0);
            assert_eq!(r.len(), 16);
        }
        // Garbage shorter than a header, and a header with an impossible size.
        assert!(ep.handle(&[1, 2, 3], Vec::new()).is_some());
        let mut huge = msg(15, 9, &[]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(ep.handle(&huge, Vec::new()).is_some());
        assert_eq!(ep.counters().errors, 16);
    }

    #[test]
    fn a_dma_map_without_fd_is_accepted_and_unmapped_again() {
        let (_m, mut ep) = endpoint();
        let map = Payload::default()
            .u32(32)
            .u32(3)
            .u64(0)
            .u64(0xC0000)
            .u64(0x20000)
            .0;
        let r = ep.handle(&msg(1, 2, &map), Vec::new()).unwrap();
        assert_eq!(Header::parse(&r).unwrap().flags, wire::flags::TYPE_REPLY);
        // The same window again: EEXIST.
        let r = ep.handle(&msg(2, 2, &map), Vec::new()).unwrap();
        assert_eq!(Header::parse(&r).unwrap().error, errno::EEXIST);
        let unmap = Payload::default()
            .u32(24)
            .u32(0)
            .u64(0xC0000)
            .u64(0x20000)
            .0;
        let r = ep.handle(&msg(3, 3, &unmap), Vec::new()).unwrap();
        assert_eq!(r.len(), 16 + 24);
        assert_eq!(ep.counters().dma_maps_without_fd, 1);
        assert_eq!(ep.counters().dma_unmaps, 1);
    }

    fn set_eventfds(ep: &mut VfEndpoint, start: u32, fds: Vec<OwnedFd>) -> Header {
        let body = Payload::default()
            .u32(20)
            .u32(irq_set::DATA_EVENTFD | irq_set::ACTION_TRIGGER)
            .u32(irq_index::MSIX)
            .u32(start)
            .u32(fds.len() as u32)
            .0;
        Header::parse(&ep.handle(&msg(1, 8, &body), fds).unwrap()).unwrap()
    }

    fn vector_masked(model: &Model, vector: u64) -> bool {
        let mut ctrl = [0u8; 4];
        model.nic().bar_read(
            FunctionId::Vf(VfIndex::new(0).unwrap()),
            3,
            vector * 16 + 12,
            &mut ctrl,
        );
        u32::from_le_bytes(ctrl) & 1 == 1
    }

    fn trigger(ep: &mut VfEndpoint, vector: u32) {
        let trig = Payload::default()
            .u32(20)
            .u32(irq_set::DATA_NONE | irq_set::ACTION_TRIGGER)
            .u32(irq_index::MSIX)
            .u32(vector)
            .u32(1)
            .0;
        ep.handle(&msg(2, 8, &trig), Vec::new()).unwrap();
    }

    fn dup(e: &EventFd) -> OwnedFd {
        e.as_fd().try_clone_to_owned().unwrap()
    }

    #[test]
    fn eventfds_receive_the_vf_interrupts() {
        let (model, mut ep) = endpoint();
        let ev = EventFd::new().unwrap();
        let h = set_eventfds(&mut ep, 2, vec![dup(&ev)]);
        assert_eq!(h.flags, wire::flags::TYPE_REPLY);
        // The model's table entry 2 is now unmasked with data 2.
        assert!(!vector_masked(&model, 2));
        // A client-triggered interrupt (DATA_NONE | TRIGGER) reaches the eventfd.
        trigger(&mut ep, 2);
        assert_eq!(ev.take().unwrap(), 1);
        // Disable all: the entry is masked again.
        let off = Payload::default()
            .u32(20)
            .u32(irq_set::DATA_NONE | irq_set::ACTION_TRIGGER)
            .u32(irq_index::MSIX)
            .u32(0)
            .u32(0)
            .0;
        ep.handle(&msg(3, 8, &off), Vec::new()).unwrap();
        assert!(vector_masked(&model, 2));
    }

    #[test]
    fn only_eventfds_are_accepted_for_msix_vectors() {
        // A socket whose buffer is full (or a pipe nobody reads) would block the model's
        // interrupt path, under the device lock, for every VF: refused.
        let (model, mut ep) = endpoint();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (r, w) = std::io::pipe().unwrap();
        for fds in [
            vec![OwnedFd::from(a)],
            vec![OwnedFd::from(w)],
            vec![OwnedFd::from(r)],
        ] {
            let h = set_eventfds(&mut ep, 0, fds);
            assert_eq!(h.error, errno::EINVAL, "{h:?}");
        }
        // One bad descriptor among good ones: nothing is wired.
        let ev = EventFd::new().unwrap();
        let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
        let h = set_eventfds(&mut ep, 0, vec![dup(&ev), OwnedFd::from(c)]);
        assert_eq!(h.error, errno::EINVAL);
        assert_eq!(ep.counters().irq_fds_refused, 4);
        for v in 0..3 {
            assert!(vector_masked(&model, v), "vector {v} wired to a refused fd");
        }
        trigger(&mut ep, 0);
        assert_eq!(ev.take().unwrap(), 0);
    }

    #[test]
    fn a_full_eventfd_costs_only_its_own_client_interrupts() {
        let (model, mut ep) = endpoint();
        let ev = EventFd::new().unwrap();
        // The client's counter is at its maximum: a blocking write would wait forever.
        let mut raw = std::fs::File::from(dup(&ev));
        use std::io::Write as _;
        raw.write_all(&(u64::MAX - 1).to_ne_bytes()).unwrap();
        let h = set_eventfds(&mut ep, 0, vec![dup(&ev)]);
        assert_eq!(h.flags, wire::flags::TYPE_REPLY);
        // MSI-X Enable, as the guest's driver sets it.
        let enable = Payload::default()
            .u64((layout::MSIX + msix_cap::CONTROL) as u64)
            .u32(region::CONFIG)
            .u32(2)
            .u16(msix_cap::ENABLE)
            .0;
        ep.handle(&msg(3, 10, &enable), Vec::new()).unwrap();
        let routes = ep.routes.clone();
        let done = std::sync::mpsc::channel();
        let model2 = model.clone();
        std::thread::spawn(move || {
            // The model raises VF 0's vector 0 (VTEICS) under the device lock.
            let vf0 = FunctionId::Vf(VfIndex::new(0).unwrap());
            let eims = u64::from(VfReg::EIMS.offset().0);
            let eics = u64::from(VfReg::EICS.offset().0);
            let mut nic = model2.nic();
            nic.bar_write(vf0, 0, eims, &1u32.to_le_bytes());
            nic.bar_write(vf0, 0, eics, &1u32.to_le_bytes());
            drop(nic);
            let _ = done.0.send(());
        });
        done.1
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the interrupt path blocked on a full eventfd");
        assert_eq!(
            routes.lost(0),
            1,
            "the model's interrupt was dropped and counted"
        );
        trigger(&mut ep, 0);
        assert_eq!(routes.lost(0), 2, "a dropped signal is counted");
        assert_eq!(routes.lost(1), 0);
        // Once the client reads, interrupts flow again.
        assert_eq!(ev.take().unwrap(), u64::MAX - 1);
        trigger(&mut ep, 0);
        assert_eq!(ev.take().unwrap(), 1);
    }

    /// A sealable memfd of `size` bytes (QEMU's memory-backend-memfd).
    fn memfd(size: u64) -> OwnedFd {
        use rustix::fs::MemfdFlags;
        let fd =
            rustix::fs::memfd_create("hac-test", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
                .unwrap();
        rustix::fs::ftruncate(&fd, size).unwrap();
        fd
    }

    fn dma_map(ep: &mut VfEndpoint, address: u64, size: u64, fd: Option<OwnedFd>) -> Header {
        let body = Payload::default()
            .u32(32)
            .u32(3)
            .u64(0)
            .u64(address)
            .u64(size)
            .0;
        Header::parse(
            &ep.handle(&msg(1, 2, &body), fd.into_iter().collect())
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_dma_window_past_the_end_of_its_file_is_refused() {
        // Mapping 1 MiB of a 4 KiB memfd was accepted, and the first device access past
        // 4 KiB killed the daemon with SIGBUS.
        let (_m, mut ep) = endpoint();
        let file = memfd(4096);
        let h = dma_map(&mut ep, 0x10_0000, 1 << 20, Some(file.try_clone().unwrap()));
        assert_eq!(h.error, errno::EINVAL, "{h:?}");
        let h = dma_map(&mut ep, 0x10_0000, 1 << 30, Some(file.try_clone().unwrap()));
        assert_eq!(h.error, errno::EINVAL, "{h:?}");
        // 16 TiB over the same file: above the byte budget before the file is even looked at.
        let h = dma_map(
            &mut ep,
            0x10_0000,
            16 << 40,
            Some(file.try_clone().unwrap()),
        );
        assert_eq!(h.error, errno::ENOSPC, "{h:?}");
        assert_eq!(ep.counters().dma_maps_refused, 3);
        assert_eq!(ep.counters().dma_maps, 0);
        let h = dma_map(&mut ep, 0x10_0000, 4096, Some(file.try_clone().unwrap()));
        assert_eq!(h.flags, wire::flags::TYPE_REPLY, "{h:?}");
        // A file that can shrink under the mapping (no seals allowed) is refused too.
        let loose = rustix::fs::memfd_create("hac-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&loose, 4096).unwrap();
        let h = dma_map(&mut ep, 0x20_0000, 4096, Some(loose));
        assert_eq!(h.error, errno::EPERM, "{h:?}");
        // The accepted window's file is sealed: the client cannot truncate it under the device.
        assert_eq!(
            rustix::fs::ftruncate(&file, 0).unwrap_err(),
            rustix::io::Errno::PERM
        );
    }

    #[test]
    fn dma_windows_are_bounded_in_count_and_bytes() {
        let (_m, mut ep) = endpoint();
        // Bytes: a 512 GiB (sparse) memfd mapped twice fills the budget; a third is refused.
        let big = memfd(MAX_DMA_BYTES / 2);
        for i in 0..2 {
            let h = dma_map(
                &mut ep,
                i * MAX_DMA_BYTES,
                MAX_DMA_BYTES / 2,
                Some(big.try_clone().unwrap()),
            );
            assert_eq!(h.flags, wire::flags::TYPE_REPLY, "{h:?}");
        }
        let h = dma_map(&mut ep, 4 * MAX_DMA_BYTES, 4096, Some(memfd(4096)));
        assert_eq!(h.error, errno::ENOSPC, "{h:?}");
        // Count: windows without a descriptor count too.
        let unmap_all = Payload::default().u32(24).u32(UNMAP_ALL).u64(0).u64(0).0;
        ep.handle(&msg(9, 3, &unmap_all), Vec::new()).unwrap();
        for i in 0..MAX_DMA_MAPS as u64 {
            let h = dma_map(&mut ep, i * 0x1000, 0x1000, None);
            assert_eq!(h.flags, wire::flags::TYPE_REPLY, "window {i}: {h:?}");
        }
        let h = dma_map(&mut ep, 1 << 40, 0x1000, None);
        assert_eq!(h.error, errno::ENOSPC);
        assert_eq!(ep.counters().dma_maps_refused, 2);
        // Overlaps are still found among many windows: free window 500, then a window
        // straddling 500 and 501 overlaps, window 500 itself fits again.
        let unmap = Payload::default()
            .u32(24)
            .u32(0)
            .u64(500 * 0x1000)
            .u64(0x1000)
            .0;
        let r = ep.handle(&msg(9, 3, &unmap), Vec::new()).unwrap();
        assert_eq!(Header::parse(&r).unwrap().flags, wire::flags::TYPE_REPLY);
        assert_eq!(
            dma_map(&mut ep, 500 * 0x1000 + 0x800, 0x1000, None).error,
            errno::EEXIST
        );
        assert_eq!(
            dma_map(&mut ep, 499 * 0x1000 + 0x800, 0x1000, None).error,
            errno::EEXIST
        );
        assert_eq!(
            dma_map(&mut ep, 500 * 0x1000, 0x1000, None).flags,
            wire::flags::TYPE_REPLY
        );
    }

    #[test]
    fn no_reply_commands_are_silent() {
        let (_m, mut ep) = endpoint();
        let mut m = msg(
            1,
            10,
            &Payload::default().u64(0x2820).u32(0).u32(4).u32(0).0,
        );
        m[8] = wire::flags::NO_REPLY as u8;
        assert!(ep.handle(&m, Vec::new()).is_none());
    }
}

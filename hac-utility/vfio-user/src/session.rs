//! One client's session with one device: every message in, one reply out. Version
//! negotiation, the device/region/IRQ info answers, the range checks in front of every region
//! access, the `SET_IRQS` flag grammar and its descriptors, the DMA windows with their limits,
//! and the counters; what the device does is the [`Backend`]'s.
//!
//! Never panics on any input. Every command that did not ask for silence gets exactly one
//! reply carrying its id and command; a refusal is an error reply (a bare header with an
//! errno). A refusal a client cannot see the reason of is explained on stderr in one line (the
//! first [`MAX_NOTES`] per connection) and counted.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use hw_common::Iova;

use crate::backend::{Backend, DeviceError, DmaWindow, EventFd, GuestMapping, IrqAction};
use crate::client_dma::{DEFAULT_CLIENT_XFER, DmaWriteQueue};
use crate::dma::{DmaWindows, Kind, Limits};
use crate::wire::vfio::irq_set;
use crate::wire::{self, Command, Header, Payload, Request, errno};

/// Page size for mapping guest memory windows (announced as `pgsizes`).
pub const PAGE: u64 = 4096;
/// Refusals explained on stderr per connection; later ones are only counted.
pub const MAX_NOTES: u32 = 16;

/// What a session has seen (all connections of one device so far).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages handled.
    pub messages: u64,
    /// Messages answered with an error (or refused silently when no reply was wanted).
    pub errors: u64,
    /// Region reads.
    pub region_reads: u64,
    /// Region writes.
    pub region_writes: u64,
    /// DMA windows mapped with a file descriptor.
    pub dma_maps: u64,
    /// DMA windows announced without one (left unmapped).
    pub dma_maps_without_fd: u64,
    /// DMA windows refused: past the end of their file, a file that can shrink, not a memory
    /// file, or over the [`Limits`].
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

/// A device and the state of its client. See the module documentation.
pub struct Session<B> {
    backend: B,
    /// Names the device in stderr lines ("VF 0").
    label: String,
    limits: Limits,
    windows: DmaWindows,
    /// Refusals explained on stderr since the client connected.
    notes: u32,
    counters: Counters,
    /// Where the device's writes go in client mode (`None`: direct).
    client_dma: Option<Arc<DmaWriteQueue>>,
    /// The client's `max_data_xfer_size` (from its version message).
    client_max_xfer: u32,
}

impl<B: Backend> Session<B> {
    /// A session serving `backend` with the default [`Limits`]; `label` names it on stderr.
    pub fn new(label: impl Into<String>, backend: B) -> Session<B> {
        Session::with_limits(label, backend, Limits::default())
    }

    /// A session with explicit per-client limits.
    pub fn with_limits(label: impl Into<String>, backend: B, limits: Limits) -> Session<B> {
        Session {
            backend,
            label: label.into(),
            limits,
            windows: DmaWindows::default(),
            notes: 0,
            counters: Counters::default(),
            client_dma: None,
            client_max_xfer: DEFAULT_CLIENT_XFER,
        }
    }

    /// Routes the device's writes through the client: the server sends what `queue` receives
    /// as `DMA_WRITE` requests and fires its interrupts after them (the device must put its
    /// writes and interrupts into `queue` instead of writing the mapping and the eventfds).
    pub fn set_client_dma(&mut self, queue: Arc<DmaWriteQueue>) {
        self.client_dma = Some(queue);
    }

    /// The queue of client-routed writes, in client mode.
    pub fn client_dma(&self) -> Option<&Arc<DmaWriteQueue>> {
        self.client_dma.as_ref()
    }

    /// The largest data transfer the client takes in one message (its `max_data_xfer_size`,
    /// [`DEFAULT_CLIENT_XFER`] if it announced none).
    pub fn client_max_xfer(&self) -> u32 {
        self.client_max_xfer
    }

    /// The device.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The device, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// The label given at creation.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// DMA windows now: how many (with or without a descriptor) and the bytes mapped.
    pub fn dma_windows(&self) -> (usize, u64) {
        (self.windows.count(), self.windows.mapped_bytes())
    }

    /// Whether `window` lies inside one window mapped into the device.
    pub fn is_mapped(&self, window: DmaWindow) -> bool {
        self.windows.covers_mapped(window)
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
            eprintln!("hac serve: vfio-user {}: {why}{more}", self.label);
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
            Ok(request) => self.dispatch(request, fds),
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

    fn dispatch(&mut self, request: Request<'_>, fds: Vec<OwnedFd>) -> Result<Vec<u8>, u32> {
        match request {
            Request::Version {
                major,
                capabilities,
                ..
            } => {
                if major != 0 {
                    return Err(errno::ENOTSUP);
                }
                self.client_max_xfer = client_max_xfer(capabilities);
                let caps = format!(
                    "{{\"capabilities\":{{\"max_msg_fds\":{},\"max_data_xfer_size\":{},\"pgsizes\":{PAGE},\"max_dma_maps\":{}}}}}",
                    wire::MAX_FDS,
                    wire::MAX_DATA_XFER,
                    self.limits.max_dma_maps
                );
                Ok(Payload::default()
                    .u16(major)
                    // Minor 0: the commands we serve are all in 0.0.
                    .u16(0)
                    .bytes(caps.as_bytes())
                    .bytes(&[0])
                    .0)
            }
            Request::DeviceGetInfo { .. } => {
                let info = self.backend.device_info();
                Ok(Payload::default()
                    .u32(16)
                    .u32(info.flags)
                    .u32(info.regions)
                    .u32(info.irqs)
                    .0)
            }
            Request::DeviceGetRegionInfo { index, .. } => {
                if index >= self.backend.device_info().regions {
                    return Err(errno::EINVAL);
                }
                let info = self.backend.region_info(index);
                Ok(Payload::default()
                    .u32(32)
                    .u32(info.flags)
                    .u32(index)
                    .u32(0)
                    .u64(info.size)
                    .u64(0)
                    .0)
            }
            Request::DeviceGetIrqInfo { index, .. } => {
                if index >= self.backend.device_info().irqs {
                    return Err(errno::EINVAL);
                }
                let info = self.backend.irq_info(index);
                Ok(Payload::default()
                    .u32(16)
                    .u32(info.flags)
                    .u32(index)
                    .u32(info.count)
                    .0)
            }
            Request::RegionRead {
                offset,
                region,
                count,
            } => {
                self.counters.region_reads += 1;
                let mut data = vec![0u8; count as usize];
                self.check_region(region, offset, data.len(), wire::vfio::REGION_READ)?;
                self.backend
                    .region_read(region, offset, &mut data)
                    .map_err(DeviceError::errno)?;
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
                self.check_region(region, offset, data.len(), wire::vfio::REGION_WRITE)?;
                self.backend
                    .region_write(region, offset, data)
                    .map_err(DeviceError::errno)?;
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
                self.backend.reset();
                Ok(Vec::new())
            }
            Request::Unsupported(_) => Err(errno::ENOTSUP),
        }
    }

    /// A region access of `len` bytes at `offset` lies inside an announced region that
    /// allows it (`access`: READ or WRITE flag).
    fn check_region(&self, region: u32, offset: u64, len: usize, access: u32) -> Result<(), u32> {
        if region >= self.backend.device_info().regions {
            return Err(errno::EINVAL);
        }
        let info = self.backend.region_info(region);
        if info.flags & access == 0 || !info.contains(offset, len) {
            return Err(errno::EINVAL);
        }
        Ok(())
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
        if self.windows.overlaps(address, size) {
            return Err(errno::EEXIST);
        }
        let max_maps = self.limits.max_dma_maps;
        if self.windows.count() >= max_maps {
            self.counters.dma_maps_refused += 1;
            self.note(format_args!(
                "DMA_MAP at {address:#x} refused: {max_maps} windows already (max_dma_maps)"
            ));
            return Err(errno::ENOSPC);
        }
        let window = DmaWindow {
            address: Iova(address),
            size,
        };
        let Some(fd) = fds.pop() else {
            self.counters.dma_maps_without_fd += 1;
            self.windows.insert(Kind::Unbacked, window);
            return Ok(());
        };
        let max_bytes = self.limits.max_dma_bytes;
        if self.windows.mapped_bytes().saturating_add(size) > max_bytes {
            self.counters.dma_maps_refused += 1;
            self.note(format_args!(
                "DMA_MAP at {address:#x} refused: {size:#x} more bytes would exceed the {max_bytes:#x} bytes a client may map"
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
        self.backend
            .dma_map(window, mapping, delta)
            .map_err(DeviceError::errno)?;
        self.windows.insert(Kind::Mapped, window);
        self.counters.dma_maps += 1;
        Ok(())
    }

    fn dma_unmap(&mut self, flags: u32, address: u64, size: u64) -> Result<(), u32> {
        if flags & wire::vfio::DMA_UNMAP_ALL != 0 {
            self.unmap_all();
            return Ok(());
        }
        let window = DmaWindow {
            address: Iova(address),
            size,
        };
        match self.windows.remove(window) {
            Some(kind) => {
                if kind == Kind::Mapped {
                    self.backend.dma_unmap(window);
                }
                self.counters.dma_unmaps += 1;
                Ok(())
            }
            None => Err(errno::EINVAL),
        }
    }

    fn unmap_all(&mut self) {
        let (mapped, count) = self.windows.clear();
        for window in mapped {
            self.backend.dma_unmap(window);
        }
        self.counters.dma_unmaps += count as u64;
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
        if data_kind.count_ones() != 1
            || action.count_ones() != 1
            || index >= self.backend.device_info().irqs
        {
            return Err(errno::EINVAL);
        }
        let vectors = self.backend.irq_info(index).count;
        if vectors == 0 {
            // An index without vectors (a VF's INTx): only "disable all" is meaningful, and
            // there is nothing to disable.
            return if count == 0 && fds.is_empty() {
                Ok(())
            } else {
                Err(errno::EINVAL)
            };
        }
        if count == 0 && data_kind == irq_set::DATA_NONE && action == irq_set::ACTION_TRIGGER {
            return self.irq(index, IrqAction::DisableAll);
        }
        let end = start.checked_add(count).ok_or(errno::EINVAL)?;
        if end > vectors {
            return Err(errno::EINVAL);
        }
        // Vectors of the range the data selects (DATA_NONE: all; DATA_BOOL: the true ones).
        let selected = |v: u32| {
            data_kind == irq_set::DATA_NONE
                || data.get((v - start) as usize).is_some_and(|&b| b != 0)
        };
        match (data_kind, action) {
            (irq_set::DATA_EVENTFD, irq_set::ACTION_TRIGGER) => {
                if fds.is_empty() {
                    return self.irq(index, IrqAction::Unassign { start, count });
                }
                if fds.len() != count as usize {
                    return Err(errno::EINVAL);
                }
                // All or nothing: every descriptor must be an eventfd (made non-blocking), or
                // the device's interrupt path could wait on this client.
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
                self.irq(index, IrqAction::Assign { start, eventfds })
            }
            (irq_set::DATA_NONE | irq_set::DATA_BOOL, irq_set::ACTION_TRIGGER) => {
                if data_kind == irq_set::DATA_BOOL && data.len() < count as usize {
                    return Err(errno::EINVAL);
                }
                for vector in (start..end).filter(|&v| selected(v)) {
                    self.irq(index, IrqAction::Trigger { vector })?;
                }
                Ok(())
            }
            (irq_set::DATA_NONE | irq_set::DATA_BOOL, _) => {
                let mask = action == irq_set::ACTION_MASK;
                for vector in (start..end).filter(|&v| selected(v)) {
                    let a = if mask {
                        IrqAction::Mask { vector }
                    } else {
                        IrqAction::Unmask { vector }
                    };
                    self.irq(index, a)?;
                }
                Ok(())
            }
            _ => Err(errno::EINVAL),
        }
    }

    fn irq(&mut self, index: u32, action: IrqAction) -> Result<(), u32> {
        self.backend
            .set_irqs(index, action)
            .map_err(DeviceError::errno)
    }

    // ----- disconnect --------------------------------------------------------------------

    /// The client went away: the device drops its eventfds and resets, then its DMA windows
    /// are withdrawn; the next client starts afresh (counters go on).
    pub fn disconnect(&mut self) {
        self.notes = 0;
        self.client_max_xfer = DEFAULT_CLIENT_XFER;
        self.backend.disconnect();
        self.unmap_all();
    }
}

/// The `max_data_xfer_size` of a client's capability JSON ([`DEFAULT_CLIENT_XFER`] when absent
/// or unreadable, at most `u32::MAX`).
fn client_max_xfer(capabilities: &[u8]) -> u32 {
    serde_json::from_slice::<serde_json::Value>(capabilities)
        .ok()
        .and_then(|v| v.get("capabilities")?.get("max_data_xfer_size")?.as_u64())
        .map_or(DEFAULT_CLIENT_XFER, |n| n.min(u64::from(u32::MAX)) as u32)
}

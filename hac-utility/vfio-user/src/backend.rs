//! What a device implements to be served over vfio-user: the [`Backend`] trait and the values
//! it exchanges with the server.
//!
//! The server checks everything a client can get wrong before it calls the backend: a region
//! access lies inside a region the backend announced (with the READ or WRITE flag), an
//! interrupt action names vectors the index has, a DMA window is mapped (inside its file, the
//! file sealed, within the per-client limits) before the backend sees it and is unmapped only
//! as it was mapped, and every interrupt descriptor is a non-blocking eventfd. The backend
//! decides what the device does; it never builds or parses a message.

use hw_common::Iova;

pub use hac_sys::{EventFd, GuestMapping};

use crate::wire::errno;

/// Why a device refused a request; the client receives its errno in an error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The request makes no sense for this device (`EINVAL`).
    #[error("invalid argument")]
    InvalidArgument,
    /// The DMA window meets one the device already has (`EEXIST`).
    #[error("overlaps an existing mapping")]
    Exists,
    /// The device could not establish a DMA mapping (`EFAULT`).
    #[error("bad address")]
    Fault,
    /// Not permitted in the device's state (`EPERM`).
    #[error("not permitted")]
    NotPermitted,
    /// A device limit is reached (`ENOSPC`).
    #[error("no space left")]
    NoSpace,
    /// The device does not offer this (`ENOTSUP`).
    #[error("not supported")]
    NotSupported,
}

impl DeviceError {
    /// The errno carried in the error reply.
    pub fn errno(self) -> u32 {
        match self {
            DeviceError::InvalidArgument => errno::EINVAL,
            DeviceError::Exists => errno::EEXIST,
            DeviceError::Fault => errno::EFAULT,
            DeviceError::NotPermitted => errno::EPERM,
            DeviceError::NoSpace => errno::ENOSPC,
            DeviceError::NotSupported => errno::ENOTSUP,
        }
    }
}

/// The answer to `DEVICE_GET_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `VFIO_DEVICE_FLAGS_*` ([`wire::vfio`](crate::wire::vfio)).
    pub flags: u32,
    /// Regions announced (indexes `0..regions`).
    pub regions: u32,
    /// IRQ indexes announced (`0..irqs`).
    pub irqs: u32,
}

/// One region: its flags and size. Size 0 means absent (no access is ever forwarded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// `VFIO_REGION_INFO_FLAG_*` ([`wire::vfio`](crate::wire::vfio)).
    pub flags: u32,
    /// Bytes.
    pub size: u64,
}

impl RegionInfo {
    /// A region that is not there.
    pub const ABSENT: RegionInfo = RegionInfo { flags: 0, size: 0 };

    /// A readable and writeable region of `size` bytes (absent if `size` is 0).
    pub fn read_write(size: u64) -> RegionInfo {
        if size == 0 {
            return RegionInfo::ABSENT;
        }
        RegionInfo {
            flags: crate::wire::vfio::REGION_READ | crate::wire::vfio::REGION_WRITE,
            size,
        }
    }

    /// Whether `offset..offset + len` lies inside the region.
    pub fn contains(&self, offset: u64, len: usize) -> bool {
        offset
            .checked_add(len as u64)
            .is_some_and(|end| self.size > 0 && end <= self.size)
    }
}

/// One IRQ index: its flags and number of vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqInfo {
    /// `VFIO_IRQ_INFO_*` ([`wire::vfio`](crate::wire::vfio)).
    pub flags: u32,
    /// Vectors (0: the index exists but has none, e.g. INTx of a VF).
    pub count: u32,
}

impl IrqInfo {
    /// An index of `count` vectors signalled through eventfds (`EVENTFD`, and `NORESIZE` when
    /// it has vectors: they are enabled together).
    pub fn eventfds(count: u32) -> IrqInfo {
        let flags = if count > 0 {
            crate::wire::vfio::IRQ_INFO_EVENTFD | crate::wire::vfio::IRQ_INFO_NORESIZE
        } else {
            crate::wire::vfio::IRQ_INFO_EVENTFD
        };
        IrqInfo { flags, count }
    }
}

/// A DMA window: `size` bytes of the client's memory at DMA address `address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DmaWindow {
    /// DMA address (guest-physical without a vIOMMU).
    pub address: Iova,
    /// Bytes (never 0; `address + size` never overflows).
    pub size: u64,
}

/// What a `SET_IRQS` asks of one IRQ index, after the server checked flags, range and
/// descriptors. Vector numbers are below the index's [`IrqInfo::count`].
#[derive(Debug)]
pub enum IrqAction {
    /// Vectors `start..start + eventfds.len()` signal these eventfds from now on (each one
    /// checked to be an eventfd and made non-blocking, so signalling never waits).
    Assign {
        /// First vector.
        start: u32,
        /// One per vector.
        eventfds: Vec<EventFd>,
    },
    /// Vectors `start..start + count` lose their eventfds (`count` may be 0).
    Unassign {
        /// First vector.
        start: u32,
        /// Vectors.
        count: u32,
    },
    /// Every vector of the index loses its eventfd.
    DisableAll,
    /// The client triggers `vector` (its eventfd is signalled as if the device raised it).
    Trigger {
        /// The vector.
        vector: u32,
    },
    /// The client masks `vector`.
    Mask {
        /// The vector.
        vector: u32,
    },
    /// The client unmasks `vector`.
    Unmask {
        /// The vector.
        vector: u32,
    },
}

/// A device served over vfio-user. The server calls these methods one at a time from its
/// connection thread; each must answer at once (a slow reply makes QEMU drop the connection).
/// The arguments are already checked (see the module documentation): no method needs to
/// defend against an out-of-range region, offset or vector, or an unmapped DMA window.
pub trait Backend {
    /// Device flags and the numbers of regions and IRQ indexes.
    fn device_info(&self) -> DeviceInfo;

    /// Region `index` (below [`DeviceInfo::regions`]).
    fn region_info(&self, index: u32) -> RegionInfo;

    /// IRQ index `index` (below [`DeviceInfo::irqs`]).
    fn irq_info(&self, index: u32) -> IrqInfo;

    /// Reads `data.len()` bytes of region `index` at `offset` (inside the region, which is
    /// readable).
    fn region_read(&mut self, index: u32, offset: u64, data: &mut [u8]) -> Result<(), DeviceError>;

    /// Writes `data` to region `index` at `offset` (inside the region, which is writeable).
    fn region_write(&mut self, index: u32, offset: u64, data: &[u8]) -> Result<(), DeviceError>;

    /// Makes `window` of the client's memory reachable by the device's DMA: `memory` holds it
    /// from byte `offset` on (`offset + window.size <= memory.len()`). The window overlaps no
    /// other window the server gave this device.
    fn dma_map(
        &mut self,
        window: DmaWindow,
        memory: GuestMapping,
        offset: u64,
    ) -> Result<(), DeviceError>;

    /// Withdraws `window`, exactly as an earlier successful [`Backend::dma_map`] gave it.
    fn dma_unmap(&mut self, window: DmaWindow);

    /// Carries out `action` on IRQ index `index` (below [`DeviceInfo::irqs`], with vectors).
    fn set_irqs(&mut self, index: u32, action: IrqAction) -> Result<(), DeviceError>;

    /// Resets the device (`DEVICE_RESET`).
    fn reset(&mut self);

    /// The client went away: drop its eventfds and reset so the device stops using its
    /// memory. The server withdraws the client's DMA windows right after
    /// ([`Backend::dma_unmap`] for each).
    fn disconnect(&mut self);
}

//! The legacy VFIO container/group/device ioctls, for what `pci-driver` cannot do (pass a VF token).
//!
//! Ioctl numbers are derived from the kernel's formula, `_IO(VFIO_TYPE, VFIO_BASE + n)` with
//! `VFIO_TYPE = ';'` and `VFIO_BASE = 100` taken from `vfio-bindings`, and pinned by a test
//! against the values in `linux/vfio.h`. Every ioctl has a typed, safe wrapper whose argument
//! is built here with the `argsz` the kernel expects, so each `unsafe` block only has to argue
//! about one call.
//!
//! [`NativeDevice::open`] follows `Documentation/driver-api/vfio.rst`: open the group, check it
//! is viable, open a container, check the API version and Type1v2 support, attach the group, set
//! the IOMMU type, read the IOMMU info (page sizes, valid IOVA ranges, mapping limit), then ask
//! the group for the device fd by name — `"0000:01:10.0 vf_token=<uuid>"` when a token is needed.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use hw_common::Iova;
use vfio_bindings::bindings::vfio as uapi;

use crate::dma::DmaMemory;
use crate::mmio::MmioRegion;

/// Whether this architecture uses the alternative `_IOC` layout (powerpc, mips and sparc
/// override `include/uapi/asm-generic/ioctl.h`).
const IOC_ALT_LAYOUT: bool = cfg!(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
));

/// The direction field of `_IO` (no data) and where it sits, per architecture.
mod ioc {
    pub const NONE: u32 = if super::IOC_ALT_LAYOUT { 1 } else { 0 };
    pub const DIRSHIFT: u32 = if super::IOC_ALT_LAYOUT { 29 } else { 30 };
}

const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: VFIO ioctls carry no size or direction; the structure
/// size travels in its own `argsz` field instead.
pub const fn vfio_io(n: u32) -> u32 {
    (ioc::NONE << ioc::DIRSHIFT)
        | ((uapi::VFIO_TYPE as u32) << IOC_TYPESHIFT)
        | ((uapi::VFIO_BASE + n) << IOC_NRSHIFT)
        | (0 << IOC_SIZESHIFT)
}

/// `VFIO_GET_API_VERSION` (container).
pub const VFIO_GET_API_VERSION: u32 = vfio_io(0);
/// `VFIO_CHECK_EXTENSION` (container).
pub const VFIO_CHECK_EXTENSION: u32 = vfio_io(1);
/// `VFIO_SET_IOMMU` (container).
pub const VFIO_SET_IOMMU: u32 = vfio_io(2);
/// `VFIO_GROUP_GET_STATUS` (group).
pub const VFIO_GROUP_GET_STATUS: u32 = vfio_io(3);
/// `VFIO_GROUP_SET_CONTAINER` (group).
pub const VFIO_GROUP_SET_CONTAINER: u32 = vfio_io(4);
/// `VFIO_GROUP_GET_DEVICE_FD` (group).
pub const VFIO_GROUP_GET_DEVICE_FD: u32 = vfio_io(6);
/// `VFIO_DEVICE_GET_INFO` (device).
pub const VFIO_DEVICE_GET_INFO: u32 = vfio_io(7);
/// `VFIO_DEVICE_GET_REGION_INFO` (device).
pub const VFIO_DEVICE_GET_REGION_INFO: u32 = vfio_io(8);
/// `VFIO_DEVICE_GET_IRQ_INFO` (device).
pub const VFIO_DEVICE_GET_IRQ_INFO: u32 = vfio_io(9);
/// `VFIO_DEVICE_SET_IRQS` (device).
pub const VFIO_DEVICE_SET_IRQS: u32 = vfio_io(10);
/// `VFIO_DEVICE_RESET` (device).
pub const VFIO_DEVICE_RESET: u32 = vfio_io(11);
/// `VFIO_IOMMU_GET_INFO` (container; shares its number with `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`
/// on device fds).
pub const VFIO_IOMMU_GET_INFO: u32 = vfio_io(12);
/// `VFIO_IOMMU_MAP_DMA` (container).
pub const VFIO_IOMMU_MAP_DMA: u32 = vfio_io(13);
/// `VFIO_IOMMU_UNMAP_DMA` (container).
pub const VFIO_IOMMU_UNMAP_DMA: u32 = vfio_io(14);

/// The step of opening a device that failed (for error messages and error classification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenStep {
    /// `open("/dev/vfio/<group>")`.
    OpenGroup,
    /// `VFIO_GROUP_GET_STATUS`.
    GroupStatus,
    /// The group status says "not viable".
    GroupNotViable,
    /// `open("/dev/vfio/vfio")`.
    OpenContainer,
    /// `VFIO_GET_API_VERSION` (or a version other than `VFIO_API_VERSION`).
    ApiVersion,
    /// `VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)` (or the extension is missing).
    Type1v2,
    /// `VFIO_GROUP_SET_CONTAINER`.
    SetContainer,
    /// `VFIO_SET_IOMMU`.
    SetIommu,
    /// `VFIO_IOMMU_GET_INFO` (or its contents).
    IommuInfo,
    /// `VFIO_GROUP_GET_DEVICE_FD`.
    GetDeviceFd,
    /// `VFIO_DEVICE_GET_INFO` (or a device that is not PCI).
    DeviceInfo,
    /// `VFIO_DEVICE_GET_REGION_INFO`.
    RegionInfo,
    /// `VFIO_DEVICE_GET_IRQ_INFO`.
    IrqInfo,
    /// Somewhere inside `pci_driver::VfioPciDevice::open` (it does not say where).
    PciDriver,
}

impl OpenStep {
    /// What was being done, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            OpenStep::OpenGroup => "opening the VFIO group node",
            OpenStep::GroupStatus => "VFIO_GROUP_GET_STATUS",
            OpenStep::GroupNotViable => "checking that the group is viable",
            OpenStep::OpenContainer => "opening /dev/vfio/vfio",
            OpenStep::ApiVersion => "VFIO_GET_API_VERSION",
            OpenStep::Type1v2 => "checking for the Type1v2 IOMMU",
            OpenStep::SetContainer => "VFIO_GROUP_SET_CONTAINER",
            OpenStep::SetIommu => "VFIO_SET_IOMMU",
            OpenStep::IommuInfo => "VFIO_IOMMU_GET_INFO",
            OpenStep::GetDeviceFd => "VFIO_GROUP_GET_DEVICE_FD",
            OpenStep::DeviceInfo => "VFIO_DEVICE_GET_INFO",
            OpenStep::RegionInfo => "VFIO_DEVICE_GET_REGION_INFO",
            OpenStep::IrqInfo => "VFIO_DEVICE_GET_IRQ_INFO",
            OpenStep::PciDriver => "pci-driver's VfioPciDevice::open",
        }
    }
}

/// A failed open: which step, and the OS error.
#[derive(Debug)]
pub struct OpenFailure {
    /// The step.
    pub step: OpenStep,
    /// The error.
    pub source: io::Error,
}

impl OpenFailure {
    fn at(step: OpenStep) -> impl FnOnce(io::Error) -> OpenFailure {
        move |source| OpenFailure { step, source }
    }
}

/// What the Type1 IOMMU of a container accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IommuInfo {
    /// Minimum IOVA and host-address alignment: the smallest IOMMU page size.
    pub alignment: u64,
    /// Valid IOVA windows, half-open (`end` exclusive).
    pub iova_ranges: Vec<Range<u64>>,
    /// How many mappings may exist at once (`dma_entry_limit`), if the kernel says.
    pub max_mappings: Option<u32>,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn invalid_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// `VFIO_GET_API_VERSION`.
fn get_api_version(container: &File) -> io::Result<i32> {
    // SAFETY: this ioctl takes no argument and only returns an integer.
    cvt(unsafe { libc::ioctl(container.as_raw_fd(), VFIO_GET_API_VERSION as libc::Ioctl) })
}

/// `VFIO_CHECK_EXTENSION(extension)`: > 0 if supported.
fn check_extension(container: &File, extension: u32) -> io::Result<i32> {
    // SAFETY: the argument is passed by value (an integer), no memory is shared.
    cvt(unsafe {
        libc::ioctl(
            container.as_raw_fd(),
            VFIO_CHECK_EXTENSION as libc::Ioctl,
            libc::c_ulong::from(extension),
        )
    })
}

/// `VFIO_SET_IOMMU(iommu_type)`.
fn set_iommu(container: &File, iommu_type: u32) -> io::Result<()> {
    // SAFETY: the argument is passed by value (an integer), no memory is shared.
    cvt(unsafe {
        libc::ioctl(
            container.as_raw_fd(),
            VFIO_SET_IOMMU as libc::Ioctl,
            libc::c_ulong::from(iommu_type),
        )
    })
    .map(drop)
}

/// `VFIO_GROUP_GET_STATUS`: the group's flags.
fn group_status(group: &File) -> io::Result<u32> {
    let mut status = uapi::vfio_group_status {
        argsz: std::mem::size_of::<uapi::vfio_group_status>() as u32,
        flags: 0,
    };
    // SAFETY: `status` is a live, exclusively borrowed `vfio_group_status` whose argsz is its
    // size; the kernel writes at most argsz bytes into it during the call.
    cvt(unsafe {
        libc::ioctl(
            group.as_raw_fd(),
            VFIO_GROUP_GET_STATUS as libc::Ioctl,
            &mut status as *mut uapi::vfio_group_status,
        )
    })?;
    Ok(status.flags)
}

/// `VFIO_GROUP_SET_CONTAINER`.
fn group_set_container(group: &File, container: &File) -> io::Result<()> {
    let fd: libc::c_int = container.as_raw_fd();
    // SAFETY: the kernel reads one `int` (the container fd) through the pointer, which points
    // at a live local for the duration of the call.
    cvt(unsafe {
        libc::ioctl(
            group.as_raw_fd(),
            VFIO_GROUP_SET_CONTAINER as libc::Ioctl,
            &fd as *const libc::c_int,
        )
    })
    .map(drop)
}

/// `VFIO_GROUP_GET_DEVICE_FD(name)`: `name` is the device's sysfs name, optionally followed by
/// ` vf_token=<uuid>`.
fn group_get_device_fd(group: &File, name: &CStr) -> io::Result<File> {
    // SAFETY: the kernel reads a NUL-terminated string through the pointer; `name` is a live
    // `CStr` (NUL-terminated by construction) for the duration of the call.
    let fd = cvt(unsafe {
        libc::ioctl(
            group.as_raw_fd(),
            VFIO_GROUP_GET_DEVICE_FD as libc::Ioctl,
            name.as_ptr(),
        )
    })?;
    // SAFETY: on success the ioctl returns a new file descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `VFIO_DEVICE_GET_INFO`.
fn device_info(device: &File) -> io::Result<uapi::vfio_device_info> {
    let mut info = uapi::vfio_device_info {
        argsz: std::mem::size_of::<uapi::vfio_device_info>() as u32,
        flags: 0,
        num_regions: 0,
        num_irqs: 0,
        cap_offset: 0,
        pad: 0,
    };
    // SAFETY: `info` is a live, exclusively borrowed `vfio_device_info` with argsz = its size;
    // the kernel writes at most argsz bytes.
    cvt(unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            VFIO_DEVICE_GET_INFO as libc::Ioctl,
            &mut info as *mut uapi::vfio_device_info,
        )
    })?;
    Ok(info)
}

/// Where a device region lives in the device fd, and what it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Length (0: the region does not exist).
    pub size: u64,
    /// Offset in the device fd.
    pub offset: u64,
}

impl RegionInfo {
    fn readable_writable(&self) -> bool {
        let rw = uapi::VFIO_REGION_INFO_FLAG_READ | uapi::VFIO_REGION_INFO_FLAG_WRITE;
        self.flags & rw == rw
    }
}

/// `VFIO_DEVICE_GET_REGION_INFO(index)` (capabilities are not read).
fn region_info(device: &File, index: u32) -> io::Result<RegionInfo> {
    let mut info = uapi::vfio_region_info {
        argsz: std::mem::size_of::<uapi::vfio_region_info>() as u32,
        flags: 0,
        index,
        cap_offset: 0,
        size: 0,
        offset: 0,
    };
    // SAFETY: `info` is a live, exclusively borrowed `vfio_region_info` with argsz = its size;
    // the kernel writes at most argsz bytes (it reports a larger argsz when capabilities do not
    // fit, without writing them).
    cvt(unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            VFIO_DEVICE_GET_REGION_INFO as libc::Ioctl,
            &mut info as *mut uapi::vfio_region_info,
        )
    })?;
    Ok(RegionInfo {
        flags: info.flags,
        size: info.size,
        offset: info.offset,
    })
}

/// `VFIO_DEVICE_GET_IRQ_INFO(index)`: the number of vectors.
fn irq_count(device: &File, index: u32) -> io::Result<u32> {
    let mut info = uapi::vfio_irq_info {
        argsz: std::mem::size_of::<uapi::vfio_irq_info>() as u32,
        flags: 0,
        index,
        count: 0,
    };
    // SAFETY: `info` is a live, exclusively borrowed `vfio_irq_info` with argsz = its size.
    cvt(unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            VFIO_DEVICE_GET_IRQ_INFO as libc::Ioctl,
            &mut info as *mut uapi::vfio_irq_info,
        )
    })?;
    if info.flags & uapi::VFIO_IRQ_INFO_EVENTFD == 0 {
        return Ok(0);
    }
    Ok(info.count)
}

/// The words of a `vfio_irq_set` header (argsz, flags, index, start, count) followed by
/// `data` (one eventfd per vector).
fn irq_set_words(flags: u32, index: u32, data: &[RawFd]) -> io::Result<Vec<u32>> {
    const HEADER: usize = std::mem::size_of::<uapi::vfio_irq_set>();
    const _: () = assert!(HEADER == 5 * 4, "vfio_irq_set is five u32 words");
    let argsz = u32::try_from(HEADER + 4 * data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many vectors"))?;
    let count = data.len() as u32;
    let mut words = vec![argsz, flags, index, 0, count];
    // An eventfd is a non-negative `int`; the kernel reads `s32`s.
    words.extend(data.iter().map(|&fd| fd as u32));
    Ok(words)
}

/// `VFIO_DEVICE_SET_IRQS` with the layout built by [`irq_set_words`].
fn set_irqs(device: &File, words: &[u32]) -> io::Result<()> {
    // SAFETY: `words` is a live, 4-byte aligned buffer laid out exactly as `struct vfio_irq_set`
    // (five u32 fields, no padding: asserted above) followed by `count` s32 eventfds, and its
    // argsz word equals its length in bytes; the kernel only reads argsz bytes. The eventfds are
    // borrowed from the caller and open during the call (the kernel takes its own references).
    cvt(unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            VFIO_DEVICE_SET_IRQS as libc::Ioctl,
            words.as_ptr(),
        )
    })
    .map(drop)
}

/// `VFIO_DEVICE_RESET`.
fn device_reset(device: &File) -> io::Result<()> {
    // SAFETY: this ioctl takes no argument.
    cvt(unsafe { libc::ioctl(device.as_raw_fd(), VFIO_DEVICE_RESET as libc::Ioctl) }).map(drop)
}

/// `VFIO_IOMMU_GET_INFO`, re-queried with the size the kernel asks for so that the capability
/// chain (IOVA ranges, DMA mapping limit) is included.
fn iommu_info(container: &File) -> io::Result<IommuInfo> {
    const BASE: usize = std::mem::size_of::<uapi::vfio_iommu_type1_info>();
    let mut argsz = BASE as u32;
    for _ in 0..4 {
        // A u64 buffer gives the 8-byte alignment the structure needs.
        let mut words = vec![0u64; (argsz as usize).div_ceil(8)];
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&argsz.to_ne_bytes());
        words[0] = u64::from_ne_bytes(head);
        // SAFETY: `words` is a live, exclusively borrowed, 8-byte aligned buffer of at least
        // argsz bytes whose first field is argsz; the kernel writes at most argsz bytes.
        cvt(unsafe {
            libc::ioctl(
                container.as_raw_fd(),
                VFIO_IOMMU_GET_INFO as libc::Ioctl,
                words.as_mut_ptr(),
            )
        })?;
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let reported = read_u32(&bytes, 0)?;
        if reported as usize > bytes.len() {
            // The capabilities did not fit: ask again with the size the kernel wants.
            argsz = reported;
            continue;
        }
        return parse_iommu_info(&bytes);
    }
    Err(invalid_data("VFIO_IOMMU_GET_INFO kept growing"))
}

fn read_bytes<const N: usize>(bytes: &[u8], offset: usize) -> io::Result<[u8; N]> {
    offset
        .checked_add(N)
        .and_then(|end| bytes.get(offset..end))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| invalid_data(format!("VFIO info truncated at byte {offset}")))
}

fn read_u16(bytes: &[u8], offset: usize) -> io::Result<u16> {
    read_bytes::<2>(bytes, offset).map(u16::from_ne_bytes)
}

fn read_u32(bytes: &[u8], offset: usize) -> io::Result<u32> {
    read_bytes::<4>(bytes, offset).map(u32::from_ne_bytes)
}

fn read_u64(bytes: &[u8], offset: usize) -> io::Result<u64> {
    read_bytes::<8>(bytes, offset).map(u64::from_ne_bytes)
}

/// Parses a `vfio_iommu_type1_info` and its capability chain from the bytes the kernel filled.
/// Pure, bounds-checked parsing (no pointers), unit-tested with synthetic buffers.
pub fn parse_iommu_info(bytes: &[u8]) -> io::Result<IommuInfo> {
    let flags = read_u32(bytes, 4)?;
    let pgsizes = read_u64(bytes, 8)?;
    let cap_offset = read_u32(bytes, 16)? as usize;
    let alignment = if flags & uapi::VFIO_IOMMU_INFO_PGSIZES != 0 && pgsizes != 0 {
        1u64 << pgsizes.trailing_zeros()
    } else {
        return Err(invalid_data("VFIO did not report the IOMMU page sizes"));
    };
    let mut iova_ranges = None;
    let mut max_mappings = None;
    let mut offset = if flags & uapi::VFIO_IOMMU_INFO_CAPS != 0 {
        cap_offset
    } else {
        0
    };
    let mut hops = 0;
    while offset != 0 {
        hops += 1;
        if hops > 64 {
            return Err(invalid_data("VFIO IOMMU capability chain loops"));
        }
        let id = u32::from(read_u16(bytes, offset)?);
        let next = read_u32(bytes, offset + 4)? as usize;
        if id == uapi::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            let count = read_u32(bytes, offset + 8)? as usize;
            let mut ranges = Vec::with_capacity(count.min(64));
            for i in 0..count {
                let at = offset + 16 + 16 * i;
                let start = read_u64(bytes, at)?;
                // The kernel's `end` is inclusive.
                let last = read_u64(bytes, at + 8)?;
                if last >= start {
                    ranges.push(start..last.saturating_add(1));
                }
            }
            iova_ranges = Some(ranges);
        } else if id == uapi::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL {
            max_mappings = Some(read_u32(bytes, offset + 8)?);
        }
        offset = next;
    }
    let iova_ranges = iova_ranges.ok_or_else(|| {
        invalid_data("VFIO did not report the valid IOVA ranges (Linux 5.4 or later is needed)")
    })?;
    Ok(IommuInfo {
        alignment,
        iova_ranges,
        max_mappings,
    })
}

/// A VFIO container with one group attached and the Type1v2 IOMMU set.
#[derive(Debug)]
pub struct NativeContainer {
    file: File,
    info: IommuInfo,
}

impl NativeContainer {
    /// What the IOMMU accepts.
    pub fn info(&self) -> &IommuInfo {
        &self.info
    }

    /// `VFIO_IOMMU_MAP_DMA` of all of `memory` at `iova`, readable and writable by the device.
    pub fn map(&self, iova: Iova, memory: &DmaMemory) -> io::Result<()> {
        let map = uapi::vfio_iommu_type1_dma_map {
            argsz: std::mem::size_of::<uapi::vfio_iommu_type1_dma_map>() as u32,
            flags: uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE,
            vaddr: memory.as_ptr() as u64,
            iova: iova.0,
            size: memory.len() as u64,
        };
        // SAFETY: `map` is a live `vfio_iommu_type1_dma_map` with argsz = its size, read by the
        // kernel during the call. The mapped host range is exactly a `DmaMemory` mapping: memory
        // no Rust reference ever points into, accessed only by volatile copies, so device writes
        // cannot violate any aliasing assumption. The kernel pins its pages until the unmap:
        // should the memory be dropped while still mapped, `munmap` only removes it from our
        // address space, the pinned pages are never handed to this process again, so the device
        // can reach no memory a Rust object later lives in.
        cvt(unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                VFIO_IOMMU_MAP_DMA as libc::Ioctl,
                &map as *const uapi::vfio_iommu_type1_dma_map,
            )
        })
        .map(drop)
    }

    /// `VFIO_IOMMU_UNMAP_DMA` of exactly `len` bytes at `iova` (one earlier mapping).
    pub fn unmap(&self, iova: Iova, len: usize) -> io::Result<()> {
        let mut unmap = uapi::vfio_iommu_type1_dma_unmap {
            argsz: std::mem::size_of::<uapi::vfio_iommu_type1_dma_unmap>() as u32,
            flags: 0,
            iova: iova.0,
            size: len as u64,
            data: uapi::__IncompleteArrayField::new(),
        };
        // SAFETY: `unmap` is a live, exclusively borrowed `vfio_iommu_type1_dma_unmap` with
        // argsz = its size (no bitmap data follows, flags = 0); the kernel writes back `size`.
        cvt(unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                VFIO_IOMMU_UNMAP_DMA as libc::Ioctl,
                &mut unmap as *mut uapi::vfio_iommu_type1_dma_unmap,
            )
        })?;
        if unmap.size != len as u64 {
            return Err(invalid_data(format!(
                "VFIO unmapped {:#x} bytes at {iova}, expected {len:#x}",
                unmap.size
            )));
        }
        Ok(())
    }
}

/// A device opened with our own ioctls (container, group, device fd).
#[derive(Debug)]
pub struct NativeDevice {
    // Field order is drop order: device fd, then group, then container.
    device: Arc<File>,
    _group: File,
    container: Arc<NativeContainer>,
    flags: u32,
    config: RegionInfo,
    bars: [Option<RegionInfo>; 6],
    msix_count: u32,
}

impl NativeDevice {
    /// Opens group `group` in a new Type1v2 container and gets the device fd for
    /// `device_name` (`"<bdf>"` or `"<bdf> vf_token=<uuid>"`).
    pub fn open(group_number: u32, device_name: &CStr) -> Result<NativeDevice, OpenFailure> {
        let group = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/vfio/{group_number}"))
            .map_err(OpenFailure::at(OpenStep::OpenGroup))?;
        let status = group_status(&group).map_err(OpenFailure::at(OpenStep::GroupStatus))?;
        if status & uapi::VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(OpenFailure {
                step: OpenStep::GroupNotViable,
                source: io::Error::other("group not viable"),
            });
        }

        let container = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/vfio/vfio")
            .map_err(OpenFailure::at(OpenStep::OpenContainer))?;
        let version = get_api_version(&container).map_err(OpenFailure::at(OpenStep::ApiVersion))?;
        if version != uapi::VFIO_API_VERSION as i32 {
            return Err(OpenFailure {
                step: OpenStep::ApiVersion,
                source: io::Error::other(format!("VFIO API version {version}, expected 0")),
            });
        }
        let type1v2 = check_extension(&container, uapi::VFIO_TYPE1v2_IOMMU)
            .map_err(OpenFailure::at(OpenStep::Type1v2))?;
        if type1v2 <= 0 {
            return Err(OpenFailure {
                step: OpenStep::Type1v2,
                source: io::Error::new(io::ErrorKind::Unsupported, "no Type1v2 IOMMU support"),
            });
        }
        group_set_container(&group, &container).map_err(OpenFailure::at(OpenStep::SetContainer))?;
        set_iommu(&container, uapi::VFIO_TYPE1v2_IOMMU)
            .map_err(OpenFailure::at(OpenStep::SetIommu))?;
        let info = iommu_info(&container).map_err(OpenFailure::at(OpenStep::IommuInfo))?;
        let container = Arc::new(NativeContainer {
            file: container,
            info,
        });

        let device = group_get_device_fd(&group, device_name)
            .map_err(OpenFailure::at(OpenStep::GetDeviceFd))?;
        let dev_info = device_info(&device).map_err(OpenFailure::at(OpenStep::DeviceInfo))?;
        if dev_info.flags & uapi::VFIO_DEVICE_FLAGS_PCI == 0
            || dev_info.num_regions <= uapi::VFIO_PCI_CONFIG_REGION_INDEX
        {
            return Err(OpenFailure {
                step: OpenStep::DeviceInfo,
                source: io::Error::new(io::ErrorKind::Unsupported, "not a vfio-pci device"),
            });
        }
        let config = region_info(&device, uapi::VFIO_PCI_CONFIG_REGION_INDEX)
            .map_err(OpenFailure::at(OpenStep::RegionInfo))?;
        if config.size == 0 || !config.readable_writable() {
            return Err(OpenFailure {
                step: OpenStep::RegionInfo,
                source: invalid_data("config space region is not readable and writable"),
            });
        }
        let mut bars = [None; 6];
        for (index, slot) in bars.iter_mut().enumerate() {
            let info = region_info(&device, uapi::VFIO_PCI_BAR0_REGION_INDEX + index as u32)
                .map_err(OpenFailure::at(OpenStep::RegionInfo))?;
            if info.size != 0 {
                *slot = Some(info);
            }
        }
        let msix_count = if dev_info.num_irqs > uapi::VFIO_PCI_MSIX_IRQ_INDEX {
            irq_count(&device, uapi::VFIO_PCI_MSIX_IRQ_INDEX)
                .map_err(OpenFailure::at(OpenStep::IrqInfo))?
        } else {
            0
        };
        Ok(NativeDevice {
            device: Arc::new(device),
            _group: group,
            container,
            flags: dev_info.flags,
            config,
            bars,
            msix_count,
        })
    }

    /// The container (IOMMU) the device is in.
    pub fn container(&self) -> Arc<NativeContainer> {
        Arc::clone(&self.container)
    }

    /// Size of the config space region.
    pub fn config_len(&self) -> u64 {
        self.config.size
    }

    fn config_position(&self, offset: u64, len: usize) -> io::Result<u64> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > self.config.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "config access out of range",
            ));
        }
        self.config
            .offset
            .checked_add(offset)
            .ok_or_else(|| invalid_data("config region offset overflows"))
    }

    /// Reads config space (vfio-pci virtualises and filters it).
    pub fn config_read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = self.config_position(offset, buf.len())?;
        self.device.read_exact_at(buf, at)
    }

    /// Writes config space with one access of `data.len()` bytes.
    pub fn config_write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let at = self.config_position(offset, data.len())?;
        self.device.write_all_at(data, at)
    }

    /// Length of BAR `index`, if it exists.
    pub fn bar_len(&self, index: usize) -> Option<u64> {
        self.bars.get(index).copied().flatten().map(|b| b.size)
    }

    /// Maps BAR `index` (it must exist and allow mmap).
    pub fn map_bar(&self, index: usize) -> io::Result<MmioRegion> {
        let bar = self.bars.get(index).copied().flatten().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("BAR {index} does not exist"),
            )
        })?;
        if bar.flags & uapi::VFIO_REGION_INFO_FLAG_MMAP == 0 || !bar.readable_writable() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("BAR {index} cannot be mapped read/write"),
            ));
        }
        let len = usize::try_from(bar.size)
            .map_err(|_| io::Error::new(io::ErrorKind::Unsupported, "BAR larger than usize"))?;
        MmioRegion::map_device_region(Arc::clone(&self.device), bar.offset, len)
    }

    /// MSI-X vectors the device has.
    pub fn msix_max(&self) -> usize {
        self.msix_count as usize
    }

    /// Routes MSI-X vectors `0..fds.len()` to `fds`.
    pub fn msix_enable(&self, fds: &[RawFd]) -> io::Result<()> {
        if fds.len() > self.msix_count as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "too many MSI-X vectors",
            ));
        }
        let words = irq_set_words(
            uapi::VFIO_IRQ_SET_DATA_EVENTFD | uapi::VFIO_IRQ_SET_ACTION_TRIGGER,
            uapi::VFIO_PCI_MSIX_IRQ_INDEX,
            fds,
        )?;
        set_irqs(&self.device, &words)
    }

    /// Disables MSI-X.
    pub fn msix_disable(&self) -> io::Result<()> {
        let words = irq_set_words(
            uapi::VFIO_IRQ_SET_DATA_NONE | uapi::VFIO_IRQ_SET_ACTION_TRIGGER,
            uapi::VFIO_PCI_MSIX_IRQ_INDEX,
            &[],
        )?;
        set_irqs(&self.device, &words)
    }

    /// Function-level reset (`VFIO_DEVICE_RESET`), if the device supports it.
    pub fn reset(&self) -> io::Result<()> {
        if self.flags & uapi::VFIO_DEVICE_FLAGS_RESET == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "VFIO reports no reset method for this device",
            ));
        }
        device_reset(&self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of `linux/vfio.h` on architectures with the generic ioctl encoding.
    #[test]
    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64"
    ))]
    fn ioctl_numbers_match_the_kernel() {
        assert_eq!(uapi::VFIO_TYPE, b';');
        assert_eq!(uapi::VFIO_BASE, 100);
        assert_eq!(VFIO_GET_API_VERSION, 0x3B64);
        assert_eq!(VFIO_CHECK_EXTENSION, 0x3B65);
        assert_eq!(VFIO_SET_IOMMU, 0x3B66);
        assert_eq!(VFIO_GROUP_GET_STATUS, 0x3B67);
        assert_eq!(VFIO_GROUP_SET_CONTAINER, 0x3B68);
        assert_eq!(vfio_io(5), 0x3B69); // VFIO_GROUP_UNSET_CONTAINER (unused)
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3B6A);
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3B6B);
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3B6C);
        assert_eq!(VFIO_DEVICE_GET_IRQ_INFO, 0x3B6D);
        assert_eq!(VFIO_DEVICE_SET_IRQS, 0x3B6E);
        assert_eq!(VFIO_DEVICE_RESET, 0x3B6F);
        assert_eq!(VFIO_IOMMU_GET_INFO, 0x3B70);
        assert_eq!(VFIO_IOMMU_MAP_DMA, 0x3B71);
        assert_eq!(VFIO_IOMMU_UNMAP_DMA, 0x3B72);
    }

    #[test]
    fn uapi_layouts_are_what_the_ioctls_assume() {
        use std::mem::size_of;
        assert_eq!(size_of::<uapi::vfio_group_status>(), 8);
        assert_eq!(size_of::<uapi::vfio_device_info>(), 24);
        assert_eq!(size_of::<uapi::vfio_region_info>(), 32);
        assert_eq!(size_of::<uapi::vfio_irq_info>(), 16);
        assert_eq!(size_of::<uapi::vfio_irq_set>(), 20);
        assert_eq!(size_of::<uapi::vfio_iommu_type1_info>(), 24);
        assert_eq!(size_of::<uapi::vfio_iommu_type1_dma_map>(), 32);
        assert_eq!(size_of::<uapi::vfio_iommu_type1_dma_unmap>(), 24);
        assert_eq!(uapi::VFIO_PCI_CONFIG_REGION_INDEX, 7);
        assert_eq!(uapi::VFIO_PCI_MSIX_IRQ_INDEX, 2);
        assert_eq!(uapi::VFIO_TYPE1v2_IOMMU, 3);
    }

    #[test]
    fn irq_set_layout() {
        let w = irq_set_words(0x24, 2, &[7, 9, 11]).unwrap();
        assert_eq!(w, vec![32, 0x24, 2, 0, 3, 7, 9, 11]);
        let w = irq_set_words(0x21, 2, &[]).unwrap();
        assert_eq!(w, vec![20, 0x21, 2, 0, 0]);
    }

    /// Builds the bytes the kernel would write for `VFIO_IOMMU_GET_INFO`.
    fn info_bytes(flags: u32, pgsizes: u64, caps: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![0u8; 24];
        b[4..8].copy_from_slice(&flags.to_ne_bytes());
        b[8..16].copy_from_slice(&pgsizes.to_ne_bytes());
        if !caps.is_empty() {
            b[16..20].copy_from_slice(&24u32.to_ne_bytes());
        }
        for (i, (id, body)) in caps.iter().enumerate() {
            let start = b.len();
            let next = if i + 1 == caps.len() {
                0
            } else {
                start + 8 + body.len()
            };
            b.extend_from_slice(&id.to_ne_bytes());
            b.extend_from_slice(&1u16.to_ne_bytes());
            b.extend_from_slice(&(next as u32).to_ne_bytes());
            b.extend_from_slice(body);
        }
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b
    }

    fn iova_cap(ranges: &[(u64, u64)]) -> (u16, Vec<u8>) {
        let mut body = Vec::new();
        body.extend_from_slice(&(ranges.len() as u32).to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        for (s, e) in ranges {
            body.extend_from_slice(&s.to_ne_bytes());
            body.extend_from_slice(&e.to_ne_bytes());
        }
        (uapi::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16, body)
    }

    fn dma_avail_cap(n: u32) -> (u16, Vec<u8>) {
        (
            uapi::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL as u16,
            n.to_ne_bytes().to_vec(),
        )
    }

    #[test]
    fn iommu_info_is_parsed_with_inclusive_ends() {
        let flags = uapi::VFIO_IOMMU_INFO_PGSIZES | uapi::VFIO_IOMMU_INFO_CAPS;
        let bytes = info_bytes(
            flags,
            0x4020_1000, // 4 KiB | 2 MiB | 1 GiB
            &[
                iova_cap(&[
                    (0, 0xfedf_ffff),
                    (0xfef0_0000, 0x7f_ffff_ffff),
                    (5, u64::MAX),
                ]),
                dma_avail_cap(65535),
            ],
        );
        let info = parse_iommu_info(&bytes).unwrap();
        assert_eq!(info.alignment, 0x1000);
        assert_eq!(
            info.iova_ranges,
            vec![0..0xfee0_0000, 0xfef0_0000..0x80_0000_0000, 5..u64::MAX]
        );
        assert_eq!(info.max_mappings, Some(65535));
    }

    #[test]
    fn malformed_iommu_info_is_an_error_not_a_panic() {
        let flags = uapi::VFIO_IOMMU_INFO_PGSIZES | uapi::VFIO_IOMMU_INFO_CAPS;
        // No page sizes.
        assert!(parse_iommu_info(&info_bytes(uapi::VFIO_IOMMU_INFO_CAPS, 0, &[])).is_err());
        // No IOVA range capability.
        assert!(parse_iommu_info(&info_bytes(flags, 0x1000, &[dma_avail_cap(1)])).is_err());
        // A range count that runs past the buffer.
        let mut bytes = info_bytes(flags, 0x1000, &[iova_cap(&[(0, 0xffff)])]);
        bytes[24 + 8..24 + 12].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_iommu_info(&bytes).is_err());
        // A chain that points to itself.
        let mut bytes = info_bytes(flags, 0x1000, &[dma_avail_cap(1)]);
        bytes[24 + 4..24 + 8].copy_from_slice(&24u32.to_ne_bytes());
        assert!(parse_iommu_info(&bytes).is_err());
        // A capability offset past the end.
        let mut bytes = info_bytes(flags, 0x1000, &[]);
        bytes[16..20].copy_from_slice(&4096u32.to_ne_bytes());
        assert!(parse_iommu_info(&bytes).is_err());
        // Truncated header.
        assert!(parse_iommu_info(&[0u8; 10]).is_err());
    }

    #[test]
    fn opening_a_missing_group_fails_at_the_first_step() {
        let name = c"0000:ff:1f.7";
        match NativeDevice::open(u32::MAX, name) {
            Err(f) => {
                assert_eq!(f.step, OpenStep::OpenGroup);
                assert_eq!(f.source.kind(), io::ErrorKind::NotFound);
            }
            Ok(_) => panic!("group 4294967295 cannot exist"),
        }
    }
}

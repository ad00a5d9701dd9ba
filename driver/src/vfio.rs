//! The Linux VFIO backend: a vfio-pci function's config space, BARs, DMA memory and MSI-X vectors.
//!
//! [`VfioDevice::open`] checks the host first (the device exists, has an IOMMU group, is bound
//! to vfio-pci, whether a VF token is needed) so that each misconfiguration has its own
//! [`VfioError`] saying what to do, then opens the device in a new legacy VFIO container with
//! the Type1v2 IOMMU — through `pci-driver`, or through our own ioctls when a VF token must be
//! passed — and enables memory decoding and bus mastering by writing the Command register raw.
//!
//! From a [`VfioDevice`]:
//!
//! * [`VfioDevice::bar0`] → [`VfioBar`], the driver's [`RegisterIo`]: 32-bit volatile MMIO;
//!   a misaligned or out-of-range offset never panics — reads return `0xFFFF_FFFF` (what a PCI
//!   master-abort returns), writes are dropped, and both are counted.
//! * [`VfioDevice::dma`] → [`VfioDma`], the driver's [`DmaAllocator`]: locked anonymous
//!   memory (2 MiB huge pages when available) at an IOVA from our [`IovaAllocator`], mapped in
//!   the container's IOMMU; a [`VfioDmaRegion`] unmaps and frees on drop.
//! * [`VfioDevice::enable_msix`] → [`MsixInterrupts`]: one eventfd per vector, waited on with a
//!   timeout.
//! * [`VfioDevice::read_config`] / [`VfioDevice::ids`] for diagnostics, [`VfioDevice::reset`]
//!   for a function-level reset.
//!
//! Everything below the four seam traits ([`MmioWindow`], [`HostMemory`], [`IommuMapper`],
//! [`DeviceAccess`]) lives in the private `sys` module, the crate's only unsafe code; the
//! [`testing`] module has in-memory twins of them so all the logic here is tested without a
//! device. Host requirements and the unsafe inventory: `docs/vfio.md`.
//!
//! ```no_run
//! use hac_driver::vfio::VfioDevice;
//! use hac_driver::{DmaAllocator, RegisterIo};
//! use igb_hw::RegisterOffset;
//!
//! let dev = VfioDevice::open("0000:01:10.0", None)?;
//! let ids = dev.ids()?;
//! assert!(ids.is_igb_vf());
//! let bar0 = dev.bar0()?;
//! let status = bar0.read32(RegisterOffset(0x0008));
//! let ring = dev.dma().allocate(4096)?;
//! let irqs = dev.enable_msix(3)?;
//! let fired = irqs.wait(std::time::Duration::from_millis(10))?;
//! # let _ = (status, ring, fired);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::CString;
use std::fmt;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use igb_hw::pci::{self, command, header};
use igb_hw::{Iova, RegisterOffset};

use crate::backend::{DmaAllocator, DmaError, DmaRegion, RegisterIo};
use crate::iova::{IovaAllocator, IovaError};
use crate::sys::eventfd::poll_readable;
use crate::sys::vfio::{OpenFailure, OpenStep};

pub use crate::sys::dma::DmaMemory;
pub use crate::sys::eventfd::EventFd;
pub use crate::sys::fake as testing;
pub use crate::sys::host::{HostDevice, HostIommu};
pub use crate::sys::mmio::MmioRegion;

/// Size of a 2 MiB huge page: IOVAs of huge-page memory are aligned to it so the IOMMU can use
/// 2 MiB pages too.
pub const HUGE_PAGE: u64 = 2 << 20;

/// Most MSI-X vectors [`VfioDevice::enable_msix`] routes (a 64-bit mask reports them).
pub const MAX_MSIX_VECTORS: usize = 64;

/// What a BAR read returns when the access is refused (all ones, as a PCI master-abort).
pub const BAD_READ: u32 = 0xFFFF_FFFF;

// ---------------------------------------------------------------------------------------------
// Seams: what the VFIO logic needs from the system, implemented by `sys` and by `testing`.
// ---------------------------------------------------------------------------------------------

/// A refused BAR access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BarAccessError {
    /// The offset is not a multiple of 4.
    #[error("BAR offset {offset:#x} is not 4-byte aligned")]
    Misaligned {
        /// The offset.
        offset: usize,
    },
    /// Some of the 4 bytes lie outside the BAR.
    #[error("BAR offset {offset:#x} is outside the {len:#x}-byte BAR")]
    OutOfRange {
        /// The offset.
        offset: usize,
        /// The BAR's length.
        len: usize,
    },
}

/// Accepts `offset` for a 4-byte access to a BAR of `len` bytes: aligned and entirely inside.
pub(crate) fn check_bar_offset(offset: usize, len: usize) -> Result<(), BarAccessError> {
    if offset & 3 != 0 {
        return Err(BarAccessError::Misaligned { offset });
    }
    match offset.checked_add(4) {
        Some(end) if end <= len => Ok(()),
        _ => Err(BarAccessError::OutOfRange { offset, len }),
    }
}

/// A mapped BAR: 32-bit accesses at checked offsets.
pub trait MmioWindow: Send + Sync {
    /// Length in bytes.
    fn len(&self) -> usize;
    /// True for a zero-length window.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads the little-endian word at `offset` (4-byte aligned, inside the BAR).
    fn read32(&self, offset: usize) -> Result<u32, BarAccessError>;
    /// Writes the little-endian word at `offset` (4-byte aligned, inside the BAR).
    fn write32(&self, offset: usize, value: u32) -> Result<(), BarAccessError>;
}

/// Host memory that can be mapped for DMA: accessed only by copying, never by reference.
pub trait HostMemory: Send + Sized {
    /// At least `len > 0` bytes, zeroed, aligned to `align` (a power of two) with a length that
    /// is a multiple of it.
    fn allocate(len: usize, align: usize) -> io::Result<Self>;
    /// Length in bytes (what is mapped).
    fn len(&self) -> usize;
    /// True for zero bytes (never, for allocated memory).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether it is backed by 2 MiB huge pages.
    fn huge_pages(&self) -> bool;
    /// Copies `buf.len()` bytes at `offset` into `buf`; false (and nothing read) if the range is
    /// not entirely inside.
    fn read(&self, offset: usize, buf: &mut [u8]) -> bool;
    /// Copies `data` to `offset`; false (and nothing written) if the range is not entirely
    /// inside.
    fn write(&self, offset: usize, data: &[u8]) -> bool;
}

/// The IOMMU of a VFIO container.
pub trait IommuMapper: Send + Sync {
    /// The memory it maps.
    type Memory: HostMemory;
    /// Minimum IOVA alignment and length granularity (smallest IOMMU page size).
    fn alignment(&self) -> u64;
    /// Valid IOVA windows, half-open.
    fn valid_iova_ranges(&self) -> Vec<Range<u64>>;
    /// How many mappings may exist at once, if known.
    fn max_mappings(&self) -> Option<u32>;
    /// Maps all of `memory` at `iova`, readable and writable by the device.
    fn map(&self, iova: Iova, memory: &Self::Memory) -> io::Result<()>;
    /// Removes exactly one earlier mapping.
    fn unmap(&self, iova: Iova, len: usize) -> io::Result<()>;
}

/// One opened vfio-pci function.
pub trait DeviceAccess: Send + Sync {
    /// A mapped BAR.
    type Window: MmioWindow;
    /// The IOMMU of its container.
    type Mapper: IommuMapper;
    /// Size of config space.
    fn config_len(&self) -> u64;
    /// Reads config space.
    fn config_read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes config space with one access of `data.len()` bytes when it is 1, 2 or 4.
    fn config_write(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Length of BAR `index`, `None` if absent.
    fn bar_len(&self, index: usize) -> Option<u64>;
    /// Maps BAR `index`.
    fn map_bar(&self, index: usize) -> io::Result<Self::Window>;
    /// The IOMMU (shared: DMA regions keep it alive).
    fn iommu(&self) -> Arc<Self::Mapper>;
    /// MSI-X vectors the device has.
    fn msix_max(&self) -> usize;
    /// Routes MSI-X vectors `0..vectors.len()` to these eventfds.
    fn msix_enable(&self, vectors: &[Arc<EventFd>]) -> io::Result<()>;
    /// Disables MSI-X.
    fn msix_disable(&self) -> io::Result<()>;
    /// Function-level reset.
    fn reset(&self) -> io::Result<()>;
}

// ---------------------------------------------------------------------------------------------
// Addresses and errors.
// ---------------------------------------------------------------------------------------------

/// A PCI function address, `DDDD:BB:DD.F` (domain, bus, device, function), as sysfs names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

/// A PCI address that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid PCI address {input:?}: {reason} (expected DDDD:BB:DD.F, e.g. 0000:01:10.0)")]
pub struct BdfError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn hex_field(s: &str, max_digits: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl Bdf {
    /// A function address; `None` if `device > 31` or `function > 7`.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Bdf> {
        (device < 32 && function < 8).then_some(Bdf {
            domain,
            bus,
            device,
            function,
        })
    }

    /// Parses `DDDD:BB:DD.F` or `BB:DD.F` (domain 0), hexadecimal, either case.
    pub fn parse(input: &str) -> Result<Bdf, BdfError> {
        let err = |reason| BdfError {
            input: input.to_owned(),
            reason,
        };
        let parts: Vec<&str> = input.split(':').collect();
        let (domain, bus, devfn) = match parts.as_slice() {
            [d, b, df] => (*d, *b, *df),
            [b, df] => ("0", *b, *df),
            _ => return Err(err("expected two or three ':'-separated fields")),
        };
        let domain = hex_field(domain, 8).ok_or_else(|| err("domain is not 1 to 8 hex digits"))?;
        let bus = hex_field(bus, 2).ok_or_else(|| err("bus is not 1 or 2 hex digits"))? as u8;
        let (device, function) = devfn.split_once('.').ok_or_else(|| err("missing '.F'"))?;
        let device = hex_field(device, 2).ok_or_else(|| err("device is not 1 or 2 hex digits"))?;
        if device > 0x1f {
            return Err(err("device number above 0x1f"));
        }
        let function = hex_field(function, 1).ok_or_else(|| err("function is not one digit"))?;
        if function > 7 {
            return Err(err("function number above 7"));
        }
        Ok(Bdf {
            domain,
            bus,
            device: device as u8,
            function: function as u8,
        })
    }

    /// PCI domain (segment).
    pub fn domain(&self) -> u32 {
        self.domain
    }
    /// Bus number.
    pub fn bus(&self) -> u8 {
        self.bus
    }
    /// Device number (0..=31).
    pub fn device(&self) -> u8 {
        self.device
    }
    /// Function number (0..=7).
    pub fn function(&self) -> u8 {
        self.function
    }
}

impl FromStr for Bdf {
    type Err = BdfError;
    fn from_str(s: &str) -> Result<Bdf, BdfError> {
        Bdf::parse(s)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// Checks that a VF token is a UUID (`8-4-4-4-12` hex digits), as the kernel's `uuid_parse`
/// requires.
fn check_vf_token(token: &str) -> Result<(), VfioError> {
    let bad = |reason| Err(VfioError::InvalidVfToken { reason });
    if token.len() != 36 {
        return bad("not 36 characters long");
    }
    for (i, b) in token.bytes().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash && b != b'-' {
            return bad("'-' expected at positions 8, 13, 18 and 23");
        }
        if !dash && !b.is_ascii_hexdigit() {
            return bad("non-hexadecimal character");
        }
    }
    Ok(())
}

fn vf_of_vfio_pf(pf: &str) -> String {
    format!("it is a VF of {pf}, which is bound to vfio-pci")
}

fn describe_driver(driver: &Option<String>) -> String {
    match driver {
        Some(d) => format!("bound to {d}"),
        None => "bound to no driver".to_owned(),
    }
}

/// Why the VFIO backend failed. Host-setup variants say how to fix the host.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// The PCI address is malformed.
    #[error(transparent)]
    InvalidBdf(#[from] BdfError),
    /// The VF token is not a UUID (the value is not echoed: it is a shared secret).
    #[error(
        "invalid VF token: {reason} (expected a UUID such as \
         2ab74924-c335-45f4-9b16-8569e5b08258; the value is not shown because it is a secret)"
    )]
    InvalidVfToken {
        /// What is wrong.
        reason: &'static str,
    },
    /// No such PCI device.
    #[error("no PCI device {bdf}: {} does not exist (list devices with `lspci -D`)", .path.display())]
    DeviceNotFound {
        /// The address.
        bdf: Bdf,
        /// The sysfs path looked at.
        path: PathBuf,
    },
    /// The device has no IOMMU group: the IOMMU is off or absent.
    #[error(
        "{bdf} has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on on the \
         kernel command line; in a QEMU guest add `-device intel-iommu,intremap=on,caching-mode=on` \
         with `-machine q35,kernel-irqchip=split`); VFIO no-IOMMU mode is not supported"
    )]
    NoIommuGroup {
        /// The address.
        bdf: Bdf,
    },
    /// The device is not bound to vfio-pci.
    #[error(
        "{bdf} is {}, not vfio-pci: `modprobe vfio-pci; \
         echo vfio-pci > /sys/bus/pci/devices/{bdf}/driver_override; \
         echo {bdf} > /sys/bus/pci/devices/{bdf}/driver/unbind` (if bound); \
         `echo {bdf} > /sys/bus/pci/drivers_probe`",
        describe_driver(.driver)
    )]
    NotBoundToVfio {
        /// The address.
        bdf: Bdf,
        /// The driver it is bound to, if any.
        driver: Option<String>,
    },
    /// The group exists only as a no-IOMMU group.
    #[error(
        "{bdf} is in VFIO no-IOMMU group noiommu-{group}: not supported (no DMA isolation and no \
         IOVA translation); enable a real IOMMU and unset vfio.enable_unsafe_noiommu_mode"
    )]
    NoIommuModeUnsupported {
        /// The address.
        bdf: Bdf,
        /// The group number.
        group: u32,
    },
    /// A VFIO device node is missing.
    #[error(
        "{} does not exist: load vfio-pci (`modprobe vfio-pci`) and make /dev/vfio visible (in \
         a container, pass /dev/vfio through)",
        .path.display()
    )]
    VfioNodeMissing {
        /// The node.
        path: PathBuf,
    },
    /// Not allowed to open a VFIO node.
    #[error(
        "permission denied on {}: {source}; run as root, or give your user the group node \
         (`chown $USER {}`) and a locked-memory limit (`ulimit -l`) covering the DMA memory",
        .path.display(), .path.display()
    )]
    PermissionDenied {
        /// The node.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The group is already open elsewhere.
    #[error(
        "VFIO group {group} is busy: another process (QEMU, DPDK, another instance) or another \
         VfioDevice in this process holds {}",
        .path.display()
    )]
    GroupBusy {
        /// The group number.
        group: u32,
        /// Its node.
        path: PathBuf,
    },
    /// Some device in the group is bound to a host driver.
    #[error(
        "VFIO group {group} is not viable: every device in it must be bound to vfio-pci (or be \
         unbound); bound elsewhere: {}",
        if .blockers.is_empty() { "none found in sysfs".to_owned() } else { .blockers.join(", ") }
    )]
    GroupNotViable {
        /// The group number.
        group: u32,
        /// `"<bdf> (<driver>)"` of each device that prevents it.
        blockers: Vec<String>,
    },
    /// The device needs a VF token: a VF whose PF is bound to vfio-pci, or such a PF whose VFs
    /// are in use.
    #[error(
        "{bdf} needs a VF token: {reason}; pass the UUID that the PF's user set \
         (vfio-pci.vf_token / VFIO_DEVICE_FEATURE_PCI_VF_TOKEN)"
    )]
    VfTokenRequired {
        /// The device.
        bdf: Bdf,
        /// Why.
        reason: String,
    },
    /// The kernel refused the VF token.
    #[error(
        "the kernel rejected the VF token for {bdf}: it differs from the one the PF's user set"
    )]
    VfTokenRejected {
        /// The VF.
        bdf: Bdf,
    },
    /// A VF token was given where none is used.
    #[error("a VF token was given for {bdf}, but {reason}; omit it")]
    VfTokenUnexpected {
        /// The device.
        bdf: Bdf,
        /// Why none is used.
        reason: String,
    },
    /// Another step of opening the device failed.
    #[error("opening {bdf} through VFIO failed at {step}: {source}")]
    Open {
        /// The device.
        bdf: Bdf,
        /// The step.
        step: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The IOMMU reports no usable IOVA space.
    #[error("unusable IOMMU IOVA space: {0}")]
    Iova(#[from] IovaError),
    /// A config space access outside config space.
    #[error("config access of {len} bytes at {offset:#x} is outside the {size}-byte config space")]
    ConfigOutOfRange {
        /// Offset.
        offset: u64,
        /// Bytes.
        len: usize,
        /// Config space size.
        size: u64,
    },
    /// A config space access failed.
    #[error("config access of {len} bytes at {offset:#x} failed: {source}")]
    Config {
        /// Offset.
        offset: u64,
        /// Bytes.
        len: usize,
        /// The OS error.
        source: io::Error,
    },
    /// Bus mastering could not be enabled.
    #[error("bus mastering did not stick: wrote Command {wrote:#06x}, read back {read:#06x}")]
    CommandNotAccepted {
        /// Value written.
        wrote: u16,
        /// Value read back.
        read: u16,
    },
    /// The BAR does not exist.
    #[error("BAR {index} does not exist on this function")]
    BarMissing {
        /// BAR number.
        index: usize,
    },
    /// The BAR could not be mapped.
    #[error("cannot map BAR {index}: {source}")]
    Bar {
        /// BAR number.
        index: usize,
        /// The OS error.
        source: io::Error,
    },
    /// An MSI-X vector count of zero or above what the device (or [`MAX_MSIX_VECTORS`]) allows.
    #[error("cannot enable {requested} MSI-X vectors: 1..={max} allowed")]
    InvalidVectorCount {
        /// Vectors asked for.
        requested: usize,
        /// Most allowed.
        max: usize,
    },
    /// MSI-X is already enabled through another [`MsixInterrupts`].
    #[error("MSI-X is already enabled on this device (drop the other MsixInterrupts first)")]
    MsixAlreadyEnabled,
    /// An interrupt operation failed.
    #[error("MSI-X {op} failed: {source}")]
    Interrupt {
        /// What was done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The reset failed.
    #[error(
        "function-level reset failed: {source} (VFIO_DEVICE_RESET needs FLR, or a reset that \
         affects no other device)"
    )]
    Reset {
        /// The OS error.
        source: io::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// Host checks before opening.
// ---------------------------------------------------------------------------------------------

/// Where sysfs and `/dev` are (tests point this at a fake tree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPaths {
    /// sysfs mount point (`/sys`).
    pub sysfs: PathBuf,
    /// devtmpfs mount point (`/dev`).
    pub dev: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            sysfs: PathBuf::from("/sys"),
            dev: PathBuf::from("/dev"),
        }
    }
}

/// The SR-IOV role of a function, as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SriovRole {
    /// Neither a PF nor a VF.
    Plain,
    /// A physical function with the SR-IOV capability.
    Pf,
    /// A virtual function.
    Vf {
        /// Its PF's address.
        pf: String,
        /// The driver the PF is bound to.
        pf_driver: Option<String>,
    },
}

/// What [`HostPaths::probe`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostProbe {
    /// IOMMU group number.
    pub group: u32,
    /// `/dev/vfio/<group>`.
    pub group_node: PathBuf,
    /// The driver the device is bound to (a vfio-pci driver).
    pub driver: String,
    /// SR-IOV role.
    pub role: SriovRole,
}

/// The last path component of the target of symlink `link`, if it is one.
fn link_name(link: &Path) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    target.file_name()?.to_str().map(str::to_owned)
}

/// vfio-pci or a vendor variant of it (`mlx5_vfio_pci`, ...).
fn is_vfio_driver(name: &str) -> bool {
    name == "vfio-pci" || name.ends_with("_vfio_pci")
}

impl HostPaths {
    /// `<sysfs>/bus/pci/devices/<bdf>`.
    pub fn device_dir(&self, bdf: &Bdf) -> PathBuf {
        self.sysfs.join("bus/pci/devices").join(bdf.to_string())
    }

    /// Checks what opening `bdf` needs, in the order that finds the root cause first: the
    /// device exists, it has an IOMMU group, it is bound to vfio-pci, the group node exists (and
    /// is not a no-IOMMU one), and a VF token is given exactly when one is used.
    pub fn probe(&self, bdf: &Bdf, vf_token_given: bool) -> Result<HostProbe, VfioError> {
        let dir = self.device_dir(bdf);
        if !dir.exists() {
            return Err(VfioError::DeviceNotFound {
                bdf: *bdf,
                path: dir,
            });
        }
        let group_name =
            link_name(&dir.join("iommu_group")).ok_or(VfioError::NoIommuGroup { bdf: *bdf })?;
        let group: u32 = group_name.parse().map_err(|_| VfioError::Open {
            bdf: *bdf,
            step: "reading the IOMMU group",
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("IOMMU group name {group_name:?} is not a number"),
            ),
        })?;
        let driver = link_name(&dir.join("driver"));
        let driver = match driver {
            Some(d) if is_vfio_driver(&d) => d,
            other => {
                return Err(VfioError::NotBoundToVfio {
                    bdf: *bdf,
                    driver: other,
                });
            }
        };
        let vfio_dir = self.dev.join("vfio");
        let group_node = vfio_dir.join(group.to_string());
        if !group_node.exists() {
            if vfio_dir.join(format!("noiommu-{group}")).exists() {
                return Err(VfioError::NoIommuModeUnsupported { bdf: *bdf, group });
            }
            return Err(VfioError::VfioNodeMissing { path: group_node });
        }
        let role = if let Some(pf) = link_name(&dir.join("physfn")) {
            SriovRole::Vf {
                pf_driver: link_name(&dir.join("physfn/driver")),
                pf,
            }
        } else if dir.join("sriov_totalvfs").exists() {
            SriovRole::Pf
        } else {
            SriovRole::Plain
        };
        match (&role, vf_token_given) {
            (
                SriovRole::Vf {
                    pf,
                    pf_driver: Some(d),
                },
                false,
            ) if is_vfio_driver(d) => {
                return Err(VfioError::VfTokenRequired {
                    bdf: *bdf,
                    reason: vf_of_vfio_pf(pf),
                });
            }
            (SriovRole::Vf { pf, pf_driver }, true)
                if !pf_driver.as_deref().is_some_and(is_vfio_driver) =>
            {
                return Err(VfioError::VfTokenUnexpected {
                    bdf: *bdf,
                    reason: format!(
                        "its PF {pf} is {}, not vfio-pci",
                        describe_driver(pf_driver)
                    ),
                });
            }
            (SriovRole::Plain, true) => {
                return Err(VfioError::VfTokenUnexpected {
                    bdf: *bdf,
                    reason: "it is neither an SR-IOV PF nor a VF".to_owned(),
                });
            }
            _ => {}
        }
        Ok(HostProbe {
            group,
            group_node,
            driver,
            role,
        })
    }

    /// `"<bdf> (<driver>)"` for each device of IOMMU group `group` bound to a driver that makes
    /// the group non-viable (anything but a vfio-pci driver, pci-stub or pcieport).
    pub fn group_blockers(&self, group: u32) -> Vec<String> {
        let dir = self
            .sysfs
            .join("kernel/iommu_groups")
            .join(group.to_string())
            .join("devices");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut blockers: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let driver = link_name(&e.path().join("driver"))?;
                let allowed =
                    is_vfio_driver(&driver) || driver == "pci-stub" || driver == "pcieport";
                (!allowed).then(|| format!("{name} ({driver})"))
            })
            .collect();
        blockers.sort();
        blockers
    }

    /// Turns a failed open into the error that says what to do.
    fn classify(
        &self,
        bdf: &Bdf,
        probe: &HostProbe,
        vf_token_given: bool,
        failure: OpenFailure,
    ) -> VfioError {
        let OpenFailure { step, source } = failure;
        let errno = source.raw_os_error();
        let not_viable = step == OpenStep::GroupNotViable
            || (step == OpenStep::PciDriver && source.to_string().contains("not viable"));
        if not_viable {
            return VfioError::GroupNotViable {
                group: probe.group,
                blockers: self.group_blockers(probe.group),
            };
        }
        let container_node = self.dev.join("vfio/vfio");
        match (step, errno) {
            (OpenStep::OpenGroup | OpenStep::PciDriver, Some(libc::EBUSY)) => {
                VfioError::GroupBusy {
                    group: probe.group,
                    path: probe.group_node.clone(),
                }
            }
            // pci-driver does not say which step failed: on a PF bound to vfio-pci whose VFs are
            // in use, EACCES is the missing token (the group node was found accessible enough to
            // exist; a permission problem is mentioned too).
            (OpenStep::PciDriver, Some(libc::EACCES)) if probe.role == SriovRole::Pf => {
                VfioError::VfTokenRequired {
                    bdf: *bdf,
                    reason: format!(
                        "the kernel refused the device (EACCES): a PF on vfio-pci whose VFs are \
                         in use needs the token; if you are not root, check access to {} too",
                        probe.group_node.display()
                    ),
                }
            }
            (OpenStep::OpenGroup | OpenStep::PciDriver, Some(libc::EACCES | libc::EPERM)) => {
                VfioError::PermissionDenied {
                    path: probe.group_node.clone(),
                    source,
                }
            }
            (OpenStep::OpenContainer, Some(libc::EACCES | libc::EPERM)) => {
                VfioError::PermissionDenied {
                    path: container_node,
                    source,
                }
            }
            (OpenStep::OpenGroup, Some(libc::ENOENT)) => VfioError::VfioNodeMissing {
                path: probe.group_node.clone(),
            },
            (OpenStep::OpenContainer, Some(libc::ENOENT)) => VfioError::VfioNodeMissing {
                path: container_node,
            },
            (OpenStep::GetDeviceFd, Some(libc::EACCES)) if vf_token_given => {
                VfioError::VfTokenRejected { bdf: *bdf }
            }
            (OpenStep::GetDeviceFd, Some(libc::EACCES)) => VfioError::VfTokenRequired {
                bdf: *bdf,
                reason: match &probe.role {
                    SriovRole::Vf { pf, .. } => vf_of_vfio_pf(pf),
                    _ => "the kernel asks for one (its VFs are in use through vfio-pci)".to_owned(),
                },
            },
            (OpenStep::GetDeviceFd, Some(libc::EINVAL)) if vf_token_given => {
                VfioError::VfTokenUnexpected {
                    bdf: *bdf,
                    reason: "the kernel refused it (the PF is not bound to vfio-pci)".to_owned(),
                }
            }
            _ => VfioError::Open {
                bdf: *bdf,
                step: step.describe(),
                source,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The device.
// ---------------------------------------------------------------------------------------------

/// Vendor and device id from config space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PciIds {
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
}

impl PciIds {
    /// An 82576 VF (8086:10CA) or an I350 VF (8086:1520): the igbvf register interface.
    pub fn is_igb_vf(&self) -> bool {
        self.vendor == pci::VENDOR_INTEL
            && (self.device == pci::DEVICE_82576_VF || self.device == pci::DEVICE_I350_VF)
    }
}

impl fmt::Display for PciIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)
    }
}

/// An opened vfio-pci function with memory decoding and bus mastering enabled.
///
/// Generic over its [`DeviceAccess`] so tests can run it on [`testing::FakeDevice`];
/// [`VfioDevice::open`] gives the real one.
pub struct VfioDevice<D: DeviceAccess = HostDevice> {
    bdf: Bdf,
    access: Arc<D>,
    dma: VfioDma<D::Mapper>,
    msix_active: Arc<AtomicBool>,
}

impl<D: DeviceAccess> fmt::Debug for VfioDevice<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioDevice")
            .field("bdf", &self.bdf)
            .finish_non_exhaustive()
    }
}

impl VfioDevice<HostDevice> {
    /// Opens PCI function `bdf` (`0000:01:10.0`, or `01:10.0` for domain 0), which must be bound
    /// to vfio-pci, in a new VFIO container with the Type1v2 IOMMU, and enables memory decoding
    /// and bus mastering.
    ///
    /// `vf_token` (a UUID) is needed for a VF whose PF is bound to vfio-pci; given for such a
    /// PF, it sets the token its VFs must present. Without a token the device is opened through
    /// `pci-driver`; with one, through our own ioctls (`pci-driver` cannot pass it).
    pub fn open(bdf: &str, vf_token: Option<&str>) -> Result<VfioDevice<HostDevice>, VfioError> {
        let bdf = Bdf::parse(bdf)?;
        if let Some(token) = vf_token {
            check_vf_token(token)?;
        }
        let paths = HostPaths::default();
        let probe = paths.probe(&bdf, vf_token.is_some())?;
        let opened = match vf_token {
            None => HostDevice::open_pci_driver(&paths.device_dir(&bdf)),
            Some(token) => {
                // Cannot contain NUL: the BDF is formatted by us and the token was checked.
                let name = CString::new(format!("{bdf} vf_token={token}")).map_err(|_| {
                    VfioError::InvalidVfToken {
                        reason: "contains a NUL byte",
                    }
                })?;
                HostDevice::open_native(probe.group, &name)
            }
        };
        let device =
            opened.map_err(|failure| paths.classify(&bdf, &probe, vf_token.is_some(), failure))?;
        VfioDevice::from_access(bdf, device)
    }
}

impl<D: DeviceAccess> VfioDevice<D> {
    /// Wraps an opened function: sets up the DMA allocator over its IOMMU and enables memory
    /// decoding and bus mastering.
    pub fn from_access(bdf: Bdf, access: D) -> Result<VfioDevice<D>, VfioError> {
        let access = Arc::new(access);
        let dma = VfioDma::new(access.iommu())?;
        let device = VfioDevice {
            bdf,
            access,
            dma,
            msix_active: Arc::new(AtomicBool::new(false)),
        };
        device.enable_memory_and_bus_master()?;
        Ok(device)
    }

    /// The function's address.
    pub fn bdf(&self) -> Bdf {
        self.bdf
    }

    /// The underlying access (e.g. the fake, in tests).
    pub fn access(&self) -> &D {
        &self.access
    }

    /// Reads `len` bytes of config space at `offset` (as vfio-pci virtualises it).
    pub fn read_config(&self, offset: u16, len: usize) -> Result<Vec<u8>, VfioError> {
        let offset = u64::from(offset);
        let size = self.access.config_len();
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            return Err(VfioError::ConfigOutOfRange { offset, len, size });
        }
        let mut buf = vec![0u8; len];
        self.access
            .config_read(offset, &mut buf)
            .map_err(|source| VfioError::Config {
                offset,
                len,
                source,
            })?;
        Ok(buf)
    }

    fn read_config_u16(&self, offset: usize) -> Result<u16, VfioError> {
        let b = self.read_config(offset as u16, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Vendor and device id.
    pub fn ids(&self) -> Result<PciIds, VfioError> {
        Ok(PciIds {
            vendor: self.read_config_u16(header::VENDOR_ID)?,
            device: self.read_config_u16(header::DEVICE_ID)?,
        })
    }

    /// The Command register.
    pub fn command(&self) -> Result<u16, VfioError> {
        self.read_config_u16(header::COMMAND)
    }

    /// Sets Memory Space Enable and Bus Master Enable, keeping every other Command bit (INTx
    /// Disable included: the register is written raw, 16 bits), and checks that bus mastering
    /// stuck. Returns the Command register read back. Done by `open` and `reset`.
    ///
    /// On a VF, memory decoding is the PF's VF MSE (SR-IOV 3.3.3.4), so the bit may read back 0
    /// on hardware; vfio-pci emulates it. Only bus mastering is checked.
    pub fn enable_memory_and_bus_master(&self) -> Result<u16, VfioError> {
        let current = self.command()?;
        let wanted = current | command::MEMORY | command::BUS_MASTER;
        if wanted != current {
            let offset = header::COMMAND as u64;
            self.access
                .config_write(offset, &wanted.to_le_bytes())
                .map_err(|source| VfioError::Config {
                    offset,
                    len: 2,
                    source,
                })?;
        }
        let read = self.command()?;
        if read & command::BUS_MASTER == 0 {
            return Err(VfioError::CommandNotAccepted {
                wrote: wanted,
                read,
            });
        }
        Ok(read)
    }

    /// Maps BAR `index` as register access.
    pub fn map_bar(&self, index: usize) -> Result<VfioBar<D::Window>, VfioError> {
        if self.access.bar_len(index).is_none() {
            return Err(VfioError::BarMissing { index });
        }
        let window = self
            .access
            .map_bar(index)
            .map_err(|source| VfioError::Bar { index, source })?;
        Ok(VfioBar::new(index, window))
    }

    /// Maps BAR0, the register file.
    pub fn bar0(&self) -> Result<VfioBar<D::Window>, VfioError> {
        self.map_bar(0)
    }

    /// The DMA allocator of this device's container (all calls share one IOVA space).
    pub fn dma(&self) -> VfioDma<D::Mapper> {
        self.dma.clone()
    }

    /// MSI-X vectors the device has.
    pub fn msix_vectors(&self) -> usize {
        self.access.msix_max()
    }

    /// Routes MSI-X vectors `0..count` to one new eventfd each. The device must still be told
    /// to raise them (igbvf: EIAC/EIAM/EIMS, IVAR). Only one [`MsixInterrupts`] may exist at a
    /// time; dropping it disables MSI-X.
    pub fn enable_msix(&self, count: usize) -> Result<MsixInterrupts<D>, VfioError> {
        let max = self.access.msix_max().min(MAX_MSIX_VECTORS);
        if count == 0 || count > max {
            return Err(VfioError::InvalidVectorCount {
                requested: count,
                max,
            });
        }
        if self.msix_active.swap(true, Ordering::AcqRel) {
            return Err(VfioError::MsixAlreadyEnabled);
        }
        let release = |e| {
            self.msix_active.store(false, Ordering::Release);
            e
        };
        let vectors = (0..count)
            .map(|_| EventFd::new().map(Arc::new))
            .collect::<io::Result<Vec<_>>>()
            .map_err(|source| {
                release(VfioError::Interrupt {
                    op: "eventfd creation",
                    source,
                })
            })?;
        self.access.msix_enable(&vectors).map_err(|source| {
            release(VfioError::Interrupt {
                op: "enable",
                source,
            })
        })?;
        Ok(MsixInterrupts {
            access: Arc::clone(&self.access),
            vectors,
            active: Arc::clone(&self.msix_active),
            enabled: true,
        })
    }

    /// Function-level reset (`VFIO_DEVICE_RESET`), then memory decoding and bus mastering are
    /// enabled again. Every device register is back at its reset value: the driver must
    /// initialise the function again. DMA mappings and MSI-X routing are kept.
    pub fn reset(&self) -> Result<(), VfioError> {
        self.access
            .reset()
            .map_err(|source| VfioError::Reset { source })?;
        self.enable_memory_and_bus_master().map(drop)
    }
}

// ---------------------------------------------------------------------------------------------
// BARs.
// ---------------------------------------------------------------------------------------------

/// A mapped BAR as [`RegisterIo`]. Refused accesses (misaligned or out of range) never panic:
/// reads return [`BAD_READ`], writes are dropped, and both are counted.
#[derive(Debug)]
pub struct VfioBar<W: MmioWindow = MmioRegion> {
    index: usize,
    window: W,
    bad_reads: AtomicU64,
    bad_writes: AtomicU64,
}

impl<W: MmioWindow> VfioBar<W> {
    /// Wraps BAR `index` mapped as `window`.
    pub fn new(index: usize, window: W) -> VfioBar<W> {
        VfioBar {
            index,
            window,
            bad_reads: AtomicU64::new(0),
            bad_writes: AtomicU64::new(0),
        }
    }

    /// BAR number.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    /// True for a zero-length BAR.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// Reads the register at `offset`, or says why not (not counted).
    pub fn try_read32(&self, offset: RegisterOffset) -> Result<u32, BarAccessError> {
        self.window.read32(offset.0 as usize)
    }

    /// Writes the register at `offset`, or says why not (not counted).
    pub fn try_write32(&self, offset: RegisterOffset, value: u32) -> Result<(), BarAccessError> {
        self.window.write32(offset.0 as usize, value)
    }

    /// Refused reads so far.
    pub fn bad_reads(&self) -> u64 {
        self.bad_reads.load(Ordering::Relaxed)
    }

    /// Refused writes so far.
    pub fn bad_writes(&self) -> u64 {
        self.bad_writes.load(Ordering::Relaxed)
    }
}

impl<W: MmioWindow> RegisterIo for VfioBar<W> {
    fn read32(&self, offset: RegisterOffset) -> u32 {
        self.try_read32(offset).unwrap_or_else(|_| {
            self.bad_reads.fetch_add(1, Ordering::Relaxed);
            BAD_READ
        })
    }

    fn write32(&self, offset: RegisterOffset, value: u32) {
        if self.try_write32(offset, value).is_err() {
            self.bad_writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DMA.
// ---------------------------------------------------------------------------------------------

/// Counters of a [`VfioDma`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaStats {
    /// Regions mapped now (leaked ones included: they stay mapped).
    pub live_regions: usize,
    /// Bytes mapped now by live, non-leaked regions.
    pub mapped_bytes: u64,
    /// Live regions backed by 2 MiB huge pages.
    pub huge_page_regions: usize,
    /// Regions whose unmap failed on drop: their memory and IOVA are deliberately never reused.
    pub leaked_regions: usize,
    /// Out-of-range region reads/writes that were clamped (driver bugs).
    pub clamped_accesses: u64,
    /// IOVA bytes still free.
    pub free_iova_bytes: u64,
}

#[derive(Debug)]
struct DmaBook {
    iova: IovaAllocator,
    live: usize,
    mapped_bytes: u64,
    huge: usize,
    leaked: usize,
}

struct DmaShared<M: IommuMapper> {
    mapper: Arc<M>,
    book: Mutex<DmaBook>,
    clamped: AtomicU64,
}

impl<M: IommuMapper> DmaShared<M> {
    /// Locks the bookkeeping, recovering from poisoning: every update under the lock is
    /// completed before anything that could panic.
    fn book(&self) -> MutexGuard<'_, DmaBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The DMA allocator of one VFIO container: host memory from `M::Memory`, IOVAs from an
/// [`IovaAllocator`] over the IOMMU's valid windows, mappings through `M`. Clones share
/// everything.
pub struct VfioDma<M: IommuMapper = HostIommu> {
    shared: Arc<DmaShared<M>>,
}

impl<M: IommuMapper> Clone for VfioDma<M> {
    fn clone(&self) -> Self {
        VfioDma {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: IommuMapper> fmt::Debug for VfioDma<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioDma")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Why an IOMMU map failed, with the usual fix.
fn map_failure_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOMEM) => format!(
            "{e}: the locked-memory limit is too low (raise `ulimit -l` / RLIMIT_MEMLOCK; \
             mlock and the IOMMU pin both count) or the host is out of memory"
        ),
        Some(libc::ENOSPC) => {
            format!("{e}: too many DMA mappings (vfio_iommu_type1 dma_entry_limit)")
        }
        _ => e.to_string(),
    }
}

impl<M: IommuMapper> VfioDma<M> {
    /// An allocator over `mapper`'s IOVA windows.
    pub fn new(mapper: Arc<M>) -> Result<VfioDma<M>, VfioError> {
        let iova = IovaAllocator::new(&mapper.valid_iova_ranges(), mapper.alignment())?;
        Ok(VfioDma {
            shared: Arc::new(DmaShared {
                mapper,
                book: Mutex::new(DmaBook {
                    iova,
                    live: 0,
                    mapped_bytes: 0,
                    huge: 0,
                    leaked: 0,
                }),
                clamped: AtomicU64::new(0),
            }),
        })
    }

    /// The IOMMU.
    pub fn mapper(&self) -> &Arc<M> {
        &self.shared.mapper
    }

    /// Current counters.
    pub fn stats(&self) -> DmaStats {
        let book = self.shared.book();
        DmaStats {
            live_regions: book.live,
            mapped_bytes: book.mapped_bytes,
            huge_page_regions: book.huge,
            leaked_regions: book.leaked,
            clamped_accesses: self.shared.clamped.load(Ordering::Relaxed),
            free_iova_bytes: book.iova.free_bytes(),
        }
    }
}

impl<M: IommuMapper> DmaAllocator for VfioDma<M> {
    type Region = VfioDmaRegion<M>;

    /// Allocates host memory (rounded up to the IOMMU page size; to 2 MiB when huge pages back
    /// it), takes the lowest free IOVA range of that size (2 MiB aligned for huge pages) and maps
    /// it. On any failure nothing stays allocated.
    fn allocate(&self, len: usize) -> Result<VfioDmaRegion<M>, DmaError> {
        if len == 0 {
            return Err(DmaError::ZeroLength);
        }
        let shared = &self.shared;
        let page = shared.mapper.alignment();
        let align = usize::try_from(page).map_err(|_| DmaError::Map {
            iova: Iova(0),
            len,
            reason: format!("IOMMU page size {page:#x} exceeds the address space"),
        })?;
        let memory =
            M::Memory::allocate(len, align).map_err(|source| DmaError::Host { len, source })?;
        let size = memory.len();
        let huge = memory.huge_pages();
        let iova_align = if huge { HUGE_PAGE.max(page) } else { page };

        let range = {
            let mut book = shared.book();
            let limit = shared
                .mapper
                .max_mappings()
                .filter(|&max| book.live >= max as usize);
            if let Some(max) = limit {
                return Err(DmaError::Map {
                    iova: Iova(0),
                    len: size,
                    reason: format!(
                        "{max} IOMMU mappings already exist (vfio_iommu_type1 dma_entry_limit)"
                    ),
                });
            }
            let range = book
                .iova
                .allocate_aligned(size as u64, iova_align)
                .map_err(|e| match e {
                    IovaError::ZeroLength => DmaError::ZeroLength,
                    IovaError::Exhausted { .. } | IovaError::TooLarge { .. } => {
                        DmaError::IovaExhausted(size)
                    }
                    other => DmaError::Map {
                        iova: Iova(0),
                        len: size,
                        reason: other.to_string(),
                    },
                })?;
            book.live += 1;
            range
        };

        if let Err(e) = shared.mapper.map(range.start(), &memory) {
            let mut book = shared.book();
            // Cannot fail: the range was allocated above and nobody else frees it.
            let _ = book.iova.free(range.start());
            book.live -= 1;
            return Err(DmaError::Map {
                iova: range.start(),
                len: size,
                reason: map_failure_reason(&e),
            });
        }
        {
            let mut book = shared.book();
            book.mapped_bytes += size as u64;
            book.huge += usize::from(huge);
        }
        Ok(VfioDmaRegion {
            shared: Arc::clone(shared),
            memory: Some(memory),
            iova: range.start(),
            len: size,
            huge,
        })
    }
}

/// DMA memory mapped at [`DmaRegion::iova`] in the device's IOMMU. On drop it is unmapped, its
/// IOVA range freed and its memory released — unless the unmap fails, in which case memory and
/// IOVA are leaked on purpose (the device may still reach them) and counted in
/// [`DmaStats::leaked_regions`].
pub struct VfioDmaRegion<M: IommuMapper = HostIommu> {
    shared: Arc<DmaShared<M>>,
    /// `None` only during drop.
    memory: Option<M::Memory>,
    iova: Iova,
    len: usize,
    huge: bool,
}

impl<M: IommuMapper> fmt::Debug for VfioDmaRegion<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioDmaRegion")
            .field("iova", &self.iova)
            .field("len", &self.len)
            .field("huge", &self.huge)
            .finish()
    }
}

impl<M: IommuMapper> VfioDmaRegion<M> {
    /// Whether 2 MiB huge pages back it.
    pub fn huge_pages(&self) -> bool {
        self.huge
    }

    /// The in-range part of an access of `count` bytes at `offset`; counts clamped accesses.
    fn clamp(&self, offset: usize, count: usize) -> usize {
        let inside = self.len.saturating_sub(offset).min(count);
        if inside < count {
            self.shared.clamped.fetch_add(1, Ordering::Relaxed);
        }
        inside
    }
}

impl<M: IommuMapper> DmaRegion for VfioDmaRegion<M> {
    fn iova(&self) -> Iova {
        self.iova
    }

    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let inside = self.clamp(offset, buf.len());
        let (head, tail) = buf.split_at_mut(inside);
        let read = inside == 0 || self.memory.as_ref().is_some_and(|m| m.read(offset, head));
        if !read {
            head.fill(0);
        }
        tail.fill(0);
    }

    fn write(&self, offset: usize, data: &[u8]) {
        let inside = self.clamp(offset, data.len());
        if let Some(m) = self.memory.as_ref().filter(|_| inside > 0) {
            m.write(offset, &data[..inside]);
        }
    }
}

impl<M: IommuMapper> Drop for VfioDmaRegion<M> {
    fn drop(&mut self) {
        let Some(memory) = self.memory.take() else {
            return;
        };
        let unmapped = self.shared.mapper.unmap(self.iova, self.len);
        let mut book = self.shared.book();
        book.mapped_bytes -= self.len as u64;
        book.huge -= usize::from(self.huge);
        if unmapped.is_ok() {
            // Cannot fail: this region owns the range.
            let _ = book.iova.free(self.iova);
            book.live -= 1;
            drop(book);
            drop(memory);
        } else {
            // The device may still write it: never free or reuse it.
            book.leaked += 1;
            std::mem::forget(memory);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MSI-X.
// ---------------------------------------------------------------------------------------------

/// The vectors that fired during a wait (bit `i`: vector `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FiredVectors(u64);

impl FiredVectors {
    /// No vector fired (the wait timed out).
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// Whether `vector` fired.
    pub fn contains(&self, vector: usize) -> bool {
        vector < 64 && self.0 & (1 << vector) != 0
    }
    /// The mask.
    pub fn bits(&self) -> u64 {
        self.0
    }
    /// The vectors that fired, in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..64).filter(|&v| self.contains(v))
    }
}

/// MSI-X vectors routed to eventfds. Dropping it disables MSI-X.
pub struct MsixInterrupts<D: DeviceAccess = HostDevice> {
    access: Arc<D>,
    vectors: Vec<Arc<EventFd>>,
    active: Arc<AtomicBool>,
    enabled: bool,
}

impl<D: DeviceAccess> fmt::Debug for MsixInterrupts<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsixInterrupts")
            .field("vectors", &self.vectors.len())
            .finish()
    }
}

impl<D: DeviceAccess> MsixInterrupts<D> {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// True if there are none (never, once enabled).
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Waits up to `timeout` for any vector, then returns (and clears) every vector that fired;
    /// empty on timeout.
    pub fn wait(&self, timeout: Duration) -> Result<FiredVectors, VfioError> {
        let ready = poll_readable(&self.vectors, Some(timeout))
            .map_err(|source| VfioError::Interrupt { op: "wait", source })?;
        self.collect(ready)
    }

    /// Returns (and clears) the vectors that fired, without waiting.
    pub fn poll(&self) -> Result<FiredVectors, VfioError> {
        self.wait(Duration::ZERO)
    }

    fn collect(&self, ready: u64) -> Result<FiredVectors, VfioError> {
        let mut fired = 0u64;
        for (i, fd) in self.vectors.iter().enumerate() {
            if ready & (1 << i) != 0 {
                let count = fd
                    .take()
                    .map_err(|source| VfioError::Interrupt { op: "read", source })?;
                if count > 0 {
                    fired |= 1 << i;
                }
            }
        }
        Ok(FiredVectors(fired))
    }

    /// The eventfd of `vector`, to add to an epoll set of your own.
    pub fn fd(&self, vector: usize) -> Option<BorrowedFd<'_>> {
        self.vectors.get(vector).map(|v| v.as_fd())
    }

    /// Disables MSI-X, reporting failure (dropping does the same but cannot report).
    pub fn disable(mut self) -> Result<(), VfioError> {
        self.enabled = false;
        self.access
            .msix_disable()
            .map_err(|source| VfioError::Interrupt {
                op: "disable",
                source,
            })
    }
}

impl<D: DeviceAccess> Drop for MsixInterrupts<D> {
    fn drop(&mut self) {
        if self.enabled {
            // Best effort: a destructor cannot report. Closing the device fd disables MSI-X in
            // any case. Use `disable` to see the error.
            let _ = self.access.msix_disable();
        }
        self.active.store(false, Ordering::Release);
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case
mod tests {
    use super::testing::{DeviceEvent, FakeDevice, FakeDeviceConfig, FakeWindow, IommuEvent};
    use super::*;
    use std::time::Instant;

    fn bdf() -> Bdf {
        Bdf::parse("0000:01:10.0").unwrap()
    }

    fn open(config: FakeDeviceConfig) -> VfioDevice<FakeDevice> {
        VfioDevice::from_access(bdf(), FakeDevice::new(config)).unwrap()
    }

    #[test]
    fn thread_safety_is_as_documented() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<VfioDevice>();
        send_sync::<VfioBar>();
        send_sync::<VfioDma>();
        send_sync::<MsixInterrupts>();
        // Regions move between threads but are not shared: one accessor at a time.
        send::<VfioDmaRegion>();
        send_sync::<VfioDevice<FakeDevice>>();
        send::<VfioDmaRegion<testing::FakeIommu>>();
    }

    #[test]
    fn bdf_round_trips_and_normalises() {
        assert_eq!(
            Bdf::parse("0000:01:10.0").unwrap().to_string(),
            "0000:01:10.0"
        );
        assert_eq!(Bdf::parse("01:10.1").unwrap().to_string(), "0000:01:10.1");
        assert_eq!(
            Bdf::parse("ABCD:Ef:1F.7").unwrap().to_string(),
            "abcd:ef:1f.7"
        );
        assert_eq!(
            Bdf::parse("10000:00:02.0").unwrap().to_string(),
            "10000:00:02.0"
        );
        let b = Bdf::parse("0:1:2.3").unwrap();
        assert_eq!(
            (b.domain(), b.bus(), b.device(), b.function()),
            (0, 1, 2, 3)
        );
        assert_eq!(Bdf::new(0, 1, 32, 0), None);
        assert_eq!(Bdf::new(0, 1, 31, 8), None);
        assert_eq!(
            "0000:01:10.0".parse::<Bdf>().unwrap(),
            Bdf::new(0, 1, 0x10, 0).unwrap()
        );
    }

    #[test]
    fn bad_bdfs_name_the_input_and_the_reason() {
        for (input, reason) in [
            ("", "expected two or three ':'-separated fields"),
            ("0000:01:10", "missing '.F'"),
            ("0000:01:20.0", "device number above 0x1f"),
            ("0000:01:10.8", "function number above 7"),
            ("0000:01:10.10", "function is not one digit"),
            ("0000:+1:10.0", "bus is not 1 or 2 hex digits"),
            ("0000:001:10.0", "bus is not 1 or 2 hex digits"),
            ("x:01:10.0", "domain is not 1 to 8 hex digits"),
            (" 0000:01:10.0", "domain is not 1 to 8 hex digits"),
            (
                "0000:01:10.0:0",
                "expected two or three ':'-separated fields",
            ),
            ("0000:01:.0", "device is not 1 or 2 hex digits"),
        ] {
            let e = Bdf::parse(input).unwrap_err();
            assert_eq!(e.input, input);
            assert_eq!(e.reason, reason, "{input:?}");
            assert!(e.to_string().contains(&format!("{input:?}")));
        }
    }

    #[test]
    fn vf_tokens_must_be_uuids_and_are_not_echoed() {
        assert!(check_vf_token("2ab74924-c335-45f4-9b16-8569e5b08258").is_ok());
        assert!(check_vf_token("2AB74924-C335-45F4-9B16-8569E5B08258").is_ok());
        for bad in [
            "",
            "2ab74924c33545f49b168569e5b08258",
            "2ab74924-c335-45f4-9b16-8569e5b0825g",
            "2ab74924-c335-45f4-9b16_8569e5b08258",
            "2ab74924-c335-45f4-9b16-8569e5b082580",
        ] {
            let e = check_vf_token(bad).unwrap_err();
            assert!(matches!(e, VfioError::InvalidVfToken { .. }));
            if !bad.is_empty() {
                assert!(!e.to_string().contains(bad));
            }
        }
    }

    #[test]
    fn open_sets_memory_and_bus_master_and_keeps_intx_disable() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let cmd = dev.access().command();
        assert_eq!(
            cmd,
            command::INTX_DISABLE | command::MEMORY | command::BUS_MASTER
        );
        assert_eq!(
            dev.access().events(),
            vec![DeviceEvent::ConfigWrite {
                offset: header::COMMAND as u64,
                data: cmd.to_le_bytes().to_vec()
            }]
        );
        // Idempotent: no second write when already set.
        dev.enable_memory_and_bus_master().unwrap();
        assert_eq!(dev.access().events().len(), 1);
        assert_eq!(
            dev.ids().unwrap(),
            PciIds {
                vendor: 0x8086,
                device: 0x10CA
            }
        );
        assert!(dev.ids().unwrap().is_igb_vf());
        assert_eq!(dev.ids().unwrap().to_string(), "8086:10ca");
    }

    #[test]
    fn bus_master_that_does_not_stick_is_an_error() {
        let config = FakeDeviceConfig {
            command_writable: 0,
            ..FakeDeviceConfig::igbvf_82576()
        };
        let err = VfioDevice::from_access(bdf(), FakeDevice::new(config)).unwrap_err();
        assert!(matches!(
            err,
            VfioError::CommandNotAccepted {
                wrote: 0x0406,
                read: 0x0400
            }
        ));
    }

    #[test]
    fn config_reads_are_bounds_checked() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        assert_eq!(dev.read_config(0, 4).unwrap(), vec![0x86, 0x80, 0xCA, 0x10]);
        assert_eq!(dev.read_config(4092, 4).unwrap().len(), 4);
        assert!(matches!(
            dev.read_config(4093, 4),
            Err(VfioError::ConfigOutOfRange {
                offset: 4093,
                len: 4,
                size: 4096
            })
        ));
        assert!(matches!(
            dev.read_config(0xFFFF, usize::MAX),
            Err(VfioError::ConfigOutOfRange { .. })
        ));
    }

    #[test]
    fn bar_accesses_are_checked_counted_and_never_panic() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let bar = dev.bar0().unwrap();
        assert_eq!(bar.len(), 16 << 10);
        bar.write32(RegisterOffset(0x0008), 0x1234_5678);
        assert_eq!(bar.read32(RegisterOffset(0x0008)), 0x1234_5678);
        assert_eq!(dev.access().bar(0).unwrap().peek(8), Some(0x1234_5678));
        dev.access().bar(0).unwrap().poke(0x3FFC, 7);
        assert_eq!(bar.read32(RegisterOffset(0x3FFC)), 7);
        for bad in [0x4000, 0x3FFE, 0x0002, 0x0001, u32::MAX, u32::MAX - 3] {
            assert_eq!(bar.read32(RegisterOffset(bad)), BAD_READ);
            bar.write32(RegisterOffset(bad), 0xDEAD);
        }
        assert_eq!(bar.bad_reads(), 6);
        assert_eq!(bar.bad_writes(), 6);
        assert_eq!(
            bar.try_read32(RegisterOffset(0x4000)),
            Err(BarAccessError::OutOfRange {
                offset: 0x4000,
                len: 0x4000
            })
        );
        assert_eq!(
            bar.try_write32(RegisterOffset(0x2), 0),
            Err(BarAccessError::Misaligned { offset: 2 })
        );
        assert!(matches!(
            dev.map_bar(1),
            Err(VfioError::BarMissing { index: 1 })
        ));
        assert!(matches!(
            dev.map_bar(6),
            Err(VfioError::BarMissing { index: 6 })
        ));
        assert_eq!(dev.map_bar(3).unwrap().index(), 3);
    }

    #[test]
    fn check_bar_offset_edges() {
        assert_eq!(check_bar_offset(0, 4), Ok(()));
        assert!(check_bar_offset(0, 3).is_err());
        assert!(check_bar_offset(0, 0).is_err());
        assert!(check_bar_offset(usize::MAX - 3, usize::MAX).is_err());
        assert!(check_bar_offset(usize::MAX & !3, usize::MAX).is_err());
        let w = FakeWindow::new(6);
        assert_eq!(w.peek(0), Some(0));
        assert_eq!(w.peek(4), None);
    }

    #[test]
    fn dma_regions_are_mapped_disjoint_and_unmapped_on_drop() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let dma = dev.dma();
        let iommu = dev.access().fake_iommu();
        let a = dma.allocate(100).unwrap();
        let b = dma.allocate(4096 * 3 + 1).unwrap();
        assert_eq!(a.len(), 4096);
        assert_eq!(b.len(), 4096 * 4);
        assert_eq!(a.iova(), Iova(0x1000), "page 0 is never used");
        assert_eq!(b.iova(), Iova(0x2000));
        assert_eq!(
            iommu.mappings(),
            vec![(Iova(0x1000), 4096), (Iova(0x2000), 4096 * 4)]
        );
        assert_eq!(dma.stats().live_regions, 2);
        assert_eq!(dma.stats().mapped_bytes, 5 * 4096);
        let a_iova = a.iova();
        drop(a);
        assert_eq!(iommu.mappings(), vec![(Iova(0x2000), 4096 * 4)]);
        assert_eq!(
            iommu.events(),
            vec![
                IommuEvent::Map {
                    iova: Iova(0x1000),
                    len: 4096
                },
                IommuEvent::Map {
                    iova: Iova(0x2000),
                    len: 4 * 4096
                },
                IommuEvent::Unmap {
                    iova: Iova(0x1000),
                    len: 4096
                },
            ]
        );
        // The freed IOVA is reused first.
        let c = dma.allocate(1).unwrap();
        assert_eq!(c.iova(), a_iova);
        drop((b, c));
        assert!(iommu.mappings().is_empty());
        let stats = dma.stats();
        assert_eq!(
            (stats.live_regions, stats.mapped_bytes, stats.leaked_regions),
            (0, 0, 0)
        );
    }

    #[test]
    fn dma_data_is_what_the_device_sees() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let iommu = dev.access().fake_iommu();
        let r = dev.dma().allocate(8192).unwrap();
        r.write(4090, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut seen = [0u8; 8];
        iommu
            .device_read(Iova(r.iova().0 + 4090), &mut seen)
            .unwrap();
        assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
        iommu
            .device_write(Iova(r.iova().0 + 16), &0xCAFE_F00Du32.to_le_bytes())
            .unwrap();
        assert_eq!(r.read_u32(16), 0xCAFE_F00D);
        let end = Iova(r.iova().0 + 8192);
        drop(r);
        assert!(
            iommu.device_read(Iova(end.0 - 8192), &mut seen).is_err(),
            "unmapped after drop"
        );
    }

    #[test]
    fn out_of_range_region_accesses_are_clamped_and_counted() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let dma = dev.dma();
        let r = dma.allocate(4096).unwrap();
        r.write(4094, &[0xAA, 0xBB, 0xCC, 0xDD]);
        let mut buf = [0xFFu8; 4];
        r.read(4094, &mut buf);
        assert_eq!(buf, [0xAA, 0xBB, 0, 0]);
        r.read(usize::MAX, &mut buf);
        assert_eq!(buf, [0; 4]);
        r.write(usize::MAX - 1, &[1, 2, 3]);
        r.read(4096, &mut []);
        assert_eq!(dma.stats().clamped_accesses, 4);
    }

    #[test]
    fn failed_map_frees_the_iova_and_reports_the_memlock_hint() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let dma = dev.dma();
        let iommu = dev.access().fake_iommu();
        iommu.fail_next_map(libc::ENOMEM);
        match dma.allocate(4096) {
            Err(DmaError::Map { iova, len, reason }) => {
                assert_eq!((iova, len), (Iova(0x1000), 4096));
                assert!(reason.contains("ulimit -l"), "{reason}");
            }
            other => panic!("expected a map error, got {other:?}"),
        }
        assert_eq!(dma.stats().live_regions, 0);
        assert_eq!(dma.allocate(4096).unwrap().iova(), Iova(0x1000));
    }

    #[test]
    fn failed_unmap_leaks_instead_of_reusing() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let dma = dev.dma();
        let iommu = dev.access().fake_iommu();
        let r = dma.allocate(4096).unwrap();
        let iova = r.iova();
        iommu.fail_next_unmap(libc::EIO);
        drop(r);
        let stats = dma.stats();
        assert_eq!(
            (stats.leaked_regions, stats.live_regions, stats.mapped_bytes),
            (1, 1, 0)
        );
        assert_eq!(iommu.mappings(), vec![(iova, 4096)]);
        assert_ne!(
            dma.allocate(4096).unwrap().iova(),
            iova,
            "a leaked IOVA is never reused"
        );
    }

    #[test]
    fn dma_errors_zero_host_exhaustion_and_mapping_limit() {
        let config = FakeDeviceConfig {
            iova_ranges: vec![0..0x5000],
            max_mappings: Some(3),
            ..FakeDeviceConfig::igbvf_82576()
        };
        let dev = open(config);
        let dma = dev.dma();
        assert!(matches!(dma.allocate(0), Err(DmaError::ZeroLength)));
        assert!(matches!(
            dma.allocate(usize::MAX),
            Err(DmaError::Host { .. })
        ));
        assert!(matches!(
            dma.allocate(0x5000),
            Err(DmaError::IovaExhausted(0x5000))
        ));
        let keep: Vec<_> = (0..3).map(|_| dma.allocate(1).unwrap()).collect();
        match dma.allocate(1) {
            Err(DmaError::Map { reason, .. }) => assert!(reason.contains("dma_entry_limit")),
            other => panic!("expected the mapping limit, got {other:?}"),
        }
        drop(keep);
        let r = dma.allocate(0x4000).unwrap();
        assert_eq!(r.iova(), Iova(0x1000));
        assert!(matches!(
            dma.allocate(1),
            Err(DmaError::IovaExhausted(4096))
        ));
    }

    #[test]
    fn an_iommu_without_usable_iova_space_is_refused() {
        let config = FakeDeviceConfig {
            iova_ranges: vec![0..0x1000],
            ..Default::default()
        };
        let err = VfioDevice::from_access(bdf(), FakeDevice::new(config)).unwrap_err();
        assert!(matches!(
            err,
            VfioError::Iova(IovaError::NoUsableWindow { .. })
        ));
    }

    #[test]
    fn dma_regions_outlive_the_device() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        let iommu = dev.access().fake_iommu();
        let dma = dev.dma();
        let r = dma.allocate(4096).unwrap();
        drop(dev);
        r.write_u32(0, 5);
        assert_eq!(r.read_u32(0), 5);
        drop(r);
        assert!(iommu.mappings().is_empty());
    }

    #[test]
    fn msix_vectors_fire_and_wait_times_out() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        assert_eq!(dev.msix_vectors(), 3);
        let irqs = dev.enable_msix(3).unwrap();
        assert_eq!(irqs.len(), 3);
        assert_eq!(dev.access().msix_enabled_vectors(), 3);
        assert!(irqs.fd(2).is_some() && irqs.fd(3).is_none());

        let start = Instant::now();
        assert!(irqs.wait(Duration::from_millis(15)).unwrap().is_empty());
        assert!(start.elapsed() >= Duration::from_millis(15));

        assert!(dev.access().fire_msix(1).unwrap());
        assert!(dev.access().fire_msix(2).unwrap());
        assert!(dev.access().fire_msix(2).unwrap());
        assert!(!dev.access().fire_msix(3).unwrap());
        let fired = irqs.wait(Duration::from_secs(5)).unwrap();
        assert_eq!(fired.iter().collect::<Vec<_>>(), vec![1, 2]);
        assert!(fired.contains(1) && !fired.contains(0) && !fired.contains(64));
        assert_eq!(fired.bits(), 0b110);
        assert!(irqs.poll().unwrap().is_empty(), "counts were consumed");

        // A waiter on another thread is woken.
        let device = dev.access().clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            device.fire_msix(0).unwrap();
        });
        let fired = irqs.wait(Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert!(fired.contains(0));
    }

    #[test]
    fn msix_count_and_exclusivity_are_enforced_and_drop_disables() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        assert!(matches!(
            dev.enable_msix(0),
            Err(VfioError::InvalidVectorCount {
                requested: 0,
                max: 3
            })
        ));
        assert!(matches!(
            dev.enable_msix(4),
            Err(VfioError::InvalidVectorCount {
                requested: 4,
                max: 3
            })
        ));
        let irqs = dev.enable_msix(2).unwrap();
        assert!(matches!(
            dev.enable_msix(1),
            Err(VfioError::MsixAlreadyEnabled)
        ));
        drop(irqs);
        assert_eq!(dev.access().msix_enabled_vectors(), 0);
        assert_eq!(
            dev.access().events().last(),
            Some(&DeviceEvent::MsixDisabled)
        );
        let irqs = dev.enable_msix(1).unwrap();
        irqs.disable().unwrap();
        assert!(dev.enable_msix(3).is_ok());
    }

    #[test]
    fn reset_reenables_bus_mastering() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        dev.reset().unwrap();
        assert_eq!(dev.access().resets(), 1);
        assert_eq!(
            dev.command().unwrap() & command::BUS_MASTER,
            command::BUS_MASTER
        );
        assert!(dev.access().events().contains(&DeviceEvent::Reset));
    }

    #[test]
    fn host_probe_on_a_missing_device() {
        let paths = HostPaths {
            sysfs: PathBuf::from("/nonexistent-sysfs"),
            dev: PathBuf::from("/nonexistent-dev"),
        };
        let err = paths.probe(&bdf(), false).unwrap_err();
        assert!(matches!(err, VfioError::DeviceNotFound { .. }));
        assert!(err.to_string().contains("0000:01:10.0"));
        assert!(paths.group_blockers(1).is_empty());
    }

    #[test]
    fn open_failures_are_classified() {
        let paths = HostPaths::default();
        let probe = HostProbe {
            group: 7,
            group_node: PathBuf::from("/dev/vfio/7"),
            driver: "vfio-pci".into(),
            role: SriovRole::Vf {
                pf: "0000:01:00.0".into(),
                pf_driver: Some("vfio-pci".into()),
            },
        };
        let fail = |step, errno| OpenFailure {
            step,
            source: io::Error::from_raw_os_error(errno),
        };
        let classify =
            |step, errno, token| paths.classify(&bdf(), &probe, token, fail(step, errno));
        assert!(matches!(
            classify(OpenStep::OpenGroup, libc::EBUSY, false),
            VfioError::GroupBusy { group: 7, .. }
        ));
        assert!(matches!(
            classify(OpenStep::PciDriver, libc::EBUSY, false),
            VfioError::GroupBusy { .. }
        ));
        assert!(matches!(
            classify(OpenStep::OpenGroup, libc::EACCES, false),
            VfioError::PermissionDenied { .. }
        ));
        assert!(matches!(
            classify(OpenStep::OpenContainer, libc::ENOENT, false),
            VfioError::VfioNodeMissing { .. }
        ));
        assert!(matches!(
            classify(OpenStep::GetDeviceFd, libc::EACCES, true),
            VfioError::VfTokenRejected { .. }
        ));
        match classify(OpenStep::GetDeviceFd, libc::EACCES, false) {
            VfioError::VfTokenRequired { reason, .. } => assert!(reason.contains("0000:01:00.0")),
            other => panic!("{other:?}"),
        }
        let pf_probe = HostProbe {
            role: SriovRole::Pf,
            ..probe.clone()
        };
        let failure = fail(OpenStep::PciDriver, libc::EACCES);
        match paths.classify(&bdf(), &pf_probe, false, failure) {
            VfioError::VfTokenRequired { reason, .. } => assert!(reason.contains("/dev/vfio/7")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(OpenStep::GetDeviceFd, libc::EINVAL, true),
            VfioError::VfTokenUnexpected { .. }
        ));
        assert!(matches!(
            classify(OpenStep::GroupNotViable, libc::EINVAL, false),
            VfioError::GroupNotViable { group: 7, .. }
        ));
        let not_viable = OpenFailure {
            step: OpenStep::PciDriver,
            source: io::Error::other("Group is not viable; are all devices ..."),
        };
        assert!(matches!(
            paths.classify(&bdf(), &probe, false, not_viable),
            VfioError::GroupNotViable { .. }
        ));
        match classify(OpenStep::SetIommu, libc::ENODEV, false) {
            VfioError::Open { step, .. } => assert_eq!(step, "VFIO_SET_IOMMU"),
            other => panic!("{other:?}"),
        }
    }
}

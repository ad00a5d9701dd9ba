//! [`VfioError`]: why the VFIO backend failed, with how to fix the host for each setup error.

use std::io;
use std::path::PathBuf;

use super::bdf::{Bdf, BdfError};
use crate::iova::IovaError;

/// Checks that a VF token is a UUID (`8-4-4-4-12` hex digits), as the kernel's `uuid_parse`
/// requires.
pub(super) fn check_vf_token(token: &str) -> Result<(), VfioError> {
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

pub(super) fn vf_of_vfio_pf(pf: &str) -> String {
    format!("it is a VF of {pf}, which is bound to vfio-pci")
}

pub(super) fn describe_driver(driver: &Option<String>) -> String {
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
    /// The function is not a VF any driver here supports.
    #[error("unsupported PCI function {ids}: supported VFs are {supported}")]
    UnsupportedDevice {
        /// Its vendor and device id.
        ids: super::device::PciIds,
        /// What is supported.
        supported: &'static str,
    },
    /// The register BAR is smaller than the family's driver needs.
    #[error("BAR {index} is {len:#x} bytes; the driver needs at least {min:#x}")]
    BarTooSmall {
        /// BAR number.
        index: usize,
        /// Its length.
        len: u64,
        /// The family's minimum.
        min: u64,
    },
    /// The BAR could not be mapped.
    #[error("cannot map BAR {index}: {source}")]
    Bar {
        /// BAR number.
        index: usize,
        /// The OS error.
        source: io::Error,
    },
    /// An MSI-X vector count of zero or above what the device (or [`super::MAX_MSIX_VECTORS`]) allows.
    #[error("cannot enable {requested} MSI-X vectors: 1..={max} allowed")]
    InvalidVectorCount {
        /// Vectors asked for.
        requested: usize,
        /// Most allowed.
        max: usize,
    },
    /// MSI-X is already enabled through another [`super::MsixInterrupts`].
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

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case
mod tests {

    use super::*;

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
}

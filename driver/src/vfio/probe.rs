//! Host checks before opening a device (sysfs: the device, its IOMMU group, its driver, its
//! SR-IOV role) and the classification of a failed open into a [`VfioError`] that says what to do.

use std::io;
use std::path::{Path, PathBuf};

use hac_sys::{OpenFailure, OpenStep};

use super::bdf::Bdf;
use super::error::{VfioError, describe_driver, vf_of_vfio_pf};

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
    pub(super) fn classify(
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

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case
mod tests {
    use std::io;
    use std::path::PathBuf;

    use hac_sys::{OpenFailure, OpenStep};

    use super::*;

    use crate::vfio::tests::bdf;

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

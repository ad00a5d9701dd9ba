//! [`VfioDevice`]: an opened vfio-pci function — config space, command register, BARs, DMA,
//! MSI-X and reset.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hac_sys::{EventFd, HostDevice};
use igb_hw::pci::{self, command, header};

use super::bar::VfioBar;
use super::bdf::Bdf;
use super::dma::VfioDma;
use super::error::{VfioError, check_vf_token};
use super::family::VfFamily;
use super::msix::{MAX_MSIX_VECTORS, MsixInterrupts};
use super::probe::HostPaths;
use super::seams::DeviceAccess;

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

    /// A ConnectX / BlueField VF `mlx5_core` binds (15B3 with one of
    /// [`mlx5_hw::pci::VF_DEVICE_IDS`], 0x101E on ConnectX-6 Dx and later).
    pub fn is_mlx5_vf(&self) -> bool {
        mlx5_hw::pci::is_mlx5_vf(self.vendor, self.device)
    }
}

impl fmt::Display for PciIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)
    }
}

/// An opened vfio-pci function with memory decoding and bus mastering enabled.
///
/// Generic over its [`DeviceAccess`] so tests can run it on [`super::testing::FakeDevice`];
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

    /// The driver family of this function from its ids, or
    /// [`VfioError::UnsupportedDevice`].
    pub fn family(&self) -> Result<VfFamily, VfioError> {
        VfFamily::from_ids(self.ids()?)
    }

    /// Maps the register BAR of `family` (BAR0 for igbvf and mlx5), refusing one smaller
    /// than the family's driver needs ([`VfioError::BarTooSmall`]).
    pub fn register_bar(&self, family: VfFamily) -> Result<VfioBar<D::Window>, VfioError> {
        let index = family.register_bar();
        let min = family.min_register_bar_len();
        match self.access.bar_len(index) {
            None => return Err(VfioError::BarMissing { index }),
            Some(len) if len < min => return Err(VfioError::BarTooSmall { index, len, min }),
            Some(_) => {}
        }
        self.map_bar(index)
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
        Ok(MsixInterrupts::enabled(
            Arc::clone(&self.access),
            vectors,
            Arc::clone(&self.msix_active),
        ))
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

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case
mod tests {

    use igb_hw::pci::{command, header};

    use super::*;

    use crate::vfio::testing::{DeviceEvent, FakeDevice, FakeDeviceConfig};
    use crate::vfio::tests::{bdf, open};

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
}

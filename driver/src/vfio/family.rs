//! [`VfFamily`]: which driver a VF opened through VFIO needs, from its PCI vendor and device ids,
//! and what each family's register BAR looks like. The one definition `hac vf-probe` and
//! `hac-lab vf-traffic` use to pick the driver.
//!
//! * **igbvf**: Intel 82576 VF (8086:10CA) and I350 VF (8086:1520): BAR0, 16 KiB, the igbvf
//!   register file (82576 datasheet 8.28; BAR3 holds the MSI-X table). The driver resets the
//!   function itself (CTRL.RST) and then runs the mailbox handshake.
//! * **mlx5**: a ConnectX / BlueField VF Linux `mlx5_core` binds (vendor 0x15B3, the VF ids of
//!   [`mlx5_hw::pci::VF_DEVICE_IDS`], 0x101E on ConnectX-6 Dx and later): one 64-bit BAR0
//!   (1 or 2 MiB) holding the initialization segment, the MSI-X table and the UAR pages. No
//!   reset by the driver: vfio-pci resets the function when it is opened, and bring-up waits
//!   for `initializing` to clear.

use std::fmt;

use igb_hw::pci as igb_pci;
use mlx5_hw::pci as mlx5_pci;

use super::device::PciIds;
use super::error::VfioError;

/// The driver family of a VF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VfFamily {
    /// Intel 82576 / I350 VF: the igbvf driver ([`crate::vf::VfDriver`]).
    Igbvf,
    /// NVIDIA/Mellanox ConnectX VF: the mlx5 driver ([`crate::mlx5::Mlx5Device`]).
    Mlx5,
}

/// The bytes of BAR0 `mlx5_core` maps as the initialization segment (`sizeof(struct
/// mlx5_init_seg)`, 0x0000–0x200F: registers, health buffer, internal timer; the model
/// implements the first [`mlx5_hw::init_seg::INIT_SEG_LEN`] of them).
pub const MLX5_INIT_SEGMENT_MAPPED: u64 = 0x2010;

/// The 82576 VF's register file in BAR0 (82576 datasheet 8.28).
pub const IGBVF_REGISTER_FILE: u64 = 16 << 10;

/// What [`VfFamily::from_ids`] accepts, for error messages.
pub const SUPPORTED_VFS: &str = "8086:10ca (82576 VF), 8086:1520 (I350 VF), 15b3:101e \
     (ConnectX VF) and the other mlx5 VF ids 15b3:1012/1014/1016/1018/101a/101c/a2d3";

impl VfFamily {
    /// Every family.
    pub const ALL: [VfFamily; 2] = [VfFamily::Igbvf, VfFamily::Mlx5];

    /// The family of a VF with these ids, `None` for any other function (PFs included).
    pub fn of(ids: PciIds) -> Option<VfFamily> {
        if ids.is_igb_vf() {
            Some(VfFamily::Igbvf)
        } else if mlx5_pci::is_mlx5_vf(ids.vendor, ids.device) {
            Some(VfFamily::Mlx5)
        } else {
            None
        }
    }

    /// The family of a VF with these ids, or [`VfioError::UnsupportedDevice`] naming them and
    /// what is supported.
    pub fn from_ids(ids: PciIds) -> Result<VfFamily, VfioError> {
        VfFamily::of(ids).ok_or(VfioError::UnsupportedDevice {
            ids,
            supported: SUPPORTED_VFS,
        })
    }

    /// Short name: `igbvf` or `mlx5`.
    pub fn name(self) -> &'static str {
        match self {
            VfFamily::Igbvf => "igbvf",
            VfFamily::Mlx5 => "mlx5",
        }
    }

    /// The BAR holding the registers the driver uses (BAR0 for both).
    pub fn register_bar(self) -> usize {
        match self {
            VfFamily::Igbvf => 0,
            VfFamily::Mlx5 => usize::from(mlx5_pci::VF_BAR0.index),
        }
    }

    /// The smallest register BAR the driver can work with: the 82576 VF's 16 KiB register
    /// file; for mlx5 the initialization segment as `mlx5_core` maps it (UAR pages follow;
    /// the device says which one the driver gets, and an access outside the BAR is refused
    /// and counted by [`super::VfioBar`]).
    pub fn min_register_bar_len(self) -> u64 {
        match self {
            VfFamily::Igbvf => IGBVF_REGISTER_FILE,
            VfFamily::Mlx5 => MLX5_INIT_SEGMENT_MAPPED,
        }
    }

    /// Whether the driver's doorbells include 64-bit writes that must be one access.
    pub fn needs_64bit_doorbells(self) -> bool {
        matches!(self, VfFamily::Mlx5)
    }

    /// Vendor id of the family's functions.
    pub fn vendor(self) -> u16 {
        match self {
            VfFamily::Igbvf => igb_pci::VENDOR_INTEL,
            VfFamily::Mlx5 => mlx5_pci::VENDOR_MELLANOX,
        }
    }
}

impl fmt::Display for VfFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfio::testing::FakeDeviceConfig;
    use crate::vfio::tests::open;

    fn ids(vendor: u16, device: u16) -> PciIds {
        PciIds { vendor, device }
    }

    #[test]
    fn families_from_pci_ids() {
        assert_eq!(VfFamily::of(ids(0x8086, 0x10CA)), Some(VfFamily::Igbvf));
        assert_eq!(VfFamily::of(ids(0x8086, 0x1520)), Some(VfFamily::Igbvf));
        assert_eq!(VfFamily::of(ids(0x15B3, 0x101E)), Some(VfFamily::Mlx5));
        for vf in mlx5_pci::VF_DEVICE_IDS {
            assert_eq!(
                VfFamily::of(ids(0x15B3, vf)),
                Some(VfFamily::Mlx5),
                "{vf:#x}"
            );
            assert!(SUPPORTED_VFS.contains(&format!("{vf:x}")), "{vf:#x} listed");
        }
        // PFs, other vendors' use of the same device ids, unknown functions.
        for (v, d) in [
            (0x8086, 0x10C9),
            (0x15B3, 0x101D),
            (0x15B3, 0x1017),
            (0x8086, 0x101E),
            (0x15B3, 0x10CA),
            (0xFFFF, 0xFFFF),
            (0, 0),
        ] {
            assert_eq!(VfFamily::of(ids(v, d)), None, "{v:04x}:{d:04x}");
        }
    }

    #[test]
    fn an_unknown_id_is_a_clear_error() {
        let e = VfFamily::from_ids(ids(0x15B3, 0x1017)).unwrap_err();
        assert!(matches!(e, VfioError::UnsupportedDevice { .. }));
        let text = e.to_string();
        assert!(text.contains("15b3:1017"), "{text}");
        assert!(
            text.contains("8086:10ca") && text.contains("15b3:101e"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn per_family_register_bar() {
        assert_eq!(VfFamily::Igbvf.register_bar(), 0);
        assert_eq!(VfFamily::Mlx5.register_bar(), 0);
        assert_eq!(VfFamily::Igbvf.min_register_bar_len(), 0x4000);
        assert!(VfFamily::Mlx5.min_register_bar_len() >= mlx5_hw::init_seg::INIT_SEG_LEN as u64);
        assert!(VfFamily::Mlx5.needs_64bit_doorbells() && !VfFamily::Igbvf.needs_64bit_doorbells());
        assert_eq!(VfFamily::Mlx5.to_string(), "mlx5");
        assert_eq!(VfFamily::ALL.map(VfFamily::vendor), [0x8086, 0x15B3]);

        let igb = open(FakeDeviceConfig::igbvf_82576());
        assert_eq!(igb.family().unwrap(), VfFamily::Igbvf);
        assert_eq!(igb.register_bar(VfFamily::Igbvf).unwrap().len(), 16 << 10);
        let mlx5 = open(FakeDeviceConfig::mlx5_vf());
        assert_eq!(mlx5.family().unwrap(), VfFamily::Mlx5);
        assert_eq!(mlx5.register_bar(VfFamily::Mlx5).unwrap().len(), 2 << 20);

        // A BAR too small for the family is refused before the driver touches it.
        let small = open(FakeDeviceConfig {
            bar_sizes: [0x1000, 0, 0, 0, 0, 0],
            ..FakeDeviceConfig::mlx5_vf()
        });
        let e = small.register_bar(VfFamily::Mlx5).unwrap_err();
        assert!(
            matches!(
                e,
                VfioError::BarTooSmall {
                    index: 0,
                    len: 0x1000,
                    min: 0x2010
                }
            ),
            "{e}"
        );
        let other = open(FakeDeviceConfig {
            vendor_id: 0x15B3,
            device_id: 0x1017,
            ..FakeDeviceConfig::mlx5_vf()
        });
        assert!(matches!(
            other.family(),
            Err(VfioError::UnsupportedDevice { .. })
        ));
    }
}

//! PCI identity of the ConnectX (mlx5) functions: vendor and device ids Linux `mlx5_core`
//! binds, which of them are virtual functions, the BARs, the capabilities a real ConnectX-6 Dx
//! presents and the values of its SR-IOV capability.
//!
//! The model presents a ConnectX-6 Dx PF ([`DEVICE_CONNECTX6_DX`]) whose VFs carry the generic
//! "ConnectX Family mlx5Gen Virtual Function" id [`DEVICE_CONNECTX_VF`] (0x101E): the id every
//! ConnectX-6 Dx and later VF uses, the only one `mlx5-vfio-pci` binds, and the one a Linux
//! guest was seen to probe. Sources: Linux `mlx5_core` `main.c` (`mlx5_core_pci_table`,
//! `probe_one`), `pci_irq.c`; rdma-core `providers/mlx5/mlx5.c` (`mlx5_hca_table`); `lspci
//! -vvv` listings of ConnectX-5/6 Dx and BlueField-2 functions.
//!
//! Generic configuration-space offsets (header, MSI-X and SR-IOV registers) are not repeated
//! here: they are the PCI specification's, the same for every family.

/// Mellanox Technologies (NVIDIA networking) vendor id.
pub const VENDOR_MELLANOX: u16 = 0x15B3;
/// ConnectX-6 Dx physical function: the PF the model presents.
pub const DEVICE_CONNECTX6_DX: u16 = 0x101D;
/// "ConnectX Family mlx5Gen Virtual Function": the VF id of ConnectX-6 Dx and later adapters
/// and of BlueField-2/3; the VF the model presents.
pub const DEVICE_CONNECTX_VF: u16 = 0x101E;
/// Class code: network controller, Ethernet (PF and VF).
pub const CLASS_ETHERNET: u32 = 0x02_00_00;
/// Revision id reported by the model.
pub const REVISION: u8 = 0x00;

/// Device ids of the mlx5 physical functions Linux `mlx5_core` binds: Connect-IB,
/// ConnectX-4 … 9, BlueField 1–4.
pub const PF_DEVICE_IDS: [u16; 15] = [
    0x1011, // Connect-IB
    0x1013, // ConnectX-4
    0x1015, // ConnectX-4 Lx
    0x1017, // ConnectX-5
    0x1019, // ConnectX-5 Ex
    0x101B, // ConnectX-6
    0x101D, // ConnectX-6 Dx
    0x101F, // ConnectX-6 Lx
    0x1021, // ConnectX-7
    0x1023, // ConnectX-8
    0x1025, // ConnectX-9
    0xA2D2, // BlueField
    0xA2D6, // BlueField-2
    0xA2DC, // BlueField-3
    0xA2DF, // BlueField-4
];

/// Device ids `mlx5_core` flags as virtual functions. The flag is the only thing that makes
/// `mlx5_core` treat a function as a VF: inside a guest a VF is an ordinary PCI function.
pub const VF_DEVICE_IDS: [u16; 8] = [
    0x1012, // Connect-IB VF
    0x1014, // ConnectX-4 VF
    0x1016, // ConnectX-4 Lx VF
    0x1018, // ConnectX-5 VF
    0x101A, // ConnectX-5 Ex VF
    0x101C, // ConnectX-6 VF
    0x101E, // ConnectX Family mlx5Gen VF
    0xA2D3, // BlueField VF
];

/// True when `(vendor, device)` is an mlx5 function Linux `mlx5_core` binds (PF or VF).
pub fn is_mlx5(vendor: u16, device: u16) -> bool {
    vendor == VENDOR_MELLANOX
        && (PF_DEVICE_IDS.contains(&device) || VF_DEVICE_IDS.contains(&device))
}

/// True when `(vendor, device)` is an mlx5 virtual function.
pub fn is_mlx5_vf(vendor: u16, device: u16) -> bool {
    vendor == VENDOR_MELLANOX && VF_DEVICE_IDS.contains(&device)
}

/// A memory BAR of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// BAR index (0..6).
    pub index: u8,
    /// Size in bytes (a power of two).
    pub size: u64,
    /// 64-bit BAR (uses `index` and `index + 1`).
    pub is_64bit: bool,
    /// Prefetchable.
    pub prefetchable: bool,
}

impl Bar {
    /// The low flag bits the BAR register reads back with (memory space).
    pub const fn flags(&self) -> u32 {
        (if self.is_64bit { 0b100 } else { 0 }) | (if self.prefetchable { 0b1000 } else { 0 })
    }
}

/// The VF's only BAR: BAR0, 64-bit prefetchable, 2 MiB (firmware `VF_LOG_BAR_SIZE` 1; a
/// ConnectX-6 Dx VF and a ConnectX-5 Ex VF were seen with 2 MiB, others with 1 MiB). It holds
/// the initialization segment at 0, the MSI-X table and PBA, and the UAR pages.
pub const VF_BAR0: Bar = Bar {
    index: 0,
    size: 2 * 1024 * 1024,
    is_64bit: true,
    prefetchable: true,
};

/// The PF's BAR0: 64-bit prefetchable, 32 MiB (`PF_LOG_BAR_SIZE` 5, as a ConnectX-6 Dx PF).
pub const PF_BAR0: Bar = Bar {
    index: 0,
    size: 32 * 1024 * 1024,
    is_64bit: true,
    prefetchable: true,
};

/// MSI-X placement: the table and PBA live in BAR0 after the initialization segment.
pub mod msix {
    /// BAR holding the table and the PBA.
    pub const BAR: u8 = 0;
    /// Table offset in BAR0. The initialization segment formally runs to 0x200F, overlapping
    /// entry 0; `mlx5_core` never touches those last fields, so the table owns 0x2000–0x2FFF.
    pub const TABLE_OFFSET: u32 = 0x2000;
    /// Pending-bit array offset in BAR0.
    pub const PBA_OFFSET: u32 = 0x3000;
    /// Table entries of a VF (a ConnectX-5 VF's default; the PF may resize a VF's table).
    pub const VF_TABLE_SIZE: u16 = 12;
    /// Table entries of the PF.
    pub const PF_TABLE_SIZE: u16 = 64;
}

/// Capability ids (conventional configuration space).
pub mod cap_id {
    /// Power management.
    pub const PM: u8 = 0x01;
    /// Vital product data (PF only; `mlx5_core` never reads it).
    pub const VPD: u8 = 0x03;
    /// PCI Express: `mlx5_core` tries AtomicOps and PTM through it (failures are harmless).
    pub const PCIE: u8 = 0x10;
    /// MSI-X: required, `mlx5_core` has no MSI or INTx fallback.
    pub const MSIX: u8 = 0x11;
    /// Vendor-specific (PF only).
    pub const VENDOR: u8 = 0x09;
}

/// Extended capability ids.
pub mod ext_cap_id {
    /// Advanced error reporting.
    pub const AER: u16 = 0x0001;
    /// Alternative routing-id interpretation.
    pub const ARI: u16 = 0x000E;
    /// Single root I/O virtualization.
    pub const SRIOV: u16 = 0x0010;
    /// Access control services.
    pub const ACS: u16 = 0x000D;
}

/// Where a ConnectX-6 Dx class function places its capabilities (BlueField-2 PF listing; the
/// VF places PCIe and MSI-X at the same offsets).
pub mod layout {
    /// PF power management.
    pub const PF_PM: usize = 0x40;
    /// PF VPD.
    pub const PF_VPD: usize = 0x48;
    /// PCI Express (PF and VF).
    pub const PCIE: usize = 0x60;
    /// MSI-X (PF and VF).
    pub const MSIX: usize = 0x9C;
    /// PF vendor-specific capability.
    pub const PF_VENDOR: usize = 0xC0;
    /// PF AER extended capability.
    pub const PF_AER: usize = 0x100;
    /// PF ARI extended capability.
    pub const PF_ARI: usize = 0x150;
    /// PF SR-IOV extended capability.
    pub const PF_SRIOV: usize = 0x180;
    /// PF ACS extended capability.
    pub const PF_ACS: usize = 0x230;
}

/// Values of the PF's SR-IOV capability.
pub mod sriov {
    /// TotalVFs and InitialVFs (firmware-configured; 16 on the BlueField-2 listing).
    pub const TOTAL_VFS: u16 = 16;
    /// Routing-id offset of VF 0 from PF 0 on a dual-port adapter: PF1 is function 1, PF0's
    /// VFs start at function 2 (a BlueField-2, with its embedded-CPU function, uses 3).
    pub const FIRST_VF_OFFSET: u16 = 2;
    /// Routing-id distance between consecutive VFs.
    pub const VF_STRIDE: u16 = 1;
    /// VF device id field.
    pub const VF_DEVICE_ID: u16 = super::DEVICE_CONNECTX_VF;
    /// Supported page sizes: 4 KiB … 4 MiB.
    pub const SUPPORTED_PAGE_SIZES: u32 = 0x7FF;
    /// System page size: 4 KiB.
    pub const SYSTEM_PAGE_SIZE: u32 = 0x1;
}

/// Routing id (bus << 8 | devfn) of VF `vf` (0-based) for a PF at routing id `pf`, or `None`
/// when it overflows 16 bits (SR-IOV 1.1 section 3.3.10).
pub fn vf_routing_id(pf: u16, vf: u16) -> Option<u16> {
    let rid = u32::from(pf)
        + u32::from(sriov::FIRST_VF_OFFSET)
        + u32::from(vf) * u32::from(sriov::VF_STRIDE);
    u16::try_from(rid).ok()
}

/// Bytes of BAR0 `mlx5_core` maps at probe (the initialization segment through `clr_intx`).
pub const MAPPED_AT_PROBE: u64 = 0x2010;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_presents_ids_linux_binds_and_the_vf_is_a_vf() {
        assert!(is_mlx5(VENDOR_MELLANOX, DEVICE_CONNECTX6_DX));
        assert!(!is_mlx5_vf(VENDOR_MELLANOX, DEVICE_CONNECTX6_DX));
        assert!(is_mlx5_vf(0x15b3, 0x101e));
        assert!(is_mlx5_vf(0x15b3, sriov::VF_DEVICE_ID));
        assert!(!is_mlx5(0x8086, 0x101e));
        assert!(!is_mlx5(0x15b3, 0x1000));
        for id in VF_DEVICE_IDS {
            assert!(!PF_DEVICE_IDS.contains(&id), "{id:#x} is both");
        }
    }

    #[test]
    fn bars_and_msix_fit() {
        assert_eq!(VF_BAR0.flags(), 0b1100);
        assert!(VF_BAR0.size.is_power_of_two() && PF_BAR0.size.is_power_of_two());
        // Table (16 B per entry) and PBA inside BAR0, after what mlx5_core maps at probe
        // except for the two unused fields the table overlaps.
        assert!(
            u64::from(msix::TABLE_OFFSET) + 16 * u64::from(msix::PF_TABLE_SIZE)
                <= u64::from(msix::PBA_OFFSET)
        );
        assert!(u64::from(msix::PBA_OFFSET) + 8 <= VF_BAR0.size);
        assert!(MAPPED_AT_PROBE <= u64::from(msix::TABLE_OFFSET) + 16);
    }

    #[test]
    fn vf_routing_ids_follow_pf1() {
        // PF0 at 03:00.0, PF1 at 03:00.1 → PF0's VFs at 03:00.2, 03:00.3, …
        assert_eq!(vf_routing_id(0x0300, 0), Some(0x0302));
        assert_eq!(vf_routing_id(0x0300, 5), Some(0x0307));
        assert_eq!(vf_routing_id(0xFFFF, 0), None);
    }
}

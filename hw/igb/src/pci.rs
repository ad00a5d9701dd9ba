//! PCI identity and configuration-space layout of the 82576 PF and its VFs, including the SR-IOV
//! extended capability (PCI-SIG SR-IOV 1.1, section 3.3) as the 82576 implements it.

/// Intel's vendor id.
pub const VENDOR_INTEL: u16 = 0x8086;
/// 82576 physical function (copper).
pub const DEVICE_82576: u16 = 0x10C9;
/// 82576 virtual function.
pub const DEVICE_82576_VF: u16 = 0x10CA;
/// I350 virtual function (same register interface for the VF).
pub const DEVICE_I350_VF: u16 = 0x1520;
/// Class code: network controller, Ethernet.
pub const CLASS_ETHERNET: u32 = 0x02_00_00;
/// Revision id reported by the model.
pub const REVISION: u8 = 0x01;

/// Size of the PCIe configuration space (with the extended space).
pub const CONFIG_SPACE_SIZE: usize = 4096;

/// Type-0 header offsets.
pub mod header {
    /// Vendor id (16).
    pub const VENDOR_ID: usize = 0x00;
    /// Device id (16).
    pub const DEVICE_ID: usize = 0x02;
    /// Command (16).
    pub const COMMAND: usize = 0x04;
    /// Status (16).
    pub const STATUS: usize = 0x06;
    /// Revision id (8).
    pub const REVISION_ID: usize = 0x08;
    /// Class code (24, at 0x09).
    pub const CLASS_CODE: usize = 0x09;
    /// Header type (8).
    pub const HEADER_TYPE: usize = 0x0E;
    /// BAR0; BAR n is at `BAR0 + 4·n`.
    pub const BAR0: usize = 0x10;
    /// Subsystem vendor id (16).
    pub const SUBSYSTEM_VENDOR_ID: usize = 0x2C;
    /// Subsystem id (16).
    pub const SUBSYSTEM_ID: usize = 0x2E;
    /// Capabilities pointer (8).
    pub const CAPABILITIES: usize = 0x34;
    /// Interrupt line (8).
    pub const INTERRUPT_LINE: usize = 0x3C;
    /// Interrupt pin (8).
    pub const INTERRUPT_PIN: usize = 0x3D;
}

/// Command register bits.
pub mod command {
    /// Memory space enable.
    pub const MEMORY: u16 = 1 << 1;
    /// Bus master enable: without it the function performs no DMA.
    pub const BUS_MASTER: u16 = 1 << 2;
    /// INTx disable.
    pub const INTX_DISABLE: u16 = 1 << 10;
    /// Bits a PF implements.
    pub const PF_WRITABLE: u16 =
        MEMORY | BUS_MASTER | (1 << 0) | (1 << 6) | (1 << 8) | INTX_DISABLE;
    /// Bits a VF implements (memory space is controlled by the PF's VF MSE; SR-IOV 3.4.1.3).
    pub const VF_WRITABLE: u16 = BUS_MASTER;
}

/// Status register bits.
pub mod status {
    /// Capabilities list present.
    pub const CAP_LIST: u16 = 1 << 4;
}

/// Capability ids (conventional space).
pub mod cap_id {
    /// Power management.
    pub const PM: u8 = 0x01;
    /// MSI.
    pub const MSI: u8 = 0x05;
    /// PCI Express.
    pub const PCIE: u8 = 0x10;
    /// MSI-X.
    pub const MSIX: u8 = 0x11;
}

/// Extended capability ids.
pub mod ext_cap_id {
    /// Advanced error reporting.
    pub const AER: u16 = 0x0001;
    /// Alternative routing-id interpretation.
    pub const ARI: u16 = 0x000E;
    /// Single root I/O virtualization.
    pub const SRIOV: u16 = 0x0010;
}

/// Where the model places each capability.
pub mod layout {
    /// PF power management capability.
    pub const PF_PM: usize = 0x40;
    /// PF MSI capability.
    pub const PF_MSI: usize = 0x50;
    /// MSI-X capability (PF and VF).
    pub const MSIX: usize = 0x70;
    /// PCI Express capability (PF and VF).
    pub const PCIE: usize = 0xA0;
    /// AER extended capability (PF and VF).
    pub const AER: usize = 0x100;
    /// ARI extended capability (PF and VF).
    pub const ARI: usize = 0x150;
    /// SR-IOV extended capability (PF).
    pub const SRIOV: usize = 0x160;
}

/// MSI-X capability fields (offsets from the capability).
pub mod msix {
    /// Message control (16): table size − 1 in bits 10:0.
    pub const CONTROL: usize = 0x02;
    /// Table offset and BIR (32).
    pub const TABLE: usize = 0x04;
    /// PBA offset and BIR (32).
    pub const PBA: usize = 0x08;
    /// Message control: MSI-X enable.
    pub const ENABLE: u16 = 1 << 15;
    /// Message control: function mask.
    pub const FUNCTION_MASK: u16 = 1 << 14;
    /// The MSI-X BAR index (BAR3).
    pub const BAR: u8 = 3;
    /// Bytes per table entry.
    pub const ENTRY_SIZE: usize = 16;
    /// Vector control: masked.
    pub const VECTOR_MASKED: u32 = 1;
}

/// SR-IOV capability fields (offsets from the capability; SR-IOV 1.1 section 3.3).
pub mod sriov {
    /// SR-IOV capabilities (32).
    pub const CAPABILITIES: usize = 0x04;
    /// SR-IOV control (16).
    pub const CONTROL: usize = 0x08;
    /// SR-IOV status (16).
    pub const STATUS: usize = 0x0A;
    /// InitialVFs (16).
    pub const INITIAL_VFS: usize = 0x0C;
    /// TotalVFs (16).
    pub const TOTAL_VFS: usize = 0x0E;
    /// NumVFs (16).
    pub const NUM_VFS: usize = 0x10;
    /// Function dependency link (8).
    pub const FUNCTION_DEPENDENCY: usize = 0x12;
    /// First VF offset (16).
    pub const FIRST_VF_OFFSET: usize = 0x14;
    /// VF stride (16).
    pub const VF_STRIDE: usize = 0x16;
    /// VF device id (16).
    pub const VF_DEVICE_ID: usize = 0x1A;
    /// Supported page sizes (32).
    pub const SUPPORTED_PAGE_SIZES: usize = 0x1C;
    /// System page size (32).
    pub const SYSTEM_PAGE_SIZE: usize = 0x20;
    /// VF BAR0; VF BAR n at `VF_BAR0 + 4·n`.
    pub const VF_BAR0: usize = 0x24;
    /// VF migration state array offset (32).
    pub const MIGRATION_STATE: usize = 0x3C;
    /// Control: VF enable.
    pub const CONTROL_VF_ENABLE: u16 = 1 << 0;
    /// Control: VF memory space enable.
    pub const CONTROL_VF_MSE: u16 = 1 << 3;
    /// Control: ARI capable hierarchy.
    pub const CONTROL_ARI: u16 = 1 << 4;
    /// Writable control bits the 82576 implements (no VF migration).
    pub const CONTROL_WRITABLE: u16 = CONTROL_VF_ENABLE | CONTROL_VF_MSE | CONTROL_ARI;
    /// TotalVFs and InitialVFs of the 82576.
    pub const TOTAL_VFS_82576: u16 = 8;
    /// Routing-id offset of VF 0 from the PF (devfn 0x80: device 0x10).
    pub const FIRST_VF_OFFSET_82576: u16 = 0x80;
    /// Routing-id distance between VFs (the two PFs' VFs interleave).
    pub const VF_STRIDE_82576: u16 = 2;
}

/// BAR descriptions (size and flags) of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarInfo {
    /// BAR index (0..6).
    pub index: u8,
    /// Size in bytes (power of two).
    pub size: u32,
    /// 64-bit memory BAR (uses index and index + 1).
    pub is_64bit: bool,
    /// Prefetchable.
    pub prefetchable: bool,
    /// I/O space BAR.
    pub io: bool,
}

impl BarInfo {
    /// The low flag bits a BAR register reads back with.
    pub const fn flags(&self) -> u32 {
        if self.io {
            1
        } else {
            (if self.is_64bit { 0b100 } else { 0 }) | (if self.prefetchable { 0b1000 } else { 0 })
        }
    }
}

/// The PF's BARs: BAR0 128 KiB MMIO, BAR2 32 B I/O, BAR3 16 KiB MSI-X (BAR1 flash not modelled).
pub const PF_BARS: [BarInfo; 3] = [
    BarInfo {
        index: 0,
        size: 128 * 1024,
        is_64bit: false,
        prefetchable: false,
        io: false,
    },
    BarInfo {
        index: 2,
        size: 32,
        is_64bit: false,
        prefetchable: false,
        io: true,
    },
    BarInfo {
        index: 3,
        size: 16 * 1024,
        is_64bit: false,
        prefetchable: false,
        io: false,
    },
];

/// A VF's BARs (programmed through the PF's SR-IOV capability): BAR0 16 KiB and BAR3 16 KiB
/// MSI-X, both 64-bit prefetchable.
pub const VF_BARS: [BarInfo; 2] = [
    BarInfo {
        index: 0,
        size: 16 * 1024,
        is_64bit: true,
        prefetchable: true,
        io: false,
    },
    BarInfo {
        index: 3,
        size: 16 * 1024,
        is_64bit: true,
        prefetchable: true,
        io: false,
    },
];

/// Routing id (bus << 8 | devfn) of VF `vf` for a PF at routing id `pf`, or `None` if it
/// overflows the 16-bit routing id (SR-IOV 3.3.10).
pub fn vf_routing_id(pf: u16, vf: usize, offset: u16, stride: u16) -> Option<u16> {
    let rid = u32::from(pf) + u32::from(offset) + (vf as u32) * u32::from(stride);
    u16::try_from(rid).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vf_routing_ids_match_82576_enumeration() {
        // PF at 01:00.0 → VFs at 01:10.0, 01:10.2, ...
        let pf = 0x0100;
        assert_eq!(vf_routing_id(pf, 0, 0x80, 2), Some(0x0180));
        assert_eq!(vf_routing_id(pf, 1, 0x80, 2), Some(0x0182));
        assert_eq!(vf_routing_id(0xFFFF, 1, 0x80, 2), None);
    }

    #[test]
    fn bar_flags() {
        assert_eq!(VF_BARS[0].flags(), 0b1100);
        assert_eq!(PF_BARS[1].flags(), 1);
    }
}

//! PCI configuration space of the PF and the VFs: the identity `mlx5_core` matches (vendor
//! 0x15B3, PF 0x101D, VF 0x101E, class Ethernet), BAR0 (64-bit prefetchable), the PCI Express
//! capability (FLR), MSI-X (table and PBA in BAR0) and, on the PF, SR-IOV.
//!
//! The mlx5 values (ids, capability offsets, BAR sizes, SR-IOV values) come from
//! `mlx5_hw::pci`; the register offsets inside the header and the capabilities are the PCI and
//! SR-IOV specifications', the same for every family. Config space is little-endian. Each
//! byte has a write mask: bits outside it are read-only and keep their value.

use mlx5_hw::pci::{self, Bar, cap_id, ext_cap_id, layout, msix, sriov};

/// Bytes of a function's configuration space (PCI Express: 4 KiB).
pub const CONFIG_LEN: usize = 4096;

/// Offsets in the type 0 header (PCI Local Bus specification).
pub mod header {
    /// Vendor id.
    pub const VENDOR_ID: usize = 0x00;
    /// Device id.
    pub const DEVICE_ID: usize = 0x02;
    /// Command register.
    pub const COMMAND: usize = 0x04;
    /// Status register.
    pub const STATUS: usize = 0x06;
    /// Revision id.
    pub const REVISION: usize = 0x08;
    /// Class code (3 bytes: programming interface, subclass, class).
    pub const CLASS: usize = 0x09;
    /// BAR0.
    pub const BAR0: usize = 0x10;
    /// Subsystem vendor id.
    pub const SUBSYSTEM_VENDOR_ID: usize = 0x2C;
    /// Subsystem id.
    pub const SUBSYSTEM_ID: usize = 0x2E;
    /// Capabilities pointer.
    pub const CAP_PTR: usize = 0x34;
    /// Command: memory space enable.
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    /// Command: bus master enable.
    pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
    /// Status: capability list present.
    pub const STATUS_CAP_LIST: u16 = 1 << 4;
}

/// Offsets in the PCI Express capability (from its start).
pub mod pcie {
    /// Device capabilities.
    pub const DEVCAP: usize = 0x04;
    /// Device control.
    pub const DEVCTL: usize = 0x08;
    /// Device capabilities: function-level reset capable.
    pub const DEVCAP_FLR: u32 = 1 << 28;
    /// Device control: initiate function-level reset (reads 0).
    pub const DEVCTL_INITIATE_FLR: u16 = 1 << 15;
}

/// Offsets in the MSI-X capability (from its start).
pub mod msix_cap {
    /// Message control.
    pub const CONTROL: usize = 0x02;
    /// Table offset and BIR.
    pub const TABLE: usize = 0x04;
    /// PBA offset and BIR.
    pub const PBA: usize = 0x08;
    /// Message control: MSI-X enable.
    pub const ENABLE: u16 = 1 << 15;
    /// Message control: function mask.
    pub const FUNCTION_MASK: u16 = 1 << 14;
}

/// Offsets in the SR-IOV extended capability (from its start; SR-IOV 1.1 section 3.3).
pub mod sriov_cap {
    /// SR-IOV control.
    pub const CONTROL: usize = 0x08;
    /// InitialVFs.
    pub const INITIAL_VFS: usize = 0x0C;
    /// TotalVFs.
    pub const TOTAL_VFS: usize = 0x0E;
    /// NumVFs.
    pub const NUM_VFS: usize = 0x10;
    /// First VF offset.
    pub const FIRST_VF_OFFSET: usize = 0x14;
    /// VF stride.
    pub const VF_STRIDE: usize = 0x16;
    /// VF device id.
    pub const VF_DEVICE_ID: usize = 0x1A;
    /// Supported page sizes.
    pub const SUPPORTED_PAGE_SIZES: usize = 0x1C;
    /// System page size.
    pub const SYSTEM_PAGE_SIZE: usize = 0x20;
    /// VF BAR0.
    pub const VF_BAR0: usize = 0x24;
    /// Control: VF enable.
    pub const CONTROL_VF_ENABLE: u16 = 1 << 0;
    /// Control: VF memory space enable.
    pub const CONTROL_VF_MSE: u16 = 1 << 3;
}

/// Why a configuration access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigAccessError {
    /// Not 1, 2 or 4 bytes, or not naturally aligned.
    #[error("configuration access not 1, 2 or 4 naturally aligned bytes")]
    Misaligned,
    /// Beyond the 4 KiB space.
    #[error("configuration access beyond 4 KiB")]
    OutOfRange,
}

/// One function's configuration space: bytes and their write masks.
#[derive(Clone)]
pub struct ConfigSpace {
    bytes: Vec<u8>,
    wmask: Vec<u8>,
}

impl ConfigSpace {
    fn blank(device: u16, bar: Bar, cap_ptr: u8) -> ConfigSpace {
        let mut c = ConfigSpace {
            bytes: vec![0; CONFIG_LEN],
            wmask: vec![0; CONFIG_LEN],
        };
        c.set16(header::VENDOR_ID, pci::VENDOR_MELLANOX);
        c.set16(header::DEVICE_ID, device);
        c.set16(header::STATUS, header::STATUS_CAP_LIST);
        c.bytes[header::REVISION] = pci::REVISION;
        let class = pci::CLASS_ETHERNET.to_le_bytes();
        c.bytes[header::CLASS..header::CLASS + 3].copy_from_slice(&class[..3]);
        c.set16(header::SUBSYSTEM_VENDOR_ID, pci::VENDOR_MELLANOX);
        c.bytes[header::CAP_PTR] = cap_ptr;
        c.mask16(
            header::COMMAND,
            header::COMMAND_MEMORY | header::COMMAND_BUS_MASTER | (1 << 6) | (1 << 8) | (1 << 10),
        );
        // BAR0, 64-bit: the low dword's address bits above the size are writable (sizing
        // reads back the size), the high dword entirely.
        c.set32(header::BAR0, bar.flags());
        c.mask32(header::BAR0, !(bar.size as u32).wrapping_sub(1) & !0xF);
        c.mask32(header::BAR0 + 4, u32::MAX);
        c
    }

    fn add_pcie(&mut self, at: usize, next: u8) {
        self.bytes[at] = cap_id::PCIE;
        self.bytes[at + 1] = next;
        // Capability version 2, device/port type 0: PCI Express endpoint.
        self.set16(at + 2, 0x0002);
        self.set32(at + pcie::DEVCAP, pcie::DEVCAP_FLR);
        self.mask16(at + pcie::DEVCTL, 0xFFFF);
    }

    fn add_msix(&mut self, at: usize, next: u8, table_size: u16) {
        self.bytes[at] = cap_id::MSIX;
        self.bytes[at + 1] = next;
        self.set16(at + msix_cap::CONTROL, table_size - 1);
        self.mask16(
            at + msix_cap::CONTROL,
            msix_cap::ENABLE | msix_cap::FUNCTION_MASK,
        );
        self.set32(
            at + msix_cap::TABLE,
            msix::TABLE_OFFSET | u32::from(msix::BAR),
        );
        self.set32(at + msix_cap::PBA, msix::PBA_OFFSET | u32::from(msix::BAR));
    }

    /// The PF's space: power management, PCI Express, MSI-X; AER, ARI and SR-IOV extended
    /// capabilities, SR-IOV advertising `total_vfs` VFs.
    pub fn new_pf(total_vfs: u16) -> ConfigSpace {
        let mut c = ConfigSpace::blank(pci::DEVICE_CONNECTX6_DX, pci::PF_BAR0, layout::PF_PM as u8);
        // Power management (version 3), then PCI Express, then MSI-X.
        c.bytes[layout::PF_PM] = cap_id::PM;
        c.bytes[layout::PF_PM + 1] = layout::PCIE as u8;
        c.set16(layout::PF_PM + 2, 0x0003);
        c.add_pcie(layout::PCIE, layout::MSIX as u8);
        c.add_msix(layout::MSIX, 0, msix::PF_TABLE_SIZE);
        // Extended capabilities: AER (registers all zero) → ARI → SR-IOV.
        c.set32(
            layout::PF_AER,
            ext_header(ext_cap_id::AER, 2, layout::PF_ARI),
        );
        c.set32(
            layout::PF_ARI,
            ext_header(ext_cap_id::ARI, 1, layout::PF_SRIOV),
        );
        let s = layout::PF_SRIOV;
        c.set32(s, ext_header(ext_cap_id::SRIOV, 1, 0));
        c.mask16(
            s + sriov_cap::CONTROL,
            sriov_cap::CONTROL_VF_ENABLE | sriov_cap::CONTROL_VF_MSE,
        );
        c.set16(s + sriov_cap::INITIAL_VFS, total_vfs);
        c.set16(s + sriov_cap::TOTAL_VFS, total_vfs);
        c.mask16(s + sriov_cap::NUM_VFS, 0xFFFF);
        c.set16(s + sriov_cap::FIRST_VF_OFFSET, sriov::FIRST_VF_OFFSET);
        c.set16(s + sriov_cap::VF_STRIDE, sriov::VF_STRIDE);
        c.set16(s + sriov_cap::VF_DEVICE_ID, sriov::VF_DEVICE_ID);
        c.set32(
            s + sriov_cap::SUPPORTED_PAGE_SIZES,
            sriov::SUPPORTED_PAGE_SIZES,
        );
        c.set32(s + sriov_cap::SYSTEM_PAGE_SIZE, sriov::SYSTEM_PAGE_SIZE);
        c.mask32(s + sriov_cap::SYSTEM_PAGE_SIZE, sriov::SUPPORTED_PAGE_SIZES);
        let vf_bar = pci::VF_BAR0;
        c.set32(s + sriov_cap::VF_BAR0, vf_bar.flags());
        c.mask32(
            s + sriov_cap::VF_BAR0,
            !(vf_bar.size as u32).wrapping_sub(1) & !0xF,
        );
        c.mask32(s + sriov_cap::VF_BAR0 + 4, u32::MAX);
        c
    }

    /// A VF's space as a VMM presents it to the guest (vendor and device id filled in, BAR0
    /// at its own header): PCI Express and MSI-X.
    pub fn new_vf() -> ConfigSpace {
        let mut c = ConfigSpace::blank(pci::DEVICE_CONNECTX_VF, pci::VF_BAR0, layout::PCIE as u8);
        c.add_pcie(layout::PCIE, layout::MSIX as u8);
        c.add_msix(layout::MSIX, 0, msix::VF_TABLE_SIZE);
        c
    }

    fn check(offset: usize, len: usize) -> Result<(), ConfigAccessError> {
        if !matches!(len, 1 | 2 | 4) || !offset.is_multiple_of(len) {
            return Err(ConfigAccessError::Misaligned);
        }
        if offset + len > CONFIG_LEN {
            return Err(ConfigAccessError::OutOfRange);
        }
        Ok(())
    }

    /// Reads `data.len()` bytes at `offset`.
    pub fn read(&self, offset: usize, data: &mut [u8]) -> Result<(), ConfigAccessError> {
        ConfigSpace::check(offset, data.len())?;
        data.copy_from_slice(&self.bytes[offset..offset + data.len()]);
        Ok(())
    }

    /// Writes `data` at `offset`, through the write masks.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), ConfigAccessError> {
        ConfigSpace::check(offset, data.len())?;
        for (i, &b) in data.iter().enumerate() {
            let m = self.wmask[offset + i];
            let cur = self.bytes[offset + i];
            self.bytes[offset + i] = (cur & !m) | (b & m);
        }
        Ok(())
    }

    /// The 16-bit register at `at` (all ones beyond the space).
    pub fn get16(&self, at: usize) -> u16 {
        match self.bytes.get(at..at.saturating_add(2)) {
            Some(&[lo, hi]) => u16::from_le_bytes([lo, hi]),
            _ => u16::MAX,
        }
    }

    /// Sets the 16-bit register at `at` (no write mask: the device's own update).
    pub(crate) fn set16(&mut self, at: usize, v: u16) {
        self.bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn set32(&mut self, at: usize, v: u32) {
        self.bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn mask16(&mut self, at: usize, m: u16) {
        self.wmask[at..at + 2].copy_from_slice(&m.to_le_bytes());
    }

    fn mask32(&mut self, at: usize, m: u32) {
        self.wmask[at..at + 4].copy_from_slice(&m.to_le_bytes());
    }

    /// Command register.
    pub fn command(&self) -> u16 {
        self.get16(header::COMMAND)
    }

    /// MSI-X message control.
    pub fn msix_control(&self) -> u16 {
        self.get16(layout::MSIX + msix_cap::CONTROL)
    }

    /// SR-IOV control (PF).
    pub fn sriov_control(&self) -> u16 {
        self.get16(layout::PF_SRIOV + sriov_cap::CONTROL)
    }

    /// NumVFs (PF).
    pub fn sriov_num_vfs(&self) -> u16 {
        self.get16(layout::PF_SRIOV + sriov_cap::NUM_VFS)
    }

    /// Takes a pending FLR request (the Initiate FLR bit, which reads 0 afterwards).
    pub(crate) fn take_flr_request(&mut self) -> bool {
        let at = layout::PCIE + pcie::DEVCTL;
        let v = self.get16(at);
        if v & pcie::DEVCTL_INITIATE_FLR == 0 {
            return false;
        }
        self.set16(at, v & !pcie::DEVCTL_INITIATE_FLR);
        true
    }
}

/// An extended capability header: id, version, next pointer.
fn ext_header(id: u16, version: u8, next: usize) -> u32 {
    u32::from(id) | (u32::from(version) << 16) | ((next as u32) << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_bar_sizing_and_capabilities() {
        let mut vf = ConfigSpace::new_vf();
        let mut b = [0u8; 4];
        vf.read(0, &mut b).unwrap();
        assert_eq!(b, [0xB3, 0x15, 0x1E, 0x10]);
        vf.write(header::BAR0, &[0xFF; 4]).unwrap();
        vf.read(header::BAR0, &mut b).unwrap();
        assert_eq!(u32::from_le_bytes(b), !(2 * 1024 * 1024 - 1) | 0xC);
        assert_eq!(vf.bytes[header::CAP_PTR] as usize, layout::PCIE);
        assert_eq!(vf.bytes[layout::MSIX], cap_id::MSIX);
        assert_eq!(vf.msix_control() & 0x7FF, msix::VF_TABLE_SIZE - 1);
        // Read-only: the vendor id does not change.
        vf.write(0, &[0, 0]).unwrap();
        assert_eq!(vf.get16(0), pci::VENDOR_MELLANOX);
        assert_eq!(vf.read(1, &mut b), Err(ConfigAccessError::Misaligned));
        assert_eq!(vf.read(4094, &mut b[..2]), Ok(()));
        assert_eq!(
            vf.read(4096, &mut b[..1]),
            Err(ConfigAccessError::OutOfRange)
        );
        let pf = ConfigSpace::new_pf(4);
        assert_eq!(pf.get16(layout::PF_SRIOV + sriov_cap::TOTAL_VFS), 4);
        assert_eq!(
            pf.get16(layout::PF_SRIOV + sriov_cap::VF_DEVICE_ID),
            pci::DEVICE_CONNECTX_VF
        );
    }
}

//! PCI configuration space of the PF and of each VF, with the SR-IOV extended capability.
//!
//! A [`ConfigSpace`] is a 4 KiB byte store with a per-bit write mask: BAR sizing, read-only ids
//! and capability structures all fall out of the masks (writing all-ones to a BAR reads back
//! `!(size − 1) | flags`). Semantics that need more than a mask — VF Enable creating VFs, NumVFs
//! being frozen while VFs are enabled, FLR, MSI-X enable — are applied by the device after each
//! write, from the before/after values (see `Nic::config_write` in `nic/config.rs`).
//!
//! Per the SR-IOV specification (3.4.1.1–3.4.1.2) a VF's Vendor ID and Device ID read as FFFFh;
//! the VF device id lives in the PF's SR-IOV capability, and a VMM front end (Linux vfio-pci, or
//! our vfio-user server) presents 8086:10CA to the guest. VF BAR registers in the VF's own header
//! read 0; VF BARs are programmed once for all VFs through the PF's SR-IOV capability.

use igb_hw::pci::{
    self, BarInfo, CONFIG_SPACE_SIZE, cap_id, command, ext_cap_id, header, layout, msix, sriov,
};

/// Offset of Device Control in the PCI Express capability.
const PCIE_DEVICE_CONTROL: usize = 0x08;
/// Device Control: Initiate Function Level Reset (PCIe base specification 7.5.3.4).
const DEVICE_CONTROL_INITIATE_FLR: u16 = 1 << 15;

/// Configuration space of one function.
pub struct ConfigSpace {
    bytes: Box<[u8; CONFIG_SPACE_SIZE]>,
    wmask: Box<[u8; CONFIG_SPACE_SIZE]>,
}

/// An access that the configuration space did not perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigAccessError {
    /// Not 1, 2 or 4 bytes, or not naturally aligned.
    Misaligned,
    /// Beyond the 4 KiB space.
    OutOfRange,
}

impl ConfigSpace {
    fn empty() -> ConfigSpace {
        ConfigSpace {
            bytes: Box::new([0; CONFIG_SPACE_SIZE]),
            wmask: Box::new([0; CONFIG_SPACE_SIZE]),
        }
    }

    fn set8(&mut self, off: usize, v: u8) {
        self.bytes[off] = v;
    }
    fn set16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn set32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn mask16(&mut self, off: usize, m: u16) {
        self.wmask[off..off + 2].copy_from_slice(&m.to_le_bytes());
    }
    fn mask32(&mut self, off: usize, m: u32) {
        self.wmask[off..off + 4].copy_from_slice(&m.to_le_bytes());
    }

    /// Reads a 16-bit field (device-internal; no side effects).
    pub fn get16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.bytes[off], self.bytes[off + 1]])
    }
    /// Reads a 32-bit field (device-internal; no side effects).
    pub fn get32(&self, off: usize) -> u32 {
        u32::from_le_bytes([
            self.bytes[off],
            self.bytes[off + 1],
            self.bytes[off + 2],
            self.bytes[off + 3],
        ])
    }
    /// Overwrites a 16-bit field regardless of the mask (device-internal).
    pub fn force16(&mut self, off: usize, v: u16) {
        self.set16(off, v);
    }

    fn check(offset: usize, len: usize) -> Result<(), ConfigAccessError> {
        if !matches!(len, 1 | 2 | 4) || !offset.is_multiple_of(len) {
            return Err(ConfigAccessError::Misaligned);
        }
        if offset + len > CONFIG_SPACE_SIZE {
            return Err(ConfigAccessError::OutOfRange);
        }
        Ok(())
    }

    /// A software read.
    pub fn read(&self, offset: usize, data: &mut [u8]) -> Result<(), ConfigAccessError> {
        Self::check(offset, data.len())?;
        data.copy_from_slice(&self.bytes[offset..offset + data.len()]);
        Ok(())
    }

    /// A software write: only the writable bits change.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), ConfigAccessError> {
        Self::check(offset, data.len())?;
        for (i, &b) in data.iter().enumerate() {
            let m = self.wmask[offset + i];
            self.bytes[offset + i] = (self.bytes[offset + i] & !m) | (b & m);
        }
        Ok(())
    }

    fn add_bar(&mut self, bar_reg: usize, bar: &BarInfo) {
        self.set32(bar_reg, bar.flags());
        let low_mask = if bar.io {
            !(bar.size - 1) & !0x3
        } else {
            !(bar.size - 1) & !0xF
        };
        self.mask32(bar_reg, low_mask);
        if bar.is_64bit {
            self.mask32(bar_reg + 4, u32::MAX);
        }
    }

    fn add_msix(&mut self, at: usize, next: u8, vectors: u16) {
        self.set8(at, cap_id::MSIX);
        self.set8(at + 1, next);
        self.set16(at + msix::CONTROL, vectors - 1);
        self.mask16(at + msix::CONTROL, msix::ENABLE | msix::FUNCTION_MASK);
        self.set32(at + msix::TABLE, u32::from(msix::BAR));
        self.set32(
            at + msix::PBA,
            igb_hw::regs::MSIX_PBA_OFFSET | u32::from(msix::BAR),
        );
    }

    fn add_pcie(&mut self, at: usize, next: u8, flr: bool) {
        self.set8(at, cap_id::PCIE);
        self.set8(at + 1, next);
        self.set16(at + 2, 0x0002); // version 2, PCI Express endpoint
        // Device capabilities: max payload 512 bytes, FLR capable (bit 28) for VFs.
        self.set32(at + 4, 0x2 | if flr { 1 << 28 } else { 0 });
        // Device control: relaxed ordering, max payload/read request, and Initiate FLR (bit 15,
        // always reads 0; the device clears it right after acting on it).
        let initiate_flr = if flr { DEVICE_CONTROL_INITIATE_FLR } else { 0 };
        self.mask16(at + PCIE_DEVICE_CONTROL, 0x7CFF | initiate_flr);
        self.set16(at + PCIE_DEVICE_CONTROL, 0x2810);
        self.set32(at + 0x0C, 0x0003_0C11); // link: 2.5 GT/s x1, ASPM L0s/L1
        self.set16(at + 0x12, 0x1011); // link status: 2.5 GT/s x1, slot clock
    }

    fn add_ext(&mut self, at: usize, id: u16, version: u8, next: usize) {
        self.set32(
            at,
            u32::from(id) | (u32::from(version) << 16) | ((next as u32) << 20),
        );
    }

    fn common_header(&mut self, vendor: u16, device: u16) {
        self.set16(header::VENDOR_ID, vendor);
        self.set16(header::DEVICE_ID, device);
        self.set16(header::STATUS, pci::status::CAP_LIST);
        self.set8(header::REVISION_ID, pci::REVISION);
        let class = pci::CLASS_ETHERNET.to_le_bytes();
        self.bytes[header::CLASS_CODE..header::CLASS_CODE + 3].copy_from_slice(&class[..3]);
        self.set16(header::SUBSYSTEM_VENDOR_ID, pci::VENDOR_INTEL);
        self.set16(header::SUBSYSTEM_ID, 0xA02C);
    }

    /// The PF's configuration space with `total_vfs` advertised in the SR-IOV capability.
    pub fn new_pf(total_vfs: u16) -> ConfigSpace {
        let mut c = ConfigSpace::empty();
        c.common_header(pci::VENDOR_INTEL, pci::DEVICE_82576);
        c.set8(header::HEADER_TYPE, 0x80); // multi-function (two ports on the real card)
        c.mask16(header::COMMAND, command::PF_WRITABLE);
        for bar in &pci::PF_BARS {
            c.add_bar(header::BAR0 + 4 * usize::from(bar.index), bar);
        }
        c.set8(header::CAPABILITIES, layout::PF_PM as u8);
        c.set8(header::INTERRUPT_PIN, 1);
        c.wmask[header::INTERRUPT_LINE] = 0xFF;
        // Power management (structure only).
        c.set8(layout::PF_PM, cap_id::PM);
        c.set8(layout::PF_PM + 1, layout::PF_MSI as u8);
        c.set16(layout::PF_PM + 2, 0xC823);
        c.mask16(layout::PF_PM + 4, 0x0103);
        // MSI, 64-bit, one vector (structure only: the model signals the PF through MSI-X).
        c.set8(layout::PF_MSI, cap_id::MSI);
        c.set8(layout::PF_MSI + 1, layout::MSIX as u8);
        c.set16(layout::PF_MSI + 2, 0x0080);
        c.mask16(layout::PF_MSI + 2, 0x0001);
        c.mask32(layout::PF_MSI + 4, 0xFFFF_FFFC);
        c.mask32(layout::PF_MSI + 8, u32::MAX);
        c.mask16(layout::PF_MSI + 12, u16::MAX);
        c.add_msix(
            layout::MSIX,
            layout::PCIE as u8,
            igb_hw::regs::PF_MSIX_VECTORS as u16,
        );
        c.add_pcie(layout::PCIE, 0, false);
        c.add_ext(layout::AER, ext_cap_id::AER, 1, layout::ARI);
        c.add_ext(layout::ARI, ext_cap_id::ARI, 1, layout::SRIOV);
        c.set16(layout::ARI + 4, 0x0100); // ARI capability: next function number 1 (second port)
        let s = layout::SRIOV;
        c.add_ext(s, ext_cap_id::SRIOV, 1, 0);
        c.mask16(s + sriov::CONTROL, sriov::CONTROL_WRITABLE);
        c.set16(s + sriov::INITIAL_VFS, total_vfs);
        c.set16(s + sriov::TOTAL_VFS, total_vfs);
        c.mask16(s + sriov::NUM_VFS, 0x00FF);
        c.set16(s + sriov::FIRST_VF_OFFSET, sriov::FIRST_VF_OFFSET_82576);
        c.set16(s + sriov::VF_STRIDE, sriov::VF_STRIDE_82576);
        c.set16(s + sriov::VF_DEVICE_ID, pci::DEVICE_82576_VF);
        c.set32(s + sriov::SUPPORTED_PAGE_SIZES, 0x0553);
        c.set32(s + sriov::SYSTEM_PAGE_SIZE, 0x0001);
        c.mask32(s + sriov::SYSTEM_PAGE_SIZE, 0x0553);
        for bar in &pci::VF_BARS {
            c.add_bar(s + sriov::VF_BAR0 + 4 * usize::from(bar.index), bar);
        }
        c
    }

    /// A VF's configuration space.
    pub fn new_vf() -> ConfigSpace {
        let mut c = ConfigSpace::empty();
        c.common_header(0xFFFF, 0xFFFF);
        c.mask16(header::COMMAND, command::VF_WRITABLE);
        c.set8(header::CAPABILITIES, layout::MSIX as u8);
        c.add_msix(
            layout::MSIX,
            layout::PCIE as u8,
            igb_hw::regs::VF_MSIX_VECTORS as u16,
        );
        c.add_pcie(layout::PCIE, 0, true);
        c.add_ext(layout::AER, ext_cap_id::AER, 1, layout::ARI);
        c.add_ext(layout::ARI, ext_cap_id::ARI, 1, 0);
        c
    }

    /// The Command register.
    pub fn command(&self) -> u16 {
        self.get16(header::COMMAND)
    }

    /// MSI-X message control.
    pub fn msix_control(&self) -> u16 {
        self.get16(layout::MSIX + msix::CONTROL)
    }

    /// SR-IOV control (PF only).
    pub fn sriov_control(&self) -> u16 {
        self.get16(layout::SRIOV + sriov::CONTROL)
    }

    /// SR-IOV NumVFs (PF only).
    pub fn sriov_num_vfs(&self) -> u16 {
        self.get16(layout::SRIOV + sriov::NUM_VFS)
    }

    /// SR-IOV TotalVFs (PF only).
    pub fn sriov_total_vfs(&self) -> u16 {
        self.get16(layout::SRIOV + sriov::TOTAL_VFS)
    }

    /// PCIe device control.
    pub fn pcie_device_control(&self) -> u16 {
        self.get16(layout::PCIE + PCIE_DEVICE_CONTROL)
    }

    /// Whether software just set Initiate FLR; clears it (the bit always reads 0: the device
    /// acts on it at once).
    pub fn take_flr_request(&mut self) -> bool {
        let devctl = self.pcie_device_control();
        let requested = devctl & DEVICE_CONTROL_INITIATE_FLR != 0;
        if requested {
            self.force16(
                layout::PCIE + PCIE_DEVICE_CONTROL,
                devctl & !DEVICE_CONTROL_INITIATE_FLR,
            );
        }
        requested
    }

    /// The raw bytes, for snapshots.
    pub fn bytes(&self) -> &[u8; CONFIG_SPACE_SIZE] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_sizing_reads_back_size_mask() {
        let mut c = ConfigSpace::new_pf(8);
        c.write(header::BAR0, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(c.get32(header::BAR0), !(128 * 1024 - 1) & !0xF);
        c.write(header::BAR0 + 12, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(c.get32(header::BAR0 + 12), !(16 * 1024 - 1) & !0xF);
        let vf_bar0 = layout::SRIOV + sriov::VF_BAR0;
        c.write(vf_bar0, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(c.get32(vf_bar0), !(16 * 1024 - 1) & !0xF | 0b1100);
    }

    #[test]
    fn ids_and_capability_chain() {
        let c = ConfigSpace::new_pf(8);
        assert_eq!(c.get16(header::VENDOR_ID), 0x8086);
        assert_eq!(c.get16(header::DEVICE_ID), 0x10C9);
        assert_eq!(
            c.get32(layout::SRIOV) & 0xFFFF,
            u32::from(ext_cap_id::SRIOV)
        );
        assert_eq!(c.get16(layout::SRIOV + sriov::VF_DEVICE_ID), 0x10CA);
        assert_eq!(c.get16(layout::SRIOV + sriov::FIRST_VF_OFFSET), 0x80);
        // Walk the conventional list: PM -> MSI -> MSI-X -> PCIe.
        let mut at = usize::from(c.bytes()[header::CAPABILITIES]);
        let mut ids = vec![];
        while at != 0 {
            ids.push(c.bytes()[at]);
            at = usize::from(c.bytes()[at + 1]);
        }
        assert_eq!(
            ids,
            vec![cap_id::PM, cap_id::MSI, cap_id::MSIX, cap_id::PCIE]
        );
        let vf = ConfigSpace::new_vf();
        assert_eq!(vf.get16(header::VENDOR_ID), 0xFFFF);
        assert_eq!(vf.msix_control() & 0x7FF, 2, "3 vectors");
    }

    #[test]
    fn misaligned_and_out_of_range_accesses_are_refused() {
        let mut c = ConfigSpace::new_vf();
        assert_eq!(c.write(1, &[0, 0]), Err(ConfigAccessError::Misaligned));
        assert_eq!(c.read(0, &mut [0; 3]), Err(ConfigAccessError::Misaligned));
        assert_eq!(
            c.read(4096, &mut [0; 1]),
            Err(ConfigAccessError::OutOfRange)
        );
        c.write(header::COMMAND, &0xFFFFu16.to_le_bytes()).unwrap();
        assert_eq!(
            c.command(),
            command::BUS_MASTER,
            "a VF implements only bus master"
        );
    }
}

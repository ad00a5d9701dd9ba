//! Access registers read and written with ACCESS_REG (see
//! [`lifecycle::AccessRegIn`](super::lifecycle::AccessRegIn)): port administrative state
//! (PAOS), port MTU (PMTU), the default timeouts (DTOR) and the host endianness — the ones
//! Linux `mlx5_core`/mlx5e and rdma-core's VFIO provider touch on a VF (Linux `mlx5_ifc.h`;
//! `port.c`, `lib/tout.c`, `main.c`).

use crate::field::Field;
use crate::init_seg::Timeout;
use crate::layout::layout;

/// PAOS `admin_status` / `oper_status` values.
pub mod port_status {
    /// Up.
    pub const UP: u8 = 1;
    /// Down.
    pub const DOWN: u8 = 2;
    /// Up once, then down after a failure (operational only).
    pub const UP_ONCE: u8 = 3;
    /// Down by a port failure (operational only).
    pub const DOWN_BY_FAILURE: u8 = 4;
}

layout! {
    /// PAOS (0x5006): port administrative and operational status (16 bytes).
    pub struct Paos(0x10) {
        /// Switch partition.
        swid, set_swid: u8 = Field::at(0x00, 31, 24);
        /// Local port (1 for a single-port function).
        local_port, set_local_port: u8 = Field::at(0x00, 23, 16);
        /// Administrative status ([`port_status`]).
        admin_status, set_admin_status: u8 = Field::at(0x00, 11, 8);
        /// Operational status ([`port_status`]).
        oper_status, set_oper_status: u8 = Field::at(0x00, 3, 0);
        /// Apply `admin_status` (write).
        ase, set_ase: bool = Field::at(0x04, 31, 31);
        /// Apply the event-generation mode `e` (write).
        ee, set_ee: bool = Field::at(0x04, 30, 30);
        /// Event generation on operational state changes.
        e, set_e: u8 = Field::at(0x04, 1, 0);
    }
}

layout! {
    /// PMTU (0x5003): port MTU, in bytes including the L2 header (16 bytes).
    pub struct Pmtu(0x10) {
        /// Local port.
        local_port, set_local_port: u8 = Field::at(0x00, 23, 16);
        /// Largest MTU the port supports.
        max_mtu, set_max_mtu: u16 = Field::at(0x04, 31, 16);
        /// MTU the driver asks for (mlx5e: netdev MTU + 22).
        admin_mtu, set_admin_mtu: u16 = Field::at(0x08, 31, 16);
        /// MTU in force.
        oper_mtu, set_oper_mtu: u16 = Field::at(0x0C, 31, 16);
    }
}

layout! {
    /// DTOR (0xC00E): the device's default timeouts (64 bytes), each in the
    /// [`Timeout`] format. Read only when the init segment reports timeouts.
    pub struct Dtor(0x40) {
        /// PCIe link toggle.
        raw_pcie_toggle_to, set_raw_pcie_toggle_to: u32 = Field::dword(0x04);
        /// Health poll interval.
        raw_health_poll_to, set_raw_health_poll_to: u32 = Field::dword(0x14);
        /// Full crash dump.
        raw_full_crdump_to, set_raw_full_crdump_to: u32 = Field::dword(0x18);
        /// Firmware reset.
        raw_fw_reset_to, set_raw_fw_reset_to: u32 = Field::dword(0x1C);
        /// Flush on error.
        raw_flush_on_err_to, set_raw_flush_on_err_to: u32 = Field::dword(0x20);
        /// PCI sync update.
        raw_pci_sync_update_to, set_raw_pci_sync_update_to: u32 = Field::dword(0x24);
        /// Teardown.
        raw_tear_down_to, set_raw_tear_down_to: u32 = Field::dword(0x28);
        /// Firmware state machine reactivation.
        raw_fsm_reactivate_to, set_raw_fsm_reactivate_to: u32 = Field::dword(0x2C);
        /// Page reclaim (MANAGE_PAGES take) without progress.
        raw_reclaim_pages_to, set_raw_reclaim_pages_to: u32 = Field::dword(0x30);
        /// Reclaim of the VFs' pages.
        raw_reclaim_vfs_pages_to, set_raw_reclaim_vfs_pages_to: u32 = Field::dword(0x34);
        /// Reset unload.
        raw_reset_unload_to, set_raw_reset_unload_to: u32 = Field::dword(0x38);
    }
}

impl<T: AsRef<[u8]>> Dtor<T> {
    /// The health poll interval.
    pub fn health_poll_to(&self) -> Timeout {
        Timeout::from_register(self.raw_health_poll_to())
    }
    /// The page reclaim timeout.
    pub fn reclaim_pages_to(&self) -> Timeout {
        Timeout::from_register(self.raw_reclaim_pages_to())
    }
    /// The teardown timeout.
    pub fn tear_down_to(&self) -> Timeout {
        Timeout::from_register(self.raw_tear_down_to())
    }
}

layout! {
    /// HOST_ENDIANNESS (0x7004): 16 bytes; rdma-core writes it on every bring-up, Linux only
    /// on a PF.
    pub struct HostEndianness(0x10) {
        /// Host is big-endian.
        he, set_he: bool = Field::at(0x00, 31, 31);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn register_offsets() {
        let mut b = [0u8; 0x10];
        let mut p = Paos::new_checked(&mut b[..]).unwrap();
        p.set_local_port(1);
        p.set_admin_status(port_status::UP);
        p.set_oper_status(port_status::DOWN);
        p.set_ase(true);
        assert_eq!(&b[..8], &[0, 1, 0x01, 0x02, 0x80, 0, 0, 0]);

        let mut b = [0u8; 0x10];
        let mut m = Pmtu::new_checked(&mut b[..]).unwrap();
        m.set_max_mtu(9216);
        m.set_admin_mtu(1500 + 22);
        m.set_oper_mtu(1522);
        assert_eq!(&b[4..6], &9216u16.to_be_bytes());
        assert_eq!(&b[8..10], &1522u16.to_be_bytes());
        assert_eq!(&b[12..14], &1522u16.to_be_bytes());

        let mut b = [0u8; 0x40];
        let mut d = Dtor::new_checked(&mut b[..]).unwrap();
        d.set_raw_health_poll_to(
            Timeout {
                unit: Timeout::UNIT_S,
                value: 2,
            }
            .to_register(),
        );
        d.set_raw_reclaim_pages_to(Timeout::millis(5000).to_register());
        assert_eq!(&b[0x14..0x18], &[0x20, 0, 0, 2]);
        let d = Dtor::new_checked(&b[..]).unwrap();
        assert_eq!(d.health_poll_to().as_millis(), Some(2000));
        assert_eq!(d.reclaim_pages_to().as_millis(), Some(5000));

        let mut b = [0u8; 0x10];
        HostEndianness::new_checked(&mut b[..])
            .unwrap()
            .set_he(true);
        assert_eq!(b[0], 0x80);
    }
}

//! Access registers read and written with ACCESS_REG (see
//! [`lifecycle::AccessRegIn`](super::lifecycle::AccessRegIn)): port administrative state
//! (PAOS), port MTU (PMTU), port type and speed (PTYS), port counters (PPCNT), the default
//! timeouts (DTOR) and the host endianness — the ones Linux `mlx5_core`/mlx5e and rdma-core's
//! VFIO provider touch on a VF (Linux `mlx5_ifc.h`; `port.c`, `en/port.c`, `en_stats.c`,
//! `lib/tout.c`, `main.c`).

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

/// PTYS `proto_mask` bits: which protocol's fields a PTYS access is about.
pub mod ptys_proto {
    /// InfiniBand.
    pub const IB: u8 = 1 << 0;
    /// Ethernet.
    pub const ETH: u8 = 1 << 2;
}

/// The legacy Ethernet link modes of PTYS `eth_proto_*` (bit numbers; Linux
/// `enum mlx5e_link_mode`). Only those the model's line rates map to.
pub mod eth_link_mode {
    /// 1000BASE-KX (1 Gb/s).
    pub const G1_KX: u32 = 1;
    /// 10GBASE-KR (10 Gb/s).
    pub const G10_KR: u32 = 4;
    /// 40GBASE-KR4 (40 Gb/s).
    pub const G40_KR4: u32 = 7;
    /// 100GBASE-KR4 (100 Gb/s).
    pub const G100_KR4: u32 = 22;
    /// 25GBASE-KR (25 Gb/s).
    pub const G25_KR: u32 = 28;
    /// 50GBASE-KR2 (50 Gb/s).
    pub const G50_KR2: u32 = 31;

    /// The link mode bit of a line rate in bits per second, if it has one.
    pub fn for_rate(bits_per_sec: u64) -> Option<u32> {
        match bits_per_sec {
            1_000_000_000 => Some(G1_KX),
            10_000_000_000 => Some(G10_KR),
            25_000_000_000 => Some(G25_KR),
            40_000_000_000 => Some(G40_KR4),
            50_000_000_000 => Some(G50_KR2),
            100_000_000_000 => Some(G100_KR4),
            _ => None,
        }
    }
}

layout! {
    /// PTYS (0x5004): port type and speed (64 bytes). Ethernet fields only; the extended
    /// (`ext_eth_proto_*`) fields are used by drivers only when PCAM says so.
    pub struct Ptys(0x40) {
        /// Local port.
        local_port, set_local_port: u8 = Field::at(0x00, 23, 16);
        /// Protocols the access is about ([`ptys_proto`]).
        proto_mask, set_proto_mask: u8 = Field::at(0x00, 2, 0);
        /// Auto-negotiation status.
        an_status, set_an_status: u8 = Field::at(0x04, 31, 28);
        /// Ethernet link modes the port supports (bit per [`eth_link_mode`]).
        eth_proto_capability, set_eth_proto_capability: u32 = Field::dword(0x0C);
        /// Ethernet link modes the administrator allows.
        eth_proto_admin, set_eth_proto_admin: u32 = Field::dword(0x18);
        /// Ethernet link mode in operation (0: link down).
        eth_proto_oper, set_eth_proto_oper: u32 = Field::dword(0x24);
        /// Connector type (0: none/unknown).
        connector_type, set_connector_type: u8 = Field::at(0x2C, 3, 0);
    }
}

/// PPCNT counter groups (`grp`).
pub mod ppcnt_group {
    /// IEEE 802.3 counters ([`Ieee8023Counter`](super::Ieee8023Counter)).
    pub const IEEE_802_3: u8 = 0x00;
    /// RFC 2863 (interfaces MIB) counters.
    pub const RFC_2863: u8 = 0x01;
    /// RFC 2819 (RMON) counters.
    pub const RFC_2819: u8 = 0x02;
}

layout! {
    /// PPCNT (0x5008): port counters (256 bytes): a header, then the group's counter set.
    pub struct Ppcnt(0x100) {
        /// Local port.
        local_port, set_local_port: u8 = Field::at(0x00, 23, 16);
        /// Port number access type.
        pnat, set_pnat: u8 = Field::at(0x00, 15, 14);
        /// Counter group ([`ppcnt_group`]).
        grp, set_grp: u8 = Field::at(0x00, 5, 0);
        /// Clear the group's counters (write).
        clr, set_clr: bool = Field::at(0x04, 31, 31);
        /// Priority or traffic class (per-priority groups).
        prio_tc, set_prio_tc: u8 = Field::at(0x04, 2, 0);
    }
}

/// Where PPCNT's counter set starts.
pub const PPCNT_COUNTER_SET_OFFSET: usize = 0x08;

/// The IEEE 802.3 group's counters, in their order: each a 64-bit big-endian value at
/// [`PPCNT_COUNTER_SET_OFFSET`] + 8 × index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Ieee8023Counter {
    FramesTransmittedOk = 0,
    FramesReceivedOk,
    FrameCheckSequenceErrors,
    AlignmentErrors,
    OctetsTransmittedOk,
    OctetsReceivedOk,
    MulticastFramesXmittedOk,
    BroadcastFramesXmittedOk,
    MulticastFramesReceivedOk,
    BroadcastFramesReceivedOk,
    InRangeLengthErrors,
    OutOfRangeLengthField,
    FrameTooLongErrors,
    SymbolErrorDuringCarrier,
    MacControlFramesTransmitted,
    MacControlFramesReceived,
    UnsupportedOpcodesReceived,
    PauseMacCtrlFramesReceived,
    PauseMacCtrlFramesTransmitted,
}

impl<T: AsRef<[u8]>> Ppcnt<T> {
    /// An IEEE 802.3 counter (group [`ppcnt_group::IEEE_802_3`]).
    pub fn ieee_802_3(&self, c: Ieee8023Counter) -> u64 {
        Field::qword(PPCNT_COUNTER_SET_OFFSET + 8 * c as usize)
            .get(self.as_bytes())
            .unwrap_or(0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ppcnt<T> {
    /// Sets an IEEE 802.3 counter.
    pub fn set_ieee_802_3(&mut self, c: Ieee8023Counter, v: u64) {
        let _fits =
            Field::qword(PPCNT_COUNTER_SET_OFFSET + 8 * c as usize).set(self.as_bytes_mut(), v);
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
        let mut t = Ptys::new_checked(&mut b[..]).unwrap();
        t.set_local_port(1);
        t.set_proto_mask(ptys_proto::ETH);
        t.set_eth_proto_capability(1 << eth_link_mode::G10_KR);
        t.set_eth_proto_admin(1 << eth_link_mode::G10_KR);
        t.set_eth_proto_oper(1 << eth_link_mode::G10_KR);
        assert_eq!(&b[..4], &[0, 1, 0, 4]);
        assert_eq!(&b[0x0C..0x10], &0x10u32.to_be_bytes());
        assert_eq!(&b[0x18..0x1C], &0x10u32.to_be_bytes());
        assert_eq!(&b[0x24..0x28], &0x10u32.to_be_bytes());
        assert_eq!(eth_link_mode::for_rate(25_000_000_000), Some(28));
        assert_eq!(eth_link_mode::for_rate(7), None);

        let mut b = [0u8; 0x100];
        let mut c = Ppcnt::new_checked(&mut b[..]).unwrap();
        c.set_local_port(1);
        c.set_grp(ppcnt_group::RFC_2819);
        c.set_ieee_802_3(Ieee8023Counter::FramesTransmittedOk, 0x0102_0304_0506_0708);
        c.set_ieee_802_3(Ieee8023Counter::PauseMacCtrlFramesTransmitted, 9);
        assert_eq!(
            c.ieee_802_3(Ieee8023Counter::PauseMacCtrlFramesTransmitted),
            9
        );
        assert_eq!(&b[..4], &[0, 1, 0, 2]);
        assert_eq!(&b[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        // The 19th counter (index 18) ends at 0x08 + 19 × 8 = 0xA0 (bit 0x4C0 of the set + 0x40).
        assert_eq!(&b[0x98..0xA0], &9u64.to_be_bytes());

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

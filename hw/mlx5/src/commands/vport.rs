//! Vport commands: link state, the NIC vport context (permanent MAC, MTU, unicast/multicast
//! address lists, promiscuous modes, loopback) and traffic counters (Linux `mlx5_ifc.h`;
//! `vport.c`, `en_main.c`, `eswitch.c`).
//!
//! A function addresses its own vport with `other_vport` = 0; the PF (the E-Switch manager)
//! addresses VF n's with `other_vport` = 1 and `vport_number` = n + 1 (see
//! [`eswitch::Vport`](super::eswitch::Vport)).

use hw_common::MacAddress;

use crate::cmd::Opcode;
use crate::commands::OUT_LEN_16;
use crate::field::{Bytes, Field};
use crate::layout::{field_enum, layout, nested};
use crate::wqe::InlineMode;

/// Fields shared by the vport-addressed commands (dword 2 of the input).
pub mod addressing {
    use crate::field::Field;

    /// Act on another vport (the E-Switch manager on behalf of a VF).
    pub const OTHER_VPORT: Field = Field::at(0x08, 31, 31);
    /// The vport (with `other_vport`).
    pub const VPORT_NUMBER: Field = Field::at(0x08, 15, 0);
}

/// QUERY/MODIFY_VPORT_STATE op_mod.
pub mod vport_state_op {
    /// The function's own vNIC vport.
    pub const VNIC_VPORT: u16 = 0;
    /// An E-Switch vport.
    pub const ESW_VPORT: u16 = 1;
    /// The uplink.
    pub const UPLINK: u16 = 2;
}

field_enum! {
    /// A vport's link state (operational `state`, or `admin_state`).
    pub enum VportState: u8 {
        /// 0: down.
        Down = 0,
        /// 1: up.
        Up = 1,
        /// 2 (admin only): follow the uplink.
        Follow = 2,
    }
}

layout! {
    /// QUERY_VPORT_STATE input (op_mod: [`vport_state_op`]).
    input(Opcode::QueryVportState) struct QueryVportStateIn(0x10) {
        /// Another vport.
        other_vport, set_other_vport: bool = addressing::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = addressing::VPORT_NUMBER;
    }
}

layout! {
    /// QUERY_VPORT_STATE output.
    output struct QueryVportStateOut(OUT_LEN_16) {
        /// Administrative state ([`VportState`]).
        raw_admin_state, set_raw_admin_state: u8 = Field::at(0x0C, 7, 4);
        /// Operational state ([`VportState`]): mlx5e's carrier is `state == Up`.
        raw_state, set_raw_state: u8 = Field::at(0x0C, 3, 0);
    }
}

impl<T: AsRef<[u8]>> QueryVportStateOut<T> {
    /// Administrative state.
    pub fn admin_state(&self) -> VportState {
        VportState::from(self.raw_admin_state())
    }
    /// Operational state.
    pub fn state(&self) -> VportState {
        VportState::from(self.raw_state())
    }
}

layout! {
    /// MODIFY_VPORT_STATE input: the E-Switch manager sets a vport's administrative state.
    input(Opcode::ModifyVportState) struct ModifyVportStateIn(0x10) {
        /// Another vport.
        other_vport, set_other_vport: bool = addressing::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = addressing::VPORT_NUMBER;
        /// New administrative state ([`VportState`]).
        raw_admin_state, set_raw_admin_state: u8 = Field::at(0x0C, 7, 4);
    }
}

layout! {
    /// MODIFY_VPORT_STATE output.
    output struct ModifyVportStateOut(OUT_LEN_16) {}
}

/// `allowed_list_type`: which address list a NIC vport context carries.
pub mod allowed_list_type {
    /// Unicast MACs.
    pub const UNICAST: u8 = 0;
    /// Multicast MACs.
    pub const MULTICAST: u8 = 1;
    /// VLAN ids.
    pub const VLAN: u8 = 2;
}

/// The 8-byte permanent address slot; the MAC is its last six bytes.
pub const PERMANENT_ADDRESS: Bytes = Bytes::at(0xF6, 6);
/// Where the address list starts in the NIC vport context (8 bytes per entry, the MAC in the
/// last six; a VLAN entry holds the id in bits 11:0 of its last dword).
pub const ADDRESS_LIST_OFFSET: usize = 0x100;

layout! {
    /// NIC vport context: 256 bytes, then `allowed_list_size` 8-byte entries.
    pub struct NicVportContext(ADDRESS_LIST_OFFSET) {
        /// Minimum inline header mode of SQs on this vport.
        min_wqe_inline_mode, set_min_wqe_inline_mode: InlineMode = Field::at(0x00, 26, 24);
        /// Do not loop back multicast to this vport's own receive queues.
        disable_mc_local_lb, set_disable_mc_local_lb: bool = Field::at(0x00, 2, 2);
        /// Do not loop back unicast.
        disable_uc_local_lb, set_disable_uc_local_lb: bool = Field::at(0x00, 1, 1);
        /// RoCE enabled.
        roce_en, set_roce_en: bool = Field::at(0x00, 0, 0);
        /// Arm the NIC vport change event.
        arm_change_event, set_arm_change_event: bool = Field::at(0x04, 31, 31);
        /// Event on MTU change.
        event_on_mtu, set_event_on_mtu: bool = Field::at(0x04, 4, 4);
        /// Event on promiscuous-mode change.
        event_on_promisc_change, set_event_on_promisc_change: bool = Field::at(0x04, 3, 3);
        /// Event on VLAN list change.
        event_on_vlan_change, set_event_on_vlan_change: bool = Field::at(0x04, 2, 2);
        /// Event on multicast list change.
        event_on_mc_address_change, set_event_on_mc_address_change: bool = Field::at(0x04, 1, 1);
        /// Event on unicast list change.
        event_on_uc_address_change, set_event_on_uc_address_change: bool = Field::at(0x04, 0, 0);
        /// MTU (bytes, without FCS).
        mtu, set_mtu: u16 = Field::at(0x24, 15, 0);
        /// System image GUID.
        system_image_guid, set_system_image_guid: u64 = Field::qword(0x28);
        /// Port GUID.
        port_guid, set_port_guid: u64 = Field::qword(0x30);
        /// Node GUID.
        node_guid, set_node_guid: u64 = Field::qword(0x38);
        /// Unicast promiscuous.
        promisc_uc, set_promisc_uc: bool = Field::at(0xF0, 31, 31);
        /// Multicast promiscuous.
        promisc_mc, set_promisc_mc: bool = Field::at(0xF0, 30, 30);
        /// All promiscuous.
        promisc_all, set_promisc_all: bool = Field::at(0xF0, 29, 29);
        /// Type of the address list ([`allowed_list_type`]).
        allowed_list_type, set_allowed_list_type: u8 = Field::at(0xF0, 26, 24);
        /// Entries in the address list.
        allowed_list_size, set_allowed_list_size: u16 = Field::at(0xF0, 11, 0);
    }
}

impl<T: AsRef<[u8]>> NicVportContext<T> {
    /// The permanent MAC (zero: none assigned; a VF then picks a random one).
    pub fn permanent_address(&self) -> MacAddress {
        mac_at(self.as_bytes(), PERMANENT_ADDRESS.byte)
    }
    /// Address-list entry `i` as a MAC, `None` past the buffer.
    pub fn address(&self, i: usize) -> Option<MacAddress> {
        let at = ADDRESS_LIST_OFFSET.checked_add(i.checked_mul(8)?)?;
        let b = self.as_bytes().get(at + 2..at + 8)?;
        let mut m = [0u8; 6];
        m.copy_from_slice(b);
        Some(MacAddress(m))
    }
    /// Address-list entries the buffer holds.
    pub fn address_capacity(&self) -> usize {
        self.as_bytes().len().saturating_sub(ADDRESS_LIST_OFFSET) / 8
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NicVportContext<T> {
    /// Sets the permanent MAC.
    pub fn set_permanent_address(&mut self, mac: MacAddress) {
        let _inside = PERMANENT_ADDRESS.set(self.as_bytes_mut(), &mac.0);
    }
    /// Sets address-list entry `i`; false past the buffer.
    pub fn set_address(&mut self, i: usize, mac: MacAddress) -> bool {
        let Some(at) = i
            .checked_mul(8)
            .and_then(|o| o.checked_add(ADDRESS_LIST_OFFSET))
        else {
            return false;
        };
        match self.as_bytes_mut().get_mut(at..at + 8) {
            Some(b) => {
                b[..2].fill(0);
                b[2..].copy_from_slice(&mac.0);
                true
            }
            None => false,
        }
    }
}

fn mac_at(buf: &[u8], at: usize) -> MacAddress {
    let mut m = [0u8; 6];
    if let Some(b) = buf.get(at..at + 6) {
        m.copy_from_slice(b);
    }
    MacAddress(m)
}

layout! {
    /// QUERY_NIC_VPORT_CONTEXT input.
    input(Opcode::QueryNicVportContext) struct QueryNicVportContextIn(0x10) {
        /// Another vport.
        other_vport, set_other_vport: bool = addressing::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = addressing::VPORT_NUMBER;
        /// Which address list to return ([`allowed_list_type`]).
        allowed_list_type, set_allowed_list_type: u8 = Field::at(0x0C, 26, 24);
    }
}

/// Where the context sits in QUERY_NIC_VPORT_CONTEXT output.
pub const QUERY_CONTEXT_OFFSET: usize = 0x10;

layout! {
    /// QUERY_NIC_VPORT_CONTEXT output: context at 0x10 (the address list after it).
    output struct QueryNicVportContextOut(QUERY_CONTEXT_OFFSET + ADDRESS_LIST_OFFSET) {}
}
nested!(
    QueryNicVportContextOut,
    nic_vport_context,
    nic_vport_context_mut,
    NicVportContext,
    QUERY_CONTEXT_OFFSET
);

/// MODIFY_NIC_VPORT_CONTEXT field-select bits.
pub mod field_select {
    /// `roce_en`.
    pub const ROCE_EN: u32 = 1 << 1;
    /// The address list.
    pub const ADDRESSES_LIST: u32 = 1 << 2;
    /// `permanent_address` (the E-Switch manager setting a VF's MAC).
    pub const PERMANENT_ADDRESS: u32 = 1 << 3;
    /// The promiscuous bits.
    pub const PROMISC: u32 = 1 << 4;
    /// The change-event bits.
    pub const CHANGE_EVENT: u32 = 1 << 5;
    /// `mtu`.
    pub const MTU: u32 = 1 << 6;
    /// `min_wqe_inline_mode`.
    pub const MIN_INLINE: u32 = 1 << 7;
    /// `port_guid`.
    pub const PORT_GUID: u32 = 1 << 8;
    /// `node_guid`.
    pub const NODE_GUID: u32 = 1 << 9;
    /// `disable_mc_local_lb`.
    pub const DISABLE_MC_LOCAL_LB: u32 = 1 << 10;
    /// `disable_uc_local_lb`.
    pub const DISABLE_UC_LOCAL_LB: u32 = 1 << 11;
    /// Affiliation.
    pub const AFFILIATION: u32 = 1 << 13;
}

/// Where the context sits in MODIFY_NIC_VPORT_CONTEXT input.
pub const MODIFY_CONTEXT_OFFSET: usize = 0x100;

layout! {
    /// MODIFY_NIC_VPORT_CONTEXT input: field select in dword 3, context at 0x100.
    input(Opcode::ModifyNicVportContext) struct ModifyNicVportContextIn(MODIFY_CONTEXT_OFFSET + ADDRESS_LIST_OFFSET) {
        /// Another vport.
        other_vport, set_other_vport: bool = addressing::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = addressing::VPORT_NUMBER;
        /// Fields to apply ([`field_select`]).
        field_select, set_field_select: u32 = Field::dword(0x0C);
    }
}
nested!(
    ModifyNicVportContextIn,
    nic_vport_context,
    nic_vport_context_mut,
    NicVportContext,
    MODIFY_CONTEXT_OFFSET
);

layout! {
    /// MODIFY_NIC_VPORT_CONTEXT output.
    output struct ModifyNicVportContextOut(OUT_LEN_16) {}
}

/// Input length of MODIFY_NIC_VPORT_CONTEXT with `n` list entries, `None` on overflow.
pub const fn modify_nic_vport_context_in_len(n: usize) -> Option<usize> {
    match n.checked_mul(8) {
        Some(b) => b.checked_add(MODIFY_CONTEXT_OFFSET + ADDRESS_LIST_OFFSET),
        None => None,
    }
}

layout! {
    /// QUERY_VPORT_COUNTER input.
    input(Opcode::QueryVportCounter) struct QueryVportCounterIn(0x20) {
        /// Another vport.
        other_vport, set_other_vport: bool = addressing::OTHER_VPORT;
        /// Port number (0 for a single-port function).
        port_num, set_port_num: u8 = Field::at(0x08, 19, 16);
        /// The vport.
        vport_number, set_vport_number: u16 = addressing::VPORT_NUMBER;
        /// Clear the counters after reading.
        clear, set_clear: bool = Field::at(0x18, 31, 31);
    }
}

/// A vport traffic counter: a (packets, octets) pair at 0x10 + 16·index of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VportCounter {
    /// Received with errors.
    ReceivedErrors,
    /// Transmit errors.
    TransmitErrors,
    /// Received IB unicast.
    ReceivedIbUnicast,
    /// Transmitted IB unicast.
    TransmittedIbUnicast,
    /// Received IB multicast.
    ReceivedIbMulticast,
    /// Transmitted IB multicast.
    TransmittedIbMulticast,
    /// Received Ethernet broadcast.
    ReceivedEthBroadcast,
    /// Transmitted Ethernet broadcast.
    TransmittedEthBroadcast,
    /// Received Ethernet unicast.
    ReceivedEthUnicast,
    /// Transmitted Ethernet unicast.
    TransmittedEthUnicast,
    /// Received Ethernet multicast.
    ReceivedEthMulticast,
    /// Transmitted Ethernet multicast.
    TransmittedEthMulticast,
    /// Local loopback.
    LocalLoopback,
}

impl VportCounter {
    /// Every counter, in output order.
    pub const ALL: [VportCounter; 13] = [
        VportCounter::ReceivedErrors,
        VportCounter::TransmitErrors,
        VportCounter::ReceivedIbUnicast,
        VportCounter::TransmittedIbUnicast,
        VportCounter::ReceivedIbMulticast,
        VportCounter::TransmittedIbMulticast,
        VportCounter::ReceivedEthBroadcast,
        VportCounter::TransmittedEthBroadcast,
        VportCounter::ReceivedEthUnicast,
        VportCounter::TransmittedEthUnicast,
        VportCounter::ReceivedEthMulticast,
        VportCounter::TransmittedEthMulticast,
        VportCounter::LocalLoopback,
    ];

    /// Byte offset of the counter's `packets` in the output (`octets` follows).
    pub const fn offset(self) -> usize {
        0x10 + 16 * self as usize
    }
}

layout! {
    /// QUERY_VPORT_COUNTER output (0x210 bytes).
    output struct QueryVportCounterOut(0x210) {}
}

impl<T: AsRef<[u8]>> QueryVportCounterOut<T> {
    /// `(packets, octets)` of a counter.
    pub fn counter(&self, c: VportCounter) -> (u64, u64) {
        let at = c.offset();
        (
            Field::qword(at).read(self.as_bytes()),
            Field::qword(at + 8).read(self.as_bytes()),
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> QueryVportCounterOut<T> {
    /// Sets a counter.
    pub fn set_counter(&mut self, c: VportCounter, packets: u64, octets: u64) {
        let at = c.offset();
        let _inside = Field::qword(at).write(self.as_bytes_mut(), packets);
        let _inside = Field::qword(at + 8).write(self.as_bytes_mut(), octets);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MAC: MacAddress = MacAddress([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

    #[test]
    fn pf_sets_a_vf_mac() {
        // The E-Switch manager sets VF 0's MAC: vport 1, other_vport, field select
        // permanent_address, MAC at context 0xF6 (message 0x1F6).
        let len = modify_nic_vport_context_in_len(0).unwrap();
        assert_eq!(len, 0x200);
        let mut b = vec![0u8; len];
        let mut m = ModifyNicVportContextIn::new_checked(&mut b[..]).unwrap();
        m.set_header(0);
        m.set_other_vport(true);
        m.set_vport_number(1);
        m.set_field_select(field_select::PERMANENT_ADDRESS);
        m.nic_vport_context_mut().set_permanent_address(MAC);
        assert_eq!(
            &b[..0x10],
            &[0x07, 0x55, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 1, 0, 0, 0, 0x08]
        );
        assert_eq!(
            &b[0x1F4..0x1FC],
            &[0, 0, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55]
        );
        let m = ModifyNicVportContextIn::new_checked(&b[..]).unwrap();
        assert_eq!(m.nic_vport_context().permanent_address(), MAC);
    }

    #[test]
    fn vf_reads_its_context() {
        let mut b = vec![0u8; 0x10 + 0x100 + 2 * 8];
        let mut o = QueryNicVportContextOut::new_checked(&mut b[..]).unwrap();
        {
            let mut c = o.nic_vport_context_mut();
            c.set_permanent_address(MAC);
            c.set_mtu(1500);
            c.set_allowed_list_type(allowed_list_type::UNICAST);
            c.set_allowed_list_size(2);
            c.set_promisc_mc(true);
            c.set_disable_uc_local_lb(true);
            assert!(c.set_address(0, MAC));
            assert!(c.set_address(1, MacAddress::BROADCAST));
            assert!(!c.set_address(2, MAC));
        }
        assert_eq!(&b[0x10..0x14], &[0, 0, 0, 0x02]);
        assert_eq!(
            &b[0x36..0x38],
            &1500u16.to_be_bytes(),
            "mtu at context 0x26"
        );
        assert_eq!(&b[0x100..0x104], &[0x40, 0, 0, 0x02]);
        assert_eq!(&b[0x106..0x10C], &MAC.0);
        assert_eq!(
            &b[0x110..0x118],
            &[0, 0, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55]
        );
        let o = QueryNicVportContextOut::new_checked(&b[..]).unwrap();
        let c = o.nic_vport_context();
        assert_eq!(c.address(1), Some(MacAddress::BROADCAST));
        assert_eq!(c.address(2), None);
        assert_eq!(c.address_capacity(), 2);
        assert_eq!(c.mtu(), 1500);
    }

    #[test]
    fn vport_state() {
        let mut i = [0u8; 16];
        let mut q = QueryVportStateIn::new_checked(&mut i[..]).unwrap();
        q.set_header(vport_state_op::ESW_VPORT);
        q.set_other_vport(true);
        q.set_vport_number(3);
        assert_eq!(&i[..0x0C], &[0x07, 0x50, 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 3]);
        let mut o = [0u8; 16];
        let mut s = QueryVportStateOut::new_checked(&mut o[..]).unwrap();
        s.set_raw_admin_state(u8::from(VportState::Follow));
        s.set_raw_state(u8::from(VportState::Up));
        assert_eq!(o[0x0F], 0x21);
        let s = QueryVportStateOut::new_checked(&o[..]).unwrap();
        assert_eq!(
            (s.admin_state(), s.state()),
            (VportState::Follow, VportState::Up)
        );
        let mut m = [0u8; 16];
        ModifyVportStateIn::new_checked(&mut m[..])
            .unwrap()
            .set_raw_admin_state(u8::from(VportState::Down));
        assert_eq!(VportState::from(9), VportState::Unknown(9));
    }

    #[test]
    fn vport_counters() {
        let mut b = vec![0u8; 0x210];
        let mut o = QueryVportCounterOut::new_checked(&mut b[..]).unwrap();
        o.set_counter(VportCounter::ReceivedEthUnicast, 7, 700);
        o.set_counter(VportCounter::LocalLoopback, 1, 64);
        assert_eq!(VportCounter::ReceivedEthUnicast.offset(), 0x90);
        assert_eq!(VportCounter::LocalLoopback.offset(), 0xD0);
        assert_eq!(
            &b[0x90..0xA0],
            &[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0x02, 0xBC]
        );
        let o = QueryVportCounterOut::new_checked(&b[..]).unwrap();
        assert_eq!(o.counter(VportCounter::ReceivedEthUnicast), (7, 700));
        assert_eq!(o.counter(VportCounter::ReceivedErrors), (0, 0));
        let mut i = [0u8; 0x20];
        let mut q = QueryVportCounterIn::new_checked(&mut i[..]).unwrap();
        q.set_clear(true);
        q.set_vport_number(2);
        assert_eq!(i[0x18], 0x80);
    }
}

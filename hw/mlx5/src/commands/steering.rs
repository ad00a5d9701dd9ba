//! Flow steering (NIC RX/TX flow tables): tables, groups, entries, the namespace root and the
//! match parameters rules compare against (Linux `mlx5_ifc.h`; `fs_cmd.c`, `fs_core.c`,
//! `en_fs.c`, `lib/fs_ttc.c` for what mlx5e builds: a traffic-type classifier table of rules
//! forwarding to TIRs, behind L2 and VLAN tables).
//!
//! Lengths are those of the fields used here; drivers may send longer messages (reserved
//! tails), which a device accepts.

use hw_common::MacAddress;

use crate::cmd::Opcode;
use crate::commands::OUT_LEN_16;
use crate::field::Field;
use crate::layout::{layout, nested, tail_array};

/// Fields shared by the table-addressed commands.
pub mod table {
    use crate::field::Field;

    /// Another vport's table (E-Switch manager).
    pub const OTHER_VPORT: Field = Field::at(0x08, 31, 31);
    /// The vport.
    pub const VPORT_NUMBER: Field = Field::at(0x08, 15, 0);
    /// Table type ([`table_type`](super::table_type)).
    pub const TABLE_TYPE: Field = Field::at(0x10, 31, 24);
    /// The table.
    pub const TABLE_ID: Field = Field::at(0x14, 23, 0);
}

/// Flow table types.
pub mod table_type {
    /// NIC receive.
    pub const NIC_RX: u8 = 0x0;
    /// NIC transmit.
    pub const NIC_TX: u8 = 0x1;
    /// E-Switch egress ACL.
    pub const ESW_EGRESS_ACL: u8 = 0x2;
    /// E-Switch ingress ACL.
    pub const ESW_INGRESS_ACL: u8 = 0x3;
    /// E-Switch forwarding database.
    pub const FDB: u8 = 0x4;
}

/// `table_miss_action` values.
pub mod miss_action {
    /// The namespace's default (the next priority).
    pub const DEFAULT: u8 = 0;
    /// Go to `table_miss_id`.
    pub const FORWARD: u8 = 1;
}

/// SET_FLOW_TABLE_ROOT op_mod: 0 makes the table the namespace's root, 1 disconnects the root
/// (Linux `fs_cmd.c` before destroying the last table of a namespace).
pub const ROOT_DISCONNECT: u16 = 1;

layout! {
    /// Flow table context (the part in CREATE/MODIFY_FLOW_TABLE).
    pub struct FlowTableContext(0x0C) {
        /// Miss action ([`miss_action`]).
        table_miss_action, set_table_miss_action: u8 = Field::at(0x00, 27, 24);
        /// Level: a table may forward only to higher levels.
        level, set_level: u8 = Field::at(0x00, 23, 16);
        /// log2 of the number of entries.
        log_size, set_log_size: u8 = Field::at(0x00, 7, 0);
        /// Table to go to on a miss.
        table_miss_id, set_table_miss_id: u32 = Field::at(0x04, 23, 0);
    }
}

/// Where the flow table context sits in CREATE/MODIFY_FLOW_TABLE input.
pub const FLOW_TABLE_CONTEXT_OFFSET: usize = 0x18;

layout! {
    /// CREATE_FLOW_TABLE input.
    input(Opcode::CreateFlowTable) struct CreateFlowTableIn(0x40) {
        /// Another vport.
        other_vport, set_other_vport: bool = table::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = table::VPORT_NUMBER;
        /// Table type.
        table_type, set_table_type: u8 = table::TABLE_TYPE;
    }
}
nested!(
    CreateFlowTableIn,
    flow_table_context,
    flow_table_context_mut,
    FlowTableContext,
    FLOW_TABLE_CONTEXT_OFFSET
);

layout! {
    /// CREATE_FLOW_TABLE output.
    output struct CreateFlowTableOut(OUT_LEN_16) {
        /// The new table.
        table_id, set_table_id: u32 = Field::at(0x08, 23, 0);
    }
}

layout! {
    /// DESTROY_FLOW_TABLE input.
    input(Opcode::DestroyFlowTable) struct DestroyFlowTableIn(0x40) {
        /// Another vport.
        other_vport, set_other_vport: bool = table::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = table::VPORT_NUMBER;
        /// Table type.
        table_type, set_table_type: u8 = table::TABLE_TYPE;
        /// The table.
        table_id, set_table_id: u32 = table::TABLE_ID;
    }
}

layout! {
    /// DESTROY_FLOW_TABLE output.
    output struct DestroyFlowTableOut(OUT_LEN_16) {}
}

/// MODIFY_FLOW_TABLE field select: the miss table.
pub const MODIFY_FLOW_TABLE_MISS_TABLE_ID: u16 = 1 << 0;

layout! {
    /// MODIFY_FLOW_TABLE input (re-chains a table's misses).
    input(Opcode::ModifyFlowTable) struct ModifyFlowTableIn(0x40) {
        /// Another vport.
        other_vport, set_other_vport: bool = table::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = table::VPORT_NUMBER;
        /// Fields to apply.
        modify_field_select, set_modify_field_select: u16 = Field::at(0x0C, 15, 0);
        /// Table type.
        table_type, set_table_type: u8 = table::TABLE_TYPE;
        /// The table.
        table_id, set_table_id: u32 = table::TABLE_ID;
    }
}
nested!(
    ModifyFlowTableIn,
    flow_table_context,
    flow_table_context_mut,
    FlowTableContext,
    FLOW_TABLE_CONTEXT_OFFSET
);

layout! {
    /// MODIFY_FLOW_TABLE output.
    output struct ModifyFlowTableOut(OUT_LEN_16) {}
}

layout! {
    /// SET_FLOW_TABLE_ROOT input: the table packets of this type enter first.
    input(Opcode::SetFlowTableRoot) struct SetFlowTableRootIn(0x40) {
        /// Another vport.
        other_vport, set_other_vport: bool = table::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = table::VPORT_NUMBER;
        /// Table type.
        table_type, set_table_type: u8 = table::TABLE_TYPE;
        /// The new root.
        table_id, set_table_id: u32 = table::TABLE_ID;
    }
}

layout! {
    /// SET_FLOW_TABLE_ROOT output.
    output struct SetFlowTableRootOut(OUT_LEN_16) {}
}

/// Bytes of a match parameter (criteria or value).
pub const MATCH_PARAM_LEN: usize = 0x200;

/// `match_criteria_enable` bits: which parts of the match parameter are compared.
pub mod match_criteria_enable {
    /// Outer L2–L4 headers (bytes 0x00–0x3F).
    pub const OUTER_HEADERS: u8 = 1 << 0;
    /// Miscellaneous parameters (0x40–0x7F).
    pub const MISC_PARAMETERS: u8 = 1 << 1;
    /// Inner headers (0x80–0xBF).
    pub const INNER_HEADERS: u8 = 1 << 2;
}

layout! {
    /// The outer (or inner) L2–L4 header part of a match parameter (64 bytes): in a criteria
    /// mask, set bits select what is compared; in a value, what it must equal.
    pub struct MatchHeaders(0x40) {
        /// Ethertype (after VLAN tags).
        ethertype, set_ethertype: u16 = Field::at(0x04, 15, 0);
        /// Priority of the first VLAN tag.
        first_prio, set_first_prio: u8 = Field::at(0x0C, 15, 13);
        /// CFI of the first VLAN tag.
        first_cfi, set_first_cfi: bool = Field::at(0x0C, 12, 12);
        /// VLAN id of the first tag.
        first_vid, set_first_vid: u16 = Field::at(0x0C, 11, 0);
        /// IP protocol.
        ip_protocol, set_ip_protocol: u8 = Field::at(0x10, 31, 24);
        /// IP DSCP.
        ip_dscp, set_ip_dscp: u8 = Field::at(0x10, 23, 18);
        /// IP ECN.
        ip_ecn, set_ip_ecn: u8 = Field::at(0x10, 17, 16);
        /// A C-VLAN tag is present.
        cvlan_tag, set_cvlan_tag: bool = Field::at(0x10, 15, 15);
        /// An S-VLAN tag is present.
        svlan_tag, set_svlan_tag: bool = Field::at(0x10, 14, 14);
        /// IP fragment.
        frag, set_frag: bool = Field::at(0x10, 13, 13);
        /// IP version (4 or 6).
        ip_version, set_ip_version: u8 = Field::at(0x10, 12, 9);
        /// TCP flags.
        tcp_flags, set_tcp_flags: u16 = Field::at(0x10, 8, 0);
        /// TCP source port.
        tcp_sport, set_tcp_sport: u16 = Field::at(0x14, 31, 16);
        /// TCP destination port.
        tcp_dport, set_tcp_dport: u16 = Field::at(0x14, 15, 0);
        /// IPv4 TTL / IPv6 hop limit.
        ttl_hoplimit, set_ttl_hoplimit: u8 = Field::at(0x18, 7, 0);
        /// UDP source port.
        udp_sport, set_udp_sport: u16 = Field::at(0x1C, 31, 16);
        /// UDP destination port.
        udp_dport, set_udp_dport: u16 = Field::at(0x1C, 15, 0);
    }
}

impl<T: AsRef<[u8]>> MatchHeaders<T> {
    /// Source MAC (bytes 0x00–0x05).
    pub fn smac(&self) -> MacAddress {
        mac_at(self.as_bytes(), 0x00)
    }
    /// Destination MAC (bytes 0x08–0x0D).
    pub fn dmac(&self) -> MacAddress {
        mac_at(self.as_bytes(), 0x08)
    }
    /// Source IP: 16 bytes at 0x20 (an IPv4 address in the last four).
    pub fn src_ip(&self) -> [u8; 16] {
        ip_at(self.as_bytes(), 0x20)
    }
    /// Destination IP: 16 bytes at 0x30.
    pub fn dst_ip(&self) -> [u8; 16] {
        ip_at(self.as_bytes(), 0x30)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MatchHeaders<T> {
    /// Sets the source MAC.
    pub fn set_smac(&mut self, mac: MacAddress) {
        self.as_bytes_mut()[0x00..0x06].copy_from_slice(&mac.0);
    }
    /// Sets the destination MAC.
    pub fn set_dmac(&mut self, mac: MacAddress) {
        self.as_bytes_mut()[0x08..0x0E].copy_from_slice(&mac.0);
    }
    /// Sets the source IP.
    pub fn set_src_ip(&mut self, ip: [u8; 16]) {
        self.as_bytes_mut()[0x20..0x30].copy_from_slice(&ip);
    }
    /// Sets the destination IP.
    pub fn set_dst_ip(&mut self, ip: [u8; 16]) {
        self.as_bytes_mut()[0x30..0x40].copy_from_slice(&ip);
    }
}

fn mac_at(buf: &[u8], at: usize) -> MacAddress {
    let mut m = [0u8; 6];
    if let Some(b) = buf.get(at..at + 6) {
        m.copy_from_slice(b);
    }
    MacAddress(m)
}

fn ip_at(buf: &[u8], at: usize) -> [u8; 16] {
    let mut ip = [0u8; 16];
    if let Some(b) = buf.get(at..at + 16) {
        ip.copy_from_slice(b);
    }
    ip
}

/// Where the match criteria sit in CREATE_FLOW_GROUP input.
pub const MATCH_CRITERIA_OFFSET: usize = 0x40;

layout! {
    /// CREATE_FLOW_GROUP input: entries `start..=end` of a table share one criteria mask.
    input(Opcode::CreateFlowGroup) struct CreateFlowGroupIn(MATCH_CRITERIA_OFFSET + MATCH_PARAM_LEN) {
        /// Another vport.
        other_vport, set_other_vport: bool = table::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = table::VPORT_NUMBER;
        /// Table type.
        table_type, set_table_type: u8 = table::TABLE_TYPE;
        /// The table.
        table_id, set_table_id: u32 = table::TABLE_ID;
        /// First entry of the group.
        start_flow_index, set_start_flow_index: u32 = Field::dword(0x1C);
        /// Last entry of the group.
        end_flow_index, set_end_flow_index: u32 = Field::dword(0x24);
        /// Parts of the criteria compared ([`match_criteria_enable`]).
        match_criteria_enable, set_match_criteria_enable: u8 = Field::at(0x3C, 7, 0);
    }
}
nested!(
    CreateFlowGroupIn,
    outer_criteria,
    outer_criteria_mut,
    MatchHeaders,
    MATCH_CRITERIA_OFFSET
);

impl<T: AsRef<[u8]>> CreateFlowGroupIn<T> {
    /// The whole 512-byte criteria mask.
    pub fn match_criteria(&self) -> &[u8] {
        &self.as_bytes()[MATCH_CRITERIA_OFFSET..MATCH_CRITERIA_OFFSET + MATCH_PARAM_LEN]
    }
}

layout! {
    /// CREATE_FLOW_GROUP output.
    output struct CreateFlowGroupOut(OUT_LEN_16) {
        /// The new group.
        group_id, set_group_id: u32 = Field::at(0x08, 23, 0);
    }
}

layout! {
    /// DESTROY_FLOW_GROUP input.
    input(Opcode::DestroyFlowGroup) struct DestroyFlowGroupIn(0x40) {
        /// Another vport.
        other_vport, set_other_vport: bool = table::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = table::VPORT_NUMBER;
        /// Table type.
        table_type, set_table_type: u8 = table::TABLE_TYPE;
        /// The table.
        table_id, set_table_id: u32 = table::TABLE_ID;
        /// The group.
        group_id, set_group_id: u32 = Field::dword(0x18);
    }
}

layout! {
    /// DESTROY_FLOW_GROUP output.
    output struct DestroyFlowGroupOut(OUT_LEN_16) {}
}

/// Flow context `action` bits.
pub mod action {
    /// Allow.
    pub const ALLOW: u16 = 1 << 0;
    /// Drop.
    pub const DROP: u16 = 1 << 1;
    /// Forward to the destination list.
    pub const FWD_DEST: u16 = 1 << 2;
    /// Count in the flow counters listed.
    pub const COUNT: u16 = 1 << 3;
}

/// Destination types of a flow context's destination list.
pub mod destination_type {
    /// A vport.
    pub const VPORT: u8 = 0x0;
    /// Another flow table.
    pub const FLOW_TABLE: u8 = 0x1;
    /// A TIR.
    pub const TIR: u8 = 0x2;
}

/// Where the match value sits in the flow context.
pub const MATCH_VALUE_OFFSET: usize = 0x40;
/// Where the destination list starts in the flow context (8 bytes per entry).
pub const DESTINATION_OFFSET: usize = 0x300;

layout! {
    /// Flow context: the rule (group, action, match value, destinations).
    pub struct FlowContext(DESTINATION_OFFSET) {
        /// The entry's group.
        group_id, set_group_id: u32 = Field::dword(0x04);
        /// Tag reported in the CQE of matching packets.
        flow_tag, set_flow_tag: u32 = Field::at(0x08, 23, 0);
        /// Action ([`action`]).
        action, set_action: u16 = Field::at(0x0C, 15, 0);
        /// Destinations use the 16-byte extended format (the model supports only 8-byte).
        extended_destination, set_extended_destination: bool = Field::at(0x10, 31, 31);
        /// Destinations listed.
        destination_list_size, set_destination_list_size: u32 = Field::at(0x10, 23, 0);
        /// Flow counters listed.
        flow_counter_list_size, set_flow_counter_list_size: u32 = Field::at(0x14, 23, 0);
    }
}
nested!(
    FlowContext,
    outer_value,
    outer_value_mut,
    MatchHeaders,
    MATCH_VALUE_OFFSET
);
tail_array!(
    FlowContext,
    DESTINATION_OFFSET,
    u64,
    8,
    destination,
    set_destination,
    destination_capacity,
    "the destination list (type in bits 63:56, id in 55:32)"
);

/// A destination-list entry: `type` in bits 31:24 and `id` in 23:0 of its first dword.
pub const fn destination(kind: u8, id: u32) -> u64 {
    (((kind as u64) << 24) | (id as u64 & 0xFF_FFFF)) << 32
}

/// Splits a destination-list entry into `(type, id)`.
pub const fn split_destination(entry: u64) -> (u8, u32) {
    let dw = (entry >> 32) as u32;
    ((dw >> 24) as u8, dw & 0xFF_FFFF)
}

/// Where the flow context sits in SET_FLOW_TABLE_ENTRY input.
pub const FLOW_CONTEXT_OFFSET: usize = 0x40;

layout! {
    /// SET_FLOW_TABLE_ENTRY input: the rule at `flow_index`, context at 0x40.
    input(Opcode::SetFlowTableEntry) struct SetFlowTableEntryIn(FLOW_CONTEXT_OFFSET + DESTINATION_OFFSET) {
        /// Another vport.
        other_vport, set_other_vport: bool = table::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = table::VPORT_NUMBER;
        /// Table type.
        table_type, set_table_type: u8 = table::TABLE_TYPE;
        /// The table.
        table_id, set_table_id: u32 = table::TABLE_ID;
        /// Fields to change when op_mod is 1 (modify).
        modify_enable_mask, set_modify_enable_mask: u8 = Field::at(0x18, 7, 0);
        /// The entry.
        flow_index, set_flow_index: u32 = Field::dword(0x20);
    }
}
nested!(
    SetFlowTableEntryIn,
    flow_context,
    flow_context_mut,
    FlowContext,
    FLOW_CONTEXT_OFFSET
);

layout! {
    /// SET_FLOW_TABLE_ENTRY output.
    output struct SetFlowTableEntryOut(OUT_LEN_16) {}
}

layout! {
    /// DELETE_FLOW_TABLE_ENTRY input.
    input(Opcode::DeleteFlowTableEntry) struct DeleteFlowTableEntryIn(0x40) {
        /// Another vport.
        other_vport, set_other_vport: bool = table::OTHER_VPORT;
        /// The vport.
        vport_number, set_vport_number: u16 = table::VPORT_NUMBER;
        /// Table type.
        table_type, set_table_type: u8 = table::TABLE_TYPE;
        /// The table.
        table_id, set_table_id: u32 = table::TABLE_ID;
        /// The entry.
        flow_index, set_flow_index: u32 = Field::dword(0x20);
    }
}

layout! {
    /// DELETE_FLOW_TABLE_ENTRY output.
    output struct DeleteFlowTableEntryOut(OUT_LEN_16) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn create_table_and_group() {
        let mut b = [0u8; 0x40];
        let mut t = CreateFlowTableIn::new_checked(&mut b[..]).unwrap();
        t.set_header(0);
        t.set_table_type(table_type::NIC_RX);
        {
            let mut c = t.flow_table_context_mut();
            c.set_level(12);
            c.set_log_size(4);
            c.set_table_miss_action(miss_action::FORWARD);
            c.set_table_miss_id(0x33);
        }
        assert_eq!(&b[..2], &[0x09, 0x30]);
        assert_eq!(&b[0x18..0x20], &[0x01, 12, 0, 4, 0, 0, 0, 0x33]);

        let mut g = vec![0u8; 0x240];
        let mut v = CreateFlowGroupIn::new_checked(&mut g[..]).unwrap();
        v.set_header(0);
        v.set_table_id(5);
        v.set_start_flow_index(0);
        v.set_end_flow_index(7);
        v.set_match_criteria_enable(match_criteria_enable::OUTER_HEADERS);
        v.outer_criteria_mut().set_dmac(MacAddress::BROADCAST);
        v.outer_criteria_mut().set_ethertype(0xFFFF);
        assert_eq!(&g[0x14..0x18], &[0, 0, 0, 5]);
        assert_eq!(&g[0x24..0x28], &[0, 0, 0, 7]);
        assert_eq!(g[0x3F], 1);
        assert_eq!(&g[0x48..0x4E], &[0xFF; 6]);
        assert_eq!(&g[0x46..0x48], &[0xFF, 0xFF]);
        let v = CreateFlowGroupIn::new_checked(&g[..]).unwrap();
        assert_eq!(v.outer_criteria().dmac(), MacAddress::BROADCAST);
        assert_eq!(v.match_criteria().len(), MATCH_PARAM_LEN);
    }

    #[test]
    fn rule_forwarding_tcp_over_ipv4_to_a_tir() {
        let mut b = vec![0u8; 0x340 + 8];
        let mut s = SetFlowTableEntryIn::new_checked(&mut b[..]).unwrap();
        s.set_header(0);
        s.set_table_id(5);
        s.set_flow_index(3);
        {
            let mut f = s.flow_context_mut();
            f.set_group_id(2);
            f.set_action(action::FWD_DEST);
            f.set_destination_list_size(1);
            assert!(f.set_destination(0, destination(destination_type::TIR, 0x44)));
            assert!(!f.set_destination(1, 0));
            let mut m = f.outer_value_mut();
            m.set_ip_version(4);
            m.set_ip_protocol(6);
        }
        assert_eq!(&b[0x20..0x24], &[0, 0, 0, 3]);
        assert_eq!(&b[0x44..0x48], &[0, 0, 0, 2]);
        assert_eq!(&b[0x4C..0x50], &[0, 0, 0, 4]);
        // Match value at flow context 0x40 = message 0x80; dword 4 at 0x90.
        assert_eq!(&b[0x90..0x94], &[6, 0, 0x08, 0]);
        assert_eq!(&b[0x340..0x348], &[0x02, 0, 0, 0x44, 0, 0, 0, 0]);
        let s = SetFlowTableEntryIn::new_checked(&b[..]).unwrap();
        let f = s.flow_context();
        assert_eq!(
            split_destination(f.destination(0).unwrap()),
            (destination_type::TIR, 0x44)
        );
        assert_eq!(f.destination(1), None);
        assert_eq!(f.outer_value().ip_version(), 4);
    }

    #[test]
    fn match_headers_layout() {
        let mut b = [0u8; 0x40];
        let mut m = MatchHeaders::new_checked(&mut b[..]).unwrap();
        m.set_smac(MacAddress([1, 2, 3, 4, 5, 6]));
        m.set_first_vid(0xFFF);
        m.set_cvlan_tag(true);
        m.set_udp_dport(4789);
        let mut ip = [0u8; 16];
        ip[12..].copy_from_slice(&[10, 0, 0, 1]);
        m.set_dst_ip(ip);
        assert_eq!(&b[0..6], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&b[0x0E..0x10], &[0x0F, 0xFF]);
        assert_eq!(b[0x12], 0x80);
        assert_eq!(&b[0x1E..0x20], &4789u16.to_be_bytes());
        assert_eq!(&b[0x3C..0x40], &[10, 0, 0, 1]);
        let m = MatchHeaders::new_checked(&b[..]).unwrap();
        assert_eq!(m.dst_ip(), ip);
        assert_eq!(m.smac(), MacAddress([1, 2, 3, 4, 5, 6]));
    }
}

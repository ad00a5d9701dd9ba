//! The E-Switch side a PF uses on its VFs' behalf: vport numbering and the QoS scheduling
//! elements (rate limits and bandwidth shares per vport) — Linux `vport.h`, `eswitch.c`,
//! `esw/qos.c`, `mlx5_ifc.h` `scheduling_context`. A VF's MAC and link state are set with the
//! vport commands of [`vport`](super::vport) with `other_vport` = 1.

use crate::cmd::Opcode;
use crate::commands::OUT_LEN_16;
use crate::field::Field;
use crate::layout::{layout, nested};

/// A vport number: what the E-Switch calls each function's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vport(pub u16);

impl Vport {
    /// The PF's own vport.
    pub const PF: Vport = Vport(0);
    /// The embedded CPU function (BlueField).
    pub const ECPF: Vport = Vport(0xFFFE);
    /// The uplink (the wire).
    pub const UPLINK: Vport = Vport(0xFFFF);

    /// The vport of VF `vf` (0-based): `vf + 1`; `None` when it would reach the reserved
    /// numbers.
    pub const fn of_vf(vf: u16) -> Option<Vport> {
        if vf >= 0xFFFD {
            None
        } else {
            Some(Vport(vf + 1))
        }
    }

    /// The VF this vport belongs to, if it is a VF's.
    pub const fn vf(self) -> Option<u16> {
        match self.0 {
            0 | 0xFFFE | 0xFFFF => None,
            n => Some(n - 1),
        }
    }
}

/// `scheduling_hierarchy` values.
pub mod scheduling_hierarchy {
    /// The E-Switch hierarchy (vport QoS).
    pub const E_SWITCH: u8 = 0x2;
    /// The NIC hierarchy (SQ QoS).
    pub const NIC: u8 = 0x3;
}

/// `scheduling_context.element_type` values.
pub mod element_type {
    /// A transmit scheduling arbiter: a node with children.
    pub const TSAR: u8 = 0x0;
    /// A vport: a leaf.
    pub const VPORT: u8 = 0x1;
    /// A vport's traffic class.
    pub const VPORT_TC: u8 = 0x2;
    /// A parallel vport traffic class.
    pub const PARA_VPORT_TC: u8 = 0x3;
}

/// TSAR arbitration types (`element_attributes` bits 23:16 of a TSAR).
pub mod tsar_type {
    /// Deficit weighted round robin over `bw_share`: what Linux's E-Switch QoS creates.
    pub const DWRR: u8 = 0x0;
    /// Round robin.
    pub const ROUND_ROBIN: u8 = 0x1;
    /// Enhanced transmission selection.
    pub const ETS: u8 = 0x2;
}

layout! {
    /// Scheduling context (64 bytes).
    pub struct SchedulingContext(0x40) {
        /// Element type ([`element_type`]).
        element_type, set_element_type: u8 = Field::at(0x00, 31, 24);
        /// TSAR: arbitration ([`tsar_type`]).
        tsar_type, set_tsar_type: u8 = Field::at(0x04, 23, 16);
        /// VPORT: the vport number.
        vport_number, set_vport_number: u16 = Field::at(0x04, 15, 0);
        /// Parent TSAR.
        parent_element_id, set_parent_element_id: u32 = Field::dword(0x08);
        /// Weight among siblings under a DWRR TSAR.
        bw_share, set_bw_share: u32 = Field::dword(0x14);
        /// Rate limit in Mbit/s (0: none).
        max_average_bw, set_max_average_bw: u32 = Field::dword(0x18);
    }
}

/// Where the scheduling context sits in CREATE/MODIFY_SCHEDULING_ELEMENT input.
pub const CONTEXT_OFFSET: usize = 0x20;

layout! {
    /// CREATE_SCHEDULING_ELEMENT input (0x80 bytes).
    input(Opcode::CreateSchedulingElement) struct CreateSchedulingElementIn(0x80) {
        /// Hierarchy ([`scheduling_hierarchy`]).
        scheduling_hierarchy, set_scheduling_hierarchy: u8 = Field::at(0x08, 31, 24);
    }
}
nested!(
    CreateSchedulingElementIn,
    scheduling_context,
    scheduling_context_mut,
    SchedulingContext,
    CONTEXT_OFFSET
);

layout! {
    /// CREATE_SCHEDULING_ELEMENT output.
    output struct CreateSchedulingElementOut(0x40) {
        /// The new element.
        scheduling_element_id, set_scheduling_element_id: u32 = Field::dword(0x10);
    }
}

/// MODIFY_SCHEDULING_ELEMENT bitmask bits.
pub mod modify_scheduling_bitmask {
    /// `bw_share`.
    pub const BW_SHARE: u32 = 1 << 0;
    /// `max_average_bw`.
    pub const MAX_AVERAGE_BW: u32 = 1 << 1;
}

layout! {
    /// MODIFY_SCHEDULING_ELEMENT input (0x80 bytes).
    input(Opcode::ModifySchedulingElement) struct ModifySchedulingElementIn(0x80) {
        /// Hierarchy.
        scheduling_hierarchy, set_scheduling_hierarchy: u8 = Field::at(0x08, 31, 24);
        /// The element.
        scheduling_element_id, set_scheduling_element_id: u32 = Field::dword(0x0C);
        /// Fields to apply ([`modify_scheduling_bitmask`]).
        modify_bitmask, set_modify_bitmask: u32 = Field::dword(0x14);
    }
}
nested!(
    ModifySchedulingElementIn,
    scheduling_context,
    scheduling_context_mut,
    SchedulingContext,
    CONTEXT_OFFSET
);

layout! {
    /// MODIFY_SCHEDULING_ELEMENT output.
    output struct ModifySchedulingElementOut(OUT_LEN_16) {}
}

layout! {
    /// DESTROY_SCHEDULING_ELEMENT input.
    input(Opcode::DestroySchedulingElement) struct DestroySchedulingElementIn(0x40) {
        /// Hierarchy.
        scheduling_hierarchy, set_scheduling_hierarchy: u8 = Field::at(0x08, 31, 24);
        /// The element.
        scheduling_element_id, set_scheduling_element_id: u32 = Field::dword(0x0C);
    }
}

layout! {
    /// DESTROY_SCHEDULING_ELEMENT output.
    output struct DestroySchedulingElementOut(OUT_LEN_16) {}
}

layout! {
    /// QUERY_SCHEDULING_ELEMENT input.
    input(Opcode::QuerySchedulingElement) struct QuerySchedulingElementIn(0x40) {
        /// Hierarchy.
        scheduling_hierarchy, set_scheduling_hierarchy: u8 = Field::at(0x08, 31, 24);
        /// The element.
        scheduling_element_id, set_scheduling_element_id: u32 = Field::dword(0x0C);
    }
}

layout! {
    /// QUERY_SCHEDULING_ELEMENT output (0x80 bytes): the element's context at
    /// [`CONTEXT_OFFSET`].
    output struct QuerySchedulingElementOut(0x80) {}
}
nested!(
    QuerySchedulingElementOut,
    scheduling_context,
    scheduling_context_mut,
    SchedulingContext,
    CONTEXT_OFFSET
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn vport_numbers() {
        assert_eq!(Vport::of_vf(0), Some(Vport(1)));
        assert_eq!(Vport(5).vf(), Some(4));
        assert_eq!(Vport::PF.vf(), None);
        assert_eq!(Vport::UPLINK.vf(), None);
        assert_eq!(Vport::ECPF.vf(), None);
        assert_eq!(Vport::of_vf(0xFFFC), Some(Vport(0xFFFD)));
        assert_eq!(Vport::of_vf(0xFFFD), None);
    }

    #[test]
    fn root_tsar_and_a_rate_limited_vport() {
        let mut b = [0u8; 0x80];
        let mut c = CreateSchedulingElementIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        c.set_scheduling_hierarchy(scheduling_hierarchy::E_SWITCH);
        c.scheduling_context_mut()
            .set_element_type(element_type::TSAR);
        c.scheduling_context_mut().set_tsar_type(tsar_type::DWRR);
        assert_eq!(&b[..0x0C], &[0x07, 0x82, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0]);
        assert_eq!(&b[0x20..0x28], &[0; 8]);

        let mut b = [0u8; 0x80];
        let mut c = CreateSchedulingElementIn::new_checked(&mut b[..]).unwrap();
        {
            let mut s = c.scheduling_context_mut();
            s.set_element_type(element_type::VPORT);
            s.set_vport_number(2);
            s.set_parent_element_id(7);
            s.set_bw_share(20);
            s.set_max_average_bw(1000);
        }
        assert_eq!(&b[0x20..0x2C], &[0x01, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 7]);
        assert_eq!(&b[0x34..0x3C], &[0, 0, 0, 20, 0, 0, 0x03, 0xE8]);

        let mut m = [0u8; 0x80];
        let mut v = ModifySchedulingElementIn::new_checked(&mut m[..]).unwrap();
        v.set_header(0);
        v.set_scheduling_element_id(9);
        v.set_modify_bitmask(modify_scheduling_bitmask::MAX_AVERAGE_BW);
        v.scheduling_context_mut().set_max_average_bw(500);
        assert_eq!(&m[0x0C..0x18], &[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 2]);
        let mut o = [0u8; 0x40];
        CreateSchedulingElementOut::new_checked(&mut o[..])
            .unwrap()
            .set_scheduling_element_id(9);
        assert_eq!(&o[0x10..0x14], &[0, 0, 0, 9]);
    }

    #[test]
    fn query_carries_the_context_where_create_does() {
        let mut b = [0u8; 0x40];
        let mut q = QuerySchedulingElementIn::new_checked(&mut b[..]).unwrap();
        q.set_header(0);
        q.set_scheduling_hierarchy(scheduling_hierarchy::E_SWITCH);
        q.set_scheduling_element_id(3);
        assert_eq!(
            &b[..0x10],
            &[0x07, 0x84, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 3]
        );
        let mut o = [0u8; 0x80];
        QuerySchedulingElementOut::new_checked(&mut o[..])
            .unwrap()
            .scheduling_context_mut()
            .set_max_average_bw(100);
        assert_eq!(&o[0x38..0x3C], &[0, 0, 0, 100]);
        assert!(QuerySchedulingElementOut::new_checked(&o[..0x7F]).is_err());
    }
}

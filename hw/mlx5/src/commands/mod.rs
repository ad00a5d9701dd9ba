//! Input and output layouts of the commands the model answers and the driver issues, and the
//! object contexts they carry (Linux `mlx5_ifc.h`, the `*_in_bits`/`*_out_bits` structs; the
//! call sites in `mlx5_core` and rdma-core's `mlx5_vfio.c` for the values used).
//!
//! Each layout is a view (`new_checked` checks the fixed length; getters and setters never
//! panic). Offsets are from the start of the whole message, as the command carries it: the
//! first 16 bytes inline in the queue entry, the rest in mailboxes (see [`crate::cmd`]). Every
//! input begins with the opcode/uid/op_mod header and every output with status/syndrome; the
//! views expose both. Arrays at the end of a message (page addresses, RQ numbers, MAC lists)
//! are read with index accessors that answer `None` past the buffer.
//!
//! * [`lifecycle`]: ENABLE/DISABLE_HCA, QUERY/SET_ISSI, QUERY/MANAGE_PAGES, QUERY/SET_HCA_CAP,
//!   INIT/TEARDOWN_HCA, SET_DRIVER_VERSION, QUERY_ADAPTER, ACCESS_REG.
//! * [`resources`]: UAR, PD, transport domain, mkey (with `mkc`), queue counters, special
//!   contexts.
//! * [`queues`]: EQ, CQ, SQ, RQ commands (create, modify, query, destroy) with `eqc`, `cqc`,
//!   `sqc`, `rqc` and `wq`.
//! * [`rx`]: TIS, TIR and RQT commands with their contexts.
//! * [`registers`]: the access registers a VF touches (PAOS, PMTU, DTOR, HOST_ENDIANNESS).
//! * [`vport`]: vport state, NIC vport context (MAC, MTU, address lists), vport counters.
//! * [`steering`]: flow tables, groups and entries (NIC RX), the root, and match parameters.
//! * [`eswitch`]: what the PF uses on a VF's behalf: vport numbers and QoS scheduling elements.
//! * [`hac`]: OUR vendor commands (0x7F00-0x7F0F, not NVIDIA's): HAC output commit per VF
//!   vport.

pub mod eswitch;
pub mod hac;
pub mod lifecycle;
pub mod queues;
pub mod registers;
pub mod resources;
pub mod rx;
pub mod steering;
pub mod vport;

/// Bytes of the smallest output of most commands: status, syndrome and two dwords.
pub const OUT_LEN_16: usize = 0x10;

/// The fixed lengths of a command's input and output layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lengths {
    /// Bytes of the input's fixed part (a device refuses less; arrays may follow).
    pub input: usize,
    /// Bytes of the output's fixed part (a driver asks for at least this many).
    pub output: usize,
}

/// A layout's name, length and fields: for dumps, docs and the layout tests.
#[derive(Clone, Copy, Debug)]
pub struct LayoutInfo {
    /// The view type's name.
    pub name: &'static str,
    /// Its fixed length.
    pub len: usize,
    /// Its named fields.
    pub fields: &'static [(&'static str, crate::field::Field)],
}

macro_rules! command_table {
    (
        commands { $( $m:ident :: $in:ident, $out:ident; )* }
        contexts { $( $cm:ident :: $ctx:ident; )* }
    ) => {
        /// The fixed input and output lengths of `op`, `None` for an opcode without layouts
        /// here.
        pub fn lengths(op: crate::cmd::Opcode) -> Option<Lengths> {
            $(
                if op == $m::$in::<&[u8]>::OPCODE {
                    return Some(Lengths {
                        input: $m::$in::<&[u8]>::LEN,
                        output: $m::$out::<&[u8]>::LEN,
                    });
                }
            )*
            None
        }

        /// Every command whose input and output layouts this module declares, in table order.
        pub const COMMANDS: &[crate::cmd::Opcode] = &[$( $m::$in::<&[u8]>::OPCODE, )*];

        /// Every layout of this module (command inputs, outputs and contexts).
        pub const LAYOUTS: &[LayoutInfo] = &[
            $(
                LayoutInfo {
                    name: stringify!($in),
                    len: $m::$in::<&[u8]>::LEN,
                    fields: $m::$in::<&[u8]>::FIELDS,
                },
                LayoutInfo {
                    name: stringify!($out),
                    len: $m::$out::<&[u8]>::LEN,
                    fields: $m::$out::<&[u8]>::FIELDS,
                },
            )*
            $(
                LayoutInfo {
                    name: stringify!($ctx),
                    len: $cm::$ctx::<&[u8]>::LEN,
                    fields: $cm::$ctx::<&[u8]>::FIELDS,
                },
            )*
        ];
    };
}

command_table! {
    commands {
        lifecycle::EnableHcaIn, EnableHcaOut;
        lifecycle::DisableHcaIn, DisableHcaOut;
        lifecycle::QueryIssiIn, QueryIssiOut;
        lifecycle::SetIssiIn, SetIssiOut;
        lifecycle::QueryPagesIn, QueryPagesOut;
        lifecycle::ManagePagesIn, ManagePagesOut;
        lifecycle::QueryHcaCapIn, QueryHcaCapOut;
        lifecycle::SetHcaCapIn, SetHcaCapOut;
        lifecycle::InitHcaIn, InitHcaOut;
        lifecycle::TeardownHcaIn, TeardownHcaOut;
        lifecycle::SetDriverVersionIn, SetDriverVersionOut;
        lifecycle::QueryAdapterIn, QueryAdapterOut;
        lifecycle::AccessRegIn, AccessRegOut;
        resources::AllocUarIn, AllocUarOut;
        resources::DeallocUarIn, DeallocUarOut;
        resources::AllocPdIn, AllocPdOut;
        resources::DeallocPdIn, DeallocPdOut;
        resources::AllocTransportDomainIn, AllocTransportDomainOut;
        resources::DeallocTransportDomainIn, DeallocTransportDomainOut;
        resources::CreateMkeyIn, CreateMkeyOut;
        resources::DestroyMkeyIn, DestroyMkeyOut;
        resources::QuerySpecialContextsIn, QuerySpecialContextsOut;
        resources::AllocQCounterIn, AllocQCounterOut;
        resources::DeallocQCounterIn, DeallocQCounterOut;
        resources::QueryQCounterIn, QueryQCounterOut;
        queues::CreateEqIn, CreateEqOut;
        queues::DestroyEqIn, DestroyEqOut;
        queues::CreateCqIn, CreateCqOut;
        queues::ModifyCqIn, ModifyCqOut;
        queues::DestroyCqIn, DestroyCqOut;
        queues::CreateSqIn, CreateSqOut;
        queues::ModifySqIn, ModifySqOut;
        queues::DestroySqIn, DestroySqOut;
        queues::CreateRqIn, CreateRqOut;
        queues::ModifyRqIn, ModifyRqOut;
        queues::DestroyRqIn, DestroyRqOut;
        queues::QueryEqIn, QueryEqOut;
        queues::QueryCqIn, QueryCqOut;
        queues::QuerySqIn, QuerySqOut;
        queues::QueryRqIn, QueryRqOut;
        rx::CreateTisIn, CreateTisOut;
        rx::DestroyTisIn, DestroyTisOut;
        rx::ModifyTisIn, ModifyTisOut;
        rx::QueryTisIn, QueryTisOut;
        rx::CreateTirIn, CreateTirOut;
        rx::ModifyTirIn, ModifyTirOut;
        rx::DestroyTirIn, DestroyTirOut;
        rx::CreateRqtIn, CreateRqtOut;
        rx::ModifyRqtIn, ModifyRqtOut;
        rx::DestroyRqtIn, DestroyRqtOut;
        vport::QueryVportStateIn, QueryVportStateOut;
        vport::ModifyVportStateIn, ModifyVportStateOut;
        vport::QueryNicVportContextIn, QueryNicVportContextOut;
        vport::ModifyNicVportContextIn, ModifyNicVportContextOut;
        vport::QueryVportCounterIn, QueryVportCounterOut;
        steering::CreateFlowTableIn, CreateFlowTableOut;
        steering::DestroyFlowTableIn, DestroyFlowTableOut;
        steering::ModifyFlowTableIn, ModifyFlowTableOut;
        steering::SetFlowTableRootIn, SetFlowTableRootOut;
        steering::CreateFlowGroupIn, CreateFlowGroupOut;
        steering::DestroyFlowGroupIn, DestroyFlowGroupOut;
        steering::SetFlowTableEntryIn, SetFlowTableEntryOut;
        steering::DeleteFlowTableEntryIn, DeleteFlowTableEntryOut;
        eswitch::CreateSchedulingElementIn, CreateSchedulingElementOut;
        eswitch::ModifySchedulingElementIn, ModifySchedulingElementOut;
        eswitch::DestroySchedulingElementIn, DestroySchedulingElementOut;
        eswitch::QuerySchedulingElementIn, QuerySchedulingElementOut;
        hac::HacSetControlIn, HacSetControlOut;
        hac::HacSetTaggedIn, HacSetTaggedOut;
        hac::HacOpenEpochIn, HacOpenEpochOut;
        hac::HacCommitIn, HacCommitOut;
        hac::HacAbortIn, HacAbortOut;
        hac::HacFailoverIn, HacFailoverOut;
        hac::HacUnprotectIn, HacUnprotectOut;
        hac::HacSetLimitsIn, HacSetLimitsOut;
        hac::HacQueryIn, HacQueryOut;
    }
    contexts {
        queues::EqContext;
        queues::CqContext;
        queues::WqContext;
        queues::SqContext;
        queues::RqContext;
        resources::MkeyContext;
        rx::TisContext;
        rx::TirContext;
        rx::RqtContext;
        vport::NicVportContext;
        steering::FlowTableContext;
        steering::MatchHeaders;
        steering::FlowContext;
        eswitch::SchedulingContext;
        registers::Paos;
        registers::Pmtu;
        registers::Dtor;
        registers::HostEndianness;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cmd::{CommandStatus, Opcode};
    use crate::field::Field;

    #[test]
    fn the_table_maps_each_opcode_to_its_own_layouts() {
        for (i, op) in COMMANDS.iter().enumerate() {
            assert!(!matches!(op, Opcode::Unknown(_)), "{op}");
            assert!(!COMMANDS[..i].contains(op), "{op} twice");
            let l = lengths(*op).unwrap();
            assert!(
                l.input >= crate::cmd::HEADER_LEN && l.output >= crate::cmd::HEADER_LEN,
                "{op}"
            );
        }
        // Lengths the lab and the traces pinned.
        let pinned = [
            (Opcode::EnableHca, 0x10, 0x0C),
            (Opcode::QueryIssi, 0x10, 0x70),
            (Opcode::SetIssi, 0x10, 0x10),
            (Opcode::QueryPages, 0x10, 0x10),
            (Opcode::QueryHcaCap, 0x10, 0x1010),
            (Opcode::SetHcaCap, 0x1010, 0x10),
            (Opcode::CreateEq, 0x110, 0x10),
            (Opcode::QueryAdapter, 0x10, 0x110),
        ];
        for (op, i, o) in pinned {
            assert_eq!(
                lengths(op),
                Some(Lengths {
                    input: i,
                    output: o
                }),
                "{op}"
            );
        }
        assert_eq!(lengths(Opcode::Unknown(0xA00)), None);
        assert_eq!(lengths(Opcode::QueryFlowCounter), None);
    }

    fn overlaps(a: Field, b: Field) -> bool {
        let (a0, a1) = (a.bit, a.bit + a.width as usize);
        let (b0, b1) = (b.bit, b.bit + b.width as usize);
        a0 < b1 && b0 < a1
    }

    #[test]
    fn no_layout_has_overlapping_fields_or_fields_past_its_end() {
        for l in LAYOUTS {
            for (i, (n, f)) in l.fields.iter().enumerate() {
                assert!(f.end() <= l.len, "{}.{n}", l.name);
                for (m, g) in &l.fields[..i] {
                    assert!(!overlaps(*f, *g), "{}: {n} overlaps {m}", l.name);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn every_field_of_every_layout_round_trips(seed: u64, fill: u8) {
            for l in LAYOUTS {
                let mut b = vec![fill; l.len];
                for (k, (n, f)) in l.fields.iter().enumerate() {
                    let v = seed.rotate_left(k as u32) ^ (k as u64);
                    let mask = if f.width == 64 { u64::MAX } else { (1u64 << f.width) - 1 };
                    let others: Vec<u64> = l.fields.iter().map(|(_, g)| g.get_or_zero(&b)).collect();
                    proptest::prop_assert!(f.set(&mut b, v));
                    proptest::prop_assert_eq!(f.get(&b), Some(v & mask), "{}.{}", l.name, n);
                    for (j, (_, g)) in l.fields.iter().enumerate() {
                        if j != k {
                            proptest::prop_assert_eq!(g.get_or_zero(&b), others[j]);
                        }
                    }
                }
            }
        }

        #[test]
        fn views_refuse_short_buffers_and_read_any_bytes(bytes: Vec<u8>) {
            // Every output view over arbitrary bytes: either refused, or readable without
            // panicking, with unknown status values kept.
            if let Ok(o) = queues::CreateCqOut::new_checked(&bytes[..]) {
                let raw = bytes[0];
                proptest::prop_assert_eq!(u8::from(o.status()), raw);
                let _ = o.cqn();
            } else {
                proptest::prop_assert!(bytes.len() < 0x10);
            }
            if let Ok(v) = queues::CreateSqIn::new_checked(&bytes[..]) {
                let _ = (v.opcode(), v.sq_context().wq().log_wq_sz(), v.pa(usize::MAX), v.pa_capacity());
            }
            if let Ok(v) = vport::QueryNicVportContextOut::new_checked(&bytes[..]) {
                let c = v.nic_vport_context();
                let _ = (c.permanent_address(), c.address(c.address_capacity()), c.mtu());
            }
            if let Ok(v) = lifecycle::ManagePagesIn::new_checked(&bytes[..]) {
                let n = v.pa_capacity();
                proptest::prop_assert_eq!(v.pa(n), None);
                if n > 0 {
                    proptest::prop_assert!(v.pa(n - 1).is_some());
                }
            }
            proptest::prop_assert_eq!(CommandStatus::from(bytes.first().copied().unwrap_or(0)) == CommandStatus::Unknown(0x77), bytes.first() == Some(&0x77));
        }
    }
}

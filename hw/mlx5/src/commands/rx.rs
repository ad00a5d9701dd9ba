//! Transport objects between the queues and the steering: the TIS a send queue transmits
//! through, the TIR a flow rule delivers to (directly to one RQ, or spread over an RQ table by
//! a hash), and the RQ table (RQT) itself (Linux `mlx5_ifc.h`; `en/tir.c`, `en/rqt.c`,
//! `en/rx_res.c` for the values mlx5e uses).

use crate::cmd::Opcode;
use crate::commands::OUT_LEN_16;
use crate::commands::queues::OBJECT_NUMBER;
use crate::field::{Bytes, Field};
use crate::layout::{layout, nested, tail_array};

/// Where the TIS, TIR and RQT contexts sit in their CREATE/MODIFY inputs.
pub const CONTEXT_OFFSET: usize = 0x20;

layout! {
    /// TIS context (160 bytes).
    pub struct TisContext(0xA0) {
        /// Strict LAG port affinity.
        strict_lag_tx_port_affinity, set_strict_lag_tx_port_affinity: bool = Field::at(0x00, 31, 31);
        /// TLS offload.
        tls_en, set_tls_en: bool = Field::at(0x00, 30, 30);
        /// LAG port affinity.
        lag_tx_port_affinity, set_lag_tx_port_affinity: u8 = Field::at(0x00, 27, 24);
        /// Priority (mlx5e: traffic class << 1).
        prio, set_prio: u8 = Field::at(0x00, 19, 16);
        /// Transport domain.
        transport_domain, set_transport_domain: u32 = Field::at(0x24, 23, 0);
        /// Underlay QP (IPoIB).
        underlay_qpn, set_underlay_qpn: u32 = Field::at(0x28, 23, 0);
        /// Protection domain.
        pd, set_pd: u32 = Field::at(0x2C, 23, 0);
    }
}

layout! {
    /// CREATE_TIS input: context at 0x20.
    input(Opcode::CreateTis) struct CreateTisIn(CONTEXT_OFFSET + 0xA0) {}
}
nested!(
    CreateTisIn,
    tis_context,
    tis_context_mut,
    TisContext,
    CONTEXT_OFFSET
);

layout! {
    /// CREATE_TIS output.
    output struct CreateTisOut(OUT_LEN_16) {
        /// The new TIS.
        tisn, set_tisn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DESTROY_TIS input.
    input(Opcode::DestroyTis) struct DestroyTisIn(0x10) {
        /// The TIS.
        tisn, set_tisn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DESTROY_TIS output.
    output struct DestroyTisOut(OUT_LEN_16) {}
}

/// MODIFY_TIS bitmask bits (`modify_tis_bitmask`, the low dword of the qword at 0x10).
pub mod modify_tis_bitmask {
    /// `prio`.
    pub const PRIO: u64 = 1 << 0;
    /// `strict_lag_tx_port_affinity`.
    pub const STRICT_LAG_TX_PORT_AFFINITY: u64 = 1 << 1;
    /// `lag_tx_port_affinity`.
    pub const LAG_TX_PORT_AFFINITY: u64 = 1 << 2;
}

layout! {
    /// MODIFY_TIS input: bitmask at 0x10, context at 0x20.
    input(Opcode::ModifyTis) struct ModifyTisIn(CONTEXT_OFFSET + 0xA0) {
        /// The TIS.
        tisn, set_tisn: u32 = OBJECT_NUMBER;
        /// Fields to apply ([`modify_tis_bitmask`]).
        modify_bitmask, set_modify_bitmask: u64 = Field::qword(0x10);
    }
}
nested!(
    ModifyTisIn,
    tis_context,
    tis_context_mut,
    TisContext,
    CONTEXT_OFFSET
);

layout! {
    /// MODIFY_TIS output.
    output struct ModifyTisOut(OUT_LEN_16) {}
}

layout! {
    /// QUERY_TIS input.
    input(Opcode::QueryTis) struct QueryTisIn(0x10) {
        /// The TIS.
        tisn, set_tisn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// QUERY_TIS output: the context at 0x10.
    output struct QueryTisOut(0x10 + 0xA0) {}
}
nested!(QueryTisOut, tis_context, tis_context_mut, TisContext, 0x10);

/// `tirc.disp_type`.
pub mod disp_type {
    /// Deliver to `inline_rqn`.
    pub const DIRECT: u8 = 0;
    /// Hash over `indirect_table`.
    pub const INDIRECT: u8 = 1;
}

/// `tirc.rx_hash_fn`.
pub mod rx_hash_fn {
    /// No hash.
    pub const NONE: u8 = 0;
    /// Inverted XOR-8.
    pub const INVERTED_XOR8: u8 = 1;
    /// Toeplitz with `rx_hash_toeplitz_key`.
    pub const TOEPLITZ: u8 = 2;
}

/// Bits of `tirc.self_lb_block`: which of this transport domain's own packets not to receive.
pub mod self_lb_block {
    /// Unicast.
    pub const UNICAST: u8 = 1 << 0;
    /// Multicast.
    pub const MULTICAST: u8 = 1 << 1;
}

/// A TIR hash field selector (`rx_hash_field_selector_outer` / `_inner`).
pub mod hash_fields {
    use crate::field::Field;

    /// L3 protocol: 0 IPv4, 1 IPv6.
    pub const L3_PROT_TYPE: Field = Field::at(0x00, 31, 31);
    /// L4 protocol: 0 TCP, 1 UDP.
    pub const L4_PROT_TYPE: Field = Field::at(0x00, 30, 30);
    /// Fields hashed (the `SELECTED_*` bits).
    pub const SELECTED_FIELDS: Field = Field::at(0x00, 29, 0);
    /// Source IP.
    pub const SELECTED_SRC_IP: u32 = 1 << 0;
    /// Destination IP.
    pub const SELECTED_DST_IP: u32 = 1 << 1;
    /// L4 source port.
    pub const SELECTED_L4_SPORT: u32 = 1 << 2;
    /// L4 destination port.
    pub const SELECTED_L4_DPORT: u32 = 1 << 3;
    /// IPsec SPI.
    pub const SELECTED_IPSEC_SPI: u32 = 1 << 4;
}

/// The 40-byte Toeplitz key in the TIR context.
pub const TOEPLITZ_KEY: Bytes = Bytes::at(0x28, 40);

layout! {
    /// TIR context (240 bytes).
    pub struct TirContext(0xF0) {
        /// Dispatch type ([`disp_type`]).
        disp_type, set_disp_type: u8 = Field::at(0x04, 31, 28);
        /// LRO timeout (µs).
        lro_timeout_period_usecs, set_lro_timeout_period_usecs: u16 = Field::at(0x10, 31, 16);
        /// LRO enable mask (the model advertises no LRO).
        lro_enable_mask, set_lro_enable_mask: u8 = Field::at(0x10, 15, 12);
        /// LRO maximum IP payload (256-byte units).
        lro_max_ip_payload_size, set_lro_max_ip_payload_size: u8 = Field::at(0x10, 7, 0);
        /// RQ of a direct TIR.
        inline_rqn, set_inline_rqn: u32 = Field::at(0x1C, 23, 0);
        /// Symmetric hash.
        rx_hash_symmetric, set_rx_hash_symmetric: bool = Field::at(0x20, 31, 31);
        /// Hash on inner headers of tunnelled packets.
        tunneled_offload_en, set_tunneled_offload_en: bool = Field::at(0x20, 29, 29);
        /// RQT of an indirect TIR.
        indirect_table, set_indirect_table: u32 = Field::at(0x20, 23, 0);
        /// Hash function ([`rx_hash_fn`]).
        rx_hash_fn, set_rx_hash_fn: u8 = Field::at(0x24, 31, 28);
        /// Self-loopback block ([`self_lb_block`]).
        self_lb_block, set_self_lb_block: u8 = Field::at(0x24, 25, 24);
        /// Transport domain.
        transport_domain, set_transport_domain: u32 = Field::at(0x24, 23, 0);
        /// Outer-header hash selector ([`hash_fields`]).
        rx_hash_field_selector_outer, set_rx_hash_field_selector_outer: u32 = Field::dword(0x50);
        /// Inner-header hash selector.
        rx_hash_field_selector_inner, set_rx_hash_field_selector_inner: u32 = Field::dword(0x54);
    }
}

impl<T: AsRef<[u8]>> TirContext<T> {
    /// The Toeplitz key.
    pub fn rx_hash_toeplitz_key(&self) -> &[u8] {
        TOEPLITZ_KEY.get(self.as_bytes()).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TirContext<T> {
    /// Sets the Toeplitz key (at most 40 bytes).
    pub fn set_rx_hash_toeplitz_key(&mut self, key: &[u8]) -> bool {
        TOEPLITZ_KEY.set(self.as_bytes_mut(), key)
    }
}

layout! {
    /// CREATE_TIR input: context at 0x20.
    input(Opcode::CreateTir) struct CreateTirIn(CONTEXT_OFFSET + 0xF0) {}
}
nested!(
    CreateTirIn,
    tir_context,
    tir_context_mut,
    TirContext,
    CONTEXT_OFFSET
);

layout! {
    /// CREATE_TIR output.
    output struct CreateTirOut(OUT_LEN_16) {
        /// The new TIR.
        tirn, set_tirn: u32 = OBJECT_NUMBER;
    }
}

/// MODIFY_TIR bitmask bits.
pub mod modify_tir_bitmask {
    /// LRO fields.
    pub const LRO: u64 = 1 << 0;
    /// `indirect_table`.
    pub const INDIRECT_TABLE: u64 = 1 << 1;
    /// Hash fields.
    pub const HASH: u64 = 1 << 2;
    /// `self_lb_block` (mlx5e changes it on every open).
    pub const SELF_LB_EN: u64 = 1 << 4;
}

layout! {
    /// MODIFY_TIR input: bitmask at 0x10, context at 0x20.
    input(Opcode::ModifyTir) struct ModifyTirIn(CONTEXT_OFFSET + 0xF0) {
        /// The TIR.
        tirn, set_tirn: u32 = OBJECT_NUMBER;
        /// Fields to apply ([`modify_tir_bitmask`]).
        modify_bitmask, set_modify_bitmask: u64 = Field::qword(0x10);
    }
}
nested!(
    ModifyTirIn,
    tir_context,
    tir_context_mut,
    TirContext,
    CONTEXT_OFFSET
);

layout! {
    /// MODIFY_TIR output.
    output struct ModifyTirOut(OUT_LEN_16) {}
}

layout! {
    /// DESTROY_TIR input.
    input(Opcode::DestroyTir) struct DestroyTirIn(0x10) {
        /// The TIR.
        tirn, set_tirn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DESTROY_TIR output.
    output struct DestroyTirOut(OUT_LEN_16) {}
}

/// Where the RQ list starts in the RQT context.
pub const RQ_NUM_OFFSET: usize = 0xF0;

layout! {
    /// RQT context: 240 bytes, then `rqt_actual_size` RQ numbers of 4 bytes (RQN in 23:0).
    pub struct RqtContext(RQ_NUM_OFFSET) {
        /// Largest size this RQT may be modified to.
        rqt_max_size, set_rqt_max_size: u16 = Field::at(0x14, 15, 0);
        /// Entries in the list.
        rqt_actual_size, set_rqt_actual_size: u16 = Field::at(0x18, 15, 0);
    }
}
tail_array!(
    RqtContext,
    RQ_NUM_OFFSET,
    u32,
    4,
    rq_num,
    set_rq_num,
    rq_num_capacity,
    "the RQ list"
);

/// Input length of CREATE_RQT / MODIFY_RQT with `n` RQs, `None` on overflow.
pub const fn rqt_in_len(n: usize) -> Option<usize> {
    match n.checked_mul(4) {
        Some(b) => b.checked_add(CONTEXT_OFFSET + RQ_NUM_OFFSET),
        None => None,
    }
}

layout! {
    /// CREATE_RQT input: context at 0x20, RQ list at 0x110.
    input(Opcode::CreateRqt) struct CreateRqtIn(CONTEXT_OFFSET + RQ_NUM_OFFSET) {}
}
nested!(
    CreateRqtIn,
    rqt_context,
    rqt_context_mut,
    RqtContext,
    CONTEXT_OFFSET
);

layout! {
    /// CREATE_RQT output.
    output struct CreateRqtOut(OUT_LEN_16) {
        /// The new RQT.
        rqtn, set_rqtn: u32 = OBJECT_NUMBER;
    }
}

/// MODIFY_RQT bitmask: the RQ list.
pub const MODIFY_RQT_RQN_LIST: u64 = 1 << 0;

layout! {
    /// MODIFY_RQT input: bitmask at 0x10, context at 0x20.
    input(Opcode::ModifyRqt) struct ModifyRqtIn(CONTEXT_OFFSET + RQ_NUM_OFFSET) {
        /// The RQT.
        rqtn, set_rqtn: u32 = OBJECT_NUMBER;
        /// Fields to apply ([`MODIFY_RQT_RQN_LIST`]).
        modify_bitmask, set_modify_bitmask: u64 = Field::qword(0x10);
    }
}
nested!(
    ModifyRqtIn,
    rqt_context,
    rqt_context_mut,
    RqtContext,
    CONTEXT_OFFSET
);

layout! {
    /// MODIFY_RQT output.
    output struct ModifyRqtOut(OUT_LEN_16) {}
}

layout! {
    /// DESTROY_RQT input.
    input(Opcode::DestroyRqt) struct DestroyRqtIn(0x10) {
        /// The RQT.
        rqtn, set_rqtn: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DESTROY_RQT output.
    output struct DestroyRqtOut(OUT_LEN_16) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tis_as_mlx5e_creates_it() {
        let mut b = [0u8; 0xC0];
        let mut c = CreateTisIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        c.tis_context_mut().set_prio(3 << 1);
        c.tis_context_mut().set_transport_domain(0x1234);
        assert_eq!(&b[..2], &[0x09, 0x12]);
        assert_eq!(&b[0x20..0x24], &[0, 0x06, 0, 0]);
        assert_eq!(&b[0x44..0x48], &[0, 0, 0x12, 0x34]);
        assert_eq!(
            CreateTisIn::new_checked(&b[..])
                .unwrap()
                .tis_context()
                .prio(),
            6
        );
    }

    #[test]
    fn indirect_toeplitz_tir() {
        let mut b = [0u8; 0x110];
        let mut c = CreateTirIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        {
            let mut t = c.tir_context_mut();
            t.set_disp_type(disp_type::INDIRECT);
            t.set_indirect_table(0x21);
            t.set_rx_hash_fn(rx_hash_fn::TOEPLITZ);
            t.set_self_lb_block(self_lb_block::UNICAST | self_lb_block::MULTICAST);
            t.set_transport_domain(0x7);
            assert!(t.set_rx_hash_toeplitz_key(&[0x6D; 40]));
            assert!(!t.set_rx_hash_toeplitz_key(&[0; 41]));
            t.set_rx_hash_field_selector_outer(
                (1 << 30)
                    | hash_fields::SELECTED_SRC_IP
                    | hash_fields::SELECTED_DST_IP
                    | hash_fields::SELECTED_L4_SPORT
                    | hash_fields::SELECTED_L4_DPORT,
            );
        }
        // tirc at 0x20: dw1 at 0x24, dw8 at 0x40, dw9 at 0x44, key at 0x48, selector at 0x70.
        assert_eq!(b[0x24], 0x10);
        assert_eq!(&b[0x40..0x44], &[0, 0, 0, 0x21]);
        assert_eq!(&b[0x44..0x48], &[0x23, 0, 0, 0x07]);
        assert_eq!(&b[0x48..0x70], &[0x6D; 40]);
        assert_eq!(&b[0x70..0x74], &[0x40, 0, 0, 0x0F], "IPv4 UDP, four fields");
        let c = CreateTirIn::new_checked(&b[..]).unwrap();
        assert_eq!(hash_fields::L4_PROT_TYPE.read::<u8>(&b[0x70..]), 1);
        assert_eq!(c.tir_context().rx_hash_toeplitz_key(), &[0x6D; 40]);
        let mut m = [0u8; 0x110];
        let mut v = ModifyTirIn::new_checked(&mut m[..]).unwrap();
        v.set_modify_bitmask(modify_tir_bitmask::SELF_LB_EN);
        assert_eq!(m[0x17], 0x10, "self_lb_en: byte 0x17 bit 4");
    }

    #[test]
    fn rqt_with_rq_list() {
        let len = rqt_in_len(4).unwrap();
        assert_eq!(len, 0x120);
        let mut b = vec![0u8; len];
        let mut c = CreateRqtIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        {
            let mut r = c.rqt_context_mut();
            r.set_rqt_max_size(256);
            r.set_rqt_actual_size(4);
            for i in 0..4 {
                assert!(r.set_rq_num(i, 0x100 + i as u32));
            }
            assert!(!r.set_rq_num(4, 0));
        }
        assert_eq!(&b[0x34..0x38], &[0, 0, 1, 0]);
        assert_eq!(&b[0x38..0x3C], &[0, 0, 0, 4]);
        assert_eq!(&b[0x110..0x114], &[0, 0, 1, 0]);
        assert_eq!(&b[0x11C..0x120], &[0, 0, 1, 3]);
        let c = CreateRqtIn::new_checked(&b[..]).unwrap();
        assert_eq!(c.rqt_context().rq_num_capacity(), 4);
        assert_eq!(c.rqt_context().rq_num(3), Some(0x103));
        assert_eq!(c.rqt_context().rq_num(4), None);
    }
}

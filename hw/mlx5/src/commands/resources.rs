//! Resources a driver allocates before its queues: UAR pages, protection domains, transport
//! domains, memory keys (with the `mkc` context), queue counter sets, and the special memory
//! keys (Linux `mlx5_ifc.h`; `mlx5e_create_mdev_resources` and `mlx5e_create_mkey` for the
//! values used: one physical-address mkey covering all memory).

use crate::cmd::Opcode;
use crate::commands::OUT_LEN_16;
use crate::commands::queues::OBJECT_NUMBER;
use crate::field::Field;
use crate::layout::{layout, nested, tail_array};

layout! {
    /// ALLOC_UAR input.
    input(Opcode::AllocUar) struct AllocUarIn(0x10) {}
}

layout! {
    /// ALLOC_UAR output: the UAR page index (its page is BAR0 + index · 4 KiB).
    output struct AllocUarOut(OUT_LEN_16) {
        /// The UAR page index.
        uar, set_uar: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DEALLOC_UAR input.
    input(Opcode::DeallocUar) struct DeallocUarIn(0x10) {
        /// The UAR page index.
        uar, set_uar: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DEALLOC_UAR output.
    output struct DeallocUarOut(OUT_LEN_16) {}
}

layout! {
    /// ALLOC_PD input.
    input(Opcode::AllocPd) struct AllocPdIn(0x10) {}
}

layout! {
    /// ALLOC_PD output.
    output struct AllocPdOut(OUT_LEN_16) {
        /// The protection domain.
        pd, set_pd: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DEALLOC_PD input.
    input(Opcode::DeallocPd) struct DeallocPdIn(0x10) {
        /// The protection domain.
        pd, set_pd: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DEALLOC_PD output.
    output struct DeallocPdOut(OUT_LEN_16) {}
}

layout! {
    /// ALLOC_TRANSPORT_DOMAIN input.
    input(Opcode::AllocTransportDomain) struct AllocTransportDomainIn(0x10) {}
}

layout! {
    /// ALLOC_TRANSPORT_DOMAIN output.
    output struct AllocTransportDomainOut(OUT_LEN_16) {
        /// The transport domain.
        transport_domain, set_transport_domain: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DEALLOC_TRANSPORT_DOMAIN input.
    input(Opcode::DeallocTransportDomain) struct DeallocTransportDomainIn(0x10) {
        /// The transport domain.
        transport_domain, set_transport_domain: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DEALLOC_TRANSPORT_DOMAIN output.
    output struct DeallocTransportDomainOut(OUT_LEN_16) {}
}

/// `mkc.access_mode_1_0` values (with `access_mode_4_2` = 0).
pub mod mkey_access_mode {
    /// Physical addresses: the mkey covers `start_addr..start_addr + len` untranslated
    /// (`length64` covers all memory). What mlx5e uses.
    pub const PA: u8 = 0;
    /// Memory translation table.
    pub const MTT: u8 = 1;
    /// Key-length-memory list.
    pub const KLMS: u8 = 2;
    /// KLM fixed block size.
    pub const KSM: u8 = 3;
}

layout! {
    /// Memory key context (64 bytes).
    pub struct MkeyContext(0x40) {
        /// Access mode bits 4:2.
        access_mode_4_2, set_access_mode_4_2: u8 = Field::at(0x00, 28, 26);
        /// UMR may modify this mkey.
        umr_en, set_umr_en: bool = Field::at(0x00, 15, 15);
        /// Atomic access.
        a, set_a: bool = Field::at(0x00, 14, 14);
        /// Remote write.
        rw, set_rw: bool = Field::at(0x00, 13, 13);
        /// Remote read.
        rr, set_rr: bool = Field::at(0x00, 12, 12);
        /// Local write.
        lw, set_lw: bool = Field::at(0x00, 11, 11);
        /// Local read.
        lr, set_lr: bool = Field::at(0x00, 10, 10);
        /// Access mode bits 1:0 ([`mkey_access_mode`]).
        access_mode_1_0, set_access_mode_1_0: u8 = Field::at(0x00, 9, 8);
        /// QP the key is bound to (0xFFFFFF: none).
        qpn, set_qpn: u32 = Field::at(0x04, 31, 8);
        /// The key's low byte (the variant part of lkey = index << 8 | key).
        mkey_7_0, set_mkey_7_0: u8 = Field::at(0x04, 7, 0);
        /// The key covers the whole 64-bit address space.
        length64, set_length64: bool = Field::at(0x0C, 31, 31);
        /// Protection domain.
        pd, set_pd: u32 = Field::at(0x0C, 23, 0);
        /// Start address.
        start_addr, set_start_addr: u64 = Field::qword(0x10);
        /// Length in bytes (PRM `len`).
        length, set_length: u64 = Field::qword(0x18);
        /// Translation entries (in 16-byte units).
        translations_octword_size, set_translations_octword_size: u32 = Field::dword(0x34);
        /// Page size of the translation: 4 KiB << n.
        log_page_size, set_log_page_size: u8 = Field::at(0x38, 4, 0);
    }
}

/// Where the translation list of CREATE_MKEY starts (PA keys have none).
pub const MKEY_TRANSLATIONS_OFFSET: usize = 0x110;

layout! {
    /// CREATE_MKEY input: context at 0x10; translations (none for PA) at 0x110.
    input(Opcode::CreateMkey) struct CreateMkeyIn(MKEY_TRANSLATIONS_OFFSET) {
        /// Page-fault access (ODP).
        pg_access, set_pg_access: bool = Field::at(0x0C, 31, 31);
        /// The key's translations are in a user memory object.
        mkey_umem_valid, set_mkey_umem_valid: bool = Field::at(0x0C, 30, 30);
        /// Translation entries actually given.
        translations_octword_actual_size, set_translations_octword_actual_size: u32 = Field::dword(0x60);
    }
}
nested!(
    CreateMkeyIn,
    mkey_context,
    mkey_context_mut,
    MkeyContext,
    0x10
);
tail_array!(
    CreateMkeyIn,
    MKEY_TRANSLATIONS_OFFSET,
    u64,
    8,
    mtt,
    set_mtt,
    mtt_capacity,
    "the translation entries (MTT mode)"
);

layout! {
    /// CREATE_MKEY output.
    output struct CreateMkeyOut(OUT_LEN_16) {
        /// The key's index: lkey = index << 8 | mkey_7_0.
        mkey_index, set_mkey_index: u32 = OBJECT_NUMBER;
    }
}

/// The lkey of mkey `index` with variant byte `key`.
pub const fn lkey(index: u32, key: u8) -> u32 {
    (index << 8) | key as u32
}

layout! {
    /// DESTROY_MKEY input.
    input(Opcode::DestroyMkey) struct DestroyMkeyIn(0x10) {
        /// The key's index.
        mkey_index, set_mkey_index: u32 = OBJECT_NUMBER;
    }
}

layout! {
    /// DESTROY_MKEY output.
    output struct DestroyMkeyOut(OUT_LEN_16) {}
}

layout! {
    /// QUERY_SPECIAL_CONTEXTS input.
    input(Opcode::QuerySpecialContexts) struct QuerySpecialContextsIn(0x10) {}
}

layout! {
    /// QUERY_SPECIAL_CONTEXTS output.
    output struct QuerySpecialContextsOut(0x20) {
        /// Dump-fill mkey.
        dump_fill_mkey, set_dump_fill_mkey: u32 = Field::dword(0x08);
        /// Reserved lkey: addresses are bus addresses, no memory key (never the invalid lkey 0x100
        /// that ends a receive scatter list).
        resd_lkey, set_resd_lkey: u32 = Field::dword(0x0C);
        /// Null mkey.
        null_mkey, set_null_mkey: u32 = Field::dword(0x10);
        /// Terminate-scatter-list mkey.
        terminate_scatter_list_mkey, set_terminate_scatter_list_mkey: u32 = Field::dword(0x14);
    }
}

layout! {
    /// ALLOC_Q_COUNTER input.
    input(Opcode::AllocQCounter) struct AllocQCounterIn(0x10) {}
}

layout! {
    /// ALLOC_Q_COUNTER output.
    output struct AllocQCounterOut(OUT_LEN_16) {
        /// The counter set.
        counter_set_id, set_counter_set_id: u8 = Field::at(0x08, 7, 0);
    }
}

layout! {
    /// DEALLOC_Q_COUNTER input.
    input(Opcode::DeallocQCounter) struct DeallocQCounterIn(0x10) {
        /// The counter set.
        counter_set_id, set_counter_set_id: u8 = Field::at(0x08, 7, 0);
    }
}

layout! {
    /// DEALLOC_Q_COUNTER output.
    output struct DeallocQCounterOut(OUT_LEN_16) {}
}

layout! {
    /// QUERY_Q_COUNTER input.
    input(Opcode::QueryQCounter) struct QueryQCounterIn(0x20) {
        /// Another vport's counter set.
        other_vport, set_other_vport: bool = Field::at(0x08, 31, 31);
        /// The vport.
        vport_number, set_vport_number: u16 = Field::at(0x08, 15, 0);
        /// Clear after reading.
        clear, set_clear: bool = Field::at(0x18, 31, 31);
        /// Sum over the function's counter sets.
        aggregate, set_aggregate: bool = Field::at(0x18, 30, 30);
        /// The counter set.
        counter_set_id, set_counter_set_id: u8 = Field::at(0x1C, 7, 0);
    }
}

layout! {
    /// QUERY_Q_COUNTER output (256 bytes; the RDMA counters are not listed).
    output struct QueryQCounterOut(0x100) {
        /// Packets dropped for want of a receive WQE (mlx5e's `rx_out_of_buffer`).
        out_of_buffer, set_out_of_buffer: u32 = Field::dword(0x30);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mlx5e_physical_address_mkey() {
        let mut b = [0u8; MKEY_TRANSLATIONS_OFFSET];
        let mut c = CreateMkeyIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        {
            let mut k = c.mkey_context_mut();
            k.set_access_mode_1_0(mkey_access_mode::PA);
            k.set_lw(true);
            k.set_lr(true);
            k.set_length64(true);
            k.set_qpn(0xFF_FFFF);
            k.set_pd(0x3);
        }
        assert_eq!(&b[..2], &[0x02, 0x00]);
        assert_eq!(&b[0x10..0x14], &[0, 0, 0x0C, 0], "lw, lr, access mode PA");
        assert_eq!(&b[0x14..0x18], &[0xFF, 0xFF, 0xFF, 0]);
        assert_eq!(&b[0x1C..0x20], &[0x80, 0, 0, 3]);
        let c = CreateMkeyIn::new_checked(&b[..]).unwrap();
        let k = c.mkey_context();
        assert!(k.lw() && k.lr() && !k.rw() && k.length64());
        assert_eq!((k.pd(), k.qpn(), k.access_mode_1_0()), (3, 0xFF_FFFF, 0));
        assert_eq!(c.mtt_capacity(), 0);
        assert_eq!(lkey(5, 0), 0x500);
    }

    #[test]
    fn mkey_context_fields() {
        let mut b = [0u8; 0x40];
        let mut k = MkeyContext::new_checked(&mut b[..]).unwrap();
        k.set_start_addr(0x1122_3344_5566_7788);
        k.set_length(0x1000);
        k.set_log_page_size(12);
        k.set_access_mode_4_2(1);
        k.set_umr_en(true);
        assert_eq!(&b[0..4], &[0x04, 0x00, 0x80, 0x00]);
        assert_eq!(
            &b[0x10..0x18],
            &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
        assert_eq!(&b[0x18..0x20], &[0, 0, 0, 0, 0, 0, 0x10, 0]);
        assert_eq!(b[0x3B], 12);
    }

    #[test]
    fn ids_out_of_allocations() {
        let mut o = [0u8; 16];
        AllocUarOut::new_checked(&mut o[..]).unwrap().set_uar(0x10);
        assert_eq!(&o[8..12], &[0, 0, 0, 0x10]);
        let mut o = [0u8; 16];
        AllocTransportDomainOut::new_checked(&mut o[..])
            .unwrap()
            .set_transport_domain(0xABCDEF);
        assert_eq!(&o[8..12], &[0, 0xAB, 0xCD, 0xEF]);
        let mut o = [0u8; 16];
        AllocQCounterOut::new_checked(&mut o[..])
            .unwrap()
            .set_counter_set_id(9);
        assert_eq!(o[0x0B], 9);
        let mut i = [0u8; 16];
        let mut d = DeallocPdIn::new_checked(&mut i[..]).unwrap();
        d.set_header(0);
        d.set_pd(2);
        assert_eq!(&i[..0x0C], &[0x08, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let mut q = [0u8; 0x100];
        QueryQCounterOut::new_checked(&mut q[..])
            .unwrap()
            .set_out_of_buffer(3);
        assert_eq!(&q[0x30..0x34], &[0, 0, 0, 3]);
        let mut q = [0u8; 0x20];
        let mut v = QueryQCounterIn::new_checked(&mut q[..]).unwrap();
        v.set_counter_set_id(4);
        v.set_clear(true);
        assert_eq!((q[0x18], q[0x1F]), (0x80, 4));
        let mut s = [0u8; 0x20];
        QuerySpecialContextsOut::new_checked(&mut s[..])
            .unwrap()
            .set_resd_lkey(0x100);
        assert_eq!(&s[0x0C..0x10], &[0, 0, 1, 0]);
    }
}

//! Completion queue entries, the CQ doorbell record and CQ arming.
//!
//! A CQ is a ring of 64-byte CQEs ([`CQE_LEN`]). The device writes a CQE per completed
//! receive WQE and per send WQE that asked for one; the last byte (`op_own`) holds the
//! [`CqeOpcode`], the CQE format and the owner bit. The owner bit the device writes flips on
//! every pass over the ring ([`owner_bit`]), so software sees a CQE as new when its owner bit
//! matches its own pass; drivers start the ring with `op_own` = [`CQE_INITIAL_OP_OWN`]
//! (invalid opcode, owner 1), so the first pass is written with owner 0.
//!
//! [`Cqe`] is the normal layout (byte count, checksum flags, L3/L4 header types, VLAN, RSS
//! hash, WQE counter, SQN or SRQN/user index); [`ErrCqe`] is the layout of `REQ_ERR` /
//! `RESP_ERR` CQEs, with a [`CqeSyndrome`]. [`cqe_opcode`] tells which applies.
//!
//! Software tells the device how far it consumed in the CQ doorbell record
//! ([`CqDbRecord`]: consumer index, and the arm word) and arms the CQ with a 64-bit write to
//! its UAR page ([`CqArmDoorbell`] at `uar::CQ_ARM_DOORBELL`): an armed CQ that gains a CQE
//! posts one completion EQE to its EQ and disarms.
//!
//! Sources: Linux `include/linux/mlx5/device.h` (`mlx5_cqe64`, `mlx5_err_cqe`, opcodes, header
//! types), `include/linux/mlx5/cq.h` (`mlx5_cq_arm`, doorbell record), `drivers/net/ethernet/
//! mellanox/mlx5/core/en_rx.c`, `en_tx.c`; rdma-core `providers/mlx5/mlx5dv.h` (syndromes).

use crate::Field;
use crate::layout::{field_enum, layout};

/// Bytes of one CQE (CQ context `cqe_sz` 0).
pub const CQE_LEN: usize = 64;
/// The `op_own` byte drivers initialise every CQE with: opcode [`CqeOpcode::Invalid`], owner 1.
pub const CQE_INITIAL_OP_OWN: u8 = 0xf1;
/// Mask of the consumer index in the doorbell record and the arm doorbell.
pub const CQ_CI_MASK: u32 = 0x00ff_ffff;

/// The owner bit the device writes into the entry it produces as its `counter`-th entry of a
/// ring of 2^`log_size` entries (for CQs and EQs alike): 0 on the first pass, then flipping.
/// Software accepts an entry at consumer counter `c` when its owner bit equals
/// `owner_bit(c, log_size)`.
pub const fn owner_bit(counter: u32, log_size: u8) -> bool {
    if log_size >= 32 {
        return false;
    }
    (counter >> log_size) & 1 == 1
}

field_enum! {
    /// CQE opcodes (`op_own` bits 7:4).
    pub enum CqeOpcode: u8 {
        /// Requester: a send WQE completed (mlx5e TX).
        Req = 0,
        /// Responder: RDMA write with immediate.
        RespWrImm = 1,
        /// Responder: a packet was received (mlx5e RX).
        RespSend = 2,
        /// Responder: send with immediate.
        RespSendImm = 3,
        /// Responder: send with invalidate.
        RespSendInv = 4,
        /// No packet (striding RQ filler).
        NoPacket = 6,
        /// Signature error.
        SigErr = 12,
        /// Requester error: the layout is [`ErrCqe`].
        ReqErr = 13,
        /// Responder error: the layout is [`ErrCqe`].
        RespErr = 14,
        /// Invalid (the driver's initial value).
        Invalid = 15,
    }
}

impl CqeOpcode {
    /// The CQE uses the error layout.
    pub fn is_error(self) -> bool {
        matches!(self, CqeOpcode::ReqErr | CqeOpcode::RespErr)
    }
}

field_enum! {
    /// CQE format (`op_own` bits 3:2).
    pub enum CqeFormat: u8 {
        /// A plain 64-byte CQE.
        Plain = 0,
        /// A compressed CQE session (only with `cqe_compression`).
        Compressed = 3,
    }
}

field_enum! {
    /// L3 header type of a received packet (`l4_l3_hdr_type` bits 3:2).
    pub enum L3HdrType: u8 {
        /// Not IP.
        None = 0,
        /// IPv6.
        Ipv6 = 1,
        /// IPv4.
        Ipv4 = 2,
    }
}

field_enum! {
    /// L4 header type of a received packet (`l4_l3_hdr_type` bits 6:4).
    pub enum L4HdrType: u8 {
        /// Neither TCP nor UDP.
        None = 0,
        /// TCP without ACK.
        TcpNoAck = 1,
        /// UDP.
        Udp = 2,
        /// TCP, ACK and no data.
        TcpAckNoData = 3,
        /// TCP, ACK and data.
        TcpAckAndData = 4,
    }
}

/// `hds_ip_ext` bits: which checksums the device verified as correct.
pub mod hds_ip_ext {
    /// L2 OK.
    pub const L2_OK: u8 = 1 << 0;
    /// IPv4 header checksum OK.
    pub const L3_OK: u8 = 1 << 1;
    /// TCP/UDP checksum OK.
    pub const L4_OK: u8 = 1 << 2;
}

/// `rss_hash_type` encodings: the IP version in bits 3:2, the L4 protocol in bits 7:6.
pub mod rss_hash_type {
    /// Hashed over IPv4 addresses.
    pub const IPV4: u8 = 1 << 2;
    /// Hashed over IPv6 addresses.
    pub const IPV6: u8 = 2 << 2;
    /// Hashed over TCP ports.
    pub const TCP: u8 = 1 << 6;
    /// Hashed over UDP ports.
    pub const UDP: u8 = 2 << 6;
    /// Hashed over the IPsec SPI.
    pub const IPSEC_SPI: u8 = 3 << 6;
}

layout! {
    /// A CQE in the normal layout (64 bytes).
    pub struct Cqe(CQE_LEN, "CQE") {
        /// Tunnel and TLS bits (bit 0 tunneled, bits 4:3 TLS status); 0 without those offloads.
        tls_outer_l3_tunneled, set_tls_outer_l3_tunneled: u8 = Field::at(0x00, 31, 24);
        /// RSS hash of the packet.
        rss_hash_result, set_rss_hash_result: u32 = Field::dword(0x0c);
        /// What the RSS hash covered ([`rss_hash_type`]).
        rss_hash_type, set_rss_hash_type: u8 = Field::at(0x10, 31, 24);
        /// Bit 7: ECN congestion experienced.
        ml_path, set_ml_path: u8 = Field::at(0x10, 23, 16);
        /// Ones-complement sum of the packet from its IP header (see `cqe_checksum_full`).
        check_sum, set_check_sum: u16 = Field::at(0x14, 31, 16);
        /// Checksums verified ([`hds_ip_ext`]).
        hds_ip_ext, set_hds_ip_ext: u8 = Field::at(0x1c, 31, 24);
        /// L4 header type.
        l4_hdr_type, set_l4_hdr_type: L4HdrType = Field::at(0x1c, 22, 20);
        /// L3 header type.
        l3_hdr_type, set_l3_hdr_type: L3HdrType = Field::at(0x1c, 19, 18);
        /// A VLAN tag was stripped into `vlan_info`.
        vlan_stripped, set_vlan_stripped: bool = Field::at(0x1c, 16, 16);
        /// The stripped VLAN TCI.
        vlan_info, set_vlan_info: u16 = Field::at(0x1c, 15, 0);
        /// LRO: segments aggregated (must be 0 without LRO: mlx5e takes the LRO path otherwise).
        lro_num_seg, set_lro_num_seg: u8 = Field::at(0x20, 31, 24);
        /// SRQ number, or the user index with CQE version 1.
        srqn_uidx, set_srqn_uidx: u32 = Field::at(0x20, 23, 0);
        /// Immediate, invalidated key or P_Key.
        imm_inval_pkey, set_imm_inval_pkey: u32 = Field::dword(0x24);
        /// Bytes of the received packet (without FCS unless `scatter_fcs`).
        byte_cnt, set_byte_cnt: u32 = Field::dword(0x2c);
        /// Device timestamp (internal timer).
        timestamp, set_timestamp: u64 = Field::qword(0x30);
        /// Bits 31:24 of the word at 0x38 (packet-drop/steering info); 0 on Ethernet.
        sop_drop, set_sop_drop: u8 = Field::at(0x38, 31, 24);
        /// QPN, or on a send completion the SQN (mlx5e RX reads the word as `skb->mark`: 0).
        qpn, set_qpn: u32 = Field::at(0x38, 23, 0);
        /// TX: index of the WQE that requested the CQE; RX: index of the consumed receive WQE.
        wqe_counter, set_wqe_counter: u16 = Field::at(0x3c, 31, 16);
        /// Signature.
        signature, set_signature: u8 = Field::at(0x3c, 15, 8);
        /// Opcode.
        opcode, set_opcode: CqeOpcode = Field::at(0x3c, 7, 4);
        /// Format.
        format, set_format: CqeFormat = Field::at(0x3c, 3, 2);
        /// Solicited event.
        solicited, set_solicited: bool = Field::at(0x3c, 1, 1);
        /// Owner bit ([`owner_bit`]).
        owner, set_owner: bool = Field::at(0x3c, 0, 0);
    }
    /// A normal CQE as values.
    repr CqeRepr;
}

impl CqeRepr {
    /// The CQE as a fresh 64-byte array (undeclared bits zero).
    pub fn to_bytes(&self) -> [u8; CQE_LEN] {
        let mut b = [0u8; CQE_LEN];
        if let Ok(mut v) = Cqe::new_checked(&mut b[..]) {
            self.emit(&mut v);
        }
        b
    }
}

field_enum! {
    /// Error CQE syndromes.
    pub enum CqeSyndrome: u8 {
        /// Local length error (e.g. a packet longer than the receive WQE's buffers).
        LocalLengthErr = 0x01,
        /// Local QP operation error (a malformed WQE).
        LocalQpOpErr = 0x02,
        /// Local protection error (bad lkey or address).
        LocalProtErr = 0x04,
        /// WQE flushed: the queue went to the error state.
        WrFlushErr = 0x05,
        /// Memory window bind error.
        MwBindErr = 0x06,
        /// Bad response.
        BadRespErr = 0x10,
        /// Local access error.
        LocalAccessErr = 0x11,
        /// Remote invalid request.
        RemoteInvalReqErr = 0x12,
        /// Remote access error.
        RemoteAccessErr = 0x13,
        /// Remote operation error.
        RemoteOpErr = 0x14,
        /// Transport retries exceeded.
        TransportRetryExcErr = 0x15,
        /// RNR retries exceeded.
        RnrRetryExcErr = 0x16,
        /// Remote aborted.
        RemoteAbortedErr = 0x22,
    }
}

layout! {
    /// A CQE in the error layout (64 bytes; opcode `REQ_ERR` or `RESP_ERR`).
    pub struct ErrCqe(CQE_LEN, "error CQE") {
        /// SRQ number or user index.
        srqn_uidx, set_srqn_uidx: u32 = Field::at(0x20, 23, 0);
        /// Vendor-specific syndrome.
        vendor_err_synd, set_vendor_err_synd: u8 = Field::at(0x34, 15, 8);
        /// Syndrome.
        syndrome, set_syndrome: CqeSyndrome = Field::at(0x34, 7, 0);
        /// Opcode of the failed send WQE.
        s_wqe_opcode, set_s_wqe_opcode: u8 = Field::at(0x38, 31, 24);
        /// QPN or SQN.
        qpn, set_qpn: u32 = Field::at(0x38, 23, 0);
        /// Index of the failed WQE.
        wqe_counter, set_wqe_counter: u16 = Field::at(0x3c, 31, 16);
        /// Signature.
        signature, set_signature: u8 = Field::at(0x3c, 15, 8);
        /// Opcode (`ReqErr` or `RespErr`).
        opcode, set_opcode: CqeOpcode = Field::at(0x3c, 7, 4);
        /// Format.
        format, set_format: CqeFormat = Field::at(0x3c, 3, 2);
        /// Owner bit.
        owner, set_owner: bool = Field::at(0x3c, 0, 0);
    }
    /// An error CQE as values.
    repr ErrCqeRepr;
}

impl ErrCqeRepr {
    /// The error CQE as a fresh 64-byte array (undeclared bits zero).
    pub fn to_bytes(&self) -> [u8; CQE_LEN] {
        let mut b = [0u8; CQE_LEN];
        if let Ok(mut v) = ErrCqe::new_checked(&mut b[..]) {
            self.emit(&mut v);
        }
        b
    }
}

/// The opcode of the CQE in `cqe` (its last byte), `None` when `cqe` is shorter than a CQE.
pub fn cqe_opcode(cqe: &[u8]) -> Option<CqeOpcode> {
    if cqe.len() < CQE_LEN {
        return None;
    }
    Some(CqeOpcode::from_raw_value(cqe[CQE_LEN - 1] >> 4))
}

field_enum! {
    /// What an arm asks for (`cmd`, bit 24 of the arm word).
    pub enum CqArmCmd: u8 {
        /// Raise an event on the next CQE.
        NextCqe = 0,
        /// Raise an event on the next solicited CQE.
        Solicited = 1,
    }
}

/// Bytes of a CQ doorbell record.
pub const CQ_DB_RECORD_LEN: usize = 8;

layout! {
    /// The CQ doorbell record (8 bytes at the CQ context's `dbr_addr`, in host memory).
    pub struct CqDbRecord(CQ_DB_RECORD_LEN, "CQ doorbell record") {
        /// Consumer counter (`set_ci`): CQEs software has consumed (24 bits, wrapping).
        ci, set_ci: u32 = Field::at(0x0, 23, 0);
        /// Arm sequence number of the last arm.
        arm_sn, set_arm_sn: u8 = Field::at(0x4, 29, 28);
        /// Arm command of the last arm.
        arm_cmd, set_arm_cmd: CqArmCmd = Field::at(0x4, 24, 24);
        /// Consumer counter at the last arm.
        arm_ci, set_arm_ci: u32 = Field::at(0x4, 23, 0);
    }
    /// A CQ doorbell record as values.
    repr CqDbRecordRepr;
}

/// Bytes of the CQ arm doorbell write.
pub const CQ_ARM_DOORBELL_LEN: usize = 8;

layout! {
    /// The 64-bit CQ arm doorbell written to the UAR page (`uar::CQ_ARM_DOORBELL`): the arm
    /// word (as in the doorbell record) and the CQ number. Software writes the doorbell record
    /// first, then (after a write barrier) this register.
    pub struct CqArmDoorbell(CQ_ARM_DOORBELL_LEN, "CQ arm doorbell") {
        /// Arm sequence number (2 bits, incremented per completion event handled).
        sn, set_sn: u8 = Field::at(0x0, 29, 28);
        /// Arm command.
        cmd, set_cmd: CqArmCmd = Field::at(0x0, 24, 24);
        /// Consumer counter.
        ci, set_ci: u32 = Field::at(0x0, 23, 0);
        /// CQ number (the whole second dword).
        cqn, set_cqn: u32 = Field::dword(0x4);
    }
    /// A CQ arm doorbell as values.
    repr CqArmDoorbellRepr;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn receive_cqe_bytes_are_pinned() {
        let r = CqeRepr {
            rss_hash_result: 0xdead_beef,
            rss_hash_type: rss_hash_type::IPV4 | rss_hash_type::UDP,
            check_sum: 0xbeef,
            hds_ip_ext: hds_ip_ext::L3_OK | hds_ip_ext::L4_OK,
            l4_hdr_type: L4HdrType::Udp,
            l3_hdr_type: L3HdrType::Ipv4,
            vlan_stripped: true,
            vlan_info: 0x0064,
            srqn_uidx: 5,
            byte_cnt: 60,
            timestamp: 0x0102_0304_0506_0708,
            wqe_counter: 0x0102,
            opcode: CqeOpcode::RespSend,
            owner: true,
            ..CqeRepr::default()
        };
        let mut b = [0u8; CQE_LEN];
        r.emit(&mut Cqe::new_checked(&mut b[..]).unwrap());
        let mut want = [0u8; CQE_LEN];
        want[12..16].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        want[16] = 0x84;
        want[20..22].copy_from_slice(&[0xbe, 0xef]);
        want[28] = 0x06; // L3 and L4 OK
        want[29] = 0x29; // L4 UDP (2 << 4), L3 IPv4 (2 << 2), VLAN stripped
        want[30..32].copy_from_slice(&[0x00, 0x64]);
        want[32..36].copy_from_slice(&[0, 0, 0, 5]);
        want[44..48].copy_from_slice(&[0, 0, 0, 60]);
        want[48..56].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        want[60..62].copy_from_slice(&[0x01, 0x02]);
        want[63] = 0x21; // opcode 2, owner 1
        assert_eq!(b, want);
        assert_eq!(CqeRepr::parse(&Cqe::new_checked(&b[..]).unwrap()), r);
        assert_eq!(r.to_bytes(), b);
        assert_eq!(cqe_opcode(&b), Some(CqeOpcode::RespSend));
    }

    #[test]
    fn send_and_error_cqes_are_pinned() {
        let tx = CqeRepr {
            qpn: 0xabc,
            wqe_counter: 0x00ff,
            opcode: CqeOpcode::Req,
            ..CqeRepr::default()
        };
        let mut b = [0u8; CQE_LEN];
        tx.emit(&mut Cqe::new_checked(&mut b[..]).unwrap());
        assert_eq!(b[56..64], [0, 0, 0x0a, 0xbc, 0x00, 0xff, 0, 0x00]);

        let err = ErrCqeRepr {
            vendor_err_synd: 0x32,
            syndrome: CqeSyndrome::LocalProtErr,
            s_wqe_opcode: 0x0a,
            qpn: 0xabc,
            wqe_counter: 3,
            opcode: CqeOpcode::ReqErr,
            owner: true,
            ..ErrCqeRepr::default()
        };
        let mut b = [0u8; CQE_LEN];
        err.emit(&mut ErrCqe::new_checked(&mut b[..]).unwrap());
        assert_eq!(
            b[52..64],
            [0, 0, 0x32, 0x04, 0x0a, 0, 0x0a, 0xbc, 0, 3, 0, 0xd1]
        );
        assert!(cqe_opcode(&b).unwrap().is_error());
        assert_eq!(
            ErrCqeRepr::parse(&ErrCqe::new_checked(&b[..]).unwrap()),
            err
        );
        b[55] = 0x99;
        assert_eq!(
            ErrCqe::new_checked(&b[..]).unwrap().syndrome(),
            CqeSyndrome::Unknown(0x99)
        );
    }

    #[test]
    fn initial_op_own_and_ownership() {
        let mut b = [0u8; CQE_LEN];
        b[63] = CQE_INITIAL_OP_OWN;
        let c = Cqe::new_checked(&b[..]).unwrap();
        assert_eq!(c.opcode(), CqeOpcode::Invalid);
        assert!(c.owner());
        assert_eq!(cqe_opcode(&b[..63]), None);
        assert!(!owner_bit(0, 10));
        assert!(!owner_bit(1023, 10));
        assert!(owner_bit(1024, 10));
        assert!(!owner_bit(2048, 10));
        assert!(owner_bit(1, 0));
        assert!(!owner_bit(u32::MAX, 40));
        assert!(Cqe::new_checked(&b[..63]).is_err());
    }

    #[test]
    fn doorbell_record_and_arm_doorbell_are_pinned() {
        let rec = CqDbRecordRepr {
            ci: 0x12_3456,
            arm_sn: 1,
            arm_cmd: CqArmCmd::Solicited,
            arm_ci: 0x10,
        };
        let mut b = [0u8; CQ_DB_RECORD_LEN];
        rec.emit(&mut CqDbRecord::new_checked(&mut b[..]).unwrap());
        assert_eq!(b, [0x00, 0x12, 0x34, 0x56, 0x11, 0x00, 0x00, 0x10]);
        assert_eq!(
            CqDbRecordRepr::parse(&CqDbRecord::new_checked(&b[..]).unwrap()),
            rec
        );

        let arm = CqArmDoorbellRepr {
            sn: 3,
            cmd: CqArmCmd::NextCqe,
            ci: 5,
            cqn: 0x42,
        };
        let mut b = [0u8; CQ_ARM_DOORBELL_LEN];
        arm.emit(&mut CqArmDoorbell::new_checked(&mut b[..]).unwrap());
        assert_eq!(b, [0x30, 0, 0, 5, 0, 0, 0, 0x42]);
        assert_eq!(
            CqArmDoorbellRepr::parse(&CqArmDoorbell::new_checked(&b[..]).unwrap()),
            arm
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_cqes_parse_and_reemit_exactly(bytes: [u8; CQE_LEN], db: [u8; 8]) {
            let c = CqeRepr::parse(&Cqe::new_checked(&bytes[..]).unwrap());
            let mut copy = bytes;
            c.emit(&mut Cqe::new_checked(&mut copy[..]).unwrap());
            proptest::prop_assert_eq!(copy, bytes);
            let e = ErrCqeRepr::parse(&ErrCqe::new_checked(&bytes[..]).unwrap());
            let mut fresh = [0u8; CQE_LEN];
            e.emit(&mut ErrCqe::new_checked(&mut fresh[..]).unwrap());
            proptest::prop_assert_eq!(ErrCqeRepr::parse(&ErrCqe::new_checked(&fresh[..]).unwrap()), e);
            let a = CqArmDoorbellRepr::parse(&CqArmDoorbell::new_checked(&db[..]).unwrap());
            let r = CqDbRecordRepr::parse(&CqDbRecord::new_checked(&db[..]).unwrap());
            let mut fresh = [0u8; 8];
            a.emit(&mut CqArmDoorbell::new_checked(&mut fresh[..]).unwrap());
            proptest::prop_assert_eq!(CqArmDoorbellRepr::parse(&CqArmDoorbell::new_checked(&fresh[..]).unwrap()), a);
            r.emit(&mut CqDbRecord::new_checked(&mut fresh[..]).unwrap());
            proptest::prop_assert_eq!(CqDbRecordRepr::parse(&CqDbRecord::new_checked(&fresh[..]).unwrap()), r);
        }
    }
}

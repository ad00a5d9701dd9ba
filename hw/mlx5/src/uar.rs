//! User access region (UAR) pages: where doorbells are rung, how a UAR index maps into BAR0,
//! and the SQ/RQ doorbell records in host memory.
//!
//! BAR0 is divided into UAR pages of 4 KiB × 2^`log_uar_page_sz` (mlx5_core sets
//! `log_uar_page_sz` 0 on 4 KiB-page hosts): UAR index *n* is the page at
//! `n << (12 + log_uar_page_sz)` ([`UarIndex::bar_offset`]). ALLOC_UAR hands out indices;
//! the low pages hold the initialization segment and the MSI-X table. In a page:
//!
//! | Offset | Register |
//! |---|---|
//! | [`CQ_ARM_DOORBELL`] 0x020 | CQ arm, 64-bit ([`crate::cqe::CqArmDoorbell`]) |
//! | [`EQ_DOORBELL_ARM`] 0x040 | EQ consumer counter + re-arm ([`crate::eqe::EqDoorbell`]) |
//! | [`EQ_DOORBELL_UPDATE_CI`] 0x048 | EQ consumer counter without arming |
//! | [`BF_OFFSET`] 0x800 + k·2^`log_bf_reg_size` | send doorbell / BlueFlame register k (4 per page), each two alternating buffers of half the register |
//!
//! A send doorbell is the first 8 bytes of the control segment of the last WQE posted
//! ([`SendDoorbell`]), written to a BlueFlame register after the producer counter was stored in
//! the SQ's doorbell record. Receive queues have no MMIO doorbell: the device reads the RQ's
//! doorbell record. Both records are the two big-endian dwords of a [`WqDbRecord`] (receive
//! counter at +0, send counter at +4) at the work queue context's `dbr_addr`.
//!
//! [`UarRegister::decode`] names the register at an offset of a UAR page, so a model dispatches
//! on names, not numbers. A 64-bit doorbell may arrive as two 32-bit writes; joining them is
//! the model's business.
//!
//! Sources: Linux `include/linux/mlx5/doorbell.h`, `device.h` (`MLX5_BF_OFFSET`,
//! `MLX5_CQ_DOORBELL`, `MLX5_EQ_DOORBEL_OFFSET`, `MLX5_SND_DBR`/`MLX5_RCV_DBR`),
//! `drivers/net/ethernet/mellanox/mlx5/core/uar.c`, `eq.c`, `en/txrx.h`; rdma-core
//! `providers/mlx5/mlx5dv.h`.

use crate::Field;
use crate::layout::layout;
use crate::wqe::{SendOpcode, ctrl};

/// Bytes of a UAR page with `log_uar_page_sz` 0.
pub const UAR_PAGE_LEN: u64 = 4096;
/// log2 of [`UAR_PAGE_LEN`].
pub const UAR_PAGE_SHIFT: u32 = 12;
/// CQ arm doorbell (64-bit write).
pub const CQ_ARM_DOORBELL: u32 = 0x020;
/// EQ doorbell: update the consumer counter and re-arm.
pub const EQ_DOORBELL_ARM: u32 = 0x040;
/// EQ doorbell: update the consumer counter without arming.
pub const EQ_DOORBELL_UPDATE_CI: u32 = 0x048;
/// First send doorbell / BlueFlame register.
pub const BF_OFFSET: u32 = 0x800;
/// BlueFlame registers per UAR page.
pub const BF_REGS_PER_UAR: u32 = 4;
/// BlueFlame registers per page usable without fast-path locking (the first two).
pub const NON_FP_BF_REGS_PER_UAR: u32 = 2;
/// Bytes of a send doorbell write (the first 8 bytes of a control segment).
pub const SEND_DOORBELL_LEN: usize = 8;
/// Offset of the receive counter in a work queue doorbell record.
pub const RCV_DBR_OFFSET: usize = 0;
/// Offset of the send counter in a work queue doorbell record.
pub const SND_DBR_OFFSET: usize = 4;
/// Bytes of a work queue doorbell record.
pub const WQ_DB_RECORD_LEN: usize = 8;

/// A UAR index, as ALLOC_UAR returns it and queue contexts name it (`uar_page`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UarIndex(pub u32);

impl UarIndex {
    /// Bytes of one UAR page for `log_uar_page_sz`; `None` when absurd (beyond 2^63).
    pub fn page_len(log_uar_page_sz: u16) -> Option<u64> {
        1u64.checked_shl(UAR_PAGE_SHIFT + u32::from(log_uar_page_sz))
            .filter(|&n| n != 0 && u32::from(log_uar_page_sz) < 52)
    }

    /// Offset of the page in BAR0; `None` on overflow.
    pub fn bar_offset(self, log_uar_page_sz: u16) -> Option<u64> {
        Self::page_len(log_uar_page_sz)?.checked_mul(u64::from(self.0))
    }

    /// The UAR page holding BAR0 offset `offset`, and the offset within that page; `None` for
    /// an absurd page size or an index beyond 32 bits.
    pub fn from_bar_offset(offset: u64, log_uar_page_sz: u16) -> Option<(UarIndex, u64)> {
        let len = Self::page_len(log_uar_page_sz)?;
        let index = u32::try_from(offset / len).ok()?;
        Some((UarIndex(index), offset % len))
    }
}

/// A register of a UAR page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UarRegister {
    /// The CQ arm doorbell; `offset` is 0 for the first dword, 4 for the second.
    CqArm {
        /// Byte within the 8-byte register.
        offset: u32,
    },
    /// The EQ doorbell with re-arm.
    EqArm,
    /// The EQ doorbell without arming.
    EqUpdateCi,
    /// A send doorbell / BlueFlame register.
    BlueFlame {
        /// Register in the page (0..4).
        reg: u32,
        /// Buffer of the register (0 or 1, alternating for BlueFlame copies).
        buffer: u32,
        /// Byte within the buffer: 0 and 4 are the send doorbell's two dwords; more means a
        /// BlueFlame copy of the WQE.
        offset: u32,
    },
    /// Any other offset (reserved).
    Other(u32),
}

impl UarRegister {
    /// The register at byte `offset` of a UAR page whose BlueFlame registers are
    /// 2^`log_bf_reg_size` bytes (general capability `log_bf_reg_size`, 9 on ConnectX).
    pub fn decode(offset: u32, log_bf_reg_size: u8) -> UarRegister {
        match offset {
            CQ_ARM_DOORBELL..=0x027 => UarRegister::CqArm {
                offset: offset - CQ_ARM_DOORBELL,
            },
            EQ_DOORBELL_ARM => UarRegister::EqArm,
            EQ_DOORBELL_UPDATE_CI => UarRegister::EqUpdateCi,
            _ if offset >= BF_OFFSET && (1..=9).contains(&log_bf_reg_size) => {
                let rel = offset - BF_OFFSET;
                let reg = rel >> log_bf_reg_size;
                let within = rel & ((1 << log_bf_reg_size) - 1);
                let half = log_bf_reg_size - 1;
                if reg < BF_REGS_PER_UAR {
                    UarRegister::BlueFlame {
                        reg,
                        buffer: within >> half,
                        offset: within & ((1 << half) - 1),
                    }
                } else {
                    UarRegister::Other(offset)
                }
            }
            _ => UarRegister::Other(offset),
        }
    }

    /// Byte offset of BlueFlame register `reg`, buffer 0, for `log_bf_reg_size`.
    pub fn blue_flame_offset(reg: u32, log_bf_reg_size: u8) -> Option<u32> {
        if reg >= BF_REGS_PER_UAR || !(1..=9).contains(&log_bf_reg_size) {
            return None;
        }
        Some(BF_OFFSET + (reg << log_bf_reg_size))
    }
}

layout! {
    /// A send doorbell: the first 8 bytes of the last posted WQE's control segment (its fields
    /// are [`crate::wqe::ctrl`]'s), written to a BlueFlame register after the SQ doorbell
    /// record was updated.
    pub struct SendDoorbell(SEND_DOORBELL_LEN, "send doorbell") {
        /// Opcode modifier.
        opc_mod, set_opc_mod: u8 = ctrl::OPC_MOD;
        /// Index of the WQE (its producer counter in WQEBBs, 16 bits).
        wqe_index, set_wqe_index: u16 = ctrl::WQE_INDEX;
        /// Opcode.
        opcode, set_opcode: SendOpcode = ctrl::OPCODE;
        /// SQ number.
        sqn, set_sqn: u32 = ctrl::SQN;
        /// DS count.
        ds_count, set_ds_count: u8 = ctrl::DS_COUNT;
    }
    /// A send doorbell as values.
    repr SendDoorbellRepr;
}

layout! {
    /// A work queue doorbell record (8 bytes in host memory at the WQ's `dbr_addr`).
    pub struct WqDbRecord(WQ_DB_RECORD_LEN, "work queue doorbell record") {
        /// RQ: receive WQEs posted (16-bit wrapping counter in a big-endian dword).
        rcv_counter, set_rcv_counter: u16 = Field::at(RCV_DBR_OFFSET, 15, 0);
        /// SQ: WQEBBs posted (the producer counter, 16-bit wrapping).
        snd_counter, set_snd_counter: u16 = Field::at(SND_DBR_OFFSET, 15, 0);
    }
    /// A work queue doorbell record as values.
    repr WqDbRecordRepr;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wqe::{CtrlSeg, CtrlSegRepr};

    #[test]
    fn uar_index_maps_to_bar0() {
        assert_eq!(UarIndex(0x10).bar_offset(0), Some(0x10000));
        assert_eq!(UarIndex(0x10).bar_offset(1), Some(0x20000));
        assert_eq!(
            UarIndex::from_bar_offset(0x10840, 0),
            Some((UarIndex(0x10), 0x840))
        );
        assert_eq!(UarIndex(u32::MAX).bar_offset(u16::MAX), None);
        assert_eq!(UarIndex::from_bar_offset(u64::MAX, 0), None);
        assert_eq!(UarIndex::page_len(0), Some(UAR_PAGE_LEN));
    }

    #[test]
    fn uar_registers_are_named_by_offset() {
        use UarRegister::*;
        let d = |o| UarRegister::decode(o, 9);
        assert_eq!(d(0x20), CqArm { offset: 0 });
        assert_eq!(d(0x24), CqArm { offset: 4 });
        assert_eq!(d(0x40), EqArm);
        assert_eq!(d(0x48), EqUpdateCi);
        assert_eq!(d(0x44), Other(0x44));
        assert_eq!(d(0x7fc), Other(0x7fc));
        let bf = |reg, buffer, offset| BlueFlame {
            reg,
            buffer,
            offset,
        };
        assert_eq!(d(0x800), bf(0, 0, 0));
        assert_eq!(d(0x804), bf(0, 0, 4));
        assert_eq!(d(0x900), bf(0, 1, 0));
        assert_eq!(d(0xa00), bf(1, 0, 0));
        assert_eq!(d(0xe04), bf(3, 0, 4));
        assert_eq!(d(0x1000), Other(0x1000));
        assert_eq!(UarRegister::decode(0x800, 0), Other(0x800));
        assert_eq!(UarRegister::blue_flame_offset(1, 9), Some(0xa00));
        assert_eq!(UarRegister::blue_flame_offset(4, 9), None);
    }

    #[test]
    fn send_doorbell_is_the_control_segment_head() {
        let ctrl = CtrlSegRepr {
            wqe_index: 0x1234,
            opcode: SendOpcode::Send,
            sqn: 0xabc,
            ds_count: 4,
            ..CtrlSegRepr::default()
        };
        let mut b = [0u8; 16];
        ctrl.emit(&mut CtrlSeg::new_checked(&mut b[..]).unwrap());
        let db = SendDoorbellRepr::parse(&SendDoorbell::new_checked(&b[..8]).unwrap());
        assert_eq!(
            db,
            SendDoorbellRepr {
                opc_mod: 0,
                wqe_index: 0x1234,
                opcode: SendOpcode::Send,
                sqn: 0xabc,
                ds_count: 4,
            }
        );
        assert_eq!(b[..8], [0x00, 0x12, 0x34, 0x0a, 0x00, 0x0a, 0xbc, 0x04]);
        assert!(SendDoorbell::new_checked(&b[..7]).is_err());
    }

    #[test]
    fn wq_doorbell_record_is_pinned() {
        let r = WqDbRecordRepr {
            rcv_counter: 0x0102,
            snd_counter: 0xfffe,
        };
        let mut b = [0u8; WQ_DB_RECORD_LEN];
        r.emit(&mut WqDbRecord::new_checked(&mut b[..]).unwrap());
        assert_eq!(b, [0, 0, 0x01, 0x02, 0, 0, 0xff, 0xfe]);
        assert_eq!(
            WqDbRecordRepr::parse(&WqDbRecord::new_checked(&b[..]).unwrap()),
            r
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(offset: u32, log_bf: u8, bar: u64, log_uar: u16, db: [u8; 8]) {
            let _ = UarRegister::decode(offset, log_bf);
            let _ = UarRegister::blue_flame_offset(offset, log_bf);
            if let Some((idx, within)) = UarIndex::from_bar_offset(bar, log_uar) {
                proptest::prop_assert_eq!(idx.bar_offset(log_uar).map(|b| b + within), Some(bar));
            }
            let s = SendDoorbellRepr::parse(&SendDoorbell::new_checked(&db[..]).unwrap());
            let mut fresh = [0u8; 8];
            s.emit(&mut SendDoorbell::new_checked(&mut fresh[..]).unwrap());
            proptest::prop_assert_eq!(SendDoorbellRepr::parse(&SendDoorbell::new_checked(&fresh[..]).unwrap()), s);
        }
    }
}

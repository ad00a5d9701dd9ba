//! Event and completion queues in DMA memory: the buffers the device writes, their owner
//! bits, the consumer counters, the CQ doorbell record and the EQ/CQ doorbells.
//!
//! Both are contiguous rings of 64-byte entries in one [`DmaRegion`], listed to the device as
//! 4 KiB pages (`log_page_size` 0). The driver starts every entry with the owner value of
//! "not yet written on the first pass" (EQE owner 1, CQE `op_own` 0xf1); an entry with
//! consumer counter `i` is new when its owner bit equals `(i >> log_size) & 1`. A CQ's
//! doorbell record sits in the page after its ring.

use mlx5_hw::cqe::{
    CQ_ARM_DOORBELL_LEN, CQ_CI_MASK, CQ_DB_RECORD_LEN, CQE_INITIAL_OP_OWN, CQE_LEN, CqArmCmd,
    CqArmDoorbell, CqArmDoorbellRepr, CqeOpcode, owner_bit,
};
use mlx5_hw::eqe::{EQ_CI_MASK, EQE_INITIAL_OWNER, EQE_LEN, EqDoorbellRepr, EqeRepr};
use mlx5_hw::uar::{CQ_ARM_DOORBELL, EQ_DOORBELL_ARM, EQ_DOORBELL_UPDATE_CI};

use super::iseg::Mlx5Bar;
use crate::backend::{DmaRegion, RegisterIo, completion_fence, doorbell_fence};

/// Bytes of a device page listed in a PAS.
pub const PAS_PAGE: usize = 4096;

/// The 4 KiB page addresses covering `len` bytes of `region` from its start.
pub fn page_list<G: DmaRegion>(region: &G, len: usize) -> Vec<u64> {
    (0..len.div_ceil(PAS_PAGE))
        .map(|k| region.iova().0 + (k * PAS_PAGE) as u64)
        .collect()
}

/// An event queue.
pub struct EventQueue<G: DmaRegion> {
    pub(crate) region: G,
    /// EQ number.
    pub eqn: u8,
    /// log2 of the EQE count.
    pub log_size: u8,
    /// The UAR page of its doorbell.
    pub uar: u32,
    /// Consumer counter.
    pub consumer: u32,
}

impl<G: DmaRegion> EventQueue<G> {
    /// A ring of 2^`log_size` EQEs in `region`, every owner byte 1.
    pub fn prepare(region: G, log_size: u8, uar: u32) -> Self {
        let mut eqe = [0u8; EQE_LEN];
        eqe[EQE_LEN - 1] = EQE_INITIAL_OWNER;
        for k in 0..(1usize << log_size) {
            region.write(k * EQE_LEN, &eqe);
        }
        EventQueue {
            region,
            eqn: 0,
            log_size,
            uar,
            consumer: 0,
        }
    }

    /// Bytes of the ring.
    pub fn ring_len(&self) -> usize {
        EQE_LEN << self.log_size
    }

    /// The next new EQE, consumed; `None` when the device has not written one.
    pub fn next_eqe(&mut self) -> Option<EqeRepr> {
        let index = (self.consumer & ((1 << self.log_size) - 1)) as usize;
        let mut b = [0u8; EQE_LEN];
        self.region.read(index * EQE_LEN, &mut b);
        let owner = b[EQE_LEN - 1] & 1 == 1;
        if owner != owner_bit(self.consumer, self.log_size) {
            return None;
        }
        // Orders the owner read before the rest of the EQE.
        completion_fence();
        self.region.read(index * EQE_LEN, &mut b);
        self.consumer = (self.consumer + 1) & EQ_CI_MASK;
        EqeRepr::parse_bytes(&b).ok()
    }

    /// Tells the device the consumer counter; `arm`: and asks for an interrupt on the next
    /// EQE.
    pub fn doorbell<R: RegisterIo>(&self, bar: &Mlx5Bar<R>, arm: bool) {
        let db = EqDoorbellRepr {
            eqn: self.eqn,
            ci: self.consumer,
        }
        .to_be_bytes();
        let reg = if arm {
            EQ_DOORBELL_ARM
        } else {
            EQ_DOORBELL_UPDATE_CI
        };
        bar.write_doorbell32(Mlx5Bar::<R>::uar_offset(self.uar, reg), db);
    }
}

/// A completion queue.
pub struct CompletionQueue<G: DmaRegion> {
    pub(crate) region: G,
    /// CQ number.
    pub cqn: u32,
    /// log2 of the CQE count.
    pub log_size: u8,
    /// The UAR page of its arm doorbell.
    pub uar: u32,
    /// Consumer counter.
    pub consumer: u32,
    /// Arm sequence number.
    pub sn: u8,
}

impl<G: DmaRegion> CompletionQueue<G> {
    /// Bytes `region` needs for 2^`log_size` CQEs and the doorbell record.
    pub fn region_len(log_size: u8) -> usize {
        (CQE_LEN << log_size) + PAS_PAGE
    }

    /// A ring of 2^`log_size` CQEs in `region` (every `op_own` 0xf1) and a zeroed doorbell
    /// record after it.
    pub fn prepare(region: G, log_size: u8, uar: u32) -> Self {
        let mut cqe = [0u8; CQE_LEN];
        cqe[CQE_LEN - 1] = CQE_INITIAL_OP_OWN;
        for k in 0..(1usize << log_size) {
            region.write(k * CQE_LEN, &cqe);
        }
        let cq = CompletionQueue {
            region,
            cqn: 0,
            log_size,
            uar,
            consumer: 0,
            sn: 0,
        };
        cq.region.write(cq.dbr_offset(), &[0u8; CQ_DB_RECORD_LEN]);
        cq
    }

    /// Bytes of the ring.
    pub fn ring_len(&self) -> usize {
        CQE_LEN << self.log_size
    }

    fn dbr_offset(&self) -> usize {
        self.ring_len()
    }

    /// Device address of the doorbell record.
    pub fn dbr_addr(&self) -> u64 {
        self.region.iova().0 + self.dbr_offset() as u64
    }

    /// The next new CQE's bytes, consumed; `None` when the device has not written one.
    pub fn next_cqe(&mut self) -> Option<[u8; CQE_LEN]> {
        let index = (self.consumer & ((1 << self.log_size) - 1)) as usize;
        let mut b = [0u8; CQE_LEN];
        self.region.read(index * CQE_LEN, &mut b);
        let op_own = b[CQE_LEN - 1];
        let owner = op_own & 1 == 1;
        if CqeOpcode::from_raw_value(op_own >> 4) == CqeOpcode::Invalid
            || owner != owner_bit(self.consumer, self.log_size)
        {
            return None;
        }
        // Orders the owner read before the rest of the CQE.
        completion_fence();
        self.region.read(index * CQE_LEN, &mut b);
        self.consumer = (self.consumer + 1) & CQ_CI_MASK;
        Some(b)
    }

    /// Writes the consumer counter into the doorbell record (the device reads it to know the
    /// room left).
    pub fn update_ci(&self) {
        self.region.write(
            self.dbr_offset(),
            &(self.consumer & CQ_CI_MASK).to_be_bytes(),
        );
    }

    /// Arms the CQ for an event on the next CQE: the arm word into the doorbell record, then
    /// the 64-bit arm doorbell (one access).
    pub fn arm<R: RegisterIo>(&mut self, bar: &Mlx5Bar<R>) {
        let arm = CqArmDoorbellRepr {
            sn: self.sn & 3,
            cmd: CqArmCmd::NextCqe,
            ci: self.consumer & CQ_CI_MASK,
            cqn: self.cqn,
        };
        let mut db = [0u8; CQ_ARM_DOORBELL_LEN];
        if let Ok(mut v) = CqArmDoorbell::new_checked(&mut db[..]) {
            arm.emit(&mut v);
        }
        self.update_ci();
        self.region.write(self.dbr_offset() + 4, &db[..4]);
        // Orders the doorbell record before the arm doorbell.
        doorbell_fence();
        bar.write_doorbell64(Mlx5Bar::<R>::uar_offset(self.uar, CQ_ARM_DOORBELL), db);
        self.sn = self.sn.wrapping_add(1);
    }
}

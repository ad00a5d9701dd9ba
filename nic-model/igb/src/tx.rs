//! TX engines (datasheet 7.2): one per physical queue, run on a TDT doorbell and whenever the
//! egress stage frees room for a queue that was held back.
//!
//! The engine owns descriptors `[TDH, TDT)`. For each descriptor it DMA-reads 16 bytes as the
//! queue's owning function, gathers data buffers until EOP, writes DD back for RS descriptors
//! (or the head to TDWBAH:TDWBAL when head write-back is on), applies offloads and hands the
//! frame to the internal switch. A packet is only started when the egress stage has room for a
//! maximum-size frame of the pool, so a full stage stops the ring (backpressure) instead of
//! dropping.
//!
//! Work per run is bounded like the hardware's descriptor fetch: at most
//! [`TX_RUN_DESCRIPTORS`] descriptors and [`TX_RUN_BYTES`] buffer bytes (every data
//! descriptor's length, whether its packet is sent or dropped). A queue that stops on the budget
//! with work left is *pending* and continues when device time advances
//! ([`Nic::advance_to`]/[`Nic::drain`]), so one doorbell never walks a whole ring under the
//! device lock. The fetch is paced: a pending queue runs again only once the port could have
//! sent what the last run read (its bytes and descriptors at line rate), so a ring of packets
//! that are read and dropped costs at most a line rate's worth of DMA per queue, however often
//! the device is advanced or other queues keep the wire busy.

use bytes::Bytes;
use igb_hw::desc::{
    self, Descriptor, MAX_TX_FRAGMENTS, TxContextRepr, TxDataRepr, TxDescriptorKind,
};
use igb_hw::frame::{DEFAULT_MAX_FRAME, ETHERNET_HEADER_LEN, FCS_LEN, MIN_FRAME_LEN};
use igb_hw::regs::{self, PfReg, RCTL, TCTL, TDWBAL, TXDCTL, VMOLR, VMVIR};
use igb_hw::{Iova, PoolIndex, QueueIndex};

use crate::nic::{FunctionId, Nic};
use crate::offload;
use adapter_core::memory::DmaFault;

/// Largest packet the engine gathers for TSO (PAYLEN is 18 bits).
const MAX_TSO_BYTES: usize = 256 * 1024;

/// Descriptors one run of a TX engine processes at most (a doorbell, or a continuation as
/// device time advances): a full 512-entry ring, the largest the driver and the engine use.
pub const TX_RUN_DESCRIPTORS: u32 = 512;
/// Buffer bytes one run of a TX engine reads at most (four maximum TSO packets; a 512-entry ring
/// of 1514-byte frames fits). The descriptor that crosses the budget completes.
pub const TX_RUN_BYTES: usize = 1 << 20;

/// Runtime state of one TX engine (not visible through registers).
#[derive(Clone, Debug, Default)]
pub(crate) struct TxQueueState {
    contexts: [TxContextRepr; 2],
    packet: Vec<u8>,
    first: Option<TxDataRepr>,
    fragments: usize,
    dropping: bool,
    /// Stopped by a DMA fault until TXDCTL.ENABLE is set again.
    pub(crate) faulted: bool,
    /// Waiting for room in the egress stage.
    pub(crate) blocked: bool,
    /// Stopped on the per-run budget with descriptors left: continues as time advances.
    pub(crate) pending: bool,
    /// When a pending queue may run again (the last run's bytes and descriptors at line rate).
    pub(crate) resume_at: adapter_core::clock::SimTime,
}

impl TxQueueState {
    fn in_packet(&self) -> bool {
        self.first.is_some()
    }
    fn end_packet(&mut self) -> (Vec<u8>, Option<TxDataRepr>, bool) {
        let packet = std::mem::take(&mut self.packet);
        let first = self.first.take();
        let dropping = std::mem::replace(&mut self.dropping, false);
        self.fragments = 0;
        (packet, first, dropping)
    }
}

impl Nic {
    /// Largest frame (with FCS) pool `pool` may send or receive: VMOLR.RLPML when VMOLR.LPE is
    /// set (the PF sets it on SET_LPE), else 1522; PF-owned pools use RCTL.LPE.
    pub(crate) fn max_frame(&self, pool: PoolIndex) -> usize {
        let owner_is_vf = pool.get() < self.num_vfs();
        if owner_is_vf {
            let vmolr = regs::view::<VMOLR::Register>(self.reg(PfReg::VMOLR(pool.get() as u8)));
            if vmolr.is_set(VMOLR::LPE) {
                return (vmolr.read(VMOLR::RLPML) as usize).max(DEFAULT_MAX_FRAME);
            }
            DEFAULT_MAX_FRAME
        } else if self.reg(PfReg::RCTL) & regs::value(RCTL::LPE::SET) != 0 {
            igb_hw::frame::MAX_JUMBO_FRAME
        } else {
            DEFAULT_MAX_FRAME
        }
    }

    fn tx_enabled(&self, q: QueueIndex, owner: FunctionId) -> bool {
        let tctl = self.reg(PfReg::TCTL) & regs::value(TCTL::EN::SET) != 0;
        let qen = self.reg(PfReg::TXDCTL(q.get() as u8)) & regs::value(TXDCTL::ENABLE::SET) != 0;
        let pool_en = match owner {
            FunctionId::Pf => true,
            FunctionId::Vf(_) => self.reg(PfReg::VFTE) & q.pool().bit() != 0,
        };
        tctl && qen && pool_en && !self.tx_state[q.get()].faulted
    }

    fn tx_fault(&mut self, q: QueueIndex, fault: DmaFault) {
        let _ = fault;
        self.counters.dma_faults += 1;
        let qi = q.get() as u8;
        // The queue stops: ENABLE reads 0 until software re-enables it (datasheet 7.2.1.2.1
        // behaviour on a completion error), and the PF is told through ICR.DOUTSYNC and LVMMC.
        self.set_reg(
            PfReg::TXDCTL(qi),
            self.reg(PfReg::TXDCTL(qi)) & !regs::value(TXDCTL::ENABLE::SET),
        );
        self.tx_state[q.get()].faulted = true;
        self.set_reg(PfReg::LVMMC, u32::from(qi) | (1 << 8));
        self.raise_pf_cause(regs::value(regs::ICR::DOUTSYNC::SET));
    }

    /// Runs TX queue `q` as far as it can go now, within one run's budget.
    pub(crate) fn tx_kick(&mut self, q: QueueIndex) {
        self.tx_state[q.get()].pending = false;
        let owner = self.queue_owner(q);
        if !self.tx_enabled(q, owner) {
            return;
        }
        let qi = q.get() as u8;
        let tail = self.reg(PfReg::TDT(qi));
        let mut head = self.reg(PfReg::TDH(qi));
        if head == tail {
            return;
        }
        if !self.bus_master(owner) {
            self.counters.dma_blocked_no_bus_master += 1;
            return;
        }
        let count = self.reg(PfReg::TDLEN(qi)) / desc::DESCRIPTOR_LEN as u32;
        if count == 0 {
            self.counters.tx_ring_empty_length += 1;
            return;
        }
        if tail >= count || head >= count {
            self.counters.tail_out_of_range += 1;
            return;
        }
        let base =
            u64::from(self.reg(PfReg::TDBAL(qi))) | (u64::from(self.reg(PfReg::TDBAH(qi))) << 32);
        let pool = q.pool();
        let max_frame = self.max_frame(pool);
        let wb = regs::view::<TDWBAL::Register>(self.reg(PfReg::TDWBAL(qi)));
        let head_wb = wb.is_set(TDWBAL::ENABLE).then(|| {
            Iova((u64::from(wb.get()) & !0x3) | (u64::from(self.reg(PfReg::TDWBAH(qi))) << 32))
        });
        let mut wrote_back = false;
        let mut fault = None;
        let mut descriptors = 0u32;
        let mut bytes = 0usize;

        while head != tail {
            if descriptors >= TX_RUN_DESCRIPTORS || bytes >= TX_RUN_BYTES {
                // The fetch budget of this run is spent: the rest waits for the next tick.
                self.counters.tx_run_budget_stops += 1;
                let read = bytes + descriptors as usize * desc::DESCRIPTOR_LEN;
                let pace = (read as u128 * 8 * 1_000_000_000)
                    .div_ceil(u128::from(self.wire.rate().bits_per_sec().max(1)));
                let state = &mut self.tx_state[q.get()];
                state.pending = true;
                state.resume_at = self.now + (pace as u64).max(1);
                break;
            }
            descriptors += 1;
            if !self.tx_state[q.get()].in_packet()
                && !self.egress.has_room(crate::vport(pool), max_frame)
            {
                if !self.tx_state[q.get()].blocked {
                    self.counters.tx_backpressure_stalls += 1;
                    self.egress.note_backpressure(crate::vport(pool));
                }
                self.tx_state[q.get()].blocked = true;
                break;
            }
            self.tx_state[q.get()].blocked = false;
            let at = Iova(base.wrapping_add(u64::from(head) * desc::DESCRIPTOR_LEN as u64));
            let mut raw = [0u8; desc::DESCRIPTOR_LEN];
            if let Err(e) = self.dma_read(owner, at, &mut raw) {
                fault = Some(e);
                break;
            }
            let d = Descriptor::from_array(raw);
            let dword2 = d.dword2();
            let mut eop = false;
            match desc::tx_kind(&d) {
                TxDescriptorKind::Context => {
                    if let Some(c) = TxContextRepr::parse(&d) {
                        self.tx_state[q.get()].contexts[usize::from(c.index & 1)] = c;
                    }
                }
                TxDescriptorKind::Data => {
                    let Some(r) = TxDataRepr::parse(&d) else {
                        break;
                    };
                    bytes += usize::from(r.length);
                    if let Err(e) = self.tx_gather(q, owner, &r, max_frame) {
                        fault = Some(e);
                        break;
                    }
                    eop = r.eop;
                }
                TxDescriptorKind::Legacy | TxDescriptorKind::Unknown(_) => {
                    self.counters.tx_bad_descriptors += 1;
                    let s = &mut self.tx_state[q.get()];
                    s.dropping = true;
                    if s.first.is_none() {
                        s.first = Some(TxDataRepr::default());
                    }
                    eop = dword2 & desc::tx::DCMD_EOP != 0;
                }
            }
            if dword2 & desc::tx::DCMD_RS != 0 {
                if head_wb.is_none() {
                    let sta = (d.dword3() | desc::tx::STA_DD).to_le_bytes();
                    if let Err(e) = self.dma_write(owner, Iova(at.0.wrapping_add(12)), &sta) {
                        fault = Some(e);
                        break;
                    }
                }
                wrote_back = true;
            }
            head = (head + 1) % count;
            if eop {
                self.tx_finish_packet(q);
            }
        }
        self.set_reg(PfReg::TDH(qi), head);
        if let (Some(addr), true) = (head_wb, wrote_back)
            && fault.is_none()
            && let Err(e) = self.dma_write(owner, addr, &head.to_le_bytes())
        {
            fault = Some(e);
        }
        if let Some(e) = fault {
            self.tx_fault(q, e);
        }
        if wrote_back {
            self.tx_interrupt(q, owner);
        }
    }

    fn tx_gather(
        &mut self,
        q: QueueIndex,
        owner: FunctionId,
        r: &TxDataRepr,
        max_frame: usize,
    ) -> Result<(), DmaFault> {
        let s = &mut self.tx_state[q.get()];
        if s.first.is_none() {
            s.first = Some(*r);
        }
        s.fragments += 1;
        if s.fragments == MAX_TX_FRAGMENTS + 1 {
            self.counters.tx_too_many_fragments += 1;
            s.dropping = true;
        }
        if r.length == 0 {
            self.counters.tx_zero_length_descriptors += 1;
            return Ok(());
        }
        let limit = if s.first.is_some_and(|f| f.tse) {
            MAX_TSO_BYTES
        } else {
            max_frame
        };
        if s.dropping {
            return Ok(());
        }
        if s.packet.len() + usize::from(r.length) > limit {
            self.counters.tx_oversize_frames += 1;
            s.dropping = true;
            return Ok(());
        }
        let start = s.packet.len();
        s.packet.resize(start + usize::from(r.length), 0);
        let mut buf = std::mem::take(&mut s.packet);
        let res = self.dma_read(owner, Iova(r.buffer), &mut buf[start..]);
        if res.is_err() {
            buf.truncate(start);
        }
        self.tx_state[q.get()].packet = buf;
        res
    }

    fn tx_finish_packet(&mut self, q: QueueIndex) {
        let pool = q.pool();
        let state = &mut self.tx_state[q.get()];
        let (mut frame, first, dropping) = state.end_packet();
        let contexts = state.contexts;
        let Some(first) = first else { return };
        if dropping {
            return;
        }
        if frame.len() < ETHERNET_HEADER_LEN {
            self.counters.tx_runt_frames += 1;
            return;
        }
        let ctx = contexts[usize::from(first.context_index & 1)];
        // Offloads use MACLEN/IPLEN of the packet as software built it (without the tag the
        // hardware inserts), so they run before VLAN insertion.
        let frames = if first.tse {
            match offload::segment_tcp(&frame, &ctx) {
                Ok(segs) => segs,
                Err(_) => {
                    self.counters.tx_offload_errors += 1;
                    return;
                }
            }
        } else {
            if (first.ixsm || first.txsm)
                && offload::checksums(&mut frame, &ctx, first.ixsm, first.txsm).is_err()
            {
                self.counters.tx_offload_errors += 1;
            }
            vec![frame]
        };
        // VLAN insertion: the pool's VMVIR overrides the descriptor (datasheet 7.10.3.9).
        let vmvir = regs::view::<VMVIR::Register>(self.reg(PfReg::VMVIR(pool.get() as u8)));
        let insert = match vmvir.read(VMVIR::VLANA) {
            1 => Some(vmvir.read(VMVIR::VLAN) as u16),
            2 => None,
            _ => first.vle.then_some(ctx.vlan),
        };
        let max_frame = self.max_frame(pool);
        let pad = self.reg(PfReg::TCTL) & regs::value(TCTL::PSP::SET) != 0;
        for mut f in frames {
            if let Some(tci) = insert {
                let mut tag = [0u8; 4];
                tag[..2].copy_from_slice(&igb_hw::frame::ETHERTYPE_VLAN.to_be_bytes());
                tag[2..].copy_from_slice(&tci.to_be_bytes());
                f.splice(12..12, tag);
            }
            if f.len() + FCS_LEN > max_frame {
                self.counters.tx_oversize_frames += 1;
                continue;
            }
            if pad && f.len() < MIN_FRAME_LEN {
                f.resize(MIN_FRAME_LEN, 0); // TCTL.PSP: pad short packets
            }
            self.switch_from_pool(pool, Bytes::from(f));
        }
    }

    fn tx_interrupt(&mut self, q: QueueIndex, owner: FunctionId) {
        match owner {
            FunctionId::Vf(vf) => {
                if let Some(bit) = self.vf_queue_vector(vf, q, true) {
                    self.raise_vf_causes(vf, bit);
                }
            }
            FunctionId::Pf => self.raise_pf_cause(regs::value(regs::ICR::TXDW::SET)),
        }
    }

    /// Continues every queue that stopped on its run budget and whose pace allows it now (one
    /// more run each).
    pub(crate) fn continue_pending_tx(&mut self) {
        for i in 0..igb_hw::addr::NUM_QUEUES {
            if self.tx_state[i].pending
                && self.tx_state[i].resume_at <= self.now
                && let Some(q) = QueueIndex::new(i)
            {
                self.tx_kick(q);
            }
        }
    }

    /// The earliest time a queue that stopped on its run budget may run again.
    pub(crate) fn next_tx_resume(&self) -> Option<adapter_core::clock::SimTime> {
        self.tx_state
            .iter()
            .filter(|s| s.pending)
            .map(|s| s.resume_at)
            .min()
    }

    /// Lets queues of `pool` that stopped for backpressure fetch again.
    pub(crate) fn resume_backpressured(&mut self, pool: PoolIndex) {
        for vq in 0..igb_hw::addr::QUEUES_PER_VF {
            if let Some(q) = QueueIndex::new(pool.get() + vq * igb_hw::addr::NUM_POOLS)
                && self.tx_state[q.get()].blocked
            {
                self.tx_kick(q);
            }
        }
    }
}

//! TX engines (datasheet 7.2): one per physical queue, run on a TDT doorbell and whenever the
//! egress stage frees room for a queue that was held back.
//!
//! The engine owns descriptors `[TDH, TDT)`. It DMA-reads them as the queue's owning function,
//! up to 32 in one read within one mapping (`Fetched`; alone when unmapped, so a fault lands
//! on exactly the first unmapped descriptor), gathers data buffers until EOP, writes DD back for RS
//! descriptors (or the head to TDWBAH:TDWBAL when head write-back is on), applies offloads and
//! hands the frame to the internal switch. A packet is only started when the egress stage has
//! room for a maximum-size frame of the pool, so a full stage stops the ring (backpressure)
//! instead of dropping.
//!
//! Work per run is bounded like the hardware's descriptor fetch: at most
//! [`TX_RUN_DESCRIPTORS`] descriptors and [`TX_RUN_BYTES`] buffer bytes (every data
//! descriptor's length, whether its packet is sent or dropped). A queue that stops on the budget
//! with work left is *pending* and continues when device time advances
//! ([`crate::Nic::advance_to`]/[`crate::Nic::drain`]), so one doorbell never walks a whole ring under the
//! device lock. The fetch is paced: a pending queue runs again only once the port could have
//! sent what the last run read (its bytes and descriptors at line rate), so a ring of packets
//! that are read and dropped costs at most a line rate's worth of DMA per queue, however often
//! the device is advanced or other queues keep the wire busy.
//!
//! Transmit arbitration (datasheet 7.2.7, details [unverified]): besides the budget, a queue
//! whose rate limiter is on (RTTBCNRC.RS_ENA, selected through RTTDQSEL) starts a packet only
//! when its [`RateLimiter`] allows it: each packet's wire time, multiplied by the queue's rate
//! factor, pushes the queue's next start time forward, with a credit window of RTTBCNRM's MMW
//! size so a queue that waited behind others may catch up by that much. A waiting queue is
//! *pending* like one that stopped on its budget and continues when device time reaches its
//! start time. Queue priority (TXDCTL.PRIORITY) acts where frames of different pools meet, in
//! the egress stage ([`crate::Nic`] marks priority pools). With no limiter on, a queue runs
//! exactly as before: one branch per packet.
//!
//! Frames are gathered into a per-queue [`BytesMut`] that is carved from chunks of
//! [`CHUNK_LEN`](adapter_core::buffers::CHUNK_LEN) bytes: each finished packet is split off as its own [`Bytes`](bytes::Bytes) (sharing the
//! chunk), so a 64-byte frame costs no allocation of its own. Used-up chunks go to the engines'
//! [`ChunkPool`] and are reused once the last of their frames has left the egress stage (a HAC
//! epoch's chunks cycle instead of going back to the allocator all at once after its commit).
//!
//! [`TxEngines`] owns the per-queue state; the device lends it everything else for one run as a
//! [`Datapath`] (registers, the IOMMUs, the egress stage, counters) and delivers the interrupts
//! the run requests afterwards.

use adapter_core::buffers::{ChunkPool, PooledBuf};
use bytes::BytesMut;
use igb_hw::addr::{NUM_POOLS, NUM_QUEUES, QUEUES_PER_VF};
use igb_hw::desc::{
    self, Descriptor, MAX_TX_FRAGMENTS, TxContextRepr, TxDataRepr, TxDescriptorKind,
};
use igb_hw::frame::{ETHERNET_HEADER_LEN, ETHERTYPE_VLAN, FCS_LEN, MIN_FRAME_LEN};
use igb_hw::rate::{self, MMW_UNIT_BYTES, RATE_FACTOR_FRACTION_BITS, RATE_FACTOR_ONE};
use igb_hw::regs::{ICR, LVMMC, PfReg, RTTBCNRM, TCTL, TDWBAL, TXDCTL, VMVIR, pf};
use igb_hw::{Iova, PoolIndex, QueueIndex};

use crate::datapath::{Datapath, IrqRequest};
use crate::function::FunctionId;
use crate::{offload, switch};
use adapter_core::clock::SimTime;
use adapter_core::memory::{DmaFault, IotlbEntry};
use adapter_core::wire;

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
struct TxQueueState {
    contexts: [TxContextRepr; 2],
    /// The packet being gathered, at the end of the queue's current chunk.
    packet: PooledBuf,
    first: Option<TxDataRepr>,
    fragments: usize,
    dropping: bool,
    /// Stopped by a DMA fault until TXDCTL.ENABLE is set again.
    faulted: bool,
    /// Waiting for room in the egress stage.
    blocked: bool,
    /// Stopped on the per-run budget with descriptors left: continues as time advances.
    pending: bool,
    /// When a pending queue may run again (the last run's bytes and descriptors at line rate).
    resume_at: SimTime,
}

impl TxQueueState {
    fn in_packet(&self) -> bool {
        self.first.is_some()
    }
    /// Ends the packet: its bytes (split off the chunk; empty when it is dropped), its first
    /// data descriptor and whether it is dropped.
    fn end_packet(&mut self) -> (BytesMut, Option<TxDataRepr>, bool) {
        let first = self.first.take();
        let dropping = std::mem::replace(&mut self.dropping, false);
        self.fragments = 0;
        let packet = if dropping || first.is_none() {
            self.packet.clear();
            BytesMut::new()
        } else {
            self.packet.split()
        };
        (packet, first, dropping)
    }
}

/// One queue's transmit rate limiter: the RTTBCNRC word the PF wrote for it and, while RS_ENA
/// is set, the earliest time the queue may start its next packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimiter {
    /// RTTBCNRC as written.
    word: u32,
    /// The rate factor (14.14 fixed point, at least 1.0) while the limiter is on.
    factor: Option<u32>,
    /// When the queue may start its next packet.
    next_start: SimTime,
}

impl RateLimiter {
    /// A limiter programmed with RTTBCNRC `word` (RS_ENA clear: off). A factor below 1.0 (a rate
    /// above the link) is taken as 1.0: the queue may use the whole link.
    pub fn new(word: u32) -> RateLimiter {
        RateLimiter {
            word,
            factor: rate::rate_factor(word).map(|f| f.max(RATE_FACTOR_ONE)),
            next_start: SimTime::ZERO,
        }
    }

    /// The RTTBCNRC word.
    pub fn word(&self) -> u32 {
        self.word
    }

    /// Whether RS_ENA is set.
    pub fn enabled(&self) -> bool {
        self.factor.is_some()
    }

    /// When the queue may start its next packet, if that is after `now`.
    pub fn wait_until(&self, now: SimTime) -> Option<SimTime> {
        self.factor?;
        (self.next_start > now).then_some(self.next_start)
    }

    /// Charges a packet that occupies the wire for `wire_ns` at line rate, started at `now`; a
    /// queue that was idle for longer than `window_ns` (the MMW credit at its rate) keeps at most
    /// that much credit.
    pub fn charge(&mut self, now: SimTime, wire_ns: u64, window_ns: u64) {
        let Some(f) = self.factor else { return };
        let scale =
            |ns: u64| ((u128::from(ns) * u128::from(f)) >> RATE_FACTOR_FRACTION_BITS) as u64;
        let earliest = SimTime::from_nanos(now.as_nanos().saturating_sub(scale(window_ns)));
        self.next_start = self.next_start.max(earliest) + scale(wire_ns);
    }
}

/// The TX engines of the 16 physical queues.
#[derive(Clone, Debug, Default)]
pub(crate) struct TxEngines {
    queues: [TxQueueState; NUM_QUEUES],
    /// Used-up packet chunks of every queue, reused once their frames are gone.
    chunks: ChunkPool,
    /// Rate limiters: PF configuration, kept across queue and VF resets (a PF reset clears them).
    limiters: [RateLimiter; NUM_QUEUES],
    /// Bit q: queue q is pending (the same as its `pending` flag), so the event loop's
    /// per-frame look-ups cost nothing while no queue is.
    pending_queues: u16,
}

impl TxEngines {
    /// Forgets queue `q`'s runtime state (queue reset, or a queue enable that restarts the
    /// engine: a fault or half-fetched packet from the previous incarnation is dropped).
    pub(crate) fn reset(&mut self, q: usize) {
        if let Some(s) = self.queues.get_mut(q) {
            *s = TxQueueState::default();
            self.pending_queues &= !(1 << q);
        }
    }

    /// Queue `q`'s rate limiter.
    pub(crate) fn limiter(&self, q: usize) -> RateLimiter {
        self.limiters.get(q).copied().unwrap_or_default()
    }

    /// Programs queue `q`'s rate limiter with RTTBCNRC `word` (a new word starts a fresh
    /// limiter: the queue may start a packet at once); a queue waiting on its old limit
    /// continues now.
    pub(crate) fn set_limiter(&mut self, q: usize, word: u32) {
        if let (Some(l), Some(s)) = (self.limiters.get_mut(q), self.queues.get_mut(q)) {
            *l = RateLimiter::new(word);
            if s.pending {
                s.resume_at = SimTime::ZERO;
            }
        }
    }

    /// Every rate limiter off (PF reset).
    pub(crate) fn clear_limiters(&mut self) {
        self.limiters = Default::default();
    }

    /// Whether queue `q` is stopped by a DMA fault.
    pub(crate) fn faulted(&self, q: usize) -> bool {
        self.queues.get(q).is_some_and(|s| s.faulted)
    }

    fn enabled(&self, dp: &Datapath<'_>, q: QueueIndex, owner: FunctionId) -> bool {
        let tctl = dp.regs.read(pf::TCTL).is_set(TCTL::EN);
        let qen = dp
            .regs
            .read(pf::TXDCTL.at(q.get() as u8))
            .is_set(TXDCTL::ENABLE);
        let pool_en = match owner {
            FunctionId::Pf => true,
            FunctionId::Vf(_) => dp.regs.get(PfReg::VFTE) & q.pool().bit() != 0,
        };
        tctl && qen && pool_en && !self.queues[q.get()].faulted
    }

    fn fault(&mut self, dp: &mut Datapath<'_>, q: QueueIndex, fault: DmaFault) {
        let _ = fault;
        dp.counters.dma_faults += 1;
        let qi = q.get() as u8;
        // The queue stops: ENABLE reads 0 until software re-enables it (datasheet 7.2.1.2.1
        // behaviour on a completion error), and the PF is told through ICR.DOUTSYNC and LVMMC.
        dp.regs.modify(pf::TXDCTL.at(qi), TXDCTL::ENABLE::CLEAR);
        self.queues[q.get()].faulted = true;
        dp.regs
            .write(pf::LVMMC, LVMMC::QUEUE.val(u32::from(qi)) + LVMMC::TX::SET);
        dp.request(IrqRequest::pf(ICR::DOUTSYNC::SET));
    }

    /// Runs TX queue `q` as far as it can go now, within one run's budget.
    pub(crate) fn kick(&mut self, dp: &mut Datapath<'_>, q: QueueIndex) {
        self.queues[q.get()].pending = false;
        self.pending_queues &= !(1 << q.get());
        let owner = dp.queue_owner(q);
        if !self.enabled(dp, q, owner) {
            return;
        }
        let qi = q.get() as u8;
        let tail = dp.regs.get(PfReg::TDT(qi));
        let mut head = dp.regs.get(PfReg::TDH(qi));
        if head == tail {
            return;
        }
        if !dp.bus_master(owner) {
            dp.counters.dma_blocked_no_bus_master += 1;
            return;
        }
        let count = dp.regs.get(PfReg::TDLEN(qi)) / desc::DESCRIPTOR_LEN as u32;
        if count == 0 {
            dp.counters.tx_ring_empty_length += 1;
            return;
        }
        if tail >= count || head >= count {
            dp.counters.tail_out_of_range += 1;
            return;
        }
        let base = dp.regs.get_64(PfReg::TDBAL(qi), PfReg::TDBAH(qi));
        let pool = q.pool();
        let max_frame = dp.max_frame(pool);
        let wb = dp.regs.read(pf::TDWBAL.at(qi));
        let head_wb = wb.is_set(TDWBAL::ENABLE).then(|| {
            Iova(
                (u64::from(wb.read(TDWBAL::ADDR)) << 2)
                    | (u64::from(dp.regs.get(PfReg::TDWBAH(qi))) << 32),
            )
        });
        let mut fetched = Fetched::default();
        // IOTLB entries for the run: the ring's mapping (DD write-backs) and the last data
        // buffer's mapping. Accesses outside them go through the IOMMU as before.
        let ring_tlb = dp.iotlb(owner, Iova(base));
        let mut buf_tlb = None;
        let mut wrote_back = false;
        let mut fault = None;
        let mut descriptors = 0u32;
        let mut bytes = 0usize;

        while head != tail {
            if descriptors >= TX_RUN_DESCRIPTORS || bytes >= TX_RUN_BYTES {
                // The fetch budget of this run is spent: the rest waits for the next tick.
                dp.counters.tx_run_budget_stops += 1;
                let read = bytes + descriptors as usize * desc::DESCRIPTOR_LEN;
                let pace = (read as u128 * 8 * 1_000_000_000)
                    .div_ceil(u128::from(dp.line_rate.bits_per_sec().max(1)));
                let state = &mut self.queues[q.get()];
                state.pending = true;
                self.pending_queues |= 1 << q.get();
                state.resume_at = dp.now + (pace as u64).max(1);
                break;
            }
            if !self.queues[q.get()].in_packet()
                && let Some(at) = self.limiters[q.get()].wait_until(dp.now)
            {
                // Arbitration: the queue's rate limiter holds its next packet until `at`.
                dp.counters.tx_rate_limited_stops += 1;
                let state = &mut self.queues[q.get()];
                state.pending = true;
                self.pending_queues |= 1 << q.get();
                state.resume_at = at;
                break;
            }
            descriptors += 1;
            if !self.queues[q.get()].in_packet()
                && !dp.egress.has_room(crate::vport(pool), max_frame)
            {
                if !self.queues[q.get()].blocked {
                    dp.counters.tx_backpressure_stalls += 1;
                    dp.egress.note_backpressure(crate::vport(pool));
                }
                self.queues[q.get()].blocked = true;
                break;
            }
            self.queues[q.get()].blocked = false;
            let at = Iova(base.wrapping_add(u64::from(head) * desc::DESCRIPTOR_LEN as u64));
            let raw = match fetched.get(head) {
                Some(raw) => raw,
                None => match fetched.fetch(dp, owner, at, head, tail, count) {
                    Ok(raw) => raw,
                    Err(e) => {
                        fault = Some(e);
                        break;
                    }
                },
            };
            let d = Descriptor::from_array(raw);
            let dword2 = d.dword2();
            let mut eop = false;
            match desc::tx_kind(&d) {
                TxDescriptorKind::Context => {
                    if let Some(c) = TxContextRepr::parse(&d) {
                        self.queues[q.get()].contexts[usize::from(c.index & 1)] = c;
                    }
                }
                TxDescriptorKind::Data => {
                    let Some(r) = TxDataRepr::parse(&d) else {
                        break;
                    };
                    bytes += usize::from(r.length);
                    if let Err(e) = self.gather(dp, q, owner, &r, max_frame, &mut buf_tlb) {
                        fault = Some(e);
                        break;
                    }
                    eop = r.eop;
                }
                TxDescriptorKind::Legacy | TxDescriptorKind::Unknown(_) => {
                    dp.counters.tx_bad_descriptors += 1;
                    let s = &mut self.queues[q.get()];
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
                    let sta_at = Iova(at.0.wrapping_add(12));
                    if !ring_tlb.is_some_and(|t| t.write(sta_at, &sta))
                        && let Err(e) = dp.dma_write(owner, sta_at, &sta)
                    {
                        fault = Some(e);
                        break;
                    }
                }
                wrote_back = true;
            }
            head = (head + 1) % count;
            if eop {
                self.finish_packet(dp, q, max_frame);
            }
        }
        dp.regs.set(PfReg::TDH(qi), head);
        if let (Some(addr), true) = (head_wb, wrote_back)
            && fault.is_none()
            && let Err(e) = dp.dma_write(owner, addr, &head.to_le_bytes())
        {
            fault = Some(e);
        }
        if let Some(e) = fault {
            self.fault(dp, q, e);
        }
        if wrote_back {
            dp.request(IrqRequest::Queue {
                queue: q,
                owner,
                tx: true,
            });
        }
    }

    fn gather<'a>(
        &mut self,
        dp: &mut Datapath<'a>,
        q: QueueIndex,
        owner: FunctionId,
        r: &TxDataRepr,
        max_frame: usize,
        tlb: &mut Option<IotlbEntry<'a>>,
    ) -> Result<(), DmaFault> {
        let s = &mut self.queues[q.get()];
        if s.first.is_none() {
            s.first = Some(*r);
        }
        s.fragments += 1;
        if s.fragments == MAX_TX_FRAGMENTS + 1 {
            dp.counters.tx_too_many_fragments += 1;
            s.dropping = true;
        }
        if r.length == 0 {
            dp.counters.tx_zero_length_descriptors += 1;
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
            dp.counters.tx_oversize_frames += 1;
            s.dropping = true;
            return Ok(());
        }
        let n = usize::from(r.length);
        self.chunks.reserve(&mut s.packet, n);
        // Appends the buffer's bytes (nothing on a fault), straight into the chunk: through the
        // last buffer's mapping when the buffer lies in it, else through the IOMMU.
        let at = Iova(r.buffer);
        if !tlb.is_some_and(|t| t.contains(at, n)) {
            *tlb = dp.iotlb(owner, at);
        }
        if tlb.is_some_and(|t| t.read_append(at, n, &mut s.packet)) {
            return Ok(());
        }
        dp.dma_read_append(owner, at, n, &mut s.packet)
    }

    fn finish_packet(&mut self, dp: &mut Datapath<'_>, q: QueueIndex, max_frame: usize) {
        let wire_bytes = self.send_packet(dp, q, max_frame);
        if wire_bytes > 0 && self.limiters[q.get()].enabled() {
            let mmw = u64::from(dp.regs.read(pf::RTTBCNRM).read(RTTBCNRM::MMW_SIZE));
            let window_ns = line_time_ns(dp, mmw * MMW_UNIT_BYTES);
            let wire_ns = line_time_ns(dp, wire_bytes);
            self.limiters[q.get()].charge(dp.now, wire_ns, window_ns);
        }
    }

    /// Applies the offloads to the finished packet and sends its frames; returns the bytes they
    /// occupy on the wire (framing included; 0 when nothing was sent). `max_frame` is the
    /// pool's ([`Datapath::max_frame`], read once per run: registers do not change during one).
    fn send_packet(&mut self, dp: &mut Datapath<'_>, q: QueueIndex, max_frame: usize) -> u64 {
        let pool = q.pool();
        let state = &mut self.queues[q.get()];
        let (mut frame, first, dropping) = state.end_packet();
        let contexts = state.contexts;
        let Some(first) = first else { return 0 };
        if dropping {
            return 0;
        }
        if frame.len() < ETHERNET_HEADER_LEN {
            dp.counters.tx_runt_frames += 1;
            return 0;
        }
        let ctx = contexts[usize::from(first.context_index & 1)];
        // VLAN insertion: the pool's VMVIR overrides the descriptor (datasheet 7.10.3.9).
        let vmvir = dp.regs.read(pf::VMVIR.at(pool.get() as u8));
        let out = Egress {
            insert: match vmvir.read_as_enum(VMVIR::VLANA) {
                Some(VMVIR::VLANA::Value::AlwaysDefault) => Some(vmvir.read(VMVIR::VLAN) as u16),
                Some(VMVIR::VLANA::Value::Never) => None,
                _ => first.vle.then_some(ctx.vlan),
            },
            max_frame,
            pad: dp.regs.read(pf::TCTL).is_set(TCTL::PSP),
        };
        // Offloads use MACLEN/IPLEN of the packet as software built it (without the tag the
        // hardware inserts), so they run before VLAN insertion.
        if first.tse {
            match offload::segment_tcp(&frame, &ctx) {
                Ok(segs) => segs
                    .into_iter()
                    .map(|seg| out.send(dp, pool, BytesMut::from(&seg[..])))
                    .sum(),
                Err(_) => {
                    dp.counters.tx_offload_errors += 1;
                    0
                }
            }
        } else {
            if (first.ixsm || first.txsm)
                && offload::checksums(&mut frame, &ctx, first.ixsm, first.txsm).is_err()
            {
                dp.counters.tx_offload_errors += 1;
            }
            out.send(dp, pool, frame)
        }
    }

    /// Runs every queue once (after a change that may let any queue fetch again).
    pub(crate) fn kick_all(&mut self, dp: &mut Datapath<'_>) {
        for q in (0..NUM_QUEUES).filter_map(QueueIndex::new) {
            self.kick(dp, q);
        }
    }

    /// Continues every queue that stopped on its run budget and whose pace allows it now (one
    /// more run each).
    pub(crate) fn continue_pending(&mut self, dp: &mut Datapath<'_>) {
        for i in 0..NUM_QUEUES {
            if self.queues[i].pending
                && self.queues[i].resume_at <= dp.now
                && let Some(q) = QueueIndex::new(i)
            {
                self.kick(dp, q);
            }
        }
    }

    /// The earliest time a queue that stopped on its run budget may run again.
    pub(crate) fn next_resume(&self) -> Option<SimTime> {
        if self.pending_queues == 0 {
            return None;
        }
        self.queues
            .iter()
            .filter(|s| s.pending)
            .map(|s| s.resume_at)
            .min()
    }

    /// Whether a queue that stopped on its run budget may run again at `now`
    /// ([`TxEngines::continue_pending`] has work).
    pub(crate) fn any_due(&self, now: SimTime) -> bool {
        self.pending_queues != 0 && self.queues.iter().any(|s| s.pending && s.resume_at <= now)
    }

    /// Whether a queue of `pool` stopped for backpressure
    /// ([`TxEngines::resume_backpressured`] has work).
    pub(crate) fn any_blocked(&self, pool: PoolIndex) -> bool {
        (0..QUEUES_PER_VF).any(|vq| {
            QueueIndex::new(pool.get() + vq * NUM_POOLS)
                .is_some_and(|q| self.queues[q.get()].blocked)
        })
    }

    /// Lets queues of `pool` that stopped for backpressure fetch again.
    pub(crate) fn resume_backpressured(&mut self, dp: &mut Datapath<'_>, pool: PoolIndex) {
        for vq in 0..QUEUES_PER_VF {
            if let Some(q) = QueueIndex::new(pool.get() + vq * NUM_POOLS)
                && self.queues[q.get()].blocked
            {
                self.kick(dp, q);
            }
        }
    }
}

/// Descriptors one DMA read of [`Fetched::fetch`] brings in at most (a model choice: a
/// driver's batch; the hardware fetches descriptors in bursts into an on-chip cache).
const TX_FETCH_DESCRIPTORS: usize = 32;

/// The descriptors of one run fetched ahead of the engine, like the hardware's descriptor
/// prefetch: one DMA read for the descriptors from the head up to the tail (or the ring's
/// end), at most [`TX_FETCH_DESCRIPTORS`]. A descriptor is used as it was read; the engine owns
/// `[TDH, TDT)`, so software does not change them meanwhile. Reading has no side effect, so
/// descriptors fetched but not processed (the run stops on its budget, on backpressure or on a
/// fault) are simply forgotten and read again by the next run.
struct Fetched {
    bytes: [u8; TX_FETCH_DESCRIPTORS * desc::DESCRIPTOR_LEN],
    /// Ring index of the first descriptor in `bytes`.
    first: u32,
    /// Descriptors in `bytes`.
    count: u32,
}

impl Default for Fetched {
    fn default() -> Fetched {
        Fetched {
            bytes: [0; TX_FETCH_DESCRIPTORS * desc::DESCRIPTOR_LEN],
            first: 0,
            count: 0,
        }
    }
}

impl Fetched {
    /// Descriptor `index`, if it was fetched.
    fn get(&self, index: u32) -> Option<[u8; desc::DESCRIPTOR_LEN]> {
        let k = index.checked_sub(self.first).filter(|&k| k < self.count)? as usize;
        let mut raw = [0u8; desc::DESCRIPTOR_LEN];
        raw.copy_from_slice(
            self.bytes
                .get(k * desc::DESCRIPTOR_LEN..(k + 1) * desc::DESCRIPTOR_LEN)?,
        );
        Some(raw)
    }

    /// Fetches descriptor `head` at `at` and those after it up to `tail`, the end of the
    /// `count`-entry ring or the end of the mapping holding `head`, whichever comes first, and
    /// returns the first. A descriptor outside any mapping, or straddling two, is read alone
    /// through the IOMMU, so the engine processes every descriptor before an unmapped one and
    /// faults on exactly that one, as it does one by one; a run crossing into the next
    /// mapping continues with the next fetch.
    fn fetch(
        &mut self,
        dp: &Datapath<'_>,
        owner: FunctionId,
        at: Iova,
        head: u32,
        tail: u32,
        count: u32,
    ) -> Result<[u8; desc::DESCRIPTOR_LEN], DmaFault> {
        self.count = 0;
        let run = if tail > head {
            tail - head
        } else {
            count - head
        };
        let n = (run as usize).min(TX_FETCH_DESCRIPTORS);
        if n > 1
            && let Some(entry) = dp.iotlb(owner, at)
        {
            let mapped = (entry.remaining(at) / desc::DESCRIPTOR_LEN as u64).min(n as u64) as usize;
            if mapped > 1
                && let Some(window) = self.bytes.get_mut(..mapped * desc::DESCRIPTOR_LEN)
                && entry.read(at, window)
            {
                self.first = head;
                self.count = mapped as u32;
                if let Some(raw) = self.get(head) {
                    return Ok(raw);
                }
            }
        }
        let mut raw = [0u8; desc::DESCRIPTOR_LEN];
        dp.dma_read(owner, at, &mut raw)?;
        Ok(raw)
    }
}

/// What happens to each frame of a finished packet on its way to the switch.
struct Egress {
    /// The VLAN tag to insert (TCI), if any.
    insert: Option<u16>,
    /// The pool's largest frame, with FCS.
    max_frame: usize,
    /// TCTL.PSP: pad short packets.
    pad: bool,
}

impl Egress {
    /// VLAN insertion, the size check and padding, then the switch; returns the bytes the frame
    /// occupies on the wire (0 when it is dropped).
    fn send(&self, dp: &mut Datapath<'_>, pool: PoolIndex, mut f: BytesMut) -> u64 {
        if let Some(tci) = self.insert {
            let mut tagged = BytesMut::with_capacity(f.len() + 4);
            tagged.extend_from_slice(&f[..12]);
            tagged.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            tagged.extend_from_slice(&tci.to_be_bytes());
            tagged.extend_from_slice(&f[12..]);
            f = tagged;
        }
        if f.len() + FCS_LEN > self.max_frame {
            dp.counters.tx_oversize_frames += 1;
            return 0;
        }
        if self.pad && f.len() < MIN_FRAME_LEN {
            f.resize(MIN_FRAME_LEN, 0);
        }
        let bytes = wire::wire_bytes(f.len());
        switch::from_pool(dp, pool, f);
        bytes
    }
}

/// Time `bytes` take at line rate (framing already counted in `bytes`).
fn line_time_ns(dp: &Datapath<'_>, bytes: u64) -> u64 {
    let ns = u128::from(bytes) * 8 * 1_000_000_000 / u128::from(dp.line_rate.bits_per_sec().max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

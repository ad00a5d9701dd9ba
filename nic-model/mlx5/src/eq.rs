//! Event queues: CREATE_EQ, DESTROY_EQ and QUERY_EQ, writing EQEs into the EQ's buffer in
//! host memory, the EQ doorbell in the UAR pages, and the interrupt of an armed EQ (layouts:
//! `mlx5_hw::commands::queues` for the commands and the EQ context, `mlx5_hw::eqe` for the
//! EQE and the doorbell, `mlx5_hw::uar` for the doorbell offsets; behaviour: the PRM's EQ
//! chapter and Linux `mlx5_core` `eq.c` (`create_map_eq`, `eq_update_ci`, `mlx5_eq_int`),
//! `cmd.c` (`mlx5_cmd_comp_handler`, event mode), `pagealloc.c` (page requests)).
//!
//! An EQ is a ring of 2^`log_eq_size` 64-byte EQEs starting `page_offset` × 64 bytes into the
//! first of its pages (4 KiB << `log_page_size` each, listed in the PAS). The device writes
//! the EQE of producer counter `p` at ring index `p mod size` with the owner bit
//! `mlx5_hw::cqe::owner_bit(p, log_eq_size)` (0 on the first pass, since drivers start every
//! EQE with owner 1), the owner byte last. The driver reports its consumer counter through
//! the EQ doorbell of the EQ's UAR page: at `EQ_DOORBELL_ARM` it also arms the EQ, at
//! `EQ_DOORBELL_UPDATE_CI` it does not. An armed EQ that gains an EQE, or that is armed while
//! it holds unconsumed EQEs, raises its MSI-X vector and becomes "fired" until armed again.
//!
//! Nothing blocks and nothing panics: an event for a full EQ (producer − consumer = size) is
//! dropped and counted; a DMA fault while writing an EQE is counted, marks the EQ failed
//! (QUERY_EQ status 0xA) and drops its later events (counted), and touches nothing else.

use std::collections::{BTreeMap, BTreeSet};

use adapter_core::memory::Iommu;
use hw_common::Iova;
use mlx5_hw::caps::GeneralCaps;
use mlx5_hw::cmd::{CommandStatus, InputHeader};
use mlx5_hw::commands::queues::{
    CreateEqIn, CreateEqOut, DestroyEqIn, DestroyEqOut, QueryEqIn, QueryEqOut, eq_state,
};
use mlx5_hw::cqe::owner_bit;
use mlx5_hw::eqe::{EQ_CI_MASK, EQE_LEN, EqDoorbell, EqeRepr, EventData, EventType};
use mlx5_hw::uar::UAR_PAGE_SHIFT;

use crate::commands::{
    Ctx, FunctionState, Result, need_initialized, no_op_mod, refuse, short_in, short_out, syndrome,
};
use crate::counters::Counters;
use crate::msix::{Interrupt, Raised};
use crate::nic::Function;

/// Largest `log_page_size` of an EQ the model takes (4 KiB << 8 = 1 MiB pages).
pub const MAX_LOG_EQ_PAGE_SIZE: u8 = 8;
/// The first EQ number CREATE_EQ hands out (a ConnectX-4 PF was seen answering 0x10, 0x11 …).
pub const FIRST_EQN: u8 = 0x10;
/// `eqc.status` of an EQ whose buffer could not be written.
pub const EQ_STATUS_WRITE_FAILURE: u8 = 0xA;

/// Arming state of an EQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EqArm {
    /// The next EQE raises the interrupt.
    Armed,
    /// An interrupt was raised (or the EQ was never armed): none until armed again.
    Fired,
    /// Every EQE raises the interrupt.
    AlwaysArmed,
}

/// One event queue of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EqState {
    /// log2 of the number of EQEs.
    pub log_size: u8,
    /// The UAR page whose EQ doorbell serves this EQ.
    pub uar: u32,
    /// MSI-X vector.
    pub vector: u16,
    /// Page size: 4 KiB << `log_page_size`.
    pub log_page_size: u8,
    /// Offset of the first EQE in the first page, in 64-byte units.
    pub page_offset: u8,
    /// Page addresses of the buffer.
    pub pas: Vec<u64>,
    /// Subscribed event types (four 64-bit words, bit `t % 64` of word `t / 64`).
    pub events: [u64; 4],
    /// Arming state.
    pub arm: EqArm,
    /// Producer counter (24 bits, wrapping).
    pub producer: u32,
    /// Consumer counter the driver last reported (24 bits).
    pub consumer: u32,
    /// A DMA fault stopped the EQ: later events are dropped (counted).
    pub failed: bool,
    /// Events dropped because the EQ was full.
    pub overflows: u64,
}

impl EqState {
    /// True when the EQ receives events of `t`.
    pub fn subscribes(&self, t: EventType) -> bool {
        let t = t.raw_value();
        self.events[usize::from(t / 64)] & (1 << (t % 64)) != 0
    }

    fn size(&self) -> u32 {
        1 << self.log_size
    }

    /// EQEs written and not yet consumed.
    pub fn outstanding(&self) -> u32 {
        self.producer.wrapping_sub(self.consumer) & EQ_CI_MASK
    }

    /// IOVA of the EQE at ring index `index`.
    fn eqe_iova(&self, index: u32) -> Option<u64> {
        let page = 1u64 << (UAR_PAGE_SHIFT + u32::from(self.log_page_size));
        let byte = u64::from(self.page_offset) * EQE_LEN as u64 + u64::from(index) * EQE_LEN as u64;
        let pa = self.pas.get(usize::try_from(byte / page).ok()?)?;
        pa.checked_add(byte % page)
    }
}

fn general_limits(st: &FunctionState) -> (u8, usize) {
    GeneralCaps::new_checked(&st.general_cur[..]).map_or((0, 0), |g| {
        let max_eqs = match g.max_num_eqs() {
            0 => 1usize << g.log_max_eq().min(8),
            n => usize::from(n).min(256),
        };
        (g.log_max_eq_sz(), max_eqs)
    })
}

/// CREATE_EQ.
pub(crate) fn create_eq(
    st: &mut FunctionState,
    ctx: &Ctx,
    iommu: &Iommu,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = CreateEqIn::new_checked(input).map_err(short_in)?;
    let mut o = CreateEqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let (log_max_eq_sz, max_eqs) = general_limits(st);
    let c = i.eq_context();
    let log_size = c.log_eq_size();
    if log_size == 0 || log_size > log_max_eq_sz {
        return refuse(CommandStatus::BadParam, syndrome::BAD_QUEUE_SIZE);
    }
    let log_page_size = c.log_page_size();
    if log_page_size > MAX_LOG_EQ_PAGE_SIZE {
        return refuse(CommandStatus::BadParam, syndrome::BAD_QUEUE_SIZE);
    }
    let uar = c.uar_page();
    if !st.uars.contains(&uar) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_UAR);
    }
    let vector = c.intr();
    if vector >= ctx.msix_vectors {
        return refuse(CommandStatus::BadParam, syndrome::BAD_VECTOR);
    }
    let page = 1u64 << (UAR_PAGE_SHIFT + u32::from(log_page_size));
    let bytes = u64::from(c.page_offset()) * EQE_LEN as u64 + ((EQE_LEN as u64) << log_size);
    let pages = usize::try_from(bytes.div_ceil(page)).unwrap_or(usize::MAX);
    if pages > i.pa_capacity() {
        return refuse(CommandStatus::BadInputLength, syndrome::PAS_SHORT);
    }
    let pas: Vec<u64> = (0..pages).map(|k| i.pa(k).unwrap_or(1)).collect();
    if pas.iter().any(|pa| !pa.is_multiple_of(page)) {
        return refuse(CommandStatus::BadParam, syndrome::BAD_PAS);
    }
    // The buffer must be reachable: the first and last byte of every page the ring uses.
    let mut left = bytes;
    for pa in &pas {
        let used = left.min(page);
        left -= used;
        let mut b = [0u8; 1];
        let last = pa.checked_add(used.saturating_sub(1));
        if iommu.read(Iova(*pa), &mut b).is_err()
            || last.is_none_or(|l| iommu.read(Iova(l), &mut b).is_err())
        {
            ctx.eq_buffer_faults.set(ctx.eq_buffer_faults.get() + 1);
            return refuse(CommandStatus::BadParam, syndrome::EQ_BUFFER_FAULT);
        }
    }
    let Some(eqn) = (usize::from(FIRST_EQN)..usize::from(FIRST_EQN) + max_eqs)
        .filter_map(|n| u8::try_from(n).ok())
        .find(|n| !st.eqs.contains_key(n))
    else {
        return refuse(CommandStatus::NoResources, syndrome::NO_OBJECTS);
    };
    let arm = match c.st() {
        eq_state::ARMED => EqArm::Armed,
        eq_state::ALWAYS_ARMED => EqArm::AlwaysArmed,
        _ => EqArm::Fired,
    };
    let events = [
        i.event_bitmask_0(),
        i.event_bitmask_1(),
        i.event_bitmask_2(),
        i.event_bitmask_3(),
    ];
    st.eqs.insert(
        eqn,
        EqState {
            log_size,
            uar,
            vector,
            log_page_size,
            page_offset: c.page_offset(),
            pas,
            events,
            arm,
            producer: 0,
            consumer: 0,
            failed: false,
            overflows: 0,
        },
    );
    o.set_eq_number(eqn);
    Ok(())
}

/// DESTROY_EQ.
pub(crate) fn destroy_eq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DestroyEqIn::new_checked(input).map_err(short_in)?;
    DestroyEqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    if st.eqs.remove(&i.eq_number()).is_none() {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    Ok(())
}

/// QUERY_EQ.
pub(crate) fn query_eq(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryEqIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryEqOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let Some(eq) = st.eqs.get(&i.eq_number()) else {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    };
    let mut c = o.eq_context_mut();
    c.set_status(if eq.failed {
        EQ_STATUS_WRITE_FAILURE
    } else {
        0
    });
    c.set_st(match eq.arm {
        EqArm::Armed => eq_state::ARMED,
        EqArm::Fired => eq_state::FIRED,
        EqArm::AlwaysArmed => eq_state::ALWAYS_ARMED,
    });
    c.set_page_offset(eq.page_offset);
    c.set_log_eq_size(eq.log_size);
    c.set_uar_page(eq.uar);
    c.set_intr(eq.vector);
    c.set_log_page_size(eq.log_page_size);
    c.set_consumer_counter(eq.consumer);
    c.set_producer_counter(eq.producer);
    Ok(())
}

/// EQs a command-completion event would go to now.
pub(crate) fn subscribers(st: &FunctionState, t: EventType) -> BTreeSet<u8> {
    st.eqs
        .iter()
        .filter(|(_, eq)| eq.subscribes(t))
        .map(|(n, _)| *n)
        .collect()
}

impl Function {
    /// Raises MSI-X `vector` of this function: sent, or pending in the PBA while masked, or
    /// dropped (counted) while MSI-X is disabled.
    pub(crate) fn raise(&mut self, vector: u16, c: &mut Counters, out: &mut Vec<Interrupt>) {
        let ctrl = self.config.msix_control();
        let enabled = ctrl & crate::config::msix_cap::ENABLE != 0;
        let masked = ctrl & crate::config::msix_cap::FUNCTION_MASK != 0;
        match self.msix.raise(self.id, vector, enabled, masked) {
            Raised::Sent(i) => {
                c.interrupts_sent += 1;
                out.push(i);
            }
            Raised::Pending => c.interrupts_pending += 1,
            Raised::Disabled | Raised::NoVector => c.interrupts_dropped += 1,
        }
    }

    /// Sends the pending vectors whose masks cleared.
    pub(crate) fn deliver_pending(&mut self, c: &mut Counters, out: &mut Vec<Interrupt>) {
        let ctrl = self.config.msix_control();
        let enabled = ctrl & crate::config::msix_cap::ENABLE != 0;
        let masked = ctrl & crate::config::msix_cap::FUNCTION_MASK != 0;
        let sent = self.msix.unmasked_pending(self.id, enabled, masked);
        c.interrupts_sent += sent.len() as u64;
        out.extend(sent);
    }

    /// Posts an event to the EQs in `eqs` (those subscribed to its type).
    pub(crate) fn post_event(
        &mut self,
        eqs: &BTreeSet<u8>,
        event_type: EventType,
        data: EventData,
        c: &mut Counters,
        out: &mut Vec<Interrupt>,
    ) {
        for eqn in eqs {
            let Some(eq) = self.state.eqs.get_mut(eqn) else {
                continue;
            };
            if eq.failed {
                c.eqes_dropped_failed_eq += 1;
                continue;
            }
            if eq.outstanding() >= eq.size() {
                eq.overflows += 1;
                c.eq_overflows += 1;
                self.counters.eq_overflows += 1;
                continue;
            }
            let p = eq.producer;
            let eqe = EqeRepr {
                event_type,
                sub_type: 0,
                data,
                owner: owner_bit(p, eq.log_size),
            }
            .to_bytes();
            let written = eq.eqe_iova(p & (eq.size() - 1)).is_some_and(|at| {
                // The owner byte last: the driver sees the EQE when its owner bit flips.
                let last = EQE_LEN - 1;
                self.iommu.write(Iova(at), &eqe[..last]).is_ok()
                    && self
                        .iommu
                        .write(Iova(at + last as u64), &eqe[last..])
                        .is_ok()
            });
            if !written {
                eq.failed = true;
                c.eq_dma_faults += 1;
                self.counters.eq_dma_faults += 1;
                continue;
            }
            eq.producer = (p + 1) & EQ_CI_MASK;
            c.eqes_written += 1;
            let fire = match eq.arm {
                EqArm::Armed => {
                    eq.arm = EqArm::Fired;
                    true
                }
                EqArm::AlwaysArmed => true,
                EqArm::Fired => false,
            };
            let vector = eq.vector;
            if fire {
                self.raise(vector, c, out);
            }
        }
    }

    /// The EQ doorbell of UAR page `uar`: the 4 bytes written, and whether it arms.
    pub(crate) fn eq_doorbell(
        &mut self,
        uar: u32,
        data: &[u8],
        arm: bool,
        c: &mut Counters,
        out: &mut Vec<Interrupt>,
    ) {
        let Ok(db) = EqDoorbell::new_checked(data) else {
            c.eq_doorbell_errors += 1;
            return;
        };
        let (eqn, ci) = (db.eqn(), db.ci());
        let Some(eq) = self.state.eqs.get_mut(&eqn).filter(|eq| eq.uar == uar) else {
            c.eq_doorbell_errors += 1;
            return;
        };
        // The consumer may move forward up to the producer, never past it.
        let advance = ci.wrapping_sub(eq.consumer) & EQ_CI_MASK;
        if advance > eq.outstanding() {
            c.eq_doorbell_errors += 1;
            return;
        }
        eq.consumer = ci;
        if !arm || eq.arm == EqArm::AlwaysArmed {
            return;
        }
        if eq.outstanding() > 0 && !eq.failed {
            eq.arm = EqArm::Fired;
            let vector = eq.vector;
            self.raise(vector, c, out);
        } else {
            eq.arm = EqArm::Armed;
        }
    }
}

/// The EQs of a function, by number (part of [`FunctionState`]).
pub type Eqs = BTreeMap<u8, EqState>;

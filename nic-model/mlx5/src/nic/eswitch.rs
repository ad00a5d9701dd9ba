//! The E-Switch at work (state: `crate::eswitch`): a frame a function sent (E-Switch ingress,
//! behind [`Mlx5Nic::eswitch_transmit`]), a frame from the wire ([`Mlx5Nic::wire_receive`]),
//! the wire driven by virtual time, the host's view (counters, vport contexts, capture) and
//! the HAC host contract ([`adapter_core::hac::Hac`]) on the model.
//!
//! A frame from vport v, in order:
//!
//! 1. v must be an enabled function (else dropped, `tx_no_vport`), the frame at least an
//!    Ethernet header (else `tx_runts`), v not set down by the PF (else `tx_vport_down`);
//! 2. source-MAC check: with spoof check on and a permanent MAC assigned, any other source is
//!    dropped (`tx_spoofed`; Linux builds this as an ingress ACL in legacy mode);
//! 3. switching by destination MAC: a unicast address some vport owns (its permanent MAC; for
//!    an address no vport has as its permanent MAC, the vports that published it in their
//!    unicast list — so a VF cannot take another vport's assigned MAC by publishing it) goes
//!    to those vports other than v that are up — never to
//!    the wire, and when none can take it, dropped (`tx_local_drops`); broadcast and
//!    multicast go to every other vport that is up and to the wire; unknown unicast to the
//!    wire;
//! 4. wire-bound frames go through the HAC egress stage (`adapter_core::egress`, per-vport
//!    FIFO, epochs when v is checkpointing). A full FIFO refuses the frame *before* anything
//!    is delivered: [`TxVerdict::Backpressure`], the send queue keeps it and retries when
//!    [`Mlx5Nic::service_queues`] is called;
//! 5. E-Switch QoS (`crate::qos`), last, for wire-bound frames of a vport with a scheduling
//!    element: over its rate, or not its share turn, the frame is refused the same way
//!    (`Backpressure`); `run_wire_until` services the send queues when a rate limiter
//!    refills, and whenever a scheduled frame leaves the stage.
//!
//! Frames switched locally (VF to VF) are not held by HAC — they do not leave the host — the
//! same choice as the 82576 model, so the HAC contract (docs/hac.md) is the same.

use adapter_core::egress::{EgressFrame, EgressStage, HacResult};
use adapter_core::hac::{Hac, HacError, HacVfStats, VfNumber};
use adapter_core::vport::Vport as CoreVport;
use adapter_core::{SimTime, WireRecord, WireSink};
use bytes::Bytes;
use hw_common::MacAddress;
use hw_common::frame::EthernetHeader;
use mlx5_hw::commands::vport::VportState;
use mlx5_hw::eqe::{EventData, EventType, PortChangeSubtype};

use super::Mlx5Nic;
use super::datapath::{RxVerdict, TxVerdict};
use crate::eswitch::{Cast, Eswitch, EswitchCounters, VportContext, VportCounters};
use crate::function::FunctionId;
use crate::qos::{Admission, QosCounters};

/// Why an E-Switch setting was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EswitchError {
    /// The function does not exist (VF beyond TotalVFs).
    #[error("no function {0}")]
    NoSuchFunction(FunctionId),
    /// A multicast address cannot be a vport's permanent MAC.
    #[error("{0} is a multicast address")]
    MulticastAddress(MacAddress),
}

/// The function of vport `v` (PF 0, VF n at n + 1).
pub(super) fn function_of(v: usize) -> FunctionId {
    match v.checked_sub(1) {
        None => FunctionId::Pf,
        Some(n) => FunctionId::Vf(n.min(usize::from(u16::MAX)) as u16),
    }
}

impl Mlx5Nic {
    /// E-Switch ingress of a frame function `from` sent (see the module documentation).
    pub(crate) fn eswitch_ingress(&mut self, from: FunctionId, frame: Bytes) -> TxVerdict {
        let v = from.slot();
        let exists = self.function_enabled(from) && v < self.eswitch.vports.len();
        let Some(pool) = Eswitch::core_vport(v).filter(|_| exists) else {
            self.eswitch.counters.tx_no_vport += 1;
            return TxVerdict::Dropped;
        };
        let drop = |esw: &mut Eswitch, what: fn(&mut EswitchCounters) -> &mut u64| {
            *what(&mut esw.counters) += 1;
            if let Some(k) = esw.vport_counters.get_mut(v) {
                k.tx_dropped += 1;
            }
            TxVerdict::Dropped
        };
        let Ok(hdr) = EthernetHeader::parse(&frame) else {
            return drop(&mut self.eswitch, |c| &mut c.tx_runts);
        };
        let ctx = &self.eswitch.vports[v];
        if ctx.state() == VportState::Down {
            return drop(&mut self.eswitch, |c| &mut c.tx_vport_down);
        }
        if ctx.spoof_check
            && !ctx.permanent_address.is_zero()
            && hdr.source != ctx.permanent_address
        {
            return drop(&mut self.eswitch, |c| &mut c.tx_spoofed);
        }
        let cast = Cast::of(hdr.destination);
        let (targets, to_wire) = match cast {
            Cast::Unicast => {
                let owners = self.eswitch.owners(hdr.destination);
                let local = !owners.is_empty();
                let targets = owners
                    .into_iter()
                    .filter(|&o| o != v && self.vport_receives(o))
                    .collect();
                (targets, !local)
            }
            Cast::Multicast | Cast::Broadcast => {
                let targets = (0..self.eswitch.vports.len())
                    .filter(|&o| o != v && self.vport_receives(o))
                    .collect();
                (targets, true)
            }
        };
        if to_wire && !self.eswitch.egress.has_room(pool, frame.len()) {
            self.eswitch.egress.note_backpressure(pool);
            self.eswitch.counters.tx_backpressure += 1;
            return TxVerdict::Backpressure;
        }
        let targets: Vec<usize> = targets;
        if !to_wire && targets.is_empty() {
            return drop(&mut self.eswitch, |c| &mut c.tx_local_drops);
        }
        if to_wire {
            // QoS last: past every check that could drop or refuse the frame, so an
            // admission is a frame accepted.
            let share = !self.eswitch.hac_checkpointing(pool);
            let busy = share && self.eswitch.qos_stage_busy();
            let vport = u16::try_from(v).unwrap_or(u16::MAX);
            let now = self.now;
            if self.eswitch.qos.admit(vport, frame.len(), now, share, busy) != Admission::Admitted {
                return TxVerdict::Backpressure;
            }
        }
        if let Some(k) = self.eswitch.vport_counters.get_mut(v) {
            k.count_tx(cast, frame.len());
            if !targets.is_empty() {
                k.local_loopback_frames += 1;
                k.local_loopback_bytes += frame.len() as u64;
            }
        }
        for t in targets {
            self.deliver(t, cast, &frame);
        }
        if to_wire {
            self.eswitch.egress.enqueue(EgressFrame {
                data: frame,
                pool,
                queued_at: self.now,
            });
        }
        TxVerdict::Accepted
    }

    /// True when vport `o` can be delivered to: its function exists and the PF did not set
    /// it down.
    fn vport_receives(&self, o: usize) -> bool {
        self.function_enabled(function_of(o))
            && self
                .eswitch
                .vport(o)
                .is_some_and(|c| c.state() == VportState::Up)
    }

    /// Hands `frame` to vport `o`'s function, counting it on the vport.
    fn deliver(&mut self, o: usize, cast: Cast, frame: &Bytes) {
        let f = function_of(o);
        if let Some(d) = &mut self.eswitch.deliveries {
            d.push((f, frame.clone()));
        }
        if let Some(k) = self.eswitch.vport_counters.get_mut(o) {
            k.count_rx(cast, frame.len());
        }
        if self.function_receive(f, frame) == RxVerdict::Dropped {
            self.eswitch.counters.rx_dropped += 1;
            if let Some(k) = self.eswitch.vport_counters.get_mut(o) {
                k.rx_dropped += 1;
            }
        }
    }

    /// A frame arriving from the wire (without FCS): to the vports owning its unicast
    /// destination, or to every vport for broadcast and multicast (vports that are up, of
    /// functions that exist). Unicast for no vport and frames shorter than an Ethernet header
    /// are dropped and counted. Returns the number of vports it was handed to.
    pub fn wire_receive(&mut self, frame: &[u8]) -> usize {
        let Ok(hdr) = EthernetHeader::parse(frame) else {
            self.eswitch.counters.wire_rx_runts += 1;
            return 0;
        };
        let cast = Cast::of(hdr.destination);
        let candidates = match cast {
            Cast::Unicast => self.eswitch.owners(hdr.destination),
            Cast::Multicast | Cast::Broadcast => (0..self.eswitch.vports.len()).collect(),
        };
        let targets: Vec<usize> = candidates
            .into_iter()
            .filter(|&o| self.vport_receives(o))
            .collect();
        if targets.is_empty() {
            self.eswitch.counters.wire_rx_no_vport += 1;
            return 0;
        }
        let frame = Bytes::copy_from_slice(frame);
        for &t in &targets {
            self.deliver(t, cast, &frame);
        }
        targets.len()
    }

    /// Sends what the egress stage has ready, frame by frame, up to `t`; services stalled
    /// send queues as room frees.
    ///
    /// With QoS: a rate-limited vport's send queues are serviced at the moment its bucket
    /// refills (`crate::qos`), frame starts and refills taken in time order.
    pub(crate) fn run_wire_until(&mut self, t: SimTime) {
        self.service_if_room();
        self.qos_unstick();
        loop {
            let wire = self.eswitch.next_wire_start().filter(|&s| s <= t);
            let refill = self.eswitch.qos.next_resume().filter(|&s| s <= t);
            let refill_first = match (wire, refill) {
                (None, None) => break,
                (Some(w), Some(r)) => r < w,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            match (wire, refill) {
                (Some(w), _) if !refill_first => {
                    self.now = self.now.max(w);
                    if !self.eswitch.transmit_one(w) {
                        break;
                    }
                    self.service_if_room();
                }
                (_, Some(r)) => {
                    self.now = self.now.max(r);
                    if self.eswitch.qos.resume_due(self.now) > 0 {
                        self.service_queues();
                    }
                    self.qos_unstick();
                }
                _ => break,
            }
        }
    }

    /// When vports wait for their share turn but nothing scheduled is in the egress stage
    /// (the vport with the turn stopped sending: its SQ was destroyed, its function reset),
    /// forgets the backlog marks (counted) and services the send queues again.
    fn qos_unstick(&mut self) {
        if self.eswitch.qos.any_waiting() && !self.eswitch.qos_stage_busy() {
            self.eswitch.qos.clear_waiting();
            self.service_queues();
        }
    }

    /// Runs until the egress stage has nothing ready for the wire; returns the time the last
    /// frame finished (held checkpoint frames stay until their commit).
    pub fn drain(&mut self) -> SimTime {
        while let Some(at) = self.eswitch.next_wire_start() {
            self.now = self.now.max(at);
            if !self.eswitch.transmit_one(at) {
                break;
            }
            self.service_if_room();
        }
        self.now = self.now.max(self.eswitch.wire.busy_until());
        self.now
    }

    /// After a doorbell's commands: each vport whose operational state changed tells its
    /// function with a PORT_CHANGE event (sub-type down or active, port 1) on the EQs
    /// subscribed to it — Linux mlx5e then re-reads QUERY_VPORT_STATE for its carrier — and
    /// stalled send queues are serviced if room freed.
    pub(crate) fn eswitch_after_commands(&mut self) {
        for v in std::mem::take(&mut self.eswitch.link_changes) {
            let up = self
                .eswitch
                .vport(v)
                .is_some_and(|c| c.state() == VportState::Up);
            let sub = if up {
                PortChangeSubtype::Active
            } else {
                PortChangeSubtype::Down
            };
            let f = function_of(v);
            let Some(func) = self.functions.get_mut(f.slot()).filter(|x| x.id == f) else {
                continue;
            };
            if func.state.hca != crate::commands::HcaState::Initialized {
                continue;
            }
            let eqs = crate::eq::subscribers(&func.state.eqs, EventType::PortChange);
            self.eswitch.counters.link_events += 1;
            func.post_event_sub(
                &eqs,
                EventType::PortChange,
                sub.raw_value(),
                EventData::PortChange { port: 1 },
                &mut self.counters,
                &mut self.interrupts,
            );
        }
        self.service_if_room();
    }

    /// Calls [`Mlx5Nic::service_queues`] once if the E-Switch freed egress room since the
    /// last call.
    pub(crate) fn service_if_room(&mut self) {
        if std::mem::take(&mut self.eswitch.room_freed) {
            self.eswitch.counters.queue_services += 1;
            self.service_queues();
            self.qos_unstick();
        }
    }

    /// The E-Switch side of a function reset: a PF reset returns the whole E-Switch (vport
    /// contexts, counters, the egress stage and HAC) to power-on, dropping what the stage
    /// held (counted); a VF reset clears what the VF set on its vport and keeps what the PF
    /// set (permanent MAC, admin state, spoof check) and its HAC state.
    pub(crate) fn eswitch_function_reset(&mut self, f: FunctionId) {
        match f {
            FunctionId::Pf => self.eswitch.reset(),
            FunctionId::Vf(_) => {
                if let Some(c) = self.eswitch.vports.get_mut(f.slot()) {
                    c.function_reset();
                }
            }
        }
        self.service_if_room();
    }

    // ----- the host's view ---------------------------------------------------------------

    /// E-Switch-wide counters.
    pub fn eswitch_counters(&self) -> EswitchCounters {
        self.eswitch.counters
    }

    /// Traffic counters of function `f`'s vport.
    pub fn vport_counters(&self, f: FunctionId) -> Option<VportCounters> {
        self.eswitch.vport_counters.get(f.slot()).copied()
    }

    /// E-Switch QoS counters (scheduling commands refused, frames held back by rate or share).
    pub fn qos_counters(&self) -> QosCounters {
        self.eswitch.qos.counters
    }

    /// The E-Switch QoS state (elements; read-only view).
    pub fn qos(&self) -> &crate::qos::Qos {
        &self.eswitch.qos
    }

    /// Function `f`'s vport context.
    pub fn vport_context(&self, f: FunctionId) -> Option<&VportContext> {
        self.eswitch.vport(f.slot())
    }

    /// What MODIFY_NIC_VPORT_CONTEXT `permanent_address` from the PF does, for hosts and
    /// tests: assigns `mac` to `f`'s vport (zero: none).
    pub fn set_vport_mac(&mut self, f: FunctionId, mac: MacAddress) -> Result<(), EswitchError> {
        if mac.is_multicast() {
            return Err(EswitchError::MulticastAddress(mac));
        }
        let c = self
            .eswitch
            .vports
            .get_mut(f.slot())
            .ok_or(EswitchError::NoSuchFunction(f))?;
        c.permanent_address = mac;
        Ok(())
    }

    /// Turns the source-MAC check of `f`'s vport on or off (Linux `ip link set … vf n spoofchk`;
    /// the ingress ACL it builds is not modelled, this switch is).
    pub fn set_spoof_check(&mut self, f: FunctionId, on: bool) -> Result<(), EswitchError> {
        let c = self
            .eswitch
            .vports
            .get_mut(f.slot())
            .ok_or(EswitchError::NoSuchFunction(f))?;
        c.spoof_check = on;
        Ok(())
    }

    /// The egress stage (read-only view).
    pub fn egress(&self) -> &EgressStage {
        &self.eswitch.egress
    }

    /// Adds a sink that sees every frame leaving the wire.
    pub fn add_wire_sink(&mut self, sink: Box<dyn WireSink>) {
        self.eswitch.wire.add_sink(sink);
    }

    /// Frames captured on the wire since the last call (needs [`Mlx5Config::capture_wire`]).
    ///
    /// [`Mlx5Config::capture_wire`]: super::Mlx5Config::capture_wire
    pub fn take_wire_capture(&mut self) -> Vec<WireRecord> {
        self.eswitch.take_wire_capture()
    }

    /// Frames, bytes and busy nanoseconds of the wire so far.
    pub fn wire_stats(&self) -> (u64, u64, u64) {
        let w = &self.eswitch.wire;
        (w.frames, w.bytes, w.busy_ns)
    }

    // ----- HAC, model-level --------------------------------------------------------------

    /// The core's vport of enabled VF `vf`.
    fn hac_pool(&self, vf: VfNumber) -> Result<CoreVport, HacError> {
        u16::try_from(vf.get())
            .ok()
            .filter(|&n| n < self.num_vfs())
            .and_then(|n| Eswitch::core_vport(FunctionId::Vf(n).slot()))
            .ok_or(HacError::NoSuchVf(vf))
    }

    /// Enables or disables the HAC stage (HAC_SET_CONTROL `enable`; disabling releases
    /// everything held).
    pub fn hac_set_enabled(&mut self, on: bool) {
        self.eswitch.hac_set_enabled(on, self.now);
        self.service_if_room();
    }

    /// Whether the HAC stage is enabled.
    pub fn hac_enabled(&self) -> bool {
        self.eswitch.egress.hac_enabled()
    }
}

fn hac_error(vf: VfNumber, epoch: u32, r: HacResult) -> Result<(), HacError> {
    match r {
        HacResult::Ok => Ok(()),
        HacResult::NotTagged => Err(HacError::NotTagged(vf)),
        HacResult::BadEpoch => Err(HacError::BadEpoch { vf, epoch }),
        HacResult::Disabled => Err(HacError::Disabled),
        HacResult::BadOp => Err(HacError::Refused(u32::from(u8::from(
            mlx5_hw::cmd::CommandStatus::BadOp,
        )))),
    }
}

/// The HAC host contract on the model, for tests and in-process hosts: the same operations
/// the PF's HAC commands perform (docs/hac.md, "HAC on mlx5"). VF numbers beyond the enabled
/// VFs are [`HacError::NoSuchVf`].
impl Hac for Mlx5Nic {
    fn set_tagged(&mut self, vf: VfNumber, on: bool) -> Result<(), HacError> {
        let p = self.hac_pool(vf)?;
        self.eswitch.hac_set_tagged(p, on, self.now);
        self.service_if_room();
        Ok(())
    }

    fn open_epoch(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        let p = self.hac_pool(vf)?;
        hac_error(vf, epoch, self.eswitch.hac_open_epoch(p, epoch))
    }

    fn commit(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        let p = self.hac_pool(vf)?;
        hac_error(vf, epoch, self.eswitch.hac_commit(p, epoch, self.now))
    }

    fn abort(&mut self, vf: VfNumber, epoch: u32) -> Result<(), HacError> {
        let p = self.hac_pool(vf)?;
        let (r, _) = self.eswitch.hac_abort(p, epoch);
        self.service_if_room();
        hac_error(vf, epoch, r)
    }

    fn failover(&mut self, vf: VfNumber) -> Result<(), HacError> {
        let p = self.hac_pool(vf)?;
        let (r, _) = self.eswitch.hac_failover(p);
        self.service_if_room();
        hac_error(vf, 0, r)
    }

    fn unprotect(&mut self, vf: VfNumber) -> Result<(), HacError> {
        let p = self.hac_pool(vf)?;
        let r = self.eswitch.hac_unprotect(p, self.now);
        self.service_if_room();
        hac_error(vf, 0, r)
    }

    fn set_limits(&mut self, vf: VfNumber, frames: u32, bytes: u32) -> Result<(), HacError> {
        let p = self.hac_pool(vf)?;
        self.eswitch.hac_set_limits(p, frames, bytes);
        self.service_if_room();
        Ok(())
    }

    fn set_guard(&mut self, bytes: u32) -> Result<(), HacError> {
        self.eswitch.hac_set_guard(u64::from(bytes));
        Ok(())
    }

    fn stats(&mut self, vf: VfNumber) -> Result<HacVfStats, HacError> {
        let p = self.hac_pool(vf)?;
        Ok(self.eswitch.hac_stats(p))
    }
}

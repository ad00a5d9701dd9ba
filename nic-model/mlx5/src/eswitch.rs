//! The E-Switch: device-level state shared by every function — one vport per function (the PF
//! is vport 0, VF n is vport n + 1, as `mlx5_hw::commands::eswitch::Vport` numbers them), the
//! port's HAC egress stage (`adapter_core::egress`, unchanged) and the wire
//! (`adapter_core::wire::WirePort`).
//!
//! Per vport: the NIC vport context the vport commands read and write (permanent MAC, MTU,
//! unicast and multicast address lists, promiscuous and local-loopback bits, GUIDs), the
//! administrative state the PF sets, the source-MAC check, and the traffic counters
//! QUERY_VPORT_COUNTER reports. The switching itself (a frame from a vport, a frame from the
//! wire) is in `nic/eswitch.rs`, where the whole device is at hand; this module holds the
//! state and the decisions that need only it.
//!
//! ```text
//!  vport v (SQ) ──► source-MAC check ──► destination by MAC:
//!                                          ├─ a local vport's address: that vport (no HAC)
//!                                          ├─ broadcast/multicast: every other vport, and
//!                                          └─ unknown unicast ────────► HAC egress stage ─► wire
//!  wire ──► destination by MAC: the vport(s) with that address; broadcast/multicast: all
//! ```

use adapter_core::egress::{EgressLimits, EgressStage, HacResult};
use adapter_core::hac::HacVfStats;
use adapter_core::vport::Vport as CoreVport;
use adapter_core::wire::{LineRate, WirePort};
use adapter_core::{SimTime, WireRecord};
use bytes::Bytes;
use hw_common::MacAddress;
use mlx5_hw::commands::vport::VportState;

use crate::function::FunctionId;

/// The NIC vport context and E-Switch settings of one vport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VportContext {
    /// The permanent MAC (zero: none assigned). The PF (E-Switch manager) sets a VF's; a VF
    /// reads it with QUERY_NIC_VPORT_CONTEXT (Linux `mlx5e` takes it as its address).
    pub permanent_address: MacAddress,
    /// MTU the function set (0: not set).
    pub mtu: u16,
    /// Unicast addresses the function published (MODIFY_NIC_VPORT_CONTEXT addresses_list).
    pub uc_list: Vec<MacAddress>,
    /// Multicast addresses the function published.
    pub mc_list: Vec<MacAddress>,
    /// Unicast promiscuous (stored and reported; switching does not use it).
    pub promisc_uc: bool,
    /// Multicast promiscuous (stored and reported).
    pub promisc_mc: bool,
    /// All promiscuous (stored and reported).
    pub promisc_all: bool,
    /// `disable_uc_local_lb` (stored and reported).
    pub disable_uc_local_lb: bool,
    /// `disable_mc_local_lb` (stored and reported).
    pub disable_mc_local_lb: bool,
    /// `min_wqe_inline_mode`, raw (stored and reported).
    pub min_wqe_inline_mode: u8,
    /// The change-event bits of dword 1 (`arm_change_event`, `event_on_*`), raw (stored; no
    /// NIC vport change event is sent).
    pub change_events: u32,
    /// Port GUID.
    pub port_guid: u64,
    /// Node GUID.
    pub node_guid: u64,
    /// Administrative state (MODIFY_VPORT_STATE by the PF): follow the uplink by default.
    pub admin_state: VportState,
    /// Drop frames whose source MAC is not the permanent address (when one is assigned).
    /// Off by default, like Linux's `spoofchk` for mlx5 VFs.
    pub spoof_check: bool,
}

impl Default for VportContext {
    fn default() -> Self {
        VportContext {
            permanent_address: MacAddress::default(),
            mtu: 0,
            uc_list: Vec::new(),
            mc_list: Vec::new(),
            promisc_uc: false,
            promisc_mc: false,
            promisc_all: false,
            disable_uc_local_lb: false,
            disable_mc_local_lb: false,
            min_wqe_inline_mode: 0,
            change_events: 0,
            port_guid: 0,
            node_guid: 0,
            admin_state: VportState::Follow,
            spoof_check: false,
        }
    }
}

impl VportContext {
    /// The operational state: down when the PF set the vport down, otherwise up (the model's
    /// uplink is always up, so "follow" is up).
    pub fn state(&self) -> VportState {
        match self.admin_state {
            VportState::Down => VportState::Down,
            _ => VportState::Up,
        }
    }

    /// True when `mac` is one of this vport's unicast addresses (the permanent one or one of
    /// its published list). Switching gives the permanent addresses precedence (see
    /// `Eswitch::owners`).
    pub fn owns(&self, mac: MacAddress) -> bool {
        (!self.permanent_address.is_zero() && self.permanent_address == mac)
            || self.uc_list.contains(&mac)
    }

    /// What a function reset leaves: the E-Switch manager's settings (permanent MAC, admin
    /// state, spoof check) stay; what the function itself set goes.
    pub(crate) fn function_reset(&mut self) {
        *self = VportContext {
            permanent_address: self.permanent_address,
            admin_state: self.admin_state,
            spoof_check: self.spoof_check,
            node_guid: self.node_guid,
            ..VportContext::default()
        };
    }
}

/// Traffic counters of one vport, from the vport's side: `tx_*` frames it sent (accepted by
/// the E-Switch), `rx_*` frames delivered to it. 64-bit, never wrapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VportCounters {
    /// Unicast frames sent.
    pub tx_unicast_frames: u64,
    /// Unicast bytes sent (frames without FCS).
    pub tx_unicast_bytes: u64,
    /// Multicast frames sent (broadcast not included).
    pub tx_multicast_frames: u64,
    /// Multicast bytes sent.
    pub tx_multicast_bytes: u64,
    /// Broadcast frames sent.
    pub tx_broadcast_frames: u64,
    /// Broadcast bytes sent.
    pub tx_broadcast_bytes: u64,
    /// Frames the E-Switch dropped on transmit (too short, vport down, spoofed source,
    /// unicast to an address only the sender or a down vport has).
    pub tx_dropped: u64,
    /// Unicast frames delivered.
    pub rx_unicast_frames: u64,
    /// Unicast bytes delivered.
    pub rx_unicast_bytes: u64,
    /// Multicast frames delivered.
    pub rx_multicast_frames: u64,
    /// Multicast bytes delivered.
    pub rx_multicast_bytes: u64,
    /// Broadcast frames delivered.
    pub rx_broadcast_frames: u64,
    /// Broadcast bytes delivered.
    pub rx_broadcast_bytes: u64,
    /// Frames for this vport its function's receive path dropped.
    pub rx_dropped: u64,
    /// Frames sent that the E-Switch delivered to another vport (VF to VF).
    pub local_loopback_frames: u64,
    /// Bytes of those frames.
    pub local_loopback_bytes: u64,
}

/// How a frame is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cast {
    Unicast,
    Multicast,
    Broadcast,
}

impl Cast {
    pub(crate) fn of(dst: MacAddress) -> Cast {
        if dst.is_broadcast() {
            Cast::Broadcast
        } else if dst.is_multicast() {
            Cast::Multicast
        } else {
            Cast::Unicast
        }
    }
}

impl VportCounters {
    pub(crate) fn count_tx(&mut self, cast: Cast, len: usize) {
        let b = len as u64;
        let (f, by) = match cast {
            Cast::Unicast => (&mut self.tx_unicast_frames, &mut self.tx_unicast_bytes),
            Cast::Multicast => (&mut self.tx_multicast_frames, &mut self.tx_multicast_bytes),
            Cast::Broadcast => (&mut self.tx_broadcast_frames, &mut self.tx_broadcast_bytes),
        };
        *f += 1;
        *by += b;
    }

    pub(crate) fn count_rx(&mut self, cast: Cast, len: usize) {
        let b = len as u64;
        let (f, by) = match cast {
            Cast::Unicast => (&mut self.rx_unicast_frames, &mut self.rx_unicast_bytes),
            Cast::Multicast => (&mut self.rx_multicast_frames, &mut self.rx_multicast_bytes),
            Cast::Broadcast => (&mut self.rx_broadcast_frames, &mut self.rx_broadcast_bytes),
        };
        *f += 1;
        *by += b;
    }
}

/// E-Switch-wide counters of everything it refused or dropped. 64-bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EswitchCounters {
    /// Frames offered by a function that does not exist (a VF beyond NumVFs).
    pub tx_no_vport: u64,
    /// Frames from a vport shorter than an Ethernet header.
    pub tx_runts: u64,
    /// Frames from a vport the PF set down.
    pub tx_vport_down: u64,
    /// Frames whose source MAC was not the vport's permanent address (spoof check on).
    pub tx_spoofed: u64,
    /// Unicast frames to an address only the sender or a down vport has: switched, not sent
    /// to the wire, and no vport could take them.
    pub tx_local_drops: u64,
    /// Frames refused for a full egress buffer (the send queue keeps them and retries).
    pub tx_backpressure: u64,
    /// Frames from the wire shorter than an Ethernet header.
    pub wire_rx_runts: u64,
    /// Unicast frames from the wire for an address no vport has.
    pub wire_rx_no_vport: u64,
    /// Frames (from the wire or a vport) a function's receive path dropped.
    pub rx_dropped: u64,
    /// Sinks that failed to take a wire frame.
    pub wire_sink_errors: u64,
    /// Frames the egress stage held when a PF reset dropped them.
    pub egress_flushed_on_reset: u64,
    /// Times the E-Switch had freed egress room and asked the send queues to carry on
    /// (`service_queues`).
    pub queue_services: u64,
    /// PORT_CHANGE events posted to a function whose vport the PF set down or up.
    pub link_events: u64,
}

/// The E-Switch of the device.
pub struct Eswitch {
    /// Vport contexts, by vport number (PF 0, VF n at n + 1).
    pub(crate) vports: Vec<VportContext>,
    /// Counters by vport number.
    pub(crate) vport_counters: Vec<VportCounters>,
    /// E-Switch-wide counters.
    pub(crate) counters: EswitchCounters,
    /// The port's egress stage (HAC).
    pub(crate) egress: EgressStage,
    /// The wire.
    pub(crate) wire: WirePort,
    /// Set when room may have freed in the egress stage (a frame left, HAC discarded or
    /// released, limits changed): the device then services stalled send queues.
    pub(crate) room_freed: bool,
    /// Frames handed to `function_receive`, when recording (tests).
    pub(crate) deliveries: Option<Vec<(FunctionId, Bytes)>>,
    /// Vports whose operational state a command changed: their functions hear of it (a
    /// PORT_CHANGE event) once the command has completed.
    pub(crate) link_changes: Vec<usize>,
    /// QoS: scheduling elements, rate limiters, share scheduling (`crate::qos`).
    pub(crate) qos: crate::qos::Qos,
    /// The PF's permanent MAC (restored on a PF reset).
    pf_mac: MacAddress,
    line_rate: LineRate,
    capture: bool,
    limits: EgressLimits,
}

impl Eswitch {
    /// An E-Switch with `vports` vports (the PF and TotalVFs VFs).
    pub(crate) fn new(
        vports: usize,
        pf_mac: MacAddress,
        line_rate: LineRate,
        capture: bool,
        limits: EgressLimits,
    ) -> Eswitch {
        let mut contexts = vec![VportContext::default(); vports];
        if let Some(pf) = contexts.first_mut() {
            pf.permanent_address = pf_mac;
        }
        Eswitch {
            vports: contexts,
            vport_counters: vec![VportCounters::default(); vports],
            counters: EswitchCounters::default(),
            egress: EgressStage::new(limits),
            wire: WirePort::new(line_rate, capture),
            room_freed: false,
            deliveries: None,
            link_changes: Vec::new(),
            qos: crate::qos::Qos::default(),
            pf_mac,
            line_rate,
            capture,
            limits,
        }
    }

    /// The wire's line rate.
    pub(crate) fn line_rate(&self) -> LineRate {
        self.line_rate
    }

    /// Back to the state after power-on (a PF reset): every vport context and counter, the
    /// egress stage (what it held is dropped and counted) and the HAC state. The wire's sinks
    /// and counters stay (they are the host's).
    pub(crate) fn reset(&mut self) {
        let dropped = self.egress.flush() as u64;
        let n = self.vports.len();
        let fresh = Eswitch::new(n, self.pf_mac, self.line_rate, self.capture, self.limits);
        self.vports = fresh.vports;
        self.vport_counters = fresh.vport_counters;
        self.egress = fresh.egress;
        self.link_changes.clear();
        self.qos.reset();
        self.counters.egress_flushed_on_reset += dropped;
        self.room_freed = true;
    }

    /// The vports that own unicast address `mac`: those with it as their permanent MAC, or, if
    /// none, those that published it in their unicast list.
    pub(crate) fn owners(&self, mac: MacAddress) -> Vec<usize> {
        let by = |f: &dyn Fn(&VportContext) -> bool| -> Vec<usize> {
            (0..self.vports.len())
                .filter(|&o| f(&self.vports[o]))
                .collect()
        };
        let permanent = by(&|c| !c.permanent_address.is_zero() && c.permanent_address == mac);
        if permanent.is_empty() {
            by(&|c| c.uc_list.contains(&mac))
        } else {
            permanent
        }
    }

    /// The context of vport `v`.
    pub(crate) fn vport(&self, v: usize) -> Option<&VportContext> {
        self.vports.get(v)
    }

    /// The adapter core's name of vport `v` (the same number; at most 255 vports exist).
    pub(crate) fn core_vport(v: usize) -> Option<CoreVport> {
        CoreVport::from_index(v)
    }

    /// Sends the next ready frame if one may start by `t`; returns whether one did.
    pub(crate) fn transmit_one(&mut self, t: SimTime) -> bool {
        let Some(start) = self.next_wire_start().filter(|&s| s <= t) else {
            return false;
        };
        let Some(sent) = self.egress.transmit_next(&mut self.wire, start) else {
            return false;
        };
        self.counters.wire_sink_errors += sent.sink_errors;
        self.room_freed = true;
        true
    }

    /// When the next frame can start on the wire.
    pub(crate) fn next_wire_start(&self) -> Option<SimTime> {
        let ready = self.egress.earliest_ready()?;
        Some(ready.max(self.wire.busy_until()))
    }

    /// True when a frame of a share-scheduled vport is eligible in the egress stage (the QoS
    /// scheduler admits them one at a time; `crate::qos`).
    pub(crate) fn qos_stage_busy(&self) -> bool {
        self.qos.elements().any(|(_, e)| match e.kind {
            crate::qos::ElementKind::Vport(v) => Eswitch::core_vport(usize::from(v))
                .is_some_and(|p| !self.hac_checkpointing(p) && self.egress.occupancy(p).0 > 0),
            crate::qos::ElementKind::Tsar => false,
        })
    }

    /// True when vport `p` is checkpointing under the HAC extension (its frames keep the
    /// stage's strict priority and skip the share scheduler).
    pub(crate) fn hac_checkpointing(&self, p: CoreVport) -> bool {
        self.egress.hac_enabled() && self.egress.tagged(p)
    }

    /// Takes the frames captured on the wire.
    pub(crate) fn take_wire_capture(&mut self) -> Vec<WireRecord> {
        self.wire.take_capture()
    }

    // ----- HAC: one place for the commands and the model-level API ---------------------

    /// Enables or disables the HAC stage (disabling releases everything held).
    pub(crate) fn hac_set_enabled(&mut self, on: bool, now: SimTime) {
        self.egress.set_hac_enabled(on, now);
        self.room_freed = true;
    }

    /// The starvation guard.
    pub(crate) fn hac_set_guard(&mut self, bytes: u64) {
        self.egress.set_guard_bytes(bytes);
    }

    /// Tags or untags vport `v` (untagging releases what it holds).
    pub(crate) fn hac_set_tagged(&mut self, v: CoreVport, on: bool, now: SimTime) {
        self.egress.set_tagged(v, on, now);
        self.room_freed = true;
    }

    /// OPEN_EPOCH.
    pub(crate) fn hac_open_epoch(&mut self, v: CoreVport, epoch: u32) -> HacResult {
        self.egress.open_epoch(v, epoch)
    }

    /// COMMIT.
    pub(crate) fn hac_commit(&mut self, v: CoreVport, epoch: u32, now: SimTime) -> HacResult {
        self.egress.commit(v, epoch, now)
    }

    /// ABORT: the result and the frames discarded.
    pub(crate) fn hac_abort(&mut self, v: CoreVport, epoch: u32) -> (HacResult, usize) {
        let r = self.egress.abort(v, epoch);
        self.room_freed = true;
        r
    }

    /// FAILOVER: the result and the frames discarded.
    pub(crate) fn hac_failover(&mut self, v: CoreVport) -> (HacResult, usize) {
        let r = self.egress.failover(v);
        self.room_freed = true;
        r
    }

    /// UNPROTECT.
    pub(crate) fn hac_unprotect(&mut self, v: CoreVport, now: SimTime) -> HacResult {
        let r = self.egress.unprotect(v, now);
        self.room_freed = true;
        r
    }

    /// Buffer limits of a checkpointing vport (0 = the maximum).
    pub(crate) fn hac_set_limits(&mut self, v: CoreVport, frames: u32, bytes: u32) {
        self.egress.set_hac_limits(
            v,
            EgressLimits {
                bytes: bytes as usize,
                frames: frames as usize,
            },
        );
        self.room_freed = true;
    }

    /// The HAC counters of vport `v` (gauges saturate at 2^32 - 1).
    pub(crate) fn hac_stats(&self, v: CoreVport) -> HacVfStats {
        let sat = |x: usize| x.min(u32::MAX as usize) as u32;
        let st = self.egress.stats(v);
        let h = self.egress.hac_state(v);
        let (frames, bytes) = self.egress.occupancy(v);
        HacVfStats {
            open_epoch: h.open,
            committed_epoch: h.committed,
            buffered_frames: sat(frames),
            buffered_bytes: sat(bytes),
            max_frames: sat(st.max_frames),
            max_bytes: sat(st.max_bytes),
            released: st.released,
            discarded: st.discarded,
            backpressure: st.backpressure_events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddress = MacAddress([0x02, 0, 0, 0, 0, 1]);

    #[test]
    fn a_function_reset_keeps_what_the_manager_set() {
        let mut c = VportContext {
            permanent_address: MAC,
            admin_state: VportState::Down,
            spoof_check: true,
            mtu: 9000,
            uc_list: vec![MAC],
            promisc_all: true,
            ..VportContext::default()
        };
        c.function_reset();
        assert_eq!(c.permanent_address, MAC);
        assert_eq!(c.admin_state, VportState::Down);
        assert!(c.spoof_check);
        assert_eq!((c.mtu, c.uc_list.len(), c.promisc_all), (0, 0, false));
    }

    #[test]
    fn state_follows_admin_and_addresses() {
        let mut c = VportContext::default();
        assert_eq!(c.state(), VportState::Up, "follow: the uplink is up");
        c.admin_state = VportState::Down;
        assert_eq!(c.state(), VportState::Down);
        assert!(!c.owns(MacAddress::default()), "zero is no address");
        c.uc_list.push(MAC);
        assert!(c.owns(MAC));
    }

    #[test]
    fn counters_by_cast() {
        let mut k = VportCounters::default();
        k.count_tx(Cast::of(MacAddress::BROADCAST), 60);
        k.count_tx(Cast::of(MacAddress([0x01, 0, 0x5E, 0, 0, 1])), 70);
        k.count_rx(Cast::of(MAC), 80);
        assert_eq!((k.tx_broadcast_frames, k.tx_broadcast_bytes), (1, 60));
        assert_eq!((k.tx_multicast_frames, k.tx_multicast_bytes), (1, 70));
        assert_eq!((k.rx_unicast_frames, k.rx_unicast_bytes), (1, 80));
    }

    #[test]
    fn an_assigned_mac_cannot_be_taken_by_publishing_it() {
        let mut e = Eswitch::new(3, MAC, LineRate::G10, false, EgressLimits::default());
        let other = MacAddress([0x02, 0, 0, 0, 0, 2]);
        e.vports[1].permanent_address = other;
        e.vports[2].uc_list = vec![other, MacAddress([0x02, 0, 0, 0, 0, 3])];
        assert_eq!(e.owners(other), vec![1]);
        assert_eq!(e.owners(MacAddress([0x02, 0, 0, 0, 0, 3])), vec![2]);
        assert_eq!(e.owners(MAC), vec![0]);
        assert!(e.owners(MacAddress([0x02, 9, 9, 9, 9, 9])).is_empty());
    }

    #[test]
    fn a_pf_reset_drops_what_the_stage_held_and_counts_it() {
        let mut e = Eswitch::new(3, MAC, LineRate::G10, true, EgressLimits::default());
        let v1 = CoreVport::new(1);
        e.hac_set_enabled(true, SimTime::ZERO);
        e.hac_set_tagged(v1, true, SimTime::ZERO);
        e.egress.enqueue(adapter_core::EgressFrame {
            data: Bytes::from_static(&[0; 60]),
            pool: v1,
            queued_at: SimTime::ZERO,
        });
        e.vports[1].permanent_address = MAC;
        e.reset();
        assert_eq!(e.counters.egress_flushed_on_reset, 1);
        assert!(e.egress.is_empty() && !e.egress.hac_enabled());
        assert_eq!(e.vports[1].permanent_address, MacAddress::default());
        assert_eq!(
            e.vports[0].permanent_address, MAC,
            "the PF's MAC is its own"
        );
    }
}

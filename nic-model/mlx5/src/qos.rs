//! E-Switch QoS: the scheduling elements a PF creates in the E_SWITCH hierarchy (one root DWRR
//! TSAR, one VPORT element per rate-controlled vport under it) and what they do to wire-bound
//! frames, without the HAC extension and without changing the adapter core's egress stage.
//!
//! * `max_average_bw` (Mbit/s, 0: none): a token bucket per vport in virtual time, charged
//!   the frame's bytes (without FCS) at E-Switch ingress. A vport whose bucket is empty is
//!   refused ([`Admission::RateLimited`]: the E-Switch answers `TxVerdict::Backpressure`, the
//!   SQ keeps the WQE); [`Qos::next_resume`] says when its bucket is positive again, and the
//!   device's virtual-time loop services the send queues then. The bucket holds at most
//!   [`BUCKET_NS`] of the rate (and may go negative by one frame, so any frame size passes).
//! * `bw_share` (weight, 0 counts as 1): start-time fair queuing at admission. Frames of
//!   vports with an element enter the egress stage one at a time (the stage holds at most one
//!   eligible frame of them), so their order on the wire is the admission order; a vport is
//!   admitted only when no other backlogged vport (one refused since its last admission) has
//!   an earlier virtual start tag. Each admission advances the vport's tag by
//!   `bytes / bw_share`, so backlogged vports share the wire in proportion to `bw_share`.
//!   Vports without an element are not scheduled here: they share the stage's round robin
//!   with the scheduled group as before.
//! * HAC first: a vport checkpointing under the HAC extension (the stage enabled and the vport
//!   tagged) skips the share scheduling — its released frames keep the stage's strict priority
//!   and guard; its rate limit still applies.
//!
//! Element ids start at 1 (0 is "no parent": the root). The model has one level below the
//! root (`log_esw_max_sched_depth` 0, as Linux treats a device without group support).

use std::collections::BTreeMap;

use adapter_core::SimTime;

/// Largest `bw_share` an element may have (`max_tsar_bw_share` of the QoS capability page).
pub const MAX_TSAR_BW_SHARE: u32 = 100;
/// Most scheduling elements the E-Switch holds.
pub const MAX_ELEMENTS: usize = 256;
/// Depth of a rate limiter's bucket, in nanoseconds of its rate.
pub const BUCKET_NS: u64 = 100_000;
/// Scale of the virtual start tags (bytes × SCALE / weight).
const TAG_SCALE: u128 = 1 << 20;

/// What a scheduling element is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementKind {
    /// A DWRR transmit scheduling arbiter (the root).
    Tsar,
    /// The element of vport `0` (PF 0, VF n at n + 1).
    Vport(u16),
}

/// One scheduling element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Element {
    /// TSAR or vport.
    pub kind: ElementKind,
    /// Parent TSAR (0: none).
    pub parent: u32,
    /// Weight among siblings.
    pub bw_share: u32,
    /// Rate limit in Mbit/s (0: none).
    pub max_average_bw: u32,
}

/// QoS counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QosCounters {
    /// Scheduling-element commands refused (any status).
    pub commands_refused: u64,
    /// Frames refused because the vport was over its rate (the SQ waits).
    pub rate_limited: u64,
    /// Frames refused because another vport had the earlier share turn (the SQ waits).
    pub share_deferred: u64,
    /// Times the send queues were serviced because a rate limiter refilled.
    pub rate_resumes: u64,
    /// Times stale backlog marks were cleared (a refused vport that stopped retrying).
    pub stale_backlogs_cleared: u64,
}

/// Per-vport scheduling state.
#[derive(Clone, Copy, Debug, Default)]
struct VportSched {
    /// Tokens in millibits (may be negative by up to one frame).
    tokens: i128,
    /// When `tokens` was last brought up to date.
    at: SimTime,
    /// Refused by its rate limiter and not yet resumed.
    throttled: bool,
    /// Virtual finish tag of its last admitted frame.
    finish: u128,
    /// Refused by the share scheduler since its last admission (backlogged).
    waiting: bool,
}

/// Why a frame was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Admitted (state charged).
    Admitted,
    /// Over its rate: retry at [`Qos::next_resume`].
    RateLimited,
    /// Another backlogged vport goes first, or one scheduled frame is already in the stage.
    Deferred,
}

/// The E-Switch's QoS state.
#[derive(Clone, Debug, Default)]
pub struct Qos {
    elements: BTreeMap<u32, Element>,
    next_id: u32,
    sched: BTreeMap<u16, VportSched>,
    vtime: u128,
    /// Counters.
    pub counters: QosCounters,
}

impl Qos {
    /// Every element.
    pub fn elements(&self) -> impl Iterator<Item = (u32, &Element)> {
        self.elements.iter().map(|(&k, v)| (k, v))
    }

    /// Element `id`.
    pub fn element(&self, id: u32) -> Option<&Element> {
        self.elements.get(&id)
    }

    /// The element of vport `v`, if it has one.
    pub fn vport_element(&self, v: u16) -> Option<(u32, &Element)> {
        self.elements()
            .find(|(_, e)| e.kind == ElementKind::Vport(v))
    }

    /// True when element `id` is a TSAR.
    pub fn is_tsar(&self, id: u32) -> bool {
        self.elements
            .get(&id)
            .is_some_and(|e| e.kind == ElementKind::Tsar)
    }

    /// True when some element names `id` as its parent.
    pub fn has_children(&self, id: u32) -> bool {
        self.elements.values().any(|e| e.parent == id)
    }

    /// True when no more elements fit.
    pub fn full(&self) -> bool {
        self.elements.len() >= MAX_ELEMENTS
    }

    /// Adds `e` (checked by the caller); its id.
    pub fn insert(&mut self, e: Element, now: SimTime) -> u32 {
        let mut id = self.next_id.max(1);
        while self.elements.contains_key(&id) || id == 0 {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        self.elements.insert(id, e);
        if let ElementKind::Vport(v) = e.kind {
            self.fresh_vport(v, now);
        }
        id
    }

    /// Applies `bw_share` / `max_average_bw` (those given) to element `id`.
    pub fn modify(&mut self, id: u32, bw_share: Option<u32>, max_bw: Option<u32>, now: SimTime) {
        let Some(e) = self.elements.get_mut(&id) else {
            return;
        };
        if let Some(b) = bw_share {
            e.bw_share = b;
        }
        if let Some(m) = max_bw {
            e.max_average_bw = m;
        }
        if let (ElementKind::Vport(v), Some(_)) = (e.kind, max_bw) {
            self.fresh_vport(v, now);
        }
    }

    /// Removes element `id` (checked by the caller).
    pub fn remove(&mut self, id: u32) {
        if let Some(ElementKind::Vport(v)) = self.elements.remove(&id).map(|e| e.kind) {
            self.sched.remove(&v);
        }
    }

    /// A full bucket for vport `v`, keeping its share tag.
    fn fresh_vport(&mut self, v: u16, now: SimTime) {
        let rate = self.vport_element(v).map_or(0, |(_, e)| e.max_average_bw);
        let s = self.sched.entry(v).or_default();
        s.tokens = bucket_depth(rate);
        s.at = now;
        s.throttled = false;
    }

    /// Whether vport `v`'s frames are share-scheduled (it has an element).
    pub fn scheduled(&self, v: u16) -> bool {
        self.vport_element(v).is_some()
    }

    /// Decides a wire-bound frame of `len` bytes from vport `v` at `now`. `share` says whether
    /// the share scheduler applies (not checkpointing under HAC); `stage_busy` whether a
    /// share-scheduled frame is already eligible in the egress stage. Vports without an
    /// element are always admitted.
    pub fn admit(
        &mut self,
        v: u16,
        len: usize,
        now: SimTime,
        share: bool,
        stage_busy: bool,
    ) -> Admission {
        let Some((_, e)) = self.vport_element(v) else {
            return Admission::Admitted;
        };
        let (rate, weight) = (e.max_average_bw, u128::from(e.bw_share.max(1)));
        let vtime = self.vtime;
        let start_of = |s: &VportSched| s.finish.max(vtime);
        let mine = self.sched.get(&v).copied().unwrap_or_default();
        // The rate limiter first: a vport over its rate is not backlogged for the share.
        let tokens = if rate > 0 {
            let t = refill(mine.tokens, mine.at, now, rate);
            if t <= 0 {
                let s = self.sched.entry(v).or_default();
                (s.tokens, s.at, s.throttled) = (t, now.max(s.at), true);
                self.counters.rate_limited += 1;
                return Admission::RateLimited;
            }
            Some(t)
        } else {
            None
        };
        if share {
            let my_start = start_of(&mine);
            let other_first = self
                .sched
                .iter()
                .any(|(&u, s)| u != v && s.waiting && start_of(s) < my_start);
            if stage_busy || other_first {
                let s = self.sched.entry(v).or_default();
                s.waiting = true;
                if let Some(t) = tokens {
                    (s.tokens, s.at) = (t, now.max(s.at));
                }
                self.counters.share_deferred += 1;
                return Admission::Deferred;
            }
            self.vtime = my_start;
        }
        let s = self.sched.entry(v).or_default();
        if let Some(t) = tokens {
            s.tokens = t - (len as i128) * 8000;
            s.at = now.max(s.at);
        }
        if share {
            s.finish = start_of(&mine) + (len as u128) * TAG_SCALE / weight;
        }
        s.waiting = false;
        s.throttled = false;
        Admission::Admitted
    }

    /// When the earliest throttled vport's bucket is positive again.
    pub fn next_resume(&self) -> Option<SimTime> {
        self.sched
            .iter()
            .filter(|(_, s)| s.throttled)
            .filter_map(|(&v, s)| {
                let rate = self.vport_element(v)?.1.max_average_bw;
                Some(resume_at(s.tokens, s.at, rate))
            })
            .min()
    }

    /// Clears the throttled marks of vports whose bucket is positive by `now` (the caller
    /// then services the send queues); how many.
    pub fn resume_due(&mut self, now: SimTime) -> usize {
        let mut n = 0;
        let rates: BTreeMap<u16, u32> = self
            .elements
            .values()
            .filter_map(|e| match e.kind {
                ElementKind::Vport(v) => Some((v, e.max_average_bw)),
                ElementKind::Tsar => None,
            })
            .collect();
        for (v, s) in self.sched.iter_mut() {
            let rate = rates.get(v).copied().unwrap_or(0);
            if s.throttled && resume_at(s.tokens, s.at, rate) <= now {
                s.throttled = false;
                n += 1;
            }
        }
        if n > 0 {
            self.counters.rate_resumes += 1;
        }
        n
    }

    /// True when some vport is marked backlogged for the share.
    pub fn any_waiting(&self) -> bool {
        self.sched.values().any(|s| s.waiting)
    }

    /// Forgets every backlog mark (a refused vport that stopped retrying must not hold the
    /// others back); counted.
    pub fn clear_waiting(&mut self) {
        for s in self.sched.values_mut() {
            s.waiting = false;
        }
        self.counters.stale_backlogs_cleared += 1;
    }

    /// Forgets every element and all scheduling state (a PF reset); counters stay.
    pub fn reset(&mut self) {
        let counters = self.counters;
        *self = Qos {
            counters,
            ..Qos::default()
        };
    }
}

/// A full bucket for `rate` Mbit/s, in millibits.
fn bucket_depth(rate: u32) -> i128 {
    i128::from(rate) * i128::from(BUCKET_NS)
}

/// The tokens of a bucket that held `tokens` at `at`, refilled at `rate` Mbit/s until `now`
/// (1 ns at 1 Mbit/s is one millibit).
fn refill(tokens: i128, at: SimTime, now: SimTime, rate: u32) -> i128 {
    let dt = i128::from(now.saturating_since(at));
    tokens
        .saturating_add(dt.saturating_mul(i128::from(rate)))
        .min(bucket_depth(rate))
}

/// When a bucket holding `tokens` at `at` is positive again at `rate`.
fn resume_at(tokens: i128, at: SimTime, rate: u32) -> SimTime {
    if tokens > 0 || rate == 0 {
        return at;
    }
    let need = (-tokens) / i128::from(rate) + 1;
    at + u64::try_from(need).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vport(v: u16, share: u32, rate: u32) -> Element {
        Element {
            kind: ElementKind::Vport(v),
            parent: 1,
            bw_share: share,
            max_average_bw: rate,
        }
    }

    #[test]
    fn ids_start_at_one_and_the_tree_is_tracked() {
        let mut q = Qos::default();
        let t0 = SimTime::ZERO;
        let root = q.insert(
            Element {
                kind: ElementKind::Tsar,
                parent: 0,
                bw_share: 0,
                max_average_bw: 0,
            },
            t0,
        );
        assert_eq!(root, 1);
        let e = q.insert(vport(2, 3, 0), t0);
        assert!(q.is_tsar(root) && !q.is_tsar(e) && q.has_children(root));
        assert_eq!(q.vport_element(2).map(|(i, _)| i), Some(e));
        q.remove(e);
        assert!(!q.has_children(root) && !q.scheduled(2));
    }

    #[test]
    fn a_rate_limiter_refuses_then_resumes_in_virtual_time() {
        let mut q = Qos::default();
        let t0 = SimTime::ZERO;
        q.insert(vport(1, 0, 100), t0);
        // 100 Mbit/s, a 100 µs bucket: 10 000 bits, one 1000-byte frame and a bit.
        assert_eq!(q.admit(1, 1000, t0, false, false), Admission::Admitted);
        assert_eq!(q.admit(1, 1000, t0, false, false), Admission::Admitted);
        assert_eq!(q.admit(1, 1000, t0, false, false), Admission::RateLimited);
        let at = q.next_resume().unwrap();
        // 6000 bits owed at 100 bits/µs: 60 µs.
        assert_eq!(at, t0 + 60_001);
        assert_eq!(q.resume_due(at), 1);
        assert_eq!(q.admit(1, 1000, at, false, false), Admission::Admitted);
        assert_eq!(q.counters.rate_limited, 1);
    }

    #[test]
    fn backlogged_vports_alternate_by_share() {
        let mut q = Qos::default();
        let t0 = SimTime::ZERO;
        q.insert(vport(1, 3, 0), t0);
        q.insert(vport(2, 1, 0), t0);
        let mut sent = [0u32; 3];
        // Both always backlogged: each turn (the stage just freed) vport 1 tries first, then
        // vport 2, as the send queues are serviced; once one is admitted the stage is busy.
        for _ in 0..400 {
            let mut busy = false;
            for v in [1u16, 2] {
                if q.admit(v, 1000, t0, true, busy) == Admission::Admitted {
                    sent[usize::from(v)] += 1;
                    busy = true;
                }
            }
        }
        assert_eq!(sent[1] + sent[2], 400);
        assert!((299..=301).contains(&sent[1]), "{sent:?}");
        assert_eq!(
            q.admit(2, 1000, t0, true, true),
            Admission::Deferred,
            "one scheduled frame in the stage at a time"
        );
    }
}

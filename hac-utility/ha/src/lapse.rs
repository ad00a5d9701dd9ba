//! What a node serving alone does with its output while its lease has lapsed in its own clock
//! but nobody has refused it (docs/failover.md, "A lapse is not a refusal").
//!
//! A lease lapses in the node's clock when no grant for a request sent in the last
//! `lease - margin` arrived in time: the node's own loop stalled, the arbiter stalled, or a
//! datagram was late. None of these means another node may serve; only a refusal says that.
//! So the node keeps serving, but nothing under the service MAC leaves until a *fresh* grant
//! (one the node holds at the time it reads it) arrives; the frames wait here in order,
//! bounded, and go out behind that grant. If no fresh grant comes within the grace, the node
//! fences itself and the frames held are discarded (counted by the caller).
//!
//! Releasing after the grant is safe because the arbiter grants an `Alone` (or `Protected`)
//! claim only to the node that held the lease last ([`crate::arbiter::Witness::decide`]), and
//! a node serving alone has no recorded standby, so no other node can have been granted the
//! lease between the last grant this node held and the fresh one: nobody else served.

use std::collections::VecDeque;

/// Frames held while lapsed before the node counts further ones as dropped.
pub const MAX_LAPSE_HELD: usize = 4096;

/// What a check of the gate found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LapseEvent {
    /// The lease lapsed now: output is held from here.
    Started,
    /// A fresh grant after `lapsed_us`: the held frames may leave ([`LapseGate::take_held`]).
    Regained {
        /// How long the lapse lasted.
        lapsed_us: u64,
    },
    /// The lapse outlasted the grace: the node must fence itself.
    Expired {
        /// How long the lapse lasted.
        lapsed_us: u64,
    },
}

/// Counters of the gate, as the node reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LapseStats {
    /// Lapses begun.
    pub lapses: u64,
    /// Lapses ended by a fresh grant.
    pub regained: u64,
    /// Lapses that outlasted the grace (the node fenced itself).
    pub expired: u64,
    /// The longest lapse that ended (regained or expired), µs.
    pub longest_us: u64,
    /// Frames held and then released behind a fresh grant.
    pub released: u64,
    /// Frames not held because [`MAX_LAPSE_HELD`] were already waiting.
    pub dropped_over_bound: u64,
}

/// The hold of a node's service output while its lease has lapsed. Generic over the frame so
/// it can be tested without a NIC.
#[derive(Debug)]
pub struct LapseGate<T> {
    grace_us: u64,
    max_held: usize,
    since_us: Option<u64>,
    held: VecDeque<T>,
    stats: LapseStats,
}

impl<T> LapseGate<T> {
    /// A gate that fences after `grace_us` of lapse and holds at most `max_held` frames.
    pub fn new(grace_us: u64, max_held: usize) -> LapseGate<T> {
        LapseGate {
            grace_us,
            max_held,
            since_us: None,
            held: VecDeque::new(),
            stats: LapseStats::default(),
        }
    }

    /// Checks the gate at `now_us`. `lapsed`: the node may not send under the service MAC now
    /// for want of a lease it holds (serving alone, or frames still held, with no fresh
    /// grant) and it is not fenced.
    pub fn check(&mut self, now_us: u64, lapsed: bool) -> Option<LapseEvent> {
        match (self.since_us, lapsed) {
            (None, true) => {
                self.since_us = Some(now_us);
                self.stats.lapses += 1;
                Some(LapseEvent::Started)
            }
            (Some(t0), true) => {
                let lapsed_us = now_us.saturating_sub(t0);
                if lapsed_us <= self.grace_us {
                    return None;
                }
                self.since_us = None;
                self.stats.expired += 1;
                self.stats.longest_us = self.stats.longest_us.max(lapsed_us);
                Some(LapseEvent::Expired { lapsed_us })
            }
            (Some(t0), false) => {
                let lapsed_us = now_us.saturating_sub(t0);
                self.since_us = None;
                self.stats.regained += 1;
                self.stats.longest_us = self.stats.longest_us.max(lapsed_us);
                Some(LapseEvent::Regained { lapsed_us })
            }
            (None, false) => None,
        }
    }

    /// Whether output must wait here: a lapse is open or frames from one are still waiting
    /// (a later frame may not overtake them).
    pub fn holding(&self) -> bool {
        self.since_us.is_some() || !self.held.is_empty()
    }

    /// Holds `frame`; false when the bound is reached (the frame is dropped and counted).
    pub fn hold(&mut self, frame: T) -> bool {
        if self.held.len() >= self.max_held {
            self.stats.dropped_over_bound += 1;
            return false;
        }
        self.held.push_back(frame);
        true
    }

    /// The frames held, oldest first, to send behind a fresh grant.
    pub fn take_held(&mut self) -> VecDeque<T> {
        self.stats.released += self.held.len() as u64;
        std::mem::take(&mut self.held)
    }

    /// The node fenced itself: the lapse ends and the frames held are gone; returns how many.
    pub fn discard(&mut self) -> usize {
        self.since_us = None;
        let n = self.held.len();
        self.held.clear();
        n
    }

    /// Frames waiting now.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// The counters.
    pub fn stats(&self) -> LapseStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_short_lapse_holds_the_output_and_releases_it_in_order_behind_the_grant() {
        let mut g = LapseGate::new(500_000, 8);
        assert_eq!(g.check(1_000, false), None);
        assert!(!g.holding());
        assert_eq!(g.check(2_000, true), Some(LapseEvent::Started));
        assert!(g.holding());
        for f in 1..=3 {
            assert!(g.hold(f));
        }
        assert_eq!(g.check(30_000, true), None);
        assert_eq!(
            g.check(42_000, false),
            Some(LapseEvent::Regained { lapsed_us: 40_000 })
        );
        // Still holding until the frames are taken: nothing may overtake them.
        assert!(g.holding());
        assert_eq!(g.take_held(), [1, 2, 3]);
        assert!(!g.holding());
        let s = g.stats();
        assert_eq!(
            (s.lapses, s.regained, s.expired, s.released, s.longest_us),
            (1, 1, 0, 3, 40_000)
        );
    }

    #[test]
    fn a_lapse_past_the_grace_expires_and_the_held_frames_are_discarded() {
        let mut g = LapseGate::new(500_000, 8);
        g.check(0, true);
        g.hold('a');
        g.hold('b');
        assert_eq!(g.check(500_000, true), None, "at the grace: still waiting");
        assert_eq!(
            g.check(500_001, true),
            Some(LapseEvent::Expired { lapsed_us: 500_001 })
        );
        assert_eq!(g.discard(), 2);
        assert!(!g.holding());
        assert_eq!(g.stats().expired, 1);
        assert_eq!(g.stats().released, 0);
    }

    #[test]
    fn over_the_bound_frames_are_dropped_and_counted() {
        let mut g = LapseGate::new(1_000, 2);
        g.check(0, true);
        assert!(g.hold(1));
        assert!(g.hold(2));
        assert!(!g.hold(3));
        assert_eq!(g.stats().dropped_over_bound, 1);
        assert_eq!(g.held_len(), 2);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Time passes and the node checks whether it holds a fresh lease.
        Check { dt_us: u64, holds: bool },
        /// A frame under the service MAC leaves the model.
        Frame,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..80_000, any::<bool>()).prop_map(|(dt_us, holds)| Op::Check { dt_us, holds }),
            Just(Op::Frame),
        ]
    }

    /// The node's routine before it decides about a frame or after it read the arbiter's
    /// replies (`Node::gate`): check, then release behind a fresh grant or discard at a fence.
    struct Sim {
        g: LapseGate<u64>,
        now: u64,
        holds: bool,
        fenced: bool,
        wire: Vec<(u64, bool)>,
        discarded: u64,
        lapse_start: Option<u64>,
    }

    impl Sim {
        fn gate(&mut self, grace_us: u64) -> Result<(), TestCaseError> {
            let lapsed = !self.fenced && !self.holds;
            match self.g.check(self.now, lapsed) {
                Some(LapseEvent::Started) => self.lapse_start = Some(self.now),
                Some(LapseEvent::Regained { lapsed_us }) => {
                    prop_assert!(self.holds);
                    prop_assert_eq!(Some(self.now - lapsed_us), self.lapse_start);
                    self.lapse_start = None;
                    for f in self.g.take_held() {
                        self.wire.push((f, self.holds));
                    }
                }
                Some(LapseEvent::Expired { lapsed_us }) => {
                    prop_assert!(lapsed_us > grace_us);
                    prop_assert!(!self.holds);
                    self.fenced = true;
                    self.lapse_start = None;
                    self.discarded += self.g.discard() as u64;
                }
                None => {
                    if let Some(t0) = self.lapse_start {
                        prop_assert!(self.now - t0 <= grace_us);
                    }
                }
            }
            Ok(())
        }
    }

    proptest! {
        /// The node's use of the gate against an oracle: a frame reaches the wire only at a
        /// moment the node holds a fresh lease, in the order produced; every frame is sent,
        /// held, dropped over the bound or discarded at a fence — none vanishes; a lapse never
        /// outlives the grace by more than one check.
        #[test]
        fn no_frame_leaves_without_a_lease_and_none_is_lost_uncounted(
            ops in proptest::collection::vec(op(), 1..300),
            grace_us in 0u64..200_000,
            max_held in 1usize..16,
        ) {
            let mut s = Sim {
                g: LapseGate::new(grace_us, max_held),
                now: 0,
                holds: true,
                fenced: false,
                wire: Vec::new(),
                discarded: 0,
                lapse_start: None,
            };
            let mut produced = 0u64;
            for op in ops {
                match op {
                    Op::Frame => {
                        produced += 1;
                        s.gate(grace_us)?;
                        if s.fenced {
                            s.discarded += 1;
                        } else if s.g.holding() {
                            s.g.hold(produced);
                        } else {
                            prop_assert!(s.holds);
                            s.wire.push((produced, s.holds));
                        }
                    }
                    Op::Check { dt_us, holds } => {
                        s.now += dt_us;
                        s.holds = holds;
                        if holds {
                            // A fresh grant also ends a fence.
                            s.fenced = false;
                        }
                        s.gate(grace_us)?;
                    }
                }
            }
            prop_assert!(s.wire.iter().all(|&(_, h)| h), "a frame left without a lease");
            prop_assert!(s.wire.windows(2).all(|w| w[0].0 < w[1].0), "out of order");
            let st = s.g.stats();
            prop_assert_eq!(
                produced,
                s.wire.len() as u64 + s.g.held_len() as u64 + st.dropped_over_bound + s.discarded
            );
        }
    }
}

//! State-machine test of the HAC egress buffer and scheduler (`EgressStage`) against a simple
//! reference model, over random interleavings of send, open-epoch, commit, abort, failover,
//! unprotect, tag/untag, wire dequeues, guard and limit changes. After every step: output commit
//! (no frame leaves whose epoch is not released), FIFO per VF, no loss (sent + discarded +
//! buffered = accepted), the exact priority decision (strict priority within the guard), and
//! no starvation of the low class beyond the guard.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use adapter_core::egress::{EgressFrame, EgressLimits, EgressStage, HacResult};
use adapter_core::{SimTime, Vport};
use bytes::Bytes;
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const POOLS: usize = 4;
const PLAIN_LIMIT: EgressLimits = EgressLimits {
    bytes: 1 << 30,
    frames: 10_000,
};

#[derive(Clone, Debug)]
enum Op {
    Send { pool: usize, len: usize },
    Open { pool: usize },
    Commit { pool: usize, back: u32 },
    Abort { pool: usize, back: u32 },
    Failover { pool: usize },
    Unprotect { pool: usize },
    Tag { pool: usize, on: bool },
    Wire { frames: usize },
    Guard { bytes: u64 },
    Limit { pool: usize, frames: usize },
}

#[derive(Clone, Debug)]
struct RefFrame {
    seq: u64,
    len: usize,
    epoch: Option<u32>,
    released: bool,
}

#[derive(Clone, Debug, Default)]
struct RefPool {
    tagged: bool,
    open: u32,
    resolved: u32,
    limit: usize,
    fifo: VecDeque<RefFrame>,
}

#[derive(Clone, Debug)]
struct Ref {
    pools: Vec<RefPool>,
    guard: u64,
    burst: u64,
    turn: u64,
    next_high: usize,
    next_low: usize,
    seq: u64,
    accepted: u64,
    sent: u64,
    discarded: u64,
    /// What the last Wire step must have produced, in order: (pool, seq).
    expected: Vec<(usize, u64)>,
    /// High-class bytes sent since the low class last got a frame while it was waiting.
    high_since_low: u64,
    /// The largest guard in force since the low class last sent, or `None` if the guard was 0
    /// (strict priority, no bound) at some point since: the bound `high_since_low` obeys.
    wait_guard: Option<u64>,
    max_len: usize,
}

impl Ref {
    fn eligible_class(&self, p: usize) -> Option<bool> {
        let f = self.pools[p].fifo.front()?;
        if f.epoch.is_some() && !f.released {
            return None;
        }
        Some(f.epoch.is_some())
    }
    fn pick(&self, high: bool, start: usize) -> Option<usize> {
        (0..8)
            .map(|k| (start + k) % 8)
            .filter(|&i| i < POOLS)
            .find(|&i| self.eligible_class(i) == Some(high))
    }
    fn release_all(&mut self, p: usize) {
        for f in &mut self.pools[p].fifo {
            f.released = true;
        }
    }
    fn discard(&mut self, p: usize, upto: Option<u32>) {
        let before = self.pools[p].fifo.len();
        self.pools[p].fifo.retain(|f| {
            f.released || f.epoch.is_none() || upto.is_some_and(|u| f.epoch.unwrap_or(0) > u)
        });
        self.discarded += (before - self.pools[p].fifo.len()) as u64;
    }
}

struct HacMachine;

impl ReferenceStateMachine for HacMachine {
    type State = Ref;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Ref> {
        Just(Ref {
            pools: vec![
                RefPool {
                    limit: 6,
                    ..RefPool::default()
                };
                POOLS
            ],
            guard: 4000,
            burst: 0,
            turn: 0,
            next_high: 0,
            next_low: 0,
            seq: 0,
            accepted: 0,
            sent: 0,
            discarded: 0,
            expected: Vec::new(),
            high_since_low: 0,
            wait_guard: Some(4000),
            max_len: 1500,
        })
        .boxed()
    }

    fn transitions(_: &Ref) -> BoxedStrategy<Op> {
        let pool = 0..POOLS;
        prop_oneof![
            4 => (pool.clone(), 60usize..1500).prop_map(|(pool, len)| Op::Send { pool, len }),
            2 => pool.clone().prop_map(|pool| Op::Open { pool }),
            2 => (pool.clone(), 0u32..3).prop_map(|(pool, back)| Op::Commit { pool, back }),
            1 => (pool.clone(), 0u32..3).prop_map(|(pool, back)| Op::Abort { pool, back }),
            1 => pool.clone().prop_map(|pool| Op::Failover { pool }),
            1 => pool.clone().prop_map(|pool| Op::Unprotect { pool }),
            1 => (pool.clone(), any::<bool>()).prop_map(|(pool, on)| Op::Tag { pool, on }),
            3 => (1usize..6).prop_map(|frames| Op::Wire { frames }),
            1 => prop_oneof![Just(0u64), 1000u64..8000].prop_map(|bytes| Op::Guard { bytes }),
            1 => (pool, 1usize..10).prop_map(|(pool, frames)| Op::Limit { pool, frames }),
        ]
        .boxed()
    }

    fn preconditions(state: &Ref, op: &Op) -> bool {
        match *op {
            // The TX engine only hands over a frame when the pool has room (backpressure).
            Op::Send { pool, .. } => {
                let p = &state.pools[pool];
                let limit = if p.tagged {
                    p.limit
                } else {
                    PLAIN_LIMIT.frames
                };
                p.fifo.len() < limit
            }
            _ => true,
        }
    }

    fn apply(mut s: Ref, op: &Op) -> Ref {
        s.expected.clear();
        match *op {
            Op::Send { pool, len } => {
                let p = &mut s.pools[pool];
                let epoch = p.tagged.then_some(p.open);
                p.fifo.push_back(RefFrame {
                    seq: s.seq,
                    len,
                    epoch,
                    released: false,
                });
                s.seq += 1;
                s.accepted += 1;
            }
            Op::Open { pool } => {
                if s.pools[pool].tagged {
                    s.pools[pool].open += 1;
                }
            }
            Op::Commit { pool, back } | Op::Abort { pool, back } => {
                let p = &s.pools[pool];
                let e = p.open.saturating_sub(back);
                if p.tagged && e > p.resolved {
                    if matches!(op, Op::Commit { .. }) {
                        for f in s.pools[pool].fifo.iter_mut() {
                            if f.epoch.is_some_and(|x| x <= e) {
                                f.released = true;
                            }
                        }
                    } else {
                        s.discard(pool, Some(e));
                    }
                    s.pools[pool].resolved = e;
                }
            }
            Op::Failover { pool } => {
                if s.pools[pool].tagged {
                    s.discard(pool, None);
                    s.pools[pool].resolved = s.pools[pool].open;
                }
            }
            Op::Unprotect { pool } => {
                if s.pools[pool].tagged {
                    s.release_all(pool);
                    s.pools[pool].tagged = false;
                }
            }
            Op::Tag { pool, on } => {
                if on && !s.pools[pool].tagged {
                    let p = &mut s.pools[pool];
                    p.tagged = true;
                    p.open = 1;
                    p.resolved = 0;
                } else if !on && s.pools[pool].tagged {
                    s.release_all(pool);
                    s.pools[pool].tagged = false;
                }
            }
            Op::Wire { frames } => {
                for _ in 0..frames {
                    let high = s.pick(true, s.next_high);
                    let low = s.pick(false, s.next_low);
                    let in_turn = s.turn > 0;
                    let guard_hit = s.guard > 0 && (in_turn || s.burst >= s.guard);
                    let (i, is_high) = match (high, low) {
                        (Some(h), Some(l)) => {
                            if guard_hit {
                                (l, false)
                            } else {
                                (h, true)
                            }
                        }
                        (Some(h), None) => (h, true),
                        (None, Some(l)) => (l, false),
                        (None, None) => break,
                    };
                    let f = s.pools[i].fifo.pop_front().unwrap();
                    let len = f.len as u64;
                    if is_high {
                        s.next_high = (i + 1) % 8;
                        s.turn = 0;
                        s.burst = if low.is_some() { s.burst + len } else { 0 };
                        if low.is_some() {
                            s.high_since_low += len;
                        }
                    } else {
                        s.next_low = (i + 1) % 8;
                        s.high_since_low = 0;
                        s.wait_guard = (s.guard > 0).then_some(s.guard);
                        if high.is_some() {
                            if !in_turn {
                                s.turn = (s.guard / 4).max(1);
                            }
                            s.turn = s.turn.saturating_sub(len);
                            if s.turn == 0 {
                                s.burst = 0;
                            }
                        } else {
                            s.turn = 0;
                            s.burst = 0;
                        }
                    }
                    s.sent += 1;
                    s.expected.push((i, f.seq));
                }
            }
            Op::Guard { bytes } => {
                s.guard = bytes;
                // A guard changed during a wait bounds that wait by the larger of the two (the
                // bytes already sent under the old one stay sent).
                s.wait_guard = s.wait_guard.filter(|_| bytes > 0).map(|g| g.max(bytes));
            }
            Op::Limit { pool, frames } => s.pools[pool].limit = frames,
        }
        s
    }
}

struct Sut {
    stage: EgressStage,
    now: u64,
    seqs_by_pool: Vec<Option<u64>>,
}

fn frame(pool: usize, seq: u64, len: usize, now: u64) -> EgressFrame {
    let mut d = vec![0u8; len];
    d[..8].copy_from_slice(&seq.to_le_bytes());
    EgressFrame {
        data: Bytes::from(d),
        pool: Vport::new(pool as u8),
        queued_at: SimTime(now),
    }
}

impl StateMachineTest for HacMachine {
    type SystemUnderTest = Sut;
    type Reference = HacMachine;

    fn init_test(r: &Ref) -> Sut {
        let mut stage = EgressStage::new(PLAIN_LIMIT);
        stage.set_hac_enabled(true, SimTime::ZERO);
        stage.set_guard_bytes(r.guard);
        for p in 0..POOLS {
            stage.set_hac_limits(
                Vport::new(p as u8),
                EgressLimits {
                    bytes: 1 << 30,
                    frames: 6,
                },
            );
        }
        Sut {
            stage,
            now: 0,
            seqs_by_pool: vec![None; POOLS],
        }
    }

    fn apply(mut sut: Sut, r: &Ref, op: Op) -> Sut {
        sut.now += 1000;
        let now = SimTime(sut.now);
        let pi = |p: usize| Vport::new(p as u8);
        match op {
            Op::Send { pool, len } => {
                assert!(
                    sut.stage.has_room(pi(pool), 0),
                    "room agrees with the reference limit"
                );
                sut.stage.enqueue(frame(pool, r.seq - 1, len, sut.now));
            }
            Op::Open { pool } => {
                let h = sut.stage.hac_state(pi(pool));
                let res = sut.stage.open_epoch(pi(pool), h.open + 1);
                assert_eq!(res == HacResult::Ok, r.pools[pool].tagged);
            }
            Op::Commit { pool, back } => {
                let e = sut.stage.hac_state(pi(pool)).open.saturating_sub(back);
                let _ = sut.stage.commit(pi(pool), e, now);
            }
            Op::Abort { pool, back } => {
                let e = sut.stage.hac_state(pi(pool)).open.saturating_sub(back);
                let _ = sut.stage.abort(pi(pool), e);
            }
            Op::Failover { pool } => {
                let _ = sut.stage.failover(pi(pool));
            }
            Op::Unprotect { pool } => {
                let _ = sut.stage.unprotect(pi(pool), now);
            }
            Op::Tag { pool, on } => {
                sut.stage.set_tagged(pi(pool), on, now);
            }
            Op::Wire { frames } => {
                let mut got = Vec::new();
                for _ in 0..frames {
                    match sut.stage.dequeue() {
                        Some(f) => {
                            let seq = u64::from_le_bytes(f.data[..8].try_into().unwrap());
                            let p = f.pool.get();
                            // FIFO per VF.
                            assert!(
                                sut.seqs_by_pool[p].is_none_or(|last| seq > last),
                                "FIFO per VF"
                            );
                            sut.seqs_by_pool[p] = Some(seq);
                            got.push((p, seq));
                        }
                        None => break,
                    }
                }
                // Output commit, priority and guard: exactly the reference's decisions.
                assert_eq!(got, r.expected);
            }
            Op::Guard { bytes } => sut.stage.set_guard_bytes(bytes),
            Op::Limit { pool, frames } => sut.stage.set_hac_limits(
                pi(pool),
                EgressLimits {
                    bytes: 1 << 30,
                    frames,
                },
            ),
        }
        sut
    }

    fn check_invariants(sut: &Sut, r: &Ref) {
        let mut buffered = 0u64;
        for p in 0..POOLS {
            let pool = Vport::new(p as u8);
            let rp = &r.pools[p];
            assert_eq!(
                sut.stage.occupancy(pool).0,
                rp.fifo.len(),
                "pool {p} occupancy"
            );
            let held = rp
                .fifo
                .iter()
                .filter(|f| f.epoch.is_some() && !f.released)
                .count();
            assert_eq!(sut.stage.held_frames(pool), held, "pool {p} held");
            assert_eq!(sut.stage.hac_state(pool).tagged, rp.tagged);
            buffered += rp.fifo.len() as u64;
        }
        // No loss: every accepted frame is sent, discarded or still buffered.
        assert_eq!(r.accepted, r.sent + r.discarded + buffered);
        let disc: u64 = (0..POOLS)
            .map(|p| sut.stage.stats(Vport::new(p as u8)).discarded)
            .sum();
        assert_eq!(disc, r.discarded);
        // No starvation beyond the guard: high bytes sent while low waited stay within one frame
        // of the guard.
        if let Some(guard) = r.wait_guard {
            assert!(
                r.high_since_low <= guard + r.max_len as u64,
                "low class starved"
            );
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn hac_buffer_and_scheduler_match_the_reference(sequential 1..120 => HacMachine);
}

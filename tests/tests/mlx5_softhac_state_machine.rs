//! `Mlx5SoftHac` against a reference of the output-commit contract, over random interleavings of
//! sends (plain and checkpointing, some too large), tag/untag, open/commit/abort/failover/
//! unprotect, limits (0 included), pumps and wire time, on two VFs of the mlx5 model (HAC stage
//! disabled) with 8-WQEBB send queues (so frames overflow into software). After every step: no frame on the wire whose epoch is not released,
//! none that was discarded, none twice, FIFO per VF. At the end (everything unprotected and
//! pumped): every frame that was accepted and not discarded reached the wire, and the counters
//! agree. The same reference as the 82576 SoftHac's (`softhac_state_machine.rs`).
#![allow(clippy::unwrap_used)]

use adapter_core::LAST_EPOCH;
use adapter_core::wire::LineRate;
use bytes::Bytes;
use hac_driver::hac::{Hac, VfNumber};
use hac_driver::mlx5::eth::BUFFER_LEN;
use hac_driver::mlx5::model::{Mlx5Model, Mlx5ModelBar, Mlx5ModelClock, Mlx5ModelDma, ModelDevice};
use hac_driver::mlx5::{EthConfig, Mlx5Config, Mlx5Error, Mlx5SoftHac};
use hw_common::MacAddress;
use mlx5_model::Mlx5Config as ModelConfig;
use proptest::prelude::*;

type Soft = Mlx5SoftHac<Mlx5ModelBar, Mlx5ModelDma, Mlx5ModelClock>;

const VFS: usize = 2;
const PEER: MacAddress = MacAddress([2, 0xAA, 0, 0, 0, 1]);

fn vf_mac(vf: usize) -> MacAddress {
    MacAddress([0x02, 0, 0, 0, 0x5F, vf as u8])
}

#[derive(Clone, Debug)]
enum Op {
    Send { vf: usize, n: usize, big: bool },
    Tag { vf: usize, on: bool },
    Open { vf: usize },
    Commit { vf: usize, back: u32 },
    Abort { vf: usize, back: u32 },
    Failover { vf: usize },
    Unprotect { vf: usize },
    Limits { vf: usize, frames: u32 },
    Pump,
    Run { us: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let vf = 0..VFS;
    prop_oneof![
        6 => (vf.clone(), 1..40usize, prop::bool::weighted(0.05))
            .prop_map(|(vf, n, big)| Op::Send { vf, n, big }),
        2 => (vf.clone(), any::<bool>()).prop_map(|(vf, on)| Op::Tag { vf, on }),
        3 => vf.clone().prop_map(|vf| Op::Open { vf }),
        3 => (vf.clone(), 0..3u32).prop_map(|(vf, back)| Op::Commit { vf, back }),
        1 => (vf.clone(), 0..3u32).prop_map(|(vf, back)| Op::Abort { vf, back }),
        1 => vf.clone().prop_map(|vf| Op::Failover { vf }),
        1 => vf.clone().prop_map(|vf| Op::Unprotect { vf }),
        1 => (vf.clone(), prop_oneof![Just(0u32), 1..64u32])
            .prop_map(|(vf, frames)| Op::Limits { vf, frames }),
        3 => Just(Op::Pump),
        3 => (1..400u64).prop_map(|us| Op::Run { us }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Held for this epoch.
    Held(u32),
    /// May go on the wire.
    Released,
    Discarded,
    OnWire,
}

#[derive(Default)]
struct RefVf {
    tagged: bool,
    open: u32,
    resolved: u32,
    /// Every accepted frame's state, by sequence number.
    frames: Vec<State>,
    /// Next sequence number expected on the wire among the non-discarded frames.
    wire_next: usize,
}

struct World {
    model: Mlx5Model,
    /// The PF's driver stays up (it set the VFs' MACs).
    _pf: ModelDevice,
    soft: Soft,
    refs: Vec<RefVf>,
}

fn frame(vf: usize, seq: u32, len: usize) -> Bytes {
    let mut payload = vec![vf as u8];
    payload.extend_from_slice(&seq.to_be_bytes());
    let mut f = hw_common::frame::build(PEER, vf_mac(vf), 0x88B5, &payload);
    f.resize(len, 0);
    Bytes::from(f)
}

impl World {
    fn new() -> World {
        let model = Mlx5Model::new(ModelConfig {
            capture_wire: true,
            line_rate: LineRate::G1,
            ..ModelConfig::default()
        });
        let (mut pf, mut devs) = model.start(VFS as u16, Mlx5Config::default()).unwrap();
        for (n, d) in devs.iter_mut().enumerate() {
            pf.set_vf_mac(n as u16, vf_mac(n)).unwrap();
            d.open_eth(EthConfig {
                log_sq_size: 3,
                log_rq_size: 4,
            })
            .unwrap();
        }
        World {
            model,
            _pf: pf,
            soft: Mlx5SoftHac::new(devs),
            refs: (0..VFS).map(|_| RefVf::default()).collect(),
        }
    }

    /// Moves wire time on and checks every frame that left.
    fn observe(&mut self, ns: u64) -> Result<(), TestCaseError> {
        self.model.run_for(ns);
        for vf in 0..VFS {
            self.soft.port(number(vf)).unwrap().reclaim_tx().unwrap();
        }
        for w in self.model.nic().take_wire_capture() {
            let d = &w.data;
            let vf = usize::from(d[14]);
            let seq = u32::from_be_bytes([d[15], d[16], d[17], d[18]]) as usize;
            let r = &mut self.refs[vf];
            let state = r.frames.get(seq).copied();
            prop_assert_eq!(
                state,
                Some(State::Released),
                "VF {} frame {} on the wire in state {:?}",
                vf,
                seq,
                state
            );
            // FIFO: every earlier frame is on the wire or discarded.
            while r.wire_next < seq && r.frames[r.wire_next] == State::Discarded {
                r.wire_next += 1;
            }
            prop_assert_eq!(r.wire_next, seq, "VF {} out of order", vf);
            r.frames[seq] = State::OnWire;
            r.wire_next = seq + 1;
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Send { vf, n, big } => {
                let base = self.refs[vf].frames.len() as u32;
                let mut batch: Vec<Bytes> = (0..n as u32)
                    .map(|i| frame(vf, base + i, 60 + ((base + i) as usize * 37) % 1400))
                    .collect();
                if big {
                    batch.push(Bytes::from(vec![0u8; BUFFER_LEN + 1]));
                }
                match self.soft.send(number(vf), &batch) {
                    Ok(k) => {
                        prop_assert!(!big, "an oversized frame was accepted");
                        let r = &mut self.refs[vf];
                        let state = if r.tagged {
                            State::Held(r.open)
                        } else {
                            State::Released
                        };
                        r.frames.extend(std::iter::repeat_n(state, k));
                    }
                    Err(Mlx5Error::FrameTooLarge { .. }) => prop_assert!(big),
                    Err(e) => prop_assert!(false, "send failed: {}", e),
                }
            }
            Op::Tag { vf, on } => {
                self.soft.set_tagged(number(vf), on).unwrap();
                let r = &mut self.refs[vf];
                if on && !r.tagged {
                    r.open = 1;
                    r.resolved = 0;
                } else if !on && r.tagged {
                    release(r, u32::MAX);
                }
                r.tagged = on;
            }
            Op::Open { vf } => {
                let r = &mut self.refs[vf];
                let e = r.open + 1;
                let got = self.soft.open_epoch(number(vf), e);
                prop_assert_eq!(got.is_ok(), r.tagged && e <= LAST_EPOCH);
                if got.is_ok() {
                    r.open = e;
                }
            }
            Op::Commit { vf, back } => {
                let r = &mut self.refs[vf];
                let e = r.open.saturating_sub(back);
                let got = self.soft.commit(number(vf), e);
                prop_assert_eq!(got.is_ok(), r.tagged && e > r.resolved && e <= r.open);
                if got.is_ok() {
                    r.resolved = e;
                    release(r, e);
                }
            }
            Op::Abort { vf, back } => {
                let r = &mut self.refs[vf];
                let e = r.open.saturating_sub(back);
                let got = self.soft.abort(number(vf), e);
                prop_assert_eq!(got.is_ok(), r.tagged && e > r.resolved && e <= r.open);
                if got.is_ok() {
                    r.resolved = e;
                    discard(r, e);
                }
            }
            Op::Failover { vf } => {
                let r = &mut self.refs[vf];
                let got = self.soft.failover(number(vf));
                prop_assert_eq!(got.is_ok(), r.tagged);
                if got.is_ok() {
                    r.resolved = r.open;
                    discard(r, u32::MAX);
                }
            }
            Op::Unprotect { vf } => {
                let r = &mut self.refs[vf];
                let got = self.soft.unprotect(number(vf));
                prop_assert_eq!(got.is_ok(), r.tagged);
                if got.is_ok() {
                    release(r, u32::MAX);
                    r.tagged = false;
                }
            }
            Op::Limits { vf, frames } => self.soft.set_limits(number(vf), frames, 0).unwrap(),
            Op::Pump => self.soft.pump().unwrap(),
            Op::Run { .. } => {}
        }
        let us = if let Op::Run { us } = *op { us } else { 0 };
        self.observe(us * 1000)
    }
}

/// VF `vf` as the HAC contract names it.
fn number(vf: usize) -> VfNumber {
    VfNumber::from_index(vf).unwrap()
}

fn release(r: &mut RefVf, upto: u32) {
    for s in &mut r.frames {
        if let State::Held(e) = *s
            && e <= upto
        {
            *s = State::Released;
        }
    }
}

fn discard(r: &mut RefVf, upto: u32) {
    for s in &mut r.frames {
        if let State::Held(e) = *s
            && e <= upto
        {
            *s = State::Discarded;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn mlx5_softhac_keeps_output_commit_fifo_and_loses_nothing(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for op in &ops {
            w.step(op)?;
        }
        // Unprotect everything, then pump until the wire is quiet.
        for vf in 0..VFS {
            w.step(&Op::Tag { vf, on: false })?;
        }
        for _ in 0..400 {
            w.step(&Op::Pump)?;
            w.step(&Op::Run { us: 500 })?;
            if w.refs.iter().all(|r| r.frames.iter().all(|s| matches!(s, State::OnWire | State::Discarded))) {
                break;
            }
        }
        for (vf, r) in w.refs.iter().enumerate() {
            let left: Vec<_> = r.frames.iter().enumerate()
                .filter(|(_, s)| !matches!(s, State::OnWire | State::Discarded))
                .collect();
            prop_assert!(left.is_empty(), "VF {} never sent {:?}", vf, left);
            let st = w.soft.stats(number(vf)).unwrap();
            let discarded = r.frames.iter().filter(|s| **s == State::Discarded).count() as u64;
            prop_assert_eq!(st.discarded, discarded, "VF {} discarded count", vf);
            prop_assert_eq!(st.buffered_frames, 0);
        }
    }
}

//! Re-protection in process: the primary protects the service through a backup, dies; the
//! backup takes over and serves unprotected; a fresh backup joins, catches up from the live
//! node's step history and acks its epochs, and the live node's adapter (a model 82576 driven
//! through the HAC API) has the service VF tagged again and commits exactly the epochs the new
//! backup acked. Every message crosses the replication codec; the client's TCP connection is
//! the same one from start to end and every answer is the running total.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::{Client, Pipe, SERVICE};
use hac_driver::Bar;
use hac_driver::hac::{AdapterHac, Hac, VfNumber};
use hac_driver::model::Model;
use hac_driver::pf::PfConfig;
use hac_ha::msg::{Message, Step, StreamDecoder};
use hac_ha::rejoin::{History, JoinRefused, Protection, join_reply, replay};
use hac_ha::service::{Service, ServiceConfig};
use igb_hw::regs::PfReg;
use igb_model::{FunctionId, NicConfig};

const VF: VfNumber = VfNumber::new(0);
const EPOCH_US: i64 = 20_000;
const JUMP_US: i64 = 1_000_000;

/// Every message through the encoder and the stream decoder, as on the link.
fn wire(msgs: &[Message]) -> Vec<Message> {
    let mut bytes = Vec::new();
    for m in msgs {
        m.emit(&mut bytes).unwrap();
    }
    let mut dec = StreamDecoder::default();
    dec.push(&bytes);
    let mut out = Vec::new();
    while let Some(m) = dec.next_message().unwrap() {
        out.push(m);
    }
    out
}

/// A model 82576 with its PF agent up and two VFs enabled, as `hac ha-node` runs it.
fn model() -> (Model, impl Sized) {
    let model = Model::new(NicConfig::default());
    let agent = model
        .start_pf_agent(
            PfConfig {
                num_vfs: 2,
                ..PfConfig::default()
            },
            &[None, None],
        )
        .unwrap();
    (model, agent)
}

fn tagged(model: &Model) -> bool {
    let bar: Bar<_, PfReg> = Bar::new(model.bar0(FunctionId::Pf));
    bar.get(PfReg::HACTAG) & 1 == 1
}

/// The joining backup: its replica and history, from the messages of the join.
struct Joined {
    service: Option<Service>,
    history: History,
    caught_up: bool,
}

impl Joined {
    /// Applies a message; returns its ack (for a log) and the replica's suppressed output.
    fn on(&mut self, m: Message) -> (Option<Message>, Vec<Bytes>) {
        match m {
            Message::Hello { seed, .. } => {
                self.service = Some(Service::new(ServiceConfig { seed, ..SERVICE }, 0));
                (None, vec![])
            }
            Message::Catchup { last, steps, .. } => {
                replay(self.service.as_mut().unwrap(), &mut self.history, &steps);
                self.caught_up |= last;
                (None, vec![])
            }
            Message::Log { epoch, steps } => {
                assert!(self.caught_up, "a log before the catch-up ended");
                let svc = self.service.as_mut().unwrap();
                let mut out = Vec::new();
                for s in &steps {
                    out.extend(svc.step(s));
                    self.history.record(s);
                }
                (Some(Message::Ack { epoch }), out)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_joined_backup_catches_up_and_its_acks_commit_the_live_nodes_epochs() {
    let mut pipe = Pipe::default();
    let mut client = Client::new(&mut pipe, 300);

    // The first pair: primary (service, history, protection on its model) and backup.
    let (model_p, _agent_p) = model();
    let mut hac_p = AdapterHac::new(model_p.bar0(FunctionId::Pf), 2);
    let mut prot_p = Protection::new(VF);
    prot_p.protect(&mut hac_p).unwrap();
    let mut primary = Service::new(SERVICE, 0);
    let mut backup = Service::new(SERVICE, 0);
    let mut backup_history = History::new(64 << 20);

    // The backup's host: its model's service VF is untagged until a backup joins it.
    let (model_b, _agent_b) = model();
    let mut hac_b = AdapterHac::new(model_b.bar0(FunctionId::Pf), 2);
    let mut prot_b = Protection::new(VF);
    let mut joined: Option<Joined> = None;

    let kill_us = 1_010_000;
    let join_us = 1_500_000;
    let mut held: Vec<Bytes> = Vec::new(); // output of the live node's open epochs
    let mut next_epoch = EPOCH_US;
    let mut live_backup = false;
    let mut commits_after_join = 0;
    let mut t: i64 = 0;
    while client.answers < 300 && t < 30_000_000 {
        t += 500;
        let to_service = client.turn(&mut pipe, t);

        if !live_backup {
            if t >= kill_us {
                // The primary dies with its open epoch's output; the backup goes live.
                held.clear();
                live_backup = true;
                assert!(!tagged(&model_b), "a standby backup's VF is never tagged");
            } else {
                let step = Step {
                    at_us: t,
                    frames: to_service,
                };
                held.extend(primary.step(&step));
                prot_p.log_step(step);
                if t >= next_epoch {
                    next_epoch += EPOCH_US;
                    let log = prot_p.close_epoch(&mut hac_p).unwrap().unwrap();
                    for m in wire(&[log]) {
                        let Message::Log { epoch, steps } = m else {
                            panic!("not a log")
                        };
                        replay(&mut backup, &mut backup_history, &steps);
                        assert!(prot_p.on_ack(&mut hac_p, epoch).unwrap());
                    }
                    pipe.rx.extend(held.drain(..));
                }
                continue;
            }
        }

        // The live node (the old backup): every step goes to its history; once protected, to
        // the log of the open epoch too, and its output waits for the new backup's ack.
        if joined.is_none() && t >= join_us {
            assert!(!tagged(&model_b));
            assert_eq!(
                hac_b.stats(VF).map(|s| s.committed_epoch).unwrap_or(0),
                0,
                "nothing committed while unprotected"
            );
            let reply = join_reply(&backup_history, 0, JUMP_US, SERVICE.seed, 20_000).unwrap();
            prot_b.protect(&mut hac_b).unwrap();
            assert!(tagged(&model_b), "joining tags the service VF again");
            let stats = hac_b.stats(VF).unwrap();
            assert_eq!((stats.open_epoch, stats.committed_epoch), (1, 0));
            assert!(matches!(
                reply[0],
                Message::Hello {
                    time_base_us,
                    ..
                } if time_base_us == 0u64.wrapping_sub(JUMP_US as u64)
            ));
            let mut j = Joined {
                service: None,
                history: History::new(64 << 20),
                caught_up: false,
            };
            for m in wire(&reply) {
                j.on(m);
            }
            assert!(j.caught_up);
            assert_eq!(j.history.len(), backup_history.len());
            joined = Some(j);
            next_epoch = t + EPOCH_US;
        }
        let step = Step {
            at_us: t + JUMP_US,
            frames: to_service,
        };
        let out = backup.step(&step);
        backup_history.record(&step);
        if !prot_b.is_protected() {
            pipe.rx.extend(out); // unprotected: straight out
            continue;
        }
        prot_b.log_step(step);
        held.extend(out);
        if t >= next_epoch {
            next_epoch += EPOCH_US;
            let log = prot_b.close_epoch(&mut hac_b).unwrap().unwrap();
            let j = joined.as_mut().unwrap();
            for m in wire(&[log]) {
                let (ack, replica_out) = j.on(m);
                assert_eq!(
                    replica_out, held,
                    "the joined replica's output differs from the live node's at {t} µs"
                );
                let Some(Message::Ack { epoch }) = ack else {
                    panic!("no ack")
                };
                assert_eq!(hac_b.stats(VF).unwrap().committed_epoch, epoch - 1);
                for m in wire(&[Message::Ack { epoch }]) {
                    let Message::Ack { epoch } = m else { panic!() };
                    assert!(prot_b.on_ack(&mut hac_b, epoch).unwrap());
                    // A repeated ack commits nothing more.
                    assert!(!prot_b.on_ack(&mut hac_b, epoch).unwrap());
                }
                assert_eq!(hac_b.stats(VF).unwrap().committed_epoch, epoch);
                commits_after_join += 1;
            }
            pipe.rx.extend(held.drain(..));
        }
    }
    assert_eq!(client.answers, 300, "the stream did not complete");
    assert!(joined.is_some_and(|j| j.caught_up));
    assert!(
        commits_after_join >= 20,
        "only {commits_after_join} commits"
    );
    assert_eq!(prot_b.commits, commits_after_join);
    // The new backup serves nothing while protected: the live node is still the one answering.
    assert!(backup.answered > 0);
}

#[test]
fn a_second_join_or_a_lost_history_is_refused() {
    let (model, _agent) = model();
    let mut hac = AdapterHac::new(model.bar0(FunctionId::Pf), 2);
    let mut prot = Protection::new(VF);
    prot.protect(&mut hac).unwrap();
    // Acks for the open epoch, for epoch 0 or from the future commit nothing.
    assert!(!prot.on_ack(&mut hac, 1).unwrap());
    assert!(!prot.on_ack(&mut hac, 0).unwrap());
    prot.close_epoch(&mut hac).unwrap();
    assert!(!prot.on_ack(&mut hac, 5).unwrap());
    assert!(prot.on_ack(&mut hac, 1).unwrap());
    // Unprotected: the VF is untagged and acks are ignored.
    prot.unprotect(&mut hac).unwrap();
    assert!(!tagged(&model));
    assert!(!prot.on_ack(&mut hac, 2).unwrap());
    assert!(prot.close_epoch(&mut hac).unwrap().is_none());
    let mut h = History::new(30);
    h.record(&Step {
        at_us: 1,
        frames: vec![Bytes::from_static(&[0; 40])],
    });
    assert_eq!(
        join_reply(&h, 0, 0, 1, 20_000),
        Err(JoinRefused::HistoryLost)
    );
}

#[test]
fn after_a_rejoin_only_the_joined_backup_may_take_over_and_only_once_named() {
    // The lease arbiter's view of kill → takeover → rejoin: the node that took over claims
    // `Protected{standby: the joined node}` once it protects again, and from then on the
    // joined backup — and nobody else — may take over when it is lost, after its lease ran out.
    use hac_ha::arbiter::{Claim, Verdict, Witness};
    use hac_ha::node::{REJOIN_NODE_ID, Role};
    const L: u64 = 40_000;
    let (p, b, j) = (
        Role::Primary.node_id(),
        Role::Backup.node_id(),
        REJOIN_NODE_ID,
    );
    let mut w = Witness::new(0, L);
    let mut t = L;
    assert_eq!(
        w.decide(t, p, Claim::Protected { standby: b }).0,
        Verdict::Granted
    );
    // The primary dies; after its lease the backup (its named standby) takes over.
    t += L + 1;
    assert_eq!(w.decide(t, b, Claim::Takeover).0, Verdict::Granted);
    assert_eq!(w.decide(t + 5_000, b, Claim::Alone).0, Verdict::Granted);
    // Before the live node names it, the joining backup may not take over.
    t += 10_000;
    assert_eq!(w.decide(t, j, Claim::Takeover).0, Verdict::Held);
    t += L + 1;
    assert_eq!(w.decide(t, j, Claim::Takeover).0, Verdict::NotInSync);
    // The live node protects again and names the joined backup.
    assert_eq!(
        w.decide(t, b, Claim::Protected { standby: j }).0,
        Verdict::Granted
    );
    assert_eq!(w.standby(), Some(j));
    // Live node lost: the old primary's id (a stale process) is refused, the joined backup
    // waits for the lease to run out, then wins it.
    assert_eq!(w.decide(t + 1_000, j, Claim::Takeover).0, Verdict::Held);
    t += L + 1;
    assert_eq!(w.decide(t, p, Claim::Takeover).0, Verdict::NotInSync);
    assert_eq!(w.decide(t, p, Claim::Alone).0, Verdict::NotInSync);
    assert_eq!(w.decide(t, j, Claim::Takeover).0, Verdict::Granted);
    assert_eq!(w.holder(t), Some(j));
}

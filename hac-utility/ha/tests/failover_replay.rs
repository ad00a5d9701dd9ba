//! Replication by deterministic replay, without any network: a smoltcp client talks to the
//! protected service (the "primary"); every step the service takes is logged, shipped through
//! the replication message codec, and replayed into a second instance (the "backup"), which
//! must produce byte-identical frames at every step. Then the primary "dies" with its last
//! epoch's output unsent, the backup takes over (same clock jump as `hac ha-node`) and the
//! client's stream completes through it with consistent totals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::{Client, Pipe, SERVICE};
use hac_ha::msg::{Message, Step};
use hac_ha::service::Service;

#[test]
fn backup_replays_to_identical_output_and_takes_over() {
    let mut primary = Service::new(SERVICE, 0);
    let mut backup = Service::new(SERVICE, 0);
    let mut pipe = Pipe::default();
    let mut client = Client::new(&mut pipe, 200);

    let epoch_us = 20_000;
    let kill_us = 1_010_000; // mid-epoch: the epoch that started at 1.0 s is lost
    let mut log: Vec<Step> = Vec::new();
    let mut held: Vec<Bytes> = Vec::new(); // the primary's output of the open epoch
    let mut next_epoch = epoch_us;
    let mut live_backup = false;
    let mut discarded = 0usize;
    let mut t: i64 = 0;
    while client.answers < 200 && t < 30_000_000 {
        t += 500;
        let to_service = client.turn(&mut pipe, t);

        if !live_backup && t >= kill_us {
            // The primary dies: its held output is never sent; the backup, which has replayed
            // every shipped epoch, goes live with its clock advanced past smoltcp's minimum RTO.
            discarded = held.len();
            held.clear();
            live_backup = true;
            let out = backup.step(&Step {
                at_us: t + 1_000_000,
                frames: vec![],
            });
            pipe.rx.extend(out);
        }
        if live_backup {
            let out = backup.step(&Step {
                at_us: t + 1_000_000,
                frames: to_service,
            });
            pipe.rx.extend(out);
            continue;
        }
        // The primary: step, log, hold the output until the epoch is acknowledged.
        let step = Step {
            at_us: t,
            frames: to_service,
        };
        held.extend(primary.step(&step));
        log.push(step);
        if t >= next_epoch {
            next_epoch += epoch_us;
            // Ship the epoch through the codec, replay it, compare, "ack", release.
            let wire = Message::Log {
                epoch: 1,
                steps: std::mem::take(&mut log),
            }
            .to_bytes()
            .unwrap();
            let (Message::Log { steps, .. }, _) = Message::parse(&wire).unwrap() else {
                panic!("not a log");
            };
            let mut replayed = Vec::new();
            for s in &steps {
                replayed.extend(backup.step(s));
            }
            assert_eq!(
                replayed, held,
                "backup output differs from the primary's at {t} µs"
            );
            pipe.rx.extend(held.drain(..));
        }
    }
    assert_eq!(
        client.answers, 200,
        "stream did not complete through the backup"
    );
    assert!(live_backup);
    assert!(discarded > 0, "the kill should catch unacknowledged output");
    assert!(backup.answered >= 200 - primary.answered);
}

//! Replication by deterministic replay, without any network: a smoltcp client talks to the
//! protected service (the "primary"); every step the service takes is logged, shipped through
//! the replication message codec, and replayed into a second instance (the "backup"), which
//! must produce byte-identical frames at every step. Then the primary "dies" with its last
//! epoch's output unsent, the backup takes over (same clock jump as `hac ha-node`) and the
//! client's stream completes through it with consistent totals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::{Pipe, SERVICE};
use hac_driver::phy::smoltcp;
use hac_ha::msg::{Message, Step};
use hac_ha::service::Service;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

#[test]
fn backup_replays_to_identical_output_and_takes_over() {
    let mut primary = Service::new(SERVICE, 0);
    let mut backup = Service::new(SERVICE, 0);
    let mut pipe = Pipe::default();
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress([
            2, 0, 0, 0, 0, 0x64,
        ]))),
        &mut pipe,
        Instant::from_micros(0),
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(192, 0, 2, 100), 24))
            .unwrap();
    });
    let mut sockets = SocketSet::new(vec![]);
    let h = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 8192]),
        tcp::SocketBuffer::new(vec![0; 8192]),
    ));
    sockets
        .get_mut::<tcp::Socket<'_>>(h)
        .connect(iface.context(), (IpAddress::v4(192, 0, 2, 10), 7000), 40000)
        .unwrap();

    let epoch_us = 20_000;
    let kill_us = 1_010_000; // mid-epoch: the epoch that started at 1.0 s is lost
    let mut log: Vec<Step> = Vec::new();
    let mut held: Vec<Bytes> = Vec::new(); // the primary's output of the open epoch
    let mut next_epoch = epoch_us;
    let (mut sent, mut answers, mut line) = (0u64, Vec::<u64>::new(), String::new());
    let mut live_backup = false;
    let mut discarded = 0usize;
    let mut t: i64 = 0;
    while answers.len() < 200 && t < 30_000_000 {
        t += 500;
        // Client side.
        iface.poll(Instant::from_micros(t), &mut pipe, &mut sockets);
        let s = sockets.get_mut::<tcp::Socket<'_>>(h);
        assert!(s.is_open(), "client connection closed or reset at {t} µs");
        if s.may_send() && sent < 200 && sent < answers.len() as u64 + 4 && t % 5_000 == 0 {
            sent += 1;
            s.send_slice(format!("{sent}\n").as_bytes()).unwrap();
        }
        if s.can_recv() {
            s.recv(|b| {
                line.push_str(std::str::from_utf8(b).unwrap());
                (b.len(), ())
            })
            .unwrap();
            while let Some(i) = line.find('\n') {
                let v: u64 = line[..i].parse().unwrap();
                let n = answers.len() as u64 + 1;
                assert_eq!(v, n * (n + 1) / 2, "answer {n}");
                answers.push(v);
                line.drain(..=i);
            }
        }
        iface.poll(Instant::from_micros(t), &mut pipe, &mut sockets);
        let to_service: Vec<Bytes> = pipe.tx.drain(..).collect();

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
        answers.len(),
        200,
        "stream did not complete through the backup"
    );
    assert!(live_backup);
    assert!(discarded > 0, "the kill should catch unacknowledged output");
    assert!(backup.answered >= 200 - primary.answered);
}

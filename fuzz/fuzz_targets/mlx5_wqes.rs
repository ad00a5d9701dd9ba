//! A hostile VF's datapath on the mlx5 model: VF 1, with a ready SQ and RQ and catch-all
//! steering, writes arbitrary send WQE bytes (some with a SEND opcode and its own SQN patched
//! in), arbitrary send and receive counters into its doorbell records, arbitrary receive WQEs,
//! arbitrary or well-formed 8-byte doorbells and other UAR writes, and recovers its SQ; VF 2
//! sends broadcasts that reach VF 1's hostile RQ. Oracle beyond "no panic":
//! - every 8-byte write at the start of VF 1's doorbell register is counted once, taken or
//!   refused;
//! - after a taken doorbell the SQ has executed all posted work (its counter reaches the
//!   record's) or is in ERR with one more error CQE counted; consumed blocks are counted WQEs;
//! - every frame VF 2 sends is accounted exactly once by VF 1's receive path (delivered, error
//!   CQE, out of buffer, bad record, RQ not ready);
//! - VF 0's state never changes and its counters change only by the flooded frames it has no
//!   buffer for; VF 0 still sends a frame VF 2 receives afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlx5_hw::commands::queues::QueueState;
use mlx5_model::testing::queues::{Queues, broadcast_frame, send_wqe};
use mlx5_model::testing::{CmdDriver, device};
use mlx5_model::{FunctionId, Mlx5Nic, QueueCounters};

const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);
const VF2: FunctionId = FunctionId::Vf(2);

fn q(nic: &Mlx5Nic, f: FunctionId) -> QueueCounters {
    nic.function_counters(f)
        .map(|c| c.queues)
        .unwrap_or_default()
}

fn rx_accounted(c: &QueueCounters) -> u64 {
    c.rx_frames
        + c.rx_error_cqes
        + c.rx_out_of_buffer
        + c.rq_doorbell_errors
        + c.rx_rq_not_ready
        + c.rx_steering_misses
        + c.rx_rule_drops
        + c.rx_no_rq
}

fn sq_of(nic: &Mlx5Nic, f: FunctionId, sqn: u32) -> (QueueState, u16, u16) {
    let sq = &nic.function_state(f).unwrap().sqs[&sqn];
    (sq.state, sq.consumer, sq.producer)
}

fuzz_target!(|data: &[u8]| {
    let mut nic = device(3);
    let mut ds: Vec<(CmdDriver, Queues)> = [VF0, VF1, VF2]
        .into_iter()
        .map(|f| {
            let mut d = CmdDriver::attach(&mut nic, f);
            d.bring_up(&mut nic);
            let q = d.open_queues(&mut nic, 4, 4, 3);
            (d, q)
        })
        .collect();
    {
        let (d2, q2) = &mut ds[2];
        d2.post_recv_buffers(&mut q2.rq, 8);
    }
    let before = (nic.function_state(VF0).cloned(), nic.function_counters(VF0));
    let mut rest = data;
    let mut rounds = 0;
    while rest.len() >= 10 && rounds < 64 {
        rounds += 1;
        let (c, tail) = rest.split_at(10);
        let n = usize::from(c[1] % 65).min(tail.len());
        let (body, tail) = tail.split_at(n);
        rest = tail;
        let (d1, q1) = &mut ds[1];
        match c[0] % 7 {
            0 => {
                // WQE bytes at the producer counter (a whole block).
                let mut raw = [0u8; 64];
                raw[..body.len()].copy_from_slice(body);
                if c[2] & 1 == 0 {
                    raw[3] = 0x0a;
                    raw[4..7].copy_from_slice(&q1.sq.sqn.to_be_bytes()[1..]);
                    raw[7] = (raw[7] & 0x3f) % 8;
                }
                d1.post_raw_wqe(&mut q1.sq, &raw);
            }
            1 => {
                // A send counter: the driver's or anything.
                let v = if c[2] & 1 == 0 {
                    u32::from(q1.sq.pc)
                } else {
                    u32::from_le_bytes([c[3], c[4], c[5], c[6]])
                };
                d1.write(q1.sq.dbr + 4, &v.to_be_bytes());
            }
            2 => {
                // An 8-byte doorbell: the head of a posted block, or garbage.
                let mut db = [0u8; 8];
                if c[2] & 1 == 0 {
                    let index = u64::from(c[3] % 16);
                    d1.read(q1.sq.ring + index * 64, &mut db);
                } else {
                    db.copy_from_slice(&c[2..10]);
                }
                let taken = |nic: &Mlx5Nic| {
                    let c = q(nic, VF1);
                    (
                        c.sq_doorbells,
                        c.sq_doorbell_errors,
                        c.tx_error_cqes,
                        c.tx_wqes,
                    )
                };
                let (ok0, err0, errcqe0, wqes0) = taken(&nic);
                let (_, cons0, _) = sq_of(&nic, VF1, q1.sq.sqn);
                d1.sq_doorbell_raw(&mut nic, q1.uar, &db);
                let (ok1, err1, errcqe1, wqes1) = taken(&nic);
                assert_eq!(ok1 + err1, ok0 + err0 + 1, "every doorbell counted once");
                if ok1 > ok0 {
                    let (state, cons, prod) = sq_of(&nic, VF1, q1.sq.sqn);
                    match state {
                        QueueState::Ready => assert_eq!(cons, prod, "all posted work done"),
                        QueueState::Error => assert_eq!(errcqe1, errcqe0 + 1),
                        other => panic!("SQ in {other:?} after a doorbell"),
                    }
                    if cons != cons0 {
                        assert!(wqes1 > wqes0, "consumed blocks are counted WQEs");
                    }
                }
            }
            3 => {
                // A receive WQE of arbitrary bytes and an arbitrary or right counter.
                let mut stride = [0u8; 16];
                let k = body.len().min(16);
                stride[..k].copy_from_slice(&body[..k]);
                let index = u64::from(q1.rq.pc) & 7;
                d1.write(q1.rq.ring + index * 16, &stride);
                q1.rq.pc = q1.rq.pc.wrapping_add(1);
                let v = if c[2] & 1 == 0 {
                    u32::from(q1.rq.pc)
                } else {
                    u32::from(c[3])
                };
                d1.write(q1.rq.dbr, &v.to_be_bytes());
            }
            4 => {
                // SQ recovery: ERR → RST → RDY.
                let _ = d1.modify_sq(&mut nic, q1.sq.sqn, QueueState::Error, QueueState::Reset);
                let _ = d1.modify_sq(&mut nic, q1.sq.sqn, QueueState::Reset, QueueState::Ready);
                q1.sq.pc = 0;
            }
            5 => {
                // Any write in the UAR page.
                let len = [1usize, 2, 4, 8][usize::from(c[2] % 4)];
                let off = (u64::from(u16::from_le_bytes([c[3], c[4]])) % 4096) & !(len as u64 - 1);
                let at = u64::from(q1.uar) * 4096 + off;
                nic.bar_write(VF1, 0, at, &c[2..2 + len]);
            }
            _ => {
                // VF 2 sends a broadcast: VF 1 accounts for it exactly once.
                let before1 = rx_accounted(&q(&nic, VF1));
                let frame = broadcast_frame([2, 0, 0, 0, 0, 2], 60, c[2]);
                let (d2, q2) = &mut ds[2];
                let start = q2.sq.pc;
                d2.post_wqe(&mut q2.sq, &send_wqe(&frame, vec![], false));
                d2.ring_sq(&mut nic, &q2.sq, start);
                assert_eq!(rx_accounted(&q(&nic, VF1)), before1 + 1);
            }
        }
    }
    let after = (nic.function_state(VF0).cloned(), nic.function_counters(VF0));
    assert_eq!(before.0, after.0, "VF 0's state");
    let (mut want, got) = (before.1.unwrap(), after.1.unwrap());
    want.queues.rx_out_of_buffer = got.queues.rx_out_of_buffer;
    assert_eq!(want, got, "VF 0's counters");
    // VF 0 still sends, VF 2 still receives.
    let received = q(&nic, VF2).rx_frames + q(&nic, VF2).rx_out_of_buffer;
    let (d0, q0) = &mut ds[0];
    d0.send(
        &mut nic,
        &mut q0.sq,
        &broadcast_frame([2, 0, 0, 0, 0, 1], 64, 0),
        14,
        true,
    );
    assert_eq!(d0.poll_cq(&mut q0.tx_cq).len(), 1);
    assert_eq!(
        q(&nic, VF2).rx_frames + q(&nic, VF2).rx_out_of_buffer,
        received + 1
    );
});

//! The Ethernet datapath end to end: a VF's SQ doorbell, send WQEs (inline header, inline
//! data, multi-segment gather, a WQE wrapping the ring end, checksum offload, completion only
//! when asked), the frame through the E-Switch to another VF's NIC RX steering, TIR, RQ and
//! receive WQE with its RESP_SEND CQE; error CQEs for bad WQEs and DMA faults with the SQ to
//! ERR and its recovery; refused doorbells; out-of-buffer and length errors on receive; flow
//! rules, RSS and VLAN stripping; a hostile VF changing nothing of another VF's queues.
//!
//! Every frame is a broadcast sent by a VF without an assigned MAC, so the tests hold with the
//! E-Switch's flooding (which takes such frames to every other vport).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use hw_common::Iova;
use mlx5_hw::cmd::CommandStatus;
use mlx5_hw::cmd::Opcode;
use mlx5_hw::commands::queues::modify_bitmask;
use mlx5_hw::commands::queues::{ModifyRqIn, QueryRqOut, QuerySqIn, QuerySqOut, QueueState};
use mlx5_hw::commands::rx::{hash_fields, rx_hash_fn};
use mlx5_hw::cqe::{
    CQE_LEN, CqeOpcode, CqeRepr, CqeSyndrome, ErrCqe, ErrCqeRepr, L3HdrType, L4HdrType, hds_ip_ext,
};
use mlx5_hw::wqe::{DataSegRepr, SendDataSeg, SendOpcode, cs_flags};
use mlx5_model::packet;
use mlx5_model::testing::queues::{
    Queues, RX_BUFFER_LEN, broadcast_frame, create_flow_group_input, create_flow_table_input,
    create_indirect_tir_input, create_rqt_input, send_wqe, set_fte_input, set_root_input,
};
use mlx5_model::testing::{CmdDriver, DriverCq, device, input, put_dword};
use mlx5_model::{FunctionId, Mlx5Nic};

const VF0: FunctionId = FunctionId::Vf(0);
const VF1: FunctionId = FunctionId::Vf(1);
const VF2: FunctionId = FunctionId::Vf(2);
const SRC0: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];

/// `n` VFs, each brought up with queues (CQs of 16, an SQ of 16 blocks, an RQ of 8 WQEs).
fn vfs(n: u16) -> (Mlx5Nic, Vec<(CmdDriver, Queues)>) {
    let mut nic = device(n);
    let mut out = Vec::new();
    for v in 0..n {
        let mut d = CmdDriver::attach(&mut nic, FunctionId::Vf(v));
        d.bring_up(&mut nic);
        let q = d.open_queues(&mut nic, 4, 4, 3);
        out.push((d, q));
    }
    (nic, out)
}

fn read(d: &CmdDriver, at: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    d.read(at, &mut b);
    b
}

fn err_cqe(d: &CmdDriver, cq: &DriverCq, counter: u32) -> ErrCqeRepr {
    let mut b = [0u8; CQE_LEN];
    d.read(cq.cqe_iova(counter), &mut b);
    ErrCqeRepr::parse(&ErrCqe::new_checked(&b[..]).unwrap())
}

fn sq_state(d: &mut CmdDriver, nic: &mut Mlx5Nic, sqn: u32) -> (QueueState, u32) {
    let mut m = input(Opcode::QuerySq, 0, QuerySqIn::<&[u8]>::LEN);
    put_dword(&mut m, 0x08, sqn);
    let o = d.ok(nic, &m, QuerySqOut::<&[u8]>::LEN);
    let q = QuerySqOut::new_checked(&o.bytes[..]).unwrap();
    let c = q.sq_context();
    (c.state(), c.wq().hw_counter())
}

#[test]
fn a_broadcast_from_one_vf_lands_in_the_other_vfs_rq_with_both_cqes() {
    let (mut nic, mut v) = vfs(2);
    let bufs = {
        let (d1, q1) = &mut v[1];
        d1.post_recv_buffers(&mut q1.rq, 4)
    };
    let frame = broadcast_frame(SRC0, 100, 7);
    let (d0, q0) = &mut v[0];
    let counter = d0.send(&mut nic, &mut q0.sq, &frame, 14, true);
    assert_eq!(counter, 0);
    let tx = d0.poll_cq(&mut q0.tx_cq);
    assert_eq!(tx.len(), 1);
    assert_eq!(
        (tx[0].opcode, tx[0].wqe_counter, tx[0].qpn),
        (CqeOpcode::Req, 0, q0.sq.sqn)
    );
    let (d1, q1) = &mut v[1];
    let rx = d1.poll_cq(&mut q1.rx_cq);
    assert_eq!(rx.len(), 1);
    let c = rx[0];
    assert_eq!(
        (c.opcode, c.byte_cnt, c.wqe_counter),
        (CqeOpcode::RespSend, 100, 0)
    );
    assert_eq!(
        (c.l3_hdr_type, c.l4_hdr_type),
        (L3HdrType::None, L4HdrType::None)
    );
    assert_eq!(c.hds_ip_ext, hds_ip_ext::L2_OK);
    assert_eq!(read(d1, bufs[0], 100), frame);
    assert_eq!(read(d1, bufs[1], 4), vec![0; 4], "one WQE per frame");
    let c0 = nic.function_counters(VF0).unwrap().queues;
    let c1 = nic.function_counters(VF1).unwrap().queues;
    assert_eq!(
        (c0.sq_doorbells, c0.tx_wqes, c0.tx_frames, c0.tx_bytes),
        (1, 1, 1, 100)
    );
    assert_eq!((c1.rx_frames, c1.rx_bytes), (1, 100));
    // The PF is enabled but not initialized: the flood reaches no queue of it.
    assert_eq!(nic.counters().rx_no_function, 1);
    assert_eq!(nic.counters().cqes_written, 2);
}

#[test]
fn inline_header_inline_data_and_gathered_segments_make_one_frame() {
    let (mut nic, mut v) = vfs(2);
    let bufs = {
        let (d1, q1) = &mut v[1];
        d1.post_recv_buffers(&mut q1.rq, 2)
    };
    let frame = broadcast_frame(SRC0, 300, 1);
    let (d0, q0) = &mut v[0];
    let pieces = [(18usize, 40usize), (58, 100), (158, 142)];
    let mut data = vec![SendDataSeg::Inline(frame[18..18].to_vec())];
    data.clear();
    for (k, (at, len)) in pieces.iter().enumerate() {
        if k == 1 {
            data.push(SendDataSeg::Inline(frame[*at..at + len].to_vec()));
            continue;
        }
        let buf = d0.fresh_pages(1)[0];
        d0.write(buf + 0x10, &frame[*at..at + len]);
        data.push(SendDataSeg::Pointer(DataSegRepr {
            byte_count: *len as u32,
            lkey: q0.sq.lkey,
            addr: Iova(buf + 0x10),
        }));
    }
    let wqe = send_wqe(&frame[..18], data, true);
    assert!(wqe.wqebb_count() > 2, "a multi-block WQE");
    d0.post_wqe(&mut q0.sq, &wqe);
    d0.ring_sq(&mut nic, &q0.sq, 0);
    assert_eq!(d0.poll_cq(&mut q0.tx_cq).len(), 1);
    let (d1, q1) = &mut v[1];
    let rx = d1.poll_cq(&mut q1.rx_cq);
    assert_eq!(rx[0].byte_cnt, 300);
    assert_eq!(read(d1, bufs[0], 300), frame);
}

#[test]
fn wqes_wrap_around_the_ring_and_complete_only_when_asked() {
    let (mut nic, mut v) = vfs(2);
    {
        let (d1, q1) = &mut v[1];
        d1.post_recv_buffers(&mut q1.rq, 8);
    }
    // 14 single-block SENDs, only every other one asking for a CQE.
    for k in 0..14u8 {
        {
            let (d0, q0) = &mut v[0];
            d0.send(
                &mut nic,
                &mut q0.sq,
                &broadcast_frame(SRC0, 64, k),
                14,
                k % 2 == 1,
            );
        }
        if k == 7 {
            let (d1, q1) = &mut v[1];
            assert_eq!(d1.poll_cq(&mut q1.rx_cq).len(), 8);
            d1.post_recv_buffers(&mut q1.rq, 8);
        }
    }
    let (d0, q0) = &mut v[0];
    let tx = d0.poll_cq(&mut q0.tx_cq);
    assert_eq!(
        tx.iter().map(|c| c.wqe_counter).collect::<Vec<_>>(),
        vec![1, 3, 5, 7, 9, 11, 13]
    );
    // The SQ holds 16 blocks: a 3-block WQE at counter 14 takes blocks 14, 15 and 0.
    let frame = broadcast_frame(SRC0, 148, 9);
    let wqe = send_wqe(
        &frame[..18],
        vec![SendDataSeg::Inline(frame[18..].to_vec())],
        true,
    );
    assert_eq!(wqe.wqebb_count(), 3);
    d0.post_wqe(&mut q0.sq, &wqe);
    d0.ring_sq(&mut nic, &q0.sq, 14);
    let tx = d0.poll_cq(&mut q0.tx_cq);
    assert_eq!(
        tx.iter().map(|c| c.wqe_counter).collect::<Vec<_>>(),
        vec![14]
    );
    let (d1, q1) = &mut v[1];
    let rx = d1.poll_cq(&mut q1.rx_cq);
    assert_eq!(rx.len(), 7);
    assert_eq!(rx.last().unwrap().byte_cnt, 148);
    assert_eq!(nic.function_counters(VF0).unwrap().queues.tx_frames, 15);
}

/// An IPv4/UDP broadcast with zero checksums.
fn udp_broadcast() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&SRC0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[
        0x45, 0, 0, 48, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 255,
    ]);
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 28, 0, 0]);
    f.extend((0..20u8).map(|i| i * 3));
    f
}

#[test]
fn checksum_offload_fills_the_checksums_and_the_receiver_sees_them_verified() {
    let (mut nic, mut v) = vfs(2);
    let bufs = {
        let (d1, q1) = &mut v[1];
        d1.post_recv_buffers(&mut q1.rq, 2)
    };
    let frame = udp_broadcast();
    let (d0, q0) = &mut v[0];
    let mut wqe = send_wqe(
        &frame[..42],
        vec![SendDataSeg::Inline(frame[42..].to_vec())],
        true,
    );
    wqe.eth.as_mut().unwrap().cs_flags = cs_flags::L3_CSUM | cs_flags::L4_CSUM;
    d0.post_wqe(&mut q0.sq, &wqe);
    d0.ring_sq(&mut nic, &q0.sq, 0);
    let (d1, q1) = &mut v[1];
    let rx = d1.poll_cq(&mut q1.rx_cq);
    let got = read(d1, bufs[0], frame.len());
    let mut want = frame.clone();
    packet::insert_checksums(&mut want, true, true);
    assert_eq!(got, want);
    assert_ne!(&got[24..26], &[0, 0], "IPv4 header checksum");
    let c = rx[0];
    assert_eq!(
        (c.l3_hdr_type, c.l4_hdr_type),
        (L3HdrType::Ipv4, L4HdrType::Udp)
    );
    assert_eq!(
        c.hds_ip_ext,
        hds_ip_ext::L2_OK | hds_ip_ext::L3_OK | hds_ip_ext::L4_OK
    );
    assert_eq!(c.check_sum, packet::fold(packet::ones_sum(&want[14..], 0)));
}

/// An IPv4/TCP broadcast with `payload` bytes, sequence number 5000, flags PSH|ACK.
fn tcp_broadcast(payload: usize) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&SRC0);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (40 + payload) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[10, 0, 0, 255]);
    f.extend_from_slice(&[
        0x30, 0x39, 0x00, 0x50, 0, 0, 0x13, 0x88, 0, 0, 0, 0, 0x50, 0x18,
    ]);
    f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    f.extend((0..payload).map(|i| (i % 251) as u8));
    f
}

#[test]
fn an_lso_wqe_is_cut_at_the_mss_into_checksummed_segments() {
    let (mut nic, mut v) = vfs(2);
    let bufs = {
        let (d1, q1) = &mut v[1];
        d1.post_recv_buffers(&mut q1.rq, 8)
    };
    let frame = tcp_broadcast(3000);
    let (d0, q0) = &mut v[0];
    let buf = d0.fresh_pages(1)[0];
    d0.write(buf, &frame[54..]);
    let ptr = SendDataSeg::Pointer(DataSegRepr {
        byte_count: 3000,
        lkey: q0.sq.lkey,
        addr: Iova(buf),
    });
    let mut wqe = send_wqe(&frame[..54], vec![ptr], true);
    wqe.ctrl.opcode = SendOpcode::Lso;
    wqe.eth.as_mut().unwrap().mss = 1400;
    d0.post_wqe(&mut q0.sq, &wqe);
    d0.ring_sq(&mut nic, &q0.sq, 0);
    let tx = d0.poll_cq(&mut q0.tx_cq);
    assert_eq!((tx.len(), tx[0].opcode), (1, CqeOpcode::Req));
    let (d1, q1) = &mut v[1];
    let rx = d1.poll_cq(&mut q1.rx_cq);
    assert_eq!(
        rx.iter().map(|c| c.byte_cnt).collect::<Vec<_>>(),
        vec![1454, 1454, 254]
    );
    let segs = packet::segment(&frame, 1400).unwrap();
    for (k, c) in rx.iter().enumerate() {
        assert_eq!(
            c.hds_ip_ext,
            hds_ip_ext::L2_OK | hds_ip_ext::L3_OK | hds_ip_ext::L4_OK
        );
        assert_eq!(read(d1, bufs[k], segs[k].len()), segs[k]);
    }
    // Headers not all inline: a local QP operation error.
    let (d0, q0) = &mut v[0];
    let mut wqe = send_wqe(
        &frame[..40],
        vec![SendDataSeg::Inline(frame[40..200].to_vec())],
        true,
    );
    wqe.ctrl.opcode = SendOpcode::Lso;
    wqe.eth.as_mut().unwrap().mss = 100;
    let at = q0.sq.pc;
    d0.post_wqe(&mut q0.sq, &wqe);
    d0.ring_sq(&mut nic, &q0.sq, at);
    let e = err_cqe(d0, &q0.tx_cq, 1);
    assert_eq!(
        (e.opcode, e.syndrome),
        (CqeOpcode::ReqErr, CqeSyndrome::LocalQpOpErr)
    );
    assert_eq!(nic.function_counters(VF0).unwrap().queues.tx_frames, 3);
}

#[test]
fn no_receive_wqe_is_an_out_of_buffer_drop_and_a_short_buffer_an_error_cqe() {
    let (mut nic, mut v) = vfs(2);
    let frame = broadcast_frame(SRC0, 100, 3);
    {
        let (d0, q0) = &mut v[0];
        d0.send(&mut nic, &mut q0.sq, &frame, 14, true);
    }
    let c1 = nic.function_counters(VF1).unwrap().queues;
    assert_eq!((c1.rx_out_of_buffer, c1.rx_frames), (1, 0));
    let (d1, q1) = &mut v[1];
    assert!(d1.poll_cq(&mut q1.rx_cq).is_empty());
    // A 32-byte buffer: the frame does not fit.
    let small = d1.fresh_pages(1)[0];
    let lkey = q1.rq.lkey;
    d1.post_recv(
        &mut q1.rq,
        &mlx5_hw::wqe::RecvWqeRepr {
            segments: vec![DataSegRepr {
                byte_count: 32,
                lkey,
                addr: Iova(small),
            }],
        },
    );
    d1.write_rq_record(&q1.rq);
    let (d0, q0) = &mut v[0];
    d0.send(&mut nic, &mut q0.sq, &frame, 14, true);
    let (d1, q1) = &mut v[1];
    let e = err_cqe(d1, &q1.rx_cq, 0);
    assert_eq!(
        (e.opcode, e.syndrome, e.wqe_counter, e.qpn),
        (
            CqeOpcode::RespErr,
            CqeSyndrome::LocalLengthErr,
            0,
            q1.rq.rqn
        )
    );
    q1.rx_cq.consumer = 1;
    d1.set_cq_ci(&q1.rx_cq);
    // The RQ stays ready: the next WQE takes the next frame.
    let bufs = d1.post_recv_buffers(&mut q1.rq, 1);
    let (d0, q0) = &mut v[0];
    d0.send(&mut nic, &mut q0.sq, &frame, 14, true);
    let (d1, q1) = &mut v[1];
    let rx = d1.poll_cq(&mut q1.rx_cq);
    assert_eq!((rx[0].opcode, rx[0].wqe_counter), (CqeOpcode::RespSend, 1));
    assert_eq!(read(d1, bufs[0], 100), frame);
    let c1 = nic.function_counters(VF1).unwrap().queues;
    assert_eq!(
        (c1.rx_error_cqes, c1.rx_frames, c1.rx_out_of_buffer),
        (1, 1, 1)
    );
    let _ = RX_BUFFER_LEN;
}

#[test]
fn a_bad_wqe_completes_with_an_error_cqe_and_stops_the_sq_until_reset() {
    let (mut nic, mut v) = vfs(2);
    {
        let (d1, q1) = &mut v[1];
        d1.post_recv_buffers(&mut q1.rq, 4);
    }
    let (d0, q0) = &mut v[0];
    // UMR is not executed on an Ethernet SQ: a local QP operation error.
    let mut wqe = send_wqe(&broadcast_frame(SRC0, 60, 0), vec![], false);
    wqe.ctrl.opcode = SendOpcode::Umr;
    d0.post_wqe(&mut q0.sq, &wqe);
    d0.send(
        &mut nic,
        &mut q0.sq,
        &broadcast_frame(SRC0, 60, 1),
        14,
        true,
    );
    let e = err_cqe(d0, &q0.tx_cq, 0);
    assert_eq!(
        (e.opcode, e.syndrome, e.s_wqe_opcode, e.wqe_counter, e.qpn),
        (
            CqeOpcode::ReqErr,
            CqeSyndrome::LocalQpOpErr,
            0x25,
            0,
            q0.sq.sqn
        )
    );
    assert_eq!(sq_state(d0, &mut nic, q0.sq.sqn), (QueueState::Error, 0));
    // The SEND behind it is not executed; doorbells to the SQ in ERR are refused.
    d0.ring_sq(&mut nic, &q0.sq, 1);
    let c0 = nic.function_counters(VF0).unwrap().queues;
    assert_eq!(
        (c0.tx_error_cqes, c0.tx_frames, c0.sq_doorbell_errors),
        (1, 0, 1)
    );
    // Recovery as mlx5e does it: ERR → RST → RDY, counters back to 0.
    let sqn = q0.sq.sqn;
    for (from, to) in [
        (QueueState::Error, QueueState::Reset),
        (QueueState::Reset, QueueState::Ready),
    ] {
        let o = d0.modify_sq(&mut nic, sqn, from, to).unwrap();
        assert_eq!(o.status, CommandStatus::Ok);
    }
    q0.sq.pc = 0;
    q0.tx_cq.consumer = 1;
    d0.set_cq_ci(&q0.tx_cq);
    d0.send(
        &mut nic,
        &mut q0.sq,
        &broadcast_frame(SRC0, 60, 2),
        14,
        true,
    );
    let tx = d0.poll_cq(&mut q0.tx_cq);
    assert_eq!((tx[0].opcode, tx[0].wqe_counter), (CqeOpcode::Req, 0));
    assert_eq!(nic.function_counters(VF1).unwrap().queues.rx_frames, 1);
}

#[test]
fn malformed_wqes_and_gather_faults_take_their_syndromes() {
    type Case = (
        Box<dyn Fn(&mut CmdDriver) -> mlx5_hw::wqe::SendWqeRepr>,
        CqeSyndrome,
        u64,
    );
    let cases: Vec<Case> = vec![
        // A buffer outside the IOMMU: local protection error, counted as a DMA fault.
        (
            Box::new(|_| {
                let ptr = SendDataSeg::Pointer(DataSegRepr {
                    byte_count: 64,
                    lkey: mlx5_model::mkey::FIRST_MKEY_INDEX << 8,
                    addr: Iova(0x7000_0000),
                });
                send_wqe(&broadcast_frame(SRC0, 14, 0), vec![ptr], true)
            }),
            CqeSyndrome::LocalProtErr,
            1,
        ),
        // Shorter than an Ethernet header.
        (
            Box::new(|_| send_wqe(&[0xff; 10], vec![], true)),
            CqeSyndrome::LocalLengthErr,
            0,
        ),
        // An opcode an Ethernet SQ does not execute (RDMA write).
        (
            Box::new(|_| {
                let mut w = send_wqe(&broadcast_frame(SRC0, 60, 0), vec![], true);
                w.ctrl.opcode = SendOpcode::RdmaWrite;
                w
            }),
            CqeSyndrome::LocalQpOpErr,
            0,
        ),
    ];
    for (build, syndrome, faults) in cases {
        let (mut nic, mut v) = vfs(1);
        let (d0, q0) = &mut v[0];
        let wqe = build(d0);
        d0.post_wqe(&mut q0.sq, &wqe);
        d0.ring_sq(&mut nic, &q0.sq, 0);
        let e = err_cqe(d0, &q0.tx_cq, 0);
        assert_eq!((e.opcode, e.syndrome), (CqeOpcode::ReqErr, syndrome));
        let c = nic.function_counters(VF0).unwrap().queues;
        assert_eq!((c.tx_error_cqes, c.tx_dma_faults), (1, faults));
        assert_eq!(sq_state(d0, &mut nic, q0.sq.sqn).0, QueueState::Error);
    }
    // A DS count past what the record posted, and a DS count of zero.
    for ds in [8u8, 0] {
        let (mut nic, mut v) = vfs(1);
        let (d0, q0) = &mut v[0];
        let mut raw = [0u8; 64];
        raw[3] = 0x0a;
        raw[4..7].copy_from_slice(&q0.sq.sqn.to_be_bytes()[1..]);
        raw[7] = ds;
        d0.post_raw_wqe(&mut q0.sq, &raw);
        d0.ring_sq(&mut nic, &q0.sq, 0);
        let e = err_cqe(d0, &q0.tx_cq, 0);
        assert_eq!(
            (e.opcode, e.syndrome),
            (CqeOpcode::ReqErr, CqeSyndrome::LocalQpOpErr)
        );
    }
}

#[test]
fn lkeys_must_name_a_key_of_the_queues_pd_covering_the_buffer() {
    let (mut nic, mut v) = vfs(2);
    // Receive: a WQE whose lkey names no key is a protection error and the RQ goes to ERR.
    let (d1, q1) = &mut v[1];
    let buf = d1.fresh_pages(1)[0];
    d1.post_recv(
        &mut q1.rq,
        &mlx5_hw::wqe::RecvWqeRepr {
            segments: vec![DataSegRepr {
                byte_count: 256,
                lkey: 0x7700,
                addr: Iova(buf),
            }],
        },
    );
    d1.write_rq_record(&q1.rq);
    let rqn = q1.rq.rqn;
    // Send: a gather with the key's variant byte wrong.
    let (d0, q0) = &mut v[0];
    let data = d0.fresh_pages(1)[0];
    let ptr = SendDataSeg::Pointer(DataSegRepr {
        byte_count: 50,
        lkey: q0.sq.lkey | 0x5,
        addr: Iova(data),
    });
    d0.post_wqe(
        &mut q0.sq,
        &send_wqe(&broadcast_frame(SRC0, 14, 0), vec![ptr], true),
    );
    d0.ring_sq(&mut nic, &q0.sq, 0);
    let e = err_cqe(d0, &q0.tx_cq, 0);
    assert_eq!(
        (e.opcode, e.syndrome),
        (CqeOpcode::ReqErr, CqeSyndrome::LocalProtErr)
    );
    // A good send from VF0 after recovery reaches VF1's bad WQE.
    let sqn = q0.sq.sqn;
    d0.modify_sq(&mut nic, sqn, QueueState::Error, QueueState::Reset)
        .unwrap();
    d0.modify_sq(&mut nic, sqn, QueueState::Reset, QueueState::Ready)
        .unwrap();
    q0.sq.pc = 0;
    d0.send(
        &mut nic,
        &mut q0.sq,
        &broadcast_frame(SRC0, 64, 1),
        14,
        false,
    );
    let (d1, q1) = &mut v[1];
    let e = err_cqe(d1, &q1.rx_cq, 0);
    assert_eq!(
        (e.opcode, e.syndrome, e.qpn),
        (CqeOpcode::RespErr, CqeSyndrome::LocalProtErr, rqn)
    );
    assert_eq!(
        nic.function_state(VF1).unwrap().rqs[&rqn].state,
        QueueState::Error
    );
    let c = nic.function_counters(VF1).unwrap().queues;
    assert_eq!((c.rx_error_cqes, c.rx_dma_faults), (1, 1));
}

#[test]
fn refused_doorbells_are_counted_and_send_nothing() {
    let (mut nic, mut v) = vfs(2);
    let (d0, q0) = &mut v[0];
    let wqe = send_wqe(&broadcast_frame(SRC0, 60, 0), vec![], true);
    d0.post_wqe(&mut q0.sq, &wqe);
    d0.write(q0.sq.dbr + 4, &1u32.to_be_bytes());
    let mut head = [0u8; 8];
    d0.read(q0.sq.ring, &mut head);
    // A 4-byte half, another UAR page, an unknown SQ, an index outside the posted window.
    nic.bar_write(VF0, 0, u64::from(q0.uar) * 4096 + 0x800, &head[..4]);
    let other = d0.alloc_uar(&mut nic);
    d0.sq_doorbell_raw(&mut nic, other, &head);
    let mut unknown = head;
    unknown[4..7].copy_from_slice(&[0, 0x0F, 0xFF]);
    d0.sq_doorbell_raw(&mut nic, q0.uar, &unknown);
    let mut ahead = head;
    ahead[1..3].copy_from_slice(&[0, 5]);
    d0.sq_doorbell_raw(&mut nic, q0.uar, &ahead);
    // A record counter more than the ring ahead.
    d0.write(q0.sq.dbr + 4, &17u32.to_be_bytes());
    d0.sq_doorbell_raw(&mut nic, q0.uar, &head);
    let c = nic.function_counters(VF0).unwrap().queues;
    assert_eq!((c.sq_doorbell_errors, c.sq_doorbells, c.tx_wqes), (5, 0, 0));
    assert!(d0.poll_cq(&mut q0.tx_cq).is_empty());
    // The right record and doorbell then send it.
    d0.write(q0.sq.dbr + 4, &1u32.to_be_bytes());
    d0.sq_doorbell_raw(&mut nic, q0.uar, &head);
    assert_eq!(d0.poll_cq(&mut q0.tx_cq).len(), 1);
}

#[test]
fn flow_rules_steer_by_destination_mac_and_drop_what_they_say() {
    let (mut nic, mut v) = vfs(2);
    let (d1, q1) = &mut v[1];
    let bufs = d1.post_recv_buffers(&mut q1.rq, 4);
    // A second root: dmac ff:ff:ff:ff:ff:ff → the TIR, 03:..:99 → drop, the rest misses (multicast, so the
    // E-Switch floods them to every vport).
    let table = d1.create(&mut nic, &create_flow_table_input(0, 3));
    let mut criteria = [0u8; 0x40];
    criteria[8..14].fill(0xFF);
    let group = d1.create(&mut nic, &create_flow_group_input(table, 0, 1, &criteria));
    let mut bcast = [0u8; 0x40];
    bcast[8..14].fill(0xFF);
    let mut dropped = [0u8; 0x40];
    dropped[8..14].copy_from_slice(&[3, 0, 0, 0, 0, 0x99]);
    d1.ok(
        &mut nic,
        &set_fte_input(table, group, 0, &bcast, Some(q1.tirn)),
        0x10,
    );
    d1.ok(
        &mut nic,
        &set_fte_input(table, group, 1, &dropped, None),
        0x10,
    );
    d1.ok(&mut nic, &set_root_input(table), 0x10);
    let (d0, q0) = &mut v[0];
    let mut to_drop = broadcast_frame(SRC0, 80, 0);
    to_drop[..6].copy_from_slice(&[3, 0, 0, 0, 0, 0x99]);
    let mut to_miss = to_drop.clone();
    to_miss[5] = 0x98;
    let frame = broadcast_frame(SRC0, 80, 5);
    for f in [&to_drop, &to_miss, &frame] {
        d0.send(&mut nic, &mut q0.sq, f, 14, false);
    }
    let (d1, q1) = &mut v[1];
    let rx = d1.poll_cq(&mut q1.rx_cq);
    assert_eq!(rx.len(), 1);
    assert_eq!(read(d1, bufs[0], 80), frame);
    let c = nic.function_counters(VF1).unwrap().queues;
    assert_eq!(
        (c.rx_rule_drops, c.rx_steering_misses, c.rx_frames),
        (1, 1, 1)
    );
}

#[test]
fn an_indirect_tir_spreads_frames_over_its_rqt_by_the_toeplitz_hash() {
    let (mut nic, mut v) = vfs(2);
    let key: Vec<u8> = (0..40u8)
        .map(|i| i.wrapping_mul(29).wrapping_add(0x6d))
        .collect();
    let selector = hash_fields::SELECTED_SRC_IP | hash_fields::SELECTED_DST_IP;
    let (a, b) = v.split_at_mut(1);
    let (d0, q0) = &mut a[0];
    let (d1, q1) = &mut b[0];
    // A second RQ on the same CQ.
    let mut p = d1.fresh_wq(3, 4);
    (p.pd, p.cqn, p.lkey) = (q1.pd, q1.rx_cq.cqn, q1.lkey);
    let mut rq2 = d1.create_rq(&mut nic, &p);
    d1.post_recv_buffers(&mut q1.rq, 8);
    d1.post_recv_buffers(&mut rq2, 8);
    let rqt = d1.create(&mut nic, &create_rqt_input(2, &[q1.rq.rqn, rq2.rqn]));
    let tir = d1.create(
        &mut nic,
        &create_indirect_tir_input(q1.td, rqt, rx_hash_fn::TOEPLITZ, &key, selector),
    );
    let table = d1.create(&mut nic, &create_flow_table_input(0, 2));
    let group = d1.create(&mut nic, &create_flow_group_input(table, 0, 0, &[0; 0x40]));
    d1.ok(
        &mut nic,
        &set_fte_input(table, group, 0, &[0; 0x40], Some(tir)),
        0x10,
    );
    d1.ok(&mut nic, &set_root_input(table), 0x10);
    let mut want = Vec::new();
    for host in 1..=8u8 {
        let mut f = udp_broadcast();
        f[29] = host;
        packet::insert_checksums(&mut f, true, false);
        let hash = packet::toeplitz(&key, &[10, 0, 0, host, 10, 0, 0, 255]);
        want.push((
            hash,
            if hash.is_multiple_of(2) {
                q1.rq.rqn
            } else {
                rq2.rqn
            },
        ));
        d0.send(&mut nic, &mut q0.sq, &f, 14, false);
    }
    let rx = d1.poll_cq(&mut q1.rx_cq);
    assert_eq!(rx.len(), 8);
    // Each CQE carries the hash; its RQ is the one the hash picks (RQ WQE counters tell).
    let mut per_rq = [0u16; 2];
    for (c, (hash, rqn)) in rx.iter().zip(&want) {
        assert_eq!(c.rss_hash_result, *hash);
        assert_eq!(c.rss_hash_type, mlx5_hw::cqe::rss_hash_type::IPV4);
        let k = usize::from(*rqn != q1.rq.rqn);
        assert_eq!(c.wqe_counter, per_rq[k]);
        per_rq[k] += 1;
    }
    assert!(per_rq[0] > 0 && per_rq[1] > 0, "both RQs used: {per_rq:?}");
}

#[test]
fn a_cvlan_tag_is_stripped_into_the_cqe_unless_the_rq_keeps_it() {
    let (mut nic, mut v) = vfs(2);
    let (d1, q1) = &mut v[1];
    let bufs = d1.post_recv_buffers(&mut q1.rq, 4);
    let untagged = broadcast_frame(SRC0, 80, 4);
    let tagged = packet::insert_vlan(&untagged, 0x2005, false).unwrap();
    // The RQ was created with vsd (keep tags).
    let (d0, q0) = &mut v[0];
    d0.send(&mut nic, &mut q0.sq, &tagged, 18, false);
    let (d1, q1) = &mut v[1];
    let rx = d1.poll_cq(&mut q1.rx_cq);
    assert!(!rx[0].vlan_stripped);
    assert_eq!(read(d1, bufs[0], tagged.len()), tagged);
    // MODIFY_RQ RDY → RDY with the vsd bit: strip.
    let mut m = input(Opcode::ModifyRq, 0, ModifyRqIn::<&[u8]>::LEN);
    {
        let mut i = ModifyRqIn::new_checked(&mut m[..]).unwrap();
        i.set_rqn(q1.rq.rqn);
        i.set_rq_state(1);
        i.set_modify_bitmask(modify_bitmask::RQ_VSD);
        let mut c = i.rq_context_mut();
        c.set_state(QueueState::Ready);
        c.set_vsd(false);
    }
    d1.ok(&mut nic, &m, 0x10);
    let (d0, q0) = &mut v[0];
    d0.send(&mut nic, &mut q0.sq, &tagged, 18, false);
    let (d1, q1) = &mut v[1];
    let rx: Vec<CqeRepr> = d1.poll_cq(&mut q1.rx_cq);
    assert!(rx[0].vlan_stripped);
    assert_eq!(rx[0].vlan_info, 0x2005);
    assert_eq!(rx[0].byte_cnt as usize, untagged.len());
    assert_eq!(read(d1, bufs[1], untagged.len()), untagged);
    let _ = QueryRqOut::<&[u8]>::LEN;
}

#[test]
fn a_hostile_vf_changes_nothing_of_another_vfs_queues() {
    let (mut nic, mut v) = vfs(3);
    {
        let (d2, q2) = &mut v[2];
        d2.post_recv_buffers(&mut q2.rq, 8);
    }
    let before = (
        nic.function_state(VF0).unwrap().clone(),
        nic.function_counters(VF0).unwrap(),
    );
    let vf0_sqn = v[0].1.sq.sqn;
    let (d1, q1) = &mut v[1];
    // Garbage WQEs, doorbells with garbage, doorbells to VF0's SQ number, wild records.
    let mut x: u32 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for round in 0..200 {
        let mut raw = [0u8; 64];
        for b in raw.chunks_mut(4) {
            b.copy_from_slice(&next().to_be_bytes());
        }
        if round % 3 == 0 {
            raw[3] = 0x0a;
            raw[7] = (raw[7] % 4) + 1;
        }
        d1.post_raw_wqe(&mut q1.sq, &raw);
        d1.write(q1.sq.dbr + 4, &(next() & 0x1F).to_be_bytes());
        let mut db = [0u8; 8];
        db.copy_from_slice(&raw[..8]);
        if round % 2 == 0 {
            let sqn = if round % 4 == 0 { q1.sq.sqn } else { vf0_sqn };
            db[4..7].copy_from_slice(&sqn.to_be_bytes()[1..]);
        }
        d1.sq_doorbell_raw(&mut nic, q1.uar, &db);
        if round % 50 == 0 {
            // Recover to keep executing garbage.
            let _ = d1.modify_sq(&mut nic, q1.sq.sqn, QueueState::Error, QueueState::Reset);
            let _ = d1.modify_sq(&mut nic, q1.sq.sqn, QueueState::Reset, QueueState::Ready);
            q1.sq.pc = 0;
        }
    }
    let after = (
        nic.function_state(VF0).unwrap().clone(),
        nic.function_counters(VF0).unwrap(),
    );
    // VF0's objects and counters are as they were, except frames VF1 flooded to it (VF0 has
    // no receive WQE posted: out of buffer), which is what the E-Switch does with them.
    assert_eq!(before.0, after.0);
    let mut expected = before.1;
    expected.queues.rx_out_of_buffer = after.1.queues.rx_out_of_buffer;
    assert_eq!(expected, after.1);
    // VF0 still sends and VF2 receives it.
    let frame = broadcast_frame(SRC0, 70, 0xAA);
    let (d0, q0) = &mut v[0];
    d0.send(&mut nic, &mut q0.sq, &frame, 14, true);
    assert_eq!(d0.poll_cq(&mut q0.tx_cq)[0].opcode, CqeOpcode::Req);
    let c2 = nic.function_counters(VF2).unwrap().queues;
    assert!(c2.rx_frames >= 1);
}

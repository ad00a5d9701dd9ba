//! TX and RX of real frames through rings, the switch, the egress stage and the wire.
#![allow(clippy::unwrap_used)]

use igb_model::igb_hw::desc::{L4Type, TxContextRepr, TxDataRepr, rx};
use igb_model::igb_hw::frame::EthernetHeader;
use igb_model::igb_hw::regs::{self, DTXSWC, PfReg, VfReg};
use igb_model::igb_hw::{Iova, MacAddress, VfIndex};
use igb_model::testing::*;
use igb_model::{EgressLimits, FunctionId, LineRate, Nic, NicConfig, PcapSink, SimTime};

fn capture_config() -> NicConfig {
    NicConfig {
        capture_wire: true,
        ..NicConfig::default()
    }
}

const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);

/// The frames the wire capture holds, in order (and the capture emptied).
fn wire_frames(nic: &mut Nic) -> Vec<Vec<u8>> {
    nic.take_wire_capture()
        .into_iter()
        .map(|w| w.data.to_vec())
        .collect()
}

#[test]
fn tx_through_a_wrapping_ring_reaches_the_wire_in_order() {
    let mut nic = bring_up(2, capture_config());
    let mut r = VfRings::new(&mut nic, 0, 8, 8);
    let mut sent = Vec::new();
    for seq in 0..20u32 {
        let f = udp_frame(PEER, vf_mac(0), seq, 60 + seq as usize * 50);
        r.send(&mut nic, &f);
        sent.push(f);
        if seq % 3 == 2 {
            nic.drain();
        }
    }
    nic.drain();
    let wire = wire_frames(&mut nic);
    assert_eq!(wire, sent);
    assert_eq!(nic.vf_read(vf(0), VfReg::TDH(0)), 20 % 8);
    assert!(r.tx_done(3), "DD written back on RS descriptors");
    assert_eq!(nic.vf_read(vf(0), VfReg::VFGPTC), 20);
    let octets: usize = sent.iter().map(|f| f.len() + 4).sum();
    assert_eq!(nic.vf_read(vf(0), VfReg::VFGOTC) as usize, octets);
}

#[test]
fn rx_from_the_wire_through_a_wrapping_ring() {
    let mut nic = bring_up(1, NicConfig::default());
    let mut r = VfRings::new(&mut nic, 0, 8, 8);
    let mut got = Vec::new();
    let mut expect = Vec::new();
    for seq in 0..30u32 {
        let f = udp_frame(vf_mac(0), PEER, seq, 64 + seq as usize);
        assert_eq!(nic.inject_from_wire(&f), 1);
        expect.push(f);
        if seq % 4 == 3 {
            got.extend(r.recv(&mut nic));
        }
    }
    got.extend(r.recv(&mut nic));
    assert_eq!(got.len(), 30);
    for ((data, wb), e) in got.iter().zip(&expect) {
        assert_eq!(data, e);
        assert!(wb.end_of_packet());
        assert_eq!(wb.status_error & rx::STAT_LB, 0);
        assert_eq!(wb.pkt_info, rx::PKT_IPV4 | rx::PKT_UDP);
    }
    assert_eq!(nic.vf_read(vf(0), VfReg::VFGPRC), 30);
    assert_eq!(nic.counters().rx_no_descriptor_drops, 0);
}

#[test]
fn rx_without_free_descriptors_drops_and_counts() {
    let mut nic = bring_up(1, NicConfig::default());
    let mut r = VfRings::new(&mut nic, 0, 8, 8);
    for seq in 0..10u32 {
        nic.inject_from_wire(&udp_frame(vf_mac(0), PEER, seq, 100));
    }
    // 8 descriptors, RDT = 7: the hardware owns 7.
    assert_eq!(r.recv(&mut nic).len(), 7);
    assert_eq!(nic.vf_read(vf(0), VfReg::RQDPC(0)), 3);
    assert_eq!(nic.counters().rx_no_descriptor_drops, 3);
}

#[test]
fn rx_frame_larger_than_buffer_spans_descriptors() {
    let mut nic = bring_up(1, NicConfig::default());
    let mut r = VfRings::new(&mut nic, 0, 8, 8);
    nic.vf_write(vf(0), VfReg::SRRCTL(0), 0x8200_0001); // 1 KiB buffers
    let f = udp_frame(vf_mac(0), PEER, 1, 1514);
    nic.inject_from_wire(&f);
    let got = r.recv(&mut nic);
    assert_eq!(got.len(), 2);
    assert!(!got[0].1.end_of_packet() && got[1].1.end_of_packet());
    let joined: Vec<u8> = got.iter().flat_map(|(d, _)| d.clone()).collect();
    assert_eq!(joined, f);
}

#[test]
fn vf_to_vf_loopback_stays_off_the_wire() {
    let mut nic = bring_up(2, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 16, 16);
    let mut b = VfRings::new(&mut nic, 1, 16, 16);
    let f = udp_frame(vf_mac(1), vf_mac(0), 7, 200);
    a.send(&mut nic, &f);
    nic.drain();
    let got = b.recv(&mut nic);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, f);
    assert_ne!(
        got[0].1.status_error & rx::STAT_LB,
        0,
        "LB status for loopback"
    );
    assert!(
        nic.take_wire_capture().is_empty(),
        "unicast to a local pool is not sent out"
    );
    assert_eq!(nic.vf_read(vf(0), VfReg::VFGPTLBC), 1);
    assert_eq!(nic.vf_read(vf(1), VfReg::VFGPRLBC), 1);
    assert!(a.recv(&mut nic).is_empty(), "no loopback to the sender");
    // Broadcast: to the other VF and to the wire.
    let bc = udp_frame(MacAddress::BROADCAST, vf_mac(0), 8, 80);
    a.send(&mut nic, &bc);
    nic.drain();
    assert_eq!(b.recv(&mut nic).len(), 1);
    assert_eq!(nic.take_wire_capture().len(), 1);
    // Without VMDQ_LOOPBACK_EN everything goes to the wire.
    nic.pf_write(PfReg::DTXSWC, 0);
    a.send(&mut nic, &f);
    nic.drain();
    assert!(b.recv(&mut nic).is_empty());
    assert_eq!(nic.take_wire_capture().len(), 1);
}

/// Issue 13 item 9: a unicast frame whose destination matches a local address exactly never goes
/// to the wire; when no local pool can take it (the target's VFRE bit clear, or the sender's own
/// address without LLE) it is dropped and counted, so VFGPTC = wire + looped-only + HAC
/// (HACDISC + HACBUFF) + local drops holds.
#[test]
fn unicast_to_a_local_pool_that_cannot_receive_is_counted() {
    let mut nic = bring_up(2, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 16, 16);
    let mut b = VfRings::new(&mut nic, 1, 16, 16);
    let p0 = igb_model::igb_hw::PoolIndex::new(0).unwrap();
    // VF 1 cannot receive: its VFRE bit is clear.
    nic.pf_write(PfReg::VFRE, 0b01);
    a.send(&mut nic, &udp_frame(vf_mac(1), vf_mac(0), 1, 200));
    // VF 0 sends to its own address without LLE.
    a.send(&mut nic, &udp_frame(vf_mac(0), vf_mac(0), 2, 200));
    nic.drain();
    assert!(
        nic.take_wire_capture().is_empty(),
        "switched, never on the wire"
    );
    assert!(b.recv(&mut nic).is_empty() && a.recv(&mut nic).is_empty());
    assert_eq!(nic.counters().tx_local_drops, 2);
    assert_eq!(nic.switch_stats(p0).local_drops, 2);
    // VF 1 can receive again: looped, not dropped.
    nic.pf_write(PfReg::VFRE, 0b11);
    a.send(&mut nic, &udp_frame(vf_mac(1), vf_mac(0), 3, 200));
    // A frame to the peer goes to the wire.
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 4, 200));
    nic.drain();
    assert_eq!(b.recv(&mut nic).len(), 1);
    let wire = nic.take_wire_capture().len() as u64;
    assert_eq!(wire, 1);
    let s = nic.switch_stats(p0);
    assert_eq!((s.looped_only, s.local_drops), (1, 2));
    assert_eq!(nic.counters().tx_local_drops, 2);
    let sent = u64::from(nic.vf_read(vf(0), VfReg::VFGPTC));
    assert_eq!(sent, 4);
    assert_eq!(
        sent,
        wire + s.looped_only + s.local_drops,
        "every frame accounted for"
    );
}

#[test]
fn mac_anti_spoof_drops_and_reports() {
    let mut nic = bring_up(2, capture_config());
    nic.pf_write(
        PfReg::DTXSWC,
        regs::value(DTXSWC::VMDQ_LOOPBACK_EN::SET + DTXSWC::MAC_SPOOF.val(0b11)),
    );
    let _ = nic.pf_read(PfReg::ICR);
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(1), 1, 100)); // VF0 pretends to be VF1
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 2, 100));
    nic.drain();
    let wire = nic.take_wire_capture();
    assert_eq!(wire.len(), 1);
    assert_eq!(
        EthernetHeader::parse(&wire[0].data).unwrap().source,
        vf_mac(0)
    );
    assert_eq!(nic.counters().tx_spoofed_frames, 1);
    assert_eq!(nic.pf_read(PfReg::WVBR), 0b1);
    assert_eq!(nic.pf_read(PfReg::WVBR), 0, "WVBR is read-to-clear");
    assert_ne!(nic.pf_read(PfReg::ICR) & (1 << 28), 0, "DOUTSYNC");
    assert_eq!(
        nic.vf_read(vf(0), VfReg::VFGPTC),
        1,
        "the spoofed frame is not counted as sent"
    );
}

#[test]
fn vlan_anti_spoof_drops_foreign_tags() {
    let mut nic = bring_up(1, capture_config());
    nic.pf_write(PfReg::DTXSWC, regs::value(DTXSWC::VLAN_SPOOF.val(0b1)));
    nic.pf_write(PfReg::VLVF(0), (1 << 31) | (1 << 12) | 100);
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    let tagged = |vid: u16| {
        let mut f = udp_frame(PEER, vf_mac(0), 1, 100);
        f.splice(12..12, [0x81, 0x00, (vid >> 8) as u8, vid as u8]);
        f
    };
    let ok = tagged(100);
    let bad = tagged(200);
    a.send(&mut nic, &bad);
    a.send(&mut nic, &ok);
    nic.drain();
    let wire = nic.take_wire_capture();
    assert_eq!(wire.len(), 1);
    assert_eq!(wire[0].data.to_vec(), ok);
    assert_eq!(nic.pf_read(PfReg::WVBR), 1 << 8);
}

#[test]
fn a_ring_running_off_the_mapping_sends_every_mapped_descriptor_then_faults_on_the_first_unmapped()
{
    // The engine fetches descriptors in batches; a batch that runs past the mapping must not
    // change what happens one by one: of the 16-entry ring only descriptors 0..8 (its first 128
    // bytes) stay mapped, with the TX buffers.
    let mut nic = bring_up(1, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 16, 8);
    let f = a.func();
    nic.dma_unmap(f, Iova(IOVA_BASE)).unwrap();
    nic.dma_map(f, Iova(IOVA_BASE), 128, a.mem.clone(), 0)
        .unwrap();
    let bufs = VfRings::mem_len(16, 8) as u64 - TX_BUF_OFF;
    nic.dma_map(
        f,
        Iova(IOVA_BASE + TX_BUF_OFF),
        bufs,
        a.mem.clone(),
        TX_BUF_OFF,
    )
    .unwrap();
    let sent: Vec<Vec<u8>> = (0..12u32)
        .map(|i| udp_frame(PEER, vf_mac(0), i, 60 + 10 * i as usize))
        .collect();
    for frame in &sent {
        a.queue(frame);
    }
    a.doorbell(&mut nic);
    nic.drain();
    let wire = wire_frames(&mut nic);
    assert_eq!(wire, sent[..8], "every mapped descriptor's frame, in order");
    assert_eq!(nic.counters().dma_faults, 1);
    assert_eq!(
        nic.vf_read(vf(0), VfReg::TDH(0)),
        8,
        "stopped on the first unmapped one"
    );
    assert!(nic.vf_snapshot(vf(0)).faulted[0]);
    assert!(
        (0..8).all(|i| a.tx_done(i)),
        "DD written back on every sent descriptor"
    );
}

#[test]
fn dma_fault_stops_one_vf_while_another_keeps_running() {
    let mut nic = bring_up(2, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    let mut b = VfRings::new(&mut nic, 1, 8, 8);
    // VF0 points a descriptor at VF1's memory (same IOVA range, but VF0's IOMMU has no
    // mapping past its own 4 MiB).
    a.write_tx_desc(
        0,
        &TxDataRepr {
            buffer: IOVA_BASE + MEM_SIZE as u64 + 64,
            length: 100,
            eop: true,
            rs: true,
            ..Default::default()
        },
    );
    a.tx_tail = 1;
    a.doorbell(&mut nic);
    assert_eq!(nic.counters().dma_faults, 1);
    assert_eq!(
        nic.vf_read(vf(0), VfReg::TXDCTL(0)) & (1 << 25),
        0,
        "queue stopped"
    );
    assert!(nic.vf_snapshot(vf(0)).faulted[0]);
    assert_eq!(
        nic.vf_read(vf(0), VfReg::TDH(0)),
        0,
        "faulting descriptor not consumed"
    );
    // More work on VF0 does nothing until it is re-enabled.
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 1, 100));
    b.send(&mut nic, &udp_frame(PEER, vf_mac(1), 2, 100));
    nic.drain();
    let wire = nic.take_wire_capture();
    assert_eq!(wire.len(), 1);
    assert_eq!(
        EthernetHeader::parse(&wire[0].data).unwrap().source,
        vf_mac(1)
    );
    assert!(!nic.vf_snapshot(vf(1)).faulted[0]);
    // VF1's memory was never touched by VF0's bad descriptor.
    let mut probe = [0u8; 100];
    b.mem.read_checked(64, &mut probe);
    assert_eq!(&probe[..], &[0u8; 100][..]);
    assert_ne!(nic.pf_read(PfReg::ICR) & (1 << 28), 0);
}

#[test]
fn zero_length_descriptor_is_consumed_and_counted() {
    let mut nic = bring_up(1, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    let f = udp_frame(PEER, vf_mac(0), 1, 100);
    a.mem.write_checked(TX_BUF_OFF, &f);
    a.write_tx_desc(
        0,
        &TxDataRepr {
            buffer: IOVA_BASE + TX_BUF_OFF,
            length: 0,
            rs: true,
            ..Default::default()
        },
    );
    a.write_tx_desc(
        1,
        &TxDataRepr {
            buffer: IOVA_BASE + TX_BUF_OFF,
            length: 100,
            eop: true,
            rs: true,
            ..Default::default()
        },
    );
    a.tx_tail = 2;
    a.doorbell(&mut nic);
    nic.drain();
    assert_eq!(nic.counters().tx_zero_length_descriptors, 1);
    assert!(a.tx_done(0) && a.tx_done(1));
    assert_eq!(nic.take_wire_capture()[0].data.to_vec(), f);
}

#[test]
fn zero_length_packet_is_a_runt() {
    let mut nic = bring_up(1, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    a.write_tx_desc(
        0,
        &TxDataRepr {
            buffer: IOVA_BASE,
            length: 0,
            eop: true,
            rs: true,
            ..Default::default()
        },
    );
    a.tx_tail = 1;
    a.doorbell(&mut nic);
    nic.drain();
    assert_eq!(nic.counters().tx_runt_frames, 1);
    assert!(nic.take_wire_capture().is_empty());
    assert!(a.tx_done(0));
}

#[test]
fn oversize_frame_is_dropped_but_the_ring_moves_on() {
    let mut nic = bring_up(1, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    let big = udp_frame(PEER, vf_mac(0), 1, 1519); // 1519 + FCS > 1522
    let ok = udp_frame(PEER, vf_mac(0), 2, 1518);
    // Two 1000-byte buffers for the big frame so it crosses descriptors.
    a.mem.write_checked(TX_BUF_OFF, &big);
    a.write_tx_desc(
        0,
        &TxDataRepr {
            buffer: IOVA_BASE + TX_BUF_OFF,
            length: 1000,
            ..Default::default()
        },
    );
    a.write_tx_desc(
        1,
        &TxDataRepr {
            buffer: IOVA_BASE + TX_BUF_OFF + 1000,
            length: 519,
            eop: true,
            rs: true,
            ..Default::default()
        },
    );
    a.tx_tail = 2;
    a.send(&mut nic, &ok);
    nic.drain();
    assert_eq!(nic.counters().tx_oversize_frames, 1);
    let wire = nic.take_wire_capture();
    assert_eq!(wire.len(), 1);
    assert_eq!(wire[0].data.len(), 1518);
    assert_eq!(nic.vf_read(vf(0), VfReg::TDH(0)), 3);
    // After the PF grants jumbo frames (SET_LPE → VMOLR.LPE + RLPML) it goes out.
    let vmolr = nic.pf_read(PfReg::VMOLR(0));
    nic.pf_write(PfReg::VMOLR(0), vmolr | (1 << 16) | 9018);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 3, 1519));
    nic.drain();
    assert_eq!(nic.take_wire_capture().len(), 1);
}

#[test]
fn tail_beyond_ring_is_refused() {
    let mut nic = bring_up(1, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    a.queue(&udp_frame(PEER, vf_mac(0), 1, 100));
    nic.vf_write(vf(0), VfReg::TDT(0), 8);
    nic.drain();
    assert_eq!(nic.counters().tail_out_of_range, 1);
    assert_eq!(nic.vf_read(vf(0), VfReg::TDH(0)), 0);
    assert!(nic.take_wire_capture().is_empty());
    a.doorbell(&mut nic); // a correct tail resumes
    nic.drain();
    assert_eq!(nic.take_wire_capture().len(), 1);
}

#[test]
fn legacy_and_reserved_descriptors_are_consumed_and_counted() {
    let mut nic = bring_up(1, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    let mut legacy = [0u8; 16];
    legacy[8..12].copy_from_slice(&(60u32 | (1 << 24) | (1 << 27)).to_le_bytes()); // EOP|RS, DEXT=0
    a.write_raw_tx_desc(0, legacy);
    let mut reserved = [0u8; 16];
    reserved[8..12].copy_from_slice(&((1u32 << 29) | (0x7 << 20) | (1 << 24)).to_le_bytes());
    a.write_raw_tx_desc(1, reserved);
    a.tx_tail = 2;
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 9, 100));
    nic.drain();
    assert_eq!(nic.counters().tx_bad_descriptors, 2);
    assert_eq!(
        nic.take_wire_capture().len(),
        1,
        "the good packet after them still goes"
    );
    assert!(a.tx_done(0));
}

#[test]
fn context_descriptor_vlan_insertion_and_checksum_offload() {
    let mut nic = bring_up(1, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    let f = udp_frame(PEER, vf_mac(0), 5, 200);
    let mut ctx = [0u8; 16];
    let c = TxContextRepr {
        iplen: 20,
        maclen: 14,
        vlan: 42,
        ipv4: true,
        l4: L4Type::Udp,
        index: 1,
        ..Default::default()
    };
    c.emit(&mut igb_model::igb_hw::desc::Descriptor::new_checked(&mut ctx[..]).unwrap());
    a.write_raw_tx_desc(0, ctx);
    a.mem.write_checked(TX_BUF_OFF, &f);
    a.write_tx_desc(
        1,
        &TxDataRepr {
            buffer: IOVA_BASE + TX_BUF_OFF,
            length: 200,
            eop: true,
            rs: true,
            vle: true,
            ixsm: true,
            context_index: 1,
            ..Default::default()
        },
    );
    a.tx_tail = 2;
    a.doorbell(&mut nic);
    nic.drain();
    let out = nic.take_wire_capture().remove(0).data;
    let h = EthernetHeader::parse(&out).unwrap();
    assert_eq!(h.vlan_id(), Some(42));
    assert_eq!(out.len(), 204);
    let ip = &out[18..38];
    let sum = igb_model::offload::ones_complement_add(0, ip);
    assert_eq!(
        igb_model::offload::fold_complement(sum),
        0,
        "valid IPv4 header checksum"
    );
}

#[test]
fn tso_segments_on_the_wire() {
    let mut nic = bring_up(1, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    let mut f = udp_frame(PEER, vf_mac(0), 0, 54);
    f[23] = 6; // TCP
    f.truncate(34);
    f.extend_from_slice(&[
        0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0,
    ]);
    f.extend((0..4000u32).map(|i| i as u8));
    let mut ctx = [0u8; 16];
    let c = TxContextRepr {
        iplen: 20,
        maclen: 14,
        ipv4: true,
        l4: L4Type::Tcp,
        l4len: 20,
        mss: 1460,
        ..Default::default()
    };
    c.emit(&mut igb_model::igb_hw::desc::Descriptor::new_checked(&mut ctx[..]).unwrap());
    a.write_raw_tx_desc(0, ctx);
    // The 4054-byte packet in three buffers.
    a.mem.write_checked(TX_BUF_OFF, &f);
    let parts = [(0usize, 1500usize), (1500, 1500), (3000, f.len() - 3000)];
    for (k, &(off, len)) in parts.iter().enumerate() {
        a.write_tx_desc(
            1 + k as u32,
            &TxDataRepr {
                buffer: IOVA_BASE + TX_BUF_OFF + off as u64,
                length: len as u16,
                eop: k == 2,
                rs: k == 2,
                tse: true,
                txsm: true,
                ixsm: true,
                paylen: 4000,
                ..Default::default()
            },
        );
    }
    a.tx_tail = 4;
    a.doorbell(&mut nic);
    nic.drain();
    let wire = nic.take_wire_capture();
    assert_eq!(
        wire.iter().map(|w| w.data.len()).collect::<Vec<_>>(),
        vec![1514, 1514, 1134]
    );
    let payload: Vec<u8> = wire.iter().flat_map(|w| w.data[54..].to_vec()).collect();
    assert_eq!(payload, f[54..].to_vec());
}

/// Issue 13 item 7: one doorbell does a bounded amount of work. A ring of 60 KB TSO packets
/// whose segmentation fails (no context: MSS 0) is dropped packet by packet without ever
/// filling the egress stage; the doorbell stops after one run's budget and the rest continues
/// as device time advances, every packet counted. A full ring of normal frames still goes in
/// one doorbell.
#[test]
fn one_doorbell_does_bounded_work_and_the_rest_continues_on_the_next_tick() {
    use igb_model::testing::MAX_RING;
    let mut nic = bring_up(1, capture_config());
    let mut a = VfRings::new(&mut nic, 0, MAX_RING, 8);
    const LEN: u16 = 60_000;
    let n = MAX_RING - 1;
    a.fill_tx_with_failing_tso(n, LEN);
    a.doorbell(&mut nic);
    let per_run = (1 << 20) / u32::from(LEN) + 1;
    assert_eq!(
        nic.vf_read(vf(0), VfReg::TDH(0)),
        per_run,
        "one run's budget"
    );
    assert_eq!(nic.counters().tx_offload_errors, u64::from(per_run));
    assert_eq!(nic.counters().tx_run_budget_stops, 1);
    // The rest continues as device time advances, paced at line rate: a run reads about
    // 1 MiB, which takes the 10 Gb/s port 0.84 ms, so a 1 ms tick allows one run or two.
    let mut ticks = 0;
    let mut head = nic.vf_read(vf(0), VfReg::TDH(0));
    while head != n {
        nic.advance_by(1_000_000);
        let now = nic.vf_read(vf(0), VfReg::TDH(0));
        assert!(now > head, "no progress in tick {ticks}");
        assert!(
            now - head <= 2 * per_run,
            "tick {ticks}: {} descriptors",
            now - head
        );
        head = now;
        ticks += 1;
    }
    assert!(ticks >= (n / per_run) / 2, "{ticks} ticks");
    assert_eq!(
        nic.counters().tx_offload_errors,
        u64::from(n),
        "every packet counted"
    );
    assert!(a.tx_done(n - 1));
    assert!(nic.take_wire_capture().is_empty());

    // Normal traffic is not affected: a full ring of 1514-byte frames in one doorbell.
    let mut nic = bring_up(1, capture_config());
    nic.set_egress_limits(EgressLimits {
        bytes: 1 << 20,
        frames: 1024,
    });
    let mut a = VfRings::new(&mut nic, 0, MAX_RING, 8);
    for s in 0..n {
        a.queue(&udp_frame(PEER, vf_mac(0), s, 1514));
    }
    a.doorbell(&mut nic);
    assert_eq!(nic.vf_read(vf(0), VfReg::TDH(0)), n);
    assert_eq!(nic.counters().tx_run_budget_stops, 0);
    nic.drain();
    assert_eq!(nic.take_wire_capture().len(), n as usize);
}

#[test]
fn wire_drains_at_line_rate_with_framing_overhead() {
    let cfg = NicConfig {
        line_rate: LineRate::G1,
        capture_wire: true,
        ..NicConfig::default()
    };
    let mut nic = bring_up(1, cfg);
    let mut a = VfRings::new(&mut nic, 0, 128, 8);
    for seq in 0..100 {
        a.queue(&udp_frame(PEER, vf_mac(0), seq, 1514));
    }
    a.doorbell(&mut nic);
    let end = nic.drain();
    // (8 + 1518 + 12) bytes · 8 bit / 1 Gb/s = 12.304 µs per frame.
    assert_eq!(end, SimTime(100 * 12_304));
    let wire = nic.take_wire_capture();
    assert_eq!(wire[1].at.as_nanos() - wire[0].at.as_nanos(), 12_304);
    assert_eq!(nic.wire_totals(), (100, 151_400, 1_230_400));
}

#[test]
fn advance_to_sends_only_what_fits_in_time() {
    let cfg = NicConfig {
        line_rate: LineRate::G1,
        capture_wire: true,
        ..NicConfig::default()
    };
    let mut nic = bring_up(1, cfg);
    let mut a = VfRings::new(&mut nic, 0, 16, 8);
    for seq in 0..10 {
        a.queue(&udp_frame(PEER, vf_mac(0), seq, 1514));
    }
    a.doorbell(&mut nic);
    nic.advance_to(SimTime(3 * 12_304));
    // Frames start at 0, 12304, 24608 and 36912: four have started by t = 36912.
    assert_eq!(nic.take_wire_capture().len(), 4);
    nic.advance_by(1_000_000);
    assert_eq!(nic.take_wire_capture().len(), 6);
}

#[test]
fn backpressure_stops_the_ring_instead_of_dropping() {
    let cfg = NicConfig {
        line_rate: LineRate::G1,
        capture_wire: true,
        egress_limits: EgressLimits {
            bytes: 4 * 1522,
            frames: 4,
        },
        ..NicConfig::default()
    };
    let mut nic = bring_up(1, cfg);
    let mut a = VfRings::new(&mut nic, 0, 64, 8);
    for seq in 0..40 {
        a.queue(&udp_frame(PEER, vf_mac(0), seq, 1514));
    }
    a.doorbell(&mut nic);
    assert_eq!(
        nic.egress()
            .occupancy(igb_model::vport(VfIndex::new(0).unwrap().pool()))
            .0,
        4
    );
    assert_eq!(
        nic.vf_read(vf(0), VfReg::TDH(0)),
        4,
        "the engine stopped fetching"
    );
    assert!(!a.tx_done(4));
    assert_eq!(nic.counters().tx_backpressure_stalls, 1);
    nic.drain();
    let wire = nic.take_wire_capture();
    assert_eq!(wire.len(), 40, "nothing lost");
    for (i, w) in wire.iter().enumerate() {
        assert_eq!(&w.data[42..46], &(i as u32).to_be_bytes(), "in order");
    }
    assert_eq!(nic.vf_read(vf(0), VfReg::TDH(0)), 40);
}

#[test]
fn round_robin_between_vfs_on_the_wire() {
    let mut nic = bring_up(2, capture_config());
    let mut a = VfRings::new(&mut nic, 0, 16, 8);
    let mut b = VfRings::new(&mut nic, 1, 16, 8);
    for seq in 0..3 {
        a.queue(&udp_frame(PEER, vf_mac(0), seq, 100));
        b.queue(&udp_frame(PEER, vf_mac(1), seq, 100));
    }
    a.doorbell(&mut nic);
    b.doorbell(&mut nic);
    nic.drain();
    let srcs: Vec<u8> = nic.take_wire_capture().iter().map(|w| w.data[11]).collect();
    assert_eq!(srcs, vec![0x10, 0x11, 0x10, 0x11, 0x10, 0x11]);
}

#[test]
fn tx_and_rx_interrupts_follow_ivar_with_auto_clear() {
    let mut nic = bring_up(1, NicConfig::default());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    nic.vf_write(vf(0), VfReg::EIAC, 0x7);
    nic.vf_write(vf(0), VfReg::EIMS, 0x3);
    nic.take_interrupts();
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 1, 100));
    let irqs = nic.take_interrupts();
    assert_eq!(
        irqs.iter()
            .map(|i| (i.function, i.vector))
            .collect::<Vec<_>>(),
        vec![(FunctionId::Vf(vf(0)), 0)]
    );
    assert_eq!(nic.vf_read(vf(0), VfReg::EICR), 0, "auto-cleared by EIAC");
    nic.inject_from_wire(&udp_frame(vf_mac(0), PEER, 2, 100));
    assert_eq!(nic.take_interrupts()[0].vector, 1);
    // Masked cause: recorded in EICR, no message; unmasking fires it.
    nic.vf_write(vf(0), VfReg::EIAC, 0);
    nic.vf_write(vf(0), VfReg::EIMC, 0x2);
    nic.inject_from_wire(&udp_frame(vf_mac(0), PEER, 3, 100));
    assert!(nic.take_interrupts().is_empty());
    nic.vf_write(vf(0), VfReg::EIMS, 0x2);
    assert_eq!(nic.take_interrupts().len(), 1);
    assert_eq!(nic.vf_read(vf(0), VfReg::EICR), 0x2);
    assert_eq!(nic.vf_read(vf(0), VfReg::EICR), 0, "read to clear");
    // EICS raises a software cause.
    nic.vf_write(vf(0), VfReg::EICS, 0x2);
    assert_eq!(nic.take_interrupts().len(), 1);
}

/// Interrupts a TX run causes are raised in the order it caused them: the receiver's RX
/// interrupt of a looped-back frame (raised while the switch delivers it) before the sender's TX
/// write-back interrupt (at the end of the run), and the handler sees the same order.
#[test]
fn a_tx_run_raises_its_interrupts_in_the_order_it_caused_them() {
    let mut nic = bring_up(2, NicConfig::default());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    let mut b = VfRings::new(&mut nic, 1, 8, 8);
    for n in 0..2 {
        nic.vf_write(vf(n), VfReg::EIMS, 0x3);
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    nic.set_interrupt_handler(Box::new(move |i| log.lock().unwrap().push(i)));
    nic.take_interrupts();
    a.send(&mut nic, &udp_frame(vf_mac(1), vf_mac(0), 1, 100));
    let order: Vec<_> = nic
        .take_interrupts()
        .iter()
        .map(|i| (i.function, i.vector))
        .collect();
    assert_eq!(
        order,
        vec![(FunctionId::Vf(vf(1)), 1), (FunctionId::Vf(vf(0)), 0)]
    );
    let handled: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|i| (i.function, i.vector))
        .collect();
    assert_eq!(handled, order);
    assert_eq!(b.recv(&mut nic).len(), 1);
}

#[test]
fn masked_msix_vector_sets_pba_until_unmasked() {
    let mut nic = bring_up(1, NicConfig::default());
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    let f = FunctionId::Vf(vf(0));
    nic.bar_write(f, 3, 12, &1u32.to_le_bytes()); // mask vector 0
    nic.vf_write(vf(0), VfReg::EIMS, 0x1);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 1, 100));
    assert!(nic.take_interrupts().is_empty());
    let mut pba = [0u8; 4];
    nic.bar_read(f, 3, 0x2000, &mut pba);
    assert_eq!(u32::from_le_bytes(pba), 1);
    nic.bar_write(f, 3, 12, &0u32.to_le_bytes());
    assert_eq!(nic.take_interrupts().len(), 1);
}

#[test]
fn pcap_sink_is_readable_and_timestamps_are_virtual() {
    let cfg = NicConfig {
        line_rate: LineRate::G10,
        ..NicConfig::default()
    };
    let mut nic = bring_up(1, cfg);
    let path = std::env::temp_dir().join(format!("model-pcap-{}.pcap", std::process::id()));
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    nic.add_wire_sink(Box::new(PcapSink::new(file).unwrap()));
    let mut a = VfRings::new(&mut nic, 0, 8, 8);
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 1, 60));
    a.send(&mut nic, &udp_frame(PEER, vf_mac(0), 2, 60));
    nic.drain();
    nic.flush_wire_sinks();
    let b = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(b.len(), 24 + 2 * (16 + 60));
    let ts_ns = |at: usize| u32::from_le_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]);
    assert_eq!(ts_ns(24), 0);
    assert_eq!(
        ts_ns(24 + 76),
        68,
        "second frame starts one 64-byte slot later at 10 Gb/s"
    );
}

#[test]
fn runs_are_deterministic() {
    fn run() -> Vec<(u64, Vec<u8>)> {
        let mut nic = bring_up(3, capture_config());
        let mut rings: Vec<VfRings> = (0..3).map(|n| VfRings::new(&mut nic, n, 32, 8)).collect();
        for step in 0..200u32 {
            let n = (step * 7 % 3) as usize;
            let len = 60 + (step as usize * 37) % 1400;
            rings[n].send(&mut nic, &udp_frame(PEER, vf_mac(n), step, len));
            nic.advance_by(u64::from(step % 5) * 300);
        }
        nic.drain();
        nic.take_wire_capture()
            .into_iter()
            .map(|w| (w.at.as_nanos(), w.data.to_vec()))
            .collect()
    }
    let a = run();
    assert_eq!(a.len(), 200);
    assert_eq!(a, run());
}

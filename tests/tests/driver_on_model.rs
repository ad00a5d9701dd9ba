//! The unchanged driver against the model: init, MACs, traffic, drops, mailbox errors, resets,
//! link.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use hac_driver::error::DriverError;
use hac_driver::mailbox::MailboxConfig;
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma, SharedPfAgent};
use hac_driver::pf::{PfConfig, PfEvent};
use hac_driver::vf::{LinkState, MacSource, VfConfig, VfDriver};
use igb_hw::regs::{CTRL, PfReg};
use igb_hw::{MacAddress, VfIndex};
use igb_model::{FunctionId, NicConfig, testing};

type Vf = VfDriver<ModelBar, ModelDma, ModelClock>;
type Pf = SharedPfAgent;

fn vf_fn(n: usize) -> FunctionId {
    FunctionId::Vf(VfIndex::new(n).unwrap())
}

/// A model with `num_vfs` VFs and the PF agent running as a service.
fn world(num_vfs: usize, admin_macs: &[Option<MacAddress>]) -> (Model, Pf) {
    let model = Model::new(NicConfig {
        capture_wire: true,
        ..NicConfig::default()
    });
    let pf = model
        .start_pf_agent(
            PfConfig {
                num_vfs,
                ..PfConfig::default()
            },
            admin_macs,
        )
        .unwrap();
    (model, pf)
}

fn vf(model: &Model, n: usize, config: VfConfig) -> Result<Vf, DriverError> {
    model.vf_driver(testing::vf(n), config)
}

fn mac(n: u8) -> MacAddress {
    MacAddress([0x02, 0x00, 0x00, 0x00, 0x01, n])
}

fn frame(dst: MacAddress, src: MacAddress, seq: u64, len: usize) -> Bytes {
    let mut f = igb_hw::frame::build(dst, src, 0x88B5, &seq.to_be_bytes());
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while f.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        f.push(x as u8);
    }
    Bytes::from(f)
}

#[test]
fn init_takes_the_mac_from_the_pf_reply() {
    let (model, pf) = world(2, &[Some(mac(1)), Some(mac(2))]);
    let d = vf(&model, 1, VfConfig::default()).unwrap();
    assert_eq!(d.mac(), mac(2));
    assert_eq!(d.mac_source(), MacSource::Pf);
    // Like Linux igb, the PF refuses SET_MAC_ADDR from a VF whose MAC the administrator set
    // (even the same MAC); the driver keeps the PF's MAC and carries on (found on QEMU's igb).
    let events = pf.lock().unwrap().take_events();
    assert!(
        events.contains(&PfEvent::Message {
            vf: testing::vf(1),
            id: 2,
            ack: false
        }),
        "{events:?}"
    );
    let info = pf.lock().unwrap().vf(testing::vf(1)).cloned().unwrap();
    assert!(info.cts);
    assert_eq!(info.mac, Some(mac(2)));
    assert_eq!(info.max_frame, 1500 + 14 + 4 + 4);
    assert_eq!(model.nic().pf_read(PfReg::VFTE) & 0b10, 0b10);
}

#[test]
fn init_without_a_pf_mac_chooses_one_and_sets_it() {
    let (model, pf) = world(1, &[None]);
    let d = vf(
        &model,
        0,
        VfConfig {
            mac_seed: 7,
            ..VfConfig::default()
        },
    )
    .unwrap();
    assert_eq!(d.mac_source(), MacSource::Driver);
    assert!(d.mac().is_local() && d.mac().is_valid_unicast());
    let events = pf.lock().unwrap().take_events();
    assert!(
        events.contains(&PfEvent::Message {
            vf: testing::vf(0),
            id: 1,
            ack: false
        }),
        "VF_RESET NACKed: {events:?}"
    );
    assert!(
        events.contains(&PfEvent::Message {
            vf: testing::vf(0),
            id: 2,
            ack: true
        }),
        "SET_MAC_ADDR accepted"
    );
    assert_eq!(
        pf.lock().unwrap().vf(testing::vf(0)).unwrap().mac,
        Some(d.mac())
    );
    // The same seed gives the same MAC (reproducible runs).
    let (model2, _pf2) = world(1, &[None]);
    assert_eq!(
        vf(
            &model2,
            0,
            VfConfig {
                mac_seed: 7,
                ..VfConfig::default()
            }
        )
        .unwrap()
        .mac(),
        d.mac()
    );
}

#[test]
fn hundred_thousand_frames_vf_to_vf_with_payloads_checked() {
    let (model, _pf) = world(2, &[Some(mac(1)), Some(mac(2))]);
    let cfg = VfConfig {
        tx_ring_size: 256,
        rx_ring_size: 512,
        ..VfConfig::default()
    };
    let mut a = vf(&model, 0, cfg.clone()).unwrap();
    let mut b = vf(&model, 1, cfg).unwrap();
    const N: u64 = 100_000;
    let mut sent = 0u64;
    let mut got = 0u64;
    let mut rx = Vec::with_capacity(64);
    let start = std::time::Instant::now();
    while got < N {
        let batch: Vec<Bytes> = (sent..N.min(sent + 32))
            .map(|s| frame(mac(2), mac(1), s, 60 + (s % 1400) as usize))
            .collect();
        if !batch.is_empty() {
            sent += a.send(&batch).unwrap() as u64;
        }
        rx.clear();
        b.recv(&mut rx, 64);
        for f in &rx {
            let expect = frame(mac(2), mac(1), got, 60 + (got % 1400) as usize);
            assert_eq!(f, &expect, "frame {got}");
            got += 1;
        }
        model.run_for(1_000);
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "VF→VF: {N} frames in {secs:.2} s wall = {:.0} frames/s",
        N as f64 / secs
    );
    let sa = a.stats();
    let sb = b.stats();
    assert_eq!(sa.tx_packets, N);
    assert_eq!(sb.rx_packets, N);
    assert_eq!(sb.rx_dropped, 0);
    assert!(
        model.nic().take_wire_capture().is_empty(),
        "all switched locally"
    );
}

#[test]
fn rx_drops_when_no_buffers_are_posted() {
    let (model, _pf) = world(2, &[Some(mac(1)), Some(mac(2))]);
    let mut a = vf(
        &model,
        0,
        VfConfig {
            tx_ring_size: 64,
            ..VfConfig::default()
        },
    )
    .unwrap();
    let mut b = vf(
        &model,
        1,
        VfConfig {
            rx_ring_size: 16,
            ..VfConfig::default()
        },
    )
    .unwrap();
    let batch: Vec<Bytes> = (0..40).map(|s| frame(mac(2), mac(1), s, 100)).collect();
    assert_eq!(a.send(&batch).unwrap(), 40);
    let mut rx = Vec::new();
    assert_eq!(b.recv(&mut rx, 100), 15, "RDT = size − 1: 15 buffers");
    assert_eq!(b.stats().rx_dropped, 25);
    // Buffers are recycled: traffic flows again.
    assert_eq!(a.send(&batch[..10]).unwrap(), 10);
    rx.clear();
    assert_eq!(b.recv(&mut rx, 100), 10);
    assert_eq!(rx[0], batch[0]);
}

#[test]
fn tx_ring_full_returns_a_partial_count() {
    let (model, _pf) = world(1, &[Some(mac(1))]);
    let mut a = vf(
        &model,
        0,
        VfConfig {
            tx_ring_size: 8,
            ..VfConfig::default()
        },
    )
    .unwrap();
    // Stall the wire so nothing completes: drop TCTL.EN.
    model.nic().pf_write(PfReg::TCTL, 0);
    let batch: Vec<Bytes> = (0..20).map(|s| frame(mac(9), mac(1), s, 100)).collect();
    assert_eq!(a.send(&batch).unwrap(), 7, "one slot always stays free");
    assert_eq!(a.send(&batch).unwrap(), 0);
    model.nic().pf_write(PfReg::TCTL, 0b1010);
    model.run_for(100_000);
    assert_eq!(a.reclaim(), 7);
    assert_eq!(a.send(&batch[7..]).unwrap(), 7);
}

#[test]
fn mailbox_timeout_without_a_pf_agent() {
    let model = Model::new(NicConfig::default());
    {
        let mut nic = model.nic();
        nic.enable_sriov(1);
        nic.pf_write(PfReg::CTRL_EXT, 1 << 14);
        nic.config_write(vf_fn(0), 4, &4u16.to_le_bytes());
    }
    let cfg = VfConfig {
        mailbox: MailboxConfig {
            timeout_ns: 5_000_000,
            ..MailboxConfig::default()
        },
        ..VfConfig::default()
    };
    match vf(&model, 0, cfg) {
        Err(DriverError::MailboxTimeout { waiting_for, .. }) => {
            assert_eq!(waiting_for, "acknowledge")
        }
        Err(e) => panic!("expected a mailbox timeout, got {e}"),
        Ok(_) => panic!("expected a mailbox timeout"),
    }
}

#[test]
fn pf_in_reset_is_reported() {
    let model = Model::new(NicConfig::default());
    {
        let mut nic = model.nic();
        nic.enable_sriov(1);
        nic.pf_write(PfReg::CTRL, igb_hw::regs::value(CTRL::RST::SET)); // RSTI, never PFRSTD
        nic.config_write(vf_fn(0), 4, &4u16.to_le_bytes());
    }
    let cfg = VfConfig {
        mailbox: MailboxConfig {
            timeout_ns: 2_000_000,
            ..MailboxConfig::default()
        },
        ..VfConfig::default()
    };
    assert!(matches!(vf(&model, 0, cfg), Err(DriverError::PfInReset)));
}

#[test]
fn nack_paths_are_typed_errors() {
    let (model, pf) = world(1, &[Some(mac(1))]);
    let mut a = vf(&model, 0, VfConfig::default()).unwrap();
    assert!(matches!(
        a.set_promiscuous(true, false),
        Err(DriverError::Nack { id: 6 })
    ));
    a.set_promiscuous(false, true).unwrap();
    // The administrator fixed the MAC: the VF may not change it.
    assert!(matches!(
        a.set_mac(mac(7)),
        Err(DriverError::Nack { id: 2 })
    ));
    assert_eq!(a.mac(), mac(1));
    assert!(matches!(
        a.set_mac(MacAddress::BROADCAST),
        Err(DriverError::InvalidMac(_))
    ));
    assert!(matches!(
        a.set_mtu(9217),
        Err(DriverError::InvalidMtu(9217))
    ));
    a.set_mtu(9000).unwrap();
    assert_eq!(
        pf.lock().unwrap().vf(testing::vf(0)).unwrap().max_frame,
        9022
    );
    a.set_vlan(100, true).unwrap();
    assert_eq!(
        pf.lock().unwrap().vf(testing::vf(0)).unwrap().vlans,
        vec![100]
    );
    a.set_multicast(&[MacAddress([0x01, 0x00, 0x5e, 0, 0, 0xfb])])
        .unwrap();
    assert_eq!(
        pf.lock().unwrap().vf(testing::vf(0)).unwrap().multicast,
        vec![0xfb0]
    );
}

#[test]
fn vf_reset_in_the_middle_of_traffic() {
    let (model, pf) = world(2, &[Some(mac(1)), Some(mac(2))]);
    let mut a = vf(&model, 0, VfConfig::default()).unwrap();
    let mut b = vf(&model, 1, VfConfig::default()).unwrap();
    let mut rx = Vec::new();
    for round in 0..3u64 {
        let batch: Vec<Bytes> = (0..50)
            .map(|s| frame(mac(2), mac(1), round * 100 + s, 200))
            .collect();
        assert_eq!(a.send(&batch).unwrap(), 50);
        model.run_for(10_000);
        rx.clear();
        assert_eq!(b.recv(&mut rx, 100), 50, "round {round}");
        assert_eq!(rx, batch);
        // Reset the receiver between rounds; it comes back with the same MAC.
        b.reset().unwrap();
        assert_eq!(b.mac(), mac(2));
    }
    let info = pf.lock().unwrap().vf(testing::vf(1)).cloned().unwrap();
    assert_eq!(
        (info.resets, info.reset_events),
        (1 + 3, 1 + 3),
        "init + three resets"
    );
    // Reset the sender with frames queued but not yet sent: they are lost, nothing breaks.
    model.nic().pf_write(PfReg::TCTL, 0);
    let batch: Vec<Bytes> = (0..20)
        .map(|s| frame(mac(2), mac(1), 1000 + s, 100))
        .collect();
    a.send(&batch).unwrap();
    a.reset().unwrap();
    model.nic().pf_write(PfReg::TCTL, 0b1010);
    assert_eq!(a.send(&batch[..5]).unwrap(), 5);
    model.run_for(10_000);
    rx.clear();
    b.recv(&mut rx, 100);
    assert_eq!(rx, batch[..5].to_vec());
}

#[test]
fn link_follows_the_pf() {
    let (model, _pf) = world(1, &[Some(mac(1))]);
    let mut a = vf(&model, 0, VfConfig::default()).unwrap();
    assert_eq!(a.link(), LinkState::Up);
    model.nic().pf_write(PfReg::CTRL, 0);
    assert_eq!(a.link(), LinkState::Down);
    model
        .nic()
        .pf_write(PfReg::CTRL, igb_hw::regs::value(CTRL::SLU::SET));
    assert_eq!(a.link(), LinkState::Up);
    model
        .nic()
        .pf_write(PfReg::CTRL, igb_hw::regs::value(CTRL::RST::SET));
    assert_eq!(a.link(), LinkState::PfReset);
}

#[test]
fn frames_reach_the_wire_and_come_back() {
    let (model, _pf) = world(1, &[Some(mac(1))]);
    let mut a = vf(&model, 0, VfConfig::default()).unwrap();
    let peer = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
    let out: Vec<Bytes> = (0..10).map(|s| frame(peer, mac(1), s, 1514)).collect();
    a.send(&out).unwrap();
    model.run_for(1_000_000);
    let wire: Vec<Bytes> = model
        .nic()
        .take_wire_capture()
        .into_iter()
        .map(|w| w.data)
        .collect();
    assert_eq!(wire, out);
    let back = frame(mac(1), peer, 99, 300);
    assert_eq!(model.nic().inject_from_wire(&back), 1);
    let mut rx = Vec::new();
    a.recv(&mut rx, 10);
    assert_eq!(rx, vec![back]);
    assert!(
        a.send(&[frame(peer, mac(1), 0, 1519)]).is_err(),
        "over the MTU"
    );
}

#[test]
fn spoofed_source_is_dropped_by_the_pf_policy() {
    let (model, _pf) = world(2, &[Some(mac(1)), Some(mac(2))]);
    let mut a = vf(&model, 0, VfConfig::default()).unwrap();
    let peer = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
    a.send(&[frame(peer, mac(2), 0, 100), frame(peer, mac(1), 1, 100)])
        .unwrap();
    model.run_for(100_000);
    assert_eq!(model.nic().take_wire_capture().len(), 1);
    assert_eq!(model.nic().counters().tx_spoofed_frames, 1);
}

#[test]
fn checksum_offload_through_a_context_descriptor() {
    use hac_driver::ring::TxOffload;
    use igb_hw::desc::{L4Type, TxContextRepr};
    let (model, _pf) = world(1, &[Some(mac(1))]);
    let mut a = vf(&model, 0, VfConfig::default()).unwrap();
    // IPv4/UDP 192.0.2.1 → 192.0.2.2 with zero IP checksum and the UDP field seeded with the
    // pseudo-header sum, as Linux does for CHECKSUM_PARTIAL.
    let payload = b"checksummed by the adapter";
    let udp_len = 8 + payload.len();
    let mut f = igb_hw::frame::build(MacAddress([2, 0xAA, 0, 0, 0, 1]), mac(1), 0x0800, &[]);
    let total = (20 + udp_len) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0,
        0,
        64,
        17,
        0,
        0,
        192,
        0,
        2,
        1,
        192,
        0,
        2,
        2,
    ]);
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, udp_len as u8, 0, 0]);
    f.extend_from_slice(payload);
    let add = |mut s: u32, d: &[u8]| {
        for c in d.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        s
    };
    let fold = |mut s: u32| {
        while s >> 16 != 0 {
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    };
    let pseudo = fold(add(add(0, &f[26..34]), &[0, 17, 0, udp_len as u8]));
    f[40..42].copy_from_slice(&pseudo.to_be_bytes());
    let off = TxOffload {
        context: TxContextRepr {
            maclen: 14,
            iplen: 20,
            ipv4: true,
            l4: L4Type::Udp,
            ..Default::default()
        },
        ipv4_checksum: true,
        l4_checksum: true,
    };
    assert!(a.send_offloaded(&f, &off).unwrap());
    model.run_for(100_000);
    let out = model.nic().take_wire_capture().remove(0).data;
    assert_eq!(
        !fold(add(0, &out[14..34])),
        0,
        "IPv4 header checksum verifies"
    );
    let udp = &out[34..];
    assert_ne!(&udp[6..8], &[0, 0]);
    assert_eq!(
        !fold(add(
            add(add(0, &out[26..34]), &[0, 17, 0, udp_len as u8]),
            udp
        )),
        0,
        "UDP checksum verifies"
    );
}

/// Issue 13 item 15: with admin-set MACs (as `hac serve` sets them) a VF cannot take over
/// another VF's address, and unicast to VF 0 (from the wire or from VF 1 itself) never reaches
/// VF 1. Without admin MACs the PF follows Linux igb and lets a VF choose any address (docs/driver.md).
#[test]
fn with_admin_macs_a_vf_cannot_receive_another_vfs_unicast() {
    let (model, _pf) = world(2, &[Some(mac(1)), Some(mac(2))]);
    let mut a = vf(&model, 0, VfConfig::default()).unwrap();
    let mut b = vf(&model, 1, VfConfig::default()).unwrap();
    assert!(
        matches!(b.set_mac(mac(1)), Err(DriverError::Nack { .. })),
        "VF 1 may not take VF 0's admin MAC"
    );
    assert!(
        b.set_promiscuous(true, false).is_err(),
        "unicast promiscuous is refused"
    );
    let peer = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
    assert_eq!(
        model.nic().inject_from_wire(&frame(mac(1), peer, 1, 200)),
        1
    );
    b.send(&[frame(mac(1), mac(2), 2, 200)]).unwrap();
    model.run_for(1_000_000);
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    a.recv(&mut got_a, 10);
    b.recv(&mut got_b, 10);
    assert_eq!(got_a.len(), 2, "VF 0 gets both frames for its MAC");
    assert!(got_b.is_empty(), "VF 1 received VF 0's unicast: {got_b:?}");
    assert_eq!(b.mac(), mac(2));
}

/// Issue 13 item 15: the VLAN filters are shared; with a per-VF share one VF cannot take them
/// all (with the Linux default of 32 it can).
#[test]
fn a_vlan_share_keeps_filters_for_the_other_vfs() {
    let model = Model::new(NicConfig::default());
    let _pf = model
        .start_pf_agent(
            PfConfig {
                num_vfs: 2,
                max_vlans_per_vf: 16,
                ..PfConfig::default()
            },
            &[Some(mac(1)), Some(mac(2))],
        )
        .unwrap();
    let mut a = vf(&model, 0, VfConfig::default()).unwrap();
    let mut b = vf(&model, 1, VfConfig::default()).unwrap();
    for vid in 1..=16 {
        a.set_vlan(vid, true).unwrap();
    }
    assert!(a.set_vlan(17, true).is_err(), "VF 0 is at its share");
    a.set_vlan(16, true).unwrap(); // re-adding one it holds is fine
    for vid in 100..116 {
        b.set_vlan(vid, true).unwrap();
    }
    a.set_vlan(1, false).unwrap();
    a.set_vlan(17, true).unwrap();
}

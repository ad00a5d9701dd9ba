//! The unchanged mlx5 VF driver on VFs of the mlx5 model, end to end: frames between two VFs
//! through the E-Switch (100 000 of them, every payload checked, in order), frames from a VF to
//! the wire and from the wire to a VF, and a TCP transfer (smoltcp) between two VFs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hac_driver::mlx5::model::{Mlx5Model, ModelDevice};
use hac_driver::mlx5::phy::Mlx5PhyDevice;
use hac_driver::mlx5::{EthConfig, Mlx5Config};
use hw_common::MacAddress;
use mlx5_model::{FunctionId, Mlx5Config as ModelConfig};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

const MACS: [MacAddress; 2] = [
    MacAddress([0x02, 0, 0, 0, 0x5A, 1]),
    MacAddress([0x02, 0, 0, 0, 0x5A, 2]),
];
/// A peer outside the adapter.
const PEER: MacAddress = MacAddress([0x02, 0xEE, 0, 0, 0, 9]);
const ETHERTYPE: u16 = 0x88B5;

/// A model with `MACS.len()` VFs up, their MACs set by the PF and their Ethernet paths open.
fn two_vfs(capture_wire: bool) -> (Mlx5Model, ModelDevice, Vec<ModelDevice>) {
    let model = Mlx5Model::new(ModelConfig {
        capture_wire,
        ..ModelConfig::default()
    });
    let (mut pf, mut vfs) = model.start(2, Mlx5Config::default()).unwrap();
    for (n, vf) in vfs.iter_mut().enumerate() {
        pf.set_vf_mac(n as u16, MACS[n]).unwrap();
        vf.open_eth(EthConfig::default()).unwrap();
        assert_eq!(vf.mac(), Some(MACS[n]), "the VF reads the MAC its PF set");
    }
    (model, pf, vfs)
}

fn frame(dst: MacAddress, src: MacAddress, seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    let mut x = seq.wrapping_mul(2_654_435_761) | 1;
    while f.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f
}

#[test]
fn a_hundred_thousand_frames_go_from_one_vf_to_another_intact_and_in_order() {
    const N: u32 = 100_000;
    let (model, _pf, mut vfs) = two_vfs(false);
    let mut b = vfs.pop().unwrap();
    let mut a = vfs.pop().unwrap();
    let mut next_send = 0u32;
    let mut next_recv = 0u32;
    let mut got = Vec::new();
    let mut rounds = 0;
    while next_recv < N {
        rounds += 1;
        assert!(rounds < 100_000, "stalled at {next_recv} of {N}");
        a.reclaim_tx().unwrap();
        let batch: Vec<Vec<u8>> = (next_send..N.min(next_send + 32))
            .map(|s| frame(MACS[1], MACS[0], s, 60 + (s as usize * 7) % 1400))
            .collect();
        let refs: Vec<&[u8]> = batch.iter().map(|f| &f[..]).collect();
        next_send += a.send(&refs).unwrap() as u32;
        model.run_for(10_000);
        got.clear();
        b.recv(&mut got, 64).unwrap();
        for f in &got {
            let want = frame(
                MACS[1],
                MACS[0],
                next_recv,
                60 + (next_recv as usize * 7) % 1400,
            );
            assert!(f == &want, "frame {next_recv} differs");
            next_recv += 1;
        }
    }
    let (sa, sb) = (a.eth_stats(), b.eth_stats());
    assert_eq!((sa.tx_frames, sa.tx_error_cqes), (u64::from(N), 0));
    assert_eq!((sb.rx_frames, sb.rx_error_cqes), (u64::from(N), 0));
    let nic = model.nic();
    assert_eq!(nic.wire_stats().0, 0, "VF-to-VF frames stay in the adapter");
}

#[test]
fn frames_reach_the_wire_and_come_back_from_it() {
    let (model, _pf, mut vfs) = two_vfs(true);
    let a = &mut vfs[0];
    let out: Vec<Vec<u8>> = (0..10).map(|s| frame(PEER, MACS[0], s, 200)).collect();
    let refs: Vec<&[u8]> = out.iter().map(|f| &f[..]).collect();
    assert_eq!(a.send(&refs).unwrap(), 10);
    model.run_for(1_000_000);
    let wire: Vec<Vec<u8>> = model
        .nic()
        .take_wire_capture()
        .into_iter()
        .map(|w| w.data.to_vec())
        .collect();
    assert_eq!(wire, out, "the wire carries the VF's frames, in order");
    // A frame from the wire for VF 1's MAC reaches VF 1 only.
    let inbound = frame(MACS[1], PEER, 77, 300);
    model.nic().wire_receive(&inbound);
    model.run_for(100_000);
    let mut got = Vec::new();
    vfs[1].recv(&mut got, 8).unwrap();
    assert_eq!(got, vec![inbound]);
    got.clear();
    vfs[0].recv(&mut got, 8).unwrap();
    assert!(got.is_empty(), "unicast for VF 1 is not flooded to VF 0");
}

#[test]
fn a_spoofed_source_mac_does_not_leave_the_vf_when_spoof_checking() {
    let (model, _pf, mut vfs) = two_vfs(true);
    model
        .nic()
        .set_spoof_check(FunctionId::Vf(0), true)
        .unwrap();
    let spoofed = frame(PEER, MACS[1], 1, 100);
    let honest = frame(PEER, MACS[0], 2, 100);
    assert_eq!(vfs[0].send(&[&spoofed[..], &honest[..]]).unwrap(), 2);
    model.run_for(1_000_000);
    let wire: Vec<Vec<u8>> = model
        .nic()
        .take_wire_capture()
        .into_iter()
        .map(|w| w.data.to_vec())
        .collect();
    assert_eq!(wire, vec![honest], "only the honest frame leaves");
    let nic = model.nic();
    assert_eq!(
        nic.eswitch_counters().tx_spoofed,
        1,
        "the spoofed frame is counted"
    );
    let c = nic.vport_counters(FunctionId::Vf(0)).unwrap();
    assert_eq!(c.tx_dropped, 1, "and charged to the vport: {c:?}");
}

#[test]
fn tcp_between_two_mlx5_vfs_is_intact() {
    let (model, _pf, vfs) = two_vfs(false);
    let mut dev: Vec<_> = vfs.into_iter().map(Mlx5PhyDevice::new).collect();
    let ips = [IpAddress::v4(192, 0, 2, 1), IpAddress::v4(192, 0, 2, 2)];
    let now = |m: &Mlx5Model| Instant::from_micros((m.nic().now().as_nanos() / 1_000) as i64);
    let mut ifaces: Vec<Interface> = (0..2)
        .map(|n| {
            let cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(MACS[n].0)));
            let mut iface = Interface::new(cfg, &mut dev[n], now(&model));
            iface.update_ip_addrs(|a| a.push(IpCidr::new(ips[n], 24)).unwrap());
            iface
        })
        .collect();
    let mut sockets: Vec<SocketSet<'_>> = (0..2).map(|_| SocketSet::new(vec![])).collect();
    let mk_sock = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 65536]),
            tcp::SocketBuffer::new(vec![0; 65536]),
        )
    };
    let server = sockets[0].add(mk_sock());
    let client = sockets[1].add(mk_sock());
    sockets[0]
        .get_mut::<tcp::Socket<'_>>(server)
        .listen(5000)
        .unwrap();
    {
        let cx = ifaces[1].context();
        sockets[1]
            .get_mut::<tcp::Socket<'_>>(client)
            .connect(cx, (ips[0], 5000), 40000)
            .unwrap();
    }
    let payload: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut sent = 0;
    let mut received = Vec::new();
    for _ in 0..200_000 {
        let t = now(&model);
        for n in 0..2 {
            ifaces[n].poll(t, &mut dev[n], &mut sockets[n]);
        }
        let c = sockets[1].get_mut::<tcp::Socket<'_>>(client);
        if c.can_send() && sent < payload.len() {
            sent += c.send_slice(&payload[sent..]).unwrap();
        }
        if sent == payload.len() && c.send_queue() == 0 {
            c.close();
        }
        let s = sockets[0].get_mut::<tcp::Socket<'_>>(server);
        if s.can_recv() {
            s.recv(|b| {
                received.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        if received.len() == payload.len() {
            break;
        }
        model.run_for(20_000);
    }
    assert_eq!(received.len(), payload.len(), "transfer incomplete");
    assert!(received == payload, "payload corrupted");
    let stats = dev[1].driver().eth_stats();
    assert!(
        stats.tx_frames > 100,
        "segments went through the VF: {stats:?}"
    );
    assert_eq!(dev[0].tx_dropped + dev[1].tx_dropped, 0);
}

/// An igb VF (82576 model, igbvf driver) and an mlx5 VF (ConnectX model, mlx5 driver) on two
/// separate adapters whose wires are joined: a TCP transfer between them arrives intact.
#[test]
fn tcp_between_an_igb_vf_and_an_mlx5_vf_across_a_wire_is_intact() {
    use hac_driver::model::Model;
    use hac_driver::pf::PfConfig;
    use hac_driver::phy::VfDevice;
    use hac_driver::vf::VfConfig;

    const IGB_MAC: MacAddress = MacAddress([0x02, 0, 0, 0, 0x1B, 1]);
    let igb = Model::new(igb_model::NicConfig {
        capture_wire: true,
        ..igb_model::NicConfig::default()
    });
    let _agent = igb
        .start_pf_agent(
            PfConfig {
                num_vfs: 1,
                ..PfConfig::default()
            },
            &[Some(IGB_MAC)],
        )
        .unwrap();
    let mut igb_dev = VfDevice::new(
        igb.vf_driver(igb_model::testing::vf(0), VfConfig::default())
            .unwrap(),
    );
    let (mlx5, _pf, mut vfs) = two_vfs(true);
    let mut mlx5_dev = Mlx5PhyDevice::new(vfs.remove(0));
    // The two adapters' clocks start apart (bring-up took different virtual times): from here
    // on both move by the same steps.
    let step = 20_000u64;
    let now = |m: &Mlx5Model| Instant::from_micros((m.nic().now().as_nanos() / 1_000) as i64);
    let ips = [
        IpAddress::v4(198, 51, 100, 1),
        IpAddress::v4(198, 51, 100, 2),
    ];
    let mut igb_if = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress(IGB_MAC.0))),
        &mut igb_dev,
        now(&mlx5),
    );
    igb_if.update_ip_addrs(|a| a.push(IpCidr::new(ips[0], 24)).unwrap());
    let mut mlx5_if = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress(MACS[0].0))),
        &mut mlx5_dev,
        now(&mlx5),
    );
    mlx5_if.update_ip_addrs(|a| a.push(IpCidr::new(ips[1], 24)).unwrap());
    let mk_sock = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 65536]),
            tcp::SocketBuffer::new(vec![0; 65536]),
        )
    };
    let mut igb_sockets = SocketSet::new(vec![]);
    let mut mlx5_sockets = SocketSet::new(vec![]);
    let server = igb_sockets.add(mk_sock());
    let client = mlx5_sockets.add(mk_sock());
    igb_sockets
        .get_mut::<tcp::Socket<'_>>(server)
        .listen(7000)
        .unwrap();
    mlx5_sockets
        .get_mut::<tcp::Socket<'_>>(client)
        .connect(mlx5_if.context(), (ips[0], 7000), 41000)
        .unwrap();
    let payload: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    let (mut sent, mut received) = (0, Vec::new());
    let (mut to_igb, mut to_mlx5) = (0u64, 0u64);
    for _ in 0..100_000 {
        let t = now(&mlx5);
        igb_if.poll(t, &mut igb_dev, &mut igb_sockets);
        mlx5_if.poll(t, &mut mlx5_dev, &mut mlx5_sockets);
        let c = mlx5_sockets.get_mut::<tcp::Socket<'_>>(client);
        if c.can_send() && sent < payload.len() {
            sent += c.send_slice(&payload[sent..]).unwrap();
        }
        let s = igb_sockets.get_mut::<tcp::Socket<'_>>(server);
        if s.can_recv() {
            s.recv(|b| {
                received.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        if received.len() == payload.len() {
            break;
        }
        igb.run_for(step);
        mlx5.run_for(step);
        // The wire between the two adapters, both ways.
        for w in mlx5.nic().take_wire_capture() {
            igb.nic().inject_from_wire(&w.data);
            to_igb += 1;
        }
        for w in igb.nic().take_wire_capture() {
            mlx5.nic().wire_receive(&w.data);
            to_mlx5 += 1;
        }
    }
    assert_eq!(received.len(), payload.len(), "transfer incomplete");
    assert!(received == payload, "payload corrupted");
    // Segments one way (100 kB in MSS-sized frames), ARP and ACKs the other.
    assert!(
        to_igb >= 69 && to_mlx5 > 0,
        "{to_igb} frames to igb, {to_mlx5} to mlx5"
    );
}

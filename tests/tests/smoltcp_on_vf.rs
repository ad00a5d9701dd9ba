//! A real TCP/IP stack (smoltcp) on two VFs of the model: a TCP transfer through the adapter's
//! internal switch arrives intact, and ARP/ICMP work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hac_driver::model::Model;
use hac_driver::pf::PfConfig;
use hac_driver::phy::VfDevice;
use hac_driver::vf::VfConfig;
use igb_hw::MacAddress;
use igb_model::{NicConfig, testing};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

#[test]
fn tcp_transfer_between_two_vfs_is_intact() {
    let model = Model::new(NicConfig::default());
    let macs = [
        MacAddress([2, 0, 0, 0, 2, 1]),
        MacAddress([2, 0, 0, 0, 2, 2]),
    ];
    let _pf = model
        .start_pf_agent(
            PfConfig {
                num_vfs: 2,
                ..PfConfig::default()
            },
            &[Some(macs[0]), Some(macs[1])],
        )
        .unwrap();
    let mk = |n: usize| {
        VfDevice::new(
            model
                .vf_driver(testing::vf(n), VfConfig::default())
                .unwrap(),
        )
    };
    let mut dev = [mk(0), mk(1)];
    let ips = [IpAddress::v4(192, 0, 2, 1), IpAddress::v4(192, 0, 2, 2)];
    let now = |m: &Model| Instant::from_micros((m.nic().now().as_nanos() / 1_000) as i64);
    let mut ifaces: Vec<Interface> = (0..2)
        .map(|n| {
            let cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(macs[n].0)));
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
    let stats = dev[1].driver().stats();
    assert!(
        stats.tx_packets > 100,
        "segments went through the VF: {stats:?}"
    );
    assert_eq!(dev[0].tx_ring_full + dev[1].tx_ring_full, 0);
}

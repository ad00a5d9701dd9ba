//! `vf-traffic` on an mlx5 VF, without hardware: VF 0 of the mlx5 model opened through the
//! VFIO code (`ModelFunction`), brought up by `probe::open_device` (family from the PCI ids,
//! the same path as `--pci` on a ConnectX VF), its Ethernet path opened, the traffic plan run;
//! the peer is VF 1 driven through the in-process backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use hac_driver::mlx5::model::Mlx5Model;
use hac_driver::mlx5::{EthConfig, Mlx5Config};
use hac_driver::vfio::model_device::ModelFunction;
use hac_driver::vfio::{Bdf, VfioDevice};
use hac_lab::traffic::{self, Mlx5Port, TrafficPlan, TrafficPort};
use hac_utility::probe::{self, OpenedVf, ProbeReport};
use igb_hw::MacAddress;
use mlx5_model::FunctionId;

const OURS: MacAddress = MacAddress([0x02, 0, 0, 0, 0, 0x30]);
const PEER: MacAddress = MacAddress([0x02, 0, 0, 0, 0, 0x31]);

#[test]
fn vf_traffic_runs_on_an_mlx5_vf_opened_through_vfio() {
    let m = Mlx5Model::new(mlx5_model::Mlx5Config::default());
    m.enable_vfs(2);
    let mut pf = m.device(FunctionId::Pf, Mlx5Config::default()).unwrap();
    pf.set_vf_mac(0, OURS).unwrap();
    pf.set_vf_mac(1, PEER).unwrap();
    let dev = VfioDevice::from_access(
        Bdf::parse("0000:3b:00.2").unwrap(),
        ModelFunction::new(&m, FunctionId::Vf(0)),
    )
    .unwrap();
    let mut report = ProbeReport::default();
    let config = probe::probe_config(1000);
    let opened = probe::open_device(&dev, m.clock(), &config, &mut report);
    assert!(report.ok, "{:?}", report.error);
    assert_eq!(report.family, Some("mlx5"));
    assert_eq!(report.mac.as_deref(), Some("02:00:00:00:00:30"));
    let Some(OpenedVf::Mlx5(vf)) = opened else {
        panic!("not the mlx5 driver");
    };
    let small = EthConfig {
        log_sq_size: 4,
        log_rq_size: 5,
    };
    let mut port = Mlx5Port::open(vf, small).map_err(|(_, e)| e).unwrap();
    assert_eq!(port.port_mac(), OURS);

    // The peer: frames already on their way to us are received during the plan.
    let mut peer = m.device(FunctionId::Vf(1), Mlx5Config::default()).unwrap();
    peer.open_eth(small).unwrap();
    let hello: Vec<u8> = {
        let mut f = Vec::new();
        f.extend_from_slice(&OURS.0);
        f.extend_from_slice(&PEER.0);
        f.extend_from_slice(&[0x88, 0xB5]);
        f.resize(60, 0x5A);
        f
    };
    assert_eq!(peer.send(&[&hello[..], &hello[..]]).unwrap(), 2);

    // More frames than the SQ holds: the plan waits for completions and the ring wraps.
    let plan = TrafficPlan {
        dst: PEER,
        count: 40,
        ethertype: 0x88B5,
        payload_len: 64,
        expect_rx: 2,
        rx_window: Duration::from_millis(50),
        tx_timeout: Duration::from_millis(500),
        ipv4: None,
    };
    let mut got = Vec::new();
    // Receive at the peer while we send: its RQ (32) is smaller than the plan.
    let t = {
        let r = traffic::run(&mut port, &plan).unwrap();
        peer.recv(&mut got, 64).unwrap();
        r
    };
    assert_eq!(t.sent, 40);
    assert!(t.tx_completed, "{t:?}");
    assert_eq!(t.tx_in_flight, 0);
    assert_eq!(t.received_from_peer_unicast, 2);
    assert_eq!((t.hw_tx_packets, t.hw_rx_packets), (40, 2));
    assert_eq!(t.rx_errors, 0);
    assert!(!got.is_empty());
    assert_eq!(&got[0][..6], &PEER.0);
    assert_eq!(
        &got[0][14..14 + traffic::PAYLOAD_MAGIC.len()],
        traffic::PAYLOAD_MAGIC
    );

    probe::close(
        OpenedVf::<ModelFunction, _>::Mlx5(port.into_device()),
        &mut report,
    );
    assert!(report.ok, "{:?}", report.error);
    assert!(report.mlx5.as_ref().unwrap().pages_returned.unwrap() > 0);
    assert_eq!(dev.access().mappings(), 0);
}

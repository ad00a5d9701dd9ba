//! The VFIO backend serving the mlx5 driver, end to end without hardware: an mlx5 VF of the
//! model opened through the real VFIO code ([`VfioDevice::from_access`] over
//! [`ModelFunction`]), its family detected from the PCI ids, BAR0 mapped and size-checked,
//! DMA through the container's IOMMU, bring-up, frames both ways through the Ethernet path
//! (the peer is a second VF driven through the in-process backend), teardown returning every
//! page and every IOMMU mapping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hac_driver::mlx5::model::Mlx5Model;
use hac_driver::mlx5::{EthConfig, Mlx5Config, Mlx5Device};
use hac_driver::vfio::model_device::ModelFunction;
use hac_driver::vfio::{Bdf, VfFamily, VfioDevice, VfioMlx5};
use hw_common::MacAddress;
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_model::{FunctionId, Mlx5Config as ModelConfig};

const MAC0: MacAddress = MacAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x20]);
const MAC1: MacAddress = MacAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x21]);

fn frame(dst: MacAddress, src: MacAddress, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x88, 0xB5]);
    f.extend_from_slice(payload);
    f.resize(60, 0);
    f
}

/// A model with two VFs, the PF's driver having given them MACs; VF 0 opened through VFIO.
fn open_vf0() -> (
    Mlx5Model,
    VfioDevice<ModelFunction>,
    hac_driver::mlx5::model::ModelDevice,
) {
    let m = Mlx5Model::new(ModelConfig::default());
    m.enable_vfs(2);
    let mut pf = m.device(FunctionId::Pf, Mlx5Config::default()).unwrap();
    pf.set_vf_mac(0, MAC0).unwrap();
    pf.set_vf_mac(1, MAC1).unwrap();
    let dev = VfioDevice::from_access(
        Bdf::parse("0000:3b:00.2").unwrap(),
        ModelFunction::new(&m, FunctionId::Vf(0)),
    )
    .unwrap();
    (m, dev, pf)
}

fn bring_up(
    m: &Mlx5Model,
    dev: &VfioDevice<ModelFunction>,
) -> VfioMlx5<ModelFunction, hac_driver::mlx5::model::Mlx5ModelClock> {
    let family = dev.family().unwrap();
    assert_eq!(family, VfFamily::Mlx5);
    let bar = dev.register_bar(family).unwrap();
    Mlx5Device::new(bar, dev.dma(), m.clock(), Mlx5Config::default()).unwrap()
}

#[test]
fn an_mlx5_vf_of_the_model_comes_up_through_vfio_and_carries_frames() {
    let (m, dev, _pf) = open_vf0();
    let ids = dev.ids().unwrap();
    assert_eq!(ids.to_string(), "15b3:101e");
    assert!(ids.is_mlx5_vf() && !ids.is_igb_vf());
    let mut a = bring_up(&m, &dev);
    assert!(
        dev.access().mappings() > 0,
        "DMA went through the container's IOMMU"
    );
    assert_ne!(a.info().fw_rev, (0, 0, 0));
    assert_eq!(a.own_vport_context().unwrap().0, MAC0);

    let mut b = m.device(FunctionId::Vf(1), Mlx5Config::default()).unwrap();
    let small = EthConfig {
        log_sq_size: 4,
        log_rq_size: 4,
    };
    a.open_eth(small).unwrap();
    b.open_eth(small).unwrap();
    assert!(a.link_up().unwrap());
    // Through the VFIO BAR: the send doorbell is one 8-byte write, and none was refused.
    let mut got = Vec::new();
    for batch in 0..6u8 {
        let frames: Vec<Vec<u8>> = (0..3u8).map(|k| frame(MAC1, MAC0, &[batch, k])).collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        assert_eq!(a.send(&refs).unwrap(), 3);
        m.run_for(1_000_000);
        b.recv(&mut got, 64).unwrap();
    }
    assert_eq!(got.len(), 18);
    assert_eq!(got[4], frame(MAC1, MAC0, &[1, 1]));
    // And back.
    let reply = frame(MAC0, MAC1, b"back");
    assert_eq!(b.send(&[&reply[..]]).unwrap(), 1);
    m.run_for(1_000_000);
    let mut back = Vec::new();
    a.recv(&mut back, 64).unwrap();
    assert_eq!(back, vec![reply]);
    a.reclaim_tx().unwrap();
    assert_eq!(a.eth_stats().tx_error_cqes, 0);
    assert_eq!(
        (a.bar().io().bad_reads(), a.bar().io().bad_writes()),
        (0, 0)
    );

    let trace = a.shutdown().unwrap();
    assert!(trace.iter().all(|r| r.status == Some(CommandStatus::Ok)));
    assert_eq!(trace.last().map(|r| r.opcode), Some(Opcode::DisableHca));
    assert!(
        m.nic()
            .function_state(FunctionId::Vf(0))
            .unwrap()
            .pages
            .is_empty(),
        "every page back"
    );
    assert_eq!(dev.access().mappings(), 0, "every DMA region unmapped");
    assert_eq!(dev.dma().stats().leaked_regions, 0);
}

#[test]
fn a_torn_doorbell_would_be_refused_so_write64_is_one_access() {
    // The model refuses the CQ arm doorbell in 4-byte halves; arming a CQ through the VFIO BAR
    // must therefore arrive as one 8-byte access and count no refusal.
    let (m, dev, _pf) = open_vf0();
    let mut a = bring_up(&m, &dev);
    let cq = a.create_cq(4).unwrap();
    let before = *m.nic().counters();
    a.arm_cq(cq);
    let after = *m.nic().counters();
    assert_eq!(after, before, "no refused or misaligned access");
    a.shutdown().unwrap();
}

#[test]
fn a_reset_through_vfio_lets_a_fresh_driver_bring_the_vf_up_again() {
    let (m, dev, _pf) = open_vf0();
    let a = bring_up(&m, &dev);
    drop(a); // as after a fatal error: the driver goes, its DMA is unmapped
    assert_eq!(dev.access().mappings(), 0);
    dev.reset().unwrap();
    let a = bring_up(&m, &dev);
    a.shutdown().unwrap();
}

//! The mlx5 driver's Ethernet path end to end on the mlx5 model: opening the queues in
//! mlx5e's order, the PF setting a VF's MAC and link state, frames from one VF to another,
//! teardown returning every page.
//!
//! These need the model's per-function queues and datapath (SQ/RQ/TIS/TIR/mkey/flow tables,
//! WQE processing) and its E-Switch (vport contexts and state, VF↔VF switching), which are
//! built in parallel for issue 15; until they merge the model answers those commands with
//! BAD_OP, so the tests are ignored. The lead un-ignores them after the merge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hac_driver::mlx5::model::Mlx5Model;
use hac_driver::mlx5::{EthConfig, Mlx5Config};
use hw_common::MacAddress;
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::vport::VportState;
use mlx5_model::{FunctionId, Mlx5Config as ModelConfig};

const MAC0: MacAddress = MacAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x10]);
const MAC1: MacAddress = MacAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x11]);

fn frame(dst: MacAddress, src: MacAddress, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x88, 0xB5]); // local experimental ethertype
    f.extend_from_slice(payload);
    f
}

/// `f` as it arrives: the adapter pads frames shorter than 60 bytes with zeros (mlx5e does not).
fn padded(f: &[u8]) -> Vec<u8> {
    let mut f = f.to_vec();
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

#[test]
fn a_vf_opens_its_ethernet_path_in_mlx5e_order_and_closes_it() {
    let m = Mlx5Model::new(ModelConfig::default());
    let (_pf, mut vfs) = m.start(1, Mlx5Config::default()).unwrap();
    let mut vf = vfs.pop().unwrap();
    let before = vf.command_trace().len();
    vf.open_eth(EthConfig::default()).unwrap();
    let opened: Vec<Opcode> = vf.command_trace()[before..]
        .iter()
        .map(|r| r.opcode)
        .collect();
    assert_eq!(
        opened,
        [
            Opcode::QueryNicVportContext,
            Opcode::CreateMkey,
            Opcode::CreateTis,
            Opcode::CreateCq,
            Opcode::CreateCq,
            Opcode::CreateSq,
            Opcode::ModifySq,
            Opcode::CreateRq,
            Opcode::ModifyRq,
            Opcode::CreateTir,
            Opcode::CreateFlowTable,
            Opcode::CreateFlowGroup,
            Opcode::SetFlowTableEntry,
            Opcode::SetFlowTableRoot,
        ]
    );
    assert!(vf.eth_objects().is_some());
    let trace = vf.shutdown().unwrap();
    assert!(trace.iter().all(|r| r.status == Some(CommandStatus::Ok)));
    let nic = m.nic();
    let state = nic.function_state(FunctionId::Vf(0)).unwrap();
    assert!(state.pages.is_empty());
}

#[test]
fn the_pf_sets_a_vf_mac_and_link_state_and_the_vf_sees_them() {
    let m = Mlx5Model::new(ModelConfig::default());
    let (mut pf, mut vfs) = m.start(1, Mlx5Config::default()).unwrap();
    pf.set_vf_mac(0, MAC0).unwrap();
    let vf = &mut vfs[0];
    let (mac, _mtu, _inline) = vf.own_vport_context().unwrap();
    assert_eq!(mac, MAC0);
    pf.set_vf_link_state(0, VportState::Down).unwrap();
    assert_eq!(vf.vport_state().unwrap(), VportState::Down);
    pf.set_vf_link_state(0, VportState::Up).unwrap();
    assert_eq!(vf.vport_state().unwrap(), VportState::Up);
}

#[test]
fn frames_go_from_one_vf_to_another() {
    let m = Mlx5Model::new(ModelConfig::default());
    let (mut pf, mut vfs) = m.start(2, Mlx5Config::default()).unwrap();
    pf.set_vf_mac(0, MAC0).unwrap();
    pf.set_vf_mac(1, MAC1).unwrap();
    let mut b = vfs.pop().unwrap();
    let mut a = vfs.pop().unwrap();
    let small = EthConfig {
        log_sq_size: 4,
        log_rq_size: 4,
    };
    a.open_eth(small).unwrap();
    b.open_eth(small).unwrap();
    assert_eq!(a.mac(), Some(MAC0));
    assert!(a.link_up().unwrap() && b.link_up().unwrap());
    // More frames than either ring holds, in batches: the SQ wraps and RQ buffers are reposted.
    let mut got = Vec::new();
    for batch in 0..8u8 {
        let frames: Vec<Vec<u8>> = (0..3u8)
            .map(|k| frame(MAC1, MAC0, &[batch, k, 0xAA, 0x55]))
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        assert_eq!(a.send(&refs).unwrap(), 3);
        m.run_for(1_000_000);
        b.recv(&mut got, 64).unwrap();
    }
    assert_eq!(got.len(), 24);
    assert_eq!(got[5], padded(&frame(MAC1, MAC0, &[1, 2, 0xAA, 0x55])));
    a.reclaim_tx().unwrap();
    let (sa, sb) = (a.eth_stats(), b.eth_stats());
    assert_eq!((sa.tx_frames, sa.tx_error_cqes), (24, 0));
    assert!(sa.tx_completions >= 1);
    assert_eq!((sb.rx_frames, sb.rx_error_cqes), (24, 0));
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    let nic = m.nic();
    for v in 0..2 {
        assert!(
            nic.function_state(FunctionId::Vf(v))
                .unwrap()
                .pages
                .is_empty()
        );
    }
}

#[test]
fn the_smoltcp_device_carries_a_frame_between_vfs() {
    use hac_driver::mlx5::phy::Mlx5PhyDevice;
    use smoltcp::phy::{Device, RxToken, TxToken};
    use smoltcp::time::Instant;

    let m = Mlx5Model::new(ModelConfig::default());
    let (mut pf, mut vfs) = m.start(2, Mlx5Config::default()).unwrap();
    pf.set_vf_mac(0, MAC0).unwrap();
    pf.set_vf_mac(1, MAC1).unwrap();
    let mut b = vfs.pop().unwrap();
    let mut a = vfs.pop().unwrap();
    a.open_eth(EthConfig::default()).unwrap();
    b.open_eth(EthConfig::default()).unwrap();
    let mut a = Mlx5PhyDevice::new(a);
    let mut b = Mlx5PhyDevice::new(b);
    assert!(a.capabilities().max_transmission_unit >= 1514);
    let sent = frame(MAC1, MAC0, b"hello over mlx5");
    let tx = a.transmit(Instant::ZERO).expect("room in the SQ");
    tx.consume(sent.len(), |buf| buf.copy_from_slice(&sent));
    m.run_for(1_000_000);
    let (rx, _tx) = b.receive(Instant::ZERO).expect("a frame");
    rx.consume(|got| assert_eq!(got, &padded(&sent)[..]));
    assert_eq!((a.tx_dropped, b.rx_errors), (0, 0));
}

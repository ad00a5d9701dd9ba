//! SR-IOV configuration space behaviour and VF isolation under arbitrary register writes.
#![allow(clippy::unwrap_used)]

use igb_model::igb_hw::RegisterOffset;
use igb_model::igb_hw::pci::{header, layout, sriov};
use igb_model::igb_hw::regs::VfReg;
use igb_model::testing::*;
use igb_model::{FunctionId, Nic, NicConfig};
use proptest::prelude::*;

fn cfg16(nic: &mut Nic, f: FunctionId, off: usize) -> u16 {
    let mut b = [0u8; 2];
    nic.config_read(f, off as u16, &mut b);
    u16::from_le_bytes(b)
}

#[test]
fn vf_enable_creates_num_vfs_functions() {
    let mut nic = Nic::new(NicConfig::default());
    assert_eq!(nic.num_vfs(), 0);
    assert_eq!(
        cfg16(&mut nic, FunctionId::Pf, layout::SRIOV + sriov::TOTAL_VFS),
        7
    );
    nic.enable_sriov(3);
    assert_eq!(nic.num_vfs(), 3);
    assert!(nic.vf_enabled(vf(2)) && !nic.vf_enabled(vf(3)));
    let cmd = cfg16(&mut nic, FunctionId::Vf(vf(0)), header::COMMAND);
    assert_eq!(cmd, 0, "a new VF has bus mastering off");
    assert_eq!(
        cfg16(&mut nic, FunctionId::Vf(vf(0)), header::VENDOR_ID),
        0xFFFF
    );
}

#[test]
fn num_vfs_is_frozen_while_vfs_are_enabled() {
    let mut nic = Nic::new(NicConfig::default());
    nic.enable_sriov(2);
    let at = (layout::SRIOV + sriov::NUM_VFS) as u16;
    nic.config_write(FunctionId::Pf, at, &5u16.to_le_bytes());
    assert_eq!(cfg16(&mut nic, FunctionId::Pf, at as usize), 2);
    assert_eq!(nic.num_vfs(), 2);
}

#[test]
fn num_vfs_above_total_is_clamped() {
    let mut nic = Nic::new(NicConfig::default());
    nic.enable_sriov(200);
    assert_eq!(nic.num_vfs(), 7);
}

#[test]
fn vf_bar_access_needs_vf_mse() {
    let mut nic = bring_up(1, NicConfig::default());
    let ctrl = (layout::SRIOV + sriov::CONTROL) as u16;
    nic.config_write(
        FunctionId::Pf,
        ctrl,
        &sriov::CONTROL_VF_ENABLE.to_le_bytes(),
    );
    assert_eq!(nic.vf_read(vf(0), VfReg::STATUS), 0xFFFF_FFFF);
    assert!(nic.counters().disabled_function_accesses > 0);
}

#[test]
fn flr_resets_the_vf_and_its_pci_state() {
    let mut nic = bring_up(2, NicConfig::default());
    let _r = VfRings::new(&mut nic, 1, 8, 8);
    let f = FunctionId::Vf(vf(1));
    let devctl = (layout::PCIE + 8) as u16;
    let cur = cfg16(&mut nic, f, devctl as usize);
    nic.config_write(f, devctl, &(cur | 0x8000).to_le_bytes());
    assert_eq!(
        cfg16(&mut nic, f, devctl as usize) & 0x8000,
        0,
        "Initiate FLR reads 0"
    );
    assert_eq!(cfg16(&mut nic, f, header::COMMAND), 0, "bus master cleared");
    assert_eq!(nic.vf_read(vf(1), VfReg::RDLEN(0)), 0);
    assert_eq!(nic.pf_read(igb_model::igb_hw::regs::PfReg::VFLRE), 0b10);
}

/// One register access a VF driver (or a malicious guest) could make.
#[derive(Clone, Debug)]
enum Access {
    Read(u32),
    Write(u32, u32),
    WriteMsix(u32, u32),
    Config(u16, u16),
}

fn access() -> impl Strategy<Value = Access> {
    let known: Vec<u32> = VfReg::ALL
        .iter()
        .flat_map(|&(_, base, stride, count, _)| (0..count).map(move |i| base + stride * i))
        .collect();
    let offset = prop_oneof![
        proptest::sample::select(known),
        (0u32..0x4000).prop_map(|o| o & !3)
    ];
    prop_oneof![
        offset.clone().prop_map(Access::Read),
        (offset, any::<u32>()).prop_map(|(o, v)| Access::Write(o, v)),
        ((0u32..0x2010).prop_map(|o| o & !3), any::<u32>())
            .prop_map(|(o, v)| Access::WriteMsix(o, v)),
        ((0u16..0x1000).prop_map(|o| o & !1), any::<u16>()).prop_map(|(o, v)| Access::Config(o, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever VF 0 writes to its BAR0, BAR3 and configuration space, no other VF's state and
    /// no PF configuration register changes. Loopback is off so that VF 0's frames can only go to
    /// the wire (network traffic to another VF would be a legitimate change).
    #[test]
    fn a_vf_cannot_change_another_function(accesses in proptest::collection::vec(access(), 1..200)) {
        let mut nic = bring_up(3, NicConfig::default());
        let _r0 = VfRings::new(&mut nic, 0, 16, 16);
        let _r1 = VfRings::new(&mut nic, 1, 16, 16);
        nic.pf_write(igb_model::igb_hw::regs::PfReg::DTXSWC, 0);
        let others_before: Vec<_> = [1, 2].iter().map(|&n| nic.vf_snapshot(vf(n))).collect();
        let pf_before = nic.pf_configuration_snapshot();
        let f = FunctionId::Vf(vf(0));
        for a in &accesses {
            match *a {
                Access::Read(o) => { let _ = nic.read32(f, RegisterOffset(o)); }
                Access::Write(o, v) => nic.write32(f, RegisterOffset(o), v),
                Access::WriteMsix(o, v) => nic.bar_write(f, 3, u64::from(o), &v.to_le_bytes()),
                Access::Config(o, v) => nic.config_write(f, o, &v.to_le_bytes()),
            }
            nic.advance_by(1_000);
        }
        let others_after: Vec<_> = [1, 2].iter().map(|&n| nic.vf_snapshot(vf(n))).collect();
        prop_assert_eq!(others_before, others_after);
        prop_assert_eq!(pf_before, nic.pf_configuration_snapshot());
    }
}

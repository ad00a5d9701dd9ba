//! Register reset values, write masks, access kinds, and malformed accesses.
#![allow(clippy::unwrap_used)]

use igb_model::igb_hw::RegisterOffset;
use igb_model::igb_hw::regs::{self, PfReg, VfReg};
use igb_model::testing::*;
use igb_model::{FunctionId, Nic, NicConfig};

#[test]
fn vf_queue_registers_reset_values() {
    let mut nic = bring_up(2, NicConfig::default());
    let v = vf(1);
    assert_eq!(
        nic.vf_read(v, VfReg::TXDCTL(0)),
        0,
        "no queue starts enabled (unlike QEMU's VF0)"
    );
    assert_eq!(nic.vf_read(v, VfReg::RXDCTL(0)), 0x0001_0000, "WTHRESH = 1");
    assert_eq!(nic.vf_read(v, VfReg::TXCTL(1)), 0x2A00);
    assert_eq!(nic.vf_read(v, VfReg::TDH(0)), 0);
    assert_eq!(nic.vf_read(v, VfReg::CTRL), 0);
    let status = nic.vf_read(v, VfReg::STATUS);
    assert_eq!(status & 0x3, 0x3, "FD and LU once the PF set SLU");
    assert_eq!(status & 0xC0, 0x80, "SPEED_1000");
}

#[test]
fn write_masks() {
    let mut nic = bring_up(1, NicConfig::default());
    let v = vf(0);
    nic.vf_write(v, VfReg::TDBAL(0), 0x1234_5678);
    assert_eq!(
        nic.vf_read(v, VfReg::TDBAL(0)),
        0x1234_5600,
        "ring base 128-byte aligned"
    );
    assert_eq!(nic.counters().ring_base_unaligned, 1);
    nic.vf_write(v, VfReg::TDT(0), 0xABCD_1234);
    assert_eq!(nic.vf_read(v, VfReg::TDT(0)), 0x1234, "tail is 16 bits");
    nic.vf_write(v, VfReg::EITR(1), 0xFFFF_FFFF);
    assert_eq!(
        nic.vf_read(v, VfReg::EITR(1)),
        0x7FFC,
        "interval bits only; CNT_IGNR reads 0"
    );
    nic.vf_write(v, VfReg::IVAR0, 0xFFFF_FFFF);
    assert_eq!(nic.vf_read(v, VfReg::IVAR0), 0x8787_8787);
    nic.vf_write(v, VfReg::EIMS, 0xFFFF_FFFF);
    assert_eq!(nic.vf_read(v, VfReg::EIMS), 0x7, "three causes per VF");
    nic.vf_write(v, VfReg::EIMC, 0x2);
    assert_eq!(nic.vf_read(v, VfReg::EIMS), 0x5);
}

#[test]
fn ring_length_not_multiple_of_128_is_masked_and_counted() {
    let mut nic = bring_up(1, NicConfig::default());
    nic.vf_write(vf(0), VfReg::TDLEN(0), 1000);
    assert_eq!(nic.vf_read(vf(0), VfReg::TDLEN(0)), 896);
    nic.vf_write(vf(0), VfReg::RDLEN(0), 4096 + 16);
    assert_eq!(nic.vf_read(vf(0), VfReg::RDLEN(0)), 4096);
    assert_eq!(nic.counters().ring_length_unaligned, 2);
}

#[test]
fn read_only_statistics_ignore_writes() {
    let mut nic = bring_up(1, NicConfig::default());
    nic.vf_write(vf(0), VfReg::VFGPTC, 55);
    assert_eq!(nic.vf_read(vf(0), VfReg::VFGPTC), 0);
    nic.vf_write(vf(0), VfReg::STATUS, 0);
    assert_eq!(nic.counters().read_only_writes, 2);
}

#[test]
fn unknown_offsets_read_zero_and_are_counted() {
    let mut nic = bring_up(1, NicConfig::default());
    let f = FunctionId::Vf(vf(0));
    assert_eq!(nic.read32(f, RegisterOffset(0x0C44)), 0);
    nic.write32(f, RegisterOffset(0x3A18), 7); // "queue 2" of a VF does not exist
    assert_eq!(nic.read32(FunctionId::Pf, RegisterOffset(0x1_FFFC)), 0);
    let c = nic.counters();
    assert_eq!((c.unknown_reads, c.unknown_writes), (2, 1));
}

#[test]
fn misaligned_and_odd_sized_accesses_are_counted() {
    let mut nic = bring_up(1, NicConfig::default());
    let f = FunctionId::Vf(vf(0));
    let mut b = [0u8; 4];
    nic.bar_read(f, 0, 0x3812, &mut b);
    assert_eq!(b, [0xFF; 4]);
    nic.bar_write(f, 0, 0x3818, &[1, 0]);
    nic.bar_read(f, 0, 0x3818, &mut [0u8; 3]);
    assert_eq!(nic.counters().misaligned_accesses, 3);
    nic.bar_read(f, 0, 0x4000, &mut b);
    nic.bar_read(f, 1, 0, &mut b);
    assert_eq!(nic.counters().out_of_range_accesses, 2);
    assert_eq!(
        nic.vf_read(vf(0), VfReg::TDT(0)),
        0,
        "the bad write did nothing"
    );
}

#[test]
fn eight_byte_access_is_two_registers() {
    let mut nic = bring_up(1, NicConfig::default());
    let f = FunctionId::Vf(vf(0));
    nic.bar_write(f, 0, 0x3800, &0x0000_0001_2345_6780u64.to_le_bytes());
    assert_eq!(nic.vf_read(vf(0), VfReg::TDBAL(0)), 0x2345_6780);
    assert_eq!(nic.vf_read(vf(0), VfReg::TDBAH(0)), 1);
}

#[test]
fn rqdpc_and_pf_statistics_clear_on_read() {
    let mut nic = bring_up(1, NicConfig::default());
    nic.inject_from_wire(&udp_frame(vf_mac(0), vf_mac(5), 0, 64));
    assert_eq!(
        nic.vf_read(vf(0), VfReg::RQDPC(0)),
        0,
        "queue disabled: not an RQDPC drop"
    );
    let mut rings = VfRings::new(&mut nic, 0, 8, 8);
    nic.vf_write(vf(0), VfReg::RDT(0), 0); // give the hardware no descriptors
    rings.rx_clean = 0;
    nic.inject_from_wire(&udp_frame(vf_mac(0), vf_mac(5), 1, 64));
    assert_eq!(nic.vf_read(vf(0), VfReg::RQDPC(0)), 1);
    assert_eq!(nic.vf_read(vf(0), VfReg::RQDPC(0)), 0, "read to clear");
    assert_eq!(nic.pf_read(PfReg::MPC), 1);
    assert_eq!(nic.pf_read(PfReg::MPC), 0);
}

#[test]
fn disabled_vf_is_not_there() {
    let mut nic = Nic::new(NicConfig::default());
    assert_eq!(
        nic.vf_read(vf(0), VfReg::STATUS),
        0xFFFF_FFFF,
        "master abort"
    );
    let mut b = [0u8; 2];
    nic.config_read(FunctionId::Vf(vf(0)), 0, &mut b);
    assert_eq!(b, [0xFF, 0xFF]);
    assert_eq!(nic.counters().disabled_function_accesses, 2);
    let mut nic = bring_up(2, NicConfig::default());
    assert_eq!(
        nic.vf_read(vf(2), VfReg::STATUS),
        0xFFFF_FFFF,
        "only NumVFs VFs exist"
    );
}

#[test]
fn every_declared_vf_register_is_decoded_by_the_model() {
    let mut nic = bring_up(1, NicConfig::default());
    for &(name, base, stride, count, _) in VfReg::ALL {
        for i in 0..count {
            let before = nic.counters().unknown_reads;
            let _ = nic.read32(FunctionId::Vf(vf(0)), RegisterOffset(base + stride * i));
            assert_eq!(nic.counters().unknown_reads, before, "{name}[{i}]");
        }
    }
    let _ = regs::VF_BAR0_SIZE;
}

#[test]
fn mdic_accesses_complete_at_once_without_a_phy() {
    let mut nic = bring_up(1, NicConfig::default());
    let unknown = nic.counters().unknown_writes;
    // Write 0x1340 to PHY 1 register 0 (restart auto-negotiation), then read register 1.
    nic.pf_write(PfReg::MDIC, (1 << 26) | (1 << 21) | 0x1340);
    let v = nic.pf_read(PfReg::MDIC);
    assert_ne!(v & (1 << 28), 0, "MDIC.R: done");
    assert_eq!(v & 0xFFFF, 0x1340, "write data kept");
    nic.pf_write(PfReg::MDIC, (2 << 26) | (1 << 21) | (1 << 16) | 0xFFFF);
    let v = nic.pf_read(PfReg::MDIC);
    assert_eq!(v & 0xFFFF, 0, "no PHY: reads return 0");
    assert_ne!(v & (1 << 28), 0);
    assert_eq!(
        nic.counters().unknown_writes,
        unknown,
        "MDIC is a known register"
    );
}

#[test]
fn an_array_element_past_the_end_reaches_no_other_register() {
    let mut nic = bring_up(2, NicConfig::default());
    let (ral, rah) = regs::rar_entry(22).unwrap();
    nic.pf_write(ral, 0x1234_5678);
    nic.pf_write(rah, 0x8000_9ABC);
    let before = nic.counters().out_of_range_accesses;
    // MTA has 128 words; word 197 would be RAH2(6) = RAR 22's high half if it were computed.
    nic.pf_write(PfReg::MTA(197), 0xFFFF_FFFF);
    assert_eq!(
        nic.pf_read(PfReg::MTA(197)),
        0xFFFF_FFFF,
        "outside the BAR: all ones"
    );
    assert_eq!(nic.pf_read(rah), 0x8000_9ABC);
    assert_eq!(nic.pf_read(ral), 0x1234_5678);
    assert_eq!(nic.counters().out_of_range_accesses, before + 2);
}

//! Mailbox hardware semantics (datasheet 7.8.2.9): lock bits, REQ/ACK causes,
//! read-to-clear status bits, resets.
#![allow(clippy::unwrap_used)]

use igb_model::igb_hw::regs::{self, CTRL, ICR, IVAR_MISC, P2VMAILBOX, PfReg, VFMAILBOX, VfReg};
use igb_model::testing::*;
use igb_model::{FunctionId, Nic, NicConfig};

const REQ: u32 = 0x01;
const ACK: u32 = 0x02;
const VFU: u32 = 0x04;
const PFU: u32 = 0x08;
const PFSTS: u32 = 0x10;
const PFACK: u32 = 0x20;
const RSTI: u32 = 0x40;
const RSTD: u32 = 0x80;

#[test]
fn bit_positions_match_the_shared_definition() {
    assert_eq!(
        regs::value(VFMAILBOX::RSTD::SET + VFMAILBOX::PFSTS::SET),
        RSTD | PFSTS
    );
    assert_eq!(regs::value(P2VMAILBOX::RVFU::SET), 0x10);
}

#[test]
fn rsti_until_pf_reset_done_then_rstd_clears_on_read() {
    let mut nic = Nic::new(NicConfig::default());
    nic.enable_sriov(2);
    nic.pf_write(PfReg::CTRL, regs::value(CTRL::RST::SET));
    assert_eq!(nic.vf_read(vf(0), VfReg::VFMAILBOX), RSTI);
    assert_eq!(
        nic.vf_read(vf(0), VfReg::VFMAILBOX),
        RSTI,
        "RSTI is not read-to-clear"
    );
    nic.pf_write(PfReg::CTRL_EXT, 0x4000);
    assert_eq!(nic.vf_read(vf(1), VfReg::VFMAILBOX), RSTD);
    assert_eq!(
        nic.vf_read(vf(1), VfReg::VFMAILBOX),
        0,
        "RSTD is read-to-clear"
    );
    assert_eq!(
        nic.pf_read(PfReg::V2PMAILBOX(0)),
        RSTD,
        "PF view has no side effect"
    );
    assert_eq!(nic.pf_read(PfReg::V2PMAILBOX(0)), RSTD);
}

#[test]
fn pf_message_sets_pfsts_which_clears_on_read_and_interrupts_the_vf() {
    let mut nic = bring_up(1, NicConfig::default());
    let _ = nic.vf_read(vf(0), VfReg::VFMAILBOX); // consume RSTD
    nic.vf_write(
        vf(0),
        VfReg::IVAR_MISC,
        regs::value(IVAR_MISC::VECTOR.val(2) + IVAR_MISC::VALID::SET),
    );
    nic.vf_write(vf(0), VfReg::EIMS, 0x4);
    nic.take_interrupts();
    nic.pf_write(PfReg::P2VMAILBOX(0), PFU);
    nic.pf_write(PfReg::VMBMEM(0), 0x2000_0100);
    nic.pf_write(PfReg::P2VMAILBOX(0), 0x1); // STS, releasing PFU
    let irqs = nic.take_interrupts();
    assert_eq!(irqs.len(), 1);
    assert_eq!(
        (irqs[0].function, irqs[0].vector),
        (FunctionId::Vf(vf(0)), 2)
    );
    assert_eq!(nic.vf_read(vf(0), VfReg::VFMAILBOX), PFSTS);
    assert_eq!(nic.vf_read(vf(0), VfReg::VFMAILBOX), 0);
    assert_eq!(nic.vf_read(vf(0), VfReg::VMBMEM(0)), 0x2000_0100);
    nic.pf_write(PfReg::P2VMAILBOX(0), 0x2); // ACK
    assert_eq!(nic.vf_read(vf(0), VfReg::VFMAILBOX), PFACK);
    assert_eq!(nic.vf_read(vf(0), VfReg::VFMAILBOX), 0);
}

#[test]
fn vf_req_and_ack_set_mbvficr_and_raise_vmmb() {
    let mut nic = bring_up(3, NicConfig::default());
    let _ = nic.pf_read(PfReg::ICR);
    nic.vf_write(vf(2), VfReg::VFMAILBOX, REQ);
    assert_eq!(nic.pf_read(PfReg::MBVFICR), 1 << 2);
    nic.vf_write(vf(1), VfReg::VFMAILBOX, ACK);
    assert_eq!(nic.pf_read(PfReg::MBVFICR), (1 << 2) | (1 << 17));
    assert_eq!(nic.pf_read(PfReg::ICR) & 0x100, 0x100);
    assert_eq!(nic.pf_read(PfReg::ICR), 0, "ICR is read-to-clear");
    nic.pf_write(PfReg::MBVFICR, 1 << 2);
    assert_eq!(nic.pf_read(PfReg::MBVFICR), 1 << 17, "write-1-to-clear");
    // A VF masked in MBVFIMR sets its cause but raises no interrupt cause.
    nic.pf_write(PfReg::MBVFIMR, 0xFF & !(1 << 2));
    nic.vf_write(vf(2), VfReg::VFMAILBOX, REQ);
    assert_eq!(nic.pf_read(PfReg::ICR) & regs::value(ICR::VMMB::SET), 0);
}

#[test]
fn lock_bits_exclude_each_other() {
    let mut nic = bring_up(1, NicConfig::default());
    let _ = nic.vf_read(vf(0), VfReg::VFMAILBOX);
    nic.vf_write(vf(0), VfReg::VFMAILBOX, VFU);
    assert_eq!(nic.vf_read(vf(0), VfReg::VFMAILBOX) & VFU, VFU);
    nic.pf_write(PfReg::P2VMAILBOX(0), PFU);
    assert_eq!(
        nic.pf_read(PfReg::P2VMAILBOX(0)),
        VFU,
        "PF cannot take a held buffer"
    );
    nic.pf_write(PfReg::VMBMEM(0), 0xDEAD);
    assert_eq!(nic.counters().mailbox_writes_while_locked, 1);
    nic.vf_write(vf(0), VfReg::VMBMEM(0), 0x0001);
    assert_eq!(nic.pf_read(PfReg::VMBMEM(0)), 0x0001);
    nic.vf_write(vf(0), VfReg::VFMAILBOX, REQ); // write without VFU releases
    nic.pf_write(PfReg::P2VMAILBOX(0), PFU);
    assert_eq!(nic.pf_read(PfReg::P2VMAILBOX(0)), PFU);
    nic.vf_write(vf(0), VfReg::VFMAILBOX, VFU);
    assert_eq!(
        nic.vf_read(vf(0), VfReg::VFMAILBOX) & (VFU | PFU),
        PFU,
        "VF cannot take it"
    );
    nic.vf_write(vf(0), VfReg::VMBMEM(1), 0xBEEF);
    assert_eq!(nic.pf_read(PfReg::VMBMEM(1)), 0);
    assert_eq!(nic.counters().mailbox_writes_while_locked, 2);
}

#[test]
fn rvfu_releases_a_stuck_vf_lock_and_its_causes() {
    let mut nic = bring_up(1, NicConfig::default());
    nic.vf_write(vf(0), VfReg::VFMAILBOX, VFU | REQ);
    assert_eq!(nic.pf_read(PfReg::MBVFICR), 1);
    nic.pf_write(PfReg::P2VMAILBOX(0), 0x10);
    assert_eq!(nic.pf_read(PfReg::P2VMAILBOX(0)), 0);
    assert_eq!(nic.pf_read(PfReg::MBVFICR), 0);
}

#[test]
fn mailbox_memory_is_per_vf() {
    let mut nic = bring_up(2, NicConfig::default());
    nic.vf_write(vf(1), VfReg::VMBMEM(3), 0x1234);
    assert_eq!(nic.pf_read(PfReg::VMBMEM(16 + 3)), 0x1234);
    assert_eq!(nic.vf_read(vf(0), VfReg::VMBMEM(3)), 0);
}

#[test]
fn vf_reset_as_hardware_does_it() {
    let mut nic = bring_up(2, NicConfig::default());
    let mut rings = VfRings::new(&mut nic, 1, 8, 8);
    let _ = &mut rings;
    let _ = nic.vf_read(vf(1), VfReg::VFMAILBOX);
    let _ = nic.pf_read(PfReg::ICR);
    nic.vf_write(vf(1), VfReg::EIMS, 0x7);
    nic.vf_write(vf(1), VfReg::CTRL, regs::value(CTRL::RST::SET));
    assert_eq!(nic.vf_read(vf(1), VfReg::CTRL), 0, "RST self-clears");
    assert_eq!(nic.vf_read(vf(1), VfReg::TXDCTL(0)), 0, "queues stopped");
    assert_eq!(nic.vf_read(vf(1), VfReg::RXDCTL(0)) & (1 << 25), 0);
    assert_eq!(
        nic.vf_read(vf(1), VfReg::RDLEN(0)),
        0,
        "queue registers reset"
    );
    assert_eq!(nic.vf_read(vf(1), VfReg::EIMS), 0, "interrupt block reset");
    assert_eq!(nic.pf_read(PfReg::VFTE) & 0b10, 0);
    assert_eq!(nic.pf_read(PfReg::VFRE), 0b01, "other VF keeps its enable");
    assert_eq!(nic.pf_read(PfReg::VFLRE), 0b10);
    assert_ne!(nic.pf_read(PfReg::ICR) & 0x100, 0);
    // RSTD appears once the reset completes (the PF has PFRSTD set), and clears on read.
    assert_eq!(nic.vf_read(vf(1), VfReg::VFMAILBOX), RSTD);
    assert_eq!(nic.vf_read(vf(1), VfReg::VFMAILBOX), 0);
    nic.pf_write(PfReg::VFLRE, 0b10);
    assert_eq!(nic.pf_read(PfReg::VFLRE), 0);
}

#[test]
fn vf_reset_before_pf_is_ready_leaves_rsti() {
    let mut nic = Nic::new(NicConfig::default());
    nic.enable_sriov(1);
    nic.pf_write(PfReg::CTRL, regs::value(CTRL::RST::SET));
    nic.vf_write(vf(0), VfReg::CTRL, regs::value(CTRL::RST::SET));
    assert_eq!(nic.vf_read(vf(0), VfReg::VFMAILBOX), RSTI);
}

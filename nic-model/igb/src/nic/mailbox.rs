//! The PF/VF mailbox (datasheet 7.8.2.9): ownership bits (VFU/PFU), the request and
//! acknowledge causes the PF sees in MBVFICR, and the status/ack/reset bits the VF reads in
//! VFMAILBOX. The 16 mailbox words per VF are PF registers (VMBMEM).

use igb_hw::VfIndex;
use igb_hw::regs::{self, ICR, IVAR_MISC, MBVFICR, P2VMAILBOX, PfReg, VFMAILBOX, pf};

use super::Nic;

/// Mailbox control state of one VF (both sides' view derive from it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailboxState {
    /// VF holds the buffer.
    pub vfu: bool,
    /// PF holds the buffer.
    pub pfu: bool,
    /// PF message waiting (VF read-to-clear).
    pub pfsts: bool,
    /// PF acknowledged (VF read-to-clear).
    pub pfack: bool,
    /// PF reset in progress.
    pub rsti: bool,
    /// Reset done (VF read-to-clear).
    pub rstd: bool,
}

impl MailboxState {
    pub(super) fn vf_view(&self) -> u32 {
        let mut v = regs::LocalRegisterCopy::<u32, VFMAILBOX::Register>::new(0);
        let b = |x: bool| u32::from(x);
        v.modify(
            VFMAILBOX::VFU.val(b(self.vfu))
                + VFMAILBOX::PFU.val(b(self.pfu))
                + VFMAILBOX::PFSTS.val(b(self.pfsts))
                + VFMAILBOX::PFACK.val(b(self.pfack))
                + VFMAILBOX::RSTI.val(b(self.rsti))
                + VFMAILBOX::RSTD.val(b(self.rstd)),
        );
        v.get()
    }
}

impl Nic {
    pub(super) fn vf_mailbox_write(&mut self, vf: VfIndex, v: u32) {
        let n = vf.get();
        let r = regs::view::<VFMAILBOX::Register>(v);
        let m = &mut self.mailbox[n];
        if r.is_set(VFMAILBOX::VFU) {
            if !m.pfu {
                m.vfu = true;
            }
        } else {
            m.vfu = false;
        }
        let bit = vf.pool().bit();
        let request = r.is_set(VFMAILBOX::REQ);
        let ack = r.is_set(VFMAILBOX::ACK);
        if request {
            self.regs.set_bits(pf::MBVFICR, MBVFICR::VFREQ.val(bit));
        }
        if ack {
            self.regs.set_bits(pf::MBVFICR, MBVFICR::VFACK.val(bit));
        }
        // MBVFIMR bit n gates the PF's mailbox interrupt for VF n.
        if (request || ack) && self.regs.get(PfReg::MBVFIMR) & bit != 0 {
            self.raise_pf(ICR::VMMB::SET);
        }
    }

    pub(super) fn pf_mailbox_write(&mut self, n: usize, v: u32) {
        let r = regs::view::<P2VMAILBOX::Register>(v);
        let m = &mut self.mailbox[n];
        if r.is_set(P2VMAILBOX::RVFU) {
            m.vfu = false;
            let bit = 1 << n;
            self.regs.clear_bits(
                pf::MBVFICR,
                MBVFICR::VFREQ.val(bit) + MBVFICR::VFACK.val(bit),
            );
        }
        let m = &mut self.mailbox[n];
        if r.is_set(P2VMAILBOX::PFU) {
            if !m.vfu {
                m.pfu = true;
            }
        } else {
            m.pfu = false;
        }
        let mut notify = false;
        if r.is_set(P2VMAILBOX::STS) {
            m.pfsts = true;
            notify = true;
        }
        if r.is_set(P2VMAILBOX::ACK) {
            m.pfack = true;
            notify = true;
        }
        if notify && let Some(vf) = VfIndex::new(n) {
            let misc = regs::view::<IVAR_MISC::Register>(self.vf_irq[n].ivar_misc);
            if misc.is_set(IVAR_MISC::VALID) {
                self.raise_vf_causes(vf, 1 << (misc.read(IVAR_MISC::VECTOR) & 0x3));
            }
        }
    }

    /// Mailbox control state of `vf` (no read side effects).
    pub fn mailbox_state(&self, vf: VfIndex) -> MailboxState {
        self.mailbox[vf.get()]
    }
}

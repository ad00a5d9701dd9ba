//! Resets: the registers' reset values, the PF software reset (CTRL.RST) and the VF reset
//! (VF CTRL.RST or FLR).

use igb_hw::VfIndex;
use igb_hw::addr::{MAX_VFS, NUM_QUEUES, QUEUES_PER_VF};
use igb_hw::pci::{header, layout, msix as msix_cap};
use igb_hw::regs::{self, CTRL_EXT, DTXCTL, ICR, PfReg, RAH, RXDCTL, SRRCTL, TXDCTL, pf};

use super::{MailboxState, Nic, VfInterrupts};
use crate::function::FunctionId;
use adapter_core::egress::EgressStage;

/// MBVFIMR at reset: the mailbox interrupt of every VF enabled.
const MBVFIMR_RESET: u32 = 0xFF;
/// RXCSUM at reset: IP and TCP/UDP receive checksum offload on (bits 8 and 9).
const RXCSUM_RESET: u32 = 0x0000_0300;
/// TXCTL (TX DCA control) of each queue at reset, as QEMU's igb model has it.
const TXCTL_RESET: u32 = 0x2A00;

impl Nic {
    /// Every register to its reset value.
    fn reset_registers(&mut self) {
        self.regs.clear();
        self.set_register_reset_values();
    }

    /// The registers whose reset value is not 0 (the rest of `regs` must already be 0).
    pub(super) fn set_register_reset_values(&mut self) {
        self.regs.set(PfReg::MBVFIMR, MBVFIMR_RESET);
        self.regs
            .write(pf::DTXCTL, DTXCTL::LL8023::SET + DTXCTL::SPOOF_INT::SET);
        self.regs.set(PfReg::RXCSUM, RXCSUM_RESET);
        for q in 0..NUM_QUEUES {
            self.reset_queue_registers(q as u8);
        }
        // The PF's own address in RAR[0], as loaded from the NVM, pool 0... selected by the PF
        // driver later; AV set.
        let (ral, rah) = igb_hw::addr::mac_to_ral_rah(self.config.mac_address);
        self.regs.set(PfReg::RAL(0), ral);
        self.regs.set(PfReg::RAH(0), rah);
        self.regs.modify(pf::RAH.at(0), RAH::AV::SET);
    }

    pub(super) fn reset_queue_registers(&mut self, q: u8) {
        for r in [
            PfReg::RDBAL(q),
            PfReg::RDBAH(q),
            PfReg::RDLEN(q),
            PfReg::RDH(q),
            PfReg::RDT(q),
            PfReg::RQDPC(q),
            PfReg::TDBAL(q),
            PfReg::TDBAH(q),
            PfReg::TDLEN(q),
            PfReg::TDH(q),
            PfReg::TDT(q),
            PfReg::TDWBAL(q),
            PfReg::TDWBAH(q),
        ] {
            self.regs.set(r, 0);
        }
        // Reset values as QEMU's igb model has them, except that no queue starts enabled.
        self.regs.write(
            pf::SRRCTL.at(q),
            SRRCTL::BSIZEPACKET.val(2) + SRRCTL::BSIZEHEADER.val(4),
        );
        self.regs.set(PfReg::RXCTL(q), 0);
        self.regs.write(pf::RXDCTL.at(q), RXDCTL::WTHRESH.val(1));
        self.regs.set(PfReg::TXCTL(q), TXCTL_RESET);
        self.regs.write(pf::TXDCTL.at(q), TXDCTL::ENABLE::CLEAR);
        self.tx.reset(usize::from(q));
        // TXDCTL.PRIORITY is clear again; the rate limiter (PF configuration) stays.
        if let Some(queue) = igb_hw::QueueIndex::new(usize::from(q)) {
            self.refresh_pool_priority(queue.pool());
        }
    }

    /// PF software reset (CTRL.RST): every register to its reset value, queues stopped, the
    /// egress stage flushed, and every VF's mailbox shows RSTI until the PF driver sets
    /// CTRL_EXT.PFRSTD. Configuration space (SR-IOV included) is not affected.
    pub(super) fn pf_reset(&mut self) {
        self.reset_registers();
        self.vf_irq = [VfInterrupts::default(); MAX_VFS];
        self.mailbox = [MailboxState {
            rsti: true,
            ..MailboxState::default()
        }; MAX_VFS];
        let flushed = self.egress.flush();
        self.counters.egress_flushed_on_reset += flushed as u64;
        // The HAC block returns to its reset state too (disabled, nothing tagged).
        self.egress = EgressStage::new(self.config.egress_limits);
        self.tx.clear_limiters();
        self.switch_stats = Default::default();
    }

    /// VF reset (VF CTRL.RST or FLR), as the 82576 does it (datasheet 4.2.2.2 / 7.8.2.9):
    /// the VF's queues (n and n + 8) return to reset state and stop, its VFTE/VFRE bits clear,
    /// VFLRE bit n is set and the PF gets ICR.VMMB; the VF's interrupt block resets. The mailbox
    /// reports RSTD once the reset completes if the PF is up (CTRL_EXT.PFRSTD), else RSTI stays.
    ///
    /// QEMU's igb model sets neither RSTI nor RSTD here, so igbvf's post-reset poll times out
    /// there; the model follows the hardware that igbvf's and ixgbevf's poll is written for.
    pub(super) fn vf_reset(&mut self, vf: VfIndex, flr: bool) {
        let n = vf.get();
        for vq in 0..QUEUES_PER_VF {
            if let Some(q) = vf.queue(vq) {
                self.reset_queue_registers(q.get() as u8);
            }
        }
        let bit = vf.pool().bit();
        self.regs
            .set(PfReg::VFTE, self.regs.get(PfReg::VFTE) & !bit);
        self.regs
            .set(PfReg::VFRE, self.regs.get(PfReg::VFRE) & !bit);
        self.regs
            .set(PfReg::VFLRE, self.regs.get(PfReg::VFLRE) | bit);
        self.vf_irq[n] = VfInterrupts::default();
        let pf_ready = self.regs.read(pf::CTRL_EXT).is_set(CTRL_EXT::PFRSTD);
        let mb = &mut self.mailbox[n];
        *mb = MailboxState {
            pfu: mb.pfu,
            rsti: !pf_ready,
            rstd: pf_ready,
            ..Default::default()
        };
        if flr {
            self.msix[FunctionId::Vf(vf).slot()].reset();
            let cfg = &mut self.vf_config[n];
            cfg.force16(header::COMMAND, 0);
            cfg.force16(
                layout::MSIX + msix_cap::CONTROL,
                (regs::VF_MSIX_VECTORS - 1) as u16,
            );
        }
        self.raise_pf(ICR::VMMB::SET);
    }
}

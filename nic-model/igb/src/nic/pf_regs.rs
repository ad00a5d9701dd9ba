//! PF register semantics: what a read or a write of each PF BAR0 register does beyond storing
//! the word (link state, interrupt masks, mailbox control, queue doorbells, write masks). The
//! HAC registers have their own module ([`super::hac`]).

use igb_hw::PoolIndex;
use igb_hw::QueueIndex;
use igb_hw::addr::{NUM_POOLS, QUEUES_PER_VF};
use igb_hw::regs::{
    self, Access, CTRL, CTRL_EXT, EITR, ICR, LocalRegisterCopy, MAILBOX_WORDS, MDIC, P2VMAILBOX,
    PfReg, RTTDQSEL, RXDCTL, STATUS, TXDCTL, pf,
};

use super::Nic;

/// The bits of a ring-length register (TDLEN/RDLEN) that hold: a multiple of 128 bytes, below
/// 1 MiB.
const RING_LENGTH_MASK: u32 = 0x000F_FF80;
/// The low bits of a ring base address or length (TDBAL/RDBAL, TDLEN/RDLEN) the hardware
/// ignores: rings are 128-byte aligned and a multiple of 128 bytes long.
const RING_ALIGNMENT: u32 = 0x7F;
/// The bits of a head or tail register (TDH/TDT/RDH/RDT) that hold a descriptor index.
const RING_INDEX_MASK: u32 = 0xFFFF;

impl Nic {
    /// STATUS as the port shows it: full duplex at 1000 Mb/s, LU once CTRL.SLU is set and a
    /// link partner is present, IOV mode with NumVFs while VFs are enabled.
    pub(super) fn status_value(&self) -> LocalRegisterCopy<u32, STATUS::Register> {
        let slu = self.regs.read(pf::CTRL).is_set(CTRL::SLU);
        let mut v = regs::view::<STATUS::Register>(0);
        v.modify(STATUS::FD::SET + STATUS::SPEED::Speed1000);
        if slu && self.config.link_partner {
            v.modify(STATUS::LU::SET);
        }
        let n = self.num_vfs() as u32;
        if n > 0 {
            v.modify(STATUS::IOV_MODE::SET + STATUS::NUM_VFS.val(n & 0xF));
        }
        v
    }

    /// FRTIMER: free-running microseconds.
    pub(super) fn frtimer(&self) -> u32 {
        (self.now.as_nanos() / 1_000) as u32
    }

    pub(super) fn pf_reg_read(&mut self, reg: PfReg) -> u32 {
        if let Some(v) = self.hac_read(reg) {
            return v;
        }
        match reg {
            PfReg::STATUS => self.status_value().get(),
            PfReg::FRTIMER => self.frtimer(),
            PfReg::CTRL => {
                let mut ctrl = self.regs.read(pf::CTRL);
                ctrl.modify(CTRL::RST::CLEAR);
                ctrl.get()
            }
            PfReg::P2VMAILBOX(n) => {
                let m = self.mailbox[usize::from(n)];
                regs::value(
                    P2VMAILBOX::VFU.val(u32::from(m.vfu)) + P2VMAILBOX::PFU.val(u32::from(m.pfu)),
                )
            }
            // The PF's view of the VF's register has no read side effects.
            PfReg::V2PMAILBOX(n) => self.mailbox[usize::from(n)].vf_view(),
            // RTTBCNRC is indirect: the word of the queue RTTDQSEL selects.
            PfReg::RTTBCNRC => self.tx.limiter(self.selected_rate_queue()).word(),
            _ => match reg.access() {
                Access::WriteOnly => 0,
                Access::ReadClear | Access::ReadClearWriteOneClear => {
                    let v = self.regs.get(reg);
                    self.regs.set(reg, 0);
                    v
                }
                _ => self.regs.get(reg),
            },
        }
    }

    pub(super) fn pf_reg_write(&mut self, reg: PfReg, v: u32) {
        if self.hac_write(reg, v) {
            return;
        }
        match reg {
            PfReg::CTRL => {
                if regs::view::<CTRL::Register>(v).is_set(CTRL::RST) {
                    self.pf_reset();
                    return;
                }
                let old_lu = self.status_value().is_set(STATUS::LU);
                self.regs.set(reg, v);
                if self.status_value().is_set(STATUS::LU) != old_lu {
                    self.raise_pf(ICR::LSC::SET);
                }
            }
            PfReg::CTRL_EXT => {
                self.regs.set(reg, v);
                if regs::view::<CTRL_EXT::Register>(v).is_set(CTRL_EXT::PFRSTD) {
                    for m in &mut self.mailbox {
                        m.rsti = false;
                        m.rstd = true;
                    }
                }
            }
            // No PHY is modelled (the link follows CTRL.SLU): a PHY access completes at once,
            // reads return 0.
            PfReg::MDIC => {
                let mut mdic = regs::view::<MDIC::Register>(v);
                let data = if mdic.matches_all(MDIC::OP::Read) {
                    0
                } else {
                    mdic.read(MDIC::DATA)
                };
                mdic.modify(MDIC::DATA.val(data) + MDIC::R::SET);
                self.regs.set(reg, mdic.get());
            }
            PfReg::ICS => self.raise_pf_cause(v),
            PfReg::IMS => {
                let new = self.regs.get(PfReg::IMS) | v;
                self.regs.set(PfReg::IMS, new);
                if self.regs.get(PfReg::ICR) & v != 0 {
                    self.signal_pf();
                }
            }
            PfReg::IMC => self.regs.set(PfReg::IMS, self.regs.get(PfReg::IMS) & !v),
            PfReg::P2VMAILBOX(n) => self.pf_mailbox_write(usize::from(n), v),
            PfReg::VMBMEM(i) => {
                let vf = usize::from(i) / MAILBOX_WORDS;
                if self.mailbox[vf].vfu {
                    self.counters.mailbox_writes_while_locked += 1;
                } else {
                    self.regs.set(reg, v);
                }
            }
            PfReg::TDT(q) => {
                self.regs.set(reg, v & RING_INDEX_MASK);
                if let Some(q) = QueueIndex::new(usize::from(q)) {
                    self.tx_kick(q);
                }
            }
            PfReg::TDH(_) | PfReg::RDH(_) | PfReg::RDT(_) => {
                self.regs.set(reg, v & RING_INDEX_MASK)
            }
            PfReg::TDLEN(_) | PfReg::RDLEN(_) => {
                if v & RING_ALIGNMENT != 0 {
                    self.counters.ring_length_unaligned += 1;
                }
                self.regs.set(reg, v & RING_LENGTH_MASK);
            }
            PfReg::TDBAL(_) | PfReg::RDBAL(_) => {
                if v & RING_ALIGNMENT != 0 {
                    self.counters.ring_base_unaligned += 1;
                }
                self.regs.set(reg, v & !RING_ALIGNMENT);
            }
            PfReg::TXDCTL(q) => {
                let txdctl = pf::TXDCTL.at(q);
                let was = self.regs.read(txdctl).is_set(TXDCTL::ENABLE);
                let mut new = regs::view::<TXDCTL::Register>(v);
                new.modify(TXDCTL::SWFLSH::CLEAR);
                self.regs.set(reg, new.get());
                let is = new.is_set(TXDCTL::ENABLE);
                if let Some(q) = QueueIndex::new(usize::from(q)) {
                    self.refresh_pool_priority(q.pool());
                    if is && !was {
                        // A queue enable restarts the engine: a fault or half-fetched packet from
                        // the previous incarnation is forgotten.
                        self.tx.reset(q.get());
                    }
                    self.tx_kick(q);
                }
            }
            PfReg::RTTDQSEL => self.regs.write(pf::RTTDQSEL, RTTDQSEL::TXDQ_IDX.val(v)),
            PfReg::RTTBCNRC => {
                let q = self.selected_rate_queue();
                self.tx.set_limiter(q, v);
                if let Some(q) = QueueIndex::new(q) {
                    self.tx_kick(q);
                }
            }
            PfReg::RXDCTL(_) => {
                let mut new = regs::view::<RXDCTL::Register>(v);
                new.modify(RXDCTL::SWFLSH::CLEAR);
                self.regs.set(reg, new.get());
            }
            PfReg::TCTL | PfReg::VFTE => {
                self.regs.set(reg, v);
                self.tx_kick_all();
            }
            PfReg::EITR(_) => self.regs.set(reg, keep_interval(v)),
            _ => match reg.access() {
                Access::ReadWrite => self.regs.set(reg, v),
                Access::WriteOneClear | Access::ReadClearWriteOneClear => {
                    self.regs.set(reg, self.regs.get(reg) & !v)
                }
                Access::ReadOnly | Access::ReadClear => self.counters.read_only_writes += 1,
                Access::WriteOnly => {}
            },
        }
    }
}

impl Nic {
    /// The queue RTTDQSEL selects for RTTBCNRC accesses.
    fn selected_rate_queue(&self) -> usize {
        self.regs.read(pf::RTTDQSEL).read(RTTDQSEL::TXDQ_IDX) as usize
    }

    /// Tells the egress stage whether `pool` is a priority pool: one of its queues (n, n + 8)
    /// has TXDCTL.PRIORITY set.
    pub(super) fn refresh_pool_priority(&mut self, pool: PoolIndex) {
        let high = (0..QUEUES_PER_VF).any(|vq| {
            let q = pool.get() + vq * NUM_POOLS;
            pf::TXDCTL
                .get(q)
                .is_some_and(|r| self.regs.read(r).is_set(TXDCTL::PRIORITY))
        });
        self.egress.set_priority(crate::vport(pool), high);
    }
}

/// An EITR write keeps only the interval field.
pub(super) fn keep_interval(v: u32) -> u32 {
    let interval = regs::view::<EITR::Register>(v).read(EITR::INTERVAL);
    regs::value(EITR::INTERVAL.val(interval))
}

//! Side-effect-free snapshots for isolation checks: everything that belongs to one VF
//! ([`VfSnapshot`]), and the PF configuration a VF must never change
//! ([`PF_CONFIGURATION_REGISTERS`]).

use igb_hw::addr::{NUM_POOLS, QUEUES_PER_VF};
use igb_hw::regs::{MAILBOX_WORDS, PfReg};
use igb_hw::{PoolIndex, VfIndex};

use super::{MailboxState, Nic, VfInterrupts};
use crate::function::FunctionId;
use crate::msix::MsixTable;
use crate::vport;

/// Everything that belongs to one VF, for isolation checks ([`Nic::vf_snapshot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfSnapshot {
    /// Queue registers of physical queues n and n + 8 (PF register words).
    pub queue_registers: Vec<u32>,
    /// Interrupt block.
    pub interrupts: VfInterrupts,
    /// Mailbox control.
    pub mailbox: MailboxState,
    /// The VF's 16 mailbox words.
    pub mailbox_memory: Vec<u32>,
    /// MSI-X table and PBA.
    pub msix: MsixTable,
    /// Configuration space bytes.
    pub config: Vec<u8>,
    /// Per-VF statistics (PF mirror registers).
    pub statistics: Vec<u32>,
    /// Whether its TX queues are stopped by a DMA fault.
    pub faulted: [bool; 2],
}

/// The PF registers a VF can never change directly or indirectly, for isolation checks.
pub const PF_CONFIGURATION_REGISTERS: &[PfReg] = &[
    PfReg::CTRL,
    PfReg::CTRL_EXT,
    PfReg::IMS,
    PfReg::RCTL,
    PfReg::TCTL,
    PfReg::GPIE,
    PfReg::MBVFIMR,
    PfReg::DTXSWC,
    PfReg::DTXCTL,
    PfReg::MRQC,
    PfReg::VT_CTL,
    PfReg::QDE,
    PfReg::RXCSUM,
    PfReg::RPLOLR,
    PfReg::IOVCTL,
];

impl Nic {
    /// Everything that belongs to `vf`, read without side effects.
    pub fn vf_snapshot(&self, vf: VfIndex) -> VfSnapshot {
        let n = vf.get() as u8;
        let mut queue_registers = Vec::new();
        for vq in 0..QUEUES_PER_VF {
            if let Some(q) = vf.queue(vq) {
                let q = q.get() as u8;
                for r in [
                    PfReg::RDBAL(q),
                    PfReg::RDBAH(q),
                    PfReg::RDLEN(q),
                    PfReg::SRRCTL(q),
                    PfReg::RDH(q),
                    PfReg::RDT(q),
                    PfReg::RXDCTL(q),
                    PfReg::RQDPC(q),
                    PfReg::TDBAL(q),
                    PfReg::TDBAH(q),
                    PfReg::TDLEN(q),
                    PfReg::TDH(q),
                    PfReg::TDT(q),
                    PfReg::TXDCTL(q),
                    PfReg::TDWBAL(q),
                    PfReg::TDWBAH(q),
                ] {
                    queue_registers.push(self.regs.get(r));
                }
            }
        }
        let statistics = [
            PfReg::PVFGPRC(n),
            PfReg::PVFGPTC(n),
            PfReg::PVFGORC(n),
            PfReg::PVFGOTC(n),
            PfReg::PVFMPRC(n),
            PfReg::PVFGPRLBC(n),
            PfReg::PVFGPTLBC(n),
            PfReg::PVFGORLBC(n),
            PfReg::PVFGOTLBC(n),
        ]
        .iter()
        .map(|&r| self.regs.get(r))
        .collect();
        let q0 = vf.get();
        VfSnapshot {
            queue_registers,
            interrupts: self.vf_irq[vf.get()],
            mailbox: self.mailbox[vf.get()],
            mailbox_memory: (0..MAILBOX_WORDS as u8)
                .map(|i| self.regs.get(PfReg::VMBMEM(n * MAILBOX_WORDS as u8 + i)))
                .collect(),
            msix: self.msix[FunctionId::Vf(vf).slot()].clone(),
            config: self.vf_config[vf.get()].bytes().to_vec(),
            statistics,
            faulted: [self.tx.faulted(q0), self.tx.faulted(q0 + NUM_POOLS)],
        }
    }

    /// PF configuration registers ([`PF_CONFIGURATION_REGISTERS`] plus the RAR, VMOLR, VMVIR,
    /// VLVF, MTA and VFTA arrays), read without side effects.
    pub fn pf_configuration_snapshot(&self) -> Vec<u32> {
        let mut out: Vec<u32> = PF_CONFIGURATION_REGISTERS
            .iter()
            .map(|&r| self.regs.get(r))
            .collect();
        for i in 0..16u8 {
            out.push(self.regs.get(PfReg::RAL(i)));
            out.push(self.regs.get(PfReg::RAH(i)));
        }
        for i in 0..8u8 {
            out.push(self.regs.get(PfReg::RAL2(i)));
            out.push(self.regs.get(PfReg::RAH2(i)));
            out.push(self.regs.get(PfReg::VMOLR(i)));
            out.push(self.regs.get(PfReg::VMVIR(i)));
        }
        for i in 0..32u8 {
            out.push(self.regs.get(PfReg::VLVF(i)));
        }
        for i in 0..128u8 {
            out.push(self.regs.get(PfReg::MTA(i)));
            out.push(self.regs.get(PfReg::VFTA(i)));
        }
        out.push(u32::from(self.egress.hac_enabled()));
        out.push(self.egress.guard_bytes() as u32);
        out.push(self.hac_tagged_mask());
        for p in 0..8 {
            if let Some(pool) = PoolIndex::new(p) {
                let h = self.egress.hac_state(vport(pool));
                let l = self.egress.hac_limits(vport(pool));
                out.extend_from_slice(&[
                    h.open,
                    h.committed,
                    h.resolved,
                    l.frames as u32,
                    l.bytes as u32,
                ]);
            }
        }
        out.extend_from_slice(
            self.pf_config
                .bytes()
                .as_slice()
                .chunks(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<_>>()
                .as_slice(),
        );
        out
    }
}

//! A VF sends arbitrary mailbox messages (any words, any order, with or without a reset first);
//! the PF agent must answer each with ACK or NACK (or ignore replies), never panic, and never
//! change another VF's filters or enables.
#![no_main]

use hac_driver::model::Model;
use hac_driver::pf::{PfAgent, PfConfig, vf_rar_index};
use igb_hw::regs::{self, PfReg, VfReg};
use igb_hw::{MacAddress, VfIndex};
use igb_model::{FunctionId, NicConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = Model::new(NicConfig::default());
    model.nic().enable_sriov(2);
    let Ok(mut agent) = PfAgent::new(
        model.bar0(FunctionId::Pf),
        model.clock(),
        PfConfig {
            num_vfs: 2,
            ..PfConfig::default()
        },
    ) else {
        return;
    };
    let vf = VfIndex::new(0).unwrap_or_else(|| unreachable!());
    let vf1 = VfIndex::new(1).unwrap_or_else(|| unreachable!());
    let _ = agent.set_vf_mac(vf1, Some(MacAddress([2, 0, 0, 0, 0, 0x22])));
    let other = |model: &Model| {
        let mut nic = model.nic();
        let (ral, rah) = regs::rar_entry(vf_rar_index(vf1)).unwrap_or_else(|| unreachable!());
        [
            nic.pf_read(ral),
            nic.pf_read(rah),
            nic.pf_read(PfReg::VMOLR(1)),
            nic.pf_read(PfReg::VFTE) & 2,
            nic.pf_read(PfReg::VFRE) & 2,
        ]
    };
    let before = other(&model);
    // Each message: 1 length byte (1..=16 words) then that many little-endian words.
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let words = usize::from(n % 16) + 1;
        let take = (words * 4).min(tail.len());
        let (msg, tail) = tail.split_at(take);
        rest = tail;
        {
            let mut nic = model.nic();
            let _ = nic.vf_read(vf, VfReg::VFMAILBOX);
            nic.vf_write(vf, VfReg::VFMAILBOX, 0x4);
            for (i, c) in msg.chunks(4).enumerate() {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                nic.vf_write(vf, VfReg::VMBMEM(i as u8), u32::from_le_bytes(w));
            }
            nic.vf_write(vf, VfReg::VFMAILBOX, 0x1);
        }
        agent.poll();
        let mut nic = model.nic();
        if nic.vf_read(vf, VfReg::VFMAILBOX) & 0x10 != 0 {
            let w0 = nic.vf_read(vf, VfReg::VMBMEM(0));
            assert!(
                w0 & (igb_hw::mailbox::ACK | igb_hw::mailbox::NACK) != 0,
                "reply without ACK/NACK: {w0:#x}"
            );
        }
    }
    assert_eq!(before, other(&model), "VF 1's filters changed");
});

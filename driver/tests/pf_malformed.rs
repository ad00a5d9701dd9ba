//! A malicious or buggy VF writes raw mailbox messages: the PF agent answers with the right
//! NACK/ignore behaviour, never panics, and never touches another VF's filters.
#![allow(clippy::unwrap_used)]

use hac_driver::model::{Model, ModelBar, ModelClock};
use hac_driver::pf::{PfAgent, PfConfig, vf_rar_index};
use igb_hw::mailbox::{self as msg};
use igb_hw::regs::{self, PfReg, VfReg};
use igb_hw::{MacAddress, VfIndex};
use igb_model::{FunctionId, NicConfig};

fn setup() -> (Model, PfAgent<ModelBar, ModelClock>) {
    let model = Model::new(NicConfig::default());
    model.nic().enable_sriov(2);
    let mut agent = PfAgent::new(
        model.bar0(FunctionId::Pf),
        model.clock(),
        PfConfig {
            num_vfs: 2,
            ..PfConfig::default()
        },
    )
    .unwrap();
    agent
        .set_vf_mac(
            VfIndex::new(1).unwrap(),
            Some(MacAddress([2, 0, 0, 0, 0, 0x22])),
        )
        .unwrap();
    (model, agent)
}

/// VF 0 writes `words` and REQ; the PF polls; returns VMBMEM word 0 and whether PFSTS was set.
fn exchange(
    model: &Model,
    agent: &mut PfAgent<ModelBar, ModelClock>,
    words: &[u32],
) -> (u32, bool) {
    let vf = VfIndex::new(0).unwrap();
    {
        let mut nic = model.nic();
        let _ = nic.vf_read(vf, VfReg::VFMAILBOX);
        nic.vf_write(vf, VfReg::VFMAILBOX, 0x4);
        for (i, w) in words.iter().enumerate() {
            nic.vf_write(vf, VfReg::VMBMEM(i as u8), *w);
        }
        nic.vf_write(vf, VfReg::VFMAILBOX, 0x1);
    }
    agent.poll();
    let mut nic = model.nic();
    let status = nic.vf_read(vf, VfReg::VFMAILBOX);
    (nic.vf_read(vf, VfReg::VMBMEM(0)), status & 0x10 != 0)
}

fn other_vf_filters(model: &Model) -> Vec<u32> {
    let mut nic = model.nic();
    let (ral, rah) = regs::rar_entry(vf_rar_index(VfIndex::new(1).unwrap())).unwrap();
    vec![
        nic.pf_read(ral),
        nic.pf_read(rah),
        nic.pf_read(PfReg::VMOLR(1)),
        nic.pf_read(PfReg::VFTE) & 2,
    ]
}

#[test]
fn messages_before_reset_are_nacked() {
    let (model, mut agent) = setup();
    let (w0, replied) = exchange(&model, &mut agent, &[u32::from(msg::VF_SET_LPE), 1522]);
    assert!(replied);
    assert_eq!(
        w0 & (msg::NACK | msg::CTS | msg::ACK),
        msg::NACK,
        "no CTS before VF_RESET"
    );
}

#[test]
fn reset_then_each_malformed_case() {
    let (model, mut agent) = setup();
    let before = other_vf_filters(&model);
    let (w0, _) = exchange(&model, &mut agent, &[u32::from(msg::VF_RESET)]);
    assert_eq!(
        w0,
        msg::NACK | 1,
        "no MAC assigned to VF 0: NACK, no CTS in a reset reply"
    );
    let nack = |w0: u32| w0 & msg::NACK != 0 && w0 & msg::CTS != 0;
    // Unknown message id.
    assert!(nack(exchange(&model, &mut agent, &[0x0042]).0));
    // SET_MULTICAST claiming 31 entries.
    assert!(nack(
        exchange(
            &model,
            &mut agent,
            &[u32::from(msg::VF_SET_MULTICAST) | (31 << 16)]
        )
        .0
    ));
    // SET_LPE with a zero and a huge max frame.
    assert!(nack(
        exchange(&model, &mut agent, &[u32::from(msg::VF_SET_LPE), 0]).0
    ));
    assert!(nack(
        exchange(&model, &mut agent, &[u32::from(msg::VF_SET_LPE), 1 << 20]).0
    ));
    // SET_MAC_ADDR with multicast, zero, and VF 1's address (accepted: no admin MAC on VF 0,
    // anti-spoofing is per pool and RAR entries are per VF).
    assert!(nack(
        exchange(
            &model,
            &mut agent,
            &[u32::from(msg::VF_SET_MAC_ADDR), 0x0000_0001, 0]
        )
        .0
    ));
    assert!(nack(
        exchange(&model, &mut agent, &[u32::from(msg::VF_SET_MAC_ADDR), 0, 0]).0
    ));
    // Unsupported sub-command.
    assert!(nack(
        exchange(
            &model,
            &mut agent,
            &[u32::from(msg::VF_SET_MAC_ADDR) | (0x7 << 16), 2, 0]
        )
        .0
    ));
    // Unicast promiscuous.
    assert!(nack(
        exchange(
            &model,
            &mut agent,
            &[u32::from(msg::VF_SET_PROMISC) | (1 << 16)]
        )
        .0
    ));
    // A message that already carries ACK is ignored: no reply.
    let (_, replied) = exchange(
        &model,
        &mut agent,
        &[u32::from(msg::VF_SET_LPE) | msg::ACK, 1522],
    );
    assert!(!replied);
    // VLAN id beyond 12 bits is masked, not a crash.
    assert!(!nack(
        exchange(
            &model,
            &mut agent,
            &[u32::from(msg::VF_SET_VLAN) | (1 << 16), 0xFFFF_FFFF]
        )
        .0
    ));
    assert_eq!(
        agent.vf(VfIndex::new(0).unwrap()).unwrap().vlans,
        vec![0xFFF]
    );
    assert!(agent.vf(VfIndex::new(0).unwrap()).unwrap().nacks >= 8);
    assert_eq!(other_vf_filters(&model), before, "VF 1's filters untouched");
}

/// Found by the `pf_mailbox` fuzz target: a multicast hash wider than 12 bits used to index
/// MTA word 197, which is the RAH of VF 1's receive-address entry.
#[test]
fn oversized_multicast_hash_stays_inside_the_mta() {
    let (model, mut agent) = setup();
    let before = other_vf_filters(&model);
    // VF_RESET, then SET_MULTICAST with three hashes: 0x38B0 (word 0x1C5 unmasked), 0x0010, 0.
    exchange(&model, &mut agent, &[u32::from(msg::VF_RESET)]);
    let (reply, _) = exchange(&model, &mut agent, &[0x0003_0003, 0x0010_38B0]);
    assert_ne!(reply & msg::ACK, 0, "multicast list accepted: {reply:#x}");
    assert_eq!(other_vf_filters(&model), before, "VF 1's filters changed");
    let mut nic = model.nic();
    // 0x38B0 & 0xFFF = 0x8B0: MTA word 0x45, bit 16; 0x0010: word 0, bit 16.
    assert_ne!(nic.pf_read(PfReg::MTA(0x45)) & (1 << 16), 0);
    assert_ne!(nic.pf_read(PfReg::MTA(0)) & (1 << 16), 0);
}

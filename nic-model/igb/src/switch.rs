//! The internal L2 switch (datasheet 7.10.3): anti-spoofing on transmit, VMDq pool selection
//! for frames from the wire and from local pools, VM-to-VM loopback, and forwarding to the
//! egress stage of the port.
//!
//! Pool selection reads only the register file ([`select_pools`]); forwarding works on the
//! [`Datapath`] the device lends to the TX engine or to a frame from the wire, and hands frames
//! for local pools to the RX engines ([`crate::rx`]).

use bytes::BytesMut;
use igb_hw::frame::{EthernetHeader, FCS_LEN};
use igb_hw::regs::{self, DTXCTL, DTXSWC, ICR, MRQC, PfReg, RCTL, VLVF, VMOLR, VT_CTL, WVBR, pf};
use igb_hw::{MacAddress, PoolIndex, addr::NUM_POOLS};

use crate::datapath::{Datapath, IrqRequest};
use crate::regfile::RegisterFile;
use crate::rx;

/// Which pools accept a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolSelection {
    /// Bit n: pool n receives the frame.
    pub pools: u32,
    /// The destination matched a receive-address (RAR) entry exactly.
    pub exact_match: bool,
}

fn vmdq_mode(regs: &RegisterFile) -> bool {
    // MRQE values with bit 0 set are the VMDq modes.
    regs.read(pf::MRQC).read(MRQC::MRQE) & 1 != 0
}

fn rar_pools(regs: &RegisterFile, mac: MacAddress) -> Option<u32> {
    regs.rar_pools(mac)
}

fn pools_with(regs: &RegisterFile, field: regs::Field<u32, VMOLR::Register>) -> u32 {
    (0..NUM_POOLS)
        .filter(|&p| regs.read(pf::VMOLR.at(p as u8)).is_set(field))
        .fold(0, |acc, p| acc | (1 << p))
}

fn vlan_pools(regs: &RegisterFile, vid: u16) -> u32 {
    (0..pf::VLVF.len() as u8)
        .map(|i| regs.read(pf::VLVF.at(i)))
        .filter(|v| v.is_set(VLVF::VLANID_ENABLE) && v.read(VLVF::VID) == u32::from(vid))
        .fold(0, |acc, v| acc | v.read(VLVF::POOLSEL))
}

fn mta_hit(regs: &RegisterFile, mac: MacAddress) -> bool {
    let h = igb_hw::addr::mta_hash(&mac);
    regs.get(PfReg::MTA((h >> 5) as u8)) & (1 << (h & 0x1F)) != 0
}

/// RX pool selection (datasheet 7.10.3.3–7.10.3.5) for a frame from the wire
/// (`from_local` = false) or from a local pool through loopback, with `num_vfs` VFs enabled.
pub(crate) fn select_pools(
    regs: &RegisterFile,
    num_vfs: usize,
    hdr: &EthernetHeader,
    from_local: bool,
) -> PoolSelection {
    let rctl = regs.read(pf::RCTL);
    if !vmdq_mode(regs) {
        // Without VMDq everything goes to pool 0 (the PF's queue 0) if the address filters
        // accept it.
        let d = hdr.destination;
        let ok = (d.is_broadcast() && rctl.is_set(RCTL::BAM))
            || rar_pools(regs, d).is_some()
            || (d.is_multicast() && (rctl.is_set(RCTL::MPE) || mta_hit(regs, d)))
            || rctl.is_set(RCTL::UPE);
        return PoolSelection {
            pools: u32::from(ok),
            exact_match: false,
        };
    }
    let d = hdr.destination;
    let mut sel = PoolSelection::default();
    if d.is_broadcast() {
        sel.pools = pools_with(regs, VMOLR::BAM);
    } else if let Some(p) = rar_pools(regs, d) {
        sel.pools = p;
        sel.exact_match = true;
    } else if d.is_multicast() {
        if mta_hit(regs, d) {
            sel.pools |= pools_with(regs, VMOLR::ROMPE);
        }
        sel.pools |= pools_with(regs, VMOLR::MPME);
    }
    if rctl.is_set(RCTL::VFE) {
        match hdr.vlan_id() {
            Some(vid) => sel.pools &= vlan_pools(regs, vid) | pools_with(regs, VMOLR::VPE),
            None => sel.pools &= pools_with(regs, VMOLR::AUPE),
        }
    }
    let vt = regs.read(pf::VT_CTL);
    if sel.pools == 0 && !d.is_multicast() && !from_local && !vt.is_set(VT_CTL::DIS_DEF_POOL) {
        sel.pools = 1 << vt.read(VT_CTL::DEF_POOL);
    }
    // VFRE gates the pools owned by VFs.
    let vf_pools = (1u32 << num_vfs) - 1;
    sel.pools &= !vf_pools | regs.get(PfReg::VFRE);
    sel
}

fn spoofed(dp: &mut Datapath<'_>, pool: PoolIndex, vlan: bool) {
    dp.counters.tx_spoofed_frames += 1;
    let event = if vlan {
        WVBR::VLAN_SPOOF.val(pool.bit())
    } else {
        WVBR::MAC_SPOOF.val(pool.bit())
    };
    dp.regs.set_bits(pf::WVBR, event);
    if dp.regs.read(pf::DTXCTL).is_set(DTXCTL::SPOOF_INT) {
        dp.request(IrqRequest::pf(ICR::DOUTSYNC::SET));
    }
}

/// A frame transmitted by `pool`: anti-spoof, statistics, loopback, then the egress stage.
pub(crate) fn from_pool(dp: &mut Datapath<'_>, pool: PoolIndex, frame: BytesMut) {
    let Ok(hdr) = EthernetHeader::parse(&frame) else {
        dp.counters.tx_runt_frames += 1;
        return;
    };
    let sw = dp.regs.read(pf::DTXSWC);
    let p = pool.get() as u32;
    if sw.read(DTXSWC::MAC_SPOOF) & (1 << p) != 0
        && rar_pools(dp.regs, hdr.source).is_none_or(|pools| pools & (1 << p) == 0)
    {
        spoofed(dp, pool, false);
        return;
    }
    if sw.read(DTXSWC::VLAN_SPOOF) & (1 << p) != 0
        && let Some(vid) = hdr.vlan_id()
        && vlan_pools(dp.regs, vid) & (1 << p) == 0
    {
        spoofed(dp, pool, true);
        return;
    }
    let octets = (frame.len() + FCS_LEN) as u32;
    let pi = pool.get() as u8;
    if dp.vf_owned(pool) {
        dp.regs.add(PfReg::PVFGPTC(pi), 1);
        dp.regs.add(PfReg::PVFGOTC(pi), octets);
    }
    dp.regs.add(PfReg::GPTC, 1);
    dp.regs.add(PfReg::TPT, 1);
    dp.regs
        .add_64(PfReg::GOTCL, PfReg::GOTCH, u64::from(octets));

    let mut to_wire = true;
    if sw.is_set(DTXSWC::VMDQ_LOOPBACK_EN) && vmdq_mode(dp.regs) {
        let sel = select_pools(dp.regs, dp.num_vfs, &hdr, true);
        let own = if sw.read(DTXSWC::LLE) & (1 << p) != 0 {
            0
        } else {
            pool.bit()
        };
        let targets = sel.pools & !own;
        let mut looped = false;
        for dst in 0..NUM_POOLS {
            if targets & (1 << dst) != 0
                && let Some(target) = PoolIndex::new(dst)
            {
                rx::deliver_to_pool(dp, target, &frame, &hdr, true);
                looped = true;
            }
        }
        if looped && dp.vf_owned(pool) {
            dp.regs.add(PfReg::PVFGPTLBC(pi), 1);
            dp.regs.add(PfReg::PVFGOTLBC(pi), octets);
        }
        // A unicast frame whose destination matched a local address exactly is switched,
        // never sent to the network (datasheet 7.10.3.6). When no local pool can take it
        // (the target's VFRE bit clear, VLAN filtering, or the sender's own address without
        // LLE), it is dropped here, and counted.
        if !hdr.destination.is_multicast() && sel.exact_match {
            to_wire = false;
            let stats = &mut dp.switch_stats[pool.get()];
            if looped {
                stats.looped_only += 1;
            } else {
                stats.local_drops += 1;
                dp.counters.tx_local_drops += 1;
            }
        }
    }
    if to_wire {
        // The frame was split off the TX engine's chunk: the stage joins it to the pool's
        // previous frame in that chunk, without a copy.
        dp.egress.enqueue_chunked(crate::vport(pool), frame, dp.now);
    }
}

/// A frame arriving from the wire port: pool selection and delivery. Returns the pools that
/// accepted it.
pub(crate) fn from_wire(dp: &mut Datapath<'_>, frame: &[u8]) -> u32 {
    let Ok(hdr) = EthernetHeader::parse(frame) else {
        dp.counters.rx_runt_frames += 1;
        return 0;
    };
    let sel = select_pools(dp.regs, dp.num_vfs, &hdr, false);
    if sel.pools == 0 {
        dp.counters.rx_no_pool_drops += 1;
        return 0;
    }
    let mut accepted = 0;
    for dst in 0..NUM_POOLS {
        if sel.pools & (1 << dst) != 0
            && let Some(target) = PoolIndex::new(dst)
            && rx::deliver_to_pool(dp, target, frame, &hdr, false)
        {
            accepted |= 1 << dst;
        }
    }
    accepted
}

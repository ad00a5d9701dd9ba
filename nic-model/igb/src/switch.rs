//! The internal L2 switch (datasheet 7.10.3): anti-spoofing on transmit, VMDq pool selection
//! for frames from the wire and from local pools, VM-to-VM loopback, and forwarding to the
//! egress stage of the port.

use bytes::Bytes;
use igb_hw::frame::{EthernetHeader, FCS_LEN};
use igb_hw::regs::{self, DTXSWC, MRQC, PfReg, RAH, RCTL, VLVF, VMOLR, VT_CTL};
use igb_hw::{MacAddress, PoolIndex, addr::NUM_POOLS};

use crate::nic::Nic;
use adapter_core::egress::EgressFrame;

/// Where the internal switch sent the frames of one pool that did not go to the egress stage
/// (simulator counters, not registers; [`Nic::switch_stats`]). Every frame a VF sends (VFGPTC)
/// goes to the egress stage (then the wire, HACDISC or HACBUFF), or is one of these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwitchPoolStats {
    /// Unicast frames to a local address, delivered by loopback only (not to the wire).
    pub looped_only: u64,
    /// Unicast frames to a local address that no local pool could take: dropped (also counted
    /// device-wide in `ModelCounters::tx_local_drops`).
    pub local_drops: u64,
}

/// Which pools accept a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolSelection {
    /// Bit n: pool n receives the frame.
    pub pools: u32,
    /// The destination matched a receive-address (RAR) entry exactly.
    pub exact_match: bool,
}

impl Nic {
    fn vmdq_mode(&self) -> bool {
        let mrqc = regs::view::<MRQC::Register>(self.reg(PfReg::MRQC));
        mrqc.read(MRQC::MRQE) & 1 != 0
    }

    fn rar_pools(&self, mac: MacAddress) -> Option<u32> {
        let mut pools = None;
        for i in 0..regs::RAR_ENTRIES {
            let Some((ral, rah)) = regs::rar_entry(i) else {
                continue;
            };
            let rah_v = regs::view::<RAH::Register>(self.reg(rah));
            if rah_v.is_set(RAH::AV)
                && igb_hw::addr::mac_from_ral_rah(self.reg(ral), rah_v.get()) == mac
            {
                *pools.get_or_insert(0) |= rah_v.read(RAH::POOLSEL);
            }
        }
        pools
    }

    fn pools_with(&self, field: regs::Field<u32, VMOLR::Register>) -> u32 {
        (0..NUM_POOLS)
            .filter(|&p| {
                regs::view::<VMOLR::Register>(self.reg(PfReg::VMOLR(p as u8))).is_set(field)
            })
            .fold(0, |acc, p| acc | (1 << p))
    }

    fn vlan_pools(&self, vid: u16) -> u32 {
        (0..32u8)
            .map(|i| regs::view::<VLVF::Register>(self.reg(PfReg::VLVF(i))))
            .filter(|v| v.is_set(VLVF::VLANID_ENABLE) && v.read(VLVF::VID) == u32::from(vid))
            .fold(0, |acc, v| acc | v.read(VLVF::POOLSEL))
    }

    fn mta_hit(&self, mac: MacAddress) -> bool {
        let h = igb_hw::addr::mta_hash(&mac);
        self.reg(PfReg::MTA((h >> 5) as u8)) & (1 << (h & 0x1F)) != 0
    }

    /// RX pool selection (datasheet 7.10.3.3–7.10.3.5) for a frame from the wire
    /// (`from_local` = false) or from a local pool through loopback.
    pub fn select_pools(&self, hdr: &EthernetHeader, from_local: bool) -> PoolSelection {
        let rctl = regs::view::<RCTL::Register>(self.reg(PfReg::RCTL));
        if !self.vmdq_mode() {
            // Without VMDq everything goes to pool 0 (the PF's queue 0) if the address filters
            // accept it.
            let d = hdr.destination;
            let ok = (d.is_broadcast() && rctl.is_set(RCTL::BAM))
                || self.rar_pools(d).is_some()
                || (d.is_multicast() && (rctl.is_set(RCTL::MPE) || self.mta_hit(d)))
                || rctl.is_set(RCTL::UPE);
            return PoolSelection {
                pools: u32::from(ok),
                exact_match: false,
            };
        }
        let d = hdr.destination;
        let mut sel = PoolSelection::default();
        if d.is_broadcast() {
            sel.pools = self.pools_with(VMOLR::BAM);
        } else if let Some(p) = self.rar_pools(d) {
            sel.pools = p;
            sel.exact_match = true;
        } else if d.is_multicast() {
            if self.mta_hit(d) {
                sel.pools |= self.pools_with(VMOLR::ROMPE);
            }
            sel.pools |= self.pools_with(VMOLR::MPME);
        }
        if rctl.is_set(RCTL::VFE) {
            match hdr.vlan_id() {
                Some(vid) => sel.pools &= self.vlan_pools(vid) | self.pools_with(VMOLR::VPE),
                None => sel.pools &= self.pools_with(VMOLR::AUPE),
            }
        }
        let vt = regs::view::<VT_CTL::Register>(self.reg(PfReg::VT_CTL));
        if sel.pools == 0 && !d.is_multicast() && !from_local && !vt.is_set(VT_CTL::DIS_DEF_POOL) {
            sel.pools = 1 << vt.read(VT_CTL::DEF_POOL);
        }
        // VFRE gates the pools owned by VFs.
        let vf_pools = (1u32 << self.num_vfs()) - 1;
        sel.pools &= !vf_pools | self.reg(PfReg::VFRE);
        sel
    }

    fn spoofed(&mut self, pool: PoolIndex, vlan: bool) {
        self.counters.tx_spoofed_frames += 1;
        let bit = if vlan { pool.bit() << 8 } else { pool.bit() };
        self.set_reg(PfReg::WVBR, self.reg(PfReg::WVBR) | bit);
        if self.reg(PfReg::DTXCTL) & regs::value(regs::DTXCTL::SPOOF_INT::SET) != 0 {
            self.raise_pf_cause(regs::value(regs::ICR::DOUTSYNC::SET));
        }
    }

    /// A frame transmitted by `pool`: anti-spoof, statistics, loopback, then the egress stage.
    pub(crate) fn switch_from_pool(&mut self, pool: PoolIndex, frame: Bytes) {
        let Ok(hdr) = EthernetHeader::parse(&frame) else {
            self.counters.tx_runt_frames += 1;
            return;
        };
        let sw = regs::view::<DTXSWC::Register>(self.reg(PfReg::DTXSWC));
        let p = pool.get() as u32;
        if sw.read(DTXSWC::MAC_SPOOF) & (1 << p) != 0
            && self
                .rar_pools(hdr.source)
                .is_none_or(|pools| pools & (1 << p) == 0)
        {
            self.spoofed(pool, false);
            return;
        }
        if sw.read(DTXSWC::VLAN_SPOOF) & (1 << p) != 0
            && let Some(vid) = hdr.vlan_id()
            && self.vlan_pools(vid) & (1 << p) == 0
        {
            self.spoofed(pool, true);
            return;
        }
        let octets = (frame.len() + FCS_LEN) as u32;
        let pi = pool.get() as u8;
        if pool.get() < self.num_vfs() {
            self.add_reg(PfReg::PVFGPTC(pi), 1);
            self.add_reg(PfReg::PVFGOTC(pi), octets);
        }
        self.add_reg(PfReg::GPTC, 1);
        self.add_reg(PfReg::TPT, 1);
        self.add_64(PfReg::GOTCL, PfReg::GOTCH, u64::from(octets));

        let mut to_wire = true;
        if sw.is_set(DTXSWC::VMDQ_LOOPBACK_EN) && self.vmdq_mode() {
            let sel = self.select_pools(&hdr, true);
            let own = if sw.read(DTXSWC::LLE) & (1 << p) != 0 {
                0
            } else {
                pool.bit()
            };
            let targets = sel.pools & !own;
            let mut looped = false;
            for dst in 0..NUM_POOLS {
                if targets & (1 << dst) != 0
                    && let Some(dp) = PoolIndex::new(dst)
                {
                    self.deliver_to_pool(dp, &frame, &hdr, true);
                    looped = true;
                }
            }
            if looped && pool.get() < self.num_vfs() {
                self.add_reg(PfReg::PVFGPTLBC(pi), 1);
                self.add_reg(PfReg::PVFGOTLBC(pi), octets);
            }
            // A unicast frame whose destination matched a local address exactly is switched,
            // never sent to the network (datasheet 7.10.3.6). When no local pool can take it
            // (the target's VFRE bit clear, VLAN filtering, or the sender's own address without
            // LLE), it is dropped here, and counted.
            if !hdr.destination.is_multicast() && sel.exact_match {
                to_wire = false;
                let stats = &mut self.switch_stats[pool.get()];
                if looped {
                    stats.looped_only += 1;
                } else {
                    stats.local_drops += 1;
                    self.counters.tx_local_drops += 1;
                }
            }
        }
        if to_wire {
            self.egress.enqueue(EgressFrame {
                data: frame,
                pool: crate::vport(pool),
                queued_at: self.now,
            });
        }
    }

    /// Where the switch sent `pool`'s frames that did not go to the egress stage. Reset by a PF
    /// reset, like the statistics registers.
    pub fn switch_stats(&self, pool: PoolIndex) -> SwitchPoolStats {
        self.switch_stats[pool.get()]
    }

    pub(crate) fn add_64(&mut self, lo: PfReg, hi: PfReg, v: u64) {
        let cur = u64::from(self.reg(lo)) | (u64::from(self.reg(hi)) << 32);
        let new = cur.wrapping_add(v);
        self.set_reg(lo, new as u32);
        self.set_reg(hi, (new >> 32) as u32);
    }

    /// A frame arriving from the wire port: pool selection and delivery. Returns the pools that
    /// accepted it.
    pub fn inject_from_wire(&mut self, frame: &[u8]) -> u32 {
        let Ok(hdr) = EthernetHeader::parse(frame) else {
            self.counters.rx_runt_frames += 1;
            return 0;
        };
        let sel = self.select_pools(&hdr, false);
        if sel.pools == 0 {
            self.counters.rx_no_pool_drops += 1;
            return 0;
        }
        let mut accepted = 0;
        for dst in 0..NUM_POOLS {
            if sel.pools & (1 << dst) != 0
                && let Some(dp) = PoolIndex::new(dst)
                && self.deliver_to_pool(dp, frame, &hdr, false)
            {
                accepted |= 1 << dst;
            }
        }
        accepted
    }
}

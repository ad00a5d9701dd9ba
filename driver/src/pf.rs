//! The PF agent: the part of a PF driver that owns the VFs. It brings the PF up for SR-IOV
//! (VMDq, VM-to-VM switching, anti-spoofing), and answers every VF mailbox message the way
//! Linux igb does (`igb_rcv_msg_from_vf` in Linux `igb_main.c`):
//!
//! * VF_RESET is always processed: the VF's filters are reset, TX/RX enabled (VFTE/VFRE), CTS
//!   set, and the reply is `VF_RESET|ACK` + MAC (3 words, no CTS), or `VF_RESET|NACK` with a zero
//!   MAC when the administrator assigned none (the VF then proposes one with SET_MAC_ADDR).
//! * Any other message from a VF without CTS gets a bare NACK word (no id, no CTS).
//! * Replies to other messages are word 0 | CTS | ACK or NACK, written back as one word.
//! * A VF reset event (VFLRE) clears the VF's state except an administratively set MAC.
//!
//! VFs are named by [`VfIndex`]; per-VF state is indexed by [`VfIndex::get`]. HAC control
//! (tagging, epochs, commit) is not the agent's: [`crate::hac::AdapterHac`] drives the PF's HAC
//! register block.

use igb_hw::mailbox::{self as msg, Message};
use igb_hw::regs::{
    self, CTRL, CTRL_EXT, DTXSWC, MAILBOX_WORDS, MDIC, MRQC, P2VMAILBOX, PfReg, RAH, RCTL,
    RTTDQSEL, TCTL, TXDCTL, VLVF, VMOLR, VT_CTL, pf,
};
use igb_hw::{MacAddress, VfIndex, frame, rate};

use crate::backend::{Bar, Clock, RegisterIo};
use crate::error::DriverError;

/// PF agent settings.
#[derive(Clone, Debug)]
pub struct PfConfig {
    /// Number of VFs the PF manages (SR-IOV must already be enabled with at least this many).
    pub num_vfs: usize,
    /// The PF's own MAC address.
    pub pf_mac: MacAddress,
    /// MAC anti-spoofing on for every VF (Linux default: on).
    pub spoof_check: bool,
    /// VM-to-VM switching inside the adapter (Linux enables it with VFs).
    pub vm_loopback: bool,
    /// VLAN filters one VF may hold (the 32 VLVF entries are shared by all pools). The default,
    /// 32, is Linux igb's behaviour: one VF can take them all. With VMs that do not trust each
    /// other, give each a share (e.g. 32 / `num_vfs`): a VF at its share gets NACK for a new VLAN.
    pub max_vlans_per_vf: usize,
    /// Link speed in Mb/s that VF rate limits are computed against (Linux uses the negotiated
    /// speed; the 82576 reports 1000). On the model, the wire's line rate.
    pub link_mbps: u32,
}

impl Default for PfConfig {
    fn default() -> Self {
        PfConfig {
            num_vfs: 2,
            pf_mac: MacAddress([0x00, 0x1B, 0x21, 0x00, 0x00, 0x01]),
            spoof_check: true,
            vm_loopback: true,
            max_vlans_per_vf: 32,
            link_mbps: 1000,
        }
    }
}

/// What the PF knows about one VF.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VfInfo {
    /// MAC set by the administrator (survives VF resets; the VF may not change it).
    pub admin_mac: Option<MacAddress>,
    /// MAC in use.
    pub mac: Option<MacAddress>,
    /// The VF completed VF_RESET (clear to send).
    pub cts: bool,
    /// VLANs the VF joined.
    pub vlans: Vec<u16>,
    /// Multicast hashes the VF registered.
    pub multicast: Vec<u16>,
    /// Max frame from SET_LPE.
    pub max_frame: u32,
    /// Multicast promiscuous.
    pub multicast_promisc: bool,
    /// Messages handled.
    pub messages: u64,
    /// Messages refused.
    pub nacks: u64,
    /// VF_RESET handshakes completed.
    pub resets: u64,
    /// VF reset events (VFLRE: VF CTRL.RST or FLR) seen.
    pub reset_events: u64,
    /// Transmit rate limit in Mb/s (0 = none), as `ip link set … vf N max_tx_rate`. PF
    /// configuration: survives VF resets.
    pub tx_rate_mbps: u32,
    /// TXDCTL.PRIORITY set on the VF's queues. A VF reset clears it (and so does the VF
    /// rewriting its TXDCTL).
    pub tx_priority: bool,
}

/// One thing the agent did, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PfEvent {
    /// A VF reset itself (VFLRE).
    VfReset(VfIndex),
    /// A message was answered.
    Message {
        /// The VF.
        vf: VfIndex,
        /// The message id.
        id: u16,
        /// ACK (true) or NACK.
        ack: bool,
    },
}

/// The PF agent.
pub struct PfAgent<R: RegisterIo, C: Clock> {
    bar: Bar<R, PfReg>,
    clock: C,
    config: PfConfig,
    vfs: Vec<VfInfo>,
    events: Vec<PfEvent>,
}

/// RAR entry used for VF `vf`'s address (Linux: `rar_entry_count − (vf + 1)`).
pub fn vf_rar_index(vf: VfIndex) -> usize {
    regs::RAR_ENTRIES - 1 - vf.get()
}

/// The index of VF `vf`'s pool in the per-pool register arrays (VMOLR): pool n for VF n.
fn pool_reg_index(vf: VfIndex) -> u8 {
    vf.pool().get() as u8
}

/// Bit `n` for VF `n` in the per-VF registers (MBVFICR, VFLRE).
fn vf_bit(vf: VfIndex) -> u32 {
    1 << vf.get()
}

impl<R: RegisterIo, C: Clock> PfAgent<R, C> {
    /// Resets the PF and brings it up for `config.num_vfs` VFs: link up, VMDq with the PF in
    /// pool `num_vfs`, VM loopback, anti-spoofing, TX/RX enabled, mailbox interrupts unmasked,
    /// and finally CTRL_EXT.PFRSTD so the VFs see RSTD.
    pub fn new(regs: R, clock: C, config: PfConfig) -> Result<Self, DriverError> {
        if config.num_vfs == 0 || config.num_vfs > 7 {
            return Err(DriverError::InvalidVfCount(config.num_vfs));
        }
        if !config.pf_mac.is_valid_unicast() {
            return Err(DriverError::InvalidMac(config.pf_mac));
        }
        let mut agent = PfAgent {
            bar: Bar::new(regs),
            clock,
            vfs: vec![VfInfo::default(); config.num_vfs],
            config,
            events: Vec::new(),
        };
        agent.bring_up();
        Ok(agent)
    }

    fn bring_up(&mut self) {
        let n = self.config.num_vfs as u32;
        self.bar.write(pf::CTRL, CTRL::RST::SET);
        self.clock.delay_ns(1_000_000);
        self.bar.write(pf::CTRL, CTRL::SLU::SET);
        self.restart_autoneg();
        self.bar.write(pf::MRQC, MRQC::MRQE::Vmdq);
        self.bar.write(
            pf::VT_CTL,
            VT_CTL::DEF_POOL.val(n) + VT_CTL::VM_REPL_EN::SET,
        );
        let (ral, rah) = igb_hw::addr::mac_to_ral_rah(self.config.pf_mac);
        self.bar.set(PfReg::RAL(0), ral);
        self.bar.set(
            PfReg::RAH(0),
            rah | regs::value(RAH::AV::SET + RAH::POOLSEL.val(1 << n)),
        );
        self.bar.set(
            PfReg::VMOLR(n as u8),
            regs::value(
                VMOLR::AUPE::SET + VMOLR::BAM::SET + VMOLR::ROMPE::SET + VMOLR::STRCRC::SET,
            ),
        );
        let spoof = if self.config.spoof_check {
            (1u32 << n) - 1
        } else {
            0
        };
        let lb = if self.config.vm_loopback {
            DTXSWC::VMDQ_LOOPBACK_EN::SET
        } else {
            DTXSWC::VMDQ_LOOPBACK_EN::CLEAR
        };
        self.bar
            .write(pf::DTXSWC, DTXSWC::MAC_SPOOF.val(spoof) + lb);
        self.bar
            .write(pf::RCTL, RCTL::EN::SET + RCTL::SECRC::SET + RCTL::BAM::SET);
        self.bar.write(pf::TCTL, TCTL::EN::SET + TCTL::PSP::SET);
        self.bar.set(PfReg::MBVFIMR, (1 << n) - 1);
        self.bar.set(PfReg::VFRE, 0);
        self.bar.set(PfReg::VFTE, 0);
        self.bar.write(pf::CTRL_EXT, CTRL_EXT::PFRSTD::SET);
    }

    /// Restarts auto-negotiation in the internal PHY (PHY control register: auto-negotiation
    /// enable + restart, 1000 Mb/s full duplex), through MDIC, as Linux igb's copper link setup
    /// does. QEMU's igb drops STATUS.LU on CTRL.RST and raises it only ~500 ms after such a
    /// restart (docs/fidelity.md); the model has no PHY (its link follows CTRL.SLU) and reports
    /// the access as completed at once. Completion (MDIC.R) is not awaited: STATUS.LU tells.
    fn restart_autoneg(&mut self) {
        // IEEE 802.3 clause 22 PHY control register (0) bits.
        const PHY_CONTROL: u32 = 0;
        const AUTONEG_ENABLE: u32 = 0x1000;
        const AUTONEG_RESTART: u32 = 0x0200;
        const FULL_DUPLEX: u32 = 0x0100;
        const SPEED_1000: u32 = 0x0040;
        let data = AUTONEG_ENABLE | AUTONEG_RESTART | FULL_DUPLEX | SPEED_1000;
        self.bar.write(
            pf::MDIC,
            MDIC::OP::Write
                + MDIC::PHYADD.val(1)
                + MDIC::REGADD.val(PHY_CONTROL)
                + MDIC::DATA.val(data),
        );
    }

    /// Sets (or clears) the administrative MAC of `vf`; takes effect at the VF's next reset, as
    /// with `ip link set … vf N mac …`.
    pub fn set_vf_mac(&mut self, vf: VfIndex, mac: Option<MacAddress>) -> Result<(), DriverError> {
        if let Some(m) = mac
            && !m.is_valid_unicast()
        {
            return Err(DriverError::InvalidMac(m));
        }
        let info = self
            .vfs
            .get_mut(vf.get())
            .ok_or(DriverError::NoSuchVf(vf.into()))?;
        info.admin_mac = mac;
        Ok(())
    }

    /// Turns MAC anti-spoofing for `vf` on or off.
    pub fn set_spoof_check(&mut self, vf: VfIndex, on: bool) -> Result<(), DriverError> {
        if vf.get() >= self.vfs.len() {
            return Err(DriverError::NoSuchVf(vf.into()));
        }
        let cur = self.bar.get(PfReg::DTXSWC);
        let bit = vf.pool().bit();
        self.bar
            .set(PfReg::DTXSWC, if on { cur | bit } else { cur & !bit });
        Ok(())
    }

    /// Limits `vf`'s transmit rate to `rate_mbps` (0 = no limit), as Linux igb's
    /// `ndo_set_vf_bw` does on the 82576: RTTDQSEL = the VF's queue n (not n + 8), RTTBCNRM =
    /// 0x14, RTTBCNRC = RS_ENA | link / rate in 14.14 fixed point. The limit is PF state: it
    /// holds across VF resets and takes effect at the queue's next packet.
    ///
    /// Errors: [`DriverError::NoSuchVf`] for a VF the agent does not manage,
    /// [`DriverError::RateAboveLink`] for a rate above [`PfConfig::link_mbps`] (Linux: -EINVAL).
    pub fn set_vf_rate(&mut self, vf: VfIndex, rate_mbps: u32) -> Result<(), DriverError> {
        if vf.get() >= self.vfs.len() {
            return Err(DriverError::NoSuchVf(vf.into()));
        }
        if rate_mbps > self.config.link_mbps {
            return Err(DriverError::RateAboveLink {
                rate_mbps,
                link_mbps: self.config.link_mbps,
            });
        }
        self.write_rate_limit(vf, rate::rttbcnrc_for(self.config.link_mbps, rate_mbps));
        self.vfs[vf.get()].tx_rate_mbps = rate_mbps;
        Ok(())
    }

    fn write_rate_limit(&mut self, vf: VfIndex, rttbcnrc: u32) {
        // VF n uses queue n (Linux programs queue n only).
        self.bar
            .write(pf::RTTDQSEL, RTTDQSEL::TXDQ_IDX.val(vf.get() as u32));
        self.bar.set(PfReg::RTTBCNRM, rate::LINUX_RTTBCNRM);
        self.bar.set(PfReg::RTTBCNRC, rttbcnrc);
    }

    /// The rate limit in force for `vf`, read back from the adapter (RTTDQSEL, RTTBCNRC), in
    /// Mb/s; `None` when its limiter is off.
    pub fn vf_rate(&mut self, vf: VfIndex) -> Result<Option<u32>, DriverError> {
        if vf.get() >= self.vfs.len() {
            return Err(DriverError::NoSuchVf(vf.into()));
        }
        self.bar
            .write(pf::RTTDQSEL, RTTDQSEL::TXDQ_IDX.val(vf.get() as u32));
        let word = self.bar.get(PfReg::RTTBCNRC);
        Ok(rate::limited_rate_mbps(self.config.link_mbps, word))
    }

    /// Sets or clears TXDCTL.PRIORITY on `vf`'s queues (n and n + 8): the adapter serves
    /// high-priority queues first. TXDCTL belongs to the VF too: a VF reset or the VF rewriting
    /// TXDCTL clears it, so a policy sets it again when it needs it.
    pub fn set_vf_priority(&mut self, vf: VfIndex, high: bool) -> Result<(), DriverError> {
        if vf.get() >= self.vfs.len() {
            return Err(DriverError::NoSuchVf(vf.into()));
        }
        for vq in 0..igb_hw::addr::QUEUES_PER_VF {
            if let Some(q) = vf.queue(vq)
                && let Some(reg) = pf::TXDCTL.get(q.get())
            {
                let bit = if high {
                    TXDCTL::PRIORITY::SET
                } else {
                    TXDCTL::PRIORITY::CLEAR
                };
                self.bar.modify(reg, bit);
            }
        }
        self.vfs[vf.get()].tx_priority = high;
        Ok(())
    }

    /// What the PF knows about `vf`.
    pub fn vf(&self, vf: VfIndex) -> Option<&VfInfo> {
        self.vfs.get(vf.get())
    }

    /// Number of VFs managed.
    pub fn num_vfs(&self) -> usize {
        self.vfs.len()
    }

    /// Takes the events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<PfEvent> {
        std::mem::take(&mut self.events)
    }

    /// The PF register access (for HAC control and diagnostics).
    pub fn bar(&self) -> &Bar<R, PfReg> {
        &self.bar
    }

    /// Services pending VF resets and mailbox messages; returns how many were handled. Never
    /// blocks: a VF holding the mailbox lock is retried on the next poll.
    pub fn poll(&mut self) -> usize {
        let mut handled = 0;
        let vflre = self.bar.get(PfReg::VFLRE);
        if vflre != 0 {
            self.bar.set(PfReg::VFLRE, vflre);
            for vf in VfIndex::all(self.vfs.len()) {
                if vflre & vf_bit(vf) != 0 {
                    self.vf_reset_event(vf);
                    handled += 1;
                }
            }
        }
        let icr = self.bar.read(pf::MBVFICR);
        for vf in VfIndex::all(self.vfs.len()) {
            // MBVFICR: VFREQ in bits 0..8, VFACK in bits 16..24.
            if icr.get() & vf_bit(vf) != 0 && self.receive(vf) {
                handled += 1;
            }
            if icr.get() & (vf_bit(vf) << 16) != 0 {
                self.bar.set(PfReg::MBVFICR, vf_bit(vf) << 16);
            }
        }
        handled
    }

    fn vf_reset_event(&mut self, vf: VfIndex) {
        // The reset cleared TXDCTL (PRIORITY with it); the rate limit is the PF's and stays.
        self.clear_vf_state(vf);
        self.vfs[vf.get()].reset_events += 1;
        self.events.push(PfEvent::VfReset(vf));
    }

    fn clear_vf_state(&mut self, vf: VfIndex) {
        let old = &self.vfs[vf.get()];
        self.vfs[vf.get()] = VfInfo {
            admin_mac: old.admin_mac,
            mac: old.admin_mac,
            resets: old.resets,
            reset_events: old.reset_events,
            messages: old.messages,
            nacks: old.nacks,
            tx_rate_mbps: old.tx_rate_mbps,
            ..VfInfo::default()
        };
        self.clear_vf_filters(vf);
    }

    fn clear_vf_filters(&mut self, vf: VfIndex) {
        let p = pool_reg_index(vf);
        self.bar.set(
            PfReg::VMOLR(p),
            regs::value(VMOLR::AUPE::SET + VMOLR::BAM::SET + VMOLR::STRCRC::SET),
        );
        for i in 0..32u8 {
            let v = regs::view::<VLVF::Register>(self.bar.get(PfReg::VLVF(i)));
            let pools = v.read(VLVF::POOLSEL) & !vf.pool().bit();
            if v.read(VLVF::POOLSEL) & vf.pool().bit() != 0 {
                let nv = if pools == 0 {
                    0
                } else {
                    (v.get() & !regs::value(VLVF::POOLSEL.val(0xFF)))
                        | regs::value(VLVF::POOLSEL.val(pools))
                };
                self.bar.set(PfReg::VLVF(i), nv);
            }
        }
        self.program_rar(vf, None);
    }

    fn program_rar(&mut self, vf: VfIndex, mac: Option<MacAddress>) {
        let Some((ral, rah)) = regs::rar_entry(vf_rar_index(vf)) else {
            return;
        };
        match mac {
            Some(m) => {
                let (l, h) = igb_hw::addr::mac_to_ral_rah(m);
                self.bar.set(ral, l);
                self.bar.set(
                    rah,
                    h | regs::value(RAH::AV::SET + RAH::POOLSEL.val(vf.pool().bit())),
                );
            }
            None => {
                self.bar.set(ral, 0);
                self.bar.set(rah, 0);
            }
        }
    }

    /// Reads VF `vf`'s message under the PF lock, answers it; `false` if the lock was busy.
    fn receive(&mut self, vf: VfIndex) -> bool {
        let Some(mbx) = pf::P2VMAILBOX.get(vf.get()) else {
            return false;
        };
        self.bar.write(mbx, P2VMAILBOX::PFU::SET);
        if !self.bar.read(mbx).is_set(P2VMAILBOX::PFU) {
            return false; // the VF holds the buffer; try again on the next poll
        }
        self.bar.set(PfReg::MBVFICR, vf_bit(vf));
        let mut words = [0u32; MAILBOX_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = self
                .bar
                .get(PfReg::VMBMEM((vf.get() * MAILBOX_WORDS + i) as u8));
        }
        // Acknowledge the read (PFU stays held for the reply).
        self.bar
            .write(mbx, P2VMAILBOX::ACK::SET + P2VMAILBOX::PFU::SET);
        let reply = self.handle(vf, &words);
        if let Some(reply) = reply {
            for (i, w) in reply.iter().enumerate() {
                self.bar
                    .set(PfReg::VMBMEM((vf.get() * MAILBOX_WORDS + i) as u8), *w);
            }
            // STS without PFU: message sent, lock released.
            self.bar.write(mbx, P2VMAILBOX::STS::SET);
        } else {
            self.bar.write(mbx, P2VMAILBOX::PFU::CLEAR);
        }
        true
    }

    fn handle(&mut self, vf: VfIndex, words: &[u32; MAILBOX_WORDS]) -> Option<Vec<u32>> {
        let w0 = words[0];
        let flags = msg::Flags::from_word(w0);
        if flags.ack || flags.nack {
            return None; // already a reply: ignore (Linux does the same)
        }
        let id = (w0 & msg::ID_MASK) as u16;
        self.vfs[vf.get()].messages += 1;
        if id == msg::VF_RESET {
            // The VF reset itself before it sent this message, so a VFLRE bit still pending
            // for it is that reset: take it now, before the reply. Left for the next poll it
            // would count as a new reset and take back the CTS the reply gives, and the VF's
            // next request would be NACKed (a poll that read VFLRE just before the VF reset
            // and then found its message: seen under single-threaded TCG, docs/qemu.md).
            if self.bar.get(PfReg::VFLRE) & vf_bit(vf) != 0 {
                self.bar.set(PfReg::VFLRE, vf_bit(vf));
                self.vf_reset_event(vf);
            }
            return Some(self.reset_reply(vf));
        }
        if !self.vfs[vf.get()].cts {
            // Until the VF completes a reset it may configure nothing: a bare NACK (Linux sends
            // exactly this word, without the id and without CTS).
            self.vfs[vf.get()].nacks += 1;
            self.events.push(PfEvent::Message { vf, id, ack: false });
            return Some(vec![msg::NACK]);
        }
        let ok = match Message::parse(words) {
            Ok(env) => self.apply(vf, env.message),
            Err(_) => false,
        };
        if !ok {
            self.vfs[vf.get()].nacks += 1;
        }
        self.events.push(PfEvent::Message { vf, id, ack: ok });
        let flag = if ok { msg::ACK } else { msg::NACK };
        Some(vec![
            (w0 & !(msg::ACK | msg::NACK | msg::CTS)) | flag | msg::CTS,
        ])
    }

    fn reset_reply(&mut self, vf: VfIndex) -> Vec<u32> {
        // Keep a MAC the VF set itself if the administrator set none (Linux keeps vf_mac).
        let i = vf.get();
        let own = self.vfs[i].mac;
        self.clear_vf_state(vf);
        if self.vfs[i].admin_mac.is_none() {
            self.vfs[i].mac = own;
        }
        self.vfs[i].resets += 1;
        let bit = vf.pool().bit();
        self.bar.set(PfReg::VFTE, self.bar.get(PfReg::VFTE) | bit);
        self.bar.set(PfReg::VFRE, self.bar.get(PfReg::VFRE) | bit);
        let mac = self.vfs[i].mac;
        self.program_rar(vf, mac);
        self.vfs[i].cts = true;
        let mut out = [0u32; MAILBOX_WORDS];
        let (flags, m) = match mac {
            Some(m) => (
                msg::Flags {
                    ack: true,
                    ..Default::default()
                },
                m,
            ),
            None => (
                msg::Flags {
                    nack: true,
                    ..Default::default()
                },
                MacAddress::default(),
            ),
        };
        let n = Message::Reset { mac: m }.emit(flags, &mut out);
        self.events.push(PfEvent::Message {
            vf,
            id: msg::VF_RESET,
            ack: mac.is_some(),
        });
        out[..n].to_vec()
    }

    fn apply(&mut self, vf: VfIndex, message: Message) -> bool {
        let p = pool_reg_index(vf);
        let i = vf.get();
        match message {
            Message::SetMacAddr { subcommand: 0, mac } => {
                // Linux igb refuses any SET_MAC_ADDR from a VF whose MAC the administrator set,
                // even the same MAC ("VF attempted to override administratively set MAC
                // address"), unless the VF is trusted.
                if !mac.is_valid_unicast() || self.vfs[i].admin_mac.is_some() {
                    return false;
                }
                self.vfs[i].mac = Some(mac);
                self.program_rar(vf, Some(mac));
                true
            }
            // Extra unicast filters are not offered (no free RAR policy yet): clearing is fine,
            // adding is refused, and igbvf carries on without them.
            Message::SetMacAddr {
                subcommand: msg::MAC_FILTER_CLR,
                ..
            } => true,
            Message::SetMacAddr { .. } => false,
            Message::SetMulticast { hashes, overflow } => {
                for &h in &hashes {
                    // A hash is 12 bits (128 MTA words × 32 bits); the upper bits of the
                    // VF's 16-bit field are ignored, as Linux igb does, so a malformed hash
                    // cannot address a register past the MTA (the RAR entries follow it).
                    let reg = PfReg::MTA(((h >> 5) & 0x7F) as u8);
                    self.bar.set(reg, self.bar.get(reg) | (1 << (h & 0x1F)));
                }
                let mut vmolr = self.bar.get(PfReg::VMOLR(p)) | regs::value(VMOLR::ROMPE::SET);
                if overflow {
                    vmolr |= regs::value(VMOLR::MPME::SET);
                }
                self.bar.set(PfReg::VMOLR(p), vmolr);
                self.vfs[i].multicast = hashes;
                true
            }
            Message::SetVlan { vid, add } => self.set_vlan(vf, vid, add),
            Message::SetLpe { max_frame } => {
                if !(64..=frame::MAX_JUMBO_FRAME as u32).contains(&max_frame) {
                    return false;
                }
                let v = regs::view::<VMOLR::Register>(self.bar.get(PfReg::VMOLR(p)));
                let mut vm = v;
                vm.modify(VMOLR::LPE::SET + VMOLR::RLPML.val(max_frame));
                self.bar.set(PfReg::VMOLR(p), vm.get());
                self.vfs[i].max_frame = max_frame;
                true
            }
            Message::SetPromisc { unicast, multicast } => {
                if unicast {
                    return false; // the 82576 has no VF unicast promiscuous mode
                }
                let cur = self.bar.get(PfReg::VMOLR(p));
                let mpme = regs::value(VMOLR::MPME::SET);
                self.bar.set(
                    PfReg::VMOLR(p),
                    if multicast { cur | mpme } else { cur & !mpme },
                );
                self.vfs[i].multicast_promisc = multicast;
                true
            }
            _ => false,
        }
    }

    fn set_vlan(&mut self, vf: VfIndex, vid: u16, add: bool) -> bool {
        let bit = vf.pool().bit();
        let i = vf.get();
        let entries: Vec<_> = (0..32u8)
            .map(|i| regs::view::<VLVF::Register>(self.bar.get(PfReg::VLVF(i))))
            .collect();
        let existing = entries
            .iter()
            .position(|e| e.is_set(VLVF::VLANID_ENABLE) && e.read(VLVF::VID) == u32::from(vid));
        if add {
            if !self.vfs[i].vlans.contains(&vid)
                && self.vfs[i].vlans.len() >= self.config.max_vlans_per_vf
            {
                return false;
            }
            let idx = match existing
                .or_else(|| entries.iter().position(|e| !e.is_set(VLVF::VLANID_ENABLE)))
            {
                Some(i) => i,
                None => return false,
            };
            let pools = entries[idx].read(VLVF::POOLSEL) | bit;
            self.bar.set(
                PfReg::VLVF(idx as u8),
                regs::value(
                    VLVF::VLANID_ENABLE::SET
                        + VLVF::VID.val(u32::from(vid))
                        + VLVF::POOLSEL.val(pools),
                ),
            );
            let vfta = PfReg::VFTA((vid >> 5) as u8);
            self.bar.set(vfta, self.bar.get(vfta) | (1 << (vid & 0x1F)));
            if !self.vfs[i].vlans.contains(&vid) {
                self.vfs[i].vlans.push(vid);
            }
        } else if let Some(idx) = existing {
            let pools = entries[idx].read(VLVF::POOLSEL) & !bit;
            let v = if pools == 0 {
                0
            } else {
                regs::value(
                    VLVF::VLANID_ENABLE::SET
                        + VLVF::VID.val(u32::from(vid))
                        + VLVF::POOLSEL.val(pools),
                )
            };
            self.bar.set(PfReg::VLVF(idx as u8), v);
            self.vfs[i].vlans.retain(|&x| x != vid);
        }
        true
    }

    /// Sends PF_CONTROL_MSG to `vf` (igb's "ping"), with CTS if the VF is clear to send.
    pub fn ping(&mut self, vf: VfIndex) -> Result<(), DriverError> {
        let info = self
            .vfs
            .get(vf.get())
            .ok_or(DriverError::NoSuchVf(vf.into()))?;
        let word = u32::from(msg::PF_CONTROL_MSG) | if info.cts { msg::CTS } else { 0 };
        let Some(mbx) = pf::P2VMAILBOX.get(vf.get()) else {
            return Err(DriverError::NoSuchVf(vf.into()));
        };
        self.bar.write(mbx, P2VMAILBOX::PFU::SET);
        if !self.bar.read(mbx).is_set(P2VMAILBOX::PFU) {
            return Err(DriverError::MailboxBusy { tries: 1 });
        }
        self.bar
            .set(PfReg::VMBMEM((vf.get() * MAILBOX_WORDS) as u8), word);
        self.bar.write(mbx, P2VMAILBOX::STS::SET);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::Model;
    use igb_model::{FunctionId, NicConfig};

    fn agent(
        num_vfs: usize,
    ) -> Result<PfAgent<crate::model::ModelBar, crate::model::ModelClock>, DriverError> {
        let model = Model::new(NicConfig::default());
        model.enable_vfs(num_vfs.min(igb_hw::addr::MAX_VFS));
        PfAgent::new(
            model.bar0(FunctionId::Pf),
            model.clock(),
            PfConfig {
                num_vfs,
                ..PfConfig::default()
            },
        )
    }

    #[test]
    fn a_vf_count_the_agent_cannot_manage_is_refused_with_the_count() {
        for n in [0, 8, 1000] {
            let e = agent(n).err().unwrap();
            assert!(
                matches!(e, DriverError::InvalidVfCount(c) if c == n),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!("cannot manage {n} VFs: the PF agent takes 1..=7")
            );
        }
        assert!(agent(7).is_ok());
    }

    #[test]
    fn a_vf_index_beyond_the_managed_vfs_is_no_such_vf() {
        let mut a = agent(2).unwrap();
        let vf1 = VfIndex::new(1).unwrap();
        assert!(a.vf(vf1).is_some());
        assert!(a.set_vf_mac(vf1, None).is_ok());
        for vf in [2, 7].map(|n| VfIndex::new(n).unwrap()) {
            assert!(a.vf(vf).is_none());
            let mac = Some(MacAddress([2, 0, 0, 0, 0, 1]));
            for e in [
                a.set_vf_mac(vf, mac).err().unwrap(),
                a.set_spoof_check(vf, true).err().unwrap(),
                a.ping(vf).err().unwrap(),
            ] {
                assert!(
                    matches!(e, DriverError::NoSuchVf(n) if n.get() == vf.get()),
                    "{e:?}"
                );
                assert_eq!(e.to_string(), format!("VF {} does not exist", vf.get()));
            }
        }
        assert_eq!(
            a.bar().get(PfReg::DTXSWC) & 0b1111_1100,
            0,
            "nothing written"
        );
    }

    #[test]
    fn admin_macs_beyond_the_vfs_enabled_are_refused_at_the_first_extra_vf() {
        let model = Model::new(NicConfig::default());
        let macs = vec![Some(MacAddress([2, 0, 0, 0, 0, 1])); 12];
        let config = |num_vfs| PfConfig {
            num_vfs,
            ..PfConfig::default()
        };
        for num_vfs in [1, 7] {
            let e = model.start_pf_agent(config(num_vfs), &macs).err().unwrap();
            assert!(
                matches!(e, DriverError::NoSuchVf(n) if n.get() == num_vfs),
                "{e:?}"
            );
        }
        assert!(model.start_pf_agent(config(7), &macs[..7]).is_ok());
    }

    #[test]
    fn the_rar_entry_of_a_vf_counts_down_from_the_last() {
        let all: Vec<usize> = VfIndex::all(igb_hw::addr::MAX_VFS)
            .map(vf_rar_index)
            .collect();
        assert_eq!(all[0], regs::RAR_ENTRIES - 1);
        assert_eq!(all[7], regs::RAR_ENTRIES - 8);
    }

    #[test]
    fn vf_rate_limits_are_written_as_linux_does_and_read_back() {
        let mut a = agent(2).unwrap();
        let vf1 = VfIndex::new(1).unwrap();
        a.set_vf_rate(vf1, 300).unwrap();
        assert_eq!(a.bar().get(PfReg::RTTDQSEL), 1);
        assert_eq!(a.bar().get(PfReg::RTTBCNRM), 0x14);
        assert_eq!(a.bar().get(PfReg::RTTBCNRC), 0x8000_0000 | (3 << 14) | 5461);
        assert_eq!(a.vf_rate(vf1).unwrap(), Some(300));
        assert_eq!(a.vf_rate(VfIndex::new(0).unwrap()).unwrap(), None);
        assert_eq!(a.vf(vf1).unwrap().tx_rate_mbps, 300);
        // Rate 0 turns the limiter off, as in Linux.
        a.set_vf_rate(vf1, 0).unwrap();
        assert_eq!(a.vf_rate(vf1).unwrap(), None);
        // The whole link is a limit of factor 1.0.
        a.set_vf_rate(vf1, 1000).unwrap();
        assert_eq!(a.vf_rate(vf1).unwrap(), Some(1000));
    }

    #[test]
    fn bad_rate_requests_get_a_defined_answer_and_change_nothing() {
        let mut a = agent(2).unwrap();
        let vf0 = VfIndex::new(0).unwrap();
        a.set_vf_rate(vf0, 100).unwrap();
        let e = a.set_vf_rate(vf0, 1001).unwrap_err();
        assert!(
            matches!(
                e,
                DriverError::RateAboveLink {
                    rate_mbps: 1001,
                    link_mbps: 1000
                }
            ),
            "{e:?}"
        );
        assert_eq!(a.vf_rate(vf0).unwrap(), Some(100));
        let vf5 = VfIndex::new(5).unwrap();
        assert!(matches!(a.set_vf_rate(vf5, 10), Err(DriverError::NoSuchVf(n)) if n.get() == 5));
        assert!(matches!(a.vf_rate(vf5), Err(DriverError::NoSuchVf(_))));
        assert!(matches!(
            a.set_vf_priority(vf5, true),
            Err(DriverError::NoSuchVf(_))
        ));
        assert_eq!(
            a.bar().get(PfReg::RTTDQSEL),
            0,
            "no register of VF 5 was touched"
        );
    }

    #[test]
    fn a_vf_reset_keeps_the_rate_and_clears_the_priority() {
        let model = Model::new(NicConfig::default());
        model.enable_vfs(2);
        let mut a = PfAgent::new(
            model.bar0(FunctionId::Pf),
            model.clock(),
            PfConfig::default(),
        )
        .unwrap();
        let vf1 = VfIndex::new(1).unwrap();
        a.set_vf_rate(vf1, 250).unwrap();
        a.set_vf_priority(vf1, true).unwrap();
        assert_ne!(a.bar().get(PfReg::TXDCTL(1)) & (1 << 27), 0);
        assert_ne!(a.bar().get(PfReg::TXDCTL(9)) & (1 << 27), 0);
        // The VF resets itself between the agent's register writes and its next poll.
        model
            .nic()
            .vf_write(vf1, igb_hw::regs::VfReg::CTRL, 1 << 26);
        a.set_vf_rate(vf1, 200).unwrap();
        assert_eq!(a.poll(), 1);
        assert_eq!(a.vf_rate(vf1).unwrap(), Some(200));
        assert_eq!(a.vf(vf1).unwrap().tx_rate_mbps, 200);
        assert!(!a.vf(vf1).unwrap().tx_priority);
        assert_eq!(a.bar().get(PfReg::TXDCTL(1)) & (1 << 27), 0);
    }

    /// PF register access that runs `hook` once, right after the first read of VFLRE once
    /// armed: the VF acting between the agent's read of VFLRE and its read of MBVFICR.
    struct AfterVflreRead {
        inner: crate::model::ModelBar,
        armed: std::rc::Rc<std::cell::Cell<bool>>,
        hook: std::rc::Rc<dyn Fn()>,
    }

    impl RegisterIo for AfterVflreRead {
        fn read32(&self, offset: igb_hw::RegisterOffset) -> u32 {
            let v = self.inner.read32(offset);
            if offset == PfReg::VFLRE.offset() && self.armed.replace(false) {
                (self.hook)();
            }
            v
        }
        fn write32(&self, offset: igb_hw::RegisterOffset, value: u32) {
            self.inner.write32(offset, value);
        }
    }

    #[test]
    fn a_vf_reset_seen_after_its_reset_message_does_not_take_back_the_cts() {
        let model = Model::new(NicConfig::default());
        model.enable_vfs(2);
        let vf0 = VfIndex::new(0).unwrap();
        let armed = std::rc::Rc::new(std::cell::Cell::new(false));
        let vf_model = model.clone();
        // The VF (as igbvf does): CTRL.RST, which the hardware reports in VFLRE, then the
        // RESET message.
        let hook = std::rc::Rc::new(move || {
            let bar: Bar<_, igb_hw::regs::VfReg> = Bar::new(vf_model.bar0(FunctionId::Vf(vf0)));
            bar.set(igb_hw::regs::VfReg::CTRL, 1 << 26);
            crate::mailbox::VfMailbox::default()
                .write(&bar, &vf_model.clock(), &[u32::from(msg::VF_RESET)])
                .unwrap();
        });
        let io = AfterVflreRead {
            inner: model.bar0(FunctionId::Pf),
            armed: armed.clone(),
            hook,
        };
        let mut a = PfAgent::new(
            io,
            model.clock(),
            PfConfig {
                num_vfs: 2,
                ..PfConfig::default()
            },
        )
        .unwrap();
        a.poll();
        a.take_events();
        let before = a.vf(vf0).unwrap().clone();
        // The poll reads VFLRE (nothing), the VF resets and sends RESET, the poll finds it.
        armed.set(true);
        assert_eq!(a.poll(), 1);
        assert!(!armed.get(), "the hook ran");
        let after = a.vf(vf0).unwrap().clone();
        assert!(after.cts, "the RESET reply gives CTS");
        assert_eq!(after.resets, before.resets + 1);
        assert_eq!(
            after.reset_events,
            before.reset_events + 1,
            "the reset counted once"
        );
        assert_eq!(a.bar().get(PfReg::VFLRE) & vf_bit(vf0), 0, "VFLRE taken");
        assert!(a.take_events().contains(&PfEvent::VfReset(vf0)));
        // The next poll finds no reset left: the VF keeps its CTS and may configure itself.
        assert_eq!(a.poll(), 0);
        let later = a.vf(vf0).unwrap();
        assert!(later.cts);
        assert_eq!(later.reset_events, after.reset_events);
        assert_eq!(later.nacks, before.nacks);
    }
}

//! The VF driver: brings a VF up the way Linux igbvf does (reset, mailbox handshake, MAC,
//! max frame, rings), then sends and receives frames in batches.
//!
//! Init sequence (Linux `e1000_reset_hw_vf` / `igbvf_configure`; datasheet 4.2.2.2, 7.8.2.9):
//! 1. CTRL.RST; wait for the bit to self-clear. RSTD is *not* required: QEMU never sets it after
//!    a VF reset (QEMU `hw/net/igb_core.c`), while real hardware and our model do.
//! 2. If RSTI is set the PF is still resetting: wait up to the mailbox timeout, then
//!    [`DriverError::PfInReset`].
//! 3. VF_RESET → the PF answers ACK + MAC (3 words), or NACK when it has no MAC for us; then we
//!    pick one (configured, or a random locally administered address) and send SET_MAC_ADDR.
//! 4. SET_MAC_ADDR with the MAC in use (as igbvf's `init_hw`), SET_LPE for the MTU.
//! 5. TX/RX queue 0 programmed with the queue disabled, then enabled; all RX buffers posted
//!    (RDT = size − 1) after a fence. Interrupt vectors mapped as igbvf does (TX 0, RX 1,
//!    mailbox 2), left masked: this driver polls.

use bytes::Bytes;
use igb_hw::mailbox::Message;
use igb_hw::regs::{CTRL, IVAR_MISC, IVAR0, RXDCTL, SRRCTL, TXDCTL, VfReg, vf};
use igb_hw::{MacAddress, frame};

use crate::backend::{Bar, Clock, DmaAllocator, RegisterIo, doorbell_fence};
use crate::error::DriverError;
use crate::mailbox::{MailboxConfig, VfMailbox};
use crate::ring::{RxMeta, RxRing, TxOffload, TxRing};

/// VF driver settings.
#[derive(Clone, Debug)]
pub struct VfConfig {
    /// TX descriptors (multiple of 8, 8..=4096).
    pub tx_ring_size: u32,
    /// RX descriptors (multiple of 8, 8..=4096).
    pub rx_ring_size: u32,
    /// Bytes per buffer (multiple of 1024, 1024..=16384).
    pub buffer_size: usize,
    /// MTU (68..=9216); the max frame sent to the PF is MTU + 14 + 4 (VLAN) + 4 (FCS).
    pub mtu: usize,
    /// MAC to use when the PF assigns none (NACK to VF_RESET); random if `None`.
    pub fallback_mac: Option<MacAddress>,
    /// Seed for the random fallback MAC (so runs on the model are reproducible).
    pub mac_seed: u64,
    /// Mailbox timing.
    pub mailbox: MailboxConfig,
    /// How long to wait for CTRL.RST to self-clear.
    pub reset_timeout_ns: u64,
}

impl Default for VfConfig {
    fn default() -> Self {
        VfConfig {
            tx_ring_size: 256,
            rx_ring_size: 256,
            buffer_size: 2048,
            mtu: 1500,
            fallback_mac: None,
            mac_seed: 0x5EED,
            mailbox: MailboxConfig::default(),
            reset_timeout_ns: 10_000_000,
        }
    }
}

/// Where the MAC address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacSource {
    /// The PF's VF_RESET reply.
    Pf,
    /// Chosen by the driver after the PF answered NACK, accepted by SET_MAC_ADDR.
    Driver,
}

/// Link state as igbvf computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// STATUS.LU set and the PF is not resetting.
    Up,
    /// STATUS.LU clear.
    Down,
    /// The PF is resetting (RSTI).
    PfReset,
}

/// Traffic counters: 64-bit totals of the VF's free-running 32-bit registers since init.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfStats {
    /// Good packets received (VFGPRC).
    pub rx_packets: u64,
    /// Good octets received (VFGORC).
    pub rx_bytes: u64,
    /// Good packets transmitted (VFGPTC).
    pub tx_packets: u64,
    /// Good octets transmitted (VFGOTC).
    pub tx_bytes: u64,
    /// Multicast packets received (VFMPRC).
    pub rx_multicast: u64,
    /// RX packets dropped for lack of descriptors (RQDPC, read-to-clear, accumulated).
    pub rx_dropped: u64,
    /// Frames the driver dropped because the descriptor reported errors.
    pub rx_errors: u64,
}

const STAT_REGS: [VfReg; 5] = [
    VfReg::VFGPRC,
    VfReg::VFGORC,
    VfReg::VFGPTC,
    VfReg::VFGOTC,
    VfReg::VFMPRC,
];

/// A VF brought up and ready to send and receive.
pub struct VfDriver<R: RegisterIo, D: DmaAllocator, C: Clock> {
    bar: Bar<R, VfReg>,
    dma: D,
    clock: C,
    mbx: VfMailbox,
    config: VfConfig,
    mac: MacAddress,
    mac_source: MacSource,
    max_frame: usize,
    tx: TxRing<D::Region>,
    /// The last TDT value written: descriptors from here to the software tail are held (written
    /// but not handed to the hardware). Only [`VfDriver::tx_doorbell_to`] moves it over them.
    tx_doorbell: u32,
    rx: RxRing<D::Region>,
    last_raw: [u32; 5],
    totals: [u64; 5],
    rx_dropped: u64,
}

fn random_local_mac(seed: u64) -> MacAddress {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    let b = x.to_le_bytes();
    // Locally administered, unicast.
    MacAddress([(b[0] & 0xFC) | 0x02, b[1], b[2], b[3], b[4], b[5]])
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> VfDriver<R, D, C> {
    /// Brings the VF up (see the module documentation for the sequence).
    pub fn new(regs: R, dma: D, clock: C, config: VfConfig) -> Result<Self, DriverError> {
        if !(68..=9216).contains(&config.mtu) {
            return Err(DriverError::InvalidMtu(config.mtu));
        }
        if !(1024..=16384).contains(&config.buffer_size) || !config.buffer_size.is_multiple_of(1024)
        {
            return Err(DriverError::FrameTooLarge {
                len: config.buffer_size,
                max: 16384,
            });
        }
        let tx = TxRing::new(&dma, config.tx_ring_size, config.buffer_size)?;
        let rx = RxRing::new(&dma, config.rx_ring_size, config.buffer_size)?;
        let mut d = VfDriver {
            bar: Bar::new(regs),
            dma,
            clock,
            mbx: VfMailbox::new(config.mailbox),
            mac: MacAddress::default(),
            mac_source: MacSource::Pf,
            max_frame: config.mtu
                + frame::ETHERNET_HEADER_LEN
                + frame::VLAN_TAG_LEN
                + frame::FCS_LEN,
            config,
            tx,
            tx_doorbell: 0,
            rx,
            last_raw: [0; 5],
            totals: [0; 5],
            rx_dropped: 0,
        };
        d.bring_up()?;
        for (i, r) in STAT_REGS.iter().enumerate() {
            d.last_raw[i] = d.bar.get(*r);
        }
        Ok(d)
    }

    fn reset_hw(&mut self) -> Result<(), DriverError> {
        self.bar.write(vf::CTRL, CTRL::RST::SET);
        let start = self.clock.now_ns();
        while self.bar.read(vf::CTRL).is_set(CTRL::RST) {
            if self.clock.now_ns() - start > self.config.reset_timeout_ns {
                return Err(DriverError::ResetTimeout);
            }
            self.clock.delay_ns(5_000);
        }
        self.mbx.clear_cache();
        // Consume RSTD if the hardware set it; wait out RSTI.
        let _ = self.mbx.check_for_reset(&self.bar);
        let start = self.clock.now_ns();
        while self.mbx.pf_in_reset(&self.bar) {
            if self.clock.now_ns() - start > self.config.mailbox.timeout_ns {
                return Err(DriverError::PfInReset);
            }
            self.clock.delay_ns(self.config.mailbox.poll_ns);
        }
        Ok(())
    }

    fn bring_up(&mut self) -> Result<(), DriverError> {
        self.reset_hw()?;
        // VF_RESET: the reply carries our MAC, or NACK when the PF has none for us.
        match self.mbx.request(
            &self.bar,
            &self.clock,
            &Message::Reset {
                mac: MacAddress::default(),
            },
        ) {
            Ok(env) => match env.message {
                Message::Reset { mac } if mac.is_valid_unicast() => {
                    self.mac = mac;
                    self.mac_source = MacSource::Pf;
                }
                _ => self.choose_mac(),
            },
            Err(DriverError::Nack { .. }) => self.choose_mac(),
            Err(e) => return Err(e),
        }
        if !self.mac.is_valid_unicast() {
            return Err(DriverError::InvalidMac(self.mac));
        }
        match self.mbx.request(
            &self.bar,
            &self.clock,
            &Message::SetMacAddr {
                subcommand: 0,
                mac: self.mac,
            },
        ) {
            Ok(_) => {}
            // Linux igb NACKs SET_MAC_ADDR from an untrusted VF whose MAC the administrator
            // set, even for that same MAC; igbvf ignores the NACK and keeps the PF's MAC.
            Err(DriverError::Nack { .. }) if self.mac_source == MacSource::Pf => {}
            Err(e) => return Err(e),
        }
        self.mbx.request(
            &self.bar,
            &self.clock,
            &Message::SetLpe {
                max_frame: self.max_frame as u32,
            },
        )?;
        self.configure_queues();
        Ok(())
    }

    fn choose_mac(&mut self) {
        self.mac = self
            .config
            .fallback_mac
            .unwrap_or_else(|| random_local_mac(self.config.mac_seed));
        self.mac_source = MacSource::Driver;
    }

    fn configure_queues(&mut self) {
        let (Some(txdctl), Some(rxdctl)) = (vf::TXDCTL.get(0), vf::RXDCTL.get(0)) else {
            return;
        };
        // TX queue 0.
        self.bar.write(txdctl, TXDCTL::ENABLE::CLEAR);
        self.tx.reset();
        let t = self.tx.ring_iova().0;
        self.bar.set(VfReg::TDBAL(0), t as u32);
        self.bar.set(VfReg::TDBAH(0), (t >> 32) as u32);
        self.bar.set(VfReg::TDLEN(0), self.tx.ring_bytes());
        self.bar.set(VfReg::TDH(0), 0);
        self.bar.set(VfReg::TDT(0), 0);
        self.tx_doorbell = 0;
        self.bar.write(txdctl, TXDCTL::ENABLE::SET);
        // RX queue 0: one buffer per descriptor, drop when out of descriptors.
        self.bar.write(rxdctl, RXDCTL::ENABLE::CLEAR);
        self.rx.reset();
        let r = self.rx.ring_iova().0;
        self.bar.set(VfReg::RDBAL(0), r as u32);
        self.bar.set(VfReg::RDBAH(0), (r >> 32) as u32);
        self.bar.set(VfReg::RDLEN(0), self.rx.ring_bytes());
        if let Some(srrctl) = vf::SRRCTL.get(0) {
            self.bar.write(
                srrctl,
                SRRCTL::BSIZEPACKET.val((self.config.buffer_size / 1024) as u32)
                    + SRRCTL::DESCTYPE::AdvancedOneBuffer
                    + SRRCTL::DROP_EN::SET,
            );
        }
        self.bar.set(VfReg::RDH(0), 0);
        self.bar.set(VfReg::RDT(0), 0);
        self.bar.write(
            rxdctl,
            RXDCTL::ENABLE::SET
                + RXDCTL::PTHRESH.val(16)
                + RXDCTL::HTHRESH.val(8)
                + RXDCTL::WTHRESH.val(1),
        );
        // Buffers were posted by reset(); make them visible before handing them over.
        doorbell_fence();
        self.bar.set(VfReg::RDT(0), self.rx.size() - 1);
        // Vectors as igbvf: TX q0 → 0, RX q0 → 1, mailbox → 2; masked (polling driver).
        self.bar.write(
            vf::IVAR0,
            IVAR0::TX0.val(0) + IVAR0::TX0_VALID::SET + IVAR0::RX0.val(1) + IVAR0::RX0_VALID::SET,
        );
        self.bar.write(
            vf::IVAR_MISC,
            IVAR_MISC::VECTOR.val(2) + IVAR_MISC::VALID::SET,
        );
        self.bar.set(VfReg::EIMC, 0x7);
    }

    /// Resets the VF and brings it up again (frames in flight are lost, as with igbvf's reset;
    /// held descriptors are dropped with the ring, never handed to the hardware).
    pub fn reset(&mut self) -> Result<(), DriverError> {
        self.bring_up()
    }

    /// The MAC address in use.
    pub fn mac(&self) -> MacAddress {
        self.mac
    }

    /// Where the MAC came from.
    pub fn mac_source(&self) -> MacSource {
        self.mac_source
    }

    /// Largest frame (without FCS) [`VfDriver::send`] accepts.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame - frame::FCS_LEN
    }

    /// The MTU.
    pub fn mtu(&self) -> usize {
        self.config.mtu
    }

    /// The clock the driver waits on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The register access (diagnostics).
    pub fn bar(&self) -> &Bar<R, VfReg> {
        &self.bar
    }

    /// The DMA allocator.
    pub fn dma(&self) -> &D {
        &self.dma
    }

    /// Sends as many of `frames` as fit in the ring; returns how many were queued. Frames are
    /// copied into the ring's recycled buffers; one doorbell per call. Refused with
    /// [`DriverError::TxHeld`] while descriptors are held beyond TDT (the doorbell would release
    /// them).
    pub fn send(&mut self, frames: &[Bytes]) -> Result<usize, DriverError> {
        self.send_with(frames.iter().map(|f| (f.as_ref(), None)))
    }

    /// Sends one frame with checksum offload (a context descriptor precedes it).
    pub fn send_offloaded(
        &mut self,
        frame: &[u8],
        offload: &TxOffload,
    ) -> Result<bool, DriverError> {
        Ok(self.send_with(std::iter::once((frame, Some(offload))))? == 1)
    }

    fn send_with<'a>(
        &mut self,
        frames: impl Iterator<Item = (&'a [u8], Option<&'a TxOffload>)>,
    ) -> Result<usize, DriverError> {
        let held = self.tx_held();
        if held > 0 {
            return Err(DriverError::TxHeld { descriptors: held });
        }
        self.tx.reclaim();
        let mut queued = 0;
        for (f, off) in frames {
            if f.len() > self.max_frame_len() {
                if queued > 0 {
                    self.ring_tx_doorbell();
                }
                return Err(DriverError::FrameTooLarge {
                    len: f.len(),
                    max: self.max_frame_len(),
                });
            }
            if self.tx.descriptors_for(f.len(), off.is_some()) > self.tx.free() {
                self.tx.reclaim();
                if self.tx.descriptors_for(f.len(), off.is_some()) > self.tx.free() {
                    break;
                }
            }
            self.tx.push(f, off);
            queued += 1;
        }
        if queued > 0 {
            self.ring_tx_doorbell();
        }
        Ok(queued)
    }

    fn ring_tx_doorbell(&mut self) {
        // Descriptors and buffers before the tail write.
        doorbell_fence();
        self.tx_doorbell = self.tx.tail.get();
        self.bar.set(VfReg::TDT(0), self.tx_doorbell);
    }

    /// Descriptors written beyond TDT and not handed to the hardware.
    pub fn tx_held(&self) -> u32 {
        crate::ring::RingIndex::at(self.tx_doorbell, self.tx.size())
            .distance_to(self.tx.tail, self.tx.size())
    }

    /// Writes one frame's descriptors at the tail without ringing the doorbell (for holding
    /// frames in the ring until a commit); `false` if the ring has no room.
    pub(crate) fn tx_push_held(&mut self, frame: &[u8]) -> Result<bool, DriverError> {
        if frame.len() > self.max_frame_len() {
            return Err(DriverError::FrameTooLarge {
                len: frame.len(),
                max: self.max_frame_len(),
            });
        }
        self.tx.reclaim();
        if self.tx.descriptors_for(frame.len(), false) > self.tx.free() {
            return Ok(false);
        }
        self.tx.push(frame, None);
        Ok(true)
    }

    /// The software tail (next descriptor to be written).
    pub(crate) fn tx_tail(&self) -> u32 {
        self.tx.tail.get()
    }

    /// Hands held descriptors up to (not including) `index` to the hardware: fence, then TDT.
    /// `index` must lie in the held range (from the last doorbell to the software tail); any
    /// other value is ignored, so TDT never moves backwards or past the written descriptors.
    pub(crate) fn tx_doorbell_to(&mut self, index: u32) {
        let size = self.tx.size();
        let from = crate::ring::RingIndex::at(self.tx_doorbell, size);
        let to = crate::ring::RingIndex::at(index, size);
        let step = from.distance_to(to, size);
        if step == 0 || step > self.tx_held() {
            return;
        }
        doorbell_fence();
        self.tx_doorbell = to.get();
        self.bar.set(VfReg::TDT(0), self.tx_doorbell);
    }

    /// Takes back every held descriptor (those beyond the last doorbell, which the hardware
    /// never saw); the software tail returns to TDT.
    pub(crate) fn tx_take_back_held(&mut self) {
        self.tx
            .rewind(crate::ring::RingIndex::at(self.tx_doorbell, self.tx.size()));
    }

    /// Packets whose transmission completed since the last call (reclaims descriptors).
    pub fn reclaim(&mut self) -> usize {
        self.tx.reclaim()
    }

    /// Free TX descriptors (after reclaiming completed ones).
    pub fn tx_free(&mut self) -> u32 {
        self.tx.reclaim();
        self.tx.free()
    }

    /// TX descriptors not yet completed.
    pub fn tx_in_flight(&self) -> u32 {
        self.tx.in_flight()
    }

    /// Appends up to `max` received frames to `out`; returns how many.
    pub fn recv(&mut self, out: &mut Vec<Bytes>, max: usize) -> usize {
        self.recv_with_meta(max, |f, _| out.push(Bytes::copy_from_slice(f)))
    }

    /// Receives up to `max` frames, calling `each` with the bytes and metadata of each.
    pub fn recv_with_meta(&mut self, max: usize, each: impl FnMut(&[u8], RxMeta)) -> usize {
        let (n, last) = self.rx.poll(max, each);
        if let Some(i) = last {
            // Re-posted descriptors before the tail write.
            doorbell_fence();
            self.bar.set(VfReg::RDT(0), i);
        }
        n
    }

    /// Link state: STATUS.LU, unless the PF is resetting.
    pub fn link(&mut self) -> LinkState {
        if self.mbx.pf_in_reset(&self.bar) {
            return LinkState::PfReset;
        }
        if self.bar.read(vf::STATUS).is_set(igb_hw::regs::STATUS::LU) {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }

    /// Counters since init (32-bit hardware counters extended to 64 bits; call at least once
    /// per wrap period).
    pub fn stats(&mut self) -> VfStats {
        for (i, r) in STAT_REGS.iter().enumerate() {
            let raw = self.bar.get(*r);
            self.totals[i] += u64::from(raw.wrapping_sub(self.last_raw[i]));
            self.last_raw[i] = raw;
        }
        self.rx_dropped += u64::from(self.bar.get(VfReg::RQDPC(0)));
        VfStats {
            rx_packets: self.totals[0],
            rx_bytes: self.totals[1],
            tx_packets: self.totals[2],
            tx_bytes: self.totals[3],
            rx_multicast: self.totals[4],
            rx_dropped: self.rx_dropped,
            rx_errors: self.rx.errors,
        }
    }

    /// Joins multicast groups (SET_MULTICAST with their MTA hashes; more than 30 → overflow).
    pub fn set_multicast(&mut self, groups: &[MacAddress]) -> Result<(), DriverError> {
        let overflow = groups.len() > igb_hw::mailbox::MAX_MULTICAST_HASHES;
        let hashes = groups
            .iter()
            .take(igb_hw::mailbox::MAX_MULTICAST_HASHES)
            .map(igb_hw::addr::mta_hash)
            .collect();
        self.mbx
            .request(
                &self.bar,
                &self.clock,
                &Message::SetMulticast { hashes, overflow },
            )
            .map(|_| ())
    }

    /// Adds or removes a VLAN filter.
    pub fn set_vlan(&mut self, vid: u16, add: bool) -> Result<(), DriverError> {
        self.mbx
            .request(
                &self.bar,
                &self.clock,
                &Message::SetVlan {
                    vid: vid & 0xFFF,
                    add,
                },
            )
            .map(|_| ())
    }

    /// Requests promiscuous modes (a Linux PF refuses unicast promiscuous with NACK).
    pub fn set_promiscuous(&mut self, unicast: bool, multicast: bool) -> Result<(), DriverError> {
        self.mbx
            .request(
                &self.bar,
                &self.clock,
                &Message::SetPromisc { unicast, multicast },
            )
            .map(|_| ())
    }

    /// Changes the MTU: SET_LPE with the new maximum frame.
    pub fn set_mtu(&mut self, mtu: usize) -> Result<(), DriverError> {
        if !(68..=9216).contains(&mtu) {
            return Err(DriverError::InvalidMtu(mtu));
        }
        let max_frame = mtu + frame::ETHERNET_HEADER_LEN + frame::VLAN_TAG_LEN + frame::FCS_LEN;
        self.mbx.request(
            &self.bar,
            &self.clock,
            &Message::SetLpe {
                max_frame: max_frame as u32,
            },
        )?;
        self.max_frame = max_frame;
        self.config.mtu = mtu;
        Ok(())
    }

    /// Asks the PF for a new station address.
    pub fn set_mac(&mut self, mac: MacAddress) -> Result<(), DriverError> {
        if !mac.is_valid_unicast() {
            return Err(DriverError::InvalidMac(mac));
        }
        self.mbx.request(
            &self.bar,
            &self.clock,
            &Message::SetMacAddr { subcommand: 0, mac },
        )?;
        self.mac = mac;
        Ok(())
    }
}

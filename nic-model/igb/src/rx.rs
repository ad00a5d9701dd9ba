//! RX engines (datasheet 7.1): one per physical queue, fed by the switch.
//!
//! The engine owns descriptors `[RDH, RDT)`. A frame needs ⌈len / buffer size⌉ descriptors
//! (buffer size from SRRCTL.BSIZEPACKET, else RCTL.BSIZE); if fewer are free it is dropped and
//! counted in RQDPC. Each used descriptor gets the frame's bytes in its packet buffer and a
//! write-back: first everything but the status dword, then the status dword with DD (and EOP on
//! the last), so DD is the last thing software can observe.

use std::borrow::Cow;

use igb_hw::desc::{self, Descriptor, RxReadRepr, RxWritebackRepr, rx};
use igb_hw::frame::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetHeader, FCS_LEN, VLAN_TAG_LEN};
use igb_hw::regs::{self, PfReg, RCTL, RXDCTL, SRRCTL, VMOLR};
use igb_hw::{Iova, PoolIndex, QueueIndex};

use crate::nic::{FunctionId, Nic};

/// IEEE 802.3 CRC-32 of `data` (the FCS the MAC appends when CRC stripping is off).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn packet_type(hdr: &EthernetHeader, frame: &[u8]) -> u16 {
    let l3 = hdr.payload_offset;
    match hdr.ethertype {
        ETHERTYPE_IPV4 if frame.len() > l3 + 9 => {
            rx::PKT_IPV4
                | match frame[l3 + 9] {
                    6 => rx::PKT_TCP,
                    17 => rx::PKT_UDP,
                    _ => 0,
                }
        }
        ETHERTYPE_IPV6 if frame.len() > l3 + 6 => {
            rx::PKT_IPV6
                | match frame[l3 + 6] {
                    6 => rx::PKT_TCP,
                    17 => rx::PKT_UDP,
                    _ => 0,
                }
        }
        _ => 0,
    }
}

impl Nic {
    /// Delivers `frame` to `pool`'s first queue; `false` if it was dropped.
    pub(crate) fn deliver_to_pool(
        &mut self,
        pool: PoolIndex,
        frame: &[u8],
        hdr: &EthernetHeader,
        loopback: bool,
    ) -> bool {
        if frame.len() + FCS_LEN > self.max_frame(pool) {
            self.counters.rx_oversize_drops += 1;
            return false;
        }
        let pi = pool.get() as u8;
        let vmolr = regs::view::<VMOLR::Register>(self.reg(PfReg::VMOLR(pi)));
        let is_vf = pool.get() < self.num_vfs();
        let mut vlan = None;
        let data: Cow<'_, [u8]> = if vmolr.is_set(VMOLR::STRVLAN) && hdr.vlan_tci.is_some() {
            vlan = hdr.vlan_tci;
            let mut s = Vec::with_capacity(frame.len() - VLAN_TAG_LEN);
            s.extend_from_slice(&frame[..12]);
            s.extend_from_slice(&frame[12 + VLAN_TAG_LEN..]);
            Cow::Owned(s)
        } else {
            Cow::Borrowed(frame)
        };
        let Some(q) = QueueIndex::new(pool.get()) else {
            return false;
        };
        let ptype = packet_type(hdr, frame);
        if !self.rx_queue_receive(q, &data, vlan, ptype, loopback) {
            return false;
        }
        let octets = (frame.len() + FCS_LEN) as u32;
        if is_vf {
            self.add_reg(PfReg::PVFGPRC(pi), 1);
            self.add_reg(PfReg::PVFGORC(pi), octets);
            if hdr.destination.is_multicast() {
                self.add_reg(PfReg::PVFMPRC(pi), 1);
            }
            if loopback {
                self.add_reg(PfReg::PVFGPRLBC(pi), 1);
                self.add_reg(PfReg::PVFGORLBC(pi), octets);
            }
        }
        self.add_reg(PfReg::GPRC, 1);
        self.add_reg(PfReg::TPR, 1);
        self.add_64(PfReg::GORCL, PfReg::GORCH, u64::from(octets));
        if hdr.destination.is_broadcast() {
            self.add_reg(PfReg::BPRC, 1);
        } else if hdr.destination.is_multicast() {
            self.add_reg(PfReg::MPRC, 1);
        }
        true
    }

    fn rx_fault(&mut self, q: QueueIndex) {
        self.counters.dma_faults += 1;
        let qi = q.get() as u8;
        self.set_reg(
            PfReg::RXDCTL(qi),
            self.reg(PfReg::RXDCTL(qi)) & !regs::value(RXDCTL::ENABLE::SET),
        );
        self.set_reg(PfReg::LVMMC, u32::from(qi) | (1 << 9));
        self.raise_pf_cause(regs::value(regs::ICR::DOUTSYNC::SET));
    }

    fn rx_queue_receive(
        &mut self,
        q: QueueIndex,
        frame: &[u8],
        vlan: Option<u16>,
        ptype: u16,
        loopback: bool,
    ) -> bool {
        let qi = q.get() as u8;
        let owner = self.queue_owner(q);
        let rctl = regs::view::<RCTL::Register>(self.reg(PfReg::RCTL));
        let enabled = self.reg(PfReg::RXDCTL(qi)) & regs::value(RXDCTL::ENABLE::SET) != 0;
        if !rctl.is_set(RCTL::EN) || !enabled {
            self.counters.rx_queue_disabled_drops += 1;
            return false;
        }
        if !self.bus_master(owner) {
            self.counters.dma_blocked_no_bus_master += 1;
            return false;
        }
        let srrctl = regs::view::<SRRCTL::Register>(self.reg(PfReg::SRRCTL(qi)));
        if srrctl.read(SRRCTL::DESCTYPE) != 1 {
            self.counters.rx_unsupported_desctype += 1;
            return false;
        }
        let bsize = match srrctl.read(SRRCTL::BSIZEPACKET) {
            0 => 2048 >> rctl.read(RCTL::BSIZE),
            kib => (kib as usize) * 1024,
        };
        let data: Cow<'_, [u8]> = if rctl.is_set(RCTL::SECRC) {
            Cow::Borrowed(frame)
        } else {
            let mut owned = Vec::with_capacity(frame.len() + FCS_LEN);
            owned.extend_from_slice(frame);
            owned.extend_from_slice(&crc32(frame).to_le_bytes());
            Cow::Owned(owned)
        };
        let count = self.reg(PfReg::RDLEN(qi)) / desc::DESCRIPTOR_LEN as u32;
        let mut head = self.reg(PfReg::RDH(qi));
        let tail = self.reg(PfReg::RDT(qi));
        if count == 0 || head >= count || tail >= count {
            if count != 0 {
                self.counters.tail_out_of_range += 1;
            }
            self.rx_missed(q);
            return false;
        }
        let free = (tail + count - head) % count;
        let need = data.len().div_ceil(bsize).max(1) as u32;
        if free < need {
            self.rx_missed(q);
            return false;
        }
        let base =
            u64::from(self.reg(PfReg::RDBAL(qi))) | (u64::from(self.reg(PfReg::RDBAH(qi))) << 32);
        for (i, chunk) in data.chunks(bsize).enumerate() {
            let at = Iova(base.wrapping_add(u64::from(head) * desc::DESCRIPTOR_LEN as u64));
            let mut raw = [0u8; desc::DESCRIPTOR_LEN];
            if self.dma_read(owner, at, &mut raw).is_err() {
                self.rx_fault(q);
                return false;
            }
            let read = RxReadRepr::parse(&Descriptor::from_array(raw));
            if self
                .dma_write(owner, Iova(read.packet_buffer), chunk)
                .is_err()
            {
                self.rx_fault(q);
                return false;
            }
            let last = (i as u32) + 1 == need;
            let mut status = rx::STAT_DD;
            if last {
                status |= rx::STAT_EOP;
                if vlan.is_some() {
                    status |= rx::STAT_VP;
                }
                if loopback {
                    status |= rx::STAT_LB;
                }
            }
            let wb = RxWritebackRepr {
                pkt_info: if last { ptype } else { 0 },
                hdr_info: 0,
                rss: 0,
                status_error: status,
                length: chunk.len() as u16,
                vlan: if last { vlan.unwrap_or(0) } else { 0 },
            };
            let mut d = Descriptor::from_array([0u8; desc::DESCRIPTOR_LEN]);
            wb.emit(&mut d);
            let out = d.into_inner();
            // Everything but the status dword first, then the status dword: DD becomes visible
            // last.
            let ok = self.dma_write(owner, at, &out[..8]).is_ok()
                && self
                    .dma_write(owner, Iova(at.0.wrapping_add(12)), &out[12..])
                    .is_ok()
                && {
                    adapter_core::memory::SharedMemory::publish();
                    self.dma_write(owner, Iova(at.0.wrapping_add(8)), &out[8..12])
                        .is_ok()
                };
            if !ok {
                self.rx_fault(q);
                return false;
            }
            head = (head + 1) % count;
        }
        self.set_reg(PfReg::RDH(qi), head);
        match owner {
            FunctionId::Vf(vf) => {
                if let Some(bit) = self.vf_queue_vector(vf, q, false) {
                    self.raise_vf_causes(vf, bit);
                }
            }
            FunctionId::Pf => self.raise_pf_cause(regs::value(regs::ICR::RXT0::SET)),
        }
        true
    }

    fn rx_missed(&mut self, q: QueueIndex) {
        self.counters.rx_no_descriptor_drops += 1;
        self.add_reg(PfReg::RQDPC(q.get() as u8), 1);
        self.add_reg(PfReg::MPC, 1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}

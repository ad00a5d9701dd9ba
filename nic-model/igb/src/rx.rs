//! RX engines (datasheet 7.1): one per physical queue, fed by the switch.
//!
//! The engine owns descriptors `[RDH, RDT)`. A frame needs ⌈len / buffer size⌉ descriptors
//! (buffer size from SRRCTL.BSIZEPACKET, else RCTL.BSIZE); if fewer are free it is dropped and
//! counted in RQDPC. Each used descriptor gets the frame's bytes in its packet buffer and a
//! write-back: first everything but the status dword, then the status dword with DD (and EOP on
//! the last), so DD is the last thing software can observe.
//!
//! The engines keep no state of their own: everything is in the registers, handed over with the
//! rest of the device's datapath state as a [`Datapath`].

use std::borrow::Cow;

use igb_hw::desc::{self, Descriptor, RxReadRepr, RxWritebackRepr, rx};
use igb_hw::frame::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetHeader, FCS_LEN, VLAN_TAG_LEN};
use igb_hw::regs::{ICR, LVMMC, PfReg, RCTL, RXDCTL, SRRCTL, VMOLR, pf};
use igb_hw::{Iova, PoolIndex, QueueIndex};

use crate::datapath::{Datapath, IrqRequest};

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

/// Delivers `frame` to `pool`'s first queue; `false` if it was dropped.
pub(crate) fn deliver_to_pool(
    dp: &mut Datapath<'_>,
    pool: PoolIndex,
    frame: &[u8],
    hdr: &EthernetHeader,
    loopback: bool,
) -> bool {
    if frame.len() + FCS_LEN > dp.max_frame(pool) {
        dp.counters.rx_oversize_drops += 1;
        return false;
    }
    let pi = pool.get() as u8;
    let vmolr = dp.regs.read(pf::VMOLR.at(pi));
    let is_vf = dp.vf_owned(pool);
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
    if !rx_queue_receive(dp, q, &data, vlan, ptype, loopback) {
        return false;
    }
    let octets = (frame.len() + FCS_LEN) as u32;
    if is_vf {
        dp.regs.add(PfReg::PVFGPRC(pi), 1);
        dp.regs.add(PfReg::PVFGORC(pi), octets);
        if hdr.destination.is_multicast() {
            dp.regs.add(PfReg::PVFMPRC(pi), 1);
        }
        if loopback {
            dp.regs.add(PfReg::PVFGPRLBC(pi), 1);
            dp.regs.add(PfReg::PVFGORLBC(pi), octets);
        }
    }
    dp.regs.add(PfReg::GPRC, 1);
    dp.regs.add(PfReg::TPR, 1);
    dp.regs
        .add_64(PfReg::GORCL, PfReg::GORCH, u64::from(octets));
    if hdr.destination.is_broadcast() {
        dp.regs.add(PfReg::BPRC, 1);
    } else if hdr.destination.is_multicast() {
        dp.regs.add(PfReg::MPRC, 1);
    }
    true
}

fn rx_fault(dp: &mut Datapath<'_>, q: QueueIndex) {
    dp.counters.dma_faults += 1;
    let qi = q.get() as u8;
    dp.regs.modify(pf::RXDCTL.at(qi), RXDCTL::ENABLE::CLEAR);
    dp.regs
        .write(pf::LVMMC, LVMMC::QUEUE.val(u32::from(qi)) + LVMMC::RX::SET);
    dp.request(IrqRequest::pf(ICR::DOUTSYNC::SET));
}

fn rx_queue_receive(
    dp: &mut Datapath<'_>,
    q: QueueIndex,
    frame: &[u8],
    vlan: Option<u16>,
    ptype: u16,
    loopback: bool,
) -> bool {
    let qi = q.get() as u8;
    let owner = dp.queue_owner(q);
    let rctl = dp.regs.read(pf::RCTL);
    let enabled = dp.regs.read(pf::RXDCTL.at(qi)).is_set(RXDCTL::ENABLE);
    if !rctl.is_set(RCTL::EN) || !enabled {
        dp.counters.rx_queue_disabled_drops += 1;
        return false;
    }
    if !dp.bus_master(owner) {
        dp.counters.dma_blocked_no_bus_master += 1;
        return false;
    }
    let srrctl = dp.regs.read(pf::SRRCTL.at(qi));
    if !srrctl.matches_all(SRRCTL::DESCTYPE::AdvancedOneBuffer) {
        dp.counters.rx_unsupported_desctype += 1;
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
    let count = dp.regs.get(PfReg::RDLEN(qi)) / desc::DESCRIPTOR_LEN as u32;
    let mut head = dp.regs.get(PfReg::RDH(qi));
    let tail = dp.regs.get(PfReg::RDT(qi));
    if count == 0 || head >= count || tail >= count {
        if count != 0 {
            dp.counters.tail_out_of_range += 1;
        }
        rx_missed(dp, q);
        return false;
    }
    let free = (tail + count - head) % count;
    let need = data.len().div_ceil(bsize).max(1) as u32;
    if free < need {
        rx_missed(dp, q);
        return false;
    }
    let base = dp.regs.get_64(PfReg::RDBAL(qi), PfReg::RDBAH(qi));
    for (i, chunk) in data.chunks(bsize).enumerate() {
        let at = Iova(base.wrapping_add(u64::from(head) * desc::DESCRIPTOR_LEN as u64));
        let mut raw = [0u8; desc::DESCRIPTOR_LEN];
        if dp.dma_read(owner, at, &mut raw).is_err() {
            rx_fault(dp, q);
            return false;
        }
        let read = RxReadRepr::parse(&Descriptor::from_array(raw));
        if dp
            .dma_write(owner, Iova(read.packet_buffer), chunk)
            .is_err()
        {
            rx_fault(dp, q);
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
        let ok = dp.dma_write(owner, at, &out[..8]).is_ok()
            && dp
                .dma_write(owner, Iova(at.0.wrapping_add(12)), &out[12..])
                .is_ok()
            && {
                adapter_core::memory::SharedMemory::publish();
                dp.dma_write(owner, Iova(at.0.wrapping_add(8)), &out[8..12])
                    .is_ok()
            };
        if !ok {
            rx_fault(dp, q);
            return false;
        }
        head = (head + 1) % count;
    }
    dp.regs.set(PfReg::RDH(qi), head);
    dp.request(IrqRequest::Queue {
        queue: q,
        owner,
        tx: false,
    });
    true
}

fn rx_missed(dp: &mut Datapath<'_>, q: QueueIndex) {
    dp.counters.rx_no_descriptor_drops += 1;
    dp.regs.add(PfReg::RQDPC(q.get() as u8), 1);
    dp.regs.add(PfReg::MPC, 1);
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}

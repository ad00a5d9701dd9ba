//! TX and RX descriptor rings in DMA memory, with wrapping indices.
//!
//! Each ring owns one region for the descriptors and one for the packet buffers (one fixed
//! buffer per descriptor, reused forever: buffers are recycled, never allocated per frame).
//! Software never fills the last free TX slot, so `head == tail` always means empty.

use igb_hw::desc::{Descriptor, RxReadRepr, RxWritebackRepr, TxContextRepr, TxDataRepr, rx, tx};

use crate::backend::{DmaAllocator, DmaRegion, completion_fence};
use crate::error::DriverError;

/// A ring index that wraps at the ring size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RingIndex(u32);

impl RingIndex {
    /// Index `i` of a ring of `size` (wrapped into range).
    pub fn at(i: u32, size: u32) -> RingIndex {
        RingIndex(if size == 0 { 0 } else { i % size })
    }
    /// The raw index.
    pub fn get(self) -> u32 {
        self.0
    }
    /// The next index in a ring of `size`.
    pub fn next(self, size: u32) -> RingIndex {
        RingIndex(if self.0 + 1 >= size { 0 } else { self.0 + 1 })
    }
    /// Slots from `self` forward to `other` in a ring of `size`.
    pub fn distance_to(self, other: RingIndex, size: u32) -> u32 {
        (other.0 + size - self.0) % size
    }
}

/// Checks a ring size: a multiple of 8 descriptors (128 bytes), 8..=4096.
pub fn check_ring_size(size: u32) -> Result<(), DriverError> {
    if (8..=4096).contains(&size) && size.is_multiple_of(8) {
        Ok(())
    } else {
        Err(DriverError::InvalidRingSize(size))
    }
}

/// Checksum offloads for one frame (a context descriptor precedes the data descriptors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TxOffload {
    /// The context (MACLEN, IPLEN, L4 type...).
    pub context: TxContextRepr,
    /// Insert the IPv4 header checksum.
    pub ipv4_checksum: bool,
    /// Insert the L4 checksum (the field must hold the pseudo-header sum).
    pub l4_checksum: bool,
}

/// A TX ring.
pub struct TxRing<M: DmaRegion> {
    desc: M,
    bufs: M,
    size: u32,
    buf_size: usize,
    /// Next descriptor software fills.
    pub tail: RingIndex,
    /// Oldest descriptor not yet reclaimed.
    pub clean: RingIndex,
    /// For each descriptor: is it the last of a packet (RS set, DD to be checked)?
    last: Vec<bool>,
}

impl<M: DmaRegion> TxRing<M> {
    /// Allocates a ring of `size` descriptors with `buf_size`-byte buffers.
    pub fn new<D: DmaAllocator<Region = M>>(
        dma: &D,
        size: u32,
        buf_size: usize,
    ) -> Result<Self, DriverError> {
        check_ring_size(size)?;
        let desc = dma.allocate(size as usize * 16)?;
        let bufs = dma.allocate(size as usize * buf_size)?;
        // Zeroed descriptors: DD clear everywhere.
        desc.write(0, &vec![0u8; size as usize * 16]);
        Ok(TxRing {
            desc,
            bufs,
            size,
            buf_size,
            tail: RingIndex(0),
            clean: RingIndex(0),
            last: vec![false; size as usize],
        })
    }

    /// Device address of the descriptor ring.
    pub fn ring_iova(&self) -> igb_hw::Iova {
        self.desc.iova()
    }

    /// Ring length in bytes (TDLEN).
    pub fn ring_bytes(&self) -> u32 {
        self.size * 16
    }

    /// Descriptors in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Free descriptors (one slot always stays empty).
    pub fn free(&self) -> u32 {
        self.size - 1 - self.clean.distance_to(self.tail, self.size)
    }

    /// Descriptors handed to the hardware and not yet reclaimed.
    pub fn in_flight(&self) -> u32 {
        self.clean.distance_to(self.tail, self.size)
    }

    /// Reclaims descriptors of completed packets (DD on their last descriptor); returns the
    /// number of packets completed.
    pub fn reclaim(&mut self) -> usize {
        let mut done = 0;
        let mut i = self.clean;
        let mut scan = self.clean;
        while scan != self.tail {
            if self.last[scan.0 as usize] {
                let sta = self.desc.read_u32(scan.0 as usize * 16 + 12);
                if sta & tx::STA_DD == 0 {
                    break;
                }
                completion_fence();
                done += 1;
                // Everything up to and including this packet's last descriptor is free.
                while i != scan.next(self.size) {
                    self.last[i.0 as usize] = false;
                    i = i.next(self.size);
                }
                self.clean = i;
            }
            scan = scan.next(self.size);
        }
        done
    }

    /// Descriptors one frame of `len` bytes needs (plus one for a context descriptor).
    pub fn descriptors_for(&self, len: usize, offload: bool) -> u32 {
        (len.div_ceil(self.buf_size).max(1) + usize::from(offload)) as u32
    }

    /// Writes one frame (gathered over as many buffers as needed) at the tail. The caller checked
    /// [`TxRing::free`]. Does not ring the doorbell.
    pub fn push(&mut self, frame: &[u8], offload: Option<&TxOffload>) {
        if let Some(o) = offload {
            let mut d = Descriptor::from_array([0u8; 16]);
            o.context.emit(&mut d);
            self.desc.write(self.tail.0 as usize * 16, &d.into_inner());
            self.last[self.tail.0 as usize] = false;
            self.tail = self.tail.next(self.size);
        }
        // One buffer per `buf_size` bytes (an empty frame still takes one descriptor).
        let n = frame.len().div_ceil(self.buf_size).max(1);
        for k in 0..n {
            let chunk = &frame
                [(k * self.buf_size).min(frame.len())..((k + 1) * self.buf_size).min(frame.len())];
            let i = self.tail.0 as usize;
            self.bufs.write(i * self.buf_size, chunk);
            let eop = k + 1 == n;
            let repr = TxDataRepr {
                buffer: self.bufs.iova().0 + (i * self.buf_size) as u64,
                length: chunk.len() as u16,
                eop,
                ifcs: true,
                rs: eop,
                context_index: offload.map_or(0, |o| o.context.index),
                ixsm: offload.is_some_and(|o| o.ipv4_checksum),
                txsm: offload.is_some_and(|o| o.l4_checksum),
                paylen: frame.len() as u32,
                ..TxDataRepr::default()
            };
            let mut d = Descriptor::from_array([0u8; 16]);
            repr.emit(&mut d);
            self.desc.write(i * 16, &d.into_inner());
            self.last[i] = eop;
            self.tail = self.tail.next(self.size);
        }
    }

    /// Moves the software tail back to `to`, forgetting descriptors written after it. Only for
    /// descriptors never handed to the hardware (beyond the last doorbell).
    pub fn rewind(&mut self, to: RingIndex) {
        let mut i = to;
        while i != self.tail {
            self.last[i.0 as usize] = false;
            i = i.next(self.size);
        }
        self.tail = to;
    }

    /// Forgets all in-flight descriptors (after a reset re-programs the ring).
    pub fn reset(&mut self) {
        self.desc.write(0, &vec![0u8; self.size as usize * 16]);
        self.tail = RingIndex(0);
        self.clean = RingIndex(0);
        self.last.iter_mut().for_each(|l| *l = false);
    }
}

/// A received frame's metadata from its last descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RxMeta {
    /// Stripped VLAN tag, if the hardware stripped one.
    pub vlan: Option<u16>,
    /// Arrived through the internal switch from a local VM.
    pub loopback: bool,
    /// Packet type bits from the write-back.
    pub packet_type: u16,
}

/// An RX ring.
pub struct RxRing<M: DmaRegion> {
    desc: M,
    bufs: M,
    size: u32,
    buf_size: usize,
    /// Next descriptor to check for DD.
    pub next: RingIndex,
    partial: Vec<u8>,
    /// Frames dropped by the driver because they carried error bits.
    pub errors: u64,
}

impl<M: DmaRegion> RxRing<M> {
    /// Allocates a ring of `size` descriptors with `buf_size`-byte buffers (a multiple of 1 KiB).
    pub fn new<D: DmaAllocator<Region = M>>(
        dma: &D,
        size: u32,
        buf_size: usize,
    ) -> Result<Self, DriverError> {
        check_ring_size(size)?;
        let desc = dma.allocate(size as usize * 16)?;
        let bufs = dma.allocate(size as usize * buf_size)?;
        let mut r = RxRing {
            desc,
            bufs,
            size,
            buf_size,
            next: RingIndex(0),
            partial: Vec::new(),
            errors: 0,
        };
        r.reset();
        Ok(r)
    }

    /// Device address of the descriptor ring.
    pub fn ring_iova(&self) -> igb_hw::Iova {
        self.desc.iova()
    }

    /// Ring length in bytes (RDLEN).
    pub fn ring_bytes(&self) -> u32 {
        self.size * 16
    }

    /// Descriptors in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    fn post(&self, i: u32) {
        let mut d = Descriptor::from_array([0u8; 16]);
        RxReadRepr {
            packet_buffer: self.bufs.iova().0 + u64::from(i) * self.buf_size as u64,
            header_buffer: 0,
        }
        .emit(&mut d);
        self.desc.write(i as usize * 16, &d.into_inner());
    }

    /// Posts every buffer (read format) and restarts at descriptor 0; the caller then writes
    /// RDT = size − 1.
    pub fn reset(&mut self) {
        for i in 0..self.size {
            self.post(i);
        }
        self.next = RingIndex(0);
        self.partial.clear();
    }

    /// Collects up to `max` complete frames, re-posting their buffers. Returns the frames and the
    /// index to write to RDT (the last re-posted descriptor), if any was re-posted.
    pub fn poll(
        &mut self,
        max: usize,
        mut each: impl FnMut(&[u8], RxMeta),
    ) -> (usize, Option<u32>) {
        let mut frames = 0;
        let mut last_posted = None;
        while frames < max {
            let i = self.next.0;
            let mut raw = [0u8; 16];
            self.desc.read(i as usize * 16, &mut raw);
            let wb = RxWritebackRepr::parse(&Descriptor::from_array(raw));
            if !wb.done() {
                break;
            }
            completion_fence();
            let len = usize::from(wb.length).min(self.buf_size);
            let start = self.partial.len();
            self.partial.resize(start + len, 0);
            self.bufs
                .read(i as usize * self.buf_size, &mut self.partial[start..]);
            self.post(i);
            last_posted = Some(i);
            self.next = self.next.next(self.size);
            if wb.end_of_packet() {
                if wb.status_error & rx::ERR_FRAME_MASK != 0 {
                    self.errors += 1;
                } else {
                    let meta = RxMeta {
                        vlan: (wb.status_error & rx::STAT_VP != 0).then_some(wb.vlan),
                        loopback: wb.status_error & rx::STAT_LB != 0,
                        packet_type: wb.pkt_info,
                    };
                    each(&self.partial, meta);
                    frames += 1;
                }
                self.partial.clear();
            }
        }
        (frames, last_posted)
    }
}

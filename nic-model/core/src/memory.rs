//! DMA-visible memory and the per-function IOMMU that translates device addresses into it.
//!
//! The model never holds a Rust reference into memory a driver can see: [`DmaTarget`] is a
//! byte-copy interface, and [`SharedMemory`] stores its bytes in atomic words, so the driver and
//! the model (possibly on different threads) read and write it without `unsafe` and without data
//! races. A front end that owns real guest memory (vfio-user) implements [`DmaTarget`] itself.
//!
//! Each PCI function has its own [`Iommu`]: a set of IOVA → (target, offset) mappings. A device
//! access that touches any byte outside the function's mappings is a DMA fault; nothing is read
//! or written in that case (the whole access is checked before any byte moves). The mappings
//! are kept sorted in a vector and found by binary search; an access inside one mapping (every
//! descriptor and buffer access of the drivers here) is checked and copied in one step. An
//! engine that makes many accesses into one mapping (a ring, a buffer area) may hold that
//! mapping as an [`IotlbEntry`], which does the accesses wholly inside it without a look-up and
//! declines every other one (the caller then goes through the [`Iommu`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use bytes::BytesMut;
use hw_common::Iova;

/// Memory a device can reach through an IOMMU mapping.
pub trait DmaTarget: Send + Sync {
    /// Size in bytes.
    fn len(&self) -> u64;
    /// True when the target has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `buf.len()` bytes at `offset` into `buf`. Callers guarantee the range is in bounds.
    fn read(&self, offset: u64, buf: &mut [u8]);
    /// Copies `data` to `offset`. Callers guarantee the range is in bounds.
    fn write(&self, offset: u64, data: &[u8]);
    /// Appends the `len` bytes at `offset` to `out` (a frame being gathered). Callers guarantee
    /// the range is in bounds. The default zero-fills the new bytes and then reads into them; a
    /// target that can copy straight into spare capacity overrides it.
    fn read_append(&self, offset: u64, len: usize, out: &mut BytesMut) {
        let start = out.len();
        out.resize(start + len, 0);
        self.read(offset, &mut out[start..]);
    }
}

/// Bytes [`SharedMemory::read_append`] moves per step: read from the words into a block on the
/// stack (L1), then appended in one copy, so the frame buffer is written once and never zeroed.
const APPEND_BLOCK: usize = 256;

/// Host memory shared between a driver and the model: atomic 64-bit words, little-endian bytes.
///
/// Writes become visible to other threads after [`SharedMemory::publish`] (a release fence),
/// which is what a driver calls before a doorbell (the `wmb()` before TDT/RDT); the model's
/// register write path performs the matching acquire fence.
pub struct SharedMemory {
    words: Box<[AtomicU64]>,
    len: u64,
}

impl SharedMemory {
    /// Zeroed memory of `len` bytes.
    pub fn new(len: usize) -> Arc<SharedMemory> {
        let words = (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
        Arc::new(SharedMemory {
            words,
            len: len as u64,
        })
    }

    /// Release fence: every write before it is visible to a thread that performs an acquire
    /// fence after observing a later write (the doorbell).
    pub fn publish() {
        fence(Ordering::Release);
    }

    /// Acquire fence matching [`SharedMemory::publish`].
    pub fn acquire() {
        fence(Ordering::Acquire);
    }

    fn in_bounds(&self, offset: u64, len: usize) -> bool {
        offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.len)
    }

    /// Reads `buf.len()` bytes at `offset`; `false` (and nothing read) if out of bounds.
    pub fn read_checked(&self, offset: u64, buf: &mut [u8]) -> bool {
        if !self.in_bounds(offset, buf.len()) {
            return false;
        }
        self.read(offset, buf);
        true
    }

    /// Writes `data` at `offset`; `false` (and nothing written) if out of bounds.
    pub fn write_checked(&self, offset: u64, data: &[u8]) -> bool {
        if !self.in_bounds(offset, data.len()) {
            return false;
        }
        self.write(offset, data);
        true
    }
}

impl DmaTarget for SharedMemory {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, offset: u64, buf: &mut [u8]) {
        // A partial first word, then whole words in one pass, then a partial last word; every
        // copy has a fixed size (no variable-length `memcpy`; a chunk is always 8 bytes).
        let mut word = (offset / 8) as usize;
        let start = (offset % 8) as usize;
        let mut rest = buf;
        if start != 0 && !rest.is_empty() {
            let n = (8 - start).min(rest.len());
            let (head, tail) = rest.split_at_mut(n);
            store_low_bytes(
                self.words[word].load(Ordering::Relaxed) >> (8 * start),
                head,
            );
            rest = tail;
            word += 1;
        }
        let whole = rest.len() / 8;
        let (body, tail) = rest.split_at_mut(8 * whole);
        for (chunk, cell) in body
            .chunks_exact_mut(8)
            .zip(&self.words[word..word + whole])
        {
            if let Ok(c) = <&mut [u8; 8]>::try_from(chunk) {
                *c = cell.load(Ordering::Relaxed).to_le_bytes();
            }
        }
        if !tail.is_empty() {
            store_low_bytes(self.words[word + whole].load(Ordering::Relaxed), tail);
        }
    }

    fn read_append(&self, offset: u64, len: usize, out: &mut BytesMut) {
        out.reserve(len);
        let mut block = [0u8; APPEND_BLOCK];
        let mut pos = offset;
        let mut left = len;
        while left > 0 {
            let n = left.min(APPEND_BLOCK);
            self.read(pos, &mut block[..n]);
            out.extend_from_slice(&block[..n]);
            pos += n as u64;
            left -= n;
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        // A partial first word, then whole words in one pass, then a partial last word.
        let mut word = (offset / 8) as usize;
        let start = (offset % 8) as usize;
        let mut rest = data;
        if start != 0 && !rest.is_empty() {
            let n = (8 - start).min(rest.len());
            let (head, tail) = rest.split_at(n);
            merge_bytes(&self.words[word], start, head);
            rest = tail;
            word += 1;
        }
        let whole = rest.len() / 8;
        let (body, tail) = rest.split_at(8 * whole);
        for (chunk, cell) in body.chunks_exact(8).zip(&self.words[word..word + whole]) {
            if let Ok(c) = <[u8; 8]>::try_from(chunk) {
                cell.store(u64::from_le_bytes(c), Ordering::Relaxed);
            }
        }
        if !tail.is_empty() {
            merge_bytes(&self.words[word + whole], 0, tail);
        }
    }
}

/// Stores the low `out.len()` (at most 8) bytes of `w`, little-endian, into `out`, with two
/// fixed-size copies that may overlap.
#[inline(always)]
fn store_low_bytes(w: u64, out: &mut [u8]) {
    let b = w.to_le_bytes();
    let n = out.len().min(8);
    if n >= 4 {
        out[..4].copy_from_slice(&b[..4]);
        out[n - 4..n].copy_from_slice(&b[n - 4..n]);
    } else if n >= 2 {
        out[..2].copy_from_slice(&b[..2]);
        out[n - 2..n].copy_from_slice(&b[n - 2..n]);
    } else if n == 1 {
        out[0] = b[0];
    }
}

/// The bytes of `d` (at most 8) as the low bytes of a little-endian word, read with two
/// fixed-size loads that may overlap.
#[inline(always)]
fn load_low_bytes(d: &[u8]) -> u64 {
    let n = d.len().min(8);
    let le32 = |b: &[u8]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let le16 = |b: &[u8]| u64::from(u16::from_le_bytes([b[0], b[1]]));
    if n >= 4 {
        le32(&d[..4]) | le32(&d[n - 4..n]) << (8 * (n - 4))
    } else if n >= 2 {
        le16(&d[..2]) | le16(&d[n - 2..n]) << (8 * (n - 2))
    } else if n == 1 {
        u64::from(d[0])
    } else {
        0
    }
}

/// Stores `bytes` at byte `start` of `cell`, atomically merged so that a concurrent writer of the
/// other bytes of the same word is not lost.
#[inline]
fn merge_bytes(cell: &AtomicU64, start: usize, bytes: &[u8]) {
    // `start + bytes.len() <= 8` (the callers split at word boundaries).
    let n = bytes.len();
    let bits = load_low_bytes(bytes) << (8 * start);
    let mask = (u64::MAX >> (64 - 8 * n.clamp(1, 8))) << (8 * start);
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let new = (cur & !mask) | bits;
        match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break,
            Err(actual) => cur = actual,
        }
    }
}

/// Why an IOMMU mapping was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Zero-length mapping.
    #[error("mapping of zero bytes")]
    ZeroLength,
    /// IOVA + length overflows 64 bits.
    #[error("mapping at {iova} of {len} bytes overflows the address space")]
    Overflow {
        /// Start.
        iova: Iova,
        /// Length.
        len: u64,
    },
    /// The mapping overlaps an existing one.
    #[error("mapping at {iova} overlaps the mapping at {existing}")]
    Overlap {
        /// Start of the new mapping.
        iova: Iova,
        /// Start of the existing mapping.
        existing: Iova,
    },
    /// The target range lies outside the target's memory.
    #[error("target range offset {offset} + {len} is beyond the target's {target_len} bytes")]
    OutOfTarget {
        /// Offset in the target.
        offset: u64,
        /// Length.
        len: u64,
        /// Size of the target.
        target_len: u64,
    },
    /// No mapping starts at this IOVA.
    #[error("no mapping starts at {0}")]
    NotMapped(Iova),
}

/// A device access touched an address its function has no mapping for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("DMA fault: {kind} of {len} bytes at {iova}")]
pub struct DmaFault {
    /// First byte of the access.
    pub iova: Iova,
    /// Length of the access.
    pub len: usize,
    /// Read or write.
    pub kind: DmaKind,
}

/// Direction of a DMA access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaKind {
    /// Device reads memory.
    Read,
    /// Device writes memory.
    Write,
}

impl core::fmt::Display for DmaKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DmaKind::Read => "read",
            DmaKind::Write => "write",
        })
    }
}

struct Mapping {
    len: u64,
    target: Arc<dyn DmaTarget>,
    offset: u64,
    writable: bool,
}

/// The IOMMU translation table of one PCI function.
#[derive(Default)]
pub struct Iommu {
    /// Non-overlapping mappings sorted by start IOVA.
    maps: Vec<(u64, Mapping)>,
}

impl Iommu {
    /// Maps `len` bytes at `iova` onto `target[offset..offset + len]`.
    pub fn map(
        &mut self,
        iova: Iova,
        len: u64,
        target: Arc<dyn DmaTarget>,
        offset: u64,
        writable: bool,
    ) -> Result<(), MapError> {
        if len == 0 {
            return Err(MapError::ZeroLength);
        }
        let end = iova
            .0
            .checked_add(len)
            .ok_or(MapError::Overflow { iova, len })?;
        if offset.checked_add(len).is_none_or(|e| e > target.len()) {
            return Err(MapError::OutOfTarget {
                offset,
                len,
                target_len: target.len(),
            });
        }
        // The last mapping starting below `end` is the only one that can overlap.
        let at = self.maps.partition_point(|&(start, _)| start < end);
        if let Some((start, m)) = at.checked_sub(1).and_then(|i| self.maps.get(i))
            && start + m.len > iova.0
        {
            return Err(MapError::Overlap {
                iova,
                existing: Iova(*start),
            });
        }
        self.maps.insert(
            at,
            (
                iova.0,
                Mapping {
                    len,
                    target,
                    offset,
                    writable,
                },
            ),
        );
        Ok(())
    }

    /// Removes the mapping that starts at `iova`.
    pub fn unmap(&mut self, iova: Iova) -> Result<(), MapError> {
        match self.maps.binary_search_by_key(&iova.0, |&(start, _)| start) {
            Ok(i) => {
                self.maps.remove(i);
                Ok(())
            }
            Err(_) => Err(MapError::NotMapped(iova)),
        }
    }

    /// Removes every mapping.
    pub fn clear(&mut self) {
        self.maps.clear();
    }

    /// Number of mappings.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// True when nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The mapping holding `iova` as an [`IotlbEntry`], for a run of accesses that mostly fall
    /// inside it (a ring, a driver's buffer area).
    pub fn entry(&self, iova: Iova) -> Option<IotlbEntry<'_>> {
        let (start, m) = self.lookup(iova.0)?;
        Some(IotlbEntry {
            start,
            len: m.len,
            target: &*m.target,
            offset: m.offset,
            writable: m.writable,
        })
    }

    /// The mapping holding byte `pos` with its start, if any.
    fn lookup(&self, pos: u64) -> Option<(u64, &Mapping)> {
        let i = self.maps.partition_point(|&(start, _)| start <= pos);
        let (start, m) = self.maps.get(i.checked_sub(1)?)?;
        (pos - start < m.len).then_some((*start, m))
    }

    /// Splits `[iova, iova + len)` into mapped pieces, or faults if any byte is unmapped (or not
    /// writable for a write).
    fn walk(
        &self,
        iova: Iova,
        len: usize,
        kind: DmaKind,
        mut each: impl FnMut(&Mapping, u64, usize, usize),
    ) -> Result<(), DmaFault> {
        let fault = DmaFault { iova, len, kind };
        let Some(end) = iova.0.checked_add(len as u64) else {
            return Err(fault);
        };
        let writable = |m: &Mapping| kind == DmaKind::Read || m.writable;
        // One mapping holds the whole access: checked, then copied in one piece.
        if let Some((start, m)) = self.lookup(iova.0)
            && end - start <= m.len
        {
            if !writable(m) {
                return Err(fault);
            }
            if len > 0 {
                each(m, m.offset + (iova.0 - start), 0, len);
            }
            return Ok(());
        }
        // First pass checks, second pass moves bytes: a faulting access has no partial effect.
        for pass in 0..2 {
            let mut pos = iova.0;
            let mut done = 0usize;
            while pos < end {
                let (start, m) = self.lookup(pos).ok_or(fault)?;
                if !writable(m) {
                    return Err(fault);
                }
                let n = ((start + m.len).min(end) - pos) as usize;
                if pass == 1 {
                    each(m, m.offset + (pos - start), done, n);
                }
                pos += n as u64;
                done += n;
            }
        }
        Ok(())
    }

    /// Device read of `buf.len()` bytes at `iova`.
    pub fn read(&self, iova: Iova, buf: &mut [u8]) -> Result<(), DmaFault> {
        let len = buf.len();
        self.walk(iova, len, DmaKind::Read, |m, off, at, n| {
            m.target.read(off, &mut buf[at..at + n])
        })
    }

    /// Device read of `len` bytes at `iova`, appended to `out` (a frame being gathered, never
    /// zero-filled first). On a fault nothing is appended.
    pub fn read_append(&self, iova: Iova, len: usize, out: &mut BytesMut) -> Result<(), DmaFault> {
        self.walk(iova, len, DmaKind::Read, |m, off, _, n| {
            m.target.read_append(off, n, out)
        })
    }

    /// Device write of `data` at `iova`.
    pub fn write(&self, iova: Iova, data: &[u8]) -> Result<(), DmaFault> {
        self.walk(iova, data.len(), DmaKind::Write, |m, off, at, n| {
            m.target.write(off, &data[at..at + n])
        })
    }
}

/// One mapping of a function's [`Iommu`], looked up once and used for many accesses, like an
/// IOTLB entry. An access wholly inside the mapping (and, for a write, a writable one) is done
/// here without a further look-up; for any other access the methods return `false` and move
/// nothing, and the caller goes through [`Iommu`], which handles accesses across mappings and
/// faults. The entry borrows the IOMMU, so the mappings cannot change while it is held.
#[derive(Clone, Copy)]
pub struct IotlbEntry<'a> {
    start: u64,
    len: u64,
    target: &'a dyn DmaTarget,
    offset: u64,
    writable: bool,
}

impl IotlbEntry<'_> {
    /// The target offset of `[iova, iova + len)` when it lies inside the mapping.
    #[inline]
    fn inside(&self, iova: Iova, len: usize) -> Option<u64> {
        let rel = iova.0.checked_sub(self.start)?;
        (rel.checked_add(len as u64)? <= self.len).then_some(self.offset + rel)
    }

    /// Bytes of the mapping from `iova` to its end (0 when `iova` is outside it).
    pub fn remaining(&self, iova: Iova) -> u64 {
        iova.0
            .checked_sub(self.start)
            .map_or(0, |rel| self.len.saturating_sub(rel))
    }

    /// Whether `[iova, iova + len)` lies inside the mapping.
    pub fn contains(&self, iova: Iova, len: usize) -> bool {
        self.inside(iova, len).is_some()
    }

    /// Device read of `buf.len()` bytes at `iova` if it lies inside the mapping.
    pub fn read(&self, iova: Iova, buf: &mut [u8]) -> bool {
        let Some(off) = self.inside(iova, buf.len()) else {
            return false;
        };
        self.target.read(off, buf);
        true
    }

    /// Device read of `len` bytes at `iova` appended to `out`, if it lies inside the mapping.
    pub fn read_append(&self, iova: Iova, len: usize, out: &mut BytesMut) -> bool {
        let Some(off) = self.inside(iova, len) else {
            return false;
        };
        self.target.read_append(off, len, out);
        true
    }

    /// Device write of `data` at `iova` if it lies inside the mapping and the mapping is
    /// writable.
    pub fn write(&self, iova: Iova, data: &[u8]) -> bool {
        let Some(off) = self.inside(iova, data.len()).filter(|_| self.writable) else {
            return false;
        };
        self.target.write(off, data);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memory_handles_unaligned_ranges() {
        let mem = SharedMemory::new(64);
        let data: Vec<u8> = (1..=21).collect();
        assert!(mem.write_checked(3, &data));
        let mut back = [0u8; 21];
        assert!(mem.read_checked(3, &mut back));
        assert_eq!(&back[..], &data[..]);
        let mut around = [0u8; 2];
        mem.read(2, &mut around);
        assert_eq!(around, [0, 1]);
        assert!(!mem.write_checked(60, &[0; 5]));
        assert!(!mem.read_checked(u64::MAX, &mut [0; 1]));
    }

    #[test]
    fn shared_memory_agrees_with_a_byte_array_for_every_offset_and_length() {
        let mem = SharedMemory::new(64);
        let mut reference = [0u8; 64];
        let mut k = 0u8;
        for off in 0..20 {
            for len in 0..=40 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        k = k.wrapping_add(37);
                        k
                    })
                    .collect();
                mem.write(off as u64, &data);
                reference[off..off + len].copy_from_slice(&data);
                for roff in [0, off, off + 1, 17] {
                    let mut back = vec![0u8; 64 - roff];
                    mem.read(roff as u64, &mut back);
                    assert_eq!(back, reference[roff..], "write {off}+{len}, read at {roff}");
                }
            }
        }
    }

    #[test]
    fn iommu_translates_across_adjacent_mappings_and_faults_outside() {
        let mem = SharedMemory::new(8192);
        let mut mmu = Iommu::default();
        mmu.map(Iova(0x10_0000), 4096, mem.clone(), 4096, true)
            .unwrap();
        mmu.map(Iova(0x10_1000), 4096, mem.clone(), 0, true)
            .unwrap();
        mmu.write(Iova(0x10_0ffe), &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 2];
        mem.read(8190, &mut b);
        assert_eq!(b, [1, 2]);
        mem.read(0, &mut b);
        assert_eq!(b, [3, 4]);
        let f = mmu.read(Iova(0x10_1ffe), &mut [0u8; 4]).unwrap_err();
        assert_eq!(f.kind, DmaKind::Read);
        assert!(mmu.write(Iova(u64::MAX - 1), &[0; 4]).is_err());
    }

    #[test]
    fn iommu_agrees_with_a_per_byte_reference_for_accesses_across_mappings_and_gaps() {
        // Pages of a 16-page IOVA window mapped out of order, some read-only, some not at all;
        // every access either moves exactly its bytes or faults with nothing moved.
        let mem = SharedMemory::new(16 * 256);
        let mut mmu = Iommu::default();
        let mut page_state = [None::<bool>; 16]; // Some(writable) when mapped
        for (k, p) in [9usize, 2, 14, 3, 0, 7, 8, 11, 4].into_iter().enumerate() {
            let writable = k % 3 != 1;
            mmu.map(
                Iova(0x1000 + p as u64 * 256),
                256,
                mem.clone(),
                p as u64 * 256,
                writable,
            )
            .unwrap();
            page_state[p] = Some(writable);
        }
        let mut seed = 12345u64;
        for step in 0..3000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % (16 * 256);
            let len = (seed >> 20) as usize % 700;
            let write = seed & 1 == 1;
            let end = (at + len).min(16 * 256);
            let len = end - at;
            let ok = (at..end).all(|b| match page_state[b / 256] {
                Some(w) => !write || w,
                None => false,
            });
            let mut before = vec![0u8; 16 * 256];
            mem.read(0, &mut before);
            let iova = Iova(0x1000 + at as u64);
            if write {
                let data = vec![(step % 251) as u8; len];
                assert_eq!(mmu.write(iova, &data).is_ok(), ok, "write {at}+{len}");
                let mut after = vec![0u8; 16 * 256];
                mem.read(0, &mut after);
                if ok {
                    before[at..end].copy_from_slice(&data);
                }
                assert!(
                    before == after,
                    "write {at}+{len}: only its bytes, or nothing"
                );
            } else {
                let mut buf = vec![0xEEu8; len];
                assert_eq!(mmu.read(iova, &mut buf).is_ok(), ok, "read {at}+{len}");
                if ok {
                    assert_eq!(buf, before[at..end], "read {at}+{len}");
                } else {
                    assert!(
                        buf.iter().all(|&b| b == 0xEE),
                        "a faulting read moves nothing"
                    );
                }
            }
        }
        for p in [9u64, 2, 14] {
            mmu.unmap(Iova(0x1000 + p * 256)).unwrap();
        }
        assert_eq!(mmu.len(), 6);
        assert!(mmu.read(Iova(0x1000 + 9 * 256), &mut [0u8; 1]).is_err());
        assert!(mmu.read(Iova(0x1000 + 8 * 256), &mut [0u8; 1]).is_ok());
    }

    #[test]
    fn read_append_agrees_with_read_and_appends_nothing_on_a_fault() {
        let mem = SharedMemory::new(4 * 1024);
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        mem.write(0, &pattern);
        let mut mmu = Iommu::default();
        // Two adjacent mappings, out of order in the target, and a gap after them.
        mmu.map(Iova(0x1000), 2048, mem.clone(), 2048, false)
            .unwrap();
        mmu.map(Iova(0x1800), 1024, mem.clone(), 0, false).unwrap();
        for (at, len) in [
            (0x1000u64, 60usize),
            (0x1003, 1514),
            (0x17f9, 300),
            (0x1800, 1024),
        ] {
            let mut out = BytesMut::from(&b"head"[..]);
            mmu.read_append(Iova(at), len, &mut out).unwrap();
            let mut want = vec![0u8; len];
            mmu.read(Iova(at), &mut want).unwrap();
            assert_eq!(&out[..4], b"head");
            assert_eq!(&out[4..], &want[..], "{at:#x}+{len}");
        }
        let mut out = BytesMut::from(&b"head"[..]);
        assert!(mmu.read_append(Iova(0x1bff), 2, &mut out).is_err());
        assert!(mmu.read_append(Iova(0x17ff), 2000, &mut out).is_err());
        assert_eq!(&out[..], b"head", "a faulting read appends nothing");
    }

    #[test]
    fn an_iotlb_entry_agrees_with_the_iommu_inside_its_mapping_and_declines_the_rest() {
        let mem = SharedMemory::new(4096);
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 13 + 1) as u8).collect();
        mem.write(0, &pattern);
        let mut mmu = Iommu::default();
        mmu.map(Iova(0x1000), 1024, mem.clone(), 1024, true)
            .unwrap();
        mmu.map(Iova(0x1400), 1024, mem.clone(), 0, false).unwrap();
        assert!(mmu.entry(Iova(0x0fff)).is_none(), "nothing mapped there");
        let e = mmu.entry(Iova(0x1010)).expect("mapped");
        for (at, len) in [
            (0x1000u64, 16usize),
            (0x13f0, 16),
            (0x13f8, 16),
            (0x0ff8, 16),
            (0x1400, 4),
        ] {
            let mut a = vec![0xEEu8; len];
            let mut b = vec![0xEEu8; len];
            let inside = (0x1000..=0x1400 - len as u64).contains(&at);
            assert_eq!(e.contains(Iova(at), len), inside, "{at:#x}+{len}");
            assert_eq!(e.read(Iova(at), &mut a), inside, "{at:#x}+{len}");
            if inside {
                mmu.read(Iova(at), &mut b).unwrap();
                assert_eq!(a, b);
            } else {
                assert!(
                    a.iter().all(|&x| x == 0xEE),
                    "a declined read moves nothing"
                );
            }
            let mut out = BytesMut::from(&b"x"[..]);
            assert_eq!(e.read_append(Iova(at), len, &mut out), inside);
            assert_eq!(out.len(), 1 + if inside { len } else { 0 });
        }
        assert!(e.write(Iova(0x100c), &[1, 2, 3, 4]));
        let mut back = [0u8; 4];
        mem.read(1024 + 12, &mut back);
        assert_eq!(back, [1, 2, 3, 4]);
        assert!(!e.write(Iova(0x13fe), &[9; 4]), "runs past the mapping");
        assert_eq!(
            [0x0fffu64, 0x1000, 0x13f0, 0x1400].map(|at| e.remaining(Iova(at))),
            [0, 1024, 16, 0],
            "bytes to the mapping's end"
        );
        let ro = mmu.entry(Iova(0x1400)).expect("mapped");
        assert!(!ro.write(Iova(0x1400), &[9; 4]), "read-only mapping");
        mem.read(0, &mut back);
        assert_eq!(back, [pattern[0], pattern[1], pattern[2], pattern[3]]);
    }

    #[test]
    fn faulting_write_changes_nothing() {
        let mem = SharedMemory::new(4096);
        let mut mmu = Iommu::default();
        mmu.map(Iova(0), 4096, mem.clone(), 0, true).unwrap();
        assert!(mmu.write(Iova(4094), &[9; 4]).is_err());
        let mut b = [0u8; 2];
        mem.read(4094, &mut b);
        assert_eq!(b, [0, 0]);
    }

    #[test]
    fn map_refuses_overlap_and_bad_ranges() {
        let mem = SharedMemory::new(4096);
        let mut mmu = Iommu::default();
        mmu.map(Iova(0x2000), 0x1000, mem.clone(), 0, true).unwrap();
        assert!(matches!(
            mmu.map(Iova(0x2800), 0x1000, mem.clone(), 0, true),
            Err(MapError::Overlap { .. })
        ));
        assert!(matches!(
            mmu.map(Iova(0x1800), 0x1000, mem.clone(), 0, true),
            Err(MapError::Overlap { .. })
        ));
        assert_eq!(
            mmu.map(Iova(0), 0, mem.clone(), 0, true),
            Err(MapError::ZeroLength)
        );
        assert!(matches!(
            mmu.map(Iova(0x8000), 0x2000, mem.clone(), 0, true),
            Err(MapError::OutOfTarget { .. })
        ));
        mmu.map(Iova(0x1000), 0x1000, mem.clone(), 0, false)
            .unwrap();
        assert!(mmu.write(Iova(0x1000), &[1]).is_err(), "read-only mapping");
        assert_eq!(
            mmu.unmap(Iova(0x1234)),
            Err(MapError::NotMapped(Iova(0x1234)))
        );
    }
}

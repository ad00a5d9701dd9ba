//! IOVA allocator: aligned, non-overlapping device-address ranges from the IOMMU's valid windows.
//!
//! The IOMMU of a VFIO container accepts mappings only inside the IOVA windows it reports
//! (`VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`: the aperture minus reserved regions such as the x86
//! MSI window `0xfee0_0000..0xfef0_0000`) and only at its minimum page alignment
//! (`iova_pgsizes`). [`IovaAllocator`] hands out ranges that respect both:
//!
//! * every range starts on [`IovaAllocator::alignment`] (or a larger power of two on request)
//!   and its length is rounded up to a multiple of it;
//! * ranges never overlap each other and never straddle a hole between windows;
//! * the page at IOVA 0 is never handed out, so a zero IOVA in a descriptor is always a bug
//!   the IOMMU catches (the same policy as `pci-driver` and QEMU);
//! * allocation is first fit by address; freeing merges the range with free neighbours, so
//!   freeing everything restores the initial windows exactly.
//!
//! All arithmetic is checked: lengths and alignments near `u64::MAX` give typed errors, never
//! overflow. Windows are half-open `start..end`; the single byte at `u64::MAX` can therefore
//! never be allocated, which no real IOMMU aperture reaches.
//!
//! The allocator is pure bookkeeping (no unsafe, no system calls); [`crate::vfio::VfioDma`]
//! wraps it in a mutex next to the memory and the IOMMU mapper.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use igb_hw::Iova;

/// An allocated IOVA range: `start .. start + len`, `len > 0`, both multiples of the
/// allocator's alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IovaRange {
    start: Iova,
    len: u64,
}

impl IovaRange {
    /// First device address of the range.
    pub fn start(&self) -> Iova {
        self.start
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty range (the allocator never returns one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last byte. Cannot overflow: ranges lie inside windows that end at or below
    /// `u64::MAX`.
    pub fn end(&self) -> u64 {
        self.start.0.saturating_add(self.len)
    }

    /// Whether `iova` lies inside the range.
    pub fn contains(&self, iova: Iova) -> bool {
        iova.0 >= self.start.0 && iova.0 < self.end()
    }

    /// Whether the two ranges share at least one byte.
    pub fn overlaps(&self, other: &IovaRange) -> bool {
        self.start.0 < other.end() && other.start.0 < self.end()
    }
}

impl fmt::Display for IovaRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "iova:{:#x}..{:#x}", self.start.0, self.end())
    }
}

/// Why an IOVA operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IovaError {
    /// Zero bytes requested.
    #[error("IOVA allocation of zero bytes")]
    ZeroLength,
    /// An alignment that is zero or not a power of two.
    #[error("IOVA alignment {0:#x} is not a power of two")]
    BadAlignment(u64),
    /// The length, rounded up to the alignment, does not fit in 64 bits.
    #[error("IOVA allocation of {len:#x} bytes overflows the 64-bit address space")]
    TooLarge {
        /// Bytes requested.
        len: u64,
    },
    /// No free range is large enough (after alignment).
    #[error(
        "no free IOVA range of {len:#x} bytes aligned to {align:#x} \
         (largest free range: {largest_free:#x} bytes)"
    )]
    Exhausted {
        /// Bytes requested.
        len: u64,
        /// Alignment requested.
        align: u64,
        /// The largest free range at the time, to tell exhaustion from fragmentation.
        largest_free: u64,
    },
    /// [`IovaAllocator::free`] of an address that does not start an allocated range (never
    /// allocated, already freed, or the middle of a range).
    #[error("{0} is not the start of an allocated IOVA range")]
    NotAllocated(Iova),
    /// The IOMMU reported overlapping windows (a kernel bug or a corrupted report).
    #[error("IOVA windows {first:#x?} and {second:#x?} overlap")]
    OverlappingWindows {
        /// The lower window.
        first: Range<u64>,
        /// The window that starts inside it.
        second: Range<u64>,
    },
    /// No window has even one aligned page (besides page 0).
    #[error("no usable IOVA window (after aligning to {alignment:#x} and excluding IOVA 0)")]
    NoUsableWindow {
        /// The alignment in force.
        alignment: u64,
    },
}

/// First-fit IOVA allocator over a set of valid windows. See the module documentation.
#[derive(Clone, Debug)]
pub struct IovaAllocator {
    alignment: u64,
    /// Usable windows: aligned, sorted, merged when adjacent, page 0 removed.
    windows: Vec<Range<u64>>,
    /// Free ranges, start → end (exclusive); sorted, disjoint, never adjacent.
    free: BTreeMap<u64, u64>,
    /// Allocated ranges, start → length.
    allocated: BTreeMap<u64, u64>,
    free_bytes: u64,
}

/// `value` rounded up to `align` (a power of two), or `None` on overflow.
fn align_up(value: u64, align: u64) -> Option<u64> {
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// `value` rounded down to `align` (a power of two).
fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

fn check_alignment(align: u64) -> Result<(), IovaError> {
    if align.is_power_of_two() {
        Ok(())
    } else {
        Err(IovaError::BadAlignment(align))
    }
}

impl IovaAllocator {
    /// An allocator over `valid_ranges` (half-open `start..end`, any order; empty ranges are
    /// ignored), handing out ranges aligned to `alignment` (a power of two: the IOMMU's
    /// minimum page size, e.g. `PciIommu::alignment()`).
    ///
    /// Each window is shrunk to whole aligned pages; the page at IOVA 0 is removed; adjacent
    /// windows are merged.
    pub fn new(valid_ranges: &[Range<u64>], alignment: u64) -> Result<IovaAllocator, IovaError> {
        check_alignment(alignment)?;
        let mut ranges: Vec<Range<u64>> = valid_ranges
            .iter()
            .filter(|r| r.start < r.end)
            .cloned()
            .collect();
        ranges.sort_by_key(|r| (r.start, r.end));
        for pair in ranges.windows(2) {
            if pair[0].end > pair[1].start {
                return Err(IovaError::OverlappingWindows {
                    first: pair[0].clone(),
                    second: pair[1].clone(),
                });
            }
        }
        let mut windows: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            // Never hand out page 0: start at the first aligned address >= max(start, 1).
            let Some(start) = align_up(r.start.max(1), alignment) else {
                continue;
            };
            let end = align_down(r.end, alignment);
            if start >= end {
                continue;
            }
            match windows.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => windows.push(start..end),
            }
        }
        if windows.is_empty() {
            return Err(IovaError::NoUsableWindow { alignment });
        }
        let free: BTreeMap<u64, u64> = windows.iter().map(|w| (w.start, w.end)).collect();
        let free_bytes = windows.iter().map(|w| w.end - w.start).sum();
        Ok(IovaAllocator {
            alignment,
            windows,
            free,
            allocated: BTreeMap::new(),
            free_bytes,
        })
    }

    /// The minimum alignment (and length granularity) of every range handed out.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// The usable windows (aligned, merged, without page 0).
    pub fn windows(&self) -> &[Range<u64>] {
        &self.windows
    }

    /// Allocates `len` bytes (rounded up to [`IovaAllocator::alignment`]) at the lowest
    /// suitably aligned free address.
    pub fn allocate(&mut self, len: u64) -> Result<IovaRange, IovaError> {
        self.allocate_aligned(len, self.alignment)
    }

    /// Like [`IovaAllocator::allocate`], with the start aligned to `align` (a power of two;
    /// values below the allocator's alignment are raised to it). Useful to let the IOMMU use
    /// 2 MiB pages for memory backed by huge pages.
    pub fn allocate_aligned(&mut self, len: u64, align: u64) -> Result<IovaRange, IovaError> {
        if len == 0 {
            return Err(IovaError::ZeroLength);
        }
        check_alignment(align)?;
        let align = align.max(self.alignment);
        let size = align_up(len, self.alignment).ok_or(IovaError::TooLarge { len })?;

        let mut found = None;
        for (&free_start, &free_end) in &self.free {
            let Some(candidate) = align_up(free_start, align) else {
                continue;
            };
            if candidate < free_end && free_end - candidate >= size {
                found = Some((free_start, free_end, candidate));
                break;
            }
        }
        let Some((free_start, free_end, start)) = found else {
            return Err(IovaError::Exhausted {
                len,
                align,
                largest_free: self.largest_free(),
            });
        };
        // `start + size <= free_end` was checked above, so this cannot overflow.
        let end = start + size;
        self.free.remove(&free_start);
        if free_start < start {
            self.free.insert(free_start, start);
        }
        if end < free_end {
            self.free.insert(end, free_end);
        }
        self.allocated.insert(start, size);
        self.free_bytes -= size;
        Ok(IovaRange {
            start: Iova(start),
            len: size,
        })
    }

    /// Frees the range that starts at `iova`, merging it with free neighbours. Returns the
    /// range that was freed.
    pub fn free(&mut self, iova: Iova) -> Result<IovaRange, IovaError> {
        let len = self
            .allocated
            .remove(&iova.0)
            .ok_or(IovaError::NotAllocated(iova))?;
        let mut start = iova.0;
        let mut end = iova.0 + len;
        let touching_prev = self
            .free
            .range(..start)
            .next_back()
            .filter(|(_, e)| **e == start);
        if let Some((&prev_start, _)) = touching_prev {
            self.free.remove(&prev_start);
            start = prev_start;
        }
        if let Some(next_end) = self.free.remove(&end) {
            end = next_end;
        }
        self.free.insert(start, end);
        self.free_bytes += len;
        Ok(IovaRange { start: iova, len })
    }

    /// Whether `iova` is the start of an allocated range.
    pub fn is_allocated(&self, iova: Iova) -> bool {
        self.allocated.contains_key(&iova.0)
    }

    /// Bytes not allocated.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    /// Bytes allocated.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.values().sum()
    }

    /// Number of allocated ranges.
    pub fn allocation_count(&self) -> usize {
        self.allocated.len()
    }

    /// Length of the largest free range (0 when full).
    pub fn largest_free(&self) -> u64 {
        self.free.iter().map(|(s, e)| e - s).max().unwrap_or(0)
    }

    /// The free ranges, in address order.
    pub fn free_ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.free.iter().map(|(&s, &e)| s..e)
    }

    /// The allocated ranges, in address order.
    pub fn allocated_ranges(&self) -> impl Iterator<Item = IovaRange> + '_ {
        self.allocated.iter().map(|(&s, &len)| IovaRange {
            start: Iova(s),
            len,
        })
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-window allocators are the common case
mod tests {
    use super::*;

    const PAGE: u64 = 0x1000;

    /// Checks every structural invariant; returns the allocator for chaining.
    fn check(a: &IovaAllocator) {
        let mut pieces: Vec<(u64, u64, bool)> = a
            .free_ranges()
            .map(|r| (r.start, r.end, true))
            .chain(a.allocated_ranges().map(|r| (r.start().0, r.end(), false)))
            .collect();
        pieces.sort();
        for p in &pieces {
            assert!(p.0 < p.1, "empty piece {p:x?}");
            assert_eq!(p.0 % a.alignment(), 0, "unaligned start {p:x?}");
            assert_eq!(p.1 % a.alignment(), 0, "unaligned end {p:x?}");
            assert!(
                a.windows().iter().any(|w| w.start <= p.0 && p.1 <= w.end),
                "piece {p:x?} outside the windows"
            );
        }
        for pair in pieces.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "overlap {pair:x?}");
            assert!(
                !(pair[0].2 && pair[1].2 && pair[0].1 == pair[1].0),
                "uncoalesced {pair:x?}"
            );
        }
        let total: u64 = a.windows().iter().map(|w| w.end - w.start).sum();
        assert_eq!(a.free_bytes() + a.allocated_bytes(), total);
        assert_eq!(
            a.free_bytes(),
            a.free_ranges().map(|r| r.end - r.start).sum::<u64>()
        );
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_inside_the_window() {
        let mut a = IovaAllocator::new(&[0x10_0000..0x20_0000], PAGE).unwrap();
        let r1 = a.allocate(1).unwrap();
        let r2 = a.allocate(PAGE + 1).unwrap();
        let r3 = a.allocate(3 * PAGE).unwrap();
        assert_eq!(r1.start(), Iova(0x10_0000));
        assert_eq!(r1.len(), PAGE);
        assert_eq!(r2.start(), Iova(0x10_1000));
        assert_eq!(r2.len(), 2 * PAGE);
        assert_eq!(r3.start(), Iova(0x10_3000));
        assert!(!r1.overlaps(&r2) && !r2.overlaps(&r3) && !r1.overlaps(&r3));
        assert!(r2.contains(Iova(0x10_2fff)) && !r2.contains(Iova(0x10_3000)));
        assert_eq!(a.allocation_count(), 3);
        assert_eq!(r3.to_string(), "iova:0x103000..0x106000");
        check(&a);
    }

    #[test]
    fn zero_length_is_refused() {
        let mut a = IovaAllocator::new(&[0..1 << 20], PAGE).unwrap();
        assert_eq!(a.allocate(0), Err(IovaError::ZeroLength));
        assert_eq!(a.allocate_aligned(0, 1 << 21), Err(IovaError::ZeroLength));
        check(&a);
    }

    #[test]
    fn bad_alignments_are_refused() {
        assert_eq!(
            IovaAllocator::new(&[0..1 << 20], 0).unwrap_err(),
            IovaError::BadAlignment(0)
        );
        assert_eq!(
            IovaAllocator::new(&[0..1 << 20], 3000).unwrap_err(),
            IovaError::BadAlignment(3000)
        );
        let mut a = IovaAllocator::new(&[0..1 << 20], PAGE).unwrap();
        assert_eq!(
            a.allocate_aligned(PAGE, 0x3000),
            Err(IovaError::BadAlignment(0x3000))
        );
        assert_eq!(a.allocate_aligned(PAGE, 0), Err(IovaError::BadAlignment(0)));
        // A smaller power of two is raised to the allocator's alignment.
        assert_eq!(a.allocate_aligned(1, 8).unwrap().start().0 % PAGE, 0);
    }

    #[test]
    fn page_zero_is_never_handed_out() {
        let mut a = IovaAllocator::new(&[0..4 * PAGE], PAGE).unwrap();
        assert_eq!(a.windows(), &[PAGE..4 * PAGE]);
        let r = a.allocate(PAGE).unwrap();
        assert_eq!(r.start(), Iova(PAGE));
        // A window that is only page 0 is unusable.
        assert_eq!(
            IovaAllocator::new(&[0..PAGE], PAGE).unwrap_err(),
            IovaError::NoUsableWindow { alignment: PAGE }
        );
    }

    #[test]
    fn windows_are_trimmed_to_whole_pages_sorted_and_merged() {
        let a = IovaAllocator::new(
            &[
                0x5000..0x6000,
                0x1001..0x3fff,
                0x3fff..0x5000,
                0x9000..0x9000,
                0xa800..0xb7ff,
            ],
            PAGE,
        )
        .unwrap();
        // 0x1001..0x3fff -> 0x2000..0x3000; 0x3fff..0x5000 -> 0x4000..0x5000;
        // 0x5000..0x6000 merges with it; the empty and sub-page windows vanish.
        assert_eq!(a.windows(), &[0x2000..0x3000, 0x4000..0x6000]);
        check(&a);
    }

    #[test]
    fn overlapping_windows_are_refused() {
        let err = IovaAllocator::new(&[0x10_0000..0x20_0000, 0x1f_f000..0x30_0000], PAGE);
        assert_eq!(
            err.unwrap_err(),
            IovaError::OverlappingWindows {
                first: 0x10_0000..0x20_0000,
                second: 0x1f_f000..0x30_0000
            }
        );
    }

    #[test]
    fn exhaustion_is_reported_with_the_largest_free_range() {
        let mut a = IovaAllocator::new(&[PAGE..17 * PAGE], PAGE).unwrap();
        let all: Vec<_> = (0..16).map(|_| a.allocate(PAGE).unwrap()).collect();
        assert_eq!(
            a.allocate(1),
            Err(IovaError::Exhausted {
                len: 1,
                align: PAGE,
                largest_free: 0
            })
        );
        assert_eq!(a.free_bytes(), 0);
        a.free(all[7].start()).unwrap();
        assert_eq!(a.allocate(PAGE).unwrap().start(), all[7].start());
        check(&a);
    }

    #[test]
    fn fragmentation_then_coalescing() {
        let mut a = IovaAllocator::new(&[PAGE..5 * PAGE], PAGE).unwrap();
        let r: Vec<_> = (0..4).map(|_| a.allocate(PAGE).unwrap()).collect();
        a.free(r[0].start()).unwrap();
        a.free(r[2].start()).unwrap();
        check(&a);
        assert_eq!(a.free_bytes(), 2 * PAGE);
        assert_eq!(a.largest_free(), PAGE);
        // Two free pages, but not contiguous.
        assert_eq!(
            a.allocate(2 * PAGE),
            Err(IovaError::Exhausted {
                len: 2 * PAGE,
                align: PAGE,
                largest_free: PAGE
            })
        );
        // Freeing the page between them merges all three.
        a.free(r[1].start()).unwrap();
        check(&a);
        assert_eq!(a.free_ranges().collect::<Vec<_>>(), vec![PAGE..4 * PAGE]);
        let big = a.allocate(3 * PAGE).unwrap();
        assert_eq!(big.start(), r[0].start());
        a.free(big.start()).unwrap();
        a.free(r[3].start()).unwrap();
        assert_eq!(a.free_ranges().collect::<Vec<_>>(), a.windows().to_vec());
        check(&a);
    }

    #[test]
    fn first_fit_reuses_the_lowest_hole() {
        let mut a = IovaAllocator::new(&[PAGE..1 << 20], PAGE).unwrap();
        let r: Vec<_> = (0..8).map(|_| a.allocate(2 * PAGE).unwrap()).collect();
        a.free(r[5].start()).unwrap();
        a.free(r[2].start()).unwrap();
        assert_eq!(a.allocate(PAGE).unwrap().start(), r[2].start());
        assert_eq!(a.allocate(PAGE).unwrap().start().0, r[2].start().0 + PAGE);
        assert_eq!(a.allocate(PAGE).unwrap().start(), r[5].start());
        check(&a);
    }

    #[test]
    fn larger_alignment_is_honoured_and_the_gap_stays_free() {
        const HUGE: u64 = 2 << 20;
        let mut a = IovaAllocator::new(&[PAGE..64 << 20], PAGE).unwrap();
        let small = a.allocate(PAGE).unwrap();
        let big = a.allocate_aligned(HUGE, HUGE).unwrap();
        assert_eq!(big.start().0 % HUGE, 0);
        assert_eq!(big.start().0, HUGE);
        // The gap below the aligned range remains usable.
        let next = a.allocate(PAGE).unwrap();
        assert_eq!(next.start().0, small.end());
        check(&a);
    }

    #[test]
    fn ranges_never_cross_a_hole_between_windows() {
        // x86: the MSI window 0xfee0_0000..0xfef0_0000 is reserved.
        let mut a = IovaAllocator::new(
            &[0xfed0_0000..0xfee0_0000, 0xfef0_0000..0x1_0000_0000],
            PAGE,
        )
        .unwrap();
        let r1 = a.allocate(0x8_0000).unwrap();
        // 0x10_0000 does not fit in what is left of the first window: goes to the second.
        let r2 = a.allocate(0x10_0000).unwrap();
        assert_eq!(r1.start(), Iova(0xfed0_0000));
        assert_eq!(r2.start(), Iova(0xfef0_0000));
        // The rest of the first window is still used first for what fits.
        assert_eq!(a.allocate(0x8_0000).unwrap().start(), Iova(0xfed8_0000));
        for r in a.allocated_ranges() {
            assert!(!r.overlaps(&IovaRange {
                start: Iova(0xfee0_0000),
                len: 0x10_0000
            }));
        }
        check(&a);
    }

    #[test]
    fn bad_frees_are_refused() {
        let mut a = IovaAllocator::new(&[PAGE..1 << 20], PAGE).unwrap();
        let r = a.allocate(4 * PAGE).unwrap();
        assert_eq!(
            a.free(Iova(0x1234_0000)),
            Err(IovaError::NotAllocated(Iova(0x1234_0000)))
        );
        let middle = Iova(r.start().0 + PAGE);
        assert_eq!(a.free(middle), Err(IovaError::NotAllocated(middle)));
        assert!(a.is_allocated(r.start()));
        assert_eq!(a.free(r.start()), Ok(r));
        assert!(!a.is_allocated(r.start()));
        assert_eq!(a.free(r.start()), Err(IovaError::NotAllocated(r.start())));
        check(&a);
    }

    #[test]
    fn no_overflow_near_the_top_of_the_address_space() {
        let top = u64::MAX - 16 * PAGE + 1; // 0xffff_ffff_ffff_0000 + 1
        let mut a = IovaAllocator::new(&[top..u64::MAX], PAGE).unwrap();
        // The window is trimmed to whole pages: the last partial page is dropped.
        assert_eq!(a.windows(), &[top..(u64::MAX - PAGE + 1)]);
        assert_eq!(
            a.allocate(u64::MAX),
            Err(IovaError::TooLarge { len: u64::MAX })
        );
        let len = u64::MAX - PAGE + 2;
        assert_eq!(a.allocate(len), Err(IovaError::TooLarge { len }));
        assert!(matches!(
            a.allocate(u64::MAX - PAGE + 1),
            Err(IovaError::Exhausted { .. })
        ));
        assert!(matches!(
            a.allocate_aligned(PAGE, 1 << 63),
            Err(IovaError::Exhausted { .. })
        ));
        let r = a.allocate(15 * PAGE).unwrap();
        assert_eq!(r.start(), Iova(top));
        assert_eq!(r.end(), u64::MAX - PAGE + 1);
        assert!(matches!(a.allocate(1), Err(IovaError::Exhausted { .. })));
        a.free(r.start()).unwrap();
        check(&a);
        // A window whose aligned start overflows is ignored rather than wrapped to 0.
        assert_eq!(
            IovaAllocator::new(&[u64::MAX - 10..u64::MAX], PAGE).unwrap_err(),
            IovaError::NoUsableWindow { alignment: PAGE }
        );
        // The largest alignment there is leaves no whole aligned unit below u64::MAX.
        assert_eq!(
            IovaAllocator::new(&[0..u64::MAX], 1 << 63).unwrap_err(),
            IovaError::NoUsableWindow { alignment: 1 << 63 }
        );
        let mut b = IovaAllocator::new(&[0..u64::MAX], 1 << 62).unwrap();
        assert_eq!(b.windows(), &[(1 << 62)..(3 << 62)]);
        let r = b.allocate(1).unwrap();
        assert_eq!(r.len(), 1 << 62);
        let r2 = b.allocate(1 << 62).unwrap();
        assert_eq!(r2.start(), Iova(2 << 62));
        assert!(matches!(b.allocate(1), Err(IovaError::Exhausted { .. })));
        check(&b);
    }

    #[test]
    fn whole_64_bit_space_with_page_alignment() {
        let mut a = IovaAllocator::new(&[0..u64::MAX], PAGE).unwrap();
        let r = a.allocate(1 << 62).unwrap();
        let s = a.allocate_aligned(PAGE, 1 << 63).unwrap();
        assert_eq!(s.start(), Iova(1 << 63));
        a.free(r.start()).unwrap();
        a.free(s.start()).unwrap();
        assert_eq!(a.free_ranges().collect::<Vec<_>>(), a.windows().to_vec());
        check(&a);
    }

    #[test]
    fn freeing_everything_in_any_order_restores_the_windows() {
        let mut a = IovaAllocator::new(&[PAGE..0x40_0000, 0x80_0000..0x100_0000], PAGE).unwrap();
        let mut ranges = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 0x9000) + 1;
            if seed & (1 << 40) != 0 && !ranges.is_empty() {
                let r: IovaRange = ranges.swap_remove((seed as usize / 3) % ranges.len());
                a.free(r.start()).unwrap();
            } else if let Ok(r) = a.allocate(len) {
                ranges.push(r);
            }
            check(&a);
        }
        while let Some(r) = ranges.pop() {
            a.free(r.start()).unwrap();
        }
        check(&a);
        assert_eq!(a.free_ranges().collect::<Vec<_>>(), a.windows().to_vec());
        assert_eq!(a.allocation_count(), 0);
    }
}

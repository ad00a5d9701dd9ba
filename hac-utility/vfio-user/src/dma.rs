//! The client's DMA windows as the server keeps them: which windows exist (with a file
//! descriptor, so mapped into the device, or without one: announced and left unmapped), how
//! many bytes are mapped, and the per-client limits on both.

use std::collections::BTreeMap;

use hw_common::Iova;

use crate::backend::DmaWindow;

/// Most DMA windows one client may have at once, with or without a descriptor (advertised as
/// `max_dma_maps`). Each window with a descriptor is one mapping in the server's process (the
/// kernel allows about 65 000 per process, shared by every device served).
pub const MAX_DMA_MAPS: usize = 1024;
/// Most bytes one client may have mapped at once (the server's address space is shared by
/// every device: 7 × 1 TiB fits in the 128 TiB of x86-64 user space).
pub const MAX_DMA_BYTES: u64 = 1 << 40;

/// Per-client limits on DMA windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Windows at once, with or without a descriptor (advertised as `max_dma_maps`).
    pub max_dma_maps: usize,
    /// Bytes mapped at once (windows with a descriptor).
    pub max_dma_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_dma_maps: MAX_DMA_MAPS,
            max_dma_bytes: MAX_DMA_BYTES,
        }
    }
}

/// What kind of window a removed one was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Mapped into the device.
    Mapped,
    /// Announced without a descriptor.
    Unbacked,
}

/// The windows of one client. Windows never overlap (of either kind).
#[derive(Debug, Default)]
pub(crate) struct DmaWindows {
    /// Windows mapped into the device: address → size.
    mapped: BTreeMap<u64, u64>,
    /// Windows announced without a descriptor: address → size.
    unbacked: BTreeMap<u64, u64>,
    /// Sum of the sizes in `mapped`.
    mapped_bytes: u64,
}

impl DmaWindows {
    /// Windows of both kinds.
    pub(crate) fn count(&self) -> usize {
        self.mapped.len() + self.unbacked.len()
    }

    /// Bytes mapped.
    pub(crate) fn mapped_bytes(&self) -> u64 {
        self.mapped_bytes
    }

    /// Whether `address..address+size` meets a window (O(log n): windows never overlap, so
    /// only the last one starting below the end can).
    pub(crate) fn overlaps(&self, address: u64, size: u64) -> bool {
        let end = address.saturating_add(size);
        [&self.mapped, &self.unbacked].into_iter().any(|windows| {
            windows
                .range(..end)
                .next_back()
                .is_some_and(|(&a, &s)| address < a.saturating_add(s))
        })
    }

    /// Records a window of `kind` (the caller checked overlap and limits).
    pub(crate) fn insert(&mut self, kind: Kind, window: DmaWindow) {
        match kind {
            Kind::Mapped => {
                self.mapped.insert(window.address.0, window.size);
                self.mapped_bytes += window.size;
            }
            Kind::Unbacked => {
                self.unbacked.insert(window.address.0, window.size);
            }
        }
    }

    /// Removes exactly `window`; `None` if no window has that address and size.
    pub(crate) fn remove(&mut self, window: DmaWindow) -> Option<Kind> {
        let (address, size) = (window.address.0, window.size);
        if self.mapped.get(&address) == Some(&size) {
            self.mapped.remove(&address);
            self.mapped_bytes -= size;
            Some(Kind::Mapped)
        } else if self.unbacked.get(&address) == Some(&size) {
            self.unbacked.remove(&address);
            Some(Kind::Unbacked)
        } else {
            None
        }
    }

    /// Removes every window; returns the mapped ones and how many windows there were.
    pub(crate) fn clear(&mut self) -> (Vec<DmaWindow>, usize) {
        let count = self.count();
        let mapped = std::mem::take(&mut self.mapped)
            .into_iter()
            .map(|(a, size)| DmaWindow {
                address: Iova(a),
                size,
            })
            .collect();
        self.unbacked.clear();
        self.mapped_bytes = 0;
        (mapped, count)
    }

    /// Whether `window` lies inside one mapped window.
    pub(crate) fn covers_mapped(&self, window: DmaWindow) -> bool {
        let Some(end) = window.address.0.checked_add(window.size) else {
            return false;
        };
        self.mapped
            .range(..=window.address.0)
            .next_back()
            .is_some_and(|(&a, &s)| a.checked_add(s).is_some_and(|e| end <= e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(address: u64, size: u64) -> DmaWindow {
        DmaWindow {
            address: Iova(address),
            size,
        }
    }

    #[test]
    fn overlaps_are_found_among_both_kinds() {
        let mut d = DmaWindows::default();
        d.insert(Kind::Mapped, w(0x1000, 0x1000));
        d.insert(Kind::Unbacked, w(0x4000, 0x1000));
        assert!(d.overlaps(0x1800, 0x1000));
        assert!(d.overlaps(0x0800, 0x1000));
        assert!(d.overlaps(0x4fff, 1));
        assert!(!d.overlaps(0x2000, 0x2000));
        assert!(!d.overlaps(0x5000, u64::MAX));
        assert_eq!((d.count(), d.mapped_bytes()), (2, 0x1000));
        assert!(d.covers_mapped(w(0x1800, 0x800)));
        assert!(!d.covers_mapped(w(0x1800, 0x801)));
        assert!(
            !d.covers_mapped(w(0x4000, 1)),
            "an unbacked window is not mapped"
        );
    }

    #[test]
    fn only_exact_windows_are_removed() {
        let mut d = DmaWindows::default();
        d.insert(Kind::Mapped, w(0x1000, 0x2000));
        d.insert(Kind::Unbacked, w(0x8000, 0x1000));
        assert_eq!(d.remove(w(0x1000, 0x1000)), None);
        assert_eq!(d.remove(w(0x1000, 0x2000)), Some(Kind::Mapped));
        assert_eq!(d.mapped_bytes(), 0);
        assert_eq!(d.remove(w(0x8000, 0x1000)), Some(Kind::Unbacked));
        d.insert(Kind::Mapped, w(0x1000, 0x2000));
        d.insert(Kind::Unbacked, w(0x8000, 0x1000));
        assert_eq!(d.clear(), (vec![w(0x1000, 0x2000)], 2));
        assert_eq!((d.count(), d.mapped_bytes()), (0, 0));
    }
}

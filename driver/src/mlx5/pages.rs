//! The pages the driver gives the device (MANAGE_PAGES): allocated in batches of DMA memory,
//! tracked page by page, and freed when the device has returned every page of a batch.

use std::collections::BTreeMap;

use super::queues::PAS_PAGE;
use crate::backend::{DmaAllocator, DmaError, DmaRegion};

/// Page accounting for one function.
pub struct PageBook<G: DmaRegion> {
    batches: Vec<Option<(G, usize)>>,
    pages: BTreeMap<u64, usize>,
    /// Pages the device returned that the driver never gave (counted, ignored).
    pub unknown_returned: u64,
}

impl<G: DmaRegion> Default for PageBook<G> {
    fn default() -> Self {
        PageBook {
            batches: Vec::new(),
            pages: BTreeMap::new(),
            unknown_returned: 0,
        }
    }
}

impl<G: DmaRegion> PageBook<G> {
    /// Allocates `n` pages (one DMA region) and returns their device addresses; they count as
    /// given from now on (the caller takes them back with [`PageBook::returned`] if the
    /// device refuses them).
    pub fn allocate<D: DmaAllocator<Region = G>>(
        &mut self,
        dma: &D,
        n: usize,
    ) -> Result<Vec<u64>, DmaError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let region = dma.allocate(n * PAS_PAGE)?;
        let base = region.iova().0;
        let addrs: Vec<u64> = (0..n).map(|k| base + (k * PAS_PAGE) as u64).collect();
        let batch = self.batches.len();
        for a in &addrs {
            self.pages.insert(*a, batch);
        }
        self.batches.push(Some((region, n)));
        Ok(addrs)
    }

    /// The device gave `addrs` back: forget them and free every batch left empty.
    pub fn returned(&mut self, addrs: &[u64]) {
        for a in addrs {
            let Some(batch) = self.pages.remove(a) else {
                self.unknown_returned += 1;
                continue;
            };
            if let Some(slot) = self.batches.get_mut(batch) {
                let empty = match slot {
                    Some((_, left)) => {
                        *left = left.saturating_sub(1);
                        *left == 0
                    }
                    None => false,
                };
                if empty {
                    *slot = None;
                }
            }
        }
    }

    /// Pages the device holds.
    pub fn outstanding(&self) -> usize {
        self.pages.len()
    }

    /// Forgets every page (the device lost them in a reset); frees the memory.
    pub fn clear(&mut self) {
        self.pages.clear();
        self.batches.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mlx5::model::Mlx5Model;
    use mlx5_model::{FunctionId, Mlx5Config};

    #[test]
    fn batches_are_freed_when_every_page_came_back() {
        let m = Mlx5Model::new(Mlx5Config::default());
        let dma = m.dma(FunctionId::Pf);
        let mut book = PageBook::default();
        let a = book.allocate(&dma, 3).unwrap();
        let b = book.allocate(&dma, 2).unwrap();
        assert_eq!(book.outstanding(), 5);
        assert!(a.iter().chain(&b).all(|p| p % 4096 == 0));
        book.returned(&a[..2]);
        assert_eq!(book.outstanding(), 3);
        assert!(
            book.batches[0].is_some(),
            "one page of the batch still given"
        );
        book.returned(&[a[2], 0xdead_0000]);
        assert!(book.batches[0].is_none());
        assert_eq!(book.unknown_returned, 1);
        book.returned(&b);
        assert_eq!(book.outstanding(), 0);
        assert!(book.allocate(&dma, 0).unwrap().is_empty());
    }
}

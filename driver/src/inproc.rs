//! What the two in-process backends share — the 82576 model's ([`crate::model`]) and the mlx5
//! model's ([`crate::mlx5::model`]): a bump allocator of IOVAs per function (each function has
//! its own IOMMU) and regions of [`SharedMemory`] mapped into a function's IOMMU, unmapped on
//! drop. A backend says how to map and unmap ([`InProcessMapper`]); the rest is here once.

use std::sync::{Arc, Mutex};

use adapter_core::memory::SharedMemory;
use hw_common::Iova;

use crate::backend::{DmaError, DmaRegion};

/// Where the in-process backends start handing out IOVAs for each function.
pub const IOVA_START: u64 = 0x1_0000_0000;
/// Allocation granularity.
const PAGE: usize = 4096;

/// One function's DMA mapping on an in-process model.
pub trait InProcessMapper: Clone {
    /// Maps all of `mem` at `iova` into the function's IOMMU.
    fn map(&self, iova: Iova, mem: Arc<SharedMemory>) -> Result<(), String>;
    /// Removes the mapping at `iova` (a mapping already gone is not an error).
    fn unmap(&self, iova: Iova);
    /// The function's index among the device's functions (its IOVA counter).
    fn slot(&self) -> usize;
}

/// The next free IOVA of every function of one device.
#[derive(Clone, Debug, Default)]
pub struct IovaSpace(Arc<Mutex<Vec<u64>>>);

impl IovaSpace {
    /// `len` bytes of IOVA space for function `slot`.
    fn take(&self, slot: usize, len: usize) -> Result<Iova, DmaError> {
        let mut next = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if next.len() <= slot {
            next.resize(slot + 1, IOVA_START);
        }
        let iova = next[slot];
        next[slot] = iova
            .checked_add(len as u64)
            .ok_or(DmaError::IovaExhausted(len))?;
        Ok(Iova(iova))
    }

    /// At least `len` bytes (rounded up to the page), zeroed, mapped for `mapper`'s function.
    pub fn allocate<M: InProcessMapper>(
        &self,
        mapper: &M,
        len: usize,
    ) -> Result<InProcessRegion<M>, DmaError> {
        if len == 0 {
            return Err(DmaError::ZeroLength);
        }
        let len = len.div_ceil(PAGE) * PAGE;
        let iova = self.take(mapper.slot(), len)?;
        let mem = SharedMemory::new(len);
        mapper
            .map(iova, mem.clone())
            .map_err(|reason| DmaError::Map { iova, len, reason })?;
        Ok(InProcessRegion {
            mapper: mapper.clone(),
            mem,
            iova,
            len,
        })
    }
}

/// A region of [`SharedMemory`] mapped into a function's IOMMU; unmapped on drop.
pub struct InProcessRegion<M: InProcessMapper> {
    mapper: M,
    mem: Arc<SharedMemory>,
    iova: Iova,
    len: usize,
}

impl<M: InProcessMapper> InProcessRegion<M> {
    /// The memory behind the region (for tests that inspect what the device wrote).
    pub fn memory(&self) -> &Arc<SharedMemory> {
        &self.mem
    }
}

impl<M: InProcessMapper> DmaRegion for InProcessRegion<M> {
    fn iova(&self) -> Iova {
        self.iova
    }
    fn len(&self) -> usize {
        self.len
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        if !self.mem.read_checked(offset as u64, buf) {
            buf.fill(0);
        }
    }
    fn write(&self, offset: usize, data: &[u8]) {
        let end = offset.saturating_add(data.len()).min(self.len);
        if offset < end {
            let _ = self.mem.write_checked(offset as u64, &data[..end - offset]);
        }
    }
}

impl<M: InProcessMapper> Drop for InProcessRegion<M> {
    fn drop(&mut self) {
        self.mapper.unmap(self.iova);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A mapper that records what it was asked.
    #[derive(Clone, Default)]
    struct Rec(Arc<Mutex<Vec<(bool, u64)>>>, usize);

    impl InProcessMapper for Rec {
        fn map(&self, iova: Iova, _: Arc<SharedMemory>) -> Result<(), String> {
            self.0.lock().unwrap().push((true, iova.0));
            Ok(())
        }
        fn unmap(&self, iova: Iova) {
            self.0.lock().unwrap().push((false, iova.0));
        }
        fn slot(&self) -> usize {
            self.1
        }
    }

    #[test]
    fn each_function_has_its_own_iova_space_and_regions_unmap_on_drop() {
        let space = IovaSpace::default();
        let (a, b) = (Rec(Arc::default(), 0), Rec(Arc::default(), 3));
        let r1 = space.allocate(&a, 1).unwrap();
        let r2 = space.allocate(&a, 4097).unwrap();
        let r3 = space.allocate(&b, 10).unwrap();
        assert_eq!(
            (r1.iova().0, r1.len(), r2.iova().0, r2.len()),
            (IOVA_START, 4096, IOVA_START + 4096, 8192)
        );
        assert_eq!(
            r3.iova().0,
            IOVA_START,
            "function 3 starts at the start too"
        );
        r2.write(8190, &[1, 2, 3, 4]);
        let mut got = [9u8; 4];
        r2.read(8190, &mut got);
        assert_eq!(got, [0, 0, 0, 0], "out of range: nothing read, zeros");
        r2.read(8190, &mut got[..2]);
        assert_eq!(&got[..2], &[1, 2], "the in-range part was written");
        drop(r2);
        assert_eq!(
            *a.0.lock().unwrap(),
            vec![
                (true, IOVA_START),
                (true, IOVA_START + 4096),
                (false, IOVA_START + 4096)
            ]
        );
        assert!(matches!(space.allocate(&a, 0), Err(DmaError::ZeroLength)));
    }
}

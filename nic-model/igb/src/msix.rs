//! MSI-X table and pending-bit array of one function (BAR3), and the interrupt messages the
//! model delivers.

use igb_hw::pci::msix as cap;
use igb_hw::regs::MSIX_PBA_OFFSET;

use crate::FunctionId;

/// One interrupt message sent by the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupt {
    /// The function that raised it.
    pub function: FunctionId,
    /// MSI-X vector index.
    pub vector: u16,
    /// Message address programmed in the table.
    pub address: u64,
    /// Message data programmed in the table.
    pub data: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    addr_lo: u32,
    addr_hi: u32,
    data: u32,
    control: u32,
}

/// MSI-X state of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsixTable {
    entries: Vec<Entry>,
    pending: u64,
}

impl MsixTable {
    /// A table of `vectors` entries, all masked (PCI reset state).
    pub fn new(vectors: usize) -> MsixTable {
        MsixTable {
            entries: vec![
                Entry {
                    control: cap::VECTOR_MASKED,
                    ..Entry::default()
                };
                vectors
            ],
            pending: 0,
        }
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Back to the reset state.
    pub fn reset(&mut self) {
        *self = MsixTable::new(self.entries.len());
    }

    /// Reads the dword at `offset` in BAR3; `None` if nothing is decoded there.
    pub fn read(&self, offset: u32) -> Option<u32> {
        let table_len = (self.entries.len() * cap::ENTRY_SIZE) as u32;
        if offset < table_len {
            let e = &self.entries[(offset as usize) / cap::ENTRY_SIZE];
            return Some(match offset % 16 {
                0 => e.addr_lo,
                4 => e.addr_hi,
                8 => e.data,
                _ => e.control,
            });
        }
        match offset.checked_sub(MSIX_PBA_OFFSET) {
            Some(0) => Some(self.pending as u32),
            Some(4) => Some((self.pending >> 32) as u32),
            _ => None,
        }
    }

    /// Writes the dword at `offset`. Returns the vectors that became deliverable because they
    /// were unmasked with their pending bit set, or `None` if nothing is decoded there (the PBA
    /// is read only).
    pub fn write(&mut self, offset: u32, value: u32) -> Option<Vec<u16>> {
        let table_len = (self.entries.len() * cap::ENTRY_SIZE) as u32;
        if offset >= table_len {
            return None;
        }
        let index = (offset as usize) / cap::ENTRY_SIZE;
        let e = &mut self.entries[index];
        match offset % 16 {
            0 => e.addr_lo = value & !0x3,
            4 => e.addr_hi = value,
            8 => e.data = value,
            _ => e.control = value & cap::VECTOR_MASKED,
        }
        Some(self.take_unmasked_pending(false))
    }

    /// Pending vectors that are no longer masked (entry mask only; the caller checks the
    /// function-level enable and mask); their pending bits are cleared.
    pub fn take_unmasked_pending(&mut self, function_masked: bool) -> Vec<u16> {
        if function_masked {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if self.pending & (1 << i) != 0 && e.control & cap::VECTOR_MASKED == 0 {
                out.push(i as u16);
            }
        }
        for &v in &out {
            self.pending &= !(1 << v);
        }
        out
    }

    /// Signals `vector`: returns the message to deliver, or `None` if it was recorded as pending
    /// (masked) or does not exist.
    pub fn signal(
        &mut self,
        function: FunctionId,
        vector: u16,
        function_masked: bool,
    ) -> Option<Interrupt> {
        let e = self.entries.get(usize::from(vector))?;
        if function_masked || e.control & cap::VECTOR_MASKED != 0 {
            self.pending |= 1 << vector;
            return None;
        }
        Some(Interrupt {
            function,
            vector,
            address: u64::from(e.addr_lo) | (u64::from(e.addr_hi) << 32),
            data: e.data,
        })
    }

    /// Clears pending bits (the VF's PBACL register).
    pub fn clear_pending(&mut self, mask: u32) {
        self.pending &= !u64::from(mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_vector_is_pending_until_unmasked() {
        let mut t = MsixTable::new(3);
        assert!(t.signal(FunctionId::Pf, 1, false).is_none());
        assert_eq!(t.read(MSIX_PBA_OFFSET), Some(0b10));
        t.write(16, 0xFEE0_0000);
        t.write(24, 0x41);
        let released = t.write(28, 0).unwrap();
        assert_eq!(released, vec![1]);
        assert_eq!(t.read(MSIX_PBA_OFFSET), Some(0));
        let m = t.signal(FunctionId::Pf, 1, false).unwrap();
        assert_eq!((m.address, m.data), (0xFEE0_0000, 0x41));
        assert!(
            t.signal(FunctionId::Pf, 7, false).is_none(),
            "no such vector"
        );
        assert_eq!(t.read(0x100), None);
        assert_eq!(t.write(MSIX_PBA_OFFSET, 1), None, "PBA is read only");
    }
}

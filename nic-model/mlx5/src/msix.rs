//! MSI-X of one function: the table and the pending-bit array in BAR0 (where
//! `mlx5_hw::pci::msix` puts them), and the interrupt messages the device sends.
//!
//! Each table entry is 16 little-endian bytes: message address (low, high), message data and
//! vector control (bit 0: masked). A vector fires when MSI-X is enabled in the capability's
//! message control; while the function mask is set or the vector is masked, the vector's PBA
//! bit is set instead and the message is sent when both masks clear. With MSI-X disabled the
//! function cannot interrupt at all (`mlx5_core` has no INTx or MSI fallback): the event is
//! dropped and counted. Source: PCI Local Bus 3.0 §6.8.2 (MSI-X table, PBA, masking).

use crate::function::FunctionId;

/// Bytes of one table entry.
pub const ENTRY_LEN: usize = 16;
/// Entry offsets (PCI 3.0 §6.8.2.6–9): message address low and high, message data, vector
/// control.
mod entry {
    pub const ADDRESS_LO: usize = 0x0;
    pub const ADDRESS_HI: usize = 0x4;
    pub const DATA: usize = 0x8;
    pub const CONTROL: usize = 0xC;
}
/// Vector control: masked.
const VECTOR_MASKED: u8 = 1;

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

/// What raising a vector did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Raised {
    /// The message was sent.
    Sent(Interrupt),
    /// Masked (vector or function): the PBA bit is set.
    Pending,
    /// MSI-X is disabled: nothing can be sent.
    Disabled,
    /// No such vector.
    NoVector,
}

/// The MSI-X state of one function: the table bytes as the driver wrote them and the PBA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Msix {
    pub(crate) table: Vec<u8>,
    pub(crate) pending: u64,
}

impl Msix {
    /// A table of `vectors` entries, every vector masked, nothing pending (reset state).
    pub(crate) fn new(vectors: u16) -> Msix {
        let mut table = vec![0u8; ENTRY_LEN * usize::from(vectors)];
        for e in table.chunks_exact_mut(ENTRY_LEN) {
            e[entry::CONTROL] = VECTOR_MASKED;
        }
        Msix { table, pending: 0 }
    }

    /// Number of vectors.
    pub(crate) fn vectors(&self) -> u16 {
        (self.table.len() / ENTRY_LEN) as u16
    }

    fn dword(&self, vector: u16, at: usize) -> u32 {
        let base = usize::from(vector) * ENTRY_LEN + at;
        self.table
            .get(base..base + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn masked(&self, vector: u16) -> bool {
        self.dword(vector, entry::CONTROL) & u32::from(VECTOR_MASKED) != 0
    }

    fn message(&self, function: FunctionId, vector: u16) -> Interrupt {
        Interrupt {
            function,
            vector,
            address: u64::from(self.dword(vector, entry::ADDRESS_LO))
                | (u64::from(self.dword(vector, entry::ADDRESS_HI)) << 32),
            data: self.dword(vector, entry::DATA),
        }
    }

    /// Raises `vector` under the capability's `enabled` and `function_masked` bits.
    pub(crate) fn raise(
        &mut self,
        function: FunctionId,
        vector: u16,
        enabled: bool,
        function_masked: bool,
    ) -> Raised {
        if vector >= self.vectors() || vector >= 64 {
            return Raised::NoVector;
        }
        if !enabled {
            return Raised::Disabled;
        }
        if function_masked || self.masked(vector) {
            self.pending |= 1 << vector;
            return Raised::Pending;
        }
        Raised::Sent(self.message(function, vector))
    }

    /// The messages of pending vectors that are no longer masked (their PBA bits clear).
    pub(crate) fn unmasked_pending(
        &mut self,
        function: FunctionId,
        enabled: bool,
        function_masked: bool,
    ) -> Vec<Interrupt> {
        if !enabled || function_masked || self.pending == 0 {
            return Vec::new();
        }
        let mut sent = Vec::new();
        for v in 0..self.vectors().min(64) {
            if self.pending & (1 << v) != 0 && !self.masked(v) {
                self.pending &= !(1 << v);
                sent.push(self.message(function, v));
            }
        }
        sent
    }

    /// The PBA bytes at `at` (little-endian qword of pending bits).
    pub(crate) fn read_pba(&self, at: usize, data: &mut [u8]) {
        let bytes = self.pending.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(at + i).copied().unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_vectors_pend_and_fire_on_unmask() {
        let mut m = Msix::new(4);
        m.table[16..20].copy_from_slice(&0xFEE0_0000u32.to_le_bytes());
        m.table[24..28].copy_from_slice(&0x41u32.to_le_bytes());
        let f = FunctionId::Vf(0);
        assert_eq!(m.raise(f, 1, false, false), Raised::Disabled);
        assert_eq!(m.raise(f, 9, true, false), Raised::NoVector);
        assert_eq!(m.raise(f, 1, true, false), Raised::Pending);
        assert_eq!(m.pending, 0b10);
        assert!(
            m.unmasked_pending(f, true, false).is_empty(),
            "still masked"
        );
        m.table[28] = 0;
        assert!(
            m.unmasked_pending(f, true, true).is_empty(),
            "function mask"
        );
        let sent = m.unmasked_pending(f, true, false);
        assert_eq!(
            sent,
            vec![Interrupt {
                function: f,
                vector: 1,
                address: 0xFEE0_0000,
                data: 0x41
            }]
        );
        assert_eq!(m.pending, 0);
        assert!(matches!(m.raise(f, 1, true, false), Raised::Sent(_)));
    }
}

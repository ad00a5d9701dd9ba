//! BAR accesses routed to the model's VF: BAR0 (registers) and BAR3 (MSI-X table and PBA; the
//! table is the endpoint's, see `irq.rs`). The model takes 4-byte aligned accesses:
//! narrower reads are assembled from the enclosing registers, narrower writes counted and
//! dropped. Mailbox and reset accesses let the PF agent answer at once.

use igb_hw::pci::msix as msix_cap;
use igb_hw::regs::{VF_MSIX_VECTORS, VfReg};

use super::{VfEndpoint, region};

impl VfEndpoint {
    /// Reads BAR `bar` at `offset` (inside the BAR).
    pub(super) fn bar_read(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        let f = self.function();
        if offset.is_multiple_of(4) && data.len().is_multiple_of(4) {
            for (i, chunk) in data.chunks_mut(4).enumerate() {
                self.model
                    .nic()
                    .bar_read(f, bar, offset + 4 * i as u64, chunk);
            }
        } else {
            // Narrow reads: the enclosing registers, then the bytes asked for.
            self.counters.count_misaligned();
            for (i, b) in data.iter_mut().enumerate() {
                let at = offset + i as u64;
                let mut w = [0u8; 4];
                self.model.nic().bar_read(f, bar, at & !3, &mut w);
                *b = w[(at & 3) as usize];
            }
        }
        if u32::from(bar) == region::BAR0
            && covers(offset, data.len(), VfReg::VFMAILBOX.offset().0.into())
        {
            self.poll_agent();
        }
    }

    /// Writes BAR `bar` at `offset` (inside the BAR).
    pub(super) fn bar_write(&mut self, bar: u8, offset: u64, data: &[u8]) {
        if u32::from(bar) == region::BAR3
            && offset < (VF_MSIX_VECTORS * msix_cap::ENTRY_SIZE) as u64
        {
            // The table is ours (QEMU emulates the guest's); a client write is ignored.
            return;
        }
        if !offset.is_multiple_of(4) || !data.len().is_multiple_of(4) {
            // A narrow write cannot be merged into a register without side effects
            // (read-to-clear registers); the model would refuse it too.
            self.counters.count_misaligned();
            return;
        }
        let f = self.function();
        for (i, chunk) in data.chunks(4).enumerate() {
            self.model
                .nic()
                .bar_write(f, bar, offset + 4 * i as u64, chunk);
        }
        if u32::from(bar) == region::BAR0 {
            self.poll_agent();
            if covers(offset, data.len(), u64::from(VfReg::CTRL.offset().0)) {
                // A VF reset may have reset the vectors' masks.
                self.sync_msix();
            }
        }
    }
}

/// Whether `offset..offset+len` includes the register at `reg`.
fn covers(offset: u64, len: usize, reg: u64) -> bool {
    offset <= reg && reg < offset + len as u64
}

//! A guest RAM window (the client's memory the server mapped) as DMA memory of a model, for
//! either family's endpoint: reads through the mapping, writes through the mapping (direct
//! mode) or as `DMA_WRITE` requests to the client (client mode, `hac_vfio_user::client_dma`).

use std::sync::Arc;

use adapter_core::DmaTarget;
use hac_vfio_user::{DmaWindow, DmaWriteQueue, GuestMapping};
use hw_common::Iova;

/// A guest RAM window as DMA memory of the model. The IOMMU checks every device access against
/// the window before it gets here, so the out-of-range answers (zeros read, nothing written)
/// are never given.
///
/// In client mode (`client` set) a write never touches the mapping: it is queued as a
/// `DMA_WRITE` to the client at its DMA address, so it lands in the client's dirty log. Reads
/// use the mapping in both modes (the device never reads back what it wrote before the guest
/// saw it: descriptor rings go device → guest → device through the guest).
pub struct GuestRam {
    memory: GuestMapping,
    client: Option<ClientWrites>,
}

/// Where a window's writes go in client mode.
pub struct ClientWrites {
    queue: Arc<DmaWriteQueue>,
    /// The window's DMA address and where it starts in the mapping.
    window: Iova,
    offset: u64,
}

impl GuestRam {
    /// `memory` holding `window` from byte `offset`, written directly or (with `queue`)
    /// through the client.
    pub fn new(
        memory: GuestMapping,
        window: DmaWindow,
        offset: u64,
        queue: Option<&Arc<DmaWriteQueue>>,
    ) -> GuestRam {
        GuestRam {
            memory,
            client: queue.map(|q| ClientWrites {
                queue: q.clone(),
                window: window.address,
                offset,
            }),
        }
    }
}

impl DmaTarget for GuestRam {
    fn len(&self) -> u64 {
        self.memory.len() as u64
    }

    fn read(&self, offset: u64, buf: &mut [u8]) {
        if !self.memory.read(offset, buf) {
            buf.fill(0);
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        match &self.client {
            // Refused only when the queue failed closed (counted there; the connection ends).
            Some(c) => {
                let iova = c.window.0.wrapping_add(offset.wrapping_sub(c.offset));
                let _ = c.queue.write(iova, data);
            }
            None => {
                let _ = self.memory.write(offset, data);
            }
        }
    }
}

//! The VF's MSI-X vectors and the client's eventfds: [`IrqRoutes`] (shared by every endpoint
//! and the model's interrupt callback) and the model's MSI-X table the endpoint programs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hac_driver::model::Model;
use hac_vfio_user::{DmaWriteQueue, EventFd, IrqAction};
use igb_hw::pci::msix as msix_cap;
use igb_hw::regs::VF_MSIX_VECTORS;
use igb_model::{FunctionId, Interrupt};

use super::VfEndpoint;

/// The address programmed into the model's MSI-X entries (the x86 MSI window; only the data,
/// the vector number, matters to us).
const MSIX_ADDRESS: u32 = 0xFEE0_0000;

/// Which eventfd each VF vector signals; shared by the endpoints and the model's interrupt
/// callback.
#[derive(Default)]
pub struct IrqRoutes {
    routes: Mutex<RouteTable>,
    signalled: AtomicU64,
}

#[derive(Default)]
struct RouteTable {
    /// (VF, vector) → its eventfd (non-blocking).
    fds: BTreeMap<(usize, u16), Arc<EventFd>>,
    /// VFs in client mode → the queue their interrupts wait in behind their writes.
    client: BTreeMap<usize, Arc<DmaWriteQueue>>,
    /// Per VF: signals its eventfds did not take.
    lost: BTreeMap<usize, u64>,
}

impl IrqRoutes {
    /// No routes.
    pub fn new() -> Arc<IrqRoutes> {
        Arc::new(IrqRoutes::default())
    }

    /// Installs the model's interrupt callback that signals these routes.
    pub fn install(self: &Arc<Self>, model: &Model) {
        let routes = self.clone();
        model.nic().set_interrupt_handler(Box::new(move |irq| {
            routes.signal(&irq);
        }));
    }

    fn table(&self) -> MutexGuard<'_, RouteTable> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Client mode for VF `vf`: its interrupts are queued in `queue` behind the writes the
    /// device queued before them, and fired by the connection once those are acknowledged.
    pub fn route_through(&self, vf: usize, queue: Arc<DmaWriteQueue>) {
        self.table().client.insert(vf, queue);
    }

    fn set(&self, vf: usize, vector: u16, fd: Option<EventFd>) {
        let mut r = self.table();
        match fd {
            Some(f) => {
                r.fds.insert((vf, vector), Arc::new(f));
            }
            None => {
                r.fds.remove(&(vf, vector));
            }
        }
    }

    /// Drops every eventfd of VF `vf`.
    pub(super) fn clear_vf(&self, vf: usize) {
        for v in 0..VF_MSIX_VECTORS as u16 {
            self.set(vf, v, None);
        }
    }

    fn has(&self, vf: usize, vector: u16) -> bool {
        self.table().fds.contains_key(&(vf, vector))
    }

    /// Writes the eventfd of the interrupt's VF vector (in client mode: queues it behind the
    /// VF's writes, [`IrqRoutes::route_through`]); `false` if it has none (a PF
    /// interrupt, or a vector the client did not wire) or did not take the signal (counted in
    /// [`IrqRoutes::lost`]). Never waits: the eventfds are non-blocking.
    pub fn signal(&self, irq: &Interrupt) -> bool {
        let FunctionId::Vf(vf) = irq.function else {
            return false;
        };
        let mut r = self.table();
        let Some(f) = r.fds.get(&(vf.get(), irq.vector)) else {
            return false;
        };
        if let Some(q) = r.client.get(&vf.get()) {
            // Behind the writes queued before it; refused only when the queue failed closed
            // (counted there; the connection ends and the VF is reset).
            return q.irq(u32::from(irq.vector), f.clone());
        }
        // Ok(false): the counter is at its maximum, the client has not read it for 2^64 - 2
        // signals; an error: the descriptor is unusable. Either way only this VF's client
        // loses the interrupt.
        let ok = matches!(f.try_signal(), Ok(true));
        if ok {
            self.signalled.fetch_add(1, Ordering::Relaxed);
        } else {
            *r.lost.entry(vf.get()).or_default() += 1;
        }
        ok
    }

    /// Interrupts delivered through eventfds so far.
    pub fn signalled(&self) -> u64 {
        self.signalled.load(Ordering::Relaxed)
    }

    /// Interrupts of VF `vf` (0-based) that its client's eventfd did not take.
    pub fn lost(&self, vf: usize) -> u64 {
        self.table().lost.get(&vf).copied().unwrap_or(0)
    }
}

impl VfEndpoint {
    /// Carries out a checked MSI-X action (vectors below [`VF_MSIX_VECTORS`]).
    pub(super) fn msix_action(&mut self, action: IrqAction) {
        let vf = self.vf.get();
        match action {
            IrqAction::Assign { start, eventfds } => {
                for (v, fd) in (start..).zip(eventfds) {
                    self.routes.set(vf, v as u16, Some(fd));
                }
                self.sync_msix();
            }
            IrqAction::Unassign { start, count } => {
                for v in start..start.saturating_add(count) {
                    self.routes.set(vf, v as u16, None);
                }
                self.sync_msix();
            }
            IrqAction::DisableAll => {
                self.routes.clear_vf(vf);
                self.sync_msix();
            }
            IrqAction::Trigger { vector } => {
                self.routes.signal(&Interrupt {
                    function: self.function(),
                    vector: vector as u16,
                    address: 0,
                    data: vector,
                });
            }
            // MSI-X masking is done by the client's own table emulation; accepted, no effect.
            IrqAction::Mask { .. } | IrqAction::Unmask { .. } => {}
        }
    }

    /// Programs the model's MSI-X entries: vectors with an eventfd unmasked (data = vector),
    /// the others masked.
    pub(super) fn sync_msix(&mut self) {
        let f = self.function();
        let vf = self.vf.get();
        for v in 0..VF_MSIX_VECTORS {
            let base = (v * msix_cap::ENTRY_SIZE) as u64;
            let wired = self.routes.has(vf, v as u16);
            let mut nic = self.model.nic();
            let mut ctrl = [0u8; 4];
            nic.bar_read(f, msix_cap::BAR, base + 12, &mut ctrl);
            let masked = u32::from_le_bytes(ctrl) & msix_cap::VECTOR_MASKED != 0;
            if wired && masked {
                nic.bar_write(f, msix_cap::BAR, base, &MSIX_ADDRESS.to_le_bytes());
                nic.bar_write(f, msix_cap::BAR, base + 4, &0u32.to_le_bytes());
                nic.bar_write(f, msix_cap::BAR, base + 8, &(v as u32).to_le_bytes());
                nic.bar_write(f, msix_cap::BAR, base + 12, &0u32.to_le_bytes());
            } else if !wired && !masked {
                nic.bar_write(
                    f,
                    msix_cap::BAR,
                    base + 12,
                    &msix_cap::VECTOR_MASKED.to_le_bytes(),
                );
            }
        }
    }
}

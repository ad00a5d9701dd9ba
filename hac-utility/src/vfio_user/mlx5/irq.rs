//! The VF's MSI-X vectors and the client's eventfds: [`Mlx5IrqRoutes`] (shared by every mlx5
//! endpoint and the daemon's tick) and the model's MSI-X table the endpoint programs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hac_vfio_user::{DmaWriteQueue, EventFd, IrqAction};
use mlx5_hw::pci::{layout, msix};
use mlx5_model::config::msix_cap;
use mlx5_model::{FunctionId, Interrupt};

use super::{Mlx5VfEndpoint, VECTORS};

/// Bytes of one MSI-X table entry (PCI 3.0 §6.8.2).
pub(super) const ENTRY_SIZE: u64 = 16;
/// Vector Control: masked (PCI 3.0 §6.8.2).
const VECTOR_MASKED: u32 = 1;
/// The address programmed into the model's MSI-X entries (the x86 MSI window; only the data,
/// the vector number, matters to us).
const MSIX_ADDRESS: u32 = 0xFEE0_0000;

/// Which eventfd each VF vector signals; shared by the endpoints and the daemon.
#[derive(Default)]
pub struct Mlx5IrqRoutes {
    routes: Mutex<RouteTable>,
    signalled: AtomicU64,
    unrouted: AtomicU64,
}

#[derive(Default)]
struct RouteTable {
    /// (VF, vector) → its eventfd (non-blocking).
    fds: BTreeMap<(u16, u16), Arc<EventFd>>,
    /// VFs in client mode → the queue their interrupts wait in behind their writes.
    client: BTreeMap<u16, Arc<DmaWriteQueue>>,
    /// Per VF: signals its eventfds did not take.
    lost: BTreeMap<u16, u64>,
}

impl Mlx5IrqRoutes {
    /// No routes.
    pub fn new() -> Arc<Mlx5IrqRoutes> {
        Arc::new(Mlx5IrqRoutes::default())
    }

    fn table(&self) -> MutexGuard<'_, RouteTable> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Client mode for VF `vf`: its interrupts are queued in `queue` behind the writes the
    /// device queued before them, and fired by the connection once those are acknowledged.
    pub fn route_through(&self, vf: u16, queue: Arc<DmaWriteQueue>) {
        self.table().client.insert(vf, queue);
    }

    fn set(&self, vf: u16, vector: u16, fd: Option<EventFd>) {
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
    pub(super) fn clear_vf(&self, vf: u16) {
        self.table().fds.retain(|&(v, _), _| v != vf);
    }

    fn has(&self, vf: u16, vector: u16) -> bool {
        self.table().fds.contains_key(&(vf, vector))
    }

    /// Writes the eventfd of each interrupt's VF vector. An interrupt with no eventfd (a PF
    /// vector: our PF driver polls its event queues) is counted in [`Self::unrouted`]; one
    /// whose eventfd did not take the signal in [`Self::lost`]. Never waits: the eventfds are
    /// non-blocking.
    pub fn deliver(&self, irqs: Vec<Interrupt>) {
        if irqs.is_empty() {
            return;
        }
        let mut r = self.table();
        for irq in irqs {
            let FunctionId::Vf(vf) = irq.function else {
                self.unrouted.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let Some(f) = r.fds.get(&(vf, irq.vector)) else {
                self.unrouted.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if let Some(q) = r.client.get(&vf) {
                // Behind the writes queued before it; refused only when the queue failed
                // closed (counted there; the connection ends and the VF is reset).
                let _ = q.irq(u32::from(irq.vector), f.clone());
                continue;
            }
            // Ok(false): the counter is at its maximum; an error: the descriptor is unusable.
            // Either way only this VF's client loses the interrupt.
            if matches!(f.try_signal(), Ok(true)) {
                self.signalled.fetch_add(1, Ordering::Relaxed);
            } else {
                *r.lost.entry(vf).or_default() += 1;
            }
        }
    }

    /// Interrupts delivered through eventfds so far.
    pub fn signalled(&self) -> u64 {
        self.signalled.load(Ordering::Relaxed)
    }

    /// Interrupts that had no eventfd (PF vectors, vectors no client wired).
    pub fn unrouted(&self) -> u64 {
        self.unrouted.load(Ordering::Relaxed)
    }

    /// Interrupts of VF `vf` (0-based) that its client's eventfd did not take.
    pub fn lost(&self, vf: u16) -> u64 {
        self.table().lost.get(&vf).copied().unwrap_or(0)
    }
}

impl Mlx5VfEndpoint {
    /// Carries out a checked MSI-X action (vectors below [`VECTORS`]).
    pub(super) fn msix_action(&mut self, action: IrqAction) {
        let vf = self.vf;
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
                self.routes.deliver(vec![Interrupt {
                    function: self.function(),
                    vector: vector as u16,
                    address: u64::from(MSIX_ADDRESS),
                    data: vector,
                }]);
            }
            // MSI-X masking is done by the client's own table emulation; accepted, no effect.
            IrqAction::Mask { .. } | IrqAction::Unmask { .. } => {}
        }
    }

    /// Programs the model's MSI-X state as the host's vfio-pci keeps it: vectors with an
    /// eventfd unmasked (data = vector), the others masked; MSI-X enabled (Function Mask
    /// clear) while any vector is wired, disabled otherwise. Then delivers what an unmask
    /// released from the PBA.
    pub(super) fn sync_msix(&mut self) {
        let f = self.function();
        let vf = self.vf;
        let wired: Vec<bool> = (0..VECTORS).map(|v| self.routes.has(vf, v)).collect();
        {
            let mut nic = self.nic();
            let control_at = (layout::MSIX + msix_cap::CONTROL) as u16;
            let mut c = [0u8; 2];
            nic.config_read(f, control_at, &mut c);
            let control = u16::from_le_bytes(c);
            let want = if wired.iter().any(|&w| w) {
                (control | msix_cap::ENABLE) & !msix_cap::FUNCTION_MASK
            } else {
                control & !(msix_cap::ENABLE | msix_cap::FUNCTION_MASK)
            };
            for (v, &wired) in wired.iter().enumerate() {
                let base = u64::from(msix::TABLE_OFFSET) + v as u64 * ENTRY_SIZE;
                let mut ctrl = [0u8; 4];
                nic.bar_read(f, msix::BAR, base + 12, &mut ctrl);
                let masked = u32::from_le_bytes(ctrl) & VECTOR_MASKED != 0;
                if wired && masked {
                    nic.bar_write(f, msix::BAR, base, &MSIX_ADDRESS.to_le_bytes());
                    nic.bar_write(f, msix::BAR, base + 4, &0u32.to_le_bytes());
                    nic.bar_write(f, msix::BAR, base + 8, &(v as u32).to_le_bytes());
                    nic.bar_write(f, msix::BAR, base + 12, &0u32.to_le_bytes());
                } else if !wired && !masked {
                    nic.bar_write(f, msix::BAR, base + 12, &VECTOR_MASKED.to_le_bytes());
                }
            }
            if want != control {
                nic.config_write(f, control_at, &want.to_le_bytes());
            }
        }
        self.deliver();
    }
}

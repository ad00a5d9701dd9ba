//! The Intel 82576 family of the adapter model: a bit-accurate SR-IOV NIC as the Linux
//! `igb`/`igbvf` drivers see it, built on `adapter-core` (DMA and IOMMU, the egress stage with
//! HAC epochs, the wire, virtual time), with the HAC register block through which this family
//! exposes the extension. It depends on `igb-hw` and `adapter-core` only.
//!
//! # Blocks and data flow
//!
//! ```text
//! driver ──MMIO──► Nic::bar_write (nic/bar.rs) ─► register semantics (nic/pf_regs.rs,
//!                  nic/vf_regs.rs, nic/hac.rs) on the register file (regfile.rs)
//!                                   │ TDT doorbell: the device lends a Datapath (datapath.rs)
//!                                   ▼
//!                  TX engine (tx.rs) ── DMA via the owning function's Iommu
//!                                   ▼
//!                  offloads (offload.rs)
//!                                   ▼
//!                  switch (switch.rs): anti-spoof, loopback ─► RX engine (rx.rs)
//!                                   ▼
//!                  egress stage (adapter_core::egress)
//!                                   ▼
//!                  wire port at line rate (adapter_core::wire) ─► sinks (pcap, ...)
//!
//! interrupts the engines request ─► nic/interrupts.rs ─► MSI-X (msix.rs)
//! mailbox (nic/mailbox.rs), configuration space (nic/config.rs, pci.rs), resets (nic/reset.rs),
//! virtual time (nic/clock.rs), isolation snapshots (nic/snapshot.rs)
//! ```
//!
//! The engines and the switch never see the [`Nic`]: for one run the device lends them the
//! register file, the IOMMUs, the egress stage and the counters, and raises the interrupts they
//! asked for when they return. The module graph has no cycle (`tests/module_layers.rs`).
//!
//! * [`Nic`] is a bus device: [`Nic::bar_read`]/[`Nic::bar_write`] and
//!   [`Nic::config_read`]/[`Nic::config_write`] per [`FunctionId`]. Malformed accesses are
//!   counted in [`ModelCounters`], never panicked on.
//! * Memory: each function has its own [`Iommu`]; hosts map [`DmaTarget`]s
//!   (e.g. [`SharedMemory`]) with [`Nic::dma_map`]. Out-of-map DMA is a fault that stops
//!   the queue.
//! * Time: a virtual clock ([`SimTime`]); doorbells do their work at the current time, and
//!   [`Nic::advance_to`] drains the wire and resumes queues held back by backpressure. No
//!   randomness and no wall clock: a run is reproducible bit for bit.
//!
//! Register offsets, bitfields, descriptor layouts and mailbox formats come from [`igb_hw`],
//! the same definitions the driver uses; the DMA, egress, wire and clock blocks from
//! [`adapter_core`]. The crate depends on these two and on nothing else of the workspace. What is
//! and is not modelled: `docs/model.md`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod datapath;
mod function;
pub mod metrics;
pub mod msix;
mod nic;
pub mod offload;
pub mod pci;
mod regfile;
mod rx;
mod switch;
#[cfg(feature = "test-utils")]
pub mod testing;
mod tx;

pub use adapter_core;
pub use adapter_core::{
    DmaFault, DmaTarget, EgressFrame, EgressLimits, EgressStage, Iommu, LineRate, MapError,
    PcapSink, SharedMemory, SimTime, WireRecord, WireSink,
};
pub use function::FunctionId;
pub use igb_hw;
pub use metrics::{ModelCounters, SwitchPoolStats};
pub use msix::Interrupt;
pub use nic::{MailboxState, Nic, NicConfig, PF_CONFIGURATION_REGISTERS, VfInterrupts, VfSnapshot};
pub use rx::crc32;
pub use switch::PoolSelection;
pub use tx::{TX_RUN_BYTES, TX_RUN_DESCRIPTORS};

use adapter_core::Vport;
use igb_hw::PoolIndex;

/// The adapter core's vport of a VMDq pool: pool n is vport n.
pub fn vport(pool: PoolIndex) -> Vport {
    Vport::new(pool.get() as u8)
}

/// The VMDq pool of a vport the 82576 family uses (`None` above pool 7).
pub fn pool_of(vport: Vport) -> Option<PoolIndex> {
    PoolIndex::new(vport.get())
}

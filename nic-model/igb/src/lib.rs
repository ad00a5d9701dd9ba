//! A bit-accurate software model of an Intel 82576-class SR-IOV NIC, as the Linux `igb`/`igbvf`
//! drivers see it, with one egress stage between the TX engines and the wire where the HAC
//! (high-availability checkpoint) extension plugs in.
//!
//! # Blocks and data flow
//!
//! ```text
//! driver ──MMIO──► Nic::bar_write ─► register file (nic.rs) ─► TDT doorbell ─► TX engine (tx.rs)
//!                                                  │                 │ DMA via the function's Iommu
//!                                                  │                 ▼
//!                                         mailbox, interrupts     offloads (offload.rs)
//!                                         (nic.rs, msix.rs)          ▼
//!                                                           switch (switch.rs): anti-spoof,
//!                                                           loopback ─► RX engine (rx.rs)
//!                                                                  ▼
//!                                                           egress stage (egress.rs)
//!                                                                  ▼
//!                                          wire port at line rate (wire.rs) ─► sinks (pcap, ...)
//! ```
//!
//! * [`Nic`] is a bus device: [`Nic::bar_read`]/[`Nic::bar_write`] and
//!   [`Nic::config_read`]/[`Nic::config_write`] per [`FunctionId`]. Malformed accesses are
//!   counted in [`ModelCounters`], never panicked on.
//! * Memory: each function has its own [`memory::Iommu`]; hosts map [`memory::DmaTarget`]s
//!   (e.g. [`memory::SharedMemory`]) with [`Nic::dma_map`]. Out-of-map DMA is a fault that stops
//!   the queue.
//! * Time: a virtual clock ([`SimTime`]); doorbells do their work at the current time, and
//!   [`Nic::advance_to`] drains the wire and resumes queues held back by backpressure. No
//!   randomness and no wall clock: a run is reproducible bit for bit.
//!
//! Register offsets, bitfields, descriptor layouts and mailbox formats come from [`igb_hw`],
//! the same definitions the driver uses. What is and is not modelled: `docs/model.md`.
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

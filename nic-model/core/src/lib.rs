//! The adapter core: what every device family of the model shares, unchanged.
//!
//! A family (the 82576 in `igb-model`, and the ones after it) decodes its own registers,
//! descriptors and commands, and hands the rest to these blocks:
//!
//! ```text
//!  family TX engine ──DMA──► memory::Iommu of the function ─► memory::DmaTarget (guest RAM)
//!        │
//!        ▼  enqueue_chunked(vport, BytesMut split off its chunk) / enqueue(EgressFrame)
//!  egress::EgressStage: per-vport FIFO of 16-byte slots over chunk segments, HAC epochs
//!        │             (epoch::EpochState), scheduler + guard, backpressure, limits
//!        ▼  transmit_next (the frame lent in place) / dequeue_classified (a Bytes)
//!  wire: LineRate pacing in virtual time (clock::SimTime) ─► WireSink (PcapSink, …)
//! ```
//!
//! * [`memory`]: DMA targets and the per-function IOMMU; out-of-map DMA is a fault, never a
//!   panic.
//! * [`egress`]: the egress stage and the HAC semantics of docs/hac.md (exact epochs, FIFO,
//!   discard, unprotect, backpressure, strict priority with a guard).
//! * [`latency`]: the fixed-bucket latency histograms the egress stage keeps (commit → first
//!   frame, added delay per class).
//! * [`epoch`]: the epoch rules, shared with SoftHac in the driver.
//! * [`hac`]: the host contract of HAC — the [`Hac`] trait every family's agent and SoftHac
//!   implement, its errors and per-VF counters, VFs named by [`VfNumber`].
//! * [`wire`]: the port at line rate and its sinks; [`clock`]: virtual time.
//! * [`vport`]: the index of the function a frame belongs to.
//! * [`rng`]: seeded randomness, so simulations are reproducible like the clock.
//! * [`buffers`]: the bounded pool of frame chunks a TX engine gathers frames into, reused
//!   once their frames have left the egress stage.
//! * [`bench_bound`]: the bare-loop bound that benchmarks print their figures against.
//!
//! The register block through which a family exposes HAC (the 82576 family's HACCTL, HACCMD, …)
//! stays in the family: the core knows operations and results, not encodings.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench_bound;
pub mod buffers;
pub mod clock;
pub mod egress;
pub mod epoch;
pub mod hac;
pub mod latency;
pub mod memory;
pub mod rng;
pub mod vport;
pub mod wire;

pub use clock::SimTime;
pub use egress::{EgressFrame, EgressLimits, EgressStage, HacResult, Transmitted};
pub use epoch::{EpochState, LAST_EPOCH, next_epoch};
pub use hac::{Hac, HacError, HacVfStats, VfNumber};
pub use memory::{DmaFault, DmaTarget, Iommu, MapError, SharedMemory};
pub use vport::Vport;
pub use wire::{LineRate, PcapSink, WireRecord, WireSink};

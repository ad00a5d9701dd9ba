//! The HAC utility's lab: test-harness code that the product binary `hac` does not link.
//!
//! * [`hwcases`]: the QEMU referee's cases (docs/qemu.md) as library code generic over the
//!   driver's backends, run through VFIO by `hac-lab pf-switch` / `vf-hac-check` / `vf-smoltcp`
//!   and on the model by `tests/referee_model.rs`.
//! * [`traffic`]: raw frames through a VF against a peer (`hac-lab vf-traffic`).
//! * [`mbxtrace`]: the VF init handshake with the raw mailbox words (`hac-lab vf-mailbox`).
//! * [`bench`](mod@bench): HAC on the model against Linux sch_plug in User-Mode Linux (`hac-lab bench`).
//!
//! May depend on the product's library (`hac-utility`: the scenario engine, reports, charts, VF
//! probing), the driver and the model; nothing depends on it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod hwcases;
pub mod mbxtrace;
pub mod traffic;

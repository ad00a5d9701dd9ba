//! End-to-end tests of the HAC-NIC stack (the tests live in `tests/`), and the checks they share
//! with every implementation of a contract:
//!
//! * [`hac_conformance`]: the HAC contract of docs/hac.md as checks generic over any
//!   `adapter_core::hac::Hac` implementation, with the [`hac_conformance::HacHarness`] trait an
//!   implementation provides and the [`hac_conformance_tests!`] macro that makes one test per
//!   check. It depends on the adapter core and `hw-common` only, so every device family can run
//!   it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod hac_conformance;

//! The HAC utility's engine, shared by the `hac` commands: scenarios (the TOML format of
//! `hac run`), the simulation engine that runs a scenario on the built-in model with the real
//! driver and HAC API, and the report directory it writes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod engine;
pub mod ha;
pub mod hwcases;
pub mod plot;
pub mod report;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod traffic;
pub mod vfio_user;

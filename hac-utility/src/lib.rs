//! The HAC utility's library, behind the product binary `hac` (and used by the lab binary
//! `hac-lab`, `hac-utility/lab/`):
//!
//! * [`scenario`], [`engine`], [`report`], [`run`], [`plot`]: scenarios (the TOML format of
//!   `hac run`), the simulation engine that runs one on the built-in model with the real driver
//!   and HAC API, the report directory it writes and the charts in it.
//! * [`control`], [`serve`]: the control protocol and the daemon behind `hac serve`.
//! * [`vfio_user`]: the vfio-user device server through which a VMM's guest drives a model VF.
//! * [`failover`]: `hac failover-demo`, orchestrating the `hac-ha` crate's nodes and client.
//! * [`probe`]: bringing one VF up for `hac vf-probe` (and `hac-lab vf-traffic`).
//! * [`tcp_echo`]: the TCP echo of a smoltcp socket (the daemon's wire peer, the lab's case 5).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod engine;
pub mod failover;
pub mod plot;
pub mod probe;
pub mod report;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod tcp_echo;
pub mod vfio_user;

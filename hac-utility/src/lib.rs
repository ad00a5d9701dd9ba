//! The HAC utility's library, behind the product binary `hac` (and used by the lab binary
//! `hac-lab`, `hac-utility/lab/`):
//!
//! * [`scenario`], [`engine`], [`report`], [`run`], [`plot`], [`capture`]: scenarios (the TOML
//!   format of `hac run`), the simulation engine that runs one on the built-in model with the
//!   real driver and HAC API, the report directory it writes, the charts in it and its
//!   snap-length pcap.
//! * [`serve`]: the daemon behind `hac serve` (the protocol itself is the `hac-control`
//!   crate): start-up, client connections, the dispatcher, the model and real-PF backends, the
//!   Prometheus endpoint, counter export.
//! * [`vfio_user`]: the 82576 VF as a `hac_vfio_user::Backend` (the protocol and server are the
//!   `hac-vfio-user` crate), so a VMM's guest drives a model VF; and a smoltcp peer on the wire.
//! * `private_socket`: the daemon's Unix sockets, private from their first moment.
//! * [`config_file`]: a command's flags from a TOML file (`hac serve --config`), the clap
//!   definition being the only list of keys.
//! * [`stats_watch`]: `hac stats --watch`, the counters redrawn every interval.
//! * [`cli_docs`]: shell completions and man pages generated from the clap definition.
//! * [`colo`]: `hac colo-bridge`, output commit for a VM checkpointed by QEMU COLO: the
//!   primary's QMP events become epochs of `hac serve` (docs/colo.md).
//! * [`failover`]: `hac failover-demo`, orchestrating the `hac-ha` crate's nodes and client.
//! * [`progress`]: the progress of long runs (an `indicatif` bar on a terminal, a line per
//!   quarter in logs), used by `run`, `failover` and the lab's bench.
//! * [`probe`]: bringing one VF up for `hac vf-probe` (and `hac-lab vf-traffic`).
//! * [`tcp_echo`]: the TCP echo of a smoltcp socket (the daemon's wire peer, the lab's case 5).
//!
//! It may use every crate of the workspace except the lab; nothing but the two binaries and
//! the tests use it (docs/architecture.md).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod capture;
pub mod cli_docs;
pub mod colo;
pub mod config_file;
pub mod engine;
pub mod failover;
pub mod plot;
mod private_socket;
pub mod probe;
pub mod progress;
pub mod report;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod stats_watch;
pub mod tcp_echo;
pub mod vfio_user;

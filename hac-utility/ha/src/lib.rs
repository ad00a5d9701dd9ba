//! High availability for HAC: a protected TCP service replicated by deterministic replay from a
//! primary host to a backup host, each with its own model NIC bridged to Linux through a TAP
//! device, and a TCP client that must not notice the primary dying (docs/failover.md).
//!
//! * [`msg`]: the replication link's messages (hello, epoch logs, acks, heartbeats), parse and
//!   emit; what a peer (or the `replication_message` fuzz target) links.
//! * [`arbiter`]: the lease arbiter (witness) against split brain: its datagrams (the
//!   `arbiter_message` fuzz target), its decision, a node's view of its lease, `hac ha-arbiter`.
//! * [`lapse`]: what a node serving alone does with its output while its lease has lapsed
//!   but nobody refused it (hold, release behind a fresh grant, fence past the grace).
//! * [`service`]: the protected service, a deterministic function of its inputs.
//! * [`node`]: one host (primary or backup): model NIC, HAC epochs, log shipping, takeover,
//!   its lease at the arbiter and fencing.
//! * [`rejoin`]: re-protection after a takeover — the step history, the join and catch-up,
//!   the live node's epoch/commit state over the HAC API.
//! * [`client`]: the Linux-TCP client that checks every answer.
//! * [`stats`]: p50/p99/max of a latency sample, as the node reports it.
//! * [`status`]: the JSON status lines, Unix time for them, stop on stdin's end (node and
//!   arbiter).
//!
//! May depend on the driver (`hac-driver`: the model, TAP, HAC), the model and hardware crates,
//! never on the product (`hac-utility`) or a command-line parser: the `hac` binary maps its
//! hidden `ha-node` / `ha-client` / `ha-arbiter` subcommands onto [`node::NodeConfig`],
//! [`client::ClientConfig`] and [`arbiter::ArbiterConfig`], and the failover demo (lab set-up,
//! kill, report and plots) stays in the product, which owns the chart library and spawns those
//! subcommands.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod arbiter;
pub mod client;
pub mod lapse;
pub mod msg;
pub mod node;
pub mod rejoin;
pub mod service;
pub mod stats;
pub mod status;

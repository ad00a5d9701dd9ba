//! High availability end to end (`hac failover-demo`): a protected TCP service replicated by
//! deterministic replay from a primary host to a backup host, each with its own model NIC bridged
//! to Linux through a TAP device, and a Linux TCP client that must not notice the primary dying.
//!
//! * [`msg`]: the replication link's messages (hello, epoch logs, acks, heartbeats).
//! * [`service`]: the protected service, a deterministic function of its inputs.
//! * [`node`]: `hac ha-node`, one host (primary or backup).
//! * [`client`]: `hac ha-client`, the Linux-TCP client that checks every answer.
//! * [`demo`]: `hac failover-demo`, the orchestrator (lab set-up and teardown, kill, report).
//!
//! The approach and its guarantee: `docs/failover.md`.

pub mod client;
pub mod demo;
pub mod msg;
pub mod node;
pub mod service;

//! The control protocol of `hac serve` (docs/control.md), on its own so that a checkpoint
//! engine, a fuzz target or a test can speak it without linking the product.
//!
//! Blocks and data flow:
//!
//! * [`ops`]: the one list of control operations. From it come the [`Request`] type (what a
//!   client asks), [`Op`] (its name alone), [`Reply`] (the typed result of each operation), and
//!   [`OPS`], the operations with their fields and documentation, from which `hac ctl` builds
//!   its subcommands and against which a test checks docs/control.md.
//! * [`line`](mod@line): the wire form — one JSON object per line. [`parse_line`] turns any bytes into a
//!   request or a one-line [`ControlError`] and never panics; [`request_line`],
//!   [`response_line`] and [`parse_response`] are the other directions.
//! * [`stats`]: the counters `stats` returns ([`Stats`]), each with its help text and
//!   Prometheus type, and the egress stage's latency histograms ([`Latency`]); the daemon
//!   renders them for Prometheus.
//! * [`client`]: a [`Client`] that keeps one connection to the daemon for a sequence of
//!   requests.
//! * [`schema`]: the JSON Schema of every request and response, generated from these types
//!   (docs/control-schema.json), for clients in other languages.
//!
//! Dependencies: `serde`, `serde_json`, `schemars` and `thiserror` only — no device model,
//! driver, command-line parser or product code.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod line;
pub mod ops;
pub mod replies;
pub mod schema;
pub mod stats;

pub use client::{Client, ClientError, call_line};
pub use line::{
    ControlError, Envelope, ErrorCode, MAX_LINE, MAX_MESSAGE_CHARS, MAX_SEND_FRAMES, Response,
    parse_line, parse_response, request_line, response_line,
};
pub use ops::{FieldSpec, FieldStyle, OPS, Op, OpSpec, Reply, Request};
pub use replies::{Guard, HelloInfo, Limits, Queued, Stopping, VfSummary};
pub use stats::{Counter, Latency, Metric, MetricKind, PortCounters, Stats, VfCounters};

#[cfg(test)]
mod roundtrip;

//! The counters `stats` returns. Each counter is declared once, with its help text and whether
//! it is a running total (`counter`) or a level (`gauge`); the `hac stats` table, the daemon's
//! Prometheus families and the docs test all read that declaration. Counters a device family or
//! the vfio-user front end keeps under its own names travel as named [`Counter`] lists, and the
//! egress stage's latency histograms as [`Latency`] records, so this crate does not depend on
//! them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether a metric is a running total or a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A running total (Prometheus `counter`, name ends in `_total`).
    Counter,
    /// A level (Prometheus `gauge`).
    Gauge,
}

/// One declared counter of a stats record.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The field name (`hac_buffered_frames`).
    pub name: &'static str,
    /// What it counts, one line.
    pub help: &'static str,
    /// Total or level.
    pub kind: MetricKind,
}

/// A counter known by name: one the device model or the vfio-user front end keeps (a running
/// total, exported as a Prometheus `counter`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Counter {
    /// Its name (letters, digits and `_`).
    pub name: String,
    /// What it counts, one line.
    pub help: String,
    /// Its value.
    pub value: u64,
}

macro_rules! counter_record {
    (
        $(#[doc = $sdoc:literal])+
        pub struct $record:ident {
            labels { $( $(#[doc = $ldoc:literal])+ $lfield:ident : $lty:ty, )* }
            metrics { $( $(#[doc = $mdoc:literal])+ $field:ident : $ty:ty = $kind:ident, )+ }
            extra { $( $(#[$xattr:meta])* $xfield:ident : $xty:ty, )* }
        }
    ) => {
        $(#[doc = $sdoc])+
        #[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
        pub struct $record {
            $( $(#[doc = $ldoc])+ pub $lfield: $lty, )*
            $( $(#[doc = $mdoc])+ pub $field: $ty, )+
            $( $(#[$xattr])* pub $xfield: $xty, )*
        }

        impl $record {
            /// Its declared counters, in table order.
            pub const METRICS: &'static [Metric] = &[$(
                Metric {
                    name: stringify!($field),
                    help: concat!($($mdoc),+),
                    kind: MetricKind::$kind,
                }
            ),+];

            /// The values of [`Self::METRICS`], in the same order, as 64-bit numbers.
            pub fn values(&self) -> Vec<u64> {
                vec![$(u64::from(self.$field)),+]
            }

            /// A record with the given labels and extras whose counters take `values` in
            /// [`Self::METRICS`] order (cut to each field's width; missing ones are 0).
            #[cfg(test)]
            pub(crate) fn from_values(
                $($lfield: $lty,)* values: &[u64], $($xfield: $xty,)*
            ) -> Self {
                let mut it = values.iter().copied();
                $record {
                    $($lfield,)*
                    $($field: it.next().unwrap_or(0) as $ty,)+
                    $($xfield,)*
                }
            }
        }
    };
}

counter_record! {
    /// Counters of one VF, as `stats` returns them (field order = `hac stats` order).
    pub struct VfCounters {
        labels {
            /// The VF index.
            vf: usize,
            /// Its MAC address (empty until it has one).
            mac: String,
        }
        metrics {
            /// 1 while checkpointing (tagged), else 0.
            checkpointing: u32 = Gauge,
            /// Good frames the VF transmitted (VFGPTC).
            tx_packets: u64 = Counter,
            /// Good octets the VF transmitted (VFGOTC).
            tx_bytes: u64 = Counter,
            /// Good frames the VF received (VFGPRC).
            rx_packets: u64 = Counter,
            /// Good octets the VF received (VFGORC).
            rx_bytes: u64 = Counter,
            /// Frames dropped for lack of RX descriptors (RQDPC).
            rx_dropped: u64 = Counter,
            /// Multicast frames the VF received (VFMPRC; the vport's multicast frames on mlx5).
            rx_multicast: u64 = Counter,
            /// Frames the VF's driver received with an error reported in the descriptor.
            rx_errors: u64 = Counter,
            /// Epoch new frames are stamped with.
            hac_open_epoch: u32 = Gauge,
            /// Last committed epoch.
            hac_committed_epoch: u32 = Gauge,
            /// Frames held now.
            hac_buffered_frames: u32 = Gauge,
            /// Bytes held now.
            hac_buffered_bytes: u32 = Gauge,
            /// Most frames ever held.
            hac_max_frames: u32 = Gauge,
            /// Most bytes ever held.
            hac_max_bytes: u32 = Gauge,
            /// Frames released to the wire by commits or unprotect.
            hac_released: u64 = Counter,
            /// Frames discarded by aborts and failovers.
            hac_discarded: u64 = Counter,
            /// Times the buffer was full and the TX ring was held back.
            hac_backpressure: u64 = Counter,
            /// Mailbox messages the PF agent handled for this VF.
            mbx_messages: u64 = Counter,
            /// Mailbox messages it refused.
            mbx_nacks: u64 = Counter,
            /// VF_RESET handshakes completed.
            vf_resets: u64 = Counter,
            /// Model workload: frames queued by `send` and not yet in the TX ring.
            workload_queued: u64 = Gauge,
            /// Model workload: frames handed to the TX ring.
            workload_sent: u64 = Counter,
            /// Model workload: frames of `send` requests refused because the VF's queue was
            /// full.
            workload_refused: u64 = Counter,
            /// vfio-user: the VF's interrupts its VM's eventfd did not take (counter full or
            /// broken).
            irqs_lost: u64 = Counter,
        }
        extra {
            /// vfio-user: what the VF's endpoint has seen from its VM (messages, errors, DMA
            /// maps, …); empty unless the VF is exported.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            vfio_user: Vec<Counter>,
        }
    }
}

counter_record! {
    /// Counters of the port, as `stats` returns them.
    pub struct PortCounters {
        labels {}
        metrics {
            /// Frames that left the wire port.
            wire_frames: u64 = Counter,
            /// Their bytes (without FCS).
            wire_bytes: u64 = Counter,
            /// Nanoseconds the wire was busy.
            wire_busy_ns: u64 = Counter,
            /// The device's (virtual) time, ns.
            device_time_ns: u64 = Gauge,
            /// Starvation guard, bytes.
            guard_bytes: u32 = Gauge,
            /// HAC: commits that released at least one frame.
            hac_commits_with_frames: u64 = Counter,
            /// HAC: commits whose released frames have all left the wire.
            hac_drained_commits: u64 = Counter,
            /// HAC: the last commit's time to its first frame on the wire, ns.
            hac_last_commit_to_first_ns: u64 = Gauge,
            /// HAC: the largest commit-to-first-frame time, ns.
            hac_max_commit_to_first_ns: u64 = Gauge,
            /// HAC: the last commit's drain time (to the end of its last frame), ns.
            hac_last_drain_ns: u64 = Gauge,
            /// HAC: the largest drain time, ns.
            hac_max_drain_ns: u64 = Gauge,
        }
        extra {}
    }
}

/// A latency histogram the device keeps (a running total of observations in fixed buckets).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Latency {
    /// Its name (`commit_to_first_frame`, `added_delay`).
    pub name: String,
    /// What it measures, one line.
    pub help: String,
    /// The frame class it is about (`checkpoint`, `plain`); empty when it has none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class: String,
    /// Upper bounds of the finite buckets, ns, increasing.
    pub le_ns: Vec<u64>,
    /// Observations per finite bucket (not cumulative), one per bound.
    pub buckets: Vec<u64>,
    /// All observations, including those above the last bound.
    pub count: u64,
    /// Their sum, ns.
    pub sum_ns: u64,
}

/// The result of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Stats {
    /// Port totals.
    pub port: PortCounters,
    /// One entry per VF asked for.
    pub vfs: Vec<VfCounters>,
    /// What the device model counts for the whole adapter (accesses and frames it refused,
    /// dropped or faulted on); empty on a real PF.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device: Vec<Counter>,
    /// The egress stage's latency histograms (commit → first frame, added delay per class);
    /// empty on a real PF.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<Latency>,
}

/// Any stats record, for property tests.
#[cfg(test)]
pub(crate) fn any_stats() -> proptest::strategy::BoxedStrategy<Stats> {
    use proptest::prelude::*;
    let counter = ("[a-z_]{1,12}", ".{0,20}", any::<u64>())
        .prop_map(|(name, help, value)| Counter { name, help, value });
    let counters = proptest::collection::vec(counter, 0..4);
    let vf = (
        any::<usize>(),
        ".{0,17}",
        proptest::collection::vec(any::<u64>(), VfCounters::METRICS.len()),
        counters.clone(),
    )
        .prop_map(|(vf, mac, values, extra)| VfCounters::from_values(vf, mac, &values, extra));
    let latency = (
        "[a-z_]{1,12}",
        ".{0,20}",
        "[a-z]{0,10}",
        proptest::collection::vec((any::<u64>(), any::<u64>()), 0..4),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(name, help, class, b, count, sum_ns)| Latency {
            name,
            help,
            class,
            le_ns: b.iter().map(|x| x.0).collect(),
            buckets: b.iter().map(|x| x.1).collect(),
            count,
            sum_ns,
        });
    (
        proptest::collection::vec(any::<u64>(), PortCounters::METRICS.len()),
        proptest::collection::vec(vf, 0..4),
        counters,
        proptest::collection::vec(latency, 0..3),
    )
        .prop_map(|(port, vfs, device, latency)| Stats {
            port: PortCounters::from_values(&port),
            vfs,
            device,
            latency,
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metrics_are_declared_once_with_help() {
        for m in VfCounters::METRICS.iter().chain(PortCounters::METRICS) {
            assert!(!m.help.trim().is_empty(), "{}", m.name);
            assert!(!m.help.contains('\n'));
        }
        // The JSON members come in table order, after the labels.
        let text = serde_json::to_string(&VfCounters::default()).unwrap();
        let mut at = text.find("\"mac\"").unwrap();
        for m in VfCounters::METRICS {
            let next = text.find(&format!("\"{}\"", m.name)).unwrap();
            assert!(next > at, "{} out of order in {text}", m.name);
            at = next;
        }
    }
}

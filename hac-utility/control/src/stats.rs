//! The counters `stats` returns and their Prometheus text form. Each counter is declared once,
//! with its help text and whether it is a running total (`counter`) or a level (`gauge`); the
//! `hac stats` table, the Prometheus families and the docs test all read that declaration.
//! Counters a device family or the vfio-user front end keeps under its own names travel as
//! named [`Counter`] lists, so this crate does not depend on them.

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
        }
        extra {}
    }
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
}

/// `name` as a Prometheus metric name part: anything but ASCII letters, digits and `_` becomes
/// `_`.
fn metric_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `help` as a Prometheus HELP text: backslashes and line breaks escaped.
fn help_text(help: &str) -> String {
    help.trim()
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "")
}

/// Samples of one family: the `vf` label (none for the port) and the value.
type Rows = Vec<(Option<usize>, u64)>;

/// One Prometheus family: HELP and TYPE lines, then one sample per row (`vf` label or none).
fn family(
    out: &mut String,
    name: &str,
    help: &str,
    kind: MetricKind,
    rows: &[(Option<usize>, u64)],
) {
    use std::fmt::Write as _;
    let (name, kind) = match kind {
        MetricKind::Counter => (format!("{name}_total"), "counter"),
        MetricKind::Gauge => (name.to_string(), "gauge"),
    };
    let _ = writeln!(out, "# HELP {name} {}", help_text(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (vf, n) in rows {
        match vf {
            Some(vf) => {
                let _ = writeln!(out, "{name}{{vf=\"{vf}\"}} {n}");
            }
            None => {
                let _ = writeln!(out, "{name} {n}");
            }
        }
    }
}

/// The counters in the Prometheus text exposition format (version 0.0.4): one family per
/// counter, each with HELP and TYPE lines — `hac_port_<field>`, `hac_vf_<field>{vf="N"}`,
/// `hac_device_<name>` and `hac_vf_vfio_user_<name>{vf="N"}`; running totals are `counter`s
/// ending in `_total`, levels are `gauge`s. Values are 64-bit.
pub fn prometheus_text(stats: &Stats) -> String {
    let mut out = String::new();
    let port = stats.port.values();
    for (m, v) in PortCounters::METRICS.iter().zip(port) {
        family(
            &mut out,
            &format!("hac_port_{}", m.name),
            m.help,
            m.kind,
            &[(None, v)],
        );
    }
    for c in &stats.device {
        let name = format!("hac_device_{}", metric_part(&c.name));
        family(
            &mut out,
            &name,
            &c.help,
            MetricKind::Counter,
            &[(None, c.value)],
        );
    }
    if !stats.vfs.is_empty() {
        let values: Vec<Vec<u64>> = stats.vfs.iter().map(VfCounters::values).collect();
        for (i, m) in VfCounters::METRICS.iter().enumerate() {
            let rows: Rows = stats
                .vfs
                .iter()
                .zip(&values)
                .map(|(vf, v)| (Some(vf.vf), v.get(i).copied().unwrap_or(0)))
                .collect();
            family(
                &mut out,
                &format!("hac_vf_{}", m.name),
                m.help,
                m.kind,
                &rows,
            );
        }
    }
    // Named per-VF counters: one family per name, in order of first appearance.
    let mut named: Vec<(&str, &str, Rows)> = Vec::new();
    for vf in &stats.vfs {
        for c in &vf.vfio_user {
            match named.iter_mut().find(|(n, _, _)| *n == c.name) {
                Some((_, _, rows)) => rows.push((Some(vf.vf), c.value)),
                None => named.push((&c.name, &c.help, vec![(Some(vf.vf), c.value)])),
            }
        }
    }
    for (name, help, rows) in named {
        let name = format!("hac_vf_vfio_user_{}", metric_part(name));
        family(&mut out, &name, help, MetricKind::Counter, &rows);
    }
    out
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
    (
        proptest::collection::vec(any::<u64>(), PortCounters::METRICS.len()),
        proptest::collection::vec(vf, 0..4),
        counters,
    )
        .prop_map(|(port, vfs, device)| Stats {
            port: PortCounters::from_values(&port),
            vfs,
            device,
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_64_bit_values() {
        let mut vf =
            VfCounters::from_values(1, "02:1b:21:c1:00:01".into(), &[u64::MAX; 40], vec![]);
        vf.vfio_user = vec![Counter {
            name: "dma_maps".into(),
            help: "DMA windows\\mapped\nwith a descriptor.".into(),
            value: 1 << 40,
        }];
        let stats = Stats {
            port: PortCounters::from_values(&[7; 5]),
            vfs: vec![vf],
            device: vec![Counter {
                name: "dma-faults".into(),
                help: "DMA accesses outside the mappings.".into(),
                value: 3,
            }],
        };
        let text = prometheus_text(&stats);
        assert!(
            text.contains("# HELP hac_port_wire_frames_total Frames that left the wire port.\n")
        );
        assert!(
            text.contains(
                "# TYPE hac_port_wire_frames_total counter\nhac_port_wire_frames_total 7\n"
            )
        );
        assert!(text.contains("# TYPE hac_port_guard_bytes gauge\nhac_port_guard_bytes 7\n"));
        assert!(
            text.contains("hac_vf_tx_packets_total{vf=\"1\"} 18446744073709551615\n"),
            "{text}"
        );
        assert!(
            text.contains("hac_vf_hac_buffered_frames{vf=\"1\"} 4294967295\n"),
            "{text}"
        );
        assert!(text.contains(
            "# TYPE hac_device_dma_faults_total counter\nhac_device_dma_faults_total 3\n"
        ));
        assert!(text.contains("# HELP hac_vf_vfio_user_dma_maps_total DMA windows\\\\mapped\\nwith a descriptor.\n"), "{text}");
        assert!(text.contains("hac_vf_vfio_user_dma_maps_total{vf=\"1\"} 1099511627776\n"));
        // Every sample line follows its family's HELP and TYPE lines.
        let mut typed = std::collections::BTreeSet::new();
        let mut helped = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap().to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name) && helped.contains(name), "{line}");
            }
        }
    }

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

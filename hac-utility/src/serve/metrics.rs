//! The Prometheus endpoint: `GET /metrics` on a loopback TCP port answers every counter of
//! `stats` in the OpenMetrics text format.
//!
//! * HTTP: [`tiny_http`] accepts the connections and parses the requests (one thread per
//!   connection, so idle connections never delay a scrape); [`SCRAPE_WORKERS`] threads answer
//!   them, each asking the device thread for a `stats` snapshot through the job channel.
//! * Exposition: [`prometheus_client`] writes the families (HELP, TYPE, UNIT, label escaping,
//!   `_total` suffixes, histogram buckets, `# EOF`) from the snapshot through a [`Collector`]
//!   ([`Snapshot`]) — counters are exported as the device reports them, never re-counted here.
//!
//! Names: `hac_port_<counter>`, `hac_device_<name>`, `hac_vf_<counter>{vf}`,
//! `hac_vf_vfio_user_<name>{vf}`, histograms `hac_<name>_seconds{class}`; every sample also
//! carries `family` (`igb`, `mlx5`). A counter whose name ends in `_bytes` has the unit
//! `bytes`; one ending in `_ns` is exported in seconds (`_seconds`, the base unit).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use hac_control::{Latency, MetricKind, PortCounters, Stats, VfCounters};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::Job;

/// Threads answering scrapes (requests are read on tiny_http's connection threads).
pub(super) const SCRAPE_WORKERS: usize = 4;
/// How long a scrape waits for the device thread's snapshot before `503`.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(5);
/// The OpenMetrics content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running endpoint: the HTTP server and its workers.
pub(super) struct MetricsServer {
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `listener`; snapshots come from the device thread through `jobs`; `family` labels
    /// every sample.
    pub(super) fn start(
        listener: TcpListener,
        jobs: &Sender<Job>,
        family: &'static str,
    ) -> Result<MetricsServer, String> {
        let server = tiny_http::Server::from_listener(listener, None)
            .map(Arc::new)
            .map_err(|e| format!("metrics endpoint: {e}"))?;
        let workers = (0..SCRAPE_WORKERS)
            .filter_map(|_| {
                let (server, jobs) = (server.clone(), jobs.clone());
                std::thread::Builder::new()
                    .name("hac-metrics".into())
                    .spawn(move || {
                        while let Ok(request) = server.recv() {
                            answer(request, &jobs, family);
                        }
                    })
                    .ok()
            })
            .collect();
        Ok(MetricsServer { server, workers })
    }

    /// Stops the workers and closes the listener.
    pub(super) fn stop(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

fn answer(request: tiny_http::Request, jobs: &Sender<Job>, family: &'static str) {
    let text =
        |status: u16, body: &str| tiny_http::Response::from_string(body).with_status_code(status);
    let response = if *request.method() != tiny_http::Method::Get {
        text(405, "only GET\n")
    } else if request.url().split('?').next() != Some("/metrics") {
        text(404, "counters are at /metrics\n")
    } else {
        let (tx, rx) = bounded(1);
        let snapshot = jobs
            .send(Job::Metrics(tx))
            .ok()
            .and_then(|()| rx.recv_timeout(SNAPSHOT_DEADLINE).ok());
        match snapshot.map(|s| render(s, family)) {
            Some(Ok(body)) => {
                let mut r = text(200, &body);
                if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE) {
                    r = r.with_header(h);
                }
                r
            }
            Some(Err(_)) => text(500, "cannot encode the counters\n"),
            None => text(503, "daemon busy\n"),
        }
    };
    let _ = request.respond(response);
}

/// `stats` in the OpenMetrics text format, every sample labelled `family`.
pub(super) fn render(stats: Stats, family: &'static str) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_labels(std::iter::once((
        Cow::Borrowed("family"),
        Cow::Borrowed(family),
    )));
    registry.register_collector(Box::new(Snapshot(stats)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// One `stats` answer, encoded as Prometheus families on a scrape.
#[derive(Debug)]
struct Snapshot(Stats);

/// Labels of one sample.
type Labels = Vec<(&'static str, String)>;
/// The samples of one family: labels and value.
type Rows = Vec<(Labels, u64)>;

impl Collector for Snapshot {
    fn encode(&self, mut out: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        for (m, v) in PortCounters::METRICS.iter().zip(s.port.values()) {
            let name = format!("hac_port_{}", m.name);
            family(&mut out, &name, m.help, m.kind, &[(Vec::new(), v)])?;
        }
        for c in &s.device {
            let name = format!("hac_device_{}", metric_part(&c.name));
            let rows = [(Vec::new(), c.value)];
            family(&mut out, &name, &c.help, MetricKind::Counter, &rows)?;
        }
        let vf = |n: usize| vec![("vf", n.to_string())];
        if !s.vfs.is_empty() {
            let values: Vec<Vec<u64>> = s.vfs.iter().map(VfCounters::values).collect();
            for (i, m) in VfCounters::METRICS.iter().enumerate() {
                let rows: Rows = s
                    .vfs
                    .iter()
                    .zip(&values)
                    .map(|(c, v)| (vf(c.vf), v.get(i).copied().unwrap_or(0)))
                    .collect();
                family(
                    &mut out,
                    &format!("hac_vf_{}", m.name),
                    m.help,
                    m.kind,
                    &rows,
                )?;
            }
        }
        // Named per-VF counters: one family per name, in order of first appearance.
        let mut named: Vec<(&str, &str, Rows)> = Vec::new();
        for c in &s.vfs {
            for n in &c.vfio_user {
                let row = (vf(c.vf), n.value);
                match named.iter_mut().find(|(name, _, _)| *name == n.name) {
                    Some((_, _, rows)) => rows.push(row),
                    None => named.push((&n.name, &n.help, vec![row])),
                }
            }
        }
        for (name, help, rows) in named {
            let name = format!("hac_vf_vfio_user_{}", metric_part(name));
            family(&mut out, &name, help, MetricKind::Counter, &rows)?;
        }
        // Histograms: one family per name, one sample set per class.
        let mut seen: Vec<&str> = Vec::new();
        for h in &s.latency {
            if seen.contains(&h.name.as_str()) {
                continue;
            }
            seen.push(&h.name);
            let name = format!("hac_{}", metric_part(&h.name));
            let mut m = out.encode_descriptor(
                &name,
                &help_text(&h.help),
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for h in s.latency.iter().filter(|x| x.name == h.name) {
                if h.class.is_empty() {
                    histogram(&mut m, h)?;
                } else {
                    let labels = [("class", h.class.as_str())];
                    histogram(&mut m.encode_family(&labels)?, h)?;
                }
            }
        }
        Ok(())
    }
}

/// One histogram's samples, bounds and sum in seconds.
fn histogram(m: &mut MetricEncoder<'_>, h: &Latency) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = h
        .le_ns
        .iter()
        .zip(&h.buckets)
        .map(|(&le, &n)| (seconds(le), n))
        .collect();
    let finite: u64 = buckets.iter().map(|b| b.1).fold(0, u64::saturating_add);
    buckets.push((f64::INFINITY, h.count.saturating_sub(finite)));
    m.encode_histogram::<NoLabelSet>(seconds(h.sum_ns), h.count, &buckets, None)
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// One counter or gauge family: its descriptor, then a sample per row. A name ending in
/// `_bytes` gets the unit `bytes`; one ending in `_ns` is exported in seconds.
fn family(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricKind,
    rows: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let (base, unit, in_ns) = if let Some(base) = name.strip_suffix("_ns") {
        (base, Some(Unit::Seconds), true)
    } else if let Some(base) = name.strip_suffix("_bytes") {
        (base, Some(Unit::Bytes), false)
    } else {
        (name, None, false)
    };
    let metric_type = match kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge => MetricType::Gauge,
    };
    // The help texts of `_ns` counters speak of nanoseconds; the samples are in seconds.
    let help = if in_ns {
        help.replace(", ns", "").replacen("Nanoseconds", "Time", 1)
    } else {
        help.to_string()
    };
    let mut m = out.encode_descriptor(base, &help_text(&help), unit.as_ref(), metric_type)?;
    for (labels, v) in rows {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut m = m.encode_family(&labels)?;
        match (kind, in_ns) {
            (MetricKind::Counter, false) => m.encode_counter::<NoLabelSet, _, u64>(v, None)?,
            (MetricKind::Counter, true) => {
                m.encode_counter::<NoLabelSet, _, f64>(&seconds(*v), None)?;
            }
            (MetricKind::Gauge, false) => m.encode_gauge(v)?,
            (MetricKind::Gauge, true) => m.encode_gauge(&seconds(*v))?,
        }
    }
    Ok(())
}

/// `name` as a metric name part: anything but ASCII letters, digits and `_` becomes `_`.
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

/// `help` as a HELP text on one line: backslashes and line breaks escaped (the library writes
/// HELP texts as they are; label values it escapes itself).
fn help_text(help: &str) -> String {
    let mut out = String::new();
    for c in help.trim().chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => {
                let _ = out.write_char(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hac_control::Counter;

    use super::*;

    fn sample() -> Stats {
        let vf = VfCounters {
            vf: 1,
            mac: "02:1b:21:c1:00:01".into(),
            tx_packets: u64::MAX,
            hac_buffered_frames: u32::MAX,
            tx_bytes: 1 << 40,
            vfio_user: vec![Counter {
                name: "dma_maps".into(),
                help: "DMA windows\\mapped\nwith a descriptor.".into(),
                value: 1 << 40,
            }],
            ..VfCounters::default()
        };
        Stats {
            port: PortCounters {
                wire_frames: 7,
                wire_busy_ns: 1_500_000_000,
                guard_bytes: 7,
                ..PortCounters::default()
            },
            vfs: vec![vf],
            device: vec![Counter {
                name: "dma-faults".into(),
                help: "DMA accesses outside the mappings.".into(),
                value: 3,
            }],
            latency: ["checkpoint", "plain"]
                .iter()
                .map(|class| Latency {
                    name: "added_delay".into(),
                    help: "Delay added per frame.".into(),
                    class: class.to_string(),
                    le_ns: vec![1_000, 2_000],
                    buckets: vec![1, 2],
                    count: 4,
                    sum_ns: 5_000_000_000,
                })
                .collect(),
        }
    }

    #[test]
    fn every_family_has_help_type_units_and_64_bit_values() {
        let text = render(sample(), "igb").unwrap();
        let has = |s: &str| assert!(text.contains(s), "{s:?} not in\n{text}");
        has("# HELP hac_port_wire_frames Frames that left the wire port.\n");
        has("# TYPE hac_port_wire_frames counter\n");
        has("hac_port_wire_frames_total{family=\"igb\"} 7\n");
        has("# UNIT hac_port_guard_bytes bytes\n");
        has("# TYPE hac_port_guard_bytes gauge\n");
        has("hac_port_guard_bytes{family=\"igb\"} 7\n");
        // ns counters are exported in seconds.
        has("# HELP hac_port_wire_busy_seconds Time the wire was busy.\n");
        has("# UNIT hac_port_wire_busy_seconds seconds\n");
        has("hac_port_wire_busy_seconds_total{family=\"igb\"} 1.5\n");
        has("hac_vf_tx_packets_total{family=\"igb\",vf=\"1\"} 18446744073709551615\n");
        has("hac_vf_tx_bytes_total{family=\"igb\",vf=\"1\"} 1099511627776\n");
        has("hac_vf_hac_buffered_frames{family=\"igb\",vf=\"1\"} 4294967295\n");
        has(
            "# TYPE hac_device_dma_faults counter\nhac_device_dma_faults_total{family=\"igb\"} 3\n",
        );
        has("# HELP hac_vf_vfio_user_dma_maps DMA windows\\\\mapped\\nwith a descriptor.\n");
        has("hac_vf_vfio_user_dma_maps_total{family=\"igb\",vf=\"1\"} 1099511627776\n");
        // One histogram family, a sample set per class, cumulative buckets, +Inf = count.
        assert_eq!(
            text.matches("# TYPE hac_added_delay_seconds histogram")
                .count(),
            1
        );
        has("hac_added_delay_seconds_sum{family=\"igb\",class=\"plain\"} 5.0\n");
        has("hac_added_delay_seconds_count{family=\"igb\",class=\"plain\"} 4\n");
        has(
            "hac_added_delay_seconds_bucket{family=\"igb\",le=\"0.000002\",class=\"checkpoint\"} 3\n",
        );
        has("hac_added_delay_seconds_bucket{family=\"igb\",le=\"+Inf\",class=\"checkpoint\"} 4\n");
        assert!(text.ends_with("# EOF\n"));
        // Every sample follows its family's HELP and TYPE lines.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                family = rest.split(' ').next().unwrap().to_string();
            } else if line.starts_with('#') {
                continue;
            } else {
                assert!(line.starts_with(&family), "{line} outside {family}");
            }
        }
    }
}

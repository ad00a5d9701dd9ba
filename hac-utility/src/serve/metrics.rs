//! The Prometheus endpoint: `GET /metrics` on a loopback TCP port answers every counter of
//! `stats` in the OpenMetrics text format.
//!
//! * HTTP: the daemon's own accept loop (the one the control socket uses, [`super::clients`])
//!   admits at most [`MAX_CONNECTIONS`] connections, closing the one idle the longest to make
//!   room; each is read on its own thread with a deadline, its requests parsed by [`httparse`]
//!   (at most [`MAX_HEAD`] bytes of head), and answered in order, keep-alive unless the client
//!   says `Connection: close`. A scrape asks the device thread for a `stats` snapshot through
//!   the job channel. (tiny_http did this before; its accept thread gives up for good on the
//!   first accept error, e.g. `EMFILE` under a connection flood, and it starts a thread per
//!   connection without limit.)
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
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use hac_control::{Latency, MetricKind, PortCounters, Stats, VfCounters};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::Job;
use super::clients::{Slot, Slots, accept_each, send_nowait};

/// Most scrape connections open at once; a new one closes the one idle the longest.
pub const MAX_CONNECTIONS: usize = 16;
/// Largest request head (request line and headers) read; a longer one is answered `431`.
pub const MAX_HEAD: usize = 8192;
/// How long a connection may stay without a complete request before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take to accept an answer before the connection is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a scrape waits for the device thread's snapshot before `503`.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(5);
/// The content type of error answers.
const TEXT: &str = "text/plain; charset=utf-8";
/// The OpenMetrics content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running endpoint: its accept thread.
pub(super) struct MetricsServer {
    addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl MetricsServer {
    /// Serves `listener`; snapshots come from the device thread through `jobs`; `family` labels
    /// every sample.
    pub(super) fn start(
        listener: TcpListener,
        jobs: &Sender<Job>,
        family: &'static str,
    ) -> Result<MetricsServer, String> {
        let addr = listener.local_addr().ok();
        let stop = Arc::new(AtomicBool::new(false));
        let (jobs, stop_flag) = (jobs.clone(), stop.clone());
        let accept = std::thread::Builder::new()
            .name("hac-metrics".into())
            .spawn(move || {
                accept_each(
                    listener.incoming(),
                    &stop_flag,
                    &Slots::new(MAX_CONNECTIONS),
                    |stream: &TcpStream| {
                        let closer = stream.try_clone().ok()?;
                        Some(Box::new(move || {
                            let _ = closer.shutdown(std::net::Shutdown::Both);
                        }))
                    },
                    |stream| {
                        let body = "every connection is waiting for an answer; try again\n";
                        let text = head(503, TEXT, body.len(), true) + body;
                        send_nowait(&stream, &text);
                    },
                    |stream, slot| {
                        let jobs = jobs.clone();
                        // Out of threads: the connection (moved into the closure) is closed.
                        let _ = std::thread::Builder::new()
                            .name("hac-scrape".into())
                            .spawn(move || serve_connection(stream, &jobs, &slot, family));
                    },
                );
            })
            .map_err(|e| format!("metrics endpoint: cannot start its thread: {e}"))?;
        Ok(MetricsServer { addr, stop, accept })
    }

    /// Stops accepting (open connections end when their clients go or at the idle deadline).
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees `stop`.
        if let Some(addr) = self.addr {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
        let _ = self.accept.join();
    }
}

/// One request: what the answer needs from it.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete GET.
    Get {
        /// The path, without the query.
        path: String,
        /// Bytes of the head (what to drop before the next pipelined request).
        len: usize,
        /// Whether the connection stays open after the answer (HTTP/1.1 without
        /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
        keep_alive: bool,
    },
    /// A complete head the endpoint refuses; the connection closes after the answer.
    Refused {
        /// `405` for a method other than GET, `400` for a request with a body.
        status: u16,
        /// Bytes of the head.
        len: usize,
    },
    /// Not complete yet (fewer than [`MAX_HEAD`] bytes).
    Partial,
    /// Answered and closed.
    Bad {
        /// `400`: not HTTP; `431`: a head of [`MAX_HEAD`] bytes or more, or too many headers.
        status: u16,
    },
}

/// Parses the HTTP request head at the start of `buf`, as the metrics endpoint reads it (pure:
/// the unit tests and the `metrics_request` fuzz target drive it).
pub fn parse_request(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let version = req.version.unwrap_or(0);
            let mut keep_alive = version >= 1;
            let mut body = false;
            for h in req.headers.iter() {
                let value = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                if h.name.eq_ignore_ascii_case("connection") {
                    if value.split(',').any(|t| t.trim() == "close") {
                        keep_alive = false;
                    } else if value.split(',').any(|t| t.trim() == "keep-alive") {
                        keep_alive = true;
                    }
                } else if (h.name.eq_ignore_ascii_case("content-length") && value.trim() != "0")
                    || h.name.eq_ignore_ascii_case("transfer-encoding")
                {
                    body = true;
                }
            }
            if body {
                Parsed::Refused { status: 400, len }
            } else if req.method != Some("GET") {
                Parsed::Refused { status: 405, len }
            } else {
                let path = req.path.unwrap_or("").split('?').next().unwrap_or("");
                Parsed::Get {
                    path: path.to_string(),
                    len,
                    keep_alive,
                }
            }
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Parsed::Bad { status: 431 },
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Bad { status: 431 },
        Err(_) => Parsed::Bad { status: 400 },
    }
}

/// The status line and headers of an answer of `len` bytes.
fn head(status: u16, content_type: &str, len: usize, close: bool) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let connection = if close { "close" } else { "keep-alive" };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: {connection}\r\n\r\n"
    )
}

/// Reads and answers the requests of one connection, in order, until the client closes, a
/// request is malformed, or it stays idle for [`IDLE_TIMEOUT`].
fn serve_connection(mut stream: TcpStream, jobs: &Sender<Job>, slot: &Slot, family: &'static str) {
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let mut deadline = Instant::now() + IDLE_TIMEOUT;
    loop {
        let parsed = parse_request(&buf);
        let (status, body, keep_alive, used) = match parsed {
            Parsed::Partial => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                    return;
                }
                match stream.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n.min(MAX_HEAD)]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
                continue;
            }
            Parsed::Bad { status } => (status, Ok(format!("{}\n", reason_text(status))), false, 0),
            Parsed::Refused { status, len } => {
                (status, Ok(format!("{}\n", reason_text(status))), false, len)
            }
            Parsed::Get {
                path,
                len,
                keep_alive,
            } => {
                slot.set_busy(true);
                let answer = if path == "/metrics" {
                    scrape(jobs, family)
                } else {
                    (404, Ok("counters are at /metrics\n".to_string()))
                };
                (answer.0, answer.1, keep_alive, len)
            }
        };
        let content_type = if status == 200 { CONTENT_TYPE } else { TEXT };
        let (Ok(body) | Err(body)) = body;
        let out = head(status, content_type, body.len(), !keep_alive) + &body;
        if stream.write_all(out.as_bytes()).is_err() || !keep_alive {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            return;
        }
        slot.set_busy(false);
        buf.drain(..used.min(buf.len()));
        deadline = Instant::now() + IDLE_TIMEOUT;
    }
}

/// The text of an error answer's body.
fn reason_text(status: u16) -> &'static str {
    match status {
        400 => "malformed HTTP request",
        405 => "only GET",
        431 => "request head too large",
        _ => "error",
    }
}

/// A snapshot of the counters, encoded: status and body (`Err`: a text error body).
fn scrape(jobs: &Sender<Job>, family: &'static str) -> (u16, Result<String, String>) {
    let (tx, rx) = bounded(1);
    let snapshot = jobs
        .send(Job::Metrics(tx))
        .ok()
        .and_then(|()| rx.recv_timeout(SNAPSHOT_DEADLINE).ok());
    match snapshot.map(|s| render(s, family)) {
        Some(Ok(body)) => (200, Ok(body)),
        Some(Err(_)) => (500, Err("cannot encode the counters\n".into())),
        None => (503, Err("daemon busy\n".into())),
    }
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
    fn requests_parse_to_what_the_endpoint_answers() {
        let get = |path: &str, len, keep_alive| Parsed::Get {
            path: path.into(),
            len,
            keep_alive,
        };
        let r = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parse_request(r), get("/metrics", r.len(), true));
        // The query is not part of the path; HTTP/1.0 and `Connection: close` close.
        let r = b"GET /metrics?x=1 HTTP/1.0\r\n\r\n";
        assert_eq!(parse_request(r), get("/metrics", r.len(), false));
        let r = b"GET / HTTP/1.1\r\nConnection: Keep-Alive, close\r\n\r\n";
        assert_eq!(parse_request(r), get("/", r.len(), false));
        // A pipelined second request is left for the next round.
        let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        assert_eq!(parse_request(two), get("/a", 19, true));
        assert_eq!(parse_request(&two[19..]), get("/b", 19, true));
        // Other methods, and bodies.
        let r = b"POST /metrics HTTP/1.1\r\n\r\n";
        assert_eq!(
            parse_request(r),
            Parsed::Refused {
                status: 405,
                len: r.len()
            }
        );
        let r = b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            parse_request(r),
            Parsed::Refused {
                status: 400,
                len: r.len()
            }
        );
        let r = b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse_request(r),
            Parsed::Refused {
                status: 400,
                len: r.len()
            }
        );
    }

    #[test]
    fn malformed_and_oversized_requests_are_refused_not_waited_for() {
        assert_eq!(parse_request(b""), Parsed::Partial);
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost"),
            Parsed::Partial
        );
        for bad in [
            &b"\x16\x03\x01\x02\x00"[..], // a TLS hello
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"GET\x00/ HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert_eq!(parse_request(bad), Parsed::Bad { status: 400 }, "{bad:?}");
        }
        // A head that never ends is cut at MAX_HEAD.
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD, b'a');
        assert_eq!(parse_request(&long), Parsed::Bad { status: 431 });
        assert_eq!(parse_request(&long[..MAX_HEAD - 1]), Parsed::Partial);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&many), Parsed::Bad { status: 431 });
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

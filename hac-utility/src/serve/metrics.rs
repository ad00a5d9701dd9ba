//! The Prometheus endpoint: `GET /metrics` on a loopback TCP port answers the counters in the
//! text exposition format ([`hac_control::prometheus_text`], rendered by the device thread).
//! Each scrape has its own thread and a short deadline for its request head; at most
//! [`MAX_SCRAPES`] are served at once.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};

use super::Job;
use super::clients::{Slot, Slots, accept_each};

/// Most metrics scrapes served at once (each on its own thread; when all are taken, the one
/// that has waited longest for its request is closed to make room).
const MAX_SCRAPES: usize = 16;
/// How long a scrape may take to send its request head.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(2);

/// Accepts scrapes, each on its own thread with a short deadline, within [`MAX_SCRAPES`].
pub(super) fn serve(listener: TcpListener, jobs: Sender<Job>, stop: Arc<AtomicBool>) {
    accept_each(
        listener.incoming(),
        &stop,
        &Slots::new(MAX_SCRAPES),
        |stream: &TcpStream| {
            let closer = stream.try_clone().ok()?;
            Some(Box::new(move || {
                let _ = closer.shutdown(std::net::Shutdown::Both);
            }))
        },
        // Every scrape is being answered: this one is closed.
        drop,
        |stream, slot| {
            let jobs = jobs.clone();
            let _ = std::thread::Builder::new()
                .name("hac-metrics".into())
                .spawn(move || {
                    let _ = answer_scrape(stream, &jobs, &slot);
                });
        },
    );
}

fn answer_scrape(mut stream: TcpStream, jobs: &Sender<Job>, slot: &Slot) -> std::io::Result<()> {
    let deadline = Instant::now() + SCRAPE_DEADLINE;
    stream.set_write_timeout(Some(SCRAPE_DEADLINE))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    slot.set_busy(true);
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body, kind) = if method != "GET" {
        (
            "405 Method Not Allowed",
            "only GET\n".to_string(),
            "text/plain",
        )
    } else if target == "/metrics" {
        let (tx, rx) = bounded(1);
        if jobs.send(Job::Metrics(tx)).is_err() {
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(text) => ("200 OK", text, "text/plain; version=0.0.4"),
            Err(_) => (
                "503 Service Unavailable",
                "daemon busy\n".to_string(),
                "text/plain",
            ),
        }
    } else {
        (
            "404 Not Found",
            "counters are at /metrics\n".to_string(),
            "text/plain",
        )
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

//! The Linux-TCP client of the failover demo (run inside the client network
//! namespace). It streams numbered requests `1`, `2`, … with at most `window` unanswered, and
//! checks every answer: answer `i` must be the running total `1 + 2 + … + i`, so a total that
//! goes back, a request answered twice differently, a lost or duplicated byte all show. A reset,
//! an end of stream or a silent connection (the timeout) ends the run with an error.
//!
//! Output: one JSON line per answer (`n`, `total`, `sent_us`, `recv_us`, Unix µs), then a final
//! line `{"ev":"done","ok":…}`. Exit status 0 when every request was answered consistently.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::status::unix_us;

/// The client's configuration (the `hac ha-client` arguments).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The service.
    pub connect: SocketAddr,
    /// Requests to send.
    pub requests: u64,
    /// Pause between requests, ms.
    pub interval_ms: u64,
    /// Most requests outstanding at once.
    pub window: u64,
    /// Give up when no answer arrives for this long, ms.
    pub timeout_ms: u64,
}

/// How the client's run ended.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The service.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The service closed the connection.
    #[error("end of stream after {answered} answers")]
    Eof {
        /// Answers received.
        answered: u64,
    },
    /// The connection was reset.
    #[error("connection reset after {answered} answers")]
    Reset {
        /// Answers received.
        answered: u64,
    },
    /// No answer for the timeout.
    #[error("no answer for {ms} ms after {answered} answers")]
    Timeout {
        /// The timeout.
        ms: u64,
        /// Answers received.
        answered: u64,
    },
    /// Any other I/O error.
    #[error("I/O error after {answered} answers: {source}")]
    Io {
        /// Answers received.
        answered: u64,
        /// Why.
        source: std::io::Error,
    },
    /// An answer that contradicts the earlier ones.
    #[error("answer {n} is {got:?}, expected {expected}")]
    Inconsistent {
        /// Request number.
        n: u64,
        /// What came.
        got: String,
        /// The running total.
        expected: u64,
    },
}

/// The running total after request `n`.
pub fn expected_total(n: u64) -> u64 {
    n.wrapping_mul(n.wrapping_add(1)) / 2
}

fn connect(addr: SocketAddr) -> Result<TcpStream, ClientError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => {
                return Err(ClientError::Connect { addr, source: e });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Runs the client; answers are printed as they arrive.
pub fn run(args: &ClientConfig) -> Result<u64, ClientError> {
    let stream = connect(args.connect)?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(Duration::from_millis(args.timeout_ms.max(1))))
        .map_err(|source| ClientError::Io {
            answered: 0,
            source,
        })?;
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sent_at: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut writer = stream.try_clone().map_err(|source| ClientError::Io {
        answered: 0,
        source,
    })?;
    let writer_thread = {
        let (answered, stop, sent_at) = (answered.clone(), stop.clone(), sent_at.clone());
        let (requests, window, interval) = (
            args.requests,
            args.window,
            Duration::from_millis(args.interval_ms),
        );
        std::thread::spawn(move || {
            for n in 1..=requests {
                while n > answered.load(Ordering::SeqCst) + window {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                sent_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(unix_us());
                if writer.write_all(format!("{n}\n").as_bytes()).is_err() {
                    return;
                }
                std::thread::sleep(interval);
            }
        })
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let result = (|| {
        for n in 1..=args.requests {
            line.clear();
            let done = n - 1;
            match reader.read_line(&mut line) {
                Ok(0) => return Err(ClientError::Eof { answered: done }),
                Ok(_) => {}
                Err(e) => {
                    return Err(match e.kind() {
                        std::io::ErrorKind::ConnectionReset => {
                            ClientError::Reset { answered: done }
                        }
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                            ClientError::Timeout {
                                ms: args.timeout_ms,
                                answered: done,
                            }
                        }
                        _ => ClientError::Io {
                            answered: done,
                            source: e,
                        },
                    });
                }
            }
            let recv_us = unix_us();
            let expected = expected_total(n);
            let got = line.trim_end();
            if got.parse::<u64>().ok() != Some(expected) || !line.ends_with('\n') {
                return Err(ClientError::Inconsistent {
                    n,
                    got: got.to_string(),
                    expected,
                });
            }
            let sent_us = sent_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(n as usize - 1)
                .copied()
                .unwrap_or(recv_us);
            println!(
                "{}",
                json!({"n": n, "total": expected, "sent_us": sent_us, "recv_us": recv_us})
            );
            answered.store(n, Ordering::SeqCst);
        }
        Ok(args.requests)
    })();
    stop.store(true, Ordering::SeqCst);
    let _ = writer_thread.join();
    result
}

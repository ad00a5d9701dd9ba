//! The control connections: one thread per client reads request lines (bounded, with an idle
//! deadline), hands each to the device thread and writes the answer, in order. At most
//! [`MAX_CLIENTS`] are connected; when all places are taken the one idle the longest is closed
//! to make room (see [`Slots`]), so leaked connections never lock a checkpoint engine out.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use hac_control::{ControlError, ErrorCode, MAX_LINE, Request};

use super::Job;

/// Most control clients connected at once. When all are connected, the one idle the longest is
/// closed to make room for a new one; only when every one is waiting for an answer is a new
/// client told to try again.
pub const MAX_CLIENTS: usize = 64;
/// How long a control client may stay idle (no complete request line) before it is closed,
/// unless `--client-idle-timeout` says otherwise.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an accept loop waits after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// How long the daemon waits for a client to take an answer before it closes the connection.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections of one kind, at most `max` at once. Each is idle (waiting for its client) or
/// busy (its request is being carried out). When all places are taken, the connection idle
/// the longest is closed to make room: idle connections never lock out a client with work.
pub(super) struct Slots {
    max: usize,
    table: Mutex<SlotTable>,
}

#[derive(Default)]
struct SlotTable {
    next_id: u64,
    entries: Vec<SlotEntry>,
}

struct SlotEntry {
    id: u64,
    /// Since when it is idle; `None` while busy.
    idle_since: Option<Instant>,
    /// Tells the client why (without waiting) and shuts the connection down.
    close: Box<dyn FnOnce() + Send>,
}

/// A place in [`Slots`]; released on drop.
pub(super) struct Slot {
    slots: Arc<Slots>,
    id: u64,
}

impl Slots {
    /// An empty table of `max` places.
    pub(super) fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            table: Mutex::new(SlotTable::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new (idle) connection, closing the longest-idle one if all are taken;
    /// `None` when every connection is busy. `close` is what closing this one later means.
    pub(super) fn admit(self: &Arc<Self>, close: Box<dyn FnOnce() + Send>) -> Option<Slot> {
        let mut evicted = None;
        let mut t = self.lock();
        if t.entries.len() >= self.max {
            let oldest = t
                .entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| e.idle_since.map(|since| (since, i)))
                .min()?;
            evicted = Some(t.entries.swap_remove(oldest.1));
        }
        let id = t.next_id;
        t.next_id += 1;
        t.entries.push(SlotEntry {
            id,
            idle_since: Some(Instant::now()),
            close,
        });
        drop(t);
        if let Some(e) = evicted {
            (e.close)();
        }
        Some(Slot {
            slots: self.clone(),
            id,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Slot {
    /// Marks the connection busy (`true`: not to be closed for room) or idle again.
    pub(super) fn set_busy(&self, busy: bool) {
        let mut t = self.slots.lock();
        if let Some(e) = t.entries.iter_mut().find(|e| e.id == self.id) {
            e.idle_since = if busy { None } else { Some(Instant::now()) };
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().entries.retain(|e| e.id != self.id);
    }
}

/// Sends `text` if the socket takes it at once, never waiting (the client may not be reading).
pub(super) fn send_nowait(fd: impl std::os::fd::AsFd, text: &str) {
    let _ = rustix::net::send(fd, text.as_bytes(), rustix::net::SendFlags::DONTWAIT);
}

/// Reads one line of at most [`MAX_LINE`] bytes, giving up at `deadline` (an error of kind
/// `TimedOut`). `Ok(None)` at end of stream; an over-long line is consumed up to its newline
/// and returned as `MAX_LINE + 1` bytes so the parser rejects it.
fn read_line(
    reader: &mut BufReader<UnixStream>,
    line: &mut Vec<u8>,
    deadline: Instant,
) -> std::io::Result<Option<()>> {
    line.clear();
    let mut overflow = false;
    loop {
        if reader.buffer().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            reader.get_ref().set_read_timeout(Some(left))?;
        }
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(if line.is_empty() && !overflow {
                None
            } else {
                Some(())
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !overflow {
            let room = MAX_LINE + 1 - line.len();
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            overflow = line.len() > MAX_LINE;
        }
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(()));
        }
    }
}

/// The line a control client gets before the daemon closes its idle connection.
fn idle_line(why: &str) -> String {
    let e = ControlError::new(ErrorCode::Idle, why);
    hac_control::response_line(None, Err(&e))
}

fn serve_client(stream: UnixStream, jobs: Sender<Job>, slot: &Slot, idle_timeout: Duration) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    if write_half
        .set_write_timeout(Some(CLIENT_WRITE_TIMEOUT))
        .is_err()
    {
        return;
    }
    let mut writer = std::io::BufWriter::new(write_half);
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        let deadline = Instant::now() + idle_timeout;
        match read_line(&mut reader, &mut line, deadline) {
            Ok(Some(())) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                let why = format!(
                    "closed: no complete request for {} s (--client-idle-timeout)",
                    idle_timeout.as_secs()
                );
                send_nowait(writer.get_ref(), &idle_line(&why));
                return;
            }
            Ok(None) | Err(_) => return,
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        slot.set_busy(true);
        let response = match hac_control::parse_line(&line) {
            Err((id, e)) => hac_control::response_line(id.as_ref(), Err(&e)),
            Ok(env) => {
                let (tx, rx) = bounded(1);
                let stop = env.request == Request::Shutdown {};
                if jobs.send(Job::Request(env.request, tx)).is_err() {
                    return;
                }
                let result = rx.recv().unwrap_or_else(|_| {
                    Err(ControlError::new(
                        ErrorCode::Internal,
                        "the daemon is stopping",
                    ))
                });
                let line = hac_control::response_line(env.id.as_ref(), result.as_ref());
                if stop {
                    // Answer first, then stop the daemon: the client sees its answer.
                    let _ = writer.write_all(line.as_bytes());
                    let _ = writer.flush();
                    let _ = jobs.send(Job::Stop);
                    return;
                }
                line
            }
        };
        if writer.write_all(response.as_bytes()).is_err() || writer.flush().is_err() {
            return;
        }
        slot.set_busy(false);
    }
}

/// The accept loop both listeners share: until `stop`, each connection gets a place in
/// `slots` — `closer` says what closing it to make room means (`None`: it cannot be closed, and
/// is dropped) — and goes to `start`; one that finds every place busy goes to `refuse`.
pub(super) fn accept_each<S>(
    incoming: impl Iterator<Item = std::io::Result<S>>,
    stop: &AtomicBool,
    slots: &Arc<Slots>,
    closer: impl Fn(&S) -> Option<Box<dyn FnOnce() + Send>>,
    refuse: impl Fn(S),
    start: impl Fn(S, Slot),
) {
    for stream in incoming {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors (EMFILE) or memory: wait instead of spinning; the
            // listener stays open and takes connections again once some are closed.
            std::thread::sleep(ACCEPT_BACKOFF);
            continue;
        };
        let Some(close) = closer(&stream) else {
            continue;
        };
        match slots.admit(close) {
            Some(slot) => start(stream, slot),
            None => refuse(stream),
        }
    }
}

/// Accepts control clients, each on its own thread, within [`MAX_CLIENTS`] (see [`Slots`]).
pub(super) fn accept(
    listener: UnixListener,
    jobs: Sender<Job>,
    stop: Arc<AtomicBool>,
    idle_timeout: Duration,
) {
    accept_each(
        listener.incoming(),
        &stop,
        &Slots::new(MAX_CLIENTS),
        |stream: &UnixStream| {
            let closer = stream.try_clone().ok()?;
            Some(Box::new(move || {
                send_nowait(
                    &closer,
                    &idle_line(&format!(
                        "closed: idle while {MAX_CLIENTS} clients were connected, to make room for a new one"
                    )),
                );
                let _ = closer.shutdown(std::net::Shutdown::Both);
            }))
        },
        |stream| {
            let e = ControlError::new(
                ErrorCode::Busy,
                format!("all {MAX_CLIENTS} clients are waiting for answers; try again later"),
            );
            send_nowait(&stream, &hac_control::response_line(None, Err(&e)));
        },
        |stream, slot| {
            let jobs = jobs.clone();
            // Out of threads: the connection (moved into the closure) is closed.
            let _ = std::thread::Builder::new()
                .name("hac-client".into())
                .spawn(move || serve_client(stream, jobs, &slot, idle_timeout));
        },
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn closer(closed: &Arc<AtomicU32>, n: u32) -> Box<dyn FnOnce() + Send> {
        let closed = closed.clone();
        Box::new(move || closed.store(n, Ordering::Relaxed))
    }

    #[test]
    fn a_full_table_closes_the_longest_idle_connection_never_a_busy_one() {
        let slots = Slots::new(3);
        let closed = Arc::new(AtomicU32::new(0));
        let a = slots.admit(closer(&closed, 1)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = slots.admit(closer(&closed, 2)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let c = slots.admit(closer(&closed, 3)).unwrap();
        a.set_busy(true);
        // Full: b is the longest idle (a is busy).
        let d = slots.admit(closer(&closed, 4)).unwrap();
        assert_eq!(closed.load(Ordering::Relaxed), 2);
        assert_eq!(slots.len(), 3);
        drop(b); // its thread ends later: nothing more is removed
        assert_eq!(slots.len(), 3);
        // Everyone busy: the newcomer is refused, nobody is closed.
        c.set_busy(true);
        d.set_busy(true);
        closed.store(0, Ordering::Relaxed);
        assert!(slots.admit(closer(&closed, 5)).is_none());
        assert_eq!(closed.load(Ordering::Relaxed), 0);
        // Idle again: it can be closed for room.
        c.set_busy(false);
        let _e = slots.admit(closer(&closed, 6)).unwrap();
        assert_eq!(closed.load(Ordering::Relaxed), 3);
        drop(a);
        assert_eq!(slots.len(), 2);
    }
}

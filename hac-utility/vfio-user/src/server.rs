//! The socket side: one listening Unix socket and one thread per served device. A
//! connection's messages are read whole (header, then the size it announces), with the file
//! descriptors that came with them (`SCM_RIGHTS`, received through `rustix`'s safe `recvmsg`),
//! handed to the [`Session`] and answered in order. In client mode the same thread sends the
//! device's `DMA_WRITE` requests and takes their replies ([`crate::client_dma`]); it waits on
//! the socket and the queue together (poll) and never blocks on a send. A message whose size field is impossible
//! ends the connection (the stream cannot be resynchronised) after an error reply; everything
//! else gets a reply and the connection goes on. When a client leaves, the session drops its
//! memory and eventfds and the thread waits for the next client (one client at a time).
//!
//! Where the socket comes from (its path, its mode, what to do with a stale one) is the
//! caller's policy: the server takes a bound listener.

use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rustix::event::{PollFd, PollFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags};

use crate::backend::Backend;
use crate::client_dma::Outbox;
use crate::session::{Counters, Session};
use crate::wire::{self, Header};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket path is taken (a live server, a file that is not a socket), or the socket
    /// could not be created there.
    #[error("{0}")]
    Socket(String),
    /// Starting the server's thread failed.
    #[error("cannot listen on {path}: {source}")]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running server thread; dropping it stops accepting and removes the socket.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    /// The session's counters, published after every message.
    counters: Arc<Mutex<Counters>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `session` on a thread, accepting clients one after the other on `listener`,
    /// which is bound at `path` (removed when the server is dropped). The thread is named
    /// after the session's label (`vfio-user-vf0` for "VF 0").
    pub fn spawn<B: Backend + Send + 'static>(
        path: &Path,
        listener: UnixListener,
        session: Session<B>,
    ) -> Result<Server, ServerError> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Mutex::new(session.counters()));
        let thread = {
            let stop = stop.clone();
            let counters = counters.clone();
            let name: String = session
                .label()
                .chars()
                .filter(|c| !c.is_whitespace())
                .flat_map(char::to_lowercase)
                .collect();
            std::thread::Builder::new()
                .name(format!("vfio-user-{name}"))
                .spawn(move || run(listener, session, &stop, &counters))
                .map_err(|source| ServerError::Listen {
                    path: path.to_path_buf(),
                    source,
                })?
        };
        Ok(Server {
            path: path.to_path_buf(),
            stop,
            counters,
            thread: Some(thread),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The session's counters (all clients so far), as of its last message.
    pub fn counters(&self) -> Counters {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake an idle accept; a thread inside a connection ends when its client goes.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
    }
}

fn run<B: Backend>(
    listener: UnixListener,
    mut session: Session<B>,
    stop: &AtomicBool,
    published: &Mutex<Counters>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let label = session.label().to_string();
        eprintln!("hac serve: vfio-user client connected to {label}");
        let why = match serve_connection(&stream, &mut session, published) {
            Ok(()) => "closed".to_string(),
            Err(e) => e.to_string(),
        };
        session.disconnect();
        let c = session.counters();
        publish(published, c);
        eprintln!(
            "hac serve: vfio-user client of {label} left ({why}); {} messages, {} errors, {} DMA maps",
            c.messages, c.errors, c.dma_maps
        );
    }
}

fn publish(published: &Mutex<Counters>, counters: Counters) {
    *published.lock().unwrap_or_else(|p| p.into_inner()) = counters;
}

/// Reads up to `buf.len()` bytes and the descriptors sent with them.
fn recv_with_fds(stream: &UnixStream, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(wire::MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = loop {
        match rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(m) => break m,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    Ok((msg.bytes, fds))
}

/// Serves one client until it closes the connection or sends an unreadable message.
///
/// One thread, never blocked on the client: it waits (poll) for the socket and, in client mode
/// ([`Session::set_client_dma`]), for the device's queued writes; replies and `DMA_WRITE`
/// requests leave through one buffer sent without blocking, so requests keep being answered
/// while `DMA_WRITE`s wait for their replies (QEMU's vCPU may hold its big lock waiting for a
/// region read's reply while the main loop that applies our `DMA_WRITE` waits for that lock).
fn serve_connection<B: Backend>(
    stream: &UnixStream,
    session: &mut Session<B>,
    published: &Mutex<Counters>,
) -> std::io::Result<()> {
    let mut reader = stream;
    let mut outbox = session
        .client_dma()
        .cloned()
        .map(|q| Outbox::new(q, session.client_max_xfer()));
    let mut out = Unsent::default();
    loop {
        if let Some(o) = outbox.as_mut() {
            if o.failed() {
                let l = o.queue().limits();
                return Err(std::io::Error::other(format!(
                    "device writes for the client over {} items or {} bytes unacknowledged, or one refused by the client: connection ended so the device is reset (fail closed)",
                    l.max_items, l.max_bytes
                )));
            }
            o.set_max_xfer(session.client_max_xfer());
            o.pump(&mut out.buf);
        }
        out.flush(stream)?;
        if out.len() > MAX_UNSENT {
            return Err(std::io::Error::other(format!(
                "the client has not read {} bytes of replies and requests: connection ended",
                out.len()
            )));
        }
        let mut events = PollFlags::IN;
        if !out.is_empty() {
            events |= PollFlags::OUT;
        }
        let readable = {
            let mut fds = vec![PollFd::new(stream, events)];
            if let Some(o) = outbox.as_ref() {
                fds.push(PollFd::from_borrowed_fd(o.queue().wake_fd(), PollFlags::IN));
            }
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            !(fds[0].revents() & (PollFlags::IN | PollFlags::HUP | PollFlags::ERR)).is_empty()
        };
        if !readable {
            continue;
        }
        let mut head = [0u8; wire::HEADER_LEN];
        let (n, fds) = recv_with_fds(stream, &mut head)?;
        if n == 0 {
            return Ok(());
        }
        if n < head.len() {
            reader.read_exact(&mut head[n..])?;
        }
        let header = match Header::parse(&head) {
            Ok(h) => h,
            Err(e) => {
                let reply = session.handle(&head, fds);
                publish(published, session.counters());
                if let Some(reply) = reply {
                    out.buf.extend_from_slice(&reply);
                }
                // The error reply is the last thing the client gets: wait (bounded) for the
                // socket to take it, rather than drop it when the buffer happens to be full.
                out.flush_before_close(stream, CLOSING_FLUSH)?;
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
        };
        let mut message = vec![0u8; header.size as usize];
        message[..wire::HEADER_LEN].copy_from_slice(&head);
        reader.read_exact(&mut message[wire::HEADER_LEN..])?;
        if let Some(o) = outbox.as_mut()
            && header.flags & wire::flags::TYPE_MASK == wire::flags::TYPE_REPLY
        {
            o.on_reply(&message);
            continue;
        }
        let reply = session.handle(&message, fds);
        publish(published, session.counters());
        // The device's writes made before or during this request leave before its reply (a
        // client that handles messages in order applies them first; QEMU applies them on its
        // main loop, which the reply does not wait for).
        if let Some(o) = outbox.as_mut() {
            o.pump(&mut out.buf);
        }
        if let Some(reply) = reply {
            out.buf.extend_from_slice(&reply);
        }
    }
}

/// Bytes the connection may hold for a client that does not read its socket (replies and
/// `DMA_WRITE`s; the device's writes are bounded by their own queue first): over it the
/// connection ends, so a client that stops reading cannot grow the daemon's memory.
const MAX_UNSENT: usize = 64 << 20;

/// How long a connection that is being ended waits for the client to take its last reply.
const CLOSING_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// Replies and requests for the client not yet taken by its socket: appended at the end of
/// `buf`, sent from `start`. The sent front is dropped only once it is the larger part, so a
/// client that reads a little at a time costs a copy of the rest now and then, not one per send.
#[derive(Default)]
struct Unsent {
    buf: Vec<u8>,
    start: usize,
}

impl Unsent {
    /// Bytes waiting.
    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends what waits without blocking; what the socket does not take keeps waiting.
    fn flush(&mut self, stream: &UnixStream) -> std::io::Result<()> {
        let result = loop {
            let Some(rest) = self.buf.get(self.start..).filter(|r| !r.is_empty()) else {
                break Ok(());
            };
            match rustix::net::send(stream, rest, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                Ok(n) => self.start += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break Ok(()),
                Err(e) => break Err(e.into()),
            }
        };
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        result
    }

    /// Sends what waits, waiting for the socket to take it for at most `limit` in all (this
    /// connection's thread only: no other client waits). What is left after that is dropped
    /// with the connection.
    fn flush_before_close(
        &mut self,
        stream: &UnixStream,
        limit: std::time::Duration,
    ) -> std::io::Result<()> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            self.flush(stream)?;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if self.is_empty() || left.is_zero() {
                return Ok(());
            }
            let timeout = rustix::event::Timespec::try_from(left).ok();
            let mut fds = [PollFd::new(stream, PollFlags::OUT)];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

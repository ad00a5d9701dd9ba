//! The socket side: one listening Unix socket and one thread per exported VF. A connection's
//! messages are read whole (header, then the size it announces), with the file descriptors
//! that came with them (`SCM_RIGHTS`, received through `rustix`'s safe `recvmsg`), handed to
//! the [`VfEndpoint`] and answered in order. A message whose size field is impossible ends the
//! connection (the stream cannot be resynchronised) after an error reply; everything else gets
//! a reply and the connection goes on. When a client leaves, the endpoint drops its memory and
//! eventfds and the thread waits for the next client.

use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use super::endpoint::{EndpointCounters, VfEndpoint};
use super::wire::{self, Header};

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

/// A running server thread.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    /// The endpoint's counters, as of its last message.
    counters: Arc<Mutex<EndpointCounters>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `path` and serves `endpoint` on a thread. The socket is created with mode
    /// 0600 (only the daemon's user and root may connect: a client gets the VF's DMA and
    /// interrupts); a live server's socket there is refused, a stale one replaced
    /// (`serve::listen_private`).
    pub fn spawn(path: &Path, endpoint: VfEndpoint) -> Result<Server, ServerError> {
        let listener = crate::serve::listen_private(path, "--vfio-user directory")
            .map_err(ServerError::Socket)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Mutex::new(EndpointCounters::default()));
        let thread = {
            let stop = stop.clone();
            let counters = counters.clone();
            let name = format!("vfio-user-vf{}", endpoint.vf().get());
            std::thread::Builder::new()
                .name(name)
                .spawn(move || run(listener, endpoint, &stop, &counters))
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

    /// The endpoint's counters, as of its last message.
    pub fn counters(&self) -> EndpointCounters {
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

fn run(
    listener: UnixListener,
    mut endpoint: VfEndpoint,
    stop: &AtomicBool,
    published: &Mutex<EndpointCounters>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let vf = endpoint.vf().get();
        eprintln!("hac serve: vfio-user client connected to VF {vf}");
        let why = match serve_connection(&stream, &mut endpoint, published) {
            Ok(()) => "closed".to_string(),
            Err(e) => e.to_string(),
        };
        endpoint.disconnect();
        let c = endpoint.counters();
        *published.lock().unwrap_or_else(|p| p.into_inner()) = c;
        eprintln!(
            "hac serve: vfio-user client of VF {vf} left ({why}); {} messages, {} errors, {} DMA maps",
            c.messages, c.errors, c.dma_maps
        );
    }
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
fn serve_connection(
    stream: &UnixStream,
    endpoint: &mut VfEndpoint,
    published: &Mutex<EndpointCounters>,
) -> std::io::Result<()> {
    let mut reader = stream;
    let mut writer = stream;
    loop {
        let mut head = [0u8; wire::HEADER_LEN];
        let (n, fds) = recv_with_fds(stream, &mut head)?;
        if n == 0 {
            return Ok(());
        }
        if n < head.len() {
            reader.read_exact(&mut head[n..])?;
        }
        let size = match Header::parse(&head) {
            Ok(h) => h.size as usize,
            Err(e) => {
                if let Some(reply) = endpoint.handle(&head, fds) {
                    writer.write_all(&reply)?;
                }
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
        };
        let mut message = vec![0u8; size];
        message[..wire::HEADER_LEN].copy_from_slice(&head);
        reader.read_exact(&mut message[wire::HEADER_LEN..])?;
        let reply = endpoint.handle(&message, fds);
        // Published before the reply, so a client that saw its answer sees it counted.
        *published.lock().unwrap_or_else(|p| p.into_inner()) = endpoint.counters();
        if let Some(reply) = reply {
            writer.write_all(&reply)?;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::vfio_user::endpoint::IrqRoutes;
    use crate::vfio_user::wire::{Command, Payload};
    use hac_driver::model::Model;
    use hac_driver::pf::PfConfig;
    use igb_hw::VfIndex;
    use igb_model::NicConfig;

    fn message(id: u16, command: Command, body: &[u8]) -> Vec<u8> {
        Header::request(id, command, body)
    }

    fn reply(s: &mut UnixStream) -> (Header, Vec<u8>) {
        let mut h = [0u8; 16];
        s.read_exact(&mut h).unwrap();
        let header = Header::parse(&h).unwrap();
        let mut body = vec![0u8; header.size as usize - 16];
        s.read_exact(&mut body).unwrap();
        (header, body)
    }

    #[test]
    fn a_client_session_over_the_socket_survives_garbage() {
        let dir = std::env::temp_dir().join(format!("hac-vu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vf0.sock");
        let model = Model::new(NicConfig::default());
        let agent = model
            .start_pf_agent(
                PfConfig {
                    num_vfs: 1,
                    ..PfConfig::default()
                },
                &[None],
            )
            .unwrap();
        let ep = VfEndpoint::new(
            model.clone(),
            VfIndex::new(0).unwrap(),
            Some(agent),
            IrqRoutes::new(),
        );
        let server = Server::spawn(&path, ep).unwrap();
        let mut c = UnixStream::connect(server.path()).unwrap();
        let caps = b"{\"capabilities\":{}}\0";
        let v = message(1, Command::Version, &[&[0u8, 0, 0, 0][..], caps].concat());
        c.write_all(&v).unwrap();
        let (h, body) = reply(&mut c);
        assert_eq!((h.id, h.command, h.flags), (1, Command::Version, 1));
        assert!(body.windows(11).any(|w| w == b"max_msg_fds"));
        // An unknown command, then a good read: the connection goes on.
        c.write_all(&message(2, Command::Unknown(77), &[9; 5]))
            .unwrap();
        let (h, _) = reply(&mut c);
        assert_eq!(h.flags, 1 | wire::flags::ERROR);
        let r = Payload::default().u64(0).u32(7).u32(4).0;
        c.write_all(&message(3, Command::RegionRead, &r)).unwrap();
        let (h, body) = reply(&mut c);
        assert_eq!(h.id, 3);
        assert_eq!(&body[16..], &[0x86, 0x80, 0xCA, 0x10]);
        // An impossible size: error reply, then the server closes this connection...
        let mut bad = message(4, Command::RegionRead, &[]);
        bad[4..8].copy_from_slice(&3u32.to_le_bytes());
        c.write_all(&bad).unwrap();
        let (h, _) = reply(&mut c);
        assert_eq!(h.flags, 1 | wire::flags::ERROR);
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        // ...and accepts the next client.
        let mut c2 = UnixStream::connect(server.path()).unwrap();
        c2.write_all(&message(5, Command::RegionRead, &r)).unwrap();
        assert_eq!(reply(&mut c2).0.id, 5);
        drop(c2);
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Eventfds: what VFIO signals for each MSI-X vector, and waiting on several of them with a timeout.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A non-blocking, close-on-exec eventfd counter.
#[derive(Debug)]
pub struct EventFd {
    file: File,
}

impl EventFd {
    /// A new eventfd with count 0.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd has no memory preconditions; it returns a new fd or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd, is open, and is owned by nothing else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd {
            file: File::from(owned),
        })
    }

    /// Takes a descriptor another process sent as "an eventfd" (a vfio-user client's MSI-X
    /// vector): refuses anything that is not one, and makes it non-blocking, so that
    /// [`EventFd::try_signal`] can never wait on the sender. The check reads the descriptor's
    /// `/proc/self/fd` link (`anon_inode:[eventfd]`); without `/proc` nothing is accepted.
    ///
    /// `O_NONBLOCK` is a flag of the open file description, which the sender shares: its own
    /// reads become non-blocking too (QEMU creates its eventfds non-blocking anyway).
    pub fn from_foreign(fd: OwnedFd) -> io::Result<EventFd> {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot check the descriptor: {e}")))?;
        if link.as_os_str() != "anon_inode:[eventfd]" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not an eventfd ({})", link.display()),
            ));
        }
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        if !flags.contains(rustix::fs::OFlags::NONBLOCK) {
            rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
        }
        Ok(EventFd {
            file: File::from(fd),
        })
    }

    /// Adds 1 to the counter (what the kernel does when the vector fires). Used by test twins
    /// to simulate an interrupt.
    pub fn signal(&self) -> io::Result<()> {
        (&self.file).write_all(&1u64.to_ne_bytes())
    }

    /// Adds 1 to the counter without ever waiting: `Ok(false)` when the counter is at its
    /// maximum (`u64::MAX - 1`: the reader has not read for 2^64 - 2 signals, so it is already
    /// woken and one more changes nothing it can observe but the count).
    pub fn try_signal(&self) -> io::Result<bool> {
        match (&self.file).write(&1u64.to_ne_bytes()) {
            Ok(8) => Ok(true),
            Ok(n) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("eventfd write took {n} of 8 bytes"),
            )),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads and resets the counter: the number of signals since the last `take` (0 if none).
    pub fn take(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        match (&self.file).read(&mut buf) {
            Ok(8) => Ok(u64::from_ne_bytes(buf)),
            Ok(n) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("eventfd read returned {n} bytes"),
            )),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Waits until at least one of `fds` is readable or `timeout` passes (`None`: forever), then
/// returns a bit mask of the readable ones (bit `i` for `fds[i]`; at most 64 fds). Does not
/// consume the counts. An interrupted wait (EINTR) is resumed with the remaining time.
pub fn poll_readable<F: AsFd>(fds: &[F], timeout: Option<Duration>) -> io::Result<u64> {
    if fds.len() > 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "more than 64 eventfds",
        ));
    }
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    loop {
        let ms: libc::c_int = match deadline {
            None | Some(None) => -1,
            Some(Some(d)) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so a sub-millisecond timeout still waits rather than spinning.
                let ms = left.as_micros().div_ceil(1000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        // SAFETY: `pollfds` is a live, exclusively borrowed array of `pollfds.len()` pollfd
        // structs; the fds in it are borrowed from `fds` and stay open for the call.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let mut mask = 0u64;
        for (i, p) in pollfds.iter().enumerate() {
            if p.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "eventfd in error state",
                ));
            }
            if p.revents & libc::POLLIN != 0 {
                mask |= 1 << i;
            }
        }
        return Ok(mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_take_and_poll() {
        let a = EventFd::new().unwrap();
        let b = EventFd::new().unwrap();
        assert_eq!(a.take().unwrap(), 0);
        assert_eq!(
            poll_readable(&[&a, &b], Some(Duration::from_millis(1))).unwrap(),
            0
        );
        b.signal().unwrap();
        b.signal().unwrap();
        assert_eq!(
            poll_readable(&[&a, &b], Some(Duration::ZERO)).unwrap(),
            0b10
        );
        assert_eq!(b.take().unwrap(), 2);
        assert_eq!(b.take().unwrap(), 0);
        let start = Instant::now();
        assert_eq!(
            poll_readable(&[&a, &b], Some(Duration::from_millis(20))).unwrap(),
            0
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn only_eventfds_are_taken_from_other_processes_and_they_never_block() {
        // A blocking eventfd preloaded to its maximum: a plain write would wait forever.
        let raw = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        rustix::io::write(&raw, &(u64::MAX - 1).to_ne_bytes()).unwrap();
        let e = EventFd::from_foreign(raw).unwrap();
        assert!(
            rustix::fs::fcntl_getfl(&e)
                .unwrap()
                .contains(rustix::fs::OFlags::NONBLOCK)
        );
        assert!(!e.try_signal().unwrap(), "full: refused at once");
        assert_eq!(e.take().unwrap(), u64::MAX - 1);
        assert!(e.try_signal().unwrap());
        assert_eq!(e.take().unwrap(), 1);
        // A pipe, a socket and a regular file are not eventfds.
        let (r, w) = rustix::pipe::pipe().unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let f = File::open("/proc/self/status").unwrap();
        for fd in [r, w, OwnedFd::from(a), OwnedFd::from(f)] {
            let err = EventFd::from_foreign(fd).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().starts_with("not an eventfd"), "{err}");
        }
    }

    #[test]
    fn too_many_fds_are_refused() {
        let fds: Vec<EventFd> = (0..65).map(|_| EventFd::new().unwrap()).collect();
        assert!(poll_readable(&fds, Some(Duration::ZERO)).is_err());
    }
}

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

    /// Adds 1 to the counter (what the kernel does when the vector fires). Used by test twins
    /// to simulate an interrupt.
    pub fn signal(&self) -> io::Result<()> {
        (&self.file).write_all(&1u64.to_ne_bytes())
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
    fn too_many_fds_are_refused() {
        let fds: Vec<EventFd> = (0..65).map(|_| EventFd::new().unwrap()).collect();
        assert!(poll_readable(&fds, Some(Duration::ZERO)).is_err());
    }
}

//! A Linux TAP device (`/dev/net/tun`, `TUNSETIFF` with `IFF_TAP | IFF_NO_PI`): whole Ethernet
//! frames in and out of a kernel network interface, non-blocking, with typed I/O errors (no
//! panics on a device that went down).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

/// An attached TAP interface. Dropping it detaches (the interface itself stays if it was
/// created persistent, e.g. by `ip tuntap add`).
#[derive(Debug)]
pub struct TapDevice {
    file: File,
    name: String,
}

impl TapDevice {
    /// Attaches to (or creates) the TAP interface `name` (at most 15 bytes, no NUL).
    pub fn open(name: &str) -> io::Result<TapDevice> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {name:?} (1 to 15 bytes)"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        // SAFETY: `ifreq` is a plain C struct for which all-zero bytes are a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: the fd is open (owned by `file`, alive for the call); TUNSETIFF reads and
        // writes exactly one `ifreq`, and `req` is a valid, exclusively borrowed `ifreq`.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TapDevice {
            file,
            name: name.to_string(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame into `buf`: `Ok(None)` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match (&self.file).read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one frame: `Ok(false)` when the kernel queue is full (the frame is dropped, as a
    /// full transmit queue would).
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        match (&self.file).write(frame) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunsetiff_is_iow_t_202_int() {
        // _IOW('T', 202, int): dir write (1) << 30 | size 4 << 16 | 'T' << 8 | 202.
        const EXPECTED: libc::Ioctl = (1 << 30) | (4 << 16) | (0x54 << 8) | 202;
        assert_eq!(libc::TUNSETIFF, EXPECTED);
    }

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        for name in ["", "a-name-that-is-too-long", "nul\0"] {
            let e = TapDevice::open(name).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }
}

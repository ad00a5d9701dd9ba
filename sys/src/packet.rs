//! A Linux packet socket (`AF_PACKET`, `SOCK_RAW`, `ETH_P_ALL`) bound to one existing interface:
//! whole Ethernet frames in and out of, for example, a veth end or a bridge port, non-blocking,
//! with typed I/O errors (no panics on an interface that went down or away).
//!
//! The socket puts the interface in promiscuous mode for its lifetime (`PACKET_MR_PROMISC`, so a
//! physical port delivers frames for the MACs behind it) and does not see the interface's own
//! outgoing frames (`PACKET_IGNORE_OUTGOING`, Linux 4.20): what it reads arrived on the
//! interface, what it writes leaves through it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// An open packet socket on one interface. Dropping it closes the socket (and drops its
/// promiscuous-mode reference).
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    name: String,
    ifindex: u32,
}

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `sockaddr_ll` take it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// Checks an interface name as the kernel will: 1 to 15 bytes, no NUL, no `/`.
pub fn check_interface_name(name: &str) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) || name.contains('/')
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?} (1 to 15 bytes, no '/')"),
        ));
    }
    Ok(())
}

/// Sets one integer-or-struct socket option at level `SOL_PACKET`.
fn set_packet_option<T>(fd: BorrowedFd<'_>, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: the fd is open (borrowed for the call); `value` is a valid, initialised `T` that
    // lives for the call, and exactly `size_of::<T>()` bytes are passed, which the kernel only
    // reads.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            option,
            (value as *const T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl PacketSocket {
    /// Opens a packet socket on the existing interface `name`. Needs `CAP_NET_RAW`; an unknown
    /// interface is `ErrorKind::NotFound`.
    pub fn open(name: &str) -> io::Result<PacketSocket> {
        check_interface_name(name)?;
        let fd = rustix::net::socket_with(
            AddressFamily::PACKET,
            SocketType::RAW,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            Some(rustix::net::eth::ALL),
        )?;
        let ifindex = match rustix::net::netdevice::name_to_index(&fd, name) {
            Ok(i) => i,
            Err(rustix::io::Errno::NODEV) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no interface named {name}"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let ifindex_c = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::other(format!("interface index {ifindex} out of range")))?;
        // SAFETY: `sockaddr_ll` is a plain C struct for which all-zero bytes are a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = ETH_P_ALL_BE;
        addr.sll_ifindex = ifindex_c;
        // SAFETY: the fd is open (owned by `fd`, alive for the call); `addr` is a valid,
        // initialised `sockaddr_ll` living for the call and its exact size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `packet_mreq` is a plain C struct for which all-zero bytes are a valid value.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex_c;
        mreq.mr_type = libc::PACKET_MR_PROMISC as libc::c_ushort;
        set_packet_option(fd.as_fd(), libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        let one: libc::c_int = 1;
        set_packet_option(fd.as_fd(), libc::PACKET_IGNORE_OUTGOING, &one)?;
        Ok(PacketSocket {
            fd,
            name: name.to_string(),
            ifindex,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Reads one frame into `buf`: `Ok(None)` when none is waiting, else the frame's full length
    /// (larger than `buf` when the frame was truncated to fit).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match rustix::net::recv(&self.fd, buf, RecvFlags::TRUNC) {
            Ok((_, full)) => Ok(Some(full)),
            Err(rustix::io::Errno::AGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Frames the kernel dropped because the socket's receive queue was full, since the last
    /// call (`PACKET_STATISTICS`, which the kernel resets on each read).
    pub fn take_drops(&self) -> io::Result<u64> {
        // SAFETY: `tpacket_stats` is a plain C struct for which all-zero bytes are a valid value.
        let mut stats: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: the fd is open (owned by `self.fd`, alive for the call); `stats` is a valid,
        // exclusively borrowed `tpacket_stats` and `len` its exact size, so the kernel writes
        // at most that many bytes into it and the new length into `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats).cast::<libc::c_void>(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(u64::from(stats.tp_drops))
    }

    /// Writes one frame: `Ok(false)` when the interface's queue is full (the frame is dropped,
    /// as a full transmit queue would). An interface that is down fails with `ENETDOWN`.
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        match rustix::net::send(&self.fd, frame, SendFlags::DONTWAIT) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::NOBUFS) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eth_p_all_is_0x0003_in_network_order() {
        assert_eq!(ETH_P_ALL_BE.to_ne_bytes(), [0x00, 0x03]);
    }

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        for name in ["", "a-name-that-is-too-long", "nul\0", "a/b"] {
            let e = PacketSocket::open(name).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }

    /// A veth pair in the current namespace, removed on drop (`None` without root or `ip`).
    struct Veth(String, String);

    impl Veth {
        fn new() -> Option<Veth> {
            let n = std::process::id() % 10_000_000;
            let (a, b) = (format!("hps{n}a"), format!("hps{n}b"));
            let ok = std::process::Command::new("ip")
                .args(["link", "add", &a, "type", "veth", "peer", "name", &b])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return None;
            }
            let v = Veth(a, b);
            for n in [&v.0, &v.1] {
                let _ = std::process::Command::new("ip")
                    .args(["link", "set", n, "up"])
                    .status();
            }
            Some(v)
        }
    }

    impl Drop for Veth {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &self.0])
                .status();
        }
    }

    fn frame(seq: u32) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x88, 0xB5];
        f.extend_from_slice(&seq.to_be_bytes());
        f.resize(60, 0x5A);
        f
    }

    #[test]
    fn frames_cross_a_veth_and_an_unread_queue_counts_its_drops() {
        let Some(v) = Veth::new() else {
            eprintln!("SKIPPED: needs root and `ip` to make a veth pair");
            return;
        };
        let a = PacketSocket::open(&v.0).unwrap();
        let b = PacketSocket::open(&v.1).unwrap();
        assert_eq!(a.name(), v.0);
        assert!(a.ifindex() > 0);
        assert!(a.send(&frame(7)).unwrap());
        let mut buf = [0u8; 2048];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let got = loop {
            match b.recv(&mut buf).unwrap() {
                Some(n) if buf[12..14] == [0x88, 0xB5] => break n,
                Some(_) => {}
                None => {
                    assert!(std::time::Instant::now() < deadline, "frame never arrived");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        };
        assert_eq!(&buf[..got], &frame(7)[..]);
        // What `a` sent is not read back on `a` (PACKET_IGNORE_OUTGOING).
        while let Some(n) = a.recv(&mut buf).unwrap() {
            assert_ne!(&buf[..n], &frame(7)[..], "own frame read back");
        }
        // Never read: the kernel drops what does not fit the receive queue, and says so.
        assert_eq!(b.take_drops().unwrap(), 0);
        let mut sent = 0;
        for seq in 0..20_000 {
            if a.send(&frame(seq)).unwrap() {
                sent += 1;
            }
        }
        assert!(sent > 1000, "{sent}");
        let drops = b.take_drops().unwrap();
        let mut received = 0;
        while let Some(n) = b.recv(&mut buf).unwrap() {
            if n == 60 && buf[12..14] == [0x88, 0xB5] {
                received += 1;
            }
        }
        // The rest may have been dropped before the socket (the per-CPU backlog); the drops
        // may include a few of the new link's own frames (IPv6 neighbour discovery).
        assert!(
            received > 0 && received + drops <= sent + 64,
            "{received} + {drops} of {sent}"
        );
        let rmem: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_default")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if rmem <= 1 << 20 {
            // A default-sized queue holds a few hundred such frames: the kernel dropped some.
            assert!(drops > 0, "{drops} drops, {received} received of {sent}");
        }
        assert_eq!(b.take_drops().unwrap(), 0, "reset on read");
    }

    #[test]
    fn a_missing_interface_is_not_found_or_not_permitted() {
        // Without CAP_NET_RAW the socket itself is refused first.
        let e = PacketSocket::open("hacnosuch0").unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ),
            "{e}"
        );
    }
}

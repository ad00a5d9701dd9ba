//! Arbitrary bytes as a stream of vfio-user client messages to the server's session, in front
//! of a recording fake device (`hac_vfio_user::fake::FakeBackend`: a PCI function with BAR0,
//! BAR3, config space and 3 MSI-X vectors). Oracles beyond "no panic":
//!
//! * every message that did not ask for silence gets exactly one reply carrying its id and
//!   command, whose size field is its length; an error reply is a bare header with an errno; a
//!   region read's reply carries exactly the bytes asked for;
//! * a message that does not parse (short body, bad count, a reply sent as a command, an
//!   impossible size) is refused with an error and reaches the device not at all;
//! * the device is only called as the `Backend` contract promises (the fake records every
//!   violation): region accesses inside an announced region, and only for the region
//!   read/write just sent; vectors inside their index; DMA windows mapped without overlap and
//!   unmapped exactly as mapped; a `SET_IRQS` carrying a non-eventfd never reaches it;
//! * the limits hold: at most `max_dma_maps` windows and `max_dma_bytes` mapped (small here,
//!   so fuzzing reaches them), the device's mapped windows are the session's, and a window
//!   over the memory file is accepted only inside the file;
//! * when the client leaves, the device has no window and no eventfd left.
//!
//! Descriptors come with messages as a client would send them (bit 0 of the message id says
//! "with descriptors"): a `DMA_MAP` gets a sealed 8 KiB memfd, a `SET_IRQS` with eventfd data
//! gets one descriptor per vector, each a fresh eventfd or (id bit 1 + i) a socket whose
//! buffer is full.
#![no_main]

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

use hac_vfio_user::fake::{Call, FakeBackend};
use hac_vfio_user::wire::{self, Command, HEADER_LEN, Header, Request, flags};
use hac_vfio_user::{EventFd, Limits, Session};
use libfuzzer_sys::fuzz_target;

/// Size of the guest memory file every `DMA_MAP` carries.
const FILE_SIZE: u64 = 8192;

/// Limits small enough for fuzzing to reach.
const LIMITS: Limits = Limits {
    max_dma_maps: 6,
    max_dma_bytes: 2 * FILE_SIZE,
};

/// The guest memory file: a memfd with sealing allowed (QEMU's memory-backend-memfd).
fn memory_file() -> &'static OwnedFd {
    static FILE: OnceLock<OwnedFd> = OnceLock::new();
    FILE.get_or_init(|| {
        use rustix::fs::MemfdFlags;
        let fd = rustix::fs::memfd_create("guest", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .expect("memfd");
        rustix::fs::ftruncate(&fd, FILE_SIZE).expect("ftruncate");
        fd
    })
}

/// A socket whose send buffer is full (a write to it blocks): what a hostile client passes
/// off as an eventfd.
fn full_socket() -> &'static (UnixStream, UnixStream) {
    static PAIR: OnceLock<(UnixStream, UnixStream)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let (a, b) = UnixStream::pair().expect("socketpair");
        a.set_nonblocking(true).expect("nonblocking");
        while std::io::Write::write(&mut &a, &[0u8; 4096]).is_ok() {}
        a.set_nonblocking(false).expect("blocking");
        (a, b)
    })
}

fn le32(m: &[u8], at: usize) -> u32 {
    m.get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn le64(m: &[u8], at: usize) -> u64 {
    u64::from(le32(m, at)) | (u64::from(le32(m, at + 4)) << 32)
}

/// The descriptors a client would send with `message`, and whether one is not an eventfd.
fn descriptors(message: &[u8], h: &Header) -> (Vec<OwnedFd>, bool) {
    if h.id & 1 == 0 {
        return (Vec::new(), false);
    }
    let dup = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().expect("dup");
    match h.command {
        Command::DmaMap => (vec![dup(memory_file().as_fd())], false),
        Command::DeviceSetIrqs if le32(message, 20) & (1 << 2) != 0 => {
            let count = (le32(message, 32) as usize).min(wire::MAX_FDS);
            let mut foreign = false;
            let fds = (0..count)
                .map(|i| {
                    if h.id & (2 << i) != 0 {
                        foreign = true;
                        dup(full_socket().0.as_fd())
                    } else {
                        dup(EventFd::new().expect("eventfd").as_fd())
                    }
                })
                .collect();
            (fds, foreign)
        }
        _ => (Vec::new(), false),
    }
}

/// The device calls a request may cause: a region access only the one it asks for.
fn allowed(request: &Request<'_>, call: &Call) -> bool {
    match (request, call) {
        (
            Request::RegionRead {
                offset,
                region,
                count,
            },
            Call::RegionRead(r, o, n),
        ) => (r, o, *n) == (region, offset, *count as usize),
        (
            Request::RegionWrite {
                offset,
                region,
                data,
            },
            Call::RegionWrite(r, o, n),
        ) => (r, o, *n) == (region, offset, data.len()),
        (Request::DmaMap { .. }, Call::DmaMap(..)) => true,
        (Request::DmaUnmap { .. }, Call::DmaUnmap(..)) => true,
        (
            Request::DeviceSetIrqs { .. },
            Call::Assign(..)
            | Call::Unassign(..)
            | Call::DisableAll(..)
            | Call::Trigger(..)
            | Call::Mask(..),
        ) => true,
        (Request::DeviceReset, Call::Reset) => true,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut session = Session::with_limits("fuzz", FakeBackend::new(), LIMITS);
    // The stream is cut into messages by their size fields, as the socket reader does; an
    // impossible size ends the stream (the reader closes the connection).
    let mut rest = data;
    for _ in 0..64 {
        if rest.len() < HEADER_LEN {
            break;
        }
        let calls_before = session.backend().calls.len();
        let size = match Header::parse(rest) {
            Ok(h) => (h.size as usize).min(rest.len()),
            Err(_) => {
                let reply = session
                    .handle(&rest[..HEADER_LEN], Vec::new())
                    .expect("an error reply");
                let h = Header::parse(&reply).expect("the reply parses");
                assert_eq!(h.flags & flags::ERROR, flags::ERROR);
                assert_eq!(h.id, u16::from_le_bytes([rest[0], rest[1]]));
                assert_eq!(session.backend().calls.len(), calls_before);
                break;
            }
        };
        let mut message = rest[..size].to_vec();
        // The reader always hands over whole messages; fix the size field of a cut one.
        message[4..8].copy_from_slice(&(size as u32).to_le_bytes());
        rest = &rest[size..];
        let header = Header::parse(&message).expect("size fixed");
        let request = Request::parse(&header, &message);
        let (fds, foreign) = descriptors(&message, &header);
        let with_file = header.command == Command::DmaMap && !fds.is_empty();
        let errors_before = session.counters().errors;
        let answer = session.handle(&message, fds);

        // The device saw only what the contract allows, and only for this request.
        let backend = session.backend();
        assert!(
            backend.violations.is_empty(),
            "contract broken: {:?}",
            backend.violations
        );
        let new_calls = &backend.calls[calls_before..];
        match &request {
            Err(e) => assert!(new_calls.is_empty(), "{e}: yet the device was called"),
            Ok(r) => {
                for c in new_calls {
                    assert!(allowed(r, c), "{r:?} caused {c:?}");
                }
            }
        }
        if foreign && header.command == Command::DeviceSetIrqs {
            // Counted as an error even when the client asked for no reply.
            assert_eq!(
                session.counters().errors,
                errors_before + 1,
                "a socket accepted as an MSI-X eventfd"
            );
            assert!(
                !new_calls.iter().any(|c| matches!(c, Call::Assign(..))),
                "a socket reached the device as an eventfd"
            );
        }

        // Limits, and the device's windows are the session's.
        let (windows, bytes) = session.dma_windows();
        assert!(windows <= LIMITS.max_dma_maps, "{windows} DMA windows");
        assert!(bytes <= LIMITS.max_dma_bytes, "{bytes} bytes mapped");
        let mapped = session.backend().mapped();
        assert_eq!(mapped.iter().map(|w| w.size).sum::<u64>(), bytes);
        assert!(mapped.len() <= windows);
        for w in &mapped {
            assert!(session.is_mapped(*w), "{w:?} mapped in the device only");
        }

        let succeeded = answer
            .as_ref()
            .and_then(|r| Header::parse(r).ok())
            .is_some_and(|h| h.flags & flags::ERROR == 0);
        if request.is_err() {
            assert!(!succeeded, "malformed {header:?} accepted");
        }
        if with_file && succeeded {
            let (offset, size) = (le64(&message, 24), le64(&message, 40));
            assert!(
                offset.checked_add(size).is_some_and(|end| end <= FILE_SIZE),
                "DMA window {offset:#x}+{size:#x} accepted over an {FILE_SIZE}-byte file"
            );
        }
        match answer {
            None => assert!(header.no_reply(), "a command without reply: {header:?}"),
            Some(reply) => {
                let h = Header::parse(&reply).expect("the reply parses");
                assert_eq!(h.id, header.id);
                assert_eq!(h.command, header.command);
                assert_eq!(h.size as usize, reply.len());
                assert_eq!(h.flags & flags::TYPE_MASK, flags::TYPE_REPLY);
                if h.flags & flags::ERROR != 0 {
                    assert_eq!(reply.len(), HEADER_LEN);
                    assert_ne!(h.error, 0);
                } else if header.command == Command::RegionRead {
                    let count = le32(&message, 28);
                    assert_eq!(reply.len(), HEADER_LEN + 16 + count as usize);
                }
            }
        }
    }
    // The client leaves: nothing of it stays in the device.
    session.disconnect();
    let backend = session.backend();
    assert!(backend.violations.is_empty(), "{:?}", backend.violations);
    assert!(backend.mapped().is_empty(), "windows left after disconnect");
    assert!(
        backend.wired(2).is_empty(),
        "eventfds left after disconnect"
    );
    assert_eq!(session.dma_windows(), (0, 0));
});

//! The session and the socket server driven with the recording fake device: the checks in
//! front of the backend, the DMA limits, the `SET_IRQS` grammar, one reply per request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use hw_common::Iova;

use crate::fake::{Call, FakeBackend, MSIX};
use crate::wire::vfio::{DMA_UNMAP_ALL, irq_set};
use crate::wire::{Command, Header, Payload, errno, flags};
use crate::{DeviceError, DmaWindow, EventFd, Limits, Server, Session};

fn session() -> Session<FakeBackend> {
    Session::new("fake", FakeBackend::new())
}

/// Sends one request; returns the reply header and body (a reply is required).
fn ask(
    s: &mut Session<FakeBackend>,
    command: Command,
    body: &[u8],
    fds: Vec<OwnedFd>,
) -> (Header, Vec<u8>) {
    let r = s
        .handle(&Header::request(9, command, body), fds)
        .expect("a reply");
    let h = Header::parse(&r).unwrap();
    assert_eq!((h.id, h.command, h.size as usize), (9, command, r.len()));
    (h, r[16..].to_vec())
}

fn refused(h: &Header) -> u32 {
    assert_eq!(h.flags, flags::TYPE_REPLY | flags::ERROR, "{h:?}");
    h.error
}

fn ok(h: &Header) {
    assert_eq!(h.flags, flags::TYPE_REPLY, "{h:?}");
}

fn memfd(size: u64) -> OwnedFd {
    use rustix::fs::MemfdFlags;
    let fd = rustix::fs::memfd_create("hac-test", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    fd
}

fn map_body(address: u64, size: u64) -> Vec<u8> {
    Payload::default()
        .u32(32)
        .u32(3)
        .u64(0)
        .u64(address)
        .u64(size)
        .0
}

fn unmap_body(flags: u32, address: u64, size: u64) -> Vec<u8> {
    Payload::default()
        .u32(24)
        .u32(flags)
        .u64(address)
        .u64(size)
        .0
}

fn window(address: u64, size: u64) -> DmaWindow {
    DmaWindow {
        address: Iova(address),
        size,
    }
}

#[test]
fn version_announces_the_limits() {
    let mut s = Session::with_limits(
        "fake",
        FakeBackend::new(),
        Limits {
            max_dma_maps: 7,
            max_dma_bytes: 1 << 20,
        },
    );
    let body = [&[0u8, 0, 0, 0][..], b"{}\0"].concat();
    let (h, reply) = ask(&mut s, Command::Version, &body, Vec::new());
    ok(&h);
    assert_eq!(&reply[..4], &[0, 0, 0, 0]);
    let caps = std::str::from_utf8(&reply[4..reply.len() - 1]).unwrap();
    assert_eq!(
        caps,
        r#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":7}}"#
    );
    assert_eq!(reply.last(), Some(&0));
    let (h, _) = ask(
        &mut s,
        Command::Version,
        &Payload::default().u16(1).u16(0).0,
        Vec::new(),
    );
    assert_eq!(refused(&h), errno::ENOTSUP);
}

#[test]
fn info_answers_come_from_the_backend() {
    let mut s = session();
    let (h, info) = ask(
        &mut s,
        Command::DeviceGetInfo,
        &Payload::default().u32(16).0,
        Vec::new(),
    );
    ok(&h);
    assert_eq!(info, Payload::default().u32(16).u32(3).u32(9).u32(5).0);
    let region = |s: &mut Session<FakeBackend>, i: u32| {
        ask(
            s,
            Command::DeviceGetRegionInfo,
            &Payload::default().u32(32).u32(0).u32(i).0,
            Vec::new(),
        )
    };
    let (h, r7) = region(&mut s, 7);
    ok(&h);
    assert_eq!(
        r7,
        Payload::default()
            .u32(32)
            .u32(3)
            .u32(7)
            .u32(0)
            .u64(256)
            .u64(0)
            .0
    );
    let (_, r1) = region(&mut s, 1);
    assert_eq!(&r1[4..8], &[0; 4], "an absent region has no flags");
    assert_eq!(refused(&region(&mut s, 9).0), errno::EINVAL);
    let irq = |s: &mut Session<FakeBackend>, i: u32| {
        ask(
            s,
            Command::DeviceGetIrqInfo,
            &Payload::default().u32(16).u32(0).u32(i).0,
            Vec::new(),
        )
    };
    let (_, msix) = irq(&mut s, MSIX);
    assert_eq!(msix, Payload::default().u32(16).u32(9).u32(2).u32(3).0);
    assert_eq!(refused(&irq(&mut s, 5).0), errno::EINVAL);
    assert!(s.backend().calls.is_empty());
}

#[test]
fn region_accesses_outside_a_region_never_reach_the_backend() {
    let mut s = session();
    let read = |offset: u64, region: u32, count: u32| {
        Payload::default().u64(offset).u32(region).u32(count).0
    };
    for body in [
        read(0, 1, 4),        // absent region
        read(0, 99, 4),       // no such region
        read(250, 7, 16),     // past the end of config space
        read(u64::MAX, 0, 4), // offset overflow
    ] {
        assert_eq!(
            refused(&ask(&mut s, Command::RegionRead, &body, Vec::new()).0),
            errno::EINVAL
        );
    }
    let write = Payload::default().u64(16 * 1024 - 2).u32(0).u32(4).u32(7).0;
    assert_eq!(
        refused(&ask(&mut s, Command::RegionWrite, &write, Vec::new()).0),
        errno::EINVAL
    );
    assert!(s.backend().calls.is_empty(), "{:?}", s.backend().calls);
    // Inside: forwarded, and the data goes round.
    let write = Payload::default()
        .u64(0x3C)
        .u32(7)
        .u32(4)
        .u32(0xA5A5_0102)
        .0;
    ok(&ask(&mut s, Command::RegionWrite, &write, Vec::new()).0);
    let (h, back) = ask(&mut s, Command::RegionRead, &read(0x3C, 7, 4), Vec::new());
    ok(&h);
    assert_eq!(&back[16..], &0xA5A5_0102u32.to_le_bytes());
    assert_eq!(
        s.backend().calls,
        vec![Call::RegionWrite(7, 0x3C, 4), Call::RegionRead(7, 0x3C, 4)]
    );
    assert_eq!(
        (s.counters().region_reads, s.counters().region_writes),
        (5, 2)
    );
    assert!(s.backend().violations.is_empty());
}

#[test]
fn dma_windows_respect_the_limits_and_reach_the_backend_only_when_mapped() {
    let mut s = Session::with_limits(
        "fake",
        FakeBackend::new(),
        Limits {
            max_dma_maps: 4,
            max_dma_bytes: 0x2000,
        },
    );
    let file = memfd(0x4000);
    let fd = || vec![file.try_clone().unwrap()];
    ok(&ask(&mut s, Command::DmaMap, &map_body(0x10000, 0x1000), fd()).0);
    ok(&ask(&mut s, Command::DmaMap, &map_body(0x20000, 0x1000), fd()).0);
    // Bytes: a third mapped page is over 0x2000.
    assert_eq!(
        refused(&ask(&mut s, Command::DmaMap, &map_body(0x30000, 0x1000), fd()).0),
        errno::ENOSPC
    );
    // Overlap (with a mapped window): EEXIST, not counted as a limit refusal.
    assert_eq!(
        refused(
            &ask(
                &mut s,
                Command::DmaMap,
                &map_body(0x10800, 0x1000),
                Vec::new()
            )
            .0
        ),
        errno::EEXIST
    );
    // Count: windows without a descriptor count too.
    ok(&ask(
        &mut s,
        Command::DmaMap,
        &map_body(0x40000, 0x1000),
        Vec::new(),
    )
    .0);
    ok(&ask(
        &mut s,
        Command::DmaMap,
        &map_body(0x50000, 0x1000),
        Vec::new(),
    )
    .0);
    assert_eq!(
        refused(
            &ask(
                &mut s,
                Command::DmaMap,
                &map_body(0x60000, 0x1000),
                Vec::new()
            )
            .0
        ),
        errno::ENOSPC
    );
    // Zero size and two descriptors are malformed.
    assert_eq!(
        refused(&ask(&mut s, Command::DmaMap, &map_body(0x70000, 0), Vec::new()).0),
        errno::EINVAL
    );
    let two = vec![file.try_clone().unwrap(), file.try_clone().unwrap()];
    assert_eq!(
        refused(&ask(&mut s, Command::DmaMap, &map_body(0x70000, 0x1000), two).0),
        errno::EINVAL
    );
    assert_eq!(s.dma_windows(), (4, 0x2000));
    let c = s.counters();
    assert_eq!(
        (c.dma_maps, c.dma_maps_without_fd, c.dma_maps_refused),
        (2, 2, 2)
    );
    assert_eq!(
        s.backend().mapped(),
        vec![window(0x10000, 0x1000), window(0x20000, 0x1000)]
    );
    assert!(s.is_mapped(window(0x10800, 0x800)));
    assert!(!s.is_mapped(window(0x40000, 0x10)));
    // Unmap: a part of a window is refused; an unbacked window never reaches the backend.
    assert_eq!(
        refused(
            &ask(
                &mut s,
                Command::DmaUnmap,
                &unmap_body(0, 0x10000, 0x800),
                Vec::new()
            )
            .0
        ),
        errno::EINVAL
    );
    let (h, echo) = ask(
        &mut s,
        Command::DmaUnmap,
        &unmap_body(0, 0x40000, 0x1000),
        Vec::new(),
    );
    ok(&h);
    assert_eq!(echo, unmap_body(0, 0x40000, 0x1000));
    ok(&ask(
        &mut s,
        Command::DmaUnmap,
        &unmap_body(0, 0x10000, 0x1000),
        Vec::new(),
    )
    .0);
    // The client leaves: the device is told first, then every mapped window goes.
    s.disconnect();
    let calls = &s.backend().calls;
    assert_eq!(
        calls[calls.len() - 3..],
        [
            Call::DmaUnmap(window(0x10000, 0x1000)),
            Call::Disconnect,
            Call::DmaUnmap(window(0x20000, 0x1000)),
        ]
    );
    assert_eq!(s.dma_windows(), (0, 0));
    assert_eq!(s.counters().dma_unmaps, 4);
    assert!(s.backend().mapped().is_empty());
    assert!(
        s.backend().violations.is_empty(),
        "{:?}",
        s.backend().violations
    );
    // UNMAP_ALL empties everything too.
    ok(&ask(&mut s, Command::DmaMap, &map_body(0x10000, 0x1000), fd()).0);
    ok(&ask(
        &mut s,
        Command::DmaUnmap,
        &unmap_body(DMA_UNMAP_ALL, 0, 0),
        Vec::new(),
    )
    .0);
    assert_eq!(s.dma_windows(), (0, 0));
    assert!(s.backend().mapped().is_empty());
}

#[test]
fn a_window_past_its_file_or_refused_by_the_device_leaves_nothing() {
    let mut s = session();
    let file = memfd(0x1000);
    let h = ask(
        &mut s,
        Command::DmaMap,
        &map_body(0x10000, 0x2000),
        vec![file.try_clone().unwrap()],
    )
    .0;
    assert_eq!(refused(&h), errno::EINVAL);
    s.backend_mut().refuse_dma = Some(DeviceError::Exists);
    let h = ask(
        &mut s,
        Command::DmaMap,
        &map_body(0x10000, 0x1000),
        vec![file.try_clone().unwrap()],
    )
    .0;
    assert_eq!(refused(&h), errno::EEXIST);
    assert_eq!(s.dma_windows(), (0, 0));
    assert_eq!(s.counters().dma_maps, 0);
    assert_eq!(
        s.backend().calls,
        vec![Call::DmaMap(window(0x10000, 0x1000), 0)]
    );
}

fn set_irqs(
    s: &mut Session<FakeBackend>,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
    data: &[u8],
    fds: Vec<OwnedFd>,
) -> Header {
    let body = Payload::default()
        .u32(20)
        .u32(flags)
        .u32(index)
        .u32(start)
        .u32(count)
        .bytes(data)
        .0;
    ask(s, Command::DeviceSetIrqs, &body, fds).0
}

fn dup(e: &EventFd) -> OwnedFd {
    e.as_fd().try_clone_to_owned().unwrap()
}

#[test]
fn set_irqs_hands_only_checked_eventfds_and_vectors_to_the_backend() {
    use irq_set::{ACTION_MASK, ACTION_TRIGGER, DATA_BOOL, DATA_EVENTFD, DATA_NONE};
    let mut s = session();
    let (a, _b) = UnixStream::pair().unwrap();
    let ev = [EventFd::new().unwrap(), EventFd::new().unwrap()];
    // A socket among eventfds: nothing assigned.
    let h = set_irqs(
        &mut s,
        DATA_EVENTFD | ACTION_TRIGGER,
        MSIX,
        1,
        2,
        &[],
        vec![dup(&ev[0]), OwnedFd::from(a)],
    );
    assert_eq!(refused(&h), errno::EINVAL);
    assert_eq!(s.counters().irq_fds_refused, 1);
    assert!(s.backend().calls.is_empty());
    // Bad grammar: two actions, two data kinds, a range past the vectors, a count without fds
    // to match, vectors on an index that has none.
    for (flags, index, start, count) in [
        (DATA_NONE | ACTION_TRIGGER | ACTION_MASK, MSIX, 0, 1),
        (DATA_NONE | DATA_BOOL | ACTION_TRIGGER, MSIX, 0, 1),
        (DATA_NONE | ACTION_TRIGGER, MSIX, 2, 2),
        (DATA_NONE | ACTION_TRIGGER, MSIX, u32::MAX, 2),
        (DATA_NONE | ACTION_TRIGGER, 0, 0, 1),
        (DATA_NONE | ACTION_TRIGGER, 5, 0, 0),
    ] {
        assert_eq!(
            refused(&set_irqs(
                &mut s,
                flags,
                index,
                start,
                count,
                &[],
                Vec::new()
            )),
            errno::EINVAL
        );
    }
    let h = set_irqs(
        &mut s,
        DATA_EVENTFD | ACTION_TRIGGER,
        MSIX,
        0,
        2,
        &[],
        vec![dup(&ev[0])],
    );
    assert_eq!(refused(&h), errno::EINVAL, "one descriptor for two vectors");
    assert!(s.backend().calls.is_empty());
    // Good ones.
    ok(&set_irqs(
        &mut s,
        DATA_EVENTFD | ACTION_TRIGGER,
        MSIX,
        1,
        2,
        &[],
        vec![dup(&ev[0]), dup(&ev[1])],
    ));
    ok(&set_irqs(
        &mut s,
        DATA_NONE | ACTION_TRIGGER,
        MSIX,
        1,
        1,
        &[],
        Vec::new(),
    ));
    assert_eq!(ev[0].take().unwrap(), 1);
    ok(&set_irqs(
        &mut s,
        DATA_BOOL | ACTION_TRIGGER,
        MSIX,
        1,
        2,
        &[0, 1],
        Vec::new(),
    ));
    assert_eq!(ev[1].take().unwrap(), 1);
    assert_eq!(
        refused(&set_irqs(
            &mut s,
            DATA_BOOL | ACTION_TRIGGER,
            MSIX,
            1,
            2,
            &[1],
            Vec::new()
        )),
        errno::EINVAL
    );
    ok(&set_irqs(
        &mut s,
        DATA_NONE | ACTION_MASK,
        MSIX,
        0,
        1,
        &[],
        Vec::new(),
    ));
    ok(&set_irqs(
        &mut s,
        DATA_EVENTFD | ACTION_TRIGGER,
        MSIX,
        2,
        1,
        &[],
        Vec::new(),
    ));
    ok(&set_irqs(
        &mut s,
        DATA_NONE | ACTION_TRIGGER,
        0,
        0,
        0,
        &[],
        Vec::new(),
    ));
    ok(&set_irqs(
        &mut s,
        DATA_NONE | ACTION_TRIGGER,
        MSIX,
        0,
        0,
        &[],
        Vec::new(),
    ));
    assert_eq!(
        s.backend().calls,
        vec![
            Call::Assign(MSIX, 1, 2),
            Call::Trigger(MSIX, 1),
            Call::Trigger(MSIX, 2),
            Call::Mask(MSIX, 0, true),
            Call::Unassign(MSIX, 2, 1),
            Call::DisableAll(MSIX),
        ]
    );
    assert!(s.backend().wired(MSIX).is_empty());
    assert!(
        s.backend().violations.is_empty(),
        "{:?}",
        s.backend().violations
    );
}

#[test]
fn every_command_gets_one_reply_with_its_id_unless_it_asked_for_none() {
    let mut s = session();
    for (id, raw) in (0u16..20).zip(0u16..) {
        let m = Header::request(id, Command::from_raw(raw), &[0; 40]);
        let r = s.handle(&m, Vec::new()).expect("a reply");
        let h = Header::parse(&r).unwrap();
        assert_eq!((h.id, h.command), (id, Command::from_raw(raw)));
    }
    let mut m = Header::request(3, Command::DeviceReset, &[]);
    m[8] = flags::NO_REPLY as u8;
    assert!(s.handle(&m, Vec::new()).is_none());
    assert_eq!(s.counters().resets, 2);
    // Shorter than a header, an impossible size: error replies.
    assert_eq!(
        refused(&Header::parse(&s.handle(&[1, 2, 3], Vec::new()).unwrap()).unwrap()),
        errno::EINVAL
    );
    let mut huge = Header::request(4, Command::RegionRead, &[]);
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let h = Header::parse(&s.handle(&huge, Vec::new()).unwrap()).unwrap();
    assert_eq!((h.id, refused(&h)), (4, errno::EINVAL));
}

fn read_reply(c: &mut UnixStream) -> (Header, Vec<u8>) {
    let mut h = [0u8; 16];
    c.read_exact(&mut h).unwrap();
    let header = Header::parse(&h).unwrap();
    let mut body = vec![0u8; header.size as usize - 16];
    c.read_exact(&mut body).unwrap();
    (header, body)
}

#[test]
fn a_client_over_the_socket_survives_garbage_and_the_next_one_is_served() {
    let (server, dir) = socket_server("garbage", session());
    let path = server.path().to_path_buf();
    let mut c = UnixStream::connect(server.path()).unwrap();
    c.write_all(&Header::request(1, Command::Unknown(77), &[9; 5]))
        .unwrap();
    let (h, _) = read_reply(&mut c);
    assert_eq!((h.id, refused(&h)), (1, errno::ENOTSUP));
    // A DMA_MAP with its descriptor, through SCM_RIGHTS.
    let file = memfd(0x1000);
    let m = Header::request(2, Command::DmaMap, &map_body(0x1000, 0x1000));
    let fds = [file.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)));
    rustix::net::sendmsg(
        &c,
        &[std::io::IoSlice::new(&m)],
        &mut control,
        rustix::net::SendFlags::empty(),
    )
    .unwrap();
    let (h, _) = read_reply(&mut c);
    assert_eq!(h.id, 2);
    ok(&h);
    // An impossible size: error reply, then the server closes this connection...
    let mut bad = Header::request(3, Command::RegionRead, &[]);
    bad[4..8].copy_from_slice(&3u32.to_le_bytes());
    c.write_all(&bad).unwrap();
    assert_eq!(refused(&read_reply(&mut c).0), errno::EINVAL);
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // ...and accepts the next client.
    let mut c2 = UnixStream::connect(server.path()).unwrap();
    let r = Payload::default().u64(0).u32(7).u32(4).0;
    c2.write_all(&Header::request(5, Command::RegionRead, &r))
        .unwrap();
    assert_eq!(read_reply(&mut c2).0.id, 5);
    // The counters are published before each reply is sent.
    let counters = server.counters();
    assert_eq!(
        (
            counters.messages,
            counters.errors,
            counters.dma_maps,
            counters.region_reads
        ),
        (4, 2, 1, 1)
    );
    drop(c2);
    drop(server);
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_last_error_reply_reaches_a_client_that_reads_late() {
    // A client that sends many requests before it reads anything fills its socket with
    // replies; the unreadable message that ends the connection must still get its error reply
    // once the client reads, not be dropped because the buffer was full at that moment.
    let (server, dir) = socket_server("late", session());
    let mut c = UnixStream::connect(server.path()).unwrap();
    const N: u16 = 40_000; // 640 KB of replies, past a Unix socket's buffer
    let mut burst = Vec::new();
    for id in 0..N {
        burst.extend_from_slice(&Header::request(id, Command::Unknown(77), &[]));
    }
    let mut bad = Header::request(N, Command::RegionRead, &[]);
    bad[4..8].copy_from_slice(&3u32.to_le_bytes());
    burst.extend_from_slice(&bad);
    c.write_all(&burst).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut ids = Vec::new();
    let mut last = None;
    loop {
        let mut h = [0u8; 16];
        if c.read_exact(&mut h).is_err() {
            break;
        }
        let header = Header::parse(&h).unwrap();
        let mut body = vec![0u8; header.size as usize - 16];
        c.read_exact(&mut body).unwrap();
        ids.push(header.id);
        last = Some(refused(&header));
    }
    assert_eq!(ids.len(), usize::from(N) + 1, "every reply arrived");
    assert!(ids.iter().copied().eq(0..=N), "in order");
    assert_eq!(last, Some(errno::EINVAL), "the error reply came last");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_that_never_reads_is_disconnected_at_the_unsent_bound_and_the_next_one_is_served() {
    // 16 KiB region reads whose replies the client never reads: the daemon would hold them
    // all; past 64 MiB unsent it ends the connection instead (its memory stays bounded).
    let (server, dir) = socket_server("unread", session());
    let mut c = UnixStream::connect(server.path()).unwrap();
    const N: u16 = 6_000; // 94 MiB of replies
    let read = Payload::default().u64(0).u32(0).u32(16 << 10).0;
    let mut sent = 0u32;
    for id in 0..N {
        if c.write_all(&Header::request(id, Command::RegionRead, &read))
            .is_err()
        {
            break; // the server already ended the connection
        }
        sent += 1;
    }
    // A server that kept the connection would answer everything and wait for more: the
    // timeout ends the reading then (and the count below fails the test).
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut replies = 0u32;
    loop {
        let mut h = [0u8; 16];
        if c.read_exact(&mut h).is_err() {
            break;
        }
        let header = Header::parse(&h).unwrap();
        let mut body = vec![0u8; header.size as usize - 16];
        if c.read_exact(&mut body).is_err() {
            break;
        }
        replies += 1;
    }
    assert!(
        sent > 4_000,
        "enough requests to pass the bound went out ({sent})"
    );
    assert!(
        replies < 4_100,
        "{replies} replies: the connection should have ended at 64 MiB unsent"
    );
    let mut c2 = UnixStream::connect(server.path()).unwrap();
    let r = Payload::default().u64(0).u32(7).u32(4).0;
    c2.write_all(&Header::request(1, Command::RegionRead, &r))
        .unwrap();
    assert_eq!(read_reply(&mut c2).0.id, 1, "the next client is served");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server of the fake whose device writes go through `queue` (client mode), and its socket
/// directory.
fn client_mode_server(
    name: &str,
    queue: &std::sync::Arc<crate::DmaWriteQueue>,
) -> (Server, std::path::PathBuf) {
    let mut s = session();
    s.set_client_dma(queue.clone());
    socket_server(name, s)
}

/// A server of `session` on a socket in its own directory (named after `name` and this
/// process), and that directory.
fn socket_server(name: &str, session: Session<FakeBackend>) -> (Server, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("hac-vfio-user-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fake.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    (Server::spawn(&path, listener, session).unwrap(), dir)
}

/// Reads messages until the reply to `id`; returns the `DMA_WRITE`s seen on the way.
fn until_reply(c: &mut UnixStream, id: u16) -> (Header, Vec<(u16, u64, Vec<u8>)>) {
    let mut writes = Vec::new();
    loop {
        let (h, body) = read_reply(c);
        if h.command == Command::DmaWrite && h.flags & flags::TYPE_MASK == flags::TYPE_COMMAND {
            let mut m = vec![0u8; 16];
            h.emit(&mut m);
            m.extend_from_slice(&body);
            let (wid, a, d) = crate::client_dma::parse_dma_write(&m).unwrap();
            writes.push((wid, a, d.to_vec()));
            continue;
        }
        if h.id == id {
            return (h, writes);
        }
    }
}

#[test]
fn the_connection_answers_region_reads_while_dma_writes_wait_for_their_replies() {
    let queue = crate::DmaWriteQueue::new(crate::ClientDmaLimits::default()).unwrap();
    let (server, dir) = client_mode_server("nodeadlock", &queue);
    let mut c = UnixStream::connect(server.path()).unwrap();
    // The version first (the client takes 4 KiB a message).
    let caps = br#"{"capabilities":{"max_data_xfer_size":4096}}"#;
    let mut v = Payload::default().u16(0).u16(0).bytes(caps).0;
    v.push(0);
    c.write_all(&Header::request(1, Command::Version, &v))
        .unwrap();
    assert_eq!(until_reply(&mut c, 1).0.id, 1);
    // The device writes 10 KiB, then raises an interrupt.
    let irq = std::sync::Arc::new(EventFd::new().unwrap());
    assert!(queue.write(0x10_0000, &[0x5A; 10 << 10]));
    assert!(queue.irq(0, irq.clone()));
    // The client answers none of them and reads a register: the answer comes anyway.
    let r = Payload::default().u64(0).u32(7).u32(4).0;
    c.write_all(&Header::request(2, Command::RegionRead, &r))
        .unwrap();
    let (h, mut writes) = until_reply(&mut c, 2);
    ok(&h);
    // Three DMA_WRITEs (4 + 4 + 2 KiB), in order, and no interrupt yet.
    while writes.len() < 3 {
        c.write_all(&Header::request(3, Command::RegionRead, &r))
            .unwrap();
        writes.extend(until_reply(&mut c, 3).1);
    }
    let got: Vec<_> = writes.iter().map(|(_, a, d)| (*a, d.len())).collect();
    assert_eq!(
        got,
        vec![(0x10_0000, 4096), (0x10_1000, 4096), (0x10_2000, 2048)]
    );
    assert_eq!(
        irq.take().unwrap(),
        0,
        "no interrupt before the writes are applied"
    );
    // Acknowledge the last two, then the first: the interrupt follows the last ack.
    for (id, _, _) in writes.iter().skip(1) {
        c.write_all(&crate::client_dma::dma_write_reply(*id, None))
            .unwrap();
    }
    c.write_all(&Header::request(4, Command::RegionRead, &r))
        .unwrap();
    until_reply(&mut c, 4);
    assert_eq!(
        irq.take().unwrap(),
        0,
        "the first write is still unacknowledged"
    );
    c.write_all(&crate::client_dma::dma_write_reply(writes[0].0, None))
        .unwrap();
    let signalled =
        hac_sys::poll_readable(&[irq.as_ref()], Some(std::time::Duration::from_secs(5))).unwrap();
    assert_eq!(signalled, 1);
    let q = queue.counters();
    assert_eq!(
        (q.dma_writes_sent, q.dma_writes_acked, q.irqs_deferred),
        (3, 3, 1)
    );
    assert_eq!(queue.pending_bytes(), 0);
    drop(c);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_that_never_replies_is_disconnected_when_the_queue_overflows() {
    let queue = crate::DmaWriteQueue::new(crate::ClientDmaLimits {
        max_items: 4,
        max_bytes: 1 << 20,
    })
    .unwrap();
    let (server, dir) = client_mode_server("overflow", &queue);
    let mut c = UnixStream::connect(server.path()).unwrap();
    let r = Payload::default().u64(0).u32(7).u32(4).0;
    c.write_all(&Header::request(1, Command::RegionRead, &r))
        .unwrap();
    until_reply(&mut c, 1);
    // The device keeps writing; the client reads but never replies.
    let mut refused_at = None;
    for i in 0..1000u64 {
        if !queue.write(i * 64, &[1; 64]) {
            refused_at = Some(i);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(refused_at.is_some_and(|i| i >= 4), "{refused_at:?}");
    // The server ends the connection (fail closed): the client reads to the end.
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    let q = queue.counters();
    assert_eq!(q.dma_write_overflows, 1);
    assert_eq!(q.dma_writes_acked, 0);
    // Everything is released once the connection is gone; the next client starts afresh.
    let mut c2 = UnixStream::connect(server.path()).unwrap();
    c2.write_all(&Header::request(2, Command::RegionRead, &r))
        .unwrap();
    until_reply(&mut c2, 2);
    assert!(!queue.failed());
    assert_eq!(queue.pending_bytes(), 0);
    assert!(
        server.counters().resets == 0,
        "disconnect is the backend's, not a DEVICE_RESET"
    );
    drop(c2);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cost of client mode over the socket (not a check; `cargo test --release -p
/// hac-vfio-user measure_client_mode -- --ignored --nocapture`): a client that applies each
/// `DMA_WRITE` to its RAM and replies at once, the device writing a 1514-byte frame and a
/// 16-byte descriptor and raising an interrupt per frame. Prints the frames per second and
/// the time from the first write of a frame to its interrupt.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_client_mode() {
    let queue = crate::DmaWriteQueue::new(crate::ClientDmaLimits::default()).unwrap();
    let (server, dir) = client_mode_server("measure", &queue);
    let mut c = UnixStream::connect(server.path()).unwrap();
    let end = c.try_clone().unwrap();
    let client = std::thread::spawn(move || {
        let mut ram = vec![0u8; 1 << 20];
        loop {
            let mut h = [0u8; 16];
            if c.read_exact(&mut h).is_err() {
                return;
            }
            let header = Header::parse(&h).unwrap();
            let mut m = h.to_vec();
            m.resize(header.size as usize, 0);
            c.read_exact(&mut m[16..]).unwrap();
            let (id, a, d) = crate::client_dma::parse_dma_write(&m).unwrap();
            let a = a as usize % (ram.len() - d.len());
            ram[a..a + d.len()].copy_from_slice(d);
            if c.write_all(&crate::client_dma::dma_write_reply(id, None))
                .is_err()
            {
                return;
            }
        }
    });
    let irq = std::sync::Arc::new(EventFd::new().unwrap());
    let frame = [0x5Au8; 1514];
    // Latency: one frame at a time.
    let n = 2000;
    let t = std::time::Instant::now();
    for i in 0..n {
        queue.write((i % 64) * 2048, &frame);
        queue.write(0x8_0000 + (i % 64) * 16, &[1; 16]);
        queue.irq(0, irq.clone());
        hac_sys::poll_readable(&[irq.as_ref()], Some(std::time::Duration::from_secs(5))).unwrap();
        irq.take().unwrap();
    }
    let per_frame = t.elapsed() / n as u32;
    // Throughput: the device writes as fast as the queue takes them.
    let n = 20_000;
    let t = std::time::Instant::now();
    let mut sent = 0;
    while sent < n {
        let c = queue.counters();
        if c.dma_writes_queued - c.dma_writes_acked < 1000 {
            queue.write((sent % 64) * 2048, &frame);
            queue.write(0x8_0000 + (sent % 64) * 16, &[1; 16]);
            queue.irq(0, irq.clone());
            sent += 1;
        } else {
            assert!(!queue.failed(), "{:?}", queue.counters());
            std::thread::yield_now();
        }
    }
    while queue.pending_bytes() > 0 || queue.counters().dma_writes_acked < 2 * (n + 2000) {
        assert!(!queue.failed(), "{:?}", queue.counters());
        std::thread::yield_now();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "client mode: {per_frame:?} from a frame's first write to its interrupt (one at a time); {rate:.0} frames/s ({:.0} Mbit/s of 1514-byte frames) streaming",
        rate * 1514.0 * 8.0 / 1e6
    );
    assert_eq!(queue.counters().dma_write_overflows, 0);
    end.shutdown(std::net::Shutdown::Both).unwrap();
    let _ = client.join();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Arbitrary bytes as a stream of vfio-user client messages to a VF endpoint on the model (PF
//! agent running, VFs enabled): the server never panics, answers every message that did not ask
//! for silence with exactly one reply carrying the same id and command, whose size field is its
//! length, and an error reply is a bare header. A region read's reply carries exactly the bytes
//! asked for. The model's PF is untouched by anything the VF's client sends (config space of
//! function 0 compares equal before and after).
//!
//! Descriptors come with messages as a client would send them (bit 0 of the message id says
//! "with descriptors"): a `DMA_MAP` gets a sealed 8 KiB memfd, a `SET_IRQS` with eventfd data
//! gets one descriptor per vector, each a fresh eventfd or (id bit 1 + i) a socket whose
//! buffer is full. Oracles: a window over the file is accepted only if it lies inside the
//! file; the windows stay within `MAX_DMA_MAPS` and `MAX_DMA_BYTES`, and the mapped bytes
//! within windows × file size; a `SET_IRQS` carrying a non-eventfd is refused; at the end the
//! VF raises every vector, which must return (a blocking signal would hang: a timeout).
#![no_main]

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

use hac_driver::model::Model;
use hac_driver::pf::PfConfig;
use hac_driver::vfio::EventFd;
use hac_utility::vfio_user::endpoint::{IrqRoutes, MAX_DMA_BYTES, MAX_DMA_MAPS, VfEndpoint};
use hac_utility::vfio_user::wire::{Command, HEADER_LEN, Header, flags};
use igb_hw::VfIndex;
use libfuzzer_sys::fuzz_target;
use igb_model::{FunctionId, NicConfig};

fn pf_config(model: &Model) -> Vec<u8> {
    let mut out = vec![0u8; 0x200];
    for (i, c) in out.chunks_mut(4).enumerate() {
        model.nic().config_read(FunctionId::Pf, (4 * i) as u16, c);
    }
    out
}

/// Size of the guest memory file every `DMA_MAP` carries.
const FILE_SIZE: u64 = 8192;

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
            let count = (le32(message, 32) as usize).min(hac_utility::vfio_user::wire::MAX_FDS);
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

fuzz_target!(|data: &[u8]| {
    let model = Model::new(NicConfig::default());
    let Ok(agent) = model.start_pf_agent(
        PfConfig {
            num_vfs: 2,
            ..PfConfig::default()
        },
        &[None, None],
    ) else {
        return;
    };
    let routes = IrqRoutes::new();
    routes.install(&model);
    let Some(vf) = VfIndex::new(1) else { return };
    let mut ep = VfEndpoint::new(model.clone(), vf, Some(agent), routes);
    let pf_before = pf_config(&model);
    // The stream is cut into messages by their size fields, as the socket reader does; an
    // impossible size ends the stream (the reader closes the connection).
    let mut rest = data;
    for _ in 0..64 {
        if rest.len() < HEADER_LEN {
            break;
        }
        let size = match Header::parse(rest) {
            Ok(h) => (h.size as usize).min(rest.len()),
            Err(_) => {
                let reply = ep
                    .handle(&rest[..HEADER_LEN], Vec::new())
                    .expect("an error reply");
                let h = Header::parse(&reply).expect("the reply parses");
                assert_eq!(h.flags & flags::ERROR, flags::ERROR);
                break;
            }
        };
        let mut message = rest[..size].to_vec();
        // The reader always hands over whole messages; fix the size field of a cut one.
        message[4..8].copy_from_slice(&(size as u32).to_le_bytes());
        rest = &rest[size..];
        let request = Header::parse(&message).expect("size fixed");
        let (fds, foreign) = descriptors(&message, &request);
        let with_file = request.command == Command::DmaMap && !fds.is_empty();
        let errors_before = ep.counters().errors;
        let answer = ep.handle(&message, fds);
        let (windows, bytes) = ep.dma_windows();
        assert!(windows <= MAX_DMA_MAPS, "{windows} DMA windows");
        assert!(bytes <= MAX_DMA_BYTES, "{bytes} bytes mapped");
        assert!(
            bytes <= ep.counters().dma_maps * FILE_SIZE,
            "{bytes} bytes mapped from {} windows over an {FILE_SIZE}-byte file",
            ep.counters().dma_maps
        );
        let succeeded = answer
            .as_ref()
            .and_then(|r| Header::parse(r).ok())
            .is_some_and(|h| h.flags & flags::ERROR == 0);
        if with_file && succeeded {
            let (offset, size) = (le64(&message, 24), le64(&message, 40));
            assert!(
                offset.checked_add(size).is_some_and(|end| end <= FILE_SIZE),
                "DMA window {offset:#x}+{size:#x} accepted over an {FILE_SIZE}-byte file"
            );
        }
        if foreign && request.command == Command::DeviceSetIrqs {
            // Counted as an error even when the client asked for no reply.
            assert_eq!(
                ep.counters().errors,
                errors_before + 1,
                "a socket accepted as an MSI-X eventfd"
            );
        }
        match answer {
            None => assert!(request.no_reply(), "a command without reply: {request:?}"),
            Some(reply) => {
                let h = Header::parse(&reply).expect("the reply parses");
                assert_eq!(h.id, request.id);
                assert_eq!(h.command, request.command);
                assert_eq!(h.size as usize, reply.len());
                assert_eq!(h.flags & flags::TYPE_MASK, flags::TYPE_REPLY);
                if h.flags & flags::ERROR != 0 {
                    assert_eq!(reply.len(), HEADER_LEN);
                    assert_ne!(h.error, 0);
                } else if request.command == Command::RegionRead {
                    let count =
                        u32::from_le_bytes([message[28], message[29], message[30], message[31]]);
                    assert_eq!(reply.len(), HEADER_LEN + 16 + count as usize);
                }
            }
        }
    }
    // The VF raises every vector (MSI-X enabled, all unmasked): whatever the client wired,
    // this returns at once.
    let f = FunctionId::Vf(vf);
    {
        let mut nic = model.nic();
        nic.config_write(f, 0x72, &0x8000u16.to_le_bytes());
        nic.bar_write(f, 0, 0x1524, &7u32.to_le_bytes());
        nic.bar_write(f, 0, 0x1520, &7u32.to_le_bytes());
    }
    ep.disconnect();
    assert_eq!(
        pf_config(&model),
        pf_before,
        "a VF's client changed the PF's config space"
    );
});

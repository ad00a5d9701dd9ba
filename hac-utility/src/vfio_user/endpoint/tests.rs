//! The endpoint driven through the server's session, message by message, on the model with
//! its PF agent: what a client sees of config space, the mailbox, DMA windows and interrupts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::{AsFd, OwnedFd};

use hac_driver::model::Model;
use hac_driver::pf::PfConfig;
use hac_vfio_user::wire::vfio::{DMA_UNMAP_ALL as UNMAP_ALL, irq_set};
use hac_vfio_user::wire::{self, Command, Header, Payload, errno};
use hac_vfio_user::{
    ClientDmaLimits, DmaWriteQueue, EventFd, GuestMapping, MAX_DMA_BYTES, MAX_DMA_MAPS, Outbox,
    Session,
};
use igb_hw::VfIndex;
use igb_hw::pci::{header, layout, msix as msix_cap};
use igb_hw::regs::VfReg;
use igb_model::{FunctionId, NicConfig};

use super::{IrqRoutes, VfEndpoint, irq_index, region};

/// The endpoint as the server holds it.
type Ep = Session<VfEndpoint>;

fn endpoint() -> (Model, Ep) {
    endpoint_of(0)
}

/// VF `vf` of a fresh model whose PF agent enabled two VFs, as the server holds it.
fn endpoint_of(vf: usize) -> (Model, Ep) {
    endpoint_with(vf, None)
}

/// As [`endpoint_of`], in client mode with `queue`.
fn endpoint_with(vf: usize, queue: Option<std::sync::Arc<DmaWriteQueue>>) -> (Model, Ep) {
    let model = Model::new(NicConfig::default());
    let agent = model
        .start_pf_agent(
            PfConfig {
                num_vfs: 2,
                ..PfConfig::default()
            },
            &[None, None],
        )
        .unwrap();
    let routes = IrqRoutes::new();
    routes.install(&model);
    let mut ep = VfEndpoint::new(
        model.clone(),
        VfIndex::new(vf).unwrap(),
        Some(agent),
        routes,
    );
    if let Some(q) = &queue {
        ep = ep.with_client_dma(q.clone());
    }
    let mut session = Session::new(format!("VF {vf}"), ep);
    if let Some(q) = queue {
        session.set_client_dma(q);
    }
    (model, session)
}

fn msg(id: u16, command: u16, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m.extend_from_slice(body);
    Header {
        id,
        command: Command::from_raw(command),
        size: m.len() as u32,
        flags: 0,
        error: 0,
    }
    .emit(&mut m);
    m
}

fn read(ep: &mut Ep, region: u32, offset: u64, count: u32) -> Vec<u8> {
    let body = Payload::default().u64(offset).u32(region).u32(count).0;
    let r = ep.handle(&msg(7, 9, &body), Vec::new()).unwrap();
    let h = Header::parse(&r).unwrap();
    assert_eq!(h.flags & wire::flags::ERROR, 0, "read failed: {h:?}");
    r[32..].to_vec()
}

#[test]
fn config_space_shows_the_vf_ids_and_bars() {
    let (_m, mut ep) = endpoint();
    let c = read(&mut ep, region::CONFIG, 0, 256);
    assert_eq!(&c[0..4], &[0x86, 0x80, 0xCA, 0x10]);
    assert_eq!(c[header::BAR0], 0x0C, "BAR0: 64-bit prefetchable");
    assert_eq!(c[header::BAR0 + 12], 0x0C, "BAR3 at 0x1C");
    assert_eq!(c[header::CAPABILITIES], layout::MSIX as u8);
    // BAR sizing: all ones reads back the size mask.
    let w = Payload::default()
        .u64(0x10)
        .u32(region::CONFIG)
        .u32(4)
        .u32(u32::MAX)
        .0;
    let r = ep.handle(&msg(8, 10, &w), Vec::new()).unwrap();
    assert_eq!(Header::parse(&r).unwrap().flags, wire::flags::TYPE_REPLY);
    let b = read(&mut ep, region::CONFIG, 0x10, 4);
    assert_eq!(
        u32::from_le_bytes(b.try_into().unwrap()),
        !(16 * 1024 - 1) | 0xC
    );
}

/// Sets the Command register's Memory Space and Bus Master bits, as igbvf does first.
fn memory_and_bus_master_on(ep: &mut Ep) {
    let cmd = Payload::default()
        .u64(4)
        .u32(region::CONFIG)
        .u32(2)
        .u16(6)
        .0;
    ep.handle(&msg(1, 10, &cmd), Vec::new()).unwrap();
}

#[test]
fn the_mailbox_reset_handshake_works_through_messages() {
    let (_m, mut ep) = endpoint();
    // Memory and bus master on, then CTRL.RST as igbvf does.
    memory_and_bus_master_on(&mut ep);
    let rst = Payload::default()
        .u64(0)
        .u32(region::BAR0)
        .u32(4)
        .u32(1 << 26)
        .0;
    ep.handle(&msg(2, 10, &rst), Vec::new()).unwrap();
    // VF_RESET (0x01) into VMBMEM, REQ.
    let mbx = u64::from(VfReg::VMBMEM(0).offset().0);
    let w = Payload::default().u64(mbx).u32(0).u32(4).u32(1).0;
    ep.handle(&msg(3, 10, &w), Vec::new()).unwrap();
    let req = Payload::default()
        .u64(u64::from(VfReg::VFMAILBOX.offset().0))
        .u32(0)
        .u32(4)
        .u32(1)
        .0;
    ep.handle(&msg(4, 10, &req), Vec::new()).unwrap();
    // The agent answered at once: PFSTS set, reply ACK | VF_RESET with a MAC.
    let vfmbx = read(&mut ep, 0, u64::from(VfReg::VFMAILBOX.offset().0), 4);
    assert_ne!(u32::from_le_bytes(vfmbx.try_into().unwrap()) & (1 << 4), 0);
    let word0 = read(&mut ep, 0, mbx, 4);
    assert_eq!(
        u32::from_le_bytes(word0.try_into().unwrap()) & 0xFFFF,
        1,
        "reply to VF_RESET"
    );
}

#[test]
fn malformed_messages_get_error_replies() {
    let (_m, mut ep) = endpoint();
    for bad in [
        msg(1, 9, &[0; 4]),                                              // short read
        msg(2, 9, &Payload::default().u64(0).u32(99).u32(4).0),          // no such region
        msg(3, 9, &Payload::default().u64(250).u32(7).u32(16).0),        // past config
        msg(4, 9, &Payload::default().u64(u64::MAX).u32(0).u32(4).0),    // overflow
        msg(5, 10, &Payload::default().u64(0).u32(0).u32(400).u32(0).0), // count ≠ data
        msg(
            6,
            2,
            &Payload::default().u32(32).u32(3).u64(0).u64(0).u64(0).0,
        ), // size 0
        msg(
            7,
            3,
            &Payload::default().u32(24).u32(0).u64(0x1000).u64(0x1000).0,
        ), // not mapped
        msg(
            8,
            8,
            &Payload::default().u32(20).u32(0x24).u32(2).u32(2).u32(5).0,
        ), // range
        msg(
            9,
            8,
            &Payload::default().u32(20).u32(0x27).u32(2).u32(0).u32(1).0,
        ), // flags
        msg(10, 5, &Payload::default().u32(32).u32(0).u32(77).0),        // region index
        msg(11, 7, &Payload::default().u32(16).u32(0).u32(9).0),         // irq index
        msg(12, 6, &[0; 16]),                                            // unsupported
        msg(13, 4242, &[]),                                              // unknown
        msg(14, 1, &Payload::default().u16(1).u16(0).0),                 // major 1
    ] {
        let r = ep.handle(&bad, Vec::new()).expect("a reply");
        let h = Header::parse(&r).unwrap();
        assert_eq!(h.id, u16::from_le_bytes([bad[0], bad[1]]));
        assert_eq!(
            h.flags,
            wire::flags::TYPE_REPLY | wire::flags::ERROR,
            "{h:?}"
        );
        assert_ne!(h.error, 0);
        assert_eq!(r.len(), 16);
    }
    // Garbage shorter than a header, and a header with an impossible size.
    assert!(ep.handle(&[1, 2, 3], Vec::new()).is_some());
    let mut huge = msg(15, 9, &[]);
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(ep.handle(&huge, Vec::new()).is_some());
    assert_eq!(ep.counters().errors, 16);
}

#[test]
fn a_dma_map_without_fd_is_accepted_and_unmapped_again() {
    let (_m, mut ep) = endpoint();
    let map = Payload::default()
        .u32(32)
        .u32(3)
        .u64(0)
        .u64(0xC0000)
        .u64(0x20000)
        .0;
    let r = ep.handle(&msg(1, 2, &map), Vec::new()).unwrap();
    assert_eq!(Header::parse(&r).unwrap().flags, wire::flags::TYPE_REPLY);
    // The same window again: EEXIST.
    let r = ep.handle(&msg(2, 2, &map), Vec::new()).unwrap();
    assert_eq!(Header::parse(&r).unwrap().error, errno::EEXIST);
    let unmap = Payload::default()
        .u32(24)
        .u32(0)
        .u64(0xC0000)
        .u64(0x20000)
        .0;
    let r = ep.handle(&msg(3, 3, &unmap), Vec::new()).unwrap();
    assert_eq!(r.len(), 16 + 24);
    assert_eq!(ep.counters().dma_maps_without_fd, 1);
    assert_eq!(ep.counters().dma_unmaps, 1);
}

fn set_eventfds(ep: &mut Ep, start: u32, fds: Vec<OwnedFd>) -> Header {
    let body = Payload::default()
        .u32(20)
        .u32(irq_set::DATA_EVENTFD | irq_set::ACTION_TRIGGER)
        .u32(irq_index::MSIX)
        .u32(start)
        .u32(fds.len() as u32)
        .0;
    Header::parse(&ep.handle(&msg(1, 8, &body), fds).unwrap()).unwrap()
}

fn vector_masked(model: &Model, vector: u64) -> bool {
    let mut ctrl = [0u8; 4];
    model.nic().bar_read(
        FunctionId::Vf(VfIndex::new(0).unwrap()),
        3,
        vector * 16 + 12,
        &mut ctrl,
    );
    u32::from_le_bytes(ctrl) & 1 == 1
}

fn trigger(ep: &mut Ep, vector: u32) {
    let trig = Payload::default()
        .u32(20)
        .u32(irq_set::DATA_NONE | irq_set::ACTION_TRIGGER)
        .u32(irq_index::MSIX)
        .u32(vector)
        .u32(1)
        .0;
    ep.handle(&msg(2, 8, &trig), Vec::new()).unwrap();
}

fn dup(e: &EventFd) -> OwnedFd {
    e.as_fd().try_clone_to_owned().unwrap()
}

#[test]
fn eventfds_receive_the_vf_interrupts() {
    let (model, mut ep) = endpoint();
    let ev = EventFd::new().unwrap();
    let h = set_eventfds(&mut ep, 2, vec![dup(&ev)]);
    assert_eq!(h.flags, wire::flags::TYPE_REPLY);
    // The model's table entry 2 is now unmasked with data 2.
    assert!(!vector_masked(&model, 2));
    // A client-triggered interrupt (DATA_NONE | TRIGGER) reaches the eventfd.
    trigger(&mut ep, 2);
    assert_eq!(ev.take().unwrap(), 1);
    // Disable all: the entry is masked again.
    let off = Payload::default()
        .u32(20)
        .u32(irq_set::DATA_NONE | irq_set::ACTION_TRIGGER)
        .u32(irq_index::MSIX)
        .u32(0)
        .u32(0)
        .0;
    ep.handle(&msg(3, 8, &off), Vec::new()).unwrap();
    assert!(vector_masked(&model, 2));
}

#[test]
fn only_eventfds_are_accepted_for_msix_vectors() {
    // A socket whose buffer is full (or a pipe nobody reads) would block the model's
    // interrupt path, under the device lock, for every VF: refused.
    let (model, mut ep) = endpoint();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (r, w) = std::io::pipe().unwrap();
    for fds in [
        vec![OwnedFd::from(a)],
        vec![OwnedFd::from(w)],
        vec![OwnedFd::from(r)],
    ] {
        let h = set_eventfds(&mut ep, 0, fds);
        assert_eq!(h.error, errno::EINVAL, "{h:?}");
    }
    // One bad descriptor among good ones: nothing is wired.
    let ev = EventFd::new().unwrap();
    let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
    let h = set_eventfds(&mut ep, 0, vec![dup(&ev), OwnedFd::from(c)]);
    assert_eq!(h.error, errno::EINVAL);
    assert_eq!(ep.counters().irq_fds_refused, 4);
    for v in 0..3 {
        assert!(vector_masked(&model, v), "vector {v} wired to a refused fd");
    }
    trigger(&mut ep, 0);
    assert_eq!(ev.take().unwrap(), 0);
}

#[test]
fn a_full_eventfd_costs_only_its_own_client_interrupts() {
    let (model, mut ep) = endpoint();
    let ev = EventFd::new().unwrap();
    // The client's counter is at its maximum: a blocking write would wait forever.
    let mut raw = std::fs::File::from(dup(&ev));
    use std::io::Write as _;
    raw.write_all(&(u64::MAX - 1).to_ne_bytes()).unwrap();
    let h = set_eventfds(&mut ep, 0, vec![dup(&ev)]);
    assert_eq!(h.flags, wire::flags::TYPE_REPLY);
    // MSI-X Enable, as the guest's driver sets it.
    let enable = Payload::default()
        .u64((layout::MSIX + msix_cap::CONTROL) as u64)
        .u32(region::CONFIG)
        .u32(2)
        .u16(msix_cap::ENABLE)
        .0;
    ep.handle(&msg(3, 10, &enable), Vec::new()).unwrap();
    let routes = ep.backend().routes().clone();
    let done = std::sync::mpsc::channel();
    let model2 = model.clone();
    std::thread::spawn(move || {
        // The model raises VF 0's vector 0 (VTEICS) under the device lock.
        let vf0 = FunctionId::Vf(VfIndex::new(0).unwrap());
        let eims = u64::from(VfReg::EIMS.offset().0);
        let eics = u64::from(VfReg::EICS.offset().0);
        let mut nic = model2.nic();
        nic.bar_write(vf0, 0, eims, &1u32.to_le_bytes());
        nic.bar_write(vf0, 0, eics, &1u32.to_le_bytes());
        drop(nic);
        let _ = done.0.send(());
    });
    done.1
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the interrupt path blocked on a full eventfd");
    assert_eq!(
        routes.lost(0),
        1,
        "the model's interrupt was dropped and counted"
    );
    trigger(&mut ep, 0);
    assert_eq!(routes.lost(0), 2, "a dropped signal is counted");
    assert_eq!(routes.lost(1), 0);
    // Once the client reads, interrupts flow again.
    assert_eq!(ev.take().unwrap(), u64::MAX - 1);
    trigger(&mut ep, 0);
    assert_eq!(ev.take().unwrap(), 1);
}

/// A sealable memfd of `size` bytes (QEMU's memory-backend-memfd).
fn memfd(size: u64) -> OwnedFd {
    use rustix::fs::MemfdFlags;
    let fd = rustix::fs::memfd_create("hac-test", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    fd
}

fn dma_map(ep: &mut Ep, address: u64, size: u64, fd: Option<OwnedFd>) -> Header {
    let body = Payload::default()
        .u32(32)
        .u32(3)
        .u64(0)
        .u64(address)
        .u64(size)
        .0;
    Header::parse(
        &ep.handle(&msg(1, 2, &body), fd.into_iter().collect())
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn a_dma_window_past_the_end_of_its_file_is_refused() {
    // Mapping 1 MiB of a 4 KiB memfd was accepted, and the first device access past
    // 4 KiB killed the daemon with SIGBUS.
    let (_m, mut ep) = endpoint();
    let file = memfd(4096);
    let h = dma_map(&mut ep, 0x10_0000, 1 << 20, Some(file.try_clone().unwrap()));
    assert_eq!(h.error, errno::EINVAL, "{h:?}");
    let h = dma_map(&mut ep, 0x10_0000, 1 << 30, Some(file.try_clone().unwrap()));
    assert_eq!(h.error, errno::EINVAL, "{h:?}");
    // 16 TiB over the same file: above the byte budget before the file is even looked at.
    let h = dma_map(
        &mut ep,
        0x10_0000,
        16 << 40,
        Some(file.try_clone().unwrap()),
    );
    assert_eq!(h.error, errno::ENOSPC, "{h:?}");
    assert_eq!(ep.counters().dma_maps_refused, 3);
    assert_eq!(ep.counters().dma_maps, 0);
    let h = dma_map(&mut ep, 0x10_0000, 4096, Some(file.try_clone().unwrap()));
    assert_eq!(h.flags, wire::flags::TYPE_REPLY, "{h:?}");
    // A file that can shrink under the mapping (no seals allowed) is refused too.
    let loose = rustix::fs::memfd_create("hac-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&loose, 4096).unwrap();
    let h = dma_map(&mut ep, 0x20_0000, 4096, Some(loose));
    assert_eq!(h.error, errno::EPERM, "{h:?}");
    // The accepted window's file is sealed: the client cannot truncate it under the device.
    assert_eq!(
        rustix::fs::ftruncate(&file, 0).unwrap_err(),
        rustix::io::Errno::PERM
    );
}

#[test]
fn dma_windows_are_bounded_in_count_and_bytes() {
    let (_m, mut ep) = endpoint();
    // Bytes: a 512 GiB (sparse) memfd mapped twice fills the budget; a third is refused.
    let big = memfd(MAX_DMA_BYTES / 2);
    for i in 0..2 {
        let h = dma_map(
            &mut ep,
            i * MAX_DMA_BYTES,
            MAX_DMA_BYTES / 2,
            Some(big.try_clone().unwrap()),
        );
        assert_eq!(h.flags, wire::flags::TYPE_REPLY, "{h:?}");
    }
    let h = dma_map(&mut ep, 4 * MAX_DMA_BYTES, 4096, Some(memfd(4096)));
    assert_eq!(h.error, errno::ENOSPC, "{h:?}");
    // Count: windows without a descriptor count too.
    let unmap_all = Payload::default().u32(24).u32(UNMAP_ALL).u64(0).u64(0).0;
    ep.handle(&msg(9, 3, &unmap_all), Vec::new()).unwrap();
    for i in 0..MAX_DMA_MAPS as u64 {
        let h = dma_map(&mut ep, i * 0x1000, 0x1000, None);
        assert_eq!(h.flags, wire::flags::TYPE_REPLY, "window {i}: {h:?}");
    }
    let h = dma_map(&mut ep, 1 << 40, 0x1000, None);
    assert_eq!(h.error, errno::ENOSPC);
    assert_eq!(ep.counters().dma_maps_refused, 2);
    // Overlaps are still found among many windows: free window 500, then a window
    // straddling 500 and 501 overlaps, window 500 itself fits again.
    let unmap = Payload::default()
        .u32(24)
        .u32(0)
        .u64(500 * 0x1000)
        .u64(0x1000)
        .0;
    let r = ep.handle(&msg(9, 3, &unmap), Vec::new()).unwrap();
    assert_eq!(Header::parse(&r).unwrap().flags, wire::flags::TYPE_REPLY);
    assert_eq!(
        dma_map(&mut ep, 500 * 0x1000 + 0x800, 0x1000, None).error,
        errno::EEXIST
    );
    assert_eq!(
        dma_map(&mut ep, 499 * 0x1000 + 0x800, 0x1000, None).error,
        errno::EEXIST
    );
    assert_eq!(
        dma_map(&mut ep, 500 * 0x1000, 0x1000, None).flags,
        wire::flags::TYPE_REPLY
    );
}

#[test]
fn no_reply_commands_are_silent() {
    let (_m, mut ep) = endpoint();
    let mut m = msg(
        1,
        10,
        &Payload::default().u64(0x2820).u32(0).u32(4).u32(0).0,
    );
    m[8] = wire::flags::NO_REPLY as u8;
    assert!(ep.handle(&m, Vec::new()).is_none());
}

fn pf_config(model: &Model) -> Vec<u8> {
    let mut out = vec![0u8; 0x200];
    for (i, c) in out.chunks_mut(4).enumerate() {
        model.nic().config_read(FunctionId::Pf, (4 * i) as u16, c);
    }
    out
}

/// The fuzz target's seed streams (QEMU's probe, igbvf's reset handshake, DMA/IRQ/reset
/// messages, hostile descriptors), each also with every byte inverted in turn, against VF 1 of
/// the model: every request gets its reply, the PF's config space is untouched, and raising
/// every vector afterwards returns. (The fuzz target drives the server with a fake device;
/// this is the model's side of the same streams.)
#[test]
fn client_streams_never_touch_the_pf_or_block_the_interrupt_path() {
    let seeds: [&[u8]; 4] = [
        include_bytes!("../../../../fuzz/seeds/vfio_user_message/qemu-probe"),
        include_bytes!("../../../../fuzz/seeds/vfio_user_message/igbvf-reset"),
        include_bytes!("../../../../fuzz/seeds/vfio_user_message/dma-irqs-reset"),
        include_bytes!("../../../../fuzz/seeds/vfio_user_message/hostile-fds"),
    ];
    let file = memfd(8192);
    let (model, mut ep) = endpoint_of(1);
    let vf = VfIndex::new(1).unwrap();
    let pf_before = pf_config(&model);
    let mut streams = Vec::new();
    for seed in seeds {
        streams.push(seed.to_vec());
        for at in 0..seed.len() {
            let mut s = seed.to_vec();
            s[at] ^= 0xFF;
            streams.push(s);
        }
    }
    for stream in &streams {
        let mut rest = &stream[..];
        while rest.len() >= 16 {
            let Ok(h) = Header::parse(rest) else { break };
            let size = (h.size as usize).min(rest.len());
            let mut m = rest[..size].to_vec();
            m[4..8].copy_from_slice(&(size as u32).to_le_bytes());
            rest = &rest[size..];
            let fds = if h.command == Command::DmaMap && h.id & 1 == 1 {
                vec![file.try_clone().unwrap()]
            } else {
                Vec::new()
            };
            match ep.handle(&m, fds) {
                Some(r) => assert_eq!(Header::parse(&r).unwrap().id, h.id),
                None => assert!(h.no_reply()),
            }
        }
        // The VF raises every vector (MSI-X enabled, all unmasked): whatever the client
        // wired, this returns at once.
        let f = FunctionId::Vf(vf);
        {
            let mut nic = model.nic();
            let control = (layout::MSIX + msix_cap::CONTROL) as u16;
            nic.config_write(f, control, &msix_cap::ENABLE.to_le_bytes());
            nic.bar_write(f, 0, VfReg::EIMS.offset().0.into(), &7u32.to_le_bytes());
            nic.bar_write(f, 0, VfReg::EICS.offset().0.into(), &7u32.to_le_bytes());
        }
        ep.disconnect();
        assert_eq!(pf_config(&model), pf_before, "a VF's client changed the PF");
    }
}

/// Writes a 32-bit BAR0 register of the VF through the session.
fn bar0_write(ep: &mut Ep, offset: u32, value: u32) {
    let w = Payload::default()
        .u64(u64::from(offset))
        .u32(region::BAR0)
        .u32(4)
        .u32(value)
        .0;
    let r = ep.handle(&msg(30, 10, &w), Vec::new()).unwrap();
    assert_eq!(Header::parse(&r).unwrap().flags, wire::flags::TYPE_REPLY);
}

/// Brings the VF up as igbvf does (memory and bus master on, reset handshake with the PF
/// agent), maps 64 KiB of guest RAM at DMA address 0 (the memfd is returned, as QEMU's RAM),
/// queues one TX frame (descriptor at 0x1000, buffer at 0x2000, RS) and lets the device run.
fn send_one_frame(ep: &mut Ep, model: &Model) -> GuestMapping {
    memory_and_bus_master_on(ep);
    bar0_write(ep, 0, 1 << 26);
    bar0_write(ep, VfReg::VMBMEM(0).offset().0, 1);
    bar0_write(ep, VfReg::VFMAILBOX.offset().0, 1);
    let ram = memfd(0x10000);
    let view = GuestMapping::map(ram.as_fd(), 0, 0x10000).unwrap();
    assert_eq!(
        dma_map(ep, 0, 0x10000, Some(ram)).flags,
        wire::flags::TYPE_REPLY
    );
    // Descriptor: buffer 0x2000, 60 bytes, EOP | IFCS | RS.
    let mut desc = [0u8; 16];
    desc[0..8].copy_from_slice(&0x2000u64.to_le_bytes());
    desc[8..10].copy_from_slice(&60u16.to_le_bytes());
    desc[11] = 0x01 | 0x02 | 0x08;
    assert!(view.write(0x1000, &desc));
    let mut frame = [0u8; 60];
    frame[0..6].copy_from_slice(&[0xFF; 6]);
    frame[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(view.write(0x2000, &frame));
    bar0_write(ep, VfReg::TDBAL(0).offset().0, 0x1000);
    bar0_write(ep, VfReg::TDBAH(0).offset().0, 0);
    bar0_write(ep, VfReg::TDLEN(0).offset().0, 8 * 16);
    bar0_write(ep, VfReg::TXDCTL(0).offset().0, 1 << 25);
    bar0_write(ep, VfReg::TDT(0).offset().0, 1);
    for _ in 0..100 {
        model.run_for(10_000);
    }
    view
}

/// The descriptor-done bit of the TX descriptor at 0x1000.
fn tx_done(view: &GuestMapping) -> bool {
    let mut s = [0u8; 1];
    assert!(view.read(0x1000 + 12, &mut s));
    s[0] & 1 != 0
}

#[test]
fn in_client_mode_the_device_never_writes_guest_ram_itself() {
    // Direct mode: the write-back lands in the memfd, behind the client's back.
    let (model, mut ep) = endpoint();
    let view = send_one_frame(&mut ep, &model);
    assert!(
        tx_done(&view),
        "direct mode writes the descriptor back itself"
    );

    // Client mode: the memfd is untouched; the write-back waits in the queue as a DMA_WRITE
    // of the descriptor (its address and the DD bit).
    let queue = DmaWriteQueue::new(ClientDmaLimits::default()).unwrap();
    let (model, mut ep) = endpoint_with(0, Some(queue.clone()));
    // The connection's side (what the server thread runs), there before the device writes.
    let mut outbox = Outbox::new(queue.clone(), 1 << 20);
    let view = send_one_frame(&mut ep, &model);
    assert!(!tx_done(&view), "client mode must not write the mapping");
    let mut out = Vec::new();
    outbox.pull(&mut out);
    let (_, address, data) = hac_vfio_user::client_dma::parse_dma_write(&out)
        .unwrap_or_else(|| panic!("{} bytes, {:?}", out.len(), queue.counters()));
    assert!(
        (0x1000..0x1010).contains(&address) && address + data.len() as u64 <= 0x1010,
        "{address:#x} +{}",
        data.len()
    );
    let dd = 0x1000 + 12 - address as usize;
    assert_eq!(data[dd] & 1, 1, "the write carries the DD bit");
    assert_eq!(queue.counters().dma_writes_queued, 1);
}

//! The mlx5 endpoint driven through the server's session, message by message: config space,
//! the initialization segment, malformed accesses, DMA windows over memfds, eventfds and the
//! model's MSI-X table, reset — and our own mlx5 driver brought up on the VF through nothing
//! but vfio-user messages (a guest's view of the device).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hac_driver::backend::{Clock, DmaAllocator, DmaError, DmaRegion, RegisterIo};
use hac_driver::mlx5::model::Mlx5Model;
use hac_vfio_user::wire::vfio::irq_set;
use hac_vfio_user::wire::{self, Command, Header, Payload, errno};
use hac_vfio_user::{ClientDmaLimits, DmaWriteQueue, EventFd, GuestMapping, Outbox, Session};
use hw_common::Iova;
use igb_hw::{MacAddress, RegisterOffset};
use mlx5_hw::init_seg::field;
use mlx5_hw::pci::{self, layout, msix};
use mlx5_model::config::{header, msix_cap};
use mlx5_model::{FunctionId, Mlx5Config};

use super::{DeviceClock, Mlx5IrqRoutes, Mlx5VfEndpoint, VECTORS, irq_index, region};

/// The endpoint as the server holds it.
type Ep = Session<Mlx5VfEndpoint>;

const MAC0: MacAddress = MacAddress([0x02, 0x1B, 0x21, 0xC1, 0x00, 0x00]);

/// A model with two VFs, the PF brought up by our driver and VF 0's MAC set, and VF 0's
/// endpoint (device time following wall time) as the server holds it.
fn endpoint() -> (Mlx5Model, Ep) {
    let model = Mlx5Model::new(Mlx5Config::default());
    model.enable_vfs(2);
    let mut pf = model
        .device(FunctionId::Pf, hac_driver::mlx5::Mlx5Config::default())
        .unwrap();
    pf.set_vf_mac(0, MAC0).unwrap();
    let clock = DeviceClock::new(&model.nic());
    let ep = Mlx5VfEndpoint::new(model.clone(), 0, Mlx5IrqRoutes::new(), Some(clock));
    (model, Session::new("mlx5 VF 0", ep))
}

/// As [`endpoint`], in client mode: the VF's writes and interrupts go through a queue.
fn client_mode_endpoint() -> (Mlx5Model, Ep, Arc<DmaWriteQueue>) {
    let (model, ep) = endpoint();
    let queue = DmaWriteQueue::new(ClientDmaLimits::default()).unwrap();
    let clock = DeviceClock::new(&model.nic());
    drop(ep);
    let backend = Mlx5VfEndpoint::new(model.clone(), 0, Mlx5IrqRoutes::new(), Some(clock))
        .with_client_dma(queue.clone());
    let mut ep = Session::new("mlx5 VF 0", backend);
    ep.set_client_dma(queue.clone());
    (model, ep, queue)
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

fn try_read(ep: &mut Ep, region: u32, offset: u64, count: u32) -> Result<Vec<u8>, u32> {
    let body = Payload::default().u64(offset).u32(region).u32(count).0;
    let r = ep.handle(&msg(7, 9, &body), Vec::new()).unwrap();
    let h = Header::parse(&r).unwrap();
    if h.flags & wire::flags::ERROR != 0 {
        return Err(h.error);
    }
    Ok(r[32..].to_vec())
}

fn read(ep: &mut Ep, region: u32, offset: u64, count: u32) -> Vec<u8> {
    try_read(ep, region, offset, count).expect("read failed")
}

fn try_write(ep: &mut Ep, region: u32, offset: u64, data: &[u8]) -> Result<(), u32> {
    let mut body = Payload::default()
        .u64(offset)
        .u32(region)
        .u32(data.len() as u32)
        .0;
    body.extend_from_slice(data);
    let r = ep.handle(&msg(8, 10, &body), Vec::new()).unwrap();
    let h = Header::parse(&r).unwrap();
    if h.flags & wire::flags::ERROR != 0 {
        return Err(h.error);
    }
    Ok(())
}

fn write(ep: &mut Ep, region: u32, offset: u64, data: &[u8]) {
    try_write(ep, region, offset, data).expect("write failed");
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().unwrap())
}

/// A sealable memfd of `size` bytes (QEMU's memory-backend-memfd).
fn memfd(size: u64) -> OwnedFd {
    use rustix::fs::MemfdFlags;
    let fd = rustix::fs::memfd_create("hac-test", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    fd
}

fn dma_map(ep: &mut Ep, address: u64, size: u64, fd: OwnedFd) -> Header {
    let body = Payload::default()
        .u32(32)
        .u32(3)
        .u64(0)
        .u64(address)
        .u64(size)
        .0;
    Header::parse(&ep.handle(&msg(1, 2, &body), vec![fd]).unwrap()).unwrap()
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

fn owned(e: &EventFd) -> OwnedFd {
    e.as_fd().try_clone_to_owned().unwrap()
}

fn vector_masked(model: &Mlx5Model, vector: u64) -> bool {
    let mut ctrl = [0u8; 4];
    model.nic().bar_read(
        FunctionId::Vf(0),
        0,
        u64::from(msix::TABLE_OFFSET) + vector * 16 + 12,
        &mut ctrl,
    );
    u32::from_le_bytes(ctrl) & 1 == 1
}

fn model_msix_control(model: &Mlx5Model) -> u16 {
    let mut c = [0u8; 2];
    model.nic().config_read(
        FunctionId::Vf(0),
        (layout::MSIX + msix_cap::CONTROL) as u16,
        &mut c,
    );
    u16::from_le_bytes(c)
}

#[test]
fn device_regions_and_irqs_are_what_mlx5_core_expects() {
    let (_m, mut ep) = endpoint();
    let info = ep.handle(&msg(1, 4, &Payload::default().u32(32).0), Vec::new());
    let info = info.unwrap();
    let b = &info[16..];
    let flags = u32::from_le_bytes(b[4..8].try_into().unwrap());
    assert_eq!(flags & 0b11, 0b11, "PCI | RESET");
    assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 9);
    assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 5);
    let backend = ep.backend();
    use hac_vfio_user::Backend;
    assert_eq!(backend.region_info(region::BAR0).size, 2 << 20);
    assert_eq!(backend.region_info(region::CONFIG).size, 4096);
    assert_eq!(backend.region_info(2).size, 0);
    assert_eq!(backend.irq_info(irq_index::MSIX).count, 12);
    assert_eq!(backend.irq_info(0).count, 0);
}

#[test]
fn config_space_shows_the_connectx_vf() {
    let (_m, mut ep) = endpoint();
    let c = read(&mut ep, region::CONFIG, 0, 256);
    assert_eq!(&c[0..4], &[0xB3, 0x15, 0x1E, 0x10], "15b3:101e");
    assert_eq!(&c[9..12], &[0x00, 0x00, 0x02], "Ethernet controller");
    assert_eq!(c[header::BAR0] & 0xF, 0x0C, "BAR0: 64-bit prefetchable");
    // Capabilities: PCI Express (FLR) at 0x60, then MSI-X at 0x9C with 12 vectors in BAR0.
    assert_eq!(c[header::CAP_PTR] as usize, layout::PCIE);
    assert_eq!(c[layout::PCIE], pci::cap_id::PCIE);
    assert_eq!(c[layout::PCIE + 1] as usize, layout::MSIX);
    assert_eq!(c[layout::MSIX], pci::cap_id::MSIX);
    let control = u16::from_le_bytes([c[layout::MSIX + 2], c[layout::MSIX + 3]]);
    assert_eq!(control & 0x7FF, VECTORS - 1);
    let table = u32::from_le_bytes(c[layout::MSIX + 4..layout::MSIX + 8].try_into().unwrap());
    assert_eq!(table, msix::TABLE_OFFSET, "table at BAR0 + 0x2000");
    // BAR sizing: all ones reads back the 2 MiB size mask.
    write(&mut ep, region::CONFIG, 0x10, &u32::MAX.to_le_bytes());
    let b = read(&mut ep, region::CONFIG, 0x10, 4);
    assert_eq!(
        u32::from_le_bytes(b.try_into().unwrap()),
        !((2 << 20) - 1) | 0xC
    );
    // Command: the host's virtual register (Memory Space reads back).
    write(&mut ep, region::CONFIG, 4, &6u16.to_le_bytes());
    assert_eq!(read(&mut ep, region::CONFIG, 4, 2), 6u16.to_le_bytes());
    // The extended space has no capabilities (QEMU stops at a zero header).
    assert_eq!(read(&mut ep, region::CONFIG, 0x100, 4), [0; 4]);
}

#[test]
fn the_initialization_segment_reads_big_endian_and_takes_the_command_queue() {
    let (_m, mut ep) = endpoint();
    let fw = read(&mut ep, region::BAR0, 0, 8);
    assert_eq!(be32(&fw[0..4]), 0x0027_0016, "fw_rev 22.39");
    assert_eq!(be32(&fw[4..8]) >> 16, 5, "command interface revision 5");
    // The health syndrome byte as mlx5_core reads it (ioread8), and the initializing bit.
    assert_eq!(read(&mut ep, region::BAR0, 0x200 + 0x3C, 1), [0]);
    let init = read(&mut ep, region::BAR0, field::INITIALIZING.byte() as u64, 4);
    assert_eq!(be32(&init) >> 31, 0);
    // cmdq_addr_l_sz: the page address is taken, bits 7:0 are read-only (log size 5, stride 6).
    write(&mut ep, region::BAR0, 0x10, &0u32.to_be_bytes());
    write(&mut ep, region::BAR0, 0x14, &0x1234_5000u32.to_be_bytes());
    let l = read(&mut ep, region::BAR0, 0x14, 4);
    assert_eq!(be32(&l), 0x1234_5056);
    // 64-bit read of the internal timer.
    assert_eq!(read(&mut ep, region::BAR0, 0x1000, 8).len(), 8);
}

#[test]
fn the_health_counter_ticks_with_wall_time() {
    let (_m, mut ep) = endpoint();
    let at = field::HEALTH_COUNTER.byte() as u64;
    let first = be32(&read(&mut ep, region::BAR0, at, 4));
    std::thread::sleep(Duration::from_millis(250));
    let later = be32(&read(&mut ep, region::BAR0, at, 4));
    assert_ne!(first, 0);
    assert!(later > first, "health counter {first} → {later}");
}

#[test]
fn malformed_bar_accesses_are_refused_and_counted() {
    let (_m, mut ep) = endpoint();
    // A 3-byte, an unaligned 4-byte, a 16-byte read; an unaligned 8-byte and a 6-byte write.
    assert_eq!(try_read(&mut ep, region::BAR0, 0, 3), Err(errno::EINVAL));
    assert_eq!(try_read(&mut ep, region::BAR0, 2, 4), Err(errno::EINVAL));
    assert_eq!(try_read(&mut ep, region::BAR0, 0, 16), Err(errno::EINVAL));
    assert_eq!(
        try_write(&mut ep, region::BAR0, 4, &[0; 8]),
        Err(errno::EINVAL)
    );
    assert_eq!(
        try_write(&mut ep, region::BAR0, 0, &[0; 6]),
        Err(errno::EINVAL)
    );
    assert_eq!(ep.backend().counters().refused_accesses, 5);
    // Out of the region: refused by the server before the endpoint.
    assert!(try_read(&mut ep, region::BAR0, 2 << 20, 4).is_err());
    assert!(try_read(&mut ep, region::CONFIG, 4096, 1).is_err());
    assert!(try_read(&mut ep, 1, 0, 4).is_err());
    assert_eq!(ep.backend().counters().refused_accesses, 5);
    // A 4-byte half of the CQ arm doorbell (UAR page 0 + 0x20) reaches the model, which
    // refuses it as a torn 64-bit doorbell and counts it.
    let (m, mut ep) = endpoint();
    let before = m.nic().counters().cq_doorbell_errors;
    write(&mut ep, region::BAR0, 0x4000 + 0x20, &[0; 4]);
    assert_eq!(m.nic().counters().cq_doorbell_errors, before + 1);
    // Client writes to the MSI-X table are ignored (the front end owns it).
    write(
        &mut ep,
        region::BAR0,
        u64::from(msix::TABLE_OFFSET) + 12,
        &[0; 4],
    );
    assert_eq!(ep.backend().counters().msix_table_writes, 1);
    assert!(vector_masked(&m, 0));
    // The connection carries on.
    assert_eq!(read(&mut ep, region::BAR0, 0, 4).len(), 4);
}

#[test]
fn eventfds_program_the_model_msix_table_and_enable() {
    let (m, mut ep) = endpoint();
    assert_eq!(model_msix_control(&m) & msix_cap::ENABLE, 0);
    let evs: Vec<EventFd> = (0..2).map(|_| EventFd::new().unwrap()).collect();
    let h = set_eventfds(&mut ep, 0, evs.iter().map(owned).collect());
    assert_eq!(h.flags & wire::flags::ERROR, 0);
    assert!(!vector_masked(&m, 0) && !vector_masked(&m, 1));
    assert!(vector_masked(&m, 2));
    assert_ne!(model_msix_control(&m) & msix_cap::ENABLE, 0);
    // The client's own Message Control is virtual: it reads back what it wrote.
    write(
        &mut ep,
        region::CONFIG,
        (layout::MSIX + 2) as u64,
        &msix_cap::FUNCTION_MASK.to_le_bytes(),
    );
    let c = read(&mut ep, region::CONFIG, (layout::MSIX + 2) as u64, 2);
    assert_eq!(
        u16::from_le_bytes(c.try_into().unwrap()),
        msix_cap::FUNCTION_MASK | (VECTORS - 1)
    );
    assert_eq!(model_msix_control(&m) & msix_cap::FUNCTION_MASK, 0);
    // TRIGGER without data signals the vector's eventfd.
    let trig = Payload::default()
        .u32(20)
        .u32(irq_set::DATA_NONE | irq_set::ACTION_TRIGGER)
        .u32(irq_index::MSIX)
        .u32(1)
        .u32(1)
        .0;
    ep.handle(&msg(2, 8, &trig), Vec::new()).unwrap();
    assert_eq!(evs[1].take().unwrap(), 1);
    // A reset keeps the host's set-up (vfio-pci restores MSI-X after an FLR).
    ep.handle(&msg(3, 13, &[]), Vec::new()).unwrap();
    assert!(!vector_masked(&m, 0));
    assert_ne!(model_msix_control(&m) & msix_cap::ENABLE, 0);
    // Disabling all: every vector masked, MSI-X off.
    let off = Payload::default()
        .u32(20)
        .u32(irq_set::DATA_NONE | irq_set::ACTION_TRIGGER)
        .u32(irq_index::MSIX)
        .u32(0)
        .u32(0)
        .0;
    ep.handle(&msg(4, 8, &off), Vec::new()).unwrap();
    assert!(vector_masked(&m, 0));
    assert_eq!(model_msix_control(&m) & msix_cap::ENABLE, 0);
}

#[test]
fn a_dma_window_reaches_the_vf_iommu_and_leaves_on_disconnect() {
    let (m, mut ep) = endpoint();
    let h = dma_map(&mut ep, 0x4000_0000, 1 << 20, memfd(1 << 20));
    assert_eq!(h.flags & wire::flags::ERROR, 0, "{h:?}");
    // The command queue address inside the window: the model takes it.
    write(&mut ep, region::BAR0, 0x10, &0u32.to_be_bytes());
    write(&mut ep, region::BAR0, 0x14, &0x4000_0000u32.to_be_bytes());
    assert_eq!(m.nic().cmdq_address(FunctionId::Vf(0)), Some(0x4000_0000));
    // An overlapping window is refused by the server.
    let h = dma_map(&mut ep, 0x4008_0000, 4096, memfd(4096));
    assert_eq!(h.error, errno::EEXIST);
    ep.disconnect();
    assert_eq!(ep.dma_windows().0, 0);
    // Mapping the same address again works: the IOMMU is empty.
    let h = dma_map(&mut ep, 0x4000_0000, 4096, memfd(4096));
    assert_eq!(h.flags & wire::flags::ERROR, 0);
}

// ---- Our mlx5 driver on the VF through vfio-user messages only --------------------------

/// A guest's view: a session, its RAM (one memfd mapped at `RAM_BASE`), and a bump allocator.
#[derive(Clone)]
struct Guest {
    ep: Arc<Mutex<Ep>>,
    ram: Arc<GuestMapping>,
    next: Arc<Mutex<u64>>,
    start: Instant,
    /// Client mode: the connection's side, pumped like QEMU (apply each `DMA_WRITE` to RAM,
    /// reply, fire the interrupts that became due) after every access and delay.
    client: Option<Arc<Mutex<Outbox>>>,
}

const RAM_BASE: u64 = 0x8000_0000;
const RAM_SIZE: u64 = 32 << 20;

impl Guest {
    fn new(mut ep: Ep) -> Guest {
        let fd = memfd(RAM_SIZE);
        let ram = GuestMapping::map(fd.as_fd(), 0, RAM_SIZE).unwrap();
        let h = dma_map(&mut ep, RAM_BASE, RAM_SIZE, fd);
        assert_eq!(h.flags & wire::flags::ERROR, 0);
        let client = ep
            .client_dma()
            .map(|q| Arc::new(Mutex::new(Outbox::new(q.clone(), 1 << 20))));
        Guest {
            ep: Arc::new(Mutex::new(ep)),
            ram: Arc::new(ram),
            next: Arc::new(Mutex::new(0)),
            start: Instant::now(),
            client,
        }
    }

    fn ep(&self) -> std::sync::MutexGuard<'_, Ep> {
        self.ep.lock().unwrap()
    }

    /// Client mode: does what QEMU does with the server's `DMA_WRITE`s.
    fn pump(&self) {
        let Some(client) = &self.client else {
            return;
        };
        let mut o = client.lock().unwrap();
        let mut out = Vec::new();
        o.pull(&mut out);
        let mut at = 0;
        while at < out.len() {
            let size = Header::parse(&out[at..]).unwrap().size as usize;
            let m = &out[at..at + size];
            let (id, address, data) = hac_vfio_user::client_dma::parse_dma_write(m).unwrap();
            assert!(self.ram.write(address - RAM_BASE, data));
            o.on_reply(&hac_vfio_user::client_dma::dma_write_reply(id, None));
            at += size;
        }
        o.fire_due();
    }
}

impl RegisterIo for Guest {
    fn read32(&self, offset: RegisterOffset) -> u32 {
        let b = read(&mut self.ep(), region::BAR0, u64::from(offset.0), 4);
        self.pump();
        u32::from_le_bytes(b.try_into().unwrap())
    }
    fn write32(&self, offset: RegisterOffset, value: u32) {
        write(
            &mut self.ep(),
            region::BAR0,
            u64::from(offset.0),
            &value.to_le_bytes(),
        );
        self.pump();
    }
    fn write64(&self, offset: RegisterOffset, value: u64) {
        write(
            &mut self.ep(),
            region::BAR0,
            u64::from(offset.0),
            &value.to_le_bytes(),
        );
        self.pump();
    }
}

struct GuestRegion {
    ram: Arc<GuestMapping>,
    at: u64,
    len: usize,
}

impl DmaRegion for GuestRegion {
    fn iova(&self) -> Iova {
        Iova(RAM_BASE + self.at)
    }
    fn len(&self) -> usize {
        self.len
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        if offset + buf.len() > self.len || !self.ram.read(self.at + offset as u64, buf) {
            buf.fill(0);
        }
    }
    fn write(&self, offset: usize, data: &[u8]) {
        if offset + data.len() <= self.len {
            let _ = self.ram.write(self.at + offset as u64, data);
        }
    }
}

impl DmaAllocator for Guest {
    type Region = GuestRegion;
    fn allocate(&self, len: usize) -> Result<GuestRegion, DmaError> {
        if len == 0 {
            return Err(DmaError::ZeroLength);
        }
        let len = len.div_ceil(4096) * 4096;
        let mut next = self.next.lock().unwrap();
        if *next + len as u64 > RAM_SIZE {
            return Err(DmaError::IovaExhausted(len));
        }
        let at = *next;
        *next += len as u64;
        // Fresh guest pages are zero (the memfd is), as the driver expects.
        Ok(GuestRegion {
            ram: self.ram.clone(),
            at,
            len,
        })
    }
}

impl Clock for Guest {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn delay_ns(&self, ns: u64) {
        std::thread::sleep(Duration::from_nanos(ns.min(1_000_000)));
        self.pump();
    }
}

/// What a guest does first (Memory Space and Bus Master, four MSI-X vectors wired to
/// eventfds), then our mlx5 driver brought up on the VF in event mode: the eventfds, the guest
/// and the driver.
fn bring_up(
    mut ep: Ep,
) -> (
    Vec<EventFd>,
    Guest,
    hac_driver::mlx5::Mlx5Device<Guest, Guest, Guest>,
) {
    write(&mut ep, region::CONFIG, 4, &6u16.to_le_bytes());
    let evs: Vec<EventFd> = (0..4).map(|_| EventFd::new().unwrap()).collect();
    set_eventfds(&mut ep, 0, evs.iter().map(owned).collect());
    let guest = Guest::new(ep);
    let config = hac_driver::mlx5::Mlx5Config {
        command_events: true,
        command_timeout_ns: 5_000_000_000,
        init_timeout_ns: 5_000_000_000,
        ..Default::default()
    };
    let vf = hac_driver::mlx5::Mlx5Device::new(guest.clone(), guest.clone(), guest.clone(), config)
        .expect("the driver brings the VF up through vfio-user");
    (evs, guest, vf)
}

#[test]
fn in_client_mode_our_mlx5_driver_comes_up_with_every_device_write_a_dma_write() {
    let (m, ep, queue) = client_mode_endpoint();
    // Command outputs, ownership bits and EQEs reach the guest only as DMA_WRITEs the
    // "client" applies; the completion interrupts only after them.
    let (evs, _guest, mut vf) = bring_up(ep);
    let (mac, _mtu, _) = vf.own_vport_context().unwrap();
    assert_eq!(mac, MAC0);
    let signalled: u64 = evs.iter().map(|e| e.take().unwrap_or(0)).sum();
    assert!(signalled > 0, "no interrupt reached an eventfd");
    let c = queue.counters();
    assert!(c.dma_writes_queued > 10 && c.dma_writes_acked >= c.dma_writes_queued);
    assert!(c.irqs_deferred > 0);
    assert!(
        c.irqs_fired > 0 && c.irqs_fired + c.irqs_merged <= c.irqs_deferred,
        "the interrupts delivered in client mode are counted: {c:?}"
    );
    assert_eq!(
        (
            c.dma_write_overflows,
            c.dma_writes_dropped,
            c.irqs_deferred_lost
        ),
        (0, 0, 0)
    );
    assert_eq!(m.nic().counters().cmd_dma_faults, 0);
    vf.shutdown().unwrap();
}

#[test]
fn our_mlx5_driver_comes_up_on_the_vf_through_vfio_user_messages() {
    let (m, ep) = endpoint();
    let (evs, guest, mut vf) = bring_up(ep);
    // The E-Switch manager (our PF driver) assigned the MAC; the VF reads it from its vport.
    let (mac, _mtu, _) = vf.own_vport_context().unwrap();
    assert_eq!(mac, MAC0);
    assert!(m.nic().function_state(FunctionId::Vf(0)).is_some());
    assert!(vf.check_health().is_ok());
    // Event mode: command completions wrote EQEs and the model's MSI-X messages reached the
    // eventfds through the routes.
    let signalled: u64 = evs.iter().map(|e| e.take().unwrap_or(0)).sum();
    assert!(signalled > 0, "no interrupt reached an eventfd");
    assert_eq!(m.nic().counters().cmd_dma_faults, 0);
    // Shutdown returns every page; a reset then leaves the function disabled.
    vf.shutdown().unwrap();
    let mut ep = guest.ep();
    ep.handle(&msg(9, 13, &[]), Vec::new()).unwrap();
    assert_eq!(ep.counters().errors, 0, "{:?}", ep.counters());
    assert_eq!(ep.backend().counters().refused_accesses, 0);
}

#[test]
fn our_mlx5_driver_over_vfio_user_reaches_the_wire_peer_through_the_datapath() {
    use crate::vfio_user::peer::{PeerConfig, WirePeer};
    let (m, mut ep) = endpoint();
    write(&mut ep, region::CONFIG, 4, &6u16.to_le_bytes());
    let evs: Vec<EventFd> = (0..2).map(|_| EventFd::new().unwrap()).collect();
    set_eventfds(&mut ep, 0, evs.iter().map(owned).collect());
    let guest = Guest::new(ep);
    let mut vf = hac_driver::mlx5::Mlx5Device::new(
        guest.clone(),
        guest.clone(),
        guest.clone(),
        hac_driver::mlx5::Mlx5Config::default(),
    )
    .unwrap();
    vf.open_eth(hac_driver::mlx5::EthConfig::default()).unwrap();
    assert_eq!(vf.mac(), Some(MAC0));
    assert!(vf.link_up().unwrap());
    let mut peer = WirePeer::new(
        Box::new(m.clone()),
        PeerConfig {
            ip: std::net::Ipv4Addr::new(10, 99, 0, 2),
            prefix: 24,
            echo_port: 7,
        },
    )
    .unwrap();
    // ARP who-has 10.99.0.2 tell 10.99.0.1, from the VF's MAC.
    let mut arp = vec![0xFF; 6];
    arp.extend_from_slice(&MAC0.0);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    arp.extend_from_slice(&MAC0.0);
    arp.extend_from_slice(&[10, 99, 0, 1, 0, 0, 0, 0, 0, 0, 10, 99, 0, 2]);
    arp.resize(60, 0);
    assert_eq!(vf.send(&[&arp]).unwrap(), 1);
    // Device time moves (the wire sends the frame), the peer answers from the wire, the reply
    // lands in the RQ through the guest's memory.
    let mut got = Vec::new();
    for _ in 0..200 {
        m.run_for(100_000);
        peer.poll();
        vf.recv(&mut got, 8).unwrap();
        if !got.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let reply = got.first().expect("the peer's ARP reply reached the VF");
    assert_eq!(&reply[0..6], &MAC0.0, "to the VF");
    assert_eq!(&reply[12..14], &[0x08, 0x06]);
    assert_eq!(&reply[20..22], &[0, 2], "ARP reply");
    assert_eq!(
        &reply[6..12],
        &crate::vfio_user::peer::PEER_MAC.0,
        "from the peer"
    );
    assert_eq!(
        m.nic()
            .vport_counters(FunctionId::Vf(0))
            .unwrap()
            .rx_unicast_frames,
        1
    );
    vf.close_eth().unwrap();
}

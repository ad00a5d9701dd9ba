//! The checkpoint oracle (feature `test-utils`): a device, a guest and a client like QEMU's,
//! run through arbitrary interleavings, with "checkpoints" that copy only the client's dirty
//! pages to a secondary RAM — and the property that after every checkpoint the secondary
//! equals the primary everywhere.
//!
//! * The **device** has an RX ring and a TX ring in guest RAM (16-byte descriptors: buffer
//!   address, length, status with a done bit). A frame from the wire is written into the
//!   buffer of the next free RX descriptor, then the descriptor is written back with the done
//!   bit, then an interrupt is raised; a TX descriptor the guest queued is read with its
//!   buffer and written back with the done bit, then an interrupt. It reads guest RAM directly
//!   (as a server reads its mapping) and writes either directly ([`DmaWrites::Direct`]) or
//!   through a [`DmaWriteQueue`] ([`DmaWrites::Client`]).
//! * The **guest** (its CPU writes are dirty-logged, as TCG's soft-MMU or KVM log them) cleans
//!   done RX descriptors (reads the frame, re-arms the descriptor) and queues TX frames.
//! * The **client** (QEMU's side) reads the `DMA_WRITE`s the [`Outbox`] sends, applies them in
//!   order to the primary RAM marking their pages dirty, and replies — possibly late,
//!   reordered, or with malformed replies mixed in.
//!
//! Checked after every step: no interrupt reaches the guest before every write the device made
//! before raising it is applied; the queue and the outbox stay within their limits. Checked at
//! every checkpoint: secondary == primary.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use crate::backend::EventFd;
use crate::client_dma::{
    ClientDmaLimits, DmaWriteQueue, DmaWrites, Outbox, dma_write_reply, parse_dma_write,
};
use crate::wire::{Command, Header, errno};

/// Bytes of guest RAM.
pub const RAM: usize = 64 << 10;
/// Dirty-log granularity.
pub const PAGE: usize = 4096;
const RING: usize = 8;
const DESC: usize = 16;
const RX_RING: u64 = 0x0000;
const RX_BUFS: u64 = 0x1000;
const TX_RING: u64 = 0x6000;
const TX_BUFS: u64 = 0x7000;
const BUF: u64 = 0x800;
const DONE: u8 = 1;
/// The client's `max_data_xfer_size` here: a 2 KiB buffer write is two messages.
const XFER: u32 = 1024;

/// One step of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A frame of `len` bytes arrives from the wire.
    Rx(u16),
    /// The device processes one queued TX descriptor.
    DeviceTx,
    /// The device raises an interrupt with no write of its own before it (a link change, a
    /// throttling timer): behind the same writes as the one before, it is merged.
    Interrupt,
    /// The guest queues a TX frame of `len` bytes.
    GuestTx(u16),
    /// The guest cleans what its RAM shows done (RX and TX).
    GuestPoll,
    /// The client applies up to `n` `DMA_WRITE`s it received (in order).
    Apply(u8),
    /// The client sends the reply at `index` (modulo) of those it owes.
    Reply(u8),
    /// The client sends every reply it owes, last first.
    ReplyAllReversed,
    /// The client sends a malformed reply: 0 unknown id, 1 error reply to a write in flight,
    /// 2 short message, 3 a reply with a write's id but another command.
    BadReply(u8),
    /// A checkpoint: the dirty pages are copied to the secondary and the log cleared.
    Checkpoint,
}

impl Step {
    /// A step from two fuzz bytes.
    pub fn from_bytes(kind: u8, arg: u8) -> Step {
        match kind % 12 {
            0 | 1 => Step::Rx(u16::from(arg) * 8 + 1),
            2 if arg % 4 == 3 => Step::Interrupt,
            2 => Step::DeviceTx,
            3 => Step::GuestTx(u16::from(arg) * 8 + 1),
            4 | 5 => Step::GuestPoll,
            6 | 7 => Step::Apply(arg % 8),
            8 => Step::Reply(arg),
            9 => Step::ReplyAllReversed,
            // Error replies (which lose their write, so a ring may stall) are rarer.
            10 if arg % 32 == 1 => Step::BadReply(1),
            10 => Step::BadReply([0, 2, 3][arg as usize % 3]),
            _ => Step::Checkpoint,
        }
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Checkpoints taken.
    pub checkpoints: u64,
    /// Checkpoints after which the secondary differed from the primary.
    pub inconsistent: u64,
    /// Frames the device wrote into guest RAM.
    pub frames_received: u64,
    /// Interrupts the guest saw.
    pub irqs: u64,
    /// The queue failed closed (the run stopped there, as the connection would end).
    pub failed_closed: bool,
}

struct Device {
    mode: DmaWrites,
    queue: Option<Arc<DmaWriteQueue>>,
    irq: Arc<EventFd>,
    rx_head: usize,
    rx_avail: usize,
    tx_head: usize,
    tx_tail: usize,
    /// Bytes the device wrote so far.
    writes: u64,
    /// Per interrupt raised (its vector): the bytes written before it.
    raised: Vec<u64>,
}

/// The run: primary and secondary RAM, the dirty log, the three actors.
pub struct Sim {
    primary: Vec<u8>,
    secondary: Vec<u8>,
    dirty: BTreeSet<usize>,
    device: Device,
    outbox: Option<Outbox>,
    /// Bytes the outbox sent that the client has not read as messages yet.
    wire: Vec<u8>,
    /// `DMA_WRITE`s received, not applied.
    received: VecDeque<Vec<u8>>,
    /// Bytes of `DMA_WRITE`s the client applied or refused (error reply).
    applied: u64,
    /// Replies owed (ids of applied writes).
    owed: Vec<u16>,
    rx_clean: usize,
    tx_clean: usize,
    seq: u8,
    /// Interrupts the outbox handed out as due (and the client got).
    fired: u64,
    outcome: Outcome,
}

fn range(at: u64, len: usize) -> std::ops::Range<usize> {
    at as usize..at as usize + len
}

impl Sim {
    /// A fresh run in `mode` with `limits` on the client queue. The guest has armed every RX
    /// descriptor, and a first checkpoint made the secondary equal.
    pub fn new(mode: DmaWrites, limits: ClientDmaLimits) -> Result<Sim, String> {
        let irq = Arc::new(EventFd::new().map_err(|e| e.to_string())?);
        let (queue, outbox) = match mode {
            DmaWrites::Direct => (None, None),
            DmaWrites::Client => {
                let q = DmaWriteQueue::new(limits).map_err(|e| e.to_string())?;
                (Some(q.clone()), Some(Outbox::new(q, XFER)))
            }
        };
        let mut sim = Sim {
            primary: vec![0; RAM],
            secondary: vec![0; RAM],
            dirty: BTreeSet::new(),
            device: Device {
                mode,
                queue,
                irq,
                rx_head: 0,
                rx_avail: RING,
                tx_head: 0,
                tx_tail: 0,
                writes: 0,
                raised: Vec::new(),
            },
            outbox,
            wire: Vec::new(),
            received: VecDeque::new(),
            applied: 0,
            owed: Vec::new(),
            rx_clean: 0,
            tx_clean: 0,
            seq: 0,
            fired: 0,
            outcome: Outcome::default(),
        };
        for i in 0..RING {
            let desc = rx_desc(RX_BUFS + i as u64 * BUF, 0, 0);
            sim.cpu_write(RX_RING + (i * DESC) as u64, &desc);
        }
        sim.secondary.copy_from_slice(&sim.primary);
        sim.dirty.clear();
        Ok(sim)
    }

    /// Runs `steps`; `Err` names the first broken property.
    pub fn run(&mut self, steps: &[Step]) -> Result<Outcome, String> {
        for &s in steps {
            self.step(s)?;
            if self.outcome.failed_closed {
                break;
            }
        }
        Ok(self.outcome)
    }

    /// What happened so far.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    fn cpu_write(&mut self, at: u64, data: &[u8]) {
        self.primary[range(at, data.len())].copy_from_slice(data);
        mark(&mut self.dirty, at, data.len());
    }

    fn device_write(&mut self, at: u64, data: &[u8]) {
        self.device.writes += data.len() as u64;
        match (&self.device.mode, &self.device.queue) {
            (DmaWrites::Client, Some(q)) => {
                q.write(at, data);
            }
            _ => self.primary[range(at, data.len())].copy_from_slice(data),
        }
    }

    fn raise(&mut self) {
        let vector = self.device.raised.len() as u32;
        self.device.raised.push(self.device.writes);
        match &self.device.queue {
            Some(q) => {
                q.irq(vector, self.device.irq.clone());
            }
            None => {
                let _ = self.device.irq.signal();
            }
        }
    }

    fn step(&mut self, step: Step) -> Result<(), String> {
        match step {
            Step::Rx(len) => self.rx(len),
            Step::DeviceTx => self.device_tx(),
            Step::Interrupt => self.raise(),
            Step::GuestTx(len) => self.guest_tx(len),
            Step::GuestPoll => self.guest_poll(),
            Step::Apply(n) => self.apply(n as usize)?,
            Step::Reply(i) => {
                if !self.owed.is_empty() {
                    let id = self.owed.remove(i as usize % self.owed.len());
                    self.reply(&dma_write_reply(id, None));
                }
            }
            Step::ReplyAllReversed => {
                while let Some(id) = self.owed.pop() {
                    self.reply(&dma_write_reply(id, None));
                }
            }
            Step::BadReply(kind) => self.bad_reply(kind),
            Step::Checkpoint => self.checkpoint(),
        }
        self.pump()
    }

    fn rx(&mut self, len: u16) {
        if self.device.rx_avail == 0 {
            return;
        }
        let slot = RX_RING + (self.device.rx_head * DESC) as u64;
        let mut desc = [0u8; DESC];
        desc.copy_from_slice(&self.primary[range(slot, DESC)]);
        let buf = u64::from_le_bytes(desc[0..8].try_into().unwrap_or_default());
        let len = (u64::from(len)).min(BUF) as usize;
        self.seq = self.seq.wrapping_add(1);
        let frame: Vec<u8> = (0..len).map(|i| self.seq ^ i as u8).collect();
        if buf.checked_add(len as u64).is_none_or(|e| e > RAM as u64) {
            return;
        }
        self.device_write(buf, &frame);
        self.device_write(slot, &rx_desc(buf, len as u16, DONE));
        self.device.rx_head = (self.device.rx_head + 1) % RING;
        self.device.rx_avail -= 1;
        self.outcome.frames_received += 1;
        self.raise();
    }

    fn device_tx(&mut self) {
        if self.device.tx_head == self.device.tx_tail {
            return;
        }
        let slot = TX_RING + (self.device.tx_head * DESC) as u64;
        let mut desc = [0u8; DESC];
        desc.copy_from_slice(&self.primary[range(slot, DESC)]);
        desc[10] = DONE;
        self.device_write(slot, &desc);
        self.device.tx_head = (self.device.tx_head + 1) % RING;
        self.raise();
    }

    fn guest_tx(&mut self, len: u16) {
        if (self.device.tx_tail + 1) % RING == self.tx_clean {
            return;
        }
        let i = self.device.tx_tail;
        let buf = TX_BUFS + i as u64 * BUF;
        let len = u64::from(len).min(BUF) as usize;
        let frame = vec![0xA0 ^ i as u8; len];
        self.cpu_write(buf, &frame);
        self.cpu_write(TX_RING + (i * DESC) as u64, &rx_desc(buf, len as u16, 0));
        self.device.tx_tail = (i + 1) % RING;
    }

    fn guest_poll(&mut self) {
        // Interrupts are what wakes the guest; it also polls (NAPI), so it may see done bits
        // without one: the property checked is the interrupt order, not the polling.
        if self.device.irq.take().unwrap_or(0) > 0 {
            self.outcome.irqs += 1;
        }
        loop {
            let slot = RX_RING + (self.rx_clean * DESC) as u64;
            if self.primary[slot as usize + 10] & DONE == 0 {
                break;
            }
            let buf = RX_BUFS + self.rx_clean as u64 * BUF;
            self.cpu_write(slot, &rx_desc(buf, 0, 0));
            self.rx_clean = (self.rx_clean + 1) % RING;
            self.device.rx_avail += 1;
        }
        while self.tx_clean != self.device.tx_tail {
            let slot = TX_RING + (self.tx_clean * DESC) as u64;
            if self.primary[slot as usize + 10] & DONE == 0 {
                break;
            }
            self.cpu_write(slot + 10, &[0]);
            self.tx_clean = (self.tx_clean + 1) % RING;
        }
    }

    fn apply(&mut self, n: usize) -> Result<(), String> {
        for _ in 0..n {
            let Some(m) = self.received.pop_front() else {
                break;
            };
            let (id, address, data) =
                parse_dma_write(&m).ok_or("the outbox sent a malformed DMA_WRITE")?;
            let at = address as usize;
            let end = at
                .checked_add(data.len())
                .filter(|&e| e <= RAM)
                .ok_or("a DMA_WRITE outside guest RAM")?;
            self.primary[at..end].copy_from_slice(data);
            mark(&mut self.dirty, address, data.len());
            self.applied += data.len() as u64;
            self.owed.push(id);
        }
        Ok(())
    }

    fn reply(&mut self, message: &[u8]) {
        if let Some(o) = self.outbox.as_mut() {
            o.on_reply(message);
        }
    }

    fn bad_reply(&mut self, kind: u8) {
        let Some(o) = self.outbox.as_mut() else {
            return;
        };
        match kind {
            0 => o.on_reply(&dma_write_reply(0xFFFF, None)),
            1 => {
                // An error reply: the client did not apply it. Only to a write that was
                // never applied, or the guest would see its bytes applied and "failed".
                // Its bytes never reach RAM (as a posted write that master-aborts); nothing
                // was written anywhere, so the oracle's comparison is unaffected.
                if let Some(m) = self.received.pop_back()
                    && let Some((id, _, data)) = parse_dma_write(&m)
                {
                    self.applied += data.len() as u64;
                    o.on_reply(&dma_write_reply(id, Some(errno::EFAULT)));
                }
            }
            2 => o.on_reply(&[1, 0, 12, 0]),
            _ => {
                if let Some(&id) = self.owed.first() {
                    let h = Header {
                        id,
                        command: Command::RegionRead,
                        size: 16,
                        flags: 0,
                        error: 0,
                    };
                    o.on_reply(&crate::wire::reply(&h, &[]));
                }
            }
        }
    }

    fn checkpoint(&mut self) {
        for &p in &self.dirty {
            let r = p * PAGE..(p + 1) * PAGE;
            self.secondary[r.clone()].copy_from_slice(&self.primary[r]);
        }
        self.dirty.clear();
        self.outcome.checkpoints += 1;
        if self.secondary != self.primary {
            self.outcome.inconsistent += 1;
        }
    }

    /// Moves messages out of the outbox to the client and fires due interrupts, checking the
    /// order and the bounds.
    fn pump(&mut self) -> Result<(), String> {
        let Some(o) = self.outbox.as_mut() else {
            return Ok(());
        };
        if o.failed() {
            self.outcome.failed_closed = true;
            return Ok(());
        }
        o.pull(&mut self.wire);
        while self.wire.len() >= 16 {
            let size = Header::parse(&self.wire)
                .map_err(|e| format!("the outbox sent an unreadable header: {e}"))?
                .size as usize;
            if self.wire.len() < size {
                return Err("the outbox sent a partial message".into());
            }
            self.received.push_back(self.wire.drain(..size).collect());
        }
        for irq in o.due() {
            let before = self
                .device
                .raised
                .get(irq.vector as usize)
                .copied()
                .unwrap_or(u64::MAX);
            if self.applied < before {
                return Err(format!(
                    "interrupt {} fired with {} bytes applied, {before} written before it",
                    irq.vector, self.applied
                ));
            }
            let _ = irq.eventfd.signal();
            self.fired += 1;
        }
        // Every interrupt the outbox took is merged into an earlier one, handed out, or held.
        let c = o.queue().counters();
        if c.irqs_deferred != c.irqs_merged + self.fired + o.held() as u64 {
            return Err(format!(
                "interrupts unaccounted for: {} deferred, {} merged, {} fired, {} held",
                c.irqs_deferred,
                c.irqs_merged,
                self.fired,
                o.held()
            ));
        }
        let limits = o.queue().limits();
        if o.queue().pending_bytes() > limits.max_bytes {
            return Err(format!(
                "{} bytes pending, over the {} allowed",
                o.queue().pending_bytes(),
                limits.max_bytes
            ));
        }
        // The outbox stops taking items at the bound; the last one may add its chunks.
        let chunks = (BUF as usize).div_ceil(XFER as usize);
        if o.in_flight() > limits.max_items + chunks - 1 {
            return Err(format!("{} messages in flight", o.in_flight()));
        }
        if o.held() > limits.max_items {
            return Err(format!("{} interrupts held", o.held()));
        }
        Ok(())
    }
}

fn mark(dirty: &mut BTreeSet<usize>, at: u64, len: usize) {
    if len == 0 {
        return;
    }
    let first = at as usize / PAGE;
    let last = (at as usize + len - 1) / PAGE;
    dirty.extend(first..=last);
}

fn rx_desc(buf: u64, len: u16, status: u8) -> [u8; DESC] {
    let mut d = [0u8; DESC];
    d[0..8].copy_from_slice(&buf.to_le_bytes());
    d[8..10].copy_from_slice(&len.to_le_bytes());
    d[10] = status;
    d
}

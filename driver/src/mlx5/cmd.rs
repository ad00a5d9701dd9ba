//! The command interface: the queue page handed to the device, entries with their mailbox
//! chains, the rolling token, ownership polling with a timeout, and the delivery status,
//! command status and syndrome turned into typed errors.
//!
//! As Linux `cmd.c` does: slots `0 .. 2^log_size − 1` carry ordinary commands (this driver runs
//! one at a time in slot 0) and the last slot is kept for the MANAGE_PAGES that answer
//! page-request events. Each slot owns a mailbox area: a chain of 1 KiB-aligned blocks for the
//! input after its first 16 bytes, then one for the output. Signatures are filled although
//! the driver turns checksums off (`cmdif_checksum` 0), so a device checking them is
//! satisfied too.
//!
//! Memory ordering: entry and blocks are written, [`doorbell_fence`] orders them before the
//! doorbell write; after the ownership bit is seen clear, [`completion_fence`] orders the read
//! of the output after it.

use mlx5_hw::cmd::{
    CMD_TYPE_PCIE, CommandStatus, DeliveryStatus, ENTRY_LEN, INLINE_LEN, InputHeader,
    MAILBOX_ALLOC_ALIGN, MAILBOX_BLOCK_LEN, MAILBOX_DATA_LEN, MailboxBlock, Opcode, OutputHeader,
    QueueEntry, doorbell_bit, mailbox_blocks, page_request_slot,
};
use mlx5_hw::init_seg::{MAX_LOG_CMDQ_BYTES, MAX_LOG_CMDQ_SIZE, Register};

use super::error::Mlx5Error;
use super::iseg::Mlx5Bar;
use super::queues::EventQueue;
use crate::backend::{
    Clock, DmaAllocator, DmaRegion, RegisterIo, completion_fence, doorbell_fence,
};
use mlx5_hw::eqe::EventData;

/// Mailbox blocks per slot: input and output together up to 64 × 512 bytes.
pub const BLOCKS_PER_SLOT: usize = 64;
/// Bytes of one slot's mailbox area.
const SLOT_AREA: usize = BLOCKS_PER_SLOT * MAILBOX_ALLOC_ALIGN as usize;
/// The slot ordinary commands use.
pub const COMMAND_SLOT: u8 = 0;
/// First poll interval; doubled up to [`MAX_POLL_NS`].
const FIRST_POLL_NS: u64 = 1_000;
/// Longest poll interval.
const MAX_POLL_NS: u64 = 1_000_000;

/// A command record: what was sent and how it ended, kept for tests and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    /// The opcode.
    pub opcode: Opcode,
    /// The op_mod.
    pub op_mod: u16,
    /// The slot.
    pub slot: u8,
    /// Command status (`None`: delivery error or timeout).
    pub status: Option<CommandStatus>,
}

/// Counters of the command interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandCounters {
    /// Commands that completed with status OK.
    pub ok: u64,
    /// Commands the device refused (non-zero status).
    pub failed: u64,
    /// Delivery errors.
    pub delivery_errors: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Recoveries of the command interface after a timeout.
    pub recoveries: u64,
    /// EQEs on the command EQ that were not command completions (counted, ignored).
    pub stray_events: u64,
}

/// The command queue of one function.
pub struct CommandQueue<G: DmaRegion> {
    page: G,
    mailboxes: G,
    log_size: u8,
    log_stride: u8,
    token: u8,
    timeout_ns: u64,
    down: bool,
    completed: u32,
    trace: Vec<CommandRecord>,
    counters: CommandCounters,
}

impl<G: DmaRegion> CommandQueue<G> {
    /// Allocates the queue page and the mailbox areas, checks the geometry the device reports
    /// and hands it the queue address (`cmdq_addr_h`, then `cmdq_addr_l_sz`), as
    /// `mlx5_cmd_enable` does.
    pub fn new<R: RegisterIo, D: DmaAllocator<Region = G>>(
        bar: &Mlx5Bar<R>,
        dma: &D,
        timeout_ns: u64,
    ) -> Result<Self, Mlx5Error> {
        let l = bar.read(Register::CmdqAddrLSz);
        let log_size = ((l >> 4) & 0xF) as u8;
        let log_stride = (l & 0xF) as u8;
        if log_size == 0
            || log_size > MAX_LOG_CMDQ_SIZE
            || log_size + log_stride > MAX_LOG_CMDQ_BYTES
            || (1usize << log_stride) < ENTRY_LEN
        {
            return Err(Mlx5Error::CmdqGeometry {
                log_size,
                log_stride,
            });
        }
        let page = dma.allocate(4096)?;
        let mailboxes = dma.allocate(2 * SLOT_AREA)?;
        let q = CommandQueue {
            page,
            mailboxes,
            log_size,
            log_stride,
            token: 0,
            timeout_ns,
            down: false,
            completed: 0,
            trace: Vec::new(),
            counters: CommandCounters::default(),
        };
        q.hand_to_device(bar);
        Ok(q)
    }

    /// Writes the queue address into the init segment (high, then low with NIC interface 0 =
    /// full driver).
    fn hand_to_device<R: RegisterIo>(&self, bar: &Mlx5Bar<R>) {
        let addr = self.page.iova().0;
        bar.write(Register::CmdqAddrH, (addr >> 32) as u32);
        doorbell_fence();
        bar.write(Register::CmdqAddrLSz, (addr as u32) & 0xFFFF_F000);
    }

    /// The slot kept for page-request answers (the last one).
    pub fn page_slot(&self) -> u8 {
        page_request_slot(self.log_size)
    }

    /// The queue size the device reported (log2).
    pub fn log_size(&self) -> u8 {
        self.log_size
    }

    /// Every command sent so far, in order.
    pub fn trace(&self) -> &[CommandRecord] {
        &self.trace
    }

    /// Counters.
    pub fn counters(&self) -> CommandCounters {
        self.counters
    }

    /// True after a timeout until [`CommandQueue::recover`].
    pub fn is_down(&self) -> bool {
        self.down
    }

    /// The command timeout.
    pub fn timeout_ns(&self) -> u64 {
        self.timeout_ns
    }

    fn next_token(&mut self) -> u8 {
        self.token = if self.token == u8::MAX {
            1
        } else {
            self.token + 1
        };
        self.token
    }

    fn entry_offset(&self, slot: u8) -> usize {
        usize::from(slot) << self.log_stride
    }

    fn area(slot: u8) -> usize {
        if slot == COMMAND_SLOT { 0 } else { SLOT_AREA }
    }

    /// Runs `input` in slot `slot` and returns the `out_len`-byte output; a non-OK status is
    /// [`Mlx5Error::Command`], a delivery error [`Mlx5Error::Delivery`], no answer within the
    /// timeout [`Mlx5Error::CommandTimeout`] (after which the interface is down until
    /// [`CommandQueue::recover`]).
    ///
    /// Polling mode (`events` `None`): the entry's ownership bit is polled. Event mode (the
    /// command EQ): completion is the command EQE whose slot bitmask has the slot's bit, as
    /// `mlx5_cmd_comp_handler` takes it; the EQ is re-armed after each drain.
    pub fn exec<R: RegisterIo, C: Clock>(
        &mut self,
        bar: &Mlx5Bar<R>,
        clock: &C,
        slot: u8,
        input: &[u8],
        out_len: usize,
        mut events: Option<&mut EventQueue<G>>,
    ) -> Result<Vec<u8>, Mlx5Error> {
        let header = InputHeader::parse(input).map_err(|source| Mlx5Error::MalformedOutput {
            opcode: Opcode::Unknown(0),
            source,
        })?;
        let opcode = header.opcode;
        if self.down {
            return Err(Mlx5Error::CommandInterfaceDown { opcode });
        }
        let out_len = out_len.max(mlx5_hw::cmd::HEADER_LEN);
        let n_in = mailbox_blocks(input.len());
        let n_out = mailbox_blocks(out_len);
        if n_in + n_out > BLOCKS_PER_SLOT || slot >= (1 << self.log_size) {
            return Err(Mlx5Error::MessageTooLong {
                opcode,
                len: input.len().max(out_len),
                max: BLOCKS_PER_SLOT * MAILBOX_DATA_LEN / 2,
            });
        }
        let token = self.next_token();
        let area = Self::area(slot);
        let block_at = |k: usize| area + k * MAILBOX_ALLOC_ALIGN as usize;
        let base = self.mailboxes.iova().0;
        // Input chain.
        let rest = input.get(INLINE_LEN..).unwrap_or_default();
        let mut chunks = rest.chunks(MAILBOX_DATA_LEN);
        for k in 0..n_in {
            let next = (k + 1 < n_in).then(|| base + block_at(k + 1) as u64);
            self.write_block(
                block_at(k),
                k,
                next,
                token,
                chunks.next().unwrap_or_default(),
            );
        }
        // Output chain, data zeroed.
        for k in 0..n_out {
            let next = (k + 1 < n_out).then(|| base + block_at(n_in + k + 1) as u64);
            self.write_block(block_at(n_in + k), k, next, token, &[]);
        }
        let mut raw = [0u8; ENTRY_LEN];
        if let Ok(mut e) = QueueEntry::new_checked(&mut raw[..]) {
            e.set_cmd_type(CMD_TYPE_PCIE);
            e.set_input_length(input.len() as u32);
            e.set_input_mailbox(if n_in > 0 {
                base + block_at(0) as u64
            } else {
                0
            });
            let _fits = e.set_inline_input(&input[..input.len().min(INLINE_LEN)]);
            e.set_output_mailbox(if n_out > 0 {
                base + block_at(n_in) as u64
            } else {
                0
            });
            e.set_output_length(out_len as u32);
            e.set_token(token);
            e.set_owned_by_hw(true);
            e.fill_signature();
        }
        let entry_at = self.entry_offset(slot);
        self.page.write(entry_at, &raw);
        // Orders the entry and mailbox writes before the doorbell.
        doorbell_fence();
        bar.write(Register::CmdDbell, doorbell_bit(slot).unwrap_or(0));

        let start = clock.now_ns();
        let mut interval = FIRST_POLL_NS;
        let bit = doorbell_bit(slot).unwrap_or(0);
        loop {
            let done = match events.as_deref_mut() {
                Some(eq) => {
                    let mut drained = false;
                    while let Some(e) = eq.next_eqe() {
                        drained = true;
                        if let EventData::Cmd { vector } = e.data {
                            self.completed |= vector;
                        } else {
                            self.counters.stray_events += 1;
                        }
                    }
                    if drained {
                        eq.doorbell(bar, true);
                    }
                    self.completed & bit != 0
                }
                None => {
                    let mut status = [0u8; 1];
                    self.page.read(entry_at + ENTRY_LEN - 1, &mut status);
                    status[0] & 1 == 0
                }
            };
            if done {
                self.completed &= !bit;
                break;
            }
            let waited = clock.now_ns().saturating_sub(start);
            if waited >= self.timeout_ns {
                self.down = true;
                self.counters.timeouts += 1;
                self.record(opcode, header.op_mod, slot, None);
                let health = bar.health();
                if health.fatal {
                    return Err(Mlx5Error::DeviceFatal(health));
                }
                return Err(Mlx5Error::CommandTimeout {
                    opcode,
                    waited_ms: waited / 1_000_000,
                    health,
                });
            }
            clock.delay_ns(interval);
            interval = (interval * 2).min(MAX_POLL_NS);
        }
        // Orders the ownership read before the reads of the output.
        completion_fence();
        self.page.read(entry_at, &mut raw);
        let Ok(e) = QueueEntry::new_checked(&raw[..]) else {
            return Err(Mlx5Error::Delivery {
                opcode,
                status: DeliveryStatus::Unknown(0xFF),
            });
        };
        let delivery = e.delivery_status();
        if delivery != DeliveryStatus::Ok {
            self.counters.delivery_errors += 1;
            self.record(opcode, header.op_mod, slot, None);
            return Err(Mlx5Error::Delivery {
                opcode,
                status: delivery,
            });
        }
        let mut out = vec![0u8; out_len];
        let n = out_len.min(INLINE_LEN);
        out[..n].copy_from_slice(&e.inline_output()[..n]);
        for (k, chunk) in out[n..].chunks_mut(MAILBOX_DATA_LEN).enumerate() {
            self.mailboxes.read(block_at(n_in + k), chunk);
        }
        let h = OutputHeader::parse(&out)
            .map_err(|source| Mlx5Error::MalformedOutput { opcode, source })?;
        self.record(opcode, header.op_mod, slot, Some(h.status));
        if h.status != CommandStatus::Ok {
            self.counters.failed += 1;
            return Err(Mlx5Error::Command {
                opcode,
                op_mod: header.op_mod,
                status: h.status,
                raw_status: u8::from(h.status),
                syndrome: h.syndrome,
            });
        }
        self.counters.ok += 1;
        Ok(out)
    }

    fn record(&mut self, opcode: Opcode, op_mod: u16, slot: u8, status: Option<CommandStatus>) {
        self.trace.push(CommandRecord {
            opcode,
            op_mod,
            slot,
            status,
        });
    }

    fn write_block(&self, at: usize, pos: usize, next: Option<u64>, token: u8, data: &[u8]) {
        let mut b = [0u8; MAILBOX_BLOCK_LEN];
        if let Ok(mut m) = MailboxBlock::new_checked(&mut b[..]) {
            m.data_mut()[..data.len()].copy_from_slice(data);
            m.set_next(next.unwrap_or(0));
            m.set_block_number(pos as u32);
            m.set_token(token);
            m.fill_signatures();
        }
        self.mailboxes.write(at, &b);
    }

    /// Brings the command interface back after a timeout: clears every entry the device
    /// still owns (software takes them back), writes the queue address again (which restarts
    /// the device's command interface) and marks the interface up. The caller checks health
    /// first and proves the interface with a harmless command.
    pub fn recover<R: RegisterIo>(&mut self, bar: &Mlx5Bar<R>) {
        let entries = 1usize << self.log_size;
        for slot in 0..entries {
            let at = self.entry_offset(slot as u8) + ENTRY_LEN - 1;
            self.page.write(at, &[0]);
        }
        self.hand_to_device(bar);
        self.down = false;
        self.completed = 0;
        self.counters.recoveries += 1;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::sync::{Arc, Mutex};

    use hw_common::Iova;
    use igb_hw::RegisterOffset;
    use mlx5_hw::cmd::{MailboxBlock, QueueEntry};

    use super::*;
    use crate::backend::{DmaError, RegisterIo};

    /// Host memory of the fake: regions by IOVA.
    type Mem = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

    fn mem_read(mem: &Mem, iova: u64, buf: &mut [u8]) {
        for (base, bytes) in mem.lock().unwrap().iter() {
            if iova >= *base && iova + buf.len() as u64 <= *base + bytes.len() as u64 {
                let at = (iova - base) as usize;
                buf.copy_from_slice(&bytes[at..at + buf.len()]);
                return;
            }
        }
        panic!("fake device read outside host memory at {iova:#x}");
    }

    fn mem_write(mem: &Mem, iova: u64, data: &[u8]) {
        for (base, bytes) in mem.lock().unwrap().iter_mut() {
            let base = *base;
            if iova >= base && iova + data.len() as u64 <= base + bytes.len() as u64 {
                let at = (iova - base) as usize;
                bytes[at..at + data.len()].copy_from_slice(data);
                return;
            }
        }
        panic!("fake device write outside host memory at {iova:#x}");
    }

    #[derive(Clone)]
    struct FakeDma {
        mem: Mem,
        next: Arc<Mutex<u64>>,
    }

    struct FakeRegion {
        mem: Mem,
        iova: u64,
        len: usize,
    }

    impl DmaAllocator for FakeDma {
        type Region = FakeRegion;
        fn allocate(&self, len: usize) -> Result<FakeRegion, DmaError> {
            let len = len.div_ceil(4096) * 4096;
            let mut next = self.next.lock().unwrap();
            let iova = *next;
            *next += len as u64;
            self.mem.lock().unwrap().push((iova, vec![0; len]));
            Ok(FakeRegion {
                mem: self.mem.clone(),
                iova,
                len,
            })
        }
    }

    impl DmaRegion for FakeRegion {
        fn iova(&self) -> Iova {
            Iova(self.iova)
        }
        fn len(&self) -> usize {
            self.len
        }
        fn read(&self, offset: usize, buf: &mut [u8]) {
            mem_read(&self.mem, self.iova + offset as u64, buf);
        }
        fn write(&self, offset: usize, data: &[u8]) {
            mem_write(&self.mem, self.iova + offset as u64, data);
        }
    }

    /// What the fake device does with a posted command.
    #[derive(Clone, Debug)]
    enum Behaviour {
        /// Returns the entry with this delivery status.
        Deliver(DeliveryStatus),
        /// Answers with these output bytes (status and all).
        Answer(Vec<u8>),
    }

    /// A device that checks each posted entry and its chains as a device does and answers.
    #[derive(Clone)]
    struct FakeDevice {
        mem: Mem,
        cmdq: Arc<Mutex<u64>>,
        behaviour: Arc<Mutex<Behaviour>>,
        inputs: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl FakeDevice {
        fn chain(&self, mut ptr: u64, token: u8) -> Vec<u64> {
            let mut blocks = Vec::new();
            while ptr != 0 {
                let mut b = [0u8; MAILBOX_BLOCK_LEN];
                mem_read(&self.mem, ptr, &mut b);
                let m = MailboxBlock::new_checked(&b[..]).unwrap();
                assert_eq!(m.block_number() as usize, blocks.len(), "block number");
                assert_eq!(m.token(), token, "block token");
                assert!(m.signatures_ok());
                assert_eq!(ptr % MAILBOX_ALLOC_ALIGN, 0);
                blocks.push(ptr);
                ptr = m.next();
            }
            blocks
        }

        fn doorbell(&self, mask: u32) {
            assert_eq!(mask, 1, "one command at a time in slot 0");
            let at = *self.cmdq.lock().unwrap();
            let mut raw = [0u8; ENTRY_LEN];
            mem_read(&self.mem, at, &mut raw);
            let mut e = QueueEntry::new_checked(&mut raw[..]).unwrap();
            assert!(e.owned_by_hw() && e.signature_ok() && e.token() != 0);
            assert_eq!(e.cmd_type(), CMD_TYPE_PCIE);
            let token = e.token();
            let in_blocks = self.chain(e.input_mailbox(), token);
            let out_blocks = self.chain(e.output_mailbox(), token);
            let mut input = e.inline_input()[..(e.input_length() as usize).min(16)].to_vec();
            for b in &in_blocks {
                let mut d = [0u8; MAILBOX_DATA_LEN];
                mem_read(&self.mem, *b, &mut d);
                input.extend_from_slice(&d);
            }
            input.truncate(e.input_length() as usize);
            self.inputs.lock().unwrap().push(input);
            match self.behaviour.lock().unwrap().clone() {
                Behaviour::Deliver(s) => e.set_delivery_status(s),
                Behaviour::Answer(out) => {
                    assert!(out.len() <= e.output_length() as usize);
                    let n = out.len().min(INLINE_LEN);
                    e.set_inline_output(&out[..n]);
                    for (b, chunk) in out_blocks.iter().zip(out[n..].chunks(MAILBOX_DATA_LEN)) {
                        mem_write(&self.mem, *b, chunk);
                    }
                    e.set_delivery_status(DeliveryStatus::Ok);
                }
            }
            e.set_owned_by_hw(false);
            mem_write(&self.mem, at, &raw);
        }
    }

    impl RegisterIo for FakeDevice {
        fn read32(&self, offset: RegisterOffset) -> u32 {
            if offset.0 == Register::CmdqAddrLSz.offset() {
                return 0x56u32.swap_bytes();
            }
            0
        }
        fn write32(&self, offset: RegisterOffset, value: u32) {
            let value = value.swap_bytes();
            if offset.0 == Register::CmdqAddrH.offset() {
                *self.cmdq.lock().unwrap() = u64::from(value) << 32;
            } else if offset.0 == Register::CmdqAddrLSz.offset() {
                *self.cmdq.lock().unwrap() |= u64::from(value & 0xFFFF_F000);
            } else if offset.0 == Register::CmdDbell.offset() {
                self.doorbell(value);
            }
        }
    }

    struct NoTime;
    impl Clock for NoTime {
        fn now_ns(&self) -> u64 {
            0
        }
        fn delay_ns(&self, _ns: u64) {}
    }

    fn setup(b: Behaviour) -> (FakeDevice, Mlx5Bar<FakeDevice>, CommandQueue<FakeRegion>) {
        let mem: Mem = Arc::new(Mutex::new(Vec::new()));
        let dma = FakeDma {
            mem: mem.clone(),
            next: Arc::new(Mutex::new(0x10_0000)),
        };
        let dev = FakeDevice {
            mem,
            cmdq: Arc::new(Mutex::new(0)),
            behaviour: Arc::new(Mutex::new(b)),
            inputs: Arc::new(Mutex::new(Vec::new())),
        };
        let bar = Mlx5Bar::new(dev.clone());
        let q = CommandQueue::new(&bar, &dma, 1_000_000).unwrap();
        assert_eq!(*dev.cmdq.lock().unwrap(), 0x10_0000);
        (dev, bar, q)
    }

    fn message(opcode: Opcode, len: usize) -> Vec<u8> {
        let mut m: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        InputHeader {
            opcode,
            uid: 0,
            op_mod: 3,
        }
        .emit(&mut m)
        .unwrap();
        m
    }

    #[test]
    fn long_input_and_output_travel_through_mailbox_chains() {
        let mut out: Vec<u8> = (0..0x1010).map(|i| (i % 251) as u8).collect();
        OutputHeader::OK.emit(&mut out).unwrap();
        let (dev, bar, mut q) = setup(Behaviour::Answer(out.clone()));
        let input = message(Opcode::SetHcaCap, 0x1010);
        let got = q.exec(&bar, &NoTime, 0, &input, 0x1010, None).unwrap();
        assert_eq!(got, out, "16 inline bytes and 8 blocks back in order");
        assert_eq!(dev.inputs.lock().unwrap()[0], input);
        // Tokens roll: the next command carries another one (checked in each block).
        q.exec(&bar, &NoTime, 0, &input, 0x1010, None).unwrap();
        assert_eq!(q.counters().ok, 2);
    }

    #[test]
    fn a_delivery_error_names_the_command_and_status() {
        let (_dev, bar, mut q) = setup(Behaviour::Deliver(DeliveryStatus::Token));
        let e = q
            .exec(
                &bar,
                &NoTime,
                0,
                &message(Opcode::CreateEq, 0x120),
                0x10,
                None,
            )
            .unwrap_err();
        match &e {
            Mlx5Error::Delivery { opcode, status } => {
                assert_eq!(
                    (*opcode, *status),
                    (Opcode::CreateEq, DeliveryStatus::Token)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string()
                .starts_with("CREATE_EQ(0x301): delivery failed")
        );
        assert_eq!(q.counters().delivery_errors, 1);
        assert!(
            !q.is_down(),
            "a delivery error does not take the interface down"
        );
    }

    #[test]
    fn a_failed_status_carries_op_mod_and_syndrome() {
        let mut out = vec![0u8; 0x10];
        OutputHeader {
            status: CommandStatus::BadParam,
            syndrome: 0x0059_5b5d,
        }
        .emit(&mut out)
        .unwrap();
        let (_dev, bar, mut q) = setup(Behaviour::Answer(out));
        let e = q
            .exec(
                &bar,
                &NoTime,
                0,
                &message(Opcode::CreateTis, 0xC0),
                0x10,
                None,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "CREATE_TIS(0x912) op_mod(0x3) failed, status BadParam (0x3), syndrome 0x595b5d"
        );
    }

    #[test]
    fn messages_beyond_the_mailbox_area_are_refused_before_posting() {
        let (dev, bar, mut q) = setup(Behaviour::Deliver(DeliveryStatus::Ok));
        let input = message(Opcode::ManagePages, 16 + 8 * 8192);
        assert!(matches!(
            q.exec(&bar, &NoTime, 0, &input, 0x10, None),
            Err(Mlx5Error::MessageTooLong {
                opcode: Opcode::ManagePages,
                ..
            })
        ));
        assert!(dev.inputs.lock().unwrap().is_empty());
    }
}

//! Test support (feature `test-utils`): a minimal command driver that does what a driver's
//! command layer does — hands the device a command queue page, builds entries and mailbox
//! chains in a [`SharedMemory`] mapped into the function's IOMMU, rings the doorbell and
//! polls ownership — plus the `mlx5_core` bring-up order up to INIT_HCA, and the event side:
//! MSI-X programming, EQ creation, polling EQEs by owner bit and the EQ doorbell; CQ creation,
//! polling CQEs by owner bit, the CQ doorbell record and arm doorbell; in [`queues`] the
//! queue objects (TIS, SQ, RQ, TIR, RQT, flow steering) and the driver's side of the
//! datapath. For the model's tests, the fuzz targets and driver tests.
// Test support: a failed expectation panics with the command and its status.
#![allow(clippy::panic)]

pub mod queues;

use std::sync::Arc;

use adapter_core::SimTime;
use adapter_core::memory::{DmaTarget, SharedMemory};
use hw_common::Iova;
use mlx5_hw::caps::CAP_MESSAGE_OFFSET;
use mlx5_hw::caps::{CAP_LEN, GeneralCaps};
use mlx5_hw::cmd::{
    CMD_TYPE_PCIE, CommandStatus, DeliveryStatus, ENTRY_LEN, INLINE_LEN, InputHeader,
    MAILBOX_BLOCK_LEN, MAILBOX_DATA_LEN, MailboxBlock, Opcode, OutputHeader, QueueEntry,
    mailbox_blocks,
};
use mlx5_hw::commands::lifecycle::{PAS_OFFSET, RegisterId, access_reg_op};
use mlx5_hw::init_seg::Register;

use mlx5_hw::commands::queues::{
    CreateCqIn, CreateEqIn, PAS_OFFSET as CREATE_PAS_OFFSET, create_in_len,
};
use mlx5_hw::cqe::{
    CQ_ARM_DOORBELL_LEN, CQ_CI_MASK, CQ_DB_RECORD_LEN, CQE_INITIAL_OP_OWN, CQE_LEN, CqArmCmd,
    CqArmDoorbell, CqArmDoorbellRepr, Cqe, CqeOpcode, CqeRepr, owner_bit,
};
use mlx5_hw::eqe::{EQ_CI_MASK, EQE_INITIAL_OWNER, EQE_LEN, EqDoorbellRepr, EqeRepr, EventType};
use mlx5_hw::pci::{layout, msix};
use mlx5_hw::uar::{CQ_ARM_DOORBELL, EQ_DOORBELL_ARM, EQ_DOORBELL_UPDATE_CI, UAR_PAGE_LEN};

use crate::commands::HOST_ENDIANNESS_MSG_LEN;
use crate::config::msix_cap;
use crate::function::FunctionId;
use crate::nic::Mlx5Nic;

/// IOVA at which the driver's memory is mapped.
pub const MEM_IOVA: u64 = 0x1000_0000;
/// Bytes of the driver's memory.
pub const MEM_LEN: usize = 4 << 20;
/// Offset of the command queue page.
const CMDQ_OFF: u64 = 0;
/// Offset of the mailbox areas (one per slot).
const MBOX_OFF: u64 = 0x1000;
/// Bytes of mailbox area per slot (64 blocks of 1 KiB: input and output of a command together
/// up to about 32 KiB).
const MBOX_AREA: u64 = 0x1_0000;
/// Offset of the pages given to the device.
const PAGES_OFF: u64 = 0x21_0000;
/// Alignment of mailbox blocks (as drivers allocate them).
const BLOCK_ALIGN: u64 = 1024;

/// A command posted in a slot: where its pieces are, for checks and corruption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    /// Queue slot.
    pub slot: u8,
    /// IOVA of the entry.
    pub entry: u64,
    /// IOVAs of the input blocks, in chain order.
    pub in_blocks: Vec<u64>,
    /// IOVAs of the output blocks, in chain order.
    pub out_blocks: Vec<u64>,
    /// Output length.
    pub out_len: usize,
}

/// Why a command gave no output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdError {
    /// The entry still belongs to the device (not processed).
    NotCompleted,
    /// The device refused it with a delivery status.
    Delivery(DeliveryStatus),
}

/// A command's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Command status.
    pub status: CommandStatus,
    /// Syndrome.
    pub syndrome: u32,
    /// The whole output message.
    pub bytes: Vec<u8>,
}

impl Output {
    /// The big-endian dword at byte `at` of the output (0 past the end).
    pub fn dword(&self, at: usize) -> u32 {
        self.bytes
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// An input message of `len` bytes with the header set.
pub fn input(opcode: Opcode, op_mod: u16, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len.max(8)];
    let _ = InputHeader {
        opcode,
        uid: 0,
        op_mod,
    }
    .emit(&mut m);
    m.truncate(len);
    m
}

/// ACCESS_REG of HOST_ENDIANNESS (`op_mod`: 0 write, 1 read) with `he` (host big-endian).
pub fn host_endianness(op_mod: u16, big_endian: bool) -> Vec<u8> {
    let mut m = input(Opcode::AccessReg, op_mod, HOST_ENDIANNESS_MSG_LEN);
    put_dword(
        &mut m,
        0x08,
        u32::from(u16::from(RegisterId::HostEndianness)),
    );
    if big_endian {
        m[0x10] = 0x80;
    }
    m
}

/// Sets the big-endian dword at `at` of a message.
pub fn put_dword(msg: &mut [u8], at: usize, v: u32) {
    if let Some(b) = msg.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// A command driver for one function.
pub struct CmdDriver {
    /// The function.
    pub f: FunctionId,
    /// The driver's memory.
    pub mem: Arc<SharedMemory>,
    token: u8,
    next_page: u64,
}

impl CmdDriver {
    /// Maps the driver's memory into `f`'s IOMMU and hands the device the command queue
    /// (`cmdq_addr_h`, then `cmdq_addr_l_sz`), as `mlx5_cmd_enable` does.
    pub fn attach(nic: &mut Mlx5Nic, f: FunctionId) -> CmdDriver {
        let mem = SharedMemory::new(MEM_LEN);
        let target: Arc<dyn DmaTarget> = mem.clone();
        let _ = nic.dma_map(f, Iova(MEM_IOVA), MEM_LEN as u64, target, 0);
        let d = CmdDriver {
            f,
            mem,
            token: 0,
            next_page: 0,
        };
        d.set_cmdq(nic);
        d
    }

    /// Writes the command queue address again (restarts a stopped queue).
    pub fn set_cmdq(&self, nic: &mut Mlx5Nic) {
        let addr = MEM_IOVA + CMDQ_OFF;
        nic.write32be(self.f, Register::CmdqAddrH.offset(), (addr >> 32) as u32);
        nic.write32be(self.f, Register::CmdqAddrLSz.offset(), addr as u32);
    }

    /// IOVA of slot `slot`'s entry.
    pub fn entry_iova(slot: u8) -> u64 {
        MEM_IOVA + CMDQ_OFF + u64::from(slot) * ENTRY_LEN as u64
    }

    /// Reads driver memory at `iova`.
    pub fn read(&self, iova: u64, buf: &mut [u8]) {
        let _ = self.mem.read_checked(iova.wrapping_sub(MEM_IOVA), buf);
    }

    /// Writes driver memory at `iova`.
    pub fn write(&self, iova: u64, data: &[u8]) {
        let _ = self.mem.write_checked(iova.wrapping_sub(MEM_IOVA), data);
    }

    fn next_token(&mut self) -> u8 {
        self.token = if self.token == 255 { 1 } else { self.token + 1 };
        self.token
    }

    /// Builds `input` and an output chain of `out_len` bytes for slot `slot`, hands the entry
    /// to the device (ownership set) without ringing.
    pub fn post(&mut self, slot: u8, input: &[u8], out_len: usize) -> Posted {
        let token = self.next_token();
        let area = MEM_IOVA + MBOX_OFF + u64::from(slot % 32) * MBOX_AREA;
        let n_in = mailbox_blocks(input.len());
        let n_out = mailbox_blocks(out_len);
        let in_blocks: Vec<u64> = (0..n_in as u64).map(|k| area + k * BLOCK_ALIGN).collect();
        let out_blocks: Vec<u64> = (0..n_out as u64)
            .map(|k| area + (n_in as u64 + k) * BLOCK_ALIGN)
            .collect();
        let rest = input.get(INLINE_LEN..).unwrap_or_default();
        let mut chunks = rest.chunks(MAILBOX_DATA_LEN);
        for (k, &addr) in in_blocks.iter().enumerate() {
            let data = chunks.next().unwrap_or_default();
            self.write_block(addr, k, in_blocks.get(k + 1).copied(), token, data);
        }
        for (k, &addr) in out_blocks.iter().enumerate() {
            self.write_block(addr, k, out_blocks.get(k + 1).copied(), token, &[]);
        }
        let mut raw = [0u8; ENTRY_LEN];
        if let Ok(mut e) = QueueEntry::new_checked(&mut raw[..]) {
            e.set_cmd_type(CMD_TYPE_PCIE);
            e.set_input_length(input.len() as u32);
            e.set_input_mailbox(in_blocks.first().copied().unwrap_or(0));
            let _ = e.set_inline_input(&input[..input.len().min(INLINE_LEN)]);
            e.set_output_mailbox(out_blocks.first().copied().unwrap_or(0));
            e.set_output_length(out_len as u32);
            e.set_token(token);
            e.set_owned_by_hw(true);
            e.fill_signature();
        }
        let entry = CmdDriver::entry_iova(slot);
        self.write(entry, &raw);
        SharedMemory::publish();
        Posted {
            slot,
            entry,
            in_blocks,
            out_blocks,
            out_len,
        }
    }

    fn write_block(&self, addr: u64, pos: usize, next: Option<u64>, token: u8, data: &[u8]) {
        let mut b = [0u8; MAILBOX_BLOCK_LEN];
        if let Ok(mut m) = MailboxBlock::new_checked(&mut b[..]) {
            m.data_mut()[..data.len()].copy_from_slice(data);
            m.set_next(next.unwrap_or(0));
            m.set_block_number(pos as u32);
            m.set_token(token);
            m.fill_signatures();
        }
        self.write(addr, &b);
    }

    /// Rings the doorbell for `mask`.
    pub fn ring(&self, nic: &mut Mlx5Nic, mask: u32) {
        nic.write32be(self.f, Register::CmdDbell.offset(), mask);
    }

    /// The entry of slot `slot` as it stands in memory.
    pub fn entry(&self, slot: u8) -> [u8; ENTRY_LEN] {
        let mut raw = [0u8; ENTRY_LEN];
        self.read(CmdDriver::entry_iova(slot), &mut raw);
        raw
    }

    /// Polls the posted command: its output, or why there is none.
    pub fn complete(&self, p: &Posted) -> Result<Output, CmdError> {
        SharedMemory::acquire();
        let raw = self.entry(p.slot);
        let Ok(e) = QueueEntry::new_checked(&raw[..]) else {
            return Err(CmdError::NotCompleted);
        };
        if e.owned_by_hw() {
            return Err(CmdError::NotCompleted);
        }
        if e.delivery_status() != DeliveryStatus::Ok {
            return Err(CmdError::Delivery(e.delivery_status()));
        }
        let mut bytes = vec![0u8; p.out_len];
        let n = p.out_len.min(INLINE_LEN);
        bytes[..n].copy_from_slice(&e.inline_output()[..n]);
        for (addr, chunk) in p
            .out_blocks
            .iter()
            .zip(bytes[n..].chunks_mut(MAILBOX_DATA_LEN))
        {
            self.read(*addr, chunk);
        }
        let h = OutputHeader::parse(&bytes).unwrap_or(OutputHeader {
            status: CommandStatus::Unknown(0xFF),
            syndrome: 0,
        });
        Ok(Output {
            status: h.status,
            syndrome: h.syndrome,
            bytes,
        })
    }

    /// Posts in slot 0, rings, polls.
    pub fn exec(
        &mut self,
        nic: &mut Mlx5Nic,
        input: &[u8],
        out_len: usize,
    ) -> Result<Output, CmdError> {
        let p = self.post(0, input, out_len);
        self.ring(nic, 1);
        self.complete(&p)
    }

    /// Executes a command that must succeed; panics (test support) with its status otherwise.
    pub fn ok(&mut self, nic: &mut Mlx5Nic, input: &[u8], out_len: usize) -> Output {
        let op = InputHeader::parse(input).map(|h| h.opcode);
        match self.exec(nic, input, out_len) {
            Ok(o) if o.status == CommandStatus::Ok => o,
            other => panic!("{op:?} on {}: {other:?}", self.f),
        }
    }

    /// Addresses of `n` fresh 4 KiB pages to give to the device.
    pub fn fresh_pages(&mut self, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| {
                self.next_page += 1;
                MEM_IOVA + PAGES_OFF + (self.next_page - 1) * 4096
            })
            .collect()
    }

    /// QUERY_PAGES (`op_mod`: 1 boot, 2 init, 3 regular): the pages the device wants.
    pub fn query_pages(&mut self, nic: &mut Mlx5Nic, op_mod: u16) -> i32 {
        let o = self.ok(nic, &input(Opcode::QueryPages, op_mod, 0x10), 0x10);
        o.dword(0x0C) as i32
    }

    /// MANAGE_PAGES give of `pages`.
    pub fn give_pages(&mut self, nic: &mut Mlx5Nic, pages: &[u64]) -> Result<Output, CmdError> {
        let mut m = input(Opcode::ManagePages, 1, PAS_OFFSET + 8 * pages.len());
        put_dword(&mut m, 0x0C, pages.len() as u32);
        for (k, pa) in pages.iter().enumerate() {
            let at = PAS_OFFSET + 8 * k;
            m[at..at + 8].copy_from_slice(&pa.to_be_bytes());
        }
        self.exec(nic, &m, 0x10)
    }

    /// QUERY_HCA_CAP with `op_mod`: the 4 KiB page.
    pub fn query_cap(&mut self, nic: &mut Mlx5Nic, op_mod: u16) -> Vec<u8> {
        let o = self.ok(
            nic,
            &input(Opcode::QueryHcaCap, op_mod, 0x10),
            CAP_MESSAGE_OFFSET + CAP_LEN,
        );
        o.bytes[CAP_MESSAGE_OFFSET..].to_vec()
    }

    /// SET_HCA_CAP of the general page `page`.
    pub fn set_cap(
        &mut self,
        nic: &mut Mlx5Nic,
        op_mod: u16,
        page: &[u8],
    ) -> Result<Output, CmdError> {
        let mut m = input(Opcode::SetHcaCap, op_mod, CAP_MESSAGE_OFFSET + CAP_LEN);
        m[CAP_MESSAGE_OFFSET..CAP_MESSAGE_OFFSET + page.len().min(CAP_LEN)]
            .copy_from_slice(&page[..page.len().min(CAP_LEN)]);
        self.exec(nic, &m, 0x10)
    }

    /// Linux `mlx5_core`'s bring-up of a function up to INIT_HCA, checking every output:
    /// ENABLE_HCA, QUERY_ISSI, SET_ISSI 1, boot pages, HOST_ENDIANNESS (PF only),
    /// QUERY_HCA_CAP current and max,
    /// SET_HCA_CAP (pkey table 0, checksums off, drain_sigerr, 4 KiB UAR pages), init pages,
    /// INIT_HCA.
    pub fn bring_up(&mut self, nic: &mut Mlx5Nic) -> BringUp {
        self.ok(nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
        let issi = self.ok(nic, &input(Opcode::QueryIssi, 0, 0x10), 0x70);
        let supported_issi = issi.dword(0x6C);
        assert!(supported_issi & 0b10 != 0, "ISSI 1 supported");
        let mut set = input(Opcode::SetIssi, 0, 0x10);
        put_dword(&mut set, 0x08, 1);
        self.ok(nic, &set, 0x10);
        let boot_pages = self.query_pages(nic, 1);
        let pages = self.fresh_pages(boot_pages.max(0) as usize);
        assert_eq!(
            self.give_pages(nic, &pages).map(|o| o.status),
            Ok(CommandStatus::Ok)
        );
        if self.f == FunctionId::Pf {
            // `set_hca_ctrl`: the PF tells the device the host is little-endian.
            self.ok(nic, &host_endianness(access_reg_op::WRITE, false), 0x20);
        }
        let mut cur = self.query_cap(nic, 1);
        let max = self.query_cap(nic, 0);
        if let Ok(mut g) = GeneralCaps::new_checked(&mut cur[..]) {
            g.set_pkey_table_size(0);
            g.set_cmdif_checksum(mlx5_hw::caps::CmdifChecksum::from_raw_value(0));
            g.set_drain_sigerr(true);
            g.set_log_uar_page_sz(0);
        }
        assert_eq!(
            self.set_cap(nic, 0, &cur).map(|o| o.status),
            Ok(CommandStatus::Ok)
        );
        let init_pages = self.query_pages(nic, 2);
        let pages = self.fresh_pages(init_pages.max(0) as usize);
        assert_eq!(
            self.give_pages(nic, &pages).map(|o| o.status),
            Ok(CommandStatus::Ok)
        );
        self.ok(nic, &input(Opcode::InitHca, 0, 0x20), 0x10);
        BringUp {
            supported_issi,
            boot_pages,
            init_pages,
            general_max: max,
        }
    }
}

/// An EQ as the test driver created it: a contiguous buffer in the driver's memory, the
/// driver's consumer counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverEq {
    /// EQ number.
    pub eqn: u8,
    /// log2 of the number of EQEs.
    pub log_size: u8,
    /// The UAR page of its doorbell.
    pub uar: u32,
    /// IOVA of EQE 0.
    pub buffer: u64,
    /// The driver's consumer counter.
    pub consumer: u32,
}

impl DriverEq {
    /// IOVA of the EQE at counter `counter`.
    pub fn eqe_iova(&self, counter: u32) -> u64 {
        let index = counter & ((1 << self.log_size) - 1);
        self.buffer + u64::from(index) * EQE_LEN as u64
    }
}

/// A CREATE_EQ input: `log_size`, UAR page, vector, page size, page list and subscribed events.
pub fn create_eq_input(
    log_size: u8,
    uar: u32,
    vector: u16,
    log_page_size: u8,
    pas: &[u64],
    events: &[EventType],
) -> Vec<u8> {
    let len = create_in_len(pas.len()).unwrap_or(CREATE_PAS_OFFSET);
    let mut m = input(Opcode::CreateEq, 0, len);
    if let Ok(mut i) = CreateEqIn::new_checked(&mut m[..]) {
        {
            let mut c = i.eq_context_mut();
            c.set_log_eq_size(log_size);
            c.set_uar_page(uar);
            c.set_intr(vector);
            c.set_log_page_size(log_page_size);
        }
        for (k, pa) in pas.iter().enumerate() {
            i.set_pa(k, *pa);
        }
        for e in events {
            i.subscribe(*e);
        }
    }
    m
}

impl CmdDriver {
    /// ALLOC_UAR: the UAR index.
    pub fn alloc_uar(&mut self, nic: &mut Mlx5Nic) -> u32 {
        self.ok(nic, &input(Opcode::AllocUar, 0, 0x10), 0x10)
            .dword(0x08)
            & 0x00FF_FFFF
    }

    /// MSI-X on: enable set and the function mask as given (configuration write of the
    /// capability's message control).
    pub fn msix_control(&self, nic: &mut Mlx5Nic, enable: bool, function_mask: bool) {
        let mut ctrl = 0u16;
        if enable {
            ctrl |= msix_cap::ENABLE;
        }
        if function_mask {
            ctrl |= msix_cap::FUNCTION_MASK;
        }
        let at = (layout::MSIX + msix_cap::CONTROL) as u16;
        nic.config_write(self.f, at, &ctrl.to_le_bytes());
    }

    /// Programs MSI-X table entry `vector` (address, data, masked) through BAR0.
    pub fn program_vector(
        &self,
        nic: &mut Mlx5Nic,
        vector: u16,
        address: u64,
        data: u32,
        masked: bool,
    ) {
        let base = u64::from(msix::TABLE_OFFSET) + u64::from(vector) * 16;
        nic.bar_write(self.f, 0, base, &address.to_le_bytes());
        nic.bar_write(self.f, 0, base + 8, &data.to_le_bytes());
        self.mask_vector(nic, vector, masked);
    }

    /// Sets or clears the mask bit of MSI-X vector `vector`.
    pub fn mask_vector(&self, nic: &mut Mlx5Nic, vector: u16, masked: bool) {
        let base = u64::from(msix::TABLE_OFFSET) + u64::from(vector) * 16;
        nic.bar_write(self.f, 0, base + 12, &u32::from(masked).to_le_bytes());
    }

    /// The PBA as BAR0 reads it.
    pub fn read_pba(&self, nic: &mut Mlx5Nic) -> u64 {
        let mut b = [0u8; 8];
        nic.bar_read(self.f, 0, u64::from(msix::PBA_OFFSET), &mut b);
        u64::from_le_bytes(b)
    }

    /// Allocates a contiguous EQ buffer of 2^`log_size` EQEs in fresh pages, starts every EQE
    /// with owner 1 (as drivers do) and sends CREATE_EQ.
    pub fn try_create_eq(
        &mut self,
        nic: &mut Mlx5Nic,
        log_size: u8,
        uar: u32,
        vector: u16,
        events: &[EventType],
    ) -> (Result<Output, CmdError>, DriverEq) {
        let bytes = EQE_LEN << log_size;
        let pages = self.fresh_pages(bytes.div_ceil(4096));
        let buffer = pages.first().copied().unwrap_or(0);
        for k in 0..(1u64 << log_size) {
            let mut eqe = [0u8; EQE_LEN];
            eqe[EQE_LEN - 1] = EQE_INITIAL_OWNER;
            self.write(buffer + k * EQE_LEN as u64, &eqe);
        }
        let m = create_eq_input(log_size, uar, vector, 0, &pages, events);
        let o = self.exec(nic, &m, 0x10);
        let eqn = o.as_ref().map_or(0, |o| o.dword(0x08) as u8);
        let eq = DriverEq {
            eqn,
            log_size,
            uar,
            buffer,
            consumer: 0,
        };
        (o, eq)
    }

    /// [`CmdDriver::try_create_eq`] that must succeed.
    pub fn create_eq(
        &mut self,
        nic: &mut Mlx5Nic,
        log_size: u8,
        uar: u32,
        vector: u16,
        events: &[EventType],
    ) -> DriverEq {
        let (o, eq) = self.try_create_eq(nic, log_size, uar, vector, events);
        match o {
            Ok(o) if o.status == CommandStatus::Ok => eq,
            other => panic!("CREATE_EQ on {}: {other:?}", self.f),
        }
    }

    /// The EQE at counter `counter` as it stands in memory.
    pub fn eqe(&self, eq: &DriverEq, counter: u32) -> EqeRepr {
        let mut b = [0u8; EQE_LEN];
        self.read(eq.eqe_iova(counter), &mut b);
        match EqeRepr::parse_bytes(&b) {
            Ok(e) => e,
            Err(e) => panic!("EQE: {e:?}"),
        }
    }

    /// The new EQEs (owner bit of the current pass), consumed: what `mlx5_eq_int` reads.
    pub fn poll_eq(&self, eq: &mut DriverEq) -> Vec<EqeRepr> {
        SharedMemory::acquire();
        let mut seen = Vec::new();
        loop {
            let e = self.eqe(eq, eq.consumer);
            if e.owner != owner_bit(eq.consumer, eq.log_size) {
                return seen;
            }
            seen.push(e);
            eq.consumer = (eq.consumer + 1) & EQ_CI_MASK;
            if seen.len() > 1 << eq.log_size {
                return seen;
            }
        }
    }

    /// Writes the EQ doorbell with the driver's consumer counter (`arm`: the arming offset).
    pub fn eq_doorbell(&self, nic: &mut Mlx5Nic, eq: &DriverEq, arm: bool) {
        self.eq_doorbell_raw(nic, eq.uar, eq.eqn, eq.consumer, arm);
    }

    /// Writes an EQ doorbell of UAR page `uar` with any EQ number and counter.
    pub fn eq_doorbell_raw(&self, nic: &mut Mlx5Nic, uar: u32, eqn: u8, ci: u32, arm: bool) {
        let db = EqDoorbellRepr { eqn, ci }.to_be_bytes();
        let reg = if arm {
            EQ_DOORBELL_ARM
        } else {
            EQ_DOORBELL_UPDATE_CI
        };
        let at = u64::from(uar) * UAR_PAGE_LEN + u64::from(reg);
        nic.bar_write(self.f, 0, at, &db);
    }
}

/// A CQ as the test driver created it: a contiguous buffer and a doorbell record in the
/// driver's memory, the driver's consumer counter and arm sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverCq {
    /// CQ number.
    pub cqn: u32,
    /// log2 of the number of CQEs.
    pub log_size: u8,
    /// The UAR page of its arm doorbell.
    pub uar: u32,
    /// IOVA of CQE 0.
    pub buffer: u64,
    /// IOVA of the doorbell record.
    pub dbr: u64,
    /// The driver's consumer counter.
    pub consumer: u32,
    /// The driver's arm sequence number.
    pub sn: u8,
}

impl DriverCq {
    /// IOVA of the CQE at counter `counter`.
    pub fn cqe_iova(&self, counter: u32) -> u64 {
        let index = counter & ((1 << self.log_size) - 1);
        self.buffer + u64::from(index) * CQE_LEN as u64
    }
}

/// A CREATE_CQ input: `log_size`, UAR page, EQ, page size, page list, doorbell record.
pub fn create_cq_input(
    log_size: u8,
    uar: u32,
    eqn: u32,
    log_page_size: u8,
    pas: &[u64],
    dbr: u64,
) -> Vec<u8> {
    let len = create_in_len(pas.len()).unwrap_or(CREATE_PAS_OFFSET);
    let mut m = input(Opcode::CreateCq, 0, len);
    if let Ok(mut i) = CreateCqIn::new_checked(&mut m[..]) {
        {
            let mut c = i.cq_context_mut();
            c.set_log_cq_size(log_size);
            c.set_uar_page(uar);
            c.set_c_eqn(eqn);
            c.set_log_page_size(log_page_size);
            c.set_dbr_addr(dbr);
        }
        for (k, pa) in pas.iter().enumerate() {
            i.set_pa(k, *pa);
        }
    }
    m
}

impl CmdDriver {
    /// The CREATE_CQ input of a fresh contiguous CQ buffer of 2^`log_size` CQEs (each started
    /// with `op_own` 0xf1, as drivers do) and a fresh zeroed doorbell record, and the CQ as
    /// the driver will know it (number 0 until created).
    pub fn prepare_cq(&mut self, log_size: u8, uar: u32, eqn: u8) -> (Vec<u8>, DriverCq) {
        let bytes = CQE_LEN << log_size;
        let pages = self.fresh_pages(bytes.div_ceil(4096));
        let buffer = pages.first().copied().unwrap_or(0);
        for k in 0..(1u64 << log_size) {
            let mut cqe = [0u8; CQE_LEN];
            cqe[CQE_LEN - 1] = CQE_INITIAL_OP_OWN;
            self.write(buffer + k * CQE_LEN as u64, &cqe);
        }
        let dbr = self.fresh_pages(1).first().copied().unwrap_or(0);
        self.write(dbr, &[0u8; CQ_DB_RECORD_LEN]);
        let m = create_cq_input(log_size, uar, u32::from(eqn), 0, &pages, dbr);
        let cq = DriverCq {
            cqn: 0,
            log_size,
            uar,
            buffer,
            dbr,
            consumer: 0,
            sn: 0,
        };
        (m, cq)
    }

    /// Creates a CQ of 2^`log_size` CQEs on UAR page `uar` sending its events to EQ `eqn`;
    /// the CREATE_CQ must succeed.
    pub fn create_cq(&mut self, nic: &mut Mlx5Nic, log_size: u8, uar: u32, eqn: u8) -> DriverCq {
        let (m, mut cq) = self.prepare_cq(log_size, uar, eqn);
        let o = self.ok(nic, &m, 0x10);
        cq.cqn = o.dword(0x08) & 0x00FF_FFFF;
        cq
    }

    /// The CQE at counter `counter` as it stands in memory.
    pub fn cqe(&self, cq: &DriverCq, counter: u32) -> CqeRepr {
        let mut b = [0u8; CQE_LEN];
        self.read(cq.cqe_iova(counter), &mut b);
        match Cqe::new_checked(&b[..]) {
            Ok(c) => CqeRepr::parse(&c),
            Err(e) => panic!("CQE: {e:?}"),
        }
    }

    /// The new CQEs (owner bit of the current pass), consumed, and the consumer counter
    /// written to the doorbell record: what a driver's CQ poll does.
    pub fn poll_cq(&self, cq: &mut DriverCq) -> Vec<CqeRepr> {
        SharedMemory::acquire();
        let mut seen = Vec::new();
        loop {
            let e = self.cqe(cq, cq.consumer);
            if e.opcode == CqeOpcode::Invalid || e.owner != owner_bit(cq.consumer, cq.log_size) {
                break;
            }
            seen.push(e);
            cq.consumer = (cq.consumer + 1) & CQ_CI_MASK;
            if seen.len() >= 1 << cq.log_size {
                break;
            }
        }
        self.set_cq_ci(cq);
        seen
    }

    /// Writes the driver's consumer counter into the CQ's doorbell record.
    pub fn set_cq_ci(&self, cq: &DriverCq) {
        self.write(cq.dbr, &(cq.consumer & CQ_CI_MASK).to_be_bytes());
    }

    /// Arms the CQ (`solicited`: for solicited CQEs only) with its consumer counter: the
    /// doorbell record's arm word, then the 64-bit arm doorbell.
    pub fn arm_cq(&self, nic: &mut Mlx5Nic, cq: &DriverCq, solicited: bool) {
        let cmd = if solicited {
            CqArmCmd::Solicited
        } else {
            CqArmCmd::NextCqe
        };
        let arm = CqArmDoorbellRepr {
            sn: cq.sn & 3,
            cmd,
            ci: cq.consumer,
            cqn: cq.cqn,
        };
        let mut db = [0u8; CQ_ARM_DOORBELL_LEN];
        if let Ok(mut v) = CqArmDoorbell::new_checked(&mut db[..]) {
            arm.emit(&mut v);
        }
        self.write(cq.dbr + 4, &db[..4]);
        self.cq_arm_raw(nic, cq.uar, &db);
    }

    /// Writes `data` to the CQ arm doorbell of UAR page `uar`.
    pub fn cq_arm_raw(&self, nic: &mut Mlx5Nic, uar: u32, data: &[u8]) {
        let at = u64::from(uar) * UAR_PAGE_LEN + u64::from(CQ_ARM_DOORBELL);
        nic.bar_write(self.f, 0, at, data);
    }
}

/// What a bring-up saw.
#[derive(Clone, Debug)]
pub struct BringUp {
    /// `supported_issi_dw0` of QUERY_ISSI.
    pub supported_issi: u32,
    /// QUERY_PAGES boot answer.
    pub boot_pages: i32,
    /// QUERY_PAGES init answer.
    pub init_pages: i32,
    /// The maximum general capability page.
    pub general_max: Vec<u8>,
}

/// A device with `num_vfs` VFs enabled and time advanced past the boot.
pub fn device(num_vfs: u16) -> Mlx5Nic {
    let mut nic = Mlx5Nic::new(crate::Mlx5Config::default());
    nic.enable_sriov(num_vfs);
    nic.advance_to(SimTime::from_millis(1));
    nic
}

/// What the E-Switch did with a frame [`inject_tx`] offered (the send queue's view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectVerdict {
    /// Taken: switched, buffered or sent.
    Accepted,
    /// No room in the egress buffer: a send queue would keep the WQE and retry.
    Backpressure,
    /// Dropped and counted.
    Dropped,
}

/// Offers `frame` to the E-Switch as if function `from`'s send queue had built it
/// (`Mlx5Nic::eswitch_transmit`), until send queues drive it themselves.
pub fn inject_tx(nic: &mut Mlx5Nic, from: FunctionId, frame: &[u8]) -> InjectVerdict {
    use crate::nic::TxVerdict;
    match nic.eswitch_transmit(from, bytes::Bytes::copy_from_slice(frame)) {
        TxVerdict::Accepted => InjectVerdict::Accepted,
        TxVerdict::Backpressure => InjectVerdict::Backpressure,
        TxVerdict::Dropped => InjectVerdict::Dropped,
    }
}

/// Starts (or stops) recording every frame the E-Switch hands to a function's receive path.
pub fn record_deliveries(nic: &mut Mlx5Nic, on: bool) {
    nic.eswitch.deliveries = on.then(Vec::new);
}

/// The frames the E-Switch handed to functions since the last call, in order.
pub fn take_deliveries(nic: &mut Mlx5Nic) -> Vec<(FunctionId, bytes::Bytes)> {
    nic.eswitch
        .deliveries
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default()
}

/// A device that keeps the wire's frames ([`Mlx5Nic::take_wire_capture`]) and records
/// deliveries, with `num_vfs` VFs enabled and time past the boot.
pub fn switch_device(num_vfs: u16) -> Mlx5Nic {
    let mut nic = Mlx5Nic::new(crate::Mlx5Config {
        capture_wire: true,
        ..crate::Mlx5Config::default()
    });
    nic.enable_sriov(num_vfs);
    nic.advance_to(SimTime::from_millis(1));
    record_deliveries(&mut nic, true);
    nic
}

//! The command interface: the command queue entry, the mailbox blocks that carry the rest of a
//! long message, the delivery and command status codes, the message header every command
//! input and output starts with, the opcode table, and the XOR signatures (Linux `device.h`
//! `struct mlx5_cmd_layout`, `struct mlx5_cmd_prot_block`; `cmd.c`; `mlx5_ifc.h` opcodes).
//!
//! A command is a message of `input_length` bytes: its first 16 bytes sit inline in the queue
//! entry, the rest in a chain of mailbox blocks of 512 data bytes each, linked by `next`
//! pointers and numbered 0, 1, 2 …; the output comes back the same way. The driver writes the
//! entry with the ownership bit set (hardware owns it), rings the doorbell with `1 << slot`,
//! and the device clears the ownership bit when the output and the delivery status are
//! written. Everything is big-endian.

use crate::field::{Bytes, Field, Truncated, check_len};
use crate::layout::{field_enum, layout};

/// Bytes in one command queue entry.
pub const ENTRY_LEN: usize = 64;
/// Bytes of a message carried inline in the queue entry (input and output alike).
pub const INLINE_LEN: usize = 16;
/// The only entry type: the command is carried over PCIe.
pub const CMD_TYPE_PCIE: u8 = 7;
/// Bytes in one mailbox block.
pub const MAILBOX_BLOCK_LEN: usize = 0x240;
/// Message bytes one mailbox block carries.
pub const MAILBOX_DATA_LEN: usize = 512;
/// Alignment drivers allocate mailbox blocks with (a block is 576 bytes, rounded up to a power
/// of two).
pub const MAILBOX_ALLOC_ALIGN: u64 = 1024;
/// Bytes of the smallest input (opcode, uid, op_mod) and output (status, syndrome) header.
pub const HEADER_LEN: usize = 8;

/// The header every command input and output starts with.
pub mod header {
    use crate::field::Field;

    /// Input: the opcode ([`Opcode`](super::Opcode)).
    pub const OPCODE: Field = Field::at(0x00, 31, 16);
    /// Input: user context id (0 for the kernel; DevX contexts use others).
    pub const UID: Field = Field::at(0x00, 15, 0);
    /// Input: the opcode modifier.
    pub const OP_MOD: Field = Field::at(0x04, 15, 0);
    /// Output: the command status ([`CommandStatus`](super::CommandStatus)).
    pub const STATUS: Field = Field::at(0x00, 31, 24);
    /// Output: the syndrome, an opaque code naming the failure.
    pub const SYNDROME: Field = Field::dword(0x04);
}

/// Fields of a queue entry.
pub mod entry {
    use crate::field::{Bytes, Field};

    /// Entry type: [`CMD_TYPE_PCIE`](super::CMD_TYPE_PCIE).
    pub const TYPE: Field = Field::at(0x00, 31, 24);
    /// Total input length in bytes.
    pub const INPUT_LENGTH: Field = Field::dword(0x04);
    /// Address of the first input mailbox block (when the input is longer than 16 bytes).
    pub const INPUT_MAILBOX: Field = Field::qword(0x08);
    /// The first 16 input bytes.
    pub const INLINE_INPUT: Bytes = Bytes::at(0x10, 16);
    /// The first 16 output bytes (the device writes them).
    pub const INLINE_OUTPUT: Bytes = Bytes::at(0x20, 16);
    /// Address of the first output mailbox block (when the output is longer than 16 bytes).
    pub const OUTPUT_MAILBOX: Field = Field::qword(0x30);
    /// Total output length in bytes.
    pub const OUTPUT_LENGTH: Field = Field::dword(0x38);
    /// Token: 1..=255, repeated in every mailbox block of the command.
    pub const TOKEN: Field = Field::at(0x3C, 31, 24);
    /// Signature: the XOR of all 64 bytes is 0xFF when checksums are on.
    pub const SIGNATURE: Field = Field::at(0x3C, 23, 16);
    /// Delivery status ([`DeliveryStatus`](super::DeliveryStatus)), written by the device.
    pub const STATUS: Field = Field::at(0x3C, 7, 1);
    /// Ownership: 1 = the device owns the entry.
    pub const OWNERSHIP: Field = Field::at(0x3C, 0, 0);
}

/// Fields of a mailbox block.
pub mod mailbox {
    use crate::field::{Bytes, Field};

    /// The 512 message bytes the block carries.
    pub const DATA: Bytes = Bytes::at(0x000, 512);
    /// Address of the next block (0 for the last).
    pub const NEXT: Field = Field::qword(0x230);
    /// Position of the block in its chain: 0, 1, 2 …
    pub const BLOCK_NUMBER: Field = Field::dword(0x238);
    /// The command's token.
    pub const TOKEN: Field = Field::at(0x23C, 23, 16);
    /// Signature of the control part (0x200..0x23E).
    pub const CTRL_SIGNATURE: Field = Field::at(0x23C, 15, 8);
    /// Signature of the whole block.
    pub const SIGNATURE: Field = Field::at(0x23C, 7, 0);
    /// Start of the control part the control signature covers.
    pub const CONTROL_START: usize = 0x200;
}

layout! {
    /// A command queue entry (64 bytes).
    pub struct QueueEntry(ENTRY_LEN) {
        /// Entry type (must be [`CMD_TYPE_PCIE`]).
        cmd_type, set_cmd_type: u8 = entry::TYPE;
        /// Total input length.
        input_length, set_input_length: u32 = entry::INPUT_LENGTH;
        /// First input mailbox block.
        input_mailbox, set_input_mailbox: u64 = entry::INPUT_MAILBOX;
        /// First output mailbox block.
        output_mailbox, set_output_mailbox: u64 = entry::OUTPUT_MAILBOX;
        /// Total output length.
        output_length, set_output_length: u32 = entry::OUTPUT_LENGTH;
        /// Token.
        token, set_token: u8 = entry::TOKEN;
        /// Signature byte.
        signature, set_signature: u8 = entry::SIGNATURE;
        /// Raw delivery status.
        raw_delivery_status, set_raw_delivery_status: u8 = entry::STATUS;
        /// Owned by the device.
        owned_by_hw, set_owned_by_hw: bool = entry::OWNERSHIP;
    }
}

impl<T: AsRef<[u8]>> QueueEntry<T> {
    /// The first 16 input bytes.
    pub fn inline_input(&self) -> [u8; INLINE_LEN] {
        sixteen(entry::INLINE_INPUT, self.as_bytes())
    }
    /// The first 16 output bytes.
    pub fn inline_output(&self) -> [u8; INLINE_LEN] {
        sixteen(entry::INLINE_OUTPUT, self.as_bytes())
    }
    /// The delivery status, decoded.
    pub fn delivery_status(&self) -> DeliveryStatus {
        DeliveryStatus::from(self.raw_delivery_status())
    }
    /// True when the signature checks (XOR of the 64 bytes is 0xFF).
    pub fn signature_ok(&self) -> bool {
        xor8(&self.as_bytes()[..ENTRY_LEN]) == 0xFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> QueueEntry<T> {
    /// Writes the first 16 input bytes (shorter input is zero-padded; longer is refused).
    pub fn set_inline_input(&mut self, bytes: &[u8]) -> bool {
        entry::INLINE_INPUT.set(self.as_bytes_mut(), bytes)
    }
    /// Writes the first 16 output bytes (shorter output is zero-padded; longer is refused).
    pub fn set_inline_output(&mut self, bytes: &[u8]) -> bool {
        entry::INLINE_OUTPUT.set(self.as_bytes_mut(), bytes)
    }
    /// Sets the delivery status.
    pub fn set_delivery_status(&mut self, status: DeliveryStatus) {
        self.set_raw_delivery_status(u8::from(status));
    }
    /// Computes and stores the signature over the entry as it stands (ownership included).
    pub fn fill_signature(&mut self) {
        self.set_signature(0);
        let sig = !xor8(&self.as_bytes()[..ENTRY_LEN]);
        self.set_signature(sig);
    }
}

fn sixteen(run: Bytes, buf: &[u8]) -> [u8; INLINE_LEN] {
    let mut out = [0u8; INLINE_LEN];
    if let Some(b) = run.get(buf) {
        out.copy_from_slice(b);
    }
    out
}

/// A queue entry in parsed form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueEntryRepr {
    /// Entry type (anything but [`CMD_TYPE_PCIE`] is a bad-type delivery error).
    pub cmd_type: u8,
    /// Total input length.
    pub input_length: u32,
    /// First input mailbox block.
    pub input_mailbox: u64,
    /// First 16 input bytes.
    pub inline_input: [u8; INLINE_LEN],
    /// First 16 output bytes.
    pub inline_output: [u8; INLINE_LEN],
    /// First output mailbox block.
    pub output_mailbox: u64,
    /// Total output length.
    pub output_length: u32,
    /// Token.
    pub token: u8,
    /// Signature byte.
    pub signature: u8,
    /// Delivery status.
    pub delivery_status: DeliveryStatus,
    /// Owned by the device.
    pub owned_by_hw: bool,
}

impl QueueEntryRepr {
    /// Parses an entry (never fails once the view exists).
    pub fn parse<T: AsRef<[u8]>>(e: &QueueEntry<T>) -> QueueEntryRepr {
        QueueEntryRepr {
            cmd_type: e.cmd_type(),
            input_length: e.input_length(),
            input_mailbox: e.input_mailbox(),
            inline_input: e.inline_input(),
            inline_output: e.inline_output(),
            output_mailbox: e.output_mailbox(),
            output_length: e.output_length(),
            token: e.token(),
            signature: e.signature(),
            delivery_status: e.delivery_status(),
            owned_by_hw: e.owned_by_hw(),
        }
    }

    /// Writes every field into `e` (bytes 0x01–0x03 and 0x3E are left as they are: reserved).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, e: &mut QueueEntry<T>) {
        e.set_cmd_type(self.cmd_type);
        e.set_input_length(self.input_length);
        e.set_input_mailbox(self.input_mailbox);
        let _fits = e.set_inline_input(&self.inline_input);
        let _fits = e.set_inline_output(&self.inline_output);
        e.set_output_mailbox(self.output_mailbox);
        e.set_output_length(self.output_length);
        e.set_token(self.token);
        e.set_signature(self.signature);
        e.set_delivery_status(self.delivery_status);
        e.set_owned_by_hw(self.owned_by_hw);
    }
}

layout! {
    /// A mailbox block (576 bytes): 512 message bytes and the chain's control part.
    pub struct MailboxBlock(MAILBOX_BLOCK_LEN) {
        /// Address of the next block, 0 for the last.
        next, set_next: u64 = mailbox::NEXT;
        /// Position in the chain.
        block_number, set_block_number: u32 = mailbox::BLOCK_NUMBER;
        /// The command's token.
        token, set_token: u8 = mailbox::TOKEN;
        /// Control-part signature.
        ctrl_signature, set_ctrl_signature: u8 = mailbox::CTRL_SIGNATURE;
        /// Whole-block signature.
        signature, set_signature: u8 = mailbox::SIGNATURE;
    }
}

impl<T: AsRef<[u8]>> MailboxBlock<T> {
    /// The 512 message bytes.
    pub fn data(&self) -> &[u8] {
        &self.as_bytes()[..MAILBOX_DATA_LEN]
    }
    /// True when both signatures check (control part and whole block XOR to 0xFF).
    pub fn signatures_ok(&self) -> bool {
        let b = &self.as_bytes()[..MAILBOX_BLOCK_LEN];
        xor8(&b[mailbox::CONTROL_START..MAILBOX_BLOCK_LEN - 1]) == 0xFF && xor8(b) == 0xFF
    }
}

impl<T: AsRef<[u8]>> MailboxBlock<T> {
    /// The delivery status a device reports for this block as chain position `position` of
    /// a command with token `token`: a wrong block number, then a wrong token, then (when
    /// checksums are on) a bad signature; `Ok` otherwise.
    pub fn delivery_check(
        &self,
        position: u32,
        token: u8,
        verify_signatures: bool,
    ) -> DeliveryStatus {
        if self.block_number() != position {
            DeliveryStatus::BadBlockNumber
        } else if self.token() != token {
            DeliveryStatus::Token
        } else if verify_signatures && !self.signatures_ok() {
            DeliveryStatus::Signature
        } else {
            DeliveryStatus::Ok
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MailboxBlock<T> {
    /// The 512 message bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.as_bytes_mut()[..MAILBOX_DATA_LEN]
    }
    /// Computes and stores both signatures over the block as it stands.
    pub fn fill_signatures(&mut self) {
        self.set_ctrl_signature(0);
        self.set_signature(0);
        let ctrl = !xor8(&self.as_bytes()[mailbox::CONTROL_START..MAILBOX_BLOCK_LEN - 2]);
        self.set_ctrl_signature(ctrl);
        let whole = !xor8(&self.as_bytes()[..MAILBOX_BLOCK_LEN - 1]);
        self.set_signature(whole);
    }
}

/// The header of a command input, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputHeader {
    /// The opcode.
    pub opcode: Opcode,
    /// The user context id.
    pub uid: u16,
    /// The opcode modifier.
    pub op_mod: u16,
}

impl InputHeader {
    /// Parses the first [`HEADER_LEN`] bytes of an input message.
    pub fn parse(msg: &[u8]) -> Result<InputHeader, Truncated> {
        check_len("command input header", HEADER_LEN, msg.len())?;
        Ok(InputHeader {
            opcode: Opcode::from(header::OPCODE.read::<u16>(msg)),
            uid: header::UID.read(msg),
            op_mod: header::OP_MOD.read(msg),
        })
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `msg` (the reserved half of
    /// dword 1 is left as it is).
    pub fn emit(&self, msg: &mut [u8]) -> Result<(), Truncated> {
        check_len("command input header", HEADER_LEN, msg.len())?;
        header::OPCODE.write(msg, self.opcode.value());
        header::UID.write(msg, self.uid);
        header::OP_MOD.write(msg, self.op_mod);
        Ok(())
    }
}

/// The header of a command output, parsed: what every answer carries, success or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputHeader {
    /// The command status.
    pub status: CommandStatus,
    /// The syndrome (0 on success; an opaque code naming the failure otherwise).
    pub syndrome: u32,
}

impl OutputHeader {
    /// Success.
    pub const OK: OutputHeader = OutputHeader {
        status: CommandStatus::Ok,
        syndrome: 0,
    };

    /// Parses the first [`HEADER_LEN`] bytes of an output message.
    pub fn parse(msg: &[u8]) -> Result<OutputHeader, Truncated> {
        check_len("command output header", HEADER_LEN, msg.len())?;
        Ok(OutputHeader {
            status: CommandStatus::from(header::STATUS.read::<u8>(msg)),
            syndrome: header::SYNDROME.read(msg),
        })
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `msg` (bytes 1–3 are
    /// zeroed: reserved).
    pub fn emit(&self, msg: &mut [u8]) -> Result<(), Truncated> {
        check_len("command output header", HEADER_LEN, msg.len())?;
        Field::dword(0).write(msg, 0u32);
        header::STATUS.write(msg, u8::from(self.status));
        header::SYNDROME.write(msg, self.syndrome);
        Ok(())
    }
}

/// XOR of every byte: the signature arithmetic of entries and mailbox blocks. A signed region
/// XORs to 0xFF; its signature byte is the complement of the XOR of the other bytes.
pub fn xor8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// Mailbox blocks a message of `len` bytes needs beyond its 16 inline bytes.
pub const fn mailbox_blocks(len: usize) -> usize {
    len.saturating_sub(INLINE_LEN).div_ceil(MAILBOX_DATA_LEN)
}

/// Splits a message into its inline part (up to 16 bytes) and the data each mailbox block of
/// its chain carries, in chain order (the last one possibly short).
pub fn split_message(msg: &[u8]) -> (&[u8], core::slice::Chunks<'_, u8>) {
    let (inline, rest) = msg.split_at(msg.len().min(INLINE_LEN));
    (inline, rest.chunks(MAILBOX_DATA_LEN))
}

/// Where byte `offset` of a message lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// In the queue entry's inline bytes, at this index.
    Inline(usize),
    /// In mailbox block `block` (0-based chain position), at `offset` of its data.
    Mailbox {
        /// Chain position.
        block: usize,
        /// Offset in the block's data.
        offset: usize,
    },
}

/// Where byte `offset` of a message lives.
pub const fn locate(offset: usize) -> Location {
    if offset < INLINE_LEN {
        Location::Inline(offset)
    } else {
        let rest = offset - INLINE_LEN;
        Location::Mailbox {
            block: rest / MAILBOX_DATA_LEN,
            offset: rest % MAILBOX_DATA_LEN,
        }
    }
}

/// The doorbell value that posts queue entry `slot` (`None` for a slot past 31).
pub const fn doorbell_bit(slot: u8) -> Option<u32> {
    if slot < 32 { Some(1 << slot) } else { None }
}

/// The slot drivers reserve for MANAGE_PAGES answering page-request events: the last one.
pub const fn page_request_slot(log_cmdq_size: u8) -> u8 {
    if log_cmdq_size == 0 || log_cmdq_size > 5 {
        0
    } else {
        (1u8 << log_cmdq_size) - 1
    }
}

field_enum! {
    /// The delivery status in the entry's status byte (bits 7:1): whether the device could fetch
    /// and deliver the command at all. A command status is only meaningful with `Ok`.
    pub enum DeliveryStatus: u8 {
        /// 0x0: delivered.
        Ok = 0x0,
        /// 0x1: bad entry or mailbox signature.
        Signature = 0x1,
        /// 0x2: a mailbox token differs from the entry's.
        Token = 0x2,
        /// 0x3: a mailbox block number out of sequence.
        BadBlockNumber = 0x3,
        /// 0x4: output mailbox pointer misaligned.
        OutputPointerAlignment = 0x4,
        /// 0x5: input mailbox pointer misaligned.
        InputPointerAlignment = 0x5,
        /// 0x6: firmware internal error.
        FwError = 0x6,
        /// 0x7: bad input length.
        InputLength = 0x7,
        /// 0x8: bad output length.
        OutputLength = 0x8,
        /// 0x9: a reserved field is not zero.
        ReservedNotZero = 0x9,
        /// 0x10: bad entry type.
        BadCommandType = 0x10,
    }
}

field_enum! {
    /// The command status: byte 0 of every output.
    pub enum CommandStatus: u8 {
        /// 0x00: success.
        Ok = 0x00,
        /// 0x01: internal error.
        InternalError = 0x01,
        /// 0x02: opcode or op_mod not supported.
        BadOp = 0x02,
        /// 0x03: a bad parameter.
        BadParam = 0x03,
        /// 0x04: the function is in the wrong state for this command.
        BadSysState = 0x04,
        /// 0x05: a bad resource number.
        BadResource = 0x05,
        /// 0x06: the resource is busy.
        ResourceBusy = 0x06,
        /// 0x07: not ready yet, retry (drivers do not log it).
        NotReady = 0x07,
        /// 0x08: a limit was exceeded.
        ExceedLimit = 0x08,
        /// 0x09: the resource is in the wrong state.
        BadResourceState = 0x09,
        /// 0x0A: bad index.
        BadIndex = 0x0A,
        /// 0x0F: no resources left.
        NoResources = 0x0F,
        /// 0x10: bad QP state.
        BadQpState = 0x10,
        /// 0x30: bad packet.
        BadPacket = 0x30,
        /// 0x40: bad size of outstanding CQEs.
        BadSizeOutstandingCqes = 0x40,
        /// 0x50: bad input length.
        BadInputLength = 0x50,
        /// 0x51: bad output length.
        BadOutputLength = 0x51,
    }
}

macro_rules! opcodes {
    ($( $(#[$m:meta])* $variant:ident = $value:literal, $name:literal; )*) => {
        /// A command opcode (input dword 0 bits 31:16). Names are the PRM's, except the
        /// `HAC_*` ones (0x7F00-0x7F0F): this project's own, see `commands::hac`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Opcode {
            $( $(#[$m])* $variant, )*
            /// Any other opcode, kept raw.
            Unknown(u16),
        }

        impl Opcode {
            /// Every named opcode, in numeric order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$variant,)*];

            /// The PRM name ("ENABLE_HCA"); "UNKNOWN" for others.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Opcode::$variant => $name, )*
                    Opcode::Unknown(_) => "UNKNOWN",
                }
            }

            /// The numeric opcode.
            pub const fn value(self) -> u16 {
                match self {
                    $( Opcode::$variant => $value, )*
                    Opcode::Unknown(v) => v,
                }
            }
        }

        impl From<u16> for Opcode {
            fn from(v: u16) -> Opcode {
                match v {
                    $( $value => Opcode::$variant, )*
                    v => Opcode::Unknown(v),
                }
            }
        }
    };
}

impl From<Opcode> for u16 {
    fn from(op: Opcode) -> u16 {
        op.value()
    }
}

impl core::fmt::Display for Opcode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}({:#x})", self.name(), self.value())
    }
}

opcodes! {
    /// Read a capability page (op_mod = cap type << 1 | current).
    QueryHcaCap = 0x100, "QUERY_HCA_CAP";
    /// Board information (PSID).
    QueryAdapter = 0x101, "QUERY_ADAPTER";
    /// Start the HCA after capabilities and pages are set.
    InitHca = 0x102, "INIT_HCA";
    /// Stop the HCA.
    TeardownHca = 0x103, "TEARDOWN_HCA";
    /// Enable the function: the first command of every bring-up.
    EnableHca = 0x104, "ENABLE_HCA";
    /// Disable the function.
    DisableHca = 0x105, "DISABLE_HCA";
    /// How many pages the device wants (boot, init, regular).
    QueryPages = 0x107, "QUERY_PAGES";
    /// Give pages to the device or take them back.
    ManagePages = 0x108, "MANAGE_PAGES";
    /// Write the settable capabilities.
    SetHcaCap = 0x109, "SET_HCA_CAP";
    /// Interface step sequence ids the device supports.
    QueryIssi = 0x10A, "QUERY_ISSI";
    /// Choose the interface step sequence id.
    SetIssi = 0x10B, "SET_ISSI";
    /// Tell the device the driver's name and version.
    SetDriverVersion = 0x10D, "SET_DRIVER_VERSION";
    /// Live migration: suspend a VF's HCA (PF on behalf of a VF).
    SuspendVhca = 0x115, "SUSPEND_VHCA";
    /// Live migration: resume a VF's HCA.
    ResumeVhca = 0x116, "RESUME_VHCA";
    /// Live migration: state size of a VF.
    QueryVhcaMigrationState = 0x117, "QUERY_VHCA_MIGRATION_STATE";
    /// Live migration: save a VF's state.
    SaveVhcaState = 0x118, "SAVE_VHCA_STATE";
    /// Live migration: load a VF's state.
    LoadVhcaState = 0x119, "LOAD_VHCA_STATE";
    /// Create a memory key.
    CreateMkey = 0x200, "CREATE_MKEY";
    /// Query a memory key.
    QueryMkey = 0x201, "QUERY_MKEY";
    /// Destroy a memory key.
    DestroyMkey = 0x202, "DESTROY_MKEY";
    /// Special memory keys (reserved lkey, null mkey …).
    QuerySpecialContexts = 0x203, "QUERY_SPECIAL_CONTEXTS";
    /// Create an event queue.
    CreateEq = 0x301, "CREATE_EQ";
    /// Destroy an event queue.
    DestroyEq = 0x302, "DESTROY_EQ";
    /// Query an event queue.
    QueryEq = 0x303, "QUERY_EQ";
    /// Create a completion queue.
    CreateCq = 0x400, "CREATE_CQ";
    /// Destroy a completion queue.
    DestroyCq = 0x401, "DESTROY_CQ";
    /// Query a completion queue.
    QueryCq = 0x402, "QUERY_CQ";
    /// Modify (moderation) or resize a completion queue.
    ModifyCq = 0x403, "MODIFY_CQ";
    /// Link state of a vport.
    QueryVportState = 0x750, "QUERY_VPORT_STATE";
    /// Set a vport's administrative state (E-Switch manager).
    ModifyVportState = 0x751, "MODIFY_VPORT_STATE";
    /// Read a NIC vport context (MAC, MTU, address lists).
    QueryNicVportContext = 0x754, "QUERY_NIC_VPORT_CONTEXT";
    /// Modify a NIC vport context.
    ModifyNicVportContext = 0x755, "MODIFY_NIC_VPORT_CONTEXT";
    /// Read a vport's traffic counters.
    QueryVportCounter = 0x770, "QUERY_VPORT_COUNTER";
    /// Allocate a queue counter set.
    AllocQCounter = 0x771, "ALLOC_Q_COUNTER";
    /// Free a queue counter set.
    DeallocQCounter = 0x772, "DEALLOC_Q_COUNTER";
    /// Read a queue counter set.
    QueryQCounter = 0x773, "QUERY_Q_COUNTER";
    /// E-Switch QoS: create a scheduling element.
    CreateSchedulingElement = 0x782, "CREATE_SCHEDULING_ELEMENT";
    /// E-Switch QoS: destroy a scheduling element.
    DestroySchedulingElement = 0x783, "DESTROY_SCHEDULING_ELEMENT";
    /// E-Switch QoS: query a scheduling element.
    QuerySchedulingElement = 0x784, "QUERY_SCHEDULING_ELEMENT";
    /// E-Switch QoS: modify a scheduling element.
    ModifySchedulingElement = 0x785, "MODIFY_SCHEDULING_ELEMENT";
    /// Allocate a protection domain.
    AllocPd = 0x800, "ALLOC_PD";
    /// Free a protection domain.
    DeallocPd = 0x801, "DEALLOC_PD";
    /// Allocate a UAR page.
    AllocUar = 0x802, "ALLOC_UAR";
    /// Free a UAR page.
    DeallocUar = 0x803, "DEALLOC_UAR";
    /// Read or write an access register (PAOS, PMTU, PPCNT …).
    AccessReg = 0x805, "ACCESS_REG";
    /// Allocate a transport domain.
    AllocTransportDomain = 0x816, "ALLOC_TRANSPORT_DOMAIN";
    /// Free a transport domain.
    DeallocTransportDomain = 0x817, "DEALLOC_TRANSPORT_DOMAIN";
    /// Create a transport interface receive.
    CreateTir = 0x900, "CREATE_TIR";
    /// Modify a TIR.
    ModifyTir = 0x901, "MODIFY_TIR";
    /// Destroy a TIR.
    DestroyTir = 0x902, "DESTROY_TIR";
    /// Query a TIR.
    QueryTir = 0x903, "QUERY_TIR";
    /// Create a send queue.
    CreateSq = 0x904, "CREATE_SQ";
    /// Change a send queue's state.
    ModifySq = 0x905, "MODIFY_SQ";
    /// Destroy a send queue.
    DestroySq = 0x906, "DESTROY_SQ";
    /// Query a send queue.
    QuerySq = 0x907, "QUERY_SQ";
    /// Create a receive queue.
    CreateRq = 0x908, "CREATE_RQ";
    /// Change a receive queue's state.
    ModifyRq = 0x909, "MODIFY_RQ";
    /// Destroy a receive queue.
    DestroyRq = 0x90A, "DESTROY_RQ";
    /// Query a receive queue.
    QueryRq = 0x90B, "QUERY_RQ";
    /// Create a transport interface send.
    CreateTis = 0x912, "CREATE_TIS";
    /// Modify a TIS.
    ModifyTis = 0x913, "MODIFY_TIS";
    /// Destroy a TIS.
    DestroyTis = 0x914, "DESTROY_TIS";
    /// Query a TIS.
    QueryTis = 0x915, "QUERY_TIS";
    /// Create an RQ table (RSS indirection).
    CreateRqt = 0x916, "CREATE_RQT";
    /// Modify an RQ table.
    ModifyRqt = 0x917, "MODIFY_RQT";
    /// Destroy an RQ table.
    DestroyRqt = 0x918, "DESTROY_RQT";
    /// Query an RQ table.
    QueryRqt = 0x919, "QUERY_RQT";
    /// Choose the root flow table of a namespace.
    SetFlowTableRoot = 0x92F, "SET_FLOW_TABLE_ROOT";
    /// Create a flow table.
    CreateFlowTable = 0x930, "CREATE_FLOW_TABLE";
    /// Destroy a flow table.
    DestroyFlowTable = 0x931, "DESTROY_FLOW_TABLE";
    /// Query a flow table.
    QueryFlowTable = 0x932, "QUERY_FLOW_TABLE";
    /// Create a flow group.
    CreateFlowGroup = 0x933, "CREATE_FLOW_GROUP";
    /// Destroy a flow group.
    DestroyFlowGroup = 0x934, "DESTROY_FLOW_GROUP";
    /// Query a flow group.
    QueryFlowGroup = 0x935, "QUERY_FLOW_GROUP";
    /// Set a flow table entry (a rule).
    SetFlowTableEntry = 0x936, "SET_FLOW_TABLE_ENTRY";
    /// Query a flow table entry.
    QueryFlowTableEntry = 0x937, "QUERY_FLOW_TABLE_ENTRY";
    /// Delete a flow table entry.
    DeleteFlowTableEntry = 0x938, "DELETE_FLOW_TABLE_ENTRY";
    /// Allocate a flow counter.
    AllocFlowCounter = 0x939, "ALLOC_FLOW_COUNTER";
    /// Free a flow counter.
    DeallocFlowCounter = 0x93A, "DEALLOC_FLOW_COUNTER";
    /// Read a flow counter.
    QueryFlowCounter = 0x93B, "QUERY_FLOW_COUNTER";
    /// Modify a flow table (miss chaining).
    ModifyFlowTable = 0x93C, "MODIFY_FLOW_TABLE";
    // OURS, not NVIDIA's: the HAC output-commit commands of this project's model, in
    // 0x7F00-0x7F0F, a range no PRM command uses (Linux's opcodes end below 0xD00, the end of
    // the general-command range 0xB00-0xD00). A real ConnectX answers them with BAD_OP.
    // Layouts: [`crate::commands::hac`].
    /// HAC (ours): enable the HAC stage and set the starvation guard.
    HacSetControl = 0x7F00, "HAC_SET_CONTROL";
    /// HAC (ours): tag a VF vport as checkpointing or untag it.
    HacSetTagged = 0x7F01, "HAC_SET_TAGGED";
    /// HAC (ours): open an epoch on a VF vport.
    HacOpenEpoch = 0x7F02, "HAC_OPEN_EPOCH";
    /// HAC (ours): commit an epoch (release held frames of epochs up to it).
    HacCommit = 0x7F03, "HAC_COMMIT";
    /// HAC (ours): abort an epoch (discard the held frames it covers).
    HacAbort = 0x7F04, "HAC_ABORT";
    /// HAC (ours): failover (discard every held frame of the vport).
    HacFailover = 0x7F05, "HAC_FAILOVER";
    /// HAC (ours): unprotect (release everything held, untag).
    HacUnprotect = 0x7F06, "HAC_UNPROTECT";
    /// HAC (ours): buffer limits of a checkpointing vport.
    HacSetLimits = 0x7F07, "HAC_SET_LIMITS";
    /// HAC (ours): the HAC state and counters of a vport.
    HacQuery = 0x7F08, "HAC_QUERY";
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// ENABLE_HCA as a Linux 6.12 guest posted it in the lab: entry 0, type 7, inlen 16,
    /// outlen 12, token 1, hardware-owned.
    fn lab_enable_hca_entry() -> [u8; ENTRY_LEN] {
        let mut e = [0u8; ENTRY_LEN];
        e[0x00] = 0x07;
        e[0x04..0x08].copy_from_slice(&16u32.to_be_bytes());
        e[0x10..0x14].copy_from_slice(&[0x01, 0x04, 0x00, 0x00]);
        e[0x38..0x3C].copy_from_slice(&12u32.to_be_bytes());
        e[0x3C] = 0x01;
        e[0x3F] = 0x01;
        e
    }

    #[test]
    fn lab_entry_parses() {
        let bytes = lab_enable_hca_entry();
        let e = QueueEntry::new_checked(&bytes[..]).unwrap();
        let r = QueueEntryRepr::parse(&e);
        assert_eq!(r.cmd_type, CMD_TYPE_PCIE);
        assert_eq!(r.input_length, 16);
        assert_eq!(r.output_length, 12);
        assert_eq!(r.input_mailbox, 0);
        assert_eq!(r.output_mailbox, 0);
        assert_eq!(r.token, 1);
        assert!(r.owned_by_hw);
        assert_eq!(r.delivery_status, DeliveryStatus::Ok);
        let op = u16::from_be_bytes([r.inline_input[0], r.inline_input[1]]);
        assert_eq!(Opcode::from(op), Opcode::EnableHca);
    }

    #[test]
    fn entry_round_trips_and_emit_reproduces_the_bytes() {
        let bytes = lab_enable_hca_entry();
        let r = QueueEntryRepr::parse(&QueueEntry::new_checked(&bytes[..]).unwrap());
        let mut out = [0u8; ENTRY_LEN];
        r.emit(&mut QueueEntry::new_checked(&mut out[..]).unwrap());
        assert_eq!(out, bytes);
        let mut r2 = r;
        r2.input_mailbox = 0x1234_5678_9ABC_D400;
        r2.output_mailbox = 0x0000_0000_3C3D_7000;
        r2.delivery_status = DeliveryStatus::Unknown(0x7F);
        r2.owned_by_hw = false;
        r2.inline_output = [0xA5; 16];
        let mut out2 = [0u8; ENTRY_LEN];
        r2.emit(&mut QueueEntry::new_checked(&mut out2[..]).unwrap());
        assert_eq!(
            QueueEntryRepr::parse(&QueueEntry::new_checked(&out2[..]).unwrap()),
            r2
        );
        assert_eq!(out2[0x3F], 0xFE, "status 0x7F in bits 7:1, owner 0");
        assert_eq!(&out2[0x30..0x38], &[0, 0, 0, 0, 0x3C, 0x3D, 0x70, 0x00]);
    }

    #[test]
    fn entry_signature_matches_a_real_trace() {
        // A ConnectX-4 PF trace: ENABLE_HCA with inlen = outlen = 0x10, token 1, owned by
        // hardware carries signature 0xFD.
        let mut e = [0u8; ENTRY_LEN];
        e[0x00] = 0x07;
        e[0x07] = 0x10;
        e[0x10] = 0x01;
        e[0x11] = 0x04;
        e[0x3B] = 0x10;
        e[0x3C] = 0x01;
        e[0x3F] = 0x01;
        let mut v = QueueEntry::new_checked(&mut e[..]).unwrap();
        v.fill_signature();
        assert_eq!(v.signature(), 0xFD);
        assert!(v.signature_ok());
        v.set_token(2);
        assert!(!v.signature_ok());
    }

    #[test]
    fn mailbox_block_offsets_and_signatures() {
        let mut b = vec![0u8; MAILBOX_BLOCK_LEN];
        let mut m = MailboxBlock::new_checked(&mut b[..]).unwrap();
        m.data_mut()[0x5C] = 0x03;
        m.set_next(0x3C3D_7400);
        m.set_block_number(2);
        m.set_token(7);
        m.fill_signatures();
        assert!(m.signatures_ok());
        assert_eq!(&b[0x230..0x238], &[0, 0, 0, 0, 0x3C, 0x3D, 0x74, 0x00]);
        assert_eq!(&b[0x238..0x23C], &[0, 0, 0, 2]);
        assert_eq!(b[0x23D], 7);
        // The control signature covers 0x200..0x23E, the block signature everything.
        assert_eq!(xor8(&b[0x200..0x23F]), 0xFF);
        assert_eq!(xor8(&b), 0xFF);
        b[0x100] ^= 1;
        assert!(!MailboxBlock::new_checked(&b[..]).unwrap().signatures_ok());
        // The trailer of an unsigned block (checksums off): token 7, signatures 0.
        let mut c = vec![0u8; MAILBOX_BLOCK_LEN];
        MailboxBlock::new_checked(&mut c[..]).unwrap().set_token(7);
        assert_eq!(&c[0x23C..], &[0x00, 0x07, 0x00, 0x00]);
        assert!(MailboxBlock::new_checked(&c[..0x23F]).is_err());
        let m = MailboxBlock::new_checked(&c[..]).unwrap();
        assert_eq!(m.delivery_check(0, 7, false), DeliveryStatus::Ok);
        assert_eq!(
            m.delivery_check(1, 7, false),
            DeliveryStatus::BadBlockNumber
        );
        assert_eq!(m.delivery_check(0, 8, false), DeliveryStatus::Token);
        assert_eq!(m.delivery_check(0, 7, true), DeliveryStatus::Signature);
    }

    #[test]
    fn message_geometry() {
        assert_eq!(mailbox_blocks(0), 0);
        assert_eq!(mailbox_blocks(16), 0);
        assert_eq!(mailbox_blocks(17), 1);
        // QUERY_ISSI output (0x70) needs one block, a capability page output (0x1010) eight.
        assert_eq!(mailbox_blocks(0x70), 1);
        assert_eq!(mailbox_blocks(0x1010), 8);
        assert_eq!(mailbox_blocks(16 + 512), 1);
        assert_eq!(mailbox_blocks(16 + 513), 2);
        assert_eq!(locate(15), Location::Inline(15));
        // QUERY_ISSI's supported_issi_dw0 at message 0x6C is mailbox byte 0x5C.
        assert_eq!(
            locate(0x6C),
            Location::Mailbox {
                block: 0,
                offset: 0x5C
            }
        );
        assert_eq!(
            locate(16 + 512),
            Location::Mailbox {
                block: 1,
                offset: 0
            }
        );
        assert_eq!(doorbell_bit(0), Some(1));
        assert_eq!(doorbell_bit(31), Some(0x8000_0000));
        assert_eq!(doorbell_bit(32), None);
        assert_eq!(page_request_slot(5), 31);
        assert_eq!(page_request_slot(9), 0);
    }

    #[test]
    fn a_query_issi_answer_splits_as_the_lab_delivered_it() {
        // 0x70 bytes: 16 inline, 96 in one mailbox block; supported_issi_dw0 = 3 at mailbox
        // byte 0x5C.
        let mut out = [0u8; 0x70];
        out[0x6F] = 3;
        let (inline, mut blocks) = split_message(&out);
        assert_eq!(inline.len(), INLINE_LEN);
        let block0 = blocks.next().unwrap();
        assert_eq!(block0.len(), 96);
        assert_eq!(&block0[0x5C..0x60], &[0, 0, 0, 3]);
        assert!(blocks.next().is_none());
        let (inline, mut blocks) = split_message(&out[..12]);
        assert_eq!(inline.len(), 12);
        assert!(blocks.next().is_none());
        assert_eq!(
            split_message(&[0u8; 0x1010]).1.count(),
            mailbox_blocks(0x1010)
        );
    }

    #[test]
    fn status_codes_round_trip_and_unknowns_survive() {
        for v in 0..=0x7Fu8 {
            assert_eq!(u8::from(DeliveryStatus::from(v)), v);
        }
        for v in 0..=255u8 {
            assert_eq!(u8::from(CommandStatus::from(v)), v);
        }
        assert_eq!(DeliveryStatus::from(0x10), DeliveryStatus::BadCommandType);
        assert_eq!(CommandStatus::from(0x02), CommandStatus::BadOp);
        assert_eq!(CommandStatus::from(0x51), CommandStatus::BadOutputLength);
        assert_eq!(CommandStatus::from(0x77), CommandStatus::Unknown(0x77));
    }

    #[test]
    fn headers_round_trip() {
        // SET_ISSI as the lab's guest sent it.
        let set_issi = [0x01, 0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        let h = InputHeader::parse(&set_issi).unwrap();
        assert_eq!(
            h,
            InputHeader {
                opcode: Opcode::SetIssi,
                uid: 0,
                op_mod: 0
            }
        );
        let mut b = [0u8; 8];
        InputHeader {
            opcode: Opcode::QueryPages,
            uid: 7,
            op_mod: 1,
        }
        .emit(&mut b)
        .unwrap();
        assert_eq!(b, [0x01, 0x07, 0, 7, 0, 0, 0, 1]);
        assert!(InputHeader::parse(&b[..7]).is_err());
        assert!(
            InputHeader {
                opcode: Opcode::Unknown(0xFFFF),
                uid: 0,
                op_mod: 0
            }
            .emit(&mut b[..4])
            .is_err()
        );
        // A real failure: CREATE_TIS status 0x3 syndrome 0x595b5d.
        let mut o = [0xAAu8; 16];
        OutputHeader {
            status: CommandStatus::BadParam,
            syndrome: 0x59_5B5D,
        }
        .emit(&mut o)
        .unwrap();
        assert_eq!(&o[..8], &[0x03, 0, 0, 0, 0x00, 0x59, 0x5B, 0x5D]);
        assert_eq!(&o[8..], &[0xAA; 8], "rest untouched");
        assert_eq!(
            OutputHeader::parse(&o).unwrap(),
            OutputHeader {
                status: CommandStatus::BadParam,
                syndrome: 0x59_5B5D
            }
        );
        assert_eq!(
            OutputHeader::parse(&[0x99, 0, 0, 0, 0, 0, 0, 1])
                .unwrap()
                .status,
            CommandStatus::Unknown(0x99)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_entry_round_trips_through_its_repr(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), ENTRY_LEN)
        ) {
            let mut b = bytes.clone();
            // Bytes 0x01..0x04 and 0x3E are reserved and not part of the repr.
            b[1..4].fill(0);
            b[0x3E] = 0;
            let r = QueueEntryRepr::parse(&QueueEntry::new_checked(&b[..]).unwrap());
            let mut out = vec![0u8; ENTRY_LEN];
            r.emit(&mut QueueEntry::new_checked(&mut out[..]).unwrap());
            proptest::prop_assert_eq!(out, b);
        }

        #[test]
        fn signing_always_verifies(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), MAILBOX_BLOCK_LEN)) {
            let mut b = bytes.clone();
            let mut m = MailboxBlock::new_checked(&mut b[..]).unwrap();
            m.fill_signatures();
            proptest::prop_assert!(m.signatures_ok());
            let mut e = bytes[..ENTRY_LEN].to_vec();
            let mut v = QueueEntry::new_checked(&mut e[..]).unwrap();
            v.fill_signature();
            proptest::prop_assert!(v.signature_ok());
        }
    }

    #[test]
    fn opcode_table() {
        for v in 0..=u16::MAX {
            assert_eq!(u16::from(Opcode::from(v)), v);
        }
        assert!(Opcode::ALL.windows(2).all(|w| w[0].value() < w[1].value()));
        for op in Opcode::ALL {
            assert_eq!(Opcode::from(op.value()), *op);
            assert_ne!(op.name(), "UNKNOWN");
        }
        let pinned = [
            (0x100, "QUERY_HCA_CAP"),
            (0x102, "INIT_HCA"),
            (0x104, "ENABLE_HCA"),
            (0x107, "QUERY_PAGES"),
            (0x108, "MANAGE_PAGES"),
            (0x10A, "QUERY_ISSI"),
            (0x10B, "SET_ISSI"),
            (0x301, "CREATE_EQ"),
            (0x400, "CREATE_CQ"),
            (0x755, "MODIFY_NIC_VPORT_CONTEXT"),
            (0x805, "ACCESS_REG"),
            (0x904, "CREATE_SQ"),
            (0x908, "CREATE_RQ"),
            (0x912, "CREATE_TIS"),
            (0x916, "CREATE_RQT"),
            (0x93C, "MODIFY_FLOW_TABLE"),
            (0x7F00, "HAC_SET_CONTROL"),
            (0x7F03, "HAC_COMMIT"),
            (0x7F08, "HAC_QUERY"),
        ];
        for (v, name) in pinned {
            assert_eq!(Opcode::from(v).name(), name);
        }
        assert_eq!(Opcode::from(0x0A00), Opcode::Unknown(0x0A00));
        assert_eq!(Opcode::EnableHca.to_string(), "ENABLE_HCA(0x104)");
    }
}

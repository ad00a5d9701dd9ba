//! The command transport: one queue entry from host memory to its executed output, through
//! the function's IOMMU (layouts: `mlx5_hw::cmd`; behaviour: Linux `cmd.c`
//! `cmd_work_handler`/`mlx5_cmd_comp_handler` as the driver side, the PRM command interface).
//!
//! For each doorbell bit the device reads the 64-byte entry at `cmdq + slot · 64`:
//!
//! 1. Ownership clear: not handed to the device; nothing is executed or written (counted).
//! 2. Transport checks, each answered with a delivery status and ownership returned, the
//!    command not executed: entry type ≠ 7 (`BadCommandType`); entry signature when checking
//!    is on (`Signature`); input or output length below the 8-byte header or above
//!    [`MAX_MESSAGE_LEN`] (`InputLength`/`OutputLength`); a misaligned first mailbox pointer
//!    (`Input/OutputPointerAlignment`); for each input block, in chain order: a null or
//!    misaligned pointer before the input is complete (`InputLength`/alignment), the block
//!    number ≠ its position (`BadBlockNumber`), its token ≠ the entry's (`Token`), its
//!    signatures when checking is on (`Signature`); the same walk over the output chain
//!    (block numbers and tokens; `OutputLength` for a chain shorter than the output).
//! 3. Execution ([`crate::commands`]) produces exactly `output_length` bytes.
//! 4. The first 16 output bytes go inline into the entry, the rest into the output blocks'
//!    data; then the status byte: delivery OK, ownership back to software.
//!
//! A DMA fault anywhere (entry, chains, write-back) is a transport failure of that function:
//! the entry gets `FwError` if it can still be written, and the function's queue stops until
//! the driver writes the queue address again (or the function is reset). Other functions are
//! not affected.

use adapter_core::memory::{DmaFault, Iommu};
use hw_common::Iova;
use mlx5_hw::cmd::{
    CMD_TYPE_PCIE, DeliveryStatus, ENTRY_LEN, HEADER_LEN, INLINE_LEN, MAILBOX_BLOCK_LEN,
    MAILBOX_DATA_LEN, MailboxBlock, QueueEntry, mailbox_blocks,
};

/// Largest input or output message the model accepts: 1 MiB (a MANAGE_PAGES of 131 070
/// pages); longer is a length delivery error.
pub const MAX_MESSAGE_LEN: u32 = 1 << 20;
/// Alignment the model requires of mailbox pointers (the block's 64-bit fields).
pub const MAILBOX_POINTER_ALIGN: u64 = 8;
/// Offset of the status/ownership byte in the entry.
const STATUS_OWN: u64 = 0x3F;
/// Offset of the inline output in the entry.
const INLINE_OUT: u64 = 0x20;

/// What happened to one queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotOutcome {
    /// Ownership bit clear: ignored.
    NotOwned,
    /// Refused with this delivery status (not executed), ownership returned.
    Refused(DeliveryStatus),
    /// Executed; the output and ownership were written back.
    Executed,
    /// A DMA fault: the queue of this function stops. `executed` says whether the command
    /// ran before the fault (during the output write-back).
    Fault {
        /// The fault.
        fault: DmaFault,
        /// The command had been executed.
        executed: bool,
    },
}

fn fault_or<T>(r: Result<T, DmaFault>) -> Result<T, Stop> {
    r.map_err(Stop::Fault)
}

enum Stop {
    Refuse(DeliveryStatus),
    Fault(DmaFault),
    FaultAfterExecution(DmaFault),
}

/// Processes the entry of `slot` in the queue at `cmdq`. `execute` gets the whole input
/// message and the output length and returns exactly that many output bytes.
pub fn process_slot(
    iommu: &Iommu,
    cmdq: u64,
    slot: u8,
    verify_signatures: bool,
    execute: impl FnOnce(&[u8], usize) -> Vec<u8>,
) -> SlotOutcome {
    let Some(entry_addr) = cmdq.checked_add(u64::from(slot) * ENTRY_LEN as u64) else {
        return SlotOutcome::Refused(DeliveryStatus::FwError);
    };
    let mut raw = [0u8; ENTRY_LEN];
    if let Err(fault) = iommu.read(Iova(entry_addr), &mut raw) {
        return SlotOutcome::Fault {
            fault,
            executed: false,
        };
    }
    let Ok(entry) = QueueEntry::new_checked(&raw[..]) else {
        return SlotOutcome::Refused(DeliveryStatus::FwError);
    };
    if !entry.owned_by_hw() {
        return SlotOutcome::NotOwned;
    }
    let stop = match transfer(iommu, entry_addr, &entry, verify_signatures, execute) {
        Ok(()) => return SlotOutcome::Executed,
        Err(s) => s,
    };
    let (status, outcome) = match stop {
        Stop::Refuse(d) => (d, SlotOutcome::Refused(d)),
        Stop::Fault(fault) => (
            DeliveryStatus::FwError,
            SlotOutcome::Fault {
                fault,
                executed: false,
            },
        ),
        Stop::FaultAfterExecution(fault) => (
            DeliveryStatus::FwError,
            SlotOutcome::Fault {
                fault,
                executed: true,
            },
        ),
    };
    let _ = write_status(iommu, entry_addr, status);
    outcome
}

/// Writes the status byte: delivery status, ownership to software.
fn write_status(iommu: &Iommu, entry_addr: u64, status: DeliveryStatus) -> Result<(), DmaFault> {
    iommu.write(
        Iova(entry_addr + STATUS_OWN),
        &[u8::from(status).wrapping_shl(1)],
    )
}

fn transfer(
    iommu: &Iommu,
    entry_addr: u64,
    entry: &QueueEntry<&[u8]>,
    verify: bool,
    execute: impl FnOnce(&[u8], usize) -> Vec<u8>,
) -> Result<(), Stop> {
    let refuse = |d| Err(Stop::Refuse(d));
    if entry.cmd_type() != CMD_TYPE_PCIE {
        return refuse(DeliveryStatus::BadCommandType);
    }
    if verify && !entry.signature_ok() {
        return refuse(DeliveryStatus::Signature);
    }
    let in_len = entry.input_length();
    let out_len = entry.output_length();
    if !(HEADER_LEN as u32..=MAX_MESSAGE_LEN).contains(&in_len) {
        return refuse(DeliveryStatus::InputLength);
    }
    if !(HEADER_LEN as u32..=MAX_MESSAGE_LEN).contains(&out_len) {
        return refuse(DeliveryStatus::OutputLength);
    }
    let (in_len, out_len) = (in_len as usize, out_len as usize);
    let token = entry.token();

    // Input: inline bytes, then the chain.
    let mut input = vec![0u8; in_len];
    let inline = entry.inline_input();
    let n = in_len.min(INLINE_LEN);
    input[..n].copy_from_slice(&inline[..n]);
    let mut next = entry.input_mailbox();
    for (pos, chunk) in input[n..].chunks_mut(MAILBOX_DATA_LEN).enumerate() {
        let block = read_block(
            iommu,
            next,
            pos,
            token,
            verify,
            DeliveryStatus::InputLength,
            DeliveryStatus::InputPointerAlignment,
        )?;
        chunk.copy_from_slice(&block[..chunk.len()]);
        next = MailboxBlock::new_checked(&block[..]).map_or(0, |b| b.next());
    }

    // Output chain: walked (and checked) before the command runs.
    let blocks = mailbox_blocks(out_len);
    let mut out_blocks = Vec::with_capacity(blocks);
    let mut next = entry.output_mailbox();
    for pos in 0..blocks {
        let block = read_block(
            iommu,
            next,
            pos,
            token,
            false,
            DeliveryStatus::OutputLength,
            DeliveryStatus::OutputPointerAlignment,
        )?;
        out_blocks.push(next);
        next = MailboxBlock::new_checked(&block[..]).map_or(0, |b| b.next());
    }

    let mut output = execute(&input, out_len);
    output.resize(out_len, 0);
    let (inline, rest) = output.split_at(out_len.min(INLINE_LEN));
    for (addr, chunk) in out_blocks.iter().zip(rest.chunks(MAILBOX_DATA_LEN)) {
        iommu
            .write(Iova(*addr), chunk)
            .map_err(Stop::FaultAfterExecution)?;
    }
    let mut inline16 = [0u8; INLINE_LEN];
    inline16[..inline.len()].copy_from_slice(inline);
    iommu
        .write(Iova(entry_addr + INLINE_OUT), &inline16)
        .map_err(Stop::FaultAfterExecution)?;
    // Ownership last: the driver sees the output complete when the bit clears.
    write_status(iommu, entry_addr, DeliveryStatus::Ok).map_err(Stop::FaultAfterExecution)
}

fn read_block(
    iommu: &Iommu,
    addr: u64,
    pos: usize,
    token: u8,
    verify: bool,
    short: DeliveryStatus,
    misaligned: DeliveryStatus,
) -> Result<[u8; MAILBOX_BLOCK_LEN], Stop> {
    if addr == 0 {
        return Err(Stop::Refuse(short));
    }
    if !addr.is_multiple_of(MAILBOX_POINTER_ALIGN) {
        return Err(Stop::Refuse(misaligned));
    }
    let mut block = [0u8; MAILBOX_BLOCK_LEN];
    fault_or(iommu.read(Iova(addr), &mut block))?;
    let status = MailboxBlock::new_checked(&block[..]).map_or(DeliveryStatus::FwError, |b| {
        b.delivery_check(pos as u32, token, verify)
    });
    if status != DeliveryStatus::Ok {
        return Err(Stop::Refuse(status));
    }
    Ok(block)
}

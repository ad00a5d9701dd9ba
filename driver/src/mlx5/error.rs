//! The mlx5 driver's errors: one variant per specific failure, each naming the command (PRM
//! name and opcode) it came from where there is one.

use mlx5_hw::Truncated;
use mlx5_hw::cmd::{CommandStatus, DeliveryStatus, Opcode};
use mlx5_hw::init_seg::HealthSyndrome;

use crate::backend::DmaError;

/// What the health buffer and the health counter said when the driver looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthReport {
    /// `health_counter` (the heartbeat firmware keeps changing).
    pub counter: u32,
    /// `fw_ver` of the health buffer (all ones: the device is gone from the bus).
    pub fw_ver: u32,
    /// Reset-for-recovery request bit.
    pub rfr: bool,
    /// Health syndrome.
    pub synd: HealthSyndrome,
    /// Extended syndrome.
    pub ext_synd: u16,
    /// The device is dead by the health poller's rules: gone from the bus, or a reset
    /// request with a syndrome.
    pub fatal: bool,
}

impl core::fmt::Display for HealthReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "health syndrome {:?} ({:#x}), ext {:#06x}, rfr {}, fw_ver {:#010x}, counter {:#x}",
            self.synd,
            u8::from(self.synd),
            self.ext_synd,
            u8::from(self.rfr),
            self.fw_ver,
            self.counter
        )
    }
}

/// Errors of the mlx5 driver.
#[derive(Debug, thiserror::Error)]
pub enum Mlx5Error {
    /// The firmware kept the `initializing` bit set past the timeout.
    #[error("firmware still initializing after {waited_ms} ms")]
    FirmwareInitTimeout {
        /// How long the driver waited.
        waited_ms: u64,
    },
    /// The command interface revision is not the one this driver speaks (5).
    #[error("command interface revision {found}, expected {expected}")]
    CmdifRevision {
        /// What the init segment says.
        found: u16,
        /// What the driver speaks.
        expected: u16,
    },
    /// The command queue geometry is outside what the driver supports.
    #[error("command queue geometry log size {log_size}, log stride {log_stride} not supported")]
    CmdqGeometry {
        /// log2 of the entry count.
        log_size: u8,
        /// log2 of the entry stride.
        log_stride: u8,
    },
    /// A command message longer than the slot's mailbox area.
    #[error("{opcode}: message of {len} bytes exceeds the {max}-byte mailbox area")]
    MessageTooLong {
        /// The command.
        opcode: Opcode,
        /// Input or output length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The device returned a command with a delivery error: it was not executed.
    #[error("{opcode}: delivery failed with status {status:?}")]
    Delivery {
        /// The command.
        opcode: Opcode,
        /// The delivery status.
        status: DeliveryStatus,
    },
    /// The device executed the command and refused it.
    #[error(
        "{opcode} op_mod({op_mod:#x}) failed, status {status:?} ({raw_status:#x}), syndrome {syndrome:#x}"
    )]
    Command {
        /// The command.
        opcode: Opcode,
        /// Its op_mod.
        op_mod: u16,
        /// The status.
        status: CommandStatus,
        /// The raw status byte.
        raw_status: u8,
        /// The syndrome (opaque firmware code).
        syndrome: u32,
    },
    /// The device did not hand the entry back within the command timeout.
    #[error("{opcode} timed out after {waited_ms} ms ({health})")]
    CommandTimeout {
        /// The command.
        opcode: Opcode,
        /// How long the driver waited.
        waited_ms: u64,
        /// What the health buffer said afterwards.
        health: HealthReport,
    },
    /// An earlier command timed out; the command interface needs
    /// [`recover_command_interface`](super::Mlx5Device::recover_command_interface) first.
    #[error("{opcode} refused: the command interface is down since a timeout")]
    CommandInterfaceDown {
        /// The command that was not sent.
        opcode: Opcode,
    },
    /// The device reports a fatal health state.
    #[error("device fatal: {0}")]
    DeviceFatal(HealthReport),
    /// The health counter stopped changing for the miss count of polls.
    #[error("device health compromised: health counter stuck at {counter:#x} for {misses} polls")]
    HealthCompromised {
        /// The stuck value.
        counter: u32,
        /// Polls without a change.
        misses: u32,
    },
    /// An output shorter than its layout (the device answered a shorter message).
    #[error("{opcode}: malformed output: {source}")]
    MalformedOutput {
        /// The command.
        opcode: Opcode,
        /// What was short.
        source: Truncated,
    },
    /// The device asked for, or holds, pages in a way the driver cannot satisfy.
    #[error("page accounting: {0}")]
    Pages(&'static str),
    /// The device lacks a capability the driver needs.
    #[error("missing capability: {0}")]
    MissingCapability(&'static str),
    /// The device does not support ISSI 1.
    #[error("ISSI 1 not supported (supported_issi_dw0 {0:#x})")]
    IssiUnsupported(u32),
    /// A queue size the driver or the device cannot use.
    #[error("{what} log size {log} out of range {min}..={max}")]
    QueueSize {
        /// Which queue.
        what: &'static str,
        /// The requested log2 size.
        log: u8,
        /// Smallest allowed.
        min: u8,
        /// Largest allowed.
        max: u8,
    },
    /// A frame larger than the receive buffers or the send limit.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// Frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame shorter than the inline header the device requires.
    #[error("frame of {len} bytes is shorter than the {min}-byte inline header")]
    FrameTooShort {
        /// Frame length.
        len: usize,
        /// The inline header length.
        min: usize,
    },
    /// A work request the layouts refuse to encode.
    #[error("work queue entry: {0}")]
    Wqe(#[from] mlx5_hw::wqe::WqeError),
    /// The device reported an error completion.
    #[error(
        "{queue} error CQE: syndrome {syndrome:#x}, vendor syndrome {vendor:#x}, WQE {wqe_counter}"
    )]
    ErrorCompletion {
        /// "send" or "receive".
        queue: &'static str,
        /// CQE syndrome.
        syndrome: u8,
        /// Vendor syndrome.
        vendor: u8,
        /// The WQE counter the CQE names.
        wqe_counter: u16,
    },
    /// A plain send while send WQEs are held beyond the doorbell record (ringing would hand
    /// them to the device).
    #[error("send refused: {wqes} send WQEs are held beyond the doorbell record")]
    TxHeld {
        /// Held send WQEs.
        wqes: usize,
    },
    /// A VF number the owner does not have.
    #[error("no VF {0}")]
    NoSuchVf(hw_common::VfNumber),
    /// The operation needs the Ethernet queues, which are not open.
    #[error("the Ethernet queues are not open")]
    NotOpen,
    /// DMA memory could not be allocated or mapped.
    #[error(transparent)]
    Dma(#[from] DmaError),
}

//! Named counters of the model: every refused access, every transport error and every failed
//! command is counted here, never dropped silently.

use mlx5_hw::cmd::{CommandStatus, DeliveryStatus};

/// Device-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// BAR or configuration accesses of a size or alignment the register does not take.
    pub misaligned_accesses: u64,
    /// Accesses beyond a BAR or the configuration space, or to a BAR that does not exist.
    pub out_of_range_accesses: u64,
    /// BAR or configuration accesses to a function that is disabled (VF not enabled, memory
    /// space off).
    pub disabled_function_accesses: u64,
    /// Writes to read-only registers of the initialization segment (ignored).
    pub read_only_writes: u64,
    /// Reads of BAR0 offsets that hold nothing modelled yet (read as zero).
    pub unknown_reads: u64,
    /// Writes to BAR0 offsets that hold nothing modelled yet (ignored).
    pub unknown_writes: u64,
    /// Command doorbells written.
    pub doorbells: u64,
    /// Doorbells before the driver gave the command queue address (ignored).
    pub doorbell_no_queue: u64,
    /// Doorbells while the initializing bit is set (ignored).
    pub doorbell_while_initializing: u64,
    /// Doorbell bits for a function whose command queue is stopped by a DMA fault (ignored).
    pub doorbell_queue_stopped: u64,
    /// Doorbell bits for an entry the driver did not hand to the device (ownership bit
    /// clear): nothing is executed or written back.
    pub entry_not_owned: u64,
    /// Commands refused by a delivery status (transport error), by status.
    pub delivery: DeliveryCounters,
    /// DMA faults while reading or writing a command entry or mailbox chain (each also
    /// stops that function's command queue).
    pub cmd_dma_faults: u64,
    /// Commands executed with status OK.
    pub commands_ok: u64,
    /// Commands executed with a non-OK status, by status.
    pub command_errors: CommandErrorCounters,
    /// Pages the device still held when a function was disabled or reset (released with it).
    pub pages_released_on_reset: u64,
    /// Function-level resets (FLR, VF disable).
    pub function_resets: u64,
    /// `advance_to` calls with a time before the current one (ignored).
    pub time_went_backwards: u64,
    /// MSI-X messages sent.
    pub interrupts_sent: u64,
    /// Interrupts raised while the vector or the function was masked (PBA bit set; sent on
    /// unmask).
    pub interrupts_pending: u64,
    /// Interrupts raised while MSI-X was disabled (nothing can be sent: dropped).
    pub interrupts_dropped: u64,
    /// EQEs written.
    pub eqes_written: u64,
    /// Events dropped because their EQ was full.
    pub eq_overflows: u64,
    /// DMA faults writing an EQE (the EQ stops).
    pub eq_dma_faults: u64,
    /// Events dropped because their EQ had stopped on a DMA fault.
    pub eqes_dropped_failed_eq: u64,
    /// EQ doorbells refused: unknown EQ, EQ of another UAR page, consumer counter beyond the
    /// producer, or a write that is not 4 bytes.
    pub eq_doorbell_errors: u64,
    /// CREATE_EQs refused because the EQ buffer was not reachable (DMA fault).
    pub eq_buffer_faults: u64,
    /// CREATE_CQs refused because the CQ buffer or doorbell record was not reachable.
    pub cq_buffer_faults: u64,
    /// CQEs written.
    pub cqes_written: u64,
    /// CQEs dropped because their CQ was full.
    pub cq_overflows: u64,
    /// DMA faults writing a CQE (the CQ is failed after).
    pub cq_dma_faults: u64,
    /// Reads of a CQ's doorbell record that faulted (the last consumer counter seen stays; the
    /// CQE is still posted if there is room).
    pub cq_dbr_read_faults: u64,
    /// CQEs dropped because their CQ had failed.
    pub cqes_dropped_failed_cq: u64,
    /// CQEs posted to a CQ the function does not have.
    pub cqes_no_cq: u64,
    /// CQ arm doorbells refused: wrong size, unknown CQ, another UAR page, a consumer counter
    /// past the producer.
    pub cq_doorbell_errors: u64,
    /// Completion events posted to EQs for armed CQs.
    pub completion_events: u64,
    /// Page-request events the device raised.
    pub page_requests: u64,
    /// CREATE_SQ/RQs refused because the WQ buffer or doorbell record was not reachable.
    pub wq_buffer_faults: u64,
    /// Frames the E-Switch offered to a function that does not exist or is not enabled.
    pub rx_no_function: u64,
    /// The send and receive queues of every function.
    pub queues: QueueCounters,
}

/// Counters of the send and receive queues (device-wide in [`Counters::queues`], per
/// function in [`FunctionCounters::queues`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// SQ doorbells taken.
    pub sq_doorbells: u64,
    /// SQ doorbells refused: not an 8-byte write at the start of a doorbell register, an
    /// unknown SQ, an SQ of another UAR page, an SQ not ready, a doorbell-record counter
    /// beyond the ring, a doorbell index that is not a posted WQE.
    pub sq_doorbell_errors: u64,
    /// Send WQEs executed without error.
    pub tx_wqes: u64,
    /// Frames handed to the E-Switch.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Send WQEs completed with an error CQE (the SQ goes to ERR).
    pub tx_error_cqes: u64,
    /// Protection errors of the send path: DMA faults reading send WQEs or gather buffers, and
    /// lkeys that do not allow the gather.
    pub tx_dma_faults: u64,
    /// Frames the E-Switch refused with backpressure (the SQ waits).
    pub tx_backpressure: u64,
    /// Frames the E-Switch dropped.
    pub tx_eswitch_drops: u64,
    /// Frames written into receive WQEs.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames no steering rule took (no root table, or a miss without a miss table).
    pub rx_steering_misses: u64,
    /// Frames a drop rule took.
    pub rx_rule_drops: u64,
    /// Frames whose TIR led to no RQ (an empty RQT).
    pub rx_no_rq: u64,
    /// Frames for an RQ that is not ready (RST or ERR).
    pub rx_rq_not_ready: u64,
    /// Frames dropped because the RQ had no WQE posted (out of buffer).
    pub rx_out_of_buffer: u64,
    /// RQ doorbell records whose receive counter jumped beyond the ring (frame dropped).
    pub rq_doorbell_errors: u64,
    /// Receive WQEs completed with an error CQE (too small, or a DMA fault).
    pub rx_error_cqes: u64,
    /// Protection errors of the receive path: DMA faults reading receive WQEs or writing
    /// frames, and lkeys that do not allow the scatter (the RQ goes to ERR).
    pub rx_dma_faults: u64,
}

/// Delivery errors by delivery status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCounters {
    /// Bad entry or mailbox signature (only with signature checking on).
    pub signature: u64,
    /// Mailbox token different from the entry's.
    pub token: u64,
    /// Mailbox block number out of sequence.
    pub bad_block_number: u64,
    /// Misaligned output mailbox pointer.
    pub output_pointer_alignment: u64,
    /// Misaligned input mailbox pointer.
    pub input_pointer_alignment: u64,
    /// Firmware error: the model reports DMA faults this way.
    pub fw_error: u64,
    /// Bad input length, or an input chain shorter than the input length.
    pub input_length: u64,
    /// Bad output length, or an output chain shorter than the output length.
    pub output_length: u64,
    /// Entry type other than PCIe (7).
    pub bad_command_type: u64,
}

impl DeliveryCounters {
    pub(crate) fn count(&mut self, s: DeliveryStatus) {
        match s {
            DeliveryStatus::Signature => self.signature += 1,
            DeliveryStatus::Token => self.token += 1,
            DeliveryStatus::BadBlockNumber => self.bad_block_number += 1,
            DeliveryStatus::OutputPointerAlignment => self.output_pointer_alignment += 1,
            DeliveryStatus::InputPointerAlignment => self.input_pointer_alignment += 1,
            DeliveryStatus::InputLength => self.input_length += 1,
            DeliveryStatus::OutputLength => self.output_length += 1,
            DeliveryStatus::BadCommandType => self.bad_command_type += 1,
            // The model reports nothing else; FwError stands for the rest.
            _ => self.fw_error += 1,
        }
    }
}

/// Failed commands by command status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandErrorCounters {
    /// BAD_OP: unknown or unimplemented opcode, or an op_mod the command does not have.
    pub bad_op: u64,
    /// BAD_PARAM: a field with a value the device refuses.
    pub bad_param: u64,
    /// BAD_SYS_STATE: the command is not allowed in the function's state.
    pub bad_sys_state: u64,
    /// BAD_RES: an object number that does not exist.
    pub bad_resource: u64,
    /// NO_RES: out of objects or pages.
    pub no_resources: u64,
    /// BAD_INP_LEN: input shorter than the command's layout.
    pub bad_input_length: u64,
    /// BAD_OUTP_LEN: output shorter than the command's layout.
    pub bad_output_length: u64,
    /// Any other status.
    pub other: u64,
}

impl CommandErrorCounters {
    pub(crate) fn count(&mut self, s: CommandStatus) {
        match s {
            CommandStatus::BadOp => self.bad_op += 1,
            CommandStatus::BadParam => self.bad_param += 1,
            CommandStatus::BadSysState => self.bad_sys_state += 1,
            CommandStatus::BadResource => self.bad_resource += 1,
            CommandStatus::NoResources => self.no_resources += 1,
            CommandStatus::BadInputLength => self.bad_input_length += 1,
            CommandStatus::BadOutputLength => self.bad_output_length += 1,
            _ => self.other += 1,
        }
    }

    /// Every failed command.
    pub fn total(&self) -> u64 {
        self.bad_op
            + self.bad_param
            + self.bad_sys_state
            + self.bad_resource
            + self.no_resources
            + self.bad_input_length
            + self.bad_output_length
            + self.other
    }
}

/// Counters of one function's command interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FunctionCounters {
    /// Commands executed (any status).
    pub commands: u64,
    /// Commands executed with a non-OK status.
    pub command_errors: u64,
    /// Commands refused by a delivery status.
    pub delivery_errors: u64,
    /// DMA faults of the command interface.
    pub dma_faults: u64,
    /// Events dropped because an EQ of the function was full.
    pub eq_overflows: u64,
    /// DMA faults writing the function's EQEs.
    pub eq_dma_faults: u64,
    /// CQEs dropped because a CQ of the function was full.
    pub cq_overflows: u64,
    /// DMA faults writing the function's CQEs.
    pub cq_dma_faults: u64,
    /// The function's send and receive queues.
    pub queues: QueueCounters,
}

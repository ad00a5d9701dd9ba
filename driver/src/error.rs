//! The driver's error type: one variant per specific failure, so callers can react to each.

use adapter_core::hac::VfNumber;
use igb_hw::MacAddress;

use crate::backend::DmaError;

/// Errors of the VF driver, the mailbox and the PF agent.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The VF did not come out of reset: neither RSTI nor RSTD was seen and the PF did not
    /// answer within the reset timeout.
    #[error("VF reset did not complete (PF still resetting?)")]
    ResetTimeout,
    /// The PF is resetting (RSTI set) and the mailbox is unusable until it finishes.
    #[error("the PF is in reset (RSTI); retry after it completes")]
    PfInReset,
    /// The mailbox buffer could not be locked (the PF holds it).
    #[error("could not take the mailbox lock within {tries} tries")]
    MailboxBusy {
        /// Attempts made.
        tries: u32,
    },
    /// No answer (PFACK or PFSTS) within the timeout.
    #[error("mailbox timeout waiting for the PF to {waiting_for} (after {timeout_us} µs)")]
    MailboxTimeout {
        /// "acknowledge" or "reply".
        waiting_for: &'static str,
        /// The timeout that expired.
        timeout_us: u64,
    },
    /// The PF refused the request.
    #[error("the PF refused message {id:#06x} (NACK)")]
    Nack {
        /// The message id.
        id: u16,
    },
    /// The PF replied with something that is not the reply to our message.
    #[error("unexpected mailbox reply {word0:#010x} to message {id:#06x}")]
    UnexpectedReply {
        /// The message id sent.
        id: u16,
        /// Word 0 of the reply.
        word0: u32,
    },
    /// The PF's reply could not be parsed.
    #[error("malformed mailbox reply: {0}")]
    MalformedReply(igb_hw::mailbox::ParseError),
    /// A MAC address that cannot be a station address.
    #[error("invalid MAC address {0} (must be unicast and non-zero)")]
    InvalidMac(MacAddress),
    /// A ring size the hardware cannot use.
    #[error("ring size {0} invalid: must be a multiple of 8 between 8 and 4096")]
    InvalidRingSize(u32),
    /// A frame larger than the buffer or the negotiated maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// Frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An MTU outside 68..=9216.
    #[error("MTU {0} out of range 68..=9216")]
    InvalidMtu(usize),
    /// Descriptors written beyond TDT are held (checkpoint output not yet committed): a plain
    /// send would have to ring the doorbell over them. Send after they are released.
    #[error(
        "{descriptors} TX descriptors are held beyond TDT until a commit; a plain send would release them"
    )]
    TxHeld {
        /// Descriptors held in the ring.
        descriptors: u32,
    },
    /// A VF the PF agent does not manage (beyond `num_vfs`) or the device does not have: the
    /// number refused, as the HAC contract names VFs.
    #[error("VF {0} does not exist")]
    NoSuchVf(VfNumber),
    /// A PF agent configured for a number of VFs it cannot manage: at least one, and at most
    /// seven (the PF takes the VMDq pool after the last VF, and the 82576 has eight).
    #[error("cannot manage {0} VFs: the PF agent takes 1..=7")]
    InvalidVfCount(usize),
    /// A VF transmit rate above the link speed (Linux `ndo_set_vf_bw`: -EINVAL).
    #[error("VF rate {rate_mbps} Mb/s is above the link speed of {link_mbps} Mb/s")]
    RateAboveLink {
        /// The rate asked for.
        rate_mbps: u32,
        /// The link speed.
        link_mbps: u32,
    },
    /// DMA memory could not be allocated or mapped.
    #[error(transparent)]
    Dma(#[from] DmaError),
}

//! HAC output-commit commands: OURS, not NVIDIA's. The HAC extension of this project's model
//! (docs/hac.md, "HAC on mlx5") exposes the adapter core's egress stage (per-vport epochs,
//! commit, abort, failover, unprotect, buffer limits, the starvation guard) through vendor
//! commands in 0x7F00-0x7F0F, a range no PRM command uses. A real ConnectX answers them with
//! BAD_OP.
//!
//! Only the E-Switch manager (the PF) issues them, on behalf of a VF vport: `vport_number`
//! (dword 2, bits 15:0) is the VF's vport (VF n = n + 1, [`Vport`](super::eswitch::Vport)).
//! A refused operation answers a command status and the model's syndrome (header only, as
//! every refused command); the statuses are listed in docs/hac.md.

use crate::cmd::Opcode;
use crate::commands::OUT_LEN_16;
use crate::field::Field;
use crate::layout::layout;

/// The vport a HAC command acts on (dword 2 of every per-vport input).
pub const VPORT_NUMBER: Field = Field::at(0x08, 15, 0);
/// The epoch argument (dword 3).
pub const EPOCH: Field = Field::dword(0x0C);

/// The syndromes a refused HAC command answers with (with the status in brackets). They are
/// part of OUR command set, so model and driver share them; any other syndrome is a generic
/// refusal (length, op_mod, state) the driver reports as such.
pub mod syndrome {
    /// A VF (not the E-Switch manager) issued a HAC command (BAD_PARAM).
    pub const NOT_ESWITCH_MANAGER: u32 = 0x4D58_0100;
    /// `vport_number` is not an enabled VF's (BAD_PARAM).
    pub const NO_SUCH_VPORT: u32 = 0x4D58_0101;
    /// The vport is not checkpointing (BAD_SYS_STATE).
    pub const NOT_TAGGED: u32 = 0x4D58_0110;
    /// The epoch does not fit the vport's open and resolved epochs (BAD_PARAM).
    pub const BAD_EPOCH: u32 = 0x4D58_0111;
    /// The HAC stage is disabled (BAD_SYS_STATE).
    pub const DISABLED: u32 = 0x4D58_0112;
}

/// HAC_SET_CONTROL field-select bits (dword 3).
pub mod control_select {
    /// Apply `enable`.
    pub const ENABLE: u32 = 1 << 0;
    /// Apply `guard_bytes`.
    pub const GUARD: u32 = 1 << 1;
    /// Every bit the command knows.
    pub const ALL: u32 = ENABLE | GUARD;
}

layout! {
    /// HAC_SET_CONTROL input: enable or disable the HAC stage (disabling releases everything
    /// held) and set the starvation guard (0 = strict priority).
    input(Opcode::HacSetControl) struct HacSetControlIn(0x18) {
        /// Fields to apply ([`control_select`]).
        field_select, set_field_select: u32 = Field::dword(0x0C);
        /// The HAC stage enabled.
        enable, set_enable: bool = Field::at(0x10, 0, 0);
        /// Starvation guard in bytes.
        guard_bytes, set_guard_bytes: u32 = Field::dword(0x14);
    }
}

layout! {
    /// HAC_SET_CONTROL output.
    output struct HacSetControlOut(OUT_LEN_16) {}
}

layout! {
    /// HAC_SET_TAGGED input: tag the vport as checkpointing (epoch 1 open, 0 committed) or
    /// untag it (releases what it holds).
    input(Opcode::HacSetTagged) struct HacSetTaggedIn(0x10) {
        /// The VF's vport.
        vport_number, set_vport_number: u16 = VPORT_NUMBER;
        /// Checkpointing.
        tagged, set_tagged: bool = Field::at(0x0C, 0, 0);
    }
}

layout! {
    /// HAC_SET_TAGGED output.
    output struct HacSetTaggedOut(OUT_LEN_16) {}
}

layout! {
    /// HAC_OPEN_EPOCH input: later frames of the vport are stamped with `epoch`.
    input(Opcode::HacOpenEpoch) struct HacOpenEpochIn(0x10) {
        /// The VF's vport.
        vport_number, set_vport_number: u16 = VPORT_NUMBER;
        /// The epoch to open (strictly above the open one, at most 0xFFFFFFFE).
        epoch, set_epoch: u32 = EPOCH;
    }
}

layout! {
    /// HAC_OPEN_EPOCH output.
    output struct HacOpenEpochOut(OUT_LEN_16) {}
}

layout! {
    /// HAC_COMMIT input: release the held frames of epochs up to `epoch`.
    input(Opcode::HacCommit) struct HacCommitIn(0x10) {
        /// The VF's vport.
        vport_number, set_vport_number: u16 = VPORT_NUMBER;
        /// The epoch committed.
        epoch, set_epoch: u32 = EPOCH;
    }
}

layout! {
    /// HAC_COMMIT output.
    output struct HacCommitOut(OUT_LEN_16) {}
}

layout! {
    /// HAC_ABORT input: discard the held frames of epochs in (resolved, `epoch`].
    input(Opcode::HacAbort) struct HacAbortIn(0x10) {
        /// The VF's vport.
        vport_number, set_vport_number: u16 = VPORT_NUMBER;
        /// The epoch aborted.
        epoch, set_epoch: u32 = EPOCH;
    }
}

layout! {
    /// HAC_ABORT output.
    output struct HacAbortOut(OUT_LEN_16) {
        /// Frames discarded.
        discarded, set_discarded: u32 = Field::dword(0x08);
    }
}

layout! {
    /// HAC_FAILOVER input: discard every held frame of the vport.
    input(Opcode::HacFailover) struct HacFailoverIn(0x10) {
        /// The VF's vport.
        vport_number, set_vport_number: u16 = VPORT_NUMBER;
    }
}

layout! {
    /// HAC_FAILOVER output.
    output struct HacFailoverOut(OUT_LEN_16) {
        /// Frames discarded.
        discarded, set_discarded: u32 = Field::dword(0x08);
    }
}

layout! {
    /// HAC_UNPROTECT input: release everything held and untag the vport.
    input(Opcode::HacUnprotect) struct HacUnprotectIn(0x10) {
        /// The VF's vport.
        vport_number, set_vport_number: u16 = VPORT_NUMBER;
    }
}

layout! {
    /// HAC_UNPROTECT output.
    output struct HacUnprotectOut(OUT_LEN_16) {}
}

layout! {
    /// HAC_SET_LIMITS input: buffer limits of the vport while checkpointing (0 = the maximum,
    /// 2^32 - 1).
    input(Opcode::HacSetLimits) struct HacSetLimitsIn(0x18) {
        /// The VF's vport.
        vport_number, set_vport_number: u16 = VPORT_NUMBER;
        /// Frames.
        frames, set_frames: u32 = Field::dword(0x0C);
        /// Bytes.
        bytes, set_bytes: u32 = Field::dword(0x10);
    }
}

layout! {
    /// HAC_SET_LIMITS output.
    output struct HacSetLimitsOut(OUT_LEN_16) {}
}

layout! {
    /// HAC_QUERY input.
    input(Opcode::HacQuery) struct HacQueryIn(0x10) {
        /// The VF's vport.
        vport_number, set_vport_number: u16 = VPORT_NUMBER;
    }
}

layout! {
    /// HAC_QUERY output: the stage's control, the vport's epochs, occupancy and counters
    /// (gauges and times saturate at 2^32 - 1; the event counters are 64-bit).
    output struct HacQueryOut(0x50) {
        /// The HAC stage is enabled.
        enabled, set_enabled: bool = Field::at(0x08, 31, 31);
        /// The vport is checkpointing.
        tagged, set_tagged: bool = Field::at(0x08, 30, 30);
        /// Starvation guard in bytes.
        guard_bytes, set_guard_bytes: u32 = Field::dword(0x0C);
        /// Open epoch.
        open_epoch, set_open_epoch: u32 = Field::dword(0x10);
        /// Last committed epoch.
        committed_epoch, set_committed_epoch: u32 = Field::dword(0x14);
        /// Frames buffered now (held and released, not yet on the wire).
        buffered_frames, set_buffered_frames: u32 = Field::dword(0x18);
        /// Bytes buffered now.
        buffered_bytes, set_buffered_bytes: u32 = Field::dword(0x1C);
        /// Most frames buffered at once.
        max_frames, set_max_frames: u32 = Field::dword(0x20);
        /// Most bytes buffered at once.
        max_bytes, set_max_bytes: u32 = Field::dword(0x24);
        /// Frames released by commits or unprotect.
        released, set_released: u64 = Field::qword(0x28);
        /// Frames discarded by abort or failover.
        discarded, set_discarded: u64 = Field::qword(0x30);
        /// Times the vport's send queues were refused for a full buffer.
        backpressure, set_backpressure: u64 = Field::qword(0x38);
        /// Buffer limit in frames while checkpointing.
        limit_frames, set_limit_frames: u32 = Field::dword(0x40);
        /// Buffer limit in bytes while checkpointing.
        limit_bytes, set_limit_bytes: u32 = Field::dword(0x44);
        /// Port: commit-to-first-frame time of the last commit that released frames, ns.
        last_commit_to_first_ns, set_last_commit_to_first_ns: u32 = Field::dword(0x48);
        /// Port: drain time of the last fully sent commit, ns.
        last_drain_ns, set_last_drain_ns: u32 = Field::dword(0x4C);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn commit_bytes() {
        let mut b = [0u8; 0x10];
        let mut c = HacCommitIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        c.set_vport_number(3);
        c.set_epoch(0x0102_0304);
        assert_eq!(
            b,
            [0x7F, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4],
            "opcode 0x7F03, vport 3 (VF 2), epoch"
        );
        let c = HacCommitIn::new_checked(&b[..]).unwrap();
        assert_eq!(
            (c.opcode(), c.vport_number(), c.epoch()),
            (Opcode::HacCommit, 3, 0x0102_0304)
        );
        assert!(HacCommitIn::new_checked(&b[..0x0F]).is_err());
    }

    #[test]
    fn query_output_bytes() {
        let mut b = [0u8; 0x50];
        let mut q = HacQueryOut::new_checked(&mut b[..]).unwrap();
        q.set_enabled(true);
        q.set_tagged(true);
        q.set_open_epoch(7);
        q.set_released(0x1_0000_0002);
        q.set_limit_bytes(u32::MAX);
        assert_eq!(&b[0x08..0x0C], &[0xC0, 0, 0, 0]);
        assert_eq!(&b[0x10..0x14], &[0, 0, 0, 7]);
        assert_eq!(&b[0x28..0x30], &[0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(&b[0x44..0x48], &[0xFF; 4]);
    }

    #[test]
    fn control_bytes() {
        let mut b = [0u8; 0x18];
        let mut c = HacSetControlIn::new_checked(&mut b[..]).unwrap();
        c.set_header(0);
        c.set_field_select(control_select::ALL);
        c.set_enable(true);
        c.set_guard_bytes(65536);
        assert_eq!(&b[..4], &[0x7F, 0x00, 0, 0]);
        assert_eq!(&b[0x0C..0x18], &[0, 0, 0, 3, 0, 0, 0, 1, 0, 1, 0, 0]);
    }
}

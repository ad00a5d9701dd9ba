//! The stand-in VMs' workload on the model: `send` queues frames per VF, bounded in bytes, and
//! each tick moves them into the VF driver's TX ring as it has room.

use std::collections::VecDeque;

use bytes::Bytes;
use hac_control::{ControlError, ErrorCode};
use igb_hw::MacAddress;

use super::model_host::ModelVf;

/// Most bytes of workload frames (`send`) one VF may have queued and not yet in its TX ring;
/// a `send` that would go above is refused as a whole (`busy`) and its frames counted in
/// `workload_refused`. A checkpointing VF that is never committed never drains its queue.
pub const MAX_QUEUED_BYTES: usize = 16 << 20;

/// The destination of workload frames (a host beyond the wire).
const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 2]);

/// Frames per VF waiting for their TX ring, and what became of earlier ones.
pub(super) struct Workload {
    queued: Vec<VecDeque<Bytes>>,
    /// Bytes in `queued`, per VF.
    queued_bytes: Vec<usize>,
    /// Frames of `send` requests refused for a full queue, per VF.
    refused: Vec<u64>,
    /// Frames handed to the TX ring, per VF.
    sent: Vec<u64>,
    /// The next frame's sequence number, per VF.
    seq: Vec<u32>,
}

impl Workload {
    /// An empty workload for `n` VFs.
    pub(super) fn new(n: usize) -> Workload {
        Workload {
            queued: vec![VecDeque::new(); n],
            queued_bytes: vec![0; n],
            refused: vec![0; n],
            sent: vec![0; n],
            seq: vec![0; n],
        }
    }

    /// Queues `frames` frames of `len` bytes from `src` on VF `vf` (which exists), or refuses
    /// them all: `bad_field` if they could never fit, `busy` if the queue is too full now
    /// (`checkpointing` says why it may stay full).
    pub(super) fn queue(
        &mut self,
        vf: usize,
        src: MacAddress,
        frames: u32,
        len: usize,
        checkpointing: bool,
    ) -> Result<(), ControlError> {
        let adding = frames as usize * len;
        if adding > MAX_QUEUED_BYTES {
            // Can never fit: a field error, not "try again later".
            self.refused[vf] += u64::from(frames);
            return Err(ControlError::new(
                ErrorCode::BadField,
                format!(
                    "op `send`: {frames} frames of {len} bytes ({adding} bytes) exceed the {MAX_QUEUED_BYTES} bytes a VF may queue: send fewer frames per request"
                ),
            ));
        }
        if self.queued_bytes[vf] + adding > MAX_QUEUED_BYTES {
            self.refused[vf] += u64::from(frames);
            let why = if checkpointing {
                "; the VF is checkpointing: its frames leave only as its epochs commit"
            } else {
                ""
            };
            return Err(ControlError::new(
                ErrorCode::Busy,
                format!(
                    "VF {vf}: {frames} frames of {len} bytes refused: {} frames ({} bytes) are queued and a VF may queue at most {MAX_QUEUED_BYTES} bytes{why}; send again when workload_queued goes down",
                    self.queued[vf].len(),
                    self.queued_bytes[vf]
                ),
            ));
        }
        self.queued_bytes[vf] += adding;
        for _ in 0..frames {
            let seq = self.seq[vf];
            self.seq[vf] = seq.wrapping_add(1);
            let mut payload = Vec::with_capacity(len);
            payload.push(vf as u8);
            payload.extend_from_slice(&seq.to_be_bytes());
            let mut f = igb_hw::frame::build(PEER, src, crate::engine::ETHERTYPE, &payload);
            f.resize(len, 0);
            self.queued[vf].push_back(Bytes::from(f));
        }
        Ok(())
    }

    /// Moves VF `vf`'s queued frames into its TX ring while the ring takes them.
    pub(super) fn pump(&mut self, vf: usize, driver: &mut ModelVf) {
        while !self.queued[vf].is_empty() {
            let batch: Vec<Bytes> = self.queued[vf].iter().take(64).cloned().collect();
            match driver.send(&batch) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    let bytes: usize = self.queued[vf].drain(..k).map(|f| f.len()).sum();
                    self.queued_bytes[vf] -= bytes;
                    self.sent[vf] += k as u64;
                }
            }
        }
    }

    /// Frames queued on `vf`, not yet in its TX ring.
    pub(super) fn queued(&self, vf: usize) -> u64 {
        self.queued[vf].len() as u64
    }

    /// Frames of `vf` handed to its TX ring.
    pub(super) fn sent(&self, vf: usize) -> u64 {
        self.sent[vf]
    }

    /// Frames of `send` requests on `vf` refused.
    pub(super) fn refused(&self, vf: usize) -> u64 {
        self.refused[vf]
    }
}

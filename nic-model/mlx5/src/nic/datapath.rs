//! The seam between a function's queues (SQs, RQs and its receive steering) and the E-Switch
//! (vports, MAC anti-spoofing, the HAC egress stage, the wire).
//!
//! A send queue hands each frame it built from a WQE to [`Mlx5Nic::eswitch_transmit`]; the
//! E-Switch hands each frame addressed to a function to [`Mlx5Nic::function_receive`], which
//! steers it to one of the function's receive queues. When the E-Switch frees room it had
//! refused (backpressure), it calls [`Mlx5Nic::service_queues`] so stalled send queues carry on.
//!
//! Until the E-Switch lands, `eswitch_transmit` is a placeholder: it keeps the newest frames in
//! `Mlx5Nic::tx_capture` and floods each frame to every other enabled function.

use bytes::Bytes;

use crate::function::FunctionId;
use crate::nic::Mlx5Nic;

/// What the E-Switch did with a frame a send queue offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // Backpressure and Dropped come from the E-Switch.
pub(crate) enum TxVerdict {
    /// Taken (switched, buffered or sent): the WQE is complete.
    Accepted,
    /// No room now (HAC buffer limits): the WQE stays; the queue retries on `service_queues`.
    Backpressure,
    /// Dropped and counted by the E-Switch (e.g. a spoofed source MAC): the WQE is complete.
    Dropped,
}

/// What a function's receive path did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RxVerdict {
    /// Written into a receive WQE, CQE posted.
    Delivered,
    /// Dropped and counted by the function (no steering rule, no RQ ready, no WQE posted).
    Dropped,
}

/// Frames the placeholder E-Switch keeps for the crate's own tests (the newest ones).
pub(crate) const CAPTURE_LEN: usize = 64;

impl Mlx5Nic {
    /// E-Switch ingress: a frame function `from` sent. (Placeholder until the E-Switch lands:
    /// the frame is recorded in the capture and delivered to every other enabled function.)
    pub(crate) fn eswitch_transmit(&mut self, from: FunctionId, frame: Bytes) -> TxVerdict {
        if self.tx_capture.len() >= CAPTURE_LEN {
            self.tx_capture.remove(0);
        }
        self.tx_capture.push((from, frame.clone()));
        let others: Vec<FunctionId> = self
            .functions
            .iter()
            .map(|f| f.id)
            .filter(|&id| id != from && self.function_enabled(id))
            .collect();
        for to in others {
            let _ = self.function_receive(to, &frame);
        }
        TxVerdict::Accepted
    }

    /// A frame the E-Switch delivers to function `to`: its NIC receive steering, TIR, RQ,
    /// receive WQE and CQE (`nic::rx`).
    pub(crate) fn function_receive(&mut self, to: FunctionId, frame: &[u8]) -> RxVerdict {
        self.receive(to, frame)
    }

    /// The E-Switch made room: send queues stalled on backpressure carry on.
    #[allow(dead_code)] // The E-Switch calls it when its buffers drain.
    pub(crate) fn service_queues(&mut self) {
        self.service_stalled_sqs();
    }
}

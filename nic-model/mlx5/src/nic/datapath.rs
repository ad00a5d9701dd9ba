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

#[cfg(all(test, feature = "test-utils"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::queues::broadcast_frame;
    use crate::testing::{CmdDriver, device};

    #[test]
    fn the_placeholder_keeps_the_newest_frames_and_floods_them() {
        let mut nic = device(2);
        let mut ds: Vec<_> = [FunctionId::Vf(0), FunctionId::Vf(1)]
            .into_iter()
            .map(|f| {
                let mut d = CmdDriver::attach(&mut nic, f);
                d.bring_up(&mut nic);
                let q = d.open_queues(&mut nic, 4, 4, 3);
                (d, q)
            })
            .collect();
        {
            let (d1, q1) = &mut ds[1];
            d1.post_recv_buffers(&mut q1.rq, 1);
        }
        let (d0, q0) = &mut ds[0];
        for k in 0..(CAPTURE_LEN + 2) as u8 {
            d0.send(
                &mut nic,
                &mut q0.sq,
                &broadcast_frame([2, 0, 0, 0, 0, 9], 60, k),
                60,
                false,
            );
        }
        assert_eq!(nic.tx_capture.len(), CAPTURE_LEN);
        let (from, first) = &nic.tx_capture[0];
        assert_eq!(
            (*from, first[14]),
            (FunctionId::Vf(0), 2),
            "the oldest two are gone"
        );
        let c1 = nic.function_counters(FunctionId::Vf(1)).unwrap().queues;
        assert_eq!(
            (c1.rx_frames, c1.rx_out_of_buffer),
            (1, CAPTURE_LEN as u64 + 1)
        );
        assert_eq!(
            nic.counters().rx_no_function,
            CAPTURE_LEN as u64 + 2,
            "the PF"
        );
        // `service_queues` with nothing stalled does nothing.
        let before = nic.counters().queues;
        nic.service_queues();
        assert_eq!(nic.counters().queues, before);
        // A stalled SQ (as backpressure leaves it) takes doorbells but sends nothing until
        // `service_queues`, which carries on from the stalled WQE.
        let sqn = q0.sq.sqn;
        let sq = |nic: &mut Mlx5Nic| {
            nic.function_mut(FunctionId::Vf(0))
                .unwrap()
                .state
                .sqs
                .get_mut(&sqn)
                .unwrap()
                .stalled = true;
        };
        sq(&mut nic);
        let sent = nic.counters().queues.tx_frames;
        d0.send(
            &mut nic,
            &mut q0.sq,
            &broadcast_frame([2, 0, 0, 0, 0, 9], 60, 0),
            60,
            false,
        );
        d0.send(
            &mut nic,
            &mut q0.sq,
            &broadcast_frame([2, 0, 0, 0, 0, 9], 60, 1),
            60,
            true,
        );
        assert_eq!(nic.counters().queues.tx_frames, sent);
        assert!(d0.poll_cq(&mut q0.tx_cq).is_empty());
        nic.service_queues();
        assert_eq!(nic.counters().queues.tx_frames, sent + 2);
        assert_eq!(d0.poll_cq(&mut q0.tx_cq).len(), 1);
    }
}

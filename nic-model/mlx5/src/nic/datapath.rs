//! The seam between a function's queues (SQs, RQs and its receive steering) and the E-Switch
//! (vports, MAC anti-spoofing, the HAC egress stage, the wire).
//!
//! A send queue hands each frame it built from a WQE to [`Mlx5Nic::eswitch_transmit`]; the
//! E-Switch hands each frame addressed to a function to [`Mlx5Nic::function_receive`], which
//! steers it to one of the function's receive queues. When the E-Switch frees room it had
//! refused (backpressure), it calls [`Mlx5Nic::service_queues`] so stalled send queues carry on.

use bytes::Bytes;

use crate::function::FunctionId;
use crate::nic::Mlx5Nic;

/// What the E-Switch did with a frame a send queue offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

impl Mlx5Nic {
    /// E-Switch ingress: a frame function `from` sent (source-MAC check, the HAC egress
    /// stage, switching by destination MAC: `nic/eswitch.rs`).
    pub(crate) fn eswitch_transmit(&mut self, from: FunctionId, frame: Bytes) -> TxVerdict {
        self.eswitch_ingress(from, frame)
    }

    /// A frame the E-Switch delivers to function `to`: its NIC receive steering, TIR, RQ,
    /// receive WQE and CQE (`nic::rx`).
    pub(crate) fn function_receive(&mut self, to: FunctionId, frame: &[u8]) -> RxVerdict {
        self.receive(to, frame)
    }

    /// The E-Switch made room: send queues stalled on backpressure carry on.
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
    fn broadcasts_are_flooded_and_a_stalled_sq_resumes_on_service_queues() {
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
        const SENT: u8 = 66;
        for k in 0..SENT {
            d0.send(
                &mut nic,
                &mut q0.sq,
                &broadcast_frame([2, 0, 0, 0, 0, 9], 60, k),
                60,
                false,
            );
        }
        let c1 = nic.function_counters(FunctionId::Vf(1)).unwrap().queues;
        assert_eq!(
            (c1.rx_frames, c1.rx_out_of_buffer),
            (1, u64::from(SENT) - 1)
        );
        assert_eq!(nic.counters().rx_no_function, u64::from(SENT), "the PF");
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

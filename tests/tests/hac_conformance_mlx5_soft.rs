//! The HAC conformance suite (`hac_tests::hac_conformance`) against `Mlx5SoftHac`: the mlx5 VF
//! drivers on VFs of the mlx5 model, with the model's HAC stage left disabled (as on a ConnectX
//! without the extension), hold a checkpointing VF's send WQEs beyond the SQ doorbell record
//! until their epoch commits. The same checks as the extension's, with SoftHac's documented
//! differences.
#![allow(clippy::unwrap_used)]

use adapter_core::wire::LineRate;
use bytes::Bytes;
use hac_driver::mlx5::model::{Mlx5Model, ModelDevice};
use hac_driver::mlx5::model::{Mlx5ModelBar, Mlx5ModelClock, Mlx5ModelDma};
use hac_driver::mlx5::{EthConfig, Mlx5Config, Mlx5SoftHac};
use hac_tests::hac_conformance::{Differences, HacHarness, Priority, Stamping};
use hw_common::{MacAddress, VfNumber};
use mlx5_model::{FunctionId, Mlx5Config as ModelConfig};

/// VFs the harness enables.
const VFS: u16 = 3;

type Soft = Mlx5SoftHac<Mlx5ModelBar, Mlx5ModelDma, Mlx5ModelClock>;

fn mac(vf: VfNumber) -> MacAddress {
    MacAddress([0x02, 0, 0, 0, 0x5D, vf.get() as u8])
}

/// `Mlx5SoftHac` on the mlx5 model (HAC stage disabled): the VF drivers' send queues hold the
/// frames.
struct Mlx5SoftOnModel {
    model: Mlx5Model,
    /// The PF's driver stays up (it set the VFs' MACs; the E-Switch manager).
    _pf: ModelDevice,
    soft: Soft,
}

fn mlx5_soft() -> Mlx5SoftOnModel {
    let model = Mlx5Model::new(ModelConfig {
        capture_wire: true,
        line_rate: LineRate::G1,
        ..ModelConfig::default()
    });
    let (mut pf, mut vfs) = model.start(VFS, Mlx5Config::default()).unwrap();
    for (n, vf) in vfs.iter_mut().enumerate() {
        pf.set_vf_mac(n as u16, mac(VfNumber::new(n as u16)))
            .unwrap();
        vf.open_eth(EthConfig {
            log_sq_size: 6,
            log_rq_size: 4,
        })
        .unwrap();
    }
    Mlx5SoftOnModel {
        model,
        _pf: pf,
        soft: Mlx5SoftHac::new(vfs),
    }
}

impl HacHarness for Mlx5SoftOnModel {
    type Hac = Soft;

    fn name(&self) -> &'static str {
        "Mlx5SoftHac"
    }
    fn differences(&self) -> Differences {
        Differences {
            // The driver stamps a frame when it accepts it.
            stamping: Stamping::AtSend,
            // With its HAC stage disabled the E-Switch serves the vports' FIFOs round robin,
            // one class: released frames interleave with other VFs' plain frames.
            priority: Priority::AdapterArbitration,
        }
    }
    fn hac(&mut self) -> &mut Self::Hac {
        &mut self.soft
    }
    fn num_vfs(&self) -> u16 {
        VFS
    }
    fn mac(&self, vf: VfNumber) -> MacAddress {
        mac(vf)
    }
    fn send(&mut self, vf: VfNumber, frames: &[Bytes]) -> usize {
        self.soft.send(vf, frames).unwrap()
    }
    fn queued(&mut self, vf: VfNumber) -> u64 {
        // Held frames count in buffered_frames; frames rung but not yet handed to the
        // E-Switch are the SQ's posted WQEs (each of the suite's frames is one WQE basic block).
        let nic = self.model.nic();
        let st = nic.function_state(FunctionId::Vf(vf.get() as u16)).unwrap();
        st.sqs
            .values()
            .map(|sq| u64::from(sq.producer.wrapping_sub(sq.consumer)))
            .sum()
    }
    fn advance(&mut self, ns: u64) {
        // Pump as a driver loop would, several times per step so the send queues refill.
        let slice = (ns / 10).max(1);
        let mut left = ns;
        while left > 0 {
            self.soft.pump().unwrap();
            let step = slice.min(left);
            self.model.run_for(step);
            for n in 0..VFS {
                self.soft
                    .port(VfNumber::new(n))
                    .unwrap()
                    .reclaim_tx()
                    .unwrap();
            }
            left -= step;
        }
        self.soft.pump().unwrap();
    }
    fn take_wire(&mut self) -> Vec<Bytes> {
        self.model
            .nic()
            .take_wire_capture()
            .into_iter()
            .map(|w| w.data)
            .collect()
    }
}

hac_tests::hac_conformance_tests!(mlx5_soft_hac, mlx5_soft);

//! The HAC conformance suite (`hac_tests::hac_conformance`) against the mlx5 family: the
//! unchanged mlx5 VF driver sends on VFs of the mlx5 model while `Mlx5AdapterHac` commands the
//! E-Switch's HAC stage through our vendor commands on the PF's command queue. The same checks
//! as the 82576's, unchanged.
#![allow(clippy::unwrap_used)]

use adapter_core::wire::LineRate;
use bytes::Bytes;
use hac_driver::mlx5::model::{Mlx5Model, ModelDevice};
use hac_driver::mlx5::model::{Mlx5ModelBar, Mlx5ModelClock, Mlx5ModelDma};
use hac_driver::mlx5::{EthConfig, Mlx5AdapterHac, Mlx5Config};
use hac_tests::hac_conformance::{Differences, HacHarness, Priority, Stamping};
use hw_common::{MacAddress, VfNumber};
use mlx5_model::{FunctionId, Mlx5Config as ModelConfig};

/// VFs the harness enables.
const VFS: u16 = 3;

fn mac(vf: VfNumber) -> MacAddress {
    MacAddress([0x02, 0, 0, 0, 0x5C, vf.get() as u8])
}

/// `Mlx5AdapterHac` on the mlx5 model: the PF driver issuing the HAC commands, the VF drivers
/// sending.
struct Mlx5OnModel {
    model: Mlx5Model,
    vfs: Vec<ModelDevice>,
    hac: Mlx5AdapterHac<Mlx5ModelBar, Mlx5ModelDma, Mlx5ModelClock>,
}

fn mlx5() -> Mlx5OnModel {
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
    let hac = Mlx5AdapterHac::new(pf, VFS).unwrap();
    Mlx5OnModel { model, vfs, hac }
}

impl HacHarness for Mlx5OnModel {
    type Hac = Mlx5AdapterHac<Mlx5ModelBar, Mlx5ModelDma, Mlx5ModelClock>;

    fn name(&self) -> &'static str {
        "Mlx5AdapterHac"
    }
    fn differences(&self) -> Differences {
        Differences {
            // The E-Switch stamps a frame when the send queue hands it over, which under
            // backpressure is later than the driver's doorbell: like the 82576's fetch.
            stamping: Stamping::AtFetch,
            priority: Priority::StrictOnTheWire,
        }
    }
    fn hac(&mut self) -> &mut Self::Hac {
        &mut self.hac
    }
    fn num_vfs(&self) -> u16 {
        VFS
    }
    fn mac(&self, vf: VfNumber) -> MacAddress {
        mac(vf)
    }
    fn send(&mut self, vf: VfNumber, frames: &[Bytes]) -> usize {
        let d = &mut self.vfs[vf.get()];
        d.reclaim_tx().unwrap();
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        d.send(&refs).unwrap()
    }
    fn queued(&mut self, vf: VfNumber) -> u64 {
        // WQEs the driver posted that the send queue has not handed to the E-Switch yet (each of
        // the suite's frames is one 64-byte WQE basic block).
        let nic = self.model.nic();
        let st = nic.function_state(FunctionId::Vf(vf.get() as u16)).unwrap();
        st.sqs
            .values()
            .map(|sq| u64::from(sq.producer.wrapping_sub(sq.consumer)))
            .sum()
    }
    fn advance(&mut self, ns: u64) {
        self.model.run_for(ns);
        for d in &mut self.vfs {
            d.reclaim_tx().unwrap();
        }
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

hac_tests::hac_conformance_tests!(mlx5_adapter, mlx5);

//! The HAC conformance suite (`hac_tests::hac_conformance`) against the mlx5 model: the HAC
//! stage of its E-Switch (`adapter_core::egress`, as on the 82576) driven through the model's
//! `impl Hac for Mlx5Nic` (the operations the PF's HAC commands perform), frames handed to the
//! E-Switch the way a VF's send queue hands them over (`mlx5_model::testing::inject_tx`, until
//! the send queues and the mlx5 VF driver drive it). The same checks as for `AdapterHac` and
//! `SoftHac`: one statement of docs/hac.md's contract for every family.
#![allow(clippy::unwrap_used)]

use adapter_core::SimTime;
use adapter_core::hac::VfNumber;
use adapter_core::wire::LineRate;
use bytes::Bytes;
use hac_tests::hac_conformance::{Differences, HacHarness, Priority, Stamping};
use hw_common::MacAddress;
use mlx5_model::testing::{InjectVerdict, inject_tx};
use mlx5_model::{FunctionId, Mlx5Config, Mlx5Nic};

/// VFs the harness enables.
const VFS: u16 = 3;

fn mac(vf: VfNumber) -> MacAddress {
    MacAddress([0x02, 0, 0, 0, 0x5C, vf.get() as u8])
}

/// The mlx5 model at 1 Gb/s, `VFS` VFs with their MACs, HAC enabled.
struct Mlx5OnModel {
    nic: Mlx5Nic,
}

fn mlx5() -> Mlx5OnModel {
    let mut nic = Mlx5Nic::new(Mlx5Config {
        capture_wire: true,
        line_rate: LineRate::G1,
        ..Mlx5Config::default()
    });
    nic.enable_sriov(VFS);
    nic.advance_to(SimTime::from_millis(1));
    for n in 0..VFS {
        nic.set_vport_mac(FunctionId::Vf(n), mac(VfNumber::new(n)))
            .unwrap();
    }
    nic.hac_set_enabled(true);
    Mlx5OnModel { nic }
}

impl HacHarness for Mlx5OnModel {
    type Hac = Mlx5Nic;

    fn name(&self) -> &'static str {
        "mlx5 model"
    }
    fn differences(&self) -> Differences {
        // Stamped when the E-Switch takes the frame from the send queue, which refuses
        // (backpressure) rather than queueing beyond the limit; released frames have strict
        // priority in the same egress stage as the 82576's.
        Differences {
            stamping: Stamping::AtSend,
            priority: Priority::StrictOnTheWire,
        }
    }
    fn hac(&mut self) -> &mut Self::Hac {
        &mut self.nic
    }
    fn num_vfs(&self) -> u16 {
        VFS
    }
    fn mac(&self, vf: VfNumber) -> MacAddress {
        mac(vf)
    }
    fn send(&mut self, vf: VfNumber, frames: &[Bytes]) -> usize {
        let from = FunctionId::Vf(vf.get() as u16);
        frames
            .iter()
            .take_while(|f| inject_tx(&mut self.nic, from, f) == InjectVerdict::Accepted)
            .count()
    }
    fn queued(&mut self, _vf: VfNumber) -> u64 {
        // The E-Switch takes a frame into the egress stage or refuses it: nothing waits between.
        0
    }
    fn advance(&mut self, ns: u64) {
        let now = self.nic.now();
        self.nic
            .advance_to(SimTime::from_nanos(now.as_nanos() + ns));
    }
    fn take_wire(&mut self) -> Vec<Bytes> {
        self.nic
            .take_wire_capture()
            .into_iter()
            .map(|w| w.data)
            .collect()
    }
}

hac_tests::hac_conformance_tests!(mlx5_model_hac, mlx5);

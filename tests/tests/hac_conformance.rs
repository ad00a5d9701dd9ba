//! The HAC conformance suite (`hac_tests::hac_conformance`) against both 82576 implementations
//! on the model: `AdapterHac` commanding the model's HAC register block while the unchanged VF
//! driver sends, and `SoftHac` holding frames in the VF drivers' rings on the model with its HAC
//! block left disabled. The same checks, one statement of docs/hac.md's contract.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use hac_driver::hac::{AdapterHac, VfNumber};
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma, SharedPfAgent};
use hac_driver::softhac::SoftHac;
use hac_driver::vf::{VfConfig, VfDriver};
use hac_tests::hac_conformance::{Differences, HacHarness, Priority, Stamping};
use igb_hw::{MacAddress, VfIndex};
use igb_model::{FunctionId, LineRate, NicConfig};

/// VFs each harness enables.
const VFS: usize = 3;

type Driver = VfDriver<ModelBar, ModelDma, ModelClock>;

fn mac(vf: VfNumber) -> MacAddress {
    MacAddress([0x02, 0, 0, 0, 0x0C, vf.get() as u8])
}

fn index(vf: VfNumber) -> VfIndex {
    VfIndex::try_from(vf).unwrap()
}

/// The model at 1 Gb/s with the PF agent and `VFS` VF drivers up.
fn model_with_vfs() -> (Model, SharedPfAgent, Vec<Driver>) {
    let model = Model::new(NicConfig {
        capture_wire: true,
        line_rate: LineRate::G1,
        ..NicConfig::default()
    });
    let macs: Vec<Option<MacAddress>> = (0..VFS as u16)
        .map(|n| Some(mac(VfNumber::new(n))))
        .collect();
    let cfg = VfConfig {
        tx_ring_size: 64,
        ..VfConfig::default()
    };
    let (pf, drivers) = model.start_vfs(&macs, cfg).unwrap();
    (model, pf, drivers)
}

fn wire(model: &Model) -> Vec<Bytes> {
    model
        .nic()
        .take_wire_capture()
        .into_iter()
        .map(|w| w.data)
        .collect()
}

/// `AdapterHac` on the model: the PF agent, the VF drivers sending, the HAC register block.
struct AdapterOnModel {
    model: Model,
    _pf: SharedPfAgent,
    vfs: Vec<Driver>,
    hac: AdapterHac<ModelBar>,
}

fn adapter() -> AdapterOnModel {
    let (model, pf, vfs) = model_with_vfs();
    let hac = AdapterHac::new(model.bar0(FunctionId::Pf), VFS);
    AdapterOnModel {
        model,
        _pf: pf,
        vfs,
        hac,
    }
}

impl HacHarness for AdapterOnModel {
    type Hac = AdapterHac<ModelBar>;

    fn name(&self) -> &'static str {
        "AdapterHac"
    }
    fn differences(&self) -> Differences {
        Differences {
            stamping: Stamping::AtFetch,
            priority: Priority::StrictOnTheWire,
        }
    }
    fn hac(&mut self) -> &mut Self::Hac {
        &mut self.hac
    }
    fn num_vfs(&self) -> u16 {
        VFS as u16
    }
    fn mac(&self, vf: VfNumber) -> MacAddress {
        mac(vf)
    }
    fn send(&mut self, vf: VfNumber, frames: &[Bytes]) -> usize {
        self.vfs[index(vf).get()].send(frames).unwrap()
    }
    fn queued(&mut self, vf: VfNumber) -> u64 {
        let d = &mut self.vfs[index(vf).get()];
        d.reclaim();
        u64::from(d.tx_in_flight())
    }
    fn advance(&mut self, ns: u64) {
        self.model.run_for(ns);
    }
    fn take_wire(&mut self) -> Vec<Bytes> {
        wire(&self.model)
    }
}

/// `SoftHac` on the model (HAC block disabled): the VF drivers' rings hold the frames.
struct SoftOnModel {
    model: Model,
    _pf: SharedPfAgent,
    soft: SoftHac<ModelBar, ModelDma, ModelClock>,
}

fn soft() -> SoftOnModel {
    let (model, pf, vfs) = model_with_vfs();
    SoftOnModel {
        model,
        _pf: pf,
        soft: SoftHac::new(vfs),
    }
}

impl HacHarness for SoftOnModel {
    type Hac = SoftHac<ModelBar, ModelDma, ModelClock>;

    fn name(&self) -> &'static str {
        "SoftHac"
    }
    fn differences(&self) -> Differences {
        Differences {
            stamping: Stamping::AtSend,
            priority: Priority::AdapterArbitration,
        }
    }
    fn hac(&mut self) -> &mut Self::Hac {
        &mut self.soft
    }
    fn num_vfs(&self) -> u16 {
        VFS as u16
    }
    fn mac(&self, vf: VfNumber) -> MacAddress {
        mac(vf)
    }
    fn send(&mut self, vf: VfNumber, frames: &[Bytes]) -> usize {
        self.soft.send(index(vf), frames).unwrap()
    }
    fn queued(&mut self, _vf: VfNumber) -> u64 {
        // SoftHac counts every frame it accepted in buffered_frames until it hands it over.
        0
    }
    fn advance(&mut self, ns: u64) {
        // Pump as a driver loop would, several times per step so rings refill.
        let slice = (ns / 10).max(1);
        let mut left = ns;
        while left > 0 {
            self.soft.pump().unwrap();
            let step = slice.min(left);
            self.model.run_for(step);
            left -= step;
        }
        self.soft.pump().unwrap();
    }
    fn take_wire(&mut self) -> Vec<Bytes> {
        wire(&self.model)
    }
}

hac_tests::hac_conformance_tests!(adapter_hac, adapter);
hac_tests::hac_conformance_tests!(soft_hac, soft);

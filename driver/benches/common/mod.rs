//! Set-up both driver benches share: the model at 100 Gb/s, the PF agent with one VF, and the
//! real VF driver on it.

use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma};
use hac_driver::vf::{VfConfig, VfDriver};
use igb_hw::MacAddress;
use igb_model::{LineRate, NicConfig};

/// Where the benches send to.
pub const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);

/// The real driver on VF 0 of a model with a 100 Gb/s wire (the PF agent answered its
/// bring-up and stays in the model).
pub fn model_with_one_vf() -> (Model, VfDriver<ModelBar, ModelDma, ModelClock>) {
    let model = Model::new(NicConfig {
        line_rate: LineRate::G100,
        ..NicConfig::default()
    });
    let (_agent, mut vfs) = model
        .start_vfs(
            &[Some(MacAddress([0x02, 0, 0, 0, 0x01, 0x01]))],
            VfConfig::default(),
        )
        .unwrap();
    let vf = vfs.remove(0);
    (model, vf)
}

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

/// The bare-loop bound every path figure is printed against: the project's one definition
/// (`adapter_core::bench_bound`: descriptor write, copy into a model buffer, write-back, epoch
/// queue, commit, release to the wire), run in slices of 64 Ki frames for about `millis` of host
/// time. Millions of frames per second.
#[allow(dead_code)]
pub fn bare_loop_mpps(len: usize, millis: u64) -> f64 {
    use std::time::{Duration, Instant};
    let budget = Duration::from_millis(millis);
    let start = Instant::now();
    let (mut frames, mut secs) = (0u64, 0.0f64);
    while start.elapsed() < budget {
        let (n, s) = adapter_core::bench_bound::bare_loop(len, 1 << 16);
        frames += n;
        secs += s;
    }
    if secs > 0.0 {
        frames as f64 / secs / 1e6
    } else {
        0.0
    }
}

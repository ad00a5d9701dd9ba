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

/// The bare per-frame loop: the work no model of this path can avoid, as the bound every path
/// figure is printed against. Per frame: the driver copies the frame into its ring buffer and
/// writes a data descriptor; the "device" reads the descriptor, copies the frame into the
/// egress buffer (one byte arena, as a held-frame FIFO), writes DD back and pushes the frame's
/// (offset, length, epoch) onto the egress queue; every 32 batches an epoch commits and every
/// held frame is released to the "wire" (its bytes read). Returns millions of frames per second
/// over about `millis` of host time. One small function so it can be swapped for the
/// project-wide bound.
#[allow(dead_code)]
pub fn bare_loop_mpps(len: usize, millis: u64) -> f64 {
    use igb_hw::desc::{Descriptor, TxDataRepr};
    use igb_model::testing::bench::BATCH;
    use std::collections::VecDeque;
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    const RING: usize = 512;
    const BUF: usize = 2048;
    const COMMIT_EVERY: usize = 32 * BATCH;
    let frame = vec![0x5Au8; len];
    let mut ring = vec![[0u8; 16]; RING];
    let mut bufs = vec![0u8; RING * BUF];
    let mut arena = vec![0u8; COMMIT_EVERY * len];
    let mut held: VecDeque<(u32, u16, u32)> = VecDeque::with_capacity(COMMIT_EVERY);
    let (mut epoch, mut frames, mut fill, mut wire) = (0u32, 0usize, 0usize, 0u64);
    let budget = Duration::from_millis(millis);
    let start = Instant::now();
    while start.elapsed() < budget {
        for i in 0..BATCH {
            let slot = (frames + i) % RING;
            // Driver: buffer and descriptor.
            bufs[slot * BUF..slot * BUF + len].copy_from_slice(&frame);
            let mut d = Descriptor::from_array([0u8; 16]);
            TxDataRepr {
                buffer: (slot * BUF) as u64,
                length: len as u16,
                eop: true,
                rs: true,
                ..TxDataRepr::default()
            }
            .emit(&mut d);
            ring[slot] = d.into_inner();
            // Device: descriptor read, copy into the egress buffer, DD write-back, queue.
            let raw = black_box(ring[slot]);
            let n = usize::from(u16::from_le_bytes([raw[8], raw[9]]));
            let at = u64::from_le_bytes(raw[..8].try_into().unwrap_or_default()) as usize;
            let Some(dst) = arena.get_mut(fill..fill + n) else {
                break;
            };
            dst.copy_from_slice(&bufs[at..at + n]);
            ring[slot][12] |= 1;
            held.push_back((fill as u32, n as u16, epoch));
            fill += n;
        }
        frames += BATCH;
        if frames.is_multiple_of(COMMIT_EVERY) {
            // Commit: release every held frame of the closed epoch to the wire.
            epoch += 1;
            while let Some((off, n, _)) = held.pop_front() {
                wire += u64::from(black_box(arena[off as usize])) + u64::from(n);
            }
            fill = 0;
        }
    }
    black_box(wire);
    frames as f64 / start.elapsed().as_secs_f64() / 1e6
}

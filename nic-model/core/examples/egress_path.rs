//! A fixed, deterministic egress workload for instruction counts (`valgrind --tool=callgrind`),
//! where the timed bench (`benches/egress.rs`) varies with the machine's load.
//!
//! `cargo build --release -p adapter-core --example egress_path`, then
//! `valgrind --tool=callgrind target/release/examples/egress_path [POOLS]`: 8 busy pools (4
//! checkpointing, committed every round; 4 plain) spread over a stage of POOLS (default 8)
//! pools, 2 000 rounds of 32 frames of 60 B per busy pool (512 000 frames): enqueue, commit,
//! dequeue. Prints the frames and a checksum of what left, in order.
#![allow(missing_docs)]

use adapter_core::{EgressFrame, EgressLimits, EgressStage, SimTime, Vport};
use bytes::Bytes;

const ROUNDS: u64 = 2_000;
const PER_POOL: usize = 32;
const BUSY: usize = 8;

fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(BUSY)
        .clamp(BUSY, 256);
    let pool = |k: usize| Vport::new((k * (total / BUSY)) as u8);
    let mut e = EgressStage::new(EgressLimits {
        bytes: 1 << 40,
        frames: 1 << 30,
    });
    e.set_hac_enabled(true, SimTime::ZERO);
    for k in 0..BUSY / 2 {
        e.set_tagged(pool(k), true, SimTime::ZERO);
    }
    let frame = Bytes::from_static(&[0xA5; 60]);
    let (mut sent, mut sum, mut now) = (0u64, 0u64, 0u64);
    for round in 0..ROUNDS {
        let epoch = round as u32 + 1;
        for _ in 0..PER_POOL {
            for k in 0..BUSY {
                e.enqueue(EgressFrame {
                    data: frame.clone(),
                    pool: pool(k),
                    queued_at: SimTime(now),
                });
            }
        }
        for k in 0..BUSY / 2 {
            e.open_epoch(pool(k), epoch + 1);
            e.commit(pool(k), epoch, SimTime(now));
        }
        for _ in 0..PER_POOL * BUSY {
            if let Some((f, checkpoint)) = e.dequeue_classified() {
                sent += 1;
                sum = sum
                    .wrapping_mul(31)
                    .wrapping_add(f.pool.get() as u64 * 2 + checkpoint as u64);
            }
        }
        now += 7 * (PER_POOL * BUSY) as u64;
    }
    println!("{sent} frames out of {total} pools, order checksum {sum:#018x}");
}

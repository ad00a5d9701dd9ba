//! Arbitrary interleavings of a device's writes to guest RAM and its interrupts, a client
//! applying and acknowledging `DMA_WRITE`s (late, reordered, with malformed and error replies
//! mixed in) and checkpoints, in client mode (`hac_vfio_user::checkpoint_sim`). Oracles beyond
//! "no panic":
//!
//! * after every checkpoint (the pages the client's dirty log names copied to a secondary
//!   RAM), the secondary equals the primary everywhere;
//! * no interrupt fires before every byte the device wrote before raising it was applied (or
//!   refused) by the client;
//! * every interrupt the outbox took is accounted for: merged into the one before it, handed
//!   out as due, or still held;
//! * the queue and the outbox stay within their limits (bytes, items, interrupts held); over
//!   them the queue fails closed and the run ends there, as the connection would.
//!
//! Input: byte 0 picks the limits (small, so fuzzing reaches them), then two bytes a step.
#![no_main]

use hac_vfio_user::ClientDmaLimits;
use hac_vfio_user::DmaWrites;
use hac_vfio_user::checkpoint_sim::{Sim, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    let limits = ClientDmaLimits {
        max_items: 1 + usize::from(config & 0x0F),
        max_bytes: 256 << (config >> 4 & 0x07),
    };
    let steps: Vec<Step> = rest
        .chunks_exact(2)
        .map(|p| Step::from_bytes(p[0], p[1]))
        .collect();
    let mut sim = match Sim::new(DmaWrites::Client, limits) {
        Ok(s) => s,
        Err(e) => panic!("setup: {e}"),
    };
    match sim.run(&steps) {
        Ok(out) => assert_eq!(out.inconsistent, 0, "{out:?}"),
        Err(e) => panic!("{e}"),
    }
});

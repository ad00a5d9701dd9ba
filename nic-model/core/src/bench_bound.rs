//! The bare-loop bound: the unavoidable work of one transmitted frame, with nothing else, so
//! that every path benchmark can print its figure as a ratio to a bound measured in the same
//! run (absolute times on shared machines vary by ±40 %; ratios within one run do not).
//!
//! Per frame: a 16-byte descriptor is written into a ring (buffer address, length, command),
//! read back and parsed by the "device", the frame is copied from a guest buffer into a model
//! buffer, the descriptor is written back (DD), the frame enters an epoch-stamped egress queue,
//! and every batch of 32 frames a commit releases the batch (a watermark, not a walk) to a wire
//! sink that reads each frame. No IOMMU, registers, scheduler or statistics: whatever a real
//! path costs beyond this is what the ratio shows.
//!
//! A benchmark calls [`bare_loop_mpps`] right before or after its own measurement:
//!
//! ```
//! let bound = adapter_core::bench_bound::bare_loop_mpps(60, 100_000);
//! assert!(bound > 0.0);
//! ```

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;

/// Descriptors in the ring (and model buffers).
const RING: usize = 256;
/// Frames per doorbell and per commit.
const BATCH: usize = 32;
/// Bytes per descriptor.
const DESC: usize = 16;
/// Bytes per buffer (guest and model); frames are cut to it.
const BUF: usize = 2048;
/// Command byte of a descriptor: end of packet, report status.
const CMD_EOP_RS: u8 = 0x09;
/// Status bit written back: descriptor done.
const STA_DD: u8 = 0x01;

/// Runs the bare loop over `frames` frames of `frame_len` bytes (cut to 1 … 2048) and returns
/// millions of frames per second of host time.
pub fn bare_loop_mpps(frame_len: usize, frames: u64) -> f64 {
    let (done, secs) = bare_loop(frame_len, frames);
    if secs > 0.0 {
        done as f64 / secs / 1e6
    } else {
        0.0
    }
}

/// [`bare_loop_mpps`] as (frames run, seconds); the frames run are `frames` rounded up to a
/// whole batch of 32.
pub fn bare_loop(frame_len: usize, frames: u64) -> (u64, f64) {
    let len = frame_len.clamp(1, BUF);
    let mut ring = vec![0u8; RING * DESC];
    let mut guest = vec![0u8; RING * BUF];
    for (i, b) in guest.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut model = vec![0u8; RING * BUF];
    // (model buffer, length, epoch) of each queued frame; `released` frames at its front may go.
    let mut queue: VecDeque<(u32, u32, u32)> = VecDeque::with_capacity(RING);
    let mut released = 0usize;
    let mut epoch = 1u32;
    let mut wire_bytes = 0u64;
    let mut wire_sum = 0u64;
    let batches = frames.div_ceil(BATCH as u64);
    let mut tail = 0usize;
    let start = Instant::now();
    for _ in 0..batches {
        // Driver: write a batch of descriptors.
        for k in 0..BATCH {
            let d = (tail + k) % RING;
            let desc = &mut ring[d * DESC..][..DESC];
            desc[..8].copy_from_slice(&((d * BUF) as u64).to_le_bytes());
            desc[8..10].copy_from_slice(&(len as u16).to_le_bytes());
            desc[11] = CMD_EOP_RS;
            desc[12] = 0;
        }
        // Device: fetch, copy, write back, queue with the open epoch.
        for k in 0..BATCH {
            let d = (tail + k) % RING;
            let desc = &mut ring[d * DESC..][..DESC];
            let mut addr = [0u8; 8];
            addr.copy_from_slice(&desc[..8]);
            let addr = u64::from_le_bytes(addr) as usize % (RING * BUF);
            let n = usize::from(u16::from_le_bytes([desc[8], desc[9]])).min(BUF);
            let src = guest.get(addr..addr + n).unwrap_or_default();
            model[d * BUF..][..src.len()].copy_from_slice(src);
            desc[12] |= STA_DD;
            queue.push_back((d as u32, src.len() as u32, epoch));
        }
        tail = (tail + BATCH) % RING;
        // Commit the epoch: everything queued is released at once.
        epoch = epoch.wrapping_add(1);
        released = queue.len().max(released);
        // Wire: take the released frames and read them.
        while released > 0 {
            let Some((b, n, e)) = queue.pop_front() else {
                break;
            };
            released -= 1;
            let frame = &model[b as usize * BUF..][..n as usize];
            wire_bytes += n as u64 + u64::from(e & 1);
            let ends = frame
                .first()
                .zip(frame.last())
                .map_or(0, |(a, z)| u64::from(*a) + u64::from(*z));
            wire_sum = wire_sum.wrapping_add(ends);
        }
        black_box((&ring, &model));
    }
    let secs = start.elapsed().as_secs_f64();
    black_box((wire_bytes, wire_sum));
    (batches * BATCH as u64, secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_runs_whole_batches_of_any_length() {
        for len in [0, 1, 60, 1514, 9000] {
            let (n, secs) = bare_loop(len, 33);
            assert_eq!(n, 64);
            assert!(secs >= 0.0);
        }
        assert!(bare_loop_mpps(60, 64) >= 0.0);
    }
}

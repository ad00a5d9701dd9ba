//! vfio-user guest DMA copies: [`GuestMapping::read`]/[`GuestMapping::write`] over a
//! `MAP_SHARED` memfd window (volatile words up to 64 bytes, one bulk copy beyond) against
//! `copy_from_slice` between two host buffers, on the same sizes and the same 1 MiB window of
//! offsets, in GB/s.
//!
//! Run: `cargo bench -p hac-sys --bench guest_copy [-- --quick]` (`--quick`: a short run, as CI
//! does, so the bench does not rot; no thresholds).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use hac_sys::GuestMapping;

const WINDOW: usize = 1 << 20;

/// Runs `copy(offset)` over the window, `len` bytes each, for about `budget`; returns GB/s.
fn rate(len: usize, budget: Duration, mut copy: impl FnMut(usize)) -> f64 {
    let slots = (WINDOW / len.max(1)).max(1);
    let (mut bytes, mut i) = (0u64, 0usize);
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..64 {
            copy((i % slots) * len);
            i += 1;
        }
        bytes += 64 * len as u64;
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 50 } else { 400 });
    let fd = rustix::fs::memfd_create(
        "hac-bench",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    rustix::fs::ftruncate(&fd, WINDOW as u64).unwrap();
    let guest = GuestMapping::map(fd.as_fd(), 0, WINDOW as u64).unwrap();
    let host_src = vec![0x5Au8; WINDOW];
    let mut host_dst = vec![0u8; WINDOW];
    println!("guest DMA copies (GuestMapping) against copy_from_slice, GB/s");
    for len in [16usize, 64, 1518, 4096, 65536] {
        let mut buf = vec![0u8; len];
        let data = vec![0xA5u8; len];
        let read = rate(len, budget, |off| {
            guest.read(off as u64, black_box(&mut buf));
        });
        let write = rate(len, budget, |off| {
            guest.write(off as u64, black_box(&data));
        });
        let memcpy_read = rate(len, budget, |off| {
            black_box(&mut buf).copy_from_slice(&host_src[off..off + len]);
        });
        let memcpy_write = rate(len, budget, |off| {
            host_dst[off..off + len].copy_from_slice(black_box(&data));
        });
        println!(
            "{len:6} B: read {read:6.1} GB/s ({:5.1} % of copy_from_slice {memcpy_read:6.1}) | \
             write {write:6.1} GB/s ({:5.1} % of copy_from_slice {memcpy_write:6.1})",
            100.0 * read / memcpy_read,
            100.0 * write / memcpy_write,
        );
        black_box(&host_dst);
    }
}

//! A guest fills its TX ring and buffers with arbitrary bytes (descriptors of any type, lengths,
//! addresses inside and outside its mapping, context descriptors, TSO requests) and rings the
//! doorbell. The model must not panic, must never write another VF's memory (VF 1's memory is
//! mapped through a tripwire that records every device write), and every frame it sends must be
//! a well-formed Ethernet frame within the size limits. One doorbell plus bounded device time
//! per input, and the work is metered: VF 0's memory counts every byte the device reads, which
//! must stay within one run's budget for the doorbell and within the line-rate pace for the
//! device time that follows (a ring of large packets that are read and dropped used to be walked
//! whole in one doorbell).
#![no_main]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use igb_model::igb_hw::Iova;
use igb_model::igb_hw::regs::{PfReg, VfReg};
use igb_model::testing::{IOVA_BASE, TX_BUF_OFF, TX_RING_OFF, VfRings, bring_up, vf};
use igb_model::{DmaTarget, FunctionId, NicConfig, SharedMemory};
use libfuzzer_sys::fuzz_target;

/// Memory that counts the device's writes into it.
struct Tripwire {
    inner: Arc<SharedMemory>,
    writes: AtomicU64,
}

impl DmaTarget for Tripwire {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) {
        self.inner.read(offset, buf);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write(offset, data);
    }
}

/// Memory that counts the bytes the device reads from it.
struct Meter {
    inner: Arc<SharedMemory>,
    read: AtomicU64,
}

impl DmaTarget for Meter {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) {
        self.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.read(offset, buf);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        self.inner.write(offset, data);
    }
}

/// Ring entries of VF 0: enough 64 KiB descriptors to cross one run's byte budget.
const RING: u32 = 32;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cfg = NicConfig {
        capture_wire: true,
        ..NicConfig::default()
    };
    let mut nic = bring_up(2, cfg);
    let a = VfRings::new(&mut nic, 0, RING, 16);
    let b = VfRings::new(&mut nic, 1, 8, 8);
    let mem_len = a.mem.len();
    // VF 1's rings are set up; from now on every device write into its memory is recorded.
    let tripwire = Arc::new(Tripwire {
        inner: b.mem.clone(),
        writes: AtomicU64::new(0),
    });
    let f1 = FunctionId::Vf(vf(1));
    let len1 = b.mem.len();
    if nic.dma_unmap(f1, Iova(IOVA_BASE)).is_err()
        || nic
            .dma_map(f1, Iova(IOVA_BASE), len1, tripwire.clone(), 0)
            .is_err()
    {
        unreachable!("VF 1's memory is mapped at IOVA_BASE");
    }
    let meter = Arc::new(Meter {
        inner: a.mem.clone(),
        read: AtomicU64::new(0),
    });
    let f0 = FunctionId::Vf(vf(0));
    if nic.dma_unmap(f0, Iova(IOVA_BASE)).is_err()
        || nic
            .dma_map(f0, Iova(IOVA_BASE), mem_len, meter.clone(), 0)
            .is_err()
    {
        unreachable!("VF 0's memory is mapped at IOVA_BASE");
    }
    // Loopback off: a frame addressed to VF 1 would legitimately land in its RX buffers.
    nic.pf_write(PfReg::DTXSWC, 0);
    let (ctl, rest) = data.split_at(2);
    let ring_bytes = rest.len().min(RING as usize * 16);
    // Descriptors: raw fuzz bytes, with buffer addresses steered into the mapping half the time
    // so that real gathers happen.
    for (i, d) in rest[..ring_bytes].chunks(16).enumerate() {
        let mut raw = [0u8; 16];
        raw[..d.len()].copy_from_slice(d);
        if raw[15] & 1 == 0 {
            let off = u64::from(u32::from_le_bytes([raw[0], raw[1], raw[2], 0])) % mem_len;
            raw[..8].copy_from_slice(&(IOVA_BASE + off).to_le_bytes());
        }
        a.mem.write(TX_RING_OFF + i as u64 * 16, &raw);
    }
    a.mem.write(TX_BUF_OFF, &rest[ring_bytes..]);
    // One run reads at most its byte budget, the descriptor that crosses it (64 KiB at most)
    // and its descriptors.
    let run =
        (igb_model::TX_RUN_BYTES + 0xFFFF + igb_model::TX_RUN_DESCRIPTORS as usize * 16) as u64;
    nic.vf_write(vf(0), VfReg::TDT(0), u32::from(ctl[0]) % (RING + 1));
    let at_doorbell = meter.read.load(Ordering::Relaxed);
    assert!(at_doorbell <= run, "one doorbell read {at_doorbell} bytes");
    let ns = u64::from(ctl[1]) * 1000;
    nic.advance_by(ns);
    // Paced at line rate (10 Gb/s: 1.25 bytes/ns) after the first run, plus one run in flight.
    let paced = ns * 5 / 4;
    let after = meter.read.load(Ordering::Relaxed);
    assert!(
        after <= 2 * run + paced,
        "{after} bytes read by {ns} ns after the doorbell"
    );
    nic.drain();
    for w in nic.take_wire_capture() {
        assert!(w.data.len() >= 60, "runt on the wire");
        assert!(w.data.len() + 4 <= 1522, "oversize on the wire");
    }
    assert_eq!(
        tripwire.writes.load(Ordering::Relaxed),
        0,
        "the device wrote VF 1's memory"
    );
});

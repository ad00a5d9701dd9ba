//! The model's data path without the driver crate: the test ring driver (`testing::VfRings`)
//! writes descriptors and frames into DMA memory, rings TDT, and the model runs TX engine →
//! switch → egress/HAC → wire. Batch 32, 100 Gb/s virtual wire, virtual time advanced by the
//! batch's wire time (the sender runs at exactly line rate in virtual time).
//!
//! Run: `cargo bench -p igb-model --bench model_path [-- FILTER]` (FILTER e.g. `64B`). Not
//! criterion, for the reason given in `igb_model::testing::bench`: whole commit periods are
//! timed. This isolates the model's own cost from
//! the driver's (`cargo bench -p hac-driver --bench model_path` is the full path).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use igb_model::igb_hw::MacAddress;
use igb_model::testing::bench::{
    BATCH, BenchPath, Mode, hac_on_for_vf0, open_next_and_commit, run_matrix,
};
use igb_model::testing::{VfRings, bring_up, udp_frame, vf_mac};
use igb_model::{LineRate, Nic, NicConfig};

const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);

struct Path {
    nic: Nic,
    rings: VfRings,
    frame: Vec<u8>,
    batch_ns: u64,
    mode: Mode,
    epoch: u32,
    next_commit: u64,
    sent: u64,
    commits: u64,
}

impl Path {
    fn new(len: usize, mode: Mode) -> Path {
        let cfg = NicConfig {
            line_rate: LineRate::G100,
            ..NicConfig::default()
        };
        let mut nic = bring_up(1, cfg);
        if let Mode::Every(_) = mode {
            hac_on_for_vf0(&mut nic);
        }
        let rings = VfRings::new(&mut nic, 0, 512, 8);
        let batch_ns = BATCH as u64 * LineRate::G100.frame_time_ns(len);
        let next_commit = match mode {
            Mode::Off => u64::MAX,
            Mode::Every(p) => p,
        };
        Path {
            nic,
            rings,
            frame: udp_frame(PEER, vf_mac(0), 0, len),
            batch_ns,
            mode,
            epoch: 1,
            next_commit,
            sent: 0,
            commits: 0,
        }
    }
}

impl BenchPath for Path {
    /// One batch: 32 descriptors + one doorbell, then the device runs for the batch's wire time.
    fn batch(&mut self) {
        for _ in 0..BATCH {
            self.rings.queue(&self.frame);
        }
        self.rings.doorbell(&mut self.nic);
        self.nic.advance_by(self.batch_ns);
        self.sent += BATCH as u64;
        if let Mode::Every(p) = self.mode
            && self.nic.now().as_nanos() >= self.next_commit
        {
            open_next_and_commit(&mut self.nic, self.epoch);
            self.epoch += 1;
            self.next_commit += p;
            self.commits += 1;
        }
    }
    fn mode(&self) -> Mode {
        self.mode
    }
    fn sent(&self) -> u64 {
        self.sent
    }
    fn commits(&self) -> u64 {
        self.commits
    }
    fn wire_frames(&self) -> u64 {
        self.nic.wire_totals().0
    }
}

fn main() {
    run_matrix("model path", Path::new);
}

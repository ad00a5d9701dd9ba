//! The HAC egress buffer and scheduler under arbitrary operation sequences. Oracle: FIFO per VF,
//! output commit (a checkpoint frame leaves only once a commit covers its epoch, or unprotect /
//! untagging released it), no loss (accepted = sent + discarded + buffered), and no panic.
//! It links only the adapter core: the HAC semantics every device family shares.
#![no_main]

use adapter_core::egress::{EgressFrame, EgressLimits, EgressStage};
use adapter_core::{SimTime, Vport};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

/// Vports the input can name: more than one family uses, so the stage's on-demand growth is
/// exercised too.
const VPORTS: usize = 12;

fuzz_target!(|data: &[u8]| {
    let mut st = EgressStage::new(EgressLimits {
        bytes: 1 << 20,
        frames: 64,
    });
    st.set_hac_enabled(true, SimTime::ZERO);
    let mut seq = 0u64;
    let mut stamp: Vec<Vec<(u64, Option<u32>)>> = vec![Vec::new(); VPORTS];
    let mut released_upto: Vec<Option<u64>> = vec![None; VPORTS];
    let mut last_out: Vec<Option<u64>> = vec![None; VPORTS];
    let (mut accepted, mut sent) = (0u64, 0u64);
    let mut now = 0u64;
    for op in data.chunks_exact(3) {
        now += 100;
        let t = SimTime(now);
        let p = usize::from(op[1]) % VPORTS;
        let pool = Vport::new(p as u8);
        let arg = u32::from(op[2]);
        match op[0] % 10 {
            0 | 1 => {
                let len = 60 + usize::from(op[2]) * 5;
                if st.has_room(pool, len) {
                    let h = st.hac_state(pool);
                    let epoch = (h.tagged).then_some(h.open);
                    let mut d = vec![0u8; len];
                    d[..8].copy_from_slice(&seq.to_le_bytes());
                    st.enqueue(EgressFrame {
                        data: Bytes::from(d),
                        pool,
                        queued_at: t,
                    });
                    stamp[p].push((seq, epoch));
                    seq += 1;
                    accepted += 1;
                }
            }
            2 => {
                let o = st.hac_state(pool).open;
                let _ = st.open_epoch(pool, o.saturating_add(1 + arg % 3));
            }
            3 => {
                let o = st.hac_state(pool).open;
                let _ = st.commit(pool, o.saturating_sub(arg % 3), t);
            }
            4 => {
                let o = st.hac_state(pool).open;
                let _ = st.abort(pool, o.saturating_sub(arg % 3));
            }
            5 => {
                let _ = st.failover(pool);
            }
            6 | 7 => {
                let was = st.hac_state(pool).tagged;
                if op[0] % 10 == 6 {
                    let _ = st.unprotect(pool, t);
                } else {
                    st.set_tagged(pool, !st.tagged(pool), t);
                }
                if was && !st.hac_state(pool).tagged {
                    released_upto[p] = seq.checked_sub(1);
                }
            }
            8 => st.set_guard_bytes(u64::from(arg) * 64),
            _ => {
                for _ in 0..=arg % 8 {
                    let Some(f) = st.dequeue() else { break };
                    let s = u64::from_le_bytes(
                        f.data[..8].try_into().unwrap_or_else(|_| unreachable!()),
                    );
                    let fp = f.pool.get();
                    assert!(last_out[fp].is_none_or(|l| s > l), "FIFO per VF");
                    last_out[fp] = Some(s);
                    let (_, epoch) = stamp[fp]
                        .iter()
                        .copied()
                        .find(|&(x, _)| x == s)
                        .unwrap_or_else(|| unreachable!());
                    if let Some(e) = epoch {
                        let h = st.hac_state(f.pool);
                        let by_release = released_upto[fp].is_some_and(|r| s <= r);
                        assert!(
                            e <= h.committed || by_release,
                            "uncommitted frame left: epoch {e}, committed {}",
                            h.committed
                        );
                    }
                    sent += 1;
                }
            }
        }
        let buffered: u64 = (0..VPORTS as u8)
            .map(|i| st.occupancy(Vport::new(i)).0 as u64)
            .sum();
        let discarded: u64 = (0..VPORTS as u8)
            .map(|i| st.stats(Vport::new(i)).discarded)
            .sum();
        assert_eq!(accepted, sent + discarded + buffered, "no loss");
    }
});

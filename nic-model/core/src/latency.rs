//! Fixed-bucket latency histograms the egress stage keeps in virtual time (commit → first
//! frame on the wire, the delay each frame class adds), so a daemon can export them as they
//! are without sampling every frame.
//!
//! Bucket `k` counts the times `t` with `LATENCY_BOUNDS_NS[k-1] < t ≤ LATENCY_BOUNDS_NS[k]`
//! (powers of two from 1 µs to about 8.4 s); times above the last bound are counted only in
//! [`LatencyHistogram::count`] (the `+Inf` bucket). All counts are 64-bit and saturate.

/// Number of finite buckets.
pub const LATENCY_BUCKETS: usize = 24;

/// Upper bounds of the finite buckets, ns: 1 µs · 2^k for k = 0..24 (1 µs … 8.39 s).
pub const LATENCY_BOUNDS_NS: [u64; LATENCY_BUCKETS] = {
    let mut b = [0u64; LATENCY_BUCKETS];
    let mut k = 0;
    while k < LATENCY_BUCKETS {
        b[k] = 1_000 << k;
        k += 1;
    }
    b
};

/// A histogram of times in nanoseconds over [`LATENCY_BOUNDS_NS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Times per finite bucket (not cumulative).
    pub buckets: [u64; LATENCY_BUCKETS],
    /// All times recorded (the `+Inf` bucket, cumulative).
    pub count: u64,
    /// Their sum, ns (saturating).
    pub sum_ns: u64,
}

impl LatencyHistogram {
    /// Records one time of `ns` nanoseconds.
    pub fn record(&mut self, ns: u64) {
        if let Some(k) = LATENCY_BOUNDS_NS.iter().position(|&b| ns <= b) {
            self.buckets[k] = self.buckets[k].saturating_add(1);
        }
        self.count = self.count.saturating_add(1);
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_land_in_the_bucket_of_their_upper_bound() {
        let mut h = LatencyHistogram::default();
        h.record(0);
        h.record(1_000);
        h.record(1_001);
        h.record(20_000_000); // 20 ms: ≤ 32.768 ms, bucket 15
        h.record(u64::MAX);
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(LATENCY_BOUNDS_NS[15], 32_768_000);
        assert_eq!(h.buckets[15], 1);
        assert_eq!(h.buckets.iter().sum::<u64>(), 4, "u64::MAX is only in +Inf");
        assert_eq!(h.count, 5);
        assert_eq!(h.sum_ns, u64::MAX, "the sum saturates");
        assert_eq!(LATENCY_BOUNDS_NS[LATENCY_BUCKETS - 1], 8_388_608_000);
    }
}

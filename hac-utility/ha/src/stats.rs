//! Percentiles of a latency sample: what the failover node reports and the product's reports
//! print.

use serde::Serialize;

/// p50 / p99 / max of a sample, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Maximum.
    pub max_ns: u64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `v` (sorted in place).
    pub fn of(v: &mut [u64]) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        let rank = |p: f64| v[(((p * v.len() as f64).ceil() as usize).max(1) - 1).min(v.len() - 1)];
        Percentiles {
            count: v.len() as u64,
            p50_ns: rank(0.50),
            p99_ns: rank(0.99),
            max_ns: v[v.len() - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.count, p.p50_ns, p.p99_ns, p.max_ns), (100, 50, 99, 100));
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }
}

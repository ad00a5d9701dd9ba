//! Percentiles of a latency sample: what the failover node reports and the product's reports
//! print.
//!
//! Samples are recorded into an HDR histogram (`hdrhistogram`) with [`SIGNIFICANT_FIGURES`]
//! significant decimal digits instead of being kept and sorted: recording is O(1), memory is
//! bounded by the value range, not the sample count. A percentile read from the histogram is the
//! nearest-rank percentile of the sample rounded up to the top of its histogram bucket, so it is
//! at least the exact value and exceeds it by less than 1/1024 of it (below 2048 ns every value
//! has its own bucket and percentiles are exact). The count and the maximum are exact.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant decimal digits the latency histograms keep: percentiles are within 0.1 % (less
/// than 1/1024) above the exact nearest-rank value.
pub const SIGNIFICANT_FIGURES: u8 = 3;

/// p50 / p99 / max of a sample, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Maximum (exact).
    pub max_ns: u64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `v`, through a [`LatencyHistogram`].
    pub fn of(v: &[u64]) -> Percentiles {
        v.iter()
            .copied()
            .collect::<LatencyHistogram>()
            .percentiles()
    }
}

/// A latency sample, ns, recorded into an HDR histogram with [`SIGNIFICANT_FIGURES`] digits,
/// plus its exact count, minimum and maximum.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    /// `None` only if the histogram could not be created (it can for no value of
    /// [`SIGNIFICANT_FIGURES`] we use); every sample is then counted in `not_recorded`.
    hist: Option<Histogram<u64>>,
    count: u64,
    min: u64,
    max: u64,
    not_recorded: u64,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram::new()
    }
}

impl PartialEq for LatencyHistogram {
    /// Same exact figures and the same bucket counts.
    fn eq(&self, other: &LatencyHistogram) -> bool {
        (self.count, self.min, self.max, self.not_recorded)
            == (other.count, other.min, other.max, other.not_recorded)
            && self.buckets().eq(other.buckets())
    }
}

impl LatencyHistogram {
    /// An empty sample.
    pub fn new() -> LatencyHistogram {
        LatencyHistogram {
            hist: Histogram::new(SIGNIFICANT_FIGURES).ok(),
            count: 0,
            min: u64::MAX,
            max: 0,
            not_recorded: 0,
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, ns: u64) {
        self.count += 1;
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        let recorded = self.hist.as_mut().is_some_and(|h| h.record(ns).is_ok());
        if !recorded {
            self.not_recorded += 1;
        }
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The exact smallest sample, `None` when empty.
    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    /// The exact largest sample, `None` when empty.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// Samples the histogram could not hold (counted in [`Self::count`], not in percentiles).
    pub fn not_recorded(&self) -> u64 {
        self.not_recorded
    }

    /// The nearest-rank `q`-quantile (0..=1), at the top of its bucket and never above the exact
    /// maximum (`q` = 0: the exact minimum); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count > 0 && q <= 0.0 {
            return self.min;
        }
        match &self.hist {
            Some(h) if !h.is_empty() => h.value_at_quantile(q).min(self.max),
            _ => 0,
        }
    }

    /// p50 / p99 and the exact count and maximum.
    pub fn percentiles(&self) -> Percentiles {
        if self.count == 0 {
            return Percentiles::default();
        }
        Percentiles {
            count: self.count,
            p50_ns: self.quantile(0.50),
            p99_ns: self.quantile(0.99),
            max_ns: self.max,
        }
    }

    /// The non-empty buckets in ascending order: (the bucket's top value, capped at the exact
    /// maximum; samples in it). Their counts add up to `count - not_recorded`.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.hist.iter().flat_map(move |h| {
            h.iter_recorded().map(move |v| {
                (
                    v.value_iterated_to().min(self.max),
                    v.count_since_last_iteration(),
                )
            })
        })
    }
}

impl FromIterator<u64> for LatencyHistogram {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for v in iter {
            h.record(v);
        }
        h
    }
}

impl Extend<u64> for LatencyHistogram {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, iter: I) {
        for v in iter {
            self.record(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        let p = Percentiles::of(&v);
        assert_eq!((p.count, p.p50_ns, p.p99_ns, p.max_ns), (100, 50, 99, 100));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }

    #[test]
    fn buckets_add_up_and_end_at_the_exact_max() {
        let h: LatencyHistogram = [0, 0, 5, 1_234_567, 7_654_321].into_iter().collect();
        let b: Vec<(u64, u64)> = h.buckets().collect();
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 5);
        assert_eq!(b.first(), Some(&(0, 2)));
        assert_eq!(b.last(), Some(&(7_654_321, 1)));
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            (h.min(), h.max(), h.not_recorded()),
            (Some(0), Some(7_654_321), 0)
        );
        assert_eq!(LatencyHistogram::new().buckets().count(), 0);
    }

    /// Nearest-rank percentile of a sorted sample: the reference the histogram is checked
    /// against.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank.min(sorted.len()) - 1]
    }

    proptest! {
        /// The histogram's p50/p99 are the exact nearest-rank values or above them by less than
        /// 1/1000 of them (three significant figures); count and max are exact.
        #[test]
        fn hdr_percentiles_agree_with_the_exact_computation(
            mut v in prop::collection::vec(
                prop_oneof![0u64..3_000, 0u64..100_000_000, 0u64..=u64::MAX / 2], 1..400),
            q in 0.0f64..=1.0,
        ) {
            let p = Percentiles::of(&v);
            let h: LatencyHistogram = v.iter().copied().collect();
            v.sort_unstable();
            prop_assert_eq!(p.count, v.len() as u64);
            prop_assert_eq!(p.max_ns, v[v.len() - 1]);
            for (got, want) in [
                (p.p50_ns, exact(&v, 0.50)),
                (p.p99_ns, exact(&v, 0.99)),
                (h.quantile(q), exact(&v, q)),
            ] {
                prop_assert!(got >= want, "{} < exact {}", got, want);
                prop_assert!(got - want <= want / 1000, "{} vs exact {}", got, want);
                if want < 2048 {
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}

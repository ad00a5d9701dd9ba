//! Axis scales (linear, log) and their ticks: nice steps, duration labels.

/// An axis scale: data value → fraction of the axis (0 at the low end).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Linear between `min` and `max`.
    Linear {
        /// Low end.
        min: f64,
        /// High end.
        max: f64,
    },
    /// Logarithmic between `min` and `max` (both > 0); values below `min` sit at the low end.
    Log {
        /// Low end.
        min: f64,
        /// High end.
        max: f64,
    },
}

impl Scale {
    /// Where `v` lies on the axis, 0..=1 (clamped).
    pub fn fraction(&self, v: f64) -> f64 {
        let f = match *self {
            Scale::Linear { min, max } => (v - min) / (max - min),
            Scale::Log { min, max } => (v.max(min).ln() - min.ln()) / (max.ln() - min.ln()),
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// A tick: its value and label.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// Data value.
    pub value: f64,
    /// Label.
    pub label: String,
}

/// A 1, 2 or 5 × 10^k step giving about `target` intervals over `range`.
pub fn nice_step(range: f64, target: usize) -> f64 {
    if !(range.is_finite() && range > 0.0) {
        return 1.0;
    }
    let raw = range / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Ticks at multiples of a nice step within `[min, max]`, labelled with the decimals the step
/// needs.
pub fn linear_ticks(min: f64, max: f64, target: usize) -> Vec<Tick> {
    let step = nice_step(max - min, target);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let first = (min / step).ceil() as i64;
    let last = (max / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| {
            let value = k as f64 * step;
            let label = format!("{:.*}", decimals, value);
            let label = if label.starts_with('-') && value.abs() < step / 2.0 {
                label[1..].to_string()
            } else {
                label
            };
            Tick { value, label }
        })
        .collect()
}

/// A duration in ns as `500 ns`, `20 µs`, `1.5 ms`, `2 s`.
pub fn format_ns(ns: f64) -> String {
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let s = format!("{v:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s} {unit}")
}

/// Decade ticks for a log axis of durations in ns (with 2× and 5× between decades when the axis
/// spans fewer than three decades).
pub fn log_ticks_ns(min: f64, max: f64) -> Vec<Tick> {
    let mut ticks = Vec::new();
    if !(min > 0.0 && max > min) {
        return ticks;
    }
    let fine = max / min < 1000.0;
    let mut decade = 10f64.powf(min.log10().floor());
    while decade <= max * 1.000_001 {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if (m == 1.0 || fine) && v >= min * 0.999_999 && v <= max * 1.000_001 {
                ticks.push(Tick {
                    value: v,
                    label: format_ns(v),
                });
            }
        }
        decade *= 10.0;
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn nice_steps_and_ticks() {
        assert_eq!(nice_step(100.0, 5), 20.0);
        assert_eq!(nice_step(7.0, 5), 2.0);
        assert_eq!(nice_step(0.0, 5), 1.0);
        let t = linear_ticks(0.0, 1.0, 5);
        let labels: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = linear_ticks(0.0, 2000.0, 8);
        assert_eq!(t.first().map(|t| t.label.as_str()), Some("0"));
        assert_eq!(t.last().map(|t| t.label.as_str()), Some("2000"));
    }

    #[test]
    pub(super) fn log_ticks_read_as_durations() {
        let labels: Vec<String> = log_ticks_ns(1e3, 1e8)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(
            labels,
            ["1 µs", "10 µs", "100 µs", "1 ms", "10 ms", "100 ms"]
        );
        let labels: Vec<String> = log_ticks_ns(1e4, 1e5)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(labels, ["10 µs", "20 µs", "50 µs", "100 µs"]);
        assert!(log_ticks_ns(0.0, 1.0).is_empty());
    }
}

//! Axis helpers plotters does not have: nice round axis ends and duration labels.

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

/// `v` rounded up to a multiple of a nice step (about `target` steps); 1 for nothing positive.
pub fn nice_ceiling(v: f64, target: usize) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let step = nice_step(v, target);
    (v / step).ceil() * step
}

/// A linear axis' tick label: `50`, `0.25`, `1.5` (no float noise, no trailing zeros).
pub fn format_tick(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
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

/// The decade at or below `v` (`v` > 0).
pub fn decade_floor(v: f64) -> f64 {
    10f64.powf(v.log10().floor())
}

/// The decade at or above `v` (`v` > 0).
pub fn decade_ceil(v: f64) -> f64 {
    10f64.powf(v.log10().ceil())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_and_ceilings() {
        assert_eq!(nice_step(100.0, 5), 20.0);
        assert_eq!(nice_step(7.0, 5), 2.0);
        assert_eq!(nice_step(0.0, 5), 1.0);
        assert_eq!(nice_ceiling(0.0, 5), 1.0);
        assert_eq!(nice_ceiling(37.0, 5), 40.0);
        assert_eq!(nice_ceiling(1000.0, 5), 1000.0);
    }

    #[test]
    fn durations_and_decades() {
        let labels: Vec<String> = [1e3, 1e4, 1.5e6, 2e9, 500.0]
            .into_iter()
            .map(format_ns)
            .collect();
        assert_eq!(labels, ["1 µs", "10 µs", "1.5 ms", "2 s", "500 ns"]);
        assert_eq!((decade_floor(3e4), decade_ceil(3e4)), (1e4, 1e5));
        assert_eq!((decade_floor(1e3), decade_ceil(1e3)), (1e3, 1e3));
        let ticks: Vec<String> = [0.0, 50.0, 5000.0, 0.25, 0.1 + 0.2, -0.0000001]
            .into_iter()
            .map(format_tick)
            .collect();
        assert_eq!(ticks, ["0", "50", "5000", "0.25", "0.3", "0"]);
    }
}

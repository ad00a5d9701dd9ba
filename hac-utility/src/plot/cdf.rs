//! The added-delay CDF charts: per class of a run, and any set of series (`hac-lab bench`).

use super::CDF_POINTS;
use super::frame::{
    AREA, Axes, Labels, Swatch, draw_box, draw_frame, draw_legend, draw_note, small,
};
use super::scale::{Scale, Tick, format_ns, log_ticks_ns};
use super::style::{CHECKPOINTING_COLOUR, PLAIN_COLOUR, Rgb, Stroke};
use super::surface::Surface;
use super::text::Anchor;
use crate::engine::RunResult;
use crate::report::{DelayClass, Percentiles, added_delay};

/// One class's added delays.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassDelays {
    /// `checkpointing` or `plain`.
    pub name: &'static str,
    /// Added delays, ns, sorted ascending.
    pub sorted_ns: Vec<u64>,
    /// Their percentiles (as in report.json).
    pub percentiles: Percentiles,
}

impl ClassDelays {
    /// From unsorted delays.
    pub fn new(name: &'static str, mut delays_ns: Vec<u64>) -> ClassDelays {
        let percentiles = Percentiles::of(&mut delays_ns); // sorts
        ClassDelays {
            name,
            sorted_ns: delays_ns,
            percentiles,
        }
    }
}

/// The delay CDF chart's data: checkpointing, then plain.
#[derive(Clone, Debug, PartialEq)]
pub struct DelayCdfData {
    /// The classes.
    pub classes: [ClassDelays; 2],
}

impl DelayCdfData {
    /// From a run, with report.rs's definition of added delay ([`added_delay`]).
    pub fn from_run(r: &RunResult) -> DelayCdfData {
        let (mut ck, mut pl) = (Vec::new(), Vec::new());
        for f in &r.frames {
            match added_delay(f) {
                Some((DelayClass::Checkpointing, d)) => ck.push(d),
                Some((DelayClass::Plain, d)) => pl.push(d),
                None => {}
            }
        }
        DelayCdfData {
            classes: [
                ClassDelays::new("checkpointing", ck),
                ClassDelays::new("plain", pl),
            ],
        }
    }
}

/// The empirical CDF of `sorted` as (value, fraction of samples ≤ value) points, a staircase for
/// up to `max_points` samples and `max_points + 1` quantiles beyond; both coordinates never
/// decrease.
pub fn cdf_points(sorted: &[u64], max_points: usize) -> Vec<(u64, f64)> {
    let n = sorted.len();
    let Some(&first) = sorted.first() else {
        return Vec::new();
    };
    let mut out = vec![(first, 0.0)];
    if n <= max_points.max(1) {
        for (i, &v) in sorted.iter().enumerate() {
            out.push((v, i as f64 / n as f64));
            out.push((v, (i + 1) as f64 / n as f64));
        }
    } else {
        let k_max = max_points.max(1);
        for k in 0..=k_max {
            let i = ((k as f64 / k_max as f64) * (n - 1) as f64).round() as usize;
            out.push((sorted[i], (i + 1) as f64 / n as f64));
        }
    }
    out.dedup();
    out
}

/// The frame of a delay CDF: a log time axis over the samples (each sorted, ns) and a 0–100 %
/// axis. The low end is the decade below the lowest 1st percentile of positive delays (a few
/// frames wait 0 ns, and a handful a few ns: neither should stretch the axis; anything smaller
/// sits at the left edge), the high end the decade above the largest delay.
fn draw_cdf_frame<'a>(
    s: &mut dyn Surface,
    samples: impl Iterator<Item = &'a [u64]> + Clone,
    labels: &Labels<'_>,
) -> Axes {
    let min_pos = samples
        .clone()
        .filter_map(|v| {
            let positive = &v[v.partition_point(|&x| x == 0)..];
            positive.get(positive.len() / 100).copied()
        })
        .min();
    let max = samples.filter_map(|v| v.last().copied()).max().unwrap_or(0);
    let lo = min_pos.map_or(1e3, |v| 10f64.powf((v as f64).log10().floor()));
    let mut hi = 10f64.powf((max.max(1) as f64).log10().ceil());
    if hi <= lo {
        hi = lo * 10.0;
    }
    let axes = Axes {
        area: AREA,
        x: Scale::Log { min: lo, max: hi },
        y: Scale::Linear { min: 0.0, max: 1.0 },
    };
    draw_frame(
        s,
        &axes,
        &log_ticks_ns(lo, hi),
        &[0.0, 0.25, 0.5, 0.75, 1.0].map(|v| Tick {
            value: v,
            label: format!("{:.0}%", v * 100.0),
        }),
        labels,
    );
    axes
}

/// Draws the delay CDF: the fraction of each class's frames whose added delay is at most x, on
/// a log time axis (plain frames wait microseconds, checkpointing frames an epoch plus the ack).
pub fn draw_delay_cdf(s: &mut dyn Surface, d: &DelayCdfData) {
    let axes = draw_cdf_frame(
        s,
        d.classes.iter().map(|c| c.sorted_ns.as_slice()),
        &Labels {
            title: "Added delay (wire - submit) per class, CDF",
            x: "added delay (log scale; smaller delays, 0 included, at the left edge)",
            y: "frames with added delay <= x",
        },
    );
    let colours = [CHECKPOINTING_COLOUR, PLAIN_COLOUR];
    let mut legend = Vec::new();
    for (c, colour) in d.classes.iter().zip(colours) {
        let pts: Vec<(f64, f64)> = cdf_points(&c.sorted_ns, CDF_POINTS)
            .into_iter()
            .map(|(v, f)| axes.px(v as f64, f))
            .collect();
        if !pts.is_empty() {
            s.polyline(&pts, Stroke::solid(colour, 2.0), &format!("cdf {}", c.name));
        }
        let p = c.percentiles;
        let label = if p.count == 0 {
            format!("{}: no frames", c.name)
        } else {
            format!(
                "{}: {} frames, p50 {}, p99 {}",
                c.name,
                p.count,
                format_ns(p.p50_ns as f64),
                format_ns(p.p99_ns as f64)
            )
        };
        legend.push((Swatch::Line(colour), label));
    }
    draw_box(s, AREA);
    draw_legend(s, &legend);
    if d.classes.iter().all(|c| c.sorted_ns.is_empty()) {
        draw_note(s, AREA, "no data: no frame left on the wire");
    }
}

/// One curve of [`draw_delay_cdf_series`].
#[derive(Clone, Debug, PartialEq)]
pub struct CdfSeries {
    /// Legend label.
    pub label: String,
    /// Colour.
    pub colour: Rgb,
    /// Dashed (e.g. the comparison peer) or solid.
    pub dashed: bool,
    /// The delays.
    pub delays: ClassDelays,
}

impl CdfSeries {
    /// From unsorted delays, ns.
    pub fn new(label: &str, colour: Rgb, dashed: bool, delays_ns: Vec<u64>) -> CdfSeries {
        CdfSeries {
            label: label.into(),
            colour,
            dashed,
            delays: ClassDelays::new("series", delays_ns),
        }
    }
}

/// A titled set of CDF curves (`hac-lab bench`: HAC against sch_plug, per class).
#[derive(Clone, Debug, PartialEq)]
pub struct CdfSeriesSet {
    /// Title.
    pub title: String,
    /// The curves.
    pub series: Vec<CdfSeries>,
}

/// Draws several added-delay CDFs on one log time axis, with a two-column legend above the plot
/// (label, frame count, p50, p99). In the SVG each curve is a `polyline` with class
/// `cdf series-N`. The axis spans the decade below the lowest 1st percentile of positive delays
/// to the decade above the largest delay.
pub fn draw_delay_cdf_series(s: &mut dyn Surface, d: &CdfSeriesSet) {
    let axes = draw_cdf_frame(
        s,
        d.series.iter().map(|c| c.delays.sorted_ns.as_slice()),
        &Labels {
            title: &d.title,
            x: "added delay (delivered - submitted; log scale; model: virtual time, peer: wall time)",
            y: "frames with added delay <= x",
        },
    );
    for (i, c) in d.series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = cdf_points(&c.delays.sorted_ns, CDF_POINTS)
            .into_iter()
            .map(|(v, f)| axes.px(v as f64, f))
            .collect();
        if !pts.is_empty() {
            let stroke = Stroke {
                colour: c.colour,
                width: 2.0,
                dashed: c.dashed,
            };
            s.polyline(&pts, stroke, &format!("cdf series-{i}"));
        }
        let p = c.delays.percentiles;
        let label = if p.count == 0 {
            format!("{}: no frames", c.label)
        } else {
            format!(
                "{}: {} fr, p50 {}, p99 {}",
                c.label,
                p.count,
                format_ns(p.p50_ns as f64),
                format_ns(p.p99_ns as f64)
            )
        };
        let x = AREA.left + (i % 2) as f64 * (AREA.right - AREA.left) / 2.0;
        let y = 38.0 + (i / 2) as f64 * 14.0;
        let stroke = Stroke {
            colour: c.colour,
            width: 3.0,
            dashed: c.dashed,
        };
        s.line((x, y), (x + 22.0, y), stroke);
        s.text((x + 28.0, y), &label, small(Anchor::Start));
    }
    draw_box(s, AREA);
    if d.series.iter().all(|c| c.delays.sorted_ns.is_empty()) {
        draw_note(s, AREA, "no data: no frame delivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::output::render;

    #[test]
    fn series_cdf_draws_every_curve_dashed_or_not() {
        let set = CdfSeriesSet {
            title: "t".into(),
            series: vec![
                CdfSeries::new("a", PLAIN_COLOUR, false, vec![1_000, 2_000, 3_000]),
                CdfSeries::new("b", CHECKPOINTING_COLOUR, true, vec![5_000_000, 6_000_000]),
                CdfSeries::new("c", PLAIN_COLOUR, true, vec![]),
            ],
        };
        let (png, svg) = render(|s| draw_delay_cdf_series(s, &set)).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        assert!(svg.contains("cdf series-0") && svg.contains("cdf series-1"));
        assert!(
            !svg.contains("cdf series-2"),
            "an empty series has no curve"
        );
        assert!(svg.contains("c: no frames"));
        assert!(svg.contains("stroke-dasharray"));
    }
}

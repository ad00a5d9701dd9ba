//! The added-delay CDF charts: per class of a run, and any set of series (`hac-lab bench`).
//!
//! The curves come from each sample's HDR histogram ([`LatencyHistogram`]), not from sorted
//! samples: a staircase through the histogram's buckets, or [`CDF_POINTS`] quantiles when there
//! are more buckets than that.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::CDF_POINTS;
use super::frame::{DrawResult, Swatch, builder, finish_plot, header, mesh_style, stroke};
use super::output::Chart;
use super::scale::{decade_ceil, decade_floor, format_ns};
use super::style::{CHECKPOINTING_COLOUR, PLAIN_COLOUR, Rgb};
use crate::engine::RunResult;
use crate::report::{DelayClass, LatencyHistogram, Percentiles, added_delay};

/// One class's added delays.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassDelays {
    /// `checkpointing` or `plain`.
    pub name: &'static str,
    /// Added delays, ns, as an HDR histogram.
    pub delays: LatencyHistogram,
    /// Their percentiles (as in report.json).
    pub percentiles: Percentiles,
}

impl ClassDelays {
    /// From delays, ns, in any order.
    pub fn new(name: &'static str, delays_ns: impl IntoIterator<Item = u64>) -> ClassDelays {
        ClassDelays::of_histogram(name, delays_ns.into_iter().collect())
    }

    /// From a histogram of delays, ns.
    pub fn of_histogram(name: &'static str, delays: LatencyHistogram) -> ClassDelays {
        ClassDelays {
            name,
            percentiles: delays.percentiles(),
            delays,
        }
    }

    fn is_empty(&self) -> bool {
        self.delays.count() == 0
    }

    fn legend(&self, label: &str, frames: &str) -> String {
        let p = self.percentiles;
        if p.count == 0 {
            format!("{label}: no frames")
        } else {
            format!(
                "{label}: {} {frames}, p50 {}, p99 {}",
                p.count,
                format_ns(p.p50_ns as f64),
                format_ns(p.p99_ns as f64)
            )
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
        let (mut ck, mut pl) = (LatencyHistogram::new(), LatencyHistogram::new());
        for f in &r.frames {
            match added_delay(f) {
                Some((DelayClass::Checkpointing, d)) => ck.record(d),
                Some((DelayClass::Plain, d)) => pl.record(d),
                None => {}
            }
        }
        DelayCdfData {
            classes: [
                ClassDelays::of_histogram("checkpointing", ck),
                ClassDelays::of_histogram("plain", pl),
            ],
        }
    }
}

/// The empirical CDF of `h` as (value, fraction of samples ≤ value) points: a staircase
/// through the buckets for up to `max_points` buckets, `max_points + 1` quantiles beyond; both
/// coordinates never decrease, the first point is (exact minimum, 0), the last (exact maximum,
/// 1).
pub fn cdf_points(h: &LatencyHistogram, max_points: usize) -> Vec<(u64, f64)> {
    let n: u64 = h.buckets().map(|b| b.1).sum();
    let Some(min) = h.min().filter(|_| n > 0) else {
        return Vec::new();
    };
    let mut out = vec![(min, 0.0)];
    if h.buckets().count() <= max_points.max(1) {
        let mut below = 0;
        for (v, c) in h.buckets() {
            out.push((v, below as f64 / n as f64));
            below += c;
            out.push((v, below as f64 / n as f64));
        }
    } else {
        let k_max = max_points.max(1);
        for k in 1..=k_max {
            let q = k as f64 / k_max as f64;
            out.push((h.quantile(q), q));
        }
    }
    out.dedup();
    out
}

/// The lowest 1st percentile of positive delays among the samples (a few frames wait 0 ns, and
/// a handful a few ns: neither should stretch the axis).
fn lowest_positive_p1<'a>(samples: impl Iterator<Item = &'a LatencyHistogram>) -> Option<u64> {
    samples
        .filter_map(|h| {
            let n: u64 = h.buckets().map(|b| b.1).sum();
            let zeros: u64 = h.buckets().take_while(|b| b.0 == 0).map(|b| b.1).sum();
            let rank = zeros + (n.checked_sub(zeros)? / 100);
            let mut below = 0;
            h.buckets().find_map(|(v, c)| {
                below += c;
                (below > rank).then_some(v)
            })
        })
        .min()
}

/// The log time axis of a delay CDF: from the decade below the lowest 1st percentile of
/// positive delays (anything smaller sits at the left edge) to the decade above the largest
/// delay.
fn delay_axis<'a>(samples: impl Iterator<Item = &'a LatencyHistogram> + Clone) -> (f64, f64) {
    let lo = lowest_positive_p1(samples.clone()).map_or(1e3, |v| decade_floor(v as f64));
    let max = samples.filter_map(LatencyHistogram::max).max().unwrap_or(0);
    let hi = decade_ceil(max.max(1) as f64);
    (lo, if hi <= lo { lo * 10.0 } else { hi })
}

/// One curve of a CDF chart.
struct Curve<'a> {
    delays: &'a LatencyHistogram,
    colour: Rgb,
    dashed: bool,
}

/// A CDF chart: the header with `legend`, a log time axis, a 0–100 % axis, one curve each.
fn draw_cdf<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    legend: &[(Swatch, String)],
    curves: &[Curve<'_>],
    note: &str,
) -> DrawResult<DB> {
    let (lo, hi) = delay_axis(curves.iter().map(|c| c.delays));
    let body = header(root, title, legend)?;
    let mut chart = builder(&body).build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)?;
    let x_fmt = |v: &f64| format_ns(*v);
    let y_fmt = |v: &f64| format!("{:.0}%", v * 100.0);
    let mut mesh = chart.configure_mesh();
    mesh_style(&mut mesh, x_desc, "frames with added delay <= x");
    mesh.x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .y_labels(6)
        .draw()?;
    for c in curves {
        let pts = cdf_points(c.delays, CDF_POINTS)
            .into_iter()
            .map(|(v, f)| ((v as f64).max(lo), f));
        if c.dashed {
            chart.draw_series(DashedLineSeries::new(pts, 8, 5, stroke(c.colour, 2)))?;
        } else {
            chart.draw_series(LineSeries::new(pts, stroke(c.colour, 2)))?;
        }
    }
    let plot = chart.plotting_area().strip_coord_spec();
    let empty = curves.iter().all(|c| c.delays.count() == 0);
    finish_plot(&plot, empty.then_some(note))
}

/// The delay CDF: the fraction of each class's frames whose added delay is at most x, on a log
/// time axis (plain frames wait microseconds, checkpointing frames an epoch plus the ack).
impl Chart for DelayCdfData {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let colours = [CHECKPOINTING_COLOUR, PLAIN_COLOUR];
        let legend: Vec<(Swatch, String)> = self
            .classes
            .iter()
            .zip(colours)
            .map(|(c, colour)| (Swatch::Line(colour, false), c.legend(c.name, "frames")))
            .collect();
        let curves: Vec<Curve<'_>> = self
            .classes
            .iter()
            .zip(colours)
            .filter(|(c, _)| !c.is_empty())
            .map(|(c, colour)| Curve {
                delays: &c.delays,
                colour,
                dashed: false,
            })
            .collect();
        draw_cdf(
            root,
            "Added delay (wire - submit) per class, CDF",
            "added delay (log scale; smaller delays, 0 included, at the left edge)",
            &legend,
            &curves,
            "no data: no frame left on the wire",
        )
    }
}

/// One curve of a [`CdfSeriesSet`].
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
    /// From delays, ns, in any order.
    pub fn new(
        label: &str,
        colour: Rgb,
        dashed: bool,
        delays_ns: impl IntoIterator<Item = u64>,
    ) -> CdfSeries {
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

/// Several added-delay CDFs on one log time axis, with a legend above the plot (label, frame
/// count, p50, p99); a dashed series is drawn dashed, an empty one has no curve.
impl Chart for CdfSeriesSet {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let legend: Vec<(Swatch, String)> = self
            .series
            .iter()
            .map(|c| {
                (
                    Swatch::Line(c.colour, c.dashed),
                    c.delays.legend(&c.label, "fr"),
                )
            })
            .collect();
        let curves: Vec<Curve<'_>> = self
            .series
            .iter()
            .filter(|c| !c.delays.is_empty())
            .map(|c| Curve {
                delays: &c.delays.delays,
                colour: c.colour,
                dashed: c.dashed,
            })
            .collect();
        draw_cdf(
            root,
            &self.title,
            "added delay (delivered - submitted; log scale; model: virtual time, peer: wall time)",
            &legend,
            &curves,
            "no data: no frame delivered",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::output::render;

    /// Polylines of `colour` in an SVG.
    fn polylines(svg: &str, colour: Rgb) -> usize {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}"));
        let stroke = colour.hex();
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| {
                n.attribute("stroke")
                    .is_some_and(|s| s.eq_ignore_ascii_case(&stroke))
            })
            .count()
    }

    #[test]
    fn series_cdf_draws_every_curve_dashed_or_not() {
        let a = Rgb(1, 2, 3);
        let b = Rgb(4, 5, 6);
        let c = Rgb(7, 8, 9);
        let set = CdfSeriesSet {
            title: "t".into(),
            series: vec![
                CdfSeries::new("a", a, false, vec![1_000, 2_000, 3_000]),
                CdfSeries::new("b", b, true, vec![5_000_000, 6_000_000]),
                CdfSeries::new("c", c, true, vec![]),
            ],
        };
        let (png, svg) = render(&set).unwrap_or_else(|e| panic!("{e}"));
        assert!(png.starts_with(b"\x89PNG"));
        // Legend swatch + one solid curve.
        assert_eq!(polylines(&svg, a), 2);
        // Dashed: many short pieces (the legend's and the curve's).
        assert!(polylines(&svg, b) > 10, "{}", polylines(&svg, b));
        // An empty series: its legend swatch only (two dashes), no curve.
        assert!(polylines(&svg, c) <= 3, "{}", polylines(&svg, c));
        assert!(svg.contains("c: no frames"));
    }

    #[test]
    fn axis_ignores_zeros_and_a_low_tail() {
        let mut v = vec![0u64; 50];
        v.extend([3u64; 5]);
        v.extend(20_000..20_500u64);
        v.push(7_000_000);
        let h: LatencyHistogram = v.into_iter().collect();
        assert_eq!(delay_axis([&h].into_iter()), (1e4, 1e7));
        let empty = LatencyHistogram::new();
        assert_eq!(delay_axis([&empty].into_iter()), (1e3, 1e4));
    }
}

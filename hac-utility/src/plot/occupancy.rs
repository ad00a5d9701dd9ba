//! The occupancy chart: frames held per checkpointing VF over time with the checkpoint engine's
//! markers (commit, abort, failover, unprotect).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::MAX_COMMIT_MARKERS;
use super::frame::{
    DrawResult, Swatch, builder, finish_plot, font, header, marker, mesh_style, stroke,
};
use super::output::Chart;
use super::scale::{format_tick, nice_ceiling};
use super::style::{ABORT_COLOUR, FAILOVER_COLOUR, INK, Rgb, Shape, UNPROTECT_COLOUR, vf_colour};
use crate::engine::{RunResult, STEP_NS};

/// One checkpointing VF's occupancy samples.
#[derive(Clone, Debug, PartialEq)]
pub struct VfOccupancy {
    /// VF index.
    pub vf: usize,
    /// (ms since the run started, frames held), in time order.
    pub samples: Vec<(f64, u32)>,
}

/// A checkpoint engine action on the time axis.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotMarker {
    /// ms since the run started.
    pub at_ms: f64,
    /// The VF.
    pub vf: usize,
    /// The epoch.
    pub epoch: u32,
    /// `commit`, `abort`, `failover` or `unprotect`.
    pub kind: String,
}

/// The occupancy chart's data.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OccupancyData {
    /// Run length, ms (the time axis).
    pub duration_ms: f64,
    /// Checkpointing VFs, each with its samples.
    pub vfs: Vec<VfOccupancy>,
    /// Markers of those VFs.
    pub markers: Vec<PlotMarker>,
}

impl OccupancyData {
    /// From a run: the VFs the scenario tags, times relative to the run's start (the engine
    /// takes its first occupancy sample one engine step after the start).
    pub fn from_run(r: &RunResult) -> OccupancyData {
        let origin = match r.occupancy.first() {
            Some(&(t, _)) => t.saturating_sub(STEP_NS),
            None => r
                .markers
                .iter()
                .map(|m| m.at_ns)
                .chain(r.frames.iter().map(|f| f.submit_ns))
                .min()
                .unwrap_or(0),
        };
        let ms = |ns: u64| ns.saturating_sub(origin) as f64 / 1e6;
        let vfs: Vec<VfOccupancy> = (0..r.scenario.vf.len())
            .filter(|&i| r.scenario.vf[i].checkpointing)
            .map(|i| VfOccupancy {
                vf: i,
                samples: r
                    .occupancy
                    .iter()
                    .filter_map(|(t, occ)| occ.get(i).map(|&o| (ms(*t), o)))
                    .collect(),
            })
            .collect();
        let markers = r
            .markers
            .iter()
            .filter(|m| vfs.iter().any(|v| v.vf == usize::from(m.vf)))
            .map(|m| PlotMarker {
                at_ms: ms(m.at_ns),
                vf: usize::from(m.vf),
                epoch: m.epoch,
                kind: m.kind.to_string(),
            })
            .collect();
        OccupancyData {
            duration_ms: r.virtual_ns as f64 / 1e6,
            vfs,
            markers,
        }
    }
}

/// The first, lowest, highest and last point of each run of points that fall in one pixel
/// column, in order: what a line through all of them would show, from at most 4 points a column.
pub fn downsample_columns(points: &[(f64, f64)], column: impl Fn(f64) -> i64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < points.len() {
        let col = column(points[start].0);
        let mut end = start + 1;
        while end < points.len() && column(points[end].0) == col {
            end += 1;
        }
        let run = &points[start..end];
        let (mut lo, mut hi) = (0, 0);
        for (k, p) in run.iter().enumerate() {
            if p.1 < run[lo].1 {
                lo = k;
            }
            if p.1 > run[hi].1 {
                hi = k;
            }
        }
        let mut keep = [0, lo, hi, run.len() - 1];
        keep.sort_unstable();
        let mut last = None;
        for k in keep {
            if last != Some(k) {
                out.push(run[k]);
                last = Some(k);
            }
        }
        start = end;
    }
    out
}

/// Where a marker of [`OccupancyData`] goes and how it looks.
#[derive(Clone, Debug, PartialEq)]
pub enum PlacedMarker {
    /// A commit: a triangle on the VF's curve (the last sample at or before it: what it
    /// released).
    Commit {
        /// VF.
        vf: usize,
        /// Time, axis unit.
        x: f64,
        /// Frames held then.
        held: u32,
    },
    /// An abort, failover or unprotect: a dashed line across the plot, a diamond and a label.
    Event {
        /// `abort`, `failover` or `unprotect`.
        kind: String,
        /// VF.
        vf: usize,
        /// Time, axis unit.
        x: f64,
    },
}

/// The occupancy chart's axes: time unit and scale, the y axis' top.
#[derive(Clone, Copy, Debug, PartialEq)]
struct OccupancyAxes {
    unit: &'static str,
    per_unit: f64,
    x_max: f64,
    y_max: f64,
}

impl OccupancyData {
    fn axes(&self) -> OccupancyAxes {
        let last_sample = self
            .vfs
            .iter()
            .filter_map(|v| v.samples.last().map(|p| p.0))
            .fold(0.0, f64::max);
        let span_ms = self.duration_ms.max(last_sample);
        let (unit, per_unit) = if span_ms > 10_000.0 {
            ("s", 1000.0)
        } else {
            ("ms", 1.0)
        };
        let x_max = if span_ms > 0.0 {
            span_ms / per_unit
        } else {
            1.0
        };
        let y_peak = self
            .vfs
            .iter()
            .flat_map(|v| v.samples.iter().map(|p| p.1))
            .max()
            .unwrap_or(0);
        OccupancyAxes {
            unit,
            per_unit,
            x_max,
            // Headroom above the highest peak for the event markers and labels.
            y_max: nice_ceiling(f64::from(y_peak) * 1.15, 5),
        }
    }

    /// The markers as drawn on a plot `width_px` wide: every commit up to
    /// [`MAX_COMMIT_MARKERS`], beyond it at most one per VF and pixel column (the bool says
    /// so); every other event.
    pub fn placed_markers(&self, width_px: u32) -> (Vec<PlacedMarker>, bool) {
        let a = self.axes();
        let column = |x: f64| (x / a.x_max * f64::from(width_px)).floor() as i64;
        let commits = self.markers.iter().filter(|m| m.kind == "commit").count();
        let thin = commits > MAX_COMMIT_MARKERS;
        let mut last_col: Vec<(usize, i64)> = Vec::new();
        let mut out = Vec::new();
        for m in &self.markers {
            let x = m.at_ms / a.per_unit;
            if m.kind != "commit" {
                out.push(PlacedMarker::Event {
                    kind: m.kind.clone(),
                    vf: m.vf,
                    x,
                });
                continue;
            }
            if thin {
                let col = column(x);
                if let Some(e) = last_col.iter_mut().find(|e| e.0 == m.vf) {
                    if e.1 == col {
                        continue;
                    }
                    e.1 = col;
                } else {
                    last_col.push((m.vf, col));
                }
            }
            let held = self
                .vfs
                .iter()
                .find(|v| v.vf == m.vf)
                .and_then(|v| {
                    let k = v.samples.partition_point(|p| p.0 <= m.at_ms);
                    k.checked_sub(1).map(|k| v.samples[k].1)
                })
                .unwrap_or(0);
            out.push(PlacedMarker::Commit { vf: m.vf, x, held });
        }
        (out, thin)
    }

    fn legend(&self, thin: bool) -> Vec<(Swatch, String)> {
        let mut legend: Vec<(Swatch, String)> = self
            .vfs
            .iter()
            .map(|v| (Swatch::Line(vf_colour(v.vf), false), format!("VF {}", v.vf)))
            .collect();
        let commits = self.markers.iter().filter(|m| m.kind == "commit").count();
        if commits > 0 {
            let label = if thin {
                format!("commit ({commits}, one per pixel shown)")
            } else {
                "commit".to_string()
            };
            legend.push((Swatch::Mark(Shape::TriangleDown, INK), label));
        }
        for kind in ["abort", "failover", "unprotect"] {
            if self.markers.iter().any(|m| m.kind == kind) {
                legend.push((
                    Swatch::Mark(Shape::Diamond, event_colour(kind)),
                    kind.to_string(),
                ));
            }
        }
        legend
    }
}

/// The occupancy chart: frames held per checkpointing VF over time, a triangle on the curve
/// at each commit, and a dashed line with a diamond and a label at each abort, failover and
/// unprotect.
impl Chart for OccupancyData {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let a = self.axes();
        // The plot's width is known once the chart is laid out; the legend needs to know
        // whether commits are thinned, which depends on it only beyond the cap.
        let commits = self.markers.iter().filter(|m| m.kind == "commit").count();
        let body = header(
            root,
            "HAC buffer occupancy per checkpointing VF",
            &self.legend(commits > MAX_COMMIT_MARKERS),
        )?;
        let mut chart = builder(&body).build_cartesian_2d(0.0..a.x_max, 0.0..a.y_max)?;
        let x_desc = format!("virtual time since the run started ({})", a.unit);
        let mut mesh = chart.configure_mesh();
        mesh_style(&mut mesh, &x_desc, "frames held in the adapter");
        let tick = |v: &f64| format_tick(*v);
        mesh.x_labels(10)
            .y_labels(6)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()?;
        let plot = chart.plotting_area().strip_coord_spec();
        let (width_px, _) = plot.dim_in_pixel();
        let column = |x: f64| (x / a.x_max * f64::from(width_px)).floor() as i64;
        for v in &self.vfs {
            let pts: Vec<(f64, f64)> = v
                .samples
                .iter()
                .map(|&(t, o)| (t / a.per_unit, f64::from(o)))
                .collect();
            chart.draw_series(LineSeries::new(
                downsample_columns(&pts, column),
                stroke(vf_colour(v.vf), 2),
            ))?;
        }
        let (placed, _) = self.placed_markers(width_px);
        let mut last_label_x: Option<i32> = None;
        let label_font = font(13, HPos::Left);
        for m in &placed {
            match m {
                PlacedMarker::Commit { vf, x, held } => {
                    marker(
                        chart.plotting_area(),
                        (*x, f64::from(*held)),
                        Shape::TriangleDown,
                        4,
                        vf_colour(*vf),
                    )?;
                }
                PlacedMarker::Event { kind, vf, x } => {
                    let colour = event_colour(kind);
                    chart.draw_series(DashedLineSeries::new(
                        [(*x, 0.0), (*x, a.y_max)],
                        6,
                        4,
                        stroke(colour, 1),
                    ))?;
                    let top = chart.backend_coord(&(*x, a.y_max));
                    let at = (top.0 - chart.plotting_area().get_base_pixel().0, 10);
                    marker(&plot, at, Shape::Diamond, 5, colour)?;
                    let label = format!("{kind} VF {vf}");
                    let (tw, _) = plot.estimate_text_size(&label, &label_font)?;
                    if last_label_x.is_none_or(|l| at.0 - l > tw as i32 + 16) {
                        plot.draw(&Text::new(label, (at.0 + 8, 24), label_font.clone()))?;
                        last_label_x = Some(at.0);
                    }
                }
            }
        }
        let note = if self.vfs.is_empty() {
            Some("no data: no checkpointing VF in this run")
        } else if self.vfs.iter().all(|v| v.samples.is_empty()) {
            Some("no data: no occupancy samples")
        } else {
            None
        };
        finish_plot(&plot, note)
    }
}

fn event_colour(kind: &str) -> Rgb {
    match kind {
        "abort" => ABORT_COLOUR,
        "failover" => FAILOVER_COLOUR,
        _ => UNPROTECT_COLOUR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_extremes_in_order() {
        let pts: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, (i % 10) as f64)).collect();
        let d = downsample_columns(&pts, |x| (x / 100.0).floor() as i64);
        assert!(d.len() <= 40, "{}", d.len());
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(d.iter().any(|p| p.1 == 9.0) && d.iter().any(|p| p.1 == 0.0));
        assert_eq!(d.last(), pts.last());
    }
}

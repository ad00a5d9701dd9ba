//! The occupancy chart: frames held per checkpointing VF over time with the checkpoint engine's
//! markers (commit, abort, failover, unprotect).

use super::MAX_COMMIT_MARKERS;
use super::frame::{
    AREA, Axes, Labels, Swatch, draw_box, draw_frame, draw_legend, draw_note, small,
};
use super::scale::{Scale, linear_ticks, nice_step};
use super::style::{
    ABORT_COLOUR, FAILOVER_COLOUR, INK, Rgb, Shape, Stroke, UNPROTECT_COLOUR, vf_colour,
};
use super::surface::Surface;
use super::text::{Anchor, TextSize, text_width};
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

/// Draws the occupancy chart: frames held per checkpointing VF over time, a triangle on the
/// curve at each commit, and a dashed line with a label at each abort, failover and unprotect.
pub fn draw_occupancy(s: &mut dyn Surface, d: &OccupancyData) {
    let last_sample = d
        .vfs
        .iter()
        .filter_map(|v| v.samples.last().map(|p| p.0))
        .fold(0.0, f64::max);
    let span_ms = d.duration_ms.max(last_sample);
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
    let y_peak = d
        .vfs
        .iter()
        .flat_map(|v| v.samples.iter().map(|p| p.1))
        .max()
        .unwrap_or(0);
    let y_max = if y_peak == 0 {
        1.0
    } else {
        let step = nice_step(f64::from(y_peak), 5);
        (f64::from(y_peak) / step).ceil() * step
    };
    let axes = Axes {
        area: AREA,
        x: Scale::Linear {
            min: 0.0,
            max: x_max,
        },
        y: Scale::Linear {
            min: 0.0,
            max: y_max,
        },
    };
    let x_label = format!("virtual time since the run started ({unit})");
    draw_frame(
        s,
        &axes,
        &linear_ticks(0.0, x_max, 8),
        &linear_ticks(0.0, y_max, 5),
        &Labels {
            title: "HAC buffer occupancy per checkpointing VF",
            x: &x_label,
            y: "frames held in the adapter",
        },
    );
    let width_px = AREA.right - AREA.left;
    let column = |x: f64| (axes.x.fraction(x) * width_px).floor() as i64;
    for v in &d.vfs {
        let pts: Vec<(f64, f64)> = v
            .samples
            .iter()
            .map(|&(t, o)| (t / per_unit, f64::from(o)))
            .collect();
        let pts: Vec<(f64, f64)> = downsample_columns(&pts, column)
            .into_iter()
            .map(|(x, y)| axes.px(x, y))
            .collect();
        s.polyline(
            &pts,
            Stroke::solid(vf_colour(v.vf), 2.0),
            &format!("series vf{}", v.vf),
        );
    }
    // Markers.
    let commits = d.markers.iter().filter(|m| m.kind == "commit").count();
    let thin = commits > MAX_COMMIT_MARKERS;
    let mut last_col: Vec<(usize, i64)> = Vec::new();
    let mut last_label_x = f64::NEG_INFINITY;
    for m in &d.markers {
        let x = m.at_ms / per_unit;
        if m.kind == "commit" {
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
            // On the curve: the last sample at or before the commit (what it released).
            let held = d
                .vfs
                .iter()
                .find(|v| v.vf == m.vf)
                .and_then(|v| {
                    let k = v.samples.partition_point(|p| p.0 <= m.at_ms);
                    k.checked_sub(1).map(|k| v.samples[k].1)
                })
                .unwrap_or(0);
            s.marker(
                axes.px(x, f64::from(held)),
                Shape::TriangleDown,
                4.0,
                vf_colour(m.vf),
                &format!("marker commit vf{}", m.vf),
            );
        } else {
            let (shape, colour) = event_style(&m.kind);
            let (px, _) = axes.px(x, 0.0);
            s.line(
                (px, AREA.top),
                (px, AREA.bottom),
                Stroke {
                    colour,
                    width: 1.0,
                    dashed: true,
                },
            );
            s.marker(
                (px, AREA.top + 8.0),
                shape,
                5.0,
                colour,
                &format!("marker {} vf{}", m.kind, m.vf),
            );
            let label = format!("{} VF {}", m.kind, m.vf);
            if px - last_label_x > text_width(&label, TextSize::Small) + 16.0 {
                s.text((px + 8.0, AREA.top + 22.0), &label, small(Anchor::Start));
                last_label_x = px;
            }
        }
    }
    draw_box(s, AREA);
    let mut legend: Vec<(Swatch, String)> = d
        .vfs
        .iter()
        .map(|v| (Swatch::Line(vf_colour(v.vf)), format!("VF {}", v.vf)))
        .collect();
    if commits > 0 {
        let label = if thin {
            format!("commit ({commits}, one per pixel shown)")
        } else {
            "commit".to_string()
        };
        legend.push((Swatch::Mark(Shape::TriangleDown, INK), label));
    }
    for kind in ["abort", "failover", "unprotect"] {
        if d.markers.iter().any(|m| m.kind == kind) {
            let (shape, colour) = event_style(kind);
            legend.push((Swatch::Mark(shape, colour), kind.to_string()));
        }
    }
    draw_legend(s, &legend);
    if d.vfs.is_empty() {
        draw_note(s, AREA, "no data: no checkpointing VF in this run");
    } else if d.vfs.iter().all(|v| v.samples.is_empty()) {
        draw_note(s, AREA, "no data: no occupancy samples");
    }
}

fn event_style(kind: &str) -> (Shape, Rgb) {
    match kind {
        "abort" => (Shape::Cross, ABORT_COLOUR),
        "failover" => (Shape::Cross, FAILOVER_COLOUR),
        _ => (Shape::Diamond, UNPROTECT_COLOUR),
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

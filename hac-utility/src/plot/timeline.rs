//! The failover timeline (`hac failover-demo`): each request's round trip at the time its answer
//! arrived, the kill and the takeover.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::frame::{
    DrawResult, Swatch, builder, finish_plot, font, header, marker, mesh_style, stroke,
};
use super::output::Chart;
use super::scale::{decade_ceil, decade_floor, format_ns, format_tick, nice_ceiling};
use super::style::{FAILOVER_COLOUR, Rgb, Shape};

/// One answered request on the failover timeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimelinePoint {
    /// When the answer arrived, s since the client started.
    pub at_s: f64,
    /// The request's round trip, ns.
    pub rtt_ns: f64,
    /// Answered after the primary was killed (by the backup).
    pub after_kill: bool,
}

/// The failover timeline's data (`hac failover-demo`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TimelineData {
    /// Every answer, in order.
    pub points: Vec<TimelinePoint>,
    /// When the primary was killed, s.
    pub kill_s: Option<f64>,
    /// When the backup took over (or the primary unprotected), s.
    pub takeover_s: Option<f64>,
    /// Legend of the answers after the kill.
    pub after_label: String,
    /// Label of the takeover line.
    pub event_label: String,
    /// Label of the kill line.
    pub kill_label: String,
    /// When a new backup joined (re-protection), s.
    pub rejoin_s: Option<f64>,
    /// Label of the rejoin line.
    pub rejoin_label: String,
}

/// Colour of answers from the primary on the timeline.
pub const PRIMARY_COLOUR: Rgb = Rgb(0x94, 0x67, 0xbd);
/// Colour of answers from the backup, and of the takeover line.
pub const BACKUP_COLOUR: Rgb = Rgb(0x2c, 0xa0, 0x2c);

/// The failover timeline: each request's round trip (log scale) at the time its answer
/// arrived, answers from the primary and from the backup in two colours, a dashed line at the
/// kill, one at the takeover and one where a new backup joined (re-protection).
impl Chart for TimelineData {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let x_end = self
            .points
            .iter()
            .map(|p| p.at_s)
            .chain(self.kill_s)
            .chain(self.takeover_s)
            .chain(self.rejoin_s)
            .fold(0.0, f64::max);
        let x_max = nice_ceiling(x_end, 8);
        let (lo, hi) = self
            .points
            .iter()
            .map(|p| p.rtt_ns.max(1e3))
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        let (y_min, y_max) = if hi > 0.0 {
            (decade_floor(lo), decade_ceil(hi * 1.0001))
        } else {
            (1e6, 1e9)
        };
        let mut legend = vec![(
            Swatch::Mark(Shape::Diamond, PRIMARY_COLOUR),
            "answered by the primary (checkpointed)".to_string(),
        )];
        if self.points.iter().any(|p| p.after_kill) {
            legend.push((
                Swatch::Mark(Shape::Diamond, BACKUP_COLOUR),
                self.after_label.clone(),
            ));
        }
        if self.kill_s.is_some() {
            legend.push((Swatch::Line(FAILOVER_COLOUR, true), "kill".to_string()));
        }
        if self.takeover_s.is_some() {
            legend.push((Swatch::Line(BACKUP_COLOUR, true), self.event_label.clone()));
        }
        if self.rejoin_s.is_some() {
            legend.push((
                Swatch::Line(PRIMARY_COLOUR, true),
                self.rejoin_label.clone(),
            ));
        }
        let body = header(root, "Failover: client round trip per request", &legend)?;
        let mut chart =
            builder(&body).build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())?;
        let y_fmt = |v: &f64| format_ns(*v);
        let mut mesh = chart.configure_mesh();
        mesh_style(
            &mut mesh,
            "time since the client started (s)",
            "round trip (log scale)",
        );
        let x_fmt = |v: &f64| format_tick(*v);
        mesh.x_labels(10)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()?;
        for p in &self.points {
            let colour = if p.after_kill {
                BACKUP_COLOUR
            } else {
                PRIMARY_COLOUR
            };
            marker(
                chart.plotting_area(),
                (p.at_s, p.rtt_ns.max(y_min)),
                Shape::Diamond,
                3,
                colour,
            )?;
        }
        let plot = chart.plotting_area().strip_coord_spec();
        let base_x = chart.plotting_area().get_base_pixel().0;
        // The kill's label left of its line, the takeover's right of its own: they are often
        // a few pixels apart. The rejoin's goes one line lower (it follows the takeover by a
        // few hundred ms).
        for (at, label, colour, side, y) in [
            (
                self.kill_s,
                self.kill_label.as_str(),
                FAILOVER_COLOUR,
                -1,
                14,
            ),
            (
                self.takeover_s,
                self.event_label.as_str(),
                BACKUP_COLOUR,
                1,
                14,
            ),
            (
                self.rejoin_s,
                self.rejoin_label.as_str(),
                PRIMARY_COLOUR,
                1,
                32,
            ),
        ] {
            let Some(at) = at else { continue };
            chart.draw_series(DashedLineSeries::new(
                [(at, y_min), (at, y_max)],
                6,
                4,
                stroke(colour, 2),
            ))?;
            let x = chart.backend_coord(&(at, y_min)).0 - base_x;
            let anchor = if side < 0 { HPos::Right } else { HPos::Left };
            plot.draw(&Text::new(
                label.to_string(),
                (x + side * 6, y),
                font(13, anchor),
            ))?;
        }
        let note = self
            .points
            .is_empty()
            .then_some("no data: no request was answered");
        finish_plot(&plot, note)
    }
}

//! The failover timeline (`hac failover-demo`): each request's round trip at the time its answer
//! arrived, the kill and the takeover.

use super::frame::{
    AREA, Axes, Labels, Swatch, draw_box, draw_frame, draw_legend, draw_note, small,
};
use super::scale::{Scale, linear_ticks, log_ticks_ns, nice_step};
use super::style::{FAILOVER_COLOUR, Rgb, Shape, Stroke};
use super::surface::Surface;
use super::text::Anchor;

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
}

/// Colour of answers from the primary on the timeline.
pub const PRIMARY_COLOUR: Rgb = Rgb(0x94, 0x67, 0xbd);
/// Colour of answers from the backup, and of the takeover line.
pub const BACKUP_COLOUR: Rgb = Rgb(0x2c, 0xa0, 0x2c);

/// Draws the failover timeline: each request's round trip (log scale) at the time its answer
/// arrived, answers from the primary and from the backup in two colours, a dashed line at the
/// kill and one at the takeover.
pub fn draw_failover_timeline(s: &mut dyn Surface, d: &TimelineData) {
    let x_end = d
        .points
        .iter()
        .map(|p| p.at_s)
        .chain(d.kill_s)
        .chain(d.takeover_s)
        .fold(0.0, f64::max);
    let x_max = if x_end > 0.0 {
        let step = nice_step(x_end, 8);
        (x_end / step).ceil() * step
    } else {
        1.0
    };
    let (lo, hi) = d
        .points
        .iter()
        .map(|p| p.rtt_ns.max(1e3))
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (y_min, y_max) = if hi > 0.0 {
        (
            10f64.powf(lo.log10().floor()),
            10f64.powf((hi * 1.0001).log10().ceil()),
        )
    } else {
        (1e6, 1e9)
    };
    let axes = Axes {
        area: AREA,
        x: Scale::Linear {
            min: 0.0,
            max: x_max,
        },
        y: Scale::Log {
            min: y_min,
            max: y_max,
        },
    };
    draw_frame(
        s,
        &axes,
        &linear_ticks(0.0, x_max, 8),
        &log_ticks_ns(y_min, y_max),
        &Labels {
            title: "Failover: client round trip per request",
            x: "time since the client started (s)",
            y: "round trip (log scale)",
        },
    );
    for p in &d.points {
        let (colour, class) = if p.after_kill {
            (BACKUP_COLOUR, "point backup")
        } else {
            (PRIMARY_COLOUR, "point primary")
        };
        s.marker(
            axes.px(p.at_s, p.rtt_ns.max(y_min)),
            Shape::Diamond,
            2.5,
            colour,
            class,
        );
    }
    let mut label_y = AREA.top + 22.0;
    for (at, label, colour) in [
        (d.kill_s, d.kill_label.as_str(), FAILOVER_COLOUR),
        (d.takeover_s, d.event_label.as_str(), BACKUP_COLOUR),
    ] {
        let Some(at) = at else { continue };
        let (px, _) = axes.px(at, y_min);
        s.line(
            (px, AREA.top),
            (px, AREA.bottom),
            Stroke {
                colour,
                width: 1.5,
                dashed: true,
            },
        );
        s.text((px + 6.0, label_y), label, small(Anchor::Start));
        label_y += 14.0;
    }
    draw_box(s, AREA);
    let mut legend = vec![(
        Swatch::Mark(Shape::Diamond, PRIMARY_COLOUR),
        "answered by the primary (checkpointed)".to_string(),
    )];
    if d.points.iter().any(|p| p.after_kill) {
        legend.push((
            Swatch::Mark(Shape::Diamond, BACKUP_COLOUR),
            d.after_label.clone(),
        ));
    }
    if d.kill_s.is_some() {
        legend.push((Swatch::Line(FAILOVER_COLOUR), "kill".to_string()));
    }
    if d.takeover_s.is_some() {
        legend.push((Swatch::Line(BACKUP_COLOUR), d.event_label.clone()));
    }
    draw_legend(s, &legend);
    if d.points.is_empty() {
        draw_note(s, AREA, "no data: no request was answered");
    }
}

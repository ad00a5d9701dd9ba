//! The chart frame shared by every chart: plot area, background, grid, ticks, axis labels,
//! legend row and "no data" note.

use super::scale::{Scale, Tick};
use super::style::{BACKGROUND, GRID, INK, NOTE_FILL, Rgb, Shape, Stroke};
use super::surface::Surface;
use super::text::{Anchor, TextSize, TextStyle, text_width};
use super::{HEIGHT, WIDTH};

/// The plot area, pixels.
#[derive(Clone, Copy, Debug)]
pub(super) struct Area {
    pub(super) left: f64,
    pub(super) top: f64,
    pub(super) right: f64,
    pub(super) bottom: f64,
}

pub(super) const AREA: Area = Area {
    left: 80.0,
    top: 78.0,
    right: WIDTH as f64 - 30.0,
    bottom: HEIGHT as f64 - 62.0,
};

pub(super) struct Axes {
    pub(super) area: Area,
    pub(super) x: Scale,
    pub(super) y: Scale,
}

impl Axes {
    pub(super) fn px(&self, x: f64, y: f64) -> (f64, f64) {
        let a = self.area;
        (
            a.left + self.x.fraction(x) * (a.right - a.left),
            a.bottom - self.y.fraction(y) * (a.bottom - a.top),
        )
    }
}

pub(super) struct Labels<'a> {
    pub(super) title: &'a str,
    pub(super) x: &'a str,
    pub(super) y: &'a str,
}

pub(super) fn small(anchor: Anchor) -> TextStyle {
    TextStyle {
        size: TextSize::Small,
        anchor,
        colour: INK,
    }
}

/// Background, title, grid, ticks and axis labels.
pub(super) fn draw_frame(
    s: &mut dyn Surface,
    axes: &Axes,
    xt: &[Tick],
    yt: &[Tick],
    labels: &Labels<'_>,
) {
    let a = axes.area;
    s.rect(0.0, 0.0, f64::from(WIDTH), f64::from(HEIGHT), BACKGROUND);
    s.text(
        (f64::from(WIDTH) / 2.0, 22.0),
        labels.title,
        TextStyle {
            size: TextSize::Large,
            anchor: Anchor::Middle,
            colour: INK,
        },
    );
    let grid = Stroke::solid(GRID, 1.0);
    let ink = Stroke::solid(INK, 1.0);
    for t in xt {
        let (x, _) = axes.px(t.value, 0.0);
        s.line((x, a.top), (x, a.bottom), grid);
        s.line((x, a.bottom), (x, a.bottom + 5.0), ink);
        s.text((x, a.bottom + 14.0), &t.label, small(Anchor::Middle));
    }
    for t in yt {
        let (_, y) = axes.px(0.0, t.value);
        s.line((a.left, y), (a.right, y), grid);
        s.line((a.left - 5.0, y), (a.left, y), ink);
        s.text((a.left - 9.0, y), &t.label, small(Anchor::End));
    }
    s.text(
        ((a.left + a.right) / 2.0, a.bottom + 36.0),
        labels.x,
        small(Anchor::Middle),
    );
    s.text(
        (a.left - 70.0, a.top - 14.0),
        labels.y,
        small(Anchor::Start),
    );
}

pub(super) fn draw_box(s: &mut dyn Surface, a: Area) {
    let ink = Stroke::solid(INK, 1.0);
    s.line((a.left, a.top), (a.right, a.top), ink);
    s.line((a.right, a.top), (a.right, a.bottom), ink);
    s.line((a.right, a.bottom), (a.left, a.bottom), ink);
    s.line((a.left, a.bottom), (a.left, a.top), ink);
}

/// What a legend entry shows before its label.
pub(super) enum Swatch {
    Line(Rgb),
    Mark(Shape, Rgb),
}

/// One row of legend entries, left to right from the plot's left edge, above the plot.
pub(super) fn draw_legend(s: &mut dyn Surface, entries: &[(Swatch, String)]) {
    let y = 50.0;
    let mut x = AREA.left;
    for (swatch, label) in entries {
        match swatch {
            Swatch::Line(c) => s.line((x, y), (x + 22.0, y), Stroke::solid(*c, 3.0)),
            Swatch::Mark(shape, c) => {
                let at = if *shape == Shape::TriangleDown {
                    (x + 11.0, y + 5.0)
                } else {
                    (x + 11.0, y)
                };
                s.marker(at, *shape, 5.0, *c, "legend");
            }
        }
        s.text((x + 28.0, y), label, small(Anchor::Start));
        x += 28.0 + text_width(label, TextSize::Small) + 24.0;
    }
}

/// A note in the middle of the plot area ("no data: …").
pub(super) fn draw_note(s: &mut dyn Surface, a: Area, note: &str) {
    let w = text_width(note, TextSize::Small) + 24.0;
    let (cx, cy) = ((a.left + a.right) / 2.0, (a.top + a.bottom) / 2.0);
    s.rect(cx - w / 2.0, cy - 14.0, w, 28.0, NOTE_FILL);
    s.text((cx, cy), note, small(Anchor::Middle));
}

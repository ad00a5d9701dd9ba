//! What every chart shares around plotters' chart: the header (title and a legend row above
//! the plot), fonts, the mesh's look, the plot box and the "no data" note.

use plotters::coord::CoordTranslate;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::FONT_FAMILY;
use super::style::{GRID, INK, NOTE_FILL, Rgb, Shape};

/// What a chart's drawing returns: plotters' error of the backend it draws on.
pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Height of the header (title and legend rows), pixels.
const HEADER_PX: u32 = 74;
/// Width of the y label area (the legend rows start at the plot's left edge), pixels.
const Y_LABEL_AREA_PX: u32 = 72;

/// The bundled font at `size` px in the ink colour, its `x` at `h` and its `y` at the middle.
pub(super) fn font(size: u32, h: HPos) -> TextStyle<'static> {
    (FONT_FAMILY, size)
        .into_font()
        .color(&RGBColor::from(INK))
        .pos(Pos::new(h, VPos::Center))
}

/// A stroke of `width` px.
pub(super) fn stroke(c: Rgb, width: u32) -> ShapeStyle {
    RGBColor::from(c).stroke_width(width)
}

/// Draws a marker on `area`: `shape` of radius `r` at `at` (the area's coordinates), filled
/// with `c`.
pub(super) fn marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    shape: Shape,
    r: i32,
    c: Rgb,
) -> DrawResult<DB> {
    area.draw(&(EmptyElement::at(at) + Polygon::new(shape.corners(r), RGBColor::from(c).filled())))
}

/// What a legend entry shows before its label.
pub(super) enum Swatch {
    /// A line, solid or dashed.
    Line(Rgb, bool),
    /// A marker.
    Mark(Shape, Rgb),
}

/// Fills the background, draws the title and the legend rows (left to right, wrapping) in
/// the header; returns the area below it for the chart.
pub(super) fn header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &[(Swatch, String)],
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(HEADER_PX);
    let (w, _) = head.dim_in_pixel();
    head.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, 20),
        font(22, HPos::Center),
    ))?;
    let label_font = font(14, HPos::Left);
    let (left, right) = (14 + Y_LABEL_AREA_PX as i32, w as i32 - 30);
    let (mut x, mut y) = (left, 46);
    for (swatch, label) in legend {
        let (tw, _) = head.estimate_text_size(label, &label_font)?;
        let width = 28 + tw as i32 + 24;
        if x > left && x + width > right {
            (x, y) = (left, y + 18);
        }
        match *swatch {
            Swatch::Line(c, false) => {
                head.draw(&PathElement::new(vec![(x, y), (x + 22, y)], stroke(c, 3)))?
            }
            Swatch::Line(c, true) => head.draw(&DashedPathElement::new(
                vec![(x, y), (x + 22, y)],
                5,
                3,
                stroke(c, 3),
            ))?,
            Swatch::Mark(shape, c) => {
                let tip = if shape == Shape::TriangleDown { 5 } else { 0 };
                marker(&head, (x + 11, y + tip), shape, 5, c)?
            }
        }
        head.draw(&Text::new(label.clone(), (x + 28, y), label_font.clone()))?;
        x += width;
    }
    Ok(body)
}

/// The chart layout every chart uses on the area [`header`] returned.
pub(super) fn builder<'a, 'b, DB: DrawingBackend>(
    body: &'a DrawingArea<DB, Shift>,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(body);
    b.margin_top(6)
        .margin_left(14)
        .margin_right(30)
        .x_label_area_size(56)
        .y_label_area_size(Y_LABEL_AREA_PX);
    b
}

/// The mesh's look: light grid lines at the labelled ticks, no minor lines, ink axes.
pub(super) fn mesh_style<DB, X, Y>(
    m: &mut plotters::chart::MeshStyle<'_, '_, X, Y, DB>,
    x_desc: &str,
    y_desc: &str,
) where
    DB: DrawingBackend,
    X: Ranged,
    Y: Ranged,
{
    m.light_line_style(TRANSPARENT)
        .bold_line_style(stroke(GRID, 1))
        .axis_style(stroke(INK, 1))
        .label_style((FONT_FAMILY, 13).into_font().color(&RGBColor::from(INK)))
        .axis_desc_style((FONT_FAMILY, 14).into_font().color(&RGBColor::from(INK)))
        .x_desc(x_desc)
        .y_desc(y_desc);
}

/// The box around the plot area and, if `note` is set, the note in its middle ("no data: …").
pub(super) fn finish_plot<DB: DrawingBackend>(
    plot: &DrawingArea<DB, Shift>,
    note: Option<&str>,
) -> DrawResult<DB> {
    let (w, h) = plot.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    plot.draw(&Rectangle::new([(0, 0), (w - 1, h - 1)], stroke(INK, 1)))?;
    if let Some(note) = note {
        let f = font(14, HPos::Center);
        let (tw, _) = plot.estimate_text_size(note, &f)?;
        let half = tw as i32 / 2 + 12;
        let (cx, cy) = (w / 2, h / 2);
        plot.draw(&Rectangle::new(
            [(cx - half, cy - 14), (cx + half, cy + 14)],
            RGBColor::from(NOTE_FILL).filled(),
        ))?;
        plot.draw(&Text::new(note.to_string(), (cx, cy), f))?;
    }
    Ok(())
}

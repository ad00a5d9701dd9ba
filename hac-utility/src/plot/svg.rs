//! The SVG surface: the document written as text.

use std::fmt::Write as _;

use super::style::{Rgb, Shape, Stroke};
use super::surface::Surface;
use super::text::{Anchor, TextStyle};

/// An SVG surface: the document as text.
#[derive(Clone, Debug)]
pub struct Svg {
    body: String,
}

fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            _ => s.push(c),
        }
    }
    s
}

impl Svg {
    /// An empty document of `width` × `height` user units.
    pub fn new(width: u32, height: u32) -> Svg {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" font-family=\"monospace\">\n"
        );
        Svg { body }
    }

    /// The finished document.
    pub fn finish(mut self) -> String {
        self.body.push_str("</svg>\n");
        self.body
    }

    fn stroke_attrs(stroke: Stroke) -> String {
        let dash = if stroke.dashed {
            " stroke-dasharray=\"4 4\""
        } else {
            ""
        };
        format!(
            "stroke=\"{}\" stroke-width=\"{}\"{dash}",
            stroke.colour.hex(),
            stroke.width
        )
    }
}

impl Surface for Svg {
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Rgb) {
        let _ = writeln!(
            self.body,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{}\"/>",
            fill.hex()
        );
    }

    fn line(&mut self, from: (f64, f64), to: (f64, f64), stroke: Stroke) {
        let _ = writeln!(
            self.body,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" {}/>",
            from.0,
            from.1,
            to.0,
            to.1,
            Svg::stroke_attrs(stroke)
        );
    }

    fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke, class: &str) {
        let mut pts = String::with_capacity(points.len() * 12);
        for (k, (x, y)) in points.iter().enumerate() {
            if k > 0 {
                pts.push(' ');
            }
            let _ = write!(pts, "{x:.1},{y:.1}");
        }
        let _ = writeln!(
            self.body,
            "<polyline class=\"{}\" fill=\"none\" stroke-linejoin=\"round\" {} points=\"{pts}\"/>",
            escape(class),
            Svg::stroke_attrs(stroke)
        );
    }

    fn marker(&mut self, at: (f64, f64), shape: Shape, r: f64, colour: Rgb, class: &str) {
        let (x, y) = at;
        let d = match shape {
            Shape::TriangleDown => format!(
                "M{:.1},{:.1}L{:.1},{:.1}L{x:.1},{y:.1}Z",
                x - r,
                y - 2.0 * r,
                x + r,
                y - 2.0 * r
            ),
            Shape::Cross => format!(
                "M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}",
                x - r,
                y - r,
                x + r,
                y + r,
                x - r,
                y + r,
                x + r,
                y - r
            ),
            Shape::Diamond => format!(
                "M{x:.1},{:.1}L{:.1},{y:.1}L{x:.1},{:.1}L{:.1},{y:.1}Z",
                y - r,
                x + r,
                y + r,
                x - r
            ),
        };
        let paint = match shape {
            Shape::Cross => format!(
                "fill=\"none\" stroke=\"{}\" stroke-width=\"2\"",
                colour.hex()
            ),
            _ => format!("fill=\"{}\"", colour.hex()),
        };
        let _ = writeln!(
            self.body,
            "<path class=\"{}\" d=\"{d}\" {paint}/>",
            escape(class)
        );
    }

    fn text(&mut self, at: (f64, f64), text: &str, style: TextStyle) {
        let anchor = match style.anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        // Monospace advances ~0.6 em: this size matches the raster's 8 px per character. The
        // baseline sits ~0.35 em below the middle (not every renderer honours
        // `dominant-baseline`).
        let font_size = style.size.char_width() / 0.6;
        let _ = writeln!(
            self.body,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{font_size:.1}\" text-anchor=\"{anchor}\" \
             fill=\"{}\">{}</text>",
            at.0,
            at.1 + 0.35 * font_size,
            style.colour.hex(),
            escape(text)
        );
    }
}

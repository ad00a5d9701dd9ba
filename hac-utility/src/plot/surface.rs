//! The drawing trait both surfaces implement: what a chart may draw.

use super::style::{Rgb, Shape, Stroke};
use super::text::TextStyle;

/// The drawing calls both surfaces implement, in pixel coordinates (origin top left). `class`
/// names the element in SVG (e.g. `"marker commit vf0"`); the raster ignores it.
pub trait Surface {
    /// Filled rectangle.
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Rgb);
    /// Straight line.
    fn line(&mut self, from: (f64, f64), to: (f64, f64), stroke: Stroke);
    /// Connected line segments.
    fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke, class: &str);
    /// A marker of radius `r`.
    fn marker(&mut self, at: (f64, f64), shape: Shape, r: f64, colour: Rgb, class: &str);
    /// One line of text.
    fn text(&mut self, at: (f64, f64), text: &str, style: TextStyle);
}

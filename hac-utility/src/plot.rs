//! The report directory's plots: HAC buffer occupancy per checkpointing VF over time with the
//! checkpoint engine's markers, and the added-delay CDF per class, each as PNG and SVG.
//!
//! Self-contained, with no system font dependency: one drawing trait, [`Surface`], has a raster
//! implementation ([`Raster`]: RGB pixels, encoded with the `png` crate, text drawn with the
//! public-domain 8×8 bitmap glyphs of the `font8x8` crate) and an SVG implementation ([`Svg`]:
//! text written by hand). The charts ([`draw_occupancy`], [`draw_delay_cdf`]) draw through the
//! trait, so the PNG and the SVG of a chart show the same thing. Data flows
//! `RunResult` → [`OccupancyData`] / [`DelayCdfData`] (plain numbers, so tests can build them) →
//! a chart on a surface → bytes → [`write_plots`].
//!
//! Large series are reduced to the pixel grid before drawing: occupancy keeps the first, last,
//! lowest and highest sample of each pixel column (the sawtooth's peaks survive), the CDF keeps
//! [`CDF_POINTS`] quantiles. A long run plots in milliseconds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use font8x8::UnicodeFonts;

use crate::engine::{RunResult, STEP_NS};
use crate::report::{DelayClass, Percentiles, added_delay};

/// Width of every plot, pixels (and SVG user units).
pub const WIDTH: u32 = 960;
/// Height of every plot, pixels (and SVG user units).
pub const HEIGHT: u32 = 540;
/// The files [`write_plots`] writes, in order.
pub const FILES: [&str; 4] = [
    "occupancy.png",
    "occupancy.svg",
    "delay_cdf.png",
    "delay_cdf.svg",
];
/// Points per class on the CDF curve when a class has more frames than that.
pub const CDF_POINTS: usize = 2000;
/// Commit markers drawn one per commit up to this many; beyond it, one per VF and pixel column.
pub const MAX_COMMIT_MARKERS: usize = 20_000;

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Series colour of VF `i` in the occupancy plot (cycled).
pub const VF_COLOURS: [Rgb; 7] = [
    Rgb(0x1f, 0x77, 0xb4),
    Rgb(0xff, 0x7f, 0x0e),
    Rgb(0x2c, 0xa0, 0x2c),
    Rgb(0x94, 0x67, 0xbd),
    Rgb(0x8c, 0x56, 0x4b),
    Rgb(0xe3, 0x77, 0xc2),
    Rgb(0x17, 0xbe, 0xcf),
];
/// Curve colour of the checkpointing class in the delay CDF.
pub const CHECKPOINTING_COLOUR: Rgb = Rgb(0x94, 0x67, 0xbd);
/// Curve colour of the plain class in the delay CDF.
pub const PLAIN_COLOUR: Rgb = Rgb(0x2c, 0xa0, 0x2c);
/// Abort markers.
pub const ABORT_COLOUR: Rgb = Rgb(0xd6, 0x27, 0x28);
/// Failover markers.
pub const FAILOVER_COLOUR: Rgb = Rgb(0, 0, 0);
/// Unprotect markers.
pub const UNPROTECT_COLOUR: Rgb = Rgb(0x7f, 0x7f, 0x7f);
const BACKGROUND: Rgb = Rgb(0xff, 0xff, 0xff);
const INK: Rgb = Rgb(0x22, 0x22, 0x22);
const GRID: Rgb = Rgb(0xe4, 0xe4, 0xe4);
const NOTE_FILL: Rgb = Rgb(0xf6, 0xf6, 0xf6);

/// Colour of VF `vf`'s series.
pub fn vf_colour(vf: usize) -> Rgb {
    VF_COLOURS[vf % VF_COLOURS.len()]
}

/// Where a text's `x` is: its left end, middle or right end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// `x` is the left end.
    Start,
    /// `x` is the middle.
    Middle,
    /// `x` is the right end.
    End,
}

/// Text sizes: the 8×8 glyphs at scale 1 or 2 in the raster (monospace at a matching size in SVG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextSize {
    /// 8 px glyph cells: tick labels, legend, notes.
    Small,
    /// 16 px glyph cells: titles.
    Large,
}

impl TextSize {
    fn scale(self) -> u32 {
        match self {
            TextSize::Small => 1,
            TextSize::Large => 2,
        }
    }
    /// Advance per character, pixels (both surfaces lay text out with it).
    pub fn char_width(self) -> f64 {
        f64::from(8 * self.scale())
    }
}

/// How a text is drawn.
#[derive(Clone, Copy, Debug)]
pub struct TextStyle {
    /// Size.
    pub size: TextSize,
    /// Horizontal anchor; vertically, `y` is the text's middle.
    pub anchor: Anchor,
    /// Colour.
    pub colour: Rgb,
}

/// How a line is drawn.
#[derive(Clone, Copy, Debug)]
pub struct Stroke {
    /// Colour.
    pub colour: Rgb,
    /// Width, pixels.
    pub width: f64,
    /// 4 px dashes with 4 px gaps.
    pub dashed: bool,
}

impl Stroke {
    fn solid(colour: Rgb, width: f64) -> Stroke {
        Stroke {
            colour,
            width,
            dashed: false,
        }
    }
}

/// Marker shapes; a marker's position is its tip (triangle) or centre (the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A filled triangle pointing down at the position (commits).
    TriangleDown,
    /// An ×.
    Cross,
    /// A filled diamond.
    Diamond,
}

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

/// A raster surface: RGB pixels, 8 bits per channel.
#[derive(Clone, Debug)]
pub struct Raster {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Raster {
    /// A white canvas.
    pub fn new(width: u32, height: u32) -> Raster {
        Raster {
            width,
            height,
            pixels: vec![0xff; width as usize * height as usize * 3],
        }
    }

    /// Width, pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height, pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The colour at (x, y), `None` outside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some(Rgb(self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]))
    }

    fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.pixels[i..i + 3].copy_from_slice(&[c.0, c.1, c.2]);
    }

    /// A `w`-pixel square brush centred on (x, y).
    fn stamp(&mut self, x: i64, y: i64, w: i64, c: Rgb) {
        let lo = -(w - 1) / 2;
        for dy in lo..lo + w {
            for dx in lo..lo + w {
                self.put(x + dx, y + dy, c);
            }
        }
    }

    /// Bresenham from `a` to `b`; `dash` carries the dash phase across segments.
    fn segment(&mut self, a: (f64, f64), b: (f64, f64), stroke: Stroke, dash: &mut u32) {
        let w = (stroke.width.round() as i64).max(1);
        let (mut x, mut y) = (a.0.round() as i64, a.1.round() as i64);
        let (x1, y1) = (b.0.round() as i64, b.1.round() as i64);
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            if !stroke.dashed || *dash % 8 < 4 {
                self.stamp(x, y, w, stroke.colour);
            }
            *dash = dash.wrapping_add(1);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// The PNG file.
    pub fn to_png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.pixels)?;
        writer.finish()?;
        Ok(out)
    }
}

/// The glyph of `c` (ASCII, then Latin-1 such as `µ`), or a hollow box.
fn glyph(c: char) -> [u8; 8] {
    font8x8::BASIC_FONTS
        .get(c)
        .or_else(|| font8x8::LATIN_FONTS.get(c))
        .unwrap_or([0x7e, 0x42, 0x42, 0x42, 0x42, 0x42, 0x7e, 0x00])
}

fn text_width(text: &str, size: TextSize) -> f64 {
    text.chars().count() as f64 * size.char_width()
}

fn anchored_left(x: f64, text: &str, style: TextStyle) -> f64 {
    let w = text_width(text, style.size);
    match style.anchor {
        Anchor::Start => x,
        Anchor::Middle => x - w / 2.0,
        Anchor::End => x - w,
    }
}

impl Surface for Raster {
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Rgb) {
        let (x0, y0) = (x.round() as i64, y.round() as i64);
        let (x1, y1) = ((x + w).round() as i64, (y + h).round() as i64);
        for py in y0.max(0)..y1.min(i64::from(self.height)) {
            for px in x0.max(0)..x1.min(i64::from(self.width)) {
                self.put(px, py, fill);
            }
        }
    }

    fn line(&mut self, from: (f64, f64), to: (f64, f64), stroke: Stroke) {
        let mut dash = 0;
        self.segment(from, to, stroke, &mut dash);
    }

    fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke, _class: &str) {
        let mut dash = 0;
        match points {
            [] => {}
            [p] => self.segment(*p, *p, stroke, &mut dash),
            _ => {
                for w in points.windows(2) {
                    self.segment(w[0], w[1], stroke, &mut dash);
                }
            }
        }
    }

    fn marker(&mut self, at: (f64, f64), shape: Shape, r: f64, colour: Rgb, _class: &str) {
        let (x, y) = (at.0.round() as i64, at.1.round() as i64);
        let r = (r.round() as i64).max(1);
        match shape {
            Shape::TriangleDown => {
                let h = 2 * r;
                for row in 0..=h {
                    let half = r * row / h;
                    for dx in -half..=half {
                        self.put(x + dx, y - row, colour);
                    }
                }
            }
            Shape::Cross => {
                let s = Stroke::solid(colour, 2.0);
                let (xf, yf, rf) = (x as f64, y as f64, r as f64);
                self.line((xf - rf, yf - rf), (xf + rf, yf + rf), s);
                self.line((xf - rf, yf + rf), (xf + rf, yf - rf), s);
            }
            Shape::Diamond => {
                for dy in -r..=r {
                    let half = r - dy.abs();
                    for dx in -half..=half {
                        self.put(x + dx, y + dy, colour);
                    }
                }
            }
        }
    }

    fn text(&mut self, at: (f64, f64), text: &str, style: TextStyle) {
        let scale = i64::from(style.size.scale());
        let left = anchored_left(at.0, text, style).round() as i64;
        let top = (at.1 - 4.0 * scale as f64).round() as i64;
        for (k, c) in text.chars().enumerate() {
            let x0 = left + k as i64 * 8 * scale;
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    for sy in 0..scale {
                        for sx in 0..scale {
                            self.put(
                                x0 + col * scale + sx,
                                top + row as i64 * scale + sy,
                                style.colour,
                            );
                        }
                    }
                }
            }
        }
    }
}

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

/// An axis scale: data value → fraction of the axis (0 at the low end).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Linear between `min` and `max`.
    Linear {
        /// Low end.
        min: f64,
        /// High end.
        max: f64,
    },
    /// Logarithmic between `min` and `max` (both > 0); values below `min` sit at the low end.
    Log {
        /// Low end.
        min: f64,
        /// High end.
        max: f64,
    },
}

impl Scale {
    /// Where `v` lies on the axis, 0..=1 (clamped).
    pub fn fraction(&self, v: f64) -> f64 {
        let f = match *self {
            Scale::Linear { min, max } => (v - min) / (max - min),
            Scale::Log { min, max } => (v.max(min).ln() - min.ln()) / (max.ln() - min.ln()),
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// A tick: its value and label.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// Data value.
    pub value: f64,
    /// Label.
    pub label: String,
}

/// A 1, 2 or 5 × 10^k step giving about `target` intervals over `range`.
pub fn nice_step(range: f64, target: usize) -> f64 {
    if !(range.is_finite() && range > 0.0) {
        return 1.0;
    }
    let raw = range / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Ticks at multiples of a nice step within `[min, max]`, labelled with the decimals the step
/// needs.
pub fn linear_ticks(min: f64, max: f64, target: usize) -> Vec<Tick> {
    let step = nice_step(max - min, target);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let first = (min / step).ceil() as i64;
    let last = (max / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| {
            let value = k as f64 * step;
            let label = format!("{:.*}", decimals, value);
            let label = if label.starts_with('-') && value.abs() < step / 2.0 {
                label[1..].to_string()
            } else {
                label
            };
            Tick { value, label }
        })
        .collect()
}

/// A duration in ns as `500 ns`, `20 µs`, `1.5 ms`, `2 s`.
pub fn format_ns(ns: f64) -> String {
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let s = format!("{v:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s} {unit}")
}

/// Decade ticks for a log axis of durations in ns (with 2× and 5× between decades when the axis
/// spans fewer than three decades).
pub fn log_ticks_ns(min: f64, max: f64) -> Vec<Tick> {
    let mut ticks = Vec::new();
    if !(min > 0.0 && max > min) {
        return ticks;
    }
    let fine = max / min < 1000.0;
    let mut decade = 10f64.powf(min.log10().floor());
    while decade <= max * 1.000_001 {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if (m == 1.0 || fine) && v >= min * 0.999_999 && v <= max * 1.000_001 {
                ticks.push(Tick {
                    value: v,
                    label: format_ns(v),
                });
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// The plot area, pixels.
#[derive(Clone, Copy, Debug)]
struct Area {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

const AREA: Area = Area {
    left: 80.0,
    top: 78.0,
    right: WIDTH as f64 - 30.0,
    bottom: HEIGHT as f64 - 62.0,
};

struct Axes {
    area: Area,
    x: Scale,
    y: Scale,
}

impl Axes {
    fn px(&self, x: f64, y: f64) -> (f64, f64) {
        let a = self.area;
        (
            a.left + self.x.fraction(x) * (a.right - a.left),
            a.bottom - self.y.fraction(y) * (a.bottom - a.top),
        )
    }
}

struct Labels<'a> {
    title: &'a str,
    x: &'a str,
    y: &'a str,
}

fn small(anchor: Anchor) -> TextStyle {
    TextStyle {
        size: TextSize::Small,
        anchor,
        colour: INK,
    }
}

/// Background, title, grid, ticks and axis labels.
fn draw_frame(s: &mut dyn Surface, axes: &Axes, xt: &[Tick], yt: &[Tick], labels: &Labels<'_>) {
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

fn draw_box(s: &mut dyn Surface, a: Area) {
    let ink = Stroke::solid(INK, 1.0);
    s.line((a.left, a.top), (a.right, a.top), ink);
    s.line((a.right, a.top), (a.right, a.bottom), ink);
    s.line((a.right, a.bottom), (a.left, a.bottom), ink);
    s.line((a.left, a.bottom), (a.left, a.top), ink);
}

/// What a legend entry shows before its label.
enum Swatch {
    Line(Rgb),
    Mark(Shape, Rgb),
}

/// One row of legend entries, left to right from the plot's left edge, above the plot.
fn draw_legend(s: &mut dyn Surface, entries: &[(Swatch, String)]) {
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
fn draw_note(s: &mut dyn Surface, a: Area, note: &str) {
    let w = text_width(note, TextSize::Small) + 24.0;
    let (cx, cy) = ((a.left + a.right) / 2.0, (a.top + a.bottom) / 2.0);
    s.rect(cx - w / 2.0, cy - 14.0, w, 28.0, NOTE_FILL);
    s.text((cx, cy), note, small(Anchor::Middle));
}

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

/// Draws the delay CDF: the fraction of each class's frames whose added delay is at most x, on
/// a log time axis (plain frames wait microseconds, checkpointing frames an epoch plus the ack).
pub fn draw_delay_cdf(s: &mut dyn Surface, d: &DelayCdfData) {
    // The low end: the decade below each class's 1st percentile of positive delays (a few
    // frames wait 0 ns, and a handful a few ns: neither should stretch the axis); anything
    // smaller sits at the left edge.
    let min_pos = d
        .classes
        .iter()
        .filter_map(|c| {
            let positive = &c.sorted_ns[c.sorted_ns.partition_point(|&v| v == 0)..];
            positive.get(positive.len() / 100).copied()
        })
        .min();
    let max = d
        .classes
        .iter()
        .filter_map(|c| c.sorted_ns.last().copied())
        .max()
        .unwrap_or(0);
    let lo = match min_pos {
        Some(v) => 10f64.powf((v as f64).log10().floor()),
        None => 1e3,
    };
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

/// A titled set of CDF curves (`hac bench`: HAC against sch_plug, per class).
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
    let min_pos = d
        .series
        .iter()
        .filter_map(|c| {
            let v = &c.delays.sorted_ns;
            let positive = &v[v.partition_point(|&x| x == 0)..];
            positive.get(positive.len() / 100).copied()
        })
        .min();
    let max = d
        .series
        .iter()
        .filter_map(|c| c.delays.sorted_ns.last().copied())
        .max()
        .unwrap_or(0);
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

/// Why the plots could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// PNG encoding failed.
    #[error("PNG encoding: {0}")]
    Png(#[from] png::EncodingError),
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

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

/// A chart drawn on both surfaces: (PNG bytes, SVG text).
pub fn render(draw: impl Fn(&mut dyn Surface)) -> Result<(Vec<u8>, String), PlotError> {
    let mut raster = Raster::new(WIDTH, HEIGHT);
    draw(&mut raster);
    let mut svg = Svg::new(WIDTH, HEIGHT);
    draw(&mut svg);
    Ok((raster.to_png()?, svg.finish()))
}

/// Writes [`FILES`] into `dir` (which must exist).
pub fn write_plots(dir: &Path, r: &RunResult) -> Result<(), PlotError> {
    let occupancy = OccupancyData::from_run(r);
    let cdf = DelayCdfData::from_run(r);
    let (occ_png, occ_svg) = render(|s| draw_occupancy(s, &occupancy))?;
    let (cdf_png, cdf_svg) = render(|s| draw_delay_cdf(s, &cdf))?;
    let contents: [&[u8]; 4] = [&occ_png, occ_svg.as_bytes(), &cdf_png, cdf_svg.as_bytes()];
    for (name, bytes) in FILES.iter().zip(contents) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| PlotError::Write { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_and_ticks() {
        assert_eq!(nice_step(100.0, 5), 20.0);
        assert_eq!(nice_step(7.0, 5), 2.0);
        assert_eq!(nice_step(0.0, 5), 1.0);
        let t = linear_ticks(0.0, 1.0, 5);
        let labels: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = linear_ticks(0.0, 2000.0, 8);
        assert_eq!(t.first().map(|t| t.label.as_str()), Some("0"));
        assert_eq!(t.last().map(|t| t.label.as_str()), Some("2000"));
    }

    #[test]
    fn log_ticks_read_as_durations() {
        let labels: Vec<String> = log_ticks_ns(1e3, 1e8)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(
            labels,
            ["1 µs", "10 µs", "100 µs", "1 ms", "10 ms", "100 ms"]
        );
        let labels: Vec<String> = log_ticks_ns(1e4, 1e5)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(labels, ["10 µs", "20 µs", "50 µs", "100 µs"]);
        assert!(log_ticks_ns(0.0, 1.0).is_empty());
    }

    #[test]
    fn downsampling_keeps_extremes_in_order() {
        let pts: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, (i % 10) as f64)).collect();
        let d = downsample_columns(&pts, |x| (x / 100.0).floor() as i64);
        assert!(d.len() <= 40, "{}", d.len());
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(d.iter().any(|p| p.1 == 9.0) && d.iter().any(|p| p.1 == 0.0));
        assert_eq!(d.last(), pts.last());
    }

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

    #[test]
    fn raster_draws_text_in_its_colour() {
        let mut r = Raster::new(40, 20);
        r.text((2.0, 10.0), "Aµ", small(Anchor::Start));
        let inked = (0..40)
            .flat_map(|x| (0..20).map(move |y| (x, y)))
            .filter(|&(x, y)| r.pixel(x, y) == Some(INK))
            .count();
        assert!(inked > 10, "{inked}");
    }
}

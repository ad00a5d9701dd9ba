//! The raster surface: RGB pixels, lines by Bresenham, text from the 8×8 glyphs, PNG output.

use super::style::{Rgb, Shape, Stroke};
use super::surface::Surface;
use super::text::{TextStyle, anchored_left, glyph};

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
        // fdeflate: the plots are flat colour areas, which it packs well at a fraction of the
        // default level's time (the default was a fifth of a whole demo's run time).
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.pixels)?;
        writer.finish()?;
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::frame::small;
    use crate::plot::style::INK;
    use crate::plot::text::Anchor;

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

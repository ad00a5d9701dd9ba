//! Text: anchors, sizes and styles, and the 8×8 bitmap font (`font8x8`) the raster draws with.

use font8x8::UnicodeFonts;

use super::style::Rgb;

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
    pub(super) fn scale(self) -> u32 {
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

/// The glyph of `c` (ASCII, then Latin-1 such as `µ`), or a hollow box.
pub(super) fn glyph(c: char) -> [u8; 8] {
    font8x8::BASIC_FONTS
        .get(c)
        .or_else(|| font8x8::LATIN_FONTS.get(c))
        .unwrap_or([0x7e, 0x42, 0x42, 0x42, 0x42, 0x42, 0x7e, 0x00])
}

pub(super) fn text_width(text: &str, size: TextSize) -> f64 {
    text.chars().count() as f64 * size.char_width()
}

pub(super) fn anchored_left(x: f64, text: &str, style: TextStyle) -> f64 {
    let w = text_width(text, style.size);
    match style.anchor {
        Anchor::Start => x,
        Anchor::Middle => x - w / 2.0,
        Anchor::End => x - w,
    }
}

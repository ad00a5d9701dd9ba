//! Colours and marker shapes: the palette every chart uses.

use plotters::style::RGBColor;

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

impl From<Rgb> for RGBColor {
    fn from(c: Rgb) -> RGBColor {
        RGBColor(c.0, c.1, c.2)
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
/// Text, axes and the commit legend swatch.
pub const INK: Rgb = Rgb(0x22, 0x22, 0x22);
pub(super) const GRID: Rgb = Rgb(0xe4, 0xe4, 0xe4);
pub(super) const NOTE_FILL: Rgb = Rgb(0xf6, 0xf6, 0xf6);

/// Colour of VF `vf`'s series.
pub fn vf_colour(vf: usize) -> Rgb {
    VF_COLOURS[vf % VF_COLOURS.len()]
}

/// Marker shapes, each drawn as one filled polygon (one `<polygon>` element in SVG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A triangle pointing down with its tip at the position (commits).
    TriangleDown,
    /// A diamond centred on the position (abort, failover, unprotect; answered requests).
    Diamond,
}

impl Shape {
    /// The polygon's corners, pixels relative to the position, for a marker of radius `r`.
    pub fn corners(self, r: i32) -> Vec<(i32, i32)> {
        match self {
            Shape::TriangleDown => vec![(-r, -2 * r), (r, -2 * r), (0, 0)],
            Shape::Diamond => vec![(0, -r), (r, 0), (0, r), (-r, 0)],
        }
    }
}

//! Colours, strokes and marker shapes: the palette every chart uses.

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
pub(super) const BACKGROUND: Rgb = Rgb(0xff, 0xff, 0xff);
pub(super) const INK: Rgb = Rgb(0x22, 0x22, 0x22);
pub(super) const GRID: Rgb = Rgb(0xe4, 0xe4, 0xe4);
pub(super) const NOTE_FILL: Rgb = Rgb(0xf6, 0xf6, 0xf6);

/// Colour of VF `vf`'s series.
pub fn vf_colour(vf: usize) -> Rgb {
    VF_COLOURS[vf % VF_COLOURS.len()]
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
    pub(super) fn solid(colour: Rgb, width: f64) -> Stroke {
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

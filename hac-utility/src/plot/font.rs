//! The charts' font, bundled: Liberation Sans Regular (SIL Open Font License 1.1, the licence
//! beside the file in `hac-utility/assets/fonts/`), embedded in the binary and registered once
//! with plotters' `ab_glyph` text renderer. Text is laid out (PNG and SVG) and drawn (PNG) with
//! it; no system font is read. Liberation Sans has the metrics of the common sans-serif faces,
//! so an SVG viewer's own `sans-serif` fits the space the layout left.

use std::sync::OnceLock;

use plotters::style::{FontStyle, register_font};

/// The family name the charts ask for, and the one the bundled font is registered under.
pub const FONT_FAMILY: &str = "sans-serif";

/// The font file's bytes.
pub static FONT_TTF: &[u8] = include_bytes!("../../assets/fonts/LiberationSans-Regular.ttf");

/// Registers the bundled font (once per process); false if plotters refused it.
pub fn register_bundled_font() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, FONT_TTF).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_font_registers() {
        assert!(register_bundled_font());
        assert!(register_bundled_font(), "a second call is a no-op");
    }
}

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
//!
//! Modules, along the library's seams: [`style`] (colours, strokes, markers) and [`text`] (text
//! styles, the bitmap font); the [`surface`] trait and its two implementations [`raster`] (PNG)
//! and [`svg`]; [`scale`] (axis scales and ticks) and `frame` (plot area, grid, legend) shared
//! by the charts; one module per chart — [`occupancy`], [`cdf`], [`timeline`]; [`output`]
//! (render on both surfaces, write the files). Everything public is re-exported here.

pub mod cdf;
mod frame;
pub mod occupancy;
pub mod output;
pub mod raster;
pub mod scale;
pub mod style;
pub mod surface;
pub mod svg;
pub mod text;
pub mod timeline;

pub use cdf::*;
pub use occupancy::*;
pub use output::*;
pub use raster::*;
pub use scale::*;
pub use style::*;
pub use surface::*;
pub use svg::*;
pub use text::*;
pub use timeline::*;

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

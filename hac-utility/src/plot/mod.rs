//! The charts: HAC buffer occupancy per checkpointing VF over time with the checkpoint engine's
//! markers, the added-delay CDF per class (`hac demo` / `hac run`), the delay CDF of any set of
//! series (`hac-lab bench`) and the failover timeline (`hac failover-demo`), each as PNG and SVG.
//!
//! Drawn with `plotters`: every chart implements [`Chart`] (drawing on any plotters backend),
//! and [`render`] draws it once on the bitmap backend (encoded as PNG with the `png` crate) and
//! once on the SVG backend, so both files show the same thing. Text uses the bundled font
//! ([`font`]), never a system font. Data flows `RunResult` → [`OccupancyData`] /
//! [`DelayCdfData`] (plain numbers and HDR histograms, so tests can build them) → a chart →
//! bytes → [`write_plots`].
//!
//! Large series are reduced before drawing: occupancy keeps the first, last, lowest and highest
//! sample of each pixel column (the sawtooth's peaks survive); a CDF is a staircase through its
//! histogram's buckets (at most [`CDF_POINTS`] quantiles). A long run plots in milliseconds.
//!
//! Modules: [`style`] (colours, marker shapes), [`font`] (the bundled font), [`scale`] (nice
//! axis ends, duration labels), `frame` (header with title and legend row, mesh look, "no data"
//! note) shared by the charts; one module per chart — [`occupancy`], [`cdf`], [`timeline`];
//! [`output`] (render on both backends, write the files). Everything public is re-exported here.

pub mod cdf;
pub mod font;
mod frame;
pub mod occupancy;
pub mod output;
pub mod scale;
pub mod style;
pub mod timeline;

pub use cdf::*;
pub use font::*;
pub use occupancy::*;
pub use output::*;
pub use scale::*;
pub use style::*;
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
/// Points per class on the CDF curve when a class's histogram has more buckets than that.
pub const CDF_POINTS: usize = 2000;
/// Commit markers drawn one per commit up to this many; beyond it, one per VF and pixel column.
pub const MAX_COMMIT_MARKERS: usize = 20_000;

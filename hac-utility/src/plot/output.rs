//! Rendering a chart on both surfaces and writing the report directory's plot files.

use std::path::{Path, PathBuf};

use super::cdf::{DelayCdfData, draw_delay_cdf};
use super::occupancy::{OccupancyData, draw_occupancy};
use super::raster::Raster;
use super::surface::Surface;
use super::svg::Svg;
use super::{FILES, HEIGHT, WIDTH};
use crate::engine::RunResult;

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

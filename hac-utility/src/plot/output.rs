//! Rendering a chart on both plotters backends (bitmap → PNG, SVG) and writing the report
//! directory's plot files.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::cdf::DelayCdfData;
use super::font::register_bundled_font;
use super::frame::DrawResult;
use super::occupancy::OccupancyData;
use super::{FILES, HEIGHT, WIDTH};
use crate::engine::RunResult;

/// Why a plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters refused the bundled font.
    #[error("the bundled chart font could not be loaded")]
    Font,
    /// plotters failed to draw.
    #[error("drawing the {backend} chart: {message}")]
    Draw {
        /// `PNG` or `SVG`.
        backend: &'static str,
        /// plotters' error.
        message: String,
    },
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

/// A chart: draws itself on any plotters backend, so the PNG and the SVG show the same thing.
pub trait Chart {
    /// Draws the whole chart on `root` ([`WIDTH`] × [`HEIGHT`]).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// A chart drawn on both backends: (PNG bytes, SVG text).
pub fn render(chart: &impl Chart) -> Result<(Vec<u8>, String), PlotError> {
    if !register_bundled_font() {
        return Err(PlotError::Font);
    }
    let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    draw_on(
        BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)),
        chart,
        "PNG",
    )?;
    let mut svg = String::new();
    draw_on(
        SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)),
        chart,
        "SVG",
    )?;
    Ok((encode_png(&rgb)?, svg))
}

/// Draws `chart` on `backend` and flushes it.
fn draw_on<DB: DrawingBackend>(
    backend: DB,
    chart: &impl Chart,
    name: &'static str,
) -> Result<(), PlotError> {
    let root = backend.into_drawing_area();
    let drawn = chart.draw(&root).and_then(|()| root.present());
    drawn.map_err(|e| PlotError::Draw {
        backend: name,
        message: e.to_string(),
    })
}

/// 8-bit RGB pixels, [`WIDTH`] × [`HEIGHT`], as a PNG file.
fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // fdeflate: the default level (miniz) was a tenth of a 200 ms demo's instructions.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Writes [`FILES`] into `dir` (which must exist).
pub fn write_plots(dir: &Path, r: &RunResult) -> Result<(), PlotError> {
    let (occ_png, occ_svg) = render(&OccupancyData::from_run(r))?;
    let (cdf_png, cdf_svg) = render(&DelayCdfData::from_run(r))?;
    let contents: [&[u8]; 4] = [&occ_png, occ_svg.as_bytes(), &cdf_png, cdf_svg.as_bytes()];
    for (name, bytes) in FILES.iter().zip(contents) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| PlotError::Write { path, source })?;
    }
    Ok(())
}

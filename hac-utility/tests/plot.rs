//! The report plots: PNGs have the expected size in their header and decode with every series'
//! colour present, SVGs are well-formed with their axis titles and legend text and one marker
//! polygon per commit, the CDF is monotone, and runs without checkpointing VFs or frames give a
//! "no data" plot instead of a panic.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use hac_utility::engine::{self, RunResult};
use hac_utility::plot::{
    self, ABORT_COLOUR, BACKUP_COLOUR, CDF_POINTS, CHECKPOINTING_COLOUR, ClassDelays, DelayCdfData,
    FAILOVER_COLOUR, FILES, HEIGHT, MAX_COMMIT_MARKERS, OccupancyData, PLAIN_COLOUR,
    PRIMARY_COLOUR, PlotMarker, Rgb, TimelineData, TimelinePoint, UNPROTECT_COLOUR, VfOccupancy,
    WIDTH,
};
use hac_utility::report::LatencyHistogram;
use hac_utility::scenario::{Event, Scenario};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hac-plot-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The size a PNG's header (its IHDR chunk) declares.
fn png_header_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "IHDR first");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// Decodes a PNG: (width, height, RGB pixels); the header agrees with the decoded size.
fn decode(bytes: &[u8]) -> (u32, u32, Vec<Rgb>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|c| Rgb(c[0], c[1], c[2]))
        .collect();
    assert_eq!(png_header_size(bytes), (info.width, info.height));
    (info.width, info.height, px)
}

fn count(px: &[Rgb], c: Rgb) -> usize {
    px.iter().filter(|&&p| p == c).count()
}

fn colour_is(n: &roxmltree::Node<'_, '_>, attr: &str, c: Rgb) -> bool {
    n.attribute(attr)
        .is_some_and(|v| v.eq_ignore_ascii_case(&c.hex()))
}

/// `<polygon>` elements (markers) filled with `c`.
fn polygons<'a>(doc: &'a roxmltree::Document<'a>, c: Rgb) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("polygon") && colour_is(n, "fill", c))
        .collect()
}

/// `<polyline>` elements of more than two points (curves, not legend swatches, dashes or
/// axis lines) stroked with `c`.
fn curves<'a>(doc: &'a roxmltree::Document<'a>, c: Rgb) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline") && colour_is(n, "stroke", c))
        .filter(|n| points(n).len() > 2)
        .collect()
}

/// Every curve, whatever its colour.
fn all_curves<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline") && points(n).len() > 2)
        .collect()
}

fn points(n: &roxmltree::Node<'_, '_>) -> Vec<(f64, f64)> {
    n.attribute("points")
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

fn texts(doc: &roxmltree::Document<'_>) -> String {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n")
}

fn svg_size_ok(doc: &roxmltree::Document<'_>) {
    let root = doc.root_element();
    assert!(root.has_tag_name("svg"));
    assert_eq!(root.attribute("width"), Some(WIDTH.to_string().as_str()));
    assert_eq!(root.attribute("height"), Some(HEIGHT.to_string().as_str()));
}

fn run(s: &Scenario) -> RunResult {
    engine::run(s, None, &mut |_| {}).unwrap()
}

#[test]
fn plots_of_a_run_show_every_series_and_one_marker_per_commit() {
    let mut s = Scenario::demo(90);
    s.event.push(Event {
        at_ms: 51.0,
        kind: "abort".into(),
        vf: 0,
    });
    s.event.push(Event {
        at_ms: 80.0,
        kind: "backup_lost".into(),
        vf: 1,
    });
    let r = run(&s);
    let dir = temp_dir("run");
    plot::write_plots(&dir, &r).unwrap();
    for f in FILES {
        assert!(dir.join(f).exists(), "{f}");
    }

    // Occupancy PNG: the size, both checkpointing VFs' colours well beyond the legend swatch
    // (22×3 px), and no series for the plain VFs.
    let (w, h, px) = decode(&std::fs::read(dir.join("occupancy.png")).unwrap());
    assert_eq!((w, h), (WIDTH, HEIGHT));
    for vf in [0, 1] {
        let n = count(&px, plot::vf_colour(vf));
        assert!(n > 400, "VF {vf}: {n} pixels of its colour");
    }
    for vf in [2, 3] {
        assert_eq!(count(&px, plot::vf_colour(vf)), 0, "plain VF {vf} plotted");
    }
    // Delay CDF PNG: both classes.
    let (w, h, px) = decode(&std::fs::read(dir.join("delay_cdf.png")).unwrap());
    assert_eq!((w, h), (WIDTH, HEIGHT));
    for (name, c) in [
        ("checkpointing", CHECKPOINTING_COLOUR),
        ("plain", PLAIN_COLOUR),
    ] {
        let n = count(&px, c);
        assert!(n > 400, "{name}: {n} pixels of its colour");
    }

    // Occupancy SVG: one marker polygon per commit in the VF's colour (the legend's commit
    // swatch is ink), one per abort / unprotect besides the legend's, one curve per
    // checkpointing VF; the axis titles and the legend.
    let text = std::fs::read_to_string(dir.join("occupancy.svg")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    svg_size_ok(&doc);
    let commits = r.markers.iter().filter(|m| m.kind == "commit").count();
    assert!(commits >= 4, "{commits} commits");
    let mut drawn = 0;
    for vf in 0..2u8 {
        let n = r
            .markers
            .iter()
            .filter(|m| m.kind == "commit" && m.vf == vf)
            .count();
        let colour = plot::vf_colour(usize::from(vf));
        assert_eq!(polygons(&doc, colour).len(), n, "VF {vf}");
        assert_eq!(curves(&doc, colour).len(), 1, "VF {vf}");
        drawn += n;
    }
    assert_eq!(drawn, commits);
    for (kind, colour) in [("abort", ABORT_COLOUR), ("unprotect", UNPROTECT_COLOUR)] {
        let n = r.markers.iter().filter(|m| m.kind == kind).count();
        assert_eq!(n, 1, "{kind} in the run");
        assert_eq!(polygons(&doc, colour).len(), n + 1, "{kind} and its legend");
    }
    assert_eq!(all_curves(&doc).len(), 2);
    let t = texts(&doc);
    for label in [
        "HAC buffer occupancy per checkpointing VF",
        "virtual time since the run started (ms)",
        "frames held in the adapter",
        "VF 0",
        "VF 1",
        "commit",
        "abort",
        "unprotect",
        "abort VF 0",
    ] {
        assert!(t.contains(label), "{label} in {t}");
    }

    // Delay CDF SVG: one monotone curve per class, from the bottom of the plot to its top.
    let text = std::fs::read_to_string(dir.join("delay_cdf.svg")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    svg_size_ok(&doc);
    for (class, colour) in [
        ("checkpointing", CHECKPOINTING_COLOUR),
        ("plain", PLAIN_COLOUR),
    ] {
        let curves = curves(&doc, colour);
        assert_eq!(curves.len(), 1, "{class}");
        let pts = points(&curves[0]);
        assert!(pts.len() > 10, "{class}: {} points", pts.len());
        for w in pts.windows(2) {
            assert!(w[1].0 >= w[0].0, "{class}: x goes back at {w:?}");
            assert!(w[1].1 <= w[0].1, "{class}: the CDF falls at {w:?}");
        }
        let (first, last) = (pts[0].1, pts[pts.len() - 1].1);
        assert!(
            first - last > 0.6 * f64::from(HEIGHT),
            "{class}: {first} → {last}"
        );
    }
    let t = texts(&doc);
    assert!(!t.contains("no data"));
    let rep = hac_utility::report::build(&r);
    for label in [
        "Added delay (wire - submit) per class, CDF".to_string(),
        "frames with added delay <= x".to_string(),
        "added delay (log scale; smaller delays, 0 included, at the left edge)".to_string(),
        format!(
            "checkpointing: {} frames, p50 {}",
            rep.added_delay_checkpointing.count,
            plot::format_ns(rep.added_delay_checkpointing.p50_ns as f64)
        ),
        format!("plain: {} frames", rep.added_delay_plain.count),
        "100%".to_string(),
    ] {
        assert!(t.contains(&label), "{label} in {t}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_without_checkpointing_vfs_or_frames_gives_no_data_plots() {
    let mut s = Scenario::demo(3);
    s.vf.truncate(1);
    s.vf[0].checkpointing = false;
    s.vf[0].rate_mbps = 0.0;
    let r = run(&s);
    assert!(r.frames.is_empty() && r.markers.is_empty());
    let dir = temp_dir("empty");
    plot::write_plots(&dir, &r).unwrap();
    for (png, svg, note) in [
        (
            "occupancy.png",
            "occupancy.svg",
            "no data: no checkpointing VF in this run",
        ),
        (
            "delay_cdf.png",
            "delay_cdf.svg",
            "no data: no frame left on the wire",
        ),
    ] {
        let (w, h, px) = decode(&std::fs::read(dir.join(png)).unwrap());
        assert_eq!((w, h), (WIDTH, HEIGHT));
        let inked = px.iter().filter(|&&p| p != Rgb(255, 255, 255)).count();
        assert!(inked > 1000, "{png}: {inked} non-white pixels");
        let text = std::fs::read_to_string(dir.join(svg)).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        svg_size_ok(&doc);
        assert!(texts(&doc).contains(note), "{svg}");
        assert!(all_curves(&doc).is_empty(), "{svg}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpointing_vf_without_samples_and_an_empty_class_are_noted() {
    let occupancy = OccupancyData {
        duration_ms: 0.0,
        vfs: vec![VfOccupancy {
            vf: 0,
            samples: vec![],
        }],
        markers: vec![],
    };
    let (png, svg) = plot::render(&occupancy).unwrap();
    assert_eq!(png_header_size(&png), (WIDTH, HEIGHT));
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(texts(&doc).contains("no data: no occupancy samples"));

    let cdf = DelayCdfData {
        classes: [
            ClassDelays::new("checkpointing", vec![]),
            ClassDelays::new("plain", vec![0, 0, 1200, 5000, 5000, 80_000]),
        ],
    };
    let (png, svg) = plot::render(&cdf).unwrap();
    let (_, _, px) = decode(&png);
    assert!(count(&px, PLAIN_COLOUR) > 400);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let t = texts(&doc);
    assert!(t.contains("checkpointing: no frames"), "{t}");
    assert!(!t.contains("no data"), "{t}");
    assert!(curves(&doc, CHECKPOINTING_COLOUR).is_empty());
    assert_eq!(curves(&doc, PLAIN_COLOUR).len(), 1);
}

#[test]
fn cdf_points_never_decrease_and_end_at_one() {
    // Zeros, duplicates, a long tail; below and above the point budget.
    let mut v: Vec<u64> = (0..50_000u64)
        .map(|i| (i * 7919 % 1000) * (i % 13) / 3)
        .collect();
    v.sort_unstable();
    for sample in [&v[..7], &v[..CDF_POINTS], &v[..] as &[u64]] {
        let h: LatencyHistogram = sample.iter().copied().collect();
        let pts = plot::cdf_points(&h, CDF_POINTS);
        assert!(pts.len() <= 2 * CDF_POINTS + 2, "{}", pts.len());
        assert_eq!(pts[0], (sample[0], 0.0));
        assert_eq!(pts.last(), Some(&(sample[sample.len() - 1], 1.0)));
        for w in pts.windows(2) {
            assert!(w[1].0 >= w[0].0 && w[1].1 >= w[0].1, "{w:?}");
        }
    }
    assert!(plot::cdf_points(&LatencyHistogram::new(), CDF_POINTS).is_empty());
    // More buckets than the budget: quantiles, still from the exact minimum to the maximum.
    let wide: LatencyHistogram = (0..20_000u64).map(|i| i * 977).collect();
    let pts = plot::cdf_points(&wide, 100);
    assert_eq!(pts.len(), 101);
    assert_eq!((pts[0], pts[100]), ((0, 0.0), (19_999 * 977, 1.0)));
    assert!(pts.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 > w[0].1));
}

#[test]
fn synthetic_markers_one_element_each_and_thinned_beyond_the_cap() {
    let sawtooth = |vf: usize| VfOccupancy {
        vf,
        samples: (0..1000)
            .map(|t: u32| (f64::from(t), (t % 25) * 40 + vf as u32 * 100))
            .collect(),
    };
    let marker = |at_ms: f64, vf: usize, epoch: u32, kind: &str| PlotMarker {
        at_ms,
        vf,
        epoch,
        kind: kind.into(),
    };
    let mut markers = Vec::new();
    for e in 1..40u32 {
        markers.push(marker(f64::from(e) * 25.0 - 1.0, 0, e, "commit"));
        markers.push(marker(f64::from(e) * 25.0 - 0.5, 3, e, "commit"));
    }
    markers.push(marker(500.0, 0, 20, "abort"));
    markers.push(marker(700.0, 3, 28, "failover"));
    let d = OccupancyData {
        duration_ms: 1000.0,
        vfs: vec![sawtooth(0), sawtooth(3)],
        markers,
    };
    let (png, svg) = plot::render(&d).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let commit_markers =
        polygons(&doc, plot::vf_colour(0)).len() + polygons(&doc, plot::vf_colour(3)).len();
    assert_eq!(commit_markers, 78);
    assert_eq!(polygons(&doc, plot::vf_colour(3)).len(), 39);
    // The marker and the legend's swatch.
    assert_eq!(polygons(&doc, ABORT_COLOUR).len(), 2);
    assert_eq!(polygons(&doc, FAILOVER_COLOUR).len(), 2);
    let (_, _, px) = decode(&png);
    assert!(count(&px, plot::vf_colour(3)) > 400);
    assert!(count(&px, plot::ABORT_COLOUR) > 20);

    // Beyond the cap: at most one commit marker per VF and pixel column, and the legend says so.
    let many = MAX_COMMIT_MARKERS + 1000;
    let d = OccupancyData {
        duration_ms: 1000.0,
        vfs: vec![sawtooth(0)],
        markers: (0..many)
            .map(|k| marker(k as f64 * 1000.0 / many as f64, 0, k as u32, "commit"))
            .collect(),
    };
    let (_, svg) = plot::render(&d).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let n = polygons(&doc, plot::vf_colour(0)).len();
    let (placed, thin) = d.placed_markers(WIDTH);
    assert!(thin && placed.len() <= WIDTH as usize, "{}", placed.len());
    assert!(n > 100 && n <= WIDTH as usize, "{n}");
    assert!(texts(&doc).contains("one per pixel shown"));
}

#[test]
fn failover_timeline_shows_both_servers_the_kill_and_the_takeover() {
    let points: Vec<TimelinePoint> = (0..200)
        .map(|i| {
            let at_s = f64::from(i) * 0.05;
            TimelinePoint {
                at_s,
                rtt_ns: if i < 120 { 22e6 } else { 0.3e6 } + f64::from(i % 7) * 1e5,
                after_kill: i >= 120,
            }
        })
        .collect();
    let d = TimelineData {
        points,
        kill_s: Some(5.9),
        takeover_s: Some(6.2),
        after_label: "answered by the backup".into(),
        event_label: "backup takes over".into(),
        kill_label: "SIGKILL primary".into(),
        rejoin_s: None,
        rejoin_label: String::new(),
    };
    let (png, svg) = plot::render(&d).unwrap();
    let (w, h, px) = decode(&png);
    assert_eq!((w, h), (WIDTH, HEIGHT));
    assert!(count(&px, PRIMARY_COLOUR) > 400 && count(&px, BACKUP_COLOUR) > 400);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    svg_size_ok(&doc);
    // One diamond per answer, plus one legend swatch per server.
    assert_eq!(polygons(&doc, PRIMARY_COLOUR).len(), 121);
    assert_eq!(polygons(&doc, BACKUP_COLOUR).len(), 81);
    let t = texts(&doc);
    for label in [
        "Failover: client round trip per request",
        "time since the client started (s)",
        "round trip (log scale)",
        "answered by the primary (checkpointed)",
        "answered by the backup",
        "backup takes over",
        "SIGKILL primary",
        "kill",
        "10 ms",
    ] {
        assert!(t.contains(label), "{label} in {t}");
    }

    let (png, svg) = plot::render(&TimelineData::default()).unwrap();
    assert_eq!(png_header_size(&png), (WIDTH, HEIGHT));
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(texts(&doc).contains("no data: no request was answered"));
    assert!(!t.contains("new backup joins"));

    // Re-protection: a third dashed line, labelled and in the legend (the label and the
    // legend entry: two texts), the answers unchanged.
    let d = TimelineData {
        rejoin_s: Some(6.5),
        rejoin_label: "new backup joins".into(),
        ..d
    };
    let (_, svg) = plot::render(&d).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let t = texts(&doc);
    assert_eq!(t.matches("new backup joins").count(), 2, "{t}");
    assert_eq!(polygons(&doc, PRIMARY_COLOUR).len(), 121);
}

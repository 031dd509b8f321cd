//! Figures: drawn by plotters as SVG, and rasterised from that same SVG to PNG by resvg with
//! the bundled DejaVu Sans font, so both files look alike on every machine (no system fonts).
//!
//! - [`deletion_figure`]: mean deletion curves (MoRF, LeRF, random).
//! - [`stability_figure`]: seed-to-seed agreement against the sample count.
//! - [`importance_figure`]: per-emotion band importance with error bars, grouped by (dataset,
//!   model): EmoLIME's robustness figure.
//! - [`spectrogram_figure`]: an utterance's log-mel spectrogram with its band weights beside it.
//! - [`layer_feature_figure`]: R^2 of each feature from each hidden state of an encoder.
//! - [`top_features_figure`]: one method's top features per dataset, with intervals.
//! - [`agreement_figure`]: Spearman's rho between every two rankings of the same items.

use crate::error::{Error, Result};
use crate::faithfulness::FaithfulnessSummary;
use crate::robustness::Profile;
use crate::stability::StabilitySummary;
use ndarray::ArrayView2;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// DejaVu Sans (Bitstream Vera license, see `assets/DejaVu-LICENSE`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Colours of successive series.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The band edge at axis position `x` when `x` is a whole band index, else nothing.
fn edge_label(edges_hz: &[f32], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 {
        edges_hz.get(i as usize).map_or(String::new(), |hz| format!("{hz:.0}"))
    } else {
        String::new()
    }
}

/// Viridis at `v` in [0, 1], linear between five of its stops.
fn viridis(v: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = v.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A figure drawn as SVG text.
#[derive(Clone, Debug)]
pub struct Figure {
    /// The SVG document.
    pub svg: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Figure {
    /// The PNG rendering of the SVG (white background).
    pub fn png(&self) -> Result<Vec<u8>> {
        use resvg::{tiny_skia, usvg};
        let mut opt = usvg::Options {
            font_family: "DejaVu Sans".into(),
            ..usvg::Options::default()
        };
        let db = opt.fontdb_mut();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        db.set_serif_family("DejaVu Sans");
        let tree = usvg::Tree::from_str(&self.svg, &opt).map_err(|e| Error::Device(format!("figure: {e}")))?;
        let mut pixmap = tiny_skia::Pixmap::new(self.width, self.height)
            .ok_or_else(|| Error::Device(format!("figure: bad size {}x{}", self.width, self.height)))?;
        pixmap.fill(tiny_skia::Color::WHITE);
        resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
        pixmap
            .encode_png()
            .map_err(|e| Error::Device(format!("figure: png: {e}")))
    }

    /// Writes `STEM.svg` and `STEM.png` (each atomically); returns both paths.
    pub fn save(&self, stem: &Path) -> Result<(PathBuf, PathBuf)> {
        // Appended, not replaced: stems such as `deletion.espeak.cnn` hold dots.
        let name = stem.file_name().unwrap_or_default().to_string_lossy();
        let svg = stem.with_file_name(format!("{name}.svg"));
        let png = stem.with_file_name(format!("{name}.png"));
        crate::output::write_atomic(&svg, self.svg.as_bytes())?;
        crate::output::write_atomic(&png, &self.png()?)?;
        Ok((svg, png))
    }
}

/// Draws with `draw` on a `width` x `height` SVG canvas.
fn figure(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> std::result::Result<(), String>,
) -> Result<Figure> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root).map_err(|e| Error::Device(format!("figure: {e}")))?;
        root.present().map_err(plot_err)?;
    }
    Ok(Figure { svg, width, height })
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Device(format!("figure: {e}"))
}

/// Turns a plotters error into the closure's error type.
fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Mean probability of the explained class against the fraction of bands removed, for MoRF,
/// LeRF and random orders, with the dAUC in the caption.
pub fn deletion_figure(summary: &FaithfulnessSummary, title: &str) -> Result<Figure> {
    figure(640, 420, |root| {
        let caption = format!(
            "{title}: dAUC {:.3} [{:.3}, {:.3}], n = {}",
            summary.dauc_prob.mean, summary.dauc_prob.low, summary.dauc_prob.high, summary.n_utterances
        );
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f32..1f32, 0f32..1f32)
            .map_err(s)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc("fraction of bands removed")
            .y_desc("probability of the explained class")
            .draw()
            .map_err(s)?;
        for (i, o) in summary.orders.iter().enumerate() {
            let color = PALETTE[i];
            let points: Vec<(f32, f32)> = summary
                .fractions
                .iter()
                .zip(&o.mean_prob)
                .map(|(&x, &y)| (x, y as f32))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(s)?
                .label(o.order.name().to_uppercase())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(s)?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(s)?;
        Ok(())
    })
}

/// Mean seed-to-seed Spearman agreement (all classes and the predicted class) and the share
/// of utterance-classes reaching the target, against the sample count (one step per count).
pub fn stability_figure(summary: &StabilitySummary, target: f64, title: &str) -> Result<Figure> {
    figure(640, 420, |root| {
        let counts: Vec<usize> = summary
            .counts
            .iter()
            .filter(|c| c.scope == "all")
            .map(|c| c.n_samples)
            .collect();
        if counts.is_empty() {
            return Err("no sample counts".into());
        }
        // One x position per sample count, labelled with the count.
        let at = |n: usize| counts.iter().position(|&c| c == n).unwrap_or(0) as f64;
        let (lo, hi) = (-0.3, counts.len() as f64 - 0.7);
        let mut chart = ChartBuilder::on(root)
            .caption(format!("{title}: n = {}", summary.n_utterances), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0f64..1.02f64)
            .map_err(s)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_labels(counts.len())
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    counts.get(i as usize).map_or(String::new(), |c| c.to_string())
                } else {
                    String::new()
                }
            })
            .x_desc("samples per explanation")
            .y_desc("agreement across seeds")
            .draw()
            .map_err(s)?;
        chart
            .draw_series(LineSeries::new(
                [(lo, target), (hi, target)],
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(s)?
            .label(format!("target {target}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.4)));
        let series = [
            ("all", false, "mean Spearman, all classes"),
            ("predicted", false, "mean Spearman, predicted class"),
            ("all", true, "share at target, all classes"),
        ];
        for (i, (scope, share, label)) in series.into_iter().enumerate() {
            let color = PALETTE[i];
            let points: Vec<(f64, f64)> = summary
                .counts
                .iter()
                .filter(|c| c.scope == scope)
                .map(|c| (at(c.n_samples), if share { c.share_at_target } else { c.mean_spearman }))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(s)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(s)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(s)?;
        Ok(())
    })
}

/// Per emotion (one panel each), the mean coefficient of every band for each (dataset, model)
/// profile as grouped bars with standard-error whiskers. `band_edges_hz` labels the bands.
pub fn importance_figure(profiles: &[Profile], band_edges_hz: &[f32]) -> Result<Figure> {
    let mut emotions: Vec<&str> = profiles.iter().map(|p| p.emotion.as_str()).collect();
    emotions.sort_unstable();
    emotions.dedup();
    let mut groups: Vec<(String, String)> = profiles.iter().map(|p| (p.dataset.clone(), p.model.clone())).collect();
    groups.sort();
    groups.dedup();
    let n_bands = band_edges_hz.len().saturating_sub(1);
    let panel_h = 260u32;
    // Legend columns as wide as the longest label (about 7 px a character at 13 px), in rows.
    let longest = groups
        .iter()
        .map(|(d, m)| d.chars().count() + m.chars().count() + 1)
        .max();
    let column_w = longest.unwrap_or(0) as i32 * 7 + 30;
    let per_row = (880 / column_w).max(1) as usize;
    let legend_h = 16 + 20 * groups.len().div_ceil(per_row).max(1) as u32;
    let height = legend_h + panel_h * emotions.len().max(1) as u32;
    figure(900, height, |root| {
        if emotions.is_empty() || n_bands == 0 {
            return Err("no profiles to draw".into());
        }
        let (legend, body) = root.split_vertically(legend_h);
        // Legend: one swatch per (dataset, model).
        for (g, (d, m)) in groups.iter().enumerate() {
            let x = 10 + (g % per_row) as i32 * column_w;
            let y = 8 + (g / per_row) as i32 * 20;
            legend
                .draw(&Rectangle::new(
                    [(x, y), (x + 14, y + 14)],
                    PALETTE[g % PALETTE.len()].filled(),
                ))
                .map_err(s)?;
            legend
                .draw(&Text::new(format!("{d}/{m}"), (x + 18, y), ("sans-serif", 13)))
                .map_err(s)?;
        }
        let panels = body.split_evenly((emotions.len(), 1));
        for (panel, emotion) in panels.iter().zip(&emotions) {
            let mine: Vec<&Profile> = profiles.iter().filter(|p| p.emotion == *emotion).collect();
            let (mut lo, mut hi) = (0f64, 0f64);
            for p in &mine {
                for (m, e) in p.mean.iter().zip(&p.std_err) {
                    lo = lo.min(m - e);
                    hi = hi.max(m + e);
                }
            }
            let pad = 0.05 * (hi - lo).max(1e-6);
            let mut chart = ChartBuilder::on(panel)
                .caption(*emotion, ("sans-serif", 15))
                .margin(8)
                .margin_right(28)
                .x_label_area_size(34)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..n_bands as f64, (lo - pad)..(hi + pad))
                .map_err(s)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(TRANSPARENT)
                .x_labels(n_bands + 1)
                .x_label_formatter(&|x| edge_label(band_edges_hz, *x))
                .x_desc("band edges (Hz)")
                .y_desc("mean coefficient")
                .draw()
                .map_err(s)?;
            let n_groups = groups.len().max(1) as f64;
            let width = 0.8 / n_groups;
            for p in &mine {
                let g = groups
                    .iter()
                    .position(|(d, m)| *d == p.dataset && *m == p.model)
                    .unwrap_or(0);
                let color = PALETTE[g % PALETTE.len()];
                for (b, (m, e)) in p.mean.iter().zip(&p.std_err).enumerate() {
                    let x0 = b as f64 + 0.1 + g as f64 * width;
                    chart
                        .draw_series([Rectangle::new([(x0, 0.0), (x0 + width * 0.9, *m)], color.filled())])
                        .map_err(s)?;
                    let xc = x0 + width * 0.45;
                    chart
                        .draw_series([PathElement::new(vec![(xc, m - e), (xc, m + e)], BLACK.stroke_width(1))])
                        .map_err(s)?;
                }
            }
            chart
                .draw_series([PathElement::new(
                    vec![(0.0, 0.0), (n_bands as f64, 0.0)],
                    BLACK.mix(0.6),
                )])
                .map_err(s)?;
        }
        Ok(())
    })
}

/// An utterance's log-mel spectrogram (dB, frames across, mel rows up) with the band weights
/// of one class beside it, each bar level with its band's mel rows.
///
/// # Shapes
/// `mel_power` [M, T], `row_band` [M] (band of each mel row), `coefficients` [B]
pub fn spectrogram_figure(
    mel_power: ArrayView2<f32>,
    row_band: &[u32],
    coefficients: &[f32],
    band_edges_hz: &[f32],
    title: &str,
) -> Result<Figure> {
    let (m, t) = mel_power.dim();
    crate::error::check_shape("row band", &[m], &[row_band.len()])?;
    let db: Vec<f32> = mel_power.iter().map(|&v| 10.0 * (v + 1e-10).log10()).collect();
    let top = db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = top - 80.0;
    figure(900, 420, |root| {
        let (left, right) = root.split_horizontally(620);
        let mut spec = ChartBuilder::on(&left)
            .caption(title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0..t, 0..m)
            .map_err(s)?;
        spec.configure_mesh()
            .disable_mesh()
            .x_desc("frame")
            .y_desc("mel row")
            .draw()
            .map_err(s)?;
        spec.draw_series((0..m).flat_map(|r| {
            let db = &db;
            (0..t).map(move |c| {
                let v = ((db[r * t + c] - floor) / 80.0).clamp(0.0, 1.0) as f64;
                Rectangle::new([(c, r), (c + 1, r + 1)], viridis(v).filled())
            })
        }))
        .map_err(s)?;
        // Band boundaries across the spectrogram.
        for r in 1..m {
            if row_band[r] != row_band[r - 1] {
                spec.draw_series([PathElement::new(vec![(0, r), (t, r)], WHITE.mix(0.8))])
                    .map_err(s)?;
            }
        }
        let lim = coefficients.iter().fold(1e-6f32, |a, &c| a.max(c.abs())) as f64 * 1.1;
        let mut bars = ChartBuilder::on(&right)
            .caption("band weight", ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(-lim..lim, 0..m)
            .map_err(s)?;
        bars.configure_mesh()
            .disable_y_mesh()
            .light_line_style(TRANSPARENT)
            .x_labels(5)
            .y_labels(2)
            .y_label_formatter(&|_| String::new())
            .y_desc("band (lower edge)")
            .x_desc("coefficient")
            .draw()
            .map_err(s)?;
        // Each band's lower edge, written just above the row where it starts.
        for r in 0..m {
            if r == 0 || row_band[r] != row_band[r - 1] {
                if let Some(hz) = band_edges_hz.get(row_band[r] as usize) {
                    bars.draw_series([Text::new(
                        format!("{hz:.0} Hz"),
                        (-lim * 0.97, r + 1),
                        ("sans-serif", 11),
                    )])
                    .map_err(s)?;
                }
                bars.draw_series([PathElement::new(vec![(-lim, r), (lim, r)], BLACK.mix(0.15))])
                    .map_err(s)?;
            }
        }
        for (b, &c) in coefficients.iter().enumerate() {
            let rows: Vec<usize> = (0..m).filter(|&r| row_band[r] as usize == b).collect();
            let (Some(&r0), Some(&r1)) = (rows.first(), rows.last()) else {
                continue;
            };
            let color = if c >= 0.0 { PALETTE[0] } else { PALETTE[3] };
            bars.draw_series([Rectangle::new([(0.0, r0), (c as f64, r1 + 1)], color.filled())])
                .map_err(s)?;
        }
        Ok(())
    })
}

/// A heat-map cell at column `col`, row `row` of a segmented chart: viridis at `v` (clamped to
/// [0, 1]), grey where `v` is not finite.
fn heat_cell(col: usize, row: usize, v: f64) -> Rectangle<(SegmentValue<usize>, SegmentValue<usize>)> {
    let color = if v.is_finite() {
        viridis(v)
    } else {
        RGBColor(200, 200, 200)
    };
    Rectangle::new(
        [
            (SegmentValue::Exact(col), SegmentValue::Exact(row)),
            (SegmentValue::Exact(col + 1), SegmentValue::Exact(row + 1)),
        ],
        color.filled(),
    )
}

/// The layer x feature map: R^2 of each feature (rows, named at the left) from each hidden
/// state (columns, 0 = the transformer's input), viridis from 0 (and below: dark) to 1 (yellow);
/// grey where R^2 is undefined (a constant feature).
///
/// # Shapes
/// `r2` [L + 1, F], `features` [F]
pub fn layer_feature_figure(r2: ArrayView2<f64>, features: &[String], title: &str) -> Result<Figure> {
    let (layers, f) = r2.dim();
    crate::error::check_shape("features", &[f], &[features.len()])?;
    let width = 420 + 28 * layers as u32;
    let height = 120 + 13 * f as u32;
    figure(width.max(640), height, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{title}; colour: R^2 0 (dark) to 1 (yellow)"),
                ("sans-serif", 13),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(330)
            .build_cartesian_2d(
                (0..layers.max(1) - 1).into_segmented(),
                (0..f.max(1) - 1).into_segmented(),
            )
            .map_err(s)?;
        let name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => features.get(f - 1 - i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let layer = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => i.to_string(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(layers)
            .y_labels(f)
            .x_label_formatter(&layer)
            .y_label_formatter(&name)
            .y_label_style(("sans-serif", 10))
            .x_desc("hidden state")
            .draw()
            .map_err(s)?;
        // Feature 0 at the top.
        chart
            .draw_series((0..layers).flat_map(|l| (0..f).map(move |j| heat_cell(l, f - 1 - j, r2[[l, j]]))))
            .map_err(s)?;
        Ok(())
    })
}

/// One ranking's top items for [`top_features_figure`]: the panel title, then per item (most
/// important first) its name, importance and 95 % interval.
pub type TopPanel = (String, Vec<(String, f64, f64, f64)>);

/// One method's top features in each dataset: a panel per dataset (two per row), a bar per
/// feature (most important at the top) with its bootstrap interval as a whisker.
pub fn top_features_figure(panels: &[TopPanel], measure: &str, title: &str) -> Result<Figure> {
    if panels.is_empty() {
        return Err(Error::config("figure", "no ranking to draw"));
    }
    let cols = panels.len().min(2);
    let rows = panels.len().div_ceil(cols);
    let k = panels.iter().map(|p| p.1.len()).max().unwrap_or(1).max(1);
    let (panel_w, panel_h) = (620u32, 70 + 20 * k as u32);
    figure(panel_w * cols as u32, 40 + panel_h * rows as u32, |root| {
        let (head, body) = root.split_vertically(40);
        head.draw(&Text::new(title.to_string(), (10, 12), ("sans-serif", 15)))
            .map_err(s)?;
        for (area, (name, items)) in body.split_evenly((rows, cols)).iter().zip(panels) {
            let lo = items.iter().map(|i| i.2.min(i.1)).fold(0.0f64, f64::min);
            let hi = items.iter().map(|i| i.3.max(i.1)).fold(1e-9f64, f64::max);
            let pad = (hi - lo) * 0.05;
            let n = items.len().max(1);
            let mut chart = ChartBuilder::on(area)
                .caption(name, ("sans-serif", 13))
                .margin(8)
                .x_label_area_size(34)
                .y_label_area_size(290)
                .build_cartesian_2d(lo - pad..hi + pad, (0..n - 1).into_segmented())
                .map_err(s)?;
            let label = |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) => items.get(n - 1 - i).map(|t| t.0.clone()).unwrap_or_default(),
                _ => String::new(),
            };
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n)
                .x_labels(5)
                .y_label_formatter(&label)
                .y_label_style(("sans-serif", 10))
                .x_desc(measure)
                .draw()
                .map_err(s)?;
            for (i, (_, v, l, h)) in items.iter().enumerate() {
                let row = n - 1 - i;
                chart
                    .draw_series([Rectangle::new(
                        [(0.0, SegmentValue::Exact(row)), (*v, SegmentValue::Exact(row + 1))],
                        PALETTE[0].mix(0.75).filled(),
                    )])
                    .map_err(s)?;
                chart
                    .draw_series([PathElement::new(
                        vec![(*l, SegmentValue::CenterOf(row)), (*h, SegmentValue::CenterOf(row))],
                        BLACK.stroke_width(2),
                    )])
                    .map_err(s)?;
            }
        }
        Ok(())
    })
}

/// Spearman's rho between every two rankings (rows and columns: `labels`), viridis from -1
/// (dark) to 1 (yellow) with the value written in each cell; grey where undefined (rankings of
/// different items, such as features against feature groups).
///
/// # Shapes
/// `rho` [R, R], `labels` [R]
pub fn agreement_figure(rho: ArrayView2<f64>, labels: &[String], title: &str) -> Result<Figure> {
    let r = labels.len();
    crate::error::check_shape("rho", &[r, r], rho.shape())?;
    if r == 0 {
        return Err(Error::config("figure", "no ranking to draw"));
    }
    let side = 56 * r as u32;
    figure(side + 260, side + 90, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{title}; colour: rho -1 (dark) to 1 (yellow)"),
                ("sans-serif", 13),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(220)
            .build_cartesian_2d((0..r - 1).into_segmented(), (0..r - 1).into_segmented())
            .map_err(s)?;
        // Columns by number, rows by number and name.
        let number = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => (i + 1).to_string(),
            _ => String::new(),
        };
        let name_y = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => labels
                .get(r - 1 - i)
                .map(|l| format!("{l} ({})", r - i))
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(r)
            .y_labels(r)
            .x_label_formatter(&number)
            .y_label_formatter(&name_y)
            .y_label_style(("sans-serif", 10))
            .draw()
            .map_err(s)?;
        for i in 0..r {
            for j in 0..r {
                let v = rho[[i, j]];
                let row = r - 1 - i;
                chart.draw_series([heat_cell(j, row, (v + 1.0) / 2.0)]).map_err(s)?;
                if v.is_finite() {
                    let ink = if v > 0.3 { BLACK } else { WHITE };
                    chart
                        .draw_series([Text::new(
                            format!("{v:.2}"),
                            (SegmentValue::CenterOf(j), SegmentValue::CenterOf(row)),
                            ("sans-serif", 11).into_font().color(&ink),
                        )])
                        .map_err(s)?;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faithfulness::{DeletionOrder, Interval, OrderSummary};

    #[test]
    fn ranking_figures_render() {
        let panels: Vec<TopPanel> = ["a/permutation", "b/permutation", "c/permutation"]
            .iter()
            .map(|d| {
                let items = (0..4)
                    .map(|i| {
                        (
                            format!("feature{i}"),
                            0.4 - 0.1 * i as f64,
                            0.3 - 0.1 * i as f64,
                            0.5 - 0.1 * i as f64,
                        )
                    })
                    .collect();
                (d.to_string(), items)
            })
            .collect();
        let fig = top_features_figure(&panels, "drop in balanced accuracy", "top features").unwrap();
        assert!(fig.svg.contains("feature3") && fig.svg.contains("c/permutation"));
        assert!(fig.png().unwrap().starts_with(b"\x89PNG"));
        assert!(top_features_figure(&[], "x", "t").is_err());
        let labels: Vec<String> = ["a/p", "b/p", "a/shap"].map(String::from).to_vec();
        let rho = ndarray::array![[1.0, 0.5, f64::NAN], [0.5, 1.0, f64::NAN], [f64::NAN, f64::NAN, 1.0]];
        let fig = agreement_figure(rho.view(), &labels, "agreement").unwrap();
        assert!(fig.svg.contains("0.50") && fig.svg.contains("a/shap"));
        assert!(fig.png().unwrap().starts_with(b"\x89PNG"));
        assert!(agreement_figure(rho.view(), &labels[..2], "agreement").is_err());
    }

    #[test]
    fn layer_feature_figure_renders() {
        let r2 = ndarray::Array2::from_shape_fn((3, 4), |(l, j)| if j == 3 { f64::NAN } else { (l + j) as f64 / 6.0 });
        let names: Vec<String> = (0..4).map(|j| format!("feature{j}")).collect();
        let fig = layer_feature_figure(r2.view(), &names, "map").unwrap();
        assert!(fig.svg.contains("feature2") && fig.svg.contains("hidden state"));
        assert!(fig.png().unwrap().starts_with(b"\x89PNG"));
        assert!(layer_feature_figure(r2.view(), &names[..3], "map").is_err());
    }

    #[test]
    fn deletion_figure_renders_to_svg_and_png() {
        let orders = DeletionOrder::ALL
            .iter()
            .enumerate()
            .map(|(i, &order)| OrderSummary {
                order,
                mean_prob: vec![0.9, 0.5 + 0.1 * i as f64, 0.3],
                mean_drop: vec![0.0, 0.4, 0.6],
                unchanged: vec![1.0, 0.5, 0.2],
            })
            .collect();
        let iv = Interval {
            mean: 0.1,
            low: 0.05,
            high: 0.15,
        };
        let s = FaithfulnessSummary {
            n_utterances: 3,
            n_bands: 4,
            removed: vec![0, 2, 4],
            fractions: vec![0.0, 0.5, 1.0],
            orders,
            dauc_prob: iv,
            dauc_unchanged: iv,
            lerf_gain_prob: iv,
            share_dauc_positive: 1.0,
            bootstrap: 100,
        };
        let f = deletion_figure(&s, "test").unwrap();
        assert!(f.svg.starts_with("<svg") && f.svg.contains("MORF"), "{}", &f.svg[..200]);
        let png = f.png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
        // Width and height from the IHDR chunk.
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((w, h), (640, 420));
    }
}

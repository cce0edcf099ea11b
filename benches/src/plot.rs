//! SVG plots for the report, drawn with plotters' SVG backend.
//!
//! Two kinds, described as data ([`PlotSpec`]) by the experiments and drawn by
//! [`PlotSpec::render`] when the report is written:
//! - [`HBars`]: horizontal bars on a log-scale axis, one per row, with min-max whiskers and
//!   the median printed at the end of each bar (creation and switch costs span five orders of
//!   magnitude, so only a log scale shows them all); the axis is in time
//!   ([`PlotSpec::HBars`]) or in bytes ([`PlotSpec::HBarsBytes`], memory per task);
//! - [`Lines`]: series against a log-scale x axis (working-set size), with vertical markers
//!   (cache sizes) and an optional horizontal reference line (the lecture's 80%).
//!
//! Text is emitted as SVG `<text>` (plotters' default font handling is not compiled in), so
//! no system fonts are needed. Values that cannot be drawn on a log axis (zero, negative,
//! missing) are left out of the drawing and counted in the plot's footnote; the report's
//! tables still show them. Rendering never panics on odd data; it returns an error string.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;
use std::path::Path;

/// One horizontal bar.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    /// Row label (left of the bar).
    pub label: String,
    /// Bar length (median).
    pub value: f64,
    /// Whisker start.
    pub min: f64,
    /// Whisker end.
    pub max: f64,
    /// Colour group (0 = ours, 1 = kernel, 2 = peer...).
    pub group: usize,
    /// Text printed after the bar.
    pub text: String,
}

/// A horizontal log-scale bar chart.
#[derive(Debug, Clone, Serialize)]
pub struct HBars {
    /// Title.
    pub title: String,
    /// Axis description (unit).
    pub axis: String,
    /// Bars, top to bottom.
    pub bars: Vec<Bar>,
    /// Legend for the colour groups.
    pub groups: Vec<String>,
}

/// A point of a line chart: (x, y, y_min, y_max); the min and max draw an error bar.
pub type Point = (f64, f64, f64, f64);

/// One series of a line chart.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// Points.
    pub points: Vec<Point>,
}

/// Lines against a log-scale x axis.
#[derive(Debug, Clone, Serialize)]
pub struct Lines {
    /// Title.
    pub title: String,
    /// x axis description.
    pub x_axis: String,
    /// y axis description.
    pub y_axis: String,
    /// Log-scale y axis (else linear).
    pub log_y: bool,
    /// Format y values as percentages (y in 0..1).
    pub percent_y: bool,
    /// Series.
    pub series: Vec<Series>,
    /// Vertical markers (x, label).
    pub markers: Vec<(f64, String)>,
    /// Horizontal reference line (y, label).
    pub reference: Option<(f64, String)>,
    /// Dashed horizontal lines in a series' colour: (y, series index), e.g. a cost at size 0
    /// that a log-scale x axis cannot show.
    pub levels: Vec<(f64, usize)>,
}

/// A plot to draw.
#[derive(Debug, Clone, Serialize)]
pub enum PlotSpec {
    /// Bars, values in nanoseconds.
    HBars(HBars),
    /// Bars, values in bytes.
    HBarsBytes(HBars),
    /// Lines.
    Lines(Lines),
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Formats an axis value in nanoseconds.
fn fmt_axis_ns(v: f64) -> String {
    crate::stats::fmt_ns(v)
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing: {e:?}")
}

impl PlotSpec {
    /// Draws the plot into an SVG file.
    pub fn render(&self, path: &Path) -> Result<(), String> {
        match self {
            PlotSpec::HBars(b) => render_hbars(b, path, &fmt_axis_ns),
            PlotSpec::HBarsBytes(b) => render_hbars(b, path, &|v| {
                crate::stats::fmt_bytes(v.max(0.0).round() as u64)
            }),
            PlotSpec::Lines(l) => render_lines(l, path),
        }
    }
}

fn footnote(root: &DrawingArea<SVGBackend, Shift>, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    let (_, h) = root.dim_in_pixel();
    root.draw(&Text::new(
        text.to_string(),
        (10, h as i32 - 16),
        ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
    ))
    .map_err(err)
}

fn render_hbars(spec: &HBars, path: &Path, fmt_axis: &dyn Fn(f64) -> String) -> Result<(), String> {
    let drawable: Vec<(usize, &Bar)> = spec
        .bars
        .iter()
        .enumerate()
        .filter(|(_, b)| b.value.is_finite() && b.value > 0.0)
        .collect();
    let skipped: Vec<&str> = spec
        .bars
        .iter()
        .filter(|b| !(b.value.is_finite() && b.value > 0.0))
        .map(|b| b.label.as_str())
        .collect();
    let n = spec.bars.len().max(1);
    let height = 110 + 30 * n as u32 + if spec.groups.is_empty() { 0 } else { 20 };
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let lo = drawable
        .iter()
        .map(|(_, b)| {
            if b.min > 0.0 {
                b.min.min(b.value)
            } else {
                b.value
            }
        })
        .fold(f64::INFINITY, f64::min);
    let hi = drawable
        .iter()
        .map(|(_, b)| b.max.max(b.value))
        .fold(0.0f64, f64::max);
    let (lo, hi) = if drawable.is_empty() {
        (1.0, 10.0)
    } else {
        (
            10f64.powf((lo / 1.5).log10().floor()),
            10f64.powf((hi * 4.0).log10().ceil()),
        )
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(&spec.title, ("sans-serif", 19))
        .margin(12)
        .margin_right(40)
        .margin_bottom(if spec.groups.is_empty() { 30 } else { 50 })
        .x_label_area_size(36)
        .y_label_area_size(300)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(spec.axis.as_str())
        .x_label_formatter(&|v| fmt_axis(*v))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    // Rows top to bottom: bar i occupies y in [n-1-i, n-i].
    let row_y = |i: usize| (n - 1 - i) as f64;
    for (i, b) in &drawable {
        let y = row_y(*i);
        let c = color(b.group);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(lo, y + 0.15), (b.value, y + 0.85)],
                c.mix(0.75).filled(),
            )))
            .map_err(err)?;
        if b.min > 0.0 && b.max > b.min {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(b.min, y + 0.5), (b.max, y + 0.5)],
                    BLACK.stroke_width(2),
                )))
                .map_err(err)?;
        }
        let (tx, ty) = chart.backend_coord(&(b.max.max(b.value), y + 0.5));
        root.draw(&Text::new(
            b.text.clone(),
            (tx + 8, ty),
            TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
    }
    // Row labels, right-aligned against the y axis (drawn in pixels on the root area).
    for (i, b) in spec.bars.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(lo, row_y(i) + 0.5));
        root.draw(&Text::new(
            b.label.clone(),
            (px - 8, py),
            TextStyle::from(("sans-serif", 13).into_font())
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(err)?;
    }
    let mut note = String::new();
    if !spec.groups.is_empty() {
        let (w, h) = root.dim_in_pixel();
        let y = h as i32 - 40;
        let mut x = 310;
        for (g, name) in spec.groups.iter().enumerate() {
            root.draw(&Rectangle::new(
                [(x, y), (x + 14, y + 12)],
                color(g).mix(0.75).filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(name.clone(), (x + 20, y), ("sans-serif", 13)))
                .map_err(err)?;
            x += 30 + 8 * name.len() as i32;
            if x > w as i32 - 100 {
                break;
            }
        }
    }
    if !skipped.is_empty() {
        note = format!("Not drawn (no measurement): {}", skipped.join(", "));
    }
    footnote(&root, &note)?;
    root.present().map_err(err)
}

/// Tick positions for a byte axis: powers of four from 1 KiB (1 KiB, 4 KiB, 16 KiB...) within
/// the range, or powers of two when the range is narrow.
fn size_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let powers = |step: f64| -> Vec<f64> {
        let mut v = Vec::new();
        let mut x = 1.0f64;
        while x <= hi {
            if x >= lo {
                v.push(x);
            }
            x *= step;
        }
        v
    };
    let four = powers(4.0);
    if four.len() >= 3 {
        four
    } else {
        powers(2.0)
    }
}

fn line_builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'static, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 19))
        .margin(14)
        .margin_bottom(34)
        .x_label_area_size(40)
        .y_label_area_size(80);
    b
}

fn render_lines(spec: &Lines, path: &Path) -> Result<(), String> {
    let ok = |v: f64| v.is_finite() && (!spec.log_y || v > 0.0);
    let mut skipped = 0usize;
    let series: Vec<(String, Vec<Point>)> = spec
        .series
        .iter()
        .map(|s| {
            let pts: Vec<_> = s
                .points
                .iter()
                .copied()
                .filter(|p| {
                    // x = 0 cannot sit on a log axis; such points are expected (drawn as
                    // `levels` when wanted) and not counted as skipped.
                    let keep = p.0 > 0.0 && ok(p.1);
                    if !keep && p.0 > 0.0 {
                        skipped += 1;
                    }
                    keep
                })
                .collect();
            (s.name.clone(), pts)
        })
        .collect();
    let all: Vec<&Point> = series.iter().flat_map(|(_, p)| p.iter()).collect();
    let xmin = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let xmax = all.iter().map(|p| p.0).fold(0.0f64, f64::max);
    let (xlo, xhi) = if all.is_empty() {
        (1.0, 10.0)
    } else {
        (xmin / 1.6, xmax * 1.6)
    };
    let ylo_raw = all
        .iter()
        .map(|p| if ok(p.2) { p.2.min(p.1) } else { p.1 })
        .fold(f64::INFINITY, f64::min);
    let yhi_raw = all
        .iter()
        .map(|p| if p.3.is_finite() { p.3.max(p.1) } else { p.1 })
        .fold(f64::NEG_INFINITY, f64::max);
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let fmt_y = |v: &f64| -> String {
        if spec.percent_y {
            format!("{:.0}%", v * 100.0)
        } else {
            fmt_axis_ns(*v)
        }
    };
    let fmt_x = |v: &f64| crate::stats::fmt_bytes(*v as u64);
    macro_rules! finish {
        ($chart:expr, $ylo:expr, $yhi:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(spec.x_axis.as_str())
                .y_desc(spec.y_axis.as_str())
                .x_label_formatter(&fmt_x)
                .y_label_formatter(&fmt_y)
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(err)?;
            for (x, label) in &spec.markers {
                if *x < xlo || *x > xhi {
                    continue;
                }
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(*x, $ylo), (*x, $yhi)],
                        6,
                        4,
                        RGBColor(120, 120, 120).stroke_width(1),
                    ))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        label.clone(),
                        // Cost plots (legend upper left) label markers near the bottom;
                        // share plots (legend lower right) near the top.
                        (*x * 1.04, if spec.percent_y { $yhi } else { $ylo * 2.0 }),
                        ("sans-serif", 12).into_font().color(&RGBColor(80, 80, 80)),
                    )))
                    .map_err(err)?;
            }
            for (y, i) in &spec.levels {
                if !ok(*y) || *y < $ylo || *y > $yhi {
                    continue;
                }
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(xlo, *y), (xhi, *y)],
                        3,
                        5,
                        color(*i).stroke_width(1),
                    ))
                    .map_err(err)?;
            }
            if let Some((y, label)) = &spec.reference {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(xlo, *y), (xhi, *y)],
                        8,
                        4,
                        RGBColor(200, 0, 0).stroke_width(1),
                    ))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        label.clone(),
                        (xlo * 1.1, *y),
                        ("sans-serif", 12).into_font().color(&RGBColor(200, 0, 0)),
                    )))
                    .map_err(err)?;
            }
            for (i, (name, pts)) in series.iter().enumerate() {
                let c = color(i);
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (p.0, p.1)),
                        c.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, c.filled())))
                    .map_err(err)?;
                chart
                    .draw_series(
                        pts.iter()
                            .filter(|p| ok(p.2) && p.3.is_finite() && p.3 > p.2)
                            .map(|p| {
                                ErrorBar::new_vertical(
                                    p.0,
                                    p.2.max($ylo),
                                    p.1,
                                    p.3.min($yhi),
                                    c.stroke_width(1),
                                    6,
                                )
                            }),
                    )
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .position(if spec.percent_y {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperLeft
                })
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(err)?;
        }};
    }
    if spec.log_y {
        let (ylo, yhi) = if all.is_empty() {
            (1.0, 10.0)
        } else {
            (
                10f64.powf((ylo_raw.max(1e-3) / 1.2).log10().floor()),
                10f64.powf((yhi_raw * 1.5).log10().ceil()),
            )
        };
        let chart = line_builder(&root, &spec.title)
            .build_cartesian_2d(
                (xlo..xhi).log_scale().with_key_points(size_ticks(xlo, xhi)),
                (ylo..yhi).log_scale(),
            )
            .map_err(err)?;
        finish!(chart, ylo, yhi);
    } else {
        // Percentages: the axis follows the medians (whiskers beyond it are clipped), so one
        // noisy repetition cannot squash the curves.
        let ylo_med = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let mut ylo = if all.is_empty() {
            0.0
        } else if spec.percent_y {
            ylo_med.min(0.0)
        } else {
            ylo_raw.min(0.0)
        };
        let mut yhi = if all.is_empty() { 1.0 } else { yhi_raw };
        if let Some((y, _)) = &spec.reference {
            ylo = ylo.min(*y);
            yhi = yhi.max(*y);
        }
        if spec.percent_y {
            yhi = yhi.max(1.0);
        }
        let pad = (yhi - ylo).abs().max(1e-9) * 0.08;
        let (ylo, yhi) = (ylo - if ylo < 0.0 { pad } else { 0.0 }, yhi + pad);
        let chart = line_builder(&root, &spec.title)
            .build_cartesian_2d(
                (xlo..xhi).log_scale().with_key_points(size_ticks(xlo, xhi)),
                ylo..yhi,
            )
            .map_err(err)?;
        finish!(chart, ylo, yhi);
    }
    if skipped > 0 {
        footnote(
            &root,
            &format!("{skipped} point(s) not drawn (zero size, missing, or not positive on a log axis); see the table."),
        )?;
    }
    root.present().map_err(err)
}

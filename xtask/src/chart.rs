//! Line charts as SVG, drawn with `plotters` (its SVG backend only, no fonts: the viewer
//! lays out the text): the benchmark's growth chart (`cargo xtask bench`) and the soak's
//! memory and p99 charts (`cargo xtask soak`). What is ours: the look shared by every
//! chart (title, grid, points on each line, a legend top left).

use std::fmt::Display;
use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

/// One panel of an SVG document.
pub(crate) type Panel<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// One axis of a [`line_chart`]: its caption, its coordinates (a range, or a range made
/// logarithmic with plotters' `log_scale`), where its ticks go and how one is labelled.
pub(crate) struct Axis<'a, R> {
    pub label: &'a str,
    pub range: R,
    pub ticks: Vec<f64>,
    pub format: &'a dyn Fn(&f64) -> String,
}

/// Coordinates with the ticks an [`Axis`] gives. Plotters' own `WithKeyPoints` does the
/// same but keeps the inner coordinates' label format, and a linear `f64` range has none
/// (plotters then refuses to draw its mesh); the labels here always come from the axis'
/// `format`.
struct Ticks<R>(R, Vec<f64>);

impl<R: Ranged<ValueType = f64>> Ranged for Ticks<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn range(&self) -> Range<f64> {
        self.0.range()
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.0.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.1.clone()
        }
    }

    fn axis_pixel_range(&self, limit: (i32, i32)) -> Range<i32> {
        self.0.axis_pixel_range(limit)
    }
}

/// One line of a [`line_chart`].
pub(crate) struct Series<'a> {
    pub label: &'a str,
    pub colour: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// An SVG document of `width` × `panels · panel_height` on a white ground, its panels
/// stacked top to bottom and each drawn by `draw`.
pub(crate) fn svg(
    (width, panel_height): (u32, u32),
    panels: usize,
    draw: impl FnOnce(&[Panel<'_>]) -> Result<(), String>,
) -> Result<String, String> {
    let mut out = String::new();
    {
        let height = panel_height.saturating_mul(u32::try_from(panels).unwrap_or(1));
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        draw(&root.split_evenly((panels, 1)))?;
        root.present().map_err(failed)?;
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// A line chart with points, grid, axis captions and a legend, drawn on `panel`.
pub(crate) fn line_chart<X, Y>(
    panel: &Panel<'_>,
    title: &str,
    x: Axis<'_, X>,
    y: Axis<'_, Y>,
    series: &[Series<'_>],
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64>,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64>,
{
    let mut chart = ChartBuilder::on(panel)
        .caption(title, ("sans-serif", 14))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            Ticks::<X::CoordDescType>(x.range.into(), x.ticks),
            Ticks::<Y::CoordDescType>(y.range.into(), y.ticks),
        )
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc(x.label)
        .y_desc(y.label)
        .x_label_formatter(x.format)
        .y_label_formatter(y.format)
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .light_line_style(TRANSPARENT)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(failed)?;
    for line in series {
        let colour = line.colour;
        chart
            .draw_series(
                LineSeries::new(line.points.iter().copied(), colour.stroke_width(2)).point_size(3),
            )
            .map_err(failed)?
            .label(line.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0x33, 0x33, 0x33))
        .draw()
        .map_err(failed)
}

/// A colour of the d3 / matplotlib category palette, by index (wrapping).
pub(crate) fn palette(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 7] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
    ];
    COLOURS.get(i % COLOURS.len()).copied().unwrap_or(BLACK)
}

fn failed(e: impl Display) -> String {
    format!("could not draw the chart: {e}")
}

//! Line charts as SVG, drawn by hand with `std::fmt::Write`: the benchmark's growth chart
//! (`cargo xtask bench`) and the soak's memory and p99 charts (`cargo xtask soak`). xtask
//! stays on the standard library, so no charting crate is pulled in for two charts.

use std::fmt::Write as _;

/// One axis of a [`line_chart`]: its range (in log10 units when `log`) and its ticks.
pub(crate) struct Axis {
    pub label: String,
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// Where `v` falls between `lo` (0) and `hi` (1).
    fn fraction(&self, v: f64) -> f64 {
        let v = if self.log { v.log10() } else { v };
        (v - self.lo) / (self.hi - self.lo)
    }
}

/// One line of a [`line_chart`].
pub(crate) struct Series<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// The opening of an SVG document of `w` × `h` on a white ground; close it with `</svg>`.
pub(crate) fn svg_open(w: f64, h: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    s
}

/// A line chart with points, grid, axis labels and a legend, drawn into `s` in the box
/// `(x0, y0, w, h)`.
pub(crate) fn line_chart(
    s: &mut String,
    (x0, y0, w, h): (f64, f64, f64, f64),
    title: &str,
    x: &Axis,
    y: &Axis,
    series: &[Series<'_>],
) {
    let (left, right, top, bottom) = (x0 + 80.0, 20.0, y0 + 40.0, 60.0);
    let bottom_edge = y0 + h - bottom;
    let px = |v: f64| left + x.fraction(v) * (x0 + w - left - right);
    let py = |v: f64| top + (1.0 - y.fraction(v)) * (bottom_edge - top);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">{title}</text>"#,
        x0 + w / 2.0,
        y0 + 22.0
    );
    for (v, label) in &x.ticks {
        let xv = px(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{xv:.1}" y1="{top}" x2="{xv:.1}" y2="{bottom_edge:.1}" stroke="#ddd"/><text x="{xv:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            bottom_edge + 16.0,
        );
    }
    for (v, label) in &y.ticks {
        let yv = py(*v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yv:.1}" x2="{:.1}" y2="{yv:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            x0 + w - right,
            left - 6.0,
            yv + 4.0,
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        x0 + w - left - right,
        bottom_edge - top
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        left + (x0 + w - left - right) / 2.0,
        y0 + h - 20.0,
        x.label
    );
    let mid = top + (bottom_edge - top) / 2.0;
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 {:.1} {mid:.1})">{}</text>"#,
        x0 + 18.0,
        x0 + 18.0,
        y.label
    );
    for (i, line) in series.iter().enumerate() {
        let (colour, label, ly) = (line.colour, line.label, 18.0 * i as f64);
        let path: Vec<String> = line
            .points
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", px(*a), py(*b)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (a, b) in &line.points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"/>"#,
                px(*a),
                py(*b)
            );
        }
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            left + 10.0,
            top + 14.0 + ly,
            left + 30.0,
            top + 14.0 + ly,
            left + 36.0,
            top + 18.0 + ly
        );
    }
}

//! The weekly trend chart, drawn on the server as inline SVG (no script): bars
//! for late minutes, a line for non-work minutes, one column per week.

use jiff::civil::Date;
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of `(monday, late minutes, non-work minutes)` weeks; scales to its
/// container's width (viewBox).
pub fn trend(weeks: &[(Date, u64, u64)], late_label: &str, nonwork_label: &str) -> String {
    const W: f64 = 640.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 44.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 28.0;
    const BOTTOM: f64 = 36.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max = weeks
        .iter()
        .map(|(_, l, n)| (*l).max(*n))
        .max()
        .unwrap_or(0)
        .max(1);
    // A round top for the axis: 1, 2 or 5 times a power of ten.
    let mut top = 1u64;
    while top < max {
        top = match top.to_string().chars().next() {
            Some('1') => top * 2,
            Some('2') => top / 2 * 5,
            _ => top * 2,
        };
    }
    let y = |v: u64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" xmlns="http://www.w3.org/2000/svg" aria-label="{}">"#,
        esc(&format!("{late_label} / {nonwork_label}"))
    );
    for i in 0..=4 {
        let v = top * i / 4;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" fill="#555">{v}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            yy + 3.0
        );
    }
    let n = weeks.len().max(1) as f64;
    let col = plot_w / n;
    let bar = (col * 0.5).min(40.0);
    let mut points = Vec::new();
    for (i, (monday, late, nonwork)) in weeks.iter().enumerate() {
        let cx = LEFT + col * (i as f64 + 0.5);
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="#e67e22"><title>{} {}: {late}</title></rect>"##,
            cx - bar / 2.0,
            y(*late),
            TOP + plot_h - y(*late),
            monday,
            esc(late_label)
        );
        let _ = write!(
            s,
            r##"<text x="{cx:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#555">{}</text>"##,
            H - BOTTOM + 14.0,
            monday.strftime("%m-%d")
        );
        points.push((cx, y(*nonwork), *nonwork, *monday));
    }
    if !points.is_empty() {
        let path: Vec<String> = points
            .iter()
            .map(|(x, y, _, _)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#2c6fbb" stroke-width="2"/>"##,
            path.join(" ")
        );
        for (x, yy, v, monday) in &points {
            let _ = write!(
                s,
                r##"<circle cx="{x:.1}" cy="{yy:.1}" r="3" fill="#2c6fbb"><title>{monday} {}: {v}</title></circle>"##,
                esc(nonwork_label)
            );
        }
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="6" width="10" height="10" fill="#e67e22"/><text x="{:.1}" y="15" font-size="11">{}</text><rect x="{:.1}" y="6" width="10" height="10" fill="#2c6fbb"/><text x="{:.1}" y="15" font-size="11">{}</text></svg>"##,
        LEFT + 14.0,
        esc(late_label),
        LEFT + 170.0,
        LEFT + 184.0,
        esc(nonwork_label)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_and_a_point_per_week() {
        let d: Date = "2026-11-23".parse().unwrap();
        let svg = trend(&[(d, 11, 40), (d, 0, 5)], "late <", "nonwork");
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("late &lt;"));
        assert!(trend(&[], "a", "b").contains("</svg>"));
    }
}

//! Pictures drawn on the server as inline SVG (no script, nothing fetched): the
//! weekly trend chart (bars for late minutes, a line for non-work minutes), a
//! person's day as a timeline (office hours shaded, a bar per PC of what it was
//! doing, the categories in use, arrival and departure marked, exemptions
//! hatched) and the small bar of each day in the month calendar.

use crate::attendance::timeline::{DayTimeline, PcState};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
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

/// The colour of a PC state.
pub fn state_colour(state: PcState) -> &'static str {
    match state {
        PcState::InUse => "#2e8b57",
        PcState::LockedOrIdle => "#e0b000",
        PcState::NobodyLoggedOn => "#b0bec5",
        PcState::Off => "#78909c",
        PcState::NotRunning => "#e57373",
    }
}

/// The colour of a category in use (work and other are not drawn).
pub fn category_colour(category: &str) -> Option<&'static str> {
    match category {
        "work" | "other" => None,
        "chat" => Some("#8e44ad"),
        "games" => Some("#c0392b"),
        "media" => Some("#d35400"),
        "downloads" => Some("#16a085"),
        "nonwork_web" => Some("#2980b9"),
        _ => Some("#7f8c8d"),
    }
}

/// About how wide `text` is at font size 10 (CJK characters are wider).
fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| if c.is_ascii() { 6.5 } else { 11.0 })
        .sum()
}

/// Words a day picture needs, in the page's language.
pub struct DayWords<'a> {
    pub office: &'a str,
    pub arrival: &'a str,
    pub departure: &'a str,
    pub exempt: &'a str,
    pub now: &'a str,
    /// A PC state in words.
    pub state: &'a dyn Fn(PcState) -> String,
    /// A category in words.
    pub category: &'a dyn Fn(&str) -> String,
    /// How people know a PC (its hostname).
    pub pc: &'a dyn Fn(&str) -> String,
}

/// The day of `t` as a timeline, times in `tz`; scales to its container's width.
pub fn day_timeline(t: &DayTimeline, tz: &TimeZone, words: &DayWords<'_>) -> String {
    const W: f64 = 760.0;
    const LEFT: f64 = 120.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 22.0;
    const LANE: f64 = 30.0;
    const BAR: f64 = 16.0;
    let lanes = t.lanes.len().max(1) as f64;
    let plot_h = LANE * lanes;
    let legend_y = TOP + plot_h + 26.0;
    let h = legend_y + 34.0;
    let (t0, t1) = (t.shown.start.as_millisecond(), t.shown.end.as_millisecond());
    let span = (t1 - t0).max(1) as f64;
    let x = |at: Timestamp| {
        LEFT + ((at.as_millisecond().clamp(t0, t1) - t0) as f64 / span) * (W - LEFT - RIGHT)
    };
    let hm = |at: Timestamp| tz.to_datetime(at).strftime("%H:%M").to_string();
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="day-timeline" viewBox="0 0 {W} {h:.0}" role="img" xmlns="http://www.w3.org/2000/svg" aria-label="{}"><defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#555" stroke-width="1.5"/></pattern></defs>"##,
        esc(words.office)
    );
    // Office hours shaded behind the lanes.
    for o in &t.office {
        let _ = write!(
            s,
            r##"<rect class="office" x="{:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#eef3fb"><title>{} {}–{}</title></rect>"##,
            x(o.start),
            x(o.end) - x(o.start),
            esc(words.office),
            hm(o.start),
            hm(o.end)
        );
    }
    // Hour ticks.
    let mut hour = tz
        .to_datetime(t.shown.start)
        .round(
            jiff::civil::DateTimeRound::new()
                .smallest(jiff::Unit::Hour)
                .mode(jiff::RoundMode::Ceil),
        )
        .ok()
        .and_then(|dt| tz.to_ambiguous_timestamp(dt).compatible().ok());
    while let Some(at) = hour.filter(|at| *at <= t.shown.end) {
        let xx = x(at);
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{xx:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#555">{}</text>"##,
            TOP + plot_h,
            TOP - 6.0,
            tz.to_datetime(at).strftime("%H")
        );
        hour = at.checked_add(jiff::SignedDuration::from_hours(1)).ok();
    }
    for (i, lane) in t.lanes.iter().enumerate() {
        let y = TOP + LANE * i as f64 + 4.0;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + BAR / 2.0 + 4.0,
            esc(&(words.pc)(&lane.pc))
        );
        for (span, state) in &lane.states {
            let _ = write!(
                s,
                r##"<rect class="state {}" x="{:.1}" y="{y:.1}" width="{:.1}" height="{BAR}" fill="{}"><title>{} {}–{}</title></rect>"##,
                serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                x(span.start),
                (x(span.end) - x(span.start)).max(0.5),
                state_colour(*state),
                esc(&(words.state)(*state)),
                hm(span.start),
                hm(span.end)
            );
        }
        for (span, category) in &lane.usage {
            let Some(colour) = category_colour(category) else {
                continue;
            };
            let _ = write!(
                s,
                r##"<rect class="usage cat-{}" x="{:.1}" y="{:.1}" width="{:.1}" height="5" fill="{colour}"><title>{} {}–{}</title></rect>"##,
                esc(category),
                x(span.start),
                y + BAR + 1.0,
                (x(span.end) - x(span.start)).max(1.0),
                esc(&(words.category)(category)),
                hm(span.start),
                hm(span.end)
            );
        }
    }
    for (span, kind) in &t.exempt {
        let _ = write!(
            s,
            r##"<rect class="exempt" x="{:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="url(#hatch)" opacity="0.35"><title>{} ({}) {}–{}</title></rect>"##,
            x(span.start),
            x(span.end) - x(span.start),
            esc(words.exempt),
            kind.as_str(),
            hm(span.start),
            hm(span.end)
        );
    }
    for (at, label, colour) in [
        (t.arrival, words.arrival, "#1b5e20"),
        (t.departure, words.departure, "#b71c1c"),
    ] {
        if let Some(at) = at {
            let xx = x(at);
            let _ = write!(
                s,
                r##"<line class="mark" x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/><text x="{xx:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="{colour}">{} {}</text>"##,
                TOP - 2.0,
                TOP + plot_h + 2.0,
                TOP + plot_h + 13.0,
                esc(label),
                hm(at)
            );
        }
    }
    if t.now < t.shown.end {
        let xx = x(t.now);
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#333" stroke-dasharray="3,3"><title>{}</title></line>"##,
            TOP + plot_h,
            esc(words.now)
        );
    }
    // The legend: states, then categories.
    let mut lx = LEFT;
    let states = [
        PcState::InUse,
        PcState::LockedOrIdle,
        PcState::NobodyLoggedOn,
        PcState::Off,
        PcState::NotRunning,
    ];
    for st in states {
        let label = (words.state)(st);
        let _ = write!(
            s,
            r##"<rect x="{lx:.1}" y="{legend_y:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"##,
            state_colour(st),
            lx + 13.0,
            legend_y + 9.0,
            esc(&label)
        );
        lx += 22.0 + text_width(&label);
    }
    let mut lx = LEFT;
    for c in ["chat", "games", "media", "downloads", "nonwork_web"] {
        let label = (words.category)(c);
        let _ = write!(
            s,
            r##"<rect x="{lx:.1}" y="{:.1}" width="10" height="5" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"##,
            legend_y + 18.0,
            category_colour(c).unwrap_or("#999"),
            lx + 13.0,
            legend_y + 24.0,
            esc(&label)
        );
        lx += 22.0 + text_width(&label);
    }
    s.push_str("</svg>");
    s
}

/// The small bar of a day in the month calendar: office hours from `office`
/// (minutes of the day) in grey, presence from arrival to departure on top in
/// `colour`.
pub fn day_bar(office: Option<(u32, u32)>, present: Option<(u32, u32)>, colour: &str) -> String {
    const FROM: f64 = 6.0 * 60.0;
    const TO: f64 = 22.0 * 60.0;
    let x = |m: u32| (f64::from(m).clamp(FROM, TO) - FROM) / (TO - FROM) * 100.0;
    let mut s = String::from(
        r##"<svg class="daybar" viewBox="0 0 100 6" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg" aria-hidden="true"><rect width="100" height="6" fill="#f1f1f1"/>"##,
    );
    if let Some((a, b)) = office {
        let _ = write!(
            s,
            r##"<rect x="{:.1}" width="{:.1}" height="6" fill="#d5dde8"/>"##,
            x(a),
            (x(b) - x(a)).max(0.0)
        );
    }
    if let Some((a, b)) = present {
        let _ = write!(
            s,
            r##"<rect class="present" x="{:.1}" y="1" width="{:.1}" height="4" fill="{}"/>"##,
            x(a),
            (x(b) - x(a)).max(1.0),
            esc(colour)
        );
    }
    s.push_str("</svg>");
    s
}

/// One department's day: how many people were in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mix {
    pub on_time: u32,
    pub late: u32,
    pub exempt: u32,
    pub absent: u32,
    pub unknown: u32,
}

impl Mix {
    /// Everyone counted.
    pub fn total(&self) -> u32 {
        self.on_time + self.late + self.exempt + self.absent + self.unknown
    }
}

/// The colours of [`Mix`]'s parts, in drawing order (bottom up), by class.
pub const MIX_PARTS: [(&str, &str); 5] = [
    ("on_time", "#2e8b57"),
    ("late", "#e67e22"),
    ("exempt", "#2980b9"),
    ("absent", "#c0392b"),
    ("unknown", "#95a5a6"),
];

/// A small square of `colour`, for a legend.
pub fn swatch(colour: &str) -> String {
    format!(
        r#"<svg class="swatch" width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" xmlns="http://www.w3.org/2000/svg"><rect width="12" height="12" fill="{}"/></svg>"#,
        esc(colour)
    )
}

/// A department's day as a small stacked column, the parts of [`Mix`] bottom up in
/// [`MIX_PARTS`] order, scaled to `most` people; `title` is its tooltip. An empty
/// column (a rest day, nobody expected) is a light frame.
pub fn day_mix(m: &Mix, most: u32, title: &str) -> String {
    const W: f64 = 24.0;
    const H: f64 = 36.0;
    let mut s = format!(
        r##"<svg class="daymix" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" xmlns="http://www.w3.org/2000/svg"><title>{}</title><rect width="{W}" height="{H}" fill="#f6f6f6"/>"##,
        esc(title)
    );
    let most = f64::from(most.max(1));
    let mut y = H;
    for ((class, colour), n) in MIX_PARTS
        .iter()
        .zip([m.on_time, m.late, m.exempt, m.absent, m.unknown])
    {
        if n == 0 {
            continue;
        }
        let h = f64::from(n) / most * H;
        y -= h;
        let _ = write!(
            s,
            r##"<rect class="{class}" y="{y:.1}" width="{W}" height="{h:.1}" fill="{colour}"/>"##
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_mix_stacks_its_parts_to_scale() {
        let m = Mix {
            on_time: 2,
            late: 1,
            unknown: 1,
            ..Mix::default()
        };
        let svg = day_mix(&m, 4, "a <b>");
        assert!(svg.contains("<title>a &lt;b&gt;</title>"), "{svg}");
        assert!(
            svg.contains(r#"class="on_time" y="18.0" width="24" height="18.0""#),
            "{svg}"
        );
        assert!(svg.contains(r#"class="late" y="9.0""#), "{svg}");
        assert!(svg.contains(r#"class="unknown" y="0.0""#), "{svg}");
        assert!(!svg.contains("absent"), "{svg}");
    }

    #[test]
    fn the_day_bar_places_office_hours_and_presence() {
        let bar = day_bar(
            Some((8 * 60 + 30, 17 * 60 + 30)),
            Some((8 * 60 + 41, 17 * 60 + 24)),
            "#2e8b57",
        );
        // 08:30 is 15.625% of 06:00-22:00; 17:30 is 71.875%.
        assert!(bar.contains(r#"x="15.6" width="56.2""#), "{bar}");
        assert!(bar.contains("class=\"present\""));
        assert!(!day_bar(None, None, "x").contains("present"));
    }

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

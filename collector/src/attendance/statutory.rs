//! The statutory public holidays of any year, computed from the national rules
//! (全国年节及纪念日放假办法), without the State Council's yearly notice.
//!
//! ```text
//!  rule (as in force from 2025)           2027 computed
//!  元旦    1 January                       01-01
//!  春节    lunar new year's eve .. day 3   02-05 .. 02-08  (eve, 正月初一 to 初三)
//!  清明节  the day of the Qingming term    04-05
//!  劳动节  1-2 May                         05-01 .. 05-02
//!  端午节  5th day of the 5th lunar month  06-09
//!  中秋节  15th day of the 8th lunar month 09-15
//!  国庆节  1-3 October                     10-01 .. 10-03
//! ```
//!
//! Before 2025 the 2013 version applied: 春节 was 正月初一 to 初三 (no eve) and
//! 劳动节 1 May alone. Lunar dates and the solar term come from `tyme4rs` (the
//! ShouXing astronomical algorithm, days in Beijing time).
//!
//! What this cannot give: the make-up working days (调休上班) and the bridged days
//! (a weekday between a holiday and a weekend given off) that each notice decides.
//! A year judged with these days alone is provisional until its notice is imported.
//!
//! What must stay true: every day computed here for a year with a notice is a
//! holiday in that notice (a test checks 2024-2026).

use jiff::ToSpan;
use jiff::civil::{Date, date};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tyme4rs::tyme::lunar::LunarDay;
use tyme4rs::tyme::solar::{SolarDay, SolarTerm};

/// The years the computation answers for; outside them only the week counts.
pub const YEARS: std::ops::RangeInclusive<i16> = 1950..=2150;

/// One statutory holiday day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatutoryDay {
    pub date: Date,
    /// The festival: 元旦, 春节, 清明节, 劳动节, 端午节, 中秋节, 国庆节.
    pub name: &'static str,
}

fn civil(d: SolarDay) -> Option<Date> {
    let y = i16::try_from(d.get_year()).ok()?;
    Date::new(
        y,
        i8::try_from(d.get_month()).ok()?,
        i8::try_from(d.get_day()).ok()?,
    )
    .ok()
}

fn lunar(year: i16, month: isize, day: usize) -> Option<Date> {
    civil(
        LunarDay::new(isize::from(year), month, day)
            .ok()?
            .get_solar_day(),
    )
}

fn compute(year: i16) -> Vec<StatutoryDay> {
    if !YEARS.contains(&year) {
        return Vec::new();
    }
    let rules_2025 = year >= 2025;
    let mut days = Vec::with_capacity(13);
    let mut push = |d: Date, name| days.push(StatutoryDay { date: d, name });
    push(date(year, 1, 1), "元旦");
    if let Some(new_year) = lunar(year, 1, 1) {
        let first = if rules_2025 {
            new_year.saturating_sub(1.day())
        } else {
            new_year
        };
        let mut d = first;
        while d <= new_year.saturating_add(2.days()) {
            push(d, "春节");
            d = d.saturating_add(1.day());
        }
    }
    if let Ok(term) = SolarTerm::new(isize::from(year), "清明")
        && let Some(d) = civil(term.get_solar_day())
    {
        push(d, "清明节");
    }
    push(date(year, 5, 1), "劳动节");
    if rules_2025 {
        push(date(year, 5, 2), "劳动节");
    }
    if let Some(d) = lunar(year, 5, 5) {
        push(d, "端午节");
    }
    if let Some(d) = lunar(year, 8, 15) {
        push(d, "中秋节");
    }
    for day in 1..=3 {
        push(date(year, 10, day), "国庆节");
    }
    days.sort_by_key(|d| d.date);
    days
}

/// The statutory holidays of `year`, in date order (empty outside [`YEARS`]).
/// Computed once per year and kept.
pub fn days(year: i16) -> Arc<[StatutoryDay]> {
    static CACHE: OnceLock<Mutex<HashMap<i16, Arc<[StatutoryDay]>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(d) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&year) {
        return d.clone();
    }
    let computed: Arc<[StatutoryDay]> = compute(year).into();
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(year, computed.clone());
    computed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(year: i16, name: &str) -> Vec<Date> {
        days(year)
            .iter()
            .filter(|d| d.name == name)
            .map(|d| d.date)
            .collect()
    }

    #[test]
    fn computed_2027_matches_the_published_dates() {
        // 2027: 春节 (正月初一) Saturday 6 February, 清明 5 April, 端午 9 June,
        // 中秋 15 September (the Purple Mountain Observatory's almanac).
        assert_eq!(
            dates(2027, "春节"),
            vec![
                date(2027, 2, 5),
                date(2027, 2, 6),
                date(2027, 2, 7),
                date(2027, 2, 8)
            ]
        );
        assert_eq!(dates(2027, "清明节"), vec![date(2027, 4, 5)]);
        assert_eq!(dates(2027, "端午节"), vec![date(2027, 6, 9)]);
        assert_eq!(dates(2027, "中秋节"), vec![date(2027, 9, 15)]);
        assert_eq!(
            dates(2027, "劳动节"),
            vec![date(2027, 5, 1), date(2027, 5, 2)]
        );
        assert_eq!(dates(2027, "元旦"), vec![date(2027, 1, 1)]);
        // 13 days a year by the 2025 rules.
        assert_eq!(days(2027).len(), 13);
    }

    #[test]
    fn rules_before_2025_have_no_eve_and_one_may_day() {
        // 2024: 春节 10-12 February (the eve, 9 February, was a workday by law).
        assert_eq!(
            dates(2024, "春节"),
            vec![date(2024, 2, 10), date(2024, 2, 11), date(2024, 2, 12)]
        );
        assert_eq!(dates(2024, "劳动节"), vec![date(2024, 5, 1)]);
        assert_eq!(days(2024).len(), 11);
        // 2028: 春节 26 January, so its eve is 25 January.
        assert_eq!(dates(2028, "春节")[0], date(2028, 1, 25));
    }

    #[test]
    fn outside_the_range_nothing_is_computed() {
        assert!(days(1900).is_empty());
        assert!(days(2200).is_empty());
    }
}

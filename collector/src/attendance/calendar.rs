//! Which days are working days: the official PRC public holidays and make-up working
//! days (调休), plus an office's own overrides.
//!
//! ```text
//!  2026-09  Su Mo Tu We Th Fr Sa          kind of each day
//!           20 21 22 23 24 25 26          20: makeup_workday (Sunday, 调休 for 国庆)
//!                             ^^ ^^       25-27: holiday (中秋)
//!           27 28 29 30                   27: holiday; 28-30: workday
//!  2026-10               1  2  3          1-7: holiday (国庆)
//!            4  5  6  7  8  9 10          8-9: workday; 10: makeup_workday (Saturday)
//!           11 ...                        11: rest (Sunday)
//! ```
//!
//! Order of precedence for a date: an office override, then the notice of that
//! year (imported into the database, else built in), then, for a year with no
//! notice, the statutory holidays computed from the national rules
//! ([`super::statutory`]), then the week (Saturday and Sunday rest, other days work).
//!
//! A year with no notice is *provisional*: its make-up working days and bridged
//! days are unknown until the notice is imported, and every place that shows such a
//! year says so ([`Calendar::basis`]).
//!
//! What must stay true: the built-in data is exactly the State Council notices; an
//! imported notice replaces the built-in one of its year as a whole; every year
//! answers, and [`Calendar::basis`] says on what.

use std::collections::BTreeMap;

use jiff::ToSpan;
use jiff::civil::{Date, Weekday, date};
use serde::{Deserialize, Serialize};

/// The kind of a calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// An ordinary working day (Monday to Friday, not a holiday).
    Workday,
    /// An ordinary weekend day.
    Rest,
    /// A public holiday, including weekend days inside a holiday period.
    Holiday,
    /// A weekend day that is a working day by notice (调休上班).
    MakeupWorkday,
}

impl DayKind {
    /// The kind [`DayKind::as_str`] names (any case; `-` for `_`).
    pub fn parse(text: &str) -> Option<DayKind> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "workday" => Some(Self::Workday),
            "rest" => Some(Self::Rest),
            "holiday" => Some(Self::Holiday),
            "makeup_workday" => Some(Self::MakeupWorkday),
            _ => None,
        }
    }

    /// The name used in CSV, JSON and the CLI: `workday`, `rest`, `holiday`,
    /// `makeup_workday`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workday => "workday",
            Self::Rest => "rest",
            Self::Holiday => "holiday",
            Self::MakeupWorkday => "makeup_workday",
        }
    }

    /// Whether people are expected at work.
    pub fn is_working(self) -> bool {
        matches!(self, Self::Workday | Self::MakeupWorkday)
    }
}

impl std::fmt::Display for DayKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One holiday period of a notice: `first..=last` off, `makeup` days worked.
struct Period {
    name: &'static str,
    first: Date,
    last: Date,
    makeup: &'static [Date],
}

/// 国务院办公厅关于2024年部分节假日安排的通知 (国办发明电〔2023〕7号, 2023-10-25).
const Y2024: &[Period] = &[
    Period {
        name: "元旦",
        first: date(2024, 1, 1),
        last: date(2024, 1, 1),
        makeup: &[],
    },
    Period {
        name: "春节",
        first: date(2024, 2, 10),
        last: date(2024, 2, 17),
        makeup: &[date(2024, 2, 4), date(2024, 2, 18)],
    },
    Period {
        name: "清明节",
        first: date(2024, 4, 4),
        last: date(2024, 4, 6),
        makeup: &[date(2024, 4, 7)],
    },
    Period {
        name: "劳动节",
        first: date(2024, 5, 1),
        last: date(2024, 5, 5),
        makeup: &[date(2024, 4, 28), date(2024, 5, 11)],
    },
    Period {
        name: "端午节",
        first: date(2024, 6, 10),
        last: date(2024, 6, 10),
        makeup: &[],
    },
    Period {
        name: "中秋节",
        first: date(2024, 9, 15),
        last: date(2024, 9, 17),
        makeup: &[date(2024, 9, 14)],
    },
    Period {
        name: "国庆节",
        first: date(2024, 10, 1),
        last: date(2024, 10, 7),
        makeup: &[date(2024, 9, 29), date(2024, 10, 12)],
    },
];

/// 国务院办公厅关于2025年部分节假日安排的通知 (国办发明电〔2024〕12号, 2024-11-12).
const Y2025: &[Period] = &[
    Period {
        name: "元旦",
        first: date(2025, 1, 1),
        last: date(2025, 1, 1),
        makeup: &[],
    },
    Period {
        name: "春节",
        first: date(2025, 1, 28),
        last: date(2025, 2, 4),
        makeup: &[date(2025, 1, 26), date(2025, 2, 8)],
    },
    Period {
        name: "清明节",
        first: date(2025, 4, 4),
        last: date(2025, 4, 6),
        makeup: &[],
    },
    Period {
        name: "劳动节",
        first: date(2025, 5, 1),
        last: date(2025, 5, 5),
        makeup: &[date(2025, 4, 27)],
    },
    Period {
        name: "端午节",
        first: date(2025, 5, 31),
        last: date(2025, 6, 2),
        makeup: &[],
    },
    Period {
        name: "国庆节、中秋节",
        first: date(2025, 10, 1),
        last: date(2025, 10, 8),
        makeup: &[date(2025, 9, 28), date(2025, 10, 11)],
    },
];

/// 国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04).
const Y2026: &[Period] = &[
    Period {
        name: "元旦",
        first: date(2026, 1, 1),
        last: date(2026, 1, 3),
        makeup: &[date(2026, 1, 4)],
    },
    Period {
        name: "春节",
        first: date(2026, 2, 15),
        last: date(2026, 2, 23),
        makeup: &[date(2026, 2, 14), date(2026, 2, 28)],
    },
    Period {
        name: "清明节",
        first: date(2026, 4, 4),
        last: date(2026, 4, 6),
        makeup: &[],
    },
    Period {
        name: "劳动节",
        first: date(2026, 5, 1),
        last: date(2026, 5, 5),
        makeup: &[date(2026, 5, 9)],
    },
    Period {
        name: "端午节",
        first: date(2026, 6, 19),
        last: date(2026, 6, 21),
        makeup: &[],
    },
    Period {
        name: "中秋节",
        first: date(2026, 9, 25),
        last: date(2026, 9, 27),
        makeup: &[],
    },
    Period {
        name: "国庆节",
        first: date(2026, 10, 1),
        last: date(2026, 10, 7),
        makeup: &[date(2026, 9, 20), date(2026, 10, 10)],
    },
];

/// Every year with a notice built in.
const NOTICES: &[(i16, &[Period])] = &[(2024, Y2024), (2025, Y2025), (2026, Y2026)];

/// The years whose notice is built in.
pub fn built_in_years() -> impl Iterator<Item = i16> {
    NOTICES.iter().map(|(y, _)| *y)
}

/// What a year's holidays rest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum YearBasis {
    /// The State Council notice built into this release.
    BuiltIn,
    /// The State Council notice imported with `calendar import`.
    Imported,
    /// No notice: statutory holidays computed from the national rules, no make-up
    /// or bridged days. Verdicts of the year may change when the notice arrives.
    Provisional,
}

impl YearBasis {
    /// `built_in`, `imported`, `provisional`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BuiltIn => "built_in",
            Self::Imported => "imported",
            Self::Provisional => "provisional",
        }
    }
}

/// A State Council notice that is not imported and is needed now or soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NoticeWarning {
    /// The year without a notice.
    pub year: i16,
    /// The year has begun: its days are being judged provisionally now.
    pub urgent: bool,
}

impl NoticeWarning {
    /// In English, for logs and English pages.
    pub fn text_en(&self) -> String {
        let y = self.year;
        if self.urgent {
            format!(
                "The State Council holiday notice for {y} is not imported: {y} is judged on the statutory holidays alone, without its make-up working days and bridged days, and its verdicts are provisional. Import it with `kaoqin-collector calendar import FILE.csv --year {y}`."
            )
        } else {
            format!(
                "The State Council holiday notice for {y} is not imported yet. Import it when it is published (`kaoqin-collector calendar import FILE.csv --year {y}`); until then {y} will be judged on the statutory holidays alone."
            )
        }
    }

    /// In Chinese, for the pages.
    pub fn text_zh(&self) -> String {
        let y = self.year;
        if self.urgent {
            format!(
                "尚未导入国务院办公厅{y}年节假日安排通知：{y}年目前仅按法定节假日判定，调休上班日和调休放假日未知，相关考勤结果为暂定。请用 `kaoqin-collector calendar import 文件.csv --year {y}` 导入。"
            )
        } else {
            format!(
                "尚未导入国务院办公厅{y}年节假日安排通知。通知发布后请及时导入（`kaoqin-collector calendar import 文件.csv --year {y}`）；导入前{y}年仅按法定节假日判定。"
            )
        }
    }
}

/// One day a notice names: a holiday or a make-up working day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeDay {
    pub date: Date,
    /// [`DayKind::Holiday`] or [`DayKind::MakeupWorkday`].
    pub kind: DayKind,
    /// The holiday's name, if the notice file gave one.
    pub note: String,
}

/// A State Council notice of one year, as imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub year: i16,
    pub days: Vec<NoticeDay>,
}

/// The working calendar: notices (built in, imported), the statutory holidays of
/// years without one, and an office's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Days the notices name, with the holiday name as note.
    official: BTreeMap<Date, (DayKind, String)>,
    /// The years with a notice and where it came from.
    noticed: BTreeMap<i16, YearBasis>,
    /// Office overrides, with their note; they win over everything.
    overrides: BTreeMap<Date, (DayKind, String)>,
}

impl Default for Calendar {
    fn default() -> Self {
        Self::official()
    }
}

impl Calendar {
    /// The official calendar: the built-in notices, statutory holidays elsewhere.
    pub fn official() -> Calendar {
        Calendar::new(Vec::new(), Vec::new())
    }

    /// The official calendar with an office's own days on top (a closure day, an extra
    /// holiday, a Saturday worked). A later entry for the same date wins.
    pub fn with_overrides(overrides: Vec<(Date, DayKind, String)>) -> Calendar {
        Calendar::new(Vec::new(), overrides)
    }

    /// The built-in notices, replaced year by year by `imported` ones, with the
    /// office's `overrides` on top.
    pub fn new(imported: Vec<Notice>, overrides: Vec<(Date, DayKind, String)>) -> Calendar {
        let mut official = BTreeMap::new();
        let mut noticed = BTreeMap::new();
        let replaced = |year: i16| imported.iter().any(|n| n.year == year);
        for (year, periods) in NOTICES {
            if replaced(*year) {
                continue;
            }
            noticed.insert(*year, YearBasis::BuiltIn);
            for p in *periods {
                let mut d = p.first;
                while d <= p.last {
                    official.insert(d, (DayKind::Holiday, p.name.to_string()));
                    d = d.saturating_add(1.day());
                }
                for &m in p.makeup {
                    official.insert(m, (DayKind::MakeupWorkday, format!("{}调休上班", p.name)));
                }
            }
        }
        for notice in imported {
            noticed.insert(notice.year, YearBasis::Imported);
            for day in notice.days {
                official.insert(day.date, (day.kind, day.note));
            }
        }
        Calendar {
            official,
            noticed,
            overrides: overrides.into_iter().map(|(d, k, n)| (d, (k, n))).collect(),
        }
    }

    /// What the holidays of `year` rest on: a notice (built in or imported) or,
    /// without one, the statutory rules alone.
    pub fn basis(&self, year: i16) -> YearBasis {
        self.noticed
            .get(&year)
            .copied()
            .unwrap_or(YearBasis::Provisional)
    }

    /// Whether `year` has no notice, so that its make-up and bridged days are
    /// unknown and its verdicts may change when the notice is imported.
    pub fn is_provisional(&self, year: i16) -> bool {
        self.basis(year) == YearBasis::Provisional
    }

    /// The statutory holiday `date` is, in a year without a notice.
    fn statutory(&self, date: Date) -> Option<&'static str> {
        if !self.is_provisional(date.year()) {
            return None;
        }
        super::statutory::days(date.year())
            .iter()
            .find(|d| d.date == date)
            .map(|d| d.name)
    }

    /// The kind of `date`.
    pub fn day_kind(&self, date: Date) -> DayKind {
        if let Some((k, _)) = self
            .overrides
            .get(&date)
            .or_else(|| self.official.get(&date))
        {
            return *k;
        }
        if self.statutory(date).is_some() {
            return DayKind::Holiday;
        }
        match date.weekday() {
            Weekday::Saturday | Weekday::Sunday => DayKind::Rest,
            _ => DayKind::Workday,
        }
    }

    /// Why `date` is what it is, if something other than the week decided it: the
    /// holiday name or the override note.
    pub fn note(&self, date: Date) -> Option<&str> {
        self.overrides
            .get(&date)
            .or_else(|| self.official.get(&date))
            .map(|(_, n)| n.as_str())
            .or_else(|| self.statutory(date))
    }

    /// Everything that decides the days of `year` besides the week, in a stable
    /// text: verdicts of the year are stale when it changes.
    pub fn year_fingerprint(&self, year: i16) -> String {
        use std::fmt::Write;
        let basis = self.basis(year);
        let mut text = format!("{}|", basis.as_str());
        let (Ok(first), Ok(last)) = (Date::new(year, 1, 1), Date::new(year, 12, 31)) else {
            return text;
        };
        for (d, (k, n)) in self.official.range(first..=last) {
            let _ = write!(text, "{d}={k}:{n};");
        }
        if basis == YearBasis::Provisional {
            for d in super::statutory::days(year).iter() {
                let _ = write!(text, "{}=statutory:{};", d.date, d.name);
            }
        }
        text
    }

    /// What to tell people on `today` about a missing notice: from 1 October,
    /// that next year's is not imported; in a year without one, that this year's
    /// is missing (louder).
    pub fn notice_warning(&self, today: Date) -> Option<NoticeWarning> {
        let year = today.year();
        if self.is_provisional(year) {
            return Some(NoticeWarning { year, urgent: true });
        }
        let next = year.checked_add(1)?;
        (today.month() >= 10 && self.is_provisional(next)).then_some(NoticeWarning {
            year: next,
            urgent: false,
        })
    }

    /// Every day of `year`, in order, with its kind.
    pub fn year_rows(&self, year: i16) -> Vec<(Date, DayKind)> {
        let Ok(first) = Date::new(year, 1, 1) else {
            return Vec::new();
        };
        let mut rows = Vec::with_capacity(366);
        let mut d = first;
        while d.year() == year {
            rows.push((d, self.day_kind(d)));
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => break,
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(year: i16, kind: DayKind) -> Vec<Date> {
        Calendar::official()
            .year_rows(year)
            .into_iter()
            .filter(|(_, k)| *k == kind)
            .map(|(d, _)| d)
            .collect()
    }

    #[test]
    fn rows_2026() {
        let cal = Calendar::official();
        let rows = cal.year_rows(2026);
        assert_eq!(rows.len(), 365);
        assert_eq!(rows[0], (date(2026, 1, 1), DayKind::Holiday));
        // 3 + 9 + 3 + 5 + 3 + 3 + 7 holiday days.
        assert_eq!(kinds(2026, DayKind::Holiday).len(), 33);
        assert_eq!(
            kinds(2026, DayKind::MakeupWorkday),
            vec![
                date(2026, 1, 4),
                date(2026, 2, 14),
                date(2026, 2, 28),
                date(2026, 5, 9),
                date(2026, 9, 20),
                date(2026, 10, 10),
            ]
        );
        // Every make-up day is a weekend day; no holiday is a make-up day.
        for d in kinds(2026, DayKind::MakeupWorkday) {
            assert!(
                matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday),
                "{d}"
            );
        }
        assert_eq!(cal.day_kind(date(2026, 10, 1)), DayKind::Holiday);
        assert_eq!(cal.day_kind(date(2026, 10, 10)), DayKind::MakeupWorkday);
        assert_eq!(cal.day_kind(date(2026, 10, 11)), DayKind::Rest);
        assert_eq!(cal.day_kind(date(2026, 10, 9)), DayKind::Workday);
        assert_eq!(cal.note(date(2026, 2, 15)), Some("春节"));
        assert_eq!(cal.basis(2026), YearBasis::BuiltIn);
    }

    #[test]
    fn counts_2024_2025() {
        // 2024: 1 + 8 + 3 + 5 + 1 + 3 + 7; 2025: 1 + 8 + 3 + 5 + 3 + 8.
        assert_eq!(kinds(2024, DayKind::Holiday).len(), 28);
        assert_eq!(kinds(2024, DayKind::MakeupWorkday).len(), 8);
        assert_eq!(kinds(2025, DayKind::Holiday).len(), 28);
        assert_eq!(
            kinds(2025, DayKind::MakeupWorkday),
            vec![
                date(2025, 1, 26),
                date(2025, 2, 8),
                date(2025, 4, 27),
                date(2025, 9, 28),
                date(2025, 10, 11)
            ]
        );
        assert_eq!(Calendar::official().year_rows(2024).len(), 366);
    }

    #[test]
    fn a_year_without_a_notice_has_its_statutory_holidays_only() {
        let cal = Calendar::official();
        assert!(cal.is_provisional(2030));
        assert!(cal.is_provisional(2027));
        assert!(cal.is_provisional(2023));
        // 2027-01-01 is a Friday: New Year's Day, not a workday.
        assert_eq!(cal.day_kind(date(2027, 1, 1)), DayKind::Holiday);
        assert_eq!(cal.note(date(2027, 1, 1)), Some("元旦"));
        assert_eq!(cal.day_kind(date(2030, 10, 1)), DayKind::Holiday); // a Tuesday
        assert_eq!(cal.day_kind(date(2030, 10, 4)), DayKind::Workday); // no bridge known
        assert_eq!(cal.day_kind(date(2030, 10, 5)), DayKind::Rest); // a Saturday
        assert_eq!(kinds(2030, DayKind::Holiday).len(), 13);
        assert!(kinds(2030, DayKind::MakeupWorkday).is_empty());
        assert_eq!(cal.note(date(2030, 10, 4)), None);
    }

    #[test]
    fn the_warning_starts_on_1_october_and_is_urgent_in_a_year_without_a_notice() {
        let cal = Calendar::official();
        assert_eq!(cal.notice_warning(date(2026, 9, 30)), None);
        assert_eq!(
            cal.notice_warning(date(2026, 10, 1)),
            Some(NoticeWarning {
                year: 2027,
                urgent: false
            })
        );
        let w = cal.notice_warning(date(2027, 1, 1)).unwrap();
        assert_eq!((w.year, w.urgent), (2027, true));
        assert!(w.text_en().contains("provisional"), "{}", w.text_en());
        assert!(w.text_zh().contains("暂定"), "{}", w.text_zh());
        let cal = Calendar::new(
            vec![Notice {
                year: 2027,
                days: Vec::new(),
            }],
            Vec::new(),
        );
        assert_eq!(cal.notice_warning(date(2026, 12, 7)), None);
        assert_eq!(cal.notice_warning(date(2027, 3, 1)), None);
        assert_eq!(
            cal.notice_warning(date(2027, 10, 1)).map(|w| w.year),
            Some(2028)
        );
    }

    #[test]
    fn every_statutory_day_is_a_holiday_in_the_built_in_notices() {
        let cal = Calendar::official();
        for year in built_in_years() {
            let days = crate::attendance::statutory::days(year);
            assert!(days.len() >= 11, "{year}");
            for d in days.iter() {
                assert_eq!(
                    cal.day_kind(d.date),
                    DayKind::Holiday,
                    "{} ({}) of {year}",
                    d.date,
                    d.name
                );
            }
        }
    }

    #[test]
    fn an_imported_notice_replaces_the_year_and_overrides_stay_on_top() {
        let notice = Notice {
            year: 2027,
            days: vec![
                NoticeDay {
                    date: date(2027, 1, 1),
                    kind: DayKind::Holiday,
                    note: "元旦".into(),
                },
                NoticeDay {
                    date: date(2027, 2, 20),
                    kind: DayKind::MakeupWorkday,
                    note: "春节调休上班".into(),
                },
            ],
        };
        let provisional = Calendar::official();
        let cal = Calendar::new(
            vec![notice],
            vec![(
                date(2027, 2, 20),
                DayKind::Rest,
                "office: no make-up".into(),
            )],
        );
        assert_eq!(cal.basis(2027), YearBasis::Imported);
        assert_ne!(
            cal.year_fingerprint(2027),
            provisional.year_fingerprint(2027)
        );
        assert_eq!(
            cal.year_fingerprint(2026),
            provisional.year_fingerprint(2026)
        );
        // Only what the notice says: the computed 春节 days are not added.
        assert_eq!(cal.day_kind(date(2027, 2, 8)), DayKind::Workday);
        assert_eq!(provisional.day_kind(date(2027, 2, 8)), DayKind::Holiday);
        assert_eq!(cal.day_kind(date(2027, 2, 20)), DayKind::Rest);
        // A notice imported for a built-in year replaces it whole.
        let cal = Calendar::new(
            vec![Notice {
                year: 2026,
                days: Vec::new(),
            }],
            Vec::new(),
        );
        assert_eq!(cal.basis(2026), YearBasis::Imported);
        assert_eq!(cal.day_kind(date(2026, 10, 1)), DayKind::Workday);
        assert_eq!(cal.day_kind(date(2025, 10, 1)), DayKind::Holiday);
    }

    #[test]
    fn overrides_win() {
        let cal = Calendar::with_overrides(vec![
            (
                date(2026, 3, 6),
                DayKind::Holiday,
                "office closed: power maintenance".into(),
            ),
            (
                date(2026, 10, 10),
                DayKind::Rest,
                "no make-up day for this office".into(),
            ),
        ]);
        assert_eq!(cal.day_kind(date(2026, 3, 6)), DayKind::Holiday);
        assert_eq!(
            cal.note(date(2026, 3, 6)),
            Some("office closed: power maintenance")
        );
        assert_eq!(cal.day_kind(date(2026, 10, 10)), DayKind::Rest);
        assert_eq!(cal.day_kind(date(2026, 10, 1)), DayKind::Holiday);
    }

    #[test]
    fn as_str_names() {
        let names: Vec<_> = [
            DayKind::Workday,
            DayKind::Rest,
            DayKind::Holiday,
            DayKind::MakeupWorkday,
        ]
        .map(DayKind::as_str)
        .into();
        assert_eq!(names, ["workday", "rest", "holiday", "makeup_workday"]);
        assert_eq!(
            serde_json::to_string(&DayKind::MakeupWorkday).unwrap(),
            "\"makeup_workday\""
        );
    }
}

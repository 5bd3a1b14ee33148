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
//! Order of precedence for a date: an office override, then the official notice of
//! that year, then the week (Saturday and Sunday rest, other days work).
//!
//! What must stay true: the built-in data is exactly the State Council notices; a year
//! that no notice covers still answers (weekends rest) but [`Calendar::covers`] says
//! `false` so callers can warn that holidays are missing.

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

/// The working calendar: built-in notices plus an office's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Days the notices name, with the holiday name as note.
    official: BTreeMap<Date, (DayKind, String)>,
    /// Office overrides, with their note; they win over everything.
    overrides: BTreeMap<Date, (DayKind, String)>,
}

impl Default for Calendar {
    fn default() -> Self {
        Self::official()
    }
}

impl Calendar {
    /// The official calendar for every year with a built-in notice.
    pub fn official() -> Calendar {
        let mut official = BTreeMap::new();
        for (_, periods) in NOTICES {
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
        Calendar {
            official,
            overrides: BTreeMap::new(),
        }
    }

    /// The official calendar with an office's own days on top (a closure day, an extra
    /// holiday, a Saturday worked). A later entry for the same date wins.
    pub fn with_overrides(overrides: Vec<(Date, DayKind, String)>) -> Calendar {
        let mut cal = Calendar::official();
        for (d, kind, note) in overrides {
            cal.overrides.insert(d, (kind, note));
        }
        cal
    }

    /// Whether a State Council notice for `year` is built in. When `false`,
    /// [`Calendar::day_kind`] still answers from the week alone.
    pub fn covers(&self, year: i16) -> bool {
        NOTICES.iter().any(|(y, _)| *y == year)
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
        assert!(cal.covers(2026));
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
    fn year_outside_range() {
        let cal = Calendar::official();
        assert!(!cal.covers(2030));
        assert!(!cal.covers(2023));
        assert_eq!(cal.day_kind(date(2030, 10, 1)), DayKind::Workday); // a Tuesday
        assert_eq!(cal.day_kind(date(2030, 10, 5)), DayKind::Rest); // a Saturday
        assert!(kinds(2030, DayKind::Holiday).is_empty());
        assert_eq!(cal.note(date(2030, 10, 1)), None);
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

//! Office hours: which sessions a day has, when they are checked, and which rules were
//! in effect on a given date.
//!
//! The default day (until an office configures its own):
//!
//! ```text
//!   08:30      12:00          14:00      17:30
//!     |=session 0=|    lunch    |=session 1=|
//!     ^ arrival checked           departure checked ^
//!     grace 5 min: 08:35 on time, 08:41 is 11 min late
//! ```
//!
//! A [`Schedule`] is either *fixed* (one or more sessions, optionally replaced by a
//! seasonal set such as summer hours) or *flexible* (a band in which one may arrive or
//! leave, core hours one must be present for, and a required span from arrival):
//!
//! ```text
//!   band  07:00 |------------------------------------------| 19:00
//!   core             09:00 |================| 16:00
//!   arrival 08:10 ---- required 480 min ---> expected departure 16:10
//! ```
//!
//! A [`ScheduleSet`] keeps, per department and for the office as a whole, a list of
//! versions with the date they took effect, so last March is judged under last March's
//! rules. It deserializes from TOML and validates everything at once:
//!
//! ```toml
//! [[default]]
//! effective_from = 2024-01-01
//! sessions = [
//!   { start = "08:30", end = "12:00" },          # first session: arrival checked
//!   { start = "14:00", end = "17:30" },          # last session: departure checked
//! ]
//! [[default.seasons]]
//! name = "summer"
//! from = [6, 1]
//! to = [9, 30]
//! sessions = [{ start = "08:00", end = "12:00" }, { start = "14:30", end = "18:00" }]
//!
//! [[departments."信息中心"]]
//! effective_from = "2025-03-01"
//! flexible = { band_start = "07:00", band_end = "19:00", core_start = "09:00", core_end = "16:00", required_minutes = 480 }
//! ```
//!
//! What must stay true: a validated schedule has sessions with `start < end`, in order
//! and not overlapping, and graces that are neither negative nor longer than their
//! session; a date before every configured version falls back to the built-in default.

use std::collections::BTreeMap;

use jiff::civil::{Date, Time, time};
use serde::{Deserialize, Serialize};

/// One stretch of office hours within a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// Scheduled start.
    pub start: Time,
    /// Scheduled end.
    pub end: Time,
    /// Minutes after `start` that still count as on time.
    pub late_grace_minutes: u32,
    /// Minutes before `end` that still count as on time.
    pub early_grace_minutes: u32,
    /// Whether arrival at `start` is a checkpoint.
    pub check_arrival: bool,
    /// Whether departure at `end` is a checkpoint.
    pub check_departure: bool,
}

/// Sessions that replace the normal ones between two days of the year, inclusive
/// (`from` after `to` wraps over the new year).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Season {
    /// A name for reports ("summer").
    pub name: String,
    /// First day, `(month, day)`.
    pub from: (i8, i8),
    /// Last day, `(month, day)`.
    pub to: (i8, i8),
    /// The sessions in effect in the season.
    pub sessions: Vec<Session>,
}

impl Season {
    /// Whether `date` falls in this season.
    pub fn contains(&self, date: Date) -> bool {
        let md = (date.month(), date.day());
        if self.from <= self.to {
            self.from <= md && md <= self.to
        } else {
            md >= self.from || md <= self.to
        }
    }
}

/// Flexible hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flexible {
    /// Earliest time that counts towards the required span.
    pub band_start: Time,
    /// Latest end of the working day.
    pub band_end: Time,
    /// Core hours start: the arrival checkpoint.
    pub core_start: Time,
    /// Core hours end: no departure before it.
    pub core_end: Time,
    /// Minutes from arrival (not before `band_start`) to the expected departure,
    /// lunch included.
    pub required_minutes: u32,
    /// Grace after `core_start`.
    pub late_grace_minutes: u32,
    /// Grace before the expected departure.
    pub early_grace_minutes: u32,
}

/// The rules for one kind of day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Fixed sessions, possibly seasonal.
    Fixed {
        /// Sessions outside every season.
        sessions: Vec<Session>,
        /// Seasonal replacements; the first that contains a date wins.
        seasons: Vec<Season>,
    },
    /// Flexible hours.
    Flexible(Flexible),
}

impl Default for Schedule {
    /// 08:30–12:00 and 14:00–17:30, 5 minutes' grace, morning arrival and afternoon
    /// departure checked.
    fn default() -> Self {
        Schedule::Fixed {
            sessions: vec![
                Session {
                    start: time(8, 30, 0, 0),
                    end: time(12, 0, 0, 0),
                    late_grace_minutes: 5,
                    early_grace_minutes: 5,
                    check_arrival: true,
                    check_departure: false,
                },
                Session {
                    start: time(14, 0, 0, 0),
                    end: time(17, 30, 0, 0),
                    late_grace_minutes: 5,
                    early_grace_minutes: 5,
                    check_arrival: false,
                    check_departure: true,
                },
            ],
            seasons: Vec::new(),
        }
    }
}

impl Schedule {
    /// The fixed sessions in effect on `date` and the season's name, if any; `None` for
    /// a flexible schedule.
    pub fn sessions_on(&self, date: Date) -> Option<(&[Session], Option<&str>)> {
        match self {
            Schedule::Fixed { sessions, seasons } => {
                Some(match seasons.iter().find(|s| s.contains(date)) {
                    Some(season) => (season.sessions.as_slice(), Some(season.name.as_str())),
                    None => (sessions.as_slice(), None),
                })
            }
            Schedule::Flexible(_) => None,
        }
    }
}

/// A schedule and the date it took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleVersion {
    /// Shown in verdicts: the configured name, or `<department>@<effective_from>`.
    pub id: String,
    /// First date judged under this version.
    pub effective_from: Date,
    /// The rules.
    pub schedule: Schedule,
}

/// Every schedule version of the office and of its departments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScheduleSetConfig")]
pub struct ScheduleSet {
    /// Office-wide versions, sorted by `effective_from`.
    default: Vec<ScheduleVersion>,
    /// Per-department versions, sorted by `effective_from`.
    departments: BTreeMap<String, Vec<ScheduleVersion>>,
    /// Used for dates before every configured version.
    #[serde(skip)]
    builtin: ScheduleVersion,
}

/// The id of the built-in default schedule.
pub const BUILTIN_ID: &str = "builtin-default";

fn builtin() -> ScheduleVersion {
    ScheduleVersion {
        id: BUILTIN_ID.into(),
        effective_from: Date::MIN,
        schedule: Schedule::default(),
    }
}

impl Default for ScheduleSet {
    /// Only the built-in default schedule, for everyone, always.
    fn default() -> Self {
        ScheduleSet {
            default: Vec::new(),
            departments: BTreeMap::new(),
            builtin: builtin(),
        }
    }
}

impl ScheduleSet {
    /// Build from validated versions (the office default and per-department lists).
    pub fn new(
        mut default: Vec<ScheduleVersion>,
        mut departments: BTreeMap<String, Vec<ScheduleVersion>>,
    ) -> ScheduleSet {
        default.sort_by_key(|v| v.effective_from);
        for list in departments.values_mut() {
            list.sort_by_key(|v| v.effective_from);
        }
        ScheduleSet {
            default,
            departments,
            builtin: builtin(),
        }
    }

    /// Parse and validate TOML (see the module docs for the shape).
    pub fn from_toml(text: &str) -> Result<ScheduleSet, ScheduleConfigError> {
        let cfg: ScheduleSetConfig =
            toml::from_str(text).map_err(|e| ScheduleConfigError::Parse(e.to_string()))?;
        ScheduleSet::try_from(cfg).map_err(ScheduleConfigError::Invalid)
    }

    /// The schedule in effect for `department` on `date`, and its version id: the
    /// department's latest version that took effect on or before `date`, else the
    /// office's, else the built-in default.
    pub fn schedule_for(&self, department: &str, date: Date) -> (&Schedule, &str) {
        let found = self
            .departments
            .get(department)
            .and_then(|list| list.iter().rev().find(|v| v.effective_from <= date))
            .or_else(|| self.default.iter().rev().find(|v| v.effective_from <= date))
            .unwrap_or(&self.builtin);
        (&found.schedule, found.id.as_str())
    }
}

/// A problem with one part of the schedule configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A session or band ends at or before it starts.
    #[error("{place}: end {end} is not after start {start}")]
    EndNotAfterStart {
        /// Where in the configuration.
        place: String,
        /// The start.
        start: Time,
        /// The end.
        end: Time,
    },
    /// Two sessions overlap or are out of order.
    #[error("{place}: sessions {first} and {second} overlap or are out of order")]
    Overlap {
        /// Where in the configuration.
        place: String,
        /// Index of the earlier session.
        first: usize,
        /// Index of the later session.
        second: usize,
    },
    /// A grace is negative or longer than its session.
    #[error("{place}: {field} = {value} must be between 0 and the session length ({max} min)")]
    BadGrace {
        /// Where in the configuration.
        place: String,
        /// Which grace.
        field: &'static str,
        /// The configured value.
        value: i64,
        /// Session length in minutes.
        max: i64,
    },
    /// A fixed schedule or season has no sessions.
    #[error("{place}: no sessions")]
    NoSessions {
        /// Where in the configuration.
        place: String,
    },
    /// Both `sessions`/`seasons` and `flexible` given.
    #[error("{place}: give either sessions (with seasons) or flexible, not both")]
    FixedAndFlexible {
        /// Where in the configuration.
        place: String,
    },
    /// A `(month, day)` that is not a day of the year.
    #[error("{place}: [{month}, {day}] is not a day of the year")]
    BadMonthDay {
        /// Where in the configuration.
        place: String,
        /// The month.
        month: i8,
        /// The day.
        day: i8,
    },
    /// The flexible parts do not fit together.
    #[error("{place}: {problem}")]
    Flexible {
        /// Where in the configuration.
        place: String,
        /// What is wrong.
        problem: String,
    },
    /// Two versions of one list take effect on the same date.
    #[error("{place}: two versions take effect on {date}")]
    DuplicateEffectiveFrom {
        /// Where in the configuration.
        place: String,
        /// The date.
        date: Date,
    },
}

/// Every problem found in a schedule configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleErrors(pub Vec<ScheduleError>);

impl std::fmt::Display for ScheduleErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} schedule error(s): ", self.0.len())?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScheduleErrors {}

/// Why [`ScheduleSet::from_toml`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleConfigError {
    /// Not TOML of the expected shape.
    #[error("schedule configuration is not valid TOML: {0}")]
    Parse(String),
    /// Parsed, but the rules do not hold.
    #[error("{0}")]
    Invalid(ScheduleErrors),
}

// ---------------------------------------------------------------------------------
// Configuration as written, before validation.

/// A civil date written either as a TOML date (`2024-01-01`) or a string.
#[derive(Debug, Clone, Copy)]
struct CfgDate(Date);

/// A civil time written either as a TOML time (`08:30:00`) or a string (`"08:30"`).
#[derive(Debug, Clone, Copy)]
struct CfgTime(Time);

#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrToml {
    Str(String),
    Toml(toml::value::Datetime),
}

impl StrOrToml {
    fn text(self) -> String {
        match self {
            StrOrToml::Str(s) => s,
            StrOrToml::Toml(d) => d.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for CfgDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = StrOrToml::deserialize(d)?.text();
        text.parse::<Date>()
            .map(CfgDate)
            .map_err(|e| serde::de::Error::custom(format!("date {text:?}: {e}")))
    }
}

impl<'de> Deserialize<'de> for CfgTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = StrOrToml::deserialize(d)?.text();
        text.parse::<Time>()
            .map(CfgTime)
            .map_err(|e| serde::de::Error::custom(format!("time {text:?}: {e}")))
    }
}

/// The `[schedules]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSetConfig {
    #[serde(default)]
    default: Vec<VersionConfig>,
    #[serde(default)]
    departments: BTreeMap<String, Vec<VersionConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionConfig {
    effective_from: CfgDate,
    name: Option<String>,
    sessions: Option<Vec<SessionConfig>>,
    #[serde(default)]
    seasons: Vec<SeasonConfig>,
    flexible: Option<FlexibleConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionConfig {
    start: CfgTime,
    end: CfgTime,
    late_grace_minutes: Option<i64>,
    early_grace_minutes: Option<i64>,
    check_arrival: Option<bool>,
    check_departure: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeasonConfig {
    name: String,
    from: (i8, i8),
    to: (i8, i8),
    sessions: Vec<SessionConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlexibleConfig {
    band_start: CfgTime,
    band_end: CfgTime,
    core_start: CfgTime,
    core_end: CfgTime,
    required_minutes: i64,
    late_grace_minutes: Option<i64>,
    early_grace_minutes: Option<i64>,
}

const DEFAULT_GRACE: i64 = 5;

fn minutes_between(a: Time, b: Time) -> i64 {
    b.duration_since(a).as_secs() / 60
}

fn check_grace(
    place: &str,
    field: &'static str,
    value: Option<i64>,
    max: i64,
    errs: &mut Vec<ScheduleError>,
) -> u32 {
    let v = value.unwrap_or(DEFAULT_GRACE.min(max));
    match u32::try_from(v) {
        Ok(g) if v <= max => g,
        _ => {
            errs.push(ScheduleError::BadGrace {
                place: place.to_string(),
                field,
                value: v,
                max,
            });
            0
        }
    }
}

fn validate_sessions(
    place: &str,
    raw: &[SessionConfig],
    errs: &mut Vec<ScheduleError>,
) -> Vec<Session> {
    if raw.is_empty() {
        errs.push(ScheduleError::NoSessions {
            place: place.to_string(),
        });
    }
    let last = raw.len().saturating_sub(1);
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let p = format!("{place}.sessions[{i}]");
        let (start, end) = (s.start.0, s.end.0);
        let len = minutes_between(start, end);
        if end <= start {
            errs.push(ScheduleError::EndNotAfterStart {
                place: p.clone(),
                start,
                end,
            });
        }
        let late = check_grace(
            &p,
            "late_grace_minutes",
            s.late_grace_minutes,
            len.max(0),
            errs,
        );
        let early = check_grace(
            &p,
            "early_grace_minutes",
            s.early_grace_minutes,
            len.max(0),
            errs,
        );
        out.push(Session {
            start,
            end,
            late_grace_minutes: late,
            early_grace_minutes: early,
            check_arrival: s.check_arrival.unwrap_or(i == 0),
            check_departure: s.check_departure.unwrap_or(i == last),
        });
    }
    for i in 1..out.len() {
        if out[i].start < out[i - 1].end {
            errs.push(ScheduleError::Overlap {
                place: place.to_string(),
                first: i - 1,
                second: i,
            });
        }
    }
    out
}

fn valid_month_day(place: &str, (month, day): (i8, i8), errs: &mut Vec<ScheduleError>) {
    // 2024 is a leap year, so 29 February is accepted.
    if Date::new(2024, month, day).is_err() {
        errs.push(ScheduleError::BadMonthDay {
            place: place.to_string(),
            month,
            day,
        });
    }
}

fn validate_flexible(place: &str, f: &FlexibleConfig, errs: &mut Vec<ScheduleError>) -> Flexible {
    let p = format!("{place}.flexible");
    let (bs, be, cs, ce) = (f.band_start.0, f.band_end.0, f.core_start.0, f.core_end.0);
    let mut problem = |s: String| {
        errs.push(ScheduleError::Flexible {
            place: p.clone(),
            problem: s,
        })
    };
    if !(bs <= cs && cs < ce && ce <= be) {
        problem(format!(
            "need band_start <= core_start < core_end <= band_end, got band {bs}-{be}, core {cs}-{ce}"
        ));
    }
    let band = minutes_between(bs, be);
    let required = match u32::try_from(f.required_minutes) {
        Ok(r) if r > 0 && i64::from(r) <= band => r,
        _ => {
            problem(format!(
                "required_minutes = {} must be between 1 and the band ({band} min)",
                f.required_minutes
            ));
            0
        }
    };
    let core = minutes_between(cs, ce).max(0);
    let late = check_grace(&p, "late_grace_minutes", f.late_grace_minutes, core, errs);
    let early = check_grace(&p, "early_grace_minutes", f.early_grace_minutes, core, errs);
    Flexible {
        band_start: bs,
        band_end: be,
        core_start: cs,
        core_end: ce,
        required_minutes: required,
        late_grace_minutes: late,
        early_grace_minutes: early,
    }
}

fn validate_list(
    list_name: &str,
    raw: &[VersionConfig],
    errs: &mut Vec<ScheduleError>,
) -> Vec<ScheduleVersion> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let place = format!("{list_name}[{i}]");
        let schedule = if let Some(f) = &v.flexible {
            if v.sessions.is_some() || !v.seasons.is_empty() {
                errs.push(ScheduleError::FixedAndFlexible {
                    place: place.clone(),
                });
            }
            Schedule::Flexible(validate_flexible(&place, f, errs))
        } else {
            let sessions = validate_sessions(&place, v.sessions.as_deref().unwrap_or(&[]), errs);
            let seasons = v
                .seasons
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let sp = format!("{place}.seasons[{j}]");
                    valid_month_day(&sp, s.from, errs);
                    valid_month_day(&sp, s.to, errs);
                    Season {
                        name: s.name.clone(),
                        from: s.from,
                        to: s.to,
                        sessions: validate_sessions(&sp, &s.sessions, errs),
                    }
                })
                .collect();
            Schedule::Fixed { sessions, seasons }
        };
        let effective_from = v.effective_from.0;
        let id = v
            .name
            .clone()
            .unwrap_or_else(|| format!("{list_name}@{effective_from}"));
        out.push(ScheduleVersion {
            id,
            effective_from,
            schedule,
        });
    }
    let mut dates: Vec<Date> = out.iter().map(|v| v.effective_from).collect();
    dates.sort();
    for w in dates.windows(2) {
        if w[0] == w[1] {
            errs.push(ScheduleError::DuplicateEffectiveFrom {
                place: list_name.to_string(),
                date: w[0],
            });
        }
    }
    out
}

impl TryFrom<ScheduleSetConfig> for ScheduleSet {
    type Error = ScheduleErrors;

    fn try_from(cfg: ScheduleSetConfig) -> Result<Self, Self::Error> {
        let mut errs = Vec::new();
        let default = validate_list("default", &cfg.default, &mut errs);
        let departments = cfg
            .departments
            .iter()
            .map(|(name, list)| {
                (
                    name.clone(),
                    validate_list(&format!("departments.{name}"), list, &mut errs),
                )
            })
            .collect();
        if errs.is_empty() {
            Ok(ScheduleSet::new(default, departments))
        } else {
            Err(ScheduleErrors(errs))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const EXAMPLE: &str = r#"
[[default]]
effective_from = 2024-01-01
sessions = [
  { start = "08:30", end = "12:00" },
  { start = "14:00", end = "17:30" },
]
[[default.seasons]]
name = "summer"
from = [6, 1]
to = [9, 30]
sessions = [{ start = "08:00", end = "12:00" }, { start = "14:30", end = "18:00" }]

[[default]]
effective_from = "2026-04-01"
name = "2026 hours"
sessions = [
  { start = "09:00", end = "12:00", check_departure = true },
  { start = "13:30", end = "17:00", late_grace_minutes = 0, check_arrival = true },
]

[[departments."信息中心"]]
effective_from = "2025-03-01"
flexible = { band_start = "07:00", band_end = "19:00", core_start = "09:00", core_end = "16:00", required_minutes = 480 }
"#;

    #[test]
    fn parses_and_picks_versions() {
        let set = ScheduleSet::from_toml(EXAMPLE).unwrap();
        let (s, id) = set.schedule_for("办公室", date(2026, 3, 16));
        assert_eq!(id, "default@2024-01-01");
        let (sessions, season) = s.sessions_on(date(2026, 3, 16)).unwrap();
        assert_eq!(season, None);
        assert_eq!(sessions[0].start, time(8, 30, 0, 0));
        assert!(sessions[0].check_arrival && !sessions[0].check_departure);
        assert!(!sessions[1].check_arrival && sessions[1].check_departure);
        assert_eq!(sessions[1].late_grace_minutes, 5);

        let (s, _) = set.schedule_for("办公室", date(2025, 7, 1));
        assert_eq!(s.sessions_on(date(2025, 7, 1)).unwrap().1, Some("summer"));

        let (s, id) = set.schedule_for("办公室", date(2026, 4, 1));
        assert_eq!(id, "2026 hours");
        let (sessions, _) = s.sessions_on(date(2026, 4, 1)).unwrap();
        assert!(
            sessions
                .iter()
                .all(|s| s.check_arrival && s.check_departure)
        );
        assert_eq!(sessions[1].late_grace_minutes, 0);

        let (s, id) = set.schedule_for("信息中心", date(2025, 3, 1));
        assert_eq!(id, "departments.信息中心@2025-03-01");
        assert!(matches!(s, Schedule::Flexible(f) if f.required_minutes == 480));
        // Before the department's first version: the office default.
        assert_eq!(
            set.schedule_for("信息中心", date(2025, 2, 28)).1,
            "default@2024-01-01"
        );
        // Before everything: the built-in default.
        assert_eq!(set.schedule_for("信息中心", date(2023, 6, 1)).1, BUILTIN_ID);
    }

    #[test]
    fn reports_every_error() {
        let bad = r#"
[[default]]
effective_from = "2024-01-01"
sessions = [
  { start = "12:00", end = "08:30" },
  { start = "08:30", end = "12:00" },
  { start = "11:00", end = "17:30", late_grace_minutes = -5 },
]
seasons = [{ name = "x", from = [2, 30], to = [13, 1], sessions = [] }]
[[default]]
effective_from = "2024-01-01"
flexible = { band_start = "07:00", band_end = "19:00", core_start = "16:00", core_end = "09:00", required_minutes = 0 }
"#;
        let err = ScheduleSet::from_toml(bad).unwrap_err();
        let ScheduleConfigError::Invalid(ScheduleErrors(errs)) = &err else {
            panic!("{err}")
        };
        let text = err.to_string();
        assert!(
            errs.iter()
                .any(|e| matches!(e, ScheduleError::EndNotAfterStart { .. })),
            "{text}"
        );
        assert!(
            errs.iter()
                .any(|e| matches!(e, ScheduleError::BadGrace { value: -5, .. })),
            "{text}"
        );
        assert!(
            errs.iter()
                .any(|e| matches!(e, ScheduleError::Overlap { .. })),
            "{text}"
        );
        assert!(
            errs.iter().any(|e| matches!(
                e,
                ScheduleError::BadMonthDay {
                    month: 2,
                    day: 30,
                    ..
                }
            )),
            "{text}"
        );
        assert!(
            errs.iter()
                .any(|e| matches!(e, ScheduleError::BadMonthDay { month: 13, .. })),
            "{text}"
        );
        assert!(
            errs.iter()
                .any(|e| matches!(e, ScheduleError::NoSessions { .. })),
            "{text}"
        );
        assert_eq!(
            errs.iter()
                .filter(|e| matches!(e, ScheduleError::Flexible { .. }))
                .count(),
            2,
            "{text}"
        );
        assert!(
            errs.iter()
                .any(|e| matches!(e, ScheduleError::DuplicateEffectiveFrom { .. })),
            "{text}"
        );
        assert!(
            text.contains("default[0].sessions[0]: end 08:30:00 is not after start 12:00:00"),
            "{text}"
        );
    }

    #[test]
    fn rejects_unknown_fields_and_mixed_kinds() {
        let e =
            ScheduleSet::from_toml("[[default]]\neffective_from = \"2024-01-01\"\nsesions = []\n")
                .unwrap_err();
        assert!(matches!(e, ScheduleConfigError::Parse(_)), "{e}");
        let mixed = r#"
[[default]]
effective_from = "2024-01-01"
sessions = [{ start = "08:30", end = "12:00" }]
flexible = { band_start = "07:00", band_end = "19:00", core_start = "09:00", core_end = "16:00", required_minutes = 480 }
"#;
        let e = ScheduleSet::from_toml(mixed).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
    }

    #[test]
    fn seasons_wrap_over_new_year() {
        let winter = Season {
            name: "winter".into(),
            from: (11, 15),
            to: (2, 28),
            sessions: vec![],
        };
        assert!(winter.contains(date(2026, 1, 10)));
        assert!(winter.contains(date(2026, 11, 15)));
        assert!(!winter.contains(date(2026, 3, 1)));
        assert!(!winter.contains(date(2026, 11, 14)));
    }
}

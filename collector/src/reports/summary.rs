//! The period summary: per staff member or per department, over `from..=to`, from
//! stored (and corrected) verdicts. Used by `report summary`, the officer's web page
//! and its exports.
//!
//! What a row counts (only days that are working days for the person count as
//! workdays; corrected statuses count as corrected):
//!
//! ```text
//! workdays       days whose status is not holiday or rest
//! present_days   status present
//! late_count     present days with late_minutes > 0, and late_minutes their sum
//! early_count    present days with early_minutes > 0, and early_minutes their sum
//! absent_days    status absent;  leave_days / field_days likewise
//! unknown_days   status unknown (not enough evidence either way)
//! unverified_days  present days with minutes late or early not charged for want of
//!                evidence (the PCs are not accounted for around the arrival or
//!                departure): counted here, not in late_count or early_count
//! nonwork        seconds by category over all days
//! coverage       covered_seconds / office_seconds over all days
//! ```

use super::corrections::ReportDay;
use crate::attendance::Status;
use crate::store::concerns::*;
use crate::verdicts::Rules;
use jiff::ToSpan;
use jiff::civil::Date;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum By {
    /// One row per staff member.
    #[default]
    Staff,
    /// One row per department.
    Department,
}

/// One summary row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    /// Employee id (by staff) or department name (by department).
    pub key: String,
    pub name: String,
    pub department: String,
    /// How many people the row covers.
    pub people: u32,
    pub workdays: u32,
    pub present_days: u32,
    pub late_count: u32,
    pub late_minutes: u32,
    pub early_count: u32,
    pub early_minutes: u32,
    pub absent_days: u32,
    pub leave_days: u32,
    pub field_days: u32,
    pub unknown_days: u32,
    pub unverified_days: u32,
    pub corrected_days: u32,
    pub nonwork_seconds: BTreeMap<String, u64>,
    pub office_seconds: u64,
    pub covered_seconds: u64,
}

impl SummaryRow {
    /// Live-agent coverage in percent (None without office time).
    pub fn coverage_percent(&self) -> Option<u64> {
        (self.covered_seconds * 100).checked_div(self.office_seconds)
    }

    /// All non-work minutes.
    pub fn nonwork_minutes(&self) -> u64 {
        self.nonwork_seconds.values().sum::<u64>() / 60
    }

    /// Adds one person-day; returns its non-work seconds.
    fn add_figures(&mut self, f: &Figures<'_>) -> anyhow::Result<u64> {
        if !matches!(f.status, Status::Holiday | Status::Rest) {
            self.workdays += 1;
        }
        match f.status {
            Status::Present => {
                self.present_days += 1;
                if f.late_minutes > 0 {
                    self.late_count += 1;
                    self.late_minutes += f.late_minutes;
                }
                if f.early_minutes > 0 {
                    self.early_count += 1;
                    self.early_minutes += f.early_minutes;
                }
                if f.unverified > 0 {
                    self.unverified_days += 1;
                }
            }
            Status::Absent => self.absent_days += 1,
            Status::Leave => self.leave_days += 1,
            Status::Field => self.field_days += 1,
            Status::Unknown => self.unknown_days += 1,
            Status::Holiday | Status::Rest => {}
        }
        if f.corrected {
            self.corrected_days += 1;
        }
        let mut nonwork = 0;
        let mut add = |k: &str, s: u64| {
            nonwork += s;
            match self.nonwork_seconds.get_mut(k) {
                Some(total) => *total += s,
                None => {
                    self.nonwork_seconds.insert(k.to_owned(), s);
                }
            }
        };
        match &f.nonwork {
            Nonwork::Map(m) => m.iter().for_each(|(k, s)| add(k, *s)),
            Nonwork::Stored(v) => v.for_each_nonwork(add)?,
        }
        self.office_seconds += f.coverage.office_seconds;
        self.covered_seconds += f.coverage.covered_seconds;
        Ok(nonwork)
    }

    /// Adds another row's counts (one more person's, for a department's row).
    fn absorb(&mut self, o: &SummaryRow) {
        self.people += o.people;
        self.workdays += o.workdays;
        self.present_days += o.present_days;
        self.late_count += o.late_count;
        self.late_minutes += o.late_minutes;
        self.early_count += o.early_count;
        self.early_minutes += o.early_minutes;
        self.absent_days += o.absent_days;
        self.leave_days += o.leave_days;
        self.field_days += o.field_days;
        self.unknown_days += o.unknown_days;
        self.unverified_days += o.unverified_days;
        self.corrected_days += o.corrected_days;
        for (k, s) in &o.nonwork_seconds {
            *self.nonwork_seconds.entry(k.clone()).or_default() += s;
        }
        self.office_seconds += o.office_seconds;
        self.covered_seconds += o.covered_seconds;
    }
}

/// A week of the trend: its Monday, minutes late, non-work minutes.
pub type Week = (Date, u64, u64);

/// What one person-day adds to a row (corrections applied).
struct Figures<'a> {
    status: Status,
    late_minutes: u32,
    early_minutes: u32,
    unverified: u32,
    corrected: bool,
    nonwork: Nonwork<'a>,
    coverage: crate::attendance::Coverage,
}

/// Non-work seconds by category: a verdict's map, or a stored row's, read as it
/// is added up.
enum Nonwork<'a> {
    Map(&'a BTreeMap<String, u64>),
    Stored(crate::store::directory::StoredVerdict<'a>),
}

impl<'a> Figures<'a> {
    fn of_verdict(v: &'a crate::attendance::DayVerdict) -> Self {
        Figures {
            status: v.status,
            late_minutes: v.late_minutes,
            early_minutes: v.early_minutes,
            unverified: v.unverified,
            corrected: false,
            nonwork: Nonwork::Map(&v.nonwork_seconds),
            coverage: v.coverage,
        }
    }

    fn of_stored(s: crate::store::directory::StoredVerdict<'a>) -> Self {
        Figures {
            status: s.status,
            late_minutes: s.late_minutes,
            early_minutes: s.early_minutes,
            unverified: s.unverified,
            corrected: false,
            nonwork: Nonwork::Stored(s),
            coverage: s.coverage,
        }
    }

    /// As [`super::corrections::apply`] corrects a verdict: the corrected status,
    /// no minutes late or early, verified or not.
    fn correct(&mut self, status: Status) {
        (
            self.status,
            self.late_minutes,
            self.early_minutes,
            self.unverified,
            self.corrected,
        ) = (status, 0, 0, 0, true);
    }
}

/// The summary of `from..=to` and its weekly trend, added up from the stored
/// figures: the same rows as `summarize(&load_days(..), by)` and `weekly`, without
/// building a verdict per person-day. Only `people` count (a department, what the
/// reader may see), in employee id order as [`SqliteStore::staff`] lists them.
pub fn summary_between(
    store: &dyn Stores,
    rules: &Rules,
    from: Date,
    to: Date,
    by: By,
    people: &[crate::attendance::Person],
    now: jiff::Timestamp,
) -> anyhow::Result<(Vec<SummaryRow>, Vec<Week>)> {
    use crate::verdicts::Day;
    check_period(from, to)?;
    let corrections = store.corrections(from, to)?;
    let corrected: std::collections::BTreeSet<&str> =
        corrections.keys().map(|(id, _)| id.as_str()).collect();
    let mut t = Totals::default();
    crate::verdicts::walk_between(
        store,
        rules,
        from,
        to,
        people,
        crate::verdicts::Detail::Headline,
        now,
        |i, day| {
            let p = &people[i];
            let (date, mut f) = match &day {
                Day::Stored(s) => (s.date, Figures::of_stored(*s)),
                Day::Judged(v) => (v.date, Figures::of_verdict(v)),
            };
            if corrected.contains(p.employee_id.as_str())
                && let Some(c) = corrections.get(&(p.employee_id.clone(), date))
            {
                f.correct(c.status);
            }
            t.add(i, &p.employee_id, &p.name, &p.department, date, &f)
        },
    )?;
    Ok((t.rows(by), t.weeks()))
}

/// Per-person rows and per-week trend, added up day by day; rolled up into
/// departments on the way out. Both summaries (from stored figures, from whole
/// verdicts) add up through it.
#[derive(Default)]
struct Totals {
    /// By the person's slot: their index in the people walked.
    people: Vec<Option<SummaryRow>>,
    weeks: BTreeMap<Date, (u64, u64)>,
    /// The last date added and its Monday.
    last_week: Option<(Date, Date)>,
}

impl Totals {
    /// Adds whole verdicts, slotted by employee id.
    fn add_days(&mut self, days: &[ReportDay]) {
        let mut slots: std::collections::HashMap<&str, usize> = Default::default();
        for d in days {
            let v = &d.verdict;
            let n = slots.len();
            let slot = *slots.entry(&v.employee_id).or_insert(n);
            // The status is corrected already (`corrections::apply`).
            let f = Figures {
                corrected: d.correction.is_some(),
                ..Figures::of_verdict(v)
            };
            // A verdict's figures are a map: adding them cannot fail.
            let _ = self.add(slot, &v.employee_id, &v.name, &v.department, v.date, &f);
        }
    }

    fn add(
        &mut self,
        slot: usize,
        id: &str,
        name: &str,
        department: &str,
        date: Date,
        f: &Figures<'_>,
    ) -> anyhow::Result<()> {
        if slot >= self.people.len() {
            self.people.resize(slot + 1, None);
        }
        let row = self.people[slot].get_or_insert_with(|| SummaryRow {
            key: id.to_owned(),
            name: name.to_owned(),
            department: department.to_owned(),
            people: 1,
            ..SummaryRow::default()
        });
        let nonwork = row.add_figures(f)?;
        let monday = match self.last_week {
            Some((d, monday)) if d == date => monday,
            _ => {
                let monday = monday_of(date);
                self.last_week = Some((date, monday));
                monday
            }
        };
        let week = self.weeks.entry(monday).or_default();
        if f.status == Status::Present {
            week.0 += u64::from(f.late_minutes);
        }
        week.1 += nonwork / 60;
        Ok(())
    }

    /// Rows in key order.
    fn rows(&self, by: By) -> Vec<SummaryRow> {
        let mut rows: BTreeMap<&str, SummaryRow> = BTreeMap::new();
        for row in self.people.iter().flatten() {
            match by {
                By::Staff => {
                    rows.insert(&row.key, row.clone());
                }
                By::Department => rows
                    .entry(&row.department)
                    .or_insert_with(|| SummaryRow {
                        key: row.department.clone(),
                        name: row.department.clone(),
                        department: row.department.clone(),
                        ..SummaryRow::default()
                    })
                    .absorb(row),
            }
        }
        rows.into_values().collect()
    }

    fn weeks(&self) -> Vec<Week> {
        self.weeks.iter().map(|(d, (l, n))| (*d, *l, *n)).collect()
    }
}

/// A report covers `from..=to`, at most 366 days.
fn check_period(from: Date, to: Date) -> anyhow::Result<()> {
    anyhow::ensure!(from <= to, "from {from} is after to {to}");
    anyhow::ensure!(
        from.until(to)?.get_days() <= 366,
        "a period of at most 366 days"
    );
    Ok(())
}

fn monday_of(date: Date) -> Date {
    date.checked_sub(i64::from(date.weekday().to_monday_zero_offset()).days())
        .unwrap_or(date)
}

/// Aggregates `days` into rows, in key order.
pub fn summarize(days: &[ReportDay], by: By) -> Vec<SummaryRow> {
    let mut t = Totals::default();
    t.add_days(days);
    t.rows(by)
}

/// Sorts rows by a column name (`late_minutes`, `absent_days`, ...; `-` first for
/// descending). Unknown names leave the key order.
pub fn sort_rows(rows: &mut [SummaryRow], by: &str) {
    let (desc, col) = match by.strip_prefix('-') {
        Some(c) => (true, c),
        None => (false, by),
    };
    let key = |r: &SummaryRow| -> Option<u64> {
        Some(match col {
            "workdays" => r.workdays.into(),
            "present_days" => r.present_days.into(),
            "late_count" => r.late_count.into(),
            "late_minutes" => r.late_minutes.into(),
            "early_count" => r.early_count.into(),
            "early_minutes" => r.early_minutes.into(),
            "absent_days" => r.absent_days.into(),
            "unknown_days" => r.unknown_days.into(),
            "unverified_days" => r.unverified_days.into(),
            "nonwork_minutes" => r.nonwork_minutes(),
            "coverage" => r.coverage_percent().unwrap_or(0),
            _ => return None,
        })
    };
    if col == "name" {
        rows.sort_by(|a, b| a.name.cmp(&b.name));
    } else if key(&SummaryRow::default()).is_some() {
        rows.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.key.cmp(&b.key)));
    } else {
        return;
    }
    if desc {
        rows.reverse();
    }
}

/// Non-work categories in display order (then any office-specific ones).
pub const CATEGORIES: [&str; 5] = ["chat", "games", "media", "downloads", "nonwork_web"];

/// Every verdict of `people` (in employee id order) on every date of `from..=to`
/// with corrections applied, by date then employee id. At most 366 days.
pub fn load_days(
    store: &dyn Stores,
    rules: &Rules,
    from: Date,
    to: Date,
    people: &[crate::attendance::Person],
    detail: crate::verdicts::Detail,
    now: jiff::Timestamp,
) -> anyhow::Result<Vec<ReportDay>> {
    check_period(from, to)?;
    let all = crate::verdicts::verdicts_between(store, rules, from, to, people, detail, now)?;
    Ok(super::corrections::apply(
        all,
        &store.corrections(from, to)?,
    ))
}

/// Output formats of `report summary` (and `report daily`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
    Xlsx,
}

fn columns() -> Vec<String> {
    let mut c: Vec<String> = [
        "key",
        "name",
        "department",
        "people",
        "workdays",
        "present_days",
        "late_count",
        "late_minutes",
        "early_count",
        "early_minutes",
        "absent_days",
        "leave_days",
        "field_days",
        "unknown_days",
        "unverified_days",
        "corrected_days",
    ]
    .map(str::to_owned)
    .to_vec();
    c.extend(CATEGORIES.iter().map(|k| format!("{k}_minutes")));
    c.push("nonwork_minutes".into());
    c.push("coverage_percent".into());
    c
}

/// A row as numbers after the three text columns.
fn numbers(r: &SummaryRow) -> Vec<Option<u64>> {
    let mut n: Vec<Option<u64>> = [
        r.people,
        r.workdays,
        r.present_days,
        r.late_count,
        r.late_minutes,
        r.early_count,
        r.early_minutes,
        r.absent_days,
        r.leave_days,
        r.field_days,
        r.unknown_days,
        r.unverified_days,
        r.corrected_days,
    ]
    .map(|x| Some(u64::from(x)))
    .to_vec();
    n.extend(
        CATEGORIES
            .iter()
            .map(|k| Some(r.nonwork_seconds.get(*k).copied().unwrap_or(0) / 60)),
    );
    n.push(Some(r.nonwork_minutes()));
    n.push(r.coverage_percent());
    n
}

/// Writes rows in `format`.
/// Writes `rows` in `format`. `note` (a provisional calendar, say) follows the
/// table and the XLSX sheet's rows; CSV and JSON keep their shape.
pub fn render(
    rows: &[SummaryRow],
    format: Format,
    note: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let cols = columns();
    let text = |r: &SummaryRow| -> Vec<String> {
        let mut t = vec![r.key.clone(), r.name.clone(), r.department.clone()];
        t.extend(
            numbers(r)
                .into_iter()
                .map(|n| n.map(|n| n.to_string()).unwrap_or_default()),
        );
        t
    };
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            out.write_all(b"\n")?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&cols)?;
            for r in rows {
                super::write_csv_record(&mut w, text(r))?;
            }
            w.flush()?;
        }
        Format::Table => {
            let body: Vec<Vec<String>> = rows.iter().map(text).collect();
            super::write_table(&cols, &body, out)?;
            if let Some(note) = note {
                writeln!(out, "\n{note}")?;
            }
        }
        Format::Xlsx => {
            let mut sheet = super::xlsx::Sheet::new("summary", &cols);
            for r in rows {
                let mut cells = vec![
                    super::xlsx::Cell::Text(r.key.clone()),
                    super::xlsx::Cell::Text(r.name.clone()),
                    super::xlsx::Cell::Text(r.department.clone()),
                ];
                cells.extend(numbers(r).into_iter().map(|n| match n {
                    Some(n) => super::xlsx::Cell::Number(n as f64),
                    None => super::xlsx::Cell::Empty,
                }));
                sheet.row(cells);
            }
            if let Some(note) = note {
                sheet.row(Vec::new());
                sheet.row(vec![super::xlsx::Cell::Text(note.to_owned())]);
            }
            out.write_all(&sheet.into_bytes()?)?;
        }
    }
    Ok(())
}

/// Weekly totals for the trend chart: (Monday of the week, late minutes, non-work
/// minutes), in week order, from whole verdicts: the reference the tests hold
/// [`summary_between`]'s trend to.
#[cfg(test)]
pub fn weekly(days: &[ReportDay]) -> Vec<Week> {
    let mut t = Totals::default();
    t.add_days(days);
    t.weeks()
}

/// What `report summary` is asked for.
#[derive(Debug, Clone)]
pub struct SummaryRequest {
    pub from: Date,
    pub to: Date,
    pub by: By,
    pub department: Option<String>,
    pub format: Format,
    pub out: Option<std::path::PathBuf>,
    pub now: Option<jiff::Timestamp>,
}

/// Runs `report summary`.
pub fn run_cli(
    store: &dyn Stores,
    rules: &crate::verdicts::Rules,
    args: SummaryRequest,
) -> anyhow::Result<()> {
    let now = args.now.unwrap_or_else(crate::clock::now);
    let mut people = store.staff()?;
    people.retain(|p| args.department.as_ref().is_none_or(|d| &p.department == d));
    let (rows, _) = summary_between(store, rules, args.from, args.to, args.by, &people, now)?;
    let note = super::provisional_note(rules, args.from, args.to);
    if let Some(n) = &note {
        eprintln!("warning: {n}");
    }
    super::write_output(args.out.as_deref(), args.format == Format::Xlsx, |out| {
        render(&rows, args.format, note.as_deref(), out)
    })?;
    super::audit_export(
        store,
        &format!(
            "report summary --from {} --to {} --by {:?} --format {:?}",
            args.from, args.to, args.by, args.format
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attendance::{Coverage, DayKind, DayVerdict};
    use crate::reports::corrections::{Correction, apply};
    #[allow(unused_imports)]
    use crate::store::concerns::*;

    fn day(id: &str, dept: &str, date: &str, status: Status, late: u32, chat: u64) -> DayVerdict {
        DayVerdict {
            employee_id: id.into(),
            name: format!("name-{id}"),
            department: dept.into(),
            date: date.parse().unwrap(),
            day_kind: DayKind::Workday,
            calendar_provisional: false,
            status,
            provisional: false,
            arrival: None,
            departure: None,
            late_minutes: late,
            early_minutes: if late > 0 { 3 } else { 0 },
            checkpoints: Vec::new(),
            unverified: 0,
            nonwork_seconds: if chat > 0 {
                [("chat".to_string(), chat)].into()
            } else {
                BTreeMap::new()
            },
            coverage: Coverage {
                office_seconds: 100,
                covered_seconds: 50,
            },
            evidence: Vec::new(),
            schedule_version: "v".into(),
            policy_note: String::new(),
            why: Vec::new(),
            absenteeism_half_days: 0,
            missing_checkpoints: 0,
            overtime_minutes: Default::default(),
        }
    }

    #[test]
    fn summary_counts_days_minutes_and_corrections() {
        let verdicts = vec![
            day("E001", "A", "2026-11-23", Status::Present, 11, 600),
            day("E001", "A", "2026-11-24", Status::Present, 0, 120),
            day("E001", "A", "2026-11-25", Status::Absent, 0, 0),
            day("E001", "A", "2026-11-28", Status::Rest, 0, 0),
            day("E002", "A", "2026-11-23", Status::Unknown, 0, 0),
            day("E002", "A", "2026-11-24", Status::Present, 5, 0),
            day("E003", "B", "2026-11-24", Status::Leave, 0, 0),
        ];
        // E002's late day is corrected to field work.
        let mut corr = BTreeMap::new();
        corr.insert(
            ("E002".to_string(), "2026-11-24".parse().unwrap()),
            Correction {
                employee_id: "E002".into(),
                date: "2026-11-24".parse().unwrap(),
                status: Status::Field,
                original: None,
                who: "officer".into(),
                why: "meeting".into(),
                at_ms: 0,
            },
        );
        let days = apply(verdicts, &corr);
        let rows = summarize(&days, By::Staff);
        assert_eq!(rows.len(), 3);
        let e1 = &rows[0];
        assert_eq!(e1.key, "E001");
        assert_eq!(e1.workdays, 3);
        assert_eq!(e1.present_days, 2);
        assert_eq!((e1.late_count, e1.late_minutes), (1, 11));
        assert_eq!((e1.early_count, e1.early_minutes), (1, 3));
        assert_eq!(e1.absent_days, 1);
        assert_eq!(e1.nonwork_seconds["chat"], 720);
        assert_eq!(e1.nonwork_minutes(), 12);
        assert_eq!(e1.coverage_percent(), Some(50));
        let e2 = &rows[1];
        assert_eq!(e2.present_days, 0);
        assert_eq!((e2.late_count, e2.late_minutes), (0, 0));
        assert_eq!(
            (e2.field_days, e2.unknown_days, e2.corrected_days),
            (1, 1, 1)
        );

        let by_dept = summarize(&days, By::Department);
        assert_eq!(by_dept.len(), 2);
        assert_eq!(by_dept[0].key, "A");
        assert_eq!(by_dept[0].people, 2);
        assert_eq!(by_dept[0].workdays, 5);
        assert_eq!(by_dept[0].late_minutes, 11);
        assert_eq!(by_dept[1].leave_days, 1);

        let mut sorted = rows.clone();
        sort_rows(&mut sorted, "-late_minutes");
        assert_eq!(sorted[0].key, "E001");
        sort_rows(&mut sorted, "unknown_days");
        assert_eq!(sorted[2].key, "E002");

        let weeks = weekly(&days);
        assert_eq!(weeks.len(), 1);
        assert_eq!(weeks[0].0.to_string(), "2026-11-23");
        assert_eq!(weeks[0].1, 11);
        assert_eq!(weeks[0].2, 12);
    }

    #[test]
    fn every_format_renders() {
        let days = apply(
            vec![day("E001", "A", "2026-11-23", Status::Present, 11, 600)],
            &BTreeMap::new(),
        );
        let rows = summarize(&days, By::Staff);
        for f in [Format::Table, Format::Csv, Format::Json, Format::Xlsx] {
            let mut out = Vec::new();
            render(&rows, f, None, &mut out).unwrap();
            assert!(!out.is_empty(), "{f:?}");
        }
        let mut csv = Vec::new();
        render(&rows, Format::Csv, None, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(
            csv.starts_with("key,name,department,people,workdays"),
            "{csv}"
        );
        assert!(
            csv.contains("E001,name-E001,A,1,1,1,1,11,1,3,0,0,0,0,0,0,10,0,0,0,0,10,50"),
            "{csv}"
        );
    }
}

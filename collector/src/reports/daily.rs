//! The daily report: one row per staff member for one date.
//!
//! JSON is one array of day records with ARCHITECTURE.md's field names:
//! `employee_id`, `name`, `department`, `date`, `status`, `arrival`, `departure`
//! (RFC 3339 or null), `late_minutes`, `early_minutes`, `nonwork_seconds` (category ->
//! seconds), `evidence`, plus `coverage`, `schedule_version`, `day_kind`,
//! `provisional`, `checkpoints` and `policy_note`, and `correction` (null, or who
//! corrected the status, why and from what). CSV and the table carry the scalar
//! columns with non-work time as `category=seconds` pairs, a `corrected` column and a
//! last `unverified` column (minutes late or early not charged for want of evidence,
//! as `late=N` / `early=N`); XLSX has typed cells (dates, local times, numbers).

use super::corrections::ReportDay;
use crate::attendance::DayVerdict;
use std::io::Write;

/// Output formats of `report daily`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON array of day records.
    Json,
    /// CSV with a header line.
    Csv,
    /// Aligned columns for a terminal.
    Table,
    /// An Excel workbook (needs --out unless stdout is redirected).
    Xlsx,
}

const COLUMNS: [&str; 13] = [
    "employee_id",
    "name",
    "department",
    "date",
    "status",
    "arrival",
    "departure",
    "late_minutes",
    "early_minutes",
    "nonwork_seconds",
    "coverage_percent",
    "corrected",
    "unverified",
];

/// One report line. Instants are shown in the office's time zone: as `HH:MM`
/// in the table (the date has its own column), as RFC 3339 with the offset in CSV.
fn row(d: &ReportDay, tz: &jiff::tz::TimeZone, short: bool) -> [String; 13] {
    let v = &d.verdict;
    let t = |t: Option<jiff::Timestamp>| {
        t.map(|t| {
            let z = t.to_zoned_datetime(tz.clone());
            if short {
                z.strftime("%H:%M").to_string()
            } else {
                z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
            }
        })
        .unwrap_or_default()
    };
    let nonwork = v
        .nonwork_seconds
        .iter()
        .map(|(k, s)| format!("{k}={s}"))
        .collect::<Vec<_>>()
        .join(" ");
    let coverage = (v.coverage.covered_seconds * 100)
        .checked_div(v.coverage.office_seconds)
        .map(|p| p.to_string())
        .unwrap_or_default();
    [
        v.employee_id.clone(),
        v.name.clone(),
        v.department.clone(),
        v.date.to_string(),
        serde_json::to_value(v.status)
            .ok()
            .and_then(|s| s.as_str().map(str::to_owned))
            .unwrap_or_default(),
        t(v.arrival),
        t(v.departure),
        v.late_minutes.to_string(),
        v.early_minutes.to_string(),
        nonwork,
        coverage,
        d.correction
            .as_ref()
            .map(|c| format!("{}: {}", c.who, c.why))
            .unwrap_or_default(),
        unverified(v),
    ]
}

/// Minutes late and early not charged for want of evidence: `late=6 early=450`.
fn unverified(v: &DayVerdict) -> String {
    let (late, early) = v.unverified_minutes();
    [("late", late), ("early", early)]
        .iter()
        .filter(|(_, m)| *m > 0)
        .map(|(k, m)| format!("{k}={m}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn xlsx(days: &[ReportDay], tz: &jiff::tz::TimeZone) -> anyhow::Result<Vec<u8>> {
    use super::xlsx::{Cell, Sheet};
    let mut header: Vec<String> = COLUMNS[..9].iter().map(|c| c.to_string()).collect();
    header.extend(
        super::summary::CATEGORIES
            .iter()
            .map(|k| format!("{k}_minutes")),
    );
    header.extend(["coverage_percent", "corrected", "unverified"].map(String::from));
    let mut sheet = Sheet::new("daily", &header);
    for d in days {
        let v = &d.verdict;
        let local = |t: Option<jiff::Timestamp>| match t {
            Some(t) => Cell::DateTime(tz.to_datetime(t)),
            None => Cell::Empty,
        };
        let r = row(d, tz, false);
        let mut cells = vec![
            Cell::Text(v.employee_id.clone()),
            Cell::Text(v.name.clone()),
            Cell::Text(v.department.clone()),
            Cell::Date(v.date),
            Cell::Text(r[4].clone()),
            local(v.arrival),
            local(v.departure),
            Cell::Number(v.late_minutes.into()),
            Cell::Number(v.early_minutes.into()),
        ];
        cells.extend(
            super::summary::CATEGORIES.iter().map(|k| {
                Cell::Number((v.nonwork_seconds.get(*k).copied().unwrap_or(0) / 60) as f64)
            }),
        );
        cells.push(match r[10].parse::<f64>() {
            Ok(n) => Cell::Number(n),
            Err(_) => Cell::Empty,
        });
        cells.push(Cell::Text(r[11].clone()));
        cells.push(Cell::Text(r[12].clone()));
        sheet.row(cells);
    }
    sheet.into_bytes()
}

/// Writes uncorrected `verdicts` in `format` (times in UTC in XLSX).
pub fn render(verdicts: &[DayVerdict], format: Format, out: &mut dyn Write) -> anyhow::Result<()> {
    let days = super::corrections::apply(verdicts.to_vec(), &Default::default());
    render_days(&days, format, &jiff::tz::TimeZone::UTC, out)
}

/// Writes `days` in `format`, with instants in `tz` (JSON keeps UTC RFC 3339).
pub fn render_days(
    days: &[ReportDay],
    format: Format,
    tz: &jiff::tz::TimeZone,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let verdicts = days;
    match format {
        Format::Xlsx => out.write_all(&xlsx(days, tz)?)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, verdicts)?;
            out.write_all(b"\n")?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(COLUMNS)?;
            for v in verdicts {
                super::write_csv_record(&mut w, row(v, tz, false))?;
            }
            w.flush()?;
        }
        Format::Table => {
            let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
            let rows: Vec<Vec<String>> =
                verdicts.iter().map(|v| row(v, tz, true).to_vec()).collect();
            super::write_table(&header, &rows, out)?;
        }
    }
    Ok(())
}

/// Runs `report daily`: everyone's verdict on `date` (corrections applied), written
/// to `out_file` or stdout, and the export recorded in the audit log.
pub fn run_cli(
    store: &dyn crate::store::Stores,
    rules: &crate::verdicts::Rules,
    date: jiff::civil::Date,
    department: Option<&str>,
    format: Format,
    out_file: Option<&std::path::Path>,
    now: Option<jiff::Timestamp>,
) -> anyhow::Result<()> {
    let now = now.unwrap_or_else(crate::clock::now);
    let mut verdicts = crate::verdicts::verdicts_for_date(store, rules, date, now)?;
    if let Some(d) = department {
        verdicts.retain(|v| v.department == d);
    }
    let days = super::corrections::apply(verdicts, &store.corrections(date, date)?);
    if let Some(n) = super::provisional_note(rules, date, date) {
        eprintln!("warning: {n}");
    }
    super::write_output(out_file, format == Format::Xlsx, |out| {
        render_days(&days, format, &rules.settings.time_zone, out)
    })?;
    super::audit_export(
        store,
        &format!("report daily --date {date} --format {format:?}"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attendance::{Coverage, DayKind, Status};

    fn verdict() -> DayVerdict {
        DayVerdict {
            employee_id: "E001".into(),
            name: "张三".into(),
            department: "办公室".into(),
            date: "2026-11-24".parse().unwrap(),
            day_kind: DayKind::Workday,
            calendar_provisional: false,
            status: Status::Present,
            provisional: false,
            arrival: Some("2026-11-24T00:41:00Z".parse().unwrap()),
            departure: Some("2026-11-24T09:20:00Z".parse().unwrap()),
            late_minutes: 11,
            early_minutes: 10,
            checkpoints: Vec::new(),
            unverified: 0,
            nonwork_seconds: [("chat".to_string(), 1500)].into(),
            coverage: Coverage {
                office_seconds: 100,
                covered_seconds: 95,
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

    fn rendered(format: Format) -> String {
        let days = super::super::corrections::apply(vec![verdict()], &Default::default());
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let mut out = Vec::new();
        render_days(&days, format, &tz, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_and_csv_show_office_time_and_json_keeps_utc() {
        let table = rendered(Format::Table);
        assert!(
            table.contains("08:41") && table.contains("17:20"),
            "{table}"
        );
        let csv = rendered(Format::Csv);
        assert!(csv.contains("2026-11-24T08:41:00+08:00"), "{csv}");
        let json = rendered(Format::Json);
        assert!(json.contains("2026-11-24T00:41:00Z"), "{json}");
    }
}

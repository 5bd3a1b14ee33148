//! The daily report: one row per staff member for one date.
//!
//! JSON is one array of day records with ARCHITECTURE.md's field names:
//! `employee_id`, `name`, `department`, `date`, `status`, `arrival`, `departure`
//! (RFC 3339 or null), `late_minutes`, `early_minutes`, `nonwork_seconds` (category ->
//! seconds), `evidence`, plus `coverage`, `schedule_version`, `day_kind`,
//! `provisional`, `checkpoints` and `policy_note`. CSV and the table carry the
//! scalar columns with non-work time as `category=seconds` pairs.

use crate::attendance::DayVerdict;
use std::io::Write;

/// Output formats of `report daily`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A JSON array of day records.
    Json,
    /// CSV with a header line.
    Csv,
    /// Aligned columns for a terminal.
    Table,
}

const COLUMNS: [&str; 11] = [
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
];

fn row(v: &DayVerdict) -> [String; 11] {
    let t = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
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
    ]
}

/// Writes `verdicts` in `format`.
pub fn render(verdicts: &[DayVerdict], format: Format, out: &mut dyn Write) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, verdicts)?;
            out.write_all(b"\n")?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(COLUMNS)?;
            for v in verdicts {
                w.write_record(row(v))?;
            }
            w.flush()?;
        }
        Format::Table => {
            let rows: Vec<[String; 11]> = verdicts.iter().map(row).collect();
            let mut widths = COLUMNS.map(|c| c.chars().count());
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                cells
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            writeln!(out, "{}", line(COLUMNS.to_vec()))?;
            for r in &rows {
                writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
            }
        }
    }
    Ok(())
}

//! Exemptions as people enter them: `leave add` arguments and the bulk file
//! `employee_id,kind,start,end,note`.
//!
//! An instant is RFC 3339 (`2026-11-24T08:30:00+08:00`), a civil date-time in the
//! office's time zone (`2026-11-24T08:30` or `2026-11-24 08:30`), or a bare date. A
//! bare date as the start means its beginning; as the end it means the *end* of that
//! day, so `--from 2026-11-24 --to 2026-11-24` is the whole of 24 November.
//!
//! What must stay true: a file is checked whole before anything is written, and
//! every problem names the file, the line and the field.

use crate::attendance::{Exemption, ExemptionKind};
use crate::staff::{FileErrors, check_header, csv_reader, numbered_records};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use std::path::Path;

/// The header a leave file must have.
pub const HEADER: [&str; 5] = ["employee_id", "kind", "start", "end", "note"];

/// Which edge of a bare date is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The beginning of the day.
    Start,
    /// The end of the day (the next day's beginning).
    End,
}

/// Parses `leave`, `field` or `business_trip` (also `business-trip`, `trip`).
pub fn parse_kind(text: &str) -> Result<ExemptionKind, String> {
    match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "leave" => Ok(ExemptionKind::Leave),
        "field" => Ok(ExemptionKind::Field),
        "business_trip" | "trip" => Ok(ExemptionKind::BusinessTrip),
        other => Err(format!(
            "{other:?} is not one of leave, field, business_trip"
        )),
    }
}

/// Parses an instant as described in the module docs.
pub fn parse_instant(text: &str, tz: &TimeZone, edge: Edge) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let civil = |dt: DateTime| {
        tz.to_ambiguous_timestamp(dt)
            .compatible()
            .map_err(|e| format!("{text:?}: {e}"))
    };
    if let Ok(dt) = text.replacen(' ', "T", 1).parse::<DateTime>()
        && text.len() > 10
    {
        return civil(dt);
    }
    if let Ok(d) = text.parse::<Date>() {
        let d = match edge {
            Edge::Start => d,
            Edge::End => d.tomorrow().map_err(|e| format!("{text:?}: {e}"))?,
        };
        return civil(d.to_datetime(jiff::civil::Time::midnight()));
    }
    Err(format!(
        "{text:?} is not an instant: use 2026-11-24, 2026-11-24T08:30 (office time) or 2026-11-24T08:30:00+08:00"
    ))
}

/// Builds one exemption, checking that it ends after it starts.
pub fn exemption(
    employee_id: &str,
    kind: &str,
    from: &str,
    to: &str,
    note: &str,
    tz: &TimeZone,
) -> Result<Exemption, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    if employee_id.trim().is_empty() {
        problems.push(("employee_id", "is empty".to_owned()));
    }
    let kind = parse_kind(kind)
        .map_err(|e| problems.push(("kind", e)))
        .ok();
    let start = parse_instant(from, tz, Edge::Start)
        .map_err(|e| problems.push(("start", e)))
        .ok();
    let end = parse_instant(to, tz, Edge::End)
        .map_err(|e| problems.push(("end", e)))
        .ok();
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        problems.push(("end", format!("{to:?} is not after the start {from:?}")));
    }
    match (kind, start, end) {
        (Some(kind), Some(start), Some(end)) if problems.is_empty() => Ok(Exemption {
            employee_id: employee_id.trim().to_owned(),
            kind,
            start,
            end,
            note: note.trim().to_owned(),
        }),
        _ => Err(problems),
    }
}

/// Reads and checks a leave file.
pub fn read_leave_csv(path: &Path, tz: &TimeZone) -> anyhow::Result<Vec<Exemption>> {
    let mut rdr = csv_reader(path)?;
    check_header(path, &mut rdr, &HEADER)?;
    let file = path.display().to_string();
    let (records, mut problems) = numbered_records(&file, &mut rdr);
    let mut out = Vec::new();
    for (line, rec) in records {
        if rec.len() != HEADER.len() && rec.len() != HEADER.len() - 1 {
            problems.push(format!(
                "{file}: line {line}: expected {} fields, found {}",
                HEADER.len(),
                rec.len()
            ));
            continue;
        }
        let note = rec.get(4).unwrap_or("");
        match exemption(&rec[0], &rec[1], &rec[2], &rec[3], note, tz) {
            Ok(e) => out.push(e),
            Err(list) => problems.extend(
                list.into_iter()
                    .map(|(field, what)| format!("{file}: line {line}: {field}: {what}")),
            ),
        }
    }
    if !problems.is_empty() {
        return Err(FileErrors(problems).into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> TimeZone {
        crate::attendance::Settings::default().time_zone
    }

    #[test]
    fn instants_in_every_accepted_form() {
        let tz = sh();
        let p = |t: &str, e: Edge| parse_instant(t, &tz, e).unwrap().to_string();
        assert_eq!(p("2026-11-24", Edge::Start), "2026-11-23T16:00:00Z");
        assert_eq!(p("2026-11-24", Edge::End), "2026-11-24T16:00:00Z");
        assert_eq!(p("2026-11-24T08:30", Edge::End), "2026-11-24T00:30:00Z");
        assert_eq!(p("2026-11-24 14:00", Edge::Start), "2026-11-24T06:00:00Z");
        assert_eq!(
            p("2026-11-24T08:30:00+08:00", Edge::Start),
            "2026-11-24T00:30:00Z"
        );
        assert!(parse_instant("tomorrow", &tz, Edge::Start).is_err());
    }

    #[test]
    fn a_bad_file_names_every_line_and_field_and_yields_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leave.csv");
        std::fs::write(
            &path,
            "employee_id,kind,start,end,note\nE001,leave,2026-11-24,2026-11-24,年假\nE002,holiday,2026-11-24,2026-11-25,\nE003,field,2026-11-24T10:00,2026-11-24T09:00,\n",
        )
        .unwrap();
        let err = read_leave_csv(&path, &sh()).unwrap_err().to_string();
        assert!(
            err.contains("leave.csv: line 3: kind: \"holiday\""),
            "{err}"
        );
        assert!(err.contains("leave.csv: line 4: end:"), "{err}");
        assert!(!err.contains("line 2"), "{err}");
    }
}

//! Leave balances: days of a leave type a person may take in a year, imported
//! with `leave balance import FILE.csv` (`employee_id,year,leave_type,days`).
//!
//! What must stay true: a file is checked whole before anything is written, and
//! every problem names the file, the line and the field. Balances are kept in half
//! days, so 5.5 days is exact.

use crate::staff::{FileErrors, check_header, csv_reader, numbered_records};
use serde::Serialize;
use std::path::Path;

/// The header a balance file must have.
pub const HEADER: [&str; 4] = ["employee_id", "year", "leave_type", "days"];

/// One person's balance of one leave type in one year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaveBalance {
    pub employee_id: String,
    pub year: i16,
    pub leave_type: String,
    /// In half days.
    pub half_days: u32,
}

/// Half days as days: `11` is `5.5`, `10` is `5`.
pub fn days(half_days: u32) -> String {
    if half_days.is_multiple_of(2) {
        (half_days / 2).to_string()
    } else {
        format!("{}.5", half_days / 2)
    }
}

/// Parses days in whole or half days (`5`, `5.5`, `0.5`).
pub fn parse_days(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (whole, half) = match t.split_once('.') {
        None => (t, false),
        Some((w, "5")) => (w, true),
        Some((w, "0")) => (w, false),
        Some(_) => return Err(format!("{t:?} is not whole or half days (5, 5.5)")),
    };
    let w: u32 = whole
        .parse()
        .map_err(|_| format!("{t:?} is not a number of days (5, 5.5)"))?;
    if w > 366 {
        return Err(format!("{t:?} is more than 366 days"));
    }
    Ok(w * 2 + u32::from(half))
}

/// Reads and checks a balance file; `known_types` are the office's leave types.
pub fn read_csv(path: &Path, known_types: &[String]) -> anyhow::Result<Vec<LeaveBalance>> {
    let mut rdr = csv_reader(path)?;
    check_header(path, &mut rdr, &HEADER)?;
    let file = path.display().to_string();
    let (records, mut problems) = numbered_records(&file, &mut rdr);
    let mut out: Vec<LeaveBalance> = Vec::new();
    for (line, rec) in records {
        if rec.len() != HEADER.len() {
            problems.push(format!(
                "{file}: line {line}: expected {} fields, found {}",
                HEADER.len(),
                rec.len()
            ));
            continue;
        }
        let mut bad = |field: &str, what: String| {
            problems.push(format!("{file}: line {line}: {field}: {what}"));
        };
        let employee_id = rec[0].to_owned();
        if employee_id.is_empty() {
            bad("employee_id", "is empty".into());
        }
        let year = rec[1]
            .parse::<i16>()
            .ok()
            .filter(|y| (2000..=2100).contains(y));
        if year.is_none() {
            bad("year", format!("{:?} is not a year such as 2027", &rec[1]));
        }
        let leave_type = rec[2].to_owned();
        if !known_types.contains(&leave_type) {
            bad(
                "leave_type",
                format!("{leave_type:?} is not one of {}", known_types.join(", ")),
            );
        }
        let half_days = parse_days(&rec[3]).map_err(|e| bad("days", e)).ok();
        if let (Some(year), Some(half_days)) = (year, half_days) {
            if out.iter().any(|b| {
                b.employee_id == employee_id && b.year == year && b.leave_type == leave_type
            }) {
                bad(
                    "employee_id",
                    format!("{employee_id} {year} {leave_type} is listed twice"),
                );
            }
            out.push(LeaveBalance {
                employee_id,
                year,
                leave_type,
                half_days,
            });
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

    #[test]
    fn days_in_halves() {
        assert_eq!(parse_days("5"), Ok(10));
        assert_eq!(parse_days("5.5"), Ok(11));
        assert_eq!(parse_days("0.5"), Ok(1));
        assert!(parse_days("5.25").is_err());
        assert!(parse_days("-1").is_err());
        assert_eq!(days(11), "5.5");
        assert_eq!(days(10), "5");
    }

    #[test]
    fn a_bad_file_names_every_line_and_field_and_yields_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("balances.csv");
        std::fs::write(
            &path,
            "employee_id,year,leave_type,days\nE001,2027,annual,5\nE002,27,annual,5\nE003,2027,holiday,5\nE004,2027,annual,2.3\nE001,2027,annual,6\n",
        )
        .unwrap();
        let types = vec!["annual".to_owned(), "sick".to_owned()];
        let err = read_csv(&path, &types).unwrap_err().to_string();
        for needle in [
            "balances.csv: line 3: year: \"27\"",
            "line 4: leave_type: \"holiday\" is not one of annual, sick",
            "line 5: days: \"2.3\"",
            "line 6: employee_id: E001 2027 annual is listed twice",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        assert!(!err.contains("line 2"), "{err}");
    }
}

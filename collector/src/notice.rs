//! The State Council's holiday notice of a year as an office imports it: a CSV file
//! `date,kind[,note]`, one day a line, naming the notice's holidays (`holiday`) and
//! make-up working days (`makeup_workday`); every other day follows the week.
//!
//! ```text
//! date,kind,note
//! 2027-01-01,holiday,元旦
//! 2027-02-05,holiday,春节
//! 2027-02-20,makeup_workday,春节调休上班
//! ```
//!
//! What must stay true: the file is checked whole before anything is stored, and
//! every problem names the file, the line and the field. A notice is refused unless
//! every date is in its year, each date appears once, the kinds are known, every
//! statutory holiday of the year ([`crate::attendance::statutory`]) is a holiday in
//! it, and every make-up working day is a Saturday or Sunday.

use crate::attendance::{DayKind, Notice, NoticeDay, statutory};
use crate::staff::{FileErrors, numbered_records};
use jiff::civil::{Date, Weekday};
use std::collections::BTreeMap;

/// Parses `kind` as a notice names it.
fn parse_kind(text: &str) -> Result<DayKind, String> {
    match text.to_ascii_lowercase().replace('-', "_").as_str() {
        "holiday" => Ok(DayKind::Holiday),
        "makeup_workday" => Ok(DayKind::MakeupWorkday),
        other => Err(format!(
            "{other:?} is not holiday or makeup_workday (a notice lists only the days it changes)"
        )),
    }
}

/// A CSV reader of a calendar file: a header, fields trimmed, `#` comments.
fn reader(text: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(text)
}

/// Reads and checks the notice of `year` from `text`; `file` names it in errors.
pub fn parse_notice(file: &str, text: &[u8], year: i16) -> Result<Notice, FileErrors> {
    let mut rdr = reader(text);
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect(),
        Err(e) => return Err(FileErrors(vec![format!("{file}: line 1: {e}")])),
    };
    if headers != ["date", "kind"] && headers != ["date", "kind", "note"] {
        return Err(FileErrors(vec![format!(
            "{file}: line 1: the header must be \"date,kind\" or \"date,kind,note\", found {:?}",
            headers.join(",")
        )]));
    }
    let mut days: BTreeMap<Date, (u64, DayKind, String)> = BTreeMap::new();
    let (records, mut problems) = numbered_records(file, &mut rdr);
    for (line, rec) in records {
        let at = |field: &str, what: String| format!("{file}: line {line}: {field}: {what}");
        if rec.len() < 2 || rec.len() > headers.len() {
            problems.push(format!(
                "{file}: line {line}: expected {} fields, found {}",
                headers.len(),
                rec.len()
            ));
            continue;
        }
        let date = match rec[0].parse::<Date>() {
            Ok(d) if d.year() == year => Some(d),
            Ok(d) => {
                problems.push(at("date", format!("{d} is not in {year}")));
                None
            }
            Err(_) => {
                problems.push(at(
                    "date",
                    format!("{:?} is not a date such as {year}-01-01", &rec[0]),
                ));
                None
            }
        };
        let kind = parse_kind(&rec[1])
            .map_err(|e| problems.push(at("kind", e)))
            .ok();
        let (Some(date), Some(kind)) = (date, kind) else {
            continue;
        };
        if kind == DayKind::MakeupWorkday
            && !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
        {
            problems.push(at(
                "kind",
                format!(
                    "{date} is a {:?}: a make-up working day is a Saturday or Sunday",
                    date.weekday()
                ),
            ));
        }
        let note = rec.get(2).unwrap_or_default().to_owned();
        if let Some((first, _, _)) = days.get(&date) {
            problems.push(at("date", format!("{date} is also on line {first}")));
            continue;
        }
        days.insert(date, (line, kind, note));
    }
    for s in statutory::days(year).iter() {
        match days.get(&s.date) {
            Some((_, DayKind::Holiday, _)) => {}
            Some((line, kind, _)) => problems.push(format!(
                "{file}: line {line}: kind: {} is {}, a statutory holiday by law, but the file says {kind}",
                s.date, s.name
            )),
            None => problems.push(format!(
                "{file}: {} ({}) is a statutory holiday by law and must be listed as holiday",
                s.date, s.name
            )),
        }
    }
    if !problems.is_empty() {
        return Err(FileErrors(problems));
    }
    Ok(Notice {
        year,
        days: days
            .into_iter()
            .map(|(date, (_, kind, note))| NoticeDay { date, kind, note })
            .collect(),
    })
}

/// Reads the office's own days (a closure, an extra holiday, a Saturday worked):
/// `date,kind[,note]`, any year, kind `workday`, `rest`, `holiday` or
/// `makeup_workday`, each date once. Every problem names the line and field.
pub fn parse_office_days(
    file: &str,
    text: &[u8],
) -> Result<Vec<(Date, DayKind, String)>, FileErrors> {
    let mut rdr = reader(text);
    let header = match rdr.headers() {
        Ok(h) => h.iter().collect::<Vec<_>>().join(","),
        Err(e) => return Err(FileErrors(vec![format!("{file}: line 1: {e}")])),
    };
    let header = header.trim_start_matches('\u{feff}').to_ascii_lowercase();
    if header != "date,kind" && header != "date,kind,note" {
        return Err(FileErrors(vec![format!(
            "{file}: line 1: the header must be \"date,kind\" or \"date,kind,note\", found {header:?}"
        )]));
    }
    let mut days: BTreeMap<Date, (u64, DayKind, String)> = BTreeMap::new();
    let (records, mut problems) = numbered_records(file, &mut rdr);
    for (line, rec) in records {
        let at = |field: &str, what: String| format!("{file}: line {line}: {field}: {what}");
        if !(2..=3).contains(&rec.len()) {
            problems.push(format!(
                "{file}: line {line}: expected date,kind[,note], found {} fields",
                rec.len()
            ));
            continue;
        }
        let date = rec[0]
            .parse::<Date>()
            .map_err(|_| {
                problems.push(at(
                    "date",
                    format!("{:?} is not a date such as 2027-04-30", &rec[0]),
                ))
            })
            .ok();
        let kind = DayKind::parse(&rec[1])
            .ok_or_else(|| {
                problems.push(at(
                    "kind",
                    format!(
                        "{:?} is not workday, rest, holiday or makeup_workday",
                        &rec[1]
                    ),
                ))
            })
            .ok();
        let (Some(date), Some(kind)) = (date, kind) else {
            continue;
        };
        if let Some((first, _, _)) = days.get(&date) {
            problems.push(at("date", format!("{date} is also on line {first}")));
            continue;
        }
        days.insert(
            date,
            (line, kind, rec.get(2).unwrap_or_default().to_owned()),
        );
    }
    if !problems.is_empty() {
        return Err(FileErrors(problems));
    }
    Ok(days
        .into_iter()
        .map(|(date, (_, kind, note))| (date, kind, note))
        .collect())
}

/// The notice of `year` in the import format, from a calendar's view of it: what
/// `calendar show --format notice` prints, ready to be edited and imported.
pub fn write_notice(rows: &[(Date, DayKind, Option<String>)]) -> String {
    let mut out = String::from("date,kind,note\n");
    for (d, k, note) in rows {
        if matches!(k, DayKind::Holiday | DayKind::MakeupWorkday) {
            out.push_str(&format!("{d},{k},{}\n", note.as_deref().unwrap_or("")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// The statutory days of 2027 as a notice would list them, with their names
    /// as notes or without.
    fn statutory_2027(notes: bool) -> String {
        statutory::days(2027)
            .iter()
            .map(|d| match notes {
                true => format!("{},holiday,{}\n", d.date, d.name),
                false => format!("{},holiday\n", d.date),
            })
            .collect()
    }

    #[test]
    fn a_good_notice_parses_with_its_notes() {
        let text = format!(
            "date,kind,note\n{}2027-02-09,holiday,春节\n2027-02-20,makeup_workday,春节调休上班\n",
            statutory_2027(true)
        );
        let n = parse_notice("2027.csv", text.as_bytes(), 2027).unwrap();
        assert_eq!(n.year, 2027);
        assert_eq!(n.days.len(), 15);
        let makeup = n
            .days
            .iter()
            .find(|d| d.kind == DayKind::MakeupWorkday)
            .unwrap();
        assert_eq!(makeup.date, date(2027, 2, 20));
        assert_eq!(makeup.note, "春节调休上班");
        // Without notes, and with a byte-order mark from a spreadsheet.
        let text = format!("\u{feff}date,kind\n{}", statutory_2027(false));
        let n = parse_notice("x.csv", text.as_bytes(), 2027).unwrap();
        assert_eq!(n.days.len(), 13);
    }

    #[test]
    fn every_problem_is_named_with_its_line_and_nothing_passes() {
        let text = format!(
            "date,kind\n{}2026-12-31,holiday\n2027-02-30,holiday\n2027-03-01,vacation\n2027-03-03,makeup_workday\n2027-01-01,holiday\n",
            statutory_2027(false).replace("2027-10-02,holiday\n", "")
        );
        let err = parse_notice("n.csv", text.as_bytes(), 2027).unwrap_err();
        let all = err.to_string();
        // The header and 12 statutory days come first.
        let line = |n: u64| 13 + n;
        for want in [
            format!("n.csv: line {}: date: 2026-12-31 is not in 2027", line(1)),
            format!(
                "n.csv: line {}: date: \"2027-02-30\" is not a date",
                line(2)
            ),
            format!("n.csv: line {}: kind: \"vacation\" is not holiday", line(3)),
            format!("n.csv: line {}: kind: 2027-03-03 is a Wednesday", line(4)),
            format!(
                "n.csv: line {}: date: 2027-01-01 is also on line 2",
                line(5)
            ),
            "n.csv: 2027-10-02 (国庆节) is a statutory holiday by law".to_string(),
        ] {
            assert!(all.contains(&want), "missing {want:?} in\n{all}");
        }
        assert_eq!(err.0.len(), 6, "{all}");
    }

    #[test]
    fn a_statutory_day_listed_as_a_workday_or_a_wrong_header_is_refused() {
        let text = format!(
            "date,kind\n{}",
            statutory_2027(false).replace("2027-06-09,holiday", "2027-06-09,makeup_workday")
        );
        let err = parse_notice("n.csv", text.as_bytes(), 2027)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "2027-06-09 is 端午节, a statutory holiday by law, but the file says makeup_workday"
            ),
            "{err}"
        );
        let err = parse_notice("n.csv", b"day,type\n2027-01-01,holiday\n", 2027)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: the header must be"), "{err}");
    }
}

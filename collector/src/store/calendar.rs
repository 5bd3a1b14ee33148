//! The State Council holiday notices an office imported (`calendar import`): one
//! row per year with who imported it and from where, and the days it names.
//!
//! What must stay true:
//! - a notice is stored whole or not at all, with its audit record in the same
//!   transaction; importing a year again replaces its days as a whole;
//! - [`SqliteStore::calendar_revision`] grows with every import, so a running
//!   `serve` sees a notice imported by another process on its next read.

use super::StoreError;
use super::audit_log as audit;
use super::sqlite::{SqliteStore, sql_err};
use crate::attendance::{DayKind, Notice, NoticeDay};
use crate::audit::AuditEntry;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

/// What is known of an imported notice besides its days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeInfo {
    pub year: i16,
    pub imported_ms: i64,
    /// Who imported it.
    pub actor: String,
    /// The file it came from.
    pub source: String,
    /// How many days it names.
    pub days: usize,
}

/// How many holidays and make-up workdays a notice names; an error for a day of
/// any other kind.
pub(crate) fn notice_counts(notice: &Notice) -> Result<(usize, usize), StoreError> {
    let (mut holidays, mut makeup) = (0, 0);
    for d in &notice.days {
        match d.kind {
            DayKind::Holiday => holidays += 1,
            DayKind::MakeupWorkday => makeup += 1,
            other => {
                return Err(StoreError::Invalid(format!(
                    "{}: a notice names holidays and make-up workdays, not {other}",
                    d.date
                )));
            }
        }
    }
    Ok((holidays, makeup))
}

pub(crate) fn kind_from(text: &str) -> Result<DayKind, StoreError> {
    match text {
        "holiday" => Ok(DayKind::Holiday),
        "makeup_workday" => Ok(DayKind::MakeupWorkday),
        other => Err(StoreError::Corrupt(format!(
            "calendar notice day of kind {other:?}"
        ))),
    }
}

impl super::CalendarNotices for SqliteStore {
    fn calendar_revision(&self) -> Result<i64, StoreError> {
        self.reader()
            .query_row(
                "SELECT coalesce(max(revision), 0) FROM calendar_notices",
                [],
                |r| r.get(0),
            )
            .map_err(sql_err(self.path()))
    }

    fn calendar_notices(&self) -> Result<Vec<Notice>, StoreError> {
        let err = sql_err(self.path());
        let conn = self.reader();
        let mut stmt = conn
            .prepare(
                "SELECT n.year, d.date, d.kind, d.note FROM calendar_notices n
                 LEFT JOIN calendar_notice_days d ON d.year = n.year
                 ORDER BY n.year, d.date",
            )
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        let mut out: Vec<Notice> = Vec::new();
        while let Some(r) = rows.next().map_err(&err)? {
            let year: i16 = r.get(0).map_err(&err)?;
            if out.last().is_none_or(|n| n.year != year) {
                out.push(Notice {
                    year,
                    days: Vec::new(),
                });
            }
            let Some(date): Option<String> = r.get(1).map_err(&err)? else {
                continue;
            };
            let kind: String = r.get(2).map_err(&err)?;
            let date = date
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("calendar notice day {date:?}: {e}")))?;
            if let Some(n) = out.last_mut() {
                n.days.push(NoticeDay {
                    date,
                    kind: kind_from(&kind)?,
                    note: r.get(3).map_err(&err)?,
                });
            }
        }
        Ok(out)
    }

    fn calendar_notice_infos(&self) -> Result<Vec<NoticeInfo>, StoreError> {
        let err = sql_err(self.path());
        let conn = self.reader();
        let mut stmt = conn
            .prepare(
                "SELECT n.year, n.imported_ms, n.actor, n.source,
                        (SELECT count(*) FROM calendar_notice_days d WHERE d.year = n.year)
                 FROM calendar_notices n ORDER BY n.year",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(NoticeInfo {
                    year: r.get(0)?,
                    imported_ms: r.get(1)?,
                    actor: r.get(2)?,
                    source: r.get(3)?,
                    days: r.get::<_, i64>(4)? as usize,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn import_calendar_notice(
        &self,
        notice: &Notice,
        actor: &str,
        source: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let err = sql_err(self.path());
        self.write_tx(|conn| {
            let before: Option<i64> = conn
                .query_row(
                    "SELECT count(*) FROM calendar_notice_days WHERE year = ?1
                     HAVING (SELECT count(*) FROM calendar_notices WHERE year = ?1) > 0",
                    [notice.year],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&err)?;
            let revision: i64 = conn
                .query_row(
                    "SELECT coalesce(max(revision), 0) + 1 FROM calendar_notices",
                    [],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            conn.execute(
                "DELETE FROM calendar_notice_days WHERE year = ?1",
                [notice.year],
            )
            .map_err(&err)?;
            conn.execute(
                "INSERT OR REPLACE INTO calendar_notices (year, revision, imported_ms, actor, source)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![notice.year, revision, now_ms, actor, source],
            )
            .map_err(&err)?;
            let mut insert = conn
                .prepare(
                    "INSERT INTO calendar_notice_days (date, year, kind, note) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(&err)?;
            let (holidays, makeup) = notice_counts(notice)?;
            for d in &notice.days {
                insert
                    .execute(params![
                        d.date.to_string(),
                        notice.year,
                        d.kind.as_str(),
                        d.note
                    ])
                    .map_err(&err)?;
            }
            audit::append(
                conn,
                &AuditEntry::new(
                    now_ms,
                    actor,
                    "calendar.import",
                    notice.year.to_string(),
                    serde_json::json!({
                        "source": source,
                        "holidays": holidays,
                        "makeup_workdays": makeup,
                        "replaced_days": before,
                    }),
                ),
            )?;
            Ok(before.is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::store::concerns::*;
    use jiff::civil::date;

    fn notice(year: i16, days: &[(i8, i8, DayKind)]) -> Notice {
        Notice {
            year,
            days: days
                .iter()
                .map(|&(m, d, kind)| NoticeDay {
                    date: date(year, m, d),
                    kind,
                    note: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn notices_round_trip_replace_by_year_and_are_audited() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.calendar_revision().unwrap(), 0);
        assert!(store.calendar_notices().unwrap().is_empty());
        let first = notice(
            2027,
            &[(1, 1, DayKind::Holiday), (2, 20, DayKind::MakeupWorkday)],
        );
        assert!(
            !store
                .import_calendar_notice(&first, "admin", "2027.csv", 1)
                .unwrap()
        );
        let r1 = store.calendar_revision().unwrap();
        assert!(r1 > 0);
        assert_eq!(store.calendar_notices().unwrap(), vec![first]);
        let second = notice(2027, &[(1, 1, DayKind::Holiday)]);
        assert!(
            store
                .import_calendar_notice(&second, "admin", "2027-fixed.csv", 2)
                .unwrap()
        );
        assert!(store.calendar_revision().unwrap() > r1);
        assert_eq!(store.calendar_notices().unwrap(), vec![second]);
        let infos = store.calendar_notice_infos().unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(
            (infos[0].days, infos[0].source.as_str()),
            (1, "2027-fixed.csv")
        );
        let audit = store.audit_list().unwrap();
        assert_eq!(
            audit
                .iter()
                .filter(|a| a.action == "calendar.import")
                .count(),
            2
        );
        assert!(matches!(
            store.audit_verify().unwrap(),
            crate::audit::Verification::Intact { .. }
        ));
    }

    #[test]
    fn a_bad_day_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let bad = notice(2027, &[(1, 1, DayKind::Holiday), (1, 4, DayKind::Workday)]);
        assert!(
            store
                .import_calendar_notice(&bad, "admin", "x.csv", 1)
                .is_err()
        );
        assert!(store.calendar_notices().unwrap().is_empty());
        assert_eq!(store.calendar_revision().unwrap(), 0);
    }
}

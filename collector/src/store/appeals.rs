//! Appeals and corrections in the embedded store. What they mean, and how a
//! correction is laid over a verdict, is in [`crate::reports::corrections`].

use super::StoreError;
use super::sqlite::{SqliteStore, sql_err};
use crate::attendance::Status;
use crate::reports::corrections::{APPEALABLE, Appeal, Correction, parse_status, status_name};
use jiff::civil::Date;
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

fn appeal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Appeal> {
    let date: String = r.get(2)?;
    let status: String = r.get(3)?;
    Ok(Appeal {
        id: r.get(0)?,
        employee_id: r.get(1)?,
        date: date.parse().unwrap_or_default(),
        requested_status: parse_status(&status).unwrap_or(Status::Unknown),
        reason: r.get(4)?,
        created_by: r.get(5)?,
        created_ms: r.get(6)?,
        state: r.get(7)?,
        decided_by: r.get(8)?,
        decided_ms: r.get(9)?,
        comment: r.get(10)?,
    })
}

const APPEAL_COLUMNS: &str = "id, employee_id, date, requested_status, reason, created_by, created_ms, state, decided_by, decided_ms, comment";

/// The rules of a new appeal that need no stored state: a day already judged,
/// inside the window, a reason, a status an appeal may ask for. Returns the
/// trimmed reason.
pub(crate) fn check_new_appeal(
    date: Date,
    requested: Status,
    reason: &str,
    today: Date,
    limits: crate::config::AppealsConfig,
) -> Result<&str, StoreError> {
    if date > today {
        return Err(StoreError::Invalid(format!(
            "date: {date} has not come yet; an appeal concerns a day that is judged"
        )));
    }
    let oldest = today
        .checked_sub(jiff::Span::new().days(i64::from(limits.window_days)))
        .unwrap_or(Date::MIN);
    if date < oldest {
        return Err(StoreError::Invalid(format!(
            "date: {date} is more than {} days ago (the earliest day that may be appealed is {oldest})",
            limits.window_days
        )));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(StoreError::Invalid(
            "an appeal needs a reason of at most 2000 characters".into(),
        ));
    }
    if !APPEALABLE.contains(&requested) {
        return Err(StoreError::Invalid(format!(
            "an appeal may ask for present, leave or field, not {}",
            status_name(requested)
        )));
    }
    Ok(reason)
}

/// Whether `by` (whose own staff record is `by_employee`) may decide `a`: it is
/// open, and it is not their own case nor one they filed.
pub(crate) fn check_decision(
    a: &Appeal,
    by: &str,
    by_employee: Option<&str>,
) -> Result<(), StoreError> {
    if a.state != "open" {
        return Err(StoreError::Conflict(format!(
            "appeal {} was already {}",
            a.id, a.state
        )));
    }
    if a.created_by == by || by_employee == Some(a.employee_id.as_str()) {
        return Err(StoreError::Denied(format!(
            "appeal {} is {}'s own case; someone else decides it",
            a.id, a.employee_id
        )));
    }
    Ok(())
}

/// The audit actor of a web user (a name with a `:` is an actor already).
pub(crate) fn web_actor(by: &str) -> String {
    if by.contains(':') {
        by.to_owned()
    } else {
        format!("web:{by}")
    }
}

impl super::Appeals for SqliteStore {
    /// Files an appeal; an open appeal of the same day is an error, and so is a day
    /// after `today` or more than `limits.window_days` before it, or a person with
    /// `limits.max_open` appeals open already.
    #[allow(clippy::too_many_arguments)]
    fn add_appeal(
        &self,
        employee_id: &str,
        date: Date,
        requested: Status,
        reason: &str,
        by: &str,
        today: Date,
        limits: crate::config::AppealsConfig,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let reason = check_new_appeal(date, requested, reason, today, limits)?;
        let conn = self.writer();
        let err = sql_err(self.path());
        let open: bool = conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM appeals WHERE employee_id = ?1 AND date = ?2 AND state = 'open')",
                params![employee_id, date.to_string()],
                |r| r.get(0),
            )
            .map_err(&err)?;
        if open {
            return Err(StoreError::Conflict(format!(
                "{date} already has an open appeal"
            )));
        }
        let open_count: i64 = conn
            .query_row(
                "SELECT count(*) FROM appeals WHERE employee_id = ?1 AND state = 'open'",
                [employee_id],
                |r| r.get(0),
            )
            .map_err(&err)?;
        if open_count >= i64::from(limits.max_open) {
            return Err(StoreError::Conflict(format!(
                "{open_count} appeals are open already (at most {} at once); wait for a decision",
                limits.max_open
            )));
        }
        // The appeal and its audit record in one transaction: no change without it.
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(&err)?;
        tx.execute(
            "INSERT INTO appeals (employee_id, date, requested_status, reason, created_by, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![employee_id, date.to_string(), status_name(requested), reason, by, now_ms],
        )
        .map_err(&err)?;
        let id = tx.last_insert_rowid();
        crate::store::audit_log::append(
            &tx,
            &crate::audit::AuditEntry::new(
                now_ms,
                web_actor(by),
                "appeal.file",
                employee_id,
                serde_json::json!({
                    "what": format!("appeal {id} for {date} asks {}", status_name(requested))
                }),
            ),
        )?;
        tx.commit().map_err(&err)?;
        Ok(id)
    }

    fn appeal(&self, id: i64) -> Result<Option<Appeal>, StoreError> {
        self.reader()
            .query_row(
                &format!("SELECT {APPEAL_COLUMNS} FROM appeals WHERE id = ?1"),
                [id],
                appeal_row,
            )
            .optional()
            .map_err(sql_err(self.path()))
    }

    fn appeals(
        &self,
        employee_id: Option<&str>,
        only_open: bool,
    ) -> Result<Vec<Appeal>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {APPEAL_COLUMNS} FROM appeals
                 WHERE (?1 IS NULL OR employee_id = ?1) AND (?2 = 0 OR state = 'open')
                 ORDER BY id DESC LIMIT 500"
            ))
            .map_err(&err)?;
        stmt.query_map(params![employee_id, only_open], appeal_row)
            .map_err(&err)?
            .collect::<Result<_, _>>()
            .map_err(&err)
    }

    fn open_appeals(&self, limit: u32, offset: u32) -> Result<(Vec<Appeal>, u64), StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let total: i64 = conn
            .query_row(
                "SELECT count(*) FROM appeals WHERE state = 'open'",
                [],
                |r| r.get(0),
            )
            .map_err(&err)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {APPEAL_COLUMNS} FROM appeals WHERE state = 'open'
                 ORDER BY id LIMIT ?1 OFFSET ?2"
            ))
            .map_err(&err)?;
        let page = stmt
            .query_map(params![limit, offset], appeal_row)
            .map_err(&err)?
            .collect::<Result<_, _>>()
            .map_err(&err)?;
        Ok((page, u64::try_from(total).unwrap_or(0)))
    }

    fn decide_appeal(
        &self,
        id: i64,
        approve: bool,
        comment: &str,
        by: &str,
        by_employee: Option<&str>,
        now_ms: i64,
    ) -> Result<Appeal, StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let a = tx
            .query_row(
                &format!("SELECT {APPEAL_COLUMNS} FROM appeals WHERE id = ?1"),
                [id],
                appeal_row,
            )
            .optional()
            .map_err(&err)?
            .ok_or_else(|| StoreError::Invalid(format!("no appeal {id}")))?;
        check_decision(&a, by, by_employee)?;
        let state = if approve { "approved" } else { "rejected" };
        tx.execute(
            "UPDATE appeals SET state = ?1, decided_by = ?2, decided_ms = ?3, comment = ?4 WHERE id = ?5",
            params![state, by, now_ms, comment.trim(), id],
        )
        .map_err(&err)?;
        if approve {
            let why = if comment.trim().is_empty() {
                a.reason.clone()
            } else {
                format!("{} — {}", a.reason, comment.trim())
            };
            tx.execute(
                "INSERT INTO corrections (employee_id, date, status, who, why, created_ms, appeal_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    a.employee_id,
                    a.date.to_string(),
                    status_name(a.requested_status),
                    by,
                    why,
                    now_ms,
                    id
                ],
            )
            .map_err(&err)?;
        }
        let action = if approve {
            "appeal.approve"
        } else {
            "appeal.reject"
        };
        let what = format!("appeal {id} for {}: {}", a.date, comment.trim());
        let entry = |action: &str, what: String| {
            crate::audit::AuditEntry::new(
                now_ms,
                web_actor(by),
                action,
                &a.employee_id,
                serde_json::json!({ "what": what }),
            )
        };
        crate::store::audit_log::append(&tx, &entry(action, what))?;
        if approve {
            let what = format!("{} -> {}", a.date, status_name(a.requested_status));
            crate::store::audit_log::append(&tx, &entry("verdict.correct", what))?;
        }
        tx.commit().map_err(&err)?;
        drop(conn);
        Ok(self.appeal(id)?.unwrap_or(a))
    }

    fn corrections(
        &self,
        from: Date,
        to: Date,
    ) -> Result<BTreeMap<(String, Date), Correction>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(
                "SELECT employee_id, date, status, who, why, created_ms FROM corrections
                 WHERE date >= ?1 AND date <= ?2 ORDER BY id",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![from.to_string(), to.to_string()], |r| {
                let date: String = r.get(1)?;
                let status: String = r.get(2)?;
                Ok(Correction {
                    employee_id: r.get(0)?,
                    date: date.parse().unwrap_or_default(),
                    status: parse_status(&status).unwrap_or(Status::Unknown),
                    original: None,
                    who: r.get(3)?,
                    why: r.get(4)?,
                    at_ms: r.get(5)?,
                })
            })
            .map_err(&err)?;
        let mut out = BTreeMap::new();
        for row in rows {
            let c = row.map_err(&err)?;
            out.insert((c.employee_id.clone(), c.date), c);
        }
        Ok(out)
    }
}

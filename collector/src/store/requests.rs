//! Requests and leave balances in the embedded store. What they mean and the
//! rules they follow are in [`crate::requests`].

use super::StoreError;
use super::directory::{insert_exemption, mark_days, require_person};
use super::sqlite::{SqliteStore, sql_err};
use crate::attendance::{CheckpointKind, Settings};
use crate::audit::AuditEntry;
use crate::requests::{
    ChangeFn, Decision, Effect, LeaveBalance, LimitCheck, NewRequest, Request, RequestKind,
    RequestQuery, RequestStatus,
};
use rusqlite::params;

/// The columns of `requests` [`request_row`] reads, in order.
pub(crate) const REQUEST_COLUMNS: &str = "id, employee_id, kind, leave_type, punch, start_ms, end_ms, whole_days, half_days, reason, filed_by, filed_ms, status, steps, closed_by, closed_ms";

/// A stored punch's name.
pub(crate) fn punch_name(p: Option<CheckpointKind>) -> Option<&'static str> {
    p.map(|p| match p {
        CheckpointKind::Arrival => "arrival",
        CheckpointKind::Departure => "departure",
    })
}

/// Parses a stored punch name.
pub(crate) fn parse_punch(s: Option<&str>) -> Option<CheckpointKind> {
    match s {
        Some("arrival") => Some(CheckpointKind::Arrival),
        Some("departure") => Some(CheckpointKind::Departure),
        _ => None,
    }
}

/// A request from its stored fields (without decisions), or what is wrong.
#[allow(clippy::too_many_arguments)]
pub(crate) fn request_from(
    id: i64,
    employee_id: String,
    kind: &str,
    leave_type: String,
    punch: Option<&str>,
    (start_ms, end_ms): (i64, i64),
    whole_days: bool,
    half_days: i64,
    reason: String,
    (filed_by, filed_ms): (String, i64),
    status: &str,
    steps: i64,
    (closed_by, closed_ms): (Option<String>, Option<i64>),
) -> Result<Request, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("requests {id}: {what}"));
    Ok(Request {
        id,
        employee_id,
        kind: RequestKind::parse(kind).ok_or_else(|| corrupt(&format!("kind {kind:?}")))?,
        leave_type,
        punch: parse_punch(punch),
        start_ms,
        end_ms,
        whole_days,
        half_days: u32::try_from(half_days).unwrap_or(0),
        reason,
        filed_by,
        filed_ms,
        status: RequestStatus::parse(status)
            .ok_or_else(|| corrupt(&format!("status {status:?}")))?,
        steps: u8::try_from(steps).unwrap_or(1),
        decisions: Vec::new(),
        closed_by,
        closed_ms,
    })
}

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Request, StoreError>> {
    let kind: String = r.get(2)?;
    let punch: Option<String> = r.get(4)?;
    let status: String = r.get(12)?;
    Ok(request_from(
        r.get(0)?,
        r.get(1)?,
        &kind,
        r.get(3)?,
        punch.as_deref(),
        (r.get(5)?, r.get(6)?),
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        (r.get(10)?, r.get(11)?),
        &status,
        r.get(13)?,
        (r.get(14)?, r.get(15)?),
    ))
}

/// Reads requests with `sql` (selecting [`REQUEST_COLUMNS`]) and their decisions.
fn read_requests(
    conn: &rusqlite::Connection,
    store: &SqliteStore,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Request>, StoreError> {
    let err = sql_err(store.path());
    let mut stmt = conn.prepare_cached(sql).map_err(&err)?;
    let mut out = Vec::new();
    for r in stmt.query_map(params, request_row).map_err(&err)? {
        out.push(r.map_err(&err)??);
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT step, by_user, approve, comment, at_ms FROM request_decisions
             WHERE request_id = ?1 ORDER BY step",
        )
        .map_err(&err)?;
    for r in &mut out {
        r.decisions = stmt
            .query_map([r.id], |x| {
                Ok(Decision {
                    step: x.get(0)?,
                    by: x.get(1)?,
                    approve: x.get(2)?,
                    comment: x.get(3)?,
                    at_ms: x.get(4)?,
                })
            })
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
    }
    Ok(out)
}

fn balances(
    conn: &rusqlite::Connection,
    store: &SqliteStore,
    employee_id: Option<&str>,
    year: Option<i16>,
) -> Result<Vec<LeaveBalance>, StoreError> {
    let err = sql_err(store.path());
    let mut stmt = conn
        .prepare_cached(
            "SELECT employee_id, year, leave_type, half_days FROM leave_balances
             WHERE (?1 IS NULL OR employee_id = ?1) AND (?2 IS NULL OR year = ?2)
             ORDER BY employee_id, year, leave_type",
        )
        .map_err(&err)?;
    stmt.query_map(params![employee_id, year], |r| {
        Ok(LeaveBalance {
            employee_id: r.get(0)?,
            year: r.get(1)?,
            leave_type: r.get(2)?,
            half_days: r.get(3)?,
        })
    })
    .map_err(&err)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(&err)
}

impl super::Requests for SqliteStore {
    fn add_request(
        &self,
        new: &NewRequest,
        window: (i64, i64),
        check: &LimitCheck<'_>,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        require_person(&tx, self.path(), &new.employee_id)?;
        let existing = read_requests(
            &tx,
            self,
            &format!(
                "SELECT {REQUEST_COLUMNS} FROM requests
                 WHERE employee_id = ?1 AND status IN ('pending', 'approved')
                   AND end_ms >= ?2 AND start_ms < ?3 ORDER BY id"
            ),
            &[&new.employee_id, &window.0, &window.1],
        )?;
        let bal = balances(&tx, self, Some(&new.employee_id), None)?;
        check(&existing, &bal).map_err(StoreError::Conflict)?;
        tx.execute(
            "INSERT INTO requests (employee_id, kind, leave_type, punch, start_ms, end_ms, whole_days,
                 half_days, reason, filed_by, filed_ms, status, steps)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'pending', ?12)",
            params![
                new.employee_id,
                new.kind.as_str(),
                new.leave_type,
                punch_name(new.punch),
                new.start_ms,
                new.end_ms,
                new.whole_days,
                new.half_days,
                new.reason,
                new.filed_by,
                new.filed_ms,
                new.steps
            ],
        )
        .map_err(&err)?;
        let id = tx.last_insert_rowid();
        let mut audit = audit.clone();
        if let Some(o) = audit.detail.as_object_mut() {
            o.insert("request".into(), id.into());
        }
        super::audit_log::append(&tx, &audit)?;
        tx.commit().map_err(&err)?;
        Ok(id)
    }

    fn request(&self, id: i64) -> Result<Option<Request>, StoreError> {
        let conn = self.reader();
        Ok(read_requests(
            &conn,
            self,
            &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"),
            &[&id],
        )?
        .pop())
    }

    fn requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        let conn = self.reader();
        read_requests(
            &conn,
            self,
            &format!(
                "SELECT {REQUEST_COLUMNS} FROM requests
                 WHERE (?1 IS NULL OR employee_id = ?1) AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR end_ms > ?4)
                   AND (?5 IS NULL OR start_ms < ?5)
                 ORDER BY id DESC"
            ),
            &[
                &q.employee_id,
                &q.status.map(|s| s.as_str()),
                &q.kind.map(|k| k.as_str()),
                &q.from_ms,
                &q.to_ms,
            ],
        )
    }

    fn change_request(
        &self,
        id: i64,
        settings: &Settings,
        change: &ChangeFn<'_>,
    ) -> Result<Request, StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let r = read_requests(
            &tx,
            self,
            &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"),
            &[&id],
        )?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("no request {id}")))?;
        let c = change(&r)?;
        if let Some(d) = &c.decision {
            tx.execute(
                "INSERT INTO request_decisions (request_id, step, by_user, approve, comment, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, d.step, d.by, d.approve, d.comment, d.at_ms],
            )
            .map_err(&err)?;
        }
        let closed_ms = c.closed_by.as_ref().and(c.audit.first().map(|a| a.at_ms));
        tx.execute(
            "UPDATE requests SET status = ?2, closed_by = coalesce(?3, closed_by),
                 closed_ms = coalesce(?4, closed_ms) WHERE id = ?1",
            params![id, c.status.as_str(), c.closed_by, closed_ms],
        )
        .map_err(&err)?;
        let now_ms = c.audit.first().map_or(0, |a| a.at_ms);
        match &c.effect {
            Effect::None => {}
            Effect::Apply(list) => {
                for e in list {
                    insert_exemption(&tx, self.path(), e, Some(id), settings, now_ms)?;
                }
            }
            Effect::Withdraw => {
                tx.execute("DELETE FROM exemptions WHERE request_id = ?1", [id])
                    .map_err(&err)?;
                mark_days(
                    &tx,
                    self.path(),
                    &r.employee_id,
                    r.start(),
                    r.end(),
                    settings,
                )?;
            }
        }
        for a in &c.audit {
            super::audit_log::append(&tx, a)?;
        }
        let after = read_requests(
            &tx,
            self,
            &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"),
            &[&id],
        )?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("no request {id}")))?;
        tx.commit().map_err(&err)?;
        Ok(after)
    }

    fn leave_balances(
        &self,
        employee_id: Option<&str>,
        year: Option<i16>,
    ) -> Result<Vec<LeaveBalance>, StoreError> {
        let conn = self.reader();
        balances(&conn, self, employee_id, year)
    }

    fn import_leave_balances(
        &self,
        list: &[LeaveBalance],
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        for b in list {
            require_person(&tx, self.path(), &b.employee_id)?;
            tx.execute(
                "INSERT INTO leave_balances (employee_id, year, leave_type, half_days)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (employee_id, year, leave_type) DO UPDATE SET half_days = excluded.half_days",
                params![b.employee_id, b.year, b.leave_type, b.half_days],
            )
            .map_err(&err)?;
        }
        super::audit_log::append(&tx, audit)?;
        tx.commit().map_err(&err)?;
        Ok(())
    }
}

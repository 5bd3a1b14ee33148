//! Requests and leave balances on PostgreSQL. What they mean and the rules they
//! follow are in [`crate::requests`]; the row shape is shared with SQLite
//! ([`crate::store::requests`]).

use super::directory::{insert_exemption, mark_days, require_person};
use super::{PgInner, PgStore};
use crate::attendance::Settings;
use crate::audit::AuditEntry;
use crate::requests::{
    ChangeFn, Decision, Effect, LeaveBalance, LimitCheck, NewRequest, Request, RequestQuery,
};
use crate::store::requests::{REQUEST_COLUMNS, punch_name, request_from};
use crate::store::{Requests, StoreError};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

/// Names the lock that makes one person's filings take turns, on every collector.
const FILING_LOCK: &str = "request:";

fn request_row(r: &tokio_postgres::Row) -> Result<Request, StoreError> {
    let kind: String = r.get(2);
    let punch: Option<String> = r.get(4);
    let status: String = r.get(12);
    request_from(
        r.get(0),
        r.get(1),
        &kind,
        r.get(3),
        punch.as_deref(),
        (r.get(5), r.get(6)),
        r.get(7),
        r.get(8),
        r.get(9),
        (r.get(10), r.get(11)),
        &status,
        r.get(13),
        (r.get(14), r.get(15)),
    )
}

/// Reads requests with `sql` (selecting [`REQUEST_COLUMNS`]) and their decisions.
async fn read_requests(
    c: &impl GenericClient,
    store: &PgInner,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Request>, StoreError> {
    let err = store.err();
    let mut out = Vec::new();
    for r in c.query(sql, params).await.map_err(&err)? {
        out.push(request_row(&r)?);
    }
    if out.is_empty() {
        return Ok(out);
    }
    let ids: Vec<i64> = out.iter().map(|r| r.id).collect();
    let rows = c
        .query(
            "SELECT request_id, step, by_user, approve, comment, at_ms FROM request_decisions
             WHERE request_id = ANY($1) ORDER BY request_id, step",
            &[&ids],
        )
        .await
        .map_err(&err)?;
    for row in rows {
        let id: i64 = row.get(0);
        if let Some(r) = out.iter_mut().find(|r| r.id == id) {
            r.decisions.push(Decision {
                step: u8::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                by: row.get(2),
                approve: row.get(3),
                comment: row.get(4),
                at_ms: row.get(5),
            });
        }
    }
    Ok(out)
}

async fn balances(
    c: &impl GenericClient,
    store: &PgInner,
    employee_id: Option<&str>,
    year: Option<i16>,
) -> Result<Vec<LeaveBalance>, StoreError> {
    let year = year.map(i64::from);
    let rows = c
        .query(
            "SELECT employee_id, year, leave_type, half_days FROM leave_balances
             WHERE ($1::text IS NULL OR employee_id = $1) AND ($2::bigint IS NULL OR year = $2)
             ORDER BY employee_id, year, leave_type COLLATE \"C\"",
            &[&employee_id, &year],
        )
        .await
        .map_err(store.err())?;
    Ok(rows
        .iter()
        .map(|r| LeaveBalance {
            employee_id: r.get(0),
            year: i16::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            leave_type: r.get(2),
            half_days: u32::try_from(r.get::<_, i64>(3)).unwrap_or(0),
        })
        .collect())
}

impl Requests for PgStore {
    fn add_request(
        &self,
        new: &NewRequest,
        window: (i64, i64),
        check: &LimitCheck<'_>,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError> {
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1 || $2))",
                &[&FILING_LOCK, &new.employee_id],
            )
            .await
            .map_err(&err)?;
            require_person(&tx, self, &new.employee_id).await?;
            let existing = read_requests(
                &tx,
                self,
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM requests
                     WHERE employee_id = $1 AND status IN ('pending', 'approved')
                       AND end_ms >= $2 AND start_ms < $3 ORDER BY id"
                ),
                &[&new.employee_id, &window.0, &window.1],
            )
            .await?;
            let bal = balances(&tx, self, Some(&new.employee_id), None).await?;
            check(&existing, &bal).map_err(StoreError::Conflict)?;
            let row = tx
                .query_one(
                    "INSERT INTO requests (employee_id, kind, leave_type, punch, start_ms, end_ms,
                         whole_days, half_days, reason, filed_by, filed_ms, status, steps)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12)
                     RETURNING id",
                    &[
                        &new.employee_id,
                        &new.kind.as_str(),
                        &new.leave_type,
                        &punch_name(new.punch),
                        &new.start_ms,
                        &new.end_ms,
                        &new.whole_days,
                        &i64::from(new.half_days),
                        &new.reason,
                        &new.filed_by,
                        &new.filed_ms,
                        &i64::from(new.steps),
                    ],
                )
                .await
                .map_err(&err)?;
            let id: i64 = row.get(0);
            let mut audit = audit.clone();
            if let Some(o) = audit.detail.as_object_mut() {
                o.insert("request".into(), id.into());
            }
            super::admin::append(&tx, self, &audit).await?;
            tx.commit().await.map_err(&err)?;
            Ok(id)
        })
    }

    fn request(&self, id: i64) -> Result<Option<Request>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            Ok(read_requests(
                &c,
                self,
                &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1"),
                &[&id],
            )
            .await?
            .pop())
        })
    }

    fn requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        let status = q.status.map(|s| s.as_str());
        let kind = q.kind.map(|k| k.as_str());
        self.block(async {
            let c = self.conn().await?;
            read_requests(
                &c,
                self,
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM requests
                     WHERE ($1::text IS NULL OR employee_id = $1) AND ($2::text IS NULL OR status = $2)
                       AND ($3::text IS NULL OR kind = $3) AND ($4::bigint IS NULL OR end_ms > $4)
                       AND ($5::bigint IS NULL OR start_ms < $5)
                     ORDER BY id DESC"
                ),
                &[&q.employee_id, &status, &kind, &q.from_ms, &q.to_ms],
            )
            .await
        })
    }

    fn change_request(
        &self,
        id: i64,
        settings: &Settings,
        change: &ChangeFn<'_>,
    ) -> Result<Request, StoreError> {
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            let select = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1");
            let r = read_requests(&tx, self, &format!("{select} FOR UPDATE"), &[&id])
                .await?
                .pop()
                .ok_or_else(|| StoreError::NotFound(format!("no request {id}")))?;
            let c = change(&r)?;
            if let Some(d) = &c.decision {
                tx.execute(
                    "INSERT INTO request_decisions (request_id, step, by_user, approve, comment, at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&id, &i64::from(d.step), &d.by, &d.approve, &d.comment, &d.at_ms],
                )
                .await
                .map_err(&err)?;
            }
            let closed_ms = c.closed_by.as_ref().and(c.audit.first().map(|a| a.at_ms));
            tx.execute(
                "UPDATE requests SET status = $2, closed_by = coalesce($3, closed_by),
                     closed_ms = coalesce($4, closed_ms) WHERE id = $1",
                &[&id, &c.status.as_str(), &c.closed_by, &closed_ms],
            )
            .await
            .map_err(&err)?;
            let now_ms = c.audit.first().map_or(0, |a| a.at_ms);
            match &c.effect {
                Effect::None => {}
                Effect::Apply(list) => {
                    for e in list {
                        insert_exemption(&tx, self, e, Some(id), settings, now_ms).await?;
                    }
                }
                Effect::Withdraw => {
                    tx.execute("DELETE FROM exemptions WHERE request_id = $1", &[&id])
                        .await
                        .map_err(&err)?;
                    mark_days(&tx, self, &r.employee_id, r.start(), r.end(), settings).await?;
                }
            }
            for a in &c.audit {
                super::admin::append(&tx, self, a).await?;
            }
            let after = read_requests(&tx, self, &select, &[&id])
                .await?
                .pop()
                .ok_or_else(|| StoreError::NotFound(format!("no request {id}")))?;
            tx.commit().await.map_err(&err)?;
            Ok(after)
        })
    }

    fn leave_balances(
        &self,
        employee_id: Option<&str>,
        year: Option<i16>,
    ) -> Result<Vec<LeaveBalance>, StoreError> {
        self.block(async {
            let c = self.conn().await?;
            balances(&c, self, employee_id, year).await
        })
    }

    fn import_leave_balances(
        &self,
        list: &[LeaveBalance],
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            for b in list {
                require_person(&tx, self, &b.employee_id).await?;
                tx.execute(
                    "INSERT INTO leave_balances (employee_id, year, leave_type, half_days)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (employee_id, year, leave_type) DO UPDATE SET half_days = excluded.half_days",
                    &[
                        &b.employee_id,
                        &i64::from(b.year),
                        &b.leave_type,
                        &i64::from(b.half_days),
                    ],
                )
                .await
                .map_err(&err)?;
            }
            super::admin::append(&tx, self, audit).await?;
            tx.commit().await.map_err(&err)?;
            Ok(())
        })
    }
}

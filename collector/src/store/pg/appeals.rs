//! Appeals, corrections and calendar notices on PostgreSQL. The rules that need
//! no stored state are shared with SQLite ([`crate::store::appeals`]).

use super::PgStore;
use crate::attendance::{Notice, NoticeDay, Status};
use crate::audit::AuditEntry;
use crate::config::AppealsConfig;
use crate::reports::corrections::{Appeal, Correction, parse_status, status_name};
use crate::store::appeals::{check_decision, check_new_appeal, web_actor};
use crate::store::calendar::{NoticeInfo, kind_from};
use crate::store::{Appeals, CalendarNotices, StoreError};
use jiff::civil::Date;
use std::collections::BTreeMap;

const APPEAL_COLUMNS: &str = "id, employee_id, date, requested_status, reason, created_by, created_ms, state, decided_by, decided_ms, comment";

fn appeal_row(r: &tokio_postgres::Row) -> Appeal {
    let date: String = r.get(2);
    let status: String = r.get(3);
    Appeal {
        id: r.get(0),
        employee_id: r.get(1),
        date: date.parse().unwrap_or_default(),
        requested_status: parse_status(&status).unwrap_or(Status::Unknown),
        reason: r.get(4),
        created_by: r.get(5),
        created_ms: r.get(6),
        state: r.get(7),
        decided_by: r.get(8),
        decided_ms: r.get(9),
        comment: r.get(10),
    }
}

impl Appeals for PgStore {
    #[allow(clippy::too_many_arguments)]
    fn add_appeal(
        &self,
        employee_id: &str,
        date: Date,
        requested: Status,
        reason: &str,
        by: &str,
        today: Date,
        limits: AppealsConfig,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let reason = check_new_appeal(date, requested, reason, today, limits)?;
        let day = date.to_string();
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            // One person's appeals are filed one at a time, whichever collector.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('appeal:' || $1))",
                &[&employee_id],
            )
            .await
            .map_err(&err)?;
            let r = tx
                .query_one(
                    "SELECT count(*) FILTER (WHERE date = $2), count(*)
                     FROM appeals WHERE employee_id = $1 AND state = 'open'",
                    &[&employee_id, &day],
                )
                .await
                .map_err(&err)?;
            let (same_day, open_count): (i64, i64) = (r.get(0), r.get(1));
            if same_day > 0 {
                return Err(StoreError::Conflict(format!(
                    "{date} already has an open appeal"
                )));
            }
            if open_count >= i64::from(limits.max_open) {
                return Err(StoreError::Conflict(format!(
                    "{open_count} appeals are open already (at most {} at once); wait for a decision",
                    limits.max_open
                )));
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO appeals (employee_id, date, requested_status, reason, created_by, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[&employee_id, &day, &status_name(requested), &reason, &by, &now_ms],
                )
                .await
                .map_err(&err)?
                .get(0);
            super::admin::append(
                &tx,
                self,
                &AuditEntry::new(
                    now_ms,
                    web_actor(by),
                    "appeal.file",
                    employee_id,
                    serde_json::json!({
                        "what": format!("appeal {id} for {date} asks {}", status_name(requested))
                    }),
                ),
            )
            .await?;
            tx.commit().await.map_err(&err)?;
            Ok(id)
        })
    }

    fn appeal(&self, id: i64) -> Result<Option<Appeal>, StoreError> {
        self.block(async {
            let sql = format!("SELECT {APPEAL_COLUMNS} FROM appeals WHERE id = $1");
            Ok(self.query_opt(&sql, &[&id]).await?.as_ref().map(appeal_row))
        })
    }

    fn appeals(
        &self,
        employee_id: Option<&str>,
        only_open: bool,
    ) -> Result<Vec<Appeal>, StoreError> {
        self.block(async {
            let sql = format!(
                "SELECT {APPEAL_COLUMNS} FROM appeals
                 WHERE ($1::text IS NULL OR employee_id = $1) AND (NOT $2 OR state = 'open')
                 ORDER BY id DESC LIMIT 500"
            );
            let rows = self.query(&sql, &[&employee_id, &only_open]).await?;
            Ok(rows.iter().map(appeal_row).collect())
        })
    }

    fn open_appeals(&self, limit: u32, offset: u32) -> Result<(Vec<Appeal>, u64), StoreError> {
        self.block(async {
            let total: i64 = self
                .query("SELECT count(*) FROM appeals WHERE state = 'open'", &[])
                .await?[0]
                .get(0);
            let sql = format!(
                "SELECT {APPEAL_COLUMNS} FROM appeals WHERE state = 'open'
                 ORDER BY id LIMIT $1 OFFSET $2"
            );
            let rows = self
                .query(&sql, &[&i64::from(limit), &i64::from(offset)])
                .await?;
            Ok((
                rows.iter().map(appeal_row).collect(),
                u64::try_from(total).unwrap_or(0),
            ))
        })
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
        let comment = comment.trim();
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            let a = tx
                .query_opt(
                    &format!("SELECT {APPEAL_COLUMNS} FROM appeals WHERE id = $1 FOR UPDATE"),
                    &[&id],
                )
                .await
                .map_err(&err)?
                .as_ref()
                .map(appeal_row)
                .ok_or_else(|| StoreError::Invalid(format!("no appeal {id}")))?;
            check_decision(&a, by, by_employee)?;
            let state = if approve { "approved" } else { "rejected" };
            tx.execute(
                "UPDATE appeals SET state = $1, decided_by = $2, decided_ms = $3, comment = $4
                 WHERE id = $5",
                &[&state, &by, &now_ms, &comment, &id],
            )
            .await
            .map_err(&err)?;
            if approve {
                let why = if comment.is_empty() {
                    a.reason.clone()
                } else {
                    format!("{} — {comment}", a.reason)
                };
                tx.execute(
                    "INSERT INTO corrections (employee_id, date, status, who, why, created_ms, appeal_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &a.employee_id,
                        &a.date.to_string(),
                        &status_name(a.requested_status),
                        &by,
                        &why,
                        &now_ms,
                        &id,
                    ],
                )
                .await
                .map_err(&err)?;
            }
            let entry = |action: &str, what: String| {
                AuditEntry::new(
                    now_ms,
                    web_actor(by),
                    action,
                    &a.employee_id,
                    serde_json::json!({ "what": what }),
                )
            };
            let action = if approve {
                "appeal.approve"
            } else {
                "appeal.reject"
            };
            let what = format!("appeal {id} for {}: {comment}", a.date);
            super::admin::append(&tx, self, &entry(action, what)).await?;
            if approve {
                let what = format!("{} -> {}", a.date, status_name(a.requested_status));
                super::admin::append(&tx, self, &entry("verdict.correct", what)).await?;
            }
            tx.commit().await.map_err(&err)?;
            Ok(())
        })?;
        self.appeal(id)?
            .ok_or_else(|| StoreError::Invalid(format!("no appeal {id}")))
    }

    fn corrections(
        &self,
        from: Date,
        to: Date,
    ) -> Result<BTreeMap<(String, Date), Correction>, StoreError> {
        self.block(async {
            let rows = self
                .query(
                    "SELECT employee_id, date, status, who, why, created_ms FROM corrections
                     WHERE date >= $1 AND date <= $2 ORDER BY id",
                    &[&from.to_string(), &to.to_string()],
                )
                .await?;
            let mut out = BTreeMap::new();
            for r in &rows {
                let date: String = r.get(1);
                let status: String = r.get(2);
                let c = Correction {
                    employee_id: r.get(0),
                    date: date.parse().unwrap_or_default(),
                    status: parse_status(&status).unwrap_or(Status::Unknown),
                    original: None,
                    who: r.get(3),
                    why: r.get(4),
                    at_ms: r.get(5),
                };
                out.insert((c.employee_id.clone(), c.date), c);
            }
            Ok(out)
        })
    }
}

impl CalendarNotices for PgStore {
    fn calendar_revision(&self) -> Result<i64, StoreError> {
        self.block(async {
            Ok(self
                .query(
                    "SELECT coalesce(max(revision), 0) FROM calendar_notices",
                    &[],
                )
                .await?[0]
                .get(0))
        })
    }

    fn calendar_notices(&self) -> Result<Vec<Notice>, StoreError> {
        let rows = self.block(self.query(
            "SELECT n.year, d.date, d.kind, d.note FROM calendar_notices n
             LEFT JOIN calendar_notice_days d ON d.year = n.year
             ORDER BY n.year, d.date",
            &[],
        ))?;
        let mut out: Vec<Notice> = Vec::new();
        for r in &rows {
            let year = i16::try_from(r.get::<_, i64>(0))
                .map_err(|e| StoreError::Corrupt(format!("calendar notice year: {e}")))?;
            if out.last().is_none_or(|n| n.year != year) {
                out.push(Notice {
                    year,
                    days: Vec::new(),
                });
            }
            let Some(date): Option<String> = r.get(1) else {
                continue;
            };
            let kind: String = r.get(2);
            let date = date
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("calendar notice day {date:?}: {e}")))?;
            if let Some(n) = out.last_mut() {
                n.days.push(NoticeDay {
                    date,
                    kind: kind_from(&kind)?,
                    note: r.get(3),
                });
            }
        }
        Ok(out)
    }

    fn calendar_notice_infos(&self) -> Result<Vec<NoticeInfo>, StoreError> {
        let rows = self.block(self.query(
            "SELECT n.year, n.imported_ms, n.actor, n.source,
                    (SELECT count(*) FROM calendar_notice_days d WHERE d.year = n.year)
             FROM calendar_notices n ORDER BY n.year",
            &[],
        ))?;
        Ok(rows
            .iter()
            .map(|r| NoticeInfo {
                year: i16::try_from(r.get::<_, i64>(0)).unwrap_or_default(),
                imported_ms: r.get(1),
                actor: r.get(2),
                source: r.get(3),
                days: r.get::<_, i64>(4) as usize,
            })
            .collect())
    }

    fn import_calendar_notice(
        &self,
        notice: &Notice,
        actor: &str,
        source: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (holidays, makeup) = crate::store::calendar::notice_counts(notice)?;
        let year = i64::from(notice.year);
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            tx.execute("LOCK TABLE calendar_notices IN EXCLUSIVE MODE", &[])
                .await
                .map_err(&err)?;
            let before: Option<i64> = tx
                .query_opt(
                    "SELECT (SELECT count(*) FROM calendar_notice_days WHERE year = $1)
                     FROM calendar_notices WHERE year = $1",
                    &[&year],
                )
                .await
                .map_err(&err)?
                .map(|r| r.get(0));
            let revision: i64 = tx
                .query_one(
                    "SELECT coalesce(max(revision), 0) + 1 FROM calendar_notices",
                    &[],
                )
                .await
                .map_err(&err)?
                .get(0);
            tx.execute("DELETE FROM calendar_notice_days WHERE year = $1", &[&year])
                .await
                .map_err(&err)?;
            tx.execute(
                "INSERT INTO calendar_notices (year, revision, imported_ms, actor, source)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (year) DO UPDATE SET revision = excluded.revision,
                    imported_ms = excluded.imported_ms, actor = excluded.actor,
                    source = excluded.source",
                &[&year, &revision, &now_ms, &actor, &source],
            )
            .await
            .map_err(&err)?;
            for d in &notice.days {
                tx.execute(
                    "INSERT INTO calendar_notice_days (date, year, kind, note) VALUES ($1, $2, $3, $4)",
                    &[&d.date.to_string(), &year, &d.kind.as_str(), &d.note],
                )
                .await
                .map_err(&err)?;
            }
            super::admin::append(
                &tx,
                self,
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
            )
            .await?;
            tx.commit().await.map_err(&err)?;
            Ok(before.is_some())
        })
    }
}

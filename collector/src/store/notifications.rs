//! The notification outbox in the embedded store. What is sent and when is
//! [`crate::notify`]'s.

use super::StoreError;
use super::sqlite::{SqliteStore, sql_err};
use crate::notify::{Notification, Outgoing};
use jiff::civil::Date;
use rusqlite::params;

/// The columns [`notification_from`] reads, in order.
pub(crate) const NOTIFICATION_COLUMNS: &str = "key, date, channel, recipient, subject, body, created_ms, sent_ms, attempts, next_ms, last_error";

/// A stored message from its fields.
#[allow(clippy::too_many_arguments)]
pub(crate) fn notification_from(
    key: String,
    date: &str,
    channel: String,
    recipient: String,
    subject: String,
    body: String,
    (created_ms, sent_ms): (i64, Option<i64>),
    attempts: i64,
    next_ms: i64,
    last_error: String,
) -> Result<Notification, StoreError> {
    Ok(Notification {
        outgoing: Outgoing {
            date: date
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("notifications {key}: date {date:?}")))?,
            key,
            channel,
            recipient,
            subject,
            body,
        },
        created_ms,
        sent_ms,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_ms,
        last_error,
    })
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Notification, StoreError>> {
    let date: String = r.get(1)?;
    Ok(notification_from(
        r.get(0)?,
        &date,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        (r.get(6)?, r.get(7)?),
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

impl super::Notifications for SqliteStore {
    fn enqueue_notifications(
        &self,
        date: Date,
        list: &[Outgoing],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let mut new = 0;
        for o in list {
            new += tx
                .execute(
                    "INSERT OR IGNORE INTO notifications
                         (key, date, channel, recipient, subject, body, created_ms, next_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                    params![
                        o.key,
                        o.date.to_string(),
                        o.channel,
                        o.recipient,
                        o.subject,
                        o.body,
                        now_ms
                    ],
                )
                .map_err(&err)?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO notify_days (date, composed_ms) VALUES (?1, ?2)",
            params![date.to_string(), now_ms],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(new)
    }

    fn notify_composed(&self, date: Date) -> Result<bool, StoreError> {
        let conn = self.reader();
        conn.query_row(
            "SELECT count(*) > 0 FROM notify_days WHERE date = ?1",
            [date.to_string()],
            |r| r.get(0),
        )
        .map_err(sql_err(self.path()))
    }

    fn claim_notifications(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
        date: Option<Date>,
    ) -> Result<Vec<Notification>, StoreError> {
        let conn = self.writer();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(&format!(
                "UPDATE notifications SET claimed_until = ?1 + ?2
                 WHERE key IN (SELECT key FROM notifications
                     WHERE sent_ms IS NULL AND claimed_until <= ?1
                       AND (CASE WHEN ?3 IS NULL THEN next_ms <= ?1 ELSE date = ?3 END)
                     ORDER BY next_ms, key LIMIT ?4)
                 RETURNING {NOTIFICATION_COLUMNS}"
            ))
            .map_err(&err)?;
        let mut out = Vec::new();
        for r in stmt
            .query_map(
                params![now_ms, lease_ms, date.map(|d| d.to_string()), limit],
                row,
            )
            .map_err(&err)?
        {
            out.push(r.map_err(&err)??);
        }
        out.sort_by(|a, b| {
            a.next_ms
                .cmp(&b.next_ms)
                .then(a.outgoing.key.cmp(&b.outgoing.key))
        });
        Ok(out)
    }

    fn notification_sent(&self, key: &str, now_ms: i64) -> Result<(), StoreError> {
        self.writer()
            .execute(
                "UPDATE notifications SET sent_ms = ?2, attempts = attempts + 1,
                     claimed_until = 0, last_error = '' WHERE key = ?1",
                params![key, now_ms],
            )
            .map_err(sql_err(self.path()))?;
        Ok(())
    }

    fn notification_failed(&self, key: &str, error: &str, next_ms: i64) -> Result<(), StoreError> {
        self.writer()
            .execute(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?2,
                     next_ms = ?3, claimed_until = 0 WHERE key = ?1",
                params![key, error, next_ms],
            )
            .map_err(sql_err(self.path()))?;
        Ok(())
    }

    fn notifications(
        &self,
        date: Option<Date>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications
                 WHERE ?1 IS NULL OR date = ?1 ORDER BY created_ms DESC, key LIMIT ?2"
            ))
            .map_err(&err)?;
        let mut out = Vec::new();
        for r in stmt
            .query_map(params![date.map(|d| d.to_string()), limit], row)
            .map_err(&err)?
        {
            out.push(r.map_err(&err)??);
        }
        Ok(out)
    }
}

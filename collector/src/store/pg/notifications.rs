//! The notification outbox on PostgreSQL; the row shape is shared with SQLite
//! ([`crate::store::notifications`]).

use super::PgStore;
use crate::notify::{Notification, Outgoing};
use crate::store::notifications::{NOTIFICATION_COLUMNS, notification_from};
use crate::store::{Notifications, StoreError};
use jiff::civil::Date;

fn row(r: &tokio_postgres::Row) -> Result<Notification, StoreError> {
    let date: String = r.get(1);
    notification_from(
        r.get(0),
        &date,
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        (r.get(6), r.get(7)),
        r.get(8),
        r.get(9),
        r.get(10),
    )
}

impl Notifications for PgStore {
    fn enqueue_notifications(
        &self,
        date: Date,
        list: &[Outgoing],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            let mut new = 0;
            for o in list {
                new += tx
                    .execute(
                        "INSERT INTO notifications
                             (key, date, channel, recipient, subject, body, created_ms, next_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
                        &[
                            &o.key,
                            &o.date.to_string(),
                            &o.channel,
                            &o.recipient,
                            &o.subject,
                            &o.body,
                            &now_ms,
                        ],
                    )
                    .await
                    .map_err(&err)? as usize;
            }
            tx.execute(
                "INSERT INTO notify_days (date, composed_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&date.to_string(), &now_ms],
            )
            .await
            .map_err(&err)?;
            tx.commit().await.map_err(&err)?;
            Ok(new)
        })
    }

    fn notify_composed(&self, date: Date) -> Result<bool, StoreError> {
        let d = date.to_string();
        Ok(self
            .block(self.query_opt("SELECT 1 FROM notify_days WHERE date = $1", &[&d]))?
            .is_some())
    }

    fn claim_notifications(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
        date: Option<Date>,
    ) -> Result<Vec<Notification>, StoreError> {
        let d = date.map(|d| d.to_string());
        let limit = i64::from(limit);
        let rows = self.block(self.query(
            &format!(
                "UPDATE notifications SET claimed_until = $1 + $2
                 WHERE key IN (SELECT key FROM notifications
                     WHERE sent_ms IS NULL AND claimed_until <= $1
                       AND (CASE WHEN $3::text IS NULL THEN next_ms <= $1 ELSE date = $3 END)
                     ORDER BY next_ms, key LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING {NOTIFICATION_COLUMNS}"
            ),
            &[&now_ms, &lease_ms, &d, &limit],
        ))?;
        let mut out = rows.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| {
            a.next_ms
                .cmp(&b.next_ms)
                .then(a.outgoing.key.cmp(&b.outgoing.key))
        });
        Ok(out)
    }

    fn notification_sent(&self, key: &str, now_ms: i64) -> Result<(), StoreError> {
        self.block(self.execute(
            "UPDATE notifications SET sent_ms = $2, attempts = attempts + 1,
                 claimed_until = 0, last_error = '' WHERE key = $1",
            &[&key, &now_ms],
        ))?;
        Ok(())
    }

    fn notification_failed(&self, key: &str, error: &str, next_ms: i64) -> Result<(), StoreError> {
        self.block(self.execute(
            "UPDATE notifications SET attempts = attempts + 1, last_error = $2,
                 next_ms = $3, claimed_until = 0 WHERE key = $1",
            &[&key, &error, &next_ms],
        ))?;
        Ok(())
    }

    fn notifications(
        &self,
        date: Option<Date>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let d = date.map(|d| d.to_string());
        let limit = i64::from(limit);
        let rows = self.block(self.query(
            &format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications
                 WHERE $1::text IS NULL OR date = $1
                 ORDER BY created_ms DESC, key COLLATE \"C\" LIMIT $2"
            ),
            &[&d, &limit],
        ))?;
        rows.iter().map(row).collect()
    }
}

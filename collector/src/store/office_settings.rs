//! Settings edited in the console, in the embedded store.

use super::sqlite::{SqliteStore, sql_err};
use super::{OfficeSetting, StoreError};
use rusqlite::{OptionalExtension, params};

impl super::OfficeSettings for SqliteStore {
    fn office_setting(&self, key: &str) -> Result<Option<OfficeSetting>, StoreError> {
        self.reader()
            .query_row(
                "SELECT value, revision, updated_ms, actor FROM office_settings WHERE key = ?1",
                [key],
                |r| {
                    Ok(OfficeSetting {
                        value: r.get(0)?,
                        revision: r.get(1)?,
                        updated_ms: r.get(2)?,
                        actor: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(sql_err(self.path()))
    }

    fn set_office_setting(
        &self,
        key: &str,
        value: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let revision: i64 = tx
            .query_row(
                "INSERT INTO office_settings (key, value, revision, updated_ms, actor)
                 VALUES (?1, ?2, 1, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                     revision = office_settings.revision + 1,
                     updated_ms = excluded.updated_ms, actor = excluded.actor
                 RETURNING revision",
                params![key, value, now_ms, actor],
                |r| r.get(0),
            )
            .map_err(&err)?;
        super::audit_log::append(
            &tx,
            &crate::audit::AuditEntry::new(
                now_ms,
                actor,
                format!("setting.{key}"),
                key,
                serde_json::json!({ "revision": revision, "value": value }),
            ),
        )?;
        tx.commit().map_err(&err)?;
        Ok(revision)
    }
}

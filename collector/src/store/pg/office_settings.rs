//! Settings edited in the console, on PostgreSQL.

use super::PgStore;
use crate::store::{OfficeSetting, OfficeSettings, StoreError};

impl OfficeSettings for PgStore {
    fn office_setting(&self, key: &str) -> Result<Option<OfficeSetting>, StoreError> {
        Ok(self
            .block(self.query_opt(
                "SELECT value, revision, updated_ms, actor FROM office_settings WHERE key = $1",
                &[&key],
            ))?
            .map(|r| OfficeSetting {
                value: r.get(0),
                revision: r.get(1),
                updated_ms: r.get(2),
                actor: r.get(3),
            }))
    }

    fn set_office_setting(
        &self,
        key: &str,
        value: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            let revision: i64 = tx
                .query_one(
                    "INSERT INTO office_settings (key, value, revision, updated_ms, actor)
                     VALUES ($1, $2, 1, $3, $4)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                         revision = office_settings.revision + 1,
                         updated_ms = excluded.updated_ms, actor = excluded.actor
                     RETURNING revision",
                    &[&key, &value, &now_ms, &actor],
                )
                .await
                .map_err(&err)?
                .get(0);
            super::admin::append(
                &tx,
                self,
                &crate::audit::AuditEntry::new(
                    now_ms,
                    actor,
                    format!("setting.{key}"),
                    key,
                    serde_json::json!({ "revision": revision, "value": value }),
                ),
            )
            .await?;
            tx.commit().await.map_err(&err)?;
            Ok(revision)
        })
    }
}

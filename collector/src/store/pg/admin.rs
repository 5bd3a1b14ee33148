//! Tokens, agents, the audit log and raw events on PostgreSQL.
//!
//! The audit chain is appended under an advisory lock taken in the writing
//! transaction, so collectors appending at once still form one chain.

use super::{PgInner, PgStore};
use crate::audit::{AuditEntry, AuditRecord, GENESIS, Verification, record_hash};
use crate::store::admin::TOKEN_PREFIX_LEN;
use crate::store::{
    AgentInfo, NewToken, StoreError, StoredEvent, TokenInfo, TokenSpec, hash_secret, new_secret,
};
use deadpool_postgres::GenericClient;
use kaoqin_proto::event::Event;

/// Names kaoqin's audit-chain lock among advisory locks.
const AUDIT_LOCK: i64 = 0x6b61_6f71_696e_0002;

/// Appends `entry` to the chain inside the caller's transaction; returns its id.
pub(super) async fn append(
    c: &impl GenericClient,
    store: &PgInner,
    entry: &AuditEntry,
) -> Result<i64, StoreError> {
    let err = store.err();
    c.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
        .await
        .map_err(&err)?;
    let head = c
        .query_opt(
            "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(&err)?;
    let (id, prev_hash): (i64, String) = match head {
        Some(r) => (r.get::<_, i64>(0) + 1, r.get(1)),
        None => (1, GENESIS.to_owned()),
    };
    let detail = entry.detail.to_string();
    let hash = record_hash(
        &prev_hash,
        id,
        (
            &entry.at_ms,
            &entry.actor,
            &entry.action,
            &entry.subject,
            &detail,
        ),
    );
    c.execute(
        "INSERT INTO audit_log (id, at_ms, actor, action, subject, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &id,
            &entry.at_ms,
            &entry.actor,
            &entry.action,
            &entry.subject,
            &detail,
            &prev_hash,
            &hash,
        ],
    )
    .await
    .map_err(&err)?;
    Ok(id)
}

impl PgInner {
    async fn audit_records(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT id, at_ms, actor, action, subject, detail, prev_hash, hash
                 FROM audit_log ORDER BY id",
                &[],
            )
            .await
            .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| AuditRecord {
                id: r.get(0),
                at_ms: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                subject: r.get(4),
                detail: r.get(5),
                prev_hash: r.get(6),
                hash: r.get(7),
            })
            .collect())
    }

    /// Runs `f` in a transaction with its audit record: both or neither.
    pub(super) async fn with_audit<T>(
        &self,
        entry: impl FnOnce(&T) -> AuditEntry,
        f: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(self.err())?;
        let v = f(&tx).await?;
        append(&tx, self, &entry(&v)).await?;
        tx.commit().await.map_err(self.err())?;
        Ok(v)
    }
}

impl crate::store::Admin for PgStore {
    fn ping(&self) -> Result<(), StoreError> {
        self.block(async {
            self.query("SELECT 1", &[]).await?;
            Ok(())
        })
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let rows = conn
                .query(
                    "SELECT t.hash, t.created_ms, t.expires_ms, t.uses, t.max_uses, t.revoked_ms,
                            t.note, t.reenroll,
                            (SELECT string_agg(hostname || CASE WHEN reenrolled THEN ' (again)' ELSE '' END,
                                               E'\n' ORDER BY e.id)
                             FROM enrolments e WHERE e.token_hash = t.hash)
                     FROM tokens t ORDER BY t.created_ms DESC, t.hash",
                    &[],
                )
                .await
                .map_err(self.err())?;
            Ok(rows
                .iter()
                .map(|r| {
                    let hash: String = r.get(0);
                    let used: Option<String> = r.get(8);
                    TokenInfo {
                        hash_prefix: hash[..TOKEN_PREFIX_LEN.min(hash.len())].to_owned(),
                        created_ms: r.get(1),
                        expires_ms: r.get(2),
                        uses: u32::try_from(r.get::<_, i64>(3)).unwrap_or(u32::MAX),
                        max_uses: r
                            .get::<_, Option<i64>>(4)
                            .map(|m| u32::try_from(m).unwrap_or(u32::MAX)),
                        revoked_ms: r.get(5),
                        note: r.get(6),
                        reenroll: r.get(7),
                        used_for: used
                            .map(|u| u.split('\n').map(str::to_owned).collect())
                            .unwrap_or_default(),
                    }
                })
                .collect())
        })
    }

    fn revoke_token(&self, prefix: &str, actor: &str, now_ms: i64) -> Result<String, StoreError> {
        let prefix = crate::store::admin::token_hash_prefix(prefix)?;
        self.block(self.with_audit(
            |short: &String| {
                AuditEntry::new(
                    now_ms,
                    actor,
                    "token.revoke",
                    short.clone(),
                    serde_json::json!({}),
                )
            },
            async |tx| {
                let found = tx
                    .query(
                        "SELECT hash, revoked_ms FROM tokens WHERE starts_with(hash, $1) FOR UPDATE",
                        &[&prefix],
                    )
                    .await
                    .map_err(self.err())?;
                let (hash, revoked): (String, Option<i64>) = match found.as_slice() {
                    [] => {
                        return Err(StoreError::Conflict(format!(
                            "no token's hash starts with {prefix}"
                        )));
                    }
                    [one] => (one.get(0), one.get(1)),
                    _ => {
                        return Err(StoreError::Conflict(format!(
                            "{} tokens' hashes start with {prefix}; give more digits",
                            found.len()
                        )));
                    }
                };
                let short = hash[..TOKEN_PREFIX_LEN].to_owned();
                if revoked.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "token {short} is already revoked"
                    )));
                }
                tx.execute(
                    "UPDATE tokens SET revoked_ms = $2 WHERE hash = $1",
                    &[&hash, &now_ms],
                )
                .await
                .map_err(self.err())?;
                Ok(short)
            },
        ))
    }

    fn heard_in(&self, slots: &[(i64, i64)]) -> Result<Vec<(String, u32)>, StoreError> {
        let (starts, ends): (Vec<i64>, Vec<i64>) = slots.iter().copied().unzip();
        let rows = self.block(self.query(
            "SELECT a.id, (SELECT count(*) FROM unnest($1::bigint[], $2::bigint[]) AS slot(s, e)
                 WHERE EXISTS (SELECT 1 FROM events ev
                     WHERE ev.agent = a.num AND ev.at_ms >= slot.s AND ev.at_ms < slot.e))
             FROM agents a ORDER BY a.id COLLATE \"C\"",
            &[&starts, &ends],
        ))?;
        Ok(rows
            .iter()
            .map(|r| {
                let n: i64 = r.get(1);
                (r.get(0), u32::try_from(n).unwrap_or(u32::MAX))
            })
            .collect())
    }

    fn agents(&self) -> Result<Vec<AgentInfo>, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let rows = conn
                .query(
                    "SELECT id, hostname, os, os_version, agent_version, enrolled_ms,
                            last_seen_ms, max_seq, revoked_ms, clock_offset_ms
                     FROM agents ORDER BY id",
                    &[],
                )
                .await
                .map_err(self.err())?;
            Ok(rows
                .iter()
                .map(|r| AgentInfo {
                    id: r.get(0),
                    hostname: r.get(1),
                    os: r.get(2),
                    os_version: r.get(3),
                    agent_version: r.get(4),
                    enrolled_ms: r.get(5),
                    last_seen_ms: r.get(6),
                    max_seq: r.get::<_, i64>(7) as u64,
                    revoked_ms: r.get(8),
                    last_clock_offset_ms: r.get(9),
                })
                .collect())
        })
    }

    fn revoke_agent(&self, agent_id: &str, actor: &str, now_ms: i64) -> Result<(), StoreError> {
        self.block(self.with_audit(
            |hostname: &String| {
                AuditEntry::new(
                    now_ms,
                    actor,
                    "agent.revoke",
                    agent_id,
                    serde_json::json!({ "hostname": hostname }),
                )
            },
            async |tx| {
                let Some(row) = tx
                    .query_opt(
                        "SELECT hostname, revoked_ms FROM agents WHERE id = $1 FOR UPDATE",
                        &[&agent_id],
                    )
                    .await
                    .map_err(self.err())?
                else {
                    return Err(StoreError::Conflict(format!("no agent {agent_id}")));
                };
                let (hostname, revoked): (String, Option<i64>) = (row.get(0), row.get(1));
                if revoked.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "agent {agent_id} is already revoked"
                    )));
                }
                tx.execute(
                    "UPDATE agents SET revoked_ms = $2 WHERE id = $1",
                    &[&agent_id, &now_ms],
                )
                .await
                .map_err(self.err())?;
                Ok(hostname)
            },
        ))?;
        self.auth.put(agent_id, None);
        Ok(())
    }

    fn create_token(&self, spec: &TokenSpec, now_ms: i64) -> Result<NewToken, StoreError> {
        let token = format!("kq1-{}", new_secret()?);
        let expires_ms = now_ms.saturating_add(spec.ttl_ms);
        self.block(async {
            let conn = self.conn().await?;
            conn.execute(
                "INSERT INTO tokens (hash, created_ms, expires_ms, max_uses, note, reenroll)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &hash_secret(&token),
                    &now_ms,
                    &expires_ms,
                    &spec.max_uses.map(i64::from),
                    &spec.note,
                    &spec.reenroll,
                ],
            )
            .await
            .map_err(self.err())?;
            Ok(())
        })?;
        Ok(NewToken {
            token,
            expires_ms,
            max_uses: spec.max_uses,
        })
    }
}

impl crate::store::Audit for PgStore {
    fn audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        self.block(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await.map_err(self.err())?;
            let id = append(&tx, self, entry).await?;
            tx.commit().await.map_err(self.err())?;
            Ok(id)
        })
    }

    fn audit_list(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.block(self.audit_records())
    }

    fn audit_verify(&self) -> Result<Verification, StoreError> {
        Ok(crate::audit::verify(self.block(self.audit_records())?))
    }
}

impl crate::store::Events for PgStore {
    fn for_each_event(
        &self,
        agent_id: Option<&str>,
        f: &mut dyn FnMut(StoredEvent) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        // Read a page of agents' events at a time, so a large store is not held
        // in memory whole.
        let mut after: (i64, i64) = (i64::MIN, i64::MIN);
        loop {
            let rows = self.block(async {
                let conn = self.conn().await?;
                conn.query(
                    "SELECT e.agent, a.id, e.seq, e.at_ms, e.clock_offset_ms, e.received_ms, e.data
                     FROM events e JOIN agents a ON a.num = e.agent
                     WHERE ($1::text IS NULL OR a.id = $1) AND (e.agent, e.seq) > ($2, $3)
                     ORDER BY e.agent, e.seq LIMIT 10000",
                    &[&agent_id, &after.0, &after.1],
                )
                .await
                .map_err(self.err())
            })?;
            if rows.is_empty() {
                return Ok(());
            }
            for r in &rows {
                let agent_id: String = r.get(1);
                let seq: i64 = r.get(2);
                let at_ms: i64 = r.get(3);
                let data: &[u8] = r.get(6);
                let kind = kaoqin_proto::convert::decode_stored_kind(seq as u64, at_ms, data)
                    .map_err(|e| {
                        StoreError::Corrupt(format!(
                            "stored event {agent_id}/{seq} does not parse: {e}"
                        ))
                    })?;
                after = (r.get(0), seq);
                f(StoredEvent {
                    agent_id,
                    event: Event {
                        seq: seq as u64,
                        at_ms,
                        kind,
                    },
                    received_ms: r.get(5),
                    clock_offset_ms: r.get(4),
                })?;
            }
        }
    }

    fn count_events(&self) -> Result<(u64, u64), StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let r = conn
                .query_one(
                    "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT agent, seq FROM events) d)
                     FROM events",
                    &[],
                )
                .await
                .map_err(self.err())?;
            Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
        })
    }

    fn prune_events(
        &self,
        before: jiff::civil::Date,
        actor: &str,
        now_ms: i64,
    ) -> Result<crate::store::retention::Pruned, StoreError> {
        use crate::store::retention;
        let boundary = retention::boundary_ms(before)?;
        let frozen = retention::frozen_before(before).to_string();
        let (before_y, before_m) = (before.year(), before.month());
        self.block(self.with_audit(
            |p: &retention::Pruned| {
                AuditEntry::new(
                    now_ms,
                    actor,
                    "events.prune",
                    before.strftime("%Y-%m").to_string(),
                    serde_json::json!({ "events": p.events, "batches": p.batches, "frozen_before": frozen }),
                )
            },
            async |tx| {
                let err = self.err();
                let r = tx
                    .query_one(
                        "SELECT (SELECT count(*) FROM dirty_days WHERE date < $1),
                                (SELECT count(*) FROM day_verdicts WHERE date < $1 AND provisional)",
                        &[&frozen],
                    )
                    .await
                    .map_err(&err)?;
                if let Some(refusal) = retention::not_final(before, r.get(0), r.get(1)) {
                    return Err(refusal);
                }
                // Whole months are emptied with their partitions; the rest row by
                // row.
                let parts = tx
                    .query(
                        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                         WHERE i.inhparent = 'events'::regclass AND c.relname::text LIKE 'events\\_%\\_%'",
                        &[],
                    )
                    .await
                    .map_err(&err)?;
                let mut events = 0u64;
                for p in &parts {
                    let name: String = p.get(0);
                    let month = name
                        .strip_prefix("events_")
                        .and_then(|ym| ym.split_once('_'))
                        .and_then(|(y, m)| Some((y.parse::<i16>().ok()?, m.parse::<i8>().ok()?)));
                    if month.is_some_and(|ym| ym < (before_y, before_m)) {
                        let n: i64 = tx
                            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                            .await
                            .map_err(&err)?
                            .get(0);
                        // Emptied, not dropped: collectors remember which monthly
                        // partitions exist, and a late event of the month still
                        // has one to go to.
                        tx.batch_execute(&format!("TRUNCATE TABLE {name}"))
                            .await
                            .map_err(&err)?;
                        events += n as u64;
                    }
                }
                events += tx
                    .execute("DELETE FROM events WHERE at_ms < $1", &[&boundary])
                    .await
                    .map_err(&err)?;
                let batches = tx
                    .execute("DELETE FROM batches WHERE received_ms < $1", &[&boundary])
                    .await
                    .map_err(&err)?;
                tx.execute(
                    "INSERT INTO retention (id, frozen_before, pruned_ms) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO UPDATE SET
                        frozen_before = GREATEST(retention.frozen_before, excluded.frozen_before),
                        pruned_ms = excluded.pruned_ms",
                    &[&frozen, &now_ms],
                )
                .await
                .map_err(&err)?;
                Ok(retention::Pruned { events, batches })
            },
        ))
    }

    fn frozen_before(&self) -> Result<Option<jiff::civil::Date>, StoreError> {
        let row =
            self.block(self.query_opt("SELECT frozen_before FROM retention WHERE id = 1", &[]))?;
        row.map(|r| {
            let t: String = r.get(0);
            t.parse()
                .map_err(|_| StoreError::Corrupt(format!("retention.frozen_before {t:?}")))
        })
        .transpose()
    }
}

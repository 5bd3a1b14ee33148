//! Ingest on PostgreSQL: enrolment, agent identities, batches and refusals.
//!
//! A batch is one transaction that first locks its agent's row, so batches of one
//! agent are stored one after another whichever collector received them, and the
//! checks below see everything stored before.

use super::{PgInner, PgStore, joined};
use crate::store::derived::BatchFacts;
use crate::store::enrolment::{self, KnownMachine, TokenState};
use crate::store::{
    AgentAuth, Batch, BatchOutcome, Claimed, Enrolment, HostFacts, Store, StoreError, hash_secret,
    new_secret,
};
use deadpool_postgres::GenericClient;

/// Appends one integrity event.
#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_integrity(
    c: &impl GenericClient,
    store: &PgInner,
    agent: i64,
    at_ms: i64,
    kind: &str,
    seq: Option<u64>,
    detail: &str,
    claimed: Option<&Claimed>,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO integrity_events (agent, at_ms, kind, seq, detail, claimed_ms, account)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &agent,
            &at_ms,
            &kind,
            &seq.and_then(|s| i64::try_from(s).ok()),
            &detail,
            &claimed.map(|c| c.at_ms),
            &claimed.map(|c| c.account.to_ascii_lowercase()),
        ],
    )
    .await
    .map_err(store.err())?;
    Ok(())
}

impl PgInner {
    async fn enroll_tx(
        &self,
        token: &str,
        host: &HostFacts,
        now_ms: i64,
    ) -> Result<(Enrolment, AgentAuth), StoreError> {
        let mut conn = self.conn().await?;
        let err = self.err();
        let tx = conn.transaction().await.map_err(&err)?;
        // One enrolment of a machine at a time, whichever collector: the second
        // sees the first's row.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('machine:' || $1))",
            &[&host.machine_id],
        )
        .await
        .map_err(&err)?;
        let hash = hash_secret(token);
        let token_state = tx
            .query_opt(
                "SELECT expires_ms, max_uses, uses, revoked_ms, created_ms, reenroll
                 FROM tokens WHERE hash = $1 FOR UPDATE",
                &[&hash],
            )
            .await
            .map_err(&err)?
            .map(|r| TokenState {
                expires_ms: r.get(0),
                max_uses: r.get(1),
                uses: r.get(2),
                revoked_ms: r.get(3),
                created_ms: r.get(4),
                reenroll: r.get(5),
            });
        let existing = tx
            .query_opt(
                "SELECT num, id, max_seq, hostname, revoked_ms FROM agents WHERE machine_id = $1
                 FOR UPDATE",
                &[&host.machine_id],
            )
            .await
            .map_err(&err)?;
        let known = existing.as_ref().map(|r| KnownMachine {
            agent_id: r.get(1),
            hostname: r.get(3),
            revoked_ms: r.get(4),
        });
        match enrolment::check(token_state.as_ref(), known, host, now_ms) {
            Err(StoreError::Denied(why)) => {
                // Someone with a token tried to take a known PC's identity: that is
                // recorded, and nothing else changes.
                if let Some(r) = &existing {
                    let detail = enrolment::refused_detail(host, &why);
                    insert_integrity(
                        &tx,
                        self,
                        r.get(0),
                        now_ms,
                        "reenrol_refused",
                        None,
                        &detail,
                        None,
                    )
                    .await?;
                    tx.commit().await.map_err(&err)?;
                }
                return Err(StoreError::Denied(why));
            }
            checked => checked?,
        }
        tx.execute(
            "UPDATE tokens SET uses = uses + 1 WHERE hash = $1",
            &[&hash],
        )
        .await
        .map_err(&err)?;
        let key = new_secret()?;
        let key_hash = hash_secret(&key);
        let (num, agent_id, last_seq, re_enrolled) = match existing {
            Some(r) => {
                let (num, id, max_seq, old_hostname): (i64, String, i64, String) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                let detail = enrolment::reenrolled_detail(host, &old_hostname);
                insert_integrity(&tx, self, num, now_ms, "reenrolled", None, &detail, None).await?;
                tx.execute(
                    "UPDATE agents SET hostname = $2, os = $3, os_version = $4, agent_version = $5,
                            key_hash = $6, revoked_ms = NULL WHERE num = $1",
                    &[
                        &num,
                        &host.hostname,
                        &host.os,
                        &host.os_version,
                        &host.agent_version,
                        &key_hash,
                    ],
                )
                .await
                .map_err(&err)?;
                (num, id, max_seq as u64, true)
            }
            None => {
                let id = format!("ag-{}", &new_secret()?[..16]);
                let r = tx
                    .query_one(
                        "INSERT INTO agents (id, machine_id, hostname, os, os_version, agent_version, key_hash, enrolled_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING num",
                        &[
                            &id,
                            &host.machine_id,
                            &host.hostname,
                            &host.os,
                            &host.os_version,
                            &host.agent_version,
                            &key_hash,
                            &now_ms,
                        ],
                    )
                    .await
                    .map_err(&err)?;
                (r.get(0), id, 0, false)
            }
        };
        tx.execute(
            "INSERT INTO enrolments (token_hash, agent, at_ms, hostname, reenrolled)
             VALUES ($1, $2, $3, $4, $5)",
            &[&hash, &num, &now_ms, &host.hostname, &re_enrolled],
        )
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(enrolment::outcome(
            num,
            agent_id,
            key,
            key_hash,
            last_seq,
            re_enrolled,
        ))
    }

    async fn load_auth(&self, agent_id: &str) -> Result<Option<AgentAuth>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT id, num, key_hash, revoked_ms IS NOT NULL FROM agents WHERE id = $1",
                &[&agent_id],
            )
            .await
            .map_err(self.err())?;
        Ok(row.map(|r| AgentAuth {
            agent_id: r.get(0),
            num: r.get(1),
            key_hash: r.get(2),
            revoked: r.get(3),
        }))
    }

    async fn batch_tx(&self, b: &Batch) -> Result<BatchOutcome, StoreError> {
        self.ensure_months(b.events.iter().map(|e| e.at_ms)).await?;
        let mut conn = self.conn().await?;
        let err = self.err();
        let tx = conn.transaction().await.map_err(&err)?;
        let lock = tx
            .prepare_cached(
                "SELECT max_seq, enrolled_ms, latest_at_ms FROM agents WHERE num = $1 FOR UPDATE",
            )
            .await
            .map_err(&err)?;
        let row = tx.query_one(&lock, &[&b.agent_num]).await.map_err(&err)?;
        let state = crate::store::trust::AgentState {
            max_seq: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            enrolled_ms: row.get(1),
            latest_at_ms: row.get(2),
        };
        let stored_max = state.max_seq as i64;
        let latest = crate::store::trust::check_batch(
            &state,
            &b.events,
            b.clock_offset_ms,
            b.received_ms,
            b.replay,
        )
        .map_err(StoreError::Invalid)?;
        // Which of the batch's seqs are stored already (resends).
        let sent: Vec<i64> = b.events.iter().map(|e| e.seq as i64).collect();
        let present: std::collections::HashSet<i64> = if sent.iter().any(|s| *s <= stored_max) {
            tx.query(
                &tx.prepare_cached("SELECT seq FROM events WHERE agent = $1 AND seq = ANY($2)")
                    .await
                    .map_err(&err)?,
                &[&b.agent_num, &sent],
            )
            .await
            .map_err(&err)?
            .iter()
            .map(|r| r.get(0))
            .collect()
        } else {
            Default::default()
        };
        let mut facts = BatchFacts::default();
        let mut fresh = Vec::new();
        let mut seen_here = std::collections::HashSet::new();
        for e in &b.events {
            let seq = e.seq as i64;
            if present.contains(&seq) || !seen_here.insert(seq) {
                continue;
            }
            if seq <= stored_max {
                return Err(StoreError::Invalid(format!(
                    "event seq {}: seq: goes backwards (this agent's events are stored up to seq {stored_max} and {} is not among them); nothing of the batch was stored",
                    e.seq, e.seq
                )));
            }
            facts.note(e, b.clock_offset_ms, &self.settings);
            fresh.push(e);
        }
        // All new rows in one statement, as arrays.
        let seqs: Vec<i64> = fresh.iter().map(|e| e.seq as i64).collect();
        let ats: Vec<i64> = fresh.iter().map(|e| e.at_ms).collect();
        let kinds: Vec<&str> = fresh.iter().map(|e| e.kind.name()).collect();
        let accounts: Vec<Option<&str>> = fresh.iter().map(|e| e.kind.account()).collect();
        let data: Vec<Vec<u8>> = fresh
            .iter()
            .map(|e| kaoqin_proto::convert::encode_stored_kind(e))
            .collect();
        let max_seq = fresh.iter().map(|e| e.seq as i64).max().unwrap_or(0);
        let seen: Vec<&String> = facts.seen.keys().collect();
        let firsts: Vec<i64> = facts.seen.values().map(|v| v.0).collect();
        let lasts: Vec<i64> = facts.seen.values().map(|v| v.1).collect();
        let dates: Vec<String> = facts.dirty_dates().iter().map(|d| d.to_string()).collect();
        let (first, last) = (
            b.events.first().map_or(0, |e| e.seq as i64),
            b.events.last().map_or(0, |e| e.seq as i64),
        );
        // Under the agent's lock every fresh event is new.
        let (new_rows, events_sent) = (fresh.len() as i64, b.events.len() as i64);
        let prepared = tokio::try_join!(
            tx.prepare_cached(
                "INSERT INTO events (agent, seq, at_ms, clock_offset_ms, received_ms, kind, account, data)
                 SELECT $1, s, a, $2, $3, k, acc, d
                 FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bytea[])
                      AS t(s, a, k, acc, d)
                 ON CONFLICT DO NOTHING"
            ),
            // Which accounts the PC has seen, and the days to judge again.
            tx.prepare_cached(
                "INSERT INTO pc_accounts (agent, account, first_ms, last_ms)
                 SELECT $1, a, f, l FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS t(a, f, l)
                 ON CONFLICT (agent, account) DO UPDATE SET
                    first_ms = LEAST(pc_accounts.first_ms, excluded.first_ms),
                    last_ms = GREATEST(pc_accounts.last_ms, excluded.last_ms)"
            ),
            tx.prepare_cached(
                "INSERT INTO dirty_days (account, date)
                 SELECT p.account, d FROM pc_accounts p, unnest($2::text[]) AS d
                 WHERE p.agent = $1
                 ON CONFLICT DO NOTHING"
            ),
            tx.prepare_cached(
                "INSERT INTO batches (agent, received_ms, sent_at_ms, clock_offset_ms, first_seq, last_seq, events, inserted)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            tx.prepare_cached(
                "UPDATE agents SET max_seq = GREATEST(max_seq, $2), last_seen_ms = $3,
                        clock_offset_ms = $4, latest_at_ms = $5
                 WHERE num = $1 RETURNING max_seq"
            ),
        )
        .map_err(&err)?;
        let (ins_events, ins_accounts, ins_dirty, ins_batch, update) = prepared;
        // Sent together and answered together (one round trip); the server runs
        // them in this order, so the dirty marks see the accounts just recorded.
        type P<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
        let event_rows: [P<'_>; 8] = [
            &b.agent_num,
            &b.clock_offset_ms,
            &b.received_ms,
            &seqs,
            &ats,
            &kinds,
            &accounts,
            &data,
        ];
        let account_rows: [P<'_>; 4] = [&b.agent_num, &seen, &firsts, &lasts];
        let dirty_rows: [P<'_>; 2] = [&b.agent_num, &dates];
        let batch_row: [P<'_>; 8] = [
            &b.agent_num,
            &b.received_ms,
            &b.sent_at_ms,
            &b.clock_offset_ms,
            &first,
            &last,
            &events_sent,
            &new_rows,
        ];
        let agent_row: [P<'_>; 5] = [
            &b.agent_num,
            &max_seq,
            &b.received_ms,
            &b.clock_offset_ms,
            &latest,
        ];
        let (inserted, _, _, _, acked) = tokio::try_join!(
            tx.execute(&ins_events, &event_rows),
            tx.execute(&ins_accounts, &account_rows),
            tx.execute(&ins_dirty, &dirty_rows),
            tx.execute(&ins_batch, &batch_row),
            tx.query_one(&update, &agent_row),
        )
        .map_err(&err)?;
        let acked: i64 = acked.get(0);
        let started = std::time::Instant::now();
        tx.commit().await.map_err(&err)?;
        crate::metrics::get()
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(BatchOutcome {
            acked_seq: acked as u64,
            inserted,
        })
    }

    async fn refusal_tx(
        &self,
        agent_num: i64,
        at_ms: i64,
        seq: Option<u64>,
        detail: &str,
        claimed: Option<&Claimed>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let err = self.err();
        let tx = conn.transaction().await.map_err(&err)?;
        insert_integrity(&tx, self, agent_num, at_ms, "refused", seq, detail, claimed).await?;
        // The day a refused event claimed is judged again, so its verdict can say
        // what was refused.
        if let Some(c) = claimed
            && let Ok(t) = jiff::Timestamp::from_millisecond(c.at_ms)
        {
            let date = crate::attendance::attendance_date(t, &self.settings).to_string();
            tx.execute(
                "INSERT INTO dirty_days (account, date) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&c.account.to_ascii_lowercase(), &date],
            )
            .await
            .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)?;
        Ok(())
    }
}

impl Store for PgStore {
    async fn enroll(
        &self,
        token: &str,
        host: HostFacts,
        now_ms: i64,
    ) -> Result<Enrolment, StoreError> {
        let (inner, token) = (self.inner.clone(), token.to_owned());
        let (enrolment, auth) = joined(
            self.handle
                .spawn(async move { inner.enroll_tx(&token, &host, now_ms).await })
                .await,
        )?;
        self.auth.put(&auth.agent_id, Some(&auth));
        Ok(enrolment)
    }

    /// From the cache while it is fresh ([`crate::store::sqlite::AUTH_RECHECK`]), otherwise from the
    /// database: a revocation by any collector or command is seen within a second.
    fn agent_auth(&self, agent_id: &str) -> Result<Option<AgentAuth>, StoreError> {
        if let Some(a) = self.auth.fresh(agent_id) {
            return Ok(Some(a));
        }
        let found = self.block(self.load_auth(agent_id))?;
        self.auth.put(agent_id, found.as_ref());
        Ok(found)
    }

    async fn store_batch(&self, batch: Batch) -> Result<BatchOutcome, StoreError> {
        let inner = self.inner.clone();
        joined(
            self.handle
                .spawn(async move { inner.batch_tx(&batch).await })
                .await,
        )
    }

    async fn record_refusal(
        &self,
        agent_num: i64,
        at_ms: i64,
        seq: Option<u64>,
        detail: String,
        claimed: Option<Claimed>,
    ) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        joined(
            self.handle
                .spawn(async move {
                    inner
                        .refusal_tx(agent_num, at_ms, seq, &detail, claimed.as_ref())
                        .await
                })
                .await,
        )
    }
}

//! What the officer's commands do to identities: list and revoke enrolment tokens
//! and agents, and append to and read the audit log.
//!
//! What must stay true:
//! - no listing ever shows a token or key, only a prefix of its hash;
//! - every revocation is written with its audit record in one transaction;
//! - revocation is seen by a running `serve` within [`super::sqlite::AUTH_RECHECK`].

use super::audit_log as audit;
use super::sqlite::{SqliteStore, sql_err};
use super::{AgentInfo, NewToken, StoreError, TokenInfo, TokenSpec, hash_secret, new_secret};
use crate::audit::{AuditEntry, AuditRecord, Verification};
use rusqlite::{Connection, OptionalExtension, params};

/// How many hex digits of a token's hash `token list` shows.
pub const TOKEN_PREFIX_LEN: usize = 12;

/// The hash prefix a revocation names: the hash of a whole token (`kq1-…`), or at
/// least 6 hex digits of one as `token list` shows it.
pub(crate) fn token_hash_prefix(prefix: &str) -> Result<String, StoreError> {
    let prefix = if prefix.starts_with("kq1-") {
        hash_secret(prefix)
    } else {
        prefix.to_ascii_lowercase()
    };
    if prefix.len() < 6 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(StoreError::Conflict(format!(
            "{prefix:?}: give at least 6 hex digits of the hash as `token list` shows it"
        )));
    }
    Ok(prefix)
}

impl SqliteStore {
    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writing connection.
    pub(super) fn write_tx<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.writer();
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(sql_err(self.path()))?;
        let v = f(&tx)?;
        tx.commit().map_err(sql_err(self.path()))?;
        Ok(v)
    }
}

impl super::Admin for SqliteStore {
    fn ping(&self) -> Result<(), StoreError> {
        self.reader()
            .query_row("SELECT 1", [], |_| Ok(()))
            .map_err(sql_err(self.path()))
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare(
                "SELECT t.hash, t.created_ms, t.expires_ms, t.uses, t.max_uses, t.revoked_ms, t.note,
                        t.reenroll,
                        (SELECT group_concat(hostname || CASE WHEN reenrolled THEN ' (again)' ELSE '' END, char(10))
                         FROM (SELECT hostname, reenrolled FROM enrolments e
                               WHERE e.token_hash = t.hash ORDER BY e.id))
                 FROM tokens t ORDER BY t.created_ms DESC, t.hash",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                let hash: String = r.get(0)?;
                let used: Option<String> = r.get(8)?;
                Ok(TokenInfo {
                    hash_prefix: hash[..TOKEN_PREFIX_LEN.min(hash.len())].to_owned(),
                    created_ms: r.get(1)?,
                    expires_ms: r.get(2)?,
                    uses: r.get(3)?,
                    max_uses: r.get(4)?,
                    revoked_ms: r.get(5)?,
                    note: r.get(6)?,
                    reenroll: r.get(7)?,
                    used_for: used
                        .map(|u| u.split('\n').map(str::to_owned).collect())
                        .unwrap_or_default(),
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn revoke_token(&self, prefix: &str, actor: &str, now_ms: i64) -> Result<String, StoreError> {
        let prefix = token_hash_prefix(prefix)?;
        let err = sql_err(self.path());
        self.write_tx(|conn| {
            let mut stmt = conn
                .prepare("SELECT hash, revoked_ms FROM tokens WHERE hash LIKE ?1 || '%'")
                .map_err(&err)?;
            let found: Vec<(String, Option<i64>)> = stmt
                .query_map([&prefix], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(&err)?
                .collect::<Result<_, _>>()
                .map_err(&err)?;
            let (hash, revoked) = match found.as_slice() {
                [] => {
                    return Err(StoreError::Conflict(format!(
                        "no token's hash starts with {prefix}"
                    )));
                }
                [one] => one.clone(),
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
            conn.execute(
                "UPDATE tokens SET revoked_ms = ?2 WHERE hash = ?1",
                params![hash, now_ms],
            )
            .map_err(&err)?;
            audit::append(
                conn,
                &AuditEntry::new(
                    now_ms,
                    actor,
                    "token.revoke",
                    short.clone(),
                    serde_json::json!({}),
                ),
            )?;
            Ok(short)
        })
    }

    fn heard_in(&self, slots: &[(i64, i64)]) -> Result<Vec<(String, u32)>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let slots = format!(
            "[{}]",
            slots
                .iter()
                .map(|(s, e)| format!("[{s},{e}]"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut stmt = conn
            .prepare_cached(
                "WITH slot(s, e) AS (
                     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]')
                     FROM json_each(?1))
                 SELECT a.id, (SELECT count(*) FROM slot WHERE EXISTS (
                     SELECT 1 FROM all_events ev
                     WHERE ev.agent = a.num AND ev.at_ms >= slot.s AND ev.at_ms < slot.e))
                 FROM agents a ORDER BY a.id",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([slots], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn agents(&self) -> Result<Vec<AgentInfo>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare(
                "SELECT a.id, a.hostname, a.os, a.os_version, a.agent_version, a.enrolled_ms,
                        a.last_seen_ms, a.max_seq, a.revoked_ms, a.clock_offset_ms
                 FROM agents a ORDER BY a.id",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AgentInfo {
                    id: r.get(0)?,
                    hostname: r.get(1)?,
                    os: r.get(2)?,
                    os_version: r.get(3)?,
                    agent_version: r.get(4)?,
                    enrolled_ms: r.get(5)?,
                    last_seen_ms: r.get(6)?,
                    max_seq: r.get::<_, i64>(7)? as u64,
                    revoked_ms: r.get(8)?,
                    last_clock_offset_ms: r.get(9)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn revoke_agent(&self, agent_id: &str, actor: &str, now_ms: i64) -> Result<(), StoreError> {
        let err = sql_err(self.path());
        self.write_tx(|conn| {
            let row: Option<(String, Option<i64>)> = conn
                .query_row(
                    "SELECT hostname, revoked_ms FROM agents WHERE id = ?1",
                    [agent_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(&err)?;
            let Some((hostname, revoked)) = row else {
                return Err(StoreError::Conflict(format!("no agent {agent_id}")));
            };
            if revoked.is_some() {
                return Err(StoreError::Conflict(format!(
                    "agent {agent_id} is already revoked"
                )));
            }
            conn.execute(
                "UPDATE agents SET revoked_ms = ?2 WHERE id = ?1",
                params![agent_id, now_ms],
            )
            .map_err(&err)?;
            audit::append(
                conn,
                &AuditEntry::new(
                    now_ms,
                    actor,
                    "agent.revoke",
                    agent_id,
                    serde_json::json!({ "hostname": hostname }),
                ),
            )?;
            Ok(())
        })?;
        self.forget_auth(agent_id);
        Ok(())
    }

    fn create_token(&self, spec: &TokenSpec, now_ms: i64) -> Result<NewToken, StoreError> {
        let token = format!("kq1-{}", new_secret()?);
        let expires_ms = now_ms.saturating_add(spec.ttl_ms);
        self.writer()
            .execute(
                "INSERT INTO tokens (hash, created_ms, expires_ms, max_uses, note, reenroll)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    hash_secret(&token),
                    now_ms,
                    expires_ms,
                    spec.max_uses,
                    spec.note,
                    spec.reenroll
                ],
            )
            .map_err(sql_err(self.path()))?;
        Ok(NewToken {
            token,
            expires_ms,
            max_uses: spec.max_uses,
        })
    }
}

impl super::Audit for SqliteStore {
    fn audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        audit::append(&self.writer(), entry)
    }

    fn audit_list(&self) -> Result<Vec<AuditRecord>, StoreError> {
        audit::list(&self.reader())
    }

    fn audit_verify(&self) -> Result<Verification, StoreError> {
        Ok(crate::audit::verify(audit::list(&self.reader())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::store::concerns::*;
    use crate::store::{HostFacts, Store};

    const T0: i64 = 1_795_000_000_000;

    fn host(machine: &str) -> HostFacts {
        HostFacts {
            machine_id: machine.into(),
            hostname: format!("pc-{machine}"),
            os: "linux".into(),
            ..HostFacts::default()
        }
    }

    #[tokio::test]
    async fn tokens_list_without_secrets_and_revoke_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let spec = crate::store::TokenSpec {
            note: "rollout".into(),
            ..crate::store::TokenSpec::new_machines(60_000, Some(2))
        };
        let t = store.create_token(&spec, T0).unwrap();
        store.enroll(&t.token, host("m1"), T0).await.unwrap();
        let list = store.tokens().unwrap();
        assert_eq!(list.len(), 1);
        let info = &list[0];
        assert_eq!((info.uses, info.max_uses), (1, Some(2)));
        assert_eq!(info.note, "rollout");
        assert!(!info.reenroll);
        assert_eq!(info.used_for, [host("m1").hostname], "what it was used for");
        assert!(hash_secret(&t.token).starts_with(&info.hash_prefix));
        assert!(!format!("{list:?}").contains(&t.token[4..]));

        assert!(store.revoke_token("abc", "t", T0).is_err(), "too short");
        let short = store.revoke_token(&info.hash_prefix[..8], "t", T0).unwrap();
        assert_eq!(short, info.hash_prefix);
        assert!(store.tokens().unwrap()[0].revoked_ms.is_some());
        let e = store.enroll(&t.token, host("m2"), T0).await.unwrap_err();
        assert!(matches!(e, StoreError::BadToken(m) if m.contains("revoked")));
        let log = store.audit_list().unwrap();
        assert_eq!(log.last().unwrap().action, "token.revoke");
    }

    #[tokio::test]
    async fn a_revoked_agent_is_refused_and_needs_a_newer_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let old = store
            .create_token(
                &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
                T0,
            )
            .unwrap();
        let e = store.enroll(&old.token, host("m1"), T0).await.unwrap();
        assert!(!store.agent_auth(&e.agent_id).unwrap().unwrap().revoked);

        // Revoked from another process, as `agents revoke` does while `serve` runs.
        let cli = SqliteStore::open(dir.path()).unwrap();
        cli.revoke_agent(&e.agent_id, "cli:test", T0 + 1000)
            .unwrap();
        assert!(
            cli.revoke_agent(&e.agent_id, "cli:test", T0 + 1000)
                .is_err()
        );
        let deadline = std::time::Instant::now()
            + super::super::sqlite::AUTH_RECHECK
            + std::time::Duration::from_secs(5);
        while !store.agent_auth(&e.agent_id).unwrap().unwrap().revoked {
            assert!(std::time::Instant::now() < deadline, "revocation not seen");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let agents = store.agents().unwrap();
        assert_eq!(agents[0].revoked_ms, Some(T0 + 1000));

        let err = store
            .enroll(&old.token, host("m1"), T0 + 2000)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::BadToken(m) if m.contains("revoked")),
            "{err:?}"
        );
        // Another machine may still use the old token.
        store
            .enroll(&old.token, host("m2"), T0 + 2000)
            .await
            .unwrap();
        let new = store
            .create_token(
                &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
                T0 + 3000,
            )
            .unwrap();
        let again = store
            .enroll(&new.token, host("m1"), T0 + 3000)
            .await
            .unwrap();
        assert_eq!(again.agent_id, e.agent_id, "the machine keeps its id");
        assert!(!store.agent_auth(&e.agent_id).unwrap().unwrap().revoked);
        assert_eq!(store.audit_list().unwrap()[0].action, "agent.revoke");
    }
}

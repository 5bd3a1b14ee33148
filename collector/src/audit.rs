//! The audit log: who did what to the record, append-only and hash-chained.
//!
//! Every record carries the hash of the one before it:
//!
//! ```text
//!   id 1: prev = 000…0          hash = SHA-256(prev || canonical(1))
//!   id 2: prev = hash(1)        hash = SHA-256(prev || canonical(2))
//!   id 3: prev = hash(2)        ...
//! ```
//!
//! `canonical(r)` is the JSON array `[id, at_ms, actor, action, subject, detail]`
//! (`detail` as the stored text). [`verify`] recomputes the chain, so an edited,
//! inserted or deleted record is found by the first record whose hashes no longer
//! match.
//!
//! What must stay true:
//! - records are only ever appended, through [`append`]; the database refuses
//!   UPDATE and DELETE of `audit_log` with triggers (migration 3), so the product
//!   itself cannot edit it;
//! - ids are consecutive from 1: the id is part of the hashed record;
//! - [`append`] reads the chain's head and inserts in one write transaction, so two
//!   processes appending at once cannot fork the chain.
//!
//! What it cannot do: someone who can write the file can drop the triggers and
//! rewrite the whole chain from the edited record on, or cut records off its end.
//! Keep a copy of the head hash (`audit verify` prints it) elsewhere to detect that.

use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Digest;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// When, epoch milliseconds.
    pub at_ms: i64,
    /// Who: `cli:<os user>`, `web:<employee id>`, `serve`.
    pub actor: String,
    /// What, a stable dotted name: `token.create`, `agent.revoke`, `staff.import`.
    pub action: String,
    /// What it was done to: a token hash prefix, an agent id, a file name.
    pub subject: String,
    /// Anything else worth keeping, as JSON.
    pub detail: serde_json::Value,
}

impl AuditEntry {
    /// An entry stamped with the given instant.
    pub fn new(
        at_ms: i64,
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            at_ms,
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            detail,
        }
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// JSON text, as hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every record matches; `head` is the last record's hash (or [`GENESIS`]).
    Intact { records: u64, head: String },
    /// The first record that does not match, and why.
    Broken { id: i64, problem: String },
}

/// The actor name for a command run by the local OS user.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

fn record_hash(prev_hash: &str, id: i64, e: (&i64, &str, &str, &str, &str)) -> String {
    let (at_ms, actor, action, subject, detail) = e;
    let canonical = serde_json::json!([id, at_ms, actor, action, subject, detail]).to_string();
    let mut h = sha2::Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

fn err(conn: &Connection) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Sqlite {
        path: conn.path().unwrap_or("audit_log").to_owned(),
        source: e,
    }
}

/// Appends `entry` to the chain and returns its id. Runs in the caller's
/// transaction if there is one, else in its own `BEGIN IMMEDIATE` transaction.
pub fn append(conn: &Connection, entry: &AuditEntry) -> Result<i64, StoreError> {
    let own = conn.is_autocommit();
    if own {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err(conn))?;
    }
    let r = append_in(conn, entry);
    if own {
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let done = conn.execute_batch(end).map_err(err(conn));
        if r.is_ok() {
            done?;
        }
    }
    r
}

fn append_in(conn: &Connection, entry: &AuditEntry) -> Result<i64, StoreError> {
    let e = err(conn);
    let head: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(&e)?;
    let (id, prev_hash) = match head {
        Some((id, hash)) => (id + 1, hash),
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
    conn.execute(
        "INSERT INTO audit_log (id, at_ms, actor, action, subject, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            entry.at_ms,
            entry.actor,
            entry.action,
            entry.subject,
            detail,
            prev_hash,
            hash
        ],
    )
    .map_err(&e)?;
    Ok(id)
}

/// Every record, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<AuditRecord>, StoreError> {
    let e = err(conn);
    let mut stmt = conn
        .prepare(
            "SELECT id, at_ms, actor, action, subject, detail, prev_hash, hash
             FROM audit_log ORDER BY id",
        )
        .map_err(&e)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(AuditRecord {
                id: r.get(0)?,
                at_ms: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                subject: r.get(4)?,
                detail: r.get(5)?,
                prev_hash: r.get(6)?,
                hash: r.get(7)?,
            })
        })
        .map_err(&e)?;
    rows.collect::<Result<_, _>>().map_err(&e)
}

/// Recomputes the chain from the first record and names the first that breaks it.
pub fn verify(conn: &Connection) -> Result<Verification, StoreError> {
    let mut prev = GENESIS.to_owned();
    let mut records = 0;
    for (expected_id, r) in (1..).zip(list(conn)?) {
        if r.id != expected_id {
            return Ok(Verification::Broken {
                id: r.id,
                problem: format!(
                    "record {} is missing (the ids jump from {} to {})",
                    expected_id,
                    expected_id - 1,
                    r.id
                ),
            });
        }
        if r.prev_hash != prev {
            return Ok(Verification::Broken {
                id: r.id,
                problem: "its prev_hash is not the hash of the record before it (a record before it was changed or removed)".into(),
            });
        }
        let hash = record_hash(
            &prev,
            r.id,
            (&r.at_ms, &r.actor, &r.action, &r.subject, &r.detail),
        );
        if hash != r.hash {
            return Ok(Verification::Broken {
                id: r.id,
                problem: "its content does not match its hash (the record was edited)".into(),
            });
        }
        prev = r.hash;
        records += 1;
    }
    Ok(Verification::Intact {
        records,
        head: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    const T0: i64 = 1_795_000_000_000;

    fn entry(i: i64) -> AuditEntry {
        AuditEntry::new(
            T0 + i,
            "cli:test",
            "token.create",
            format!("abc{i}"),
            serde_json::json!({ "n": i }),
        )
    }

    fn raw(dir: &std::path::Path) -> Connection {
        Connection::open(dir.join(crate::store::sqlite::DB_FILE)).unwrap()
    }

    #[test]
    fn a_chain_verifies_and_the_product_cannot_edit_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        for i in 1..=3 {
            assert_eq!(store.audit(&entry(i)).unwrap(), i);
        }
        let Verification::Intact { records, head } = store.audit_verify().unwrap() else {
            panic!("intact chain reported broken")
        };
        assert_eq!(records, 3);
        assert_eq!(head, store.audit_list().unwrap()[2].hash);
        let conn = raw(dir.path());
        let e = conn
            .execute("UPDATE audit_log SET detail = '{}' WHERE id = 2", [])
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        let e = conn
            .execute("DELETE FROM audit_log WHERE id = 2", [])
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
    }

    #[test]
    fn an_edit_or_a_removed_record_is_named() {
        for tamper in [
            "UPDATE audit_log SET detail = '{\"n\":99}' WHERE id = 2",
            "UPDATE audit_log SET actor = 'someone' WHERE id = 2",
            "DELETE FROM audit_log WHERE id = 2",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path()).unwrap();
            for i in 1..=4 {
                store.audit(&entry(i)).unwrap();
            }
            let conn = raw(dir.path());
            conn.execute_batch(
                "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
            )
            .unwrap();
            conn.execute(tamper, []).unwrap();
            let want = if tamper.starts_with("DELETE") { 3 } else { 2 };
            match store.audit_verify().unwrap() {
                Verification::Broken { id, .. } => assert_eq!(id, want, "{tamper}"),
                v => panic!("{tamper}: {v:?}"),
            }
        }
    }

    #[test]
    fn appending_inside_a_transaction_uses_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = raw(dir.path());
        conn.execute_batch("BEGIN").unwrap();
        append(&conn, &entry(1)).unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
        assert!(store.audit_list().unwrap().is_empty());
        append(&conn, &entry(1)).unwrap();
        assert_eq!(store.audit_list().unwrap().len(), 1);
    }
}

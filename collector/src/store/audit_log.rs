//! The audit log in the embedded store: append inside the caller's transaction
//! (or its own), list. The chain's rules are in [`crate::audit`].

use super::StoreError;
use crate::audit::{AuditEntry, AuditRecord, GENESIS, record_hash};
use rusqlite::{Connection, OptionalExtension, params};

fn err(conn: &Connection) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Database {
        at: conn.path().unwrap_or("audit_log").to_owned(),
        source: Box::new(e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Verification;
    #[allow(unused_imports)]
    use crate::store::concerns::*;
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

//! Moving an office from its SQLite file to a PostgreSQL database
//! (`kaoqin-collector migrate --from DATA_DIR --to postgres://…`): every table, row
//! for row, with the ids that tie them together and the audit chain as it was.
//!
//! What must stay true: the target holds no agents, staff, users or audit log (a
//! migration never merges into a database in use); it is one transaction, so a
//! failure leaves the target as it was; the counts returned are the rows written,
//! table by table; afterwards the audit chain verifies on the target with the same
//! head.

use super::StoreError;
use super::pg::PgStore;
use super::sqlite::{SqliteStore, sql_err, stored_kind};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// The tables, parents before children.
const TABLES: [&str; 31] = [
    "tokens",
    "agents",
    "batches",
    "events",
    "enrolments",
    "integrity_events",
    "staff",
    "staff_accounts",
    "staff_pcs",
    "pc_accounts",
    "requests",
    "request_decisions",
    "leave_balances",
    "exemptions",
    "day_verdicts",
    "day_verdict_details",
    "dirty_days",
    "dirty_claims",
    "audit_log",
    "users",
    "user_departments",
    "web_sessions",
    "api_tokens",
    "appeals",
    "corrections",
    "calendar_notices",
    "calendar_notice_days",
    "retention",
    "notifications",
    "notify_days",
    "office_settings",
];

/// Identity columns, which go on from the highest id copied.
const IDENTITIES: [(&str, &str); 9] = [
    ("agents", "num"),
    ("batches", "id"),
    ("enrolments", "id"),
    ("integrity_events", "id"),
    ("exemptions", "id"),
    ("users", "id"),
    ("appeals", "id"),
    ("corrections", "id"),
    ("requests", "id"),
];

/// Rows sent to PostgreSQL at a time.
const CHUNK: usize = 2_000;

/// The SQLite table or view a PostgreSQL table is copied from: the events are
/// those moved into `events` and those still in `events_recent`.
fn source(table: &str) -> &str {
    match table {
        "events" => "all_events",
        other => other,
    }
}

/// A value on its way from a SQLite row to a PostgreSQL column.
type Value = Box<dyn ToSql + Sync + Send>;

/// Column `i` of a SQLite row as the PostgreSQL column's type.
fn value(row: &rusqlite::Row<'_>, i: usize, ty: &Type, at: &str) -> Result<Value, StoreError> {
    use rusqlite::types::ValueRef;
    let v = row
        .get_ref(i)
        .map_err(|e| StoreError::Corrupt(format!("{at}: {e}")))?;
    Ok(match v {
        ValueRef::Null if *ty == Type::INT8 => Box::new(None::<i64>),
        ValueRef::Null if *ty == Type::BOOL => Box::new(None::<bool>),
        ValueRef::Null if *ty == Type::BYTEA => Box::new(None::<Vec<u8>>),
        ValueRef::Null => Box::new(None::<String>),
        ValueRef::Integer(n) if *ty == Type::INT8 => Box::new(Some(n)),
        ValueRef::Integer(n) if *ty == Type::BOOL => Box::new(Some(n != 0)),
        ValueRef::Text(s) if *ty == Type::TEXT => Box::new(Some(
            std::str::from_utf8(s)
                .map_err(|e| StoreError::Corrupt(format!("{at}: {e}")))?
                .to_owned(),
        )),
        ValueRef::Blob(b) if *ty == Type::BYTEA => Box::new(Some(b.to_vec())),
        other => {
            return Err(StoreError::Corrupt(format!(
                "{at}: a {:?} value does not fit {ty}",
                other.data_type()
            )));
        }
    })
}

impl SqliteStore {
    /// Copies everything into `to`, which must be unused; returns the rows
    /// written per table. Run it from a plain thread (a command), not a runtime.
    pub fn migrate_to(&self, to: &PgStore) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let pgerr = to.err();
        let mut pg = to.block(to.conn())?;
        let tx = to.block(async { pg.transaction().await.map_err(&pgerr) })?;
        let used: bool = to
            .block(async {
                tx.query_one(
                    "SELECT EXISTS(SELECT 1 FROM agents) OR EXISTS(SELECT 1 FROM staff)
                        OR EXISTS(SELECT 1 FROM audit_log) OR EXISTS(SELECT 1 FROM users)",
                    &[],
                )
                .await
                .map_err(&pgerr)
            })?
            .get(0);
        if used {
            return Err(StoreError::Conflict(format!(
                "--to {}: the database already holds agents, staff, users or an audit log; migrate into an empty one",
                to.at()
            )));
        }
        // The monthly partitions the events need, first.
        let (lo, hi): (Option<i64>, Option<i64>) = conn
            .query_row("SELECT min(at_ms), max(at_ms) FROM all_events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(&err)?;
        if let (Some(lo), Some(hi)) = (lo, hi) {
            const DAY_MS: i64 = 86_400_000;
            // Months outside 2000..2100 have no partition of their own.
            let (lo, hi) = (lo.max(946_684_800_000), hi.min(4_102_444_800_000));
            let months = (lo..=hi).step_by(28 * DAY_MS as usize).chain([hi]);
            to.block(to.ensure_months(months))?;
        }
        let mut counts = Vec::new();
        for table in TABLES {
            let columns = to.block(async {
                tx.query(
                    "SELECT attname::text, atttypid FROM pg_attribute
                     WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped
                     ORDER BY attnum",
                    &[&table],
                )
                .await
                .map_err(&pgerr)
            })?;
            let names: Vec<String> = columns.iter().map(|r| r.get(0)).collect();
            let types: Vec<Type> = columns
                .iter()
                .map(|r| Type::from_oid(r.get(1)).unwrap_or(Type::TEXT))
                .collect();
            let list = names.join(", ");
            let sink = to.block(async {
                tx.copy_in(&format!("COPY {table} ({list}) FROM STDIN BINARY"))
                    .await
                    .map_err(&pgerr)
            })?;
            let mut writer = Box::pin(BinaryCopyInWriter::new(sink, &types));
            let mut stmt = conn
                .prepare(&format!("SELECT {list} FROM {}", source(table)))
                .map_err(&err)?;
            let mut rows = stmt.query([]).map_err(&err)?;
            let (seq_at, at_at) = (
                names.iter().position(|n| n == "seq"),
                names.iter().position(|n| n == "at_ms"),
            );
            let mut chunk: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
            loop {
                let row = rows.next().map_err(&err)?;
                if let Some(row) = row {
                    let mut values: Vec<Value> = Vec::with_capacity(names.len());
                    for (i, (name, ty)) in names.iter().zip(&types).enumerate() {
                        let at = format!("{table}.{name}");
                        // Events stored as JSON before schema 7 go over as protobuf.
                        if let ("events", "data", Some(s), Some(a)) =
                            (table, name.as_str(), seq_at, at_at)
                        {
                            let (seq, at_ms): (i64, i64) =
                                (row.get(s).map_err(&err)?, row.get(a).map_err(&err)?);
                            let kind = stored_kind(row.get_ref(i).map_err(&err)?, seq, at_ms, seq)?;
                            let e = kaoqin_proto::event::Event {
                                seq: seq as u64,
                                at_ms,
                                kind,
                            };
                            values.push(Box::new(kaoqin_proto::convert::encode_stored_kind(&e)));
                        } else {
                            values.push(value(row, i, ty, &at)?);
                        }
                    }
                    chunk.push(values);
                }
                let last = row.is_none();
                if chunk.len() >= CHUNK || (last && !chunk.is_empty()) {
                    let sending = std::mem::take(&mut chunk);
                    let (mut w, pgerr) = (writer.as_mut(), &pgerr);
                    to.block(async move {
                        for values in &sending {
                            let refs: Vec<&(dyn ToSql + Sync)> =
                                values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect();
                            w.as_mut().write(&refs).await.map_err(&pgerr)?;
                        }
                        Ok(())
                    })?;
                }
                if last {
                    break;
                }
            }
            let n = to.block(async { writer.as_mut().finish().await.map_err(&pgerr) })?;
            counts.push((table, n));
        }
        for (table, column) in IDENTITIES {
            to.block(async {
                tx.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                                       coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
                    ),
                    &[],
                )
                .await
                .map_err(&pgerr)
            })?;
        }
        to.block(async { tx.commit().await.map_err(&pgerr) })?;
        Ok(counts)
    }
}

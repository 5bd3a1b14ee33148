//! The embedded store: one SQLite file (`kaoqin.db`, WAL, synchronous=FULL) in the
//! data dir, created and migrated on first start.
//!
//! Writes go through one writer thread that owns the write connection. It takes
//! every request waiting in its queue and commits them in one transaction (group
//! commit), then answers each request. An answer is sent only after COMMIT has
//! returned, so an acknowledged batch is on disk. A full queue is answered at once
//! with [`StoreError::Busy`] so that agents back off instead of piling up.
//!
//! Reads (authentication, listings) use a separate connection; WAL lets them run
//! beside the writer.

use super::{
    AgentAuth, Batch, BatchOutcome, Enrolment, HostFacts, Store, StoreError, StoredEvent,
    hash_secret, new_secret,
};
use crate::attendance::Settings;
use kaoqin_proto::event::{Event, EventKind};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

/// The database file's name inside the data dir.
pub const DB_FILE: &str = "kaoqin.db";
/// How many connections serve reads at once.
const READERS: usize = 4;
/// How many write requests may wait for the writer before new ones are refused.
const QUEUE_DEPTH: usize = 4096;
/// The most events one group commit takes before it commits.
const GROUP_MAX_EVENTS: usize = 50_000;
/// The least time between two checkpoints of the write-ahead log.
const CHECKPOINT_PACE: std::time::Duration = std::time::Duration::from_millis(200);
/// Past this many pages in the write-ahead log (64 MiB at 4 KiB pages), the
/// writer itself checkpoints the rest between two groups so that the log starts
/// over: under load that never pauses, the log is never wholly copied when the
/// writer begins a transaction, which is when SQLite would restart it, and a
/// checkpoint from another connection that waits for the writer starves.
const CHECKPOINT_RESTART_PAGES: i64 = 16_384;

mod backup;
mod schema;
mod writer;

pub use backup::{SERVING_LOCK, restore, serving_lock};

use schema::MIGRATIONS;
use writer::{Writer, run_checkpoints};

/// How long a cached agent identity is trusted before its key and revocation are
/// read again from the database (`agents revoke` runs in another process).
pub const AUTH_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| classify(path, e)
}

/// Reads the `data` column of a stored event: the protobuf of its kind
/// ([`kaoqin_proto::convert::encode_stored_kind`], a BLOB) since schema 7, its JSON
/// (TEXT) before. `who` names the event in the error (`agent/seq`).
pub(crate) fn stored_kind(
    data: rusqlite::types::ValueRef<'_>,
    seq: i64,
    at_ms: i64,
    who: impl std::fmt::Display,
) -> Result<EventKind, StoreError> {
    use rusqlite::types::ValueRef;
    let problem = match data {
        ValueRef::Blob(b) => {
            match kaoqin_proto::convert::decode_stored_kind(seq as u64, at_ms, b) {
                Ok(kind) => return Ok(kind),
                Err(e) => e.to_string(),
            }
        }
        ValueRef::Text(t) => match serde_json::from_slice(t) {
            Ok(kind) => return Ok(kind),
            Err(e) => e.to_string(),
        },
        other => format!("data is {:?}, not an event", other.data_type()),
    };
    Err(StoreError::Corrupt(format!(
        "stored event {who} does not parse: {problem}"
    )))
}

/// Turns a SQLite error into a store error, marking what a retry can fix.
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && matches!(
            f.code,
            DatabaseBusy | DatabaseLocked | DiskFull | OutOfMemory | SystemIoFailure
        )
    {
        return StoreError::Busy(format!("{}: {e}", path.display()));
    }
    StoreError::Database {
        at: path.display().to_string(),
        source: Box::new(e),
    }
}

/// Opens (creating if needed) the database and brings its schema up to date.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let err = sql_err(path);
    let conn = Connection::open(path).map_err(&err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(&err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(&err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(&err)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&err)?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "{}: schema version {version} is newer than this collector knows ({}); upgrade the collector",
            path.display(),
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.unchecked_transaction().map_err(&err)?;
        tx.execute_batch(sql).map_err(&err)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
    }
    Ok(conn)
}

enum Job {
    /// A batch with each event's stored form, encoded by the caller so that the
    /// one writer thread spends its time on SQLite only.
    Batch(
        Batch,
        Vec<Vec<u8>>,
        oneshot::Sender<Result<BatchOutcome, StoreError>>,
    ),
    Enroll {
        token: String,
        host: HostFacts,
        now_ms: i64,
        reply: oneshot::Sender<Result<(Enrolment, AgentAuth), StoreError>>,
    },
    /// An integrity event: (agent, at_ms, kind, seq, detail).
    Integrity {
        event: IntegrityEvent,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A row of `integrity_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IntegrityEvent {
    pub(crate) agent_num: i64,
    pub(crate) at_ms: i64,
    /// `refused`, `reenrolled`, ...
    pub(crate) kind: &'static str,
    pub(crate) seq: Option<u64>,
    pub(crate) detail: String,
    /// For a refused event about an OS account: the corrected instant it claimed
    /// and the account (lower case).
    pub(crate) claimed: Option<super::Claimed>,
}

impl IntegrityEvent {
    fn insert(&self, conn: &Connection, path: &Path) -> Result<(), StoreError> {
        conn.prepare_cached(
            "INSERT INTO integrity_events (agent, at_ms, kind, seq, detail, claimed_ms, account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut st| {
            st.execute(params![
                self.agent_num,
                self.at_ms,
                self.kind,
                self.seq.and_then(|s| i64::try_from(s).ok()),
                self.detail,
                self.claimed.as_ref().map(|c| c.at_ms),
                self.claimed
                    .as_ref()
                    .map(|c| c.account.to_ascii_lowercase()),
            ])
        })
        .map_err(sql_err(path))?;
        Ok(())
    }
}

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    jobs: mpsc::SyncSender<Job>,
    /// Connections for reads (and the commands' own transactions), so that a long
    /// report does not hold up a login; see [`SqliteStore::reader`].
    readers: Vec<Mutex<Connection>>,
    /// Where the next reader is looked for first.
    next_reader: std::sync::atomic::AtomicUsize,
    /// The one connection that writes: the writer thread's group commits and the
    /// commands' own changes take turns on it (see [`SqliteStore::writer`]).
    writer_conn: Arc<Mutex<Connection>>,
    auth: super::AuthCache,
    writer: Option<std::thread::JoinHandle<()>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
}

impl SqliteStore {
    /// Opens the store in `data_dir`, creating the directory and the database.
    pub fn open(data_dir: &Path) -> Result<Arc<SqliteStore>, StoreError> {
        SqliteStore::open_with(data_dir, &Settings::default())
    }

    /// Opens the store; `settings` (time zone, day boundary) decide which attendance
    /// days a batch of events marks dirty.
    pub fn open_with(data_dir: &Path, settings: &Settings) -> Result<Arc<SqliteStore>, StoreError> {
        SqliteStore::open_folding(data_dir, settings, writer::FOLD_AGE)
    }

    /// Opens the store with its writer moving recent events after `fold_age`.
    fn open_folding(
        data_dir: &Path,
        settings: &Settings,
        fold_age: std::time::Duration,
    ) -> Result<Arc<SqliteStore>, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot create data dir {}: {e}", data_dir.display()),
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        let writer_conn = open_connection(&path)?;
        // The writer never checkpoints: the checkpointer thread does, beside it.
        writer_conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql_err(&path))?;
        let readers = (0..READERS)
            .map(|_| open_connection(&path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let checkpoint_conn = open_connection(&path)?;
        let (wake, woken) = mpsc::sync_channel(1);
        let checkpoint_path = path.clone();
        let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let restart_wanted = restart.clone();
        let checkpointer = std::thread::Builder::new()
            .name("kaoqin-checkpoint".into())
            .spawn(move || {
                run_checkpoints(&checkpoint_conn, &checkpoint_path, &woken, &restart_wanted)
            })?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
        let writer_conn = Arc::new(Mutex::new(writer_conn));
        let shared_writer = writer_conn.clone();
        let writer_path = path.clone();
        let days = settings.clone();
        let writer = std::thread::Builder::new()
            .name("kaoqin-writer".into())
            .spawn(move || {
                Writer::new(shared_writer, writer_path, days, wake, restart, fold_age).run(rx)
            })?;
        let store = SqliteStore {
            path,
            jobs: tx,
            readers,
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            writer_conn,
            auth: super::AuthCache::default(),
            writer: Some(writer),
            checkpointer: Some(checkpointer),
        };
        store.load_auth()?;
        Ok(Arc::new(store))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writing connection, for a command's change: it waits for the group
    /// commit under way, and the next one waits for it, so writes never meet
    /// SQLite's lock.
    pub(crate) fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer_conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection for reads: the first free one of [`READERS`], starting at a
    /// different one each time; when all are busy, waits for one of them. Hold it
    /// only as long as the read (a second `reader()` while holding one may wait
    /// for the first when every other reader is busy too).
    pub(crate) fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        use std::sync::TryLockError;
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(guard) => return guard,
                // A panic while holding the lock cannot leave the connection
                // inconsistent.
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.readers[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Drops an agent's identity from the cache (it was revoked here).
    pub(super) fn forget_auth(&self, agent_id: &str) {
        self.auth.put(agent_id, None);
    }

    /// Reads one agent's identity from the database into the cache.
    fn reload_auth(&self, agent_id: &str) -> Result<Option<AgentAuth>, StoreError> {
        let found = self
            .reader()
            .prepare_cached(
                "SELECT id, num, key_hash, revoked_ms IS NOT NULL FROM agents WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.query_row([agent_id], |r| {
                    Ok(AgentAuth {
                        agent_id: r.get(0)?,
                        num: r.get(1)?,
                        key_hash: r.get(2)?,
                        revoked: r.get(3)?,
                    })
                })
                .optional()
            })
            .map_err(sql_err(&self.path))?;
        self.auth.put(agent_id, found.as_ref());
        Ok(found)
    }

    fn load_auth(&self) -> Result<(), StoreError> {
        let conn = self.reader();
        let err = sql_err(&self.path);
        let mut stmt = conn
            .prepare("SELECT id, num, key_hash, revoked_ms IS NOT NULL FROM agents")
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AgentAuth {
                    agent_id: r.get(0)?,
                    num: r.get(1)?,
                    key_hash: r.get(2)?,
                    revoked: r.get(3)?,
                })
            })
            .map_err(&err)?;
        for row in rows {
            let a = row.map_err(&err)?;
            self.auth.put(&a.agent_id, Some(&a));
        }
        Ok(())
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => StoreError::Busy("write queue is full".into()),
            mpsc::TrySendError::Disconnected(_) => StoreError::Busy("writer has stopped".into()),
        })
    }
}

impl super::Events for SqliteStore {
    fn for_each_event(
        &self,
        agent_id: Option<&str>,
        f: &mut dyn FnMut(StoredEvent) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let conn = self.reader();
        let err = sql_err(&self.path);
        let mut stmt = conn
            .prepare(
                // One SELECT per table, merged: `events` is read in its own
                // order, so nothing is sorted but the recent rows.
                "SELECT a.id, e.seq, e.at_ms, e.clock_offset_ms, e.received_ms, e.data, e.agent
                 FROM events e JOIN agents a ON a.num = e.agent
                 WHERE ?1 IS NULL OR a.id = ?1
                 UNION ALL
                 SELECT a.id, e.seq, e.at_ms, e.clock_offset_ms, e.received_ms, e.data, e.agent
                 FROM events_recent e JOIN agents a ON a.num = e.agent
                 WHERE ?1 IS NULL OR a.id = ?1
                 ORDER BY 7, 2",
            )
            .map_err(&err)?;
        let mut rows = stmt.query(params![agent_id]).map_err(&err)?;
        while let Some(r) = rows.next().map_err(&err)? {
            let agent_id: String = r.get(0)?;
            let seq: i64 = r.get(1)?;
            let at_ms: i64 = r.get(2)?;
            let kind = stored_kind(r.get_ref(5)?, seq, at_ms, format_args!("{agent_id}/{seq}"))?;
            f(StoredEvent {
                agent_id,
                event: Event {
                    seq: seq as u64,
                    at_ms,
                    kind,
                },
                received_ms: r.get(4)?,
                clock_offset_ms: r.get(3)?,
            })?;
        }
        Ok(())
    }

    fn count_events(&self) -> Result<(u64, u64), StoreError> {
        self.reader()
            .query_row(
                "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT agent, seq FROM all_events)) FROM all_events",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(sql_err(&self.path))
    }

    fn prune_events(
        &self,
        before: jiff::civil::Date,
        actor: &str,
        now_ms: i64,
    ) -> Result<super::retention::Pruned, StoreError> {
        use super::retention;
        let boundary = retention::boundary_ms(before)?;
        let frozen = retention::frozen_before(before).to_string();
        let err = sql_err(&self.path);
        self.write_tx(|conn| {
            let (dirty, provisional): (i64, i64) = conn
                .query_row(
                    "SELECT (SELECT count(*) FROM dirty_days WHERE date < ?1),
                            (SELECT count(*) FROM day_verdicts WHERE date < ?1 AND provisional)",
                    [&frozen],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(&err)?;
            if let Some(refusal) = retention::not_final(before, dirty, provisional) {
                return Err(refusal);
            }
            let mut events = 0;
            for table in ["events", "events_recent"] {
                events += conn
                    .execute(&format!("DELETE FROM {table} WHERE at_ms < ?1"), [boundary])
                    .map_err(&err)? as u64;
            }
            let batches = conn
                .execute("DELETE FROM batches WHERE received_ms < ?1", [boundary])
                .map_err(&err)? as u64;
            conn.execute(
                "INSERT INTO retention (id, frozen_before, pruned_ms) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET
                    frozen_before = max(frozen_before, excluded.frozen_before),
                    pruned_ms = excluded.pruned_ms",
                params![frozen, now_ms],
            )
            .map_err(&err)?;
            let pruned = retention::Pruned { events, batches };
            super::audit_log::append(
                conn,
                &crate::audit::AuditEntry::new(
                    now_ms,
                    actor,
                    "events.prune",
                    before.strftime("%Y-%m").to_string(),
                    serde_json::json!({ "events": events, "batches": batches, "frozen_before": frozen }),
                ),
            )?;
            Ok(pruned)
        })
    }

    fn frozen_before(&self) -> Result<Option<jiff::civil::Date>, StoreError> {
        let text: Option<String> = self
            .reader()
            .query_row(
                "SELECT frozen_before FROM retention WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err(&self.path))?;
        text.map(|t| {
            t.parse()
                .map_err(|_| StoreError::Corrupt(format!("retention.frozen_before {t:?}")))
        })
        .transpose()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer after it has answered what it holds;
        // the writer's end ends the checkpointer after a last checkpoint.
        let (dead, _) = mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.jobs, dead));
        for thread in [self.writer.take(), self.checkpointer.take()]
            .into_iter()
            .flatten()
        {
            let _ = thread.join();
        }
    }
}

impl Store for SqliteStore {
    async fn enroll(
        &self,
        token: &str,
        host: HostFacts,
        now_ms: i64,
    ) -> Result<Enrolment, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Enroll {
            token: token.to_owned(),
            host,
            now_ms,
            reply,
        })?;
        let (enrolment, auth) = rx
            .await
            .map_err(|_| StoreError::Busy("writer has stopped".into()))??;
        self.auth.put(&auth.agent_id, Some(&auth));
        Ok(enrolment)
    }

    /// From the cache while it is fresh ([`AUTH_RECHECK`]); otherwise, and for an
    /// id the cache does not know, from the database, so a revocation or
    /// enrolment made by another process is seen within a second.
    fn agent_auth(&self, agent_id: &str) -> Result<Option<AgentAuth>, StoreError> {
        match self.auth.fresh(agent_id) {
            Some(a) => Ok(Some(a)),
            None => self.reload_auth(agent_id),
        }
    }

    async fn store_batch(&self, batch: Batch) -> Result<BatchOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        let encoded = batch
            .events
            .iter()
            .map(kaoqin_proto::convert::encode_stored_kind)
            .collect();
        self.submit(Job::Batch(batch, encoded, reply))?;
        rx.await
            .map_err(|_| StoreError::Busy("writer has stopped".into()))?
    }

    async fn record_refusal(
        &self,
        agent_num: i64,
        at_ms: i64,
        seq: Option<u64>,
        detail: String,
        claimed: Option<super::Claimed>,
    ) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Integrity {
            event: IntegrityEvent {
                agent_num,
                at_ms,
                kind: "refused",
                seq,
                detail,
                claimed,
            },
            reply,
        })?;
        rx.await
            .map_err(|_| StoreError::Busy("writer has stopped".into()))?
    }
}

#[cfg(test)]
mod tests;

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
use std::sync::{Arc, Mutex, RwLock, mpsc};
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

/// Schema changelog (PRAGMA user_version):
/// 1. tokens, agents, batches, events.
/// 2. attendance: staff, staff_accounts, pc_accounts (which OS accounts each PC has
///    seen, backfilled from events), exemptions, day_verdicts, dirty_days.
/// 3. audit_log (hash-chained, see `crate::audit`) with triggers that refuse
///    UPDATE and DELETE; index of batches by agent and id (latest clock offset).
/// 4. people who read reports: users, user_departments, web_sessions, api_tokens;
///    appeals and corrections of day verdicts (`crate::users`, `crate::reports::corrections`).
/// 5. day verdicts split in two: `day_verdicts` holds the figures reports add up, in
///    typed columns ordered by date, and `day_verdict_details` the whole verdict
///    (evidence, checkpoints) as JSON. Verdicts are derived from events, exemptions
///    and rules, so the old rows are dropped and recomputed when next read.
/// 6. two indexes no query uses are dropped, each a b-tree every stored event or
///    batch updated: events by (account, at_ms) (verdicts read events by PC) and
///    batches by (agent, received_ms) (the latest offset uses (agent, id)).
/// 7. `events.data` of new rows is the protobuf of the event's kind (a BLOB, about
///    a third of its JSON, see [`stored_kind`]); rows stored before stay JSON TEXT
///    and are read as such. No table changes; the version keeps older collectors,
///    which read JSON only, from opening the file.
/// 8. the latest measured clock offset is kept on the agent's row, which every
///    Report updates anyway, so the index of batches by (agent, id) that only
///    served to find it is dropped: one b-tree page less written per Report.
/// 9. exemptions by end instant: everyone's exemptions for a period are those
///    ending after its start, found without reading every exemption ever entered.
/// 10. calendar_notices and calendar_notice_days: the State Council holiday notices
///     an office imported (`crate::store::calendar`).
/// 11. day_verdicts.unverified: checkpoints late or early not charged for want of
///     evidence, which the summary counts with the unknown figures.
/// 12. the trust rules at ingest: agents.latest_at_ms (the latest corrected instant
///     stored from the agent, lowered by a recorded clock jump); tokens.reenroll
///     (only such tokens enrol a machine id already known); enrolments (what each
///     token was used for); integrity_events (refused batches, re-enrolments: what
///     is not derived from stored events).
/// 13. integrity_events.claimed_ms and .account: the instant and OS account a refused
///     event claimed, so the verdict of the day it touches can say so.
/// 14. staff_pcs: each person's own PCs as the directory lists them (hostname or
///     machine id, lower case); presence on others is marked in the evidence.
///     Integrity events by agent (re-enrolments in a day's evidence).
/// 15. retention: the day before which verdicts are frozen, their raw events
///     pruned (`events prune`, `crate::store::retention`).
/// 16. dirty_claims: dirty days a recompute has taken and not yet stored, taken
///     again by the next one if it dies ([`super::DIRTY_LEASE_MS`]).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    max_uses    INTEGER,
    uses        INTEGER NOT NULL DEFAULT 0,
    revoked_ms  INTEGER,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE TABLE agents (
    num           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    machine_id    TEXT NOT NULL UNIQUE,
    hostname      TEXT NOT NULL,
    os            TEXT NOT NULL,
    os_version    TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    key_hash      TEXT NOT NULL,
    enrolled_ms   INTEGER NOT NULL,
    last_seen_ms  INTEGER,
    max_seq       INTEGER NOT NULL DEFAULT 0,
    revoked_ms    INTEGER
);
CREATE TABLE batches (
    id              INTEGER PRIMARY KEY,
    agent           INTEGER NOT NULL REFERENCES agents(num),
    received_ms     INTEGER NOT NULL,
    sent_at_ms      INTEGER NOT NULL,
    clock_offset_ms INTEGER NOT NULL,
    first_seq       INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL,
    events          INTEGER NOT NULL,
    inserted        INTEGER NOT NULL
);
CREATE INDEX batches_by_agent ON batches(agent, received_ms);
CREATE TABLE events (
    agent           INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    at_ms           INTEGER NOT NULL,
    clock_offset_ms INTEGER NOT NULL,
    received_ms     INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    account         TEXT,
    data            TEXT NOT NULL,
    PRIMARY KEY (agent, seq)
) WITHOUT ROWID;
CREATE INDEX events_by_agent_time ON events(agent, at_ms);
CREATE INDEX events_by_account_time ON events(account, at_ms) WHERE account IS NOT NULL;
"#,
    r#"
CREATE TABLE staff (
    employee_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    department  TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL
);
-- account is stored in ASCII lower case; one account belongs to at most one person.
CREATE TABLE staff_accounts (
    account     TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES staff(employee_id) ON DELETE CASCADE
);
CREATE INDEX staff_accounts_by_person ON staff_accounts(employee_id);
-- Every OS account (lower case) a PC has reported, with corrected first/last instants.
CREATE TABLE pc_accounts (
    agent    INTEGER NOT NULL,
    account  TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms  INTEGER NOT NULL,
    PRIMARY KEY (agent, account)
) WITHOUT ROWID;
CREATE INDEX pc_accounts_by_account ON pc_accounts(account);
INSERT INTO pc_accounts (agent, account, first_ms, last_ms)
    SELECT agent, lower(account), min(at_ms + clock_offset_ms), max(at_ms + clock_offset_ms)
    FROM events WHERE account IS NOT NULL GROUP BY agent, lower(account);
CREATE TABLE exemptions (
    id          INTEGER PRIMARY KEY,
    employee_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    created_ms  INTEGER NOT NULL
);
CREATE INDEX exemptions_by_person ON exemptions(employee_id, start_ms);
-- One verdict per person and attendance day; reports read these, never raw events.
CREATE TABLE day_verdicts (
    employee_id TEXT NOT NULL,
    date        TEXT NOT NULL,
    status      TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    provisional INTEGER NOT NULL,
    computed_ms INTEGER NOT NULL,
    context_fp  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (employee_id, date)
) WITHOUT ROWID;
CREATE INDEX day_verdicts_by_date ON day_verdicts(date);
-- (account, attendance date) whose verdict may have changed; resolved to people when
-- verdicts are recomputed.
CREATE TABLE dirty_days (
    account TEXT NOT NULL,
    date    TEXT NOT NULL,
    PRIMARY KEY (account, date)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE INDEX batches_by_agent_id ON batches(agent, id);
CREATE INDEX events_integrity ON events(kind, at_ms) WHERE kind IN ('lifecycle', 'data_gap');
CREATE INDEX batches_by_offset ON batches(received_ms) WHERE abs(clock_offset_ms) >= 60000;
"#,
    r#"
CREATE TABLE users (
    id                   INTEGER PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL,
    role                 TEXT NOT NULL,
    employee_id          TEXT,
    must_change_password INTEGER NOT NULL,
    created_ms           INTEGER NOT NULL,
    disabled_ms          INTEGER
);
CREATE TABLE user_departments (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    department TEXT NOT NULL,
    PRIMARY KEY (user_id, department)
) WITHOUT ROWID;
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE api_tokens (
    hash       TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    note       TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
-- A staff member's request to change one day's verdict; state open|approved|rejected.
CREATE TABLE appeals (
    id               INTEGER PRIMARY KEY,
    employee_id      TEXT NOT NULL,
    date             TEXT NOT NULL,
    requested_status TEXT NOT NULL,
    reason           TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    created_ms       INTEGER NOT NULL,
    state            TEXT NOT NULL DEFAULT 'open',
    decided_by       TEXT,
    decided_ms       INTEGER,
    comment          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX appeals_by_person ON appeals(employee_id, date);
-- The latest correction of an (employee, date) overrides the computed status.
CREATE TABLE corrections (
    id          INTEGER PRIMARY KEY,
    employee_id TEXT NOT NULL,
    date        TEXT NOT NULL,
    status      TEXT NOT NULL,
    who         TEXT NOT NULL,
    why         TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    appeal_id   INTEGER REFERENCES appeals(id)
);
CREATE INDEX corrections_by_person ON corrections(employee_id, date);
"#,
    r#"
DROP TABLE day_verdicts;
CREATE TABLE day_verdicts (
    date            TEXT NOT NULL,
    employee_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    day_kind        TEXT NOT NULL,
    provisional     INTEGER NOT NULL,
    late_minutes    INTEGER NOT NULL,
    early_minutes   INTEGER NOT NULL,
    office_seconds  INTEGER NOT NULL,
    covered_seconds INTEGER NOT NULL,
    arrival_ms      INTEGER,
    departure_ms    INTEGER,
    -- JSON object: non-work category -> seconds in office hours.
    nonwork         TEXT NOT NULL,
    computed_ms     INTEGER NOT NULL,
    context_fp      TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    PRIMARY KEY (date, employee_id)
) WITHOUT ROWID;
CREATE INDEX day_verdicts_by_person ON day_verdicts(employee_id, date);
CREATE TABLE day_verdict_details (
    employee_id TEXT NOT NULL,
    date        TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    PRIMARY KEY (employee_id, date)
) WITHOUT ROWID;
"#,
    r#"
DROP INDEX events_by_account_time;
DROP INDEX batches_by_agent;
"#,
    "-- events.data: protobuf BLOB from here on; earlier rows stay JSON TEXT.",
    r#"
ALTER TABLE agents ADD COLUMN clock_offset_ms INTEGER;
UPDATE agents SET clock_offset_ms =
    (SELECT b.clock_offset_ms FROM batches b WHERE b.agent = agents.num ORDER BY b.id DESC LIMIT 1);
DROP INDEX batches_by_agent_id;
"#,
    "CREATE INDEX exemptions_by_end ON exemptions(end_ms);",
    r#"
CREATE TABLE calendar_notices (
    year        INTEGER PRIMARY KEY,
    revision    INTEGER NOT NULL,
    imported_ms INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    source      TEXT NOT NULL
);
CREATE TABLE calendar_notice_days (
    date TEXT PRIMARY KEY,
    year INTEGER NOT NULL REFERENCES calendar_notices(year),
    kind TEXT NOT NULL CHECK (kind IN ('holiday', 'makeup_workday')),
    note TEXT NOT NULL
) WITHOUT ROWID;
"#,
    "ALTER TABLE day_verdicts ADD COLUMN unverified INTEGER NOT NULL DEFAULT 0;",
    r#"
ALTER TABLE agents ADD COLUMN latest_at_ms INTEGER;
UPDATE agents SET latest_at_ms =
    (SELECT max(e.at_ms + e.clock_offset_ms) FROM events e WHERE e.agent = agents.num);
ALTER TABLE tokens ADD COLUMN reenroll INTEGER NOT NULL DEFAULT 0;
CREATE TABLE enrolments (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL,
    agent       INTEGER NOT NULL REFERENCES agents(num),
    at_ms       INTEGER NOT NULL,
    hostname    TEXT NOT NULL,
    reenrolled  INTEGER NOT NULL
);
CREATE INDEX enrolments_by_token ON enrolments(token_hash);
CREATE TABLE integrity_events (
    id      INTEGER PRIMARY KEY,
    agent   INTEGER REFERENCES agents(num),
    at_ms   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    seq     INTEGER,
    detail  TEXT NOT NULL
);
CREATE INDEX integrity_events_by_time ON integrity_events(at_ms);
"#,
    r#"
ALTER TABLE integrity_events ADD COLUMN claimed_ms INTEGER;
ALTER TABLE integrity_events ADD COLUMN account TEXT;
CREATE INDEX integrity_events_by_account ON integrity_events(account, claimed_ms)
    WHERE account IS NOT NULL;
"#,
    r#"
CREATE TABLE staff_pcs (
    employee_id TEXT NOT NULL REFERENCES staff(employee_id),
    pc          TEXT NOT NULL,
    PRIMARY KEY (employee_id, pc)
) WITHOUT ROWID;
CREATE INDEX integrity_events_by_agent ON integrity_events(agent, at_ms);
"#,
    r#"
CREATE TABLE retention (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    frozen_before TEXT NOT NULL,
    pruned_ms     INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE dirty_claims (
    account    TEXT NOT NULL,
    date       TEXT NOT NULL,
    claimed_ms INTEGER NOT NULL,
    PRIMARY KEY (account, date)
) WITHOUT ROWID;
"#,
];
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
    auth: RwLock<HashMap<String, (AgentAuth, std::time::Instant)>>,
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
            .spawn(move || Writer::new(shared_writer, writer_path, days, wake, restart).run(rx))?;
        let store = SqliteStore {
            path,
            jobs: tx,
            readers,
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            writer_conn,
            auth: RwLock::new(HashMap::new()),
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
        self.auth
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent_id);
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
        let mut map = self.auth.write().unwrap_or_else(|p| p.into_inner());
        match &found {
            Some(a) => {
                map.insert(a.agent_id.clone(), (a.clone(), std::time::Instant::now()));
            }
            None => {
                map.remove(agent_id);
            }
        }
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
        let mut map = self.auth.write().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        for row in rows {
            let a = row.map_err(&err)?;
            map.insert(a.agent_id.clone(), (a, now));
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
    /// Calls `f` with every stored event, in agent then seq order, optionally of
    /// one agent only. Stops at the first error `f` returns.
    fn for_each_event(
        &self,
        agent_id: Option<&str>,
        f: &mut dyn FnMut(StoredEvent) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let conn = self.reader();
        let err = sql_err(&self.path);
        let mut stmt = conn
            .prepare(
                "SELECT a.id, e.seq, e.at_ms, e.clock_offset_ms, e.received_ms, e.data
                 FROM events e JOIN agents a ON a.num = e.agent
                 WHERE ?1 IS NULL OR a.id = ?1
                 ORDER BY e.agent, e.seq",
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

    /// Counts stored events, and distinct (agent, seq) pairs among them.
    fn count_events(&self) -> Result<(u64, u64), StoreError> {
        self.reader()
            .query_row(
                "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT agent, seq FROM events)) FROM events",
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
            let events = conn
                .execute("DELETE FROM events WHERE at_ms < ?1", [boundary])
                .map_err(&err)? as u64;
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
        self.auth
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(auth.agent_id.clone(), (auth, std::time::Instant::now()));
        Ok(enrolment)
    }

    /// From the cache while it is fresh ([`AUTH_RECHECK`]); otherwise, and for an
    /// id the cache does not know, from the database, so a revocation or
    /// enrolment made by another process is seen within a second.
    fn agent_auth(&self, agent_id: &str) -> Result<Option<AgentAuth>, StoreError> {
        if let Some((a, checked)) = self
            .auth
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(agent_id)
            && checked.elapsed() < AUTH_RECHECK
        {
            return Ok(Some(a.clone()));
        }
        self.reload_auth(agent_id)
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

/// How stale `pc_accounts.last_ms` (shown as an unmapped account's "last seen")
/// may get: an account seen again within this long after the instant stored for
/// it is not written again. Saves a b-tree page per Report.
const PC_ACCOUNT_SLACK_MS: i64 = 15 * 60 * 1000;
/// The most PCs whose accounts the writer remembers.
const PC_ACCOUNT_CACHE_PCS: usize = 100_000;

/// What the writer knows is stored in `pc_accounts`: PC -> account -> (first, last).
/// Only the writer writes that table, and it learns a row only once the
/// transaction that wrote it has committed, so what it remembers is on disk.
type PcAccounts = HashMap<i64, HashMap<String, (i64, i64)>>;
/// Rows of `pc_accounts` written by one job: (PC, account, first, last).
type Learned = Vec<(i64, String, i64, i64)>;

/// The writer thread's state.
struct Writer {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    days: Settings,
    pc_accounts: PcAccounts,
    /// Tells the checkpointer that the log has grown.
    checkpoint: mpsc::SyncSender<()>,
    /// Set by the checkpointer when the log is past [`CHECKPOINT_RESTART_PAGES`].
    restart: Arc<std::sync::atomic::AtomicBool>,
}

/// Sends one job's answer once the group's commit is known (its error, if any).
type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;
type Replies = Vec<Reply>;

impl Writer {
    fn new(
        conn: Arc<Mutex<Connection>>,
        path: PathBuf,
        days: Settings,
        checkpoint: mpsc::SyncSender<()>,
        restart: Arc<std::sync::atomic::AtomicBool>,
    ) -> Writer {
        Writer {
            conn,
            path,
            days,
            pc_accounts: HashMap::new(),
            checkpoint,
            restart,
        }
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut group = vec![first];
            let mut events = 0;
            while events < GROUP_MAX_EVENTS {
                match jobs.try_recv() {
                    Ok(job) => {
                        if let Job::Batch(b, _, _) = &job {
                            events += b.events.len();
                        }
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
            if self
                .restart
                .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                // Most of the log is copied already; this copies the rest, and the
                // next transaction writes the log from its start.
                let started = std::time::Instant::now();
                let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
                match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(2)) {
                    Ok(pages) => tracing::debug!(
                        pages,
                        ms = started.elapsed().as_millis() as u64,
                        "Restarted the write-ahead log."
                    ),
                    Err(e) => {
                        tracing::warn!(db = %self.path.display(), error = %e, "Could not restart the write-ahead log; it keeps growing until it can.")
                    }
                }
            }
        }
    }

    /// Applies every job in one transaction; each job in its own savepoint so one
    /// job's failure does not fail the others. Answers are sent after COMMIT.
    fn commit_group(&mut self, group: Vec<Job>) {
        let path = self.path.clone();
        let days = self.days.clone();
        let mut replies: Replies = Vec::with_capacity(group.len());
        let mut learned: Learned = Vec::new();
        let shared = self.conn.clone();
        let mut conn = shared.lock().unwrap_or_else(|p| p.into_inner());
        let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let e = classify(&path, e);
                for job in group {
                    fail(job, &e);
                }
                return;
            }
        };
        for job in group {
            match job {
                Job::Batch(batch, encoded, reply) => {
                    let known = &self.pc_accounts;
                    let r = with_savepoint(&tx, &path, |sp| {
                        insert_batch(sp, &path, &batch, &encoded, &days, known)
                    })
                    .map(|(outcome, rows)| {
                        learned.extend(rows);
                        outcome
                    });
                    replies.push(after_commit(r, reply));
                }
                Job::Enroll {
                    token,
                    host,
                    now_ms,
                    reply,
                } => {
                    let r =
                        with_savepoint(&tx, &path, |sp| enroll(sp, &path, &token, &host, now_ms));
                    if let Err(StoreError::Denied(why)) = &r {
                        // Someone with a token tried to take a known PC's identity.
                        let attempt = |sp: &Connection| {
                            let num: Option<i64> = sp
                                .query_row(
                                    "SELECT num FROM agents WHERE machine_id = ?1",
                                    [&host.machine_id],
                                    |r| r.get(0),
                                )
                                .optional()
                                .map_err(sql_err(&path))?;
                            IntegrityEvent {
                                agent_num: num.unwrap_or_default(),
                                at_ms: now_ms,
                                kind: "reenrol_refused",
                                seq: None,
                                claimed: None,
                                detail: format!("enrolment as {:?} refused: {why}", host.hostname),
                            }
                            .insert(sp, &path)
                        };
                        if let Err(e) = with_savepoint(&tx, &path, attempt) {
                            tracing::warn!(error = %e, "Could not record a refused enrolment.");
                        }
                    }
                    replies.push(after_commit(r, reply));
                }
                Job::Integrity { event, reply } => {
                    let r = with_savepoint(&tx, &path, |sp| {
                        event.insert(sp, &path)?;
                        // The day a refused event claimed is judged again, so its
                        // verdict can say what was refused.
                        if let Some(c) = &event.claimed
                            && let Ok(t) = jiff::Timestamp::from_millisecond(c.at_ms)
                        {
                            let date = crate::attendance::attendance_date(t, &days);
                            sp.prepare_cached(
                                "INSERT OR IGNORE INTO dirty_days (account, date) VALUES (?1, ?2)",
                            )
                            .and_then(|mut st| {
                                st.execute(params![
                                    c.account.to_ascii_lowercase(),
                                    date.to_string()
                                ])
                            })
                            .map_err(sql_err(&path))?;
                        }
                        Ok(())
                    });
                    replies.push(after_commit(r, reply));
                }
            }
        }
        let started = std::time::Instant::now();
        let commit = tx.commit().map_err(|e| classify(&path, e));
        tracing::trace!(
            ms = started.elapsed().as_millis() as u64,
            jobs = replies.len(),
            "Committed."
        );
        if let Err(e) = &commit {
            tracing::warn!(error = %e, "Failed to commit a group of writes; every request in it is refused.");
        }
        if commit.is_ok() {
            // Full means a checkpoint is already due.
            let _ = self.checkpoint.try_send(());
            if self.pc_accounts.len() > PC_ACCOUNT_CACHE_PCS {
                self.pc_accounts.clear();
            }
            for (pc, account, first, last) in learned {
                self.pc_accounts
                    .entry(pc)
                    .or_default()
                    .insert(account, (first, last));
            }
        }
        for reply in replies {
            reply(commit.as_ref().err());
        }
    }
}

/// Copies the write-ahead log into the database file whenever the writer has
/// committed, at most once per [`CHECKPOINT_PACE`], until the writer ends. Run
/// beside the writer, the copying and its fsync no longer hold up the group
/// commit that happened to cross SQLite's own checkpoint threshold.
fn run_checkpoints(
    conn: &Connection,
    path: &Path,
    woken: &mpsc::Receiver<()>,
    restart: &std::sync::atomic::AtomicBool,
) {
    let checkpoint = |mode: &str| -> Option<i64> {
        let r = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            r.get::<_, i64>(1)
        });
        match r {
            Ok(pages) => Some(pages),
            Err(e) => {
                tracing::warn!(db = %path.display(), error = %e, "Checkpoint of the write-ahead log failed; the next commit tries again.");
                None
            }
        }
    };
    let mut due = woken.recv().is_ok();
    while due {
        let started = std::time::Instant::now();
        if checkpoint("PASSIVE").is_some_and(|pages| pages > CHECKPOINT_RESTART_PAGES) {
            restart.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        tracing::trace!(ms = started.elapsed().as_millis() as u64, "Checkpointed.");
        // Wait out the pace, noting whether the writer committed meanwhile.
        let mut committed = false;
        loop {
            match woken.recv_timeout(CHECKPOINT_PACE.saturating_sub(started.elapsed())) {
                Ok(()) => committed = true,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    committed = false;
                    break;
                }
            }
        }
        due = committed || woken.recv().is_ok();
    }
    checkpoint("TRUNCATE");
}

/// The answer to one job of a group, sent once the group's commit is known: a
/// job that succeeded fails after all if the commit did.
fn after_commit<T: Send + 'static>(
    r: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
) -> Reply {
    Box::new(move |commit_err| {
        let _ = reply.send(match (r, commit_err) {
            (Ok(_), Some(e)) => Err(busy_copy(e)),
            (r, _) => r,
        });
    })
}

/// A commit failure reported to each request of the group, as retryable.
fn busy_copy(e: &StoreError) -> StoreError {
    StoreError::Busy(e.to_string())
}

fn fail(job: Job, e: &StoreError) {
    match job {
        Job::Batch(_, _, reply) => {
            let _ = reply.send(Err(busy_copy(e)));
        }
        Job::Enroll { reply, .. } => {
            let _ = reply.send(Err(busy_copy(e)));
        }
        Job::Integrity { reply, .. } => {
            let _ = reply.send(Err(busy_copy(e)));
        }
    }
}

fn with_savepoint<T>(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: a Report of one event is a handful of statements, and
    // compiling these two each time was a measurable share of them.
    let run = |sql: &str| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map_err(|e| classify(path, e))
    };
    run("SAVEPOINT job")?;
    match f(tx) {
        Ok(v) => {
            run("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

fn insert_batch(
    conn: &Connection,
    path: &Path,
    b: &Batch,
    encoded: &[Vec<u8>],
    days: &Settings,
    known: &PcAccounts,
) -> Result<(BatchOutcome, Learned), StoreError> {
    let err = sql_err(path);
    let mut inserted = 0u64;
    let mut max_seq = 0u64;
    // The highest seq stored before this batch: a new event at or below it is a
    // seq going backwards (a resend of a stored one is not new).
    let state = conn
        .prepare_cached("SELECT max_seq, enrolled_ms, latest_at_ms FROM agents WHERE num = ?1")
        .map_err(&err)?
        .query_row([b.agent_num], |r| {
            Ok(super::trust::AgentState {
                max_seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                enrolled_ms: r.get(1)?,
                latest_at_ms: r.get(2)?,
            })
        })
        .map_err(&err)?;
    let stored_max = state.max_seq as i64;
    let latest = super::trust::check_batch(
        &state,
        &b.events,
        b.clock_offset_ms,
        b.received_ms,
        b.replay,
    )
    .map_err(StoreError::Invalid)?;
    // Accounts seen (lower case) with corrected first/last instants, and the
    // attendance days the new events fall on.
    let mut facts = super::derived::BatchFacts::default();
    let mut note = |e: &Event| facts.note(e, b.clock_offset_ms, days);
    // The usual batch is all new: seqs above every stored one, in increasing
    // order. Those rows go in through multi-row INSERTs.
    let all_new = b.events.first().is_some_and(|e| e.seq as i64 > stored_max)
        && b.events.windows(2).all(|w| w[0].seq < w[1].seq);
    if all_new {
        inserted = insert_events(conn, path, b, &b.events, encoded)?;
        max_seq = b.events.last().map_or(0, |e| e.seq);
        b.events.iter().for_each(&mut note);
    } else {
        // Resends among them: one row at a time, to tell each resend (ignored)
        // from a seq that goes backwards (refused).
        for (e, data) in b.events.iter().zip(encoded) {
            let (e1, data1) = (std::slice::from_ref(e), std::slice::from_ref(data));
            let n = insert_events(conn, path, b, e1, data1)?;
            if n == 1 && e.seq as i64 <= stored_max {
                return Err(StoreError::Invalid(format!(
                    "event seq {}: seq: goes backwards (this agent's events are stored up to seq {stored_max} and {} is not among them); nothing of the batch was stored",
                    e.seq, e.seq
                )));
            }
            inserted += n;
            max_seq = max_seq.max(e.seq);
            if n == 1 {
                note(e);
            }
        }
    }
    let learned = mark_dirty(
        conn,
        path,
        b.agent_num,
        &facts.seen,
        &facts.dirty_dates(),
        known.get(&b.agent_num),
    )?;
    let (first, last) = (
        b.events.first().map_or(0, |e| e.seq),
        b.events.last().map_or(0, |e| e.seq),
    );
    conn.prepare_cached(
        "INSERT INTO batches (agent, received_ms, sent_at_ms, clock_offset_ms, first_seq, last_seq, events, inserted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(&err)?
    .execute(params![
        b.agent_num,
        b.received_ms,
        b.sent_at_ms,
        b.clock_offset_ms,
        first as i64,
        last as i64,
        b.events.len() as i64,
        inserted as i64
    ])
    .map_err(&err)?;
    let acked: i64 = conn
        .prepare_cached(
            "UPDATE agents SET max_seq = max(max_seq, ?2), last_seen_ms = ?3, clock_offset_ms = ?4,
                    latest_at_ms = ?5
             WHERE num = ?1 RETURNING max_seq",
        )
        .map_err(&err)?
        .query_row(
            params![
                b.agent_num,
                max_seq as i64,
                b.received_ms,
                b.clock_offset_ms,
                latest
            ],
            |r| r.get(0),
        )
        .map_err(&err)?;
    Ok((
        BatchOutcome {
            acked_seq: acked as u64,
            inserted,
        },
        learned,
    ))
}

/// Rows in one multi-row INSERT of new events.
const INSERT_CHUNK: usize = 64;

/// Inserts `events` of batch `b` with their stored forms, ignoring any already
/// stored, [`INSERT_CHUNK`] rows to a statement: one statement's set-up (cursors
/// on the table and its indexes) then serves many rows. Returns how many rows
/// were inserted.
fn insert_events(
    conn: &Connection,
    path: &Path,
    b: &Batch,
    events: &[Event],
    encoded: &[Vec<u8>],
) -> Result<u64, StoreError> {
    fn sql(rows: usize) -> String {
        let mut sql = String::from(
            "INSERT OR IGNORE INTO events (agent, seq, at_ms, clock_offset_ms, received_ms, kind, account, data) VALUES ",
        );
        for i in 0..rows {
            sql.push_str(if i == 0 {
                "(?,?,?,?,?,?,?,?)"
            } else {
                ",(?,?,?,?,?,?,?,?)"
            });
        }
        sql
    }
    static FULL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| sql(INSERT_CHUNK));
    static ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| sql(1));
    let err = sql_err(path);
    let mut inserted = 0;
    for (events, data) in events
        .chunks(INSERT_CHUNK)
        .zip(encoded.chunks(INSERT_CHUNK))
    {
        let mut stmt = match events.len() {
            INSERT_CHUNK => conn.prepare_cached(&FULL),
            1 => conn.prepare_cached(&ONE),
            n => conn.prepare_cached(&sql(n)),
        }
        .map_err(&err)?;
        for (i, (e, data)) in events.iter().zip(data).enumerate() {
            let at = i * 8;
            stmt.raw_bind_parameter(at + 1, b.agent_num).map_err(&err)?;
            stmt.raw_bind_parameter(at + 2, e.seq as i64)
                .map_err(&err)?;
            stmt.raw_bind_parameter(at + 3, e.at_ms).map_err(&err)?;
            stmt.raw_bind_parameter(at + 4, b.clock_offset_ms)
                .map_err(&err)?;
            stmt.raw_bind_parameter(at + 5, b.received_ms)
                .map_err(&err)?;
            stmt.raw_bind_parameter(at + 6, e.kind.name())
                .map_err(&err)?;
            stmt.raw_bind_parameter(at + 7, e.kind.account())
                .map_err(&err)?;
            stmt.raw_bind_parameter(at + 8, data.as_slice())
                .map_err(&err)?;
        }
        inserted += stmt.raw_execute().map_err(&err)? as u64;
    }
    Ok(inserted)
}

/// Records which accounts the PC has seen and marks dirty every (account of this
/// PC, day) of `dates` ([`super::derived::BatchFacts::dirty_dates`]). `known` is
/// what the writer knows is stored for this PC; returns the `pc_accounts` rows
/// written.
fn mark_dirty(
    conn: &Connection,
    path: &Path,
    agent: i64,
    seen: &BTreeMap<String, (i64, i64)>,
    dates: &BTreeSet<jiff::civil::Date>,
    known: Option<&HashMap<String, (i64, i64)>>,
) -> Result<Learned, StoreError> {
    let err = sql_err(path);
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO pc_accounts (agent, account, first_ms, last_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (agent, account) DO UPDATE SET
                first_ms = min(first_ms, excluded.first_ms), last_ms = max(last_ms, excluded.last_ms)
             RETURNING first_ms, last_ms",
        )
        .map_err(&err)?;
    let mut learned = Learned::new();
    for (account, &(first, last)) in seen {
        let stored = known.and_then(|k| k.get(account));
        if stored.is_some_and(|&(f, l)| f <= first && last <= l + PC_ACCOUNT_SLACK_MS) {
            continue;
        }
        let (f, l) = upsert
            .query_row(params![agent, account, first, last], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(&err)?;
        learned.push((agent, account.clone(), f, l));
    }
    let mut dirty = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO dirty_days (account, date)
             SELECT account, ?2 FROM pc_accounts WHERE agent = ?1",
        )
        .map_err(&err)?;
    for d in dates {
        dirty.execute(params![agent, d.to_string()]).map_err(&err)?;
    }
    Ok(learned)
}

fn enroll(
    conn: &Connection,
    path: &Path,
    token: &str,
    host: &HostFacts,
    now_ms: i64,
) -> Result<(Enrolment, AgentAuth), StoreError> {
    let err = sql_err(path);
    let hash = hash_secret(token);
    /// expires_ms, max_uses, uses, revoked_ms, created_ms, reenroll
    type TokenRow = (i64, Option<i64>, i64, Option<i64>, i64, bool);
    let row: Option<TokenRow> = conn
        .query_row(
            "SELECT expires_ms, max_uses, uses, revoked_ms, created_ms, reenroll FROM tokens WHERE hash = ?1",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()
        .map_err(&err)?;
    let Some((expires_ms, max_uses, uses, revoked_ms, created_ms, reenroll)) = row else {
        return Err(StoreError::BadToken("unknown enrolment token".into()));
    };
    if revoked_ms.is_some() {
        return Err(StoreError::BadToken(
            "enrolment token has been revoked".into(),
        ));
    }
    if now_ms >= expires_ms {
        return Err(StoreError::BadToken(format!(
            "enrolment token expired at {}",
            jiff::Timestamp::from_millisecond(expires_ms)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| expires_ms.to_string())
        )));
    }
    if max_uses.is_some_and(|m| uses >= m) {
        return Err(StoreError::BadToken("enrolment token is used up".into()));
    }
    // A revoked machine comes back only with a token made after its revocation:
    // the token it saved when it first enrolled must not undo the revocation.
    let revoked: Option<(String, i64)> = conn
        .query_row(
            "SELECT id, revoked_ms FROM agents WHERE machine_id = ?1 AND revoked_ms IS NOT NULL",
            [&host.machine_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(&err)?;
    if let Some((id, revoked_ms)) = revoked
        && created_ms <= revoked_ms
    {
        return Err(StoreError::BadToken(format!(
            "agent {id} of this machine was revoked at {}; enrol it with a token created after that",
            jiff::Timestamp::from_millisecond(revoked_ms)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| revoked_ms.to_string())
        )));
    }
    let existing: Option<(i64, String, i64, String)> = conn
        .query_row(
            "SELECT num, id, max_seq, hostname FROM agents WHERE machine_id = ?1",
            [&host.machine_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(&err)?;
    if let Some((_, id, _, hostname)) = &existing
        && !reenroll
    {
        return Err(StoreError::Denied(format!(
            "machine {:?} is already enrolled as agent {id} ({hostname}); enrolling it again needs a token created with `token create --reenroll` (for a reinstall)",
            host.machine_id
        )));
    }
    conn.execute("UPDATE tokens SET uses = uses + 1 WHERE hash = ?1", [&hash])
        .map_err(&err)?;
    let key = new_secret()?;
    let key_hash = hash_secret(&key);
    let (num, agent_id, last_seq, re_enrolled) = match existing {
        Some((num, id, max_seq, old_hostname)) => {
            IntegrityEvent {
                agent_num: num,
                at_ms: now_ms,
                kind: "reenrolled",
                seq: None,
                claimed: None,
                detail: format!(
                    "machine {:?} enrolled again as {} (was {old_hostname}) with a --reenroll token; the key it had no longer works",
                    host.machine_id, host.hostname
                ),
            }
            .insert(conn, path)?;
            conn.execute(
                "UPDATE agents SET hostname = ?2, os = ?3, os_version = ?4, agent_version = ?5,
                        key_hash = ?6, revoked_ms = NULL WHERE num = ?1",
                params![
                    num,
                    host.hostname,
                    host.os,
                    host.os_version,
                    host.agent_version,
                    key_hash
                ],
            )
            .map_err(&err)?;
            (num, id, max_seq as u64, true)
        }
        None => {
            let id = format!("ag-{}", &new_secret()?[..16]);
            conn.execute(
                "INSERT INTO agents (id, machine_id, hostname, os, os_version, agent_version, key_hash, enrolled_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    host.machine_id,
                    host.hostname,
                    host.os,
                    host.os_version,
                    host.agent_version,
                    key_hash,
                    now_ms
                ],
            )
            .map_err(&err)?;
            (conn.last_insert_rowid(), id, 0, false)
        }
    };
    conn.execute(
        "INSERT INTO enrolments (token_hash, agent, at_ms, hostname, reenrolled) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![hash, num, now_ms, host.hostname, re_enrolled],
    )
    .map_err(&err)?;
    Ok((
        Enrolment {
            agent_id: agent_id.clone(),
            agent_key: key,
            last_seq,
            re_enrolled,
        },
        AgentAuth {
            agent_id,
            num,
            key_hash,
            revoked: false,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::store::concerns::*;
    use kaoqin_proto::event::SessionKind;

    const T0: i64 = 1_795_000_000_000;

    fn host(machine: &str) -> HostFacts {
        HostFacts {
            machine_id: machine.into(),
            hostname: format!("pc-{machine}"),
            os: "linux".into(),
            ..HostFacts::default()
        }
    }

    fn events(seqs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
        seqs.map(|seq| Event {
            seq,
            at_ms: T0 + seq as i64,
            kind: EventKind::Session {
                kind: SessionKind::Unlock,
                account: "zhangsan".into(),
            },
        })
        .collect()
    }

    /// A fresh store with one enrolled agent: (its dir, the store, the
    /// enrolment, the agent's number).
    async fn one_agent() -> (tempfile::TempDir, Arc<SqliteStore>, Enrolment, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let t = store
            .create_token(
                &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
                T0,
            )
            .unwrap();
        let e = store.enroll(&t.token, host("m1"), T0).await.unwrap();
        let num = store.agent_auth(&e.agent_id).unwrap().unwrap().num;
        (dir, store, e, num)
    }

    fn batch(num: i64, events: Vec<Event>) -> Batch {
        Batch {
            agent_num: num,
            received_ms: T0,
            sent_at_ms: T0 - 1500,
            clock_offset_ms: 1500,
            events,
            // The trust rules have their own test below.
            replay: true,
        }
    }

    #[test]
    fn a_long_read_does_not_hold_up_another() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        // A long report holds a reader; a login's read still gets through.
        let long = store.reader();
        let (done, finished) = mpsc::channel();
        let other = store.clone();
        std::thread::spawn(move || done.send(other.staff().map(|s| s.len())).unwrap());
        let got = finished
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a second read completes while the first holds its reader");
        assert_eq!(got.unwrap(), 0);
        drop(long);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_writing_makes_ingest_wait_its_turn_not_fail() {
        let (_dir, store, _e, num) = one_agent().await;
        // A command holds the writing connection (a long staff import, a prune).
        let (locked, is_locked) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let command = std::thread::spawn({
            let store = store.clone();
            move || {
                let _conn = store.writer();
                locked.send(()).unwrap();
                released.recv().unwrap();
            }
        });
        is_locked.recv().unwrap();
        let ingest = tokio::spawn({
            let store = store.clone();
            async move { store.store_batch(batch(num, events(1..=3))).await }
        });
        // The batch waits rather than failing with Busy...
        let waited = tokio::time::timeout(std::time::Duration::from_millis(300), async {
            while !ingest.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(
            waited.is_err(),
            "the batch was stored while the command wrote"
        );
        // ...and is stored once the command is done.
        release.send(()).unwrap();
        command.join().unwrap();
        assert_eq!(ingest.await.unwrap().unwrap().acked_seq, 3);
    }

    #[tokio::test]
    async fn a_reenrolment_is_found_for_the_days_it_touches() {
        let (_dir, store, e, num) = one_agent().await;
        let pc = (num, e.agent_id.clone());
        assert!(
            store
                .reenrolments(std::slice::from_ref(&pc), 0, i64::MAX)
                .unwrap()
                .is_empty()
        );
        let t = store
            .create_token(
                &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
                T0,
            )
            .unwrap();
        store
            .enroll(&t.token, host("m1"), T0 + 60_000)
            .await
            .unwrap();
        assert_eq!(
            store
                .reenrolments(std::slice::from_ref(&pc), T0, T0 + 120_000)
                .unwrap(),
            [(e.agent_id.clone(), T0 + 60_000)]
        );
        assert!(
            store
                .reenrolments(&[pc], T0 + 120_000, i64::MAX)
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn tokens_expire_run_out_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let err = store.enroll("kq1-nope", host("m1"), T0).await.unwrap_err();
        assert!(matches!(err, StoreError::BadToken(m) if m.contains("unknown")));

        let once = store
            .create_token(
                &crate::store::TokenSpec::new_machines(60_000, Some(1)).reenrolling(),
                T0,
            )
            .unwrap();
        store.enroll(&once.token, host("m1"), T0).await.unwrap();
        let err = store.enroll(&once.token, host("m2"), T0).await.unwrap_err();
        assert!(matches!(err, StoreError::BadToken(m) if m.contains("used up")));

        let short = store
            .create_token(
                &crate::store::TokenSpec::new_machines(60_000, None).reenrolling(),
                T0,
            )
            .unwrap();
        let err = store
            .enroll(&short.token, host("m3"), T0 + 60_000)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::BadToken(m) if m.contains("expired")));
    }

    #[tokio::test]
    async fn the_same_machine_keeps_its_id_and_learns_its_last_seq() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let t = store
            .create_token(
                &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
                T0,
            )
            .unwrap();
        let first = store.enroll(&t.token, host("m1"), T0).await.unwrap();
        assert!(!first.re_enrolled);
        let auth = store.agent_auth(&first.agent_id).unwrap().unwrap();
        store
            .store_batch(batch(auth.num, events(1..=7)))
            .await
            .unwrap();

        let again = store.enroll(&t.token, host("m1"), T0).await.unwrap();
        assert_eq!(again.agent_id, first.agent_id);
        assert!(again.re_enrolled);
        assert_eq!(again.last_seq, 7);
        assert_ne!(again.agent_key, first.agent_key);
        let auth = store.agent_auth(&first.agent_id).unwrap().unwrap();
        assert_eq!(
            auth.key_hash,
            hash_secret(&again.agent_key),
            "the old key no longer works"
        );

        let other = store.enroll(&t.token, host("m2"), T0).await.unwrap();
        assert_ne!(other.agent_id, first.agent_id);
    }

    #[tokio::test]
    async fn events_stored_as_json_before_schema_7_read_beside_protobuf_ones() {
        let (_dir, store, e, num) = one_agent().await;
        let old = events(1..=1).remove(0);
        store
            .reader()
            .execute(
                "INSERT INTO events (agent, seq, at_ms, clock_offset_ms, received_ms, kind, account, data)
                 VALUES (?1, 1, ?2, 0, ?2, 'session', 'zhangsan', ?3)",
                params![num, old.at_ms, serde_json::to_string(&old.kind).unwrap()],
            )
            .unwrap();
        store
            .reader()
            .execute("UPDATE agents SET max_seq = 1", [])
            .unwrap();
        let new = vec![Event {
            seq: 2,
            at_ms: T0 + 2,
            kind: EventKind::Usage {
                account: "zhangsan".into(),
                start_ms: T0 - 300_000,
                end_ms: T0,
                category: "chat".into(),
                active_seconds: 120,
                basis: kaoqin_proto::event::UsageBasis::Foreground,
            },
        }];
        store.store_batch(batch(num, new.clone())).await.unwrap();
        let types: Vec<String> = store
            .reader()
            .prepare("SELECT typeof(data) FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(types, ["text", "blob"]);
        let mut read = Vec::new();
        store
            .for_each_event(None, &mut |s| {
                read.push(s.event);
                Ok(())
            })
            .unwrap();
        assert_eq!(read, [old, new[0].clone()]);

        store
            .reader()
            .execute("UPDATE events SET data = x'ff01' WHERE seq = 2", [])
            .unwrap();
        let err = store.for_each_event(None, &mut |_| Ok(())).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("stored event {}/2 does not parse", e.agent_id)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_agent_row_keeps_the_latest_clock_offset_also_after_an_upgrade() {
        let (dir, store, _e, num) = one_agent().await;
        let offsets = |store: &SqliteStore| -> Vec<Option<i64>> {
            store
                .agents()
                .unwrap()
                .into_iter()
                .map(|a| a.last_clock_offset_ms)
                .collect()
        };
        assert_eq!(offsets(&store), [None], "nothing measured yet");
        store.store_batch(batch(num, events(1..=2))).await.unwrap();
        let mut late = batch(num, events(3..=4));
        late.clock_offset_ms = -86_400_000;
        store.store_batch(late).await.unwrap();
        assert_eq!(offsets(&store), [Some(-86_400_000)]);

        // A database of schema 7 had the offset only in `batches`.
        store
            .reader()
            .execute_batch(
                "ALTER TABLE agents DROP COLUMN clock_offset_ms;
                 CREATE INDEX batches_by_agent_id ON batches(agent, id);
                 DROP INDEX exemptions_by_end;
                 DROP TABLE calendar_notice_days;
                 DROP TABLE calendar_notices;
                 ALTER TABLE day_verdicts DROP COLUMN unverified;
                 ALTER TABLE agents DROP COLUMN latest_at_ms;
                 ALTER TABLE tokens DROP COLUMN reenroll;
                 DROP TABLE enrolments;
                 DROP TABLE integrity_events;
                 DROP TABLE staff_pcs;
                 DROP TABLE retention;
                 DROP TABLE dirty_claims;
                 PRAGMA user_version = 7;",
            )
            .unwrap();
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(offsets(&store), [Some(-86_400_000)]);
    }

    #[tokio::test]
    async fn pc_accounts_are_written_when_new_or_a_quarter_hour_on_and_never_from_a_refused_batch()
    {
        let (_dir, store, _e, num) = one_agent().await;
        let unlock = |seq: u64, at_ms: i64, account: &str| Event {
            seq,
            at_ms,
            kind: EventKind::Session {
                kind: SessionKind::Unlock,
                account: account.into(),
            },
        };
        let stored = |store: &SqliteStore| -> Vec<(String, i64, i64)> {
            store
                .reader()
                .prepare("SELECT account, first_ms, last_ms FROM pc_accounts ORDER BY account")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let mut b = batch(num, vec![unlock(10, T0, "ZhangSan")]);
        b.clock_offset_ms = 0;
        store.store_batch(b.clone()).await.unwrap();
        assert_eq!(stored(&store), [("zhangsan".into(), T0, T0)]);

        // Refused as a seq going backwards: lisi must not be remembered as stored.
        b.events = vec![unlock(5, T0 + 1, "lisi"), unlock(11, T0 + 1, "lisi")];
        store.store_batch(b.clone()).await.unwrap_err();
        assert_eq!(stored(&store).len(), 1);
        b.events = vec![unlock(11, T0 + 60_000, "lisi")];
        store.store_batch(b.clone()).await.unwrap();
        assert_eq!(stored(&store)[0], ("lisi".into(), T0 + 60_000, T0 + 60_000));

        // Ten minutes on, the stored last instant is close enough; twenty is not.
        b.events = vec![unlock(12, T0 + 600_000, "zhangsan")];
        store.store_batch(b.clone()).await.unwrap();
        assert_eq!(stored(&store)[1], ("zhangsan".into(), T0, T0));
        b.events = vec![unlock(13, T0 + 1_200_000, "zhangsan")];
        store.store_batch(b.clone()).await.unwrap();
        assert_eq!(stored(&store)[1], ("zhangsan".into(), T0, T0 + 1_200_000));
        // An earlier instant (a replayed backlog) is always written.
        b.events = vec![unlock(14, T0 - 1, "zhangsan")];
        store.store_batch(b).await.unwrap();
        assert_eq!(
            stored(&store)[1],
            ("zhangsan".into(), T0 - 1, T0 + 1_200_000)
        );
    }

    #[tokio::test]
    async fn the_log_is_checkpointed_beside_the_writer() {
        let (dir, store, _e, num) = one_agent().await;
        let db_len = || std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
        let before = db_len();
        // 10,000 events, about 200 pages of log: far below SQLite's own
        // threshold of 1,000, and at least 100 pages once in the database.
        for chunk in 0..20u64 {
            store
                .store_batch(batch(num, events(chunk * 500 + 1..=chunk * 500 + 500)))
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while db_len() < before + 100 * 4096 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {} bytes: nothing was checkpointed",
                db_len()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[tokio::test]
    async fn resends_are_stored_once_and_still_acknowledged() {
        let (_dir, store, e, num) = one_agent().await;

        let a = store.store_batch(batch(num, events(1..=10))).await.unwrap();
        assert_eq!(
            a,
            BatchOutcome {
                acked_seq: 10,
                inserted: 10
            }
        );
        let b = store.store_batch(batch(num, events(5..=12))).await.unwrap();
        assert_eq!(
            b,
            BatchOutcome {
                acked_seq: 12,
                inserted: 2
            }
        );
        let c = store.store_batch(batch(num, events(1..=3))).await.unwrap();
        assert_eq!(
            c,
            BatchOutcome {
                acked_seq: 12,
                inserted: 0
            }
        );
        assert_eq!(store.count_events().unwrap(), (12, 12));

        let mut seen = Vec::new();
        store
            .for_each_event(Some(&e.agent_id), &mut |s| {
                assert_eq!(s.clock_offset_ms, 1500);
                seen.push(s.event);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, events(1..=12));
    }

    #[tokio::test]
    async fn a_seq_that_goes_backwards_is_refused_and_rolls_back_the_batch() {
        let (_dir, store, _e, num) = one_agent().await;
        let mut gap = events(1..=6);
        gap.remove(2); // seq 3 never arrives
        store.store_batch(batch(num, gap)).await.unwrap();
        // A resend of 5 and 6 with 3 in front and new 7, 8 behind: 3 is below the
        // stored 6 and not stored, so the batch is refused whole.
        let mut back = events(3..=8);
        back.remove(1);
        let err = store.store_batch(batch(num, back)).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(m) if m.starts_with("event seq 3: seq: goes backwards")),
            "{err:?}"
        );
        assert_eq!(store.count_events().unwrap(), (5, 5), "7 and 8 rolled back");
        // Resends alone are fine, and so is going on above.
        let ok = store.store_batch(batch(num, events(4..=8))).await.unwrap();
        assert_eq!(
            ok,
            BatchOutcome {
                acked_seq: 8,
                inserted: 2
            }
        );
    }

    #[tokio::test]
    async fn a_batch_marks_its_days_dirty_for_every_account_of_the_pc() {
        let (_dir, store, e, num) = one_agent().await;
        // T0 = 2026-11-18T11:06:40Z = 19:06 in Shanghai: that day, and the one before.
        store.store_batch(batch(num, events(1..=3))).await.unwrap();
        let mut dirty = store.take_dirty().unwrap();
        dirty.sort();
        let d = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
        assert_eq!(
            dirty,
            [
                ("zhangsan".to_owned(), d("2026-11-17")),
                ("zhangsan".to_owned(), d("2026-11-18"))
            ]
        );
        assert!(store.take_dirty().unwrap().is_empty(), "taken means gone");
        // A resend marks nothing; a heartbeat of the PC marks its known accounts.
        store.store_batch(batch(num, events(1..=3))).await.unwrap();
        assert!(store.take_dirty().unwrap().is_empty());
        let hb = Event {
            seq: 4,
            at_ms: T0 + 86_400_000,
            kind: EventKind::Heartbeat {
                interval_seconds: 60,
                accounts: vec![],
            },
        };
        store.store_batch(batch(num, vec![hb])).await.unwrap();
        let dirty = store.take_dirty().unwrap();
        assert!(
            dirty.contains(&("zhangsan".to_owned(), d("2026-11-19"))),
            "{dirty:?}"
        );
        let unmapped = store.unmapped_accounts().unwrap();
        assert_eq!(unmapped.len(), 1);
        assert_eq!(unmapped[0].pcs, [(e.agent_id.clone(), "pc-m1".to_owned())]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_are_all_stored_by_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let t = store
            .create_token(
                &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
                T0,
            )
            .unwrap();
        let mut nums = Vec::new();
        for m in 0..8 {
            let e = store
                .enroll(&t.token, host(&format!("m{m}")), T0)
                .await
                .unwrap();
            nums.push(store.agent_auth(&e.agent_id).unwrap().unwrap().num);
        }
        // Agents at once; each agent's batches one after another, as agents send.
        let mut tasks = tokio::task::JoinSet::new();
        for num in nums {
            let store = store.clone();
            tasks.spawn(async move {
                // 150 events a batch: new events go in 64 rows to a statement.
                for chunk in 0..10u64 {
                    let outcome = store
                        .store_batch(batch(num, events(chunk * 150 + 1..=chunk * 150 + 150)))
                        .await?;
                    assert_eq!(outcome.inserted, 150);
                    assert_eq!(outcome.acked_seq, chunk * 150 + 150);
                }
                Ok::<_, StoreError>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(store.count_events().unwrap(), (12_000, 12_000));
        drop(store);
        // Everything acknowledged is there after a reopen, each event as sent.
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.count_events().unwrap(), (12_000, 12_000));
        let mut per_agent: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        store
            .for_each_event(None, &mut |s| {
                per_agent.entry(s.agent_id).or_default().push(s.event);
                Ok(())
            })
            .unwrap();
        assert_eq!(per_agent.len(), 8);
        for events_of_one in per_agent.values() {
            assert_eq!(*events_of_one, events(1..=1500));
        }
    }
}

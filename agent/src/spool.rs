//! The durable outbox: a SQLite file holding events until the collector has
//! acknowledged them.
//!
//! The agent appends every event here before it tries to send anything, and
//! deletes an event only once the collector says it stored it. Together with the
//! collector's dedupe on `(agent_id, seq)` this is the whole delivery guarantee.
//!
//! # Invariants
//!
//! Like vector's disk buffer, these must stay true whatever happens to the
//! process (kill -9, power loss) or the file:
//!
//! 1. **Durable append.** `append` returns only after its transaction is committed
//!    with `journal_mode=WAL` and `synchronous=FULL`, so a returned seq survives a
//!    crash or power loss.
//! 2. **Seqs strictly increase and are never reused**, not after deletion, not
//!    after reopen, not after recovery from corruption: `events.seq` is an
//!    `INTEGER PRIMARY KEY AUTOINCREMENT` whose counter (`sqlite_sequence`) never
//!    goes down, and `ack`/`ensure_next_seq_above` only ever raise it.
//! 3. **Only an ack deletes an event.** The two exceptions are recorded:
//!    dropping for space (invariant 5) and deleting a corrupt record (invariant 6).
//! 4. **Bounded.** The accounted bytes (payload bytes plus a fixed per-row overhead
//!    estimate, for pending events and the `sent` log together) stay within
//!    `max_bytes`. The count is kept in memory, computed at open, so `append`
//!    does not scan.
//! 5. **Every drop is recorded.** When an append would exceed the bound, the
//!    `sent` log is trimmed first (it was delivered already); then the oldest
//!    pending events are dropped down to about 90% of the bound and, in the same
//!    transaction, a `DataGap { reason: "spool_full" }` event is appended that
//!    counts them and spans their instants. A dropped `spool_full` gap is folded
//!    into the new one, so the counts still add up.
//! 6. **A corrupt record is counted, never silently skipped.** Every row carries
//!    a checksum (FNV-1a 64 over seq, instant and payload). A row that fails it or
//!    does not parse is deleted, counted and replaced by a
//!    `DataGap { reason: "spool_corrupt" }` event at the end of the spool. On open,
//!    `PRAGMA quick_check` runs; a file that fails it or is not a database is moved
//!    aside as `<name>.corrupt-<n>`, a fresh spool is created and every row that
//!    can still be read is copied over with its seq; the seq counter is put above
//!    every seq seen. [`OpenReport`] says what happened.
//!
//! # Layout
//!
//! ```text
//!  append ──► events (pending, by seq) ──peek──► uplink
//!                 │  ack(upto)
//!                 ▼
//!            sent (acked, kept sent_retention_days for `kaoqin-agent show`)
//!  meta: the agent's small key/value state   spool_state: last_acked_seq
//! ```

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, params};

use crate::event::{Event, EventKind};

/// Meta key of the clock jumps that waiting events precede: `[[seq, jump_ms], ...]`.
const CLOCK_JUMPS_KEY: &str = "clock_jumps";

/// Schema changelog (`PRAGMA user_version`):
///
/// - 0: empty file.
/// - 1: `events(seq AUTOINCREMENT, at_ms, payload BLOB, checksum)`,
///   `sent(seq, at_ms, acked_at_ms, payload, checksum)` with an index on
///   `acked_at_ms`, `meta(key, value)`, `spool_state(key, value)`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    payload  BLOB    NOT NULL,
    checksum INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (
    seq         INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    acked_at_ms INTEGER NOT NULL,
    payload     BLOB    NOT NULL,
    checksum    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_acked_at ON sent (acked_at_ms);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spool_state (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Estimated bytes a pending row costs beyond its payload (rowid, record header,
/// instant, checksum, cell pointer, page slack).
const PENDING_ROW_OVERHEAD: u64 = 40;
/// Estimated bytes a sent row costs beyond its payload (as pending, plus the
/// acknowledgement instant and its index entry).
const SENT_ROW_OVERHEAD: u64 = 72;
/// Room kept free for the `DataGap` event an overflowing append writes.
const GAP_RESERVE: u64 = 512;
const DAY_MS: i64 = 86_400_000;
/// When nothing says how far the seqs of a damaged table go, recovery probes this
/// many seqs past the last readable one.
const SALVAGE_WINDOW: i64 = 4096;

const REASON_FULL: &str = "spool_full";
const REASON_CORRUPT: &str = "spool_corrupt";

/// What can go wrong with the spool. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// SQLite refused an operation.
    #[error("spool {}: {op} failed", path.display())]
    Sqlite {
        path: PathBuf,
        op: &'static str,
        source: rusqlite::Error,
    },
    /// A file operation (moving a corrupt file aside) failed.
    #[error("spool {}: {op} failed", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// The file failed its integrity check. `open` handles this itself by
    /// recovering; other methods never return it.
    #[error("spool {} is corrupt: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// The file was written by a newer agent; it is left untouched.
    #[error("spool {}: schema version {found} is newer than the {supported} this agent understands", path.display())]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// An event could not be encoded.
    #[error("spool {}: cannot encode an event", path.display())]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// One append asked for more than fits in the spool at all.
    #[error("spool {}: a batch of {bytes} bytes cannot fit within the bound of {max_bytes} bytes; append fewer events at a time", path.display())]
    BatchTooLarge {
        path: PathBuf,
        bytes: u64,
        max_bytes: u64,
    },
    /// A seq beyond what SQLite can store (above `i64::MAX - 1`).
    #[error("spool {}: seq {seq} is out of range", path.display())]
    SeqOutOfRange { path: PathBuf, seq: u64 },
}

impl SpoolError {
    /// Whether the error says the file is damaged. Dropping the [`Spool`] and
    /// opening it again recovers what can be read.
    pub fn is_corruption(&self) -> bool {
        match self {
            SpoolError::Corrupt { .. } => true,
            SpoolError::Sqlite { source, .. } => is_corrupt_code(source),
            _ => false,
        }
    }
}

fn is_corrupt_code(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Records that could not be read (checksum mismatch, unparsable payload, or
    /// a damaged page). A `DataGap { reason: "spool_corrupt" }` event counting
    /// them has been appended.
    pub unreadable: u64,
    /// The file failed its integrity check or was not a database: it was moved
    /// aside as `<name>.corrupt-<n>` and what could be read was copied into a
    /// fresh spool. If the old seq counter itself was unreadable, seqs could only
    /// be kept above the highest one seen; the caller should then call
    /// [`Spool::ensure_next_seq_above`] with the collector's high-water mark
    /// before sending.
    pub recovered_from_corruption: bool,
}

/// Counters of the spool, for `kaoqin-agent status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolStats {
    /// Pending (unacknowledged) events.
    pub depth: u64,
    /// Accounted bytes (pending events and the sent log), kept within `max_bytes`.
    pub bytes: u64,
    /// The highest seq the collector acknowledged (0 if none).
    pub last_acked_seq: u64,
    /// The seq the next appended event gets.
    pub next_seq: u64,
    /// The instant of the oldest pending event.
    pub oldest_at_ms: Option<i64>,
    pub max_bytes: u64,
}

/// One acknowledged event kept for the transparency view (`kaoqin-agent show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    pub seq: u64,
    pub at_ms: i64,
    pub acked_at_ms: i64,
    pub kind: EventKind,
}

/// The durable outbox. One connection; not shared between threads at once.
pub struct Spool {
    conn: Connection,
    path: PathBuf,
    max_bytes: u64,
    sent_retention_days: u32,
    next_seq: Cell<u64>,
    last_acked: Cell<u64>,
    pending_count: Cell<u64>,
    pending_bytes: Cell<u64>,
    sent_bytes: Cell<u64>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .field("max_bytes", &self.max_bytes)
            .field("next_seq", &self.next_seq.get())
            .field("pending", &self.pending_count.get())
            .finish_non_exhaustive()
    }
}

/// A row as read from disk, before its checksum is verified. Every column is
/// read leniently: a damaged record yields `None`s, not an error.
#[derive(Debug, Clone)]
struct RawRow {
    seq: i64,
    at_ms: Option<i64>,
    acked_at_ms: Option<i64>,
    payload: Option<Vec<u8>>,
    checksum: Option<i64>,
}

impl RawRow {
    /// The event, if the record is intact.
    fn decode(&self) -> Option<(i64, EventKind)> {
        let at_ms = self.at_ms?;
        let payload = self.payload.as_deref()?;
        let seq = u64::try_from(self.seq).ok()?;
        if self.checksum? != checksum(seq, at_ms, payload) {
            return None;
        }
        let kind = serde_json::from_slice(payload).ok()?;
        Some((at_ms, kind))
    }

    fn payload_len(&self) -> u64 {
        self.payload.as_ref().map_or(0, |p| p.len() as u64)
    }
}

const EVENT_COLS: &str = "seq, at_ms, NULL, payload, checksum";
const SENT_COLS: &str = "seq, at_ms, acked_at_ms, payload, checksum";

fn raw_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    let int = |i: usize| match row.get_ref(i) {
        Ok(ValueRef::Integer(v)) => Some(v),
        _ => None,
    };
    let payload = match row.get_ref(3) {
        Ok(ValueRef::Blob(b) | ValueRef::Text(b)) => Some(b.to_vec()),
        _ => None,
    };
    Ok(RawRow {
        seq: row.get(0)?,
        at_ms: int(1),
        acked_at_ms: int(2),
        payload,
        checksum: int(4),
    })
}

/// FNV-1a, 64 bits, over seq, instant and payload. Any single changed byte
/// changes the result (each step is a bijection of the state).
fn checksum(seq: u64, at_ms: i64, payload: &[u8]) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in seq
        .to_le_bytes()
        .iter()
        .chain(at_ms.to_le_bytes().iter())
        .chain(payload.iter())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

fn encode_gap(dropped_events: u64, from_ms: i64, to_ms: i64, reason: &str) -> EventKind {
    EventKind::DataGap {
        dropped_events,
        from_ms,
        to_ms,
        reason: reason.to_owned(),
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What was dropped to make room: how many events it stood for and their span.
#[derive(Debug, Default)]
struct Dropped {
    rows: u64,
    bytes: u64,
    events: u64,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

impl Dropped {
    fn span(&mut self, from: i64, to: i64) {
        self.from_ms = Some(self.from_ms.map_or(from, |f| f.min(from)));
        self.to_ms = Some(self.to_ms.map_or(to, |t| t.max(to)));
    }
}

/// What recovery could read from a damaged file.
#[derive(Debug, Default)]
struct Salvage {
    events: Vec<RawRow>,
    /// Seqs whose rows could not be read at all.
    failed_events: Vec<i64>,
    sent: Vec<RawRow>,
    meta: Vec<(String, String)>,
    /// The highest seq any source in the old file mentions.
    max_seq: i64,
    last_acked: i64,
}

impl Spool {
    /// The default bound of the spool file: 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
    /// The smallest bound `open` accepts; smaller ones are raised to it.
    pub const MIN_MAX_BYTES: u64 = 4096;
    /// How long acknowledged events are kept for `kaoqin-agent show`.
    pub const DEFAULT_SENT_RETENTION_DAYS: u32 = 35;

    /// Opens (creating if needed) the spool at `path`, bounded to `max_bytes`
    /// (at least [`Spool::MIN_MAX_BYTES`]). A damaged file is recovered, never a
    /// reason to fail: see [`OpenReport`]. Errors are for what recovery cannot
    /// fix (no permission, disk full, a newer schema).
    pub fn open(path: &Path, max_bytes: u64) -> Result<(Spool, OpenReport), SpoolError> {
        let max_bytes = max_bytes.max(Self::MIN_MAX_BYTES);
        match Self::open_checked(path, max_bytes) {
            Ok(opened) => Ok(opened),
            Err(e) if e.is_corruption() => {
                tracing::warn!(path = %path.display(), error = %e, "Spool is corrupt; moving it aside and salvaging what can be read.");
                Self::recover(path, max_bytes)
            }
            Err(e) => Err(e),
        }
    }

    /// Sets how many days acknowledged events are kept (default 35). Applied at
    /// the next `ack`.
    pub fn set_sent_retention_days(&mut self, days: u32) {
        self.sent_retention_days = days;
    }

    /// The file this spool lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> SpoolError + use<'_> {
        move |source| SpoolError::Sqlite {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn seq_param(&self, seq: u64) -> Result<i64, SpoolError> {
        i64::try_from(seq)
            .ok()
            .filter(|s| *s < i64::MAX)
            .ok_or_else(|| SpoolError::SeqOutOfRange {
                path: self.path.clone(),
                seq,
            })
    }

    /// Opens the file, checks it and migrates it; corruption comes back as an
    /// error for which `is_corruption()` holds.
    fn open_checked(path: &Path, max_bytes: u64) -> Result<(Spool, OpenReport), SpoolError> {
        let err = |op: &'static str| {
            move |source| SpoolError::Sqlite {
                path: path.to_path_buf(),
                op,
                source,
            }
        };
        let conn = Connection::open(path).map_err(err("open"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(err("set busy timeout"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(err("set journal_mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), %mode, "Spool could not switch to WAL mode.");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err("set synchronous"))?;
        conn.pragma_update(None, "journal_size_limit", 4 * 1024 * 1024)
            .map_err(err("set journal_size_limit"))?;
        let problems: Vec<String> = {
            let mut stmt = conn
                .prepare("PRAGMA quick_check")
                .map_err(err("quick_check"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(err("quick_check"))?;
            rows.collect::<Result<_, _>>().map_err(err("quick_check"))?
        };
        if problems.len() != 1 || problems[0] != "ok" {
            return Err(SpoolError::Corrupt {
                path: path.to_path_buf(),
                detail: problems.join("; "),
            });
        }
        migrate(&conn, path)?;
        let spool = Spool {
            conn,
            path: path.to_path_buf(),
            max_bytes,
            sent_retention_days: Self::DEFAULT_SENT_RETENTION_DAYS,
            next_seq: Cell::new(1),
            last_acked: Cell::new(0),
            pending_count: Cell::new(0),
            pending_bytes: Cell::new(0),
            sent_bytes: Cell::new(0),
        };
        spool.load_counters()?;
        let bad = spool.scan_pending()?;
        let mut report = OpenReport::default();
        if !bad.is_empty() {
            report.unreadable = bad.len() as u64;
            tracing::warn!(path = %spool.path.display(), unreadable = bad.len(), "Spool held records that fail their checksum; recording a data gap.");
            spool.quarantine(&bad)?;
        }
        Ok((spool, report))
    }

    /// Recomputes the in-memory counters from the file.
    fn load_counters(&self) -> Result<(), SpoolError> {
        let c = &self.conn;
        let (count, bytes): (i64, i64) = c
            .query_row(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.db("count events"))?;
        let (sent_count, sent_bytes): (i64, i64) = c
            .query_row(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM sent",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.db("count sent"))?;
        let counter: Option<i64> = c
            .query_row(
                "SELECT max(seq) FROM sqlite_sequence WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .map_err(self.db("read seq counter"))?;
        let max_event: Option<i64> = c
            .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))
            .map_err(self.db("read max seq"))?;
        let max_sent: Option<i64> = c
            .query_row("SELECT max(seq) FROM sent", [], |r| r.get(0))
            .map_err(self.db("read max sent seq"))?;
        let last_acked: Option<i64> = c
            .query_row(
                "SELECT value FROM spool_state WHERE key = 'last_acked_seq'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db("read last_acked_seq"))?;
        let last_acked = last_acked.unwrap_or(0).max(0);
        let high = [counter, max_event, max_sent, Some(last_acked)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
            .max(0);
        let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
        self.next_seq.set(to_u64(high) + 1);
        self.last_acked.set(to_u64(last_acked));
        self.pending_count.set(to_u64(count));
        self.pending_bytes
            .set(to_u64(bytes) + to_u64(count) * PENDING_ROW_OVERHEAD);
        self.sent_bytes
            .set(to_u64(sent_bytes) + to_u64(sent_count) * SENT_ROW_OVERHEAD);
        Ok(())
    }

    /// Every pending row that fails its checksum or does not parse.
    fn scan_pending(&self) -> Result<Vec<RawRow>, SpoolError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {EVENT_COLS} FROM events ORDER BY seq"))
            .map_err(self.db("scan events"))?;
        let mut rows = stmt.query([]).map_err(self.db("scan events"))?;
        let mut bad = Vec::new();
        while let Some(row) = rows.next().map_err(self.db("scan events"))? {
            let raw = raw_row(row).map_err(self.db("scan events"))?;
            if raw.decode().is_none() {
                bad.push(raw);
            }
        }
        Ok(bad)
    }

    /// Deletes unreadable pending rows and appends one `spool_corrupt` gap for them.
    fn quarantine(&self, bad: &[RawRow]) -> Result<(), SpoolError> {
        if bad.is_empty() {
            return Ok(());
        }
        tracing::warn!(path = %self.path.display(), unreadable = bad.len(), "Deleting spooled records that fail their checksum.");
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.db("begin"))?;
        let mut freed = 0;
        for row in bad {
            let n = tx
                .execute("DELETE FROM events WHERE seq = ?1", [row.seq])
                .map_err(self.db("delete corrupt record"))?;
            if n > 0 {
                freed += row.payload_len() + PENDING_ROW_OVERHEAD;
            }
        }
        let known: Vec<i64> = bad.iter().filter_map(|r| r.at_ms).collect();
        let (from, to) = match (known.iter().min(), known.iter().max()) {
            (Some(a), Some(b)) => (*a, *b),
            _ => {
                let now = wall_clock_ms();
                (now, now)
            }
        };
        let gap = encode_gap(bad.len() as u64, from, to, REASON_CORRUPT);
        let mut next = self.next_seq.get();
        let added = self.insert_event(&tx, &mut next, to, &gap)?;
        tx.commit().map_err(self.db("commit"))?;
        self.next_seq.set(next);
        self.pending_count
            .set(self.pending_count.get() - bad.len() as u64 + 1);
        self.pending_bytes
            .set(self.pending_bytes.get().saturating_sub(freed) + added);
        Ok(())
    }

    /// Inserts one event with the next seq; returns the bytes it accounts for.
    fn insert_event(
        &self,
        conn: &Connection,
        next: &mut u64,
        at_ms: i64,
        kind: &EventKind,
    ) -> Result<u64, SpoolError> {
        let payload = serde_json::to_vec(kind).map_err(|source| SpoolError::Encode {
            path: self.path.clone(),
            source,
        })?;
        self.insert_payload(conn, *next, at_ms, &payload)?;
        *next += 1;
        Ok(payload.len() as u64 + PENDING_ROW_OVERHEAD)
    }

    fn insert_payload(
        &self,
        conn: &Connection,
        seq: u64,
        at_ms: i64,
        payload: &[u8],
    ) -> Result<(), SpoolError> {
        let seq_i = self.seq_param(seq)?;
        conn.prepare_cached(
            "INSERT INTO events (seq, at_ms, payload, checksum) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| {
            s.execute(params![
                seq_i,
                at_ms,
                payload,
                checksum(seq, at_ms, payload)
            ])
        })
        .map_err(self.db("insert event"))?;
        Ok(())
    }

    /// Raises the persistent seq counter to at least `seq`.
    fn raise_counter(&self, conn: &Connection, seq: i64) -> Result<(), SpoolError> {
        let n = conn
            .execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'events'",
                [seq],
            )
            .map_err(self.db("raise seq counter"))?;
        if n == 0 {
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?1)",
                [seq],
            )
            .map_err(self.db("raise seq counter"))?;
        }
        Ok(())
    }

    /// Records events in one transaction; returns their seqs. If the spool would
    /// exceed max_bytes, drops the oldest unacknowledged events first (down to ~90%
    /// of the bound) and, in the same transaction, appends a
    /// `DataGap { dropped_events, from_ms, to_ms (at_ms range of the dropped), reason: "spool_full" }`
    /// event, whose seq comes before those of `events`.
    pub fn append(&mut self, events: &[(i64, EventKind)]) -> Result<Vec<u64>, SpoolError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut encoded = Vec::with_capacity(events.len());
        for (at_ms, kind) in events {
            let payload = serde_json::to_vec(kind).map_err(|source| SpoolError::Encode {
                path: self.path.clone(),
                source,
            })?;
            encoded.push((*at_ms, payload));
        }
        let incoming: u64 = encoded
            .iter()
            .map(|(_, p)| p.len() as u64 + PENDING_ROW_OVERHEAD)
            .sum();
        let target = self.max_bytes / 10 * 9;
        if incoming + GAP_RESERVE > target {
            return Err(SpoolError::BatchTooLarge {
                path: self.path.clone(),
                bytes: incoming,
                max_bytes: self.max_bytes,
            });
        }
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.db("begin"))?;
        let mut next = self.next_seq.get();
        let mut pending_bytes = self.pending_bytes.get();
        let mut pending_count = self.pending_count.get();
        let mut sent_bytes = self.sent_bytes.get();
        let total = pending_bytes + sent_bytes + incoming;
        if total > self.max_bytes {
            let mut to_free = total + GAP_RESERVE - target;
            let freed = self.trim_sent(&tx, to_free)?;
            sent_bytes = sent_bytes.saturating_sub(freed);
            to_free = to_free.saturating_sub(freed);
            if to_free > 0 {
                let dropped = self.drop_oldest(&tx, to_free)?;
                if dropped.rows > 0 {
                    pending_bytes = pending_bytes.saturating_sub(dropped.bytes);
                    pending_count -= dropped.rows;
                    let from = dropped.from_ms.unwrap_or_default();
                    let to = dropped.to_ms.unwrap_or(from);
                    tracing::warn!(path = %self.path.display(), dropped = dropped.events, "Spool is full; dropped the oldest undelivered events.");
                    let gap = encode_gap(dropped.events, from, to, REASON_FULL);
                    pending_bytes += self.insert_event(&tx, &mut next, to, &gap)?;
                    pending_count += 1;
                }
            }
        }
        let mut seqs = Vec::with_capacity(encoded.len());
        for (at_ms, payload) in &encoded {
            self.insert_payload(&tx, next, *at_ms, payload)?;
            seqs.push(next);
            next += 1;
        }
        tx.commit().map_err(self.db("commit append"))?;
        self.next_seq.set(next);
        self.pending_bytes.set(pending_bytes + incoming);
        self.pending_count.set(pending_count + encoded.len() as u64);
        self.sent_bytes.set(sent_bytes);
        Ok(seqs)
    }

    /// Deletes the oldest sent records until `want` accounted bytes are freed (or
    /// none are left); returns the bytes freed.
    fn trim_sent(&self, conn: &Connection, want: u64) -> Result<u64, SpoolError> {
        let mut freed = 0;
        let mut last = None;
        {
            let mut stmt = conn
                .prepare("SELECT seq, length(payload) FROM sent ORDER BY seq")
                .map_err(self.db("trim sent log"))?;
            let mut rows = stmt.query([]).map_err(self.db("trim sent log"))?;
            while freed < want {
                let Some(row) = rows.next().map_err(self.db("trim sent log"))? else {
                    break;
                };
                let seq: i64 = row.get(0).map_err(self.db("trim sent log"))?;
                let len: i64 = row.get(1).map_err(self.db("trim sent log"))?;
                freed += u64::try_from(len).unwrap_or(0) + SENT_ROW_OVERHEAD;
                last = Some(seq);
            }
        }
        if let Some(last) = last {
            conn.execute("DELETE FROM sent WHERE seq <= ?1", [last])
                .map_err(self.db("trim sent log"))?;
        }
        Ok(freed)
    }

    /// Deletes the oldest pending events until `want` accounted bytes are freed.
    fn drop_oldest(&self, conn: &Connection, want: u64) -> Result<Dropped, SpoolError> {
        let mut dropped = Dropped::default();
        let mut last = None;
        {
            let mut stmt = conn
                .prepare(&format!("SELECT {EVENT_COLS} FROM events ORDER BY seq"))
                .map_err(self.db("drop oldest"))?;
            let mut rows = stmt.query([]).map_err(self.db("drop oldest"))?;
            while dropped.bytes < want {
                let Some(row) = rows.next().map_err(self.db("drop oldest"))? else {
                    break;
                };
                let raw = raw_row(row).map_err(self.db("drop oldest"))?;
                dropped.rows += 1;
                dropped.bytes += raw.payload_len() + PENDING_ROW_OVERHEAD;
                last = Some(raw.seq);
                match raw.decode() {
                    Some((
                        _,
                        EventKind::DataGap {
                            dropped_events,
                            from_ms,
                            to_ms,
                            reason,
                        },
                    )) if reason == REASON_FULL => {
                        // A notice, not data: fold what it counted into the new gap.
                        dropped.events += dropped_events;
                        dropped.span(from_ms, to_ms);
                    }
                    _ => {
                        dropped.events += 1;
                        if let Some(at) = raw.at_ms {
                            dropped.span(at, at);
                        }
                    }
                }
            }
        }
        if let Some(last) = last {
            conn.execute("DELETE FROM events WHERE seq <= ?1", [last])
                .map_err(self.db("drop oldest"))?;
        }
        Ok(dropped)
    }

    /// Reads pending events of `sql` (which selects [`EVENT_COLS`]) in seq order,
    /// quarantining unreadable ones. `take(kept_so_far, payload_len)` is asked
    /// before each readable event is kept; `false` stops the read.
    fn read_pending(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        mut take: impl FnMut(&[Event], usize) -> bool,
    ) -> Result<Vec<Event>, SpoolError> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(sql)
                .map_err(self.db("read events"))?;
            let mut rows = stmt.query(params).map_err(self.db("read events"))?;
            while let Some(row) = rows.next().map_err(self.db("read events"))? {
                let raw = raw_row(row).map_err(self.db("read events"))?;
                match raw.decode() {
                    Some((at_ms, kind)) => {
                        if !take(&out, raw.payload_len() as usize) {
                            break;
                        }
                        out.push(Event {
                            seq: u64::try_from(raw.seq).unwrap_or(0),
                            at_ms,
                            kind,
                        });
                    }
                    None => bad.push(raw),
                }
            }
        }
        self.quarantine(&bad)?;
        Ok(out)
    }

    /// Oldest first, at most max_count events and at most max_bytes of encoded
    /// payload (but always at least one event if any).
    pub fn peek(&self, max_count: usize, max_bytes: usize) -> Result<Vec<Event>, SpoolError> {
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let mut bytes = 0usize;
        self.read_pending(
            &format!("SELECT {EVENT_COLS} FROM events ORDER BY seq"),
            &[],
            |out, len| {
                if out.len() >= max_count
                    || (!out.is_empty() && bytes.saturating_add(len) > max_bytes)
                {
                    return false;
                }
                bytes = bytes.saturating_add(len);
                true
            },
        )
    }

    /// The PC's clock was just set by `jump_ms` (see `crate::clock`): every event
    /// waiting now was stamped under the old clock. Remembers where the jump fell,
    /// for [`Spool::clock_correction`]; forgets jumps that no waiting event
    /// precedes any more.
    pub fn record_clock_jump(&mut self, jump_ms: i64) -> Result<(), SpoolError> {
        let oldest: Option<i64> = self
            .conn
            .query_row("SELECT min(seq) FROM events", [], |r| r.get(0))
            .map_err(self.db("clock jump"))?;
        let Some(oldest) = oldest.and_then(|o| u64::try_from(o).ok()) else {
            return self.meta_set(CLOCK_JUMPS_KEY, "[]");
        };
        let mut jumps = self.clock_jumps()?;
        jumps.retain(|&(before, _)| before > oldest);
        jumps.push((self.next_seq.get(), jump_ms));
        let text = serde_json::to_string(&jumps).unwrap_or_else(|_| "[]".into());
        self.meta_set(CLOCK_JUMPS_KEY, &text)
    }

    /// For a batch starting at `first_seq`: how far the clock has been set since
    /// that event was stamped (the sum of the jumps after it, to be taken off the
    /// batch's send time), and the first seq stamped after the next of those jumps
    /// (the batch must end before it, so one correction fits all its events).
    pub fn clock_correction(&self, first_seq: u64) -> Result<(i64, Option<u64>), SpoolError> {
        let later = self
            .clock_jumps()?
            .into_iter()
            .filter(|&(before, _)| before > first_seq);
        Ok(later.fold((0i64, None), |(sum, end), (before, jump)| {
            (
                sum.saturating_add(jump),
                Some(end.map_or(before, |e: u64| e.min(before))),
            )
        }))
    }

    fn clock_jumps(&self) -> Result<Vec<(u64, i64)>, SpoolError> {
        Ok(self
            .meta_get(CLOCK_JUMPS_KEY)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }

    /// The collector has stored every seq <= upto. Deletes them, copies them into
    /// the `sent` log with acked_at_ms (kept `sent_retention_days`, default 35,
    /// pruned here), and remembers last_acked_seq. Returns how many were deleted.
    /// Idempotent. The next seq is raised above `upto` if it was not already.
    pub fn ack(&mut self, upto: u64, now_ms: i64) -> Result<u64, SpoolError> {
        let upto_i = self.seq_param(upto)?;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.db("begin"))?;
        let (n, bytes): (i64, i64) = tx
            .query_row(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM events WHERE seq <= ?1",
                [upto_i],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.db("ack"))?;
        let n = u64::try_from(n).unwrap_or(0);
        let bytes = u64::try_from(bytes).unwrap_or(0);
        let mut sent_bytes = self.sent_bytes.get();
        if n > 0 {
            // A seq already in `sent` cannot come back (seqs are never reused), so
            // REPLACE only matters after a recovery copied a row into both.
            let replaced: (i64, i64) = tx
                .query_row(
                    "SELECT count(*), coalesce(sum(length(payload)), 0) FROM sent
                     WHERE seq IN (SELECT seq FROM events WHERE seq <= ?1)",
                    [upto_i],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(self.db("ack"))?;
            tx.execute(
                "INSERT OR REPLACE INTO sent (seq, at_ms, acked_at_ms, payload, checksum)
                 SELECT seq, at_ms, ?2, payload, checksum FROM events WHERE seq <= ?1",
                params![upto_i, now_ms],
            )
            .map_err(self.db("ack"))?;
            tx.execute("DELETE FROM events WHERE seq <= ?1", [upto_i])
                .map_err(self.db("ack"))?;
            sent_bytes = (sent_bytes + bytes + n * SENT_ROW_OVERHEAD).saturating_sub(
                u64::try_from(replaced.1).unwrap_or(0)
                    + u64::try_from(replaced.0).unwrap_or(0) * SENT_ROW_OVERHEAD,
            );
        }
        let cutoff = now_ms.saturating_sub(i64::from(self.sent_retention_days) * DAY_MS);
        let (pn, pbytes): (i64, i64) = tx
            .query_row(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM sent WHERE acked_at_ms < ?1",
                [cutoff],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.db("prune sent log"))?;
        if pn > 0 {
            tx.execute("DELETE FROM sent WHERE acked_at_ms < ?1", [cutoff])
                .map_err(self.db("prune sent log"))?;
            sent_bytes = sent_bytes.saturating_sub(
                u64::try_from(pbytes).unwrap_or(0)
                    + u64::try_from(pn).unwrap_or(0) * SENT_ROW_OVERHEAD,
            );
        }
        let pending_bytes = self
            .pending_bytes
            .get()
            .saturating_sub(bytes + n * PENDING_ROW_OVERHEAD);
        // A sent row is accounted a little larger than a pending one: keep the bound.
        if pending_bytes + sent_bytes > self.max_bytes {
            let freed = self.trim_sent(&tx, pending_bytes + sent_bytes - self.max_bytes)?;
            sent_bytes = sent_bytes.saturating_sub(freed);
        }
        let last_acked = self.last_acked.get().max(upto);
        if last_acked != self.last_acked.get() {
            tx.execute(
                "INSERT OR REPLACE INTO spool_state (key, value) VALUES ('last_acked_seq', ?1)",
                [upto_i],
            )
            .map_err(self.db("ack"))?;
        }
        let mut next = self.next_seq.get();
        if next <= upto {
            self.raise_counter(&tx, upto_i)?;
            next = upto + 1;
        }
        tx.commit().map_err(self.db("commit ack"))?;
        self.last_acked.set(last_acked);
        self.next_seq.set(next);
        self.pending_count.set(self.pending_count.get() - n);
        self.pending_bytes.set(pending_bytes);
        self.sent_bytes.set(sent_bytes);
        Ok(n)
    }

    /// Counters of the spool.
    pub fn stats(&self) -> Result<SpoolStats, SpoolError> {
        let oldest_at_ms = self
            .conn
            .query_row("SELECT at_ms FROM events ORDER BY seq LIMIT 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.db("stats"))?;
        Ok(SpoolStats {
            depth: self.pending_count.get(),
            bytes: self.pending_bytes.get() + self.sent_bytes.get(),
            last_acked_seq: self.last_acked.get(),
            next_seq: self.next_seq.get(),
            oldest_at_ms,
            max_bytes: self.max_bytes,
        })
    }

    /// Makes the next seq greater than `seq` (used when the collector already
    /// holds seqs from an earlier install).
    pub fn ensure_next_seq_above(&mut self, seq: u64) -> Result<(), SpoolError> {
        let seq_i = self.seq_param(seq)?;
        if self.next_seq.get() > seq {
            return Ok(());
        }
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.db("begin"))?;
        self.raise_counter(&tx, seq_i)?;
        tx.commit().map_err(self.db("commit seq counter"))?;
        self.next_seq.set(seq + 1);
        Ok(())
    }

    /// Pending (unacknowledged) events with at_ms in [from_ms, to_ms), in seq
    /// order, for `show`.
    pub fn pending_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>, SpoolError> {
        self.read_pending(
            &format!(
                "SELECT {EVENT_COLS} FROM events WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY seq"
            ),
            &[&from_ms, &to_ms],
            |_, _| true,
        )
    }

    /// Sent (acknowledged) records with at_ms in [from_ms, to_ms), in seq order,
    /// for `show`. A sent record that fails its checksum is deleted and logged.
    pub fn sent_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<SentRecord>, SpoolError> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {SENT_COLS} FROM sent WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY seq"
                ))
                .map_err(self.db("read sent log"))?;
            let mut rows = stmt
                .query([from_ms, to_ms])
                .map_err(self.db("read sent log"))?;
            while let Some(row) = rows.next().map_err(self.db("read sent log"))? {
                let raw = raw_row(row).map_err(self.db("read sent log"))?;
                match (raw.decode(), raw.acked_at_ms) {
                    (Some((at_ms, kind)), Some(acked_at_ms)) => out.push(SentRecord {
                        seq: u64::try_from(raw.seq).unwrap_or(0),
                        at_ms,
                        acked_at_ms,
                        kind,
                    }),
                    _ => bad.push(raw),
                }
            }
        }
        if !bad.is_empty() {
            tracing::warn!(path = %self.path.display(), unreadable = bad.len(), "Deleting sent-log records that fail their checksum.");
            let mut freed = 0;
            for raw in &bad {
                self.conn
                    .execute("DELETE FROM sent WHERE seq = ?1", [raw.seq])
                    .map_err(self.db("delete corrupt sent record"))?;
                freed += raw.payload_len() + SENT_ROW_OVERHEAD;
            }
            self.sent_bytes
                .set(self.sent_bytes.get().saturating_sub(freed));
        }
        Ok(out)
    }

    /// Small persistent key/value state of the agent (e.g. "last_alive_ms", "clean_stop").
    pub fn meta_get(&self, key: &str) -> Result<Option<String>, SpoolError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.db("read meta"))
    }

    /// Sets a key of the agent's persistent state (durably, like `append`).
    pub fn meta_set(&mut self, key: &str, value: &str) -> Result<(), SpoolError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [key, value],
            )
            .map_err(self.db("write meta"))?;
        Ok(())
    }

    // ---- recovery -------------------------------------------------------------

    /// Moves the damaged file aside, creates a fresh spool and copies in every
    /// record that can still be read.
    fn recover(path: &Path, max_bytes: u64) -> Result<(Spool, OpenReport), SpoolError> {
        let aside = move_aside(path)?;
        let (spool, _) = Self::open_checked(path, max_bytes)?;
        let salvage = salvage(&aside);
        let unreadable = spool.import(salvage)?;
        tracing::warn!(path = %path.display(), aside = %aside.display(), unreadable, "Recovered the spool from a damaged file.");
        Ok((
            spool,
            OpenReport {
                unreadable,
                recovered_from_corruption: true,
            },
        ))
    }

    /// Writes salvaged records into this (fresh) spool; returns how many were
    /// unreadable.
    fn import(&self, salvage: Salvage) -> Result<u64, SpoolError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.db("begin"))?;
        let mut good: Vec<(i64, i64)> = Vec::new(); // (seq, at_ms)
        let mut bad_at: Vec<i64> = Vec::new();
        let mut bad_seqs: Vec<i64> = salvage.failed_events.clone();
        let mut max_seq = salvage.max_seq.max(salvage.last_acked);
        for raw in &salvage.events {
            max_seq = max_seq.max(raw.seq);
            if raw.seq <= salvage.last_acked {
                continue; // acknowledged already; not pending
            }
            match (raw.decode(), raw.payload.as_deref()) {
                (Some((at_ms, _)), Some(payload)) => {
                    let seq = u64::try_from(raw.seq).unwrap_or(0);
                    self.insert_payload(&tx, seq, at_ms, payload)?;
                    good.push((raw.seq, at_ms));
                }
                _ => {
                    bad_seqs.push(raw.seq);
                    bad_at.extend(raw.at_ms);
                }
            }
        }
        let mut bad_sent = 0u64;
        for raw in &salvage.sent {
            max_seq = max_seq.max(raw.seq);
            match (raw.decode(), raw.acked_at_ms, raw.payload.as_deref()) {
                (Some((at_ms, _)), Some(acked), Some(payload)) => {
                    tx.execute(
                        "INSERT OR REPLACE INTO sent (seq, at_ms, acked_at_ms, payload, checksum)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![raw.seq, at_ms, acked, payload, raw.checksum],
                    )
                    .map_err(self.db("restore sent log"))?;
                }
                _ => bad_sent += 1,
            }
        }
        if bad_sent > 0 {
            tracing::warn!(path = %self.path.display(), unreadable = bad_sent, "Sent-log records could not be recovered.");
        }
        for (k, v) in &salvage.meta {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [k, v],
            )
            .map_err(self.db("restore meta"))?;
        }
        if salvage.last_acked > 0 {
            tx.execute(
                "INSERT OR REPLACE INTO spool_state (key, value) VALUES ('last_acked_seq', ?1)",
                [salvage.last_acked],
            )
            .map_err(self.db("restore last_acked_seq"))?;
        }
        for s in &bad_seqs {
            max_seq = max_seq.max(*s);
        }
        if max_seq > 0 {
            self.raise_counter(&tx, max_seq)?;
        }
        tx.commit().map_err(self.db("commit recovery"))?;
        self.load_counters()?;

        let unreadable = bad_seqs.len() as u64;
        if unreadable > 0 {
            good.sort_unstable();
            let first_bad = bad_seqs.iter().min().copied().unwrap_or(0);
            let last_bad = bad_seqs.iter().max().copied().unwrap_or(0);
            let before = good.iter().rev().find(|(s, _)| *s < first_bad).map(|g| g.1);
            let after = good.iter().find(|(s, _)| *s > last_bad).map(|g| g.1);
            let from = bad_at.iter().copied().chain(before).min();
            let to = bad_at.iter().copied().chain(after).max();
            let (from, to) = match (from, to) {
                (Some(f), Some(t)) => (f.min(t), t.max(f)),
                (Some(x), None) | (None, Some(x)) => (x, x),
                (None, None) => {
                    let now = wall_clock_ms();
                    (now, now)
                }
            };
            let tx = self
                .conn
                .unchecked_transaction()
                .map_err(self.db("begin"))?;
            let mut next = self.next_seq.get();
            let added = self.insert_event(
                &tx,
                &mut next,
                to,
                &encode_gap(unreadable, from, to, REASON_CORRUPT),
            )?;
            tx.commit().map_err(self.db("commit recovery gap"))?;
            self.next_seq.set(next);
            self.pending_count.set(self.pending_count.get() + 1);
            self.pending_bytes.set(self.pending_bytes.get() + added);
        }
        Ok(unreadable)
    }
}

/// Creates the tables or upgrades them to [`SCHEMA_VERSION`].
fn migrate(conn: &Connection, path: &Path) -> Result<(), SpoolError> {
    let err = |op: &'static str| {
        move |source| SpoolError::Sqlite {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err("read schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(SpoolError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        let tx = conn
            .unchecked_transaction()
            .map_err(err("begin migration"))?;
        tx.execute_batch(SCHEMA_V1)
            .map_err(err("create schema v1"))?;
        tx.pragma_update(None, "user_version", 1)
            .map_err(err("set schema version"))?;
        tx.commit().map_err(err("commit migration"))?;
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Renames `path` (and its `-wal`, `-shm`, `-journal` companions) to
/// `<path>.corrupt-<n>` with the first free n; returns the new path.
fn move_aside(path: &Path) -> Result<PathBuf, SpoolError> {
    let mut n = 1u32;
    let aside = loop {
        let candidate = with_suffix(path, &format!(".corrupt-{n}"));
        if !candidate.exists() && !with_suffix(&candidate, "-wal").exists() {
            break candidate;
        }
        n += 1;
    };
    let io = |op: &'static str| {
        move |source| SpoolError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    if path.exists() {
        std::fs::rename(path, &aside).map_err(io("move corrupt file aside"))?;
    }
    for companion in ["-wal", "-shm", "-journal"] {
        let from = with_suffix(path, companion);
        if from.exists() {
            std::fs::rename(&from, with_suffix(&aside, companion))
                .map_err(io("move corrupt journal aside"))?;
        }
    }
    Ok(aside)
}

/// Reads what can be read from a damaged spool file. Never fails: what cannot be
/// read is counted (events) or left behind (sent log, meta).
fn salvage(path: &Path) -> Salvage {
    let mut out = Salvage::default();
    repair_page_count(path);
    let Ok(conn) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return out;
    };
    let one = |sql: &str| -> Option<i64> {
        conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
            .ok()
            .flatten()
    };
    out.last_acked = one("SELECT value FROM spool_state WHERE key = 'last_acked_seq'")
        .unwrap_or(0)
        .max(0);
    let counter = one("SELECT max(seq) FROM sqlite_sequence WHERE name = 'events'");
    let max_event = one("SELECT max(seq) FROM events");
    let max_sent = one("SELECT max(seq) FROM sent");
    out.max_seq = [counter, max_event, max_sent, Some(out.last_acked)]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
    let hi = [counter, max_event].into_iter().flatten().max();
    let events = walk_table(&conn, "events", EVENT_COLS, out.last_acked, hi, raw_row);
    out.events = events.rows;
    out.failed_events = events.failed;
    out.sent = walk_table(&conn, "sent", SENT_COLS, 0, max_sent, raw_row).rows;
    out.meta = walk_table(&conn, "meta", "rowid, key, value", 0, None, |r| {
        Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })
    .rows;
    out
}

/// A file cut short still claims its old page count in its header, which makes
/// SQLite refuse to read even the pages that are there. Rewrites the count to
/// what the file holds (the file is the moved-aside copy; best effort).
fn repair_page_count(path: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return;
    };
    let mut header = [0u8; 100];
    if f.read_exact(&mut header).is_err() || &header[..16] != b"SQLite format 3\0" {
        return;
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        _ => return,
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return;
    };
    let claimed = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    let present = len / page_size;
    if claimed > present && present > 0 {
        let Ok(count) = u32::try_from(present) else {
            return;
        };
        if f.seek(SeekFrom::Start(28)).is_ok() {
            let _ = f.write_all(&count.to_be_bytes());
        }
    }
}

struct Walk<T> {
    rows: Vec<T>,
    /// Rowids that could not be read.
    failed: Vec<i64>,
}

/// Reads every row of a (possibly damaged) rowid table with rowid > `lo`, in
/// rowid order, one by one: a range scan while it works, point lookups past a
/// damaged region. Rowids up to `hi` (or, when unknown, up to [`SALVAGE_WINDOW`]
/// past the last readable row) whose lookup fails are reported in `failed`.
fn walk_table<T>(
    conn: &Connection,
    table: &str,
    cols: &str,
    lo: i64,
    hi: Option<i64>,
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Walk<T> {
    let mut walk = Walk {
        rows: Vec::new(),
        failed: Vec::new(),
    };
    let scan_sql = format!("SELECT {cols} FROM {table} WHERE rowid > ?1 ORDER BY rowid");
    let point_sql = format!("SELECT {cols} FROM {table} WHERE rowid = ?1");
    let (Ok(mut scan), Ok(mut point)) = (conn.prepare(&scan_sql), conn.prepare(&point_sql)) else {
        return walk; // the table itself is unreadable
    };
    let mut cursor = lo;
    let mut last_good = lo;
    'outer: loop {
        // Range scan from the cursor until the end or an error.
        let mut reached_end = false;
        if let Ok(mut rows) = scan.query([cursor]) {
            loop {
                match rows.next() {
                    Ok(Some(row)) => {
                        let Ok(id) = row.get::<_, i64>(0) else { break };
                        cursor = id;
                        last_good = id;
                        match map(row) {
                            Ok(t) => walk.rows.push(t),
                            Err(_) => walk.failed.push(id),
                        }
                    }
                    Ok(None) => {
                        reached_end = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if reached_end {
            break;
        }
        // Point lookups past the damage until one succeeds, then scan again.
        loop {
            let limit = hi.unwrap_or(last_good.saturating_add(SALVAGE_WINDOW));
            if cursor >= limit {
                break 'outer;
            }
            cursor += 1;
            match point.query_row([cursor], |r| Ok(map(r))).optional() {
                Ok(Some(Ok(t))) => {
                    walk.rows.push(t);
                    last_good = cursor;
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => walk.failed.push(cursor),
            }
        }
    }
    walk
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LifecycleKind, LifecycleReason, SessionKind};
    use proptest::prelude::*;
    use std::collections::VecDeque;

    const T0: i64 = 1_764_000_000_000; // a fixed instant in 2025

    fn session(account: &str) -> EventKind {
        EventKind::Session {
            kind: SessionKind::Logon,
            account: account.to_owned(),
        }
    }

    fn open(path: &Path, max: u64) -> Spool {
        let (s, report) = Spool::open(path, max).unwrap();
        assert_eq!(report, OpenReport::default());
        s
    }

    fn all_pending(s: &Spool) -> Vec<Event> {
        s.peek(usize::MAX, usize::MAX).unwrap()
    }

    fn fill(s: &mut Spool, n: usize) -> Vec<Event> {
        let mut out = Vec::new();
        for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
            let batch: Vec<(i64, EventKind)> = chunk
                .iter()
                .map(|i| (T0 + *i as i64 * 1000, session(&format!("user-{i:05}"))))
                .collect();
            let seqs = s.append(&batch).unwrap();
            for (seq, (at_ms, kind)) in seqs.into_iter().zip(batch) {
                out.push(Event { seq, at_ms, kind });
            }
        }
        out
    }

    fn is_gap(e: &Event, reason: &str) -> Option<u64> {
        match &e.kind {
            EventKind::DataGap {
                dropped_events,
                reason: r,
                ..
            } if r == reason => Some(*dropped_events),
            _ => None,
        }
    }

    #[test]
    fn clock_jumps_give_each_waiting_event_the_correction_since_it_was_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), Spool::DEFAULT_MAX_BYTES);
        // Nothing waiting: a jump concerns no event.
        s.record_clock_jump(-5_000_000).unwrap();
        assert_eq!(s.clock_correction(1).unwrap(), (0, None));
        s.append(&[(T0, session("a")), (T0 + 1, session("a"))])
            .unwrap();
        s.record_clock_jump(-86_400_000).unwrap();
        s.append(&[(T0 + 2, session("a"))]).unwrap();
        s.record_clock_jump(7_200_000).unwrap();
        s.append(&[(T0 + 3, session("a"))]).unwrap();
        // Seqs 1-2 saw both jumps and their batch ends before seq 3; seq 3 saw the
        // second; seq 4 none.
        assert_eq!(s.clock_correction(1).unwrap(), (-79_200_000, Some(3)));
        assert_eq!(s.clock_correction(2).unwrap(), (-79_200_000, Some(3)));
        assert_eq!(s.clock_correction(3).unwrap(), (7_200_000, Some(4)));
        assert_eq!(s.clock_correction(4).unwrap(), (0, None));
        // Kept across a reopen; forgotten once no waiting event precedes them.
        drop(s);
        let mut s = open(&dir.path().join("spool.db"), Spool::DEFAULT_MAX_BYTES);
        assert_eq!(s.clock_correction(1).unwrap(), (-79_200_000, Some(3)));
        s.ack(3, T0).unwrap();
        s.record_clock_jump(1_000_000).unwrap();
        s.append(&[(T0 + 4, session("a"))]).unwrap();
        assert_eq!(s.clock_jumps().unwrap(), vec![(5, 1_000_000)]);
        assert_eq!(s.clock_correction(4).unwrap(), (1_000_000, Some(5)));
    }

    #[test]
    fn append_assigns_increasing_seqs_and_peek_returns_them_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), Spool::DEFAULT_MAX_BYTES);
        assert_eq!(s.append(&[]).unwrap(), Vec::<u64>::new());
        let a = s
            .append(&[(T0, session("a")), (T0 + 1, session("b"))])
            .unwrap();
        let b = s.append(&[(T0 + 2, session("c"))]).unwrap();
        assert_eq!(a, vec![1, 2]);
        assert_eq!(b, vec![3]);
        let got = all_pending(&s);
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(got[2].kind, session("c"));
        assert_eq!(got[1].at_ms, T0 + 1);
    }

    #[test]
    fn peek_respects_count_and_bytes_but_returns_at_least_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), Spool::DEFAULT_MAX_BYTES);
        fill(&mut s, 10);
        assert_eq!(s.peek(3, usize::MAX).unwrap().len(), 3);
        assert_eq!(s.peek(0, usize::MAX).unwrap().len(), 0);
        assert_eq!(s.peek(10, 1).unwrap().len(), 1);
        let one = serde_json::to_vec(&session("user-00000")).unwrap().len();
        assert_eq!(s.peek(10, one * 2).unwrap().len(), 2);
        assert_eq!(s.peek(10, one * 2 - 1).unwrap().len(), 1);
        // Peek does not consume.
        assert_eq!(s.peek(100, usize::MAX).unwrap().len(), 10);
    }

    #[test]
    fn ack_deletes_moves_to_sent_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), Spool::DEFAULT_MAX_BYTES);
        let events = fill(&mut s, 5);
        assert_eq!(s.ack(3, T0 + 10_000).unwrap(), 3);
        assert_eq!(s.ack(3, T0 + 10_000).unwrap(), 0);
        assert_eq!(s.ack(2, T0 + 10_000).unwrap(), 0);
        let pending = all_pending(&s);
        assert_eq!(pending, events[3..].to_vec());
        let stats = s.stats().unwrap();
        assert_eq!(stats.last_acked_seq, 3);
        assert_eq!(stats.depth, 2);
        let sent = s.sent_between(i64::MIN, i64::MAX).unwrap();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0].seq, 1);
        assert_eq!(sent[0].acked_at_ms, T0 + 10_000);
        assert_eq!(sent[2].kind, events[2].kind);
    }

    #[test]
    fn ack_prunes_sent_log_after_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), Spool::DEFAULT_MAX_BYTES);
        fill(&mut s, 4);
        s.ack(2, T0).unwrap();
        s.ack(3, T0 + 34 * DAY_MS).unwrap();
        assert_eq!(s.sent_between(i64::MIN, i64::MAX).unwrap().len(), 3);
        s.ack(4, T0 + 36 * DAY_MS).unwrap();
        let seqs: Vec<u64> = s
            .sent_between(i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4]);
        s.set_sent_retention_days(0);
        s.ack(4, T0 + 36 * DAY_MS + 1).unwrap();
        assert!(s.sent_between(i64::MIN, i64::MAX).unwrap().is_empty());
    }

    #[test]
    fn seqs_are_never_reused_after_ack_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        fill(&mut s, 3);
        s.ack(3, T0).unwrap();
        drop(s);
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        assert_eq!(s.stats().unwrap().next_seq, 4);
        assert_eq!(s.append(&[(T0, session("x"))]).unwrap(), vec![4]);
    }

    #[test]
    fn ack_beyond_next_seq_raises_the_counter() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), Spool::DEFAULT_MAX_BYTES);
        fill(&mut s, 2);
        assert_eq!(s.ack(100, T0).unwrap(), 2);
        assert_eq!(s.append(&[(T0, session("x"))]).unwrap(), vec![101]);
        assert!(s.ack(u64::MAX, T0).is_err());
    }

    #[test]
    fn ensure_next_seq_above_only_raises_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        s.ensure_next_seq_above(500).unwrap();
        s.ensure_next_seq_above(10).unwrap();
        assert_eq!(s.stats().unwrap().next_seq, 501);
        drop(s);
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        assert_eq!(s.append(&[(T0, session("x"))]).unwrap(), vec![501]);
        assert!(matches!(
            s.ensure_next_seq_above(u64::MAX),
            Err(SpoolError::SeqOutOfRange { .. })
        ));
    }

    #[test]
    fn stats_reports_depth_bytes_and_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), 1 << 20);
        let st = s.stats().unwrap();
        assert_eq!(
            st,
            SpoolStats {
                depth: 0,
                bytes: 0,
                last_acked_seq: 0,
                next_seq: 1,
                oldest_at_ms: None,
                max_bytes: 1 << 20
            }
        );
        fill(&mut s, 3);
        let st = s.stats().unwrap();
        assert_eq!(st.depth, 3);
        assert_eq!(st.oldest_at_ms, Some(T0));
        assert!(st.bytes > 3 * PENDING_ROW_OVERHEAD);
        assert_eq!(
            Spool::open(&dir.path().join("b.db"), 1)
                .unwrap()
                .0
                .max_bytes,
            Spool::MIN_MAX_BYTES
        );
    }

    #[test]
    fn byte_count_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        fill(&mut s, 20);
        s.ack(5, T0).unwrap();
        let before = s.stats().unwrap();
        drop(s);
        let s = open(&path, Spool::DEFAULT_MAX_BYTES);
        assert_eq!(s.stats().unwrap(), before);
    }

    #[test]
    fn full_spool_drops_oldest_and_records_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), 8192);
        let events = fill(&mut s, 200);
        let st = s.stats().unwrap();
        assert!(st.bytes <= 8192, "{st:?}");
        let pending = all_pending(&s);
        let dropped: u64 = pending.iter().filter_map(|e| is_gap(e, REASON_FULL)).sum();
        let kept = pending
            .iter()
            .filter(|e| is_gap(e, REASON_FULL).is_none())
            .count();
        assert!(dropped > 0);
        assert_eq!(dropped as usize + kept, events.len());
        // What is kept is the newest, unchanged.
        let kept_events: Vec<Event> = pending
            .iter()
            .filter(|e| is_gap(e, REASON_FULL).is_none())
            .cloned()
            .collect();
        assert_eq!(kept_events, events[events.len() - kept..].to_vec());
        let seqs: Vec<u64> = pending.iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn file_size_stays_near_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let max = 256 * 1024;
        let mut s = open(&path, max);
        let mut n = 0u64;
        for round in 0..30 {
            let batch: Vec<(i64, EventKind)> = (0..100)
                .map(|i| {
                    n += 1;
                    (
                        T0 + n as i64,
                        session(&format!("user-{round}-{i}-{}", "x".repeat(40))),
                    )
                })
                .collect();
            s.append(&batch).unwrap();
            if round % 3 == 0 {
                let last = all_pending(&s).last().unwrap().seq;
                s.ack(last - 50, T0 + n as i64).unwrap();
            }
        }
        assert!(s.stats().unwrap().bytes <= max);
        drop(s);
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(
            len <= max * 3 / 2,
            "file is {len} bytes for a bound of {max}"
        );
    }

    #[test]
    fn batch_larger_than_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), 4096);
        let big = session(&"x".repeat(5000));
        let err = s.append(&[(T0, big)]).unwrap_err();
        assert!(matches!(err, SpoolError::BatchTooLarge { .. }));
        assert!(err.to_string().contains("spool.db"), "{err}");
        assert_eq!(s.stats().unwrap().depth, 0);
    }

    #[test]
    fn pending_and_sent_between_filter_by_instant() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), Spool::DEFAULT_MAX_BYTES);
        let events = fill(&mut s, 10); // at T0, T0+1000, ...
        s.ack(4, T0 + 50_000).unwrap();
        let pending = s.pending_between(T0 + 3000, T0 + 7000).unwrap();
        assert_eq!(pending, events[4..7].to_vec());
        let sent = s.sent_between(T0 + 1000, T0 + 3000).unwrap();
        assert_eq!(sent.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert!(
            s.pending_between(T0 + 20_000, T0 + 30_000)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn meta_round_trips_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        assert_eq!(s.meta_get("clean_stop").unwrap(), None);
        s.meta_set("clean_stop", "false").unwrap();
        s.meta_set("clean_stop", "true").unwrap();
        s.meta_set("last_alive_ms", "123").unwrap();
        drop(s);
        let s = open(&path, Spool::DEFAULT_MAX_BYTES);
        assert_eq!(s.meta_get("clean_stop").unwrap().as_deref(), Some("true"));
        assert_eq!(s.meta_get("last_alive_ms").unwrap().as_deref(), Some("123"));
    }

    #[test]
    fn every_event_kind_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("spool.db"), Spool::DEFAULT_MAX_BYTES);
        let kinds = vec![
            session("zhangsan"),
            EventKind::Usage {
                account: "zhangsan".into(),
                start_ms: T0,
                end_ms: T0 + 60_000,
                category: "chat".into(),
                active_seconds: 42,
                basis: crate::event::UsageBasis::Foreground,
            },
            EventKind::Heartbeat {
                interval_seconds: 60,
                accounts: vec!["a".into(), "b".into()],
            },
            EventKind::Lifecycle {
                kind: LifecycleKind::Start,
                reason: LifecycleReason::CrashRestart,
                agent_version: "0.1.0".into(),
                previous_seen_ms: Some(T0 - 5),
            },
            encode_gap(3, T0, T0 + 1, "other"),
        ];
        let batch: Vec<(i64, EventKind)> = kinds.iter().cloned().map(|k| (T0, k)).collect();
        s.append(&batch).unwrap();
        let got: Vec<EventKind> = all_pending(&s).into_iter().map(|e| e.kind).collect();
        assert_eq!(got, kinds);
    }

    #[test]
    fn reopen_after_drop_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        let events = fill(&mut s, 250);
        s.meta_set("k", "v").unwrap();
        drop(s);
        let s = open(&path, Spool::DEFAULT_MAX_BYTES);
        assert_eq!(all_pending(&s), events);
    }

    #[test]
    fn newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        let err = Spool::open(&path, Spool::DEFAULT_MAX_BYTES).unwrap_err();
        assert!(
            matches!(err, SpoolError::NewerSchema { found: 99, .. }),
            "{err}"
        );
        assert!(!with_suffix(&path, ".corrupt-1").exists());
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/spool.db");
        let err = Spool::open(&path, Spool::DEFAULT_MAX_BYTES).unwrap_err();
        assert!(err.to_string().contains("spool.db"), "{err}");
        assert!(!err.is_corruption());
    }

    // ---- corruption -----------------------------------------------------------

    /// Delivered events must be originals, unchanged, in seq order (a subsequence).
    fn assert_subsequence(got: &[Event], originals: &[Event]) {
        let mut it = originals.iter();
        for e in got {
            assert!(
                it.any(|o| o == e),
                "event {e:?} is not an unchanged original in order"
            );
        }
    }

    fn corrupt_fixture(n: usize) -> (tempfile::TempDir, PathBuf, Vec<Event>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        let events = fill(&mut s, n);
        drop(s); // checkpoints the WAL into the file
        assert!(!with_suffix(&path, "-wal").exists());
        (dir, path, events)
    }

    #[test]
    fn flipped_byte_in_a_payload_is_counted_and_replaced_by_a_gap() {
        let (_dir, path, events) = corrupt_fixture(300);
        let mut bytes = std::fs::read(&path).unwrap();
        let needle = b"user-00150";
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        bytes[at + 7] ^= 0x01; // user-00150 -> user-00140 lookalike
        std::fs::write(&path, &bytes).unwrap();

        let (s, report) = Spool::open(&path, Spool::DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(report.unreadable, 1);
        let got = all_pending(&s);
        let (gap, rest) = got.split_last().unwrap();
        assert_eq!(is_gap(gap, REASON_CORRUPT), Some(1));
        assert_eq!(rest.len(), 299);
        assert_subsequence(rest, &events);
        assert!(!rest.iter().any(|e| e.seq == 151));
        assert!(gap.seq > 300);
    }

    #[test]
    fn corrupt_row_found_by_peek_is_deleted_counted_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        let events = fill(&mut s, 5);
        s.conn
            .execute("UPDATE events SET payload = X'7B7D' WHERE seq = 2", [])
            .unwrap();
        let got = s.peek(10, usize::MAX).unwrap();
        assert_eq!(
            got,
            vec![
                events[0].clone(),
                events[2].clone(),
                events[3].clone(),
                events[4].clone()
            ]
        );
        let all = all_pending(&s);
        assert_eq!(all.len(), 5);
        assert_eq!(is_gap(&all[4], REASON_CORRUPT), Some(1));
        assert_eq!(all[4].seq, 6);
        assert_eq!(s.stats().unwrap().depth, 5);
    }

    #[test]
    fn garbage_page_in_the_middle_is_recovered() {
        let (_dir, path, events) = corrupt_fixture(2000);
        let mut bytes = std::fs::read(&path).unwrap();
        let page = 4096;
        let mid = (bytes.len() / page / 2) * page;
        for b in &mut bytes[mid..mid + page] {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();

        let (mut s, report) = Spool::open(&path, Spool::DEFAULT_MAX_BYTES).unwrap();
        assert!(
            report.recovered_from_corruption || report.unreadable > 0,
            "{report:?}"
        );
        let got = all_pending(&s);
        let originals: Vec<Event> = got
            .iter()
            .filter(|e| is_gap(e, REASON_CORRUPT).is_none())
            .cloned()
            .collect();
        assert_subsequence(&originals, &events);
        assert!(originals.len() > 1000, "only {} recovered", originals.len());
        let lost = (events.len() - originals.len()) as u64;
        let counted: u64 = got.iter().filter_map(|e| is_gap(e, REASON_CORRUPT)).sum();
        assert_eq!(counted, lost);
        assert_eq!(report.unreadable, lost);
        let next = s.append(&[(T0, session("after"))]).unwrap();
        assert!(next[0] > 2000);
        if report.recovered_from_corruption {
            assert!(with_suffix(&path, ".corrupt-1").exists());
        }
    }

    #[test]
    fn truncated_file_is_recovered() {
        let (_dir, path, events) = corrupt_fixture(2000);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len / 2).unwrap();
        drop(f);

        let (mut s, report) = Spool::open(&path, Spool::DEFAULT_MAX_BYTES).unwrap();
        assert!(report.recovered_from_corruption, "{report:?}");
        assert!(report.unreadable > 0, "{report:?}");
        let got = all_pending(&s);
        let originals: Vec<Event> = got
            .iter()
            .filter(|e| is_gap(e, REASON_CORRUPT).is_none())
            .cloned()
            .collect();
        assert_subsequence(&originals, &events);
        assert!(got.iter().any(|e| is_gap(e, REASON_CORRUPT).is_some()));
        // The counter stays above every seq the old file had.
        let next = s.append(&[(T0, session("after"))]).unwrap();
        assert!(next[0] > 2000, "{next:?}");
        // And the spool keeps working.
        let all = all_pending(&s);
        s.ack(all.last().unwrap().seq, T0).unwrap();
        assert_eq!(s.stats().unwrap().depth, 0);
    }

    #[test]
    fn garbage_file_becomes_a_fresh_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let garbage: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &garbage).unwrap();
        let (mut s, report) = Spool::open(&path, Spool::DEFAULT_MAX_BYTES).unwrap();
        assert!(report.recovered_from_corruption);
        assert!(all_pending(&s).is_empty());
        assert_eq!(s.append(&[(T0, session("a"))]).unwrap(), vec![1]);
        assert_eq!(
            std::fs::read(with_suffix(&path, ".corrupt-1")).unwrap(),
            garbage
        );
        // A second corruption goes to the next name.
        drop(s);
        std::fs::write(&path, b"not a database at all, not even close......").unwrap();
        let (_s, report) = Spool::open(&path, Spool::DEFAULT_MAX_BYTES).unwrap();
        assert!(report.recovered_from_corruption);
        assert!(with_suffix(&path, ".corrupt-2").exists());
    }

    #[test]
    fn sqlite_header_with_garbage_body_is_recovered() {
        let (_dir, path, _events) = corrupt_fixture(500);
        let mut bytes = std::fs::read(&path).unwrap();
        for (i, b) in bytes.iter_mut().enumerate().skip(100) {
            *b = (i as u8).wrapping_mul(31);
        }
        std::fs::write(&path, &bytes).unwrap();
        let (mut s, report) = Spool::open(&path, Spool::DEFAULT_MAX_BYTES).unwrap();
        assert!(report.recovered_from_corruption || report.unreadable > 0);
        s.append(&[(T0, session("a"))]).unwrap();
    }

    #[test]
    fn empty_file_is_a_fresh_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        std::fs::write(&path, b"").unwrap();
        let mut s = open(&path, Spool::DEFAULT_MAX_BYTES);
        assert_eq!(s.append(&[(T0, session("a"))]).unwrap(), vec![1]);
    }

    // ---- model test -----------------------------------------------------------

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<(i64, usize)>),
        Peek(usize, usize),
        Ack(usize),
        AckAll,
        Reopen,
        EnsureAbove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => prop::collection::vec((0i64..1_000_000, 0usize..120), 1..6).prop_map(Op::Append),
            3 => (1usize..20, 0usize..2000).prop_map(|(c, b)| Op::Peek(c, b)),
            3 => (0usize..30).prop_map(Op::Ack),
            1 => Just(Op::AckAll),
            1 => Just(Op::Reopen),
            1 => (0u64..50).prop_map(Op::EnsureAbove),
        ]
    }

    fn encoded_len(kind: &EventKind) -> usize {
        serde_json::to_vec(kind).unwrap().len()
    }

    fn check_bounds(s: &Spool, model: &VecDeque<Event>) {
        let st = s.stats().unwrap();
        assert!(st.bytes <= st.max_bytes, "{st:?}");
        assert_eq!(st.depth, model.len() as u64);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn spool_matches_a_simple_model(ops in prop::collection::vec(op(), 1..40), max in 4096u64..12_000) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("spool.db");
            let mut s = open(&path, max);
            let mut model: VecDeque<Event> = VecDeque::new();
            let mut floor = 0u64; // every new seq must exceed this
            let mut last_acked = 0u64;
            let mut clock = T0;
            for op in ops {
                clock += 1000;
                match op {
                    Op::Append(items) => {
                        let batch: Vec<(i64, EventKind)> = items
                            .iter()
                            .map(|(at, len)| (T0 + at, session(&"a".repeat(*len))))
                            .collect();
                        let seqs = s.append(&batch).unwrap();
                        prop_assert_eq!(seqs.len(), batch.len());
                        prop_assert!(seqs[0] > floor);
                        prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]));
                        let after = all_pending(&s);
                        let n = batch.len();
                        prop_assert!(after.len() >= n);
                        let (head, new) = after.split_at(after.len() - n);
                        for ((seq, (at, kind)), e) in seqs.iter().zip(&batch).zip(new) {
                            prop_assert_eq!(&Event { seq: *seq, at_ms: *at, kind: kind.clone() }, e);
                        }
                        let before: Vec<Event> = model.iter().cloned().collect();
                        match head.last() {
                            Some(g) if g.seq > floor && g.seq < seqs[0] => {
                                // A drop happened: head = before[k..] ++ [gap].
                                let rest = &head[..head.len() - 1];
                                prop_assert!(rest.len() < before.len());
                                let k = before.len() - rest.len();
                                prop_assert_eq!(rest, &before[k..]);
                                let mut expect = 0u64;
                                let (mut lo, mut hi) = (i64::MAX, i64::MIN);
                                for d in &before[..k] {
                                    match &d.kind {
                                        EventKind::DataGap { dropped_events, from_ms, to_ms, .. } => {
                                            expect += dropped_events;
                                            lo = lo.min(*from_ms);
                                            hi = hi.max(*to_ms);
                                        }
                                        _ => {
                                            expect += 1;
                                            lo = lo.min(d.at_ms);
                                            hi = hi.max(d.at_ms);
                                        }
                                    }
                                }
                                match &g.kind {
                                    EventKind::DataGap { dropped_events, from_ms, to_ms, reason } => {
                                        prop_assert_eq!(reason.as_str(), REASON_FULL);
                                        prop_assert_eq!(*dropped_events, expect);
                                        prop_assert_eq!((*from_ms, *to_ms), (lo, hi));
                                    }
                                    other => prop_assert!(false, "expected a gap, got {:?}", other),
                                }
                            }
                            _ => prop_assert_eq!(head, &before[..]),
                        }
                        floor = *seqs.last().unwrap();
                        model = after.into_iter().collect();
                    }
                    Op::Peek(count, bytes) => {
                        let got = s.peek(count, bytes).unwrap();
                        prop_assert!(got.len() <= count);
                        if !model.is_empty() {
                            prop_assert!(!got.is_empty());
                        }
                        for (g, m) in got.iter().zip(model.iter()) {
                            prop_assert_eq!(g, m);
                        }
                        let used: usize = got.iter().map(|e| encoded_len(&e.kind)).sum();
                        if got.len() > 1 {
                            prop_assert!(used <= bytes);
                        }
                        if got.len() < count.min(model.len()) {
                            prop_assert!(used + encoded_len(&model[got.len()].kind) > bytes);
                        }
                    }
                    Op::Ack(_) | Op::AckAll if model.is_empty() => {
                        prop_assert_eq!(s.ack(last_acked, clock).unwrap(), 0);
                    }
                    Op::Ack(i) => {
                        let upto = model[i % model.len()].seq;
                        let expect = model.iter().filter(|e| e.seq <= upto).count() as u64;
                        prop_assert_eq!(s.ack(upto, clock).unwrap(), expect);
                        prop_assert_eq!(s.ack(upto, clock).unwrap(), 0);
                        model.retain(|e| e.seq > upto);
                        last_acked = last_acked.max(upto);
                        prop_assert_eq!(s.stats().unwrap().last_acked_seq, last_acked);
                    }
                    Op::AckAll => {
                        let upto = model.back().unwrap().seq;
                        prop_assert_eq!(s.ack(upto, clock).unwrap(), model.len() as u64);
                        model.clear();
                        last_acked = last_acked.max(upto);
                    }
                    Op::Reopen => {
                        drop(s);
                        s = open(&path, max);
                        prop_assert_eq!(all_pending(&s), model.iter().cloned().collect::<Vec<_>>());
                        prop_assert!(s.stats().unwrap().next_seq > floor);
                        prop_assert_eq!(s.stats().unwrap().last_acked_seq, last_acked);
                    }
                    Op::EnsureAbove(d) => {
                        let target = floor + d;
                        s.ensure_next_seq_above(target).unwrap();
                        floor = floor.max(target);
                        prop_assert!(s.stats().unwrap().next_seq > floor);
                    }
                }
                check_bounds(&s, &model);
            }
        }
    }
}

//! The writer thread: group commits of batches, enrolments and integrity
//! events, each job in its own savepoint, answered after COMMIT; and the
//! checkpointer beside it.

use super::*;

/// How stale `pc_accounts.last_ms` (shown as an unmapped account's "last seen")
/// may get: an account seen again within this long after the instant stored for
/// it is not written again. Saves a b-tree page per Report.
const PC_ACCOUNT_SLACK_MS: i64 = 15 * 60 * 1000;
/// The most PCs whose accounts the writer remembers.
const PC_ACCOUNT_CACHE_PCS: usize = 100_000;
/// Rows of `events_recent` at which the writer moves them into `events` (see
/// schema 22): enough that a move writes each busy agent's pages once for many
/// of its Reports, few enough that readers, which scan `events_recent` whole,
/// barely notice it and that a move (a few milliseconds) holds up one group.
pub(super) const FOLD_ROWS: usize = 2_048;
/// Batches of this many events or more go straight into `events`: about a
/// page of rows of their agent's, which a move would write a second time.
pub(super) const RECENT_MAX_BATCH: usize = 32;
/// The longest rows wait in `events_recent` before they are moved, so that a
/// small office's trickle of Reports is moved too.
pub(super) const FOLD_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the writer knows is stored in `pc_accounts`: PC -> account -> (first, last).
/// Only the writer writes that table, and it learns a row only once the
/// transaction that wrote it has committed, so what it remembers is on disk.
type PcAccounts = HashMap<i64, HashMap<String, (i64, i64)>>;
/// Rows of `pc_accounts` written by one job: (PC, account, first, last).
type Learned = Vec<(i64, String, i64, i64)>;

/// The writer thread's state.
pub(super) struct Writer {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    days: Settings,
    pc_accounts: PcAccounts,
    /// Tells the checkpointer that the log has grown.
    checkpoint: mpsc::SyncSender<()>,
    /// Set by the checkpointer when the log is past [`CHECKPOINT_RESTART_PAGES`].
    restart: Arc<std::sync::atomic::AtomicBool>,
    /// Rows committed to `events_recent` and not yet moved into `events`.
    recent: usize,
    /// When the oldest of those was committed (or the writer started).
    recent_since: Option<std::time::Instant>,
    /// No move is tried before this instant (set after a move failed).
    next_fold: std::time::Instant,
    /// How long rows may wait in `events_recent` ([`FOLD_AGE`]).
    fold_age: std::time::Duration,
}

/// Sends one job's answer once the group's commit is known (its error, if any).
type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;
type Replies = Vec<Reply>;

impl Writer {
    pub(super) fn new(
        conn: Arc<Mutex<Connection>>,
        path: PathBuf,
        days: Settings,
        checkpoint: mpsc::SyncSender<()>,
        restart: Arc<std::sync::atomic::AtomicBool>,
        fold_age: std::time::Duration,
    ) -> Writer {
        Writer {
            conn,
            path,
            days,
            pc_accounts: HashMap::new(),
            checkpoint,
            restart,
            recent: 0,
            recent_since: None,
            next_fold: std::time::Instant::now(),
            fold_age,
        }
    }

    /// How many rows wait in `events_recent` (after a start, or after a job
    /// moved them); if it cannot be read, [`FOLD_ROWS`], so a move is tried.
    fn count_recent(&self, conn: &Connection) -> usize {
        conn.query_row("SELECT count(*) FROM events_recent", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_or(FOLD_ROWS, |n| n as usize)
    }

    /// Notes that `events_recent` now holds `rows` rows.
    fn set_recent(&mut self, rows: usize) {
        self.recent = rows;
        if rows == 0 {
            self.recent_since = None;
        } else if self.recent_since.is_none() {
            self.recent_since = Some(std::time::Instant::now());
        }
    }

    /// How long until `events_recent` is due to be moved: `None` while it is empty.
    fn fold_due_in(&self) -> Option<std::time::Duration> {
        let since = self.recent_since?;
        let now = std::time::Instant::now();
        let due = if self.recent >= FOLD_ROWS {
            now
        } else {
            since + self.fold_age
        };
        Some(due.max(self.next_fold).saturating_duration_since(now))
    }

    /// Moves `events_recent` into `events` in a transaction of its own.
    fn fold_now(&mut self) {
        let started = std::time::Instant::now();
        let moved = {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| classify(&self.path, e))
                .and_then(|tx| {
                    let moved = fold(&tx, &self.path)?;
                    tx.commit().map_err(|e| classify(&self.path, e))?;
                    Ok(moved)
                })
        };
        match moved {
            Ok(moved) => {
                tracing::trace!(
                    moved,
                    ms = started.elapsed().as_millis() as u64,
                    "Moved recent events."
                );
                self.set_recent(0);
                let _ = self.checkpoint.try_send(());
            }
            Err(e) => {
                tracing::warn!(db = %self.path.display(), error = %e, "Could not move recent events into the events table; they stay readable where they are, and the writer tries again.");
                self.next_fold = std::time::Instant::now() + self.fold_age;
            }
        }
    }

    pub(super) fn run(mut self, jobs: mpsc::Receiver<Job>) {
        let rows = {
            let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            self.count_recent(&conn)
        };
        self.set_recent(rows);
        loop {
            let first = match self.fold_due_in() {
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
                Some(wait) if wait.is_zero() => {
                    self.fold_now();
                    continue;
                }
                Some(wait) => match jobs.recv_timeout(wait) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.fold_now();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
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
        // A clean stop leaves nothing waiting: every event in its ordered table.
        if self.recent > 0 {
            self.fold_now();
        }
    }

    /// Applies every job in one transaction; each job in its own savepoint so one
    /// job's failure does not fail the others. Answers are sent after COMMIT.
    fn commit_group(&mut self, group: Vec<Job>) {
        let path = self.path.clone();
        let days = self.days.clone();
        let mut replies: Replies = Vec::with_capacity(group.len());
        let mut learned: Learned = Vec::new();
        // Rows this group appends to `events_recent`; whether a job moved them.
        let (mut appended, mut folded) = (0usize, false);
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
                    .map(|(outcome, rows, recent)| {
                        learned.extend(rows);
                        match recent {
                            Recent::Appended(n) => appended += n,
                            Recent::Folded => folded = true,
                        }
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
                                detail: crate::store::enrolment::refused_detail(&host, why),
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
        crate::metrics::get()
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::trace!(
            ms = started.elapsed().as_millis() as u64,
            jobs = replies.len(),
            "Committed."
        );
        if let Err(e) = &commit {
            tracing::warn!(error = %e, "Failed to commit a group of writes; every request in it is refused.");
        }
        if commit.is_ok() {
            let rows = if folded {
                self.count_recent(&conn)
            } else {
                self.recent + appended
            };
            self.set_recent(rows);
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
pub(super) fn run_checkpoints(
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
        // Wait out the pace asleep: a commit meanwhile leaves its one note in the
        // channel instead of waking this thread (hundreds of times a second under
        // load, each a context switch on the cores the Reports need).
        std::thread::sleep(CHECKPOINT_PACE.saturating_sub(started.elapsed()));
        due = woken.recv().is_ok();
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
) -> Result<(BatchOutcome, Learned, Recent), StoreError> {
    let err = sql_err(path);
    let mut inserted = 0u64;
    let mut max_seq = 0u64;
    // The highest seq stored before this batch: a new event at or below it is a
    // seq going backwards (a resend of a stored one is not new).
    let state = conn
        .prepare_cached("SELECT max_seq, enrolled_ms, latest_at_ms FROM agents WHERE num = ?1")
        .map_err(&err)?
        .query_row([b.agent_num], |r| {
            Ok(crate::store::trust::AgentState {
                max_seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                enrolled_ms: r.get(1)?,
                latest_at_ms: r.get(2)?,
            })
        })
        .map_err(&err)?;
    let stored_max = state.max_seq as i64;
    let latest = crate::store::trust::check_batch(
        &state,
        &b.events,
        b.clock_offset_ms,
        b.received_ms,
        b.replay,
    )
    .map_err(StoreError::Invalid)?;
    // Accounts seen (lower case) with corrected first/last instants, and the
    // attendance days the new events fall on.
    let mut facts = crate::store::derived::BatchFacts::default();
    let mut note = |e: &Event| facts.note(e, b.clock_offset_ms, days);
    // The usual batch is all new: seqs above every stored one, in increasing
    // order. Those rows go in through multi-row INSERTs, unchecked: every stored
    // event has a seq at or below the agent's max_seq. A small batch is appended
    // to `events_recent`; a large one fills pages of its agent's own in `events`,
    // where moving it later would only write it twice.
    let all_new = b.events.first().is_some_and(|e| e.seq as i64 > stored_max)
        && b.events.windows(2).all(|w| w[0].seq < w[1].seq);
    let recent = if all_new {
        let (table, appended) = if b.events.len() < RECENT_MAX_BATCH {
            (Table::Recent, b.events.len())
        } else {
            (Table::Events, 0)
        };
        inserted = insert_events(conn, path, table, b, &b.events, encoded)?;
        max_seq = b.events.last().map_or(0, |e| e.seq);
        b.events.iter().for_each(&mut note);
        Recent::Appended(appended)
    } else {
        // Resends among them: the recent events are moved first, so that the
        // primary key of `events` tells each resend (ignored) from a seq that
        // goes backwards (refused), one row at a time.
        fold(conn, path)?;
        for (e, data) in b.events.iter().zip(encoded) {
            let (e1, data1) = (std::slice::from_ref(e), std::slice::from_ref(data));
            let n = insert_events(conn, path, Table::Events, b, e1, data1)?;
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
        Recent::Folded
    };
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
        recent,
    ))
}

/// What a batch did to `events_recent`.
enum Recent {
    /// Appended this many rows.
    Appended(usize),
    /// Moved every row into `events` (before storing resends there).
    Folded,
}

/// The table new event rows go into.
#[derive(Clone, Copy)]
enum Table {
    /// `events_recent`, in arrival order: only events known to be new.
    Recent,
    /// `events`, whose primary key ignores a resend.
    Events,
}

/// Moves every row of `events_recent` into `events`, in (agent, seq) order so
/// that each agent's pages are written once. Returns how many rows moved.
fn fold(conn: &Connection, path: &Path) -> Result<u64, StoreError> {
    let err = sql_err(path);
    let moved = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO events (agent, seq, at_ms, clock_offset_ms, received_ms, kind, account, data)
             SELECT agent, seq, at_ms, clock_offset_ms, received_ms, kind, account, data
             FROM events_recent ORDER BY agent, seq",
        )
        .and_then(|mut s| s.execute([]))
        .map_err(&err)? as u64;
    let taken = conn
        .prepare_cached("DELETE FROM events_recent")
        .and_then(|mut s| s.execute([]))
        .map_err(&err)? as u64;
    if moved != taken {
        // Only new events are appended, so this is a fault of the writer's; the
        // copy already in `events` is kept, as a resend's would be.
        tracing::warn!(
            moved,
            taken,
            "Recent events already stored were dropped when moved."
        );
    }
    Ok(moved)
}

/// Rows in one multi-row INSERT of new events.
const INSERT_CHUNK: usize = 64;

/// Inserts `events` of batch `b` with their stored forms into `table` (into
/// `events`, ignoring any already stored), [`INSERT_CHUNK`] rows to a statement: one statement's set-up (cursors
/// on the table and its indexes) then serves many rows. Returns how many rows
/// were inserted.
fn insert_events(
    conn: &Connection,
    path: &Path,
    table: Table,
    b: &Batch,
    events: &[Event],
    encoded: &[Vec<u8>],
) -> Result<u64, StoreError> {
    fn sql(table: Table, rows: usize) -> String {
        let mut sql = String::from(match table {
            Table::Recent => "INSERT INTO events_recent",
            Table::Events => "INSERT OR IGNORE INTO events",
        });
        sql.push_str(
            " (agent, seq, at_ms, clock_offset_ms, received_ms, kind, account, data) VALUES ",
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
    type Sql = std::sync::LazyLock<[String; 2]>;
    static FULL: Sql = Sql::new(|| [Table::Recent, Table::Events].map(|t| sql(t, INSERT_CHUNK)));
    static ONE: Sql = Sql::new(|| [Table::Recent, Table::Events].map(|t| sql(t, 1)));
    let t = table as usize;
    let err = sql_err(path);
    let mut inserted = 0;
    for (events, data) in events
        .chunks(INSERT_CHUNK)
        .zip(encoded.chunks(INSERT_CHUNK))
    {
        let mut stmt = match events.len() {
            INSERT_CHUNK => conn.prepare_cached(&FULL[t]),
            1 => conn.prepare_cached(&ONE[t]),
            n => conn.prepare_cached(&sql(table, n)),
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
/// PC, day) of `dates` ([`crate::store::derived::BatchFacts::dirty_dates`]). `known` is
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
    use crate::store::enrolment::{self, KnownMachine, TokenState};
    let token_state: Option<TokenState> = conn
        .query_row(
            "SELECT expires_ms, max_uses, uses, revoked_ms, created_ms, reenroll FROM tokens WHERE hash = ?1",
            [&hash],
            |r| {
                Ok(TokenState {
                    expires_ms: r.get(0)?,
                    max_uses: r.get(1)?,
                    uses: r.get(2)?,
                    revoked_ms: r.get(3)?,
                    created_ms: r.get(4)?,
                    reenroll: r.get(5)?,
                })
            },
        )
        .optional()
        .map_err(&err)?;
    let existing: Option<(i64, String, i64, String, Option<i64>)> = conn
        .query_row(
            "SELECT num, id, max_seq, hostname, revoked_ms FROM agents WHERE machine_id = ?1",
            [&host.machine_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .map_err(&err)?;
    enrolment::check(
        token_state.as_ref(),
        existing
            .as_ref()
            .map(|(_, id, _, hostname, revoked_ms)| KnownMachine {
                agent_id: id,
                hostname,
                revoked_ms: *revoked_ms,
            }),
        host,
        now_ms,
    )?;
    conn.execute("UPDATE tokens SET uses = uses + 1 WHERE hash = ?1", [&hash])
        .map_err(&err)?;
    let key = new_secret()?;
    let key_hash = hash_secret(&key);
    let (num, agent_id, last_seq, re_enrolled) = match existing {
        Some((num, id, max_seq, old_hostname, _)) => {
            IntegrityEvent {
                agent_num: num,
                at_ms: now_ms,
                kind: "reenrolled",
                seq: None,
                claimed: None,
                detail: enrolment::reenrolled_detail(host, &old_hostname),
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
    Ok(enrolment::outcome(
        num,
        agent_id,
        key,
        key_hash,
        last_seq,
        re_enrolled,
    ))
}

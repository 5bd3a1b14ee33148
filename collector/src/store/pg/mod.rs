//! The PostgreSQL store: the same contract as the embedded SQLite store, for
//! several collectors on one database.
//!
//! What must stay true, beyond the store invariants in [`super`]:
//! - any number of collectors may write at once: a batch locks its agent's row
//!   (`SELECT … FOR UPDATE`) for the length of its transaction, so the trust rules
//!   and the backwards-seq check see every batch of that agent before it, whichever
//!   collector stored it, and an acknowledgement never covers a seq not stored;
//! - migrations run under an advisory lock, once, and a database whose schema is
//!   newer than this collector knows is refused;
//! - a lost database is `StoreError::Busy` (agents retry later and keep their
//!   spools), never a panic; the pool reconnects when the server is back.
//!
//! The traits per concern are synchronous; this store runs each call on its own
//! small runtime and waits for it (see [`PgStore::block`]).

pub mod accounts;
pub mod admin;
pub mod appeals;
pub mod directory;
pub mod ingest;
pub mod notifications;
pub mod office_settings;
pub mod requests;
pub mod schema;

use super::StoreError;
use crate::attendance::Settings;
use std::future::Future;

/// An arbitrary constant that names kaoqin's migration lock among advisory locks.
const MIGRATION_LOCK: i64 = 0x6b61_6f71_696e_0001;
/// Connections each collector keeps at most.
pub(crate) const POOL_SIZE: usize = 16;

/// The PostgreSQL store. Every connection and every query runs on the store's
/// own runtime, whoever calls: a connection's driver task then never waits on a
/// caller's runtime that is itself waiting for the store.
pub struct PgStore {
    inner: std::sync::Arc<PgInner>,
    /// Taken on drop.
    rt: Option<tokio::runtime::Runtime>,
}

/// What the store's calls share.
pub struct PgInner {
    pool: deadpool_postgres::Pool,
    handle: tokio::runtime::Handle,
    /// The server and database, without the password, for messages.
    at: String,
    /// Decide which attendance days a batch marks dirty.
    settings: Settings,
    auth: crate::store::AuthCache,
    /// Monthly partitions of `events` known to exist: (year, month).
    months: std::sync::Mutex<std::collections::HashSet<(i16, i8)>>,
}

/// The UTC month of an instant, when the events table has monthly partitions for
/// it (2000 to 2099; others are kept in `events_other`).
fn month_of(at_ms: i64) -> Option<(i16, i8)> {
    let d = jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::from_millisecond(at_ms).ok()?)
        .date();
    (2000..2100)
        .contains(&d.year())
        .then(|| (d.year(), d.month()))
}

impl std::ops::Deref for PgStore {
    type Target = PgInner;
    fn deref(&self) -> &PgInner {
        &self.inner
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("at", &self.at).finish()
    }
}

/// `postgres://user:secret@host/db` as `postgres://user@host/db`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Turns a driver error into a store error: what a retry can fix (the server
/// gone, a serialization conflict, too many connections) is `Busy`.
pub(crate) fn classify(at: &str, e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    let retry = match e.code() {
        None => true,
        Some(c) => [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::CRASH_SHUTDOWN,
        ]
        .contains(c),
    };
    if retry {
        StoreError::Busy(format!("database {at}: {e}"))
    } else {
        StoreError::Database {
            at: at.to_owned(),
            source: Box::new(e),
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`) and brings the
    /// schema up to date.
    pub fn open(url: &str, settings: &Settings) -> Result<std::sync::Arc<PgStore>, StoreError> {
        let at = redact(url);
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("--database {at}: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kaoqin-pg")
            .enable_all()
            .build()?;
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _entered = rt.enter();
            deadpool_postgres::Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(std::time::Duration::from_secs(10)))
                .create_timeout(Some(std::time::Duration::from_secs(5)))
                .build()
                .map_err(|e| StoreError::Corrupt(format!("--database {at}: {e}")))?
        };
        let store = PgStore {
            inner: std::sync::Arc::new(PgInner {
                pool,
                handle: rt.handle().clone(),
                at,
                settings: settings.clone(),
                auth: Default::default(),
                months: Default::default(),
            }),
            rt: Some(rt),
        };
        store.block(store.migrate())?;
        Ok(std::sync::Arc::new(store))
    }
}

impl PgInner {
    /// The server and database, without the password.
    pub fn at(&self) -> &str {
        &self.at
    }

    pub(crate) fn err(&self) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        move |e| classify(&self.at, e)
    }

    /// A connection from the pool; `Busy` when none can be had (the server down,
    /// all in use for too long).
    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Busy(format!("database {}: {e}", self.at)))
    }

    /// Makes sure the monthly partitions for `instants` exist (each is made once,
    /// by whichever collector first stores an event of its month).
    pub(crate) async fn ensure_months(
        &self,
        instants: impl Iterator<Item = i64>,
    ) -> Result<(), StoreError> {
        let wanted: std::collections::BTreeSet<(i16, i8)> = instants.filter_map(month_of).collect();
        let missing: Vec<(i16, i8)> = {
            let known = self.months.lock().unwrap_or_else(|p| p.into_inner());
            wanted.into_iter().filter(|m| !known.contains(m)).collect()
        };
        for (y, m) in missing {
            self.execute(
                "SELECT kaoqin_event_month($1, $2)",
                &[&i32::from(y), &i32::from(m)],
            )
            .await?;
            self.months
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((y, m));
        }
        Ok(())
    }

    /// Runs one statement (prepared once per connection) and returns its rows.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let c = self.conn().await?;
        let stmt = c.prepare_cached(sql).await.map_err(self.err())?;
        c.query(&stmt, params).await.map_err(self.err())
    }

    /// The one row of a statement, if any.
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs one statement; returns how many rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let c = self.conn().await?;
        let stmt = c.prepare_cached(sql).await.map_err(self.err())?;
        c.execute(&stmt, params).await.map_err(self.err())
    }

    /// Runs `f` on this store's runtime and waits for it: from a plain thread
    /// directly, from inside another runtime on a helper thread (a runtime cannot
    /// be waited on from inside one).
    pub(crate) fn block<T: Send>(
        &self,
        f: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        let rt = &self.handle;
        if tokio::runtime::Handle::try_current().is_err() {
            return rt.block_on(f);
        }
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .unwrap_or_else(|_| Err(StoreError::Corrupt("a database call panicked".into())))
        })
    }

    /// Applies the migrations this database lacks, under an advisory lock so that
    /// collectors starting together migrate once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let err = self.err();
        let tx = conn.transaction().await.map_err(&err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(&err)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS kaoqin_schema (version BIGINT NOT NULL)")
            .await
            .map_err(&err)?;
        let version: i64 = match tx
            .query_opt("SELECT version FROM kaoqin_schema", &[])
            .await
            .map_err(&err)?
        {
            Some(r) => r.get(0),
            None => {
                tx.execute("INSERT INTO kaoqin_schema (version) VALUES (0)", &[])
                    .await
                    .map_err(&err)?;
                0
            }
        };
        let known = schema::MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::Corrupt(format!(
                "database {}: schema version {version} is newer than this collector knows ({known}); upgrade the collector",
                self.at
            )));
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(sql).await.map_err(&err)?;
            tx.execute("UPDATE kaoqin_schema SET version = $1", &[&(i as i64 + 1)])
                .await
                .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)?;
        Ok(())
    }
}

/// The result of a call spawned on the store's runtime.
pub(crate) fn joined<T>(
    r: Result<Result<T, StoreError>, tokio::task::JoinError>,
) -> Result<T, StoreError> {
    r.unwrap_or_else(|e| Err(StoreError::Busy(format!("a database call failed: {e}"))))
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime inside another one would panic; this never waits.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod testdb;

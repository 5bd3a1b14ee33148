//! Where the collector keeps what agents send.
//!
//! [`Store`] is what ingest needs from storage, and the traits of [`concerns`]
//! are what everything else needs; [`sqlite::SqliteStore`] is the embedded
//! default (one SQLite file in WAL mode in the data dir: every write on one
//! writing connection, reads from a small pool), [`pg::PgStore`] the server
//! database for several collectors. [`open`] picks one; the `contract` test suite holds
//! both to the same behaviour.
//!
//! Invariants every implementation keeps:
//! - an event is identified by (agent, seq) and stored at most once; a resend is
//!   a no-op that still acknowledges;
//! - `store_batch` returns only after the batch is durable, and the acked seq it
//!   returns is the highest seq of that agent actually stored;
//! - a failed write leaves nothing of the batch behind and is reported as
//!   [`StoreError::Busy`] when retrying later can succeed (locked, disk full);
//! - the trust rules ([`trust`]) hold for every new event of a batch, or nothing of
//!   it is stored ([`StoreError::Invalid`], naming the seq), and the agent's stored
//!   state is as before.

pub mod accounts;
pub mod admin;
pub mod appeals;
pub mod audit_log;
pub mod calendar;
pub mod concerns;
#[cfg(test)]
mod contract;
pub mod derived;
pub mod directory;
pub mod enrolment;
pub mod integrity;
pub mod migrate;
pub mod notifications;
pub mod office_settings;
pub mod pg;
pub mod requests;
pub mod retention;
pub mod sqlite;
pub mod trust;

use kaoqin_proto::event::Event;
use std::future::Future;

pub use concerns::{
    Accounts, Admin, Appeals, Audit, CalendarNotices, Directory, Events, IntegrityReads,
    Notifications, OfficeSetting, OfficeSettings, Requests, Stores, Verdicts,
};

/// How long a recompute may hold the dirty days it took before another takes
/// them again (it died, or lost its database).
pub const DIRTY_LEASE_MS: i64 = 10 * 60 * 1000;

/// Storage errors. Messages never contain SQL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Retry later: the database is locked, the disk is full, the writer is
    /// saturated.
    #[error("storage temporarily unavailable: {0}")]
    Busy(String),
    /// The enrolment token is unknown, expired, used up or revoked.
    #[error("{0}")]
    BadToken(String),
    /// The token is good but may not do this (enrol a machine already known with a
    /// token for new machines only).
    #[error("{0}")]
    Denied(String),
    /// The batch contradicts what is stored (a seq that goes backwards); nothing
    /// of it was stored and resending it unchanged fails again.
    #[error("{0}")]
    Invalid(String),
    /// The database failed in a way a retry will not fix: `at` names the database
    /// (a file, a server), `source` the driver's error.
    #[error("database {at}: {source}")]
    Database {
        at: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Corrupt(String),
    /// The request contradicts what is stored (an OS account already mapped to
    /// someone else, an unknown employee).
    #[error("{0}")]
    Conflict(String),
    /// What the request names does not exist (a request id).
    #[error("{0}")]
    NotFound(String),
}

/// Facts an agent tells about its host when it enrols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub machine_id: String,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub agent_version: String,
}

/// The outcome of an enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub agent_id: String,
    /// The secret key, returned once; only its hash is stored.
    pub agent_key: String,
    /// The highest seq already stored for this agent id.
    pub last_seq: u64,
    /// True when this machine had enrolled before (same machine id).
    pub re_enrolled: bool,
}

/// What the collector knows to authenticate an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAuth {
    pub agent_id: String,
    /// Internal row number, used as the events' key.
    pub num: i64,
    /// Hex SHA-256 of the agent key.
    pub key_hash: String,
    pub revoked: bool,
}

/// A batch of validated events from one agent.
#[derive(Debug, Clone)]
pub struct Batch {
    pub agent_num: i64,
    pub received_ms: i64,
    pub sent_at_ms: i64,
    /// Collector clock minus agent clock, measured at receipt.
    pub clock_offset_ms: i64,
    pub events: Vec<Event>,
    /// A replaying agent on a collector that allows replays: its events may lie
    /// before the agent's enrolment and before what it already stored.
    pub replay: bool,
}

/// What a stored batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The highest seq of the agent now stored.
    pub acked_seq: u64,
    /// How many events of the batch were new (the rest were resends).
    pub inserted: u64,
}

/// Agent identities a collector has looked up, each trusted for
/// [`sqlite::AUTH_RECHECK`] before it is read from the database again (a
/// revocation by another process or collector is seen within that time).
#[derive(Debug, Default)]
pub struct AuthCache(
    std::sync::RwLock<std::collections::HashMap<String, (AgentAuth, std::time::Instant)>>,
);

impl AuthCache {
    fn map(
        &self,
    ) -> std::sync::RwLockWriteGuard<
        '_,
        std::collections::HashMap<String, (AgentAuth, std::time::Instant)>,
    > {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The identity of `agent_id` while it is fresh.
    pub fn fresh(&self, agent_id: &str) -> Option<AgentAuth> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(agent_id)
            .filter(|(_, checked)| checked.elapsed() < sqlite::AUTH_RECHECK)
            .map(|(a, _)| a.clone())
    }

    /// Remembers what the database says of `agent_id` now (`None`: unknown).
    pub fn put(&self, agent_id: &str, found: Option<&AgentAuth>) {
        let mut map = self.map();
        match found {
            Some(a) => {
                map.insert(a.agent_id.clone(), (a.clone(), std::time::Instant::now()));
            }
            None => {
                map.remove(agent_id);
            }
        }
    }
}

/// An enrolment token as `token list` shows it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// The first 12 hex digits of the token's SHA-256.
    pub hash_prefix: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub uses: u32,
    pub max_uses: Option<u32>,
    pub revoked_ms: Option<i64>,
    pub note: String,
    /// It may enrol a machine already known (a reinstall).
    pub reenroll: bool,
    /// What it was used for: each enrolment's hostname, newest last, with
    /// "(again)" for a re-enrolment.
    pub used_for: Vec<String>,
}

/// An enrolled agent as `agents list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentInfo {
    pub id: String,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub agent_version: String,
    pub enrolled_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub max_seq: u64,
    pub revoked_ms: Option<i64>,
    /// The clock offset measured on its latest batch (collector minus agent).
    pub last_clock_offset_ms: Option<i64>,
}

/// An enrolment token as created by `token create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub token: String,
    pub expires_ms: i64,
    pub max_uses: Option<u32>,
}

/// What a new enrolment token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// How long it is valid.
    pub ttl_ms: i64,
    /// How many enrolments it allows (None: unlimited until it expires).
    pub max_uses: Option<u32>,
    /// A note for the record.
    pub note: String,
    /// It may enrol a machine id already known (a reinstall); otherwise only new
    /// machines.
    pub reenroll: bool,
}

impl TokenSpec {
    /// A token for `max_uses` new machines over `ttl_ms`.
    pub fn new_machines(ttl_ms: i64, max_uses: Option<u32>) -> TokenSpec {
        TokenSpec {
            ttl_ms,
            max_uses,
            note: String::new(),
            reenroll: false,
        }
    }

    /// The same, also for machines already known.
    pub fn reenrolling(self) -> TokenSpec {
        TokenSpec {
            reenroll: true,
            ..self
        }
    }
}

/// One stored event with what the collector measured when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub agent_id: String,
    pub event: Event,
    pub received_ms: i64,
    pub clock_offset_ms: i64,
}

/// Storage as ingest needs it.
pub trait Store: Send + Sync + 'static {
    /// Exchanges an enrolment token for an agent identity.
    fn enroll(
        &self,
        token: &str,
        host: HostFacts,
        now_ms: i64,
    ) -> impl Future<Output = Result<Enrolment, StoreError>> + Send;

    /// Looks an agent up for authentication.
    fn agent_auth(&self, agent_id: &str) -> Result<Option<AgentAuth>, StoreError>;

    /// Stores a batch durably; see the module invariants.
    fn store_batch(
        &self,
        batch: Batch,
    ) -> impl Future<Output = Result<BatchOutcome, StoreError>> + Send;

    /// Records that a batch of the agent was refused, as an integrity event: when
    /// (collector clock), the seq it names if any, why, and what the refused event
    /// claimed (an instant and an OS account), if it was about one.
    fn record_refusal(
        &self,
        agent_num: i64,
        at_ms: i64,
        seq: Option<u64>,
        detail: String,
        claimed: Option<Claimed>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// An opened store of either kind: what `serve` ingests into and every command
/// reads through.
#[derive(Clone)]
pub enum Opened {
    Sqlite(std::sync::Arc<sqlite::SqliteStore>),
    Postgres(std::sync::Arc<pg::PgStore>),
}

/// Opens the store: PostgreSQL when `url` is given (`postgres://…`), else the
/// embedded SQLite file in `data_dir`. `settings` decide which attendance days a
/// batch marks dirty.
pub fn open(
    data_dir: &std::path::Path,
    url: Option<&str>,
    settings: &crate::attendance::Settings,
) -> Result<Opened, StoreError> {
    match url {
        None => Ok(Opened::Sqlite(sqlite::SqliteStore::open_with(
            data_dir, settings,
        )?)),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            Ok(Opened::Postgres(pg::PgStore::open(u, settings)?))
        }
        Some(u) => Err(StoreError::Invalid(format!(
            "--database {}: expected postgres://user:password@host:port/database (or no --database for the SQLite file in the data dir)",
            pg::redact(u)
        ))),
    }
}

impl Opened {
    /// Every concern of the store, for the modules above `store/`.
    pub fn stores(&self) -> std::sync::Arc<dyn Stores> {
        match self {
            Opened::Sqlite(s) => s.clone(),
            Opened::Postgres(s) => s.clone(),
        }
    }

    /// What the store is, for the log: the SQLite file or the server.
    pub fn describe(&self) -> String {
        match self {
            Opened::Sqlite(s) => s.path().display().to_string(),
            Opened::Postgres(s) => s.at().to_owned(),
        }
    }
}

impl Store for Opened {
    async fn enroll(
        &self,
        token: &str,
        host: HostFacts,
        now_ms: i64,
    ) -> Result<Enrolment, StoreError> {
        match self {
            Opened::Sqlite(s) => s.enroll(token, host, now_ms).await,
            Opened::Postgres(s) => s.enroll(token, host, now_ms).await,
        }
    }

    fn agent_auth(&self, agent_id: &str) -> Result<Option<AgentAuth>, StoreError> {
        match self {
            Opened::Sqlite(s) => s.agent_auth(agent_id),
            Opened::Postgres(s) => s.agent_auth(agent_id),
        }
    }

    async fn store_batch(&self, batch: Batch) -> Result<BatchOutcome, StoreError> {
        match self {
            Opened::Sqlite(s) => s.store_batch(batch).await,
            Opened::Postgres(s) => s.store_batch(batch).await,
        }
    }

    async fn record_refusal(
        &self,
        agent_num: i64,
        at_ms: i64,
        seq: Option<u64>,
        detail: String,
        claimed: Option<Claimed>,
    ) -> Result<(), StoreError> {
        match self {
            Opened::Sqlite(s) => {
                s.record_refusal(agent_num, at_ms, seq, detail, claimed)
                    .await
            }
            Opened::Postgres(s) => {
                s.record_refusal(agent_num, at_ms, seq, detail, claimed)
                    .await
            }
        }
    }
}

/// What a refused event claimed: its corrected instant and the OS account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub at_ms: i64,
    pub account: String,
}

/// Hex SHA-256, used for agent keys and enrolment tokens at rest.
pub fn hash_secret(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// A random secret of 32 bytes, hex-encoded.
pub fn new_secret() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("random source: {e}"))))?;
    Ok(hex::encode(bytes))
}

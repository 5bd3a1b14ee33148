//! Backups of the SQLite store while it serves, and restoring one.
//!
//! A backup is SQLite's online backup API copying the whole database in one step
//! from a reader connection: one read transaction, so the copy is the database as
//! of one instant (in WAL mode the writer goes on meanwhile). A restore puts a
//! backup in place of a data dir's database while no collector serves from it;
//! the database it replaces is kept beside it.

use super::{DB_FILE, MIGRATIONS, SqliteStore, sql_err};
use crate::store::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// The file `serve` holds locked while it serves from a data dir.
pub const SERVING_LOCK: &str = "kaoqin.db.serving";

/// Marks `data_dir` as served by this process until the returned file is dropped
/// (an exclusive lock, released by the system if the process dies): a second
/// collector on the same SQLite file, or a restore under a running one, is
/// refused.
pub fn serving_lock(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join(SERVING_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Conflict(format!(
            "{}: a collector is already serving from this data dir; stop it first",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io(e)),
    }
}

impl SqliteStore {
    /// Writes a consistent copy of the database to `out`, which must not exist;
    /// returns its size in bytes. Safe while the collector serves.
    pub fn backup_to(&self, out: &Path) -> Result<u64, StoreError> {
        if out.exists() {
            return Err(StoreError::Conflict(format!(
                "--out {}: exists; choose a new file",
                out.display()
            )));
        }
        let partial = out.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        let err = sql_err(out);
        {
            let src = self.reader();
            let mut dst = Connection::open(&partial).map_err(&err)?;
            let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(&err)?;
            // All pages in one step: one read transaction, one instant.
            backup.step(-1).map_err(&err)?;
        }
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, out)?;
        Ok(std::fs::metadata(out)?.len())
    }
}

/// The schema version of the kaoqin database `file`, checked to be one this
/// collector can open (not newer, not empty).
fn checked_version(file: &Path) -> Result<usize, StoreError> {
    let err = sql_err(file);
    let conn =
        Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
            StoreError::Invalid(format!("{}: not a database file ({e})", file.display()))
        })?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| {
            StoreError::Invalid(format!("{}: not a database file ({e})", file.display()))
        })?;
    let has_agents: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'agents'",
            [],
            |r| r.get(0),
        )
        .map_err(&err)?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version == 0 || !has_agents {
        return Err(StoreError::Invalid(format!(
            "{}: not a kaoqin database (no schema version or no agents table)",
            file.display()
        )));
    }
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "{}: schema version {version} is newer than this collector knows ({}); restore it with a newer collector",
            file.display(),
            MIGRATIONS.len()
        )));
    }
    Ok(version)
}

/// Puts the backup `from` in place of `data_dir`'s database while no collector
/// serves from it. The database it replaces (with its WAL) is renamed to
/// `kaoqin.db.before-restore-MILLIS`, and returned; the restored one is brought
/// up to this collector's schema when it is next opened.
pub fn restore(data_dir: &Path, from: &Path, now_ms: i64) -> Result<Option<PathBuf>, StoreError> {
    let _serving = serving_lock(data_dir)?;
    checked_version(from)?;
    let db = data_dir.join(DB_FILE);
    let kept = if db.exists() {
        let kept = data_dir.join(format!("{DB_FILE}.before-restore-{now_ms}"));
        // Fold the WAL into the old file first, so that one file holds it whole.
        if let Ok(c) = Connection::open(&db) {
            let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        std::fs::rename(&db, &kept)?;
        for side in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(data_dir.join(format!("{DB_FILE}{side}")));
        }
        Some(kept)
    } else {
        None
    };
    let err = sql_err(&db);
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(&err)?;
    let mut dst = Connection::open(&db).map_err(&err)?;
    rusqlite::backup::Backup::new(&src, &mut dst)
        .and_then(|b| b.step(-1).map(|_| ()))
        .map_err(&err)?;
    drop(dst);
    std::fs::File::open(&db)?.sync_all()?;
    Ok(kept)
}

//! Upgrades: a database of every released schema, kept in
//! `tests/fixtures/schema/` (SQLite files and PostgreSQL dumps), is opened by
//! this collector, migrated and checked against what it held.
//!
//! At each release whose schema changed, add that release's fixtures with
//! `make_schema_fixtures` (below, run by hand with `--ignored`): it builds an
//! office (the fixture staff, the replayed day, an account, a request) with the
//! release's binaries and writes `sqlite-N.db`, `pg-N.sql` and what they hold
//! (`*.json`).

use kaoqin_collector::store::pg::testdb::TestPg;
use kaoqin_tests::{Collector, collector_command, fixture, run_ok};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/schema")
}

/// The fixtures named `PREFIX<version>SUFFIX`, each with what it holds (its
/// `.json` beside it), in version order.
fn fixtures(prefix: &str, suffix: &str) -> Vec<(String, PathBuf, serde_json::Value)> {
    let mut out: Vec<(String, PathBuf, serde_json::Value)> = std::fs::read_dir(schema_dir())
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name()?.to_string_lossy().into_owned();
            let version = name.strip_prefix(prefix)?.strip_suffix(suffix)?.to_owned();
            let want = std::fs::read_to_string(path.with_extension("json")).unwrap();
            Some((version, path, serde_json::from_str(&want).unwrap()))
        })
        .collect();
    out.sort_by_key(|(v, _, _)| v.parse::<u32>().unwrap_or(0));
    out
}

/// What an office's store holds, as the commands tell: the facts a fixture
/// records and an upgrade must keep.
fn facts(cmd: &dyn Fn(&[&str]) -> Command) -> serde_json::Value {
    let events = run_ok(cmd(&["events", "--format", "jsonl"]), LIMIT)
        .unwrap()
        .lines()
        .count();
    let staff = run_ok(cmd(&["staff", "list"]), LIMIT).unwrap();
    let users = run_ok(cmd(&["user", "list"]), LIMIT).unwrap();
    let rows = crate::util::daily(cmd, "2026-11-24", "2026-12-01T00:00:00Z");
    let e001 = crate::util::row_of(&rows, "E001");
    let audit = run_ok(cmd(&["audit", "verify"]), LIMIT).unwrap();
    serde_json::json!({
        "events": events,
        "staff": staff.lines().skip(1).filter(|l| !l.is_empty()).count(),
        "officer_account": users.contains("officer"),
        "e001_status": e001["status"],
        "e001_late_minutes": e001["late_minutes"],
        "audit_intact": audit.contains("intact"),
    })
}

/// Fills a new store through `c`: the fixture staff, the replayed day, an
/// officer's account.
fn fill(c: &Collector, pc: &Path) {
    c.cli(&["staff", "import", fixture("staff.csv").to_str().unwrap()]);
    c.replay_fixture(pc, "day.jsonl").unwrap();
    c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
}

#[test]
fn every_released_sqlite_schema_is_migrated_with_its_data() {
    let all = fixtures("sqlite-", ".db");
    assert!(
        !all.is_empty(),
        "no SQLite fixture in {}",
        schema_dir().display()
    );
    for (version, path, want) in all {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&path, dir.path().join("kaoqin.db")).unwrap();
        let data = dir.path().to_path_buf();
        let cmd = move |args: &[&str]| {
            let mut c = collector_command(args);
            c.arg("--data-dir").arg(&data);
            c
        };
        assert_eq!(facts(&cmd), want, "schema {version} after the upgrade");
        let conn = rusqlite::Connection::open(dir.path().join("kaoqin.db")).unwrap();
        let now: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert!(
            now >= version.parse::<i64>().unwrap(),
            "schema {version} migrated to {now}"
        );
        // And it serves.
        drop(conn);
        let c = Collector::start(dir.path(), "127.0.0.1:0").unwrap();
        assert_eq!(
            c.events().unwrap().len(),
            want["events"].as_u64().unwrap() as usize
        );
    }
}

#[test]
fn every_released_postgres_schema_is_migrated_with_its_data() {
    let Some(pg) = TestPg::start() else {
        return;
    };
    let all = fixtures("pg-", ".sql");
    assert!(
        !all.is_empty(),
        "no PostgreSQL fixture in {}",
        schema_dir().display()
    );
    for (version, path, want) in all {
        let url = pg.database(&format!("schema_{version}"));
        let mut load = Command::new("psql");
        load.arg(&url)
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&path);
        run_ok(load, LIMIT).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let db = url.clone();
        let cmd = move |args: &[&str]| {
            let mut c = collector_command(args);
            c.arg("--data-dir").arg(&data).arg("--database").arg(&db);
            c
        };
        assert_eq!(
            facts(&cmd),
            want,
            "PostgreSQL schema {version} after the upgrade"
        );
        // A schema newer than this collector knows is refused and left alone.
        let psql = |sql: &str| {
            let mut q = Command::new("psql");
            q.arg(&url)
                .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql]);
            run_ok(q, LIMIT).unwrap()
        };
        psql("UPDATE kaoqin_schema SET version = 999");
        let out = kaoqin_tests::run_bounded(cmd(&["events", "--format", "jsonl"]), LIMIT).unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("schema version 999 is newer than this collector knows"),
            "{err}"
        );
        assert_eq!(psql("SELECT version FROM kaoqin_schema").trim(), "999");
    }
}

/// Writes this build's fixtures into tests/fixtures/schema/ (not a check: run it
/// by hand at a release whose schema changed, and commit what it writes).
#[test]
#[ignore = "writes the schema fixtures of a release; run by hand"]
fn make_schema_fixtures() {
    let out = schema_dir();
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // SQLite.
    let data = dir.path().join("sqlite");
    let c = Collector::start(&data, "127.0.0.1:0").unwrap();
    fill(&c, &dir.path().join("pc-sqlite"));
    c.kill();
    let db = data.join("kaoqin.db");
    let version: i64 = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
            .unwrap();
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    let cmd = |args: &[&str]| {
        let mut c = collector_command(args);
        c.arg("--data-dir").arg(&data);
        c
    };
    let held = facts(&cmd);
    std::fs::copy(&db, out.join(format!("sqlite-{version}.db"))).unwrap();
    std::fs::write(
        out.join(format!("sqlite-{version}.json")),
        serde_json::to_string_pretty(&held).unwrap() + "\n",
    )
    .unwrap();

    // PostgreSQL.
    let pg = TestPg::start().expect("PostgreSQL for the fixtures");
    let url = pg.database("fixture");
    let c = Collector::start_on_database(&dir.path().join("pg"), "127.0.0.1:0", &url).unwrap();
    fill(&c, &dir.path().join("pc-pg"));
    let version = run_ok(
        {
            let mut q = Command::new("psql");
            q.arg(&url)
                .args(["-At", "-c", "SELECT version FROM kaoqin_schema"]);
            q
        },
        LIMIT,
    )
    .unwrap();
    let data = dir.path().join("pg");
    let cmd = |args: &[&str]| {
        let mut c = collector_command(args);
        c.arg("--data-dir").arg(&data).arg("--database").arg(&url);
        c
    };
    let held = facts(&cmd);
    c.kill();
    let mut dump = Command::new("pg_dump");
    dump.arg(&url).args(["--no-owner", "--no-privileges"]);
    let sql = run_ok(dump, LIMIT).unwrap();
    let version = version.trim();
    std::fs::write(out.join(format!("pg-{version}.sql")), sql).unwrap();
    std::fs::write(
        out.join(format!("pg-{version}.json")),
        serde_json::to_string_pretty(&held).unwrap() + "\n",
    )
    .unwrap();
}

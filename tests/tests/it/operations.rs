//! What IT runs the collector with: `/healthz` and `/metrics` for monitoring, the
//! agent's `status --json`, backups taken while serving and restored, one
//! collector per SQLite file, and a database from a newer collector refused.

use kaoqin_tests::{Collector, agent, collector_command, run_bounded, run_ok};
use std::collections::BTreeMap;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
const TOKEN: &str = "scrape-token-0123456789";

/// The samples of a Prometheus text page: `name{labels}` to value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn health_and_metrics_say_what_the_collector_did() {
    let dir = tempfile::tempdir().unwrap();
    // The day after the replayed one; later the collector starts again two hours on.
    let config = format!("[metrics]\ntoken = \"{TOKEN}\"\n");
    let day_after: jiff::Timestamp = "2026-11-25T10:00:00+08:00".parse().unwrap();
    let c = Collector::start_web_at(&dir.path().join("collector"), &config, day_after).unwrap();
    let http = reqwest::blocking::Client::new();
    let get = |path: &str| {
        let r = http.get(format!("{}{path}", c.web())).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(get("/healthz"), (200, "ok\n".into()));

    // A day delivered, an enrolment with a bad token, a failed login.
    let pc = dir.path().join("pc");
    c.replay_fixture(&pc, "day.jsonl").unwrap();
    let stored = c.events().unwrap().len();
    let bad = run_bounded(
        agent(
            &dir.path().join("other-pc"),
            &[
                "enroll",
                "--collector",
                &c.url(),
                "--token",
                "kq1-not-a-token",
            ],
        ),
        LIMIT,
    )
    .unwrap();
    assert!(!bad.status.success());
    let login = http
        .post(format!("{}/login", c.web()))
        .form(&[("username", "nobody"), ("password", "wrong")])
        .send()
        .unwrap();
    assert_eq!(login.status().as_u16(), 401);

    let (status, text) = get("/metrics");
    assert_eq!(status, 200, "{text}");
    let m = samples(&text);
    let at = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in {text}"));
    assert_eq!(at("kaoqin_events_stored_total") as usize, stored, "{text}");
    assert!(at("kaoqin_reports_total") >= 1.0, "{text}");
    assert_eq!(
        at("kaoqin_report_duration_seconds_count"),
        at("kaoqin_reports_total")
    );
    assert_eq!(
        at("kaoqin_report_batch_events_sum") as usize,
        stored,
        "every event arrived in a stored Report once: {text}"
    );
    assert!(at("kaoqin_store_commit_duration_seconds_count") >= 1.0);
    assert_eq!(at("kaoqin_login_failures_total"), 1.0);
    assert_eq!(at("kaoqin_agents{kind=\"enrolled\"}"), 1.0);
    assert_eq!(at("kaoqin_agents{kind=\"seen_1h\"}"), 1.0);
    assert_eq!(at("kaoqin_agents{kind=\"revoked\"}"), 0.0);
    assert_eq!(at("kaoqin_store_up"), 1.0);
    assert!(m.contains_key("kaoqin_recompute_queue_depth"), "{text}");
    let refused: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("kaoqin_refusals_total{call=\"enroll\""))
        .map(|(_, v)| v)
        .sum();
    assert!(refused >= 1.0, "the bad enrolment counted: {text}");
    assert!(text.ends_with("# EOF\n"));
    let integrity: Vec<&String> = m
        .keys()
        .filter(|k| k.starts_with("kaoqin_integrity_events_24h{kind="))
        .collect();
    assert!(!integrity.is_empty(), "integrity events by kind: {text}");

    // The agent's own state for monitoring tools.
    let status = run_ok(agent(&pc, &["status", "--json"]), LIMIT).unwrap();
    let s: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert!(
        s["enrolment"]["agent_id"]
            .as_str()
            .is_some_and(|a| a.starts_with("ag-")),
        "{s:#}"
    );
    assert_eq!(s["spool"]["depth"], 0, "{s:#}");
    assert_eq!(s["collector"], "reachable", "{s:#}");
    assert!(s["spool"]["last_acked_seq"].as_u64().unwrap() >= stored as u64);

    // Two hours on, the PC has gone silent.
    drop(c);
    let later = day_after
        .checked_add(jiff::SignedDuration::from_hours(2))
        .unwrap();
    let c = Collector::start_web_at(&dir.path().join("collector"), &config, later).unwrap();
    let r = http.get(format!("{}/metrics", c.web())).send().unwrap();
    let text = r.text().unwrap();
    let m = samples(&text);
    assert_eq!(
        m.get("kaoqin_agents{kind=\"silent_1h\"}"),
        Some(&1.0),
        "{text}"
    );
    assert_eq!(
        m.get("kaoqin_agents{kind=\"seen_1h\"}"),
        Some(&0.0),
        "{text}"
    );
    assert_eq!(
        m.get("kaoqin_agents{kind=\"enrolled\"}"),
        Some(&1.0),
        "{text}"
    );
}

#[test]
fn a_backup_taken_while_serving_is_restored_and_one_collector_serves_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let c = Collector::start(&data, "127.0.0.1:0").unwrap();
    // The agent comes back to the same address after the restore.
    let c_addr = c.addr.to_string();
    c.replay_fixture(&dir.path().join("pc"), "day.jsonl")
        .unwrap();
    let stored = c.events().unwrap().len();

    // While it serves: a second collector on the same file is refused.
    let second = Collector::start(&data, "127.0.0.1:0");
    let e = second
        .err()
        .expect("a second collector refused")
        .to_string();
    assert!(e.contains("did not start"), "{e}");

    let backup = dir.path().join("kaoqin-backup.db");
    let out = c.cli(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(out.contains("backed up"), "{out}");
    // Never over an existing file.
    let again = run_bounded(c.cmd(&["backup", "--out", backup.to_str().unwrap()]), LIMIT).unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    // What happens after the backup: an account, and the PC delivers another day.
    c.cli(&["user", "add", "--username", "late", "--role", "officer"]);
    let pc = dir.path().join("pc");
    let replay = |script: &str| {
        let probe = format!("replay:{}", kaoqin_tests::fixture(script).display());
        run_ok(agent(&pc, &["run", "--probe", &probe, "--once"]), LIMIT).unwrap();
    };
    replay("day-pc2.jsonl");
    let later = c.events().unwrap().len();
    assert!(later > stored);
    // Not restored under a running collector.
    let refused = run_bounded(
        c.cmd(&["restore", "--from", backup.to_str().unwrap()]),
        LIMIT,
    )
    .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already serving"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let cmd_on = |args: &[&str]| {
        let mut cmd = collector_command(args);
        cmd.arg("--data-dir").arg(&data);
        cmd
    };
    c.kill();
    let out = run_ok(
        cmd_on(&["restore", "--from", backup.to_str().unwrap()]),
        LIMIT,
    )
    .unwrap();
    assert!(out.contains(&format!("({stored} events)")), "{out}");
    assert!(
        out.contains("audit chain:") && out.contains("intact"),
        "{out}"
    );
    assert!(out.contains("kept as"), "{out}");
    let users = run_ok(cmd_on(&["user", "list"]), LIMIT).unwrap();
    assert!(
        !users.contains("late"),
        "the account added after the backup: {users}"
    );
    // The restored store serves, with every event it held; the PC's agent
    // carries on from its own sequence numbers (what it delivered after the
    // backup left its spool when it was acknowledged, and is not in the backup).
    let c = Collector::start(&data, &c_addr).unwrap();
    assert_eq!(c.events().unwrap().len(), stored);
    replay("killed.jsonl");
    let events = c.events().unwrap();
    let after = events.len();
    assert!(after > stored, "another day delivered after the restore");
    let last_seq = events
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap();
    assert!(
        last_seq as usize > later,
        "it continued from its own seq ({last_seq}), past what the backup lost"
    );
    // A file that is not a kaoqin database is refused, and nothing is replaced.
    c.kill();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let bad = run_bounded(
        cmd_on(&["restore", "--from", junk.to_str().unwrap()]),
        LIMIT,
    )
    .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let c = Collector::start(&data, "127.0.0.1:0").unwrap();
    assert_eq!(c.events().unwrap().len(), after);
}

#[test]
fn a_database_of_a_newer_collector_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let c = Collector::start(&data, "127.0.0.1:0").unwrap();
    c.cli(&["token", "create"]);
    c.kill();
    let db = data.join("kaoqin.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    let mut serve = collector_command(&["serve", "--plaintext", "--grpc", "127.0.0.1:0"]);
    serve.arg("--data-dir").arg(&data);
    let out = run_bounded(serve, LIMIT).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema version 999 is newer than this collector knows"),
        "{err}"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 999, "left as it was");
    // Nor restored from.
    let mut restore = collector_command(&["restore", "--from", db.to_str().unwrap()]);
    restore.arg("--data-dir").arg(dir.path().join("elsewhere"));
    let out = run_bounded(restore, LIMIT).unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer"));
}

#[test]
fn check_config_names_every_problem_without_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[server]\ntime_zone = \"Asia/Shanghai\"\n[metrics]\nallow = [\"10.1.0.0/16\"]\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let check = |config: &std::path::Path| {
        let mut c = collector_command(&["check-config", "--config"]);
        c.arg(config).arg("--data-dir").arg(&data);
        run_bounded(c, LIMIT).unwrap()
    };
    let out = check(&good);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("configuration is valid") && text.contains("Asia/Shanghai"),
        "{text}"
    );
    assert!(!data.join("kaoqin.db").exists(), "the store is not opened");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[metrics]\nallow = [\"10.1.0.0/33\"]\n[notify]\nlanguage = \"fr\"\n",
    )
    .unwrap();
    let out = check(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metrics.allow") && err.contains("notify.language"),
        "both problems named: {err}"
    );
}

//! Several collectors on one PostgreSQL database, as a province runs them: agents
//! enrolled through either, each delivering through its own, the day judged from
//! whichever collector is asked, and the same verdicts as one collector on SQLite
//! for the same days.
//!
//! The tests start their own PostgreSQL (Debian's postgresql package); without it
//! they are skipped, except with `CI=true`, where that fails them.

use kaoqin_collector::store::pg::testdb::TestPg;
use kaoqin_tests::{Collector, agent, fixture, run_ok};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
/// Well after 2026-11-24, so no verdict of that day is provisional.
const NOW: &str = "2026-11-26T00:00:00Z";

/// Enrols an agent through `c` with its own machine identity and replays the
/// fixture `script` to it.
fn replay(c: &Collector, state: &Path, machine: &str, script: &str) {
    let mut enroll = agent(
        state,
        &[
            "enroll",
            "--collector",
            &c.url(),
            "--token",
            &c.token().unwrap(),
        ],
    );
    enroll.env("KAOQIN_MACHINE_ID", machine);
    run_ok(enroll, LIMIT).unwrap();
    let replay = format!("replay:{}", fixture(script).display());
    let mut run = agent(state, &["run", "--probe", &replay, "--once"]);
    run.env("KAOQIN_MACHINE_ID", machine);
    run_ok(run, LIMIT).unwrap();
}

/// The daily report's figures officers act on, by employee id (agent ids, which
/// are random, left out).
fn figures(c: &Collector) -> Vec<serde_json::Value> {
    let out = run_ok(
        c.cmd(&[
            "report",
            "daily",
            "--date",
            "2026-11-24",
            "--format",
            "json",
            "--now",
            NOW,
        ]),
        LIMIT,
    )
    .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.iter()
        .map(|r| {
            serde_json::json!({
                "employee_id": r["employee_id"], "status": r["status"],
                "arrival": r["arrival"], "departure": r["departure"],
                "late_minutes": r["late_minutes"], "early_minutes": r["early_minutes"],
                "unverified": r["unverified"], "nonwork_seconds": r["nonwork_seconds"],
            })
        })
        .collect()
}

#[test]
fn two_collectors_on_one_database_judge_as_one_on_sqlite() {
    let Some(pg) = TestPg::start() else {
        return;
    };
    let url = pg.database("province");
    let dir = tempfile::tempdir().unwrap();
    let a = Collector::start_on_database(&dir.path().join("a"), "127.0.0.1:0", &url).unwrap();
    let b = Collector::start_on_database(&dir.path().join("b"), "127.0.0.1:0", &url).unwrap();
    let staff = fixture("staff.csv");
    let out = run_ok(a.cmd(&["staff", "import", staff.to_str().unwrap()]), LIMIT).unwrap();
    assert!(out.contains("3 added"), "{out}");
    // zhangsan's two PCs, one through each collector.
    replay(&a, &dir.path().join("pc1"), "pc-1-machine", "day.jsonl");
    replay(&b, &dir.path().join("pc2"), "pc-2-machine", "day-pc2.jsonl");

    // The same days on one collector with SQLite.
    let one = Collector::start(&dir.path().join("sqlite"), "127.0.0.1:0").unwrap();
    run_ok(
        one.cmd(&["staff", "import", staff.to_str().unwrap()]),
        LIMIT,
    )
    .unwrap();
    replay(&one, &dir.path().join("s1"), "pc-1-machine", "day.jsonl");
    replay(
        &one,
        &dir.path().join("s2"),
        "pc-2-machine",
        "day-pc2.jsonl",
    );

    let expected = figures(&one);
    let e1 = expected
        .iter()
        .find(|r| r["employee_id"] == "E001")
        .unwrap();
    assert_eq!(e1["status"], "present", "{e1:#}");
    assert_eq!(e1["late_minutes"], 0, "the second PC shows 08:25: {e1:#}");
    assert_eq!(figures(&a), expected, "collector a on PostgreSQL");
    assert_eq!(figures(&b), expected, "collector b on PostgreSQL");

    // Every event once, as many as on SQLite, readable through either collector.
    let events = b.events().unwrap();
    let keys: std::collections::HashSet<(String, u64)> = events
        .iter()
        .map(|e| {
            (
                e["agent_id"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys.len(), events.len(), "an (agent, seq) stored twice");
    assert_eq!(events.len(), one.events().unwrap().len());
    // An agent enrolled through one collector is known to the other.
    let agents = run_ok(b.cmd(&["agents", "list", "--format", "json"]), LIMIT).unwrap();
    let agents: Vec<serde_json::Value> = serde_json::from_str(&agents).unwrap();
    assert_eq!(agents.len(), 2, "{agents:#?}");
}

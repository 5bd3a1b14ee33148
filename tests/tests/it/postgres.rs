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

/// Enrols an agent through `c` with its own machine identity (and agent config).
fn enrol(c: &Collector, state: &Path, machine: &str, config: Option<&Path>) {
    let token = c.token().unwrap();
    let mut cmd = agent(
        state,
        &["enroll", "--collector", &c.url(), "--token", &token],
    );
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.env("KAOQIN_MACHINE_ID", machine);
    run_ok(cmd, LIMIT).unwrap();
}

/// Enrols an agent through `c` with its own machine identity and replays the
/// fixture `script` to it.
fn replay(c: &Collector, state: &Path, machine: &str, script: &str) {
    enrol(c, state, machine, None);
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

/// One collector on SQLite with the staff directory and zhangsan's two PCs'
/// days: what the PostgreSQL runs must equal.
fn on_sqlite(dir: &Path) -> Collector {
    let one = Collector::start(&dir.join("sqlite"), "127.0.0.1:0").unwrap();
    let staff = fixture("staff.csv");
    run_ok(
        one.cmd(&["staff", "import", staff.to_str().unwrap()]),
        LIMIT,
    )
    .unwrap();
    replay(&one, &dir.join("s1"), "pc-1-machine", "day.jsonl");
    replay(&one, &dir.join("s2"), "pc-2-machine", "day-pc2.jsonl");
    one
}

/// The events a collector's store holds, each (agent, seq) once.
fn stored_once(c: &Collector) -> Vec<serde_json::Value> {
    let events = c.events().unwrap();
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
    events
}

/// A throwaway PostgreSQL with two collectors on one database and the staff
/// directory imported through the first; `None` where PostgreSQL is missing.
struct Province {
    pg: TestPg,
    url: String,
    dir: tempfile::TempDir,
    a: Collector,
    b: Collector,
}

fn province() -> Option<Province> {
    let pg = TestPg::start()?;
    let url = pg.database("province");
    let dir = tempfile::tempdir().unwrap();
    let a = Collector::start_on_database(&dir.path().join("a"), "127.0.0.1:0", &url).unwrap();
    let b = Collector::start_on_database(&dir.path().join("b"), "127.0.0.1:0", &url).unwrap();
    let staff = fixture("staff.csv");
    let out = run_ok(a.cmd(&["staff", "import", staff.to_str().unwrap()]), LIMIT).unwrap();
    assert!(out.contains("3 added"), "{out}");
    Some(Province { pg, url, dir, a, b })
}

#[test]
fn two_collectors_on_one_database_judge_as_one_on_sqlite() {
    let Some(Province {
        pg: _pg, dir, a, b, ..
    }) = province()
    else {
        return;
    };
    // zhangsan's two PCs, one through each collector.
    replay(&a, &dir.path().join("pc1"), "pc-1-machine", "day.jsonl");
    replay(&b, &dir.path().join("pc2"), "pc-2-machine", "day-pc2.jsonl");

    // The same days on one collector with SQLite.
    let one = on_sqlite(dir.path());

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
    let events = stored_once(&b);
    assert_eq!(events.len(), one.events().unwrap().len());
    // An agent enrolled through one collector is known to the other.
    let agents = run_ok(b.cmd(&["agents", "list", "--format", "json"]), LIMIT).unwrap();
    let agents: Vec<serde_json::Value> = serde_json::from_str(&agents).unwrap();
    assert_eq!(agents.len(), 2, "{agents:#?}");
}

/// The health status of the AgentService (1 SERVING, 2 NOT_SERVING), if the
/// collector answers at all.
fn agent_health(rt: &tokio::runtime::Runtime, url: &str) -> Option<i32> {
    rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(url.to_owned())
            .ok()?
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .ok()?;
        let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
        h.check(tonic_health::pb::HealthCheckRequest {
            service: "kaoqin.v1.AgentService".into(),
        })
        .await
        .ok()
        .map(|r| r.into_inner().status)
    })
}

/// Waits (bounded) until `ready` holds, checking every 100 ms.
/// [`kaoqin_tests::eventually`] for a condition.
fn eventually(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    kaoqin_tests::eventually(what, limit, || ready().then_some(()));
}

fn spool_depth(state: &Path) -> u64 {
    let out = run_ok(agent(state, &["status"]), LIMIT).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("spool: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no spool line in {out}"))
}

#[test]
fn a_lost_database_and_a_killed_collector_lose_nothing_and_count_nothing_twice() {
    let Some(Province { pg, url, dir, a, b }) = province() else {
        return;
    };
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[uplink]\nbackoff_min_seconds = 1\nbackoff_max_seconds = 2\n",
    )
    .unwrap();
    let (pc1, pc2) = (dir.path().join("pc1"), dir.path().join("pc2"));
    enrol(&a, &pc1, "pc-1-machine", Some(&config));
    enrol(&b, &pc2, "pc-2-machine", Some(&config));

    // The database goes away: health says so, and agents keep their spools.
    let rt = tokio::runtime::Runtime::new().unwrap();
    pg.crash();
    eventually("collector a says NOT_SERVING", LIMIT, || {
        agent_health(&rt, &a.url()) == Some(2)
    });
    let run = |state: &Path, machine: &str, script: &str| {
        let replay = format!("replay:{}", fixture(script).display());
        let mut cmd = agent(state, &["run", "--once", "--probe", &replay]);
        cmd.arg("--config")
            .arg(&config)
            .env("KAOQIN_MACHINE_ID", machine)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd.spawn().unwrap()
    };
    let mut agents = [
        run(&pc1, "pc-1-machine", "day.jsonl"),
        run(&pc2, "pc-2-machine", "day-pc2.jsonl"),
    ];
    eventually("both days are recorded and waiting", LIMIT, || {
        spool_depth(&pc1) > 10 && spool_depth(&pc2) > 3
    });
    // Collector a dies while its agent is retrying; the database comes back; a
    // new collector takes a's address.
    let addr = a.addr.to_string();
    a.kill();
    pg.restart();
    let a = Collector::start_on_database(&dir.path().join("a"), &addr, &url).unwrap();
    eventually("collector a says SERVING", LIMIT, || {
        agent_health(&rt, &a.url()) == Some(1)
    });
    for agent in &mut agents {
        let mut status = None;
        eventually("the agents deliver everything", LIMIT, || {
            status = agent.try_wait().unwrap();
            status.is_some()
        });
        assert!(status.unwrap().success());
    }
    assert_eq!(spool_depth(&pc1), 0);
    assert_eq!(spool_depth(&pc2), 0);

    // The same days on one collector with SQLite, with nothing lost.
    let one = on_sqlite(dir.path());
    let events = stored_once(&b);
    assert_eq!(events.len(), one.events().unwrap().len(), "every event");
    assert_eq!(figures(&a), figures(&one));
}

#[test]
fn an_office_moves_from_sqlite_to_postgres_with_everything() {
    let Some(pg) = TestPg::start() else {
        return;
    };
    let url = pg.database("office");
    let dir = tempfile::tempdir().unwrap();
    let one = on_sqlite(dir.path());
    let expected = figures(&one);
    let events = stored_once(&one).len();
    // A pruned office: the retention record comes along too.
    let pruned = run_ok(one.cmd(&["events", "prune", "--before", "2026-11"]), LIMIT).unwrap();
    assert!(pruned.contains("dropped 0 events"), "{pruned}");
    let data = one.data_dir.clone();
    drop(one);

    let migrate = || {
        kaoqin_tests::collector_command(&[
            "migrate",
            "--from",
            data.to_str().unwrap(),
            "--to",
            &url,
        ])
    };
    let out = run_ok(migrate(), LIMIT).unwrap();
    let count = |table: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(table))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {table} count in {out}"))
    };
    assert_eq!(count("events ") as usize, events, "{out}");
    assert_eq!(count("staff "), 3, "{out}");
    assert_eq!(count("agents "), 2, "{out}");
    assert!(count("day_verdicts ") >= 3, "{out}");
    assert!(out.contains("as in the SQLite file"), "{out}");
    assert_eq!(count("retention "), 1, "{out}");

    // A collector on the database has it all, and the audit chain verifies.
    let moved =
        Collector::start_on_database(&dir.path().join("moved"), "127.0.0.1:0", &url).unwrap();
    assert_eq!(figures(&moved), expected);
    assert_eq!(stored_once(&moved).len(), events);
    run_ok(moved.cmd(&["audit", "verify"]), LIMIT).unwrap();
    // New rows continue the ids: a token made now is listed beside the two old ones.
    moved.token().unwrap();
    let tokens = run_ok(moved.cmd(&["token", "list", "--format", "json"]), LIMIT).unwrap();
    let tokens: Vec<serde_json::Value> = serde_json::from_str(&tokens).unwrap();
    assert_eq!(tokens.len(), 3, "{tokens:#?}");
    // A second migration into the now used database is refused, changing nothing.
    let again = kaoqin_tests::run_bounded(migrate(), LIMIT).unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("migrate into an empty one"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(stored_once(&moved).len(), events);
}

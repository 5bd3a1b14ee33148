//! A hundred PCs offline for a week, then all reconnecting at once.
//!
//! Each agent records a week (a replayed script, Monday to the next Monday) while
//! its collector is down: the spool holds it within its bound and the agent's
//! memory does not grow with it. The collector comes back on the same address
//! with a small in-flight limit; all hundred agents, already in backoff, reconnect
//! within seconds of each other. Load beyond the limit is shed (Unavailable) and
//! the agents back off with per-agent jitter; the collector answers health checks
//! throughout, stays within its memory bound, and in the end holds every recorded
//! event exactly once.

use kaoqin_tests::{Collector, agent, fixture, proc_kib, run_ok};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const AGENTS: usize = 100;
const LIMIT: Duration = Duration::from_secs(600);

/// The fixture day played Monday to Friday of a past week (2025-11-17 to 21),
/// and Monday's logon a week later.
fn week_script(dir: &Path) -> PathBuf {
    let day = std::fs::read_to_string(fixture("day.jsonl")).unwrap();
    let lines: Vec<&str> = kaoqin_tests::script_events(&day).collect();
    let mut script = String::new();
    for date in ["17", "18", "19", "20", "21"] {
        for l in &lines {
            script.push_str(&l.replace("2026-11-24", &format!("2025-11-{date}")));
            script.push('\n');
        }
    }
    script.push_str(&lines[0].replace("2026-11-24", "2025-11-24"));
    script.push('\n');
    let path = dir.join("week.jsonl");
    std::fs::write(&path, script).unwrap();
    path
}

fn spool_depth(state: &Path, config: &Path) -> u64 {
    let mut cmd = agent(state, &["status"]);
    cmd.arg("--config").arg(config);
    let out = run_ok(cmd, Duration::from_secs(30)).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("spool: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no spool line in {out}"))
}

fn healthy(rt: &tokio::runtime::Runtime, url: &str) -> bool {
    rt.block_on(async {
        let Ok(ch) = tonic::transport::Endpoint::from_shared(url.to_owned())
            .unwrap()
            .timeout(Duration::from_secs(2))
            .connect()
            .await
        else {
            return false;
        };
        let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
        h.check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == 1)
    })
}

#[test]
fn a_hundred_agents_offline_for_a_week_reconnect_at_once_and_lose_nothing() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let script = week_script(dir.path());
    let data = dir.path().join("collector");
    let config = "[agents]\nenroll_rate_per_minute = 0\nmax_reports_in_flight = 8\n";
    let collector = Collector::start_configured(&data, "127.0.0.1:0", config).unwrap();
    let (url, addr) = (collector.url(), collector.addr.to_string());
    let token = collector.token().unwrap();

    // Agents retry between 1 and 4 s (the default ceiling is 5 minutes).
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        "[uplink]\nbackoff_min_seconds = 1\nbackoff_max_seconds = 4\n[spool]\nmax_mib = 8\n",
    )
    .unwrap();
    let states: Vec<PathBuf> = (0..AGENTS)
        .map(|i| dir.path().join(format!("pc{i:03}")))
        .collect();
    for (i, state) in states.iter().enumerate() {
        let mut cmd = agent(state, &["enroll", "--collector", &url, "--token", &token]);
        cmd.arg("--config")
            .arg(&agent_config)
            .env("KAOQIN_MACHINE_ID", format!("offline-week-{i:03}"));
        run_ok(cmd, Duration::from_secs(30)).unwrap();
    }
    collector.kill();

    // The week is recorded while the collector is down.
    let mut agents: Vec<Child> = states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let log = std::fs::File::create(state.with_extension("log")).unwrap();
            let probe = format!("replay:{}", script.display());
            let mut cmd = agent(state, &["run", "--once", "--probe", &probe]);
            cmd.arg("--config")
                .arg(&agent_config)
                .env("KAOQIN_MACHINE_ID", format!("offline-week-{i:03}"))
                .stdout(Stdio::null())
                .stderr(log);
            cmd.spawn().unwrap()
        })
        .collect();
    // A replay is recorded in one transaction: the depth jumps from the start
    // events to the whole week.
    let mut depths = Vec::new();
    for state in &states {
        let depth = loop {
            let d = spool_depth(state, &agent_config);
            if d > 1_000 {
                break d;
            }
            assert!(
                started.elapsed() < LIMIT,
                "the week was not recorded in time"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        depths.push(depth);
    }
    let week = depths[0];
    assert!(
        depths.iter().all(|&d| d == week),
        "every PC recorded the same week: {depths:?}"
    );
    let spool_bytes: u64 = ["spool.db", "spool.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(states[0].join(f)).ok())
        .map(|m| m.len())
        .sum();
    assert!(
        spool_bytes < 8 * 1024 * 1024,
        "a week ({week} events) fits the 8 MiB bound: {spool_bytes} bytes"
    );
    let mut rss: Vec<u64> = agents
        .iter()
        .filter_map(|a| proc_kib(a.id(), "VmRSS"))
        .collect();
    rss.sort_unstable();
    eprintln!(
        "a week offline: {week} events, spool {} KiB, agent RSS median {} KiB, max {} KiB",
        spool_bytes / 1024,
        rss[rss.len() / 2],
        rss[rss.len() - 1]
    );
    assert!(
        rss[rss.len() - 1] < 64 * 1024,
        "agent memory stays small with a week spooled: {rss:?}"
    );

    // Back on the same address: every agent is in backoff and reconnects within
    // its next few seconds.
    let collector = Collector::start_configured(&data, &addr, config).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut checks = 0;
    let mut running = AGENTS;
    while running > 0 {
        assert!(
            started.elapsed() < LIMIT,
            "{running} agents still delivering after {LIMIT:?}"
        );
        assert!(
            healthy(&rt, &url),
            "the collector stops answering health checks while {running} agents catch up"
        );
        checks += 1;
        running = 0;
        for a in &mut agents {
            match a.try_wait().unwrap() {
                Some(status) => assert!(status.success(), "an agent failed: {status}"),
                None => running += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let peak_kib = proc_kib(collector.pid(), "VmHWM").unwrap();
    let shed: usize = states
        .iter()
        .map(|s| {
            std::fs::read_to_string(s.with_extension("log"))
                .unwrap_or_default()
                .matches("reports in flight")
                .count()
        })
        .sum();
    eprintln!(
        "caught up in {:.1?} overall; {checks} health checks answered; {shed} Reports shed and retried; collector peak RSS {} MiB",
        started.elapsed(),
        peak_kib / 1024
    );
    assert!(peak_kib < 300 * 1024, "collector peak RSS {peak_kib} KiB");

    let db = rusqlite::Connection::open(data.join("kaoqin.db")).unwrap();
    let (total, agents_seen, per_agent_min, per_agent_max): (i64, i64, i64, i64) = db
        .query_row(
            "SELECT sum(n), count(*), min(n), max(n) FROM (SELECT agent, count(*) AS n FROM all_events GROUP BY agent)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(agents_seen, AGENTS as i64, "events from every agent");
    assert_eq!(
        (per_agent_min, per_agent_max),
        (week as i64, week as i64),
        "each agent's week arrived whole and once"
    );
    assert_eq!(total, (week * AGENTS as u64) as i64);
    for state in &states {
        assert_eq!(spool_depth(state, &agent_config), 0);
    }
}

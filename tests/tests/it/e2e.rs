//! End to end: the real collector and agent binaries on loopback.

use crate::util::authed;
use kaoqin_proto::v1 as pb;
use kaoqin_tests::{Collector, agent, eventually, fixture, run_ok};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn usage_by_category(events: &[serde_json::Value]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for e in events.iter().filter(|e| e["type"] == "usage") {
        *m.entry(e["category"].as_str().unwrap().to_owned())
            .or_default() += e["active_seconds"].as_u64().unwrap();
    }
    m
}

fn assert_exactly_once(events: &[serde_json::Value]) {
    let keys: HashSet<(String, u64)> = events
        .iter()
        .map(|e| {
            (
                e["agent_id"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys.len(), events.len(), "an (agent, seq) was stored twice");
}

#[test]
fn a_replayed_day_arrives_once_over_tls_with_categories_and_nothing_private() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_tls(&dir.path().join("collector"), "127.0.0.1:0").unwrap();
    let token = collector.token().unwrap();
    let state = dir.path().join("agent");
    let url = collector.url();
    assert!(url.starts_with("https://"));
    let ca = collector.ca.clone().unwrap();
    let ca = ca.to_str().unwrap();
    // Without the CA an https:// collector is refused; with it, enrolment works.
    let out = kaoqin_tests::run_bounded(
        agent(&state, &["enroll", "--collector", &url, "--token", &token]),
        LIMIT,
    )
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca"));
    let out = run_ok(
        agent(
            &state,
            &["enroll", "--collector", &url, "--token", &token, "--ca", ca],
        ),
        LIMIT,
    )
    .unwrap();
    assert!(out.contains("Enrolled"), "{out}");
    // Once it pins a CA the agent never goes back to plaintext.
    let plain = format!("http://{}", collector.addr);
    let out = kaoqin_tests::run_bounded(
        agent(
            &state,
            &[
                "enroll",
                "--collector",
                &plain,
                "--token",
                &token,
                "--ca",
                ca,
            ],
        ),
        LIMIT,
    )
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("plaintext"),
        "{out:?}"
    );

    let replay = format!("replay:{}", fixture("day.jsonl").display());
    run_ok(agent(&state, &["run", "--probe", &replay, "--once"]), LIMIT).unwrap();

    let events = collector.events().unwrap();
    assert_exactly_once(&events);
    let sessions: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["type"] == "session")
        .map(|e| {
            (
                e["at"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("2026-11-24T00:41:00Z", "logon"),
        ("2026-11-24T02:40:00Z", "idle_start"),
        ("2026-11-24T02:55:00Z", "idle_end"),
        ("2026-11-24T04:00:00Z", "lock"),
        ("2026-11-24T05:58:00Z", "unlock"),
        ("2026-11-24T09:20:00Z", "logoff"),
    ];
    assert_eq!(
        sessions,
        expect
            .iter()
            .map(|(a, k)| (a.to_string(), k.to_string()))
            .collect::<Vec<_>>()
    );
    assert!(
        events
            .iter()
            .all(|e| e["type"] != "session" || e["account"] == "zhangsan")
    );

    let usage = usage_by_category(&events);
    let expected: BTreeMap<String, u64> = [
        ("chat", 25 * 60),
        ("media", 15 * 60),
        ("nonwork_web", 10 * 60),
        ("downloads", 10 * 60),
        ("other", (49 + 45 + 40 + 192) * 60),
    ]
    .into_iter()
    .map(|(c, s)| (c.to_owned(), s))
    .collect();
    assert_eq!(usage, expected);

    let lifecycle: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "lifecycle")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(lifecycle, ["start", "stop"]);
    let heartbeats = events.iter().filter(|e| e["type"] == "heartbeat").count();
    assert!(
        (599..=602).contains(&heartbeats),
        "{heartbeats} heartbeats over the 10 h from boot (08:00) to shutdown (18:00)"
    );

    // Nothing that identifies a program, a document or a site leaves the PC.
    let all = serde_json::to_string(&events).unwrap();
    for secret in [
        "WeChat",
        "WINWORD",
        "chrome",
        "Thunder",
        "淘宝",
        ".docx",
        "晴天",
        "文件传输助手",
    ] {
        assert!(!all.contains(secret), "{secret:?} reached the collector");
    }

    // The person at the desk can see the same, in plain words, all sent.
    let shown = run_ok(agent(&state, &["show", "--days", "100000"]), LIMIT).unwrap();
    assert!(shown.contains("logged on"), "{shown}");
    assert!(shown.contains("chat 25 min"), "{shown}");
    assert!(!shown.contains("waiting to send)"), "{shown}");
    assert!(shown.contains("Waiting to send now: 0 events."), "{shown}");
    let status = run_ok(agent(&state, &["status"]), LIMIT).unwrap();
    assert!(status.contains("spool: 0 events waiting"), "{status}");
    assert!(
        status.contains("collector: reachable, key accepted"),
        "{status}"
    );
}

#[test]
fn the_collector_will_not_serve_plaintext_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(kaoqin_tests::bin("kaoqin-collector"));
    cmd.args(["serve", "--grpc", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path());
    let out = kaoqin_tests::run_bounded(cmd, LIMIT).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls init") && err.contains("--plaintext"),
        "{err}"
    );
}

#[test]
fn an_agent_that_starts_offline_delivers_everything_when_the_collector_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let state = dir.path().join("agent");
    // The collector picks its port; it comes back on the same one.
    let addr = {
        let collector = Collector::start(&data, "127.0.0.1:0").unwrap();
        let addr = collector.addr.to_string();
        let token = collector.token().unwrap();
        run_ok(
            agent(
                &state,
                &["enroll", "--collector", &collector.url(), "--token", &token],
            ),
            LIMIT,
        )
        .unwrap();
        collector.kill();
        addr
    };
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[uplink]\nbackoff_min_seconds = 1\nbackoff_max_seconds = 1\ncall_timeout_seconds = 2\n",
    )
    .unwrap();
    let replay = format!("replay:{}", fixture("day.jsonl").display());
    let config = config.to_str().unwrap();
    let mut child = agent(
        &state,
        &["run", "--probe", &replay, "--once", "--config", config],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until the agent has tried and failed at least once.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Delivery failed") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(LIMIT)
        .expect("the agent reports that delivery failed");
    let collector = Collector::start(&data, &addr).unwrap();
    let status = eventually("the agent finished", LIMIT, || child.try_wait().unwrap());
    assert!(status.success());
    let events = collector.events().unwrap();
    assert_exactly_once(&events);
    assert_eq!(usage_by_category(&events).get("chat"), Some(&1500));
}

fn unlock(seq: u64) -> pb::Event {
    pb::Event {
        seq,
        at_ms: 1_795_000_000_000 + seq as i64,
        kind: Some(pb::event::Kind::Session(pb::SessionEvent {
            kind: pb::SessionKind::Unlock as i32,
            account: "lisi".into(),
        })),
    }
}

#[tokio::test]
async fn the_collector_stores_once_refuses_bad_input_and_speaks_standard_grpc() {
    let dir = tempfile::tempdir().unwrap();
    // The collector's clock starts 90 s after the instant the test's "agent
    // clock" gives for its Reports.
    let collector = Collector::start_at(
        &dir.path().join("c"),
        "127.0.0.1:0",
        "2026-11-18T11:08:10Z".parse().unwrap(),
    )
    .unwrap();
    let token = collector.token().unwrap();
    let mut client = pb::agent_service_client::AgentServiceClient::connect(collector.url())
        .await
        .unwrap();
    let host = pb::HostFacts {
        machine_id: "m-1".into(),
        hostname: "pc-1".into(),
        ..Default::default()
    };
    let bad = client
        .enroll(pb::EnrollRequest {
            token: "kq1-forged".into(),
            host: Some(host.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::Unauthenticated);
    let e = client
        .enroll(pb::EnrollRequest {
            token: token.clone(),
            host: Some(host.clone()),
        })
        .await
        .unwrap()
        .into_inner();

    let report = |events: Vec<pb::Event>| {
        authed(
            pb::ReportRequest {
                agent_id: e.agent_id.clone(),
                sent_at_ms: 1_795_000_000_000,
                events,
                replay: true,
            },
            &e.agent_id,
            &e.agent_key,
        )
    };
    let r = client
        .report(report((1..=10).map(unlock).collect()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.acked_seq, 10);
    // The test's "agent clock" said 2026-11-18T11:06:40Z when it sent: the
    // collector measures how far that is from its own clock, 90 s and the
    // seconds since it started.
    let expected = collector.now().as_millisecond() - 1_795_000_000_000;
    assert!(
        (90_000..150_000).contains(&r.clock_offset_ms) && r.clock_offset_ms <= expected,
        "offset {} measured against sent_at (at most {expected})",
        r.clock_offset_ms
    );
    let r = client
        .report(report((1..=10).map(unlock).collect()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.acked_seq, 10, "a resend is acknowledged");
    let r = client
        .report(report((8..=15).map(unlock).collect()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.acked_seq, 15);

    // A malformed event: InvalidArgument naming it; nothing of the batch stored.
    let mut broken = unlock(17);
    broken.kind = Some(pb::event::Kind::Usage(pb::UsageEvent {
        account: "lisi".into(),
        start_ms: 10,
        end_ms: 5,
        category: "chat".into(),
        active_seconds: 1,
        basis: pb::UsageBasis::Foreground as i32,
    }));
    let s = client
        .report(report(vec![unlock(16), broken]))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(
        s.message().contains("event seq 17: usage.end_ms"),
        "{}",
        s.message()
    );
    // Wrong key, and a batch for another agent's id.
    let s = client
        .report(authed(
            pb::ReportRequest {
                agent_id: e.agent_id.clone(),
                sent_at_ms: 1_795_000_000_000,
                events: vec![unlock(16)],
                replay: true,
            },
            &e.agent_id,
            "not-the-key",
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    let s = client
        .report(authed(
            pb::ReportRequest {
                agent_id: "ag-someone-else".into(),
                sent_at_ms: 1_795_000_000_000,
                events: vec![unlock(16)],
                replay: true,
            },
            &e.agent_id,
            &e.agent_key,
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::PermissionDenied);

    // Re-enrolling the same machine needs a --reenroll token; it keeps its id and
    // is told where seqs stand.
    let refused = client
        .enroll(pb::EnrollRequest {
            token,
            host: Some(host.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let again = client
        .enroll(pb::EnrollRequest {
            token: collector.reenroll_token().unwrap(),
            host: Some(host),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.agent_id, e.agent_id);
    assert_eq!(again.last_seq, 15);

    // Standard tools: health checking and reflection.
    let channel = tonic::transport::Channel::from_shared(collector.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "kaoqin.v1.AgentService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut refl = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"kaoqin.v1.AgentService"), "{names:?}");

    // The same list through reflection v1alpha from Python's grpcio, which
    // speaks nothing newer (.ci/run installs grpcio and grpcio-reflection).
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/reflect_v1alpha.py");
    let mut python = std::process::Command::new("python3");
    python
        .arg(&script)
        .arg(collector.url().trim_start_matches("http://"));
    let out = kaoqin_tests::run_bounded(python, std::time::Duration::from_secs(60)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python grpcio client failed: {stderr}"
    );
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.lines().any(|l| l == "kaoqin.v1.AgentService")
            && names.lines().any(|l| l == "grpc.health.v1.Health"),
        "{names}"
    );

    let events = collector.events().unwrap();
    assert_eq!(events.len(), 15);
    assert_exactly_once(&events);
}

/// The fixture day repeated over `days` consecutive days.
fn multi_day_script(dir: &std::path::Path, days: i64) -> std::path::PathBuf {
    let day = std::fs::read_to_string(fixture("day.jsonl")).unwrap();
    // Days safely in the past: the collector refuses instants in the future.
    let first: jiff::civil::Date = "2025-11-24".parse().unwrap();
    let mut text = String::new();
    for d in 0..days {
        let date = first
            .checked_add(jiff::Span::new().days(d))
            .unwrap()
            .to_string();
        for line in kaoqin_tests::script_events(&day) {
            text.push_str(&line.replace("2026-11-24", &date));
            text.push('\n');
        }
    }
    let path = dir.join(format!("{days}-days.jsonl"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Stored events without what differs between two deliveries of the same
/// recording (agent id, seq, receive time, offset), sorted.
fn content(events: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let m = e.as_object_mut().unwrap();
            for k in [
                "agent_id",
                "seq",
                "received_at",
                "clock_offset_ms",
                "corrected_at",
            ] {
                m.remove(k);
            }
            e.to_string()
        })
        .collect();
    v.sort();
    v
}

/// Enrols a fresh agent state dir with `collector`; returns its config path
/// (small batches and short backoff, so a run lasts long enough to be cut).
fn enrolled_agent(
    dir: &std::path::Path,
    name: &str,
    collector: &Collector,
) -> (std::path::PathBuf, String) {
    enrolled_agent_with(dir, name, collector, &collector.token().unwrap())
}

/// As [`enrolled_agent`], with the given enrolment token (which the agent keeps).
fn enrolled_agent_with(
    dir: &std::path::Path,
    name: &str,
    collector: &Collector,
    token: &str,
) -> (std::path::PathBuf, String) {
    let state = dir.join(name);
    let mut cmd = agent(
        &state,
        &["enroll", "--collector", &collector.url(), "--token", token],
    );
    cmd.env("KAOQIN_MACHINE_ID", name);
    run_ok(cmd, LIMIT).unwrap();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        "[uplink]\nbatch_max_events = 20\nbackoff_min_seconds = 1\nbackoff_max_seconds = 1\ncall_timeout_seconds = 5\n",
    )
    .unwrap();
    (state, config.to_str().unwrap().to_owned())
}

fn replay_cmd(
    state: &std::path::Path,
    script: &std::path::Path,
    config: &str,
) -> std::process::Command {
    let replay = format!("replay:{}", script.display());
    let mut cmd = agent(
        state,
        &["run", "--probe", &replay, "--once", "--config", config],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Waits until the collector holds at least `n` events.
fn wait_for_events(collector: &Collector, n: usize) -> usize {
    eventually(&format!("{n} events stored"), LIMIT, || {
        let have = collector.events().unwrap().len();
        (have >= n).then_some(have)
    })
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    kaoqin_tests::wait_bounded(child, LIMIT).expect("the agent finished")
}

/// What an uninterrupted delivery of `script` stores.
fn reference_run(dir: &std::path::Path, script: &std::path::Path) -> Vec<String> {
    let collector = Collector::start(&dir.join("reference"), "127.0.0.1:0").unwrap();
    let (state, config) = enrolled_agent(dir, "reference-agent", &collector);
    run_ok(replay_cmd(&state, script, &config), LIMIT).unwrap();
    let events = collector.events().unwrap();
    assert_exactly_once(&events);
    content(&events)
}

#[test]
fn killing_the_collector_at_random_points_while_agents_send_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let script = multi_day_script(dir.path(), 10);
    let one = reference_run(dir.path(), &script);
    const AGENTS: usize = 3;
    // Every agent replays the same script: the store must hold it AGENTS times.
    let mut expected: Vec<String> = one
        .iter()
        .flat_map(|e| std::iter::repeat_n(e.clone(), AGENTS))
        .collect();
    expected.sort();

    // Two kill points, different on every run; the seed is printed so a failure
    // can be replayed.
    let nanos = kaoqin_tests::fault_seed("killing the collector") as usize;
    let total = expected.len();
    let first = 100 + nanos % (total / 4);
    let second = first + 100 + (nanos / 7) % (total / 4);
    eprintln!("killing the collector after {first} and {second} of {total} events");

    let data = dir.path().join("collector");
    let mut collector = Collector::start(&data, "127.0.0.1:0").unwrap();
    // Restarted on the port it picked, where the agents deliver.
    let addr = collector.addr.to_string();
    let mut children: Vec<_> = (0..AGENTS)
        .map(|i| {
            let (state, config) = enrolled_agent(dir.path(), &format!("pc{i}"), &collector);
            replay_cmd(&state, &script, &config).spawn().unwrap()
        })
        .collect();
    for point in [first, second] {
        let seen = wait_for_events(&collector, point);
        collector.kill();
        assert!(
            seen < total,
            "the collector was killed mid-way ({seen} of {total})"
        );
        collector = Collector::start(&data, &addr).unwrap();
    }
    for child in &mut children {
        assert!(wait_exit(child).success());
    }
    let events = collector.events().unwrap();
    assert_exactly_once(&events);
    assert_eq!(content(&events), expected);
}

#[test]
fn killing_the_agent_mid_delivery_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let script = multi_day_script(dir.path(), 10);
    let expected = reference_run(dir.path(), &script);

    let collector = Collector::start(&dir.path().join("collector"), "127.0.0.1:0").unwrap();
    let (state, config) = enrolled_agent(dir.path(), "pc", &collector);
    let mut child = replay_cmd(&state, &script, &config).spawn().unwrap();
    let seen = wait_for_events(&collector, 200);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent was still delivering"
    );
    child.kill().unwrap(); // SIGKILL: no chance to record a stop
    child.wait().unwrap();
    assert!(seen < expected.len());
    // Started again, the agent does not record the script twice; it delivers the rest.
    let mut again = replay_cmd(&state, &script, &config).spawn().unwrap();
    assert!(wait_exit(&mut again).success());
    let events = collector.events().unwrap();
    assert_exactly_once(&events);
    assert_eq!(content(&events), expected);
}

#[test]
fn an_agent_whose_key_is_rejected_enrols_again_and_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("collector"), "127.0.0.1:0").unwrap();
    // Enrolled with a token for reinstalls, which it keeps: with it the agent may
    // enrol its own machine again when its key is refused. (With a token for new
    // machines only, the default, that takes IT and is listed; tests/trust.rs.)
    let token = collector.reenroll_token().unwrap();
    let (state, config) = enrolled_agent_with(dir.path(), "pc", &collector, &token);
    // The same machine enrols again from elsewhere (a reinstall): the first key
    // stops working.
    let token = collector.reenroll_token().unwrap();
    let mut cmd = agent(
        &dir.path().join("pc-again"),
        &["enroll", "--collector", &collector.url(), "--token", &token],
    );
    cmd.env("KAOQIN_MACHINE_ID", "pc");
    run_ok(cmd, LIMIT).unwrap();
    let mut child = replay_cmd(&state, &fixture("day.jsonl"), &config)
        .spawn()
        .unwrap();
    assert!(wait_exit(&mut child).success());
    let events = collector.events().unwrap();
    assert_exactly_once(&events);
    assert_eq!(usage_by_category(&events).get("chat"), Some(&1500));
}

#[test]
fn an_agent_killed_again_and_again_reopens_its_spool_and_delivers_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let script = multi_day_script(dir.path(), 3);
    let expected = reference_run(dir.path(), &script);
    let collector = Collector::start(&dir.path().join("collector"), "127.0.0.1:0").unwrap();
    let (state, config) = enrolled_agent(dir.path(), "pc", &collector);
    let seed = kaoqin_tests::fault_seed("killing the agent");
    // Fault injection: SIGKILL after a varying delay, landing before, during or
    // after the spool write, or in the middle of delivery.
    for round in 0..12u64 {
        let delay = Duration::from_millis((seed / (round + 1)) % 400);
        let mut child = replay_cmd(&state, &script, &config).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
    }
    // Finally a run that is left alone: it must open the spool and finish.
    let mut last = replay_cmd(&state, &script, &config).spawn().unwrap();
    assert!(wait_exit(&mut last).success(), "seed {seed}");
    let events = collector.events().unwrap();
    assert_exactly_once(&events);
    assert_eq!(content(&events), expected, "seed {seed}");
    // Delivery in seq order is enforced by the collector itself, which refuses a
    // seq below one it holds unless it is a resend: an agent that sent out of
    // order would never have finished above.
}

/// TCP connections of process `pid` established to `port` on loopback (from
/// its descriptors and the kernel's socket table).
#[cfg(target_os = "linux")]
fn connections_to(pid: u32, port: u16) -> usize {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 9
                && f[3] == "01"
                && f[2].ends_with(&format!(":{port:04X}"))
                && inodes.contains(f[9])
        })
        .count()
}

/// An agent that has delivered everything closes its connection (so a collector
/// holds memory only for PCs that are sending); with `close_when_idle = false` it
/// keeps it open. The live probe: the agent's start and first heartbeat are sent
/// at once, then nothing is due for a minute.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_agent_closes_its_connection_unless_told_to_keep_it() {
    for close in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let collector = Collector::start(&dir.path().join("c"), "127.0.0.1:0").unwrap();
        let token = collector.token().unwrap();
        let state = dir.path().join("pc");
        let config = dir.path().join("agent.toml");
        std::fs::write(&config, format!("[uplink]\nclose_when_idle = {close}\n")).unwrap();
        let mut enroll = agent(
            &state,
            &["enroll", "--collector", &collector.url(), "--token", &token],
        );
        enroll.arg("--config").arg(&config);
        run_ok(enroll, LIMIT).unwrap();
        let mut run = agent(&state, &["run", "--probe", "auto"]);
        let mut child = run
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Delivered: the first heartbeat is stored.
        eventually("the first heartbeat delivered", LIMIT, || {
            let events = collector.events().unwrap();
            events
                .iter()
                .any(|e| e["type"] == "heartbeat")
                .then_some(())
        });
        let port = collector.addr.port();
        let want = if close { 0 } else { 1 };
        let what = if close {
            "the connection closed after delivery"
        } else {
            "the connection kept after delivery"
        };
        eventually(what, LIMIT, || {
            (connections_to(child.id(), port) == want).then_some(())
        });
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// An agent opens a connection per Report (`close_when_idle`); over TLS it
/// resumes its session from the collector's ticket instead of paying a full
/// handshake each time, and `/metrics` counts which handshakes were which.
#[test]
fn an_agent_resumes_its_tls_session_across_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_tls_web(&dir.path().join("collector")).unwrap();
    let ca = collector.ca.clone().unwrap();
    let state = dir.path().join("agent");
    let token = collector.token().unwrap();
    let enrol = [
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &token,
        "--ca",
        ca.to_str().unwrap(),
    ];
    run_ok(agent(&state, &enrol), LIMIT).unwrap();
    let enrolment = kaoqin_agent::state::Enrolment::load(&state)
        .unwrap()
        .expect("enrolled");
    // The agent's own uplink: three calls, the connection closed after each.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut up = kaoqin_agent::uplink::Uplink::new(enrolment, LIMIT).unwrap();
        for _ in 0..3 {
            up.policy(0).await.unwrap();
            up.disconnect();
        }
    });
    let pem = std::fs::read(&ca).unwrap();
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let text = http
        .get(format!("{}/metrics", collector.web()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let count = |kind: &str| -> u64 {
        let name = format!("kaoqin_grpc_tls_handshakes_total{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(name.as_str()))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    // The enrolling process and the uplink's first call shake hands in full;
    // the uplink's next two calls resume.
    assert_eq!(count("full"), 2, "{text}");
    assert_eq!(count("resumed"), 2, "{text}");
    assert_eq!(count("failed"), 0, "{text}");
}

/// A mass rollout enrols from the environment (the package's enroll.env, a
/// software-distribution job): the collector, token and CA need no arguments,
/// and `--if-not-enrolled` leaves an enrolled PC's identity alone on every
/// later start.
#[test]
fn an_agent_enrols_from_its_environment_once() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_tls(&dir.path().join("collector"), "127.0.0.1:0").unwrap();
    let state = dir.path().join("agent");
    let token = collector.token().unwrap();
    let ca = collector.ca.clone().unwrap();
    let enrol = |args: &[&str], token: &str| {
        let mut cmd = agent(&state, args);
        cmd.env("KAOQIN_COLLECTOR", collector.url())
            .env("KAOQIN_TOKEN", token)
            .env("KAOQIN_CA", &ca);
        kaoqin_tests::run_bounded(cmd, LIMIT).unwrap()
    };
    let first = enrol(&["enroll", "--if-not-enrolled"], &token);
    assert!(first.status.success(), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stdout).contains("Enrolled"));
    let enrolled = kaoqin_agent::state::Enrolment::load(&state)
        .unwrap()
        .expect("enrolled from the environment");
    assert!(enrolled.ca_pem.is_some(), "the CA from KAOQIN_CA is pinned");
    assert_eq!(enrolled.collector, collector.url());

    // Started again with a token that no longer works: nothing is asked of the
    // collector and the identity stays.
    let again = enrol(&["enroll", "--if-not-enrolled"], "kq1-spent-token");
    assert!(again.status.success(), "{again:?}");
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains(&enrolled.agent_id), "{said}");
    let kept = kaoqin_agent::state::Enrolment::load(&state)
        .unwrap()
        .unwrap();
    assert_eq!(kept.agent_id, enrolled.agent_id);
    assert_eq!(kept.agent_key, enrolled.agent_key);
    // Without the flag the same token is refused: the flag is what skipped it.
    let refused = enrol(&["enroll"], "kq1-spent-token");
    assert!(!refused.status.success(), "{refused:?}");
}

//! Hostile and broken input against a real collector on loopback: each refused
//! with a clear status and nothing of it stored, while good agents keep
//! delivering; revocation and the audit log seen through the real commands.
//!
//! Statuses (ingest.rs and tonic):
//!   event > 10 min ahead (corrected), before 2020, unknown category,
//!   seq going backwards ...................... InvalidArgument "event seq N: field: ..."
//!   batch for another agent's id ............. PermissionDenied
//!   wrong key, revoked agent ................. Unauthenticated
//!   above the agent's request rate ........... ResourceExhausted
//!   too many Reports in flight ............... Unavailable (unit test in ingest.rs)
//!   bytes that are not a protobuf message .... InvalidArgument (the servers' StrictCodec)
//!   a message over the size limit ............ OutOfRange (tonic)

use crate::util::authed;
use kaoqin_proto::v1 as pb;
use kaoqin_tests::{Collector, agent, bin, eventually_async, fixture, run_bounded, run_ok};
use std::process::{Command, Stdio};
use std::time::Duration;
use tonic::codegen::http;
use tonic::transport::Channel;

const LIMIT: Duration = Duration::from_secs(120);

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn unlock(seq: u64, at_ms: i64) -> pb::Event {
    pb::Event {
        seq,
        at_ms,
        kind: Some(pb::event::Kind::Session(pb::SessionEvent {
            kind: pb::SessionKind::Unlock as i32,
            account: "hostile".into(),
        })),
    }
}

fn usage(seq: u64, at_ms: i64, category: &str) -> pb::Event {
    pb::Event {
        seq,
        at_ms,
        kind: Some(pb::event::Kind::Usage(pb::UsageEvent {
            account: "hostile".into(),
            start_ms: at_ms - 300_000,
            end_ms: at_ms,
            category: category.into(),
            active_seconds: 60,
            basis: pb::UsageBasis::Foreground as i32,
        })),
    }
}

type Client = pb::agent_service_client::AgentServiceClient<Channel>;

struct Enrolled {
    id: String,
    key: String,
}

async fn enroll(
    client: &mut Client,
    token: &str,
    machine: &str,
) -> Result<Enrolled, tonic::Status> {
    let e = client
        .enroll(pb::EnrollRequest {
            token: token.into(),
            host: Some(pb::HostFacts {
                machine_id: machine.into(),
                hostname: format!("pc-{machine}"),
                os: "linux".into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    Ok(Enrolled {
        id: e.agent_id,
        key: e.agent_key,
    })
}

async fn report(
    client: &mut Client,
    a: &Enrolled,
    events: Vec<pb::Event>,
) -> Result<pb::ReportResponse, tonic::Status> {
    let body = pb::ReportRequest {
        agent_id: a.id.clone(),
        sent_at_ms: now_ms(),
        events,
        replay: true,
    };
    client
        .report(authed(body, &a.id, &a.key))
        .await
        .map(tonic::Response::into_inner)
}

/// A channel that replaces every request body with the given raw gRPC frame
/// bytes, to send what no protobuf encoder would.
#[derive(Clone)]
struct RawBody {
    inner: Channel,
    frame: String,
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for RawBody {
    type Response =
        <Channel as tonic::codegen::Service<http::Request<tonic::body::Body>>>::Response;
    type Error = <Channel as tonic::codegen::Service<http::Request<tonic::body::Body>>>::Error;
    type Future = <Channel as tonic::codegen::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tonic::codegen::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let (parts, _) = req.into_parts();
        let body = tonic::body::Body::new(self.frame.clone());
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

fn good_agent(dir: &std::path::Path, name: &str, collector: &Collector) -> Command {
    let state = dir.join(name);
    let token = collector.token().unwrap();
    let mut cmd = agent(
        &state,
        &["enroll", "--collector", &collector.url(), "--token", &token],
    );
    cmd.env("KAOQIN_MACHINE_ID", name);
    run_ok(cmd, LIMIT).unwrap();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        "[uplink]\nbatch_max_events = 20\nbackoff_min_seconds = 1\nbackoff_max_seconds = 1\ncall_timeout_seconds = 5\n",
    )
    .unwrap();
    let replay = format!("replay:{}", fixture("day.jsonl").display());
    let mut cmd = agent(
        &state,
        &[
            "run",
            "--probe",
            &replay,
            "--once",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Sends everything hostile we know while three real agents deliver a day each;
/// checks each answer, then that the good agents' events are all stored once and
/// nothing of a refused batch is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_while_good_agents_deliver_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("c"), "127.0.0.1:0").unwrap();
    let goods: Vec<Command> = (1..=3)
        .map(|i| good_agent(dir.path(), &format!("good-{i}"), &collector))
        .collect();
    let runs: Vec<_> = goods
        .into_iter()
        .map(|cmd| tokio::task::spawn_blocking(move || run_bounded(cmd, LIMIT)))
        .collect();

    let token = collector.token().unwrap();
    let channel = Channel::from_shared(collector.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = Client::new(channel.clone());
    let me = enroll(&mut client, &token, "hostile").await.unwrap();
    let other = enroll(&mut client, &token, "bystander").await.unwrap();
    let t = now_ms() - 3_600_000;

    // Good: seqs 1, 2, 4, 5 (3 is skipped on purpose).
    let r = report(
        &mut client,
        &me,
        [1, 2, 4, 5].map(|s| unlock(s, t + s as i64)).to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.acked_seq, 5);

    let invalid: Vec<(&str, Vec<pb::Event>, &str)> = vec![
        (
            "an instant 11 minutes ahead",
            vec![unlock(6, t), unlock(7, now_ms() + 11 * 60_000)],
            "event seq 7: at_ms",
        ),
        (
            "an instant before 2020",
            vec![unlock(6, 1_500_000_000_000)],
            "event seq 6: at_ms",
        ),
        (
            "an unknown category",
            vec![unlock(6, t), usage(7, t, "casino")],
            "event seq 7: category",
        ),
        (
            "a seq that goes backwards",
            vec![unlock(2, t + 2), unlock(3, t + 3), unlock(6, t + 6)],
            "event seq 3: seq: goes backwards",
        ),
    ];
    for (what, events, want) in invalid {
        let s = report(&mut client, &me, events).await.unwrap_err();
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "{what}: {s:?}");
        assert!(s.message().starts_with(want), "{what}: {}", s.message());
    }

    // Another agent's id with my key; a wrong key.
    let body = pb::ReportRequest {
        agent_id: other.id.clone(),
        sent_at_ms: now_ms(),
        events: vec![unlock(6, t)],
        replay: true,
    };
    let s = client
        .report(authed(body.clone(), &me.id, &me.key))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    let s = client
        .report(authed(body, &other.id, &me.key))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");

    // Bytes that are not a ReportRequest, and a truncated frame.
    for (what, frame, code) in [
        (
            "wire type 7",
            "\0\0\0\0\x02\x0f\x01",
            Some(tonic::Code::InvalidArgument),
        ),
        (
            "length past the end",
            "\0\0\0\0\x03\x0a\x7f\x41",
            Some(tonic::Code::InvalidArgument),
        ),
        ("truncated frame", "\0\0\0\0\x10abc", None),
    ] {
        let mut raw = pb::agent_service_client::AgentServiceClient::new(RawBody {
            inner: channel.clone(),
            frame: frame.into(),
        });
        let body = pb::ReportRequest::default();
        let s = raw.report(authed(body, &me.id, &me.key)).await.unwrap_err();
        if let Some(code) = code {
            assert_eq!(s.code(), code, "{what}: {s:?}");
            assert!(
                s.message().contains("not a valid protobuf message"),
                "{what}: {}",
                s.message()
            );
        }
        eprintln!("{what}: {:?} {}", s.code(), s.message());
    }

    // Over the message size limit.
    let huge = pb::ReportRequest {
        agent_id: "x".repeat(5 * 1024 * 1024),
        sent_at_ms: now_ms(),
        events: vec![],
        replay: true,
    };
    let s = client
        .report(authed(huge, &me.id, &me.key))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::OutOfRange, "{s:?}");

    // A flood of resends: some are told to slow down, none stores anything new.
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let mut c = client.clone();
        let a = Enrolled {
            id: me.id.clone(),
            key: me.key.clone(),
        };
        flood.spawn(async move { report(&mut c, &a, vec![unlock(1, t + 1)]).await });
    }
    let mut exhausted = 0;
    while let Some(r) = flood.join_next().await {
        match r.unwrap() {
            Ok(r) => assert_eq!(r.acked_seq, 5),
            Err(s) if s.code() == tonic::Code::ResourceExhausted => exhausted += 1,
            // Shed as too many in flight: also "back off".
            Err(s) if s.code() == tonic::Code::Unavailable => {}
            Err(s) => panic!("flood: {s:?}"),
        }
    }
    assert!(
        exhausted > 0,
        "1000 reports at once stayed under the rate limit"
    );

    // The server still serves this agent once its bucket refills.
    let r = eventually_async(
        "served once the bucket refilled",
        Duration::from_secs(20),
        async || match report(&mut client, &me, vec![unlock(6, t + 6)]).await {
            Ok(r) => Some(r),
            Err(s) if s.code() == tonic::Code::ResourceExhausted => None,
            Err(s) => panic!("{s:?}"),
        },
    )
    .await;
    assert_eq!(r.acked_seq, 6);

    for run in runs {
        let out = run.await.unwrap().unwrap();
        assert!(
            out.status.success(),
            "a good agent failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let events = collector.events().unwrap();
    let mut keys: Vec<(String, u64)> = events
        .iter()
        .map(|e| {
            (
                e["agent_id"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(total, keys.len(), "count = count distinct");
    let mine: Vec<u64> = keys
        .iter()
        .filter(|(a, _)| *a == me.id)
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(
        mine,
        [1, 2, 4, 5, 6],
        "nothing of a refused batch is stored"
    );
    let chat: u64 = events
        .iter()
        .filter(|e| e["type"] == "usage" && e["category"] == "chat")
        .map(|e| e["active_seconds"].as_u64().unwrap())
        .sum();
    assert_eq!(chat, 3 * 1500, "every good agent's day arrived");
    let good_agents: std::collections::BTreeSet<&str> = keys
        .iter()
        .map(|(a, _)| a.as_str())
        .filter(|a| *a != me.id)
        .collect();
    assert_eq!(good_agents.len(), 3);
}

/// `agents revoke` while `serve` runs: the agent is refused within seconds, its
/// saved token cannot bring it back, a new token does and keeps its id; tokens
/// list without secrets and revoke by prefix; all of it is in the audit log.
#[tokio::test]
async fn revocation_made_by_the_cli_reaches_a_running_collector() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&dir.path().join("c"), "127.0.0.1:0").unwrap();
    let old = collector.token().unwrap();
    let mut client = Client::connect(collector.url()).await.unwrap();
    let me = enroll(&mut client, &old, "m-1").await.unwrap();
    let t = now_ms() - 60_000;
    report(&mut client, &me, vec![unlock(1, t)]).await.unwrap();

    let listed = run_ok(
        collector.cmd(&["agents", "list", "--format", "json"]),
        LIMIT,
    )
    .unwrap();
    let agents: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(agents[0]["id"], me.id.as_str());
    assert_eq!(agents[0]["max_seq"], 1);
    assert_eq!(agents[0]["revoked_ms"], serde_json::Value::Null);
    assert!(agents[0]["last_clock_offset_ms"].is_i64());

    run_ok(collector.cmd(&["agents", "revoke", &me.id]), LIMIT).unwrap();
    let refused = eventually_async(
        "refused after revocation",
        Duration::from_secs(10),
        async || report(&mut client, &me, vec![unlock(2, t + 2)]).await.err(),
    )
    .await;
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("revoked; enrol again"),
        "{refused:?}"
    );

    let s = enroll(&mut client, &old, "m-1").await.err().unwrap();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    assert!(s.message().contains("revoked"), "{s:?}");
    let fresh = collector.reenroll_token().unwrap();
    let again = enroll(&mut client, &fresh, "m-1").await.unwrap();
    assert_eq!(again.id, me.id, "the machine keeps its id");
    let r = report(&mut client, &again, vec![unlock(2, t + 2)])
        .await
        .unwrap();
    assert_eq!(r.acked_seq, 2);

    // Tokens: listed without the secret, revoked by hash prefix.
    let table = run_ok(collector.cmd(&["token", "list"]), LIMIT).unwrap();
    assert!(
        !table.contains(&fresh[4..]) && !table.contains(&old[4..]),
        "{table}"
    );
    let list = run_ok(collector.cmd(&["token", "list", "--format", "json"]), LIMIT).unwrap();
    let tokens: serde_json::Value = serde_json::from_str(&list).unwrap();
    let tokens = tokens.as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    let newest = tokens[0]["hash_prefix"].as_str().unwrap();
    assert_eq!(tokens[0]["uses"], 1);
    run_ok(collector.cmd(&["token", "revoke", &newest[..8]]), LIMIT).unwrap();
    let s = enroll(&mut client, &fresh, "m-2").await.err().unwrap();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);

    let log = run_ok(collector.cmd(&["audit", "list", "--format", "json"]), LIMIT).unwrap();
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "token.create",
            "agent.revoke",
            "token.create",
            "token.revoke"
        ]
    );
    let ok = run_ok(collector.cmd(&["audit", "verify"]), LIMIT).unwrap();
    assert!(ok.contains("intact: 4 records"), "{ok}");

    // The officer sees the revocation (now lifted) nowhere, the machine's enrolling
    // again once, and nothing else of an agent (items of agent `-` are the
    // calendar's, which depend on the date).
    let integrity = run_ok(collector.cmd(&["integrity", "--format", "json"]), LIMIT).unwrap();
    let items: Vec<serde_json::Value> = serde_json::from_str(&integrity).unwrap();
    let of_agents: Vec<&serde_json::Value> = items
        .iter()
        .filter(|i| i["agent_id"] != "-" && i["kind"] != "account_first_seen")
        .collect();
    assert_eq!(of_agents.len(), 1, "{integrity}");
    assert_eq!(of_agents[0]["kind"], "reenrolled", "{integrity}");
    assert_eq!(of_agents[0]["agent_id"], me.id.as_str(), "{integrity}");
}

fn sqlite3(db: &std::path::Path, sql: &str) {
    let mut cmd = Command::new("sqlite3");
    cmd.arg(db).arg(sql);
    run_ok(cmd, LIMIT).expect("the sqlite3 command line tool is needed to tamper with the file");
}

/// Someone with write access to the database file drops the triggers and edits
/// or deletes an audit record: `audit verify` fails naming the first bad record.
#[test]
fn audit_verify_names_an_edited_or_removed_record() {
    for (tamper, bad) in [
        (
            "UPDATE audit_log SET detail = '{\"note\":\"nothing\"}' WHERE id = 2",
            2,
        ),
        ("DELETE FROM audit_log WHERE id = 2", 3),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("c");
        for note in ["a", "b", "c"] {
            let mut c = Command::new(bin("kaoqin-collector"));
            c.args(["token", "create", "--note", note, "--data-dir"])
                .arg(&data);
            run_ok(c, LIMIT).unwrap();
        }
        let verify = || {
            let mut c = Command::new(bin("kaoqin-collector"));
            c.args(["audit", "verify", "--data-dir"]).arg(&data);
            run_bounded(c, LIMIT).unwrap()
        };
        assert!(verify().status.success());
        let db = data.join("kaoqin.db");
        sqlite3(
            &db,
            "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
        );
        sqlite3(&db, tamper);
        let out = verify();
        assert!(!out.status.success(), "{tamper}: verify passed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("broken at record {bad}:")),
            "{tamper}: {err}"
        );
    }
}

#[test]
fn a_kept_head_hash_detects_records_cut_off_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("c");
    let cli = |args: &[&str]| {
        let mut c = Command::new(bin("kaoqin-collector"));
        c.args(args).arg("--data-dir").arg(&data);
        run_bounded(c, LIMIT).unwrap()
    };
    for note in ["a", "b", "c"] {
        assert!(cli(&["token", "create", "--note", note]).status.success());
    }
    let out = String::from_utf8_lossy(&cli(&["audit", "verify"]).stdout).into_owned();
    let head = out
        .trim()
        .rsplit(' ')
        .next()
        .expect("the head hash ends the line")
        .to_owned();
    assert!(out.contains("intact: 3 records"), "{out}");
    // More records later: the kept head is still in the log.
    assert!(cli(&["token", "create", "--note", "d"]).status.success());
    assert!(cli(&["audit", "verify", "--head", &head]).status.success());
    // The last two are cut off: the chain that is left is intact, but the kept
    // head says records are missing.
    let db = data.join("kaoqin.db");
    sqlite3(
        &db,
        "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id >= 3;",
    );
    assert!(
        cli(&["audit", "verify"]).status.success(),
        "what is left is a chain"
    );
    let out = cli(&["audit", "verify", "--head", &head]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("audit log cut") && err.contains(&head),
        "{err}"
    );
}

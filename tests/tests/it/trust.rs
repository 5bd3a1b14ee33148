//! Evidence nobody can forge, against a real collector started as in production
//! (no `--allow-replay`): a staff member with one PC's agent key (read from its
//! enrolment.json) tries to write another account's past, to poison the PC's seq,
//! and to take the PC's identity with an enrolment token. Each attempt is refused,
//! changes no verdict, and is named by `kaoqin-collector integrity`; the PC's real
//! data keeps arriving.

use kaoqin_proto::v1 as pb;
use kaoqin_tests::{Collector, agent, fixture, run_bounded, run_ok};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// The tests' clock: it starts on a Wednesday whatever day they run, and
/// their collectors' clocks are set from it (`KAOQIN_NOW`), so "last Monday"
/// and the days judged are always the same.
fn now() -> jiff::Timestamp {
    static STARTED: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    let since = jiff::SignedDuration::try_from(STARTED.elapsed()).unwrap();
    "2026-11-25T10:00:00+08:00"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .checked_add(since)
        .unwrap()
}

fn now_ms() -> i64 {
    now().as_millisecond()
}

fn logon(seq: u64, at_ms: i64, account: &str) -> pb::Event {
    pb::Event {
        seq,
        at_ms,
        kind: Some(pb::event::Kind::Session(pb::SessionEvent {
            kind: pb::SessionKind::Logon as i32,
            account: account.into(),
        })),
    }
}

fn heartbeat(seq: u64, at_ms: i64) -> pb::Event {
    pb::Event {
        seq,
        at_ms,
        kind: Some(pb::event::Kind::Heartbeat(pb::Heartbeat {
            interval_seconds: 60,
            accounts: vec!["zhangsan".into()],
        })),
    }
}

/// The agent id and key an enrolled state dir holds, as anyone who can read the
/// file has them.
fn stolen_key(state: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(state.join("enrolment.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    (
        v["agent_id"].as_str().unwrap().to_owned(),
        v["agent_key"].as_str().unwrap().to_owned(),
    )
}

async fn report(
    url: &str,
    (id, key): &(String, String),
    events: Vec<pb::Event>,
    replay: bool,
) -> Result<pb::ReportResponse, tonic::Status> {
    let mut client = pb::agent_service_client::AgentServiceClient::connect(url.to_owned())
        .await
        .unwrap();
    let mut req = tonic::Request::new(pb::ReportRequest {
        agent_id: id.clone(),
        sent_at_ms: now_ms(),
        events,
        replay,
    });
    req.metadata_mut()
        .insert(kaoqin_proto::AGENT_ID_HEADER, id.parse().unwrap());
    req.metadata_mut().insert(
        kaoqin_proto::AUTHORIZATION_HEADER,
        format!("Bearer {key}").parse().unwrap(),
    );
    client.report(req).await.map(tonic::Response::into_inner)
}

/// The day report's row of `id` on `date`, judged a quarter of an hour from now
/// (the PC in these tests runs five minutes ahead).
fn day_of(c: &Collector, date: &str, id: &str) -> serde_json::Value {
    let now = jiff::Timestamp::from_millisecond(now_ms() + 15 * 60_000)
        .unwrap()
        .to_string();
    let out = run_ok(
        c.cmd(&[
            "report", "daily", "--date", date, "--format", "json", "--now", &now,
        ]),
        LIMIT,
    )
    .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.into_iter()
        .find(|r| r["employee_id"] == id)
        .unwrap_or_else(|| panic!("{id} missing"))
}

fn integrity(c: &Collector) -> Vec<serde_json::Value> {
    let out = run_ok(c.cmd(&["integrity", "--format", "json"]), LIMIT).unwrap();
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_key_cannot_write_the_past_poison_seqs_or_take_a_pc() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start_strict_at(&dir.path().join("c"), "127.0.0.1:0", now()).unwrap();
    let staff = fixture("staff.csv");
    run_ok(c.cmd(&["staff", "import", staff.to_str().unwrap()]), LIMIT).unwrap();
    let state = dir.path().join("pc1");
    let token = c.token().unwrap();
    let mut enroll = agent(
        &state,
        &["enroll", "--collector", &c.url(), "--token", &token],
    );
    enroll.env("KAOQIN_MACHINE_ID", "pc-0231-machine");
    run_ok(enroll, LIMIT).unwrap();
    let key = stolen_key(&state);
    let url = c.url();

    // The PC's own day so far: zhangsan logged on. (Stamped five minutes ahead,
    // within what the collector takes, so that a forgery can lie after the
    // enrolment and still before what the PC delivered.)
    let first = 1_000u64;
    let t = now_ms() + 5 * 60_000;
    report(
        &url,
        &key,
        vec![
            logon(first, t - 60_000, "zhangsan"),
            heartbeat(first + 1, t),
        ],
        false,
    )
    .await
    .unwrap();

    // lisi (E002) on last Monday at 08:25, sent "now" with the PC's real key.
    let date = "2026-11-16";
    let backdated: jiff::Timestamp = format!("{date}T08:25:00+08:00").parse().unwrap();
    let before = day_of(&c, date, "E002");
    assert_eq!(before["status"], "unknown", "{before:#}");
    let forged = logon(first + 2, backdated.as_millisecond(), "lisi");
    // Claiming to be a replay changes nothing on a production collector.
    for replay in [false, true] {
        let refused = report(&url, &key, vec![forged.clone()], replay)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        let m = refused.message();
        // The instant as the collector corrected it by the PC's clock offset:
        // their clocks agree to within the moments the collector took to start.
        let claimed: jiff::Timestamp = m
            .strip_prefix(&format!("event seq {}: at_ms: ", first + 2))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("names the seq and the instant: {m}"));
        assert!(
            claimed.duration_since(backdated).abs() < jiff::SignedDuration::from_secs(10),
            "{m}"
        );
        assert!(
            m.contains("(corrected) is before this agent first enrolled at"),
            "names both instants: {m}"
        );
    }
    // The verdict is unchanged, and its evidence says what was refused.
    let after = day_of(&c, date, "E002");
    for field in [
        "status",
        "arrival",
        "departure",
        "late_minutes",
        "early_minutes",
    ] {
        assert_eq!(after[field], before[field], "{field}: {after:#}");
    }
    assert!(
        after["evidence"]
            .to_string()
            .contains("an event of lisi claimed for this instant was refused by the collector"),
        "{after:#}"
    );
    // Nor can today be rewritten: lisi "logged on" after the enrolment but four
    // minutes before what the PC already delivered.
    let earlier = logon(first + 2, t - 4 * 60_000, "lisi");
    let refused = report(&url, &key, vec![earlier], false).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("is earlier than this agent's latest stored event at"),
        "{refused:?}"
    );

    // Seq poisoning: one heartbeat numbered 2^63-1 is refused, and the PC's next
    // real batch still goes in.
    let poison = report(
        &url,
        &key,
        vec![heartbeat(i64::MAX as u64, now_ms())],
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(poison.code(), tonic::Code::InvalidArgument, "{poison:?}");
    let next = report(&url, &key, vec![heartbeat(first + 2, t + 1_000)], false)
        .await
        .unwrap();
    assert_eq!(next.acked_seq, first + 2);

    // Taking the PC's identity with a token for new machines (the default).
    let token = c.token().unwrap();
    let thief = dir.path().join("thief");
    let mut take = agent(&thief, &["enroll", "--collector", &url, "--token", &token]);
    take.env("KAOQIN_MACHINE_ID", "pc-0231-machine");
    let out = run_bounded(take, LIMIT).unwrap();
    assert!(!out.status.success(), "the takeover must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already enrolled") && stderr.contains("--reenroll"),
        "{stderr}"
    );
    // The real key still works.
    report(&url, &key, vec![heartbeat(first + 3, t + 2_000)], false)
        .await
        .unwrap();

    // lisi really sits down at this PC today (sent as it happens): presence counts,
    // and the officer sees an account new to the PC, on the list and in lisi's day.
    report(&url, &key, vec![logon(first + 4, t + 3_000, "lisi")], false)
        .await
        .unwrap();
    // The attendance day of the logon: before 04:00 it is the previous date's.
    let today = kaoqin_collector::attendance::attendance_date(
        jiff::Timestamp::from_millisecond(t + 3_000).unwrap(),
        &kaoqin_collector::attendance::Settings::default(),
    )
    .to_string();
    let day = day_of(&c, &today, "E002");
    assert!(
        day["evidence"]
            .to_string()
            .contains("lisi first seen on this PC"),
        "{day:#}"
    );

    // Every attempt is on the officer's list, with the PC's name.
    let items = integrity(&c);
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        items.iter().filter(|i| i["kind"] == kind).collect()
    };
    let refused = of("refused");
    assert_eq!(refused.len(), 4, "{items:#?}");
    assert!(
        refused
            .iter()
            .all(|i| i["hostname"].as_str().is_some_and(|h| !h.is_empty())),
        "{refused:#?}"
    );
    assert!(
        refused.iter().any(|i| i["seq"] == first + 2
            && i["detail"]
                .as_str()
                .unwrap()
                .contains("history cannot be written")),
        "{refused:#?}"
    );
    assert!(refused.iter().any(|i| i["seq"] == i64::MAX), "{refused:#?}");
    let takeover = of("reenrol_refused");
    assert_eq!(takeover.len(), 1, "{items:#?}");
    let firsts = of("account_first_seen");
    assert!(
        firsts.iter().any(|i| i["detail"]
            .as_str()
            .unwrap()
            .starts_with("lisi (李四, E002) first seen on")),
        "{firsts:#?}"
    );
    let table = run_ok(c.cmd(&["integrity"]), LIMIT).unwrap();
    assert!(
        table.contains("counts: ") && table.contains("refused 4"),
        "{table}"
    );
}

#[test]
fn a_reinstall_needs_a_reenroll_token_and_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start_strict_at(&dir.path().join("c"), "127.0.0.1:0", now()).unwrap();
    let enroll = |state: &str, token: &str| {
        let mut cmd = agent(
            &dir.path().join(state),
            &["enroll", "--collector", &c.url(), "--token", token],
        );
        cmd.env("KAOQIN_MACHINE_ID", "pc-0232-machine");
        run_bounded(cmd, LIMIT).unwrap()
    };
    assert!(enroll("first", &c.token().unwrap()).status.success());
    let out = run_ok(
        c.cmd(&[
            "token",
            "create",
            "--reenroll",
            "--uses",
            "1",
            "--note",
            "reinstall",
        ]),
        LIMIT,
    )
    .unwrap();
    let again = enroll("reinstalled", out.trim());
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let items = integrity(&c);
    assert!(
        items.iter().any(|i| i["kind"] == "reenrolled"),
        "{items:#?}"
    );
    // What each token was used for.
    let list = run_ok(c.cmd(&["token", "list", "--format", "json"]), LIMIT).unwrap();
    let tokens: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let reinstall = tokens.iter().find(|t| t["note"] == "reinstall").unwrap();
    assert_eq!(reinstall["reenroll"], true);
    assert_eq!(reinstall["max_uses"], 1);
    assert_eq!(
        reinstall["used_for"].as_array().unwrap().len(),
        1,
        "{reinstall:#}"
    );
    assert!(
        reinstall["used_for"][0]
            .as_str()
            .unwrap()
            .ends_with("(again)"),
        "{reinstall:#}"
    );
    let first = tokens.iter().find(|t| t["note"] != "reinstall").unwrap();
    assert_eq!(first["reenroll"], false);
    assert_eq!(first["max_uses"], 100, "bounded by default: {first:#}");
}

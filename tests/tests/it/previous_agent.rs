//! An agent of the previous release keeps working against this collector: its
//! messages, encoded with that release's frozen protocol (`tests/proto/previous/`,
//! without the `replay` flag and the `clock_jump` event added since), are taken by
//! this collector, stored as sent, and its policy requests answered with the
//! office's rules.

use crate::util::authed;
use kaoqin_tests::Collector;
use kaoqin_tests::previous as old;
use old::agent_service_client::AgentServiceClient;
use std::time::Duration;

fn event(seq: u64, at_ms: i64, kind: old::event::Kind) -> old::Event {
    old::Event {
        seq,
        at_ms,
        kind: Some(kind),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_of_the_previous_release_enrols_reports_and_gets_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    // The office's own rule, which the old agent must receive.
    let c = Collector::start_configured(
        &dir.path().join("collector"),
        "127.0.0.1:0",
        "[[agents.category]]\ncategory = \"chat\"\nprocess_patterns = [\"wechat*\"]\n",
    )
    .unwrap();
    let token = c.token().unwrap();
    let mut client = AgentServiceClient::connect(c.url()).await.unwrap();
    let enrolled = client
        .enroll(old::EnrollRequest {
            token,
            host: Some(old::HostFacts {
                machine_id: "previous-release-pc".into(),
                hostname: "pc-old".into(),
                os: "windows".into(),
                os_version: "10.0.19045".into(),
                agent_version: "0.1.0".into(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(enrolled.agent_id.starts_with("ag-"), "{enrolled:?}");

    // A live day's beginning, stamped now as a real agent stamps it.
    let now = jiff::Timestamp::now().as_millisecond();
    let account = "OFFICE\\zhaoliu";
    let events = vec![
        event(
            1,
            now - 4_000,
            old::event::Kind::Lifecycle(old::Lifecycle {
                kind: old::LifecycleKind::Start as i32,
                reason: old::LifecycleReason::SystemBoot as i32,
                agent_version: "0.1.0".into(),
                previous_seen_ms: 0,
            }),
        ),
        event(
            2,
            now - 3_000,
            old::event::Kind::Session(old::SessionEvent {
                kind: old::SessionKind::Logon as i32,
                account: account.into(),
            }),
        ),
        event(
            3,
            now - 2_000,
            old::event::Kind::Heartbeat(old::Heartbeat {
                interval_seconds: 60,
                accounts: vec![account.into()],
            }),
        ),
        event(
            4,
            now - 1_000,
            old::event::Kind::Usage(old::UsageEvent {
                account: account.into(),
                start_ms: now - 2_000,
                end_ms: now - 1_000,
                category: "chat".into(),
                active_seconds: 1,
                basis: old::UsageBasis::Foreground as i32,
            }),
        ),
        event(
            5,
            now - 500,
            old::event::Kind::DataGap(old::DataGap {
                dropped_events: 2,
                from_ms: now - 900,
                to_ms: now - 600,
                reason: "spool_full".into(),
            }),
        ),
    ];
    let reply = client
        .report(authed(
            old::ReportRequest {
                agent_id: enrolled.agent_id.clone(),
                sent_at_ms: now,
                events,
            },
            &enrolled.agent_id,
            &enrolled.agent_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.acked_seq, 5, "{reply:?}");
    let policy = client
        .get_policy(authed(
            old::GetPolicyRequest { known_version: 0 },
            &enrolled.agent_id,
            &enrolled.agent_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(policy.version > 0, "{policy:?}");
    assert!(
        policy
            .rules
            .iter()
            .any(|r| r.category == "chat" && r.process_patterns == ["wechat*"]),
        "{policy:?}"
    );
    assert!(policy.heartbeat_seconds > 0, "{policy:?}");

    let stored = kaoqin_tests::eventually("the events stored", Duration::from_secs(30), || {
        let e = c.events().unwrap();
        (e.len() == 5).then_some(e)
    });
    let kinds: Vec<&str> = stored
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        kinds,
        ["lifecycle", "session", "heartbeat", "usage", "data_gap"],
        "{stored:#?}"
    );
    assert_eq!(stored[1]["account"], account);
    assert_eq!(stored[3]["category"], "chat");
    assert_eq!(stored[4]["dropped_events"], 2, "{:#}", stored[4]);
}

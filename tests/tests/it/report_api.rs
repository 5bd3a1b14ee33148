//! The gRPC ReportService: per-user API tokens, the same access rule as the web
//! pages, PermissionDenied for another person's record, and audited views.

use kaoqin_proto::v1 as pb;
use kaoqin_tests::{Collector, agent, collector_on, fixture, run_ok};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn cli(data: &Path, args: &[&str]) -> String {
    run_ok(collector_on(data, args), LIMIT)
        .unwrap()
        .trim()
        .to_owned()
}

fn ask<T>(body: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    r.metadata_mut().insert(
        kaoqin_proto::AUTHORIZATION_HEADER,
        format!("Bearer {token}").parse().unwrap(),
    );
    r
}

fn days(employee: &str) -> pb::GetPersonDaysRequest {
    pb::GetPersonDaysRequest {
        employee_id: employee.into(),
        from: "2026-11-24".into(),
        to: "2026-11-24".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_get_reports_over_grpc_within_their_rights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("c");
    let collector = Collector::start(&data, "127.0.0.1:0").unwrap();
    cli(
        &data,
        &["staff", "import", fixture("staff.csv").to_str().unwrap()],
    );
    let state = dir.path().join("pc");
    let token = collector.token().unwrap();
    run_ok(
        agent(
            &state,
            &["enroll", "--collector", &collector.url(), "--token", &token],
        ),
        LIMIT,
    )
    .unwrap();
    let replay = format!("replay:{}", fixture("day.jsonl").display());
    run_ok(agent(&state, &["run", "--probe", &replay, "--once"]), LIMIT).unwrap();

    cli(
        &data,
        &["user", "add", "--username", "officer", "--role", "officer"],
    );
    cli(
        &data,
        &[
            "user",
            "add",
            "--username",
            "lisi",
            "--role",
            "staff",
            "--employee",
            "E002",
        ],
    );
    let officer = cli(&data, &["user", "token", "create", "--username", "officer"]);
    let lisi = cli(&data, &["user", "token", "create", "--username", "lisi"]);

    let mut client = pb::report_service_client::ReportServiceClient::connect(collector.url())
        .await
        .unwrap();

    // The officer sees 张三's day with the documented numbers.
    let got = client
        .get_person_days(ask(days("E001"), &officer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.days.len(), 1);
    let d = &got.days[0];
    assert_eq!(
        (d.status.as_str(), d.late_minutes, d.early_minutes),
        ("present", 11, 10)
    );
    assert_eq!(d.arrival, "2026-11-24T00:41:00Z");
    assert_eq!(d.nonwork_seconds.get("chat"), Some(&1500));
    assert!(d.record_json.contains("evidence"));
    let daily = client
        .get_daily(ask(
            pb::GetDailyRequest {
                date: "2026-11-24".into(),
                department: String::new(),
            },
            &officer,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(daily.days.len(), 3);

    // A staff member: their own record only, whatever they ask for.
    let own = client
        .get_person_days(ask(days("E002"), &lisi))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.days[0].employee_id, "E002");
    for other in ["E001", "E003", "E999"] {
        let s = client
            .get_person_days(ask(days(other), &lisi))
            .await
            .unwrap_err();
        assert_eq!(s.code(), tonic::Code::PermissionDenied, "{other}: {s:?}");
    }
    let s = client
        .get_daily(ask(
            pb::GetDailyRequest {
                date: "2026-11-24".into(),
                department: "办公室".into(),
            },
            &lisi,
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::PermissionDenied);
    let mine = client
        .get_daily(ask(
            pb::GetDailyRequest {
                date: "2026-11-24".into(),
                department: String::new(),
            },
            &lisi,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        mine.days
            .iter()
            .map(|d| d.employee_id.as_str())
            .collect::<Vec<_>>(),
        ["E002"]
    );

    // No token, a wrong token, a malformed date.
    let s = client
        .get_person_days(tonic::Request::new(days("E001")))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    let s = client
        .get_person_days(ask(days("E001"), "forged"))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    let mut bad = days("E001");
    bad.from = "24/11/2026".into();
    let s = client
        .get_person_days(ask(bad, &officer))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(s.message().contains("from"), "{s:?}");

    // The officer's views of others are in the audit log; lisi's own view is not.
    let audit = cli(&data, &["audit", "list", "--format", "json"]);
    assert!(
        audit.contains("grpc days 2026-11-24..2026-11-24") && audit.contains("grpc:officer"),
        "{audit}"
    );
    assert!(!audit.contains("grpc:lisi"), "{audit}");
    cli(&data, &["audit", "verify"]);
}

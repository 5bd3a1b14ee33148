//! Requests end to end over HTTP with API tokens: filed, seen, decided and
//! cancelled by the people allowed to, refused for everyone else, and turned
//! into the verdict and the monthly sheet once approved.

use kaoqin_tests::{Collector, fixture, run_ok};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Missed punches may concern any day of the last hundred years, so that the
/// fixture day stays within the window whatever today is.
const CONFIG: &str = "[requests]\nmissed_punch_days = 36500\n";

fn cli(c: &Collector, args: &[&str]) -> String {
    run_ok(c.cmd(args), LIMIT).unwrap()
}

/// Someone calling the JSON API with their API token.
struct Caller {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Caller {
    /// An account of `role` past its first login (the one-time password changed
    /// in the browser's way), with an API token.
    async fn new(c: &Collector, username: &str, role: &[&str]) -> Caller {
        let mut add = vec!["user", "add", "--username", username, "--role"];
        add.extend_from_slice(role);
        let once = cli(c, &add).trim().to_owned();
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let r = browser
            .post(format!("{}/login", c.web()))
            .form(&form(&[("username", username), ("password", &once)]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "login of {username}");
        let new = format!("{username}-pass-2026");
        let r = browser
            .post(format!("{}/password", c.web()))
            .form(&form(&[
                ("current", &once),
                ("new", &new),
                ("confirm", &new),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "password of {username}");
        Caller {
            http: reqwest::Client::new(),
            base: c.web(),
            token: cli(c, &["user", "token", "create", "--username", username])
                .trim()
                .to_owned(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.bearer_auth(&self.token).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn page(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn file(&self, body: Value) -> (u16, Value) {
        self.post("/api/v1/requests", body).await
    }

    async fn decide(&self, id: i64, decision: &str) -> (u16, Value) {
        self.post(
            &format!("/api/v1/requests/{id}/decision"),
            json!({"decision": decision, "comment": "checked"}),
        )
        .await
    }

    async fn cancel(&self, id: i64) -> (u16, Value) {
        self.post(&format!("/api/v1/requests/{id}/cancel"), json!({}))
            .await
    }

    /// E001's verdict of one day, as an officer's API call returns it.
    async fn day(&self, date: &str) -> Value {
        let (s, days) = self
            .get(&format!("/api/v1/person/E001/days?from={date}&to={date}"))
            .await;
        assert_eq!(s, 200, "{days}");
        days[0].clone()
    }
}

fn id_of(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

/// The cells of the first sheet of an XLSX file, as text, by (row, column).
fn xlsx_cells(path: &Path) -> Vec<Vec<String>> {
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let name = wb.sheet_names()[0].clone();
    let range = wb.worksheet_range(&name).unwrap();
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_filed_decided_and_enter_the_record_and_the_monthly_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start_web(&dir.path().join("collector"), CONFIG).unwrap();
    cli(
        &c,
        &["staff", "import", fixture("staff.csv").to_str().unwrap()],
    );
    c.replay_fixture(&dir.path().join("pc"), "day.jsonl")
        .unwrap();
    let balances = dir.path().join("balances.csv");
    std::fs::write(
        &balances,
        "employee_id,year,leave_type,days\nE001,2026,annual,3\n",
    )
    .unwrap();
    let out = cli(
        &c,
        &["leave", "balance", "import", balances.to_str().unwrap()],
    );
    assert!(out.contains("Imported 1 leave balances"), "{out}");
    let zhangsan = Caller::new(&c, "zhangsan", &["staff", "--employee", "E001"]).await;
    let lisi = Caller::new(&c, "lisi", &["staff", "--employee", "E002"]).await;
    let wang = Caller::new(&c, "wang", &["dept-head", "--department", "办公室"]).await;
    let zhao = Caller::new(&c, "zhao", &["dept-head", "--department", "信息中心"]).await;
    let li = Caller::new(&c, "li", &["officer"]).await;

    // Before: 张三 logged on at 08:41 on 24 November, 11 minutes late.
    assert_eq!(li.day("2026-11-24").await["late_minutes"], 11);

    // Filed by the person: a missed punch and a day of annual leave.
    let (s, punch) = zhangsan
        .file(
            json!({"kind": "missed_punch", "punch": "arrival", "at": "2026-11-24T08:20",
                     "reason": "at the front desk from 08:20"}),
        )
        .await;
    assert_eq!(s, 201, "{punch}");
    assert_eq!(
        (
            &punch["status"],
            &punch["kind"],
            &punch["employee_id"],
            &punch["steps"]
        ),
        (
            &json!("pending"),
            &json!("missed_punch"),
            &json!("E001"),
            &json!(1)
        )
    );
    let (s, leave) = zhangsan
        .file(
            json!({"kind": "leave", "leave_type": "annual", "from": "2026-11-25",
                     "to": "2026-11-25", "reason": "family"}),
        )
        .await;
    assert_eq!(s, 201, "{leave}");
    assert_eq!(
        (&leave["days"], &leave["from"]),
        (&json!(1.0), &json!("2026-11-25T00:00:00+08:00"))
    );

    // The denials, each with its reason.
    let (s, e) = zhangsan.decide(id_of(&punch), "approve").await;
    assert_eq!(s, 403, "own request: {e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("nobody decides their own"),
        "{e}"
    );
    assert_eq!(
        lisi.decide(id_of(&punch), "approve").await.0,
        403,
        "a colleague"
    );
    assert_eq!(
        zhao.decide(id_of(&punch), "approve").await.0,
        403,
        "another department's head"
    );
    let (s, e) = zhangsan
        .file(
            json!({"kind": "leave", "leave_type": "annual", "from": "2026-11-26",
                     "to": "2026-11-30", "reason": "trip home"}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["detail"].as_str().unwrap().contains(
            "the annual balance for 2026 is 3 days, 1 taken or asked for, 2 left; this request is 3 days"
        ),
        "{e}"
    );
    let (s, e) = zhangsan
        .file(
            json!({"kind": "missed_punch", "punch": "arrival", "at": "1900-01-02T08:20",
                     "reason": "late filing"}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("more than 36500 days ago"),
        "{e}"
    );
    let (s, e) = zhangsan
        .file(
            json!({"kind": "missed_punch", "punch": "arrival", "at": "2100-01-04T08:20",
                     "reason": "future"}),
        )
        .await;
    assert_eq!((s, &e["parameter"]), (400, &json!("at")), "{e}");
    let (s, e) = zhangsan
        .file(json!({"kind": "holiday", "from": "2026-11-25", "to": "2026-11-25", "reason": "x"}))
        .await;
    assert_eq!((s, &e["parameter"]), (400, &json!("kind")), "{e}");
    let (s, _) = zhangsan
        .file(
            json!({"kind": "field", "employee_id": "E003", "from": "2026-11-25",
                     "to": "2026-11-25", "reason": "for a colleague"}),
        )
        .await;
    assert_eq!(s, 403, "staff file only their own");
    let (s, _) = wang
        .file(
            json!({"kind": "field", "employee_id": "E003", "from": "2026-11-25",
                     "to": "2026-11-25", "reason": "out of scope"}),
        )
        .await;
    assert_eq!(s, 403, "a head files only in their department");
    let (s, bad) = zhangsan.post("/api/v1/requests", json!({"kind": 7})).await;
    assert_eq!((s, &bad["parameter"]), (400, &json!("kind")), "{bad}");

    // Who sees what.
    let ids = |v: &Value| -> Vec<i64> {
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect()
    };
    assert!(ids(&lisi.get("/api/v1/requests").await.1).is_empty());
    assert!(ids(&zhao.get("/api/v1/requests").await.1).is_empty());
    assert_eq!(
        ids(&wang.get("/api/v1/requests?status=pending").await.1),
        [id_of(&leave), id_of(&punch)]
    );
    let (s, e) = li.get("/api/v1/requests?status=maybe").await;
    assert_eq!((s, &e["parameter"]), (400, &json!("status")), "{e}");

    // The head approves: the punch becomes the arrival, the leave the day.
    let (s, r) = wang.decide(id_of(&punch), "approve").await;
    assert_eq!((s, &r["status"]), (200, &json!("approved")), "{r}");
    assert_eq!(r["decisions"][0]["by"], "wang");
    let day = li.day("2026-11-24").await;
    assert_eq!(day["late_minutes"], 0, "{day}");
    assert_eq!(day["arrival"], "2026-11-24T00:20:00Z");
    assert!(
        day["evidence"]
            .to_string()
            .contains("missed punch: request"),
        "{day}"
    );
    assert_eq!(li.day("2026-11-25").await["status"], "unknown");
    assert_eq!(wang.decide(id_of(&leave), "approve").await.0, 200);
    assert_eq!(li.day("2026-11-25").await["status"], "leave");
    assert_eq!(
        wang.decide(id_of(&leave), "reject").await.0,
        400,
        "decided already"
    );

    // Sick leave over three days needs the officer after the head.
    let (s, sick) = zhangsan
        .file(
            json!({"kind": "leave", "leave_type": "sick", "from": "2026-12-01",
                     "to": "2026-12-04", "reason": "flu"}),
        )
        .await;
    assert_eq!((s, &sick["steps"]), (201, &json!(2)), "{sick}");
    let (_, r) = wang.decide(id_of(&sick), "approve").await;
    assert_eq!(r["status"], "pending");
    assert_eq!(
        wang.decide(id_of(&sick), "approve").await.0,
        403,
        "not the head twice"
    );
    let (_, r) = li.decide(id_of(&sick), "approve").await;
    assert_eq!(
        (&r["status"], r["decisions"].as_array().unwrap().len()),
        (&json!("approved"), 2)
    );

    // Cancelling: the requester while pending; an approver once approved.
    let (_, field) = zhangsan
        .file(
            json!({"kind": "field", "from": "2026-11-27T09:00", "to": "2026-11-27T11:00",
                     "reason": "site visit"}),
        )
        .await;
    assert_eq!(lisi.cancel(id_of(&field)).await.0, 403);
    let (s, r) = zhangsan.cancel(id_of(&field)).await;
    assert_eq!((s, &r["status"]), (200, &json!("cancelled")), "{r}");
    assert_eq!(
        zhangsan.cancel(id_of(&leave)).await.0,
        403,
        "an approved one is the approver's"
    );

    // The monthly sheet after the approvals: opened and read cell by cell.
    let sheet = dir.path().join("monthly.xlsx");
    cli(
        &c,
        &[
            "report",
            "monthly",
            "--month",
            "2026-11",
            "--department",
            "办公室",
            "--format",
            "xlsx",
            "--out",
            sheet.to_str().unwrap(),
            "--now",
            "2026-12-01T00:00:00Z",
        ],
    );
    let cells = xlsx_cells(&sheet);
    assert!(
        cells[0][0].starts_with("考勤月报 2026-11 办公室"),
        "{:?}",
        cells[0]
    );
    let header = &cells[2];
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} in {header:?}"))
    };
    let day_col = |d: u32| col(&d.to_string());
    let row = cells
        .iter()
        .find(|r| r.first().map(String::as_str) == Some("E001"))
        .expect("E001's row");
    assert_eq!(row[1], "张三");
    assert_eq!(row[day_col(24)], "早", "late is gone, early is not");
    assert_eq!(row[day_col(25)], "假");
    assert_eq!(row[day_col(28)], "休");
    assert_eq!(row[col("迟到次数")], "0");
    assert_eq!(row[col("早退分钟")], "10");
    assert_eq!(row[col("请假天数")], "1");
    assert_eq!(row[col("年假(天)")], "1");
    assert!(cells[3][day_col(28)].contains('休'), "the day kinds row");
    assert!(
        cells.iter().any(|r| r.iter().any(|c| c.contains("制表人"))),
        "the signature line"
    );
    assert!(
        !cells
            .iter()
            .any(|r| r.first().map(String::as_str) == Some("E003"))
    );

    // The pages show it too.
    let (s, html) = zhangsan.page("/requests").await;
    assert_eq!(s, 200);
    assert!(
        html.contains(&format!("id=\"mine-{}\"", id_of(&leave))),
        "my requests"
    );
    assert!(
        html.contains("年假") && html.contains("id=\"balances\""),
        "balances"
    );
    let (s, html) = wang.page("/requests").await;
    assert_eq!(s, 200);
    assert!(!html.contains("id=\"inbox\""), "nothing waits for the head");
    let (s, html) = li.page("/monthly?month=2026-11").await;
    assert_eq!(s, 200);
    assert!(html.contains("id=\"row-E001\"") && html.contains("id=\"row-E003\""));
    assert_eq!(zhangsan.page("/monthly?month=2026-11").await.0, 403);
    let (s, csv) = li.page("/export/requests?kind=leave").await;
    assert_eq!(s, 200);
    assert!(
        csv.starts_with("id,employee_id,name,department,kind"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "two leave requests: {csv}");
    assert_eq!(zhangsan.page("/export/requests").await.0, 403);

    // Undoing an approval takes the leave out of the record again.
    let (s, r) = wang.cancel(id_of(&leave)).await;
    assert_eq!((s, &r["status"]), (200, &json!("cancelled")), "{r}");
    assert_eq!(li.day("2026-11-25").await["status"], "unknown");

    // Everything is in the audit log.
    let audit = cli(&c, &["audit", "list"]);
    for action in [
        "request.file",
        "request.approve",
        "verdict.correct",
        "request.cancel",
        "leave.balance_import",
    ] {
        assert!(audit.contains(action), "{action} in the audit log");
    }
    assert!(!audit.contains("request.reject"), "nothing was rejected");
}

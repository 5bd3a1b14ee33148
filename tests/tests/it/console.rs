//! The admin console over HTTP: the staff directory's upload (checked whole,
//! previewed, written only on confirmation), a person's form, agents and
//! enrolment tokens, accounts, the calendar; and each role's denials.

use kaoqin_tests::{Collector, fixture, run_ok};
use reqwest::multipart::{Form, Part};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// A signed-in browser (its one-time password changed), redirects not followed.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    async fn new(c: &Collector, username: &str, role: &[&str]) -> Browser {
        let mut add = vec!["user", "add", "--username", username, "--role"];
        add.extend_from_slice(role);
        let once = run_ok(c.cmd(&add), LIMIT).unwrap().trim().to_owned();
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let b = Browser {
            http,
            base: c.web(),
        };
        assert_eq!(
            b.form("/login", &[("username", username), ("password", &once)])
                .await
                .0,
            303
        );
        let new = format!("{username}-pass-2026");
        let r = b
            .form(
                "/password",
                &[("current", &once), ("new", &new), ("confirm", &new)],
            )
            .await;
        assert_eq!(r.0, 303, "{}", r.1);
        b
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn form(&self, path: &str, pairs: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .form(pairs)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn upload(
        &self,
        path: &str,
        name: &str,
        text: &str,
        extra: &[(&str, &str)],
    ) -> (u16, String) {
        let mut form = Form::new().part(
            "file",
            Part::bytes(text.as_bytes().to_vec())
                .file_name(name.to_owned())
                .mime_str("text/csv")
                .unwrap(),
        );
        for (k, v) in extra {
            form = form.text(k.to_string(), v.to_string());
        }
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// A collector serving the pages, with the fixture's staff directory.
fn office(dir: &std::path::Path) -> Collector {
    let c = Collector::start_web(&dir.join("collector"), "").unwrap();
    run_ok(
        c.cmd(&["staff", "import", fixture("staff.csv").to_str().unwrap()]),
        LIMIT,
    )
    .unwrap();
    c
}

/// The daily report's rows of `date`, judged as of 2026-12-01.
fn daily(c: &Collector, date: &str) -> Vec<serde_json::Value> {
    crate::util::daily(&|args| c.cmd(args), date, "2026-12-01T00:00:00Z")
}

/// E001's row of the daily report of 2026-11-24.
fn e001_on_the_24th(c: &Collector) -> serde_json::Value {
    daily(c, "2026-11-24")
        .into_iter()
        .find(|r| r["employee_id"] == "E001")
        .unwrap()
}

/// The value of the hidden `csv` field of the preview.
fn preview_csv(html: &str) -> String {
    let start = html
        .find("<textarea name=\"csv\" hidden>")
        .expect("a preview")
        + 28;
    let end = start + html[start..].find("</textarea>").unwrap();
    html[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_run_the_office_from_the_console_and_others_may_not() {
    let dir = tempfile::tempdir().unwrap();
    let c = office(dir.path());
    let admin = Browser::new(&c, "root", &["admin"]).await;
    let officer = Browser::new(&c, "li", &["officer", "--department", "办公室"]).await;
    let staff = Browser::new(&c, "zhangsan", &["staff", "--employee", "E001"]).await;
    let head = Browser::new(&c, "wang", &["dept-head", "--department", "办公室"]).await;

    // The language chosen on a page is remembered for what kaoqin sends.
    assert_eq!(admin.get("/admin/staff?lang=en").await.0, 200);
    let db = rusqlite::Connection::open(c.data_dir.join("kaoqin.db")).unwrap();
    let lang: Option<String> = db
        .query_row("SELECT lang FROM users WHERE username = 'root'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(lang.as_deref(), Some("en"));
    assert_eq!(admin.get("/admin/staff?lang=zh").await.0, 200);

    // The staff directory.
    let (s, html) = admin.get("/admin/staff").await;
    assert_eq!(s, 200);
    assert!(html.contains("id=\"staff-E003\"") && html.contains("id=\"upload\""));
    let (s, html) = admin.get("/admin/staff?q=%E7%8E%8B").await;
    assert_eq!(s, 200);
    assert!(
        html.contains("staff-E003") && !html.contains("staff-E001"),
        "search by name"
    );

    // An upload with a bad line: every problem named, nothing written.
    let bad = "employee_id,name,department,os_accounts,email\nE004,赵六,信息中心,zhaoliu,zhaoliu@office.test\nE005,孙七,信息中心,lisi,\nE006,,信息中心,zz,not-an-address\n";
    let (s, html) = admin
        .upload("/admin/staff/preview", "new-staff.csv", bad, &[])
        .await;
    assert_eq!(s, 400, "{html}");
    assert!(html.contains("id=\"problems\""), "{html}");
    assert!(
        html.contains("new-staff.csv: line 4: name: is empty"),
        "{html}"
    );
    assert!(html.contains("line 4: email"), "{html}");
    // An account that belongs to someone already in the directory.
    let clash = "employee_id,name,department,os_accounts\nE005,孙七,信息中心,lisi\n";
    let (s, html) = admin
        .upload("/admin/staff/preview", "new-staff.csv", clash, &[])
        .await;
    assert_eq!(s, 400, "{html}");
    assert!(
        html.contains("E005: os_accounts: &quot;lisi&quot; already belongs to E002 (李四)"),
        "{html}"
    );
    assert!(!admin.get("/admin/staff").await.1.contains("staff-E004"));
    // Fixed: a preview, then the import on confirmation only.
    let good = "employee_id,name,department,os_accounts,email\nE004,赵六,信息中心,zhaoliu,zhaoliu@office.test\nE003,王五,办公室,wangwu,\n";
    let (s, html) = admin
        .upload("/admin/staff/preview", "new-staff.csv", good, &[])
        .await;
    assert_eq!(s, 200, "{html}");
    assert!(
        html.contains("id=\"preview\"") && html.contains("department: 信息中心 → 办公室"),
        "{html}"
    );
    assert!(
        !admin.get("/admin/staff").await.1.contains("staff-E004"),
        "a preview writes nothing"
    );
    let csv = preview_csv(&html);
    assert_eq!(csv, good);
    let (s, _) = admin
        .form(
            "/admin/staff/import",
            &[("csv", &csv), ("file", "new-staff.csv")],
        )
        .await;
    assert_eq!(s, 303);
    let list = run_ok(c.cmd(&["staff", "list"]), LIMIT).unwrap();
    assert!(
        list.contains("E004,赵六,信息中心,zhaoliu,,zhaoliu@office.test"),
        "{list}"
    );
    assert!(list.contains("E003,王五,办公室,wangwu,,"), "{list}");
    // One person from the form, checked by the same rules.
    let (s, html) = admin
        .form(
            "/admin/staff/save",
            &[
                ("employee_id", "E007"),
                ("name", "周八"),
                ("department", "办公室"),
                ("email", "zhouba"),
            ],
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        html.contains("form: line 2: email: &quot;zhouba&quot; is not an e-mail address"),
        "{html}"
    );
    let (s, _) = admin
        .form(
            "/admin/staff/save",
            &[
                ("employee_id", "E007"),
                ("name", "周八"),
                ("department", "办公室"),
                ("os_accounts", "zhouba"),
            ],
        )
        .await;
    assert_eq!(s, 303);
    assert!(
        run_ok(c.cmd(&["staff", "list"]), LIMIT)
            .unwrap()
            .contains("E007,周八,办公室,zhouba")
    );

    // Agents and enrolment tokens.
    let (s, html) = admin
        .form(
            "/admin/tokens",
            &[("ttl_days", "7"), ("uses", "2"), ("note", "3rd floor")],
        )
        .await;
    assert_eq!(s, 200);
    let token = html
        .split("<pre>")
        .nth(1)
        .and_then(|t| t.split("</pre>").next())
        .expect("the token, shown once")
        .to_owned();
    assert!(token.starts_with("kq1-"), "{token}");
    assert!(html.contains("3rd floor"));
    let (s, html) = admin.form("/admin/tokens", &[("ttl_days", "0")]).await;
    assert_eq!(s, 400);
    assert!(html.contains("ttl_days"), "{html}");
    let listed = run_ok(c.cmd(&["token", "list"]), LIMIT).unwrap();
    assert!(listed.contains("3rd floor"), "{listed}");
    let prefix = &html_prefix(&admin.get("/admin/agents").await.1);
    assert_eq!(
        admin
            .form(&format!("/admin/tokens/{prefix}/revoke"), &[])
            .await
            .0,
        303
    );
    assert!(admin.get("/admin/agents").await.1.contains("已吊销"));

    // Accounts.
    let (s, html) = admin
        .form(
            "/admin/users",
            &[
                ("username", "zhao"),
                ("role", "officer"),
                ("departments", "信息中心"),
            ],
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        html.contains("id=\"created\"") && html.contains("zhao"),
        "{html}"
    );
    let (s, html) = admin.form("/admin/users/zhangsan/token", &[]).await;
    assert_eq!(s, 200);
    assert!(html.contains("id=\"api-token\""), "{html}");

    // Staff see none of the console (checked before their password is reset).
    for path in [
        "/admin/staff",
        "/admin/calendar",
        "/admin/schedules",
        "/admin/users",
    ] {
        assert_eq!(staff.get(path).await.0, 403, "{path}");
    }
    assert_eq!(
        staff
            .form(
                "/admin/staff/save",
                &[("employee_id", "E009"), ("name", "x"), ("department", "x")]
            )
            .await
            .0,
        403
    );
    assert_eq!(
        staff
            .upload("/admin/staff/preview", "s.csv", "x", &[])
            .await
            .0,
        403
    );

    // A password reset: a new one-time password, and the person's sessions end.
    assert_eq!(staff.get("/requests").await.0, 200);
    let (s, html) = admin.form("/admin/users/zhangsan/reset", &[]).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("id=\"created\"") && html.contains("zhangsan"),
        "{html}"
    );
    let (s, _) = staff.get("/requests").await;
    assert_eq!(s, 303, "the old session is gone");
    assert_eq!(
        officer.form("/admin/users/zhangsan/reset", &[]).await.0,
        403
    );
    let (_, html) = admin.get("/admin/agents").await;
    assert!(html.contains("近 7 天完整性事件"), "{html}");
    assert!(
        html.contains("本周覆盖率"),
        "each PC's coverage this week: {html}"
    );

    // The calendar: the official days, and a notice import checked whole.
    let (s, html) = admin.get("/admin/calendar?year=2026").await;
    assert_eq!(s, 200);
    assert!(
        html.contains("2026-10-01") && html.contains("holiday"),
        "{html}"
    );
    let (s, html) = admin
        .upload(
            "/admin/calendar/import",
            "2027.csv",
            "date,kind\n2027-13-01,holiday\n",
            &[("year", "2027")],
        )
        .await;
    assert_eq!(s, 400);
    assert!(html.contains("2027.csv: line 2"), "{html}");

    // Officers read their scope; staff and heads see nothing.
    let (s, html) = officer.get("/admin/staff").await;
    assert_eq!(s, 200);
    assert!(html.contains("id=\"read-only\"") && !html.contains("id=\"upload\""));
    assert!(
        html.contains("staff-E001") && !html.contains("staff-E004"),
        "only 办公室"
    );
    assert_eq!(officer.get("/admin/agents").await.0, 200);
    for (who, path) in [(&officer, "/admin/users"), (&head, "/admin/agents")] {
        assert_eq!(who.get(path).await.0, 403, "{path}");
    }
    for who in [&officer, &head] {
        assert_eq!(
            who.form(
                "/admin/staff/save",
                &[("employee_id", "E009"), ("name", "x"), ("department", "x")]
            )
            .await
            .0,
            403
        );
        assert_eq!(who.form("/admin/tokens", &[("ttl_days", "7")]).await.0, 403);
        assert_eq!(
            who.upload("/admin/staff/preview", "s.csv", good, &[])
                .await
                .0,
            403
        );
    }

    let audit = run_ok(c.cmd(&["audit", "list"]), LIMIT).unwrap();
    for action in [
        "staff.import",
        "staff.save",
        "token.create",
        "user.add",
        "user.token",
        "user.reset_password",
    ] {
        assert!(audit.contains(action), "{action}");
    }
}

/// The first token's prefix in the agents page's token table.
fn html_prefix(html: &str) -> String {
    let at = html.find("/admin/tokens/").expect("a token to revoke") + "/admin/tokens/".len();
    html[at..].split('/').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_edited_in_the_console_are_previewed_win_over_the_config_and_rejudge_days() {
    let dir = tempfile::tempdir().unwrap();
    let c = office(dir.path());
    // 张三 logged on at 08:41 on 2026-11-24: 11 minutes late under 08:30.
    c.replay_fixture(&dir.path().join("pc"), "day.jsonl")
        .unwrap();
    let late = || e001_on_the_24th(&c)["late_minutes"].clone();
    assert_eq!(late(), 11);
    let admin = Browser::new(&c, "root", &["admin"]).await;
    let officer = Browser::new(&c, "li", &["officer"]).await;

    let (s, html) = admin.get("/admin/schedules").await;
    assert_eq!(s, 200);
    assert!(html.contains("the built-in default day"), "{html}");
    assert!(
        html.contains("08:30–12:00 14:00–17:30"),
        "the next two weeks in force"
    );
    // A session that ends before it starts: named, nothing saved.
    let bad = "[[default]]\neffective_from = \"2020-01-01\"\nsessions = [{ start = \"12:00\", end = \"08:00\" }]\n";
    let (s, html) = admin
        .form("/admin/schedules/preview", &[("text", bad)])
        .await;
    assert_eq!(s, 400, "{html}");
    assert!(html.contains("is not after start"), "{html}");
    // 办公室 from 08:00: previewed, then saved.
    let good = "[[departments.\"办公室\"]]\neffective_from = \"2020-01-01\"\nsessions = [{ start = \"08:00\", end = \"12:00\" }, { start = \"14:00\", end = \"17:30\" }]\n";
    let (s, html) = admin
        .form("/admin/schedules/preview", &[("text", good)])
        .await;
    assert_eq!(s, 200, "{html}");
    assert!(
        html.contains("id=\"preview\"") && html.contains("08:00–12:00 14:00–17:30"),
        "{html}"
    );
    assert_eq!(late(), 11, "a preview changes nothing");
    assert_eq!(
        officer
            .form("/admin/schedules/save", &[("text", good)])
            .await
            .0,
        403
    );
    let (s, _) = admin.form("/admin/schedules/save", &[("text", good)]).await;
    assert_eq!(s, 303);
    let (_, html) = admin.get("/admin/schedules").await;
    assert!(
        html.contains("the console (revision 1, saved by web:root"),
        "which wins: {html}"
    );
    // The day is judged again under 08:00: 41 minutes late.
    assert_eq!(late(), 41);
    let audit = run_ok(c.cmd(&["audit", "list"]), LIMIT).unwrap();
    assert!(audit.contains("setting.schedules"), "{audit}");
}

/// The "policy version N" an enrolled agent's `status` prints.
fn agent_policy_version(state: &std::path::Path) -> String {
    let out = run_ok(kaoqin_tests::agent(state, &["status"]), LIMIT).unwrap();
    let at = out.find("policy version ").expect(&out) + "policy version ".len();
    out[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .to_owned()
}

/// The text of the element with `id` (up to its first `<`).
fn text_of<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html.find(&format!("id=\"{id}\"")).expect(id);
    let from = at + html[at..].find('>').unwrap() + 1;
    &html[from..from + html[from..].find('<').unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn category_rules_are_tried_in_the_console_and_saved_as_a_policy_agents_take() {
    let dir = tempfile::tempdir().unwrap();
    let c = office(dir.path());
    let state = dir.path().join("pc");
    let mut enrol = kaoqin_tests::agent(
        &state,
        &[
            "enroll",
            "--collector",
            &c.url(),
            "--token",
            &c.token().unwrap(),
        ],
    );
    enrol.env("KAOQIN_MACHINE_ID", "pc-categories");
    run_ok(enrol, LIMIT).unwrap();
    let before = agent_policy_version(&state);
    // The PC's coverage this week: a percentage, or a dash before any office hours.
    let (_, html) = Browser::new(&c, "it", &["admin"])
        .await
        .get("/admin/agents")
        .await;
    let cell = html.find("class=\"coverage\">").expect("a coverage cell") + 17;
    let value = &html[cell..][..html[cell..].find('<').unwrap()];
    assert!(value == "—" || value == "0%", "nothing heard yet: {value}");

    let admin = Browser::new(&c, "root", &["admin"]).await;
    let officer = Browser::new(&c, "li", &["officer"]).await;
    let staff = Browser::new(&c, "zhangsan", &["staff", "--employee", "E001"]).await;

    // Nothing configured: the agents' built-in rules, tried in the test box.
    let (s, html) = officer
        .get("/admin/categories?name=WeChat.exe&title=&lang=en")
        .await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("built-in rules"), "{html}");
    assert_eq!(text_of(&html, "policy-version"), before);
    assert!(html.contains("id=\"tried\""), "{html}");
    assert!(text_of(&html, "tried").contains("→"), "{html}");
    assert!(html.contains("<code>chat</code> · rule "), "{html}");
    assert!(!html.contains("id=\"rules-text\""), "officers only read");
    assert_eq!(staff.get("/admin/categories").await.0, 403);

    // A bad pattern is named by its rule, counted from 1; nothing is saved.
    assert_eq!(admin.get("/admin/categories?lang=en").await.0, 200);
    let bad = "[[rule]]\ncategory = \"lottery\"\ntitle_patterns = [\"彩票\"]\n\n[[rule]]\ncategory = \"games\"\nprocess_patterns = [\"steam[\"]\n";
    let (s, html) = admin
        .form(
            "/admin/categories/save",
            &[("text", bad), ("name", ""), ("title", "")],
        )
        .await;
    assert_eq!(s, 400, "{html}");
    assert!(
        html.contains("rule 2 (category &quot;games&quot;)"),
        "{html}"
    );
    // The edited rules tried before saving: the office's own category.
    let good = "# The office's rules.\n[[rule]]\ncategory = \"lottery\"\ntitle_patterns = [\"彩票\"]\n\n[[rule]]\ncategory = \"games\"\nprocess_patterns = [\"steam\"]\n";
    let (s, html) = admin
        .form(
            "/admin/categories/check",
            &[
                ("text", good),
                ("name", "chrome"),
                ("title", "体育彩票开奖结果"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("<code>lottery</code> · rule 1"), "{html}");
    assert_eq!(
        officer
            .form("/admin/categories/save", &[("text", good)])
            .await
            .0,
        403
    );
    assert_eq!(
        agent_policy_version(&state),
        before,
        "a check saves nothing"
    );

    let (s, _) = admin
        .form("/admin/categories/save", &[("text", good)])
        .await;
    assert_eq!(s, 303);
    let (_, html) = admin.get("/admin/categories?lang=en").await;
    assert!(html.contains("saved in the console (1, web:root"), "{html}");
    assert!(
        html.contains("# The office&#x27;s rules."),
        "the saved text: {html}"
    );
    let after = text_of(&html, "policy-version").to_owned();
    assert_ne!(after, before, "a new policy version");
    // The agent is told the new version; WeChat is no longer chat.
    assert_eq!(agent_policy_version(&state), after);
    let (_, html) = officer.get("/admin/categories?name=WeChat&title=").await;
    assert!(html.contains("no rule matched"), "{html}");
    let audit = run_ok(c.cmd(&["audit", "list"]), LIMIT).unwrap();
    assert!(audit.contains("setting.category_rules"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_who_left_is_kept_but_no_later_day_is_judged() {
    let dir = tempfile::tempdir().unwrap();
    let c = office(dir.path());
    c.replay_fixture(&dir.path().join("pc"), "day.jsonl")
        .unwrap();
    let ids_on = |date: &str| {
        daily(&c, date)
            .iter()
            .map(|r| r["employee_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(ids_on("2026-11-24").contains(&"E001".to_owned()));
    let admin = Browser::new(&c, "root", &["admin"]).await;
    let officer = Browser::new(&c, "li", &["officer"]).await;

    let (s, html) = admin
        .form(
            "/admin/staff/E001/leave?lang=en",
            &[("left_on", "2026-11-31")],
        )
        .await;
    assert_eq!(s, 400, "{html}");
    assert!(html.contains("left_on"), "the field is named: {html}");
    assert_eq!(
        officer
            .form("/admin/staff/E001/leave", &[("left_on", "2026-11-23")])
            .await
            .0,
        403
    );
    assert_eq!(
        admin
            .form("/admin/staff/E404/leave", &[("left_on", "2026-11-23")])
            .await
            .0,
        404
    );
    let (s, _) = admin
        .form("/admin/staff/E001/leave", &[("left_on", "2026-11-23")])
        .await;
    assert_eq!(s, 303);
    // Kept in the directory, marked; the day after is neither judged nor reported.
    let (_, html) = admin.get("/admin/staff").await;
    assert!(
        html.contains("id=\"staff-E001\" class=\"left\"") && html.contains("2026-11-23"),
        "{html}"
    );
    assert!(!ids_on("2026-11-24").contains(&"E001".to_owned()));
    assert!(ids_on("2026-11-23").contains(&"E001".to_owned()));
    let listed = run_ok(c.cmd(&["staff", "list"]), LIMIT).unwrap();
    assert!(listed.contains("E001"), "{listed}");
    // Back again: the day is judged as before.
    let (s, _) = admin
        .form("/admin/staff/E001/leave", &[("left_on", "")])
        .await;
    assert_eq!(s, 303);
    assert!(ids_on("2026-11-24").contains(&"E001".to_owned()));
    let audit = run_ok(c.cmd(&["audit", "list"]), LIMIT).unwrap();
    assert!(
        audit.contains("staff.left") && audit.contains("staff.returned"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offices_own_days_saved_in_the_console_win_and_rejudge_the_day() {
    let dir = tempfile::tempdir().unwrap();
    let c = office(dir.path());
    c.replay_fixture(&dir.path().join("pc"), "day.jsonl")
        .unwrap();
    let status = || e001_on_the_24th(&c)["status"].as_str().unwrap().to_owned();
    assert_eq!(status(), "present");
    let admin = Browser::new(&c, "root", &["admin"]).await;
    let officer = Browser::new(&c, "li", &["officer"]).await;
    let (s, html) = admin.get("/admin/calendar?year=2026&lang=en").await;
    assert_eq!(s, 200);
    assert!(html.contains("id=\"office-days\""), "{html}");

    // Checked whole: a bad kind and a repeated date are named by line and field.
    let bad = "date,kind,note\n2026-11-24,holliday,停电\n2026-11-24,rest,\n";
    let (s, html) = admin
        .form("/admin/calendar/days", &[("text", bad), ("year", "2026")])
        .await;
    assert_eq!(s, 400, "{html}");
    assert!(html.contains("line 2: kind"), "{html}");
    assert!(html.contains("holliday"), "the edit is kept: {html}");
    assert_eq!(status(), "present", "nothing saved");
    let good = "date,kind,note\n2026-11-24,holiday,机关停电闭馆\n";
    assert_eq!(
        officer
            .form("/admin/calendar/days", &[("text", good)])
            .await
            .0,
        403
    );
    let (s, _) = admin
        .form("/admin/calendar/days", &[("text", good), ("year", "2026")])
        .await;
    assert_eq!(s, 303);
    let (_, html) = officer.get("/admin/calendar?year=2026").await;
    assert!(html.contains("机关停电闭馆"), "{html}");
    // The day is judged again as a holiday.
    assert_eq!(status(), "holiday");
    let audit = run_ok(c.cmd(&["audit", "list"]), LIMIT).unwrap();
    assert!(audit.contains("setting.office_days"), "{audit}");
}

/// The element `id` of `html` up to the first `close` after it.
fn section<'a>(html: &'a str, id: &str, close: &str) -> &'a str {
    let at = html.find(&format!("id=\"{id}\"")).expect(id);
    &html[at..at + html[at..].find(close).unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officers_open_on_the_day_at_a_glance_and_the_week_by_department() {
    let dir = tempfile::tempdir().unwrap();
    let c = office(dir.path());
    c.replay_fixture(&dir.path().join("pc"), "day.jsonl")
        .unwrap();
    let officer = Browser::new(&c, "li", &["officer"]).await;
    let it = Browser::new(&c, "zhao", &["officer", "--department", "信息中心"]).await;
    let staff = Browser::new(&c, "zhangsan", &["staff", "--employee", "E001"]).await;
    let (code, _) = staff
        .form(
            "/appeals",
            &[
                ("employee_id", "E001"),
                ("date", "2026-11-24"),
                ("requested_status", "present"),
                ("reason", "在会议室开会"),
            ],
        )
        .await;
    assert_eq!(code, 303);

    // Officers land on it.
    let r = officer
        .http
        .get(format!("{}/", officer.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/today");

    // 24 November: 张三 arrived 11 minutes late; nothing was ever heard from 李四's
    // or 王五's PCs, so they are unknown, each with the reason in Chinese.
    let (code, page) = officer.get("/today?date=2026-11-24").await;
    assert_eq!(code, 200, "{page}");
    for (id, n) in [
        ("n-expected", "3"),
        ("n-arrived", "1"),
        ("n-late", "1"),
        ("n-absent", "0"),
        ("n-unknown", "2"),
        ("n-pcs", "1/1"),
        ("n-appeals", "1"),
        ("n-requests", "0"),
    ] {
        assert_eq!(text_of(&page, id), n, "{id}: {page}");
    }
    let late = section(&page, "late", "</table>");
    assert!(
        late.contains("张三") && late.contains("08:41") && late.contains("11"),
        "{late}"
    );
    let unknown = section(&page, "unknown", "</ul>");
    assert!(
        unknown.contains("李四")
            && unknown.contains("王五")
            && unknown.contains("没有数据不等于缺勤"),
        "{unknown}"
    );
    assert!(!unknown.contains("No presence"), "{unknown}");
    // The week: a row per department, a column per day from the 18th; on the
    // 24th 办公室 had one late and one unknown.
    let week = section(&page, "week", "</table>");
    assert!(
        week.contains("办公室") && week.contains("信息中心"),
        "{week}"
    );
    assert!(
        week.contains("11-18") && week.contains("11-24") && !week.contains("11-25"),
        "{week}"
    );
    assert!(
        week.contains(
            "<title>办公室 2026-11-24: 准时 0, 迟到 1, 请假/外勤 0, 缺勤 0, 无法判定 1</title>"
        ),
        "{week}"
    );
    assert!(
        week.contains("<title>办公室 2026-11-22: 准时 0, 迟到 0"),
        "a Sunday: {week}"
    );
    assert!(!page.contains("<script"), "no scripts");

    // In English, the reasons too.
    let (_, en) = officer.get("/today?date=2026-11-24&lang=en").await;
    assert!(
        en.contains("Unknown, and why")
            && en.contains("No presence, and no PC has ever reported one of this person"),
        "{en}"
    );
    officer.get("/today?lang=zh").await;

    // An officer of one department sees that department only.
    let (_, page) = it.get("/today?date=2026-11-24").await;
    assert_eq!(text_of(&page, "n-expected"), "1", "{page}");
    assert!(!page.contains("张三") && page.contains("王五"), "{page}");
    assert_eq!(it.get("/today?department=办公室").await.0, 403);
    // Staff have their own record instead; a bad date gets the product's page.
    assert_eq!(staff.get("/today").await.0, 403);
    let (code, bad) = officer.get("/today?date=2026-11-31").await;
    assert_eq!(code, 400);
    assert!(bad.contains("date"), "{bad}");

    // Looking is audited.
    let audit = run_ok(c.cmd(&["audit", "list"]), LIMIT).unwrap();
    assert!(audit.contains("today.view"), "{audit}");
}

//! The web pages end to end: a real collector with `serve --http`, a replayed day,
//! accounts for every role, and HTTP requests (reqwest with a cookie jar) and
//! headless Chromium (over WebDriver) checking what each role sees, what it is
//! refused, appeals and corrections, the audit trail, API tokens and the report
//! exports.

use kaoqin_tests::{Collector, agent, bin, fixture, run_ok};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
/// November 2026 holds the replayed day (Tuesday 2026-11-24).
const MONTH: &str = "2026-11";

// ------------------------------------------------------------------ helpers

/// A collector serving gRPC (plaintext) and the pages on loopback ports of its
/// own choosing. Appeals may concern any day of the last hundred years, so that
/// the fixture days stay appealable whatever today is.
fn collector(data_dir: &Path) -> Collector {
    collector_with(data_dir, "[appeals]\nwindow_days = 36500\n")
}

/// As [`collector`], with `config` (TOML) as the configuration.
fn collector_with(data_dir: &Path, config: &str) -> Collector {
    Collector::start_web(data_dir, config).unwrap()
}

/// One HTTP response, read whole.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A person at the pages without a screen: an HTTP client with its own cookie
/// jar that does not follow redirects (so that tests see them).
struct Browser {
    base: reqwest::Url,
    http: reqwest::blocking::Client,
    jar: Arc<reqwest::cookie::Jar>,
    bearer: Option<String>,
}

impl Browser {
    fn new(c: &Collector) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::blocking::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Browser {
            base: c.web().parse().unwrap(),
            http,
            jar,
            bearer: None,
        }
    }

    fn send(&mut self, req: reqwest::blocking::RequestBuilder) -> Resp {
        let req = match &self.bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let r = req.send().unwrap();
        Resp {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.bytes().unwrap().to_vec(),
        }
    }

    fn get(&mut self, path: &str) -> Resp {
        let req = self.http.get(self.base.join(path).unwrap());
        self.send(req)
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let req = self.http.post(self.base.join(path).unwrap()).form(form);
        self.send(req)
    }

    /// Whether the jar holds any cookie for the pages.
    fn has_cookies(&self) -> bool {
        use reqwest::cookie::CookieStore;
        self.jar.cookies(&self.base).is_some()
    }

    /// Logs in through the form; returns the redirect target.
    fn login(&mut self, user: &str, password: &str) -> String {
        let r = self.post("/login", &[("username", user), ("password", password)]);
        assert_eq!(r.status, 303, "login {user}: {}", r.text());
        r.header("location").unwrap_or_default().to_owned()
    }

    /// Logs in with a one-time password and chooses `new` as forced.
    fn first_login(&mut self, user: &str, one_time: &str, new: &str) {
        assert_eq!(self.login(user, one_time), "/password");
        // Nothing else opens before the password is changed.
        let r = self.get(&format!("/summary?from={MONTH}-01&to={MONTH}-30"));
        assert_eq!(r.status, 303);
        assert_eq!(r.header("location"), Some("/password"));
        let r = self.post(
            "/password",
            &[("current", one_time), ("new", new), ("confirm", new)],
        );
        assert_eq!(r.status, 303, "{}", r.text());
    }
}

/// Enrols an agent and replays `script` on it (as the attendance tests do).
fn replay_on_pc(c: &Collector, state: &Path, machine: &str, script: &str) {
    let token = c.cli(&["token", "create"]).trim().to_owned();
    let url = c.url();
    let mut enroll = agent(state, &["enroll", "--collector", &url, "--token", &token]);
    enroll.env("KAOQIN_MACHINE_ID", machine);
    run_ok(enroll, LIMIT).unwrap();
    let replay = format!("replay:{}", fixture(script).display());
    let mut run = agent(state, &["run", "--probe", &replay, "--once"]);
    run.env("KAOQIN_MACHINE_ID", machine);
    run_ok(run, LIMIT).unwrap();
}

/// The one-time passwords printed by `user create-for-staff`, by username.
fn staff_passwords(csv: &str) -> BTreeMap<String, String> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("username,employee_id,password"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[2].to_owned())
        })
        .collect()
}

/// A collector with the fixture staff, the replayed day of E001 (张三) and an
/// account of every role, each past its first login.
struct World {
    _dir: tempfile::TempDir,
    c: Collector,
    officer: Browser,
    head: Browser,
    staff1: Browser,
    staff3: Browser,
    admin: Browser,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let c = collector(&data);
    let staff_csv = fixture("staff.csv");
    c.cli(&["staff", "import", staff_csv.to_str().unwrap()]);
    replay_on_pc(&c, &dir.path().join("pc1"), "pc-1-machine", "day.jsonl");

    let officer_pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let head_pw = c.cli(&[
        "user",
        "add",
        "--username",
        "head",
        "--role",
        "dept-head",
        "--department",
        "办公室",
        "--employee",
        "E002",
    ]);
    let admin_pw = c.cli(&["user", "add", "--username", "root", "--role", "admin"]);
    let staff = staff_passwords(&c.cli(&["user", "create-for-staff"]));
    // E002 already has an account (the department head's).
    assert_eq!(
        staff.keys().collect::<Vec<_>>(),
        ["E001", "E003"],
        "{staff:?}"
    );
    // Run again: nobody gets a second account.
    assert_eq!(
        staff_passwords(&c.cli(&["user", "create-for-staff"])).len(),
        0
    );

    let mut officer = Browser::new(&c);
    officer.first_login("officer", officer_pw.trim(), "officer-pass-1");
    let mut head = Browser::new(&c);
    head.first_login("head", head_pw.trim(), "head-pass-1");
    let mut admin = Browser::new(&c);
    admin.first_login("root", admin_pw.trim(), "root-pass-1");
    let mut staff1 = Browser::new(&c);
    staff1.first_login("E001", &staff["E001"], "zhangsan-pass");
    let mut staff3 = Browser::new(&c);
    staff3.first_login("E003", &staff["E003"], "wangwu-pass1");
    World {
        _dir: dir,
        c,
        officer,
        head,
        staff1,
        staff3,
        admin,
    }
}

// ------------------------------------------------------------------ tests

/// `curl` with the collector's CA: (status line and headers, body).
fn curl(ca: &Path, args: &[&str]) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--cacert"]).arg(ca).args(args);
    let out = run_ok(cmd, LIMIT).expect("curl is needed (.ci/packages)");
    match out.split_once("\r\n\r\n") {
        Some((head, body)) => (head.to_owned(), body.to_owned()),
        None => (out, String::new()),
    }
}

#[test]
fn the_pages_are_served_over_https_with_the_grpc_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    std::fs::create_dir_all(&data).unwrap();
    let mut init = Command::new(bin("kaoqin-collector"));
    init.args(["tls", "init", "--name", "127.0.0.1", "--data-dir"])
        .arg(&data);
    let ca = run_ok(init, LIMIT).unwrap();
    let ca = Path::new(ca.trim()).to_path_buf();
    // With a certificate in place the pages are HTTPS, like gRPC.
    let c = collector(&data);
    let pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let base = format!("https://{}", c.http.unwrap());
    let (head, body) = curl(&ca, &[&format!("{base}/login")]);
    let status = head.lines().next().unwrap_or_default();
    assert!(
        status.starts_with("HTTP/") && status.contains(" 200"),
        "{head}"
    );
    assert!(body.contains("<form"), "{body}");
    // The session cookie is Secure, HttpOnly, SameSite=Strict, with the __Host- prefix.
    let form = format!("username=officer&password={}", pw.trim());
    let (head, _) = curl(&ca, &["--data", &form, &format!("{base}/login")]);
    let cookie = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: __host-kq_session=")
        })
        .unwrap_or_else(|| panic!("no __Host- session cookie: {head}"));
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    // Without the CA the certificate is not trusted; plain HTTP gets no page.
    let mut untrusted = Command::new("curl");
    untrusted.args(["-sS", &format!("{base}/login")]);
    assert!(
        !kaoqin_tests::run_bounded(untrusted, LIMIT)
            .unwrap()
            .status
            .success()
    );
    let mut plain = Command::new("curl");
    plain.args(["-sS", &format!("http://{}/login", c.http.unwrap())]);
    let out = kaoqin_tests::run_bounded(plain, LIMIT).unwrap();
    assert!(
        !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("<form"),
        "a page over plain HTTP"
    );
}

#[test]
fn nobody_decides_their_own_appeal_and_appeals_cannot_flood() {
    let dir = tempfile::tempdir().unwrap();
    // The collector's clock starts on a Wednesday whatever day the test runs:
    // the appeal window is counted from its today.
    let c = Collector::start_web_at(
        &dir.path().join("collector"),
        "[appeals]\nwindow_days = 31\nmax_open = 3\n",
        "2026-11-25T10:00:00+08:00".parse().unwrap(),
    )
    .unwrap();
    let staff_csv = fixture("staff.csv");
    c.cli(&["staff", "import", staff_csv.to_str().unwrap()]);
    // An officer who is also staff member E003, and another officer.
    let boss_pw = c.cli(&[
        "user",
        "add",
        "--username",
        "boss",
        "--role",
        "officer",
        "--employee",
        "E003",
    ]);
    let officer_pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let mut boss = Browser::new(&c);
    boss.first_login("boss", boss_pw.trim(), "boss-pass-1");
    let mut officer = Browser::new(&c);
    officer.first_login("officer", officer_pw.trim(), "officer-pass-1");

    // Days before the collector's today.
    let today = jiff::civil::date(2026, 11, 25);
    let day = |back: i64| {
        today
            .checked_sub(jiff::Span::new().days(back))
            .unwrap()
            .to_string()
    };
    let appeal = |b: &mut Browser, id: &str, date: &str| {
        b.post(
            "/appeals?lang=en",
            &[
                ("employee_id", id),
                ("date", date),
                ("requested_status", "field"),
                ("reason", "at a meeting"),
            ],
        )
    };
    let r = appeal(&mut boss, "E003", &day(1));
    assert_eq!(r.status, 303, "{}", r.text());
    // The boss cannot decide it, the other officer can.
    let r = boss.post("/appeals/1?lang=en", &[("decision", "approve")]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("own case"), "{}", r.text());
    let r = officer.post("/appeals/1", &[("decision", "approve"), ("comment", "ok")]);
    assert_eq!(r.status, 303, "{}", r.text());

    // Flooding: not the year 2000, not tomorrow, not older than the window, and at
    // most three open at once.
    for (date, words) in [
        ("2000-01-03".to_string(), "more than 31 days ago"),
        (day(-1), "has not come yet"),
        (day(32), "more than 31 days ago"),
    ] {
        let r = appeal(&mut boss, "E003", &date);
        assert_eq!(r.status, 400, "{date}: {}", r.text());
        assert!(r.text().contains(words), "{date}: {}", r.text());
    }
    for back in 2..=4 {
        let r = appeal(&mut boss, "E003", &day(back));
        assert_eq!(r.status, 303, "{}", r.text());
    }
    let r = appeal(&mut boss, "E003", &day(5));
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("3 appeals are open already"),
        "{}",
        r.text()
    );
    let list = officer.get("/appeals").text();
    assert!(
        list.contains(r#"<small id="open-total">(3)</small>"#),
        "{list}"
    );
}

#[test]
fn minutes_without_evidence_are_shown_as_unverified_and_not_charged() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(&dir.path().join("collector"));
    let staff_csv = fixture("staff.csv");
    c.cli(&["staff", "import", staff_csv.to_str().unwrap()]);
    replay_on_pc(&c, &dir.path().join("pc1"), "pc-1-machine", "killed.jsonl");
    let pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let mut officer = Browser::new(&c);
    officer.first_login("officer", pw.trim(), "officer-pass-1");

    let page = officer
        .get(&format!("/person/E001?month={MONTH}&day=2026-11-23"))
        .text();
    assert!(
        page.contains("早退 450′ 未核实") && page.contains("id=\"unverified\""),
        "the calendar and the day say the early minutes are unverified: {page}"
    );
    assert!(page.contains("早退 0 分钟"), "nothing is charged: {page}");
    let summary = officer.get("/summary?from=2026-11-23&to=2026-11-23").text();
    assert!(summary.contains("迟到早退未核实"), "{summary}");
    let row = summary
        .split("<tr>")
        .find(|r| r.contains("张三"))
        .expect("张三's row");
    assert!(
        row.contains("0 次 / 0 分钟"),
        "not in the early figures: {row}"
    );
    assert!(
        row.contains("<td class=\"n unverified\">1</td>"),
        "one unverified day: {row}"
    );
}

#[test]
fn roles_see_what_they_may_and_appeals_correct_verdicts() {
    let mut w = world();

    // --- officer: the summary, sortable, with the replayed day's numbers.
    let period = "from=2026-11-23&to=2026-11-27";
    let r = w.officer.get(&format!("/summary?{period}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    assert!(
        page.contains("张三") && page.contains("李四") && page.contains("王五"),
        "{page}"
    );
    // E001: 11 minutes late once, 10 minutes early once.
    assert!(page.contains("1 次 / 11 分钟"), "{page}");
    assert!(page.contains("1 次 / 10 分钟"), "{page}");
    assert!(page.contains("<svg"), "the trend chart is inline SVG");
    assert!(
        !page.contains("http://") || !page.contains("<script"),
        "no external resources"
    );
    let sorted = w
        .officer
        .get(&format!("/summary?{period}&sort=-late_minutes"))
        .text();
    let pos = |s: &str, n: &str| s.find(n).unwrap_or(usize::MAX);
    assert!(
        pos(&sorted, "张三") < pos(&sorted, "李四"),
        "sorted by lateness"
    );
    let by_dept = w
        .officer
        .get(&format!("/summary?{period}&by=department"))
        .text();
    assert!(by_dept.contains("办公室") && by_dept.contains("信息中心"));
    // English on request, remembered by cookie.
    let en = w.officer.get(&format!("/summary?{period}&lang=en")).text();
    assert!(en.contains("Summary") && en.contains("Late"), "{en}");
    assert!(
        w.officer
            .get(&format!("/summary?{period}"))
            .text()
            .contains("Summary")
    );
    w.officer.get("/summary?lang=zh");

    // One person's month with the day's evidence timeline.
    let r = w
        .officer
        .get(&format!("/person/E001?month={MONTH}&day=2026-11-24"));
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("08:41"), "arrival in local time: {page}");
    assert!(page.contains("17:20"), "departure: {page}");
    assert!(
        page.contains("聊天软件 25"),
        "chat minutes in plain words: {page}"
    );
    assert!(page.contains("class=\"timeline\""));
    // The day drawn: office hours, the PC's bar, chat in use, arrival marked; a
    // small bar on each day of the month.
    assert!(page.contains("<svg class=\"day-timeline\""), "{page}");
    for part in [
        "class=\"office\"",
        "class=\"state in_use\"",
        "class=\"usage cat-chat\"",
        "到岗 08:41",
        "class=\"daybar\"",
    ] {
        assert!(page.contains(part), "{part}: {page}");
    }
    assert!(!page.contains("<script"), "no scripts");
    // Every line of evidence and the reasons are in the page's language, each
    // line carrying its stable code.
    let timeline = between(&page, "<ol class=\"timeline\">", "</ol>");
    let reasons = between(&page, "<p id=\"reasons\">", "</p>");
    assert!(
        timeline.contains("data-code=\"arrival\"")
            && timeline.contains("上班：当天首次在岗")
            && reasons.contains("出勤：首次在岗 08:41:00"),
        "{timeline}\n{reasons}"
    );
    for english in [
        "logged on",
        "arrival:",
        "departure:",
        "first presence",
        "active use",
        "not accounted",
        "Present:",
    ] {
        assert!(
            !timeline.contains(english) && !reasons.contains(english),
            "English `{english}` on a Chinese page: {timeline}\n{reasons}"
        );
    }
    let en = w
        .officer
        .get(&format!(
            "/person/E001?month={MONTH}&day=2026-11-24&lang=en"
        ))
        .text();
    assert!(
        en.contains("arrival: first presence of the day")
            && en.contains("Present: first presence 08:41:00"),
        "{en}"
    );
    w.officer.get("/summary?lang=zh");
    // Exports.
    let x = w
        .officer
        .get(&format!("/export/summary?{period}&format=xlsx"));
    assert_eq!(x.status, 200);
    assert!(x.body.starts_with(b"PK"), "an xlsx (zip) file");
    let csv = w
        .officer
        .get(&format!("/export/summary?{period}&format=csv"))
        .text();
    assert!(csv.starts_with("key,name,department"), "{csv}");
    assert_eq!(w.officer.get("/system").status, 200);
    assert_eq!(
        w.officer.get("/audit").status,
        403,
        "only admins read the audit log"
    );

    // --- staff: own month and PC report; everyone else's is 403 whatever the URL.
    let r = w
        .staff1
        .get(&format!("/person/E001?month={MONTH}&day=2026-11-24"));
    assert_eq!(r.status, 200);
    assert!(r.text().contains("08:41"));
    assert_eq!(w.staff1.get("/me").header("location"), Some("/person/E001"));
    let pc = w.staff1.get(&format!("/person/E001/pc?month={MONTH}"));
    assert_eq!(pc.status, 200);
    assert!(pc.text().contains("聊天软件 25 分钟"), "{}", pc.text());
    for path in [
        format!("/person/E002?month={MONTH}"),
        format!("/person/E003?month={MONTH}&day=2026-11-24"),
        "/person/e001".to_string(),
        "/person/NOBODY".to_string(),
        format!("/person/E002/pc?month={MONTH}"),
        format!("/summary?{period}"),
        format!("/summary?{period}&department=办公室"),
        format!("/export/summary?{period}&format=csv"),
        "/api/v1/person/E002/days?from=2026-11-24&to=2026-11-24".to_string(),
        format!("/api/v1/summary?{period}"),
        "/system".to_string(),
        "/audit".to_string(),
    ] {
        let r = w
            .staff1
            .get(&path.replace("办公室", "%E5%8A%9E%E5%85%AC%E5%AE%A4"));
        assert_eq!(r.status, 403, "staff E001 asked for {path}: {}", r.text());
    }
    // Appealing someone else's day is refused too.
    let r = w.staff1.post(
        "/appeals",
        &[
            ("employee_id", "E002"),
            ("date", "2026-11-24"),
            ("requested_status", "present"),
            ("reason", "x"),
        ],
    );
    assert_eq!(r.status, 403);

    // --- department head: own department only, and no decisions.
    assert_eq!(
        w.head
            .get(&format!(
                "/summary?{period}&department=%E5%8A%9E%E5%85%AC%E5%AE%A4"
            ))
            .status,
        200
    );
    let r = w.head.get(&format!("/summary?{period}"));
    assert_eq!(r.status, 200, "their scope: {}", r.text());
    assert!(!r.text().contains("王五"), "another department leaked");
    assert_eq!(
        w.head.get(&format!("/person/E001?month={MONTH}")).status,
        200
    );
    assert_eq!(
        w.head.get(&format!("/person/E003?month={MONTH}")).status,
        403
    );
    assert_eq!(
        w.head
            .get(&format!(
                "/summary?{period}&department=%E4%BF%A1%E6%81%AF%E4%B8%AD%E5%BF%83"
            ))
            .status,
        403
    );

    // --- appeals: E001 appeals the 24th (late) and the 23rd; one approved, one rejected.
    for (date, reason) in [("2026-11-24", "在会议室开会"), ("2026-11-23", "忘记开机")] {
        let r = w.staff1.post(
            "/appeals",
            &[
                ("employee_id", "E001"),
                ("date", date),
                ("requested_status", "field"),
                ("reason", reason),
            ],
        );
        assert_eq!(r.status, 303, "{}", r.text());
    }
    let open = w.officer.get("/appeals").text();
    assert!(
        open.contains("在会议室开会") && open.contains("忘记开机"),
        "{open}"
    );
    assert_eq!(
        w.head.post("/appeals/1", &[("decision", "approve")]).status,
        403
    );
    assert_eq!(
        w.staff1
            .post("/appeals/1", &[("decision", "approve")])
            .status,
        403
    );
    let r = w.officer.post(
        "/appeals/1",
        &[("decision", "approve"), ("comment", "核实属实")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let r = w.officer.post(
        "/appeals/2",
        &[("decision", "reject"), ("comment", "无记录")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        w.officer
            .post("/appeals/2", &[("decision", "approve")])
            .status,
        400,
        "decided once"
    );
    // The staff member sees both outcomes; the 24th is now field work, corrected.
    let mine = w
        .staff1
        .get(&format!("/person/E001?month={MONTH}&day=2026-11-24"))
        .text();
    assert!(mine.contains("已批准") && mine.contains("已驳回"), "{mine}");
    assert!(mine.contains("核实属实") && mine.contains("无记录"));
    assert!(mine.contains("已更正"), "{mine}");
    // Reports show the corrected status and that it was corrected.
    let daily = w.c.cli(&[
        "report",
        "daily",
        "--date",
        "2026-11-24",
        "--format",
        "csv",
        "--department",
        "办公室",
    ]);
    let e1 = daily.lines().find(|l| l.starts_with("E001")).unwrap();
    assert!(
        e1.contains(",field,") && e1.contains("officer: 在会议室开会"),
        "{daily}"
    );
    let summary = w
        .officer
        .get(&format!("/export/summary?{period}&format=json"))
        .text();
    let rows: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let e1 = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "E001")
        .unwrap();
    assert_eq!(e1["field_days"], 1, "{e1}");
    assert_eq!(e1["corrected_days"], 1);
    assert_eq!(
        e1["late_minutes"], 0,
        "the corrected day no longer counts as late"
    );

    // --- staff of another department cannot see E001 either.
    assert_eq!(
        w.staff3.get(&format!("/person/E001?month={MONTH}")).status,
        403
    );
    assert_eq!(
        w.staff3.get(&format!("/person/E003?month={MONTH}")).status,
        200
    );

    // --- API tokens act as their user, with the same rule.
    let officer_token =
        w.c.cli(&["user", "token", "create", "--username", "officer"]);
    let mut api = Browser::new(&w.c);
    api.bearer = Some(officer_token.trim().to_owned());
    let r = api.get(&format!("/api/v1/summary?{period}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let staff_token = w.c.cli(&["user", "token", "create", "--username", "E001"]);
    api.bearer = Some(staff_token.trim().to_owned());
    assert_eq!(
        api.get("/api/v1/person/E001/days?from=2026-11-24&to=2026-11-24")
            .status,
        200
    );
    let r = api.get("/api/v1/person/E002/days?from=2026-11-24&to=2026-11-24");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("error"));
    api.bearer = Some("kqu1-wrong".into());
    assert_eq!(api.get(&format!("/api/v1/summary?{period}")).status, 401);

    // --- the audit trail, read by the admin.
    let audit = w.admin.get("/audit");
    assert_eq!(audit.status, 200);
    let log = audit.text();
    for action in [
        "record.view",
        "summary.view",
        "report.export",
        "appeal.file",
        "appeal.approve",
        "appeal.reject",
        "verdict.correct",
    ] {
        assert!(log.contains(action), "{action} missing from the audit log");
    }
    assert!(log.contains("web:officer"));

    // --- logout ends the session.
    let r = w.staff1.post("/logout", &[]);
    assert_eq!(r.status, 303);
    assert_eq!(w.staff1.get("/me").header("location"), Some("/login"));
}

#[test]
fn printed_addresses_open_and_bad_parameters_get_a_named_error_page() {
    let mut w = world();
    // Every address scripts/quickstart.sh and the README print opens as a page.
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/quickstart.sh"),
    )
    .unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let mut paths: Vec<String> = Vec::new();
    for text in [&script, &readme] {
        let starts = text
            .match_indices("http://")
            .chain(text.match_indices("https://"))
            .map(|(i, m)| i + m.len());
        for start in starts {
            let rest = &text[start..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == ')' || c == '`' || c == '"')
                .unwrap_or(rest.len());
            let url = &rest[..end];
            if let Some(slash) = url.find('/') {
                let host = &url[..slash];
                if host.starts_with("127.0.0.1")
                    || host.starts_with("localhost")
                    || host.starts_with('$')
                {
                    paths.push(url[slash..].to_owned());
                }
            }
        }
    }
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/person/E001?month=2026-11&day=")),
        "{paths:?}"
    );
    for path in &paths {
        let r = w.officer.get(path);
        assert!(r.status == 200 || r.status == 303, "{path}: {}", r.status);
        assert!(r.text().is_empty() || r.text().contains("<html"), "{path}");
    }

    // PCs are named by hostname in the evidence, not by agent id.
    let text = w
        .officer
        .get("/person/E001?month=2026-11&day=2026-11-24")
        .text();
    assert!(text.contains(r#"<span class="pc">"#), "{text}");
    assert!(!text.contains(r#"<span class="pc">ag-"#), "{text}");

    // A bad parameter: the product's page, 400, naming it, in the page's language.
    let r = w.officer.get("/person/E001?month=2026-11&day=24");
    assert_eq!(r.status, 400);
    let text = r.text();
    assert!(
        text.contains("<html") && text.contains("day: 应为日期，例如 2026-11-24"),
        "{text}"
    );
    assert!(!text.contains("Failed to deserialize"), "{text}");
    let r = w.officer.get("/summary?from=yesterday&lang=en");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("from: a date such as 2026-11-24"),
        "{}",
        r.text()
    );
    let r = w.officer.get("/api/v1/summary?from=2026-11-01&to=tomorrow");
    assert_eq!(r.status, 400);
    let json: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(json["parameter"], "to");
    assert_eq!(json["code"], "bad_parameter");
    // A month that does not exist and a period that runs backwards: named, in
    // the page's language.
    let r = w.officer.get("/person/E001?month=2026-13");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("month: 应为月份，例如 2026-11"),
        "{}",
        r.text()
    );
    let r = w.officer.get("/summary?from=2026-11-30&to=2026-11-01");
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("to: 起始日期不得晚于结束日期，期间至多 366 天"),
        "{}",
        r.text()
    );
    // The address's own parameter: the product's page, not the framework's text.
    let r = w.officer.post("/appeals/abc", &[("decision", "uphold")]);
    assert_eq!(r.status, 400);
    let text = r.text();
    assert!(
        text.contains("<html") && text.contains("id: 应为编号（数字），例如 12"),
        "{text}"
    );
    let r = w.officer.post("/api/v1/requests/abc/cancel", &[]);
    assert_eq!(r.status, 400);
    let json: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(json["parameter"], "id", "{json}");
    // A form with a missing field.
    let r = w.staff1.post(
        "/appeals",
        &[("employee_id", "E001"), ("date", "2026-11-24")],
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("<html"), "{}", r.text());

    // The summary opens on this month up to today, with quick links for the
    // usual periods.
    let text = w.officer.get("/summary").text();
    let value = |name: &str| -> String {
        let at = text.find(&format!(r#"name="{name}" value=""#)).unwrap();
        let rest = &text[at + name.len() + 15..];
        rest[..10].to_owned()
    };
    let (from, to) = (value("from"), value("to"));
    assert_eq!(&from[..8], &to[..8], "same month: {from} {to}");
    assert!(from.ends_with("-01"), "{from}");
    for id in ["period-this_week", "period-this_month", "period-last_month"] {
        assert!(text.contains(id), "{id}");
    }
}

#[test]
fn a_provisional_year_says_so_until_its_notice_is_imported_into_the_running_collector() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let c = collector(&data);
    let pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let mut b = Browser::new(&c);
    b.first_login("officer", pw.trim(), "officer-pass-1");
    let page = |b: &mut Browser, path: &str| {
        let r = b.get(path);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    let jan = "/summary?from=2027-01-01&to=2027-01-31";
    let text = page(&mut b, jan);
    assert!(text.contains(r#"id="provisional""#), "{text}");
    assert!(
        text.contains("2027年的国务院节假日安排通知尚未导入"),
        "{text}"
    );
    let text = page(&mut b, &format!("{jan}&lang=en"));
    assert!(text.contains("notice for 2027 is not imported"), "{text}");
    // A period of a year with its notice is not provisional.
    let text = page(&mut b, "/summary?from=2026-11-01&to=2026-11-30");
    assert!(!text.contains(r#"id="provisional""#), "{text}");

    // Imported by the command line while serving: the next page knows.
    let notice = c.cli(&["calendar", "show", "--year", "2027", "--format", "notice"]);
    let file = dir.path().join("2027.csv");
    std::fs::write(&file, notice).unwrap();
    c.cli(&[
        "calendar",
        "import",
        "--year",
        "2027",
        file.to_str().unwrap(),
    ]);
    let text = page(&mut b, jan);
    assert!(!text.contains(r#"id="provisional""#), "{text}");
}

#[test]
fn logins_fail_closed_and_serve_without_http_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let c = collector(&data);
    let pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let mut b = Browser::new(&c);
    let r = b.post("/login", &[("username", "officer"), ("password", "wrong")]);
    assert_eq!(r.status, 401);
    let r = b.post("/login", &[("username", "nobody"), ("password", pw.trim())]);
    assert_eq!(r.status, 401);
    assert!(!b.has_cookies());
    assert_eq!(b.get("/summary").header("location"), Some("/login"));
    // The cookie is HttpOnly and SameSite=Strict.
    let r = b.post(
        "/login",
        &[("username", "officer"), ("password", pw.trim())],
    );
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // A too-short new password is refused and the one-time password stays.
    let r = b.post(
        "/password",
        &[
            ("current", pw.trim()),
            ("new", "short"),
            ("confirm", "short"),
        ],
    );
    assert_eq!(r.status, 400);
    assert_eq!(b.get("/summary").header("location"), Some("/password"));
    let login = b.get("/login?lang=en").text();
    assert!(login.contains("Log in"));
    assert!(!login.contains("<script"), "no scripts");
    let css = b.get("/static/style.css");
    assert_eq!(css.status, 200);
    assert!(!css.text().contains("@import") && !css.text().contains("url("));
    // Successful logins are not counted: six within a minute all get in.
    let pw3 = c.cli(&["user", "add", "--username", "reader", "--role", "officer"]);
    for i in 0..6 {
        let mut fresh = Browser::new(&c);
        let r = fresh.post(
            "/login",
            &[("username", "reader"), ("password", pw3.trim())],
        );
        assert_eq!(r.status, 303, "login {i}: {}", r.text());
    }
    // Guessing one username's password: five tries, then 429 whatever is typed,
    // while another username still logs in.
    let mut guesser = Browser::new(&c);
    let pw2 = c.cli(&["user", "add", "--username", "clerk", "--role", "officer"]);
    for i in 0..5 {
        let r = guesser.post("/login", &[("username", "Clerk"), ("password", "guess")]);
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = guesser.post(
        "/login?lang=en",
        &[("username", "clerk"), ("password", pw2.trim())],
    );
    assert_eq!(r.status, 429);
    assert!(r.text().contains("Too many login attempts"), "{}", r.text());
    assert_eq!(
        guesser.get("/summary").header("location"),
        Some("/login"),
        "no session"
    );
    let mut other = Browser::new(&c);
    let r = other.post("/login", &[("username", "officer"), ("password", "wrong")]);
    assert_eq!(r.status, 401, "another username is not locked out");

    // A one-time password gives no API access until it is changed.
    let pw4 = c.cli(&["user", "add", "--username", "scripter", "--role", "officer"]);
    assert!(!pw4.trim().is_empty());
    let token = c.cli(&["user", "token", "create", "--username", "scripter"]);
    let mut api = Browser::new(&c);
    api.bearer = Some(token.trim().to_owned());
    let r = api.get("/api/v1/summary?from=2026-11-23&to=2026-11-27");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains(r#""code":"one_time_password""#),
        "{}",
        r.text()
    );

    // A username over 64 bytes is refused before any work.
    let long = "a".repeat(65);
    let r = other.post("/login", &[("username", &long), ("password", "x")]);
    assert_eq!(r.status, 401);

    // One address trying many usernames: after its burst of failures, 429 for
    // every username from it, whatever is typed.
    let mut flood = Browser::new(&c);
    let mut failures = 0;
    let limited = loop {
        let name = format!("made-up-{failures}");
        let r = flood.post("/login", &[("username", &name), ("password", "guess")]);
        if r.status == 429 {
            break true;
        }
        assert_eq!(r.status, 401);
        failures += 1;
        if failures > 40 {
            break false;
        }
    };
    assert!(limited, "no per-address limit after {failures} failures");
    let r = flood.post(
        "/login",
        &[("username", "reader"), ("password", pw3.trim())],
    );
    assert_eq!(r.status, 429, "the address is limited, not the username");
    drop(c);

    // Without --http: only the gRPC line, as before.
    let mut cmd = Command::new(bin("kaoqin-collector"));
    cmd.args([
        "serve",
        "--plaintext",
        "--grpc",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(&data)
    .env("KAOQIN_LOG", "error")
    .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("kaoqin-collector listening grpc="),
        "{line}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn report_summary_and_daily_export_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let c = collector(&data);
    let staff_csv = fixture("staff.csv");
    c.cli(&["staff", "import", staff_csv.to_str().unwrap()]);
    replay_on_pc(&c, &dir.path().join("pc1"), "pc-1-machine", "day.jsonl");
    let now = "2026-11-28T00:00:00Z";
    let summary = |extra: &[&str]| {
        let mut args = vec![
            "report",
            "summary",
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-27",
            "--now",
            now,
        ];
        args.extend_from_slice(extra);
        c.cli(&args)
    };
    let json: serde_json::Value = serde_json::from_str(&summary(&["--format", "json"])).unwrap();
    let e1 = &json[0];
    assert_eq!(e1["key"], "E001");
    assert_eq!(e1["workdays"], 5);
    assert_eq!(e1["present_days"], 1);
    assert_eq!(e1["late_minutes"], 11);
    assert_eq!(e1["early_minutes"], 10);
    assert_eq!(e1["nonwork_seconds"]["chat"], 1500);
    let csv = summary(&["--format", "csv", "--by", "department"]);
    assert!(csv.lines().count() == 3, "{csv}");
    let table = summary(&[]);
    assert!(table.starts_with("key"), "{table}");
    let out = dir.path().join("summary.xlsx");
    summary(&["--format", "xlsx", "--out", out.to_str().unwrap()]);
    assert!(std::fs::read(&out).unwrap().starts_with(b"PK"));
    let daily = dir.path().join("daily.xlsx");
    c.cli(&[
        "report",
        "daily",
        "--date",
        "2026-11-24",
        "--format",
        "xlsx",
        "--out",
        daily.to_str().unwrap(),
        "--now",
        now,
    ]);
    assert!(std::fs::read(&daily).unwrap().starts_with(b"PK"));
}

// ------------------------------------------------------------------ headless Chromium

/// Headless Chromium driven over WebDriver (chromedriver, through fantoccini),
/// one blocking call at a time.
struct Driver {
    rt: tokio::runtime::Runtime,
    client: Option<fantoccini::Client>,
    child: Child,
    _profile: tempfile::TempDir,
}

/// How long a page a click navigated to may take to show an element.
const SHOWS_WITHIN: Duration = Duration::from_secs(20);

impl Driver {
    fn start() -> Option<Driver> {
        let which = Command::new("sh")
            .args(["-c", "command -v chromedriver"])
            .output()
            .ok()?;
        if !which.status.success() {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromedriver (Debian chromium-driver) is missing: .ci/packages installs it"
            );
            eprintln!("skipping the browser test: no chromedriver");
            return None;
        }
        // On a port of its own choosing, which it prints.
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').to_owned());
                }
            }
        });
        let port: u16 = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromedriver said where it listens")
            .parse()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--no-first-run",
                         format!("--user-data-dir={}", profile.path().display()),
                         "--window-size=1280,900"],
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(
                fantoccini::ClientBuilder::new(
                    hyper_util::client::legacy::connect::HttpConnector::new(),
                )
                .capabilities(caps.as_object().unwrap().clone())
                .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a WebDriver session");
        Some(Driver {
            rt,
            client: Some(client),
            child,
            _profile: profile,
        })
    }

    fn client(&self) -> &fantoccini::Client {
        self.client.as_ref().expect("an open session")
    }

    fn open(&mut self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap();
    }

    /// The element `css`, waiting within a bound for a page a click navigated to.
    fn find(&mut self, css: &str) -> fantoccini::elements::Element {
        let found = self
            .client()
            .wait()
            .at_most(SHOWS_WITHIN)
            .for_element(fantoccini::Locator::Css(css));
        self.rt
            .block_on(found)
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// `act` on the element `css`, found again while a navigation in flight
    /// replaces the page under it (a stale element), within a bound.
    fn on<T, F>(&mut self, css: &str, act: impl Fn(fantoccini::elements::Element) -> F) -> T
    where
        F: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let started = std::time::Instant::now();
        loop {
            let e = self.find(css);
            match self.rt.block_on(act(e)) {
                Ok(v) => return v,
                Err(fantoccini::error::CmdError::Standard(w))
                    if w.error == fantoccini::error::ErrorStatus::StaleElementReference
                        && started.elapsed() < SHOWS_WITHIN => {}
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    fn type_into(&mut self, css: &str, text: &str) {
        self.on(css, |e| async move { e.send_keys(text).await });
    }

    fn click(&mut self, css: &str) {
        self.on(css, |e| async move { e.click().await });
    }

    fn text(&mut self) -> String {
        self.on("body", |e| async move { e.text().await })
    }

    fn url(&mut self) -> String {
        self.rt
            .block_on(self.client().current_url())
            .unwrap()
            .to_string()
    }

    /// Sets the window's size (a laptop's, a phone's).
    fn window_size(&mut self, width: u32, height: u32) {
        self.rt
            .block_on(self.client().set_window_size(width, height))
            .unwrap();
    }

    /// The result of a script run in the page.
    fn script(&mut self, js: &str) -> serde_json::Value {
        self.rt
            .block_on(self.client().execute(js, Vec::new()))
            .unwrap()
    }

    /// Saves a PNG of the window.
    fn screenshot(&mut self, path: &Path) {
        let png = self.rt.block_on(self.client().screenshot()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Waits, within a bound, until the browser's address contains `needle` (a
    /// form's navigation may finish after the click returns).
    fn wait_for_url(&mut self, needle: &str) {
        kaoqin_tests::eventually(&format!("the browser at {needle}"), SHOWS_WITHIN, || {
            self.url().contains(needle).then_some(())
        });
    }

    fn login(&mut self, base: &str, user: &str, password: &str) {
        self.open(&format!("{base}/login"));
        self.type_into("input[name=username]", user);
        self.type_into("input[name=password]", password);
        self.click("#login");
        // The click may return before the form's navigation has finished (and
        // before the new session cookie is set): wait until the browser has left
        // the login page.
        kaoqin_tests::eventually("leaving the login page", SHOWS_WITHIN, || {
            (!self.url().contains("/login")).then_some(())
        });
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a browser test writes its screenshots: docs/screenshots/ with
/// KAOQIN_SCREENSHOTS=1, else the world's temp dir.
fn screenshots_dir(w: &World) -> PathBuf {
    let shots = if std::env::var_os("KAOQIN_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
    } else {
        w._dir.path().join("shots")
    };
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

/// Logs in through the real form in headless Chromium as an officer and as a
/// staff member, opens their main pages and checks what they show. With
/// KAOQIN_SCREENSHOTS=1 the screenshots are written to docs/screenshots/.
#[test]
fn headless_chromium_shows_the_main_pages() {
    let mut w = world();
    let Some(mut d) = Driver::start() else {
        return;
    };
    let shots = screenshots_dir(&w);
    // An appeal so the officer's appeal list has something to show.
    w.staff1.post(
        "/appeals",
        &[
            ("employee_id", "E001"),
            ("date", "2026-11-24"),
            ("requested_status", "field"),
            ("reason", "上午在区政府开会"),
        ],
    );
    let base = w.c.web();
    d.login(&base, "officer", "officer-pass-1");
    d.open(&format!("{base}/summary?from=2026-11-01&to=2026-11-30"));
    let text = d.text();
    assert!(text.contains("部门汇总") && text.contains("张三"), "{text}");
    assert!(text.contains("1 次 / 11 分钟"), "{text}");
    d.screenshot(&shots.join("officer-summary.png"));
    d.open(&format!("{base}/person/E001?month={MONTH}&day=2026-11-24"));
    let text = d.text();
    assert!(
        text.contains("08:41") && text.contains("聊天软件"),
        "{text}"
    );
    d.screenshot(&shots.join("officer-person-month.png"));
    // The day's picture stays readable on a laptop and a phone: drawn at least
    // 600 px wide, inside a frame that fits the window (a phone scrolls the
    // picture, not the page).
    let fits = "const f = document.querySelector('#day-picture').getBoundingClientRect(); \
                const s = document.querySelector('#day-picture svg').getBoundingClientRect(); \
                return [s.width, s.height, f.right, window.innerWidth];";
    for (width, height, name) in [(1366, 900, "laptop"), (390, 844, "phone")] {
        d.window_size(width, height);
        let v = d.script(fits);
        let n = |i: usize| v[i].as_f64().unwrap_or(0.0);
        assert!(n(0) >= 600.0 && n(1) > 90.0, "{name}: drawn readably {v}");
        assert!(
            n(2) <= n(3) + 1.0,
            "{name}: the frame inside the window {v}"
        );
        d.script("document.querySelector('#day-picture').scrollIntoView(); return 0;");
        d.screenshot(&shots.join(format!("day-timeline-{name}.png")));
    }
    // The officer's day at a glance: the tiles and the week's table fit a laptop
    // and a phone (the week's table scrolls inside its frame, not the page).
    d.window_size(1366, 900);
    d.open(&format!("{base}/today?date=2026-11-24"));
    let text = d.text();
    assert!(
        text.contains("今日概况") && text.contains("无法判定的人员及原因") && text.contains("张三"),
        "{text}"
    );
    let fits = "return [document.documentElement.scrollWidth, window.innerWidth, \
                document.querySelectorAll('#week svg.daymix').length];";
    for (width, height, name) in [(1366, 900, "laptop"), (390, 844, "phone")] {
        d.window_size(width, height);
        let v = d.script(fits);
        let n = |i: usize| v[i].as_f64().unwrap_or(0.0);
        assert!(n(0) <= n(1) + 1.0, "{name}: no sideways scrolling {v}");
        assert!(n(2) >= 14.0, "{name}: two departments by seven days {v}");
        if name == "phone" {
            d.script("document.querySelector('#unknown').scrollIntoView(); return 0;");
        }
        d.screenshot(&shots.join(format!("officer-today-{name}.png")));
    }
    d.window_size(1366, 900);
    d.open(&format!("{base}/appeals"));
    assert!(d.text().contains("上午在区政府开会"));
    d.screenshot(&shots.join("officer-appeals.png"));
    d.click("form.inline button");

    d.login(&base, "E001", "zhangsan-pass");
    d.open(&format!("{base}/person/E001?month={MONTH}&day=2026-11-24"));
    let text = d.text();
    assert!(
        text.contains("张三") && text.contains("对这一天提出申诉"),
        "{text}"
    );
    d.screenshot(&shots.join("staff-my-month.png"));
    d.open(&format!("{base}/person/E001/pc?month={MONTH}"));
    assert!(d.text().contains("聊天软件 25 分钟"));
    d.screenshot(&shots.join("staff-my-pc.png"));
    // The staff member cannot open another person's month in the browser either.
    d.open(&format!("{base}/person/E003?month={MONTH}"));
    assert!(d.text().contains("无权查看"));
}

/// A staff member files a day of leave in headless Chromium, their department
/// head approves it from the inbox with the month in view, and the day becomes
/// leave on the person's month and on the officer's monthly sheet. With
/// KAOQIN_SCREENSHOTS=1 the screenshots are written to docs/screenshots/.
#[test]
fn headless_chromium_files_leave_as_staff_and_the_head_approves_it() {
    let w = world();
    let Some(mut d) = Driver::start() else {
        return;
    };
    let shots = screenshots_dir(&w);
    let base = w.c.web();

    d.login(&base, "E001", "zhangsan-pass");
    d.open(&format!("{base}/requests"));
    d.type_into("#form-leave input[name=from]", "2026-11-25");
    d.type_into("#form-leave input[name=to]", "2026-11-25");
    d.type_into("#form-leave textarea[name=reason]", "家里有事，请假一天");
    d.click("#submit-leave");
    d.wait_for_url("filed=1");
    let text = d.text();
    assert!(
        text.contains("申请已提交")
            && text.contains("家里有事，请假一天")
            && text.contains("审批中"),
        "{text}"
    );
    d.screenshot(&shots.join("staff-requests.png"));

    d.login(&base, "head", "head-pass-1");
    d.open(&format!("{base}/requests"));
    let text = d.text();
    assert!(
        text.contains("待我审批")
            && text.contains("家里有事，请假一天")
            && text.contains("当月考勤 2026-11"),
        "{text}"
    );
    d.screenshot(&shots.join("head-inbox.png"));
    d.type_into("#inbox form.decide input[name=comment]", "同意");
    d.click("#inbox button.ok");
    // Back on the requests page, with nothing left to decide.
    kaoqin_tests::eventually("the inbox emptied", SHOWS_WITHIN, || {
        (!d.text().contains("待我审批")).then_some(())
    });
    assert!(d.text().contains("已批准"));
    d.open(&format!("{base}/person/E001?month={MONTH}&day=2026-11-25"));
    let text = d.text();
    assert!(text.contains("请假") && text.contains("request"), "{text}");

    d.login(&base, "officer", "officer-pass-1");
    d.open(&format!("{base}/monthly?month={MONTH}"));
    let text = d.text();
    assert!(
        text.contains("考勤月报 2026-11") && text.contains("制表人"),
        "{text}"
    );
    d.screenshot(&shots.join("officer-monthly.png"));
    d.open(&format!("{base}/requests?kind=leave"));
    assert!(d.text().contains("家里有事，请假一天"));
    d.screenshot(&shots.join("officer-requests.png"));
}

/// An admin uploads a staff CSV with a bad line in headless Chromium: the
/// problems are named and nothing is written; the fixed file is previewed and
/// imported on confirmation. With KAOQIN_SCREENSHOTS=1 the screenshots are
/// written to docs/screenshots/.
#[test]
fn headless_chromium_uploads_a_staff_file_checked_before_it_is_written() {
    let w = world();
    let Some(mut d) = Driver::start() else {
        return;
    };
    let shots = screenshots_dir(&w);
    let base = w.c.web();
    let bad = w._dir.path().join("new-staff.csv");
    std::fs::write(
        &bad,
        "employee_id,name,department,os_accounts,email\nE004,赵六,信息中心,zhaoliu,zhaoliu@office.test\nE005,,信息中心,sunqi,sunqi@\n",
    )
    .unwrap();
    d.login(&base, "root", "root-pass-1");
    d.open(&format!("{base}/admin/staff"));
    d.type_into("#csv-file", bad.to_str().unwrap());
    d.click("#upload-preview");
    d.wait_for_url("/admin/staff/preview");
    let text = d.text();
    assert!(
        text.contains("未写入任何内容") && text.contains("new-staff.csv: line 3: name: is empty"),
        "{text}"
    );
    d.screenshot(&shots.join("admin-staff-upload-problems.png"));
    assert!(
        !w.c.cli(&["staff", "list"]).contains("E004"),
        "nothing written"
    );

    std::fs::write(
        &bad,
        "employee_id,name,department,os_accounts,email\nE004,赵六,信息中心,zhaoliu,zhaoliu@office.test\nE005,孙七,信息中心,sunqi,sunqi@office.test\n",
    )
    .unwrap();
    d.open(&format!("{base}/admin/staff"));
    d.type_into("#csv-file", bad.to_str().unwrap());
    d.click("#upload-preview");
    d.wait_for_url("/admin/staff/preview");
    let text = d.text();
    assert!(text.contains("将新增 2") && text.contains("孙七"), "{text}");
    d.screenshot(&shots.join("admin-staff-preview.png"));
    assert!(
        !w.c.cli(&["staff", "list"]).contains("E004"),
        "a preview writes nothing"
    );
    d.click("#confirm-import");
    d.wait_for_url("imported=2");
    assert!(d.text().contains("孙七"));
    let list = w.c.cli(&["staff", "list"]);
    assert!(
        list.contains("E005,孙七,信息中心,sunqi,,sunqi@office.test"),
        "{list}"
    );
    d.open(&format!("{base}/admin/agents"));
    d.screenshot(&shots.join("admin-agents.png"));
}

/// The text of `page` between `start` and the next `end`.
fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page
        .find(start)
        .unwrap_or_else(|| panic!("no {start}: {page}"))
        + start.len();
    let len = page[from..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end} after {start}"));
    &page[from..from + len]
}

//! The web pages end to end: a real collector with `serve --http`, a replayed day,
//! accounts for every role, and plain HTTP requests (a tiny HTTP/1.1 client below)
//! checking what each role sees, what it is refused, appeals and corrections, the
//! audit trail, API tokens and the report exports.

use kaoqin_tests::{agent, bin, fixture, run_ok};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);
/// November 2026 holds the replayed day (Tuesday 2026-11-24).
const MONTH: &str = "2026-11";

// ------------------------------------------------------------------ helpers

/// A collector serving gRPC (plaintext) and the web pages, killed when dropped.
struct WebCollector {
    child: Child,
    data_dir: PathBuf,
    grpc: SocketAddr,
    http: SocketAddr,
}

impl WebCollector {
    /// `serve --plaintext --allow-replay --grpc 127.0.0.1:0 --http 127.0.0.1:0`,
    /// waiting (bounded) for both `listening` lines. Appeals may concern any day
    /// of the last hundred years, so that the fixture days stay appealable
    /// whatever today is.
    fn start(data_dir: &Path) -> WebCollector {
        WebCollector::start_with(data_dir, "[appeals]\nwindow_days = 36500\n")
    }

    /// As [`WebCollector::start`], with `config` (TOML) as the configuration.
    fn start_with(data_dir: &Path, config: &str) -> WebCollector {
        std::fs::create_dir_all(data_dir).unwrap();
        let config_file = data_dir.join("collector.toml");
        std::fs::write(&config_file, config).unwrap();
        let mut child = Command::new(bin("kaoqin-collector"))
            .args([
                "serve",
                "--plaintext",
                "--allow-replay",
                "--grpc",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(&config_file)
            .env("KAOQIN_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("kaoqin-collector listening ") {
                    let _ = tx.send(rest.to_owned());
                }
            }
        });
        let (mut grpc, mut http) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while grpc.is_none() || http.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("collector did not start within 30 s");
            let first = line.split_whitespace().next().unwrap_or_default();
            if let Some(a) = first.strip_prefix("grpc=") {
                grpc = Some(a.parse().unwrap());
            } else if let Some(a) = first.strip_prefix("http=") {
                http = Some(a.parse().unwrap());
            }
        }
        WebCollector {
            child,
            data_dir: data_dir.to_path_buf(),
            grpc: grpc.unwrap(),
            http: http.unwrap(),
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(bin("kaoqin-collector"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("KAOQIN_LOG", "warn");
        run_ok(cmd, LIMIT).unwrap()
    }
}

impl Drop for WebCollector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client (one request per connection) that keeps cookies.
struct Browser {
    addr: SocketAddr,
    cookies: BTreeMap<String, String>,
    bearer: Option<String>,
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Browser {
    fn new(addr: SocketAddr) -> Browser {
        Browser {
            addr,
            cookies: BTreeMap::new(),
            bearer: None,
        }
    }

    fn request(&mut self, method: &str, path: &str, body: Option<String>) -> Resp {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.push_str(&format!("Cookie: {}\r\n", c.join("; ")));
        }
        if let Some(t) = &self.bearer {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or_default();
        if method == "POST" {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).unwrap();
        let raw = read_response(&mut s);
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut body = raw[split + 4..].to_vec();
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        if headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap_or_default();
                if let Some((name, value)) = pair.split_once('=') {
                    if value.is_empty() {
                        self.cookies.remove(name);
                    } else {
                        self.cookies.insert(name.to_owned(), value.to_owned());
                    }
                }
            }
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, None)
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.request("POST", path, Some(form_encode(form)))
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

/// Reads one response: to the end of its Content-Length, or to the end of the
/// connection (chromedriver may keep it open).
fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|len| raw.len() >= split + 4 + len) {
                break;
            }
        }
    }
    raw
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..eol])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// Enrols an agent and replays `script` on it (as the attendance tests do).
fn replay_on_pc(c: &WebCollector, state: &Path, machine: &str, script: &str) {
    let token = c.cli(&["token", "create"]).trim().to_owned();
    let url = format!("http://{}", c.grpc);
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
    c: WebCollector,
    officer: Browser,
    head: Browser,
    staff1: Browser,
    staff3: Browser,
    admin: Browser,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let c = WebCollector::start(&data);
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

    let mut officer = Browser::new(c.http);
    officer.first_login("officer", officer_pw.trim(), "officer-pass-1");
    let mut head = Browser::new(c.http);
    head.first_login("head", head_pw.trim(), "head-pass-1");
    let mut admin = Browser::new(c.http);
    admin.first_login("root", admin_pw.trim(), "root-pass-1");
    let mut staff1 = Browser::new(c.http);
    staff1.first_login("E001", &staff["E001"], "zhangsan-pass");
    let mut staff3 = Browser::new(c.http);
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
    let c = WebCollector::start(&data);
    let pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let base = format!("https://{}", c.http);
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
    plain.args(["-sS", &format!("http://{}/login", c.http)]);
    let out = kaoqin_tests::run_bounded(plain, LIMIT).unwrap();
    assert!(
        !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("<form"),
        "a page over plain HTTP"
    );
}

#[test]
fn nobody_decides_their_own_appeal_and_appeals_cannot_flood() {
    let dir = tempfile::tempdir().unwrap();
    let c = WebCollector::start_with(
        &dir.path().join("collector"),
        "[appeals]\nwindow_days = 31\nmax_open = 3\n",
    );
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
    let mut boss = Browser::new(c.http);
    boss.first_login("boss", boss_pw.trim(), "boss-pass-1");
    let mut officer = Browser::new(c.http);
    officer.first_login("officer", officer_pw.trim(), "officer-pass-1");

    // Days relative to today (the window is), in the office's time zone.
    let today = jiff::tz::TimeZone::fixed(jiff::tz::offset(8))
        .to_datetime(jiff::Timestamp::now())
        .date();
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
    let c = WebCollector::start(&dir.path().join("collector"));
    let staff_csv = fixture("staff.csv");
    c.cli(&["staff", "import", staff_csv.to_str().unwrap()]);
    replay_on_pc(&c, &dir.path().join("pc1"), "pc-1-machine", "killed.jsonl");
    let pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let mut officer = Browser::new(c.http);
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
    let mut api = Browser::new(w.c.http);
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
    let c = WebCollector::start(&data);
    let pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let mut b = Browser::new(c.http);
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
    let c = WebCollector::start(&data);
    let pw = c.cli(&["user", "add", "--username", "officer", "--role", "officer"]);
    let mut b = Browser::new(c.http);
    let r = b.post("/login", &[("username", "officer"), ("password", "wrong")]);
    assert_eq!(r.status, 401);
    let r = b.post("/login", &[("username", "nobody"), ("password", pw.trim())]);
    assert_eq!(r.status, 401);
    assert!(b.cookies.is_empty());
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
        let mut fresh = Browser::new(c.http);
        let r = fresh.post(
            "/login",
            &[("username", "reader"), ("password", pw3.trim())],
        );
        assert_eq!(r.status, 303, "login {i}: {}", r.text());
    }
    // Guessing one username's password: five tries, then 429 whatever is typed,
    // while another username still logs in.
    let mut guesser = Browser::new(c.http);
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
    let mut other = Browser::new(c.http);
    let r = other.post("/login", &[("username", "officer"), ("password", "wrong")]);
    assert_eq!(r.status, 401, "another username is not locked out");

    // A one-time password gives no API access until it is changed.
    let pw4 = c.cli(&["user", "add", "--username", "scripter", "--role", "officer"]);
    assert!(!pw4.trim().is_empty());
    let token = c.cli(&["user", "token", "create", "--username", "scripter"]);
    let mut api = Browser::new(c.http);
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
    let mut flood = Browser::new(c.http);
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
    let c = WebCollector::start(&data);
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

/// A WebDriver session of headless Chromium driven through chromedriver's plain
/// HTTP+JSON protocol (no extra crates).
struct Driver {
    child: Child,
    http: Browser,
    session: String,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-";

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
        let port = kaoqin_tests::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut http = Browser::new(SocketAddr::from(([127, 0, 0, 1], port)));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(http.addr).is_ok() && http.get("/status").status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--no-first-run",
                         format!("--user-data-dir={}", profile.path().display()),
                         "--window-size=1280,900"],
            }
        }}});
        let r = http.json("POST", "/session", &caps);
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_owned();
        Some(Driver {
            child,
            http,
            session,
            _profile: profile,
        })
    }

    fn cmd(&mut self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let p = format!("/session/{}{path}", self.session);
        let r = self.http.json(method, &p, &body);
        assert!(r["value"].get("error").is_none(), "{method} {path}: {r}");
        r["value"].clone()
    }

    fn open(&mut self, url: &str) {
        self.cmd("POST", "/url", serde_json::json!({ "url": url }));
    }

    fn find(&mut self, css: &str) -> String {
        // A page a click navigated to may not be there yet: look again, within a
        // bound, while the element is missing.
        let deadline = Instant::now() + Duration::from_secs(20);
        let v = loop {
            let p = format!("/session/{}/element", self.session);
            let r = self.http.json(
                "POST",
                &p,
                &serde_json::json!({"using": "css selector", "value": css}),
            );
            let missing = r["value"]["error"] == "no such element";
            if !missing || Instant::now() >= deadline {
                assert!(
                    r["value"].get("error").is_none(),
                    "POST /element {css}: {r}"
                );
                break r["value"].clone();
            }
        };
        // The W3C element key ("element-6066-...") or the legacy "ELEMENT".
        v.as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.starts_with(ELEMENT) || *k == "ELEMENT")
            })
            .and_then(|(_, id)| id.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    fn type_into(&mut self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            serde_json::json!({ "text": text }),
        );
    }

    fn click(&mut self, css: &str) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/click"),
            serde_json::json!({}),
        );
    }

    fn text(&mut self) -> String {
        let e = self.find("body");
        self.cmd(
            "GET",
            &format!("/element/{e}/text"),
            serde_json::Value::Null,
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Sets the window's size (a laptop's, a phone's).
    fn window_size(&mut self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            serde_json::json!({ "width": width, "height": height }),
        );
    }

    /// The result of a script run in the page.
    fn script(&mut self, js: &str) -> serde_json::Value {
        self.cmd(
            "POST",
            "/execute/sync",
            serde_json::json!({ "script": js, "args": [] }),
        )
    }

    /// Saves a PNG of the window.
    fn screenshot(&mut self, path: &Path) {
        let b64 = self.cmd("GET", "/screenshot", serde_json::Value::Null);
        std::fs::write(path, base64_decode(b64.as_str().unwrap())).unwrap();
    }

    fn login(&mut self, base: &str, user: &str, password: &str) {
        self.open(&format!("{base}/login"));
        self.type_into("input[name=username]", user);
        self.type_into("input[name=password]", password);
        self.click("#login");
        // The click may return before the form's navigation has finished (and
        // before the new session cookie is set): wait until the browser has left
        // the login page, within a bound.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.cmd("GET", "/url", serde_json::Value::Null);
            if !url.as_str().unwrap_or_default().contains("/login") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still on the login page: {url}"
            );
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let p = format!("/session/{}", self.session);
        let _ = self.http.request("DELETE", &p, None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn json(&mut self, method: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let body = if body.is_null() {
            None
        } else {
            Some(body.to_string())
        };
        let r = self.request_typed(method, path, body, "application/json");
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
    }

    fn request_typed(&mut self, method: &str, path: &str, body: Option<String>, ty: &str) -> Resp {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: {ty}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let raw = read_response(&mut s);
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut body = raw[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        Resp {
            status: head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
            headers: Vec::new(),
            body,
        }
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

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = s.bytes().filter_map(val).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, d| (acc << 6) | d) << (6 * (4 - chunk.len()));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
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
    let base = format!("http://{}", w.c.http);
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

impl Driver {
    /// Waits, within a bound, until the browser's address contains `needle` (a
    /// form's navigation may finish after the click returns).
    fn wait_for_url(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.cmd("GET", "/url", serde_json::Value::Null);
            if url.as_str().unwrap_or_default().contains(needle) {
                return;
            }
            assert!(Instant::now() < deadline, "never reached {needle}: {url}");
        }
    }
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
    let base = format!("http://{}", w.c.http);

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
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.text().contains("待我审批") {
        assert!(
            Instant::now() < deadline,
            "the inbox still shows the request"
        );
    }
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
    let base = format!("http://{}", w.c.http);
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

//! Notifications end to end: `notify daily` composes a day's messages and sends
//! them to a real SMTP server and real HTTP robots started here; a refused
//! e-mail is retried on the next run, and nothing is sent twice however often
//! the command runs.

use kaoqin_tests::{Collector, run_bounded, run_ok};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const LIMIT: Duration = Duration::from_secs(120);

/// What the SMTP sink received: (envelope recipients, raw message).
type Mails = Arc<Mutex<Vec<(Vec<String>, Vec<u8>)>>>;

/// An SMTP server on loopback that records every message, or refuses every
/// connection with 421 while `accept` is false.
async fn smtp_sink(accept: Arc<AtomicBool>) -> (u16, Mails) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Mails = Arc::default();
    let store = mails.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (accept, store) = (accept.clone(), store.clone());
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                if !accept.load(Ordering::SeqCst) {
                    let _ = w.write_all(b"421 4.3.2 not now, try again later\r\n").await;
                    return;
                }
                let _ = w.write_all(b"220 sink.test ESMTP\r\n").await;
                let mut rcpt = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                    } else if cmd.starts_with("RCPT TO:") {
                        let to = line.trim_end()[8..].trim_matches(['<', '>', ' ']);
                        rcpt.push(to.to_owned());
                        b"250 2.1.5 ok\r\n"
                    } else if cmd == "DATA" {
                        let _ = w.write_all(b"354 go ahead\r\n").await;
                        let mut data = Vec::new();
                        loop {
                            let mut l = Vec::new();
                            if r.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if l == b".\r\n" {
                                break;
                            }
                            data.extend_from_slice(&l);
                        }
                        store
                            .lock()
                            .unwrap()
                            .push((std::mem::take(&mut rcpt), data));
                        b"250 2.0.0 queued\r\n"
                    } else if cmd == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (port, mails)
}

/// What the robot receiver received: (request path with query, JSON body).
type Posts = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// An HTTP server on loopback that answers every POST as a robot does
/// (`{"errcode":0}`) and records it.
async fn robot_receiver() -> (u16, Posts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts: Posts = Arc::default();
    let store = posts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                let mut request = String::new();
                if r.read_line(&mut request).await.unwrap_or(0) == 0 {
                    return;
                }
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).await.unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if r.read_exact(&mut body).await.is_err() {
                    return;
                }
                let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                store.lock().unwrap().push((path, json));
                let answer = r#"{"errcode":0,"errmsg":"ok"}"#;
                let _ = w
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                            answer.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (port, posts)
}

/// A parsed e-mail: (recipients, subject, text body).
fn read_mail(m: &(Vec<String>, Vec<u8>)) -> (Vec<String>, String, String) {
    let parsed = mail_parser::MessageParser::default()
        .parse(&m.1)
        .expect("an RFC 5322 message");
    (
        m.0.clone(),
        parsed.subject().unwrap_or_default().to_owned(),
        parsed.body_text(0).unwrap_or_default().into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_sent_by_mail_and_to_robots_once_and_a_refused_mail_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    // The day: 张三 (E001) late 11 and early 10 minutes on 2026-11-24.
    {
        let c = Collector::start(&data, "127.0.0.1:0").unwrap();
        c.replay_fixture(&dir.path().join("pc"), "day.jsonl")
            .unwrap();
        c.kill();
    }
    let staff = dir.path().join("staff.csv");
    std::fs::write(
        &staff,
        "employee_id,name,department,os_accounts,email\n\
         E001,张三,办公室,ZhangSan,zhangsan@office.test\n\
         E002,李四,办公室,lisi,lisi@office.test\n\
         E003,王五,信息中心,wangwu,\n",
    )
    .unwrap();
    let accept = Arc::new(AtomicBool::new(false));
    let (smtp, mails) = smtp_sink(accept.clone()).await;
    let (http, posts) = robot_receiver().await;
    let config = dir.path().join("notify.toml");
    std::fs::write(
        &config,
        format!(
            r#"[notify]
base_url = "https://kaoqin.office.test"
[notify.email]
smtp = "127.0.0.1:{smtp}"
from = "考勤 <kaoqin@office.test>"
[[notify.webhook]]
url = "http://127.0.0.1:{http}/robot/send?access_token=ding"
format = "dingtalk"
secret = "SEC000test"
[[notify.webhook]]
url = "http://127.0.0.1:{http}/cgi-bin/webhook/send?key=wecom"
format = "wecom"
msgtype = "text"
department = "办公室"
[[notify.webhook]]
url = "http://127.0.0.1:{http}/hook"
format = "json"
"#
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut cmd = kaoqin_tests::collector_command(args);
        cmd.arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config);
        cmd
    };
    // Off the runtime's threads, which serve the mail server and the robots.
    let run_async = |args: &[&str]| {
        let cmd = cli(args);
        tokio::task::spawn_blocking(move || run_bounded(cmd, LIMIT).unwrap())
    };
    let run = |args: &[&str]| run_ok(cli(args), LIMIT).unwrap();
    run(&["staff", "import", staff.to_str().unwrap()]);
    run(&[
        "user",
        "add",
        "--username",
        "lisi",
        "--role",
        "dept-head",
        "--department",
        "办公室",
        "--employee",
        "E002",
    ]);
    let daily = [
        "notify",
        "daily",
        "--date",
        "2026-11-24",
        "--now",
        "2026-11-25T02:00:00Z",
    ];

    // The mail server refuses: the robots get theirs, the e-mails wait.
    let out = run_async(&daily).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("sent 3, not delivered 3"), "{stdout}");
    assert!(
        stdout.contains("not delivered: 2026-11-24/person/E001/email: SMTP"),
        "{stdout}"
    );
    assert!(mails.lock().unwrap().is_empty());
    let listed = run(&["notify", "list", "--date", "2026-11-24"]);
    let e001 = listed
        .lines()
        .find(|l| l.contains("person/E001"))
        .expect("E001's mail");
    assert!(
        e001.contains(",1,") && e001.contains("SMTP"),
        "attempts and error: {e001}"
    );
    {
        let posts = posts.lock().unwrap();
        assert_eq!(posts.len(), 3, "{posts:?}");
        let ding = posts
            .iter()
            .find(|(p, _)| p.starts_with("/robot/send"))
            .unwrap();
        assert!(
            ding.0
                .contains("access_token=ding&timestamp=1795572000000&sign="),
            "{}",
            ding.0
        );
        assert_eq!(ding.1["msgtype"], "markdown");
        assert!(
            ding.1["markdown"]["text"]
                .as_str()
                .unwrap()
                .contains("办公室：应到 2 人"),
            "{}",
            ding.1
        );
        let wecom = posts
            .iter()
            .find(|(p, _)| p.starts_with("/cgi-bin"))
            .unwrap();
        let text = wecom.1["text"]["content"].as_str().unwrap();
        assert!(
            text.starts_with("部门考勤日报 办公室 2026-11-24") && !text.contains("信息中心"),
            "{text}"
        );
        let json = posts.iter().find(|(p, _)| p == "/hook").unwrap();
        assert_eq!(json.1["date"], "2026-11-24");
    }

    // The mail server is back: the next run sends the e-mails, and only them.
    accept.store(true, Ordering::SeqCst);
    let out = run_async(&daily).await.unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.contains("sent 3, not delivered 0"), "{out}");
    let got: Vec<_> = mails.lock().unwrap().iter().map(read_mail).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    let (to, subject, body) = got
        .iter()
        .find(|m| m.0 == ["zhangsan@office.test"])
        .unwrap()
        .clone();
    assert_eq!(to, ["zhangsan@office.test"]);
    assert_eq!(subject, "考勤提醒：2026-11-24 迟到 11 分钟，早退 10 分钟");
    assert!(
        body.contains("张三（E001）") && body.contains("- 迟到 11 分钟"),
        "{body}"
    );
    assert!(
        body.contains("https://kaoqin.office.test/person/E001?month=2026-11&day=2026-11-24"),
        "{body}"
    );
    // 李四 hears of their own day (no PC seen: unknown, never absent) and, as
    // the head, of the department's.
    let (_, subject, _) = got
        .iter()
        .find(|m| m.0 == ["lisi@office.test"] && m.1.starts_with("考勤提醒"))
        .unwrap()
        .clone();
    assert_eq!(
        subject,
        "考勤提醒：2026-11-24 无法判定：电脑数据不足（不计为缺勤）"
    );
    let (_, _, body) = got
        .iter()
        .find(|m| m.1 == "部门考勤日报 办公室 2026-11-24")
        .unwrap()
        .clone();
    assert!(
        body.contains("- 张三 E001：迟到 11 分钟，早退 10 分钟"),
        "{body}"
    );
    assert_eq!(
        posts.lock().unwrap().len(),
        3,
        "the robots are not sent to again"
    );

    // Run again (a restart, a second collector): nothing is sent twice.
    let out = run_async(&daily).await.unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.contains("sent 0, not delivered 0"), "{out}");
    assert_eq!(mails.lock().unwrap().len(), 3);
    assert_eq!(posts.lock().unwrap().len(), 3);
    assert!(run(&["audit", "list"]).contains("notify.daily"));
}

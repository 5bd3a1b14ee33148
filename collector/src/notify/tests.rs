//! The messages of a day from a real (SQLite) store, the schedule, the retry
//! delays and the robots' formats.

use super::*;
use crate::config::{Config, EmailConfig, WebhookConfig};
use crate::store::sqlite::SqliteStore;

fn ts(s: &str) -> Timestamp {
    format!("{s}:00+08:00").replace(' ', "T").parse().unwrap()
}

fn hook(format: &str, msgtype: &str, department: Option<&str>) -> WebhookConfig {
    WebhookConfig {
        url: "http://127.0.0.1:9/robot/send?access_token=t".into(),
        format: format.into(),
        msgtype: msgtype.into(),
        secret: None,
        department: department.map(str::to_owned),
    }
}

#[test]
fn dingtalk_signs_its_urls_as_its_documentation_says() {
    // base64(HMAC-SHA256(secret, "timestamp\nsecret")), computed independently.
    assert_eq!(
        transport::dingtalk_sign(1_796_000_000_000, "SEC000test"),
        "JJAQOOmDpJkmeVPE6mcu78ivaHK0q7bSjzaU09zSYW4="
    );
    let mut h = hook("dingtalk", "text", None);
    h.secret = Some("SEC000test".into());
    assert_eq!(
        transport::signed_url(&h, 1_796_000_000_000),
        "http://127.0.0.1:9/robot/send?access_token=t&timestamp=1796000000000&sign=JJAQOOmDpJkmeVPE6mcu78ivaHK0q7bSjzaU09zSYW4%3D"
    );
    // WeCom robots are not signed.
    h.format = "wecom".into();
    assert_eq!(transport::signed_url(&h, 1), h.url);
}

#[test]
fn robots_get_their_own_message_formats() {
    let o = Outgoing {
        key: "k".into(),
        date: jiff::civil::date(2026, 11, 24),
        channel: "webhook:0".into(),
        recipient: "r".into(),
        subject: "考勤日报 2026-11-24".into(),
        body: "办公室：应到 2 人\nhttp://x/summary".into(),
    };
    let b = transport::webhook_body(&hook("dingtalk", "markdown", None), &o);
    assert_eq!(b["msgtype"], "markdown");
    assert_eq!(b["markdown"]["title"], "考勤日报 2026-11-24");
    assert!(
        b["markdown"]["text"]
            .as_str()
            .unwrap()
            .starts_with("### 考勤日报")
    );
    let b = transport::webhook_body(&hook("wecom", "markdown", None), &o);
    assert!(
        b["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("办公室：应到 2 人")
    );
    let b = transport::webhook_body(&hook("wecom", "text", None), &o);
    assert_eq!(
        b["text"]["content"],
        "考勤日报 2026-11-24\n办公室：应到 2 人\nhttp://x/summary"
    );
    let b = transport::webhook_body(&hook("json", "markdown", None), &o);
    assert_eq!(
        (&b["key"], &b["date"]),
        (&serde_json::json!("k"), &serde_json::json!("2026-11-24"))
    );
}

#[test]
fn the_schedule_sends_the_previous_working_day_on_working_days_after_the_hour() {
    let config = Config::default();
    let rules = Rules::from_config(&config).unwrap();
    let due = |t: &str| due_date(&rules, &config.notify, ts(t)).map(|d| d.to_string());
    assert_eq!(due("2026-11-25 09:30").as_deref(), Some("2026-11-24"));
    assert_eq!(due("2026-11-25 09:29"), None, "before the hour");
    assert_eq!(
        due("2026-11-30 10:00").as_deref(),
        Some("2026-11-27"),
        "Monday: Friday's"
    );
    assert_eq!(due("2026-11-28 10:00"), None, "nothing on a Saturday");
    // After National Day 2026 (1-7 October, 8 October a working day), the last
    // working day before it: 30 September.
    assert_eq!(due("2026-10-08 10:00").as_deref(), Some("2026-09-30"));
}

#[test]
fn retries_wait_longer_each_time_up_to_an_hour() {
    let s = |n| retry_delay(n).as_secs();
    assert!((60..=120).contains(&s(1)), "{}", s(1));
    assert!(s(3) >= 240, "{}", s(3));
    assert!(s(30) <= 7200 && s(30) >= 3600, "{}", s(30));
}

#[test]
fn a_day_becomes_one_message_per_person_head_and_robot_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let person = |id: &str, name: &str, dept: &str, email: &str| Person {
        employee_id: id.into(),
        name: name.into(),
        department: dept.into(),
        accounts: vec![id.to_lowercase()],
        own_pcs: Vec::new(),
        email: email.into(),
        left_on: None,
    };
    store
        .import_staff(
            &[
                person("E001", "张三", "办公室", "zhangsan@office.test"),
                person("E002", "李四", "办公室", "lisi@office.test"),
                person("E003", "王五", "信息中心", ""),
            ],
            0,
        )
        .unwrap();
    store
        .add_user(
            &crate::users::NewUser {
                username: "lisi".into(),
                role: Role::DeptHead,
                employee_id: Some("E002".into()),
                departments: vec!["办公室".into()],
            },
            0,
        )
        .unwrap();
    let mut config = Config::default();
    config.notify.base_url = "https://kaoqin.office.test/".into();
    config.notify.email = Some(EmailConfig {
        smtp: "127.0.0.1:25".into(),
        from: "kaoqin <kaoqin@office.test>".into(),
        starttls: false,
        username: None,
        password: None,
    });
    config.notify.webhook = vec![
        hook("json", "text", None),
        hook("wecom", "text", Some("信息中心")),
    ];
    let rules = Rules::from_config(&config).unwrap();
    // A leave request of 张三 waits for the head.
    let svc = crate::requests::service::Requests {
        store: &*store,
        rules: &rules,
        config: &config.requests,
    };
    let zhangsan = User {
        id: 9,
        username: "zhangsan".into(),
        role: Role::Staff,
        employee_id: Some("E001".into()),
        departments: Vec::new(),
        must_change_password: false,
    };
    let filing = crate::requests::Filing {
        kind: "leave".into(),
        leave_type: Some("sick".into()),
        from: Some("2026-11-26".into()),
        to: Some("2026-11-26".into()),
        reason: "fever".into(),
        ..Default::default()
    };
    svc.file(&zhangsan, &filing, ts("2026-11-25 12:00"))
        .unwrap();
    let composer = Composer {
        store: &*store,
        rules: &rules,
        config: &config.notify,
        requests: &config.requests,
        appeal_days: 31,
    };
    let date = jiff::civil::date(2026, 11, 24);
    let list = composer.compose(date, ts("2026-11-26 10:00")).unwrap();
    let keys: Vec<&str> = list.iter().map(|o| o.key.as_str()).collect();
    // No PC was ever seen for anyone: every working day is unknown, never absent.
    assert_eq!(
        keys,
        [
            "2026-11-24/person/E001/email",
            "2026-11-24/person/E002/email",
            "2026-11-24/head/lisi:办公室/email",
            "2026-11-24/group/*/webhook:0",
            "2026-11-24/group/信息中心/webhook:1",
        ],
        "E003 has no e-mail; no officer has one either"
    );
    let p = &list[0];
    assert_eq!(p.recipient, "zhangsan@office.test");
    assert_eq!(
        p.subject,
        "考勤提醒：2026-11-24 无法判定：电脑数据不足（不计为缺勤）"
    );
    assert!(
        p.body
            .contains("https://kaoqin.office.test/person/E001?month=2026-11&day=2026-11-24"),
        "{}",
        p.body
    );
    assert!(p.body.contains("31 天内"), "{}", p.body);
    let head = &list[2];
    assert!(head.body.contains("应到 2 人"), "{}", head.body);
    assert!(
        head.body.contains("待您审批的申请 1 件") && head.body.contains("fever"),
        "{}",
        head.body
    );
    assert!(list[3].body.contains("办公室：") && list[3].body.contains("信息中心："));
    assert!(!list[4].body.contains("办公室"), "{}", list[4].body);
    assert_eq!(list[4].recipient, "http://127.0.0.1:9/robot/send");
    // Composing again gives the same keys, so nothing is stored twice.
    assert_eq!(store.enqueue_notifications(date, &list, 1).unwrap(), 5);
    let again = composer.compose(date, ts("2026-11-26 11:00")).unwrap();
    assert_eq!(store.enqueue_notifications(date, &again, 2).unwrap(), 0);
    assert!(store.notify_composed(date).unwrap());
    // In the language each account chose on the pages: 李四 (the head, E002)
    // chose English; 张三 has no account and gets the office's.
    let lisi = store.user_by_name("lisi").unwrap().unwrap();
    store.set_user_lang(lisi.id, "en").unwrap();
    let mixed = composer.compose(date, ts("2026-11-26 10:00")).unwrap();
    assert!(
        mixed[0].subject.starts_with("考勤提醒"),
        "{}",
        mixed[0].subject
    );
    assert!(
        mixed[1].subject.starts_with("Attendance 2026-11-24"),
        "{}",
        mixed[1].subject
    );
    assert_eq!(mixed[2].subject, "Department digest 办公室 2026-11-24");
    assert!(
        mixed[3].body.contains("应到"),
        "robots keep the office's language"
    );
    store.set_user_lang(lisi.id, "zh").unwrap();
    // In English when the office says so.
    let mut english = config.notify.clone();
    english.language = "en".into();
    let composer = Composer {
        config: &english,
        ..composer
    };
    let en = composer.compose(date, ts("2026-11-26 10:00")).unwrap();
    assert!(
        en[0].subject.starts_with("Attendance 2026-11-24: unknown"),
        "{}",
        en[0].subject
    );
}

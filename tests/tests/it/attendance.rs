//! Attendance end to end: the staff directory, a replayed day, stored verdicts and
//! the daily report, with the real binaries.

use kaoqin_tests::{Collector, agent, bin, collector_on, fixture, run_bounded, run_ok};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
/// Well after 2026-11-24, so no verdict of that day is provisional.
const NOW: &str = "2026-11-26T00:00:00Z";

/// Enrols an agent with its own machine identity and replays the fixture `script`
/// on it.
fn replay_on_pc(collector: &Collector, state: &Path, machine: &str, script: &str) {
    replay_file(collector, state, machine, &fixture(script));
}

/// Enrols an agent with its own machine identity (unless it is already) and
/// replays the script at `path` on it.
fn replay_file(collector: &Collector, state: &Path, machine: &str, path: &Path) {
    if !state.join("enrolment.json").exists() {
        let token = collector.token().unwrap();
        let url = collector.url();
        let mut enroll = agent(state, &["enroll", "--collector", &url, "--token", &token]);
        enroll.env("KAOQIN_MACHINE_ID", machine);
        run_ok(enroll, LIMIT).unwrap();
    }
    let replay = format!("replay:{}", path.display());
    let mut run = agent(state, &["run", "--probe", &replay, "--once"]);
    run.env("KAOQIN_MACHINE_ID", machine);
    run_ok(run, LIMIT).unwrap();
}

fn daily(data_dir: &Path, date: &str) -> Vec<serde_json::Value> {
    let out = run_ok(
        collector_on(
            data_dir,
            &[
                "report", "daily", "--date", date, "--format", "json", "--now", NOW,
            ],
        ),
        LIMIT,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array().expect("a JSON array").clone()
}

fn of<'a>(rows: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["employee_id"] == id)
        .unwrap_or_else(|| panic!("{id} missing from {rows:#?}"))
}

fn import_staff(data_dir: &Path) {
    let staff = fixture("staff.csv");
    let out = run_ok(
        collector_on(data_dir, &["staff", "import", staff.to_str().unwrap()]),
        LIMIT,
    )
    .unwrap();
    assert!(out.contains("3 added"), "{out}");
}

#[test]
fn the_replayed_day_is_judged_with_the_documented_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let collector = Collector::start(&data, "127.0.0.1:0").unwrap();
    import_staff(&data);
    replay_on_pc(
        &collector,
        &dir.path().join("pc1"),
        "pc-1-machine",
        "day.jsonl",
    );

    let rows = daily(&data, "2026-11-24");
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let e1 = of(&rows, "E001");
    // The fixture day, office hours 08:30-12:00 and 14:00-17:30 (+08:00), 5 min grace:
    // - logon 08:41 -> arrival 00:41Z, 11 minutes late (counted from 08:30);
    // - logoff 17:20 -> departure 09:20Z, 10 minutes early (counted from 17:30);
    // - chat (WeChat) 09:30-09:55 = 1500 s, media (QQMusic) 10:55-11:10 = 900 s,
    //   nonwork_web (taobao) 11:10-11:20 = 600 s: all inside the morning session;
    // - downloads (Thunder) 13:58-14:08: only 14:00-14:08 is office time = 480 s;
    // - Word and et (spreadsheet) are neither non-work nor counted.
    assert_eq!(e1["status"], "present", "{e1:#}");
    assert_eq!(e1["name"], "张三");
    assert_eq!(e1["department"], "办公室");
    assert_eq!(e1["date"], "2026-11-24");
    assert_eq!(e1["arrival"], "2026-11-24T00:41:00Z");
    assert_eq!(e1["departure"], "2026-11-24T09:20:00Z");
    assert_eq!(e1["late_minutes"], 11);
    assert_eq!(e1["early_minutes"], 10);
    assert_eq!(
        e1["nonwork_seconds"],
        serde_json::json!({"chat": 1500, "downloads": 480, "media": 900, "nonwork_web": 600}),
        "{e1:#}"
    );
    // Each line of evidence: English words and a stable code with its values.
    let arrival = e1["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["said"]["code"] == "arrival")
        .unwrap_or_else(|| panic!("{e1:#}"));
    assert!(
        arrival["what"]
            .as_str()
            .unwrap()
            .starts_with("arrival: first presence of the day"),
        "{arrival:#}"
    );
    assert!(arrival["said"]["by"]["code"].is_string(), "{arrival:#}");
    assert_eq!(e1["why"][0]["code"], "present", "{e1:#}");
    assert!(e1["coverage"]["office_seconds"].as_u64().unwrap() > 0);
    assert!(e1["schedule_version"].is_string());

    // No PC was ever seen for E002 or E003: no data is not evidence of absence.
    assert_eq!(of(&rows, "E002")["status"], "unknown");
    assert_eq!(of(&rows, "E002")["arrival"], serde_json::Value::Null);

    // --department filters; the other formats carry the same verdict.
    let out = run_ok(
        collector_on(
            &data,
            &[
                "report",
                "daily",
                "--date",
                "2026-11-24",
                "--format",
                "csv",
                "--department",
                "信息中心",
                "--now",
                NOW,
            ],
        ),
        LIMIT,
    )
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("employee_id,name,department,date,status"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("E003,王五,信息中心,2026-11-24,unknown"),
        "{out}"
    );
    drop(collector);
}

/// The instant of `hm` on `date` in Asia/Shanghai, as the JSON reports print it.
fn utc(date: &str, hm: &str) -> String {
    let t: jiff::Timestamp = format!("{date}T{hm}:00+08:00").parse().unwrap();
    t.to_string()
}

#[test]
fn a_logoff_is_the_departure_and_a_killed_agent_charges_no_early_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let collector = Collector::start(&data, "127.0.0.1:0").unwrap();
    import_staff(&data);
    // Wednesday: Word from 08:36, WeChat from 17:21, logoff at 17:24, off a
    // 5-minute mark and with no lock or idle before it.
    let wednesday = dir.path().join("wednesday.jsonl");
    std::fs::write(
        &wednesday,
        r#"{"at":"2026-11-25T08:00:00+08:00","type":"boot"}
{"at":"2026-11-25T08:36:00+08:00","type":"logon","user":"zhangsan"}
{"at":"2026-11-25T08:36:00+08:00","type":"foreground","user":"zhangsan","process":"WINWORD.EXE"}
{"at":"2026-11-25T17:21:00+08:00","type":"foreground","user":"zhangsan","process":"WeChat.exe"}
{"at":"2026-11-25T17:24:00+08:00","type":"logoff","user":"zhangsan"}
{"at":"2026-11-25T18:00:00+08:00","type":"shutdown"}
"#,
    )
    .unwrap();
    let pc = dir.path().join("pc1");
    // Monday: logon 08:20, and the agent stops at 10:00 without a shutdown.
    replay_file(&collector, &pc, "pc-1-machine", &fixture("killed.jsonl"));
    replay_file(&collector, &pc, "pc-1-machine", &wednesday);

    let e1 = of(&daily(&data, "2026-11-25"), "E001").clone();
    assert_eq!(e1["departure"], utc("2026-11-25", "17:24"), "{e1:#}");
    assert_eq!(
        (&e1["late_minutes"], &e1["early_minutes"]),
        (&6.into(), &6.into()),
        "{e1:#}"
    );
    // The slice the agent closed at the logoff carries its WeChat minutes.
    assert_eq!(e1["nonwork_seconds"]["chat"], 180, "{e1:#}");
    assert_eq!(e1["unverified"], 0, "{e1:#}");

    let e1 = of(&daily(&data, "2026-11-23"), "E001").clone();
    assert_eq!(e1["status"], "present", "{e1:#}");
    assert_eq!(e1["departure"], utc("2026-11-23", "10:00"), "{e1:#}");
    assert_eq!(e1["early_minutes"], 0, "{e1:#}");
    assert_eq!(e1["unverified"], 1, "{e1:#}");
    let departure = e1["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "departure")
        .unwrap();
    assert_eq!(departure["outcome"], "unverified", "{e1:#}");
    assert_eq!(departure["unverified_minutes"], 450, "{e1:#}");
    let evidence = e1["evidence"].to_string();
    assert!(
        evidence.contains("departure not verified, 450 min early not charged")
            && evidence.contains("agent stopped at 10:00:00 without a shutdown"),
        "{evidence}"
    );

    // The summary counts Monday with the unverified days, not with early departures.
    let out = run_ok(
        collector_on(
            &data,
            &[
                "report",
                "summary",
                "--from",
                "2026-11-23",
                "--to",
                "2026-11-25",
                "--format",
                "json",
                "--now",
                NOW,
            ],
        ),
        LIMIT,
    )
    .unwrap();
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "E001")
        .unwrap();
    assert_eq!(
        (
            &row["early_count"],
            &row["early_minutes"],
            &row["unverified_days"]
        ),
        (&1.into(), &6.into(), &1.into()),
        "{row:#}"
    );
    drop(collector);
}

#[test]
fn late_events_from_a_second_pc_change_the_stored_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let collector = Collector::start(&data, "127.0.0.1:0").unwrap();
    import_staff(&data);
    replay_on_pc(
        &collector,
        &dir.path().join("pc1"),
        "pc-1-machine",
        "day.jsonl",
    );
    let before = daily(&data, "2026-11-24");
    assert_eq!(of(&before, "E001")["late_minutes"], 11);

    // Days later, a second PC of zhangsan delivers the same day: 08:25 to 17:40.
    replay_on_pc(
        &collector,
        &dir.path().join("pc2"),
        "pc-2-machine",
        "day-pc2.jsonl",
    );
    let after = daily(&data, "2026-11-24");
    let e1 = of(&after, "E001");
    assert_eq!(e1["status"], "present");
    assert_eq!(e1["arrival"], "2026-11-24T00:25:00Z", "{e1:#}");
    assert_eq!(e1["departure"], "2026-11-24T09:40:00Z", "{e1:#}");
    assert_eq!(e1["late_minutes"], 0);
    assert_eq!(e1["early_minutes"], 0);

    // The stored verdict itself changed: recomputing the dirty days finds nothing
    // left, and a second report reads the same verdict back.
    let out = run_ok(
        collector_on(&data, &["verdicts", "recompute", "--now", NOW]),
        LIMIT,
    )
    .unwrap();
    assert!(out.contains("Recomputed"), "{out}");
    assert_eq!(daily(&data, "2026-11-24"), after);

    // Replaying the first PC again (duplicates) changes nothing.
    replay_on_pc(
        &collector,
        &dir.path().join("pc1"),
        "pc-1-machine",
        "day.jsonl",
    );
    assert_eq!(daily(&data, "2026-11-24"), after);
    drop(collector);
}

#[test]
fn whole_day_leave_turns_an_unknown_day_into_leave() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    std::fs::create_dir_all(&data).unwrap();
    import_staff(&data);
    assert_eq!(of(&daily(&data, "2026-11-24"), "E002")["status"], "unknown");

    // Unknown employees and bad instants are refused with the argument named.
    let mut bad = collector_on(
        &data,
        &[
            "leave",
            "add",
            "--employee",
            "E999",
            "--kind",
            "leave",
            "--from",
            "2026-11-24",
            "--to",
            "2026-11-24",
        ],
    );
    let out = run_bounded(std::mem::replace(&mut bad, Command::new("true")), LIMIT).unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("E999"));
    let out = run_bounded(
        collector_on(
            &data,
            &[
                "leave",
                "add",
                "--employee",
                "E002",
                "--kind",
                "leave",
                "--from",
                "soon",
                "--to",
                "2026-11-24",
            ],
        ),
        LIMIT,
    )
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--from"),
        "{out:?}"
    );

    run_ok(
        collector_on(
            &data,
            &[
                "leave",
                "add",
                "--employee",
                "E002",
                "--kind",
                "leave",
                "--from",
                "2026-11-24",
                "--to",
                "2026-11-24",
                "--note",
                "年假",
            ],
        ),
        LIMIT,
    )
    .unwrap();
    let rows = daily(&data, "2026-11-24");
    assert_eq!(of(&rows, "E002")["status"], "leave", "{rows:#?}");
    assert_eq!(of(&rows, "E002")["late_minutes"], 0);
    // The leave is listed, in UTC.
    let out = run_ok(collector_on(&data, &["leave", "list"]), LIMIT).unwrap();
    assert!(
        out.contains("E002,leave,2026-11-23T16:00:00Z,2026-11-24T16:00:00Z,年假"),
        "{out}"
    );
}

#[test]
fn staff_import_is_all_or_nothing_and_unmapped_accounts_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let collector = Collector::start(&data, "127.0.0.1:0").unwrap();
    // Events arrive before anyone is in the directory: stored, and listed as unmapped.
    replay_on_pc(
        &collector,
        &dir.path().join("pc1"),
        "pc-1-machine",
        "day.jsonl",
    );
    let out = run_ok(collector_on(&data, &["staff", "unmapped"]), LIMIT).unwrap();
    assert!(out.starts_with("account,pcs,last_seen\n"), "{out}");
    assert!(out.contains("zhangsan,"), "{out}");

    // A file with a clash is refused whole, naming both lines.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "employee_id,name,department,os_accounts\nE001,张三,办公室,zhangsan\nE002,李四,办公室,ZhangSan|lisi\n",
    )
    .unwrap();
    let out = run_bounded(
        collector_on(&data, &["staff", "import", bad.to_str().unwrap()]),
        LIMIT,
    )
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv: line 3: os_accounts"), "{err}");
    assert!(err.contains("E001 on line 2"), "{err}");
    let out = run_ok(collector_on(&data, &["staff", "list"]), LIMIT).unwrap();
    assert_eq!(out.lines().count(), 1, "nothing imported: {out}");

    // Import, then re-import with a change: updated in place, and zhangsan is mapped.
    import_staff(&data);
    let moved = dir.path().join("moved.csv");
    std::fs::write(
        &moved,
        "employee_id,name,department,os_accounts\nE001,张三,信息中心,zhangsan;zs\n",
    )
    .unwrap();
    let out = run_ok(
        collector_on(&data, &["staff", "import", moved.to_str().unwrap()]),
        LIMIT,
    )
    .unwrap();
    assert!(out.contains("0 added, 1 updated"), "{out}");
    let out = run_ok(collector_on(&data, &["staff", "list"]), LIMIT).unwrap();
    assert!(out.contains("E001,张三,信息中心,zhangsan;zs"), "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let out = run_ok(collector_on(&data, &["staff", "unmapped"]), LIMIT).unwrap();
    assert!(!out.contains("zhangsan"), "{out}");
    // The department change reaches the stored verdict.
    let rows = daily(&data, "2026-11-24");
    assert_eq!(of(&rows, "E001")["department"], "信息中心");
    assert_eq!(of(&rows, "E001")["status"], "present");
    drop(collector);
}

#[test]
fn calendar_show_prints_every_day_with_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        "[[attendance.calendar_override]]\ndate = 2026-12-31\nkind = \"holiday\"\nnote = \"closure\"\n",
    )
    .unwrap();
    let show = |year: &str, format: &str| {
        let mut cmd = Command::new(bin("kaoqin-collector"));
        cmd.args(["calendar", "show", "--year", year, "--format", format])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("none"));
        run_bounded(cmd, LIMIT).unwrap()
    };
    let out = show("2026", "csv");
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "2026 has its notice built in");
    let out = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "date,kind,basis");
    assert_eq!(lines.len(), 366);
    assert!(lines.contains(&"2026-10-01,holiday,built_in"));
    assert!(lines.contains(&"2026-10-10,makeup_workday,built_in"));
    assert!(
        lines.contains(&"2026-12-31,holiday,override"),
        "override applied"
    );
    assert!(lines.contains(&"2026-12-30,workday,week"));
    assert!(
        !dir.path().join("none").exists(),
        "showing the calendar creates no data dir"
    );

    // 2027 has no notice: New Year's Day is a holiday by law, and the year says
    // it is provisional on stdout and stderr.
    let out = show("2027", "csv");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2027 is provisional"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 366);
    assert!(text.contains("2027-01-01,holiday,provisional\n"), "{text}");
    assert!(
        text.contains("2027-02-05,holiday,provisional\n"),
        "春节 eve"
    );
    assert!(text.contains("2027-01-04,workday,week\n"));
    let json: serde_json::Value = serde_json::from_slice(&show("2027", "json").stdout).unwrap();
    assert_eq!(json["basis"], "provisional");
    assert_eq!(json["provisional"], true);
    assert_eq!(json["days"][0]["note"], "元旦");
}

/// The statutory holidays of 2027 in the import format, from `calendar show`.
fn notice_2027(extra: &str) -> String {
    let mut cmd = Command::new(bin("kaoqin-collector"));
    cmd.args(["calendar", "show", "--year", "2027", "--format", "notice"]);
    let out = run_ok(cmd, LIMIT).unwrap();
    assert!(
        out.starts_with("date,kind,note\n2027-01-01,holiday,元旦\n"),
        "{out}"
    );
    format!("{out}{extra}")
}

#[test]
fn an_imported_notice_is_checked_whole_stored_audited_and_rejudges_the_year() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let collector = Collector::start(&data, "127.0.0.1:0").unwrap();
    import_staff(&data);
    replay_on_pc(
        &collector,
        &dir.path().join("pc1"),
        "pc-1-machine",
        "day.jsonl",
    );
    drop(collector);
    assert_eq!(of(&daily(&data, "2026-11-24"), "E001")["status"], "present");

    // A file with mistakes: every one named with its line, nothing stored.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        notice_2027("2027-02-30,holiday,\n2027-02-22,makeup_workday,\n")
            .replace("2027-10-03,holiday,国庆节\n", ""),
    )
    .unwrap();
    let mut cmd = collector_on(&data, &["calendar", "import", "--year", "2027"]);
    cmd.arg(&bad);
    let out = run_bounded(cmd, LIMIT).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 14: date: \"2027-02-30\" is not a date"),
        "{err}"
    );
    assert!(
        err.contains("line 15: kind: 2027-02-22 is a Monday"),
        "{err}"
    );
    assert!(
        err.contains("2027-10-03 (国庆节) is a statutory holiday"),
        "{err}"
    );
    let show_2027 = || {
        run_ok(
            collector_on(&data, &["calendar", "show", "--year", "2027"]),
            LIMIT,
        )
        .unwrap()
    };
    assert!(
        show_2027().contains("2027-01-01,holiday,provisional"),
        "nothing stored"
    );

    // The integrity list warns about the missing notice from 1 October on.
    let integrity = |now: &str| {
        run_ok(
            collector_on(&data, &["integrity", "--format", "json", "--now", now]),
            LIMIT,
        )
        .unwrap()
    };
    assert!(integrity("2026-12-01T00:00:00Z").contains("calendar_notice_missing"));
    assert!(!integrity("2026-09-01T00:00:00Z").contains("calendar_notice_missing"));
    assert!(integrity("2027-01-02T00:00:00Z").contains("calendar_provisional"));

    // The real notice: 2027-02-20 (a Saturday) worked.
    let good = dir.path().join("2027.csv");
    std::fs::write(
        &good,
        notice_2027("2027-02-20,makeup_workday,春节调休上班\n"),
    )
    .unwrap();
    let mut cmd = collector_on(&data, &["calendar", "import", "--year", "2027"]);
    cmd.arg(&good).args(["--now", NOW]);
    let out = run_ok(cmd, LIMIT).unwrap();
    assert!(
        out.contains("13 holiday(s), 1 make-up working day(s)"),
        "{out}"
    );
    let shown = show_2027();
    assert!(
        shown.contains("2027-02-20,makeup_workday,imported"),
        "{shown}"
    );
    assert!(shown.contains("2027-01-01,holiday,imported"), "{shown}");
    assert!(!integrity("2027-01-02T00:00:00Z").contains("calendar_"));
    let audit = run_ok(collector_on(&data, &["audit", "list"]), LIMIT).unwrap();
    assert!(audit.contains("calendar.import"), "{audit}");

    // A notice for a year with verdicts judges them again: 2026 re-imported with
    // 24 November as an office-wide bridged holiday turns zhangsan's present day
    // into a holiday.
    let mut cmd = Command::new(bin("kaoqin-collector"));
    cmd.args(["calendar", "show", "--year", "2026", "--format", "notice"]);
    let notice_2026 = run_ok(cmd, LIMIT).unwrap() + "2026-11-24,holiday,调休\n";
    let file = dir.path().join("2026.csv");
    std::fs::write(&file, notice_2026).unwrap();
    let mut cmd = collector_on(&data, &["calendar", "import", "--year", "2026"]);
    cmd.arg(&file).args(["--now", NOW]);
    let out = run_ok(cmd, LIMIT).unwrap();
    assert!(out.contains("person-day(s) judged again"), "{out}");
    assert!(!out.contains("; 0 person-day"), "{out}");
    let rows = daily(&data, "2026-11-24");
    assert_eq!(of(&rows, "E001")["status"], "holiday");
    assert_eq!(of(&rows, "E001")["calendar_provisional"], false);
}

#[test]
fn a_domain_account_is_its_plain_name_and_presence_on_another_pc_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("collector");
    let collector = Collector::start(&data, "127.0.0.1:0").unwrap();
    // 张三 is listed by plain name with one own PC; the Windows PC reports the
    // account with its domain.
    let staff = |text: &str| {
        let path = dir.path().join("staff.csv");
        std::fs::write(&path, text).unwrap();
        run_ok(
            collector_on(&data, &["staff", "import", path.to_str().unwrap()]),
            LIMIT,
        )
        .unwrap();
    };
    staff(
        "employee_id,name,department,os_accounts,own_pcs\n\
         E001,张三,办公室,zhangsan,PC-OWN-MACHINE\n",
    );
    let script = std::fs::read_to_string(fixture("day.jsonl"))
        .unwrap()
        .replace("\"user\":\"zhangsan\"", "\"user\":\"OFFICE\\\\zhangsan\"");
    assert!(script.contains("OFFICE\\\\zhangsan"));
    let path = dir.path().join("domain-day.jsonl");
    std::fs::write(&path, script).unwrap();
    replay_file(
        &collector,
        &dir.path().join("pc"),
        "pc-shared-machine",
        &path,
    );

    let rows = daily(&data, "2026-11-24");
    let e1 = of(&rows, "E001");
    assert_eq!(e1["status"], "present", "{e1:#}");
    assert_eq!(e1["late_minutes"], 11, "{e1:#}");
    assert_eq!(e1["early_minutes"], 10, "{e1:#}");
    let evidence = e1["evidence"].to_string();
    assert!(
        evidence.contains("OFFICE\\\\zhangsan logged on"),
        "{evidence}"
    );
    assert!(
        evidence.contains("presence on a PC that is not one of the person's own"),
        "{evidence}"
    );
    // The account in its domain is nobody else's.
    let unmapped = run_ok(collector_on(&data, &["staff", "unmapped"]), LIMIT).unwrap();
    assert!(!unmapped.contains("zhangsan"), "{unmapped}");

    // The PC listed as 张三's own: nothing marked.
    staff(
        "employee_id,name,department,os_accounts,own_pcs\n\
         E001,张三,办公室,zhangsan,pc-shared-machine\n",
    );
    let e1 = of(&daily(&data, "2026-11-24"), "E001").clone();
    assert_eq!(e1["status"], "present", "{e1:#}");
    assert!(
        !e1["evidence"]
            .to_string()
            .contains("not one of the person's own"),
        "{e1:#}"
    );
}

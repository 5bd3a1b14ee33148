//! Verdict tests: table-driven with fixed instants, and proptests for the invariants
//! (order and duplicates do not change a verdict; no duration is negative).

use jiff::Timestamp;
use jiff::civil::{Date, date};
use proptest::prelude::*;

use super::*;

const PC: &str = "pc-zhang";

fn t(s: &str) -> Timestamp {
    // "2026-03-16 08:41" or "2026-03-16 08:41:30", Asia/Shanghai.
    let s = if s.len() == 16 {
        format!("{s}:00")
    } else {
        s.to_string()
    };
    format!("{}T{}+08:00", &s[..10], &s[11..]).parse().unwrap()
}

fn person() -> Person {
    Person {
        employee_id: "E001".into(),
        name: "张三".into(),
        department: "办公室".into(),
        accounts: vec!["zhangsan".into()],
        own_pcs: Vec::new(),
        email: String::new(),
        left_on: None,
    }
}

fn sig(at: Timestamp, kind: SignalKind) -> Signal {
    Signal {
        at,
        pc: PC.into(),
        kind,
    }
}

fn sess(at: &str, kind: SessionKind) -> Signal {
    sig(
        t(at),
        SignalKind::Session {
            account: "zhangsan".into(),
            kind,
        },
    )
}

fn usage(start: &str, end: &str, category: &str, active_seconds: u32) -> Signal {
    sig(
        t(end),
        SignalKind::Usage {
            account: "zhangsan".into(),
            start: t(start),
            end: t(end),
            category: category.into(),
            active_seconds,
        },
    )
}

fn boot(at: &str, previous_seen: Option<&str>) -> Signal {
    sig(
        t(at),
        SignalKind::AgentStart {
            reason: StartReason::SystemBoot,
            previous_seen: previous_seen.map(t),
        },
    )
}

fn shutdown(at: &str) -> Signal {
    sig(
        t(at),
        SignalKind::AgentStop {
            reason: StopReason::SystemShutdown,
        },
    )
}

/// Heartbeats every `every` seconds over `[from, to]`; the account is listed while a
/// logon..logoff span in `logged` contains the instant.
fn heartbeats(from: &str, to: &str, every: u32, logged: &[(&str, &str)]) -> Vec<Signal> {
    let (from, to) = (t(from), t(to));
    let logged: Vec<(Timestamp, Timestamp)> = logged.iter().map(|(a, b)| (t(a), t(b))).collect();
    let mut out = Vec::new();
    let mut at = from;
    while at <= to {
        let accounts = if logged.iter().any(|(a, b)| *a <= at && at < *b) {
            vec!["zhangsan".into()]
        } else {
            vec![]
        };
        out.push(sig(
            at,
            SignalKind::Heartbeat {
                interval_seconds: every,
                accounts,
            },
        ));
        at = interval::add_secs(at, i64::from(every));
    }
    out
}

/// A whole ordinary day on one PC: boot 05:50, logon, logoff, shutdown 18:40, and the
/// heartbeats between.
fn day(d: &str, logon: &str, logoff: &str) -> Vec<Signal> {
    let at = |hm: &str| format!("{d} {hm}");
    let mut s = vec![
        boot(&at("05:50"), None),
        sess(&at(logon), SessionKind::Logon),
        sess(&at(logoff), SessionKind::Logoff),
    ];
    s.extend(heartbeats(
        &at("05:50:30"),
        &at("18:40"),
        60,
        &[(&at(logon), &at(logoff))],
    ));
    s.push(shutdown(&at("18:40:10")));
    s
}

struct Fx {
    calendar: Calendar,
    schedules: ScheduleSet,
    exemptions: Vec<Exemption>,
    settings: Settings,
    known_pcs: Vec<String>,
    own_pcs: Option<BTreeSet<String>>,
    now: Timestamp,
}

impl Fx {
    fn new() -> Fx {
        Fx {
            calendar: Calendar::official(),
            schedules: ScheduleSet::default(),
            exemptions: Vec::new(),
            settings: Settings::default(),
            known_pcs: vec![PC.into()],
            own_pcs: None,
            now: t("2027-01-01 00:00"),
        }
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            calendar: &self.calendar,
            schedules: &self.schedules,
            exemptions: &self.exemptions,
            settings: &self.settings,
            known_pcs: &self.known_pcs,
            own_pcs: self.own_pcs.as_ref(),
            now: self.now,
        }
    }

    fn run(&self, d: Date, signals: &[Signal]) -> DayVerdict {
        verdict(&person(), d, signals, &self.ctx())
    }

    fn picture(&self, d: Date, signals: &[Signal]) -> timeline::DayTimeline {
        timeline::timeline(&person(), d, signals, &self.ctx())
    }

    fn exempt(mut self, kind: ExemptionKind, start: &str, end: &str) -> Fx {
        self.exemptions.push(Exemption {
            employee_id: "E001".into(),
            kind,
            start: t(start),
            end: t(end),
            note: "approved".into(),
        });
        self
    }
}

fn has_evidence(v: &DayVerdict, needle: &str) -> bool {
    v.evidence.iter().any(|e| e.what.contains(needle))
}

fn checkpoint(v: &DayVerdict, session: usize, kind: CheckpointKind) -> &CheckpointResult {
    v.checkpoints
        .iter()
        .find(|c| c.session == session && c.kind == kind)
        .expect("checkpoint")
}

const MON: Date = date(2026, 3, 16);

#[test]
fn arrival_and_departure_table() {
    // (name, logon, logoff, status, late, early, arrival outcome, departure outcome)
    let cases = [
        (
            "on time",
            "08:29",
            "17:31",
            0,
            0,
            Outcome::OnTime,
            Outcome::OnTime,
        ),
        (
            "08:41 is 11 late",
            "08:41",
            "17:31",
            11,
            0,
            Outcome::Late,
            Outcome::OnTime,
        ),
        (
            "08:34 within grace",
            "08:34",
            "17:31",
            0,
            0,
            Outcome::OnTime,
            Outcome::OnTime,
        ),
        (
            "08:35:00 edge of grace",
            "08:35",
            "17:31",
            0,
            0,
            Outcome::OnTime,
            Outcome::OnTime,
        ),
        (
            "08:35:30 past grace",
            "08:35:30",
            "17:31",
            5,
            0,
            Outcome::Late,
            Outcome::OnTime,
        ),
        (
            "17:19 is 11 early",
            "08:20",
            "17:19",
            0,
            11,
            Outcome::OnTime,
            Outcome::Early,
        ),
        (
            "17:26 within grace",
            "08:20",
            "17:26",
            0,
            0,
            Outcome::OnTime,
            Outcome::OnTime,
        ),
        (
            "afternoon only",
            "14:05",
            "17:40",
            335,
            0,
            Outcome::Late,
            Outcome::OnTime,
        ),
        (
            "morning only",
            "08:10",
            "11:30",
            0,
            360,
            Outcome::OnTime,
            Outcome::Early,
        ),
    ];
    let fx = Fx::new();
    for (name, on, off, late, early, a, d) in cases {
        let v = fx.run(MON, &day("2026-03-16", on, off));
        assert_eq!(v.status, Status::Present, "{name}");
        assert_eq!(v.day_kind, DayKind::Workday, "{name}");
        assert_eq!(v.arrival, Some(t(&format!("2026-03-16 {on}"))), "{name}");
        assert_eq!(v.departure, Some(t(&format!("2026-03-16 {off}"))), "{name}");
        assert_eq!((v.late_minutes, v.early_minutes), (late, early), "{name}");
        assert_eq!(
            checkpoint(&v, 0, CheckpointKind::Arrival).outcome,
            a,
            "{name}"
        );
        assert_eq!(
            checkpoint(&v, 1, CheckpointKind::Departure).outcome,
            d,
            "{name}"
        );
        assert_eq!(
            v.checkpoints.len(),
            2,
            "{name}: default checks morning arrival and afternoon departure"
        );
        assert_eq!(v.schedule_version, schedule::BUILTIN_ID, "{name}");
        assert!(!v.provisional, "{name}");
        assert!(
            has_evidence(
                &v,
                "arrival: first presence of the day (zhangsan logged on)"
            ),
            "{name}"
        );
    }
}

/// A split day that checks all four checkpoints.
const FOUR_CHECKPOINTS: &str = r#"
[[default]]
effective_from = "2024-01-01"
sessions = [
  { start = "08:30", end = "12:00", check_arrival = true, check_departure = true },
  { start = "14:00", end = "17:30", check_arrival = true, check_departure = true },
]"#;

#[test]
fn split_shift_with_all_four_checkpoints() {
    let mut fx = Fx::new();
    fx.schedules = ScheduleSet::from_toml(FOUR_CHECKPOINTS).unwrap();
    // Lunch logged off: the PC shows the person was not at it, so the minutes
    // count.
    let mut s = day("2026-03-16", "08:25", "17:35");
    s.push(sess("2026-03-16 11:40", SessionKind::Logoff));
    s.push(sess("2026-03-16 14:10", SessionKind::Logon));
    s.retain(|x| {
        !matches!(&x.kind, SignalKind::Heartbeat { .. })
            || !(t("2026-03-16 11:40")..t("2026-03-16 14:10")).contains(&x.at)
    });
    s.extend(heartbeats(
        "2026-03-16 11:40:30",
        "2026-03-16 14:09:30",
        60,
        &[],
    ));
    let v = fx.run(MON, &s);
    assert_eq!(v.checkpoints.len(), 4);
    let c = |i, k| {
        let c = checkpoint(&v, i, k);
        (c.outcome, c.minutes, c.actual)
    };
    assert_eq!(
        c(0, CheckpointKind::Arrival),
        (Outcome::OnTime, 0, Some(t("2026-03-16 08:25")))
    );
    assert_eq!(
        c(0, CheckpointKind::Departure),
        (Outcome::Early, 20, Some(t("2026-03-16 11:40")))
    );
    assert_eq!(
        c(1, CheckpointKind::Arrival),
        (Outcome::Late, 10, Some(t("2026-03-16 14:10")))
    );
    assert_eq!(
        c(1, CheckpointKind::Departure),
        (Outcome::OnTime, 0, Some(t("2026-03-16 17:35")))
    );
    assert_eq!((v.late_minutes, v.early_minutes, v.unverified), (10, 20, 0));

    // Lunch with the screen locked: the session stayed open, which says no more
    // about where the person was than a PC nobody heard from, so the same minutes
    // are not charged (as a day locked throughout is not absent).
    let mut s = day("2026-03-16", "08:25", "17:35");
    s.push(sess("2026-03-16 11:40", SessionKind::Lock));
    s.push(sess("2026-03-16 14:10", SessionKind::Unlock));
    let v = fx.run(MON, &s);
    let c = |i, k| {
        let c = checkpoint(&v, i, k);
        (c.outcome, c.minutes, c.unverified_minutes)
    };
    assert_eq!(
        c(0, CheckpointKind::Departure),
        (Outcome::Unverified, 0, 20)
    );
    assert_eq!(c(1, CheckpointKind::Arrival), (Outcome::Unverified, 0, 10));
    assert_eq!((v.late_minutes, v.early_minutes, v.unverified), (0, 0, 2));
    assert_eq!(v.status, Status::Present);
    assert!(
        has_evidence(
            &v,
            "departure not verified, 20 min early not charged: not accounted for from 11:40:00 to 12:00:00: zhangsan logged on (screen locked or idle)"
        ),
        "{:#?}",
        v.evidence
    );
    assert!(
        v.policy_note
            .contains("Early departure at 12:00 not verified (20 min not charged)"),
        "{}",
        v.policy_note
    );
    assert_eq!(v.schedule_version, "default@2024-01-01");
}

#[test]
fn nonwork_time_only_in_office_hours() {
    let fx = Fx::new();
    let mut s = day("2026-03-16", "07:00", "18:30");
    s.extend([
        usage("2026-03-16 10:00", "2026-03-16 10:10", "chat", 600), // counted
        usage("2026-03-16 12:10", "2026-03-16 12:40", "chat", 1800), // lunch
        usage("2026-03-16 18:00", "2026-03-16 18:20", "games", 1200), // after hours
        usage("2026-03-16 07:10", "2026-03-16 07:30", "media", 1200), // before hours
        usage("2026-03-16 11:55", "2026-03-16 12:05", "nonwork_web", 600), // straddles 12:00: half
        usage("2026-03-16 15:00", "2026-03-16 15:10", "games", 120), // partly active: 120
        usage("2026-03-16 15:00", "2026-03-16 15:30", "other", 1800), // not non-work
        usage("2026-03-16 16:00", "2026-03-16 16:30", "work", 1800), // not non-work
    ]);
    let v = fx.run(MON, &s);
    let expected: BTreeMap<String, u64> = [
        ("chat".to_string(), 600),
        ("nonwork_web".to_string(), 300),
        ("games".to_string(), 120),
    ]
    .into();
    assert_eq!(v.nonwork_seconds, expected);
    assert_eq!(v.coverage.office_seconds, 7 * 3600);
    assert_eq!(v.coverage.covered_seconds, 7 * 3600);
}

#[test]
fn nonwork_not_counted_inside_exemptions() {
    let fx = Fx::new().exempt(ExemptionKind::Field, "2026-03-16 14:00", "2026-03-16 16:00");
    let mut s = day("2026-03-16", "08:20", "17:40");
    s.push(usage("2026-03-16 15:00", "2026-03-16 15:10", "chat", 600));
    s.push(usage("2026-03-16 16:00", "2026-03-16 16:10", "chat", 600));
    let v = fx.run(MON, &s);
    assert_eq!(v.nonwork_seconds.get("chat"), Some(&600));
}

#[test]
fn holiday_rest_and_makeup_days() {
    let fx = Fx::new();
    // National Day 2026: holiday; presence is evidence only.
    let v = fx.run(date(2026, 10, 1), &day("2026-10-01", "09:10", "11:00"));
    assert_eq!((v.status, v.day_kind), (Status::Holiday, DayKind::Holiday));
    assert_eq!((v.late_minutes, v.early_minutes), (0, 0));
    assert!(v.checkpoints.is_empty());
    assert!(v.policy_note.contains("国庆节"), "{}", v.policy_note);
    assert!(has_evidence(&v, "zhangsan logged on"));
    assert_eq!(v.arrival, Some(t("2026-10-01 09:10")));

    // Saturday 2026-10-10 is a make-up working day.
    let v = fx.run(date(2026, 10, 10), &day("2026-10-10", "08:41", "17:45"));
    assert_eq!(
        (v.status, v.day_kind),
        (Status::Present, DayKind::MakeupWorkday)
    );
    assert_eq!(v.late_minutes, 11);

    // Sunday 2026-10-11 is an ordinary rest day; no data at all is still rest.
    let v = fx.run(date(2026, 10, 11), &[]);
    assert_eq!((v.status, v.day_kind), (Status::Rest, DayKind::Rest));
    let v = fx.run(date(2026, 3, 14), &[]);
    assert_eq!(v.status, Status::Rest);
}

#[test]
fn absent_only_on_evidence() {
    let fx = Fx::new();
    // Shut down cleanly on Friday evening, booted cleanly on Tuesday morning.
    let s = vec![
        sess("2026-03-13 17:35", SessionKind::Logoff),
        shutdown("2026-03-13 17:40"),
        boot("2026-03-17 08:05", Some("2026-03-13 17:40")),
        sess("2026-03-17 08:20", SessionKind::Logon),
    ];
    let v = fx.run(MON, &s);
    assert_eq!(v.status, Status::Absent, "{}", v.policy_note);
    assert_eq!(
        v.coverage,
        Coverage {
            office_seconds: 7 * 3600,
            covered_seconds: 0
        }
    );
    assert!(has_evidence(&v, "clean shutdown"), "{:#?}", v.evidence);
    assert!(v.checkpoints.iter().all(|c| c.outcome == Outcome::Missed));

    // On all day with a live agent, nobody logged on.
    let mut s = vec![boot("2026-03-16 07:50", None)];
    s.extend(heartbeats("2026-03-16 07:51", "2026-03-16 18:00", 60, &[]));
    let v = fx.run(MON, &s);
    assert_eq!(v.status, Status::Absent, "{}", v.policy_note);
    assert_eq!(v.coverage.covered_seconds, 7 * 3600);

    // The boot after the shutdown says the agent was alive later than the shutdown:
    // something ran in between that we did not hear about.
    let s = vec![
        shutdown("2026-03-13 17:40"),
        boot("2026-03-17 08:05", Some("2026-03-16 09:00")),
    ];
    assert_eq!(fx.run(MON, &s).status, Status::Unknown);
}

#[test]
fn unknown_when_pcs_are_not_accounted_for() {
    let fx = Fx::new();
    let mut alive = vec![boot("2026-03-16 07:50", None)];
    alive.extend(heartbeats("2026-03-16 07:51", "2026-03-16 18:00", 60, &[]));
    let without = |from: &str, to: &str| -> Vec<Signal> {
        alive
            .iter()
            .filter(|s| s.at < t(from) || s.at > t(to))
            .cloned()
            .collect()
    };

    // Crash: heartbeats stop at 10:00, the agent restarts after a crash at 11:00.
    let mut crash = without("2026-03-16 10:00:30", "2026-03-16 11:00:30");
    crash.push(sig(
        t("2026-03-16 11:00"),
        SignalKind::AgentStart {
            reason: StartReason::CrashRestart,
            previous_seen: None,
        },
    ));
    // Heartbeats missing from 09:00 to 09:30.
    let missing = without("2026-03-16 09:00:30", "2026-03-16 09:30");
    // A data gap over office hours.
    let mut gap = alive.clone();
    gap.push(sig(
        t("2026-03-16 10:00"),
        SignalKind::DataGap {
            from: t("2026-03-16 09:00"),
            to: t("2026-03-16 09:30"),
            dropped: 42,
        },
    ));
    // Service stopped by hand (not a shutdown), started again later.
    let mut stopped = without("2026-03-16 12:30", "2026-03-16 15:00");
    stopped.push(sig(
        t("2026-03-16 12:30"),
        SignalKind::AgentStop {
            reason: StopReason::ServiceStop,
        },
    ));
    stopped.push(sig(
        t("2026-03-16 15:00"),
        SignalKind::AgentStart {
            reason: StartReason::ServiceStart,
            previous_seen: None,
        },
    ));
    // Logged on but locked all day: the person's account is listed in heartbeats.
    let mut locked = vec![
        boot("2026-03-16 07:50", None),
        sess("2026-03-16 07:55", SessionKind::Logon),
    ];
    locked.push(sess("2026-03-16 07:55:10", SessionKind::Lock));
    locked.extend(heartbeats(
        "2026-03-16 07:56",
        "2026-03-16 18:00",
        60,
        &[("2026-03-16 07:55", "2026-03-17 00:00")],
    ));
    locked.retain(|s| {
        !matches!(
            &s.kind,
            SignalKind::Session {
                kind: SessionKind::Logon,
                ..
            }
        )
    });
    // Shut down and not started again.
    let off = vec![shutdown("2026-03-13 17:40")];

    let cases: [(&str, Vec<Signal>, &str); 6] = [
        ("crash", crash, "agent crashed"),
        (
            "missing heartbeats",
            missing,
            "not accounted for from 09:00:00 to 09:31:00: no heartbeat from 09:00:00 to 09:31:00 (expected every 60 s)",
        ),
        (
            "data gap",
            gap,
            "data gap from 09:00:00 to 09:30:00: 42 events dropped",
        ),
        ("service stop", stopped, "without a shutdown"),
        (
            "locked all day",
            locked,
            "zhangsan logged on (screen locked or idle)",
        ),
        ("never started again", off, "not started again yet"),
    ];
    for (name, s, why) in cases {
        let v = fx.run(MON, &s);
        assert_eq!(v.status, Status::Unknown, "{name}: {}", v.policy_note);
        assert!(has_evidence(&v, why), "{name}: {:#?}", v.evidence);
    }

    // No PC ever seen for the person.
    let mut fx = Fx::new();
    fx.known_pcs.clear();
    let v = fx.run(MON, &[]);
    assert_eq!(v.status, Status::Unknown);
    assert!(
        v.policy_note.contains("no PC has ever reported"),
        "{}",
        v.policy_note
    );
    // A known PC that says nothing is not evidence either.
    let v = Fx::new().run(MON, &[]);
    assert_eq!(v.status, Status::Unknown);
    assert!(
        has_evidence(&v, "nothing ever heard from this PC"),
        "{:#?}",
        v.evidence
    );
}

#[test]
fn exemptions() {
    // Whole day of leave, not present.
    let fx = Fx::new().exempt(ExemptionKind::Leave, "2026-03-16 00:00", "2026-03-17 00:00");
    let v = fx.run(MON, &[]);
    assert_eq!(v.status, Status::Leave);
    assert!(
        v.checkpoints
            .iter()
            .all(|c| c.outcome == Outcome::Excused && c.excused_by == Some(ExemptionKind::Leave))
    );
    assert!(has_evidence(&v, "leave from"));

    // Business trip all day counts as field.
    let fx = Fx::new().exempt(
        ExemptionKind::BusinessTrip,
        "2026-03-15 00:00",
        "2026-03-20 00:00",
    );
    assert_eq!(fx.run(MON, &[]).status, Status::Field);

    // Half-day field work in the morning excuses a 13:50 arrival.
    let fx = Fx::new().exempt(ExemptionKind::Field, "2026-03-16 08:30", "2026-03-16 12:00");
    let v = fx.run(MON, &day("2026-03-16", "13:50", "17:40"));
    assert_eq!((v.status, v.late_minutes), (Status::Present, 0));
    let c = checkpoint(&v, 0, CheckpointKind::Arrival);
    assert_eq!(
        (c.outcome, c.excused_by),
        (Outcome::Excused, Some(ExemptionKind::Field))
    );

    // Leave until 10:00 moves the expected arrival to 10:00.
    let fx = Fx::new().exempt(ExemptionKind::Leave, "2026-03-16 08:30", "2026-03-16 10:00");
    let v = fx.run(MON, &day("2026-03-16", "10:20", "17:40"));
    let c = checkpoint(&v, 0, CheckpointKind::Arrival);
    assert_eq!(
        (c.outcome, c.minutes, c.expected),
        (Outcome::Late, 20, t("2026-03-16 10:00"))
    );
    let v = fx.run(MON, &day("2026-03-16", "10:04", "17:40"));
    assert_eq!(v.late_minutes, 0);

    // Leave from 16:00 moves the expected departure to 16:00.
    let fx = Fx::new().exempt(ExemptionKind::Leave, "2026-03-16 16:00", "2026-03-16 18:00");
    let v = fx.run(MON, &day("2026-03-16", "08:20", "15:40"));
    assert_eq!(v.early_minutes, 20);

    // Morning leave, afternoon not present, PC on and nobody logged on: absent.
    let fx = Fx::new().exempt(ExemptionKind::Leave, "2026-03-16 08:30", "2026-03-16 12:00");
    let mut s = vec![boot("2026-03-16 07:50", None)];
    s.extend(heartbeats("2026-03-16 07:51", "2026-03-16 18:00", 60, &[]));
    let v = fx.run(MON, &s);
    assert_eq!(v.status, Status::Absent, "{}", v.policy_note);
    // Someone else's exemption changes nothing.
    let mut fx = Fx::new().exempt(ExemptionKind::Leave, "2026-03-16 00:00", "2026-03-17 00:00");
    fx.exemptions[0].employee_id = "E999".into();
    assert_eq!(fx.run(MON, &s).status, Status::Absent);
}

#[test]
fn overnight_session_belongs_to_the_day_it_started() {
    let fx = Fx::new();
    let mut s = vec![boot("2026-03-16 19:50", None)];
    s.push(sess("2026-03-16 20:00", SessionKind::Logon));
    s.extend(heartbeats(
        "2026-03-16 19:51",
        "2026-03-17 01:29",
        60,
        &[("2026-03-16 20:00", "2026-03-17 01:30")],
    ));
    s.push(sess("2026-03-17 01:30", SessionKind::Logoff));
    s.extend(day("2026-03-17", "08:20", "17:40"));
    let v = fx.run(MON, &s);
    assert_eq!(v.arrival, Some(t("2026-03-16 20:00")));
    assert_eq!(v.departure, Some(t("2026-03-17 01:30")));
    let v = fx.run(date(2026, 3, 17), &s);
    assert_eq!(v.arrival, Some(t("2026-03-17 08:20")));
    assert_eq!(v.departure, Some(t("2026-03-17 17:40")));
    assert_eq!((v.late_minutes, v.early_minutes), (0, 0));
    // A session that started before the boundary of the next day still belongs to it.
    let s = vec![
        sess("2026-03-17 03:50", SessionKind::Logon),
        sess("2026-03-17 04:30", SessionKind::Logoff),
    ];
    assert_eq!(fx.run(MON, &s).departure, Some(t("2026-03-17 04:30")));
    assert_eq!(fx.run(date(2026, 3, 17), &s).arrival, None);
}

#[test]
fn seasonal_and_versioned_schedules() {
    let mut fx = Fx::new();
    fx.schedules = ScheduleSet::from_toml(
        r#"
[[default]]
effective_from = 2025-01-01
sessions = [{ start = "08:30", end = "12:00" }, { start = "14:00", end = "17:30" }]
[[default.seasons]]
name = "summer"
from = [6, 1]
to = [9, 30]
sessions = [{ start = "08:00", end = "12:00" }, { start = "14:30", end = "18:00" }]

[[default]]
effective_from = 2026-01-01
sessions = [{ start = "09:00", end = "12:00" }, { start = "13:30", end = "17:00" }]
"#,
    )
    .unwrap();
    // Seasonal switch in 2025: Friday 30 May under normal hours, Monday 2 June in summer.
    let v = fx.run(date(2025, 5, 30), &day("2025-05-30", "08:10", "17:40"));
    assert_eq!(
        (v.late_minutes, v.schedule_version.as_str()),
        (0, "default@2025-01-01")
    );
    let v = fx.run(date(2025, 6, 3), &day("2025-06-03", "08:10", "17:40"));
    assert_eq!(v.late_minutes, 10);
    assert_eq!(v.early_minutes, 20);
    assert_eq!(v.schedule_version, "default@2025-01-01 (season summer)");

    // Effective-date change: last March judged under last March's rules.
    let v = fx.run(date(2025, 3, 17), &day("2025-03-17", "08:45", "17:00"));
    assert_eq!((v.late_minutes, v.early_minutes), (15, 30));
    let v = fx.run(MON, &day("2026-03-16", "08:45", "17:00"));
    assert_eq!((v.late_minutes, v.early_minutes), (0, 0));
    assert_eq!(v.schedule_version, "default@2026-01-01");
}

#[test]
fn flexible_schedule() {
    let mut fx = Fx::new();
    fx.schedules = ScheduleSet::from_toml(
        r#"
[[departments."办公室"]]
effective_from = "2026-01-01"
name = "flex-2026"
flexible = { band_start = "07:00", band_end = "19:00", core_start = "09:00", core_end = "16:00", required_minutes = 480 }
"#,
    )
    .unwrap();
    // (logon, logoff, late, early)
    let cases = [
        ("07:30", "16:00", 0, 0),  // 480 min from 07:30 is 15:30; core ends 16:00
        ("06:10", "15:30", 0, 30), // counted from the band start 07:00 (15:00); core ends 16:00
        ("08:30", "16:00", 0, 30), // expected 16:30
        ("09:20", "17:20", 20, 0), // late against core start, expected 17:20
        ("09:04", "17:04", 0, 0),
    ];
    for (on, off, late, early) in cases {
        let v = fx.run(MON, &day("2026-03-16", on, off));
        assert_eq!(
            (v.late_minutes, v.early_minutes),
            (late, early),
            "{on}-{off}: {:?}",
            v.checkpoints
        );
        assert!(
            v.schedule_version.starts_with("flex-2026 (flexible"),
            "{}",
            v.schedule_version
        );
    }
}

#[test]
fn day_in_progress_is_judged_only_up_to_now() {
    let mut fx = Fx::new();
    let s = day("2026-03-16", "08:25", "17:40");
    fx.now = t("2026-03-16 12:00");
    let v = fx.run(MON, &s);
    assert_eq!(v.status, Status::Present);
    assert!(v.provisional);
    assert_eq!(
        checkpoint(&v, 1, CheckpointKind::Departure).outcome,
        Outcome::Pending
    );
    assert_eq!(v.early_minutes, 0);
    // Presence lasts until its last evidence: the heartbeat at 11:59:30.
    assert_eq!(v.departure, Some(t("2026-03-16 11:59:30")));
    assert_eq!(v.coverage.office_seconds, 3 * 3600 + 1800);

    // Before anything is due: unknown, not absent.
    fx.now = t("2026-03-16 08:20");
    let v = fx.run(
        MON,
        &heartbeats("2026-03-16 07:00", "2026-03-16 08:20", 60, &[]),
    );
    assert_eq!(v.status, Status::Unknown);
    assert_eq!(
        checkpoint(&v, 0, CheckpointKind::Arrival).outcome,
        Outcome::Pending
    );

    // A day that has not started.
    fx.now = t("2026-03-15 12:00");
    assert_eq!(fx.run(MON, &[]).status, Status::Unknown);
}

#[test]
fn order_duplicates_and_late_arrivals_do_not_matter() {
    let fx = Fx::new();
    let mut s = day("2026-03-16", "08:41", "17:19");
    s.push(usage("2026-03-16 10:00", "2026-03-16 10:30", "chat", 900));
    let reference = fx.run(MON, &s);
    let mut shuffled = s.clone();
    shuffled.reverse();
    shuffled.extend(s.iter().step_by(3).cloned());
    shuffled.rotate_left(17);
    assert_eq!(fx.run(MON, &shuffled), reference);
    assert_eq!((reference.late_minutes, reference.early_minutes), (11, 11));
}

#[test]
fn clock_offsets_and_usage_presence_are_evidence() {
    let fx = Fx::new();
    let mut s = day("2026-03-16", "08:20", "17:40");
    s.push(sig(
        t("2026-03-16 09:00"),
        SignalKind::ClockOffset {
            offset_ms: -312_500,
        },
    ));
    s.push(sig(
        t("2026-03-16 09:05"),
        SignalKind::ClockOffset { offset_ms: 1_000 },
    )); // below threshold
    let v = fx.run(MON, &s);
    assert!(
        has_evidence(&v, "PC clock was 312.500 s behind"),
        "{:#?}",
        v.evidence
    );
    assert!(!has_evidence(&v, "1.000 s"));

    // Active use alone proves presence (an account already logged on before the data).
    // The 120 active seconds may all be at the end of the interval, so the arrival
    // it proves is 08:37 - 2 min = 08:35, never the interval's start.
    let s = vec![usage("2026-03-16 08:32", "2026-03-16 08:37", "other", 120)];
    let v = fx.run(MON, &s);
    assert_eq!(v.arrival, Some(t("2026-03-16 08:35")));
    assert!(
        has_evidence(&v, "zhangsan active use (other)"),
        "{:#?}",
        v.evidence
    );
    // Zero active seconds is not presence.
    let s = vec![usage("2026-03-16 08:32", "2026-03-16 08:37", "other", 0)];
    assert_eq!(fx.run(MON, &s).arrival, None);
}

#[test]
fn a_year_without_a_notice_is_judged_provisionally_on_statutory_holidays() {
    let mut fx = Fx::new();
    fx.now = t("2031-01-01 00:00");
    // 2030-10-08, a Tuesday: a workday as far as anyone can know without the notice.
    let v = fx.run(date(2030, 10, 8), &day("2030-10-08", "08:20", "17:40"));
    assert_eq!((v.day_kind, v.status), (DayKind::Workday, Status::Present));
    assert!(v.calendar_provisional);
    assert!(
        v.policy_note
            .contains("State Council notice for 2030 is not imported"),
        "{}",
        v.policy_note
    );
    // National Day is a holiday by law, notice or not: a PC left on is not a
    // working day.
    let v = fx.run(date(2030, 10, 1), &day("2030-10-01", "08:20", "17:40"));
    assert_eq!((v.day_kind, v.status), (DayKind::Holiday, Status::Holiday));
    assert_eq!(fx.run(date(2030, 10, 5), &[]).status, Status::Rest);
    // A year with its notice is not provisional.
    fx.now = t("2027-01-01 00:00");
    let v = fx.run(date(2026, 11, 24), &day("2026-11-24", "08:20", "17:40"));
    assert!(!v.calendar_provisional);
    assert!(!v.policy_note.contains("Provisional"), "{}", v.policy_note);
}

#[test]
fn verdict_json_names() {
    let v = Fx::new().run(MON, &day("2026-03-16", "08:41", "17:40"));
    let j: serde_json::Value = serde_json::to_value(&v).unwrap();
    assert_eq!(j["status"], "present");
    assert_eq!(j["date"], "2026-03-16");
    assert_eq!(j["arrival"], "2026-03-16T00:41:00Z");
    assert_eq!(j["late_minutes"], 11);
    assert_eq!(j["checkpoints"][0]["outcome"], "late");
    assert!(j["nonwork_seconds"].is_object());
    let back: DayVerdict = serde_json::from_value(j).unwrap();
    assert_eq!(back, v);
}

/// A generated day: where presence starts and ends, some usage, maybe trouble.
fn arb_day() -> impl Strategy<Value = Vec<Signal>> {
    (
        0i64..600, // logon, minutes after 07:00
        0i64..600, // session length, minutes
        proptest::collection::vec((0i64..700, 1i64..40, 0u32..2400, 0usize..4), 0..6), // usage
        proptest::option::of((0i64..600, 1i64..120)), // a lock, minutes after 07:00, length
        0u8..4,    // 0 fine, 1 crash, 2 gap, 3 nobody logs on
    )
        .prop_map(|(on, len, usages, lock, trouble)| {
            let base = t("2026-03-16 07:00");
            let m = |mins: i64| interval::add_secs(base, mins * 60);
            let mut s = vec![sig(
                m(-60),
                SignalKind::AgentStart {
                    reason: StartReason::SystemBoot,
                    previous_seen: None,
                },
            )];
            let (on_at, off_at) = (m(on), m(on + len));
            let mut at = m(-59);
            while at <= m(720) {
                let accounts = if trouble != 3 && on_at <= at && at < off_at {
                    vec!["zhangsan".into()]
                } else {
                    vec![]
                };
                s.push(sig(
                    at,
                    SignalKind::Heartbeat {
                        interval_seconds: 300,
                        accounts,
                    },
                ));
                at = interval::add_secs(at, 300);
            }
            if trouble != 3 {
                s.push(sig(
                    on_at,
                    SignalKind::Session {
                        account: "zhangsan".into(),
                        kind: SessionKind::Logon,
                    },
                ));
                s.push(sig(
                    off_at,
                    SignalKind::Session {
                        account: "zhangsan".into(),
                        kind: SessionKind::Logoff,
                    },
                ));
                if let Some((l, ll)) = lock {
                    s.push(sig(
                        m(l),
                        SignalKind::Session {
                            account: "zhangsan".into(),
                            kind: SessionKind::Lock,
                        },
                    ));
                    s.push(sig(
                        m(l + ll),
                        SignalKind::Session {
                            account: "zhangsan".into(),
                            kind: SessionKind::Unlock,
                        },
                    ));
                }
                let cats = ["chat", "games", "other", "media"];
                for (start, dur, active, cat) in usages {
                    s.push(sig(
                        m(start + dur),
                        SignalKind::Usage {
                            account: "zhangsan".into(),
                            start: m(start),
                            end: m(start + dur),
                            category: cats[cat].into(),
                            active_seconds: active,
                        },
                    ));
                }
            }
            match trouble {
                1 => s.push(sig(
                    m(200),
                    SignalKind::AgentStart {
                        reason: StartReason::CrashRestart,
                        previous_seen: None,
                    },
                )),
                2 => s.push(sig(
                    m(300),
                    SignalKind::DataGap {
                        from: m(100),
                        to: m(130),
                        dropped: 7,
                    },
                )),
                _ => {}
            }
            s.push(sig(
                m(721),
                SignalKind::AgentStop {
                    reason: StopReason::SystemShutdown,
                },
            ));
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn verdict_ignores_order_and_duplicates(
        (signals, shuffled) in arb_day().prop_flat_map(|s| {
            let n = s.len();
            (Just(s.clone()), (Just(s).prop_shuffle(), proptest::collection::vec(any::<bool>(), n)))
        }).prop_map(|(s, (mut sh, dup))| {
            let extra: Vec<Signal> = sh.iter().zip(&dup).filter(|(_, d)| **d).map(|(x, _)| x.clone()).collect();
            sh.extend(extra);
            (s, sh)
        }),
        now_offset in 0i64..(30 * 3600),
        exempt in proptest::option::of((0i64..700, 0i64..400, 0usize..3)),
    ) {
        let mut fx = Fx::new();
        fx.now = interval::add_secs(t("2026-03-16 06:00"), now_offset);
        if let Some((start, len, kind)) = exempt {
            let base = t("2026-03-16 07:00");
            fx.exemptions.push(Exemption {
                employee_id: "E001".into(),
                kind: [ExemptionKind::Leave, ExemptionKind::Field, ExemptionKind::BusinessTrip][kind],
                start: interval::add_secs(base, start * 60),
                end: interval::add_secs(base, (start + len) * 60),
                note: String::new(),
            });
        }
        let a = fx.run(MON, &signals);
        let b = fx.run(MON, &shuffled);
        prop_assert_eq!(&a, &b);

        // No negative durations, nothing counted twice, nothing after now.
        if let (Some(arr), Some(dep)) = (a.arrival, a.departure) {
            prop_assert!(arr <= dep);
            prop_assert!(dep <= fx.now);
        }
        prop_assert!(a.coverage.covered_seconds <= a.coverage.office_seconds);
        prop_assert!(a.coverage.office_seconds <= 7 * 3600);
        for (cat, secs) in &a.nonwork_seconds {
            prop_assert!(*secs > 0 && cat != "other" && cat != "work");
            prop_assert!(*secs <= a.coverage.office_seconds * 6, "{} {}", cat, secs);
        }
        for c in &a.checkpoints {
            prop_assert_eq!(c.minutes > 0, matches!(c.outcome, Outcome::Late | Outcome::Early));
            prop_assert_eq!(c.unverified_minutes > 0, c.outcome == Outcome::Unverified);
            if c.outcome == Outcome::Pending { prop_assert!(fx.now <= interval::add_secs(c.expected, 300)); }
        }
        prop_assert_eq!(a.late_minutes, a.checkpoints.iter().filter(|c| c.kind == CheckpointKind::Arrival).map(|c| c.minutes).sum::<u32>());
        if a.status == Status::Absent {
            prop_assert!(a.arrival.is_none());
        }
        let mut sorted = a.evidence.clone();
        sorted.sort();
        prop_assert_eq!(sorted, a.evidence);
    }

    #[test]
    fn appending_a_logoff_never_moves_departure_earlier(
        signals in arb_day(),
        drop_stop in any::<bool>(),
        drop_logoff in any::<bool>(),
        after_minutes in 0i64..600,
    ) {
        let mut signals = signals;
        signals.retain(|s| match &s.kind {
            SignalKind::AgentStop { .. } => !drop_stop,
            SignalKind::Session { kind: SessionKind::Logoff, .. } => !drop_logoff,
            _ => true,
        });
        let fx = Fx::new();
        let before = fx.run(MON, &signals);
        let last = signals.iter().map(|s| s.at).max().unwrap();
        signals.push(sig(
            interval::add_secs(last, after_minutes * 60),
            SignalKind::Session { account: "zhangsan".into(), kind: SessionKind::Logoff },
        ));
        let after = fx.run(MON, &signals);
        if let Some(d) = before.departure {
            prop_assert!(after.departure.is_some_and(|a| a >= d), "{:?} -> {:?}", before.departure, after.departure);
        }
        prop_assert_eq!(before.arrival, after.arrival);
    }
}

/// Heartbeats a minute apart on `d` from `from` to `to`, listing the account while
/// it is logged on between `on` and `off`.
fn beats(d: &str, from: &str, to: &str, on: &str, off: &str) -> Vec<Signal> {
    let at = |hm: &str| format!("{d} {hm}");
    heartbeats(&at(from), &at(to), 60, &[(&at(on), &at(off))])
}

/// Usage intervals at the agent's 5-minute marks from `from` to `to` (both on the
/// grid), all active, in `category`.
fn usage_marks(d: &str, from: &str, to: &str, category: &str) -> Vec<Signal> {
    let (mut at, to) = (t(&format!("{d} {from}")), t(&format!("{d} {to}")));
    let mut out = Vec::new();
    while at < to {
        let end = interval::add_secs(at, 300);
        out.push(sig(
            end,
            SignalKind::Usage {
                account: "zhangsan".into(),
                start: at,
                end,
                category: category.into(),
                active_seconds: 300,
            },
        ));
        at = end;
    }
    out
}

#[test]
fn realistic_days_table() {
    const D: &str = "2026-03-16";
    let at = |hm: &str| t(&format!("{D} {hm}"));
    struct Case {
        name: &'static str,
        signals: Vec<Signal>,
        arrival: &'static str,
        departure: &'static str,
        /// (late, early) charged.
        charged: (u32, u32),
        /// (arrival, departure) outcomes.
        outcomes: (Outcome, Outcome),
        /// Minutes that would have been charged, not verified.
        unverified: (u32, u32),
        evidence: &'static str,
    }
    // Word from 08:36, logoff at 17:24 with no lock or idle: usage at the marks to
    // 17:20, then the last slice 17:20-17:24 the agent closes at the logoff.
    let mut word = vec![
        boot(&format!("{D} 05:50"), None),
        sess(&format!("{D} 08:36"), SessionKind::Logon),
    ];
    word.extend(beats(D, "05:50:30", "18:40", "08:36", "17:24"));
    word.extend(usage_marks(D, "08:40", "17:20", "work"));
    word.push(usage(
        &format!("{D} 08:36"),
        &format!("{D} 08:40"),
        "work",
        240,
    ));
    word.push(usage(
        &format!("{D} 17:20"),
        &format!("{D} 17:24"),
        "chat",
        240,
    ));
    word.push(sess(&format!("{D} 17:24"), SessionKind::Logoff));
    word.push(shutdown(&format!("{D} 18:40:10")));

    // The same day from an agent started in the very second of the logon (a
    // service started at logon, or a replay) that sent no last slice: the stretch
    // the logon opened is the one the logoff ends.
    let mut started_at_logon = word.clone();
    started_at_logon
        .retain(|s| !matches!(&s.kind, SignalKind::Usage { end, .. } if *end == at("17:24")));
    started_at_logon.retain(|s| !matches!(s.kind, SignalKind::AgentStart { .. }));
    started_at_logon.push(sig(
        at("08:36"),
        SignalKind::AgentStart {
            reason: StartReason::ServiceStart,
            previous_seen: None,
        },
    ));
    started_at_logon.retain(|s| s.at >= at("08:36"));

    // An agent killed at 10:00 (no stop, nothing heard after) on a day begun 08:20.
    let mut killed = vec![
        boot(&format!("{D} 05:50"), None),
        sess(&format!("{D} 08:20"), SessionKind::Logon),
    ];
    killed.extend(beats(D, "05:50:30", "10:00", "08:20", "23:59"));
    killed.extend(usage_marks(D, "08:20", "10:00", "work"));

    // The agent ran the evening before and was killed then; it starts again,
    // uncleanly, at 08:45, and the person logs on at 08:50.
    let mut unclean = vec![boot("2026-03-15 17:00", None)];
    unclean.extend(heartbeats(
        "2026-03-15 17:00:30",
        "2026-03-15 21:00",
        60,
        &[],
    ));
    unclean.push(sig(
        at("08:45"),
        SignalKind::AgentStart {
            reason: StartReason::CrashRestart,
            previous_seen: Some(t("2026-03-15 21:00")),
        },
    ));
    unclean.extend(beats(D, "08:45:30", "18:40", "08:50", "17:35"));
    unclean.push(sess(&format!("{D} 08:50"), SessionKind::Logon));
    unclean.push(sess(&format!("{D} 17:35"), SessionKind::Logoff));
    unclean.push(shutdown(&format!("{D} 18:40:10")));

    let cases = [
        Case {
            name: "a logoff off a 5-minute mark is the departure",
            signals: word,
            arrival: "08:36",
            departure: "17:24",
            charged: (6, 6),
            outcomes: (Outcome::Late, Outcome::Early),
            unverified: (0, 0),
            evidence: "departure: last presence of the day (from 08:36:00, zhangsan logged on)",
        },
        Case {
            name: "an agent started with the logon",
            signals: started_at_logon,
            arrival: "08:36",
            departure: "17:24",
            charged: (0, 6),
            outcomes: (Outcome::Unverified, Outcome::Early),
            unverified: (6, 0),
            evidence: "arrival not verified, 6 min late not charged: not accounted for from 08:30:00 to 08:36:00: nothing heard from this PC before 08:36:00",
        },
        Case {
            name: "an agent killed mid-morning charges no early departure",
            signals: killed,
            arrival: "08:20",
            departure: "10:00",
            charged: (0, 0),
            outcomes: (Outcome::OnTime, Outcome::Unverified),
            unverified: (0, 450),
            evidence: "departure not verified, 450 min early not charged: not accounted for from 10:00:00 to 17:30:00: last heard from at 10:00:00 (expected every 60 s)",
        },
        Case {
            name: "an agent that started uncleanly at 08:45",
            signals: unclean,
            arrival: "08:50",
            departure: "17:35",
            charged: (0, 0),
            outcomes: (Outcome::Unverified, Outcome::OnTime),
            unverified: (20, 0),
            evidence: "arrival not verified, 20 min late not charged: not accounted for from 08:30:00 to 08:45:30",
        },
    ];
    let fx = Fx::new();
    for c in cases {
        let name = c.name;
        let v = fx.run(MON, &c.signals);
        assert_eq!(v.status, Status::Present, "{name}");
        assert_eq!(v.arrival, Some(at(c.arrival)), "{name}: {:#?}", v.evidence);
        assert_eq!(
            v.departure,
            Some(at(c.departure)),
            "{name}: {:#?}",
            v.evidence
        );
        assert_eq!((v.late_minutes, v.early_minutes), c.charged, "{name}");
        let arrival = checkpoint(&v, 0, CheckpointKind::Arrival);
        let departure = checkpoint(&v, 1, CheckpointKind::Departure);
        assert_eq!((arrival.outcome, departure.outcome), c.outcomes, "{name}");
        assert_eq!(
            (arrival.unverified_minutes, departure.unverified_minutes),
            c.unverified,
            "{name}"
        );
        let expect_unverified = u32::from(c.unverified.0 > 0) + u32::from(c.unverified.1 > 0);
        assert_eq!(v.unverified, expect_unverified, "{name}");
        assert!(has_evidence(&v, c.evidence), "{name}: {:#?}", v.evidence);
    }
}

#[test]
fn presence_merges_across_pcs_and_ignores_a_same_instant_snapshot() {
    let fx = Fx::new();
    let mut s = day("2026-03-16", "08:41", "17:35");
    s.push(sess("2026-03-16 10:02", SessionKind::Lock));
    s.push(sess("2026-03-16 10:15", SessionKind::Unlock));
    let mut on_pc2 = usage("2026-03-16 09:50", "2026-03-16 10:20", "other", 900);
    on_pc2.pc = "pc-2".into();
    s.push(on_pc2);
    // A heartbeat snapshot in the same second as the logon that does not list it yet.
    s.push(sig(
        t("2026-03-16 08:41"),
        SignalKind::Heartbeat {
            interval_seconds: 60,
            accounts: vec![],
        },
    ));
    let v = fx.run(MON, &s);
    assert_eq!(v.arrival, Some(t("2026-03-16 08:41")));
    assert_eq!(v.departure, Some(t("2026-03-16 17:35")));
    let mut fx2 = Fx::new();
    fx2.now = t("2026-03-16 10:10");
    // At 10:10 the usage on pc-2 (reported at 10:20) is not known yet: the last
    // presence so far is the lock at 10:02.
    let v = fx2.run(MON, &s);
    assert_eq!(v.departure, Some(t("2026-03-16 10:02")));
    // Usage on another PC makes that PC the person's.
    assert_eq!(
        pcs_for(&person(), &s).into_iter().collect::<Vec<_>>(),
        vec!["pc-2".to_string(), PC.to_string()]
    );
}

#[test]
fn a_plain_listed_account_matches_in_any_domain_and_a_domain_one_only_in_its_own() {
    assert!(account_matches("zhangsan", "OFFICE\\ZhangSan"));
    assert!(account_matches("office\\zhangsan", "OFFICE\\zhangsan"));
    assert!(!account_matches("office\\zhangsan", "OTHER\\zhangsan"));
    assert!(!account_matches("office\\zhangsan", "zhangsan"));
    assert!(!account_matches("zhang", "office\\zhangsan"));
    // A day logged on as OFFICE\zhangsan is the person listed as plain zhangsan.
    let d = "2026-11-24";
    let mut signals: Vec<Signal> = day(d, "08:25", "17:40")
        .into_iter()
        .map(|mut s| {
            if let SignalKind::Session { account, .. } = &mut s.kind {
                *account = "OFFICE\\zhangsan".into();
            }
            if let SignalKind::Heartbeat { accounts, .. } = &mut s.kind {
                for a in accounts {
                    *a = "office\\zhangsan".into();
                }
            }
            s
        })
        .collect();
    let v = Fx::new().run(date(2026, 11, 24), &signals);
    assert_eq!(v.status, Status::Present, "{v:#?}");
    assert_eq!(v.arrival, Some(t("2026-11-24 08:25")));
    // Another domain's zhangsan is somebody else.
    for s in &mut signals {
        if let SignalKind::Session { account, .. } = &mut s.kind {
            *account = "OTHER\\zhangsan".into();
        }
    }
    let mut p = person();
    p.accounts = vec!["office\\zhangsan".into()];
    let fx = Fx::new();
    let ctx = Context {
        calendar: &fx.calendar,
        schedules: &fx.schedules,
        exemptions: &fx.exemptions,
        settings: &fx.settings,
        known_pcs: &fx.known_pcs,
        own_pcs: None,
        now: fx.now,
    };
    let v = verdict(&p, date(2026, 11, 24), &signals, &ctx);
    assert_eq!(v.arrival, None, "{v:#?}");
}

#[test]
fn presence_on_a_pc_not_the_persons_own_counts_and_is_marked() {
    let d = "2026-11-24";
    let signals = day(d, "08:25", "17:40");
    let mut fx = Fx::new();
    let mark = "not one of the person's own";
    // Own PC listed and used: nothing marked.
    fx.own_pcs = Some(BTreeSet::from([PC.to_owned()]));
    let v = fx.run(date(2026, 11, 24), &signals);
    assert_eq!(v.status, Status::Present);
    assert!(!has_evidence(&v, mark), "{:#?}", v.evidence);
    // Another PC: still present, and marked once, at the arrival.
    fx.own_pcs = Some(BTreeSet::from(["ag-elsewhere".to_owned()]));
    let v = fx.run(date(2026, 11, 24), &signals);
    assert_eq!(v.status, Status::Present);
    assert_eq!(v.arrival, Some(t("2026-11-24 08:25")));
    let marked: Vec<_> = v
        .evidence
        .iter()
        .filter(|e| e.what.contains(mark))
        .collect();
    assert_eq!(marked.len(), 1, "{:#?}", v.evidence);
    assert_eq!(
        (marked[0].at, marked[0].pc.as_str()),
        (t("2026-11-24 08:25"), PC)
    );
    // The directory lists no own PC: nothing marked.
    fx.own_pcs = None;
    assert!(!has_evidence(&fx.run(date(2026, 11, 24), &signals), mark));
}

#[test]
fn a_reenrolment_of_the_pc_is_in_the_evidence() {
    let mut signals = day("2026-11-24", "08:25", "17:40");
    signals.push(sig(t("2026-11-24 12:00"), SignalKind::Reenrolled));
    let v = Fx::new().run(date(2026, 11, 24), &signals);
    assert_eq!(v.status, Status::Present);
    assert!(
        has_evidence(&v, "this PC was enrolled again"),
        "{:#?}",
        v.evidence
    );
}

// ------------------------------------------------------- the office's counts

fn punch(fx: Fx, kind: ExemptionKind, at: &str) -> Fx {
    fx.exempt(kind, at, at)
}

#[test]
fn absenteeism_counts_charged_minutes_past_the_threshold_and_absent_days_only() {
    let fx = Fx::new();
    // Late 45 min (arrival 09:15) and early 40 min (logoff 16:50): two half days.
    let v = fx.run(MON, &day("2026-03-16", "09:15", "16:50"));
    assert_eq!((v.late_minutes, v.early_minutes), (45, 40));
    assert_eq!(v.absenteeism_half_days, 2, "{}", v.policy_note);
    assert!(
        v.policy_note
            .contains("late 45 min at 08:30, more than 30 min")
    );
    // Late 30 min exactly is not more than 30: nothing.
    let v = fx.run(MON, &day("2026-03-16", "09:00", "17:35"));
    assert_eq!((v.late_minutes, v.absenteeism_half_days), (30, 0));
    // Late 31 min: half a day.
    let v = fx.run(MON, &day("2026-03-16", "09:01", "17:35"));
    assert_eq!(v.absenteeism_half_days, 1);
    // Absent on evidence: a whole day; with a morning of leave: half.
    let mut alive = vec![boot("2026-03-16 07:50", None)];
    alive.extend(heartbeats("2026-03-16 07:51", "2026-03-16 18:00", 60, &[]));
    let v = fx.run(MON, &alive);
    assert_eq!((v.status, v.absenteeism_half_days), (Status::Absent, 2));
    let half = Fx::new().exempt(ExemptionKind::Leave, "2026-03-16 08:30", "2026-03-16 12:00");
    let v = half.run(MON, &alive);
    assert_eq!((v.status, v.absenteeism_half_days), (Status::Absent, 1));
    // Unknown is never absenteeism: the PC says nothing after 10:00.
    let mut s = vec![boot("2026-03-16 07:50", None)];
    s.extend(heartbeats("2026-03-16 07:51", "2026-03-16 10:00", 60, &[]));
    let v = fx.run(MON, &s);
    assert_eq!((v.status, v.absenteeism_half_days), (Status::Unknown, 0));
    // Unverified lateness is never absenteeism: the agent started at 09:10 after a
    // crash, so 08:30-09:10 is not accounted for.
    let s = vec![
        sig(
            t("2026-03-16 09:10"),
            SignalKind::AgentStart {
                reason: StartReason::CrashRestart,
                previous_seen: None,
            },
        ),
        sess("2026-03-16 09:15", SessionKind::Logon),
    ];
    let v = fx.run(MON, &s);
    assert_eq!(v.late_minutes, 0, "{}", v.policy_note);
    assert_eq!(v.absenteeism_half_days, 0);
}

#[test]
fn a_session_without_presence_is_a_missing_checkpoint_only_on_evidence() {
    let mut fx = Fx::new();
    fx.schedules = ScheduleSet::from_toml(FOUR_CHECKPOINTS).unwrap();
    // Morning only, then logged off and the PC on all afternoon: the afternoon's
    // arrival is missing (缺卡).
    let mut s = vec![boot("2026-03-16 07:50", None)];
    s.push(sess("2026-03-16 08:20", SessionKind::Logon));
    s.push(sess("2026-03-16 11:55", SessionKind::Logoff));
    s.extend(heartbeats(
        "2026-03-16 07:51",
        "2026-03-16 18:00",
        60,
        &[("2026-03-16 08:20", "2026-03-16 11:55")],
    ));
    let v = fx.run(MON, &s);
    assert_eq!(v.status, Status::Present);
    assert_eq!(
        checkpoint(&v, 1, CheckpointKind::Arrival).outcome,
        Outcome::Missed
    );
    assert_eq!(v.missing_checkpoints, 1, "{:#?}", v.evidence);
    assert!(has_evidence(
        &v,
        "missing checkpoint: no presence for the arrival at 14:00"
    ));
    // The agent dies at 12:10: the afternoon is not accounted for, nothing counts.
    s.retain(|x| x.at <= t("2026-03-16 12:10"));
    let v = fx.run(MON, &s);
    assert_eq!(v.missing_checkpoints, 0, "{:#?}", v.evidence);
    assert!(has_evidence(&v, "missing arrival at 14:00 not counted"));
}

#[test]
fn overtime_is_presence_outside_office_hours_by_kind_of_day() {
    let fx = Fx::new();
    // In at 08:10 (20 min before: under the 30-min block), out at 18:35 (65 min
    // after 17:30: 60 counted). Lunch is not overtime.
    let v = fx.run(MON, &day("2026-03-16", "08:10", "18:35"));
    assert_eq!(
        v.overtime_minutes,
        Overtime {
            workday: 60,
            rest_day: 0,
            holiday: 0
        }
    );
    assert!(has_evidence(
        &v,
        "overtime (workday) from 17:30:00 to 18:35:00: 65 min, 60 min counted"
    ));
    // Saturday 2026-03-21: all presence is rest-day overtime.
    let sat = date(2026, 3, 21);
    let v = fx.run(sat, &day("2026-03-21", "09:00", "12:10"));
    assert_eq!((v.status, v.overtime_minutes.rest_day), (Status::Rest, 180));
    // National Day 2026-10-01 is statutory; 2026-10-04 (a Sunday in the holiday
    // period) is a rest day.
    let v = fx.run(date(2026, 10, 1), &day("2026-10-01", "09:00", "11:00"));
    assert_eq!(v.overtime_minutes.holiday, 120);
    let v = fx.run(date(2026, 10, 4), &day("2026-10-04", "09:00", "11:00"));
    assert_eq!(
        (v.overtime_minutes.rest_day, v.overtime_minutes.holiday),
        (120, 0)
    );
    // Only with an approved request, when the office says so.
    let mut strict = Fx::new();
    strict.settings.office.overtime_needs_request = true;
    let v = strict.run(MON, &day("2026-03-16", "08:10", "18:35"));
    assert_eq!(v.overtime_minutes.total(), 0);
    let strict = strict.exempt(
        ExemptionKind::Overtime,
        "2026-03-16 17:30",
        "2026-03-16 18:30",
    );
    let v = strict.run(MON, &day("2026-03-16", "08:10", "18:35"));
    assert_eq!(v.overtime_minutes.workday, 60);
    assert!(has_evidence(
        &v,
        "overtime approved from 17:30:00 to 18:30:00"
    ));
    // Overtime does not excuse anything: the day is judged as before.
    assert_eq!(v.status, Status::Present);
}

#[test]
fn an_approved_missed_punch_is_presence_from_or_until_its_instant() {
    // Logged on at 08:50 (20 min late), but at the front desk from 08:20.
    let fx = punch(Fx::new(), ExemptionKind::ArrivalPunch, "2026-03-16 08:20");
    let v = fx.run(MON, &day("2026-03-16", "08:50", "17:35"));
    assert_eq!(v.arrival, Some(t("2026-03-16 08:20")));
    assert_eq!(v.late_minutes, 0, "{}", v.policy_note);
    assert!(
        has_evidence(
            &v,
            "arrival: first presence of the day (missed punch: approved)"
        ),
        "{:#?}",
        v.evidence
    );
    // Logged off at 16:00, but at a meeting in the building until 17:40.
    let fx = punch(Fx::new(), ExemptionKind::DeparturePunch, "2026-03-16 17:40");
    let v = fx.run(MON, &day("2026-03-16", "08:20", "16:00"));
    assert_eq!(v.departure, Some(t("2026-03-16 17:40")));
    assert_eq!(v.early_minutes, 0);
    // A punch does not excuse office hours as an exemption would.
    let fx = punch(Fx::new(), ExemptionKind::ArrivalPunch, "2026-03-16 08:20");
    let v = fx.run(MON, &day("2026-03-16", "08:50", "16:00"));
    assert_eq!(v.early_minutes, 90);
    // Someone else's punch changes nothing.
    let mut other = punch(Fx::new(), ExemptionKind::ArrivalPunch, "2026-03-16 08:20");
    other.exemptions[0].employee_id = "E002".into();
    assert_eq!(
        other
            .run(MON, &day("2026-03-16", "08:50", "17:35"))
            .late_minutes,
        20
    );
}

#[test]
fn the_day_picture_tells_the_verdicts_story_without_overlaps() {
    use timeline::PcState::*;
    // Boot 05:50, logon 08:41, locked 12:00-14:00, chat 15:00-15:20, logoff 17:24,
    // shutdown 18:40; leave in the afternoon from 16:00.
    let d = date(2026, 3, 16);
    let mut signals = day("2026-03-16", "08:41", "17:24");
    signals.push(sess("2026-03-16 12:00", SessionKind::Lock));
    signals.push(sess("2026-03-16 14:00", SessionKind::Unlock));
    signals.push(usage("2026-03-16 15:00", "2026-03-16 15:20", "chat", 1200));
    let fx = Fx::new().exempt(ExemptionKind::Leave, "2026-03-16 16:00", "2026-03-16 18:00");
    let v = fx.run(d, &signals);
    let p = fx.picture(d, &signals);
    assert_eq!(p.arrival, v.arrival);
    assert_eq!(p.departure, v.departure);
    assert_eq!(p.shown.start, t("2026-03-16 06:00"));
    assert_eq!(p.shown.end, t("2026-03-16 22:00"));
    assert_eq!(p.office.len(), 2, "two sessions of the default day");
    assert_eq!(p.exempt.len(), 1);
    let lane = &p.lanes[0];
    // States follow each other without overlapping and cover the shown span.
    for w in lane.states.windows(2) {
        assert!(w[0].0.end <= w[1].0.start, "{:?}", lane.states);
    }
    let state_at = |hm: &str| {
        let at = t(&format!("2026-03-16 {hm}"));
        lane.states
            .iter()
            .find(|(s, _)| s.start <= at && at < s.end)
            .map(|(_, st)| *st)
    };
    assert_eq!(
        state_at("06:00"),
        Some(NobodyLoggedOn),
        "booted, nobody logged on"
    );
    assert_eq!(state_at("09:00"), Some(InUse));
    assert_eq!(state_at("13:00"), Some(LockedOrIdle));
    assert_eq!(state_at("18:00"), Some(NobodyLoggedOn));
    assert_eq!(state_at("19:00"), Some(Off), "a clean shutdown");
    assert_eq!(
        lane.usage,
        [(
            timeline::Span {
                start: t("2026-03-16 15:00"),
                end: t("2026-03-16 15:20")
            },
            "chat".to_owned()
        )]
    );
    // Nothing is drawn after now.
    let fx = Fx {
        now: t("2026-03-16 10:00"),
        ..Fx::new()
    };
    let p = fx.picture(d, &signals);
    assert!(p.lanes[0].states.iter().all(|(s, _)| s.end <= fx.now));
    // A PC never heard from: the agent was not running.
    let fx = Fx {
        known_pcs: vec!["pc-other".into()],
        ..Fx::new()
    };
    let p = fx.picture(d, &[]);
    assert_eq!(p.lanes.len(), 1);
    assert!(p.lanes[0].states.iter().all(|(_, st)| *st == NotRunning));
}

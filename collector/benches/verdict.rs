//! The attendance engine's cost: one staff-day verdict from a realistic day's
//! signals (heartbeats every minute, usage every 5 minutes, sessions), and a
//! month recomputed for one person.
//!
//! cargo bench -p kaoqin-collector --bench verdict

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use jiff::civil::Date;
use kaoqin_collector::attendance::{
    Calendar, Context, Person, ScheduleSet, SessionKind, Settings, Signal, SignalKind, StartReason,
    StopReason, verdict,
};
use std::hint::black_box;

const PC: &str = "ag-bench";

fn at(d: Date, h: i8, m: i8) -> Timestamp {
    d.at(h, m, 0, 0)
        .to_zoned_datetime(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
        .unwrap()
        .timestamp()
}

fn sig(at: Timestamp, kind: SignalKind) -> Signal {
    Signal {
        at,
        pc: PC.into(),
        kind,
    }
}

/// A PC booted at 07:50 and shut down at 18:10; logged on 08:41-12:00 and
/// 13:58-17:20 with a lock at lunch; heartbeats every minute; usage every 5
/// minutes in three categories.
fn day_signals(d: Date) -> Vec<Signal> {
    let acct = || "zhangsan".to_owned();
    let mut s = vec![
        sig(
            at(d, 7, 50),
            SignalKind::AgentStart {
                reason: StartReason::SystemBoot,
                previous_seen: None,
            },
        ),
        sig(
            at(d, 8, 41),
            SignalKind::Session {
                account: acct(),
                kind: SessionKind::Logon,
            },
        ),
        sig(
            at(d, 12, 0),
            SignalKind::Session {
                account: acct(),
                kind: SessionKind::Lock,
            },
        ),
        sig(
            at(d, 13, 58),
            SignalKind::Session {
                account: acct(),
                kind: SessionKind::Unlock,
            },
        ),
        sig(
            at(d, 17, 20),
            SignalKind::Session {
                account: acct(),
                kind: SessionKind::Logoff,
            },
        ),
        sig(
            at(d, 18, 10),
            SignalKind::AgentStop {
                reason: StopReason::SystemShutdown,
            },
        ),
    ];
    let start = at(d, 7, 51);
    for i in 0..(10 * 60 + 19) {
        let t = start + jiff::SignedDuration::from_secs(60 * i);
        let logged = (t >= at(d, 8, 41) && t < at(d, 17, 20)) as usize;
        s.push(sig(
            t,
            SignalKind::Heartbeat {
                interval_seconds: 60,
                accounts: vec![acct(); logged],
            },
        ));
        if i % 5 == 0 && logged == 1 {
            for (k, cat) in ["other", "chat", "media"].iter().enumerate() {
                s.push(sig(
                    t,
                    SignalKind::Usage {
                        account: acct(),
                        start: t - jiff::SignedDuration::from_secs(300),
                        end: t,
                        category: (*cat).into(),
                        active_seconds: [200, 60, 30][k],
                    },
                ));
            }
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let person = Person {
        employee_id: "E001".into(),
        name: "张三".into(),
        department: "办公室".into(),
        accounts: vec!["zhangsan".into()],
        own_pcs: Vec::new(),
        email: String::new(),
        left_on: None,
    };
    let calendar = Calendar::official();
    let schedules = ScheduleSet::default();
    let settings = Settings::default();
    let known = vec![PC.to_owned()];
    let ctx = Context {
        calendar: &calendar,
        schedules: &schedules,
        exemptions: &[],
        settings: &settings,
        known_pcs: &known,
        own_pcs: None,
        now: "2027-01-01T00:00:00Z".parse().unwrap(),
    };
    let day: Date = "2026-11-24".parse().unwrap();
    let signals = day_signals(day);
    c.bench_function(
        &format!("staff-day verdict ({} signals)", signals.len()),
        |b| b.iter(|| verdict(black_box(&person), day, black_box(&signals), &ctx)),
    );

    let first: Date = "2026-11-01".parse().unwrap();
    let month: Vec<(Date, Vec<Signal>)> = (0..30)
        .map(|i| {
            let d = first.checked_add(jiff::Span::new().days(i)).unwrap();
            (d, day_signals(d))
        })
        .collect();
    c.bench_function("month recompute for one person (30 days)", |b| {
        b.iter(|| {
            for (d, s) in &month {
                black_box(verdict(&person, *d, s, &ctx));
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

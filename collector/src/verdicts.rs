//! Stored day verdicts: loading a person-day's signals from the store, judging it
//! with [`crate::attendance::verdict`], and keeping the result in `day_verdicts` so
//! reports never recompute from raw events.
//!
//! A stored verdict is stale, and recomputed, when:
//! - events arrived for one of the person's accounts on that day (`dirty_days`,
//!   filled by the writer in the same transaction as the events; also by `leave add`
//!   and `staff import`);
//! - its context fingerprint differs: the rules (time zone, day boundary, schedules,
//!   calendar overrides, engine version), the person's record or their exemptions
//!   changed;
//! - it was provisional (the day was still running when it was computed).
//!
//! [`signal_kind`] is the one place where a stored `EventKind` becomes an
//! attendance `SignalKind`.

use crate::attendance::{
    self, Calendar, Context, DayVerdict, Exemption, Person, ScheduleSet, Settings, Signal,
    SignalKind, signal_window,
};
use crate::config::Config;
use crate::store::StoredEvent;
use crate::store::directory::StoredVerdict;
use crate::store::sqlite::SqliteStore;
use anyhow::Context as _;
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use kaoqin_proto::event::{self as ev, EventKind};
use std::collections::{BTreeMap, BTreeSet};

/// Bumped whenever the rules' code changes what a verdict says.
pub const ENGINE_VERSION: &str = "attendance-1";

/// Everything besides events that verdicts depend on, built from the config.
#[derive(Debug, Clone)]
pub struct Rules {
    pub calendar: Calendar,
    pub schedules: ScheduleSet,
    pub settings: Settings,
    /// Hash of all of the above.
    pub fingerprint: String,
}

/// The attendance settings of a config (time zone, day boundary, offset threshold).
pub fn settings(config: &Config) -> anyhow::Result<Settings> {
    let time_zone = jiff::tz::TimeZone::get(&config.server.time_zone)
        .with_context(|| format!("server.time_zone = {:?}", config.server.time_zone))?;
    let day_boundary = config
        .attendance
        .boundary()
        .map_err(|e| anyhow::anyhow!("attendance.day_boundary = {e}"))?;
    Ok(Settings {
        time_zone,
        day_boundary,
        large_offset_ms: i64::from(config.attendance.large_offset_minutes) * 60_000,
    })
}

fn sha(text: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..16])
}

impl Rules {
    /// Builds the rules from a validated config (reading `schedules_file` if set).
    pub fn from_config(config: &Config) -> anyhow::Result<Rules> {
        let settings = settings(config)?;
        let a = &config.attendance;
        let schedules = match (&a.schedules, &a.schedules_file) {
            (Some(s), _) => s.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("attendance.schedules_file: cannot read {}", path.display())
                })?;
                ScheduleSet::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            (None, None) => ScheduleSet::default(),
        };
        let mut overrides = Vec::new();
        for o in &a.calendar_override {
            let d = o.date.date().map_err(|e| anyhow::anyhow!("{e}"))?;
            overrides.push((d, o.kind, o.note.clone()));
        }
        let fingerprint = sha(&format!(
            "{ENGINE_VERSION}|{:?}|{}|{}|{:?}|{:?}",
            settings.time_zone.iana_name(),
            settings.day_boundary,
            settings.large_offset_ms,
            schedules,
            overrides
        ));
        Ok(Rules {
            calendar: Calendar::with_overrides(overrides),
            schedules,
            settings,
            fingerprint,
        })
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The one mapping from a stored event to what the rules see; instants shifted by
/// `offset_ms` (collector clock minus PC clock).
pub fn signal_kind(kind: &EventKind, offset_ms: i64) -> SignalKind {
    use attendance::{SessionKind as S, StartReason as Start, StopReason as Stop};
    let fix = |ms: i64| ts(ms.saturating_add(offset_ms));
    match kind {
        EventKind::Session { kind, account } => SignalKind::Session {
            account: account.clone(),
            kind: match kind {
                ev::SessionKind::Logon => S::Logon,
                ev::SessionKind::Logoff => S::Logoff,
                ev::SessionKind::Lock => S::Lock,
                ev::SessionKind::Unlock => S::Unlock,
                ev::SessionKind::IdleStart => S::IdleStart,
                ev::SessionKind::IdleEnd => S::IdleEnd,
            },
        },
        EventKind::Usage {
            account,
            start_ms,
            end_ms,
            category,
            active_seconds,
            basis: _,
        } => SignalKind::Usage {
            account: account.clone(),
            start: fix(*start_ms),
            end: fix(*end_ms),
            category: category.clone(),
            active_seconds: *active_seconds,
        },
        EventKind::Heartbeat {
            interval_seconds,
            accounts,
        } => SignalKind::Heartbeat {
            interval_seconds: *interval_seconds,
            accounts: accounts.clone(),
        },
        EventKind::Lifecycle {
            kind: ev::LifecycleKind::Start,
            reason,
            previous_seen_ms,
            ..
        } => SignalKind::AgentStart {
            reason: match reason {
                ev::LifecycleReason::SystemBoot => Start::SystemBoot,
                ev::LifecycleReason::CrashRestart => Start::CrashRestart,
                ev::LifecycleReason::Replay => Start::Replay,
                // A start that names a stop reason is not a clean boot.
                ev::LifecycleReason::ServiceStart
                | ev::LifecycleReason::ServiceStop
                | ev::LifecycleReason::SystemShutdown => Start::ServiceStart,
            },
            previous_seen: previous_seen_ms.map(fix),
        },
        EventKind::Lifecycle {
            kind: ev::LifecycleKind::Stop,
            reason,
            ..
        } => SignalKind::AgentStop {
            reason: match reason {
                ev::LifecycleReason::SystemShutdown => Stop::SystemShutdown,
                ev::LifecycleReason::Replay => Stop::Replay,
                // Anything else is not a clean shutdown.
                _ => Stop::ServiceStop,
            },
        },
        EventKind::DataGap {
            from_ms,
            to_ms,
            dropped_events,
            ..
        } => SignalKind::DataGap {
            from: fix(*from_ms),
            to: fix(*to_ms),
            dropped: *dropped_events,
        },
    }
}

/// Measured offsets smaller than this are network and queueing delay, not a wrong
/// clock, and are not applied (an 08:41 logon stays 08:41, not 08:41:00.005).
pub const OFFSET_NOISE_MS: i64 = 2_000;

/// The correction applied for a measured offset.
pub fn correction(clock_offset_ms: i64) -> i64 {
    if clock_offset_ms.abs() < OFFSET_NOISE_MS {
        0
    } else {
        clock_offset_ms
    }
}

/// Signals of one PC's stored events, corrected by each event's clock offset, plus a
/// `ClockOffset` signal where the PC's clock was off by at least the threshold (once,
/// and again whenever the offset moves by the threshold).
pub fn signals_of(events: &[StoredEvent], settings: &Settings) -> Vec<Signal> {
    let mut out: Vec<Signal> = events
        .iter()
        .map(|e| {
            let offset = correction(e.clock_offset_ms);
            Signal {
                at: ts(e.event.at_ms.saturating_add(offset)),
                pc: e.agent_id.clone(),
                kind: signal_kind(&e.event.kind, offset),
            }
        })
        .collect();
    let mut by_pc: BTreeMap<&str, Vec<(i64, u64, i64)>> = BTreeMap::new();
    for e in events {
        by_pc.entry(&e.agent_id).or_default().push((
            e.event.at_ms.saturating_add(correction(e.clock_offset_ms)),
            e.event.seq,
            -e.clock_offset_ms,
        ));
    }
    let threshold = settings.large_offset_ms.max(1);
    for (pc, mut list) in by_pc {
        list.sort();
        let mut last: Option<i64> = None;
        for (at, _, pc_minus_collector) in list {
            let large = pc_minus_collector.abs() >= threshold;
            let moved = last.is_none_or(|l| (pc_minus_collector - l).abs() >= threshold);
            if large && moved {
                out.push(Signal {
                    at: ts(at),
                    pc: pc.to_owned(),
                    kind: SignalKind::ClockOffset {
                        offset_ms: pc_minus_collector,
                    },
                });
            }
            if moved {
                last = Some(pc_minus_collector);
            }
        }
    }
    out
}

/// The signals for `person` on `date`: every event in [`signal_window`] of every PC
/// their accounts were ever seen on (their own session and usage events, and the PCs'
/// heartbeats, lifecycle and data gaps), plus each PC's last event before the window
/// and first after it. Returns the signals and the known PCs.
pub fn load_signals(
    store: &SqliteStore,
    person: &Person,
    date: Date,
    settings: &Settings,
) -> anyhow::Result<(Vec<Signal>, Vec<String>)> {
    let (from, to) = signal_window(date, settings);
    let (from_ms, to_ms) = (from.as_millisecond(), to.as_millisecond());
    // Raw instants are on the PC's clock: read a day more on each side, then judge
    // by corrected instants.
    let pad = 86_400_000;
    let pcs = store.known_pcs(&person.accounts)?;
    let mut signals = Vec::new();
    for pc in &pcs {
        let mut events = store.pc_events(pc, from_ms - pad, to_ms + pad)?;
        events.extend(store.pc_neighbours(pc, from_ms - pad, to_ms + pad)?);
        let all = signals_of(&events, settings);
        let before = all
            .iter()
            .filter(|s| s.at < from)
            .max_by_key(|s| s.at)
            .cloned();
        let after = all
            .iter()
            .filter(|s| s.at > to)
            .min_by_key(|s| s.at)
            .cloned();
        signals.extend(
            all.into_iter()
                .filter(|s| s.at >= from && s.at <= to)
                .chain(before)
                .chain(after),
        );
    }
    Ok((signals, pcs.into_iter().map(|(_, id)| id).collect()))
}

/// The person's exemptions that can matter for `date`.
fn exemptions_for(
    store: &SqliteStore,
    person: &Person,
    date: Date,
    settings: &Settings,
) -> anyhow::Result<Vec<Exemption>> {
    let (from, to) = signal_window(date, settings);
    Ok(store.exemptions(
        Some(&person.employee_id),
        from.as_millisecond(),
        to.as_millisecond(),
    )?)
}

/// Hash of what a verdict depends on besides events.
fn context_fp(rules: &Rules, person: &Person, exemptions: &[Exemption]) -> String {
    let mut p = person.clone();
    p.accounts.sort();
    sha(&format!(
        "{}|{}|{}",
        rules.fingerprint,
        serde_json::to_string(&p).unwrap_or_default(),
        serde_json::to_string(exemptions).unwrap_or_default()
    ))
}

/// Judges one person-day from the store and stores the verdict.
pub fn recompute(
    store: &SqliteStore,
    rules: &Rules,
    person: &Person,
    date: Date,
    now: Timestamp,
) -> anyhow::Result<DayVerdict> {
    let exemptions = exemptions_for(store, person, date, &rules.settings)?;
    let (signals, known_pcs) = load_signals(store, person, date, &rules.settings)?;
    let ctx = Context {
        calendar: &rules.calendar,
        schedules: &rules.schedules,
        exemptions: &exemptions,
        settings: &rules.settings,
        known_pcs: &known_pcs,
        now,
    };
    let v = attendance::verdict(person, date, &signals, &ctx);
    let cfp = context_fp(rules, person, &exemptions);
    let normalized = attendance::normalize(&signals);
    let fingerprint = sha(&format!(
        "{cfp}|{}",
        serde_json::to_string(&normalized).unwrap_or_default()
    ));
    store.put_verdict(&StoredVerdict {
        employee_id: person.employee_id.clone(),
        date,
        status: serde_json::to_value(v.status)?
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        verdict_json: serde_json::to_string(&v)?,
        provisional: v.provisional,
        computed_ms: now.as_millisecond(),
        context_fp: cfp,
        fingerprint,
    })?;
    Ok(v)
}

/// Recomputes every person-day marked dirty; returns how many were judged. Days of
/// accounts that map to nobody are dropped from the marks (their events stay).
pub fn recompute_dirty(
    store: &SqliteStore,
    rules: &Rules,
    now: Timestamp,
) -> anyhow::Result<usize> {
    let dirty = store.take_dirty()?;
    if dirty.is_empty() {
        return Ok(0);
    }
    let staff = store.staff()?;
    let owner: BTreeMap<&str, &Person> = staff
        .iter()
        .flat_map(|p| p.accounts.iter().map(move |a| (a.as_str(), p)))
        .collect();
    let mut todo: BTreeSet<(&str, Date)> = BTreeSet::new();
    for (account, date) in &dirty {
        if let Some(p) = owner.get(account.as_str()) {
            todo.insert((p.employee_id.as_str(), *date));
        }
    }
    let by_id: BTreeMap<&str, &Person> =
        staff.iter().map(|p| (p.employee_id.as_str(), p)).collect();
    for (i, (id, date)) in todo.iter().enumerate() {
        if let Err(e) = recompute(store, rules, by_id[id], *date, now) {
            // Put the marks back so the next round tries again.
            let rest: Vec<(String, Date)> = dirty
                .iter()
                .filter(|(a, d)| {
                    owner.get(a.as_str()).is_some_and(|p| {
                        todo.iter()
                            .skip(i)
                            .any(|(tid, td)| *tid == p.employee_id && td == d)
                    })
                })
                .cloned()
                .collect();
            store.mark_dirty(&rest)?;
            return Err(e);
        }
    }
    Ok(todo.len())
}

/// Recomputes every person on every date of `from..=to`.
pub fn recompute_range(
    store: &SqliteStore,
    rules: &Rules,
    from: Date,
    to: Date,
    now: Timestamp,
) -> anyhow::Result<usize> {
    anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    let staff = store.staff()?;
    let mut n = 0;
    let mut d = from;
    while d <= to {
        for p in &staff {
            recompute(store, rules, p, d, now)?;
            n += 1;
        }
        d = d.saturating_add(1.day());
    }
    Ok(n)
}

/// The verdicts of everyone in the directory on `date`, recomputing the missing
/// and stale ones first, in employee id order.
pub fn verdicts_for_date(
    store: &SqliteStore,
    rules: &Rules,
    date: Date,
    now: Timestamp,
) -> anyhow::Result<Vec<DayVerdict>> {
    let staff = store.staff()?;
    let stored = store.verdicts_on(date)?;
    let mut out = Vec::with_capacity(staff.len());
    for p in &staff {
        let fresh = match stored.get(&p.employee_id) {
            Some(s) if !s.provisional => {
                let ex = exemptions_for(store, p, date, &rules.settings)?;
                s.context_fp == context_fp(rules, p, &ex) && !store.is_dirty(&p.accounts, date)?
            }
            _ => false,
        };
        let v = match (fresh, stored.get(&p.employee_id)) {
            (true, Some(s)) => serde_json::from_str(&s.verdict_json).with_context(|| {
                format!(
                    "stored verdict of {} on {date} does not parse",
                    p.employee_id
                )
            })?,
            _ => recompute(store, rules, p, date, now)?,
        };
        out.push(v);
    }
    Ok(out)
}

/// Recomputes dirty days every `every` on a blocking thread, with the wall clock as
/// `now`, until aborted.
pub fn spawn_recompute(
    store: std::sync::Arc<SqliteStore>,
    rules: Rules,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    let rules = std::sync::Arc::new(rules);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (store, rules) = (store.clone(), rules.clone());
            let r = tokio::task::spawn_blocking(move || {
                recompute_dirty(&store, &rules, Timestamp::now())
            })
            .await;
            match r {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::debug!(days = n, "Recomputed day verdicts."),
                Ok(Err(e)) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "Failed to recompute day verdicts."
                    )
                }
                Err(e) => tracing::warn!(error = %e, "The verdict recompute task failed."),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaoqin_proto::event::Event;

    fn stored(seq: u64, at_ms: i64, offset: i64, kind: EventKind) -> StoredEvent {
        StoredEvent {
            agent_id: "pc-1".into(),
            event: Event { seq, at_ms, kind },
            received_ms: at_ms + offset,
            clock_offset_ms: offset,
        }
    }

    #[test]
    fn instants_are_corrected_and_a_large_offset_is_evidence_once() {
        let hb = EventKind::Heartbeat {
            interval_seconds: 60,
            accounts: vec!["zhangsan".into()],
        };
        // The PC clock is an hour behind: collector minus PC = +1 h.
        let hour = 3_600_000;
        let t = 1_795_000_000_000;
        let events = vec![
            stored(1, t, hour, hb.clone()),
            stored(2, t + 60_000, hour + 3, hb.clone()),
            stored(
                3,
                t + 120_000,
                hour,
                EventKind::Usage {
                    account: "zhangsan".into(),
                    start_ms: t,
                    end_ms: t + 300_000,
                    category: "chat".into(),
                    active_seconds: 10,
                    basis: ev::UsageBasis::Foreground,
                },
            ),
        ];
        let s = signals_of(&events, &Settings::default());
        assert_eq!(s[0].at.as_millisecond(), t + hour);
        let SignalKind::Usage { start, .. } = &s[2].kind else {
            panic!("{s:?}")
        };
        assert_eq!(start.as_millisecond(), t + hour);
        let offsets: Vec<_> = s
            .iter()
            .filter_map(|x| match x.kind {
                SignalKind::ClockOffset { offset_ms } => Some(offset_ms),
                _ => None,
            })
            .collect();
        assert_eq!(offsets, [-hour]);
        // A small offset is no evidence, and network delay is not applied.
        let s = signals_of(&[stored(1, t, 5, hb)], &Settings::default());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].at.as_millisecond(), t);
    }
}

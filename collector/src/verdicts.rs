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
use crate::store::concerns::*;
use crate::store::directory::{JudgedDay, StoredVerdict};
use anyhow::Context as _;
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use kaoqin_proto::event::{self as ev, EventKind};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Bumped whenever the rules' code changes what a verdict says.
pub const ENGINE_VERSION: &str = "attendance-4";

/// Everything besides events that verdicts depend on, built from the config and
/// the notices imported into the store.
#[derive(Debug, Clone)]
pub struct Rules {
    pub calendar: Calendar,
    pub schedules: ScheduleSet,
    pub settings: Settings,
    /// The office's own calendar days from the config.
    config_days: Vec<(Date, attendance::DayKind, String)>,
    /// The office's own calendar days in force: the config's, then those saved
    /// in the console (which win for the same date).
    overrides: Vec<(Date, attendance::DayKind, String)>,
    /// Hash of all of the above but the notices: a notice counts only for the
    /// verdicts of its year ([`Rules::year_fingerprint`]).
    pub fingerprint: String,
    /// The store's calendar revision the notices were read at (0: none read).
    pub calendar_revision: i64,
    /// The revision of the schedules saved in the console that are in force (0:
    /// the config file's are).
    pub schedules_revision: i64,
    /// Where the schedules in force come from, in words.
    pub schedules_source: String,
    /// The revision of the office's own days saved in the console (0: none).
    pub office_days_revision: i64,
}

/// The key of the schedules the console saves ([`OfficeSettings`]); they win
/// over the config file's.
pub const SCHEDULES_KEY: &str = "schedules";
/// The key of the office's own calendar days the console saves (CSV
/// `date,kind,note`); they win over the config file's for the same date.
pub const OFFICE_DAYS_KEY: &str = "office_days";

/// Hash of what verdicts depend on besides notices, events, people and exemptions.
fn rules_fingerprint(
    settings: &Settings,
    schedules: &ScheduleSet,
    overrides: &[(Date, attendance::DayKind, String)],
) -> String {
    sha(&format!(
        "{ENGINE_VERSION}|{:?}|{}|{}|{:?}|{:?}|{:?}",
        settings.time_zone.iana_name(),
        settings.day_boundary,
        settings.large_offset_ms,
        settings.office,
        schedules,
        overrides
    ))
}

/// The attendance settings of a config (time zone, day boundary, offset threshold).
pub fn settings(config: &Config) -> anyhow::Result<Settings> {
    let time_zone = jiff::tz::TimeZone::get(&config.server.time_zone)
        .with_context(|| format!("server.time_zone = {:?}", config.server.time_zone))?;
    let day_boundary = config
        .attendance
        .boundary()
        .map_err(|e| anyhow::anyhow!("attendance.day_boundary = {e}"))?;
    let r = &config.attendance.rules;
    Ok(Settings {
        time_zone,
        day_boundary,
        large_offset_ms: i64::from(config.attendance.large_offset_minutes) * 60_000,
        office: attendance::OfficeRules {
            absenteeism_after_minutes: r.absenteeism_after_minutes,
            overtime_min_block_minutes: r.overtime_min_block_minutes,
            overtime_round_minutes: r.overtime_round_minutes,
            overtime_needs_request: r.overtime_needs_request,
        },
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
        let fingerprint = rules_fingerprint(&settings, &schedules, &overrides);
        let schedules_source = match (&a.schedules, &a.schedules_file) {
            (Some(_), _) => "the config file ([attendance.schedules])".to_owned(),
            (None, Some(path)) => format!("the config file's schedules_file {}", path.display()),
            (None, None) => "the built-in default day".to_owned(),
        };
        Ok(Rules {
            calendar: Calendar::with_overrides(overrides.clone()),
            schedules,
            settings,
            config_days: overrides.clone(),
            overrides,
            office_days_revision: 0,
            fingerprint,
            calendar_revision: 0,
            schedules_revision: 0,
            schedules_source,
        })
    }

    /// The rules of `config` with the notices imported into `store`.
    pub fn load(config: &Config, store: &dyn Stores) -> anyhow::Result<Rules> {
        let base = Rules::from_config(config)?;
        base.with_store_notices(store)
    }

    /// These rules with the notices imported into `store` as they are now, and
    /// the schedules saved in the console, which win over the config file's.
    pub fn with_store_notices(&self, store: &dyn Stores) -> anyhow::Result<Rules> {
        let revision = store.calendar_revision()?;
        let notices = store.calendar_notices()?;
        let mut overrides = self.config_days.clone();
        let mut office_days_revision = 0;
        if let Some(saved) = store.office_setting(OFFICE_DAYS_KEY)? {
            let days = crate::notice::parse_office_days("office days", saved.value.as_bytes())
                .map_err(|e| anyhow::anyhow!("the office's days saved in the console: {e}"))?;
            overrides.extend(days);
            office_days_revision = saved.revision;
        }
        let rules = Rules {
            calendar: Calendar::new(notices, overrides.clone()),
            calendar_revision: revision,
            fingerprint: rules_fingerprint(&self.settings, &self.schedules, &overrides),
            overrides,
            office_days_revision,
            ..self.clone()
        };
        rules.with_store_schedules(store)
    }

    /// These rules with the schedules saved in the console, if any (and if they
    /// are not the ones in force already).
    pub fn with_store_schedules(self, store: &dyn Stores) -> anyhow::Result<Rules> {
        let Some(saved) = store.office_setting(SCHEDULES_KEY)? else {
            return Ok(self);
        };
        if saved.revision == self.schedules_revision {
            return Ok(self);
        }
        let schedules = ScheduleSet::from_toml(&saved.value)
            .map_err(|e| anyhow::anyhow!("the schedules saved in the console: {e}"))?;
        let when = Timestamp::from_millisecond(saved.updated_ms)
            .map(|t| {
                self.settings
                    .time_zone
                    .to_datetime(t)
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default();
        Ok(Rules {
            fingerprint: rules_fingerprint(&self.settings, &schedules, &self.overrides),
            schedules,
            schedules_revision: saved.revision,
            schedules_source: format!(
                "the console (revision {}, saved by {} at {when})",
                saved.revision, saved.actor
            ),
            ..self
        })
    }

    /// The years of `from..=to` without a notice ("2027" or "2027, 2028"), if any.
    pub fn provisional_years(&self, from: Date, to: Date) -> Option<String> {
        let years: Vec<String> = (from.year()..=to.year())
            .filter(|y| self.calendar.is_provisional(*y))
            .map(|y| y.to_string())
            .collect();
        (!years.is_empty()).then(|| years.join(", "))
    }

    /// What the verdicts of days in `year` depend on besides the person, their
    /// exemptions and their events.
    pub fn year_fingerprint(&self, year: i16) -> String {
        sha(&format!(
            "{}|{}",
            self.fingerprint,
            self.calendar.year_fingerprint(year)
        ))
    }
}

/// The rules a long-running server judges with: the config's, with the calendar
/// notices re-read whenever another process (`calendar import`) changed them.
pub struct LiveRules {
    store: std::sync::Arc<dyn Stores>,
    /// The config's settings, which never change while serving.
    settings: Settings,
    current: std::sync::Mutex<std::sync::Arc<Rules>>,
}

impl LiveRules {
    /// Starts from `rules` (notices are read on first use).
    pub fn new(store: std::sync::Arc<dyn Stores>, rules: Rules) -> LiveRules {
        LiveRules {
            store,
            settings: rules.settings.clone(),
            current: std::sync::Mutex::new(std::sync::Arc::new(rules)),
        }
    }

    /// The time zone and day boundary (no store read).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The rules now: one small read of the store's calendar revision, and the
    /// notices again only when it moved. If the store cannot answer, the last
    /// rules are kept (and the failure logged).
    pub fn current(&self) -> std::sync::Arc<Rules> {
        let last = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let moved = |key: &str, revision: i64| {
            self.store
                .office_setting(key)
                .ok()
                .flatten()
                .is_some_and(|s| s.revision != revision)
        };
        let schedules_moved = moved(SCHEDULES_KEY, last.schedules_revision)
            || moved(OFFICE_DAYS_KEY, last.office_days_revision);
        match self.store.calendar_revision() {
            Ok(r) if r == last.calendar_revision && !schedules_moved => last,
            Ok(_) => match last.with_store_notices(&*self.store) {
                Ok(fresh) => {
                    let fresh = std::sync::Arc::new(fresh);
                    tracing::info!(
                        revision = fresh.calendar_revision,
                        schedules = fresh.schedules_revision,
                        "Calendar notices or schedules changed; the verdicts they touch are judged again."
                    );
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
                    fresh
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "Failed to read calendar notices.");
                    last
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "Failed to read the calendar revision.");
                last
            }
        }
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
        EventKind::ClockJump { jump_ms } => SignalKind::ClockJump { jump_ms: *jump_ms },
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
    store: &dyn Stores,
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
    // An account new to a PC that day: someone may have sat at another's PC.
    for (pc, account, first_ms) in store.account_firsts(&person.accounts, from_ms, to_ms)? {
        signals.push(Signal {
            at: ts(first_ms),
            pc,
            kind: SignalKind::FirstSeen { account },
        });
    }
    // What someone tried to write into the day and the collector refused.
    for (pc, account, claimed_ms) in store.refused_claims(&person.accounts, from_ms, to_ms)? {
        signals.push(Signal {
            at: ts(claimed_ms),
            pc,
            kind: SignalKind::Refused { account },
        });
    }
    // A PC enrolled again that day: a reinstall, or a copied identity.
    for (pc, at_ms) in store.reenrolments(&pcs, from_ms, to_ms)? {
        signals.push(Signal {
            at: ts(at_ms),
            pc,
            kind: SignalKind::Reenrolled,
        });
    }
    Ok((signals, pcs.into_iter().map(|(_, id)| id).collect()))
}

/// The person's exemptions that can matter for `date`.
fn exemptions_for(
    store: &dyn Stores,
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

/// Hash of what a verdict depends on besides events; `year_fp` is
/// [`Rules::year_fingerprint`] of the day's year.
fn context_fp(year_fp: &str, person: &Person, exemptions: &[Exemption]) -> String {
    let mut p = person.clone();
    p.accounts.sort();
    // Contact details and the day the person left (no day after it is judged)
    // are not part of what a verdict depends on.
    p.email.clear();
    p.left_on = None;
    sha(&format!(
        "{}|{}|{}",
        year_fp,
        serde_json::to_string(&p).unwrap_or_default(),
        serde_json::to_string(exemptions).unwrap_or_default()
    ))
}

/// Calls `f` with what the rules see of one person-day in the store: its
/// signals, and the context they are judged in.
fn with_day<T>(
    store: &dyn Stores,
    rules: &Rules,
    person: &Person,
    date: Date,
    now: Timestamp,
    f: impl FnOnce(&[attendance::Signal], &Context<'_>, &[attendance::Exemption]) -> T,
) -> anyhow::Result<T> {
    let exemptions = exemptions_for(store, person, date, &rules.settings)?;
    let (signals, known_pcs) = load_signals(store, person, date, &rules.settings)?;
    let own_pcs = if person.own_pcs.is_empty() {
        None
    } else {
        Some(store.pcs_named(&person.own_pcs)?)
    };
    let ctx = Context {
        calendar: &rules.calendar,
        schedules: &rules.schedules,
        exemptions: &exemptions,
        settings: &rules.settings,
        known_pcs: &known_pcs,
        own_pcs: own_pcs.as_ref(),
        now,
    };
    Ok(f(&signals, &ctx, &exemptions))
}

/// The picture of one person-day ([`attendance::timeline`]), from the same
/// signals and context as its verdict.
pub fn day_timeline(
    store: &dyn Stores,
    rules: &Rules,
    person: &Person,
    date: Date,
    now: Timestamp,
) -> anyhow::Result<attendance::timeline::DayTimeline> {
    with_day(store, rules, person, date, now, |signals, ctx, _| {
        attendance::timeline::timeline(person, date, signals, ctx)
    })
}

/// Judges one person-day from the store, without storing the verdict.
pub fn judge(
    store: &dyn Stores,
    rules: &Rules,
    person: &Person,
    date: Date,
    now: Timestamp,
) -> anyhow::Result<JudgedDay> {
    with_day(
        store,
        rules,
        person,
        date,
        now,
        |signals, ctx, exemptions| {
            let verdict = attendance::verdict(person, date, signals, ctx);
            let context_fp = context_fp(&rules.year_fingerprint(date.year()), person, exemptions);
            let normalized = attendance::normalize(signals);
            let fingerprint = sha(&format!(
                "{context_fp}|{}",
                serde_json::to_string(&normalized).unwrap_or_default()
            ));
            JudgedDay {
                verdict,
                computed_ms: now.as_millisecond(),
                context_fp,
                fingerprint,
            }
        },
    )
}

/// Judges one person-day from the store and stores the verdict.
pub fn recompute(
    store: &dyn Stores,
    rules: &Rules,
    person: &Person,
    date: Date,
    now: Timestamp,
) -> anyhow::Result<DayVerdict> {
    let j = judge(store, rules, person, date, now)?;
    store.put_verdicts(std::slice::from_ref(&j))?;
    Ok(j.verdict)
}

/// Verdicts judged but not yet stored, written in one transaction per
/// [`Pending::LIMIT`] (one fsync for many person-days, not one each).
struct Pending<'a> {
    store: &'a dyn Stores,
    days: Vec<JudgedDay>,
}

impl<'a> Pending<'a> {
    const LIMIT: usize = 1_000;

    fn new(store: &'a dyn Stores) -> Self {
        Pending {
            store,
            days: Vec::new(),
        }
    }

    fn push(&mut self, j: JudgedDay) -> anyhow::Result<()> {
        self.days.push(j);
        if self.days.len() >= Self::LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if !self.days.is_empty() {
            self.store.put_verdicts(&self.days)?;
            self.days.clear();
        }
        Ok(())
    }
}

/// The dirty marks of each date with, for each mark of an account in a domain,
/// its plain name too: a listed account is marked when it is in the set exactly
/// as [`attendance::account_matches`] would match one of the marks.
fn dirty_keys(mut marks: HashMap<Date, HashSet<String>>) -> HashMap<Date, HashSet<String>> {
    for set in marks.values_mut() {
        let plain: Vec<String> = set
            .iter()
            .filter_map(|m| m.split_once('\\').map(|(_, user)| user.to_owned()))
            .collect();
        set.extend(plain);
    }
    marks
}

/// Recomputes every person-day marked dirty; returns how many were judged. Days of
/// accounts that map to nobody are dropped from the marks (their events stay).
pub fn recompute_dirty(store: &dyn Stores, rules: &Rules, now: Timestamp) -> anyhow::Result<usize> {
    let dirty = store.take_dirty()?;
    if dirty.is_empty() {
        return Ok(0);
    }
    let staff = store.staff()?;
    let listed: BTreeMap<&str, &Person> = staff
        .iter()
        .flat_map(|p| p.accounts.iter().map(move |a| (a.as_str(), p)))
        .collect();
    // A mark names the account as observed: `OFFICE\zhangsan` is the person who
    // has it listed so, or else the one listed as plain `zhangsan`.
    let owner = |account: &str| {
        listed.get(account).copied().or_else(|| {
            account
                .split_once('\\')
                .and_then(|(_, user)| listed.get(user).copied())
        })
    };
    // Days whose events were pruned keep the verdict they have.
    let frozen = store.frozen_before()?;
    let mut todo: BTreeSet<(&str, Date)> = BTreeSet::new();
    for (account, date) in &dirty {
        if let Some(p) = owner(account)
            && frozen.is_none_or(|f| *date >= f)
        {
            todo.insert((p.employee_id.as_str(), *date));
        }
    }
    let by_id: BTreeMap<&str, &Person> =
        staff.iter().map(|p| (p.employee_id.as_str(), p)).collect();
    let mut pending = Pending::new(store);
    let judged = todo
        .iter()
        .try_for_each(|(id, date)| pending.push(judge(store, rules, by_id[id], *date, now)?))
        .and_then(|()| pending.flush());
    if let Err(e) = judged {
        // Put the marks back so the next round tries again (days already stored
        // are judged once more, which changes nothing).
        let back: Vec<(String, Date)> = dirty
            .iter()
            .filter(|(a, _)| owner(a).is_some())
            .cloned()
            .collect();
        store.mark_dirty(&back)?;
        store.release_dirty(&dirty)?;
        return Err(e);
    }
    // Stored: the days are no longer claimed (marks made meanwhile stay).
    store.release_dirty(&dirty)?;
    Ok(todo.len())
}

/// Recomputes every person on every date of `from..=to`.
pub fn recompute_range(
    store: &dyn Stores,
    rules: &Rules,
    from: Date,
    to: Date,
    now: Timestamp,
) -> anyhow::Result<usize> {
    anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    let staff = store.staff()?;
    let mut pending = Pending::new(store);
    let mut n = 0;
    let mut d = from;
    while d <= to {
        for p in &staff {
            pending.push(judge(store, rules, p, d, now)?)?;
            n += 1;
        }
        d = d.saturating_add(1.day());
    }
    pending.flush()?;
    Ok(n)
}

/// How much of each verdict a read needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Everything, evidence and checkpoints included (a person's days, the daily
    /// report).
    Full,
    /// The figures summaries add up, from `day_verdicts` alone: `checkpoints`,
    /// `evidence`, `schedule_version` and `policy_note` are left empty, the
    /// office's counts (旷工, 缺卡, overtime) at zero (the monthly sheet reads
    /// [`Detail::Full`]), and the name and department are the directory's.
    Headline,
}

/// The headline verdict a stored row stands for ([`Detail::Headline`]): its
/// figures, with the person's current name and department.
fn headline(s: StoredVerdict<'_>, person: &Person, rules: &Rules) -> anyhow::Result<DayVerdict> {
    Ok(DayVerdict {
        employee_id: s.employee_id.to_owned(),
        name: person.name.clone(),
        department: person.department.clone(),
        date: s.date,
        day_kind: s.day_kind,
        calendar_provisional: rules.calendar.is_provisional(s.date.year()),
        status: s.status,
        provisional: s.provisional,
        arrival: s.arrival,
        departure: s.departure,
        late_minutes: s.late_minutes,
        early_minutes: s.early_minutes,
        checkpoints: Vec::new(),
        unverified: s.unverified,
        nonwork_seconds: s.nonwork_seconds()?,
        coverage: s.coverage,
        evidence: Vec::new(),
        schedule_version: String::new(),
        policy_note: String::new(),
        why: Vec::new(),
        absenteeism_half_days: 0,
        missing_checkpoints: 0,
        overtime_minutes: Default::default(),
    })
}

/// The verdicts of everyone in the directory on `date`, recomputing the missing
/// and stale ones first, in employee id order.
pub fn verdicts_for_date(
    store: &dyn Stores,
    rules: &Rules,
    date: Date,
    now: Timestamp,
) -> anyhow::Result<Vec<DayVerdict>> {
    verdicts_between(store, rules, date, date, &store.staff()?, Detail::Full, now)
}

/// The verdicts on `from..=to` of `people` (in employee id order, as
/// [`SqliteStore::staff`] lists them), by date and then employee id, recomputing
/// the missing and stale ones first. Only the people asked for are judged.
///
/// The read is a handful of queries whatever the period: the stored verdicts, the
/// dirty marks and the exemptions of the whole period at once. A verdict is fresh
/// when it is final, none of the person's accounts is dirty that day, and its
/// context fingerprint matches; the fingerprint is computed once per person for
/// the days without exemptions, which are nearly all of them.
pub fn verdicts_between(
    store: &dyn Stores,
    rules: &Rules,
    from: Date,
    to: Date,
    people: &[Person],
    detail: Detail,
    now: Timestamp,
) -> anyhow::Result<Vec<DayVerdict>> {
    // Whole verdicts are copied during the read, which holds the store's reader,
    // and parsed after it.
    let mut out = Vec::new();
    let mut whole: Vec<(String, Date, String)> = Vec::new();
    walk_between(store, rules, from, to, people, detail, now, |i, day| {
        match day {
            Day::Stored(s) => match (detail, s.verdict_json) {
                (Detail::Full, Some(json)) => {
                    whole.push((s.employee_id.to_owned(), s.date, json.to_owned()));
                }
                _ => out.push(headline(s, &people[i], rules)?),
            },
            Day::Judged(v) => out.push(v),
        }
        Ok(())
    })?;
    for (employee_id, date, json) in whole {
        out.push(serde_json::from_str(&json).with_context(|| {
            format!("stored verdict of {employee_id} on {date} does not parse")
        })?);
    }
    // Days come stored, judged, then whole: put back in order here (the sort
    // finds the runs).
    out.sort_by(|a, b| (a.date, &a.employee_id).cmp(&(b.date, &b.employee_id)));
    Ok(out)
}

/// A person-day as [`walk_between`] hands it over.
pub enum Day<'a> {
    /// A fresh stored verdict (its JSON only with [`Detail::Full`]).
    Stored(StoredVerdict<'a>),
    /// A verdict judged just now (and stored).
    Judged(DayVerdict),
}

/// Walks the person-days of [`verdicts_between`], handing each to `f` with the
/// index of its person in `people`: first the fresh stored ones in (date, employee
/// id) order, without building a [`DayVerdict`] for them (summaries add up the
/// stored figures directly), then the missing and stale ones, judged (and stored)
/// after the read, in the same order. Days after a person left
/// ([`Person::left_on`]) are passed over.
#[allow(clippy::too_many_arguments)]
pub fn walk_between(
    store: &dyn Stores,
    rules: &Rules,
    from: Date,
    to: Date,
    people: &[Person],
    detail: Detail,
    now: Timestamp,
    mut f: impl FnMut(usize, Day<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(from <= to, "from {from} is after to {to}");
    anyhow::ensure!(
        people.is_sorted_by(|a, b| a.employee_id < b.employee_id),
        "people must be in employee id order"
    );
    if people.is_empty() {
        return Ok(());
    }
    // One person: read only their rows; several: every row, passing over the rest.
    let only = match people {
        [p] => Some(p.employee_id.as_str()),
        _ => None,
    };
    let dirty = dirty_keys(store.dirty_between(from, to)?);
    // A stored verdict of a day whose events were pruned stands as it is.
    let frozen = store.frozen_before()?;
    let settings = &rules.settings;
    let mut dates = Vec::new();
    let mut d = from;
    while d <= to {
        dates.push((d, signal_window(d, settings)));
        d = d.saturating_add(1.day());
    }
    let (window_from, window_to) = (dates[0].1.0, dates[dates.len() - 1].1.1);
    // Each person's exemptions that touch the period, by index in `people`.
    let mut exemptions: Vec<Vec<Exemption>> = vec![Vec::new(); people.len()];
    for e in store.exemptions(
        only,
        window_from.as_millisecond(),
        window_to.as_millisecond(),
    )? {
        if let Ok(i) = people.binary_search_by(|p| p.employee_id.as_str().cmp(&e.employee_id)) {
            exemptions[i].push(e);
        }
    }
    // Context fingerprints, computed once per person and year of the period
    // (a period spans two years at most): without exemptions before the read
    // (which holds the store's reader), and with the last set of exemptions seen
    // (a bit each, for people with at most 64).
    let years: Vec<String> = (from.year()..=to.year())
        .map(|y| rules.year_fingerprint(y))
        .collect();
    let year_of = |di: usize| usize::try_from(dates[di].0.year() - from.year()).unwrap_or(0);
    let bare_fp: Vec<Vec<String>> = people
        .iter()
        .map(|p| years.iter().map(|y| context_fp(y, p, &[])).collect())
        .collect();
    let mut exempt_fp: Vec<Option<(u64, usize, String)>> = vec![None; people.len()];
    let mut fresh = |di: usize, i: usize, s: &StoredVerdict<'_>| -> bool {
        if frozen.is_some_and(|f| s.date < f) {
            return true;
        }
        if s.provisional {
            return false;
        }
        let (date, (w_from, w_to)) = dates[di];
        let yi = year_of(di);
        let p = &people[i];
        let mine = &exemptions[i];
        let touching = |e: &Exemption| e.start < w_to && e.end > w_from;
        let fp_matches = if !mine.iter().any(touching) {
            s.context_fp == bare_fp[i][yi]
        } else {
            let mask = (mine.len() <= 64).then(|| {
                mine.iter()
                    .enumerate()
                    .filter(|(_, e)| touching(e))
                    .fold(0u64, |m, (k, _)| m | 1 << k)
            });
            match (&exempt_fp[i], mask) {
                (Some((m, y, fp)), Some(mask)) if *m == mask && *y == yi => s.context_fp == fp,
                _ => {
                    let ex: Vec<Exemption> = mine.iter().filter(|e| touching(e)).cloned().collect();
                    let fp = context_fp(&years[yi], p, &ex);
                    let matches = s.context_fp == fp;
                    if let Some(mask) = mask {
                        exempt_fp[i] = Some((mask, yi, fp));
                    }
                    matches
                }
            }
        };
        fp_matches
            && dirty.get(&date).is_none_or(|marked| {
                // Marks are lower case, as the directory keeps accounts; a mark in
                // a domain also stands under its plain name (see `dirty_keys`).
                !p.accounts.iter().any(|a| {
                    if a.bytes().any(|b| b.is_ascii_uppercase()) {
                        marked.contains(&a.to_ascii_lowercase())
                    } else {
                        marked.contains(a.as_str())
                    }
                })
            })
    };
    // The (date, person) pairs in key order, as the rows come; `next` is the
    // first one not yet accounted for. Those without a fresh row are judged after
    // the read, which holds the store's reader.
    let key = |(di, i): (usize, usize)| (dates[di].0, people[i].employee_id.as_str());
    let step = |(di, i): (usize, usize)| {
        if i + 1 == people.len() {
            (di + 1, 0)
        } else {
            (di, i + 1)
        }
    };
    let mut next = (0, 0);
    let mut to_judge: Vec<(usize, usize)> = Vec::new();
    store.for_each_verdict(from, to, only, detail == Detail::Full, &mut |s| {
        while next.0 < dates.len() && key(next) < (s.date, s.employee_id) {
            to_judge.push(next);
            next = step(next);
        }
        // Rows of people not asked for, or no longer in the directory, are passed
        // over.
        if next.0 == dates.len() || key(next) != (s.date, s.employee_id) {
            return Ok(());
        }
        let (di, i) = next;
        next = step(next);
        if !people[i].employed_on(dates[di].0) {
            // A day after the person left: not judged, not reported.
            return Ok(());
        }
        if fresh(di, i, &s) {
            f(i, Day::Stored(s))
        } else {
            to_judge.push((di, i));
            Ok(())
        }
    })?;
    while next.0 < dates.len() {
        to_judge.push(next);
        next = step(next);
    }
    to_judge.retain(|(di, i)| people[*i].employed_on(dates[*di].0));
    let mut pending = Pending::new(store);
    for (di, i) in to_judge {
        let j = judge(store, rules, &people[i], dates[di].0, now)?;
        let v = j.verdict.clone();
        pending.push(j)?;
        f(i, Day::Judged(v))?;
    }
    pending.flush()
}

/// Recomputes dirty days every `every` on a blocking thread, with `clock` as `now`,
/// until `shutdown` completes; a round under way when it does is finished (its
/// verdicts stored) before the task ends. Once a day (and at start) it logs a
/// missing calendar notice ([`Calendar::notice_warning`]).
pub fn spawn_recompute(
    store: std::sync::Arc<dyn Stores>,
    rules: std::sync::Arc<LiveRules>,
    every: std::time::Duration,
    clock: crate::ingest::Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut periodic = crate::periodic::Periodic::new(every, shutdown);
        let mut warned_on: Option<Date> = None;
        while periodic.next().await {
            let (store, rules, clock) = (store.clone(), rules.clone(), clock.clone());
            let r = tokio::task::spawn_blocking(move || {
                let rules = rules.current();
                let now =
                    Timestamp::from_millisecond(clock()).unwrap_or_else(|_| crate::clock::now());
                recompute_dirty(&*store, &rules, now).map(|n| (n, rules, now))
            })
            .await;
            if let Ok(Ok((_, rules, now))) = &r {
                let today = rules.settings.time_zone.to_datetime(*now).date();
                if warned_on != Some(today) {
                    warned_on = Some(today);
                    if let Some(w) = rules.calendar.notice_warning(today) {
                        tracing::warn!(year = w.year, "{}", w.text_en());
                    }
                }
            }
            match r.map(|r| r.map(|(n, _, _)| n)) {
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
    #[allow(unused_imports)]
    use crate::store::concerns::*;
    use crate::store::sqlite::SqliteStore;
    use kaoqin_proto::event::Event;

    fn stored(seq: u64, at_ms: i64, offset: i64, kind: EventKind) -> StoredEvent {
        StoredEvent {
            agent_id: "pc-1".into(),
            event: Event { seq, at_ms, kind },
            received_ms: at_ms + offset,
            clock_offset_ms: offset,
        }
    }

    /// Computed at `computed` (ms) or not: which stored rows a read recomputed.
    fn computed_at(store: &dyn Stores, from: Date, to: Date) -> BTreeMap<(String, Date), i64> {
        let mut out = BTreeMap::new();
        store
            .for_each_verdict(from, to, None, false, &mut |v| {
                out.insert((v.employee_id.to_owned(), v.date), v.computed_ms);
                Ok(())
            })
            .unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_range_read_uses_fresh_stored_verdicts_and_recomputes_only_stale_ones() {
        use crate::store::{Batch, HostFacts, Store};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let rules = Rules::from_config(&Config::default()).unwrap();
        let person = |id: &str, account: &str| Person {
            employee_id: id.into(),
            name: id.into(),
            department: "办公室".into(),
            accounts: vec![account.into()],
            own_pcs: Vec::new(),
            email: String::new(),
            left_on: None,
        };
        store
            .import_staff(&[person("E2", "lisi"), person("E1", "zhangsan")], 0)
            .unwrap();
        // zhangsan's PC: on Monday 08:20 to 17:40 (Asia/Shanghai).
        let token = store
            .create_token(
                &crate::store::TokenSpec::new_machines(60_000, None).reenrolling(),
                0,
            )
            .unwrap();
        let pc = HostFacts {
            machine_id: "m1".into(),
            ..HostFacts::default()
        };
        let e = store.enroll(&token.token, pc, 0).await.unwrap();
        let num = store.agent_auth(&e.agent_id).unwrap().unwrap().num;
        let session = |seq, at: &str, kind| Event {
            seq,
            at_ms: at.parse::<Timestamp>().unwrap().as_millisecond(),
            kind: EventKind::Session {
                kind,
                account: "zhangsan".into(),
            },
        };
        store
            .store_batch(Batch {
                agent_num: num,
                received_ms: 1_796_000_000_000,
                sent_at_ms: 1_796_000_000_000,
                clock_offset_ms: 0,
                events: vec![
                    session(1, "2026-11-23T00:20:00Z", ev::SessionKind::Logon),
                    session(2, "2026-11-23T09:40:00Z", ev::SessionKind::Logoff),
                ],
                // The day lies before the enrolment at 0: a replay.
                replay: true,
            })
            .await
            .unwrap();
        store.take_dirty().unwrap();
        // Monday to Wednesday, judged once the week is over.
        let (from, to): (Date, Date) =
            ("2026-11-23".parse().unwrap(), "2026-11-25".parse().unwrap());
        let at = |ms: i64| Timestamp::from_millisecond(1_796_000_000_000 + ms).unwrap();
        // Everyone's verdicts of the period, read at `now`.
        let read = |detail, now| {
            verdicts_between(
                &*store,
                &rules,
                from,
                to,
                &store.staff().unwrap(),
                detail,
                now,
            )
            .unwrap()
        };
        let first = read(Detail::Full, at(1));
        let order: Vec<(String, String)> = first
            .iter()
            .map(|v| (v.date.to_string(), v.employee_id.clone()))
            .collect();
        assert_eq!(
            order[..3],
            [
                ("2026-11-23".into(), "E1".into()),
                ("2026-11-23".into(), "E2".into()),
                ("2026-11-24".into(), "E1".into())
            ]
        );
        use attendance::Status::*;
        assert_eq!(
            first.iter().map(|v| v.status).collect::<Vec<_>>(),
            [Present, Unknown, Unknown, Unknown, Unknown, Unknown]
        );
        assert!(!first[0].evidence.is_empty(), "{:#?}", first[0]);

        // Nothing changed: read from the store, evidence left out of the headline.
        let again = read(Detail::Headline, at(2));
        assert!(
            computed_at(&*store, from, to)
                .values()
                .all(|&ms| ms == at(1).as_millisecond())
        );
        for (full, head) in first.iter().zip(&again) {
            assert!(head.evidence.is_empty() && head.checkpoints.is_empty());
            let mut full = full.clone();
            (full.evidence, full.checkpoints) = (Vec::new(), Vec::new());
            (full.schedule_version, full.policy_note) = (String::new(), String::new());
            full.why.clear();
            assert_eq!(&full, head);
        }

        // Leave for E1 on Tuesday, with the dirty marks it made cleared: the context
        // fingerprint alone finds the stale day.
        let tuesday: Date = "2026-11-24".parse().unwrap();
        let midnight = |d: Date| {
            rules
                .settings
                .time_zone
                .to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .unwrap()
        };
        store
            .add_exemptions(
                &[Exemption {
                    employee_id: "E1".into(),
                    kind: attendance::ExemptionKind::Leave,
                    start: midnight(tuesday),
                    end: midnight(tuesday.tomorrow().unwrap()),
                    note: String::new(),
                }],
                &rules.settings,
                0,
            )
            .unwrap();
        store.take_dirty().unwrap();
        // Events for lisi on Wednesday mark that day dirty.
        store
            .mark_dirty(&[("lisi".into(), "2026-11-25".parse().unwrap())])
            .unwrap();
        let third = read(Detail::Headline, at(3));
        let recomputed: Vec<(String, String)> = computed_at(&*store, from, to)
            .into_iter()
            .filter(|(_, ms)| *ms == at(3).as_millisecond())
            .map(|((id, d), _)| (id, d.to_string()))
            .collect();
        assert_eq!(
            recomputed,
            [
                // The leave lies in the signal windows of the days either side too.
                ("E1".to_owned(), "2026-11-23".to_owned()),
                ("E1".to_owned(), "2026-11-24".to_owned()),
                ("E1".to_owned(), "2026-11-25".to_owned()),
                ("E2".to_owned(), "2026-11-25".to_owned())
            ]
        );
        // Stored and judged days come back merged in (date, employee id) order.
        assert!(
            third.is_sorted_by_key(|v| (v.date, v.employee_id.clone())) && third.len() == 6,
            "{third:?}"
        );
        assert_eq!(third[2].status, Leave, "{:?}", third[2]);

        // The summary added up from the stored figures equals the one added up from
        // whole verdicts, a correction included (E1's Monday, present -> field).
        let monday: Date = "2026-11-23".parse().unwrap();
        let appeal = store
            .add_appeal(
                "E1",
                monday,
                Field,
                "visiting a client",
                "zhangsan",
                monday,
                crate::config::AppealsConfig::default(),
                0,
            )
            .unwrap();
        store
            .decide_appeal(appeal, true, "ok", "officer", None, 0)
            .unwrap();
        use crate::reports::summary::{self, By};
        for by in [By::Staff, By::Department] {
            let everyone = store.staff().unwrap();
            let days = summary::load_days(
                &*store,
                &rules,
                from,
                to,
                &everyone,
                Detail::Headline,
                at(5),
            )
            .unwrap();
            let (rows, weeks) =
                summary::summary_between(&*store, &rules, from, to, by, &everyone, at(5)).unwrap();
            assert_eq!(rows, summary::summarize(&days, by), "{by:?}");
            assert_eq!(weeks, summary::weekly(&days));
            assert_eq!(rows[0].corrected_days, 1, "{rows:?}");
        }
        let (rows, _) = summary::summary_between(
            &*store,
            &rules,
            from,
            to,
            By::Staff,
            &store
                .staff()
                .unwrap()
                .into_iter()
                .filter(|p| p.employee_id == "E2")
                .collect::<Vec<_>>(),
            at(5),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key, "E2");

        // One person's read sees the same.
        let e1 = store
            .staff()
            .unwrap()
            .into_iter()
            .find(|p| p.employee_id == "E1")
            .unwrap();
        let mine = verdicts_between(&*store, &rules, from, to, &[e1], Detail::Full, at(4)).unwrap();
        assert_eq!(mine.len(), 3);
        assert_eq!(mine[1].status, Leave);
        assert!(
            computed_at(&*store, from, to)
                .values()
                .all(|&ms| ms != at(4).as_millisecond())
        );

        // E2 left on Monday: the later days, stored or not, are neither judged nor
        // reported; when E2 returns they are there again.
        store
            .set_left_on("E2", Some(monday), "web:root", 0)
            .unwrap();
        let days = |now| {
            read(Detail::Headline, now)
                .iter()
                .filter(|v| v.employee_id == "E2")
                .map(|v| v.date.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(days(at(6)), ["2026-11-23"]);
        store.set_left_on("E2", None, "web:root", 0).unwrap();
        assert_eq!(days(at(7)).len(), 3);
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

//! Turns what the probe observes into the events the agent reports.
//!
//! Pure and clock-free: time comes in with each call, so the live loop and the
//! replay in virtual time drive the very same code.
//!
//! ```text
//!  observations:  logon    fg=WeChat      lock   unlock fg=WPS         logoff
//!                   |---------|-------------|------|-------|-------------|
//!  active?          yes       yes           no     yes     yes
//!  counted as       other     chat          -      other   other
//!  intervals:   [  08:30 - 08:35  )[  08:35 - 08:40  ) ...  (aligned to the interval)
//!  usage events: one per (account, category) per interval, at the interval's end
//! ```
//!
//! What must stay true:
//! - a user is active only while logged on, not locked and not idle; only active
//!   time is counted, and the seconds of one account in one interval never exceed
//!   the interval per category;
//! - an application stays in front until the next application, lock, idle start
//!   or logoff of that user;
//! - session events are passed on once per change of state (a repeated lock is
//!   not a second lock);
//! - a jump in time longer than `max_gap_ms` (a suspended PC) is not counted as
//!   active time;
//! - the open interval is closed early at every logoff, lock and idle start (and
//!   by [`Recorder::finish`] at the agent's stop or a clock jump), so the minutes
//!   before a session change are reported, with their real length, at that change;
//! - names and titles of applications are used for classification here and go
//!   no further: the output has only categories.

use crate::classify::Classifier;
use crate::config::SamplingConfig;
use crate::event::{EventKind, SessionKind, UsageBasis};
use crate::probe::{AppsBasis, Observation};
use std::collections::{BTreeMap, BTreeSet};

/// An event to be spooled: its instant and what happened.
pub type Recorded = (i64, EventKind);

#[derive(Debug, Default)]
struct User {
    logged_on: bool,
    locked: bool,
    idle: bool,
    /// Session state has been seen at least once.
    known: bool,
    basis: Option<UsageBasis>,
    /// Categories of the applications in front (or running), sorted, deduplicated.
    categories: Vec<String>,
    /// Active milliseconds in the current interval per (category, basis).
    acc: BTreeMap<(String, UsageBasis), i64>,
}

impl User {
    fn active(&self) -> bool {
        self.logged_on && !self.locked && !self.idle
    }
}

/// The agent's recorder; see the module doc.
pub struct Recorder {
    classifier: Classifier,
    sampling: SamplingConfig,
    users: BTreeMap<String, User>,
    /// The instant up to which time has been accounted.
    clock: Option<i64>,
    interval_start: Option<i64>,
    next_heartbeat: Option<i64>,
}

impl Recorder {
    pub fn new(classifier: Classifier, sampling: SamplingConfig) -> Recorder {
        Recorder {
            classifier,
            sampling,
            users: BTreeMap::new(),
            clock: None,
            interval_start: None,
            next_heartbeat: None,
        }
    }

    /// Replaces the category rules (from the collector's policy).
    pub fn set_classifier(&mut self, classifier: Classifier) {
        self.classifier = classifier;
    }

    /// Replaces the intervals (from the collector's policy); a new usage interval
    /// length applies from the next interval.
    pub fn set_sampling(&mut self, sampling: SamplingConfig) {
        self.sampling = sampling;
    }

    /// The OS accounts logged on now, sorted.
    pub fn accounts(&self) -> Vec<String> {
        self.users
            .iter()
            .filter(|(_, u)| u.logged_on)
            .map(|(a, _)| a.clone())
            .collect()
    }

    fn interval_ms(&self) -> i64 {
        i64::from(self.sampling.usage_interval_seconds) * 1000
    }

    fn max_gap_ms(&self) -> i64 {
        (i64::from(self.sampling.sample_seconds) * 4000).max(60_000)
    }

    /// Accounts time up to `t`, closing every usage interval that ends by then.
    fn advance(&mut self, t: i64, out: &mut Vec<Recorded>) {
        let Some(clock) = self.clock else {
            self.clock = Some(t);
            let iv = self.interval_ms();
            self.interval_start = Some(t.div_euclid(iv) * iv);
            return;
        };
        if t <= clock {
            return;
        }
        let count = t - clock <= self.max_gap_ms();
        let mut from = clock;
        loop {
            let start = self.interval_start.unwrap_or(from);
            // Intervals end on the grid of their length, also after one was
            // closed early at a session change.
            let iv = self.interval_ms();
            let end = (start.div_euclid(iv) + 1) * iv;
            if t < end {
                break;
            }
            if count {
                self.accrue(end - from);
            }
            self.close_interval(start, end, out);
            self.interval_start = Some(end);
            from = end;
        }
        if count {
            self.accrue(t - from);
        }
        self.clock = Some(t);
    }

    fn accrue(&mut self, ms: i64) {
        if ms <= 0 {
            return;
        }
        for u in self.users.values_mut().filter(|u| u.active()) {
            let basis = u.basis.unwrap_or(UsageBasis::Foreground);
            if u.categories.is_empty() {
                *u.acc.entry(("other".to_owned(), basis)).or_default() += ms;
            }
            for c in &u.categories {
                *u.acc.entry((c.clone(), basis)).or_default() += ms;
            }
        }
    }

    fn close_interval(&mut self, start: i64, end: i64, out: &mut Vec<Recorded>) {
        let span_s = ((end - start) / 1000).max(1) as u32;
        for (account, u) in &mut self.users {
            for ((category, basis), ms) in std::mem::take(&mut u.acc) {
                let secs = ((ms + 500) / 1000).min(i64::from(span_s)) as u32;
                if secs == 0 {
                    continue;
                }
                out.push((
                    end,
                    EventKind::Usage {
                        account: account.clone(),
                        start_ms: start,
                        end_ms: end,
                        category,
                        active_seconds: secs,
                        basis,
                    },
                ));
            }
        }
    }

    /// Takes in one observation (observations must come in time order; an
    /// instant before the accounted time is taken as the accounted time).
    pub fn observe(&mut self, obs: Observation) -> Vec<Recorded> {
        let mut out = Vec::new();
        self.advance(obs.at_ms(), &mut out);
        match obs {
            Observation::Session {
                at_ms,
                account,
                kind,
            } => {
                if matches!(
                    kind,
                    SessionKind::Logoff | SessionKind::Lock | SessionKind::IdleStart
                ) {
                    // What was used up to this change is delivered now, not at the
                    // next interval mark, and is not lost if the agent stops here.
                    self.close_partial(&mut out);
                }
                let u = self.users.entry(account.clone()).or_default();
                let first = !u.known;
                u.known = true;
                let changed = match kind {
                    SessionKind::Logon => !std::mem::replace(&mut u.logged_on, true) || first,
                    SessionKind::Logoff => {
                        let was = u.logged_on || first;
                        *u = User {
                            known: true,
                            ..User::default()
                        };
                        was
                    }
                    SessionKind::Lock => {
                        u.logged_on = true;
                        u.categories.clear();
                        !std::mem::replace(&mut u.locked, true) || first
                    }
                    SessionKind::Unlock => {
                        u.logged_on = true;
                        std::mem::replace(&mut u.locked, false) || first
                    }
                    SessionKind::IdleStart => {
                        u.logged_on = true;
                        u.categories.clear();
                        !std::mem::replace(&mut u.idle, true) || first
                    }
                    SessionKind::IdleEnd => {
                        u.logged_on = true;
                        std::mem::replace(&mut u.idle, false) || first
                    }
                };
                if kind == SessionKind::Logon {
                    u.locked = false;
                    u.idle = false;
                }
                if changed {
                    out.push((at_ms, EventKind::Session { kind, account }));
                }
            }
            Observation::Apps {
                account,
                basis,
                apps,
                ..
            } => {
                let categories: BTreeSet<String> = apps
                    .iter()
                    .map(|a| self.classifier.classify(a).to_owned())
                    .collect();
                let u = self.users.entry(account).or_default();
                u.basis = Some(match basis {
                    AppsBasis::Foreground => UsageBasis::Foreground,
                    AppsBasis::Running => UsageBasis::Running,
                });
                // Running applications that are all "other" say nothing more
                // than "active"; keep the specific ones only.
                u.categories = categories
                    .into_iter()
                    .filter(|c| basis == AppsBasis::Foreground || c != "other")
                    .collect();
            }
        }
        out
    }

    /// Moves time to `now_ms`: closes finished usage intervals and emits a
    /// heartbeat when one is due.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Recorded> {
        let mut out = Vec::new();
        self.advance(now_ms, &mut out);
        let hb = i64::from(self.sampling.heartbeat_seconds) * 1000;
        let due = self.next_heartbeat.is_none_or(|n| now_ms >= n);
        if due {
            out.push((
                now_ms,
                EventKind::Heartbeat {
                    interval_seconds: self.sampling.heartbeat_seconds,
                    accounts: self.accounts(),
                },
            ));
            let next = self.next_heartbeat.map_or(now_ms + hb, |n| n + hb);
            // After a long pause (suspend), schedule from now rather than catching up.
            self.next_heartbeat = Some(if next <= now_ms { now_ms + hb } else { next });
        }
        out
    }

    /// Carries on after the PC's clock was set by `jump_ms`, at `now_ms` on the new
    /// clock. Call [`Recorder::finish`] with the old clock's time first: what was
    /// accounted before stays on the clock it was measured with.
    pub fn rebase(&mut self, jump_ms: i64, now_ms: i64) {
        let iv = self.interval_ms();
        self.clock = Some(now_ms);
        self.interval_start = Some(now_ms.div_euclid(iv) * iv);
        self.next_heartbeat = self.next_heartbeat.map(|n| n.saturating_add(jump_ms));
    }

    /// Closes the current, partial usage interval at `now_ms` (the agent stops,
    /// or the clock was set).
    pub fn finish(&mut self, now_ms: i64) -> Vec<Recorded> {
        let mut out = Vec::new();
        self.advance(now_ms, &mut out);
        self.close_partial(&mut out);
        out
    }

    /// Closes the open interval at the accounted time; the next one runs from
    /// there to the next mark of the grid.
    fn close_partial(&mut self, out: &mut Vec<Recorded>) {
        if let (Some(start), Some(t)) = (self.interval_start, self.clock)
            && t > start
        {
            self.close_interval(start, t, out);
            self.interval_start = Some(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::App;

    const T: i64 = 1_795_000_200_000; // aligned to 5 minutes
    const MIN: i64 = 60_000;

    fn rec() -> Recorder {
        Recorder::new(Classifier::builtin(), SamplingConfig::default())
    }

    fn session(at: i64, kind: SessionKind) -> Observation {
        Observation::Session {
            at_ms: at,
            account: "zhangsan".into(),
            kind,
        }
    }

    fn fg(at: i64, name: &str) -> Observation {
        Observation::Apps {
            at_ms: at,
            account: "zhangsan".into(),
            basis: AppsBasis::Foreground,
            apps: vec![App {
                name: name.into(),
                title: None,
            }],
        }
    }

    fn usage(out: &[Recorded]) -> BTreeMap<String, u32> {
        let mut m = BTreeMap::new();
        for (_, e) in out {
            if let EventKind::Usage {
                category,
                active_seconds,
                ..
            } = e
            {
                *m.entry(category.clone()).or_default() += active_seconds;
            }
        }
        m
    }

    fn drive(r: &mut Recorder, obs: Vec<Observation>, until: i64) -> Vec<Recorded> {
        let mut out = Vec::new();
        let mut obs = obs.into_iter().peekable();
        let mut t = T;
        while t <= until {
            while let Some(o) = obs.next_if(|o| o.at_ms() <= t) {
                out.extend(r.observe(o));
            }
            out.extend(r.tick(t));
            t += 15_000;
        }
        out.extend(r.finish(until));
        out
    }

    #[test]
    fn foreground_time_goes_to_its_category_and_lock_stops_it() {
        let mut r = rec();
        let out = drive(
            &mut r,
            vec![
                session(T, SessionKind::Logon),
                fg(T + MIN, "WeChat.exe"),
                session(T + 4 * MIN, SessionKind::Lock),
                session(T + 9 * MIN, SessionKind::Unlock),
                fg(T + 9 * MIN, "WINWORD.EXE"),
            ],
            T + 12 * MIN,
        );
        let u = usage(&out);
        assert_eq!(u.get("chat"), Some(&180), "{u:?}");
        assert_eq!(u.get("other"), Some(&(60 + 180)), "{u:?}");
        let sessions: Vec<_> = out
            .iter()
            .filter_map(|(at, e)| match e {
                EventKind::Session { kind, .. } => Some((*at, *kind)),
                _ => None,
            })
            .collect();
        assert_eq!(
            sessions,
            vec![
                (T, SessionKind::Logon),
                (T + 4 * MIN, SessionKind::Lock),
                (T + 9 * MIN, SessionKind::Unlock)
            ]
        );
    }

    #[test]
    fn after_the_clock_is_set_back_time_is_still_accounted_and_heartbeats_go_on() {
        const DAY: i64 = 1_440 * MIN;
        let mut r = rec();
        let mut out = drive(
            &mut r,
            vec![session(T, SessionKind::Logon), fg(T, "WeChat.exe")],
            T + 7 * MIN,
        );
        // The runner's sequence: close on the old clock, carry on on the new one,
        // which is a day behind.
        let now = T + 7 * MIN - DAY;
        out.extend(r.finish(now + DAY));
        r.rebase(-DAY, now);
        let before = out.len();
        for i in 1..=40 {
            out.extend(r.tick(now + i * 15_000));
        }
        let after = &out[before..];
        assert!(
            after
                .iter()
                .all(|(at, _)| (now..=now + 10 * MIN).contains(at)),
            "everything after is stamped on the new clock: {after:?}"
        );
        assert_eq!(
            usage(after).get("chat"),
            Some(&(3 * 60 + 5 * 60)),
            "3 minutes to the first 5-minute boundary, then a whole interval: {after:?}"
        );
        let heartbeats = after
            .iter()
            .filter(|(_, e)| matches!(e, EventKind::Heartbeat { .. }))
            .count();
        assert_eq!(heartbeats, 10, "one a minute, not after a day: {after:?}");
    }

    #[test]
    fn usage_is_split_at_interval_boundaries_and_never_exceeds_them() {
        let mut r = rec();
        let out = drive(
            &mut r,
            vec![session(T, SessionKind::Logon), fg(T, "QQMusic.exe")],
            T + 11 * MIN,
        );
        let media: Vec<_> = out
            .iter()
            .filter_map(|(_, e)| match e {
                EventKind::Usage {
                    start_ms,
                    end_ms,
                    active_seconds,
                    category,
                    ..
                } if category == "media" => Some((*start_ms, *end_ms, *active_seconds)),
                _ => None,
            })
            .collect();
        assert_eq!(
            media,
            vec![
                (T, T + 5 * MIN, 300),
                (T + 5 * MIN, T + 10 * MIN, 300),
                (T + 10 * MIN, T + 11 * MIN, 60)
            ]
        );
    }

    /// (start, end, seconds, stamped at) of one category's usage events.
    fn intervals(out: &[Recorded], category: &str) -> Vec<(i64, i64, u32, i64)> {
        out.iter()
            .filter_map(|(at, e)| match e {
                EventKind::Usage {
                    start_ms,
                    end_ms,
                    active_seconds,
                    category: c,
                    ..
                } if c == category => Some((*start_ms, *end_ms, *active_seconds, *at)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_logoff_off_the_interval_mark_delivers_the_last_minutes_with_it() {
        let mut r = rec();
        let out = drive(
            &mut r,
            vec![
                session(T, SessionKind::Logon),
                fg(T, "WeChat.exe"),
                session(T + 9 * MIN, SessionKind::Logoff),
            ],
            T + 15 * MIN,
        );
        assert_eq!(
            intervals(&out, "chat"),
            vec![
                (T, T + 5 * MIN, 300, T + 5 * MIN),
                (T + 5 * MIN, T + 9 * MIN, 240, T + 9 * MIN)
            ],
            "{out:?}"
        );
        let last_usage = out
            .iter()
            .rposition(|(_, e)| matches!(e, EventKind::Usage { .. }))
            .unwrap();
        let logoff = out
            .iter()
            .position(|(_, e)| {
                matches!(
                    e,
                    EventKind::Session {
                        kind: SessionKind::Logoff,
                        ..
                    }
                )
            })
            .unwrap();
        assert!(
            last_usage < logoff,
            "the slice comes before the logoff: {out:?}"
        );
    }

    #[test]
    fn lock_and_idle_close_the_interval_and_the_grid_goes_on() {
        let mut r = rec();
        let out = drive(
            &mut r,
            vec![
                session(T, SessionKind::Logon),
                fg(T, "QQMusic.exe"),
                session(T + 7 * MIN, SessionKind::Lock),
                session(T + 8 * MIN, SessionKind::Unlock),
                fg(T + 8 * MIN, "QQMusic.exe"),
                session(T + 11 * MIN, SessionKind::IdleStart),
            ],
            T + 12 * MIN,
        );
        assert_eq!(
            intervals(&out, "media"),
            vec![
                (T, T + 5 * MIN, 300, T + 5 * MIN),
                (T + 5 * MIN, T + 7 * MIN, 120, T + 7 * MIN),
                (T + 7 * MIN, T + 10 * MIN, 120, T + 10 * MIN),
                (T + 10 * MIN, T + 11 * MIN, 60, T + 11 * MIN)
            ],
            "{out:?}"
        );
    }

    #[test]
    fn repeated_states_are_reported_once_and_idle_is_not_active() {
        let mut r = rec();
        let out = drive(
            &mut r,
            vec![
                session(T, SessionKind::Logon),
                session(T, SessionKind::Logon),
                session(T + MIN, SessionKind::IdleStart),
                session(T + 2 * MIN, SessionKind::IdleStart),
                session(T + 3 * MIN, SessionKind::IdleEnd),
            ],
            T + 5 * MIN,
        );
        let kinds: Vec<_> = out
            .iter()
            .filter_map(|(_, e)| match e {
                EventKind::Session { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                SessionKind::Logon,
                SessionKind::IdleStart,
                SessionKind::IdleEnd
            ]
        );
        assert_eq!(usage(&out).get("other"), Some(&180));
    }

    #[test]
    fn heartbeats_come_at_their_interval_with_the_accounts_logged_on() {
        let mut r = rec();
        let out = drive(&mut r, vec![session(T, SessionKind::Logon)], T + 3 * MIN);
        let beats: Vec<_> = out
            .iter()
            .filter_map(|(at, e)| match e {
                EventKind::Heartbeat { accounts, .. } => Some((*at, accounts.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(beats.len(), 4, "{beats:?}");
        assert_eq!(beats[1], (T + MIN, vec!["zhangsan".to_owned()]));
    }

    #[test]
    fn a_suspended_pc_does_not_count_the_gap_as_active() {
        let mut r = rec();
        let mut out = r.observe(session(T, SessionKind::Logon));
        out.extend(r.tick(T + MIN));
        out.extend(r.tick(T + 3 * 3_600_000));
        out.extend(r.finish(T + 3 * 3_600_000 + MIN));
        assert_eq!(usage(&out).get("other"), Some(&120));
    }

    #[test]
    fn running_apps_count_only_their_specific_categories() {
        let mut r = rec();
        let running = Observation::Apps {
            at_ms: T,
            account: "zhangsan".into(),
            basis: AppsBasis::Running,
            apps: vec![
                App {
                    name: "wechat".into(),
                    title: None,
                },
                App {
                    name: "bash".into(),
                    title: None,
                },
            ],
        };
        let out = drive(
            &mut r,
            vec![session(T, SessionKind::Logon), running],
            T + 2 * MIN,
        );
        let u = usage(&out);
        assert_eq!(u.get("chat"), Some(&120));
        assert_eq!(u.get("other"), None);
        assert!(out.iter().any(|(_, e)| matches!(
            e,
            EventKind::Usage {
                basis: UsageBasis::Running,
                ..
            }
        )));
    }
}

//! From normalized signals to presence periods and to per-PC accountability.
//!
//! What must stay true: everything here is a function of the normalized signal list
//! (sorted, deduplicated), so order and duplicates of the input cannot matter; no
//! interval produced here has its end before its start.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::Person;
use super::interval::{self, Iv, add_secs};
use super::said::Said;
use super::signal::{Signal, SignalKind, StartReason, StopReason};

/// Whether `account` is one of the person's (see [`super::account_matches`]).
pub(crate) fn is_person_account(person: &Person, account: &str) -> bool {
    person
        .accounts
        .iter()
        .any(|a| super::account_matches(a, account))
}

/// One raw presence period (may be a single instant) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Piece {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) pc: String,
    pub(crate) what: Said,
}

/// Where a signal goes among those of one PC at the same instant: the agent's
/// start first; then usage intervals (they end at that instant, so they tell of the
/// time before it); then what ends a stretch of presence; then what opens one; then
/// the heartbeat (a snapshot taken after the changes of its instant); the agent's
/// stop last.
fn same_instant_rank(kind: &SignalKind) -> u8 {
    match kind {
        SignalKind::AgentStart { .. } => 0,
        SignalKind::Usage { .. } => 1,
        SignalKind::Session { kind, .. } if !kind.opens_presence() => 2,
        SignalKind::Session { .. } => 3,
        SignalKind::Heartbeat { .. } => 4,
        SignalKind::DataGap { .. }
        | SignalKind::ClockOffset { .. }
        | SignalKind::ClockJump { .. }
        | SignalKind::FirstSeen { .. }
        | SignalKind::Refused { .. }
        | SignalKind::Reenrolled => 5,
        SignalKind::AgentStop { .. } => 6,
    }
}

/// Puts the signals of one PC in the order they happened there (see
/// [`same_instant_rank`]); stable, so the normalized order stays within a rank.
fn in_pc_order(sigs: &mut [&Signal]) {
    sigs.sort_by_key(|s| (s.at, same_instant_rank(&s.kind)));
}

/// The signals of each PC in the order they happened there. `signals` must be
/// normalized.
fn by_pc(signals: &[Signal]) -> BTreeMap<&str, Vec<&Signal>> {
    let mut by_pc: BTreeMap<&str, Vec<&Signal>> = BTreeMap::new();
    for s in signals {
        by_pc.entry(s.pc.as_str()).or_default().push(s);
    }
    for sigs in by_pc.values_mut() {
        in_pc_order(sigs);
    }
    by_pc
}

/// Presence periods of the person on every PC and account. `signals` must be
/// normalized and contain nothing after `now`.
///
/// A stretch of presence is opened by a logon, an unlock or a return from idle, or
/// (when none is open) by active use whose interval began after the last change that
/// ended one; it is ended by the logoff, lock or idle start that ends it, whatever
/// opened it. A stretch nothing ends (the agent stopped or died, a heartbeat no
/// longer lists the account) ends at the last instant it was seen.
pub(crate) fn presence_pieces(person: &Person, signals: &[Signal], now: Timestamp) -> Vec<Piece> {
    struct Open {
        since: Timestamp,
        last_seen: Timestamp,
        what: Said,
        /// Opened by a session change (else by active use only).
        by_session: bool,
    }
    let mut pieces = Vec::new();
    for (pc, sigs) in by_pc(signals) {
        // Keyed by lower-cased account.
        let mut open: BTreeMap<String, Open> = BTreeMap::new();
        // The last instant a stretch of the account ended by a session change.
        let mut ended: BTreeMap<String, Timestamp> = BTreeMap::new();
        let close = |pieces: &mut Vec<Piece>, o: Open, end: Timestamp| {
            pieces.push(Piece {
                start: o.since,
                end: end.max(o.since),
                pc: pc.to_string(),
                what: o.what,
            });
        };
        for s in sigs {
            match &s.kind {
                SignalKind::Session { account, kind } if is_person_account(person, account) => {
                    let key = account.to_ascii_lowercase();
                    if kind.opens_presence() {
                        match open.get_mut(&key) {
                            Some(o) if o.by_session => o.last_seen = o.last_seen.max(s.at),
                            _ => {
                                // A stretch seen only in use ended before this change
                                // opened a new one.
                                if let Some(o) = open.remove(&key) {
                                    let end = o.last_seen;
                                    close(&mut pieces, o, end);
                                }
                                let what = Said::Session {
                                    account: account.clone(),
                                    kind: *kind,
                                };
                                open.insert(
                                    key,
                                    Open {
                                        since: s.at,
                                        last_seen: s.at,
                                        what,
                                        by_session: true,
                                    },
                                );
                            }
                        }
                    } else {
                        if let Some(o) = open.remove(&key) {
                            close(&mut pieces, o, s.at);
                        }
                        ended.insert(key, s.at);
                    }
                }
                SignalKind::Usage {
                    account,
                    start,
                    end,
                    category,
                    active_seconds,
                } if is_person_account(person, account) && *active_seconds > 0 && start <= end => {
                    // The active seconds may lie anywhere in the interval, so it
                    // proves presence no earlier than `end - active` and no later
                    // than `start + active`: an interval 08:40-08:45 with 240 active
                    // seconds is an arrival at 08:41, not 08:40.
                    let active = i64::from(*active_seconds);
                    let lo = (*start).max(interval::add_secs(*end, -active));
                    let hi = (*end).min(interval::add_secs(*start, active)).max(lo);
                    let end = hi.min(now);
                    let what = Said::ActiveUse {
                        account: account.clone(),
                        category: category.clone(),
                    };
                    if lo <= end {
                        pieces.push(Piece {
                            start: lo,
                            end,
                            pc: pc.to_string(),
                            what: what.clone(),
                        });
                    }
                    let key = account.to_ascii_lowercase();
                    match open.get_mut(&key) {
                        Some(o) if o.by_session => o.last_seen = o.last_seen.max(s.at),
                        Some(o) => o.last_seen = o.last_seen.max(end),
                        None if lo <= end && ended.get(&key).is_none_or(|e| *e <= *start) => {
                            open.insert(
                                key,
                                Open {
                                    since: lo,
                                    last_seen: end,
                                    what,
                                    by_session: false,
                                },
                            );
                        }
                        None => {}
                    }
                }
                SignalKind::Heartbeat { accounts, .. } => {
                    let keys: Vec<String> = open.keys().cloned().collect();
                    for key in keys {
                        let listed = accounts.iter().any(|a| a.eq_ignore_ascii_case(&key));
                        let Some(o) = open.get_mut(&key) else {
                            continue;
                        };
                        if listed {
                            o.last_seen = o.last_seen.max(s.at);
                        } else if s.at > o.since
                            // A snapshot taken in the same instant as the logon may
                            // predate it; only a later one ends the presence.
                            && let Some(o) = open.remove(&key)
                        {
                            let end = o.last_seen;
                            close(&mut pieces, o, end);
                        }
                    }
                }
                SignalKind::AgentStop { .. } => {
                    for (_, o) in std::mem::take(&mut open) {
                        close(&mut pieces, o, s.at);
                    }
                }
                SignalKind::AgentStart { .. } => {
                    for (_, o) in std::mem::take(&mut open) {
                        let end = o.last_seen;
                        close(&mut pieces, o, end);
                    }
                }
                _ => {}
            }
        }
        for (_, o) in open {
            let end = o.last_seen;
            close(&mut pieces, o, end);
        }
    }
    pieces.sort();
    pieces
}

/// Merge pieces into blocks, keeping single instants (a lone logon is presence too).
pub(crate) fn merge_blocks(pieces: &[Piece]) -> Vec<Iv> {
    let mut ivs: Vec<Iv> = pieces.iter().map(|p| Iv::new(p.start, p.end)).collect();
    ivs.sort();
    let mut out: Vec<Iv> = Vec::new();
    for iv in ivs {
        match out.last_mut() {
            Some(last) if iv.start <= last.end => last.end = last.end.max(iv.end),
            _ => out.push(iv),
        }
    }
    out
}

/// What is known about one PC over time.
#[derive(Debug, Clone, Default)]
pub(crate) struct PcAccount {
    /// Agent alive (heartbeats close enough), minus data gaps.
    pub(crate) alive: Vec<Iv>,
    /// Alive with none of the person's accounts logged on, or cleanly off; minus gaps.
    pub(crate) accounted: Vec<Iv>,
    /// Stretches that are not accounted for, with the reason in plain words.
    pub(crate) problems: Vec<(Iv, Said)>,
    /// Clean shutdown-to-boot stretches.
    pub(crate) clean_off: Vec<Iv>,
}

/// Whether the person's accounts are logged on, as far as is known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Logged {
    Unknown,
    Known(BTreeSet<String>),
}

/// Accountability of one PC from its signals (normalized, none after `now`).
pub(crate) fn account_pc(
    person: &Person,
    pc: &str,
    signals: &[Signal],
    now: Timestamp,
    fmt: &dyn Fn(Timestamp) -> String,
) -> PcAccount {
    let mut points: Vec<&Signal> = signals
        .iter()
        .filter(|s| {
            s.pc == pc
                && !matches!(
                    s.kind,
                    SignalKind::ClockOffset { .. }
                        | SignalKind::ClockJump { .. }
                        | SignalKind::FirstSeen { .. }
                        | SignalKind::Refused { .. }
                        | SignalKind::Reenrolled
                )
        })
        .collect();
    in_pc_order(&mut points);
    let mut acc = PcAccount::default();
    let Some(first) = points.first() else {
        acc.problems
            .push((Iv::new(Timestamp::MIN, Timestamp::MAX), Said::NeverHeard));
        return acc;
    };
    acc.problems.push((
        Iv::new(Timestamp::MIN, first.at),
        Said::NotHeardBefore { at: fmt(first.at) },
    ));
    let first_interval = points.iter().find_map(|s| match s.kind {
        SignalKind::Heartbeat {
            interval_seconds, ..
        } => Some(interval_seconds),
        _ => None,
    });
    let mut interval = first_interval;
    let mut logged = Logged::Unknown;
    let mut alive = Vec::new();
    let mut accounted = Vec::new();

    for (i, p) in points.iter().enumerate() {
        match &p.kind {
            SignalKind::Heartbeat {
                interval_seconds,
                accounts,
            } => {
                interval = Some(*interval_seconds);
                let mine = accounts
                    .iter()
                    .filter(|a| is_person_account(person, a))
                    .map(|a| a.to_ascii_lowercase());
                logged = Logged::Known(mine.collect());
            }
            SignalKind::Session { account, kind } if is_person_account(person, account) => {
                if let Logged::Known(set) = &mut logged {
                    match kind {
                        super::SessionKind::Logon => {
                            set.insert(account.to_ascii_lowercase());
                        }
                        super::SessionKind::Logoff => {
                            set.remove(&account.to_ascii_lowercase());
                        }
                        _ => {}
                    }
                }
            }
            SignalKind::AgentStart { reason, .. } => {
                logged = if *reason == StartReason::SystemBoot {
                    Logged::Known(BTreeSet::new())
                } else {
                    Logged::Unknown
                };
            }
            _ => {}
        }
        let next = points.get(i + 1).copied();
        let seg_end = next.map_or(now, |n| n.at);
        let seg = Iv::new(p.at, seg_end);
        if seg.start >= seg.end {
            continue;
        }
        let tolerance = i64::from(interval.unwrap_or(60)) * 2;
        if let SignalKind::AgentStop { reason } = p.kind {
            let clean_next = next.and_then(|n| match n.kind {
                SignalKind::AgentStart {
                    reason: StartReason::SystemBoot,
                    previous_seen,
                } => Some(previous_seen.is_none_or(|ps| ps <= add_secs(p.at, tolerance))),
                _ => None,
            });
            match (reason, clean_next, next) {
                (StopReason::SystemShutdown, Some(true), _) => {
                    accounted.push(seg);
                    acc.clean_off.push(seg);
                }
                (StopReason::SystemShutdown, Some(false), Some(n)) => acc.problems.push((
                    seg,
                    Said::ShutdownRanBeforeBoot {
                        at: fmt(p.at),
                        boot: fmt(n.at),
                    },
                )),
                (StopReason::SystemShutdown, _, None) => acc
                    .problems
                    .push((seg, Said::ShutdownNotStarted { at: fmt(p.at) })),
                (StopReason::SystemShutdown, _, Some(n)) => acc.problems.push((
                    seg,
                    Said::ShutdownNoBoot {
                        at: fmt(p.at),
                        next: fmt(n.at),
                    },
                )),
                (_, _, _) => acc
                    .problems
                    .push((seg, Said::StoppedNoShutdown { at: fmt(p.at) })),
            }
            continue;
        }
        if let Some(SignalKind::AgentStart { reason, .. }) = next.map(|n| &n.kind) {
            // A start not directly after a stop: the agent died in between.
            let (from, to) = (fmt(seg.start), fmt(seg.end));
            let why = match reason {
                StartReason::CrashRestart => Said::Crashed { from, to },
                _ => Said::RestartedNoStop { from, to },
            };
            acc.problems.push((seg, why));
            continue;
        }
        let Some(iv_secs) = interval else {
            acc.problems.push((seg, Said::NoHeartbeats));
            continue;
        };
        let limit = add_secs(p.at, 2 * i64::from(iv_secs));
        if seg_end > limit {
            let what = match next {
                Some(_) => Said::NoHeartbeat {
                    from: fmt(seg.start),
                    to: fmt(seg.end),
                    every_s: iv_secs,
                },
                None => Said::LastHeard {
                    at: fmt(seg.start),
                    every_s: iv_secs,
                },
            };
            acc.problems.push((seg, what));
            continue;
        }
        alive.push(seg);
        match &logged {
            Logged::Known(set) if set.is_empty() => accounted.push(seg),
            Logged::Known(set) => acc.problems.push((
                seg,
                Said::LockedOrIdle {
                    accounts: set.iter().cloned().collect(),
                    from: fmt(seg.start),
                },
            )),
            Logged::Unknown => acc.problems.push((
                seg,
                Said::LogonUnknown {
                    from: fmt(seg.start),
                },
            )),
        }
    }

    let gaps: Vec<Iv> = interval::normalize(
        points
            .iter()
            .filter_map(|s| match s.kind {
                SignalKind::DataGap { from, to, dropped } => {
                    let gap = Iv::new(from, to.max(from));
                    acc.problems.push((
                        gap,
                        Said::DataGap {
                            from: fmt(from),
                            to: fmt(to.max(from)),
                            dropped,
                        },
                    ));
                    Some(gap)
                }
                _ => None,
            })
            .collect(),
    );
    acc.alive = interval::subtract(&interval::normalize(alive), &gaps);
    acc.accounted = interval::subtract(&interval::normalize(accounted), &gaps);
    acc.clean_off = interval::subtract(
        &interval::normalize(std::mem::take(&mut acc.clean_off)),
        &gaps,
    );
    acc
}

//! The day verdict: one person, one attendance day, everything as arguments.
//!
//! What must stay true: the verdict is a function of the *set* of signals (normalized
//! first), of the context and of `now`; nothing after `now` is judged; a working day is
//! `absent` only when every PC of the person is accounted for (see the module docs of
//! `attendance`); every number is a count of whole seconds or minutes, never negative.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::counting;
use super::interval::{self, Iv, add_secs};
use super::presence::{self, Piece, is_person_account};
use super::said::Said;
use super::schedule::Schedule;
use super::signal::{Signal, SignalKind, normalize};
use super::{
    CheckpointKind, CheckpointResult, Context, Coverage, DayKind, DayVerdict, EvidenceItem,
    Exemption, ExemptionKind, Outcome, Person, Settings, Status,
};

/// The instant of `time` on `date` in `tz` (the earlier one in a fold, the later edge of
/// a gap).
pub(super) fn local(date: Date, time: Time, tz: &TimeZone) -> Timestamp {
    tz.to_ambiguous_timestamp(date.to_datetime(time))
        .compatible()
        .unwrap_or(if date.year() < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
}

/// The attendance day `[D boundary, D+1 boundary)` as instants.
pub(super) fn day_window(date: Date, settings: &Settings) -> Iv {
    let tz = &settings.time_zone;
    Iv::new(
        local(date, settings.day_boundary, tz),
        local(date.saturating_add(1.day()), settings.day_boundary, tz),
    )
}

/// The span of signals a caller should pass for `date`: from the start of the previous
/// attendance day to the end of the next one. Add, for each of the person's PCs, its
/// last signal before this span and its first signal after it, so that a PC shut down
/// over a long holiday can still be shown cleanly off.
pub fn signal_window(date: Date, settings: &Settings) -> (Timestamp, Timestamp) {
    let start = day_window(date.saturating_sub(1.day()), settings).start;
    let end = day_window(date.saturating_add(1.day()), settings).end;
    (start, end)
}

/// The PCs on which one of the person's accounts appears (a session event, a usage
/// interval, or a heartbeat listing it).
pub fn pcs_for(person: &Person, signals: &[Signal]) -> BTreeSet<String> {
    signals
        .iter()
        .filter(|s| match &s.kind {
            SignalKind::Session { account, .. } | SignalKind::Usage { account, .. } => {
                is_person_account(person, account)
            }
            SignalKind::Heartbeat { accounts, .. } => {
                accounts.iter().any(|a| is_person_account(person, a))
            }
            _ => false,
        })
        .map(|s| s.pc.clone())
        .collect()
}

/// One session of the day as instants, with its rules.
#[derive(Debug, Clone)]
pub(super) struct PlanSession {
    pub(super) start: Timestamp,
    pub(super) end: Timestamp,
    sched_start: Time,
    sched_end: Time,
    late_grace: u32,
    early_grace: u32,
    check_arrival: bool,
    check_departure: bool,
}

/// The day's sessions and a label for the schedule in effect.
pub(super) fn plan(
    schedule: &Schedule,
    date: Date,
    tz: &TimeZone,
    arrival: Option<Timestamp>,
) -> (Vec<PlanSession>, String) {
    match schedule {
        Schedule::Fixed { .. } => {
            let (sessions, season) = schedule.sessions_on(date).unwrap_or((&[], None));
            let plan = sessions
                .iter()
                .map(|s| PlanSession {
                    start: local(date, s.start, tz),
                    end: local(date, s.end, tz),
                    sched_start: s.start,
                    sched_end: s.end,
                    late_grace: s.late_grace_minutes,
                    early_grace: s.early_grace_minutes,
                    check_arrival: s.check_arrival,
                    check_departure: s.check_departure,
                })
                .collect();
            (
                plan,
                season.map(|s| format!("season {s}")).unwrap_or_default(),
            )
        }
        Schedule::Flexible(f) => {
            let band_start = local(date, f.band_start, tz);
            let band_end = local(date, f.band_end, tz);
            let core_start = local(date, f.core_start, tz);
            let core_end = local(date, f.core_end, tz);
            let from = arrival.map_or(core_start, |a| a.clamp(band_start, core_start));
            let expected = add_secs(from, i64::from(f.required_minutes) * 60)
                .max(core_end)
                .min(band_end);
            let sched_end = tz.to_datetime(expected).time();
            let label = format!(
                "flexible: core {}-{}, {} min from arrival, expected departure {}",
                f.core_start,
                f.core_end,
                f.required_minutes,
                sched_end.strftime("%H:%M")
            );
            let plan = vec![PlanSession {
                start: core_start,
                end: expected,
                sched_start: f.core_start,
                sched_end,
                late_grace: f.late_grace_minutes,
                early_grace: f.early_grace_minutes,
                check_arrival: true,
                check_departure: true,
            }];
            (plan, label)
        }
    }
}

/// Exemptions of the person as intervals with their kind.
struct Exempt {
    list: Vec<(Iv, ExemptionKind, String)>,
    merged: Vec<Iv>,
}

impl Exempt {
    fn new(person: &Person, exemptions: &[Exemption]) -> Exempt {
        let mut list: Vec<(Iv, ExemptionKind, String)> = exemptions
            .iter()
            .filter(|e| e.employee_id == person.employee_id && e.kind.excuses() && e.start < e.end)
            .map(|e| (Iv::new(e.start, e.end), e.kind, e.note.clone()))
            .collect();
        list.sort();
        list.dedup();
        let merged = interval::normalize(list.iter().map(|(iv, _, _)| *iv).collect());
        Exempt { list, merged }
    }

    /// The kind covering `t` (edges included); leave first when several do.
    fn kind_at(&self, t: Timestamp) -> Option<ExemptionKind> {
        self.list
            .iter()
            .filter(|(iv, _, _)| iv.start <= t && t <= iv.end)
            .map(|(_, k, _)| *k)
            .min()
    }
}

fn minutes_past(later: Timestamp, earlier: Timestamp, grace_minutes: u32) -> Option<u32> {
    let secs = later.as_second() - earlier.as_second();
    (secs > i64::from(grace_minutes) * 60).then(|| u32::try_from(secs / 60).unwrap_or(u32::MAX))
}

struct Judged {
    checkpoints: Vec<CheckpointResult>,
}

/// Judge every checkpoint of the plan.
fn judge(plan: &[PlanSession], blocks: &[Iv], exempt: &Exempt, now: Timestamp) -> Judged {
    let arrival = blocks.first().map(|b| b.start);
    let departure = blocks.iter().map(|b| b.end).max();
    let mut checkpoints = Vec::new();
    for (i, s) in plan.iter().enumerate() {
        if s.check_arrival {
            let (expected, fully, kind) = match interval::covers_instant(&exempt.merged, s.start) {
                Some(x) if x.end >= s.end => (s.start, true, exempt.kind_at(s.start)),
                Some(x) => (x.end, false, exempt.kind_at(s.start)),
                None => (s.start, false, None),
            };
            let actual = if i == 0 {
                arrival
            } else {
                let lo = plan[i - 1].end;
                blocks
                    .iter()
                    .filter(|b| b.end >= lo && b.start < s.end)
                    .map(|b| b.start.max(lo))
                    .min()
            };
            let (outcome, minutes) = if fully {
                (Outcome::Excused, 0)
            } else {
                match actual {
                    Some(a) => match minutes_past(a, expected, s.late_grace) {
                        Some(m) => (Outcome::Late, m),
                        None => (Outcome::OnTime, 0),
                    },
                    None if now < add_secs(expected, i64::from(s.late_grace) * 60) => {
                        (Outcome::Pending, 0)
                    }
                    None => (Outcome::Missed, 0),
                }
            };
            checkpoints.push(CheckpointResult {
                session: i,
                kind: CheckpointKind::Arrival,
                scheduled: s.sched_start,
                expected,
                actual,
                minutes,
                outcome,
                unverified_minutes: 0,
                excused_by: kind,
            });
        }
        if s.check_departure {
            let (expected, fully, kind) = match interval::covers_instant(&exempt.merged, s.end) {
                Some(x) if x.start <= s.start => (s.end, true, exempt.kind_at(s.end)),
                Some(x) => (x.start, false, exempt.kind_at(s.end)),
                None => (s.end, false, None),
            };
            let actual = if i + 1 == plan.len() {
                departure
            } else {
                let hi = plan[i + 1].start;
                blocks
                    .iter()
                    .filter(|b| b.start <= hi && b.end >= s.start)
                    .map(|b| b.end.min(hi))
                    .max()
            };
            let (outcome, minutes) = if fully {
                (Outcome::Excused, 0)
            } else if now < expected {
                (Outcome::Pending, 0)
            } else {
                match actual {
                    Some(d) => match minutes_past(expected, d, s.early_grace) {
                        Some(m) => (Outcome::Early, m),
                        None => (Outcome::OnTime, 0),
                    },
                    None => (Outcome::Missed, 0),
                }
            };
            checkpoints.push(CheckpointResult {
                session: i,
                kind: CheckpointKind::Departure,
                scheduled: s.sched_end,
                expected,
                actual,
                minutes,
                outcome,
                unverified_minutes: 0,
                excused_by: kind,
            });
        }
    }
    Judged { checkpoints }
}

/// Non-work seconds by category inside `allowed` (normalized), split in proportion.
fn nonwork(person: &Person, signals: &[Signal], allowed: &[Iv]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for s in signals {
        let SignalKind::Usage {
            account,
            start,
            end,
            category,
            active_seconds,
        } = &s.kind
        else {
            continue;
        };
        if !is_person_account(person, account)
            || category == "other"
            || category == "work"
            || start > end
        {
            continue;
        }
        let len_ms = i128::from(end.as_millisecond() - start.as_millisecond());
        let counted = if len_ms == 0 {
            if allowed.iter().any(|iv| iv.contains(*start)) {
                u64::from(*active_seconds)
            } else {
                0
            }
        } else {
            let overlap: i64 = interval::intersect(&[Iv::new(*start, *end)], allowed)
                .iter()
                .map(|iv| iv.millis())
                .sum();
            let active = i128::from(*active_seconds).min((len_ms + 999) / 1000);
            u64::try_from(active * i128::from(overlap) / len_ms).unwrap_or(0)
        };
        if counted > 0 {
            *out.entry(category.clone()).or_default() += counted;
        }
    }
    out
}

/// Plain-words evidence from the signals inside the day window.
fn signal_evidence(
    person: &Person,
    signals: &[Signal],
    pcs: &BTreeSet<String>,
    window: Iv,
    settings: &Settings,
    fmt: &dyn Fn(Timestamp) -> String,
) -> Vec<EvidenceItem> {
    let mut out = Vec::new();
    let mut push = |at: Timestamp, pc: &str, said: Said| out.push(EvidenceItem::new(at, pc, said));
    for s in signals {
        let mine = pcs.contains(&s.pc);
        match &s.kind {
            SignalKind::DataGap { from, to, dropped }
                if mine && *from < window.end && *to >= window.start =>
            {
                push(
                    s.at,
                    &s.pc,
                    Said::DataGap {
                        from: fmt(*from),
                        to: fmt(*to),
                        dropped: *dropped,
                    },
                );
            }
            _ if !window.contains(s.at) => {}
            SignalKind::Session { account, kind } if is_person_account(person, account) => {
                push(
                    s.at,
                    &s.pc,
                    Said::Session {
                        account: account.clone(),
                        kind: *kind,
                    },
                );
            }
            SignalKind::AgentStart {
                reason,
                previous_seen,
            } if mine => {
                push(
                    s.at,
                    &s.pc,
                    Said::AgentStart {
                        reason: *reason,
                        previous_seen: previous_seen.map(fmt),
                    },
                );
            }
            SignalKind::AgentStop { reason } if mine => {
                push(s.at, &s.pc, Said::AgentStop { reason: *reason })
            }
            SignalKind::ClockOffset { offset_ms }
                if mine && offset_ms.unsigned_abs() >= settings.large_offset_ms.unsigned_abs() =>
            {
                push(
                    s.at,
                    &s.pc,
                    Said::ClockOffset {
                        offset_ms: *offset_ms,
                    },
                );
            }
            SignalKind::FirstSeen { account } if is_person_account(person, account) => {
                push(
                    s.at,
                    &s.pc,
                    Said::FirstSeen {
                        account: account.clone(),
                    },
                );
            }
            SignalKind::Refused { account } if is_person_account(person, account) => {
                push(
                    s.at,
                    &s.pc,
                    Said::Refused {
                        account: account.clone(),
                    },
                );
            }
            SignalKind::Reenrolled if mine => push(s.at, &s.pc, Said::Reenrolled),
            SignalKind::ClockJump { jump_ms } if mine => {
                push(s.at, &s.pc, Said::ClockJump { jump_ms: *jump_ms });
            }
            _ => {}
        }
    }
    out
}

/// The verdict for `person` on attendance day `date`.
///
/// `signals` are the stored events of the person's PCs around the day (see
/// [`signal_window`]), in any order, possibly with duplicates; signals after
/// `ctx.now` are ignored.
pub fn verdict(person: &Person, date: Date, signals: &[Signal], ctx: &Context<'_>) -> DayVerdict {
    let settings = ctx.settings;
    let tz = &settings.time_zone;
    let now = ctx.now;
    let fmt = |t: Timestamp| -> String {
        let dt = tz.to_datetime(t);
        if dt.date() == date {
            dt.strftime("%H:%M:%S").to_string()
        } else {
            dt.strftime("%Y-%m-%d %H:%M:%S").to_string()
        }
    };
    let signals: Vec<Signal> = normalize(signals)
        .into_iter()
        .filter(|s| s.at <= now)
        .collect();
    let window = day_window(date, settings);
    let day_kind = ctx.calendar.day_kind(date);
    let mut pcs = pcs_for(person, &signals);
    pcs.extend(ctx.known_pcs.iter().cloned());
    let exempt = Exempt::new(person, ctx.exemptions);

    // Presence of the day: merged blocks that start inside the window, with the
    // approved missed punches.
    let mut pieces = presence::presence_pieces(person, &signals, now);
    counting::add_punches(person, ctx.exemptions, &mut pieces, window, now);
    let blocks: Vec<Iv> = presence::merge_blocks(&pieces)
        .into_iter()
        .filter(|b| window.contains(b.start) && b.start <= now)
        .collect();
    let arrival = blocks.first().map(|b| b.start);
    let departure = blocks.iter().map(|b| b.end).max();

    let mut evidence = signal_evidence(person, &signals, &pcs, window, settings, &fmt);
    let origin = |pick: &dyn Fn(&Piece) -> bool| pieces.iter().filter(|p| pick(p)).min().cloned();
    if let Some(a) = arrival
        && let Some(p) = origin(&|p: &Piece| p.start == a)
    {
        evidence.push(EvidenceItem::new(
            a,
            p.pc,
            Said::Arrival {
                by: Box::new(p.what),
            },
        ));
    }
    if let Some(d) = departure
        && let Some(p) = origin(&|p: &Piece| p.end == d && window.contains(p.start))
    {
        evidence.push(EvidenceItem::new(
            d,
            p.pc,
            Said::Departure {
                from: fmt(p.start),
                by: Box::new(p.what),
            },
        ));
    }
    if let Some(own) = ctx.own_pcs {
        let mut marked = BTreeSet::new();
        for p in pieces.iter().filter(|p| window.contains(p.start)) {
            if p.pc != counting::REQUEST_PC && !own.contains(&p.pc) && marked.insert(p.pc.clone()) {
                evidence.push(EvidenceItem::new(p.start, p.pc.clone(), Said::OtherPc));
            }
        }
    }
    for (iv, kind, note) in &exempt.list {
        if iv.start < window.end && iv.end > window.start {
            evidence.push(EvidenceItem::new(
                iv.start.max(window.start),
                "-",
                Said::Exempted {
                    kind: *kind,
                    from: fmt(iv.start),
                    to: fmt(iv.end),
                    note: note.clone(),
                },
            ));
        }
    }

    // Approved overtime of the person touching the day.
    let approved_overtime = interval::normalize(
        ctx.exemptions
            .iter()
            .filter(|e| {
                e.employee_id == person.employee_id
                    && e.kind == ExemptionKind::Overtime
                    && e.start < window.end
                    && e.end > window.start
            })
            .map(|e| {
                evidence.push(EvidenceItem::new(
                    e.start.max(window.start),
                    "-",
                    Said::OvertimeApproved {
                        from: fmt(e.start),
                        to: fmt(e.end),
                        note: e.note.clone(),
                    },
                ));
                Iv::new(e.start, e.end)
            })
            .collect(),
    );
    let statutory = super::statutory::days(date.year())
        .iter()
        .any(|d| d.date == date);
    let overtime_kind = counting::OvertimeKind::of(day_kind, statutory);
    let rules = &settings.office;
    let block_ivs = |bs: &[Iv]| interval::normalize(bs.to_vec());

    let (schedule, version) = ctx.schedules.schedule_for(&person.department, date);
    let calendar_provisional = ctx.calendar.is_provisional(date.year());
    let calendar_note =
        calendar_provisional.then(|| Said::ProvisionalCalendar { year: date.year() });
    let day_name = ctx.calendar.note(date).map(str::to_owned);

    let mut v = DayVerdict {
        employee_id: person.employee_id.clone(),
        name: person.name.clone(),
        department: person.department.clone(),
        date,
        day_kind,
        calendar_provisional,
        status: Status::Unknown,
        provisional: now < window.end,
        arrival,
        departure,
        late_minutes: 0,
        early_minutes: 0,
        checkpoints: Vec::new(),
        nonwork_seconds: BTreeMap::new(),
        coverage: Coverage::default(),
        unverified: 0,
        evidence: Vec::new(),
        schedule_version: version.to_string(),
        policy_note: String::new(),
        why: Vec::new(),
        absenteeism_half_days: 0,
        missing_checkpoints: 0,
        overtime_minutes: Default::default(),
    };

    if !day_kind.is_working() {
        let (ot, why) = counting::overtime(
            &block_ivs(&blocks),
            &approved_overtime,
            overtime_kind,
            rules,
            &fmt,
        );
        v.overtime_minutes = ot;
        evidence.extend(
            why.into_iter()
                .map(|(at, said)| EvidenceItem::new(at, "-", said)),
        );
        v.status = if day_kind == DayKind::Holiday {
            Status::Holiday
        } else {
            Status::Rest
        };
        v.why.push(Said::NotWorkingDay {
            day: day_kind,
            name: day_name,
        });
        if arrival.is_some() {
            v.why.push(Said::PresenceOnDayOff);
        }
        if let Some(n) = calendar_note {
            v.why.push(n);
        }
        v.write_note();
        v.evidence = finish(evidence);
        return v;
    }

    let (plan, label) = plan(schedule, date, tz, arrival);
    if !label.is_empty() {
        v.schedule_version = format!("{version} ({label})");
    }
    let office_all = interval::normalize(plan.iter().map(|s| Iv::new(s.start, s.end)).collect());
    let office = interval::before(&office_all, now);
    let office_free = interval::subtract(&office, &exempt.merged);

    let accounts: BTreeMap<&str, presence::PcAccount> = pcs
        .iter()
        .map(|pc| {
            (
                pc.as_str(),
                presence::account_pc(person, pc, &signals, now, &fmt),
            )
        })
        .collect();
    let mut judged = judge(&plan, &blocks, &exempt, now);
    v.unverified = verify_minutes(&mut judged.checkpoints, &accounts, &mut evidence, &fmt);
    v.late_minutes = judged
        .checkpoints
        .iter()
        .filter(|c| c.kind == CheckpointKind::Arrival)
        .fold(0u32, |acc, c| acc.saturating_add(c.minutes));
    v.early_minutes = judged
        .checkpoints
        .iter()
        .filter(|c| c.kind == CheckpointKind::Departure)
        .fold(0u32, |acc, c| acc.saturating_add(c.minutes));
    v.nonwork_seconds = nonwork(person, &signals, &office_free);
    let alive = interval::normalize(
        accounts
            .values()
            .flat_map(|a| a.alive.iter().copied())
            .collect(),
    );
    v.coverage = Coverage {
        office_seconds: interval::total_seconds(&office),
        covered_seconds: interval::total_seconds(&interval::intersect(&office, &alive)),
    };

    let checkpoints = &judged.checkpoints;
    let fully_exempt = if checkpoints.is_empty() {
        !office_all.is_empty() && interval::subtract(&office_all, &exempt.merged).is_empty()
    } else {
        checkpoints.iter().all(|c| c.outcome == Outcome::Excused)
    };
    let nothing_due = if checkpoints.is_empty() {
        office_free.is_empty()
    } else {
        checkpoints
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Pending | Outcome::Excused))
    };

    let hours = match (office_all.first(), office_all.last()) {
        (Some(a), Some(b)) => Some(format!("{}-{}", fmt(a.start), fmt(b.end))),
        _ => None,
    };
    if now < window.start {
        v.status = Status::Unknown;
        v.why.push(Said::NotStarted);
    } else if arrival.is_some() {
        v.status = Status::Present;
        v.why.push(Said::Present {
            first: arrival.map(&fmt).unwrap_or_default(),
            last: departure.map(&fmt).unwrap_or_default(),
            late: v.late_minutes,
            early: v.early_minutes,
        });
        for c in judged
            .checkpoints
            .iter()
            .filter(|c| c.outcome == Outcome::Unverified)
        {
            let (at, minutes) = (
                c.scheduled.strftime("%H:%M").to_string(),
                c.unverified_minutes,
            );
            v.why.push(match c.kind {
                CheckpointKind::Arrival => Said::LatenessUnverified { at, minutes },
                CheckpointKind::Departure => Said::EarlinessUnverified { at, minutes },
            });
        }
    } else if fully_exempt {
        // The kind covering most office time; leave first on a tie.
        let mut by_kind: BTreeMap<ExemptionKind, u64> = BTreeMap::new();
        for (iv, kind, _) in &exempt.list {
            *by_kind.entry(*kind).or_default() +=
                interval::total_seconds(&interval::intersect(&office_all, &[*iv]));
        }
        let kind = by_kind
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or(ExemptionKind::Leave, |(k, _)| *k);
        v.status = if kind == ExemptionKind::Leave {
            Status::Leave
        } else {
            Status::Field
        };
        v.why.push(Said::AllExempted { kind });
    } else if nothing_due {
        v.status = Status::Unknown;
        v.why.push(Said::NothingDue);
    } else if pcs.is_empty() {
        v.status = Status::Unknown;
        v.why.push(Said::NoPcEver);
    } else {
        let mut missing = Vec::new();
        for (pc, acc) in &accounts {
            let gaps = unaccounted(acc, &office_free);
            for (g, reasons) in &gaps {
                evidence.push(EvidenceItem::new(
                    g.start,
                    *pc,
                    Said::Unaccounted {
                        from: fmt(g.start),
                        to: fmt(g.end),
                        reasons: reasons.clone(),
                    },
                ));
            }
            if gaps.is_empty() {
                for off in interval::intersect(&acc.clean_off, &office_free) {
                    evidence.push(EvidenceItem::new(off.start, *pc, Said::CleanShutdown));
                }
            } else {
                missing.push(*pc);
            }
        }
        if missing.is_empty() {
            v.status = Status::Absent;
            v.why.push(Said::Absent {
                pcs: pcs.iter().cloned().collect(),
                hours,
            });
        } else {
            v.status = Status::Unknown;
            v.why.push(Said::NotAllAccounted {
                pcs: missing.iter().map(|p| p.to_string()).collect(),
            });
        }
    }
    // The office's counts: 旷工, 缺卡 and overtime.
    if v.status == Status::Present || v.status == Status::Absent {
        let partly_exempt =
            interval::total_seconds(&interval::subtract(&office_all, &exempt.merged))
                < interval::total_seconds(&office_all);
        let (halves, why) = counting::absenteeism(
            v.status == Status::Absent,
            partly_exempt,
            &judged.checkpoints,
            rules,
        );
        v.absenteeism_half_days = halves;
        for w in why {
            v.why.push(w);
        }
    }
    if v.status == Status::Present {
        for c in judged
            .checkpoints
            .iter()
            .filter(|c| c.outcome == Outcome::Missed)
        {
            let Some(s) = plan.get(c.session) else {
                continue;
            };
            let over = interval::subtract(&[Iv::new(s.start, s.end)], &exempt.merged);
            let gaps: Vec<(&str, Iv, Vec<Said>)> = accounts
                .iter()
                .flat_map(|(pc, acc)| {
                    unaccounted(acc, &over)
                        .into_iter()
                        .map(move |(g, r)| (*pc, g, r))
                })
                .collect();
            let at = c.scheduled.strftime("%H:%M").to_string();
            if gaps.is_empty() {
                v.missing_checkpoints += 1;
                evidence.push(EvidenceItem::new(
                    c.expected,
                    "-",
                    Said::MissingCheckpoint {
                        checkpoint: c.kind,
                        at,
                    },
                ));
            } else {
                for (pc, g, reasons) in gaps {
                    evidence.push(EvidenceItem::new(
                        g.start,
                        pc,
                        Said::MissingNotCounted {
                            checkpoint: c.kind,
                            at: at.clone(),
                            from: fmt(g.start),
                            to: fmt(g.end),
                            reasons,
                        },
                    ));
                }
            }
        }
        // Office hours run from the first session's start to the last one's end
        // (lunch is not overtime); under flexible hours from the arrival.
        let span = match (plan.first(), plan.last()) {
            (Some(a), Some(b)) => {
                let start = match schedule {
                    Schedule::Flexible(_) => arrival.map_or(a.start, |x| x.min(a.start)),
                    Schedule::Fixed { .. } => a.start,
                };
                vec![Iv::new(start, b.end)]
            }
            _ => Vec::new(),
        };
        let outside = interval::subtract(&block_ivs(&blocks), &span);
        let (ot, why) =
            counting::overtime(&outside, &approved_overtime, overtime_kind, rules, &fmt);
        v.overtime_minutes = ot;
        evidence.extend(
            why.into_iter()
                .map(|(at, said)| EvidenceItem::new(at, "-", said)),
        );
    }
    if let Some(n) = calendar_note {
        v.why.push(n);
    }
    v.checkpoints = judged.checkpoints;
    v.write_note();
    v.evidence = finish(evidence);
    v
}

/// The stretches of `over` that `acc` does not account for, each with the reasons
/// (none: no evidence at all).
fn unaccounted(acc: &presence::PcAccount, over: &[Iv]) -> Vec<(Iv, Vec<Said>)> {
    interval::subtract(over, &acc.accounted)
        .into_iter()
        .map(|g| {
            let reasons: BTreeSet<&Said> = acc
                .problems
                .iter()
                .filter(|(iv, _)| iv.start < g.end && iv.end > g.start)
                .map(|(_, r)| r)
                .collect();
            (g, reasons.into_iter().cloned().collect())
        })
        .collect()
}

/// Charges minutes late or early only where every PC is accounted for between the
/// expected instant and the actual one; the others become [`Outcome::Unverified`],
/// with evidence saying why. Returns how many did.
fn verify_minutes(
    checkpoints: &mut [CheckpointResult],
    accounts: &BTreeMap<&str, presence::PcAccount>,
    evidence: &mut Vec<EvidenceItem>,
    fmt: &dyn Fn(Timestamp) -> String,
) -> u32 {
    let mut count = 0;
    for c in checkpoints {
        let Some(actual) = c.actual else { continue };
        let span = match c.outcome {
            Outcome::Late => Iv::new(c.expected, actual),
            Outcome::Early => Iv::new(actual, c.expected),
            _ => continue,
        };
        let mut missing = Vec::new();
        for (pc, acc) in accounts {
            for (g, reasons) in unaccounted(acc, &[span]) {
                missing.push((pc, g, reasons));
            }
        }
        if missing.is_empty() {
            continue;
        }
        for (pc, g, reasons) in missing {
            evidence.push(EvidenceItem::new(
                g.start,
                *pc,
                Said::NotVerified {
                    checkpoint: c.kind,
                    minutes: c.minutes,
                    from: fmt(g.start),
                    to: fmt(g.end),
                    reasons,
                },
            ));
        }
        (c.unverified_minutes, c.minutes, c.outcome) = (c.minutes, 0, Outcome::Unverified);
        count += 1;
    }
    count
}

fn finish(mut evidence: Vec<EvidenceItem>) -> Vec<EvidenceItem> {
    evidence.sort();
    evidence.dedup();
    evidence
}

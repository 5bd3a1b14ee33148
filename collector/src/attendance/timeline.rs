//! A person's day as what a picture of it needs: office hours, each PC's state
//! over the day (in use, locked or idle, nobody logged on, switched off, agent
//! not running), the categories in use, arrival, departure and exemptions. Built
//! from the same signals and with the same pieces as the verdict, so the picture
//! never tells another story than the verdict's evidence.
//!
//! What must stay true: each PC's states are normalized intervals that do not
//! overlap, lie inside the shown span and end at `now` at the latest.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use serde::Serialize;

use super::interval::{self, Iv};
use super::signal::{Signal, SignalKind, normalize};
use super::verdict::{day_window, local, plan};
use super::{Context, ExemptionKind, Person, counting, presence};

/// What a PC was doing for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PcState {
    /// The person logged on, unlocked and active: presence.
    InUse,
    /// The person logged on, the screen locked or idle.
    LockedOrIdle,
    /// The agent ran and none of the person's accounts was logged on.
    NobodyLoggedOn,
    /// Switched off cleanly (shutdown to the next boot).
    Off,
    /// Nothing known: the agent was not running or not heard from.
    NotRunning,
}

/// One stretch `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl From<Iv> for Span {
    fn from(iv: Iv) -> Span {
        Span {
            start: iv.start,
            end: iv.end,
        }
    }
}

/// One PC's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lane {
    /// The agent id.
    pub pc: String,
    /// What it was doing, in time order.
    pub states: Vec<(Span, PcState)>,
    /// The person's active use by category (clipped to the shown span).
    pub usage: Vec<(Span, String)>,
}

/// The day's picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayTimeline {
    /// What is drawn: 06:00 to 22:00 local, widened to what happened.
    pub shown: Span,
    /// Office hours of the day (none on a rest day).
    pub office: Vec<Span>,
    /// Exemptions (leave, field work, an approved missed punch...).
    pub exempt: Vec<(Span, ExemptionKind)>,
    pub lanes: Vec<Lane>,
    pub arrival: Option<Timestamp>,
    pub departure: Option<Timestamp>,
    /// Nothing after it is known.
    pub now: Timestamp,
}

/// The picture of `person`'s `date` from `signals` under `ctx`.
pub fn timeline(person: &Person, date: Date, signals: &[Signal], ctx: &Context<'_>) -> DayTimeline {
    let settings = ctx.settings;
    let tz = &settings.time_zone;
    let now = ctx.now;
    let signals: Vec<Signal> = normalize(signals)
        .into_iter()
        .filter(|s| s.at <= now)
        .collect();
    let window = day_window(date, settings);
    let mut pieces = presence::presence_pieces(person, &signals, now);
    counting::add_punches(person, ctx.exemptions, &mut pieces, window, now);
    let blocks: Vec<Iv> = presence::merge_blocks(&pieces)
        .into_iter()
        .filter(|b| window.contains(b.start) && b.start <= now)
        .collect();
    let arrival = blocks.first().map(|b| b.start);
    let departure = blocks.iter().map(|b| b.end).max();
    let office: Vec<Iv> = if ctx.calendar.day_kind(date).is_working() {
        let (schedule, _) = ctx.schedules.schedule_for(&person.department, date);
        interval::normalize(
            plan(schedule, date, tz, arrival)
                .0
                .iter()
                .map(|s| Iv::new(s.start, s.end))
                .collect(),
        )
    } else {
        Vec::new()
    };
    // 06:00 to 22:00, widened to the office hours and the presence of the day,
    // inside the attendance day.
    let at = |h: i8| local(date, Time::constant(h, 0, 0, 0), tz);
    let mut start = at(6);
    let mut end = at(22);
    for iv in office.iter().chain(&blocks) {
        start = start.min(iv.start);
        end = end.max(iv.end);
    }
    let shown = Iv::new(start.max(window.start), end.min(window.end));
    let known = interval::before(&[shown], now);

    let exempt = ctx
        .exemptions
        .iter()
        .filter(|e| e.employee_id == person.employee_id && e.kind.excuses() && e.start < e.end)
        .filter_map(|e| {
            let iv = interval::intersect(&[Iv::new(e.start, e.end)], &[shown]);
            iv.first().map(|iv| (Span::from(*iv), e.kind))
        })
        .collect();

    let mut pcs = super::pcs_for(person, &signals);
    pcs.extend(ctx.known_pcs.iter().cloned());
    let no_fmt = |_: Timestamp| String::new();
    let lanes = pcs
        .iter()
        .map(|pc| {
            let acc = presence::account_pc(person, pc, &signals, now, &no_fmt);
            let in_use = interval::intersect(
                &interval::normalize(
                    pieces
                        .iter()
                        .filter(|p| &p.pc == pc && p.start < p.end)
                        .map(|p| Iv::new(p.start, p.end))
                        .collect(),
                ),
                &known,
            );
            // Switched off: a shutdown to the next boot, or, with nothing heard
            // since the shutdown, up to now.
            let mut off = acc.clean_off.clone();
            let mine: Vec<&Signal> = signals.iter().filter(|s| &s.pc == pc).collect();
            if let Some(last) = mine.last()
                && matches!(
                    last.kind,
                    SignalKind::AgentStop {
                        reason: super::StopReason::SystemShutdown
                    }
                )
                && last.at < now
            {
                off.push(Iv::new(last.at, now));
            }
            let off = interval::subtract(
                &interval::intersect(&interval::normalize(off), &known),
                &in_use,
            );
            let alive = interval::subtract(&interval::intersect(&acc.alive, &known), &in_use);
            let nobody = interval::subtract(&interval::intersect(&acc.accounted, &alive), &off);
            let locked = interval::subtract(&interval::subtract(&alive, &nobody), &off);
            let not_running = interval::subtract(
                &interval::subtract(&interval::subtract(&known, &in_use), &alive),
                &off,
            );
            let mut states: Vec<(Span, PcState)> = [
                (in_use, PcState::InUse),
                (locked, PcState::LockedOrIdle),
                (nobody, PcState::NobodyLoggedOn),
                (off, PcState::Off),
                (not_running, PcState::NotRunning),
            ]
            .into_iter()
            .flat_map(|(ivs, st)| ivs.into_iter().map(move |iv| (Span::from(iv), st)))
            .collect();
            states.sort_by_key(|(s, _)| s.start);
            let usage = signals
                .iter()
                .filter(|s| &s.pc == pc)
                .filter_map(|s| match &s.kind {
                    SignalKind::Usage {
                        account,
                        start,
                        end,
                        category,
                        ..
                    } if presence::is_person_account(person, account) && start < end => {
                        interval::intersect(&[Iv::new(*start, *end)], &known)
                            .first()
                            .map(|iv| (Span::from(*iv), category.clone()))
                    }
                    _ => None,
                })
                .collect();
            Lane {
                pc: pc.clone(),
                states,
                usage,
            }
        })
        .collect();
    DayTimeline {
        shown: shown.into(),
        office: office.into_iter().map(Span::from).collect(),
        exempt,
        lanes,
        arrival,
        departure,
        now,
    }
}

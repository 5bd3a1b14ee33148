//! The office's counting rules on top of a day's checkpoints and presence: 旷工
//! (absenteeism), 缺卡 (missing checkpoints), overtime, and the missed punches
//! that approved requests add to the presence. docs/attendance-rules.md has a
//! worked example of each.
//!
//! What must stay true: nothing here charges anything without evidence. 旷工 comes
//! only from a day judged absent or from minutes that were charged (never from an
//! unknown day or unverified minutes); a missing checkpoint counts only where the
//! person's PCs are accounted for over its session.

use jiff::Timestamp;

use super::interval::{self, Iv};
use super::presence::Piece;
use super::said::{OvertimeDay, Said};
use super::{
    CheckpointResult, DayKind, Exemption, ExemptionKind, OfficeRules, Outcome, Overtime, Person,
};

/// The pseudo-PC of presence that comes from an approved request, not a PC.
pub(crate) const REQUEST_PC: &str = "-";

/// Adds the presence of the person's approved missed punches inside `window`:
/// an arrival punch at `t` is presence from `t` to the next presence (or the
/// instant `t` alone), a departure punch presence from the last presence before
/// it (or the instant alone) to `t`.
pub(crate) fn add_punches(
    person: &Person,
    entries: &[Exemption],
    pieces: &mut Vec<Piece>,
    window: Iv,
    now: Timestamp,
) {
    let punches: Vec<&Exemption> = entries
        .iter()
        .filter(|e| {
            e.employee_id == person.employee_id
                && matches!(
                    e.kind,
                    ExemptionKind::ArrivalPunch | ExemptionKind::DeparturePunch
                )
                && window.contains(e.start)
                && e.start <= now
        })
        .collect();
    let mut added = Vec::new();
    for p in punches {
        let t = p.start;
        let what = Said::MissedPunch {
            note: p.note.clone(),
        };
        let piece = if p.kind == ExemptionKind::ArrivalPunch {
            let next = pieces
                .iter()
                .filter(|x| x.start >= t && window.contains(x.start))
                .map(|x| x.start)
                .min()
                .unwrap_or(t);
            Piece {
                start: t,
                end: next,
                pc: REQUEST_PC.into(),
                what,
            }
        } else {
            let last = pieces
                .iter()
                .filter(|x| x.end <= t && window.contains(x.start))
                .map(|x| x.end)
                .max()
                .unwrap_or(t);
            Piece {
                start: last,
                end: t,
                pc: REQUEST_PC.into(),
                what,
            }
        };
        added.push(piece);
    }
    pieces.extend(added);
}

/// Half days of 旷工 of a day (see [`super::DayVerdict::absenteeism_half_days`]),
/// with the reasons in words.
/// An absent day counts whole, or half when an exemption covers part of it.
pub(crate) fn absenteeism(
    absent: bool,
    partly_exempt: bool,
    checkpoints: &[CheckpointResult],
    rules: &OfficeRules,
) -> (u32, Vec<Said>) {
    if absent && partly_exempt {
        return (1, vec![Said::AbsentPartly]);
    }
    if absent {
        return (2, vec![Said::AbsentWhole]);
    }
    let mut halves = 0;
    let mut why = Vec::new();
    for c in checkpoints {
        let past = matches!(c.outcome, Outcome::Late | Outcome::Early)
            && c.minutes > rules.absenteeism_after_minutes;
        if past && halves < 2 {
            halves += 1;
            why.push(Said::PastLimit {
                checkpoint: c.kind,
                minutes: c.minutes,
                at: c.scheduled.strftime("%H:%M").to_string(),
                limit: rules.absenteeism_after_minutes,
            });
        }
    }
    (halves, why)
}

/// The kind of overtime a day's presence outside office hours is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OvertimeKind {
    Workday,
    RestDay,
    Holiday,
}

impl OvertimeKind {
    /// Of a day of `kind`; `statutory` when the date is one of the statutory
    /// public holidays (a weekend inside a holiday period is a rest day).
    pub(crate) fn of(kind: DayKind, statutory: bool) -> OvertimeKind {
        match kind {
            DayKind::Workday | DayKind::MakeupWorkday => OvertimeKind::Workday,
            DayKind::Holiday if statutory => OvertimeKind::Holiday,
            DayKind::Holiday | DayKind::Rest => OvertimeKind::RestDay,
        }
    }

    pub(crate) fn day(self) -> OvertimeDay {
        match self {
            OvertimeKind::Workday => OvertimeDay::Workday,
            OvertimeKind::RestDay => OvertimeDay::RestDay,
            OvertimeKind::Holiday => OvertimeDay::Holiday,
        }
    }
}

/// Overtime minutes of `outside` (presence outside office hours, normalized):
/// each stretch, inside an approved overtime request when the rules need one, of
/// at least the minimum block, rounded down; with a line of evidence per stretch
/// counted.
pub(crate) fn overtime(
    outside: &[Iv],
    approved: &[Iv],
    kind: OvertimeKind,
    rules: &OfficeRules,
    fmt: &dyn Fn(Timestamp) -> String,
) -> (Overtime, Vec<(Timestamp, Said)>) {
    let stretches = if rules.overtime_needs_request {
        interval::intersect(outside, approved)
    } else {
        outside.to_vec()
    };
    let round = rules.overtime_round_minutes.max(1);
    let mut minutes = 0u32;
    let mut evidence = Vec::new();
    for s in stretches {
        let m = u32::try_from(s.millis() / 60_000).unwrap_or(u32::MAX);
        if m == 0 || m < rules.overtime_min_block_minutes {
            continue;
        }
        let counted = m / round * round;
        if counted == 0 {
            continue;
        }
        minutes = minutes.saturating_add(counted);
        evidence.push((
            s.start,
            Said::Overtime {
                day: kind.day(),
                from: fmt(s.start),
                to: fmt(s.end),
                minutes: m,
                counted,
            },
        ));
    }
    let mut out = Overtime::default();
    match kind {
        OvertimeKind::Workday => out.workday = minutes,
        OvertimeKind::RestDay => out.rest_day = minutes,
        OvertimeKind::Holiday => out.holiday = minutes,
    }
    (out, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        format!("{s}:00+08:00").replace(' ', "T").parse().unwrap()
    }

    fn fmt(t: Timestamp) -> String {
        t.to_string()
    }

    #[test]
    fn overtime_keeps_stretches_of_the_minimum_and_rounds_them_down() {
        let rules = OfficeRules::default();
        let outside = vec![
            Iv::new(t("2026-11-24 07:40"), t("2026-11-24 08:05")), // 25 min: too short
            Iv::new(t("2026-11-24 17:30"), t("2026-11-24 19:10")), // 100 min -> 90
        ];
        let (o, why) = overtime(&outside, &[], OvertimeKind::Workday, &rules, &fmt);
        assert_eq!(o.workday, 90);
        assert_eq!(o.total(), 90);
        assert_eq!(why.len(), 1);
        assert!(
            why[0]
                .1
                .say(crate::i18n::Lang::En)
                .contains("100 min, 90 min counted"),
            "{why:?}"
        );
        let exact = OfficeRules {
            overtime_round_minutes: 1,
            overtime_min_block_minutes: 20,
            ..rules
        };
        let (o, _) = overtime(&outside, &[], OvertimeKind::RestDay, &exact, &fmt);
        assert_eq!((o.rest_day, o.workday), (125, 0));
    }

    #[test]
    fn overtime_that_needs_a_request_counts_only_inside_it() {
        let rules = OfficeRules {
            overtime_needs_request: true,
            ..OfficeRules::default()
        };
        let outside = vec![Iv::new(t("2026-11-24 17:30"), t("2026-11-24 20:30"))];
        let (o, _) = overtime(&outside, &[], OvertimeKind::Holiday, &rules, &fmt);
        assert_eq!(o.total(), 0);
        let approved = vec![Iv::new(t("2026-11-24 18:00"), t("2026-11-24 19:00"))];
        let (o, _) = overtime(&outside, &approved, OvertimeKind::Holiday, &rules, &fmt);
        assert_eq!(o.holiday, 60);
    }

    #[test]
    fn kinds_of_overtime_follow_the_kind_of_day() {
        assert_eq!(
            OvertimeKind::of(DayKind::MakeupWorkday, false),
            OvertimeKind::Workday
        );
        assert_eq!(
            OvertimeKind::of(DayKind::Holiday, true),
            OvertimeKind::Holiday
        );
        assert_eq!(
            OvertimeKind::of(DayKind::Holiday, false),
            OvertimeKind::RestDay
        );
        assert_eq!(
            OvertimeKind::of(DayKind::Rest, false),
            OvertimeKind::RestDay
        );
    }
}

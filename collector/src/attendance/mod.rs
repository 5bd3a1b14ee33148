//! Attendance rules: calendar, schedules, exemptions and the verdict for one person on
//! one day.
//!
//! This module is pure. It does no I/O, reads no clock, runs no SQL and spawns nothing:
//! the signals, the staff record, the calendar, the schedules, the exemptions, the time
//! zone and `now` all come in as arguments, and a [`DayVerdict`] comes out. A discipline
//! officer acts on these verdicts, so they must be right, explainable (every verdict
//! carries the evidence it was made from) and stable (the same set of signals gives the
//! same verdict whatever their order or number of copies).
//!
//! # The attendance day
//!
//! Day D runs from D at the day boundary (default 04:00 local) to D+1 at the boundary.
//! A presence period belongs to the day in which it *starts*, so a session running past
//! midnight belongs to the day it started:
//!
//! ```text
//!         D 04:00                                          D+1 04:00
//!            |-------------------- attendance day D -----------|
//!   D-1 ...==|   (a period that started on D-1 stays on D-1)    |
//!                    08:41 logon ===== 12:02 lock               |
//!                                 14:05 unlock ========== 00:40 logoff (belongs to D)
//!            arrival = 08:41                departure = 00:40 (D+1)
//! ```
//!
//! # Presence
//!
//! Presence starts at logon, unlock or idle end, and stops at lock, idle start or logoff,
//! per PC and account; a usage interval with active seconds proves presence over it,
//! and opens a stretch when none is open. A stretch ends at the logoff, lock or idle
//! start that ends it, whatever opened it, so the departure after a day of work is the
//! logoff, not the last usage interval. Periods of all the person's PCs and accounts
//! are merged. A period whose end was never reported ends at the last evidence for it
//! (a heartbeat listing the account, the agent stopping), never later.
//!
//! ```text
//!   pc-1 zhangsan  logon 08:41 ======= lock 10:02    unlock 10:15 ======= logoff 17:35
//!   pc-2 zhangsan                 usage 09:50 ======== 10:20
//!   presence       08:41 =============================== 10:20 ========== 17:35
//!                  (10:02-10:15 is covered by the usage on pc-2, so no break)
//! ```
//!
//! # Checkpoints, late and early minutes
//!
//! Minutes late count from the scheduled start once past the grace; early minutes
//! likewise against the scheduled end. A checkpoint not yet due at `now` is `pending`,
//! never late or early:
//!
//! ```text
//!   08:30 start   08:35 end of grace
//!     |-------------|
//!     08:34 arrival -> on time, 0 min
//!                        08:41 arrival -> late, 11 min (counted from 08:30)
//! ```
//!
//! Late and early minutes need evidence, as absence does: minutes late are charged only
//! when every PC of the person is accounted for (see below) from the expected arrival
//! to the arrival, and minutes early only from the departure to the expected end.
//! Otherwise the checkpoint is `unverified`: nothing is charged, the minutes it would
//! have been are kept in `unverified_minutes`, and the evidence says why:
//!
//! ```text
//!   pc-1  logon 08:20 ==== 10:00 (agent killed: no stop, no heartbeat after)
//!   => departure 10:00, early departure unverified (PC not accounted 10:00-17:30)
//!   pc-1  crash restart 08:45, logon 08:50
//!   => arrival 08:50, lateness unverified (PC not accounted 08:30-08:45)
//! ```
//!
//! An exemption (leave, field work, business trip) that covers a checkpoint excuses it;
//! one that covers only the start of a session moves the expected arrival to its end:
//!
//! ```text
//!   08:30 ========== session 0 ========== 12:00
//!   leave 08:30 --- 10:00                       arrival expected 10:00 (+ grace)
//!   field 08:30 ------------------------- 12:00 arrival excused
//! ```
//!
//! # Absent needs evidence
//!
//! A working day with no presence is `absent` only when every PC of the person is
//! accounted for over the (non-exempt) office hours up to `now`: either its agent was
//! alive (heartbeats no further apart than twice their interval) with none of the
//! person's accounts logged on, or it was shut down cleanly and next started cleanly at
//! boot with nothing missing in between. Otherwise the day is `unknown`:
//!
//! ```text
//!   office      08:30 ================ 12:00      14:00 ================= 17:30
//!   pc-1 hb     | | | | | | | | | | | | | | | | | | | | | | | | | | | | | | |   -> accounted
//!   pc-2        shutdown (D-1 18:02) ....................... boot (D+1 08:10)   -> accounted
//!   => absent
//!   pc-1 hb     | | | | |          (crash)  | | | | | | | | | | | | | | | |    -> gap: unknown
//! ```
//!
//! No signals for any of the person's accounts and no known PC: `unknown`. No data is
//! not evidence of absence.
//!
//! # Non-work time
//!
//! Seconds of every category except `other` and `work`, counted only in office hours:
//! not at lunch, not outside the sessions, not inside exemptions. A usage interval that
//! straddles a session edge is split in proportion:
//!
//! ```text
//!   session 0 ends 12:00
//!   usage chat 11:55 ===|=== 12:05, 600 active s  ->  300 s counted
//! ```

pub mod calendar;
mod counting;
mod interval;
mod presence;
pub mod said;
pub mod schedule;
pub mod signal;
pub mod statutory;
pub mod timeline;
mod verdict;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

pub use calendar::{Calendar, DayKind, Notice, NoticeDay, NoticeWarning, YearBasis};
pub use said::Said;
pub use schedule::{
    Flexible, Schedule, ScheduleConfigError, ScheduleError, ScheduleErrors, ScheduleSet,
    ScheduleVersion, Season, Session,
};
pub use signal::{SessionKind, Signal, SignalKind, StartReason, StopReason, normalize};
pub use verdict::{pcs_for, signal_window, verdict};

/// A member of staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The office's employee id.
    pub employee_id: String,
    /// Full name.
    pub name: String,
    /// Department; selects the schedule.
    pub department: String,
    /// OS account names that are this person (see [`account_matches`]).
    pub accounts: Vec<String>,
    /// The person's own PCs as the directory lists them (hostnames or machine ids,
    /// lower case); empty when it lists none. Presence on another PC counts, and
    /// the verdict's evidence marks it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own_pcs: Vec<String>,
    /// E-mail address from the directory, for notifications; empty when unknown.
    /// Verdicts do not depend on it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// The last day the person worked here, once they have left (deactivated in
    /// the console, kept for history): no later day is judged or reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_on: Option<jiff::civil::Date>,
}

impl Person {
    /// Whether `date` is a day the person worked here (not after they left).
    pub fn employed_on(&self, date: jiff::civil::Date) -> bool {
        self.left_on.is_none_or(|last| date <= last)
    }
}

/// Whether the OS account `observed` on a PC is the directory's `listed` one: the
/// same name without regard to ASCII case, or, for a name listed without a domain,
/// that name in any domain (`OFFICE\zhangsan` is `zhangsan`). A name listed with its
/// domain matches only in that domain.
pub fn account_matches(listed: &str, observed: &str) -> bool {
    listed.eq_ignore_ascii_case(observed)
        || (!listed.contains('\\')
            && observed
                .split_once('\\')
                .is_some_and(|(_, user)| listed.eq_ignore_ascii_case(user)))
}

/// What an approved entry of a person's time is: an exemption that excuses
/// (leave, field work, a business trip), or a correction from an approved request
/// (an arrival or departure the PC could not see, overtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExemptionKind {
    /// Leave (annual, sick, personal...).
    Leave,
    /// Field work.
    Field,
    /// A business trip.
    BusinessTrip,
    /// Present from `start` (a missed punch: "at the front desk from 08:20").
    ArrivalPunch,
    /// Present until `start` (a missed punch at the end of the day).
    DeparturePunch,
    /// Overtime approved over `[start, end)` (counts when
    /// [`OfficeRules::overtime_needs_request`]).
    Overtime,
}

impl ExemptionKind {
    /// Every kind, in order.
    pub const ALL: [ExemptionKind; 6] = [
        Self::Leave,
        Self::Field,
        Self::BusinessTrip,
        Self::ArrivalPunch,
        Self::DeparturePunch,
        Self::Overtime,
    ];

    /// The name used in reports and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leave => "leave",
            Self::Field => "field",
            Self::BusinessTrip => "business_trip",
            Self::ArrivalPunch => "arrival_punch",
            Self::DeparturePunch => "departure_punch",
            Self::Overtime => "overtime",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<ExemptionKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it excuses the office hours it covers (leave, field work, a trip).
    pub fn excuses(self) -> bool {
        matches!(self, Self::Leave | Self::Field | Self::BusinessTrip)
    }
}

/// An approved entry of a person's time over `[start, end)`: an exemption (whole
/// days or part of one), or a correction (a punch is the instant `start`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemption {
    /// Whose.
    pub employee_id: String,
    /// What kind.
    pub kind: ExemptionKind,
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// Free text from the approval.
    pub note: String,
}

/// Office-wide settings of the rules.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The office's time zone; default Asia/Shanghai.
    pub time_zone: TimeZone,
    /// When one attendance day ends and the next begins; default 04:00.
    pub day_boundary: Time,
    /// A clock offset at least this large (milliseconds, either sign) becomes evidence.
    pub large_offset_ms: i64,
    /// How 旷工, 缺卡 and overtime are counted.
    pub office: OfficeRules,
}

/// The office's counting rules on top of the verdict (see docs/attendance-rules.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OfficeRules {
    /// A charged late arrival or early departure of more than this many minutes is
    /// half a day of 旷工 (absenteeism); default 30.
    pub absenteeism_after_minutes: u32,
    /// Presence outside office hours counts as overtime in stretches of at least
    /// this many minutes; default 30.
    pub overtime_min_block_minutes: u32,
    /// Overtime minutes are rounded down to a multiple of this; default 30 (1: exact).
    pub overtime_round_minutes: u32,
    /// Overtime counts only inside an approved overtime request; default false.
    pub overtime_needs_request: bool,
}

impl Default for OfficeRules {
    fn default() -> Self {
        OfficeRules {
            absenteeism_after_minutes: 30,
            overtime_min_block_minutes: 30,
            overtime_round_minutes: 30,
            overtime_needs_request: false,
        }
    }
}

/// Overtime minutes of a day by the kind of day (offices pay them differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Overtime {
    /// Before or after office hours on a working day.
    pub workday: u32,
    /// On a rest day (a weekend, or a day off inside a holiday period).
    pub rest_day: u32,
    /// On a statutory public holiday (法定节假日).
    pub holiday: u32,
}

impl Overtime {
    /// All kinds together.
    pub fn total(&self) -> u32 {
        self.workday + self.rest_day + self.holiday
    }
}

impl Default for Settings {
    /// Asia/Shanghai, 04:00, 60 s. If the system has no time zone database the zone is
    /// the fixed offset +08:00, which is the same for Shanghai since 1991.
    fn default() -> Self {
        Settings {
            time_zone: TimeZone::get("Asia/Shanghai")
                .unwrap_or(TimeZone::fixed(jiff::tz::offset(8))),
            day_boundary: jiff::civil::time(4, 0, 0, 0),
            large_offset_ms: 60_000,
            office: OfficeRules::default(),
        }
    }
}

/// Everything a verdict depends on besides the person, the date and the signals.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Working days.
    pub calendar: &'a Calendar,
    /// Office hours in effect by department and date.
    pub schedules: &'a ScheduleSet,
    /// The person's exemptions (others' are ignored).
    pub exemptions: &'a [Exemption],
    /// Time zone, day boundary, thresholds.
    pub settings: &'a Settings,
    /// PCs on which the store has ever seen one of the person's accounts. PCs seen in
    /// the signals themselves are added to these.
    pub known_pcs: &'a [String],
    /// The agent ids of the person's own PCs when the directory lists any
    /// ([`Person::own_pcs`] resolved by hostname, machine id or agent id); `None`
    /// when it lists none. Presence on any other PC is marked in the evidence.
    pub own_pcs: Option<&'a BTreeSet<String>>,
    /// The present instant: nothing after it is judged.
    pub now: Timestamp,
}

/// What the day was for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Present at some point of a working day.
    Present,
    /// Not present on a working day, and every PC of the person is accounted for.
    Absent,
    /// On leave for every checkpoint and not present.
    Leave,
    /// On field work or a business trip for every checkpoint and not present.
    Field,
    /// A public or office holiday.
    Holiday,
    /// A weekend day that is not a make-up working day.
    Rest,
    /// Not enough evidence either way, or not yet judgeable.
    Unknown,
}

/// Arrival or departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// At the start of a session.
    Arrival,
    /// At the end of a session.
    Departure,
}

/// How a checkpoint went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Within the grace.
    OnTime,
    /// Arrived after the grace.
    Late,
    /// Left before the grace.
    Early,
    /// No presence in the session at all.
    Missed,
    /// Covered entirely by an exemption.
    Excused,
    /// Not yet due at `now`.
    Pending,
    /// Would be late or early, but the person's PCs are not accounted for between
    /// the expected instant and the actual one, so nothing is charged.
    Unverified,
}

/// One checked arrival or departure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointResult {
    /// Index of the session in the day's schedule.
    pub session: usize,
    /// Arrival or departure.
    pub kind: CheckpointKind,
    /// The scheduled time.
    pub scheduled: Time,
    /// The instant judged against: the scheduled time, or the edge of an exemption that
    /// covers part of the session.
    pub expected: Timestamp,
    /// The presence instant judged.
    pub actual: Option<Timestamp>,
    /// Minutes late or early (0 unless `Late` or `Early`).
    pub minutes: u32,
    /// How it went.
    pub outcome: Outcome,
    /// Minutes late or early the presence alone would give, not charged for want of
    /// evidence (0 unless `Unverified`).
    #[serde(default)]
    pub unverified_minutes: u32,
    /// The exemption that excused all or part of it.
    pub excused_by: Option<ExemptionKind>,
}

/// How much of the office day the person's PCs' agents were alive for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Coverage {
    /// Office seconds up to `now`.
    pub office_seconds: u64,
    /// Of those, seconds at least one of the person's PCs had a live agent.
    pub covered_seconds: u64,
}

/// One fact the verdict rests on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EvidenceItem {
    /// When.
    pub at: Timestamp,
    /// Which PC (`-` for facts not from a PC, such as exemptions).
    pub pc: String,
    /// What, in English plain words with local times.
    pub what: String,
    /// What, as a code with its values (absent on verdicts stored before codes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub said: Option<Said>,
}

impl EvidenceItem {
    /// The fact `said` at `at` on `pc`.
    pub fn new(at: Timestamp, pc: impl Into<String>, said: Said) -> EvidenceItem {
        EvidenceItem {
            at,
            pc: pc.into(),
            what: said.say(crate::i18n::Lang::En),
            said: Some(said),
        }
    }

    /// In words, in `lang` (the stored English words when there is no code).
    pub fn say(&self, lang: crate::i18n::Lang) -> String {
        self.said
            .as_ref()
            .map_or_else(|| self.what.clone(), |s| s.say(lang))
    }
}

/// The verdict for one person on one attendance day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayVerdict {
    /// The person's employee id.
    pub employee_id: String,
    /// The person's name.
    pub name: String,
    /// The person's department.
    pub department: String,
    /// The attendance day.
    pub date: Date,
    /// The calendar's kind of the day.
    pub day_kind: DayKind,
    /// Whether the day's year has no State Council notice yet, so that its kind
    /// rests on the statutory holidays alone ([`calendar::YearBasis::Provisional`]).
    #[serde(default)]
    pub calendar_provisional: bool,
    /// The verdict.
    pub status: Status,
    /// Whether the day was still running at `now` (more may change).
    pub provisional: bool,
    /// First presence of the day.
    pub arrival: Option<Timestamp>,
    /// Last presence of the day.
    pub departure: Option<Timestamp>,
    /// Sum of minutes late over the arrival checkpoints.
    pub late_minutes: u32,
    /// Sum of minutes early over the departure checkpoints.
    pub early_minutes: u32,
    /// Every checkpoint of the day.
    pub checkpoints: Vec<CheckpointResult>,
    /// How many checkpoints would be late or early but are not charged, for want of
    /// evidence ([`Outcome::Unverified`]).
    #[serde(default)]
    pub unverified: u32,
    /// Non-work seconds in office hours by category.
    pub nonwork_seconds: BTreeMap<String, u64>,
    /// Live-agent coverage of the office hours.
    pub coverage: Coverage,
    /// The facts behind the verdict, in time order.
    pub evidence: Vec<EvidenceItem>,
    /// The schedule version (and season) the day was judged under.
    pub schedule_version: String,
    /// Why the status is what it is, in one or two English sentences.
    pub policy_note: String,
    /// The same sentences as codes with their values (empty on verdicts stored
    /// before codes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<Said>,
    /// Half days of 旷工: 2 for a working day judged absent, 1 for each charged late
    /// arrival or early departure past [`OfficeRules::absenteeism_after_minutes`]
    /// (at most 2). Never from unknown or unverified.
    #[serde(default)]
    pub absenteeism_half_days: u32,
    /// Checkpoints (缺卡) with no presence in their session on a day the person was
    /// present.
    #[serde(default)]
    pub missing_checkpoints: u32,
    /// Presence outside office hours, by kind of day.
    #[serde(default)]
    pub overtime_minutes: Overtime,
}

impl DayVerdict {
    /// Writes the English note from the reasons, once they are all said.
    pub fn write_note(&mut self) {
        self.policy_note = said::paragraph(&self.why, crate::i18n::Lang::En);
    }

    /// The reasons in `lang` (the stored English note when there are no codes).
    pub fn reasons(&self, lang: crate::i18n::Lang) -> String {
        if self.why.is_empty() {
            self.policy_note.clone()
        } else {
            said::paragraph(&self.why, lang)
        }
    }
}

impl DayVerdict {
    /// Minutes (late, early) the presence alone would give but that are not charged
    /// for want of evidence.
    pub fn unverified_minutes(&self) -> (u32, u32) {
        self.checkpoints
            .iter()
            .filter(|c| c.outcome == Outcome::Unverified)
            .fold((0u32, 0u32), |(l, e), c| match c.kind {
                CheckpointKind::Arrival => (l.saturating_add(c.unverified_minutes), e),
                CheckpointKind::Departure => (l, e.saturating_add(c.unverified_minutes)),
            })
    }
}

/// The attendance day an instant belongs to: its local date, or the day before when
/// the local time is before the day boundary (01:30 with the default 04:00 boundary
/// belongs to the previous day).
pub fn attendance_date(at: Timestamp, settings: &Settings) -> Date {
    let dt = settings.time_zone.to_datetime(at);
    if dt.time() < settings.day_boundary {
        dt.date().yesterday().unwrap_or(dt.date())
    } else {
        dt.date()
    }
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn instants_before_the_boundary_belong_to_the_previous_day() {
        let s = Settings::default();
        let d = |t: &str| attendance_date(t.parse().unwrap(), &s).to_string();
        // 2026-11-25 01:30 +08:00 -> 2026-11-24; 04:00 -> 2026-11-25.
        assert_eq!(d("2026-11-24T17:30:00Z"), "2026-11-24");
        assert_eq!(d("2026-11-24T20:00:00Z"), "2026-11-25");
        assert_eq!(d("2026-11-24T00:41:00Z"), "2026-11-24");
    }
}

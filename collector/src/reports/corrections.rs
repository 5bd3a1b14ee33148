//! Appeals of day verdicts and the corrections they lead to.
//!
//! What must stay true:
//! - a computed verdict is never edited: a correction is a separate row (who, why,
//!   when), and [`apply`] overlays the latest correction of a day on its verdict, so
//!   every report shows the corrected status and that it was corrected;
//! - only an approved appeal (or an officer's direct correction) writes a
//!   correction; a rejected appeal changes nothing but its own state;
//! - a correction to anything but `present` clears the day's late and early minutes;
//!   a correction to `present` clears them too (the appeal said the day was fine).

use crate::attendance::{DayVerdict, EvidenceItem, Said, Status};
use crate::i18n::Lang;
use jiff::civil::Date;
use serde::Serialize;
use std::collections::BTreeMap;

/// One correction of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Correction {
    pub employee_id: String,
    pub date: Date,
    /// The status that replaces the computed one.
    pub status: Status,
    /// The computed status it replaced (filled by [`apply`]).
    pub original: Option<Status>,
    /// Username of who decided.
    pub who: String,
    pub why: String,
    pub at_ms: i64,
}

/// An appeal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appeal {
    pub id: i64,
    pub employee_id: String,
    pub date: Date,
    pub requested_status: Status,
    pub reason: String,
    pub created_by: String,
    pub created_ms: i64,
    /// open, approved or rejected.
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    pub comment: String,
}

/// The statuses an appeal may ask for.
pub const APPEALABLE: [Status; 3] = [Status::Present, Status::Leave, Status::Field];

/// A status's stored name.
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Present => "present",
        Status::Absent => "absent",
        Status::Leave => "leave",
        Status::Field => "field",
        Status::Holiday => "holiday",
        Status::Rest => "rest",
        Status::Unknown => "unknown",
    }
}

/// Parses a stored status name.
pub fn parse_status(s: &str) -> Option<Status> {
    [
        Status::Present,
        Status::Absent,
        Status::Leave,
        Status::Field,
        Status::Holiday,
        Status::Rest,
        Status::Unknown,
    ]
    .into_iter()
    .find(|x| status_name(*x) == s)
}

/// A verdict as reports show it: corrected if a correction exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportDay {
    #[serde(flatten)]
    pub verdict: DayVerdict,
    /// The correction in force, if any (`verdict.status` is already the corrected one).
    pub correction: Option<Correction>,
}

/// Overlays `corrections` on `verdicts` (see the module doc).
pub fn apply(
    verdicts: Vec<DayVerdict>,
    corrections: &BTreeMap<(String, Date), Correction>,
) -> Vec<ReportDay> {
    verdicts
        .into_iter()
        .map(|mut v| {
            let correction = corrections.get(&(v.employee_id.clone(), v.date)).map(|c| {
                let mut c = c.clone();
                c.original = Some(v.status);
                v.status = c.status;
                v.late_minutes = 0;
                v.early_minutes = 0;
                v.unverified = 0;
                v.absenteeism_half_days = 0;
                v.missing_checkpoints = 0;
                let first = Said::CorrectedFrom {
                    from: c.original.unwrap_or(Status::Unknown),
                    to: c.status,
                    who: c.who.clone(),
                    why: c.why.clone(),
                };
                if v.why.is_empty() {
                    // Stored before reasons had codes: keep its English note.
                    v.policy_note = format!("{} {}", first.say(Lang::En), v.policy_note);
                } else {
                    v.why.insert(0, first);
                    v.write_note();
                }
                if let Ok(at) = jiff::Timestamp::from_millisecond(c.at_ms) {
                    v.evidence.push(EvidenceItem::new(
                        at,
                        "-",
                        Said::Corrected {
                            status: c.status,
                            who: c.who.clone(),
                            why: c.why.clone(),
                        },
                    ));
                }
                c
            });
            ReportDay {
                verdict: v,
                correction,
            }
        })
        .collect()
}

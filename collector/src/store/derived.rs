//! What the stores derive from a batch's new events, the same way in each: the OS
//! accounts the PC reported (lower case, with corrected first and last instants)
//! and the attendance days to judge again.

use crate::attendance::Settings;
use jiff::civil::Date;
use kaoqin_proto::event::{Event, EventKind};
use std::collections::{BTreeMap, BTreeSet};

/// What the new events of one batch tell.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchFacts {
    /// Account (lower case) -> (first, last) corrected instant.
    pub seen: BTreeMap<String, (i64, i64)>,
    /// The attendance days the events fall on.
    pub dates: BTreeSet<Date>,
}

impl BatchFacts {
    /// Notes one new event, whose instant is corrected by `offset_ms`.
    pub fn note(&mut self, e: &Event, offset_ms: i64, days: &Settings) {
        let at = e.at_ms.saturating_add(offset_ms);
        let mut account = |a: &str| {
            let lower = a.to_ascii_lowercase();
            let entry = self.seen.entry(lower).or_insert((at, at));
            *entry = (entry.0.min(at), entry.1.max(at));
        };
        match &e.kind {
            EventKind::Heartbeat { accounts, .. } => accounts.iter().for_each(|a| account(a)),
            k => k.account().into_iter().for_each(account),
        }
        if let Ok(t) = jiff::Timestamp::from_millisecond(at) {
            self.dates
                .insert(crate::attendance::attendance_date(t, days));
        }
    }

    /// The days whose verdicts the events can change: each day, and the day before
    /// it (a session that began the evening before runs into it).
    pub fn dirty_dates(&self) -> BTreeSet<Date> {
        let mut all = self.dates.clone();
        all.extend(self.dates.iter().filter_map(|d| d.yesterday().ok()));
        all
    }
}

//! Retention of raw events: `kaoqin-collector events prune --before YYYY-MM` drops
//! the events of the months before that one, on both stores, and freezes the
//! verdicts of those days.
//!
//! What must stay true:
//! - only months whose verdicts are final are dropped: none of their days is
//!   marked dirty or judged provisionally, and the month is over;
//! - a dropped month is frozen: its stored verdicts are kept as they are and are
//!   never judged again (there is nothing left to judge them from), nor are the
//!   first days of the month kept, whose verdicts read the evening before;
//! - months are UTC calendar months of the events' instants, as the PostgreSQL
//!   store partitions them.

use super::StoreError;
use jiff::civil::Date;

/// Days at the start of the kept month that are frozen too: their verdicts read
/// events of the day before.
pub const FROZEN_MARGIN_DAYS: i64 = 2;

/// What a prune removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pruned {
    pub events: u64,
    pub batches: u64,
}

/// The first instant (UTC milliseconds) of the month that begins on `before`.
pub fn boundary_ms(before: Date) -> Result<i64, StoreError> {
    jiff::tz::TimeZone::UTC
        .to_ambiguous_timestamp(before.to_datetime(jiff::civil::Time::midnight()))
        .compatible()
        .map(|t| t.as_millisecond())
        .map_err(|e| StoreError::Invalid(format!("--before {before}: {e}")))
}

/// The day before which verdicts are frozen once the months before `before` are
/// dropped.
pub fn frozen_before(before: Date) -> Date {
    before
        .checked_add(jiff::Span::new().days(FROZEN_MARGIN_DAYS))
        .unwrap_or(before)
}

/// Checks what needs no stored state: `before` is the first of a month, and that
/// month has begun by `today` (only months already over are dropped).
pub fn check_before(before: Date, today: Date) -> Result<(), StoreError> {
    if before.day() != 1 {
        return Err(StoreError::Invalid(format!(
            "--before {before}: give a month, YYYY-MM"
        )));
    }
    if before > today.first_of_month() {
        return Err(StoreError::Invalid(format!(
            "--before {}: that month has not begun; only months that are over are dropped",
            before.strftime("%Y-%m")
        )));
    }
    Ok(())
}

/// The refusal when verdicts of the months to drop are not final.
pub fn not_final(before: Date, dirty: i64, provisional: i64) -> Option<StoreError> {
    (dirty > 0 || provisional > 0).then(|| {
        StoreError::Conflict(format!(
            "the verdicts before {} are not final ({dirty} day(s) waiting to be judged again, {provisional} provisional); run `kaoqin-collector verdicts recompute` and try again",
            frozen_before(before)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn only_months_that_are_over_and_named_as_months_are_dropped() {
        let today = date(2026, 12, 7);
        assert!(check_before(date(2026, 12, 1), today).is_ok());
        let e = check_before(date(2027, 1, 1), today)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2027-01: that month has not begun"), "{e}");
        let e = check_before(date(2026, 11, 5), today)
            .unwrap_err()
            .to_string();
        assert!(e.contains("give a month"), "{e}");
        assert_eq!(boundary_ms(date(2026, 11, 1)).unwrap(), 1_793_491_200_000);
        assert_eq!(frozen_before(date(2026, 11, 1)), date(2026, 11, 3));
    }
}

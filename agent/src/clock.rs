//! Noticing the PC's wall clock being set (by NTP stepping it, or by hand).
//!
//! The wall clock is compared with the time since boot, which only ever counts
//! forward and keeps counting while the PC is suspended (Linux `/proc/uptime`,
//! Windows `GetTickCount64`, both through sysinfo). When the two disagree by more
//! than [`ClockWatch::THRESHOLD_MS`] between two samples, the wall clock was set.
//!
//! Events already recorded keep the instants they were stamped with; the spool
//! remembers where the jump fell, and their batches are sent with the send time
//! expressed on the clock they were stamped with (see `Spool::clock_correction`),
//! so the collector's measured offset corrects them. Without this, events stamped
//! under a clock that ran a day ahead would be refused as being in the future once
//! NTP had put the clock right.

/// Watches one clock against the other; see the module doc.
#[derive(Debug, Default)]
pub struct ClockWatch {
    last: Option<(i64, i64)>,
}

impl ClockWatch {
    /// Disagreements up to this are drift and the uptime's one-second resolution.
    pub const THRESHOLD_MS: i64 = 60_000;

    /// Takes the wall clock and the time since boot, both in milliseconds; returns
    /// how far the wall clock was set (positive: forward) since the last call.
    pub fn observe(&mut self, wall_ms: i64, uptime_ms: i64) -> Option<i64> {
        let last = self.last.replace((wall_ms, uptime_ms));
        let (last_wall, last_uptime) = last?;
        if uptime_ms < last_uptime {
            // A different boot, or an uptime that could not be read: no basis.
            return None;
        }
        let jump = (wall_ms - last_wall) - (uptime_ms - last_uptime);
        (jump.abs() > Self::THRESHOLD_MS).then_some(jump)
    }
}

/// Milliseconds since boot (whole seconds), counting suspended time.
pub fn uptime_ms() -> Option<i64> {
    sysinfo::System::uptime()
        .ok()
        .and_then(|s| i64::try_from(s).ok())
        .map(|s| s * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_000_000_000;
    const MIN: i64 = 60_000;

    #[test]
    fn a_set_clock_is_noticed_and_drift_and_suspend_are_not() {
        let mut w = ClockWatch::default();
        assert_eq!(
            w.observe(T, 1_000),
            None,
            "the first sample has nothing to compare"
        );
        // 15 s later on both clocks, then a second of drift.
        assert_eq!(w.observe(T + 15_000, 16_000), None);
        assert_eq!(w.observe(T + 31_000, 31_000), None);
        // Suspended for 8 hours: both clocks moved on together.
        let (wall, up) = (T + 31_000 + 480 * MIN, 31_000 + 480 * MIN);
        assert_eq!(w.observe(wall, up), None);
        // NTP steps the clock back by a day, between two 15 s samples.
        assert_eq!(
            w.observe(wall + 15_000 - 1_440 * MIN, up + 15_000),
            Some(-1_440 * MIN)
        );
        // Set forward by two hours.
        let (wall, up) = (wall + 30_000 - 1_440 * MIN + 120 * MIN, up + 30_000);
        assert_eq!(w.observe(wall, up), Some(120 * MIN));
        // An uptime that went backwards is no basis for a verdict.
        assert_eq!(w.observe(wall + 5 * MIN, 0), None);
    }
}

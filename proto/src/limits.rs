//! The ranges the policy's intervals must lie in. Part of the contract: the
//! collector refuses a configuration outside them and the agent ignores a policy
//! value outside them, so both sides read them from here.

use std::ops::RangeInclusive;

/// Seconds between heartbeats.
pub const HEARTBEAT_SECONDS: RangeInclusive<u32> = 10..=3600;
/// Seconds between looks at sessions and applications.
pub const SAMPLE_SECONDS: RangeInclusive<u32> = 1..=600;
/// Length of a usage interval, in seconds.
pub const USAGE_INTERVAL_SECONDS: RangeInclusive<u32> = 60..=3600;
/// No input for this long is idle, in seconds.
pub const IDLE_THRESHOLD_SECONDS: RangeInclusive<u32> = 30..=7200;

/// The four intervals with their ranges, for validating a configuration. Names
/// are the setting's key without its section (`heartbeat_seconds`, ...).
pub fn check_intervals(
    section: &str,
    [heartbeat, sample, usage, idle]: [u32; 4],
    problems: &mut Vec<String>,
) {
    let checks = [
        ("heartbeat_seconds", heartbeat, HEARTBEAT_SECONDS),
        ("sample_seconds", sample, SAMPLE_SECONDS),
        ("usage_interval_seconds", usage, USAGE_INTERVAL_SECONDS),
        ("idle_threshold_seconds", idle, IDLE_THRESHOLD_SECONDS),
    ];
    for (name, v, range) in checks {
        if !range.contains(&v) {
            problems.push(format!(
                "{section}.{name} = {v}: must be between {} and {}",
                range.start(),
                range.end()
            ));
        }
    }
}

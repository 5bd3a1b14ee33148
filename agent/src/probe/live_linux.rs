//! The live probe on Linux.

use super::linux::{LinuxProbe, LinuxProbeOptions};
use super::{Probe, ProbeError};
use crate::config::Config;

pub(super) fn live(config: &Config) -> Result<Box<dyn Probe>, ProbeError> {
    let defaults = LinuxProbeOptions::default();
    Ok(Box::new(LinuxProbe::new(LinuxProbeOptions {
        idle_threshold_ms: u64::from(config.sampling.idle_threshold_seconds) * 1000,
        use_dbus: config.probe.dbus,
        use_x11: config.probe.x11,
        foreground: config.probe.foreground,
        utmp_path: config
            .probe
            .utmp
            .clone()
            .unwrap_or(defaults.utmp_path.clone()),
        ..defaults
    })))
}

//! The live probe on Linux.

use super::linux::{LinuxProbe, LinuxProbeOptions};
use super::{Probe, ProbeError};
use crate::config::Config;

pub(super) fn live(config: &Config) -> Result<Box<dyn Probe>, ProbeError> {
    Ok(Box::new(LinuxProbe::new(LinuxProbeOptions {
        idle_threshold_ms: u64::from(config.sampling.idle_threshold_seconds) * 1000,
        use_dbus: config.probe.dbus,
        use_x11: config.probe.x11,
        foreground: config.probe.foreground,
        ..LinuxProbeOptions::default()
    })))
}

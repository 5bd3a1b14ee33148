//! Operating systems without a live probe in this build.

use super::{Probe, ProbeError};
use crate::config::Config;

pub(super) fn live(_config: &Config) -> Result<Box<dyn Probe>, ProbeError> {
    Err(ProbeError::Other(format!(
        "no live probe for {} in this build; use --probe replay:FILE",
        std::env::consts::OS
    )))
}

//! The live probe on Windows (see `probe/windows.rs`). Used by `kaoqin-agent run`
//! in a console; the service builds its own, wired to its control handler.

use super::windows::{WindowsProbe, WindowsProbeOptions};
use super::wts::Inbox;
use super::{Probe, ProbeError};
use crate::config::Config;

pub(super) fn live(config: &Config) -> Result<Box<dyn Probe>, ProbeError> {
    Ok(Box::new(WindowsProbe::new(
        WindowsProbeOptions::from_config(config, false),
        Inbox::default(),
    )))
}

//! The agent as a Windows service: `kaoqin-agent service install|uninstall|start|stop`,
//! the service's control handling, and `kaoqin-agent session-helper`.
//!
//! The service (`kaoqin-agent`, LocalSystem, automatic start, restarted by the
//! service control manager on failure) runs `kaoqin-agent service run` with the
//! configuration and state dir given at install. Its control handler accepts
//! STOP, SHUTDOWN and SESSIONCHANGE; session changes go to the Windows probe's
//! inbox (see `probe/windows.rs` for the design), a stop or shutdown ends the
//! run loop, which records the agent's stop.
//!
//! The decisions are plain functions here ([`react`], [`launch_arguments`]),
//! tested on every platform; `service/windows.rs` is the thin part that talks to
//! the service control manager. Elsewhere the commands say they are for Windows.
//!
//! What must stay true: a SHUTDOWN control marks the stop as the system's
//! ([`system_shutting_down`]), a STOP as the service's; the handler never
//! blocks (it hands work over and returns).

use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Subcommand;

use crate::cli::Common;
use crate::event::LifecycleReason;
use crate::probe::wts::SessionChange;

/// The service's name in the service control manager.
pub const SERVICE_NAME: &str = "kaoqin-agent";
/// The name shown in services.msc.
pub const DISPLAY_NAME: &str = "kaoqin attendance agent";
/// The description shown in services.msc.
pub const DESCRIPTION: &str = "Records logon, logoff, lock, unlock and idle times and minutes per application category on this PC, and delivers them to the office's kaoqin collector. `kaoqin-agent show` says what it has recorded.";

/// `kaoqin-agent service ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Register the service (automatic start, restart on failure) with this
    /// executable, configuration and state dir; updates an existing registration.
    Install {
        #[command(flatten)]
        common: Common,
    },
    /// Stop and remove the service (the state dir is kept).
    Uninstall,
    /// Start the service.
    Start,
    /// Stop the service.
    Stop,
    /// What the service control manager runs; not for use by hand.
    #[command(hide = true)]
    Run {
        #[command(flatten)]
        common: Common,
    },
}

/// A control the service control manager sends, as far as the agent cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Stop,
    /// The system is shutting down (SERVICE_CONTROL_SHUTDOWN or PRESHUTDOWN).
    Shutdown,
    Interrogate,
    /// SERVICE_CONTROL_SESSIONCHANGE with its raw reason (`WTS_SESSION_LOGON`, ..).
    SessionChange {
        reason: u32,
        session: u32,
    },
    Other,
}

/// What the service does about a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// End the run loop; the stop is recorded with this reason.
    Stop(LifecycleReason),
    /// Hand a session change to the probe.
    Session { change: SessionChange, session: u32 },
    /// Answer "no error" and do nothing.
    Ok,
    /// Answer "not implemented".
    NotImplemented,
}

/// The service's state machine: one reaction per control.
pub fn react(control: Control) -> Reaction {
    match control {
        Control::Stop => Reaction::Stop(LifecycleReason::ServiceStop),
        Control::Shutdown => Reaction::Stop(LifecycleReason::SystemShutdown),
        Control::Interrogate => Reaction::Ok,
        Control::SessionChange { reason, session } => match SessionChange::from_raw(reason) {
            Some(change) => Reaction::Session { change, session },
            None => Reaction::Ok,
        },
        Control::Other => Reaction::NotImplemented,
    }
}

static SYSTEM_SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// Marks that the service was told the system is shutting down.
pub fn mark_system_shutdown() {
    SYSTEM_SHUTDOWN.store(true, Ordering::SeqCst);
}

/// True once the service was told the system is shutting down (and, on Windows,
/// while `GetSystemMetrics(SM_SHUTTINGDOWN)` says so): the stop is the system's.
pub fn system_shutting_down() -> bool {
    SYSTEM_SHUTDOWN.load(Ordering::SeqCst) || platform::shutting_down()
}

/// The arguments the service control manager starts the service with.
pub fn launch_arguments(config: Option<&Path>, state_dir: Option<&Path>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["service".into(), "run".into()];
    if let Some(c) = config {
        args.push("--config".into());
        args.push(c.as_os_str().to_owned());
    }
    if let Some(d) = state_dir {
        args.push("--state-dir".into());
        args.push(d.as_os_str().to_owned());
    }
    args
}

/// Runs `kaoqin-agent service ACTION`.
pub fn run(action: ServiceAction) -> anyhow::Result<()> {
    platform::run(action)
}

/// Runs `kaoqin-agent session-helper`.
pub fn session_helper(once: bool, print: bool, give_up_s: u64) -> anyhow::Result<()> {
    platform::session_helper(once, print, give_up_s)
}

#[cfg(windows)]
#[path = "service/windows.rs"]
mod platform;

/// Not Windows: the commands say so.
#[cfg(not(windows))]
mod platform {
    use super::ServiceAction;

    pub(super) fn run(_action: ServiceAction) -> anyhow::Result<()> {
        anyhow::bail!(
            "`kaoqin-agent service` is only on Windows; on Linux install the systemd unit (see the README)"
        )
    }

    pub(super) fn session_helper(_once: bool, _print: bool, _give_up_s: u64) -> anyhow::Result<()> {
        anyhow::bail!("`kaoqin-agent session-helper` is only on Windows")
    }

    pub(super) fn shutting_down() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_their_reactions() {
        let cases = [
            (Control::Stop, Reaction::Stop(LifecycleReason::ServiceStop)),
            (
                Control::Shutdown,
                Reaction::Stop(LifecycleReason::SystemShutdown),
            ),
            (Control::Interrogate, Reaction::Ok),
            (
                Control::SessionChange {
                    reason: 5,
                    session: 2,
                },
                Reaction::Session {
                    change: SessionChange::Logon,
                    session: 2,
                },
            ),
            (
                Control::SessionChange {
                    reason: 7,
                    session: 2,
                },
                Reaction::Session {
                    change: SessionChange::Lock,
                    session: 2,
                },
            ),
            (
                Control::SessionChange {
                    reason: 99,
                    session: 2,
                },
                Reaction::Ok,
            ),
            (Control::Other, Reaction::NotImplemented),
        ];
        for (control, want) in cases {
            assert_eq!(react(control), want, "{control:?}");
        }
    }

    #[test]
    fn launch_arguments_carry_the_config_and_state_dir() {
        assert_eq!(launch_arguments(None, None), vec!["service", "run"]);
        assert_eq!(
            launch_arguments(
                Some(Path::new(r"C:\ProgramData\kaoqin\agent.toml")),
                Some(Path::new(r"D:\kaoqin state"))
            ),
            vec![
                "service",
                "run",
                "--config",
                r"C:\ProgramData\kaoqin\agent.toml",
                "--state-dir",
                r"D:\kaoqin state"
            ]
        );
    }

    #[test]
    fn a_shutdown_marks_the_stop_as_the_systems() {
        assert!(!system_shutting_down() || cfg!(windows));
        mark_system_shutdown();
        assert!(system_shutting_down());
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_the_commands_say_they_are_for_windows() {
        let e = run(ServiceAction::Stop).unwrap_err().to_string();
        assert!(e.contains("only on Windows"), "{e}");
        let e = session_helper(true, true, 1).unwrap_err().to_string();
        assert!(e.contains("only on Windows"), "{e}");
    }
}

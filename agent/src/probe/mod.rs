//! What the PC is doing: the seam between the operating system and the agent.
//!
//! A [`Probe`] is polled by the agent loop. Each poll returns what changed since
//! the previous poll as [`Observation`]s in time order, each with its own instant.
//! The agent's recorder turns observations into events; the probe never decides
//! what is reported. Application names and titles appear in observations so the
//! PC can classify them; they are never spooled or sent.
//!
//! Implementations: `linux` (utmp, logind over D-Bus, X11, processes), `windows`,
//! and `replay` (a scripted day in virtual time, used by tests and demos).

use crate::event::SessionKind;

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "linux")]
#[path = "live_linux.rs"]
mod platform;
#[cfg(windows)]
#[path = "live_windows.rs"]
mod platform;
#[cfg(not(any(target_os = "linux", windows)))]
#[path = "live_other.rs"]
mod platform;
pub mod replay;
#[cfg(windows)]
pub mod windows;
pub mod wts;

/// The live probe for this operating system, configured from `config`.
pub fn live(config: &crate::config::Config) -> Result<Box<dyn Probe>, ProbeError> {
    platform::live(config)
}

/// An application as the PC sees it. Used only for classification on the PC.
pub use kaoqin_proto::classify::App;

/// Which applications the user had in front of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppsBasis {
    /// `apps` holds the one foreground application (or none).
    Foreground,
    /// The desktop does not say which window is in front: `apps` holds the
    /// applications running in the user's session.
    Running,
}

/// One change the probe saw, at an instant (UTC epoch milliseconds, agent clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A session event of an OS account.
    Session {
        at_ms: i64,
        account: String,
        kind: SessionKind,
    },
    /// From `at_ms` on, until the next `Apps` observation of the same account (or
    /// a lock, idle start or logoff), these are the account's applications.
    Apps {
        at_ms: i64,
        account: String,
        basis: AppsBasis,
        apps: Vec<App>,
    },
}

impl Observation {
    /// The instant of the observation.
    pub fn at_ms(&self) -> i64 {
        match self {
            Observation::Session { at_ms, .. } | Observation::Apps { at_ms, .. } => *at_ms,
        }
    }
}

/// What a probe can observe on this machine, reported once at start so the log
/// says plainly what is and is not available.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub sessions: bool,
    pub lock: bool,
    pub idle: bool,
    pub foreground: bool,
    pub processes: bool,
    /// One sentence per missing capability, saying why.
    pub notes: Vec<String>,
}

/// Errors a probe can report. A probe that loses a source (the bus went away)
/// should degrade and keep reporting what it can rather than fail.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{path}: line {line}: {message}")]
    Script {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// The source of observations.
pub trait Probe: Send {
    /// What this probe can see here.
    fn capabilities(&self) -> Capabilities;

    /// Returns, in time order, what changed up to `now_ms` since the previous call.
    /// The first call reports the state at start (accounts already logged on, and
    /// their applications).
    fn poll(&mut self, now_ms: i64) -> Result<Vec<Observation>, ProbeError>;

    /// For a probe that plays a script: the span it plays and how the PC begins
    /// and ends it. Live probes: `None`.
    fn script(&self) -> Option<ScriptSpan> {
        None
    }
}

/// The span of a scripted day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptSpan {
    /// The instant the script starts at.
    pub start_ms: i64,
    /// The instant of its last line, after which it has nothing more to say.
    pub end_ms: i64,
    /// It starts with the PC's boot (else with the start of a replay).
    pub boots: bool,
    /// It ends with the PC's shutdown (else with the end of a replay).
    pub shuts_down: bool,
}

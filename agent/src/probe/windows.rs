//! The Windows probe: sessions from WTS, idle time and the foreground window
//! from a helper in each user session, running processes through sysinfo.
//!
//! The agent runs as a service in session 0, where there is no desktop: a
//! service cannot read another session's idle time (`GetLastInputInfo`) or
//! foreground window (`GetForegroundWindow`). So:
//!
//! ```text
//! service control handler: SERVICE_CONTROL_SESSIONCHANGE ----------+
//!   (logon, logoff, lock, unlock, connect, disconnect; account      |
//!    from WTSQuerySessionInformationW)                               |
//! every poll: WTSEnumerateSessionsW + WTSSessionInfoEx (reconcile) -+--> Inbox --> wts::Tracker
//! `kaoqin-agent session-helper` in each user session, started by    |                 |
//!   the service (WTSQueryUserToken + CreateProcessAsUserW), writes  |            Observations
//!   {"v":1,"idle_ms":..,"exe":..,"title":..} to \\.\pipe\kaoqin-agent
//! sessions without a live helper: their processes (sysinfo) --------+
//! ```
//!
//! Everything that decides what an input means is in [`crate::probe::wts`], plain
//! Rust tested on every platform; this module only gathers inputs, and `sys`
//! holds the Win32 calls. Run outside the service (`kaoqin-agent run` in a
//! console), the probe still enumerates sessions and their lock state every poll;
//! it gets no notifications and starts no helpers (that needs LocalSystem), but
//! serves the pipe, so a helper started by hand is used.
//!
//! What must stay true: each poll returns observations in time order; after the
//! first poll, instants lie between the previous poll and this one; a source
//! that fails is noted once and the others carry on.

pub mod helper;
mod pipe;
mod procs;
mod sys;

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use self::pipe::PipeServer;
use self::procs::Procs;
pub use self::sys::{machine_guid, program_data, secure_dir};
pub(crate) use self::sys::{session_info, shutting_down};
use crate::probe::wts::{Inbox, Input, Launched, Tracker, helper_command_line};
use crate::probe::{Capabilities, Observation, Probe, ProbeError};

/// How long to wait before starting a helper again in a session where the last
/// one did not connect.
const HELPER_RETRY_MS: i64 = 5 * 60 * 1000;

/// What the Windows probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsProbeOptions {
    /// Idle time from which the user counts as idle.
    pub idle_threshold_ms: u64,
    /// Serve the helpers' pipe (idle time and the foreground window).
    pub helpers: bool,
    /// Start a helper in each user session that has none (needs LocalSystem:
    /// the service does, `run` in a console does not).
    pub launch_helpers: bool,
}

impl WindowsProbeOptions {
    /// From the configuration; `launch_helpers` only for the service.
    pub fn from_config(config: &crate::config::Config, launch_helpers: bool) -> Self {
        WindowsProbeOptions {
            idle_threshold_ms: u64::from(config.sampling.idle_threshold_seconds) * 1000,
            helpers: config.probe.foreground,
            launch_helpers: launch_helpers && config.probe.foreground,
        }
    }
}

/// The Windows implementation of [`Probe`].
pub struct WindowsProbe {
    opts: WindowsProbeOptions,
    caps: Capabilities,
    noted: BTreeSet<&'static str>,
    inbox: Inbox,
    tracker: Tracker,
    procs: Option<Procs>,
    _pipe: Option<PipeServer>,
    launched: BTreeMap<u32, i64>,
    /// The helpers started, by session, which alone may use the pipe.
    helpers: Launched,
    prev_poll_ms: Option<i64>,
}

impl WindowsProbe {
    /// Opens what this PC has. Never fails: what is missing is said in
    /// [`Capabilities::notes`]. Session-change notifications are read from
    /// `inbox` (the service's control handler writes them there).
    pub fn new(opts: WindowsProbeOptions, inbox: Inbox) -> WindowsProbe {
        let mut p = WindowsProbe {
            caps: Capabilities::default(),
            noted: BTreeSet::new(),
            tracker: Tracker::new(opts.idle_threshold_ms),
            procs: None,
            _pipe: None,
            launched: BTreeMap::new(),
            helpers: Launched::default(),
            prev_poll_ms: None,
            inbox,
            opts,
        };
        match sys::sessions() {
            Ok(_) => {
                p.caps.sessions = true;
                p.caps.lock = true;
            }
            Err(e) => p.note(
                "wts",
                format!("Cannot enumerate sessions (WTSEnumerateSessionsW: {e}): logons only from notifications."),
            ),
        }
        match Procs::new() {
            Ok(procs) => {
                p.procs = Some(procs);
                p.caps.processes = true;
            }
            Err(e) => p.note(
                "procs",
                format!("Running applications are not available: {e}."),
            ),
        }
        if p.opts.helpers {
            let only = p.opts.launch_helpers.then(|| p.helpers.clone());
            match PipeServer::start(p.inbox.clone(), only) {
                Ok(server) => {
                    p._pipe = Some(server);
                    p.caps.idle = true;
                    p.caps.foreground = true;
                }
                Err(e) => p.note(
                    "pipe",
                    format!("Cannot serve the session helpers' pipe ({e}): no idle time or foreground window; running applications instead."),
                ),
            }
        } else {
            p.note(
                "pipe",
                "Session helpers are turned off: no idle time or foreground window; running applications instead.".to_owned(),
            );
        }
        if p.caps.foreground && !p.opts.launch_helpers {
            p.note(
                "launch",
                "Not running as the service: helpers are not started in user sessions; start `kaoqin-agent session-helper` in a session by hand to report its idle time and foreground window.".to_owned(),
            );
        }
        p
    }

    /// Where session-change notifications go.
    pub fn inbox(&self) -> Inbox {
        self.inbox.clone()
    }

    /// Says something once: at warn level, and in the capabilities' notes.
    fn note(&mut self, key: &'static str, msg: String) {
        if self.noted.insert(key) {
            warn!(source = key, "{msg}");
            self.caps.notes.push(msg);
        }
    }

    /// Starts a helper in each user session that has none, at most every
    /// [`HELPER_RETRY_MS`] per session.
    fn launch_helpers(&mut self, now_ms: i64) {
        let wanted = self.tracker.sessions_without_helper(now_ms);
        self.launched.retain(|s, _| wanted.contains_key(s));
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let cmd = helper_command_line(&exe.to_string_lossy());
        for (session, account) in wanted {
            if self
                .launched
                .get(&session)
                .is_some_and(|t| now_ms - t < HELPER_RETRY_MS)
            {
                continue;
            }
            self.launched.insert(session, now_ms);
            match sys::spawn_in_session(session, &exe, &cmd) {
                Ok(pid) => {
                    self.helpers.record(session, pid);
                    info!(session, %account, pid, "Started the session helper.");
                }
                Err(e) => warn!(session, %account, error = %e, "Cannot start the session helper."),
            }
        }
    }
}

fn set_at(o: &mut Observation, t: i64) {
    match o {
        Observation::Session { at_ms, .. } | Observation::Apps { at_ms, .. } => *at_ms = t,
    }
}

impl Probe for WindowsProbe {
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }

    fn poll(&mut self, now_ms: i64) -> Result<Vec<Observation>, ProbeError> {
        let first = self.prev_poll_ms.is_none();
        let lower = self.prev_poll_ms.unwrap_or(i64::MIN).min(now_ms);
        let mut inputs = self.inbox.drain();
        match sys::sessions() {
            Ok(sessions) => inputs.push(Input::Sessions {
                at_ms: now_ms,
                sessions,
            }),
            Err(e) => self.note(
                "wts-poll",
                format!(
                    "Enumerating sessions failed ({e}); relying on notifications while it does."
                ),
            ),
        }
        let mut out = Vec::new();
        for input in inputs {
            out.extend(self.tracker.apply(input));
        }
        if self.opts.launch_helpers && self._pipe.is_some() {
            self.launch_helpers(now_ms);
        }
        let without = self.tracker.sessions_without_helper(now_ms);
        let running = match self.procs.as_mut() {
            Some(p) => p.running(&without),
            None => BTreeMap::new(),
        };
        out.extend(self.tracker.running(now_ms, running));
        for o in &mut out {
            let t = o.at_ms();
            let t = if first {
                t.min(now_ms)
            } else {
                t.clamp(lower, now_ms)
            };
            set_at(o, t);
        }
        out.sort_by_key(Observation::at_ms);
        self.prev_poll_ms = Some(now_ms);
        Ok(out)
    }
}

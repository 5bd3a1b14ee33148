//! The Windows probe's logic, without Windows: what session-change notifications,
//! WTS session information and the per-session helper's samples mean as
//! [`Observation`]s. Plain Rust, so it is tested on every platform; the
//! `#[cfg(windows)]` module (`probe/windows.rs`) only gathers the inputs.
//!
//! ```text
//! service control handler --SessionChange(reason, session id) + WTS info--+
//! WTSEnumerateSessionsW (start, and every poll to reconcile) -------------+--> Input
//! session helper --pipe: {"v":1,"idle_ms":..,"exe":..,"title":..}--------+      |
//!                                                                             Tracker
//! sysinfo processes by session (sessions without a helper) ------------------>  |
//!                                                                   per-account view, diffed
//!                                                                   against what was reported
//!                                                                               |
//!                                                                         Observations
//! ```
//!
//! Windows reports per session; kaoqin reports per account. The [`Tracker`]
//! keeps each session's state, folds the sessions of an account into one view,
//! and reports only the differences from the view it reported last. What must
//! stay true:
//! - an account is logged on while any of its sessions is; logon and logoff are
//!   reported once per account, not per session;
//! - an account is locked when every one of its sessions is locked or
//!   disconnected (fast user switching, a dropped remote desktop): nobody is at it;
//! - an account is idle when every unlocked session with a live helper says so;
//!   without a live helper idle is not known and counts as not idle;
//! - a locked or idle account has no applications; when it comes back its
//!   applications are reported afresh (the recorder ends `Apps` at a lock or
//!   idle start);
//! - applications are the helper's foreground window (`AppsBasis::Foreground`)
//!   where a helper is live, else the session's running processes
//!   (`AppsBasis::Running`);
//! - the helper's identity is the pipe client's session id, which the kernel
//!   reports, never anything the helper says: a user can only speak for their own
//!   session.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::event::SessionKind;

/// The session helpers the service started: session id -> process id. When the
/// service starts the helpers, only those may speak for a session on the pipe
/// (another process of the session could otherwise feed it "not idle, WINWORD").
#[derive(Debug, Clone, Default)]
pub struct Launched(Arc<Mutex<BTreeMap<u32, u32>>>);

impl Launched {
    /// The service started `pid` as the helper of `session` (replacing any other).
    pub fn record(&self, session: u32, pid: u32) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session, pid);
    }

    /// Whether `pid` is the helper the service started in `session`.
    pub fn is_helper(&self, session: u32, pid: u32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session)
            == Some(&pid)
    }
}
use crate::probe::{App, AppsBasis, Observation};

/// The local named pipe the helpers write to.
pub const PIPE_NAME: &str = r"\\.\pipe\kaoqin-agent";
/// The longest helper line the service reads; longer lines are dropped.
pub const MAX_LINE: usize = 8 * 1024;
/// The longest window title kept (in characters).
pub const MAX_TITLE_CHARS: usize = 512;
/// How often the helper samples.
pub const HELPER_INTERVAL_MS: u64 = 5_000;
/// A helper not heard from for this long counts as gone.
pub const HELPER_STALE_MS: i64 = 30_000;
/// How long a session helper keeps trying to reach the service before it exits.
/// The service starts a helper in each user session that has none (at most every
/// five minutes), so a helper that gives up is replaced once the service is back;
/// one that never gave up would outlive an uninstalled service, and would hold
/// the session's one-helper lock against the helper a restarted service starts
/// (whose pipe takes only the helpers it started).
pub const HELPER_GIVE_UP_S: u64 = 120;

/// A session helper's tries to reach the service: waits of 1 s doubling up to a
/// minute between failed tries, and none once the service has been away for
/// the give-up time. Instants are milliseconds on any monotonic clock.
#[derive(Debug)]
pub struct ServiceTries {
    away_since_ms: Option<i64>,
    wait_ms: u64,
    give_up_ms: u64,
}

impl ServiceTries {
    pub fn new(give_up_ms: u64) -> ServiceTries {
        ServiceTries {
            away_since_ms: None,
            wait_ms: 1_000,
            give_up_ms,
        }
    }

    /// A sample reached the service.
    pub fn reached(&mut self) {
        self.away_since_ms = None;
        self.wait_ms = 1_000;
    }

    /// A try at `now_ms` failed: how long to wait before the next one, or None
    /// when the service has been away for the give-up time. The last wait ends
    /// at the give-up time, so the last try is made then.
    pub fn failed(&mut self, now_ms: i64) -> Option<u64> {
        let since = *self.away_since_ms.get_or_insert(now_ms);
        let away = u64::try_from(now_ms.saturating_sub(since)).unwrap_or(0);
        if away >= self.give_up_ms {
            return None;
        }
        let wait = self.wait_ms.min(self.give_up_ms - away);
        self.wait_ms = (self.wait_ms * 2).min(60_000);
        Some(wait)
    }
}
/// The current helper protocol version.
pub const PROTOCOL_VERSION: u32 = 1;

/// A `SERVICE_CONTROL_SESSIONCHANGE` reason (`WTS_*` in WinUser.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionChange {
    ConsoleConnect,
    ConsoleDisconnect,
    RemoteConnect,
    RemoteDisconnect,
    Logon,
    Logoff,
    Lock,
    Unlock,
    RemoteControl,
    Create,
    Terminate,
}

impl SessionChange {
    /// From the `dwEventType` of a session-change control (WTS_CONSOLE_CONNECT = 1
    /// .. WTS_SESSION_TERMINATE = 11).
    pub fn from_raw(raw: u32) -> Option<SessionChange> {
        use SessionChange::*;
        Some(match raw {
            1 => ConsoleConnect,
            2 => ConsoleDisconnect,
            3 => RemoteConnect,
            4 => RemoteDisconnect,
            5 => Logon,
            6 => Logoff,
            7 => Lock,
            8 => Unlock,
            9 => RemoteControl,
            10 => Create,
            11 => Terminate,
            _ => return None,
        })
    }
}

/// A session's `WTS_CONNECTSTATE_CLASS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectState {
    /// A user is logged on and at the session (console or remote).
    Active,
    Connected,
    ConnectQuery,
    Shadow,
    /// Logged on, but nobody is connected to it (switched user, dropped RDP).
    Disconnected,
    Idle,
    Listen,
    Reset,
    Down,
    Init,
}

impl ConnectState {
    /// From `WTSActive` (0) .. `WTSInit` (9); unknown values are `Down`.
    pub fn from_raw(raw: i32) -> ConnectState {
        use ConnectState::*;
        match raw {
            0 => Active,
            1 => Connected,
            2 => ConnectQuery,
            3 => Shadow,
            4 => Disconnected,
            5 => Idle,
            6 => Listen,
            7 => Reset,
            9 => Init,
            _ => Down,
        }
    }

    /// Whether a user's session in this state has the user at it.
    fn attended(self) -> bool {
        matches!(
            self,
            ConnectState::Active | ConnectState::Connected | ConnectState::Shadow
        )
    }
}

/// What WTS says about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: u32,
    /// The account logged on, `None` for the services session, the logon screen
    /// and listeners.
    pub account: Option<String>,
    pub state: ConnectState,
    /// From `WTSSessionInfoEx`'s `SessionFlags`, where Windows says.
    pub locked: Option<bool>,
    /// When the user logged on (UTC epoch ms), where Windows says.
    pub logon_ms: Option<i64>,
}

/// The account name kaoqin reports for a session's `WTSUserName` and
/// `WTSDomainName`: `DOMAIN\user` (for a local account the domain is the PC's
/// name), so two domains' `zhangsan` stay apart; the user alone when Windows gives
/// no domain. The staff directory may list either form. `None` when no user is
/// logged on.
pub fn account_name(user: &str, domain: &str) -> Option<String> {
    let trim = |s: &str| {
        s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_owned()
    };
    let (user, domain) = (trim(user), trim(domain));
    match (user.is_empty(), domain.is_empty()) {
        (true, _) => None,
        (false, true) => Some(user),
        (false, false) => Some(format!("{domain}\\{user}")),
    }
}

/// `WTSINFOEX_LEVEL1_W::SessionFlags` as a lock state: `WTS_SESSIONSTATE_LOCK` (0),
/// `WTS_SESSIONSTATE_UNLOCK` (1), anything else unknown. (Windows 7 and Server
/// 2008 R2 swap the two; kaoqin needs Windows 10 or later anyway.)
pub fn lock_flag(flags: i32) -> Option<bool> {
    match flags {
        0 => Some(true),
        1 => Some(false),
        _ => None,
    }
}

/// A FILETIME-style instant (100 ns ticks since 1601-01-01 UTC) as epoch ms;
/// `None` for zero or anything before 1970.
pub fn filetime_to_ms(ticks: i64) -> Option<i64> {
    const EPOCH_DIFF_MS: i64 = 11_644_473_600_000;
    (ticks > 0)
        .then(|| ticks / 10_000 - EPOCH_DIFF_MS)
        .filter(|ms| *ms > 0)
}

/// Milliseconds since the last input, from `GetTickCount()` and
/// `LASTINPUTINFO::dwTime`; both wrap after 49.7 days, so subtract wrapping.
pub fn idle_ms(tick_now: u32, last_input: u32) -> u32 {
    tick_now.wrapping_sub(last_input)
}

/// One sample from a session helper: one JSON object per line on the pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperSample {
    /// Protocol version, [`PROTOCOL_VERSION`].
    pub v: u32,
    /// Milliseconds since the session's last keyboard or mouse input.
    pub idle_ms: u64,
    /// The full path of the foreground window's executable; `None` when no
    /// window is in front (the lock screen, a UAC prompt) or it cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The foreground window's title, for classification on this PC only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl HelperSample {
    /// The line the helper writes (JSON and a newline).
    pub fn encode(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        s.push('\n');
        s
    }
}

/// Parses one line from the pipe.
pub fn parse_sample(line: &str) -> Result<HelperSample, String> {
    if line.len() > MAX_LINE {
        return Err(format!("line of {} bytes is too long", line.len()));
    }
    let mut s: HelperSample = serde_json::from_str(line.trim()).map_err(|e| e.to_string())?;
    if s.v != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is not {PROTOCOL_VERSION}",
            s.v
        ));
    }
    s.exe = s.exe.filter(|e| !e.trim().is_empty());
    s.title = s
        .title
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.chars().take(MAX_TITLE_CHARS).collect());
    Ok(s)
}

/// An application's name from its executable path (`C:\...\WeChat.exe` ->
/// `WeChat`), the same name the Linux probe gives a Windows program under Wine.
pub fn app_name_from_path(path: &str) -> Option<String> {
    let base = path.rsplit(['\\', '/']).next().unwrap_or(path).trim();
    let n = base.len();
    let name =
        if n > 4 && base.is_char_boundary(n - 4) && base[n - 4..].eq_ignore_ascii_case(".exe") {
            &base[..n - 4]
        } else {
            base
        };
    (!name.is_empty()).then(|| name.to_owned())
}

/// Windows processes that are the desktop, the shell or system plumbing rather
/// than applications someone uses (compared case-insensitively).
const NOT_APPS: &[&str] = &[
    "explorer",
    "svchost",
    "conhost",
    "csrss",
    "winlogon",
    "wininit",
    "dwm",
    "fontdrvhost",
    "lsass",
    "services",
    "smss",
    "sihost",
    "taskhostw",
    "ctfmon",
    "RuntimeBroker",
    "dllhost",
    "ShellExperienceHost",
    "StartMenuExperienceHost",
    "SearchHost",
    "SearchApp",
    "SearchIndexer",
    "SearchProtocolHost",
    "SearchFilterHost",
    "TextInputHost",
    "ApplicationFrameHost",
    "SecurityHealthSystray",
    "SystemSettingsBroker",
    "backgroundTaskHost",
    "LockApp",
    "LogonUI",
    "userinit",
    "WmiPrvSE",
    "audiodg",
    "spoolsv",
    "MsMpEng",
    "NisSrv",
    "smartscreen",
    "WidgetService",
    "Widgets",
    "PhoneExperienceHost",
    "CompPkgSrv",
    "cmd",
    "powershell",
    "pwsh",
    "OpenConsole",
    "WindowsTerminal",
    "kaoqin-agent",
    "System",
    "Registry",
    "Idle",
    "Memory Compression",
    "Secure System",
];

/// Whether a process name (without `.exe`) is desktop plumbing, not an application.
pub fn is_plumbing(name: &str) -> bool {
    NOT_APPS.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// One thing that happened, as the Windows module hands it to the [`Tracker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Every session there is now (`WTSEnumerateSessionsW`): at start, and on
    /// each poll to correct whatever a missed notification left wrong.
    Sessions {
        at_ms: i64,
        sessions: Vec<SessionInfo>,
    },
    /// A `SERVICE_CONTROL_SESSIONCHANGE`, with what WTS said about the session
    /// when it arrived (`None` if it could not be read, e.g. already gone).
    Change {
        at_ms: i64,
        session: u32,
        change: SessionChange,
        info: Option<SessionInfo>,
    },
    /// A helper's sample from the pipe; `session` is the pipe client's session id
    /// as the kernel reports it.
    Sample {
        at_ms: i64,
        session: u32,
        sample: HelperSample,
    },
    /// A helper's pipe closed.
    HelperGone { at_ms: i64, session: u32 },
}

impl Input {
    /// The instant of the input.
    pub fn at_ms(&self) -> i64 {
        match self {
            Input::Sessions { at_ms, .. }
            | Input::Change { at_ms, .. }
            | Input::Sample { at_ms, .. }
            | Input::HelperGone { at_ms, .. } => *at_ms,
        }
    }
}

/// The most inputs an [`Inbox`] holds; beyond that the oldest are dropped (the
/// next enumeration of sessions corrects what that loses).
pub const INBOX_MAX: usize = 10_000;

/// Where the service's control handler and the pipe server leave inputs for the
/// probe's next poll.
#[derive(Debug, Clone, Default)]
pub struct Inbox(Arc<Mutex<VecDeque<Input>>>);

impl Inbox {
    /// Leaves one input.
    pub fn push(&self, input: Input) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= INBOX_MAX {
            q.pop_front();
        }
        q.push_back(input);
    }

    /// Takes every input left so far, in time order.
    pub fn drain(&self) -> Vec<Input> {
        let mut v: Vec<Input> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        v.sort_by_key(Input::at_ms);
        v
    }
}

/// The command line that starts the helper in a user's session.
pub fn helper_command_line(exe: &str) -> String {
    format!("\"{exe}\" session-helper")
}

/// What the helper of a session last said.
#[derive(Debug, Clone)]
struct Helper {
    idle: bool,
    /// When `idle` last changed (the instant idle began or ended).
    idle_at_ms: i64,
    /// When the user last gave input (sample instant - idle_ms).
    input_at_ms: i64,
    front: Option<App>,
    seen_ms: i64,
}

/// One logged-on session.
#[derive(Debug, Clone)]
struct Session {
    account: String,
    logon_ms: i64,
    state: ConnectState,
    locked: bool,
    helper: Option<Helper>,
}

impl Session {
    fn away(&self) -> bool {
        self.locked || !self.state.attended()
    }
}

/// What was last reported for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    locked: bool,
    idle: bool,
    apps: Option<(AppsBasis, Vec<App>)>,
    /// The instant of the last session observation reported.
    last_ms: i64,
}

/// An account's state folded from its sessions.
#[derive(Debug)]
struct View {
    logon_ms: i64,
    locked: bool,
    idle: bool,
    idle_at_ms: i64,
    apps: Option<(AppsBasis, Vec<App>)>,
}

/// The Windows probe's state machine: sessions in, observations out.
#[derive(Debug)]
pub struct Tracker {
    idle_threshold_ms: i64,
    helper_stale_ms: i64,
    sessions: BTreeMap<u32, Session>,
    running: BTreeMap<String, Vec<App>>,
    shown: BTreeMap<String, Shown>,
}

impl Tracker {
    /// A tracker that counts a user idle after `idle_threshold_ms` without input.
    pub fn new(idle_threshold_ms: u64) -> Tracker {
        Tracker {
            idle_threshold_ms: i64::try_from(idle_threshold_ms).unwrap_or(i64::MAX),
            helper_stale_ms: HELPER_STALE_MS,
            sessions: BTreeMap::new(),
            running: BTreeMap::new(),
            shown: BTreeMap::new(),
        }
    }

    /// Applies one input and returns what changed for the accounts, in time order.
    pub fn apply(&mut self, input: Input) -> Vec<Observation> {
        let at = input.at_ms();
        match input {
            Input::Sessions { sessions, .. } => {
                let listed: BTreeSet<u32> = sessions
                    .iter()
                    .filter(|s| s.account.is_some())
                    .map(|s| s.id)
                    .collect();
                self.sessions.retain(|id, _| listed.contains(id));
                for info in sessions {
                    self.upsert(&info, at);
                }
            }
            Input::Change {
                session,
                change,
                info,
                ..
            } => {
                match change {
                    SessionChange::Logoff | SessionChange::Terminate => {
                        self.sessions.remove(&session);
                    }
                    _ => {
                        if let Some(info) = info.filter(|i| i.id == session) {
                            self.upsert(&info, at);
                        }
                    }
                }
                if let Some(s) = self.sessions.get_mut(&session) {
                    let (locked, state) = match change {
                        SessionChange::Lock => (true, s.state),
                        SessionChange::Unlock => (false, s.state),
                        SessionChange::ConsoleDisconnect | SessionChange::RemoteDisconnect => {
                            (s.locked, ConnectState::Disconnected)
                        }
                        SessionChange::ConsoleConnect | SessionChange::RemoteConnect => {
                            (s.locked, ConnectState::Active)
                        }
                        _ => (s.locked, s.state),
                    };
                    s.locked = locked;
                    s.state = state;
                }
            }
            Input::Sample {
                session, sample, ..
            } => {
                let threshold = self.idle_threshold_ms;
                if let Some(s) = self.sessions.get_mut(&session) {
                    let since = i64::try_from(sample.idle_ms).unwrap_or(i64::MAX).min(at);
                    let idle = since >= threshold;
                    let (was_idle, was_at) = s
                        .helper
                        .as_ref()
                        .map_or((false, at), |h| (h.idle, h.idle_at_ms));
                    let idle_at_ms = match (was_idle, idle) {
                        (false, true) => at - since + threshold,
                        (true, false) => at - since,
                        _ => was_at,
                    };
                    let front = sample
                        .exe
                        .as_deref()
                        .and_then(app_name_from_path)
                        .map(|name| App {
                            name,
                            title: sample.title.clone(),
                        });
                    s.helper = Some(Helper {
                        idle,
                        idle_at_ms,
                        input_at_ms: at - since,
                        front,
                        seen_ms: at,
                    });
                }
            }
            Input::HelperGone { session, .. } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.helper = None;
                }
            }
        }
        self.emit(at)
    }

    /// Sessions with a logged-on account and no live helper at `now_ms`: where a
    /// helper should be started, and whose running processes stand in for it.
    pub fn sessions_without_helper(&self, now_ms: i64) -> BTreeMap<u32, String> {
        self.sessions
            .iter()
            .filter(|(_, s)| !self.helper_live(s, now_ms))
            .map(|(id, s)| (*id, s.account.clone()))
            .collect()
    }

    /// Takes the running applications of accounts without a live helper (as read
    /// at `now_ms`) and returns what changed, including helpers that went stale.
    pub fn running(&mut self, now_ms: i64, apps: BTreeMap<String, Vec<App>>) -> Vec<Observation> {
        self.running = apps;
        self.emit(now_ms)
    }

    /// The accounts logged on now.
    pub fn accounts(&self) -> BTreeSet<String> {
        self.sessions.values().map(|s| s.account.clone()).collect()
    }

    fn upsert(&mut self, info: &SessionInfo, at: i64) {
        let Some(account) = info.account.clone() else {
            self.sessions.remove(&info.id);
            return;
        };
        let logon_ms = info.logon_ms.unwrap_or(at).min(at);
        let s = self.sessions.entry(info.id).or_insert_with(|| Session {
            account: account.clone(),
            logon_ms,
            state: info.state,
            locked: false,
            helper: None,
        });
        if s.account != account {
            // The session was reused by another user between two looks.
            *s = Session {
                account,
                logon_ms,
                state: info.state,
                locked: false,
                helper: None,
            };
        }
        s.locked = info.locked.unwrap_or(s.locked);
        s.state = info.state;
    }

    fn helper_live(&self, s: &Session, now_ms: i64) -> bool {
        s.helper
            .as_ref()
            .is_some_and(|h| now_ms - h.seen_ms <= self.helper_stale_ms)
    }

    fn views(&self, now_ms: i64) -> BTreeMap<String, View> {
        let mut by_account: BTreeMap<&str, Vec<&Session>> = BTreeMap::new();
        for s in self.sessions.values() {
            by_account.entry(&s.account).or_default().push(s);
        }
        by_account
            .into_iter()
            .map(|(account, sessions)| {
                let logon_ms = sessions.iter().map(|s| s.logon_ms).min().unwrap_or(now_ms);
                let locked = sessions.iter().all(|s| s.away());
                let helpers: Vec<&Helper> = sessions
                    .iter()
                    .filter(|s| !s.away() && self.helper_live(s, now_ms))
                    .filter_map(|s| s.helper.as_ref())
                    .collect();
                let idle = !helpers.is_empty() && helpers.iter().all(|h| h.idle);
                let idle_at_ms = helpers.iter().map(|h| h.idle_at_ms).max().unwrap_or(now_ms);
                let apps = if locked || idle {
                    None
                } else if let Some(h) = helpers
                    .iter()
                    .filter(|h| !h.idle)
                    .max_by_key(|h| h.input_at_ms)
                {
                    Some((AppsBasis::Foreground, h.front.iter().cloned().collect()))
                } else {
                    self.running
                        .get(account)
                        .map(|apps| (AppsBasis::Running, apps.clone()))
                };
                (
                    account.to_owned(),
                    View {
                        logon_ms,
                        locked,
                        idle,
                        idle_at_ms,
                        apps,
                    },
                )
            })
            .collect()
    }

    /// Reports the differences between the accounts' views at `at` and what was
    /// reported before. Views are diffed after every input, so a change of lock
    /// state happened at `at`; an idle change happened when the helper's idle
    /// time says, kept between the account's previous observation and `at`.
    fn emit(&mut self, at: i64) -> Vec<Observation> {
        let views = self.views(at);
        let mut out = Vec::new();
        let obs = |at_ms: i64, account: &str, kind: SessionKind| Observation::Session {
            at_ms,
            account: account.to_owned(),
            kind,
        };
        let gone: Vec<String> = self
            .shown
            .keys()
            .filter(|a| !views.contains_key(*a))
            .cloned()
            .collect();
        for account in gone {
            self.shown.remove(&account);
            out.push(obs(at, &account, SessionKind::Logoff));
        }
        for (account, v) in views {
            let shown = self.shown.entry(account.clone()).or_insert_with(|| {
                out.push(obs(v.logon_ms.min(at), &account, SessionKind::Logon));
                Shown {
                    locked: false,
                    idle: false,
                    apps: None,
                    last_ms: v.logon_ms.min(at),
                }
            });
            if v.locked != shown.locked {
                shown.locked = v.locked;
                shown.last_ms = at;
                let kind = if v.locked {
                    SessionKind::Lock
                } else {
                    SessionKind::Unlock
                };
                out.push(obs(at, &account, kind));
            }
            if v.idle != shown.idle {
                shown.idle = v.idle;
                let t = v
                    .idle_at_ms
                    .clamp(shown.last_ms.max(v.logon_ms).min(at), at);
                shown.last_ms = t;
                let kind = if v.idle {
                    SessionKind::IdleStart
                } else {
                    SessionKind::IdleEnd
                };
                out.push(obs(t, &account, kind));
            }
            match v.apps {
                None => shown.apps = None,
                Some(apps) if shown.apps.as_ref() != Some(&apps) => {
                    out.push(Observation::Apps {
                        at_ms: at,
                        account: account.clone(),
                        basis: apps.0,
                        apps: apps.1.clone(),
                    });
                    shown.apps = Some(apps);
                }
                Some(_) => {}
            }
        }
        out.sort_by_key(Observation::at_ms);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_helper_the_service_started_speaks_for_a_session() {
        let launched = Launched::default();
        assert!(!launched.is_helper(2, 4100), "nothing started yet");
        launched.record(2, 4100);
        assert!(launched.is_helper(2, 4100));
        assert!(
            !launched.is_helper(2, 4200),
            "another process of the session"
        );
        assert!(
            !launched.is_helper(3, 4100),
            "the helper of another session"
        );
        launched.record(2, 4300);
        assert!(
            !launched.is_helper(2, 4100),
            "a restarted helper replaces the old one"
        );
        assert!(launched.is_helper(2, 4300));
    }

    // 2026-11-24T00:41:00Z and friends: fixed instants, no clock.
    const T0: i64 = 1_795_480_860_000;
    const MIN: i64 = 60_000;

    fn info(id: u32, account: &str, locked: Option<bool>) -> SessionInfo {
        SessionInfo {
            id,
            account: (!account.is_empty()).then(|| account.to_owned()),
            state: ConnectState::Active,
            locked,
            logon_ms: None,
        }
    }

    fn sess(at_ms: i64, account: &str, kind: SessionKind) -> Observation {
        Observation::Session {
            at_ms,
            account: account.to_owned(),
            kind,
        }
    }

    fn change(at_ms: i64, session: u32, change: SessionChange, account: &str) -> Input {
        Input::Change {
            at_ms,
            session,
            change,
            info: Some(info(session, account, None)),
        }
    }

    fn sample(at_ms: i64, session: u32, idle_ms: u64, exe: Option<&str>, title: &str) -> Input {
        Input::Sample {
            at_ms,
            session,
            sample: HelperSample {
                v: 1,
                idle_ms,
                exe: exe.map(str::to_owned),
                title: (!title.is_empty()).then(|| title.to_owned()),
            },
        }
    }

    fn fg(at_ms: i64, account: &str, name: &str, title: &str) -> Observation {
        Observation::Apps {
            at_ms,
            account: account.to_owned(),
            basis: AppsBasis::Foreground,
            apps: vec![App {
                name: name.to_owned(),
                title: (!title.is_empty()).then(|| title.to_owned()),
            }],
        }
    }

    #[test]
    fn raw_values_from_windows() {
        assert_eq!(SessionChange::from_raw(5), Some(SessionChange::Logon));
        assert_eq!(SessionChange::from_raw(6), Some(SessionChange::Logoff));
        assert_eq!(SessionChange::from_raw(7), Some(SessionChange::Lock));
        assert_eq!(SessionChange::from_raw(8), Some(SessionChange::Unlock));
        assert_eq!(
            SessionChange::from_raw(2),
            Some(SessionChange::ConsoleDisconnect)
        );
        assert_eq!(SessionChange::from_raw(0), None);
        assert_eq!(SessionChange::from_raw(12), None);
        assert_eq!(ConnectState::from_raw(0), ConnectState::Active);
        assert_eq!(ConnectState::from_raw(4), ConnectState::Disconnected);
        assert_eq!(ConnectState::from_raw(42), ConnectState::Down);
        assert_eq!(lock_flag(0), Some(true));
        assert_eq!(lock_flag(1), Some(false));
        assert_eq!(lock_flag(-1), None);
        // 2026-11-24T00:41:00Z as a FILETIME.
        assert_eq!(filetime_to_ms((T0 + 11_644_473_600_000) * 10_000), Some(T0));
        assert_eq!(filetime_to_ms(0), None);
        assert_eq!(
            account_name("zhangsan", "OFFICE\0"),
            Some("OFFICE\\zhangsan".into())
        );
        assert_eq!(account_name("", "OFFICE"), None);
        assert_eq!(account_name("lisi\0", ""), Some("lisi".into()));
    }

    #[test]
    fn idle_time_survives_the_tick_count_wrapping() {
        assert_eq!(idle_ms(10_000, 4_000), 6_000);
        // GetTickCount wrapped after 49.7 days; the last input was just before.
        assert_eq!(idle_ms(1_000, u32::MAX - 999), 2_000);
        assert_eq!(idle_ms(5, 5), 0);
    }

    #[test]
    fn helper_lines_parse_and_round_trip() {
        let s = HelperSample {
            v: 1,
            idle_ms: 1234,
            exe: Some(r"C:\Program Files\Tencent\WeChat\WeChat.exe".into()),
            title: Some("文件传输助手".into()),
        };
        assert_eq!(parse_sample(&s.encode()), Ok(s));
        assert_eq!(
            parse_sample(r#"{"v":1,"idle_ms":0}"#),
            Ok(HelperSample {
                v: 1,
                idle_ms: 0,
                exe: None,
                title: None
            })
        );
        let blank = parse_sample(r#"{"v":1,"idle_ms":5,"exe":"","title":"  "}"#).unwrap();
        assert_eq!((blank.exe, blank.title), (None, None));
        let long = format!(r#"{{"v":1,"idle_ms":5,"title":"{}"}}"#, "长".repeat(1000));
        assert_eq!(
            parse_sample(&long).unwrap().title.unwrap().chars().count(),
            MAX_TITLE_CHARS
        );
        for bad in [
            "",
            "{",
            "not json",
            r#"{"v":2,"idle_ms":5}"#,
            r#"{"v":1,"idle_ms":-5}"#,
            r#"{"v":1}"#,
            r#"{"v":1,"idle_ms":5,"account":"boss"}"#,
        ] {
            assert!(parse_sample(bad).is_err(), "{bad:?} should be refused");
        }
        let huge = format!(
            r#"{{"v":1,"idle_ms":5,"title":"{}"}}"#,
            "x".repeat(MAX_LINE)
        );
        assert!(parse_sample(&huge).unwrap_err().contains("too long"));
    }

    #[test]
    fn app_names_from_windows_paths() {
        let cases = [
            (
                r"C:\Program Files\Tencent\WeChat\WeChat.exe",
                Some("WeChat"),
            ),
            (r"C:\Windows\explorer.EXE", Some("explorer")),
            ("QQMusic.exe", Some("QQMusic")),
            (r"D:\Games\game", Some("game")),
            (r"C:\dir\", None),
            ("", None),
            (".exe", Some(".exe")),
        ];
        for (path, want) in cases {
            assert_eq!(app_name_from_path(path).as_deref(), want, "{path}");
        }
        assert!(is_plumbing("svchost") && is_plumbing("SVCHOST") && is_plumbing("explorer"));
        assert!(!is_plumbing("WeChat") && !is_plumbing("WINWORD"));
    }

    #[test]
    fn the_inbox_hands_over_in_time_order_and_stays_bounded() {
        let inbox = Inbox::default();
        let other = inbox.clone();
        other.push(Input::HelperGone {
            at_ms: 3,
            session: 1,
        });
        inbox.push(Input::HelperGone {
            at_ms: 1,
            session: 1,
        });
        assert_eq!(
            inbox.drain().iter().map(Input::at_ms).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert!(other.drain().is_empty());
        for i in 0..(INBOX_MAX as i64 + 5) {
            inbox.push(Input::HelperGone {
                at_ms: i,
                session: 1,
            });
        }
        let all = inbox.drain();
        assert_eq!(all.len(), INBOX_MAX);
        assert_eq!(all[0].at_ms(), 5, "the oldest are dropped");
        assert_eq!(
            helper_command_line(r"C:\Program Files\kaoqin\kaoqin-agent.exe"),
            r#""C:\Program Files\kaoqin\kaoqin-agent.exe" session-helper"#
        );
    }

    #[test]
    fn sessions_open_at_start_are_logons_at_their_logon_time_and_locks() {
        let mut t = Tracker::new(300_000);
        let obs = t.apply(Input::Sessions {
            at_ms: T0 + 60 * MIN,
            sessions: vec![
                info(0, "", None), // services
                SessionInfo {
                    logon_ms: Some(T0),
                    ..info(1, "zhangsan", Some(false))
                },
                SessionInfo {
                    logon_ms: Some(T0 + 5 * MIN),
                    ..info(2, "lisi", Some(true))
                },
                SessionInfo {
                    state: ConnectState::Listen,
                    ..info(65536, "", None)
                },
            ],
        });
        assert_eq!(
            obs,
            vec![
                sess(T0, "zhangsan", SessionKind::Logon),
                sess(T0 + 5 * MIN, "lisi", SessionKind::Logon),
                sess(T0 + 60 * MIN, "lisi", SessionKind::Lock),
            ]
        );
        // The same enumeration again: nothing new.
        let again = t.apply(Input::Sessions {
            at_ms: T0 + 61 * MIN,
            sessions: vec![
                SessionInfo {
                    logon_ms: Some(T0),
                    ..info(1, "zhangsan", Some(false))
                },
                SessionInfo {
                    logon_ms: Some(T0 + 5 * MIN),
                    ..info(2, "lisi", Some(true))
                },
            ],
        });
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(
            t.accounts(),
            ["lisi".to_owned(), "zhangsan".to_owned()].into()
        );
    }

    #[test]
    fn a_day_of_notifications_and_samples() {
        let mut t = Tracker::new(300_000);
        let mut all = Vec::new();
        let mut feed = |i: Input| all.extend(t.apply(i));
        feed(change(T0, 1, SessionChange::Logon, "zhangsan"));
        feed(sample(
            T0 + MIN,
            1,
            2_000,
            Some(r"C:\Office\WINWORD.EXE"),
            "通知.docx",
        ));
        // Same window: nothing new.
        feed(sample(
            T0 + MIN + 5_000,
            1,
            1_000,
            Some(r"C:\Office\WINWORD.EXE"),
            "通知.docx",
        ));
        feed(sample(
            T0 + 2 * MIN,
            1,
            500,
            Some(r"C:\WeChat\WeChat.exe"),
            "文件传输助手",
        ));
        // Walks away: idle passes 5 minutes at T0+2min+10s+5min.
        feed(sample(
            T0 + 9 * MIN,
            1,
            410_000,
            Some(r"C:\WeChat\WeChat.exe"),
            "文件传输助手",
        ));
        // Back at T0+10min.
        feed(sample(
            T0 + 10 * MIN + 3_000,
            1,
            3_000,
            Some(r"C:\WeChat\WeChat.exe"),
            "文件传输助手",
        ));
        feed(change(T0 + 20 * MIN, 1, SessionChange::Lock, "zhangsan"));
        // The lock screen has no foreground window; still locked.
        feed(sample(T0 + 21 * MIN, 1, 60_000, None, ""));
        feed(change(T0 + 30 * MIN, 1, SessionChange::Unlock, "zhangsan"));
        feed(sample(
            T0 + 30 * MIN + 2_000,
            1,
            100,
            Some(r"C:\Office\WINWORD.EXE"),
            "通知.docx",
        ));
        feed(Input::Change {
            at_ms: T0 + 40 * MIN,
            session: 1,
            change: SessionChange::Logoff,
            info: None,
        });
        let z = "zhangsan";
        assert_eq!(
            all,
            vec![
                sess(T0, z, SessionKind::Logon),
                fg(T0 + MIN, z, "WINWORD", "通知.docx"),
                fg(T0 + 2 * MIN, z, "WeChat", "文件传输助手"),
                sess(T0 + 2 * MIN + 10_000 + 5 * MIN, z, SessionKind::IdleStart),
                sess(T0 + 10 * MIN, z, SessionKind::IdleEnd),
                fg(T0 + 10 * MIN + 3_000, z, "WeChat", "文件传输助手"),
                sess(T0 + 20 * MIN, z, SessionKind::Lock),
                sess(T0 + 30 * MIN, z, SessionKind::Unlock),
                fg(T0 + 30 * MIN + 2_000, z, "WINWORD", "通知.docx"),
                sess(T0 + 40 * MIN, z, SessionKind::Logoff),
            ]
        );
    }

    #[test]
    fn without_a_helper_running_processes_stand_in_and_a_stale_helper_ends() {
        let mut t = Tracker::new(300_000);
        let z = "zhangsan";
        assert_eq!(
            t.apply(change(T0, 1, SessionChange::Logon, z)),
            vec![sess(T0, z, SessionKind::Logon)]
        );
        assert_eq!(t.sessions_without_helper(T0), [(1, z.to_owned())].into());
        let running = |names: &[&str]| -> BTreeMap<String, Vec<App>> {
            [(
                z.to_owned(),
                names
                    .iter()
                    .map(|n| App {
                        name: (*n).to_owned(),
                        title: None,
                    })
                    .collect(),
            )]
            .into()
        };
        let obs = t.running(T0 + 15_000, running(&["QQMusic", "WINWORD"]));
        assert!(matches!(
            obs.as_slice(),
            [Observation::Apps { basis: AppsBasis::Running, apps, .. }] if apps.len() == 2
        ));
        assert!(
            t.running(T0 + 30_000, running(&["QQMusic", "WINWORD"]))
                .is_empty()
        );

        // A helper connects: the foreground replaces the running list.
        assert_eq!(
            t.apply(sample(T0 + 40_000, 1, 0, Some(r"C:\x\et.exe"), "预算.xlsx")),
            vec![fg(T0 + 40_000, z, "et", "预算.xlsx")]
        );
        assert!(t.sessions_without_helper(T0 + 40_000).is_empty());
        // It falls silent: after HELPER_STALE_MS, running processes again.
        let later = T0 + 40_000 + HELPER_STALE_MS + 1;
        assert_eq!(t.sessions_without_helper(later), [(1, z.to_owned())].into());
        let obs = t.running(later, running(&["et"]));
        assert!(matches!(
            obs.as_slice(),
            [Observation::Apps {
                basis: AppsBasis::Running,
                ..
            }]
        ));
        // A helper that said it was idle and went away leaves the account not idle.
        t.apply(sample(later + 1, 1, 400_000, None, ""));
        let obs = t.apply(Input::HelperGone {
            at_ms: later + 2,
            session: 1,
        });
        assert_eq!(obs[0], sess(later + 2, z, SessionKind::IdleEnd));
    }

    #[test]
    fn two_sessions_of_one_account_are_one_account() {
        let mut t = Tracker::new(300_000);
        let z = "zhangsan";
        let mut all = Vec::new();
        all.extend(t.apply(change(T0, 1, SessionChange::Logon, z)));
        all.extend(t.apply(change(T0 + MIN, 3, SessionChange::Logon, z)));
        // Locking one session leaves the other one in use.
        all.extend(t.apply(change(T0 + 2 * MIN, 1, SessionChange::Lock, z)));
        // Disconnecting the other (a closed remote desktop): nobody is at either.
        all.extend(t.apply(change(T0 + 3 * MIN, 3, SessionChange::RemoteDisconnect, z)));
        all.extend(t.apply(change(T0 + 4 * MIN, 3, SessionChange::RemoteConnect, z)));
        all.extend(t.apply(Input::Change {
            at_ms: T0 + 5 * MIN,
            session: 3,
            change: SessionChange::Logoff,
            info: None,
        }));
        all.extend(t.apply(Input::Change {
            at_ms: T0 + 6 * MIN,
            session: 1,
            change: SessionChange::Logoff,
            info: None,
        }));
        assert_eq!(
            all,
            vec![
                sess(T0, z, SessionKind::Logon),
                sess(T0 + 3 * MIN, z, SessionKind::Lock),
                sess(T0 + 4 * MIN, z, SessionKind::Unlock),
                // Session 3 ends; session 1 is still locked.
                sess(T0 + 5 * MIN, z, SessionKind::Lock),
                sess(T0 + 6 * MIN, z, SessionKind::Logoff),
            ]
        );
    }

    #[test]
    fn reconciling_corrects_missed_notifications_and_reused_sessions() {
        let mut t = Tracker::new(300_000);
        t.apply(change(T0, 1, SessionChange::Logon, "zhangsan"));
        // The logoff notification was missed; session 1 is now lisi's.
        let obs = t.apply(Input::Sessions {
            at_ms: T0 + 60 * MIN,
            sessions: vec![info(1, "lisi", Some(false))],
        });
        assert_eq!(
            obs,
            vec![
                sess(T0 + 60 * MIN, "zhangsan", SessionKind::Logoff),
                sess(T0 + 60 * MIN, "lisi", SessionKind::Logon),
            ]
        );
        // A missed lock is picked up from WTSSessionInfoEx's flags.
        let obs = t.apply(Input::Sessions {
            at_ms: T0 + 61 * MIN,
            sessions: vec![info(1, "lisi", Some(true))],
        });
        assert_eq!(obs, vec![sess(T0 + 61 * MIN, "lisi", SessionKind::Lock)]);
        // Where Windows does not say, the notified state stands.
        let obs = t.apply(Input::Sessions {
            at_ms: T0 + 62 * MIN,
            sessions: vec![info(1, "lisi", None)],
        });
        assert!(obs.is_empty());
        // Samples from a session nobody is logged on to are ignored.
        assert!(
            t.apply(sample(T0 + 63 * MIN, 7, 0, Some("x.exe"), ""))
                .is_empty()
        );
    }

    #[test]
    fn a_helper_backs_off_while_the_service_is_away_and_gives_up_in_time() {
        let mut tries = ServiceTries::new(120_000);
        let mut now = 0;
        let mut waits = Vec::new();
        while let Some(wait) = tries.failed(now) {
            waits.push(wait);
            now += wait as i64;
        }
        assert_eq!(
            waits,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 57_000],
            "doubling, the last wait ending at the give-up time"
        );
        assert_eq!(now, 120_000);
        // Back before the give-up time: the count starts again.
        let mut tries = ServiceTries::new(120_000);
        assert_eq!(tries.failed(0), Some(1_000));
        assert_eq!(tries.failed(1_000), Some(2_000));
        tries.reached();
        assert_eq!(tries.failed(500_000), Some(1_000));
        assert_eq!(tries.failed(619_999), Some(1));
        assert_eq!(tries.failed(620_000), None);
        // Nothing to wait for.
        assert_eq!(ServiceTries::new(0).failed(7), None);
    }
}

//! What an agent records of what happened on this PC: the events it spools and
//! delivers. These are domain types; `convert.rs` is the one place that turns them
//! into protobuf for the wire.
//!
//! What may appear here is exactly what ARCHITECTURE.md lists as leaving a PC:
//! session events with the OS account, seconds per category, heartbeats, agent
//! lifecycle and data-gap notices. There is no field for a title, URL or process name.

use serde::{Deserialize, Serialize};

/// What a user's session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    Logon,
    Logoff,
    Lock,
    Unlock,
    IdleStart,
    IdleEnd,
}

impl SessionKind {
    /// Stable lower-case name, as used in replay files and in the spool.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Logon => "logon",
            SessionKind::Logoff => "logoff",
            SessionKind::Lock => "lock",
            SessionKind::Unlock => "unlock",
            SessionKind::IdleStart => "idle_start",
            SessionKind::IdleEnd => "idle_end",
        }
    }

    /// The words `kaoqin-agent show` uses for it.
    pub fn plain_words(self) -> &'static str {
        match self {
            SessionKind::Logon => "logged on",
            SessionKind::Logoff => "logged off",
            SessionKind::Lock => "locked the screen",
            SessionKind::Unlock => "unlocked the screen",
            SessionKind::IdleStart => "went idle",
            SessionKind::IdleEnd => "came back from idle",
        }
    }
}

/// How the seconds of a usage event were attributed to an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageBasis {
    /// The application was in the foreground while the user was active.
    Foreground,
    /// The desktop does not say which window is in front: the application was
    /// running in the user's session while the user was active.
    Running,
}

/// Why the agent started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleReason {
    SystemBoot,
    SystemShutdown,
    ServiceStart,
    ServiceStop,
    CrashRestart,
    Replay,
}

/// The agent started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleKind {
    Start,
    Stop,
}

/// One thing the agent recorded, before it has a seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Session {
        kind: SessionKind,
        account: String,
    },
    Usage {
        account: String,
        /// The interval `[start_ms, end_ms)` the seconds were counted in.
        start_ms: i64,
        end_ms: i64,
        category: String,
        active_seconds: u32,
        basis: UsageBasis,
    },
    Heartbeat {
        interval_seconds: u32,
        accounts: Vec<String>,
    },
    Lifecycle {
        kind: LifecycleKind,
        reason: LifecycleReason,
        agent_version: String,
        /// For a start after a crash: when the previous run was last seen alive.
        previous_seen_ms: Option<i64>,
    },
    DataGap {
        dropped_events: u64,
        from_ms: i64,
        to_ms: i64,
        reason: String,
    },
    /// The PC's clock was set while the agent ran: new minus old (negative: set
    /// back); the event's instant is on the new clock.
    ClockJump {
        jump_ms: i64,
    },
}

impl EventKind {
    /// A short stable name for the kind of event (`session`, `usage`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Session { .. } => "session",
            EventKind::Usage { .. } => "usage",
            EventKind::Heartbeat { .. } => "heartbeat",
            EventKind::Lifecycle { .. } => "lifecycle",
            EventKind::DataGap { .. } => "data_gap",
            EventKind::ClockJump { .. } => "clock_jump",
        }
    }

    /// The OS account the event is about, if it is about one.
    pub fn account(&self) -> Option<&str> {
        match self {
            EventKind::Session { account, .. } | EventKind::Usage { account, .. } => Some(account),
            _ => None,
        }
    }
}

/// An event with its instant (agent clock, UTC epoch milliseconds) and, once
/// spooled, its seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: EventKind,
}

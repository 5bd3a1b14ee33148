//! What the agents told us, in the shape the rules need.
//!
//! A [`Signal`] is one stored agent event, already converted from protobuf and already
//! corrected by the collector for that PC's measured clock offset. The rules never see
//! protobuf, SQL rows or receive times.
//!
//! What must stay true: the rules depend only on the *set* of signals. [`normalize`]
//! puts any input into one canonical order without duplicates, so the same set of
//! events, delivered in any order and any number of times, gives the same verdict.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One event reported by an agent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Signal {
    /// When it happened, already corrected by the PC's measured clock offset.
    pub at: Timestamp,
    /// The agent id of the PC that reported it.
    pub pc: String,
    /// What happened.
    pub kind: SignalKind,
}

/// What an agent reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignalKind {
    /// A change of an OS session of `account`.
    Session {
        /// The OS account name.
        account: String,
        /// Which change.
        kind: SessionKind,
    },
    /// Active seconds of one category over `[start, end]` by `account`.
    Usage {
        /// The OS account name.
        account: String,
        /// Start of the interval.
        start: Timestamp,
        /// End of the interval.
        end: Timestamp,
        /// Category: `chat`, `games`, `media`, `downloads`, `nonwork_web`, `work`,
        /// `other` or an office's own.
        category: String,
        /// Seconds of input activity within the interval.
        active_seconds: u32,
    },
    /// The agent is alive; `accounts` are logged on right now.
    Heartbeat {
        /// The agent's heartbeat interval.
        interval_seconds: u32,
        /// OS accounts logged on at this instant.
        accounts: Vec<String>,
    },
    /// The agent started.
    AgentStart {
        /// Why it started.
        reason: StartReason,
        /// The last instant the previous run of the agent was alive, if it knows.
        previous_seen: Option<Timestamp>,
    },
    /// The agent stopped.
    AgentStop {
        /// Why it stopped.
        reason: StopReason,
    },
    /// The agent lost events over `[from, to]` (spool full, disk error...).
    DataGap {
        /// Start of the gap.
        from: Timestamp,
        /// End of the gap.
        to: Timestamp,
        /// How many events were dropped.
        dropped: u64,
    },
    /// The collector measured a large clock offset for this PC's batch. Evidence only:
    /// the other signals are already corrected.
    ClockOffset {
        /// PC clock minus collector clock, in milliseconds.
        offset_ms: i64,
    },
    /// The store first saw `account` on this PC at this instant (the collector's
    /// record, not an agent event). Evidence only: someone's first use of a PC.
    FirstSeen {
        /// The OS account, in lower case.
        account: String,
    },
    /// An event for `account` at this instant was refused by the collector (the
    /// trust rules, or malformed): the collector's record. Evidence only.
    Refused {
        /// The OS account, in lower case.
        account: String,
    },
    /// The PC was enrolled again at this instant: a reinstall, or its identity
    /// copied to another machine (the collector's record). Evidence only.
    Reenrolled,
    /// The PC's clock was set while the agent ran (new minus old). Evidence only:
    /// the signals on both sides of it are corrected by their own clock's offset.
    ClockJump {
        /// New clock minus old, in milliseconds.
        jump_ms: i64,
    },
}

/// A change of an OS session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// The account logged on.
    Logon,
    /// The account logged off.
    Logoff,
    /// The screen was locked.
    Lock,
    /// The screen was unlocked.
    Unlock,
    /// No input for the idle threshold.
    IdleStart,
    /// Input again after idle.
    IdleEnd,
}

impl SessionKind {
    /// Whether this change starts presence (logon, unlock, idle end).
    pub fn opens_presence(self) -> bool {
        matches!(self, Self::Logon | Self::Unlock | Self::IdleEnd)
    }

    /// Plain words for evidence.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Logon => "logged on",
            Self::Logoff => "logged off",
            Self::Lock => "locked the screen",
            Self::Unlock => "unlocked the screen",
            Self::IdleStart => "went idle",
            Self::IdleEnd => "came back from idle",
        }
    }
}

/// Why an agent started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartReason {
    /// The PC booted.
    SystemBoot,
    /// The service was started by hand or by the service manager.
    ServiceStart,
    /// The agent restarted after it crashed or was killed.
    CrashRestart,
    /// A scripted replay started.
    Replay,
}

/// Why an agent stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The PC is shutting down.
    SystemShutdown,
    /// The service was stopped.
    ServiceStop,
    /// A scripted replay ended.
    Replay,
}

impl StartReason {
    /// Plain words for evidence.
    pub fn describe(self) -> &'static str {
        match self {
            Self::SystemBoot => "agent started at system boot",
            Self::ServiceStart => "agent service started by hand",
            Self::CrashRestart => "agent restarted after a crash",
            Self::Replay => "agent started a replay",
        }
    }
}

impl StopReason {
    /// Plain words for evidence.
    pub fn describe(self) -> &'static str {
        match self {
            Self::SystemShutdown => "agent stopped for a system shutdown",
            Self::ServiceStop => "agent service stopped (not a shutdown)",
            Self::Replay => "agent ended a replay",
        }
    }
}

/// The canonical form of a set of signals: heartbeat account lists sorted and
/// deduplicated, then all signals sorted by (`at`, `pc`, kind) with exact duplicates
/// removed. Every rule runs on this form only.
pub fn normalize(signals: &[Signal]) -> Vec<Signal> {
    let mut out: Vec<Signal> = signals
        .iter()
        .cloned()
        .map(|mut s| {
            if let SignalKind::Heartbeat { accounts, .. } = &mut s.kind {
                accounts.sort();
                accounts.dedup();
            }
            s
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn normalize_sorts_and_dedupes() {
        let a = Signal {
            at: ts("2026-03-02T00:30:00Z"),
            pc: "pc-1".into(),
            kind: SignalKind::Heartbeat {
                interval_seconds: 60,
                accounts: vec!["b".into(), "a".into()],
            },
        };
        let b = Signal {
            at: ts("2026-03-02T00:29:00Z"),
            pc: "pc-1".into(),
            kind: SignalKind::AgentStop {
                reason: StopReason::SystemShutdown,
            },
        };
        let mut a2 = a.clone();
        if let SignalKind::Heartbeat { accounts, .. } = &mut a2.kind {
            accounts.reverse();
        }
        let n = normalize(&[a.clone(), b.clone(), a2, b.clone()]);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0], b);
        assert_eq!(n[1].at, a.at);
    }

    #[test]
    fn signals_round_trip_through_json() {
        let s = Signal {
            at: ts("2026-03-02T00:30:00Z"),
            pc: "pc-1".into(),
            kind: SignalKind::Session {
                account: "zhangsan".into(),
                kind: SessionKind::IdleEnd,
            },
        };
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"idle_end\""), "{j}");
        let back: Signal = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
    }
}

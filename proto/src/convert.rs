//! The one place where protobuf events become domain events and back.
//!
//! Decoding is also validation: a `pb::Event` that does not describe a possible
//! event is refused with a [`ConvertError`] that names the seq and the field, so
//! the collector can answer InvalidArgument with a message a person can act on.

use crate::event::{Event, EventKind, LifecycleKind, LifecycleReason, SessionKind, UsageBasis};
use crate::v1 as pb;

/// The longest account name or category accepted on the wire.
pub const MAX_NAME_LEN: usize = 256;
/// The most accounts a heartbeat may list.
pub const MAX_HEARTBEAT_ACCOUNTS: usize = 64;

/// Why a wire event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event seq {seq}: {field}: {problem}")]
pub struct ConvertError {
    pub seq: u64,
    pub field: &'static str,
    pub problem: String,
}

fn bad(seq: u64, field: &'static str, problem: impl Into<String>) -> ConvertError {
    ConvertError {
        seq,
        field,
        problem: problem.into(),
    }
}

fn name(seq: u64, field: &'static str, value: &str) -> Result<String, ConvertError> {
    if value.is_empty() {
        return Err(bad(seq, field, "is empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(bad(
            seq,
            field,
            format!("is longer than {MAX_NAME_LEN} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(seq, field, "contains control characters"));
    }
    Ok(value.to_owned())
}

impl From<SessionKind> for pb::SessionKind {
    fn from(k: SessionKind) -> Self {
        match k {
            SessionKind::Logon => pb::SessionKind::Logon,
            SessionKind::Logoff => pb::SessionKind::Logoff,
            SessionKind::Lock => pb::SessionKind::Lock,
            SessionKind::Unlock => pb::SessionKind::Unlock,
            SessionKind::IdleStart => pb::SessionKind::IdleStart,
            SessionKind::IdleEnd => pb::SessionKind::IdleEnd,
        }
    }
}

impl From<LifecycleReason> for pb::LifecycleReason {
    fn from(r: LifecycleReason) -> Self {
        match r {
            LifecycleReason::SystemBoot => pb::LifecycleReason::SystemBoot,
            LifecycleReason::SystemShutdown => pb::LifecycleReason::SystemShutdown,
            LifecycleReason::ServiceStart => pb::LifecycleReason::ServiceStart,
            LifecycleReason::ServiceStop => pb::LifecycleReason::ServiceStop,
            LifecycleReason::CrashRestart => pb::LifecycleReason::CrashRestart,
            LifecycleReason::Replay => pb::LifecycleReason::Replay,
        }
    }
}

impl From<&Event> for pb::Event {
    fn from(e: &Event) -> Self {
        use pb::event::Kind;
        let kind = match &e.kind {
            EventKind::Session { kind, account } => Kind::Session(pb::SessionEvent {
                kind: pb::SessionKind::from(*kind) as i32,
                account: account.clone(),
            }),
            EventKind::Usage {
                account,
                start_ms,
                end_ms,
                category,
                active_seconds,
                basis,
            } => Kind::Usage(pb::UsageEvent {
                account: account.clone(),
                start_ms: *start_ms,
                end_ms: *end_ms,
                category: category.clone(),
                active_seconds: *active_seconds,
                basis: match basis {
                    UsageBasis::Foreground => pb::UsageBasis::Foreground,
                    UsageBasis::Running => pb::UsageBasis::Running,
                } as i32,
            }),
            EventKind::Heartbeat {
                interval_seconds,
                accounts,
            } => Kind::Heartbeat(pb::Heartbeat {
                interval_seconds: *interval_seconds,
                accounts: accounts.clone(),
            }),
            EventKind::Lifecycle {
                kind,
                reason,
                agent_version,
                previous_seen_ms,
            } => Kind::Lifecycle(pb::Lifecycle {
                kind: match kind {
                    LifecycleKind::Start => pb::LifecycleKind::Start,
                    LifecycleKind::Stop => pb::LifecycleKind::Stop,
                } as i32,
                reason: pb::LifecycleReason::from(*reason) as i32,
                agent_version: agent_version.clone(),
                previous_seen_ms: previous_seen_ms.unwrap_or(0),
            }),
            EventKind::DataGap {
                dropped_events,
                from_ms,
                to_ms,
                reason,
            } => Kind::DataGap(pb::DataGap {
                dropped_events: *dropped_events,
                from_ms: *from_ms,
                to_ms: *to_ms,
                reason: reason.clone(),
            }),
            EventKind::ClockJump { jump_ms } => {
                Kind::ClockJump(pb::ClockJump { jump_ms: *jump_ms })
            }
        };
        pb::Event {
            seq: e.seq,
            at_ms: e.at_ms,
            kind: Some(kind),
        }
    }
}

impl TryFrom<&pb::Event> for Event {
    type Error = ConvertError;

    fn try_from(e: &pb::Event) -> Result<Self, ConvertError> {
        use pb::event::Kind;
        let seq = e.seq;
        if seq == 0 {
            return Err(bad(seq, "seq", "must be at least 1"));
        }
        if e.at_ms <= 0 {
            return Err(bad(seq, "at_ms", "must be a positive epoch millisecond"));
        }
        let kind = match &e.kind {
            None => return Err(bad(seq, "kind", "is not set")),
            Some(Kind::Session(s)) => EventKind::Session {
                kind: match pb::SessionKind::try_from(s.kind) {
                    Ok(pb::SessionKind::Logon) => SessionKind::Logon,
                    Ok(pb::SessionKind::Logoff) => SessionKind::Logoff,
                    Ok(pb::SessionKind::Lock) => SessionKind::Lock,
                    Ok(pb::SessionKind::Unlock) => SessionKind::Unlock,
                    Ok(pb::SessionKind::IdleStart) => SessionKind::IdleStart,
                    Ok(pb::SessionKind::IdleEnd) => SessionKind::IdleEnd,
                    _ => {
                        return Err(bad(
                            seq,
                            "session.kind",
                            format!("unknown value {}", s.kind),
                        ));
                    }
                },
                account: name(seq, "session.account", &s.account)?,
            },
            Some(Kind::Usage(u)) => {
                if u.end_ms <= u.start_ms {
                    return Err(bad(seq, "usage.end_ms", "is not after usage.start_ms"));
                }
                let span_s = (u.end_ms - u.start_ms + 999) / 1000;
                if i64::from(u.active_seconds) > span_s {
                    return Err(bad(
                        seq,
                        "usage.active_seconds",
                        format!("{} exceeds the interval's {span_s} s", u.active_seconds),
                    ));
                }
                EventKind::Usage {
                    account: name(seq, "usage.account", &u.account)?,
                    start_ms: u.start_ms,
                    end_ms: u.end_ms,
                    category: name(seq, "usage.category", &u.category)?,
                    active_seconds: u.active_seconds,
                    basis: match pb::UsageBasis::try_from(u.basis) {
                        Ok(pb::UsageBasis::Foreground) => UsageBasis::Foreground,
                        Ok(pb::UsageBasis::Running) => UsageBasis::Running,
                        _ => {
                            return Err(bad(
                                seq,
                                "usage.basis",
                                format!("unknown value {}", u.basis),
                            ));
                        }
                    },
                }
            }
            Some(Kind::Heartbeat(h)) => {
                if h.interval_seconds == 0 {
                    return Err(bad(seq, "heartbeat.interval_seconds", "must be at least 1"));
                }
                if h.accounts.len() > MAX_HEARTBEAT_ACCOUNTS {
                    return Err(bad(
                        seq,
                        "heartbeat.accounts",
                        format!("lists more than {MAX_HEARTBEAT_ACCOUNTS} accounts"),
                    ));
                }
                EventKind::Heartbeat {
                    interval_seconds: h.interval_seconds,
                    accounts: h
                        .accounts
                        .iter()
                        .map(|a| name(seq, "heartbeat.accounts", a))
                        .collect::<Result<_, _>>()?,
                }
            }
            Some(Kind::Lifecycle(l)) => EventKind::Lifecycle {
                kind: match pb::LifecycleKind::try_from(l.kind) {
                    Ok(pb::LifecycleKind::Start) => LifecycleKind::Start,
                    Ok(pb::LifecycleKind::Stop) => LifecycleKind::Stop,
                    _ => {
                        return Err(bad(
                            seq,
                            "lifecycle.kind",
                            format!("unknown value {}", l.kind),
                        ));
                    }
                },
                reason: match pb::LifecycleReason::try_from(l.reason) {
                    Ok(pb::LifecycleReason::SystemBoot) => LifecycleReason::SystemBoot,
                    Ok(pb::LifecycleReason::SystemShutdown) => LifecycleReason::SystemShutdown,
                    Ok(pb::LifecycleReason::ServiceStart) => LifecycleReason::ServiceStart,
                    Ok(pb::LifecycleReason::ServiceStop) => LifecycleReason::ServiceStop,
                    Ok(pb::LifecycleReason::CrashRestart) => LifecycleReason::CrashRestart,
                    Ok(pb::LifecycleReason::Replay) => LifecycleReason::Replay,
                    _ => {
                        return Err(bad(
                            seq,
                            "lifecycle.reason",
                            format!("unknown value {}", l.reason),
                        ));
                    }
                },
                agent_version: l.agent_version.chars().take(64).collect(),
                previous_seen_ms: (l.previous_seen_ms > 0).then_some(l.previous_seen_ms),
            },
            Some(Kind::DataGap(g)) => {
                if g.to_ms < g.from_ms {
                    return Err(bad(seq, "data_gap.to_ms", "is before data_gap.from_ms"));
                }
                EventKind::DataGap {
                    dropped_events: g.dropped_events,
                    from_ms: g.from_ms,
                    to_ms: g.to_ms,
                    reason: name(seq, "data_gap.reason", &g.reason)?,
                }
            }
            Some(Kind::ClockJump(j)) => {
                if j.jump_ms == 0 {
                    return Err(bad(seq, "clock_jump.jump_ms", "is 0"));
                }
                EventKind::ClockJump { jump_ms: j.jump_ms }
            }
        };
        Ok(Event {
            seq,
            at_ms: e.at_ms,
            kind,
        })
    }
}

/// Why a stored event's bytes could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum StoredKindError {
    #[error("not a protobuf event: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error(transparent)]
    Invalid(#[from] ConvertError),
}

/// The compact stored form of an event's kind: the protobuf encoding of the
/// event without its seq and instant, which a store keeps in columns of their
/// own. About a third of the event's JSON, and cheaper to write and read.
pub fn encode_stored_kind(e: &Event) -> Vec<u8> {
    let mut wire = pb::Event::from(e);
    wire.seq = 0;
    wire.at_ms = 0;
    prost::Message::encode_to_vec(&wire)
}

/// Reads back what [`encode_stored_kind`] wrote, given the seq and instant stored
/// beside it.
pub fn decode_stored_kind(
    seq: u64,
    at_ms: i64,
    bytes: &[u8],
) -> Result<EventKind, StoredKindError> {
    let mut wire: pb::Event = prost::Message::decode(bytes)?;
    wire.seq = seq;
    wire.at_ms = at_ms;
    Ok(Event::try_from(&wire)?.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Event> {
        let kinds = vec![
            EventKind::Session {
                kind: SessionKind::Unlock,
                account: "zhangsan".into(),
            },
            EventKind::Usage {
                account: "zhangsan".into(),
                start_ms: 1_000_000,
                end_ms: 1_300_000,
                category: "chat".into(),
                active_seconds: 120,
                basis: UsageBasis::Foreground,
            },
            EventKind::Heartbeat {
                interval_seconds: 60,
                accounts: vec!["zhangsan".into(), "lisi".into()],
            },
            EventKind::Lifecycle {
                kind: LifecycleKind::Start,
                reason: LifecycleReason::CrashRestart,
                agent_version: "0.1.0".into(),
                previous_seen_ms: Some(999),
            },
            EventKind::DataGap {
                dropped_events: 7,
                from_ms: 10,
                to_ms: 20,
                reason: "spool_full".into(),
            },
            EventKind::ClockJump {
                jump_ms: -86_400_000,
            },
        ];
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Event {
                seq: i as u64 + 1,
                at_ms: 1_700_000_000_000 + i as i64,
                kind,
            })
            .collect()
    }

    #[test]
    fn every_kind_round_trips() {
        for e in samples() {
            let wire = pb::Event::from(&e);
            assert_eq!(Event::try_from(&wire).unwrap(), e);
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_stored_form() {
        for e in samples() {
            let bytes = encode_stored_kind(&e);
            let json = serde_json::to_string(&e.kind).unwrap();
            assert!(
                bytes.len() * 2 < json.len(),
                "{} bytes stored against {} of JSON",
                bytes.len(),
                json.len()
            );
            assert_eq!(decode_stored_kind(e.seq, e.at_ms, &bytes).unwrap(), e.kind);
        }
        let err = decode_stored_kind(1, 1, b"{\"type\":").unwrap_err();
        assert!(matches!(err, StoredKindError::Decode(_)), "{err}");
        let no_kind = prost::Message::encode_to_vec(&pb::Event::default());
        let err = decode_stored_kind(4, 1, &no_kind).unwrap_err();
        assert_eq!(err.to_string(), "event seq 4: kind: is not set");
    }

    #[test]
    fn malformed_events_name_the_field() {
        let base = pb::Event::from(&samples()[1]);
        type Mutation = Box<dyn Fn(&mut pb::Event)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|e| e.seq = 0), "seq"),
            (Box::new(|e| e.kind = None), "kind"),
            (Box::new(|e| e.at_ms = -5), "at_ms"),
            (
                Box::new(|e| {
                    if let Some(pb::event::Kind::Usage(u)) = &mut e.kind {
                        u.end_ms = u.start_ms;
                    }
                }),
                "usage.end_ms",
            ),
            (
                Box::new(|e| {
                    if let Some(pb::event::Kind::Usage(u)) = &mut e.kind {
                        u.active_seconds = 301;
                    }
                }),
                "usage.active_seconds",
            ),
            (
                Box::new(|e| {
                    if let Some(pb::event::Kind::Usage(u)) = &mut e.kind {
                        u.category.clear();
                    }
                }),
                "usage.category",
            ),
            (
                Box::new(|e| {
                    if let Some(pb::event::Kind::Usage(u)) = &mut e.kind {
                        u.basis = 99;
                    }
                }),
                "usage.basis",
            ),
        ];
        for (mutate, field) in cases {
            let mut wire = base.clone();
            mutate(&mut wire);
            let err = Event::try_from(&wire).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().contains(field));
        }
    }
}

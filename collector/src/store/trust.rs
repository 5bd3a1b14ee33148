//! The trust rules at ingest: an agent's key lets it add to its own record, never
//! rewrite the past. Kept apart from SQL so every store applies the same rules.
//!
//! For each new event of a batch, in seq order (instants corrected by the batch's
//! measured clock offset):
//!
//! ```text
//!   seq       what the agent's seq scheme can produce: a spool starts at its clock's
//!             milliseconds times 1000 and counts up by one, so no seq lies beyond
//!             the collector's clock plus a year (a PC clock far ahead), times 1000,
//!             nor beyond the highest seq stored plus SEQ_SLACK
//!   instant   not before the agent's first enrolment (minus TOLERANCE_MS)
//!             not earlier than the latest instant stored from the agent (minus
//!             TOLERANCE_MS), which a recorded clock jump back lowers by its size
//! ```
//!
//! A replaying agent on a collector started with `--allow-replay` is exempt from
//! the instant rules (its script lies in the past), not from the seq rule.

use kaoqin_proto::event::{Event, EventKind};

/// How much earlier than what is stored an event may be: batches of one agent are
/// corrected by offsets measured a network round trip apart.
pub const TOLERANCE_MS: i64 = 2 * 60 * 1000;
/// Seqs beyond the highest stored one that are always possible (a spool that
/// dropped events, a replay of many days).
pub const SEQ_SLACK: u64 = 1_000_000;
/// How far ahead of the collector a PC clock that starts a spool may be.
pub const SEQ_CLOCK_AHEAD_MS: i64 = 366 * 24 * 3600 * 1000;

/// What is stored of one agent, as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentState {
    /// The highest seq stored.
    pub max_seq: u64,
    /// When it first enrolled (collector clock).
    pub enrolled_ms: i64,
    /// The latest corrected instant stored, lowered by recorded clock jumps.
    pub latest_at_ms: Option<i64>,
}

fn show(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{ms} ms"))
}

/// Checks the events of a batch whose seq is above `state.max_seq` (the others are
/// resends or refused as going backwards elsewhere). Returns the agent's new
/// `latest_at_ms`, or the refusal, which names the seq and both instants.
pub fn check_batch(
    state: &AgentState,
    events: &[Event],
    offset_ms: i64,
    received_ms: i64,
    replay: bool,
) -> Result<Option<i64>, String> {
    let by_clock = u64::try_from(received_ms.saturating_add(SEQ_CLOCK_AHEAD_MS))
        .unwrap_or(0)
        .saturating_mul(1000);
    let seq_limit = state.max_seq.saturating_add(SEQ_SLACK).max(by_clock);
    let mut latest = state.latest_at_ms;
    for e in events.iter().filter(|e| e.seq > state.max_seq) {
        if e.seq > seq_limit {
            return Err(format!(
                "event seq {}: seq: no agent's spool numbers events this high (at most {seq_limit} now, {} stored); the batch is refused and nothing of this agent changes",
                e.seq, state.max_seq
            ));
        }
        let at = e.at_ms.saturating_add(offset_ms);
        // Set back while running: what follows (the jump's own event included, on
        // the new clock) may be that much earlier.
        if let (Some(l), EventKind::ClockJump { jump_ms }) = (latest, &e.kind)
            && *jump_ms < 0
        {
            latest = Some(l.saturating_add(*jump_ms));
        }
        if !replay {
            if at < state.enrolled_ms.saturating_sub(TOLERANCE_MS) {
                return Err(format!(
                    "event seq {}: at_ms: {} (corrected) is before this agent first enrolled at {}; events from before enrolment are refused",
                    e.seq,
                    show(at),
                    show(state.enrolled_ms)
                ));
            }
            if let Some(l) = latest
                && at < l.saturating_sub(TOLERANCE_MS)
            {
                return Err(format!(
                    "event seq {}: at_ms: {} (corrected) is earlier than this agent's latest stored event at {}, and no clock jump it recorded explains it; history cannot be written after the fact",
                    e.seq,
                    show(at),
                    show(l)
                ));
            }
        }
        latest = Some(latest.map_or(at, |l| l.max(at)));
    }
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaoqin_proto::event::SessionKind;

    const ENROLLED: i64 = 1_795_000_000_000;
    const MIN: i64 = 60_000;

    fn ev(seq: u64, at_ms: i64) -> Event {
        Event {
            seq,
            at_ms,
            kind: EventKind::Session {
                kind: SessionKind::Logon,
                account: "lisi".into(),
            },
        }
    }

    fn state(max_seq: u64, latest: Option<i64>) -> AgentState {
        AgentState {
            max_seq,
            enrolled_ms: ENROLLED,
            latest_at_ms: latest,
        }
    }

    #[test]
    fn a_backdated_event_is_refused_naming_seq_and_both_instants() {
        let s = state(10, Some(ENROLLED + 60 * MIN));
        let now = ENROLLED + 61 * MIN;
        // In order, within the tolerance, or later: accepted.
        assert_eq!(
            check_batch(
                &s,
                &[ev(11, ENROLLED + 59 * MIN), ev(12, ENROLLED + 61 * MIN)],
                0,
                now,
                false
            ),
            Ok(Some(ENROLLED + 61 * MIN))
        );
        // A logon "last Monday": refused.
        let e = check_batch(&s, &[ev(11, ENROLLED + 30 * MIN)], 0, now, false).unwrap_err();
        assert!(
            e.starts_with("event seq 11: at_ms: ")
                && e.contains("is earlier than this agent's latest stored event at")
                && e.contains(&show(ENROLLED + 30 * MIN))
                && e.contains(&show(ENROLLED + 60 * MIN)),
            "{e}"
        );
        // The offset counts: the same instant from a clock an hour slow is fine.
        assert!(check_batch(&s, &[ev(11, ENROLLED)], 60 * MIN, now, false).is_ok());
        // Resends (seq at or below the stored one) are not judged here.
        assert!(check_batch(&s, &[ev(9, ENROLLED)], 0, now, false).is_ok());
    }

    #[test]
    fn a_recorded_clock_jump_back_allows_that_much_earlier_and_no_more() {
        let s = state(10, Some(ENROLLED + 120 * MIN));
        let now = ENROLLED + 121 * MIN;
        let jump = Event {
            seq: 11,
            at_ms: ENROLLED + 60 * MIN,
            kind: EventKind::ClockJump { jump_ms: -60 * MIN },
        };
        assert!(
            check_batch(
                &s,
                &[jump.clone(), ev(12, ENROLLED + 61 * MIN)],
                0,
                now,
                false
            )
            .is_ok()
        );
        assert!(
            check_batch(&s, &[jump, ev(12, ENROLLED + 30 * MIN)], 0, now, false).is_err(),
            "the jump explains an hour, not an hour and a half"
        );
    }

    #[test]
    fn events_before_enrolment_only_from_an_allowed_replay() {
        let s = AgentState {
            max_seq: 0,
            enrolled_ms: ENROLLED,
            latest_at_ms: None,
        };
        let past = ev(1, ENROLLED - 86_400_000);
        let e = check_batch(&s, std::slice::from_ref(&past), 0, ENROLLED, false).unwrap_err();
        assert!(e.contains("is before this agent first enrolled"), "{e}");
        assert_eq!(
            check_batch(&s, &[past], 0, ENROLLED, true),
            Ok(Some(ENROLLED - 86_400_000))
        );
    }

    #[test]
    fn a_seq_no_agent_can_reach_is_refused_even_from_a_replay() {
        let s = state(10, None);
        let now = ENROLLED + 61 * MIN;
        let e = check_batch(&s, &[ev(i64::MAX as u64, now)], 0, now, true).unwrap_err();
        assert!(
            e.starts_with(&format!("event seq {}: seq:", i64::MAX)),
            "{e}"
        );
        // A spool started by a clock a month ahead is fine.
        let month_ahead = (now + 30 * 24 * 60 * MIN) as u64 * 1000;
        assert!(check_batch(&s, &[ev(month_ahead, now)], 0, now, false).is_ok());
        assert!(check_batch(&s, &[ev(u64::MAX, now)], 0, now, false).is_err());
    }
}

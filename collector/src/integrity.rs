//! Integrity events: what the officer must see because the record may be
//! incomplete or tampered with. None of these is an absence; they are shown beside
//! the verdicts (which say "unknown" where data is missing), never folded into them.
//!
//! Listed per agent, each with the instant it happened (agent instants corrected by
//! the batch's measured clock offset):
//!
//! ```text
//!   agent_stopped   the agent stopped and the system did not shut down
//!                   (someone stopped the service, or uninstalled it)
//!   crash_restart   the agent started after a run that ended without a stop
//!   data_gap        events lost on the PC: spool_full, spool_corrupt,
//!                   rejected_by_collector, ... with how many
//!   clock_offset    a batch whose measured offset is at least the threshold
//!   clock_jump      the PC's clock was set while the agent ran (by how much)
//!   silent          no batch for more than N hours (or never)
//!   revoked         the agent's key was revoked
//!   refused         a batch refused by the trust rules or as malformed: what and why
//!                   (a forgery with a stolen key, or an agent that must be looked at)
//!   reenrolled      a known machine enrolled again (a reinstall, with a --reenroll token)
//!   reenrol_refused an enrolment with a known machine id and a token for new machines
//!                   only: someone tried to take that PC's identity
//!   account_first_seen  an OS account seen on a PC for the first time (whose it is):
//!                   the first use of a PC, or someone at another person's PC
//! ```
//!
//! `kaoqin-collector integrity` also lists, first, a State Council holiday notice
//! that is missing (agent `-`): `calendar_notice_missing` from 1 October for next
//! year, `calendar_provisional` in a year judged without one.
//!
//! Reads only; the list is derived from stored events, batches and agents each
//! time, so nothing here can go stale or be edited apart from them.

use crate::store::StoreError;
use crate::store::concerns::*;
use kaoqin_proto::event::{EventKind, LifecycleKind, LifecycleReason};

/// One thing the officer should look at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IntegrityItem {
    pub agent_id: String,
    pub hostname: String,
    /// `agent_stopped`, `crash_restart`, `data_gap`, `clock_offset`, `silent`, `revoked`;
    /// `calendar_notice_missing`, `calendar_provisional` (agent `-`).
    pub kind: &'static str,
    /// When (corrected), epoch milliseconds; for `silent`, when last seen (0: never).
    pub at_ms: i64,
    /// The event's seq, where it is one.
    pub seq: Option<u64>,
    /// The particulars, in words.
    pub detail: String,
}

/// What to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// Instants in `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Clock offsets of at least this much are listed.
    pub large_offset_ms: i64,
    /// Agents not seen since before `now_ms - silent_ms` are listed as silent.
    pub silent_ms: i64,
    pub now_ms: i64,
}

fn minutes(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    let s = ms.unsigned_abs() / 1000;
    format!("{sign}{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn instant(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// How many items of each kind, in kind order: `"data_gap 2", "refused 1"`.
pub fn counts(items: &[IntegrityItem]) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for i in items {
        *counts.entry(i.kind).or_default() += 1;
    }
    counts.iter().map(|(k, n)| format!("{k} {n}")).collect()
}

/// Every integrity item of the query, by agent then instant.
pub fn list(store: &dyn Stores, q: &Query) -> Result<Vec<IntegrityItem>, StoreError> {
    let mut items = Vec::new();
    for e in store.trouble_events(q.from_ms, q.to_ms)? {
        let (kind, detail) = match e.kind {
            EventKind::Lifecycle {
                kind: LifecycleKind::Stop,
                reason,
                ..
            } if !matches!(
                reason,
                LifecycleReason::SystemShutdown | LifecycleReason::Replay
            ) =>
            {
                (
                    "agent_stopped",
                    format!("the agent stopped ({reason:?}) while the system stayed up"),
                )
            }
            EventKind::Lifecycle {
                kind: LifecycleKind::Start,
                reason: LifecycleReason::CrashRestart,
                previous_seen_ms,
                ..
            } => (
                "crash_restart",
                match previous_seen_ms {
                    Some(p) => format!(
                        "started after a run that ended without a stop; last seen alive {} (agent clock)",
                        instant(p)
                    ),
                    None => "started after a run that ended without a stop".into(),
                },
            ),
            EventKind::DataGap {
                dropped_events,
                from_ms,
                to_ms,
                reason,
            } => (
                "data_gap",
                format!(
                    "{reason}: {dropped_events} events lost from {} to {} (agent clock)",
                    instant(from_ms),
                    instant(to_ms)
                ),
            ),
            EventKind::ClockJump { jump_ms } => (
                "clock_jump",
                format!(
                    "the PC's clock was set {} by {} while the agent ran",
                    if jump_ms < 0 { "back" } else { "forward" },
                    minutes(jump_ms.abs())
                ),
            ),
            _ => continue,
        };
        items.push(IntegrityItem {
            agent_id: e.agent_id,
            hostname: e.hostname,
            kind,
            at_ms: e.at_ms,
            seq: Some(e.seq),
            detail,
        });
    }
    // Accounts new to a PC, with whose they are.
    for f in store.first_sightings(q.from_ms, q.to_ms)? {
        let whose = match f.owner {
            Some((id, name)) => format!("{name}, {id}"),
            None => "nobody in the staff directory".into(),
        };
        items.push(IntegrityItem {
            detail: format!("{} ({whose}) first seen on {}", f.account, f.hostname),
            agent_id: f.agent_id,
            hostname: f.hostname,
            kind: "account_first_seen",
            at_ms: f.first_ms,
            seq: None,
        });
    }
    // What the collector itself recorded: refusals and enrolments.
    for r in store.recorded_events(q.from_ms, q.to_ms)? {
        items.push(IntegrityItem {
            agent_id: r.agent_id,
            hostname: r.hostname,
            kind: match r.kind.as_str() {
                "refused" => "refused",
                "reenrolled" => "reenrolled",
                "reenrol_refused" => "reenrol_refused",
                _ => "other",
            },
            at_ms: r.at_ms,
            seq: r.seq,
            detail: r.detail,
        });
    }
    for b in store.offset_batches(q.from_ms, q.to_ms, q.large_offset_ms)? {
        items.push(IntegrityItem {
            agent_id: b.agent_id,
            hostname: b.hostname,
            kind: "clock_offset",
            at_ms: b.received_ms,
            seq: None,
            detail: format!(
                "the PC's clock was off by {} (collector minus agent) on the batch of seq {}..{}; its instants were corrected",
                minutes(b.offset_ms),
                b.first_seq,
                b.last_seq
            ),
        });
    }
    for a in store.agents()? {
        let (agent_id, hostname, last_seen, revoked, enrolled) = (
            a.id,
            a.hostname,
            a.last_seen_ms,
            a.revoked_ms,
            a.enrolled_ms,
        );
        if let Some(at) = revoked {
            if at >= q.from_ms && at < q.to_ms {
                items.push(IntegrityItem {
                    agent_id: agent_id.clone(),
                    hostname: hostname.clone(),
                    kind: "revoked",
                    at_ms: at,
                    seq: None,
                    detail: "the agent's key was revoked; it sends nothing until enrolled again"
                        .into(),
                });
            }
            continue;
        }
        let since = last_seen.unwrap_or(enrolled);
        if q.now_ms.saturating_sub(since) > q.silent_ms {
            items.push(IntegrityItem {
                agent_id,
                hostname,
                kind: "silent",
                at_ms: last_seen.unwrap_or(0),
                seq: None,
                detail: match last_seen {
                    Some(t) => format!(
                        "nothing received for {} (last batch {})",
                        minutes(q.now_ms - t),
                        instant(t)
                    ),
                    None => format!("enrolled {} and never sent anything", instant(enrolled)),
                },
            });
        }
    }
    items.sort_by(|a, b| (&a.agent_id, a.at_ms, a.seq).cmp(&(&b.agent_id, b.at_ms, b.seq)));
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::store::concerns::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Batch, HostFacts, Store};
    use kaoqin_proto::event::{Event, SessionKind};

    const T0: i64 = 1_795_000_000_000;
    const H: i64 = 3_600_000;

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            at_ms: T0 + seq as i64 * 1000,
            kind,
        }
    }

    fn life(kind: LifecycleKind, reason: LifecycleReason, prev: Option<i64>) -> EventKind {
        EventKind::Lifecycle {
            kind,
            reason,
            agent_version: "1".into(),
            previous_seen_ms: prev,
        }
    }

    #[tokio::test]
    async fn stops_crashes_gaps_offsets_silence_and_revocation_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let t = store
            .create_token(
                &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
                T0,
            )
            .unwrap();
        let host = |m: &str| HostFacts {
            machine_id: m.into(),
            hostname: format!("pc-{m}"),
            ..HostFacts::default()
        };
        let a = store.enroll(&t.token, host("a"), T0).await.unwrap();
        let b = store.enroll(&t.token, host("b"), T0).await.unwrap();
        let c = store.enroll(&t.token, host("c"), T0).await.unwrap();
        let num = |id: &str| store.agent_auth(id).unwrap().unwrap().num;
        use LifecycleKind::*;
        use LifecycleReason::*;
        let events = vec![
            ev(1, life(Start, SystemBoot, None)),
            ev(
                2,
                EventKind::Session {
                    kind: SessionKind::Logon,
                    account: "zs".into(),
                },
            ),
            ev(3, life(Stop, ServiceStop, None)),
            ev(4, life(Start, CrashRestart, Some(T0))),
            ev(
                5,
                EventKind::DataGap {
                    dropped_events: 12,
                    from_ms: T0,
                    to_ms: T0 + 1,
                    reason: "spool_full".into(),
                },
            ),
            ev(6, life(Stop, SystemShutdown, None)),
        ];
        let batch = |agent_num, offset, received_ms, events| Batch {
            agent_num,
            received_ms,
            sent_at_ms: received_ms - offset,
            clock_offset_ms: offset,
            events,
            // Not about the trust rules: the day lies before the enrolment.
            replay: true,
        };
        store
            .store_batch(batch(num(&a.agent_id), 2 * H, T0 + 2 * H, events))
            .await
            .unwrap();
        store
            .store_batch(batch(
                num(&b.agent_id),
                30_000,
                T0 + 30 * H,
                vec![ev(1, life(Start, SystemBoot, None))],
            ))
            .await
            .unwrap();
        store.revoke_agent(&c.agent_id, "t", T0 + H).unwrap();
        let q = Query {
            from_ms: T0 - 24 * H,
            to_ms: T0 + 48 * H,
            large_offset_ms: 60_000,
            silent_ms: 24 * H,
            now_ms: T0 + 31 * H,
        };
        let items = list(&*store, &q).unwrap();
        let got: Vec<(&str, &str, Option<u64>)> = items
            .iter()
            .map(|i| (i.hostname.as_str(), i.kind, i.seq))
            .collect();
        let mut want = vec![
            ("pc-a", "account_first_seen", None),
            ("pc-a", "clock_offset", None),
            ("pc-a", "agent_stopped", Some(3)),
            ("pc-a", "crash_restart", Some(4)),
            ("pc-a", "data_gap", Some(5)),
            ("pc-a", "silent", None),
            ("pc-c", "revoked", None),
        ];
        let sorted = |v: &mut Vec<(&str, &str, Option<u64>)>| v.sort();
        let mut got = got;
        sorted(&mut got);
        sorted(&mut want);
        assert_eq!(got, want, "{items:#?}");
        let first = items
            .iter()
            .find(|i| i.kind == "account_first_seen")
            .unwrap();
        assert!(
            first
                .detail
                .ends_with("(nobody in the staff directory) first seen on pc-a"),
            "{first:?}"
        );
        let stop = items.iter().find(|i| i.kind == "agent_stopped").unwrap();
        assert_eq!(stop.at_ms, T0 + 3000 + 2 * H, "corrected by the offset");
        // The threshold applies above the indexed minute (pc-a is 2 h off) and below
        // it (pc-b is 30 s off).
        let offsets = |large_offset_ms| {
            let q = Query {
                large_offset_ms,
                ..q
            };
            let mut hosts: Vec<String> = list(&*store, &q)
                .unwrap()
                .into_iter()
                .filter(|i| i.kind == "clock_offset")
                .map(|i| i.hostname)
                .collect();
            hosts.sort();
            hosts
        };
        assert_eq!(offsets(3 * H), Vec::<String>::new());
        assert_eq!(offsets(H), ["pc-a"]);
        assert_eq!(offsets(10_000), ["pc-a", "pc-b"]);
        assert!(
            items
                .iter()
                .any(|i| i.kind == "data_gap" && i.detail.contains("spool_full: 12 events"))
        );
        // A range that holds none of it lists only the present silence.
        let later = Query {
            from_ms: T0 + 40 * H,
            ..q
        };
        let kinds: Vec<_> = list(&*store, &later)
            .unwrap()
            .into_iter()
            .map(|i| i.kind)
            .collect();
        assert_eq!(kinds, ["silent"]);
    }
}

//! The store contract, one suite run against every store: SQLite in a temp dir,
//! PostgreSQL on a throwaway server ([`super::pg::testdb`]).
//!
//! What it holds a store to: an event is stored once however often it is sent
//! and the resend is acknowledged; the acknowledgement is the highest seq stored;
//! a new seq below what is stored refuses the whole batch and leaves nothing of it;
//! the trust rules refuse without touching the agent's state; enrolment tokens
//! are new-only unless made for reinstalls; raw events read back as stored.

use super::concerns::{Admin, Audit, Events, Verdicts};
use super::{Batch, HostFacts, Store, StoreError, TokenSpec};
use kaoqin_proto::event::{Event, EventKind};

/// An instant after the stores' enrolments in these tests.
const T0: i64 = 1_795_000_000_000;

fn host(machine: &str) -> HostFacts {
    HostFacts {
        machine_id: machine.into(),
        hostname: format!("pc-{machine}"),
        os: "linux".into(),
        ..HostFacts::default()
    }
}

fn heartbeat(seq: u64) -> Event {
    Event {
        seq,
        at_ms: T0 + (seq % 1_000_000) as i64 * 1000,
        kind: EventKind::Heartbeat {
            interval_seconds: 60,
            accounts: vec!["ZhangSan".into()],
        },
    }
}

fn batch(num: i64, seqs: impl IntoIterator<Item = u64>) -> Batch {
    Batch {
        agent_num: num,
        received_ms: T0 + 3_600_000,
        sent_at_ms: T0 + 3_600_000,
        clock_offset_ms: 0,
        events: seqs.into_iter().map(heartbeat).collect(),
        replay: false,
    }
}

/// Enrols machine `m` with a fresh new-machines token; the agent's number.
async fn enrolled<S: Store + Admin>(s: &S, m: &str) -> i64 {
    let t = s
        .create_token(&TokenSpec::new_machines(86_400_000, None), T0 - 60_000)
        .unwrap();
    let e = s.enroll(&t.token, host(m), T0 - 60_000).await.unwrap();
    s.agent_auth(&e.agent_id).unwrap().unwrap().num
}

fn stored_seqs<S: Events>(s: &S) -> Vec<u64> {
    let mut out = Vec::new();
    s.for_each_event(None, &mut |e| {
        out.push(e.event.seq);
        Ok(())
    })
    .unwrap();
    out
}

pub(crate) async fn exactly_once_and_resends_acknowledged<S: Store + Admin + Events>(s: &S) {
    let num = enrolled(s, "m1").await;
    let first = s.store_batch(batch(num, 1..=5)).await.unwrap();
    assert_eq!((first.acked_seq, first.inserted), (5, 5));
    let again = s.store_batch(batch(num, 3..=7)).await.unwrap();
    assert_eq!(
        (again.acked_seq, again.inserted),
        (7, 2),
        "resends acknowledged"
    );
    let same = s.store_batch(batch(num, 1..=7)).await.unwrap();
    assert_eq!((same.acked_seq, same.inserted), (7, 0));
    assert_eq!(s.count_events().unwrap(), (7, 7));
    assert_eq!(stored_seqs(s), (1..=7).collect::<Vec<_>>());
    // What was stored reads back as sent.
    let mut back = Vec::new();
    s.for_each_event(None, &mut |e| {
        back.push(e.event);
        Ok(())
    })
    .unwrap();
    assert_eq!(back, (1..=7).map(heartbeat).collect::<Vec<_>>());
}

pub(crate) async fn a_seq_going_backwards_refuses_the_whole_batch<S: Store + Admin + Events>(
    s: &S,
) {
    let num = enrolled(s, "m1").await;
    s.store_batch(batch(num, [1, 2, 3, 5])).await.unwrap();
    let err = s.store_batch(batch(num, [6, 4])).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.starts_with("event seq 4: seq: goes backwards")),
        "{err:?}"
    );
    assert_eq!(stored_seqs(s), [1, 2, 3, 5], "nothing of the refused batch");
    let next = s.store_batch(batch(num, [6])).await.unwrap();
    assert_eq!(next.acked_seq, 6);
}

pub(crate) async fn the_trust_rules_refuse_without_touching_the_agent<S: Store + Admin + Events>(
    s: &S,
) {
    let num = enrolled(s, "m1").await;
    s.store_batch(batch(num, 1..=3)).await.unwrap();
    // Before the enrolment: refused, unless a replay.
    let mut early = batch(num, [4]);
    early.events[0].at_ms = T0 - 86_400_000;
    let err = s.store_batch(early.clone()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("before this agent first enrolled")),
        "{err:?}"
    );
    // A seq no spool produces: refused, and the state is as before.
    let err = s
        .store_batch(batch(num, [i64::MAX as u64]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let next = s.store_batch(batch(num, [4])).await.unwrap();
    assert_eq!(next.acked_seq, 4, "the next real batch is taken");
    early.events[0].seq = 5;
    early.replay = true;
    assert_eq!(s.store_batch(early).await.unwrap().acked_seq, 5);
    // Refusals are recorded.
    s.record_refusal(
        num,
        T0,
        Some(6),
        "history cannot be written".into(),
        Some(super::Claimed {
            at_ms: T0,
            account: "LiSi".into(),
        }),
    )
    .await
    .unwrap();
}

pub(crate) async fn tokens_are_for_new_machines_unless_made_for_reinstalls<
    S: Store + Admin + Audit + super::IntegrityReads,
>(
    s: &S,
) {
    let num = enrolled(s, "m1").await;
    let t = s
        .create_token(&TokenSpec::new_machines(86_400_000, Some(1)), T0)
        .unwrap();
    let err = s.enroll(&t.token, host("m1"), T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Denied(_)), "{err:?}");
    // The attempt is on record; the token was not used.
    let recorded = s.recorded_events(0, i64::MAX).unwrap();
    assert!(
        recorded.iter().any(|r| r.kind == "reenrol_refused"),
        "{recorded:?}"
    );
    let re = s
        .create_token(
            &TokenSpec::new_machines(86_400_000, Some(1)).reenrolling(),
            T0,
        )
        .unwrap();
    let e = s.enroll(&re.token, host("m1"), T0).await.unwrap();
    assert!(e.re_enrolled);
    assert_eq!(s.agent_auth(&e.agent_id).unwrap().unwrap().num, num);
    let err = s.enroll(&re.token, host("m2"), T0).await.unwrap_err();
    assert!(matches!(err, StoreError::BadToken(m) if m.contains("used up")));
    let tokens = s.tokens().unwrap();
    assert!(
        tokens
            .iter()
            .any(|t| t.reenroll && t.used_for == ["pc-m1 (again)"]),
        "{tokens:?}"
    );
    // Revocation is audited, and the chain verifies.
    s.revoke_agent(&e.agent_id, "cli:test", T0 + 1).unwrap();
    assert!(s.agent_auth(&e.agent_id).unwrap().unwrap().revoked);
    let log = s.audit_list().unwrap();
    assert_eq!(log.last().unwrap().action, "agent.revoke");
    assert!(matches!(
        s.audit_verify().unwrap(),
        crate::audit::Verification::Intact { .. }
    ));
}

pub(crate) async fn old_months_are_pruned_once_their_verdicts_are_final<
    S: Store + Admin + Audit + Events + Verdicts,
>(
    s: &S,
) {
    let num = enrolled(s, "m1").await;
    let at = |day: &str| -> i64 {
        format!("{day}T01:00:00Z")
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    // A replayed October and November, stored with their dirty marks.
    let mut b = batch(num, 1..=4);
    b.replay = true;
    for (e, day) in
        b.events
            .iter_mut()
            .zip(["2026-10-05", "2026-10-30", "2026-11-02", "2026-11-20"])
    {
        e.at_ms = at(day);
    }
    s.store_batch(b).await.unwrap();
    let before: jiff::civil::Date = "2026-11-01".parse().unwrap();
    let err = s.prune_events(before, "cli:test", T0).unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("not final")),
        "{err:?}"
    );
    assert_eq!(s.count_events().unwrap().0, 4, "nothing dropped");
    assert_eq!(s.frozen_before().unwrap(), None);
    // Once judged (the marks taken), October goes.
    s.take_dirty().unwrap();
    let pruned = s.prune_events(before, "cli:test", T0).unwrap();
    assert_eq!(pruned.events, 2);
    assert_eq!(stored_seqs(s), [3, 4]);
    assert_eq!(
        s.frozen_before().unwrap(),
        Some("2026-11-03".parse().unwrap())
    );
    assert_eq!(
        s.audit_list().unwrap().last().unwrap().action,
        "events.prune"
    );
    // Ingest goes on, also for a late event of the pruned month.
    let mut next = batch(num, [5, 6]);
    next.events[0].at_ms = at("2026-11-21");
    next.events[1].at_ms = at("2026-10-10");
    next.replay = true;
    assert_eq!(s.store_batch(next).await.unwrap().acked_seq, 6);
}

pub(crate) async fn dirty_days_taken_by_a_recompute_that_dies_are_taken_again<
    S: Store + Admin + Verdicts,
>(
    s: &S,
) {
    let num = enrolled(s, "m1").await;
    s.store_batch(batch(num, 1..=2)).await.unwrap();
    let mut taken = s.take_dirty_at(T0).unwrap();
    taken.sort();
    assert!(!taken.is_empty());
    assert!(taken.iter().all(|(a, _)| a == "zhangsan"), "{taken:?}");
    // Held: another recompute gets nothing, a while later too.
    assert!(s.take_dirty_at(T0 + 60_000).unwrap().is_empty());
    // The recompute died: after the lease the days are taken again.
    let mut again = s.take_dirty_at(T0 + super::DIRTY_LEASE_MS + 1).unwrap();
    again.sort();
    assert_eq!(again, taken);
    // Released once stored: never taken again.
    s.release_dirty(&again).unwrap();
    assert!(
        s.take_dirty_at(T0 + 3 * super::DIRTY_LEASE_MS)
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn stored_verdicts_read_back_in_key_order<S: super::Stores>(s: &S) {
    use crate::attendance::Person;
    let person = |id: &str| Person {
        employee_id: id.into(),
        name: id.into(),
        department: "办公室".into(),
        accounts: vec![id.to_ascii_lowercase()],
        own_pcs: Vec::new(),
        email: String::new(),
        left_on: None,
    };
    // Ids whose byte order differs from a language's collation.
    let people = [person("E-2"), person("E10"), person("e1")];
    s.import_staff(&people, T0).unwrap();
    let rules = crate::verdicts::Rules::from_config(&crate::config::Config::default()).unwrap();
    let now = jiff::Timestamp::from_millisecond(T0).unwrap();
    let from: jiff::civil::Date = "2026-11-02".parse().unwrap();
    for d in 0..3 {
        let date = from.checked_add(jiff::Span::new().days(d)).unwrap();
        for p in people.iter().rev() {
            crate::verdicts::recompute(s, &rules, p, date, now).unwrap();
        }
    }
    let mut seen = Vec::new();
    s.for_each_verdict(from, "2026-11-04".parse().unwrap(), None, true, &mut |v| {
        assert!(v.verdict_json.is_some());
        seen.push((v.date.to_string(), v.employee_id.to_owned()));
        Ok(())
    })
    .unwrap();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert_eq!(seen, sorted, "(date, id) in byte order");
    let mut one = 0;
    s.for_each_verdict(from, from, Some("E10"), false, &mut |v| {
        assert_eq!((v.employee_id, v.verdict_json), ("E10", None));
        one += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(one, 1);
}

pub(crate) async fn a_plain_listed_account_finds_its_pcs_in_any_domain<S: Store + super::Stores>(
    s: &S,
) {
    let num = enrolled(s, "m1").await;
    let mut b = batch(num, [1]);
    b.events[0].kind = EventKind::Session {
        kind: kaoqin_proto::event::SessionKind::Logon,
        account: "OFFICE\\ZhangSan".into(),
    };
    s.store_batch(b).await.unwrap();
    let pcs = |listed: &str| s.known_pcs(&[listed.to_owned()]).unwrap().len();
    assert_eq!(pcs("zhangsan"), 1, "a plain name in any domain");
    assert_eq!(pcs("office\\zhangsan"), 1, "its own domain");
    assert_eq!(pcs("other\\zhangsan"), 0, "not another domain");
    assert_eq!(pcs("zhang"), 0);
    assert_eq!(s.unmapped_accounts().unwrap().len(), 1);
    let person = crate::attendance::Person {
        employee_id: "E001".into(),
        name: "张三".into(),
        department: "办公室".into(),
        accounts: vec!["zhangsan".into()],
        own_pcs: vec!["PC-M1".into()],
        email: String::new(),
        left_on: None,
    };
    s.import_staff(std::slice::from_ref(&person), T0).unwrap();
    assert!(
        s.unmapped_accounts().unwrap().is_empty(),
        "claimed by its plain name"
    );
    assert_eq!(s.person("E001").unwrap().unwrap().own_pcs, ["pc-m1"]);
    assert_eq!(
        s.pcs_named(&["PC-M1".into()]).unwrap().len(),
        1,
        "by hostname"
    );
    // The same user in a domain, for someone else: refused, naming the owner.
    let other = crate::attendance::Person {
        employee_id: "E002".into(),
        accounts: vec!["office\\zhangsan".into()],
        own_pcs: Vec::new(),
        email: String::new(),
        ..person
    };
    let err = s.import_staff(&[other], T0).unwrap_err().to_string();
    assert!(err.contains("already belongs to E001"), "{err}");
}

pub(crate) async fn coverage_counts_the_slots_an_agent_was_heard_in<S: Store + super::Stores>(
    s: &S,
) {
    let num = enrolled(s, "m1").await;
    enrolled(s, "m2").await;
    let mut b = batch(num, 1..=3);
    // Heard at T0, T0 + 1 min and T0 + 20 min.
    for (e, at) in b.events.iter_mut().zip([T0, T0 + 60_000, T0 + 1_200_000]) {
        e.at_ms = at;
    }
    s.store_batch(b).await.unwrap();
    let slot = 900_000;
    let slots = [
        (T0, T0 + slot),
        (T0 + slot, T0 + 2 * slot),
        (T0 + 2 * slot, T0 + 3 * slot),
    ];
    let heard = s.heard_in(&slots).unwrap();
    let ids: Vec<String> = s.agents().unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(heard.len(), 2, "{heard:?}");
    let count = |id: &str| heard.iter().find(|(a, _)| a == id).unwrap().1;
    let first = s.agent_auth(&ids[0]).unwrap().unwrap().num == num;
    let (m1, m2) = if first {
        (&ids[0], &ids[1])
    } else {
        (&ids[1], &ids[0])
    };
    assert_eq!(count(m1), 2, "two slots of three");
    assert_eq!(count(m2), 0);
    // The end of a slot is not in it.
    assert_eq!(s.heard_in(&[(T0 - slot, T0)]).unwrap()[0].1, 0);
}

pub(crate) async fn a_reenrolment_is_found_for_the_days_it_touches<S: Store + super::Stores>(
    s: &S,
) {
    let num = enrolled(s, "m1").await;
    let id = s.agents().unwrap()[0].id.clone();
    let pc = (num, id.clone());
    let found = |from, to| s.reenrolments(std::slice::from_ref(&pc), from, to).unwrap();
    assert!(found(0, i64::MAX).is_empty());
    let t = s
        .create_token(&TokenSpec::new_machines(86_400_000, None).reenrolling(), T0)
        .unwrap();
    s.enroll(&t.token, host("m1"), T0 + 60_000).await.unwrap();
    assert_eq!(found(T0, T0 + 120_000), [(id, T0 + 60_000)]);
    assert!(found(T0 + 120_000, i64::MAX).is_empty());
}

fn filing(employee_id: &str, start_ms: i64, days: u32) -> crate::requests::NewRequest {
    crate::requests::NewRequest {
        employee_id: employee_id.into(),
        kind: crate::requests::RequestKind::Leave,
        leave_type: "annual".into(),
        punch: None,
        start_ms,
        end_ms: start_ms + i64::from(days) * 86_400_000,
        whole_days: true,
        half_days: days * 2,
        reason: "family".into(),
        filed_by: "zhangsan".into(),
        filed_ms: T0,
        steps: 2,
    }
}

fn audited(what: &str) -> crate::audit::AuditEntry {
    crate::audit::AuditEntry::new(T0, "web:test", what, "E001", serde_json::json!({}))
}

pub(crate) async fn requests_are_filed_decided_applied_and_withdrawn_in_one_transaction<
    S: super::Stores,
>(
    s: &S,
) {
    use crate::requests::{Change, Decision, Effect, RequestQuery, RequestStatus};
    let settings = crate::attendance::Settings::default();
    let person = |id: &str, account: &str| crate::attendance::Person {
        employee_id: id.into(),
        name: id.into(),
        department: "办公室".into(),
        accounts: vec![account.into()],
        own_pcs: Vec::new(),
        email: String::new(),
        left_on: None,
    };
    s.import_staff(&[person("E001", "zhangsan"), person("E002", "lisi")], T0)
        .unwrap();
    // A limit that refuses stores nothing and says why.
    let refuse = |_: &[crate::requests::Request], _: &[crate::requests::LeaveBalance]| {
        Err("leave_type: the annual balance is 0 days".to_owned())
    };
    let err = s
        .add_request(
            &filing("E001", T0, 2),
            (0, i64::MAX),
            &refuse,
            &audited("request.file"),
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("balance is 0")),
        "{err:?}"
    );
    assert!(s.requests(&RequestQuery::default()).unwrap().is_empty());
    // The check sees the person's pending and approved requests and balances.
    s.import_leave_balances(
        &[crate::requests::LeaveBalance {
            employee_id: "E001".into(),
            year: 2026,
            leave_type: "annual".into(),
            half_days: 10,
        }],
        &audited("leave.balance_import"),
    )
    .unwrap();
    let first = s
        .add_request(
            &filing("E001", T0, 2),
            (0, i64::MAX),
            &|seen, bal| {
                assert!(seen.is_empty());
                assert_eq!(bal.len(), 1);
                Ok(())
            },
            &audited("request.file"),
        )
        .unwrap();
    let second = s
        .add_request(
            &filing("E001", T0 + 10 * 86_400_000, 1),
            (0, i64::MAX),
            &|seen, _| {
                assert_eq!(seen.iter().map(|r| r.id).collect::<Vec<_>>(), [first]);
                Ok(())
            },
            &audited("request.file"),
        )
        .unwrap();
    assert!(second > first);
    let r = s.request(first).unwrap().unwrap();
    assert_eq!(
        (r.status, r.half_days, r.steps),
        (RequestStatus::Pending, 4, 2)
    );
    assert_eq!(r.reason, "family");
    let q = |status| RequestQuery {
        status: Some(status),
        ..RequestQuery::default()
    };
    assert_eq!(s.requests(&q(RequestStatus::Pending)).unwrap().len(), 2);
    let mine = RequestQuery {
        employee_id: Some("E002".into()),
        ..RequestQuery::default()
    };
    assert!(s.requests(&mine).unwrap().is_empty());
    // Two decisions, then the entry and the dirty days with the second.
    let decision = |step: u8, approve: bool| Decision {
        step,
        by: format!("approver{step}"),
        approve,
        comment: "ok".into(),
        at_ms: T0 + 1000,
    };
    let change = |status, step, effect: Effect| {
        move |_: &crate::requests::Request| {
            Ok(Change {
                status,
                decision: Some(decision(step, true)),
                closed_by: None,
                effect: effect.clone(),
                audit: vec![audited("request.approve")],
            })
        }
    };
    let _ = s.take_dirty_at(T0).unwrap();
    let after = s
        .change_request(
            first,
            &settings,
            &change(RequestStatus::Pending, 1, Effect::None),
        )
        .unwrap();
    assert_eq!(
        (after.status, after.decisions.len()),
        (RequestStatus::Pending, 1)
    );
    assert!(s.exemptions(Some("E001"), 0, i64::MAX).unwrap().is_empty());
    // The same step twice is refused and changes nothing.
    assert!(
        s.change_request(
            first,
            &settings,
            &change(RequestStatus::Approved, 1, Effect::None)
        )
        .is_err()
    );
    assert_eq!(
        s.request(first).unwrap().unwrap().status,
        RequestStatus::Pending
    );
    let entry = crate::attendance::Exemption {
        employee_id: "E001".into(),
        kind: crate::attendance::ExemptionKind::Leave,
        start: crate::store::directory::ts(T0),
        end: crate::store::directory::ts(T0 + 2 * 86_400_000),
        note: "request 1".into(),
    };
    let after = s
        .change_request(
            first,
            &settings,
            &change(
                RequestStatus::Approved,
                2,
                Effect::Apply(vec![entry.clone()]),
            ),
        )
        .unwrap();
    assert_eq!(after.status, RequestStatus::Approved);
    assert_eq!(
        after.decisions.iter().map(|d| d.step).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(s.exemptions(Some("E001"), 0, i64::MAX).unwrap(), [entry]);
    let dirty = s.take_dirty_at(T0 + 2000).unwrap();
    assert!(
        dirty.iter().any(|(a, _)| a == "zhangsan") && dirty.iter().all(|(a, _)| a == "zhangsan"),
        "{dirty:?}"
    );
    s.release_dirty(&dirty).unwrap();
    // Withdrawing takes the entry out and marks the days again.
    let after = s
        .change_request(first, &settings, &|_| {
            Ok(Change {
                status: RequestStatus::Cancelled,
                decision: None,
                closed_by: Some("approver1".into()),
                effect: Effect::Withdraw,
                audit: vec![audited("request.cancel")],
            })
        })
        .unwrap();
    assert_eq!(
        (after.status, after.closed_by.as_deref(), after.closed_ms),
        (RequestStatus::Cancelled, Some("approver1"), Some(T0))
    );
    assert!(s.exemptions(Some("E001"), 0, i64::MAX).unwrap().is_empty());
    assert_eq!(s.take_dirty_at(T0 + 3000).unwrap().len(), dirty.len());
    // A refusal by the change writes nothing.
    let err = s
        .change_request(second, &settings, &|_| {
            Err(StoreError::Denied("own".into()))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Denied(_)));
    assert!(matches!(
        s.change_request(999_999, &settings, &|_| Err(StoreError::Denied("x".into()))),
        Err(StoreError::NotFound(_))
    ));
    let actions: Vec<String> = s
        .audit_list()
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions,
        [
            "leave.balance_import",
            "request.file",
            "request.file",
            "request.approve",
            "request.approve",
            "request.cancel"
        ]
    );
    // Balances: replaced by person, year and type; unknown people refused whole.
    let bal = |id: &str, half_days| crate::requests::LeaveBalance {
        employee_id: id.into(),
        year: 2026,
        leave_type: "annual".into(),
        half_days,
    };
    s.import_leave_balances(&[bal("E001", 11), bal("E002", 4)], &audited("x"))
        .unwrap();
    let err = s
        .import_leave_balances(&[bal("E002", 6), bal("E404", 4)], &audited("x"))
        .unwrap_err();
    assert!(err.to_string().contains("E404"), "{err}");
    assert_eq!(
        s.leave_balances(None, Some(2026)).unwrap(),
        [bal("E001", 11), bal("E002", 4)]
    );
    assert_eq!(
        s.leave_balances(Some("E002"), None).unwrap(),
        [bal("E002", 4)]
    );
    assert!(s.leave_balances(None, Some(2027)).unwrap().is_empty());
}

pub(crate) async fn the_outbox_sends_each_message_once_and_retries_failures<S: super::Stores>(
    s: &S,
) {
    let date = jiff::civil::date(2026, 11, 24);
    let msg = |who: &str| crate::notify::Outgoing {
        key: format!("2026-11-24/person/{who}/email"),
        date,
        channel: "email".into(),
        recipient: format!("{who}@office.test"),
        subject: "考勤提醒".into(),
        body: "迟到 11 分钟".into(),
    };
    assert!(!s.notify_composed(date).unwrap());
    assert_eq!(
        s.enqueue_notifications(date, &[msg("E001"), msg("E002")], T0)
            .unwrap(),
        2
    );
    assert_eq!(
        s.enqueue_notifications(date, &[msg("E001"), msg("E003")], T0)
            .unwrap(),
        1,
        "by key"
    );
    assert!(s.notify_composed(date).unwrap());
    let keys = |v: Vec<crate::notify::Notification>| -> Vec<String> {
        v.into_iter().map(|n| n.outgoing.key).collect()
    };
    // Claimed messages are held: a second sender gets none of them.
    let first = s.claim_notifications(T0, 60_000, 2, None).unwrap();
    assert_eq!(
        keys(first.clone()),
        [
            "2026-11-24/person/E001/email",
            "2026-11-24/person/E002/email"
        ]
    );
    assert_eq!(first[0].outgoing, msg("E001"));
    assert_eq!(
        keys(s.claim_notifications(T0, 60_000, 10, None).unwrap()),
        ["2026-11-24/person/E003/email"]
    );
    assert!(
        s.claim_notifications(T0 + 1, 60_000, 10, None)
            .unwrap()
            .is_empty()
    );
    s.notification_sent("2026-11-24/person/E001/email", T0 + 5)
        .unwrap();
    s.notification_failed(
        "2026-11-24/person/E002/email",
        "SMTP: refused",
        T0 + 600_000,
    )
    .unwrap();
    // After the lease: the unsent, undelivered one comes back; the failed one
    // waits for its next try, except for a sender asked for the day.
    let later = T0 + 120_000;
    assert_eq!(
        keys(s.claim_notifications(later, 60_000, 10, None).unwrap()),
        ["2026-11-24/person/E003/email"]
    );
    assert_eq!(
        keys(
            s.claim_notifications(later, 60_000, 10, Some(date))
                .unwrap()
        ),
        ["2026-11-24/person/E002/email"]
    );
    s.notification_failed(
        "2026-11-24/person/E002/email",
        "SMTP: refused again",
        T0 + 900_000,
    )
    .unwrap();
    // Due ones in the order they fell due.
    assert_eq!(
        keys(
            s.claim_notifications(T0 + 900_000, 60_000, 10, None)
                .unwrap()
        ),
        [
            "2026-11-24/person/E003/email",
            "2026-11-24/person/E002/email"
        ]
    );
    let all = s.notifications(Some(date), 10).unwrap();
    let e1 = all
        .iter()
        .find(|n| n.outgoing.key.contains("E001"))
        .unwrap();
    assert_eq!((e1.sent_ms, e1.attempts), (Some(T0 + 5), 1));
    let e2 = all
        .iter()
        .find(|n| n.outgoing.key.contains("E002"))
        .unwrap();
    assert_eq!(
        (e2.sent_ms, e2.attempts, e2.last_error.as_str()),
        (None, 2, "SMTP: refused again")
    );
    assert!(
        s.notifications(Some(jiff::civil::date(2026, 11, 25)), 10)
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn directory_accounts_follow_the_directory_and_never_take_a_local_one<
    S: super::Stores,
>(
    s: &S,
) {
    use crate::users::{NewUser, Role};
    let new = |name: &str, role, departments: &[&str]| NewUser {
        username: name.into(),
        role,
        employee_id: None,
        departments: departments.iter().map(|d| d.to_string()).collect(),
    };
    let u = s
        .upsert_directory_user(&new("wang", Role::DeptHead, &["办公室"]), T0)
        .unwrap();
    assert_eq!(
        (u.role, u.departments.as_slice(), u.must_change_password),
        (Role::DeptHead, &["办公室".to_owned()][..], false)
    );
    assert!(s.is_directory_account(u.id).unwrap());
    // No password of kaoqin's signs a directory account in, not even the marker.
    assert!(
        s.check_login("wang", crate::users::DIRECTORY_PASSWORD)
            .unwrap()
            .is_none()
    );
    let again = s
        .upsert_directory_user(&new("wang", Role::Officer, &[]), T0)
        .unwrap();
    assert_eq!(
        (again.id, again.role, again.departments.len()),
        (u.id, Role::Officer, 0)
    );
    s.add_user(&new("root", Role::Admin, &[]), T0).unwrap();
    let root = s.user_by_name("root").unwrap().unwrap();
    assert!(!s.is_directory_account(root.id).unwrap());
    assert!(matches!(
        s.upsert_directory_user(&new("root", Role::Staff, &[]), T0),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.user_by_name("root").unwrap().unwrap().role, Role::Admin);
    // A reset gives a local account a new one-time password and ends its
    // sessions; a directory account's password is the directory's.
    s.set_password(root.id, "root-chosen-pw").unwrap();
    let session = s.create_session(root.id, T0).unwrap();
    let once = s.reset_password("root").unwrap();
    let again = s.check_login("root", &once).unwrap().unwrap();
    assert!(again.must_change_password);
    assert!(s.check_login("root", "root-chosen-pw").unwrap().is_none());
    assert!(s.session_user(&session, T0 + 1).unwrap().is_none());
    assert!(matches!(
        s.reset_password("wang"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.reset_password("nobody"),
        Err(StoreError::NotFound(_))
    ));
    // The language an account chose.
    assert!(s.user_langs().unwrap().is_empty());
    s.set_user_lang(u.id, "en").unwrap();
    s.set_user_lang(root.id, "zh").unwrap();
    s.set_user_lang(root.id, "en").unwrap();
    let langs = s.user_langs().unwrap();
    assert_eq!(
        (langs.len(), langs[&u.id].as_str(), langs[&root.id].as_str()),
        (2, "en", "en")
    );
}

pub(crate) async fn office_settings_keep_revisions_and_are_audited<S: super::Stores>(s: &S) {
    assert_eq!(s.office_setting("schedules").unwrap(), None);
    assert_eq!(
        s.set_office_setting("schedules", "a = 1", "web:root", T0)
            .unwrap(),
        1
    );
    assert_eq!(
        s.set_office_setting("schedules", "a = 2", "web:li", T0 + 1)
            .unwrap(),
        2
    );
    assert_eq!(
        s.office_setting("schedules").unwrap(),
        Some(super::OfficeSetting {
            value: "a = 2".into(),
            revision: 2,
            updated_ms: T0 + 1,
            actor: "web:li".into(),
        })
    );
    assert_eq!(s.office_setting("other").unwrap(), None);
    // The directory keeps a person's e-mail address.
    let mut p = crate::attendance::Person {
        employee_id: "E001".into(),
        name: "张三".into(),
        department: "办公室".into(),
        accounts: vec!["zhangsan".into()],
        own_pcs: Vec::new(),
        email: "zhangsan@office.test".into(),
        left_on: None,
    };
    s.import_staff(std::slice::from_ref(&p), T0).unwrap();
    assert_eq!(s.person("E001").unwrap(), Some(p.clone()));
    p.email.clear();
    s.import_staff(std::slice::from_ref(&p), T0).unwrap();
    assert_eq!(s.staff().unwrap(), [p.clone()]);
    // A person who left stays, with the day; an import keeps it; they may return.
    let last = jiff::civil::date(2026, 12, 31);
    s.set_left_on("E001", Some(last), "web:root", T0).unwrap();
    p.left_on = Some(last);
    assert_eq!(s.staff().unwrap(), [p.clone()]);
    s.import_staff(
        &[crate::attendance::Person {
            left_on: None,
            ..p.clone()
        }],
        T0,
    )
    .unwrap();
    assert_eq!(
        s.person("E001").unwrap(),
        Some(p.clone()),
        "kept by an import"
    );
    s.set_left_on("E001", None, "web:root", T0).unwrap();
    assert_eq!(s.person("E001").unwrap().unwrap().left_on, None);
    assert!(matches!(
        s.set_left_on("E404", Some(last), "web:root", T0),
        Err(StoreError::NotFound(_))
    ));
    let actions: Vec<String> = s
        .audit_list()
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert!(
        actions.contains(&"staff.left".to_owned())
            && actions.contains(&"staff.returned".to_owned()),
        "{actions:?}"
    );
    let audit = s.audit_list().unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "setting.schedules")
            .count(),
        2
    );
}

/// Runs one contract test against SQLite and PostgreSQL.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = crate::store::sqlite::SqliteStore::open(dir.path()).unwrap();
                super::$name(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(pg) = crate::store::pg::testdb::TestPg::start() else {
                    return;
                };
                let url = pg.database("kaoqin");
                let store = crate::store::pg::PgStore::open(
                    &url,
                    &crate::attendance::Settings::default(),
                )
                .unwrap();
                super::$name(&*store).await;
            }
        }
    )*};
}

both_stores!(
    coverage_counts_the_slots_an_agent_was_heard_in,
    exactly_once_and_resends_acknowledged,
    a_seq_going_backwards_refuses_the_whole_batch,
    the_trust_rules_refuse_without_touching_the_agent,
    tokens_are_for_new_machines_unless_made_for_reinstalls,
    old_months_are_pruned_once_their_verdicts_are_final,
    dirty_days_taken_by_a_recompute_that_dies_are_taken_again,
    stored_verdicts_read_back_in_key_order,
    a_plain_listed_account_finds_its_pcs_in_any_domain,
    a_reenrolment_is_found_for_the_days_it_touches,
    requests_are_filed_decided_applied_and_withdrawn_in_one_transaction,
    the_outbox_sends_each_message_once_and_retries_failures,
    directory_accounts_follow_the_directory_and_never_take_a_local_one,
    office_settings_keep_revisions_and_are_audited,
);

/// Two collectors on one PostgreSQL database store one agent's overlapping
/// batches at once: every event once, and no acknowledgement beyond what is
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_on_one_database_store_each_event_once() {
    let Some(pg) = crate::store::pg::testdb::TestPg::start() else {
        return;
    };
    let url = pg.database("kaoqin");
    let settings = crate::attendance::Settings::default();
    let a = crate::store::pg::PgStore::open(&url, &settings).unwrap();
    let b = crate::store::pg::PgStore::open(&url, &settings).unwrap();
    let num = enrolled(&*a, "m1").await;
    let mut tasks = Vec::new();
    for round in 0..20u64 {
        for (i, s) in [a.clone(), b.clone()].into_iter().enumerate() {
            // Each collector gets the same window of seqs, as an agent retrying
            // against the other one would send it.
            let seqs = (round * 10 + 1)..=(round * 10 + 10 + i as u64 * 5);
            tasks.push(tokio::spawn(async move {
                s.store_batch(batch(num, seqs.clone()))
                    .await
                    .map(|o| (seqs, o))
            }));
        }
    }
    for t in tasks {
        match t.await.unwrap() {
            Ok((seqs, o)) => assert!(o.acked_seq >= *seqs.end(), "{o:?} for {seqs:?}"),
            // A window that lands after a later one is a seq going backwards for
            // the later one's gap: refused whole, as for one collector.
            Err(StoreError::Invalid(m)) => assert!(m.contains("goes backwards"), "{m}"),
            Err(e) => panic!("{e}"),
        }
    }
    let (rows, distinct) = a.count_events().unwrap();
    assert_eq!(rows, distinct, "each (agent, seq) once");
    let seqs = stored_seqs(&*b);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let acked = a.agents().unwrap()[0].max_seq;
    assert_eq!(
        Some(&acked),
        seqs.last(),
        "the acknowledgement is what is stored"
    );
}

/// A collector whose database goes away answers Busy (agents keep their spools
/// and retry) and works again, by itself, once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_busy_and_recovers_by_itself() {
    let Some(pg) = crate::store::pg::testdb::TestPg::start() else {
        return;
    };
    let url = pg.database("kaoqin");
    let s = crate::store::pg::PgStore::open(&url, &crate::attendance::Settings::default()).unwrap();
    let num = enrolled(&*s, "m1").await;
    s.store_batch(batch(num, 1..=3)).await.unwrap();
    pg.crash();
    let err = s.store_batch(batch(num, 4..=6)).await.unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    assert!(matches!(s.count_events(), Err(StoreError::Busy(_))));
    pg.restart();
    // Connections the crash broke are dropped as they are found; a few tries
    // at most, with no wait between them.
    let mut outcome = Err(StoreError::Busy(String::new()));
    for _ in 0..super::pg::POOL_SIZE + 2 {
        outcome = s.store_batch(batch(num, 4..=6)).await;
        if outcome.is_ok() {
            break;
        }
    }
    assert_eq!(outcome.unwrap().acked_seq, 6);
    assert_eq!(s.count_events().unwrap(), (6, 6));
}

/// `migrate` takes every event of a SQLite file to PostgreSQL, those the writer
/// has moved into `events` and those still waiting in `events_recent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_takes_the_recent_events_too() {
    let Some(pg) = crate::store::pg::testdb::TestPg::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let from = crate::store::sqlite::SqliteStore::open(dir.path()).unwrap();
    let num = enrolled(&*from, "m1").await;
    from.store_batch(batch(num, 1..=3)).await.unwrap();
    // A resend moves 1..=3 into `events`; 6..=8 wait in `events_recent`.
    from.store_batch(batch(num, 2..=5)).await.unwrap();
    from.store_batch(batch(num, 6..=8)).await.unwrap();
    let to = crate::store::pg::PgStore::open(
        &pg.database("moved"),
        &crate::attendance::Settings::default(),
    )
    .unwrap();
    let counts = tokio::task::block_in_place(|| from.migrate_to(&to)).unwrap();
    assert!(counts.contains(&("events", 8)), "{counts:?}");
    assert_eq!(stored_seqs(&*to), (1..=8).collect::<Vec<_>>());
}

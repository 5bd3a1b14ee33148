//! The rules of requests with fixed days: what a filing becomes, the limits, and
//! who may decide or cancel.

use super::*;
use crate::config::{Config, SecondApproval};
use crate::users::Role;

fn rules() -> Rules {
    Rules::from_config(&Config::default()).unwrap()
}

fn t(s: &str) -> Timestamp {
    format!("{s}:00+08:00").replace(' ', "T").parse().unwrap()
}

fn person(id: &str, dept: &str) -> Person {
    Person {
        employee_id: id.into(),
        name: id.into(),
        department: dept.into(),
        accounts: vec![id.to_lowercase()],
        own_pcs: Vec::new(),
        email: String::new(),
        left_on: None,
    }
}

fn user(name: &str, role: Role, employee: Option<&str>, depts: &[&str]) -> User {
    User {
        id: 1,
        username: name.into(),
        role,
        employee_id: employee.map(str::to_owned),
        departments: depts.iter().map(|d| d.to_string()).collect(),
        must_change_password: false,
    }
}

fn file(kind: &str, from: &str, to: &str) -> Filing {
    Filing {
        kind: kind.into(),
        leave_type: Some("annual".into()),
        from: Some(from.into()),
        to: Some(to.into()),
        reason: "family matters".into(),
        ..Filing::default()
    }
}

fn staff() -> User {
    user("zhangsan", Role::Staff, Some("E001"), &[])
}

const NOW: &str = "2026-11-27 12:00";

fn prepared(f: &Filing) -> Result<NewRequest, FieldError> {
    prepare(
        f,
        &person("E001", "办公室"),
        &staff(),
        &rules(),
        &RequestsConfig::default(),
        t(NOW),
    )
}

#[test]
fn whole_days_count_working_days_and_long_leave_needs_an_officer() {
    // Mon 23 to Fri 27 November 2026: five working days.
    let r = prepared(&file("leave", "2026-11-23", "2026-11-27")).unwrap();
    assert_eq!((r.half_days, r.whole_days, r.steps), (10, true, 2));
    assert_eq!(r.start_ms, t("2026-11-23 00:00").as_millisecond());
    assert_eq!(r.end_ms, t("2026-11-28 00:00").as_millisecond());
    // Three days is not over three: the head alone.
    let r = prepared(&file("leave", "2026-11-25", "2026-11-27")).unwrap();
    assert_eq!((r.half_days, r.steps), (6, 1));
    // A week spanning a weekend: the weekend does not count.
    let r = prepared(&file("leave", "2026-11-27", "2026-11-30")).unwrap();
    assert_eq!(r.half_days, 4);
    // National Day week 2026 is holiday: no working day to take.
    let e = prepared(&file("leave", "2026-10-01", "2026-10-07")).unwrap_err();
    assert_eq!(e.field, "from");
    // Part of a day: one half per started four hours.
    let r = prepared(&file("leave", "2026-11-26T08:30", "2026-11-26T10:00")).unwrap();
    assert_eq!((r.half_days, r.whole_days), (1, false));
    let r = prepared(&file("field", "2026-11-26T08:30", "2026-11-26T17:30")).unwrap();
    assert_eq!((r.half_days, r.steps, r.leave_type.as_str()), (3, 1, ""));
    // The office may ask for an officer on every trip.
    let mut config = RequestsConfig::default();
    config.second_approval.push(SecondApproval {
        kind: "business_trip".into(),
        over_days: 0,
    });
    let r = prepare(
        &file("business_trip", "2026-11-26", "2026-11-26"),
        &person("E001", "办公室"),
        &staff(),
        &rules(),
        &config,
        t(NOW),
    )
    .unwrap();
    assert_eq!(r.steps, 2);
}

#[test]
fn a_bad_filing_names_its_field() {
    let field = |f: Filing| prepared(&f).unwrap_err().field;
    assert_eq!(field(file("holiday", "2026-11-26", "2026-11-26")), "kind");
    assert_eq!(
        field(Filing {
            leave_type: Some("sabbatical".into()),
            ..file("leave", "2026-11-26", "2026-11-26")
        }),
        "leave_type"
    );
    assert_eq!(
        field(Filing {
            reason: " ".into(),
            ..file("leave", "2026-11-26", "2026-11-26")
        }),
        "reason"
    );
    assert_eq!(field(file("leave", "26/11/2026", "2026-11-26")), "from");
    assert_eq!(field(file("leave", "2026-11-26", "2026-11-25")), "to");
    assert_eq!(
        field(file("overtime", "2026-11-26T18:00", "2026-11-26T17:00")),
        "to"
    );
    let punch = |p: Option<&str>, at: &str| Filing {
        kind: "missed_punch".into(),
        punch: p.map(str::to_owned),
        at: Some(at.into()),
        reason: "at the front desk".into(),
        ..Filing::default()
    };
    assert_eq!(field(punch(None, "2026-11-26T08:20")), "punch");
    assert_eq!(field(punch(Some("arrival"), "2026-11-26")), "at");
    assert_eq!(field(punch(Some("arrival"), "2026-11-28T08:20")), "at");
    let r = prepared(&punch(Some("arrival"), "2026-11-26T08:20")).unwrap();
    assert_eq!(
        (r.punch, r.start_ms, r.end_ms, r.half_days),
        (
            Some(CheckpointKind::Arrival),
            t("2026-11-26 08:20").as_millisecond(),
            t("2026-11-26 08:20").as_millisecond(),
            0
        )
    );
}

fn stored(new: &NewRequest, id: i64) -> Request {
    Request {
        id,
        employee_id: new.employee_id.clone(),
        kind: new.kind,
        leave_type: new.leave_type.clone(),
        punch: new.punch,
        start_ms: new.start_ms,
        end_ms: new.end_ms,
        whole_days: new.whole_days,
        half_days: new.half_days,
        reason: new.reason.clone(),
        filed_by: new.filed_by.clone(),
        filed_ms: new.filed_ms,
        status: RequestStatus::Pending,
        steps: new.steps,
        decisions: Vec::new(),
        closed_by: None,
        closed_ms: None,
    }
}

#[test]
fn missed_punches_within_the_window_and_the_month_and_leave_within_the_balance() {
    let config = RequestsConfig::default();
    let today = date(2026, 11, 27);
    let punch = |at: &str, p: &str| {
        prepared(&Filing {
            kind: "missed_punch".into(),
            punch: Some(p.into()),
            at: Some(at.into()),
            reason: "badge reader".into(),
            ..Filing::default()
        })
        .unwrap()
    };
    let check = |new: &NewRequest, existing: &[Request], bal: &[LeaveBalance]| {
        limits(new, existing, bal, &config, &rules(), today)
    };
    // Seven days back is allowed, eight is not.
    assert!(check(&punch("2026-11-20T08:20", "arrival"), &[], &[]).is_ok());
    let err = check(&punch("2026-11-19T08:20", "arrival"), &[], &[]).unwrap_err();
    assert!(err.contains("more than 7 days ago"), "{err}");
    // At most three a month; the same checkpoint of a day once.
    let three: Vec<Request> = ["2026-11-23T08:20", "2026-11-24T08:20", "2026-11-25T08:20"]
        .iter()
        .enumerate()
        .map(|(i, at)| stored(&punch(at, "arrival"), i as i64 + 1))
        .collect();
    let err = check(&punch("2026-11-26T08:20", "arrival"), &three, &[]).unwrap_err();
    assert!(
        err.contains("3 missed punches are already asked for in 2026-11 (at most 3 a month)"),
        "{err}"
    );
    let err = check(
        &punch("2026-11-24T09:00", "arrival"),
        &three[..1]
            .iter()
            .chain(&three[1..2])
            .cloned()
            .collect::<Vec<_>>(),
        &[],
    )
    .unwrap_err();
    assert!(err.contains("already asked for"), "{err}");
    assert!(check(&punch("2026-11-24T17:40", "departure"), &three[..2], &[]).is_ok());
    // Annual leave within the balance: 5 days, 3 asked for, 2 more fit, 3 do not.
    let bal = [LeaveBalance {
        employee_id: "E001".into(),
        year: 2026,
        leave_type: "annual".into(),
        half_days: 10,
    }];
    let taken = [stored(
        &prepared(&file("leave", "2026-11-23", "2026-11-25")).unwrap(),
        9,
    )];
    assert!(
        check(
            &prepared(&file("leave", "2026-11-26", "2026-11-27")).unwrap(),
            &taken,
            &bal
        )
        .is_ok()
    );
    let err = check(
        &prepared(&file("leave", "2026-11-26", "2026-11-30")).unwrap(),
        &taken,
        &bal,
    )
    .unwrap_err();
    assert_eq!(
        err,
        "leave_type: the annual balance for 2026 is 5 days, 3 taken or asked for, 2 left; this request is 3 days"
    );
    // Without a balance imported, a balance type has none; sick leave is not counted.
    assert!(
        check(
            &prepared(&file("leave", "2026-11-26", "2026-11-26")).unwrap(),
            &[],
            &[]
        )
        .is_err()
    );
    let sick = prepared(&Filing {
        leave_type: Some("sick".into()),
        ..file("leave", "2026-11-26", "2026-11-26")
    })
    .unwrap();
    assert!(check(&sick, &[], &[]).is_ok());
}

use jiff::civil::date;

#[test]
fn nobody_decides_their_own_and_each_step_has_its_approver() {
    let new = prepared(&file("leave", "2026-11-23", "2026-11-27")).unwrap();
    let r = stored(&new, 7);
    let head = user("wang", Role::DeptHead, Some("E010"), &["办公室"]);
    let other_head = user("zhao", Role::DeptHead, Some("E011"), &["信息中心"]);
    let officer = user("li", Role::Officer, None, &[]);
    let colleague = user("lisi", Role::Staff, Some("E002"), &[]);
    let denied = |u: &User, r: &Request| {
        matches!(
            decide(u, r, "办公室", true, "", 1),
            Err(StoreError::Denied(_))
        )
    };
    assert!(denied(&staff(), &r), "own request");
    assert!(denied(&colleague, &r), "a colleague");
    assert!(denied(&other_head, &r), "another department's head");
    // A head who is the person is refused too.
    let self_head = user("zs-head", Role::DeptHead, Some("E001"), &["办公室"]);
    assert!(denied(&self_head, &r));
    // The head approves step 1 of 2: still pending, nothing applied.
    let c = decide(&head, &r, "办公室", true, "fine", 1).unwrap();
    assert_eq!(
        (c.status, c.effect.clone()),
        (RequestStatus::Pending, Effect::None)
    );
    let mut r2 = r.clone();
    r2.decisions.push(c.decision.unwrap());
    // Step 2 is an officer's, and not the head's again.
    assert!(denied(&head, &r2));
    let c = decide(&officer, &r2, "办公室", true, "", 2).unwrap();
    assert_eq!(c.status, RequestStatus::Approved);
    let Effect::Apply(entries) = &c.effect else {
        panic!("{c:?}")
    };
    assert_eq!(entries[0].kind, ExemptionKind::Leave);
    assert!(
        entries[0]
            .note
            .contains("request 7 approved by li: family matters"),
        "{}",
        entries[0].note
    );
    assert_eq!(
        c.audit
            .iter()
            .map(|a| a.action.as_str())
            .collect::<Vec<_>>(),
        ["request.approve", "verdict.correct"]
    );
    // A rejection at any step ends it and changes nothing.
    let c = decide(&head, &r, "办公室", false, "not now", 1).unwrap();
    assert_eq!(
        (c.status, c.effect),
        (RequestStatus::Rejected, Effect::None)
    );
    // Decided requests are not decided again.
    let mut done = r.clone();
    done.status = RequestStatus::Approved;
    assert!(matches!(
        decide(&officer, &done, "办公室", true, "", 1),
        Err(StoreError::Conflict(_))
    ));
    // A filing by the head for the person: the head may not decide it.
    let mut by_head = r.clone();
    by_head.filed_by = "wang".into();
    assert!(denied(&head, &by_head));
}

#[test]
fn the_requester_cancels_while_pending_and_an_approver_undoes_an_approval() {
    let r = stored(
        &prepared(&file("leave", "2026-11-26", "2026-11-26")).unwrap(),
        3,
    );
    let head = user("wang", Role::DeptHead, Some("E010"), &["办公室"]);
    let c = cancel(&staff(), &r, "办公室", 1).unwrap();
    assert_eq!(
        (c.status, c.effect, c.closed_by.as_deref()),
        (RequestStatus::Cancelled, Effect::None, Some("zhangsan"))
    );
    assert!(matches!(
        cancel(&head, &r, "办公室", 1),
        Err(StoreError::Denied(_))
    ));
    let mut approved = r.clone();
    approved.status = RequestStatus::Approved;
    assert!(matches!(
        cancel(&staff(), &approved, "办公室", 1),
        Err(StoreError::Denied(_))
    ));
    let c = cancel(&head, &approved, "办公室", 1).unwrap();
    assert_eq!(c.effect, Effect::Withdraw);
    let mut rejected = r;
    rejected.status = RequestStatus::Rejected;
    assert!(matches!(
        cancel(&staff(), &rejected, "办公室", 1),
        Err(StoreError::Conflict(_))
    ));
}

#[test]
fn approved_requests_become_the_entries_the_verdict_reads() {
    let new = prepared(&Filing {
        kind: "missed_punch".into(),
        punch: Some("departure".into()),
        at: Some("2026-11-26T17:40".into()),
        reason: "meeting downstairs".into(),
        ..Filing::default()
    })
    .unwrap();
    let e = entries(&stored(&new, 4), "wang", "seen");
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].start, e[0].end),
        (
            ExemptionKind::DeparturePunch,
            t("2026-11-26 17:40"),
            t("2026-11-26 17:40")
        )
    );
    assert_eq!(
        e[0].note,
        "request 4 approved by wang: meeting downstairs — seen"
    );
    let ot = prepared(&file("overtime", "2026-11-26T17:30", "2026-11-26T20:00")).unwrap();
    assert_eq!(
        entries(&stored(&ot, 5), "wang", "")[0].kind,
        ExemptionKind::Overtime
    );
}

//! Requests: leave (with its type), field work, business trips, overtime and
//! missed punches, filed from the browser or the API, decided by the department
//! head (and, where the office says so, an officer after them), and turned into
//! the record when approved.
//!
//! ```text
//!   file --> pending --head approves--> [pending, officer's turn] --approves--> approved
//!              |  \--rejects--> rejected                \--rejects--> rejected
//!              \--requester cancels--> cancelled      approved --approver cancels--> cancelled
//! ```
//!
//! What must stay true:
//! - nobody decides their own request: not the person it is for, not who filed it,
//!   and the officer's decision is never by the same account as the head's;
//! - the limits (missed punches within N days and at most M a month, leave within
//!   the year's balance) are checked inside the transaction that stores the
//!   request, so two filed at once cannot both pass;
//! - approving writes the exemption or correction (an [`Exemption`] linked to the
//!   request) and marks the days for recompute in the same transaction; cancelling
//!   an approved request removes them the same way; a rejection changes nothing
//!   but the request. Every step is audited.

pub mod balance;
pub mod service;

use crate::attendance::{CheckpointKind, Exemption, ExemptionKind, Person};
use crate::audit::AuditEntry;
use crate::config::RequestsConfig;
use crate::leave::{Edge, parse_instant};
use crate::store::StoreError;
use crate::users::{Action, Role, Target, User, can};
use crate::verdicts::Rules;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

pub use balance::LeaveBalance;

/// What is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Leave,
    Field,
    BusinessTrip,
    Overtime,
    MissedPunch,
}

impl RequestKind {
    pub const ALL: [RequestKind; 5] = [
        Self::Leave,
        Self::Field,
        Self::BusinessTrip,
        Self::Overtime,
        Self::MissedPunch,
    ];

    /// The stable name (API, storage, config).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leave => "leave",
            Self::Field => "field",
            Self::BusinessTrip => "business_trip",
            Self::Overtime => "overtime",
            Self::MissedPunch => "missed_punch",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<RequestKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Rejected,
    Cancelled,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 4] = [
        Self::Pending,
        Self::Approved,
        Self::Rejected,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RequestStatus> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One decision on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// 1: the department head's (or an officer's where no head decided); 2: the
    /// officer's second decision.
    pub step: u8,
    /// Username of who decided.
    pub by: String,
    pub approve: bool,
    pub comment: String,
    pub at_ms: i64,
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: i64,
    pub employee_id: String,
    pub kind: RequestKind,
    /// The leave type's code (`annual`, `sick`, ...); empty for other kinds.
    pub leave_type: String,
    /// Which checkpoint a missed punch is for.
    pub punch: Option<CheckpointKind>,
    /// `[start, end)`, epoch milliseconds; a missed punch is the instant `start`.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Given as whole days (dates), not instants.
    pub whole_days: bool,
    /// Its length in half days (working days for whole days; see [`length`]).
    pub half_days: u32,
    pub reason: String,
    /// Username of who filed it (the person, or a head or officer for them).
    pub filed_by: String,
    pub filed_ms: i64,
    pub status: RequestStatus,
    /// Decisions an approval needs: 1, or 2 with an officer's.
    pub steps: u8,
    pub decisions: Vec<Decision>,
    /// Who cancelled it, and when.
    pub closed_by: Option<String>,
    pub closed_ms: Option<i64>,
}

impl Request {
    /// The instants it covers.
    pub fn start(&self) -> Timestamp {
        ts(self.start_ms)
    }

    pub fn end(&self) -> Timestamp {
        ts(self.end_ms)
    }

    /// The step the next decision is.
    pub fn next_step(&self) -> u8 {
        u8::try_from(self.decisions.len()).unwrap_or(u8::MAX) + 1
    }

    /// Its length in days (half days as .5).
    pub fn days(&self) -> f64 {
        f64::from(self.half_days) / 2.0
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or_default()
}

/// A request about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub employee_id: String,
    pub kind: RequestKind,
    pub leave_type: String,
    pub punch: Option<CheckpointKind>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub whole_days: bool,
    pub half_days: u32,
    pub reason: String,
    pub filed_by: String,
    pub filed_ms: i64,
    pub steps: u8,
}

/// What the store is asked to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestQuery {
    pub employee_id: Option<String>,
    pub status: Option<RequestStatus>,
    pub kind: Option<RequestKind>,
    /// Requests overlapping `[from_ms, to_ms)`.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// What a decision or cancellation does to the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing but the request.
    None,
    /// Write these entries, linked to the request, and mark their days dirty.
    Apply(Vec<Exemption>),
    /// Remove the request's entries and mark their days dirty.
    Withdraw,
}

/// A change of a request, decided by [`decide`] or [`cancel`] from its state
/// inside the store's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub status: RequestStatus,
    pub decision: Option<Decision>,
    pub closed_by: Option<String>,
    pub effect: Effect,
    pub audit: Vec<AuditEntry>,
}

/// The limits a filing must pass, given the person's pending and approved
/// requests and their balances ([`limits`]), run by the store inside its
/// transaction.
pub type LimitCheck<'a> = dyn Fn(&[Request], &[LeaveBalance]) -> Result<(), String> + Sync + 'a;

/// A change of a request decided from its stored state ([`decide`], [`cancel`]),
/// run by the store inside its transaction.
pub type ChangeFn<'a> = dyn Fn(&Request) -> Result<Change, StoreError> + Sync + 'a;

/// A request as someone typed it (form or JSON).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filing {
    pub kind: String,
    /// Whose; the caller's own when empty.
    #[serde(default)]
    pub employee_id: Option<String>,
    #[serde(default)]
    pub leave_type: Option<String>,
    /// A date (whole days from it) or an instant.
    #[serde(default)]
    pub from: Option<String>,
    /// A date (whole days up to and including it) or an instant.
    #[serde(default)]
    pub to: Option<String>,
    /// A missed punch: `arrival` or `departure`.
    #[serde(default)]
    pub punch: Option<String>,
    /// A missed punch: the instant.
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// The built-in leave types: code, Chinese, English.
pub const LEAVE_TYPES: [(&str, &str, &str); 7] = [
    ("personal", "事假", "personal leave"),
    ("sick", "病假", "sick leave"),
    ("annual", "年假", "annual leave"),
    ("compensatory", "调休", "compensatory leave"),
    ("marriage", "婚假", "marriage leave"),
    ("maternity", "产假", "maternity leave"),
    ("bereavement", "丧假", "bereavement leave"),
];

/// Every leave type of the office: the built-in ones and `[requests] leave_types`,
/// as (code, Chinese, English).
pub fn leave_types(config: &RequestsConfig) -> Vec<(String, String, String)> {
    LEAVE_TYPES
        .iter()
        .map(|(c, z, e)| (c.to_string(), z.to_string(), e.to_string()))
        .chain(
            config
                .leave_types
                .iter()
                .map(|t| (t.code.clone(), t.zh.clone(), t.en.clone())),
        )
        .collect()
}

/// A problem with a filing: the field and what is wrong, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn bad(field: &'static str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field,
        problem: problem.into(),
    }
}

/// The longest request, in days.
pub const MAX_DAYS: i64 = 366;

/// Checks a filing for `person` by `user` and makes the request to store, with
/// its length and the decisions it needs. The limits that need stored state are
/// [`limits`].
pub fn prepare(
    filing: &Filing,
    person: &Person,
    user: &User,
    rules: &Rules,
    config: &RequestsConfig,
    now: Timestamp,
) -> Result<NewRequest, FieldError> {
    let kind = RequestKind::parse(filing.kind.trim()).ok_or_else(|| {
        bad(
            "kind",
            format!(
                "{:?} is not one of leave, field, business_trip, overtime, missed_punch",
                filing.kind
            ),
        )
    })?;
    let reason = filing.reason.trim();
    if reason.is_empty() {
        return Err(bad("reason", "is empty: say why"));
    }
    if reason.chars().count() > 2000 {
        return Err(bad("reason", "is longer than 2000 characters"));
    }
    let tz = &rules.settings.time_zone;
    let leave_type = if kind == RequestKind::Leave {
        let t = filing.leave_type.as_deref().unwrap_or("").trim();
        let known = leave_types(config);
        if !known.iter().any(|(c, _, _)| c == t) {
            return Err(bad(
                "leave_type",
                format!(
                    "{t:?} is not one of {}",
                    known
                        .iter()
                        .map(|(c, _, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        t.to_owned()
    } else {
        String::new()
    };
    let (start, end, whole_days, punch) = if kind == RequestKind::MissedPunch {
        let punch = match filing.punch.as_deref().map(str::trim) {
            Some("arrival") => CheckpointKind::Arrival,
            Some("departure") => CheckpointKind::Departure,
            other => {
                return Err(bad("punch", format!("{other:?}: use arrival or departure")));
            }
        };
        let text = filing
            .at
            .as_deref()
            .or(filing.from.as_deref())
            .unwrap_or("")
            .trim();
        if text.len() <= 10 {
            return Err(bad(
                "at",
                format!("{text:?}: a missed punch is an instant such as 2026-11-24T08:20"),
            ));
        }
        let at = parse_instant(text, tz, Edge::Start).map_err(|e| bad("at", e))?;
        if at > now {
            return Err(bad("at", format!("{text} has not come yet")));
        }
        (at, at, false, Some(punch))
    } else {
        let from = filing.from.as_deref().unwrap_or("").trim();
        let to = filing.to.as_deref().unwrap_or("").trim();
        let start = parse_instant(from, tz, Edge::Start).map_err(|e| bad("from", e))?;
        let end = parse_instant(to, tz, Edge::End).map_err(|e| bad("to", e))?;
        if end <= start {
            return Err(bad("to", format!("{to} is not after {from}")));
        }
        if end.as_millisecond() - start.as_millisecond() > MAX_DAYS * 86_400_000 {
            return Err(bad("to", format!("a request is at most {MAX_DAYS} days")));
        }
        let whole = from.len() == 10 && to.len() == 10;
        (start, end, whole, None)
    };
    let half_days = length(kind, start, end, whole_days, rules);
    if matches!(
        kind,
        RequestKind::Leave | RequestKind::Field | RequestKind::BusinessTrip
    ) && whole_days
        && half_days == 0
    {
        return Err(bad(
            "from",
            "the days asked for are not working days: nothing to ask leave for",
        ));
    }
    let steps = if config
        .second_approval
        .iter()
        .any(|r| r.kind == kind.as_str() && u64::from(half_days) > u64::from(r.over_days) * 2)
    {
        2
    } else {
        1
    };
    Ok(NewRequest {
        employee_id: person.employee_id.clone(),
        kind,
        leave_type,
        punch,
        start_ms: start.as_millisecond(),
        end_ms: end.as_millisecond(),
        whole_days,
        half_days,
        reason: reason.to_owned(),
        filed_by: user.username.clone(),
        filed_ms: now.as_millisecond(),
        steps,
    })
}

/// A request's length in half days: for whole days, two per working day of the
/// calendar between its dates; for part of a day, one per started four hours; a
/// missed punch is 0.
pub fn length(
    kind: RequestKind,
    start: Timestamp,
    end: Timestamp,
    whole_days: bool,
    rules: &Rules,
) -> u32 {
    if kind == RequestKind::MissedPunch {
        return 0;
    }
    let tz = &rules.settings.time_zone;
    if whole_days {
        let first = tz.to_datetime(start).date();
        let last = tz.to_datetime(ts(end.as_millisecond() - 1)).date();
        let mut n = 0u32;
        let mut d = first;
        while d <= last {
            if rules.calendar.day_kind(d).is_working() {
                n += 2;
            }
            match d.tomorrow() {
                Ok(x) => d = x,
                Err(_) => break,
            }
        }
        n
    } else {
        let mins = (end.as_millisecond() - start.as_millisecond()).max(0) / 60_000;
        u32::try_from(((mins + 239) / 240).max(1)).unwrap_or(u32::MAX)
    }
}

/// The limits that need the person's stored requests and balances, run inside the
/// store's transaction: `existing` are the person's pending and approved requests
/// of the year of `new`, `balances` their balances of that year.
pub fn limits(
    new: &NewRequest,
    existing: &[Request],
    balances: &[LeaveBalance],
    config: &RequestsConfig,
    rules: &Rules,
    today: Date,
) -> Result<(), String> {
    let tz = &rules.settings.time_zone;
    let local = |ms: i64| tz.to_datetime(ts(ms)).date();
    match new.kind {
        RequestKind::MissedPunch => {
            let day = crate::attendance::attendance_date(ts(new.start_ms), &rules.settings);
            let oldest = today
                .checked_sub(jiff::Span::new().days(i64::from(config.missed_punch_days)))
                .unwrap_or(Date::MIN);
            if day < oldest {
                return Err(format!(
                    "at: {day} is more than {} days ago; a missed punch may be asked for up to {} days after (the earliest now is {oldest})",
                    config.missed_punch_days, config.missed_punch_days
                ));
            }
            let month = day.first_of_month();
            let same_month = existing
                .iter()
                .filter(|r| {
                    r.kind == RequestKind::MissedPunch
                        && local(r.start_ms).first_of_month() == month
                })
                .count();
            if same_month >= config.missed_punch_per_month as usize {
                return Err(format!(
                    "at: {} missed punches are already asked for in {} (at most {} a month)",
                    same_month,
                    month.strftime("%Y-%m"),
                    config.missed_punch_per_month
                ));
            }
            if existing.iter().any(|r| {
                r.kind == RequestKind::MissedPunch
                    && r.punch == new.punch
                    && crate::attendance::attendance_date(r.start(), &rules.settings) == day
            }) {
                return Err(format!(
                    "at: a missed {} on {day} is already asked for",
                    new.punch.map_or("punch", |p| match p {
                        CheckpointKind::Arrival => "arrival",
                        CheckpointKind::Departure => "departure",
                    })
                ));
            }
            Ok(())
        }
        RequestKind::Leave if config.balance_types.contains(&new.leave_type) => {
            let year = local(new.start_ms).year();
            let balance = balances
                .iter()
                .find(|b| b.leave_type == new.leave_type && b.year == year)
                .map_or(0, |b| b.half_days);
            let used: u32 = existing
                .iter()
                .filter(|r| {
                    r.kind == RequestKind::Leave
                        && r.leave_type == new.leave_type
                        && local(r.start_ms).year() == year
                })
                .map(|r| r.half_days)
                .sum();
            if used + new.half_days > balance {
                return Err(format!(
                    "leave_type: the {} balance for {year} is {} days, {} taken or asked for, {} left; this request is {} days",
                    new.leave_type,
                    balance::days(balance),
                    balance::days(used),
                    balance::days(balance.saturating_sub(used)),
                    balance::days(new.half_days)
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether `user` may file for `person`: their own, or someone a head, officer or
/// admin sees.
pub fn may_file(user: &User, person: &Person) -> bool {
    let target = Target::Person {
        employee_id: &person.employee_id,
        department: &person.department,
    };
    user.employee_id.as_deref() == Some(person.employee_id.as_str())
        || (user.role != Role::Staff && can(user, Action::View, target))
}

/// Whether `user` may see requests of `person` (the person, their head, officers
/// in scope, admins).
pub fn may_see(user: &User, person_id: &str, department: &str) -> bool {
    can(
        user,
        Action::View,
        Target::Person {
            employee_id: person_id,
            department,
        },
    )
}

/// Whether `user` may take the step `step` of a request of someone in
/// `department`: step 1 the department's head, or an officer or admin in scope
/// (an office without heads); step 2 an officer or admin in scope.
pub fn may_decide_step(user: &User, step: u8, employee_id: &str, department: &str) -> bool {
    let target = Target::Person {
        employee_id,
        department,
    };
    match user.role {
        Role::DeptHead => step == 1 && can(user, Action::View, target),
        Role::Officer | Role::Admin => can(user, Action::Decide, target),
        Role::Staff => false,
    }
}

fn own_case(user: &User, r: &Request) -> bool {
    user.employee_id.as_deref() == Some(r.employee_id.as_str()) || user.username == r.filed_by
}

fn entry(user: &User, now_ms: i64, action: &str, r: &Request, what: String) -> AuditEntry {
    AuditEntry::new(
        now_ms,
        format!("web:{}", user.username),
        action,
        &r.employee_id,
        serde_json::json!({ "request": r.id, "kind": r.kind.as_str(), "what": what }),
    )
}

/// A decision by `user` on `r` (as it stands in the store), or why not.
pub fn decide(
    user: &User,
    r: &Request,
    department: &str,
    approve: bool,
    comment: &str,
    now_ms: i64,
) -> Result<Change, StoreError> {
    if r.status != RequestStatus::Pending {
        return Err(StoreError::Conflict(format!(
            "request {} is {} already",
            r.id,
            r.status.as_str()
        )));
    }
    if own_case(user, r) {
        return Err(StoreError::Denied(format!(
            "nobody decides their own request: request {} is for {} and was filed by {}",
            r.id, r.employee_id, r.filed_by
        )));
    }
    let step = r.next_step();
    if !may_decide_step(user, step, &r.employee_id, department) {
        return Err(StoreError::Denied(if step == 2 {
            format!(
                "request {} waits for an officer's decision (the second of two)",
                r.id
            )
        } else {
            format!(
                "request {} is for {} of {department}, which is not in your scope",
                r.id, r.employee_id
            )
        }));
    }
    if r.decisions.iter().any(|d| d.by == user.username) {
        return Err(StoreError::Denied(format!(
            "request {} needs a second decision by someone else",
            r.id
        )));
    }
    let comment = comment.trim();
    if comment.chars().count() > 2000 {
        return Err(StoreError::Invalid(
            "comment: longer than 2000 characters".into(),
        ));
    }
    let decision = Decision {
        step,
        by: user.username.clone(),
        approve,
        comment: comment.to_owned(),
        at_ms: now_ms,
    };
    let last = step >= r.steps;
    let (status, effect, action) = match (approve, last) {
        (false, _) => (RequestStatus::Rejected, Effect::None, "request.reject"),
        (true, false) => (RequestStatus::Pending, Effect::None, "request.approve"),
        (true, true) => (
            RequestStatus::Approved,
            Effect::Apply(entries(r, &user.username, comment)),
            "request.approve",
        ),
    };
    let what = format!(
        "step {step} of {}: {}{}",
        r.steps,
        if approve { "approved" } else { "rejected" },
        if comment.is_empty() {
            String::new()
        } else {
            format!(": {comment}")
        }
    );
    let mut audit = vec![entry(user, now_ms, action, r, what)];
    if status == RequestStatus::Approved {
        audit.push(entry(
            user,
            now_ms,
            "verdict.correct",
            r,
            format!(
                "{} from request {} enters the record",
                r.kind.as_str(),
                r.id
            ),
        ));
    }
    Ok(Change {
        status,
        decision: Some(decision),
        closed_by: None,
        effect,
        audit,
    })
}

/// A cancellation by `user`: the requester while pending; an approver (who may
/// decide the person's requests and is not the person) once approved, which
/// undoes it.
pub fn cancel(
    user: &User,
    r: &Request,
    department: &str,
    now_ms: i64,
) -> Result<Change, StoreError> {
    let (effect, allowed) = match r.status {
        RequestStatus::Pending => (
            Effect::None,
            user.username == r.filed_by
                || user.employee_id.as_deref() == Some(r.employee_id.as_str()),
        ),
        RequestStatus::Approved => (
            Effect::Withdraw,
            !own_case(user, r) && may_decide_step(user, 1, &r.employee_id, department),
        ),
        other => {
            return Err(StoreError::Conflict(format!(
                "request {} is {} already",
                r.id,
                other.as_str()
            )));
        }
    };
    if !allowed {
        return Err(StoreError::Denied(if r.status == RequestStatus::Pending {
            format!(
                "only who filed request {} (or the person it is for) may cancel it while it is pending",
                r.id
            )
        } else {
            format!(
                "an approved request is cancelled by an approver of {department}, not by the person it is for"
            )
        }));
    }
    let what = if effect == Effect::Withdraw {
        "cancelled after approval: taken out of the record".to_owned()
    } else {
        "cancelled while pending".to_owned()
    };
    let mut audit = vec![entry(user, now_ms, "request.cancel", r, what)];
    if effect == Effect::Withdraw {
        audit.push(entry(
            user,
            now_ms,
            "verdict.correct",
            r,
            format!(
                "{} from request {} leaves the record",
                r.kind.as_str(),
                r.id
            ),
        ));
    }
    Ok(Change {
        status: RequestStatus::Cancelled,
        decision: None,
        closed_by: Some(user.username.clone()),
        effect,
        audit,
    })
}

/// The exemptions or corrections an approved request becomes.
pub fn entries(r: &Request, approver: &str, comment: &str) -> Vec<Exemption> {
    let kind = match (r.kind, r.punch) {
        (RequestKind::Leave, _) => ExemptionKind::Leave,
        (RequestKind::Field, _) => ExemptionKind::Field,
        (RequestKind::BusinessTrip, _) => ExemptionKind::BusinessTrip,
        (RequestKind::Overtime, _) => ExemptionKind::Overtime,
        (RequestKind::MissedPunch, Some(CheckpointKind::Departure)) => {
            ExemptionKind::DeparturePunch
        }
        (RequestKind::MissedPunch, _) => ExemptionKind::ArrivalPunch,
    };
    let mut note = format!("request {} approved by {approver}: {}", r.id, r.reason);
    if !r.leave_type.is_empty() {
        note = format!("{} ({note})", r.leave_type);
    }
    if !comment.is_empty() {
        note.push_str(&format!(" — {comment}"));
    }
    vec![Exemption {
        employee_id: r.employee_id.clone(),
        kind,
        start: r.start(),
        end: r.end(),
        note,
    }]
}

/// The filing's audit entry.
pub fn filed_entry(user: &User, new: &NewRequest) -> AuditEntry {
    AuditEntry::new(
        new.filed_ms,
        format!("web:{}", user.username),
        "request.file",
        &new.employee_id,
        serde_json::json!({
            "kind": new.kind.as_str(),
            "leave_type": new.leave_type,
            "from_ms": new.start_ms,
            "to_ms": new.end_ms,
            "steps": new.steps,
        }),
    )
}

#[cfg(test)]
mod tests;

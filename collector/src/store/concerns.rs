//! The store's traits, one per concern. Everything above `store/` reaches
//! storage through these (and [`super::Store`] for ingest); each store
//! implements all of them, and [`Stores`] puts them together.
//!
//! Methods are synchronous, as reads have always been here: callers run them on
//! blocking threads (the pages, reports and the recompute do).

use super::calendar::NoticeInfo;
use super::directory::{ImportCounts, JudgedDay, KnownPc, StoredVerdict, Unmapped};
use super::integrity::{FirstSighting, OffsetBatch, RecordedEvent, TroubleEvent};
use super::retention::Pruned;
use super::{AgentInfo, NewToken, StoreError, StoredEvent, TokenInfo, TokenSpec};
use crate::attendance::{Exemption, Notice, Person, Settings, Status};
use crate::audit::{AuditEntry, AuditRecord, Verification};
use crate::notify::{Notification, Outgoing};
use crate::reports::corrections::{Appeal, Correction};
use crate::requests::{ChangeFn, LeaveBalance, LimitCheck, NewRequest, Request, RequestQuery};
use crate::users::{NewUser, User};
use jiff::civil::Date;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Accounts of the people who read reports: users, web sessions, API tokens.
pub trait Accounts: Send + Sync {
    /// Creates an account with a one-time password, which is returned.
    fn add_user(&self, new: &NewUser, now_ms: i64) -> Result<String, StoreError>;

    /// The account named `username`, if any.
    fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// Every account, by username.
    fn users(&self) -> Result<Vec<User>, StoreError>;

    /// The account if `password` is right; `None` for an unknown user or a wrong
    /// password alike.
    fn check_login(&self, username: &str, password: &str) -> Result<Option<User>, StoreError>;

    /// Sets a person's own password and clears the one-time flag.
    fn set_password(&self, user_id: i64, password: &str) -> Result<(), StoreError>;

    /// Starts a web session; returns the token for the cookie.
    fn create_session(&self, user_id: i64, now_ms: i64) -> Result<String, StoreError>;

    /// The account of a live session token.
    fn session_user(&self, token: &str, now_ms: i64) -> Result<Option<User>, StoreError>;

    /// Ends a session (logout).
    fn end_session(&self, token: &str) -> Result<(), StoreError>;

    /// Ends every session of an account (after a password change, but the current).
    fn end_sessions_of(&self, user_id: i64, except: Option<&str>) -> Result<(), StoreError>;

    /// Creates an API token for `username`, valid for `ttl_ms`; returns it (shown once).
    fn create_api_token(
        &self,
        username: &str,
        ttl_ms: i64,
        note: &str,
        now_ms: i64,
    ) -> Result<String, StoreError>;

    /// The account of a live API token.
    fn api_token_user(&self, token: &str, now_ms: i64) -> Result<Option<User>, StoreError>;

    /// Gives a local account a new one-time password (returned), to be changed
    /// at the next login, and ends its sessions. A directory account is
    /// [`StoreError::Conflict`]: its password is the directory's.
    fn reset_password(&self, username: &str) -> Result<String, StoreError>;

    /// Remembers the language an account chose on the pages (`zh`, `en`), for
    /// what kaoqin sends them.
    fn set_user_lang(&self, user_id: i64, lang: &str) -> Result<(), StoreError>;

    /// The language each account chose, by account id (those that chose one).
    fn user_langs(&self) -> Result<HashMap<i64, String>, StoreError>;

    /// Whether the account signs in through the office directory.
    fn is_directory_account(&self, user_id: i64) -> Result<bool, StoreError>;

    /// Creates, or updates (role, person, departments), the account of someone
    /// who signed in through the office directory. A local account of that name
    /// is [`StoreError::Conflict`] and left alone.
    fn upsert_directory_user(&self, new: &NewUser, now_ms: i64) -> Result<User, StoreError>;
}

/// Enrolment tokens and agents, as the officer's commands see them.
pub trait Admin: Send + Sync {
    /// Whether the store answers at all (health checks): `Busy` when it does not.
    fn ping(&self) -> Result<(), StoreError>;

    /// Every enrolment token, newest first.
    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;

    /// Revokes the one token whose hash starts with `prefix` (at least 6 hex
    /// digits), or the token itself if given whole (`kq1-...`). Returns the hash
    /// prefix. Revoking a revoked token is an error that says so.
    fn revoke_token(&self, prefix: &str, actor: &str, now_ms: i64) -> Result<String, StoreError>;

    /// Every enrolled agent with its latest measured clock offset, by id.
    fn agents(&self) -> Result<Vec<AgentInfo>, StoreError>;

    /// For each agent, by id, in how many of `slots` (`[start_ms, end_ms)`, by the
    /// PC's clock) it recorded any event: one index probe per agent and slot.
    fn heard_in(&self, slots: &[(i64, i64)]) -> Result<Vec<(String, u32)>, StoreError>;

    /// Revokes an agent: its key stops working (a running `serve` notices within
    /// a second) and its machine can enrol again only with a token created after
    /// now. Its stored events stay.
    fn revoke_agent(&self, agent_id: &str, actor: &str, now_ms: i64) -> Result<(), StoreError>;

    /// Creates an enrolment token valid for `ttl_ms`, usable `max_uses` times
    /// (unlimited if `None`).
    fn create_token(&self, spec: &TokenSpec, now_ms: i64) -> Result<NewToken, StoreError>;
}

/// The hash-chained audit log: append, list, verify.
pub trait Audit: Send + Sync {
    /// Appends to the audit log (see [`crate::audit`]); returns the record's id.
    fn audit(&self, entry: &AuditEntry) -> Result<i64, StoreError>;

    /// The audit log, oldest first.
    fn audit_list(&self) -> Result<Vec<AuditRecord>, StoreError>;

    /// Recomputes the audit log's hash chain.
    fn audit_verify(&self) -> Result<Verification, StoreError>;
}

/// Appeals of day verdicts and the corrections they lead to.
pub trait Appeals: Send + Sync {
    /// Files an appeal; an open appeal of the same day is an error, and so is a day
    /// after `today` or more than `limits.window_days` before it, or a person with
    /// `limits.max_open` appeals open already.
    #[allow(clippy::too_many_arguments)]
    fn add_appeal(
        &self,
        employee_id: &str,
        date: Date,
        requested: Status,
        reason: &str,
        by: &str,
        today: Date,
        limits: crate::config::AppealsConfig,
        now_ms: i64,
    ) -> Result<i64, StoreError>;

    /// One appeal.
    fn appeal(&self, id: i64) -> Result<Option<Appeal>, StoreError>;

    /// Appeals, newest first: of one person, or of everyone; only open ones if asked.
    fn appeals(
        &self,
        employee_id: Option<&str>,
        only_open: bool,
    ) -> Result<Vec<Appeal>, StoreError>;

    /// The open appeals of everyone, oldest first, `limit` from `offset`, and how
    /// many there are.
    fn open_appeals(&self, limit: u32, offset: u32) -> Result<(Vec<Appeal>, u64), StoreError>;

    /// Decides an open appeal; approving writes a correction to the requested status.
    /// Nobody decides their own: `by` (and `by_employee`, the decider's own staff
    /// record) must be neither the person appealing nor who filed it.
    fn decide_appeal(
        &self,
        id: i64,
        approve: bool,
        comment: &str,
        by: &str,
        by_employee: Option<&str>,
        now_ms: i64,
    ) -> Result<Appeal, StoreError>;

    /// The latest correction of every corrected day in `from..=to`, by (employee, date).
    fn corrections(
        &self,
        from: Date,
        to: Date,
    ) -> Result<BTreeMap<(String, Date), Correction>, StoreError>;
}

/// Requests (leave, field work, trips, overtime, missed punches), their
/// decisions, and leave balances. The rules are [`crate::requests`]'s; the store
/// runs them inside its transactions so that what they read cannot change before
/// what they decide is written.
pub trait Requests: Send + Sync {
    /// Stores `new` as pending if `check` accepts it, handed the person's pending
    /// and approved requests overlapping `[window.0, window.1)` and their leave
    /// balances, inside the transaction that stores it (two requests filed at
    /// once take turns, on every collector). Appends `audit`. A refusal of
    /// `check` is [`StoreError::Conflict`] with its words.
    fn add_request(
        &self,
        new: &NewRequest,
        window: (i64, i64),
        check: &LimitCheck<'_>,
        audit: &AuditEntry,
    ) -> Result<i64, StoreError>;

    /// One request with its decisions.
    fn request(&self, id: i64) -> Result<Option<Request>, StoreError>;

    /// The requests `q` asks for, newest first, with their decisions.
    fn requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError>;

    /// Changes request `id` as `change` decides from its current state, in one
    /// transaction with what the change does: the decision, the status, the
    /// entries it writes or withdraws (and the days they touch marked dirty, by
    /// `settings`) and its audit entries. Returns the request as changed.
    fn change_request(
        &self,
        id: i64,
        settings: &Settings,
        change: &ChangeFn<'_>,
    ) -> Result<Request, StoreError>;

    /// Leave balances, of one person or everyone, of one year or all, by person,
    /// year and type.
    fn leave_balances(
        &self,
        employee_id: Option<&str>,
        year: Option<i16>,
    ) -> Result<Vec<LeaveBalance>, StoreError>;

    /// Sets balances (replacing those of the same person, year and type), all or
    /// nothing; every person must be in the directory. Appends `audit`.
    fn import_leave_balances(
        &self,
        list: &[LeaveBalance],
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
}

/// A setting the office edits in the console (the schedules), kept with its
/// revision, when and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeSetting {
    pub value: String,
    /// Grows with every save (1: the first).
    pub revision: i64,
    pub updated_ms: i64,
    pub actor: String,
}

/// Settings edited in the console, which win over the config file's.
pub trait OfficeSettings: Send + Sync {
    /// The setting `key`, if it was ever saved.
    fn office_setting(&self, key: &str) -> Result<Option<OfficeSetting>, StoreError>;

    /// Saves `value` under `key` as a new revision, audited as `setting.<key>` by
    /// `actor` in the same transaction; returns the revision.
    fn set_office_setting(
        &self,
        key: &str,
        value: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError>;
}

/// The notification outbox: each message once, sent or retried.
pub trait Notifications: Send + Sync {
    /// Stores the messages whose keys are new, and notes `date` as composed, in
    /// one transaction; returns how many were new.
    fn enqueue_notifications(
        &self,
        date: Date,
        list: &[Outgoing],
        now_ms: i64,
    ) -> Result<usize, StoreError>;

    /// Whether `date`'s messages were composed.
    fn notify_composed(&self, date: Date) -> Result<bool, StoreError>;

    /// Claims up to `limit` unsent messages no other sender holds, for `lease_ms`:
    /// those due at `now_ms`, or, with `date`, every one of that day.
    fn claim_notifications(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
        date: Option<Date>,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Marks a message sent.
    fn notification_sent(&self, key: &str, now_ms: i64) -> Result<(), StoreError>;

    /// Records a failed try and when to try again.
    fn notification_failed(&self, key: &str, error: &str, next_ms: i64) -> Result<(), StoreError>;

    /// Stored messages, of one day or all, newest first, at most `limit`.
    fn notifications(
        &self,
        date: Option<Date>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;
}

/// The State Council holiday notices an office imported.
pub trait CalendarNotices: Send + Sync {
    /// A number that grows with every imported notice (0: none).
    fn calendar_revision(&self) -> Result<i64, StoreError>;

    /// Every imported notice with its days, by year.
    fn calendar_notices(&self) -> Result<Vec<Notice>, StoreError>;

    /// The imported notices, without their days, by year.
    fn calendar_notice_infos(&self) -> Result<Vec<NoticeInfo>, StoreError>;

    /// Stores `notice` (already validated), replacing any earlier import of its
    /// year, and audits it; returns whether an earlier import was replaced.
    fn import_calendar_notice(
        &self,
        notice: &Notice,
        actor: &str,
        source: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// The staff directory, exemptions, and which PCs and events belong to whom.
pub trait Directory: Send + Sync {
    /// Upserts `people` by employee id and sets their accounts, all or nothing. An
    /// account already mapped to someone not in `people` is an error naming both.
    fn import_staff(&self, people: &[Person], now_ms: i64) -> Result<ImportCounts, StoreError>;

    /// Sets (or, with `None`, clears) the last day `employee_id` worked here, and
    /// audits it (`staff.left` or `staff.returned`). The person stays in the
    /// directory with their history; no day after it is judged. An unknown
    /// person is [`StoreError::NotFound`].
    fn set_left_on(
        &self,
        employee_id: &str,
        left_on: Option<Date>,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Everyone in the directory, by employee id, with their accounts (lower case).
    fn staff(&self) -> Result<Vec<Person>, StoreError>;

    /// One staff member with their accounts, if in the directory.
    fn person(&self, employee_id: &str) -> Result<Option<Person>, StoreError>;

    /// Accounts seen on PCs that belong to nobody in the directory.
    fn unmapped_accounts(&self) -> Result<Vec<Unmapped>, StoreError>;

    /// The PCs on which any of `accounts` was ever seen.
    fn known_pcs(&self, accounts: &[String]) -> Result<Vec<KnownPc>, StoreError>;

    /// The agent ids of the PCs that `names` (hostnames, machine ids or agent ids,
    /// any case) name.
    fn pcs_named(&self, names: &[String]) -> Result<BTreeSet<String>, StoreError>;

    /// When each of `pcs` was enrolled again with an instant in `[from_ms, to_ms]`.
    fn reenrolments(
        &self,
        pcs: &[KnownPc],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;

    /// When each of `accounts` was first seen on each PC (corrected instant), as
    /// (agent id, account in lower case, first_ms), for first sightings in
    /// `[from_ms, to_ms]`.
    fn account_firsts(
        &self,
        accounts: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError>;

    /// Refused events that claimed one of `accounts` at an instant in
    /// `[from_ms, to_ms]`: (agent id, account in lower case, claimed instant).
    fn refused_claims(
        &self,
        accounts: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError>;

    /// Events of one PC with `from_ms <= at_ms < to_ms` (agent clock), in time order.
    fn pc_events(
        &self,
        pc: &KnownPc,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The last event of a PC before `ms` and its first at or after `ms2`.
    fn pc_neighbours(
        &self,
        pc: &KnownPc,
        ms: i64,
        ms2: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Adds exemptions, all or nothing, and marks the days they touch dirty for
    /// the accounts of their people.
    fn add_exemptions(
        &self,
        list: &[Exemption],
        settings: &Settings,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Exemptions overlapping `[from_ms, to_ms)`, of one person or everyone.
    fn exemptions(
        &self,
        employee_id: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Exemption>, StoreError>;
}

/// Stored day verdicts and the marks of days to judge again.
pub trait Verdicts: Send + Sync {
    /// Takes every dirty (account, date) that no other recompute holds, as of
    /// `now_ms`: each is held (claimed) until [`Verdicts::release_dirty`], and the
    /// claims of a recompute that died are taken again once
    /// [`super::DIRTY_LEASE_MS`] have passed. A mark made meanwhile is a new one.
    fn take_dirty_at(&self, now_ms: i64) -> Result<Vec<(String, Date)>, StoreError>;

    /// [`Verdicts::take_dirty_at`] the wall clock's present.
    fn take_dirty(&self) -> Result<Vec<(String, Date)>, StoreError> {
        self.take_dirty_at(crate::clock::now_ms())
    }

    /// Ends the claims on taken days: their verdicts are stored, or they were
    /// marked dirty again.
    fn release_dirty(&self, days: &[(String, Date)]) -> Result<(), StoreError>;

    /// Marks (account, date) pairs dirty again (a recompute that failed).
    fn mark_dirty(&self, days: &[(String, Date)]) -> Result<(), StoreError>;

    /// The accounts marked dirty on each date of `from..=to`.
    fn dirty_between(
        &self,
        from: Date,
        to: Date,
    ) -> Result<HashMap<Date, HashSet<String>>, StoreError>;

    /// Hands `f` the stored verdicts on `from..=to`, of one person or everyone, in
    /// (date, employee id) order; with `full`, each with its whole verdict's JSON.
    /// The read holds the reader connection: `f` must not use the store.
    fn for_each_verdict(
        &self,
        from: Date,
        to: Date,
        employee_id: Option<&str>,
        full: bool,
        f: &mut dyn FnMut(StoredVerdict<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;

    /// Stores (replaces) person-days' verdicts, both the figures and the whole, in
    /// one transaction.
    fn put_verdicts(&self, days: &[JudgedDay]) -> Result<(), StoreError>;
}

/// What the integrity listing reads.
pub trait IntegrityReads: Send + Sync {
    /// Lifecycle, data-gap and clock-jump events with corrected instants in range.
    fn trouble_events(&self, from_ms: i64, to_ms: i64) -> Result<Vec<TroubleEvent>, StoreError>;

    /// Accounts first seen on a PC in range.
    fn first_sightings(&self, from_ms: i64, to_ms: i64) -> Result<Vec<FirstSighting>, StoreError>;

    /// What the collector recorded about agents in range.
    fn recorded_events(&self, from_ms: i64, to_ms: i64) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Batches received in range with a clock offset of at least `min_ms` either way.
    fn offset_batches(
        &self,
        from_ms: i64,
        to_ms: i64,
        min_ms: i64,
    ) -> Result<Vec<OffsetBatch>, StoreError>;

    /// Enrolled, unrevoked agents not heard from since before `before_ms`, the
    /// longest silent first: (agent id, hostname, last seen).
    fn silent_agents(
        &self,
        before_ms: i64,
    ) -> Result<Vec<(String, String, Option<i64>)>, StoreError>;
}

/// Stored raw events, read back whole.
pub trait Events: Send + Sync {
    /// Calls `f` with every stored event, in agent then seq order, optionally of
    /// one agent only. Stops at the first error `f` returns.
    fn for_each_event(
        &self,
        agent_id: Option<&str>,
        f: &mut dyn FnMut(StoredEvent) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;

    /// Counts stored events, and distinct (agent, seq) pairs among them.
    fn count_events(&self) -> Result<(u64, u64), StoreError>;

    /// Drops the raw events and batches of the (UTC) months before `before` (the
    /// first of a month) and freezes the verdicts before
    /// [`super::retention::frozen_before`]; refuses while any of those is dirty or
    /// provisional. Audited as `events.prune` by `actor`.
    fn prune_events(&self, before: Date, actor: &str, now_ms: i64) -> Result<Pruned, StoreError>;

    /// The day before which verdicts are frozen (their events were pruned).
    fn frozen_before(&self) -> Result<Option<Date>, StoreError>;
}

/// Every concern of a store: what the collector above `store/` holds.
pub trait Stores:
    Accounts
    + Admin
    + Audit
    + Appeals
    + Requests
    + Notifications
    + OfficeSettings
    + CalendarNotices
    + Directory
    + Verdicts
    + IntegrityReads
    + Events
{
}

impl<
    T: Accounts
        + Admin
        + Audit
        + Appeals
        + Requests
        + Notifications
        + OfficeSettings
        + CalendarNotices
        + Directory
        + Verdicts
        + IntegrityReads
        + Events,
> Stores for T
{
}

//! The SQLite schema, one migration per version.

/// Schema changelog (PRAGMA user_version):
/// 1. tokens, agents, batches, events.
/// 2. attendance: staff, staff_accounts, pc_accounts (which OS accounts each PC has
///    seen, backfilled from events), exemptions, day_verdicts, dirty_days.
/// 3. audit_log (hash-chained, see `crate::audit`) with triggers that refuse
///    UPDATE and DELETE; index of batches by agent and id (latest clock offset).
/// 4. people who read reports: users, user_departments, web_sessions, api_tokens;
///    appeals and corrections of day verdicts (`crate::users`, `crate::reports::corrections`).
/// 5. day verdicts split in two: `day_verdicts` holds the figures reports add up, in
///    typed columns ordered by date, and `day_verdict_details` the whole verdict
///    (evidence, checkpoints) as JSON. Verdicts are derived from events, exemptions
///    and rules, so the old rows are dropped and recomputed when next read.
/// 6. two indexes no query uses are dropped, each a b-tree every stored event or
///    batch updated: events by (account, at_ms) (verdicts read events by PC) and
///    batches by (agent, received_ms) (the latest offset uses (agent, id)).
/// 7. `events.data` of new rows is the protobuf of the event's kind (a BLOB, about
///    a third of its JSON, see [`super::stored_kind`]); rows stored before stay JSON TEXT
///    and are read as such. No table changes; the version keeps older collectors,
///    which read JSON only, from opening the file.
/// 8. the latest measured clock offset is kept on the agent's row, which every
///    Report updates anyway, so the index of batches by (agent, id) that only
///    served to find it is dropped: one b-tree page less written per Report.
/// 9. exemptions by end instant: everyone's exemptions for a period are those
///    ending after its start, found without reading every exemption ever entered.
/// 10. calendar_notices and calendar_notice_days: the State Council holiday notices
///     an office imported (`crate::store::calendar`).
/// 11. day_verdicts.unverified: checkpoints late or early not charged for want of
///     evidence, which the summary counts with the unknown figures.
/// 12. the trust rules at ingest: agents.latest_at_ms (the latest corrected instant
///     stored from the agent, lowered by a recorded clock jump); tokens.reenroll
///     (only such tokens enrol a machine id already known); enrolments (what each
///     token was used for); integrity_events (refused batches, re-enrolments: what
///     is not derived from stored events).
/// 13. integrity_events.claimed_ms and .account: the instant and OS account a refused
///     event claimed, so the verdict of the day it touches can say so.
/// 14. staff_pcs: each person's own PCs as the directory lists them (hostname or
///     machine id, lower case); presence on others is marked in the evidence.
///     Integrity events by agent (re-enrolments in a day's evidence).
/// 15. retention: the day before which verdicts are frozen, their raw events
///     pruned (`events prune`, `crate::store::retention`).
/// 16. dirty_claims: dirty days a recompute has taken and not yet stored, taken
///     again by the next one if it dies ([`crate::store::DIRTY_LEASE_MS`]).
/// 17. requests, request_decisions, leave_balances (`crate::requests`);
///     exemptions.request_id links what an approved request wrote.
/// 18. staff.email; notifications (the outbox: each message once, with its
///     attempts) and notify_days (the days whose digests were composed), see
///     `crate::notify`.
/// 19. office_settings: what the console edits (the schedules), with a revision.
/// 20. users.lang: the language an account chose on the pages, for notifications.
/// 21. staff.left_on: the day a person left; no verdicts after it.
/// 22. events_recent: the writer appends each new event there, in arrival order,
///     and moves them into `events` (kept in (agent, seq) order, with its time
///     index) a few thousand at a time (`writer::fold`). Appended rows share the
///     last page of one b-tree, so a group commit of many agents' small Reports
///     writes a few pages instead of two of every agent's; the move writes each
///     agent's pages once for many Reports. Readers read `all_events`, the union.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    max_uses    INTEGER,
    uses        INTEGER NOT NULL DEFAULT 0,
    revoked_ms  INTEGER,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE TABLE agents (
    num           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    machine_id    TEXT NOT NULL UNIQUE,
    hostname      TEXT NOT NULL,
    os            TEXT NOT NULL,
    os_version    TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    key_hash      TEXT NOT NULL,
    enrolled_ms   INTEGER NOT NULL,
    last_seen_ms  INTEGER,
    max_seq       INTEGER NOT NULL DEFAULT 0,
    revoked_ms    INTEGER
);
CREATE TABLE batches (
    id              INTEGER PRIMARY KEY,
    agent           INTEGER NOT NULL REFERENCES agents(num),
    received_ms     INTEGER NOT NULL,
    sent_at_ms      INTEGER NOT NULL,
    clock_offset_ms INTEGER NOT NULL,
    first_seq       INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL,
    events          INTEGER NOT NULL,
    inserted        INTEGER NOT NULL
);
CREATE INDEX batches_by_agent ON batches(agent, received_ms);
CREATE TABLE events (
    agent           INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    at_ms           INTEGER NOT NULL,
    clock_offset_ms INTEGER NOT NULL,
    received_ms     INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    account         TEXT,
    data            TEXT NOT NULL,
    PRIMARY KEY (agent, seq)
) WITHOUT ROWID;
CREATE INDEX events_by_agent_time ON events(agent, at_ms);
CREATE INDEX events_by_account_time ON events(account, at_ms) WHERE account IS NOT NULL;
"#,
    r#"
CREATE TABLE staff (
    employee_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    department  TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL
);
-- account is stored in ASCII lower case; one account belongs to at most one person.
CREATE TABLE staff_accounts (
    account     TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES staff(employee_id) ON DELETE CASCADE
);
CREATE INDEX staff_accounts_by_person ON staff_accounts(employee_id);
-- Every OS account (lower case) a PC has reported, with corrected first/last instants.
CREATE TABLE pc_accounts (
    agent    INTEGER NOT NULL,
    account  TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms  INTEGER NOT NULL,
    PRIMARY KEY (agent, account)
) WITHOUT ROWID;
CREATE INDEX pc_accounts_by_account ON pc_accounts(account);
INSERT INTO pc_accounts (agent, account, first_ms, last_ms)
    SELECT agent, lower(account), min(at_ms + clock_offset_ms), max(at_ms + clock_offset_ms)
    FROM events WHERE account IS NOT NULL GROUP BY agent, lower(account);
CREATE TABLE exemptions (
    id          INTEGER PRIMARY KEY,
    employee_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    created_ms  INTEGER NOT NULL
);
CREATE INDEX exemptions_by_person ON exemptions(employee_id, start_ms);
-- One verdict per person and attendance day; reports read these, never raw events.
CREATE TABLE day_verdicts (
    employee_id TEXT NOT NULL,
    date        TEXT NOT NULL,
    status      TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    provisional INTEGER NOT NULL,
    computed_ms INTEGER NOT NULL,
    context_fp  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (employee_id, date)
) WITHOUT ROWID;
CREATE INDEX day_verdicts_by_date ON day_verdicts(date);
-- (account, attendance date) whose verdict may have changed; resolved to people when
-- verdicts are recomputed.
CREATE TABLE dirty_days (
    account TEXT NOT NULL,
    date    TEXT NOT NULL,
    PRIMARY KEY (account, date)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE INDEX batches_by_agent_id ON batches(agent, id);
CREATE INDEX events_integrity ON events(kind, at_ms) WHERE kind IN ('lifecycle', 'data_gap');
CREATE INDEX batches_by_offset ON batches(received_ms) WHERE abs(clock_offset_ms) >= 60000;
"#,
    r#"
CREATE TABLE users (
    id                   INTEGER PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL,
    role                 TEXT NOT NULL,
    employee_id          TEXT,
    must_change_password INTEGER NOT NULL,
    created_ms           INTEGER NOT NULL,
    disabled_ms          INTEGER
);
CREATE TABLE user_departments (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    department TEXT NOT NULL,
    PRIMARY KEY (user_id, department)
) WITHOUT ROWID;
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE api_tokens (
    hash       TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    note       TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
-- A staff member's request to change one day's verdict; state open|approved|rejected.
CREATE TABLE appeals (
    id               INTEGER PRIMARY KEY,
    employee_id      TEXT NOT NULL,
    date             TEXT NOT NULL,
    requested_status TEXT NOT NULL,
    reason           TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    created_ms       INTEGER NOT NULL,
    state            TEXT NOT NULL DEFAULT 'open',
    decided_by       TEXT,
    decided_ms       INTEGER,
    comment          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX appeals_by_person ON appeals(employee_id, date);
-- The latest correction of an (employee, date) overrides the computed status.
CREATE TABLE corrections (
    id          INTEGER PRIMARY KEY,
    employee_id TEXT NOT NULL,
    date        TEXT NOT NULL,
    status      TEXT NOT NULL,
    who         TEXT NOT NULL,
    why         TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    appeal_id   INTEGER REFERENCES appeals(id)
);
CREATE INDEX corrections_by_person ON corrections(employee_id, date);
"#,
    r#"
DROP TABLE day_verdicts;
CREATE TABLE day_verdicts (
    date            TEXT NOT NULL,
    employee_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    day_kind        TEXT NOT NULL,
    provisional     INTEGER NOT NULL,
    late_minutes    INTEGER NOT NULL,
    early_minutes   INTEGER NOT NULL,
    office_seconds  INTEGER NOT NULL,
    covered_seconds INTEGER NOT NULL,
    arrival_ms      INTEGER,
    departure_ms    INTEGER,
    -- JSON object: non-work category -> seconds in office hours.
    nonwork         TEXT NOT NULL,
    computed_ms     INTEGER NOT NULL,
    context_fp      TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    PRIMARY KEY (date, employee_id)
) WITHOUT ROWID;
CREATE INDEX day_verdicts_by_person ON day_verdicts(employee_id, date);
CREATE TABLE day_verdict_details (
    employee_id TEXT NOT NULL,
    date        TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    PRIMARY KEY (employee_id, date)
) WITHOUT ROWID;
"#,
    r#"
DROP INDEX events_by_account_time;
DROP INDEX batches_by_agent;
"#,
    "-- events.data: protobuf BLOB from here on; earlier rows stay JSON TEXT.",
    r#"
ALTER TABLE agents ADD COLUMN clock_offset_ms INTEGER;
UPDATE agents SET clock_offset_ms =
    (SELECT b.clock_offset_ms FROM batches b WHERE b.agent = agents.num ORDER BY b.id DESC LIMIT 1);
DROP INDEX batches_by_agent_id;
"#,
    "CREATE INDEX exemptions_by_end ON exemptions(end_ms);",
    r#"
CREATE TABLE calendar_notices (
    year        INTEGER PRIMARY KEY,
    revision    INTEGER NOT NULL,
    imported_ms INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    source      TEXT NOT NULL
);
CREATE TABLE calendar_notice_days (
    date TEXT PRIMARY KEY,
    year INTEGER NOT NULL REFERENCES calendar_notices(year),
    kind TEXT NOT NULL CHECK (kind IN ('holiday', 'makeup_workday')),
    note TEXT NOT NULL
) WITHOUT ROWID;
"#,
    "ALTER TABLE day_verdicts ADD COLUMN unverified INTEGER NOT NULL DEFAULT 0;",
    r#"
ALTER TABLE agents ADD COLUMN latest_at_ms INTEGER;
UPDATE agents SET latest_at_ms =
    (SELECT max(e.at_ms + e.clock_offset_ms) FROM events e WHERE e.agent = agents.num);
ALTER TABLE tokens ADD COLUMN reenroll INTEGER NOT NULL DEFAULT 0;
CREATE TABLE enrolments (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL,
    agent       INTEGER NOT NULL REFERENCES agents(num),
    at_ms       INTEGER NOT NULL,
    hostname    TEXT NOT NULL,
    reenrolled  INTEGER NOT NULL
);
CREATE INDEX enrolments_by_token ON enrolments(token_hash);
CREATE TABLE integrity_events (
    id      INTEGER PRIMARY KEY,
    agent   INTEGER REFERENCES agents(num),
    at_ms   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    seq     INTEGER,
    detail  TEXT NOT NULL
);
CREATE INDEX integrity_events_by_time ON integrity_events(at_ms);
"#,
    r#"
ALTER TABLE integrity_events ADD COLUMN claimed_ms INTEGER;
ALTER TABLE integrity_events ADD COLUMN account TEXT;
CREATE INDEX integrity_events_by_account ON integrity_events(account, claimed_ms)
    WHERE account IS NOT NULL;
"#,
    r#"
CREATE TABLE staff_pcs (
    employee_id TEXT NOT NULL REFERENCES staff(employee_id),
    pc          TEXT NOT NULL,
    PRIMARY KEY (employee_id, pc)
) WITHOUT ROWID;
CREATE INDEX integrity_events_by_agent ON integrity_events(agent, at_ms);
"#,
    r#"
CREATE TABLE retention (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    frozen_before TEXT NOT NULL,
    pruned_ms     INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE dirty_claims (
    account    TEXT NOT NULL,
    date       TEXT NOT NULL,
    claimed_ms INTEGER NOT NULL,
    PRIMARY KEY (account, date)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE requests (
    id          INTEGER PRIMARY KEY,
    employee_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    leave_type  TEXT NOT NULL DEFAULT '',
    punch       TEXT,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    whole_days  INTEGER NOT NULL,
    half_days   INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    filed_by    TEXT NOT NULL,
    filed_ms    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    steps       INTEGER NOT NULL,
    closed_by   TEXT,
    closed_ms   INTEGER
);
CREATE INDEX requests_by_person ON requests(employee_id, start_ms);
CREATE INDEX requests_by_status ON requests(status, id);
CREATE TABLE request_decisions (
    request_id INTEGER NOT NULL REFERENCES requests(id),
    step       INTEGER NOT NULL,
    by_user    TEXT NOT NULL,
    approve    INTEGER NOT NULL,
    comment    TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    PRIMARY KEY (request_id, step)
) WITHOUT ROWID;
CREATE TABLE leave_balances (
    employee_id TEXT NOT NULL,
    year        INTEGER NOT NULL,
    leave_type  TEXT NOT NULL,
    half_days   INTEGER NOT NULL,
    PRIMARY KEY (employee_id, year, leave_type)
) WITHOUT ROWID;
ALTER TABLE exemptions ADD COLUMN request_id INTEGER;
CREATE INDEX exemptions_by_request ON exemptions(request_id) WHERE request_id IS NOT NULL;
"#,
    r#"
ALTER TABLE staff ADD COLUMN email TEXT NOT NULL DEFAULT '';
CREATE TABLE notifications (
    key        TEXT PRIMARY KEY,
    date       TEXT NOT NULL,
    channel    TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    sent_ms    INTEGER,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_ms    INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    claimed_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notifications_due ON notifications(next_ms) WHERE sent_ms IS NULL;
CREATE TABLE notify_days (
    date        TEXT PRIMARY KEY,
    composed_ms INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE office_settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    actor      TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE users ADD COLUMN lang TEXT;
"#,
    r#"
ALTER TABLE staff ADD COLUMN left_on TEXT;
"#,
    r#"
CREATE TABLE events_recent (
    id              INTEGER PRIMARY KEY,
    agent           INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    at_ms           INTEGER NOT NULL,
    clock_offset_ms INTEGER NOT NULL,
    received_ms     INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    account         TEXT,
    data            TEXT NOT NULL
);
CREATE VIEW all_events AS
    SELECT agent, seq, at_ms, clock_offset_ms, received_ms, kind, account, data FROM events
    UNION ALL
    SELECT agent, seq, at_ms, clock_offset_ms, received_ms, kind, account, data FROM events_recent;
"#,
];

//! The audit log: who did what to the record, append-only and hash-chained.
//!
//! Every record carries the hash of the one before it:
//!
//! ```text
//!   id 1: prev = 000…0          hash = SHA-256(prev || canonical(1))
//!   id 2: prev = hash(1)        hash = SHA-256(prev || canonical(2))
//!   id 3: prev = hash(2)        ...
//! ```
//!
//! `canonical(r)` is the JSON array `[id, at_ms, actor, action, subject, detail]`
//! (`detail` as the stored text). [`verify`] recomputes the chain, so an edited,
//! inserted or deleted record is found by the first record whose hashes no longer
//! match.
//!
//! What must stay true:
//! - records are only ever appended, through [`append`]; the database refuses
//!   UPDATE and DELETE of `audit_log` with triggers (migration 3), so the product
//!   itself cannot edit it;
//! - ids are consecutive from 1: the id is part of the hashed record;
//! - [`append`] reads the chain's head and inserts in one write transaction, so two
//!   processes appending at once cannot fork the chain.
//!
//! What it cannot do: someone who can write the file can drop the triggers and
//! rewrite the whole chain from the edited record on, or cut records off its end.
//! Keep a copy of the head hash (`audit verify` prints it) elsewhere to detect that.

use sha2::Digest;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// When, epoch milliseconds.
    pub at_ms: i64,
    /// Who: `cli:<os user>`, `web:<employee id>`, `serve`.
    pub actor: String,
    /// What, a stable dotted name: `token.create`, `agent.revoke`, `staff.import`.
    pub action: String,
    /// What it was done to: a token hash prefix, an agent id, a file name.
    pub subject: String,
    /// Anything else worth keeping, as JSON.
    pub detail: serde_json::Value,
}

impl AuditEntry {
    /// An entry stamped with the given instant.
    pub fn new(
        at_ms: i64,
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            at_ms,
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            detail,
        }
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// JSON text, as hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every record matches; `head` is the last record's hash (or [`GENESIS`]).
    Intact { records: u64, head: String },
    /// The first record that does not match, and why.
    Broken { id: i64, problem: String },
}

/// The actor name for a command run by the local OS user.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// The hash of record `id` after the record hashed `prev_hash`.
pub fn record_hash(prev_hash: &str, id: i64, e: (&i64, &str, &str, &str, &str)) -> String {
    let (at_ms, actor, action, subject, detail) = e;
    let canonical = serde_json::json!([id, at_ms, actor, action, subject, detail]).to_string();
    let mut h = sha2::Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// Recomputes the chain from the first record and names the first that breaks it.
pub fn verify(records_oldest_first: impl IntoIterator<Item = AuditRecord>) -> Verification {
    let mut prev = GENESIS.to_owned();
    let mut records = 0;
    for (expected_id, r) in (1..).zip(records_oldest_first) {
        if r.id != expected_id {
            return Verification::Broken {
                id: r.id,
                problem: format!(
                    "record {} is missing (the ids jump from {} to {})",
                    expected_id,
                    expected_id - 1,
                    r.id
                ),
            };
        }
        if r.prev_hash != prev {
            return Verification::Broken {
                id: r.id,
                problem: "its prev_hash is not the hash of the record before it (a record before it was changed or removed)".into(),
            };
        }
        let hash = record_hash(
            &prev,
            r.id,
            (&r.at_ms, &r.actor, &r.action, &r.subject, &r.detail),
        );
        if hash != r.hash {
            return Verification::Broken {
                id: r.id,
                problem: "its content does not match its hash (the record was edited)".into(),
            };
        }
        prev = r.hash;
        records += 1;
    }
    Verification::Intact {
        records,
        head: prev,
    }
}

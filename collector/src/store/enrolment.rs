//! The enrolment rules, the same in every store: which token may enrol which
//! machine, and what a successful enrolment hands back.

use super::{AgentAuth, Enrolment, HostFacts, StoreError};

/// What is stored of an enrolment token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenState {
    pub expires_ms: i64,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub revoked_ms: Option<i64>,
    pub created_ms: i64,
    /// It may enrol a machine already known.
    pub reenroll: bool,
}

/// An agent already enrolled for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownMachine<'a> {
    pub agent_id: &'a str,
    pub hostname: &'a str,
    pub revoked_ms: Option<i64>,
}

fn show(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// Whether `token` (`None`: unknown) may enrol `host` at `now_ms`, the machine
/// being `known` or new. `BadToken` for the token's own faults and a revoked
/// machine with a token older than its revocation; `Denied` for a known machine
/// and a token for new machines only (the caller records that attempt).
pub fn check(
    token: Option<&TokenState>,
    known: Option<KnownMachine<'_>>,
    host: &HostFacts,
    now_ms: i64,
) -> Result<(), StoreError> {
    let Some(t) = token else {
        return Err(StoreError::BadToken("unknown enrolment token".into()));
    };
    if t.revoked_ms.is_some() {
        return Err(StoreError::BadToken(
            "enrolment token has been revoked".into(),
        ));
    }
    if now_ms >= t.expires_ms {
        return Err(StoreError::BadToken(format!(
            "enrolment token expired at {}",
            show(t.expires_ms)
        )));
    }
    if t.max_uses.is_some_and(|m| t.uses >= m) {
        return Err(StoreError::BadToken("enrolment token is used up".into()));
    }
    let Some(m) = known else {
        return Ok(());
    };
    // A revoked machine comes back only with a token made after its revocation:
    // the token it saved when it first enrolled must not undo the revocation.
    if let Some(revoked_ms) = m.revoked_ms
        && t.created_ms <= revoked_ms
    {
        return Err(StoreError::BadToken(format!(
            "agent {} of this machine was revoked at {}; enrol it with a token created after that",
            m.agent_id,
            show(revoked_ms)
        )));
    }
    if !t.reenroll {
        return Err(StoreError::Denied(format!(
            "machine {:?} is already enrolled as agent {} ({}); enrolling it again needs a token created with `token create --reenroll` (for a reinstall)",
            host.machine_id, m.agent_id, m.hostname
        )));
    }
    Ok(())
}

/// The integrity record of a re-enrolment.
pub fn reenrolled_detail(host: &HostFacts, old_hostname: &str) -> String {
    format!(
        "machine {:?} enrolled again as {} (was {old_hostname}) with a --reenroll token; the key it had no longer works",
        host.machine_id, host.hostname
    )
}

/// The integrity record of a refused attempt to take a known machine's identity.
pub fn refused_detail(host: &HostFacts, why: &str) -> String {
    format!("enrolment as {:?} refused: {why}", host.hostname)
}

/// What an enrolment hands the agent, and the identity the collector caches.
pub fn outcome(
    num: i64,
    agent_id: String,
    agent_key: String,
    key_hash: String,
    last_seq: u64,
    re_enrolled: bool,
) -> (Enrolment, AgentAuth) {
    (
        Enrolment {
            agent_id: agent_id.clone(),
            agent_key,
            last_seq,
            re_enrolled,
        },
        AgentAuth {
            agent_id,
            num,
            key_hash,
            revoked: false,
        },
    )
}

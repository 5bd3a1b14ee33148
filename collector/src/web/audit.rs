//! The web's (and report exports') door to the audit log ([`crate::audit`]):
//! every view of another person's record, every export, every appeal decision
//! and correction goes through [`record`].

use crate::audit::{AuditEntry, AuditRecord};
use crate::store::concerns::*;

/// Appends one entry: `actor` is a username (`web:` is prefixed) or an actor name
/// that already has a prefix (`cli:`); `action` a dotted name such as
/// `record.view`; `detail` free text.
pub fn record(
    store: &dyn Stores,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> anyhow::Result<()> {
    let actor = if actor.contains(':') {
        actor.to_owned()
    } else {
        format!("web:{actor}")
    };
    store.audit(&AuditEntry::new(
        crate::clock::now_ms(),
        actor,
        action,
        subject,
        serde_json::json!({ "what": detail }),
    ))?;
    Ok(())
}

/// The newest `n` records, newest first.
pub fn recent(store: &dyn Stores, n: usize) -> anyhow::Result<Vec<AuditRecord>> {
    let mut all = store.audit_list()?;
    all.reverse();
    all.truncate(n);
    Ok(all)
}

//! The attendance side of the embedded store: the staff directory, exemptions, the
//! accounts each PC has seen, and stored day verdicts with their dirty marks.
//!
//! What must stay true:
//! - an import replaces nothing unless all of it is written (one transaction);
//! - an OS account (compared in ASCII lower case) belongs to at most one person;
//! - events of unmapped accounts are never deleted: they are listed by
//!   [`SqliteStore::unmapped_accounts`] and counted once someone claims the account;
//! - a (account, date) taken by [`SqliteStore::take_dirty`] is gone from the table,
//!   so an event arriving during a recompute marks it again for the next round.

use super::sqlite::{SqliteStore, sql_err, stored_kind};
use super::{StoreError, StoredEvent};
use crate::attendance::{
    Coverage, DayKind, DayVerdict, Exemption, ExemptionKind, Person, Settings, Status,
    attendance_date,
};
use jiff::Timestamp;
use jiff::civil::Date;
use kaoqin_proto::event::Event;
use rusqlite::{OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// How an import changed the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportCounts {
    /// People new to the directory.
    pub added: usize,
    /// People already there, now updated.
    pub updated: usize,
}

/// An OS account seen in events that belongs to nobody in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// Lower-case account name.
    pub account: String,
    /// The PCs it was seen on: (agent id, hostname).
    pub pcs: Vec<(String, String)>,
    /// The last corrected instant it was seen.
    pub last_seen_ms: i64,
}

/// A PC of a person: (internal agent number, agent id).
pub type KnownPc = (i64, String);

/// SQL that is true when the observed account in column `col` (lower case) is the
/// listed account `?1` (lower case), as [`crate::attendance::account_matches`]
/// decides: the same name, or a name listed without a domain in any domain.
fn account_is(col: &str) -> String {
    format!("({col} = ?1 OR (instr(?1, '\\') = 0 AND substr({col}, instr({col}, '\\') + 1) = ?1))")
}

/// A stored day verdict as [`SqliteStore::for_each_verdict`] reads it, borrowed
/// from the row: the figures reports add up, and with `full` the whole verdict's
/// JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredVerdict<'a> {
    pub employee_id: &'a str,
    pub date: Date,
    pub status: Status,
    pub day_kind: DayKind,
    pub provisional: bool,
    pub late_minutes: u32,
    pub early_minutes: u32,
    /// Checkpoints late or early not charged for want of evidence.
    pub unverified: u32,
    pub coverage: Coverage,
    pub arrival: Option<Timestamp>,
    pub departure: Option<Timestamp>,
    /// Non-work seconds by category, the JSON object as stored: read it with
    /// [`StoredVerdict::for_each_nonwork`] or [`StoredVerdict::nonwork_seconds`].
    pub nonwork_json: &'a str,
    pub computed_ms: i64,
    pub context_fp: &'a str,
    /// The whole verdict as JSON, when asked for.
    pub verdict_json: Option<&'a str>,
}

impl StoredVerdict<'_> {
    /// Hands over each (category, seconds) of the non-work figures, allocating
    /// nothing for categories written plainly.
    pub fn for_each_nonwork(&self, mut f: impl FnMut(&str, u64)) -> Result<(), StoreError> {
        if self.nonwork_json == "{}" {
            return Ok(());
        }
        let corrupt = |_| {
            StoreError::Corrupt(format!(
                "day_verdicts.nonwork of {} on {}: {:?}",
                self.employee_id, self.date, self.nonwork_json
            ))
        };
        let mut de = serde_json::Deserializer::from_str(self.nonwork_json);
        serde::Deserializer::deserialize_map(&mut de, NonworkVisitor(&mut f)).map_err(corrupt)?;
        de.end().map_err(corrupt)
    }

    /// The non-work figures as a map.
    pub fn nonwork_seconds(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut out = BTreeMap::new();
        self.for_each_nonwork(|k, s| {
            out.insert(k.to_owned(), s);
        })?;
        Ok(out)
    }
}

/// Visits a JSON object of seconds by category.
struct NonworkVisitor<'f, F>(&'f mut F);

impl<'de, F: FnMut(&str, u64)> serde::de::Visitor<'de> for NonworkVisitor<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of seconds by category")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((CategoryKey(k), s)) = map.next_entry::<CategoryKey<'de>, u64>()? {
            (self.0)(&k, s);
        }
        Ok(())
    }
}

/// A category name, borrowed from the JSON unless it had to be unescaped.
struct CategoryKey<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for CategoryKey<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key;
        impl<'de> serde::de::Visitor<'de> for Key {
            type Value = CategoryKey<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a category name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CategoryKey(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CategoryKey(v.to_owned().into()))
            }
        }
        d.deserialize_str(Key)
    }
}

/// A verdict as judged, to be stored.
#[derive(Debug, Clone)]
pub struct JudgedDay {
    pub verdict: DayVerdict,
    pub computed_ms: i64,
    /// Hash of what the verdict depends on besides events.
    pub context_fp: String,
    /// Hash of the context and the events.
    pub fingerprint: String,
}

/// Everyone's exemptions that overlap `(?2, ?3)`, through exemptions_by_end: those
/// ending after the period begins, not every exemption ever entered. (The `+`
/// keeps exemptions_by_person from being chosen for the order, which scans them
/// all.)
const EVERYONE_EXEMPTIONS: &str = "SELECT employee_id, kind, start_ms, end_ms, note
    FROM exemptions WHERE ?1 IS NULL AND end_ms > ?2 AND start_ms < ?3
    ORDER BY +employee_id, start_ms, id";

/// A snake_case enum name as stored in a TEXT column.
pub(crate) fn enum_from_text<T: serde::de::DeserializeOwned>(
    column: &str,
    text: &str,
) -> Result<T, StoreError> {
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(text))
        .map_err(|_| StoreError::Corrupt(format!("day_verdicts.{column} {text:?}")))
}

pub(crate) fn enum_to_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Stores one exemption (of a person in the directory), linked to the request it
/// comes from if any, and marks the days it touches dirty for the person's
/// accounts.
pub(crate) fn insert_exemption(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    e: &Exemption,
    request_id: Option<i64>,
    settings: &Settings,
    now_ms: i64,
) -> Result<(), StoreError> {
    let err = sql_err(path);
    require_person(tx, path, &e.employee_id)?;
    tx.execute(
        "INSERT INTO exemptions (employee_id, kind, start_ms, end_ms, note, created_ms, request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.employee_id,
            e.kind.as_str(),
            e.start.as_millisecond(),
            e.end.as_millisecond(),
            e.note,
            now_ms,
            request_id
        ],
    )
    .map_err(&err)?;
    mark_days(tx, path, &e.employee_id, e.start, e.end, settings)
}

/// Refuses, naming them, someone not in the staff directory.
pub(crate) fn require_person(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
    employee_id: &str,
) -> Result<(), StoreError> {
    let known: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM staff WHERE employee_id = ?1",
            [employee_id],
            |r| r.get(0),
        )
        .map_err(sql_err(path))?;
    if known {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "employee {employee_id} is not in the staff directory (import it with `staff import`)"
        )))
    }
}

/// Marks the attendance days from `start` to `end` dirty for the accounts of
/// `employee_id`.
pub(crate) fn mark_days(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    employee_id: &str,
    start: Timestamp,
    end: Timestamp,
    settings: &Settings,
) -> Result<(), StoreError> {
    let err = sql_err(path);
    for d in exemption_days(start, end, settings) {
        tx.execute(
            "INSERT OR IGNORE INTO dirty_days (account, date)
             SELECT account, ?2 FROM staff_accounts WHERE employee_id = ?1",
            params![employee_id, d.to_string()],
        )
        .map_err(&err)?;
    }
    Ok(())
}

/// The attendance days an exemption over `[start, end]` touches.
pub(crate) fn exemption_days(start: Timestamp, end: Timestamp, settings: &Settings) -> Vec<Date> {
    let mut out = Vec::new();
    let mut d = attendance_date(start, settings);
    let last = attendance_date(end, settings);
    while d <= last {
        out.push(d);
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    out
}

pub(crate) fn parse_kind(s: &str) -> Option<ExemptionKind> {
    ExemptionKind::parse(s)
}

/// A stored `left_on` (`YYYY-MM-DD`, written only by [`set_left_on_entry`]'s callers).
pub(crate) fn left_on(text: Option<String>) -> Option<Date> {
    text.and_then(|t| t.parse().ok())
}

/// The audit entry of a `set_left_on`.
pub(crate) fn set_left_on_entry(
    employee_id: &str,
    left_on: Option<Date>,
    actor: &str,
    now_ms: i64,
) -> crate::audit::AuditEntry {
    crate::audit::AuditEntry::new(
        now_ms,
        actor,
        if left_on.is_some() {
            "staff.left"
        } else {
            "staff.returned"
        },
        employee_id,
        serde_json::json!({ "left_on": left_on.map(|d| d.to_string()) }),
    )
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

impl SqliteStore {
    fn people(&self, only: Option<&str>) -> Result<Vec<Person>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        // Two statements, so that one person's lookup uses the primary key.
        let mut stmt = conn
            .prepare_cached(if only.is_some() {
                "SELECT s.employee_id, s.name, s.department, a.account, s.email, s.left_on FROM staff s
                 LEFT JOIN staff_accounts a ON a.employee_id = s.employee_id
                 WHERE s.employee_id = ?1
                 ORDER BY s.employee_id, a.account"
            } else {
                "SELECT s.employee_id, s.name, s.department, a.account, s.email, s.left_on FROM staff s
                 LEFT JOIN staff_accounts a ON a.employee_id = s.employee_id
                 WHERE ?1 IS NULL
                 ORDER BY s.employee_id, a.account"
            })
            .map_err(&err)?;
        let mut rows = stmt.query([only]).map_err(&err)?;
        let mut pcs = conn
            .prepare_cached(
                "SELECT employee_id, pc FROM staff_pcs WHERE ?1 IS NULL OR employee_id = ?1
                 ORDER BY employee_id, pc",
            )
            .map_err(&err)?;
        let mut own: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in pcs
            .query_map([only], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&err)?
        {
            let (id, pc) = row.map_err(&err)?;
            own.entry(id).or_default().push(pc);
        }
        let mut out: Vec<Person> = Vec::new();
        while let Some(r) = rows.next().map_err(&err)? {
            let id: String = r.get(0).map_err(&err)?;
            let account: Option<String> = r.get(3).map_err(&err)?;
            if out.last().is_none_or(|p| p.employee_id != id) {
                out.push(Person {
                    own_pcs: own.remove(&id).unwrap_or_default(),
                    employee_id: id,
                    name: r.get(1).map_err(&err)?,
                    department: r.get(2).map_err(&err)?,
                    accounts: Vec::new(),
                    email: r.get(4).map_err(&err)?,
                    left_on: left_on(r.get(5).map_err(&err)?),
                });
            }
            if let (Some(a), Some(p)) = (account, out.last_mut()) {
                p.accounts.push(a);
            }
        }
        Ok(out)
    }

    /// Runs `sql` (parameters: account in lower case, from, to; columns: agent id,
    /// account, instant) for each of `accounts`.
    fn by_account(
        &self,
        sql: &str,
        accounts: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn.prepare_cached(sql).map_err(&err)?;
        let mut out = Vec::new();
        for account in accounts {
            let rows = stmt
                .query_map(params![account.to_ascii_lowercase(), from_ms, to_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(&err)?;
            for row in rows {
                out.push(row.map_err(&err)?);
            }
        }
        Ok(out)
    }

    fn pc_query(
        &self,
        pc: &KnownPc,
        sql: &str,
        a: i64,
        b: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn.prepare_cached(sql).map_err(&err)?;
        let mut rows = stmt.query(params![pc.0, a, b]).map_err(&err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(&err)? {
            let seq: i64 = r.get(0).map_err(&err)?;
            let at_ms: i64 = r.get(1).map_err(&err)?;
            let data = r.get_ref(4).map_err(&err)?;
            let kind = stored_kind(data, seq, at_ms, format_args!("{}/{seq}", pc.1))?;
            out.push(StoredEvent {
                agent_id: pc.1.clone(),
                event: Event {
                    seq: seq as u64,
                    at_ms,
                    kind,
                },
                received_ms: r.get(3).map_err(&err)?,
                clock_offset_ms: r.get(2).map_err(&err)?,
            });
        }
        Ok(out)
    }
}

impl super::Directory for SqliteStore {
    fn import_staff(&self, people: &[Person], now_ms: i64) -> Result<ImportCounts, StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let mut counts = ImportCounts::default();
        for p in people {
            let existed: bool = tx
                .query_row(
                    "SELECT count(*) > 0 FROM staff WHERE employee_id = ?1",
                    [&p.employee_id],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            if existed {
                counts.updated += 1;
            } else {
                counts.added += 1;
            }
            tx.execute(
                "INSERT INTO staff (employee_id, name, department, updated_ms, email)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (employee_id) DO UPDATE SET name = excluded.name,
                    department = excluded.department, updated_ms = excluded.updated_ms,
                    email = excluded.email",
                params![p.employee_id, p.name, p.department, now_ms, p.email],
            )
            .map_err(&err)?;
            tx.execute(
                "DELETE FROM staff_accounts WHERE employee_id = ?1",
                [&p.employee_id],
            )
            .map_err(&err)?;
            tx.execute(
                "DELETE FROM staff_pcs WHERE employee_id = ?1",
                [&p.employee_id],
            )
            .map_err(&err)?;
            for pc in &p.own_pcs {
                tx.execute(
                    "INSERT OR IGNORE INTO staff_pcs (employee_id, pc) VALUES (?1, ?2)",
                    params![p.employee_id, pc.to_ascii_lowercase()],
                )
                .map_err(&err)?;
            }
        }
        for p in people {
            for a in &p.accounts {
                let account = a.to_ascii_lowercase();
                // The same name, or the same user in a form that would match it
                // (`zhangsan` and `OFFICE\zhangsan`).
                let owner: Option<String> = tx
                    .query_row(
                        "SELECT employee_id FROM staff_accounts
                         WHERE employee_id <> ?2 AND (account = ?1
                            OR (instr(account, '\\') = 0 AND account = substr(?1, instr(?1, '\\') + 1))
                            OR (instr(?1, '\\') = 0 AND substr(account, instr(account, '\\') + 1) = ?1))
                         LIMIT 1",
                        params![account, p.employee_id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(&err)?;
                if let Some(owner) = owner
                    && owner != p.employee_id
                {
                    return Err(StoreError::Conflict(format!(
                        "OS account {account:?} of {} already belongs to {owner} in the directory",
                        p.employee_id
                    )));
                }
                tx.execute(
                    "INSERT OR IGNORE INTO staff_accounts (account, employee_id) VALUES (?1, ?2)",
                    params![account, p.employee_id],
                )
                .map_err(&err)?;
            }
            // Stored days of the person are judged again (accounts may have changed).
            tx.execute(
                "INSERT OR IGNORE INTO dirty_days (account, date)
                 SELECT s.account, v.date FROM day_verdicts v
                 JOIN staff_accounts s ON s.employee_id = v.employee_id
                 WHERE v.employee_id = ?1",
                [&p.employee_id],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok(counts)
    }

    fn set_left_on(
        &self,
        employee_id: &str,
        left_on: Option<Date>,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let n = tx
            .execute(
                "UPDATE staff SET left_on = ?2, updated_ms = ?3 WHERE employee_id = ?1",
                params![employee_id, left_on.map(|d| d.to_string()), now_ms],
            )
            .map_err(&err)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "{employee_id} is not in the staff directory"
            )));
        }
        super::audit_log::append(&tx, &set_left_on_entry(employee_id, left_on, actor, now_ms))?;
        tx.commit().map_err(&err)
    }

    fn staff(&self) -> Result<Vec<Person>, StoreError> {
        self.people(None)
    }

    fn person(&self, employee_id: &str) -> Result<Option<Person>, StoreError> {
        Ok(self.people(Some(employee_id))?.pop())
    }

    fn unmapped_accounts(&self) -> Result<Vec<Unmapped>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare(
                "SELECT p.account, a.id, a.hostname, p.last_ms FROM pc_accounts p
                 JOIN agents a ON a.num = p.agent
                 WHERE NOT EXISTS (SELECT 1 FROM staff_accounts s WHERE s.account = p.account
                    OR s.account = substr(p.account, instr(p.account, '\\') + 1))
                 ORDER BY p.account, a.id",
            )
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        let mut out: Vec<Unmapped> = Vec::new();
        while let Some(r) = rows.next().map_err(&err)? {
            let account: String = r.get(0).map_err(&err)?;
            let pc = (r.get(1).map_err(&err)?, r.get(2).map_err(&err)?);
            let last: i64 = r.get(3).map_err(&err)?;
            match out.last_mut() {
                Some(u) if u.account == account => {
                    u.pcs.push(pc);
                    u.last_seen_ms = u.last_seen_ms.max(last);
                }
                _ => out.push(Unmapped {
                    account,
                    pcs: vec![pc],
                    last_seen_ms: last,
                }),
            }
        }
        Ok(out)
    }

    fn known_pcs(&self, accounts: &[String]) -> Result<Vec<KnownPc>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT DISTINCT a.num, a.id FROM pc_accounts p JOIN agents a ON a.num = p.agent
                 WHERE {}",
                account_is("p.account")
            ))
            .map_err(&err)?;
        let mut out = BTreeMap::new();
        for account in accounts {
            let rows = stmt
                .query_map([account.to_ascii_lowercase()], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(&err)?;
            for row in rows {
                let (num, id) = row.map_err(&err)?;
                out.insert(num, id);
            }
        }
        Ok(out.into_iter().collect())
    }

    fn pcs_named(&self, names: &[String]) -> Result<BTreeSet<String>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(
                "SELECT id FROM agents
                 WHERE lower(hostname) = ?1 OR lower(machine_id) = ?1 OR lower(id) = ?1",
            )
            .map_err(&err)?;
        let mut out = BTreeSet::new();
        for name in names {
            for id in stmt
                .query_map([name.to_ascii_lowercase()], |r| r.get(0))
                .map_err(&err)?
            {
                out.insert(id.map_err(&err)?);
            }
        }
        Ok(out)
    }

    fn reenrolments(
        &self,
        pcs: &[KnownPc],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(
                "SELECT at_ms FROM integrity_events
                 WHERE agent = ?1 AND kind = 'reenrolled' AND at_ms BETWEEN ?2 AND ?3",
            )
            .map_err(&err)?;
        let mut out = Vec::new();
        for (num, id) in pcs {
            for at in stmt
                .query_map(params![num, from_ms, to_ms], |r| r.get(0))
                .map_err(&err)?
            {
                out.push((id.clone(), at.map_err(&err)?));
            }
        }
        Ok(out)
    }

    fn account_firsts(
        &self,
        accounts: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.by_account(
            &format!(
                "SELECT a.id, p.account, p.first_ms FROM pc_accounts p JOIN agents a ON a.num = p.agent
                 WHERE {} AND p.first_ms BETWEEN ?2 AND ?3",
                account_is("p.account")
            ),
            accounts,
            from_ms,
            to_ms,
        )
    }

    fn refused_claims(
        &self,
        accounts: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.by_account(
            &format!(
                "SELECT a.id, i.account, i.claimed_ms FROM integrity_events i
                 JOIN agents a ON a.num = i.agent
                 WHERE {} AND i.claimed_ms BETWEEN ?2 AND ?3",
                account_is("i.account")
            ),
            accounts,
            from_ms,
            to_ms,
        )
    }

    fn pc_events(
        &self,
        pc: &KnownPc,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.pc_query(
            pc,
            "SELECT seq, at_ms, clock_offset_ms, received_ms, data FROM all_events
             WHERE agent = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY at_ms, seq",
            from_ms,
            to_ms,
        )
    }

    fn pc_neighbours(
        &self,
        pc: &KnownPc,
        ms: i64,
        ms2: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = self.pc_query(
            pc,
            "SELECT seq, at_ms, clock_offset_ms, received_ms, data FROM all_events
             WHERE agent = ?1 AND at_ms < ?2 AND ?3 = ?3 ORDER BY at_ms DESC, seq DESC LIMIT 1",
            ms,
            0,
        )?;
        out.extend(self.pc_query(
            pc,
            "SELECT seq, at_ms, clock_offset_ms, received_ms, data FROM all_events
             WHERE agent = ?1 AND at_ms >= ?2 AND ?3 = ?3 ORDER BY at_ms, seq LIMIT 1",
            ms2,
            0,
        )?);
        Ok(out)
    }

    fn add_exemptions(
        &self,
        list: &[Exemption],
        settings: &Settings,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        for e in list {
            insert_exemption(&tx, self.path(), e, None, settings, now_ms)?;
        }
        tx.commit().map_err(&err)?;
        Ok(())
    }

    fn exemptions(
        &self,
        employee_id: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Exemption>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        // Two statements, so that one person's lookup uses exemptions_by_person
        // (an `?1 IS NULL OR` filter would scan every exemption ever entered).
        let mut stmt = conn
            .prepare_cached(if employee_id.is_some() {
                "SELECT employee_id, kind, start_ms, end_ms, note FROM exemptions
                 WHERE employee_id = ?1 AND start_ms < ?3 AND end_ms > ?2
                 ORDER BY employee_id, start_ms, id"
            } else {
                EVERYONE_EXEMPTIONS
            })
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![employee_id, from_ms, to_ms], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(&err)?;
        let mut out = Vec::new();
        for row in rows {
            let (employee_id, kind, start, end, note) = row.map_err(&err)?;
            let kind = parse_kind(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown exemption kind {kind:?}")))?;
            out.push(Exemption {
                employee_id,
                kind,
                start: ts(start),
                end: ts(end),
                note,
            });
        }
        Ok(out)
    }
}

impl super::Verdicts for SqliteStore {
    fn take_dirty_at(&self, now_ms: i64) -> Result<Vec<(String, Date)>, StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        // Claims a recompute did not release in time are marks again.
        let stale = now_ms - super::DIRTY_LEASE_MS;
        tx.execute(
            "INSERT OR IGNORE INTO dirty_days (account, date)
             SELECT account, date FROM dirty_claims WHERE claimed_ms < ?1",
            [stale],
        )
        .map_err(&err)?;
        tx.execute("DELETE FROM dirty_claims WHERE claimed_ms < ?1", [stale])
            .map_err(&err)?;
        let out = {
            let mut stmt = tx
                .prepare("DELETE FROM dirty_days RETURNING account, date")
                .map_err(&err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(&err)?;
            let mut claim = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO dirty_claims (account, date, claimed_ms) VALUES (?1, ?2, ?3)",
                )
                .map_err(&err)?;
            let mut out = Vec::new();
            for row in rows {
                let (a, d) = row.map_err(&err)?;
                claim.execute(params![a, d, now_ms]).map_err(&err)?;
                if let Ok(d) = d.parse() {
                    out.push((a, d));
                }
            }
            out
        };
        tx.commit().map_err(&err)?;
        Ok(out)
    }

    fn release_dirty(&self, days: &[(String, Date)]) -> Result<(), StoreError> {
        self.in_write_chunks(
            days,
            "DELETE FROM dirty_claims WHERE account = ?1 AND date = ?2",
            |(a, d)| (a.clone(), d.to_string()),
        )
    }

    fn mark_dirty(&self, days: &[(String, Date)]) -> Result<(), StoreError> {
        self.in_write_chunks(
            days,
            "INSERT OR IGNORE INTO dirty_days (account, date) VALUES (?1, ?2)",
            |(a, d)| (a.to_ascii_lowercase(), d.to_string()),
        )
    }

    fn dirty_between(
        &self,
        from: Date,
        to: Date,
    ) -> Result<HashMap<Date, HashSet<String>>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached("SELECT account, date FROM dirty_days WHERE date BETWEEN ?1 AND ?2")
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![from.to_string(), to.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(&err)?;
        let mut out: HashMap<Date, HashSet<String>> = HashMap::new();
        for row in rows {
            let (account, date) = row.map_err(&err)?;
            if let Ok(date) = date.parse() {
                out.entry(date).or_default().insert(account);
            }
        }
        Ok(out)
    }

    fn for_each_verdict(
        &self,
        from: Date,
        to: Date,
        employee_id: Option<&str>,
        full: bool,
        f: &mut dyn FnMut(StoredVerdict<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        const COLS: &str = "v.employee_id, v.date, v.status, v.day_kind, v.provisional,
            v.late_minutes, v.early_minutes, v.office_seconds, v.covered_seconds,
            v.arrival_ms, v.departure_ms, v.nonwork, v.computed_ms, v.context_fp, v.unverified";
        let conn = self.reader();
        let err = sql_err(self.path());
        // Everyone: the primary key's date range; one person: day_verdicts_by_person.
        let filter = if employee_id.is_some() {
            "v.employee_id = ?3 AND v.date BETWEEN ?1 AND ?2 ORDER BY v.date"
        } else {
            "v.date BETWEEN ?1 AND ?2 AND ?3 IS NULL ORDER BY v.date, v.employee_id"
        };
        let sql = if full {
            format!(
                "SELECT {COLS}, d.verdict FROM day_verdicts v
                 JOIN day_verdict_details d ON d.employee_id = v.employee_id AND d.date = v.date
                 WHERE {filter}"
            )
        } else {
            format!("SELECT {COLS}, NULL FROM day_verdicts v WHERE {filter}")
        };
        let mut stmt = conn.prepare_cached(&sql).map_err(&err)?;
        let mut rows = stmt
            .query(params![from.to_string(), to.to_string(), employee_id])
            .map_err(&err)?;
        // Rows come date by date: the date's text is parsed once per date.
        let mut last_date: Option<([u8; 10], Date)> = None;
        while let Some(r) = rows.next().map_err(&err)? {
            let text = |i: usize| -> Result<&str, StoreError> {
                r.get_ref(i)
                    .map_err(&err)?
                    .as_str()
                    .map_err(|e| StoreError::Corrupt(format!("day_verdicts column {i}: {e}")))
            };
            let int = |i: usize| -> Result<i64, StoreError> { r.get(i).map_err(&err) };
            let opt = |i: usize| -> Result<Option<i64>, StoreError> { r.get(i).map_err(&err) };
            let date_text = text(1)?;
            let date = match &last_date {
                Some((t, d)) if t.as_slice() == date_text.as_bytes() => *d,
                _ => {
                    let d: Date = date_text.parse().map_err(|_| {
                        StoreError::Corrupt(format!("day_verdicts.date {date_text:?}"))
                    })?;
                    last_date = date_text.as_bytes().try_into().ok().map(|t| (t, d));
                    d
                }
            };
            f(StoredVerdict {
                employee_id: text(0)?,
                date,
                status: enum_from_text("status", text(2)?)?,
                day_kind: enum_from_text("day_kind", text(3)?)?,
                provisional: int(4)? != 0,
                late_minutes: u32::try_from(int(5)?).unwrap_or(0),
                early_minutes: u32::try_from(int(6)?).unwrap_or(0),
                coverage: Coverage {
                    office_seconds: u64::try_from(int(7)?).unwrap_or(0),
                    covered_seconds: u64::try_from(int(8)?).unwrap_or(0),
                },
                arrival: opt(9)?.map(ts),
                departure: opt(10)?.map(ts),
                nonwork_json: text(11)?,
                computed_ms: int(12)?,
                context_fp: text(13)?,
                unverified: u32::try_from(int(14)?).unwrap_or(0),
                verdict_json: r.get_ref(15).map_err(&err)?.as_str_or_null().map_err(|e| {
                    StoreError::Corrupt(format!("day_verdict_details.verdict: {e}"))
                })?,
            })?;
        }
        Ok(())
    }

    fn put_verdicts(&self, days: &[JudgedDay]) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let ms = |t: Option<Timestamp>| t.map(|t| t.as_millisecond());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        {
            let mut figures = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO day_verdicts
                        (date, employee_id, status, day_kind, provisional, late_minutes,
                         early_minutes, office_seconds, covered_seconds, arrival_ms,
                         departure_ms, nonwork, computed_ms, context_fp, fingerprint,
                         unverified)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                             ?16)",
                )
                .map_err(&err)?;
            let mut whole = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO day_verdict_details (employee_id, date, verdict)
                     VALUES (?1, ?2, ?3)",
                )
                .map_err(&err)?;
            for j in days {
                let v = &j.verdict;
                let json = serde_json::to_string(v)
                    .map_err(|e| StoreError::Corrupt(format!("verdict does not encode: {e}")))?;
                let nonwork =
                    serde_json::to_string(&v.nonwork_seconds).unwrap_or_else(|_| "{}".into());
                let date = v.date.to_string();
                figures
                    .execute(params![
                        date,
                        v.employee_id,
                        enum_to_text(&v.status),
                        enum_to_text(&v.day_kind),
                        v.provisional,
                        v.late_minutes,
                        v.early_minutes,
                        i64::try_from(v.coverage.office_seconds).unwrap_or(i64::MAX),
                        i64::try_from(v.coverage.covered_seconds).unwrap_or(i64::MAX),
                        ms(v.arrival),
                        ms(v.departure),
                        nonwork,
                        j.computed_ms,
                        j.context_fp,
                        j.fingerprint,
                        v.unverified
                    ])
                    .map_err(&err)?;
                whole
                    .execute(params![v.employee_id, date, json])
                    .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)?;
        Ok(())
    }
}

/// Rows of (account, date) written per transaction by [`SqliteStore::in_write_chunks`].
const DIRTY_CHUNK: usize = 1000;

impl SqliteStore {
    /// Runs `sql` (two parameters) for each of `days`, [`DIRTY_CHUNK`] rows to a
    /// transaction: one commit (and one fsync) per chunk instead of per row, and
    /// the writer connection let go between chunks, so Reports are stored while
    /// a recompute hands back the marks of a whole province.
    fn in_write_chunks(
        &self,
        days: &[(String, Date)],
        sql: &str,
        row: impl Fn(&(String, Date)) -> (String, String),
    ) -> Result<(), StoreError> {
        let err = sql_err(self.path());
        for chunk in days.chunks(DIRTY_CHUNK) {
            let mut conn = self.writer();
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(&err)?;
            {
                let mut stmt = tx.prepare_cached(sql).map_err(&err)?;
                for day in chunk {
                    let (a, d) = row(day);
                    stmt.execute(params![a, d]).map_err(&err)?;
                }
            }
            tx.commit().map_err(&err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::store::concerns::*;

    fn row(nonwork_json: &str) -> StoredVerdict<'_> {
        StoredVerdict {
            employee_id: "E1",
            date: jiff::civil::date(2026, 11, 23),
            status: Status::Present,
            day_kind: DayKind::Workday,
            provisional: false,
            late_minutes: 0,
            early_minutes: 0,
            unverified: 0,
            coverage: Coverage::default(),
            arrival: None,
            departure: None,
            nonwork_json,
            computed_ms: 0,
            context_fp: "",
            verdict_json: None,
        }
    }

    #[test]
    fn everyones_exemptions_are_found_by_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let plan: Vec<String> = store
            .reader()
            .prepare(&format!("EXPLAIN QUERY PLAN {EVERYONE_EXEMPTIONS}"))
            .unwrap()
            .query_map(params![None::<String>, 0, 1], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|p| p.contains("exemptions_by_end")),
            "{plan:?}"
        );
    }

    #[test]
    fn stored_nonwork_figures_are_read_in_place_and_a_bad_one_is_named() {
        let mut seen = Vec::new();
        row(r#"{"chat":60,"a\"b":5,"游戏":7}"#)
            .for_each_nonwork(|k, s| seen.push((k.to_owned(), s)))
            .unwrap();
        assert_eq!(
            seen,
            [("chat".into(), 60), ("a\"b".into(), 5), ("游戏".into(), 7)]
        );
        assert!(row("{}").nonwork_seconds().unwrap().is_empty());
        for bad in [r#"{"chat":"x"}"#, "[1]", r#"{"chat":1} 2"#, ""] {
            let e = row(bad).nonwork_seconds().unwrap_err().to_string();
            assert!(e.contains("E1 on 2026-11-23"), "{bad}: {e}");
        }
    }
}

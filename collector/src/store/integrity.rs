//! What the integrity listing reads: the events that tell of a PC's trouble, first
//! sightings of accounts, what the collector itself recorded, and batches with a
//! large clock offset. `crate::integrity` turns them into items in words.
//!
//! Reads only, each over `[from_ms, to_ms)`.

use super::StoreError;
use super::sqlite::{SqliteStore, sql_err, stored_kind};
use kaoqin_proto::event::EventKind;
use rusqlite::params;

/// A stored event of a kind that tells of trouble (lifecycle, data gap, clock jump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TroubleEvent {
    pub agent_id: String,
    pub hostname: String,
    pub seq: u64,
    /// Corrected instant.
    pub at_ms: i64,
    pub kind: EventKind,
}

/// An OS account seen on a PC for the first time, with whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstSighting {
    pub agent_id: String,
    pub hostname: String,
    pub first_ms: i64,
    pub account: String,
    /// (employee id, name) of the person it is listed for, exactly as seen.
    pub owner: Option<(String, String)>,
}

/// What the collector recorded about an agent (refusals, re-enrolments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub agent_id: String,
    pub hostname: String,
    pub at_ms: i64,
    pub kind: String,
    pub seq: Option<u64>,
    pub detail: String,
}

/// A batch received with a large clock offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetBatch {
    pub agent_id: String,
    pub hostname: String,
    pub received_ms: i64,
    /// Collector minus agent.
    pub offset_ms: i64,
    pub first_seq: i64,
    pub last_seq: i64,
}

impl super::IntegrityReads for SqliteStore {
    fn trouble_events(&self, from_ms: i64, to_ms: i64) -> Result<Vec<TroubleEvent>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(
                "SELECT a.id, a.hostname, e.seq, e.at_ms + e.clock_offset_ms, e.data, e.at_ms
                 FROM all_events e JOIN agents a ON a.num = e.agent
                 WHERE e.kind IN ('lifecycle', 'data_gap', 'clock_jump')
                   AND e.at_ms + e.clock_offset_ms >= ?1 AND e.at_ms + e.clock_offset_ms < ?2",
            )
            .map_err(&err)?;
        let mut rows = stmt.query(params![from_ms, to_ms]).map_err(&err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(&err)? {
            let agent_id: String = r.get(0).map_err(&err)?;
            let seq: i64 = r.get(2).map_err(&err)?;
            let kind = stored_kind(
                r.get_ref(4).map_err(&err)?,
                seq,
                r.get(5).map_err(&err)?,
                format_args!("{agent_id}/{seq}"),
            )?;
            out.push(TroubleEvent {
                hostname: r.get(1).map_err(&err)?,
                agent_id,
                seq: seq as u64,
                at_ms: r.get(3).map_err(&err)?,
                kind,
            });
        }
        Ok(out)
    }

    fn first_sightings(&self, from_ms: i64, to_ms: i64) -> Result<Vec<FirstSighting>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(
                "SELECT a.id, a.hostname, p.first_ms, p.account, s.employee_id, s.name
                 FROM pc_accounts p JOIN agents a ON a.num = p.agent
                 LEFT JOIN staff_accounts sa ON sa.account = p.account
                 LEFT JOIN staff s ON s.employee_id = sa.employee_id
                 WHERE p.first_ms >= ?1 AND p.first_ms < ?2",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![from_ms, to_ms], |r| {
                let owner = match (
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ) {
                    (Some(id), Some(name)) => Some((id, name)),
                    _ => None,
                };
                Ok(FirstSighting {
                    agent_id: r.get(0)?,
                    hostname: r.get(1)?,
                    first_ms: r.get(2)?,
                    account: r.get(3)?,
                    owner,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn recorded_events(&self, from_ms: i64, to_ms: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(
                "SELECT a.id, a.hostname, i.at_ms, i.kind, i.seq, i.detail
                 FROM integrity_events i JOIN agents a ON a.num = i.agent
                 WHERE i.at_ms >= ?1 AND i.at_ms < ?2",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![from_ms, to_ms], |r| {
                Ok(RecordedEvent {
                    agent_id: r.get(0)?,
                    hostname: r.get(1)?,
                    at_ms: r.get(2)?,
                    kind: r.get(3)?,
                    seq: r.get::<_, Option<i64>>(4)?.map(|s| s as u64),
                    detail: r.get(5)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn offset_batches(
        &self,
        from_ms: i64,
        to_ms: i64,
        min_ms: i64,
    ) -> Result<Vec<OffsetBatch>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        // With the literal term the planner can use the partial index
        // batches_by_offset (offsets of a minute or more); a bound threshold alone
        // makes it scan batches.
        let mut stmt = conn
            .prepare_cached(if min_ms >= 60_000 {
                "SELECT a.id, a.hostname, b.received_ms, b.clock_offset_ms, b.first_seq, b.last_seq
                 FROM batches b JOIN agents a ON a.num = b.agent
                 WHERE abs(b.clock_offset_ms) >= 60000 AND abs(b.clock_offset_ms) >= ?3
                   AND b.received_ms >= ?1 AND b.received_ms < ?2"
            } else {
                "SELECT a.id, a.hostname, b.received_ms, b.clock_offset_ms, b.first_seq, b.last_seq
                 FROM batches b JOIN agents a ON a.num = b.agent
                 WHERE abs(b.clock_offset_ms) >= ?3 AND b.received_ms >= ?1 AND b.received_ms < ?2"
            })
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![from_ms, to_ms, min_ms.max(1)], |r| {
                Ok(OffsetBatch {
                    agent_id: r.get(0)?,
                    hostname: r.get(1)?,
                    received_ms: r.get(2)?,
                    offset_ms: r.get(3)?,
                    first_seq: r.get(4)?,
                    last_seq: r.get(5)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    fn silent_agents(
        &self,
        before_ms: i64,
    ) -> Result<Vec<(String, String, Option<i64>)>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, hostname, last_seen_ms FROM agents
                 WHERE revoked_ms IS NULL AND (last_seen_ms IS NULL OR last_seen_ms < ?1)
                 ORDER BY last_seen_ms",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([before_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }
}

//! The staff directory, exemptions, stored verdicts and the integrity reads on
//! PostgreSQL. Account matching follows [`crate::attendance::account_matches`]
//! as the SQLite store's does.

use super::PgStore;
use crate::attendance::{Coverage, Exemption, Person, Settings};
use crate::store::directory::{
    ImportCounts, JudgedDay, KnownPc, StoredVerdict, Unmapped, enum_from_text, enum_to_text,
    parse_kind, ts,
};
use crate::store::integrity::{FirstSighting, OffsetBatch, RecordedEvent, TroubleEvent};
use crate::store::{Directory, IntegrityReads, StoreError, StoredEvent, Verdicts};
use jiff::civil::Date;
use kaoqin_proto::event::Event;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// SQL that is true when the observed account in `col` (lower case) is the listed
/// account `$1` (lower case): the same name, or a name listed without a domain in
/// any domain. (`chr(92)` is the backslash, whatever the server's string settings.)
fn account_is(col: &str) -> String {
    format!(
        "({col} = $1 OR (strpos($1, chr(92)) = 0 AND substr({col}, strpos({col}, chr(92)) + 1) = $1))"
    )
}

fn stored_event(agent_id: &str, r: &tokio_postgres::Row) -> Result<StoredEvent, StoreError> {
    let seq: i64 = r.get(0);
    let at_ms: i64 = r.get(1);
    let data: &[u8] = r.get(4);
    let kind = kaoqin_proto::convert::decode_stored_kind(seq as u64, at_ms, data).map_err(|e| {
        StoreError::Corrupt(format!("stored event {agent_id}/{seq} does not parse: {e}"))
    })?;
    Ok(StoredEvent {
        agent_id: agent_id.to_owned(),
        event: Event {
            seq: seq as u64,
            at_ms,
            kind,
        },
        received_ms: r.get(3),
        clock_offset_ms: r.get(2),
    })
}

impl PgStore {
    fn people(&self, only: Option<&str>) -> Result<Vec<Person>, StoreError> {
        let rows = self.block(self.query(
            "SELECT s.employee_id, s.name, s.department,
                    ARRAY(SELECT account FROM staff_accounts a
                          WHERE a.employee_id = s.employee_id ORDER BY account COLLATE \"C\"),
                    ARRAY(SELECT pc FROM staff_pcs p WHERE p.employee_id = s.employee_id
                          ORDER BY pc COLLATE \"C\"),
                    s.email, s.left_on
             FROM staff s WHERE $1::text IS NULL OR s.employee_id = $1
             ORDER BY s.employee_id COLLATE \"C\"",
            &[&only],
        ))?;
        Ok(rows
            .iter()
            .map(|r| Person {
                employee_id: r.get(0),
                name: r.get(1),
                department: r.get(2),
                accounts: r.get(3),
                own_pcs: r.get(4),
                email: r.get(5),
                left_on: super::super::directory::left_on(r.get(6)),
            })
            .collect())
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
        self.block(async {
            let mut out = Vec::new();
            for account in accounts {
                let lower = account.to_ascii_lowercase();
                for r in self.query(sql, &[&lower, &from_ms, &to_ms]).await? {
                    out.push((r.get(0), r.get(1), r.get(2)));
                }
            }
            Ok(out)
        })
    }

    fn pc_query(&self, pc: &KnownPc, sql: &str, a: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.block(self.query(sql, &[&pc.0, &a]))?;
        rows.iter().map(|r| stored_event(&pc.1, r)).collect()
    }
}

impl Directory for PgStore {
    fn import_staff(&self, people: &[Person], now_ms: i64) -> Result<ImportCounts, StoreError> {
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            // One import at a time: the account checks see every other import.
            tx.execute("LOCK TABLE staff_accounts IN EXCLUSIVE MODE", &[])
                .await
                .map_err(&err)?;
            let mut counts = ImportCounts::default();
            for p in people {
                let inserted: bool = tx
                    .query_one(
                        "INSERT INTO staff (employee_id, name, department, updated_ms, email)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (employee_id) DO UPDATE SET name = excluded.name,
                            department = excluded.department, updated_ms = excluded.updated_ms,
                            email = excluded.email
                         RETURNING (xmax = 0)",
                        &[&p.employee_id, &p.name, &p.department, &now_ms, &p.email],
                    )
                    .await
                    .map_err(&err)?
                    .get(0);
                if inserted {
                    counts.added += 1;
                } else {
                    counts.updated += 1;
                }
                tx.execute(
                    "DELETE FROM staff_accounts WHERE employee_id = $1",
                    &[&p.employee_id],
                )
                .await
                .map_err(&err)?;
                tx.execute(
                    "DELETE FROM staff_pcs WHERE employee_id = $1",
                    &[&p.employee_id],
                )
                .await
                .map_err(&err)?;
                for pc in &p.own_pcs {
                    tx.execute(
                        "INSERT INTO staff_pcs (employee_id, pc) VALUES ($1, $2)
                         ON CONFLICT DO NOTHING",
                        &[&p.employee_id, &pc.to_ascii_lowercase()],
                    )
                    .await
                    .map_err(&err)?;
                }
            }
            for p in people {
                for a in &p.accounts {
                    let account = a.to_ascii_lowercase();
                    // The same name, or the same user in a form that would match it.
                    let owner: Option<String> = tx
                        .query_opt(
                            "SELECT employee_id FROM staff_accounts
                             WHERE employee_id <> $2 AND (account = $1
                                OR (strpos(account, chr(92)) = 0 AND account = substr($1, strpos($1, chr(92)) + 1))
                                OR (strpos($1, chr(92)) = 0 AND substr(account, strpos(account, chr(92)) + 1) = $1))
                             LIMIT 1",
                            &[&account, &p.employee_id],
                        )
                        .await
                        .map_err(&err)?
                        .map(|r| r.get(0));
                    if let Some(owner) = owner {
                        return Err(StoreError::Conflict(format!(
                            "OS account {account:?} of {} already belongs to {owner} in the directory",
                            p.employee_id
                        )));
                    }
                    tx.execute(
                        "INSERT INTO staff_accounts (account, employee_id) VALUES ($1, $2)
                         ON CONFLICT DO NOTHING",
                        &[&account, &p.employee_id],
                    )
                    .await
                    .map_err(&err)?;
                }
                // Stored days of the person are judged again (accounts may have changed).
                tx.execute(
                    "INSERT INTO dirty_days (account, date)
                     SELECT s.account, v.date FROM day_verdicts v
                     JOIN staff_accounts s ON s.employee_id = v.employee_id
                     WHERE v.employee_id = $1
                     ON CONFLICT DO NOTHING",
                    &[&p.employee_id],
                )
                .await
                .map_err(&err)?;
            }
            tx.commit().await.map_err(&err)?;
            Ok(counts)
        })
    }

    fn set_left_on(
        &self,
        employee_id: &str,
        left_on: Option<Date>,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            let n = tx
                .execute(
                    "UPDATE staff SET left_on = $2, updated_ms = $3 WHERE employee_id = $1",
                    &[&employee_id, &left_on.map(|d| d.to_string()), &now_ms],
                )
                .await
                .map_err(&err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "{employee_id} is not in the staff directory"
                )));
            }
            super::admin::append(
                &tx,
                self,
                &crate::store::directory::set_left_on_entry(employee_id, left_on, actor, now_ms),
            )
            .await?;
            tx.commit().await.map_err(&err)
        })
    }

    fn staff(&self) -> Result<Vec<Person>, StoreError> {
        self.people(None)
    }

    fn person(&self, employee_id: &str) -> Result<Option<Person>, StoreError> {
        Ok(self.people(Some(employee_id))?.pop())
    }

    fn unmapped_accounts(&self) -> Result<Vec<Unmapped>, StoreError> {
        let rows = self.block(self.query(
            "SELECT p.account, a.id, a.hostname, p.last_ms FROM pc_accounts p
             JOIN agents a ON a.num = p.agent
             WHERE NOT EXISTS (SELECT 1 FROM staff_accounts s WHERE s.account = p.account
                OR s.account = substr(p.account, strpos(p.account, chr(92)) + 1))
             ORDER BY p.account, a.id",
            &[],
        ))?;
        let mut out: Vec<Unmapped> = Vec::new();
        for r in &rows {
            let account: String = r.get(0);
            let pc = (r.get(1), r.get(2));
            let last: i64 = r.get(3);
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
        let sql = format!(
            "SELECT DISTINCT a.num, a.id FROM pc_accounts p JOIN agents a ON a.num = p.agent
             WHERE {}",
            account_is("p.account")
        );
        self.block(async {
            let mut out = BTreeMap::new();
            for account in accounts {
                for r in self.query(&sql, &[&account.to_ascii_lowercase()]).await? {
                    out.insert(r.get::<_, i64>(0), r.get::<_, String>(1));
                }
            }
            Ok(out.into_iter().collect())
        })
    }

    fn pcs_named(&self, names: &[String]) -> Result<BTreeSet<String>, StoreError> {
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let rows = self.block(self.query(
            "SELECT id FROM agents WHERE lower(hostname) = ANY($1) OR lower(machine_id) = ANY($1)
                OR lower(id) = ANY($1)",
            &[&lower],
        ))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn reenrolments(
        &self,
        pcs: &[KnownPc],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let nums: Vec<i64> = pcs.iter().map(|p| p.0).collect();
        let rows = self.block(self.query(
            "SELECT a.id, i.at_ms FROM integrity_events i JOIN agents a ON a.num = i.agent
             WHERE i.agent = ANY($1) AND i.kind = 'reenrolled' AND i.at_ms BETWEEN $2 AND $3
             ORDER BY i.agent, i.at_ms",
            &[&nums, &from_ms, &to_ms],
        ))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
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
                 WHERE {} AND p.first_ms BETWEEN $2 AND $3",
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
                 WHERE {} AND i.claimed_ms BETWEEN $2 AND $3",
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
        let rows = self.block(self.query(
            "SELECT seq, at_ms, clock_offset_ms, received_ms, data FROM events
             WHERE agent = $1 AND at_ms >= $2 AND at_ms < $3 ORDER BY at_ms, seq",
            &[&pc.0, &from_ms, &to_ms],
        ))?;
        rows.iter().map(|r| stored_event(&pc.1, r)).collect()
    }

    fn pc_neighbours(
        &self,
        pc: &KnownPc,
        ms: i64,
        ms2: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = self.pc_query(
            pc,
            "SELECT seq, at_ms, clock_offset_ms, received_ms, data FROM events
             WHERE agent = $1 AND at_ms < $2 ORDER BY at_ms DESC, seq DESC LIMIT 1",
            ms,
        )?;
        out.extend(self.pc_query(
            pc,
            "SELECT seq, at_ms, clock_offset_ms, received_ms, data FROM events
             WHERE agent = $1 AND at_ms >= $2 ORDER BY at_ms, seq LIMIT 1",
            ms2,
        )?);
        Ok(out)
    }

    fn add_exemptions(
        &self,
        list: &[Exemption],
        settings: &Settings,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            for e in list {
                insert_exemption(&tx, self, e, None, settings, now_ms).await?;
            }
            tx.commit().await.map_err(&err)?;
            Ok(())
        })
    }

    fn exemptions(
        &self,
        employee_id: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Exemption>, StoreError> {
        let rows = self.block(self.query(
            "SELECT employee_id, kind, start_ms, end_ms, note FROM exemptions
             WHERE ($1::text IS NULL OR employee_id = $1) AND start_ms < $3 AND end_ms > $2
             ORDER BY employee_id, start_ms, id",
            &[&employee_id, &from_ms, &to_ms],
        ))?;
        rows.iter()
            .map(|r| {
                let kind: String = r.get(1);
                Ok(Exemption {
                    employee_id: r.get(0),
                    kind: parse_kind(&kind).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown exemption kind {kind:?}"))
                    })?,
                    start: ts(r.get(2)),
                    end: ts(r.get(3)),
                    note: r.get(4),
                })
            })
            .collect()
    }
}

impl Verdicts for PgStore {
    fn take_dirty_at(&self, now_ms: i64) -> Result<Vec<(String, Date)>, StoreError> {
        let stale = now_ms - crate::store::DIRTY_LEASE_MS;
        let rows = self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            // Claims a collector did not release in time are marks again.
            tx.execute(
                "WITH stale AS (DELETE FROM dirty_claims WHERE claimed_ms < $1 RETURNING account, date)
                 INSERT INTO dirty_days (account, date) SELECT account, date FROM stale
                 ON CONFLICT DO NOTHING",
                &[&stale],
            )
            .await
            .map_err(&err)?;
            // Rows another collector is taking at this moment are passed over, not
            // waited for: each mark goes to one collector.
            let rows = tx
                .query(
                    "WITH taken AS (
                        DELETE FROM dirty_days WHERE (account, date) IN
                            (SELECT account, date FROM dirty_days FOR UPDATE SKIP LOCKED)
                        RETURNING account, date)
                     INSERT INTO dirty_claims (account, date, claimed_ms)
                     SELECT account, date, $1 FROM taken
                     ON CONFLICT (account, date) DO UPDATE SET claimed_ms = excluded.claimed_ms
                     RETURNING account, date",
                    &[&now_ms],
                )
                .await
                .map_err(&err)?;
            tx.commit().await.map_err(&err)?;
            Ok(rows)
        })?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let d: String = r.get(1);
                d.parse().ok().map(|d| (r.get(0), d))
            })
            .collect())
    }

    fn release_dirty(&self, days: &[(String, Date)]) -> Result<(), StoreError> {
        let accounts: Vec<&str> = days.iter().map(|(a, _)| a.as_str()).collect();
        let dates: Vec<String> = days.iter().map(|(_, d)| d.to_string()).collect();
        self.block(self.execute(
            "DELETE FROM dirty_claims c USING unnest($1::text[], $2::text[]) AS r(a, d)
             WHERE c.account = r.a AND c.date = r.d",
            &[&accounts, &dates],
        ))?;
        Ok(())
    }

    fn mark_dirty(&self, days: &[(String, Date)]) -> Result<(), StoreError> {
        let accounts: Vec<String> = days.iter().map(|(a, _)| a.to_ascii_lowercase()).collect();
        let dates: Vec<String> = days.iter().map(|(_, d)| d.to_string()).collect();
        self.block(self.execute(
            "INSERT INTO dirty_days (account, date)
             SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            &[&accounts, &dates],
        ))?;
        Ok(())
    }

    fn dirty_between(
        &self,
        from: Date,
        to: Date,
    ) -> Result<HashMap<Date, HashSet<String>>, StoreError> {
        let rows = self.block(self.query(
            "SELECT account, date FROM dirty_days WHERE date BETWEEN $1 AND $2",
            &[&from.to_string(), &to.to_string()],
        ))?;
        let mut out: HashMap<Date, HashSet<String>> = HashMap::new();
        for r in &rows {
            let date: String = r.get(1);
            if let Ok(date) = date.parse() {
                out.entry(date).or_default().insert(r.get(0));
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
        // A page of rows at a time in key order (byte order, as Rust compares the
        // ids the rows are merged with), so a year of everyone's verdicts is never
        // held in memory whole.
        #[cfg(not(test))]
        const PAGE: i64 = 20_000;
        // Small in tests, so that the store tests read several pages.
        #[cfg(test)]
        const PAGE: i64 = 4;
        let (from, to) = (from.to_string(), to.to_string());
        let mut after: (String, String) = (String::new(), String::new());
        loop {
            let rows = self.block(self.query(
                "SELECT v.employee_id, v.date, v.status, v.day_kind, v.provisional,
                        v.late_minutes, v.early_minutes, v.office_seconds, v.covered_seconds,
                        v.arrival_ms, v.departure_ms, v.nonwork, v.computed_ms, v.context_fp,
                        v.unverified,
                        CASE WHEN $4 THEN (SELECT d.verdict FROM day_verdict_details d
                                           WHERE d.employee_id = v.employee_id AND d.date = v.date)
                        END
                 FROM day_verdicts v
                 WHERE v.date BETWEEN $1 AND $2 AND ($3::text IS NULL OR v.employee_id = $3)
                   AND (v.date COLLATE \"C\", v.employee_id COLLATE \"C\") > ($5, $6)
                 ORDER BY v.date COLLATE \"C\", v.employee_id COLLATE \"C\"
                 LIMIT $7",
                &[&from, &to, &employee_id, &full, &after.0, &after.1, &PAGE],
            ))?;
            for r in &rows {
                let date_text: &str = r.get(1);
                let date: Date = date_text
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("day_verdicts.date {date_text:?}")))?;
                let int = |i: usize| -> i64 { r.get(i) };
                let opt = |i: usize| -> Option<i64> { r.get(i) };
                f(StoredVerdict {
                    employee_id: r.get(0),
                    date,
                    status: enum_from_text("status", r.get(2))?,
                    day_kind: enum_from_text("day_kind", r.get(3))?,
                    provisional: r.get(4),
                    late_minutes: u32::try_from(int(5)).unwrap_or(0),
                    early_minutes: u32::try_from(int(6)).unwrap_or(0),
                    coverage: Coverage {
                        office_seconds: u64::try_from(int(7)).unwrap_or(0),
                        covered_seconds: u64::try_from(int(8)).unwrap_or(0),
                    },
                    arrival: opt(9).map(ts),
                    departure: opt(10).map(ts),
                    nonwork_json: r.get(11),
                    computed_ms: int(12),
                    context_fp: r.get(13),
                    unverified: u32::try_from(int(14)).unwrap_or(0),
                    verdict_json: r.get(15),
                })?;
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == PAGE => {
                    after = (last.get::<_, String>(1), last.get::<_, String>(0));
                }
                _ => return Ok(()),
            }
        }
    }

    fn put_verdicts(&self, days: &[JudgedDay]) -> Result<(), StoreError> {
        let ms = |t: Option<jiff::Timestamp>| t.map(|t| t.as_millisecond());
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            let figures = tx
                .prepare_cached(
                    "INSERT INTO day_verdicts
                        (date, employee_id, status, day_kind, provisional, late_minutes,
                         early_minutes, office_seconds, covered_seconds, arrival_ms,
                         departure_ms, nonwork, computed_ms, context_fp, fingerprint, unverified)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                     ON CONFLICT (date, employee_id) DO UPDATE SET
                        status = excluded.status, day_kind = excluded.day_kind,
                        provisional = excluded.provisional, late_minutes = excluded.late_minutes,
                        early_minutes = excluded.early_minutes,
                        office_seconds = excluded.office_seconds,
                        covered_seconds = excluded.covered_seconds,
                        arrival_ms = excluded.arrival_ms, departure_ms = excluded.departure_ms,
                        nonwork = excluded.nonwork, computed_ms = excluded.computed_ms,
                        context_fp = excluded.context_fp, fingerprint = excluded.fingerprint,
                        unverified = excluded.unverified",
                )
                .await
                .map_err(&err)?;
            let whole = tx
                .prepare_cached(
                    "INSERT INTO day_verdict_details (employee_id, date, verdict) VALUES ($1, $2, $3)
                     ON CONFLICT (employee_id, date) DO UPDATE SET verdict = excluded.verdict",
                )
                .await
                .map_err(&err)?;
            for j in days {
                let v = &j.verdict;
                let json = serde_json::to_string(v)
                    .map_err(|e| StoreError::Corrupt(format!("verdict does not encode: {e}")))?;
                let nonwork =
                    serde_json::to_string(&v.nonwork_seconds).unwrap_or_else(|_| "{}".into());
                let date = v.date.to_string();
                tx.execute(
                    &figures,
                    &[
                        &date,
                        &v.employee_id,
                        &enum_to_text(&v.status),
                        &enum_to_text(&v.day_kind),
                        &v.provisional,
                        &i64::from(v.late_minutes),
                        &i64::from(v.early_minutes),
                        &i64::try_from(v.coverage.office_seconds).unwrap_or(i64::MAX),
                        &i64::try_from(v.coverage.covered_seconds).unwrap_or(i64::MAX),
                        &ms(v.arrival),
                        &ms(v.departure),
                        &nonwork,
                        &j.computed_ms,
                        &j.context_fp,
                        &j.fingerprint,
                        &i64::from(v.unverified),
                    ],
                )
                .await
                .map_err(&err)?;
                tx.execute(&whole, &[&v.employee_id, &date, &json])
                    .await
                    .map_err(&err)?;
            }
            tx.commit().await.map_err(&err)?;
            Ok(())
        })
    }
}

impl IntegrityReads for PgStore {
    fn trouble_events(&self, from_ms: i64, to_ms: i64) -> Result<Vec<TroubleEvent>, StoreError> {
        let rows = self.block(self.query(
            "SELECT a.id, a.hostname, e.seq, e.at_ms + e.clock_offset_ms, e.data, e.at_ms
             FROM events e JOIN agents a ON a.num = e.agent
             WHERE e.kind IN ('lifecycle', 'data_gap', 'clock_jump')
               AND e.at_ms + e.clock_offset_ms >= $1 AND e.at_ms + e.clock_offset_ms < $2",
            &[&from_ms, &to_ms],
        ))?;
        rows.iter()
            .map(|r| {
                let agent_id: String = r.get(0);
                let seq: i64 = r.get(2);
                let data: &[u8] = r.get(4);
                let kind = kaoqin_proto::convert::decode_stored_kind(seq as u64, r.get(5), data)
                    .map_err(|e| {
                        StoreError::Corrupt(format!(
                            "stored event {agent_id}/{seq} does not parse: {e}"
                        ))
                    })?;
                Ok(TroubleEvent {
                    hostname: r.get(1),
                    agent_id,
                    seq: seq as u64,
                    at_ms: r.get(3),
                    kind,
                })
            })
            .collect()
    }

    fn first_sightings(&self, from_ms: i64, to_ms: i64) -> Result<Vec<FirstSighting>, StoreError> {
        let rows = self.block(self.query(
            "SELECT a.id, a.hostname, p.first_ms, p.account, s.employee_id, s.name
             FROM pc_accounts p JOIN agents a ON a.num = p.agent
             LEFT JOIN staff_accounts sa ON sa.account = p.account
             LEFT JOIN staff s ON s.employee_id = sa.employee_id
             WHERE p.first_ms >= $1 AND p.first_ms < $2",
            &[&from_ms, &to_ms],
        ))?;
        Ok(rows
            .iter()
            .map(|r| FirstSighting {
                agent_id: r.get(0),
                hostname: r.get(1),
                first_ms: r.get(2),
                account: r.get(3),
                owner: match (r.get::<_, Option<String>>(4), r.get::<_, Option<String>>(5)) {
                    (Some(id), Some(name)) => Some((id, name)),
                    _ => None,
                },
            })
            .collect())
    }

    fn recorded_events(&self, from_ms: i64, to_ms: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = self.block(self.query(
            "SELECT a.id, a.hostname, i.at_ms, i.kind, i.seq, i.detail
             FROM integrity_events i JOIN agents a ON a.num = i.agent
             WHERE i.at_ms >= $1 AND i.at_ms < $2",
            &[&from_ms, &to_ms],
        ))?;
        Ok(rows
            .iter()
            .map(|r| RecordedEvent {
                agent_id: r.get(0),
                hostname: r.get(1),
                at_ms: r.get(2),
                kind: r.get(3),
                seq: r.get::<_, Option<i64>>(4).map(|s| s as u64),
                detail: r.get(5),
            })
            .collect())
    }

    fn offset_batches(
        &self,
        from_ms: i64,
        to_ms: i64,
        min_ms: i64,
    ) -> Result<Vec<OffsetBatch>, StoreError> {
        let rows = self.block(self.query(
            "SELECT a.id, a.hostname, b.received_ms, b.clock_offset_ms, b.first_seq, b.last_seq
             FROM batches b JOIN agents a ON a.num = b.agent
             WHERE abs(b.clock_offset_ms) >= $3 AND b.received_ms >= $1 AND b.received_ms < $2",
            &[&from_ms, &to_ms, &min_ms.max(1)],
        ))?;
        Ok(rows
            .iter()
            .map(|r| OffsetBatch {
                agent_id: r.get(0),
                hostname: r.get(1),
                received_ms: r.get(2),
                offset_ms: r.get(3),
                first_seq: r.get(4),
                last_seq: r.get(5),
            })
            .collect())
    }

    fn silent_agents(
        &self,
        before_ms: i64,
    ) -> Result<Vec<(String, String, Option<i64>)>, StoreError> {
        let rows = self.block(self.query(
            "SELECT id, hostname, last_seen_ms FROM agents
             WHERE revoked_ms IS NULL AND (last_seen_ms IS NULL OR last_seen_ms < $1)
             ORDER BY last_seen_ms NULLS FIRST",
            &[&before_ms],
        ))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}

/// Stores one exemption (of a person in the directory), linked to the request it
/// comes from if any, and marks the days it touches dirty for the person's
/// accounts.
pub(super) async fn insert_exemption(
    tx: &impl deadpool_postgres::GenericClient,
    store: &super::PgInner,
    e: &Exemption,
    request_id: Option<i64>,
    settings: &Settings,
    now_ms: i64,
) -> Result<(), StoreError> {
    let err = store.err();
    require_person(tx, store, &e.employee_id).await?;
    tx.execute(
        "INSERT INTO exemptions (employee_id, kind, start_ms, end_ms, note, created_ms, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &e.employee_id,
            &e.kind.as_str(),
            &e.start.as_millisecond(),
            &e.end.as_millisecond(),
            &e.note,
            &now_ms,
            &request_id,
        ],
    )
    .await
    .map_err(&err)?;
    mark_days(tx, store, &e.employee_id, e.start, e.end, settings).await
}

/// Refuses, naming them, someone not in the staff directory.
pub(super) async fn require_person(
    c: &impl deadpool_postgres::GenericClient,
    store: &super::PgInner,
    employee_id: &str,
) -> Result<(), StoreError> {
    let known: bool = c
        .query_one(
            "SELECT EXISTS(SELECT 1 FROM staff WHERE employee_id = $1)",
            &[&employee_id],
        )
        .await
        .map_err(store.err())?
        .get(0);
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
pub(super) async fn mark_days(
    tx: &impl deadpool_postgres::GenericClient,
    store: &super::PgInner,
    employee_id: &str,
    start: jiff::Timestamp,
    end: jiff::Timestamp,
    settings: &Settings,
) -> Result<(), StoreError> {
    let days: Vec<String> = crate::store::directory::exemption_days(start, end, settings)
        .iter()
        .map(ToString::to_string)
        .collect();
    tx.execute(
        "INSERT INTO dirty_days (account, date)
         SELECT account, d FROM staff_accounts, unnest($2::text[]) AS d
         WHERE employee_id = $1
         ON CONFLICT DO NOTHING",
        &[&employee_id, &days],
    )
    .await
    .map_err(store.err())?;
    Ok(())
}

use super::*;
#[allow(unused_imports)]
use crate::store::concerns::*;
use kaoqin_proto::event::SessionKind;

const T0: i64 = 1_795_000_000_000;

fn host(machine: &str) -> HostFacts {
    HostFacts {
        machine_id: machine.into(),
        hostname: format!("pc-{machine}"),
        os: "linux".into(),
        ..HostFacts::default()
    }
}

fn events(seqs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
    seqs.map(|seq| Event {
        seq,
        at_ms: T0 + seq as i64,
        kind: EventKind::Session {
            kind: SessionKind::Unlock,
            account: "zhangsan".into(),
        },
    })
    .collect()
}

/// A fresh store with one enrolled agent: (its dir, the store, the
/// enrolment, the agent's number).
async fn one_agent() -> (tempfile::TempDir, Arc<SqliteStore>, Enrolment, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let t = store
        .create_token(
            &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
            T0,
        )
        .unwrap();
    let e = store.enroll(&t.token, host("m1"), T0).await.unwrap();
    let num = store.agent_auth(&e.agent_id).unwrap().unwrap().num;
    (dir, store, e, num)
}

fn batch(num: i64, events: Vec<Event>) -> Batch {
    Batch {
        agent_num: num,
        received_ms: T0,
        sent_at_ms: T0 - 1500,
        clock_offset_ms: 1500,
        events,
        // The trust rules have their own test below.
        replay: true,
    }
}

#[test]
fn a_long_read_does_not_hold_up_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    // A long report holds a reader; a login's read still gets through.
    let long = store.reader();
    let (done, finished) = mpsc::channel();
    let other = store.clone();
    std::thread::spawn(move || done.send(other.staff().map(|s| s.len())).unwrap());
    let got = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("a second read completes while the first holds its reader");
    assert_eq!(got.unwrap(), 0);
    drop(long);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_writing_makes_ingest_wait_its_turn_not_fail() {
    let (_dir, store, _e, num) = one_agent().await;
    // A command holds the writing connection (a long staff import, a prune).
    let (locked, is_locked) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let command = std::thread::spawn({
        let store = store.clone();
        move || {
            let _conn = store.writer();
            locked.send(()).unwrap();
            released.recv().unwrap();
        }
    });
    is_locked.recv().unwrap();
    let ingest = tokio::spawn({
        let store = store.clone();
        async move { store.store_batch(batch(num, events(1..=3))).await }
    });
    // The batch waits rather than failing with Busy...
    let waited = tokio::time::timeout(std::time::Duration::from_millis(300), async {
        while !ingest.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        waited.is_err(),
        "the batch was stored while the command wrote"
    );
    // ...and is stored once the command is done.
    release.send(()).unwrap();
    command.join().unwrap();
    assert_eq!(ingest.await.unwrap().unwrap().acked_seq, 3);
}

#[tokio::test]
async fn tokens_expire_run_out_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let err = store.enroll("kq1-nope", host("m1"), T0).await.unwrap_err();
    assert!(matches!(err, StoreError::BadToken(m) if m.contains("unknown")));

    let once = store
        .create_token(
            &crate::store::TokenSpec::new_machines(60_000, Some(1)).reenrolling(),
            T0,
        )
        .unwrap();
    store.enroll(&once.token, host("m1"), T0).await.unwrap();
    let err = store.enroll(&once.token, host("m2"), T0).await.unwrap_err();
    assert!(matches!(err, StoreError::BadToken(m) if m.contains("used up")));

    let short = store
        .create_token(
            &crate::store::TokenSpec::new_machines(60_000, None).reenrolling(),
            T0,
        )
        .unwrap();
    let err = store
        .enroll(&short.token, host("m3"), T0 + 60_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadToken(m) if m.contains("expired")));
}

#[tokio::test]
async fn the_same_machine_keeps_its_id_and_learns_its_last_seq() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let t = store
        .create_token(
            &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
            T0,
        )
        .unwrap();
    let first = store.enroll(&t.token, host("m1"), T0).await.unwrap();
    assert!(!first.re_enrolled);
    let auth = store.agent_auth(&first.agent_id).unwrap().unwrap();
    store
        .store_batch(batch(auth.num, events(1..=7)))
        .await
        .unwrap();

    let again = store.enroll(&t.token, host("m1"), T0).await.unwrap();
    assert_eq!(again.agent_id, first.agent_id);
    assert!(again.re_enrolled);
    assert_eq!(again.last_seq, 7);
    assert_ne!(again.agent_key, first.agent_key);
    let auth = store.agent_auth(&first.agent_id).unwrap().unwrap();
    assert_eq!(
        auth.key_hash,
        hash_secret(&again.agent_key),
        "the old key no longer works"
    );

    let other = store.enroll(&t.token, host("m2"), T0).await.unwrap();
    assert_ne!(other.agent_id, first.agent_id);
}

#[tokio::test]
async fn events_stored_as_json_before_schema_7_read_beside_protobuf_ones() {
    let (_dir, store, e, num) = one_agent().await;
    let old = events(1..=1).remove(0);
    store
        .reader()
        .execute(
            "INSERT INTO events (agent, seq, at_ms, clock_offset_ms, received_ms, kind, account, data)
             VALUES (?1, 1, ?2, 0, ?2, 'session', 'zhangsan', ?3)",
            params![num, old.at_ms, serde_json::to_string(&old.kind).unwrap()],
        )
        .unwrap();
    store
        .reader()
        .execute("UPDATE agents SET max_seq = 1", [])
        .unwrap();
    let new = vec![Event {
        seq: 2,
        at_ms: T0 + 2,
        kind: EventKind::Usage {
            account: "zhangsan".into(),
            start_ms: T0 - 300_000,
            end_ms: T0,
            category: "chat".into(),
            active_seconds: 120,
            basis: kaoqin_proto::event::UsageBasis::Foreground,
        },
    }];
    store.store_batch(batch(num, new.clone())).await.unwrap();
    let types: Vec<String> = store
        .reader()
        .prepare("SELECT typeof(data) FROM all_events ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(types, ["text", "blob"]);
    let mut read = Vec::new();
    store
        .for_each_event(None, &mut |s| {
            read.push(s.event);
            Ok(())
        })
        .unwrap();
    assert_eq!(read, [old, new[0].clone()]);

    store
        .reader()
        .execute("UPDATE events_recent SET data = x'ff01' WHERE seq = 2", [])
        .unwrap();
    let err = store.for_each_event(None, &mut |_| Ok(())).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("stored event {}/2 does not parse", e.agent_id)),
        "{err}"
    );
}

#[tokio::test]
async fn the_agent_row_keeps_the_latest_clock_offset_also_after_an_upgrade() {
    let (dir, store, _e, num) = one_agent().await;
    let offsets = |store: &SqliteStore| -> Vec<Option<i64>> {
        store
            .agents()
            .unwrap()
            .into_iter()
            .map(|a| a.last_clock_offset_ms)
            .collect()
    };
    assert_eq!(offsets(&store), [None], "nothing measured yet");
    store.store_batch(batch(num, events(1..=2))).await.unwrap();
    let mut late = batch(num, events(3..=4));
    late.clock_offset_ms = -86_400_000;
    store.store_batch(late).await.unwrap();
    assert_eq!(offsets(&store), [Some(-86_400_000)]);

    // A database of schema 7 had the offset only in `batches`.
    store
        .reader()
        .execute_batch(
            "ALTER TABLE agents DROP COLUMN clock_offset_ms;
             CREATE INDEX batches_by_agent_id ON batches(agent, id);
             DROP INDEX exemptions_by_end;
             DROP TABLE calendar_notice_days;
             DROP TABLE calendar_notices;
             ALTER TABLE day_verdicts DROP COLUMN unverified;
             ALTER TABLE agents DROP COLUMN latest_at_ms;
             ALTER TABLE tokens DROP COLUMN reenroll;
             DROP TABLE enrolments;
             DROP TABLE integrity_events;
             DROP TABLE staff_pcs;
             DROP TABLE retention;
             DROP TABLE dirty_claims;
             DROP INDEX exemptions_by_request;
             ALTER TABLE exemptions DROP COLUMN request_id;
             DROP TABLE request_decisions;
             DROP TABLE requests;
             DROP TABLE leave_balances;
             ALTER TABLE staff DROP COLUMN email;
             DROP TABLE notifications;
             DROP TABLE notify_days;
             DROP TABLE office_settings;
             ALTER TABLE users DROP COLUMN lang;
             ALTER TABLE staff DROP COLUMN left_on;
             DROP VIEW all_events;
             DROP TABLE events_recent;
             PRAGMA user_version = 7;",
        )
        .unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(offsets(&store), [Some(-86_400_000)]);
}

#[tokio::test]
async fn pc_accounts_are_written_when_new_or_a_quarter_hour_on_and_never_from_a_refused_batch() {
    let (_dir, store, _e, num) = one_agent().await;
    let unlock = |seq: u64, at_ms: i64, account: &str| Event {
        seq,
        at_ms,
        kind: EventKind::Session {
            kind: SessionKind::Unlock,
            account: account.into(),
        },
    };
    let stored = |store: &SqliteStore| -> Vec<(String, i64, i64)> {
        store
            .reader()
            .prepare("SELECT account, first_ms, last_ms FROM pc_accounts ORDER BY account")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let mut b = batch(num, vec![unlock(10, T0, "ZhangSan")]);
    b.clock_offset_ms = 0;
    store.store_batch(b.clone()).await.unwrap();
    assert_eq!(stored(&store), [("zhangsan".into(), T0, T0)]);

    // Refused as a seq going backwards: lisi must not be remembered as stored.
    b.events = vec![unlock(5, T0 + 1, "lisi"), unlock(11, T0 + 1, "lisi")];
    store.store_batch(b.clone()).await.unwrap_err();
    assert_eq!(stored(&store).len(), 1);
    b.events = vec![unlock(11, T0 + 60_000, "lisi")];
    store.store_batch(b.clone()).await.unwrap();
    assert_eq!(stored(&store)[0], ("lisi".into(), T0 + 60_000, T0 + 60_000));

    // Ten minutes on, the stored last instant is close enough; twenty is not.
    b.events = vec![unlock(12, T0 + 600_000, "zhangsan")];
    store.store_batch(b.clone()).await.unwrap();
    assert_eq!(stored(&store)[1], ("zhangsan".into(), T0, T0));
    b.events = vec![unlock(13, T0 + 1_200_000, "zhangsan")];
    store.store_batch(b.clone()).await.unwrap();
    assert_eq!(stored(&store)[1], ("zhangsan".into(), T0, T0 + 1_200_000));
    // An earlier instant (a replayed backlog) is always written.
    b.events = vec![unlock(14, T0 - 1, "zhangsan")];
    store.store_batch(b).await.unwrap();
    assert_eq!(
        stored(&store)[1],
        ("zhangsan".into(), T0 - 1, T0 + 1_200_000)
    );
}

#[tokio::test]
async fn the_log_is_checkpointed_beside_the_writer() {
    let (dir, store, _e, num) = one_agent().await;
    let db_len = || std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
    let before = db_len();
    // 10,000 events, about 200 pages of log: far below SQLite's own
    // threshold of 1,000, and at least 100 pages once in the database.
    for chunk in 0..20u64 {
        store
            .store_batch(batch(num, events(chunk * 500 + 1..=chunk * 500 + 500)))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db_len() < before + 100 * 4096 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {} bytes: nothing was checkpointed",
            db_len()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test]
async fn resends_are_stored_once_and_still_acknowledged() {
    let (_dir, store, e, num) = one_agent().await;

    let a = store.store_batch(batch(num, events(1..=10))).await.unwrap();
    assert_eq!(
        a,
        BatchOutcome {
            acked_seq: 10,
            inserted: 10
        }
    );
    let b = store.store_batch(batch(num, events(5..=12))).await.unwrap();
    assert_eq!(
        b,
        BatchOutcome {
            acked_seq: 12,
            inserted: 2
        }
    );
    let c = store.store_batch(batch(num, events(1..=3))).await.unwrap();
    assert_eq!(
        c,
        BatchOutcome {
            acked_seq: 12,
            inserted: 0
        }
    );
    assert_eq!(store.count_events().unwrap(), (12, 12));

    let mut seen = Vec::new();
    store
        .for_each_event(Some(&e.agent_id), &mut |s| {
            assert_eq!(s.clock_offset_ms, 1500);
            seen.push(s.event);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, events(1..=12));
}

/// The rows of `table` committed in the store of `dir`.
fn rows(dir: &std::path::Path, table: &str) -> i64 {
    Connection::open(dir.join(DB_FILE))
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn new_events_wait_in_events_recent_are_read_there_and_are_moved_whole() {
    let (dir, store, e, num) = one_agent().await;
    let count = |table: &str| rows(dir.path(), table);
    let pc = (num, e.agent_id.clone());
    let read = |store: &SqliteStore| -> Vec<u64> {
        store
            .pc_events(&pc, T0, T0 + 1_000_000)
            .unwrap()
            .into_iter()
            .map(|s| s.event.seq)
            .collect()
    };
    store.store_batch(batch(num, events(1..=3))).await.unwrap();
    assert_eq!((count("events_recent"), count("events")), (3, 0));
    assert_eq!(read(&store), [1, 2, 3], "read where they wait");
    assert_eq!(store.count_events().unwrap(), (3, 3));

    // A resend moves them first, so that the resend is told apart and ignored.
    let resent = store.store_batch(batch(num, events(2..=4))).await.unwrap();
    assert_eq!((resent.acked_seq, resent.inserted), (4, 1));
    assert_eq!((count("events_recent"), count("events")), (0, 4));
    assert_eq!(read(&store), [1, 2, 3, 4]);

    // A refused batch takes back the move it made: 5 and 6 wait where they were.
    store.store_batch(batch(num, events(5..=6))).await.unwrap();
    store.store_batch(batch(num, events(8..=8))).await.unwrap();
    // 7 is below 8 and never stored.
    let back = store.store_batch(batch(num, events(7..=7))).await;
    assert!(matches!(back, Err(StoreError::Invalid(_))), "{back:?}");
    assert_eq!((count("events_recent"), count("events")), (3, 4));

    // A large batch fills pages of its agent's in `events` at once.
    let large = writer::RECENT_MAX_BATCH as u64;
    store
        .store_batch(batch(num, events(9..=8 + large)))
        .await
        .unwrap();
    assert_eq!(
        (count("events_recent"), count("events")),
        (3, 4 + large as i64)
    );

    // Small ones fill `events_recent` past FOLD_ROWS; the writer then moves
    // them by itself.
    let (small, mut next, mut waiting) = (large - 1, 9 + large, 3);
    while waiting < writer::FOLD_ROWS as u64 {
        store
            .store_batch(batch(num, events(next..=next + small - 1)))
            .await
            .unwrap();
        next += small;
        waiting += small;
    }
    let last = next;
    store
        .store_batch(batch(num, events(last..=last)))
        .await
        .unwrap();
    assert!(
        (count("events_recent") as usize) < writer::FOLD_ROWS,
        "moved when full"
    );
    assert_eq!(count("events_recent") + count("events"), last as i64 - 1);
    let mut seen = Vec::new();
    store
        .for_each_event(None, &mut |s| {
            seen.push(s.event.seq);
            Ok(())
        })
        .unwrap();
    let mut expected: Vec<u64> = (1..=last).collect();
    expected.retain(|&seq| seq != 7);
    assert_eq!(seen, expected, "in (agent, seq) order across both tables");
}

#[tokio::test]
async fn recent_events_are_moved_after_a_while_and_when_the_store_closes() {
    let count = rows;
    let enrolled = async |store: &SqliteStore| {
        let t = store
            .create_token(&crate::store::TokenSpec::new_machines(86_400_000, None), T0)
            .unwrap();
        let e = store.enroll(&t.token, host("m1"), T0).await.unwrap();
        store.agent_auth(&e.agent_id).unwrap().unwrap().num
    };
    // A writer that moves what waited 50 ms, with no Report to wake it.
    let dir = tempfile::tempdir().unwrap();
    let age = std::time::Duration::from_millis(50);
    let store = SqliteStore::open_folding(dir.path(), &Settings::default(), age).unwrap();
    let num = enrolled(&store).await;
    store.store_batch(batch(num, events(1..=3))).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(dir.path(), "events") < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was moved in 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(count(dir.path(), "events_recent"), 0);
    drop(store);

    // A writer at the default pace moves what waits when the store closes.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let num = enrolled(&store).await;
    store.store_batch(batch(num, events(1..=3))).await.unwrap();
    assert_eq!(count(dir.path(), "events_recent"), 3);
    drop(store);
    assert_eq!(
        (
            count(dir.path(), "events_recent"),
            count(dir.path(), "events")
        ),
        (0, 3)
    );
}

#[tokio::test]
async fn a_seq_that_goes_backwards_is_refused_and_rolls_back_the_batch() {
    let (_dir, store, _e, num) = one_agent().await;
    let mut gap = events(1..=6);
    gap.remove(2); // seq 3 never arrives
    store.store_batch(batch(num, gap)).await.unwrap();
    // A resend of 5 and 6 with 3 in front and new 7, 8 behind: 3 is below the
    // stored 6 and not stored, so the batch is refused whole.
    let mut back = events(3..=8);
    back.remove(1);
    let err = store.store_batch(batch(num, back)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.starts_with("event seq 3: seq: goes backwards")),
        "{err:?}"
    );
    assert_eq!(store.count_events().unwrap(), (5, 5), "7 and 8 rolled back");
    // Resends alone are fine, and so is going on above.
    let ok = store.store_batch(batch(num, events(4..=8))).await.unwrap();
    assert_eq!(
        ok,
        BatchOutcome {
            acked_seq: 8,
            inserted: 2
        }
    );
}

#[tokio::test]
async fn a_batch_marks_its_days_dirty_for_every_account_of_the_pc() {
    let (_dir, store, e, num) = one_agent().await;
    // T0 = 2026-11-18T11:06:40Z = 19:06 in Shanghai: that day, and the one before.
    store.store_batch(batch(num, events(1..=3))).await.unwrap();
    let mut dirty = store.take_dirty().unwrap();
    dirty.sort();
    let d = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
    assert_eq!(
        dirty,
        [
            ("zhangsan".to_owned(), d("2026-11-17")),
            ("zhangsan".to_owned(), d("2026-11-18"))
        ]
    );
    assert!(store.take_dirty().unwrap().is_empty(), "taken means gone");
    // A resend marks nothing; a heartbeat of the PC marks its known accounts.
    store.store_batch(batch(num, events(1..=3))).await.unwrap();
    assert!(store.take_dirty().unwrap().is_empty());
    let hb = Event {
        seq: 4,
        at_ms: T0 + 86_400_000,
        kind: EventKind::Heartbeat {
            interval_seconds: 60,
            accounts: vec![],
        },
    };
    store.store_batch(batch(num, vec![hb])).await.unwrap();
    let dirty = store.take_dirty().unwrap();
    assert!(
        dirty.contains(&("zhangsan".to_owned(), d("2026-11-19"))),
        "{dirty:?}"
    );
    let unmapped = store.unmapped_accounts().unwrap();
    assert_eq!(unmapped.len(), 1);
    assert_eq!(unmapped[0].pcs, [(e.agent_id.clone(), "pc-m1".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_are_all_stored_by_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let t = store
        .create_token(
            &crate::store::TokenSpec::new_machines(86_400_000, None).reenrolling(),
            T0,
        )
        .unwrap();
    let mut nums = Vec::new();
    for m in 0..8 {
        let e = store
            .enroll(&t.token, host(&format!("m{m}")), T0)
            .await
            .unwrap();
        nums.push(store.agent_auth(&e.agent_id).unwrap().unwrap().num);
    }
    // Agents at once; each agent's batches one after another, as agents send.
    let mut tasks = tokio::task::JoinSet::new();
    for num in nums {
        let store = store.clone();
        tasks.spawn(async move {
            // 150 events a batch: new events go in 64 rows to a statement.
            for chunk in 0..10u64 {
                let outcome = store
                    .store_batch(batch(num, events(chunk * 150 + 1..=chunk * 150 + 150)))
                    .await?;
                assert_eq!(outcome.inserted, 150);
                assert_eq!(outcome.acked_seq, chunk * 150 + 150);
            }
            Ok::<_, StoreError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(store.count_events().unwrap(), (12_000, 12_000));
    drop(store);
    // Everything acknowledged is there after a reopen, each event as sent.
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.count_events().unwrap(), (12_000, 12_000));
    let mut per_agent: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    store
        .for_each_event(None, &mut |s| {
            per_agent.entry(s.agent_id).or_default().push(s.event);
            Ok(())
        })
        .unwrap();
    assert_eq!(per_agent.len(), 8);
    for events_of_one in per_agent.values() {
        assert_eq!(*events_of_one, events(1..=1500));
    }
}

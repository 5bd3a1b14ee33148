//! kaoqin-seed: fills a collector data directory with a synthetic office, month by
//! month, through the collector's own code (staff import, the store's batch path,
//! exemptions, the verdict recompute), and measures report latency and ingest
//! throughput on what it built.
//!
//! ```text
//! kaoqin-seed seed    --data DIR --from 2026-01 --months 1 [--staff 5000] [--seed 1]
//! kaoqin-seed seed    --data DIR --months 2            # continues after the last seeded month
//! kaoqin-seed measure --data DIR [--month 2026-03] [--employee E00042] [--runs 15]
//! ```
//!
//! The office: `--staff` people (E00001, ...; OS account e00001, ...) spread over
//! `--departments` departments, one PC each. On every working day of the official
//! calendar (make-up working days included) a PC boots shortly before its owner
//! arrives and sends:
//!
//! - session events: logon on arrival (07:50-08:35, or 08:36-09:31 for a late day;
//!   some people are late more often than others), lock at lunch around 12:00,
//!   unlock around 13:52-14:06, logoff around 17:30-18:10 (earlier on an early day,
//!   up to 20:30 on an overtime day), and on some days an idle period;
//! - a usage event per `--usage-interval-seconds` interval with active use: `other`
//!   or `work`, and on about a third of the intervals a second, non-work category
//!   (mostly chat);
//! - heartbeats every `--heartbeat-seconds` from boot to shutdown, listing the
//!   account while it is logged on;
//! - agent start (system boot) and stop (system shutdown).
//!
//! About one week in ten a person has a spell of leave, field work or a business
//! trip (entered as an exemption, PC off); 0.3 % of working days are unexplained
//! absences (PC off).
//!
//! Volume: with the defaults (heartbeat every 600 s, usage intervals of 900 s) a
//! PC day is about 110 events, about 20 KB of database with its indexes, and every
//! person-day's stored verdict about 3.5 KB: a year of 5,000 staff is about 30 GB.
//! The policy defaults (60 s and 300 s) give about 710 events, 108 KB, a PC day:
//! about 135 GB a year for 5,000 staff. `seed` prints the figure for each month.
//!
//! Everything is deterministic from `--seed`: a day's events depend only on the
//! seed, the person and the date, so seeding months 1-3 in one run or in three
//! runs gives the same events. The parameters and the seeded range are kept in
//! `seed.json` in the data directory; a later run continues after the last seeded
//! month with the same parameters.

use anyhow::{Context as _, bail, ensure};
use clap::{Args, Parser, Subcommand};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use kaoqin_collector::attendance::{Calendar, Exemption, ExemptionKind, Person};
use kaoqin_collector::reports::summary;
use kaoqin_collector::store::concerns::*;
use kaoqin_collector::store::sqlite::{DB_FILE, SqliteStore};
use kaoqin_collector::store::{Batch, HostFacts, Store};
use kaoqin_collector::users::{NewUser, Role};
use kaoqin_collector::verdicts::{self, Rules};
use kaoqin_proto::event::{
    Event, EventKind, LifecycleKind, LifecycleReason, SessionKind, UsageBasis,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

#[derive(Debug, Parser)]
#[command(
    name = "kaoqin-seed",
    version,
    about = "Seeds a collector database with a synthetic office and measures reports on it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates the data directory, or extends it by more months.
    Seed(SeedArgs),
    /// Times the summary, one person's month and ingest on the seeded database.
    Measure(MeasureArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// The collector's data directory (kaoqin.db and seed.json).
    #[arg(long)]
    data: PathBuf,
    /// The collector's config file (time zone, schedules, calendar overrides);
    /// default: the built-in settings.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SeedArgs {
    #[command(flatten)]
    common: Common,
    /// First month to seed (YYYY-MM); default: the month after the last seeded one.
    #[arg(long)]
    from: Option<String>,
    /// How many months to seed.
    #[arg(long, default_value_t = 1)]
    months: u32,
    /// Staff members (first run only) [default: 5000].
    #[arg(long)]
    staff: Option<usize>,
    /// Departments (first run only) [default: 20].
    #[arg(long)]
    departments: Option<usize>,
    /// Seed of the generator (first run only) [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds between a PC's heartbeats (first run only) [default: 600].
    #[arg(long)]
    heartbeat_seconds: Option<u32>,
    /// Length of a usage interval in seconds (first run only) [default: 900].
    #[arg(long)]
    usage_interval_seconds: Option<u32>,
    /// Most events in one stored batch; a PC day is sent as one or more batches.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// PC-days being generated and stored at once (the writer commits the batches
    /// that wait together).
    #[arg(long, default_value_t = 128)]
    in_flight: usize,
}

#[derive(Debug, Args)]
struct MeasureArgs {
    #[command(flatten)]
    common: Common,
    /// The month reported on (YYYY-MM); default: the last seeded month.
    #[arg(long)]
    month: Option<String>,
    /// The person whose month is shown; default: E00042, or the first staff member.
    #[arg(long)]
    employee: Option<String>,
    /// Timed runs of each report after one warm-up run; the median is shown.
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Runs of the ReportService (gRPC) person call, which reads everyone's month.
    #[arg(long, default_value_t = 5)]
    grpc_runs: usize,
    /// Stop timing one report once its runs (warm-up included) took this long;
    /// a report slower than this is run once and its warm-up time shown.
    #[arg(long, default_value_t = 120)]
    max_seconds: u64,
    /// Batches in one ingest burst.
    #[arg(long, default_value_t = 200)]
    ingest_batches: usize,
    /// Events in one ingest batch.
    #[arg(long, default_value_t = 500)]
    ingest_events: usize,
    /// Batches waiting for the writer at once during a burst.
    #[arg(long, default_value_t = 8)]
    ingest_in_flight: usize,
    /// Ingest bursts; the median is shown.
    #[arg(long, default_value_t = 3)]
    ingest_runs: usize,
    /// Skip the ingest bursts (they add events to the database).
    #[arg(long)]
    no_ingest: bool,
}

/// What `seed.json` keeps: the generator's parameters and what has been seeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeedState {
    seed: u64,
    staff: usize,
    departments: usize,
    heartbeat_seconds: u32,
    usage_interval_seconds: u32,
    first_day: Option<Date>,
    last_day: Option<Date>,
    months: u32,
    /// A month whose seeding started and did not finish.
    in_progress: Option<String>,
    /// The instant verdicts were judged at (after the last seeded day).
    now_ms: i64,
    /// Events generated by `seed` (the measure's ingest bursts add more).
    events: u64,
    /// Person-days with a PC on.
    pc_days: u64,
    /// Person-days judged in the seeded months (every calendar day).
    staff_days: u64,
    exemptions: u64,
}

const STATE_FILE: &str = "seed.json";

fn load_state(dir: &Path) -> anyhow::Result<Option<SeedState>> {
    let path = dir.join(STATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_state(dir: &Path, state: &SeedState) -> anyhow::Result<()> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_string_pretty(state)? + "\n")
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn open(common: &Common) -> anyhow::Result<(Arc<SqliteStore>, Rules)> {
    let config = match &common.config {
        Some(p) => kaoqin_collector::config::Config::load(p)?,
        None => kaoqin_collector::config::Config::default(),
    };
    let rules = Rules::from_config(&config)?;
    let store = SqliteStore::open_with(&common.data, &rules.settings)?;
    let rules = rules.with_store_notices(&*store)?;
    Ok((store, rules))
}

fn parse_month(text: &str) -> anyhow::Result<Date> {
    format!("{text}-01")
        .parse::<Date>()
        .map_err(|_| anyhow::anyhow!("month {text:?}: use YYYY-MM"))
}

fn month_name(d: Date) -> String {
    d.strftime("%Y-%m").to_string()
}

fn db_bytes(dir: &Path) -> u64 {
    [DB_FILE.to_owned(), format!("{DB_FILE}-wal")]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn gib(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

// ---------------------------------------------------------------- generator

/// SplitMix64: small, fast and deterministic across platforms.
#[derive(Debug, Clone)]
struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    fn new(parts: &[u64]) -> Rng {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for p in parts {
            s = mix(s ^ p.wrapping_mul(0xA24B_AED4_963E_E407));
        }
        Rng(s)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next() % ((hi - lo) as u64 + 1)) as i64
    }
}

/// Streams of the generator, so that one kind of draw never shifts another.
const PERSON: u64 = 1;
const DAY: u64 = 2;
const WEEK: u64 = 3;

fn date_key(d: Date) -> u64 {
    (i64::from(d.year()) * 10_000 + i64::from(d.month()) * 100 + i64::from(d.day())) as u64
}

const DEPARTMENTS: [&str; 20] = [
    "办公室",
    "信息中心",
    "财务科",
    "人事科",
    "法规科",
    "综合科",
    "档案室",
    "审计科",
    "宣传科",
    "后勤服务中心",
    "政策研究室",
    "督查室",
    "业务一科",
    "业务二科",
    "业务三科",
    "业务四科",
    "业务五科",
    "监察室",
    "统计科",
    "机关党委",
];

fn department_name(i: usize) -> String {
    DEPARTMENTS
        .get(i)
        .map_or_else(|| format!("业务{}处", i + 1), |d| (*d).to_owned())
}

fn employee_id(i: usize) -> String {
    format!("E{:05}", i + 1)
}

fn account(i: usize) -> String {
    format!("e{:05}", i + 1)
}

/// The staff directory: names in the fixtures' style, departments of uneven size,
/// and one person in thirty with a second (unused) account.
fn people(seed: u64, n: usize, departments: usize) -> Vec<Person> {
    const NAMES: [&str; 3] = ["张三", "李四", "王五"];
    (0..n)
        .map(|i| {
            let mut r = Rng::new(&[seed, PERSON, i as u64, 0]);
            let dept = ((r.unit().powf(1.6) * departments as f64) as usize).min(departments - 1);
            let mut accounts = vec![account(i)];
            if r.chance(1.0 / 30.0) {
                accounts.push(format!("{}.adm", account(i)));
            }
            Person {
                employee_id: employee_id(i),
                name: format!("{}{}", NAMES[i % NAMES.len()], i + 1),
                department: department_name(dept),
                accounts,
                own_pcs: Vec::new(),
                email: String::new(),
                left_on: None,
            }
        })
        .collect()
}

/// How a person tends to behave.
#[derive(Debug, Clone)]
struct Traits {
    late: f64,
    early: f64,
    overtime: f64,
    primary: &'static str,
    distracted: f64,
    /// Where in the heartbeat interval the PC's heartbeats fall, in seconds.
    phase: i64,
}

fn traits(seed: u64, i: usize, heartbeat: u32) -> Traits {
    let mut r = Rng::new(&[seed, PERSON, i as u64, 1]);
    let habit = r.unit();
    Traits {
        late: if habit < 0.75 {
            0.02
        } else if habit < 0.95 {
            0.10
        } else {
            0.35
        },
        early: if r.chance(0.85) { 0.02 } else { 0.12 },
        overtime: if r.chance(0.8) { 0.03 } else { 0.15 },
        primary: if r.chance(0.7) { "other" } else { "work" },
        distracted: 0.15 + r.unit() * 0.35,
        phase: r.range(0, i64::from(heartbeat) - 1),
    }
}

/// A spell away from the office (exemption) in the week starting `monday`: at most
/// one a week, starting on a weekday, ending by Sunday.
fn spell_of_week(seed: u64, i: usize, monday: Date) -> Option<(ExemptionKind, Date, i64)> {
    let mut r = Rng::new(&[seed, WEEK, i as u64, date_key(monday)]);
    let u = r.unit();
    let (kind, len) = if u < 0.06 {
        (ExemptionKind::Leave, r.range(1, 5))
    } else if u < 0.09 {
        (ExemptionKind::Field, r.range(1, 2))
    } else if u < 0.105 {
        (ExemptionKind::BusinessTrip, r.range(2, 4))
    } else {
        return None;
    };
    let offset = r.range(0, 4);
    let start = monday.checked_add(offset.days()).ok()?;
    Some((kind, start, len.min(7 - offset)))
}

fn monday_of(d: Date) -> Date {
    d.checked_sub(i64::from(d.weekday().to_monday_zero_offset()).days())
        .unwrap_or(d)
}

/// The spell that covers `date`, if any.
fn spell_on(seed: u64, i: usize, date: Date) -> Option<(ExemptionKind, Date, i64)> {
    let spell = spell_of_week(seed, i, monday_of(date))?;
    let days = spell.1.until(date).ok()?.get_days();
    (0..spell.2).contains(&i64::from(days)).then_some(spell)
}

/// Generator settings shared by every PC task.
#[derive(Debug)]
struct Gen {
    seed: u64,
    heartbeat: u32,
    usage: u32,
    tz: TimeZone,
    calendar: Calendar,
    batch: usize,
}

/// One PC and its owner.
#[derive(Debug, Clone)]
struct Pc {
    idx: usize,
    num: i64,
    seq: u64,
    account: String,
    traits: Traits,
}

/// What one person-day produced.
#[derive(Debug, Default)]
struct DayOut {
    /// (agent-clock instant, event), in time order, before seqs are assigned.
    events: Vec<(i64, EventKind)>,
    exemption: Option<Exemption>,
    offset_ms: i64,
}

fn midnight_ms(tz: &TimeZone, d: Date) -> anyhow::Result<i64> {
    Ok(tz
        .to_ambiguous_timestamp(d.to_datetime(Time::midnight()))
        .compatible()?
        .as_millisecond())
}

const H: i64 = 3600;
const M: i64 = 60;

fn session(kind: SessionKind, account: &str) -> EventKind {
    EventKind::Session {
        kind,
        account: account.to_owned(),
    }
}

fn lifecycle(kind: LifecycleKind, reason: LifecycleReason) -> EventKind {
    EventKind::Lifecycle {
        kind,
        reason,
        agent_version: "kaoqin-seed".into(),
        previous_seen_ms: None,
    }
}

/// Overlap in seconds of `[a, b)` with the union of `periods` (disjoint).
fn overlap(periods: &[(i64, i64)], a: i64, b: i64) -> i64 {
    periods
        .iter()
        .map(|&(s, e)| (e.min(b) - s.max(a)).max(0))
        .sum()
}

/// Removes `[s, e)` from sorted disjoint `periods`.
fn cut(periods: &mut Vec<(i64, i64)>, s: i64, e: i64) {
    let mut out = Vec::with_capacity(periods.len() + 1);
    for &(a, b) in periods.iter() {
        if e <= a || b <= s {
            out.push((a, b));
            continue;
        }
        if a < s {
            out.push((a, s));
        }
        if e < b {
            out.push((e, b));
        }
    }
    *periods = out;
}

fn day_events(g: &Gen, pc: &Pc, date: Date) -> anyhow::Result<DayOut> {
    let mut out = DayOut::default();
    let working = g.calendar.day_kind(date).is_working();
    if let Some((kind, start, len)) = spell_on(g.seed, pc.idx, date) {
        if start == date {
            let from = Timestamp::from_millisecond(midnight_ms(&g.tz, start)?)?;
            let end_day = start.checked_add(len.days())?;
            let to = Timestamp::from_millisecond(midnight_ms(&g.tz, end_day)?)?;
            out.exemption = Some(Exemption {
                employee_id: employee_id(pc.idx),
                kind,
                start: from,
                end: to,
                note: "kaoqin-seed".into(),
            });
        }
        return Ok(out);
    }
    if !working {
        return Ok(out);
    }
    let t = &pc.traits;
    let mut r = Rng::new(&[g.seed, DAY, pc.idx as u64, date_key(date)]);
    if r.chance(0.003) {
        return Ok(out);
    }
    let arrival = if r.chance(t.late) {
        8 * H + 36 * M + r.range(0, 55 * M)
    } else {
        7 * H + 50 * M + r.range(0, 45 * M)
    };
    let boot = arrival - r.range(60, 6 * M);
    let lock = 12 * H + r.range(-5 * M, 12 * M);
    let unlock = 13 * H + 52 * M + r.range(0, 14 * M);
    let departure = if r.chance(t.early) {
        16 * H + 40 * M + r.range(0, 45 * M)
    } else if r.chance(t.overtime) {
        18 * H + r.range(0, 150 * M)
    } else {
        17 * H + 30 * M + r.range(0, 40 * M)
    };
    let shutdown = departure + r.range(30, 3 * M);
    let mut active = vec![(arrival, lock), (unlock, departure)];
    let mut idles = Vec::new();
    if r.chance(0.3) {
        let s = r
            .range(9 * H + 30 * M, 11 * H + 20 * M)
            .max(arrival + 10 * M);
        let e = s + r.range(6 * M, 25 * M);
        if e < lock - M {
            idles.push((s, e));
        }
    }
    if r.chance(0.2) {
        let s = r.range(15 * H, 16 * H + 30 * M);
        let e = s + r.range(6 * M, 25 * M);
        if e < departure - M {
            idles.push((s, e));
        }
    }
    for &(s, e) in &idles {
        cut(&mut active, s, e);
    }

    let acct = pc.account.as_str();
    // Seconds of the day, then the event.
    let mut ev: Vec<(i64, EventKind)> = Vec::with_capacity(320);
    ev.push((
        boot,
        lifecycle(LifecycleKind::Start, LifecycleReason::SystemBoot),
    ));
    ev.push((arrival, session(SessionKind::Logon, acct)));
    ev.push((lock, session(SessionKind::Lock, acct)));
    ev.push((unlock, session(SessionKind::Unlock, acct)));
    for &(s, e) in &idles {
        ev.push((s, session(SessionKind::IdleStart, acct)));
        ev.push((e, session(SessionKind::IdleEnd, acct)));
    }
    ev.push((departure, session(SessionKind::Logoff, acct)));
    ev.push((
        shutdown,
        lifecycle(LifecycleKind::Stop, LifecycleReason::SystemShutdown),
    ));
    let hb = i64::from(g.heartbeat);
    let mut at = boot + (t.phase - boot).rem_euclid(hb);
    while at < shutdown {
        let logged = (arrival..departure).contains(&at);
        ev.push((
            at,
            EventKind::Heartbeat {
                interval_seconds: g.heartbeat,
                accounts: if logged {
                    vec![acct.to_owned()]
                } else {
                    vec![]
                },
            },
        ));
        at += hb;
    }
    let base = midnight_ms(&g.tz, date)?;
    let iv = i64::from(g.usage);
    let mut k = arrival.div_euclid(iv) * iv;
    while k < departure {
        let (s, e) = (k, k + iv);
        k = e;
        let o = overlap(&active, s, e);
        if o < 30 {
            continue;
        }
        let emit = e.min(shutdown - 1);
        let mut main = (o as f64 * (0.55 + 0.45 * r.unit())) as i64;
        let usage = |category: &str, secs: i64| EventKind::Usage {
            account: acct.to_owned(),
            start_ms: base + s * 1000,
            end_ms: base + e * 1000,
            category: category.to_owned(),
            active_seconds: secs as u32,
            basis: UsageBasis::Foreground,
        };
        if r.chance(t.distracted) {
            let u = r.unit();
            let cat = if u < 0.6 {
                "chat"
            } else if u < 0.78 {
                "nonwork_web"
            } else if u < 0.9 {
                "media"
            } else if u < 0.97 {
                "downloads"
            } else {
                "games"
            };
            let secs = r.range(20, (o / 2).max(20));
            main = main.min(o - secs).max(0);
            ev.push((emit, usage(cat, secs)));
        }
        if main > 0 {
            ev.push((emit, usage(t.primary, main)));
        }
    }
    // Milliseconds within the second; the shutdown comes after everything else.
    out.events = ev
        .into_iter()
        .map(|(secs, kind)| {
            let ms = match kind {
                EventKind::Lifecycle {
                    kind: LifecycleKind::Stop,
                    ..
                } => 999,
                _ => r.range(0, 998),
            };
            (base + secs * 1000 + ms, kind)
        })
        .collect();
    out.events.sort_by_key(|(at, _)| *at);
    out.offset_ms = r.range(-400, 400);
    Ok(out)
}

/// Stores `events` of one PC as batches of at most `batch`, in seq order.
async fn store_events(
    store: &SqliteStore,
    pc: &mut Pc,
    events: Vec<(i64, EventKind)>,
    offset_ms: i64,
    batch: usize,
) -> anyhow::Result<u64> {
    let mut stored = 0;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<Event> = events
            .by_ref()
            .take(batch)
            .map(|(at_ms, kind)| {
                pc.seq += 1;
                Event {
                    seq: pc.seq,
                    at_ms,
                    kind,
                }
            })
            .collect();
        let last = chunk.last().map_or(0, |e| e.at_ms);
        let received_ms = last + 1500 + (pc.seq % 3000) as i64;
        let n = chunk.len() as u64;
        let b = Batch {
            agent_num: pc.num,
            received_ms,
            sent_at_ms: received_ms - offset_ms - 20,
            clock_offset_ms: offset_ms,
            events: chunk,
            // Seeded history lies before the enrolment, as a replay's does.
            replay: true,
        };
        let outcome = store_one(store, b).await?;
        ensure!(
            outcome.inserted == n,
            "agent {}: {} of {n} events were new",
            pc.num,
            outcome.inserted
        );
        stored += n;
    }
    Ok(stored)
}

/// Stores one batch. The writer's queue holds more batches than are ever in
/// flight here, so a refusal is a real failure (disk full, database locked by
/// another process) and ends the run.
async fn store_one(
    store: &SqliteStore,
    b: Batch,
) -> anyhow::Result<kaoqin_collector::store::BatchOutcome> {
    let agent = b.agent_num;
    store
        .store_batch(b)
        .await
        .with_context(|| format!("storing a batch of agent {agent}"))
}

#[derive(Debug, Default)]
struct Counters {
    events: AtomicU64,
    pc_days: AtomicU64,
}

/// One PC over `days`: generates and stores each day in turn, each day waiting for
/// a place among the PC-days in flight.
async fn run_pc(
    g: Arc<Gen>,
    store: Arc<SqliteStore>,
    sem: Arc<Semaphore>,
    counters: Arc<Counters>,
    mut pc: Pc,
    days: Arc<Vec<Date>>,
) -> anyhow::Result<(Pc, Vec<Exemption>)> {
    let mut exemptions = Vec::new();
    for &d in days.iter() {
        let _permit = sem.acquire().await?;
        let out = day_events(&g, &pc, d)?;
        exemptions.extend(out.exemption);
        if out.events.is_empty() {
            continue;
        }
        let n = store_events(&store, &mut pc, out.events, out.offset_ms, g.batch).await?;
        counters.events.fetch_add(n, Ordering::Relaxed);
        counters.pc_days.fetch_add(1, Ordering::Relaxed);
    }
    Ok((pc, exemptions))
}

/// Enrols (or re-enrols, learning the last stored seq) the PCs of `indices`.
async fn enroll_pcs(
    store: &Arc<SqliteStore>,
    seed: u64,
    heartbeat: u32,
    indices: &[usize],
) -> anyhow::Result<Vec<Pc>> {
    let token = store.create_token(
        &kaoqin_collector::store::TokenSpec {
            note: "kaoqin-seed".into(),
            ..kaoqin_collector::store::TokenSpec::new_machines(3_600_000, None)
        },
        now_ms(),
    )?;
    let sem = Arc::new(Semaphore::new(64));
    let mut set = tokio::task::JoinSet::new();
    for &i in indices {
        let (store, token, sem) = (store.clone(), token.token.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let host = HostFacts {
                machine_id: format!("seed-pc-{:05}", i + 1),
                hostname: format!("PC-{:05}", i + 1),
                os: "linux".into(),
                os_version: "kaoqin-seed".into(),
                agent_version: "kaoqin-seed".into(),
            };
            let e = store.enroll(&token, host, now_ms()).await?;
            let auth = store
                .agent_auth(&e.agent_id)?
                .context("an enrolled agent is unknown")?;
            anyhow::Ok(Pc {
                idx: i,
                num: auth.num,
                seq: e.last_seq,
                account: account(i),
                traits: traits(seed, i, heartbeat),
            })
        });
    }
    let mut pcs = Vec::with_capacity(indices.len());
    while let Some(r) = set.join_next().await {
        pcs.push(r??);
    }
    pcs.sort_by_key(|p| p.idx);
    Ok(pcs)
}

fn days_of_month(first: Date) -> Vec<Date> {
    let mut out = Vec::new();
    let mut d = first;
    while d <= first.last_of_month() {
        out.push(d);
        d = d.saturating_add(1.day());
    }
    out
}

fn stored_events(store: &SqliteStore) -> anyhow::Result<u64> {
    // Seqs of an agent are 1, 2, 3, ... with none missing, so their sum is the
    // number of stored events without a scan of the events table.
    Ok(store.agents()?.iter().map(|a| a.max_seq).sum())
}

async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let dir = args.common.data.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let previous = load_state(&dir)?;
    if previous.is_none() && dir.join(DB_FILE).exists() {
        bail!(
            "{} has a database that kaoqin-seed did not make (no {STATE_FILE}); use an empty directory",
            dir.display()
        );
    }
    let mut state = match previous {
        Some(s) => {
            let fixed = [
                ("--staff", args.staff.map(|v| v as u64), s.staff as u64),
                (
                    "--departments",
                    args.departments.map(|v| v as u64),
                    s.departments as u64,
                ),
                ("--seed", args.seed, s.seed),
                (
                    "--heartbeat-seconds",
                    args.heartbeat_seconds.map(u64::from),
                    u64::from(s.heartbeat_seconds),
                ),
                (
                    "--usage-interval-seconds",
                    args.usage_interval_seconds.map(u64::from),
                    u64::from(s.usage_interval_seconds),
                ),
            ];
            for (flag, given, kept) in fixed {
                if let Some(g) = given {
                    ensure!(
                        g == kept,
                        "{flag} {g}: this directory was seeded with {kept} (see {STATE_FILE})"
                    );
                }
            }
            s
        }
        None => SeedState {
            seed: args.seed.unwrap_or(1),
            staff: args.staff.unwrap_or(5000),
            departments: args.departments.unwrap_or(20),
            heartbeat_seconds: args.heartbeat_seconds.unwrap_or(600),
            usage_interval_seconds: args.usage_interval_seconds.unwrap_or(900),
            first_day: None,
            last_day: None,
            months: 0,
            in_progress: None,
            now_ms: 0,
            events: 0,
            pc_days: 0,
            staff_days: 0,
            exemptions: 0,
        },
    };
    if let Some(m) = &state.in_progress {
        bail!(
            "seeding of {m} was interrupted; the database holds part of that month and cannot be extended. Start again in an empty directory."
        );
    }
    ensure!(state.staff >= 1, "--staff must be at least 1");
    ensure!(
        (1..=100).contains(&state.departments),
        "--departments must be between 1 and 100"
    );
    ensure!(
        kaoqin_proto::limits::HEARTBEAT_SECONDS.contains(&state.heartbeat_seconds),
        "--heartbeat-seconds must be within {:?}",
        kaoqin_proto::limits::HEARTBEAT_SECONDS
    );
    ensure!(
        kaoqin_proto::limits::USAGE_INTERVAL_SECONDS.contains(&state.usage_interval_seconds),
        "--usage-interval-seconds must be within {:?}",
        kaoqin_proto::limits::USAGE_INTERVAL_SECONDS
    );
    ensure!(
        (1..=kaoqin_collector::ingest::MAX_BATCH_EVENTS).contains(&args.batch),
        "--batch must be between 1 and {}",
        kaoqin_collector::ingest::MAX_BATCH_EVENTS
    );
    ensure!(
        (1..=1000).contains(&args.in_flight),
        "--in-flight must be between 1 and 1000"
    );
    ensure!(args.months >= 1, "--months must be at least 1");
    let first = match (&args.from, state.last_day) {
        (Some(m), _) => parse_month(m)?,
        (None, Some(last)) => last.saturating_add(1.day()).first_of_month(),
        (None, None) => bail!("give --from YYYY-MM for the first month"),
    };
    if let Some(last) = state.last_day {
        ensure!(
            first > last,
            "{} is already seeded (through {last}); continue with --from {}",
            month_name(first),
            month_name(last.saturating_add(1.day()))
        );
    }
    let months: Vec<Date> = (0..args.months)
        .map(|k| first.checked_add(i64::from(k).months()))
        .collect::<Result<_, _>>()?;
    let end = months.last().copied().unwrap_or(first).last_of_month();

    let (store, rules) = open(&args.common)?;
    let tz = rules.settings.time_zone.clone();
    for m in &months {
        if rules.calendar.is_provisional(m.year()) {
            eprintln!(
                "note: no holiday notice for {}; its statutory holidays only (provisional)",
                m.year()
            );
        }
    }
    // Verdicts are judged as of a moment after the last seeded day, so they are final.
    let judge_at =
        Timestamp::from_millisecond(midnight_ms(&tz, end.saturating_add(2.days()))?.max(now_ms()))?;
    state.now_ms = state.now_ms.max(judge_at.as_millisecond());

    eprintln!(
        "seeding {} month(s) from {} into {}: {} staff, {} departments, seed {}, heartbeat every {} s, usage intervals of {} s",
        args.months,
        month_name(first),
        dir.display(),
        state.staff,
        state.departments,
        state.seed,
        state.heartbeat_seconds,
        state.usage_interval_seconds
    );
    let t0 = Instant::now();
    let directory = store.staff()?;
    if directory.is_empty() {
        let staff = people(state.seed, state.staff, state.departments);
        let c = store.import_staff(&staff, now_ms())?;
        eprintln!("imported {} staff members", c.added);
    } else {
        ensure!(
            directory.len() == state.staff,
            "the directory has {} staff members, {STATE_FILE} says {}",
            directory.len(),
            state.staff
        );
    }
    let indices: Vec<usize> = (0..state.staff).collect();
    let mut pcs = enroll_pcs(&store, state.seed, state.heartbeat_seconds, &indices).await?;
    eprintln!(
        "{} PCs enrolled in {:.1} s",
        pcs.len(),
        t0.elapsed().as_secs_f64()
    );
    let g = Arc::new(Gen {
        seed: state.seed,
        heartbeat: state.heartbeat_seconds,
        usage: state.usage_interval_seconds,
        tz,
        calendar: rules.calendar.clone(),
        batch: args.batch,
    });
    let sem = Arc::new(Semaphore::new(args.in_flight));

    for &month in &months {
        let name = month_name(month);
        state.in_progress = Some(name.clone());
        save_state(&dir, &state)?;
        let days = Arc::new(days_of_month(month));
        let working = days
            .iter()
            .filter(|d| rules.calendar.day_kind(**d).is_working())
            .count();
        let counters = Arc::new(Counters::default());
        let started = Instant::now();
        let ticker = {
            let (counters, dir, name) = (counters.clone(), dir.clone(), name.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(15));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let e = counters.events.load(Ordering::Relaxed);
                    eprintln!(
                        "  {name}: {e} events stored, {:.0} events/s, database {}",
                        e as f64 / started.elapsed().as_secs_f64(),
                        gib(db_bytes(&dir))
                    );
                }
            })
        };
        let mut set = tokio::task::JoinSet::new();
        for pc in pcs.drain(..) {
            set.spawn(run_pc(
                g.clone(),
                store.clone(),
                sem.clone(),
                counters.clone(),
                pc,
                days.clone(),
            ));
        }
        let mut exemptions = Vec::new();
        while let Some(r) = set.join_next().await {
            let (pc, ex) = match r? {
                Ok(x) => x,
                Err(e) => {
                    ticker.abort();
                    return Err(e.context(format!("seeding {name}")));
                }
            };
            pcs.push(pc);
            exemptions.extend(ex);
        }
        ticker.abort();
        pcs.sort_by_key(|p| p.idx);
        let ingest_s = started.elapsed().as_secs_f64();
        let events = counters.events.load(Ordering::Relaxed);
        let pc_days = counters.pc_days.load(Ordering::Relaxed);
        eprintln!(
            "  {name}: {working} working days; {events} events from {pc_days} PC-days ({:.0} a PC-day) stored in {ingest_s:.1} s ({:.0} events/s)",
            events as f64 / pc_days.max(1) as f64,
            events as f64 / ingest_s
        );
        exemptions.sort_by(|a, b| (&a.employee_id, a.start).cmp(&(&b.employee_id, b.start)));
        if !exemptions.is_empty() {
            store.add_exemptions(&exemptions, &rules.settings, now_ms())?;
        }
        let t = Instant::now();
        let judged = {
            let (store, rules) = (store.clone(), rules.clone());
            tokio::task::spawn_blocking(move || {
                verdicts::recompute_dirty(&*store, &rules, judge_at)
            })
            .await??
        };
        let recompute_s = t.elapsed().as_secs_f64();
        // Days nobody marked dirty (Saturdays, holidays, absences) are judged when
        // a report first asks for them; judge them now with the same function, so
        // that reports read stored rows.
        let t = Instant::now();
        let (filled, rows) = {
            let (store, rules, days) = (store.clone(), rules.clone(), days.clone());
            tokio::task::spawn_blocking(move || {
                let staff = store.staff()?;
                let (mut filled, mut rows) = (0u64, 0u64);
                for &d in days.iter() {
                    let mut have = std::collections::HashSet::new();
                    store.for_each_verdict(d, d, None, false, &mut |v| {
                        have.insert(v.employee_id.to_owned());
                        Ok(())
                    })?;
                    for p in &staff {
                        if !have.contains(&p.employee_id) {
                            verdicts::recompute(&*store, &rules, p, d, judge_at)?;
                            filled += 1;
                        }
                    }
                    rows += staff.len() as u64;
                }
                anyhow::Ok((filled, rows))
            })
            .await??
        };
        let fill_s = t.elapsed().as_secs_f64();
        eprintln!(
            "  {name}: {} exemptions; {judged} dirty person-days judged in {recompute_s:.1} s ({:.2} ms each); {filled} more without events in {fill_s:.1} s ({:.2} ms each); database {}",
            exemptions.len(),
            recompute_s * 1000.0 / judged.max(1) as f64,
            fill_s * 1000.0 / filled.max(1) as f64,
            gib(db_bytes(&dir))
        );
        state.first_day = Some(state.first_day.map_or(month, |f| f.min(month)));
        state.last_day = Some(month.last_of_month());
        state.months += 1;
        state.events += events;
        state.pc_days += pc_days;
        state.staff_days += rows;
        state.exemptions += exemptions.len() as u64;
        state.in_progress = None;
        save_state(&dir, &state)?;
    }
    drop(pcs);
    let events = stored_events(&store)?;
    println!(
        "seeded: months {} ({}..{})  staff {}  events {}  staff-days {}  PC-days {}  exemptions {}  db {} ({} bytes)  in {:.0} s",
        state.months,
        state.first_day.map(month_name).unwrap_or_default(),
        state.last_day.map(month_name).unwrap_or_default(),
        state.staff,
        events,
        state.staff_days,
        state.pc_days,
        state.exemptions,
        gib(db_bytes(&dir)),
        db_bytes(&dir),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------- measure

#[derive(Debug, Clone, Copy)]
struct Stats {
    first_ms: f64,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    runs: usize,
}

fn stats(first: Duration, mut timed: Vec<Duration>) -> Stats {
    timed.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = match timed.len() {
        0 => first,
        n if n % 2 == 1 => timed[n / 2],
        n => (timed[n / 2 - 1] + timed[n / 2]) / 2,
    };
    Stats {
        first_ms: ms(first),
        median_ms: ms(median),
        min_ms: timed.first().copied().map_or(ms(first), ms),
        max_ms: timed.last().copied().map_or(ms(first), ms),
        runs: timed.len(),
    }
}

fn row(what: &str, s: &Stats, target: &str) {
    println!(
        "| {what} | {} | **{:.1}** | {:.1} | {:.1} | {:.1} | {target} |",
        s.runs, s.median_ms, s.min_ms, s.max_ms, s.first_ms
    );
}

/// How many timed runs: up to `runs`, while the runs so far took less than `budget`.
#[derive(Debug, Clone, Copy)]
struct Plan {
    runs: usize,
    budget: Duration,
}

/// Times `f` once as a warm-up, then as `plan` allows.
fn time_sync(plan: Plan, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Stats> {
    let t = Instant::now();
    f()?;
    let first = t.elapsed();
    let mut timed = Vec::with_capacity(plan.runs);
    let mut spent = first;
    while timed.len() < plan.runs && spent < plan.budget {
        let t = Instant::now();
        f()?;
        timed.push(t.elapsed());
        spent += t.elapsed();
    }
    Ok(stats(first, timed))
}

async fn time_async<F, Fut>(plan: Plan, mut f: F) -> anyhow::Result<Stats>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let t = Instant::now();
    f().await?;
    let first = t.elapsed();
    let mut timed = Vec::with_capacity(plan.runs);
    let mut spent = first;
    while timed.len() < plan.runs && spent < plan.budget {
        let t = Instant::now();
        f().await?;
        timed.push(t.elapsed());
        spent += t.elapsed();
    }
    Ok(stats(first, timed))
}

/// One HTTP/1.1 GET on a fresh connection; returns the body's size.
async fn http_get(addr: std::net::SocketAddr, path: &str, token: &str) -> anyhow::Result<usize> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let status = buf
        .split(|b| *b == b'\r')
        .next()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    ensure!(status.contains(" 200 "), "GET {path}: {status}");
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    Ok(buf.len() - head)
}

/// An API token of `username`, creating the account if needed.
fn api_token(store: &SqliteStore, new: NewUser) -> anyhow::Result<String> {
    if store.user_by_name(&new.username)?.is_none() {
        store.add_user(&new, now_ms())?;
    }
    Ok(store.create_api_token(&new.username, 86_400_000, "kaoqin-seed measure", now_ms())?)
}

/// A Report-sized batch of `n` events of one PC on `date`, spread over office
/// hours: heartbeats, usage every third event, now and then a lock or unlock.
fn bench_events(
    tz: &TimeZone,
    date: Date,
    pc: &mut Pc,
    n: usize,
    part: usize,
) -> anyhow::Result<Vec<Event>> {
    let base = midnight_ms(tz, date)? + 8 * 3_600_000;
    let step = 10 * 3_600_000 / n.max(1) as i64;
    Ok((0..n)
        .map(|k| {
            pc.seq += 1;
            let at_ms = base + step * k as i64 + part as i64;
            let kind = match k % 50 {
                0 => session(SessionKind::Lock, &pc.account),
                25 => session(SessionKind::Unlock, &pc.account),
                k if k % 3 == 0 => EventKind::Usage {
                    account: pc.account.clone(),
                    start_ms: at_ms - 300_000,
                    end_ms: at_ms,
                    category: if k % 2 == 0 { "other" } else { "chat" }.into(),
                    active_seconds: 200,
                    basis: UsageBasis::Foreground,
                },
                _ => EventKind::Heartbeat {
                    interval_seconds: 60,
                    accounts: vec![pc.account.clone()],
                },
            };
            Event {
                seq: pc.seq,
                at_ms,
                kind,
            }
        })
        .collect())
}

/// One burst: `batches` batches of `events` events from the PCs of `pcs` (each PC's
/// batches in order), `in_flight` at once. Returns events/s and the batches'
/// latencies.
async fn ingest_burst(
    store: &Arc<SqliteStore>,
    tz: &TimeZone,
    date: Date,
    pcs: &mut Vec<Pc>,
    batches: usize,
    events: usize,
    in_flight: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    // Generate first, so the burst times the store only.
    let mut per_pc: Vec<(Pc, Vec<Batch>)> = pcs.drain(..).map(|p| (p, Vec::new())).collect();
    let n_pcs = per_pc.len();
    for b in 0..batches {
        let (pc, list) = &mut per_pc[b % n_pcs];
        let evs = bench_events(tz, date, pc, events, b)?;
        let received_ms = now_ms();
        list.push(Batch {
            agent_num: pc.num,
            received_ms,
            sent_at_ms: received_ms - 5,
            clock_offset_ms: 5,
            events: evs,
            replay: true,
        });
    }
    let sem = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (pc, list) in per_pc {
        let (store, sem) = (store.clone(), sem.clone());
        set.spawn(async move {
            let mut lat = Vec::with_capacity(list.len());
            for b in list {
                let _permit = sem.acquire().await?;
                let t = Instant::now();
                store_one(&store, b).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok((pc, lat))
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = set.join_next().await {
        let (pc, l) = r??;
        pcs.push(pc);
        lat.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    pcs.sort_by_key(|p| p.idx);
    Ok(((batches * events) as f64 / secs, lat))
}

async fn measure(args: MeasureArgs) -> anyhow::Result<()> {
    let dir = args.common.data.clone();
    let state = load_state(&dir)?
        .with_context(|| format!("{} has no {STATE_FILE}: seed it first", dir.display()))?;
    ensure!(
        state.in_progress.is_none(),
        "seeding of {:?} was interrupted",
        state.in_progress
    );
    let last = state.last_day.context("nothing seeded yet")?;
    let first_seeded = state.first_day.context("nothing seeded yet")?;
    let month = match &args.month {
        Some(m) => parse_month(m)?,
        None => last.first_of_month(),
    };
    let (from, to) = (month, month.last_of_month());
    let (store, rules) = open(&args.common)?;
    let judge_at = Timestamp::from_millisecond(state.now_ms.max(now_ms()))?;
    {
        // Days left dirty (by the previous measure's ingest bursts) first.
        let (store, rules) = (store.clone(), rules.clone());
        let n = tokio::task::spawn_blocking(move || {
            verdicts::recompute_dirty(&*store, &rules, judge_at)
        })
        .await??;
        if n > 0 {
            eprintln!("judged {n} dirty person-days before measuring");
        }
    }
    let staff = store.staff()?;
    let employee = match &args.employee {
        Some(e) => e.clone(),
        None if staff.iter().any(|p| p.employee_id == "E00042") => "E00042".into(),
        None => staff
            .first()
            .map(|p| p.employee_id.clone())
            .context("no staff")?,
    };
    let person = staff
        .iter()
        .find(|p| p.employee_id == employee)
        .with_context(|| format!("no staff member {employee}"))?
        .clone();
    let working = days_of_month(month)
        .iter()
        .filter(|d| rules.calendar.day_kind(**d).is_working())
        .count();
    let events = stored_events(&store)?;
    let bytes = db_bytes(&dir);
    println!(
        "database {}: {} months seeded ({}..{}), {} staff, {events} events, {} ({bytes} bytes); reporting on {} ({working} working days), person {employee} ({}, {} account(s))",
        dir.display(),
        state.months,
        month_name(first_seeded),
        month_name(last),
        staff.len(),
        gib(bytes),
        month_name(month),
        person.department,
        person.accounts.len()
    );
    let plan = Plan {
        runs: args.runs,
        budget: Duration::from_secs(args.max_seconds),
    };
    println!();
    println!("| report | timed runs | median ms | min ms | max ms | warm-up ms | target |");
    println!("|---|---|---|---|---|---|---|");

    // (a) The period summary, as `report summary` and the summary page build it.
    let summary_stats = {
        let (store, rules) = (store.clone(), rules.clone());
        tokio::task::spawn_blocking(move || {
            time_sync(plan, || {
                let (rows, _) = summary::summary_between(
                    &*store,
                    &rules,
                    from,
                    to,
                    summary::By::Staff,
                    &store.staff()?,
                    judge_at,
                )?;
                ensure!(!rows.is_empty(), "an empty summary");
                Ok(())
            })
        })
        .await??
    };
    row(
        &format!(
            "summary of {} staff, {} (summary_between)",
            staff.len(),
            month_name(month)
        ),
        &summary_stats,
        "< 300 ms",
    );

    // The web pages and API, served in-process on loopback.
    let officer = api_token(
        &store,
        NewUser {
            username: "seed-officer".into(),
            role: Role::Officer,
            employee_id: None,
            departments: Vec::new(),
        },
    )?;
    let own = api_token(
        &store,
        NewUser {
            username: format!("seed-{}", employee.to_ascii_lowercase()),
            role: Role::Staff,
            employee_id: Some(employee.clone()),
            departments: Vec::new(),
        },
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let live = Arc::new(kaoqin_collector::verdicts::LiveRules::new(
        store.clone(),
        rules.clone(),
    ));
    let app = kaoqin_collector::web::App::new(store.clone(), live.clone());
    let server = tokio::spawn(kaoqin_collector::web::run(listener, app, async move {
        let _ = stopped.await;
    }));

    let page_path = format!("/summary?from={from}&to={to}");
    let summary_page = time_async(plan, || {
        let (p, t) = (page_path.clone(), officer.clone());
        async move { http_get(addr, &p, &t).await.map(|_| ()) }
    })
    .await?;
    row(
        "summary page, GET /summary (officer; audited)",
        &summary_page,
        "< 300 ms",
    );

    // (b) One person's month: the person page and its JSON API, as the person.
    let person_path = format!("/person/{employee}?month={}", month_name(month));
    let person_stats = time_async(plan, || {
        let (p, t) = (person_path.clone(), own.clone());
        async move { http_get(addr, &p, &t).await.map(|_| ()) }
    })
    .await?;
    row(
        &format!("person month page, GET /person/{employee}?month=…"),
        &person_stats,
        "< 20 ms",
    );
    let api_path = format!("/api/v1/person/{employee}/days?from={from}&to={to}");
    let api_stats = time_async(plan, || {
        let (p, t) = (api_path.clone(), own.clone());
        async move { http_get(addr, &p, &t).await.map(|_| ()) }
    })
    .await?;
    row(
        "person month, GET /api/v1/person/…/days",
        &api_stats,
        "< 20 ms",
    );
    let _ = stop.send(());
    server.await??;

    // The same month over gRPC (ReportService.GetPersonDays), called in-process.
    let grpc_stats = {
        use kaoqin_proto::v1 as pb;
        use pb::report_service_server::ReportService as _;
        let api = kaoqin_collector::report_service::ReportApi::new(store.clone(), live.clone());
        let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {own}").parse()?;
        time_async(
            Plan {
                runs: args.grpc_runs,
                ..plan
            },
            || {
                let mut req = tonic::Request::new(pb::GetPersonDaysRequest {
                    employee_id: employee.clone(),
                    from: from.to_string(),
                    to: to.to_string(),
                });
                req.metadata_mut()
                    .insert(kaoqin_proto::AUTHORIZATION_HEADER, auth.clone());
                let api = &api;
                async move {
                    let days = api.get_person_days(req).await?.into_inner().days;
                    ensure!(!days.is_empty(), "no days");
                    Ok(())
                }
            },
        )
        .await?
    };
    row(
        "person month, gRPC ReportService.GetPersonDays",
        &grpc_stats,
        "< 20 ms",
    );

    // (c) Ingest bursts through the store, by existing PCs, on the day before the
    // first seeded day (outside every seeded month's reports).
    let mut ingest = None;
    if !args.no_ingest && args.ingest_runs > 0 && args.ingest_batches > 0 {
        ensure!(
            (1..=kaoqin_collector::ingest::MAX_BATCH_EVENTS).contains(&args.ingest_events),
            "--ingest-events must be between 1 and {}",
            kaoqin_collector::ingest::MAX_BATCH_EVENTS
        );
        let n = args.ingest_batches.min(staff.len());
        let indices: Vec<usize> = (0..n).map(|k| k * staff.len() / n).collect();
        let mut pcs = enroll_pcs(&store, state.seed, state.heartbeat_seconds, &indices).await?;
        let day = first_seeded.saturating_sub(1.day());
        let mut rates = Vec::new();
        let mut lat = Vec::new();
        for _ in 0..args.ingest_runs {
            let (rate, l) = ingest_burst(
                &store,
                &rules.settings.time_zone,
                day,
                &mut pcs,
                args.ingest_batches,
                args.ingest_events,
                args.ingest_in_flight.max(1),
            )
            .await?;
            rates.push(rate);
            lat.extend(l);
        }
        rates.sort_by(f64::total_cmp);
        lat.sort();
        let pct = |p: f64| {
            lat.get(((lat.len().saturating_sub(1)) as f64 * p).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let median = rates[rates.len() / 2];
        println!();
        println!(
            "| ingest burst through the store | bursts | events/s (median) | each burst | batch p50 ms | batch p99 ms |"
        );
        println!("|---|---|---|---|---|---|");
        println!(
            "| {} batches × {} events from {n} PCs, {} in flight | {} | **{median:.0}** | {} | {:.1} | {:.1} |",
            args.ingest_batches,
            args.ingest_events,
            args.ingest_in_flight.max(1),
            rates.len(),
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            pct(0.5),
            pct(0.99)
        );
        ingest = Some(median);
    }
    println!();
    println!(
        "growth-row: months={} events={events} db_bytes={bytes} summary_ms={:.1} summary_page_ms={:.1} person_ms={:.1} person_api_ms={:.1} person_grpc_ms={:.1} ingest_eps={}",
        state.months,
        summary_stats.median_ms,
        summary_page.median_ms,
        person_stats.median_ms,
        api_stats.median_ms,
        grpc_stats.median_ms,
        ingest.map_or("-".into(), |r| format!("{r:.0}"))
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed(a) => seed(a).await,
        Command::Measure(a) => measure(a).await,
    }
}

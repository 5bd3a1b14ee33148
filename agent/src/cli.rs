//! The `kaoqin-agent` command line (ARCHITECTURE.md lists the contract).

use crate::config::Config;
use crate::event::{Event, EventKind, LifecycleKind};
use crate::runner::{ProbeChoice, RunOptions};
use crate::state::Enrolment;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How many times `enroll` asks again when the collector says it is busy.
const ENROLL_RETRIES: usize = 6;

/// kaoqin agent: records sessions and application categories on this PC and
/// delivers them to the attendance collector.
#[derive(Debug, Parser)]
#[command(name = "kaoqin-agent", version, about)]
pub struct Cli {
    /// How log lines are written to stderr: `text` (one line per event, for the
    /// journal or a file) or `json` (one JSON object per line, for log collectors).
    #[arg(long, global = true, env = "KAOQIN_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The log's format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Configuration file (every setting has a default).
    #[arg(long, env = "KAOQIN_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// State directory (enrolment and spool).
    #[arg(long, env = "KAOQIN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl Common {
    fn resolve(&self) -> anyhow::Result<(Config, PathBuf)> {
        let config = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        let dir = config.state_dir(self.state_dir.as_deref());
        Ok((config, dir))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enrol this PC with a collector, using a token from `kaoqin-collector token create`.
    Enroll {
        /// The collector's gRPC address, e.g. https://collector.example:50051.
        #[arg(long, env = "KAOQIN_COLLECTOR")]
        collector: String,
        /// The enrolment token (best given in the environment, so that it never
        /// appears on a command line).
        #[arg(long, env = "KAOQIN_TOKEN", hide_env_values = true)]
        token: String,
        /// The collector's CA certificate (its data dir's tls/ca.pem); the agent
        /// pins it and talks only TLS from then on.
        #[arg(long, env = "KAOQIN_CA")]
        ca: Option<PathBuf>,
        /// Do nothing (and succeed) if this PC is enrolled already: for
        /// deployment scripts and first-start hooks that run on every start.
        #[arg(long)]
        if_not_enrolled: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Record and deliver until stopped.
    Run {
        #[command(flatten)]
        common: Common,
        /// Where observations come from: auto (this PC) or replay:FILE (a scripted day).
        #[arg(long, default_value = "auto")]
        probe: ProbeChoice,
        /// Exit once everything recorded is acknowledged (with a replay).
        #[arg(long)]
        once: bool,
    },
    /// Check the configuration file and print the settings in effect.
    CheckConfig {
        #[command(flatten)]
        common: Common,
    },
    /// Spool depth, last acknowledged seq, and whether the collector is reachable.
    Status {
        #[command(flatten)]
        common: Common,
        /// One JSON object, for monitoring tools, instead of plain words.
        #[arg(long)]
        json: bool,
    },
    /// In plain words: what this PC has recorded and sent, about whom.
    Show {
        #[command(flatten)]
        common: Common,
        /// How many days back to show.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Only this OS account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Install, remove, start or stop the Windows service (Windows only).
    Service {
        #[command(subcommand)]
        action: crate::service::ServiceAction,
    },
    /// Report this user session's idle time and foreground application to the
    /// service (Windows only; the service starts it in each session).
    SessionHelper {
        /// Take one sample and exit.
        #[arg(long)]
        once: bool,
        /// Print samples instead of sending them.
        #[arg(long)]
        print: bool,
        /// Exit once the service has not taken a sample for this many seconds
        /// (it starts a new helper when it is back).
        #[arg(long, value_name = "SECONDS", default_value_t = crate::probe::wts::HELPER_GIVE_UP_S)]
        give_up_after: u64,
    },
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KAOQIN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // One JSON object per line: time, level, target, message and fields.
        LogFormat::Json => log.json().flatten_event(true).try_init(),
        // Colours only on a terminal: a service's log goes to a file or the journal.
        LogFormat::Text => log
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let log_format = cli.log_format;
    match cli.command {
        Command::Enroll {
            collector,
            token,
            ca,
            if_not_enrolled,
            common,
        } => {
            if if_not_enrolled {
                let (_, state_dir) = common.resolve()?;
                if let Some(e) = Enrolment::load(&state_dir)? {
                    println!(
                        "Enrolled already as {} with {}; nothing done.",
                        e.agent_id, e.collector
                    );
                    return Ok(());
                }
            }
            let ca_pem = match &ca {
                Some(path) => {
                    let pem = std::fs::read_to_string(path)
                        .with_context(|| format!("--ca {}: cannot read", path.display()))?;
                    anyhow::ensure!(
                        pem.contains("-----BEGIN CERTIFICATE-----"),
                        "--ca {}: not a PEM certificate (use the collector's tls/ca.pem)",
                        path.display()
                    );
                    Some(pem)
                }
                None => None,
            };
            let (config, state_dir) = common.resolve()?;
            if let Some(old) = Enrolment::load(&state_dir)?
                && old.ca_pem.is_some()
                && ca_pem.is_none()
            {
                anyhow::bail!(
                    "this agent was enrolled over TLS with a pinned CA; enrolling again needs --ca (it never falls back to plaintext)"
                );
            }
            let rt = tokio::runtime::Runtime::new()?;
            let machine_id = crate::state::machine_id(&state_dir)?;
            let host = crate::runner::host_facts(&machine_id);
            let timeout = Duration::from_secs(config.uplink.call_timeout_seconds);
            // A collector that asks us to slow down (many PCs enrolling at once from
            // one address) is asked again a few times, with the agent's jittered backoff.
            let mut pauses = crate::uplink::retry_schedule(&config.uplink).take(ENROLL_RETRIES);
            let reply = loop {
                let attempt = rt.block_on(crate::uplink::enroll(
                    &collector,
                    &token,
                    host.clone(),
                    timeout,
                    ca_pem.as_deref(),
                ));
                match (attempt, pauses.next()) {
                    (Err(crate::uplink::UplinkError::Busy(m)), Some(pause)) => {
                        eprintln!("Collector busy ({m}); asking again in {pause:.0?}.");
                        std::thread::sleep(pause);
                    }
                    (attempt, _) => {
                        break attempt.with_context(|| format!("cannot enrol with {collector}"))?;
                    }
                }
            };
            let mut spool = crate::runner::open_spool(&state_dir, &config)?;
            spool.ensure_next_seq_above(reply.last_seq)?;
            let e = Enrolment {
                collector: collector.clone(),
                agent_id: reply.agent_id,
                agent_key: reply.agent_key,
                token,
                machine_id,
                enrolled_at_ms: now_ms(),
                ca_pem,
            };
            let path = e.save(&state_dir)?;
            println!(
                "Enrolled with {collector} as agent {}; identity saved in {}.",
                e.agent_id,
                path.display()
            );
            Ok(())
        }
        Command::Run {
            common,
            probe,
            once,
        } => {
            init_logging(log_format);
            let (config, state_dir) = common.resolve()?;
            let p: Box<dyn crate::probe::Probe> = match &probe {
                ProbeChoice::Auto => crate::probe::live(&config)?,
                ProbeChoice::Replay(path) => {
                    Box::new(crate::probe::replay::ReplayProbe::load(path)?)
                }
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(2)
                .enable_all()
                .build()?;
            // In the runtime, so that the signal handlers are installed now.
            let _entered = rt.enter();
            rt.block_on(crate::runner::run(
                config,
                RunOptions {
                    state_dir,
                    probe,
                    once,
                },
                p,
                shutdown_signal(),
            ))
        }
        Command::CheckConfig { common } => {
            let (config, state_dir) = common.resolve()?;
            println!("configuration is valid");
            println!("state_dir = {:?}", state_dir.display().to_string());
            println!("{config:#?}");
            Ok(())
        }
        Command::Status { common, json } => status(common, json),
        Command::Show {
            common,
            days,
            account,
        } => show(common, days, account.as_deref()),
        Command::Service { action } => crate::service::run(action),
        Command::SessionHelper {
            once,
            print,
            give_up_after,
        } => crate::service::session_helper(once, print, give_up_after),
    }
}

/// Completes on SIGINT or SIGTERM (Ctrl-C elsewhere). On Unix the handlers are
/// installed when this is called, inside a runtime, not when the future is first
/// polled: a SIGTERM sent as soon as the process has said it is serving stops it
/// cleanly instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {},
                        _ = term.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn local(ms: i64) -> jiff::ZonedDateTime {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(jiff::tz::TimeZone::system())
}

/// What `status` found out.
#[derive(Debug, serde::Serialize)]
struct Status {
    state_dir: PathBuf,
    /// The enrolment, if any.
    enrolment: Option<StatusEnrolment>,
    spool: StatusSpool,
    /// Whether the agent ran last (`running`: running, or ended without a stop),
    /// and when it was last seen alive.
    agent: Option<StatusAgent>,
    /// `reachable`, `key_refused` or `unreachable` (absent when not enrolled).
    collector: Option<&'static str>,
    /// The policy version the collector answered, or why it did not.
    collector_detail: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct StatusEnrolment {
    agent_id: String,
    collector: String,
    enrolled_at: jiff::Timestamp,
}

#[derive(Debug, serde::Serialize)]
struct StatusSpool {
    depth: u64,
    bytes: u64,
    max_bytes: u64,
    oldest_at: Option<jiff::Timestamp>,
    last_acked_seq: u64,
}

#[derive(Debug, serde::Serialize)]
struct StatusAgent {
    running: bool,
    last_alive: jiff::Timestamp,
}

fn instant(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn status(common: Common, json: bool) -> anyhow::Result<()> {
    let (config, state_dir) = common.resolve()?;
    let enrolment = Enrolment::load(&state_dir)?;
    let spool = crate::runner::open_spool(&state_dir, &config)?;
    let s = spool.stats()?;
    let agent = spool
        .meta_get("last_alive_ms")?
        .and_then(|v| v.parse().ok())
        .map(|alive: i64| -> anyhow::Result<StatusAgent> {
            Ok(StatusAgent {
                running: spool.meta_get("running")?.as_deref() == Some("1"),
                last_alive: instant(alive),
            })
        })
        .transpose()?;
    let mut out = Status {
        state_dir,
        enrolment: enrolment.as_ref().map(|e| StatusEnrolment {
            agent_id: e.agent_id.clone(),
            collector: e.collector.clone(),
            enrolled_at: instant(e.enrolled_at_ms),
        }),
        spool: StatusSpool {
            depth: s.depth,
            bytes: s.bytes,
            max_bytes: s.max_bytes,
            oldest_at: s.oldest_at_ms.map(instant),
            last_acked_seq: s.last_acked_seq,
        },
        agent,
        collector: None,
        collector_detail: None,
    };
    if let Some(e) = enrolment {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let reach = rt.block_on(async {
            let mut up = crate::uplink::Uplink::new(e, Duration::from_secs(5))?;
            up.policy(0).await
        });
        let (state, detail) = match reach {
            Ok(p) => ("reachable", format!("policy version {}", p.version)),
            Err(crate::uplink::UplinkError::Unauthenticated(m)) => ("key_refused", m),
            Err(e) => ("unreachable", e.to_string()),
        };
        out.collector = Some(state);
        out.collector_detail = Some(detail);
    }
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print_status(&out);
    }
    Ok(())
}

fn print_status(s: &Status) {
    let at = |t: jiff::Timestamp, f: &str| local(t.as_millisecond()).strftime(f).to_string();
    println!("state dir: {}", s.state_dir.display());
    match &s.enrolment {
        Some(e) => println!(
            "enrolled: agent {} with {} since {}",
            e.agent_id,
            e.collector,
            at(e.enrolled_at, "%Y-%m-%d %H:%M")
        ),
        None => println!("enrolled: no (run `kaoqin-agent enroll --collector URL --token T`)"),
    }
    println!(
        "spool: {} events waiting, {} KiB of {} KiB",
        s.spool.depth,
        s.spool.bytes / 1024,
        s.spool.max_bytes / 1024
    );
    if let Some(oldest) = s.spool.oldest_at {
        println!("oldest waiting: {}", at(oldest, "%Y-%m-%d %H:%M:%S"));
    }
    println!("last acknowledged seq: {}", s.spool.last_acked_seq);
    if let Some(a) = &s.agent {
        println!(
            "agent: {} (last seen alive {})",
            if a.running {
                "running or ended without a stop"
            } else {
                "stopped"
            },
            at(a.last_alive, "%Y-%m-%d %H:%M:%S")
        );
    }
    match (s.collector, &s.collector_detail) {
        (Some("reachable"), Some(d)) => println!("collector: reachable, key accepted ({d})"),
        (Some("key_refused"), Some(d)) => println!(
            "collector: reachable, but it refused this agent's key ({d}); the agent enrols again by itself"
        ),
        (Some(_), Some(d)) => println!("collector: not reachable ({d}); events wait in the spool"),
        _ => {}
    }
}

/// What one day looks like in `show`, per account.
#[derive(Default)]
struct DayAccount {
    lines: Vec<(i64, String)>,
    usage: BTreeMap<String, u64>,
}

fn show(common: Common, days: u32, account: Option<&str>) -> anyhow::Result<()> {
    let (config, state_dir) = common.resolve()?;
    let spool = crate::runner::open_spool(&state_dir, &config)?;
    let to = now_ms() + 1;
    let from = to - i64::from(days.max(1)) * 86_400_000;
    println!("What this PC has recorded for the attendance collector (kaoqin), last {days} days.");
    println!();
    println!("Recorded and sent: logon, logoff, lock, unlock and idle times with the OS account");
    println!("name; minutes of use per category (chat, games, media, downloads, nonwork_web,");
    println!("other); heartbeats; agent start and stop. Never window titles, web addresses,");
    println!("keystrokes, screenshots, file names or program names.");
    if let Some(e) = Enrolment::load(&state_dir)? {
        println!(
            "Collector: {}   this PC's agent id: {}",
            e.collector, e.agent_id
        );
    }
    println!();

    let mut by_day: BTreeMap<jiff::civil::Date, BTreeMap<String, DayAccount>> = BTreeMap::new();
    let mut agent_lines: BTreeMap<jiff::civil::Date, Vec<(i64, String)>> = BTreeMap::new();
    let mut heartbeats: BTreeMap<jiff::civil::Date, (u64, u64)> = BTreeMap::new();
    let mut add = |e: &Event, sent: bool| {
        let day = local(e.at_ms).date();
        let mark = if sent { "sent" } else { "waiting to send" };
        let time = local(e.at_ms).strftime("%H:%M").to_string();
        match &e.kind {
            EventKind::Session { kind, account: a } => {
                if account.is_some_and(|x| x != a) {
                    return;
                }
                by_day
                    .entry(day)
                    .or_default()
                    .entry(a.clone())
                    .or_default()
                    .lines
                    .push((e.at_ms, format!("{time}  {:<22} ({mark})", kind.plain_words())));
            }
            EventKind::Usage {
                account: a,
                category,
                active_seconds,
                ..
            } => {
                if account.is_some_and(|x| x != a) {
                    return;
                }
                *by_day
                    .entry(day)
                    .or_default()
                    .entry(a.clone())
                    .or_default()
                    .usage
                    .entry(category.clone())
                    .or_default() += u64::from(*active_seconds);
            }
            EventKind::Heartbeat { .. } => {
                let h = heartbeats.entry(day).or_default();
                if sent {
                    h.0 += 1;
                } else {
                    h.1 += 1;
                }
            }
            EventKind::Lifecycle { kind, reason, .. } => {
                let what = match kind {
                    LifecycleKind::Start => "agent started",
                    LifecycleKind::Stop => "agent stopped",
                };
                agent_lines
                    .entry(day)
                    .or_default()
                    .push((e.at_ms, format!("{time}  {what} ({reason:?}) ({mark})")));
            }
            EventKind::DataGap {
                dropped_events,
                reason,
                ..
            } => agent_lines.entry(day).or_default().push((
                e.at_ms,
                format!("{time}  {dropped_events} recorded events were lost ({reason}); the collector is told ({mark})"),
            )),
            EventKind::ClockJump { jump_ms } => agent_lines.entry(day).or_default().push((
                e.at_ms,
                format!(
                    "{time}  the PC's clock was set {} by {} s; the collector is told ({mark})",
                    if *jump_ms < 0 { "back" } else { "forward" },
                    jump_ms.unsigned_abs() / 1000
                ),
            )),
        }
    };
    for r in spool.sent_between(from, to)? {
        add(
            &Event {
                seq: r.seq,
                at_ms: r.at_ms,
                kind: r.kind,
            },
            true,
        );
    }
    for e in spool.pending_between(from, to)? {
        add(&e, false);
    }
    let mut dates: Vec<_> = by_day
        .keys()
        .chain(agent_lines.keys())
        .chain(heartbeats.keys())
        .copied()
        .collect();
    dates.sort();
    dates.dedup();
    if dates.is_empty() {
        println!("Nothing recorded in this period.");
    }
    for date in dates {
        println!("{} ({})", date, date.strftime("%A"));
        for (a, day) in by_day.get_mut(&date).into_iter().flatten() {
            println!("  account {a}:");
            day.lines.sort();
            for (_, l) in &day.lines {
                println!("    {l}");
            }
            if !day.usage.is_empty() {
                let parts: Vec<String> = day
                    .usage
                    .iter()
                    .map(|(c, s)| format!("{c} {} min", (s + 30) / 60))
                    .collect();
                println!("    time in use by category: {}", parts.join(", "));
            }
        }
        if let Some(lines) = agent_lines.get_mut(&date) {
            lines.sort();
            for (_, l) in lines.iter() {
                println!("  {l}");
            }
        }
        if let Some((sent, waiting)) = heartbeats.get(&date) {
            println!("  heartbeats (\"this PC is on\"): {sent} sent, {waiting} waiting to send");
        }
        println!();
    }
    let s = spool.stats()?;
    println!("Waiting to send now: {} events.", s.depth);
    Ok(())
}

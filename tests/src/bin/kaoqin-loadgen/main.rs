//! kaoqin-loadgen: enrols N simulated agents against a collector and makes each
//! send realistic traffic for a fixed time, then prints throughput and latency.
//!
//! ```text
//! kaoqin-loadgen --collector URL --token T --agents N --interval SECS --batch N --duration SECS
//! ```
//!
//! Each simulated agent keeps its own connection. With `--interval 0` every agent
//! sends batches of `--batch` events as fast as they are acknowledged (a
//! throughput test); otherwise every agent sends, once per interval at its own
//! phase, a heartbeat and a batch of usage and session events, as an office PC
//! would. The last line printed is
//! `events/s: N  batches/s: N  p50_ms: N  p99_ms: N  errors: N  unenrolled: N`;
//! `unenrolled` counts simulated agents whose enrolment still failed after
//! retrying as an agent does (they send nothing; the last error is printed).
//!
//! Reports go over a plain hyper HTTP/2 client (`--client hyper`, the default,
//! see `raw.rs`), so that the load generator costs as little CPU per request as
//! such a client can and what is measured is the collector; `--client tonic`
//! sends them through tonic's generated client instead, for comparison.
//! `--source-addresses N` spreads the simulated agents over N loopback source
//! addresses (127.0.0.2 and up), as PCs come from many addresses: one address
//! leaves a fleet that reconnects for every Report short of local ports.
//!
//! With `--call health` every agent calls the gRPC health check instead of
//! Report, with the same connections and pacing: no storage, no validation, so
//! the rate is what gRPC alone reaches on the machine (`batches/s` then counts
//! calls, and `events/s` is 0).

mod raw;

use clap::Parser;
use kaoqin_proto::v1 as pb;
use kaoqin_proto::v1::agent_service_client::AgentServiceClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Parser)]
#[command(
    name = "kaoqin-loadgen",
    version,
    about = "Load generator for kaoqin-collector"
)]
struct Args {
    /// The collector's gRPC URL.
    #[arg(long)]
    collector: String,
    /// An enrolment token with enough uses for every simulated agent.
    #[arg(long)]
    token: String,
    /// Number of simulated agents, each on its own connection.
    #[arg(long, default_value_t = 10)]
    agents: u32,
    /// Seconds between one agent's reports; 0 sends as fast as acknowledged.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Events per report.
    #[arg(long, default_value_t = 10)]
    batch: u32,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Enrolments in flight at once.
    #[arg(long, default_value_t = 64)]
    enroll_concurrency: usize,
    /// A prefix for the simulated machine ids (default: unique per run).
    #[arg(long)]
    run_id: Option<String>,
    /// Open a new connection for every Report and close it after the answer, as
    /// agents with `uplink.close_when_idle` (the default) do.
    #[arg(long)]
    reconnect: bool,
    /// The collector's CA certificate (its `tls/ca.pem`), for a collector that
    /// serves TLS (an `https://` URL), as agents pin it.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// What each simulated agent calls: `report` (events, the default) or
    /// `health` (the gRPC health check, which touches no storage: the ceiling
    /// that gRPC itself sets on this machine for the same connections and load).
    #[arg(long, value_enum, default_value_t = Call::Report)]
    call: Call,
    /// The client Reports go through: `hyper` (a plain HTTP/2 client, the
    /// cheapest) or `tonic` (tonic's generated client, as the agent uses).
    #[arg(long, value_enum, default_value_t = Client::Hyper)]
    client: Client,
    /// Loopback source addresses to spread the simulated agents over
    /// (127.0.0.2, 127.0.0.3, ...); 0 lets the system pick (127.0.0.1).
    #[arg(long, default_value_t = 0)]
    source_addresses: u8,
    /// Over TLS, shake hands in full for every connection instead of resuming
    /// the session (hyper client only): what resumption saves, measured.
    #[arg(long)]
    no_tls_resumption: bool,
    /// Threads the load generator runs on (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Client {
    Hyper,
    Tonic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Call {
    Report,
    Health,
}

struct Sim {
    endpoint: Endpoint,
    target: raw::Target,
    /// The hyper connection, while one is open.
    conn: Option<hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>>,
    agent_id: String,
    auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    client: AgentServiceClient<Channel>,
    health: HealthClient<Channel>,
    seq: u64,
    account: String,
}

#[derive(Default)]
struct Totals {
    events: AtomicU64,
    batches: AtomicU64,
    errors: AtomicU64,
}

/// Tries per simulated agent to enrol.
const ENROLL_ATTEMPTS: u32 = 4;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// This process's CPU time (user + system, in clock ticks) from /proc, where
/// there is one.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn raise_fd_limit(want: u64) {
    #[cfg(unix)]
    {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, want, want);
        let _ = rlimit::increase_nofile_limit(want);
    }
    #[cfg(not(unix))]
    let _ = want;
}

/// `--no-tls-resumption`: the hyper client never resumes a TLS session.
static NO_RESUME: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The collector's CA certificate (PEM) when it serves TLS (`--ca`).
static CA: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

fn endpoint(url: &str, source: Option<std::net::IpAddr>) -> anyhow::Result<Endpoint> {
    let e = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .local_address(source);
    Ok(match CA.get().and_then(Option::as_deref) {
        Some(pem) => e.tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        )?,
        None => e,
    })
}

/// The loopback address simulated agent `i` connects from, of `n` (none: 0).
fn source_address(i: u32, n: u8) -> Option<std::net::IpAddr> {
    (n > 0).then(|| std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % u32::from(n)) as u8).into())
}

async fn enroll(
    url: &str,
    token: &str,
    machine: String,
    i: u32,
    source: Option<std::net::IpAddr>,
) -> anyhow::Result<Sim> {
    let endpoint = endpoint(url, source)?;
    let resume = !NO_RESUME.load(Ordering::Relaxed);
    let target = raw::Target::new(url, CA.get().and_then(Option::as_deref), source, resume)?;
    let channel = endpoint.connect_lazy();
    let mut client = AgentServiceClient::new(channel.clone());
    let reply = client
        .enroll(pb::EnrollRequest {
            token: token.to_owned(),
            host: Some(pb::HostFacts {
                machine_id: machine.clone(),
                hostname: machine,
                os: "loadgen".into(),
                os_version: String::new(),
                agent_version: env!("CARGO_PKG_VERSION").into(),
            }),
        })
        .await?
        .into_inner();
    Ok(Sim {
        endpoint,
        target,
        conn: None,
        auth: format!("Bearer {}", reply.agent_key).parse()?,
        agent_id: reply.agent_id,
        client,
        health: HealthClient::new(channel),
        seq: reply.last_seq,
        account: format!("user{i:05}"),
    })
}

impl Sim {
    /// One report of `n` events: a heartbeat, usage intervals, now and then a
    /// session event.
    fn batch(&mut self, n: u32) -> Vec<pb::Event> {
        use pb::event::Kind;
        let now = now_ms();
        (0..n)
            .map(|k| {
                self.seq += 1;
                let kind = match (self.seq % 10, k) {
                    (_, 0) => Kind::Heartbeat(pb::Heartbeat {
                        interval_seconds: 60,
                        accounts: vec![self.account.clone()],
                    }),
                    (3, _) => Kind::Session(pb::SessionEvent {
                        kind: if self.seq % 20 == 3 {
                            pb::SessionKind::Lock
                        } else {
                            pb::SessionKind::Unlock
                        } as i32,
                        account: self.account.clone(),
                    }),
                    (s, _) => Kind::Usage(pb::UsageEvent {
                        account: self.account.clone(),
                        start_ms: now - 300_000,
                        end_ms: now,
                        category: ["other", "chat", "other", "media", "other", "work"]
                            [s as usize % 6]
                            .into(),
                        active_seconds: (self.seq % 300) as u32,
                        basis: pb::UsageBasis::Foreground as i32,
                    }),
                };
                pb::Event {
                    seq: self.seq,
                    at_ms: now,
                    kind: Some(kind),
                }
            })
            .collect()
    }

    async fn send(&mut self, call: Call, client: Client, n: u32) -> Result<(), tonic::Status> {
        if call == Call::Health {
            return self
                .health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(|_| ());
        }
        let events = self.batch(n);
        let body = pb::ReportRequest {
            agent_id: self.agent_id.clone(),
            sent_at_ms: now_ms(),
            events,
            replay: false,
        };
        if client == Client::Hyper {
            let mut conn = match self.conn.take() {
                Some(c) => c,
                None => self
                    .target
                    .connect()
                    .await
                    .map_err(|e| tonic::Status::unavailable(format!("{e:#}")))?,
            };
            let sent = raw::report(
                &mut conn,
                &self.target,
                &self.agent_id,
                self.auth.to_str().unwrap_or_default(),
                &body,
            )
            .await;
            // A connection that failed is not used again.
            if sent.is_ok() {
                self.conn = Some(conn);
            }
            return sent;
        }
        let mut req = tonic::Request::new(body);
        req.metadata_mut().insert(
            kaoqin_proto::AGENT_ID_HEADER,
            self.agent_id
                .parse()
                .map_err(|_| tonic::Status::internal("id"))?,
        );
        req.metadata_mut()
            .insert(kaoqin_proto::AUTHORIZATION_HEADER, self.auth.clone());
        self.client.report(req).await.map(|_| ())
    }

    /// Drops the connection; the next Report opens a new one.
    fn disconnect(&mut self) {
        self.conn = None;
        let channel = self.endpoint.connect_lazy();
        self.client = AgentServiceClient::new(channel.clone());
        self.health = HealthClient::new(channel);
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One thread by default: no wake-ups across threads, the cheapest a client
    // gets per request, and the other core left to the collector.
    let runtime = match args.threads {
        0 | 1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ca = match &args.ca {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--ca {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let _ = CA.set(ca);
    NO_RESUME.store(args.no_tls_resumption, Ordering::Relaxed);
    anyhow::ensure!(
        args.agents > 0 && args.batch > 0,
        "--agents and --batch must be at least 1"
    );
    raise_fd_limit(u64::from(args.agents) * 2 + 1024);
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| format!("lg{}", now_ms()));

    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.enroll_concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.agents {
        let (url, token, sem) = (args.collector.clone(), args.token.clone(), sem.clone());
        let machine = format!("{run_id}-{i}");
        let source = source_address(i, args.source_addresses);
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            // Retried as an agent retries, a few times with a growing pause.
            let mut pause = Duration::from_millis(500);
            let mut attempt = 1;
            loop {
                match enroll(&url, &token, machine.clone(), i, source).await {
                    Err(e) if attempt < ENROLL_ATTEMPTS => {
                        eprintln!("enrolment {i}, attempt {attempt}: {e:#}");
                        tokio::time::sleep(pause).await;
                        (pause, attempt) = (pause * 2, attempt + 1);
                    }
                    r => break r,
                }
            }
        });
    }
    let mut sims = Vec::with_capacity(args.agents as usize);
    let mut unenrolled = 0;
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok(mut sim) => {
                if args.reconnect {
                    sim.disconnect();
                }
                sims.push(sim);
            }
            Err(e) => {
                unenrolled += 1;
                eprintln!("a simulated agent could not enrol: {e:#}");
            }
        }
    }
    anyhow::ensure!(!sims.is_empty(), "no simulated agent could enrol");
    eprintln!(
        "enrolled {} agents in {:.1} s",
        sims.len(),
        started.elapsed().as_secs_f64()
    );

    let totals = Arc::new(Totals::default());
    let cpu_before = cpu_ticks();
    let began = Instant::now();
    let deadline = began + Duration::from_secs(args.duration);
    let interval = Duration::from_secs(args.interval);
    let n_agents = sims.len() as u32;
    let mut tasks = tokio::task::JoinSet::new();
    let reconnect = args.reconnect;
    let call = args.call;
    let client = args.client;
    for (i, mut sim) in sims.into_iter().enumerate() {
        let totals = totals.clone();
        let batch = args.batch;
        tasks.spawn(async move {
            // (latency in µs, ms since sending began when the call started)
            let mut latencies: Vec<(u32, u32)> = Vec::new();
            if !interval.is_zero() {
                // Spread the agents evenly over the interval.
                let phase = interval.mul_f64(f64::from(i as u32) / f64::from(n_agents));
                tokio::time::sleep(phase).await;
            }
            let mut next = Instant::now();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let sent = sim.send(call, client, batch).await;
                let latency = t0.elapsed();
                if reconnect {
                    sim.disconnect();
                }
                match sent {
                    Ok(()) => {
                        let since = t0.duration_since(began).as_millis();
                        latencies.push((
                            latency.as_micros().min(u128::from(u32::MAX)) as u32,
                            since.min(u128::from(u32::MAX)) as u32,
                        ));
                        if call == Call::Report {
                            totals.events.fetch_add(u64::from(batch), Ordering::Relaxed);
                        }
                        totals.batches.fetch_add(1, Ordering::Relaxed);
                    }
                    // Told to slow down (the collector's per-agent rate limit):
                    // back off as an agent does; not an error. Run the collector
                    // with `[agents] report_rate_per_second = 0` to measure
                    // unthrottled throughput.
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(_) => {
                        totals.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if !interval.is_zero() {
                    next += interval;
                    if next > deadline {
                        // Connected to the end, as an agent stays.
                        tokio::time::sleep_until(deadline.into()).await;
                        break;
                    }
                    tokio::time::sleep_until(next.into()).await;
                }
            }
            latencies
        });
    }
    let mut timed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        timed.extend(r?);
    }
    let secs = args.duration as f64;
    timed.sort_unstable();
    // When the slowest calls were made tells a warm-up from a steady tail.
    let slowest: Vec<String> = timed
        .iter()
        .rev()
        .take(10)
        .map(|(l, at)| {
            format!(
                "{:.1} ms at {:.1} s",
                f64::from(*l) / 1000.0,
                f64::from(*at) / 1000.0
            )
        })
        .collect();
    eprintln!("slowest calls: {}", slowest.join(", "));
    if let (Some(before), Some(after)) = (cpu_before, cpu_ticks()) {
        // Benchmarks divide by the Reports sent: the load generator's own cost.
        eprintln!("cpu ticks while sending: {}", after.saturating_sub(before));
    }
    let all: Vec<u32> = timed.into_iter().map(|(l, _)| l).collect();
    let events = totals.events.load(Ordering::Relaxed);
    let batches = totals.batches.load(Ordering::Relaxed);
    eprintln!(
        "sent {events} events in {batches} reports; max latency {:.2} ms",
        all.last().map_or(0.0, |m| f64::from(*m) / 1000.0)
    );
    println!(
        "events/s: {:.0}  batches/s: {:.0}  p50_ms: {:.2}  p99_ms: {:.2}  errors: {}  unenrolled: {unenrolled}",
        events as f64 / secs,
        batches as f64 / secs,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        totals.errors.load(Ordering::Relaxed)
    );
    Ok(())
}

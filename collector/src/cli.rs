//! The `kaoqin-collector` command line (ARCHITECTURE.md lists the contract).

use crate::config::Config;
use crate::store::sqlite::SqliteStore;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// kaoqin collector: enrols agents, stores their events, judges attendance.
#[derive(Debug, Parser)]
#[command(name = "kaoqin-collector", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct DataDirArg {
    /// The data directory (default: the config's server.data_dir, or ./kaoqin-data).
    #[arg(long, env = "KAOQIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file.
    #[arg(long, env = "KAOQIN_CONFIG")]
    pub config: Option<PathBuf>,
}

impl DataDirArg {
    fn resolve(&self) -> anyhow::Result<(Config, PathBuf)> {
        let config = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| config.server.data_dir.clone());
        Ok((config, dir))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve agents (gRPC) until SIGINT or SIGTERM.
    Serve {
        #[command(flatten)]
        dirs: DataDirArg,
        /// gRPC listen address (overrides server.grpc).
        #[arg(long)]
        grpc: Option<SocketAddr>,
    },
    /// Enrolment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print stored raw events, one JSON object a line.
    Events {
        #[command(flatten)]
        dirs: DataDirArg,
        /// Only this agent's events.
        #[arg(long)]
        agent: Option<String>,
        /// Output format.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an enrolment token and print it alone on stdout.
    Create {
        #[command(flatten)]
        dirs: DataDirArg,
        /// How long the token is valid: 30m, 12h, 7d, ...
        #[arg(long, default_value = "7d")]
        ttl: String,
        /// How many agents may enrol with it (default: unlimited until it expires).
        #[arg(long)]
        uses: Option<u32>,
        /// A note for the record (which rollout it is for).
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// Parses a friendly duration such as `7d` or `12h` into milliseconds.
pub fn parse_ttl_ms(text: &str) -> anyhow::Result<i64> {
    let span: jiff::Span = text
        .parse()
        .with_context(|| format!("--ttl {text:?}: not a duration such as 30m, 12h or 7d"))?;
    let ms = span
        .total((
            jiff::Unit::Millisecond,
            jiff::SpanRelativeTo::days_are_24_hours(),
        ))
        .with_context(|| format!("--ttl {text:?}"))?;
    anyhow::ensure!(ms >= 60_000.0, "--ttl {text:?}: must be at least a minute");
    Ok(ms as i64)
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KAOQIN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { dirs, grpc } => {
            init_logging();
            let (config, data_dir) = dirs.resolve()?;
            let addr = grpc.unwrap_or(config.server.grpc);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let store = SqliteStore::open(&data_dir)?;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                let local = listener.local_addr()?;
                tracing::info!(grpc = %local, data_dir = %data_dir.display(), "Collector serving.");
                // Scripts and tests read the bound address from this line.
                println!("kaoqin-collector listening grpc={local}");
                std::io::stdout().flush()?;
                crate::server::run(
                    listener,
                    store,
                    &config,
                    crate::ingest::system_clock(),
                    crate::server::shutdown_signal(),
                )
                .await?;
                tracing::info!("Collector stopped.");
                anyhow::Ok(())
            })
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    dirs,
                    ttl,
                    uses,
                    note,
                },
        } => {
            let ttl_ms = parse_ttl_ms(&ttl)?;
            let (_, data_dir) = dirs.resolve()?;
            let store = SqliteStore::open(&data_dir)?;
            let t =
                store.create_token(ttl_ms, uses, &note, jiff::Timestamp::now().as_millisecond())?;
            println!("{}", t.token);
            Ok(())
        }
        Command::Events {
            dirs,
            agent,
            format: _,
        } => {
            let (_, data_dir) = dirs.resolve()?;
            let store = SqliteStore::open(&data_dir)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            store.for_each_event(agent.as_deref(), |e| {
                serde_json::to_writer(&mut out, &event_json(&e))?;
                out.write_all(b"\n")?;
                Ok(())
            })?;
            out.flush()?;
            Ok(())
        }
    }
}

/// One stored event as a flat JSON object: identity, instants, then the event.
pub fn event_json(e: &crate::store::StoredEvent) -> serde_json::Value {
    let rfc3339 = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| serde_json::Value::String(t.to_string()))
            .unwrap_or(serde_json::Value::Null)
    };
    let mut obj = serde_json::json!({
        "agent_id": e.agent_id,
        "seq": e.event.seq,
        "at": rfc3339(e.event.at_ms),
        "at_ms": e.event.at_ms,
        "corrected_at": rfc3339(e.event.at_ms + e.clock_offset_ms),
        "clock_offset_ms": e.clock_offset_ms,
        "received_at": rfc3339(e.received_ms),
    });
    if let (Some(map), Ok(serde_json::Value::Object(kind))) =
        (obj.as_object_mut(), serde_json::to_value(&e.event.kind))
    {
        map.extend(kind);
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parses_friendly_durations() {
        assert_eq!(parse_ttl_ms("7d").unwrap(), 7 * 86_400_000);
        assert_eq!(parse_ttl_ms("12h").unwrap(), 12 * 3_600_000);
        assert_eq!(parse_ttl_ms("30m").unwrap(), 30 * 60_000);
        assert!(
            parse_ttl_ms("soon")
                .unwrap_err()
                .to_string()
                .contains("--ttl")
        );
        assert!(parse_ttl_ms("5s").is_err());
    }
}

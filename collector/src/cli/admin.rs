//! The officer's trust commands: `token list|revoke`, `agents list|revoke`,
//! `integrity`, `audit list|verify`, and the audit records other commands write.
//!
//! `cli.rs` parses and dispatches here. What must stay true: no output shows a
//! token or key; every change to who may send is in the audit log; `audit verify`
//! exits non-zero naming the first bad record.

use crate::audit::{self, AuditEntry, Verification};
use crate::store::concerns::*;
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for a person.
    Table,
    /// One JSON array for a script.
    Json,
}

/// `kaoqin-collector agents ...`
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Every enrolled agent: id, hostname, os, agent version, enrolled, last seen,
    /// max seq, revoked, last clock offset.
    List {
        #[command(flatten)]
        dirs: crate::cli::DataDirArg,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Revoke an agent: its key stops working within a second, even for a running
    /// `serve`; its machine can enrol again only with a token created after now.
    Revoke {
        /// The agent id (as `agents list` shows it).
        id: String,
        #[command(flatten)]
        dirs: crate::cli::DataDirArg,
    },
}

/// `kaoqin-collector audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Every audit record, oldest first.
    List {
        #[command(flatten)]
        dirs: crate::cli::DataDirArg,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Recompute the hash chain; exit non-zero naming the first record that does
    /// not match. Prints the head hash: keep it elsewhere to detect a cut-off end.
    Verify {
        #[command(flatten)]
        dirs: crate::cli::DataDirArg,
        /// A head hash printed by an earlier `audit verify` and kept elsewhere: the
        /// log must still hold that record (else records were cut off its end, or it
        /// was rebuilt).
        #[arg(long)]
        head: Option<String>,
    },
}

/// `kaoqin-collector integrity`: what the officer must look at.
#[derive(Debug, Args)]
pub struct IntegrityArgs {
    #[command(flatten)]
    pub dirs: crate::cli::DataDirArg,
    /// First date (office time zone); default: 7 days before --to.
    #[arg(long)]
    pub from: Option<jiff::civil::Date>,
    /// Last date, inclusive; default: today.
    #[arg(long)]
    pub to: Option<jiff::civil::Date>,
    /// List agents that sent nothing for more than this many hours.
    #[arg(long, default_value_t = 24)]
    pub silent_hours: u32,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// The present instant (tests and replays); default: the clock.
    #[arg(long, hide = true)]
    pub now: Option<jiff::Timestamp>,
}

fn rfc3339(ms: Option<i64>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| "-".into())
}

fn print_table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    out.flush()?;
    Ok(())
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Appends a record of a command run by the local OS user.
pub fn record(
    store: &dyn Stores,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let entry = AuditEntry::new(
        crate::clock::now_ms(),
        audit::cli_actor(),
        action,
        subject,
        detail,
    );
    store
        .audit(&entry)
        .map_err(|e| anyhow::anyhow!("done, but it could not be written to the audit log: {e}"))?;
    Ok(())
}

/// `token list`.
pub fn token_list(store: &dyn Stores, format: ListFormat) -> anyhow::Result<()> {
    let tokens = store.tokens()?;
    if format == ListFormat::Json {
        return print_json(&tokens);
    }
    let rows: Vec<Vec<String>> = tokens
        .into_iter()
        .map(|t| {
            vec![
                t.hash_prefix,
                rfc3339(Some(t.created_ms)),
                rfc3339(Some(t.expires_ms)),
                format!(
                    "{}/{}",
                    t.uses,
                    t.max_uses.map_or("unlimited".into(), |m| m.to_string())
                ),
                rfc3339(t.revoked_ms),
                if t.reenroll {
                    "new and known"
                } else {
                    "new only"
                }
                .into(),
                t.used_for.join(", "),
                t.note,
            ]
        })
        .collect();
    print_table(
        &[
            "hash", "created", "expires", "uses", "revoked", "machines", "used for", "note",
        ],
        &rows,
    )
}

/// `token revoke PREFIX`.
pub fn token_revoke(store: &dyn Stores, prefix: &str) -> anyhow::Result<()> {
    let short = store.revoke_token(prefix, &audit::cli_actor(), crate::clock::now_ms())?;
    println!("Revoked token {short}; agents already enrolled with it keep working.");
    Ok(())
}

/// `agents list|revoke`.
pub fn agents(store: &dyn Stores, command: AgentsCommand) -> anyhow::Result<()> {
    match command {
        AgentsCommand::List { format, .. } => {
            let agents = store.agents()?;
            if format == ListFormat::Json {
                return print_json(&agents);
            }
            let rows: Vec<Vec<String>> = agents
                .into_iter()
                .map(|a| {
                    vec![
                        a.id,
                        a.hostname,
                        format!("{} {}", a.os, a.os_version).trim().to_owned(),
                        a.agent_version,
                        rfc3339(Some(a.enrolled_ms)),
                        rfc3339(a.last_seen_ms),
                        a.max_seq.to_string(),
                        rfc3339(a.revoked_ms),
                        a.last_clock_offset_ms
                            .map_or("-".into(), |o| format!("{o} ms")),
                    ]
                })
                .collect();
            print_table(
                &[
                    "id",
                    "hostname",
                    "os",
                    "agent",
                    "enrolled",
                    "last_seen",
                    "max_seq",
                    "revoked",
                    "clock_offset",
                ],
                &rows,
            )
        }
        AgentsCommand::Revoke { id, .. } => {
            store.revoke_agent(&id, &audit::cli_actor(), crate::clock::now_ms())?;
            println!(
                "Revoked agent {id}; it is refused from now on and must enrol again with a new token."
            );
            Ok(())
        }
    }
}

/// `integrity`.
pub fn integrity(
    store: &dyn Stores,
    config: &crate::config::Config,
    rules: &crate::verdicts::Rules,
    args: &IntegrityArgs,
) -> anyhow::Result<()> {
    let tz = jiff::tz::TimeZone::get(&config.server.time_zone)?;
    let now = args.now.unwrap_or_else(crate::clock::now);
    let to = args
        .to
        .unwrap_or_else(|| now.to_zoned_datetime(tz.clone()).date());
    let from = match args.from {
        Some(d) => d,
        None => to.checked_sub(jiff::Span::new().days(7))?,
    };
    anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    let start = from
        .to_zoned_datetime(tz.clone())?
        .timestamp()
        .as_millisecond();
    let end = to
        .tomorrow()?
        .to_zoned_datetime(tz)?
        .timestamp()
        .as_millisecond();
    let q = crate::integrity::Query {
        from_ms: start,
        to_ms: end,
        large_offset_ms: i64::from(config.attendance.large_offset_minutes) * 60_000,
        silent_ms: i64::from(args.silent_hours) * 3_600_000,
        now_ms: now.as_millisecond(),
    };
    let mut items = crate::integrity::list(store, &q)?;
    // A missing holiday notice first: it touches every verdict of its year.
    let today = now
        .to_zoned_datetime(rules.settings.time_zone.clone())
        .date();
    if let Some(w) = rules.calendar.notice_warning(today) {
        items.insert(
            0,
            crate::integrity::IntegrityItem {
                agent_id: "-".into(),
                hostname: "-".into(),
                kind: if w.urgent {
                    "calendar_provisional"
                } else {
                    "calendar_notice_missing"
                },
                at_ms: now.as_millisecond(),
                seq: None,
                detail: w.text_en(),
            },
        );
    }
    if args.format == ListFormat::Json {
        return print_json(&items);
    }
    let counts = crate::integrity::counts(&items);
    let rows: Vec<Vec<String>> = items
        .into_iter()
        .map(|i| {
            vec![
                i.agent_id,
                i.hostname,
                if i.at_ms == 0 {
                    "-".into()
                } else {
                    rfc3339(Some(i.at_ms))
                },
                i.kind.to_owned(),
                i.seq.map_or("-".into(), |s| s.to_string()),
                i.detail,
            ]
        })
        .collect();
    print_table(&["agent", "hostname", "at", "kind", "seq", "detail"], &rows)?;
    if !counts.is_empty() {
        println!("counts: {}", counts.join(", "));
    }
    Ok(())
}

/// `audit list|verify`.
pub fn audit(store: &dyn Stores, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List { format, .. } => {
            let records = store.audit_list()?;
            if format == ListFormat::Json {
                return print_json(&records);
            }
            let rows: Vec<Vec<String>> = records
                .into_iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        rfc3339(Some(r.at_ms)),
                        r.actor,
                        r.action,
                        r.subject,
                        r.detail,
                        r.hash[..12].to_owned(),
                    ]
                })
                .collect();
            print_table(
                &["id", "at", "actor", "action", "subject", "detail", "hash"],
                &rows,
            )
        }
        AuditCommand::Verify { head: kept, .. } => match store.audit_verify()? {
            Verification::Intact { records, head } => {
                if let Some(kept) = kept.map(|k| k.trim().to_ascii_lowercase())
                    && kept != head
                    && !store.audit_list()?.iter().any(|r| r.hash == kept)
                {
                    anyhow::bail!(
                        "audit log cut: the record with head {kept} is not in it (records were removed from its end, or it was rebuilt); it now ends at {head} after {records} records"
                    );
                }
                println!("audit log intact: {records} records, head {head}");
                Ok(())
            }
            Verification::Broken { id, problem } => {
                anyhow::bail!("audit log broken at record {id}: {problem}")
            }
        },
    }
}

//! The `kaoqin-collector` command line (ARCHITECTURE.md lists the contract).

pub mod admin;
pub mod choices;
pub mod users;

use crate::config::Config;
use crate::store::concerns::*;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// kaoqin collector: enrols agents, stores their events, judges attendance.
#[derive(Debug, Parser)]
#[command(name = "kaoqin-collector", version, about)]
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
pub struct DataDirArg {
    /// The data directory (default: the config's server.data_dir, or ./kaoqin-data).
    #[arg(long, env = "KAOQIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file.
    #[arg(long, env = "KAOQIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// PostgreSQL instead of the SQLite file in the data dir:
    /// postgres://user:password@host:port/database (overrides storage.url).
    #[arg(long, env = "KAOQIN_DATABASE")]
    pub database: Option<String>,
}

impl DataDirArg {
    pub(crate) fn resolve(&self) -> anyhow::Result<(Config, PathBuf)> {
        let config = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        let mut config = config;
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| config.server.data_dir.clone());
        config.server.data_dir = dir.clone();
        if let Some(url) = &self.database {
            config.storage.url = Some(url.clone());
        }
        Ok((config, dir))
    }

    /// Opens the store these arguments name, with the rules' settings.
    pub(crate) fn open_store(
        &self,
    ) -> anyhow::Result<(std::sync::Arc<dyn Stores>, crate::verdicts::Rules, Config)> {
        let (config, data_dir) = self.resolve()?;
        let rules = crate::verdicts::Rules::from_config(&config)?;
        let store =
            crate::store::open(&data_dir, config.storage.url.as_deref(), &rules.settings)?.stores();
        Ok((store, rules, config))
    }
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Drop the raw events of the months before YYYY-MM (UTC months), whose
    /// verdicts must be final; those days keep their verdicts, frozen.
    Prune {
        #[command(flatten)]
        dirs: DataDirArg,
        /// The first month kept, YYYY-MM.
        #[arg(long)]
        before: String,
    },
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
        /// Serve without TLS if no certificate is in place (a lab; sets server.plaintext).
        #[arg(long)]
        plaintext: bool,
        /// Also serve the web pages on this address (overrides server.http).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Take past events from agents replaying a scripted day (a lab, a demo,
        /// tests; sets server.allow_replay). Never in production.
        #[arg(long)]
        allow_replay: bool,
    },
    /// TLS for gRPC: a private CA and a server certificate signed by it.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Enrolment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Enrolled agents: list them, revoke one.
    Agents {
        #[command(subcommand)]
        command: crate::cli::admin::AgentsCommand,
    },
    /// What the officer must look at: agents stopped or crashed, data lost, clocks
    /// off, agents silent or revoked.
    Integrity(crate::cli::admin::IntegrityArgs),
    /// The hash-chained audit log: list it, verify it.
    Audit {
        #[command(subcommand)]
        command: crate::cli::admin::AuditCommand,
    },
    /// The staff directory: who is who, and which OS accounts are theirs.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// The working calendar: official holidays and make-up days plus overrides.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// Exemptions: leave, field work (外勤/公出) and business trips.
    Leave {
        #[command(subcommand)]
        command: LeaveCommand,
    },
    /// Stored day verdicts.
    Verdicts {
        #[command(subcommand)]
        command: VerdictsCommand,
    },
    /// Attendance reports from the stored verdicts.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Daily messages by e-mail and chat-group robots (`[notify]`).
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Accounts of the people who read reports (web pages, API tokens).
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Print stored raw events, one JSON object a line; `events prune` drops old ones.
    #[command(args_conflicts_with_subcommands = true)]
    Events {
        #[command(subcommand)]
        command: Option<EventsCommand>,
        #[command(flatten)]
        dirs: DataDirArg,
        /// Only this agent's events.
        #[arg(long)]
        agent: Option<String>,
        /// Output format.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
        format: String,
    },
    /// Check the configuration file (every setting, the schedules and the
    /// calendar overrides) without opening the store or listening; exits non-zero
    /// naming each problem.
    CheckConfig {
        #[command(flatten)]
        dirs: DataDirArg,
    },
    /// Write a consistent copy of the SQLite store to a new file, safe while
    /// `serve` runs (SQLite's online backup API). PostgreSQL is backed up with
    /// its own tools (pg_dump, base backups: docs/operations.md).
    Backup {
        #[command(flatten)]
        dirs: DataDirArg,
        /// The file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a backup made by `backup` in place of the data dir's SQLite store.
    /// Stop `serve` first (a running collector is detected and refused). The
    /// replaced database is kept beside it as kaoqin.db.before-restore-MILLIS.
    Restore {
        #[command(flatten)]
        dirs: DataDirArg,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// Move an office from its SQLite file to an empty PostgreSQL database:
    /// everything, with the audit chain intact. Stop `serve` first.
    Migrate {
        /// The data dir whose kaoqin.db is moved.
        #[arg(long)]
        from: PathBuf,
        /// postgres://user:password@host:port/database (empty: no agents, staff,
        /// users or audit log).
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Create the CA (once) and a server certificate for the names agents use;
    /// prints the path of the CA certificate to give `kaoqin-agent enroll --ca`.
    Init {
        #[command(flatten)]
        dirs: DataDirArg,
        /// A DNS name or IP address of the collector, as agents reach it (repeat).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// How long the server certificate is valid, in days.
        #[arg(long, default_value_t = 825)]
        days: i64,
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
        /// How many agents may enrol with it.
        #[arg(long, default_value_t = 100)]
        uses: u32,
        /// A note for the record (which rollout it is for).
        #[arg(long, default_value = "")]
        note: String,
        /// Also for machines already enrolled (a reinstall). Without it the token
        /// enrols new machines only and refuses a known machine id.
        #[arg(long)]
        reenroll: bool,
    },
    /// List tokens: hash prefix, created, expires, uses/max, revoked, note (never
    /// the token itself).
    List {
        #[command(flatten)]
        dirs: DataDirArg,
        #[arg(long, value_enum, default_value = "table")]
        format: crate::cli::admin::ListFormat,
    },
    /// Revoke a token by the start of its hash (as `token list` shows it) or by the
    /// token itself; agents already enrolled with it keep working.
    Revoke {
        /// At least 6 hex digits of the hash.
        prefix: String,
        #[command(flatten)]
        dirs: DataDirArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Import (add or update by employee_id) people from a CSV file with the header
    /// employee_id,name,department,os_accounts; accounts separated by ; or |. The
    /// whole file is checked first: any problem and nothing is imported.
    Import {
        /// The CSV file.
        file: PathBuf,
        #[command(flatten)]
        dirs: DataDirArg,
    },
    /// List the directory as CSV: employee_id,name,department,os_accounts,own_pcs,email
    /// (what `staff import` takes).
    List {
        #[command(flatten)]
        dirs: DataDirArg,
    },
    /// Import people and departments from the office directory (`[auth.ldap]`):
    /// new people are added, names, departments and e-mail follow the directory,
    /// its account name is added to each person's; nobody is removed.
    SyncLdap {
        #[command(flatten)]
        dirs: DataDirArg,
        /// Print what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// OS accounts seen in events that belong to nobody: account,pcs,last_seen.
    Unmapped {
        #[command(flatten)]
        dirs: DataDirArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Print every day of a year with its kind (workday, rest, holiday,
    /// makeup_workday) and what decided it, overrides from the config and notices
    /// imported into the data dir applied. A year without a notice is provisional.
    Show {
        /// The year.
        #[arg(long)]
        year: i16,
        /// csv (header `date,kind,basis`), json (an object with the year's basis
        /// and its days), or notice (the year's holidays and make-up days in the
        /// import format, to edit and import).
        #[arg(long, default_value = "csv", value_parser = ["csv", "json", "notice"])]
        format: String,
        #[command(flatten)]
        dirs: DataDirArg,
    },
    /// Store the State Council's holiday notice of a year from a CSV file
    /// `date,kind[,note]` (kind: holiday or makeup_workday). The file is checked
    /// whole (every date in the year, each statutory holiday a holiday, make-up
    /// days on weekends); nothing is stored on any error. A later import of the
    /// same year replaces it. The year's stored verdicts are judged again.
    Import {
        /// The notice file.
        file: PathBuf,
        /// The year the notice is for.
        #[arg(long)]
        year: i16,
        #[command(flatten)]
        dirs: DataDirArg,
        /// The present instant (tests); default: the clock.
        #[arg(long, hide = true)]
        now: Option<jiff::Timestamp>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LeaveCommand {
    /// Add one exemption. --from/--to take an RFC 3339 instant, a date-time in the
    /// office's time zone (2026-11-24T08:30) or a date: `--from 2026-11-24 --to
    /// 2026-11-24` is the whole day.
    Add {
        #[command(flatten)]
        dirs: DataDirArg,
        /// The employee id.
        #[arg(long)]
        employee: String,
        /// leave, field or business_trip.
        #[arg(long)]
        kind: String,
        /// Start (inclusive).
        #[arg(long)]
        from: String,
        /// End (a bare date: the end of that day).
        #[arg(long)]
        to: String,
        /// Free text from the approval.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Import exemptions from a CSV file with the header employee_id,kind,start,end,note;
    /// all or nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
        #[command(flatten)]
        dirs: DataDirArg,
    },
    /// List exemptions as CSV: employee_id,kind,start,end,note.
    List {
        #[command(flatten)]
        dirs: DataDirArg,
        /// Only this employee's.
        #[arg(long)]
        employee: Option<String>,
    },
    /// Leave balances per person, year and leave type (a request over the
    /// balance is refused).
    Balance {
        #[command(subcommand)]
        command: BalanceCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Composes the messages of one day and sends every one not sent yet, now
    /// (`serve` does this on schedule); a message already sent is never sent
    /// again. Fails, after sending what it can, if any message was not delivered.
    Daily {
        #[command(flatten)]
        dirs: DataDirArg,
        /// The attendance date the messages are about.
        #[arg(long)]
        date: jiff::civil::Date,
        /// The present instant (tests and replays); default: the clock.
        #[arg(long, hide = true)]
        now: Option<jiff::Timestamp>,
    },
    /// Lists stored messages as CSV: key,channel,recipient,subject,sent,attempts,last_error.
    List {
        #[command(flatten)]
        dirs: DataDirArg,
        /// Only this day's.
        #[arg(long)]
        date: Option<jiff::civil::Date>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BalanceCommand {
    /// Import balances from a CSV file with the header
    /// employee_id,year,leave_type,days (days in whole or half days, 5 or 5.5);
    /// all or nothing, replacing the same person, year and type.
    Import {
        /// The CSV file.
        file: PathBuf,
        #[command(flatten)]
        dirs: DataDirArg,
    },
    /// List balances as CSV: employee_id,year,leave_type,days.
    List {
        #[command(flatten)]
        dirs: DataDirArg,
        /// Only this employee's.
        #[arg(long)]
        employee: Option<String>,
        /// Only this year.
        #[arg(long)]
        year: Option<i16>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VerdictsCommand {
    /// Recompute and store the verdicts of everyone in the directory on every date of
    /// the range (default: only the days marked dirty by new events or changes).
    Recompute {
        #[command(flatten)]
        dirs: DataDirArg,
        /// First date (with --to).
        #[arg(long, requires = "to")]
        from: Option<jiff::civil::Date>,
        /// Last date (with --from).
        #[arg(long, requires = "from")]
        to: Option<jiff::civil::Date>,
        /// The present instant (tests and replays); default: the clock.
        #[arg(long, hide = true)]
        now: Option<jiff::Timestamp>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Every staff member's verdict on one date, from stored verdicts (missing or
    /// stale ones are computed first). JSON is one array of day records with the
    /// fields employee_id, name, department, date, status, arrival, departure (RFC
    /// 3339 or null), late_minutes, early_minutes, nonwork_seconds, evidence,
    /// coverage, schedule_version (see ARCHITECTURE.md).
    Daily {
        #[command(flatten)]
        dirs: DataDirArg,
        /// The attendance date.
        #[arg(long)]
        date: jiff::civil::Date,
        /// Only this department.
        #[arg(long)]
        department: Option<String>,
        /// Output format (xlsx needs --out unless stdout is redirected).
        #[arg(long, value_enum, default_value = "table")]
        format: choices::DailyFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The present instant (tests and replays); default: the clock.
        #[arg(long, hide = true)]
        now: Option<jiff::Timestamp>,
    },
    /// Totals per staff member or department over a period: days present, late and
    /// early counts and minutes, absences, unknown days, non-work minutes by
    /// category, coverage (corrections applied).
    Summary(SummaryArgs),
    /// The monthly sheet (考勤月报) to print and sign: a symbol per person and day,
    /// the month's totals (late, early, 旷工, 缺卡, leave by type, overtime by
    /// kind), a legend and signature lines; A4 landscape.
    Monthly {
        #[command(flatten)]
        dirs: DataDirArg,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Only this department.
        #[arg(long)]
        department: Option<String>,
        /// Output format.
        #[arg(long, value_parser = ["xlsx", "json"], default_value = "xlsx")]
        format: String,
        /// Write to this file (an XLSX needs one unless stdout is redirected).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The present instant (tests and replays); default: the clock.
        #[arg(long, hide = true)]
        now: Option<jiff::Timestamp>,
    },
}

/// `report summary` arguments.
#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub dirs: DataDirArg,
    /// First date.
    #[arg(long)]
    pub from: jiff::civil::Date,
    /// Last date (inclusive).
    #[arg(long)]
    pub to: jiff::civil::Date,
    /// One row per staff member or per department.
    #[arg(long, value_enum, default_value = "staff")]
    pub by: choices::ByArg,
    /// Only this department.
    #[arg(long)]
    pub department: Option<String>,
    /// Output format (xlsx needs --out).
    #[arg(long, value_enum, default_value = "table")]
    pub format: choices::SummaryFormat,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The present instant (tests and replays); default: the clock.
    #[arg(long, hide = true)]
    pub now: Option<jiff::Timestamp>,
}

/// Opens the store and the rules of a command's config and data dir.
fn open_with_rules(
    dirs: &DataDirArg,
) -> anyhow::Result<(std::sync::Arc<dyn Stores>, crate::verdicts::Rules, Config)> {
    let (store, rules, config) = dirs.open_store()?;
    let rules = rules.with_store_notices(&*store)?;
    Ok((store, rules, config))
}

fn rfc3339_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn run_staff(command: StaffCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        StaffCommand::Import { file, dirs } => {
            let people = crate::staff::read_staff_csv(&file)?;
            let (store, _, _) = open_with_rules(&dirs)?;
            let counts = store
                .import_staff(&people, crate::clock::now_ms())
                .with_context(|| format!("{}: nothing was imported", file.display()))?;
            crate::cli::admin::record(
                &*store,
                "staff.import",
                &file.display().to_string(),
                serde_json::json!({ "people": people.len(), "added": counts.added, "updated": counts.updated }),
            )?;
            writeln!(
                out,
                "Imported {} people from {}: {} added, {} updated.",
                people.len(),
                file.display(),
                counts.added,
                counts.updated
            )?;
        }
        StaffCommand::List { dirs } => {
            let (store, _, _) = open_with_rules(&dirs)?;
            let mut w = csv::Writer::from_writer(out);
            let mut header = crate::staff::HEADER.to_vec();
            header.extend([crate::staff::OWN_PCS, crate::staff::EMAIL]);
            w.write_record(header)?;
            for p in store.staff()? {
                w.write_record([
                    p.employee_id,
                    p.name,
                    p.department,
                    p.accounts.join(";"),
                    p.own_pcs.join(";"),
                    p.email,
                ])?;
            }
            w.flush()?;
        }
        StaffCommand::SyncLdap { dirs, dry_run } => {
            let (store, _, config) = open_with_rules(&dirs)?;
            let ldap = config
                .auth
                .ldap
                .as_ref()
                .context("no [auth.ldap] in the configuration (see collector.example.toml)")?;
            let (plan, skipped) =
                crate::ldap::sync(&*store, ldap, dry_run, &crate::audit::cli_actor())?;
            let mut w = std::io::BufWriter::new(out);
            for line in plan.lines() {
                writeln!(w, "{line}")?;
            }
            for s in skipped {
                writeln!(w, "skipped: {s}")?;
            }
            writeln!(
                w,
                "{}{} to add, {} to update, {} only in kaoqin",
                if dry_run { "dry run: " } else { "" },
                plan.added.len(),
                plan.changed.len(),
                plan.missing.len()
            )?;
        }
        StaffCommand::Unmapped { dirs } => {
            let (store, _, _) = open_with_rules(&dirs)?;
            let mut w = csv::Writer::from_writer(out);
            w.write_record(["account", "pcs", "last_seen"])?;
            for u in store.unmapped_accounts()? {
                let pcs = u
                    .pcs
                    .iter()
                    .map(|(id, host)| format!("{host} ({id})"))
                    .collect::<Vec<_>>()
                    .join(";");
                w.write_record([u.account, pcs, rfc3339_ms(u.last_seen_ms)])?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// What decided the kind of `date`: `override`, the year's basis (`built_in`,
/// `imported`, `provisional`), for the days a notice or the law names, else `week`.
fn day_basis(
    rules: &crate::verdicts::Rules,
    config: &Config,
    date: jiff::civil::Date,
) -> &'static str {
    let overridden = config
        .attendance
        .calendar_override
        .iter()
        .any(|o| o.date.date().ok() == Some(date));
    if overridden {
        "override"
    } else if rules.calendar.note(date).is_some() {
        rules.calendar.basis(date.year()).as_str()
    } else {
        "week"
    }
}

fn run_calendar(command: CalendarCommand) -> anyhow::Result<()> {
    match command {
        CalendarCommand::Show { year, format, dirs } => {
            let (config, data_dir) = dirs.resolve()?;
            let rules = crate::verdicts::Rules::from_config(&config)?;
            // The notices imported into the store, if there is one.
            let rules = if config.storage.url.is_some()
                || data_dir.join(crate::store::sqlite::DB_FILE).exists()
            {
                let (store, _, _) = dirs.open_store()?;
                rules.with_store_notices(&*store)?
            } else {
                rules
            };
            let basis = rules.calendar.basis(year);
            if basis == crate::attendance::YearBasis::Provisional {
                eprintln!(
                    "warning: {year} is provisional: no State Council notice is built in or imported, \
                     so only the statutory holidays are shown (no make-up working days, no bridged days). \
                     Import the notice with `kaoqin-collector calendar import FILE.csv --year {year}`."
                );
            }
            let rows = rules.calendar.year_rows(year);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match format.as_str() {
                "json" => {
                    let days: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|(d, k)| {
                            serde_json::json!({
                                "date": d.to_string(),
                                "kind": k.as_str(),
                                "basis": day_basis(&rules, &config, *d),
                                "note": rules.calendar.note(*d),
                            })
                        })
                        .collect();
                    let doc = serde_json::json!({
                        "year": year,
                        "basis": basis.as_str(),
                        "provisional": basis == crate::attendance::YearBasis::Provisional,
                        "days": days,
                    });
                    serde_json::to_writer_pretty(&mut out, &doc)?;
                    writeln!(out)?;
                }
                "notice" => {
                    let rows: Vec<_> = rows
                        .iter()
                        .map(|(d, k)| (*d, *k, rules.calendar.note(*d).map(str::to_owned)))
                        .collect();
                    out.write_all(crate::notice::write_notice(&rows).as_bytes())?;
                }
                _ => {
                    writeln!(out, "date,kind,basis")?;
                    for (d, k) in rows {
                        writeln!(out, "{d},{k},{}", day_basis(&rules, &config, d))?;
                    }
                }
            }
            out.flush()?;
            Ok(())
        }
        CalendarCommand::Import {
            file,
            year,
            dirs,
            now,
        } => {
            let text =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let notice = crate::notice::parse_notice(&file.display().to_string(), &text, year)?;
            let (store, rules, _) = open_with_rules(&dirs)?;
            let now = now.unwrap_or_else(crate::clock::now);
            let replaced = store
                .import_calendar_notice(
                    &notice,
                    &crate::audit::cli_actor(),
                    &file.display().to_string(),
                    now.as_millisecond(),
                )
                .with_context(|| format!("{}: nothing was imported", file.display()))?;
            let rules = rules.with_store_notices(&*store)?;
            // Judge again the days of the year that have already begun.
            let today = rules.settings.time_zone.to_datetime(now).date();
            let first = jiff::civil::Date::new(year, 1, 1)?;
            let last = jiff::civil::Date::new(year, 12, 31)?.min(today);
            let judged = if first <= last {
                crate::verdicts::recompute_range(&*store, &rules, first, last, now)?
            } else {
                0
            };
            let (holidays, makeup) = notice.days.iter().fold((0, 0), |(h, m), d| match d.kind {
                crate::attendance::DayKind::MakeupWorkday => (h, m + 1),
                _ => (h + 1, m),
            });
            println!(
                "imported the notice for {year}: {holidays} holiday(s), {makeup} make-up working day(s){}; {judged} person-day(s) judged again",
                if replaced {
                    ", replacing the earlier import"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}

fn run_notify(command: NotifyCommand) -> anyhow::Result<()> {
    match command {
        NotifyCommand::Daily { dirs, date, now } => {
            let (store, rules, config) = open_with_rules(&dirs)?;
            let n = &config.notify;
            anyhow::ensure!(
                n.email.is_some() || !n.webhook.is_empty(),
                "nothing to send with: configure [notify.email] or [[notify.webhook]] (see collector.example.toml)"
            );
            let now = now.unwrap_or_else(crate::clock::now);
            let composer = crate::notify::Composer {
                store: &*store,
                rules: &rules,
                config: n,
                requests: &config.requests,
                appeal_days: config.appeals.window_days,
            };
            let list = composer.compose(date, now)?;
            let new = store.enqueue_notifications(date, &list, now.as_millisecond())?;
            let transports = crate::notify::transport::Transports::new(n)?;
            let done = crate::notify::deliver(
                &*store,
                &|o| transports.send(o, now.as_millisecond()),
                Some(date),
                now,
            )?;
            crate::cli::admin::record(
                &*store,
                "notify.daily",
                &date.to_string(),
                serde_json::json!({ "composed": list.len(), "new": new, "sent": done.sent, "failed": done.failed.len() }),
            )?;
            println!(
                "{date}: {} messages ({new} new); sent {}, not delivered {}",
                list.len(),
                done.sent,
                done.failed.len()
            );
            for (key, e) in &done.failed {
                println!("not delivered: {key}: {e}");
            }
            anyhow::ensure!(
                done.failed.is_empty(),
                "{} message(s) not delivered; `serve` tries them again, and so does running this again",
                done.failed.len()
            );
        }
        NotifyCommand::List { dirs, date } => {
            let (store, _, _) = open_with_rules(&dirs)?;
            let stdout = std::io::stdout();
            let mut w = csv::Writer::from_writer(stdout.lock());
            w.write_record([
                "key",
                "channel",
                "recipient",
                "subject",
                "sent",
                "attempts",
                "last_error",
            ])?;
            for n in store.notifications(date, 10_000)? {
                w.write_record([
                    n.outgoing.key,
                    n.outgoing.channel,
                    n.outgoing.recipient,
                    n.outgoing.subject,
                    n.sent_ms.map(rfc3339_ms).unwrap_or_default(),
                    n.attempts.to_string(),
                    n.last_error,
                ])?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

fn run_leave(command: LeaveCommand) -> anyhow::Result<()> {
    let now_ms = crate::clock::now_ms();
    match command {
        LeaveCommand::Add {
            dirs,
            employee,
            kind,
            from,
            to,
            note,
        } => {
            let (store, rules, _) = open_with_rules(&dirs)?;
            let e = crate::leave::exemption(
                &employee,
                &kind,
                &from,
                &to,
                &note,
                &rules.settings.time_zone,
            )
            .map_err(|list| {
                let arg = |f: &str| match f {
                    "employee_id" => "--employee",
                    "start" => "--from",
                    "end" => "--to",
                    _ => "--kind",
                };
                anyhow::anyhow!(
                    "{}",
                    list.iter()
                        .map(|(f, w)| format!("{}: {w}", arg(f)))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })?;
            store.add_exemptions(std::slice::from_ref(&e), &rules.settings, now_ms)?;
            crate::cli::admin::record(
                &*store,
                "leave.add",
                &e.employee_id,
                serde_json::json!({ "kind": e.kind.as_str(), "start": e.start.to_string(), "end": e.end.to_string(), "note": e.note }),
            )?;
            println!(
                "Added {} for {} from {} to {}.",
                e.kind.as_str(),
                e.employee_id,
                e.start,
                e.end
            );
        }
        LeaveCommand::Import { file, dirs } => {
            let (store, rules, _) = open_with_rules(&dirs)?;
            let list = crate::leave::read_leave_csv(&file, &rules.settings.time_zone)?;
            store
                .add_exemptions(&list, &rules.settings, now_ms)
                .with_context(|| format!("{}: nothing was imported", file.display()))?;
            crate::cli::admin::record(
                &*store,
                "leave.import",
                &file.display().to_string(),
                serde_json::json!({ "exemptions": list.len() }),
            )?;
            println!(
                "Imported {} exemptions from {}.",
                list.len(),
                file.display()
            );
        }
        LeaveCommand::Balance {
            command: BalanceCommand::Import { file, dirs },
        } => {
            let (store, _, config) = open_with_rules(&dirs)?;
            let types: Vec<String> = crate::requests::leave_types(&config.requests)
                .into_iter()
                .map(|(code, _, _)| code)
                .collect();
            let list = crate::requests::balance::read_csv(&file, &types)?;
            let audit = crate::audit::AuditEntry::new(
                now_ms,
                crate::audit::cli_actor(),
                "leave.balance_import",
                file.display().to_string(),
                serde_json::json!({ "balances": list.len() }),
            );
            store
                .import_leave_balances(&list, &audit)
                .with_context(|| format!("{}: nothing was imported", file.display()))?;
            println!(
                "Imported {} leave balances from {}.",
                list.len(),
                file.display()
            );
        }
        LeaveCommand::Balance {
            command:
                BalanceCommand::List {
                    dirs,
                    employee,
                    year,
                },
        } => {
            let (store, _, _) = open_with_rules(&dirs)?;
            let stdout = std::io::stdout();
            let mut w = csv::Writer::from_writer(stdout.lock());
            w.write_record(crate::requests::balance::HEADER)?;
            for b in store.leave_balances(employee.as_deref(), year)? {
                w.write_record([
                    b.employee_id,
                    b.year.to_string(),
                    b.leave_type,
                    crate::requests::balance::days(b.half_days),
                ])?;
            }
            w.flush()?;
        }
        LeaveCommand::List { dirs, employee } => {
            let (store, _, _) = open_with_rules(&dirs)?;
            let stdout = std::io::stdout();
            let mut w = csv::Writer::from_writer(stdout.lock());
            w.write_record(crate::leave::HEADER)?;
            for e in store.exemptions(employee.as_deref(), i64::MIN, i64::MAX)? {
                w.write_record([
                    e.employee_id,
                    e.kind.as_str().to_owned(),
                    e.start.to_string(),
                    e.end.to_string(),
                    e.note,
                ])?;
            }
            w.flush()?;
        }
    }
    Ok(())
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

/// Every agent keeps a connection open: let the collector hold as many files as
/// the system allows (the soft limit is often 1024).
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        // Root may raise the hard limit too; others get the soft limit raised to it.
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, 1 << 20, 1 << 20);
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => tracing::debug!(open_files = n, "Open file limit."),
            Err(e) => tracing::warn!(error = %e, "Cannot raise the open file limit."),
        }
    }
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let log_format = cli.log_format;
    let clock_set_at = crate::clock::init()?;
    match cli.command {
        Command::Tls {
            command: TlsCommand::Init { dirs, names, days },
        } => {
            let (_, data_dir) = dirs.resolve()?;
            let files = crate::tls::init(&data_dir, &names, days)?;
            eprintln!(
                "Server certificate for {} in {}; restart `serve` to use it.",
                names.join(", "),
                files.server_cert.display()
            );
            println!("{}", files.ca_cert.display());
            Ok(())
        }
        Command::Serve {
            dirs,
            grpc,
            plaintext,
            http,
            allow_replay,
        } => {
            init_logging(log_format);
            if let Some(at) = clock_set_at {
                tracing::warn!(
                    %at,
                    "{} is set: this collector's clock started at {at}, not at the system's time. For demonstrations and tests only.",
                    crate::clock::VARIABLE
                );
            }
            let (mut config, data_dir) = dirs.resolve()?;
            config.server.allow_replay |= allow_replay;
            config.server.plaintext |= plaintext;
            config.server.data_dir = data_dir;
            let grpc = grpc.unwrap_or(config.server.grpc);
            let http = http.or(config.server.http);
            // One collector per SQLite file; `restore` waits for it to stop.
            let _serving = match config.storage.url {
                None => Some(crate::store::sqlite::serving_lock(&config.server.data_dir)?),
                Some(_) => None,
            };
            raise_open_file_limit();
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                // Signal handlers first: a SIGTERM once `listening` is printed stops
                // the collector cleanly.
                let stop = crate::server::shutdown_signal();
                let listeners = crate::app::Listeners {
                    grpc: tokio::net::TcpListener::bind(grpc)
                        .await
                        .with_context(|| format!("cannot listen on {grpc}"))?,
                    http: match http {
                        Some(addr) => Some(
                            tokio::net::TcpListener::bind(addr)
                                .await
                                .with_context(|| format!("cannot listen on {addr} (http)"))?,
                        ),
                        None => None,
                    },
                };
                let data_dir = config.server.data_dir.clone();
                let collector = crate::app::Collector::new(
                    listeners,
                    config,
                    crate::ingest::system_clock(),
                )?;
                let scheme = collector.scheme();
                let local = collector.grpc_addr()?;
                tracing::info!(grpc = %local, %scheme, data_dir = %data_dir.display(), "Collector serving.");
                // Scripts and tests read the bound addresses (and schemes) from these lines.
                println!("kaoqin-collector listening grpc={local} scheme={scheme}");
                if let Some(http) = collector.http_addr() {
                    let http = http?;
                    tracing::info!(%http, %scheme, "Web pages serving.");
                    println!("kaoqin-collector listening http={http} scheme={scheme}");
                }
                std::io::stdout().flush()?;
                crate::service_manager::ready(&format!("serving gRPC on {local} ({scheme})"));
                let stop = async {
                    stop.await;
                    crate::service_manager::stopping();
                };
                collector.run(stop).await
            })
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    dirs,
                    ttl,
                    uses,
                    note,
                    reenroll,
                },
        } => {
            let ttl_ms = parse_ttl_ms(&ttl)?;
            if uses == 0 {
                anyhow::bail!("--uses: must be at least 1");
            }
            let (store, _, _) = dirs.open_store()?;
            let spec = crate::store::TokenSpec {
                ttl_ms,
                max_uses: Some(uses),
                note: note.clone(),
                reenroll,
            };
            let t = store.create_token(&spec, crate::clock::now_ms())?;
            crate::cli::admin::record(
                &*store,
                "token.create",
                &crate::store::hash_secret(&t.token)[..crate::store::admin::TOKEN_PREFIX_LEN],
                serde_json::json!({ "ttl": ttl, "max_uses": uses, "note": note, "expires_ms": t.expires_ms, "reenroll": reenroll }),
            )?;
            println!("{}", t.token);
            Ok(())
        }
        Command::Token {
            command: TokenCommand::List { dirs, format },
        } => {
            let (store, _, _) = dirs.open_store()?;
            crate::cli::admin::token_list(&*store, format)
        }
        Command::Token {
            command: TokenCommand::Revoke { prefix, dirs },
        } => {
            let (store, _, _) = dirs.open_store()?;
            crate::cli::admin::token_revoke(&*store, &prefix)
        }
        Command::Agents { command } => {
            let dirs = match &command {
                crate::cli::admin::AgentsCommand::List { dirs, .. }
                | crate::cli::admin::AgentsCommand::Revoke { dirs, .. } => dirs.clone(),
            };
            let (store, _, _) = dirs.open_store()?;
            crate::cli::admin::agents(&*store, command)
        }
        Command::Integrity(args) => {
            let (store, rules, config) = open_with_rules(&args.dirs)?;
            crate::cli::admin::integrity(&*store, &config, &rules, &args)
        }
        Command::Audit { command } => {
            let dirs = match &command {
                crate::cli::admin::AuditCommand::List { dirs, .. }
                | crate::cli::admin::AuditCommand::Verify { dirs, .. } => dirs.clone(),
            };
            let (store, _, _) = dirs.open_store()?;
            crate::cli::admin::audit(&*store, command)
        }
        Command::Staff { command } => run_staff(command),
        Command::Calendar { command } => run_calendar(command),
        Command::Leave { command } => run_leave(command),
        Command::Verdicts {
            command:
                VerdictsCommand::Recompute {
                    dirs,
                    from,
                    to,
                    now,
                },
        } => {
            let (store, rules, _) = open_with_rules(&dirs)?;
            let now = now.unwrap_or_else(crate::clock::now);
            let n = match (from, to) {
                (Some(from), Some(to)) => {
                    crate::verdicts::recompute_range(&*store, &rules, from, to, now)?
                }
                _ => crate::verdicts::recompute_dirty(&*store, &rules, now)?,
            };
            crate::cli::admin::record(
                &*store,
                "verdicts.recompute",
                &match (from, to) {
                    (Some(f), Some(t)) => format!("{f}..{t}"),
                    _ => "dirty days".into(),
                },
                serde_json::json!({ "verdicts": n, "now": now.to_string() }),
            )?;
            println!("Recomputed {n} day verdicts.");
            Ok(())
        }
        Command::Report {
            command:
                ReportCommand::Daily {
                    dirs,
                    date,
                    department,
                    format,
                    out,
                    now,
                },
        } => {
            let (store, rules, _) = open_with_rules(&dirs)?;
            crate::reports::daily::run_cli(
                &*store,
                &rules,
                date,
                department.as_deref(),
                format.into(),
                out.as_deref(),
                now,
            )
        }
        Command::Report {
            command: ReportCommand::Summary(args),
        } => {
            let (store, rules, _) = open_with_rules(&args.dirs)?;
            let request = crate::reports::summary::SummaryRequest {
                from: args.from,
                to: args.to,
                by: args.by.into(),
                department: args.department,
                format: args.format.into(),
                out: args.out,
                now: args.now,
            };
            crate::reports::summary::run_cli(&*store, &rules, request)
        }
        Command::Report {
            command:
                ReportCommand::Monthly {
                    dirs,
                    month,
                    department,
                    format,
                    out,
                    now,
                },
        } => {
            let (store, rules, config) = open_with_rules(&dirs)?;
            let first: jiff::civil::Date = format!("{month}-01")
                .parse()
                .map_err(|_| anyhow::anyhow!("--month {month:?}: expected a month, YYYY-MM"))?;
            let people: Vec<crate::attendance::Person> = store
                .staff()?
                .into_iter()
                .filter(|p| department.as_ref().is_none_or(|d| &p.department == d))
                .collect();
            if let Some(d) = &department {
                anyhow::ensure!(
                    !people.is_empty(),
                    "--department {d:?}: nobody in the staff directory is in it"
                );
            }
            let now = now.unwrap_or_else(crate::clock::now);
            let sheet = crate::reports::monthly::build(
                &*store,
                &rules,
                first,
                department.as_deref(),
                &people,
                now,
            )?;
            let names = crate::requests::leave_types(&config.requests);
            let name = |code: &str| {
                names
                    .iter()
                    .find(|(c, _, _)| c == code)
                    .map_or_else(|| code.to_owned(), |(_, zh, _)| zh.clone())
            };
            crate::cli::admin::record(
                &*store,
                "report.export",
                department.as_deref().unwrap_or("*"),
                serde_json::json!({ "what": format!("monthly sheet {month} {format}") }),
            )?;
            crate::reports::write_output(out.as_deref(), format == "xlsx", |w| {
                if format == "xlsx" {
                    let title = crate::reports::monthly::title(&sheet);
                    w.write_all(&crate::reports::monthly::to_xlsx(&sheet, &title, &name)?)?;
                } else {
                    serde_json::to_writer_pretty(&mut *w, &sheet)?;
                    writeln!(w)?;
                }
                Ok(())
            })
        }
        Command::Notify { command } => run_notify(command),
        Command::User { command } => users::run_cli(command),
        Command::CheckConfig { dirs } => {
            let (config, data_dir) = dirs.resolve()?;
            let rules = crate::verdicts::Rules::from_config(&config)?;
            println!(
                "configuration is valid: {}",
                dirs.config.as_deref().map_or_else(
                    || "(none: the defaults)".to_owned(),
                    |p| p.display().to_string()
                )
            );
            println!("data dir: {}", data_dir.display());
            println!(
                "store: {}",
                match &config.storage.url {
                    Some(u) => crate::store::pg::redact(u),
                    None => data_dir
                        .join(crate::store::sqlite::DB_FILE)
                        .display()
                        .to_string(),
                }
            );
            println!(
                "grpc: {}; pages: {}",
                config.server.grpc,
                config
                    .server
                    .http
                    .map_or_else(|| "off".to_owned(), |a| a.to_string())
            );
            println!(
                "time zone: {}",
                rules.settings.time_zone.iana_name().unwrap_or("?")
            );
            Ok(())
        }
        Command::Backup { dirs, out } => {
            let (config, data_dir) = dirs.resolve()?;
            anyhow::ensure!(
                config.storage.url.is_none(),
                "the store is PostgreSQL: back it up with pg_dump or a base backup (docs/operations.md)"
            );
            let db = data_dir.join(crate::store::sqlite::DB_FILE);
            anyhow::ensure!(
                db.exists(),
                "no {} in {}",
                crate::store::sqlite::DB_FILE,
                data_dir.display()
            );
            let rules = crate::verdicts::Rules::from_config(&config)?;
            let store = crate::store::sqlite::SqliteStore::open_with(&data_dir, &rules.settings)?;
            let bytes = store.backup_to(&out)?;
            println!(
                "backed up {} to {} ({bytes} bytes)",
                db.display(),
                out.display()
            );
            Ok(())
        }
        Command::Restore { dirs, from } => {
            let (config, data_dir) = dirs.resolve()?;
            anyhow::ensure!(
                config.storage.url.is_none(),
                "the store is PostgreSQL: restore it with pg_restore or from a base backup (docs/operations.md)"
            );
            let kept = crate::store::sqlite::restore(&data_dir, &from, crate::clock::now_ms())?;
            // Opened once: an older backup is brought up to this collector's schema.
            let rules = crate::verdicts::Rules::from_config(&config)?;
            let store = crate::store::sqlite::SqliteStore::open_with(&data_dir, &rules.settings)?;
            let (events, _) = store.count_events()?;
            println!(
                "restored {} into {} ({events} events)",
                from.display(),
                data_dir.join(crate::store::sqlite::DB_FILE).display()
            );
            if let Some(k) = kept {
                println!("the database it replaced is kept as {}", k.display());
            }
            match store.audit_verify()? {
                crate::audit::Verification::Intact { records, .. } => {
                    println!("audit chain: {records} records, intact")
                }
                other => anyhow::bail!("the restored audit chain is not intact: {other:?}"),
            }
            Ok(())
        }
        Command::Migrate { from, to } => {
            init_logging(log_format);
            let db = from.join(crate::store::sqlite::DB_FILE);
            anyhow::ensure!(
                db.exists(),
                "--from {}: no {} there",
                from.display(),
                crate::store::sqlite::DB_FILE
            );
            let settings = crate::attendance::Settings::default();
            let source = crate::store::sqlite::SqliteStore::open_with(&from, &settings)?;
            let crate::store::Opened::Postgres(target) =
                crate::store::open(&from, Some(&to), &settings)?
            else {
                anyhow::bail!("--to: expected postgres://user:password@host:port/database");
            };
            let before = source.audit_verify()?;
            let counts = source.migrate_to(&target)?;
            let total: u64 = counts.iter().map(|(_, n)| n).sum();
            println!(
                "migrated {total} rows from {} to {}:",
                db.display(),
                target.at()
            );
            for (table, n) in &counts {
                println!("  {table:<22} {n:>10}");
            }
            match (before, target.audit_verify()?) {
                (
                    crate::audit::Verification::Intact { head: a, records },
                    crate::audit::Verification::Intact { head: b, .. },
                ) if a == b => {
                    println!("audit chain: {records} records, head {b}, as in the SQLite file")
                }
                (_, after) => anyhow::bail!("the audit chain did not come over intact: {after:?}"),
            }
            Ok(())
        }
        Command::Events {
            command: Some(EventsCommand::Prune { dirs, before }),
            ..
        } => {
            let before: jiff::civil::Date = format!("{before}-01")
                .parse()
                .map_err(|_| anyhow::anyhow!("--before {before:?}: expected a month, YYYY-MM"))?;
            let (store, rules, _) = dirs.open_store()?;
            let now = crate::clock::now();
            let today = rules.settings.time_zone.to_datetime(now).date();
            crate::store::retention::check_before(before, today)?;
            let pruned =
                store.prune_events(before, &crate::audit::cli_actor(), now.as_millisecond())?;
            println!(
                "dropped {} events and {} batches before {}; verdicts before {} are frozen",
                pruned.events,
                pruned.batches,
                before.strftime("%Y-%m"),
                crate::store::retention::frozen_before(before)
            );
            Ok(())
        }
        Command::Events {
            command: None,
            dirs,
            agent,
            format: _,
        } => {
            let (store, _, _) = dirs.open_store()?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            store.for_each_event(agent.as_deref(), &mut |e| {
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
    #[allow(unused_imports)]
    use crate::store::concerns::*;

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

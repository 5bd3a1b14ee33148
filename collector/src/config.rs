//! The collector's configuration file (`collector.example.toml` documents every
//! setting). Every setting has a safe default, so an empty file is valid.
//! Unknown keys are errors; all problems are reported at once.

use kaoqin_proto::v1 as pb;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub agents: AgentPolicy,
    pub attendance: AttendanceConfig,
    pub appeals: AppealsConfig,
    pub requests: RequestsConfig,
    pub notify: NotifyConfig,
    pub auth: AuthConfig,
    pub storage: StorageConfig,
    pub metrics: MetricsConfig,
}

/// `[metrics]`: who may read `/metrics` on the pages' address besides loopback.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Networks (`10.1.0.0/16`) or addresses whose scrapers may read it.
    pub allow: Vec<String>,
    /// A bearer token that lets any address read it (`Authorization: Bearer`).
    pub token: Option<String>,
}

impl MetricsConfig {
    /// The `allow` networks, parsed.
    pub fn networks(&self) -> Vec<ipnet::IpNet> {
        self.allow
            .iter()
            .filter_map(|n| parse_net(n).ok())
            .collect()
    }

    fn validate(&self, problems: &mut Vec<String>) {
        for n in &self.allow {
            if let Err(e) = parse_net(n) {
                problems.push(format!(
                    "metrics.allow: {n:?} is not a network such as 10.1.0.0/16 or an address ({e})"
                ));
            }
        }
        if self.token.as_deref().is_some_and(|t| t.len() < 16) {
            problems.push("metrics.token: use at least 16 characters".into());
        }
    }
}

/// A network, or one address as a network of one.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|e| e.to_string())
}

/// `[auth]`: how people sign in besides kaoqin's own accounts.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Sign-in with the office directory (LDAP, Active Directory).
    pub ldap: Option<LdapConfig>,
}

/// `[auth.ldap]` (docs/directory.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// The service account that searches; none: anonymous.
    #[serde(default)]
    pub bind_dn: Option<String>,
    #[serde(default)]
    pub bind_password: Option<String>,
    /// Where people are: `ou=people,dc=office,dc=example`.
    pub user_base: String,
    /// How to find the one signing in; `{username}` is replaced (escaped):
    /// `(uid={username})`, or `(sAMAccountName={username})` on Active Directory.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// People to import with `staff sync-ldap`.
    #[serde(default = "default_sync_filter")]
    pub sync_filter: String,
    /// A person matching this filter may not sign in: `(employeeType=disabled)`,
    /// or on Active Directory `(userAccountControl:1.2.840.113556.1.4.803:=2)`.
    #[serde(default)]
    pub disabled_filter: Option<String>,
    /// Where groups are, when membership is searched there (besides `memberOf`).
    #[serde(default)]
    pub group_base: Option<String>,
    /// How to find someone's groups; `{dn}` and `{username}` are replaced.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Group (its DN or its cn) to role: admin, officer, dept_head or staff. A
    /// person in none of them may not sign in; in several, the highest counts.
    pub roles: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_employee_id_attribute")]
    pub employee_id_attribute: String,
    #[serde(default = "default_email_attribute")]
    pub email_attribute: String,
    #[serde(default = "default_name_attribute")]
    pub name_attribute: String,
    #[serde(default = "default_department_attribute")]
    pub department_attribute: String,
    /// The OS account name (`uid`, `sAMAccountName`), for `staff sync-ldap`.
    #[serde(default = "default_account_attribute")]
    pub account_attribute: String,
    /// When `serve` runs `staff sync-ldap` every day, local time; none: never.
    #[serde(default)]
    pub sync_at: Option<String>,
}

fn default_user_filter() -> String {
    "(uid={username})".into()
}
fn default_sync_filter() -> String {
    "(objectClass=inetOrgPerson)".into()
}
fn default_group_filter() -> String {
    "(|(member={dn})(uniqueMember={dn})(memberUid={username}))".into()
}
fn default_employee_id_attribute() -> String {
    "employeeNumber".into()
}
fn default_email_attribute() -> String {
    "mail".into()
}
fn default_name_attribute() -> String {
    "cn".into()
}
fn default_department_attribute() -> String {
    "ou".into()
}
fn default_account_attribute() -> String {
    "uid".into()
}

impl AuthConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        let Some(l) = &self.ldap else { return };
        if !(l.url.starts_with("ldap://") || l.url.starts_with("ldaps://")) {
            problems.push(format!(
                "auth.ldap.url = {:?}: ldap://host:389 or ldaps://host:636",
                l.url
            ));
        }
        if l.bind_dn.is_some() != l.bind_password.is_some() {
            problems.push(
                "auth.ldap: give bind_dn and bind_password together (or neither: anonymous)".into(),
            );
        }
        if !l.user_filter.contains("{username}") {
            problems.push(format!(
                "auth.ldap.user_filter = {:?}: must contain {{username}}",
                l.user_filter
            ));
        }
        if l.roles.is_empty() {
            problems.push(
                "auth.ldap.roles: map at least one group to a role (nobody could sign in)".into(),
            );
        }
        for (group, role) in &l.roles {
            if crate::users::Role::parse(role).is_none() {
                problems.push(format!(
                    "auth.ldap.roles.{group:?} = {role:?}: admin, officer, dept_head or staff"
                ));
            }
        }
        if let Some(t) = &l.sync_at
            && crate::notify::parse_time(t).is_none()
        {
            problems.push(format!(
                "auth.ldap.sync_at = {t:?}: a local time such as \"02:00\""
            ));
        }
    }
}

/// `[notify]`: daily messages by e-mail and chat-group robots (`crate::notify`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// When `serve` sends the previous working day's messages, local time, on
    /// working days only.
    pub daily_at: String,
    /// The language of the messages: `zh` or `en`.
    pub language: String,
    /// The address of the pages, for the links in messages
    /// (`https://kaoqin.office.example`); none: no links.
    pub base_url: String,
    /// E-mail over SMTP; none: no e-mail.
    pub email: Option<EmailConfig>,
    /// Chat-group robots.
    pub webhook: Vec<WebhookConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            daily_at: "09:30".into(),
            language: "zh".into(),
            base_url: String::new(),
            email: None,
            webhook: Vec::new(),
        }
    }
}

/// `[notify.email]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The mail server, `host:port`.
    pub smtp: String,
    /// The sender, `kaoqin <kaoqin@office.example>`.
    pub from: String,
    /// Upgrade the connection with STARTTLS (required when set).
    #[serde(default)]
    pub starttls: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// One `[[notify.webhook]]`: a chat-group robot.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The robot's address (with its access token).
    pub url: String,
    /// `dingtalk`, `wecom` or `json`.
    pub format: String,
    /// `text` or `markdown` (DingTalk and WeCom).
    #[serde(default = "markdown")]
    pub msgtype: String,
    /// DingTalk's signing secret (`SEC...`): the URL gets `timestamp` and `sign`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Only this department's digest; none: the whole office's.
    #[serde(default)]
    pub department: Option<String>,
}

fn markdown() -> String {
    "markdown".into()
}

impl NotifyConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if crate::notify::parse_time(&self.daily_at).is_none() {
            problems.push(format!(
                "notify.daily_at = {:?}: a local time such as \"09:30\"",
                self.daily_at
            ));
        }
        if !matches!(self.language.as_str(), "zh" | "en") {
            problems.push(format!("notify.language = {:?}: zh or en", self.language));
        }
        if let Some(e) = &self.email {
            if e.smtp
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                problems.push(format!("notify.email.smtp = {:?}: host:port", e.smtp));
            }
            if e.from.parse::<lettre::message::Mailbox>().is_err() {
                problems.push(format!(
                    "notify.email.from = {:?}: an address such as \"kaoqin <kaoqin@office.example>\"",
                    e.from
                ));
            }
        }
        for (i, w) in self.webhook.iter().enumerate() {
            if !matches!(w.format.as_str(), "dingtalk" | "wecom" | "json") {
                problems.push(format!(
                    "notify.webhook {} format = {:?}: dingtalk, wecom or json",
                    i + 1,
                    w.format
                ));
            }
            if !matches!(w.msgtype.as_str(), "text" | "markdown") {
                problems.push(format!(
                    "notify.webhook {} msgtype = {:?}: text or markdown",
                    i + 1,
                    w.msgtype
                ));
            }
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                problems.push(format!(
                    "notify.webhook {} url = {:?}: an http(s) address",
                    i + 1,
                    w.url
                ));
            }
        }
    }
}

/// `[requests]`: leave, field work, trips, overtime and missed punches.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RequestsConfig {
    /// Days back a missed punch may be asked for.
    pub missed_punch_days: u32,
    /// Missed-punch requests one person may have pending or approved per month.
    pub missed_punch_per_month: u32,
    /// Leave types a request may take only within the person's imported balance
    /// for the year (`leave balance import`); the others are not counted.
    pub balance_types: Vec<String>,
    /// The office's own leave types beside the built-in ones.
    pub leave_types: Vec<LeaveTypeConfig>,
    /// Requests that need a second decision, by an officer, after the
    /// department head's.
    pub second_approval: Vec<SecondApproval>,
}

impl Default for RequestsConfig {
    fn default() -> Self {
        RequestsConfig {
            missed_punch_days: 7,
            missed_punch_per_month: 3,
            balance_types: vec!["annual".into(), "compensatory".into()],
            leave_types: Vec::new(),
            second_approval: vec![SecondApproval {
                kind: "leave".into(),
                over_days: 3,
            }],
        }
    }
}

/// One of the office's own leave types.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LeaveTypeConfig {
    /// The stable code (`family_visit`): letters, digits and `_`.
    pub code: String,
    /// Its name in Chinese (探亲假).
    pub zh: String,
    /// Its name in English.
    pub en: String,
}

/// A kind of request (`leave`, `field`, `business_trip`, `overtime`,
/// `missed_punch`) that needs an officer's decision too when longer than
/// `over_days` days (0: always).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecondApproval {
    pub kind: String,
    pub over_days: u32,
}

/// Where the collector keeps its data.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `postgres://user:pass@host:port/db` for PostgreSQL; unset, the embedded
    /// SQLite file in the data dir. `--database` and `KAOQIN_DATABASE` win over it.
    pub url: Option<String>,
}

/// What staff may appeal.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AppealsConfig {
    /// Days back an appeal may concern (none in the future).
    pub window_days: u32,
    /// Open appeals one person may have at once.
    pub max_open: u32,
}

impl Default for AppealsConfig {
    fn default() -> Self {
        AppealsConfig {
            window_days: 31,
            max_open: 10,
        }
    }
}

/// How attendance is judged (the time zone is `server.time_zone`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AttendanceConfig {
    /// When one attendance day ends and the next begins, local time ("04:00").
    pub day_boundary: String,
    /// A PC clock off by at least this many minutes is recorded as evidence.
    pub large_offset_minutes: u32,
    /// How often `serve` recomputes the verdicts of days with new events.
    pub recompute_seconds: u32,
    /// Schedules in a separate TOML file (the shape of `[attendance.schedules]`).
    pub schedules_file: Option<PathBuf>,
    /// Office and department schedules; none: the built-in default day.
    pub schedules: Option<crate::attendance::ScheduleSet>,
    /// The office's own calendar days (a closure day, an extra holiday).
    pub calendar_override: Vec<CalendarOverride>,
    /// How 旷工 and overtime are counted (`[attendance.rules]`).
    pub rules: CountingConfig,
}

/// `[attendance.rules]`: the office's counting rules (docs/attendance-rules.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CountingConfig {
    /// Late or early by more than this many minutes is half a day of 旷工.
    pub absenteeism_after_minutes: u32,
    /// Overtime counts in stretches of at least this many minutes.
    pub overtime_min_block_minutes: u32,
    /// Overtime minutes are rounded down to a multiple of this (1: exact).
    pub overtime_round_minutes: u32,
    /// Overtime counts only inside an approved overtime request.
    pub overtime_needs_request: bool,
}

impl Default for CountingConfig {
    fn default() -> Self {
        let d = crate::attendance::OfficeRules::default();
        CountingConfig {
            absenteeism_after_minutes: d.absenteeism_after_minutes,
            overtime_min_block_minutes: d.overtime_min_block_minutes,
            overtime_round_minutes: d.overtime_round_minutes,
            overtime_needs_request: d.overtime_needs_request,
        }
    }
}

impl Default for AttendanceConfig {
    fn default() -> Self {
        AttendanceConfig {
            day_boundary: "04:00".into(),
            large_offset_minutes: 1,
            recompute_seconds: 60,
            schedules_file: None,
            schedules: None,
            calendar_override: Vec::new(),
            rules: CountingConfig::default(),
        }
    }
}

/// One office calendar day.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CalendarOverride {
    /// The date, as a TOML date (2026-12-31) or a string ("2026-12-31").
    pub date: DateText,
    /// `workday`, `rest`, `holiday` or `makeup_workday`.
    pub kind: crate::attendance::DayKind,
    /// Why (shown as the day's note).
    #[serde(default)]
    pub note: String,
}

/// A date written as a TOML date or a string; checked by [`Config::parse`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DateText {
    Toml(toml::value::Datetime),
    Str(String),
}

impl DateText {
    /// The civil date it names.
    pub fn date(&self) -> Result<jiff::civil::Date, String> {
        let text = match self {
            DateText::Toml(d) => d.to_string(),
            DateText::Str(s) => s.clone(),
        };
        text.parse()
            .map_err(|e| format!("{text:?} is not a date such as 2026-12-31: {e}"))
    }
}

impl AttendanceConfig {
    /// The day boundary as a time of day.
    pub fn boundary(&self) -> Result<jiff::civil::Time, String> {
        self.day_boundary
            .parse::<jiff::civil::Time>()
            .map_err(|e| format!("{:?}: {e}", self.day_boundary))
    }

    fn validate(&self, problems: &mut Vec<String>) {
        match self.boundary() {
            Ok(t) if t <= jiff::civil::time(12, 0, 0, 0) => {}
            Ok(_) => problems.push(format!(
                "attendance.day_boundary = {:?}: must be between 00:00 and 12:00",
                self.day_boundary
            )),
            Err(e) => problems.push(format!("attendance.day_boundary = {e}")),
        }
        if !(1..=1440).contains(&self.large_offset_minutes) {
            problems.push(format!(
                "attendance.large_offset_minutes = {}: must be between 1 and 1440",
                self.large_offset_minutes
            ));
        }
        if !(5..=86_400).contains(&self.recompute_seconds) {
            problems.push(format!(
                "attendance.recompute_seconds = {}: must be between 5 and 86400",
                self.recompute_seconds
            ));
        }
        if self.schedules.is_some() && self.schedules_file.is_some() {
            problems.push(
                "attendance.schedules and attendance.schedules_file: give one or the other".into(),
            );
        }
        for (i, o) in self.calendar_override.iter().enumerate() {
            if let Err(e) = o.date.date() {
                problems.push(format!("attendance.calendar_override {}: date {e}", i + 1));
            }
        }
    }
}

/// Where the collector listens and keeps its data.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC address for agents and scripts.
    pub grpc: SocketAddr,
    /// The data directory (database, TLS material).
    pub data_dir: PathBuf,
    /// The office's time zone (IANA name).
    pub time_zone: String,
    /// Serve gRPC without TLS when no certificate is in place. For a lab only:
    /// enrolment tokens and agent keys then cross the network in the clear.
    pub plaintext: bool,
    /// Address of the web pages (officer dashboard, staff self-service); none:
    /// no web pages unless `serve --http` is given.
    pub http: Option<SocketAddr>,
    /// Take events from before an agent's enrolment, or earlier than what it
    /// stored, from agents that replay a scripted day. For labs, demos and tests
    /// only: in production a stolen agent key could then write history.
    pub allow_replay: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            grpc: SocketAddr::from(([0, 0, 0, 0], 50051)),
            data_dir: PathBuf::from("kaoqin-data"),
            time_zone: "Asia/Shanghai".into(),
            plaintext: false,
            http: None,
            allow_replay: false,
        }
    }
}

/// One category rule as the office writes it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    pub category: String,
    #[serde(default)]
    pub process_patterns: Vec<String>,
    #[serde(default)]
    pub title_patterns: Vec<String>,
}

/// What agents are told by GetPolicy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentPolicy {
    pub heartbeat_seconds: u32,
    pub sample_seconds: u32,
    pub usage_interval_seconds: u32,
    pub idle_threshold_seconds: u32,
    /// The office's category rules, first match wins. Empty: agents use their
    /// built-in rules.
    #[serde(rename = "category")]
    pub categories: Vec<CategoryRule>,
    /// Reports one agent may send per second on average (0: no limit); more are
    /// answered ResourceExhausted. Not sent to agents.
    pub report_rate_per_second: u32,
    /// Reports one agent may send at once above the average rate.
    pub report_burst: u32,
    /// Reports the collector handles at once, all agents together; more are
    /// answered Unavailable so agents back off. Not sent to agents.
    pub max_reports_in_flight: u32,
    /// Enrolments one source address may make per minute on average (0: no
    /// limit); more are answered ResourceExhausted. Not sent to agents.
    pub enroll_rate_per_minute: u32,
    /// Enrolments one source address may make at once above the average rate.
    pub enroll_burst: u32,
}

impl Default for AgentPolicy {
    fn default() -> Self {
        AgentPolicy {
            heartbeat_seconds: 60,
            sample_seconds: 15,
            usage_interval_seconds: 300,
            idle_threshold_seconds: 300,
            categories: Vec::new(),
            report_rate_per_second: 100,
            report_burst: 200,
            max_reports_in_flight: 256,
            enroll_rate_per_minute: 60,
            enroll_burst: 20,
        }
    }
}

impl AgentPolicy {
    /// The policy as sent to agents; its version is derived from its content, so
    /// agents notice any change.
    pub fn to_proto(&self) -> pb::Policy {
        let mut p = pb::Policy {
            version: 0,
            rules: self
                .categories
                .iter()
                .map(|r| pb::CategoryRule {
                    category: r.category.clone(),
                    process_patterns: r.process_patterns.clone(),
                    title_patterns: r.title_patterns.clone(),
                })
                .collect(),
            heartbeat_seconds: self.heartbeat_seconds,
            sample_seconds: self.sample_seconds,
            usage_interval_seconds: self.usage_interval_seconds,
            idle_threshold_seconds: self.idle_threshold_seconds,
        };
        use prost::Message;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(p.encode_to_vec());
        let mut v = [0u8; 8];
        v.copy_from_slice(&digest[..8]);
        p.version = u64::from_be_bytes(v) >> 1 | 1;
        p
    }

    fn validate(&self, problems: &mut Vec<String>) {
        kaoqin_proto::limits::check_intervals(
            "agents",
            [
                self.heartbeat_seconds,
                self.sample_seconds,
                self.usage_interval_seconds,
                self.idle_threshold_seconds,
            ],
            problems,
        );
        if self.report_rate_per_second > 0 && !(1..=100_000).contains(&self.report_burst) {
            problems.push(format!(
                "agents.report_burst = {}: must be between 1 and 100000",
                self.report_burst
            ));
        }
        if self.enroll_rate_per_minute > 0 && !(1..=100_000).contains(&self.enroll_burst) {
            problems.push(format!(
                "agents.enroll_burst = {}: must be between 1 and 100000",
                self.enroll_burst
            ));
        }
        if !(1..=100_000).contains(&self.max_reports_in_flight) {
            problems.push(format!(
                "agents.max_reports_in_flight = {}: must be between 1 and 100000",
                self.max_reports_in_flight
            ));
        }
        for (i, r) in self.categories.iter().enumerate() {
            let ok = r.category.len() <= 32
                && r.category.starts_with(|c: char| c.is_ascii_lowercase())
                && r.category
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                problems.push(format!(
                    "category rule {} ({:?}): the name must be lower-case letters, digits and _ (at most 32)",
                    i + 1,
                    r.category
                ));
            }
            if r.process_patterns.is_empty() && r.title_patterns.is_empty() {
                problems.push(format!(
                    "category rule {} ({}): has neither process_patterns nor title_patterns",
                    i + 1,
                    r.category
                ));
            }
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut problems = Vec::new();
        config.agents.validate(&mut problems);
        config.attendance.validate(&mut problems);
        config.notify.validate(&mut problems);
        config.auth.validate(&mut problems);
        config.metrics.validate(&mut problems);
        if jiff::tz::TimeZone::get(&config.server.time_zone).is_err() {
            problems.push(format!(
                "server.time_zone = {:?}: not a known IANA time zone",
                config.server.time_zone
            ));
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults_where_uncommented() {
        let text = include_str!("../collector.example.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c, Config::default());
        // The commented-out category rules are valid when uncommented.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with("[[agents.category]]")
                        || rest.contains("_patterns")
                        || rest.starts_with("category") =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&uncommented).unwrap();
        assert_eq!(c.agents.categories.len(), 2);
        // So are the commented-out attendance settings.
        let attendance: String = text
            .lines()
            .skip_while(|l| !l.starts_with("[attendance]"))
            .filter_map(|l| {
                let rest = l.strip_prefix("# ").unwrap_or(l);
                let setting = rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
                (rest.starts_with('[') || (setting && !rest.starts_with("schedules_file")))
                    .then_some(rest)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&attendance).unwrap_or_else(|e| panic!("{e}\n{attendance}"));
        assert_eq!(c.attendance.calendar_override.len(), 1);
        // And those of the sections after it.
        assert_eq!(c.notify.webhook.len(), 1);
        assert_eq!(c.auth.ldap.as_ref().map(|l| l.roles.len()), Some(3));
        assert_eq!(c.requests.second_approval.len(), 1);
        let schedules = c.attendance.schedules.unwrap();
        assert_ne!(schedules, crate::attendance::ScheduleSet::default());
    }

    #[test]
    fn attendance_problems_are_named() {
        let err = Config::parse(
            "[attendance]\nday_boundary = \"13:00\"\nlarge_offset_minutes = 0\nschedules_file = \"s.toml\"\n[attendance.schedules]\n[[attendance.calendar_override]]\ndate = \"2026-02-30\"\nkind = \"holiday\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("attendance.day_boundary"), "{err}");
        assert!(err.contains("attendance.large_offset_minutes"), "{err}");
        assert!(err.contains("schedules_file"), "{err}");
        assert!(err.contains("calendar_override 1"), "{err}");
    }

    #[test]
    fn empty_config_is_the_default() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::parse(
            "[agents]\nheartbeat_seconds = 1\nsample_seconds = 0\n[[agents.category]]\ncategory = \"Bad Name\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("agents.heartbeat_seconds = 1"), "{err}");
        assert!(err.contains("agents.sample_seconds = 0"), "{err}");
        assert!(err.contains("category rule 1"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[server]\ngrcp = \"1.2.3.4:5\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("grcp"), "{err}");
    }

    #[test]
    fn policy_version_follows_content() {
        let a = AgentPolicy::default();
        let mut b = a.clone();
        b.heartbeat_seconds = 120;
        assert_ne!(a.to_proto().version, b.to_proto().version);
        assert_eq!(
            a.to_proto().version,
            AgentPolicy::default().to_proto().version
        );
        assert_ne!(a.to_proto().version, 0);
    }
}

//! The agent's configuration file (`agent.example.toml` documents every setting).
//! Every setting has a safe default, so the agent runs with no file at all.
//! Unknown keys are errors, and every problem is reported at once.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where enrolment state and the spool live (overridden by `--state-dir`).
    pub state_dir: Option<PathBuf>,
    pub spool: SpoolConfig,
    pub uplink: UplinkConfig,
    pub sampling: SamplingConfig,
    pub probe: ProbeConfig,
}

/// The durable outbox.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Upper bound of the spool file; when full the oldest events are dropped and
    /// a data-gap event says how many.
    pub max_mib: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig { max_mib: 64 }
    }
}

/// Delivery to the collector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UplinkConfig {
    /// The most events in one Report.
    pub batch_max_events: usize,
    /// The most encoded bytes in one Report.
    pub batch_max_bytes: usize,
    /// Deadline of every call to the collector.
    pub call_timeout_seconds: u64,
    /// First and longest wait between failed attempts (exponential, with jitter).
    pub backoff_min_seconds: u64,
    pub backoff_max_seconds: u64,
    /// Close the connection once everything is delivered, and open a new one for
    /// the next Report. A collector serving thousands of PCs then holds memory for
    /// the connections in use, not for every PC (about 24 KiB each).
    pub close_when_idle: bool,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            batch_max_events: 500,
            batch_max_bytes: 512 * 1024,
            call_timeout_seconds: 15,
            backoff_min_seconds: 1,
            backoff_max_seconds: 300,
            close_when_idle: true,
        }
    }
}

/// How often the agent looks and reports, until the collector's policy says
/// otherwise.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    pub heartbeat_seconds: u32,
    pub sample_seconds: u32,
    pub usage_interval_seconds: u32,
    pub idle_threshold_seconds: u32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            heartbeat_seconds: 60,
            sample_seconds: 15,
            usage_interval_seconds: 300,
            idle_threshold_seconds: 300,
        }
    }
}

/// Which sources the live probe may use.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Lock and idle state from systemd-logind over the system D-Bus (Linux).
    pub dbus: bool,
    /// Idle time and the foreground window from X11: `$DISPLAY`, or for a service
    /// the display the desktop session's processes name.
    pub x11: bool,
    /// Try to find the foreground application; otherwise running applications.
    pub foreground: bool,
    /// The utmp file listing who is logged on (default /var/run/utmp).
    pub utmp: Option<PathBuf>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            dbus: true,
            x11: true,
            foreground: true,
            utmp: None,
        }
    }
}

impl SamplingConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        kaoqin_proto::limits::check_intervals(
            "sampling",
            [
                self.heartbeat_seconds,
                self.sample_seconds,
                self.usage_interval_seconds,
                self.idle_threshold_seconds,
            ],
            problems,
        );
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
        let c: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut problems = Vec::new();
        c.sampling.validate(&mut problems);
        if !(1..=16 * 1024).contains(&c.spool.max_mib) {
            problems.push(format!(
                "spool.max_mib = {}: must be between 1 and 16384",
                c.spool.max_mib
            ));
        }
        if !(1..=5000).contains(&c.uplink.batch_max_events) {
            problems.push(format!(
                "uplink.batch_max_events = {}: must be between 1 and 5000",
                c.uplink.batch_max_events
            ));
        }
        if !(1024..=3 * 1024 * 1024).contains(&c.uplink.batch_max_bytes) {
            problems.push(format!(
                "uplink.batch_max_bytes = {}: must be between 1024 and 3145728",
                c.uplink.batch_max_bytes
            ));
        }
        if !(1..=300).contains(&c.uplink.call_timeout_seconds) {
            problems.push(format!(
                "uplink.call_timeout_seconds = {}: must be between 1 and 300",
                c.uplink.call_timeout_seconds
            ));
        }
        if c.uplink.backoff_min_seconds == 0
            || c.uplink.backoff_min_seconds > c.uplink.backoff_max_seconds
        {
            problems.push(format!(
                "uplink.backoff_min_seconds = {}: must be at least 1 and at most backoff_max_seconds ({})",
                c.uplink.backoff_min_seconds, c.uplink.backoff_max_seconds
            ));
        }
        if problems.is_empty() {
            Ok(c)
        } else {
            anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "))
        }
    }

    /// The state directory: the flag, else the config, else the platform default.
    pub fn state_dir(&self, flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| self.state_dir.clone())
            .unwrap_or_else(default_state_dir)
    }
}

/// `/var/lib/kaoqin-agent` on Linux; on Windows `kaoqin` in the machine's
/// ProgramData folder as Windows names it (the known folder, not the
/// `ProgramData` variable of the environment the agent was started in, so the
/// service and an administrator's shell find the same state).
pub fn default_state_dir() -> PathBuf {
    #[cfg(windows)]
    {
        crate::probe::windows::program_data()
            .or_else(|| std::env::var_os("ProgramData").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("C:\\ProgramData"))
            .join("kaoqin")
    }
    #[cfg(not(windows))]
    PathBuf::from("/var/lib/kaoqin-agent")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_valid_and_says_the_defaults() {
        let c = Config::parse(include_str!("../agent.example.toml")).unwrap();
        assert_eq!(c.sampling, SamplingConfig::default());
        assert_eq!(c.uplink, UplinkConfig::default());
        assert_eq!(c.spool, SpoolConfig::default());
        assert_eq!(c.probe, ProbeConfig::default());
    }

    #[test]
    fn empty_config_is_the_default() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn all_problems_are_reported_with_their_names() {
        let err = Config::parse("[sampling]\nsample_seconds = 0\n[spool]\nmax_mib = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sampling.sample_seconds = 0"), "{err}");
        assert!(err.contains("spool.max_mib = 0"), "{err}");
        let err = Config::parse("[uplink]\nbatch = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch"), "{err}");
    }
}

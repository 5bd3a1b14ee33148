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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            grpc: SocketAddr::from(([0, 0, 0, 0], 50051)),
            data_dir: PathBuf::from("kaoqin-data"),
            time_zone: "Asia/Shanghai".into(),
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
}

impl Default for AgentPolicy {
    fn default() -> Self {
        AgentPolicy {
            heartbeat_seconds: 60,
            sample_seconds: 15,
            usage_interval_seconds: 300,
            idle_threshold_seconds: 300,
            categories: Vec::new(),
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
        let ranges = [
            ("agents.heartbeat_seconds", self.heartbeat_seconds, 10, 3600),
            ("agents.sample_seconds", self.sample_seconds, 1, 600),
            (
                "agents.usage_interval_seconds",
                self.usage_interval_seconds,
                60,
                3600,
            ),
            (
                "agents.idle_threshold_seconds",
                self.idle_threshold_seconds,
                30,
                7200,
            ),
        ];
        for (name, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                problems.push(format!("{name} = {v}: must be between {lo} and {hi}"));
            }
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

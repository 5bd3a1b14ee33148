//! What the collector counts for monitoring, served as `/metrics` in the
//! Prometheus text format on the pages' address (see docs/operations.md).
//!
//! Counters and histograms are kept in the process as things happen (Reports,
//! refusals, commits, failed logins); the figures that live in the store (agents
//! enrolled and heard from, integrity events, days waiting to be judged) are
//! read when the metrics are asked for.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

/// A refused call: which call, and the gRPC status it got.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Refusal {
    pub call: String,
    pub reason: String,
}

/// One label `state` or `kind`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Reports stored (answered with an acknowledgement).
    pub reports: Counter,
    /// Events newly stored (duplicates of what was stored before not counted).
    pub events: Counter,
    /// Calls refused, by call and status.
    pub refusals: Family<Refusal, Counter>,
    /// Time from a Report's arrival to its answer, in seconds.
    pub report_seconds: Histogram,
    /// Events per Report.
    pub batch_events: Histogram,
    /// Time a store commit of a group of Reports takes, in seconds.
    pub commit_seconds: Histogram,
    /// Failed logins to the pages.
    pub login_failures: Counter,
    /// Agents by state (`enrolled`, `seen_1h`, `silent_1h`, `revoked`), read at
    /// each scrape.
    pub agents: Family<Kind, Gauge>,
    /// Integrity events of the last 24 hours by kind, read at each scrape.
    pub integrity: Family<Kind, Gauge>,
    /// Staff-days waiting to be judged again, read at each scrape.
    pub recompute_queue: Gauge,
    /// 1 while the store answers, read at each scrape.
    pub store_up: Gauge,
    /// gRPC TLS handshakes by outcome: `full`, `resumed` (from a ticket or the
    /// session cache) and `failed` (including timed out).
    pub tls_handshakes: Family<Kind, Counter>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kaoqin");
        let m = Metrics {
            reports: Counter::default(),
            events: Counter::default(),
            refusals: Family::default(),
            // 0.25 ms .. about 4 s.
            report_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            // 1 .. 8192 events.
            batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            login_failures: Counter::default(),
            agents: Family::default(),
            integrity: Family::default(),
            recompute_queue: Gauge::default(),
            store_up: Gauge::default(),
            tls_handshakes: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "reports",
            "Reports stored and acknowledged",
            m.reports.clone(),
        );
        registry.register("events_stored", "Events newly stored", m.events.clone());
        registry.register(
            "refusals",
            "Calls refused, by call and gRPC status",
            m.refusals.clone(),
        );
        registry.register(
            "report_duration_seconds",
            "Time from a Report's arrival to its answer",
            m.report_seconds.clone(),
        );
        registry.register(
            "report_batch_events",
            "Events per Report",
            m.batch_events.clone(),
        );
        registry.register(
            "store_commit_duration_seconds",
            "Time one store commit of a group of Reports takes",
            m.commit_seconds.clone(),
        );
        registry.register(
            "login_failures",
            "Failed logins to the pages",
            m.login_failures.clone(),
        );
        registry.register(
            "agents",
            "Agents by state: enrolled (not revoked), seen_1h, silent_1h (enrolled, not heard from in the last hour), revoked",
            m.agents.clone(),
        );
        registry.register(
            "integrity_events_24h",
            "Integrity events of the last 24 hours by kind",
            m.integrity.clone(),
        );
        registry.register(
            "recompute_queue_depth",
            "Staff-days waiting to be judged again",
            m.recompute_queue.clone(),
        );
        registry.register("store_up", "1 while the store answers", m.store_up.clone());
        registry.register(
            "grpc_tls_handshakes",
            "gRPC TLS handshakes by outcome: full, resumed, failed",
            m.tls_handshakes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a refused call.
    pub fn refused(&self, call: &str, reason: &str) {
        self.refusals
            .get_or_create(&Refusal {
                call: call.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a gRPC TLS handshake by outcome (`full`, `resumed`, `failed`).
    pub fn tls_handshake(&self, kind: &str) {
        self.tls_handshakes
            .get_or_create(&Kind {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Everything in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Reads the store's figures into the gauges: agents by state, the last day's
/// integrity events by kind, the days waiting to be judged. A store that does not
/// answer sets `store_up` to 0 and leaves the rest as they were.
pub fn refresh(
    store: &dyn crate::store::Stores,
    large_offset_ms: i64,
    now_ms: i64,
) -> Result<(), crate::store::StoreError> {
    let m = get();
    let read = || -> Result<(), crate::store::StoreError> {
        let agents = store.agents()?;
        let hour_ago = now_ms - 3_600_000;
        let live: Vec<_> = agents.iter().filter(|a| a.revoked_ms.is_none()).collect();
        let seen = live
            .iter()
            .filter(|a| a.last_seen_ms.is_some_and(|s| s >= hour_ago))
            .count();
        for (state, n) in [
            ("enrolled", live.len()),
            ("seen_1h", seen),
            ("silent_1h", live.len() - seen),
            ("revoked", agents.len() - live.len()),
        ] {
            m.agents
                .get_or_create(&Kind { kind: state.into() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let items = crate::integrity::list(
            store,
            &crate::integrity::Query {
                from_ms: now_ms - 24 * 3_600_000,
                to_ms: now_ms + 1,
                large_offset_ms,
                silent_ms: i64::MAX,
                now_ms,
            },
        )?;
        let mut by_kind: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for i in &items {
            *by_kind.entry(i.kind).or_default() += 1;
        }
        m.integrity.clear();
        for (kind, n) in by_kind {
            m.integrity
                .get_or_create(&Kind { kind: kind.into() })
                .set(n);
        }
        let far = |y: i16| jiff::civil::date(y, 1, 1);
        let dirty: usize = store
            .dirty_between(far(2000), far(2200))?
            .values()
            .map(std::collections::HashSet::len)
            .sum();
        m.recompute_queue
            .set(i64::try_from(dirty).unwrap_or(i64::MAX));
        Ok(())
    };
    let r = read();
    m.store_up.set(i64::from(r.is_ok()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_every_metric_with_its_help() {
        let m = get();
        m.refused("report", "invalid_argument");
        m.batch_events.observe(3.0);
        let text = m.encode();
        for name in [
            "# HELP kaoqin_reports Reports stored",
            "kaoqin_reports_total ",
            "# TYPE kaoqin_report_duration_seconds histogram",
            "kaoqin_refusals_total{call=\"report\",reason=\"invalid_argument\"} ",
            "kaoqin_report_batch_events_bucket{le=\"4.0\"} ",
            "# HELP kaoqin_store_commit_duration_seconds ",
            "# TYPE kaoqin_login_failures counter",
            "# HELP kaoqin_recompute_queue_depth ",
            "# HELP kaoqin_store_up ",
        ] {
            assert!(text.contains(name), "{name}: {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn the_dashboard_and_the_alert_rules_name_only_metrics_that_exist() {
        let text = get().encode();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring");
        let mut named = 0;
        for file in ["grafana-dashboard.json", "kaoqin-alerts.yml"] {
            let doc = std::fs::read_to_string(root.join(file)).unwrap();
            if file.ends_with(".json") {
                let _: serde_json::Value = serde_json::from_str(&doc).unwrap();
            }
            for (i, _) in doc.match_indices("kaoqin_") {
                let name: String = doc[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                named += 1;
                // A family is declared by its TYPE line, under its name without
                // the sample suffix.
                let family = ["_total", "_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name);
                assert!(
                    text.contains(&format!("# TYPE {name} "))
                        || text.contains(&format!("# TYPE {family} ")),
                    "{file}: {name} is not a metric the collector serves"
                );
            }
        }
        assert!(named > 15, "{named}");
    }
}

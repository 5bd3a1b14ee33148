//! Short smoke runs of the load generator: it enrols, sends, stops by itself
//! and prints its summary line; the collector stores every event once. Over
//! its plain hyper client and tonic's, plaintext and TLS, kept connections and
//! a connection per Report, from one source address or several.

use kaoqin_tests::{Collector, run_ok};
use std::process::Command;
use std::time::Duration;

#[test]
fn loadgen_runs_briefly_and_reports_in_the_documented_format() {
    run_briefly(false, &[]);
    run_briefly(false, &["--reconnect"]);
    run_briefly(true, &["--reconnect", "--source-addresses", "3"]);
    run_briefly(false, &["--client", "tonic", "--threads", "2"]);
}

fn run_briefly(tls: bool, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let collector = if tls {
        Collector::start_tls(dir.path(), "127.0.0.1:0").unwrap()
    } else {
        Collector::start(dir.path(), "127.0.0.1:0").unwrap()
    };
    let token = collector.token().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaoqin-loadgen"));
    cmd.args(["--collector", &collector.url(), "--token", &token])
        .args([
            "--agents",
            "4",
            "--interval",
            "0",
            "--batch",
            "50",
            "--duration",
            "2",
        ]);
    if let Some(ca) = &collector.ca {
        cmd.arg("--ca").arg(ca);
    }
    cmd.args(extra);
    let out = run_ok(cmd, Duration::from_secs(60)).unwrap();
    let last = out.lines().last().unwrap();
    let fields: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(
        fields.iter().step_by(2).copied().collect::<Vec<_>>(),
        [
            "events/s:",
            "batches/s:",
            "p50_ms:",
            "p99_ms:",
            "errors:",
            "unenrolled:"
        ],
        "{extra:?}: {last}"
    );
    let value = |i: usize| fields[i * 2 + 1].parse::<f64>().unwrap();
    assert!(value(0) > 0.0, "{extra:?}: {last}");
    assert_eq!(value(4), 0.0, "{extra:?}: {last}");
    assert_eq!(value(5), 0.0, "{extra:?}: {last}");
    let events = collector.events().unwrap();
    let sent = (value(0) * 2.0).round() as usize;
    assert_eq!(
        events.len(),
        sent,
        "{extra:?}: every acknowledged event is stored once"
    );
}

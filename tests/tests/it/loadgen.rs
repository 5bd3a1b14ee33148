//! A short smoke run of the load generator: it enrols, sends, stops by itself
//! and prints its summary line; the collector stores every event once.

use kaoqin_tests::{Collector, run_ok};
use std::process::Command;
use std::time::Duration;

#[test]
fn loadgen_runs_briefly_and_reports_in_the_documented_format() {
    for reconnect in [false, true] {
        run_briefly(reconnect);
    }
}

fn run_briefly(reconnect: bool) {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), "127.0.0.1:0").unwrap();
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
    if reconnect {
        cmd.arg("--reconnect");
    }
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
        "{last}"
    );
    let value = |i: usize| fields[i * 2 + 1].parse::<f64>().unwrap();
    assert!(value(0) > 0.0, "{last}");
    assert_eq!(value(4), 0.0, "{last}");
    assert_eq!(value(5), 0.0, "{last}");
    let events = collector.events().unwrap();
    let sent = (value(0) * 2.0).round() as usize;
    assert_eq!(
        events.len(),
        sent,
        "every acknowledged event is stored once"
    );
}

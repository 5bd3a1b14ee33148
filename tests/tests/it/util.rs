//! Helpers the areas share (the library `kaoqin-tests` starts the processes).

use kaoqin_tests::run_ok;
use std::process::Command;
use std::time::Duration;

/// A gRPC request carrying an agent's id and key, as an agent sends them.
pub(crate) fn authed<T>(body: T, id: &str, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    r.metadata_mut()
        .insert(kaoqin_proto::AGENT_ID_HEADER, id.parse().unwrap());
    r.metadata_mut().insert(
        kaoqin_proto::AUTHORIZATION_HEADER,
        format!("Bearer {key}").parse().unwrap(),
    );
    r
}

/// The rows of `report daily --date DATE --format json --now NOW`, run with the
/// command `cmd` builds for those arguments.
pub(crate) fn daily(
    cmd: &dyn Fn(&[&str]) -> Command,
    date: &str,
    now: &str,
) -> Vec<serde_json::Value> {
    let out = run_ok(
        cmd(&[
            "report", "daily", "--date", date, "--format", "json", "--now", now,
        ]),
        Duration::from_secs(120),
    )
    .unwrap();
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    rows.as_array().cloned().unwrap_or_default()
}

/// The row of `employee_id` (null when there is none).
pub(crate) fn row_of(rows: &[serde_json::Value], employee_id: &str) -> serde_json::Value {
    rows.iter()
        .find(|r| r["employee_id"] == employee_id)
        .cloned()
        .unwrap_or_default()
}

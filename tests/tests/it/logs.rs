//! A service's log goes to a file or the journal: what the collector writes to a
//! stderr that is not a terminal is plain text, without colour codes, or one
//! JSON object per line with `--log-format json`; a SIGTERM stops it cleanly
//! with a last line saying so. Under systemd (`NOTIFY_SOCKET`, a `Type=notify`
//! unit) it says READY=1 once it serves and STOPPING=1 when told to stop.

#![cfg(unix)]

use kaoqin_tests::collector_command;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The log of a collector that serves, then stops on SIGTERM (exiting 0).
fn serve_and_stop(extra: &[&str]) -> String {
    serve_and_stop_with(extra, &[])
}

/// As [`serve_and_stop`], with environment variables set for the collector.
fn serve_and_stop_with(extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = collector_command(extra)
        .envs(env.iter().copied())
        .args([
            "serve",
            "--plaintext",
            "--grpc",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("KAOQIN_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // Serving once it says where it listens.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let listening = stdout
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("kaoqin-collector listening"));
    assert!(listening, "the collector never said it was listening");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = kaoqin_tests::wait_bounded(&mut child, Duration::from_secs(30)).unwrap();
    assert!(status.success(), "stopped by SIGTERM: {status}");
    log.join().unwrap()
}

#[test]
fn the_log_on_a_pipe_is_plain_text_and_sigterm_stops_the_collector() {
    let log = serve_and_stop(&[]);
    assert!(log.contains("Collector serving."), "{log}");
    assert!(log.contains("Collector stopped."), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
}

#[test]
fn with_log_format_json_each_line_is_one_json_object() {
    let log = serve_and_stop(&["--log-format", "json"]);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let serving = lines
        .iter()
        .find(|l| l["message"] == "Collector serving.")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(serving["level"], "INFO", "{serving}");
    assert!(
        serving["grpc"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{serving}"
    );
    assert!(serving["timestamp"].is_string(), "{serving}");
    assert!(
        lines.iter().any(|l| l["message"] == "Collector stopped."),
        "{log}"
    );
}

#[test]
fn under_systemd_the_collector_says_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let log = serve_and_stop_with(&[], &[("NOTIFY_SOCKET", path.as_os_str())]);
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    while said.len() < 2 {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; the collector said {said:?}; its log: {log}"));
        said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = said[0].lines().collect::<Vec<_>>();
    assert_eq!(ready[0], "READY=1", "{said:?}");
    assert!(
        ready[1].starts_with("STATUS=serving gRPC on 127.0.0.1:"),
        "{said:?}"
    );
    assert!(said[1].starts_with("STOPPING=1\n"), "{said:?}");
}

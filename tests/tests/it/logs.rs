//! A service's log goes to a file or the journal: what the collector writes to a
//! stderr that is not a terminal is plain text, without colour codes, and a
//! SIGTERM stops it cleanly with a last line saying so.

#![cfg(unix)]

use kaoqin_tests::bin;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn the_log_on_a_pipe_is_plain_text_and_sigterm_stops_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin("kaoqin-collector"))
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
    let log = log.join().unwrap();
    assert!(log.contains("Collector serving."), "{log}");
    assert!(log.contains("Collector stopped."), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
}

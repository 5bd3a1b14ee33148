//! A throwaway PostgreSQL server for tests: `initdb` into a temp dir, started on
//! a free loopback port, stopped by `pg_ctl` (immediate) when dropped. As root the
//! server runs as the `postgres` user, which PostgreSQL insists on.
//!
//! Without PostgreSQL installed a test is skipped with a message, unless `CI=true`,
//! where that is a failure. Used by this crate's store tests and by the
//! end-to-end tests; never by the collector itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian puts the server's programs.
const BIN_DIRS: [&str; 3] = [
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
];

/// A running server.
pub struct TestPg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl TestPg {
    /// Starts a server, or returns `None` (with a message) where PostgreSQL is
    /// not installed and `CI` is not `true`.
    pub fn start() -> Option<TestPg> {
        let Some(bin) = BIN_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|d| d.join("initdb").exists())
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is not installed (Debian package postgresql), and CI=true"
            );
            eprintln!("skipped: PostgreSQL is not installed (Debian package postgresql)");
            return None;
        };
        let as_postgres = run(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0");
        let dir = tempfile::tempdir().expect("temp dir");
        if as_postgres {
            run(Command::new("chown").arg("postgres").arg(dir.path())).expect("chown");
        }
        let data = dir.path().join("data");
        let mut pg = TestPg {
            dir,
            bin,
            port: 0,
            as_postgres,
        };
        run(pg.cmd("initdb").arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]))
        .expect("initdb");
        let mut last = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let started = run(pg.cmd("pg_ctl").arg("-D").arg(&data).args([
                "-o",
                &format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    pg.dir.path().display()
                ),
                "-l",
                &pg.dir.path().join("log").display().to_string(),
                "-w",
                "start",
            ]));
            match started {
                Ok(_) => {
                    pg.port = port;
                    return Some(pg);
                }
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Creates database `name` and returns its URL.
    pub fn database(&self, name: &str) -> String {
        run(self
            .cmd("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {name}")))
        .expect("create database");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server at once, as a crash would.
    pub fn crash(&self) {
        let _ =
            run(self
                .cmd("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "stop"]));
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        run(self.cmd("pg_ctl").arg("-D").arg(self.data()).args([
            "-o",
            &format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.dir.path().display()
            ),
            "-l",
            &self.dir.path().join("log").display().to_string(),
            "-w",
            "start",
        ]))
        .expect("restart");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        if self.port != 0 {
            self.crash();
        }
    }
}

//! Helpers for kaoqin's end-to-end tests: build the real binaries, start a
//! collector on a loopback port, run agents against it, and wait for outcomes
//! with bounded timeouts (never fixed sleeps).

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The agent protocol of the previous release, as its agents speak it (compiled
/// from the frozen `tests/proto/previous/`): tests send its messages to this
/// collector, which must keep taking them.
#[allow(unreachable_pub, clippy::all, missing_docs)]
pub mod previous {
    tonic::include_proto!("kaoqin.v1");
}

/// The workspace's `target/debug` (or release) directory of the running test.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/e2e-xxxx -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Path of a workspace binary, built (once per test run) so it is never stale.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "kaoqin-collector",
            "-p",
            "kaoqin-agent",
            "--bins",
        ]);
        if bin_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// Runs a command to completion within `limit`, returning its output. Output
/// is drained while the command runs, so a chatty command cannot block on a
/// full pipe.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> anyhow::Result<Output> {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {desc}"))?;
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let status = match wait_bounded(&mut child, limit) {
        Ok(status) => status,
        Err(e) => {
            let stderr = err.join().unwrap_or_default();
            bail!("{desc}: {e}\nstderr:\n{}", String::from_utf8_lossy(&stderr));
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Waits for a child to exit within `limit`; past it, kills the child and fails.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> anyhow::Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: Command, limit: Duration) -> anyhow::Result<String> {
    let desc = format!("{cmd:?}");
    let out = run_bounded(cmd, limit)?;
    if !out.status.success() {
        bail!(
            "{desc} failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// A collector process on loopback, killed when dropped.
pub struct Collector {
    child: Child,
    pub data_dir: PathBuf,
    pub addr: std::net::SocketAddr,
    /// The CA certificate agents pin, when serving TLS.
    pub ca: Option<PathBuf>,
    /// The PostgreSQL database it stores in, if not the data dir's SQLite file.
    pub database: Option<String>,
    /// Where the pages and the JSON API answer, when served (`--http`).
    pub http: Option<std::net::SocketAddr>,
    /// The instant its clock was set to (`KAOQIN_NOW`), and when.
    clock: Option<(jiff::Timestamp, Instant)>,
}

impl Collector {
    /// Starts `kaoqin-collector serve --plaintext --allow-replay` on `addr` (use
    /// port 0 for any) and waits until it says where it listens. Replayed days lie
    /// in the past, so the tests that replay need `--allow-replay`.
    pub fn start(data_dir: &Path, addr: &str) -> anyhow::Result<Collector> {
        Collector::spawn(data_dir, addr, None, None, true)
    }

    /// As [`Collector::start`] without `--allow-replay`, as in production: no
    /// agent may deliver events from before its enrolment or backdate any.
    pub fn start_strict(data_dir: &Path, addr: &str) -> anyhow::Result<Collector> {
        Collector::spawn(data_dir, addr, None, None, false)
    }

    /// As [`Collector::start`], its clock starting at `at` (`KAOQIN_NOW`), so
    /// that what the test asserts does not depend on the day it runs;
    /// [`Collector::now`] reads that clock.
    pub fn start_at(data_dir: &Path, addr: &str, at: jiff::Timestamp) -> anyhow::Result<Collector> {
        Collector::spawn_on(data_dir, addr, None, None, true, None, false, Some(at))
    }

    /// As [`Collector::start_strict`], its clock starting at `at`.
    pub fn start_strict_at(
        data_dir: &Path,
        addr: &str,
        at: jiff::Timestamp,
    ) -> anyhow::Result<Collector> {
        Collector::spawn_on(data_dir, addr, None, None, false, None, false, Some(at))
    }

    /// As [`Collector::start_web`], its clock starting at `at`.
    pub fn start_web_at(
        data_dir: &Path,
        config: &str,
        at: jiff::Timestamp,
    ) -> anyhow::Result<Collector> {
        let path = write_config(data_dir, config)?;
        Collector::spawn_on(
            data_dir,
            "127.0.0.1:0",
            None,
            Some(&path),
            true,
            None,
            true,
            Some(at),
        )
    }

    /// The collector's clock: the instant it was started at, plus the time since
    /// (a little ahead of the collector's own, which started later); the
    /// system's when not set.
    pub fn now(&self) -> jiff::Timestamp {
        match self.clock {
            Some((at, started)) => {
                let since = jiff::SignedDuration::try_from(started.elapsed()).unwrap_or_default();
                at.checked_add(since).unwrap_or(at)
            }
            None => jiff::Timestamp::now(),
        }
    }

    /// As [`Collector::start`], with `config` (TOML) written to
    /// `data_dir/collector.toml` and passed with `--config`.
    pub fn start_configured(
        data_dir: &Path,
        addr: &str,
        config: &str,
    ) -> anyhow::Result<Collector> {
        let path = write_config(data_dir, config)?;
        Collector::spawn(data_dir, addr, None, Some(&path), true)
    }

    /// As [`Collector::start`], over TLS with a certificate for 127.0.0.1 and
    /// localhost made by `tls init` (kept if the data dir already has one).
    pub fn start_tls(data_dir: &Path, addr: &str) -> anyhow::Result<Collector> {
        let ca = tls_init(data_dir)?;
        Collector::spawn(data_dir, addr, Some(ca), None, true)
    }

    /// As [`Collector::start_tls`] on any loopback port, serving the pages over
    /// HTTPS with the same certificate too (see [`Collector::web`]).
    pub fn start_tls_web(data_dir: &Path) -> anyhow::Result<Collector> {
        let ca = tls_init(data_dir)?;
        Collector::spawn_on(
            data_dir,
            "127.0.0.1:0",
            Some(ca),
            None,
            true,
            None,
            true,
            None,
        )
    }

    /// As [`Collector::start_configured`] on any loopback port, serving the pages
    /// and the JSON API too (`--http 127.0.0.1:0`, see [`Collector::web`]).
    pub fn start_web(data_dir: &Path, config: &str) -> anyhow::Result<Collector> {
        let path = write_config(data_dir, config)?;
        Collector::spawn_on(
            data_dir,
            "127.0.0.1:0",
            None,
            Some(&path),
            true,
            None,
            true,
            None,
        )
    }

    fn spawn(
        data_dir: &Path,
        addr: &str,
        ca: Option<PathBuf>,
        config: Option<&Path>,
        allow_replay: bool,
    ) -> anyhow::Result<Collector> {
        Collector::spawn_on(data_dir, addr, ca, config, allow_replay, None, false, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_on(
        data_dir: &Path,
        addr: &str,
        ca: Option<PathBuf>,
        config: Option<&Path>,
        allow_replay: bool,
        database: Option<&str>,
        web: bool,
        at: Option<jiff::Timestamp>,
    ) -> anyhow::Result<Collector> {
        let mut cmd = Command::new(bin("kaoqin-collector"));
        let clock = at.map(|at| (at, Instant::now()));
        if let Some(at) = at {
            cmd.env("KAOQIN_NOW", at.to_string());
        }
        cmd.args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--grpc", addr]);
        if web {
            cmd.args(["--http", "127.0.0.1:0"]);
        }
        if let Some(url) = database {
            cmd.arg("--database").arg(url);
        }
        if allow_replay {
            cmd.arg("--allow-replay");
        }
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        if ca.is_none() {
            cmd.arg("--plaintext");
        }
        let mut child = cmd
            .env("KAOQIN_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("collector stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("kaoqin-collector listening ") {
                    let first = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(first.to_owned());
                }
            }
        });
        let (mut addr, mut http) = (None, None);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while addr.is_none() || (web && http.is_none()) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                bail!("collector did not start listening within 30 s");
            };
            if let Some(a) = line.strip_prefix("grpc=") {
                addr = Some(a.parse()?);
            } else if let Some(a) = line.strip_prefix("http=") {
                http = Some(a.parse()?);
            }
        }
        let addr = addr.context("grpc address")?;
        Ok(Collector {
            child,
            data_dir: data_dir.to_path_buf(),
            addr,
            ca,
            database: database.map(str::to_owned),
            http,
            clock,
        })
    }

    /// The base URL of the pages and the JSON API (`http://127.0.0.1:PORT`).
    pub fn web(&self) -> String {
        let http = self.http.expect("started with start_web or start_tls_web");
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{http}")
    }

    /// As [`Collector::start`], storing in the PostgreSQL database at `url`
    /// (`serve --database URL`) instead of the data dir's SQLite file.
    pub fn start_on_database(data_dir: &Path, addr: &str, url: &str) -> anyhow::Result<Collector> {
        Collector::spawn_on(data_dir, addr, None, None, true, Some(url), false, None)
    }

    /// A `kaoqin-collector` command on this collector's store: its data dir and,
    /// where it has one, its database.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = collector_on(&self.data_dir, args);
        if self.clock.is_some() {
            cmd.env("KAOQIN_NOW", self.now().to_string());
        }
        if let Some(url) = &self.database {
            cmd.arg("--database").arg(url);
        }
        cmd
    }

    /// Runs `kaoqin-collector ARGS` on this collector's store, which must succeed;
    /// its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        run_ok(self.cmd(args), Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("kaoqin-collector {args:?}: {e:#}"))
    }

    /// The URL agents use.
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `kaoqin-collector token create`.
    pub fn token(&self) -> anyhow::Result<String> {
        let cmd = self.cmd(&["token", "create"]);
        Ok(run_ok(cmd, Duration::from_secs(30))?.trim().to_owned())
    }

    /// A new enrolment token that also enrols machines already known (a
    /// reinstall): `token create --reenroll`.
    pub fn reenroll_token(&self) -> anyhow::Result<String> {
        let cmd = self.cmd(&["token", "create", "--reenroll"]);
        Ok(run_ok(cmd, Duration::from_secs(30))?.trim().to_owned())
    }

    /// Stored events as JSON objects (`kaoqin-collector events`).
    pub fn events(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let out = run_ok(
            self.cmd(&["events", "--format", "jsonl"]),
            Duration::from_secs(30),
        )?;
        out.lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("event line {l:?}")))
            .collect()
    }

    /// Enrols a PC with state in `state` and replays the fixture `script` on it
    /// until everything it recorded is acknowledged.
    pub fn replay_fixture(&self, state: &Path, script: &str) -> anyhow::Result<()> {
        let token = self.token()?;
        run_ok(
            agent(
                state,
                &["enroll", "--collector", &self.url(), "--token", &token],
            ),
            Duration::from_secs(120),
        )?;
        let replay = format!("replay:{}", fixture(script).display());
        run_ok(
            agent(state, &["run", "--probe", &replay, "--once"]),
            Duration::from_secs(120),
        )?;
        Ok(())
    }

    /// The collector's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kaoqin-collector` command with no data dir of its own (`migrate`).
pub fn collector_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("kaoqin-collector"));
    cmd.args(args).env("KAOQIN_LOG", "warn");
    cmd
}

/// Writes `config` (TOML) to `data_dir/collector.toml`, for `--config`.
fn write_config(data_dir: &Path, config: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("collector.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// A `kaoqin-collector` command on the store in `data_dir`.
pub fn collector_on(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = collector_command(args);
    cmd.arg("--data-dir").arg(data_dir);
    cmd
}

/// A `kaoqin-agent` command with its state dir set.
pub fn agent(state_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("kaoqin-agent"));
    cmd.args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .env("KAOQIN_LOG", "warn");
    cmd
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`), if the process exists.
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Polls `ready` until it gives a value, and returns it; fails naming `what` if
/// that takes longer than `limit`. The one way tests wait for something another
/// process does (never a fixed sleep).
pub fn eventually<T>(what: &str, limit: Duration, mut ready: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// [`eventually`] for a poll that awaits (a gRPC call): polls `ready` until it
/// gives a value, pausing on the runtime's timer between tries.
pub async fn eventually_async<T>(
    what: &str,
    limit: Duration,
    mut ready: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = ready().await {
            return v;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The scripted day used by the tests and the quick start.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The seed of a test's random fault points: `KAOQIN_FAULT_SEED` when set (to
/// replay a failure), else new on every run. Printed with the way to replay it.
pub fn fault_seed(test: &str) -> u64 {
    let seed = std::env::var("KAOQIN_FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::from(d.subsec_nanos()))
        });
    eprintln!("{test}: fault seed {seed} (replay with KAOQIN_FAULT_SEED={seed})");
    seed
}

/// The observation lines of a replay script, without comments and without the
/// PC's `boot` and `shutdown` (which may only open and close a script), for
/// tests that play several days of it in one script.
pub fn script_events(script: &str) -> impl Iterator<Item = &str> {
    script.lines().filter(|l| {
        l.starts_with('{') && !l.contains(r#""type":"boot""#) && !l.contains(r#""type":"shutdown""#)
    })
}

/// `kaoqin-collector tls init` for 127.0.0.1 and localhost in `data_dir`, unless
/// a certificate is there already. Returns the CA certificate's path.
fn tls_init(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let ca = data_dir.join("tls").join("ca.pem");
    if !data_dir.join("tls").join("server.pem").exists() {
        let mut cmd = Command::new(bin("kaoqin-collector"));
        cmd.args([
            "tls",
            "init",
            "--name",
            "127.0.0.1",
            "--name",
            "localhost",
            "--data-dir",
        ])
        .arg(data_dir);
        let printed = run_ok(cmd, Duration::from_secs(30))?;
        anyhow::ensure!(
            Path::new(printed.trim()) == ca,
            "tls init printed {printed:?}"
        );
    }
    Ok(ca)
}

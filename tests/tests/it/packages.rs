//! The installable packages that `scripts/package.sh` builds (docs/packages.md,
//! docs/deploy-windows.md): the two .deb files, and the Windows installer.
//!
//! The .deb test packages the binaries this test run built (no release build),
//! inspects the packages (files, modes, control fields, conffiles), checks the
//! systemd units with `systemd-analyze verify` and `security --offline`, runs
//! the packaged configurations and the agent's enrol-on-first-start script for
//! real against a collector, and, as root, installs both packages into a
//! temporary root, upgrades them in place, removes and purges them. Not being
//! root skips that part, and fails the test under `CI=true`.
//!
//! Why a temporary root and not this machine: `dpkg --root=DIR` installs the
//! files there, but runs maintainer scripts chrooted into DIR, which would need a
//! whole system (a shell, systemd-sysusers, perl for deb-systemd-helper) inside
//! it. With `--force-script-chrootless` dpkg runs the scripts on this machine
//! with `DPKG_ROOT=DIR`, and the scripts are written for that (every path is
//! under `$DPKG_ROOT`, `systemd-sysusers --root`, deb-systemd-helper honours
//! it, nothing talks to a running systemd). So the real scripts create the
//! user, the directories and the unit links in DIR, and the test checks that
//! this machine's own files did not change. What a temporary root cannot show:
//! systemd starting the units (there is no systemd as PID 1 here, and the
//! scripts never call systemctl with `DPKG_ROOT` set), so the sandboxing
//! settings (ProtectSystem, SystemCallFilter, ...) are checked by
//! `systemd-analyze` but not exercised; the services' command lines are run
//! here by the test instead, with the unit's paths moved into the root.
//!
//! The Windows test runs the NSIS installer under Wine: silent installs that
//! fail (exit 2), the Group Policy startup script of docs/deploy-windows.md
//! (which enrols with a TLS collector, starts the service, and the second time
//! leaves the installed version alone), an upgrade in place (identity and spool
//! kept, old session helpers ended, a program file in use moved aside), a silent
//! uninstall that keeps the state, a reinstall without parameters, and a purge.
//! What Wine cannot show is listed on that test.
//!
//! Tools: dpkg-deb, dpkg, binutils, systemd (systemd-analyze, systemd-sysusers),
//! init-system-helpers, util-linux (setpriv); nsis, wine64, gcc-mingw-w64 and
//! the cross-built release `kaoqin-agent.exe` for the Windows test. With
//! `CI=true` a missing one fails the test (.ci/run installs them and builds the
//! .exe); otherwise the test says what is missing and passes.
#![cfg(unix)]

use crate::windows::{MINGW_GCC, TARGET, WINE, WinePrefix};
use kaoqin_tests::{Collector, bin, eventually, run_bounded, run_ok};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const LIMIT: Duration = Duration::from_secs(120);
/// package.sh with the binaries given: strip, dpkg-deb, makensis.
const PACKAGE: Duration = Duration::from_secs(600);

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A tool is missing: says why the test skips and returns true, or fails the
/// test under `CI=true`.
fn skip(why: &str) -> bool {
    assert!(
        !ci(),
        "{why} (CI=true: .ci/run installs every tool the tests need)"
    );
    eprintln!("skipping: {why}");
    true
}

fn on_path(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            std::fs::metadata(d.join(tool)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

/// The first of `tools` (name, Debian package) that is missing, said in words.
fn missing(tools: &[(&str, &str)]) -> Option<String> {
    tools
        .iter()
        .find(|(tool, _)| !on_path(tool))
        .map(|(tool, pkg)| format!("{tool} is missing (apt-get install {pkg})"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
fn ok(cmd: Command) -> String {
    run_ok(cmd, LIMIT).unwrap_or_else(|e| panic!("{e:#}"))
}

fn cmd<S: AsRef<std::ffi::OsStr>>(program: S, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env("KAOQIN_LOG", "error");
    c
}

fn arch() -> String {
    ok(cmd("dpkg", &["--print-architecture"])).trim().to_owned()
}

/// `scripts/package.sh` into `out` with this run's Linux binaries and, for the
/// installer, `windows_exe`; the paths it printed.
fn package(out: &Path, windows_exe: Option<&Path>) -> Vec<PathBuf> {
    let bin_dir = bin("kaoqin-collector")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    bin("kaoqin-agent");
    let mut c = Command::new(workspace().join("scripts").join("package.sh"));
    c.env("KAOQIN_PACKAGE_BIN_DIR", &bin_dir)
        .env("KAOQIN_PACKAGE_OUT_DIR", out)
        // Fast to build and to install; CI's own run of package.sh uses xz.
        .env("KAOQIN_PACKAGE_DEB_COMPRESSION", "none");
    match windows_exe {
        Some(exe) => {
            c.env("KAOQIN_PACKAGE_WIN_EXE", exe);
        }
        None => {
            c.arg("--no-windows").env_remove("KAOQIN_PACKAGE_WIN_EXE");
        }
    }
    let printed = run_ok(c, PACKAGE).unwrap_or_else(|e| panic!("scripts/package.sh: {e:#}"));
    printed
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// `KEY=value` lines as systemd's EnvironmentFile= reads them.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// The values of `key` in a unit file, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

fn unit_value(unit: &str, key: &str) -> String {
    let v = unit_values(unit, key);
    assert_eq!(v.len(), 1, "{key}= once in the unit: {v:?}");
    v[0].clone()
}

/// A unit's paths moved into `root`: `/usr/bin/x` is `ROOT/usr/bin/x`.
fn in_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// A unit's command line with its absolute paths moved into `root`.
fn command_in_root(root: &Path, line: &str) -> Command {
    let mut words = line.split_whitespace().map(|w| {
        if w.starts_with('/') {
            in_root(root, w).into_os_string()
        } else {
            OsString::from(w)
        }
    });
    let mut c = Command::new(words.next().expect("a command"));
    c.args(words).env("KAOQIN_LOG", "error");
    c
}

/// One .deb: its control fields, its listing and its tree (`dpkg-deb -R`).
struct Deb {
    path: PathBuf,
    fields: BTreeMap<String, String>,
    /// path (without "./") -> (mode string, owner/group), files only.
    files: BTreeMap<String, (String, String)>,
    tree: PathBuf,
}

impl Deb {
    fn open(path: &Path, tree: &Path) -> Deb {
        let mut fields = BTreeMap::new();
        let mut last = String::new();
        for line in ok(cmd("dpkg-deb", &["-f"]).arg(path).built()).lines() {
            if line.starts_with(' ') {
                fields
                    .entry(last.clone())
                    .and_modify(|v: &mut String| v.push_str(&format!("\n{line}")));
            } else if let Some((k, v)) = line.split_once(':') {
                last = k.to_owned();
                fields.insert(k.to_owned(), v.trim().to_owned());
            }
        }
        let mut files = BTreeMap::new();
        for line in ok(cmd("dpkg-deb", &["-c"]).arg(path).built()).lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            assert!(w.len() >= 6, "listing line {line:?}");
            if w[0].starts_with('d') {
                continue;
            }
            assert!(w[0].starts_with('-'), "only files and directories: {line}");
            let name = w[5].trim_start_matches("./").to_owned();
            files.insert(name, (w[0].to_owned(), w[1].to_owned()));
        }
        ok(cmd("dpkg-deb", &["-R"]).arg(path).arg(tree).built());
        Deb {
            path: path.to_path_buf(),
            fields,
            files,
            tree: tree.to_path_buf(),
        }
    }

    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("{} has no {name} field", self.path.display()))
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.tree.join(path))
            .unwrap_or_else(|e| panic!("{path} in {}: {e}", self.path.display()))
    }
}

/// `Command` builder sugar: `cmd(..).arg(..)` hands back `&mut Command`.
trait Built {
    fn built(&mut self) -> Command;
}

impl Built for Command {
    fn built(&mut self) -> Command {
        std::mem::replace(self, Command::new("true"))
    }
}

/// A `kaoqin-collector serve` that said where it listens; killed when dropped.
struct Served {
    child: Child,
    grpc: String,
    scheme: String,
}

impl Served {
    fn start(mut c: Command) -> Served {
        let desc = format!("{c:?}");
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{desc}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("kaoqin-collector listening grpc=") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("{desc} did not say where it listens ({status:?})");
            }
        };
        let mut grpc = String::new();
        let mut scheme = String::new();
        for w in line.split_whitespace() {
            if let Some(a) = w.strip_prefix("grpc=") {
                grpc = a.to_owned();
            } else if let Some(s) = w.strip_prefix("scheme=") {
                scheme = s.to_owned();
            }
        }
        Served {
            child,
            grpc,
            scheme,
        }
    }

    fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.grpc)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether systemd would start `unit` (installed in `root`) as far as its
/// Condition*= settings say, evaluated by `systemd-analyze condition` with the
/// paths moved into the root.
fn conditions_hold(root: &Path, unit: &str) -> bool {
    let conditions: Vec<String> = unit
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Condition"))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("Key=value");
            let (trigger, path) = match v.strip_prefix('|') {
                Some(p) => ("|", p),
                None => ("", v),
            };
            format!("{k}={trigger}{}", in_root(root, path).display())
        })
        .collect();
    assert!(!conditions.is_empty(), "the unit has conditions");
    let mut c = Command::new("systemd-analyze");
    c.arg("condition").args(&conditions);
    run_bounded(c, LIMIT).unwrap().status.success()
}

/// The lines of `file` naming `name` in its first field (passwd, group).
fn entries(file: &Path, name: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .filter(|f| f[0] == name)
        .collect()
}

/// What this machine has that the packages could touch, to show that
/// installing into the temporary root left it alone.
fn host_snapshot() -> Vec<(String, Option<Vec<u8>>)> {
    [
        "/etc/passwd",
        "/etc/group",
        "/etc/kaoqin",
        "/etc/systemd/system/multi-user.target.wants/kaoqin-collector.service",
        "/etc/systemd/system/multi-user.target.wants/kaoqin-agent.service",
        "/var/lib/kaoqin-collector",
        "/var/lib/kaoqin-agent",
        "/usr/bin/kaoqin-collector",
    ]
    .iter()
    .map(|p| {
        let content = match std::fs::metadata(p) {
            Ok(m) if m.is_file() => std::fs::read(p).ok(),
            Ok(_) => Some(b"(a directory or link)".to_vec()),
            Err(_) => None,
        };
        ((*p).to_owned(), content)
    })
    .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// Every file and link under `dir` (not directories), relative.
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// `dpkg --root=ROOT` with the maintainer scripts run here under `DPKG_ROOT`
/// (see the module's comment), logging beside the root, not in /var/log.
fn dpkg(root: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("dpkg");
    c.arg(format!("--root={}", root.display()))
        .arg("--force-script-chrootless")
        .arg(format!(
            "--log={}",
            root.with_extension("dpkg.log").display()
        ))
        .args(args);
    run_bounded(c, LIMIT).unwrap()
}

fn dpkg_ok(root: &Path, args: &[&str]) -> String {
    let out = dpkg(root, args);
    assert!(
        out.status.success(),
        "dpkg {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn the_deb_packages_install_upgrade_remove_and_purge_cleanly() {
    let tools = [
        ("dpkg-deb", "dpkg"),
        ("dpkg", "dpkg"),
        ("strip", "binutils"),
        ("objdump", "binutils"),
        ("readelf", "binutils"),
        ("systemd-analyze", "systemd"),
    ];
    if let Some(why) = missing(&tools)
        && skip(&why)
    {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    // Readable by the service user the test runs commands as, below.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = tmp.path().join("packages");
    let arch = arch();
    let built = package(&out, None);
    let collector_deb = out.join(format!("kaoqin-collector_{VERSION}_{arch}.deb"));
    let agent_deb = out.join(format!("kaoqin-agent_{VERSION}_{arch}.deb"));
    assert_eq!(built, vec![collector_deb.clone(), agent_deb.clone()]);
    eprintln!("packages built in {:?}", started.elapsed());

    // ---- What is in them.
    let c = Deb::open(&collector_deb, &tmp.path().join("tree-collector"));
    let a = Deb::open(&agent_deb, &tmp.path().join("tree-agent"));
    let expect_files = |deb: &Deb, want: &[(&str, &str)]| {
        let got: Vec<(&str, &str)> = deb
            .files
            .iter()
            .map(|(p, (m, _))| (p.as_str(), m.as_str()))
            .collect();
        assert_eq!(got, want, "files and modes of {}", deb.path.display());
        for (p, (_, owner)) in &deb.files {
            assert_eq!(owner, "root/root", "{p} in {}", deb.path.display());
        }
    };
    expect_files(
        &c,
        &[
            ("etc/kaoqin/collector.toml", "-rw-r--r--"),
            ("lib/systemd/system/kaoqin-collector.service", "-rw-r--r--"),
            ("usr/bin/kaoqin-collector", "-rwxr-xr-x"),
            ("usr/lib/sysusers.d/kaoqin-collector.conf", "-rw-r--r--"),
            ("usr/share/doc/kaoqin-collector/README.Debian", "-rw-r--r--"),
            ("usr/share/doc/kaoqin-collector/copyright", "-rw-r--r--"),
            (
                "usr/share/doc/kaoqin-collector/examples/collector.example.toml",
                "-rw-r--r--",
            ),
        ],
    );
    expect_files(
        &a,
        &[
            ("etc/kaoqin/agent.toml", "-rw-r--r--"),
            ("etc/kaoqin/enroll.env.example", "-rw-r--r--"),
            ("lib/systemd/system/kaoqin-agent.service", "-rw-r--r--"),
            ("usr/bin/kaoqin-agent", "-rwxr-xr-x"),
            (
                "usr/libexec/kaoqin-agent/enroll-on-first-start",
                "-rwxr-xr-x",
            ),
            ("usr/share/doc/kaoqin-agent/README.Debian", "-rw-r--r--"),
            ("usr/share/doc/kaoqin-agent/copyright", "-rw-r--r--"),
            (
                "usr/share/doc/kaoqin-agent/examples/agent.example.toml",
                "-rw-r--r--",
            ),
        ],
    );
    for (deb, name, conffiles) in [
        (&c, "kaoqin-collector", vec!["/etc/kaoqin/collector.toml"]),
        (
            &a,
            "kaoqin-agent",
            vec!["/etc/kaoqin/agent.toml", "/etc/kaoqin/enroll.env.example"],
        ),
    ] {
        assert_eq!(deb.field("Package"), name);
        assert_eq!(deb.field("Version"), VERSION.replacen('-', "~", 1));
        assert_eq!(deb.field("Architecture"), arch);
        assert!(deb.field("Maintainer").contains('@'));
        assert!(!deb.field("Description").is_empty());
        let depends = deb.field("Depends");
        assert!(
            depends.starts_with("libc6 (>= 2.") && depends.contains("libgcc-s1"),
            "{name}: Depends: {depends}"
        );
        // Installed-Size (KiB) covers at least the binary.
        let binary = deb.tree.join("usr/bin").join(name);
        let size: u64 = deb.field("Installed-Size").parse().unwrap();
        assert!(size >= std::fs::metadata(&binary).unwrap().len() / 1024);
        // The binary is this version's, stripped of debug information.
        let said = ok(cmd(&binary, &["--version"]));
        assert_eq!(said.trim(), format!("{name} {VERSION}"));
        let sections = ok(cmd("readelf", &["-S", "-W"]).arg(&binary).built());
        assert!(!sections.contains(".debug_info"), "{name} is not stripped");
        // Every file under /etc is a conffile, and only those.
        let listed: Vec<String> = deb
            .read("DEBIAN/conffiles")
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(listed, conffiles, "{name}'s conffiles");
        let in_etc: Vec<String> = deb
            .files
            .keys()
            .filter(|p| p.starts_with("etc/"))
            .map(|p| format!("/{p}"))
            .collect();
        assert_eq!(
            in_etc, conffiles,
            "{name}: every file in /etc is a conffile"
        );
        // The maintainer scripts are POSIX sh that parses.
        for script in ["postinst", "prerm", "postrm"] {
            let p = deb.tree.join("DEBIAN").join(script);
            assert!(
                deb.read(&format!("DEBIAN/{script}"))
                    .starts_with("#!/bin/sh\n")
            );
            assert_eq!(mode(&p), 0o755, "{name} {script}");
            ok(cmd("sh", &["-n"]).arg(&p).built());
        }
    }
    assert!(
        c.field("Depends").contains("systemd | systemd-sysusers"),
        "the collector's postinst needs systemd-sysusers"
    );
    let first_start = a
        .tree
        .join("usr/libexec/kaoqin-agent/enroll-on-first-start");
    ok(cmd("sh", &["-n"]).arg(&first_start).built());

    // ---- The units: what they say, and what systemd makes of them.
    let c_unit = c.read("lib/systemd/system/kaoqin-collector.service");
    let a_unit = a.read("lib/systemd/system/kaoqin-agent.service");
    assert_eq!(unit_value(&c_unit, "User"), "kaoqin-collector");
    assert_eq!(unit_value(&c_unit, "StateDirectory"), "kaoqin-collector");
    assert_eq!(
        unit_value(&c_unit, "ExecStart"),
        "/usr/bin/kaoqin-collector serve --config /etc/kaoqin/collector.toml"
    );
    assert_eq!(
        unit_value(&c_unit, "ConditionPathExists"),
        "/var/lib/kaoqin-collector/tls/server.pem",
        "the collector does not start before `tls init`"
    );
    assert!(
        unit_values(&a_unit, "User").is_empty(),
        "the agent runs as root"
    );
    assert_eq!(unit_value(&a_unit, "StateDirectory"), "kaoqin-agent");
    assert_eq!(
        unit_value(&a_unit, "EnvironmentFile"),
        "-/etc/kaoqin/enroll.env"
    );
    assert_eq!(
        unit_values(&a_unit, "ConditionPathExists"),
        [
            "|/var/lib/kaoqin-agent/enrolment.json",
            "|/etc/kaoqin/enroll.env"
        ],
        "the agent starts once enrolled or given enroll.env"
    );
    for unit in [&c_unit, &a_unit] {
        assert_eq!(unit_value(unit, "ProtectSystem"), "strict");
        assert_eq!(unit_value(unit, "PrivateTmp"), "yes");
        assert_eq!(unit_value(unit, "NoNewPrivileges"), "yes");
        assert_eq!(unit_value(unit, "WantedBy"), "multi-user.target");
    }
    // The collector's configuration names the data directory the unit makes
    // writable and the condition looks in.
    let c_config = c.read("etc/kaoqin/collector.toml");
    assert!(c_config.contains("\ndata_dir = \"/var/lib/kaoqin-collector\"\n"));

    // systemd-analyze verify, offline: in a root holding both packages' files
    // and this machine's own units (the targets they refer to).
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("multi-user.target").exists());
    match host_units {
        None => {
            if skip("no systemd units on this machine (/lib/systemd/system/multi-user.target)") {
                return;
            }
        }
        Some(units) => {
            let verify_root = tmp.path().join("verify-root");
            let system = verify_root.join("usr/lib/systemd");
            std::fs::create_dir_all(&system).unwrap();
            ok(cmd("cp", &["-a"]).arg(units).arg(&system).built());
            for deb in [&collector_deb, &agent_deb] {
                ok(cmd("dpkg-deb", &["-x"]).arg(deb).arg(&verify_root).built());
            }
            let root_arg = format!("--root={}", verify_root.display());
            for unit in ["kaoqin-collector.service", "kaoqin-agent.service"] {
                let path = format!("/lib/systemd/system/{unit}");
                let out = run_bounded(cmd("systemd-analyze", &["verify", &root_arg, &path]), LIMIT)
                    .unwrap();
                assert!(
                    out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
                    "systemd-analyze verify {unit}:\n{}{}",
                    text(&out.stdout),
                    text(&out.stderr)
                );
                // Hardened: systemd's own exposure score (0 best, 100 worst;
                // shown divided by ten) stays low.
                let threshold = if unit == "kaoqin-agent.service" {
                    "--threshold=35"
                } else {
                    "--threshold=25"
                };
                let out = run_bounded(
                    cmd(
                        "systemd-analyze",
                        &["security", "--offline=yes", threshold, &root_arg, &path],
                    ),
                    LIMIT,
                )
                .unwrap();
                let said = text(&out.stdout);
                assert!(
                    out.status.success(),
                    "{unit} is more exposed than {threshold}:\n{}",
                    said.lines().last().unwrap_or_default()
                );
            }
        }
    }

    // ---- The packaged configurations are the programs' own.
    let a_config = a.tree.join("etc/kaoqin/agent.toml");
    let agent_bin = a.tree.join("usr/bin/kaoqin-agent");
    let packaged = ok(cmd(&agent_bin, &["check-config", "--config"])
        .arg(&a_config)
        .built());
    let defaults = ok(cmd(&agent_bin, &["check-config"]));
    assert_eq!(
        packaged, defaults,
        "/etc/kaoqin/agent.toml leaves every setting at its default"
    );
    assert!(defaults.contains("state_dir = \"/var/lib/kaoqin-agent\""));
    let example = a
        .tree
        .join("usr/share/doc/kaoqin-agent/examples/agent.example.toml");
    ok(cmd(&agent_bin, &["check-config", "--config"])
        .arg(&example)
        .built());

    // The collector serves with its packaged configuration over TLS (another
    // data dir: the configured one is this machine's).
    let collector_bin = c.tree.join("usr/bin/kaoqin-collector");
    let c_config_path = c.tree.join("etc/kaoqin/collector.toml");
    let data = tmp.path().join("collector-data");
    let with_config = |args: &[&str]| {
        let mut x = cmd(&collector_bin, args);
        x.arg("--config")
            .arg(&c_config_path)
            .arg("--data-dir")
            .arg(&data);
        x
    };
    ok(with_config(&["tls", "init", "--name", "127.0.0.1"]));
    let served = Served::start(with_config(&["serve", "--grpc", "127.0.0.1:0"]));
    assert_eq!(served.scheme, "https", "TLS once `tls init` has run");
    let token = ok(with_config(&["token", "create", "--ttl", "1h"]))
        .trim()
        .to_owned();

    // ---- Enrolment on the first start, from enroll.env (the unit's
    // EnvironmentFile=), by the packaged script and agent.
    let example_env = a.read("etc/kaoqin/enroll.env.example");
    let keys: BTreeSet<String> = environment_file(&example_env)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        ["KAOQIN_CA", "KAOQIN_COLLECTOR", "KAOQIN_TOKEN"]
            .map(String::from)
            .into(),
        "enroll.env.example names what the script reads"
    );
    let enroll_env = |collector: &str, ca: &Path, token: &str| -> String {
        example_env
            .lines()
            .map(|l| {
                if l.starts_with("KAOQIN_COLLECTOR=") {
                    format!("KAOQIN_COLLECTOR={collector}")
                } else if l.starts_with("KAOQIN_CA=") {
                    format!("KAOQIN_CA={}", ca.display())
                } else if l.starts_with("KAOQIN_TOKEN=") {
                    format!("KAOQIN_TOKEN={token}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first_start_in = |state: &Path, env: &str| -> Output {
        let mut x = cmd(&first_start, &["--config"]);
        x.arg(&a_config)
            .arg("--state-dir")
            .arg(state)
            .env_remove("KAOQIN_COLLECTOR")
            .env_remove("KAOQIN_CA")
            .env_remove("KAOQIN_TOKEN")
            .envs(environment_file(env));
        run_bounded(x, LIMIT).unwrap()
    };
    let ca = data.join("tls").join("ca.pem");
    let state = tmp.path().join("agent-state");
    // No enroll.env: nothing happens, the agent will wait.
    let out = first_start_in(&state, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Not enrolled"));
    assert!(!state.join("enrolment.json").exists());
    // A refused token fails the start (systemd tries again later).
    let out = first_start_in(&state, &enroll_env(&served.url(), &ca, "kq1-not-a-token"));
    assert!(!out.status.success(), "a refused enrolment fails the start");
    assert!(!state.join("enrolment.json").exists());
    // The real one enrols, pinning the CA.
    let out = first_start_in(&state, &enroll_env(&served.url(), &ca, &token));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let enrolment = std::fs::read(state.join("enrolment.json")).unwrap();
    let e: serde_json::Value = serde_json::from_slice(&enrolment).unwrap();
    assert_eq!(e["collector"], served.url());
    assert!(e["ca_pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    assert_eq!(mode(&state), 0o700);
    let agents = ok(with_config(&["agents", "list"]));
    assert!(agents.contains(e["agent_id"].as_str().unwrap()), "{agents}");
    // Enrolled: later starts leave the identity alone, whatever enroll.env says.
    let out = first_start_in(&state, &enroll_env(&served.url(), &ca, "kq1-stale"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(state.join("enrolment.json")).unwrap(),
        enrolment
    );
    drop(served);

    // ---- Installed into a temporary root, as root (see the module's comment).
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
        && skip("the installation into a temporary root needs root")
    {
        return;
    }
    let tools = [
        ("systemd-sysusers", "systemd"),
        ("deb-systemd-helper", "init-system-helpers"),
        ("setpriv", "util-linux"),
    ];
    if let Some(why) = missing(&tools)
        && skip(&why)
    {
        return;
    }
    let host_before = host_snapshot();
    let root = tmp.path().join("root");
    for d in ["etc", "var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let debs = [collector_deb.to_str().unwrap(), agent_deb.to_str().unwrap()];
    dpkg_ok(&root, &["--force-depends", "-i", debs[0], debs[1]]);
    for p in ["kaoqin-collector", "kaoqin-agent"] {
        let s = dpkg_ok(&root, &["-s", p]);
        assert!(s.contains("Status: install ok installed"), "{s}");
    }
    let verify = dpkg_ok(&root, &["--verify", "kaoqin-collector", "kaoqin-agent"]);
    assert!(verify.is_empty(), "installed files match md5sums: {verify}");

    // The system user and its group, in the root's own files.
    let users = entries(&root.join("etc/passwd"), "kaoqin-collector");
    assert_eq!(users.len(), 1, "{users:?}");
    let user = &users[0];
    let (uid, gid): (u32, u32) = (user[2].parse().unwrap(), user[3].parse().unwrap());
    assert!((1..1000).contains(&uid), "a system uid: {uid}");
    assert_eq!(user[5], "/var/lib/kaoqin-collector");
    assert_eq!(user[6], "/usr/sbin/nologin");
    let groups = entries(&root.join("etc/group"), "kaoqin-collector");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0][2], gid.to_string());
    // Files, owners and modes.
    let c_data = root.join("var/lib/kaoqin-collector");
    let c_conf = root.join("etc/kaoqin/collector.toml");
    let a_state = root.join("var/lib/kaoqin-agent");
    let owner = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    };
    assert_eq!(owner(&c_data), (uid, gid, 0o750));
    assert_eq!(
        owner(&c_conf),
        (0, gid, 0o640),
        "root writes it, the service reads it"
    );
    assert_eq!(owner(&a_state), (0, 0, 0o700));
    for p in [
        "usr/bin/kaoqin-collector",
        "usr/bin/kaoqin-agent",
        "usr/libexec/kaoqin-agent/enroll-on-first-start",
    ] {
        assert_eq!(mode(&root.join(p)), 0o755, "{p}");
    }
    // Enabled: the links systemd reads at boot.
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    for unit in ["kaoqin-collector.service", "kaoqin-agent.service"] {
        assert_eq!(
            std::fs::read_link(wants.join(unit)).unwrap(),
            Path::new("/lib/systemd/system").join(unit)
        );
    }
    // ... and not started while unconfigured: their conditions do not hold.
    let c_unit =
        std::fs::read_to_string(root.join("lib/systemd/system/kaoqin-collector.service")).unwrap();
    let a_unit =
        std::fs::read_to_string(root.join("lib/systemd/system/kaoqin-agent.service")).unwrap();
    assert!(!conditions_hold(&root, &c_unit), "no certificate yet");
    assert!(
        !conditions_hold(&root, &a_unit),
        "not enrolled, no enroll.env"
    );

    // The administrator's first steps, as the service user: TLS, then the
    // unit's own command line (with the root's data dir and a free port).
    let as_service = |line: &str| -> Command {
        let mut x = Command::new("setpriv");
        x.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(command_in_root(&root, line).get_program())
            .args(command_in_root(&root, line).get_args())
            .env("KAOQIN_LOG", "error");
        x
    };
    let in_data = |mut x: Command| {
        x.arg("--data-dir").arg(&c_data);
        x
    };
    ok(in_data(as_service(
        "/usr/bin/kaoqin-collector tls init --config /etc/kaoqin/collector.toml --name 127.0.0.1",
    )));
    assert_eq!(owner(&c_data.join("tls/server.key")), (uid, gid, 0o600));
    assert!(conditions_hold(&root, &c_unit), "configured: it may start");
    let mut serve = in_data(as_service(&unit_value(&c_unit, "ExecStart")));
    serve.args(["--grpc", "127.0.0.1:0"]);
    let served = Served::start(serve);
    assert_eq!(served.scheme, "https");
    let token = ok(in_data(as_service(
        "/usr/bin/kaoqin-collector token create --config /etc/kaoqin/collector.toml",
    )))
    .trim()
    .to_owned();

    // A rollout: enroll.env in the root, then the agent unit's first start.
    let env_path = root.join("etc/kaoqin/enroll.env");
    let env_text = enroll_env(&served.url(), &c_data.join("tls/ca.pem"), &token);
    std::fs::write(&env_path, &env_text).unwrap();
    std::fs::set_permissions(&env_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        conditions_hold(&root, &a_unit),
        "given enroll.env: it starts"
    );
    assert!(unit_value(&a_unit, "EnvironmentFile").ends_with("/etc/kaoqin/enroll.env"));
    let mut pre = command_in_root(&root, &unit_value(&a_unit, "ExecStartPre"));
    pre.envs(environment_file(&env_text));
    ok(pre);
    let enrolment = std::fs::read(a_state.join("enrolment.json")).unwrap();
    let agent_id = serde_json::from_slice::<serde_json::Value>(&enrolment).unwrap()["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The unit's ExecStart: the agent runs, its start reaches the collector; a
    // SIGTERM (systemctl stop) is recorded and delivered as the service's stop.
    let events = || -> Vec<serde_json::Value> {
        ok(in_data(as_service(
            "/usr/bin/kaoqin-collector events --config /etc/kaoqin/collector.toml",
        )))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
    };
    let lifecycle = |kind: &str, reason: Option<&str>| {
        events().into_iter().any(|e| {
            e["type"] == "lifecycle"
                && e["kind"] == kind
                && e["agent_id"] == agent_id.as_str()
                && reason.is_none_or(|r| e["reason"] == r)
        })
    };
    let mut run = command_in_root(&root, &unit_value(&a_unit, "ExecStart"));
    let mut agent = KillOnDrop(
        run.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("the packaged agent's start", LIMIT, || {
        lifecycle("start", None).then_some(())
    });
    ok(cmd("kill", &["-TERM", &agent.0.id().to_string()]));
    let stopped = kaoqin_tests::wait_bounded(&mut agent.0, LIMIT).unwrap();
    assert!(stopped.success(), "the agent ends cleanly on SIGTERM");
    assert!(
        lifecycle("stop", Some("service_stop")),
        "the stop was delivered before it ended"
    );
    assert!(a_state.join("spool.db").exists());
    drop(served);

    // ---- Upgrade in place (the same version again takes the same paths:
    // prerm upgrade, postinst configure OLD): the administrator's edit of a
    // conffile, the user, the data, the identity and the spool stay.
    let mut edited = std::fs::read_to_string(&c_conf).unwrap();
    edited.push_str("# edited by the office\n");
    std::fs::write(&c_conf, &edited).unwrap();
    let spool = std::fs::read(a_state.join("spool.db")).unwrap();
    dpkg_ok(&root, &["--force-depends", "-i", debs[0], debs[1]]);
    assert_eq!(std::fs::read_to_string(&c_conf).unwrap(), edited);
    assert_eq!(owner(&c_conf), (0, gid, 0o640));
    assert_eq!(
        entries(&root.join("etc/passwd"), "kaoqin-collector"),
        users,
        "the same user, once"
    );
    assert_eq!(
        std::fs::read(a_state.join("enrolment.json")).unwrap(),
        enrolment
    );
    assert_eq!(std::fs::read(a_state.join("spool.db")).unwrap(), spool);
    assert!(c_data.join("tls/ca.pem").exists());
    for unit in ["kaoqin-collector.service", "kaoqin-agent.service"] {
        assert!(
            std::fs::read_link(wants.join(unit)).is_ok(),
            "{unit} is still enabled"
        );
    }

    // ---- Removal: programs and units go; configuration, state, data and the
    // user stay; the units are masked until purge or reinstallation.
    dpkg_ok(&root, &["-r", "kaoqin-agent", "kaoqin-collector"]);
    for gone in [
        "usr/bin/kaoqin-collector",
        "usr/bin/kaoqin-agent",
        "lib/systemd/system/kaoqin-collector.service",
        "lib/systemd/system/kaoqin-agent.service",
        "usr/libexec/kaoqin-agent",
        "usr/share/doc/kaoqin-agent",
    ] {
        assert!(!root.join(gone).exists(), "{gone} is removed");
    }
    for kept in [
        "etc/kaoqin/collector.toml",
        "etc/kaoqin/agent.toml",
        "etc/kaoqin/enroll.env",
        "var/lib/kaoqin-agent/enrolment.json",
        "var/lib/kaoqin-collector/tls/ca.pem",
    ] {
        assert!(root.join(kept).exists(), "{kept} is kept on removal");
    }
    for unit in ["kaoqin-collector.service", "kaoqin-agent.service"] {
        assert_eq!(
            std::fs::read_link(root.join("etc/systemd/system").join(unit)).unwrap(),
            Path::new("/dev/null"),
            "{unit} is masked"
        );
    }
    let s = dpkg_ok(&root, &["-s", "kaoqin-agent"]);
    assert!(s.contains("Status: deinstall ok config-files"), "{s}");

    // ---- Purge: nothing is left but the collector's data directory and its
    // user (docs/packages.md: the attendance records are deleted by hand).
    dpkg_ok(&root, &["-P", "kaoqin-agent", "kaoqin-collector"]);
    for p in ["kaoqin-collector", "kaoqin-agent"] {
        assert!(!dpkg(&root, &["-s", p]).status.success(), "{p} is purged");
    }
    let left: BTreeSet<String> = files_under(&root)
        .into_iter()
        .filter(|p| !p.starts_with("var/lib/dpkg/"))
        .collect();
    let data_left: BTreeSet<&String> = left
        .iter()
        .filter(|p| p.starts_with("var/lib/kaoqin-collector/"))
        .collect();
    assert!(
        data_left.contains(&"var/lib/kaoqin-collector/tls/ca.pem".to_owned()),
        "{data_left:?}"
    );
    let others: BTreeSet<&String> = left
        .iter()
        .filter(|p| !p.starts_with("var/lib/kaoqin-collector/"))
        .collect();
    let accounts = [
        "passwd",
        "group",
        "shadow",
        "gshadow",
        ".pwd.lock",
        "passwd-",
        "group-",
        "shadow-",
        "gshadow-",
    ];
    for p in &others {
        assert!(
            p.strip_prefix("etc/")
                .is_some_and(|name| accounts.contains(&name)),
            "{p} is left after purge: {others:?}"
        );
    }
    for gone in [
        "etc/kaoqin",
        "var/lib/kaoqin-agent",
        "etc/systemd/system/multi-user.target.wants",
    ] {
        assert!(!root.join(gone).exists(), "{gone} is gone after purge");
    }
    assert_eq!(
        entries(&root.join("etc/passwd"), "kaoqin-collector"),
        users,
        "the user who owns the kept data stays"
    );
    assert_eq!(
        host_snapshot(),
        host_before,
        "this machine's own files did not change"
    );
    eprintln!("the .deb test took {:?}", started.elapsed());
}

// ---- The Windows installer under Wine.

/// Creating a Wine prefix takes a while on a busy machine.
const FIRST_START: Duration = Duration::from_secs(300);

/// Kills the child on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl WinePrefix {
    /// `wine64 PROGRAM ARGS` in this prefix.
    fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(WINE);
        c.arg(program)
            .args(args)
            .env("WINEPREFIX", &self.0)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("KAOQIN_LOG", "warn")
            .env_remove("DISPLAY");
        c
    }

    /// Runs a Wine command within `limit`, with its output in files: Wine's own
    /// processes (wineserver, services.exe) inherit the first command's handles
    /// and outlive it, so a pipe would never report its end.
    fn run(&self, mut c: Command, limit: Duration) -> Output {
        let desc = format!("{c:?}");
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let mut child = c
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{desc}: {e}"));
        let status =
            kaoqin_tests::wait_bounded(&mut child, limit).unwrap_or_else(|e| panic!("{desc}: {e}"));
        Output {
            status,
            stdout: std::fs::read(&out).unwrap_or_default(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        }
    }

    fn drive_c(&self, path: &str) -> PathBuf {
        self.0.join("drive_c").join(path)
    }

    /// `EXE session-helper --print`, a process that runs until killed, once it
    /// has printed its first sample (to `out`).
    fn helper(&self, exe: &str, out: &Path) -> KillOnDrop {
        let child = KillOnDrop(
            self.cmd(exe, &["session-helper", "--print"])
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(out).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        eventually("a session helper's first sample", FIRST_START, || {
            std::fs::read_to_string(out)
                .is_ok_and(|s| s.contains("idle_ms"))
                .then_some(())
        });
        child
    }

    /// `reg query KEY`: the values, or None if the key does not exist.
    fn reg_query(&self, key: &str) -> Option<String> {
        let out = self.run(self.cmd("reg", &["query", key]), LIMIT);
        out.status.success().then(|| text(&out.stdout))
    }
}

/// A Unix path as Wine's Z: drive shows it.
fn wine_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// The Group Policy startup script of docs/deploy-windows.md, for this version,
/// `collector` and `token`, with `/CONFIG="office agent.toml"` added.
fn startup_script(collector: &str, token: &str) -> String {
    let doc = std::fs::read_to_string(workspace().join("docs/deploy-windows.md")).unwrap();
    let start = doc
        .find("@echo off\nrem kaoqin-startup.cmd")
        .expect("the startup script in docs/deploy-windows.md");
    let script = &doc[start..start + doc[start..].find("```").unwrap()];
    let placeholders = [
        ("set VERSION=0.1.0", format!("set VERSION={VERSION}")),
        ("https://kaoqin.office.example:50051", collector.to_owned()),
        (
            " /TOKEN=kq1-PASTE-TOKEN-HERE",
            format!(" /CONFIG=\"office agent.toml\" /TOKEN={token}"),
        ),
    ];
    let mut script = script.to_owned();
    for (from, to) in placeholders {
        assert!(script.contains(from), "{from:?} in the startup script");
        script = script.replace(from, &to);
    }
    script
}

/// What Wine cannot show, and this test therefore does not: the access list the
/// installer puts on `%ProgramData%\kaoqin` (Wine's `icacls` does nothing and
/// Wine does not enforce access lists; the list is unit-tested in
/// `agent/src/state.rs`); administrator rights and UAC (everything runs as an
/// administrator) and the SYSTEM account of a startup script; the service's
/// restart on failure (Wine refuses the failure actions, `install.log` shows the
/// warning); a start at boot (the registration's automatic start is checked);
/// helpers in other users' sessions (Wine has one session); the deletion at the
/// next restart of a program file moved aside; the Apps and Features page (its
/// registry entry is checked); an uninstaller run with `_?=`; a value quoted on
/// its own (`/CONFIG="a b"`, as Windows' `cmd` passes it; Wine's `start` quotes
/// the whole option, the other form the installer reads); and Windows' own
/// version checks (Wine says it is Windows 7).
///
/// Under Wine a service sees another `%ProgramData%` (`C:\users\Public`) than
/// the installer does, so an installer that left the state directory to the
/// service's environment would fail here: the registration's `--state-dir` is
/// checked.
#[test]
fn the_windows_installer_installs_upgrades_and_uninstalls_silently_under_wine() {
    let tools = [
        ("dpkg-deb", "dpkg"),
        ("strip", "binutils"),
        ("objdump", "binutils"),
        ("readelf", "binutils"),
        ("makensis", "nsis"),
        (WINE, "wine64"),
        (MINGW_GCC, "gcc-mingw-w64-x86-64"),
    ];
    if let Some(why) = missing(&tools)
        && skip(&why)
    {
        return;
    }
    // The release .exe that .ci/run cross-builds before the tests.
    let target_dir = bin("kaoqin-agent")
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let exe = target_dir
        .join(TARGET)
        .join("release")
        .join("kaoqin-agent.exe");
    if !exe.exists()
        && skip(&format!(
            "{} is missing (cargo build -p kaoqin-agent --release --target {TARGET})",
            exe.display()
        ))
    {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("packages");
    let built = package(&out, Some(&exe));
    let setup = out.join(format!("kaoqin-agent-{VERSION}-setup.exe"));
    assert_eq!(built.last(), Some(&setup), "{built:?}");
    let head = std::fs::read(&setup).unwrap();
    assert_eq!(&head[..2], b"MZ", "a Windows program");
    eprintln!("packages built in {:?}", started.elapsed());

    // A Wine prefix with the stand-in for bcryptprimitives.dll, which Rust's
    // std imports and Debian's Wine 8 lacks (see tests/wine/; real Windows has it).
    let prefix = WinePrefix(tmp.path().join("wineprefix"));
    let out = prefix.run(prefix.cmd("cmd", &["/c", "ver"]), FIRST_START);
    assert!(out.status.success(), "creating the Wine prefix");
    let wine_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("wine");
    let mut gcc = Command::new(MINGW_GCC);
    gcc.args(["-shared", "-O2", "-o"])
        .arg(prefix.drive_c("windows/system32/bcryptprimitives.dll"))
        .arg(wine_src.join("bcryptprimitives.c"))
        .arg(wine_src.join("bcryptprimitives.def"))
        .arg("-ladvapi32");
    ok(gcc);

    let program_dir = prefix.drive_c("Program Files/kaoqin");
    let state_dir = prefix.drive_c("ProgramData/kaoqin");
    let installed_exe = program_dir.join("kaoqin-agent.exe");
    let setup_w = wine_path(&setup);
    let service_key = r"HKLM\SYSTEM\CurrentControlSet\Services\kaoqin-agent";
    let uninstall_key = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\kaoqin-agent";
    let install_log = || std::fs::read_to_string(state_dir.join("install.log")).unwrap_or_default();
    let setup_run = |args: &[&str]| prefix.run(prefix.cmd(&setup_w, args), LIMIT);

    // Wine ends its services once no ordinary process is left: a helper (a copy
    // under another name, so that the installer's taskkill spares it) keeps the
    // service company while the test looks at what it delivers.
    let keep_alive_exe = tmp.path().join("keep-alive.exe");
    std::fs::copy(&exe, &keep_alive_exe).unwrap();
    let _keep_alive = prefix.helper(
        &wine_path(&keep_alive_exe),
        &tmp.path().join("keep-alive.out"),
    );

    // 1. A PC never enrolled, no parameters: exit 2, no service. A CA file that
    // is not there: exit 2, nothing enrolled (never a silent plaintext enrolment).
    let collector = Collector::start_tls(&tmp.path().join("collector"), "127.0.0.1:0").unwrap();
    let token = collector.token().unwrap();
    let ca = collector.ca.clone().expect("a TLS collector has a CA");
    let out = setup_run(&["/S"]);
    assert_eq!(out.status.code(), Some(2), "{}", install_log());
    assert!(!state_dir.join("enrolment.json").exists());
    assert!(prefix.reg_query(service_key).is_none());
    assert!(install_log().contains("FAILED (exit 2): This PC is not enrolled"));
    let out = setup_run(&[
        "/S",
        &format!("/COLLECTOR={}", collector.url()),
        "/CA=no-such-ca.pem",
        &format!("/TOKEN={token}"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", install_log());
    assert!(install_log().contains("given with /CA= cannot be read"));
    assert!(!state_dir.join("enrolment.json").exists());
    // Not installed as far as a distribution tool can tell.
    let entry = prefix.reg_query(uninstall_key).unwrap_or_default();
    assert!(!entry.contains("DisplayVersion"), "{entry}");

    // 2. The silent installation of a rollout by the Group Policy startup
    // script of docs/deploy-windows.md, run from a share folder holding it, the
    // installer and ca.pem (a folder with a space in its name, and a quoted
    // /CONFIG with one): enrols over TLS with the CA, installs the
    // configuration, registers and starts the service, and passes the
    // installer's exit code on.
    let share = tmp.path().join("share kaoqin");
    std::fs::create_dir(&share).unwrap();
    std::fs::copy(&setup, share.join(setup.file_name().unwrap())).unwrap();
    std::fs::copy(&ca, share.join("ca.pem")).unwrap();
    std::fs::write(share.join("office agent.toml"), "[spool]\nmax_mib = 32\n").unwrap();
    let startup = startup_script(&collector.url(), &token);
    let script = share.join("kaoqin-startup.cmd");
    std::fs::write(&script, startup.replace('\n', "\r\n")).unwrap();
    let run_script = || prefix.run(prefix.cmd("cmd", &["/c", &wine_path(&script)]), LIMIT);
    let out = run_script();
    let log = install_log();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.trim_end().ends_with("done"), "{log}");
    assert!(!log.contains(&token), "the token is not logged");
    assert_eq!(
        std::fs::read(&installed_exe).unwrap(),
        std::fs::read(&exe).unwrap()
    );
    assert!(program_dir.join("uninstall.exe").is_file());
    assert_eq!(
        std::fs::read_to_string(state_dir.join("agent.toml")).unwrap(),
        "[spool]\nmax_mib = 32\n"
    );
    // Run again at the next boot: this version is installed, nothing happens.
    let out = run_script();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(install_log(), log, "the installer did not run again");
    let enrolment = std::fs::read(state_dir.join("enrolment.json")).unwrap();
    let e: serde_json::Value = serde_json::from_slice(&enrolment).unwrap();
    assert_eq!(e["collector"], collector.url());
    assert!(e["ca_pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    let agent_id = e["agent_id"].as_str().unwrap().to_owned();
    let service = prefix
        .reg_query(service_key)
        .expect("the service is registered");
    assert!(
        service.contains(
            r#""C:\Program Files\kaoqin\kaoqin-agent.exe" service run --config C:\ProgramData\kaoqin\agent.toml --state-dir C:\ProgramData\kaoqin"#
        ),
        "{service}"
    );
    assert!(
        service.contains("Start    REG_DWORD    0x2"),
        "automatic start: {service}"
    );
    let entry = prefix
        .reg_query(uninstall_key)
        .expect("Add/Remove Programs");
    assert!(
        entry.contains(&format!("DisplayVersion    REG_SZ    {VERSION}")),
        "{entry}"
    );
    assert!(
        entry.contains(
            r#"QuietUninstallString    REG_SZ    "C:\Program Files\kaoqin\uninstall.exe" /S"#
        ),
        "{entry}"
    );
    // The service runs from the installed files with that identity.
    let lifecycle = |kind: &str, reasons: &[&str]| {
        collector
            .events()
            .unwrap()
            .iter()
            .filter(|e| {
                e["type"] == "lifecycle"
                    && e["kind"] == kind
                    && e["agent_id"] == agent_id.as_str()
                    && reasons.iter().any(|r| e["reason"] == *r)
            })
            .count()
    };
    let starts = ["system_boot", "service_start", "crash_restart"];
    eventually("the installed service's start", LIMIT, || {
        (lifecycle("start", &starts) == 1).then_some(())
    });

    // 3. Upgrade in place, no parameters: the service and a session helper of
    // the old version are stopped, the program replaced, the identity, the
    // configuration and the spool kept, the service started again.
    let mut old_helper = prefix.helper(
        r"C:\Program Files\kaoqin\kaoqin-agent.exe",
        &tmp.path().join("old-helper.out"),
    );
    // And a process taskkill does not end (another name) runs the same file (a
    // hard link): Wine, like Windows, refuses to delete or overwrite a running
    // program's file but lets it be renamed, so the installer moves it aside.
    let locker_exe = tmp.path().join("locker.exe");
    std::fs::hard_link(&installed_exe, &locker_exe).unwrap();
    let locker = prefix.helper(&wine_path(&locker_exe), &tmp.path().join("locker.out"));
    let old_file = std::fs::metadata(&installed_exe).unwrap().ino();
    let out = setup_run(&["/S"]);
    assert_eq!(out.status.code(), Some(0), "{}", install_log());
    let ended = kaoqin_tests::wait_bounded(&mut old_helper.0, LIMIT);
    assert!(ended.is_ok(), "the old session helper was ended");
    let moved = program_dir.join("kaoqin-agent.exe.old");
    assert_eq!(
        std::fs::metadata(&moved).map(|m| m.ino()).ok(),
        Some(old_file),
        "the running program file was moved aside"
    );
    assert_ne!(std::fs::metadata(&installed_exe).unwrap().ino(), old_file);
    assert_eq!(
        std::fs::read(&installed_exe).unwrap(),
        std::fs::read(&exe).unwrap()
    );
    drop(locker);
    assert_eq!(
        std::fs::read(state_dir.join("enrolment.json")).unwrap(),
        enrolment
    );
    assert!(state_dir.join("spool.db").is_file());
    assert!(state_dir.join("agent.toml").is_file());
    eventually("the upgrade's stop and start", LIMIT, || {
        (lifecycle("stop", &["service_stop"]) == 1 && lifecycle("start", &starts) == 2)
            .then_some(())
    });

    // 4. Silent uninstallation: service and program gone, state kept. The
    // uninstaller runs on from a copy of itself, so the test waits for it.
    let uninstaller = r"C:\Program Files\kaoqin\uninstall.exe";
    let out = prefix.run(prefix.cmd(uninstaller, &["/S"]), LIMIT);
    assert!(out.status.success());
    eventually("the uninstaller", LIMIT, || {
        (!program_dir.exists() && install_log().contains("removed (keep state)")).then_some(())
    });
    assert!(
        prefix.reg_query(service_key).is_none(),
        "the service is removed"
    );
    assert!(prefix.reg_query(uninstall_key).is_none());
    assert_eq!(
        std::fs::read(state_dir.join("enrolment.json")).unwrap(),
        enrolment
    );
    assert!(state_dir.join("spool.db").is_file());
    eventually("the uninstalled service's stop", LIMIT, || {
        (lifecycle("stop", &["service_stop"]) == 2).then_some(())
    });

    // 5. Installed again without parameters: the kept identity is used.
    let out = setup_run(&["/S"]);
    assert_eq!(out.status.code(), Some(0), "{}", install_log());
    assert_eq!(
        std::fs::read(state_dir.join("enrolment.json")).unwrap(),
        enrolment
    );
    assert!(prefix.reg_query(service_key).is_some());
    eventually("the reinstalled service's start", LIMIT, || {
        (lifecycle("start", &starts) == 3).then_some(())
    });

    // 6. /PURGE: the state goes too.
    let out = prefix.run(prefix.cmd(uninstaller, &["/S", "/PURGE"]), LIMIT);
    assert!(out.status.success());
    eventually("the purging uninstaller", LIMIT, || {
        (!program_dir.exists() && !state_dir.exists()).then_some(())
    });
    assert!(prefix.reg_query(service_key).is_none());
    eprintln!("the Windows installer test took {:?}", started.elapsed());
}

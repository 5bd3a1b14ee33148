//! The applications each account is running, from one long-lived sysinfo `System`.
//!
//! Kept cheap because it runs every sample interval on every PC: each refresh reads
//! only the process list, and the executable path, command line and owner of
//! processes it has not seen before (`UpdateKind::OnlyIfNotSet`), never threads.
//! The uid -> account table is re-read at most every [`USERS_REFRESH_MS`], or when
//! an unknown uid shows up (at most once a minute).
//!
//! An application's name is its executable's file name (not the 15-character
//! kernel `comm`), else `cmd[0]`'s; programs under Wine are named after the
//! Windows executable. Kernel threads, shells and desktop plumbing are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::Path;

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind, Users};

use crate::probe::App;
use kaoqin_proto::classify::strip_exe;

/// How often the uid -> name table is re-read regardless.
pub(super) const USERS_REFRESH_MS: i64 = 10 * 60 * 1000;

/// Processes that are part of the desktop or the shell, not applications.
const NOT_APPS: &[&str] = &[
    "systemd",
    "(sd-pam)",
    "sd-pam",
    "dbus-daemon",
    "dbus-broker",
    "dbus-broker-launch",
    "dbus-launch",
    "dbus-run-session",
    "pipewire",
    "pipewire-pulse",
    "wireplumber",
    "pulseaudio",
    "gnome-keyring-daemon",
    "ssh-agent",
    "gpg-agent",
    "sshd",
    "sshd-session",
    "login",
    "agetty",
    "su",
    "sudo",
    "bash",
    "sh",
    "dash",
    "zsh",
    "fish",
    "tmux",
    "screen",
    "Xorg",
    "Xwayland",
    "xinit",
    "startx",
    "kaoqin-agent",
    "fcitx",
    "fcitx5",
    "ibus-daemon",
    "polkit-gnome-authentication-agent-1",
];

/// Prefixes of desktop helper processes.
const NOT_APP_PREFIXES: &[&str] = &[
    "gvfs",
    "at-spi",
    "xdg-",
    "gsd-",
    "ibus-",
    "evolution-",
    "tracker-",
    "dconf-",
];

/// The application name for a process, or `None` if it is not an application.
pub(super) fn app_name(exe: Option<&Path>, cmd: &[OsString]) -> Option<String> {
    let cmd0 = cmd
        .first()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|c| !c.is_empty());
    if exe.is_none() && cmd0.is_none() {
        return None; // kernel thread or zombie
    }
    if exe.is_some_and(|p| p.starts_with("/usr/libexec") || p.starts_with("/usr/lib/libexec")) {
        return None;
    }
    let exe_name = exe.and_then(|p| p.file_name()).map(|n| {
        n.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_owned()
    });
    let base = |s: &str| s.rsplit(['/', '\\']).next().unwrap_or(s).to_owned();
    // Under Wine cmd[0] is the Windows path (`C:\\Program Files\\...\\WeChat.exe`).
    let windows_exe = cmd0
        .as_deref()
        .filter(|c| c.to_ascii_lowercase().ends_with(".exe"))
        .map(base);
    // Otherwise cmd[0] may carry arguments (`/opt/x/app --type=gpu` when a program
    // rewrites its command line): take the file name of its first word.
    let cmd_name = cmd0
        .as_deref()
        .map(|c| base(c.split(' ').next().unwrap_or(c)));
    let name = match (exe_name, windows_exe, cmd_name) {
        (Some(e), Some(w), _) if e.starts_with("wine") => w,
        (Some(e), _, _) => e,
        (None, Some(w), _) => w,
        (None, None, Some(c)) => c,
        (None, None, None) => return None,
    };
    let name = strip_exe(&name);
    if name.is_empty()
        || NOT_APPS.contains(&name)
        || NOT_APP_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        return None;
    }
    Some(name.to_owned())
}

/// The application name of one process, read from `/proc` (for the foreground
/// window's pid, without refreshing the whole process list).
pub(super) fn app_name_of_pid(pid: u32) -> Option<String> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let cmd: Vec<OsString> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| OsString::from(String::from_utf8_lossy(s).into_owned()))
                .collect()
        })
        .unwrap_or_default();
    app_name(exe.as_deref(), &cmd).or_else(|| {
        // A desktop process we would hide from the running list is still what
        // is in front (a file manager helper, a terminal): name it anyway.
        exe.as_deref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    })
}

/// The running-application source.
pub(super) struct Procs {
    sys: System,
    users: Users,
    users_read_ms: Option<i64>,
}

impl Procs {
    pub(super) fn new() -> Result<Procs, String> {
        let sys = System::new().map_err(|e| format!("cannot read processes: {e}"))?;
        let users = Users::new().map_err(|e| format!("cannot read the user list: {e}"))?;
        Ok(Procs {
            sys,
            users,
            users_read_ms: None,
        })
    }

    fn refresh_users(&mut self, now_ms: i64, force: bool) {
        let due = match self.users_read_ms {
            None => true,
            Some(t) => now_ms - t >= USERS_REFRESH_MS || (force && now_ms - t >= 60_000),
        };
        if due {
            self.users.refresh();
            self.users_read_ms = Some(now_ms);
        }
    }

    /// The account name of a uid.
    pub(super) fn account_of_uid(&mut self, uid: u32, now_ms: i64) -> Option<String> {
        self.refresh_users(now_ms, false);
        let uid = sysinfo_uid(uid)?;
        if self.users.get_user_by_id(&uid).is_none() {
            self.refresh_users(now_ms, true);
        }
        self.users.get_user_by_id(&uid).map(|u| u.name().to_owned())
    }

    /// Distinct applications (sorted by name, titles `None`) per account in
    /// `accounts`. Accounts with nothing running map to an empty list.
    pub(super) fn running(
        &mut self,
        accounts: &BTreeSet<String>,
        now_ms: i64,
    ) -> BTreeMap<String, Vec<App>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = accounts
            .iter()
            .map(|a| (a.clone(), BTreeSet::new()))
            .collect();
        if accounts.is_empty() {
            return BTreeMap::new();
        }
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_exe(UpdateKind::OnlyIfNotSet)
                .with_cmd(UpdateKind::OnlyIfNotSet)
                .with_user(UpdateKind::OnlyIfNotSet),
        );
        self.refresh_users(now_ms, false);
        let mut unknown_uid = false;
        for p in self.sys.processes().values() {
            let Some(uid) = p.user_id() else { continue };
            let Some(user) = self.users.get_user_by_id(uid) else {
                unknown_uid = true;
                continue;
            };
            let Some(set) = out.get_mut(user.name()) else {
                continue;
            };
            if let Some(name) = app_name(p.exe(), p.cmd()) {
                set.insert(name);
            }
        }
        if unknown_uid {
            // Picked up on the next poll.
            self.refresh_users(now_ms, true);
        }
        out.into_iter()
            .map(|(a, names)| {
                (
                    a,
                    names
                        .into_iter()
                        .map(|name| App { name, title: None })
                        .collect(),
                )
            })
            .collect()
    }
}

fn sysinfo_uid(uid: u32) -> Option<sysinfo::Uid> {
    uid.to_string().parse().ok()
}

/// The uid this process runs as (`/proc/self` belongs to it).
pub(super) fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::{Child, Command};

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn app_names() {
        let p = |s: &str| PathBuf::from(s);
        let cases: &[(Option<PathBuf>, Vec<OsString>, Option<&str>)] = &[
            (
                Some(p("/opt/netease/cloudmusic/NeteaseCloudMusicPlayer")),
                os(&["x"]),
                Some("NeteaseCloudMusicPlayer"),
            ),
            (None, os(&["/usr/bin/QQMusic", "--x"]), Some("QQMusic")),
            (Some(p("/tmp/app (deleted)")), vec![], Some("app")),
            (
                Some(p("/usr/bin/wine64-preloader")),
                os(&["C:\\Program Files\\Tencent\\WeChat\\WeChat.exe"]),
                Some("WeChat"),
            ),
            (
                Some(p("/usr/bin/wine64-preloader")),
                os(&["c:\\windows\\system32\\services.exe"]),
                Some("services"),
            ),
            (Some(p("/usr/bin/bash")), os(&["bash"]), None),
            (
                Some(p("/usr/libexec/gsd-power")),
                os(&["/usr/libexec/gsd-power"]),
                None,
            ),
            (Some(p("/usr/bin/gvfsd-fuse")), os(&["gvfsd-fuse"]), None),
            (None, vec![], None),
            (
                None,
                os(&["/opt/app/electron --type=renderer"]),
                Some("electron"),
            ),
            (Some(p("/opt/x/Game.EXE")), vec![], Some("Game")),
        ];
        for (exe, cmd, want) in cases {
            assert_eq!(
                app_name(exe.as_deref(), cmd).as_deref(),
                *want,
                "{exe:?} {cmd:?}"
            );
        }
    }

    /// A copy of `/bin/sleep` named `name` in `dir`, running.
    pub(crate) fn spawn_named_sleep(dir: &Path, name: &str) -> Child {
        let bin = dir.join(name);
        std::fs::copy("/bin/sleep", &bin).expect("copy /bin/sleep");
        Command::new(&bin)
            .arg("300")
            .spawn()
            .expect("spawn copy of sleep")
    }

    /// Kills the child on drop, so a failing assertion does not leak it.
    pub(crate) struct KillOnDrop(pub(crate) Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    pub(crate) fn own_account() -> String {
        let mut procs = Procs::new().expect("procs");
        procs
            .account_of_uid(own_uid().expect("uid"), 0)
            .expect("own account name")
    }

    #[test]
    fn running_apps_of_the_current_user_include_a_renamed_sleep() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A name no other process on this machine has (a benchmark may be
        // running real-looking QQMusic processes beside the tests).
        let name = format!("QQMusic-test{}", std::process::id());
        let child = KillOnDrop(spawn_named_sleep(dir.path(), &name));
        let me = own_account();
        let mut procs = Procs::new().expect("procs");
        let accounts: BTreeSet<String> = [me.clone(), "nobody-here".to_owned()].into();
        let got = procs.running(&accounts, 1_000);
        let mine: Vec<&str> = got[&me].iter().map(|a| a.name.as_str()).collect();
        assert!(mine.contains(&name.as_str()), "{mine:?}");
        assert!(!mine.contains(&"bash"));
        assert!(got[&me].iter().all(|a| a.title.is_none()));
        assert!(got["nobody-here"].is_empty());
        // Sorted and distinct.
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            app_name_of_pid(child.0.id()).as_deref(),
            Some(name.as_str())
        );
        drop(child);
        let got = procs.running(&accounts, 2_000);
        assert!(!got[&me].iter().any(|a| a.name == name), "gone once killed");
    }
}

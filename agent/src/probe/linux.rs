//! The Linux probe: utmp sessions, logind lock and idle, X11 idle and foreground,
//! and the user's processes.
//!
//! Sources, each optional (one that is missing is noted once in
//! [`Capabilities::notes`] and the others carry on):
//!
//! ```text
//! utmp file ........ logon / logoff          (logind's session list if no utmp)
//! logind (D-Bus) ... lock / unlock, idle     (LockedHint, IdleHint, IdleSinceHint)
//! X11 .............. idle when logind says nothing for the display's account;
//!                    the foreground window (_NET_ACTIVE_WINDOW -> pid -> exe)
//! processes ........ running applications of every other account
//! ```
//!
//! What must stay true:
//! - each poll returns observations in time order, and only changes; the first
//!   poll returns the state at start (logons at their real instants);
//! - instants of a later poll lie between the previous poll and this one;
//! - per account, idle has one source at a time: logind once it has said anything
//!   about the account's idle state, X11 before that;
//! - an account that is locked or idle gets no `Apps`; when it comes back (and at
//!   logon) its applications are reported afresh, since a lock, idle start or
//!   logoff ends the previous `Apps`;
//! - lock and idle are reported independently: a locked screen is away whatever
//!   the idle timer says, and the recorder treats it so;
//! - poll is cheap (a few small reads and at most two D-Bus round trips per
//!   session) and must be called from a thread that is not running async tasks
//!   (the agent calls it inside `spawn_blocking`).

pub mod utmp;

mod display;
mod logind;
mod procs;
mod x11;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use tracing::warn;

use self::logind::AccountHints;
use self::procs::Procs;
use self::utmp::UtmpRecord;
use self::x11::{Front, X11, X11Failure};
use crate::event::SessionKind;
use crate::probe::{App, AppsBasis, Capabilities, Observation, Probe, ProbeError};

/// How long one poll may wait for logind.
const BUS_TIMEOUT: Duration = Duration::from_secs(3);
/// How often to try the X display again after losing it.
const X11_RETRY_MS: i64 = 60_000;

/// What the Linux probe reads and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxProbeOptions {
    /// X11 idle time from which the user counts as idle (logind's idle hint uses the
    /// desktop's own delay).
    pub idle_threshold_ms: u64,
    /// The utmp file (current logons).
    pub utmp_path: PathBuf,
    /// Read logind over the system bus.
    pub use_dbus: bool,
    /// Read the X display (idle time, foreground window).
    pub use_x11: bool,
    /// Report the foreground application where X11 exposes it (otherwise the
    /// running applications).
    pub foreground: bool,
    /// The X display to use; `None` means `$DISPLAY`, or when that is not set,
    /// the display the desktop session's processes name.
    pub x11_display: Option<String>,
}

impl Default for LinuxProbeOptions {
    fn default() -> Self {
        LinuxProbeOptions {
            idle_threshold_ms: 5 * 60 * 1000,
            utmp_path: PathBuf::from("/var/run/utmp"),
            use_dbus: true,
            use_x11: true,
            foreground: true,
            x11_display: None,
        }
    }
}

/// What the probe last reported for an account.
#[derive(Debug, Default)]
struct AccountState {
    locked: bool,
    idle: bool,
    /// The last `Apps` reported, `None` if none holds (never sent, or ended by a
    /// lock, idle start or logon).
    apps: Option<(AppsBasis, Vec<App>)>,
}

/// A current-thread runtime that only runs while the probe waits on D-Bus, and
/// whose drop is safe anywhere.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The Linux implementation of [`Probe`].
pub struct LinuxProbe {
    opts: LinuxProbeOptions,
    caps: Capabilities,
    noted: BTreeSet<&'static str>,
    // Declared before `rt` so the connection drops first.
    bus: Option<zbus::Connection>,
    x11: Option<X11>,
    x11_retry_at_ms: Option<i64>,
    procs: Option<Procs>,
    rt: OwnRuntime,
    own_uid: Option<u32>,
    own_account: Option<String>,
    prev_poll_ms: Option<i64>,
    prev_utmp: Vec<UtmpRecord>,
    logged_on: BTreeMap<String, i64>,
    accounts: BTreeMap<String, AccountState>,
    logind_idle_known: BTreeSet<String>,
}

impl LinuxProbe {
    /// Opens every source the options ask for that this machine has. Never fails:
    /// what is missing is said in [`Capabilities::notes`].
    pub fn new(opts: LinuxProbeOptions) -> LinuxProbe {
        LinuxProbe::build(opts, None)
    }

    /// Like [`LinuxProbe::new`], but reads logind over `bus` instead of connecting to
    /// the system bus (tests serve a fake logind on a socket pair). The runtime that
    /// drives `bus` must keep running while the probe is used.
    pub fn with_bus(opts: LinuxProbeOptions, bus: zbus::Connection) -> LinuxProbe {
        LinuxProbe::build(
            LinuxProbeOptions {
                use_dbus: true,
                ..opts
            },
            Some(bus),
        )
    }

    fn build(opts: LinuxProbeOptions, bus: Option<zbus::Connection>) -> LinuxProbe {
        let mut p = LinuxProbe {
            caps: Capabilities::default(),
            noted: BTreeSet::new(),
            bus: None,
            x11: None,
            x11_retry_at_ms: None,
            procs: None,
            rt: OwnRuntime(None),
            own_uid: procs::own_uid(),
            own_account: None,
            prev_poll_ms: None,
            prev_utmp: Vec::new(),
            logged_on: BTreeMap::new(),
            accounts: BTreeMap::new(),
            logind_idle_known: BTreeSet::new(),
            opts,
        };

        match Procs::new() {
            Ok(mut procs) => {
                p.own_account = p.own_uid.and_then(|uid| procs.account_of_uid(uid, 0));
                p.procs = Some(procs);
                p.caps.processes = true;
            }
            Err(e) => p.note(
                "procs",
                format!("Running applications are not available: {e}."),
            ),
        }
        if p.own_account.is_none() {
            p.own_account = std::env::var("USER").ok().filter(|u| !u.is_empty());
        }

        let utmp_ok = match std::fs::read(&p.opts.utmp_path) {
            Ok(_) => true,
            Err(e) => {
                let msg = format!(
                    "Cannot read {} ({e}): logons and logoffs come from logind if it is available.",
                    p.opts.utmp_path.display()
                );
                p.note("utmp", msg);
                false
            }
        };

        if p.opts.use_dbus {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    p.rt = OwnRuntime(Some(rt));
                    match p.open_logind(bus) {
                        Ok(conn) => {
                            p.bus = Some(conn);
                            p.caps.lock = true;
                            p.caps.idle = true;
                        }
                        Err(e) => p.note(
                            "logind",
                            format!("No lock or idle hints from systemd-logind: {e}."),
                        ),
                    }
                }
                Err(e) => p.note(
                    "logind",
                    format!("No D-Bus: cannot start its runtime: {e}."),
                ),
            }
        } else {
            p.note(
                "logind",
                "D-Bus is turned off: no lock state, and idle only from X11.".to_owned(),
            );
        }
        p.caps.sessions = utmp_ok || p.bus.is_some();

        if p.opts.use_x11 {
            match X11::connect(p.opts.x11_display.as_deref()) {
                Ok(x) => p.adopt_x11(x),
                Err(e) => {
                    p.note(
                        "x11",
                        format!("No X11 idle time or foreground window yet: {e}; trying again every minute."),
                    );
                    // A service starts before anyone logs on: the display comes later.
                    p.x11_retry_at_ms = Some(0);
                }
            }
        } else {
            p.note("x11", "X11 is turned off: no foreground window.".to_owned());
        }
        if !p.caps.foreground {
            p.note("foreground", "The foreground window is not known here: running applications are reported instead.".to_owned());
        }
        if !p.caps.idle {
            p.note("idle", "Idle time is not known here.".to_owned());
        }
        p
    }

    fn adopt_x11(&mut self, x: X11) {
        if x.has_idle() {
            self.caps.idle = true;
        } else {
            self.note(
                "x11-idle",
                format!(
                    "X display {} has no screensaver extension: no X11 idle time.",
                    x.display
                ),
            );
        }
        if self.opts.foreground {
            self.caps.foreground = true;
        }
        self.x11 = Some(x);
    }

    /// Connects to the system bus (or takes `bus`) and checks that logind answers.
    fn open_logind(&self, bus: Option<zbus::Connection>) -> Result<zbus::Connection, String> {
        let rt = self.rt.0.as_ref().ok_or("no runtime")?;
        // A scoped thread, so this works whether or not the caller is inside a runtime.
        std::thread::scope(|s| {
            s.spawn(|| {
                rt.block_on(async {
                    let conn = match bus {
                        Some(c) => c,
                        None => tokio::time::timeout(
                            BUS_TIMEOUT,
                            zbus::connection::Builder::system()
                                .map_err(|e| e.to_string())?
                                .method_timeout(BUS_TIMEOUT)
                                .build(),
                        )
                        .await
                        .map_err(|_| "the system bus did not answer".to_owned())?
                        .map_err(|e| format!("no system bus ({e})"))?,
                    };
                    tokio::time::timeout(BUS_TIMEOUT, logind::read_sessions(&conn))
                        .await
                        .map_err(|_| "logind did not answer".to_owned())?
                        .map_err(|e| format!("logind is not on the bus ({e})"))?;
                    Ok(conn)
                })
            })
            .join()
            .unwrap_or_else(|_| Err("the D-Bus connection thread panicked".to_owned()))
        })
    }

    /// Says something once: at warn level, and in the capabilities' notes.
    fn note(&mut self, key: &'static str, msg: String) {
        if self.noted.insert(key) {
            warn!(source = key, "{msg}");
            self.caps.notes.push(msg);
        }
    }

    /// What logind says per account this poll, or `None` if it is not available.
    fn read_logind(&mut self) -> Option<BTreeMap<String, AccountHints>> {
        let conn = self.bus.as_ref()?;
        let rt = self.rt.0.as_ref()?;
        let res = rt.block_on(async {
            tokio::time::timeout(BUS_TIMEOUT, logind::read_sessions(conn)).await
        });
        match res {
            Ok(Ok(sessions)) => Some(logind::fold_accounts(&sessions)),
            Ok(Err(e)) => {
                self.note("logind-read", format!("Reading logind failed ({e}); lock and idle hints are missing while it does."));
                None
            }
            Err(_) => {
                self.note("logind-read", "logind did not answer in time; lock and idle hints are missing while it does not.".to_owned());
                None
            }
        }
    }

    /// Connects to X when it was not there at start or after a loss, at most
    /// once a minute.
    fn retry_x11(&mut self, now_ms: i64) {
        if self.x11.is_some() || !self.opts.use_x11 {
            return;
        }
        let Some(at) = self.x11_retry_at_ms else {
            return;
        };
        if now_ms < at {
            return;
        }
        match X11::connect(self.opts.x11_display.as_deref()) {
            Ok(x) => {
                self.x11_retry_at_ms = None;
                self.adopt_x11(x);
            }
            Err(_) => self.x11_retry_at_ms = Some(now_ms + X11_RETRY_MS),
        }
    }

    fn x11_failed(&mut self, e: &X11Failure, now_ms: i64) {
        if let X11Failure::Lost(_) = e {
            self.x11 = None;
            self.x11_retry_at_ms = Some(now_ms + X11_RETRY_MS);
        }
        self.note("x11-lost", format!("{e}; retrying every minute."));
    }

    /// The account whose desktop the X display shows.
    fn x11_owner(&self, utmp: &[UtmpRecord]) -> Option<String> {
        let x = self.x11.as_ref()?;
        if self.own_uid != Some(0) {
            return self.own_account.clone();
        }
        utmp::user_on_display(utmp, &x.display).or_else(|| self.own_account.clone())
    }
}

/// Logons and logoffs between two sets of logged-on accounts (name -> logon instant).
fn diff_logons(
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
) -> (Vec<(String, i64)>, Vec<String>) {
    let logons = after
        .iter()
        .filter(|(u, _)| !before.contains_key(*u))
        .map(|(u, t)| (u.clone(), *t))
        .collect();
    let logoffs = before
        .keys()
        .filter(|u| !after.contains_key(*u))
        .cloned()
        .collect();
    (logons, logoffs)
}

impl Probe for LinuxProbe {
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }

    fn poll(&mut self, now_ms: i64) -> Result<Vec<Observation>, ProbeError> {
        let first = self.prev_poll_ms.is_none();
        let lower = self.prev_poll_ms.unwrap_or(i64::MIN).min(now_ms);
        // Instants of changes seen this poll lie in (previous poll, now].
        let clamp = |t: i64| t.clamp(lower, now_ms);
        let mut out: Vec<Observation> = Vec::new();
        let session = |at_ms: i64, account: &str, kind: SessionKind| Observation::Session {
            at_ms,
            account: account.to_owned(),
            kind,
        };

        let hints = self.read_logind();

        // 1. Who is logged on.
        let utmp_now = match std::fs::read(&self.opts.utmp_path) {
            Ok(bytes) => Some(utmp::parse_utmp(&bytes)),
            Err(e) => {
                let msg = format!("Cannot read {} ({e}).", self.opts.utmp_path.display());
                self.note("utmp", msg);
                None
            }
        };
        let on_now: Option<BTreeMap<String, i64>> = match (&utmp_now, &hints) {
            (Some(recs), _) => Some(utmp::logged_on(recs)),
            (None, Some(h)) => Some(
                h.iter()
                    .map(|(u, a)| {
                        (
                            u.clone(),
                            if a.started_ms > 0 {
                                a.started_ms
                            } else {
                                now_ms
                            },
                        )
                    })
                    .collect(),
            ),
            (None, None) => None,
        };
        if let Some(on_now) = on_now {
            let (logons, logoffs) = diff_logons(&self.logged_on, &on_now);
            for user in logoffs {
                let at = utmp_now
                    .as_deref()
                    .and_then(|recs| utmp::logoff_instant(&user, &self.prev_utmp, recs))
                    .unwrap_or(now_ms);
                out.push(session(clamp(at), &user, SessionKind::Logoff));
                self.accounts.remove(&user);
                self.logind_idle_known.remove(&user);
            }
            for (user, at) in logons {
                let at = if first { at.min(now_ms) } else { clamp(at) };
                out.push(session(at, &user, SessionKind::Logon));
                // A fresh session: whatever was reported before it no longer holds.
                self.accounts.remove(&user);
            }
            self.logged_on = on_now;
        }
        if let Some(recs) = utmp_now {
            self.prev_utmp = recs;
        }

        // 2. Lock and idle.
        self.retry_x11(now_ms);
        let owner = self.x11_owner(&self.prev_utmp);
        let x11_idle = match self
            .x11
            .as_ref()
            .filter(|x| x.has_idle())
            .map(X11::ms_since_user_input)
        {
            Some(Ok(ms)) => Some(ms),
            Some(Err(e)) => {
                self.x11_failed(&e, now_ms);
                None
            }
            None => None,
        };
        let mut present: BTreeSet<String> = self.logged_on.keys().cloned().collect();
        present.extend(owner.iter().cloned());
        for account in &present {
            let logon_ms = self.logged_on.get(account).copied().unwrap_or(i64::MIN);
            let hint = hints.as_ref().and_then(|h| h.get(account));
            let st = self.accounts.entry(account.clone()).or_default();
            if let Some(h) = hint
                && h.locked != st.locked
            {
                st.locked = h.locked;
                let kind = if h.locked {
                    SessionKind::Lock
                } else {
                    SessionKind::Unlock
                };
                out.push(session(now_ms, account, kind));
            }
            let change = match hint.and_then(|h| h.idle) {
                Some((idle, since)) => {
                    self.logind_idle_known.insert(account.clone());
                    (idle != st.idle).then_some((idle, if since > 0 { since } else { now_ms }))
                }
                None if !self.logind_idle_known.contains(account)
                    && owner.as_ref() == Some(account) =>
                {
                    x11_idle.and_then(|ms| {
                        x11::idle_transition(st.idle, ms, self.opts.idle_threshold_ms, now_ms)
                    })
                }
                None => None,
            };
            if let Some((idle, at)) = change {
                st.idle = idle;
                let at = if first { at.min(now_ms) } else { clamp(at) }.max(logon_ms);
                let kind = if idle {
                    SessionKind::IdleStart
                } else {
                    SessionKind::IdleEnd
                };
                out.push(session(at, account, kind));
            }
            if st.locked || st.idle {
                st.apps = None;
            }
        }

        // 3. Applications of the accounts that are present and active.
        let active: Vec<String> = present
            .iter()
            .filter(|a| self.accounts.get(*a).is_some_and(|s| !s.locked && !s.idle))
            .cloned()
            .collect();
        let fg_account = owner.filter(|_| self.opts.foreground && self.x11.is_some());
        let mut apps_now: BTreeMap<String, (AppsBasis, Vec<App>)> = BTreeMap::new();
        if let Some(acct) = fg_account.as_ref().filter(|a| active.contains(a)) {
            match self.x11.as_ref().map(X11::front) {
                Some(Ok(Front::NotPublished)) => {
                    let msg = "The window manager does not publish the active window: \
                               running applications are reported instead."
                        .to_owned();
                    self.note("x11-no-active-window", msg);
                }
                Some(Ok(front)) => {
                    let app = match front {
                        Front::Window(w) => {
                            w.pid
                                .and_then(procs::app_name_of_pid)
                                .or(w.class)
                                .map(|name| App {
                                    name,
                                    title: w.title,
                                })
                        }
                        Front::Nothing | Front::NotPublished => None,
                    };
                    apps_now.insert(
                        acct.clone(),
                        (AppsBasis::Foreground, app.into_iter().collect()),
                    );
                }
                Some(Err(e)) => self.x11_failed(&e, now_ms),
                None => {}
            }
        }
        let want_running: BTreeSet<String> = active
            .iter()
            .filter(|a| !apps_now.contains_key(*a))
            .cloned()
            .collect();
        if let Some(procs) = self.procs.as_mut()
            && !want_running.is_empty()
        {
            for (acct, apps) in procs.running(&want_running, now_ms) {
                apps_now.insert(acct, (AppsBasis::Running, apps));
            }
        }
        for (account, now_apps) in apps_now {
            let st = self.accounts.entry(account.clone()).or_default();
            if st.apps.as_ref() != Some(&now_apps) {
                out.push(Observation::Apps {
                    at_ms: now_ms,
                    account,
                    basis: now_apps.0,
                    apps: now_apps.1.clone(),
                });
                st.apps = Some(now_apps);
            }
        }

        self.prev_poll_ms = Some(now_ms);
        out.sort_by_key(Observation::at_ms);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::linux::logind::tests::{FakeSession, Shared, desk_session, fake_logind};
    use crate::probe::linux::procs::tests::{KillOnDrop, own_account, spawn_named_sleep};
    use crate::probe::linux::utmp::tests::{dump_line, utmpdump_bytes};
    use std::sync::{Arc, Mutex};

    // 2026-03-02T00:41:05.123Z and friends: fixed instants, no clock.
    const T0: i64 = 1_772_412_065_123;
    const HOUR: i64 = 3_600_000;

    fn sessions_only(obs: &[Observation]) -> Vec<(i64, String, SessionKind)> {
        obs.iter()
            .filter_map(|o| match o {
                Observation::Session {
                    at_ms,
                    account,
                    kind,
                } => Some((*at_ms, account.clone(), *kind)),
                Observation::Apps { .. } => None,
            })
            .collect()
    }

    fn apps_of<'a>(obs: &'a [Observation], who: &str) -> Option<(AppsBasis, &'a [App])> {
        obs.iter().rev().find_map(|o| match o {
            Observation::Apps {
                account,
                basis,
                apps,
                ..
            } if account == who => Some((*basis, apps.as_slice())),
            _ => None,
        })
    }

    fn offline(utmp_path: PathBuf) -> LinuxProbeOptions {
        LinuxProbeOptions {
            utmp_path,
            use_dbus: false,
            use_x11: false,
            foreground: false,
            ..Default::default()
        }
    }

    fn assert_time_ordered(obs: &[Observation]) {
        assert!(
            obs.windows(2).all(|w| w[0].at_ms() <= w[1].at_ms()),
            "{obs:#?}"
        );
    }

    #[test]
    fn diff_logons_table() {
        let m = |v: &[(&str, i64)]| {
            v.iter()
                .map(|(u, t)| ((*u).to_owned(), *t))
                .collect::<BTreeMap<_, _>>()
        };
        let (on, off) = diff_logons(&m(&[("a", 1), ("b", 2)]), &m(&[("b", 2), ("c", 3)]));
        assert_eq!(on, vec![("c".to_owned(), 3)]);
        assert_eq!(off, vec!["a".to_owned()]);
        let (on, off) = diff_logons(&m(&[]), &m(&[]));
        assert!(on.is_empty() && off.is_empty());
    }

    #[test]
    fn utmp_logons_and_logoffs_across_polls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("utmp");
        let Some(v1) = utmpdump_bytes(
            &[
                dump_line(
                    7,
                    4001,
                    ":0",
                    "zhangsan",
                    ":0",
                    ":0",
                    "2026-03-02T00:41:05,123456+00:00",
                ),
                dump_line(
                    7,
                    4002,
                    "ts/1",
                    "zhangsan",
                    "pts/1",
                    "10.1.1.1",
                    "2026-03-02T00:50:00,000000+00:00",
                ),
                dump_line(
                    6,
                    4003,
                    "tty2",
                    "LOGIN",
                    "tty2",
                    "",
                    "2026-03-02T00:00:00,000000+00:00",
                ),
            ]
            .concat(),
        ) else {
            return;
        };
        std::fs::write(&path, v1).expect("write utmp");
        let mut probe = LinuxProbe::new(offline(path.clone()));
        assert!(probe.capabilities().sessions);

        let obs = probe.poll(T0 + HOUR).expect("poll 1");
        assert_time_ordered(&obs);
        assert_eq!(
            sessions_only(&obs),
            vec![(T0, "zhangsan".to_owned(), SessionKind::Logon)]
        );
        assert!(
            probe
                .poll(T0 + HOUR + 15_000)
                .expect("poll 2")
                .iter()
                .all(|o| !matches!(o, Observation::Session { .. }))
        );

        // zhangsan's X session ends at 02:11:05 (ssh too), lisi logs on at 02:00.
        let Some(v2) = utmpdump_bytes(
            &[
                dump_line(
                    8,
                    4001,
                    ":0",
                    "",
                    ":0",
                    "",
                    "2026-03-02T02:11:05,123000+00:00",
                ),
                dump_line(
                    8,
                    4002,
                    "ts/1",
                    "",
                    "pts/1",
                    "",
                    "2026-03-02T01:59:00,000000+00:00",
                ),
                dump_line(
                    7,
                    4004,
                    "tty2",
                    "lisi",
                    "tty2",
                    "",
                    "2026-03-02T02:00:00,000000+00:00",
                ),
            ]
            .concat(),
        ) else {
            return;
        };
        std::fs::write(&path, v2).expect("write utmp");
        let obs = probe.poll(T0 + 2 * HOUR).expect("poll 3");
        assert_time_ordered(&obs);
        assert_eq!(
            sessions_only(&obs),
            vec![
                (
                    T0 + HOUR + 18 * 60_000 + 54_877,
                    "lisi".to_owned(),
                    SessionKind::Logon
                ),
                (T0 + 90 * 60_000, "zhangsan".to_owned(), SessionKind::Logoff),
            ]
        );

        // The utmp file vanishes: noted, nothing invented.
        std::fs::remove_file(&path).expect("rm");
        let obs = probe.poll(T0 + 3 * HOUR).expect("poll 4");
        assert!(sessions_only(&obs).is_empty());
        assert_eq!(
            probe
                .capabilities()
                .notes
                .iter()
                .filter(|n| n.contains("Cannot read"))
                .count(),
            1
        );
    }

    #[test]
    fn missing_sources_are_noted_once_and_polling_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = LinuxProbeOptions {
            utmp_path: dir.path().join("no-utmp"),
            x11_display: Some(":4094".into()),
            ..Default::default()
        };
        let mut probe = LinuxProbe::new(opts);
        let caps = probe.capabilities();
        assert!(!caps.foreground, "no X display :4094 here");
        // A display that is not there at start is tried again (a service starts
        // before anyone logs on), from the first poll on.
        assert_eq!(probe.x11_retry_at_ms, Some(0));
        if !caps.lock {
            assert_eq!(
                caps.notes
                    .iter()
                    .filter(|n| n.contains("systemd-logind"))
                    .count(),
                1,
                "{:?}",
                caps.notes
            );
        }
        for i in 0..3 {
            probe.poll(T0 + i * 15_000).expect("poll");
        }
        assert_eq!(
            probe.x11_retry_at_ms,
            Some(T0 + X11_RETRY_MS),
            "tried at the first poll, next a minute later"
        );
        let notes = probe.capabilities().notes;
        let unique: BTreeSet<&String> = notes.iter().collect();
        assert_eq!(unique.len(), notes.len(), "each note once: {notes:?}");
    }

    #[test]
    fn running_apps_of_a_logged_on_account() {
        let me = own_account();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("utmp");
        let Some(bytes) = utmpdump_bytes(&dump_line(
            7,
            77,
            "ts/3",
            &me,
            "pts/3",
            "",
            "2026-03-02T00:41:05,123456+00:00",
        )) else {
            return;
        };
        std::fs::write(&path, bytes).expect("write utmp");
        let name = format!("WeChat-test{}", std::process::id());
        let child = KillOnDrop(spawn_named_sleep(dir.path(), &name));
        let mut probe = LinuxProbe::new(offline(path));
        let obs = probe.poll(T0 + HOUR).expect("poll");
        assert_time_ordered(&obs);
        let (basis, apps) = apps_of(&obs, &me).expect("apps of the logged-on account");
        assert_eq!(basis, AppsBasis::Running);
        assert!(apps.iter().any(|a| a.name == name), "{apps:?}");
        drop(child);
        let obs = probe.poll(T0 + HOUR + 15_000).expect("poll");
        let (_, apps) = apps_of(&obs, &me).expect("a change is reported");
        assert!(!apps.iter().any(|a| a.name == name));
    }

    #[test]
    fn logind_lock_and_idle_over_a_fake_bus() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let shared: Shared = Arc::new(Mutex::new(vec![
            desk_session("2", "zhangsan"),
            FakeSession {
                class: "greeter".into(),
                ..desk_session("c1", "lightdm")
            },
        ]));
        let (conn, _server) = rt.block_on(fake_logind(shared.clone()));
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = LinuxProbeOptions {
            utmp_path: dir.path().join("none"),
            use_x11: false,
            foreground: false,
            ..Default::default()
        };
        let mut probe = LinuxProbe::with_bus(opts, conn);
        let caps = probe.capabilities();
        assert!(caps.lock && caps.sessions, "{caps:?}");
        let set = |f: &dyn Fn(&mut FakeSession)| f(&mut shared.lock().expect("lock")[0]);
        let logon = 1_772_412_065_000;

        // Poll 1, from a blocking thread of the agent's runtime as in production.
        let (mut probe, obs) = rt
            .block_on(rt.spawn_blocking(move || {
                let obs = probe.poll(T0 + HOUR).expect("poll 1");
                (probe, obs)
            }))
            .expect("join");
        assert_eq!(
            sessions_only(&obs),
            vec![(logon, "zhangsan".to_owned(), SessionKind::Logon)]
        );
        assert!(apps_of(&obs, "zhangsan").is_some(), "apps at start");

        set(&|s| s.locked = true);
        let t2 = T0 + HOUR + 15_000;
        let obs = probe.poll(t2).expect("poll 2");
        assert_eq!(
            obs,
            vec![Observation::Session {
                at_ms: t2,
                account: "zhangsan".into(),
                kind: SessionKind::Lock
            }]
        );

        let idle_since = T0 + HOUR + 20_000;
        set(&|s| {
            s.idle = true;
            s.idle_since_us = u64::try_from(idle_since).expect("positive") * 1000;
        });
        let obs = probe.poll(T0 + HOUR + 30_000).expect("poll 3");
        assert_eq!(
            sessions_only(&obs),
            vec![(idle_since, "zhangsan".to_owned(), SessionKind::IdleStart)]
        );

        let active_since = T0 + HOUR + 40_000;
        set(&|s| {
            s.locked = false;
            s.idle = false;
            s.idle_since_us = u64::try_from(active_since).expect("positive") * 1000;
        });
        let t4 = T0 + HOUR + 45_000;
        let obs = probe.poll(t4).expect("poll 4");
        assert_time_ordered(&obs);
        assert_eq!(
            sessions_only(&obs),
            vec![
                (active_since, "zhangsan".to_owned(), SessionKind::IdleEnd),
                (t4, "zhangsan".to_owned(), SessionKind::Unlock),
            ]
        );
        assert!(apps_of(&obs, "zhangsan").is_some(), "apps again once back");

        // Logging off in logind (no utmp here) ends the session.
        shared.lock().expect("lock").clear();
        let t5 = T0 + HOUR + 60_000;
        let obs = probe.poll(t5).expect("poll 5");
        assert_eq!(
            obs,
            vec![Observation::Session {
                at_ms: t5,
                account: "zhangsan".into(),
                kind: SessionKind::Logoff
            }]
        );
        drop(probe);
    }

    #[test]
    fn x11_idle_and_foreground_under_xvfb() {
        use crate::probe::linux::x11::tests::{
            publish_active_window, start_xvfb, wait_idle_at_least, xdotool_mousemove,
        };
        let Some(xvfb) = start_xvfb() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let threshold: u32 = 1_500;
        let opts = LinuxProbeOptions {
            idle_threshold_ms: u64::from(threshold),
            utmp_path: dir.path().join("none"),
            use_dbus: false,
            use_x11: true,
            foreground: true,
            x11_display: Some(xvfb.display.clone()),
        };
        xdotool_mousemove(&xvfb.display, 5, 5);
        let mut probe = LinuxProbe::new(opts);
        let caps = probe.capabilities();
        assert!(caps.idle && caps.foreground, "{caps:?}");
        let me = own_account();

        // Poll 1: no window manager publishes the active window yet: running apps.
        let obs = probe.poll(T0).expect("poll 1");
        let idle_started_already = sessions_only(&obs)
            .iter()
            .any(|(_, _, k)| *k == SessionKind::IdleStart);
        if !idle_started_already {
            assert_eq!(
                apps_of(&obs, &me).map(|(basis, _)| basis),
                Some(AppsBasis::Running)
            );
        }
        assert!(
            probe
                .capabilities()
                .notes
                .iter()
                .any(|n| n.contains("active window"))
        );

        // Idle rises past the threshold.
        let x = X11::connect(Some(&xvfb.display)).expect("connect");
        let idle = wait_idle_at_least(&x, threshold + 100);
        let t2 = T0 + 15_000;
        let obs = probe.poll(t2).expect("poll 2");
        if !idle_started_already {
            let s = sessions_only(&obs);
            assert_eq!(s.len(), 1, "{obs:?}");
            assert_eq!(
                (s[0].1.as_str(), s[0].2),
                (me.as_str(), SessionKind::IdleStart)
            );
            // Crossed the threshold before now, at most `idle - threshold` ago (more
            // time has passed since the reading above).
            assert!(s[0].0 <= t2 - i64::from(idle - threshold), "{s:?}");
        }

        // A window comes to the front and the user moves the mouse.
        let dir2 = tempfile::tempdir().expect("tempdir");
        let child = KillOnDrop(spawn_named_sleep(dir2.path(), "NeteaseCloudMusicPlayer"));
        let _win = publish_active_window(&xvfb.display, child.0.id(), "每日推荐");
        xdotool_mousemove(&xvfb.display, 40, 60);
        let t3 = T0 + 30_000;
        let obs = probe.poll(t3).expect("poll 3");
        assert_time_ordered(&obs);
        let s = sessions_only(&obs);
        assert_eq!(s.len(), 1, "{obs:?}");
        assert_eq!(
            (s[0].1.as_str(), s[0].2),
            (me.as_str(), SessionKind::IdleEnd)
        );
        assert!(s[0].0 > t3 - i64::from(threshold) && s[0].0 <= t3);
        assert_eq!(
            apps_of(&obs, &me),
            Some((
                AppsBasis::Foreground,
                &[App {
                    name: "NeteaseCloudMusicPlayer".into(),
                    title: Some("每日推荐".into())
                }][..]
            ))
        );

        // Nothing changed: nothing reported.
        xdotool_mousemove(&xvfb.display, 41, 61);
        assert!(probe.poll(T0 + 45_000).expect("poll 4").is_empty());

        // The X server goes away: noted, the probe carries on.
        drop(xvfb);
        let obs = probe.poll(T0 + 60_000).expect("poll 5");
        assert_time_ordered(&obs);
        assert!(probe.capabilities().notes.iter().any(|n| n.contains("X11")));
    }
}

//! X11: the idle time (screensaver extension) and the foreground window
//! (`_NET_ACTIVE_WINDOW` of the root window, as EWMH window managers set it).
//!
//! Invariants: a broken connection is reported as [`X11Failure::Lost`] so the probe
//! drops it and reconnects later; an X error on one request (a window that closed
//! between two requests) is not a lost connection. The idle state machine
//! ([`idle_transition`]) is pure.

use x11rb::connection::{Connection, RequestConnection};
use x11rb::errors::ReplyError;
use x11rb::protocol::screensaver::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{Atom, AtomEnum, ConnectionExt as _, Window};
use x11rb::rust_connection::RustConnection;

/// Why an X11 request failed.
#[derive(Debug)]
pub(super) enum X11Failure {
    /// The connection is gone (server exited, session ended).
    Lost(String),
    /// The server refused one request; the connection is fine.
    Refused(String),
}

impl std::fmt::Display for X11Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            X11Failure::Lost(m) => write!(f, "X11 connection lost: {m}"),
            X11Failure::Refused(m) => write!(f, "X11 request failed: {m}"),
        }
    }
}

impl From<ReplyError> for X11Failure {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::ConnectionError(e) => X11Failure::Lost(e.to_string()),
            ReplyError::X11Error(e) => X11Failure::Refused(format!("{e:?}")),
        }
    }
}

impl From<x11rb::errors::ConnectionError> for X11Failure {
    fn from(e: x11rb::errors::ConnectionError) -> Self {
        X11Failure::Lost(e.to_string())
    }
}

struct Atoms {
    net_active_window: Atom,
    net_wm_pid: Atom,
    net_wm_name: Atom,
    utf8_string: Atom,
}

/// The window in front, as X11 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ActiveWindow {
    /// `_NET_WM_PID`, when the client set it.
    pub(super) pid: Option<u32>,
    /// The class part of `WM_CLASS` (a fallback name when there is no pid).
    pub(super) class: Option<String>,
    /// `_NET_WM_NAME` (UTF-8), else `WM_NAME`.
    pub(super) title: Option<String>,
}

/// What is in front on the display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Front {
    /// The window manager does not publish `_NET_ACTIVE_WINDOW` (or there is none).
    NotPublished,
    /// No window has the focus.
    Nothing,
    Window(ActiveWindow),
}

/// A connection to one X display.
pub(super) struct X11 {
    conn: RustConnection,
    root: Window,
    atoms: Atoms,
    has_screensaver: bool,
    /// The display name used to connect (`:0`).
    pub(super) display: String,
}

impl X11 {
    /// Connects to `display`, or to `$DISPLAY` when `None`, or, when that is not
    /// set either (a service), to a display the desktop's processes name (see
    /// [`super::display`]).
    pub(super) fn connect(display: Option<&str>) -> Result<X11, String> {
        let name = match display {
            Some(d) => Some(d.to_owned()),
            None => std::env::var("DISPLAY").ok(),
        };
        match name {
            Some(name) if name.is_empty() => Err("DISPLAY is empty".to_owned()),
            Some(name) => {
                let (conn, screen) = x11rb::connect(Some(&name))
                    .map_err(|e| format!("cannot connect to X display {name}: {e}"))?;
                X11::open(conn, screen, name)
            }
            None => X11::find(std::path::Path::new("/proc")),
        }
    }

    /// Connects to the first display named by a process under `proc_root` that
    /// admits the agent with the cookie that process's authority file holds.
    pub(super) fn find(proc_root: &std::path::Path) -> Result<X11, String> {
        let named = super::display::named(proc_root);
        if named.is_empty() {
            return Err("DISPLAY is not set, and no process names a display".to_owned());
        }
        let mut why = Vec::new();
        for n in &named {
            let opened = super::display::connect(n, proc_root)
                .and_then(|(conn, screen)| X11::open(conn, screen, n.display.clone()));
            match opened {
                Ok(x) => return Ok(x),
                Err(e) => why.push(format!("{}: {e}", n.display)),
            }
        }
        Err(format!(
            "DISPLAY is not set, and no display a process names could be opened ({})",
            why.join("; ")
        ))
    }

    fn open(conn: RustConnection, screen: usize, name: String) -> Result<X11, String> {
        let root = conn
            .setup()
            .roots
            .get(screen)
            .map(|s| s.root)
            .ok_or("no X screen")?;
        let has_screensaver = conn
            .extension_information(screensaver::X11_EXTENSION_NAME)
            .map_err(|e| e.to_string())?
            .is_some();
        let atom = |n: &[u8]| -> Result<Atom, String> {
            Ok(conn
                .intern_atom(false, n)
                .map_err(|e| e.to_string())?
                .reply()
                .map_err(|e| e.to_string())?
                .atom)
        };
        let atoms = Atoms {
            net_active_window: atom(b"_NET_ACTIVE_WINDOW")?,
            net_wm_pid: atom(b"_NET_WM_PID")?,
            net_wm_name: atom(b"_NET_WM_NAME")?,
            utf8_string: atom(b"UTF8_STRING")?,
        };
        Ok(X11 {
            conn,
            root,
            atoms,
            has_screensaver,
            display: name,
        })
    }

    /// Whether the server has the screensaver extension (idle time).
    pub(super) fn has_idle(&self) -> bool {
        self.has_screensaver
    }

    /// Milliseconds since the last keyboard or mouse input on this display.
    pub(super) fn ms_since_user_input(&self) -> Result<u32, X11Failure> {
        Ok(self
            .conn
            .screensaver_query_info(self.root)?
            .reply()?
            .ms_since_user_input)
    }

    /// The window in front, as the window manager publishes it.
    pub(super) fn front(&self) -> Result<Front, X11Failure> {
        let reply = self
            .conn
            .get_property(
                false,
                self.root,
                self.atoms.net_active_window,
                AtomEnum::WINDOW,
                0,
                1,
            )?
            .reply()?;
        if reply.type_ == u32::from(AtomEnum::NONE) {
            return Ok(Front::NotPublished);
        }
        let Some(win) = reply
            .value32()
            .and_then(|mut v| v.next())
            .filter(|&w| w != 0)
        else {
            return Ok(Front::Nothing);
        };
        match self.describe(win) {
            Ok(w) => Ok(Front::Window(w)),
            // The window closed between the two requests: nothing in front right now.
            Err(X11Failure::Refused(_)) => Ok(Front::Nothing),
            Err(e) => Err(e),
        }
    }

    fn describe(&self, win: Window) -> Result<ActiveWindow, X11Failure> {
        // Send the requests together, then collect the replies: one round trip.
        let pid =
            self.conn
                .get_property(false, win, self.atoms.net_wm_pid, AtomEnum::CARDINAL, 0, 1)?;
        let name = self.conn.get_property(
            false,
            win,
            self.atoms.net_wm_name,
            self.atoms.utf8_string,
            0,
            1024,
        )?;
        let wm_name =
            self.conn
                .get_property(false, win, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 1024)?;
        let class =
            self.conn
                .get_property(false, win, AtomEnum::WM_CLASS, AtomEnum::STRING, 0, 256)?;
        let pid = pid
            .reply()?
            .value32()
            .and_then(|mut v| v.next())
            .filter(|&p| p != 0);
        let title =
            non_empty(String::from_utf8_lossy(&name.reply()?.value).into_owned()).or_else(|| {
                wm_name
                    .reply()
                    .ok()
                    .and_then(|r| non_empty(latin1(&r.value)))
            });
        // WM_CLASS is "instance\0class\0".
        let class = class
            .reply()
            .ok()
            .and_then(|r| r.value.split(|&b| b == 0).nth(1).map(latin1))
            .and_then(non_empty);
        Ok(ActiveWindow { pid, class, title })
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn non_empty(s: String) -> Option<String> {
    let t = s.trim_end_matches('\0');
    (!t.is_empty()).then(|| t.to_owned())
}

/// Given whether the user is idle now per the previous readings, the idle time
/// reported by X at `now_ms` and the threshold, returns the change and its instant:
/// `Some((true, at))` for an idle start at the moment the threshold was crossed,
/// `Some((false, at))` for an idle end at the moment of the last input.
pub(super) fn idle_transition(
    was_idle: bool,
    ms_since_input: u32,
    threshold_ms: u64,
    now_ms: i64,
) -> Option<(bool, i64)> {
    let since = i64::from(ms_since_input);
    let threshold = i64::try_from(threshold_ms).unwrap_or(i64::MAX);
    let idle = since >= threshold;
    match (was_idle, idle) {
        (false, true) => Some((true, now_ms - since + threshold)),
        (true, false) => Some((false, now_ms - since)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};
    use x11rb::protocol::xproto::{CreateWindowAux, PropMode, WindowClass};
    use x11rb::wrapper::ConnectionExt as _;

    /// A running Xvfb, killed on drop.
    pub(crate) struct Xvfb {
        child: Child,
        pub(crate) display: String,
    }

    impl Drop for Xvfb {
        fn drop(&mut self) {
            // SIGTERM lets Xvfb remove its socket and lock file; SIGKILL if that fails.
            let termed = Command::new("kill")
                .arg(self.child.id().to_string())
                .status()
                .is_ok_and(|s| s.success());
            if !termed {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }

    /// Starts Xvfb on a free display it picks itself (`-displayfd`), returning once
    /// it accepts connections; `None` (with the reason printed) if Xvfb is missing.
    pub(crate) fn start_xvfb() -> Option<Xvfb> {
        start_xvfb_with(&[])
    }

    /// As [`start_xvfb`], with more arguments for Xvfb. With `-auth`, it is
    /// ready once it has said its display number (it says so after it listens).
    pub(crate) fn start_xvfb_with(args: &[&str]) -> Option<Xvfb> {
        let spawned = Command::new("Xvfb")
            .args(args)
            // -noreset: the server must not reset when our readiness check disconnects.
            .args([
                "-displayfd",
                "1",
                "-noreset",
                "-screen",
                "0",
                "320x240x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!(
                    "skipping: Xvfb is not installed (apt-get install xvfb xdotool x11-utils)"
                );
                return None;
            }
            Err(e) => panic!("cannot start Xvfb: {e}"),
        };
        // Xvfb writes the display number once it is ready for connections.
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read Xvfb display number");
        let num = line.trim();
        assert!(!num.is_empty(), "Xvfb exited without a display number");
        let xvfb = Xvfb {
            child,
            display: format!(":{num}"),
        };
        if !args.is_empty() {
            return Some(xvfb);
        }
        // Belt and braces: retry the connect a bounded number of times.
        let deadline = Instant::now() + Duration::from_secs(10);
        while x11rb::connect(Some(&xvfb.display)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Xvfb {} never accepted a connection",
                xvfb.display
            );
            std::thread::yield_now();
        }
        Some(xvfb)
    }

    /// Waits (bounded) until the display's idle time reaches `ms`. This waits for
    /// a condition of the X server, re-checking it; it is not a fixed delay.
    pub(crate) fn wait_idle_at_least(x: &X11, ms: u32) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let idle = x.ms_since_user_input().expect("idle");
            if idle >= ms {
                return idle;
            }
            assert!(Instant::now() < deadline, "idle time never reached {ms} ms");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Moves the pointer with xdotool (fails the test if xdotool is missing but Xvfb
    /// is present: both come with the CI packages).
    pub(crate) fn xdotool_mousemove(display: &str, x: u32, y: u32) {
        let st = Command::new("xdotool")
            .args(["mousemove", &x.to_string(), &y.to_string()])
            .env("DISPLAY", display)
            .status()
            .expect("run xdotool (apt-get install xdotool)");
        assert!(st.success(), "xdotool mousemove failed");
    }

    /// Creates a window with `_NET_WM_PID` = `pid` and `_NET_WM_NAME` = `title`, and
    /// makes it the root's `_NET_ACTIVE_WINDOW`, as a window manager would. Returns
    /// the connection that owns the window (the window lives as long as it does).
    pub(crate) fn publish_active_window(display: &str, pid: u32, title: &str) -> RustConnection {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect");
        let root = conn.setup().roots[screen].root;
        let atom = |n: &[u8]| {
            conn.intern_atom(false, n)
                .expect("intern")
                .reply()
                .expect("atom")
                .atom
        };
        let (active, wm_pid, wm_name, utf8) = (
            atom(b"_NET_ACTIVE_WINDOW"),
            atom(b"_NET_WM_PID"),
            atom(b"_NET_WM_NAME"),
            atom(b"UTF8_STRING"),
        );
        let win = conn.generate_id().expect("id");
        conn.create_window(
            0,
            win,
            root,
            0,
            0,
            10,
            10,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )
        .expect("create window");
        conn.change_property32(PropMode::REPLACE, win, wm_pid, AtomEnum::CARDINAL, &[pid])
            .expect("pid");
        conn.change_property8(PropMode::REPLACE, win, wm_name, utf8, title.as_bytes())
            .expect("name");
        conn.change_property8(
            PropMode::REPLACE,
            win,
            AtomEnum::WM_CLASS,
            AtomEnum::STRING,
            b"inst\0Klass\0",
        )
        .expect("class");
        conn.change_property32(PropMode::REPLACE, root, active, AtomEnum::WINDOW, &[win])
            .expect("active");
        conn.sync().expect("sync");
        conn
    }

    #[test]
    fn a_service_finds_the_desktops_display_and_its_cookie() {
        // A display that asks for a cookie, as a display manager starts it.
        let dir = tempfile::tempdir().unwrap();
        let cookie: Vec<u8> = (0..16u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        let file = crate::probe::linux::display::tests::authority_file(&[(
            0xffff,
            b"",
            b"",
            b"MIT-MAGIC-COOKIE-1",
            &cookie,
        )]);
        let authority = dir.path().join("Xauthority");
        std::fs::write(&authority, &file).unwrap();
        let Some(xvfb) = start_xvfb_with(&["-auth", authority.to_str().unwrap()]) else {
            return;
        };
        // Without the cookie it refuses.
        let refused = X11::find(dir.path());
        assert!(refused.is_err(), "no process names it yet");
        // A desktop process names the display and the file.
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(proc.join("4242")).unwrap();
        let names = |file: &std::path::Path| {
            let environ = format!(
                "LANG=zh_CN.UTF-8\0DISPLAY={}\0XAUTHORITY={}\0",
                xvfb.display,
                file.display()
            );
            std::fs::write(proc.join("4242").join("environ"), environ).unwrap();
        };
        names(&authority);
        let x = X11::find(&proc).expect("connects with the cookie");
        assert_eq!(x.display, xvfb.display);
        assert!(x.ms_since_user_input().is_ok());
        // The same display with a wrong cookie is refused, and said so.
        let wrong = dir.path().join("wrong");
        let mut bad = file.clone();
        let at = bad.len() - 1;
        bad[at] ^= 0xff;
        std::fs::write(&wrong, &bad).unwrap();
        names(&wrong);
        let e = X11::find(&proc).err().expect("a wrong cookie is refused");
        assert!(e.contains(&xvfb.display), "{e}");
        // A cookie from a file another user owns is not taken: the agent reads
        // as root, and the file a process names could be another's. (Giving
        // the file away needs root, as the packaged agent runs.)
        if let Err(e) = std::os::unix::fs::chown(&authority, Some(4321), None) {
            eprintln!("not checked without root: a file another user owns ({e})");
            return;
        }
        names(&authority);
        let e = X11::find(&proc)
            .err()
            .expect("another user's file is not used");
        assert!(e.contains("not by the process's user"), "{e}");
    }

    #[test]
    fn idle_transitions() {
        let now = 1_772_412_065_000;
        assert_eq!(idle_transition(false, 1_000, 300_000, now), None);
        assert_eq!(
            idle_transition(false, 400_000, 300_000, now),
            Some((true, now - 100_000))
        );
        assert_eq!(idle_transition(true, 400_000, 300_000, now), None);
        assert_eq!(
            idle_transition(true, 2_000, 300_000, now),
            Some((false, now - 2_000))
        );
        assert_eq!(
            idle_transition(false, 300_000, 300_000, now),
            Some((true, now))
        );
    }

    #[test]
    fn connect_without_display_is_an_error_not_a_panic() {
        assert!(X11::connect(Some("")).is_err());
        assert!(X11::connect(Some(":4093")).is_err());
    }

    #[test]
    fn xvfb_idle_rises_and_mousemove_resets_it_and_active_window_is_read() {
        let Some(xvfb) = start_xvfb() else { return };
        let x = X11::connect(Some(&xvfb.display)).expect("connect to Xvfb");
        assert!(x.has_idle(), "Xvfb has the screensaver extension");
        let first = x.ms_since_user_input().expect("idle");
        let risen = wait_idle_at_least(&x, first + 50);
        assert!(risen > first);
        xdotool_mousemove(&xvfb.display, 17, 23);
        let after = x.ms_since_user_input().expect("idle");
        assert!(after < risen, "mousemove resets idle: {after} >= {risen}");

        assert_eq!(x.front().expect("no WM yet"), Front::NotPublished);
        let _owner = publish_active_window(&xvfb.display, 4242, "报表 — 测试");
        assert_eq!(
            x.front().expect("active"),
            Front::Window(ActiveWindow {
                pid: Some(4242),
                class: Some("Klass".into()),
                title: Some("报表 — 测试".into())
            })
        );
    }
}

//! systemd-logind (or elogind) over the system bus: who has a session, and each
//! session's `LockedHint`, `IdleHint` and `IdleSinceHint`.
//!
//! The bus part ([`read_sessions`]) takes the connection as an argument so tests can
//! serve a fake `org.freedesktop.login1` on a peer-to-peer socket pair; the folding
//! of sessions into one state per account ([`fold_accounts`]) is pure.
//!
//! What must stay true:
//! - only sessions of class `user` count (greeters and lock-screen sessions do not);
//! - an account is locked if any of its sessions says `LockedHint`;
//! - logind "says nothing" about idle for a session whose desktop never set the
//!   hint (`IdleHint` false and `IdleSinceHint` 0); such sessions do not decide the
//!   account's idle state, so the X11 fallback may.

use std::collections::{BTreeMap, HashMap};

use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

const DEST: &str = "org.freedesktop.login1";
const MANAGER_PATH: &str = "/org/freedesktop/login1";
const MANAGER_IFACE: &str = "org.freedesktop.login1.Manager";
const SESSION_IFACE: &str = "org.freedesktop.login1.Session";
const PROPS_IFACE: &str = "org.freedesktop.DBus.Properties";

/// One logind session, with the properties the probe reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SessionInfo {
    pub(super) id: String,
    /// The account name (`Name`).
    pub(super) user: String,
    /// `user`, `greeter`, `lock-screen`, `background`, ...
    pub(super) class: String,
    /// `x11`, `wayland`, `tty`, `mir`, `unspecified`.
    pub(super) kind: String,
    pub(super) locked: bool,
    pub(super) idle: bool,
    /// `IdleSinceHint` in epoch milliseconds (0 = never set).
    pub(super) idle_since_ms: i64,
    /// `Timestamp`: when the session started, epoch milliseconds (0 = unknown).
    pub(super) started_ms: i64,
}

/// What logind says about one account, folded over its sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AccountHints {
    pub(super) locked: bool,
    /// `None`: logind says nothing about idle for this account. Otherwise whether it
    /// is idle and since when (epoch ms; for "not idle", when it became active).
    pub(super) idle: Option<(bool, i64)>,
    /// The earliest session start, epoch ms (0 = unknown).
    pub(super) started_ms: i64,
}

/// Lists the sessions and reads each one's properties (one `GetAll` per session).
pub(super) async fn read_sessions(conn: &zbus::Connection) -> zbus::Result<Vec<SessionInfo>> {
    let reply = conn
        .call_method(
            Some(DEST),
            MANAGER_PATH,
            Some(MANAGER_IFACE),
            "ListSessions",
            &(),
        )
        .await?;
    let list: Vec<(String, u32, String, String, OwnedObjectPath)> = reply.body().deserialize()?;
    let mut out = Vec::with_capacity(list.len());
    for (id, _uid, user, _seat, path) in list {
        let reply = match conn
            .call_method(
                Some(DEST),
                path.as_str(),
                Some(PROPS_IFACE),
                "GetAll",
                &(SESSION_IFACE,),
            )
            .await
        {
            Ok(r) => r,
            // The session ended between the two calls.
            Err(zbus::Error::MethodError(..)) => continue,
            Err(e) => return Err(e),
        };
        let props: HashMap<String, OwnedValue> = reply.body().deserialize()?;
        out.push(session_from_props(id, user, &props));
    }
    Ok(out)
}

fn session_from_props(
    id: String,
    user: String,
    props: &HashMap<String, OwnedValue>,
) -> SessionInfo {
    let get_bool = |k: &str| matches!(props.get(k).map(|v| &**v), Some(Value::Bool(true)));
    let get_str = |k: &str| match props.get(k).map(|v| &**v) {
        Some(Value::Str(s)) => s.as_str().to_owned(),
        _ => String::new(),
    };
    let get_usec_as_ms = |k: &str| match props.get(k).map(|v| &**v) {
        Some(Value::U64(us)) => i64::try_from(*us / 1000).unwrap_or(i64::MAX),
        _ => 0,
    };
    let name = get_str("Name");
    SessionInfo {
        id,
        user: if name.is_empty() { user } else { name },
        class: get_str("Class"),
        kind: get_str("Type"),
        locked: get_bool("LockedHint"),
        idle: get_bool("IdleHint"),
        idle_since_ms: get_usec_as_ms("IdleSinceHint"),
        started_ms: get_usec_as_ms("Timestamp"),
    }
}

fn is_graphical(kind: &str) -> bool {
    matches!(kind, "x11" | "wayland" | "mir")
}

/// Folds sessions into one state per account (see the module invariants). For idle,
/// an account's graphical sessions decide if it has any; the account is idle only if
/// every deciding session is idle.
pub(super) fn fold_accounts(sessions: &[SessionInfo]) -> BTreeMap<String, AccountHints> {
    let mut by_user: BTreeMap<&str, Vec<&SessionInfo>> = BTreeMap::new();
    for s in sessions {
        if s.user.is_empty() || !(s.class.is_empty() || s.class == "user") {
            continue;
        }
        by_user.entry(s.user.as_str()).or_default().push(s);
    }
    by_user
        .into_iter()
        .map(|(user, ss)| {
            let locked = ss.iter().any(|s| s.locked);
            let started_ms = ss
                .iter()
                .map(|s| s.started_ms)
                .filter(|&t| t > 0)
                .min()
                .unwrap_or(0);
            let any_graphical = ss.iter().any(|s| is_graphical(&s.kind));
            let deciding: Vec<&&SessionInfo> = ss
                .iter()
                .filter(|s| !any_graphical || is_graphical(&s.kind))
                .filter(|s| s.idle || s.idle_since_ms > 0)
                .collect();
            let idle = if deciding.is_empty() {
                None
            } else if deciding.iter().all(|s| s.idle) {
                // Idle since the last of them went idle.
                Some((
                    true,
                    deciding.iter().map(|s| s.idle_since_ms).max().unwrap_or(0),
                ))
            } else {
                Some((
                    false,
                    deciding
                        .iter()
                        .filter(|s| !s.idle)
                        .map(|s| s.idle_since_ms)
                        .max()
                        .unwrap_or(0),
                ))
            };
            (
                user.to_owned(),
                AccountHints {
                    locked,
                    idle,
                    started_ms,
                },
            )
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    //! A fake logind served over a peer-to-peer Unix socket pair, so the client code
    //! above runs against a real D-Bus connection.

    use super::*;
    use std::sync::{Arc, Mutex};

    /// The mutable state of a fake session.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct FakeSession {
        pub(crate) id: String,
        pub(crate) uid: u32,
        pub(crate) name: String,
        pub(crate) class: String,
        pub(crate) kind: String,
        pub(crate) locked: bool,
        pub(crate) idle: bool,
        pub(crate) idle_since_us: u64,
        pub(crate) timestamp_us: u64,
    }

    pub(crate) type Shared = Arc<Mutex<Vec<FakeSession>>>;

    struct Manager(Shared);

    #[zbus::interface(name = "org.freedesktop.login1.Manager")]
    impl Manager {
        fn list_sessions(&self) -> Vec<(String, u32, String, String, OwnedObjectPath)> {
            self.0
                .lock()
                .expect("lock")
                .iter()
                .map(|s| {
                    let path = OwnedObjectPath::try_from(format!(
                        "/org/freedesktop/login1/session/_3{}",
                        s.id
                    ))
                    .expect("path");
                    (
                        s.id.clone(),
                        s.uid,
                        s.name.clone(),
                        "seat0".to_owned(),
                        path,
                    )
                })
                .collect()
        }
    }

    struct Session {
        id: String,
        all: Shared,
    }

    impl Session {
        fn get<T>(&self, f: impl Fn(&FakeSession) -> T, default: T) -> T {
            self.all
                .lock()
                .expect("lock")
                .iter()
                .find(|s| s.id == self.id)
                .map_or(default, f)
        }
    }

    #[zbus::interface(name = "org.freedesktop.login1.Session")]
    impl Session {
        #[zbus(property)]
        fn name(&self) -> String {
            self.get(|s| s.name.clone(), String::new())
        }
        #[zbus(property)]
        fn class(&self) -> String {
            self.get(|s| s.class.clone(), String::new())
        }
        #[zbus(property, name = "Type")]
        fn kind(&self) -> String {
            self.get(|s| s.kind.clone(), String::new())
        }
        #[zbus(property)]
        fn locked_hint(&self) -> bool {
            self.get(|s| s.locked, false)
        }
        #[zbus(property)]
        fn idle_hint(&self) -> bool {
            self.get(|s| s.idle, false)
        }
        #[zbus(property)]
        fn idle_since_hint(&self) -> u64 {
            self.get(|s| s.idle_since_us, 0)
        }
        #[zbus(property)]
        fn timestamp(&self) -> u64 {
            self.get(|s| s.timestamp_us, 0)
        }
    }

    /// Starts a fake logind serving `sessions` (their ids must not change; their
    /// fields may) on a socket pair. Returns the client end and the server end (keep
    /// it alive). Both are driven by the runtime this future runs on, which must
    /// keep running.
    pub(crate) async fn fake_logind(sessions: Shared) -> (zbus::Connection, zbus::Connection) {
        let (server_sock, client_sock) = tokio::net::UnixStream::pair().expect("socket pair");
        let guid = zbus::Guid::generate();
        let mut server = zbus::connection::Builder::unix_stream(server_sock)
            .server(guid)
            .expect("guid")
            .p2p()
            .serve_at(MANAGER_PATH, Manager(sessions.clone()))
            .expect("serve manager");
        let ids: Vec<String> = sessions
            .lock()
            .expect("lock")
            .iter()
            .map(|s| s.id.clone())
            .collect();
        for id in ids {
            let path = format!("/org/freedesktop/login1/session/_3{id}");
            server = server
                .serve_at(
                    path,
                    Session {
                        id,
                        all: sessions.clone(),
                    },
                )
                .expect("serve session");
        }
        let client = zbus::connection::Builder::unix_stream(client_sock)
            .p2p()
            .build();
        let (server, client) = tokio::try_join!(server.build(), client).expect("p2p handshake");
        (client, server)
    }

    pub(crate) fn desk_session(id: &str, name: &str) -> FakeSession {
        FakeSession {
            id: id.into(),
            uid: 1000,
            name: name.into(),
            class: "user".into(),
            kind: "x11".into(),
            timestamp_us: 1_772_412_065_000_000,
            ..FakeSession::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn reads_sessions_from_a_fake_logind() {
        let shared: Shared = Arc::new(Mutex::new(vec![
            desk_session("2", "zhangsan"),
            FakeSession {
                class: "greeter".into(),
                ..desk_session("c1", "lightdm")
            },
        ]));
        let (conn, _server) = fake_logind(shared.clone()).await;
        let got = read_sessions(&conn).await.expect("read");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].user, "zhangsan");
        assert_eq!(got[0].kind, "x11");
        assert_eq!(got[0].started_ms, 1_772_412_065_000);
        assert!(!got[0].locked);

        shared.lock().expect("lock")[0].locked = true;
        shared.lock().expect("lock")[0].idle = true;
        shared.lock().expect("lock")[0].idle_since_us = 1_772_412_999_000_000;
        let got = read_sessions(&conn).await.expect("read");
        assert!(got[0].locked && got[0].idle);
        assert_eq!(got[0].idle_since_ms, 1_772_412_999_000);
        let folded = fold_accounts(&got);
        assert_eq!(folded.len(), 1, "greeter sessions do not count");
        assert_eq!(
            folded["zhangsan"],
            AccountHints {
                locked: true,
                idle: Some((true, 1_772_412_999_000)),
                started_ms: 1_772_412_065_000
            }
        );
    }

    fn info(user: &str, kind: &str, idle: bool, since: i64) -> SessionInfo {
        SessionInfo {
            user: user.into(),
            class: "user".into(),
            kind: kind.into(),
            idle,
            idle_since_ms: since,
            ..SessionInfo::default()
        }
    }

    #[test]
    fn folding_rules() {
        // Graphical sessions decide idle over an ssh session.
        let f = fold_accounts(&[info("a", "x11", true, 50), info("a", "tty", false, 90)]);
        assert_eq!(f["a"].idle, Some((true, 50)));
        // Two graphical sessions: idle only if both are.
        let f = fold_accounts(&[info("a", "x11", true, 50), info("a", "wayland", false, 70)]);
        assert_eq!(f["a"].idle, Some((false, 70)));
        // A desktop that never set the hint says nothing.
        let f = fold_accounts(&[info("a", "x11", false, 0)]);
        assert_eq!(f["a"].idle, None);
        // Only tty sessions: they decide.
        let f = fold_accounts(&[info("b", "tty", true, 30)]);
        assert_eq!(f["b"].idle, Some((true, 30)));
    }
}

//! The collector as one program: gRPC for agents and scripts, the web pages, and
//! the recompute of dirty days, all on one store, until told to stop.
//!
//! The binary parses its command line, binds the sockets and hands them to
//! [`Collector::new`], prints where it listens, and calls [`Collector::run`];
//! [`run`] does all of it for callers that need no announcement.
//!
//! What must stay true:
//! - without a TLS certificate the collector refuses to start unless plaintext is
//!   allowed (`server.plaintext`, `serve --plaintext`); the pages use gRPC's
//!   certificate and are plain HTTP only when gRPC is;
//! - shutdown drains: gRPC and the pages stop accepting and finish the calls in
//!   flight, a recompute round under way finishes (its verdicts are stored), and
//!   only then does `run` return; nothing is aborted.

use crate::config::Config;
use crate::ingest::Clock;
use crate::store::Opened;
use crate::verdicts::{LiveRules, Rules};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The sockets the collector serves on, bound by the caller (port 0 is fine).
#[derive(Debug)]
pub struct Listeners {
    /// gRPC: AgentService, ReportService, health, reflection.
    pub grpc: TcpListener,
    /// The web pages and the JSON API, if served.
    pub http: Option<TcpListener>,
}

/// A collector ready to serve: store open, rules loaded, certificate read.
pub struct Collector {
    listeners: Listeners,
    config: Config,
    clock: Clock,
    store: Opened,
    rules: Arc<LiveRules>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The server certificate and key (PEM) for the pages, when over TLS.
    web_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl Collector {
    /// Opens the store (`config.storage.url`, or the SQLite file in
    /// `config.server.data_dir`) and reads the rules and the TLS
    /// certificate. Fails, naming the problem, on a bad rule, an unreadable store,
    /// or no certificate where plaintext is not allowed.
    pub fn new(listeners: Listeners, config: Config, clock: Clock) -> anyhow::Result<Collector> {
        let data_dir = config.server.data_dir.clone();
        let tls = crate::tls::server_config(&data_dir)?;
        if tls.is_none() && !config.server.plaintext {
            anyhow::bail!(
                "no TLS certificate in {}: run `kaoqin-collector tls init --name HOST` first, or pass --plaintext for a lab",
                data_dir.join(crate::tls::TLS_DIR).display()
            );
        }
        let web_pem = match (&tls, &listeners.http) {
            (Some(_), Some(_)) => Some(crate::tls::server_pem(&data_dir)?),
            _ => None,
        };
        let rules = Rules::from_config(&config)?;
        let store = crate::store::open(&data_dir, config.storage.url.as_deref(), &rules.settings)?;
        tracing::info!(store = %store.describe(), "Store open.");
        if matches!(store, crate::store::Opened::Postgres(_)) {
            tracing::info!(
                "Rate and login limits count what this collector sees: with several collectors on one database, an office gets up to that many times each limit."
            );
        }
        let rules = Arc::new(LiveRules::new(store.stores(), rules));
        Ok(Collector {
            listeners,
            config,
            clock,
            store,
            rules,
            tls,
            web_pem,
        })
    }

    /// Where gRPC listens.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.listeners.grpc.local_addr()
    }

    /// Where the pages listen, if they are served.
    pub fn http_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.listeners.http.as_ref().map(TcpListener::local_addr)
    }

    /// `https` or `http`: gRPC's scheme, and the pages'.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves until `shutdown` completes (or gRPC fails), then drains: see the
    /// module's invariants.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Collector {
            listeners,
            config,
            clock,
            store,
            rules,
            tls,
            web_pem,
        } = self;
        if config.server.allow_replay {
            tracing::warn!(
                "Taking past events from replaying agents (--allow-replay): for a lab only."
            );
        }
        if tls.is_none() {
            tracing::warn!("Serving gRPC in plaintext: for a lab only.");
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let every = std::time::Duration::from_secs(config.attendance.recompute_seconds.into());
        let recompute = crate::verdicts::spawn_recompute(
            store.stores(),
            rules.clone(),
            every,
            clock.clone(),
            stopped(),
        );
        let notify = crate::notify::spawn_schedule(
            store.stores(),
            rules.clone(),
            config.clone(),
            clock.clone(),
            stopped(),
        )?;
        let ldap_sync = config.auth.ldap.clone().and_then(|cfg| {
            crate::ldap::spawn_daily_sync(
                store.stores(),
                cfg,
                rules.settings().time_zone.clone(),
                clock.clone(),
                stopped(),
            )
        });
        let policy = Arc::new(crate::policy::LivePolicy::stored(
            &config.agents,
            crate::policy::loader(store.stores()),
        ));
        let web = listeners.http.map(|l| {
            let app =
                crate::web::App::sharing(store.stores(), rules.clone(), &config, policy.clone());
            match web_pem {
                Some((cert, key)) => {
                    tokio::spawn(crate::web::run_tls(l, app, cert, key, stopped()))
                }
                None => tokio::spawn(crate::web::run(l, app, stopped())),
            }
        });
        let (store_ok, watch_ok) = tokio::sync::watch::channel(true);
        let watcher = watch_store(store.stores(), store_ok, stopped());
        let reports = crate::report_service::ReportApi::new(store.stores(), rules);
        let grpc_stop = stopped();
        let mut grpc = tokio::spawn(async move {
            crate::server::serve(
                listeners.grpc,
                Arc::new(store),
                &config,
                clock,
                crate::server::Options {
                    tls,
                    reports: Some(reports),
                    store_ok: watch_ok,
                    policy: Some(policy),
                },
                grpc_stop,
            )
            .await
        });
        let early = tokio::select! {
            () = shutdown => None,
            r = &mut grpc => Some(r),
        };
        tracing::info!("Collector stopping: finishing the calls and the recompute under way.");
        let _ = stop_tx.send(true);
        let grpc = match early {
            Some(r) => r,
            None => grpc.await,
        };
        let web = match web {
            Some(w) => w.await,
            None => Ok(Ok(())),
        };
        recompute.await?;
        if let Some(n) = notify {
            n.await?;
        }
        if let Some(s) = ldap_sync {
            s.await?;
        }
        watcher.await?;
        grpc??;
        web??;
        tracing::info!("Collector stopped.");
        Ok(())
    }
}

/// How often the store is asked whether it answers.
const STORE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Asks the store every [`STORE_CHECK`] whether it answers and says so on
/// `ok` when that changes (health follows it), until `shutdown`.
fn watch_store(
    store: Arc<dyn crate::store::Stores>,
    ok: tokio::sync::watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut periodic = crate::periodic::Periodic::new(STORE_CHECK, shutdown);
        while periodic.next().await {
            let store = store.clone();
            let answers = tokio::task::spawn_blocking(move || store.ping())
                .await
                .map(|r| r.map_err(|e| e.to_string()));
            let now_ok = matches!(answers, Ok(Ok(())));
            if *ok.borrow() != now_ok {
                match &answers {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "The store does not answer; health says NOT_SERVING until it does.")
                    }
                    Err(e) => tracing::warn!(error = %e, "The store check failed."),
                    Ok(Ok(())) => tracing::info!("The store answers again; health says SERVING."),
                }
                ok.send_replace(now_ok);
            }
        }
    })
}

/// Serves on `listeners` with `config` until `shutdown` completes, then drains:
/// [`Collector::new`] and [`Collector::run`] in one call.
pub async fn run(
    listeners: Listeners,
    config: Config,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    Collector::new(listeners, config, clock)?
        .run(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::store::concerns::*;

    async fn bound() -> Listeners {
        Listeners {
            grpc: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            http: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        }
    }

    fn lab_config(dir: &std::path::Path) -> Config {
        let mut config = Config::default();
        config.server.data_dir = dir.to_path_buf();
        config.server.plaintext = true;
        config
    }

    #[tokio::test]
    async fn without_a_certificate_it_refuses_unless_plaintext_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = lab_config(dir.path());
        config.server.plaintext = false;
        let err = Collector::new(bound().await, config, crate::ingest::system_clock())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("no TLS certificate in") && err.contains("--plaintext"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn it_serves_grpc_and_the_pages_then_stops_when_told_and_releases_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let collector = Collector::new(
            bound().await,
            lab_config(dir.path()),
            crate::ingest::system_clock(),
        )
        .unwrap();
        assert_eq!(collector.scheme(), "http");
        let grpc = collector.grpc_addr().unwrap();
        let http = collector.http_addr().unwrap().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(collector.run(async {
            let _ = stopped.await;
        }));

        let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "kaoqin.v1.AgentService".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
        let mut stream = tokio::net::TcpStream::connect(http).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut page = Vec::new();
        stream.read_to_end(&mut page).await.unwrap();
        assert!(
            page.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&page)
        );

        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(30), running)
            .await
            .expect("stops when told")
            .unwrap()
            .unwrap();
        // Everything let go of the store: nothing listens, and the file opens again.
        assert!(tokio::net::TcpStream::connect(grpc).await.is_err());
        crate::store::sqlite::SqliteStore::open(dir.path()).unwrap();
    }
}

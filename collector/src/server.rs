//! The collector's gRPC services, until told to stop ([`crate::app`] wires them
//! with the rest).

use crate::config::Config;
use crate::ingest::{Clock, Ingest};
use crate::store::Store;
use kaoqin_proto::v1 as pb;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The largest request a client may send (a full batch is far smaller).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Every call is cut off after this long.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// What gRPC serves besides agents.
pub struct Options {
    /// TLS with the server certificate ([`crate::tls::server_config`]);
    /// plaintext when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The ReportService for scripts.
    pub reports: Option<crate::report_service::ReportApi>,
    /// Whether the store answers: health follows it.
    pub store_ok: tokio::sync::watch::Receiver<bool>,
    /// The agents' policy with the office's saved rules; the config's alone
    /// when `None`.
    pub policy: Option<Arc<crate::policy::LivePolicy>>,
}

/// Serves gRPC (AgentService, health, reflection, and what `options` adds) on
/// `listener` until `shutdown` completes; then finishes the calls in flight.
pub async fn serve<S: Store>(
    listener: TcpListener,
    store: Arc<S>,
    config: &Config,
    clock: Clock,
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let Options {
        tls,
        reports,
        mut store_ok,
        policy,
    } = options;
    let mut ingest =
        Ingest::new(store, &config.agents, clock).allow_replay(config.server.allow_replay);
    if let Some(policy) = policy {
        ingest = ingest.with_policy(policy);
    }
    if config.server.allow_replay {
        tracing::warn!(
            "Taking past events from replaying agents (--allow-replay): for a lab only."
        );
    }
    let agent_service = pb::agent_service_server::AgentServiceServer::new(ingest)
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::agent_service_server::AgentServiceServer<Ingest<S>>>()
        .await;
    let with_reports = reports.is_some();
    if with_reports {
        health
            .set_serving::<pb::report_service_server::ReportServiceServer<crate::report_service::ReportApi>>()
            .await;
    }
    // Health follows the store: NOT_SERVING while it does not answer, so a load
    // balancer sends agents elsewhere; SERVING again once it does.
    let follow = health.clone();
    let follower = tokio::spawn(async move {
        while store_ok.changed().await.is_ok() {
            let ok = *store_ok.borrow_and_update();
            type Agents<S> = pb::agent_service_server::AgentServiceServer<Ingest<S>>;
            type Reports =
                pb::report_service_server::ReportServiceServer<crate::report_service::ReportApi>;
            if ok {
                follow.set_serving::<Agents<S>>().await;
                if with_reports {
                    follow.set_serving::<Reports>().await;
                }
            } else {
                follow.set_not_serving::<Agents<S>>().await;
                if with_reports {
                    follow.set_not_serving::<Reports>().await;
                }
            }
        }
    });
    // Reflection in both versions: v1, and v1alpha, which grpcio-reflection,
    // older grpcurl and Postman speak.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;
    let mut builder = tonic::transport::Server::builder()
        .timeout(CALL_DEADLINE)
        .concurrency_limit_per_connection(64)
        .max_concurrent_streams(128)
        .http2_keepalive_interval(Some(Duration::from_secs(60)));
    let router = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(agent_service)
        .add_optional_service(reports.map(|r| {
            pb::report_service_server::ReportServiceServer::new(r)
                .max_decoding_message_size(64 * 1024)
        }));
    match tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls_incoming(listener, tls), shutdown)
                .await?
        }
        None => {
            // The builder's `tcp_nodelay` applies only to listeners tonic binds
            // itself; accepted sockets get it here. Without it, a new
            // connection's small writes waited on the client's delayed ACK
            // (about 40 ms).
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?
        }
    }
    follower.abort();
    Ok(())
}

/// The longest a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections whose handshake is done, waiting for the server to take them.
const TLS_READY_QUEUE: usize = 1024;

/// Connections accepted on `listener` once their TLS handshake is done, each
/// handshake in its own task (a slow client holds up nobody) and bounded by
/// [`TLS_HANDSHAKE_TIMEOUT`]. Handshakes are counted by outcome, so the share
/// resumed from tickets shows in `/metrics`. Accepting stops when the server
/// stops taking connections.
fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> tokio_stream::wrappers::ReceiverStream<
    std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
> {
    let (ready, incoming) = tokio::sync::mpsc::channel(TLS_READY_QUEUE);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => accepted,
                () = ready.closed() => break,
            };
            let tcp = match tcp {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors or the like: the connections in
                    // flight go on; accepting resumes after a pause.
                    tracing::warn!(error = %e, "Could not accept a gRPC connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // As for plaintext: no wait on the client's delayed ACK.
            let _ = tcp.set_nodelay(true);
            let (acceptor, ready) = (acceptor.clone(), ready.clone());
            tokio::spawn(async move {
                let metrics = crate::metrics::get();
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let resumed = tls.get_ref().1.handshake_kind()
                            == Some(rustls::HandshakeKind::Resumed);
                        metrics.tls_handshake(if resumed { "resumed" } else { "full" });
                        let _ = ready.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        metrics.tls_handshake("failed");
                        tracing::debug!(error = %e, "A gRPC TLS handshake failed.");
                    }
                    Err(_) => {
                        metrics.tls_handshake("failed");
                        tracing::debug!("A gRPC TLS handshake timed out.");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(incoming)
}

/// Completes on SIGINT or SIGTERM (Ctrl-C elsewhere). On Unix the handlers are
/// installed when this is called, inside a runtime, not when the future is first
/// polled: a SIGTERM sent as soon as the process has said it is serving stops it
/// cleanly instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {},
                        _ = term.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

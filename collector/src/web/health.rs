//! For monitoring: `/healthz` (200 while the store answers, 503 when it does not)
//! and `/metrics` in the Prometheus text format, which answers loopback, the
//! networks of `[metrics] allow`, and anyone with `[metrics] token` as a bearer
//! token. Neither needs a session; neither says anything about a person.

use super::App;
use super::pages::{St, now};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(app): St) -> Response {
    let ping = tokio::task::spawn_blocking(move || app.store.ping()).await;
    match ping {
        Ok(Ok(())) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Health check: the store does not answer.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store does not answer: {e}\n"),
            )
                .into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// Whether `peer` (with `headers`) may read the metrics under `access`.
fn may_read(
    access: &crate::config::MetricsConfig,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> bool {
    let ip = peer.map(|p| p.ip().to_canonical());
    if ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    if ip.is_some_and(|ip| access.networks().iter().any(|n| n.contains(&ip))) {
        return true;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&access.token, bearer) {
        (Some(want), Some(got)) => crate::ingest::constant_time_eq(want.as_bytes(), got.as_bytes()),
        _ => false,
    }
}

async fn metrics(State(app): St, req: axum::extract::Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if !may_read(&app.metrics, peer, req.headers()) {
        return (
            StatusCode::FORBIDDEN,
            "metrics: not from loopback, [metrics] allow or with [metrics] token\n",
        )
            .into_response();
    }
    let read = tokio::task::spawn_blocking(move || {
        let large_offset_ms = app.settings().large_offset_ms;
        if let Err(e) =
            crate::metrics::refresh(&*app.store, large_offset_ms, now().as_millisecond())
        {
            tracing::warn!(error = %e, "Metrics: the store's figures could not be read.");
        }
        crate::metrics::get().encode()
    })
    .await;
    match read {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_answer_loopback_the_allowed_networks_and_the_token_only() {
        let access = crate::config::MetricsConfig {
            allow: vec!["10.1.0.0/16".into(), "192.0.2.7".into()],
            token: Some("scrape-token-0123456789".into()),
        };
        let peer = |ip: &str| Some(SocketAddr::new(ip.parse().unwrap(), 40000));
        let none = HeaderMap::new();
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            "Bearer scrape-token-0123456789".parse().unwrap(),
        );
        let mut wrong = HeaderMap::new();
        wrong.insert(
            header::AUTHORIZATION,
            "Bearer scrape-token-0123456780".parse().unwrap(),
        );
        assert!(may_read(&access, peer("127.0.0.1"), &none));
        assert!(may_read(&access, peer("::1"), &none));
        assert!(may_read(&access, peer("::ffff:127.0.0.1"), &none));
        assert!(may_read(&access, peer("10.1.200.3"), &none));
        assert!(may_read(&access, peer("192.0.2.7"), &none));
        assert!(!may_read(&access, peer("192.0.2.8"), &none));
        assert!(!may_read(&access, peer("10.2.0.1"), &none));
        assert!(may_read(&access, peer("10.2.0.1"), &bearer));
        assert!(!may_read(&access, peer("10.2.0.1"), &wrong));
        assert!(!may_read(&access, None, &none));
        let closed = crate::config::MetricsConfig::default();
        assert!(!may_read(&closed, peer("10.1.200.3"), &bearer));
    }

    #[test]
    fn a_bad_network_is_named_when_the_configuration_is_read() {
        let e = crate::config::Config::parse(
            "[metrics]\nallow = [\"10.1.0.0/33\"]\ntoken = \"short\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("metrics.allow: \"10.1.0.0/33\""), "{e}");
        assert!(e.contains("metrics.token"), "{e}");
    }
}

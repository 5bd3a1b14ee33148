//! The Report call over a plain hyper HTTP/2 connection: the request framed by
//! hand (a gRPC message is a flag byte, a big-endian length and the protobuf
//! bytes), the answer's `grpc-status` read from its trailers. No tower buffer,
//! no channel task, no codec layers: what a minimal client costs, so that what
//! the load generator measures is the collector.

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kaoqin_proto::v1 as pb;
use prost::Message;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Where and how to connect: the collector's address, its TLS name and
/// configuration (HTTP/2 by ALPN) when it serves TLS, and the local address to
/// connect from.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) authority: String,
    pub(crate) scheme: &'static str,
    pub(crate) tls: Option<(
        rustls::pki_types::ServerName<'static>,
        Arc<rustls::ClientConfig>,
    )>,
    pub(crate) source: Option<IpAddr>,
}

impl Target {
    /// From the collector's URL and, for `https://`, its CA certificate (PEM).
    /// Every target made here has its own TLS session cache, as every agent has;
    /// with `resume` false it never resumes (a full handshake every time).
    pub(crate) fn new(
        url: &str,
        ca_pem: Option<&str>,
        source: Option<IpAddr>,
        resume: bool,
    ) -> anyhow::Result<Target> {
        let uri: hyper::Uri = url.parse()?;
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("--collector {url}: no host:port"))?
            .to_string();
        let addr: SocketAddr = authority
            .parse()
            .map_err(|_| anyhow::anyhow!("--collector {url}: give an address, not a name"))?;
        let tls = match (uri.scheme_str(), ca_pem) {
            (Some("https"), Some(pem)) => Some(tls_config(&uri, pem, resume)?),
            (Some("https"), None) => anyhow::bail!("an https:// collector needs --ca"),
            _ => None,
        };
        Ok(Target {
            addr,
            authority,
            scheme: if tls.is_some() { "https" } else { "http" },
            tls,
            source,
        })
    }

    /// A new HTTP/2 connection; the connection's task ends once every handle
    /// to it is dropped.
    pub(crate) async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let socket = match self.addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        if let Some(ip) = self.source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.set_nodelay(true)?;
        let tcp = socket.connect(self.addr).await?;
        let exec = TokioExecutor::new();
        Ok(match &self.tls {
            None => {
                let (send, conn) =
                    hyper::client::conn::http2::handshake(exec, TokioIo::new(tcp)).await?;
                tokio::spawn(conn);
                send
            }
            Some((name, config)) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await?;
                let (send, conn) =
                    hyper::client::conn::http2::handshake(exec, TokioIo::new(tls)).await?;
                tokio::spawn(conn);
                send
            }
        })
    }
}

fn tls_config(
    uri: &hyper::Uri,
    pem: &str,
    resume: bool,
) -> anyhow::Result<(
    rustls::pki_types::ServerName<'static>,
    Arc<rustls::ClientConfig>,
)> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    Ok((
        rustls::pki_types::ServerName::try_from(host)?,
        Arc::new(config),
    ))
}

/// One Report: the gRPC status the collector answered with.
pub(crate) async fn report(
    send: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    agent_id: &str,
    authorization: &str,
    body: &pb::ReportRequest,
) -> Result<(), tonic::Status> {
    let failed = |e: &dyn std::fmt::Display| tonic::Status::unavailable(e.to_string());
    let mut frame = BytesMut::with_capacity(5 + body.encoded_len());
    frame.put_u8(0);
    frame.put_u32(body.encoded_len() as u32);
    body.encode(&mut frame).map_err(|e| failed(&e))?;
    let request = hyper::Request::post(format!(
        "{}://{}/kaoqin.v1.AgentService/Report",
        target.scheme, target.authority
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header(kaoqin_proto::AGENT_ID_HEADER, agent_id)
    .header(kaoqin_proto::AUTHORIZATION_HEADER, authorization)
    .body(Full::new(frame.freeze()))
    .map_err(|e| failed(&e))?;
    send.ready().await.map_err(|e| failed(&e))?;
    let response = send.send_request(request).await.map_err(|e| failed(&e))?;
    let (head, answer) = response.into_parts();
    // A refusal may come as headers alone ("trailers-only").
    let status = |h: &hyper::HeaderMap| -> Option<tonic::Status> {
        let code = h.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
        let message = h
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default();
        Some(tonic::Status::new(tonic::Code::from_i32(code), message))
    };
    let found = match status(&head.headers) {
        Some(s) => s,
        None => {
            let collected = answer.collect().await.map_err(|e| failed(&e))?;
            let trailers = collected
                .trailers()
                .ok_or_else(|| tonic::Status::internal("an answer without trailers"))?;
            status(trailers)
                .ok_or_else(|| tonic::Status::internal("an answer without grpc-status"))?
        }
    };
    match found.code() {
        tonic::Code::Ok => Ok(()),
        _ => Err(found),
    }
}

//! The gRPC client: enrol, report batches, fetch the policy. Every call has a
//! deadline; errors are sorted into what a retry can fix and what it cannot.

use crate::event::Event;
use crate::state::Enrolment;
use kaoqin_proto::v1 as pb;
use kaoqin_proto::v1::agent_service_client::AgentServiceClient;
use kaoqin_proto::{AGENT_ID_HEADER, AUTHORIZATION_HEADER};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// How a failed call should be handled.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// The collector refused the request as malformed; resending it unchanged
    /// fails again. `seq` names the offending event when the collector said.
    #[error("collector rejected the request: {message}")]
    Rejected { seq: Option<u64>, message: String },
    /// The key (or token) was not accepted: enrol again.
    #[error("collector did not accept our credentials: {0}")]
    Unauthenticated(String),
    /// Unreachable, overloaded, timed out: retry after a pause.
    #[error("collector unavailable: {0}")]
    Retry(String),
    /// The collector is up but asked us to slow down (ResourceExhausted).
    #[error("collector busy: {0}")]
    Busy(String),
    /// The collector address is unusable.
    #[error("collector address {url:?}: {message}")]
    BadAddress { url: String, message: String },
}

impl From<tonic::Status> for UplinkError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code::*;
        let message = s.message().to_owned();
        match s.code() {
            InvalidArgument | FailedPrecondition | OutOfRange | PermissionDenied => {
                UplinkError::Rejected {
                    seq: rejected_seq(&message),
                    message,
                }
            }
            Unauthenticated => UplinkError::Unauthenticated(message),
            ResourceExhausted => UplinkError::Busy(message),
            code => UplinkError::Retry(format!("{code:?}: {message}")),
        }
    }
}

/// The collector names a bad event as "event seq N: ...".
fn rejected_seq(message: &str) -> Option<u64> {
    let rest = message.strip_prefix("event seq ")?;
    rest.split(':').next()?.trim().parse().ok()
}

/// A lazily connecting channel to `url` with the call deadline set. With a
/// pinned CA (`ca_pem`) only `https://` is accepted and only a server certificate
/// that CA signed is trusted; without one only `http://` is (a lab set-up).
pub fn channel(url: &str, timeout: Duration, ca_pem: Option<&str>) -> Result<Channel, UplinkError> {
    Ok(endpoint(url, timeout, ca_pem)?.connect_lazy())
}

/// The endpoint [`channel`] connects to, configured once.
fn endpoint(url: &str, timeout: Duration, ca_pem: Option<&str>) -> Result<Endpoint, UplinkError> {
    let bad = |message: String| UplinkError::BadAddress {
        url: url.to_owned(),
        message,
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| bad(e.to_string()))?;
    match (url.split_once("://").map(|(s, _)| s), ca_pem) {
        (Some("https"), Some(ca)) => {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca));
            endpoint = endpoint.tls_config(tls).map_err(|e| bad(e.to_string()))?;
        }
        (Some("http"), Some(_)) => {
            return Err(bad(
                "this agent pins the collector's CA and never talks to it in plaintext; use https://".into(),
            ));
        }
        (Some("https"), None) => {
            return Err(bad(
                "https:// needs the collector's CA certificate: enroll with --ca FILE".into(),
            ));
        }
        (Some("http"), None) => {}
        _ => return Err(bad("must start with http:// or https://".into())),
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20)))
}

/// Exchanges an enrolment token for an identity.
pub async fn enroll(
    url: &str,
    token: &str,
    host: pb::HostFacts,
    timeout: Duration,
    ca_pem: Option<&str>,
) -> Result<pb::EnrollResponse, UplinkError> {
    let mut client = AgentServiceClient::new(channel(url, timeout, ca_pem)?);
    let reply = client
        .enroll(pb::EnrollRequest {
            token: token.to_owned(),
            host: Some(host),
        })
        .await?;
    Ok(reply.into_inner())
}

/// An enrolled agent's connection to its collector.
pub struct Uplink {
    endpoint: Endpoint,
    client: AgentServiceClient<Channel>,
    enrolment: Enrolment,
}

fn client(endpoint: &Endpoint) -> AgentServiceClient<Channel> {
    AgentServiceClient::new(endpoint.connect_lazy()).max_decoding_message_size(4 * 1024 * 1024)
}

impl Uplink {
    pub fn new(enrolment: Enrolment, timeout: Duration) -> Result<Uplink, UplinkError> {
        let endpoint = endpoint(&enrolment.collector, timeout, enrolment.ca_pem.as_deref())?;
        Ok(Uplink {
            client: client(&endpoint),
            endpoint,
            enrolment,
        })
    }

    /// Closes the connection, if one is open; the next call opens a new one.
    pub fn disconnect(&mut self) {
        self.client = client(&self.endpoint);
    }

    /// The identity calls are made as.
    pub fn enrolment(&self) -> &Enrolment {
        &self.enrolment
    }

    /// Replaces the identity (after enrolling again).
    pub fn set_enrolment(&mut self, enrolment: Enrolment) {
        self.enrolment = enrolment;
    }

    fn request<T>(&self, body: T) -> Result<tonic::Request<T>, UplinkError> {
        let mut req = tonic::Request::new(body);
        let md = req.metadata_mut();
        let id =
            self.enrolment.agent_id.parse().map_err(|_| {
                UplinkError::Unauthenticated("agent id is not valid metadata".into())
            })?;
        let auth = format!("Bearer {}", self.enrolment.agent_key)
            .parse()
            .map_err(|_| UplinkError::Unauthenticated("agent key is not valid metadata".into()))?;
        md.insert(AGENT_ID_HEADER, id);
        md.insert(AUTHORIZATION_HEADER, auth);
        Ok(req)
    }

    /// Sends one batch; the reply says up to which seq everything is stored.
    /// `replay`: the events come from a scripted replay.
    pub async fn report(
        &mut self,
        events: &[Event],
        sent_at_ms: i64,
        replay: bool,
    ) -> Result<pb::ReportResponse, UplinkError> {
        let req = self.request(pb::ReportRequest {
            agent_id: self.enrolment.agent_id.clone(),
            sent_at_ms,
            events: events.iter().map(pb::Event::from).collect(),
            replay,
        })?;
        Ok(self.client.report(req).await?.into_inner())
    }

    /// Fetches the collector's policy for this agent.
    pub async fn policy(&mut self, known_version: u64) -> Result<pb::Policy, UplinkError> {
        let req = self.request(pb::GetPolicyRequest { known_version })?;
        Ok(self.client.get_policy(req).await?.into_inner())
    }
}

/// The waits between failed attempts: exponential from `backoff_min_seconds`,
/// each with up to 100% random jitter so that a hundred agents cut off together
/// do not come back together, and never longer than `backoff_max_seconds`.
pub fn retry_schedule(
    cfg: &crate::config::UplinkConfig,
) -> impl Iterator<Item = Duration> + Send + use<> {
    use backon::BackoffBuilder;
    let min = Duration::from_secs(cfg.backoff_min_seconds.max(1));
    let max = Duration::from_secs(cfg.backoff_max_seconds).max(min);
    // Jitter adds up to the delay itself, so the exponential part stops at half
    // the maximum. The seed must differ per agent (backon's default seed without
    // its std feature is fixed, which would make every agent wait alike).
    let mut seed = [0u8; 8];
    if getrandom::fill(&mut seed).is_err() {
        seed = (std::process::id() as u64 ^ jiff::Timestamp::now().as_nanosecond() as u64)
            .to_le_bytes();
    }
    backon::ExponentialBuilder::default()
        .with_jitter_seed(u64::from_le_bytes(seed))
        .with_min_delay(min)
        .with_max_delay((max / 2).max(min))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .map(move |d| d.min(max))
}

/// The encoded size of an event on the wire, for batching by bytes.
pub fn wire_size(e: &Event) -> usize {
    use prost::Message;
    pb::Event::from(e).encoded_len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_sort_into_retry_reject_and_reenrol() {
        let e = UplinkError::from(tonic::Status::invalid_argument(
            "event seq 42: usage.end_ms: bad",
        ));
        assert!(matches!(e, UplinkError::Rejected { seq: Some(42), .. }));
        let e = UplinkError::from(tonic::Status::invalid_argument("batch has 9999 events"));
        assert!(matches!(e, UplinkError::Rejected { seq: None, .. }));
        assert!(matches!(
            UplinkError::from(tonic::Status::unauthenticated("revoked")),
            UplinkError::Unauthenticated(_)
        ));
        assert!(matches!(
            UplinkError::from(tonic::Status::resource_exhausted("slow down")),
            UplinkError::Busy(_)
        ));
        for s in [
            tonic::Status::unavailable("x"),
            tonic::Status::deadline_exceeded("x"),
            tonic::Status::internal("x"),
        ] {
            assert!(matches!(UplinkError::from(s), UplinkError::Retry(_)));
        }
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_maximum() {
        let cfg = crate::config::UplinkConfig {
            backoff_min_seconds: 1,
            backoff_max_seconds: 300,
            ..Default::default()
        };
        let delays: Vec<Duration> = retry_schedule(&cfg).take(30).collect();
        let s = |d: &Duration| d.as_secs_f64();
        assert!((1.0..2.0).contains(&s(&delays[0])), "{delays:?}");
        assert!((2.0..4.0).contains(&s(&delays[1])), "{delays:?}");
        assert!((4.0..8.0).contains(&s(&delays[2])), "{delays:?}");
        assert!(delays.iter().all(|d| s(d) <= 300.0), "{delays:?}");
        assert!(delays[10..].iter().all(|d| s(d) >= 150.0), "{delays:?}");
        // Two agents failing together wait differently.
        let other: Vec<Duration> = retry_schedule(&cfg).take(30).collect();
        assert_ne!(delays, other);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_loop_waits_out_its_schedule_in_virtual_time() {
        let cfg = crate::config::UplinkConfig {
            backoff_min_seconds: 2,
            backoff_max_seconds: 60,
            ..Default::default()
        };
        let start = tokio::time::Instant::now();
        let mut waited = Duration::ZERO;
        for d in retry_schedule(&cfg).take(8) {
            tokio::time::sleep(d).await;
            waited += d;
        }
        // 2+4+8+16+30+30+30+30 = 150 s at least, 300 s at most with jitter.
        let elapsed = start.elapsed();
        assert_eq!(elapsed.as_secs(), waited.as_secs());
        assert!((150..=480).contains(&elapsed.as_secs()), "{elapsed:?}");
    }

    #[tokio::test]
    async fn addresses_must_be_urls_and_a_pinned_ca_forbids_plaintext() {
        let t = Duration::from_secs(1);
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let refused =
            |r: Result<Channel, UplinkError>| matches!(r, Err(UplinkError::BadAddress { .. }));
        assert!(refused(channel("collector:50051", t, None)));
        assert!(refused(channel("http://collector:50051", t, Some(pem))));
        assert!(refused(channel("https://collector:50051", t, None)));
        assert!(channel("http://collector:50051", t, None).is_ok());
    }
}

//! The AgentService: authenticate, validate, dedupe, store.
//!
//! What must stay true:
//! - a Report is answered only after its batch is durable, and the answer's
//!   `acked_seq` never exceeds what is stored;
//! - a request that fails validation stores nothing and is answered with
//!   InvalidArgument naming the seq and field; a bad key gets Unauthenticated;
//! - nothing a client sends can panic the server.

use crate::config::AgentPolicy;
use crate::error::CollectorError;
use crate::store::{Batch, HostFacts, Store, hash_secret};
use kaoqin_proto::event::Event;
use kaoqin_proto::v1 as pb;
use kaoqin_proto::{AGENT_ID_HEADER, AUTHORIZATION_HEADER};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The most events one Report may carry.
pub const MAX_BATCH_EVENTS: usize = 5_000;

/// The collector's clock, injectable so tests can set it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock in epoch milliseconds.
pub fn system_clock() -> Clock {
    Arc::new(|| jiff::Timestamp::now().as_millisecond())
}

/// Serves `kaoqin.v1.AgentService` over a [`Store`].
pub struct Ingest<S> {
    store: Arc<S>,
    policy: pb::Policy,
    clock: Clock,
}

impl<S: Store> Ingest<S> {
    pub fn new(store: Arc<S>, policy: &AgentPolicy, clock: Clock) -> Self {
        Ingest {
            store,
            policy: policy.to_proto(),
            clock,
        }
    }

    /// Checks the agent id and key in the request metadata.
    fn authenticate<T>(&self, req: &Request<T>) -> Result<crate::store::AgentAuth, CollectorError> {
        let md = req.metadata();
        let agent_id = md
            .get(AGENT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                CollectorError::Unauthenticated(format!("missing {AGENT_ID_HEADER} metadata"))
            })?;
        let key = md
            .get(AUTHORIZATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                CollectorError::Unauthenticated("missing authorization: Bearer <agent key>".into())
            })?;
        let auth = self.store.agent_auth(agent_id)?.ok_or_else(|| {
            CollectorError::Unauthenticated(format!("unknown agent {agent_id}; enrol again"))
        })?;
        if auth.revoked {
            return Err(CollectorError::Unauthenticated(format!(
                "agent {agent_id} has been revoked; enrol again"
            )));
        }
        if !constant_time_eq(hash_secret(key).as_bytes(), auth.key_hash.as_bytes()) {
            return Err(CollectorError::Unauthenticated(format!(
                "wrong key for agent {agent_id}; enrol again"
            )));
        }
        Ok(auth)
    }

    async fn report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> Result<pb::ReportResponse, CollectorError> {
        let received_ms = (self.clock)();
        let auth = self.authenticate(&req)?;
        let body = req.into_inner();
        if body.agent_id != auth.agent_id {
            return Err(CollectorError::PermissionDenied(format!(
                "batch names agent {:?} but the key is agent {}'s",
                body.agent_id, auth.agent_id
            )));
        }
        if body.events.len() > MAX_BATCH_EVENTS {
            return Err(CollectorError::InvalidArgument(format!(
                "batch has {} events; the limit is {MAX_BATCH_EVENTS}",
                body.events.len()
            )));
        }
        let mut events = Vec::with_capacity(body.events.len());
        let mut prev = 0u64;
        for wire in &body.events {
            let e = Event::try_from(wire)
                .map_err(|e| CollectorError::InvalidArgument(e.to_string()))?;
            if e.seq <= prev {
                return Err(CollectorError::InvalidArgument(format!(
                    "event seq {}: seq: not above the previous event's {prev}; events must be in increasing seq order",
                    e.seq
                )));
            }
            prev = e.seq;
            events.push(e);
        }
        let clock_offset_ms = if body.sent_at_ms > 0 {
            received_ms - body.sent_at_ms
        } else {
            0
        };
        let outcome = self
            .store
            .store_batch(Batch {
                agent_num: auth.num,
                received_ms,
                sent_at_ms: body.sent_at_ms,
                clock_offset_ms,
                events,
            })
            .await?;
        tracing::debug!(agent_id = %auth.agent_id, inserted = outcome.inserted, acked_seq = outcome.acked_seq, "Stored a batch.");
        Ok(pb::ReportResponse {
            acked_seq: outcome.acked_seq,
            server_time_ms: (self.clock)(),
            clock_offset_ms,
        })
    }

    async fn enroll(&self, req: pb::EnrollRequest) -> Result<pb::EnrollResponse, CollectorError> {
        let host = req
            .host
            .ok_or_else(|| CollectorError::InvalidArgument("host: is not set".into()))?;
        let field = |name: &str, v: &str, required: bool| -> Result<String, CollectorError> {
            if required && v.trim().is_empty() {
                return Err(CollectorError::InvalidArgument(format!(
                    "host.{name}: is empty"
                )));
            }
            if v.len() > 256 || v.chars().any(char::is_control) {
                return Err(CollectorError::InvalidArgument(format!(
                    "host.{name}: longer than 256 bytes or contains control characters"
                )));
            }
            Ok(v.to_owned())
        };
        let facts = HostFacts {
            machine_id: field("machine_id", &host.machine_id, true)?,
            hostname: field("hostname", &host.hostname, false)?,
            os: field("os", &host.os, false)?,
            os_version: field("os_version", &host.os_version, false)?,
            agent_version: field("agent_version", &host.agent_version, false)?,
        };
        let now_ms = (self.clock)();
        let hostname = facts.hostname.clone();
        let e = self.store.enroll(&req.token, facts, now_ms).await?;
        tracing::info!(agent_id = %e.agent_id, %hostname, re_enrolled = e.re_enrolled, "Enrolled an agent.");
        Ok(pb::EnrollResponse {
            agent_id: e.agent_id,
            agent_key: e.agent_key,
            server_time_ms: now_ms,
            last_seq: e.last_seq,
        })
    }
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[tonic::async_trait]
impl<S: Store> pb::agent_service_server::AgentService for Ingest<S> {
    async fn enroll(
        &self,
        req: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        Ok(Response::new(Ingest::enroll(self, req.into_inner()).await?))
    }

    async fn report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        let agent = req
            .metadata()
            .get(AGENT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_owned();
        match Ingest::report(self, req).await {
            Ok(r) => Ok(Response::new(r)),
            Err(e) => {
                if !matches!(e, CollectorError::Internal(_)) {
                    tracing::info!(agent_id = %agent, error = %e, "Refused a report.");
                }
                Err(e.into())
            }
        }
    }

    async fn get_policy(
        &self,
        req: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        self.authenticate(&req)?;
        Ok(Response::new(self.policy.clone()))
    }
}

//! The AgentService: authenticate, validate, dedupe, store.
//!
//! What must stay true:
//! - a Report is answered only after its batch is durable, and the answer's
//!   `acked_seq` never exceeds what is stored;
//! - a request that fails validation stores nothing and is answered with
//!   InvalidArgument naming the seq and field; a bad key gets Unauthenticated;
//! - nothing a client sends can panic the server;
//! - an event instant, corrected by the batch's measured clock offset, lies between
//!   [`EARLIEST_MS`] and [`MAX_AHEAD_MS`] past the collector's clock; a usage
//!   category is a built-in one or of the office's rules, now or before
//!   ([`crate::policy`]);
//! - load is shed before it reaches the store: more than `max_reports_in_flight`
//!   Reports at once get Unavailable, an agent above its rate gets
//!   ResourceExhausted; both tell the agent to back off and retry.

use crate::config::AgentPolicy;
use crate::error::CollectorError;
use crate::policy::LivePolicy;
use crate::ratelimit::RateLimit;
use crate::store::{Batch, HostFacts, Store, hash_secret};
use kaoqin_proto::event::Event;
use kaoqin_proto::v1 as pb;
use kaoqin_proto::{AGENT_ID_HEADER, AUTHORIZATION_HEADER};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The most events one Report may carry.
pub const MAX_BATCH_EVENTS: usize = 5_000;
/// How far past the collector's clock a corrected event instant may lie.
pub const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;
/// No event happened before 2020-01-01T00:00:00Z (kaoqin did not exist).
pub const EARLIEST_MS: i64 = 1_577_836_800_000;

/// The collector's clock, injectable so tests can set it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock in epoch milliseconds.
pub fn system_clock() -> Clock {
    Arc::new(crate::clock::now_ms)
}

/// Serves `kaoqin.v1.AgentService` over a [`Store`].
pub struct Ingest<S> {
    store: Arc<S>,
    policy: Arc<LivePolicy>,
    clock: Clock,
    rate: RateLimit<i64>,
    enroll_rate: RateLimit<Option<std::net::IpAddr>>,
    in_flight: tokio::sync::Semaphore,
    max_in_flight: u32,
    /// Take past events from replaying agents (`serve --allow-replay`).
    allow_replay: bool,
}

impl<S: Store> Ingest<S> {
    pub fn new(store: Arc<S>, policy: &AgentPolicy, clock: Clock) -> Self {
        Ingest {
            store,
            policy: Arc::new(LivePolicy::fixed(policy)),
            clock,
            rate: RateLimit::new(
                f64::from(policy.report_rate_per_second),
                policy.report_burst,
            ),
            enroll_rate: RateLimit::new(
                f64::from(policy.enroll_rate_per_minute) / 60.0,
                policy.enroll_burst,
            ),
            in_flight: tokio::sync::Semaphore::new(policy.max_reports_in_flight as usize),
            max_in_flight: policy.max_reports_in_flight,
            allow_replay: false,
        }
    }

    /// Serves `policy` (the office's saved rules, reloaded when they change)
    /// instead of the config's alone.
    pub fn with_policy(mut self, policy: Arc<LivePolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// Takes events from before an agent's enrolment, or earlier than what it
    /// stored, from a replaying agent (labs, demos, tests; never production).
    pub fn allow_replay(mut self, allow: bool) -> Self {
        self.allow_replay = allow;
        self
    }

    /// Refuses what no agent records: an instant (corrected by `offset_ms`) too far
    /// ahead of `now_ms` or before 2020, a category nobody defined.
    fn check_event(
        policy: &crate::policy::PolicyNow,
        e: &Event,
        offset_ms: i64,
        now_ms: i64,
    ) -> Result<(), CollectorError> {
        use kaoqin_proto::event::EventKind;
        let mut instants = vec![("at_ms", e.at_ms)];
        if let EventKind::Usage {
            start_ms,
            end_ms,
            category,
            ..
        } = &e.kind
        {
            instants.push(("start_ms", *start_ms));
            instants.push(("end_ms", *end_ms));
            if !policy.knows(category) {
                return Err(CollectorError::InvalidArgument(format!(
                    "event seq {}: category: {category:?} is not a known category (the built-in ones are {}, plus the office's own rules)",
                    e.seq,
                    kaoqin_proto::classify::CATEGORIES.join(", ")
                )));
            }
        }
        let show = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| format!("{ms} ms"))
        };
        for (field, ms) in instants {
            let corrected = ms.saturating_add(offset_ms);
            if corrected > now_ms.saturating_add(MAX_AHEAD_MS) {
                return Err(CollectorError::InvalidArgument(format!(
                    "event seq {}: {field}: {} (corrected by the measured clock offset of {offset_ms} ms) is more than 10 minutes ahead of the collector's clock",
                    e.seq,
                    show(corrected)
                )));
            }
            if corrected < EARLIEST_MS {
                return Err(CollectorError::InvalidArgument(format!(
                    "event seq {}: {field}: {} (corrected by the measured clock offset of {offset_ms} ms) is before 2020-01-01",
                    e.seq,
                    show(corrected)
                )));
            }
        }
        Ok(())
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
        let _permit = self.in_flight.try_acquire().map_err(|_| {
            CollectorError::Unavailable(format!(
                "collector busy: {} reports in flight; retry later",
                self.max_in_flight
            ))
        })?;
        let received_ms = (self.clock)();
        let auth = self.authenticate(&req)?;
        if !self.rate.take(auth.num, received_ms) {
            return Err(CollectorError::ResourceExhausted(format!(
                "agent {} sends reports faster than the limit allows; slow down and retry",
                auth.agent_id
            )));
        }
        let body = req.into_inner();
        let refusal = match self.check_and_store(&auth, &body, received_ms).await {
            Ok(reply) => return Ok(reply),
            Err(e @ (CollectorError::InvalidArgument(_) | CollectorError::PermissionDenied(_))) => {
                e
            }
            Err(e) => return Err(e),
        };
        // What the agent sent contradicts what it could have recorded: the officer
        // sees it, whoever sent it.
        let detail = refusal.to_string();
        let seq = refused_seq(&detail);
        let claimed = seq.and_then(|seq| claimed(&body, seq, received_ms));
        if let Err(e) = self
            .store
            .record_refusal(auth.num, received_ms, seq, detail, claimed)
            .await
        {
            tracing::warn!(agent_id = %auth.agent_id, error = %e, "Could not record a refused batch as an integrity event.");
        }
        Err(refusal)
    }

    /// Validates a batch and stores it (see the module invariants).
    async fn check_and_store(
        &self,
        auth: &crate::store::AgentAuth,
        body: &pb::ReportRequest,
        received_ms: i64,
    ) -> Result<pb::ReportResponse, CollectorError> {
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
        let clock_offset_ms = if body.sent_at_ms > 0 {
            received_ms - body.sent_at_ms
        } else {
            0
        };
        let mut events = Vec::with_capacity(body.events.len());
        let mut prev = 0u64;
        let policy = self.policy.now();
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
            Self::check_event(&policy, &e, clock_offset_ms, received_ms)?;
            events.push(e);
        }
        let outcome = self
            .store
            .store_batch(Batch {
                agent_num: auth.num,
                received_ms,
                sent_at_ms: body.sent_at_ms,
                clock_offset_ms,
                events,
                replay: self.allow_replay && body.replay,
            })
            .await?;
        tracing::debug!(agent_id = %auth.agent_id, inserted = outcome.inserted, acked_seq = outcome.acked_seq, "Stored a batch.");
        crate::metrics::get().events.inc_by(outcome.inserted);
        Ok(pb::ReportResponse {
            acked_seq: outcome.acked_seq,
            server_time_ms: (self.clock)(),
            clock_offset_ms,
        })
    }

    async fn enroll(
        &self,
        req: pb::EnrollRequest,
        peer: Option<std::net::IpAddr>,
    ) -> Result<pb::EnrollResponse, CollectorError> {
        let now_ms = (self.clock)();
        if !self.enroll_rate.take(peer, now_ms) {
            return Err(CollectorError::ResourceExhausted(format!(
                "too many enrolments from {}; retry in a minute",
                peer.map_or_else(|| "this address".to_owned(), |p| p.to_string())
            )));
        }
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

/// The gRPC answer to a call, logging a refusal that is the caller's doing
/// (`what` and `who` name the call and the caller); internal errors are logged
/// where they happen.
fn answer<T>(
    r: Result<T, CollectorError>,
    call: &str,
    what: &str,
    who: impl std::fmt::Debug,
) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(|e| {
        if !matches!(e, CollectorError::Internal(_)) {
            tracing::info!(?who, error = %e, "Refused {what}.");
        }
        let status: Status = e.into();
        crate::metrics::get().refused(call, &code_name(status.code()));
        status
    })
}

/// A gRPC status code as a metric label: `InvalidArgument` is `invalid_argument`.
fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What the refused event `seq` of `body` claimed, if it is about an OS account:
/// its instant corrected by the batch's measured offset, and the account.
fn claimed(body: &pb::ReportRequest, seq: u64, received_ms: i64) -> Option<crate::store::Claimed> {
    let wire = body.events.iter().find(|e| e.seq == seq)?;
    let account = match &wire.kind {
        Some(pb::event::Kind::Session(s)) => s.account.clone(),
        Some(pb::event::Kind::Usage(u)) => u.account.clone(),
        _ => return None,
    };
    if account.is_empty() || account.len() > 256 {
        return None;
    }
    let offset = if body.sent_at_ms > 0 {
        received_ms.saturating_sub(body.sent_at_ms)
    } else {
        0
    };
    Some(crate::store::Claimed {
        at_ms: wire.at_ms.saturating_add(offset),
        account,
    })
}

/// The seq a refusal names (`event seq N: ...`), if it names one.
fn refused_seq(message: &str) -> Option<u64> {
    let rest = message.strip_prefix("event seq ")?;
    rest[..rest.find(':')?].parse().ok()
}

/// Compares two byte strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[tonic::async_trait]
impl<S: Store> pb::agent_service_server::AgentService for Ingest<S> {
    async fn enroll(
        &self,
        req: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let peer = req.remote_addr().map(|a| a.ip());
        answer(
            Ingest::enroll(self, req.into_inner(), peer).await,
            "enroll",
            "an enrolment",
            peer,
        )
    }

    async fn report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        // A cheap copy (shared bytes), read only if the report is refused.
        let agent = req.metadata().get(AGENT_ID_HEADER).cloned();
        let started = std::time::Instant::now();
        let events = req.get_ref().events.len();
        let r = Ingest::report(self, req).await;
        let m = crate::metrics::get();
        m.report_seconds.observe(started.elapsed().as_secs_f64());
        if r.is_ok() {
            m.reports.inc();
            m.batch_events.observe(events as f64);
        }
        answer(r, "report", "a report", agent)
    }

    async fn get_policy(
        &self,
        req: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        if let Err(e) = self.authenticate(&req) {
            let agent = req.metadata().get(AGENT_ID_HEADER).cloned();
            return answer(Err(e), "get_policy", "a policy request", agent);
        }
        // Agents ask about once an hour each: the saved rules' revision is read
        // here, so a change in the console reaches every agent on its next ask.
        let policy = self.policy.clone();
        let now = tokio::task::spawn_blocking(move || policy.refresh())
            .await
            .map_err(|e| Status::internal(format!("policy: {e}")))?;
        Ok(Response::new(now.proto.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AgentAuth, BatchOutcome, Enrolment, StoreError};
    use pb::agent_service_server::AgentService;
    use std::sync::atomic::{AtomicI64, Ordering};

    const T0: i64 = 1_795_000_000_000;
    const KEY: &str = "key-1";

    use std::sync::Mutex;

    /// A store with one agent that counts batches and, when `gate` is set, holds
    /// each batch until the gate opens.
    #[derive(Default)]
    struct FakeStore {
        stored: Mutex<Vec<Batch>>,
        refusals: Mutex<Vec<(Option<u64>, String)>>,
        gate: Option<tokio::sync::Semaphore>,
        entered: tokio::sync::Notify,
    }

    impl Store for FakeStore {
        async fn enroll(&self, _: &str, _: HostFacts, _: i64) -> Result<Enrolment, StoreError> {
            Err(StoreError::BadToken("no".into()))
        }
        fn agent_auth(&self, agent_id: &str) -> Result<Option<AgentAuth>, StoreError> {
            Ok((agent_id == "ag-1").then(|| AgentAuth {
                agent_id: "ag-1".into(),
                num: 1,
                key_hash: hash_secret(KEY),
                revoked: false,
            }))
        }
        async fn store_batch(&self, batch: Batch) -> Result<BatchOutcome, StoreError> {
            self.entered.notify_one();
            if let Some(g) = &self.gate {
                let _ = g
                    .acquire()
                    .await
                    .map_err(|_| StoreError::Busy("closed".into()))?;
            }
            let acked_seq = batch.events.last().map_or(0, |e| e.seq);
            self.stored.lock().unwrap().push(batch);
            Ok(BatchOutcome {
                acked_seq,
                inserted: 0,
            })
        }
        async fn record_refusal(
            &self,
            _: i64,
            _: i64,
            seq: Option<u64>,
            detail: String,
            _: Option<crate::store::Claimed>,
        ) -> Result<(), StoreError> {
            self.refusals.lock().unwrap().push((seq, detail));
            Ok(())
        }
    }

    fn ingest(store: FakeStore, policy: AgentPolicy) -> (Arc<Ingest<FakeStore>>, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(T0));
        let clock_now = now.clone();
        let clock: Clock = Arc::new(move || clock_now.load(Ordering::SeqCst));
        (Arc::new(Ingest::new(Arc::new(store), &policy, clock)), now)
    }

    fn unlock(seq: u64, at_ms: i64) -> pb::Event {
        pb::Event {
            seq,
            at_ms,
            kind: Some(pb::event::Kind::Session(pb::SessionEvent {
                kind: pb::SessionKind::Unlock as i32,
                account: "lisi".into(),
            })),
        }
    }

    fn usage(seq: u64, category: &str) -> pb::Event {
        pb::Event {
            seq,
            at_ms: T0,
            kind: Some(pb::event::Kind::Usage(pb::UsageEvent {
                account: "lisi".into(),
                start_ms: T0 - 300_000,
                end_ms: T0,
                category: category.into(),
                active_seconds: 60,
                basis: pb::UsageBasis::Foreground as i32,
            })),
        }
    }

    fn report(sent_at_ms: i64, events: Vec<pb::Event>) -> Request<pb::ReportRequest> {
        let mut r = Request::new(pb::ReportRequest {
            agent_id: "ag-1".into(),
            sent_at_ms,
            events,
            replay: false,
        });
        let md = r.metadata_mut();
        md.insert(AGENT_ID_HEADER, "ag-1".parse().unwrap());
        md.insert(
            AUTHORIZATION_HEADER,
            format!("Bearer {KEY}").parse().unwrap(),
        );
        r
    }

    #[tokio::test]
    async fn hostile_instants_and_categories_are_refused_naming_seq_and_field() {
        let mut policy = AgentPolicy::default();
        policy.categories.push(crate::config::CategoryRule {
            category: "stocks".into(),
            process_patterns: vec!["tdx".into()],
            title_patterns: vec![],
        });
        let (ingest, _) = ingest(FakeStore::default(), policy);
        let cases: Vec<(i64, Vec<pb::Event>, &str)> = vec![
            // 11 minutes ahead, agent clock right.
            (
                T0,
                vec![unlock(1, T0), unlock(2, T0 + 11 * 60_000)],
                "event seq 2: at_ms",
            ),
            // The agent's clock is 2 h behind: its "an hour ago" is an hour ago.
            (T0 - 7_200_000, vec![unlock(1, T0 - 10_800_000)], ""),
            // ... and its "now + 1 h" is an hour ahead: refused.
            (
                T0 - 7_200_000,
                vec![unlock(1, T0 - 3_600_000)],
                "event seq 1: at_ms",
            ),
            // The agent's clock is 2 h ahead: its "now" is 2 h in the future only
            // if uncorrected.
            (T0 + 7_200_000, vec![unlock(1, T0 + 7_200_000)], ""),
            // Corrected, still 20 minutes ahead.
            (
                T0 + 7_200_000,
                vec![unlock(1, T0 + 7_200_000 + 20 * 60_000)],
                "event seq 1: at_ms",
            ),
            (T0, vec![unlock(7, EARLIEST_MS - 1)], "event seq 7: at_ms: "),
            (T0, vec![unlock(1, EARLIEST_MS)], ""),
            (T0, vec![usage(3, "casino")], "event seq 3: category"),
            (T0, vec![usage(3, "stocks"), usage(4, "nonwork_web")], ""),
        ];
        for (i, (sent_at, events, want)) in cases.into_iter().enumerate() {
            let before = ingest.store.stored.lock().unwrap().len();
            let r = AgentService::report(&*ingest, report(sent_at, events)).await;
            let after = ingest.store.stored.lock().unwrap().len();
            if want.is_empty() {
                assert!(r.is_ok(), "case {i}: {r:?}");
                assert_eq!(after, before + 1, "case {i}");
            } else {
                let s = r.unwrap_err();
                assert_eq!(s.code(), tonic::Code::InvalidArgument, "case {i}: {s:?}");
                assert!(s.message().starts_with(want), "case {i}: {}", s.message());
                assert_eq!(after, before, "case {i}: nothing of the batch is stored");
            }
        }
    }

    #[tokio::test]
    async fn an_agent_above_its_rate_is_told_to_slow_down() {
        let policy = AgentPolicy {
            report_rate_per_second: 2,
            report_burst: 3,
            ..AgentPolicy::default()
        };
        let (ingest, now) = ingest(FakeStore::default(), policy);
        for seq in 1..=3 {
            AgentService::report(&*ingest, report(T0, vec![unlock(seq, T0)]))
                .await
                .unwrap();
        }
        let s = AgentService::report(&*ingest, report(T0, vec![unlock(4, T0)]))
            .await
            .unwrap_err();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
        assert_eq!(ingest.store.stored.lock().unwrap().len(), 3);
        // Half a second later one more token has come in, and only one.
        now.store(T0 + 500, Ordering::SeqCst);
        AgentService::report(&*ingest, report(T0, vec![unlock(4, T0)]))
            .await
            .unwrap();
        let s = AgentService::report(&*ingest, report(T0, vec![unlock(5, T0)]))
            .await
            .unwrap_err();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
    }

    #[tokio::test]
    async fn enrolments_are_limited_per_source_address() {
        let policy = AgentPolicy {
            enroll_rate_per_minute: 60,
            enroll_burst: 2,
            ..AgentPolicy::default()
        };
        let (ingest, now) = ingest(FakeStore::default(), policy);
        let (a, b) = (Some([10, 0, 0, 1].into()), Some([10, 0, 0, 2].into()));
        let req = || pb::EnrollRequest {
            token: "t".into(),
            host: Some(pb::HostFacts {
                machine_id: "m".into(),
                ..Default::default()
            }),
        };
        let code =
            |r: Result<pb::EnrollResponse, CollectorError>| Status::from(r.unwrap_err()).code();
        // The fake store refuses every token: two answers from it, then the limit.
        for _ in 0..2 {
            assert_eq!(
                code(ingest.enroll(req(), a).await),
                tonic::Code::Unauthenticated
            );
        }
        assert_eq!(
            code(ingest.enroll(req(), a).await),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(
            code(ingest.enroll(req(), b).await),
            tonic::Code::Unauthenticated
        );
        now.store(T0 + 1_000, Ordering::SeqCst);
        assert_eq!(
            code(ingest.enroll(req(), a).await),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            code(ingest.enroll(req(), a).await),
            tonic::Code::ResourceExhausted
        );
    }

    #[tokio::test]
    async fn reports_beyond_the_concurrency_limit_are_shed_as_unavailable() {
        let store = FakeStore {
            gate: Some(tokio::sync::Semaphore::new(0)),
            ..FakeStore::default()
        };
        let policy = AgentPolicy {
            max_reports_in_flight: 1,
            ..AgentPolicy::default()
        };
        let (ingest, _) = ingest(store, policy);
        let first = {
            let ingest = ingest.clone();
            tokio::spawn(async move {
                AgentService::report(&*ingest, report(T0, vec![unlock(1, T0)])).await
            })
        };
        ingest.store.entered.notified().await;
        let s = AgentService::report(&*ingest, report(T0, vec![unlock(2, T0)]))
            .await
            .unwrap_err();
        assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
        ingest.store.gate.as_ref().unwrap().add_permits(10);
        first.await.unwrap().unwrap();
        // The permit came back with the answer.
        AgentService::report(&*ingest, report(T0, vec![unlock(2, T0)]))
            .await
            .unwrap();
    }
}

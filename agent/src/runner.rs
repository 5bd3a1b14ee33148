//! The agent's main loop: sample the probe, record events into the spool, and
//! deliver the spool to the collector.
//!
//! Two tasks share the spool. The recorder task polls the probe every sample
//! interval (or steps through a replay in virtual time) and appends what the
//! [`Recorder`] makes of it. The delivery task sends the spool's oldest events in
//! batches and deletes them only once the collector has acknowledged them; on
//! failure it waits with exponential backoff and jitter.
//!
//! What must stay true: an event leaves the spool only by acknowledgement; a
//! start is recorded as a crash restart when the previous run did not record its
//! stop; the agent never stops recording because the collector is away.

use crate::classify::{Classifier, Rule};
use crate::config::{Config, SamplingConfig};
use crate::event::{EventKind, LifecycleKind, LifecycleReason};
use crate::probe::Probe;
use crate::recorder::Recorder;
use crate::spool::Spool;
use crate::state::{Enrolment, SPOOL_FILE};
use crate::uplink::{Uplink, UplinkError};
use anyhow::Context;
use kaoqin_proto::v1 as pb;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The policy cache's file name in the state dir.
pub const POLICY_FILE: &str = "policy.pb";
/// How often the live agent asks for a new policy.
const POLICY_REFRESH: Duration = Duration::from_secs(3600);

/// Where observations come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeChoice {
    /// The platform's live probe.
    Auto,
    /// A scripted day in virtual time.
    Replay(PathBuf),
}

impl std::str::FromStr for ProbeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ProbeChoice::Auto),
            _ => match s.strip_prefix("replay:") {
                Some(path) if !path.is_empty() => Ok(ProbeChoice::Replay(PathBuf::from(path))),
                _ => Err(format!("{s:?}: expected auto or replay:FILE")),
            },
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub state_dir: PathBuf,
    pub probe: ProbeChoice,
    /// Exit once everything recorded is acknowledged (after a replay ends).
    pub once: bool,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

type SharedSpool = Arc<Mutex<Spool>>;

fn lock(spool: &SharedSpool) -> std::sync::MutexGuard<'_, Spool> {
    spool.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens the spool in `state_dir`, logging what a damaged file cost. A new spool
/// numbers its events from the current time (in thousandths of a millisecond),
/// so a reinstalled agent can never reuse a seq the collector already holds.
/// On Unix the state dir is made 0700 and the spool 0600 (its write-ahead log
/// and index take the spool's mode): the key and the record are the service's.
pub fn open_spool(state_dir: &Path, config: &Config) -> anyhow::Result<Spool> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create state dir {}", state_dir.display()))?;
    private(state_dir, 0o700)?;
    let path = state_dir.join(SPOOL_FILE);
    let (mut spool, report) = Spool::open(&path, config.spool.max_mib * 1024 * 1024)?;
    private(&path, 0o600)?;
    if report.unreadable > 0 || report.recovered_from_corruption {
        tracing::warn!(
            path = %path.display(),
            unreadable = report.unreadable,
            "The spool was damaged; what could be read was kept and the loss is reported to the collector."
        );
    }
    let stats = spool.stats()?;
    if stats.next_seq <= 1 && stats.last_acked_seq == 0 {
        spool.ensure_next_seq_above((now_ms().max(0) as u64) * 1000)?;
    }
    Ok(spool)
}

/// Gives `path` the Unix `mode`; on Windows a directory gets the access list
/// [`crate::state::STATE_DIR_SDDL`] (SYSTEM and Administrators), which the files
/// in it inherit.
fn private(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot make {} private", path.display()))?;
    }
    #[cfg(windows)]
    if path.is_dir()
        && let Err(e) = crate::probe::windows::secure_dir(path)
    {
        // Kept working (the spool is what matters most); the officer's copy of
        // the install script sets the same list with icacls.
        tracing::warn!(path = %path.display(), error = %e, "Could not restrict the state directory to SYSTEM and Administrators.");
    }
    let _ = (path, mode);
    Ok(())
}

/// Category rules and intervals from a policy; an empty rule list keeps the
/// built-in rules.
pub fn apply_policy(
    policy: &pb::Policy,
    base: SamplingConfig,
) -> anyhow::Result<(Classifier, SamplingConfig)> {
    let classifier = if policy.rules.is_empty() {
        Classifier::builtin()
    } else {
        Classifier::new(
            policy
                .rules
                .iter()
                .map(|r| Rule {
                    category: r.category.clone(),
                    process_patterns: r.process_patterns.clone(),
                    title_patterns: r.title_patterns.clone(),
                })
                .collect(),
        )?
    };
    use kaoqin_proto::limits;
    let pick = |v: u32, range: std::ops::RangeInclusive<u32>, dflt: u32| {
        if range.contains(&v) { v } else { dflt }
    };
    let sampling = SamplingConfig {
        heartbeat_seconds: pick(
            policy.heartbeat_seconds,
            limits::HEARTBEAT_SECONDS,
            base.heartbeat_seconds,
        ),
        sample_seconds: pick(
            policy.sample_seconds,
            limits::SAMPLE_SECONDS,
            base.sample_seconds,
        ),
        usage_interval_seconds: pick(
            policy.usage_interval_seconds,
            limits::USAGE_INTERVAL_SECONDS,
            base.usage_interval_seconds,
        ),
        idle_threshold_seconds: pick(
            policy.idle_threshold_seconds,
            limits::IDLE_THRESHOLD_SECONDS,
            base.idle_threshold_seconds,
        ),
    };
    Ok((classifier, sampling))
}

fn load_cached_policy(state_dir: &Path) -> Option<pb::Policy> {
    use prost::Message;
    let bytes = std::fs::read(state_dir.join(POLICY_FILE)).ok()?;
    pb::Policy::decode(bytes.as_slice()).ok()
}

fn save_policy(state_dir: &Path, policy: &pb::Policy) {
    use prost::Message;
    let tmp = state_dir.join(format!("{POLICY_FILE}.tmp"));
    let ok = std::fs::write(&tmp, policy.encode_to_vec())
        .and_then(|()| std::fs::rename(&tmp, state_dir.join(POLICY_FILE)));
    if let Err(e) = ok {
        tracing::warn!(error = %e, "Failed to cache the policy.");
    }
}

/// Runs the agent until `shutdown` completes (or, with `once`, until a replay is
/// recorded and fully acknowledged).
pub async fn run(
    config: Config,
    opts: RunOptions,
    probe: Box<dyn Probe>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let state_dir = opts.state_dir.clone();
    let spool: SharedSpool = Arc::new(Mutex::new(open_spool(&state_dir, &config)?));
    let caps = probe.capabilities();
    tracing::info!(
        sessions = caps.sessions,
        lock = caps.lock,
        idle = caps.idle,
        foreground = caps.foreground,
        processes = caps.processes,
        "Agent starting; the probe can see these."
    );

    let cached = load_cached_policy(&state_dir);
    let (classifier, sampling) = match &cached {
        Some(p) => apply_policy(p, config.sampling).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "Cached policy is unusable; using built-in rules.");
            (Classifier::builtin(), config.sampling)
        }),
        None => (Classifier::builtin(), config.sampling),
    };
    let (policy_tx, policy_rx) = watch::channel(cached);
    let recorded = Arc::new(Notify::new());
    let (done_tx, done_rx) = watch::channel(false);

    let replay = matches!(opts.probe, ProbeChoice::Replay(_));
    let delivery = tokio::spawn(deliver_forever(
        config.clone(),
        state_dir.clone(),
        spool.clone(),
        recorded.clone(),
        policy_tx,
        done_rx,
        Delivery {
            once: opts.once,
            replay,
        },
    ));

    let mut recorder = Recorder::new(classifier, sampling);
    tokio::pin!(shutdown);
    let recording = std::sync::atomic::AtomicBool::new(false);
    let stopped_by_signal = {
        let key = replay_key(&opts.probe)?;
        let record = async {
            // Nothing is recorded before the first enrolment: the collector takes
            // no event from before it, and nobody has agreed to this PC being
            // observed until IT enrols it.
            wait_for_enrolment(&state_dir).await;
            recording.store(true, std::sync::atomic::Ordering::SeqCst);
            record(
                &config,
                probe,
                &mut recorder,
                spool.clone(),
                recorded.clone(),
                policy_rx,
                key,
            )
            .await
        };
        tokio::pin!(record);
        tokio::select! {
            r = &mut record => { r?; false }
            () = &mut shutdown => true,
        }
    };
    let recording = recording.load(std::sync::atomic::Ordering::SeqCst);
    if recording && (!replay || stopped_by_signal) {
        // The live loop ends only by a signal: count the partial interval and
        // record the stop.
        let now = now_ms();
        let mut events = recorder.finish(now);
        let reason = if replay {
            LifecycleReason::Replay
        } else if system_shutting_down() {
            LifecycleReason::SystemShutdown
        } else {
            LifecycleReason::ServiceStop
        };
        events.push((now, stop_event(reason)));
        record_stop(&spool, events)?;
        tracing::info!(reason = ?reason, "Agent stopping.");
    }
    recorded.notify_one();
    let _ = done_tx.send(true);
    if opts.once && !stopped_by_signal {
        tokio::select! {
            r = delivery => {
                r??;
                tracing::info!("Everything recorded is acknowledged.");
            }
            () = &mut shutdown => {
                tracing::info!("Stopped before everything was acknowledged; the spool keeps the rest.");
            }
        }
    } else {
        // One last short chance to deliver, then leave the rest in the spool.
        match tokio::time::timeout(Duration::from_secs(3), delivery).await {
            Ok(r) => r??,
            Err(_) => {
                tracing::info!("Collector not reached before stopping; the spool keeps the rest.")
            }
        }
    }
    Ok(())
}

/// Identifies a replay script by its content, so the same script is recorded
/// into a spool once.
fn replay_key(probe: &ProbeChoice) -> anyhow::Result<Option<String>> {
    use std::hash::{Hash, Hasher};
    let ProbeChoice::Replay(path) = probe else {
        return Ok(None);
    };
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // SipHash with fixed keys: stable for a given build, which is all a spool needs.
    let mut h = std::hash::DefaultHasher::new();
    text.hash(&mut h);
    Ok(Some(format!("replayed:{:016x}:{}", h.finish(), text.len())))
}

fn stop_event(reason: LifecycleReason) -> EventKind {
    EventKind::Lifecycle {
        kind: LifecycleKind::Stop,
        reason,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        previous_seen_ms: None,
    }
}

fn record_stop(spool: &SharedSpool, events: Vec<(i64, EventKind)>) -> anyhow::Result<()> {
    let at_ms = events.last().map_or_else(now_ms, |(at, _)| *at);
    let mut s = lock(spool);
    s.append(&events)?;
    s.meta_set("running", "0")?;
    s.meta_set("last_stop_ms", &at_ms.to_string())?;
    Ok(())
}

/// Returns once the agent is enrolled, looking every few seconds (and saying once
/// why nothing is recorded yet).
async fn wait_for_enrolment(state_dir: &Path) {
    let mut said = false;
    loop {
        match Enrolment::load(state_dir) {
            Ok(Some(_)) => return,
            Ok(None) if !said => tracing::warn!(
                "Not enrolled yet: nothing is recorded until `kaoqin-agent enroll` succeeds."
            ),
            Err(e) if !said => {
                tracing::warn!(error = %e, "Cannot read the enrolment; nothing is recorded until it can be read.")
            }
            _ => {}
        }
        said = true;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Why this start happened, from what the previous run left in the spool.
fn start_reason(spool: &Spool, boot_ms: i64) -> anyhow::Result<(LifecycleReason, Option<i64>)> {
    let running = spool.meta_get("running")?.as_deref() == Some("1");
    let last_alive = spool
        .meta_get("last_alive_ms")?
        .and_then(|v| v.parse().ok());
    if running {
        return Ok((LifecycleReason::CrashRestart, last_alive));
    }
    let last_stop: Option<i64> = spool.meta_get("last_stop_ms")?.and_then(|v| v.parse().ok());
    Ok(match last_stop {
        Some(stop) if stop >= boot_ms => (LifecycleReason::ServiceStart, None),
        _ => (LifecycleReason::SystemBoot, None),
    })
}

/// True while the operating system is shutting down (systemd says "stopping").
/// (Windows: the service was told so by the service control manager.)
fn system_shutting_down() -> bool {
    if crate::service::system_shutting_down() {
        return true;
    }
    std::process::Command::new("systemctl")
        .arg("is-system-running")
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "stopping")
        .unwrap_or(false)
}

async fn record(
    config: &Config,
    mut probe: Box<dyn Probe>,
    recorder: &mut Recorder,
    spool: SharedSpool,
    recorded: Arc<Notify>,
    mut policy: watch::Receiver<Option<pb::Policy>>,
    replay_key: Option<String>,
) -> anyhow::Result<()> {
    let append = |events: Vec<(i64, EventKind)>| -> anyhow::Result<()> {
        if !events.is_empty() {
            lock(&spool).append(&events)?;
            recorded.notify_one();
        }
        Ok(())
    };
    let lifecycle = |reason, previous_seen_ms| EventKind::Lifecycle {
        kind: LifecycleKind::Start,
        reason,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        previous_seen_ms,
    };

    if let Some(span) = probe.script() {
        let (start, end) = (span.start_ms, span.end_ms);
        // Replay: step through the script's span in virtual time, then record
        // the whole day in one transaction, so that a run killed and started
        // again records the script exactly once and only delivers the rest.
        let key = replay_key.unwrap_or_default();
        if lock(&spool).meta_get(&key)?.is_some() {
            tracing::info!("This script was already recorded; delivering what is left of it.");
            return Ok(());
        }
        let step = i64::from(config.sampling.sample_seconds) * 1000;
        let started = if span.boots {
            LifecycleReason::SystemBoot
        } else {
            LifecycleReason::Replay
        };
        let stopped = if span.shuts_down {
            LifecycleReason::SystemShutdown
        } else {
            LifecycleReason::Replay
        };
        let mut out = vec![(start, lifecycle(started, None))];
        let mut t = start;
        loop {
            for obs in probe.poll(t)? {
                out.extend(recorder.observe(obs));
            }
            out.extend(recorder.tick(t));
            if t >= end {
                break;
            }
            t = (t + step).min(end);
        }
        out.extend(recorder.finish(end));
        out.push((end, stop_event(stopped)));
        append(out)?;
        lock(&spool).meta_set(&key, &now_ms().to_string())?;
        return Ok(());
    }

    // Live.
    let boot_ms = sysinfo::System::boot_time().map_or(0, |s| s as i64 * 1000);
    let (reason, previous) = start_reason(&lock(&spool), boot_ms)?;
    append(vec![(now_ms(), lifecycle(reason, previous))])?;
    {
        let mut s = lock(&spool);
        s.meta_set("running", "1")?;
        s.meta_set("last_alive_ms", &now_ms().to_string())?;
    }
    tracing::info!(reason = ?reason, "Agent started.");
    let mut sample = Duration::from_secs(u64::from(recorder_sample_seconds(config, &policy)));
    let mut ticker = tokio::time::interval(sample);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clock_watch = crate::clock::ClockWatch::default();
    loop {
        ticker.tick().await;
        if policy.has_changed().unwrap_or(false)
            && let Some(p) = policy.borrow_and_update().clone()
        {
            match apply_policy(&p, config.sampling) {
                Ok((c, s)) => {
                    recorder.set_classifier(c);
                    recorder.set_sampling(s);
                    if u64::from(s.sample_seconds) != sample.as_secs() {
                        sample = Duration::from_secs(u64::from(s.sample_seconds));
                        ticker = tokio::time::interval(sample);
                        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                    tracing::info!(version = p.version, "Applied a new policy.");
                }
                Err(e) => {
                    tracing::warn!(error = %e, version = p.version, "Refused the collector's policy.")
                }
            }
        }
        let now = now_ms();
        if let Some(jump) = crate::clock::uptime_ms().and_then(|up| clock_watch.observe(now, up)) {
            // What was accounted so far is closed on the old clock; the spool
            // remembers the jump so those events are sent with the correction.
            tracing::warn!(
                jump_ms = jump,
                "The PC's clock was set; events recorded before are sent with the difference."
            );
            append(recorder.finish(now - jump))?;
            lock(&spool).record_clock_jump(jump)?;
            recorder.rebase(jump, now);
            // On the new clock, so it travels with what follows the jump.
            append(vec![(now, EventKind::ClockJump { jump_ms: jump })])?;
        }
        let (returned, observations) = tokio::task::spawn_blocking(move || {
            let r = probe.poll(now);
            (probe, r)
        })
        .await?;
        probe = returned;
        let mut out = Vec::new();
        match observations {
            Ok(obs) => {
                for o in obs {
                    out.extend(recorder.observe(o));
                }
            }
            Err(e) => tracing::warn!(error = %e, "Probe failed; trying again at the next sample."),
        }
        out.extend(recorder.tick(now));
        append(out)?;
        lock(&spool).meta_set("last_alive_ms", &now.to_string())?;
    }
}

fn recorder_sample_seconds(config: &Config, policy: &watch::Receiver<Option<pb::Policy>>) -> u32 {
    policy
        .borrow()
        .as_ref()
        .and_then(|p| apply_policy(p, config.sampling).ok())
        .map_or(config.sampling.sample_seconds, |(_, s)| s.sample_seconds)
}

/// How the spool is delivered.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    /// Stop once the recording is done and the spool is empty.
    once: bool,
    /// The events come from a scripted replay (the collector is told).
    replay: bool,
}

/// Delivers the spool until told the recording is done and (with `once`) the
/// spool is empty; otherwise forever.
async fn deliver_forever(
    config: Config,
    state_dir: PathBuf,
    spool: SharedSpool,
    recorded: Arc<Notify>,
    policy_tx: watch::Sender<Option<pb::Policy>>,
    done: watch::Receiver<bool>,
    how: Delivery,
) -> anyhow::Result<()> {
    let Delivery { once, replay } = how;
    let timeout = Duration::from_secs(config.uplink.call_timeout_seconds);
    let new_backoff = || crate::uplink::retry_schedule(&config.uplink);
    let mut backoff = new_backoff();
    let mut uplink: Option<Uplink> = None;
    let mut next_policy = tokio::time::Instant::now();
    let mut batch_limit = config.uplink.batch_max_events;
    loop {
        if uplink.is_none() {
            match Enrolment::load(&state_dir) {
                Ok(Some(e)) => uplink = Some(Uplink::new(e, timeout)?),
                Ok(None) => tracing::debug!("Not enrolled yet; nothing to deliver."),
                Err(e) => tracing::warn!(error = %e, "Cannot read the enrolment."),
            }
        }
        let mut failure = None;
        if let Some(up) = uplink.as_mut() {
            if tokio::time::Instant::now() >= next_policy {
                let known = policy_tx.borrow().as_ref().map_or(0, |p| p.version);
                match up.policy(known).await {
                    Ok(p) => {
                        next_policy = tokio::time::Instant::now() + POLICY_REFRESH;
                        if p.version != known {
                            save_policy(&state_dir, &p);
                            let _ = policy_tx.send(Some(p));
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
            if failure.is_none() {
                match deliver_pending(&config, &spool, up, &mut batch_limit, replay).await {
                    Ok(()) => backoff = new_backoff(),
                    Err(e) => failure = Some(e),
                }
            }
        }
        match failure {
            Some(UplinkError::Unauthenticated(ref m)) => {
                tracing::warn!(reason = %m, "Collector refused our key; enrolling again.");
                if let Some(up) = uplink.as_mut()
                    && let Err(e) = reenroll(&state_dir, &spool, up, timeout).await
                {
                    tracing::warn!(error = %e, "Enrolling again failed.");
                }
            }
            Some(ref e) => tracing::warn!(error = %e, "Delivery failed; will retry."),
            None => {}
        }
        if config.uplink.close_when_idle
            && failure.is_none()
            && let Some(up) = uplink.as_mut()
        {
            // Everything is delivered: close the connection; the next round opens one.
            up.disconnect();
        }
        let finished = *done.borrow();
        if finished {
            let empty = lock(&spool).stats()?.depth == 0;
            // Live: one attempt after the stop, then the spool keeps the rest.
            // Once: keep going until everything is acknowledged.
            if !once || empty {
                return Ok(());
            }
        }
        // Failed, or not enrolled yet: look again after a pause.
        if failure.is_some() || uplink.is_none() {
            tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(60))).await;
        } else if !finished {
            tokio::select! {
                () = recorded.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }
}

/// Sends batches until the spool is empty or a call fails.
async fn deliver_pending(
    config: &Config,
    spool: &SharedSpool,
    uplink: &mut Uplink,
    batch_limit: &mut usize,
    replay: bool,
) -> Result<(), UplinkError> {
    let spool_err = |e: crate::spool::SpoolError| UplinkError::Retry(format!("spool: {e}"));
    loop {
        let batch = lock(spool)
            .peek(*batch_limit, config.uplink.batch_max_bytes)
            .map_err(spool_err)?;
        let Some(first) = batch.first() else {
            return Ok(());
        };
        // Events stamped before the PC's clock was set go in batches of their own,
        // sent with the send time on the clock they were stamped with.
        let (correction, before) = lock(spool).clock_correction(first.seq).map_err(spool_err)?;
        let batch: Vec<_> = match before {
            Some(before) => batch.into_iter().take_while(|e| e.seq < before).collect(),
            None => batch,
        };
        let last_seq = batch.last().map_or(0, |e| e.seq);
        match uplink
            .report(&batch, now_ms().saturating_sub(correction), replay)
            .await
        {
            Ok(reply) => {
                lock(spool)
                    .ack(reply.acked_seq.min(last_seq), now_ms())
                    .map_err(spool_err)?;
                *batch_limit = config.uplink.batch_max_events;
                if reply.acked_seq < last_seq {
                    return Err(UplinkError::Retry(format!(
                        "collector acknowledged up to seq {} of a batch ending at {last_seq}",
                        reply.acked_seq
                    )));
                }
            }
            Err(UplinkError::Rejected { seq, message }) => {
                let head = batch[0].seq;
                if seq == Some(head) || (seq.is_none() && batch.len() == 1) {
                    // This one event can never be delivered: drop it, say so.
                    tracing::error!(seq = head, reason = %message, "Collector rejected an event; dropping it.");
                    let mut s = lock(spool);
                    s.ack(head, now_ms()).map_err(spool_err)?;
                    // Stamped now: the rejected instant itself may be what the
                    // collector refused, and the gap must not be refused in turn.
                    s.append(&[(
                        now_ms(),
                        EventKind::DataGap {
                            dropped_events: 1,
                            from_ms: batch[0].at_ms,
                            to_ms: batch[0].at_ms,
                            reason: "rejected_by_collector".into(),
                        },
                    )])
                    .map_err(spool_err)?;
                } else if let Some(bad) = seq {
                    // Deliver what precedes the bad event first.
                    *batch_limit = batch.iter().take_while(|e| e.seq < bad).count().max(1);
                } else {
                    *batch_limit = (batch.len() / 2).max(1);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

async fn reenroll(
    state_dir: &Path,
    spool: &SharedSpool,
    uplink: &mut Uplink,
    timeout: Duration,
) -> anyhow::Result<()> {
    let old = uplink.enrolment().clone();
    let reply = crate::uplink::enroll(
        &old.collector,
        &old.token,
        host_facts(&old.machine_id),
        timeout,
        old.ca_pem.as_deref(),
    )
    .await?;
    lock(spool).ensure_next_seq_above(reply.last_seq)?;
    let new = Enrolment {
        agent_id: reply.agent_id,
        agent_key: reply.agent_key,
        enrolled_at_ms: now_ms(),
        ..old
    };
    new.save(state_dir)?;
    tracing::info!(agent_id = %new.agent_id, "Enrolled again.");
    uplink.set_enrolment(new);
    Ok(())
}

/// What the agent tells the collector about this host when it enrols.
pub fn host_facts(machine_id: &str) -> pb::HostFacts {
    pb::HostFacts {
        machine_id: machine_id.to_owned(),
        hostname: crate::state::hostname(),
        os: std::env::consts::OS.to_owned(),
        os_version: sysinfo::System::long_os_version().unwrap_or_default(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn the_state_dir_and_the_spool_are_the_services_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let spool = super::open_spool(&state, &crate::config::Config::default()).unwrap();
        drop(spool);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join(crate::state::SPOOL_FILE)), 0o600);
        // Opened again (a restart), still so.
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(super::open_spool(&state, &crate::config::Config::default()).unwrap());
        assert_eq!(mode(&state), 0o700);
    }

    use super::*;

    #[test]
    fn probe_choice_parses() {
        assert_eq!("auto".parse::<ProbeChoice>().unwrap(), ProbeChoice::Auto);
        assert_eq!(
            "replay:/tmp/day.jsonl".parse::<ProbeChoice>().unwrap(),
            ProbeChoice::Replay("/tmp/day.jsonl".into())
        );
        assert!("replay:".parse::<ProbeChoice>().is_err());
        assert!("x11".parse::<ProbeChoice>().is_err());
    }

    #[test]
    fn an_unclean_previous_run_is_a_crash_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(&dir.path().join("s.db"), Spool::DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(
            start_reason(&s, 1000).unwrap().0,
            LifecycleReason::SystemBoot
        );
        s.meta_set("running", "0").unwrap();
        s.meta_set("last_stop_ms", "2000").unwrap();
        assert_eq!(
            start_reason(&s, 1000).unwrap().0,
            LifecycleReason::ServiceStart
        );
        assert_eq!(
            start_reason(&s, 3000).unwrap().0,
            LifecycleReason::SystemBoot
        );
        s.meta_set("running", "1").unwrap();
        s.meta_set("last_alive_ms", "2500").unwrap();
        assert_eq!(
            start_reason(&s, 1000).unwrap(),
            (LifecycleReason::CrashRestart, Some(2500))
        );
    }

    #[test]
    fn a_policy_without_rules_keeps_the_builtin_rules_and_bad_intervals_are_ignored() {
        let p = pb::Policy {
            version: 3,
            rules: vec![],
            heartbeat_seconds: 120,
            sample_seconds: 0,
            usage_interval_seconds: 600,
            idle_threshold_seconds: 1,
        };
        let (c, s) = apply_policy(&p, SamplingConfig::default()).unwrap();
        assert_eq!(c.rules(), Classifier::builtin().rules());
        assert_eq!(s.heartbeat_seconds, 120);
        assert_eq!(s.sample_seconds, 15);
        assert_eq!(s.usage_interval_seconds, 600);
        assert_eq!(s.idle_threshold_seconds, 300);
    }
}

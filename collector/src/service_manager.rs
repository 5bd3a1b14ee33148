//! Telling systemd what the collector is doing, for a unit of `Type=notify`:
//! `READY=1` once it listens with its store open and migrated (so `systemctl
//! start` returns when agents can deliver, and units ordered after it start
//! then), `STOPPING=1` when a stop begins. Outside systemd (no `NOTIFY_SOCKET`)
//! nothing is sent.

/// The collector serves: `status` is shown by `systemctl status`.
pub fn ready(status: &str) {
    #[cfg(unix)]
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
    #[cfg(not(unix))]
    let _ = status;
}

/// The collector has begun to stop (finishing the calls in flight).
pub fn stopping() {
    #[cfg(unix)]
    send(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: finishing the calls in flight"),
    ]);
}

#[cfg(unix)]
fn send(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "Could not tell the service manager (NOTIFY_SOCKET) the collector's state.");
    }
}

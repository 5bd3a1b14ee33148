//! The service's end of the helpers' pipe `\\.\pipe\kaoqin-agent`: accepts
//! helpers, reads their JSON lines and leaves them in the probe's inbox as
//! `Input::Sample`s of the client's session.
//!
//! What must stay true: a helper speaks only for the session the kernel says it
//! is in (`GetNamedPipeClientSessionId`) and, when the service starts the helpers,
//! only the process it started there speaks for it (`GetNamedPipeClientProcessId`);
//! remote clients are refused; the pipe's
//! DACL keeps users from creating instances of it; a line longer than
//! [`MAX_LINE`] or a stream of bad lines ends that connection, never the server;
//! the number of connections is bounded.

#![allow(unsafe_code)]

use std::os::windows::io::AsRawHandle;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use tracing::{debug, warn};

use super::sys::{self, PipeSecurity};
use crate::probe::wts::{Inbox, Input, Launched, MAX_LINE, PIPE_NAME, parse_sample};

/// The most helpers connected at once (one per session is the norm).
const MAX_CONNECTIONS: usize = 64;
/// The most bad lines a helper may send before it is disconnected.
const MAX_BAD_LINES: u32 = 10;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The pipe server, on its own thread with its own small runtime; stopped on drop.
pub(super) struct PipeServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PipeServer {
    /// Creates the first pipe instance (so a failure is reported here, and no
    /// other process can own the name first) and starts serving.
    /// `launched`: the helpers the service started, the only clients taken; None
    /// (a console run, where helpers are started by hand) takes any client of the
    /// session.
    pub(super) fn start(inbox: Inbox, launched: Option<Launched>) -> std::io::Result<PipeServer> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut security = PipeSecurity::new()?;
        let first = {
            let _guard = rt.enter();
            create(&mut security, true)?
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("kaoqin-pipe".into())
            .spawn(move || rt.block_on(serve(first, security, inbox, launched, rx)))?;
        Ok(PipeServer {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for PipeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn create(security: &mut PipeSecurity, first: bool) -> std::io::Result<NamedPipeServer> {
    let mut opts = ServerOptions::new();
    opts.first_pipe_instance(first)
        .reject_remote_clients(true)
        .access_outbound(false)
        .in_buffer_size(MAX_LINE as u32);
    // SAFETY: `security` points to a SECURITY_ATTRIBUTES whose descriptor lives
    // as long as `security`, which outlives this call.
    unsafe { opts.create_with_security_attributes_raw(PIPE_NAME, security.as_ptr()) }
}

async fn serve(
    mut next: NamedPipeServer,
    mut security: Box<PipeSecurity>,
    inbox: Inbox,
    launched: Option<Launched>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            r = next.connect() => {
                if let Err(e) = r {
                    debug!(error = %e, "A helper failed to connect.");
                }
            }
            _ = &mut stop => return,
        }
        // Make the next instance before handing this one over, so helpers always
        // find the pipe.
        let connected = loop {
            match create(&mut security, false) {
                Ok(s) => break std::mem::replace(&mut next, s),
                Err(e) => {
                    warn!(error = %e, "Cannot create the helpers' pipe; retrying in 5 s.");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = &mut stop => return,
                    }
                }
            }
        };
        let Some(session) = sys::pipe_client_session(connected.as_raw_handle()) else {
            continue;
        };
        if let Some(launched) = &launched {
            let pid = sys::pipe_client_pid(connected.as_raw_handle());
            // A helper may connect before its start is recorded: wait a moment.
            let mut ours = false;
            for _ in 0..20 {
                ours = pid.is_some_and(|pid| launched.is_helper(session, pid));
                if ours {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if !ours {
                warn!(
                    session,
                    ?pid,
                    "A process that is not the helper the service started connected to the pipe; refused."
                );
                continue;
            }
        }
        if live.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            warn!(session, "Too many helpers connected; refusing one.");
            continue;
        }
        live.fetch_add(1, Ordering::Relaxed);
        let (inbox, live) = (inbox.clone(), live.clone());
        tokio::spawn(async move {
            read_helper(connected, session, &inbox).await;
            inbox.push(Input::HelperGone {
                at_ms: now_ms(),
                session,
            });
            live.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Reads one helper's lines until it disconnects or misbehaves.
async fn read_helper(mut pipe: NamedPipeServer, session: u32, inbox: &Inbox) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut bad = 0u32;
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            if line.trim().is_empty() {
                continue;
            }
            match parse_sample(&line) {
                Ok(sample) => inbox.push(Input::Sample {
                    at_ms: now_ms(),
                    session,
                    sample,
                }),
                Err(e) => {
                    bad += 1;
                    debug!(session, error = %e, "Ignored a bad line from a helper.");
                    if bad > MAX_BAD_LINES {
                        warn!(session, "A helper sent too many bad lines; disconnected.");
                        return;
                    }
                }
            }
        }
        if buf.len() > MAX_LINE {
            warn!(
                session,
                "A helper sent a line that is too long; disconnected."
            );
            return;
        }
    }
}

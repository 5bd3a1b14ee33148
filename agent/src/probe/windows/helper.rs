//! `kaoqin-agent session-helper`: runs inside a user's session (the service
//! starts it there at logon), samples idle time and the foreground window every
//! [`HELPER_INTERVAL_MS`] and writes one JSON line per sample to the service's
//! pipe. It keeps nothing and sends nothing anywhere else; window titles stay on
//! this PC, where the service classifies them.
//!
//! What must stay true: one helper per session (a session-wide mutex); the
//! helper writes only to a pipe served from session 0 (the service), so a user
//! who made a pipe of that name could not collect other sessions' titles; it
//! waits and retries while the service is away, and exits once the service has
//! been away for the give-up time ([`HELPER_GIVE_UP_S`]): the service starts a
//! new helper when it is back.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::time::Duration;

use super::sys;
#[cfg(doc)]
use crate::probe::wts::HELPER_GIVE_UP_S;
use crate::probe::wts::{HELPER_INTERVAL_MS, PIPE_NAME, ServiceTries};

// FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | SYNCHRONIZE: what the pipe's DACL
// grants users (GENERIC_WRITE would ask for FILE_APPEND_DATA too, and be refused).
const PIPE_ACCESS: u32 = 0x0002 | 0x0080 | 0x0010_0000;
// SECURITY_SQOS_PRESENT is added by std; SECURITY_IDENTIFICATION: the server may
// learn who the helper is but not act as them.
const SECURITY_IDENTIFICATION: u32 = 1 << 16;

/// Runs the helper. With `print`, samples go to stdout instead of the pipe (to
/// see what the service would get); with `once`, one sample and exit. It exits
/// once the service has been away for `give_up_s` seconds.
pub fn run(once: bool, print: bool, give_up_s: u64) -> anyhow::Result<()> {
    let _one = if print {
        None
    } else {
        match sys::single_instance(r"Local\kaoqin-session-helper")? {
            Some(guard) => Some(guard),
            None => return Ok(()), // another helper already serves this session
        }
    };
    let interval = Duration::from_millis(HELPER_INTERVAL_MS);
    let mut pipe: Option<std::fs::File> = None;
    let mut tries = ServiceTries::new(give_up_s.saturating_mul(1_000));
    let started = std::time::Instant::now();
    loop {
        let line = sys::sample().encode();
        if print {
            print!("{line}");
            std::io::stdout().flush()?;
        } else {
            if pipe.is_none() {
                pipe = connect();
            }
            match pipe.as_mut().map(|p| p.write_all(line.as_bytes())) {
                Some(Ok(())) => tries.reached(),
                _ => {
                    pipe = None;
                    if once {
                        anyhow::bail!("the kaoqin-agent service's pipe {PIPE_NAME} is not there");
                    }
                    // The service is away (stopped, upgrading, uninstalled) or
                    // took another helper: back off, and in the end make way.
                    let now_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
                    match tries.failed(now_ms) {
                        Some(wait) => std::thread::sleep(Duration::from_millis(wait)),
                        None => {
                            eprintln!(
                                "kaoqin-agent session-helper: the service has not taken a sample for {give_up_s} s; exiting (it starts a new helper when it is back)"
                            );
                            return Ok(());
                        }
                    }
                    continue;
                }
            }
        }
        if once {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// Opens the service's pipe, if it is there and served from session 0.
fn connect() -> Option<std::fs::File> {
    let f = OpenOptions::new()
        .access_mode(PIPE_ACCESS)
        .security_qos_flags(SECURITY_IDENTIFICATION)
        .open(PIPE_NAME)
        .ok()?;
    (sys::pipe_server_session(f.as_raw_handle()) == Some(0)).then_some(f)
}

//! The service's Windows side: registration with the service control manager,
//! the service main function and its control handler.
//!
//! Neither the service control manager nor session notifications exist under
//! Wine's test setup; what this module decides is in `service.rs` and
//! `probe/wts.rs`, tested everywhere.

// `define_windows_service!` expands to the `extern "system"` entry point the
// service control manager calls, which contains an unsafe block of the crate's.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use windows_service::service::{
    ServiceAccess, ServiceAction as ScAction, ServiceActionType, ServiceControl,
    ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus,
    ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::{
    Control, DESCRIPTION, DISPLAY_NAME, Reaction, SERVICE_NAME, ServiceAction, launch_arguments,
    mark_system_shutdown, react,
};
use crate::cli::Common;
use crate::config::Config;
use crate::probe::windows::{WindowsProbe, WindowsProbeOptions};
use crate::probe::wts::{Inbox, Input};
use crate::runner::{ProbeChoice, RunOptions};

/// The largest the service's log file grows before it is started afresh.
const LOG_MAX_BYTES: u64 = 8 * 1024 * 1024;

pub(super) fn run(action: ServiceAction) -> anyhow::Result<()> {
    match action {
        ServiceAction::Install { common } => install(&common),
        ServiceAction::Uninstall => uninstall(),
        ServiceAction::Start => {
            let s = open(ServiceAccess::START | ServiceAccess::QUERY_STATUS)?;
            s.start::<&str>(&[]).context("cannot start the service")?;
            wait_for(&s, ServiceState::Running)?;
            println!("Service {SERVICE_NAME} is running.");
            Ok(())
        }
        ServiceAction::Stop => {
            let s = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?;
            stop(&s)?;
            println!("Service {SERVICE_NAME} is stopped.");
            Ok(())
        }
        ServiceAction::Run { common } => {
            PARAMS
                .set(common)
                .map_err(|_| anyhow::anyhow!("the service was started twice"))?;
            service_dispatcher::start(SERVICE_NAME, ffi_service_main).context(
                "`service run` is what the service control manager starts; use `kaoqin-agent run` in a console",
            )
        }
    }
}

pub(super) fn session_helper(once: bool, print: bool, give_up_s: u64) -> anyhow::Result<()> {
    crate::probe::windows::helper::run(once, print, give_up_s)
}

pub(super) fn shutting_down() -> bool {
    crate::probe::windows::shutting_down()
}

fn manager(access: ServiceManagerAccess) -> anyhow::Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, access)
        .context("cannot open the service control manager (run as an administrator)")
}

fn open(access: ServiceAccess) -> anyhow::Result<windows_service::service::Service> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(SERVICE_NAME, access)
        .with_context(|| format!("cannot open service {SERVICE_NAME} (is it installed?)"))
}

fn install(common: &Common) -> anyhow::Result<()> {
    // The service starts in System32: make the paths absolute, and check the
    // configuration now rather than at the next boot.
    let config = common
        .config
        .as_deref()
        .map(std::path::absolute)
        .transpose()?;
    if let Some(c) = &config {
        Config::load(c)?;
    }
    let state_dir = common
        .state_dir
        .as_deref()
        .map(std::path::absolute)
        .transpose()?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe()?,
        launch_arguments: launch_arguments(config.as_deref(), state_dir.as_deref()),
        dependencies: vec![],
        account_name: None, // LocalSystem: needed for WTSQueryUserToken
        account_password: None,
    };
    let m = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    let access = ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS;
    let (service, verb) = match m.open_service(SERVICE_NAME, access) {
        Ok(s) => {
            s.change_config(&info)
                .context("cannot update the service")?;
            (s, "updated")
        }
        Err(_) => (
            m.create_service(&info, access)
                .context("cannot create the service")?,
            "installed",
        ),
    };
    service.set_description(DESCRIPTION)?;
    let restart = |secs| ScAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    let restarts = service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(5), restart(30), restart(60)]),
        })
        .and_then(|()| service.set_failure_actions_on_non_crash_failures(true));
    println!(
        "Service {SERVICE_NAME} {verb}: starts at boot. Start it now with `kaoqin-agent service start`."
    );
    match restarts {
        Ok(()) => println!("It is restarted after 5 s, 30 s and 60 s when it fails."),
        // Wine's service manager, for one, does not know the failure-actions flag.
        Err(e) => eprintln!(
            "warning: restart on failure could not be set ({:#}); set it with `sc.exe failure {SERVICE_NAME} reset= 86400 actions= restart/5000/restart/30000/restart/60000`",
            anyhow::Error::from(e)
        ),
    }
    Ok(())
}

fn uninstall() -> anyhow::Result<()> {
    let s = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE)?;
    stop(&s)?;
    s.delete().context("cannot delete the service")?;
    println!("Service {SERVICE_NAME} removed; the state dir is kept.");
    Ok(())
}

fn stop(s: &windows_service::service::Service) -> anyhow::Result<()> {
    if s.query_status()?.current_state != ServiceState::Stopped {
        s.stop().context("cannot stop the service")?;
        wait_for(s, ServiceState::Stopped)?;
    }
    Ok(())
}

fn wait_for(s: &windows_service::service::Service, want: ServiceState) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = s.query_status()?.current_state;
        if now == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the service is {now:?} after 60 s, not {want:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The command line's `--config` and `--state-dir`, for the service main.
static PARAMS: OnceLock<Common> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

fn service_main(_args: Vec<OsString>) {
    if let Err(e) = run_service() {
        tracing::error!(error = format!("{e:#}"), "The service failed.");
    }
}

/// Logs to `agent.log` in the state dir (a service has no console), started
/// afresh when it passes [`LOG_MAX_BYTES`].
fn init_logging(state_dir: &std::path::Path) {
    use tracing_subscriber::EnvFilter;
    let _ = std::fs::create_dir_all(state_dir);
    let path = state_dir.join("agent.log");
    let big = std::fs::metadata(&path).is_ok_and(|m| m.len() > LOG_MAX_BYTES);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(!big)
        .write(true)
        .truncate(big)
        .open(&path);
    let Ok(file) = file else { return };
    let filter = EnvFilter::try_from_env("KAOQIN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

fn status(state: ServiceState, accept: ServiceControlAccept, exit: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(exit),
        checkpoint: 0,
        wait_hint: Duration::from_secs(if state == ServiceState::StopPending {
            20
        } else {
            0
        }),
        process_id: None,
    }
}

fn control_of(c: &ServiceControl) -> Control {
    match c {
        ServiceControl::Stop => Control::Stop,
        ServiceControl::Shutdown | ServiceControl::Preshutdown => Control::Shutdown,
        ServiceControl::Interrogate => Control::Interrogate,
        ServiceControl::SessionChange(p) => Control::SessionChange {
            reason: p.reason.to_raw(),
            session: p.notification.session_id,
        },
        _ => Control::Other,
    }
}

fn run_service() -> anyhow::Result<()> {
    let common = PARAMS.get().cloned().unwrap_or(Common {
        config: None,
        state_dir: None,
    });
    let config = match &common.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let state_dir: PathBuf = config.state_dir(common.state_dir.as_deref());
    init_logging(&state_dir);

    let inbox = Inbox::default();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let handler_inbox = inbox.clone();
    let handler = move |c: ServiceControl| -> ServiceControlHandlerResult {
        match react(control_of(&c)) {
            Reaction::Stop(reason) => {
                if reason == crate::event::LifecycleReason::SystemShutdown {
                    mark_system_shutdown();
                }
                let _ = stop_tx.send(true);
                ServiceControlHandlerResult::NoError
            }
            Reaction::Session { change, session } => {
                handler_inbox.push(Input::Change {
                    at_ms: jiff::Timestamp::now().as_millisecond(),
                    session,
                    change,
                    info: crate::probe::windows::session_info(session),
                });
                ServiceControlHandlerResult::NoError
            }
            Reaction::Ok => ServiceControlHandlerResult::NoError,
            Reaction::NotImplemented => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let handle = service_control_handler::register(SERVICE_NAME, handler)?;
    let accept = ServiceControlAccept::STOP
        | ServiceControlAccept::SHUTDOWN
        | ServiceControlAccept::PRESHUTDOWN
        | ServiceControlAccept::SESSION_CHANGE;
    handle.set_service_status(status(ServiceState::Running, accept, 0))?;

    let probe = WindowsProbe::new(WindowsProbeOptions::from_config(&config, true), inbox);
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(crate::runner::run(
                config,
                RunOptions {
                    state_dir,
                    probe: ProbeChoice::Auto,
                    once: false,
                },
                Box::new(probe),
                async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                    let _ = handle.set_service_status(status(
                        ServiceState::StopPending,
                        ServiceControlAccept::empty(),
                        0,
                    ));
                },
            ))
        });
    // A failed run exits non-zero, so the service control manager restarts it.
    let exit = u32::from(result.is_err());
    handle.set_service_status(status(
        ServiceState::Stopped,
        ServiceControlAccept::empty(),
        exit,
    ))?;
    result
}

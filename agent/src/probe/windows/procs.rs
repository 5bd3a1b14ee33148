//! The applications running in each user session, from one long-lived sysinfo
//! `System`, for sessions that have no live helper to say what is in front.
//!
//! Kept cheap: each refresh reads the process list and the executable path of
//! processes not seen before, never threads. A process belongs to the account of
//! its session (`ProcessIdToSessionId`), so no SID lookups are needed.

use std::collections::{BTreeMap, BTreeSet};

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::sys;
use crate::probe::App;
use crate::probe::wts::{app_name_from_path, is_plumbing};

/// The running-application source.
pub(super) struct Procs {
    sys: System,
}

impl Procs {
    pub(super) fn new() -> Result<Procs, String> {
        let sys = System::new().map_err(|e| format!("cannot read processes: {e}"))?;
        Ok(Procs { sys })
    }

    /// Distinct applications (sorted, titles `None`) per account, for the
    /// sessions in `sessions` (session id -> account). Every account of
    /// `sessions` is in the result, with an empty list if nothing runs.
    pub(super) fn running(
        &mut self,
        sessions: &BTreeMap<u32, String>,
    ) -> BTreeMap<String, Vec<App>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = sessions
            .values()
            .map(|a| (a.clone(), BTreeSet::new()))
            .collect();
        if sessions.is_empty() {
            return BTreeMap::new();
        }
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_exe(UpdateKind::OnlyIfNotSet),
        );
        for (pid, p) in self.sys.processes() {
            let Some(account) = sys::process_session(pid.as_u32()).and_then(|s| sessions.get(&s))
            else {
                continue;
            };
            let name = p
                .exe()
                .and_then(|e| app_name_from_path(&e.to_string_lossy()))
                .or_else(|| app_name_from_path(&p.name().to_string_lossy()));
            if let Some(name) = name.filter(|n| !is_plumbing(n))
                && let Some(set) = out.get_mut(account)
            {
                set.insert(name);
            }
        }
        out.into_iter()
            .map(|(a, names)| {
                (
                    a,
                    names
                        .into_iter()
                        .map(|name| App { name, title: None })
                        .collect(),
                )
            })
            .collect()
    }
}

//! The agent's enrolment: which collector it reports to and as whom.
//!
//! Kept as `enrolment.json` in the state dir, readable by its owner only. The
//! enrolment token is kept too, so the agent can enrol again by itself when the
//! collector rejects its key (a revoked agent, a restored collector).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file's name inside the state dir.
pub const ENROLMENT_FILE: &str = "enrolment.json";
/// The spool's file name inside the state dir.
pub const SPOOL_FILE: &str = "spool.db";

/// The access list of the state directory on Windows (SDDL): protected (`P`: no
/// inherited entries, so `Users` get nothing from `%ProgramData%`), auto-inherited by
/// what is created in it (`OICI`), full control for SYSTEM (`SY`, the service) and
/// Administrators (`BA`), and for the directory's owner (`OW`): the service's
/// account when it created it, or the one administrator who ran the agent by hand.
pub const STATE_DIR_SDDL: &str = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;OW)";

/// Who this agent is to the collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    pub collector: String,
    pub agent_id: String,
    pub agent_key: String,
    pub token: String,
    pub machine_id: String,
    pub enrolled_at_ms: i64,
    /// The collector's CA certificate (PEM), pinned at enrolment. Once an agent
    /// has one it only ever talks TLS to a collector that CA vouches for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl Enrolment {
    /// Reads the enrolment from `state_dir`, `None` if the agent never enrolled.
    pub fn load(state_dir: &Path) -> anyhow::Result<Option<Enrolment>> {
        let path = state_dir.join(ENROLMENT_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e}; enrol again with `kaoqin-agent enroll`",
                    path.display()
                )
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes the enrolment atomically (temp file, fsync, rename), owner-only.
    pub fn save(&self, state_dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", state_dir.display()))?;
        let path = state_dir.join(ENROLMENT_FILE);
        let tmp = state_dir.join(format!("{ENROLMENT_FILE}.tmp"));
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts
                .open(&tmp)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
            f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// A stable identity of this machine that survives reinstalling the agent:
/// /etc/machine-id on Linux, the MachineGuid on Windows. Where none exists, one
/// is made up once and kept in the state dir. `KAOQIN_MACHINE_ID` overrides it,
/// for labs that run several agents on one machine.
pub fn machine_id(state_dir: &Path) -> anyhow::Result<String> {
    if let Ok(id) = std::env::var("KAOQIN_MACHINE_ID")
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_owned());
    }
    if let Some(id) = platform::machine_id() {
        return Ok(id);
    }
    for p in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            if !s.is_empty() {
                return Ok(s.to_owned());
            }
        }
    }
    let path = state_dir.join("machine-id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_owned();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(state_dir)?;
    std::fs::write(&path, &id)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}

/// Where the operating system keeps a machine identity of its own (Linux's
/// files are read in [`machine_id`]).
#[cfg(windows)]
mod platform {
    pub(super) use crate::probe::windows::machine_guid as machine_id;
}
#[cfg(not(windows))]
mod platform {
    pub(super) fn machine_id() -> Option<String> {
        None
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_acl_is_for_the_service_and_administrators_only() {
        let sddl = STATE_DIR_SDDL;
        assert!(
            sddl.starts_with("D:PAI"),
            "protected, nothing inherited: {sddl}"
        );
        let aces: Vec<&str> = sddl["D:PAI".len()..]
            .trim_matches(|c| c == '(' || c == ')')
            .split(")(")
            .collect();
        assert_eq!(aces.len(), 3, "{aces:?}");
        for ace in &aces {
            let f: Vec<&str> = ace.split(';').collect();
            assert_eq!(f[0], "A", "allow entries only: {ace}");
            assert_eq!(f[1], "OICI", "inherited by files and folders: {ace}");
            assert_eq!(f[2], "FA", "{ace}");
        }
        let who: Vec<&str> = aces.iter().map(|a| a.rsplit(';').next().unwrap()).collect();
        assert_eq!(who, ["SY", "BA", "OW"]);
        for nobody in ["BU", "WD", "AU", "IU", "BG"] {
            assert!(!who.contains(&nobody), "{nobody} has no access");
        }
    }

    #[test]
    fn enrolment_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Enrolment::load(dir.path()).unwrap(), None);
        let e = Enrolment {
            collector: "http://127.0.0.1:50051".into(),
            agent_id: "ag-1".into(),
            agent_key: "secret".into(),
            token: "kq1-t".into(),
            machine_id: "m".into(),
            enrolled_at_ms: 1,
            ca_pem: Some("-----BEGIN CERTIFICATE-----".into()),
        };
        let path = e.save(dir.path()).unwrap();
        assert!(path.exists());
        assert_eq!(Enrolment::load(dir.path()).unwrap(), Some(e));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only");
        }
    }

    #[test]
    fn a_damaged_enrolment_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ENROLMENT_FILE), "{").unwrap();
        let err = Enrolment::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(ENROLMENT_FILE) && err.contains("enrol again"),
            "{err}"
        );
    }
}

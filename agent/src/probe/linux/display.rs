//! Finding the desktop's X display from a service. A service has no `DISPLAY`:
//! the processes of the desktop session have it, with `XAUTHORITY`, the file
//! holding the cookie the X server asks for. Both are read from
//! `/proc/PID/environ` and nothing else of those environments is kept; the
//! cookie is used to connect and never leaves the PC.
//!
//! The authority file is read through `/proc/PID/root` first: under the
//! packaged unit's `PrivateTmp=`, a file the display manager left in /tmp is
//! only there. The X sockets themselves are bound into the unit.
//!
//! What must stay true: a cookie is only taken from a file owned by the user of
//! the process that names it. The agent reads files as root; without that rule a
//! user could name the display manager's own authority file and a display of
//! their making, and be sent that cookie.

use std::path::{Path, PathBuf};
use x11rb::reexports::x11rb_protocol::parse_display::parse_display;
use x11rb::reexports::x11rb_protocol::xauth::Family;
use x11rb::rust_connection::{DefaultStream, RustConnection};

/// A display a process names, with the authority file it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Named {
    pub(super) display: String,
    pub(super) authority: Option<PathBuf>,
    /// A process that names them (whose root the file is read through).
    pub(super) pid: u32,
    /// That process's user, who must own the authority file.
    pub(super) uid: u32,
}

/// The displays named by the processes under `proc_root` (`/proc`), other than
/// this one: those of ordinary users first (the desktop, not a root daemon's
/// leftover), then those named by more processes. One entry per display and
/// authority file.
pub(super) fn named(proc_root: &Path) -> Vec<Named> {
    use std::os::unix::fs::MetadataExt;
    let own = std::process::id();
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    // (display, authority, user) -> (processes, a pid)
    type Key = (String, Option<PathBuf>, u32);
    let mut seen: std::collections::BTreeMap<Key, (usize, u32)> = std::collections::BTreeMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let (mut display, mut authority) = (None, None);
        for var in environ.split(|b| *b == 0) {
            if let Some(v) = var.strip_prefix(b"DISPLAY=") {
                display = std::str::from_utf8(v).ok().filter(|d| !d.is_empty());
            } else if let Some(v) = var.strip_prefix(b"XAUTHORITY=") {
                authority = std::str::from_utf8(v)
                    .ok()
                    .filter(|a| a.starts_with('/'))
                    .map(PathBuf::from);
            }
        }
        let Some(display) = display else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        let e = seen
            .entry((display.to_owned(), authority, meta.uid()))
            .or_insert((0, pid));
        e.0 += 1;
    }
    let mut found: Vec<_> = seen.into_iter().collect();
    found.sort_by_key(|((_, _, uid), (count, _))| std::cmp::Reverse((*uid != 0, *count)));
    found
        .into_iter()
        .map(|((display, authority, uid), (_, pid))| Named {
            display,
            authority,
            pid,
            uid,
        })
        .collect()
}

/// Connects to a named display with the cookie its authority file holds for it;
/// returns the connection and the screen.
pub(super) fn connect(n: &Named, proc_root: &Path) -> Result<(RustConnection, usize), String> {
    let parsed = parse_display(Some(&n.display)).map_err(|e| e.to_string())?;
    let entries = match &n.authority {
        None => Vec::new(),
        Some(file) => {
            let through_root = proc_root
                .join(n.pid.to_string())
                .join("root")
                .join(file.strip_prefix("/").unwrap_or(file));
            let bytes = read_owned(&through_root, n.uid)
                .or_else(|_| read_owned(file, n.uid))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            entries(&bytes).map_err(|e| format!("{}: {e}", file.display()))?
        }
    };
    let screen = usize::from(parsed.screen);
    let mut failed = String::from("no address to connect to");
    for addr in parsed.connect_instruction() {
        match DefaultStream::connect(&addr) {
            Ok((stream, (family, address))) => {
                let (name, data) =
                    cookie(&entries, family, &address, parsed.display).unwrap_or_default();
                return RustConnection::connect_to_stream_with_auth_info(
                    stream, screen, name, data,
                )
                .map(|c| (c, screen))
                .map_err(|e| e.to_string());
            }
            Err(e) => failed = e.to_string(),
        }
    }
    Err(failed)
}

/// The file at `path`, if `uid` owns it (checked on the file opened, not on the
/// name).
fn read_owned(path: &Path, uid: u32) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut f = std::fs::File::open(path)?;
    let owner = f.metadata()?.uid();
    if owner != uid {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("owned by uid {owner}, not by the process's user {uid}: not used"),
        ));
    }
    let mut bytes = Vec::new();
    f.by_ref().take(1 << 20).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// One entry of an X authority file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    family: u16,
    address: Vec<u8>,
    number: Vec<u8>,
    name: Vec<u8>,
    data: Vec<u8>,
}

/// The entries of an X authority file: each a big-endian family, then address,
/// display number, method name and data, each as a big-endian length and bytes.
pub(super) fn entries(mut bytes: &[u8]) -> Result<Vec<Entry>, String> {
    fn u16_at(b: &mut &[u8]) -> Result<u16, String> {
        let (head, rest) = b
            .split_at_checked(2)
            .ok_or("the file ends inside an entry")?;
        *b = rest;
        Ok(u16::from_be_bytes([head[0], head[1]]))
    }
    fn counted(b: &mut &[u8]) -> Result<Vec<u8>, String> {
        let n = usize::from(u16_at(b)?);
        let (head, rest) = b
            .split_at_checked(n)
            .ok_or("the file ends inside an entry")?;
        *b = rest;
        Ok(head.to_vec())
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(Entry {
            family: u16_at(&mut bytes)?,
            address: counted(&mut bytes)?,
            number: counted(&mut bytes)?,
            name: counted(&mut bytes)?,
            data: counted(&mut bytes)?,
        });
    }
    Ok(out)
}

/// The MIT-MAGIC-COOKIE-1 for a connection to display `display` at `address`
/// of `family`, as Xlib picks it: the first entry whose family and address
/// match (or either is the wildcard) and whose display number matches or is
/// empty.
fn cookie(
    entries: &[Entry],
    family: Family,
    address: &[u8],
    display: u16,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let number = display.to_string();
    entries
        .iter()
        .find(|e| {
            let f = Family::from(e.family);
            let place = f == Family::WILD
                || family == Family::WILD
                || (f == family && e.address == address);
            place
                && (e.number.is_empty() || e.number == number.as_bytes())
                && e.name == b"MIT-MAGIC-COOKIE-1"
        })
        .map(|e| (e.name.clone(), e.data.clone()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An entry's fields: family, address, display number, method, data.
    type Fields<'a> = (u16, &'a [u8], &'a [u8], &'a [u8], &'a [u8]);

    fn counted(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    }

    /// An authority file of (family, address, number, name, data) entries.
    pub(crate) fn authority_file(list: &[Fields<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (family, address, number, name, data) in list {
            out.extend_from_slice(&family.to_be_bytes());
            for b in [address, number, name, data] {
                counted(&mut out, b);
            }
        }
        out
    }

    #[test]
    fn the_cookie_for_a_display_is_picked_as_xlib_picks_it() {
        let file = authority_file(&[
            (256, b"other-host", b"0", b"MIT-MAGIC-COOKIE-1", b"not this"),
            (256, b"pc-1", b"1", b"MIT-MAGIC-COOKIE-1", b"display 1"),
            (256, b"pc-1", b"0", b"XDM-AUTHORIZATION-1", b"other method"),
            (256, b"pc-1", b"0", b"MIT-MAGIC-COOKIE-1", b"this one"),
            (65535, b"", b"", b"MIT-MAGIC-COOKIE-1", b"wildcard"),
        ]);
        let e = entries(&file).unwrap();
        assert_eq!(e.len(), 5);
        let pick = |display| cookie(&e, Family::LOCAL, b"pc-1", display).map(|c| c.1);
        assert_eq!(pick(0).as_deref(), Some(&b"this one"[..]));
        assert_eq!(pick(1).as_deref(), Some(&b"display 1"[..]));
        assert_eq!(pick(7).as_deref(), Some(&b"wildcard"[..]));
        // A cut file is an error, not a wrong cookie.
        assert!(entries(&file[..file.len() - 3]).is_err());
    }

    #[test]
    fn displays_are_read_from_the_processes_ordinary_users_first() {
        let proc = tempfile::tempdir().unwrap();
        let process = |pid: &str, environ: &[u8]| {
            std::fs::create_dir(proc.path().join(pid)).unwrap();
            std::fs::write(proc.path().join(pid).join("environ"), environ).unwrap();
        };
        process("100", b"HOME=/root\0DISPLAY=:9\0");
        process(
            "200",
            b"DISPLAY=:0\0XAUTHORITY=/home/zhangsan/.Xauthority\0LANG=zh_CN.UTF-8\0",
        );
        process(
            "201",
            b"XAUTHORITY=/home/zhangsan/.Xauthority\0DISPLAY=:0\0",
        );
        process("300", b"PATH=/usr/bin\0");
        process("301", b"DISPLAY=\0");
        process("self", b"DISPLAY=:5\0");
        let found = named(proc.path());
        // All made by one user here: the one named by more processes first.
        assert_eq!(
            found
                .iter()
                .map(|n| (n.display.as_str(), n.authority.as_deref()))
                .collect::<Vec<_>>(),
            [
                (":0", Some(Path::new("/home/zhangsan/.Xauthority"))),
                (":9", None)
            ]
        );
    }
}

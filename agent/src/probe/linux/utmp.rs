//! The glibc utmp/wtmp file format, parsed from bytes without libc.
//!
//! A file is a sequence of fixed 384-byte records (x86_64, aarch64 and
//! loongarch64 glibc all use this layout, with 32-bit times):
//!
//! ```text
//! off  size  field
//!   0     2  ut_type      (i16, then 2 bytes padding)
//!   4     4  ut_pid       (i32)
//!   8    32  ut_line      (tty or display, NUL-padded)
//!  40     4  ut_id        (inittab id / tty suffix)
//!  44    32  ut_user      (account name)
//!  76   256  ut_host      (remote host or display)
//! 332     4  ut_exit      (2 × i16)
//! 336     4  ut_session   (i32)
//! 340     8  ut_tv        (i32 seconds, i32 microseconds)
//! 348    16  ut_addr_v6   (4 × i32)
//! 364    20  unused
//! ```
//!
//! Invariants: parsing never fails; a trailing partial record is ignored; strings
//! stop at the first NUL and are decoded lossily. Everything here is pure so it can
//! be tested with fixtures written by `utmpdump -r`.

use std::collections::BTreeMap;

/// The size of one utmp/wtmp record.
pub const RECORD_SIZE: usize = 384;

/// `ut_type` of a login process that became a user session.
pub const USER_PROCESS: i16 = 7;
/// `ut_type` of a terminated session.
pub const DEAD_PROCESS: i16 = 8;
/// `ut_type` of a system boot.
pub const BOOT_TIME: i16 = 2;

/// One utmp/wtmp record, with the fields the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpRecord {
    /// `ut_type`: [`USER_PROCESS`], [`DEAD_PROCESS`], [`BOOT_TIME`], ...
    pub kind: i16,
    pub pid: i32,
    /// The tty (`pts/1`) or X display (`:0`).
    pub line: String,
    pub id: String,
    pub user: String,
    pub host: String,
    pub session: i32,
    /// `ut_tv` as UTC epoch milliseconds.
    pub at_ms: i64,
}

fn field_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_owned()
}

fn i32_at(rec: &[u8], off: usize) -> i32 {
    i32::from_ne_bytes([rec[off], rec[off + 1], rec[off + 2], rec[off + 3]])
}

/// Parses one 384-byte record.
fn parse_record(rec: &[u8]) -> UtmpRecord {
    let kind = i16::from_ne_bytes([rec[0], rec[1]]);
    // ut_tv is two signed 32-bit values; glibc stores seconds as the unsigned
    // reinterpretation after 2038, so read seconds as u32.
    let sec = i64::from(i32_at(rec, 340) as u32);
    let usec = i64::from(i32_at(rec, 344)).clamp(0, 999_999);
    UtmpRecord {
        kind,
        pid: i32_at(rec, 4),
        line: field_str(&rec[8..40]),
        id: field_str(&rec[40..44]),
        user: field_str(&rec[44..76]),
        host: field_str(&rec[76..332]),
        session: i32_at(rec, 336),
        at_ms: sec * 1000 + usec / 1000,
    }
}

/// Parses the records of a utmp file (`/var/run/utmp`): the current state.
pub fn parse_utmp(bytes: &[u8]) -> Vec<UtmpRecord> {
    bytes.chunks_exact(RECORD_SIZE).map(parse_record).collect()
}

/// Parses the records of a wtmp file (`/var/log/wtmp`): the append-only history,
/// oldest first. Same format as utmp; kept separate so callers say which they read.
pub fn parse_wtmp(bytes: &[u8]) -> Vec<UtmpRecord> {
    parse_utmp(bytes)
}

/// The accounts a utmp file says are logged on, each with its earliest session's
/// start. Entries of `USER_PROCESS` count; several sessions of one account are one
/// entry. A `DEAD_PROCESS` record replaces its session's entry in place in utmp, so
/// it needs no special handling here.
pub fn logged_on(records: &[UtmpRecord]) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for r in records {
        if r.kind == USER_PROCESS && !r.user.is_empty() {
            out.entry(r.user.clone())
                .and_modify(|t| *t = (*t).min(r.at_ms))
                .or_insert(r.at_ms);
        }
    }
    out
}

/// When the sessions `user` had in `previous` ended, according to the `DEAD_PROCESS`
/// records of `current` that took over their slots (same `ut_id`, or same line).
/// The latest such instant, or `None` if utmp does not say.
pub fn logoff_instant(user: &str, previous: &[UtmpRecord], current: &[UtmpRecord]) -> Option<i64> {
    let mut at: Option<i64> = None;
    for old in previous
        .iter()
        .filter(|r| r.kind == USER_PROCESS && r.user == user)
    {
        for dead in current.iter().filter(|r| r.kind == DEAD_PROCESS) {
            let same_slot = (!old.id.is_empty() && dead.id == old.id)
                || (!old.line.is_empty() && dead.line == old.line);
            if same_slot && dead.at_ms >= old.at_ms {
                at = Some(at.map_or(dead.at_ms, |a| a.max(dead.at_ms)));
            }
        }
    }
    at
}

/// The user on X display `display` (`:0`), if a display manager recorded one.
pub fn user_on_display(records: &[UtmpRecord], display: &str) -> Option<String> {
    let want = display_number(display)?;
    records
        .iter()
        .filter(|r| r.kind == USER_PROCESS && !r.user.is_empty())
        .find(|r| display_number(&r.line) == Some(want) || display_number(&r.host) == Some(want))
        .map(|r| r.user.clone())
}

/// `":0.0"`, `":0"` or `"unix:0"` -> `"0"`; anything without a colon -> `None`.
fn display_number(s: &str) -> Option<&str> {
    let (_, rest) = s.rsplit_once(':')?;
    let num = rest.split('.').next()?;
    (!num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())).then_some(num)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Writes utmp bytes from `utmpdump` text (`utmpdump -r`), or `None` if
    /// utmpdump is not installed.
    pub(crate) fn utmpdump_bytes(text: &str) -> Option<Vec<u8>> {
        let mut child = match Command::new("utmpdump")
            .arg("-r")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                println!("skipping: utmpdump not runnable ({e}); install util-linux");
                return None;
            }
        };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write utmpdump input");
        let out = child.wait_with_output().expect("utmpdump output");
        assert!(out.status.success(), "utmpdump -r failed");
        Some(out.stdout)
    }

    /// One line of utmpdump text.
    pub(crate) fn dump_line(
        kind: i16,
        pid: u32,
        id: &str,
        user: &str,
        line: &str,
        host: &str,
        time: &str,
    ) -> String {
        format!(
            "[{kind}] [{pid:05}] [{id:<4}] [{user:<8}] [{line:<12}] [{host:<20}] [0.0.0.0        ] [{time}]\n"
        )
    }

    /// Builds one record in Rust (the other way to make fixtures).
    fn record_bytes(
        kind: i16,
        pid: i32,
        line: &str,
        id: &str,
        user: &str,
        sec: i32,
        usec: i32,
    ) -> Vec<u8> {
        let mut r = vec![0u8; RECORD_SIZE];
        r[0..2].copy_from_slice(&kind.to_ne_bytes());
        r[4..8].copy_from_slice(&pid.to_ne_bytes());
        r[8..8 + line.len()].copy_from_slice(line.as_bytes());
        r[40..40 + id.len()].copy_from_slice(id.as_bytes());
        r[44..44 + user.len()].copy_from_slice(user.as_bytes());
        r[340..344].copy_from_slice(&sec.to_ne_bytes());
        r[344..348].copy_from_slice(&usec.to_ne_bytes());
        r
    }

    // 2026-03-02T00:41:05.123Z
    const T_LOGON: i64 = 1_772_412_065_123;

    #[test]
    fn parses_records_written_by_utmpdump() {
        let text = [
            dump_line(
                2,
                0,
                "~~",
                "reboot",
                "~",
                "6.1.0",
                "2026-03-02T00:30:00,000000+00:00",
            ),
            dump_line(
                7,
                1234,
                ":0",
                "zhangsan",
                ":0",
                ":0",
                "2026-03-02T00:41:05,123456+00:00",
            ),
            dump_line(
                7,
                2345,
                "ts/1",
                "lisi",
                "pts/1",
                "10.0.0.5",
                "2026-03-02T01:00:00,000000+00:00",
            ),
        ]
        .concat();
        let Some(bytes) = utmpdump_bytes(&text) else {
            return;
        };
        assert_eq!(bytes.len(), 3 * RECORD_SIZE);
        let recs = parse_utmp(&bytes);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].kind, BOOT_TIME);
        assert_eq!(
            recs[1],
            UtmpRecord {
                kind: USER_PROCESS,
                pid: 1234,
                line: ":0".into(),
                id: ":0".into(),
                user: "zhangsan".into(),
                host: ":0".into(),
                session: 0,
                at_ms: T_LOGON,
            }
        );
        assert_eq!(recs[2].host, "10.0.0.5");
        assert_eq!(recs[2].line, "pts/1");
        assert_eq!(recs[2].at_ms, 1_772_413_200_000);
    }

    #[test]
    fn parses_rust_built_bytes_and_ignores_partial_tail() {
        let mut bytes = record_bytes(
            USER_PROCESS,
            7,
            "tty2",
            "tty2",
            "wangwu",
            1_772_412_065,
            123_456,
        );
        bytes.extend(record_bytes(
            DEAD_PROCESS,
            7,
            "tty2",
            "tty2",
            "",
            1_772_415_665,
            0,
        ));
        bytes.extend([0u8; 100]);
        let recs = parse_wtmp(&bytes);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].user, "wangwu");
        assert_eq!(recs[0].at_ms, T_LOGON);
        assert_eq!(recs[1].kind, DEAD_PROCESS);
        assert_eq!(recs[1].at_ms, 1_772_415_665_000);
        assert!(parse_utmp(&[0u8; 383]).is_empty());
        assert!(parse_utmp(&[]).is_empty());
    }

    #[test]
    fn logged_on_dedupes_by_user_and_keeps_earliest() {
        let text = [
            dump_line(
                7,
                100,
                "ts/1",
                "zhangsan",
                "pts/1",
                "a",
                "2026-03-02T01:00:00,000000+00:00",
            ),
            dump_line(
                7,
                101,
                ":0",
                "zhangsan",
                ":0",
                ":0",
                "2026-03-02T00:41:05,123456+00:00",
            ),
            dump_line(
                8,
                102,
                "ts/2",
                "",
                "pts/2",
                "",
                "2026-03-02T02:00:00,000000+00:00",
            ),
            dump_line(
                6,
                103,
                "tty3",
                "LOGIN",
                "tty3",
                "",
                "2026-03-02T00:00:00,000000+00:00",
            ),
        ]
        .concat();
        let Some(bytes) = utmpdump_bytes(&text) else {
            return;
        };
        let on = logged_on(&parse_utmp(&bytes));
        assert_eq!(
            on.into_iter().collect::<Vec<_>>(),
            vec![("zhangsan".to_owned(), T_LOGON)]
        );
    }

    #[test]
    fn logoff_instant_comes_from_the_dead_record_in_the_same_slot() {
        let before = [dump_line(
            7,
            100,
            "ts/1",
            "lisi",
            "pts/1",
            "h",
            "2026-03-02T01:00:00,000000+00:00",
        )]
        .concat();
        let after = [
            dump_line(
                8,
                100,
                "ts/1",
                "",
                "pts/1",
                "",
                "2026-03-02T09:30:00,000000+00:00",
            ),
            dump_line(
                8,
                555,
                "ts/9",
                "",
                "pts/9",
                "",
                "2026-03-02T10:30:00,000000+00:00",
            ),
        ]
        .concat();
        let (Some(b), Some(a)) = (utmpdump_bytes(&before), utmpdump_bytes(&after)) else {
            return;
        };
        let (b, a) = (parse_utmp(&b), parse_utmp(&a));
        assert_eq!(logoff_instant("lisi", &b, &a), Some(1_772_443_800_000));
        assert_eq!(logoff_instant("nobody", &b, &a), None);
        assert_eq!(logoff_instant("lisi", &b, &[]), None);
    }

    #[test]
    fn finds_the_user_on_a_display() {
        let recs = vec![
            parse_record(&record_bytes(
                USER_PROCESS,
                1,
                "pts/0",
                "ts/0",
                "ssh-user",
                1,
                0,
            )),
            parse_record(&record_bytes(USER_PROCESS, 2, ":1", ":1", "desk", 1, 0)),
        ];
        assert_eq!(user_on_display(&recs, ":1.0").as_deref(), Some("desk"));
        assert_eq!(user_on_display(&recs, "unix:1").as_deref(), Some("desk"));
        assert_eq!(user_on_display(&recs, ":0"), None);
        assert_eq!(user_on_display(&recs, "garbage"), None);
    }
}

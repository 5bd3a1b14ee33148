//! A scripted day played in virtual time (`--probe replay:FILE`).
//!
//! The file has one JSON object a line (blank lines and lines starting with `#`
//! are skipped):
//!
//! ```text
//! {"at":"2026-11-24T08:41:00+08:00","type":"logon","user":"zhangsan"}
//! {"at":"2026-11-24T09:02:00+08:00","type":"foreground","user":"zhangsan","process":"WeChat.exe","title":"..."}
//! ```
//!
//! `type` is one of logon, logoff, lock, unlock, idle_start, idle_end, foreground,
//! and the PC's own `boot` (first line only) and `shutdown` (last line only), which
//! have no `user`: with them the replayed agent starts at a system boot and stops for
//! a system shutdown, as on a PC switched on in the morning and off at night, instead
//! of starting and ending a replay. Lines must be in time order. Every problem names
//! the file, the line and the field.

use super::{App, AppsBasis, Capabilities, Observation, Probe, ProbeError, ScriptSpan};
use crate::event::SessionKind;
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    at: String,
    #[serde(rename = "type")]
    kind: String,
    user: Option<String>,
    process: Option<String>,
    title: Option<String>,
}

/// Plays a parsed script.
#[derive(Debug)]
pub struct ReplayProbe {
    pending: VecDeque<Observation>,
    span: ScriptSpan,
}

impl ReplayProbe {
    /// Reads and checks a script file.
    pub fn load(path: &Path) -> Result<ReplayProbe, ProbeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProbeError::Script {
            path: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        ReplayProbe::parse(&path.display().to_string(), &text)
    }

    /// Parses a script; `name` is used in error messages.
    pub fn parse(name: &str, text: &str) -> Result<ReplayProbe, ProbeError> {
        let err = |line: usize, message: String| ProbeError::Script {
            path: name.to_owned(),
            line,
            message,
        };
        let mut pending = VecDeque::new();
        let mut last = i64::MIN;
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let raw = raw.trim();
            if !raw.is_empty() && !raw.starts_with('#') {
                lines.push((i + 1, raw));
            }
        }
        let (mut first_ms, mut boots, mut shuts_down) = (None, false, false);
        for (k, &(n, raw)) in lines.iter().enumerate() {
            let line: Line = serde_json::from_str(raw).map_err(|e| err(n, e.to_string()))?;
            let at: jiff::Timestamp = line.at.parse().map_err(|e| {
                err(
                    n,
                    format!(
                        "field \"at\": {:?} is not an RFC 3339 instant with offset: {e}",
                        line.at
                    ),
                )
            })?;
            let at_ms = at.as_millisecond();
            if at_ms < last {
                return Err(err(
                    n,
                    format!(
                        "field \"at\": {} is before the previous line's instant",
                        line.at
                    ),
                ));
            }
            last = at_ms;
            first_ms.get_or_insert(at_ms);
            match line.kind.as_str() {
                "boot" if k == 0 => {
                    boots = true;
                    continue;
                }
                "shutdown" if k + 1 == lines.len() => {
                    shuts_down = true;
                    continue;
                }
                "boot" => {
                    return Err(err(
                        n,
                        "field \"type\": boot may only be the first line".into(),
                    ));
                }
                "shutdown" => {
                    return Err(err(
                        n,
                        "field \"type\": shutdown may only be the last line".into(),
                    ));
                }
                _ => {}
            }
            let user = line.user.as_deref().map(str::trim).unwrap_or_default();
            if user.is_empty() {
                return Err(err(n, "field \"user\": required and not empty".into()));
            }
            let session = |kind| Observation::Session {
                at_ms,
                account: user.to_owned(),
                kind,
            };
            let obs = match line.kind.as_str() {
                "logon" => session(SessionKind::Logon),
                "logoff" => session(SessionKind::Logoff),
                "lock" => session(SessionKind::Lock),
                "unlock" => session(SessionKind::Unlock),
                "idle_start" => session(SessionKind::IdleStart),
                "idle_end" => session(SessionKind::IdleEnd),
                "foreground" => {
                    let process = line
                        .process
                        .as_deref()
                        .filter(|p| !p.trim().is_empty())
                        .ok_or_else(|| {
                            err(
                                n,
                                "field \"process\": required for a foreground line".into(),
                            )
                        })?;
                    // Keep the file name only, as a live probe would.
                    let name = process
                        .rsplit(['/', '\\'])
                        .next()
                        .unwrap_or(process)
                        .to_owned();
                    Observation::Apps {
                        at_ms,
                        account: user.to_owned(),
                        basis: AppsBasis::Foreground,
                        apps: vec![App {
                            name,
                            title: line.title.clone(),
                        }],
                    }
                }
                other => {
                    return Err(err(
                        n,
                        format!(
                            "field \"type\": {other:?} is not one of logon, logoff, lock, unlock, idle_start, idle_end, foreground, boot, shutdown"
                        ),
                    ));
                }
            };
            pending.push_back(obs);
        }
        let Some(start_ms) = first_ms.filter(|_| !pending.is_empty()) else {
            return Err(err(0, "the script has no events".into()));
        };
        Ok(ReplayProbe {
            pending,
            span: ScriptSpan {
                start_ms,
                end_ms: last,
                boots,
                shuts_down,
            },
        })
    }
}

impl Probe for ReplayProbe {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sessions: true,
            lock: true,
            idle: true,
            foreground: true,
            processes: false,
            notes: vec!["replaying a script in virtual time".into()],
        }
    }

    fn poll(&mut self, now_ms: i64) -> Result<Vec<Observation>, ProbeError> {
        let mut out = Vec::new();
        while let Some(o) = self.pending.pop_front() {
            if o.at_ms() > now_ms {
                self.pending.push_front(o);
                break;
            }
            out.push(o);
        }
        Ok(out)
    }

    fn script(&self) -> Option<ScriptSpan> {
        Some(self.span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: &str = r#"
# a short morning
{"at":"2026-11-24T08:41:00+08:00","type":"logon","user":"zhangsan"}
{"at":"2026-11-24T09:00:00+08:00","type":"foreground","user":"zhangsan","process":"C:\\Program Files\\Tencent\\WeChat.exe","title":"chat"}
{"at":"2026-11-24T12:00:00+08:00","type":"lock","user":"zhangsan"}
"#;

    #[test]
    fn plays_observations_up_to_the_virtual_now() {
        let mut p = ReplayProbe::parse("day.jsonl", DAY).unwrap();
        let start = p.script().unwrap().start_ms;
        assert_eq!(
            start,
            "2026-11-24T00:41:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond()
        );
        assert_eq!(p.poll(start - 1).unwrap(), vec![]);
        assert_eq!(p.poll(start).unwrap().len(), 1);
        let next = p.poll(p.script().unwrap().end_ms).unwrap();
        assert_eq!(next.len(), 2);
        match &next[0] {
            Observation::Apps { apps, .. } => assert_eq!(apps[0].name, "WeChat.exe"),
            other => panic!("expected apps, got {other:?}"),
        }
        assert!(p.poll(i64::MAX).unwrap().is_empty());
    }

    #[test]
    fn boot_and_shutdown_lines_set_the_span_and_how_it_begins_and_ends() {
        let text = r#"
{"at":"2026-11-24T08:00:00+08:00","type":"boot"}
{"at":"2026-11-24T08:41:00+08:00","type":"logon","user":"zhangsan"}
{"at":"2026-11-24T17:24:00+08:00","type":"logoff","user":"zhangsan"}
{"at":"2026-11-24T18:00:00+08:00","type":"shutdown"}
"#;
        let p = ReplayProbe::parse("day.jsonl", text).unwrap();
        let ms = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        assert_eq!(
            p.script(),
            Some(ScriptSpan {
                start_ms: ms("2026-11-24T00:00:00Z"),
                end_ms: ms("2026-11-24T10:00:00Z"),
                boots: true,
                shuts_down: true,
            })
        );
        assert_eq!(p.pending.len(), 2, "boot and shutdown are not observations");
        let plain = ReplayProbe::parse("day.jsonl", DAY)
            .unwrap()
            .script()
            .unwrap();
        assert!(!plain.boots && !plain.shuts_down);
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let cases = [
            (
                r#"{"at":"yesterday","type":"logon","user":"a"}"#,
                "line 1",
                "\"at\"",
            ),
            (
                r#"{"at":"2026-11-24T08:00:00+08:00","type":"dance","user":"a"}"#,
                "line 1",
                "\"type\"",
            ),
            (
                r#"{"at":"2026-11-24T08:00:00+08:00","type":"foreground","user":"a"}"#,
                "line 1",
                "\"process\"",
            ),
            (
                "\n{\"at\":\"2026-11-24T08:00:00+08:00\",\"type\":\"logon\"}",
                "line 2",
                "user",
            ),
            (
                "{\"at\":\"2026-11-24T09:00:00+08:00\",\"type\":\"logon\",\"user\":\"a\"}\n{\"at\":\"2026-11-24T08:00:00+08:00\",\"type\":\"lock\",\"user\":\"a\"}",
                "line 2",
                "before the previous",
            ),
            (
                "{\"at\":\"2026-11-24T09:00:00+08:00\",\"type\":\"logon\",\"user\":\"a\"}\n{\"at\":\"2026-11-24T09:00:00+08:00\",\"type\":\"boot\"}\n{\"at\":\"2026-11-24T10:00:00+08:00\",\"type\":\"lock\",\"user\":\"a\"}",
                "line 2",
                "boot may only be the first line",
            ),
            (
                "{\"at\":\"2026-11-24T09:00:00+08:00\",\"type\":\"boot\"}",
                "line 0",
                "no events",
            ),
        ];
        for (text, line, field) in cases {
            let e = ReplayProbe::parse("day.jsonl", text)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("day.jsonl: ") && e.contains(line) && e.contains(field),
                "{e}"
            );
        }
    }
}

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
//! `type` is one of logon, logoff, lock, unlock, idle_start, idle_end, foreground.
//! Lines must be in time order. Every problem names the file, the line and the field.

use super::{App, AppsBasis, Capabilities, Observation, Probe, ProbeError};
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
    user: String,
    process: Option<String>,
    title: Option<String>,
}

/// Plays a parsed script.
#[derive(Debug)]
pub struct ReplayProbe {
    pending: VecDeque<Observation>,
    start_ms: i64,
    end_ms: i64,
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
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
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
            if line.user.trim().is_empty() {
                return Err(err(n, "field \"user\": is empty".into()));
            }
            let session = |kind| Observation::Session {
                at_ms,
                account: line.user.clone(),
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
                        account: line.user.clone(),
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
                            "field \"type\": {other:?} is not one of logon, logoff, lock, unlock, idle_start, idle_end, foreground"
                        ),
                    ));
                }
            };
            pending.push_back(obs);
        }
        let (Some(first), Some(last)) = (pending.front(), pending.back()) else {
            return Err(err(0, "the script has no events".into()));
        };
        Ok(ReplayProbe {
            start_ms: first.at_ms(),
            end_ms: last.at_ms(),
            pending,
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

    fn start_ms(&self) -> Option<i64> {
        Some(self.start_ms)
    }

    fn end_ms(&self) -> Option<i64> {
        Some(self.end_ms)
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
        let start = p.start_ms().unwrap();
        assert_eq!(
            start,
            "2026-11-24T00:41:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond()
        );
        assert_eq!(p.poll(start - 1).unwrap(), vec![]);
        assert_eq!(p.poll(start).unwrap().len(), 1);
        let next = p.poll(p.end_ms().unwrap()).unwrap();
        assert_eq!(next.len(), 2);
        match &next[0] {
            Observation::Apps { apps, .. } => assert_eq!(apps[0].name, "WeChat.exe"),
            other => panic!("expected apps, got {other:?}"),
        }
        assert!(p.poll(i64::MAX).unwrap().is_empty());
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

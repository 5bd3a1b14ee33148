//! Daily messages: to each person their anomalies of the day (late, early,
//! absent, unknown, a missing checkpoint) with the way to appeal; to each
//! department head the department's digest and the requests waiting for them; to
//! officers the day's integrity events; to each chat-group robot the office's (or
//! one department's) digest. By e-mail over SMTP and by DingTalk, WeCom or plain
//! JSON webhooks (`[notify]`).
//!
//! ```text
//!   compose(date) --each message keyed--> outbox (store) --claim due--> send
//!                                           ^   sent: never again         |
//!                                           \--- failed: next try later --/
//! ```
//!
//! What must stay true: a message is composed under a key (date, recipient,
//! channel) and stored once, so composing again (a restart, a second collector,
//! `notify daily` by hand) never sends it twice; a failed send is retried with a
//! growing delay and stays visible (`notify list`, the system page) until sent.
//! Unknown is never called absent, here either.

pub mod transport;

use crate::attendance::{Person, Status};
use crate::config::NotifyConfig;
use crate::reports::corrections::ReportDay;
use crate::requests::service::Requests;
use crate::store::concerns::*;
use crate::users::{Role, User};
use crate::verdicts::{Detail, Rules};
use jiff::civil::{Date, Time};
use jiff::{Timestamp, ToSpan};
use serde::Serialize;
use std::collections::BTreeMap;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outgoing {
    /// `date/audience/who/channel`: the same message always has the same key.
    pub key: String,
    pub date: Date,
    /// `email` or `webhook:N` (the N-th `[[notify.webhook]]`, from 0).
    pub channel: String,
    /// The e-mail address, or the webhook's URL without its query.
    pub recipient: String,
    pub subject: String,
    /// Markdown-light text: lines, `- ` items, a link on its own line.
    pub body: String,
}

/// A stored message and how sending it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    #[serde(flatten)]
    pub outgoing: Outgoing,
    pub created_ms: i64,
    pub sent_ms: Option<i64>,
    pub attempts: u32,
    pub next_ms: i64,
    pub last_error: String,
}

/// A local time `HH:MM`.
pub fn parse_time(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

/// The day whose messages `serve` sends at `now`: the previous working day, on
/// a working day once it is past `daily_at`; nothing on rest days or before.
pub fn due_date(rules: &Rules, config: &NotifyConfig, now: Timestamp) -> Option<Date> {
    let local = rules.settings.time_zone.to_datetime(now);
    let today = local.date();
    if local.time() < parse_time(&config.daily_at)? || !rules.calendar.day_kind(today).is_working()
    {
        return None;
    }
    let mut d = today.yesterday().ok()?;
    for _ in 0..30 {
        if rules.calendar.day_kind(d).is_working() {
            return Some(d);
        }
        d = d.yesterday().ok()?;
    }
    None
}

/// How long after the `attempts`-th failure the next try comes: 1 minute,
/// doubling, at most an hour, with jitter.
pub fn retry_delay(attempts: u32) -> std::time::Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_secs(60))
        .with_max_delay(std::time::Duration::from_secs(3600))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
        .unwrap_or(std::time::Duration::from_secs(3600))
}

/// The words of the messages in one language.
struct Words {
    zh: bool,
}

impl Words {
    fn pick<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        if self.zh { zh } else { en }
    }

    /// A day's anomalies in words; empty when there are none.
    fn anomalies(&self, d: &ReportDay) -> Vec<String> {
        let v = &d.verdict;
        let mut out = Vec::new();
        match v.status {
            Status::Absent => out.push(
                self.pick("缺勤（有电脑记录为证）", "absent (the PCs show it)")
                    .to_owned(),
            ),
            Status::Unknown if v.day_kind.is_working() && !v.provisional => out.push(
                self.pick(
                    "无法判定：电脑数据不足（不计为缺勤）",
                    "unknown: not enough evidence from the PCs (not counted as absent)",
                )
                .to_owned(),
            ),
            _ => {}
        }
        if v.late_minutes > 0 {
            out.push(if self.zh {
                format!("迟到 {} 分钟", v.late_minutes)
            } else {
                format!("late {} min", v.late_minutes)
            });
        }
        if v.early_minutes > 0 {
            out.push(if self.zh {
                format!("早退 {} 分钟", v.early_minutes)
            } else {
                format!("left {} min early", v.early_minutes)
            });
        }
        if v.missing_checkpoints > 0 {
            out.push(if self.zh {
                format!("缺卡 {} 次", v.missing_checkpoints)
            } else {
                format!("{} missing checkpoint(s)", v.missing_checkpoints)
            });
        }
        out
    }
}

/// Counts of a set of days for a digest.
#[derive(Debug, Default)]
struct Counts {
    people: u32,
    present: u32,
    late: u32,
    early: u32,
    absent: u32,
    unknown: u32,
    leave: u32,
}

impl Counts {
    fn of<'a>(days: impl Iterator<Item = &'a ReportDay>) -> Counts {
        let mut c = Counts::default();
        for d in days {
            let v = &d.verdict;
            c.people += 1;
            match v.status {
                Status::Present => c.present += 1,
                Status::Absent => c.absent += 1,
                Status::Unknown => c.unknown += 1,
                Status::Leave | Status::Field => c.leave += 1,
                _ => {}
            }
            c.late += u32::from(v.late_minutes > 0);
            c.early += u32::from(v.early_minutes > 0);
        }
        c
    }

    fn line(&self, w: &Words) -> String {
        if w.zh {
            format!(
                "应到 {} 人：出勤 {}，迟到 {}，早退 {}，缺勤 {}，请假/外勤 {}，无法判定 {}",
                self.people,
                self.present,
                self.late,
                self.early,
                self.absent,
                self.leave,
                self.unknown
            )
        } else {
            format!(
                "{} people: {} present, {} late, {} early, {} absent, {} on leave or field work, {} unknown",
                self.people,
                self.present,
                self.late,
                self.early,
                self.absent,
                self.leave,
                self.unknown
            )
        }
    }
}

/// Everything the day's messages are made from.
pub struct Composer<'a> {
    pub store: &'a dyn Stores,
    pub rules: &'a Rules,
    pub config: &'a NotifyConfig,
    pub requests: &'a crate::config::RequestsConfig,
    /// Days back an appeal may be filed, said in the person's message.
    pub appeal_days: u32,
}

impl Composer<'_> {
    fn link(&self, path: &str) -> Option<String> {
        (!self.config.base_url.is_empty())
            .then(|| format!("{}{path}", self.config.base_url.trim_end_matches('/')))
    }

    /// The day's messages for every channel configured.
    pub fn compose(&self, date: Date, now: Timestamp) -> anyhow::Result<Vec<Outgoing>> {
        let w = Words {
            zh: self.config.language != "en",
        };
        let staff = self.store.staff()?;
        let days = crate::reports::summary::load_days(
            self.store,
            self.rules,
            date,
            date,
            &staff,
            Detail::Full,
            now,
        )?;
        let by_id: BTreeMap<&str, &Person> =
            staff.iter().map(|p| (p.employee_id.as_str(), p)).collect();
        let users = self.store.users()?;
        let email_of = |u: &User| {
            u.employee_id
                .as_deref()
                .and_then(|id| by_id.get(id))
                .map(|p| p.email.clone())
                .filter(|e| !e.is_empty())
        };
        let mut out = Vec::new();
        let mut push = |audience: &str,
                        who: &str,
                        channel: String,
                        recipient: String,
                        subject: String,
                        body: Vec<String>| {
            out.push(Outgoing {
                key: format!("{date}/{audience}/{who}/{channel}"),
                date,
                channel,
                recipient,
                subject,
                body: body.join("\n"),
            });
        };
        let month = date.strftime("%Y-%m").to_string();
        // Each person's language: their account's (chosen on the pages), else
        // the office's.
        let langs = self.store.user_langs()?;
        let words_of = |u: &User| Words {
            zh: langs.get(&u.id).map_or(w.zh, |l| l != "en"),
        };
        let words_of_person = |id: &str| {
            users
                .iter()
                .find(|u| u.employee_id.as_deref() == Some(id))
                .map_or(Words { zh: w.zh }, &words_of)
        };
        if self.config.email.is_some() {
            // Each person: their anomalies of the day.
            for d in &days {
                let Some(p) = by_id.get(d.verdict.employee_id.as_str()) else {
                    continue;
                };
                let w = words_of_person(&p.employee_id);
                let anomalies = w.anomalies(d);
                if p.email.is_empty() || anomalies.is_empty() {
                    continue;
                }
                let subject = if w.zh {
                    format!("考勤提醒：{date} {}", anomalies.join("，"))
                } else {
                    format!("Attendance {date}: {}", anomalies.join(", "))
                };
                let mut body = vec![if w.zh {
                    format!("{}（{}），您 {date} 的考勤记录：", p.name, p.employee_id)
                } else {
                    format!("{} ({}), your attendance on {date}:", p.name, p.employee_id)
                }];
                body.extend(anomalies.iter().map(|a| format!("- {a}")));
                body.push(if w.zh {
                    format!("如有异议，请在 {} 天内对这一天提出申诉，或补办请假、补卡申请：", self.appeal_days)
                } else {
                    format!("If this is wrong, appeal the day within {} days, or file a leave or missed-punch request:", self.appeal_days)
                });
                if let Some(l) = self.link(&format!(
                    "/person/{}?month={month}&day={date}",
                    p.employee_id
                )) {
                    body.push(l);
                }
                push(
                    "person",
                    &p.employee_id,
                    "email".into(),
                    p.email.clone(),
                    subject,
                    body,
                );
            }
            // Each department head: the department's digest and their inbox.
            let svc = Requests {
                store: self.store,
                rules: self.rules,
                config: self.requests,
            };
            for u in users.iter().filter(|u| u.role == Role::DeptHead) {
                let Some(email) = email_of(u) else { continue };
                let w = words_of(u);
                let inbox = svc.inbox(u).map_err(|e| anyhow::anyhow!("{e}"))?;
                for dept in &u.departments {
                    let mine: Vec<&ReportDay> = days
                        .iter()
                        .filter(|d| &d.verdict.department == dept)
                        .collect();
                    let subject = if w.zh {
                        format!("部门考勤日报 {dept} {date}")
                    } else {
                        format!("Department digest {dept} {date}")
                    };
                    let mut body = vec![Counts::of(mine.iter().copied()).line(&w)];
                    for d in &mine {
                        let a = w.anomalies(d);
                        if !a.is_empty() {
                            body.push(format!(
                                "- {} {}：{}",
                                d.verdict.name,
                                d.verdict.employee_id,
                                a.join(w.pick("，", ", "))
                            ));
                        }
                    }
                    let waiting: Vec<_> = inbox.iter().filter(|l| &l.department == dept).collect();
                    if !waiting.is_empty() {
                        body.push(if w.zh {
                            format!("待您审批的申请 {} 件：", waiting.len())
                        } else {
                            format!("{} request(s) wait for your decision:", waiting.len())
                        });
                        for l in &waiting {
                            body.push(format!(
                                "- #{} {} {} {}",
                                l.request.id,
                                l.name,
                                l.request.kind.as_str(),
                                l.request.reason
                            ));
                        }
                        if let Some(link) = self.link("/requests") {
                            body.push(link);
                        }
                    }
                    if let Some(link) = self.link(&format!("/summary?from={date}&to={date}")) {
                        body.push(link);
                    }
                    push(
                        "head",
                        &format!("{}:{dept}", u.username),
                        "email".into(),
                        email.clone(),
                        subject,
                        body,
                    );
                }
            }
            // Officers: the day's integrity events.
            let items = self.integrity(date, now)?;
            if !items.is_empty() {
                for u in users.iter().filter(|u| u.role == Role::Officer) {
                    let Some(email) = email_of(u) else { continue };
                    let w = words_of(u);
                    let subject = if w.zh {
                        format!("完整性事件 {date}：{} 件", items.len())
                    } else {
                        format!("Integrity events {date}: {}", items.len())
                    };
                    let mut body = vec![crate::integrity::counts(&items).join(" · ")];
                    body.extend(
                        items
                            .iter()
                            .take(50)
                            .map(|i| format!("- {} {} {}", i.hostname, i.kind, i.detail)),
                    );
                    if let Some(link) = self.link("/system") {
                        body.push(link);
                    }
                    push("officer", &u.username, "email".into(), email, subject, body);
                }
            }
        }
        // Chat-group robots: the office's or one department's digest.
        for (i, hook) in self.config.webhook.iter().enumerate() {
            let mine: Vec<&ReportDay> = days
                .iter()
                .filter(|d| {
                    hook.department
                        .as_ref()
                        .is_none_or(|x| &d.verdict.department == x)
                })
                .collect();
            let title = match &hook.department {
                Some(dept) => format!(
                    "{} {dept} {date}",
                    w.pick("部门考勤日报", "Department digest")
                ),
                None => format!("{} {date}", w.pick("考勤日报", "Attendance digest")),
            };
            let mut body = Vec::new();
            let mut depts: Vec<&str> = mine.iter().map(|d| d.verdict.department.as_str()).collect();
            depts.dedup();
            depts.sort();
            depts.dedup();
            for dept in depts {
                body.push(format!(
                    "{dept}：{}",
                    Counts::of(
                        mine.iter()
                            .copied()
                            .filter(|d| d.verdict.department == dept)
                    )
                    .line(&w)
                ));
            }
            if let Some(link) = self.link(&format!("/summary?from={date}&to={date}")) {
                body.push(link);
            }
            let recipient = hook.url.split('?').next().unwrap_or_default().to_owned();
            push(
                "group",
                &hook.department.clone().unwrap_or_else(|| "*".into()),
                format!("webhook:{i}"),
                recipient,
                title,
                body,
            );
        }
        Ok(out)
    }

    fn integrity(
        &self,
        date: Date,
        now: Timestamp,
    ) -> anyhow::Result<Vec<crate::integrity::IntegrityItem>> {
        let settings = &self.rules.settings;
        let at = |d: Date| {
            settings
                .time_zone
                .to_ambiguous_timestamp(d.to_datetime(settings.day_boundary))
                .compatible()
                .map(|t| t.as_millisecond())
        };
        Ok(crate::integrity::list(
            self.store,
            &crate::integrity::Query {
                from_ms: at(date)?,
                to_ms: at(date.saturating_add(1.day()))?,
                large_offset_ms: settings.large_offset_ms,
                silent_ms: i64::MAX,
                now_ms: now.as_millisecond(),
            },
        )?)
    }
}

/// What one delivery round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    /// (key, error) of each failure.
    pub failed: Vec<(String, String)>,
}

/// How long a claimed message is held by the sender that claimed it.
pub const CLAIM_MS: i64 = 5 * 60_000;

/// Sends the messages that are due (of `date` only, and without waiting for
/// their next try, when given), marking each sent or failed.
pub fn deliver(
    store: &dyn Stores,
    send: &dyn Fn(&Outgoing) -> Result<(), String>,
    date: Option<Date>,
    now: Timestamp,
) -> anyhow::Result<Delivered> {
    let now_ms = now.as_millisecond();
    let mut done = Delivered::default();
    // By hand (a date): every unsent message of the day at once, waiting or not.
    let limit = if date.is_some() { 1_000_000 } else { 100 };
    loop {
        let batch = store.claim_notifications(now_ms, CLAIM_MS, limit, date)?;
        if batch.is_empty() {
            return Ok(done);
        }
        for n in batch {
            match send(&n.outgoing) {
                Ok(()) => {
                    store.notification_sent(&n.outgoing.key, now_ms)?;
                    done.sent += 1;
                }
                Err(e) => {
                    let attempts = n.attempts + 1;
                    let next = now_ms + retry_delay(attempts).as_millis() as i64;
                    tracing::warn!(key = %n.outgoing.key, attempts, error = %e, "A notification was not delivered; it is tried again later.");
                    store.notification_failed(&n.outgoing.key, &e, next)?;
                    done.failed.push((n.outgoing.key.clone(), e));
                }
            }
        }
        if date.is_some() {
            // By hand: one pass over the day, failures included, then stop.
            return Ok(done);
        }
    }
}

/// How often `serve` looks for messages to compose and send.
pub const SCHEDULE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// One round of `serve`'s schedule at `now`: composes the due day's messages if
/// nobody has yet, then sends what is due (retries included).
pub fn scheduled_round(
    store: &dyn Stores,
    rules: &Rules,
    config: &crate::config::Config,
    transports: &transport::Transports,
    now: Timestamp,
) -> anyhow::Result<Delivered> {
    if let Some(date) = due_date(rules, &config.notify, now)
        && !store.notify_composed(date)?
    {
        let composer = Composer {
            store,
            rules,
            config: &config.notify,
            requests: &config.requests,
            appeal_days: config.appeals.window_days,
        };
        let list = composer.compose(date, now)?;
        let new = store.enqueue_notifications(date, &list, now.as_millisecond())?;
        tracing::info!(%date, messages = list.len(), new, "Composed the day's notifications.");
    }
    deliver(
        store,
        &|o| transports.send(o, now.as_millisecond()),
        None,
        now,
    )
}

/// Runs [`scheduled_round`] every [`SCHEDULE_EVERY`] until `shutdown`, when
/// `[notify]` has a channel.
pub fn spawn_schedule(
    store: std::sync::Arc<dyn Stores>,
    rules: std::sync::Arc<crate::verdicts::LiveRules>,
    config: crate::config::Config,
    clock: crate::ingest::Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if config.notify.email.is_none() && config.notify.webhook.is_empty() {
        return Ok(None);
    }
    let transports = std::sync::Arc::new(transport::Transports::new(&config.notify)?);
    let config = std::sync::Arc::new(config);
    Ok(Some(tokio::spawn(async move {
        let mut periodic = crate::periodic::Periodic::new(SCHEDULE_EVERY, shutdown);
        while periodic.next().await {
            let (store, rules, config, transports, clock) = (
                store.clone(),
                rules.clone(),
                config.clone(),
                transports.clone(),
                clock.clone(),
            );
            let r = tokio::task::spawn_blocking(move || {
                let now =
                    Timestamp::from_millisecond(clock()).unwrap_or_else(|_| crate::clock::now());
                scheduled_round(&*store, &rules.current(), &config, &transports, now)
            })
            .await;
            match r {
                Ok(Ok(d)) if d.sent > 0 => tracing::info!(
                    sent = d.sent,
                    failed = d.failed.len(),
                    "Sent notifications."
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(
                    error = format!("{e:#}"),
                    "Notifications failed; trying again next round."
                ),
                Err(e) => tracing::warn!(error = %e, "The notification round panicked."),
            }
        }
    })))
}

#[cfg(test)]
mod tests;

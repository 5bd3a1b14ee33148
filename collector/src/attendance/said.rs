//! What a verdict says, kept as a stable code with its values rather than as text,
//! so that each reader gets it in their own language and programs get the code.
//!
//! A line of evidence or a sentence of a verdict's reasons is a [`Said`]; its
//! JSON form is `{"code": "...", ...values}`, and [`Said::say`] puts it in words.
//! Times are already local (`09:01:02`, or with the date when on another day).

use serde::{Deserialize, Serialize};

use super::calendar::DayKind;
use super::signal::{SessionKind, StartReason, StopReason};
use super::{CheckpointKind, ExemptionKind, Status};
use crate::i18n::{self, Lang};

/// One statement of a verdict. The variant names (snake case) are the codes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Said {
    // --- What a PC reported. ---
    /// An account's session changed.
    Session { account: String, kind: SessionKind },
    /// The agent started.
    AgentStart {
        reason: StartReason,
        previous_seen: Option<String>,
    },
    /// The agent stopped.
    AgentStop { reason: StopReason },
    /// The agent dropped events.
    DataGap {
        from: String,
        to: String,
        dropped: u64,
    },
    /// The PC's clock was off by a large amount and its times were corrected.
    ClockOffset { offset_ms: i64 },
    /// An account was seen on the PC for the first time.
    FirstSeen { account: String },
    /// An event was refused by the collector.
    Refused { account: String },
    /// The PC enrolled again.
    Reenrolled,
    /// The PC's clock was set while the agent ran.
    ClockJump { jump_ms: i64 },
    /// An account used an application of a category.
    ActiveUse { account: String, category: String },
    /// An approved missed-punch request.
    MissedPunch { note: String },

    // --- What the judgement made of it. ---
    /// The first presence of the day, and what it was.
    Arrival { by: Box<Said> },
    /// The last presence of the day, from when, and what it was.
    Departure { from: String, by: Box<Said> },
    /// Presence on a PC not listed as the person's.
    OtherPc,
    /// An exemption covering part of the day.
    Exempted {
        kind: ExemptionKind,
        from: String,
        to: String,
        note: String,
    },
    /// Approved overtime.
    OvertimeApproved {
        from: String,
        to: String,
        note: String,
    },
    /// Overtime counted.
    Overtime {
        day: OvertimeDay,
        from: String,
        to: String,
        minutes: u32,
        counted: u32,
    },
    /// A PC is not accounted for over a stretch, and why.
    Unaccounted {
        from: String,
        to: String,
        reasons: Vec<Said>,
    },
    /// A PC was switched off cleanly in office hours.
    CleanShutdown,
    /// A checkpoint without presence (缺卡).
    MissingCheckpoint {
        checkpoint: CheckpointKind,
        at: String,
    },
    /// A missing checkpoint not counted because a PC is not accounted for.
    MissingNotCounted {
        checkpoint: CheckpointKind,
        at: String,
        from: String,
        to: String,
        reasons: Vec<Said>,
    },
    /// Minutes late or early not charged because a PC is not accounted for.
    NotVerified {
        checkpoint: CheckpointKind,
        minutes: u32,
        from: String,
        to: String,
        reasons: Vec<Said>,
    },
    /// An officer corrected the day's status.
    Corrected {
        status: Status,
        who: String,
        why: String,
    },

    // --- Why a PC is not accounted for. ---
    /// Nothing was ever heard from the PC.
    NeverHeard,
    /// Nothing was heard from the PC before an instant.
    NotHeardBefore { at: String },
    /// Shut down, but the agent ran again before the next boot.
    ShutdownRanBeforeBoot { at: String, boot: String },
    /// Shut down and not started again yet.
    ShutdownNotStarted { at: String },
    /// Shut down, then started without a system boot.
    ShutdownNoBoot { at: String, next: String },
    /// The agent stopped without a shutdown.
    StoppedNoShutdown { at: String },
    /// The agent crashed.
    Crashed { from: String, to: String },
    /// The agent restarted without a recorded stop.
    RestartedNoStop { from: String, to: String },
    /// The PC sends no heartbeats.
    NoHeartbeats,
    /// Heartbeats stopped for a while.
    NoHeartbeat {
        from: String,
        to: String,
        every_s: u32,
    },
    /// Heartbeats stopped and have not come back yet.
    LastHeard { at: String, every_s: u32 },
    /// Accounts logged on but locked or idle.
    LockedOrIdle { accounts: Vec<String>, from: String },
    /// Whether anyone was logged on is unknown.
    LogonUnknown { from: String },

    // --- The verdict's reasons (one sentence each). ---
    /// Not a working day.
    NotWorkingDay { day: DayKind, name: Option<String> },
    /// Presence on a day off is evidence only.
    PresenceOnDayOff,
    /// The year's notice is not imported.
    ProvisionalCalendar { year: i16 },
    /// The day has not started.
    NotStarted,
    /// Present, with the day's counts.
    Present {
        first: String,
        last: String,
        late: u32,
        early: u32,
    },
    /// Lateness not charged because the PCs are not accounted for.
    LatenessUnverified { at: String, minutes: u32 },
    /// An early departure not charged because the PCs are not accounted for.
    EarlinessUnverified { at: String, minutes: u32 },
    /// Not present, and every checkpoint is exempted.
    AllExempted { kind: ExemptionKind },
    /// Nothing is due yet.
    NothingDue,
    /// No PC ever reported the person.
    NoPcEver,
    /// Absent, with every PC accounted for.
    Absent {
        pcs: Vec<String>,
        hours: Option<String>,
    },
    /// Not present, but some PCs are not accounted for.
    NotAllAccounted { pcs: Vec<String> },
    /// Half a day of 旷工 for an absence partly exempted.
    AbsentPartly,
    /// A day of 旷工.
    AbsentWhole,
    /// Half a day of 旷工 for minutes past the office's limit.
    PastLimit {
        checkpoint: CheckpointKind,
        minutes: u32,
        at: String,
        limit: u32,
    },
    /// An officer corrected the status.
    CorrectedFrom {
        from: Status,
        to: Status,
        who: String,
        why: String,
    },
}

/// The kind of day overtime falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OvertimeDay {
    Workday,
    RestDay,
    Holiday,
}

fn zh(lang: Lang) -> bool {
    lang == Lang::Zh
}

fn session(lang: Lang, kind: SessionKind) -> &'static str {
    if !zh(lang) {
        return kind.describe();
    }
    match kind {
        SessionKind::Logon => "登录",
        SessionKind::Logoff => "注销",
        SessionKind::Lock => "锁定屏幕",
        SessionKind::Unlock => "解锁屏幕",
        SessionKind::IdleStart => "进入空闲",
        SessionKind::IdleEnd => "结束空闲",
    }
}

fn start(lang: Lang, r: StartReason) -> &'static str {
    if !zh(lang) {
        return r.describe();
    }
    match r {
        StartReason::SystemBoot => "开机时代理程序启动",
        StartReason::ServiceStart => "代理服务被手动启动",
        StartReason::CrashRestart => "代理程序崩溃后重启",
        StartReason::Replay => "代理程序开始回放",
    }
}

fn stop(lang: Lang, r: StopReason) -> &'static str {
    if !zh(lang) {
        return r.describe();
    }
    match r {
        StopReason::SystemShutdown => "关机时代理程序停止",
        StopReason::ServiceStop => "代理服务被停止（非关机）",
        StopReason::Replay => "代理程序结束回放",
    }
}

/// "arrival" or "departure" (签到 or 签退).
fn checkpoint(lang: Lang, k: CheckpointKind) -> &'static str {
    match (zh(lang), k) {
        (false, CheckpointKind::Arrival) => "arrival",
        (false, CheckpointKind::Departure) => "departure",
        (true, CheckpointKind::Arrival) => "上班",
        (true, CheckpointKind::Departure) => "下班",
    }
}

/// An exemption kind in words (English keeps the stored name).
fn exemption(lang: Lang, k: ExemptionKind) -> &'static str {
    if !zh(lang) {
        return k.as_str();
    }
    match k {
        ExemptionKind::Leave => "请假",
        ExemptionKind::Field => "外勤",
        ExemptionKind::BusinessTrip => "出差",
        ExemptionKind::ArrivalPunch => "上班补卡",
        ExemptionKind::DeparturePunch => "下班补卡",
        ExemptionKind::Overtime => "加班",
    }
}

/// A status in words (English keeps the stored name).
fn status(lang: Lang, s: Status) -> String {
    if zh(lang) {
        i18n::t(
            lang,
            &format!("status_{}", crate::reports::corrections::status_name(s)),
        )
    } else {
        crate::reports::corrections::status_name(s).to_owned()
    }
}

/// A day's kind in words (English keeps the stored name).
fn day_kind(lang: Lang, d: DayKind) -> String {
    if zh(lang) {
        i18n::t(lang, &format!("day_{}", d.as_str()))
    } else {
        d.as_str().to_owned()
    }
}

fn list(lang: Lang, items: &[String]) -> String {
    items.join(if zh(lang) { "、" } else { ", " })
}

fn reasons(lang: Lang, reasons: &[Said]) -> String {
    if reasons.is_empty() {
        return if zh(lang) {
            "无任何依据"
        } else {
            "no evidence"
        }
        .into();
    }
    let all: Vec<String> = reasons.iter().map(|r| r.say(lang)).collect();
    all.join(if zh(lang) { "；" } else { "; " })
}

/// Seconds and milliseconds of `ms`, unsigned.
fn seconds(ms: i64) -> String {
    let ms = ms.unsigned_abs();
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

impl Said {
    /// The code, as in the JSON form.
    pub fn code(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }

    /// In words, in `lang`.
    pub fn say(&self, lang: Lang) -> String {
        let z = zh(lang);
        match self {
            Said::Session { account, kind } => {
                if z {
                    format!("{account} {}", session(lang, *kind))
                } else {
                    format!("{account} {}", kind.describe())
                }
            }
            Said::AgentStart {
                reason,
                previous_seen,
            } => {
                let prev = match (previous_seen, z) {
                    (Some(p), false) => format!(" (previously alive until {p})"),
                    (Some(p), true) => format!("（此前最后在线 {p}）"),
                    (None, _) => String::new(),
                };
                format!("{}{prev}", start(lang, *reason))
            }
            Said::AgentStop { reason } => stop(lang, *reason).into(),
            Said::DataGap { from, to, dropped } => {
                if z {
                    format!("数据缺口 {from} 至 {to}：丢弃 {dropped} 条事件")
                } else {
                    format!("data gap from {from} to {to}: {dropped} events dropped")
                }
            }
            Said::ClockOffset { offset_ms } => {
                let s = seconds(*offset_ms);
                match (z, *offset_ms > 0) {
                    (false, ahead) => format!(
                        "PC clock was {s} s {} of the collector; its times were corrected",
                        if ahead { "ahead" } else { "behind" }
                    ),
                    (true, ahead) => format!(
                        "电脑时钟比采集服务器{} {s} 秒，其时间已校正",
                        if ahead { "快" } else { "慢" }
                    ),
                }
            }
            Said::FirstSeen { account } => {
                if z {
                    format!("首次在此电脑上看到 {account}（此电脑的新账户）")
                } else {
                    format!("{account} first seen on this PC (an account new to it)")
                }
            }
            Said::Refused { account } => {
                if z {
                    format!(
                        "{account} 在此时刻的一条事件被采集服务器拒收，不计入（见 `kaoqin-collector integrity`）"
                    )
                } else {
                    format!(
                        "an event of {account} claimed for this instant was refused by the collector and is not counted (see `kaoqin-collector integrity`)"
                    )
                }
            }
            Said::Reenrolled => if z {
                "此电脑重新注册（重装系统，或其身份被复制到另一台电脑；见 `kaoqin-collector integrity`）"
            } else {
                "this PC was enrolled again (a reinstall, or its identity copied to another machine; see `kaoqin-collector integrity`)"
            }
            .into(),
            Said::ClockJump { jump_ms } => {
                let s = jump_ms.unsigned_abs() / 1000;
                match (z, *jump_ms < 0) {
                    (false, back) => format!(
                        "PC clock was set {} by {s} s while the agent ran; times on both sides were corrected",
                        if back { "back" } else { "forward" }
                    ),
                    (true, back) => format!(
                        "代理程序运行时电脑时钟被{}调 {s} 秒，前后的时间均已校正",
                        if back { "回" } else { "前" }
                    ),
                }
            }
            Said::ActiveUse { account, category } => {
                if z {
                    format!(
                        "{account} 正在使用（{}）",
                        i18n::category(lang, category)
                    )
                } else {
                    format!("{account} active use ({category})")
                }
            }
            Said::MissedPunch { note } => {
                if z {
                    format!("补卡：{note}")
                } else {
                    format!("missed punch: {note}")
                }
            }
            Said::Arrival { by } => {
                if z {
                    format!("上班：当天首次在岗（{}）", by.say(lang))
                } else {
                    format!("arrival: first presence of the day ({})", by.say(lang))
                }
            }
            Said::Departure { from, by } => {
                if z {
                    format!("下班：当天最后在岗（自 {from}，{}）", by.say(lang))
                } else {
                    format!(
                        "departure: last presence of the day (from {from}, {})",
                        by.say(lang)
                    )
                }
            }
            Said::OtherPc => if z {
                "在名册所列本人电脑以外的电脑上在岗（照常计入：电脑可以共用）"
            } else {
                "presence on a PC that is not one of the person's own in the staff directory (it counts: PCs may be shared)"
            }
            .into(),
            Said::Exempted {
                kind,
                from,
                to,
                note,
            } => {
                if z {
                    format!("{} {from} 至 {to}：{note}", exemption(lang, *kind))
                } else {
                    format!("{} from {from} to {to}: {note}", kind.as_str())
                }
            }
            Said::OvertimeApproved { from, to, note } => {
                if z {
                    format!("已批准加班 {from} 至 {to}：{note}")
                } else {
                    format!("overtime approved from {from} to {to}: {note}")
                }
            }
            Said::Overtime {
                day,
                from,
                to,
                minutes,
                counted,
            } => {
                let (en, zh_) = match day {
                    OvertimeDay::Workday => ("workday", "工作日"),
                    OvertimeDay::RestDay => ("rest day", "休息日"),
                    OvertimeDay::Holiday => ("statutory holiday", "法定节假日"),
                };
                if z {
                    format!("加班（{zh_}）{from} 至 {to}：{minutes} 分钟，计 {counted} 分钟")
                } else {
                    format!(
                        "overtime ({en}) from {from} to {to}: {minutes} min, {counted} min counted"
                    )
                }
            }
            Said::Unaccounted {
                from,
                to,
                reasons: r,
            } => {
                if z {
                    format!("{from} 至 {to} 无法核实：{}", reasons(lang, r))
                } else {
                    format!("not accounted for from {from} to {to}: {}", reasons(lang, r))
                }
            }
            Said::CleanShutdown => if z {
                "办公时间内关机：正常关机，下次随开机启动"
            } else {
                "switched off in office hours: clean shutdown, next start at system boot"
            }
            .into(),
            Said::MissingCheckpoint { checkpoint: k, at } => {
                if z {
                    format!("缺卡：{at} 的{}打卡时间没有在岗记录", checkpoint(lang, *k))
                } else {
                    format!(
                        "missing checkpoint: no presence for the {} at {at}",
                        checkpoint(lang, *k)
                    )
                }
            }
            Said::MissingNotCounted {
                checkpoint: k,
                at,
                from,
                to,
                reasons: r,
            } => {
                if z {
                    format!(
                        "{at} 的{}缺卡不计：{from} 至 {to} 无法核实：{}",
                        checkpoint(lang, *k),
                        reasons(lang, r)
                    )
                } else {
                    format!(
                        "missing {} at {at} not counted: not accounted for from {from} to {to}: {}",
                        checkpoint(lang, *k),
                        reasons(lang, r)
                    )
                }
            }
            Said::NotVerified {
                checkpoint: k,
                minutes,
                from,
                to,
                reasons: r,
            } => {
                if z {
                    let charge = match k {
                        CheckpointKind::Arrival => "迟到",
                        CheckpointKind::Departure => "早退",
                    };
                    format!(
                        "{charge}无法核实，{minutes} 分钟不计：{from} 至 {to} 无法核实：{}",
                        reasons(lang, r)
                    )
                } else {
                    let charge = match k {
                        CheckpointKind::Arrival => "late",
                        CheckpointKind::Departure => "early",
                    };
                    format!(
                        "{} not verified, {minutes} min {charge} not charged: not accounted for from {from} to {to}: {}",
                        checkpoint(lang, *k),
                        reasons(lang, r)
                    )
                }
            }
            Said::Corrected { status: s, who, why } => {
                if z {
                    format!("{who} 更正为{}：{why}", status(lang, *s))
                } else {
                    format!("corrected to {} by {who}: {why}", status(lang, *s))
                }
            }
            Said::NeverHeard => if z {
                "从未收到此电脑的任何消息"
            } else {
                "nothing ever heard from this PC"
            }
            .into(),
            Said::NotHeardBefore { at } => {
                if z {
                    format!("{at} 之前未收到此电脑的任何消息")
                } else {
                    format!("nothing heard from this PC before {at}")
                }
            }
            Said::ShutdownRanBeforeBoot { at, boot } => {
                if z {
                    format!("{at} 关机；但在 {boot} 开机之前代理程序又运行过")
                } else {
                    format!("shut down at {at}; the agent ran again before the boot at {boot}")
                }
            }
            Said::ShutdownNotStarted { at } => {
                if z {
                    format!("{at} 关机，尚未再次启动")
                } else {
                    format!("shut down at {at} and not started again yet")
                }
            }
            Said::ShutdownNoBoot { at, next } => {
                if z {
                    format!("{at} 关机，但 {next} 再次启动时并非开机")
                } else {
                    format!("shut down at {at} but next started at {next} without a system boot")
                }
            }
            Said::StoppedNoShutdown { at } => {
                if z {
                    format!("代理程序于 {at} 停止，但并未关机")
                } else {
                    format!("agent stopped at {at} without a shutdown")
                }
            }
            Said::Crashed { from, to } => {
                if z {
                    format!("代理程序在 {from} 至 {to} 之间崩溃")
                } else {
                    format!("agent crashed between {from} and {to}")
                }
            }
            Said::RestartedNoStop { from, to } => {
                if z {
                    format!("代理程序在 {from} 至 {to} 之间重启，且没有停止记录")
                } else {
                    format!("agent restarted without a recorded stop between {from} and {to}")
                }
            }
            Said::NoHeartbeats => if z {
                "此电脑没有心跳，无法证明其代理程序在运行"
            } else {
                "no heartbeats from this PC, so its agent cannot be shown alive"
            }
            .into(),
            Said::NoHeartbeat { from, to, every_s } => {
                if z {
                    format!("{from} 至 {to} 没有心跳（应每 {every_s} 秒一次）")
                } else {
                    format!("no heartbeat from {from} to {to} (expected every {every_s} s)")
                }
            }
            Said::LastHeard { at, every_s } => {
                if z {
                    format!("最后一次收到消息在 {at}（应每 {every_s} 秒一次）")
                } else {
                    format!("last heard from at {at} (expected every {every_s} s)")
                }
            }
            Said::LockedOrIdle { accounts, from } => {
                if z {
                    format!("自 {from} 起 {} 已登录（屏幕锁定或空闲）", list(lang, accounts))
                } else {
                    format!(
                        "{} logged on (screen locked or idle) from {from}",
                        list(lang, accounts)
                    )
                }
            }
            Said::LogonUnknown { from } => {
                if z {
                    format!("自 {from} 起无法确定本人是否登录（启动以来没有心跳）")
                } else {
                    format!(
                        "whether the person was logged on is unknown from {from} (no heartbeat since start)"
                    )
                }
            }
            Said::NotWorkingDay { day, name } => {
                let name = name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
                if z {
                    format!("{}{name}：非工作日。", day_kind(lang, *day))
                } else {
                    format!("{}{name}: not a working day.", day.as_str())
                }
            }
            Said::PresenceOnDayOff => if z {
                "当天的在岗情况仅作为依据记录。"
            } else {
                "Presence on it is recorded as evidence only."
            }
            .into(),
            Said::ProvisionalCalendar { year } => {
                if z {
                    format!(
                        "日历为暂定：未导入国务院 {year} 年放假安排通知，只知道法定节假日（不含调休补班和连休）；导入后将重新判定。"
                    )
                } else {
                    format!(
                        "Provisional calendar: the State Council notice for {year} is not imported, so only the statutory holidays are known (no make-up or bridged days); the day is judged again when it is."
                    )
                }
            }
            Said::NotStarted => if z {
                "这一天尚未开始。"
            } else {
                "The day has not started yet."
            }
            .into(),
            Said::Present {
                first,
                last,
                late,
                early,
            } => {
                if z {
                    format!(
                        "出勤：首次在岗 {first}，最后在岗 {last}；迟到 {late} 分钟，早退 {early} 分钟。"
                    )
                } else {
                    format!(
                        "Present: first presence {first}, last {last}; late {late} min, early {early} min."
                    )
                }
            }
            Said::LatenessUnverified { at, minutes } => {
                if z {
                    format!("{at} 的迟到无法核实（{minutes} 分钟不计）：签到前各电脑的情况无法核实。")
                } else {
                    format!(
                        "Lateness at {at} not verified ({minutes} min not charged): the PCs are not accounted for before the arrival."
                    )
                }
            }
            Said::EarlinessUnverified { at, minutes } => {
                if z {
                    format!("{at} 的早退无法核实（{minutes} 分钟不计）：离开后各电脑的情况无法核实。")
                } else {
                    format!(
                        "Early departure at {at} not verified ({minutes} min not charged): the PCs are not accounted for after the departure."
                    )
                }
            }
            Said::AllExempted { kind } => {
                if z {
                    format!("不在岗；所有打卡时间均有豁免（{}）。", exemption(lang, *kind))
                } else {
                    format!(
                        "Not present; every checkpoint is covered by an exemption ({}).",
                        kind.as_str()
                    )
                }
            }
            Said::NothingDue => if z {
                "尚无在岗记录，也还没有到打卡时间。"
            } else {
                "No presence yet, and no checkpoint is due yet."
            }
            .into(),
            Said::NoPcEver => if z {
                "没有在岗记录，且从没有电脑报告过此人的账户：没有数据不等于缺勤。"
            } else {
                "No presence, and no PC has ever reported one of this person's accounts: no data is not evidence of absence."
            }
            .into(),
            Said::Absent { pcs, hours } => {
                let hours = hours.clone().unwrap_or_else(|| {
                    if z { "无" } else { "none" }.into()
                });
                if z {
                    format!(
                        "缺勤：工作日没有在岗记录，且此人的每台电脑（{}）在办公时间 {hours} 内直到现在都可核实。",
                        list(lang, pcs)
                    )
                } else {
                    format!(
                        "Absent: no presence on a working day, and every PC of the person ({}) is accounted for over the office hours {hours} up to now.",
                        list(lang, pcs)
                    )
                }
            }
            Said::NotAllAccounted { pcs } => {
                if z {
                    format!(
                        "没有在岗记录，但办公时间内并非每台电脑都可核实（{}）：没有数据不等于缺勤。",
                        list(lang, pcs)
                    )
                } else {
                    format!(
                        "No presence, but not every PC is accounted for over the office hours ({}): no data is not evidence of absence.",
                        list(lang, pcs)
                    )
                }
            }
            Said::AbsentPartly => if z {
                "工作日中未被豁免的部分缺勤：旷工半天。"
            } else {
                "absent for the part of a working day no exemption covers: half a day of absenteeism."
            }
            .into(),
            Said::AbsentWhole => if z {
                "工作日缺勤：旷工一天。"
            } else {
                "absent on a working day: one day of absenteeism."
            }
            .into(),
            Said::PastLimit {
                checkpoint: k,
                minutes,
                at,
                limit,
            } => {
                let late = *k == CheckpointKind::Arrival;
                if z {
                    format!(
                        "{at} {}{minutes} 分钟，超过 {limit} 分钟：旷工半天。",
                        if late { "迟到" } else { "早退" }
                    )
                } else {
                    format!(
                        "{} {minutes} min at {at}, more than {limit} min: half a day of absenteeism.",
                        if late { "late" } else { "early" }
                    )
                }
            }
            Said::CorrectedFrom { from, to, who, why } => {
                if z {
                    format!(
                        "已由 {who} 从{}更正为{}：{why}。",
                        status(lang, *from),
                        status(lang, *to)
                    )
                } else {
                    format!(
                        "Corrected from {} to {} by {who}: {why}.",
                        status(lang, *from),
                        status(lang, *to)
                    )
                }
            }
        }
    }
}

/// Sentences joined as a paragraph.
pub fn paragraph(sentences: &[Said], lang: Lang) -> String {
    let all: Vec<String> = sentences.iter().map(|s| s.say(lang)).collect();
    all.join(if zh(lang) { "" } else { " " })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_form_carries_the_code_and_the_values() {
        let s = Said::Arrival {
            by: Box::new(Said::Session {
                account: "zhangsan".into(),
                kind: SessionKind::Logon,
            }),
        };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["code"], "arrival");
        assert_eq!(json["by"]["code"], "session");
        assert_eq!(json["by"]["kind"], "logon");
        assert_eq!(s.code(), "arrival");
        let back: Said = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            s.say(Lang::En),
            "arrival: first presence of the day (zhangsan logged on)"
        );
        assert_eq!(s.say(Lang::Zh), "上班：当天首次在岗（zhangsan 登录）");
    }

    #[test]
    fn chinese_words_hold_no_english_beyond_names_and_commands() {
        let t = || "09:00:00".to_string();
        let every = [
            Said::AgentStart {
                reason: StartReason::CrashRestart,
                previous_seen: Some(t()),
            },
            Said::AgentStop {
                reason: StopReason::ServiceStop,
            },
            Said::ClockOffset { offset_ms: -2500 },
            Said::ClockJump { jump_ms: 3_600_000 },
            Said::OtherPc,
            Said::Unaccounted {
                from: t(),
                to: t(),
                reasons: vec![Said::NeverHeard, Said::NoHeartbeats],
            },
            Said::Unaccounted {
                from: t(),
                to: t(),
                reasons: vec![],
            },
            Said::CleanShutdown,
            Said::Exempted {
                kind: ExemptionKind::BusinessTrip,
                from: t(),
                to: t(),
                note: "".into(),
            },
            Said::Overtime {
                day: OvertimeDay::Holiday,
                from: t(),
                to: t(),
                minutes: 90,
                counted: 60,
            },
            Said::NotVerified {
                checkpoint: CheckpointKind::Departure,
                minutes: 5,
                from: t(),
                to: t(),
                reasons: vec![Said::LogonUnknown { from: t() }],
            },
            Said::Corrected {
                status: Status::Leave,
                who: "".into(),
                why: "".into(),
            },
            Said::NotWorkingDay {
                day: DayKind::MakeupWorkday,
                name: None,
            },
            Said::ProvisionalCalendar { year: 2027 },
            Said::AllExempted {
                kind: ExemptionKind::Field,
            },
            Said::Absent {
                pcs: vec![],
                hours: None,
            },
            Said::PastLimit {
                checkpoint: CheckpointKind::Arrival,
                minutes: 40,
                at: t(),
                limit: 30,
            },
            Said::CorrectedFrom {
                from: Status::Absent,
                to: Status::Present,
                who: "".into(),
                why: "".into(),
            },
        ];
        for s in every {
            let words = s
                .say(Lang::Zh)
                .replace("kaoqin-collector integrity", "")
                .replace("State Council", "");
            assert!(
                !words.chars().any(|c| c.is_ascii_alphabetic()),
                "{}: {words}",
                s.code()
            );
            assert!(!s.say(Lang::En).is_empty());
        }
    }
}

//! The pages' words in Chinese (the default) and English. A page picks the
//! language from `?lang=` (remembered in a cookie) or the cookie.

use std::collections::BTreeMap;

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// Parses `zh` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// `zh` or `en`, as accounts keep it.
    pub fn short(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The code used in cookies and `lang` attributes.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// (key, Chinese, English).
const MESSAGES: &[(&str, &str, &str)] = &[
    ("app", "考勤", "Attendance"),
    ("login", "登录", "Log in"),
    ("logout", "退出", "Log out"),
    ("username", "用户名", "Username"),
    ("password", "密码", "Password"),
    (
        "bad_login",
        "用户名或密码不正确。",
        "Wrong username or password.",
    ),
    (
        "too_many_logins",
        "该用户名登录尝试过多，请一分钟后再试。",
        "Too many login attempts for this username; try again in a minute.",
    ),
    ("change_password", "修改密码", "Change password"),
    (
        "must_change",
        "首次登录请先设置自己的密码。",
        "Please choose your own password before you continue.",
    ),
    ("current_password", "当前密码", "Current password"),
    (
        "new_password",
        "新密码（至少 8 位）",
        "New password (at least 8 characters)",
    ),
    ("confirm_password", "再次输入新密码", "New password again"),
    (
        "mismatch",
        "两次输入的新密码不一致。",
        "The two new passwords differ.",
    ),
    ("save", "保存", "Save"),
    ("summary", "部门汇总", "Summary"),
    ("my_attendance", "我的考勤", "My attendance"),
    ("my_pc", "我的电脑上报了什么", "What my PC reports"),
    ("appeals", "申诉", "Appeals"),
    (
        "system",
        "未对应账号与失联电脑",
        "Unmapped accounts and silent PCs",
    ),
    ("audit", "审计日志", "Audit log"),
    ("from", "开始", "From"),
    ("to", "结束", "To"),
    ("department", "部门", "Department"),
    ("all_departments", "全部部门", "All departments"),
    ("by_staff", "按人员", "By person"),
    ("by_department", "按部门", "By department"),
    ("show", "查询", "Show"),
    ("export", "导出", "Export"),
    ("employee_id", "工号", "Employee id"),
    ("name", "姓名", "Name"),
    ("people", "人数", "People"),
    ("workdays", "工作日", "Workdays"),
    ("present_days", "出勤天数", "Days present"),
    ("late", "迟到", "Late"),
    ("early", "早退", "Left early"),
    ("times", "次", "times"),
    ("minutes", "分钟", "min"),
    ("absent_days", "缺勤", "Absent"),
    ("leave_days", "请假", "Leave"),
    ("field_days", "外勤", "Field"),
    ("unknown_days", "无法判定", "Unknown"),
    ("unverified", "未核实", "unverified"),
    (
        "unverified_days",
        "迟到早退未核实（天）",
        "Late or early unverified (days)",
    ),
    (
        "unverified_hint",
        "电脑记录不足以证明这段时间人不在，不计入迟到或早退",
        "The PCs do not show the person away over this time, so it is not charged",
    ),
    ("not_charged", "不计", "not charged"),
    ("nonwork", "非工作用时（分钟）", "Non-work time (min)"),
    ("coverage", "监测覆盖率", "Coverage"),
    ("corrected", "已更正", "Corrected"),
    (
        "trend",
        "每周趋势：迟到与非工作用时（分钟）",
        "Weekly trend: lateness and non-work time (minutes)",
    ),
    ("week_of", "周起始", "Week of"),
    ("late_minutes", "迟到分钟", "Late minutes"),
    ("nonwork_minutes", "非工作分钟", "Non-work minutes"),
    ("month", "月份", "Month"),
    ("prev_month", "上月", "Previous month"),
    ("next_month", "下月", "Next month"),
    ("mon", "一", "Mon"),
    ("tue", "二", "Tue"),
    ("wed", "三", "Wed"),
    ("thu", "四", "Thu"),
    ("fri", "五", "Fri"),
    ("sat", "六", "Sat"),
    ("sun", "日", "Sun"),
    ("day_detail", "当日详情", "The day in detail"),
    ("arrival", "到岗", "Arrival"),
    ("departure", "离岗", "Departure"),
    ("evidence", "依据（时间线）", "Evidence (timeline)"),
    ("time", "时间", "Time"),
    ("pc", "电脑", "PC"),
    ("what", "事件", "What"),
    ("policy_note", "判定说明", "Why"),
    ("appeal_day", "对这一天提出申诉", "Appeal this day"),
    ("requested_status", "应为", "Should be"),
    ("reason", "理由", "Reason"),
    ("submit", "提交", "Submit"),
    (
        "appeal_filed",
        "申诉已提交，等待审核。",
        "Your appeal was filed and awaits a decision.",
    ),
    ("state", "状态", "State"),
    ("state_open", "待处理", "Open"),
    ("state_approved", "已批准", "Approved"),
    ("state_rejected", "已驳回", "Rejected"),
    ("comment", "意见", "Comment"),
    ("approve", "批准", "Approve"),
    ("reject", "驳回", "Reject"),
    ("decided_by", "处理人", "Decided by"),
    ("open_appeals", "待处理的申诉", "Open appeals"),
    ("decided_appeals", "已处理的申诉", "Decided appeals"),
    ("my_appeals", "我的申诉", "My appeals"),
    ("none", "无", "None"),
    ("date", "日期", "Date"),
    ("status", "结果", "Status"),
    (
        "unmapped",
        "未对应到人员的系统账号",
        "OS accounts that belong to nobody",
    ),
    ("account", "账号", "Account"),
    ("pcs", "电脑", "PCs"),
    ("last_seen", "最后出现", "Last seen"),
    (
        "silent",
        "已失联的电脑（超过 30 分钟无心跳）",
        "PCs whose agent is silent (no heartbeat for 30 minutes)",
    ),
    ("hostname", "主机名", "Hostname"),
    ("agent_id", "客户端 ID", "Agent id"),
    ("never", "从未", "never"),
    (
        "one_time_password",
        "请先修改一次性密码，之后才能使用",
        "Change the one-time password first; until then nothing is served",
    ),
    (
        "integrity",
        "完整性事件（近 7 天）：记录可能不全或被篡改之处",
        "Integrity events (last 7 days): where the record may be incomplete or tampered with",
    ),
    ("kind", "类型", "Kind"),
    ("detail", "详情", "Detail"),
    ("counts", "计数", "Counts"),
    ("actor", "操作人", "Actor"),
    ("action", "操作", "Action"),
    ("subject", "对象", "Subject"),
    ("detail", "详情", "Detail"),
    (
        "forbidden",
        "无权查看或操作。",
        "You may not see or do this.",
    ),
    ("not_found", "找不到。", "Not found."),
    ("bad_request", "请求有误", "Bad request"),
    ("this_week", "本周", "This week"),
    ("this_month", "本月", "This month"),
    ("last_month", "上月", "Last month"),
    ("custom_period", "自定义时段", "Custom period"),
    (
        "error",
        "出错了，请稍后再试。",
        "Something went wrong; please try again later.",
    ),
    (
        "pc_intro",
        "您的电脑只上报以下信息：登录、注销、锁屏、解锁、空闲的时间，以及办公时间内各类非工作软件的使用分钟数。不上报窗口标题、网址、按键、截图、文件名或程序名。",
        "Your PC reports only this: when you log on, log off, lock, unlock and go idle, and how many minutes of office time go to each kind of non-work application. Never window titles, web addresses, keystrokes, screenshots, file names or program names.",
    ),
    ("pc_day_none", "没有非工作用时", "no non-work time"),
    ("status_present", "出勤", "Present"),
    ("status_absent", "缺勤", "Absent"),
    ("status_leave", "请假", "Leave"),
    ("status_field", "外勤", "Field work"),
    ("status_holiday", "节假日", "Holiday"),
    ("status_rest", "休息日", "Rest day"),
    ("status_unknown", "无法判定", "Unknown"),
    ("cat_chat", "聊天软件", "Chat"),
    ("cat_games", "游戏", "Games"),
    ("cat_media", "音乐视频", "Music and video"),
    ("cat_downloads", "下载工具", "Downloads"),
    ("cat_nonwork_web", "非工作网站", "Non-work websites"),
    ("requests", "请假与审批", "Requests"),
    ("my_requests", "我的申请", "My requests"),
    ("new_request", "新的申请", "New request"),
    ("inbox", "待我审批", "Waiting for my decision"),
    ("all_requests", "全部申请", "All requests"),
    ("req_leave", "请假", "Leave"),
    ("req_field", "外勤", "Field work"),
    ("req_business_trip", "出差", "Business trip"),
    ("req_overtime", "加班", "Overtime"),
    ("req_missed_punch", "补卡", "Missed punch"),
    ("rstatus_pending", "审批中", "Pending"),
    ("rstatus_approved", "已批准", "Approved"),
    ("rstatus_rejected", "已驳回", "Rejected"),
    ("rstatus_cancelled", "已撤销", "Cancelled"),
    ("leave_type", "假别", "Leave type"),
    ("punch", "补卡类型", "Punch"),
    ("punch_arrival", "上班卡", "Arrival"),
    ("punch_departure", "下班卡", "Departure"),
    ("punch_at", "实际时间", "When"),
    ("days", "天数", "Days"),
    ("balances", "假期余额", "Leave balances"),
    ("balance", "额度", "Balance"),
    ("used", "已用或申请中", "Taken or asked for"),
    ("left", "剩余", "Left"),
    ("year", "年度", "Year"),
    ("filed_by", "申请人", "Filed by"),
    ("decisions", "审批记录", "Decisions"),
    ("cancel", "撤销", "Cancel"),
    ("filter", "筛选", "Filter"),
    ("any", "全部", "Any"),
    ("export_csv", "导出 CSV", "Export CSV"),
    ("for_employee", "为他人申请（工号）", "For (employee id)"),
    ("step_of", "审批步骤", "Step"),
    ("month_beside", "当月考勤", "The month's record"),
    (
        "request_filed",
        "申请已提交，等待审批。",
        "Your request was filed and awaits a decision.",
    ),
    (
        "request_help",
        "整天请假填写日期（如 2026-11-24）；半天或几小时填写时间（如 2026-11-24T08:30）。补卡填写实际到岗或离岗的时间。",
        "For whole days give dates (2026-11-24); for part of a day give times (2026-11-24T08:30). A missed punch is the time you actually arrived or left.",
    ),
    ("monthly_sheet", "考勤月报", "Monthly sheet"),
    ("preparer", "制表人", "Prepared by"),
    ("head_signature", "负责人", "Head"),
    ("sign_date", "日期", "Date"),
    ("legend", "图例", "Legend"),
    ("late_count", "迟到次数", "Late"),
    ("early_count", "早退次数", "Early"),
    ("early_minutes", "早退分钟", "Early min"),
    ("absenteeism_days", "旷工天数", "Absent (旷工) days"),
    ("missing_checkpoints", "缺卡次数", "Missing checkpoints"),
    (
        "overtime_workday",
        "工作日加班(时)",
        "Overtime, workday (h)",
    ),
    (
        "overtime_rest_day",
        "休息日加班(时)",
        "Overtime, rest day (h)",
    ),
    (
        "overtime_holiday",
        "节假日加班(时)",
        "Overtime, holiday (h)",
    ),
    ("print", "打印", "Print"),
    (
        "notifications_waiting",
        "未送达的通知（邮件、群机器人）",
        "Notifications not yet delivered (e-mail, group robots)",
    ),
    ("recipient", "收件方", "Recipient"),
    ("msg_subject", "标题", "Subject"),
    ("attempts", "尝试次数", "Attempts"),
    ("next_try", "下次尝试", "Next try"),
    ("last_error", "最近的错误", "Last error"),
    ("console", "管理", "Console"),
    ("staff_directory", "人员名册", "Staff directory"),
    (
        "agents_tokens",
        "电脑与注册令牌",
        "PCs and enrolment tokens",
    ),
    ("accounts", "账号", "Accounts"),
    ("calendar", "日历", "Calendar"),
    ("search", "搜索", "Search"),
    (
        "upload_csv",
        "上传名册 CSV（先预览，确认后才写入）",
        "Upload a staff CSV (previewed; nothing is written until you confirm)",
    ),
    ("preview", "预览", "Preview"),
    ("confirm_import", "确认导入", "Import"),
    (
        "problems_nothing_written",
        "文件有以下问题，未写入任何内容：",
        "The file has these problems; nothing was written:",
    ),
    ("will_add", "将新增", "To add"),
    ("will_update", "将更新", "To update"),
    ("unchanged_rest", "其余不变", "the rest unchanged"),
    ("imported_n", "已导入", "Imported"),
    ("saved", "已保存", "Saved"),
    (
        "add_or_edit",
        "新增或修改人员（工号相同即修改）",
        "Add or edit a person (the same employee id edits)",
    ),
    ("own_pcs", "本人电脑", "Own PCs"),
    ("email", "邮箱", "E-mail"),
    ("os_accounts", "系统账号", "OS accounts"),
    ("assign_to", "归属到（工号）", "Assign to (employee id)"),
    ("assign", "归属", "Assign"),
    (
        "read_only",
        "只读：仅管理员可修改。",
        "Read only: only an admin changes this.",
    ),
    ("os", "系统", "OS"),
    ("agent_version", "客户端版本", "Agent version"),
    ("enrolled", "注册时间", "Enrolled"),
    ("clock_offset", "时钟偏差", "Clock offset"),
    ("revoke", "吊销", "Revoke"),
    ("revoked", "已吊销", "Revoked"),
    ("tokens", "注册令牌", "Enrolment tokens"),
    ("create_token", "新建令牌", "Create a token"),
    ("ttl_days", "有效天数", "Valid for (days)"),
    ("max_uses", "可用次数（空为不限）", "Uses (empty: any)"),
    ("note", "备注", "Note"),
    ("reenroll", "可用于重装", "For reinstalls"),
    ("used_for", "用于", "Used for"),
    ("expires", "到期", "Expires"),
    (
        "token_once",
        "令牌只显示这一次，请立即复制：",
        "The token is shown this once; copy it now:",
    ),
    (
        "password_once",
        "一次性密码（首次登录须修改），只显示这一次：",
        "One-time password (changed at first login), shown this once:",
    ),
    ("api_token", "API 令牌", "API token"),
    ("add_account", "新建账号", "Add an account"),
    ("role", "角色", "Role"),
    ("departments", "部门范围", "Departments"),
    ("directory_account", "目录账号", "directory"),
    ("role_staff", "职工", "staff"),
    ("role_dept_head", "部门负责人", "department head"),
    ("role_officer", "考勤专员", "officer"),
    ("role_admin", "管理员", "admin"),
    ("official_days", "节假日与调休", "Holidays and make-up days"),
    ("basis", "依据", "Basis"),
    (
        "import_notice",
        "导入国务院节假日安排（CSV：date,kind）",
        "Import the State Council notice (CSV: date,kind)",
    ),
    ("notices", "已导入的通知", "Imported notices"),
    ("schedules", "作息时间", "Schedules"),
    ("category_rules", "应用分类规则", "Category rules"),
    (
        "left_on",
        "最后工作日（离职/调离）",
        "Last day worked (left)",
    ),
    ("deactivate", "停用", "Deactivate"),
    ("coverage_week", "本周覆盖率", "Coverage this week"),
    ("office_days", "本单位自定日期", "The office's own days"),
    (
        "office_days_hint",
        "闭馆、额外放假或补班等（CSV：date,kind,note；kind 为 workday、rest、holiday 或 makeup_workday）。此处保存的日期优先于配置文件的 [[attendance.calendar_override]]，受影响的日期将重新判定。",
        "Closures, extra holidays, days worked (CSV: date,kind,note; kind is workday, rest, holiday or makeup_workday). Days saved here win over the config file's [[attendance.calendar_override]] for the same date; the days they change are judged again.",
    ),
    (
        "coverage_week_hint",
        "本周（周一起）办公时间内，该电脑有记录的刻钟所占比例",
        "The share of this week's office quarter-hours (from Monday) in which this PC was heard from",
    ),
    ("returned", "恢复", "Reactivate"),
    (
        "rules_source",
        "现行规则来自",
        "The rules in force come from",
    ),
    ("rules_from_console", "控制台保存", "saved in the console"),
    (
        "rules_from_config",
        "配置文件 [[agents.category]]",
        "the config file's [[agents.category]]",
    ),
    (
        "rules_built_in",
        "客户端内置规则（未配置）",
        "the agents' built-in rules (none configured)",
    ),
    ("policy_version", "策略版本", "policy version"),
    (
        "rules_wins",
        "在此保存的规则优先于配置文件；保存即生成新的策略版本，各客户端在下次获取策略时（至多一小时）采用。规则按顺序匹配，第一条命中的规则决定分类；窗口标题只在本机上比对，不会离开电脑。",
        "Rules saved here win over the config file; saving makes a new policy version that each agent takes at its next policy refresh (within the hour). Rules are tried in order and the first match decides; window titles are matched on the PC only and never leave it.",
    ),
    (
        "rules_saved",
        "已保存，新策略版本已生效",
        "Saved: a new policy version is in force",
    ),
    (
        "rules_checked",
        "规则有效，条数",
        "The rules are valid; rules",
    ),
    ("rules_test", "试一试", "Try the rules"),
    ("process_name", "进程名", "Process name"),
    ("window_title", "窗口标题", "Window title"),
    ("rules_try", "检查并试用", "Check and try"),
    (
        "rules_save",
        "保存为新策略版本",
        "Save as a new policy version",
    ),
    ("rule_n", "规则", "rule"),
    ("no_rule_matched", "没有规则命中", "no rule matched"),
    (
        "title_stays",
        "此处输入的内容只用于试用，不会保存。",
        "What you type here is only tried, never stored.",
    ),
    ("rules_in_force", "现行规则", "The rules in force"),
    ("category", "分类", "Category"),
    ("process_patterns", "进程名模式", "Process patterns"),
    ("title_patterns", "标题关键词", "Title patterns"),
    (
        "schedules_source",
        "现行作息来自",
        "The schedules in force come from",
    ),
    (
        "schedules_wins",
        "在此保存的作息优先于配置文件中的 [attendance.schedules]；保存后各天按新作息重新判定。",
        "Schedules saved here win over the config file's [attendance.schedules]; the days they touch are judged again.",
    ),
    ("next_two_weeks", "未来两周", "The next two weeks"),
    (
        "preview_edited",
        "预览：按编辑中的作息（尚未保存）",
        "Preview under the edited schedules (not saved)",
    ),
    ("save", "保存", "Save"),
    ("reset_password", "重置密码", "Reset password"),
    (
        "integrity_week",
        "近 7 天完整性事件",
        "Integrity events, last 7 days",
    ),
    ("lang_switch", "English", "中文"),
];

/// The messages of `lang` by key.
pub fn table(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    MESSAGES
        .iter()
        .map(|(k, zh, en)| (*k, if lang == Lang::Zh { *zh } else { *en }))
        .collect()
}

/// One message (the key itself if missing).
pub fn t(lang: Lang, key: &str) -> String {
    MESSAGES
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, zh, en)| if lang == Lang::Zh { *zh } else { *en })
        .unwrap_or(key)
        .to_owned()
}

/// A category in plain words (an office's own category as it is named).
pub fn category(lang: Lang, cat: &str) -> String {
    let key = format!("cat_{cat}");
    let s = t(lang, &key);
    if s == key { cat.to_owned() } else { s }
}

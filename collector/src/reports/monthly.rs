//! The monthly sheet (考勤月报) an office prints and signs: one row per person,
//! one column per day with a symbol, then the month's totals, a legend and lines
//! for the signatures. Built from stored verdicts (corrections applied) and the
//! approved leave requests (for the days of each leave type).
//!
//! ```text
//!  工号  姓名  部门   1  2  3 ... 31 | 出勤 迟到 迟到分 早退 早退分 旷工 缺卡 请假 年假 ... 加班(工作日/休息日/节假日) ?
//!                  四 五 六 ...    (day kinds: 班 make-up workday, 休 rest, 节 holiday)
//!  E001  张三  办公室 √  迟 休 ...
//! ```

use super::corrections::ReportDay;
use crate::attendance::{DayKind, Person, Status};
use crate::requests::{RequestKind, RequestQuery, RequestStatus};
use crate::store::concerns::*;
use crate::verdicts::{Detail, Rules};
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use std::collections::BTreeMap;

/// The symbols of the sheet and what they mean (Chinese, English).
pub const LEGEND: [(&str, &str, &str); 12] = [
    ("√", "出勤", "present"),
    ("迟", "迟到", "late"),
    ("早", "早退", "left early"),
    ("缺", "缺卡", "missing checkpoint"),
    ("假", "请假", "leave"),
    ("差", "外勤/出差", "field work or trip"),
    ("旷", "旷工（缺勤）", "absent"),
    ("?", "无法判定", "unknown (not enough evidence)"),
    ("休", "休息日", "rest day"),
    ("节", "节假日", "holiday"),
    ("班", "调休上班日", "make-up working day"),
    ("", "（未到）", "(not yet)"),
];

/// The symbol of one day.
pub fn symbol(d: &ReportDay, today: Date) -> String {
    let v = &d.verdict;
    if v.date > today {
        return String::new();
    }
    match v.status {
        Status::Present => {
            let mut s = String::new();
            if v.late_minutes > 0 {
                s.push('迟');
            }
            if v.early_minutes > 0 {
                s.push('早');
            }
            if v.missing_checkpoints > 0 {
                s.push('缺');
            }
            if s.is_empty() {
                s.push('√');
            }
            s
        }
        Status::Absent => "旷".into(),
        Status::Leave => "假".into(),
        Status::Field => "差".into(),
        Status::Holiday => "节".into(),
        Status::Rest => "休".into(),
        Status::Unknown => "?".into(),
    }
}

/// What the header's second row says of a day: 班, 休, 节 or nothing.
pub fn day_kind_mark(kind: DayKind) -> &'static str {
    match kind {
        DayKind::MakeupWorkday => "班",
        DayKind::Rest => "休",
        DayKind::Holiday => "节",
        DayKind::Workday => "",
    }
}

/// One person's month.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub employee_id: String,
    pub name: String,
    pub department: String,
    /// One per day of the month.
    pub symbols: Vec<String>,
    pub present_days: u32,
    pub late_count: u32,
    pub late_minutes: u32,
    pub early_count: u32,
    pub early_minutes: u32,
    /// 旷工 in half days.
    pub absenteeism_half_days: u32,
    pub missing_checkpoints: u32,
    /// Days judged leave.
    pub leave_days: u32,
    /// Approved leave in the month by type, in half days.
    pub leave_by_type: BTreeMap<String, u32>,
    pub overtime_workday_minutes: u32,
    pub overtime_rest_day_minutes: u32,
    pub overtime_holiday_minutes: u32,
    pub unknown_days: u32,
}

/// The whole sheet.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sheet {
    /// `YYYY-MM`.
    pub month: String,
    pub department: Option<String>,
    pub days: Vec<Date>,
    /// 班, 休, 节 or empty, per day.
    pub day_marks: Vec<&'static str>,
    /// The leave types that occur, in order.
    pub leave_types: Vec<String>,
    pub rows: Vec<Row>,
    /// Set when part of the month lies in a year without a notice.
    pub provisional: Option<String>,
}

/// Builds the sheet of `month` (its first day) for `people` (in employee id
/// order).
pub fn build(
    store: &dyn Stores,
    rules: &Rules,
    month: Date,
    department: Option<&str>,
    people: &[Person],
    now: Timestamp,
) -> anyhow::Result<Sheet> {
    let first = month.first_of_month();
    let last = first.last_of_month();
    let today = rules.settings.time_zone.to_datetime(now).date();
    let days_in: Vec<Date> = (0..first.days_in_month())
        .map(|i| first.saturating_add(i64::from(i).days()))
        .collect();
    let day_marks = days_in
        .iter()
        .map(|d| day_kind_mark(rules.calendar.day_kind(*d)))
        .collect();
    let all = super::summary::load_days(store, rules, first, last, people, Detail::Full, now)?;
    let mut by_person: BTreeMap<&str, Vec<&ReportDay>> = BTreeMap::new();
    for d in &all {
        by_person
            .entry(d.verdict.employee_id.as_str())
            .or_default()
            .push(d);
    }
    let leave = leave_by_type(store, rules, first, last)?;
    let mut leave_types: Vec<String> = leave.values().flat_map(|m| m.keys().cloned()).collect();
    leave_types.sort();
    leave_types.dedup();
    let rows = people
        .iter()
        .map(|p| {
            let mut days = by_person.remove(p.employee_id.as_str()).unwrap_or_default();
            days.sort_by_key(|d| d.verdict.date);
            let mut row = Row {
                employee_id: p.employee_id.clone(),
                name: p.name.clone(),
                department: p.department.clone(),
                symbols: Vec::new(),
                present_days: 0,
                late_count: 0,
                late_minutes: 0,
                early_count: 0,
                early_minutes: 0,
                absenteeism_half_days: 0,
                missing_checkpoints: 0,
                leave_days: 0,
                leave_by_type: leave.get(&p.employee_id).cloned().unwrap_or_default(),
                overtime_workday_minutes: 0,
                overtime_rest_day_minutes: 0,
                overtime_holiday_minutes: 0,
                unknown_days: 0,
            };
            for date in &days_in {
                let Some(d) = days.iter().find(|d| d.verdict.date == *date) else {
                    row.symbols.push(String::new());
                    continue;
                };
                row.symbols.push(symbol(d, today));
                if *date > today {
                    continue;
                }
                let v = &d.verdict;
                match v.status {
                    Status::Present => row.present_days += 1,
                    Status::Leave => row.leave_days += 1,
                    Status::Unknown => row.unknown_days += 1,
                    _ => {}
                }
                if v.late_minutes > 0 {
                    row.late_count += 1;
                    row.late_minutes += v.late_minutes;
                }
                if v.early_minutes > 0 {
                    row.early_count += 1;
                    row.early_minutes += v.early_minutes;
                }
                row.absenteeism_half_days += v.absenteeism_half_days;
                row.missing_checkpoints += v.missing_checkpoints;
                row.overtime_workday_minutes += v.overtime_minutes.workday;
                row.overtime_rest_day_minutes += v.overtime_minutes.rest_day;
                row.overtime_holiday_minutes += v.overtime_minutes.holiday;
            }
            row
        })
        .collect();
    Ok(Sheet {
        month: first.strftime("%Y-%m").to_string(),
        department: department.map(str::to_owned),
        days: days_in,
        day_marks,
        leave_types,
        rows,
        provisional: super::provisional_note(rules, first, last),
    })
}

/// Approved leave of the month by person and type, in half days: whole-day
/// requests count their working days inside the month, part-day ones their
/// length in the month they start.
fn leave_by_type(
    store: &dyn Stores,
    rules: &Rules,
    first: Date,
    last: Date,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, u32>>> {
    let tz = &rules.settings.time_zone;
    let at = |d: Date| {
        tz.to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .compatible()
            .map_or(0, |t| t.as_millisecond())
    };
    let q = RequestQuery {
        kind: Some(RequestKind::Leave),
        status: Some(RequestStatus::Approved),
        from_ms: Some(at(first)),
        to_ms: Some(at(last.saturating_add(1.day()))),
        ..RequestQuery::default()
    };
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for r in store.requests(&q)? {
        let half_days = if r.whole_days {
            let mut n = 0;
            let mut d = tz.to_datetime(r.start()).date().max(first);
            let end = tz
                .to_datetime(Timestamp::from_millisecond(r.end_ms - 1).unwrap_or_default())
                .date()
                .min(last);
            while d <= end {
                if rules.calendar.day_kind(d).is_working() {
                    n += 2;
                }
                d = d.saturating_add(1.day());
            }
            n
        } else if tz.to_datetime(r.start()).date() >= first {
            r.half_days
        } else {
            0
        };
        *out.entry(r.employee_id.clone())
            .or_default()
            .entry(r.leave_type.clone())
            .or_default() += half_days;
    }
    Ok(out)
}

/// The sheet's title: 考勤月报 of the month and department.
pub fn title(sheet: &Sheet) -> String {
    format!(
        "考勤月报 {}{}",
        sheet.month,
        sheet
            .department
            .as_deref()
            .map(|d| format!(" {d}"))
            .unwrap_or_default()
    )
}

/// Hours of minutes with one decimal, as the sheet shows overtime.
pub fn hours(minutes: u32) -> f64 {
    (f64::from(minutes) / 6.0).round() / 10.0
}

/// The sheet as an XLSX workbook that prints on A4 landscape, fitted to the
/// page width, with the header rows repeated on every page; `leave_names` names
/// each leave type in the sheet's language.
pub fn to_xlsx(
    sheet: &Sheet,
    title: &str,
    leave_names: &dyn Fn(&str) -> String,
) -> anyhow::Result<Vec<u8>> {
    use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook};
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(&sheet.month)?;
    let bold = Format::new().set_bold();
    let head = Format::new()
        .set_bold()
        .set_align(FormatAlign::Center)
        .set_border(FormatBorder::Thin)
        .set_text_wrap();
    let cell = Format::new()
        .set_align(FormatAlign::Center)
        .set_border(FormatBorder::Thin);
    let left = Format::new().set_border(FormatBorder::Thin);
    let weekdays = ["一", "二", "三", "四", "五", "六", "日"];
    ws.merge_range(0, 0, 0, 10, title, &bold)?;
    let (h1, h2) = (2u32, 3u32);
    let fixed = ["工号", "姓名", "部门"];
    for (c, name) in fixed.iter().enumerate() {
        ws.merge_range(h1, c as u16, h2, c as u16, name, &head)?;
    }
    let day0 = fixed.len() as u16;
    for (i, d) in sheet.days.iter().enumerate() {
        let c = day0 + i as u16;
        ws.write_string_with_format(h1, c, d.day().to_string(), &head)?;
        let wd = weekdays[d.weekday().to_monday_zero_offset() as usize];
        let mark = sheet.day_marks[i];
        let second = if mark.is_empty() {
            wd.to_owned()
        } else {
            format!("{wd}\n{mark}")
        };
        ws.write_string_with_format(h2, c, second, &head)?;
        ws.set_column_width(c, 3.2)?;
    }
    let mut totals: Vec<String> = [
        "出勤天数",
        "迟到次数",
        "迟到分钟",
        "早退次数",
        "早退分钟",
        "旷工天数",
        "缺卡次数",
        "请假天数",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    totals.extend(
        sheet
            .leave_types
            .iter()
            .map(|t| format!("{}(天)", leave_names(t))),
    );
    totals.extend(
        [
            "加班·工作日(时)",
            "加班·休息日(时)",
            "加班·节假日(时)",
            "无法判定",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let t0 = day0 + sheet.days.len() as u16;
    for (i, name) in totals.iter().enumerate() {
        ws.merge_range(h1, t0 + i as u16, h2, t0 + i as u16, name, &head)?;
        ws.set_column_width(t0 + i as u16, 6.5)?;
    }
    ws.set_column_width(0, 8)?;
    ws.set_column_width(1, 8)?;
    ws.set_column_width(2, 10)?;
    let mut r = h2 + 1;
    for row in &sheet.rows {
        ws.write_string_with_format(r, 0, &row.employee_id, &left)?;
        ws.write_string_with_format(r, 1, &row.name, &left)?;
        ws.write_string_with_format(r, 2, &row.department, &left)?;
        for (i, s) in row.symbols.iter().enumerate() {
            ws.write_string_with_format(r, day0 + i as u16, s, &cell)?;
        }
        let mut numbers: Vec<f64> = vec![
            f64::from(row.present_days),
            f64::from(row.late_count),
            f64::from(row.late_minutes),
            f64::from(row.early_count),
            f64::from(row.early_minutes),
            f64::from(row.absenteeism_half_days) / 2.0,
            f64::from(row.missing_checkpoints),
            f64::from(row.leave_days),
        ];
        numbers.extend(
            sheet
                .leave_types
                .iter()
                .map(|t| f64::from(row.leave_by_type.get(t).copied().unwrap_or(0)) / 2.0),
        );
        numbers.extend([
            hours(row.overtime_workday_minutes),
            hours(row.overtime_rest_day_minutes),
            hours(row.overtime_holiday_minutes),
            f64::from(row.unknown_days),
        ]);
        for (i, n) in numbers.iter().enumerate() {
            ws.write_number_with_format(r, t0 + i as u16, *n, &cell)?;
        }
        r += 1;
    }
    r += 1;
    let legend: Vec<String> = LEGEND
        .iter()
        .filter(|(s, _, _)| !s.is_empty())
        .map(|(s, zh, _)| format!("{s} {zh}"))
        .collect();
    ws.write_string(r, 0, format!("图例：{}", legend.join("　")))?;
    if let Some(p) = &sheet.provisional {
        r += 1;
        ws.write_string(r, 0, p)?;
    }
    r += 2;
    ws.write_string(
        r,
        0,
        "制表人（签字）：____________　　部门负责人（签字）：____________　　日期：____________",
    )?;
    ws.set_landscape();
    ws.set_paper_size(9);
    ws.set_print_fit_to_pages(1, 0);
    ws.set_repeat_rows(h1, h2)?;
    ws.set_print_gridlines(false);
    ws.set_freeze_panes(h2 + 1, day0)?;
    Ok(wb.save_to_buffer()?)
}

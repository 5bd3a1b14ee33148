//! Requests in the browser and the JSON API, and the monthly sheet: staff file
//! and follow their own, approvers decide from an inbox with the person's month
//! beside each request, officers list and export every request in scope.
//!
//! Every step goes through [`crate::requests::service`], which checks who asks.

use super::i18n::{self, Lang};
use super::pages::{
    St, in_scope, local_hm, now, page, parse_month, person_days, status_label, today, urlencode,
};
use super::params::{Form, Json, Path, Query};
use super::{App, Ctx, WebError, audit, blocking, redirect};
use crate::attendance::{CheckpointKind, Person};
use crate::reports::monthly;
use crate::requests::service::{Listed, RequestError, Requests};
use crate::requests::{Filing, RequestKind, RequestQuery, RequestStatus, balance, leave_types};
use crate::users::{Action, Role, Target, User, can};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::civil::Date;
use minijinja::{Value, context};
use serde::Deserialize;
use std::sync::Arc;

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/requests", get(requests_page).post(file_request))
        .route("/requests/{id}/decision", post(decide_request))
        .route("/requests/{id}/cancel", post(cancel_request))
        .route("/export/requests", get(export_requests))
        .route("/monthly", get(monthly_page))
        .route("/export/monthly", get(export_monthly))
        .route("/api/v1/requests", get(api_list).post(api_file))
        .route("/api/v1/requests/{id}/decision", post(api_decide))
        .route("/api/v1/requests/{id}/cancel", post(api_cancel))
}

impl From<RequestError> for WebError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Field(f) => WebError::BadField {
                name: f.field.to_owned(),
                problem: f.problem,
            },
            RequestError::Forbidden => WebError::Forbidden,
            RequestError::NotFound => WebError::NotFound,
            RequestError::Store(s) => s.into(),
        }
    }
}

/// Runs `f` with the requests of the store under the current rules.
fn with_requests<T>(
    app: &App,
    f: impl FnOnce(&Requests<'_>) -> Result<T, RequestError>,
) -> Result<T, WebError> {
    let rules = app.rules();
    Ok(f(&Requests {
        store: &*app.store,
        rules: &rules,
        config: &app.requests,
    })?)
}

/// A request as the API answers it: the stored fields, `from` and `to` as
/// RFC 3339 in the office's zone, and `days`.
fn request_json(app: &App, l: &Listed) -> serde_json::Value {
    let tz = &app.settings().time_zone;
    let mut v = serde_json::to_value(l).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        let fmt = |t: jiff::Timestamp| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        };
        o.insert("from".into(), fmt(l.request.start()).into());
        o.insert("to".into(), fmt(l.request.end()).into());
        o.insert("days".into(), l.request.days().into());
    }
    v
}

/// The words of a request for a page.
fn request_value(app: &App, lang: Lang, l: &Listed) -> Value {
    let r = &l.request;
    let tz = &app.settings().time_zone;
    let when = |t: jiff::Timestamp| {
        let f = if r.whole_days {
            "%Y-%m-%d"
        } else {
            "%Y-%m-%d %H:%M"
        };
        tz.to_datetime(t).strftime(f).to_string()
    };
    let span = match r.kind {
        RequestKind::MissedPunch => when(r.start()),
        _ if r.whole_days => {
            let last = jiff::Timestamp::from_millisecond(r.end_ms - 1).unwrap_or_default();
            let (a, b) = (when(r.start()), when(last));
            if a == b { a } else { format!("{a} — {b}") }
        }
        _ => format!("{} — {}", when(r.start()), local_hm(app, Some(r.end()))),
    };
    let kind_label = match (r.kind, r.punch) {
        (RequestKind::Leave, _) => format!(
            "{} · {}",
            i18n::t(lang, "req_leave"),
            leave_name(app, lang, &r.leave_type)
        ),
        (RequestKind::MissedPunch, Some(p)) => format!(
            "{} · {}",
            i18n::t(lang, "req_missed_punch"),
            i18n::t(
                lang,
                if p == CheckpointKind::Arrival {
                    "punch_arrival"
                } else {
                    "punch_departure"
                }
            )
        ),
        (k, _) => i18n::t(lang, &format!("req_{}", k.as_str())),
    };
    let decisions: Vec<Value> = r
        .decisions
        .iter()
        .map(|d| {
            context! {
                step => d.step, by => d.by, approve => d.approve, comment => d.comment,
                at => jiff::Timestamp::from_millisecond(d.at_ms).map(|t| tz.to_datetime(t).strftime("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
                label => i18n::t(lang, if d.approve { "rstatus_approved" } else { "rstatus_rejected" }),
            }
        })
        .collect();
    context! {
        id => r.id, employee_id => r.employee_id, name => l.name, department => l.department,
        kind => r.kind.as_str(), kind_label => kind_label, span => span,
        days => balance::days(r.half_days), reason => r.reason, filed_by => r.filed_by,
        status => r.status.as_str(),
        status_label => i18n::t(lang, &format!("rstatus_{}", r.status.as_str())),
        step => format!("{}/{}", r.decisions.len().min(usize::from(r.steps)), r.steps),
        decisions => decisions, decidable => l.decidable, cancellable => l.cancellable,
        month => jiff::Timestamp::from_millisecond(r.start_ms).map(|t| tz.to_datetime(t).strftime("%Y-%m").to_string()).unwrap_or_default(),
    }
}

fn leave_name(app: &App, lang: Lang, code: &str) -> String {
    leave_types(&app.requests)
        .into_iter()
        .find(|(c, _, _)| c == code)
        .map(|(_, zh, en)| if lang == Lang::Zh { zh } else { en })
        .unwrap_or_else(|| code.to_owned())
}

#[derive(Debug, Deserialize, Default)]
struct ListQuery {
    status: Option<String>,
    kind: Option<String>,
    department: Option<String>,
    employee_id: Option<String>,
    from: Option<Date>,
    to: Option<Date>,
    filed: Option<String>,
}

impl ListQuery {
    /// The store query and the department filter, or the parameter that is wrong.
    fn parse(&self, app: &App) -> Result<(RequestQuery, Option<String>), WebError> {
        fn nonempty(s: &Option<String>) -> Option<&str> {
            s.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let status = match nonempty(&self.status) {
            Some(s) => Some(RequestStatus::parse(s).ok_or_else(|| WebError::BadField {
                name: "status".into(),
                problem: format!("{s:?} is not one of pending, approved, rejected, cancelled"),
            })?),
            None => None,
        };
        let kind = match nonempty(&self.kind) {
            Some(s) => Some(RequestKind::parse(s).ok_or_else(|| WebError::BadField {
                name: "kind".into(),
                problem: format!(
                    "{s:?} is not one of leave, field, business_trip, overtime, missed_punch"
                ),
            })?),
            None => None,
        };
        let tz = &app.settings().time_zone;
        let ms = |d: Date| {
            tz.to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .map(|t| t.as_millisecond())
                .ok()
        };
        Ok((
            RequestQuery {
                employee_id: nonempty(&self.employee_id).map(str::to_owned),
                status,
                kind,
                from_ms: self.from.and_then(ms),
                to_ms: self.to.and_then(|d| d.tomorrow().ok()).and_then(ms),
            },
            nonempty(&self.department).map(str::to_owned),
        ))
    }
}

/// The person's month as a strip of symbols, beside a request in the inbox.
fn month_strip(
    app: &App,
    lang: Lang,
    user: &User,
    p: &Person,
    month: &str,
) -> Result<Value, WebError> {
    let (first, last) = parse_month(app, Some(month))?;
    if user.employee_id.as_deref() != Some(p.employee_id.as_str()) {
        audit::record(
            &*app.store,
            &user.username,
            "record.view",
            &p.employee_id,
            &format!("month {month} beside a request"),
        )?;
    }
    let days = person_days(app, p, first, last)?;
    let t = today(app);
    let cells: Vec<Value> = days
        .iter()
        .map(|d| {
            context! {
                day => d.verdict.date.day(), symbol => monthly::symbol(d, t),
                title => format!("{} {}", d.verdict.date, status_label(lang, d.verdict.status)),
                status => crate::reports::corrections::status_name(d.verdict.status),
            }
        })
        .collect();
    let totals = crate::reports::summary::summarize(&days, crate::reports::summary::By::Staff);
    Ok(context! {
        month => month, cells => cells,
        link => format!("/person/{}?month={month}", urlencode(&p.employee_id)),
        total => totals.first().map(|r| context! {
            present_days => r.present_days, late_count => r.late_count,
            early_count => r.early_count, absent_days => r.absent_days,
            leave_days => r.leave_days, unknown_days => r.unknown_days,
        }),
    })
}

/// Inbox items with the month beside each, for at most this many.
const INBOX_MONTHS: usize = 20;

async fn requests_page(State(app): St, ctx: Ctx, Query(q): Query<ListQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let lang = ctx.lang;
        let rules = app.rules();
        let config = &app.requests;
        let svc = Requests {
            store: &*app.store,
            rules: &rules,
            config,
        };
        let mine: Vec<Value> = match &u.employee_id {
            Some(id) => svc
                .list(
                    u,
                    &RequestQuery {
                        employee_id: Some(id.clone()),
                        ..RequestQuery::default()
                    },
                    None,
                )?
                .iter()
                .map(|l| request_value(app, lang, l))
                .collect(),
            None => Vec::new(),
        };
        let year = today(app).year();
        let balances: Vec<Value> = match &u.employee_id {
            Some(id) => {
                let used = svc.list(
                    u,
                    &RequestQuery {
                        employee_id: Some(id.clone()),
                        kind: Some(RequestKind::Leave),
                        ..RequestQuery::default()
                    },
                    None,
                )?;
                app.store
                    .leave_balances(Some(id), Some(year))?
                    .iter()
                    .map(|b| {
                        let taken: u32 = used
                            .iter()
                            .map(|l| &l.request)
                            .filter(|r| {
                                r.leave_type == b.leave_type
                                    && matches!(
                                        r.status,
                                        RequestStatus::Pending | RequestStatus::Approved
                                    )
                                    && app.settings().time_zone.to_datetime(r.start()).year()
                                        == year
                            })
                            .map(|r| r.half_days)
                            .sum();
                        context! {
                            leave_type => leave_name(app, lang, &b.leave_type),
                            balance => balance::days(b.half_days),
                            used => balance::days(taken),
                            left => balance::days(b.half_days.saturating_sub(taken)),
                        }
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let staff = app.store.staff()?;
        let inbox: Vec<Value> = svc
            .inbox(u)?
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let strip = if i < INBOX_MONTHS {
                    let month = request_value(app, lang, l)
                        .get_attr("month")
                        .ok()
                        .and_then(|m| m.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    match staff
                        .iter()
                        .find(|p| p.employee_id == l.request.employee_id)
                    {
                        Some(p) => Some(month_strip(app, lang, u, p, &month)?),
                        None => None,
                    }
                } else {
                    None
                };
                Ok(context! { strip => strip, ..request_value(app, lang, l) })
            })
            .collect::<Result<_, WebError>>()?;
        // Every request in scope, for heads, officers and admins.
        let (query, department) = q.parse(app)?;
        let overseer = u.role != Role::Staff;
        let all: Vec<Value> = if overseer {
            svc.list(u, &query, department.as_deref())?
                .iter()
                .take(500)
                .map(|l| request_value(app, lang, l))
                .collect()
        } else {
            Vec::new()
        };
        let mut departments: Vec<String> = staff
            .iter()
            .map(|p| p.department.clone())
            .filter(|d| can(u, Action::View, Target::Department(d)))
            .collect();
        departments.sort();
        departments.dedup();
        let kinds: Vec<(String, String)> = RequestKind::ALL
            .iter()
            .map(|k| {
                (
                    k.as_str().to_owned(),
                    i18n::t(lang, &format!("req_{}", k.as_str())),
                )
            })
            .collect();
        let statuses: Vec<(String, String)> = RequestStatus::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str().to_owned(),
                    i18n::t(lang, &format!("rstatus_{}", s.as_str())),
                )
            })
            .collect();
        let types: Vec<(String, String)> = leave_types(config)
            .into_iter()
            .map(|(c, zh, en)| (c, if lang == Lang::Zh { zh } else { en }))
            .collect();
        let mut export = String::from("/export/requests?");
        for (k, v) in [
            ("status", q.status.as_deref()),
            ("kind", q.kind.as_deref()),
            ("department", q.department.as_deref()),
        ] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                export.push_str(&format!("{k}={}&", urlencode(v)));
            }
        }
        if let Some(f) = q.from {
            export.push_str(&format!("from={f}&"));
        }
        if let Some(t) = q.to {
            export.push_str(&format!("to={t}&"));
        }
        page(
            app,
            ctx,
            "requests.html",
            context! {
                own => u.employee_id.is_some(), mine => mine, balances => balances, year => year,
                inbox => inbox, overseer => overseer, all => all,
                kinds => kinds, statuses => statuses, leave_types => types,
                departments => departments, filed => q.filed.is_some(),
                may_file_for_others => u.role != Role::Staff,
                q => context! {
                    status => q.status, kind => q.kind, department => q.department,
                    from => q.from.map(|d| d.to_string()), to => q.to.map(|d| d.to_string()),
                },
                export => export.trim_end_matches(['&', '?']).to_owned(),
            },
        )
    })
    .await
}

async fn file_request(State(app): St, ctx: Ctx, Form(f): Form<Filing>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        with_requests(app, |r| r.file(u, &f, now()))?;
        Ok(redirect("/requests?filed=1", Vec::new()))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    decision: String,
    #[serde(default)]
    comment: String,
}

fn approve_of(decision: &str) -> Result<bool, WebError> {
    match decision {
        "approve" => Ok(true),
        "reject" => Ok(false),
        other => Err(WebError::BadField {
            name: "decision".into(),
            problem: format!("{other:?}: use approve or reject"),
        }),
    }
}

async fn decide_request(
    State(app): St,
    ctx: Ctx,
    Path(id): Path<i64>,
    Form(f): Form<DecisionForm>,
) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let approve = approve_of(&f.decision)?;
        with_requests(app, |r| r.decide(u, id, approve, &f.comment, now()))?;
        Ok(redirect("/requests", Vec::new()))
    })
    .await
}

async fn cancel_request(State(app): St, ctx: Ctx, Path(id): Path<i64>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        with_requests(app, |r| r.cancel(u, id, now()))?;
        Ok(redirect("/requests", Vec::new()))
    })
    .await
}

/// The columns of the requests export.
const EXPORT_COLUMNS: [&str; 14] = [
    "id",
    "employee_id",
    "name",
    "department",
    "kind",
    "leave_type",
    "punch",
    "from",
    "to",
    "days",
    "reason",
    "filed_by",
    "status",
    "decisions",
];

async fn export_requests(State(app): St, ctx: Ctx, Query(q): Query<ListQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        if u.role == Role::Staff {
            return Err(WebError::Forbidden);
        }
        let (query, department) = q.parse(app)?;
        let list = with_requests(app, |r| r.list(u, &query, department.as_deref()))?;
        let mut w = csv::Writer::from_writer(Vec::new());
        crate::reports::write_csv_record(&mut w, EXPORT_COLUMNS).map_err(anyhow::Error::from)?;
        for l in &list {
            let j = request_json(app, l);
            let r = &l.request;
            let decisions = r
                .decisions
                .iter()
                .map(|d| {
                    format!(
                        "{} {} {}{}",
                        d.step,
                        d.by,
                        if d.approve { "approve" } else { "reject" },
                        if d.comment.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", d.comment)
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            crate::reports::write_csv_record(
                &mut w,
                [
                    r.id.to_string(),
                    r.employee_id.clone(),
                    l.name.clone(),
                    l.department.clone(),
                    r.kind.as_str().to_owned(),
                    r.leave_type.clone(),
                    crate::store::requests::punch_name(r.punch)
                        .unwrap_or("")
                        .to_owned(),
                    j["from"].as_str().unwrap_or("").to_owned(),
                    j["to"].as_str().unwrap_or("").to_owned(),
                    balance::days(r.half_days),
                    r.reason.clone(),
                    r.filed_by.clone(),
                    r.status.as_str().to_owned(),
                    decisions,
                ],
            )
            .map_err(anyhow::Error::from)?;
        }
        let body = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        audit::record(
            &*app.store,
            &u.username,
            "report.export",
            department.as_deref().unwrap_or("*"),
            &format!("requests ({} rows)", list.len()),
        )?;
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"kaoqin-requests.csv\"".to_owned(),
                ),
            ],
            body,
        )
            .into_response())
    })
    .await
}

// ---------------------------------------------------------------- the monthly sheet

#[derive(Debug, Deserialize, Default)]
struct MonthlyQuery {
    month: Option<String>,
    department: Option<String>,
}

/// The sheet a user may see: everyone in scope, or one department.
fn monthly_sheet(
    app: &App,
    user: &User,
    q: &MonthlyQuery,
    action: Action,
) -> Result<(monthly::Sheet, Vec<String>), WebError> {
    if user.role == Role::Staff {
        return Err(WebError::Forbidden);
    }
    let department = q.department.clone().filter(|d| !d.is_empty());
    if let Some(d) = &department
        && !can(user, action, Target::Department(d))
    {
        return Err(WebError::Forbidden);
    }
    let (first, _) = parse_month(app, q.month.as_deref())?;
    let (departments, people) = in_scope(app, user, action, department.as_deref())?;
    let sheet = monthly::build(
        &*app.store,
        &app.rules(),
        first,
        department.as_deref(),
        &people,
        now(),
    )?;
    Ok((sheet, departments))
}

async fn monthly_page(State(app): St, ctx: Ctx, Query(q): Query<MonthlyQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let lang = ctx.lang;
        let (sheet, departments) = monthly_sheet(app, u, &q, Action::View)?;
        audit::record(
            &*app.store,
            &u.username,
            "summary.view",
            sheet.department.as_deref().unwrap_or("*"),
            &format!("monthly sheet {}", sheet.month),
        )?;
        let weekdays = if lang == Lang::Zh {
            ["一", "二", "三", "四", "五", "六", "日"]
        } else {
            ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
        };
        let days: Vec<Value> = sheet
            .days
            .iter()
            .zip(&sheet.day_marks)
            .map(|(d, m)| {
                context! {
                    day => d.day(),
                    weekday => weekdays[d.weekday().to_monday_zero_offset() as usize],
                    mark => m,
                }
            })
            .collect();
        let leave_cols: Vec<String> = sheet
            .leave_types
            .iter()
            .map(|t| leave_name(app, lang, t))
            .collect();
        let rows: Vec<Value> = sheet
            .rows
            .iter()
            .map(|r| {
                let leave: Vec<String> = sheet
                    .leave_types
                    .iter()
                    .map(|t| balance::days(r.leave_by_type.get(t).copied().unwrap_or(0)))
                    .collect();
                context! {
                    employee_id => r.employee_id, name => r.name, department => r.department,
                    symbols => r.symbols, present_days => r.present_days,
                    late_count => r.late_count, late_minutes => r.late_minutes,
                    early_count => r.early_count, early_minutes => r.early_minutes,
                    absenteeism => balance::days(r.absenteeism_half_days),
                    missing => r.missing_checkpoints, leave_days => r.leave_days, leave => leave,
                    ot_workday => monthly::hours(r.overtime_workday_minutes),
                    ot_rest => monthly::hours(r.overtime_rest_day_minutes),
                    ot_holiday => monthly::hours(r.overtime_holiday_minutes),
                    unknown => r.unknown_days,
                }
            })
            .collect();
        let legend: Vec<(String, String)> = monthly::LEGEND
            .iter()
            .filter(|(s, _, _)| !s.is_empty())
            .map(|(s, zh, en)| {
                (
                    s.to_string(),
                    if lang == Lang::Zh { zh } else { en }.to_string(),
                )
            })
            .collect();
        let mut export = format!("/export/monthly?month={}", sheet.month);
        if let Some(d) = &sheet.department {
            export.push_str(&format!("&department={}", urlencode(d)));
        }
        page(
            app,
            ctx,
            "monthly.html",
            context! {
                month => sheet.month, department => sheet.department, departments => departments,
                days => days, rows => rows, leave_cols => leave_cols, legend => legend,
                provisional => sheet.provisional, export => export,
            },
        )
    })
    .await
}

async fn export_monthly(State(app): St, ctx: Ctx, Query(q): Query<MonthlyQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let (sheet, _) = monthly_sheet(app, u, &q, Action::Export)?;
        let title = monthly::title(&sheet);
        let bytes = monthly::to_xlsx(&sheet, &title, &|t| leave_name(app, Lang::Zh, t))?;
        audit::record(
            &*app.store,
            &u.username,
            "report.export",
            sheet.department.as_deref().unwrap_or("*"),
            &format!("monthly sheet {} xlsx", sheet.month),
        )?;
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"kaoqin-monthly-{}.xlsx\"",
                        sheet.month
                    ),
                ),
            ],
            bytes,
        )
            .into_response())
    })
    .await
}

// ---------------------------------------------------------------- JSON API

async fn api_file(State(app): St, ctx: Ctx, Json(f): Json<Filing>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let r = with_requests(app, |r| r.file(u, &f, now()))?;
        Ok((StatusCode::CREATED, axum::Json(listed_after(app, u, r.id)?)).into_response())
    })
    .await
}

async fn api_list(State(app): St, ctx: Ctx, Query(q): Query<ListQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let (query, department) = q.parse(app)?;
        let list = with_requests(app, |r| r.list(u, &query, department.as_deref()))?;
        let out: Vec<serde_json::Value> = list.iter().map(|l| request_json(app, l)).collect();
        Ok(axum::Json(serde_json::json!({ "requests": out })).into_response())
    })
    .await
}

#[derive(Debug, Deserialize)]
struct DecisionBody {
    decision: String,
    #[serde(default)]
    comment: String,
}

/// The request as the caller sees it after a change.
fn listed_after(app: &App, u: &User, id: i64) -> Result<serde_json::Value, WebError> {
    let listed = with_requests(app, |svc| {
        let (r, _) = svc.get(u, id)?;
        let q = RequestQuery {
            employee_id: Some(r.employee_id.clone()),
            ..RequestQuery::default()
        };
        Ok(svc
            .list(u, &q, None)?
            .into_iter()
            .find(|l| l.request.id == id))
    })?
    .ok_or(WebError::NotFound)?;
    Ok(request_json(app, &listed))
}

async fn api_decide(
    State(app): St,
    ctx: Ctx,
    Path(id): Path<i64>,
    Json(b): Json<DecisionBody>,
) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let approve = approve_of(&b.decision)?;
        with_requests(app, |r| r.decide(u, id, approve, &b.comment, now()))?;
        Ok(axum::Json(listed_after(app, u, id)?).into_response())
    })
    .await
}

async fn api_cancel(State(app): St, ctx: Ctx, Path(id): Path<i64>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        with_requests(app, |r| r.cancel(u, id, now()))?;
        Ok(axum::Json(listed_after(app, u, id)?).into_response())
    })
    .await
}

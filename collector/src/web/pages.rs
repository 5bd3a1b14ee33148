//! The handlers: one function per page, each asking [`can`] first.

use super::i18n::{self, Lang};
use super::params::{Form, Path, Query, check_period};
use super::{App, Ctx, Page, WebError, audit, blocking, redirect};
use crate::attendance::{Person, Status};
use crate::reports::corrections::{self, ReportDay, status_name};
use crate::reports::summary::{self, By, SummaryRow};
use crate::users::{Action, Role, Target, User, can};
use crate::verdicts::Rules;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::ToSpan;
use jiff::civil::Date;
use minijinja::{Value, context};
use serde::Deserialize;
use std::sync::Arc;

pub(super) type St = State<Arc<App>>;

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/password", get(password_page).post(password))
        .route("/summary", get(summary_page))
        .route("/export/summary", get(summary_export))
        .route("/me", get(me))
        .route("/person/{id}", get(person_page))
        .route("/person/{id}/pc", get(pc_page))
        .route("/appeals", get(appeals_page).post(file_appeal))
        .route("/appeals/{id}", post(decide_appeal))
        .route("/system", get(system_page))
        .route("/audit", get(audit_page))
        .route("/api/v1/summary", get(api_summary))
        .route("/api/v1/person/{id}/days", get(api_person_days))
        .route("/static/style.css", get(style))
        .merge(super::request_pages::routes())
        .merge(super::admin_pages::routes())
        .merge(super::category_pages::routes())
        .merge(super::today_page::routes())
        .merge(super::health::routes())
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        super::STYLE_CSS,
    )
        .into_response()
}

fn role_name(lang: Lang, r: Role) -> &'static str {
    match (lang, r) {
        (Lang::Zh, Role::Admin) => "管理员",
        (Lang::Zh, Role::Officer) => "考勤专员",
        (Lang::Zh, Role::DeptHead) => "部门负责人",
        (Lang::Zh, Role::Staff) => "职工",
        (Lang::En, Role::Admin) => "admin",
        (Lang::En, Role::Officer) => "officer",
        (Lang::En, Role::DeptHead) => "department head",
        (Lang::En, Role::Staff) => "staff",
    }
}

/// The context every page gets: words, the user and the menu.
pub(super) fn base_ctx(ctx: &Ctx, extra: Value) -> Value {
    let t = i18n::table(ctx.lang);
    let mut nav: Vec<(String, &str)> = Vec::new();
    if let Some(u) = ctx.user.as_ref().filter(|u| !u.must_change_password) {
        if u.role != Role::Staff {
            nav.push(("/today".into(), t["today"]));
            nav.push(("/summary".into(), t["summary"]));
        }
        if u.employee_id.is_some() {
            nav.push(("/me".into(), t["my_attendance"]));
            if let Some(id) = &u.employee_id {
                nav.push((format!("/person/{id}/pc"), t["my_pc"]));
            }
        }
        nav.push(("/requests".into(), t["requests"]));
        nav.push(("/appeals".into(), t["appeals"]));
        if u.role != Role::Staff {
            nav.push(("/monthly".into(), t["monthly_sheet"]));
        }
        if can(u, Action::Operate, Target::System) {
            nav.push(("/system".into(), t["system"]));
        }
        if matches!(u.role, Role::Admin | Role::Officer) {
            nav.push(("/admin/staff".into(), t["console"]));
        }
        if can(u, Action::Administer, Target::System) {
            nav.push(("/audit".into(), t["audit"]));
        }
    }
    let other = if ctx.lang == Lang::Zh { "en" } else { "zh" };
    context! {
        t => t,
        lang => ctx.lang.code(),
        lang_other => other,
        path => ctx.path,
        user => ctx.user.as_ref().map(|u| context! {
            username => u.username,
            role => role_name(ctx.lang, u.role),
        }),
        nav => nav,
        ..extra
    }
}

pub(super) fn page(app: &App, ctx: &Ctx, name: &str, extra: Value) -> Result<Response, WebError> {
    page_with_status(app, ctx, StatusCode::OK, name, extra)
}

/// The warning officers see on every page while a notice is missing
/// ([`crate::attendance::Calendar::notice_warning`]).
fn calendar_banner(app: &App, ctx: &Ctx) -> Option<Value> {
    ctx.user.as_ref().filter(|u| u.role != Role::Staff)?;
    let w = app.rules().calendar.notice_warning(today(app))?;
    let text = match ctx.lang {
        Lang::Zh => w.text_zh(),
        Lang::En => w.text_en(),
    };
    Some(context! { text => text, urgent => w.urgent, year => w.year })
}

/// What a page showing `from..=to` says when some of it lies in a year without a
/// notice: its verdicts are provisional.
fn provisional_note(app: &App, lang: Lang, from: Date, to: Date) -> Option<String> {
    let years = app.rules().provisional_years(from, to)?;
    Some(match lang {
        Lang::Zh => format!(
            "{years}年的国务院节假日安排通知尚未导入：本页结果仅按法定节假日判定，为暂定结果，导入通知后将重新判定。"
        ),
        Lang::En => format!(
            "The State Council holiday notice for {years} is not imported: these results use the statutory holidays only and are provisional; they are judged again when it is."
        ),
    })
}

pub(super) fn page_with_status(
    app: &App,
    ctx: &Ctx,
    status: StatusCode,
    name: &str,
    extra: Value,
) -> Result<Response, WebError> {
    let banner = calendar_banner(app, ctx);
    let extra = context! { calendar_banner => banner, ..extra };
    Ok(Page {
        status,
        body: app.render(name, base_ctx(ctx, extra))?,
        cookies: Vec::new(),
    }
    .into_response())
}

pub(super) fn now() -> jiff::Timestamp {
    crate::clock::now()
}

pub(super) fn today(app: &App) -> Date {
    app.settings().time_zone.to_datetime(now()).date()
}

/// How people know each PC: its hostname, with the agent id beside it where two
/// agents share a hostname (a re-installed PC, two PCs with one name).
fn pc_names(app: &App) -> Result<std::collections::HashMap<String, String>, WebError> {
    let agents = app.store.agents()?;
    Ok(pc_labels(
        agents.iter().map(|a| (a.id.as_str(), a.hostname.as_str())),
    ))
}

/// [`pc_names`] of (agent id, hostname) pairs.
fn pc_labels<'a>(
    agents: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> std::collections::HashMap<String, String> {
    let mut count: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (_, hostname) in agents.clone() {
        *count.entry(hostname).or_default() += 1;
    }
    agents
        .map(|(id, hostname)| {
            let name = match count.get(hostname) {
                _ if hostname.is_empty() => id.to_owned(),
                Some(1) => hostname.to_owned(),
                _ => format!("{hostname} ({id})"),
            };
            (id.to_owned(), name)
        })
        .collect()
}

pub(super) fn status_label(lang: Lang, s: Status) -> String {
    i18n::t(lang, &format!("status_{}", status_name(s)))
}

pub(super) fn local_hm(app: &App, t: Option<jiff::Timestamp>) -> String {
    t.map(|t| {
        app.settings()
            .time_zone
            .to_datetime(t)
            .strftime("%H:%M")
            .to_string()
    })
    .unwrap_or_else(|| "—".into())
}

/// The person with `id`, checked against `action` for `user`: 403 before 404, so
/// a staff member learns nothing about ids that are not theirs.
pub(super) fn person_for(
    app: &App,
    user: &User,
    id: &str,
    action: Action,
) -> Result<Person, WebError> {
    let person = app.store.person(id)?;
    let department = person.as_ref().map_or("", |p| p.department.as_str());
    if !can(
        user,
        action,
        Target::Person {
            employee_id: id,
            department,
        },
    ) {
        return Err(WebError::Forbidden);
    }
    person.ok_or(WebError::NotFound)
}

/// What a page about one person's month starts from.
struct PersonMonth {
    person: Person,
    first: Date,
    last: Date,
    /// `YYYY-MM`.
    month: String,
}

/// The person `id` (checked for viewing by `user`) and the month asked for, with
/// the view audited as `what` and the month.
fn person_month(
    app: &App,
    user: &User,
    id: &str,
    month: Option<&str>,
    what: &str,
) -> Result<PersonMonth, WebError> {
    let person = person_for(app, user, id, Action::View)?;
    let (first, last) = parse_month(app, month)?;
    let month = first.strftime("%Y-%m").to_string();
    audit_view(app, user, &person.employee_id, &format!("{what} {month}"))?;
    Ok(PersonMonth {
        person,
        first,
        last,
        month,
    })
}

/// Audits a view of someone else's record.
pub(super) fn audit_view(
    app: &App,
    user: &User,
    employee_id: &str,
    what: &str,
) -> Result<(), WebError> {
    if user.employee_id.as_deref() != Some(employee_id) {
        audit::record(
            &*app.store,
            &user.username,
            "record.view",
            employee_id,
            what,
        )?;
    }
    Ok(())
}

/// One person's verdicts on `from..=to`, corrections applied, evidence included.
pub(super) fn person_days(
    app: &App,
    p: &Person,
    from: Date,
    to: Date,
) -> Result<Vec<ReportDay>, WebError> {
    Ok(summary::load_days(
        &*app.store,
        &app.rules(),
        from,
        to,
        std::slice::from_ref(p),
        crate::verdicts::Detail::Full,
        now(),
    )?)
}

pub(super) fn parse_month(app: &App, month: Option<&str>) -> Result<(Date, Date), WebError> {
    let first = match month {
        Some(m) => format!("{m}-01")
            .parse::<Date>()
            .map_err(|e| WebError::BadParam {
                name: "month".into(),
                problem: format!("{m:?}: {e}"),
            })?,
        None => today(app).first_of_month(),
    };
    Ok((first, first.last_of_month()))
}

// ---------------------------------------------------------------- login

async fn home(State(app): St, ctx: Ctx) -> Response {
    blocking(app, ctx, |_, ctx| {
        let u = ctx.user()?;
        Ok(if u.role == Role::Staff {
            redirect("/me", Vec::new())
        } else {
            redirect("/today", Vec::new())
        })
    })
    .await
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login_page(State(app): St, ctx: Ctx) -> Response {
    blocking(app, ctx, |app, ctx| {
        page(app, ctx, "login.html", context! {})
    })
    .await
}

async fn login(State(app): St, ctx: Ctx, Form(f): Form<LoginForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        // Only failed attempts are charged, per username and per source address;
        // the limits are checked before the password hash is computed, so a
        // refused attempt costs nothing and tells nothing.
        let key = f.username.trim().to_lowercase();
        if key.len() > super::MAX_USERNAME_BYTES {
            return page_with_status(
                app,
                ctx,
                StatusCode::UNAUTHORIZED,
                "login.html",
                context! { error => true },
            );
        }
        let at = now().as_millisecond();
        let by_address = ctx
            .peer
            .is_none_or(|ip| app.logins_by_address.has_token(&ip, at));
        if !by_address || !app.logins.has_token(&key, at) {
            tracing::warn!(username = %f.username, peer = ?ctx.peer, "Too many failed login attempts.");
            return page_with_status(
                app,
                ctx,
                StatusCode::TOO_MANY_REQUESTS,
                "login.html",
                context! { locked => true, username => f.username },
            );
        }
        let mut user = app.store.check_login(f.username.trim(), &f.password)?;
        if user.is_none()
            && let Some(ldap) = &app.ldap
        {
            match crate::ldap::sign_in(&*app.store, ldap, f.username.trim(), &f.password, at) {
                Ok(u) => {
                    tracing::info!(username = %f.username, role = u.role.as_str(), "Signed in through the office directory.");
                    user = Some(u);
                }
                Err(crate::ldap::Refused::Unavailable(e)) => {
                    tracing::warn!(username = %f.username, error = %e, "The office directory did not answer.");
                }
                Err(why) => {
                    tracing::info!(username = %f.username, reason = %why, "Directory sign-in refused.");
                }
            }
        }
        let Some(user) = user else {
            app.logins.take(key, at);
            if let Some(ip) = ctx.peer {
                app.logins_by_address.take(ip, at);
            }
            tracing::info!(username = %f.username, peer = ?ctx.peer, "Failed login.");
            crate::metrics::get().login_failures.inc();
            return page_with_status(
                app,
                ctx,
                StatusCode::UNAUTHORIZED,
                "login.html",
                context! { error => true, username => f.username },
            );
        };
        let token = app.store.create_session(user.id, now().as_millisecond())?;
        let cookie = app.session_set_cookie(&token, crate::users::SESSION_TTL_MS / 1000);
        let to = if user.must_change_password {
            "/password"
        } else {
            "/"
        };
        Ok(redirect(to, vec![cookie]))
    })
    .await
}

async fn logout(State(app): St, ctx: Ctx) -> Response {
    blocking(app, ctx, |app, ctx| {
        if let Some(s) = &ctx.session {
            app.store.end_session(s)?;
        }
        Ok(redirect("/login", vec![app.session_set_cookie("", 0)]))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    current: String,
    new: String,
    confirm: String,
}

async fn password_page(State(app): St, ctx: Ctx) -> Response {
    blocking(app, ctx, |app, ctx| {
        let u = ctx.user.as_ref().ok_or(WebError::Login)?;
        page(
            app,
            ctx,
            "password.html",
            context! { forced => u.must_change_password },
        )
    })
    .await
}

async fn password(State(app): St, ctx: Ctx, Form(f): Form<PasswordForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user.as_ref().ok_or(WebError::Login)?;
        let fail = |key: &str, detail: String| {
            page_with_status(
                app,
                ctx,
                StatusCode::BAD_REQUEST,
                "password.html",
                context! { forced => u.must_change_password, error => i18n::t(ctx.lang, key), detail => detail },
            )
        };
        if app.store.check_login(&u.username, &f.current)?.is_none() {
            return fail("bad_login", String::new());
        }
        if f.new != f.confirm {
            return fail("mismatch", String::new());
        }
        if f.new == f.current {
            return fail("bad_request", "the new password must differ".into());
        }
        if let Err(e) = app.store.set_password(u.id, &f.new) {
            return fail("bad_request", e.to_string());
        }
        app.store.end_sessions_of(u.id, ctx.session.as_deref())?;
        audit::record(&*app.store, &u.username, "user.password", &u.username, "")?;
        Ok(redirect("/", Vec::new()))
    })
    .await
}

// ---------------------------------------------------------------- summary

#[derive(Debug, Deserialize, Default, Clone)]
struct SummaryQuery {
    from: Option<Date>,
    to: Option<Date>,
    department: Option<String>,
    by: Option<String>,
    sort: Option<String>,
    format: Option<String>,
}

struct SummaryData {
    from: Date,
    to: Date,
    by: By,
    department: Option<String>,
    rows: Vec<SummaryRow>,
    /// (Monday, late minutes, non-work minutes) per week.
    weeks: Vec<summary::Week>,
    departments: Vec<String>,
}

/// The departments `user` may `action` (for the filter), and the people of
/// `department` (or of every department) they may, in employee id order.
pub(super) fn in_scope(
    app: &App,
    user: &User,
    action: Action,
    department: Option<&str>,
) -> Result<(Vec<String>, Vec<Person>), WebError> {
    let staff = app.store.staff()?;
    let mut departments: Vec<String> = staff
        .iter()
        .map(|p| p.department.clone())
        .filter(|d| can(user, action, Target::Department(d)))
        .collect();
    departments.sort();
    departments.dedup();
    let people: Vec<Person> = staff
        .into_iter()
        .filter(|p| {
            department.is_none_or(|x| p.department == x)
                && can(
                    user,
                    action,
                    Target::Person {
                        employee_id: &p.employee_id,
                        department: &p.department,
                    },
                )
        })
        .collect();
    Ok((departments, people))
}

/// The summary a user may see: checks the department (or all) against `action`.
fn summary_data(
    app: &App,
    user: &User,
    q: &SummaryQuery,
    action: Action,
) -> Result<SummaryData, WebError> {
    let department = q.department.clone().filter(|d| !d.is_empty());
    let allowed = match &department {
        Some(d) => can(user, action, Target::Department(d)),
        // Without a department: all of them for those who may, else their scope.
        None => {
            user.role != Role::Staff
                && (can(user, action, Target::All) || !user.departments.is_empty())
        }
    };
    if !allowed {
        return Err(WebError::Forbidden);
    }
    let t = today(app);
    let from = q.from.unwrap_or_else(|| t.first_of_month());
    let to = q.to.unwrap_or(t);
    check_period(from, to)?;
    let by = match q.by.as_deref() {
        Some("department") => By::Department,
        _ => By::Staff,
    };
    let (departments, people) = in_scope(app, user, action, department.as_deref())?;
    let (mut rows, weeks) =
        summary::summary_between(&*app.store, &app.rules(), from, to, by, &people, now())?;
    if let Some(s) = &q.sort {
        summary::sort_rows(&mut rows, s);
    }
    Ok(SummaryData {
        from,
        to,
        by,
        department,
        rows,
        weeks,
        departments,
    })
}

/// The periods an officer reviews most, as links: this week, this month (the
/// default, up to today) and last month; the form is for any other.
fn quick_periods(today: Date, lang: Lang, d: &SummaryData) -> Vec<Value> {
    let monday = today
        .checked_sub(jiff::Span::new().days(i64::from(today.weekday().to_monday_zero_offset())))
        .unwrap_or(today);
    let this_month = today.first_of_month();
    let last_month = this_month
        .yesterday()
        .unwrap_or(this_month)
        .first_of_month();
    let last_month_end = this_month.yesterday().unwrap_or(this_month);
    [
        ("this_week", monday, today),
        ("this_month", this_month, today),
        ("last_month", last_month, last_month_end),
    ]
    .into_iter()
    .map(|(key, from, to)| {
        let mut href = format!("/summary?from={from}&to={to}");
        if let Some(dep) = &d.department {
            href.push_str(&format!("&department={}", urlencode(dep)));
        }
        context! {
            label => i18n::t(lang, key), href => href,
            current => d.from == from && d.to == to, id => key,
        }
    })
    .collect()
}

fn query_string(q: &SummaryQuery, d: &SummaryData) -> String {
    let mut s = format!("from={}&to={}", d.from, d.to);
    if let Some(dep) = &d.department {
        s.push_str(&format!("&department={}", urlencode(dep)));
    }
    if d.by == By::Department {
        s.push_str("&by=department");
    }
    if let Some(sort) = &q.sort {
        s.push_str(&format!("&sort={}", urlencode(sort)));
    }
    s
}

pub(super) fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn summary_page(State(app): St, ctx: Ctx, Query(q): Query<SummaryQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let d = summary_data(app, u, &q, Action::View)?;
        audit::record(
            &*app.store,
            &u.username,
            "summary.view",
            d.department.as_deref().unwrap_or("*"),
            &format!("{}..{}", d.from, d.to),
        )?;
        let lang = ctx.lang;
        let rows: Vec<Value> = d
            .rows
            .iter()
            .map(|r| {
                let cats: Vec<Value> = summary::CATEGORIES
                    .iter()
                    .map(|c| Value::from(r.nonwork_seconds.get(*c).copied().unwrap_or(0) / 60))
                    .collect();
                context! {
                    key => r.key, name => r.name, department => r.department,
                    people => r.people, workdays => r.workdays, present_days => r.present_days,
                    late_count => r.late_count, late_minutes => r.late_minutes,
                    early_count => r.early_count, early_minutes => r.early_minutes,
                    absent_days => r.absent_days, leave_days => r.leave_days,
                    field_days => r.field_days, unknown_days => r.unknown_days,
                    unverified_days => r.unverified_days,
                    corrected_days => r.corrected_days,
                    nonwork_minutes => r.nonwork_minutes(), categories => cats,
                    coverage => r.coverage_percent().map(|p| format!("{p}%")).unwrap_or_else(|| "—".into()),
                    link => (d.by == By::Staff).then(|| format!("/person/{}?month={}", r.key, &d.from.to_string()[..7])),
                }
            })
            .collect();
        let cat_names: Vec<String> = summary::CATEGORIES
            .iter()
            .map(|c| i18n::category(lang, c))
            .collect();
        let weeks = d.weeks.clone();
        let chart = super::svg::trend(
            &weeks,
            &i18n::t(lang, "late_minutes"),
            &i18n::t(lang, "nonwork_minutes"),
        );
        let qs = query_string(&q, &d);
        let base_qs = {
            let mut s = format!("from={}&to={}", d.from, d.to);
            if let Some(dep) = &d.department {
                s.push_str(&format!("&department={}", urlencode(dep)));
            }
            if d.by == By::Department {
                s.push_str("&by=department");
            }
            s
        };
        page(
            app,
            ctx,
            "summary.html",
            context! {
                from => d.from.to_string(), to => d.to.to_string(),
                department => d.department, departments => d.departments,
                by_department => d.by == By::Department,
                rows => rows, categories => cat_names,
                chart => Value::from_safe_string(chart),
                qs => qs, base_qs => base_qs, sort => q.sort,
                provisional => provisional_note(app, lang, d.from, d.to),
                periods => quick_periods(today(app), lang, &d),
            },
        )
    })
    .await
}

async fn summary_export(State(app): St, ctx: Ctx, Query(q): Query<SummaryQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let d = summary_data(app, u, &q, Action::Export)?;
        let (format, mime, ext) = match q.format.as_deref() {
            Some("xlsx") => (
                summary::Format::Xlsx,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "xlsx",
            ),
            Some("json") => (summary::Format::Json, "application/json", "json"),
            _ => (summary::Format::Csv, "text/csv; charset=utf-8", "csv"),
        };
        let mut body = Vec::new();
        let note = crate::reports::provisional_note(&app.rules(), d.from, d.to);
        summary::render(&d.rows, format, note.as_deref(), &mut body)?;
        audit::record(
            &*app.store,
            &u.username,
            "report.export",
            d.department.as_deref().unwrap_or("*"),
            &format!("summary {}..{} {ext}", d.from, d.to),
        )?;
        Ok((
            [
                (header::CONTENT_TYPE, mime.to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"kaoqin-summary-{}-{}.{ext}\"",
                        d.from, d.to
                    ),
                ),
            ],
            body,
        )
            .into_response())
    })
    .await
}

// ---------------------------------------------------------------- a person's month

#[derive(Debug, Deserialize, Default)]
struct MonthQuery {
    month: Option<String>,
    day: Option<Date>,
    filed: Option<String>,
}

async fn me(State(app): St, ctx: Ctx, Query(q): Query<MonthQuery>) -> Response {
    blocking(app, ctx, move |_, ctx| {
        let u = ctx.user()?;
        let id = u.employee_id.as_ref().ok_or(WebError::NotFound)?;
        let mut to = format!("/person/{}", urlencode(id));
        if let Some(m) = &q.month {
            to.push_str(&format!("?month={}", urlencode(m)));
        }
        Ok(redirect(&to, Vec::new()))
    })
    .await
}

/// The name of a PC state, as its message key ends (`pc_state_in_use`).
fn state_name(s: crate::attendance::timeline::PcState) -> &'static str {
    use crate::attendance::timeline::PcState as S;
    match s {
        S::InUse => "in_use",
        S::LockedOrIdle => "locked_or_idle",
        S::NobodyLoggedOn => "nobody_logged_on",
        S::Off => "off",
        S::NotRunning => "not_running",
    }
}

/// Minutes since local midnight of `t`.
fn minute_of_day(app: &App, t: jiff::Timestamp) -> u32 {
    let time = app.settings().time_zone.to_datetime(t).time();
    u32::from(time.hour().unsigned_abs()) * 60 + u32::from(time.minute().unsigned_abs())
}

/// The small bar of a day: the office day, and presence from arrival to departure
/// in the colour of the day's status.
fn day_bar(app: &App, rules: &Rules, v: &crate::attendance::DayVerdict) -> String {
    let office = rules
        .calendar
        .day_kind(v.date)
        .is_working()
        .then(|| {
            let (schedule, _) = rules.schedules.schedule_for(&v.department, v.date);
            match schedule {
                crate::attendance::Schedule::Fixed { .. } => schedule
                    .sessions_on(v.date)
                    .and_then(|(s, _)| Some((s.first()?.start, s.last()?.end))),
                crate::attendance::Schedule::Flexible(f) => Some((f.core_start, f.core_end)),
            }
        })
        .flatten()
        .map(|(a, b)| {
            let m = |t: jiff::civil::Time| {
                u32::from(t.hour().unsigned_abs()) * 60 + u32::from(t.minute().unsigned_abs())
            };
            (m(a), m(b))
        });
    let present = v.arrival.zip(v.departure).map(|(a, d)| {
        (
            minute_of_day(app, a),
            minute_of_day(app, d).max(minute_of_day(app, a)),
        )
    });
    let colour = match v.status {
        crate::attendance::Status::Absent => "#c0392b",
        crate::attendance::Status::Unknown => "#95a5a6",
        _ if v.late_minutes > 0 || v.early_minutes > 0 => "#e67e22",
        _ => "#2e8b57",
    };
    super::svg::day_bar(office, present, colour)
}

fn day_cell(app: &App, rules: &Rules, lang: Lang, d: &ReportDay, base: &str) -> Value {
    let v = &d.verdict;
    let nonwork: u64 = v.nonwork_seconds.values().sum::<u64>() / 60;
    let (unverified_late, unverified_early) = v.unverified_minutes();
    context! {
        unverified_late => unverified_late,
        unverified_early => unverified_early,
        date => v.date.to_string(),
        day => v.date.day(),
        status => status_name(v.status),
        label => status_label(lang, v.status),
        late => v.late_minutes,
        early => v.early_minutes,
        nonwork => nonwork,
        arrival => local_hm(app, v.arrival),
        departure => local_hm(app, v.departure),
        corrected => d.correction.is_some(),
        provisional => v.provisional,
        link => format!("{base}&day={}", v.date),
        bar => Value::from_safe_string(day_bar(app, rules, v)),
    }
}

async fn person_page(
    State(app): St,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<MonthQuery>,
) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let PersonMonth {
            person: p,
            first,
            last,
            month,
        } = person_month(app, u, &id, q.month.as_deref(), "month")?;
        let days = person_days(app, &p, first, last)?;
        let lang = ctx.lang;
        let base = format!("/person/{}?month={month}", urlencode(&p.employee_id));
        // Monday-first weeks; empty cells before the first day.
        let lead = first.weekday().to_monday_zero_offset() as usize;
        let mut cells: Vec<Value> = vec![Value::from(()); lead];
        let rules = app.rules();
        cells.extend(days.iter().map(|d| day_cell(app, &rules, lang, d, &base)));
        while !cells.len().is_multiple_of(7) {
            cells.push(Value::from(()));
        }
        let weeks: Vec<Vec<Value>> = cells.chunks(7).map(<[Value]>::to_vec).collect();
        let pc_names = pc_names(app)?;
        let selected = q
            .day
            .and_then(|d| days.iter().find(|x| x.verdict.date == d))
            .map(|d| -> Result<Value, WebError> {
                let v = &d.verdict;
                let tz = &app.settings().time_zone;
                let picture = crate::verdicts::day_timeline(
                    &*app.store,
                    &rules,
                    &p,
                    v.date,
                    now(),
                )?;
                let state = |s| i18n::t(lang, &format!("pc_state_{}", state_name(s)));
                let category = |c: &str| i18n::category(lang, c);
                let pc = |id: &str| pc_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
                let words = super::svg::DayWords {
                    office: &i18n::t(lang, "office_hours"),
                    arrival: &i18n::t(lang, "arrival"),
                    departure: &i18n::t(lang, "departure"),
                    exempt: &i18n::t(lang, "exempted"),
                    now: &i18n::t(lang, "now"),
                    state: &state,
                    category: &category,
                    pc: &pc,
                };
                let picture = super::svg::day_timeline(&picture, tz, &words);
                let evidence: Vec<Value> = v
                    .evidence
                    .iter()
                    .map(|e| {
                        context! {
                            time => tz.to_datetime(e.at).strftime("%H:%M").to_string(),
                            pc => pc_names.get(&e.pc).unwrap_or(&e.pc), what => e.say(lang),
                            code => e.said.as_ref().map(|s| s.code()),
                        }
                    })
                    .collect();
                let nonwork: Vec<Value> = v
                    .nonwork_seconds
                    .iter()
                    .map(|(c, s)| context! { name => i18n::category(lang, c), minutes => s / 60 })
                    .collect();
                Ok(context! {
                    cell => day_cell(app, &rules, lang, d, &base),
                    picture => Value::from_safe_string(picture),
                    evidence => evidence,
                    nonwork => nonwork,
                    policy_note => v.reasons(lang),
                    correction => d.correction.as_ref().map(|c| context! {
                        who => c.who, why => c.why,
                        original => c.original.map(|s| status_label(lang, s)),
                    }),
                })
            })
            .transpose()?;
        let can_appeal = can(
            u,
            Action::Appeal,
            Target::Person {
                employee_id: &p.employee_id,
                department: &p.department,
            },
        );
        let appeals: Vec<Value> = app
            .store
            .appeals(Some(&p.employee_id), false)?
            .iter()
            .map(|a| appeal_value(lang, a))
            .collect();
        let appealable: Vec<(&str, String)> = corrections::APPEALABLE
            .iter()
            .map(|s| (status_name(*s), status_label(lang, *s)))
            .collect();
        let totals = summary::summarize(&days, By::Staff);
        let prev = first.saturating_sub(1.day()).strftime("%Y-%m").to_string();
        let next = last.saturating_add(1.day()).strftime("%Y-%m").to_string();
        page(
            app,
            ctx,
            "person.html",
            context! {
                person => context! { id => p.employee_id, name => p.name, department => p.department },
                month => month, prev => prev, next => next,
                weeks => weeks, selected => selected,
                can_appeal => can_appeal, appealable => appealable,
                appeals => appeals, filed => q.filed.is_some(),
                provisional => provisional_note(app, lang, first, last),
                total => totals.first().map(|r| context! {
                    present_days => r.present_days, late_count => r.late_count,
                    late_minutes => r.late_minutes, early_count => r.early_count,
                    early_minutes => r.early_minutes, absent_days => r.absent_days,
                    unknown_days => r.unknown_days, nonwork_minutes => r.nonwork_minutes(),
                    unverified_days => r.unverified_days,
                }),
            },
        )
    })
    .await
}

async fn pc_page(
    State(app): St,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<MonthQuery>,
) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let PersonMonth {
            person: p,
            first,
            last,
            month,
        } = person_month(app, u, &id, q.month.as_deref(), "pc")?;
        let lang = ctx.lang;
        let days = person_days(app, &p, first, last.min(today(app)).max(first))?;
        let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
        let rows: Vec<Value> = days
            .iter()
            .filter(|d| !matches!(d.verdict.status, Status::Rest | Status::Holiday) || !d.verdict.nonwork_seconds.is_empty())
            .map(|d| {
                let v = &d.verdict;
                for (c, s) in &v.nonwork_seconds {
                    *totals.entry(c.clone()).or_default() += s;
                }
                let words: Vec<String> = v
                    .nonwork_seconds
                    .iter()
                    .map(|(c, s)| {
                        if lang == Lang::Zh {
                            format!("{} {} 分钟", i18n::category(lang, c), s / 60)
                        } else {
                            format!("{} {} min", i18n::category(lang, c), s / 60)
                        }
                    })
                    .collect();
                context! {
                    date => v.date.to_string(),
                    arrival => local_hm(app, v.arrival),
                    departure => local_hm(app, v.departure),
                    words => if words.is_empty() { i18n::t(lang, "pc_day_none") } else { words.join("，") },
                }
            })
            .collect();
        let totals: Vec<Value> = totals
            .iter()
            .map(|(c, s)| context! { name => i18n::category(lang, c), minutes => s / 60 })
            .collect();
        page(
            app,
            ctx,
            "pc.html",
            context! {
                person => context! { id => p.employee_id, name => p.name },
                month => month, rows => rows, totals => totals,
            },
        )
    })
    .await
}

// ---------------------------------------------------------------- appeals

fn appeal_value(lang: Lang, a: &corrections::Appeal) -> Value {
    context! {
        id => a.id, employee_id => a.employee_id, date => a.date.to_string(),
        requested => status_label(lang, a.requested_status),
        reason => a.reason, state => a.state,
        state_label => i18n::t(lang, &format!("state_{}", a.state)),
        decided_by => a.decided_by, comment => a.comment,
    }
}

#[derive(Debug, Deserialize)]
struct AppealForm {
    employee_id: String,
    date: Date,
    requested_status: String,
    reason: String,
}

async fn file_appeal(State(app): St, ctx: Ctx, Form(f): Form<AppealForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let p = person_for(app, u, &f.employee_id, Action::Appeal)?;
        let status = corrections::parse_status(&f.requested_status)
            .ok_or_else(|| WebError::BadRequest("requested_status".into()))?;
        let today = app.settings().time_zone.to_datetime(now()).date();
        app.store.add_appeal(
            &p.employee_id,
            f.date,
            status,
            &f.reason,
            &u.username,
            today,
            app.appeal_limits,
            now().as_millisecond(),
        )?;
        Ok(redirect(
            &format!(
                "/person/{}?month={}&day={}&filed=1",
                urlencode(&p.employee_id),
                &f.date.to_string()[..7],
                f.date
            ),
            Vec::new(),
        ))
    })
    .await
}

/// Open appeals on one page of the appeals list.
const APPEALS_PER_PAGE: u32 = 50;

#[derive(Debug, Deserialize)]
struct PageQuery {
    /// 1-based.
    page: Option<u32>,
}

async fn appeals_page(State(app): St, ctx: Ctx, Query(q): Query<PageQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let lang = ctx.lang;
        let staff = app.store.staff()?;
        let dept_of = |id: &str| {
            staff
                .iter()
                .find(|p| p.employee_id == id)
                .map(|p| (p.name.clone(), p.department.clone()))
                .unwrap_or_default()
        };
        let decider = matches!(u.role, Role::Officer | Role::Admin);
        let visible = |a: &corrections::Appeal| {
            let (_, dept) = dept_of(&a.employee_id);
            let t = Target::Person {
                employee_id: &a.employee_id,
                department: &dept,
            };
            if decider {
                can(u, Action::Decide, t)
            } else {
                can(u, Action::View, t)
            }
        };
        let all = app.store.appeals(None, false)?;
        let with_names = |a: &corrections::Appeal| {
            let (name, dept) = dept_of(&a.employee_id);
            context! { name => name, department => dept, ..appeal_value(lang, a) }
        };
        // Every open appeal, oldest first, a page at a time: never cut off.
        let page_no = q.page.unwrap_or(1).max(1);
        let (open_page, open_total) = app.store.open_appeals(
            APPEALS_PER_PAGE,
            (page_no - 1).saturating_mul(APPEALS_PER_PAGE),
        )?;
        let pages = open_total.div_ceil(u64::from(APPEALS_PER_PAGE)).max(1);
        let open: Vec<Value> = open_page
            .iter()
            .filter(|a| visible(a))
            .map(with_names)
            .collect();
        let decided: Vec<Value> = all
            .iter()
            .filter(|a| a.state != "open" && visible(a))
            .take(100)
            .map(with_names)
            .collect();
        page(
            app,
            ctx,
            "appeals.html",
            context! {
                open => open, decided => decided, decider => decider,
                page => page_no, pages => pages, open_total => open_total,
            },
        )
    })
    .await
}

#[derive(Debug, Deserialize)]
struct DecideForm {
    decision: String,
    #[serde(default)]
    comment: String,
}

async fn decide_appeal(
    State(app): St,
    ctx: Ctx,
    Path(id): Path<i64>,
    Form(f): Form<DecideForm>,
) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let a = app.store.appeal(id)?.ok_or(WebError::NotFound)?;
        let dept = app
            .store
            .staff()?
            .into_iter()
            .find(|p| p.employee_id == a.employee_id)
            .map(|p| p.department)
            .unwrap_or_default();
        if !can(
            u,
            Action::Decide,
            Target::Person {
                employee_id: &a.employee_id,
                department: &dept,
            },
        ) {
            return Err(WebError::Forbidden);
        }
        let approve = match f.decision.as_str() {
            "approve" => true,
            "reject" => false,
            _ => return Err(WebError::BadRequest("decision: approve or reject".into())),
        };
        app.store.decide_appeal(
            id,
            approve,
            &f.comment,
            &u.username,
            u.employee_id.as_deref(),
            now().as_millisecond(),
        )?;
        Ok(redirect("/appeals", Vec::new()))
    })
    .await
}

// ---------------------------------------------------------------- operations

async fn system_page(State(app): St, ctx: Ctx) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        if !can(u, Action::Operate, Target::System) {
            return Err(WebError::Forbidden);
        }
        let tz = &app.settings().time_zone;
        let when = |ms: Option<i64>| {
            ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .map(|t| tz.to_datetime(t).strftime("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| i18n::t(ctx.lang, "never"))
        };
        let unmapped: Vec<Value> = app
            .store
            .unmapped_accounts()?
            .iter()
            .map(|x| {
                context! {
                    account => x.account,
                    pcs => x.pcs.iter().map(|(id, host)| format!("{host} ({id})")).collect::<Vec<_>>().join(", "),
                    last_seen => when(Some(x.last_seen_ms)),
                }
            })
            .collect();
        let now_ms = now().as_millisecond();
        let silent: Vec<Value> = silent_agents(app, now_ms)?
            .into_iter()
            .map(|(id, host, last)| context! { id => id, hostname => host, last_seen => when(last) })
            .collect();
        // Agent-made items (stops, gaps) and the collector's own (refusals,
        // enrolments) of the last week; silence is the table above.
        let items = integrity_week(app, now_ms)?;
        let counts = crate::integrity::counts(&items);
        let integrity: Vec<Value> = items
            .iter()
            .rev()
            .take(500)
            .map(|i| {
                context! {
                    at => when(Some(i.at_ms)), hostname => i.hostname, id => i.agent_id,
                    kind => i.kind, seq => i.seq, detail => i.detail,
                }
            })
            .collect();
        let outbox: Vec<Value> = app
            .store
            .notifications(None, 1_000)?
            .into_iter()
            .filter(|n| n.sent_ms.is_none())
            .take(200)
            .map(|n| {
                context! {
                    date => n.outgoing.date.to_string(), recipient => n.outgoing.recipient,
                    subject => n.outgoing.subject, attempts => n.attempts,
                    next => when(Some(n.next_ms)), error => n.last_error,
                }
            })
            .collect();
        page(
            app,
            ctx,
            "system.html",
            context! {
                unmapped => unmapped, silent => silent, integrity => integrity,
                counts => counts.join(" · "), outbox => outbox,
            },
        )
    })
    .await
}

/// The integrity items of the week up to `now_ms`, silence left out.
pub(super) fn integrity_week(
    app: &App,
    now_ms: i64,
) -> Result<Vec<crate::integrity::IntegrityItem>, WebError> {
    let week = 7 * 24 * 3_600_000;
    Ok(crate::integrity::list(
        &*app.store,
        &crate::integrity::Query {
            from_ms: now_ms - week,
            to_ms: now_ms + 1,
            large_offset_ms: app.settings().large_offset_ms,
            silent_ms: i64::MAX,
            now_ms,
        },
    )?)
}

/// Enrolled, unrevoked agents not heard from for [`super::SILENT_AFTER_MS`].
fn silent_agents(app: &App, now_ms: i64) -> Result<Vec<(String, String, Option<i64>)>, WebError> {
    Ok(app.store.silent_agents(now_ms - super::SILENT_AFTER_MS)?)
}

async fn audit_page(State(app): St, ctx: Ctx) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        if !can(u, Action::Administer, Target::System) {
            return Err(WebError::Forbidden);
        }
        let entries = audit::recent(&*app.store, 500)?;
        let tz = &app.settings().time_zone;
        let rows: Vec<Value> = entries
            .iter()
            .map(|e| {
                context! {
                    at => jiff::Timestamp::from_millisecond(e.at_ms).map(|t| tz.to_datetime(t).strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
                    actor => e.actor, action => e.action, subject => e.subject, detail => e.detail,
                }
            })
            .collect();
        page(app, ctx, "audit.html", context! { rows => rows })
    })
    .await
}

// ---------------------------------------------------------------- JSON API

async fn api_summary(State(app): St, ctx: Ctx, Query(q): Query<SummaryQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let d = summary_data(app, u, &q, Action::Export)?;
        audit::record(
            &*app.store,
            &u.username,
            "report.export",
            d.department.as_deref().unwrap_or("*"),
            &format!("api summary {}..{}", d.from, d.to),
        )?;
        Ok(axum::Json(&d.rows).into_response())
    })
    .await
}

#[derive(Debug, Deserialize)]
struct RangeQuery {
    from: Date,
    to: Date,
}

async fn api_person_days(
    State(app): St,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        let p = person_for(app, u, &id, Action::View)?;
        check_period(q.from, q.to)?;
        audit_view(
            app,
            u,
            &p.employee_id,
            &format!("api days {}..{}", q.from, q.to),
        )?;
        let days = person_days(app, &p, q.from, q.to)?;
        Ok(axum::Json(&days).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn pcs_are_named_by_hostname_with_the_id_only_where_two_share_one() {
        let agents = [
            ("ag-1", "room-101"),
            ("ag-2", "reinstalled"),
            ("ag-3", "reinstalled"),
            ("ag-4", ""),
        ];
        let names = super::pc_labels(agents.iter().copied());
        assert_eq!(names["ag-1"], "room-101");
        assert_eq!(names["ag-2"], "reinstalled (ag-2)");
        assert_eq!(names["ag-3"], "reinstalled (ag-3)");
        assert_eq!(names["ag-4"], "ag-4");
    }
}

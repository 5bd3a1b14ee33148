//! The admin console: the staff directory (search, add and edit, a CSV upload
//! checked whole and previewed before anything is written, unmapped accounts
//! assigned), agents and enrolment tokens, accounts, and the calendar's notices.
//! Admins change things; officers see the staff and agents of their scope, read
//! only. Every change is audited.

use super::i18n;
use super::pages::{St, now, page, page_with_status, today, urlencode};
use super::params::{Form, Query};
use super::{App, Ctx, WebError, audit, blocking, redirect};
use crate::attendance::Person;
use crate::store::TokenSpec;
use crate::users::{Action, NewUser, Role, Target, User, can};
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::{Value, context};
use serde::Deserialize;
use std::sync::Arc;

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/admin/staff", get(staff_page))
        .route("/admin/staff/preview", post(staff_preview))
        .route("/admin/staff/import", post(staff_import))
        .route("/admin/staff/save", post(staff_save))
        .route("/admin/staff/assign", post(staff_assign))
        .route("/admin/staff/{id}/leave", post(staff_leave))
        .route("/admin/agents", get(agents_page))
        .route("/admin/agents/{id}/revoke", post(agent_revoke))
        .route("/admin/tokens", post(token_create))
        .route("/admin/tokens/{prefix}/revoke", post(token_revoke))
        .route("/admin/users", get(users_page).post(user_add))
        .route("/admin/users/{username}/token", post(user_token))
        .route("/admin/users/{username}/reset", post(user_reset))
        .route("/admin/schedules", get(schedules_page))
        .route("/admin/schedules/preview", post(schedules_preview))
        .route("/admin/schedules/save", post(schedules_save))
        .route("/admin/calendar", get(calendar_page))
        .route("/admin/calendar/import", post(calendar_import))
        .route("/admin/calendar/days", post(office_days_save))
}

/// May `user` see the console at all: admins, and officers read-only.
pub(super) fn console(user: &User) -> Result<bool, WebError> {
    match user.role {
        Role::Admin => Ok(true),
        Role::Officer => Ok(false),
        _ => Err(WebError::Forbidden),
    }
}

/// Only admins change things.
pub(super) fn admin(user: &User) -> Result<(), WebError> {
    if can(user, Action::Administer, Target::System) {
        Ok(())
    } else {
        Err(WebError::Forbidden)
    }
}

fn in_scope(user: &User, p: &Person) -> bool {
    can(
        user,
        Action::View,
        Target::Person {
            employee_id: &p.employee_id,
            department: &p.department,
        },
    )
}

pub(super) fn when(app: &App, ms: Option<i64>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| {
            app.settings()
                .time_zone
                .to_datetime(t)
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

fn person_value(p: &Person) -> Value {
    context! {
        id => p.employee_id, name => p.name, department => p.department,
        accounts => p.accounts.join(";"), own_pcs => p.own_pcs.join(";"), email => p.email,
        left_on => p.left_on.map(|d| d.to_string()),
    }
}

// ---------------------------------------------------------------- staff

#[derive(Debug, Deserialize, Default)]
struct StaffQuery {
    q: Option<String>,
    imported: Option<usize>,
    saved: Option<String>,
}

/// The staff page, with `extra` (a preview, problems) on top.
fn staff_view(
    app: &App,
    ctx: &Ctx,
    q: &StaffQuery,
    status: StatusCode,
    extra: Value,
) -> Result<Response, WebError> {
    let u = ctx.user()?;
    let editable = console(u)?;
    let needle = q.q.as_deref().unwrap_or("").trim().to_lowercase();
    let people: Vec<Value> = app
        .store
        .staff()?
        .iter()
        .filter(|p| in_scope(u, p))
        .filter(|p| {
            needle.is_empty()
                || [&p.employee_id, &p.name, &p.department, &p.email]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&needle))
                || p.accounts.iter().any(|a| a.contains(&needle))
        })
        .map(person_value)
        .collect();
    let unmapped: Vec<Value> = if editable {
        app.store
            .unmapped_accounts()?
            .iter()
            .map(|x| {
                context! {
                    account => x.account,
                    pcs => x.pcs.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>().join(", "),
                    last_seen => when(app, Some(x.last_seen_ms)),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    page_with_status(
        app,
        ctx,
        status,
        "admin_staff.html",
        context! {
            editable => editable, people => people, unmapped => unmapped,
            q => q.q, imported => q.imported, saved => q.saved,
            ..extra
        },
    )
}

async fn staff_page(State(app): St, ctx: Ctx, Query(q): Query<StaffQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        staff_view(app, ctx, &q, StatusCode::OK, context! {})
    })
    .await
}

/// The problems of a staff file, one a line, or its people.
fn parse_staff(name: &str, text: &str) -> Result<Vec<Person>, Vec<String>> {
    crate::staff::read_staff(name, text.as_bytes()).map_err(|e| {
        match e.downcast_ref::<crate::staff::FileErrors>() {
            Some(f) => f.0.clone(),
            None => vec![format!("{e:#}")],
        }
    })
}

/// OS accounts of `people` that belong to someone else in the directory who is
/// not in the file (the import would refuse them), in words.
fn clashes(current: &[Person], people: &[Person]) -> Vec<String> {
    let mut out = Vec::new();
    for p in people {
        for a in &p.accounts {
            let owner = current.iter().find(|c| {
                c.employee_id != p.employee_id
                    && !people.iter().any(|x| x.employee_id == c.employee_id)
                    && c.accounts.iter().any(|x| {
                        crate::attendance::account_matches(x, a)
                            || crate::attendance::account_matches(a, x)
                    })
            });
            if let Some(o) = owner {
                out.push(format!(
                    "{}: os_accounts: {a:?} already belongs to {} ({}) in the directory",
                    p.employee_id, o.employee_id, o.name
                ));
            }
        }
    }
    out
}

/// What importing `people` would do: (new, changed with what changes).
fn preview(current: &[Person], people: &[Person]) -> (Vec<Value>, Vec<Value>) {
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for p in people {
        match current.iter().find(|c| c.employee_id == p.employee_id) {
            None => added.push(person_value(p)),
            Some(c) if c != p => {
                let mut what = Vec::new();
                for (field, a, b) in [
                    ("name", c.name.clone(), p.name.clone()),
                    ("department", c.department.clone(), p.department.clone()),
                    ("os_accounts", c.accounts.join(";"), p.accounts.join(";")),
                    ("own_pcs", c.own_pcs.join(";"), p.own_pcs.join(";")),
                    ("email", c.email.clone(), p.email.clone()),
                ] {
                    if a != b {
                        what.push(format!("{field}: {a} → {b}"));
                    }
                }
                changed.push(context! { what => what.join("; "), ..person_value(p) });
            }
            Some(_) => {}
        }
    }
    (added, changed)
}

async fn staff_preview(State(app): St, ctx: Ctx, mut form: Multipart) -> Response {
    // The file, read here (the multipart stream is async); checked off the
    // async threads.
    let mut upload: Result<(String, String), String> = Err("no file was chosen".into());
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => {
                let name = field.file_name().unwrap_or("staff.csv").to_owned();
                upload = match field.bytes().await {
                    Ok(b) if b.len() > 4 << 20 => Err("the file is larger than 4 MiB".into()),
                    Ok(b) => String::from_utf8(b.to_vec())
                        .map(|t| (name.clone(), t))
                        .map_err(|_| format!("{name}: not UTF-8 text (save the CSV as UTF-8)")),
                    Err(e) => Err(format!("the upload failed: {e}")),
                };
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                upload = Err(format!("the upload failed: {e}"));
                break;
            }
        }
    }
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let q = StaffQuery::default();
        let (name, text) = match upload {
            Ok(x) => x,
            Err(e) => {
                return staff_view(
                    app,
                    ctx,
                    &q,
                    StatusCode::BAD_REQUEST,
                    context! { problems => vec![e] },
                );
            }
        };
        match parse_staff(&name, &text) {
            Err(problems) => staff_view(
                app,
                ctx,
                &q,
                StatusCode::BAD_REQUEST,
                context! { problems => problems, file => name },
            ),
            Ok(people) => {
                let current = app.store.staff()?;
                let clashes = clashes(&current, &people);
                if !clashes.is_empty() {
                    return staff_view(
                        app,
                        ctx,
                        &q,
                        StatusCode::BAD_REQUEST,
                        context! { problems => clashes, file => name },
                    );
                }
                let (added, changed) = preview(&current, &people);
                staff_view(
                    app,
                    ctx,
                    &q,
                    StatusCode::OK,
                    context! {
                        preview => context! {
                            file => name, csv => text, added => added, changed => changed,
                            total => people.len(),
                        },
                    },
                )
            }
        }
    })
    .await
}

#[derive(Debug, Deserialize)]
struct ImportForm {
    csv: String,
    #[serde(default)]
    file: String,
}

async fn staff_import(State(app): St, ctx: Ctx, Form(f): Form<ImportForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let name = if f.file.is_empty() {
            "staff.csv"
        } else {
            &f.file
        };
        let people = match parse_staff(name, &f.csv) {
            Ok(p) => p,
            Err(problems) => {
                return staff_view(
                    app,
                    ctx,
                    &StaffQuery::default(),
                    StatusCode::BAD_REQUEST,
                    context! { problems => problems, file => name },
                );
            }
        };
        let counts = app.store.import_staff(&people, now().as_millisecond())?;
        audit::record(
            &*app.store,
            &u.username,
            "staff.import",
            name,
            &format!("{} added, {} updated", counts.added, counts.updated),
        )?;
        Ok(redirect(
            &format!("/admin/staff?imported={}", people.len()),
            Vec::new(),
        ))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct PersonForm {
    employee_id: String,
    name: String,
    department: String,
    #[serde(default)]
    os_accounts: String,
    #[serde(default)]
    own_pcs: String,
    #[serde(default)]
    email: String,
}

async fn staff_save(State(app): St, ctx: Ctx, Form(f): Form<PersonForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        // One line of a staff file, checked by the same rules.
        let mut w = csv::Writer::from_writer(Vec::new());
        let row = [
            &f.employee_id,
            &f.name,
            &f.department,
            &f.os_accounts,
            &f.own_pcs,
            &f.email,
        ];
        w.write_record([
            "employee_id",
            "name",
            "department",
            "os_accounts",
            "own_pcs",
            "email",
        ])
        .and_then(|()| w.write_record(row))
        .map_err(anyhow::Error::from)?;
        let text = String::from_utf8(w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)
            .map_err(anyhow::Error::from)?;
        let people = match parse_staff("form", &text) {
            Ok(p) => p,
            Err(problems) => {
                return staff_view(
                    app,
                    ctx,
                    &StaffQuery::default(),
                    StatusCode::BAD_REQUEST,
                    context! { problems => problems },
                );
            }
        };
        app.store.import_staff(&people, now().as_millisecond())?;
        audit::record(
            &*app.store,
            &u.username,
            "staff.save",
            &f.employee_id,
            &text,
        )?;
        Ok(redirect(
            &format!("/admin/staff?saved={}", urlencode(f.employee_id.trim())),
            Vec::new(),
        ))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct LeaveForm {
    /// The last day worked; empty: the person is back.
    #[serde(default)]
    left_on: String,
}

/// Deactivates a person from the day after `left_on` (kept for history, never
/// deleted), or, with an empty `left_on`, makes them active again. Audited.
async fn staff_leave(
    State(app): St,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(f): Form<LeaveForm>,
) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let left_on = match f.left_on.trim() {
            "" => None,
            s => Some(
                s.parse::<jiff::civil::Date>()
                    .map_err(|_| WebError::BadField {
                        name: "left_on".into(),
                        problem: format!("{s:?}: a date such as 2026-12-31, or empty"),
                    })?,
            ),
        };
        app.store.set_left_on(
            &id,
            left_on,
            &format!("web:{}", u.username),
            now().as_millisecond(),
        )?;
        Ok(redirect(
            &format!("/admin/staff?saved={}", urlencode(&id)),
            Vec::new(),
        ))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct AssignForm {
    account: String,
    employee_id: String,
}

async fn staff_assign(State(app): St, ctx: Ctx, Form(f): Form<AssignForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let mut p = app
            .store
            .person(f.employee_id.trim())?
            .ok_or_else(|| WebError::BadField {
                name: "employee_id".into(),
                problem: format!("{:?} is not in the staff directory", f.employee_id),
            })?;
        let account = f.account.trim().to_ascii_lowercase();
        if !p.accounts.contains(&account) {
            p.accounts.push(account.clone());
        }
        app.store
            .import_staff(&[p.clone()], now().as_millisecond())?;
        audit::record(
            &*app.store,
            &u.username,
            "staff.assign_account",
            &p.employee_id,
            &account,
        )?;
        Ok(redirect(
            &format!("/admin/staff?saved={}", urlencode(&p.employee_id)),
            Vec::new(),
        ))
    })
    .await
}

// ---------------------------------------------------------------- agents and tokens

/// How long one slot of office time is when PCs' coverage is measured.
const COVERAGE_SLOT_MS: i64 = 15 * 60 * 1000;

/// This week's office time up to `now` (Monday on, working days, the office's
/// default schedule; core hours for flexible ones) in quarter-hour slots.
fn office_slots(app: &App, now: jiff::Timestamp) -> Vec<(i64, i64)> {
    let rules = app.rules();
    let tz = &rules.settings.time_zone;
    let today = tz.to_datetime(now).date();
    let monday =
        today.saturating_sub(jiff::Span::new().days(today.weekday().to_monday_zero_offset()));
    let mut slots = Vec::new();
    let mut date = monday;
    while date <= today {
        if rules.calendar.day_kind(date).is_working() {
            let (schedule, _) = rules.schedules.schedule_for("", date);
            let hours: Vec<(jiff::civil::Time, jiff::civil::Time)> = match schedule {
                crate::attendance::Schedule::Fixed { .. } => schedule
                    .sessions_on(date)
                    .map(|(s, _)| s.iter().map(|x| (x.start, x.end)).collect())
                    .unwrap_or_default(),
                crate::attendance::Schedule::Flexible(f) => vec![(f.core_start, f.core_end)],
            };
            for (start, end) in hours {
                let at = |t: jiff::civil::Time| {
                    tz.to_ambiguous_timestamp(date.to_datetime(t))
                        .compatible()
                        .map(|t| t.as_millisecond())
                };
                let (Ok(mut s), Ok(e)) = (at(start), at(end)) else {
                    continue;
                };
                let e = e.min(now.as_millisecond());
                while s < e {
                    slots.push((s, (s + COVERAGE_SLOT_MS).min(e)));
                    s += COVERAGE_SLOT_MS;
                }
            }
        }
        date = date.saturating_add(jiff::Span::new().days(1));
    }
    slots
}

fn agents_view(app: &App, ctx: &Ctx, extra: Value) -> Result<Response, WebError> {
    let u = ctx.user()?;
    let editable = console(u)?;
    // Coverage this week: the share of office quarter-hours each PC was heard in.
    let slots = office_slots(app, now());
    let heard: std::collections::HashMap<String, u32> = if slots.is_empty() {
        Default::default()
    } else {
        app.store.heard_in(&slots)?.into_iter().collect()
    };
    let coverage = |id: &str| {
        heard
            .get(id)
            .map(|n| format!("{}%", u64::from(*n) * 100 / slots.len() as u64))
    };
    // Integrity events of the last week, by agent.
    let mut events: std::collections::HashMap<String, usize> = Default::default();
    for i in super::pages::integrity_week(app, now().as_millisecond())? {
        *events.entry(i.agent_id).or_default() += 1;
    }
    let agents: Vec<Value> = app
        .store
        .agents()?
        .iter()
        .map(|a| {
            context! {
                integrity => events.get(&a.id).copied().unwrap_or(0),
                coverage => coverage(&a.id),
                id => a.id, hostname => a.hostname, os => format!("{} {}", a.os, a.os_version),
                version => a.agent_version, enrolled => when(app, Some(a.enrolled_ms)),
                last_seen => when(app, a.last_seen_ms), revoked => when(app, a.revoked_ms),
                offset => a.last_clock_offset_ms.map(|o| format!("{:+.1} s", o as f64 / 1000.0)),
            }
        })
        .collect();
    let tokens: Vec<Value> = if editable {
        app.store
            .tokens()?
            .iter()
            .map(|t| {
                context! {
                    prefix => t.hash_prefix, created => when(app, Some(t.created_ms)),
                    expires => when(app, Some(t.expires_ms)), uses => t.uses,
                    max_uses => t.max_uses, revoked => when(app, t.revoked_ms),
                    note => t.note, reenroll => t.reenroll, used_for => t.used_for.join(", "),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    page(
        app,
        ctx,
        "admin_agents.html",
        context! { editable => editable, agents => agents, tokens => tokens, ..extra },
    )
}

async fn agents_page(State(app): St, ctx: Ctx) -> Response {
    blocking(app, ctx, move |app, ctx| agents_view(app, ctx, context! {})).await
}

async fn agent_revoke(State(app): St, ctx: Ctx, Path(id): Path<String>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        app.store
            .revoke_agent(&id, &format!("web:{}", u.username), now().as_millisecond())?;
        Ok(redirect("/admin/agents", Vec::new()))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    ttl_days: u32,
    #[serde(default)]
    uses: Option<String>,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reenroll: Option<String>,
}

async fn token_create(State(app): St, ctx: Ctx, Form(f): Form<TokenForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        if !(1..=365).contains(&f.ttl_days) {
            return Err(WebError::BadField {
                name: "ttl_days".into(),
                problem: "1 to 365 days".into(),
            });
        }
        let uses = match f.uses.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(s.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                WebError::BadField {
                    name: "uses".into(),
                    problem: format!("{s:?}: a number of enrolments, or empty for any"),
                }
            })?),
        };
        let spec = TokenSpec {
            ttl_ms: i64::from(f.ttl_days) * 86_400_000,
            max_uses: uses,
            note: f.note.trim().to_owned(),
            reenroll: f.reenroll.is_some(),
        };
        let t = app.store.create_token(&spec, now().as_millisecond())?;
        audit::record(
            &*app.store,
            &u.username,
            "token.create",
            &crate::store::hash_secret(&t.token)[..crate::store::admin::TOKEN_PREFIX_LEN],
            &format!("{} days, uses {:?}", f.ttl_days, uses),
        )?;
        agents_view(app, ctx, context! { new_token => t.token })
    })
    .await
}

async fn token_revoke(State(app): St, ctx: Ctx, Path(prefix): Path<String>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        app.store.revoke_token(
            &prefix,
            &format!("web:{}", u.username),
            now().as_millisecond(),
        )?;
        Ok(redirect("/admin/agents", Vec::new()))
    })
    .await
}

// ---------------------------------------------------------------- accounts

fn users_view(app: &App, ctx: &Ctx, extra: Value) -> Result<Response, WebError> {
    let u = ctx.user()?;
    admin(u)?;
    let lang = ctx.lang;
    let users: Vec<Value> = app
        .store
        .users()?
        .iter()
        .map(|x| {
            context! {
                username => x.username, role => x.role.as_str(), employee_id => x.employee_id,
                departments => x.departments.join(", "), one_time => x.must_change_password,
                directory => app.store.is_directory_account(x.id).unwrap_or(false),
            }
        })
        .collect();
    let roles: Vec<(&str, String)> = [Role::Staff, Role::DeptHead, Role::Officer, Role::Admin]
        .iter()
        .map(|r| (r.as_str(), i18n::t(lang, &format!("role_{}", r.as_str()))))
        .collect();
    page(
        app,
        ctx,
        "admin_users.html",
        context! { users => users, roles => roles, ..extra },
    )
}

async fn users_page(State(app): St, ctx: Ctx) -> Response {
    blocking(app, ctx, move |app, ctx| users_view(app, ctx, context! {})).await
}

#[derive(Debug, Deserialize)]
struct UserForm {
    username: String,
    role: String,
    #[serde(default)]
    employee_id: String,
    #[serde(default)]
    departments: String,
}

async fn user_add(State(app): St, ctx: Ctx, Form(f): Form<UserForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let role = Role::parse(f.role.trim()).ok_or_else(|| WebError::BadField {
            name: "role".into(),
            problem: "staff, dept_head, officer or admin".into(),
        })?;
        let new = NewUser {
            username: f.username.trim().to_owned(),
            role,
            employee_id: Some(f.employee_id.trim().to_owned()).filter(|s| !s.is_empty()),
            departments: f
                .departments
                .split([',', ';'])
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        let password = app.store.add_user(&new, now().as_millisecond())?;
        audit::record(
            &*app.store,
            &u.username,
            "user.add",
            &new.username,
            role.as_str(),
        )?;
        users_view(
            app,
            ctx,
            context! { created => context! { username => new.username, password => password } },
        )
    })
    .await
}

async fn user_token(State(app): St, ctx: Ctx, Path(username): Path<String>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let token = app.store.create_api_token(
            &username,
            90 * 86_400_000,
            &format!("made on the accounts page by {}", u.username),
            now().as_millisecond(),
        )?;
        audit::record(&*app.store, &u.username, "user.token", &username, "90 days")?;
        users_view(
            app,
            ctx,
            context! { api_token => context! { username => username, token => token } },
        )
    })
    .await
}

async fn user_reset(State(app): St, ctx: Ctx, Path(username): Path<String>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let password = app.store.reset_password(&username)?;
        audit::record(
            &*app.store,
            &u.username,
            "user.reset_password",
            &username,
            "",
        )?;
        users_view(
            app,
            ctx,
            context! { created => context! { username => username, password => password } },
        )
    })
    .await
}

// ---------------------------------------------------------------- calendar

#[derive(Debug, Deserialize, Default)]
struct YearQuery {
    year: Option<i16>,
    imported: Option<String>,
    saved: Option<i64>,
}

/// What the office's days editor starts from when nothing was saved.
const OFFICE_DAYS_EXAMPLE: &str =
    "date,kind,note\n# 2027-04-30,holiday,机关停电闭馆\n# 2027-06-12,workday,集中学习日\n";

/// The office's own days as saved in the console, or the example.
fn office_days_text(app: &App) -> Result<String, WebError> {
    Ok(app
        .store
        .office_setting(crate::verdicts::OFFICE_DAYS_KEY)?
        .map_or_else(|| OFFICE_DAYS_EXAMPLE.to_owned(), |s| s.value))
}

#[derive(Debug, Deserialize)]
struct OfficeDaysForm {
    text: String,
    #[serde(default)]
    year: Option<i16>,
}

/// Saves the office's own days (checked whole first); they win over the config
/// file's for the same date, and the days they change are judged again.
async fn office_days_save(State(app): St, ctx: Ctx, Form(f): Form<OfficeDaysForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let year = f.year.unwrap_or_else(|| today(app).year());
        if let Err(e) = crate::notice::parse_office_days("office days", f.text.as_bytes()) {
            return calendar_view(
                app,
                ctx,
                year,
                StatusCode::BAD_REQUEST,
                context! { problems => e.0, edited_days => f.text },
            );
        }
        let revision = app.store.set_office_setting(
            crate::verdicts::OFFICE_DAYS_KEY,
            &f.text,
            &format!("web:{}", u.username),
            now().as_millisecond(),
        )?;
        Ok(redirect(
            &format!("/admin/calendar?year={year}&saved={revision}"),
            Vec::new(),
        ))
    })
    .await
}

fn calendar_view(
    app: &App,
    ctx: &Ctx,
    year: i16,
    status: StatusCode,
    extra: Value,
) -> Result<Response, WebError> {
    let u = ctx.user()?;
    let editable = console(u)?;
    let rules = app.rules();
    let days: Vec<Value> = rules
        .calendar
        .year_rows(year)
        .iter()
        .filter(|(d, k)| {
            *k != crate::attendance::DayKind::Rest && *k != crate::attendance::DayKind::Workday
                || rules.calendar.note(*d).is_some()
        })
        .map(|(d, k)| {
            context! {
                date => d.to_string(), kind => k.as_str(),
                note => rules.calendar.note(*d).unwrap_or(""),
            }
        })
        .collect();
    let notices: Vec<Value> = app
        .store
        .calendar_notice_infos()?
        .iter()
        .map(|n| context! { year => n.year, imported => when(app, Some(n.imported_ms)), actor => n.actor, source => n.source })
        .collect();
    page_with_status(
        app,
        ctx,
        status,
        "admin_calendar.html",
        context! {
            year => year, prev => year - 1, next => year + 1, days => days, notices => notices,
            basis => format!("{:?}", rules.calendar.basis(year)), editable => editable,
            office_days => office_days_text(app)?,
            ..extra
        },
    )
}

async fn calendar_page(State(app): St, ctx: Ctx, Query(q): Query<YearQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let year = q.year.unwrap_or_else(|| today(app).year());
        calendar_view(
            app,
            ctx,
            year,
            StatusCode::OK,
            context! { imported => q.imported, saved => q.saved },
        )
    })
    .await
}

async fn calendar_import(State(app): St, ctx: Ctx, mut form: Multipart) -> Response {
    let (mut year, mut file): (Option<String>, Option<(String, Vec<u8>)>) = (None, None);
    while let Ok(Some(field)) = form.next_field().await {
        match field.name() {
            Some("year") => year = field.text().await.ok(),
            Some("file") => {
                let name = field.file_name().unwrap_or("notice.csv").to_owned();
                file = field.bytes().await.ok().map(|b| (name, b.to_vec()));
            }
            _ => {}
        }
    }
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let year: i16 = year
            .as_deref()
            .and_then(|y| y.trim().parse().ok())
            .ok_or_else(|| WebError::BadField {
                name: "year".into(),
                problem: "a year such as 2027".into(),
            })?;
        let (name, bytes) = file.ok_or_else(|| WebError::BadField {
            name: "file".into(),
            problem: "no file was chosen".into(),
        })?;
        let notice = match crate::notice::parse_notice(&name, &bytes, year) {
            Ok(n) => n,
            Err(problems) => {
                return calendar_view(
                    app,
                    ctx,
                    year,
                    StatusCode::BAD_REQUEST,
                    context! { problems => problems.0 },
                );
            }
        };
        app.store.import_calendar_notice(
            &notice,
            &format!("web:{}", u.username),
            &name,
            now().as_millisecond(),
        )?;
        Ok(redirect(
            &format!("/admin/calendar?year={year}&imported=1"),
            Vec::new(),
        ))
    })
    .await
}

// ---------------------------------------------------------------- schedules

/// What the schedule editor starts from when nothing was saved in the console.
const SCHEDULES_EXAMPLE: &str = r#"# The office's day; a department's own versions win over it.
[[default]]
effective_from = "2024-01-01"
sessions = [{ start = "08:30", end = "12:00" }, { start = "14:00", end = "17:30" }]

# [[default.seasons]]
# name = "summer"
# from = [6, 1]
# to = [9, 30]
# sessions = [{ start = "08:00", end = "12:00" }, { start = "14:30", end = "18:00" }]

# [[departments."信息中心"]]
# effective_from = "2027-03-01"
# flexible = { band_start = "07:00", band_end = "19:00", core_start = "09:00", core_end = "16:00", required_minutes = 480 }
"#;

/// Days the preview shows.
const PREVIEW_DAYS: i64 = 14;

/// The schedule of `department` on `date` under `set`, in words.
fn describe(
    set: &crate::attendance::ScheduleSet,
    department: &str,
    date: jiff::civil::Date,
) -> String {
    let (schedule, version) = set.schedule_for(department, date);
    let hours = match schedule {
        crate::attendance::Schedule::Fixed { .. } => {
            let (sessions, season) = schedule.sessions_on(date).unwrap_or((&[], None));
            let mut s = sessions
                .iter()
                .map(|x| format!("{}–{}", x.start.strftime("%H:%M"), x.end.strftime("%H:%M")))
                .collect::<Vec<_>>()
                .join(" ");
            if let Some(season) = season {
                s.push_str(&format!(" ({season})"));
            }
            s
        }
        crate::attendance::Schedule::Flexible(f) => format!(
            "flexible {}–{}, core {}–{}, {} min",
            f.band_start.strftime("%H:%M"),
            f.band_end.strftime("%H:%M"),
            f.core_start.strftime("%H:%M"),
            f.core_end.strftime("%H:%M"),
            f.required_minutes
        ),
    };
    format!("{hours} · {version}")
}

/// The next two weeks under `set`, a row a day, a column a department.
fn schedule_preview(
    app: &App,
    set: &crate::attendance::ScheduleSet,
) -> Result<(Vec<String>, Vec<Value>), WebError> {
    let rules = app.rules();
    let mut departments: Vec<String> = app
        .store
        .staff()?
        .into_iter()
        .map(|p| p.department)
        .collect();
    departments.sort();
    departments.dedup();
    let start = today(app);
    let rows = (0..PREVIEW_DAYS)
        .map(|i| {
            let date = start.saturating_add(jiff::Span::new().days(i));
            let kind = rules.calendar.day_kind(date);
            let cells: Vec<String> = departments
                .iter()
                .map(|d| {
                    if kind.is_working() {
                        describe(set, d, date)
                    } else {
                        "—".to_owned()
                    }
                })
                .collect();
            context! { date => date.to_string(), kind => kind.as_str(), cells => cells }
        })
        .collect();
    Ok((departments, rows))
}

fn schedules_view(
    app: &App,
    ctx: &Ctx,
    text: &str,
    status: StatusCode,
    extra: Value,
) -> Result<Response, WebError> {
    let u = ctx.user()?;
    let editable = console(u)?;
    let rules = app.rules();
    let (departments, rows) = schedule_preview(app, &rules.schedules)?;
    page_with_status(
        app,
        ctx,
        status,
        "admin_schedules.html",
        context! {
            editable => editable, text => text, source => rules.schedules_source,
            departments => departments, rows => rows, ..extra
        },
    )
}

async fn schedules_page(State(app): St, ctx: Ctx, Query(q): Query<StaffQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let saved = app
            .store
            .office_setting(crate::verdicts::SCHEDULES_KEY)?
            .map(|s| s.value);
        let text = saved.unwrap_or_else(|| SCHEDULES_EXAMPLE.to_owned());
        schedules_view(
            app,
            ctx,
            &text,
            StatusCode::OK,
            context! { saved => q.saved },
        )
    })
    .await
}

#[derive(Debug, Deserialize)]
struct SchedulesForm {
    text: String,
}

/// The problems of schedules text, one a line.
fn parse_schedules(text: &str) -> Result<crate::attendance::ScheduleSet, Vec<String>> {
    crate::attendance::ScheduleSet::from_toml(text).map_err(|e| match e {
        crate::attendance::ScheduleConfigError::Invalid(list) => {
            list.0.iter().map(ToString::to_string).collect()
        }
        other => vec![other.to_string()],
    })
}

async fn schedules_preview(State(app): St, ctx: Ctx, Form(f): Form<SchedulesForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        admin(ctx.user()?)?;
        match parse_schedules(&f.text) {
            Err(problems) => schedules_view(
                app,
                ctx,
                &f.text,
                StatusCode::BAD_REQUEST,
                context! { problems => problems },
            ),
            Ok(set) => {
                let (departments, rows) = schedule_preview(app, &set)?;
                schedules_view(
                    app,
                    ctx,
                    &f.text,
                    StatusCode::OK,
                    context! {
                        preview => context! { departments => departments, rows => rows },
                    },
                )
            }
        }
    })
    .await
}

async fn schedules_save(State(app): St, ctx: Ctx, Form(f): Form<SchedulesForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        if let Err(problems) = parse_schedules(&f.text) {
            return schedules_view(
                app,
                ctx,
                &f.text,
                StatusCode::BAD_REQUEST,
                context! { problems => problems },
            );
        }
        let revision = app.store.set_office_setting(
            crate::verdicts::SCHEDULES_KEY,
            &f.text,
            &format!("web:{}", u.username),
            now().as_millisecond(),
        )?;
        Ok(redirect(
            &format!("/admin/schedules?saved={revision}"),
            Vec::new(),
        ))
    })
    .await
}

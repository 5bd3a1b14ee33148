//! The officer's home page: one day at a glance (today unless `?date=` says
//! otherwise): who is expected, who has arrived, who is late, who is unknown and
//! why, who is absent; the PCs heard from; the appeals and requests waiting; and
//! the last seven days by department as small stacked columns.

use super::i18n::{self, Lang};
use super::pages::{St, in_scope, now, page, today, urlencode};
use super::params::Query;
use super::svg::{self, Mix};
use super::{App, Ctx, WebError, audit, blocking};
use crate::attendance::{DayVerdict, Status};
use crate::reports::corrections::ReportDay;
use crate::reports::summary;
use crate::requests::service::Requests;
use crate::users::{Action, Role, Target, User, can};
use crate::verdicts::Detail;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use jiff::civil::Date;
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new().route("/today", get(today_page))
}

/// How recently a PC must have been heard from to count as online.
const ONLINE_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Default, Deserialize)]
struct TodayQuery {
    date: Option<Date>,
    department: Option<String>,
}

/// A day's counts over the people expected at work.
#[derive(Debug, Default)]
struct Glance {
    expected: u32,
    arrived: u32,
    late: u32,
    exempt: u32,
    absent: u32,
    unknown: u32,
}

fn mix_of(v: &DayVerdict) -> Option<Mix> {
    if !v.day_kind.is_working() {
        return None;
    }
    let mut m = Mix::default();
    match v.status {
        Status::Present if v.late_minutes > 0 => m.late = 1,
        Status::Present => m.on_time = 1,
        Status::Leave | Status::Field => m.exempt = 1,
        Status::Absent => m.absent = 1,
        Status::Unknown => m.unknown = 1,
        Status::Holiday | Status::Rest => return None,
    }
    Some(m)
}

fn add(a: &mut Mix, b: Mix) {
    a.on_time += b.on_time;
    a.late += b.late;
    a.exempt += b.exempt;
    a.absent += b.absent;
    a.unknown += b.unknown;
}

/// Open appeals the user may decide.
fn open_appeals(app: &App, user: &User) -> Result<usize, WebError> {
    let staff = app.store.staff()?;
    let department: std::collections::HashMap<&str, &str> = staff
        .iter()
        .map(|p| (p.employee_id.as_str(), p.department.as_str()))
        .collect();
    let (appeals, _) = app.store.open_appeals(u32::MAX, 0)?;
    Ok(appeals
        .iter()
        .filter(|a| {
            department.get(a.employee_id.as_str()).is_some_and(|d| {
                can(
                    user,
                    Action::Decide,
                    Target::Person {
                        employee_id: &a.employee_id,
                        department: d,
                    },
                )
            })
        })
        .count())
}

fn person_link(d: &ReportDay) -> String {
    let v = &d.verdict;
    format!(
        "/person/{}?month={}&day={}",
        urlencode(&v.employee_id),
        &v.date.to_string()[..7],
        v.date
    )
}

async fn today_page(State(app): St, ctx: Ctx, Query(q): Query<TodayQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        if u.role == Role::Staff {
            return Err(WebError::Forbidden);
        }
        let lang = ctx.lang;
        let date = q.date.unwrap_or_else(|| today(app));
        let department = q.department.clone().filter(|d| !d.is_empty());
        if let Some(d) = &department
            && !can(u, Action::View, Target::Department(d))
        {
            return Err(WebError::Forbidden);
        }
        let (departments, people) = in_scope(app, u, Action::View, department.as_deref())?;
        audit::record(
            &*app.store,
            &u.username,
            "today.view",
            department.as_deref().unwrap_or("*"),
            &date.to_string(),
        )?;
        let rules = app.rules();
        let at = now();
        let week_from = date.saturating_sub(jiff::Span::new().days(6));
        let week = summary::load_days(
            &*app.store,
            &rules,
            week_from,
            date,
            &people,
            Detail::Headline,
            at,
        )?;

        // The day itself.
        let mut glance = Glance::default();
        let mut late = Vec::new();
        let mut absent = Vec::new();
        let mut unknown_ids = Vec::new();
        for d in week.iter().filter(|d| d.verdict.date == date) {
            let v = &d.verdict;
            if !v.day_kind.is_working() {
                continue;
            }
            glance.expected += 1;
            if v.arrival.is_some() {
                glance.arrived += 1;
            }
            match v.status {
                Status::Present if v.late_minutes > 0 => {
                    glance.late += 1;
                    late.push(context! {
                        name => v.name, department => v.department, link => person_link(d),
                        minutes => v.late_minutes,
                        arrival => super::pages::local_hm(app, v.arrival),
                    });
                }
                Status::Leave | Status::Field => glance.exempt += 1,
                Status::Absent => {
                    glance.absent += 1;
                    absent.push(context! {
                        name => v.name, department => v.department, link => person_link(d),
                    });
                }
                Status::Unknown => {
                    glance.unknown += 1;
                    unknown_ids.push(v.employee_id.clone());
                }
                _ => {}
            }
        }
        // Why each unknown is unknown: their full verdicts, with the reasons.
        let unknown_people: Vec<_> = people
            .iter()
            .filter(|p| unknown_ids.contains(&p.employee_id))
            .cloned()
            .collect();
        let unknown: Vec<Value> = summary::load_days(
            &*app.store,
            &rules,
            date,
            date,
            &unknown_people,
            Detail::Full,
            at,
        )?
        .iter()
        .map(|d| {
            let v = &d.verdict;
            context! {
                name => v.name, department => v.department, link => person_link(d),
                why => v.reasons(lang),
            }
        })
        .collect();

        // The PCs.
        let agents: Vec<_> = app
            .store
            .agents()?
            .into_iter()
            .filter(|a| a.revoked_ms.is_none())
            .collect();
        let tz = &rules.settings.time_zone;
        let bounds = |d: Date| {
            tz.to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .map(|t| t.as_millisecond())
        };
        let heard = match (bounds(date), bounds(date.tomorrow().unwrap_or(date))) {
            (Ok(s), Ok(e)) => app
                .store
                .heard_in(&[(s, e)])?
                .iter()
                .filter(|(id, n)| *n > 0 && agents.iter().any(|a| &a.id == id))
                .count(),
            _ => 0,
        };
        let online = (date == today(app)).then(|| {
            agents
                .iter()
                .filter(|a| {
                    a.last_seen_ms
                        .is_some_and(|s| at.as_millisecond() - s <= ONLINE_MS)
                })
                .count()
        });
        let waiting_requests = Requests {
            store: &*app.store,
            rules: &rules,
            config: &app.requests,
        }
        .inbox(u)?
        .len();

        // The week by department.
        let days: Vec<Date> = (0..7)
            .filter_map(|i| week_from.checked_add(jiff::Span::new().days(i)).ok())
            .filter(|d| *d <= date)
            .collect();
        let mut by_dept: BTreeMap<&str, BTreeMap<Date, Mix>> = BTreeMap::new();
        for d in &week {
            let v = &d.verdict;
            let cell = by_dept
                .entry(v.department.as_str())
                .or_default()
                .entry(v.date)
                .or_default();
            if let Some(m) = mix_of(v) {
                add(cell, m);
            }
        }
        let most = by_dept
            .values()
            .flat_map(|m| m.values().map(Mix::total))
            .max()
            .unwrap_or(0);
        let part = |k: &str| i18n::t(lang, &format!("mix_{k}"));
        let trend: Vec<Value> = by_dept
            .iter()
            .map(|(dept, cells)| {
                let cells: Vec<Value> = days
                    .iter()
                    .map(|day| {
                        let m = cells.get(day).copied().unwrap_or_default();
                        let title = format!(
                            "{dept} {day}: {} {}, {} {}, {} {}, {} {}, {} {}",
                            part("on_time"),
                            m.on_time,
                            part("late"),
                            m.late,
                            part("exempt"),
                            m.exempt,
                            part("absent"),
                            m.absent,
                            part("unknown"),
                            m.unknown
                        );
                        context! {
                            svg => Value::from_safe_string(svg::day_mix(&m, most, &title)),
                            late => m.late, expected => m.total(),
                        }
                    })
                    .collect();
                context! { department => dept, cells => cells }
            })
            .collect();
        let weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let day_heads: Vec<Value> = days
            .iter()
            .map(|d| {
                let wd = weekdays[weekday_index(*d)];
                context! { date => d.strftime("%m-%d").to_string(), weekday => i18n::t(lang, wd) }
            })
            .collect();
        let legend: Vec<Value> = svg::MIX_PARTS
            .iter()
            .map(|(k, colour)| {
                context! {
                    class => k, label => part(k),
                    swatch => Value::from_safe_string(svg::swatch(colour)),
                }
            })
            .collect();
        let shift = |days: i64| {
            date.checked_add(jiff::Span::new().days(days))
                .ok()
                .map(|d| {
                    let mut href = format!("/today?date={d}");
                    if let Some(dep) = &department {
                        href.push_str(&format!("&department={}", urlencode(dep)));
                    }
                    href
                })
        };
        page(
            app,
            ctx,
            "today.html",
            context! {
                date => date.to_string(),
                is_today => date == today(app),
                weekday => i18n::t(lang, weekdays[weekday_index(date)]),
                day_kind => day_kind_words(lang, &week, date),
                department => department, departments => departments,
                glance => context! {
                    expected => glance.expected, arrived => glance.arrived,
                    late => glance.late, exempt => glance.exempt,
                    absent => glance.absent, unknown => glance.unknown,
                },
                late => late, absent => absent, unknown => unknown,
                pcs => context! { enrolled => agents.len(), heard => heard, online => online },
                appeals => open_appeals(app, u)?,
                requests => waiting_requests,
                days => day_heads, trend => trend, legend => legend,
                prev => shift(-1), next => shift(1),
            },
        )
    })
    .await
}

/// The day's kind in words, from any verdict of the day (none: nobody judged).
fn day_kind_words(lang: Lang, week: &[ReportDay], date: Date) -> Option<String> {
    let v = week.iter().find(|d| d.verdict.date == date)?;
    let kind = v.verdict.day_kind;
    Some(i18n::t(lang, &format!("day_{}", kind.as_str())))
}

fn weekday_index(d: Date) -> usize {
    usize::try_from(d.weekday().to_monday_zero_offset()).unwrap_or(0)
}

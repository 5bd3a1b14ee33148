//! `kaoqin.v1.ReportService`: the reports for scripts, over gRPC.
//!
//! Authenticated with a user's API token; access is the same one rule the web
//! pages use (`users::can`), so a staff member asking for another person's record
//! gets PermissionDenied whatever they ask. Views of another person's record are
//! audited.

use crate::reports::corrections::ReportDay;
use crate::store::concerns::*;
use crate::users::{Action, Target, User, can, sees_department};
use crate::verdicts::{LiveRules, Rules};
use jiff::civil::Date;
use kaoqin_proto::v1 as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Serves ReportService over the collector's store.
pub struct ReportApi {
    store: Arc<dyn Stores>,
    rules: Arc<LiveRules>,
}

impl ReportApi {
    pub fn new(store: Arc<dyn Stores>, rules: Arc<LiveRules>) -> ReportApi {
        ReportApi { store, rules }
    }
}

fn now() -> jiff::Timestamp {
    crate::clock::now()
}

fn date(field: &str, text: &str) -> Result<Date, Status> {
    text.parse().map_err(|_| {
        Status::invalid_argument(format!("{field}: {text:?} is not a date (YYYY-MM-DD)"))
    })
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "ReportService failed.");
    Status::internal("internal error; see the collector's log")
}

fn user_of<T>(store: &dyn Stores, req: &Request<T>) -> Result<User, Status> {
    let token = req
        .metadata()
        .get(kaoqin_proto::AUTHORIZATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <API token>"))?;
    store
        .api_token_user(token, now().as_millisecond())
        .map_err(internal)?
        .ok_or_else(|| Status::unauthenticated("unknown or expired API token"))
}

fn record(d: &ReportDay) -> pb::DayRecord {
    let v = &d.verdict;
    let t = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    pb::DayRecord {
        employee_id: v.employee_id.clone(),
        name: v.name.clone(),
        department: v.department.clone(),
        date: v.date.to_string(),
        status: serde_json::to_value(v.status)
            .ok()
            .and_then(|s| s.as_str().map(str::to_owned))
            .unwrap_or_default(),
        arrival: t(v.arrival),
        departure: t(v.departure),
        late_minutes: v.late_minutes,
        early_minutes: v.early_minutes,
        nonwork_seconds: v.nonwork_seconds.clone().into_iter().collect(),
        corrected: d.correction.is_some(),
        record_json: serde_json::to_string(d).unwrap_or_default(),
        unverified: v.unverified,
        absenteeism_half_days: v.absenteeism_half_days,
        missing_checkpoints: v.missing_checkpoints,
        overtime_minutes: [
            ("workday".to_owned(), v.overtime_minutes.workday),
            ("rest_day".to_owned(), v.overtime_minutes.rest_day),
            ("holiday".to_owned(), v.overtime_minutes.holiday),
        ]
        .into_iter()
        .collect(),
    }
}

impl ReportApi {
    /// Runs blocking store work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Stores, &Rules) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let (store, rules) = (self.store.clone(), self.rules.clone());
        tokio::task::spawn_blocking(move || f(&*store, &rules.current()))
            .await
            .map_err(internal)?
    }
}

#[tonic::async_trait]
impl pb::report_service_server::ReportService for ReportApi {
    async fn get_person_days(
        &self,
        req: Request<pb::GetPersonDaysRequest>,
    ) -> Result<Response<pb::DayRecords>, Status> {
        let user = user_of(&*self.store, &req)?;
        let body = req.into_inner();
        let (from, to) = (date("from", &body.from)?, date("to", &body.to)?);
        if from > to || from.until(to).map_or(true, |s| s.get_days() > 366) {
            return Err(Status::invalid_argument(
                "from..to: at most 366 days, from first",
            ));
        }
        self.blocking(move |store, rules| {
            let person = store.person(&body.employee_id).map_err(internal)?;
            let department = person.as_ref().map_or("", |p| p.department.as_str());
            let target = Target::Person {
                employee_id: &body.employee_id,
                department,
            };
            // Permission first, so nobody learns who exists by asking.
            if !can(&user, Action::View, target) {
                return Err(Status::permission_denied(format!(
                    "{} may not see {}'s record",
                    user.username, body.employee_id
                )));
            }
            let person = person.ok_or_else(|| {
                Status::not_found(format!("no staff member {}", body.employee_id))
            })?;
            if user.employee_id.as_deref() != Some(person.employee_id.as_str()) {
                crate::web::audit::record(
                    store,
                    &format!("grpc:{}", user.username),
                    "record.view",
                    &person.employee_id,
                    &format!("grpc days {from}..{to}"),
                )
                .map_err(internal)?;
            }
            let days = crate::reports::summary::load_days(
                store,
                rules,
                from,
                to,
                std::slice::from_ref(&person),
                crate::verdicts::Detail::Full,
                now(),
            )
            .map_err(internal)?;
            Ok(pb::DayRecords {
                days: days.iter().map(record).collect(),
            })
        })
        .await
        .map(Response::new)
    }

    async fn get_daily(
        &self,
        req: Request<pb::GetDailyRequest>,
    ) -> Result<Response<pb::DayRecords>, Status> {
        let user = user_of(&*self.store, &req)?;
        let body = req.into_inner();
        let day = date("date", &body.date)?;
        self.blocking(move |store, rules| {
            if !body.department.is_empty() && !sees_department(&user, &body.department) {
                return Err(Status::permission_denied(format!(
                    "{} may not see department {}",
                    user.username, body.department
                )));
            }
            let mut people = store.staff().map_err(internal)?;
            people.retain(|p| body.department.is_empty() || p.department == body.department);
            let days = crate::reports::summary::load_days(
                store,
                rules,
                day,
                day,
                &people,
                crate::verdicts::Detail::Full,
                now(),
            )
            .map_err(internal)?;
            let visible: Vec<&ReportDay> = days
                .iter()
                .filter(|d| body.department.is_empty() || d.verdict.department == body.department)
                .filter(|d| {
                    can(
                        &user,
                        Action::View,
                        Target::Person {
                            employee_id: &d.verdict.employee_id,
                            department: &d.verdict.department,
                        },
                    )
                })
                .collect();
            let others = visible
                .iter()
                .filter(|d| user.employee_id.as_deref() != Some(d.verdict.employee_id.as_str()))
                .count();
            if others > 0 {
                crate::web::audit::record(
                    store,
                    &format!("grpc:{}", user.username),
                    "report.view",
                    &body.department,
                    &format!("grpc daily {day}: {others} people"),
                )
                .map_err(internal)?;
            }
            Ok(pb::DayRecords {
                days: visible.into_iter().map(record).collect(),
            })
        })
        .await
        .map(Response::new)
    }
}

//! Requests as the pages, the API and the command line use them: the rules of
//! [`super`] put together with the store, every step checked against who asks.

use super::{
    FieldError, Filing, LeaveBalance, NewRequest, Request, RequestQuery, RequestStatus, cancel,
    decide, filed_entry, limits, may_decide_step, may_file, may_see, prepare,
};
use crate::attendance::Person;
use crate::config::RequestsConfig;
use crate::store::{StoreError, Stores};
use crate::users::User;
use crate::verdicts::Rules;
use jiff::Timestamp;
use std::collections::HashMap;

/// Why a request could not be filed, decided or cancelled.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A field of the filing is wrong.
    #[error("{0}")]
    Field(FieldError),
    /// Not the caller's to see or do (nothing about the record is told).
    #[error("not allowed")]
    Forbidden,
    /// No such request or person.
    #[error("not found")]
    NotFound,
    /// Refused with a reason (a limit, nobody decides their own, already decided),
    /// or the store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// A request with the person it is for, as lists show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub request: Request,
    pub name: String,
    pub department: String,
    /// Whether the caller may take its next decision now.
    pub decidable: bool,
    /// Whether the caller may cancel it now.
    pub cancellable: bool,
}

/// Everything a request step needs.
pub struct Requests<'a> {
    pub store: &'a dyn Stores,
    pub rules: &'a Rules,
    pub config: &'a RequestsConfig,
}

impl Requests<'_> {
    /// The person `id`, if `allowed` for them: 403 before 404, so nobody learns
    /// about ids that are not theirs to see.
    fn person(&self, id: &str, allowed: impl Fn(&Person) -> bool) -> Result<Person, RequestError> {
        let found = self.store.person(id)?;
        let probe = found.clone().unwrap_or_else(|| Person {
            employee_id: id.to_owned(),
            name: String::new(),
            department: String::new(),
            accounts: Vec::new(),
            own_pcs: Vec::new(),
            email: String::new(),
            left_on: None,
        });
        if !allowed(&probe) {
            return Err(RequestError::Forbidden);
        }
        found.ok_or(RequestError::NotFound)
    }

    /// Files `filing` for its person (the caller's own when none is named), if the
    /// caller may; returns it as stored.
    pub fn file(
        &self,
        user: &User,
        filing: &Filing,
        now: Timestamp,
    ) -> Result<Request, RequestError> {
        let id = match filing.employee_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => user
                .employee_id
                .clone()
                .ok_or(RequestError::Field(FieldError {
                field: "employee_id",
                problem:
                    "this account is nobody in the staff directory: name whom the request is for"
                        .into(),
            }))?,
        };
        let person = self.person(&id, |p| may_file(user, p))?;
        let new = prepare(filing, &person, user, self.rules, self.config, now)
            .map_err(RequestError::Field)?;
        let today = self.rules.settings.time_zone.to_datetime(now).date();
        let window = year_window(&new, self.rules);
        let check = |existing: &[Request], balances: &[LeaveBalance]| {
            limits(&new, existing, balances, self.config, self.rules, today)
        };
        let id = self
            .store
            .add_request(&new, window, &check, &filed_entry(user, &new))?;
        self.store.request(id)?.ok_or(RequestError::NotFound)
    }

    /// The request `id` and its person's department, if the caller may see it.
    pub fn get(&self, user: &User, id: i64) -> Result<(Request, Person), RequestError> {
        let r = self.store.request(id)?.ok_or(RequestError::NotFound)?;
        let p = self.person(&r.employee_id, |p| {
            may_see(user, &p.employee_id, &p.department) || user.username == r.filed_by
        })?;
        Ok((r, p))
    }

    /// Takes the next decision on request `id`.
    pub fn decide(
        &self,
        user: &User,
        id: i64,
        approve: bool,
        comment: &str,
        now: Timestamp,
    ) -> Result<Request, RequestError> {
        let (_, p) = self.get(user, id)?;
        let now_ms = now.as_millisecond();
        Ok(self.store.change_request(id, &self.rules.settings, &|r| {
            decide(user, r, &p.department, approve, comment, now_ms)
        })?)
    }

    /// Cancels request `id`: the requester while pending, an approver once approved.
    pub fn cancel(&self, user: &User, id: i64, now: Timestamp) -> Result<Request, RequestError> {
        let (_, p) = self.get(user, id)?;
        let now_ms = now.as_millisecond();
        Ok(self.store.change_request(id, &self.rules.settings, &|r| {
            cancel(user, r, &p.department, now_ms)
        })?)
    }

    /// The requests `q` asks for that the caller may see, newest first, with
    /// what the caller may do with each; only of `department` if given.
    pub fn list(
        &self,
        user: &User,
        q: &RequestQuery,
        department: Option<&str>,
    ) -> Result<Vec<Listed>, RequestError> {
        let staff: HashMap<String, Person> = self
            .store
            .staff()?
            .into_iter()
            .map(|p| (p.employee_id.clone(), p))
            .collect();
        let mut out = Vec::new();
        for r in self.store.requests(q)? {
            let (name, dept) = staff
                .get(&r.employee_id)
                .map(|p| (p.name.clone(), p.department.clone()))
                .unwrap_or_default();
            if department.is_some_and(|d| d != dept)
                || !(may_see(user, &r.employee_id, &dept) || user.username == r.filed_by)
            {
                continue;
            }
            let own = user.employee_id.as_deref() == Some(r.employee_id.as_str())
                || user.username == r.filed_by;
            let decidable = r.status == RequestStatus::Pending
                && !own
                && !r.decisions.iter().any(|d| d.by == user.username)
                && may_decide_step(user, r.next_step(), &r.employee_id, &dept);
            let cancellable = match r.status {
                RequestStatus::Pending => own,
                RequestStatus::Approved => !own && may_decide_step(user, 1, &r.employee_id, &dept),
                _ => false,
            };
            out.push(Listed {
                request: r,
                name,
                department: dept,
                decidable,
                cancellable,
            });
        }
        Ok(out)
    }

    /// What waits for the caller's decision, oldest first.
    pub fn inbox(&self, user: &User) -> Result<Vec<Listed>, RequestError> {
        let q = RequestQuery {
            status: Some(RequestStatus::Pending),
            ..RequestQuery::default()
        };
        let mut out: Vec<Listed> = self
            .list(user, &q, None)?
            .into_iter()
            .filter(|l| l.decidable)
            .collect();
        out.reverse();
        Ok(out)
    }
}

/// The span of the request's year (local), and the month before it for a
/// missed punch near New Year: what the limits look at.
fn year_window(new: &NewRequest, rules: &Rules) -> (i64, i64) {
    let tz = &rules.settings.time_zone;
    let start = tz
        .to_datetime(Timestamp::from_millisecond(new.start_ms).unwrap_or_default())
        .date();
    let first = jiff::civil::date(start.year(), 1, 1);
    let next = jiff::civil::date(start.year().saturating_add(1), 1, 1);
    let at = |d: jiff::civil::Date| {
        tz.to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .compatible()
            .map_or(0, |t| t.as_millisecond())
    };
    (at(first), at(next))
}

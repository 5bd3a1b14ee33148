//! The office directory (LDAP, Active Directory): sign-in with the directory's
//! password, the role from the person's groups, and `staff sync-ldap`, which
//! imports people and departments from it (`[auth.ldap]`, docs/directory.md).
//!
//! ```text
//!   login(u, p) --local account?--> kaoqin's own password (a local account always wins)
//!              \--otherwise--> search (service bind) --> not disabled? --> bind as the
//!                 person with p --> groups --> role --> account made or updated
//! ```
//!
//! What must stay true: an empty password never signs in (LDAP takes an empty
//! simple bind as anonymous); a local account is never taken over by a directory
//! person of the same name; someone in no mapped group, disabled, or with a wrong
//! password is refused like any wrong password, with the reason only in the log.

use crate::attendance::Person;
use crate::config::LdapConfig;
use crate::store::concerns::*;
use crate::users::{NewUser, Role, User};
use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long one directory request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a directory sign-in failed (said in the log, never to the person).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("wrong password")]
    WrongPassword,
    #[error("no such person in the directory")]
    NoSuchPerson,
    #[error("the directory account is disabled")]
    Disabled,
    #[error("in no group mapped to a kaoqin role (groups: {0})")]
    NoRole(String),
    #[error("a local account of that name exists; it signs in with its own password")]
    LocalAccount,
    #[error(
        "not in the staff directory (employee id {0:?}, e-mail {1:?}) and not an officer or admin"
    )]
    NotStaff(Option<String>, Option<String>),
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

/// A person as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryPerson {
    pub dn: String,
    pub attrs: BTreeMap<String, Vec<String>>,
}

impl DirectoryPerson {
    /// The first value of `attr` (any case), if any.
    pub fn first(&self, attr: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(attr))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn unavailable(e: impl std::fmt::Display) -> Refused {
    Refused::Unavailable(e.to_string())
}

fn connect(cfg: &LdapConfig) -> Result<LdapConn, Refused> {
    let settings = LdapConnSettings::new().set_conn_timeout(TIMEOUT);
    let mut conn = LdapConn::with_settings(settings, &cfg.url).map_err(unavailable)?;
    conn.with_timeout(TIMEOUT);
    if let (Some(dn), Some(pw)) = (&cfg.bind_dn, &cfg.bind_password) {
        conn.simple_bind(dn, pw)
            .and_then(|r| r.success())
            .map_err(|e| Refused::Unavailable(format!("service bind as {dn}: {e}")))?;
    }
    Ok(conn)
}

fn search(
    conn: &mut LdapConn,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: Vec<&str>,
) -> Result<Vec<DirectoryPerson>, Refused> {
    let (entries, _) = conn
        .search(base, scope, filter, attrs)
        .and_then(|r| r.success())
        .map_err(|e| Refused::Unavailable(format!("search {filter} under {base}: {e}")))?;
    Ok(entries
        .into_iter()
        .map(SearchEntry::construct)
        .map(|e| DirectoryPerson {
            dn: e.dn,
            attrs: e.attrs.into_iter().collect(),
        })
        .collect())
}

/// The role of the groups `groups` (DNs) under `roles`: a group matches by its
/// DN or its cn, without regard to case; the highest role wins.
pub fn role_of(groups: &BTreeSet<String>, roles: &BTreeMap<String, String>) -> Option<Role> {
    let rank = |r: Role| match r {
        Role::Admin => 3,
        Role::Officer => 2,
        Role::DeptHead => 1,
        Role::Staff => 0,
    };
    groups
        .iter()
        .flat_map(|dn| {
            let dn = dn.to_ascii_lowercase();
            let cn = dn
                .split(',')
                .next()
                .and_then(|rdn| rdn.trim().strip_prefix("cn="))
                .map(str::to_owned);
            roles.iter().filter_map(move |(k, v)| {
                let k = k.to_ascii_lowercase();
                (k == dn || Some(&k) == cn.as_ref())
                    .then(|| Role::parse(v))
                    .flatten()
            })
        })
        .max_by_key(|r| rank(*r))
}

/// Checks `username` and `password` against the directory: the person and
/// their role.
pub fn authenticate(
    cfg: &LdapConfig,
    username: &str,
    password: &str,
) -> Result<(DirectoryPerson, Role), Refused> {
    if password.is_empty() {
        return Err(Refused::WrongPassword);
    }
    let mut conn = connect(cfg)?;
    let filter = cfg
        .user_filter
        .replace("{username}", &ldap_escape(username));
    let attrs = vec![
        cfg.employee_id_attribute.as_str(),
        cfg.email_attribute.as_str(),
        cfg.name_attribute.as_str(),
        cfg.department_attribute.as_str(),
        "memberOf",
    ];
    let mut found = search(&mut conn, &cfg.user_base, Scope::Subtree, &filter, attrs)?;
    let person = match found.len() {
        0 => return Err(Refused::NoSuchPerson),
        1 => found.remove(0),
        n => {
            return Err(Refused::Unavailable(format!(
                "{filter} matches {n} entries under {}",
                cfg.user_base
            )));
        }
    };
    if let Some(disabled) = &cfg.disabled_filter
        && !search(&mut conn, &person.dn, Scope::Base, disabled, vec!["1.1"])?.is_empty()
    {
        return Err(Refused::Disabled);
    }
    let mut groups: BTreeSet<String> = person
        .attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect();
    if let Some(base) = &cfg.group_base {
        let filter = cfg
            .group_filter
            .replace("{dn}", &ldap_escape(&person.dn))
            .replace("{username}", &ldap_escape(username));
        groups.extend(
            search(&mut conn, base, Scope::Subtree, &filter, vec!["1.1"])?
                .into_iter()
                .map(|g| g.dn),
        );
    }
    let _ = conn.unbind();
    // The password, checked by binding as the person on a connection of its own.
    let mut own =
        LdapConn::with_settings(LdapConnSettings::new().set_conn_timeout(TIMEOUT), &cfg.url)
            .map_err(unavailable)?;
    own.with_timeout(TIMEOUT);
    match own
        .simple_bind(&person.dn, password)
        .and_then(|r| r.success())
    {
        Ok(_) => {}
        Err(ldap3::LdapError::LdapResult { result }) if result.rc == 49 => {
            return Err(Refused::WrongPassword);
        }
        Err(e) => return Err(unavailable(e)),
    }
    let _ = own.unbind();
    let role = role_of(&groups, &cfg.roles)
        .ok_or_else(|| Refused::NoRole(groups.iter().cloned().collect::<Vec<_>>().join("; ")))?;
    Ok((person, role))
}

/// Signs `username` in with the directory: the kaoqin account made on first
/// sign-in (or updated: role, person and departments follow the directory), or
/// why not. A person is matched to the staff directory by employee id, then by
/// e-mail; a department head's scope is their own department.
pub fn sign_in(
    store: &dyn Stores,
    cfg: &LdapConfig,
    username: &str,
    password: &str,
    now_ms: i64,
) -> Result<User, Refused> {
    if let Ok(Some(local)) = store.user_by_name(username)
        && !store.is_directory_account(local.id).unwrap_or(false)
    {
        return Err(Refused::LocalAccount);
    }
    let (person, role) = authenticate(cfg, username, password)?;
    let staff = store.staff().map_err(unavailable)?;
    let employee_id = person.first(&cfg.employee_id_attribute).map(str::to_owned);
    let email = person.first(&cfg.email_attribute).map(str::to_owned);
    let me: Option<&Person> = employee_id
        .as_deref()
        .and_then(|id| staff.iter().find(|p| p.employee_id == id))
        .or_else(|| {
            email.as_deref().and_then(|e| {
                staff
                    .iter()
                    .find(|p| !p.email.is_empty() && p.email.eq_ignore_ascii_case(e))
            })
        });
    let departments = match (role, me) {
        (Role::DeptHead, Some(p)) => vec![p.department.clone()],
        _ => Vec::new(),
    };
    if me.is_none() && matches!(role, Role::Staff | Role::DeptHead) {
        return Err(Refused::NotStaff(employee_id, email));
    }
    let new = NewUser {
        username: username.to_owned(),
        role,
        employee_id: me.map(|p| p.employee_id.clone()),
        departments,
    };
    store
        .upsert_directory_user(&new, now_ms)
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => Refused::LocalAccount,
            other => unavailable(other),
        })
}

/// People of the directory as staff records (those with an employee id), and
/// the entries left out with why.
pub fn directory_staff(cfg: &LdapConfig) -> Result<(Vec<Person>, Vec<String>), Refused> {
    let mut conn = connect(cfg)?;
    let attrs = vec![
        cfg.employee_id_attribute.as_str(),
        cfg.email_attribute.as_str(),
        cfg.name_attribute.as_str(),
        cfg.department_attribute.as_str(),
        cfg.account_attribute.as_str(),
    ];
    let entries = search(
        &mut conn,
        &cfg.user_base,
        Scope::Subtree,
        &cfg.sync_filter,
        attrs,
    )?;
    let _ = conn.unbind();
    let (mut people, mut skipped) = (Vec::new(), Vec::new());
    for e in entries {
        let (Some(id), Some(name)) = (
            e.first(&cfg.employee_id_attribute),
            e.first(&cfg.name_attribute),
        ) else {
            skipped.push(format!(
                "{}: no {} or {}",
                e.dn, cfg.employee_id_attribute, cfg.name_attribute
            ));
            continue;
        };
        people.push(Person {
            employee_id: id.to_owned(),
            name: name.to_owned(),
            department: e.first(&cfg.department_attribute).unwrap_or("").to_owned(),
            accounts: e
                .first(&cfg.account_attribute)
                .map(|a| vec![a.to_ascii_lowercase()])
                .unwrap_or_default(),
            own_pcs: Vec::new(),
            email: e.first(&cfg.email_attribute).unwrap_or("").to_owned(),
            left_on: None,
        });
    }
    people.sort_by(|a, b| a.employee_id.cmp(&b.employee_id));
    Ok((people, skipped))
}

/// What `staff sync-ldap` changes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// New people.
    pub added: Vec<Person>,
    /// (before, after) of people whose name, department, e-mail or accounts change.
    pub changed: Vec<(Person, Person)>,
    /// People in kaoqin's directory the office directory no longer lists (kept).
    pub missing: Vec<String>,
}

/// The changes that bring `current` up to `directory`: the directory's name,
/// department and e-mail win; its account is added to the ones kaoqin has (a
/// Windows domain account from the staff CSV stays); own PCs stay.
pub fn plan(current: &[Person], directory: &[Person]) -> SyncPlan {
    let mut p = SyncPlan::default();
    for d in directory {
        match current.iter().find(|c| c.employee_id == d.employee_id) {
            None => p.added.push(d.clone()),
            Some(c) => {
                let mut after = c.clone();
                after.name = d.name.clone();
                if !d.department.is_empty() {
                    after.department = d.department.clone();
                }
                if !d.email.is_empty() {
                    after.email = d.email.clone();
                }
                for a in &d.accounts {
                    if !after.accounts.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                        after.accounts.push(a.clone());
                    }
                }
                if &after != c {
                    p.changed.push((c.clone(), after));
                }
            }
        }
    }
    p.missing = current
        .iter()
        .filter(|c| !directory.iter().any(|d| d.employee_id == c.employee_id))
        .map(|c| c.employee_id.clone())
        .collect();
    p
}

impl SyncPlan {
    /// The plan in lines, one change a line.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.added {
            out.push(format!(
                "add {} {} ({}) {} {}",
                a.employee_id,
                a.name,
                a.department,
                a.accounts.join(";"),
                a.email
            ));
        }
        for (b, a) in &self.changed {
            let mut what = Vec::new();
            if b.name != a.name {
                what.push(format!("name {} -> {}", b.name, a.name));
            }
            if b.department != a.department {
                what.push(format!("department {} -> {}", b.department, a.department));
            }
            if b.email != a.email {
                what.push(format!("email {:?} -> {:?}", b.email, a.email));
            }
            if b.accounts != a.accounts {
                what.push(format!(
                    "accounts {} -> {}",
                    b.accounts.join(";"),
                    a.accounts.join(";")
                ));
            }
            out.push(format!("update {}: {}", a.employee_id, what.join(", ")));
        }
        for m in &self.missing {
            out.push(format!("not in the office directory (kept): {m}"));
        }
        out
    }

    /// The people to import.
    pub fn people(&self) -> Vec<Person> {
        self.added
            .iter()
            .cloned()
            .chain(self.changed.iter().map(|(_, a)| a.clone()))
            .collect()
    }
}

/// `staff sync-ldap`: the plan, carried out (and audited as `actor`) unless
/// `dry_run`, and the directory entries left out.
pub fn sync(
    store: &dyn Stores,
    cfg: &LdapConfig,
    dry_run: bool,
    actor: &str,
) -> anyhow::Result<(SyncPlan, Vec<String>)> {
    let (people, skipped) = directory_staff(cfg)?;
    let plan = plan(&store.staff()?, &people);
    if !dry_run && (!plan.added.is_empty() || !plan.changed.is_empty()) {
        let now_ms = crate::clock::now_ms();
        store.import_staff(&plan.people(), now_ms)?;
        store.audit(&crate::audit::AuditEntry::new(
            now_ms,
            actor,
            "staff.sync_ldap",
            &cfg.url,
            serde_json::json!({ "added": plan.added.len(), "changed": plan.changed.len() }),
        ))?;
    }
    Ok((plan, skipped))
}

/// Runs [`sync`] once a day at `[auth.ldap] sync_at` until `shutdown`.
pub fn spawn_daily_sync(
    store: std::sync::Arc<dyn Stores>,
    cfg: LdapConfig,
    time_zone: jiff::tz::TimeZone,
    clock: crate::ingest::Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    let at = crate::notify::parse_time(cfg.sync_at.as_deref()?)?;
    Some(tokio::spawn(async move {
        let mut periodic = crate::periodic::Periodic::new(Duration::from_secs(60), shutdown);
        let mut done_on: Option<jiff::civil::Date> = None;
        while periodic.next().await {
            let now =
                jiff::Timestamp::from_millisecond(clock()).unwrap_or_else(|_| crate::clock::now());
            let local = time_zone.to_datetime(now);
            if local.time() < at || done_on == Some(local.date()) {
                continue;
            }
            done_on = Some(local.date());
            let (store, cfg) = (store.clone(), cfg.clone());
            match tokio::task::spawn_blocking(move || sync(&*store, &cfg, false, "serve")).await {
                Ok(Ok((plan, _))) => tracing::info!(
                    added = plan.added.len(),
                    changed = plan.changed.len(),
                    "Synchronised the staff directory with the office directory."
                ),
                Ok(Err(e)) => tracing::warn!(
                    error = format!("{e:#}"),
                    "The daily staff sync with the office directory failed."
                ),
                Err(e) => tracing::warn!(error = %e, "The daily staff sync panicked."),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_mapped_group_gives_the_role() {
        let roles: BTreeMap<String, String> = [
            ("kaoqin-staff".to_owned(), "staff".to_owned()),
            (
                "CN=Kaoqin-Officers,OU=Groups,DC=office,DC=test".to_owned(),
                "officer".to_owned(),
            ),
        ]
        .into();
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            role_of(
                &groups(&["cn=kaoqin-staff,ou=groups,dc=office,dc=test"]),
                &roles
            ),
            Some(Role::Staff)
        );
        assert_eq!(
            role_of(
                &groups(&[
                    "cn=kaoqin-staff,ou=groups,dc=office,dc=test",
                    "cn=kaoqin-officers,ou=groups,dc=office,dc=test"
                ]),
                &roles
            ),
            Some(Role::Officer)
        );
        assert_eq!(role_of(&groups(&["cn=other,dc=x"]), &roles), None);
    }

    #[test]
    fn a_sync_keeps_domain_accounts_and_own_pcs_and_deletes_nobody() {
        let p = |id: &str, name: &str, dept: &str, accounts: &[&str], email: &str| Person {
            employee_id: id.into(),
            name: name.into(),
            department: dept.into(),
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            own_pcs: Vec::new(),
            email: email.into(),
            left_on: None,
        };
        let mut zs = p("E001", "张三", "办公室", &["office\\zhangsan"], "");
        zs.own_pcs = vec!["pc-1".into()];
        let current = vec![
            zs,
            p("E002", "李四", "办公室", &["lisi"], ""),
            p("E009", "离职", "x", &[], ""),
        ];
        let directory = vec![
            p(
                "E001",
                "张三",
                "办公室",
                &["zhangsan"],
                "zhangsan@office.test",
            ),
            p("E002", "李四", "办公室", &["lisi"], ""),
            p("E004", "赵六", "信息中心", &["zhaoliu"], ""),
        ];
        let plan = plan(&current, &directory);
        assert_eq!(
            plan.added
                .iter()
                .map(|p| p.employee_id.as_str())
                .collect::<Vec<_>>(),
            ["E004"]
        );
        assert_eq!(plan.changed.len(), 1);
        let after = &plan.changed[0].1;
        assert_eq!(after.accounts, ["office\\zhangsan", "zhangsan"]);
        assert_eq!(
            (after.email.as_str(), after.own_pcs.as_slice()),
            ("zhangsan@office.test", &["pc-1".to_owned()][..])
        );
        assert_eq!(plan.missing, ["E009"]);
        assert_eq!(
            plan.lines()[1],
            "update E001: email \"\" -> \"zhangsan@office.test\", accounts office\\zhangsan -> office\\zhangsan;zhangsan"
        );
    }
}

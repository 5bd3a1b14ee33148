//! Accounts of the people who read kaoqin's output, their web sessions and API
//! tokens, and the one access rule every page, API call and export goes through.
//!
//! What must stay true:
//! - passwords are kept only as argon2 PHC strings; session and API tokens only as
//!   SHA-256 hashes (the plain token is shown once, when made);
//! - [`can`] is the only place that decides who may see or do what: staff see only
//!   their own record, a department head their department(s), an officer all
//!   departments or the ones assigned, an admin everything;
//! - a new account's password is one-time: `must_change_password` is set until the
//!   person chooses their own.

use crate::store::StoreError;
use serde::Serialize;

/// How long a web session lasts without logging in again.
pub const SESSION_TTL_MS: i64 = 12 * 3_600_000;
/// Shortest password a person may choose.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// What someone is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including accounts and the audit log.
    Admin,
    /// Reports of all departments, or of the assigned ones; decides appeals.
    Officer,
    /// Reports of their own department(s).
    DeptHead,
    /// Their own record only.
    Staff,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Officer => "officer",
            Role::DeptHead => "dept_head",
            Role::Staff => "staff",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "officer" => Role::Officer,
            "dept_head" => Role::DeptHead,
            "staff" => Role::Staff,
            _ => return None,
        })
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    /// The staff member this account is (staff; optional for the others).
    pub employee_id: Option<String>,
    /// Scope of an officer (empty: all) or a department head.
    pub departments: Vec<String>,
    pub must_change_password: bool,
}

/// What someone wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See attendance records (pages, API).
    View,
    /// Download a report file.
    Export,
    /// Approve or reject appeals, which corrects verdicts.
    Decide,
    /// Appeal a day of one's own record.
    Appeal,
    /// See collector-wide facts: unmapped accounts, silent agents.
    Operate,
    /// Manage accounts and read the audit log.
    Administer,
}

/// Whose record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// One staff member.
    Person {
        employee_id: &'a str,
        department: &'a str,
    },
    /// A whole department.
    Department(&'a str),
    /// Everyone (every department).
    All,
    /// Nobody's record (collector-wide facts, accounts).
    System,
}

/// The one access rule (see the module doc).
pub fn can(user: &User, action: Action, target: Target<'_>) -> bool {
    let in_scope = |dept: &str| user.departments.iter().any(|d| d == dept);
    let own = |id: &str| user.employee_id.as_deref() == Some(id);
    match user.role {
        Role::Admin => {
            action != Action::Appeal
                || matches!(target, Target::Person { employee_id, .. } if own(employee_id))
        }
        Role::Officer => {
            let all = user.departments.is_empty();
            match action {
                Action::View | Action::Export | Action::Decide => match target {
                    Target::Person { department, .. } | Target::Department(department) => {
                        all || in_scope(department)
                    }
                    Target::All => all,
                    Target::System => false,
                },
                Action::Appeal => {
                    matches!(target, Target::Person { employee_id, .. } if own(employee_id))
                }
                Action::Operate => true,
                Action::Administer => false,
            }
        }
        Role::DeptHead => match action {
            Action::View | Action::Export => match target {
                Target::Person { department, .. } | Target::Department(department) => {
                    in_scope(department)
                }
                _ => false,
            },
            Action::Appeal => {
                matches!(target, Target::Person { employee_id, .. } if own(employee_id))
            }
            _ => false,
        },
        Role::Staff => match (action, target) {
            (Action::View | Action::Appeal, Target::Person { employee_id, .. }) => own(employee_id),
            _ => false,
        },
    }
}

/// Whether `user` may see records of `department` (lists and summaries filter by it).
pub fn sees_department(user: &User, department: &str) -> bool {
    can(user, Action::View, Target::Department(department))
}

/// A one-time password: 12 characters from an alphabet without look-alikes.
pub fn one_time_password() -> Result<String, StoreError> {
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789A";
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("random source: {e}"))))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect())
}

/// The argon2 PHC string of `password` with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("random source: {e}"))))?;
    let salt = password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("salt: {e}"))))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("argon2: {e}"))))
}

/// Whether `password` matches the PHC string `stored`.
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::PasswordVerifier;
    password_hash::PasswordHash::new(stored).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Checks a username: 1-64 characters of letters, digits, `.`, `_`, `-`.
pub fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(format!("username {name:?}: 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "username {name:?}: letters, digits, '.', '_' and '-' only"
        ));
    }
    Ok(())
}

/// What a new account needs before anything is stored: a good username, an
/// employee for a staff account, a department for a department head.
pub fn check_new_user(new: &NewUser) -> Result<(), StoreError> {
    check_username(&new.username).map_err(StoreError::Invalid)?;
    if new.role == Role::Staff && new.employee_id.is_none() {
        return Err(StoreError::Invalid(
            "a staff account needs --employee".into(),
        ));
    }
    if new.role == Role::DeptHead && new.departments.is_empty() {
        return Err(StoreError::Invalid(
            "a dept_head account needs --department".into(),
        ));
    }
    Ok(())
}

/// A password a person may choose: long enough.
pub fn check_password(password: &str) -> Result<(), StoreError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// A new account to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub role: Role,
    pub employee_id: Option<String>,
    pub departments: Vec<String>,
}

/// What an account signed in through the office directory has instead of a
/// password hash: no password of kaoqin's matches it.
pub const DIRECTORY_PASSWORD: &str = "!directory";

/// An argon2 hash of a random password, verified against for unknown usernames.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$Mz9gDvGx0nQ3m2xg4mH2pX2JUS7xGZb6Jw9y0cNQm4w";

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::store::concerns::*;

    fn user(role: Role, employee: Option<&str>, departments: &[&str]) -> User {
        User {
            id: 1,
            username: "u".into(),
            role,
            employee_id: employee.map(str::to_owned),
            departments: departments.iter().map(|d| d.to_string()).collect(),
            must_change_password: false,
        }
    }

    #[test]
    fn the_access_rule_by_role() {
        let me = Target::Person {
            employee_id: "E001",
            department: "办公室",
        };
        let other = Target::Person {
            employee_id: "E002",
            department: "办公室",
        };
        let elsewhere = Target::Person {
            employee_id: "E003",
            department: "信息中心",
        };
        let staff = user(Role::Staff, Some("E001"), &[]);
        assert!(can(&staff, Action::View, me));
        assert!(can(&staff, Action::Appeal, me));
        for t in [
            other,
            elsewhere,
            Target::All,
            Target::Department("办公室"),
            Target::System,
        ] {
            assert!(!can(&staff, Action::View, t), "{t:?}");
            assert!(!can(&staff, Action::Export, t), "{t:?}");
        }
        assert!(!can(&staff, Action::Decide, me));

        let head = user(Role::DeptHead, Some("E002"), &["办公室"]);
        assert!(can(&head, Action::View, me));
        assert!(can(&head, Action::Export, Target::Department("办公室")));
        assert!(!can(&head, Action::View, elsewhere));
        assert!(!can(&head, Action::View, Target::All));
        assert!(!can(&head, Action::Decide, me));

        let officer = user(Role::Officer, None, &[]);
        for t in [me, other, elsewhere, Target::All] {
            assert!(can(&officer, Action::View, t));
            assert!(can(&officer, Action::Decide, t));
        }
        assert!(!can(&officer, Action::Administer, Target::System));
        assert!(can(&officer, Action::Operate, Target::System));
        let scoped = user(Role::Officer, None, &["信息中心"]);
        assert!(can(&scoped, Action::View, elsewhere));
        assert!(!can(&scoped, Action::View, me));
        assert!(!can(&scoped, Action::View, Target::All));

        let admin = user(Role::Admin, None, &[]);
        assert!(can(&admin, Action::Administer, Target::System));
        assert!(can(&admin, Action::View, elsewhere));
        assert!(!can(&admin, Action::Appeal, elsewhere));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        let p = one_time_password().unwrap();
        assert_eq!(p.len(), 12);
    }
}

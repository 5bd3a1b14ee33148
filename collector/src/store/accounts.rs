//! Accounts, sessions and API tokens in the embedded store. Who may do what, and
//! how passwords are kept, is in [`crate::users`].

use super::sqlite::{SqliteStore, sql_err};
use super::{StoreError, hash_secret, new_secret};
use crate::users::*;
use rusqlite::{OptionalExtension, params};

const USER_COLUMNS: &str = "id, username, role, employee_id, must_change_password";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(2)?;
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Staff),
        employee_id: r.get(3)?,
        departments: Vec::new(),
        must_change_password: r.get(4)?,
    })
}

impl SqliteStore {
    fn with_departments(&self, mut user: User) -> Result<User, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached(
                "SELECT department FROM user_departments WHERE user_id = ?1 ORDER BY department",
            )
            .map_err(&err)?;
        user.departments = stmt
            .query_map([user.id], |r| r.get(0))
            .map_err(&err)?
            .collect::<Result<_, _>>()
            .map_err(&err)?;
        Ok(user)
    }
}

/// Gives account `id` the departments `list` (besides any it has).
fn add_departments(
    tx: &rusqlite::Transaction<'_>,
    store: &SqliteStore,
    id: i64,
    list: &[String],
) -> Result<(), StoreError> {
    for d in list {
        tx.execute(
            "INSERT OR IGNORE INTO user_departments (user_id, department) VALUES (?1, ?2)",
            params![id, d],
        )
        .map_err(sql_err(store.path()))?;
    }
    Ok(())
}

impl super::Accounts for SqliteStore {
    fn set_user_lang(&self, user_id: i64, lang: &str) -> Result<(), StoreError> {
        self.writer()
            .execute(
                "UPDATE users SET lang = ?2 WHERE id = ?1 AND lang IS NOT ?2",
                params![user_id, lang],
            )
            .map_err(sql_err(self.path()))?;
        Ok(())
    }

    fn user_langs(&self) -> Result<std::collections::HashMap<i64, String>, StoreError> {
        let conn = self.reader();
        let err = sql_err(self.path());
        let mut stmt = conn
            .prepare_cached("SELECT id, lang FROM users WHERE lang IS NOT NULL")
            .map_err(&err)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(&err)
    }

    fn reset_password(&self, username: &str) -> Result<String, StoreError> {
        let password = one_time_password()?;
        let hash = hash_password(&password)?;
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let found: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, password_hash FROM users WHERE username = ?1",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&err)?;
        let id = match found {
            None => return Err(StoreError::NotFound(format!("no account {username:?}"))),
            Some((_, h)) if h == DIRECTORY_PASSWORD => {
                return Err(StoreError::Conflict(format!(
                    "{username:?} signs in with the office directory's password"
                )));
            }
            Some((id, _)) => id,
        };
        tx.execute(
            "UPDATE users SET password_hash = ?2, must_change_password = 1 WHERE id = ?1",
            params![id, hash],
        )
        .map_err(&err)?;
        tx.execute("DELETE FROM web_sessions WHERE user_id = ?1", [id])
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(password)
    }

    fn is_directory_account(&self, user_id: i64) -> Result<bool, StoreError> {
        self.reader()
            .query_row(
                "SELECT password_hash = ?2 FROM users WHERE id = ?1",
                params![user_id, DIRECTORY_PASSWORD],
                |r| r.get(0),
            )
            .optional()
            .map(|x| x.unwrap_or(false))
            .map_err(sql_err(self.path()))
    }

    fn upsert_directory_user(&self, new: &NewUser, now_ms: i64) -> Result<User, StoreError> {
        check_username(&new.username).map_err(StoreError::Invalid)?;
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let existing: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, password_hash FROM users WHERE username = ?1",
                [&new.username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&err)?;
        let id = match existing {
            Some((_, hash)) if hash != DIRECTORY_PASSWORD => {
                return Err(StoreError::Conflict(format!(
                    "{:?} is a local account",
                    new.username
                )));
            }
            Some((id, _)) => {
                tx.execute(
                    "UPDATE users SET role = ?2, employee_id = ?3 WHERE id = ?1",
                    params![id, new.role.as_str(), new.employee_id],
                )
                .map_err(&err)?;
                tx.execute("DELETE FROM user_departments WHERE user_id = ?1", [id])
                    .map_err(&err)?;
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO users (username, password_hash, role, employee_id, must_change_password, created_ms)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                    params![new.username, DIRECTORY_PASSWORD, new.role.as_str(), new.employee_id, now_ms],
                )
                .map_err(&err)?;
                tx.last_insert_rowid()
            }
        };
        add_departments(&tx, self, id, &new.departments)?;
        tx.commit().map_err(&err)?;
        drop(conn);
        self.user_by_name(&new.username)?
            .ok_or_else(|| StoreError::Conflict(format!("{:?} is disabled", new.username)))
    }

    fn add_user(&self, new: &NewUser, now_ms: i64) -> Result<String, StoreError> {
        check_new_user(new)?;
        let password = one_time_password()?;
        let hash = hash_password(&password)?;
        let mut conn = self.writer();
        let err = sql_err(self.path());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        if let Some(id) = &new.employee_id {
            let known: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM staff WHERE employee_id = ?1)",
                    [id],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            if !known {
                return Err(StoreError::Invalid(format!(
                    "employee {id:?} is not in the staff directory"
                )));
            }
        }
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM users WHERE username = ?1)",
                [&new.username],
                |r| r.get(0),
            )
            .map_err(&err)?;
        if exists {
            return Err(StoreError::Invalid(format!(
                "username {:?} is taken",
                new.username
            )));
        }
        tx.execute(
            "INSERT INTO users (username, password_hash, role, employee_id, must_change_password, created_ms)
             VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            params![new.username, hash, new.role.as_str(), new.employee_id, now_ms],
        )
        .map_err(&err)?;
        let id = tx.last_insert_rowid();
        add_departments(&tx, self, id, &new.departments)?;
        tx.commit().map_err(&err)?;
        Ok(password)
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let u = self
            .reader()
            .query_row(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE username = ?1 AND disabled_ms IS NULL"
                ),
                [username],
                user_row,
            )
            .optional()
            .map_err(sql_err(self.path()))?;
        u.map(|u| self.with_departments(u)).transpose()
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        let list: Vec<User> = {
            let conn = self.reader();
            let err = sql_err(self.path());
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {USER_COLUMNS} FROM users ORDER BY username"
                ))
                .map_err(&err)?;
            stmt.query_map([], user_row)
                .map_err(&err)?
                .collect::<Result<_, _>>()
                .map_err(&err)?
        };
        list.into_iter().map(|u| self.with_departments(u)).collect()
    }

    fn check_login(&self, username: &str, password: &str) -> Result<Option<User>, StoreError> {
        let row: Option<(i64, String)> = self
            .reader()
            .query_row(
                "SELECT id, password_hash FROM users WHERE username = ?1 AND disabled_ms IS NULL",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql_err(self.path()))?;
        match row {
            Some((_, hash)) if verify_password(password, &hash) => self.user_by_name(username),
            Some(_) => Ok(None),
            None => {
                // Spend the same time as a wrong password, so timing shows nothing.
                let _ = verify_password(password, DUMMY_HASH);
                Ok(None)
            }
        }
    }

    fn set_password(&self, user_id: i64, password: &str) -> Result<(), StoreError> {
        check_password(password)?;
        let hash = hash_password(password)?;
        self.writer()
            .execute(
                "UPDATE users SET password_hash = ?1, must_change_password = 0 WHERE id = ?2",
                params![hash, user_id],
            )
            .map_err(sql_err(self.path()))?;
        Ok(())
    }

    fn create_session(&self, user_id: i64, now_ms: i64) -> Result<String, StoreError> {
        let token = new_secret()?;
        let conn = self.writer();
        let err = sql_err(self.path());
        conn.execute("DELETE FROM web_sessions WHERE expires_ms <= ?1", [now_ms])
            .map_err(&err)?;
        conn.execute(
            "INSERT INTO web_sessions (token_hash, user_id, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
            params![hash_secret(&token), user_id, now_ms, now_ms + SESSION_TTL_MS],
        )
        .map_err(&err)?;
        Ok(token)
    }

    fn session_user(&self, token: &str, now_ms: i64) -> Result<Option<User>, StoreError> {
        let u = self
            .reader()
            .query_row(
                "SELECT u.id, u.username, u.role, u.employee_id, u.must_change_password
                 FROM web_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_ms > ?2 AND u.disabled_ms IS NULL",
                params![hash_secret(token), now_ms],
                user_row,
            )
            .optional()
            .map_err(sql_err(self.path()))?;
        u.map(|u| self.with_departments(u)).transpose()
    }

    fn end_session(&self, token: &str) -> Result<(), StoreError> {
        self.writer()
            .execute(
                "DELETE FROM web_sessions WHERE token_hash = ?1",
                [hash_secret(token)],
            )
            .map_err(sql_err(self.path()))?;
        Ok(())
    }

    fn end_sessions_of(&self, user_id: i64, except: Option<&str>) -> Result<(), StoreError> {
        self.writer()
            .execute(
                "DELETE FROM web_sessions WHERE user_id = ?1 AND token_hash != ?2",
                params![user_id, except.map(hash_secret).unwrap_or_default()],
            )
            .map_err(sql_err(self.path()))?;
        Ok(())
    }

    fn create_api_token(
        &self,
        username: &str,
        ttl_ms: i64,
        note: &str,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let user = self
            .user_by_name(username)?
            .ok_or_else(|| StoreError::Invalid(format!("no account {username:?}")))?;
        let token = format!("kqu1-{}", new_secret()?);
        self.writer()
            .execute(
                "INSERT INTO api_tokens (hash, user_id, created_ms, expires_ms, note) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash_secret(&token), user.id, now_ms, now_ms.saturating_add(ttl_ms), note],
            )
            .map_err(sql_err(self.path()))?;
        Ok(token)
    }

    fn api_token_user(&self, token: &str, now_ms: i64) -> Result<Option<User>, StoreError> {
        let u = self
            .reader()
            .query_row(
                "SELECT u.id, u.username, u.role, u.employee_id, u.must_change_password
                 FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.hash = ?1 AND t.expires_ms > ?2 AND t.revoked_ms IS NULL
                   AND u.disabled_ms IS NULL",
                params![hash_secret(token), now_ms],
                user_row,
            )
            .optional()
            .map_err(sql_err(self.path()))?;
        u.map(|u| self.with_departments(u)).transpose()
    }
}

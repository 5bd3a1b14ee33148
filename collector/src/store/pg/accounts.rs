//! Accounts, sessions and API tokens on PostgreSQL (see [`crate::users`]).

use super::PgStore;
use crate::store::{Accounts, StoreError, hash_secret, new_secret};
use crate::users::*;

const USER_COLUMNS: &str = "u.id, u.username, u.role, u.employee_id, u.must_change_password,
    ARRAY(SELECT department FROM user_departments d WHERE d.user_id = u.id ORDER BY department COLLATE \"C\")";

fn user_row(r: &tokio_postgres::Row) -> User {
    let role: String = r.get(2);
    User {
        id: r.get(0),
        username: r.get(1),
        role: Role::parse(&role).unwrap_or(Role::Staff),
        employee_id: r.get(3),
        departments: r.get(5),
        must_change_password: r.get(4),
    }
}

/// Gives account `id` the departments `list` (besides any it has).
async fn add_departments(
    tx: &impl deadpool_postgres::GenericClient,
    store: &super::PgInner,
    id: i64,
    list: &[String],
) -> Result<(), StoreError> {
    for d in list {
        tx.execute(
            "INSERT INTO user_departments (user_id, department) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&id, d],
        )
        .await
        .map_err(store.err())?;
    }
    Ok(())
}

impl Accounts for PgStore {
    fn set_user_lang(&self, user_id: i64, lang: &str) -> Result<(), StoreError> {
        self.block(self.execute(
            "UPDATE users SET lang = $2 WHERE id = $1 AND lang IS DISTINCT FROM $2",
            &[&user_id, &lang],
        ))?;
        Ok(())
    }

    fn user_langs(&self) -> Result<std::collections::HashMap<i64, String>, StoreError> {
        let rows =
            self.block(self.query("SELECT id, lang FROM users WHERE lang IS NOT NULL", &[]))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn reset_password(&self, username: &str) -> Result<String, StoreError> {
        let password = one_time_password()?;
        let hash = hash_password(&password)?;
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            let found = tx
                .query_opt(
                    "SELECT id, password_hash FROM users WHERE username = $1 FOR UPDATE",
                    &[&username],
                )
                .await
                .map_err(&err)?;
            let id: i64 = match found {
                None => return Err(StoreError::NotFound(format!("no account {username:?}"))),
                Some(r) if r.get::<_, String>(1) == DIRECTORY_PASSWORD => {
                    return Err(StoreError::Conflict(format!(
                        "{username:?} signs in with the office directory's password"
                    )));
                }
                Some(r) => r.get(0),
            };
            tx.execute(
                "UPDATE users SET password_hash = $2, must_change_password = true WHERE id = $1",
                &[&id, &hash],
            )
            .await
            .map_err(&err)?;
            tx.execute("DELETE FROM web_sessions WHERE user_id = $1", &[&id])
                .await
                .map_err(&err)?;
            tx.commit().await.map_err(&err)?;
            Ok(())
        })?;
        Ok(password)
    }

    fn is_directory_account(&self, user_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .block(self.query_opt(
                "SELECT password_hash = $2 FROM users WHERE id = $1",
                &[&user_id, &DIRECTORY_PASSWORD],
            ))?
            .is_some_and(|r| r.get(0)))
    }

    fn upsert_directory_user(&self, new: &NewUser, now_ms: i64) -> Result<User, StoreError> {
        check_username(&new.username).map_err(StoreError::Invalid)?;
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            let existing = tx
                .query_opt(
                    "SELECT id, password_hash FROM users WHERE username = $1 FOR UPDATE",
                    &[&new.username],
                )
                .await
                .map_err(&err)?;
            let id: i64 = match existing {
                Some(r) if r.get::<_, String>(1) != DIRECTORY_PASSWORD => {
                    return Err(StoreError::Conflict(format!(
                        "{:?} is a local account",
                        new.username
                    )));
                }
                Some(r) => {
                    let id: i64 = r.get(0);
                    tx.execute(
                        "UPDATE users SET role = $2, employee_id = $3 WHERE id = $1",
                        &[&id, &new.role.as_str(), &new.employee_id],
                    )
                    .await
                    .map_err(&err)?;
                    tx.execute("DELETE FROM user_departments WHERE user_id = $1", &[&id])
                        .await
                        .map_err(&err)?;
                    id
                }
                None => tx
                    .query_one(
                        "INSERT INTO users (username, password_hash, role, employee_id, must_change_password, created_ms)
                         VALUES ($1, $2, $3, $4, false, $5) RETURNING id",
                        &[&new.username, &DIRECTORY_PASSWORD, &new.role.as_str(), &new.employee_id, &now_ms],
                    )
                    .await
                    .map_err(&err)?
                    .get(0),
            };
            add_departments(&tx, self, id, &new.departments).await?;
            tx.commit().await.map_err(&err)?;
            Ok(())
        })?;
        self.user_by_name(&new.username)?
            .ok_or_else(|| StoreError::Conflict(format!("{:?} is disabled", new.username)))
    }

    fn add_user(&self, new: &NewUser, now_ms: i64) -> Result<String, StoreError> {
        check_new_user(new)?;
        let password = one_time_password()?;
        let hash = hash_password(&password)?;
        self.block(async {
            let mut conn = self.conn().await?;
            let err = self.err();
            let tx = conn.transaction().await.map_err(&err)?;
            if let Some(id) = &new.employee_id {
                let known: bool = tx
                    .query_one(
                        "SELECT EXISTS(SELECT 1 FROM staff WHERE employee_id = $1)",
                        &[id],
                    )
                    .await
                    .map_err(&err)?
                    .get(0);
                if !known {
                    return Err(StoreError::Invalid(format!(
                        "employee {id:?} is not in the staff directory"
                    )));
                }
            }
            let row = tx
                .query_opt(
                    "INSERT INTO users (username, password_hash, role, employee_id, must_change_password, created_ms)
                     VALUES ($1, $2, $3, $4, true, $5)
                     ON CONFLICT (username) DO NOTHING RETURNING id",
                    &[&new.username, &hash, &new.role.as_str(), &new.employee_id, &now_ms],
                )
                .await
                .map_err(&err)?;
            let Some(row) = row else {
                return Err(StoreError::Invalid(format!(
                    "username {:?} is taken",
                    new.username
                )));
            };
            let id: i64 = row.get(0);
            add_departments(&tx, self, id, &new.departments).await?;
            tx.commit().await.map_err(&err)?;
            Ok(())
        })?;
        Ok(password)
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.block(async {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE username = $1 AND disabled_ms IS NULL"
            );
            Ok(self
                .query_opt(&sql, &[&username])
                .await?
                .as_ref()
                .map(user_row))
        })
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.block(async {
            let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY username COLLATE \"C\"");
            Ok(self.query(&sql, &[]).await?.iter().map(user_row).collect())
        })
    }

    fn check_login(&self, username: &str, password: &str) -> Result<Option<User>, StoreError> {
        let row = self.block(self.query_opt(
            "SELECT id, password_hash FROM users WHERE username = $1 AND disabled_ms IS NULL",
            &[&username],
        ))?;
        match row {
            Some(r) if verify_password(password, r.get(1)) => self.user_by_name(username),
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
        self.block(self.execute(
            "UPDATE users SET password_hash = $1, must_change_password = false WHERE id = $2",
            &[&hash, &user_id],
        ))?;
        Ok(())
    }

    fn create_session(&self, user_id: i64, now_ms: i64) -> Result<String, StoreError> {
        let token = new_secret()?;
        self.block(async {
            self.execute(
                "DELETE FROM web_sessions WHERE expires_ms <= $1",
                &[&now_ms],
            )
            .await?;
            self.execute(
                "INSERT INTO web_sessions (token_hash, user_id, created_ms, expires_ms)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &hash_secret(&token),
                    &user_id,
                    &now_ms,
                    &(now_ms + SESSION_TTL_MS),
                ],
            )
            .await
        })?;
        Ok(token)
    }

    fn session_user(&self, token: &str, now_ms: i64) -> Result<Option<User>, StoreError> {
        self.block(async {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM web_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.expires_ms > $2 AND u.disabled_ms IS NULL"
            );
            let row = self
                .query_opt(&sql, &[&hash_secret(token), &now_ms])
                .await?;
            Ok(row.as_ref().map(user_row))
        })
    }

    fn end_session(&self, token: &str) -> Result<(), StoreError> {
        self.block(self.execute(
            "DELETE FROM web_sessions WHERE token_hash = $1",
            &[&hash_secret(token)],
        ))?;
        Ok(())
    }

    fn end_sessions_of(&self, user_id: i64, except: Option<&str>) -> Result<(), StoreError> {
        let keep = except.map(hash_secret).unwrap_or_default();
        self.block(self.execute(
            "DELETE FROM web_sessions WHERE user_id = $1 AND token_hash != $2",
            &[&user_id, &keep],
        ))?;
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
        self.block(self.execute(
            "INSERT INTO api_tokens (hash, user_id, created_ms, expires_ms, note)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &hash_secret(&token),
                &user.id,
                &now_ms,
                &now_ms.saturating_add(ttl_ms),
                &note,
            ],
        ))?;
        Ok(token)
    }

    fn api_token_user(&self, token: &str, now_ms: i64) -> Result<Option<User>, StoreError> {
        self.block(async {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.hash = $1 AND t.expires_ms > $2 AND t.revoked_ms IS NULL
                   AND u.disabled_ms IS NULL"
            );
            let row = self
                .query_opt(&sql, &[&hash_secret(token), &now_ms])
                .await?;
            Ok(row.as_ref().map(user_row))
        })
    }
}

//! Accounts: registration, login, logout and bearer tokens.

use std::net::IpAddr;
use std::sync::Arc;

use super::password::{self, token_hash};
use super::view::{SessionView, UserView};
use super::{Account, Chat, Event};
use crate::error::{Error, Result};
use crate::events::{CloseReason, Subscription, TooManyConnections};
use crate::store::records::{now_millis, TokenRecord, UserId, UserRecord};

pub const USERNAME_MAX_CHARS: usize = 32;
pub const PASSWORD_MIN_CHARS: usize = 8;
/// argon2 takes any length; a bound keeps a request from buying seconds of CPU.
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// The longest text the user directory searches for.
pub const USER_QUERY_MAX_BYTES: usize = 64;
/// Users listed by the directory when the request does not say.
pub const USER_LIST_DEFAULT: usize = 20;
/// The most users the directory lists at once.
pub const USER_LIST_MAX: usize = 100;

/// Who is calling: the user and the token they called with.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user_id: UserId,
    pub token_hash: [u8; 32],
}

fn check_username(name: &str) -> Result<()> {
    let chars = name.chars().count();
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    if chars == 0 || chars > USERNAME_MAX_CHARS || !name.chars().all(allowed) {
        return Err(Error::bad_request(
            "invalid_username",
            format!("a username is 1 to {USERNAME_MAX_CHARS} letters, digits, '_', '-' or '.'"),
        ));
    }
    Ok(())
}

pub(super) fn check_password(password: &str, code: &'static str) -> Result<()> {
    if password.chars().count() < PASSWORD_MIN_CHARS || password.len() > PASSWORD_MAX_BYTES {
        return Err(Error::bad_request(
            code,
            format!(
                "a password is at least {PASSWORD_MIN_CHARS} characters and at most {PASSWORD_MAX_BYTES} bytes"
            ),
        ));
    }
    Ok(())
}

impl Chat {
    /// Creates an account and a first token. Refused when registration is closed.
    pub async fn register(&self, username: String, password: String) -> Result<SessionView> {
        if !self.settings.open_registration {
            return Err(Error::forbidden(
                "registration_closed",
                "registration is closed on this server; ask an administrator for an account",
            ));
        }
        self.create_user(username, password).await
    }

    /// Creates an account (for register and the admin CLI) and a first token.
    pub async fn create_user(&self, username: String, password: String) -> Result<SessionView> {
        check_username(&username)?;
        check_password(&password, "invalid_password")?;
        if self
            .accounts()
            .by_name
            .contains_key(&username.to_lowercase())
        {
            return Err(Error::conflict("username_taken", "this username is taken"));
        }
        let password_hash = password::hash(password).await?;
        let record = UserRecord {
            username: username.clone(),
            password_hash,
            created_at: now_millis(),
            disabled: false,
        };
        let user_id = {
            let mut accounts = self.accounts_mut();
            let id = accounts.next_user_id;
            // The store's transaction is the real uniqueness check; the map above
            // only saved hashing a password in vain.
            if !self.store.insert_user(id, &record)? {
                return Err(Error::conflict("username_taken", "this username is taken"));
            }
            accounts.next_user_id += 1;
            accounts.by_name.insert(username.to_lowercase(), id);
            accounts.users.insert(
                id,
                Account {
                    username: username.into(),
                    password_hash: record.password_hash,
                    created_at: record.created_at,
                    disabled: false,
                },
            );
            id
        };
        tracing::info!(user_id, "user registered");
        self.issue_token(user_id)
    }

    /// Checks a username and password and issues a new token. Attempts are limited
    /// per username and per client address.
    pub async fn login(
        &self,
        username: &str,
        password: String,
        addr: Option<IpAddr>,
    ) -> Result<SessionView> {
        let limited = |wait: std::time::Duration| Error::RateLimited {
            code: "too_many_attempts",
            message: format!(
                "too many login attempts; at most {} per minute, retry in {} s",
                self.settings.login_attempts_per_minute,
                wait.as_secs().max(1)
            ),
            retry_after_ms: wait.as_millis() as u64,
        };
        self.login_rate_by_name
            .take(username.to_lowercase())
            .map_err(limited)?;
        if let Some(addr) = addr {
            self.login_rate_by_addr.take(addr).map_err(limited)?;
        }
        let found = {
            let accounts = self.accounts();
            accounts
                .by_name
                .get(&username.to_lowercase())
                .and_then(|id| {
                    accounts
                        .users
                        .get(id)
                        .map(|a| (*id, a.password_hash.clone(), a.disabled))
                })
        };
        let Some((user_id, stored, disabled)) = found else {
            let decoy = self
                .decoy_hash
                .get_or_try_init(|| password::hash(password::new_token()))
                .await?;
            password::verify(password, decoy.clone()).await?;
            return Err(Error::BadCredentials);
        };
        if !password::verify(password, stored).await? {
            return Err(Error::BadCredentials);
        }
        if disabled {
            return Err(Error::forbidden(
                "account_disabled",
                "this account is disabled",
            ));
        }
        self.issue_token(user_id)
    }

    fn issue_token(&self, user_id: UserId) -> Result<SessionView> {
        let token = password::new_token();
        let hash = token_hash(&token);
        self.store.insert_token(
            &hash,
            &TokenRecord {
                user_id,
                created_at: now_millis(),
            },
        )?;
        self.accounts_mut().tokens.insert(hash, user_id);
        Ok(SessionView {
            user_id,
            username: self.username(user_id),
            token,
        })
    }

    /// Revokes the caller's token and closes the connections opened with it.
    pub fn logout(&self, caller: Caller) -> Result<()> {
        self.store.remove_token(&caller.token_hash)?;
        self.accounts_mut().tokens.remove(&caller.token_hash);
        self.bus
            .close_token(caller.user_id, &caller.token_hash, CloseReason::LoggedOut);
        Ok(())
    }

    /// Opens a connection of `caller` on the bus, unless the user already has as
    /// many as allowed (`limits.connections_per_user`): checked and counted at once.
    pub fn connect(&self, caller: Caller) -> Result<Subscription<Event>> {
        let max = self.settings.connections_per_user;
        self.bus
            .subscribe_within(caller.user_id, caller.token_hash, max)
            .map_err(|TooManyConnections| Error::RateLimited {
                code: "too_many_connections",
                message: format!("at most {max} open connections per user"),
                retry_after_ms: 1000,
            })
    }

    /// The user a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<Caller> {
        let hash = token_hash(token);
        let accounts = self.accounts();
        let user_id = *accounts.tokens.get(&hash).ok_or(Error::Unauthorized)?;
        match accounts.users.get(&user_id) {
            Some(account) if !account.disabled => Ok(Caller {
                user_id,
                token_hash: hash,
            }),
            _ => Err(Error::Unauthorized),
        }
    }

    /// The user directory: enabled users whose name contains `query` in any case,
    /// sorted by name, at most `limit` ([`USER_LIST_DEFAULT`] when `None`). An empty
    /// query lists the first names.
    pub fn find_users(&self, query: &str, limit: Option<usize>) -> Result<Vec<UserView>> {
        if query.len() > USER_QUERY_MAX_BYTES {
            return Err(Error::bad_request(
                "invalid_query",
                format!("q is at most {USER_QUERY_MAX_BYTES} bytes"),
            ));
        }
        let limit = limit.unwrap_or(USER_LIST_DEFAULT);
        if limit == 0 || limit > USER_LIST_MAX {
            return Err(Error::bad_request(
                "invalid_limit",
                format!("limit is 1 to {USER_LIST_MAX}"),
            ));
        }
        let query = query.to_lowercase();
        let accounts = self.accounts();
        let mut found: Vec<(&str, UserId)> = accounts
            .by_name
            .iter()
            .filter(|(name, _)| name.contains(&query))
            .filter(|(_, id)| accounts.users.get(id).is_some_and(|a| !a.disabled))
            .map(|(name, id)| (name.as_str(), *id))
            .collect();
        if found.len() > limit {
            found.select_nth_unstable(limit);
            found.truncate(limit);
        }
        found.sort_unstable();
        Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, user_id)| UserView {
                user_id,
                username: accounts.name_of(user_id),
            })
            .collect())
    }

    pub fn user(&self, user_id: UserId) -> Result<UserView> {
        let accounts = self.accounts();
        let account = accounts.users.get(&user_id).ok_or(Error::UserNotFound)?;
        Ok(UserView {
            user_id,
            username: Arc::clone(&account.username),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for good in ["a", "alice", "김철수", "a.b-c_d", &"x".repeat(32)] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a/b", "<script>", &"x".repeat(33)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }
}

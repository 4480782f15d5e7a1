//! Accounts: registration, login, logout and bearer tokens.

use std::net::IpAddr;
use std::sync::Arc;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_security::{skeleton, RestrictionLevel, RestrictionLevelDetection};

use super::limits::address_key;
use super::password::{self, token_hash, Pool};
use super::view::{SessionView, UserView};
use super::{rate_limited, Account, Chat, Event};
use crate::error::{Error, Result};
use crate::events::{CloseReason, Subscription, TooManyConnections};
use crate::model::{now_millis, Token, User, UserId};

pub const USERNAME_MAX_CHARS: usize = 32;
pub const PASSWORD_MIN_CHARS: usize = 8;
/// argon2 takes any length; a bound keeps a request from buying seconds of CPU.
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// The longest text the user directory searches for, in characters (as JSON
/// Schema's `maxLength` counts, in the API document).
pub const USER_QUERY_MAX_CHARS: usize = 64;
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

/// Checks a new username: its length and characters, its normal form, and its
/// scripts. Look-alikes of existing names are refused by [`lookalike_key`].
fn check_username(name: &str) -> Result<()> {
    let invalid = |message: String| Err(Error::bad_request("invalid_username", message));
    let chars = name.chars().count();
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    if chars == 0 || chars > USERNAME_MAX_CHARS || !name.chars().all(allowed) {
        return invalid(format!(
            "a username is 1 to {USERNAME_MAX_CHARS} letters, digits, '_', '-' or '.'"
        ));
    }
    // Fullwidth letters, ligatures and the like have a plain form that looks the
    // same: ask for that.
    if !unicode_normalization::is_nfkc(name) {
        let plain: String = name.nfkc().collect();
        return invalid(format!("write the username in its plain form: {plain:?}"));
    }
    // One script per name (Latin may go with Hangul, Han or Japanese kana, as UTS 39
    // "highly restrictive" allows), so that `аlice` with a Cyrillic а is refused
    // while `김철수` and `kim철수` are not.
    let letters: String = name.chars().filter(|c| c.is_alphanumeric()).collect();
    if letters.as_str().detect_restriction_level() > RestrictionLevel::HighlyRestrictive {
        return invalid("a username may not mix scripts (e.g. Latin and Cyrillic letters)".into());
    }
    Ok(())
}

/// The key that look-alike names share, for uniqueness: the UTS 39 confusable
/// skeleton of the case-folded NFKC form, without combining marks. `alice`,
/// `Alice`, `ａｌｉｃｅ`, `alıce` and `аlice` (Cyrillic а) have one key; `İstanbul`
/// and `istanbul` too. Only new names are checked against it, so existing accounts
/// keep working as they are.
pub(super) fn lookalike_key(name: &str) -> String {
    let folded: String = name.nfkc().flat_map(char::to_lowercase).collect();
    let folded: String = folded.nfkc().collect();
    skeleton(&folded)
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
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
    /// Creates an account and a first token. Refused when registration is closed,
    /// and limited per client address.
    pub async fn register(
        &self,
        username: String,
        password: String,
        addr: Option<IpAddr>,
    ) -> Result<SessionView> {
        if !self.settings.open_registration {
            return Err(Error::forbidden(
                "registration_closed",
                "registration is closed on this server; ask an administrator for an account",
            ));
        }
        if let Some(addr) = addr {
            self.limits
                .registrations
                .take(&address_key(addr))
                .map_err(|refusal| {
                    rate_limited(
                        "too_many_registrations",
                        format!(
                            "too many registrations from your address: at most {} per hour",
                            self.settings.limits.registrations_per_hour
                        ),
                        refusal,
                    )
                })?;
        }
        self.create_user(username, password).await
    }

    /// Creates an account (for register and the admin CLI) and a first token.
    pub async fn create_user(&self, username: String, password: String) -> Result<SessionView> {
        check_username(&username)?;
        check_password(&password, "invalid_password")?;
        let key = lookalike_key(&username);
        let taken = || {
            Error::conflict(
                "username_taken",
                "this username (or one that looks like it) is taken",
            )
        };
        if self.accounts().by_lookalike.contains_key(&key) {
            return Err(taken());
        }
        let password_hash = self.hashing.hash(password, Pool::Other).await?;
        let record = User {
            username: username.clone(),
            password_hash,
            created_at: now_millis(),
            disabled: false,
        };
        let user_id = {
            let mut accounts = self.accounts_mut();
            // Checked again under the lock: another registration may have taken a
            // look-alike while the password was hashed.
            if accounts.by_lookalike.contains_key(&key) {
                return Err(taken());
            }
            let id = accounts.next_user_id;
            // The store's transaction is the real check of the lower-cased name.
            if !self.store.insert_user(id, &record)? {
                return Err(taken());
            }
            accounts.next_user_id = id.next();
            accounts.by_name.insert(username.to_lowercase(), id);
            accounts.by_lookalike.insert(key, id);
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
        tracing::info!(%user_id, "user registered");
        self.issue_token(user_id)
    }

    /// Checks a username and password and issues a new token. Attempts are limited
    /// per client address, and per username from one address: someone elsewhere
    /// cannot lock the name's owner out.
    pub async fn login(
        &self,
        username: &str,
        password: String,
        addr: Option<IpAddr>,
    ) -> Result<SessionView> {
        let limited = |refusal| {
            rate_limited(
                "too_many_attempts",
                format!(
                    "too many login attempts: at most {} per minute for a name, {} per minute from an address",
                    self.settings.limits.login_attempts_per_minute,
                    self.settings.limits.address_login_attempts_per_minute
                ),
                refusal,
            )
        };
        let addr = addr.map(address_key);
        if let Some(addr) = addr {
            self.limits.login_by_addr.take(&addr).map_err(limited)?;
        }
        // No account has a name this long: it must not become a key of anything.
        if username.is_empty() || username.chars().count() > USERNAME_MAX_CHARS {
            return Err(Error::BadCredentials);
        }
        let name = username.to_lowercase();
        if let Some(addr) = addr {
            self.limits
                .login_by_name
                .take(&(name.clone(), addr))
                .map_err(limited)?;
        }
        let found = {
            let accounts = self.accounts();
            accounts.by_name.get(&name).and_then(|id| {
                accounts
                    .users
                    .get(id)
                    .map(|a| (*id, a.password_hash.clone(), a.disabled))
            })
        };
        let Some((user_id, stored, disabled)) = found else {
            let decoy = self
                .decoy_hash
                .get_or_try_init(|| self.hashing.hash(password::new_token(), Pool::Login))
                .await?;
            self.hashing
                .verify(password, decoy.clone(), Pool::Login)
                .await?;
            return Err(Error::BadCredentials);
        };
        let right = self.hashing.verify(password, stored, Pool::Login).await?;
        // A disabled account answers the same whether the password was right.
        if disabled {
            return Err(Error::forbidden(
                "account_disabled",
                "this account is disabled",
            ));
        }
        if !right {
            return Err(Error::BadCredentials);
        }
        self.issue_token(user_id)
    }

    fn issue_token(&self, user_id: UserId) -> Result<SessionView> {
        let token = password::new_token();
        let hash = token_hash(&token);
        self.store.insert_token(
            &hash,
            &Token {
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
        let max = self.settings.limits.connections_per_user;
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
        if query.chars().count() > USER_QUERY_MAX_CHARS {
            return Err(Error::bad_request(
                "invalid_query",
                format!("q is at most {USER_QUERY_MAX_CHARS} characters"),
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
        for good in [
            "a",
            "alice",
            "Alice",
            "김철수",
            "김철수2",
            "kim철수",
            "a.b-c_d",
            "José",
            "İstanbul",
            "иванов",
            &"x".repeat(32),
        ] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "<script>",
            &"x".repeat(33),
            "\u{430}lice",
            "ａｌｉｃｅ",
            "ſam",
            "ivan_иванов",
            "a\u{200b}b",
            "a\u{202e}b",
        ] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lookalikes_share_a_key() {
        let alice = lookalike_key("alice");
        for same in ["Alice", "ALICE", "ａｌｉｃｅ", "alıce", "\u{430}lice"] {
            assert_eq!(lookalike_key(same), alice, "{same}");
        }
        assert_eq!(lookalike_key("ſam"), lookalike_key("sam"));
        assert_eq!(lookalike_key("İstanbul"), lookalike_key("istanbul"));
        assert_ne!(lookalike_key("김철수"), lookalike_key("김철호"));
        assert_ne!(lookalike_key("김철수"), lookalike_key("김칠수"));
        assert_eq!(lookalike_key("김철수"), lookalike_key("김철수"));
        assert_ne!(lookalike_key("bob"), lookalike_key("rob"));
    }
}

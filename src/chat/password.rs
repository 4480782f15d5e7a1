//! Password hashing (argon2id) and bearer tokens, off the async threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use rand::RngCore;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Which queue a hash waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Logins of existing users (and of unknown names, which must take as long).
    Login,
    /// Registrations, password changes and room passwords.
    Other,
}

/// Hashes asked for and not finished (running or waiting for a permit), in all
/// pools and servers of the process.
static HASHES_UNDERWAY: AtomicUsize = AtomicUsize::new(0);

/// How long after the last hash of a burst its memory is given back: long enough
/// for the burst's connections to have closed and freed their buffers.
const BURST_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Counts a hash as underway while it lives. When the last of a burst finishes and
/// no other has begun for [`BURST_SETTLE`], the burst's memory is given back (see
/// [`crate::allocator`]): its requests' buffers, freed in no particular order, would
/// otherwise stay resident.
struct Underway;

impl Underway {
    fn begin() -> Self {
        HASHES_UNDERWAY.fetch_add(1, Ordering::AcqRel);
        Self
    }
}

impl Drop for Underway {
    fn drop(&mut self) {
        if HASHES_UNDERWAY.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async {
                    tokio::time::sleep(BURST_SETTLE).await;
                    if HASHES_UNDERWAY.load(Ordering::Acquire) == 0 {
                        let _ = tokio::task::spawn_blocking(crate::allocator::release_free_memory)
                            .await;
                    }
                });
            }
        }
    }
}

/// Password hashing off the async threads, with a bound on how many hashes run at
/// once. Each argon2id hash takes 19 MiB and tens of milliseconds of CPU: unbounded,
/// a burst of registrations or logins would start a blocking thread per request,
/// each keeping its 19 MiB in the allocator's arena. Logins have their own queue
/// (`limits.concurrent_login_hashes`), so that a flood of registrations, password
/// changes or room passwords (`limits.concurrent_other_hashes`) never delays one.
pub struct Hashing {
    logins: Semaphore,
    others: Semaphore,
}

impl Hashing {
    pub fn new(logins: usize, others: usize) -> Self {
        Self {
            logins: Semaphore::new(logins.max(1)),
            others: Semaphore::new(others.max(1)),
        }
    }

    /// Runs an argon2 computation on a blocking thread, at most the pool's permits
    /// at once.
    async fn run<T: Send + 'static>(
        &self,
        pool: Pool,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let semaphore = match pool {
            Pool::Login => &self.logins,
            Pool::Other => &self.others,
        };
        let _underway = Underway::begin();
        let _permit = semaphore.acquire().await.map_err(|_| Error::Internal)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| Error::Internal)?
    }

    /// Hashes a password with argon2id (the crate's default parameters).
    pub async fn hash(&self, password: String, pool: Pool) -> Result<String> {
        self.run(pool, move || {
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            let salt = SaltString::encode_b64(&salt).map_err(|e| {
                tracing::error!(error = %e, "salt encoding failed");
                Error::Internal
            })?;
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| {
                    tracing::error!(error = %e, "password hashing failed");
                    Error::Internal
                })
        })
        .await
    }

    /// Checks a password against a stored hash.
    pub async fn verify(&self, password: String, stored: String, pool: Pool) -> Result<bool> {
        self.run(pool, move || {
            let parsed = PasswordHash::new(&stored).map_err(|e| {
                tracing::error!(error = %e, "a stored password hash does not parse");
                Error::Internal
            })?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }
}

/// A new bearer token: 256 random bits as 64 hex digits.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key a token is stored and looked up under.
pub fn token_hash(token: &str) -> [u8; 32] {
    Blake2b::<U32>::digest(token.as_bytes()).into()
}

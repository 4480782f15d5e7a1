//! The domain's one error type. `http` maps it to a status and `{error, message}`;
//! `ws` maps it to an `error` event. Nothing else formats errors for clients.

use crate::store::StoreError;

/// Everything a domain operation can refuse or fail with.
///
/// The `Display` text is the human message sent to clients, so it never carries
/// internal detail (paths, database errors): those are logged where they happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or a field is invalid.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// No token, or one we do not know.
    #[error("missing or invalid token")]
    Unauthorized,
    #[error("wrong username or password")]
    BadCredentials,
    /// The caller may not do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("no such room")]
    RoomNotFound,
    #[error("no such user")]
    UserNotFound,
    #[error("no such message")]
    MessageNotFound,
    /// Something else that does not exist (or that the caller may not know of).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The state forbids it (a name taken, not a member, …).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    /// Too many requests; try again after `retry_after_ms`.
    #[error("{message}")]
    RateLimited {
        code: &'static str,
        message: String,
        retry_after_ms: u64,
    },
    /// The client took too long to send the request.
    #[error("{message}")]
    Timeout { code: &'static str, message: String },
    /// The server cannot take this now (storage failing, shutting down).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The store failed; the detail has been logged.
    #[error("internal error")]
    Internal,
}

impl Error {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The machine-readable code sent as `error`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::TooLarge { code, .. }
            | Self::RateLimited { code, .. }
            | Self::Timeout { code, .. }
            | Self::NotFound { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::Unauthorized => "unauthorized",
            Self::BadCredentials => "bad_credentials",
            Self::RoomNotFound => "room_not_found",
            Self::UserNotFound => "user_not_found",
            Self::MessageNotFound => "message_not_found",
            Self::Internal => "internal",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store operation failed");
        Self::Internal
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

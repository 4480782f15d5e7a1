//! How a domain [`Error`] is answered over HTTP: a status and `{error, message}`; and
//! how a request names its caller (`Authorization: Bearer`).
//!
//! Shared by the REST API and the upgrades of both gateways (`/ws`, `/socket.io/`),
//! so that a refusal reads the same whatever refused it, and so that the gateways do
//! not import the REST layer.

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::error::Error;

/// The status a domain error is answered with.
pub fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthorized | Error::BadCredentials => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } => StatusCode::FORBIDDEN,
        Error::RoomNotFound
        | Error::UserNotFound
        | Error::MessageNotFound
        | Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
        Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

pub fn error_reply(status: StatusCode, code: &str, message: &str) -> Response {
    let body = warp::reply::json(&ErrorBody {
        error: code,
        message,
    });
    warp::reply::with_status(body, status).into_response()
}

pub fn api_error_reply(error: &Error) -> Response {
    let mut reply = error_reply(status_of(error), error.code(), &error.to_string());
    if let Error::RateLimited { retry_after_ms, .. } = error {
        let seconds = retry_after_ms.div_ceil(1000).max(1);
        reply
            .headers_mut()
            .insert(warp::http::header::RETRY_AFTER, seconds.into());
    }
    reply
}

/// The token of an `Authorization: Bearer <token>` header, trimmed; `None` for no
/// header, another scheme, or a value that is not text.
pub fn bearer(authorization: Option<&HeaderValue>) -> Option<&str> {
    authorization
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
}

//! The operator's HTTP endpoints, behind `admin.token`: the backup of a running
//! server.

use std::sync::Arc;

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{bearer_token, error_reply, with_chat};
use crate::chat::Chat;
use crate::error::Error;

/// GET /api/admin/backup → 200 application/octet-stream: a consistent snapshot
/// (see `daehwa backup`).
pub(super) fn backup(
    chat: Arc<Chat>,
    token: Arc<str>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "admin" / "backup")
        .and(warp::get())
        .and(bearer_token())
        .and(with_chat(chat))
        .and_then(move |given: Option<String>, chat: Arc<Chat>| {
            let token = Arc::clone(&token);
            async move {
                if token.is_empty() {
                    return Ok::<_, Rejection>(error_reply(
                        StatusCode::FORBIDDEN,
                        "admin_disabled",
                        "the admin endpoints are off: set admin.token in the config",
                    ));
                }
                if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                    return Err(Error::Unauthorized.into());
                }
                let backup = chat.backup().await?;
                let mut reply = warp::reply::stream(backup).into_response();
                reply.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                Ok(reply)
            }
        })
}

/// Compares without stopping at the first difference, so that timing does not tell
/// how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

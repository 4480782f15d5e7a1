//! The operator's endpoints: liveness, readiness, metrics. No token: bind the server
//! to an address your monitoring reaches and your users' proxy filters.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{json_reply, with_chat};
use crate::chat::Chat;

/// GET /healthz → 200 while the process serves requests.
pub(super) fn healthz() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .map(|| json_reply(StatusCode::OK, &json!({"status": "ok"})))
}

/// GET /readyz → 200, or 503 with the reasons: store unreadable, flush job silent,
/// flushes failing.
pub(super) fn readyz(
    chat: Arc<Chat>,
    flush_interval: Duration,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("readyz")
        .and(warp::get())
        .and(with_chat(chat))
        .map(
            move |chat: Arc<Chat>| match chat.readiness(flush_interval) {
                Ok(()) => json_reply(StatusCode::OK, &json!({"status": "ready"})),
                Err(problems) => json_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "not ready", "problems": problems}),
                ),
            },
        )
}

/// GET /metrics → OpenMetrics text.
pub(super) fn metrics(
    chat: Arc<Chat>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(with_chat(chat))
        .map(|chat: Arc<Chat>| {
            chat.refresh_gauges();
            let mut reply = chat.metrics().encode().into_response();
            reply.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            reply
        })
}

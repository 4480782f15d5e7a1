//! The REST API (the original design's controller): one filter per endpoint, JSON in
//! and out, and the one place where warp rejections become HTTP replies (domain
//! errors become replies in [`crate::reply`], which the gateways' upgrades share).

mod admin;
mod auth;
mod files;
mod messages;
mod moderation;
pub mod openapi;
mod ops;
mod rooms;
pub mod routes;
mod search;
pub mod web;

pub use routes::app;

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

use crate::chat::{Caller, Chat};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::proxy::{PeerAddr, TrustedProxies};
use crate::reply::{api_error_reply, error_reply};

/// A domain error on its way through warp's rejection machinery.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl warp::reject::Reject for ApiError {}

impl From<Error> for Rejection {
    fn from(e: Error) -> Self {
        warp::reject::custom(ApiError(e))
    }
}

/// Turns every rejection into `{error, message}` with a fitting status.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let reply = if let Some(ApiError(e)) = rejection.find() {
        api_error_reply(e)
    } else if rejection.is_not_found() {
        error_reply(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is too large",
        )
    } else if rejection.find::<warp::reject::InvalidHeader>().is_some() {
        error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            "a request header is malformed",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "the query string is malformed",
        )
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    };
    Ok(reply)
}

/// One log line and one count per request: method, route (the endpoint's template,
/// see [`routes::route_label`]), status, latency.
pub fn request_log(metrics: Arc<Metrics>) -> warp::log::Log<impl Fn(warp::log::Info<'_>) + Clone> {
    warp::log::custom(move |info| {
        let status = info.status().as_u16();
        let route = routes::route_label(info.method(), info.path());
        tracing::info!(
            target: "daehwa::http",
            route = %route,
            status,
            micros = info.elapsed().as_micros() as u64,
            "request"
        );
        metrics.count_request(route, status);
    })
}

/// Injects the chat service.
fn with_chat(chat: Arc<Chat>) -> impl Filter<Extract = (Arc<Chat>,), Error = Infallible> + Clone {
    warp::any().map(move || chat.clone())
}

/// An optional header's raw value: unlike `warp::header::optional::<String>`, a
/// value that is not UTF-8 is not a rejection (which would answer 500).
fn raw_header(
    name: &'static str,
) -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Clone {
    warp::header::value(name)
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

/// The token of `Authorization: Bearer <token>`, if the header says so (one that
/// is not text is no token).
fn bearer_token() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    raw_header("authorization").map(|header: Option<HeaderValue>| {
        header
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|token| token.trim().to_owned())
    })
}

/// The caller, from `Authorization: Bearer <token>`; 401 otherwise (a header that
/// is not text included).
fn caller(chat: Arc<Chat>) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    raw_header("authorization").and_then(move |header: Option<HeaderValue>| {
        let chat = chat.clone();
        async move {
            let token = header
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or(Error::Unauthorized)?;
            Ok::<_, Rejection>(chat.authenticate(token.trim())?)
        }
    })
}

/// The client's address: the TCP peer, or behind a trusted proxy the address it
/// forwards (`server.trusted_proxies`). `None` only where no accept loop put the
/// peer into the request.
fn client_ip(
    proxies: Arc<TrustedProxies>,
) -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>()
        .and(warp::header::headers_cloned())
        .map(move |peer: Option<PeerAddr>, headers: HeaderMap| {
            // A proxy appends to the last X-Forwarded-For line (or adds one).
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .map(HeaderValue::as_bytes);
            peer.map(|PeerAddr(addr)| proxies.client_addr(addr.ip(), forwarded))
        })
}

/// How much of a request body is read, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub bytes: u64,
    pub timeout: Duration,
}

/// The request body, at most `limits.bytes` bytes, whether or not it has a
/// Content-Length, read within `limits.timeout` (408 otherwise: a client that
/// trickles its body does not hold the connection).
fn body(limits: BodyLimits) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    raw_header("content-length")
        .and(warp::body::stream())
        .and_then(move |length: Option<HeaderValue>, stream| async move {
            let length = match length {
                None => None,
                Some(value) => Some(
                    value
                        .to_str()
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .ok_or_else(|| {
                            Error::bad_request("invalid_header", "Content-Length is not a number")
                        })?,
                ),
            };
            match tokio::time::timeout(limits.timeout, read_body(length, stream, limits.bytes))
                .await
            {
                Ok(body) => body,
                Err(_) => Err(Error::Timeout {
                    code: "body_timeout",
                    message: format!(
                        "the request body did not arrive within {} ms",
                        limits.timeout.as_millis()
                    ),
                }
                .into()),
            }
        })
}

async fn read_body<S, B>(length: Option<u64>, stream: S, limit: u64) -> Result<Bytes, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || Error::TooLarge {
        code: "body_too_large",
        message: format!("the request body is over {limit} bytes"),
    };
    if length.is_some_and(|l| l > limit) {
        return Err(too_large().into());
    }
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            Error::bad_request("invalid_body", "the request body could not be read")
        })?;
        if body.len() + chunk.remaining() > limit as usize {
            return Err(too_large().into());
        }
        body.put(chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON body, naming what is wrong with it.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

/// Parses the `limit` query parameter of a listing; `None` when not given.
fn parse_limit(text: Option<&str>) -> Result<Option<usize>, Error> {
    text.map(|text| {
        text.parse::<usize>()
            .map_err(|_| Error::bad_request("invalid_limit", "limit must be a positive integer"))
    })
    .transpose()
}

/// Parses a positive id (a `RoomId`, a `MsgId`, …) from a path segment.
fn parse_id<T: std::str::FromStr + Ord + Default>(segment: &str, what: &str) -> Result<T, Error> {
    segment
        .parse::<T>()
        .ok()
        .filter(|id| *id > T::default())
        .ok_or_else(|| {
            Error::bad_request("invalid_id", format!("{what} must be a positive integer"))
        })
}

fn json_reply<T: Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn no_content() -> Response {
    warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response()
}

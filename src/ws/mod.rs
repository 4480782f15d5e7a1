//! The WebSocket gateway (the original design's socket gateway): the upgrade at
//! `GET /ws`, and one [`connection`] per socket, a thin loop around the session core
//! ([`crate::session`]).
//!
//! The upgrade is answered here rather than by `warp::ws()`, which gives every
//! connection tungstenite's default 128 KiB read buffer (130 KiB of memory per idle
//! connection) and has no setter for it; ours reads through a small buffer. The
//! token is checked before the upgrade, so a bad one gets a 401 JSON reply.

mod codec;
mod connection;

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::chat::Chat;
use crate::error::Error;
use crate::reply::{api_error_reply, error_reply};
use crate::session::{parse_resume, Session};
use crate::shutdown::Shutdown;

/// Bytes read from the socket at a time. tungstenite allocates (and zeroes) this
/// buffer for every connection; chat frames are a few hundred bytes, so a larger one
/// only costs memory on every idle connection (4 KiB measured 8.4 KiB per idle
/// connection in all, over the 8 KiB budget).
const READ_BUFFER_BYTES: usize = 2048;
/// Outgoing bytes gathered before a write to the socket; events queued together are
/// written together.
const WRITE_BUFFER_BYTES: usize = 8192;

/// What every session needs, shared.
#[derive(Clone)]
pub struct Gateway {
    chat: Arc<Chat>,
    shutdown: Shutdown,
    config: WebSocketConfig,
    /// `server.allowed_origins`; empty allows only the server's own origin.
    allowed_origins: Arc<[String]>,
}

impl Gateway {
    pub fn new(
        chat: Arc<Chat>,
        shutdown: Shutdown,
        max_message_bytes: usize,
        allowed_origins: Vec<String>,
    ) -> Self {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BUFFER_BYTES)
            .max_message_size(Some(max_message_bytes))
            .max_frame_size(Some(max_message_bytes));
        Self {
            chat,
            shutdown,
            config,
            allowed_origins: allowed_origins.into(),
        }
    }
}

#[derive(Deserialize)]
struct UpgradeQuery {
    token: Option<String>,
    /// `ROOM:LASTMSGID,…`: what a reconnecting client already has.
    resume: Option<String>,
}

/// GET /ws?token=… → 101 Switching Protocols, then the session.
pub fn route(gateway: Gateway) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("ws")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::ext::optional::<OnUpgrade>())
        .map(
            move |headers: HeaderMap, query: String, on_upgrade: Option<OnUpgrade>| {
                upgrade(&gateway, &headers, &query, on_upgrade)
            },
        )
}

fn bad_upgrade(message: &str) -> Response {
    error_reply(StatusCode::BAD_REQUEST, "bad_upgrade", message)
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A `Sec-WebSocket-Key` is 16 bytes in base64: 22 characters and `==`.
fn valid_key(key: &str) -> bool {
    let b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    key.len() == 24 && key.ends_with("==") && key.bytes().take(22).all(b64)
}

fn upgrade(
    gateway: &Gateway,
    headers: &HeaderMap,
    query: &str,
    on_upgrade: Option<OnUpgrade>,
) -> Response {
    if !header_has_token(headers, header::CONNECTION, "upgrade")
        || !header_has_token(headers, header::UPGRADE, "websocket")
    {
        return bad_upgrade(
            "this endpoint needs a WebSocket upgrade (Connection: upgrade, Upgrade: websocket)",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut reply = error_reply(
            StatusCode::UPGRADE_REQUIRED,
            "bad_upgrade",
            "only WebSocket version 13 is supported",
        );
        reply.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return reply;
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
        .filter(|k| valid_key(k))
    else {
        return bad_upgrade("missing or malformed Sec-WebSocket-Key");
    };

    let Ok(UpgradeQuery { token, resume }) = serde_urlencoded::from_str(query) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "the query string is malformed",
        );
    };
    let token = token.or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned)
    });
    let caller = match token.map(|t| gateway.chat.authenticate(t.trim())) {
        Some(Ok(caller)) => caller,
        Some(Err(e)) => return api_error_reply(&e),
        None => return api_error_reply(&Error::Unauthorized),
    };
    let resume = match parse_resume(&gateway.chat, caller, resume.as_deref().unwrap_or("")) {
        Ok(resume) => resume,
        Err(e) => return api_error_reply(&e),
    };
    // Browsers send Origin; other clients need not, and are not refused for it.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = if gateway.allowed_origins.is_empty() {
            same_origin(origin, headers.get(header::HOST))
        } else {
            gateway
                .allowed_origins
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
        };
        if !allowed {
            return error_reply(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this origin may not open a WebSocket here (server.allowed_origins)",
            );
        }
    }
    let Some(on_upgrade) = on_upgrade else {
        return bad_upgrade("this connection cannot be upgraded (HTTP/1.1 is required)");
    };
    // Counted now, before the 101: connections racing in cannot pass the limit.
    // Subscribed before the session reads the `rooms` snapshot, so that nothing
    // published in between is lost.
    let subscription = match gateway.chat.connect(caller) {
        Ok(subscription) => subscription,
        Err(e) => return api_error_reply(&e),
    };

    let accept = derive_accept_key(key.as_bytes());
    let gateway = gateway.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(gateway.config),
                )
                .await;
                let session = Session::open(gateway.chat, caller, subscription, resume);
                connection::run(socket, session, gateway.shutdown).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });

    let mut reply = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = reply.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    match HeaderValue::from_str(&accept) {
        Ok(value) => {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        Err(_) => {
            return error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
    reply
}

/// Whether a browser's `Origin` is this server's own: its `host[:port]` is the
/// request's `Host`. A default port (80 for http, 443 for https) may be written or
/// left out on either side. `Origin: null` (sandboxed pages, files) is not.
fn same_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(HeaderValue::to_str)) else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    let host = host.trim().to_ascii_lowercase();
    let (authority, default_port) = if let Some(rest) = origin.strip_prefix("http://") {
        (rest, "80")
    } else if let Some(rest) = origin.strip_prefix("https://") {
        (rest, "443")
    } else {
        return false;
    };
    if authority.is_empty() || authority.contains('/') || host.is_empty() {
        return false;
    }
    let with_port = |a: &str| {
        // An IPv6 literal is bracketed, so a colon after the last `]` is the port's.
        let port_colon = a.rfind(':').filter(|&i| a.rfind(']').is_none_or(|b| i > b));
        match port_colon {
            Some(_) => a.to_owned(),
            None => format!("{a}:{default_port}"),
        }
    };
    with_port(authority) == with_port(&host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZ!=="));
        assert!(!valid_key(""));
    }

    #[test]
    fn own_origin() {
        let same = |origin: &str, host: &str| {
            same_origin(
                &HeaderValue::from_str(origin).expect("origin"),
                Some(&HeaderValue::from_str(host).expect("host")),
            )
        };
        assert!(same("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same("https://Chat.Example", "chat.example"));
        assert!(same("https://chat.example", "chat.example:443"));
        assert!(same("http://chat.example:80", "chat.example"));
        assert!(same("http://[::1]:8080", "[::1]:8080"));
        assert!(!same("http://[::1]", "[::1]:8080"));
        assert!(!same("https://chat.example", "chat.example:80"));
        assert!(!same("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same("http://evil.example", "chat.example"));
        assert!(!same("null", "chat.example"));
        assert!(!same("file://", "chat.example"));
        assert!(!same("http://chat.example/path", "chat.example"));
        assert!(!same_origin(
            &HeaderValue::from_static("http://chat.example"),
            None
        ));
    }
}

//! The WebSocket upgrade both gateways answer themselves (RFC 6455), and the check of
//! a browser's `Origin` that both make.
//!
//! The upgrade is answered here rather than by `warp::ws()`, which gives every
//! connection tungstenite's default 128 KiB read buffer (130 KiB of memory per idle
//! connection) and has no setter for it; ours reads through a small buffer.

use std::future::Future;

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::reply::error_reply;

/// Bytes read from the socket at a time. tungstenite allocates (and zeroes) this
/// buffer for every connection; chat frames are a few hundred bytes, so a larger one
/// only costs memory on every idle connection (4 KiB measured 8.4 KiB per idle
/// connection in all, over the 8 KiB budget).
pub const READ_BUFFER_BYTES: usize = 512;
/// Outgoing bytes gathered before a write to the socket; events queued together are
/// written together.
pub const WRITE_BUFFER_BYTES: usize = 8192;

/// A WebSocket on an upgraded HTTP connection.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

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

/// An upgrade request whose headers are right, not yet answered.
pub struct Accepted {
    accept_key: String,
    on_upgrade: OnUpgrade,
}

/// Why an upgrade request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadUpgrade {
    NotAnUpgrade,
    Version,
    Key,
    NotHttp11,
}

impl BadUpgrade {
    /// 400 `bad_upgrade`, or 426 for a version other than 13.
    pub fn reply(self) -> Response {
        match self {
            Self::NotAnUpgrade => bad_upgrade(
                "this endpoint needs a WebSocket upgrade (Connection: upgrade, Upgrade: websocket)",
            ),
            Self::Version => {
                let mut reply = error_reply(
                    StatusCode::UPGRADE_REQUIRED,
                    "bad_upgrade",
                    "only WebSocket version 13 is supported",
                );
                reply.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
                reply
            }
            Self::Key => bad_upgrade("missing or malformed Sec-WebSocket-Key"),
            Self::NotHttp11 => {
                bad_upgrade("this connection cannot be upgraded (HTTP/1.1 is required)")
            }
        }
    }
}

/// Checks an upgrade request's headers.
pub fn accept(headers: &HeaderMap, on_upgrade: Option<OnUpgrade>) -> Result<Accepted, BadUpgrade> {
    if !header_has_token(headers, header::CONNECTION, "upgrade")
        || !header_has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(BadUpgrade::NotAnUpgrade);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(BadUpgrade::Version);
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
        .filter(|k| valid_key(k))
    else {
        return Err(BadUpgrade::Key);
    };
    let on_upgrade = on_upgrade.ok_or(BadUpgrade::NotHttp11)?;
    Ok(Accepted {
        accept_key: derive_accept_key(key.as_bytes()),
        on_upgrade,
    })
}

impl Accepted {
    /// The 101 to answer, and the socket once the client has it (`None` if the
    /// upgrade fails).
    pub fn into_parts(
        self,
        config: WebSocketConfig,
    ) -> (
        Response,
        impl Future<Output = Option<Socket>> + Send + 'static,
    ) {
        let mut reply = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = reply.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(value) = HeaderValue::from_str(&self.accept_key) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        let on_upgrade = self.on_upgrade;
        let socket = async move {
            match on_upgrade.await {
                Ok(upgraded) => Some(
                    WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await,
                ),
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    None
                }
            }
        };
        (reply, socket)
    }
}

/// Whether a request may open a connection, by its `Origin`. Browsers send one;
/// other clients need not, and are not refused for it. With `allowed` empty only
/// the server's own origin may; otherwise one of the list (any case).
pub fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if allowed.is_empty() {
        same_origin(origin, headers.get(header::HOST))
    } else {
        allowed
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    }
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

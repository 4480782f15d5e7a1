//! The WebSocket gateway (the original design's socket gateway): the upgrade at
//! `GET /ws` ([`upgrade`], which `/socket.io/` shares), and one [`connection`] per
//! socket, a thin loop around the session core ([`crate::session`]). The token is
//! checked before the upgrade, so a bad one gets a 401 JSON reply.

mod codec;
mod connection;
pub mod upgrade;

pub use connection::WRITE_TIMEOUT;

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use warp::http::{header, HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::chat::Chat;
use crate::error::Error;
use crate::reply::{api_error_reply, bearer, error_reply};
use crate::session::{parse_resume, Session};
use crate::shutdown::Shutdown;

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
            .read_buffer_size(upgrade::READ_BUFFER_BYTES)
            .write_buffer_size(upgrade::WRITE_BUFFER_BYTES)
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

fn upgrade(
    gateway: &Gateway,
    headers: &HeaderMap,
    query: &str,
    on_upgrade: Option<OnUpgrade>,
) -> Response {
    let accepted = match upgrade::accept(headers, on_upgrade) {
        Ok(accepted) => accepted,
        Err(bad) => return bad.reply(),
    };
    let Ok(UpgradeQuery { token, resume }) = serde_urlencoded::from_str(query) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "the query string is malformed",
        );
    };
    let token = token.or_else(|| bearer(headers.get(header::AUTHORIZATION)).map(str::to_owned));
    let caller = match token.map(|t| gateway.chat.authenticate(t.trim())) {
        Some(Ok(caller)) => caller,
        Some(Err(e)) => return api_error_reply(&e),
        None => return api_error_reply(&Error::Unauthorized),
    };
    let resume = match parse_resume(&gateway.chat, caller, resume.as_deref().unwrap_or("")) {
        Ok(resume) => resume,
        Err(e) => return api_error_reply(&e),
    };
    if !upgrade::origin_allowed(&gateway.allowed_origins, headers) {
        return error_reply(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin may not open a WebSocket here (server.allowed_origins)",
        );
    }
    // Counted now, before the 101: connections racing in cannot pass the limit.
    // Subscribed before the session reads the `rooms` snapshot, so that nothing
    // published in between is lost.
    let subscription = match gateway.chat.connect(caller) {
        Ok(subscription) => subscription,
        Err(e) => return api_error_reply(&e),
    };
    let (reply, socket) = accepted.into_parts(gateway.config);
    // The upgrade's future, the socket and the session are boxed, and the task
    // captures only what it uses: the task's future is as large as its largest
    // state, and a value it captures or holds across an `.await` takes room there
    // for the connection's whole life, once more for each future it is moved into
    // (BENCHMARKS.md, "Idle connections: what one holds").
    let socket = Box::pin(socket);
    let (chat, shutdown) = (Arc::clone(&gateway.chat), gateway.shutdown.clone());
    tokio::spawn(async move {
        let Some(socket) = socket.await.map(Box::new) else {
            return;
        };
        let session = Box::new(Session::open(chat, caller, subscription, resume));
        connection::run(socket, session, shutdown).await;
    });
    reply
}

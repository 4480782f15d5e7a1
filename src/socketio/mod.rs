//! The socket.io gateway at `/socket.io/`: socket.io v4 clients (Engine.IO v4, the
//! socket.io protocol v5) over WebSocket and HTTP long-polling, with the upgrade from
//! polling to WebSocket. A focused adapter, not a library (see ARCHITECTURE.md,
//! "Why our own socket.io"): the subset a client needs, over the same session core as
//! `/ws`.
//!
//! Layers: [`packet`] encodes and decodes both packet layers; [`polling`] keeps the
//! long-polling sessions (requests come and go, the connection stays); [`connection`]
//! is the one task per Engine.IO connection, generic over a [`Handler`] (what a
//! socket means), whatever carries its packets; [`chat`] is the handler of daehwa's
//! chat, a thin layer over [`crate::session::Session`]. The conformance server in
//! `bench/` hosts the same code with the handlers of the protocol's test suite.

pub mod chat;
mod connection;
pub mod packet;
mod polling;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use hyper::upgrade::OnUpgrade;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

use crate::reply::error_reply;
use crate::shutdown::Shutdown;
use crate::ws::upgrade;
use polling::Polling;

/// One Engine.IO message on its way to a client: text (a socket.io packet with its
/// `4`, or an Engine.IO control packet), or a binary attachment.
#[derive(Debug, Clone)]
pub enum Frame {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Frame {
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }
}

/// Why a handler wants its connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerClose {
    /// Close the transport without a word: the client reconnects (and resumes).
    Transport,
    /// Disconnect the namespaces first (`41`): the client does not reconnect.
    Disconnect,
}

/// What a socket.io connection does: daehwa's chat, or the conformance server's
/// handlers. One per Engine.IO connection; its methods run on the connection's task,
/// one packet at a time, so a client's packets are handled in the order sent.
pub trait Handler: Send + 'static {
    /// A CONNECT to `nsp` with the handshake's `auth` payload. `Err` refuses it with
    /// the data of the CONNECT_ERROR.
    fn connect(&mut self, nsp: &str, auth: Option<Value>) -> Result<(), Value>;
    /// An event on a connected namespace: its arguments, the event name first (binary
    /// attachments as their placeholders), the attachments, and the acknowledgement
    /// id if the client wants one.
    fn event(&mut self, nsp: &str, args: Vec<Value>, attachments: Vec<Bytes>, ack: Option<u64>);
    /// The client disconnected a namespace.
    fn disconnect(&mut self, nsp: &str);
    /// Whether the connection should read the client's next packet.
    fn accepts(&self) -> bool {
        true
    }
    /// Waits until there is something to send (see [`Handler::pop`]) or a reason to
    /// close. Cancel-safe.
    fn step(&mut self) -> impl Future<Output = Result<(), HandlerClose>> + Send;
    /// The next frame to send.
    fn pop(&mut self) -> Option<Frame>;
}

/// What a handshake request carries that a [`Service`] may look at.
pub struct Handshake<'a> {
    pub headers: &'a HeaderMap,
    pub query: &'a HashMap<String, String>,
}

/// A handshake refused, answered with `{error, message}` and this status.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub error: &'static str,
    pub message: &'static str,
}

/// Makes the handler of each new connection.
pub trait Service: Send + Sync + 'static {
    type Handler: Handler;
    /// A new Engine.IO connection, or why not.
    fn open(&self, handshake: &Handshake<'_>) -> Result<Self::Handler, Refusal>;
}

/// The Engine.IO settings a client learns in the handshake, and the bounds on what
/// it may make the server hold.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest message, and largest polling request body, in bytes.
    pub max_payload: usize,
    /// How long a connection may stay without a connected namespace.
    pub connect_timeout: Duration,
    /// How long a WebSocket may take to finish the upgrade of a polling connection.
    pub upgrade_timeout: Duration,
    /// Long-polling connections open at once (each is held in memory between
    /// requests, so they are counted).
    pub max_polling_sessions: usize,
    /// Frames waiting for a client's next poll; beyond, the connection waits for it
    /// (bounded in time like every write).
    pub polling_queue: usize,
    /// How long a write may wait for a client that reads nothing.
    pub write_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            connect_timeout: Duration::from_secs(45),
            upgrade_timeout: Duration::from_secs(10),
            max_polling_sessions: 10_000,
            polling_queue: 1024,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// A socket.io server: its service, its settings and its long-polling sessions.
pub struct SocketIo<S> {
    service: S,
    config: EngineConfig,
    ws_config: WebSocketConfig,
    /// Long-polling connections by Engine.IO session id, so that their requests
    /// (and a WebSocket upgrade) find them. At most `max_polling_sessions`.
    sessions: Mutex<HashMap<String, Arc<Polling>>>,
    shutdown: Shutdown,
}

/// The Engine.IO error replies (their `code` is the protocol's).
fn engine_error(status: StatusCode, code: u8, message: &str) -> Response {
    let body = json!({ "code": code, "message": message }).to_string();
    let mut reply = warp::reply::with_status(body, status).into_response();
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
}

fn unknown_transport() -> Response {
    engine_error(StatusCode::BAD_REQUEST, 0, "Transport unknown")
}

fn unknown_session() -> Response {
    engine_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown")
}

fn bad_request() -> Response {
    engine_error(StatusCode::BAD_REQUEST, 3, "Bad request")
}

fn text_reply(body: String) -> Response {
    let mut reply = warp::reply::with_status(body, StatusCode::OK).into_response();
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    reply
}

/// A new Engine.IO session id: 120 random bits, URL-safe.
fn new_sid() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl<S: Service> SocketIo<S> {
    pub fn new(service: S, config: EngineConfig, shutdown: Shutdown) -> Arc<Self> {
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(upgrade::READ_BUFFER_BYTES)
            .write_buffer_size(upgrade::WRITE_BUFFER_BYTES)
            .max_message_size(Some(config.max_payload))
            .max_frame_size(Some(config.max_payload));
        Arc::new(Self {
            service,
            config,
            ws_config,
            sessions: Mutex::new(HashMap::new()),
            shutdown,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Polling>>> {
        // Each critical section is one insert, remove or lookup.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_packet(&self, sid: &str, upgrades: &[&str]) -> String {
        let open = json!({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": self.config.ping_interval.as_millis() as u64,
            "pingTimeout": self.config.ping_timeout.as_millis() as u64,
            "maxPayload": self.config.max_payload,
        });
        format!("0{open}")
    }

    /// Serves one request to `/socket.io/`.
    async fn handle<B, C>(
        self: Arc<Self>,
        method: Method,
        headers: HeaderMap,
        query: String,
        on_upgrade: Option<OnUpgrade>,
        body: B,
    ) -> Response
    where
        B: Stream<Item = Result<C, warp::Error>> + Send,
        C: Buf,
    {
        let Ok(query) = serde_urlencoded::from_str::<HashMap<String, String>>(&query) else {
            return bad_request();
        };
        if query.get("EIO").map(String::as_str) != Some("4") {
            return engine_error(StatusCode::BAD_REQUEST, 5, "Unsupported protocol version");
        }
        let websocket = match query.get("transport").map(String::as_str) {
            Some("polling") => false,
            Some("websocket") => true,
            _ => return unknown_transport(),
        };
        let sid = query.get("sid");
        match (sid, websocket, method) {
            (_, _, Method::OPTIONS) => StatusCode::NO_CONTENT.into_response(),
            (None, false, Method::GET) => self.open_polling(&headers, &query),
            (None, true, Method::GET) => self.open_websocket(&headers, &query, on_upgrade),
            (None, _, _) => engine_error(StatusCode::BAD_REQUEST, 2, "Bad handshake method"),
            (Some(sid), false, Method::GET) => match self.polling(sid) {
                Some(polling) => {
                    let wait = self.config.ping_interval + self.config.ping_timeout;
                    polling.poll(wait, self.config.max_payload).await
                }
                None => unknown_session(),
            },
            (Some(sid), false, Method::POST) => match self.polling(sid) {
                Some(polling) => match read_body(&headers, body, self.config.max_payload).await {
                    Ok(body) => polling.receive(body, self.config.write_timeout).await,
                    Err(reply) => {
                        polling.close();
                        reply
                    }
                },
                None => unknown_session(),
            },
            (Some(sid), true, Method::GET) => self.upgrade_polling(sid, &headers, on_upgrade),
            _ => bad_request(),
        }
    }

    fn polling(&self, sid: &str) -> Option<Arc<Polling>> {
        self.sessions().get(sid).cloned()
    }

    /// Forgets a long-polling connection: it ended, or a WebSocket took it over.
    fn forget(&self, sid: &str) {
        self.sessions().remove(sid);
    }

    fn open_polling(
        self: &Arc<Self>,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
    ) -> Response {
        let handler = match self.service.open(&Handshake { headers, query }) {
            Ok(handler) => handler,
            Err(refusal) => return error_reply(refusal.status, refusal.error, refusal.message),
        };
        let sid = new_sid();
        let (polling, inbox, upgrades) = Polling::new(self.config.polling_queue);
        let polling = Arc::new(polling);
        {
            let mut sessions = self.sessions();
            if sessions.len() >= self.config.max_polling_sessions {
                return engine_error(StatusCode::SERVICE_UNAVAILABLE, 3, "Too many sessions");
            }
            sessions.insert(sid.clone(), Arc::clone(&polling));
        }
        let open = self.open_packet(&sid, &["websocket"]);
        let sio = Arc::clone(self);
        tokio::spawn(async move {
            let transport = connection::Transport::Polling { polling, inbox };
            connection::run(&sio, &sid, transport, Some(upgrades), handler).await;
        });
        text_reply(open)
    }

    fn open_websocket(
        self: &Arc<Self>,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
        on_upgrade: Option<OnUpgrade>,
    ) -> Response {
        let accepted = match upgrade::accept(headers, on_upgrade) {
            Ok(accepted) => accepted,
            Err(bad) => return bad.reply(),
        };
        let handler = match self.service.open(&Handshake { headers, query }) {
            Ok(handler) => handler,
            Err(refusal) => return error_reply(refusal.status, refusal.error, refusal.message),
        };
        let sid = new_sid();
        let open = self.open_packet(&sid, &[]);
        let sio = Arc::clone(self);
        let (reply, upgraded) = accepted.into_parts(self.ws_config);
        tokio::spawn(async move {
            let Some(mut socket) = upgraded.await else {
                return;
            };
            use futures_util::SinkExt;
            let sent = tokio::time::timeout(
                sio.config.write_timeout,
                socket.send(tokio_tungstenite::tungstenite::Message::text(open)),
            )
            .await;
            if matches!(sent, Ok(Ok(()))) {
                let transport = connection::Transport::WebSocket(Box::new(socket));
                connection::run(&sio, &sid, transport, None, handler).await;
            }
        });
        reply
    }

    fn upgrade_polling(
        &self,
        sid: &str,
        headers: &HeaderMap,
        on_upgrade: Option<OnUpgrade>,
    ) -> Response {
        let Some(polling) = self.polling(sid) else {
            return unknown_session();
        };
        let accepted = match upgrade::accept(headers, on_upgrade) {
            Ok(accepted) => accepted,
            Err(bad) => return bad.reply(),
        };
        let (reply, upgraded) = accepted.into_parts(self.ws_config);
        let timeout = self.config.upgrade_timeout;
        tokio::spawn(async move {
            if let Ok(Some(socket)) = tokio::time::timeout(timeout, upgraded).await {
                polling.offer_upgrade(socket);
            }
        });
        reply
    }
}

/// A body over the limit is still read, and dropped, up to this many bytes more and
/// for at most [`DRAIN_TIME`]: a client still sending when the server answers and
/// closes gets a reset connection instead of the 413 (seen as a flaky test with a
/// 1 MB body).
const DRAIN_BYTES: u64 = 4 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// A request body of at most `limit` bytes, or the 413 to answer.
async fn read_body<B, C>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, Response>
where
    B: Stream<Item = Result<C, warp::Error>>,
    C: Buf,
{
    let too_large = || engine_error(StatusCode::PAYLOAD_TOO_LARGE, 3, "Payload too large");
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = std::pin::pin!(body);
    if let Some(length) = length.filter(|l| *l > limit as u64) {
        if length <= limit as u64 + DRAIN_BYTES {
            drain(body.as_mut()).await;
        }
        return Err(too_large());
    }
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| bad_request())?;
        if out.len() + chunk.remaining() > limit {
            drain(body.as_mut()).await;
            return Err(too_large());
        }
        out.put(chunk);
    }
    Ok(out.freeze())
}

/// Reads and drops the rest of a refused body, up to [`DRAIN_BYTES`] and
/// [`DRAIN_TIME`].
async fn drain<B, C>(mut body: std::pin::Pin<&mut B>)
where
    B: Stream<Item = Result<C, warp::Error>>,
    C: Buf,
{
    let mut drained = 0u64;
    let reading = async {
        while let Some(Ok(chunk)) = body.next().await {
            drained += chunk.remaining() as u64;
            if drained > DRAIN_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
}

/// `/socket.io/` (GET, POST, OPTIONS): every request of every transport.
pub fn route<S: Service>(
    sio: Arc<SocketIo<S>>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path("socket.io")
        .and(warp::path::end())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::body::stream())
        .and_then(
            move |method: Method,
                  headers: HeaderMap,
                  query: String,
                  on_upgrade: Option<OnUpgrade>,
                  body| {
                let sio = Arc::clone(&sio);
                async move {
                    Ok::<_, Rejection>(sio.handle(method, headers, query, on_upgrade, body).await)
                }
            },
        )
}

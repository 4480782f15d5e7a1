//! daehwa's chat over socket.io: the default namespace, authenticated by the
//! handshake's `auth: {token, resume?}` (or an `Authorization: Bearer` header, or the
//! `token` query parameter), the same session core as `/ws`. An event is encoded
//! once for every socket.io recipient ([`SocketIoEvent`]); `chat` with an
//! acknowledgement callback is acknowledged with the stored message (or the refusal).

use std::future::pending;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use warp::http::{header, StatusCode};

use super::{packet, Frame, Handler, HandlerClose, Handshake, Refusal, Service};
use crate::chat::view::{ErrorEvent, Event};
use crate::chat::Chat;
use crate::error::Error;
use crate::events::{CloseReason, Encoding};
use crate::reply::bearer;
use crate::session::{decode_command, parse_resume, Outgoing, Session};
use crate::ws::upgrade::origin_allowed;

/// socket.io's encoding of an event on the default namespace: `42["name",data]`, an
/// Engine.IO message holding a socket.io EVENT. The same text is a WebSocket frame
/// and a long-polling record.
pub struct SocketIoEvent;

impl Encoding<Event> for SocketIoEvent {
    type Frame = Utf8Bytes;

    fn encode(event: &Event) -> Utf8Bytes {
        match serde_json::to_string(&(event.name(), event)) {
            Ok(args) => Utf8Bytes::from(packet::event("/", 0, None, &args)),
            Err(e) => {
                // As on `/ws`: a bug, which must not take the connection down.
                tracing::error!(error = %e, event = event.name(), "an event could not be encoded");
                Utf8Bytes::from_static(
                    r#"42["error",{"error":"internal","message":"an event could not be encoded"}]"#,
                )
            }
        }
    }
}

/// Opens a [`ChatSocket`] per connection, for browsers of allowed origins only.
pub struct ChatService {
    chat: Arc<Chat>,
    /// `server.allowed_origins`, checked as `/ws` checks it.
    allowed_origins: Arc<[String]>,
}

impl ChatService {
    pub fn new(chat: Arc<Chat>, allowed_origins: Vec<String>) -> Self {
        Self {
            chat,
            allowed_origins: allowed_origins.into(),
        }
    }
}

impl Service for ChatService {
    type Handler = ChatSocket;

    fn open(&self, handshake: &Handshake<'_>) -> Result<ChatSocket, Refusal> {
        if !origin_allowed(&self.allowed_origins, handshake.headers) {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                error: "origin_not_allowed",
                message: "this origin may not connect here (server.allowed_origins)",
            });
        }
        Ok(ChatSocket {
            chat: Arc::clone(&self.chat),
            handshake_token: bearer(handshake.headers.get(header::AUTHORIZATION))
                .map(str::to_owned)
                .or_else(|| handshake.query.get("token").cloned()),
            session: None,
        })
    }
}

/// One socket.io connection of a user: nothing until the CONNECT of `/`, then a
/// [`Session`].
pub struct ChatSocket {
    chat: Arc<Chat>,
    /// The handshake's `Authorization: Bearer` token (socket.io-client's
    /// `extraHeaders`), else its `token` query parameter; used when `auth` has none.
    handshake_token: Option<String>,
    session: Option<Session>,
}

/// A refusal as a CONNECT_ERROR carries it: the client's `connect_error` handler
/// gets an `Error` whose `message` is ours and whose `data` is `{error, message}`.
fn refused(error: &Error) -> Value {
    let message = error.to_string();
    json!({ "message": message, "data": { "error": error.code(), "message": message } })
}

impl ChatSocket {
    fn open_session(&mut self, auth: Option<Value>) -> Result<Session, Error> {
        let auth = auth.unwrap_or(Value::Null);
        let token = match auth.get("token") {
            Some(Value::String(token)) => Some(token.clone()),
            Some(_) => None,
            None => self.handshake_token.clone(),
        };
        let caller = self
            .chat
            .authenticate(token.as_deref().map(str::trim).ok_or(Error::Unauthorized)?)?;
        let resume = match auth.get("resume") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(resume)) => resume.clone(),
            Some(_) => {
                return Err(Error::bad_request(
                    "invalid_resume",
                    "resume is a string of ROOM:LASTMSGID pairs separated by commas",
                ))
            }
        };
        let resume = parse_resume(&self.chat, caller, &resume)?;
        // Counted now, under the bus's lock; subscribed before the `rooms` snapshot.
        let subscription = self.chat.connect(caller)?;
        Ok(Session::open(
            Arc::clone(&self.chat),
            caller,
            subscription,
            resume,
        ))
    }
}

impl Handler for ChatSocket {
    fn connect(&mut self, nsp: &str, auth: Option<Value>) -> Result<(), Value> {
        if nsp != "/" {
            return Err(json!({ "message": "Invalid namespace" }));
        }
        match self.open_session(auth) {
            Ok(session) => {
                self.session = Some(session);
                Ok(())
            }
            Err(error) => Err(refused(&error)),
        }
    }

    fn event(
        &mut self,
        _nsp: &str,
        mut args: Vec<Value>,
        attachments: Vec<bytes::Bytes>,
        ack: Option<u64>,
    ) {
        let Some(session) = &mut self.session else {
            return;
        };
        if !attachments.is_empty() {
            return session.command(
                Err(ErrorEvent {
                    error: "invalid_frame",
                    message: "binary attachments are not supported".into(),
                    reference: None,
                }),
                ack,
            );
        }
        let data = if args.len() > 1 {
            args.swap_remove(1)
        } else {
            Value::Null
        };
        let name = args.first().and_then(Value::as_str).unwrap_or_default();
        session.command(decode_command(name, &data), ack);
    }

    fn disconnect(&mut self, _nsp: &str) {
        self.session = None;
    }

    fn accepts(&self) -> bool {
        self.session.as_ref().is_none_or(Session::accepts_commands)
    }

    async fn step(&mut self) -> Result<(), HandlerClose> {
        let Some(session) = &mut self.session else {
            return pending().await;
        };
        session.step().await.map_err(|reason| match reason {
            // The client reconnects and resumes.
            CloseReason::SlowConsumer => HandlerClose::Transport,
            // The token is gone: no reconnecting with it.
            CloseReason::LoggedOut => HandlerClose::Disconnect,
        })
    }

    fn pop(&mut self) -> Option<Frame> {
        match self.session.as_mut()?.pop()? {
            Outgoing::Event(delivery) => Some(Frame::Text(delivery.encoded::<SocketIoEvent>())),
            Outgoing::Ack { id, reply } => {
                let args = serde_json::to_string(&[reply]).unwrap_or_else(|_| "[]".into());
                Some(Frame::text(packet::ack("/", 0, id, &args)))
            }
        }
    }
}

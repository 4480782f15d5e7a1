//! One WebSocket connection: the `rooms` event, then client frames in and bus events
//! out until either side closes, the bus closes it, or the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::codec::{self, Command};
use crate::chat::view::{ErrorEvent, Event};
use crate::chat::{Caller, Chat};
use crate::events::{CloseReason, Delivery};
use crate::server::Shutdown;

/// How often an idle connection is pinged; one that has sent nothing (not even a
/// pong) for two intervals is closed as dead.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Events written to the socket before it is flushed, when many are queued.
const MAX_BATCH: usize = 64;

/// Close codes of the application range, documented in docs/API.md.
const CLOSE_SLOW_CONSUMER: u16 = 4000;
const CLOSE_LOGGED_OUT: u16 = 4001;

type Socket<S> = WebSocketStream<S>;

fn text(delivery: &Delivery<Event>) -> Message {
    // SAFETY: the bytes are the output of serde_json, which is always UTF-8.
    Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(delivery.json().clone()) })
}

fn close_frame(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

pub async fn run<S>(mut socket: Socket<S>, chat: Arc<Chat>, caller: Caller, mut shutdown: Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Subscribe before taking the snapshot of rooms: an event that happens in between
    // arrives after the snapshot instead of being lost.
    let mut subscription = chat.bus().subscribe(caller.user_id, caller.token_hash);
    let rooms = Delivery::new(Event::Rooms(chat.my_rooms(caller.user_id)));
    if socket.send(text(&rooms)).await.is_err() {
        return;
    }
    tracing::debug!(user_id = caller.user_id, "session opened");

    let mut ping = interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard_since_ping = true;
    let close = loop {
        tokio::select! {
            frame = socket.next() => {
                heard_since_ping = true;
                let reply = match frame {
                    Some(Ok(Message::Text(text))) => handle(&chat, caller, text.as_str()),
                    Some(Ok(Message::Binary(_))) => Some(ErrorEvent {
                        error: "invalid_frame",
                        message: "binary frames are not supported; send JSON text frames".into(),
                        reference: None,
                    }),
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Ok(_)) => None,
                    Some(Err(WsError::Capacity(e))) => {
                        tracing::debug!(user_id = caller.user_id, error = %e, "oversized message");
                        break Some(close_frame(CloseCode::Size, "message too large"));
                    }
                    Some(Err(e)) => {
                        tracing::debug!(user_id = caller.user_id, error = %e, "socket read failed");
                        break Some(close_frame(CloseCode::Protocol, "unreadable frame"));
                    }
                };
                if let Some(error) = reply {
                    if socket.send(text(&Delivery::new(Event::Error(error)))).await.is_err() {
                        break None;
                    }
                }
            }
            delivery = subscription.rx.recv() => {
                let Some(delivery) = delivery else { break None };
                if forward(&mut socket, &delivery, &mut subscription.rx).await.is_err() {
                    break None;
                }
            }
            reason = subscription.control.closed() => {
                break Some(match reason {
                    CloseReason::SlowConsumer => close_frame(CloseCode::Library(CLOSE_SLOW_CONSUMER), "too slow: reconnect and reload"),
                    CloseReason::LoggedOut => close_frame(CloseCode::Library(CLOSE_LOGGED_OUT), "logged out"),
                });
            }
            _ = ping.tick() => {
                if !heard_since_ping {
                    break Some(close_frame(CloseCode::Away, "no answer to ping"));
                }
                heard_since_ping = false;
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break None;
                }
            }
            _ = shutdown.signalled() => {
                break Some(close_frame(CloseCode::Away, "server shutting down"));
            }
        }
    };
    if let Some(frame) = close {
        // Best effort: the peer may be gone already.
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(frame)).await;
    }
    tracing::debug!(user_id = caller.user_id, "session closed");
}

/// Writes one event and whatever else is queued (up to a batch), then flushes once.
async fn forward<S>(
    socket: &mut Socket<S>,
    first: &Delivery<Event>,
    rx: &mut tokio::sync::mpsc::Receiver<Arc<Delivery<Event>>>,
) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    socket.feed(text(first)).await?;
    for _ in 1..MAX_BATCH {
        match rx.try_recv() {
            Ok(next) => socket.feed(text(&next)).await?,
            Err(_) => break,
        }
    }
    socket.flush().await
}

/// Runs one client frame; the error to send back, if it was refused.
fn handle(chat: &Chat, caller: Caller, text: &str) -> Option<ErrorEvent> {
    match codec::decode(text) {
        Ok(Command::Chat {
            room_id,
            content,
            client_msg_id,
        }) => {
            let echo_id = client_msg_id.clone();
            // The accepted message comes back through the bus, like everyone's.
            chat.send(caller, room_id, content, client_msg_id)
                .err()
                .map(|e| ErrorEvent {
                    error: e.code(),
                    message: e.to_string(),
                    reference: Some(serde_json::json!({
                        "event": "chat",
                        "chatSeq": room_id,
                        "clientMsgId": echo_id,
                    })),
                })
        }
        Err(error) => Some(error),
    }
}

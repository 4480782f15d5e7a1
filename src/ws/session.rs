//! One WebSocket connection: the `rooms` event, then client frames in and bus events
//! out until either side closes, the bus closes it, or the server shuts down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::codec::{self, Command};
use crate::chat::view::{ErrorEvent, Event, ResyncEvent};
use crate::chat::{Accepted, Caller, Chat, Replay, Sent};
use crate::events::{CloseReason, Delivery};
use crate::shutdown::Shutdown;
use crate::store::records::{MsgId, RoomId};
use serde_json::json;

/// How often an idle connection is pinged; one that has sent nothing (not even a
/// pong) for two intervals is closed as dead.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long the close frame may wait behind unread data before the connection is
/// dropped without it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages of one connection that may wait for the disk at once (`sync` mode);
/// beyond, the connection's frames are read only as earlier ones are stored.
const MAX_WAITING: usize = 256;
/// Events written to the socket before it is flushed, when many are queued.
const MAX_BATCH: usize = 64;

/// Close codes of the application range, documented in docs/API.md.
const CLOSE_SLOW_CONSUMER: u16 = 4000;
const CLOSE_LOGGED_OUT: u16 = 4001;

type Socket<S> = WebSocketStream<S>;

fn frame_of(delivery: &Delivery<Event>) -> Message {
    // SAFETY: the bytes are the output of serde_json, which is always UTF-8.
    Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(delivery.json().clone()) })
}

fn close_frame(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

pub async fn run<S>(
    mut socket: Socket<S>,
    chat: Arc<Chat>,
    caller: Caller,
    resume: Vec<(RoomId, MsgId)>,
    mut shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Subscribe before taking the snapshot of rooms: an event that happens in between
    // arrives after the snapshot instead of being lost.
    let mut subscription = chat.bus().subscribe(caller.user_id, caller.token_hash);
    let rooms = Delivery::new(Event::Rooms(chat.my_rooms(caller.user_id)));
    if socket.send(frame_of(&rooms)).await.is_err() {
        return;
    }
    tracing::debug!(user_id = caller.user_id, "session opened");

    let mut session = Session {
        chat: &chat,
        caller,
        replayed: HashMap::new(),
    };
    if session.resume(&mut socket, resume).await.is_err() {
        return;
    }
    let mut ping = interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard_since_ping = true;
    // Accepted messages waiting for the disk (`sync` mode), acknowledged in order.
    let mut waiting = FuturesOrdered::new();
    // Made once, not on every turn of the loop.
    let closed = subscription.control.closed();
    tokio::pin!(closed);
    let signalled = shutdown.signalled();
    tokio::pin!(signalled);
    let close = loop {
        tokio::select! {
            frame = socket.next(), if waiting.len() < MAX_WAITING => {
                heard_since_ping = true;
                let outcome = match frame {
                    Some(Ok(Message::Text(text))) => match session.handle(text.as_str()) {
                        Handled::Done => Ok(()),
                        Handled::Reply(event) => send_event(&mut socket, event).await,
                        Handled::Wait(accepted, reference) => {
                            waiting.push_back(acknowledge(&chat, accepted, reference));
                            Ok(())
                        }
                    },
                    Some(Ok(Message::Binary(_))) => send_error(&mut socket, ErrorEvent {
                        error: "invalid_frame",
                        message: "binary frames are not supported; send JSON text frames".into(),
                        reference: None,
                    }).await,
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Ok(_)) => Ok(()),
                    Some(Err(WsError::Capacity(e))) => {
                        tracing::debug!(user_id = caller.user_id, error = %e, "oversized message");
                        break Some(close_frame(CloseCode::Size, "message too large"));
                    }
                    Some(Err(e)) => {
                        tracing::debug!(user_id = caller.user_id, error = %e, "socket read failed");
                        break Some(close_frame(CloseCode::Protocol, "unreadable frame"));
                    }
                };
                if outcome.is_err() {
                    break None;
                }
            }
            Some(acknowledged) = waiting.next(), if !waiting.is_empty() => {
                let outcome = match acknowledged {
                    // A resend: nothing went to the room, so the sender alone learns
                    // which msgId its message got.
                    Ok(sent) if sent.duplicate => send_event(&mut socket, Event::Chat(sent.view)).await,
                    // The stored message came through the bus, like everyone's.
                    Ok(_) => Ok(()),
                    Err(error) => send_error(&mut socket, error).await,
                };
                if outcome.is_err() {
                    break None;
                }
            }
            delivery = subscription.rx.recv() => {
                let Some(delivery) = delivery else { break None };
                // A client that stops reading blocks this write; its queue then
                // overflows and the bus asks for the close, which must win the race.
                tokio::select! {
                    written = session.forward(&mut socket, delivery, &mut subscription.rx) => {
                        if written.is_err() {
                            break None;
                        }
                    }
                    reason = &mut closed => break Some(close_for(reason)),
                }
            }
            reason = &mut closed => break Some(close_for(reason)),
            _ = ping.tick() => {
                if !heard_since_ping {
                    break Some(close_frame(CloseCode::Away, "no answer to ping"));
                }
                heard_since_ping = false;
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break None;
                }
            }
            _ = &mut signalled => {
                break Some(close_frame(CloseCode::Away, "server shutting down"));
            }
        }
    };
    if let Some(frame) = close {
        // Best effort: the peer may be gone, or (a slow consumer) read what is
        // queued before the close only some time from now.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame)).await;
    }
    tracing::debug!(user_id = caller.user_id, "session closed");
}

fn close_for(reason: CloseReason) -> Message {
    tracing::debug!(?reason, "the bus closes a connection");
    match reason {
        CloseReason::SlowConsumer => close_frame(
            CloseCode::Library(CLOSE_SLOW_CONSUMER),
            "too slow: reconnect and resume",
        ),
        CloseReason::LoggedOut => close_frame(CloseCode::Library(CLOSE_LOGGED_OUT), "logged out"),
    }
}

async fn send_event<S>(socket: &mut Socket<S>, event: Event) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    socket.send(frame_of(&Delivery::new(event))).await
}

async fn send_error<S>(socket: &mut Socket<S>, error: ErrorEvent) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_event(socket, Event::Error(error)).await
}

/// What a connection means, apart from the socket: who it is, and what a resume
/// has already replayed to it.
struct Session<'a> {
    chat: &'a Chat,
    caller: Caller,
    /// Rooms replayed on resume: the newest `msgId` the client has. A live `chat`
    /// event at or below it (queued while the replay was read) is not sent twice.
    replayed: HashMap<RoomId, MsgId>,
}

impl Session<'_> {
    fn already_sent(&self, delivery: &Delivery<Event>) -> bool {
        match &delivery.event {
            Event::Chat(view) => self
                .replayed
                .get(&view.message.room_id)
                .is_some_and(|&upto| view.message.msg_id <= upto),
            _ => false,
        }
    }

    /// Writes one event and whatever else is queued (up to a batch), then flushes once.
    async fn forward<S>(
        &self,
        socket: &mut Socket<S>,
        first: Arc<Delivery<Event>>,
        rx: &mut tokio::sync::mpsc::Receiver<Arc<Delivery<Event>>>,
    ) -> Result<(), WsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut next = Some(first);
        let mut fed = 0;
        while let Some(delivery) = next.take() {
            if self.replayed.is_empty() || !self.already_sent(&delivery) {
                socket.feed(frame_of(&delivery)).await?;
                if let Event::Chat(_) = delivery.event {
                    self.chat.metrics().messages_delivered.inc();
                }
            }
            fed += 1;
            if fed < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        socket.flush().await
    }

    /// Replays what the client missed in each room after the last `msgId` it has,
    /// or tells it to reload (`resync`) where that is too much. Runs before any live
    /// event is forwarded, so that replayed messages come first, in order.
    async fn resume<S>(
        &mut self,
        socket: &mut Socket<S>,
        rooms: Vec<(RoomId, MsgId)>,
    ) -> Result<(), WsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        for (room_id, last) in rooms {
            let event = match self.chat.replay(self.caller, room_id, last) {
                Ok(Replay::Messages(missed)) => {
                    let upto = missed.last().map_or(last, |m| m.message.msg_id.max(last));
                    for view in missed {
                        socket
                            .feed(frame_of(&Delivery::new(Event::Chat(view))))
                            .await?;
                    }
                    self.replayed.insert(room_id, upto);
                    continue;
                }
                Ok(Replay::TooFar { newest }) => Event::Resync(ResyncEvent {
                    chat_seq: room_id,
                    last_msg_id: newest,
                }),
                Err(e) => Event::Error(refusal(&e, json!({"event": "resume", "chatSeq": room_id}))),
            };
            socket.feed(frame_of(&Delivery::new(event))).await?;
        }
        socket.flush().await
    }

    /// Runs one client frame: what to answer, or what to wait for.
    fn handle(&mut self, frame: &str) -> Handled {
        match codec::decode(frame) {
            Ok(Command::Chat {
                room_id,
                content,
                client_msg_id,
            }) => {
                let reference =
                    || json!({"event": "chat", "chatSeq": room_id, "clientMsgId": client_msg_id});
                match self
                    .chat
                    .accept(self.caller, room_id, content, client_msg_id.clone())
                {
                    Ok(accepted) if accepted.waits() => Handled::Wait(accepted, reference()),
                    // A resend: nothing went to the room, so the sender alone learns
                    // which msgId its message got.
                    Ok(accepted) if accepted.sent.duplicate => {
                        Handled::Reply(Event::Chat(accepted.sent.view))
                    }
                    // The accepted message comes back through the bus, like everyone's.
                    Ok(_) => Handled::Done,
                    Err(e) => Handled::Reply(Event::Error(refusal(&e, reference()))),
                }
            }
            Err(error) => Handled::Reply(Event::Error(error)),
        }
    }
}

/// What a client frame calls for.
enum Handled {
    Done,
    Reply(Event),
    /// A message accepted in `sync` mode: acknowledged once stored.
    Wait(Accepted, serde_json::Value),
}

/// Waits for an accepted message to be stored; the refusal to send if it is not.
async fn acknowledge(
    chat: &Chat,
    accepted: Accepted,
    reference: serde_json::Value,
) -> Result<Sent, ErrorEvent> {
    chat.stored(accepted)
        .await
        .map_err(|e| refusal(&e, reference))
}

fn refusal(error: &crate::error::Error, reference: serde_json::Value) -> ErrorEvent {
    ErrorEvent {
        error: error.code(),
        message: error.to_string(),
        reference: Some(reference),
    }
}

//! One `/ws` connection: a thin loop around its [`Session`]. Client frames in,
//! the session's outbox out as JSON text frames, pings, and the close.
//!
//! Every write is bounded: one that cannot finish at once races the bus's close
//! request (a slow consumer, a logout), shutdown, and [`WRITE_TIMEOUT`]; a client
//! that reads nothing cannot hold its connection open by sending.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::codec::{self, Json};
use crate::chat::view::ErrorEvent;
use crate::events::CloseReason;
use crate::session::{Outgoing, Session};
use crate::shutdown::Shutdown;

/// How often an idle connection is pinged; one that has sent nothing (not even a
/// pong) for two intervals is closed as dead.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a write may take: a client that reads nothing for this long is gone.
pub const WRITE_TIMEOUT: Duration = PING_INTERVAL;
/// How long the close frame may wait behind unread data before the connection is
/// dropped without it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Close codes of the application range, documented in docs/API.md.
const CLOSE_SLOW_CONSUMER: u16 = 4000;
const CLOSE_LOGGED_OUT: u16 = 4001;

fn close_frame(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
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

fn shutting_down() -> Message {
    close_frame(CloseCode::Away, "server shutting down")
}

/// Runs a connection until either side closes it.
pub async fn run<S>(
    mut socket: Box<WebSocketStream<S>>,
    mut session: Box<Session>,
    mut shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let user_id = session.caller().user_id;
    let control = session.control();
    let mut signalled = pin!(shutdown.signalled());
    let mut ping = interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard_since_ping = true;
    let mut ping_due = false;
    let close = loop {
        if session.has_outgoing() || ping_due {
            let mut write = pin!(write_queued(&mut socket, &mut session, ping_due));
            ping_due = false;
            // Most writes finish at once; only one that waits is raced and timed.
            // The race's futures (a timer, a wait on the control) are boxed: they
            // would otherwise take room in every idle connection's task.
            let written = match poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
                Poll::Ready(written) => written,
                Poll::Pending => tokio::select! {
                    biased;
                    reason = Box::pin(control.closed()) => break Some(close_for(reason)),
                    _ = &mut signalled => break Some(shutting_down()),
                    written = Box::pin(tokio::time::timeout(WRITE_TIMEOUT, &mut write)) => match written {
                        Ok(written) => written,
                        Err(_) => {
                            tracing::debug!(%user_id, "a write timed out: the client reads nothing");
                            break None;
                        }
                    },
                },
            };
            if written.is_err() {
                break None;
            }
        }
        tokio::select! {
            frame = socket.next(), if session.accepts_commands() => {
                heard_since_ping = true;
                match frame {
                    Some(Ok(Message::Text(text))) => session.command(codec::decode(text.as_str()), None),
                    Some(Ok(Message::Binary(_))) => session.command(Err(ErrorEvent {
                        error: "invalid_frame",
                        message: "binary frames are not supported; send JSON text frames".into(),
                        reference: None,
                    }), None),
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite has queued the echo of the peer's close: send it,
                        // so the client sees its own code rather than 1006.
                        let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, SinkExt::close(&mut socket))).await;
                        break None;
                    }
                    None => break None,
                    Some(Ok(_)) => {}
                    Some(Err(WsError::Capacity(e))) => {
                        tracing::debug!(%user_id, error = %e, "oversized message");
                        break Some(close_frame(CloseCode::Size, "message too large"));
                    }
                    Some(Err(e)) => {
                        tracing::debug!(%user_id, error = %e, "socket read failed");
                        break Some(close_frame(CloseCode::Protocol, "unreadable frame"));
                    }
                }
            }
            step = session.step() => {
                if let Err(reason) = step {
                    break Some(close_for(reason));
                }
            }
            _ = ping.tick() => {
                if !heard_since_ping {
                    break Some(close_frame(CloseCode::Away, "no answer to ping"));
                }
                heard_since_ping = false;
                ping_due = true;
            }
            _ = &mut signalled => break Some(shutting_down()),
        }
    };
    if let Some(frame) = close {
        // Best effort: the peer may be gone, or (a slow consumer) read what is
        // queued before the close only some time from now.
        let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame))).await;
    }
}

/// Writes a ping if one is due and everything in the outbox, then flushes once.
async fn write_queued<S>(
    socket: &mut WebSocketStream<S>,
    session: &mut Session,
    ping: bool,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if ping {
        socket.feed(Message::Ping(Bytes::new())).await?;
    }
    while let Some(outgoing) = session.pop() {
        // Only the event's text is held across the write: an `Outgoing` (an
        // acknowledgement's message) would take its room in every connection's task.
        let text = match outgoing {
            Outgoing::Event(delivery) => delivery.encoded::<Json>(),
            // `/ws` commands never ask for an acknowledgement.
            Outgoing::Ack { .. } => continue,
        };
        socket.feed(Message::Text(text)).await?;
    }
    socket.flush().await
}

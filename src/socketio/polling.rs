//! HTTP long-polling: the connection outlives the requests. A `GET` takes what is
//! queued for the client (waiting for something if nothing is), a `POST` hands the
//! client's packets to the connection's task; both find the connection by its
//! Engine.IO session id.
//!
//! Bounds: one `GET` at a time (a second one closes the connection, as the protocol
//! says), at most `polling_queue` frames queued for the client (the connection's
//! writes then wait, bounded in time like every write), a body of at most
//! `max_payload` bytes, and a `POST` that waits for room in the connection's inbox
//! at most `write_timeout`.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::{bad_request, text_reply, unknown_session, Frame};
use crate::ws::upgrade::Socket;

/// Engine.IO's record separator between the packets of one polling payload.
const SEPARATOR: char = '\u{1e}';
/// Packets of a client's `POST`s waiting for its connection's task.
pub const INBOX: usize = 64;

/// A packet from the client.
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    Binary(Bytes),
}

struct State {
    /// Frames for the client's next `GET`.
    queue: VecDeque<Frame>,
    /// Whether a `GET` is waiting now.
    polled: bool,
    /// Set when the connection has ended or moved to a WebSocket.
    closed: bool,
}

/// What the requests of one long-polling connection share with its task.
pub struct Polling {
    state: Mutex<State>,
    /// Woken when frames are queued or the connection closes (for a waiting `GET`).
    readable: Notify,
    /// Woken when a `GET` takes frames (for a write that waits for room).
    drained: Notify,
    capacity: usize,
    inbox: mpsc::Sender<Incoming>,
    upgrades: mpsc::Sender<Socket>,
}

/// A frame could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Blocked {
    /// The queue is full: wait for [`Polling::drained`].
    Full,
    Closed,
}

impl Polling {
    /// The shared half, the inbox of client packets, and where a WebSocket that
    /// upgrades the connection arrives.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Incoming>, mpsc::Receiver<Socket>) {
        let (inbox, inbox_rx) = mpsc::channel(INBOX);
        let (upgrades, upgrades_rx) = mpsc::channel(1);
        let polling = Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                polled: false,
                closed: false,
            }),
            readable: Notify::new(),
            drained: Notify::new(),
            capacity,
            inbox,
            upgrades,
        };
        (polling, inbox_rx, upgrades_rx)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the queue whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame for the client; the frame back if it cannot be.
    pub fn push(&self, frame: Frame) -> Result<(), (Blocked, Frame)> {
        {
            let mut state = self.state();
            if state.closed {
                return Err((Blocked::Closed, frame));
            }
            if state.queue.len() >= self.capacity {
                return Err((Blocked::Full, frame));
            }
            state.queue.push_back(frame);
        }
        self.readable.notify_waiters();
        Ok(())
    }

    /// Resolves once a `GET` has taken frames. Create it before [`Polling::push`]
    /// fails, so that a poll in between is not missed.
    pub fn drained(&self) -> tokio::sync::futures::Notified<'_> {
        self.drained.notified()
    }

    /// Ends the connection's polling: a waiting `GET` gets what is queued (or a
    /// close packet), later requests are refused. What was queued and not taken is
    /// returned, for a WebSocket that takes over.
    pub fn close(&self) -> Vec<Frame> {
        let left = {
            let mut state = self.state();
            state.closed = true;
            if state.polled {
                Vec::new()
            } else {
                state.queue.drain(..).collect()
            }
        };
        self.readable.notify_waiters();
        left
    }

    /// Hands a WebSocket that upgrades this connection to its task.
    pub fn offer_upgrade(&self, socket: Socket) {
        let _ = self.upgrades.try_send(socket);
    }

    /// `GET`: what is queued, as one payload, waiting at most `wait` for something.
    pub async fn poll(&self, wait: Duration, max_payload: usize) -> Response {
        {
            let mut state = self.state();
            if state.closed {
                return unknown_session();
            }
            if state.polled {
                // Two polls at once: the protocol says the connection is broken.
                state.closed = true;
                drop(state);
                self.readable.notify_waiters();
                return bad_request();
            }
            state.polled = true;
        }
        let deadline = tokio::time::Instant::now() + wait;
        let payload = loop {
            let readable = self.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            {
                let mut state = self.state();
                if !state.queue.is_empty() {
                    break Some(take_payload(&mut state.queue, max_payload));
                }
                if state.closed {
                    break None;
                }
            }
            if tokio::time::timeout_at(deadline, readable).await.is_err() {
                // Nothing to say: a noop, and the client polls again.
                break Some("6".to_owned());
            }
        };
        self.state().polled = false;
        self.drained.notify_waiters();
        match payload {
            Some(payload) => text_reply(payload),
            // The connection ended while this poll waited: a close packet.
            None => text_reply("1".to_owned()),
        }
    }

    /// `POST`: the client's packets, into the connection's inbox.
    pub async fn receive(&self, body: Bytes, wait: Duration) -> Response {
        if self.state().closed {
            return unknown_session();
        }
        let Ok(text) = std::str::from_utf8(&body) else {
            return bad_request();
        };
        for record in text.split(SEPARATOR) {
            let incoming = match record.strip_prefix('b') {
                Some(base64) => match base64::engine::general_purpose::STANDARD.decode(base64) {
                    Ok(bytes) => Incoming::Binary(bytes.into()),
                    Err(_) => return bad_request(),
                },
                None => Incoming::Text(record.to_owned()),
            };
            match tokio::time::timeout(wait, self.inbox.send(incoming)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return unknown_session(),
                Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
        let mut reply = text_reply("ok".to_owned());
        reply.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("text/html"),
        );
        reply
    }
}

/// Takes frames from the front of `queue` into one payload of at most `max_payload`
/// bytes (at least one frame).
fn take_payload(queue: &mut VecDeque<Frame>, max_payload: usize) -> String {
    let mut payload = String::new();
    while let Some(frame) = queue.front() {
        let len = match frame {
            Frame::Text(text) => text.len(),
            Frame::Binary(bytes) => 1 + bytes.len().div_ceil(3) * 4,
        };
        if !payload.is_empty() && payload.len() + 1 + len > max_payload {
            break;
        }
        if !payload.is_empty() {
            payload.push(SEPARATOR);
        }
        match queue.pop_front() {
            Some(Frame::Text(text)) => payload.push_str(&text),
            Some(Frame::Binary(bytes)) => {
                payload.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(&bytes, &mut payload);
            }
            None => break,
        }
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_join_records_and_stay_within_the_limit() {
        let mut queue: VecDeque<Frame> = VecDeque::new();
        queue.push_back(Frame::text("2"));
        queue.push_back(Frame::Binary(Bytes::from_static(&[1, 2, 3])));
        queue.push_back(Frame::text("42[\"a\"]"));
        assert_eq!(take_payload(&mut queue, 100), "2\u{1e}bAQID\u{1e}42[\"a\"]");
        for _ in 0..3 {
            queue.push_back(Frame::text("4".repeat(10)));
        }
        assert_eq!(
            take_payload(&mut queue, 21),
            format!("{}\u{1e}{}", "4".repeat(10), "4".repeat(10))
        );
        assert_eq!(queue.len(), 1);
        // One frame larger than the limit still goes, alone.
        queue.push_back(Frame::text("x".repeat(50)));
        assert_eq!(take_payload(&mut queue, 5), "4".repeat(10));
        assert_eq!(take_payload(&mut queue, 5), "x".repeat(50));
    }
}

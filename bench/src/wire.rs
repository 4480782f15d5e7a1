//! The wire formats the load generator speaks, and the marker it puts in every
//! message's content so that a receiver knows who sent it, in which order, and when.
//!
//! daehwa and the ceiling take JSON text frames `{"event": name, "data": …}`; the
//! socket.io baseline takes Engine.IO v4 packets (`0` open, `40` connect, `42[…]`
//! event, `2`/`3` ping/pong). The content of a load message is
//! `~b<sender>.<seq>.<sent-ns>.` padded with `x` to the message size, where `sent-ns`
//! is nanoseconds since [`clock_base`] in this process: one monotonic clock for send
//! and receive.

use std::sync::OnceLock;
use std::time::Instant;

/// Which server is on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// daehwa itself: `GET /ws?token=…`, JSON frames.
    Daehwa,
    /// The minimal tokio broadcast server in this package, daehwa's frames.
    Ceiling,
    /// The Node socket.io 4 server in `bench/socketio/`.
    Socketio,
    /// daehwa's own socket.io transport: `/socket.io/?EIO=4&transport=websocket&token=…`.
    #[value(name = "daehwa-sio")]
    #[serde(rename = "daehwa-sio")]
    DaehwaSio,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::Daehwa => "daehwa",
            Self::Ceiling => "ceiling",
            Self::Socketio => "socketio",
            Self::DaehwaSio => "daehwa-sio",
        }
    }
}

/// The instant every embedded timestamp counts from.
pub fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since [`clock_base`].
pub fn now_ns() -> u64 {
    clock_base().elapsed().as_nanos() as u64
}

const MARKER: &str = "~b";

/// The content of one load message, at least `size` bytes.
pub fn content(sender: u32, seq: u32, sent_ns: u64, size: usize) -> String {
    let mut text = format!("{MARKER}{sender}.{seq}.{sent_ns}.");
    if text.len() < size {
        text.extend(std::iter::repeat_n('x', size - text.len()));
    }
    text
}

/// The frame that sends `content` to `room`.
/// `client_msg_id` must be unique per user: daehwa refuses a reused one.
pub fn chat_frame(protocol: Protocol, room: u64, content: &str, client_msg_id: &str) -> String {
    match protocol {
        Protocol::Daehwa | Protocol::Ceiling => format!(
            r#"{{"event":"chat","data":{{"chatSeq":{room},"content":"{content}","clientMsgId":"{client_msg_id}"}}}}"#
        ),
        Protocol::Socketio | Protocol::DaehwaSio => format!(
            r#"42["chat",{{"chatSeq":{room},"content":"{content}","clientMsgId":"{client_msg_id}"}}]"#
        ),
    }
}

/// The socket.io frame that joins a room.
pub fn join_frame(room: u64) -> String {
    format!(r#"42["join",{{"chatSeq":{room}}}]"#)
}

/// A load message as a receiver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub sender: u32,
    pub seq: u32,
    pub sent_ns: u64,
}

/// What a server frame is, as far as the load generator cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A `chat` event carrying a load message.
    Chat(Received),
    /// A refusal (`error` event).
    Error,
    /// An Engine.IO ping; answer with `3`.
    Ping,
    /// Anything else (`rooms`, `join room`, `joined`, a chat without our marker).
    Other,
}

pub fn parse_marker(text: &str) -> Option<Received> {
    let start = text.find("\"content\":\"~b")? + "\"content\":\"~b".len();
    let mut parts = text[start..].splitn(4, '.');
    let sender = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let sent_ns = parts.next()?.parse().ok()?;
    Some(Received {
        sender,
        seq,
        sent_ns,
    })
}

/// Classifies one text frame without a full JSON parse: the load generator has to
/// keep up with the server, so it looks only at what it needs.
pub fn classify(protocol: Protocol, text: &str) -> Incoming {
    match protocol {
        Protocol::Daehwa | Protocol::Ceiling => {
            if text.starts_with(r#"{"event":"chat""#) {
                parse_marker(text).map_or(Incoming::Other, Incoming::Chat)
            } else if text.starts_with(r#"{"event":"error""#) {
                Incoming::Error
            } else {
                Incoming::Other
            }
        }
        Protocol::Socketio | Protocol::DaehwaSio => {
            if text == "2" {
                Incoming::Ping
            } else if text.starts_with(r#"42["chat""#) {
                parse_marker(text).map_or(Incoming::Other, Incoming::Chat)
            } else if text.starts_with(r#"42["error""#) {
                Incoming::Error
            } else {
                Incoming::Other
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        let c = content(7, 42, 123_456_789, 100);
        assert_eq!(c.len(), 100);
        let frame = format!(
            r#"{{"event":"chat","data":{{"msgId":1,"chatSeq":3,"senderId":2,"senderName":"a","content":"{c}","createdAt":"x"}}}}"#
        );
        let expected = Incoming::Chat(Received {
            sender: 7,
            seq: 42,
            sent_ns: 123_456_789,
        });
        assert_eq!(classify(Protocol::Daehwa, &frame), expected);
        let sio = format!(r#"42["chat",{{"msgId":1,"content":"{c}"}}]"#);
        assert_eq!(classify(Protocol::Socketio, &sio), expected);
        assert_eq!(classify(Protocol::Socketio, "2"), Incoming::Ping);
        assert_eq!(
            classify(Protocol::Daehwa, r#"{"event":"error","data":{}}"#),
            Incoming::Error
        );
        assert_eq!(
            classify(Protocol::Daehwa, r#"{"event":"rooms","data":[]}"#),
            Incoming::Other
        );
    }
}

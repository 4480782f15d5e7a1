//! The two packet layers of socket.io, as the published protocol describes them.
//!
//! Engine.IO v4 (the connection): one character of type (`0` open, `1` close, `2`
//! ping, `3` pong, `4` message, `5` upgrade, `6` noop) and its data; a WebSocket text
//! frame or a long-polling record (records are separated by `\x1e`; a binary record
//! is `b` and base64). A WebSocket binary frame is a binary message.
//!
//! socket.io v5 (inside an Engine.IO message): `<type>[<attachments>-][<nsp>,][<id>][<JSON>]`,
//! types `0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5`
//! BINARY_EVENT, `6` BINARY_ACK. The namespace is left out when it is `/`. A binary
//! packet's attachments follow it as binary messages, and its JSON holds a
//! `{"_placeholder": true, "num": n}` where each was.

use std::fmt::Write;

use serde_json::Value;

/// Longest namespace name a client may use.
const MAX_NAMESPACE_BYTES: usize = 128;
/// Most binary attachments one packet may announce.
pub const MAX_ATTACHMENTS: usize = 16;

/// An Engine.IO packet from a client (text; binary frames are messages on their own).
#[derive(Debug, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    Close,
    Ping(&'a str),
    Pong(&'a str),
    Message(&'a str),
    Upgrade,
    Noop,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

pub fn parse_engine(text: &str) -> Result<EnginePacket<'_>, Malformed> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(Malformed("an empty packet"))?;
    let data = chars.as_str();
    match kind {
        '1' => Ok(EnginePacket::Close),
        '2' => Ok(EnginePacket::Ping(data)),
        '3' => Ok(EnginePacket::Pong(data)),
        '4' => Ok(EnginePacket::Message(data)),
        '5' => Ok(EnginePacket::Upgrade),
        '6' => Ok(EnginePacket::Noop),
        _ => Err(Malformed("an unknown Engine.IO packet type")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

/// A socket.io packet from a client.
#[derive(Debug, PartialEq)]
pub struct Packet {
    pub kind: Kind,
    pub nsp: String,
    /// Binary attachments that follow (binary packets only).
    pub attachments: usize,
    pub id: Option<u64>,
    pub data: Option<Value>,
}

pub fn parse_packet(text: &str) -> Result<Packet, Malformed> {
    let bytes = text.as_bytes();
    let kind = match bytes.first() {
        Some(b'0') => Kind::Connect,
        Some(b'1') => Kind::Disconnect,
        Some(b'2') => Kind::Event,
        Some(b'3') => Kind::Ack,
        Some(b'4') => Kind::ConnectError,
        Some(b'5') => Kind::BinaryEvent,
        Some(b'6') => Kind::BinaryAck,
        _ => return Err(Malformed("an unknown socket.io packet type")),
    };
    let mut at = 1;
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let end = text[at..]
            .find('-')
            .ok_or(Malformed("a binary packet without its attachment count"))?;
        attachments = text[at..at + end]
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= MAX_ATTACHMENTS)
            .ok_or(Malformed("a bad attachment count"))?;
        at += end + 1;
    }
    let mut nsp = String::from("/");
    if bytes.get(at) == Some(&b'/') {
        let end = text[at..].find(',').map_or(text.len(), |i| at + i);
        if end - at > MAX_NAMESPACE_BYTES {
            return Err(Malformed("a namespace name too long"));
        }
        nsp = text[at..end].to_owned();
        at = (end + 1).min(text.len());
    }
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let id = if digits > 0 {
        let id = text[at..at + digits]
            .parse::<u64>()
            .map_err(|_| Malformed("an acknowledgement id too large"))?;
        at += digits;
        Some(id)
    } else {
        None
    };
    let data = if at < text.len() {
        Some(serde_json::from_str(&text[at..]).map_err(|_| Malformed("data that is not JSON"))?)
    } else {
        None
    };
    let valid = match kind {
        Kind::Connect => data.as_ref().is_none_or(Value::is_object),
        Kind::Disconnect => data.is_none(),
        Kind::Event | Kind::BinaryEvent => data
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|args| args.first())
            .is_some_and(Value::is_string),
        Kind::Ack | Kind::BinaryAck => id.is_some() && data.as_ref().is_some_and(Value::is_array),
        Kind::ConnectError => false,
    };
    if !valid {
        return Err(Malformed("a packet whose data does not fit its type"));
    }
    Ok(Packet {
        kind,
        nsp,
        attachments,
        id,
        data,
    })
}

/// The head of an outgoing packet inside an Engine.IO message: `4`, the type, the
/// attachment count, the namespace and the id.
fn head(kind: char, attachments: usize, nsp: &str, id: Option<u64>) -> String {
    let mut out = String::with_capacity(16 + nsp.len());
    out.push('4');
    out.push(kind);
    if attachments > 0 {
        let _ = write!(out, "{attachments}-");
    }
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
    out
}

/// `40…{"sid": …}`: a namespace connected.
pub fn connect(nsp: &str, sid: &str) -> String {
    let mut out = head('0', 0, nsp, None);
    out.push_str(&serde_json::json!({ "sid": sid }).to_string());
    out
}

/// `44…{…}`: a namespace refused.
pub fn connect_error(nsp: &str, data: &Value) -> String {
    let mut out = head('4', 0, nsp, None);
    out.push_str(&data.to_string());
    out
}

/// `41…`: the server disconnects a namespace.
pub fn disconnect(nsp: &str) -> String {
    head('1', 0, nsp, None)
}

/// An event whose arguments (the name first) are already JSON text.
pub fn event(nsp: &str, attachments: usize, id: Option<u64>, args_json: &str) -> String {
    let kind = if attachments > 0 { '5' } else { '2' };
    let mut out = head(kind, attachments, nsp, id);
    out.push_str(args_json);
    out
}

/// An acknowledgement whose arguments are already JSON text.
pub fn ack(nsp: &str, attachments: usize, id: u64, args_json: &str) -> String {
    let kind = if attachments > 0 { '6' } else { '3' };
    let mut out = head(kind, attachments, nsp, Some(id));
    out.push_str(args_json);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_packets() {
        assert_eq!(parse_engine("2probe"), Ok(EnginePacket::Ping("probe")));
        assert_eq!(parse_engine("3"), Ok(EnginePacket::Pong("")));
        assert_eq!(
            parse_engine("42[\"a\"]"),
            Ok(EnginePacket::Message("2[\"a\"]"))
        );
        assert_eq!(parse_engine("5"), Ok(EnginePacket::Upgrade));
        assert!(parse_engine("").is_err());
        assert!(parse_engine("9").is_err());
        assert!(
            parse_engine("0").is_err(),
            "open comes from the server only"
        );
    }

    #[test]
    fn socketio_packets() {
        let p = parse_packet("0").expect("connect");
        assert_eq!((p.kind, p.nsp.as_str(), p.data), (Kind::Connect, "/", None));
        let p = parse_packet(r#"0/custom,{"token":"123"}"#).expect("connect");
        assert_eq!(p.nsp, "/custom");
        assert_eq!(p.data, Some(json!({"token": "123"})));
        let p = parse_packet("0/custom,").expect("connect");
        assert_eq!((p.nsp.as_str(), p.data), ("/custom", None));
        let p = parse_packet(r#"2456["message-with-ack",1,"2"]"#).expect("event");
        assert_eq!((p.kind, p.id), (Kind::Event, Some(456)));
        let p = parse_packet(r#"51-["message",{"_placeholder":true,"num":0}]"#).expect("binary");
        assert_eq!((p.kind, p.attachments), (Kind::BinaryEvent, 1));
        let p = parse_packet(r#"61-/admin,789[{"_placeholder":true,"num":0}]"#).expect("ack");
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.id),
            (Kind::BinaryAck, "/admin", Some(789))
        );
        let p = parse_packet("1/custom,").expect("disconnect");
        assert_eq!((p.kind, p.nsp.as_str()), (Kind::Disconnect, "/custom"));
        for bad in [
            "",
            "7",
            "abc",
            "2",
            "2{}",
            "2[1]",
            "0[]",
            "3[1]",
            "5[\"a\"]",
            "599-[\"a\"]",
            "2[\"a\"",
            "299999999999999999999999[\"a\"]",
            "4{}",
        ] {
            assert!(parse_packet(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encodings() {
        assert_eq!(connect("/", "x"), r#"40{"sid":"x"}"#);
        assert_eq!(connect("/custom", "x"), r#"40/custom,{"sid":"x"}"#);
        assert_eq!(
            connect_error("/random", &json!({"message": "Invalid namespace"})),
            r#"44/random,{"message":"Invalid namespace"}"#
        );
        assert_eq!(disconnect("/"), "41");
        assert_eq!(event("/", 0, None, r#"["a",1]"#), r#"42["a",1]"#);
        assert_eq!(
            event("/", 1, None, r#"["a",{"_placeholder":true,"num":0}]"#),
            r#"451-["a",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(ack("/", 0, 456, "[1]"), "43456[1]");
        assert_eq!(ack("/x", 2, 7, "[]"), "462-/x,7[]");
    }

    #[test]
    fn arbitrary_text_never_panics() {
        use rand::{Rng, SeedableRng};
        let seed: u64 = rand::rng().random();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let pieces = [
            "0",
            "2",
            "5",
            "6",
            "-",
            "/",
            ",",
            "[",
            "]",
            "\"a\"",
            "{",
            "}",
            "1",
            "é",
            "99999999999999999999",
        ];
        for _ in 0..20_000 {
            let text: String = (0..rng.random_range(0..12))
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            let _ = parse_packet(&text);
            let _ = parse_engine(&text);
        }
    }
}

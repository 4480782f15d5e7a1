//! The gateway's wire format: JSON text frames `{"event": <name>, "data": …}`.
//!
//! Decoding turns a client frame into a [`Command`], the transport-neutral meaning of
//! the frame; a second transport (socket.io) only needs a decoder of its own.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::view::ErrorEvent;
use crate::store::records::{MsgId, RoomId};

/// Parses the `resume` query parameter of the upgrade: `ROOM:LASTMSGID` pairs
/// separated by commas, e.g. `3:120,7:0`.
pub fn decode_resume(text: &str) -> Result<Vec<(RoomId, MsgId)>, String> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (room, last) = pair.split_once(':').ok_or_else(|| {
                format!("resume takes ROOM:LASTMSGID pairs separated by commas, not {pair:?}")
            })?;
            match (room.parse::<RoomId>(), last.parse::<MsgId>()) {
                (Ok(room), Ok(last)) => Ok((room, last)),
                _ => Err(format!("resume pair {pair:?} is not two whole numbers")),
            }
        })
        .collect()
}

/// What a client asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Send a message to a room.
    Chat {
        room_id: RoomId,
        content: String,
        client_msg_id: Option<String>,
    },
}

#[derive(Deserialize)]
struct Frame {
    event: String,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatData {
    chat_seq: RoomId,
    content: String,
    client_msg_id: Option<String>,
}

fn refused(error: &'static str, message: String, reference: Option<Value>) -> ErrorEvent {
    ErrorEvent {
        error,
        message,
        reference,
    }
}

/// The parts of a refused frame a client can match its error against.
fn reference_of(event: &str, data: &Value) -> Value {
    let mut reference = json!({ "event": event });
    for key in ["chatSeq", "clientMsgId"] {
        if let Some(value) = data.get(key).filter(|v| v.is_number() || v.is_string()) {
            reference[key] = value.clone();
        }
    }
    reference
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<Command, ErrorEvent> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| {
        refused(
            "invalid_frame",
            format!("a frame is a JSON object {{\"event\": name, \"data\": …}}: {e}"),
            None,
        )
    })?;
    let reference = || Some(reference_of(&frame.event, &frame.data));
    match frame.event.as_str() {
        "chat" => {
            let data = ChatData::deserialize(&frame.data).map_err(|e| {
                refused(
                    "invalid_frame",
                    format!("chat data is {{chatSeq: number, content: string, clientMsgId?: string}}: {e}"),
                    reference(),
                )
            })?;
            Ok(Command::Chat {
                room_id: data.chat_seq,
                content: data.content,
                client_msg_id: data.client_msg_id,
            })
        }
        other => Err(refused(
            "unknown_event",
            format!("unknown event {other:?}; a client sends \"chat\""),
            reference(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_chat() {
        let command =
            decode(r#"{"event":"chat","data":{"chatSeq":3,"content":"hi","clientMsgId":"a1"}}"#);
        assert_eq!(
            command.ok(),
            Some(Command::Chat {
                room_id: 3,
                content: "hi".into(),
                client_msg_id: Some("a1".into())
            })
        );
    }

    #[test]
    fn decodes_resume() {
        assert_eq!(decode_resume("3:10,4:0"), Ok(vec![(3, 10), (4, 0)]));
        assert_eq!(decode_resume(""), Ok(vec![]));
        for bad in ["3", "3:x", "a:1", "3:-1", "1:2:3"] {
            assert!(decode_resume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_with_a_reference() {
        let err =
            decode(r#"{"event":"chat","data":{"chatSeq":"x","clientMsgId":"a1"}}"#).unwrap_err();
        assert_eq!(err.error, "invalid_frame");
        assert_eq!(
            err.reference,
            Some(json!({"event": "chat", "chatSeq": "x", "clientMsgId": "a1"}))
        );
        for bad in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"event":1}"#,
            r#"{"event":"chat"}"#,
            "\u{0}",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            decode(r#"{"event":"nope"}"#).unwrap_err().error,
            "unknown_event"
        );
    }

    /// Arbitrary text never panics the decoder, and every refusal has a code.
    #[test]
    fn arbitrary_frames_decode_or_are_refused() {
        use rand::{Rng, SeedableRng};
        let seed: u64 = rand::rng().random();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let pieces = [
            "{",
            "}",
            "[",
            "]",
            "\"event\"",
            "\"data\"",
            "\"chat\"",
            ":",
            ",",
            "\"chatSeq\"",
            "\"content\"",
            "\"clientMsgId\"",
            "1",
            "-1",
            "1.5",
            "1e999",
            "null",
            "\"\\u0000\"",
            "18446744073709551616",
            "\"x\"",
            " ",
        ];
        for _ in 0..20_000 {
            let text: String = if rng.random_bool(0.3) {
                let bytes: Vec<u8> = (0..rng.random_range(0..48)).map(|_| rng.random()).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                (0..rng.random_range(1..20))
                    .map(|_| pieces[rng.random_range(0..pieces.len())])
                    .collect()
            };
            if let Err(error) = decode(&text) {
                assert!(
                    !error.error.is_empty() && !error.message.is_empty(),
                    "seed {seed}: {text:?}"
                );
            }
        }
    }
}

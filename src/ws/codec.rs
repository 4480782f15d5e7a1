//! The gateway's wire format: JSON text frames `{"event": <name>, "data": …}`.
//!
//! Decoding turns a client frame into the session's [`Command`]; encoding turns an
//! event into its frame, once per event for all recipients ([`Json`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

use crate::chat::view::{ErrorEvent, Event};
use crate::events::Encoding;
use crate::session::{decode_command, Command};

#[derive(Deserialize)]
struct Frame {
    event: String,
    #[serde(default)]
    data: Value,
}

#[derive(Serialize)]
struct Envelope<'a> {
    event: &'static str,
    data: &'a Event,
}

/// `/ws`'s encoding of an event: `{"event": <name>, "data": …}` as a text frame.
pub struct Json;

impl Encoding<Event> for Json {
    type Frame = Utf8Bytes;

    fn encode(event: &Event) -> Utf8Bytes {
        let envelope = Envelope {
            event: event.name(),
            data: event,
        };
        match serde_json::to_string(&envelope) {
            Ok(text) => Utf8Bytes::from(text),
            Err(e) => {
                // Our events are plain structs and strings; this cannot happen short
                // of a bug, which must not take the connection down with it.
                tracing::error!(error = %e, event = event.name(), "an event could not be encoded");
                Utf8Bytes::from_static(
                    r#"{"event":"error","data":{"error":"internal","message":"an event could not be encoded"}}"#,
                )
            }
        }
    }
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<Command, ErrorEvent> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| ErrorEvent {
        error: "invalid_frame",
        message: format!("a frame is a JSON object {{\"event\": name, \"data\": …}}: {e}"),
        reference: None,
    })?;
    decode_command(&frame.event, &frame.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What is inside `data` is the session's to decode (session::command's tests);
    /// here, the envelope.
    #[test]
    fn decodes_the_envelope_and_refuses_bad_ones() {
        assert!(decode(r#"{"event":"typing","data":{"chatSeq":3}}"#).is_ok());
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
            decode(r#"{"event":"nope"}"#).expect_err("refused").error,
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

    #[test]
    fn encodes_the_envelope() {
        let event = Event::Resync(crate::chat::view::ResyncEvent {
            chat_seq: crate::model::RoomId::new(3),
            last_msg_id: crate::model::MsgId::new(9),
            last_seq: crate::model::Seq::new(11),
        });
        let frame = Json::encode(&event);
        let value: Value = serde_json::from_str(&frame).expect("JSON");
        assert_eq!(
            value,
            json!({"event": "resync", "data": {"chatSeq": 3, "lastMsgId": 9, "lastSeq": 11}})
        );
    }
}

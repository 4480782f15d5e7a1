//! What a client asks for, whatever the transport: an event name and its data, as
//! both `/ws` (`{"event", "data"}`) and socket.io (`["name", data]`) carry them.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::view::ErrorEvent;
use crate::model::{FileId, RoomId};

/// What a client asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Send a message to a room.
    Chat {
        room_id: RoomId,
        content: String,
        client_msg_id: Option<String>,
        attachments: Vec<FileId>,
    },
    /// Tell a room's other members that the user is typing.
    Typing { room_id: RoomId },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypingData {
    chat_seq: RoomId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatData {
    chat_seq: RoomId,
    #[serde(default)]
    content: String,
    client_msg_id: Option<String>,
    #[serde(default)]
    attachments: Vec<FileId>,
}

/// A refusal of a client's frame, before anything ran.
pub fn refused(error: &'static str, message: String, reference: Option<Value>) -> ErrorEvent {
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

/// The command of an event sent by a client.
pub fn decode_command(event: &str, data: &Value) -> Result<Command, ErrorEvent> {
    let reference = || Some(reference_of(event, data));
    match event {
        "chat" => {
            let data = ChatData::deserialize(data).map_err(|e| {
                refused(
                    "invalid_frame",
                    format!("chat data is {{chatSeq: number, content: string, clientMsgId?: string, attachments?: [number]}}: {e}"),
                    reference(),
                )
            })?;
            Ok(Command::Chat {
                room_id: data.chat_seq,
                content: data.content,
                client_msg_id: data.client_msg_id,
                attachments: data.attachments,
            })
        }
        "typing" => {
            let data = TypingData::deserialize(data).map_err(|e| {
                refused(
                    "invalid_frame",
                    format!("typing data is {{chatSeq: number}}: {e}"),
                    reference(),
                )
            })?;
            Ok(Command::Typing {
                room_id: data.chat_seq,
            })
        }
        other => Err(refused(
            "unknown_event",
            format!("unknown event {other:?}; a client sends \"chat\" or \"typing\""),
            reference(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_chat() {
        let command = decode_command(
            "chat",
            &json!({"chatSeq": 3, "content": "hi", "clientMsgId": "a1"}),
        );
        assert_eq!(
            command.ok(),
            Some(Command::Chat {
                room_id: crate::model::RoomId::new(3),
                content: "hi".into(),
                client_msg_id: Some("a1".into()),
                attachments: Vec::new(),
            })
        );
    }

    #[test]
    fn refuses_with_a_reference() {
        let err = decode_command("chat", &json!({"chatSeq": "x", "clientMsgId": "a1"}))
            .expect_err("refused");
        assert_eq!(err.error, "invalid_frame");
        assert_eq!(
            err.reference,
            Some(json!({"event": "chat", "chatSeq": "x", "clientMsgId": "a1"}))
        );
        assert_eq!(
            decode_command("nope", &Value::Null)
                .expect_err("refused")
                .error,
            "unknown_event"
        );
        assert!(decode_command("chat", &Value::Null).is_err());
        assert_eq!(
            decode_command("typing", &json!({"chatSeq": 4})).ok(),
            Some(Command::Typing {
                room_id: crate::model::RoomId::new(4)
            })
        );
        assert_eq!(
            decode_command("typing", &json!({"chatSeq": "4"}))
                .expect_err("refused")
                .error,
            "invalid_frame"
        );
    }
}

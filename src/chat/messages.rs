//! Messages: sending (from the gateway or HTTP) and reading history.

use std::sync::Arc;

use super::view::{Event, MessageView};
use super::{Caller, Chat};
use crate::error::{Error, Result};
use crate::store::records::*;

/// A client's own id for a message, echoed back with it.
pub const CLIENT_MSG_ID_MAX_BYTES: usize = 64;

/// Where a history page ends: before a given message, or at the newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    Newest,
    Msg(MsgId),
}

impl Chat {
    /// Accepts a message from a member: numbers it, buffers it (visible to history at
    /// once) and publishes it to the room, the sender included.
    pub fn send(
        &self,
        caller: Caller,
        room_id: RoomId,
        content: String,
        client_msg_id: Option<String>,
    ) -> Result<MessageView> {
        if content.is_empty() {
            return Err(Error::bad_request(
                "empty_message",
                "content must not be empty",
            ));
        }
        let max = self.settings.max_message_bytes;
        if content.len() > max {
            return Err(Error::TooLarge {
                code: "message_too_large",
                message: format!("content is {} bytes; the limit is {max}", content.len()),
            });
        }
        if let Some(id) = &client_msg_id {
            if id.is_empty() || id.len() > CLIENT_MSG_ID_MAX_BYTES {
                return Err(Error::bad_request(
                    "invalid_client_msg_id",
                    format!("clientMsgId is 1 to {CLIENT_MSG_ID_MAX_BYTES} bytes"),
                ));
            }
        }
        let sender_name = self.username(caller.user_id);
        let directory = self.directory();
        let room = directory.joined(room_id, caller.user_id)?;
        let mut last = room.last_msg_id.lock().unwrap_or_else(|p| p.into_inner());
        let message = Arc::new(Message {
            room_id,
            msg_id: *last + 1,
            sender_id: caller.user_id,
            content,
            created_at: now_millis(),
            client_msg_id,
        });
        *last = message.msg_id;
        self.store.append_message(Arc::clone(&message));
        let view = MessageView {
            message,
            sender_name,
        };
        self.bus
            .publish(room.members.keys().copied(), Event::Chat(view.clone()));
        Ok(view)
    }

    /// Up to `count` messages of a room before `before`, oldest first. Members only.
    pub fn history(
        &self,
        caller: Caller,
        room_id: RoomId,
        before: Before,
        count: u32,
    ) -> Result<Vec<MessageView>> {
        let max = self.settings.history_page_max;
        if count == 0 || count > max {
            return Err(Error::bad_request(
                "invalid_count",
                format!("count must be between 1 and {max}"),
            ));
        }
        let before = match before {
            Before::Newest => MsgId::MAX,
            Before::Msg(id) => id,
        };
        self.directory().joined(room_id, caller.user_id)?;
        let messages = self.store.history(room_id, before, count as usize)?;
        let accounts = self.accounts();
        Ok(messages
            .into_iter()
            .map(|message| {
                let sender_name = accounts
                    .users
                    .get(&message.sender_id)
                    .map(|a| Arc::clone(&a.username))
                    .unwrap_or_else(|| Arc::from("unknown"));
                MessageView {
                    message,
                    sender_name,
                }
            })
            .collect())
    }
}

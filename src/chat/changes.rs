//! Changes to messages already sent: edits, deletes, reactions. Each is a change in
//! the room's log (numbered, buffered, published under the room's sequence lock, as
//! a new message is), made on the message as it is now.
//!
//! Who may: the sender edits; the sender, the owner and admins delete (in a direct
//! room, only the sender); members react. A muted member cannot edit or react (they
//! may still take a message back); in a direct room whose other member blocks you,
//! you cannot change anything. A deleted message cannot be edited or reacted to.
//! Edits and reactions (and deletes) count against `limits.messages_per_second`,
//! like messages; an edit obeys `limits.max_message_bytes`. A change that changes
//! nothing (the same text, a reaction already there or already gone, a message
//! already deleted) is answered as done and logs nothing.

use std::sync::Arc;

use super::moderation::{check_direct_not_blocked, check_not_muted};
use super::policy::{self, Action};
use super::view::MessageView;
use super::{Caller, Chat, Directory, RoomEntry};
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::Generation;

/// An emoji (one grapheme) or a `:shortcode:`, in bytes.
pub const EMOJI_MAX_BYTES: usize = 32;
/// Different emoji under one message.
pub const REACTIONS_PER_MESSAGE: usize = 64;

/// A change decided on a message: what happened and the message after it.
struct Decided {
    kind: ChangeKind,
    message: Message,
}

/// What a change did: the message as it is after it; in `sync` mode, the batch to
/// wait for before answering.
pub struct Changed {
    pub message: Arc<Message>,
    generation: Option<Generation>,
}

fn message_deleted() -> Error {
    Error::conflict("message_deleted", "that message was deleted")
}

/// Refuses a text that is not one emoji or a `:shortcode:`.
pub fn check_emoji(emoji: &str) -> Result<()> {
    let shortcode = emoji.len() >= 3
        && emoji.starts_with(':')
        && emoji.ends_with(':')
        && emoji[1..emoji.len() - 1].bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'+' | b'-')
        });
    let known = || {
        emojis::get(emoji).is_some()
            || emojis::get(&format!("{emoji}\u{fe0f}")).is_some()
            || emojis::get(emoji.trim_end_matches('\u{fe0f}')).is_some()
    };
    if emoji.is_empty() || emoji.len() > EMOJI_MAX_BYTES || !(shortcode || known()) {
        return Err(Error::bad_request(
            "invalid_emoji",
            format!(
                "a reaction is one emoji or a :shortcode: (lower-case letters, digits, _ + -), at most {EMOJI_MAX_BYTES} bytes"
            ),
        ));
    }
    Ok(())
}

impl Chat {
    /// `PATCH …/messages/{msgId}`: the sender's new text.
    pub async fn edit_message(
        &self,
        caller: Caller,
        room_id: RoomId,
        msg_id: MsgId,
        content: String,
    ) -> Result<MessageView> {
        self.check_content(&content, None)?;
        let changed =
            self.change_message(caller, room_id, msg_id, |chat, directory, room, current| {
                if current.sender_id != caller.user_id {
                    return Err(Error::forbidden(
                        "not_allowed",
                        "only its sender may edit a message",
                    ));
                }
                check_not_muted(room, caller.user_id)?;
                let Body::Text { content: old, .. } = &current.body else {
                    return Err(message_deleted());
                };
                if **old == *content {
                    return Ok(None);
                }
                let mentions = chat.mentions_in(directory, room, caller.user_id, &content);
                let mut message = current.clone();
                message.body = Body::Text {
                    content: content.as_str().into(),
                    edited_at: Some(now_millis()),
                    mentions,
                };
                Ok(Some(Decided {
                    kind: ChangeKind::Edited,
                    message,
                }))
            })?;
        let message = self.settled(changed).await?;
        Ok(MessageView {
            sender_name: self.username(message.sender_id),
            message,
        })
    }

    /// `DELETE …/messages/{msgId}`: takes a message back, leaving a tombstone. Its
    /// sender may; so may the owner and admins, except in a direct room.
    pub async fn delete_message(
        &self,
        caller: Caller,
        room_id: RoomId,
        msg_id: MsgId,
    ) -> Result<()> {
        let changed = self.change_message(caller, room_id, msg_id, |_, _, room, current| {
            if current.sender_id != caller.user_id {
                let role = room.role_of(caller.user_id).unwrap_or(Role::Member);
                if room.record.direct.is_some() {
                    return Err(Error::forbidden(
                        "not_allowed",
                        "in a direct room only its sender may delete a message",
                    ));
                }
                policy::check(role, Action::DeleteMessage, None)?;
            }
            if current.is_deleted() {
                return Ok(None);
            }
            let mut message = current.clone();
            message.body = Body::Deleted {
                by: caller.user_id,
                at: now_millis(),
            };
            message.reactions.clear();
            Ok(Some(Decided {
                kind: ChangeKind::Deleted,
                message,
            }))
        })?;
        self.settled(changed).await?;
        Ok(())
    }

    /// `PUT`/`DELETE …/messages/{msgId}/reactions/{emoji}`: adds or removes the
    /// caller's reaction; idempotent.
    pub async fn react(
        &self,
        caller: Caller,
        room_id: RoomId,
        msg_id: MsgId,
        emoji: &str,
        added: bool,
    ) -> Result<()> {
        check_emoji(emoji)?;
        let emoji: Arc<str> = emoji.into();
        let changed = self.change_message(caller, room_id, msg_id, |_, _, room, current| {
            check_not_muted(room, caller.user_id)?;
            if current.is_deleted() {
                return Err(message_deleted());
            }
            let mut message = current.clone();
            let at = message.reactions.iter().position(|r| r.emoji == emoji);
            match (added, at) {
                (true, Some(at)) if message.reactions[at].users.contains(&caller.user_id) => {
                    return Ok(None)
                }
                (true, Some(at)) => message.reactions[at].users.push(caller.user_id),
                (true, None) if message.reactions.len() >= REACTIONS_PER_MESSAGE => {
                    return Err(Error::conflict(
                        "too_many_reactions",
                        format!(
                            "a message has at most {REACTIONS_PER_MESSAGE} different reactions"
                        ),
                    ))
                }
                (true, None) => message.reactions.push(Reaction {
                    emoji: Arc::clone(&emoji),
                    users: vec![caller.user_id],
                }),
                (false, Some(at)) if message.reactions[at].users.contains(&caller.user_id) => {
                    message.reactions[at].users.retain(|&u| u != caller.user_id);
                    if message.reactions[at].users.is_empty() {
                        message.reactions.remove(at);
                    }
                }
                (false, _) => return Ok(None),
            }
            Ok(Some(Decided {
                kind: ChangeKind::Reacted {
                    emoji: Arc::clone(&emoji),
                    user: caller.user_id,
                    added,
                },
                message,
            }))
        })?;
        self.settled(changed).await?;
        Ok(())
    }

    /// Runs `decide` on the message as it is now, under the room's sequence lock,
    /// and logs, buffers and (in `buffered` mode) publishes what it decided.
    fn change_message(
        &self,
        caller: Caller,
        room_id: RoomId,
        msg_id: MsgId,
        decide: impl FnOnce(&Chat, &Directory, &RoomEntry, &Message) -> Result<Option<Decided>>,
    ) -> Result<Changed> {
        let sync = self.settings.durability == Durability::Sync;
        self.check_storage_accepts("changes")?;
        self.take_message_token(caller)?;
        let directory = self.directory();
        let room = directory.joined(room_id, caller.user_id)?;
        check_direct_not_blocked(&directory, room, caller.user_id)?;
        let mut sequence = room.sequence();
        let not_found = || Error::MessageNotFound;
        if msg_id == MsgId::ZERO || msg_id > sequence.last {
            return Err(not_found());
        }
        // The newest state, buffered or not: in `sync` mode a change waiting for the
        // disk is still what the next one changes.
        let current = self
            .store
            .message(room_id, msg_id, true)?
            .ok_or_else(not_found)?;
        let Some(decided) = decide(self, &directory, room, &current)? else {
            return Ok(Changed {
                message: current,
                generation: sync.then(|| self.store.newest_generation()),
            });
        };
        let seq = self.next_seq(room_id, room, &mut sequence)?;
        let message = Arc::new(decided.message);
        let mentioned =
            self.note_mentions(&directory, room, &mut sequence, Some(&current), &message);
        let change = Arc::new(Change {
            seq,
            kind: decided.kind,
            message: Arc::clone(&message),
            mentioned,
            before: Some(Arc::clone(&current)),
        });
        let generation = self.store.append(Arc::clone(&change));
        if !sync {
            let sender_name = self.username(message.sender_id);
            if let Some(event) = super::messages::change_event(&change, sender_name) {
                self.bus.publish(
                    super::messages::change_audience(&directory, room, &change),
                    event,
                );
            }
        }
        Ok(Changed {
            message,
            generation: sync.then_some(generation),
        })
    }

    /// Waits, in `sync` mode, until a change is stored (and so delivered).
    async fn settled(&self, changed: Changed) -> Result<Arc<Message>> {
        if let Some(generation) = changed.generation {
            self.wait_durable(generation).await?;
        }
        Ok(changed.message)
    }
}

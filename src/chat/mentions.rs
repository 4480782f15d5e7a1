//! Mentions: `@username` in a message mentions that member of the room; `@room`,
//! written by the owner or an admin, mentions every member. A mentioned member
//! (who does not block the sender) counts the message in the room's
//! `unreadMentions` until their read marker passes it, and finds it in
//! `GET /api/users/me/mentions`.
//!
//! The unread ones live in memory, in each room's [`Sequence`] (under the lock a
//! change already holds), loaded at start from the store's index of mentions. The
//! index is written with the change that mentions, and never rewritten: an edit that
//! drops a mention, or a delete, leaves its entry, and readers check the message as
//! it is now.

use std::collections::{BTreeSet, HashSet};

use super::view::MessageView;
use super::{Caller, Chat, Directory, RoomEntry, Sequence};
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::MentionKey;

/// `@name`s looked at in one message; more are plain text.
pub const MENTIONS_MAX: usize = 50;
/// Unread mentions counted per member and room; more show as this many.
pub const UNREAD_MENTIONS_MAX: usize = 999;
/// Mentions listed per page when the request does not say, and at most.
pub const MENTIONS_PAGE_DEFAULT: usize = 20;
pub const MENTIONS_PAGE_MAX: usize = 100;
/// Index entries a page looks at, at most (entries of messages edited or deleted
/// since, or of rooms left, are passed over).
const MENTIONS_SCAN_MAX: usize = 1000;
/// The name that mentions the whole room.
pub const ROOM_MENTION: &str = "room";

fn name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The `@name`s of a text, lower-cased, in order, each once: `@` at the start or
/// after a character that cannot be part of a name, then up to 32 name characters;
/// a final `.` ends the sentence, not the name.
pub fn names_in(content: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    for (at, c) in content.char_indices() {
        let starts = c == '@' && previous.is_none_or(|p| !name_char(p));
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &content[at + 1..];
        let len: usize = rest
            .chars()
            .take_while(|&c| name_char(c))
            .take(super::accounts::USERNAME_MAX_CHARS)
            .map(char::len_utf8)
            .sum();
        let name = rest[..len].trim_end_matches('.').to_lowercase();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
            if names.len() == MENTIONS_MAX {
                break;
            }
        }
    }
    names
}

/// Where a page of mentions ends: `createdAt-roomId-msgId` of the last one shown.
fn parse_cursor(text: &str) -> Result<MentionKey> {
    let parts: Vec<&str> = text.split('-').collect();
    let bad = || {
        Error::bad_request(
            "invalid_cursor",
            "before is a nextBefore from an earlier page",
        )
    };
    match parts[..] {
        [at, room, msg] => Ok(MentionKey {
            created_at: at.parse().map_err(|_| bad())?,
            room_id: room.parse().map_err(|_| bad())?,
            msg_id: msg.parse().map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

fn cursor_of(key: &MentionKey) -> String {
    format!("{}-{}-{}", key.created_at, key.room_id, key.msg_id)
}

/// A page of `GET /api/users/me/mentions`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MentionsPage {
    pub mentions: Vec<MessageView>,
    /// The `before` of the next (older) page; `null` at the end.
    pub next_before: Option<String>,
}

/// Whether `message` mentions `user` now.
fn mentions(message: &Message, user: UserId) -> bool {
    message
        .mentions()
        .is_some_and(|m| m.room || m.users.contains(&user))
}

impl Chat {
    /// Who a text written by `sender` in `room` mentions.
    pub(super) fn mentions_in(
        &self,
        directory: &Directory,
        room: &RoomEntry,
        sender: UserId,
        content: &str,
    ) -> Mentions {
        let _ = directory;
        let mut found = Mentions::default();
        let names = names_in(content);
        if names.is_empty() {
            return found;
        }
        let accounts = self.accounts();
        for name in names {
            if name == ROOM_MENTION {
                found.room |= matches!(room.role_of(sender), Some(Role::Owner | Role::Admin));
                continue;
            }
            if let Some(&user) = accounts.by_name.get(&name) {
                if user != sender
                    && room.members.contains_key(&user)
                    && !found.users.contains(&user)
                {
                    found.users.push(user);
                }
            }
        }
        found
    }

    /// Who a message notifies: the members it mentions who do not block its sender.
    fn notified(directory: &Directory, room: &RoomEntry, message: &Message) -> Vec<UserId> {
        let Some(m) = message.mentions() else {
            return Vec::new();
        };
        let sender = message.sender_id;
        let candidates: Vec<UserId> = if m.room {
            room.members.keys().copied().collect()
        } else {
            m.users.clone()
        };
        candidates
            .into_iter()
            .filter(|&u| {
                u != sender && room.members.contains_key(&u) && !directory.blocks(u, sender)
            })
            .collect()
    }

    /// Updates the room's unread mentions for a change from `before` (none for a new
    /// message) to `after`; the users it newly mentions, for the store's index. The
    /// caller holds the sequence lock.
    pub(super) fn note_mentions(
        &self,
        directory: &Directory,
        room: &RoomEntry,
        sequence: &mut Sequence,
        before: Option<&Message>,
        after: &Message,
    ) -> Vec<UserId> {
        let msg_id = after.msg_id;
        let old: HashSet<UserId> = before
            .map(|m| Self::notified(directory, room, m))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let new = Self::notified(directory, room, after);
        for user in old.iter().filter(|u| !new.contains(u)) {
            if let Some(unread) = sequence.mentions.get_mut(user) {
                unread.remove(&msg_id);
            }
        }
        let added: Vec<UserId> = new.into_iter().filter(|u| !old.contains(u)).collect();
        for &user in &added {
            let read = sequence.read.get(&user).copied().unwrap_or_default();
            let unread = sequence.mentions.entry(user).or_default();
            if msg_id > read && unread.len() < UNREAD_MENTIONS_MAX {
                unread.insert(msg_id);
            }
        }
        added
    }

    /// `GET /api/users/me/mentions?before=…&limit=…`: the messages that mention the
    /// caller, newest first, in rooms they are a member of now, from senders they do
    /// not block, as they are now (deleted ones, and ones no longer mentioning them,
    /// are left out).
    pub fn mentions_of(
        &self,
        caller: Caller,
        before: Option<&str>,
        limit: Option<usize>,
    ) -> Result<MentionsPage> {
        let limit = limit.unwrap_or(MENTIONS_PAGE_DEFAULT);
        if limit == 0 || limit > MENTIONS_PAGE_MAX {
            return Err(Error::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {MENTIONS_PAGE_MAX}"),
            ));
        }
        let before = before.map(parse_cursor).transpose()?;
        let (rooms, blocked) = {
            let directory = self.directory();
            (
                directory
                    .user_rooms
                    .get(&caller.user_id)
                    .cloned()
                    .unwrap_or_default(),
                directory
                    .blocks
                    .get(&caller.user_id)
                    .cloned()
                    .unwrap_or_default(),
            )
        };
        let include_buffer = self.include_buffer();
        let mut keys = self.store.mentions_before(
            caller.user_id,
            before,
            MENTIONS_SCAN_MAX,
            include_buffer,
        )?;
        let scanned_all = keys.len() < MENTIONS_SCAN_MAX;
        keys.truncate(MENTIONS_SCAN_MAX);
        let mut page = Vec::new();
        let mut last_looked = None;
        for key in keys {
            last_looked = Some(key);
            if !rooms.contains(&key.room_id) {
                continue;
            }
            let Some(message) = self
                .store
                .message(key.room_id, key.msg_id, include_buffer)?
            else {
                continue;
            };
            if message.is_deleted()
                || !mentions(&message, caller.user_id)
                || blocked.contains(&message.sender_id)
            {
                continue;
            }
            page.push(message);
            if page.len() == limit {
                break;
            }
        }
        let next_before = match last_looked {
            Some(key) if page.len() == limit || !scanned_all => Some(cursor_of(&key)),
            _ => None,
        };
        Ok(MentionsPage {
            mentions: self.views_for(caller, page),
            next_before,
        })
    }
}

/// Loads each member's unread mentions of each room from the store's index (the
/// entries past their read marker whose message still mentions them).
pub(super) fn load_unread(
    chat_store: &crate::store::Store,
    directory: &mut Directory,
) -> crate::store::StoreResult<()> {
    for (&room_id, entry) in &mut directory.rooms {
        let members: Vec<UserId> = entry.members.keys().copied().collect();
        let mut sequence = entry.sequence();
        for user in members {
            let read = sequence.read.get(&user).copied().unwrap_or_default();
            let mut unread = BTreeSet::new();
            for msg_id in chat_store.mentioned_after(room_id, user, read, UNREAD_MENTIONS_MAX)? {
                if let Some(message) = chat_store.message(room_id, msg_id, false)? {
                    if !message.is_deleted() && mentions(&message, user) {
                        unread.insert(msg_id);
                    }
                }
            }
            if !unread.is_empty() {
                sequence.mentions.insert(user, unread);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_where_a_mention_can_start() {
        assert_eq!(names_in("@bob hi @Alice."), ["bob", "alice"]);
        assert_eq!(names_in("mail bob@example.com"), Vec::<String>::new());
        assert_eq!(names_in("(@bob) @bob @BOB"), ["bob"]);
        assert_eq!(names_in("@j.doe, @민수야"), ["j.doe", "민수야"]);
        assert_eq!(names_in("@ @@x @room!"), ["x", "room"]);
        let many: String = (0..80).map(|n| format!("@u{n} ")).collect();
        assert_eq!(names_in(&many).len(), MENTIONS_MAX);
        let long = format!("@{}", "a".repeat(40));
        assert_eq!(names_in(&long), ["a".repeat(32)]);
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let key = MentionKey {
            created_at: 1_700_000_000_000,
            room_id: RoomId::new(3),
            msg_id: MsgId::new(42),
        };
        assert_eq!(parse_cursor(&cursor_of(&key)).expect("parse"), key);
        for bad in ["", "1-2", "a-b-c", "1-2-3-4", "-1-2-3"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}

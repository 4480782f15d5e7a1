//! The domain's vocabulary, shared by every layer: typed ids, times, and the values
//! the domain keeps (users, rooms, members, messages, moderation records).
//!
//! Nothing here knows how a value is stored or sent: `store` converts these to its
//! own records at its edge (so a change here never changes the disk format by
//! accident), and `chat::view` makes the JSON shapes clients see. This module
//! imports no other part of daehwa.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Defines a typed id: a `u64` that cannot be mistaken for another kind of id.
/// Serialized (JSON, and in request bodies) as the bare number.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            pub const ZERO: Self = Self(0);
            pub const MAX: Self = Self(u64::MAX);

            pub const fn new(n: u64) -> Self {
                Self(n)
            }

            pub const fn get(self) -> u64 {
                self.0
            }

            /// The id after this one.
            pub const fn next(self) -> Self {
                Self(self.0.saturating_add(1))
            }

            /// The big-endian bytes: keys that sort as the ids do.
            pub const fn to_be_bytes(self) -> [u8; 8] {
                self.0.to_be_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

id_type!(
    /// A user. Never reused.
    UserId
);
id_type!(
    /// A room (`chatSeq` on the wire). Never reused, closed rooms included.
    RoomId
);
id_type!(
    /// A message within its room: 1, 2, 3, … per room.
    MsgId
);
id_type!(
    /// A change within a room's log (a new message, an edit, a delete, a reaction
    /// added or removed): 1, 2, 3, … per room.
    Seq
);

id_type!(
    /// An uploaded file. Never reused.
    FileId
);

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: Millis,
    pub disabled: bool,
}

/// A bearer token, kept under the BLAKE2b hash of the token.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    pub user_id: UserId,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomType {
    Public,
    Protected,
    Private,
}

/// What a room is, apart from its members and messages.
#[derive(Debug, Clone)]
pub struct Room {
    pub name: String,
    pub room_type: RoomType,
    /// argon2id PHC string; set exactly when `room_type` is `Protected`.
    pub password_hash: Option<String>,
    /// The two users of a direct room, lower id first.
    pub direct: Option<(UserId, UserId)>,
    pub created_by: UserId,
    pub created_at: Millis,
    /// A room whose last member left. Kept so that its id and messages are never
    /// reused.
    pub closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Owner,
    Admin,
    Member,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub role: Role,
    pub joined_at: Millis,
    /// A direct room its member left: hidden from their lists while its newest
    /// message is this one, that is until a new message arrives or they open it again.
    pub hidden_through: Option<MsgId>,
}

impl Member {
    pub fn new(role: Role) -> Self {
        Self {
            role,
            joined_at: now_millis(),
            hidden_through: None,
        }
    }
}

/// Where a message sent under a client's own id went, so that a resend with the
/// same `(user, clientMsgId)` is answered with the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef {
    pub room_id: RoomId,
    pub msg_id: MsgId,
    pub created_at: Millis,
}

/// One chat message, as it is now: its text (edited or not) or its tombstone, and
/// its reactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub room_id: RoomId,
    pub msg_id: MsgId,
    /// The change that posted it.
    pub seq: Seq,
    pub sender_id: UserId,
    pub created_at: Millis,
    pub client_msg_id: Option<String>,
    pub body: Body,
    /// In the order each emoji was first used.
    pub reactions: Vec<Reaction>,
    /// Files uploaded to the room by the sender, shown with the message.
    pub attachments: Vec<Attachment>,
}

/// A file attached to a message, as the message shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file_id: FileId,
    pub name: Arc<str>,
    pub size: u64,
    pub content_type: Arc<str>,
}

impl Message {
    /// The text, unless the message was deleted.
    pub fn content(&self) -> Option<&Arc<str>> {
        match &self.body {
            Body::Text { content, .. } => Some(content),
            Body::Deleted { .. } => None,
        }
    }

    pub fn is_deleted(&self) -> bool {
        matches!(self.body, Body::Deleted { .. })
    }

    /// The users it mentions by name, and whether it mentions the whole room.
    pub fn mentions(&self) -> Option<&Mentions> {
        match &self.body {
            Body::Text { mentions, .. } => Some(mentions),
            Body::Deleted { .. } => None,
        }
    }
}

/// What a message says, or that it was taken back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Text {
        content: Arc<str>,
        /// When it was last edited.
        edited_at: Option<Millis>,
        mentions: Mentions,
    },
    /// A tombstone: the text is gone, from memory and from disk.
    Deleted { by: UserId, at: Millis },
}

/// Who a message mentions: `@username`s (members of the room), and `@room`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentions {
    pub users: Vec<UserId>,
    /// `@room`, by the owner or an admin: every member is mentioned.
    pub room: bool,
}

/// One emoji under a message and who reacted with it, in the order they did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: Arc<str>,
    pub users: Vec<UserId>,
}

/// One entry of a room's log: what changed, and the message as it is after the
/// change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: Seq,
    pub kind: ChangeKind,
    pub message: Arc<Message>,
    /// The members this change mentions anew (a new message's mentions, or those an
    /// edit adds), who do not block the sender: what the store indexes, with the
    /// change, for `GET /api/users/me/mentions`.
    pub mentioned: Vec<UserId>,
    /// The message as it was before the change (`None` for a new message): what an
    /// index of what messages say takes out when a change replaces or deletes the
    /// text. Only in the buffer: a change read back from the log has none.
    pub before: Option<Arc<Message>>,
}

impl Change {
    pub fn room_id(&self) -> RoomId {
        self.message.room_id
    }

    pub fn msg_id(&self) -> MsgId {
        self.message.msg_id
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new message.
    Posted,
    /// Its text changed (to the message's content).
    Edited,
    /// It was taken back, by its sender or the room's staff.
    Deleted,
    /// A reaction added (`added`) or removed.
    Reacted {
        emoji: Arc<str>,
        user: UserId,
        added: bool,
    },
}

/// A user banned from a room, for a time or for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// `None`: for ever.
    pub until: Option<Millis>,
    pub by: UserId,
    pub at: Millis,
}

/// A member who may not send until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mute {
    pub until: Millis,
    pub by: UserId,
    pub at: Millis,
}

/// An invitation to join a room (the only way into a private one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invite {
    pub by: UserId,
    pub at: Millis,
}

/// One user blocking another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub at: Millis,
}

/// A file shared in a room. Its bytes are the store's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub room_id: RoomId,
    pub uploader: UserId,
    /// The name given at upload, made harmless (no path, no control characters).
    pub name: String,
    pub size: u64,
    /// `type/subtype`, lower case.
    pub content_type: String,
    pub created_at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bare_numbers_on_the_wire() {
        let room = RoomId::new(7);
        assert_eq!(serde_json::to_string(&room).expect("json"), "7");
        let back: RoomId = serde_json::from_str("7").expect("parse");
        assert_eq!(back, room);
        assert_eq!("12".parse::<MsgId>().expect("parse").next(), MsgId::new(13));
        assert_eq!(Seq::MAX.next(), Seq::MAX, "saturates");
        assert!(UserId::new(1) < UserId::new(2));
    }
}

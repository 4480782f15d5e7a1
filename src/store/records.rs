//! The records kept in sled, encoded with bincode.
//!
//! bincode is not self-describing: a field added to a record changes its encoding.
//! Any such change bumps `SCHEMA` in `store/mod.rs` and brings a migration.

use serde::{Deserialize, Serialize};

pub type UserId = u64;
pub type RoomId = u64;
pub type MsgId = u64;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: Millis,
    pub disabled: bool,
}

/// A bearer token, stored under the BLAKE2b hash of the token so that a copy of the
/// database does not hand out sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user_id: UserId,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomType {
    Public,
    Protected,
    Private,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRecord {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    Owner,
    Admin,
    Member,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRecord {
    pub role: Role,
    pub joined_at: Millis,
    /// A direct room its member left: hidden from their lists while its newest
    /// message is this one, that is until a new message arrives or they open it again.
    pub hidden_through: Option<MsgId>,
}

impl MemberRecord {
    pub fn new(role: Role) -> Self {
        Self {
            role,
            joined_at: now_millis(),
            hidden_through: None,
        }
    }
}

/// Where a message stored under a client's own id went, so that a resend with the
/// same `(user, clientMsgId)` is answered with the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub room_id: RoomId,
    pub msg_id: MsgId,
    pub created_at: Millis,
}

/// One chat message, as buffered in memory and as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub room_id: RoomId,
    pub msg_id: MsgId,
    pub sender_id: UserId,
    pub content: String,
    pub created_at: Millis,
    pub client_msg_id: Option<String>,
}

/// A user banned from a room, for a time or for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    /// `None`: for ever.
    pub until: Option<Millis>,
    pub by: UserId,
    pub at: Millis,
}

/// A member who may not send until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteRecord {
    pub until: Millis,
    pub by: UserId,
    pub at: Millis,
}

/// An invitation to join a room (the only way into a private one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub by: UserId,
    pub at: Millis,
}

/// One user blocking another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub at: Millis,
}

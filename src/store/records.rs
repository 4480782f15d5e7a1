//! The records kept in sled, encoded with bincode, and their conversions from and to
//! the domain's values ([`crate::model`]). Private to the store: the rest of daehwa
//! never sees a record, so a change to a domain type cannot change the disk format
//! unnoticed.
//!
//! bincode is not self-describing: a field added to a record changes its encoding.
//! Any such change bumps `SCHEMA` in `store/mod.rs` and brings a migration. Ids are
//! plain `u64`s here, as they are on disk.

use serde::{Deserialize, Serialize};

use crate::model::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UserRecord {
    pub username: String,
    pub password_hash: String,
    pub created_at: Millis,
    pub disabled: bool,
}

impl From<&User> for UserRecord {
    fn from(u: &User) -> Self {
        Self {
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            created_at: u.created_at,
            disabled: u.disabled,
        }
    }
}

impl From<UserRecord> for User {
    fn from(r: UserRecord) -> Self {
        Self {
            username: r.username,
            password_hash: r.password_hash,
            created_at: r.created_at,
            disabled: r.disabled,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TokenRecord {
    pub user_id: u64,
    pub created_at: Millis,
}

impl From<&Token> for TokenRecord {
    fn from(t: &Token) -> Self {
        Self {
            user_id: t.user_id.get(),
            created_at: t.created_at,
        }
    }
}

impl From<TokenRecord> for Token {
    fn from(r: TokenRecord) -> Self {
        Self {
            user_id: UserId::new(r.user_id),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum RoomTypeRecord {
    Public,
    Protected,
    Private,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RoomRecord {
    pub name: String,
    pub room_type: RoomTypeRecord,
    pub password_hash: Option<String>,
    pub direct: Option<(u64, u64)>,
    pub created_by: u64,
    pub created_at: Millis,
    pub closed: bool,
}

impl From<&Room> for RoomRecord {
    fn from(r: &Room) -> Self {
        Self {
            name: r.name.clone(),
            room_type: match r.room_type {
                RoomType::Public => RoomTypeRecord::Public,
                RoomType::Protected => RoomTypeRecord::Protected,
                RoomType::Private => RoomTypeRecord::Private,
            },
            password_hash: r.password_hash.clone(),
            direct: r.direct.map(|(a, b)| (a.get(), b.get())),
            created_by: r.created_by.get(),
            created_at: r.created_at,
            closed: r.closed,
        }
    }
}

impl From<RoomRecord> for Room {
    fn from(r: RoomRecord) -> Self {
        Self {
            name: r.name,
            room_type: match r.room_type {
                RoomTypeRecord::Public => RoomType::Public,
                RoomTypeRecord::Protected => RoomType::Protected,
                RoomTypeRecord::Private => RoomType::Private,
            },
            password_hash: r.password_hash,
            direct: r.direct.map(|(a, b)| (UserId::new(a), UserId::new(b))),
            created_by: UserId::new(r.created_by),
            created_at: r.created_at,
            closed: r.closed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum RoleRecord {
    Owner,
    Admin,
    Member,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MemberRecord {
    pub role: RoleRecord,
    pub joined_at: Millis,
    pub hidden_through: Option<u64>,
}

impl From<&Member> for MemberRecord {
    fn from(m: &Member) -> Self {
        Self {
            role: match m.role {
                Role::Owner => RoleRecord::Owner,
                Role::Admin => RoleRecord::Admin,
                Role::Member => RoleRecord::Member,
            },
            joined_at: m.joined_at,
            hidden_through: m.hidden_through.map(MsgId::get),
        }
    }
}

impl From<MemberRecord> for Member {
    fn from(r: MemberRecord) -> Self {
        Self {
            role: match r.role {
                RoleRecord::Owner => Role::Owner,
                RoleRecord::Admin => Role::Admin,
                RoleRecord::Member => Role::Member,
            },
            joined_at: r.joined_at,
            hidden_through: r.hidden_through.map(MsgId::new),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MessageRefRecord {
    pub room_id: u64,
    pub msg_id: u64,
    pub created_at: Millis,
}

impl From<&MessageRef> for MessageRefRecord {
    fn from(r: &MessageRef) -> Self {
        Self {
            room_id: r.room_id.get(),
            msg_id: r.msg_id.get(),
            created_at: r.created_at,
        }
    }
}

impl From<MessageRefRecord> for MessageRef {
    fn from(r: MessageRefRecord) -> Self {
        Self {
            room_id: RoomId::new(r.room_id),
            msg_id: MsgId::new(r.msg_id),
            created_at: r.created_at,
        }
    }
}

/// A message as schema `daehwa/1` stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MessageRecord {
    pub room_id: u64,
    pub msg_id: u64,
    pub sender_id: u64,
    pub content: String,
    pub created_at: Millis,
    pub client_msg_id: Option<String>,
}

impl From<&Message> for MessageRecord {
    fn from(m: &Message) -> Self {
        Self {
            room_id: m.room_id.get(),
            msg_id: m.msg_id.get(),
            sender_id: m.sender_id.get(),
            content: m.content.to_string(),
            created_at: m.created_at,
            client_msg_id: m.client_msg_id.clone(),
        }
    }
}

impl From<MessageRecord> for Message {
    fn from(r: MessageRecord) -> Self {
        Self {
            room_id: RoomId::new(r.room_id),
            msg_id: MsgId::new(r.msg_id),
            sender_id: UserId::new(r.sender_id),
            content: r.content.into(),
            created_at: r.created_at,
            client_msg_id: r.client_msg_id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct BanRecord {
    pub until: Option<Millis>,
    pub by: u64,
    pub at: Millis,
}

impl From<&Ban> for BanRecord {
    fn from(b: &Ban) -> Self {
        Self {
            until: b.until,
            by: b.by.get(),
            at: b.at,
        }
    }
}

impl From<BanRecord> for Ban {
    fn from(r: BanRecord) -> Self {
        Self {
            until: r.until,
            by: UserId::new(r.by),
            at: r.at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MuteRecord {
    pub until: Millis,
    pub by: u64,
    pub at: Millis,
}

impl From<&Mute> for MuteRecord {
    fn from(m: &Mute) -> Self {
        Self {
            until: m.until,
            by: m.by.get(),
            at: m.at,
        }
    }
}

impl From<MuteRecord> for Mute {
    fn from(r: MuteRecord) -> Self {
        Self {
            until: r.until,
            by: UserId::new(r.by),
            at: r.at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct InviteRecord {
    pub by: u64,
    pub at: Millis,
}

impl From<&Invite> for InviteRecord {
    fn from(i: &Invite) -> Self {
        Self {
            by: i.by.get(),
            at: i.at,
        }
    }
}

impl From<InviteRecord> for Invite {
    fn from(r: InviteRecord) -> Self {
        Self {
            by: UserId::new(r.by),
            at: r.at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct BlockRecord {
    pub at: Millis,
}

impl From<&Block> for BlockRecord {
    fn from(b: &Block) -> Self {
        Self { at: b.at }
    }
}

impl From<BlockRecord> for Block {
    fn from(r: BlockRecord) -> Self {
        Self { at: r.at }
    }
}

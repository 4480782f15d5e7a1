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

/// A message as schema `daehwa/1` stored it; read only by the migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MessageRecordV1 {
    pub room_id: u64,
    pub msg_id: u64,
    pub sender_id: u64,
    pub content: String,
    pub created_at: Millis,
    pub client_msg_id: Option<String>,
}

/// A message as it is now (`daehwa/2`), under room id ++ msg id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MessageRecord {
    /// The change that posted it.
    pub seq: u64,
    pub sender_id: u64,
    pub created_at: Millis,
    pub client_msg_id: Option<String>,
    pub body: BodyRecord,
    /// (emoji, users in the order they reacted), in the order each emoji was first used.
    pub reactions: Vec<(String, Vec<u64>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum BodyRecord {
    Text {
        content: String,
        edited_at: Option<Millis>,
        mentions: Vec<u64>,
        mentions_room: bool,
    },
    /// A tombstone: no text is stored.
    Deleted { by: u64, at: Millis },
}

impl MessageRecordV1 {
    /// The same message in schema 2: posted by the change numbered as the message.
    pub fn upgrade(self) -> MessageRecord {
        MessageRecord {
            seq: self.msg_id,
            sender_id: self.sender_id,
            created_at: self.created_at,
            client_msg_id: self.client_msg_id,
            body: BodyRecord::Text {
                content: self.content,
                edited_at: None,
                mentions: Vec::new(),
                mentions_room: false,
            },
            reactions: Vec::new(),
        }
    }
}

impl From<&Message> for MessageRecord {
    fn from(m: &Message) -> Self {
        Self {
            seq: m.seq.get(),
            sender_id: m.sender_id.get(),
            created_at: m.created_at,
            client_msg_id: m.client_msg_id.clone(),
            body: match &m.body {
                Body::Text {
                    content,
                    edited_at,
                    mentions,
                } => BodyRecord::Text {
                    content: content.to_string(),
                    edited_at: *edited_at,
                    mentions: mentions.users.iter().map(|u| u.get()).collect(),
                    mentions_room: mentions.room,
                },
                Body::Deleted { by, at } => BodyRecord::Deleted {
                    by: by.get(),
                    at: *at,
                },
            },
            reactions: m
                .reactions
                .iter()
                .map(|r| {
                    (
                        r.emoji.to_string(),
                        r.users.iter().map(|u| u.get()).collect(),
                    )
                })
                .collect(),
        }
    }
}

impl MessageRecord {
    /// The domain's message; the ids come from the record's key.
    pub fn into_message(self, room_id: RoomId, msg_id: MsgId) -> Message {
        Message {
            room_id,
            msg_id,
            seq: Seq::new(self.seq),
            sender_id: UserId::new(self.sender_id),
            created_at: self.created_at,
            client_msg_id: self.client_msg_id,
            body: match self.body {
                BodyRecord::Text {
                    content,
                    edited_at,
                    mentions,
                    mentions_room,
                } => Body::Text {
                    content: content.into(),
                    edited_at,
                    mentions: Mentions {
                        users: mentions.into_iter().map(UserId::new).collect(),
                        room: mentions_room,
                    },
                },
                BodyRecord::Deleted { by, at } => Body::Deleted {
                    by: UserId::new(by),
                    at,
                },
            },
            reactions: self
                .reactions
                .into_iter()
                .map(|(emoji, users)| Reaction {
                    emoji: emoji.into(),
                    users: users.into_iter().map(UserId::new).collect(),
                })
                .collect(),
            // Kept in their own tree; the store adds them.
            attachments: Vec::new(),
        }
    }
}

/// A message's attachment, under room id ++ msg id ++ file id: what the message
/// shows of the file, so that reading a message does not read the file's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct AttachmentRecord {
    pub name: String,
    pub size: u64,
    pub content_type: String,
}

impl AttachmentRecord {
    pub fn into_attachment(self, file_id: FileId) -> Attachment {
        Attachment {
            file_id,
            name: self.name.into(),
            size: self.size,
            content_type: self.content_type.into(),
        }
    }
}

impl From<&Attachment> for AttachmentRecord {
    fn from(a: &Attachment) -> Self {
        Self {
            name: a.name.to_string(),
            size: a.size,
            content_type: a.content_type.to_string(),
        }
    }
}

/// One entry of a room's log (`daehwa/2`), under room id ++ seq. The message it
/// changed is looked up by `msg_id`: its text is stored once, in the message, so
/// that a delete takes it off the disk in one write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ChangeRecord {
    pub msg_id: u64,
    pub kind: ChangeKindRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum ChangeKindRecord {
    Posted,
    Edited,
    Deleted,
    Reacted {
        emoji: String,
        user: u64,
        added: bool,
    },
}

impl From<&Change> for ChangeRecord {
    fn from(c: &Change) -> Self {
        Self {
            msg_id: c.message.msg_id.get(),
            kind: match &c.kind {
                ChangeKind::Posted => ChangeKindRecord::Posted,
                ChangeKind::Edited => ChangeKindRecord::Edited,
                ChangeKind::Deleted => ChangeKindRecord::Deleted,
                ChangeKind::Reacted { emoji, user, added } => ChangeKindRecord::Reacted {
                    emoji: emoji.to_string(),
                    user: user.get(),
                    added: *added,
                },
            },
        }
    }
}

impl ChangeKindRecord {
    pub fn into_kind(self) -> ChangeKind {
        match self {
            Self::Posted => ChangeKind::Posted,
            Self::Edited => ChangeKind::Edited,
            Self::Deleted => ChangeKind::Deleted,
            Self::Reacted { emoji, user, added } => ChangeKind::Reacted {
                emoji: emoji.into(),
                user: UserId::new(user),
                added,
            },
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
